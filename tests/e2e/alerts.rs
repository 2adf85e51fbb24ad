//! Failure alerts end to end: a real SMTP listener receiving the actual mail, a loopback HTTP
//! receiver standing in for Slack, Discord and webhooks, and the real binary in between.

use std::time::{Duration, Instant};

use cronhook_tests::smtp::SmtpServer;
use cronhook_tests::{Api, Cronhook, ServeOptions, Target, Value, json, signature_is_valid};

/// A job that fires every second and gives up after one attempt.
fn every_second(name: &str, url: &str, alerts: Value) -> Value {
    json!({
        "name": name,
        "schedule": {"cron": "* * * * * *"},
        "request": {"url": url, "timeout_ms": 2000},
        "retry": {"max_attempts": 1},
        "alerts": alerts,
    })
}

async fn create_channel(api: &Api, body: Value) -> String {
    let reply = api.call("POST", "/api/v1/channels", Some(body)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["id"].as_str().expect("channel id").to_owned()
}

async fn alerts(api: &Api) -> Vec<Value> {
    let reply = api.call("GET", "/api/v1/alerts?limit=500", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["data"].as_array().expect("data").clone()
}

/// Waits until `check` holds for the alert list, or panics with the list after `limit`.
async fn wait_alerts(api: &Api, limit: Duration, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let list = alerts(api).await;
        if check(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "alerts never got there: {}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(list: &[Value], kind: &str, channel: &str) -> usize {
    list.iter()
        .filter(|alert| alert["kind"] == kind && alert["channel_id"] == channel)
        .count()
}

fn delivered(list: &[Value], kind: &str, channel: &str) -> bool {
    list.iter().any(|alert| {
        alert["kind"] == kind && alert["channel_id"] == channel && alert["status"] == "delivered"
    })
}

async fn failed_executions(api: &Api, job_id: &str) -> usize {
    api.executions(job_id)
        .await
        .iter()
        .filter(|execution| execution["status"] == "failed")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_streak_alerts_once_per_channel_and_its_recovery_once() {
    let smtp = SmtpServer::start().await;
    let receiver = Target::start().await;
    receiver.respond_with_body(
        "/job",
        &[500],
        "{\"error\":\"database connection refused\"}",
    );
    let cronhook = Cronhook::start(ServeOptions {
        extra_args: vec![
            "--smtp-url".into(),
            smtp.url(),
            "--smtp-from".into(),
            "cronhook <alerts@cronhook.test>".into(),
            "--public-url".into(),
            "https://cron.example.com/".into(),
        ],
        ..ServeOptions::default()
    })
    .await;
    let api = cronhook.api("alerts");
    let email = create_channel(
        &api,
        json!({"name": "ops-email", "type": "email", "to": ["ops@example.com", "oncall@example.com"]}),
    )
    .await;
    let slack = create_channel(
        &api,
        json!({"name": "ops-slack", "type": "slack", "webhook_url": receiver.url("/slack/T000/B000/secretpart")}),
    )
    .await;
    let webhook = create_channel(
        &api,
        json!({"name": "ops-webhook", "type": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    let discord = create_channel(
        &api,
        json!({"name": "ops-discord", "type": "discord", "webhook_url": receiver.url("/discord")}),
    )
    .await;
    // The job names no channel: the workspace's default channels apply.
    let reply = api
        .call(
            "PUT",
            "/api/v1/workspace/alert-channels",
            Some(json!({"channels": [email, slack, webhook, discord]})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let job = api
        .create_job(every_second(
            "payments-sync",
            &receiver.url("/job"),
            json!({"after_consecutive_failures": 3, "on_recovery": true}),
        ))
        .await;
    let job_id = job["id"].as_str().expect("job id").to_owned();

    let deadline = Instant::now() + Duration::from_secs(20);
    while failed_executions(&api, &job_id).await < 6 {
        assert!(Instant::now() < deadline, "the job did not fail 6 times");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    receiver.respond("/job", &[200], Duration::ZERO);
    let list = wait_alerts(&api, Duration::from_secs(20), |list| {
        [&email, &slack, &webhook, &discord].iter().all(|channel| {
            delivered(list, "failing", channel) && delivered(list, "recovered", channel)
        })
    })
    .await;
    // A few more successful runs: nothing more.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let paused = api
        .call("POST", &format!("/api/v1/jobs/{job_id}/pause"), None)
        .await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    drop(list);
    let list = &alerts(&api).await;
    for channel in [&email, &slack, &webhook, &discord] {
        assert_eq!(
            count(list, "failing", channel),
            1,
            "one failing alert on {channel}"
        );
        assert_eq!(
            count(list, "recovered", channel),
            1,
            "one recovery on {channel}"
        );
    }
    let failing = list
        .iter()
        .find(|alert| alert["kind"] == "failing")
        .expect("a failing alert");
    assert_eq!(failing["job_id"], job_id.as_str());
    assert_eq!(failing["streak"], 3);
    assert_eq!(failing["attempts"], 1);
    assert!(
        failing["execution_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("exe_"))
    );

    // The email: two messages, each with both parts and a subject that says it all.
    let mails = smtp.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 2, "one failing and one recovery email");
    let failing_mail = &mails[0];
    assert_eq!(
        failing_mail.subject().as_deref(),
        Some("[cronhook] FAILING: payments-sync (3 in a row, HTTP 500)")
    );
    assert_eq!(failing_mail.from, "alerts@cronhook.test");
    assert_eq!(
        failing_mail.to,
        vec!["ops@example.com", "oncall@example.com"]
    );
    let plain = failing_mail.part("text/plain").expect("a plain-text part");
    let html = failing_mail.part("text/html").expect("an HTML part");
    let execution_link = format!(
        "https://cron.example.com/executions/{}",
        failing["execution_id"].as_str().expect("execution id")
    );
    for text in [&plain, &html] {
        assert!(text.contains("payments-sync"), "{text}");
        assert!(text.contains("HTTP 500"), "{text}");
        assert!(text.contains("database connection refused"), "{text}");
        assert!(text.contains("3 failed executions in a row"), "{text}");
        assert!(text.contains(&execution_link), "{text}");
    }
    assert!(plain.contains("failing since"), "{plain}");
    assert!(plain.contains("Next run"), "{plain}");
    let recovery_mail = &mails[1];
    assert_eq!(
        recovery_mail.subject().as_deref(),
        Some("[cronhook] RECOVERED: payments-sync")
    );
    let recovery_plain = recovery_mail.part("text/plain").expect("a plain-text part");
    assert!(recovery_plain.contains("has recovered"), "{recovery_plain}");
    assert!(recovery_mail.part("text/html").is_some());

    // Slack: Block Kit blocks with a plain-text fallback.
    let slack_posts = receiver.received("/slack/T000/B000/secretpart");
    assert_eq!(slack_posts.len(), 2);
    let slack_message: Value = serde_json::from_slice(&slack_posts[0].body).expect("slack json");
    assert!(
        slack_message["text"]
            .as_str()
            .is_some_and(|text| text.contains("payments-sync is failing"))
    );
    assert_eq!(slack_message["blocks"][0]["type"], "header");
    assert_eq!(
        slack_message["blocks"][0]["text"]["text"],
        "[cronhook] FAILING: payments-sync (3 in a row, HTTP 500)"
    );
    let slack_recovery: Value = serde_json::from_slice(&slack_posts[1].body).expect("slack json");

    // Webhook: a JSON event signed like job requests.
    let hooks = receiver.received("/hook");
    assert_eq!(hooks.len(), 2);
    let secret = api.call("GET", "/api/v1/workspace", None).await.body["signing_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    for hook in &hooks {
        let id = hook.header("webhook-id").expect("webhook-id");
        assert!(id.starts_with("alr_"));
        assert!(signature_is_valid(
            &secret,
            id,
            hook.header("webhook-timestamp").expect("timestamp"),
            &hook.body,
            hook.header("webhook-signature").expect("signature"),
        ));
    }
    let event: Value = serde_json::from_slice(&hooks[0].body).expect("event json");
    assert_eq!(event["type"], "alert.failing");
    assert_eq!(event["job"]["name"], "payments-sync");
    assert_eq!(event["failure"]["status_code"], 500);
    assert_eq!(event["streak"]["failures"], 3);
    assert_eq!(event["execution_url"], execution_link.as_str());

    // Discord: content and an embed.
    let discord_posts = receiver.received("/discord");
    assert_eq!(discord_posts.len(), 2);
    let discord_message: Value = serde_json::from_slice(&discord_posts[0].body).expect("json");
    assert!(
        discord_message["content"]
            .as_str()
            .is_some_and(|content| content.contains("FAILING: payments-sync"))
    );
    assert_eq!(discord_message["embeds"][0]["url"], execution_link.as_str());

    // The Slack URL is a credential: shown masked.
    let channel = api
        .call("GET", &format!("/api/v1/channels/{slack}"), None)
        .await;
    assert_eq!(channel.body["webhook_url"], "••••part");

    eprintln!("=== failing email (text/plain) ===\n{plain}");
    eprintln!("=== recovery email (text/plain) ===\n{recovery_plain}");
    eprintln!(
        "=== Slack message (failing) ===\n{}",
        serde_json::to_string_pretty(&slack_message).unwrap_or_default()
    );
    eprintln!(
        "=== Slack message (recovered), text ===\n{}",
        slack_recovery["text"].as_str().unwrap_or_default()
    );

    let metrics = cronhook
        .http
        .get(cronhook.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("cronhook_alerts_total")
                && line.contains("kind=\"failing\"")
                && line.contains("delivered=\"true\"")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_disable_and_410_pause_the_job_and_say_so() {
    let receiver = Target::start().await;
    receiver.respond("/flaky", &[503], Duration::ZERO);
    receiver.respond("/gone", &[410], Duration::ZERO);
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let api = cronhook.api("disable");
    let hook = create_channel(
        &api,
        json!({"type": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    let mut flaky = every_second(
        "flaky",
        &receiver.url("/flaky"),
        json!({"after_consecutive_failures": 10, "channels": [hook]}),
    );
    flaky["auto_disable_after_failures"] = json!(2);
    let flaky = api.create_job(flaky).await;
    let gone = api
        .create_job(every_second(
            "gone",
            &receiver.url("/gone"),
            json!({"channels": [hook]}),
        ))
        .await;
    let list = wait_alerts(&api, Duration::from_secs(15), |list| {
        list.iter()
            .filter(|alert| alert["kind"] == "disabled" && alert["status"] == "delivered")
            .count()
            == 2
    })
    .await;
    for job in [&flaky, &gone] {
        let id = job["id"].as_str().expect("id");
        let read = api.call("GET", &format!("/api/v1/jobs/{id}"), None).await;
        assert_eq!(read.body["paused"], true, "{}", read.body);
        assert!(read.body["next_run_at"].is_null());
        let of_job: Vec<&Value> = list
            .iter()
            .filter(|alert| alert["job_id"] == job["id"])
            .collect();
        assert_eq!(of_job.len(), 1, "one alert for {id}: {list:?}");
    }
    // Paused jobs do not run, so nothing more comes.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(alerts(&api).await.len(), 2);
    let events: Vec<Value> = receiver
        .received("/hook")
        .iter()
        .map(|hook| serde_json::from_slice(&hook.body).expect("json"))
        .collect();
    assert_eq!(events.len(), 2);
    let gone_event = events
        .iter()
        .find(|event| event["job"]["name"] == "gone")
        .expect("the 410 alert");
    assert_eq!(gone_event["type"], "alert.disabled");
    assert_eq!(gone_event["disabled_because"], "gone");
    assert!(
        gone_event["text"]
            .as_str()
            .is_some_and(|text| text.contains("410 Gone") && text.contains("resume"))
    );
    let flaky_event = events
        .iter()
        .find(|event| event["job"]["name"] == "flaky")
        .expect("the auto-disable alert");
    assert_eq!(flaky_event["disabled_because"], "auto_disable");
    assert!(
        flaky_event["subject"]
            .as_str()
            .is_some_and(|subject| subject.starts_with("[cronhook] DISABLED: flaky"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_smtp_server_and_a_failing_slack_do_not_delay_other_jobs() {
    let smtp = SmtpServer::start().await;
    smtp.hang_next(usize::MAX);
    let receiver = Target::start().await;
    receiver.respond("/slack", &[500], Duration::ZERO);
    receiver.respond("/failing", &[500], Duration::ZERO);
    let cronhook = Cronhook::start(ServeOptions {
        // A short lease makes the delivery deadline 2 s.
        extra_args: vec![
            "--smtp-url".into(),
            smtp.url(),
            "--lease-seconds".into(),
            "3".into(),
        ],
        ..ServeOptions::default()
    })
    .await;
    let api = cronhook.api("hang");
    let email = create_channel(&api, json!({"type": "email", "to": ["ops@example.com"]})).await;
    let slack = create_channel(
        &api,
        json!({"type": "slack", "webhook_url": receiver.url("/slack")}),
    )
    .await;
    // One streak, alerted once, on two broken channels.
    api.create_job(every_second(
        "failing",
        &receiver.url("/failing"),
        json!({"channels": [email, slack]}),
    ))
    .await;
    let start = Instant::now();
    api.create_job(every_second("steady", &receiver.url("/steady"), json!({})))
        .await;
    let list = wait_alerts(&api, Duration::from_secs(15), |list| {
        list.iter()
            .any(|alert| alert["channel_id"] == email && alert["error"].is_string())
            && list
                .iter()
                .any(|alert| alert["channel_id"] == slack && alert["error"].is_string())
    })
    .await;
    let email_alert = list
        .iter()
        .find(|alert| alert["channel_id"] == email)
        .expect("email alert");
    assert!(
        email_alert["error"]
            .as_str()
            .is_some_and(|error| error.contains("timeout")),
        "{email_alert}"
    );
    assert_eq!(
        email_alert["status"], "pending",
        "retried later: {email_alert}"
    );
    assert!(email_alert["next_attempt_at"].is_string());
    let slack_alert = list
        .iter()
        .find(|alert| alert["channel_id"] == slack)
        .expect("slack alert");
    assert!(
        slack_alert["error"]
            .as_str()
            .is_some_and(|error| error.starts_with("HTTP 500")),
        "{slack_alert}"
    );
    assert!(smtp.connections() >= 1, "the SMTP server was reached");
    // Meanwhile the steady job fired every second, on time.
    let elapsed = start.elapsed();
    let steady = receiver.received("/steady");
    let expected = elapsed.as_secs().saturating_sub(1) as usize;
    assert!(
        steady.len() >= expected,
        "{} requests in {elapsed:?}",
        steady.len()
    );
    for pair in steady.windows(2) {
        let gap = (pair[1].at - pair[0].at).num_milliseconds();
        assert!(
            gap < 1_600,
            "a gap of {gap} ms between two runs of the steady job"
        );
    }
    assert!(cronhook.log().contains("alert delivery failed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_recorded_before_a_crash_is_sent_once_after_restart() {
    let smtp = SmtpServer::start().await;
    // The first connection hangs: the alert is recorded and claimed, never sent.
    smtp.hang_next(1);
    let receiver = Target::start().await;
    receiver.respond("/down", &[500], Duration::ZERO);
    let mut cronhook = Cronhook::start(ServeOptions {
        extra_args: vec![
            "--smtp-url".into(),
            smtp.url(),
            "--lease-seconds".into(),
            "3".into(),
        ],
        ..ServeOptions::default()
    })
    .await;
    let api = cronhook.api("restart");
    let email = create_channel(&api, json!({"type": "email", "to": ["ops@example.com"]})).await;
    api.create_job(every_second(
        "nightly-export",
        &receiver.url("/down"),
        json!({"channels": [email]}),
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while smtp.connections() == 0 {
        assert!(Instant::now() < deadline, "the alert was never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Mid-send: kill -9.
    cronhook.kill();
    assert!(smtp.mails().is_empty());
    cronhook.restart().await;
    let mails = smtp.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mails.len(), 1, "sent after the restart");
    assert_eq!(
        mails[0].subject().as_deref(),
        Some("[cronhook] FAILING: nightly-export (1 in a row, HTTP 500)")
    );
    // And only once, though the job goes on failing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.mails().len(), 1, "exactly once");
    let list = alerts(&api).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "delivered");
    assert!(list[0]["delivered_at"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_are_validated_masked_and_tested() {
    let receiver = Target::start().await;
    // No SMTP server configured.
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let api = cronhook.api("channels");
    let other = cronhook.api("someone-else");

    // A test alert goes out at once.
    let hook = create_channel(
        &api,
        json!({"name": "hook", "type": "webhook", "url": receiver.url("/test-hook")}),
    )
    .await;
    let started = Instant::now();
    let test = api
        .call("POST", &format!("/api/v1/channels/{hook}/test"), None)
        .await;
    assert_eq!(test.status, 202, "{}", test.body);
    assert_eq!(test.body["kind"], "test");
    assert_eq!(test.body["status"], "pending");
    assert!(test.body["job_id"].is_null());
    let received = receiver
        .wait_for("/test-hook", 1, Duration::from_secs(5))
        .await;
    assert_eq!(received.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "sent now, not at the next poll"
    );
    let event: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(event["type"], "alert.test");
    assert_eq!(event["subject"], "[cronhook] TEST: hook");

    // An email channel without SMTP: the delivery fails, saying why.
    let email = create_channel(&api, json!({"type": "email", "to": ["ops@example.com"]})).await;
    let reply = api
        .call("POST", &format!("/api/v1/channels/{email}/test"), None)
        .await;
    assert_eq!(reply.status, 202);
    let list = wait_alerts(&api, Duration::from_secs(5), |list| {
        list.iter()
            .any(|alert| alert["channel_id"] == email && alert["status"] == "failed")
    })
    .await;
    let failed = list
        .iter()
        .find(|alert| alert["channel_id"] == email)
        .expect("the email test");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|error| error.contains("CRONHOOK_SMTP_URL")),
        "{failed}"
    );

    // Slack URLs are masked; sending the masked value back keeps the stored one.
    let slack = create_channel(
        &api,
        json!({"name": "slack", "type": "slack", "webhook_url": receiver.url("/services/T1/B1/abcd1234")}),
    )
    .await;
    let read = api
        .call("GET", &format!("/api/v1/channels/{slack}"), None)
        .await;
    assert_eq!(read.body["webhook_url"], "••••1234");
    let patched = api
        .call(
            "PATCH",
            &format!("/api/v1/channels/{slack}"),
            Some(json!({"name": "slack-ops", "webhook_url": "••••1234"})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["name"], "slack-ops");
    api.call("POST", &format!("/api/v1/channels/{slack}/test"), None)
        .await;
    assert_eq!(
        receiver
            .wait_for("/services/T1/B1/abcd1234", 1, Duration::from_secs(5))
            .await
            .len(),
        1,
        "the stored URL was kept"
    );
    let wrong_mask = api
        .call(
            "PATCH",
            &format!("/api/v1/channels/{slack}"),
            Some(json!({"webhook_url": "••••9999"})),
        )
        .await;
    assert_eq!(wrong_mask.status, 422);

    // Bad input names the field.
    for (body, field) in [
        (json!({"type": "pager"}), "type"),
        (json!({"type": "email", "to": ["not-an-address"]}), "to[0]"),
        (
            json!({"type": "webhook", "url": "ftp://example.com/x"}),
            "url",
        ),
        (json!({"type": "slack"}), "webhook_url"),
        (
            json!({"type": "webhook", "url": "https://example.com", "extra": 1}),
            "extra",
        ),
    ] {
        let reply = api
            .call("POST", "/api/v1/channels", Some(body.clone()))
            .await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
        assert_eq!(reply.body["field"], field, "{body}: {}", reply.body);
    }
    let clash = api
        .call(
            "POST",
            "/api/v1/channels",
            Some(json!({"name": "hook", "type": "webhook", "url": "https://example.com/"})),
        )
        .await;
    assert_eq!(clash.status, 409);

    // A job naming a channel that is not in its workspace.
    let job = every_second(
        "names-a-stranger",
        &receiver.url("/x"),
        json!({"channels": [hook, "chn_0193a6f0c2d87c3e8a0b1c2d3e4f5a6b"]}),
    );
    let refused = api.call("POST", "/api/v1/jobs", Some(job)).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["field"], "alerts.channels[1]");
    let created = api
        .create_job(every_second("quiet", &receiver.url("/x"), json!({})))
        .await;
    let id = created["id"].as_str().expect("id");
    let refused = api
        .call(
            "PATCH",
            &format!("/api/v1/jobs/{id}"),
            Some(json!({"alerts": {"channels": [email, "chn_x"]}})),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["field"], "alerts.channels[1]");

    // Another workspace sees none of it.
    for path in [
        format!("/api/v1/channels/{hook}"),
        format!("/api/v1/channels/{hook}/test"),
    ] {
        let method = if path.ends_with("/test") {
            "POST"
        } else {
            "GET"
        };
        assert_eq!(other.call(method, &path, None).await.status, 404, "{path}");
    }
    assert_eq!(
        other
            .call("DELETE", &format!("/api/v1/channels/{hook}"), None)
            .await
            .status,
        404
    );
    assert!(alerts(&other).await.is_empty());
    let refused = other
        .call(
            "PUT",
            "/api/v1/workspace/alert-channels",
            Some(json!({"channels": [hook]})),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["field"], "channels[0]");

    // Deleting a channel takes it out of the defaults.
    let reply = api
        .call(
            "PUT",
            "/api/v1/workspace/alert-channels",
            Some(json!({"channels": [hook, email]})),
        )
        .await;
    assert_eq!(reply.body["channels"], json!([hook, email]));
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/channels/{email}"), None)
            .await
            .status,
        204
    );
    let defaults = api
        .call("GET", "/api/v1/workspace/alert-channels", None)
        .await;
    assert_eq!(defaults.body["channels"], json!([hook]));
}
