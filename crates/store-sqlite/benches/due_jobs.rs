//! What reading the due jobs costs the SQLite store: 16 000 jobs due at once, as each second of
//! 16 000 every-second jobs reads them, with their opened specs cached from the pass before.
//!
//! `cargo bench -p cronhook-store-sqlite --bench due_jobs -- --warm-up-time 2 --measurement-time 5`

use std::hint::black_box;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use cronhook_store::{Store, conformance};
use cronhook_store_sqlite::SqliteStore;

const JOBS: usize = 16_000;

fn instant() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("instant")
        .to_utc()
}

/// A fresh store holding `JOBS` jobs due at `instant()`.
async fn seeded(dir: &tempfile::TempDir, rich: bool) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("due.db").display());
    let store = SqliteStore::open(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    let workspace = conformance::new_workspace(&store).await;
    for index in 0..JOBS {
        let job = conformance::firing_job(&workspace, index, rich, instant());
        store.insert_job(&job).await.expect("a job");
    }
    store
}

fn due_jobs(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("due jobs, 16 000 at once");
    group.sample_size(10);
    for (name, rich) in [
        ("plain specs (~230 bytes stored)", false),
        ("specs with 3 headers and a 1 KB body", true),
    ] {
        let dir = tempfile::TempDir::new().expect("a directory");
        let store = runtime.block_on(seeded(&dir, rich));
        let until = instant() + TimeDelta::seconds(1);
        let read = || async {
            let due = store.due_jobs(until, 20_000).await.expect("due jobs");
            assert_eq!(due.len(), JOBS);
            due
        };
        // The first read opens and caches every spec, as the first second of firing does.
        runtime.block_on(read());
        group.bench_function(name, |b| b.iter(|| black_box(runtime.block_on(read()))));
    }
    group.finish();
}

criterion_group!(benches, due_jobs);
criterion_main!(benches);
