//! Measures fire lag: starts the real `cronhook` binary with every-second jobs aimed at a loopback
//! target and reports, per delivered request, arrival time − scheduled instant.
//!
//! `cargo build --release -p cronhook -p cronhook-tests --bins && \
//!  target/release/fire-lag --seconds 60 --jobs 1`

use std::time::Duration;

use cronhook_tests::{Cronhook, ServeOptions, Target, instant, json};

#[tokio::main]
async fn main() {
    let mut seconds: u64 = 60;
    let mut jobs: usize = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (arg.as_str(), value) {
            ("--seconds", Some(v)) => seconds = v,
            ("--jobs", Some(v)) => jobs = usize::try_from(v).unwrap_or(1).max(1),
            _ => {
                report("usage: fire-lag [--seconds N] [--jobs N]");
                std::process::exit(2);
            }
        }
    }

    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("bench");
    for index in 0..jobs {
        api.create_job(json!({
            "name": format!("lag-{index}"),
            "schedule": {"cron": "* * * * * *"},
            "request": {"method": "POST", "url": target.url("/lag"), "body": "{}"},
        }))
        .await;
    }
    // Let the first, partial second pass, then measure whole seconds.
    tokio::time::sleep(Duration::from_secs(seconds) + Duration::from_millis(1_500)).await;
    let received = target.received("/lag");
    let mut lags_ms: Vec<f64> = received
        .iter()
        .filter_map(|request| {
            let scheduled = instant(&json!(request.header("cronhook-scheduled-for")?));
            Some((request.at - scheduled).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    lags_ms.sort_by(f64::total_cmp);
    if lags_ms.is_empty() {
        report("no request arrived");
        std::process::exit(1);
    }
    let pick = |q: f64| lags_ms[((lags_ms.len() as f64 - 1.0) * q).round() as usize];
    report(&format!(
        "fire lag over {seconds} s, {jobs} every-second job(s), {} deliveries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lags_ms.len(),
        pick(0.50),
        pick(0.99),
        lags_ms[lags_ms.len() - 1],
    ));
}

#[allow(clippy::print_stdout)]
fn report(line: &str) {
    println!("{line}");
}
