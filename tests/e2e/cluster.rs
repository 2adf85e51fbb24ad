//! Several `cronhook serve` processes on one PostgreSQL: no occurrence fired twice, none lost,
//! when nodes are killed, paused or the database restarts. Each test runs its own private
//! PostgreSQL cluster, so restarting it disturbs nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use cronhook_tests::postgres::PgCluster;
use cronhook_tests::{Api, Cronhook, ServeOptions, Target, instant, json};

/// The lease used by the fault tests: a killed node's work is taken over within it.
const LEASE_SECONDS: u64 = 4;

fn node_options() -> ServeOptions {
    ServeOptions {
        extra_args: vec!["--lease-seconds".into(), LEASE_SECONDS.to_string()],
        ..ServeOptions::default()
    }
}

async fn start_nodes(database_url: &str, count: usize) -> Vec<Cronhook> {
    let mut nodes = Vec::new();
    for _ in 0..count {
        nodes.push(Cronhook::start_on(Some(database_url), node_options()).await);
    }
    nodes
}

/// What the checker found, over every (job, second) expected in the window.
#[derive(Debug, Default)]
struct Tally {
    expected: usize,
    missing: usize,
    duplicated: usize,
    not_succeeded: usize,
    undelivered: usize,
    redelivered: usize,
    /// Deliveries that arrived before their scheduled instant (beyond 2 ms of clock precision).
    early: usize,
}

/// Compares the occurrences expected of every-second jobs in `[from, to]` with the executions
/// recorded and the deliveries the target saw.
async fn check(
    api: &Api,
    target: &Target,
    jobs: &[(String, String)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Tally {
    let mut tally = Tally::default();
    let deliveries = target.all_received();
    let mut by_execution: HashMap<String, usize> = HashMap::new();
    for delivery in &deliveries {
        if let Some(id) = delivery.header("webhook-id") {
            *by_execution.entry(id.to_owned()).or_default() += 1;
        }
        if let Some(scheduled) = delivery.header("cronhook-scheduled-for") {
            let scheduled = instant(&json!(scheduled));
            if delivery.at < scheduled - TimeDelta::milliseconds(2) {
                tally.early += 1;
            }
        }
    }
    for (job_id, _path) in jobs {
        let mut per_second: BTreeMap<i64, Vec<serde_json::Value>> = BTreeMap::new();
        for execution in api.executions(job_id).await {
            let at = instant(&execution["scheduled_for"]);
            if at >= from && at <= to {
                per_second
                    .entry(at.timestamp())
                    .or_default()
                    .push(execution);
            }
        }
        let mut second = from;
        while second <= to {
            tally.expected += 1;
            match per_second.get(&second.timestamp()).map(Vec::as_slice) {
                None | Some([]) => tally.missing += 1,
                Some(executions) => {
                    tally.duplicated += executions.len() - 1;
                    for execution in executions {
                        if execution["status"] != "succeeded" {
                            tally.not_succeeded += 1;
                        }
                        match by_execution.get(execution["id"].as_str().unwrap_or_default()) {
                            None => tally.undelivered += 1,
                            Some(1) => {}
                            Some(_) => tally.redelivered += 1,
                        }
                    }
                }
            }
            second += TimeDelta::seconds(1);
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_survive_kills_and_a_database_restart_without_losing_or_doubling() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let mut nodes = start_nodes(&url, 3).await;
    let target = Target::start().await;
    let api = nodes[0].api("fleet");

    let mut jobs = Vec::new();
    for index in 0..100 {
        let path = format!("/j/{index}");
        let created = api
            .create_job(json!({
                "name": format!("job-{index}"),
                "schedule": {"cron": "* * * * * *"},
                "request": {"url": target.url(&path)},
                "misfire": "fire_all",
                "retry": {"max_attempts": 5, "initial_delay_ms": 200, "jitter": false},
            }))
            .await;
        jobs.push((created["id"].as_str().expect("id").to_owned(), path));
    }
    let from = Utc::now()
        .duration_trunc(TimeDelta::seconds(1))
        .expect("truncate")
        + TimeDelta::seconds(2);

    tokio::time::sleep(Duration::from_secs(5)).await;
    nodes[0].kill();
    let first_kill = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    nodes[0].restart().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.restart();
    tokio::time::sleep(Duration::from_secs(5)).await;
    nodes[1].kill();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let to = Utc::now()
        .duration_trunc(TimeDelta::seconds(1))
        .expect("truncate")
        - TimeDelta::seconds(2);
    // Leases of the killed node run out, survivors take its work over and finish it.
    let survivor = Api {
        base_url: nodes[2].base_url.clone(),
        ..api.clone()
    };
    let deadline = Instant::now() + Duration::from_secs(LEASE_SECONDS * 4 + 10);
    let tally = loop {
        let tally = check(&survivor, &target, &jobs, from, to).await;
        if (tally.missing == 0 && tally.not_succeeded == 0 && tally.undelivered == 0)
            || Instant::now() > deadline
        {
            break tally;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!(
        "checker: {tally:?} over {} s; first kill {:.1} s before the check",
        (to - from).num_seconds() + 1,
        first_kill.elapsed().as_secs_f64()
    );
    assert!(tally.expected >= 100 * 15, "{tally:?}");
    assert_eq!(tally.missing, 0, "lost occurrences: {tally:?}");
    assert_eq!(tally.duplicated, 0, "occurrences fired twice: {tally:?}");
    assert_eq!(tally.not_succeeded, 0, "{tally:?}");
    assert_eq!(tally.undelivered, 0, "{tally:?}");
    assert_eq!(
        tally.early, 0,
        "fired before the scheduled instant: {tally:?}"
    );
    assert!(
        tally.redelivered * 100 <= tally.expected,
        "deliveries repeated beyond the cut attempts: {tally:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_node_cannot_write_a_stale_result() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let mut nodes = start_nodes(&url, 2).await;
    let target = Target::start().await;
    target.respond("/slow", &[200], Duration::from_secs(7));
    let api = nodes[0].api("fleet");
    let created = api
        .create_job(json!({
            "name": "slow",
            "schedule": {"cron": "0 0 1 1 *"},
            "request": {"url": target.url("/slow"), "timeout_ms": 30_000},
            "retry": {"max_attempts": 3, "initial_delay_ms": 100, "jitter": false},
        }))
        .await;
    // Run now through node 0: its own executor takes the execution.
    let run = api
        .call(
            "POST",
            &format!("/api/v1/jobs/{}/run", created["id"].as_str().expect("id")),
            None,
        )
        .await;
    let execution_id = run.body["id"].as_str().expect("execution id").to_owned();
    target.wait_for("/slow", 1, Duration::from_secs(5)).await;

    nodes[0].signal("STOP");
    let stopped = Instant::now();
    // Past the lease, node 1 claims it: the cut attempt is recorded, a new one is sent.
    let second = target
        .wait_for("/slow", 2, Duration::from_secs(LEASE_SECONDS + 6))
        .await;
    assert_eq!(second.len(), 2, "node 1 took the execution over");
    let takeover = stopped.elapsed();
    nodes[0].signal("CONT");

    let other = Api {
        base_url: nodes[1].base_url.clone(),
        ..api.clone()
    };
    let execution = other
        .wait_final(&execution_id, Duration::from_secs(20))
        .await;
    // Node 0's answer (7 s after its request) arrived after the takeover and was refused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let execution_after = other
        .call("GET", &format!("/api/v1/executions/{execution_id}"), None)
        .await
        .body;
    assert_eq!(
        execution, execution_after,
        "nothing written after the final state"
    );
    assert_eq!(execution["status"], "succeeded", "{execution:?}");
    let attempts = execution["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{execution:?}");
    assert_eq!(attempts[0]["error"]["kind"], "interrupted");
    assert_eq!(attempts[1]["status_code"], 200);
    let ids: BTreeSet<_> = target
        .received("/slow")
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 1, "one webhook-id across nodes");
    eprintln!(
        "takeover after SIGSTOP: {:.1} s (lease {LEASE_SECONDS} s)",
        takeover.as_secs_f64()
    );
    nodes[0].kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_reconnect_after_a_database_restart_and_report_ready_again() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let nodes = start_nodes(&url, 1).await;
    let node = &nodes[0];
    let target = Target::start().await;
    let api = node.api("fleet");
    api.create_job(json!({
        "name": "tick",
        "schedule": {"cron": "* * * * * *"},
        "request": {"url": target.url("/tick")},
    }))
    .await;
    target.wait_for("/tick", 2, Duration::from_secs(5)).await;

    cluster.stop();
    let down = Instant::now();
    let mut saw_not_ready = false;
    while down.elapsed() < Duration::from_secs(3) {
        let ready = node
            .http
            .get(node.url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if ready.is_ok_and(|status| status == 503) {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        saw_not_ready,
        "/readyz says not ready while the database is down"
    );
    let healthy = node
        .http
        .get(node.url("/healthz"))
        .send()
        .await
        .expect("process up");
    assert_eq!(healthy.status(), 200, "the process itself is up");

    cluster.restart_after_stop();
    let back = Instant::now();
    let mut ready_again = None;
    while back.elapsed() < Duration::from_secs(10) {
        let ready = node
            .http
            .get(node.url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if ready.is_ok_and(|status| status == 200) {
            ready_again = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_again = ready_again.expect("ready again within 10 s");
    let before = target.received("/tick").len();
    let after = target
        .wait_for("/tick", before + 2, Duration::from_secs(5))
        .await;
    assert!(
        after.len() >= before + 2,
        "fires again after the database came back"
    );
    eprintln!(
        "ready again {:.1} s after the database restarted",
        ready_again.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_node_reports_itself_with_its_roles() {
    let database = cronhook_tests::postgres::TestDatabase::create();
    let full = Cronhook::start_on(Some(&database.url), node_options()).await;
    let workers = Cronhook::start_on(
        Some(&database.url),
        ServeOptions {
            extra_args: vec![
                "--role".into(),
                "api,executor".into(),
                "--node-id".into(),
                "worker-1".into(),
            ],
            ..ServeOptions::default()
        },
    )
    .await;
    let api = full.api("fleet");
    let deadline = Instant::now() + Duration::from_secs(10);
    let nodes = loop {
        let reply = api.call("GET", "/api/v1/nodes", None).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let nodes = reply.body["data"].as_array().cloned().unwrap_or_default();
        if nodes.len() >= 2 || Instant::now() > deadline {
            break nodes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let worker = nodes
        .iter()
        .find(|n| n["name"] == "worker-1")
        .expect("the worker is listed under its name");
    assert_eq!(worker["roles"], json!(["api", "executor"]));
    assert_eq!(worker["alive"], true);
    assert!(
        worker["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("worker-1-"))
    );
    let other = nodes
        .iter()
        .find(|n| n["name"] != "worker-1")
        .expect("the other node");
    assert_eq!(other["roles"], json!(["api", "scheduler", "executor"]));
    drop(workers);
}

/// A scheduler-only node queues each occurrence and an executor-only node claims and sends it,
/// with the job's spec as it stands at the claim. The executor keeps opened specs by the job's
/// revision: an edit made through the scheduler node is sent by the executor node within a
/// second or two, and nothing of the old spec is sent once the new one has been.
#[tokio::test(flavor = "multi_thread")]
async fn an_executor_node_sends_each_edit_made_through_a_scheduler_node() {
    let database = cronhook_tests::postgres::TestDatabase::create();
    let role = |roles: &str| ServeOptions {
        extra_args: vec!["--role".into(), roles.into()],
        ..ServeOptions::default()
    };
    let scheduler = Cronhook::start_on(Some(&database.url), role("api,scheduler")).await;
    let executor = Cronhook::start_on(Some(&database.url), role("api,executor")).await;
    let target = Target::start().await;
    let api = scheduler.api("edits");
    let created = api
        .create_job(json!({
            "name": "edited",
            "schedule": {"cron": "* * * * * *"},
            "request": {"url": target.url("/edited"), "headers": {"X-Version": "1"}},
        }))
        .await;
    let job_id = created["id"].as_str().expect("id").to_owned();
    let versions = || {
        target
            .received("/edited")
            .iter()
            .map(|request| request.header("x-version").unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    let first = target.wait_for("/edited", 2, Duration::from_secs(10)).await;
    assert!(first.len() >= 2, "the executor node sends: {first:?}");

    for version in ["2", "3"] {
        let edited = api
            .call(
                "PATCH",
                &format!("/api/v1/jobs/{job_id}"),
                Some(json!({"request": {"headers": {"X-Version": version}}})),
            )
            .await;
        assert_eq!(edited.status, 200, "{}", edited.body);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !versions().iter().any(|sent| sent == version) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = versions();
        let first_new = sent
            .iter()
            .position(|sent| sent == version)
            .unwrap_or_else(|| panic!("version {version} never sent: {sent:?}"));
        // Two more seconds of firing: all of them the new version.
        let until = sent.len() + 2;
        target
            .wait_for("/edited", until, Duration::from_secs(10))
            .await;
        let sent = versions();
        assert!(
            sent[first_new..].iter().all(|sent| sent == version),
            "an older spec sent after version {version}: {sent:?}"
        );
    }
    drop(executor);
}
