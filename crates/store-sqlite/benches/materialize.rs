//! What writing a second's occurrences costs the SQLite store: 8 000 every-second jobs, each
//! advanced and given its leased execution, in the scheduler's batches of 1 000. Each iteration
//! writes the next second, then (untimed) records each execution's answer, so the history grows
//! and the unfinished executions do not, as while the jobs fire.
//!
//! `cargo bench -p cronhook-store-sqlite --bench materialize -- --warm-up-time 2 --measurement-time 5`

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use cronhook_core::Job;
use cronhook_store::{Materialized, Store, conformance};
use cronhook_store_sqlite::SqliteStore;

const JOBS: usize = 8_000;
/// The node the executions are leased to and recorded by.
const NODE: &str = "bench-node";
/// The scheduler's batch (`SchedulerConfig::batch_size`).
const BATCH: usize = 1_000;

fn instant() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("instant")
        .to_utc()
}

/// A fresh store holding `JOBS` jobs due at `instant()`, and the jobs.
async fn seeded(dir: &tempfile::TempDir) -> (SqliteStore, Vec<Job>) {
    let url = format!("sqlite://{}", dir.path().join("materialize.db").display());
    let store = SqliteStore::open(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    let workspace = conformance::new_workspace(&store).await;
    let mut jobs = Vec::with_capacity(JOBS);
    for index in 0..JOBS {
        let job = conformance::firing_job(&workspace, index, false, instant());
        store.insert_job(&job).await.expect("a job");
        jobs.push(job);
    }
    (store, jobs)
}

fn materialize(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("a second of 8 000 every-second jobs");
    group.sample_size(10);
    let dir = tempfile::TempDir::new().expect("a directory");
    let (store, jobs) = runtime.block_on(seeded(&dir));
    let mut second = 0;
    group.bench_function("materialized in batches of 1 000", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let written = conformance::firing_occurrences(
                    &jobs,
                    instant() + TimeDelta::seconds(second),
                    NODE,
                );
                second += 1;
                let start = Instant::now();
                runtime.block_on(async {
                    for batch in written.chunks(BATCH) {
                        let outcomes = store.materialize(batch).await.expect("materialize");
                        assert!(outcomes.iter().all(|o| *o == Materialized::Created));
                    }
                });
                spent += start.elapsed();
                runtime.block_on(async {
                    for records in conformance::succeeded_answers(&written, NODE).chunks(2_000) {
                        let accepted = store.record_attempts(records).await.expect("record");
                        assert!(accepted.iter().all(|accepted| *accepted));
                    }
                });
            }
            spent
        });
    });
    group.finish();
}

criterion_group!(benches, materialize);
criterion_main!(benches);
