//! Scheduling semantics end to end: misfires after a crash, overlap policies, edits.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cronhook_tests::{Api, Cronhook, ServeOptions, Target, instant, json};

fn every_second(name: &str, url: &str) -> serde_json::Value {
    json!({
        "name": name,
        "schedule": {"cron": "* * * * * *"},
        "request": {"url": url},
    })
}

/// (scheduled_for, trigger, status) of every execution of a job, oldest first.
async fn history(api: &Api, job_id: &str) -> Vec<(DateTime<Utc>, String, String)> {
    let mut rows: Vec<_> = api
        .executions(job_id)
        .await
        .iter()
        .map(|e| {
            (
                instant(&e["scheduled_for"]),
                e["trigger"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_and_a_restart_5_s_later_each_misfire_policy_does_what_it_says() {
    let mut cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let mut ids = Vec::new();
    for policy in ["skip", "fire_once", "fire_all"] {
        let mut spec = every_second(policy, &target.url(&format!("/{policy}")));
        spec["misfire"] = json!(policy);
        ids.push(
            api.create_job(spec).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    target
        .wait_for("/fire_all", 2, Duration::from_secs(5))
        .await;
    cronhook.kill();
    let killed_at = Utc::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    cronhook.restart().await;
    let restarted_at = Utc::now();
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let [skip, once, all] = [&ids[0], &ids[1], &ids[2]];
    let downtime = |at: &DateTime<Utc>| {
        *at > killed_at + chrono::Duration::seconds(1)
            && *at < restarted_at - chrono::Duration::seconds(2)
    };

    let skip_history = history(&api, skip).await;
    assert!(
        skip_history
            .iter()
            .all(|(_, trigger, _)| trigger == "schedule"),
        "{skip_history:?}"
    );
    assert!(
        !skip_history.iter().any(|(at, _, _)| downtime(at)),
        "skip fires nothing missed: {skip_history:?}"
    );

    let once_history = history(&api, once).await;
    let catchups: Vec<_> = once_history
        .iter()
        .filter(|(_, t, _)| t == "catchup")
        .collect();
    assert_eq!(
        catchups.len(),
        1,
        "fire_once: one catch-up: {once_history:?}"
    );
    assert!(catchups[0].0 <= restarted_at);

    let all_history = history(&api, all).await;
    let catchups = all_history
        .iter()
        .filter(|(_, t, _)| t == "catchup")
        .count();
    assert!(
        catchups >= 4,
        "fire_all: every missed second: {all_history:?}"
    );
    // Every second from the first to the last has exactly one execution: nothing lost, nothing twice.
    let seconds: Vec<i64> = all_history
        .iter()
        .map(|(at, _, _)| at.timestamp())
        .collect();
    let distinct: BTreeSet<i64> = seconds.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        seconds.len(),
        "one execution per occurrence"
    );
    let (first, last) = (seconds[0], seconds[seconds.len() - 1]);
    assert_eq!(
        distinct.len() as i64,
        last - first + 1,
        "no second missing: {seconds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forbid_never_overlaps_a_slow_target_and_records_skipped_occurrences() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    target.respond("/slow", &[200], Duration::from_millis(2_500));
    let api = cronhook.api("acme");
    let mut spec = every_second("exclusive", &target.url("/slow"));
    spec["concurrency"] = json!("forbid");
    let job_id = api.create_job(spec).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(6_000)).await;

    let arrivals = target.received("/slow");
    assert!(arrivals.len() >= 2, "{} arrivals", arrivals.len());
    for pair in arrivals.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap.num_milliseconds() >= 2_500,
            "two attempts in flight at once: gap {gap}"
        );
    }
    let rows = history(&api, &job_id).await;
    let skipped = rows
        .iter()
        .filter(|(_, _, status)| status == "skipped")
        .count();
    assert!(
        skipped >= 2,
        "occurrences during a run are recorded skipped: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replace_cancels_the_running_attempt_and_starts_the_new_one() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    target.respond("/stuck", &[200], Duration::from_secs(20));
    let api = cronhook.api("acme");
    let mut spec = json!({
        "name": "replacing",
        "schedule": {"cron": "*/2 * * * * *"},
        "request": {"url": target.url("/stuck"), "timeout_ms": 60_000},
        "concurrency": "replace",
    });
    spec["retry"] = json!({"max_attempts": 1});
    let job_id = api.create_job(spec).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(5_500)).await;

    let arrivals = target.received("/stuck");
    assert!(
        arrivals.len() >= 2,
        "each occurrence starts anew: {} arrivals",
        arrivals.len()
    );
    let executions = api.executions(&job_id).await;
    let cancelled: Vec<_> = executions
        .iter()
        .filter(|e| e["status"] == "cancelled")
        .collect();
    assert!(!cancelled.is_empty(), "{executions:?}");
    for execution in &cancelled {
        let attempts = execution["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{execution:?}");
        assert_eq!(attempts[0]["error"]["kind"], "cancelled");
    }
    let running = executions
        .iter()
        .filter(|e| e["status"] == "running")
        .count();
    assert!(running <= 1, "never two in flight: {executions:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_a_schedule_never_fires_the_job_at_edit_time() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let created = api
        .create_job(json!({"name": "yearly", "schedule": {"cron": "0 0 1 1 *"}, "request": {"url": target.url("/e")}}))
        .await;
    let job_id = created["id"].as_str().expect("id");
    for cron in ["0 0 2 1 *", "30 4 * * 1-5", "@monthly"] {
        let patched = api
            .call(
                "PATCH",
                &format!("/api/v1/jobs/{job_id}"),
                Some(json!({"schedule": {"cron": cron, "timezone": "Europe/Berlin"}})),
            )
            .await;
        assert_eq!(patched.status, 200, "{patched:?}");
        assert!(instant(&patched.body["next_run_at"]) > Utc::now());
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(api.executions(job_id).await.is_empty());
    assert!(target.all_received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preview_describes_the_schedule_and_lists_local_times() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let api = cronhook.api("acme");
    let reply = api
        .call(
            "GET",
            "/api/v1/schedule/preview?cron=0%203%20*%20*%201-5&timezone=Europe/Berlin&count=3&from=2026-03-27T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let description = reply.body["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("03:00") && description.contains("Monday through Friday"),
        "{description}"
    );
    let next: Vec<_> = reply.body["next"]
        .as_array()
        .expect("next")
        .iter()
        .map(instant)
        .collect();
    // Friday 27 March (CET, UTC+1), then Monday 30 and Tuesday 31 March (CEST, UTC+2).
    assert_eq!(
        next,
        [
            "2026-03-27T02:00:00Z",
            "2026-03-30T01:00:00Z",
            "2026-03-31T01:00:00Z"
        ]
        .map(|t| instant(&json!(t)))
    );
    assert_eq!(reply.body["next_local"][1], "2026-03-30T03:00:00+02:00");

    let too_many = api
        .call(
            "GET",
            "/api/v1/schedule/preview?cron=*%20*%20*%20*%20*&count=101",
            None,
        )
        .await;
    assert_eq!(too_many.status, 400, "{too_many:?}");
    let never = api
        .call(
            "GET",
            "/api/v1/schedule/preview?cron=0%200%2030%202%20*",
            None,
        )
        .await;
    assert_eq!(never.status, 422, "{never:?}");
    assert!(
        never.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("cron")
    );
}

/// Occurrences are written and handed to the executor ahead of their instant, but sent at the
/// instant, never before; a pause that lands while one is prepared keeps it from being sent.
#[tokio::test(flavor = "multi_thread")]
async fn prepared_occurrences_are_sent_at_their_instant_and_a_pause_discards_them() {
    let cronhook = Cronhook::start(ServeOptions {
        extra_args: vec!["--prepare-ahead-ms".into(), "1000".into()],
        ..ServeOptions::default()
    })
    .await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let created = api
        .create_job(json!({"name": "every-2s", "schedule": {"cron": "*/2 * * * * *"}, "request": {"url": target.url("/p")}}))
        .await;
    let job_id = created["id"].as_str().expect("id").to_owned();

    let received = target.wait_for("/p", 2, Duration::from_secs(10)).await;
    assert!(received.len() >= 2, "{} deliveries", received.len());
    for request in &received {
        let scheduled = instant(&json!(
            request
                .header("cronhook-scheduled-for")
                .expect("scheduled-for")
        ));
        assert!(
            request.at >= scheduled,
            "sent before its instant: arrived {} for {scheduled}",
            request.at
        );
    }

    // The next even second at least 1.5 s away; pause 600 ms before it, inside the 1 s the
    // occurrence is prepared ahead.
    let now = Utc::now();
    let mut next = DateTime::<Utc>::from_timestamp(now.timestamp() + 2, 0).expect("instant");
    if next.timestamp() % 2 != 0 {
        next += chrono::Duration::seconds(1);
    }
    if next - now < chrono::Duration::milliseconds(1_500) {
        next += chrono::Duration::seconds(2);
    }
    let pause_at = next - chrono::Duration::milliseconds(600);
    tokio::time::sleep((pause_at - Utc::now()).to_std().unwrap_or_default()).await;
    let paused = api
        .call("POST", &format!("/api/v1/jobs/{job_id}/pause"), None)
        .await;
    assert_eq!(paused.status, 200, "{paused:?}");
    assert!(
        Utc::now() < next - chrono::Duration::milliseconds(100),
        "the pause came too late for this test to mean anything"
    );
    tokio::time::sleep(
        (next + chrono::Duration::milliseconds(1_500) - Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
    .await;

    let late: Vec<_> = target
        .all_received()
        .into_iter()
        .filter(|request| {
            request
                .header("cronhook-scheduled-for")
                .is_some_and(|at| instant(&json!(at)) >= next)
        })
        .collect();
    assert!(
        late.is_empty(),
        "sent after the pause: {} requests",
        late.len()
    );
    let executions = api.executions(&job_id).await;
    assert!(
        executions
            .iter()
            .all(|execution| instant(&execution["scheduled_for"]) < next),
        "an execution of a paused occurrence is left: {executions:?}"
    );
    assert!(
        executions
            .iter()
            .all(|execution| execution["status"] == "succeeded"),
        "{executions:?}"
    );
}
