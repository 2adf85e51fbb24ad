//! Conformance checks for alert channels, the alert rules applied by `record_attempts`, and the
//! alert outbox (`AlertStore`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};
use cronhook_core::alerting::{AlertFacts, AlertKind, ChannelTarget, DisableReason};
use cronhook_core::{Attempt, ExecutionStatus, Job, JobSpec, Timing, Trigger, ids};

use crate::conformance::{new_workspace, now};
use crate::{
    Alert, AlertStatus, AttemptRecord, Channel, DeliveryOutcome, Lease, NewExecution, NextStep,
    PageRequest, Store, StoreError, Workspace,
};

async fn new_channel(store: &dyn Store, workspace: &Workspace, name: &str) -> Channel {
    let channel = Channel {
        id: ids::new_id(ids::CHANNEL),
        workspace_id: workspace.id.clone(),
        name: name.to_owned(),
        target: ChannelTarget::Webhook {
            url: format!("https://example.com/{name}"),
        },
        created_at: now(),
        updated_at: now(),
    };
    store
        .insert_channel(&channel)
        .await
        .expect("insert channel");
    channel
}

async fn new_job(
    store: &dyn Store,
    workspace: &Workspace,
    name: &str,
    after: u32,
    auto_disable: Option<u32>,
    channels: Vec<String>,
) -> Job {
    let mut spec: JobSpec = serde_json::from_value(serde_json::json!({
        "name": name,
        "schedule": {"cron": "0 3 * * *"},
        "request": {"url": "https://example.com/job"},
    }))
    .expect("spec");
    spec.alerts.after_consecutive_failures = after;
    spec.alerts.channels = channels;
    spec.auto_disable_after_failures = auto_disable;
    let job = Job {
        id: ids::new_id(ids::JOB),
        workspace_id: workspace.id.clone(),
        spec: spec.into(),
        next_run_at: Some(now() + Duration::hours(5)),
        created_at: now(),
        updated_at: now(),
    };
    store.insert_job(&job).await.expect("insert job");
    job
}

/// Counts runs, so that each gets its own scheduled instant.
static RUNS: AtomicI64 = AtomicI64::new(1);

/// Inserts one execution of `job`, leased, at an instant of its own; returns its id.
async fn start_run(store: &dyn Store, job: &Job) -> String {
    let id = ids::new_id(ids::EXECUTION);
    let at = now();
    store
        .insert_execution(&NewExecution {
            id: id.clone(),
            workspace_id: job.workspace_id.clone(),
            job_id: job.id.clone(),
            // One execution per (job, instant): each run gets its own instant.
            scheduled_for: at - Duration::seconds(RUNS.fetch_add(1, Ordering::SeqCst)),
            trigger: Trigger::Manual,
            run_at: at,
            lease: Some(Lease {
                node_id: RUN_NODE.to_owned(),
                until: at + Duration::seconds(30),
            }),
        })
        .await
        .expect("insert execution");
    id
}

/// The node [`start_run`] leases executions to.
const RUN_NODE: &str = "conformance-node";

/// The record of a started run's one attempt, answered `status_code`, finishing it as `status`.
fn last_attempt(execution_id: &str, status_code: u16, status: ExecutionStatus) -> AttemptRecord {
    AttemptRecord {
        execution_id: execution_id.to_owned(),
        node_id: RUN_NODE.to_owned(),
        attempt: Attempt {
            number: 1,
            started_at: now(),
            duration_ms: 12,
            status_code: Some(status_code),
            error: None,
            response_headers: BTreeMap::new(),
            response_body: Some(format!("{{\"status\":{status_code}}}{}", "x".repeat(700))),
            response_body_truncated: false,
            redirect_location: None,
            timing: Timing {
                total_ms: 12,
                ..Timing::default()
            },
        },
        next: NextStep::Finish { status },
    }
}

/// Runs one execution of `job` to its end with one attempt answered `status_code`, finishing as
/// `status`; returns the execution id.
async fn run_once(
    store: &dyn Store,
    job: &Job,
    status_code: u16,
    status: ExecutionStatus,
) -> String {
    let id = start_run(store, job).await;
    let accepted = store
        .record_attempts(&[last_attempt(&id, status_code, status)])
        .await
        .expect("record");
    assert_eq!(accepted, vec![true]);
    id
}

async fn alerts_of(store: &dyn Store, workspace: &Workspace) -> Vec<Alert> {
    let mut alerts = store
        .list_alerts(
            &workspace.id,
            &PageRequest {
                limit: 500,
                after: None,
            },
        )
        .await
        .expect("list alerts")
        .items;
    alerts.reverse();
    alerts
}

fn kinds_for(alerts: &[Alert], job: &Job) -> Vec<(AlertKind, String)> {
    alerts
        .iter()
        .filter(|alert| alert.job_id.as_deref() == Some(job.id.as_str()))
        .map(|alert| (alert.kind, alert.channel_id.clone()))
        .collect()
}

/// Successes recorded in one call end the streaks of the jobs that had one, and only theirs: a
/// store may look up which jobs are in a streak for the whole batch.
pub async fn successes_in_one_batch_end_only_the_streaks_there_are(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let channel = new_channel(store, &workspace, "only").await;
    let channels = vec![channel.id.clone()];
    let alerted = new_job(store, &workspace, "alerted", 1, None, channels.clone()).await;
    let below = new_job(store, &workspace, "below", 2, None, channels.clone()).await;
    let healthy = new_job(store, &workspace, "healthy", 1, None, channels).await;
    run_once(store, &alerted, 500, ExecutionStatus::Failed).await;
    run_once(store, &below, 500, ExecutionStatus::Failed).await;
    run_once(store, &healthy, 200, ExecutionStatus::Succeeded).await;

    let mut batch = Vec::new();
    for job in [&healthy, &alerted, &below, &healthy] {
        let id = start_run(store, job).await;
        batch.push(last_attempt(&id, 200, ExecutionStatus::Succeeded));
    }
    let accepted = store
        .record_attempts(&batch)
        .await
        .expect("record the batch");
    assert_eq!(accepted, vec![true; 4]);
    let alerts = alerts_of(store, &workspace).await;
    assert_eq!(
        kinds_for(&alerts, &alerted),
        vec![
            (AlertKind::Failing, channel.id.clone()),
            (AlertKind::Recovered, channel.id.clone())
        ]
    );
    assert_eq!(
        alerts
            .iter()
            .find(|alert| alert.kind == AlertKind::Recovered)
            .and_then(|alert| alert.execution_id.as_deref()),
        Some(batch[1].execution_id.as_str()),
        "recovered by its own success in the batch"
    );
    assert!(kinds_for(&alerts, &healthy).is_empty());
    assert!(kinds_for(&alerts, &below).is_empty());
    // `below`'s streak of one ended too: one more failure is a streak of one, under its
    // threshold of two, so still no alert.
    run_once(store, &below, 500, ExecutionStatus::Failed).await;
    assert!(kinds_for(&alerts_of(store, &workspace).await, &below).is_empty());
    run_once(store, &below, 500, ExecutionStatus::Failed).await;
    assert_eq!(
        kinds_for(&alerts_of(store, &workspace).await, &below),
        vec![(AlertKind::Failing, channel.id.clone())],
        "a new streak of two"
    );
}

/// The streak rules through `record_attempts`: one alert per channel per streak, a recovery,
/// default channels, missing channels passed over, auto-disable and 410 pausing the job,
/// cancelled executions not counting.
pub async fn record_attempts_raises_alerts_once_per_streak(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let first = new_channel(store, &workspace, "first").await;
    let second = new_channel(store, &workspace, "second").await;
    store
        .set_default_alert_channels(&workspace.id, std::slice::from_ref(&first.id))
        .await
        .expect("defaults");

    // Threshold 2, default channels.
    let job = new_job(store, &workspace, "streak", 2, None, Vec::new()).await;
    let mut executions = Vec::new();
    for _ in 0..5 {
        executions.push(run_once(store, &job, 500, ExecutionStatus::Failed).await);
    }
    // A cancelled execution neither extends nor ends the streak.
    run_once(store, &job, 500, ExecutionStatus::Cancelled).await;
    let alerts = alerts_of(store, &workspace).await;
    assert_eq!(
        kinds_for(&alerts, &job),
        vec![(AlertKind::Failing, first.id.clone())]
    );
    let failing = &alerts[0];
    assert_eq!(
        failing.execution_id.as_deref(),
        Some(executions[1].as_str())
    );
    assert_eq!(failing.status, AlertStatus::Pending);
    assert_eq!(failing.facts.streak, 2);
    assert_eq!(failing.facts.status_code, Some(500));
    assert_eq!(failing.facts.job_name.as_deref(), Some("streak"));
    assert_eq!(failing.facts.next_run_at, job.next_run_at);
    assert!(failing.facts.streak_started_at.is_some());
    assert_eq!(
        failing.facts.body_excerpt.as_deref().map(str::len),
        Some(cronhook_core::alerting::ALERT_BODY_EXCERPT_BYTES)
    );
    let recovered_by = run_once(store, &job, 200, ExecutionStatus::Succeeded).await;
    run_once(store, &job, 200, ExecutionStatus::Succeeded).await;
    let alerts = alerts_of(store, &workspace).await;
    assert_eq!(
        kinds_for(&alerts, &job),
        vec![
            (AlertKind::Failing, first.id.clone()),
            (AlertKind::Recovered, first.id.clone())
        ]
    );
    let recovered = &alerts[1];
    assert_eq!(
        recovered.execution_id.as_deref(),
        Some(recovered_by.as_str())
    );
    assert_eq!(recovered.facts.streak, 5, "the streak that ended");

    // A job that names channels: the missing one is passed over, each named one alerted once.
    let named = new_job(
        store,
        &workspace,
        "named",
        1,
        None,
        vec![
            second.id.clone(),
            ids::new_id(ids::CHANNEL),
            first.id.clone(),
        ],
    )
    .await;
    run_once(store, &named, 503, ExecutionStatus::Failed).await;
    run_once(store, &named, 503, ExecutionStatus::Failed).await;
    let alerts = alerts_of(store, &workspace).await;
    assert_eq!(
        kinds_for(&alerts, &named),
        vec![
            (AlertKind::Failing, second.id.clone()),
            (AlertKind::Failing, first.id.clone())
        ]
    );

    // Auto-disable: paused in the same transaction, said once, below the alert threshold.
    let disabled = new_job(store, &workspace, "disabled", 10, Some(3), Vec::new()).await;
    for _ in 0..3 {
        run_once(store, &disabled, 500, ExecutionStatus::Failed).await;
    }
    let read = store
        .job(&workspace.id, &disabled.id)
        .await
        .expect("read")
        .expect("job");
    assert!(read.spec.paused, "auto-disabled");
    assert_eq!(read.next_run_at, None);
    // A manual run of the paused job fails again: nothing more.
    run_once(store, &disabled, 500, ExecutionStatus::Failed).await;
    let alerts = alerts_of(store, &workspace).await;
    let of_disabled: Vec<&Alert> = alerts
        .iter()
        .filter(|alert| alert.job_id.as_deref() == Some(disabled.id.as_str()))
        .collect();
    assert_eq!(of_disabled.len(), 1);
    assert_eq!(of_disabled[0].kind, AlertKind::Disabled);
    assert_eq!(
        of_disabled[0].facts.disabled_because,
        Some(DisableReason::AutoDisable)
    );
    assert_eq!(of_disabled[0].facts.next_run_at, None);

    // 410 Gone: paused at once, with a `disabled` alert.
    let gone = new_job(store, &workspace, "gone", 5, None, Vec::new()).await;
    run_once(store, &gone, 410, ExecutionStatus::Failed).await;
    let read = store
        .job(&workspace.id, &gone.id)
        .await
        .expect("read")
        .expect("job");
    assert!(read.spec.paused, "410 pauses");
    let alerts = alerts_of(store, &workspace).await;
    let of_gone: Vec<&Alert> = alerts
        .iter()
        .filter(|alert| alert.job_id.as_deref() == Some(gone.id.as_str()))
        .collect();
    assert_eq!(of_gone.len(), 1);
    assert_eq!(of_gone[0].kind, AlertKind::Disabled);
    assert_eq!(of_gone[0].facts.disabled_because, Some(DisableReason::Gone));
}

fn test_alert(workspace: &Workspace, channel: &Channel, at: DateTime<Utc>) -> Alert {
    Alert {
        id: ids::new_id(ids::ALERT),
        workspace_id: workspace.id.clone(),
        job_id: None,
        execution_id: None,
        channel_id: channel.id.clone(),
        kind: AlertKind::Test,
        status: AlertStatus::Pending,
        attempts: 0,
        error: None,
        facts: AlertFacts {
            channel_name: Some(channel.name.clone()),
            ..AlertFacts::default()
        },
        created_at: at,
        next_attempt_at: Some(at),
        delivered_at: None,
    }
}

fn lease(node: &str, until: DateTime<Utc>) -> Lease {
    Lease {
        node_id: node.to_owned(),
        until,
    }
}

/// Concurrent claimers never take one alert twice, and between them take every due one.
pub async fn alerts_are_claimed_once_under_concurrency(store: Arc<dyn Store>) {
    let workspace = new_workspace(store.as_ref()).await;
    let channel = new_channel(store.as_ref(), &workspace, "many").await;
    let at = now();
    let mut expected = HashSet::new();
    for _ in 0..40 {
        let alert = test_alert(&workspace, &channel, at);
        expected.insert(alert.id.clone());
        store.insert_alert(&alert).await.expect("insert alert");
    }
    let mut claimers = Vec::new();
    for index in 0..4 {
        let store = Arc::clone(&store);
        claimers.push(tokio::spawn(async move {
            let node = format!("claimer-{index}");
            let mut mine = Vec::new();
            for _ in 0..5 {
                let claimed = store
                    .claim_alerts(&lease(&node, at + Duration::seconds(60)), at, 4)
                    .await
                    .expect("claim");
                mine.extend(claimed.into_iter().map(|claimed| {
                    assert!(claimed.channel.is_some(), "the channel comes along");
                    claimed.alert.id
                }));
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for claimer in claimers {
        for id in claimer.await.expect("claimer") {
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!(seen, expected, "every due alert claimed once");
    let again = store
        .claim_alerts(&lease("late", at + Duration::seconds(60)), at, 100)
        .await
        .expect("claim");
    assert!(again.is_empty(), "leased alerts are not claimable");
}

/// An alert whose holder's lease ran out is claimed again; the old holder's outcome is refused;
/// retries wait for their time; a failed alert is never claimed again.
pub async fn alert_leases_are_taken_over_and_outcomes_fenced(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let channel = new_channel(store, &workspace, "leased").await;
    let at = now();
    let alert = test_alert(&workspace, &channel, at);
    store.insert_alert(&alert).await.expect("insert");
    assert_eq!(store.next_alert_due().await.expect("due"), Some(at));
    let first = store
        .claim_alerts(&lease("first", at + Duration::seconds(30)), at, 10)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    // Held: not claimable, and not due before the lease ends.
    let none = store
        .claim_alerts(
            &lease("second", at + Duration::seconds(60)),
            at + Duration::seconds(10),
            10,
        )
        .await
        .expect("claim");
    assert!(none.is_empty());
    assert_eq!(
        store.next_alert_due().await.expect("due"),
        Some(at + Duration::seconds(30))
    );
    // The first holder died: after its lease the second node takes the alert.
    let later = at + Duration::seconds(31);
    let second = store
        .claim_alerts(&lease("second", later + Duration::seconds(30)), later, 10)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].alert.id, alert.id);
    let stale = store
        .complete_alert(
            &alert.id,
            "first",
            &DeliveryOutcome::Delivered { at: later },
        )
        .await
        .expect("complete");
    assert!(!stale, "the old holder is fenced out");
    let retry_at = later + Duration::seconds(10);
    assert!(
        store
            .complete_alert(
                &alert.id,
                "second",
                &DeliveryOutcome::Retry {
                    error: "HTTP 500: down".into(),
                    at: later,
                    retry_at,
                },
            )
            .await
            .expect("complete")
    );
    let listed = &alerts_of(store, &workspace).await[0];
    assert_eq!(listed.status, AlertStatus::Pending);
    assert_eq!(listed.attempts, 1);
    assert_eq!(listed.error.as_deref(), Some("HTTP 500: down"));
    assert_eq!(listed.next_attempt_at, Some(retry_at));
    let early = store
        .claim_alerts(&lease("third", later + Duration::seconds(60)), later, 10)
        .await
        .expect("claim");
    assert!(early.is_empty(), "a retry waits for its time");
    let third = store
        .claim_alerts(
            &lease("third", retry_at + Duration::seconds(30)),
            retry_at,
            10,
        )
        .await
        .expect("claim");
    assert_eq!(third.len(), 1);
    assert!(
        store
            .complete_alert(
                &alert.id,
                "third",
                &DeliveryOutcome::Failed {
                    error: "HTTP 404: no such hook".into(),
                    at: retry_at,
                },
            )
            .await
            .expect("complete")
    );
    let listed = &alerts_of(store, &workspace).await[0];
    assert_eq!(listed.status, AlertStatus::Failed);
    assert_eq!(listed.attempts, 2);
    assert_eq!(store.next_alert_due().await.expect("due"), None);
    let never = store
        .claim_alerts(
            &lease("fourth", retry_at + Duration::hours(2)),
            retry_at + Duration::hours(1),
            10,
        )
        .await
        .expect("claim");
    assert!(never.is_empty());

    // Delivered.
    let delivered = test_alert(&workspace, &channel, at);
    store.insert_alert(&delivered).await.expect("insert");
    store
        .claim_alerts(&lease("fifth", at + Duration::seconds(30)), at, 10)
        .await
        .expect("claim");
    assert!(
        store
            .complete_alert(&delivered.id, "fifth", &DeliveryOutcome::Delivered { at })
            .await
            .expect("complete")
    );
    let listed = &alerts_of(store, &workspace).await[1];
    assert_eq!(listed.status, AlertStatus::Delivered);
    assert_eq!(listed.delivered_at, Some(at));
}

/// Channels: round trip, unique names, workspaces apart, default channels that follow deletes.
pub async fn channels_round_trip_and_stay_in_their_workspace(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let other = new_workspace(store).await;
    let channel = Channel {
        id: ids::new_id(ids::CHANNEL),
        workspace_id: workspace.id.clone(),
        name: "ops".into(),
        target: ChannelTarget::Email {
            to: vec!["ops@example.com".into(), "oncall@example.com".into()],
        },
        created_at: now(),
        updated_at: now(),
    };
    store.insert_channel(&channel).await.expect("insert");
    assert_eq!(
        store
            .channel(&workspace.id, &channel.id)
            .await
            .expect("read"),
        Some(channel.clone())
    );
    assert_eq!(
        store.channel(&other.id, &channel.id).await.expect("read"),
        None
    );
    let clash = Channel {
        id: ids::new_id(ids::CHANNEL),
        ..channel.clone()
    };
    assert!(matches!(
        store.insert_channel(&clash).await,
        Err(StoreError::Conflict { .. })
    ));
    // The same name in another workspace is fine.
    store
        .insert_channel(&Channel {
            workspace_id: other.id.clone(),
            ..clash.clone()
        })
        .await
        .expect("another workspace");
    let slack = Channel {
        id: ids::new_id(ids::CHANNEL),
        workspace_id: workspace.id.clone(),
        name: "slack".into(),
        target: ChannelTarget::Slack {
            webhook_url: "https://hooks.slack.com/services/T/B/x".into(),
        },
        created_at: now(),
        updated_at: now(),
    };
    store.insert_channel(&slack).await.expect("insert slack");
    let changed = Channel {
        name: "ops-team".into(),
        updated_at: now() + Duration::seconds(1),
        ..channel.clone()
    };
    store.update_channel(&changed).await.expect("update");
    let page = store
        .list_channels(
            &workspace.id,
            &PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await
        .expect("list");
    assert_eq!(page.items, vec![changed.clone()]);
    let rest = store
        .list_channels(
            &workspace.id,
            &PageRequest {
                limit: 10,
                after: page.next_after,
            },
        )
        .await
        .expect("list");
    assert_eq!(rest.items, vec![slack.clone()]);
    assert!(matches!(
        store
            .update_channel(&Channel {
                workspace_id: other.id.clone(),
                ..changed.clone()
            })
            .await,
        Err(StoreError::NotFound)
    ));

    store
        .set_default_alert_channels(&workspace.id, &[slack.id.clone(), channel.id.clone()])
        .await
        .expect("defaults");
    assert_eq!(
        store
            .default_alert_channels(&workspace.id)
            .await
            .expect("defaults"),
        vec![slack.id.clone(), channel.id.clone()]
    );
    // Another workspace's channel is refused, and nothing changes.
    assert!(matches!(
        store
            .set_default_alert_channels(&other.id, std::slice::from_ref(&channel.id))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .default_alert_channels(&other.id)
            .await
            .expect("defaults")
            .is_empty()
    );
    assert!(
        !store
            .delete_channel(&other.id, &slack.id)
            .await
            .expect("delete")
    );
    assert!(
        store
            .delete_channel(&workspace.id, &slack.id)
            .await
            .expect("delete")
    );
    assert_eq!(
        store
            .default_alert_channels(&workspace.id)
            .await
            .expect("defaults"),
        vec![channel.id.clone()]
    );
    // A pending alert of a deleted channel is claimed without its channel.
    let at = now();
    let orphan = test_alert(&workspace, &slack, at);
    store.insert_alert(&orphan).await.expect("insert");
    let claimed = store
        .claim_alerts(&lease("orphans", at + Duration::seconds(30)), at, 10)
        .await
        .expect("claim");
    let mine: Vec<_> = claimed
        .iter()
        .filter(|claimed| claimed.alert.id == orphan.id)
        .collect();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].channel.is_none());
    // Alerts of another workspace are not listed.
    assert!(alerts_of(store, &other).await.is_empty());
}
