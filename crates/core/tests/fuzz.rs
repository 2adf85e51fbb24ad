//! A short, bounded run of the schedule fuzzer (`examples/fuzz_schedule.rs`; its long run is
//! `cargo run --release -p cronhook-core --example fuzz_schedule -- --seconds 600`).

#[path = "../examples/fuzz_schedule.rs"]
#[allow(dead_code)]
mod fuzz_schedule;

use std::time::Duration;

use fuzz_schedule::{Budget, run};

#[test]
fn compile_and_evaluate_never_panic_or_hang() {
    let report = run(Budget::Inputs(20_000), 20_261_127);
    eprintln!("{}", report.summary());
    assert!(report.panics.is_empty(), "panics: {:#?}", report.panics);
    assert!(
        report.broken_laws.is_empty(),
        "broken laws: {:#?}",
        report.broken_laws
    );
    assert!(report.accepted > 1_000, "{}", report.summary());
    assert!(report.refused > 1_000, "{}", report.summary());
    // Unoptimised build: generous, but catches anything that scans years.
    let (_, _, slowest) = report.slowest.as_ref().expect("inputs ran");
    assert!(*slowest < Duration::from_secs(2), "{}", report.summary());
}
