//! The scheduler against a real SQLite file, stepped with a chosen `now` (no real waiting).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone as _, Utc};
use cronhook_core::{Job, JobSpec, ids};
use cronhook_scheduler::{LocalExecutor, Scheduler, SchedulerConfig};
use cronhook_store::{ClaimedExecution, ExecutionFilter, PageRequest, Store, Workspace};
use cronhook_store_sqlite::SqliteStore;
use tokio::sync::Notify;

async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let url = format!("sqlite://{}/s.db", dir.path().display());
    let store = SqliteStore::open(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, s)
        .single()
        .expect("valid instant")
}

async fn seed(store: &dyn Store, cron: &str, misfire: &str, next_run_at: DateTime<Utc>) -> Job {
    let workspace = Workspace {
        id: ids::new_id(ids::WORKSPACE),
        slug: ids::new_id("ws").replace('_', "-"),
        signing_secret: "whsec_c2VjcmV0".into(),
        previous_signing_secret: None,
        signing_secret_rotated_at: None,
        created_at: at(0, 0, 0),
    };
    store.create_workspace(&workspace).await.expect("workspace");
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "name": "j",
        "schedule": {"cron": cron},
        "request": {"url": "https://example.com/"},
        "misfire": misfire,
    }))
    .expect("spec");
    let job = Job {
        id: ids::new_id(ids::JOB),
        workspace_id: workspace.id,
        spec: spec.into(),
        next_run_at: Some(next_run_at),
        created_at: at(0, 0, 0),
        updated_at: at(0, 0, 0),
    };
    store.insert_job(&job).await.expect("job");
    job
}

fn scheduler(
    store: &Arc<dyn Store>,
    handed: Option<Arc<Mutex<Vec<ClaimedExecution>>>>,
) -> Scheduler {
    let local_executor = handed.map(|handed| LocalExecutor {
        node_id: "node-a".into(),
        lease: std::time::Duration::from_secs(30),
        submit: Arc::new(move |execution| handed.lock().expect("lock").push(execution)),
        cancel_job: Arc::new(|_| {}),
    });
    Scheduler::new(
        Arc::clone(store),
        SchedulerConfig {
            local_executor,
            ..SchedulerConfig::default()
        },
        Arc::new(Notify::new()),
    )
}

async fn executions(store: &dyn Store, job: &Job) -> Vec<cronhook_core::Execution> {
    store
        .list_executions(
            &job.workspace_id,
            &job.id,
            &ExecutionFilter::default(),
            &PageRequest {
                limit: 500,
                after: None,
            },
        )
        .await
        .expect("list")
        .items
}

#[tokio::test]
async fn two_schedulers_racing_on_one_occurrence_create_one_execution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let job = seed(store.as_ref(), "* * * * * *", "fire_once", at(1, 0, 0)).await;
    let due = store.due_jobs(at(1, 0, 0), 10).await.expect("due");
    assert_eq!(due.len(), 1);

    let mut first = scheduler(&store, None);
    let mut second = scheduler(&store, None);
    let (a, b) = tokio::join!(
        first.fire(due.clone(), at(1, 0, 0)),
        second.fire(due, at(1, 0, 0))
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(a.created + b.created, 1, "{a:?} {b:?}");
    assert_eq!(a.superseded + b.superseded, 1);
    assert_eq!(executions(store.as_ref(), &job).await.len(), 1);

    let advanced = store
        .job(&job.workspace_id, &job.id)
        .await
        .expect("read")
        .expect("job");
    assert_eq!(advanced.next_run_at, Some(at(1, 0, 1)));
}

#[tokio::test]
async fn created_executions_are_leased_and_handed_to_the_local_executor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let job = seed(store.as_ref(), "*/5 * * * * *", "fire_once", at(1, 0, 5)).await;
    let handed = Arc::new(Mutex::new(Vec::new()));
    let mut scheduler = scheduler(&store, Some(Arc::clone(&handed)));

    let due = store.due_jobs(at(1, 0, 10), 10).await.expect("due");
    // Not yet due at 01:00:04: nothing happens.
    let early = scheduler
        .fire(due.clone(), at(1, 0, 4))
        .await
        .expect("fire");
    assert_eq!(early.created, 0);
    let report = scheduler.fire(due, at(1, 0, 5)).await.expect("fire");
    assert_eq!(report.created, 1);

    let handed = handed.lock().expect("lock").clone();
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].job_id, job.id);
    assert_eq!(handed[0].scheduled_for, at(1, 0, 5));
    assert_eq!(handed[0].attempts_done, 0);
    // Leased to this node: another executor cannot claim it while the lease lives.
    let lease = cronhook_store::Lease {
        node_id: "node-b".into(),
        until: at(1, 1, 0),
    };
    let claimed = store
        .claim_executions(&lease, at(1, 0, 6), 10)
        .await
        .expect("claim");
    assert!(claimed.is_empty(), "{claimed:?}");
}

#[tokio::test]
async fn after_downtime_each_misfire_policy_does_what_it_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let skip = seed(store.as_ref(), "* * * * *", "skip", at(1, 0, 0)).await;
    let once = seed(store.as_ref(), "* * * * *", "fire_once", at(1, 0, 0)).await;
    let all = seed(store.as_ref(), "* * * * *", "fire_all", at(1, 0, 0)).await;
    let mut scheduler = scheduler(&store, None);

    // Down from 01:00 to 01:10:30: eleven minutes were missed (01:00 … 01:10).
    let now = at(1, 10, 30);
    let due = store.due_jobs(now, 10).await.expect("due");
    assert_eq!(due.len(), 3);
    let report = scheduler.fire(due, now).await.expect("fire");
    // skip leaves all eleven unfired, fire_once ten, fire_all none (under its limit of 100).
    assert_eq!(report.dropped, 11 + 10);
    assert_eq!(report.created, 1 + 11);

    assert!(executions(store.as_ref(), &skip).await.is_empty());
    let once_runs = executions(store.as_ref(), &once).await;
    assert_eq!(once_runs.len(), 1);
    assert_eq!(once_runs[0].scheduled_for, at(1, 10, 0));
    assert_eq!(once_runs[0].trigger, cronhook_core::Trigger::Catchup);
    let all_runs = executions(store.as_ref(), &all).await;
    assert_eq!(all_runs.len(), 11);
    assert!(
        all_runs
            .iter()
            .all(|e| e.trigger == cronhook_core::Trigger::Catchup)
    );

    for job in [&skip, &once, &all] {
        let job = store
            .job(&job.workspace_id, &job.id)
            .await
            .expect("read")
            .expect("job");
        assert_eq!(
            job.next_run_at,
            Some(at(1, 11, 0)),
            "every job resumes after now"
        );
    }
}

#[tokio::test]
async fn every_catch_up_execution_is_handed_over_with_the_jobs_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let all = seed(store.as_ref(), "* * * * *", "fire_all", at(1, 0, 0)).await;
    let handed = Arc::new(Mutex::new(Vec::new()));
    let mut scheduler = scheduler(&store, Some(Arc::clone(&handed)));

    // Down from 01:00 to 01:03:30: four occurrences were missed, materialized as one.
    let now = at(1, 3, 30);
    let due = store.due_jobs(now, 10).await.expect("due");
    let report = scheduler.fire(due, now).await.expect("fire");
    assert_eq!(report.created, 4);

    let handed = handed.lock().expect("lock").clone();
    let scheduled: Vec<DateTime<Utc>> = handed.iter().map(|e| e.scheduled_for).collect();
    assert_eq!(
        scheduled,
        vec![at(1, 0, 0), at(1, 1, 0), at(1, 2, 0), at(1, 3, 0)]
    );
    for execution in &handed {
        assert_eq!(execution.job_id, all.id);
        assert_eq!(execution.spec, all.spec);
    }
}

/// A deleted job's history, larger than a pruning batch, is purged whole by one pass of the
/// pruner, batch after batch with rests between, and nothing else is.
#[tokio::test]
async fn the_pruner_purges_a_deleted_jobs_history_batch_after_batch() {
    let dir = tempfile::TempDir::new().expect("dir");
    let store = store(&dir).await;
    let doomed = seed(store.as_ref(), "* * * * * *", "skip", at(1, 0, 0)).await;
    let kept = seed(store.as_ref(), "* * * * * *", "skip", at(1, 0, 0)).await;
    let history = u64::from(cronhook_scheduler::PRUNE_BATCH) * 2 + 37;
    let node = "node-a";
    let mut records = Vec::new();
    for (job, count) in [(&doomed, history), (&kept, 3)] {
        for second in 0..count {
            let scheduled_for = at(0, 0, 0) + chrono::Duration::seconds(second as i64);
            let execution = cronhook_store::NewExecution {
                id: ids::new_id(ids::EXECUTION),
                workspace_id: job.workspace_id.clone(),
                job_id: job.id.clone(),
                scheduled_for,
                trigger: cronhook_core::Trigger::Schedule,
                run_at: scheduled_for,
                lease: Some(cronhook_store::Lease {
                    node_id: node.into(),
                    until: scheduled_for + chrono::Duration::seconds(60),
                }),
            };
            store.insert_execution(&execution).await.expect("insert");
            records.push(cronhook_store::AttemptRecord {
                execution_id: execution.id,
                node_id: node.into(),
                attempt: cronhook_core::Attempt {
                    number: 1,
                    started_at: scheduled_for,
                    duration_ms: 1,
                    status_code: Some(200),
                    error: None,
                    response_headers: Default::default(),
                    response_body: None,
                    response_body_truncated: false,
                    redirect_location: None,
                    timing: Default::default(),
                },
                next: cronhook_store::NextStep::Finish {
                    status: cronhook_core::ExecutionStatus::Succeeded,
                },
            });
        }
    }
    let accepted = store.record_attempts(&records).await.expect("record");
    assert!(accepted.iter().all(|&ok| ok));

    assert!(
        store
            .delete_job(&doomed.workspace_id, &doomed.id)
            .await
            .expect("delete")
    );
    // Kept far longer than these executions' age: only the deleted history is pruned.
    let policy = cronhook_store::RetentionPolicy {
        succeeded_for: chrono::TimeDelta::days(36_500),
        failed_for: chrono::TimeDelta::days(36_500),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let pruned = cronhook_scheduler::prune_all(store.as_ref(), &policy, &shutdown)
        .await
        .expect("prune");
    assert_eq!(pruned, history, "the whole history, in one pass");
    assert_eq!(
        cronhook_scheduler::prune_all(store.as_ref(), &policy, &shutdown)
            .await
            .expect("prune again"),
        0
    );
    assert_eq!(executions(store.as_ref(), &kept).await.len(), 3);
}
