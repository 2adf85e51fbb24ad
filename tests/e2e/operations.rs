//! Operations: Prometheus metrics, the OpenAPI document and its rendering, JSON logs.

use std::time::Duration;

use cronhook_tests::{Cronhook, ServeOptions, Target, Value, json};

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        (metric == name && labels.iter().all(|label| rest.contains(label)))
            .then(|| value.parse().ok())
            .flatten()
    })
}

async fn get(cronhook: &Cronhook, path: &str) -> (u16, String, String) {
    let response = cronhook
        .http
        .get(cronhook.url(path))
        .send()
        .await
        .expect("cronhook answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    (status, content_type, body)
}

fn job(name: &str, schedule: Value, url: &str) -> Value {
    json!({
        "name": name,
        "schedule": schedule,
        "request": {"method": "POST", "url": url, "body": "{}"},
        "retry": {"max_attempts": 1},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_executions_attempts_and_lag() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    target.respond("/fail", &[500], Duration::ZERO);
    let api = cronhook.api("ops");

    let manual = api
        .create_job(job(
            "manual",
            json!({"at": "2099-01-01T00:00:00Z"}),
            &target.url("/ok"),
        ))
        .await;
    let failing = api
        .create_job(job(
            "failing",
            json!({"at": "2099-01-01T00:00:00Z"}),
            &target.url("/fail"),
        ))
        .await;
    let scheduled = api
        .create_job(job(
            "every-second",
            json!({"cron": "* * * * * *"}),
            &target.url("/tick"),
        ))
        .await;
    for (job, runs) in [(&manual, 3), (&failing, 1)] {
        for _ in 0..runs {
            let run = api
                .call(
                    "POST",
                    &format!(
                        "/api/v1/jobs/{}/run",
                        job["id"].as_str().unwrap_or_default()
                    ),
                    None,
                )
                .await;
            assert_eq!(run.status, 202, "{:?}", run.body);
            api.wait_final(
                run.body["id"].as_str().unwrap_or_default(),
                Duration::from_secs(20),
            )
            .await;
        }
    }
    let ticks = target.wait_for("/tick", 2, Duration::from_secs(10)).await;
    assert!(
        ticks.len() >= 2,
        "the every-second job fired {}",
        ticks.len()
    );
    // Pause it, then let its last execution be recorded.
    let paused = api
        .call(
            "POST",
            &format!(
                "/api/v1/jobs/{}/pause",
                scheduled["id"].as_str().unwrap_or_default()
            ),
            None,
        )
        .await;
    assert_eq!(paused.status, 200);
    for execution in api
        .executions(scheduled["id"].as_str().unwrap_or_default())
        .await
    {
        api.wait_final(
            execution["id"].as_str().unwrap_or_default(),
            Duration::from_secs(20),
        )
        .await;
    }

    // No key needed.
    let (status, content_type, metrics) = get(&cronhook, "/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let value = |name: &str, labels: &[&str]| {
        sample(&metrics, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{metrics}"))
    };
    assert!(
        value(
            "cronhook_executions_total",
            &["status=\"succeeded\"", "trigger=\"manual\""]
        ) >= 3.0
    );
    assert!(
        value(
            "cronhook_executions_total",
            &["status=\"failed\"", "trigger=\"manual\""]
        ) >= 1.0
    );
    assert!(
        value(
            "cronhook_executions_total",
            &["status=\"succeeded\"", "trigger=\"schedule\""]
        ) >= 2.0
    );
    assert!(value("cronhook_attempts_total", &["outcome=\"success\""]) >= 5.0);
    assert!(value("cronhook_attempts_total", &["outcome=\"http_error\""]) >= 1.0);
    assert!(
        value(
            "cronhook_scheduler_materialized_total",
            &["outcome=\"created\""]
        ) >= 2.0
    );

    // Histograms, with buckets.
    assert!(value("cronhook_attempt_duration_seconds_count", &[]) >= 6.0);
    assert!(value("cronhook_attempt_duration_seconds_bucket", &["le=\"+Inf\""]) >= 6.0);
    assert!(
        value(
            "cronhook_attempt_duration_seconds_bucket",
            &["le=\"0.005\""]
        ) >= 0.0
    );
    // The scheduler's own timing: one observation per pass that wrote occurrences, and (the
    // claim) per read of the due window.
    for name in [
        "cronhook_scheduler_delay_seconds",
        "cronhook_scheduler_materialize_seconds",
        "cronhook_scheduler_claim_seconds",
    ] {
        let passes = value(&format!("{name}_count"), &[]);
        assert!(passes >= 1.0, "{name} recorded {passes} times");
        assert_eq!(value(&format!("{name}_bucket"), &["le=\"+Inf\""]), passes);
        assert!(value(&format!("{name}_sum"), &[]) >= 0.0);
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "no help text for {name}"
        );
        assert!(metrics.contains(&format!("# TYPE {name} histogram")));
    }
    // What misfire policies shed: exported (at zero) before anything was missed.
    assert!(value("cronhook_scheduler_missed_unfired_total", &[]) >= 0.0);
    assert!(metrics.contains("# HELP cronhook_scheduler_missed_unfired_total "));
    assert!(metrics.contains("# TYPE cronhook_scheduler_missed_unfired_total counter"));
    let lags = value("cronhook_fire_lag_seconds_count", &[]);
    assert!(lags >= 2.0, "fire lag recorded {lags} times");
    assert_eq!(
        value("cronhook_fire_lag_seconds_bucket", &["le=\"+Inf\""]),
        lags
    );
    assert!(
        value("cronhook_fire_lag_seconds_sum", &[]) >= 0.0,
        "lag is never negative"
    );

    // Gauges, idle again now.
    assert_eq!(value("cronhook_executor_in_flight_requests", &[]), 0.0);
    assert_eq!(value("cronhook_executor_queue_depth", &[]), 0.0);

    for name in [
        "cronhook_executions_total",
        "cronhook_attempts_total",
        "cronhook_attempt_duration_seconds",
        "cronhook_fire_lag_seconds",
        "cronhook_executor_in_flight_requests",
        "cronhook_executor_queue_depth",
    ] {
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "no help text for {name}"
        );
    }
    assert!(metrics.contains("# TYPE cronhook_fire_lag_seconds histogram"));
    assert!(metrics.contains("# TYPE cronhook_attempt_duration_seconds histogram"));

    // Database pool gauges: SQLite has a writer pool of one connection and a reader pool.
    assert_eq!(
        value("cronhook_db_pool_max_connections", &["pool=\"writer\""]),
        1.0
    );
    assert!(value("cronhook_db_pool_max_connections", &["pool=\"reader\""]) >= 1.0);
    assert!(
        value(
            "cronhook_db_pool_connections",
            &["pool=\"writer\"", "state=\"idle\""]
        ) >= 0.0
    );
    assert!(metrics.contains("# HELP cronhook_db_pool_connections "));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_served_and_rendered() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;

    let (status, content_type, text) = get(&cronhook, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let document: Value = serde_json::from_str(&text).expect("the document is JSON");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.1.")),
        "{}",
        document["openapi"]
    );
    for path in [
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/executions/{id}",
        "/api/v1/schedule/preview",
        "/metrics",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} is not documented"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );

    // `/docs` redirects to `/docs/` (followed), an HTML page whose assets are all served here.
    let (status, content_type, page) = get(&cronhook, "/docs").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let mut assets = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in page.split(attribute).skip(1) {
            if let Some((url, _)) = piece.split_once('"') {
                assets.push(url.to_owned());
            }
        }
    }
    assert!(
        assets
            .iter()
            .any(|asset| asset.contains("swagger-ui-bundle.js")),
        "{assets:?}"
    );
    for asset in &assets {
        assert!(
            !asset.contains("//"),
            "the docs page loads {asset} from elsewhere"
        );
        let path = format!("/docs/{}", asset.trim_start_matches("./"));
        let (status, _, _) = get(&cronhook, &path).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, _, initializer) = get(&cronhook, "/docs/swagger-initializer.js").await;
    assert_eq!(status, 200);
    assert!(
        initializer.contains("/api/v1/openapi.json"),
        "{initializer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_a_line_with_ids_as_fields() {
    let cronhook = Cronhook::start(ServeOptions {
        extra_args: vec!["--log-format".into(), "json".into()],
        ..ServeOptions::default()
    })
    .await;
    let target = Target::start().await;
    target.respond("/fail", &[503], Duration::ZERO);
    let api = cronhook.api("logs");
    let created = api
        .create_job(job(
            "logged",
            json!({"at": "2099-01-01T00:00:00Z"}),
            &target.url("/fail"),
        ))
        .await;
    let job_id = created["id"].as_str().unwrap_or_default().to_owned();
    let run = api
        .call("POST", &format!("/api/v1/jobs/{job_id}/run"), None)
        .await;
    assert_eq!(run.status, 202);
    let execution_id = run.body["id"].as_str().unwrap_or_default().to_owned();
    api.wait_final(&execution_id, Duration::from_secs(20)).await;
    // The attempt is logged before its record is written; give the writer a moment anyway.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = cronhook.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
            assert!(value.is_object(), "not an object: {line}");
            assert!(value["timestamp"].is_string(), "no timestamp: {line}");
            assert!(value["level"].is_string(), "no level: {line}");
            value
        })
        .collect();
    assert!(!lines.is_empty(), "no log lines");

    // The attempt's line carries the ids as fields of its span.
    let attempt = lines
        .iter()
        .find(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("attempt"))
                && line["span"]["execution_id"] == execution_id.as_str()
        })
        .unwrap_or_else(|| panic!("no attempt line for {execution_id} in:\n{log}"));
    assert_eq!(attempt["span"]["job_id"], job_id.as_str());
    assert_eq!(attempt["span"]["attempt"], 1);
    assert_eq!(attempt["fields"]["status"], 503);
}
