//! The service's life: graceful shutdown and retention.

use std::time::{Duration, Instant};

use cronhook_tests::{Cronhook, ServeOptions, Target, json};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_attempts_in_flight_finish_and_exits_0() {
    let mut cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    target.respond_after("/slow", &[Duration::from_millis(1_500)]);
    let api = cronhook.api("acme");
    let job = api
        .create_job(json!({"name": "slow", "schedule": {"cron": "0 0 1 1 *"}, "request": {"url": target.url("/slow")}}))
        .await;
    let run = api
        .call(
            "POST",
            &format!("/api/v1/jobs/{}/run", job["id"].as_str().expect("id")),
            None,
        )
        .await;
    let execution_id = run.body["id"].as_str().expect("execution id").to_owned();
    target.wait_for("/slow", 1, Duration::from_secs(5)).await;

    cronhook.signal("TERM");
    let status = cronhook
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("cronhook exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        cronhook.log()
    );

    cronhook.restart().await;
    let execution = api.wait_final(&execution_id, Duration::from_secs(5)).await;
    assert_eq!(
        execution["status"], "succeeded",
        "the attempt in flight finished: {execution:?}"
    );
    assert_eq!(execution["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(target.received("/slow").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_grace_period_unfinished_work_is_given_back_for_the_next_start() {
    let mut cronhook = Cronhook::start(ServeOptions {
        extra_args: vec!["--shutdown-grace".into(), "1".into()],
        ..ServeOptions::default()
    })
    .await;
    let target = Target::start().await;
    target.respond_after("/stuck", &[Duration::from_secs(30)]);
    let api = cronhook.api("acme");
    let job = api
        .create_job(json!({"name": "stuck", "schedule": {"cron": "0 0 1 1 *"},
                           "request": {"url": target.url("/stuck"), "timeout_ms": 60_000}}))
        .await;
    let run = api
        .call(
            "POST",
            &format!("/api/v1/jobs/{}/run", job["id"].as_str().expect("id")),
            None,
        )
        .await;
    let execution_id = run.body["id"].as_str().expect("execution id").to_owned();
    target.wait_for("/stuck", 1, Duration::from_secs(5)).await;

    let asked = Instant::now();
    cronhook.signal("TERM");
    let status = cronhook
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("cronhook exits after the grace period");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "exited {:?} after SIGTERM",
        asked.elapsed()
    );

    // The lease is 30 s; the given-back execution is taken over right after the restart.
    let restarted = Instant::now();
    cronhook.restart().await;
    let execution = api.wait_final(&execution_id, Duration::from_secs(10)).await;
    assert!(restarted.elapsed() < Duration::from_secs(10));
    assert_eq!(execution["status"], "succeeded", "{execution:?}");
    let attempts = execution["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{execution:?}");
    assert_eq!(attempts[0]["error"]["kind"], "interrupted");
    assert_eq!(attempts[1]["status_code"], 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_last_prunes_a_job_history_to_its_newest_executions() {
    let cronhook = Cronhook::start(ServeOptions {
        extra_args: vec!["--prune-interval-seconds".into(), "1".into()],
        ..ServeOptions::default()
    })
    .await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let job = api
        .create_job(
            json!({"name": "chatty", "schedule": {"cron": "* * * * * *"},
                           "request": {"url": target.url("/c")}, "keep_last": 2}),
        )
        .await;
    assert_eq!(job["keep_last"], 2);
    let job_id = job["id"].as_str().expect("id");
    target.wait_for("/c", 5, Duration::from_secs(8)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let executions = api.executions(job_id).await;
    let finished = executions
        .iter()
        .filter(|e| matches!(e["status"].as_str(), Some("succeeded" | "failed")))
        .count();
    assert!(target.received("/c").len() >= 5);
    assert!(
        finished <= 3,
        "at most keep_last (plus one finished since the last pass): {executions:?}"
    );

    let refused = api
        .call(
            "PATCH",
            &format!("/api/v1/jobs/{job_id}"),
            Some(json!({"keep_last": 0})),
        )
        .await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("keep_last")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_sends_the_same_request_again_as_a_new_execution() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    target.respond("/r", &[500, 200], Duration::ZERO);
    let api = cronhook.api("acme");
    let job = api
        .create_job(json!({"name": "replayable", "schedule": {"cron": "0 0 1 1 *"},
                           "request": {"method": "PUT", "url": target.url("/r"), "body": "{\"n\":1}",
                                       "headers": {"X-Kind": "nightly"}},
                           "retry": {"max_attempts": 1}}))
        .await;
    let run = api
        .call(
            "POST",
            &format!("/api/v1/jobs/{}/run", job["id"].as_str().expect("id")),
            None,
        )
        .await;
    let first = api
        .wait_final(
            run.body["id"].as_str().expect("id"),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(first["status"], "failed");

    let replay = api
        .call(
            "POST",
            &format!(
                "/api/v1/executions/{}/replay",
                first["id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    assert_eq!(replay.status, 202, "{replay:?}");
    assert_eq!(replay.body["trigger"], "replay");
    assert_ne!(replay.body["id"], first["id"]);
    let second = api
        .wait_final(
            replay.body["id"].as_str().expect("id"),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(second["status"], "succeeded", "{second:?}");

    let received = target.received("/r");
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.body, b"{\"n\":1}");
        assert_eq!(request.header("x-kind"), Some("nightly"));
    }
    assert_ne!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id"),
        "a replay is a new execution with its own webhook-id"
    );
}
