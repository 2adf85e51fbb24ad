//! A fuzz run of the API's JSON inputs against the real binary: proptest-generated bodies
//! (arbitrary JSON, mutated valid jobs, huge numbers, deep nesting, wrong types, unicode) sent to
//! every JSON-reading route. Every answer must be 2xx or 4xx, and every 4xx problem+json; a 500
//! fails the run. The process runs the API role only, so nothing a generated job names is ever
//! called.

use futures::StreamExt as _;
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config, TestRng, TestRunner};
use serde_json::{Map, Number, Value, json};

use cronhook_tests::{Api, Cronhook, ServeOptions};

/// How many bodies each route gets.
const CASES_PER_ROUTE: usize = 700;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e308)),
        Just(json!(-1e308)),
        Just(json!(0.000_000_1)),
        ".{0,40}".prop_map(Value::String),
        "\\PC{0,20}".prop_map(Value::String),
        Just(json!("ｌｏｃａｌｈｏｓｔ")),
        Just(json!("\u{0}\u{202e}\u{fffd}")),
        Just(json!("•••• 1234")),
        Just(json!("x".repeat(300_000))),
        prop_oneof![
            Just("* * * * *"),
            Just("0 0 31 2 *"),
            Just("@every 1s"),
            Just("H H * * *"),
            Just("http://[::1]/"),
            Just("https://example.com/"),
            Just("2xx,3xx"),
            Just("Europe/Berlin"),
            Just("GET"),
        ]
        .prop_map(|s| json!(s)),
    ]
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn valid_job() -> Value {
    json!({
        "name": "fuzz",
        "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
        "request": {
            "method": "POST",
            "url": "https://example.com/hook",
            "headers": {"Authorization": "Bearer secret-value-1234", "X-Trace": "t"},
            "body": "{}",
            "timeout_ms": 5000,
            "follow_redirects": false
        },
        "retry": {"max_attempts": 3, "initial_delay_ms": 1000, "max_delay_ms": 60000, "jitter": true},
        "success": {"status": "2xx", "body_regex": "ok", "max_duration_ms": 1000},
        "concurrency": "forbid",
        "misfire": "skip",
        "alerts": {"after_consecutive_failures": 1, "on_recovery": true, "channels": []},
        "auto_disable_after_failures": 5,
        "paused": true
    })
}

/// Every (object) path of a value: `["request", "headers"]`, ...
fn paths(value: &Value, prefix: &mut Vec<String>, into: &mut Vec<Vec<String>>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            prefix.push(key.clone());
            into.push(prefix.clone());
            paths(child, prefix, into);
            prefix.pop();
        }
    }
}

/// A valid job with one to three fields replaced (or removed) by generated values.
fn mutated_job() -> impl Strategy<Value = Value> {
    let base = valid_job();
    let mut all = Vec::new();
    paths(&base, &mut Vec::new(), &mut all);
    prop::collection::vec(
        (0..all.len(), prop::option::weighted(0.9, arbitrary_json())),
        1..4,
    )
    .prop_map(move |edits| {
        let mut job = base.clone();
        for (index, replacement) in edits {
            let path = &all[index];
            let pointer: String = path[..path.len() - 1]
                .iter()
                .map(|key| format!("/{key}"))
                .collect();
            if let Some(Value::Object(map)) = job.pointer_mut(&pointer) {
                let last = path[path.len() - 1].clone();
                match replacement.clone() {
                    Some(value) => map.insert(last, value),
                    None => map.remove(&last),
                };
            }
        }
        job
    })
}

fn deep(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = json!([value]);
    }
    value
}

fn bodies(count: usize, seed: u8) -> Vec<Value> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let strategy = prop_oneof![3 => mutated_job(), 1 => arbitrary_json()];
    let mut out: Vec<Value> = vec![
        deep(40),
        deep(200),
        deep(5_000),
        json!({"request": deep(100)}),
    ];
    while out.len() < count {
        out.push(
            strategy
                .new_tree(&mut runner)
                .expect("a generated value")
                .current(),
        );
    }
    out
}

async fn check(api: &Api, method: &str, path: &str, body: Value) -> Option<String> {
    let reply = api.call(method, path, Some(body.clone())).await;
    let text = body.to_string();
    let shown: String = text.chars().take(300).collect();
    if reply.status >= 500 || reply.status < 200 || (300..400).contains(&reply.status) {
        return Some(format!(
            "{method} {path} answered {}: {shown} → {:?}",
            reply.status, reply.body
        ));
    }
    if reply.status >= 400 && !reply.content_type.starts_with("application/problem+json") {
        return Some(format!(
            "{method} {path} answered {} as {}: {shown}",
            reply.status, reply.content_type
        ));
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_json_bodies_never_get_a_500() {
    let cronhook = Cronhook::start(ServeOptions {
        extra_args: vec![
            "--role".into(),
            "api".into(),
            "--api-rate-limit".into(),
            "1000000".into(),
            "--api-rate-burst".into(),
            "1000000".into(),
        ],
        ..ServeOptions::default()
    })
    .await;
    let api = cronhook.api("fuzz");
    let target = api.create_job(valid_job()).await;
    let job_path = format!("/api/v1/jobs/{}", target["id"].as_str().expect("id"));
    let document: Value = api.call("GET", "/api/v1/openapi.json", None).await.body;
    let mut routes = vec![
        ("POST", "/api/v1/jobs".to_owned(), 1u8),
        ("PATCH", job_path, 2),
        ("POST", "/api/v1/keys".to_owned(), 3),
    ];
    if document["paths"]["/api/v1/channels"]["post"].is_object() {
        routes.push(("POST", "/api/v1/channels".to_owned(), 4));
    }
    let mut failures = Vec::new();
    let mut sent = 0usize;
    for (method, path, seed) in &routes {
        let results: Vec<Option<String>> = futures::stream::iter(bodies(CASES_PER_ROUTE, *seed))
            .map(|body| check(&api, method, path, body))
            .buffer_unordered(16)
            .collect()
            .await;
        sent += results.len();
        failures.extend(results.into_iter().flatten());
    }
    assert!(sent >= 2_000, "sent {sent}");
    assert!(
        failures.is_empty(),
        "{} of {sent} bodies got a bad answer; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !cronhook.log().contains("request failed"),
        "an internal error was logged"
    );
}
