//! The whole path of an occurrence, on the embedded SQLite store.

use std::collections::HashSet;
use std::time::Duration;

use cronhook_tests::{Cronhook, ServeOptions, Target, instant, json, signature_is_valid};

fn job(name: &str, cron: &str, url: &str) -> serde_json::Value {
    json!({
        "name": name,
        "schedule": {"cron": cron},
        "request": {"method": "POST", "url": url, "body": "{\"hello\":\"world\"}",
                     "headers": {"Content-Type": "application/json"}},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_every_second_job_fires_signed_requests_with_distinct_webhook_ids() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let created = api
        .create_job(job("every-second", "* * * * * *", &target.url("/tick")))
        .await;
    assert!(
        created["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("job_"))
    );
    assert!(created["next_run_at"].is_string());

    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let received = target.received("/tick");
    assert!(
        received.len() >= 3,
        "fired {} times in 4.5 s",
        received.len()
    );

    let workspace = api.call("GET", "/api/v1/workspace", None).await;
    let secret = workspace.body["signing_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let mut ids = HashSet::new();
    for request in &received {
        let id = request.header("webhook-id").expect("webhook-id");
        let timestamp = request
            .header("webhook-timestamp")
            .expect("webhook-timestamp");
        let signature = request
            .header("webhook-signature")
            .expect("webhook-signature");
        assert!(
            signature_is_valid(&secret, id, timestamp, &request.body, signature),
            "signature {signature} does not verify"
        );
        assert!(ids.insert(id.to_owned()), "webhook-id {id} repeated");
        assert!(id.starts_with("exe_"));
        assert_eq!(request.header("cronhook-attempt"), Some("1"));
        assert!(
            request
                .header("user-agent")
                .is_some_and(|ua| ua.starts_with("cronhook/"))
        );
        assert_eq!(request.method, "POST");
        assert_eq!(request.body, b"{\"hello\":\"world\"}");
        let scheduled = instant(&json!(
            request
                .header("cronhook-scheduled-for")
                .expect("scheduled-for")
        ));
        assert_eq!(
            scheduled.timestamp_subsec_millis(),
            0,
            "fires on whole seconds"
        );
        assert!(request.at >= scheduled, "never early");
    }

    // Every delivery is recorded as a succeeded execution with its attempt.
    let job_id = created["id"].as_str().expect("id");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let executions = api.executions(job_id).await;
    let succeeded: Vec<_> = executions
        .iter()
        .filter(|e| e["status"] == "succeeded")
        .collect();
    assert!(succeeded.len() >= 3, "{executions:?}");
    let first = succeeded[0];
    assert_eq!(first["trigger"], "schedule");
    assert_eq!(first["attempts"][0]["status_code"], 200);
    assert_eq!(first["attempts"][0]["response_body"], "{\"ok\":true}");
    assert!(first["attempts"][0]["timing"]["total_ms"].is_u64());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flaky_target_succeeds_on_the_third_attempt_with_one_webhook_id_and_growing_gaps() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    target.respond("/flaky", &[500, 503, 200], Duration::ZERO);
    let api = cronhook.api("acme");
    let mut spec = job("flaky", "0 0 1 1 *", &target.url("/flaky"));
    spec["retry"] =
        json!({"max_attempts": 5, "initial_delay_ms": 300, "max_delay_ms": 10000, "jitter": false});
    let created = api.create_job(spec).await;
    let run = api
        .call(
            "POST",
            &format!("/api/v1/jobs/{}/run", created["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(run.status, 202, "{:?}", run.body);
    assert_eq!(run.body["trigger"], "manual");
    let execution_id = run.body["id"].as_str().expect("execution id");

    let execution = api.wait_final(execution_id, Duration::from_secs(15)).await;
    assert_eq!(execution["status"], "succeeded", "{execution:?}");
    let attempts = execution["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[1]["status_code"], 503);
    assert_eq!(attempts[2]["status_code"], 200);

    let received = target.received("/flaky");
    assert_eq!(received.len(), 3);
    let ids: HashSet<_> = received
        .iter()
        .filter_map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(ids.len(), 1, "one webhook-id for every attempt");
    assert_eq!(ids.into_iter().next(), Some(execution_id));
    let attempt_numbers: Vec<_> = received
        .iter()
        .filter_map(|r| r.header("cronhook-attempt"))
        .collect();
    assert_eq!(attempt_numbers, vec!["1", "2", "3"]);
    let first_gap = received[1].at - received[0].at;
    let second_gap = received[2].at - received[1].at;
    assert!(first_gap.num_milliseconds() >= 300, "first gap {first_gap}");
    assert!(
        second_gap.num_milliseconds() >= 600,
        "second gap {second_gap}"
    );
    assert!(
        second_gap > first_gap,
        "gaps grow: {first_gap} then {second_gap}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_target_ends_failed_after_max_attempts() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    target.respond("/down", &[503], Duration::ZERO);
    let api = cronhook.api("acme");
    let mut spec = job("down", "0 0 1 1 *", &target.url("/down"));
    spec["retry"] = json!({"max_attempts": 3, "initial_delay_ms": 100, "jitter": false});
    let created = api.create_job(spec).await;
    let run = api
        .call(
            "POST",
            &format!("/api/v1/jobs/{}/run", created["id"].as_str().expect("id")),
            None,
        )
        .await;
    let execution = api
        .wait_final(
            run.body["id"].as_str().expect("id"),
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(execution["attempts"].as_array().map(Vec::len), Some(3));
    assert_eq!(target.received("/down").len(), 3);

    // A 4xx other than 408/429 is not retried.
    target.respond("/gone-wrong", &[404], Duration::ZERO);
    let created = api
        .create_job(job("not-found", "0 0 1 1 *", &target.url("/gone-wrong")))
        .await;
    let run = api
        .call(
            "POST",
            &format!("/api/v1/jobs/{}/run", created["id"].as_str().expect("id")),
            None,
        )
        .await;
    let execution = api
        .wait_final(
            run.body["id"].as_str().expect("id"),
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(execution["attempts"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_problem_naming_the_field_and_creates_nothing() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let api = cronhook.api("acme");
    let cases = [
        (
            job("bad-cron", "61 * * * *", "https://example.com/"),
            "schedule.cron",
        ),
        (
            json!({"name": "bad-zone", "schedule": {"cron": "* * * * *", "timezone": "Mars/Olympus"},
                   "request": {"url": "https://example.com/"}}),
            "schedule.timezone",
        ),
        (
            json!({"name": "no-url", "schedule": {"cron": "* * * * *"}, "request": {"method": "GET"}}),
            "url",
        ),
        (
            json!({"name": "never", "schedule": {"cron": "0 0 30 2 *"}, "request": {"url": "https://example.com/"}}),
            "schedule.cron",
        ),
    ];
    for (body, field) in cases {
        let reply = api.call("POST", "/api/v1/jobs", Some(body.clone())).await;
        assert!((400..500).contains(&reply.status), "{body}: {reply:?}");
        assert!(
            reply.content_type.starts_with("application/problem+json"),
            "{reply:?}"
        );
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(field), "detail {detail:?} names {field}");
    }
    let broken = api
        .call_raw(
            "POST",
            "/api/v1/jobs",
            "application/json",
            b"{\"name\": ".to_vec(),
        )
        .await;
    assert_eq!(broken.status, 400, "{broken:?}");
    assert!(broken.content_type.starts_with("application/problem+json"));

    let list = api.call("GET", "/api/v1/jobs", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.body["data"].as_array().map(Vec::len),
        Some(0),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_workspace_sees_404_for_every_object() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let owner = cronhook.api("owner");
    let stranger = cronhook.api("stranger");
    let created = owner
        .create_job(job("private", "0 0 1 1 *", &target.url("/p")))
        .await;
    let job_id = created["id"].as_str().expect("id");
    let run = owner
        .call("POST", &format!("/api/v1/jobs/{job_id}/run"), None)
        .await;
    let execution_id = run.body["id"].as_str().expect("execution id");
    owner
        .wait_final(execution_id, Duration::from_secs(10))
        .await;

    for (method, path) in [
        ("GET", format!("/api/v1/jobs/{job_id}")),
        ("PATCH", format!("/api/v1/jobs/{job_id}")),
        ("DELETE", format!("/api/v1/jobs/{job_id}")),
        ("POST", format!("/api/v1/jobs/{job_id}/run")),
        ("POST", format!("/api/v1/jobs/{job_id}/pause")),
        ("POST", format!("/api/v1/jobs/{job_id}/resume")),
        ("GET", format!("/api/v1/jobs/{job_id}/executions")),
        ("GET", format!("/api/v1/executions/{execution_id}")),
        ("POST", format!("/api/v1/executions/{execution_id}/replay")),
    ] {
        let body = (method == "PATCH").then(|| json!({"paused": true}));
        let reply = stranger.call(method, &path, body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {reply:?}");
    }
    let list = stranger.call("GET", "/api/v1/jobs", None).await;
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(0));
    // The owner's job is untouched.
    let still = owner
        .call("GET", &format!("/api/v1/jobs/{job_id}"), None)
        .await;
    assert_eq!(still.status, 200);
    assert_eq!(still.body["paused"], false);

    let anonymous = cronhook
        .http
        .get(cronhook.url("/api/v1/jobs"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_firing_resume_restarts_it_and_run_now_works_while_paused() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let created = api
        .create_job(job("pausable", "* * * * * *", &target.url("/p")))
        .await;
    let job_id = created["id"].as_str().expect("id");
    target.wait_for("/p", 1, Duration::from_secs(5)).await;

    let paused = api
        .call("POST", &format!("/api/v1/jobs/{job_id}/pause"), None)
        .await;
    assert_eq!(paused.status, 200, "{paused:?}");
    assert_eq!(paused.body["paused"], true);
    assert!(paused.body["next_run_at"].is_null());
    // Anything already in flight lands; then silence.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.received("/p").len();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        target.received("/p").len(),
        before,
        "a paused job does not fire"
    );

    let run = api
        .call("POST", &format!("/api/v1/jobs/{job_id}/run"), None)
        .await;
    assert_eq!(run.status, 202, "{run:?}");
    let execution = api
        .wait_final(
            run.body["id"].as_str().expect("id"),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(execution["status"], "succeeded");
    assert_eq!(target.received("/p").len(), before + 1);

    let resumed = api
        .call("POST", &format!("/api/v1/jobs/{job_id}/resume"), None)
        .await;
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.body["paused"], false);
    assert!(resumed.body["next_run_at"].is_string());
    let after = target
        .wait_for("/p", before + 3, Duration::from_secs(5))
        .await;
    assert!(
        after.len() >= before + 3,
        "firing resumed: {} → {}",
        before + 1,
        after.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_and_a_restart_on_the_same_file_keeps_jobs_and_resumes_firing() {
    let mut cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let created = api
        .create_job(job("survivor", "* * * * * *", &target.url("/s")))
        .await;
    let job_id = created["id"].as_str().expect("id").to_owned();
    target.wait_for("/s", 2, Duration::from_secs(5)).await;

    cronhook.kill();
    let at_kill = target.received("/s").len();
    cronhook.restart().await;

    let reply = api
        .call("GET", &format!("/api/v1/jobs/{job_id}"), None)
        .await;
    assert_eq!(reply.status, 200, "the job survived: {reply:?}");
    assert_eq!(reply.body["name"], "survivor");
    let resumed = target
        .wait_for("/s", at_kill + 2, Duration::from_secs(6))
        .await;
    assert!(resumed.len() >= at_kill + 2, "fires again after restart");

    // Exactly one execution per scheduled instant, across the crash.
    let executions = api.executions(&job_id).await;
    let mut seen = HashSet::new();
    for execution in &executions {
        assert!(
            seen.insert(
                execution["scheduled_for"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            ),
            "two executions for {}",
            execution["scheduled_for"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_allow_private_targets_loopback_is_refused_and_never_contacted() {
    let cronhook = Cronhook::start(ServeOptions {
        allow_private_targets: false,
        ..ServeOptions::default()
    })
    .await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let port = target.address.port();

    for url in [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
        format!("http://[::1]:{port}/x"),
        format!("http://2130706433:{port}/x"),
        format!("http://0x7f.1:{port}/x"),
    ] {
        let reply = api
            .call(
                "POST",
                "/api/v1/jobs",
                Some(job("literal", "* * * * *", &url)),
            )
            .await;
        assert_eq!(reply.status, 422, "{url}: {reply:?}");
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("request.url"),
            "{reply:?}"
        );
    }

    // A host name that resolves to loopback passes definition but is blocked at connect time.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("host name")
        .trim()
        .to_owned();
    let resolves_to_loopback = tokio::net::lookup_host((hostname.as_str(), port))
        .await
        .map(|mut addresses| addresses.any(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    assert!(
        resolves_to_loopback,
        "precondition: this machine's host name `{hostname}` should resolve to loopback (/etc/hosts)"
    );
    let created = api
        .create_job(job(
            "by-name",
            "0 0 1 1 *",
            &format!("http://{hostname}:{port}/x"),
        ))
        .await;
    let run = api
        .call(
            "POST",
            &format!("/api/v1/jobs/{}/run", created["id"].as_str().expect("id")),
            None,
        )
        .await;
    let execution = api
        .wait_final(
            run.body["id"].as_str().expect("id"),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(execution["status"], "failed", "{execution:?}");
    let attempts = execution["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "a blocked target is not retried");
    assert_eq!(attempts[0]["error"]["kind"], "blocked_target");
    assert!(
        target.all_received().is_empty(),
        "the target was never contacted"
    );
}
