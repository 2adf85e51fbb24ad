//! Smoke test of the harness: each scenario runs at tiny sizes against the debug binaries and
//! prints its result fields. No timing assertions.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const BENCH: &str = env!("CARGO_BIN_EXE_cronhook-bench");

/// The `cronhook` binary of the same target directory (`scripts/test` builds it first).
fn cronhook() -> PathBuf {
    let path = PathBuf::from(BENCH)
        .parent()
        .expect("bench binary has a directory")
        .join("cronhook");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p cronhook` first",
        path.display()
    );
    path
}

/// Runs `cronhook-bench --json ARGS…` and returns its one result object.
fn run(args: &[&str]) -> Value {
    let output = Command::new(BENCH)
        .arg("--json")
        .arg("--cronhook")
        .arg(cronhook())
        .args(args)
        .output()
        .expect("cronhook-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{args:?} failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(lines.len(), 1, "one result line: {stdout}");
    serde_json::from_str(lines[0]).expect("the result is JSON")
}

fn assert_fields(result: &Value, scenario: &str, fields: &[&str]) {
    assert_eq!(result["scenario"], scenario, "{result}");
    for field in fields {
        assert!(
            result.get(*field).is_some_and(Value::is_number),
            "{field} in {result}"
        );
    }
}

/// No burst's first request left before its instant (a correctness check, not a timing one).
fn assert_nothing_left_early(result: &Value) {
    let earliest = result["first_departure_min_ms"]
        .as_f64()
        .expect("first_departure_min_ms");
    assert!(
        earliest >= 0.0,
        "a request left before its instant: {result}"
    );
}

#[test]
fn ceiling_runs() {
    let result = run(&["ceiling", "--duration", "1", "--concurrency", "4"]);
    assert_fields(
        &result,
        "ceiling",
        &["requests", "errors", "requests_per_s"],
    );
}

#[test]
fn fire_runs() {
    let lags =
        std::env::temp_dir().join(format!("cronhook-bench-lags-{}.jsonl", std::process::id()));
    let lags_arg = lags.to_str().expect("a UTF-8 temporary path");
    let result = run(&[
        "fire",
        "--lags-out",
        lags_arg,
        "--jobs",
        "3",
        // More than go through the API, so the bulk copy runs too.
        "--idle-jobs",
        "50",
        "--history-executions",
        "250",
        "--waiting-retries",
        "40",
        // Every firing job's history: the database's check below reads through it.
        "--history-per-job",
        "4",
        "--delete-history-job-at",
        "1",
        "--duration",
        "2",
        "--ceiling-seconds",
        "0.5",
    ]);
    assert_fields(
        &result,
        "fire",
        &[
            "executions_per_s",
            "lag_p50_ms",
            "lag_p99_ms",
            "lag_max_ms",
            "first_lag_p50_ms",
            "first_lag_p99_ms",
            "first_departure_min_ms",
            "first_departure_p50_ms",
            "first_departure_p99_ms",
            "first_departure_max_ms",
            "worst_burst_p99_ms",
            "burst_p99_goal_ms",
            "lost",
            "duplicated",
            "db_lost",
            "db_duplicated",
            "peak_rss_mib",
            "cpu_percent",
            "ceiling_before_rps",
            "ceiling_after_rps",
            "ceiling_rps",
            "ratio_to_ceiling",
            "scheduler_missed_unfired",
        ],
    );
    assert_nothing_left_early(&result);
    // SQLite's WAL and checkpoints, written within the window.
    if std::path::Path::new("/proc/self/io").exists() {
        assert!(
            result["written_kib_per_execution"].as_f64() > Some(0.0),
            "{result}"
        );
    }
    // The seeding counts what it stored and fails the run when any is missing.
    assert_eq!(result["history_executions"], 250, "{result}");
    assert_eq!(result["waiting_retries"], 40, "{result}");
    assert_eq!(result["history_per_job_executions"], 3 * 4, "{result}");
    // No occurrence twice, though each job's occurrences before the window were seeded.
    assert_eq!(result["db_duplicated"], 0, "{result}");
    // The deletion fails the run unless the API accepted it. SQLite leaves the history to the
    // pruner's next pass, minutes away.
    assert_eq!(result["history_change"], "delete", "{result}");
    assert!(result["history_change_ms"].as_f64() > Some(0.0), "{result}");
    assert_eq!(result["history_left"], 250, "{result}");
    // One line per measured burst, each with its jobs' lags, in arrival order.
    let text = std::fs::read_to_string(&lags).expect("the lags file is written");
    let _ = std::fs::remove_file(&lags);
    let bursts: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    // Two measured seconds; a delivery later than the run waits for is counted lost, not here.
    assert!((1..=2).contains(&bursts.len()), "{text}");
    for burst in &bursts {
        assert!(burst["second"].is_i64(), "{burst}");
        let lags: Vec<f64> = burst["lags_ms"]
            .as_array()
            .expect("lags_ms")
            .iter()
            .map(|lag| lag.as_f64().expect("a lag in ms"))
            .collect();
        assert!((1..=3).contains(&lags.len()), "{burst}");
        assert!(lags.windows(2).all(|pair| pair[0] <= pair[1]), "{burst}");
    }
}

#[test]
fn fire_runs_on_two_postgres_nodes() {
    let result = run(&[
        "fire",
        "--database",
        "postgres",
        "--nodes",
        "2",
        "--jobs",
        "3",
        "--idle-jobs",
        "30",
        "--history-executions",
        "120",
        "--waiting-retries",
        "30",
        "--history-per-job",
        "4",
        "--keep-last-history-at",
        "1",
        "--duration",
        "2",
        "--ceiling-seconds",
        "0.5",
    ]);
    assert_fields(
        &result,
        "fire",
        &[
            "nodes",
            "executions_per_s",
            "lag_p99_ms",
            "first_departure_p99_ms",
            "lost",
            "duplicated",
        ],
    );
    assert_nothing_left_early(&result);
    assert_eq!(result["nodes"], 2, "{result}");
    assert_eq!(result["database"], "postgres", "{result}");
    assert_eq!(result["history_executions"], 120, "{result}");
    assert_eq!(result["waiting_retries"], 30, "{result}");
    assert_eq!(result["history_per_job_executions"], 3 * 4, "{result}");
    // The job's `keep_last` (1 000) is above its 120 executions: the pruner keeps them all.
    assert_eq!(result["history_change"], "keep_last", "{result}");
    assert!(result["history_change_ms"].as_f64() > Some(0.0), "{result}");
    assert_eq!(result["history_left"], 120, "{result}");
}

#[test]
fn two_nodes_need_postgres() {
    let output = Command::new(BENCH)
        .arg("--cronhook")
        .arg(cronhook())
        .args(["fire", "--nodes", "2"])
        .output()
        .expect("cronhook-bench runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--database postgres"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn startup_runs() {
    // More than go through the API, so the bulk copy (and its count check) runs too.
    let result = run(&["startup", "--idle-jobs", "100"]);
    assert_fields(
        &result,
        "startup",
        &["ready_ms", "rss_ready_mib", "hwm_rss_mib"],
    );
}

#[test]
fn api_runs() {
    let result = run(&["api", "--requests", "20", "--executions", "3"]);
    assert_fields(
        &result,
        "api",
        &["create_per_s", "list_per_s", "listed_executions"],
    );
}

/// The store alone, with a little history before the measured seconds: every occurrence is
/// written and recorded (the scenario fails otherwise), and both stretches cost some CPU.
#[test]
fn store_runs() {
    let result = run(&[
        "store",
        "--jobs",
        "30",
        "--seconds",
        "2",
        "--history-seconds",
        "2",
    ]);
    assert_fields(
        &result,
        "store",
        &[
            "store_cpu_us_per_execution",
            "store_wall_us_per_execution",
            "bare_cpu_us_per_execution",
            "ratio_to_bare",
        ],
    );
    assert_eq!(result["executions"], 60, "{result}");
    // Read when 10 s of writes and the 2 s filing lag wait to be filed (the scenario checks
    // each page's executions itself).
    assert_eq!(result["history_page_unfiled_executions"], 360, "{result}");
    for field in [
        "store_cpu_us_per_execution",
        "bare_cpu_us_per_execution",
        "history_page_p50_ms",
        "history_page_max_ms",
    ] {
        assert!(
            result[field].as_f64().is_some_and(|cpu| cpu > 0.0),
            "{field} in {result}"
        );
    }
    if std::path::Path::new("/proc/self/io").exists() {
        assert!(
            result["store_written_kib_per_execution"]
                .as_f64()
                .is_some_and(|kib| kib > 0.0),
            "the store wrote its executions: {result}"
        );
    }
}

/// A run whose inputs would not fit in memory is refused before it starts, saying why.
#[test]
fn store_refuses_more_than_it_can_hold() {
    let output = Command::new(BENCH)
        .args(["store", "--jobs", "1000000", "--seconds", "10"])
        .output()
        .expect("cronhook-bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("lower --seconds"), "{stderr}");
}

/// A long history with one failed execution in it: both listings run, and the failed one is
/// found (the bench checks it is the only one listed).
#[test]
fn api_lists_a_long_history_by_status() {
    let result = run(&[
        "api",
        "--requests",
        "10",
        "--executions",
        "1",
        "--history-executions",
        "100000",
    ]);
    assert_fields(
        &result,
        "api",
        &[
            "history_list_per_s",
            "failed_list_per_s",
            "failed_list_p99_ms",
        ],
    );
    assert_eq!(result["history_executions"], 100_000, "{result}");
    assert_eq!(result["failed_listed"], 1, "{result}");
}

#[test]
fn tables_print_without_json() {
    let output = Command::new(BENCH)
        .args(["ceiling", "--duration", "0.2", "--concurrency", "2"])
        .output()
        .expect("cronhook-bench runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("requests_per_s"), "{stdout}");
}
