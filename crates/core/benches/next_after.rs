//! Cost of schedule evaluation: `next_after` for a few typical expressions, and `compile`.
//!
//! `cargo bench -p cronhook-core --bench next_after -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use cronhook_core::{CompiledSchedule, ScheduleSpec};

fn spec(cron: &str, timezone: &str) -> ScheduleSpec {
    ScheduleSpec::Cron {
        cron: cron.into(),
        timezone: timezone.into(),
    }
}

fn anchor() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("instant")
        .to_utc()
}

fn next_after(c: &mut Criterion) {
    let cases = [
        ("* * * * * *", "UTC"),
        ("0 3 * * *", "Europe/Berlin"),
        ("*/15 9-17 * * 1-5", "America/New_York"),
        ("0 0 L * *", "UTC"),
        ("H H * * *", "UTC"),
    ];
    let mut group = c.benchmark_group("next_after");
    for (cron, timezone) in cases {
        let schedule =
            CompiledSchedule::compile(&spec(cron, timezone), "job_bench", anchor()).expect(cron);
        // A spread of starting instants over a year, so no single day is measured alone.
        let starts: Vec<DateTime<Utc>> = (0..64)
            .map(|k| anchor() + TimeDelta::seconds(k * 492_751))
            .collect();
        let mut k = 0;
        group.bench_function(format!("{cron} ({timezone})"), |b| {
            b.iter(|| {
                k = (k + 1) % starts.len();
                black_box(schedule.next_after(black_box(starts[k])))
            });
        });
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    let spec = spec("*/15 9-17 * * 1-5", "America/New_York");
    group.bench_function("*/15 9-17 * * 1-5 (America/New_York)", |b| {
        b.iter(|| CompiledSchedule::compile(black_box(&spec), "job_bench", anchor()))
    });
    // What the API's and the dashboard's views of a job pay: the description is worked out
    // when asked for.
    group.bench_function("*/15 9-17 * * 1-5 (America/New_York), described", |b| {
        b.iter(|| {
            CompiledSchedule::compile(black_box(&spec), "job_bench", anchor())
                .map(|schedule| schedule.describe())
        })
    });
    group.finish();
}

criterion_group!(benches, next_after, compile);
criterion_main!(benches);
