//! The store conformance suite against PostgreSQL, one fresh database per check, and the
//! PostgreSQL-specific behaviour: opening, migrating, several processes at once, outages.
//!
//! These tests need a PostgreSQL server (see `support`); without one they fail, never skip.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use cronhook_core::{Concurrency, ExecutionStatus, Job, JobSpec, Trigger, ids};
use cronhook_store::{
    Lease, Materialized, NewExecution, Occurrence, Store, StoreError, Workspace, conformance,
};
use cronhook_store_postgres::PostgresStore;
use sqlx::{Connection, Row};
use support::{TestDatabase, with_store};

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                with_store(|store, _| async move { conformance::$check(&store).await }).await;
            }
        )*
    };
}

conformance_tests!(
    jobs_round_trip,
    names_are_unique_per_workspace,
    workspaces_do_not_see_each_other,
    pagination_walks_every_item_once,
    materialize_is_exactly_once,
    materialize_skips_when_the_job_changed,
    large_batches_are_written_whole,
    edits_discard_prepared_executions,
    forbid_records_skipped,
    replace_cancels_unfinished,
    retention_prunes_by_age_status_and_keep_last,
    keep_last_pruning_reaches_every_job_in_small_batches,
    released_leases_are_taken_over_at_once,
    released_prepared_executions_wait_for_their_instant,
    nodes_report_themselves,
    the_database_clock_is_read_and_followed,
    insert_execution_refuses_duplicates,
    due_jobs_come_in_firing_order,
    due_jobs_read_many_whole_and_in_order,
    due_jobs_follow_every_edit,
    claim_takes_each_execution_once,
    expired_leases_are_taken_over_and_flagged_interrupted,
    stale_results_are_fenced_out,
    retrying_keeps_the_lease_and_run_at,
    leases_are_renewed,
    executions_list_newest_first_with_attempts_and_status_filter,
    history_follows_the_schedule_and_pages_by_instant,
    histories_of_each_status_page_newest_first,
    delete_cascades,
    signing_secret_rotation,
    api_keys_and_users,
);

/// Every check, one after the other, in one database: they must not trip over each other.
#[tokio::test]
async fn all_checks_share_one_database() {
    with_store(|store, _| async move { conformance::run_all(&store).await }).await;
}

/// The same checks with several tasks on one store at once, on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checks_pass_on_a_multi_threaded_runtime() {
    with_store(|store, _| async move {
        let store: Arc<dyn Store> = Arc::new(store);
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                conformance::materialize_is_exactly_once(store.as_ref()).await;
                conformance::stale_results_are_fenced_out(store.as_ref()).await;
                conformance::executions_list_newest_first_with_attempts_and_status_filter(
                    store.as_ref(),
                )
                .await;
            }));
        }
        for task in tasks {
            task.await.expect("the checks pass");
        }
    })
    .await;
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    with_store(|store, _| async move {
        conformance::api_keys_and_users(&store).await;
        store.migrate().await.expect("migrate again");
        store.ping().await.expect("ready");
        conformance::api_keys_and_users(&store).await;
    })
    .await;
}

#[tokio::test]
async fn an_unmigrated_database_is_not_ready() {
    let database = TestDatabase::create().await;
    let store = PostgresStore::open(&database.url).await.expect("open");
    let not_ready = store.ping().await;
    assert!(
        matches!(not_ready, Err(StoreError::Unavailable(_))),
        "an unmigrated database is not ready: {not_ready:?}"
    );
    store.migrate().await.expect("migrate");
    store.ping().await.expect("a migrated database is ready");
    store.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn data_survives_closing_and_reopening() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let created = workspace("survivor");
    store.create_workspace(&created).await.expect("create");
    store.close().await;
    drop(store);

    let reopened = PostgresStore::open(&database.url).await.expect("reopen");
    reopened.ping().await.expect("still migrated");
    reopened.migrate().await.expect("migrate is a no-op");
    assert_eq!(
        reopened.workspace_by_slug("survivor").await.expect("read"),
        Some(created)
    );
    reopened.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn instants_are_kept_to_the_millisecond() {
    with_store(|store, _| async move {
        let precise = DateTime::from_timestamp(1_780_000_000, 123_456_789).expect("an instant");
        let mut created = workspace("precise");
        created.created_at = precise;
        store.create_workspace(&created).await.expect("create");
        let read = store
            .workspace(&created.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(
            read.created_at.timestamp_nanos_opt(),
            Some(1_780_000_000_123_000_000)
        );

        // A compare-and-set on a sub-millisecond instant matches what was stored.
        let job = job(&created, "precise", Some(precise));
        store.insert_job(&job).await.expect("insert a job");
        let outcome = store
            .materialize(&[occurrence(&job, precise, 1, Concurrency::Allow)])
            .await
            .expect("materialize");
        assert_eq!(outcome, [Materialized::Created]);
    })
    .await;
}

/// A connection refused fails fast and says the database is unavailable.
#[tokio::test]
async fn an_unreachable_server_is_unavailable_quickly() {
    let started = Instant::now();
    let outcome = PostgresStore::open("postgres://postgres@127.0.0.1:1/cronhook").await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{:?}",
        outcome.err()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Connections the server ends (as a restart does) are replaced without the caller noticing.
#[tokio::test]
async fn killed_connections_are_replaced() {
    with_store(|store, url| async move {
        let created = workspace("resilient");
        store.create_workspace(&created).await.expect("create");
        // Several connections in the pool, all to be killed.
        let reads = (0..8).map(|_| store.workspace(&created.id));
        for read in futures::future::join_all(reads).await {
            assert!(read.expect("read").is_some());
        }
        let mut admin = sqlx::PgConnection::connect(&support::admin_url())
            .await
            .expect("connect as administrator");
        let database = url.rsplit('/').next().expect("a database name").to_owned();
        let killed: i64 = sqlx::query_scalar(
            "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
             where datname = $1 and pid <> pg_backend_pid()) as terminated",
        )
        .bind(&database)
        .fetch_one(&mut admin)
        .await
        .expect("terminate the store's connections");
        assert!(killed > 0, "the pool held connections");
        admin.close().await.ok();

        for _ in 0..20 {
            assert_eq!(
                store
                    .workspace(&created.id)
                    .await
                    .expect("read after the kill"),
                Some(created.clone())
            );
        }
        store.ping().await.expect("ready");
    })
    .await;
}

/// During an outage calls fail with `Unavailable` within seconds, not hang; once the server is
/// back the store serves again by itself, on new connections.
#[tokio::test]
async fn an_outage_is_unavailable_and_recovered_from() {
    with_store(|_, url| async move {
        let proxy = support::OutageProxy::start().await;
        let store = PostgresStore::open(&proxy.url_through(&url))
            .await
            .expect("open through the proxy");
        let created = workspace("outage");
        store.create_workspace(&created).await.expect("create");

        proxy.down();
        let started = Instant::now();
        let outcome = store.workspace(&created.id).await;
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "an outage is `Unavailable`: {outcome:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "and says so quickly: {:?}",
            started.elapsed()
        );
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));

        proxy.up();
        assert_eq!(
            store.workspace(&created.id).await.expect("served again"),
            Some(created.clone())
        );
        store.ping().await.expect("ready again");
        store.close().await;
    })
    .await;
}

/// A nul character is valid in a Rust string, and targets send them: a response body holding
/// one, and a spec whose body holds one, round-trip (a PostgreSQL `text` value cannot hold nul,
/// and `jsonb` refuses `\u0000`).
#[tokio::test]
async fn nul_characters_round_trip() {
    with_store(|store, _| async move {
        let created = workspace("nul");
        store.create_workspace(&created).await.expect("create");
        let mut spec = minimal_spec("nul");
        spec.request.body = Some("before\0after".to_owned());
        let mut job = job(&created, "nul", None);
        job.spec = spec.into();
        store
            .insert_job(&job)
            .await
            .expect("insert a job with a nul");
        let read = store
            .job(&created.id, &job.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(read, job);
        assert!(
            store
                .pause_job(&created.id, &job.id, job.updated_at)
                .await
                .expect("pause")
        );

        let node = "nul-node";
        let execution = new_execution(&job, distant_past(), 0);
        let mut leased = execution.clone();
        leased.lease = Some(Lease {
            node_id: node.to_owned(),
            until: distant_past() + chrono::Duration::seconds(60),
        });
        store.insert_execution(&leased).await.expect("insert");
        let attempt = cronhook_core::Attempt {
            number: 1,
            started_at: distant_past(),
            duration_ms: 5,
            status_code: Some(200),
            error: None,
            response_headers: BTreeMap::from([("x".to_owned(), "y".to_owned())]),
            response_body: Some("binary\0body\u{fffd}".to_owned()),
            response_body_truncated: false,
            redirect_location: None,
            timing: Default::default(),
        };
        let recorded = store
            .record_attempts(&[cronhook_store::AttemptRecord {
                execution_id: leased.id.clone(),
                node_id: node.to_owned(),
                attempt: attempt.clone(),
                next: cronhook_store::NextStep::Finish {
                    status: ExecutionStatus::Succeeded,
                },
            }])
            .await
            .expect("record");
        assert_eq!(recorded, [true]);
        let read = store
            .execution(&created.id, &leased.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(read.attempts, [attempt]);

        // Pruning reads no spec as json: `->>` refuses a spec that holds an escaped NUL, and
        // pruning by `keep_last` failed at every pass while such a job had executions.
        let keep_all = cronhook_store::RetentionPolicy {
            succeeded_for: chrono::TimeDelta::days(36_500),
            failed_for: chrono::TimeDelta::days(36_500),
        };
        cronhook_store::MaintenanceStore::prune_executions(&store, &keep_all, distant_past(), 100)
            .await
            .expect("prune beside a job whose spec holds a nul");
    })
    .await;
}

/// Four stores (four pools, as four processes would have) claim 10 000 due executions at once:
/// each is claimed exactly once, by the node the database says holds it, and no claim fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_from_concurrent_pools_never_overlap() {
    let database = TestDatabase::create().await;
    let setup = database.store().await;
    let created = workspace("crowd");
    setup.create_workspace(&created).await.expect("create");
    let due = distant_past();
    let job = job(&created, "crowd", Some(due));
    setup.insert_job(&job).await.expect("insert a job");
    let mut catch_up = occurrence(&job, due, 10_000, Concurrency::Allow);
    catch_up.new_next_run_at = None;
    assert_eq!(
        setup.materialize(&[catch_up]).await.expect("materialize"),
        [Materialized::Created]
    );
    setup.close().await;

    let mut claimers = Vec::new();
    let mut stores = Vec::new();
    for process in 0..4 {
        let store = database.store().await;
        stores.push(store.clone());
        for claimer in 0..2 {
            let store = store.clone();
            claimers.push(tokio::spawn(async move {
                let node_id = format!("node-{process}-{claimer}");
                let lease = Lease {
                    node_id: node_id.clone(),
                    until: due + chrono::Duration::days(2),
                };
                let mut claimed = Vec::new();
                loop {
                    let batch = store
                        .claim_executions(&lease, due + chrono::Duration::days(1), 100)
                        .await
                        .expect("a claim never fails, whatever the others do");
                    if batch.is_empty() {
                        break;
                    }
                    claimed.extend(
                        batch
                            .into_iter()
                            .map(|claimed| (claimed.id, node_id.clone())),
                    );
                }
                claimed
            }));
        }
    }
    let mut holders = BTreeMap::new();
    let mut total = 0;
    for claimer in claimers {
        let claimed = claimer.await.expect("the claimer finishes");
        total += claimed.len();
        holders.extend(claimed);
    }
    for store in stores {
        store.close().await;
    }
    assert_eq!(total, 10_000, "10 000 claims in all");
    assert_eq!(holders.len(), 10_000, "no execution is claimed twice");
    let nodes: std::collections::BTreeSet<_> = holders.values().collect();
    assert!(nodes.len() > 1, "the claimers ran side by side: {nodes:?}");

    let mut connection = database.connection().await;
    let rows = sqlx::query("select id, status, locked_by from executions")
        .fetch_all(&mut connection)
        .await
        .expect("read the executions");
    assert_eq!(rows.len(), 10_000);
    for row in rows {
        let id: String = row.get("id");
        let status: String = row.get("status");
        let locked_by: Option<String> = row.get("locked_by");
        assert_eq!(status, "running");
        assert_eq!(locked_by.as_ref(), holders.get(&id), "held by its claimer");
    }
    connection.close().await.ok();
    database.drop_database().await;
}

/// Four stores materialize the same 60 occurrences at once, in different orders: each is
/// created exactly once and no transaction fails (jobs are locked in one order).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn materializing_from_concurrent_pools_creates_each_occurrence_once() {
    let database = TestDatabase::create().await;
    let setup = database.store().await;
    let created = workspace("schedulers");
    setup.create_workspace(&created).await.expect("create");
    let due = distant_past();
    let mut jobs = Vec::new();
    for n in 0..60 {
        let job = job(&created, &format!("job-{n}"), Some(due));
        setup.insert_job(&job).await.expect("insert a job");
        jobs.push(job);
    }
    setup.close().await;

    let mut schedulers = Vec::new();
    for process in 0..4_usize {
        let store = database.store().await;
        let mut batch: Vec<Occurrence> = jobs
            .iter()
            .map(|job| occurrence(job, due, 1, Concurrency::Forbid))
            .collect();
        batch.rotate_left(process * 15);
        if process % 2 == 1 {
            batch.reverse();
        }
        schedulers.push(tokio::spawn(async move {
            let outcomes = store.materialize(&batch).await.expect("materialize");
            store.close().await;
            outcomes
        }));
    }
    let mut created_count = 0;
    for scheduler in schedulers {
        let outcomes = scheduler.await.expect("the scheduler finishes");
        assert_eq!(outcomes.len(), 60);
        created_count += outcomes
            .iter()
            .filter(|outcome| **outcome == Materialized::Created)
            .count();
        assert!(
            outcomes
                .iter()
                .all(|outcome| matches!(outcome, Materialized::Created | Materialized::Superseded))
        );
    }
    assert_eq!(created_count, 60, "each occurrence is created once");
    let mut connection = database.connection().await;
    let count: i64 = sqlx::query_scalar("select count(*) from executions")
        .fetch_one(&mut connection)
        .await
        .expect("count");
    assert_eq!(count, 60);
    connection.close().await.ok();
    database.drop_database().await;
}

// Helpers.

/// Schedulers sharing the database split the due jobs: each job is claimed by one scheduler
/// until its claim runs out (then another may take it), and a scheduler keeps its own claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schedulers_split_the_due_jobs_between_them() {
    use cronhook_store::MaintenanceStore as _;
    with_store(|store, _url| async move {
        let created = workspace("split");
        store.create_workspace(&created).await.expect("create");
        let due = distant_past();
        let mut ids = std::collections::BTreeSet::new();
        for n in 0..40 {
            let job = job(
                &created,
                &format!("due-{n}"),
                Some(due + chrono::Duration::seconds(n)),
            );
            store.insert_job(&job).await.expect("insert a job");
            ids.insert(job.id);
        }
        let claim = |node: &str, until: DateTime<Utc>| Lease {
            node_id: node.to_owned(),
            until,
        };
        let now = due;
        let horizon = due + chrono::Duration::minutes(5);
        let until = due + chrono::Duration::seconds(10);
        let (lease_a, lease_b) = (claim("sched-a", until), claim("sched-b", until));
        let (a, b) = tokio::join!(
            store.claim_due_jobs(&lease_a, now, horizon, 1000),
            store.claim_due_jobs(&lease_b, now, horizon, 1000),
        );
        let (a, b) = (a.expect("claim a"), b.expect("claim b"));
        let a_ids: std::collections::BTreeSet<_> = a.iter().map(|j| j.id.clone()).collect();
        let b_ids: std::collections::BTreeSet<_> = b.iter().map(|j| j.id.clone()).collect();
        assert!(a_ids.is_disjoint(&b_ids), "a job claimed twice");
        assert_eq!(&a_ids | &b_ids, ids, "every due job claimed once");
        assert!(
            a.windows(2).all(|w| w[0].next_run_at <= w[1].next_run_at),
            "firing order"
        );

        // A scheduler keeps its own claims; the other gets nothing while they live.
        let again = store
            .claim_due_jobs(&claim("sched-a", until), now, horizon, 1000)
            .await
            .expect("claim again");
        assert_eq!(again.len(), a.len());
        let c = store
            .claim_due_jobs(&claim("sched-c", until), now, horizon, 1000)
            .await
            .expect("claim c");
        assert!(c.is_empty(), "{c:?}");
        // Once the claims run out, any scheduler takes the jobs.
        let later = store
            .claim_due_jobs(
                &claim("sched-c", until + chrono::Duration::minutes(1)),
                until + chrono::Duration::seconds(1),
                horizon,
                1000,
            )
            .await
            .expect("claim after expiry");
        assert_eq!(later.len(), 40);
        // Released claims are free at once.
        store
            .release_leases("sched-c", until + chrono::Duration::seconds(1))
            .await
            .expect("release");
        let freed = store
            .claim_due_jobs(
                &claim("sched-a", until + chrono::Duration::minutes(1)),
                until + chrono::Duration::seconds(1),
                horizon,
                1000,
            )
            .await
            .expect("claim after release");
        assert_eq!(freed.len(), 40);
    })
    .await;
}

/// Each node keeps the specs it claims, opened, by the job's revision: an edit made through
/// another node is claimed as edited at once. The revision moves with every write of a spec, a
/// name or a paused flag, and not with a claim or the schedule's advance.
#[tokio::test]
async fn a_claim_serves_an_edit_made_on_another_node() {
    with_store(|node_a, url| async move {
        let node_b = PostgresStore::open(&url).await.expect("a second node");
        let created = workspace("revisions");
        node_a.create_workspace(&created).await.expect("create");
        let due = distant_past();
        let mut job = job(&created, "edited", Some(due));
        node_a.insert_job(&job).await.expect("insert");
        let claim = |store: &PostgresStore| {
            let store = store.clone();
            async move {
                let lease = Lease {
                    node_id: "node-a".to_owned(),
                    until: due + chrono::Duration::minutes(1),
                };
                let claimed = store
                    .claim_due_jobs(&lease, due, due + chrono::Duration::seconds(1), 10)
                    .await
                    .expect("claim");
                assert_eq!(claimed.len(), 1, "{claimed:?}");
                claimed.into_iter().next().expect("one job")
            }
        };
        let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect");
        let connection = &mut connection;
        assert_eq!(claim(&node_a).await.spec, job.spec);
        assert_eq!(claim(&node_a).await.spec, job.spec, "served again");
        assert_eq!(only_revision(connection).await, 0, "claims leave it");

        Arc::make_mut(&mut job.spec).request.url = "https://example.com/edited".into();
        node_b.update_job(&job).await.expect("edit on node b");
        assert_eq!(only_revision(connection).await, 1);
        assert_eq!(claim(&node_a).await.spec, job.spec, "the edit, on node a");

        // Renamed in the same millisecond: `updated_at` stays, the revision moves.
        Arc::make_mut(&mut job.spec).name = "renamed".into();
        node_b.update_job(&job).await.expect("rename on node b");
        assert_eq!(only_revision(connection).await, 2);
        assert_eq!(claim(&node_a).await.spec.name, "renamed");

        // Queued executions, claimed by node a's executor, carry the spec as edited on node b.
        let run_queued = |store: &PostgresStore, job: &Job, n: i64| {
            let (store, job) = (store.clone(), job.clone());
            async move {
                let queued = new_execution(&job, due - chrono::Duration::hours(1), n);
                store.insert_execution(&queued).await.expect("queue");
                let lease = Lease {
                    node_id: "node-a".to_owned(),
                    until: due + chrono::Duration::minutes(1),
                };
                let claimed = store
                    .claim_executions(&lease, due, 10)
                    .await
                    .expect("claim executions");
                assert_eq!(claimed.len(), 1, "{claimed:?}");
                assert_eq!(claimed[0].id, queued.id);
                claimed.into_iter().next().expect("one execution").spec
            }
        };
        assert_eq!(*run_queued(&node_a, &job, 0).await, *job.spec);
        assert_eq!(
            *run_queued(&node_a, &job, 1).await,
            *job.spec,
            "served again"
        );
        Arc::make_mut(&mut job.spec).request.url = "https://example.com/edited-again".into();
        node_b.update_job(&job).await.expect("edit on node b");
        assert_eq!(only_revision(connection).await, 3);
        assert_eq!(
            run_queued(&node_a, &job, 2).await.request.url,
            "https://example.com/edited-again"
        );

        for (sql, expected) in [
            // The scheduler's own writes: the schedule and the claim, nothing the spec holds.
            (
                "update jobs set next_run_at = next_run_at + interval '1 second'",
                3,
            ),
            ("update jobs set claimed_by = null, claim_until = null", 3),
            ("update jobs set failure_streak = 3", 3),
            // Written, even unchanged.
            ("update jobs set spec = spec", 4),
            ("update jobs set paused = paused", 5),
        ] {
            sqlx::query(sql).execute(&mut *connection).await.expect(sql);
            assert_eq!(only_revision(connection).await, expected, "{sql}");
        }
        // The 410 path: flag and text in one statement, one move.
        assert!(
            node_b
                .pause_job(&created.id, &job.id, due)
                .await
                .expect("pause")
        );
        assert_eq!(only_revision(connection).await, 6);
        node_b.close().await;
    })
    .await;
}

/// The revision of the database's one job.
async fn only_revision(connection: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("select revision from jobs")
        .fetch_one(connection)
        .await
        .expect("revision")
}

fn distant_past() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1999, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

fn workspace(slug: &str) -> Workspace {
    Workspace {
        id: ids::new_id(ids::WORKSPACE),
        slug: slug.to_owned(),
        signing_secret: format!("whsec_{slug}"),
        previous_signing_secret: None,
        signing_secret_rotated_at: None,
        created_at: DateTime::from_timestamp_millis(1_780_000_000_123).expect("an instant"),
    }
}

fn minimal_spec(name: &str) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "schedule": {"cron": "*/5 * * * *"},
        "request": {"url": "https://example.com/hook"}
    }))
    .expect("a minimal spec parses")
}

fn job(workspace: &Workspace, name: &str, next_run_at: Option<DateTime<Utc>>) -> Job {
    let at = DateTime::from_timestamp_millis(1_780_000_000_000).expect("an instant");
    Job {
        id: ids::new_id(ids::JOB),
        workspace_id: workspace.id.clone(),
        spec: minimal_spec(name).into(),
        next_run_at,
        created_at: at,
        updated_at: at,
    }
}

fn new_execution(job: &Job, first: DateTime<Utc>, n: i64) -> NewExecution {
    let scheduled_for = first + chrono::Duration::seconds(n);
    NewExecution {
        id: ids::new_id(ids::EXECUTION),
        workspace_id: job.workspace_id.clone(),
        job_id: job.id.clone(),
        scheduled_for,
        trigger: Trigger::Schedule,
        run_at: scheduled_for,
        lease: None,
    }
}

/// The occurrence due at `expected`, with `count` executions one second apart.
fn occurrence(
    job: &Job,
    expected: DateTime<Utc>,
    count: i64,
    concurrency: Concurrency,
) -> Occurrence {
    Occurrence {
        executions: (0..count)
            .map(|n| new_execution(job, expected, n))
            .collect(),
        job_id: job.id.clone(),
        workspace_id: job.workspace_id.clone(),
        expected_next_run_at: expected,
        new_next_run_at: Some(expected + chrono::Duration::seconds(300)),
        concurrency,
    }
}

/// Dashboard sessions, first-run setup and execution overviews.
mod sessions_conformance {
    use super::support::with_store;
    use cronhook_store::conformance_sessions;

    #[tokio::test]
    async fn sessions_expire_touch_and_end() {
        with_store(|store, _| async move {
            conformance_sessions::sessions_expire_touch_and_end(&store).await;
        })
        .await;
    }

    #[tokio::test]
    async fn first_user_is_created_once() {
        with_store(|store, _| async move {
            conformance_sessions::first_user_is_created_once(&store).await;
        })
        .await;
    }

    #[tokio::test]
    async fn execution_points_are_newest_first_and_scoped() {
        with_store(|store, _| async move {
            conformance_sessions::execution_points_are_newest_first_and_scoped(&store).await;
        })
        .await;
    }
}

/// Security checks: API key management, data keys, and sealed secret headers (with a sealer).
mod security {
    use cronhook_secrets::{Keyring, MasterKey};
    use cronhook_store::{Sealer, conformance_security};

    use super::support::with_store;

    #[tokio::test]
    async fn api_keys_are_listed_revoked_and_touched() {
        with_store(|store, _| async move {
            conformance_security::api_keys_are_listed_revoked_and_touched(&store).await
        })
        .await;
    }

    #[tokio::test]
    async fn data_keys_are_compare_and_set() {
        with_store(|store, _| async move {
            conformance_security::data_keys_are_compare_and_set(&store).await
        })
        .await;
    }

    #[tokio::test]
    async fn sealed_headers_read_back_in_the_clear() {
        with_store(|store, _| async move {
            let store =
                store.with_sealer(Sealer::new(Keyring::new(MasterKey::generate(), Vec::new())));
            conformance_security::sealed_headers_read_back_in_the_clear(&store).await
        })
        .await;
    }
}

/// Alert channels, the alert rules in `record_attempts`, and the alert outbox.
mod alerts_conformance {
    use std::sync::Arc;

    use super::support::with_store;
    use cronhook_store::{Store, conformance_alerts};

    #[tokio::test]
    async fn record_attempts_raises_alerts_once_per_streak() {
        with_store(|store, _| async move {
            conformance_alerts::record_attempts_raises_alerts_once_per_streak(&store).await;
        })
        .await;
    }

    #[tokio::test]
    async fn successes_in_one_batch_end_only_the_streaks_there_are() {
        with_store(|store, _| async move {
            conformance_alerts::successes_in_one_batch_end_only_the_streaks_there_are(&store).await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn alerts_are_claimed_once_under_concurrency() {
        with_store(|store, _| async move {
            let store: Arc<dyn Store> = Arc::new(store);
            conformance_alerts::alerts_are_claimed_once_under_concurrency(store).await;
        })
        .await;
    }

    #[tokio::test]
    async fn alert_leases_are_taken_over_and_outcomes_fenced() {
        with_store(|store, _| async move {
            conformance_alerts::alert_leases_are_taken_over_and_outcomes_fenced(&store).await;
        })
        .await;
    }

    #[tokio::test]
    async fn channels_round_trip_and_stay_in_their_workspace() {
        with_store(|store, _| async move {
            conformance_alerts::channels_round_trip_and_stay_in_their_workspace(&store).await;
        })
        .await;
    }
}
