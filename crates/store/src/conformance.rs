//! The behaviour every `Store` must show, as checks an implementation's tests call.
//!
//! Each check takes `&dyn Store`, creates its own workspaces (unique slugs), and panics on the
//! first difference. Checks may share one database, with one caveat: claiming is global by design
//! (an executor claims across workspaces), so the checks that claim use instants in the distant
//! past, filter what they get to their own workspace, and delete their jobs at the end; run them
//! one at a time (as [`run_all`] does), not concurrently with each other.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use cronhook_core::{
    Attempt, AttemptError, Concurrency, ErrorKind, ExecutionStatus, Job, JobSpec, Timing, Trigger,
    ids,
};

use crate::{
    ApiKey, AttemptRecord, ClaimedExecution, ExecutionFilter, Lease, Materialized, NewExecution,
    NextStep, Occurrence, Page, PageRequest, Store, StoreError, User, Workspace,
};

/// Runs every check, one after the other, against one store.
pub async fn run_all(store: &dyn Store) {
    jobs_round_trip(store).await;
    names_are_unique_per_workspace(store).await;
    workspaces_do_not_see_each_other(store).await;
    pagination_walks_every_item_once(store).await;
    materialize_is_exactly_once(store).await;
    materialize_skips_when_the_job_changed(store).await;
    large_batches_are_written_whole(store).await;
    edits_discard_prepared_executions(store).await;
    forbid_records_skipped(store).await;
    replace_cancels_unfinished(store).await;
    retention_prunes_by_age_status_and_keep_last(store).await;
    keep_last_pruning_reaches_every_job_in_small_batches(store).await;
    released_leases_are_taken_over_at_once(store).await;
    released_prepared_executions_wait_for_their_instant(store).await;
    nodes_report_themselves(store).await;
    the_database_clock_is_read_and_followed(store).await;
    insert_execution_refuses_duplicates(store).await;
    due_jobs_come_in_firing_order(store).await;
    due_jobs_read_many_whole_and_in_order(store).await;
    due_jobs_follow_every_edit(store).await;
    claim_takes_each_execution_once(store).await;
    expired_leases_are_taken_over_and_flagged_interrupted(store).await;
    stale_results_are_fenced_out(store).await;
    retrying_keeps_the_lease_and_run_at(store).await;
    leases_are_renewed(store).await;
    executions_list_newest_first_with_attempts_and_status_filter(store).await;
    history_follows_the_schedule_and_pages_by_instant(store).await;
    histories_of_each_status_page_newest_first(store).await;
    delete_cascades(store).await;
    deleted_jobs_leave_nothing_to_claim_and_their_history_is_pruned(store).await;
    signing_secret_rotation(store).await;
    api_keys_and_users(store).await;
}

// Helpers.

/// Now, truncated to the millisecond (what every store keeps at least).
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// Midnight UTC on 1 January of `year`: the distant-past instants of the checks that claim or
/// read due jobs, which are global, so they stay clear of every other check's rows.
fn distant_past(year: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

/// A workspace of its own (a unique slug), created in `store`.
pub async fn new_workspace(store: &dyn Store) -> Workspace {
    let id = ids::new_id(ids::WORKSPACE);
    let workspace = Workspace {
        slug: format!("ws-{}", &id[4..]),
        signing_secret: format!("whsec_{}", &id[4..]),
        previous_signing_secret: None,
        signing_secret_rotated_at: None,
        created_at: now(),
        id,
    };
    store
        .create_workspace(&workspace)
        .await
        .expect("create a workspace");
    workspace
}

/// A minimal spec, in the API's own JSON form.
fn spec(name: &str) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "schedule": {"cron": "*/5 * * * *"},
        "request": {"url": "https://example.com/hook"}
    }))
    .expect("a minimal spec parses")
}

/// A spec with every field away from its default.
fn rich_spec(name: &str) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "schedule": {"cron": "0 3 * * 1-5", "timezone": "Europe/Berlin"},
        "request": {
            "method": "POST",
            "url": "https://example.com/nightly?x=1",
            "headers": {"authorization": "Bearer t", "x-trace": "ü"},
            "body": "{\"hello\": \"wörld\"}",
            "timeout_ms": 5000,
            "follow_redirects": true
        },
        "retry": {"max_attempts": 5, "initial_delay_ms": 10, "max_delay_ms": 100, "jitter": false},
        "success": {"status": [200, 204], "body_regex": "ok", "max_duration_ms": 900},
        "concurrency": "forbid",
        "misfire": "fire_all",
        "alerts": {"after_consecutive_failures": 3, "on_recovery": false, "channels": ["chn_1"]},
        "auto_disable_after_failures": 10,
        "paused": false
    }))
    .expect("a rich spec parses")
}

/// The `index`th of the store benches' every-second jobs, due at `due`, calling a URL of its
/// own, as a deployment's jobs mostly do. `rich` makes it a POST with three headers and a
/// 1 KB body, so a spec's size shows in what reading it costs.
pub fn firing_job(workspace: &Workspace, index: usize, rich: bool, due: DateTime<Utc>) -> Job {
    let mut spec = serde_json::json!({
        "name": format!("fire-{index}"),
        "schedule": {"cron": "* * * * * *"},
        "request": {"url": format!("http://127.0.0.1:40000/fire/{index}")},
    });
    if rich {
        spec["request"]["method"] = "POST".into();
        spec["request"]["headers"] = serde_json::json!({
            "content-type": "application/json",
            "x-team": "payments",
            "x-trace": "cronhook",
        });
        spec["request"]["body"] = format!("{{\"report\": \"{}\"}}", "x".repeat(1_000)).into();
    }
    let spec: JobSpec = serde_json::from_value(spec).expect("a valid spec");
    Job {
        id: ids::new_id(ids::JOB),
        workspace_id: workspace.id.clone(),
        spec: spec.into(),
        next_run_at: Some(due),
        created_at: due,
        updated_at: due,
    }
}

/// Each of `jobs`' occurrence at `due`, leased to `node` as a scheduler leases the executions
/// it hands to its own executor: what the store benches write for one second of every-second
/// jobs.
pub fn firing_occurrences(jobs: &[Job], due: DateTime<Utc>, node: &str) -> Vec<Occurrence> {
    jobs.iter()
        .map(|job| Occurrence {
            executions: vec![NewExecution {
                id: ids::new_id(ids::EXECUTION),
                workspace_id: job.workspace_id.clone(),
                job_id: job.id.clone(),
                scheduled_for: due,
                trigger: Trigger::Schedule,
                run_at: due,
                lease: Some(Lease {
                    node_id: node.to_owned(),
                    until: due + secs(30),
                }),
            }],
            job_id: job.id.clone(),
            workspace_id: job.workspace_id.clone(),
            expected_next_run_at: due,
            new_next_run_at: Some(due + secs(1)),
            concurrency: Concurrency::Allow,
        })
        .collect()
}

/// A succeeded first attempt of each execution of `occurrences`, recorded by `node`, with the
/// answer a small target gives (`ok`, and three headers): what the store benches record for
/// one second of every-second jobs.
pub fn succeeded_answers(occurrences: &[Occurrence], node: &str) -> Vec<AttemptRecord> {
    occurrences
        .iter()
        .flat_map(|occurrence| &occurrence.executions)
        .map(|execution| AttemptRecord {
            execution_id: execution.id.clone(),
            node_id: node.to_owned(),
            attempt: Attempt {
                number: 1,
                started_at: execution.run_at,
                duration_ms: 1,
                status_code: Some(200),
                error: None,
                response_headers: BTreeMap::from([
                    ("content-length".to_owned(), "2".to_owned()),
                    (
                        "content-type".to_owned(),
                        "text/plain; charset=utf-8".to_owned(),
                    ),
                    (
                        "date".to_owned(),
                        "Thu, 01 Jan 2026 00:00:00 GMT".to_owned(),
                    ),
                ]),
                response_body: Some("ok".to_owned()),
                response_body_truncated: false,
                redirect_location: None,
                timing: Timing::default(),
            },
            next: NextStep::Finish {
                status: ExecutionStatus::Succeeded,
            },
        })
        .collect()
}

fn new_job(workspace: &Workspace, name: &str, next_run_at: Option<DateTime<Utc>>) -> Job {
    let at = now();
    Job {
        id: ids::new_id(ids::JOB),
        workspace_id: workspace.id.clone(),
        spec: spec(name).into(),
        next_run_at,
        created_at: at,
        updated_at: at,
    }
}

async fn insert_job(
    store: &dyn Store,
    workspace: &Workspace,
    name: &str,
    next_run_at: Option<DateTime<Utc>>,
) -> Job {
    let job = new_job(workspace, name, next_run_at);
    store.insert_job(&job).await.expect("insert a job");
    job
}

fn new_execution(job: &Job, scheduled_for: DateTime<Utc>, lease: Option<Lease>) -> NewExecution {
    NewExecution {
        id: ids::new_id(ids::EXECUTION),
        workspace_id: job.workspace_id.clone(),
        job_id: job.id.clone(),
        scheduled_for,
        trigger: Trigger::Schedule,
        run_at: scheduled_for,
        lease,
    }
}

async fn insert_execution(
    store: &dyn Store,
    job: &Job,
    scheduled_for: DateTime<Utc>,
    lease: Option<Lease>,
) -> NewExecution {
    let execution = new_execution(job, scheduled_for, lease);
    store
        .insert_execution(&execution)
        .await
        .expect("insert an execution");
    execution
}

fn lease(node_id: &str, until: DateTime<Utc>) -> Lease {
    Lease {
        node_id: node_id.to_owned(),
        until,
    }
}

/// A node id no other check uses.
fn node(name: &str) -> String {
    format!("{name}-{}", ids::new_id("node"))
}

fn answered(number: u32, started_at: DateTime<Utc>, status_code: u16) -> Attempt {
    Attempt {
        number,
        started_at,
        duration_ms: 120,
        status_code: Some(status_code),
        error: None,
        response_headers: BTreeMap::from([
            ("content-type".to_owned(), "text/plain".to_owned()),
            ("x-answer".to_owned(), number.to_string()),
        ]),
        response_body: Some(format!("answer {number} ✓")),
        response_body_truncated: number.is_multiple_of(2),
        redirect_location: (status_code / 100 == 3).then(|| "https://example.com/next".to_owned()),
        timing: Timing {
            dns_ms: Some(1),
            connect_ms: Some(2),
            tls_ms: None,
            ttfb_ms: Some(100),
            total_ms: 120,
        },
    }
}

fn errored(number: u32, started_at: DateTime<Utc>, kind: ErrorKind) -> Attempt {
    Attempt {
        number,
        started_at,
        duration_ms: 30_000,
        status_code: None,
        error: Some(AttemptError {
            kind,
            message: format!("{kind:?} on attempt {number}"),
        }),
        response_headers: BTreeMap::new(),
        response_body: None,
        response_body_truncated: false,
        redirect_location: None,
        timing: Timing {
            total_ms: 30_000,
            ..Timing::default()
        },
    }
}

fn finish(
    execution_id: &str,
    node_id: &str,
    attempt: Attempt,
    status: ExecutionStatus,
) -> AttemptRecord {
    AttemptRecord {
        execution_id: execution_id.to_owned(),
        node_id: node_id.to_owned(),
        attempt,
        next: NextStep::Finish { status },
    }
}

fn retry(
    execution_id: &str,
    node_id: &str,
    attempt: Attempt,
    run_at: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> AttemptRecord {
    AttemptRecord {
        execution_id: execution_id.to_owned(),
        node_id: node_id.to_owned(),
        attempt,
        next: NextStep::Retry {
            run_at,
            lease_until,
        },
    }
}

async fn claim_own(
    store: &dyn Store,
    workspace: &Workspace,
    node_id: &str,
    lease_until: DateTime<Utc>,
    at: DateTime<Utc>,
    limit: u32,
) -> Vec<ClaimedExecution> {
    store
        .claim_executions(&lease(node_id, lease_until), at, limit)
        .await
        .expect("claim executions")
        .into_iter()
        .filter(|claimed| claimed.workspace_id == workspace.id)
        .collect()
}

async fn record(store: &dyn Store, records: &[AttemptRecord]) -> Vec<bool> {
    store
        .record_attempts(records)
        .await
        .expect("record attempts")
}

async fn execution_status(store: &dyn Store, workspace: &Workspace, id: &str) -> ExecutionStatus {
    store
        .execution(&workspace.id, id)
        .await
        .expect("read an execution")
        .expect("the execution exists")
        .status
}

async fn all_executions(
    store: &dyn Store,
    workspace: &Workspace,
    job: &Job,
) -> Vec<cronhook_core::Execution> {
    executions_page(store, workspace, job, None, 1000, None)
        .await
        .items
}

/// One page of a job's history, of one status when given.
async fn executions_page(
    store: &dyn Store,
    workspace: &Workspace,
    job: &Job,
    status: Option<ExecutionStatus>,
    limit: u32,
    after: Option<String>,
) -> Page<cronhook_core::Execution> {
    store
        .list_executions(
            &workspace.id,
            &job.id,
            &ExecutionFilter { status },
            &PageRequest { limit, after },
        )
        .await
        .expect("list executions")
}

fn occurrence(
    job: &Job,
    expected: DateTime<Utc>,
    new: Option<DateTime<Utc>>,
    concurrency: Concurrency,
) -> Occurrence {
    Occurrence {
        executions: vec![new_execution(job, expected, None)],
        job_id: job.id.clone(),
        workspace_id: job.workspace_id.clone(),
        expected_next_run_at: expected,
        new_next_run_at: new,
        concurrency,
    }
}

async fn materialize(store: &dyn Store, occurrences: &[Occurrence]) -> Vec<Materialized> {
    store
        .materialize(occurrences)
        .await
        .expect("materialize occurrences")
}

async fn read_job(store: &dyn Store, workspace: &Workspace, job: &Job) -> Job {
    store
        .job(&workspace.id, &job.id)
        .await
        .expect("read a job")
        .expect("the job exists")
}

async fn delete_jobs(store: &dyn Store, workspace: &Workspace, jobs: &[&Job]) {
    for job in jobs {
        store
            .delete_job(&workspace.id, &job.id)
            .await
            .expect("delete a job");
    }
}

// Checks.

/// A job reads back exactly as written, after insert, update and pause.
pub async fn jobs_round_trip(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let mut job = new_job(&workspace, "nightly", Some(t + secs(60)));
    store.insert_job(&job).await.expect("insert a job");
    assert_eq!(
        store.job(&workspace.id, &job.id).await.expect("read a job"),
        Some(job.clone())
    );

    job.spec = rich_spec("nightly-report").into();
    job.next_run_at = None;
    job.updated_at = t + secs(1);
    store.update_job(&job).await.expect("update a job");
    assert_eq!(
        store.job(&workspace.id, &job.id).await.expect("read a job"),
        Some(job.clone())
    );

    std::sync::Arc::make_mut(&mut job.spec).paused = true;
    job.next_run_at = Some(t + secs(3600));
    store.update_job(&job).await.expect("pause by update");
    let read = store
        .job(&workspace.id, &job.id)
        .await
        .expect("read a job")
        .expect("the job exists");
    assert_eq!(read, job);

    std::sync::Arc::make_mut(&mut job.spec).paused = false;
    store.update_job(&job).await.expect("resume by update");
    assert!(
        store
            .pause_job(&workspace.id, &job.id, t + secs(2))
            .await
            .expect("pause a job")
    );
    let paused = store
        .job(&workspace.id, &job.id)
        .await
        .expect("read a job")
        .expect("the job exists");
    assert!(paused.spec.paused, "pause_job pauses");
    assert_eq!(paused.next_run_at, None, "a paused job has nothing to fire");
    assert_eq!(paused.updated_at, t + secs(2));
    assert_eq!(paused.spec.name, "nightly-report");

    let missing = ids::new_id(ids::JOB);
    assert!(
        !store
            .pause_job(&workspace.id, &missing, t)
            .await
            .expect("pause a missing job")
    );
    assert_eq!(
        store.job(&workspace.id, &missing).await.expect("read"),
        None
    );
    let mut ghost = new_job(&workspace, "ghost", None);
    ghost.id = missing;
    assert!(matches!(
        store.update_job(&ghost).await,
        Err(StoreError::NotFound)
    ));
}

/// Job names are unique within a workspace, and only there.
pub async fn names_are_unique_per_workspace(store: &dyn Store) {
    let first = new_workspace(store).await;
    let second = new_workspace(store).await;
    let job = insert_job(store, &first, "backup", None).await;

    let clash = new_job(&first, "backup", None);
    match store.insert_job(&clash).await {
        Err(StoreError::Conflict { what }) => {
            assert!(
                what.contains("backup"),
                "the conflict names the job: {what}"
            )
        }
        other => panic!("a duplicate name must conflict, got {other:?}"),
    }
    assert_eq!(store.job(&first.id, &clash.id).await.expect("read"), None);

    insert_job(store, &second, "backup", None).await;

    let mut other = insert_job(store, &first, "restore", None).await;
    std::sync::Arc::make_mut(&mut other.spec).name = "backup".to_owned();
    assert!(matches!(
        store.update_job(&other).await,
        Err(StoreError::Conflict { .. })
    ));
    let mut renamed = job.clone();
    std::sync::Arc::make_mut(&mut renamed.spec).name = "backup-2".to_owned();
    store.update_job(&renamed).await.expect("rename a job");
    store
        .update_job(&other)
        .await
        .expect("the freed name can be taken");
}

/// Another workspace's ids behave as absent everywhere.
pub async fn workspaces_do_not_see_each_other(store: &dyn Store) {
    let owner = new_workspace(store).await;
    let stranger = new_workspace(store).await;
    let t = now();
    let job = insert_job(store, &owner, "private", Some(t + secs(60))).await;
    let execution = insert_execution(store, &job, t, None).await;

    assert_eq!(store.job(&stranger.id, &job.id).await.expect("read"), None);
    assert!(
        store
            .list_jobs(
                &stranger.id,
                &PageRequest {
                    limit: 10,
                    after: None
                }
            )
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert_eq!(
        store
            .execution(&stranger.id, &execution.id)
            .await
            .expect("read"),
        None
    );
    assert!(
        store
            .list_executions(
                &stranger.id,
                &job.id,
                &ExecutionFilter::default(),
                &PageRequest {
                    limit: 10,
                    after: None
                }
            )
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let mut hijack = job.clone();
    hijack.workspace_id = stranger.id.clone();
    std::sync::Arc::make_mut(&mut hijack.spec).name = "hijacked".to_owned();
    assert!(matches!(
        store.update_job(&hijack).await,
        Err(StoreError::NotFound)
    ));
    let mut foreign = new_execution(&job, t + secs(1), None);
    foreign.workspace_id = stranger.id.clone();
    assert!(
        store.insert_execution(&foreign).await.is_err(),
        "an execution cannot be created for another workspace's job"
    );
    // Nor materialized, in a batch or alone (each overlap policy): the job is not advanced, so
    // its own occurrence is not lost.
    let due = job.next_run_at.expect("the job is scheduled");
    for concurrency in [
        Concurrency::Allow,
        Concurrency::Forbid,
        Concurrency::Replace,
    ] {
        let mut foreign = occurrence(&job, due, Some(due + secs(60)), concurrency);
        foreign.workspace_id = stranger.id.clone();
        foreign.executions[0].workspace_id = stranger.id.clone();
        assert_eq!(
            materialize(store, &[foreign]).await,
            vec![Materialized::Superseded],
            "{concurrency:?}"
        );
        let stored = store.job(&owner.id, &job.id).await.expect("read");
        assert_eq!(
            stored.and_then(|job| job.next_run_at),
            Some(due),
            "another workspace's occurrence left the job's schedule alone ({concurrency:?})"
        );
    }
    assert!(
        !store
            .pause_job(&stranger.id, &job.id, t)
            .await
            .expect("pause")
    );
    assert!(
        !store
            .delete_job(&stranger.id, &job.id)
            .await
            .expect("delete")
    );

    let still = store
        .job(&owner.id, &job.id)
        .await
        .expect("read")
        .expect("the owner's job is untouched");
    assert_eq!(still, job);
    assert_eq!(all_executions(store, &owner, &job).await.len(), 1);
}

/// Walking pages with `next_after` yields every job (id order) and execution (newest first)
/// exactly once.
pub async fn pagination_walks_every_item_once(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let mut expected_jobs = Vec::new();
    for n in 0..7 {
        expected_jobs.push(
            insert_job(store, &workspace, &format!("job-{n}"), None)
                .await
                .id,
        );
    }
    for limit in [1, 3, 7, 10] {
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..20 {
            let page = store
                .list_jobs(&workspace.id, &PageRequest { limit, after })
                .await
                .expect("list jobs");
            assert!(page.items.len() <= limit as usize);
            seen.extend(page.items.iter().map(|job| job.id.clone()));
            after = page.next_after;
            if after.is_none() {
                break;
            }
        }
        assert_eq!(after, None, "the walk ends");
        assert_eq!(
            seen, expected_jobs,
            "jobs in id order, each once (limit {limit})"
        );
    }

    let job = insert_job(store, &workspace, "busy", None).await;
    let t = now();
    let mut expected_executions = Vec::new();
    for n in 0..5 {
        expected_executions.push(insert_execution(store, &job, t + secs(n), None).await.id);
    }
    expected_executions.reverse();
    for limit in [1, 2, 5, 6] {
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..20 {
            let page = store
                .list_executions(
                    &workspace.id,
                    &job.id,
                    &ExecutionFilter::default(),
                    &PageRequest { limit, after },
                )
                .await
                .expect("list executions");
            assert!(page.items.len() <= limit as usize);
            seen.extend(page.items.iter().map(|execution| execution.id.clone()));
            after = page.next_after;
            if after.is_none() {
                break;
            }
        }
        assert_eq!(after, None, "the walk ends");
        assert_eq!(
            seen, expected_executions,
            "executions newest first, each once (limit {limit})"
        );
    }
}

/// The same occurrence materialized twice, in turn or at once, makes one execution.
pub async fn materialize_is_exactly_once(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let job = insert_job(store, &workspace, "once", Some(t)).await;
    let first = occurrence(&job, t, Some(t + secs(300)), Concurrency::Allow);
    let second = occurrence(&job, t, Some(t + secs(300)), Concurrency::Allow);
    assert_eq!(
        materialize(store, std::slice::from_ref(&first)).await,
        [Materialized::Created]
    );
    assert_eq!(
        materialize(store, &[second]).await,
        [Materialized::Superseded]
    );
    let executions = all_executions(store, &workspace, &job).await;
    assert_eq!(executions.len(), 1);
    let execution = &executions[0];
    assert_eq!(execution.id, first.executions[0].id);
    assert_eq!(execution.scheduled_for, t);
    assert_eq!(execution.status, ExecutionStatus::Queued);
    assert_eq!(execution.trigger, Trigger::Schedule);
    let advanced = store
        .job(&workspace.id, &job.id)
        .await
        .expect("read")
        .expect("the job exists");
    assert_eq!(advanced.next_run_at, Some(t + secs(300)));

    // Two schedulers racing.
    let raced = insert_job(store, &workspace, "raced", Some(t)).await;
    let a = [occurrence(
        &raced,
        t,
        Some(t + secs(60)),
        Concurrency::Allow,
    )];
    let b = [occurrence(
        &raced,
        t,
        Some(t + secs(60)),
        Concurrency::Allow,
    )];
    let (a, b) = tokio::join!(store.materialize(&a), store.materialize(&b));
    let mut outcomes = [a.expect("materialize")[0], b.expect("materialize")[0]];
    outcomes.sort_by_key(|outcome| *outcome == Materialized::Superseded);
    assert_eq!(outcomes, [Materialized::Created, Materialized::Superseded]);
    assert_eq!(all_executions(store, &workspace, &raced).await.len(), 1);

    // A catch-up occurrence with several executions creates them all.
    let catchup = insert_job(store, &workspace, "catchup", Some(t)).await;
    let mut executions = Vec::new();
    for n in 0..3 {
        let mut execution = new_execution(&catchup, t + secs(n * 60), None);
        execution.trigger = Trigger::Catchup;
        executions.push(execution);
    }
    let several = Occurrence {
        executions,
        job_id: catchup.id.clone(),
        workspace_id: catchup.workspace_id.clone(),
        expected_next_run_at: t,
        new_next_run_at: None,
        concurrency: Concurrency::Allow,
    };
    assert_eq!(
        materialize(store, &[several]).await,
        [Materialized::Created]
    );
    let created = all_executions(store, &workspace, &catchup).await;
    assert_eq!(created.len(), 3);
    assert!(created.iter().all(|e| e.trigger == Trigger::Catchup));
    let done = store
        .job(&workspace.id, &catchup.id)
        .await
        .expect("read")
        .expect("the job exists");
    assert_eq!(done.next_run_at, None, "nothing left to fire");
}

/// Batches larger than any one statement a store binds (hundreds of occurrences and records,
/// with stale and superseded ones mixed in) are written whole, each outcome in its place.
pub async fn large_batches_are_written_whole(store: &dyn Store) {
    const JOBS: usize = 300;
    let workspace = new_workspace(store).await;
    let node_id = node("batch");
    let t = now() + secs(86_400);
    let mut jobs = Vec::with_capacity(JOBS);
    for n in 0..JOBS {
        jobs.push(insert_job(store, &workspace, &format!("batch-{n}"), Some(t)).await);
    }
    let held = lease(&node_id, t + secs(600));
    // Every tenth of the rows past the first 256 expects a `next_run_at` the job does not have:
    // superseded. SQLite binds at most 256 rows a statement, so its first chunk changes every
    // row and a later one does not (the records below are refused in every chunk).
    let superseded = |n: usize| n >= 256 && n % 10 == 9;
    let occurrences: Vec<Occurrence> = jobs
        .iter()
        .enumerate()
        .map(|(n, job)| {
            let expected = if superseded(n) { t + secs(1) } else { t };
            let mut occurrence = occurrence(job, expected, Some(t + secs(60)), Concurrency::Allow);
            occurrence.executions[0].lease = Some(held.clone());
            occurrence
        })
        .collect();
    let outcomes = materialize(store, &occurrences).await;
    for (n, outcome) in outcomes.iter().enumerate() {
        let expected = if superseded(n) {
            Materialized::Superseded
        } else {
            Materialized::Created
        };
        assert_eq!(*outcome, expected, "occurrence {n}");
    }

    // Odd ones retry, even ones finish; every seventh comes from a node without the lease.
    let created: Vec<(usize, &Occurrence)> = occurrences
        .iter()
        .enumerate()
        .filter(|(n, _)| !superseded(*n))
        .collect();
    let records: Vec<AttemptRecord> = created
        .iter()
        .map(|(n, occurrence)| {
            let id = &occurrence.executions[0].id;
            let from = if n % 7 == 0 { "another-node" } else { &node_id };
            let mut attempt = answered(1, t, 200);
            attempt.response_body = Some(format!("body of {n} with \"quotes\" and ünïcode"));
            if n % 2 == 1 {
                retry(id, from, attempt, t + secs(5), t + secs(600))
            } else {
                finish(id, from, attempt, ExecutionStatus::Succeeded)
            }
        })
        .collect();
    let accepted = record(store, &records).await;
    assert_eq!(accepted.len(), records.len());
    for ((n, occurrence), accepted) in created.iter().zip(&accepted) {
        assert_eq!(*accepted, n % 7 != 0, "record of occurrence {n}");
        let stored = store
            .execution(&workspace.id, &occurrence.executions[0].id)
            .await
            .expect("read an execution")
            .expect("the execution exists");
        let expected_status = match (n % 7 == 0, n % 2 == 1) {
            (true, _) => ExecutionStatus::Running,
            (false, true) => ExecutionStatus::Retrying,
            (false, false) => ExecutionStatus::Succeeded,
        };
        assert_eq!(stored.status, expected_status, "occurrence {n}");
        if n % 7 == 0 {
            assert!(
                stored.attempts.is_empty(),
                "a refused record leaves no attempt"
            );
        } else {
            assert_eq!(stored.attempts.len(), 1, "occurrence {n}");
            assert_eq!(
                stored.attempts[0].response_body.as_deref(),
                Some(format!("body of {n} with \"quotes\" and ünïcode").as_str())
            );
            assert_eq!(
                stored.attempts[0].response_headers,
                answered(1, t, 200).response_headers
            );
        }
    }
    let job_refs: Vec<&Job> = jobs.iter().collect();
    delete_jobs(store, &workspace, &job_refs).await;
}

/// An occurrence whose job was edited, paused or deleted since it was read writes nothing;
/// outcomes come back one per occurrence, in order.
pub async fn materialize_skips_when_the_job_changed(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let edited = insert_job(store, &workspace, "edited", Some(t)).await;
    let paused = insert_job(store, &workspace, "paused", Some(t)).await;
    let deleted = insert_job(store, &workspace, "deleted", Some(t)).await;
    let fine = insert_job(store, &workspace, "fine", Some(t)).await;

    let mut edit = edited.clone();
    edit.next_run_at = Some(t + secs(30));
    edit.updated_at = t + secs(1);
    store.update_job(&edit).await.expect("edit a job");
    assert!(
        store
            .pause_job(&workspace.id, &paused.id, t)
            .await
            .expect("pause")
    );
    assert!(
        store
            .delete_job(&workspace.id, &deleted.id)
            .await
            .expect("delete")
    );

    let outcomes = materialize(
        store,
        &[
            occurrence(&edited, t, Some(t + secs(60)), Concurrency::Allow),
            occurrence(&fine, t, Some(t + secs(60)), Concurrency::Allow),
            occurrence(&paused, t, Some(t + secs(60)), Concurrency::Allow),
            occurrence(&deleted, t, Some(t + secs(60)), Concurrency::Allow),
        ],
    )
    .await;
    assert_eq!(
        outcomes,
        [
            Materialized::Superseded,
            Materialized::Created,
            Materialized::Superseded,
            Materialized::Superseded
        ]
    );
    assert!(all_executions(store, &workspace, &edited).await.is_empty());
    assert!(all_executions(store, &workspace, &paused).await.is_empty());
    assert_eq!(all_executions(store, &workspace, &fine).await.len(), 1);
    assert_eq!(
        read_job(store, &workspace, &edited).await.next_run_at,
        Some(t + secs(30)),
        "the edit stands"
    );
    assert_eq!(read_job(store, &workspace, &paused).await.next_run_at, None);
    assert_eq!(
        read_job(store, &workspace, &fine).await.next_run_at,
        Some(t + secs(60))
    );
}

/// An execution prepared ahead of its instant (created leased, not started) is discarded by an
/// edit that moves the job's next occurrence or pauses it, and kept by one that does not (a
/// rename keeps `next_run_at` as read, already advanced past the prepared occurrence).
pub async fn edits_discard_prepared_executions(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let at = t + secs(10);
    let renamed = insert_job(store, &workspace, "renamed", Some(at)).await;
    let moved = insert_job(store, &workspace, "moved", Some(at)).await;
    let paused = insert_job(store, &workspace, "paused", Some(at)).await;
    let prepared = |job: &Job| {
        let mut occurrence = occurrence(job, at, Some(at + secs(1)), Concurrency::Allow);
        occurrence.executions[0].lease = Some(lease("node-a", at + secs(30)));
        occurrence
    };
    let outcomes = materialize(
        store,
        &[prepared(&renamed), prepared(&moved), prepared(&paused)],
    )
    .await;
    assert_eq!(outcomes, [Materialized::Created; 3]);

    let mut rename = read_job(store, &workspace, &renamed).await;
    std::sync::Arc::make_mut(&mut rename.spec).name = "renamed-again".into();
    rename.updated_at = t;
    store.update_job(&rename).await.expect("rename");
    let mut mv = read_job(store, &workspace, &moved).await;
    mv.next_run_at = Some(t + secs(60));
    mv.updated_at = t;
    store.update_job(&mv).await.expect("move");
    let mut pause = read_job(store, &workspace, &paused).await;
    std::sync::Arc::make_mut(&mut pause.spec).paused = true;
    pause.next_run_at = None;
    pause.updated_at = t;
    store.update_job(&pause).await.expect("pause");

    assert_eq!(
        all_executions(store, &workspace, &renamed).await.len(),
        1,
        "a rename keeps the prepared occurrence"
    );
    assert!(
        all_executions(store, &workspace, &moved).await.is_empty(),
        "moving the schedule discards the prepared occurrence"
    );
    assert!(
        all_executions(store, &workspace, &paused).await.is_empty(),
        "pausing discards the prepared occurrence"
    );

    // One due within the margin of the edit may already be on its way: it stays.
    let soon = insert_job(store, &workspace, "soon", Some(t)).await;
    let mut occurrence = occurrence(&soon, t, Some(t + secs(1)), Concurrency::Allow);
    occurrence.executions[0].lease = Some(lease("node-a", t + secs(30)));
    assert_eq!(
        materialize(store, &[occurrence]).await,
        [Materialized::Created]
    );
    let mut pause = read_job(store, &workspace, &soon).await;
    std::sync::Arc::make_mut(&mut pause.spec).paused = true;
    pause.next_run_at = None;
    pause.updated_at = t;
    store.update_job(&pause).await.expect("pause");
    assert_eq!(all_executions(store, &workspace, &soon).await.len(), 1);
}

/// With `forbid`, an occurrence that comes while an execution is unfinished is recorded as
/// skipped; once it is finished, occurrences run again.
pub async fn forbid_records_skipped(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let runner = node("forbid");
    let job = insert_job(store, &workspace, "exclusive", Some(t)).await;

    // The first occurrence is created already leased, as the scheduler does for its own executor.
    let mut first = occurrence(&job, t, Some(t + secs(60)), Concurrency::Forbid);
    first.executions[0].lease = Some(lease(&runner, t + secs(120)));
    assert_eq!(
        materialize(store, std::slice::from_ref(&first)).await,
        [Materialized::Created]
    );
    let first_id = first.executions[0].id.clone();
    assert_eq!(
        execution_status(store, &workspace, &first_id).await,
        ExecutionStatus::Running
    );

    let second = occurrence(&job, t + secs(60), Some(t + secs(120)), Concurrency::Forbid);
    assert_eq!(
        materialize(store, std::slice::from_ref(&second)).await,
        [Materialized::Skipped]
    );
    let skipped = store
        .execution(&workspace.id, &second.executions[0].id)
        .await
        .expect("read")
        .expect("the skipped execution is recorded");
    assert_eq!(skipped.status, ExecutionStatus::Skipped);
    assert_eq!(skipped.scheduled_for, t + secs(60));
    assert_eq!(skipped.finished_at, Some(t + secs(60)));
    assert!(skipped.attempts.is_empty());

    // `allow` does not look.
    let third = occurrence(&job, t + secs(120), Some(t + secs(180)), Concurrency::Allow);
    assert_eq!(
        materialize(store, std::slice::from_ref(&third)).await,
        [Materialized::Created]
    );

    // Once nothing is unfinished, `forbid` creates again.
    assert_eq!(
        record(
            store,
            &[finish(
                &first_id,
                &runner,
                answered(1, t, 200),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [true]
    );
    let queued = &third.executions[0];
    assert_eq!(
        execution_status(store, &workspace, &queued.id).await,
        ExecutionStatus::Queued
    );
    let fourth = occurrence(
        &job,
        t + secs(180),
        Some(t + secs(240)),
        Concurrency::Forbid,
    );
    assert_eq!(
        materialize(store, std::slice::from_ref(&fourth)).await,
        [Materialized::Skipped],
        "a queued execution is unfinished too"
    );
    store
        .delete_job(&workspace.id, &job.id)
        .await
        .expect("delete");

    let calm = insert_job(store, &workspace, "calm", Some(t)).await;
    let done = insert_execution(
        store,
        &calm,
        t - secs(60),
        Some(lease(&runner, t + secs(60))),
    )
    .await;
    assert_eq!(
        record(
            store,
            &[finish(
                &done.id,
                &runner,
                answered(1, t, 500),
                ExecutionStatus::Failed
            )]
        )
        .await,
        [true]
    );
    assert_eq!(
        materialize(store, &[occurrence(&calm, t, None, Concurrency::Forbid)]).await,
        [Materialized::Created]
    );
}

/// `replace` cancels the job's unfinished executions in the transaction that creates the new
/// one, records the cut attempt of a running one, and fences out its executor.
pub async fn replace_cancels_unfinished(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let runner = node("replace");
    let job = insert_job(store, &workspace, "replaceable", Some(t)).await;

    // One execution running its second attempt (the first failed), one merely queued.
    let mut first = occurrence(&job, t, Some(t + secs(60)), Concurrency::Allow);
    first.executions[0].lease = Some(lease(&runner, t + secs(600)));
    assert_eq!(
        materialize(store, std::slice::from_ref(&first)).await,
        [Materialized::Created]
    );
    let running_id = first.executions[0].id.clone();
    assert_eq!(
        record(
            store,
            &[retry(
                &running_id,
                &runner,
                answered(1, t, 503),
                t,
                t + secs(600)
            )]
        )
        .await,
        [true]
    );
    let other = insert_execution(store, &job, t - secs(3600), None).await;

    let second = occurrence(
        &job,
        t + secs(60),
        Some(t + secs(120)),
        Concurrency::Replace,
    );
    assert_eq!(
        materialize(store, std::slice::from_ref(&second)).await,
        [Materialized::Created]
    );
    let at = second.executions[0].run_at;

    let cancelled = store
        .execution(&workspace.id, &running_id)
        .await
        .expect("read")
        .expect("the replaced execution is kept");
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
    assert_eq!(cancelled.finished_at, Some(at));
    // `retrying` is not `running`: no attempt was in flight, so none is recorded as cut.
    assert_eq!(cancelled.attempts.len(), 1);
    assert_eq!(
        execution_status(store, &workspace, &other.id).await,
        ExecutionStatus::Cancelled
    );
    assert_eq!(
        execution_status(store, &workspace, &second.executions[0].id).await,
        ExecutionStatus::Queued,
        "the new occurrence is not cancelled by its own creation"
    );

    // A running execution's cut attempt is recorded, and its executor is fenced out.
    let mut third = occurrence(&job, t + secs(120), Some(t + secs(180)), Concurrency::Allow);
    third.executions[0].lease = Some(lease(&runner, t + secs(600)));
    materialize(store, std::slice::from_ref(&third)).await;
    let third_id = third.executions[0].id.clone();
    let fourth = occurrence(
        &job,
        t + secs(180),
        Some(t + secs(240)),
        Concurrency::Replace,
    );
    assert_eq!(
        materialize(store, std::slice::from_ref(&fourth)).await,
        [Materialized::Created]
    );
    let cut = store
        .execution(&workspace.id, &third_id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(cut.status, ExecutionStatus::Cancelled);
    assert_eq!(cut.attempts.len(), 1);
    assert_eq!(cut.attempts[0].number, 1);
    assert_eq!(
        cut.attempts[0].error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Cancelled)
    );
    assert_eq!(
        record(
            store,
            &[finish(
                &third_id,
                &runner,
                answered(1, t, 200),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [false],
        "the executor of a cancelled execution cannot write its result"
    );
    store
        .delete_job(&workspace.id, &job.id)
        .await
        .expect("delete");
}

/// Whether execution `id` of `workspace` is still stored.
async fn execution_exists(store: &dyn Store, workspace: &Workspace, id: String) -> bool {
    store
        .execution(&workspace.id, &id)
        .await
        .expect("read")
        .is_some()
}

/// An execution of `job` scheduled at `at`, run by `runner` and finished with `status`; its id.
async fn finished_execution(
    store: &dyn Store,
    job: Job,
    runner: String,
    at: DateTime<Utc>,
    status: ExecutionStatus,
) -> String {
    let execution = insert_execution(store, &job, at, Some(lease(&runner, at + secs(60)))).await;
    let code = if status == ExecutionStatus::Succeeded {
        200
    } else {
        500
    };
    assert_eq!(
        record(
            store,
            &[finish(
                &execution.id,
                &runner,
                answered(1, at, code),
                status
            )]
        )
        .await,
        [true]
    );
    execution.id
}

/// Prunes until a batch comes back short, with a policy that keeps every execution a job still
/// has: what other checks' deleted jobs left behind goes, so that a check may count what it
/// prunes. Returns how many were deleted.
async fn prune_deleted_histories(store: &dyn Store, batch: u32) -> u64 {
    let keep_all = crate::RetentionPolicy {
        succeeded_for: Duration::days(36_500),
        failed_for: Duration::days(36_500),
    };
    let mut total = 0;
    loop {
        let pruned = store
            .prune_executions(&keep_all, distant_past(1990), batch)
            .await
            .expect("prune");
        total += pruned;
        if pruned < u64::from(batch) {
            return total;
        }
    }
}

/// Pruning deletes finished executions by age (failures kept longer) and beyond a job's
/// `keep_last`, never unfinished ones, in batches.
pub async fn retention_prunes_by_age_status_and_keep_last(store: &dyn Store) {
    prune_deleted_histories(store, 100).await;
    let workspace = new_workspace(store).await;
    // Instants in the distant past keep clear of the other checks' rows: pruning is global.
    let now = distant_past(1995) + Duration::days(150);
    let runner = node("pruner");
    let plain = insert_job(store, &workspace, "plain", None).await;
    let mut capped_job = new_job(&workspace, "capped", None);
    std::sync::Arc::make_mut(&mut capped_job.spec).keep_last = Some(2);
    store
        .insert_job(&capped_job)
        .await
        .expect("insert a capped job");

    let finished = |job: &Job, at: DateTime<Utc>, status: ExecutionStatus| {
        finished_execution(store, job.clone(), runner.clone(), at, status)
    };
    let old_success = finished(&plain, now - Duration::days(20), ExecutionStatus::Succeeded).await;
    let old_failure = finished(
        &plain,
        now - Duration::days(20) + secs(1),
        ExecutionStatus::Failed,
    )
    .await;
    let recent_success =
        finished(&plain, now - Duration::days(1), ExecutionStatus::Succeeded).await;
    let ancient_failure =
        finished(&plain, now - Duration::days(120), ExecutionStatus::Failed).await;
    let unfinished = insert_execution(store, &plain, now - Duration::days(60), None)
        .await
        .id;
    let mut capped = Vec::new();
    for hour in 0..4 {
        capped.push(
            finished(
                &capped_job,
                now - Duration::hours(10 - hour),
                ExecutionStatus::Succeeded,
            )
            .await,
        );
    }

    let policy = crate::RetentionPolicy {
        succeeded_for: Duration::days(10),
        failed_for: Duration::days(100),
    };
    assert_eq!(
        store
            .prune_executions(&policy, now, 1)
            .await
            .expect("prune one"),
        1,
        "a batch is a limit"
    );
    let rest = store
        .prune_executions(&policy, now, 100)
        .await
        .expect("prune the rest");
    assert_eq!(
        rest, 3,
        "old success, ancient failure and two over keep_last, one already gone"
    );
    assert_eq!(
        store
            .prune_executions(&policy, now, 100)
            .await
            .expect("prune again"),
        0
    );

    let exists = |id: String| execution_exists(store, &workspace, id);
    assert!(
        !exists(old_success).await,
        "a success older than its retention is pruned"
    );
    assert!(exists(old_failure).await, "failures are kept longer");
    assert!(exists(recent_success).await);
    assert!(!exists(ancient_failure).await, "failures too, in the end");
    assert!(
        exists(unfinished).await,
        "unfinished executions are never pruned"
    );
    assert!(!exists(capped[0].clone()).await && !exists(capped[1].clone()).await);
    assert!(
        exists(capped[2].clone()).await && exists(capped[3].clone()).await,
        "keep_last keeps the newest"
    );
    delete_jobs(store, &workspace, &[&plain, &capped_job]).await;
}

/// Pruning by `keep_last` reaches every job however small its batches: a pass resumes where
/// the last batch stopped, and once a batch comes back short the next pass starts again from
/// the first job.
pub async fn keep_last_pruning_reaches_every_job_in_small_batches(store: &dyn Store) {
    prune_deleted_histories(store, 100).await;
    let workspace = new_workspace(store).await;
    let now = distant_past(1998) + Duration::days(1);
    let runner = node("pruner");
    // Nothing is old enough to go by age.
    let policy = crate::RetentionPolicy {
        succeeded_for: Duration::days(3650),
        failed_for: Duration::days(3650),
    };
    let mut jobs = Vec::new();
    let mut kept = Vec::new();
    let mut pruned = Vec::new();
    for index in 0..5 {
        let mut job = new_job(&workspace, &format!("capped-{index}"), None);
        std::sync::Arc::make_mut(&mut job.spec).keep_last = Some(2);
        store.insert_job(&job).await.expect("insert a capped job");
        for minute in 0..5 {
            let at = now - Duration::minutes(10 - minute);
            let id = finished_execution(
                store,
                job.clone(),
                runner.clone(),
                at,
                ExecutionStatus::Succeeded,
            )
            .await;
            if minute < 3 {
                pruned.push(id);
            } else {
                kept.push((job.id.clone(), id));
            }
        }
        jobs.push(job);
    }
    let prune_pass = || async {
        let mut total = 0;
        for _ in 0..100 {
            let deleted = store
                .prune_executions(&policy, now, 2)
                .await
                .expect("prune");
            total += deleted;
            if deleted < 2 {
                return total;
            }
        }
        panic!("pruning in batches of 2 never came back short");
    };
    assert_eq!(
        prune_pass().await,
        15,
        "three over keep_last in each of five jobs"
    );
    let exists = |id: String| execution_exists(store, &workspace, id);
    for id in &pruned {
        assert!(!exists(id.clone()).await, "beyond keep_last: {id}");
    }
    for (_, id) in &kept {
        assert!(exists(id.clone()).await, "the newest two are kept: {id}");
    }

    // The first job in id order runs twice more: the next pass starts from it again.
    let first = jobs
        .iter()
        .min_by(|a, b| a.id.cmp(&b.id))
        .expect("five jobs")
        .clone();
    let mut newer = Vec::new();
    for minute in 5..7 {
        newer.push(
            finished_execution(
                store,
                first.clone(),
                runner.clone(),
                now - Duration::minutes(10 - minute),
                ExecutionStatus::Succeeded,
            )
            .await,
        );
    }
    assert_eq!(prune_pass().await, 2, "the first job's two older ones");
    for id in &newer {
        assert!(exists(id.clone()).await, "{id}");
    }
    for (job_id, id) in &kept {
        assert_eq!(
            exists(id.clone()).await,
            *job_id != first.id,
            "only the first job's two older ones go: {id}"
        );
    }
    let jobs: Vec<&Job> = jobs.iter().collect();
    delete_jobs(store, &workspace, &jobs).await;
}

/// Released leases are claimable at once: a running execution as interrupted, a retrying one at
/// its `run_at`.
pub async fn released_leases_are_taken_over_at_once(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = distant_past(1996);
    let leaving = node("leaving");
    let staying = node("staying");
    let job = insert_job(store, &workspace, "handed-back", None).await;
    let running = insert_execution(store, &job, t, Some(lease(&leaving, t + secs(3600)))).await;
    let waiting = insert_execution(
        store,
        &job,
        t + secs(1),
        Some(lease(&leaving, t + secs(3600))),
    )
    .await;
    assert_eq!(
        record(
            store,
            &[retry(
                &waiting.id,
                &leaving,
                answered(1, t, 503),
                t + secs(30),
                t + secs(3600)
            )]
        )
        .await,
        [true]
    );
    assert!(
        claim_own(store, &workspace, &staying, t + secs(60), t + secs(5), 10)
            .await
            .is_empty(),
        "leased work is not claimable"
    );

    assert_eq!(
        store
            .release_leases(&leaving, t + secs(5))
            .await
            .expect("release"),
        2
    );
    let claimed = claim_own(store, &workspace, &staying, t + secs(60), t + secs(5), 10).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].id, running.id);
    assert!(claimed[0].interrupted, "its attempt was cut");
    let later = claim_own(store, &workspace, &staying, t + secs(90), t + secs(30), 10).await;
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0].id, waiting.id);
    assert!(!later[0].interrupted);
    assert_eq!(later[0].attempts_done, 1);
    delete_jobs(store, &workspace, &[&job]).await;
}

/// An execution prepared ahead of its instant and released at shutdown is taken over at its
/// instant, not before it: claims read executions due by now, whatever their lease.
pub async fn released_prepared_executions_wait_for_their_instant(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = distant_past(1997);
    let leaving = node("leaving");
    let staying = node("staying");
    let job = insert_job(store, &workspace, "prepared", None).await;
    let prepared = insert_execution(
        store,
        &job,
        t + secs(10),
        Some(lease(&leaving, t + secs(3600))),
    )
    .await;
    assert_eq!(
        store
            .release_leases(&leaving, t + secs(5))
            .await
            .expect("release"),
        1
    );
    let early = claim_own(store, &workspace, &staying, t + secs(60), t + secs(9), 10).await;
    assert!(early.is_empty(), "claimed before its instant: {early:?}");
    let due = claim_own(store, &workspace, &staying, t + secs(60), t + secs(10), 10).await;
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].id, prepared.id);
    delete_jobs(store, &workspace, &[&job]).await;
}

/// Nodes report themselves; the list shows those heard from since a given instant, the most
/// recently heard first, and forgets nodes silent for a day.
pub async fn nodes_report_themselves(store: &dyn Store) {
    let t = now();
    let node_info = |name: &str, heard: DateTime<Utc>| crate::NodeInfo {
        id: node(name),
        name: name.to_owned(),
        roles: vec!["scheduler".to_owned(), "executor".to_owned()],
        version: "9.9.9".to_owned(),
        started_at: t - secs(60),
        last_heartbeat_at: heard,
    };
    let mut early = node_info("early", t - secs(30));
    let late = node_info("late", t - secs(10));
    let stale = node_info("stale", t - Duration::days(2));
    for info in [&stale, &early, &late] {
        store.heartbeat(info).await.expect("heartbeat");
    }
    let ours = |nodes: Vec<crate::NodeInfo>| -> Vec<String> {
        nodes
            .into_iter()
            .filter(|n| [&early.id, &late.id, &stale.id].contains(&&n.id))
            .map(|n| n.id)
            .collect()
    };
    let listed = ours(store.nodes(t - secs(60)).await.expect("nodes"));
    assert_eq!(
        listed,
        vec![late.id.clone(), early.id.clone()],
        "newest heartbeat first"
    );
    let first = store.nodes(t - secs(60)).await.expect("nodes");
    let read_back = first.iter().find(|n| n.id == late.id).expect("listed");
    assert_eq!(read_back, &late, "a node reads back as reported");

    early.last_heartbeat_at = t;
    store.heartbeat(&early).await.expect("heartbeat again");
    let listed = ours(store.nodes(t - secs(60)).await.expect("nodes"));
    assert_eq!(
        listed,
        vec![early.id.clone(), late.id.clone()],
        "a heartbeat updates the row"
    );
    assert!(
        ours(store.nodes(t - Duration::days(3)).await.expect("nodes")).len() == 2,
        "a node silent for a day is forgotten"
    );
}

/// The database's clock is readable, and a `DatabaseClock` synced against it follows it.
pub async fn the_database_clock_is_read_and_followed(store: &dyn Store) {
    let before = Utc::now();
    let database = store
        .database_now()
        .await
        .expect("read the database's clock");
    let after = Utc::now();
    // The test runs beside its database: the two clocks agree to well within a second.
    assert!(
        database > before - secs(1) && database < after + secs(1),
        "{before} <= {database} <= {after}"
    );
    let clock = crate::DatabaseClock::new();
    let offset = clock.sync(store).await.expect("sync");
    assert!(offset.num_milliseconds().abs() < 1_000, "{offset}");
    assert_eq!(clock.offset(), offset, "kept to the microsecond");
    let now = clock.now();
    assert_eq!(clock.to_local(now), now - clock.offset());
}

/// `insert_execution` creates queued or leased executions and refuses a second execution of one
/// occurrence.
pub async fn insert_execution_refuses_duplicates(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let job = insert_job(store, &workspace, "manual", None).await;
    let mut manual = new_execution(&job, t, None);
    manual.trigger = Trigger::Manual;
    store.insert_execution(&manual).await.expect("insert");
    let read = store
        .execution(&workspace.id, &manual.id)
        .await
        .expect("read")
        .expect("the execution exists");
    assert_eq!(read.trigger, Trigger::Manual);
    assert_eq!(read.status, ExecutionStatus::Queued);
    assert_eq!(read.job_id, job.id);
    assert_eq!(read.workspace_id, workspace.id);
    assert_eq!(read.scheduled_for, t);
    assert_eq!(read.started_at, None);
    assert_eq!(read.finished_at, None);
    assert_eq!(read.duration_ms, None);
    assert!(read.attempts.is_empty());

    let twin = new_execution(&job, t, None);
    assert!(matches!(
        store.insert_execution(&twin).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store
            .execution(&workspace.id, &twin.id)
            .await
            .expect("read"),
        None
    );

    let mut replay = new_execution(
        &job,
        t + secs(1),
        Some(lease(&node("replay"), t + secs(60))),
    );
    replay.trigger = Trigger::Replay;
    store.insert_execution(&replay).await.expect("insert");
    let read = store
        .execution(&workspace.id, &replay.id)
        .await
        .expect("read")
        .expect("the execution exists");
    assert_eq!(read.status, ExecutionStatus::Running, "created leased");
    assert_eq!(read.trigger, Trigger::Replay);
}

/// Due jobs are read and claimed as they are stored now, however often they were read before
/// and even when an edit keeps `updated_at` (two edits in one millisecond).
pub async fn due_jobs_follow_every_edit(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let e = distant_past(1991);
    let mut job = insert_job(store, &workspace, "followed", Some(e)).await;
    // Read both ways: the scheduler's claim (which PostgreSQL serves from its own cache of
    // specs) must follow every edit as the plain read does.
    let read_back = |job_id: String| async move {
        let due = store
            .due_jobs(e + secs(10), 1000)
            .await
            .expect("due jobs")
            .into_iter()
            .find(|due| due.id == job_id);
        let claimed = store
            .claim_due_jobs(
                &lease("following-edits", Utc::now() + Duration::minutes(5)),
                Utc::now(),
                e + secs(10),
                1000,
            )
            .await
            .expect("claim due jobs")
            .into_iter()
            .find(|claimed| claimed.id == job_id);
        assert_eq!(claimed, due, "the claim and the plain read agree");
        due
    };
    for _ in 0..2 {
        let due = read_back(job.id.clone()).await.expect("due");
        assert_eq!(due.spec, job.spec);
    }
    std::sync::Arc::make_mut(&mut job.spec).request.url = "https://example.com/edited".into();
    store
        .update_job(&job)
        .await
        .expect("edit in the same millisecond");
    let due = read_back(job.id.clone()).await.expect("due");
    assert_eq!(due.spec.request.url, "https://example.com/edited");
    std::sync::Arc::make_mut(&mut job.spec).name = "renamed".into();
    store.update_job(&job).await.expect("rename");
    assert_eq!(
        read_back(job.id.clone()).await.expect("due").spec.name,
        "renamed"
    );
    std::sync::Arc::make_mut(&mut job.spec).paused = true;
    store.update_job(&job).await.expect("pause");
    assert!(
        read_back(job.id.clone()).await.is_none(),
        "a paused job is not due"
    );
    std::sync::Arc::make_mut(&mut job.spec).paused = false;
    store.update_job(&job).await.expect("resume");
    let due = read_back(job.id.clone()).await.expect("due again");
    assert_eq!(due.spec, job.spec);
    delete_jobs(store, &workspace, &[&job]).await;
}

/// `due_jobs` returns unpaused jobs due by `until`, earliest first; `earliest_next_run` knows the
/// earliest of all.
pub async fn due_jobs_come_in_firing_order(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let e = distant_past(1990);
    let third = insert_job(store, &workspace, "third", Some(e + secs(3))).await;
    let first = insert_job(store, &workspace, "first", Some(e + secs(1))).await;
    let second = insert_job(store, &workspace, "second", Some(e + secs(2))).await;
    let later = insert_job(store, &workspace, "later", Some(e + secs(3600))).await;
    let never = insert_job(store, &workspace, "never", None).await;
    let mut paused = new_job(&workspace, "paused", Some(e));
    std::sync::Arc::make_mut(&mut paused.spec).paused = true;
    store.insert_job(&paused).await.expect("insert");

    let due: Vec<_> = store
        .due_jobs(e + secs(10), 1000)
        .await
        .expect("due jobs")
        .into_iter()
        .filter(|job| job.workspace_id == workspace.id)
        .map(|job| job.id)
        .collect();
    assert_eq!(due, [first.id.clone(), second.id.clone(), third.id.clone()]);
    assert!(
        store
            .due_jobs(e + secs(10), 1)
            .await
            .expect("due jobs")
            .len()
            <= 1
    );
    assert_eq!(
        store.due_jobs(e + secs(10), 1).await.expect("due jobs")[0].next_run_at,
        Some(e + secs(1)),
        "the earliest comes first"
    );
    let earliest = store
        .earliest_next_run()
        .await
        .expect("earliest next run")
        .expect("some job is scheduled");
    assert!(earliest <= e + secs(1), "the paused job does not count");

    delete_jobs(
        store,
        &workspace,
        &[&first, &second, &third, &later, &never, &paused],
    )
    .await;
}

/// A read of many due jobs returns each whole (as stored, names that JSON escapes included),
/// earliest first whatever order they were created in, the same when served from the stores'
/// caches; a limit keeps the earliest.
pub async fn due_jobs_read_many_whole_and_in_order(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let e = distant_past(1977);
    // Created in an order unlike their instants' (each 37th second, modulo 101), several due at
    // the same instant.
    let names = [
        "a \"quoted\" name",
        "back\\slash",
        "emoji ⏰",
        "tab\there",
        "ünïcode",
    ];
    let mut jobs = Vec::new();
    for n in 0..101 {
        let name = format!("{} {n}", names[n % names.len()]);
        let due = e + secs(i64::try_from(n * 37 % 101 / 2).expect("small"));
        jobs.push(insert_job(store, &workspace, &name, Some(due)).await);
    }
    let mut expected = jobs.clone();
    expected.sort_by_key(|job| job.next_run_at);
    let until = e + secs(3600);
    let ours = |due: Vec<Job>| -> Vec<Job> {
        due.into_iter()
            .filter(|job| job.workspace_id == workspace.id)
            .collect()
    };
    for read in ["parsed", "cached"] {
        let due = ours(store.due_jobs(until, 1000).await.expect("due jobs"));
        assert_eq!(due.len(), jobs.len(), "{read}");
        assert!(
            due.windows(2).all(|w| w[0].next_run_at <= w[1].next_run_at),
            "{read}: earliest first"
        );
        for job in &due {
            let stored = jobs.iter().find(|j| j.id == job.id).expect("one of ours");
            assert_eq!(job, stored, "{read}");
        }
    }
    // Other checks' jobs are due later than 1977 or not at all, so the earliest are ours.
    let earliest = ours(store.due_jobs(until, 10).await.expect("due jobs"));
    assert_eq!(earliest.len(), 10);
    assert_eq!(
        earliest
            .iter()
            .map(|job| job.next_run_at)
            .collect::<Vec<_>>(),
        expected[..10]
            .iter()
            .map(|job| job.next_run_at)
            .collect::<Vec<_>>()
    );
    delete_jobs(store, &workspace, &jobs.iter().collect::<Vec<_>>()).await;
}

/// Concurrent claimers take every ready execution exactly once, oldest first, and nothing before
/// its `run_at`.
pub async fn claim_takes_each_execution_once(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let e = distant_past(2001);
    let job = insert_job(store, &workspace, "popular", None).await;
    let mut expected = BTreeSet::new();
    for n in 0..24 {
        expected.insert(insert_execution(store, &job, e + secs(n), None).await.id);
    }
    let future = insert_execution(store, &job, e + secs(7200), None).await;

    let oldest = claim_own(
        store,
        &workspace,
        &node("first"),
        e + secs(3600),
        e + secs(60),
        1,
    )
    .await;
    assert_eq!(oldest.len(), 1);
    assert_eq!(oldest[0].scheduled_for, e, "the oldest comes first");
    assert_eq!(oldest[0].attempts_done, 0);
    assert!(!oldest[0].interrupted);
    assert_eq!(oldest[0].started_at, None);
    assert_eq!(oldest[0].spec, job.spec);
    assert_eq!(oldest[0].job_id, job.id);
    assert_eq!(oldest[0].trigger, Trigger::Schedule);

    let claimer = |name: &'static str| {
        let workspace = &workspace;
        async move {
            let node_id = node(name);
            let mut got = Vec::new();
            for _ in 0..100 {
                let batch =
                    claim_own(store, workspace, &node_id, e + secs(3600), e + secs(60), 5).await;
                if batch.is_empty() {
                    break;
                }
                got.extend(batch.into_iter().map(|claimed| claimed.id));
                tokio::task::yield_now().await;
            }
            got
        }
    };
    let (a, b, c, d) = tokio::join!(claimer("a"), claimer("b"), claimer("c"), claimer("d"));
    let mut claimed: Vec<String> = oldest.into_iter().map(|claimed| claimed.id).collect();
    claimed.extend(a.into_iter().chain(b).chain(c).chain(d));
    let unique: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(unique.len(), claimed.len(), "no execution is claimed twice");
    assert_eq!(unique, expected, "every ready execution is claimed");
    assert_eq!(
        execution_status(store, &workspace, &future.id).await,
        ExecutionStatus::Queued,
        "nothing is claimed before its run_at"
    );
    for id in &expected {
        assert_eq!(
            execution_status(store, &workspace, id).await,
            ExecutionStatus::Running
        );
    }
    delete_jobs(store, &workspace, &[&job]).await;
}

/// A lease that ran out mid-attempt passes to the next claimer, flagged interrupted; the old
/// holder is fenced out.
pub async fn expired_leases_are_taken_over_and_flagged_interrupted(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let e = distant_past(2002);
    let job = insert_job(store, &workspace, "orphan", None).await;
    let execution = insert_execution(store, &job, e, None).await;
    let (old, new) = (node("old"), node("new"));

    let taken = claim_own(store, &workspace, &old, e + secs(30), e, 10).await;
    assert_eq!(taken.len(), 1);
    assert!(!taken[0].interrupted);
    assert!(
        claim_own(store, &workspace, &new, e + secs(60), e + secs(10), 10)
            .await
            .is_empty(),
        "a live lease is respected"
    );
    assert!(
        claim_own(store, &workspace, &new, e + secs(60), e + secs(30), 10)
            .await
            .is_empty(),
        "a lease is live up to its last instant"
    );
    let taken = claim_own(store, &workspace, &new, e + secs(90), e + secs(31), 10).await;
    assert_eq!(taken.len(), 1, "an expired lease is taken over");
    assert_eq!(taken[0].id, execution.id);
    assert!(taken[0].interrupted, "the cut attempt is flagged");
    assert_eq!(taken[0].attempts_done, 0);

    assert_eq!(
        record(
            store,
            &[finish(
                &execution.id,
                &old,
                answered(1, e + secs(1), 200),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [false],
        "the old holder is fenced out"
    );
    assert_eq!(
        store
            .renew_leases(&old, e + secs(600))
            .await
            .expect("renew"),
        0,
        "the old holder renews nothing"
    );
    assert_eq!(
        record(
            store,
            &[
                retry(
                    &execution.id,
                    &new,
                    errored(1, e + secs(1), ErrorKind::Interrupted),
                    e + secs(32),
                    e + secs(90)
                ),
                finish(
                    &execution.id,
                    &new,
                    answered(2, e + secs(32), 200),
                    ExecutionStatus::Succeeded
                ),
            ]
        )
        .await,
        [true, true]
    );
    let done = store
        .execution(&workspace.id, &execution.id)
        .await
        .expect("read")
        .expect("the execution exists");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.attempts.len(), 2);
    assert_eq!(
        done.attempts[0].error.as_ref().map(|error| error.kind),
        Some(ErrorKind::Interrupted)
    );
    assert!(
        claim_own(store, &workspace, &new, e + secs(600), e + secs(500), 10)
            .await
            .is_empty(),
        "a finished execution is never claimed"
    );
    delete_jobs(store, &workspace, &[&job]).await;
}

/// Results from a node that does not hold the lease, out of turn, or replayed are refused one by
/// one; accepted ones set the execution's times.
pub async fn stale_results_are_fenced_out(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let (holder, intruder) = (node("holder"), node("intruder"));
    let job = insert_job(store, &workspace, "fenced", None).await;
    let execution = insert_execution(store, &job, t, Some(lease(&holder, t + secs(60)))).await;
    let id = execution.id.as_str();
    let first = answered(1, t + secs(1), 503);
    let outcomes = record(
        store,
        &[
            finish(
                id,
                &intruder,
                answered(1, t, 200),
                ExecutionStatus::Succeeded,
            ),
            finish(id, &holder, answered(2, t, 200), ExecutionStatus::Succeeded),
            retry(id, &holder, first.clone(), t + secs(5), t + secs(60)),
            retry(id, &holder, first.clone(), t + secs(5), t + secs(60)),
        ],
    )
    .await;
    assert_eq!(outcomes, [false, false, true, false]);
    let second = answered(2, t + secs(5), 200);
    assert_eq!(
        record(
            store,
            &[finish(
                id,
                &holder,
                second.clone(),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [true]
    );
    assert_eq!(
        record(
            store,
            &[finish(
                id,
                &holder,
                answered(3, t + secs(9), 200),
                ExecutionStatus::Failed
            )]
        )
        .await,
        [false],
        "nothing is recorded after the end"
    );
    let done = store
        .execution(&workspace.id, id)
        .await
        .expect("read")
        .expect("the execution exists");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.attempts, [first.clone(), second.clone()]);
    assert_eq!(done.started_at, Some(first.started_at));
    let finished_at = second.started_at + Duration::milliseconds(second.duration_ms as i64);
    assert_eq!(done.finished_at, Some(finished_at));
    assert_eq!(
        done.duration_ms,
        Some((finished_at - first.started_at).num_milliseconds() as u64)
    );
}

/// A retry keeps the execution leased to its node until `lease_until`: no one else claims it,
/// its holder records the next attempt, and after the lease ends another node takes it over
/// (not interrupted: no attempt was in flight).
pub async fn retrying_keeps_the_lease_and_run_at(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let e = distant_past(2003);
    let (holder, other) = (node("holder"), node("other"));
    let job = insert_job(store, &workspace, "flaky", None).await;
    let kept = insert_execution(store, &job, e, None).await;
    let dropped = insert_execution(store, &job, e + secs(1), None).await;
    assert_eq!(
        claim_own(store, &workspace, &holder, e + secs(30), e + secs(1), 10)
            .await
            .len(),
        2
    );
    let first_kept = errored(1, e + secs(1), ErrorKind::Timeout);
    assert_eq!(
        record(
            store,
            &[
                retry(
                    &kept.id,
                    &holder,
                    first_kept.clone(),
                    e + secs(10),
                    e + secs(60)
                ),
                retry(
                    &dropped.id,
                    &holder,
                    errored(1, e + secs(1), ErrorKind::Connect),
                    e + secs(10),
                    e + secs(60)
                ),
            ]
        )
        .await,
        [true, true]
    );
    assert_eq!(
        execution_status(store, &workspace, &kept.id).await,
        ExecutionStatus::Retrying
    );
    assert!(
        claim_own(store, &workspace, &other, e + secs(90), e + secs(5), 10)
            .await
            .is_empty(),
        "not before run_at"
    );
    assert!(
        claim_own(store, &workspace, &other, e + secs(90), e + secs(20), 10)
            .await
            .is_empty(),
        "not while the holder's lease lasts"
    );

    // The holder goes on with one.
    assert_eq!(
        record(
            store,
            &[finish(
                &kept.id,
                &holder,
                answered(2, e + secs(10), 500),
                ExecutionStatus::Failed
            )]
        )
        .await,
        [true]
    );
    let failed = store
        .execution(&workspace.id, &kept.id)
        .await
        .expect("read")
        .expect("the execution exists");
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert_eq!(failed.attempts.len(), 2);
    assert_eq!(failed.attempts[0], first_kept);

    // ... and dies before the other: after the lease, another node takes it over.
    let taken = claim_own(store, &workspace, &other, e + secs(120), e + secs(61), 10).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, dropped.id);
    assert!(!taken[0].interrupted, "no attempt was in flight");
    assert_eq!(taken[0].attempts_done, 1);
    assert_eq!(taken[0].started_at, Some(e + secs(1)));
    assert_eq!(
        record(
            store,
            &[finish(
                &dropped.id,
                &holder,
                answered(2, e + secs(62), 200),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [false],
        "the old holder is fenced out"
    );
    assert_eq!(
        record(
            store,
            &[finish(
                &dropped.id,
                &other,
                answered(2, e + secs(62), 200),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [true]
    );
    delete_jobs(store, &workspace, &[&job]).await;
}

/// `renew_leases` extends a node's running and retrying leases, never shortens them, and leaves
/// finished executions alone. A retry due after the new lease ends is left for a later renewal,
/// and nobody can take it meanwhile.
pub async fn leases_are_renewed(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let e = distant_past(2004);
    let (holder, other) = (node("holder"), node("other"));
    let job = insert_job(store, &workspace, "long", None).await;
    let running = insert_execution(store, &job, e, Some(lease(&holder, e + secs(10)))).await;
    let retrying =
        insert_execution(store, &job, e + secs(1), Some(lease(&holder, e + secs(10)))).await;
    let backing_off =
        insert_execution(store, &job, e + secs(2), Some(lease(&holder, e + secs(10)))).await;
    assert_eq!(
        record(
            store,
            &[
                retry(
                    &retrying.id,
                    &holder,
                    errored(1, e + secs(1), ErrorKind::Dns),
                    e + secs(50),
                    e + secs(10)
                ),
                retry(
                    &backing_off.id,
                    &holder,
                    errored(1, e + secs(2), ErrorKind::Dns),
                    e + secs(500),
                    e + secs(10)
                )
            ]
        )
        .await,
        [true, true]
    );
    assert_eq!(
        store
            .renew_leases(&holder, e + secs(60))
            .await
            .expect("renew"),
        2,
        "the running execution and the retry due within the new lease"
    );
    assert_eq!(
        store
            .renew_leases(&holder, e + secs(30))
            .await
            .expect("renew to an earlier instant"),
        0,
        "leases lasting longer already are left alone"
    );
    assert!(
        claim_own(store, &workspace, &other, e + secs(600), e + secs(45), 10)
            .await
            .is_empty(),
        "renewed leases hold, and are not shortened"
    );
    let taken = claim_own(store, &workspace, &other, e + secs(600), e + secs(101), 10).await;
    let mut taken_ids: Vec<_> = taken.iter().map(|claimed| claimed.id.clone()).collect();
    taken_ids.sort();
    let mut expected = vec![running.id.clone(), retrying.id.clone()];
    expected.sort();
    assert_eq!(
        taken_ids, expected,
        "expired renewed leases are taken over; a retry not before its run_at, whatever its lease"
    );
    assert_eq!(
        store
            .renew_leases(&holder, e + secs(530))
            .await
            .expect("renew the retry once it is due within a lease"),
        1
    );
    assert!(
        claim_own(store, &workspace, &other, e + secs(900), e + secs(510), 10)
            .await
            .is_empty(),
        "renewed before it came due, the retry stays with its holder"
    );
    assert_eq!(
        record(
            store,
            &[finish(
                &backing_off.id,
                &holder,
                answered(2, e + secs(510), 200),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [true]
    );
    assert_eq!(
        store
            .renew_leases(&holder, e + secs(900))
            .await
            .expect("renew"),
        0,
        "the old holder holds nothing"
    );
    assert_eq!(
        record(
            store,
            &[finish(
                &running.id,
                &other,
                answered(1, e + secs(101), 200),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [true]
    );
    assert_eq!(
        store
            .renew_leases(&other, e + secs(900))
            .await
            .expect("renew"),
        1,
        "a finished execution has no lease to renew"
    );
    delete_jobs(store, &workspace, &[&job]).await;
}

/// A job's executions come newest first, each with its attempts in order, optionally filtered by
/// status; `execution` reads the same.
/// A job's history is ordered by scheduled instant, whatever order its executions were written
/// in, and its pages follow on from the previous page's last execution without a gap or a
/// repeat; a cursor that names no execution of the job gives an empty page.
pub async fn history_follows_the_schedule_and_pages_by_instant(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let job = insert_job(store, &workspace, "written out of order", None).await;
    let other_job = insert_job(store, &workspace, "another history", None).await;
    // Written in this order, scheduled in another: a catch-up, a manual run and an occurrence
    // prepared ahead of its instant write executions out of schedule order.
    let at_120 = insert_execution(store, &job, t + secs(120), None).await;
    let at_0 = insert_execution(store, &job, t, None).await;
    let at_240 = insert_execution(store, &job, t + secs(240), None).await;
    let at_60 = insert_execution(store, &job, t + secs(60), None).await;
    let elsewhere = insert_execution(store, &other_job, t + secs(180), None).await;
    let newest_first = [&at_240.id, &at_120.id, &at_60.id, &at_0.id];

    let all = all_executions(store, &workspace, &job).await;
    let ids: Vec<&String> = all.iter().map(|e| &e.id).collect();
    assert_eq!(ids, newest_first, "newest scheduled instant first");

    let page_of = |limit: u32, after: Option<String>| {
        executions_page(store, &workspace, &job, None, limit, after)
    };
    for limit in [1, 3] {
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = page_of(limit, after).await;
            assert!(page.items.len() <= limit as usize);
            walked.extend(page.items.into_iter().map(|e| e.id));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let walked: Vec<&String> = walked.iter().collect();
        assert_eq!(
            walked, newest_first,
            "pages of {limit} walk the history once"
        );
    }
    for foreign in [elsewhere.id.clone(), "exe_not_there".to_owned()] {
        let page = page_of(10, Some(foreign.clone())).await;
        assert!(
            page.items.is_empty() && page.next_after.is_none(),
            "a cursor of `{foreign}` is no execution of the job: {page:?}"
        );
    }
}

pub async fn executions_list_newest_first_with_attempts_and_status_filter(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let runner = node("runner");
    let job = insert_job(store, &workspace, "history", None).await;
    let other_job = insert_job(store, &workspace, "elsewhere", None).await;
    let leased = || Some(lease(&runner, t + secs(600)));
    let e0 = insert_execution(store, &job, t, leased()).await;
    let e1 = insert_execution(store, &job, t + secs(60), leased()).await;
    let e2 = insert_execution(store, &job, t + secs(120), leased()).await;
    let e3 = insert_execution(store, &job, t + secs(180), None).await;
    insert_execution(store, &other_job, t, None).await;

    let e1_first = errored(1, t + secs(60), ErrorKind::Tls);
    let e1_second = answered(2, t + secs(70), 302);
    let outcomes = record(
        store,
        &[
            finish(
                &e0.id,
                &runner,
                answered(1, t, 200),
                ExecutionStatus::Succeeded,
            ),
            retry(
                &e1.id,
                &runner,
                e1_first.clone(),
                t + secs(70),
                t + secs(600),
            ),
            finish(
                &e2.id,
                &runner,
                answered(1, t + secs(120), 204),
                ExecutionStatus::Succeeded,
            ),
        ],
    )
    .await;
    assert_eq!(outcomes, [true, true, true]);
    assert_eq!(
        record(
            store,
            &[finish(
                &e1.id,
                &runner,
                e1_second.clone(),
                ExecutionStatus::Failed
            )]
        )
        .await,
        [true]
    );

    let all = all_executions(store, &workspace, &job).await;
    let ids: Vec<_> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [e3.id.as_str(), &e2.id, &e1.id, &e0.id],
        "newest first"
    );
    let counts: Vec<_> = all.iter().map(|e| e.attempts.len()).collect();
    assert_eq!(counts, [0, 1, 2, 1]);
    assert_eq!(all[2].attempts, [e1_first.clone(), e1_second.clone()]);
    assert_eq!(all[0].status, ExecutionStatus::Queued);
    assert_eq!(all[2].status, ExecutionStatus::Failed);
    for execution in &all {
        assert_eq!(
            store
                .execution(&workspace.id, &execution.id)
                .await
                .expect("read")
                .as_ref(),
            Some(execution),
            "execution() reads what the list shows"
        );
    }

    let by_status = |status: ExecutionStatus, limit: u32, after: Option<String>| {
        executions_page(store, &workspace, &job, Some(status), limit, after)
    };
    let succeeded = by_status(ExecutionStatus::Succeeded, 10, None).await;
    let ids: Vec<_> = succeeded.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [e2.id.as_str(), &e0.id]);
    assert_eq!(succeeded.next_after, None);
    let failed = by_status(ExecutionStatus::Failed, 10, None).await;
    assert_eq!(failed.items.len(), 1);
    assert_eq!(failed.items[0].attempts.len(), 2);
    assert!(
        by_status(ExecutionStatus::Skipped, 10, None)
            .await
            .items
            .is_empty()
    );

    let page = by_status(ExecutionStatus::Succeeded, 1, None).await;
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, e2.id);
    let after = page.next_after.expect("another page follows");
    let page = by_status(ExecutionStatus::Succeeded, 1, Some(after)).await;
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, e0.id);
    assert_eq!(page.items[0].attempts.len(), 1);
}

/// A history filtered by any of the seven statuses lists that status's executions of the job
/// and nothing else, newest scheduled instant first, in pages that walk it once. Each status
/// is read through its own path (the stores read the finished-but-not-succeeded and the
/// unfinished ones through partial indexes), so each is checked.
pub async fn histories_of_each_status_page_newest_first(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let runner = node("runner");
    let job = insert_job(store, &workspace, "every status", None).await;
    let other_job = insert_job(store, &workspace, "every status elsewhere", None).await;
    let statuses = [
        ExecutionStatus::Queued,
        ExecutionStatus::Running,
        ExecutionStatus::Retrying,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::Skipped,
        ExecutionStatus::Cancelled,
    ];
    // Two of each status on the job, interleaved with the others; one of each elsewhere.
    let mut expected: Vec<(ExecutionStatus, Vec<String>)> = statuses
        .iter()
        .map(|&status| (status, Vec::new()))
        .collect();
    for round in 0..3_i64 {
        for (index, &status) in statuses.iter().enumerate() {
            let (target, at) = if round < 2 {
                (&job, t + secs(60 * (round * 7 + index as i64)))
            } else {
                (&other_job, t + secs(60 * index as i64))
            };
            let leased =
                (status != ExecutionStatus::Queued).then(|| lease(&runner, t + secs(3600)));
            let execution = insert_execution(store, target, at, leased).await;
            let recorded = match status {
                ExecutionStatus::Queued | ExecutionStatus::Running => None,
                ExecutionStatus::Retrying => Some(retry(
                    &execution.id,
                    &runner,
                    answered(1, at, 503),
                    at + secs(30),
                    t + secs(3600),
                )),
                finished => Some(finish(
                    &execution.id,
                    &runner,
                    answered(1, at, 200),
                    finished,
                )),
            };
            if let Some(recorded) = recorded {
                assert_eq!(record(store, &[recorded]).await, [true]);
            }
            assert_eq!(
                execution_status(store, &workspace, &execution.id).await,
                status
            );
            if round < 2 {
                expected[index].1.insert(0, execution.id);
            }
        }
    }
    for (status, newest_first) in &expected {
        for limit in [1, 5] {
            let mut walked = Vec::new();
            let mut after = None;
            loop {
                let page =
                    executions_page(store, &workspace, &job, Some(*status), limit, after).await;
                assert!(page.items.len() <= limit as usize);
                assert!(
                    page.items
                        .iter()
                        .all(|e| e.status == *status && e.job_id == job.id),
                    "only {status:?} executions of the job: {page:?}"
                );
                walked.extend(page.items.into_iter().map(|e| e.id));
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert_eq!(
                &walked, newest_first,
                "{status:?} in pages of {limit}, newest first"
            );
        }
    }
}

/// Deleting a job deletes its executions and their attempts, and nothing else.
pub async fn delete_cascades(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let runner = node("runner");
    let doomed = insert_job(store, &workspace, "doomed", Some(t)).await;
    let kept = insert_job(store, &workspace, "kept", Some(t)).await;
    let execution = insert_execution(store, &doomed, t, Some(lease(&runner, t + secs(60)))).await;
    assert_eq!(
        record(
            store,
            &[finish(
                &execution.id,
                &runner,
                answered(1, t, 200),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [true]
    );
    let survivor = insert_execution(store, &kept, t, None).await;

    assert!(
        store
            .delete_job(&workspace.id, &doomed.id)
            .await
            .expect("delete")
    );
    assert_eq!(
        store.job(&workspace.id, &doomed.id).await.expect("read"),
        None
    );
    assert_eq!(
        store
            .execution(&workspace.id, &execution.id)
            .await
            .expect("read"),
        None
    );
    assert!(all_executions(store, &workspace, &doomed).await.is_empty());
    assert!(
        !store
            .delete_job(&workspace.id, &doomed.id)
            .await
            .expect("delete again")
    );

    assert!(
        store
            .job(&workspace.id, &kept.id)
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        store
            .execution(&workspace.id, &survivor.id)
            .await
            .expect("read")
            .is_some()
    );
    // The name is free again.
    insert_job(store, &workspace, "doomed", None).await;
}

/// A deleted job's executions are out of sight at once, whatever their status: none can be
/// read, claimed or recorded. A store that leaves the finished ones on disk (SQLite) deletes all
/// of them when pruning, in its batches, and no other job's.
pub async fn deleted_jobs_leave_nothing_to_claim_and_their_history_is_pruned(store: &dyn Store) {
    prune_deleted_histories(store, 100).await;
    let workspace = new_workspace(store).await;
    // Claims are global: instants of their own keep this check's executions apart.
    let e = distant_past(2005);
    let runner = node("deleted");
    let doomed = insert_job(store, &workspace, "doomed", None).await;
    let kept = insert_job(store, &workspace, "kept", None).await;
    let mut finished = Vec::new();
    for n in 0..5 {
        let status = if n == 2 {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Succeeded
        };
        finished.push(
            finished_execution(store, doomed.clone(), runner.clone(), e + secs(n), status).await,
        );
    }
    let kept_finished = finished_execution(
        store,
        kept.clone(),
        runner.clone(),
        e,
        ExecutionStatus::Succeeded,
    )
    .await;
    let queued = insert_execution(store, &doomed, e + secs(10), None).await;
    let running = insert_execution(
        store,
        &doomed,
        e + secs(11),
        Some(lease(&runner, e + secs(60))),
    )
    .await;
    let retrying = insert_execution(
        store,
        &doomed,
        e + secs(12),
        Some(lease(&runner, e + secs(60))),
    )
    .await;
    assert_eq!(
        record(
            store,
            &[retry(
                &retrying.id,
                &runner,
                errored(1, e + secs(12), ErrorKind::Timeout),
                e + secs(13),
                e + secs(60)
            )]
        )
        .await,
        [true]
    );

    assert!(
        store
            .delete_job(&workspace.id, &doomed.id)
            .await
            .expect("delete")
    );
    for id in finished
        .iter()
        .chain([&queued.id, &running.id, &retrying.id])
    {
        assert!(
            !execution_exists(store, &workspace, id.clone()).await,
            "{id} is out of sight"
        );
    }
    // The queued, the retrying and the running one (its lease over) would all be claimed.
    assert!(
        claim_own(
            store,
            &workspace,
            &node("claimer"),
            e + secs(7200),
            e + secs(3600),
            100
        )
        .await
        .is_empty(),
        "a deleted job's executions are never claimed"
    );
    assert_eq!(
        record(
            store,
            &[finish(
                &running.id,
                &runner,
                answered(1, e + secs(11), 200),
                ExecutionStatus::Succeeded
            )]
        )
        .await,
        [false],
        "the attempt in flight when its job was deleted is refused"
    );

    let pruned = prune_deleted_histories(store, 2).await;
    assert!(
        pruned == 0 || pruned == 5,
        "none left behind, or the five finished ones: {pruned}"
    );
    assert_eq!(prune_deleted_histories(store, 2).await, 0, "nothing left");
    assert!(
        execution_exists(store, &workspace, kept_finished).await,
        "another job's history is kept"
    );
    delete_jobs(store, &workspace, &[&kept]).await;
}

/// Rotation makes the new secret current and keeps the old one as previous.
pub async fn signing_secret_rotation(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    assert_eq!(
        store.workspace(&workspace.id).await.expect("read"),
        Some(workspace.clone())
    );
    assert_eq!(
        store
            .workspace_by_slug(&workspace.slug)
            .await
            .expect("read"),
        Some(workspace.clone())
    );
    let t = now();
    let rotated = store
        .rotate_signing_secret(&workspace.id, "whsec_second", t)
        .await
        .expect("rotate");
    assert_eq!(rotated.signing_secret, "whsec_second");
    assert_eq!(
        rotated.previous_signing_secret.as_deref(),
        Some(workspace.signing_secret.as_str())
    );
    assert_eq!(rotated.signing_secret_rotated_at, Some(t));
    assert_eq!(rotated.slug, workspace.slug);
    assert_eq!(
        store.workspace(&workspace.id).await.expect("read"),
        Some(rotated.clone())
    );
    let again = store
        .rotate_signing_secret(&workspace.id, "whsec_third", t + secs(1))
        .await
        .expect("rotate again");
    assert_eq!(again.signing_secret, "whsec_third");
    assert_eq!(
        again.previous_signing_secret.as_deref(),
        Some("whsec_second")
    );
    assert_eq!(again.signing_secret_rotated_at, Some(t + secs(1)));

    assert!(matches!(
        store
            .rotate_signing_secret(&ids::new_id(ids::WORKSPACE), "whsec_x", t)
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .workspace(&ids::new_id(ids::WORKSPACE))
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store
            .workspace_by_slug("no-such-slug-anywhere")
            .await
            .expect("read"),
        None
    );

    let mut twin = workspace.clone();
    twin.id = ids::new_id(ids::WORKSPACE);
    match store.create_workspace(&twin).await {
        Err(StoreError::Conflict { what }) => {
            assert!(
                what.contains(&workspace.slug),
                "the conflict names the slug: {what}"
            )
        }
        other => panic!("a taken slug must conflict, got {other:?}"),
    }
}

/// API keys are found by hash; users by email, case-insensitively; both are unique.
pub async fn api_keys_and_users(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let t = now();
    let suffix = &workspace.id[4..];
    let key = ApiKey {
        id: ids::new_id(ids::API_KEY),
        workspace_id: workspace.id.clone(),
        name: "ci".to_owned(),
        key_hash: format!("{suffix}{suffix}"),
        scope: crate::ApiKeyScope::Admin,
        created_at: t,
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_api_key(&key).await.expect("insert a key");
    assert_eq!(
        store.api_key_by_hash(&key.key_hash).await.expect("read"),
        Some(key.clone())
    );
    assert_eq!(
        store
            .api_key_by_hash(&format!("{suffix}0000"))
            .await
            .expect("read"),
        None
    );
    let mut twin = key.clone();
    twin.id = ids::new_id(ids::API_KEY);
    assert!(matches!(
        store.insert_api_key(&twin).await,
        Err(StoreError::Conflict { .. })
    ));

    let user = User {
        id: ids::new_id(ids::USER),
        workspace_id: workspace.id.clone(),
        email: format!("Ada.{suffix}@Example.COM"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        created_at: t,
    };
    store.insert_user(&user).await.expect("insert a user");
    let found = store
        .user_by_email(&format!("ada.{suffix}@example.com"))
        .await
        .expect("read")
        .expect("found case-insensitively");
    assert_eq!(found.id, user.id);
    assert_eq!(found.workspace_id, user.workspace_id);
    assert!(found.email.eq_ignore_ascii_case(&user.email));
    assert_eq!(found.password_hash, user.password_hash);
    assert_eq!(found.created_at, t);
    assert!(
        store
            .user_by_email(&format!("ADA.{suffix}@EXAMPLE.COM"))
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        store
            .user_by_email(&format!("bob.{suffix}@example.com"))
            .await
            .expect("read"),
        None
    );
    let mut shouting = user.clone();
    shouting.id = ids::new_id(ids::USER);
    shouting.email = user.email.to_uppercase();
    match store.insert_user(&shouting).await {
        Err(StoreError::Conflict { what }) => assert!(
            what.to_lowercase().contains(&user.email.to_lowercase()),
            "the conflict names the email: {what}"
        ),
        other => panic!("a taken email must conflict, got {other:?}"),
    }
}
