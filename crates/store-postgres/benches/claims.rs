//! What the PostgreSQL store's claims cost, with the opened specs cached from the claim before:
//! a scheduler's claim of 8 000 jobs due at once, as each second of 8 000 every-second jobs
//! claims them, and an executor's claim of 8 000 queued executions of 8 000 jobs, as an
//! executor-only node claims what scheduler-only nodes queued. The server (127.0.0.1:5432 unless
//! `CRONHOOK_TEST_PG_URL` says otherwise) runs on the same cores, so each figure is the claim's
//! whole round: statement, rows and specs.
//!
//! `cargo bench -p cronhook-store-postgres --bench claims -- --warm-up-time 2 --measurement-time 5`

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use cronhook_core::{Trigger, ids};
use cronhook_store::{Lease, NewExecution, Store, conformance};
use cronhook_store_postgres::PostgresStore;

const JOBS: usize = 8_000;

fn instant() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("instant")
        .to_utc()
}

/// `JOBS` jobs due at `instant()`, in a workspace of their own; with `queued`, one queued
/// execution of each, to run at `instant()`.
async fn seed(store: &PostgresStore, rich: bool, queued: bool) {
    let workspace = conformance::new_workspace(store).await;
    for index in 0..JOBS {
        let job = conformance::firing_job(&workspace, index, rich, instant());
        store.insert_job(&job).await.expect("a job");
        if queued {
            let execution = NewExecution {
                id: ids::new_id(ids::EXECUTION),
                workspace_id: workspace.id.clone(),
                job_id: job.id.clone(),
                scheduled_for: instant(),
                trigger: Trigger::Manual,
                run_at: instant(),
                lease: None,
            };
            store
                .insert_execution(&execution)
                .await
                .expect("an execution");
        }
    }
}

/// The specs the benches' jobs hold.
const KINDS: [(&str, bool); 2] = [
    ("plain specs (~230 bytes stored)", false),
    ("specs with 3 headers and a 1 KB body", true),
];

fn claim_due_jobs(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("claim of due jobs, 8 000 at once");
    group.sample_size(10);
    for (name, rich) in KINDS {
        // A database per kind, so each claim takes only its own jobs.
        let database = runtime.block_on(support::TestDatabase::create());
        let store = runtime.block_on(database.store());
        runtime.block_on(seed(&store, rich, false));
        let lease = Lease {
            node_id: "bench".into(),
            until: Utc::now() + TimeDelta::hours(1),
        };
        let until = instant() + TimeDelta::seconds(1);
        let claim = || async {
            // The node's own claims are its to take again, as each second's claim does.
            let due = store
                .claim_due_jobs(&lease, instant(), until, 10_000)
                .await
                .expect("claim");
            assert_eq!(due.len(), JOBS);
            due
        };
        // The first claim opens and caches every spec, as the first second of firing does.
        runtime.block_on(claim());
        group.bench_function(name, |b| b.iter(|| black_box(runtime.block_on(claim()))));
        runtime.block_on(store.close());
        runtime.block_on(database.drop_database());
    }
    group.finish();
}

fn claim_executions(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("claim of queued executions, 8 000 at once");
    group.sample_size(10);
    for (name, rich) in KINDS {
        let database = runtime.block_on(support::TestDatabase::create());
        let store = runtime.block_on(database.store());
        runtime.block_on(seed(&store, rich, true));
        // Each claim leases the executions until its own instant, so the next claim, a
        // millisecond later, takes them all again (as executions whose lease ran out).
        let mut now = instant();
        let mut claim = || {
            now += TimeDelta::milliseconds(1);
            let lease = Lease {
                node_id: "bench".into(),
                until: now,
            };
            let store = &store;
            async move {
                let claimed = store
                    .claim_executions(&lease, now, 10_000)
                    .await
                    .expect("claim");
                assert_eq!(claimed.len(), JOBS);
                claimed
            }
        };
        // The first claim opens and caches every spec.
        runtime.block_on(claim());
        group.bench_function(name, |b| b.iter(|| black_box(runtime.block_on(claim()))));
        runtime.block_on(store.close());
        runtime.block_on(database.drop_database());
    }
    group.finish();
}

criterion_group!(benches, claim_due_jobs, claim_executions);
criterion_main!(benches);
