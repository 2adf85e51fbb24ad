//! The REST API end to end against a real SQLite store, through the router in process.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use chrono::Utc;
use cronhook_core::ids;
use cronhook_store::{ApiKey, Store, Workspace};
use cronhook_store_sqlite::SqliteStore;
use cronhook_web::{AppState, app, auth};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct TestApp {
    app: Router,
    store: Arc<SqliteStore>,
    /// A key of the main workspace.
    key: String,
    workspace_id: String,
    /// A key of another workspace, which must see none of the main one's objects.
    other_key: String,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn is_problem(&self) -> bool {
        self.headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value == "application/problem+json")
    }

    fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or_default()
    }
}

async fn workspace_with_key(
    store: &SqliteStore,
    slug: &str,
) -> Result<(String, String), Box<dyn std::error::Error>> {
    let workspace_id = ids::new_id(ids::WORKSPACE);
    store
        .create_workspace(&Workspace {
            id: workspace_id.clone(),
            slug: slug.to_owned(),
            signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            previous_signing_secret: None,
            signing_secret_rotated_at: None,
            created_at: Utc::now(),
        })
        .await?;
    let (key, key_hash) = auth::new_api_key();
    store
        .insert_api_key(&ApiKey {
            id: ids::new_id(ids::API_KEY),
            workspace_id: workspace_id.clone(),
            name: "test".to_owned(),
            key_hash,
            created_at: Utc::now(),
            scope: cronhook_store::ApiKeyScope::Admin,
            last_used_at: None,
            revoked_at: None,
        })
        .await?;
    Ok((workspace_id, key))
}

impl TestApp {
    async fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqliteStore::open(&url).await?;
        store.migrate().await?;
        let store = Arc::new(store);
        let (workspace_id, key) = workspace_with_key(&store, "main").await?;
        let (_, other_key) = workspace_with_key(&store, "other").await?;
        let state = AppState {
            store: store.clone(),
            executor: None,
            jobs_changed: Arc::new(tokio::sync::Notify::new()),
            targets: cronhook_core::net::TargetPolicy::default(),
            metrics: None,
            limits: Default::default(),
            alerts: None,
        };
        Ok(Self {
            app: app(state),
            store,
            key,
            workspace_id,
            other_key,
            _dir: dir,
        })
    }

    async fn send(&self, request: Request<Body>) -> Result<Answer, Box<dyn std::error::Error>> {
        let response = self.app.clone().oneshot(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|error| format!("{status} answer is not JSON ({error}): {bytes:?}"))?
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// A request with the given key, and a JSON body when `body` is not null.
    async fn call_as(
        &self,
        key: &str,
        method: Method,
        uri: &str,
        body: Value,
    ) -> Result<Answer, Box<dyn std::error::Error>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        let body = if body.is_null() {
            Body::empty()
        } else {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        };
        self.send(builder.body(body)?).await
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Value,
    ) -> Result<Answer, Box<dyn std::error::Error>> {
        self.call_as(&self.key, method, uri, body).await
    }

    /// A request with a raw body and content type.
    async fn raw(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Result<Answer, Box<dyn std::error::Error>> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())?;
        self.send(request).await
    }

    async fn create_job(&self, body: Value) -> Result<Value, Box<dyn std::error::Error>> {
        let answer = self.call(Method::POST, "/api/v1/jobs", body).await?;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        Ok(answer.body)
    }

    async fn job_count(&self) -> Result<usize, Box<dyn std::error::Error>> {
        let answer = self.call(Method::GET, "/api/v1/jobs", Value::Null).await?;
        assert_eq!(answer.status, StatusCode::OK);
        Ok(answer.body["data"].as_array().map_or(0, Vec::len))
    }
}

fn job(name: &str) -> Value {
    json!({
        "name": name,
        "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
        "request": {"method": "POST", "url": "https://api.example.com/reports", "body": "{}"}
    })
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn health_probes_answer_without_a_key() -> TestResult {
    let app = TestApp::new().await?;
    for path in ["/healthz", "/readyz"] {
        let answer = app
            .send(Request::builder().uri(path).body(Body::empty())?)
            .await?;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(answer.body["status"], "ok");
    }
    Ok(())
}

#[tokio::test]
async fn requests_without_a_valid_key_are_refused() -> TestResult {
    let app = TestApp::new().await?;
    let answer = app
        .send(Request::builder().uri("/api/v1/jobs").body(Body::empty())?)
        .await?;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.is_problem());
    assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");

    let answer = app
        .call_as(
            "chk_not-a-real-key",
            Method::GET,
            "/api/v1/jobs",
            Value::Null,
        )
        .await?;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.is_problem());
    Ok(())
}

#[tokio::test]
async fn jobs_are_created_read_listed_patched_and_deleted() -> TestResult {
    let app = TestApp::new().await?;
    let created = app.create_job(job("nightly-report")).await?;
    let id = id_of(&created);
    assert!(id.starts_with("job_"), "{created}");
    assert_eq!(created["name"], "nightly-report");
    assert_eq!(created["request"]["timeout_ms"], 30000);
    assert_eq!(created["retry"]["max_attempts"], 3);
    assert_eq!(created["paused"], false);
    assert!(created["next_run_at"].is_string(), "{created}");
    assert!(created["created_at"].is_string());
    assert!(created["schedule_description"].is_string());

    let read = app
        .call(Method::GET, &format!("/api/v1/jobs/{id}"), Value::Null)
        .await?;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created);

    let list = app.call(Method::GET, "/api/v1/jobs", Value::Null).await?;
    assert_eq!(list.body["data"], json!([created]));
    assert_eq!(list.body["next_cursor"], Value::Null);

    let patched = app
        .raw(
            Method::PATCH,
            &format!("/api/v1/jobs/{id}"),
            "application/merge-patch+json",
            json!({"name": "renamed", "retry": {"max_attempts": 5}, "id": "job_ignored"})
                .to_string(),
        )
        .await?;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["id"], id.as_str());
    assert_eq!(patched.body["name"], "renamed");
    assert_eq!(patched.body["retry"]["max_attempts"], 5);
    assert_eq!(patched.body["retry"]["initial_delay_ms"], 1000);
    // The schedule did not change, so neither did the next run.
    assert_eq!(patched.body["next_run_at"], created["next_run_at"]);

    let deleted = app
        .call(Method::DELETE, &format!("/api/v1/jobs/{id}"), Value::Null)
        .await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app
        .call(Method::GET, &format!("/api/v1/jobs/{id}"), Value::Null)
        .await?;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.is_problem());
    assert_eq!(app.job_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_duplicate_name_is_a_conflict() -> TestResult {
    let app = TestApp::new().await?;
    app.create_job(job("same")).await?;
    let answer = app.call(Method::POST, "/api/v1/jobs", job("same")).await?;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert!(answer.is_problem());
    assert_eq!(app.job_count().await?, 1);

    let other = app.create_job(job("other")).await?;
    let answer = app
        .call(
            Method::PATCH,
            &format!("/api/v1/jobs/{}", id_of(&other)),
            json!({"name": "same"}),
        )
        .await?;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    Ok(())
}

#[tokio::test]
async fn bad_input_is_a_problem_naming_the_field_and_creates_nothing() -> TestResult {
    let app = TestApp::new().await?;
    let mut bad_cron = job("a");
    bad_cron["schedule"]["cron"] = json!("61 * * * *");
    let mut bad_zone = job("a");
    bad_zone["schedule"]["timezone"] = json!("Mars/Olympus");
    let mut no_url = job("a");
    no_url["request"] = json!({"method": "GET"});
    let mut unknown = job("a");
    unknown["bogus"] = json!(1);
    let mut wrong_type = job("a");
    wrong_type["retry"] = json!({"max_attempts": "three"});
    let mut private = job("a");
    private["request"]["url"] = json!("http://127.0.0.1:8080/");
    let mut past = job("a");
    past["schedule"] = json!({"at": "2001-01-01T00:00:00Z"});

    let mut masked = job("a");
    masked["request"]["headers"] = json!({"Authorization": "••••1234"});

    let cases = [
        (masked, "request.headers.Authorization"),
        (bad_cron, "schedule.cron"),
        (bad_zone, "schedule"),
        (no_url, "request.url"),
        (unknown, "bogus"),
        (wrong_type, "retry.max_attempts"),
        (private, "request.url"),
        (past, "schedule.at"),
        (json!([1, 2]), ""),
    ];
    for (body, field) in cases {
        let answer = app.call(Method::POST, "/api/v1/jobs", body.clone()).await?;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.body
        );
        assert!(answer.is_problem(), "{body}");
        assert!(
            answer.field().starts_with(field),
            "{body}: expected field {field}, got {}",
            answer.body
        );
        if !field.is_empty() {
            assert!(
                answer.body["detail"]
                    .as_str()
                    .is_some_and(|detail| detail.contains(field)),
                "{}",
                answer.body
            );
        }
    }

    let broken = app
        .raw(
            Method::POST,
            "/api/v1/jobs",
            "application/json",
            r#"{"name": "a","#,
        )
        .await?;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert!(broken.is_problem());
    assert!(
        broken.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not valid JSON") && d.contains("line")),
        "{}",
        broken.body
    );

    let wrong_media = app
        .raw(
            Method::POST,
            "/api/v1/jobs",
            "text/plain",
            job("a").to_string(),
        )
        .await?;
    assert_eq!(wrong_media.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(wrong_media.is_problem());

    let mut huge = job("a");
    huge["request"]["body"] = json!("x".repeat(1024 * 1024 + 10));
    let too_big = app
        .raw(
            Method::POST,
            "/api/v1/jobs",
            "application/json",
            huge.to_string(),
        )
        .await?;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_big.is_problem());

    assert_eq!(app.job_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_bad_patch_changes_nothing() -> TestResult {
    let app = TestApp::new().await?;
    let created = app.create_job(job("keep")).await?;
    let path = format!("/api/v1/jobs/{}", id_of(&created));
    for (patch, field) in [
        (json!({"schedule": {"cron": "nope"}}), "schedule"),
        (json!({"request": {"url": null}}), "request.url"),
        (json!({"request": {"timeout_ms": 5}}), "request.timeout_ms"),
        (
            json!({"name": "changed", "retry": {"max_attempts": 0}}),
            "retry.max_attempts",
        ),
    ] {
        let answer = app.call(Method::PATCH, &path, patch.clone()).await?;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{patch}: {}",
            answer.body
        );
        assert!(
            answer.field().starts_with(field),
            "{patch}: {}",
            answer.body
        );
    }
    let read = app.call(Method::GET, &path, Value::Null).await?;
    assert_eq!(read.body, created);
    Ok(())
}

#[tokio::test]
async fn another_workspace_sees_nothing() -> TestResult {
    let app = TestApp::new().await?;
    let created = app.create_job(job("mine")).await?;
    let job_id = id_of(&created);
    let run = app
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{job_id}/run"),
            Value::Null,
        )
        .await?;
    assert_eq!(run.status, StatusCode::ACCEPTED);
    let execution_id = id_of(&run.body);

    let routes = [
        (Method::GET, format!("/api/v1/jobs/{job_id}"), Value::Null),
        (
            Method::PATCH,
            format!("/api/v1/jobs/{job_id}"),
            json!({"name": "stolen"}),
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{job_id}/run"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{job_id}/pause"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{job_id}/resume"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/jobs/{job_id}/executions"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/executions/{execution_id}"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/executions/{execution_id}/replay"),
            Value::Null,
        ),
        (
            Method::DELETE,
            format!("/api/v1/jobs/{job_id}"),
            Value::Null,
        ),
    ];
    for (method, uri, body) in routes {
        let answer = app
            .call_as(&app.other_key, method.clone(), &uri, body)
            .await?;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            answer.body
        );
        assert!(answer.is_problem());
    }
    let list = app
        .call_as(&app.other_key, Method::GET, "/api/v1/jobs", Value::Null)
        .await?;
    assert_eq!(list.body["data"], json!([]));

    // Nothing of the owner's changed.
    let read = app
        .call(Method::GET, &format!("/api/v1/jobs/{job_id}"), Value::Null)
        .await?;
    assert_eq!(read.body, created);
    let executions = app
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{job_id}/executions"),
            Value::Null,
        )
        .await?;
    assert_eq!(executions.body["data"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn malformed_and_unknown_ids_are_not_found() -> TestResult {
    let app = TestApp::new().await?;
    for uri in [
        "/api/v1/jobs/nope",
        "/api/v1/jobs/job_0193a6f0c2d87c3e8a0b1c2d3e4f5a6b",
        "/api/v1/jobs/%FF%FE",
        "/api/v1/executions/exe_0193a6f0c2d87c3e8a0b1c2d3e4f5a6b",
        "/api/v1/executions/job_0193a6f0c2d87c3e8a0b1c2d3e4f5a6b",
        "/api/v1/no-such-route",
    ] {
        let answer = app.call(Method::GET, uri, Value::Null).await?;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(answer.is_problem(), "{uri}");
    }
    let answer = app.call(Method::PUT, "/api/v1/jobs", Value::Null).await?;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer.is_problem());
    Ok(())
}

#[tokio::test]
async fn pagination_walks_every_job_exactly_once() -> TestResult {
    let app = TestApp::new().await?;
    let mut created = Vec::new();
    for index in 0..7 {
        created.push(id_of(&app.create_job(job(&format!("job-{index}"))).await?));
    }
    let mut seen = Vec::new();
    let mut uri = "/api/v1/jobs?limit=3".to_owned();
    for _ in 0..10 {
        let page = app.call(Method::GET, &uri, Value::Null).await?;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let data = page.body["data"].as_array().cloned().unwrap_or_default();
        assert!(data.len() <= 3);
        seen.extend(data.iter().map(id_of));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/v1/jobs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created);

    for bad in ["limit=0", "limit=501", "limit=ten"] {
        let answer = app
            .call(Method::GET, &format!("/api/v1/jobs?{bad}"), Value::Null)
            .await?;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(answer.field(), "limit");
    }
    let answer = app
        .call(Method::GET, "/api/v1/jobs?cursor=***", Value::Null)
        .await?;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.field(), "cursor");
    Ok(())
}

#[tokio::test]
async fn secrets_are_masked_and_a_masked_patch_keeps_them() -> TestResult {
    let app = TestApp::new().await?;
    let secret = "Bearer s3cr3t-value-9876";
    let mut body = job("secret");
    body["request"]["headers"] = json!({"Authorization": secret, "Accept": "text/plain"});
    let created = app.create_job(body).await?;
    let id = id_of(&created);
    assert_eq!(created["request"]["headers"]["Authorization"], "••••9876");
    assert_eq!(created["request"]["headers"]["Accept"], "text/plain");
    assert!(!created.to_string().contains("s3cr3t"));

    // Send back what was shown (as a client that edits the whole object would).
    let mut edited = created.clone();
    edited["name"] = json!("secret-2");
    let answer = app
        .call(Method::PATCH, &format!("/api/v1/jobs/{id}"), edited)
        .await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body["request"]["headers"]["Authorization"],
        "••••9876"
    );
    let stored = app
        .store
        .job(&app.workspace_id, &id)
        .await?
        .ok_or("job is stored")?;
    assert_eq!(stored.spec.request.headers["Authorization"], secret);
    assert_eq!(stored.spec.name, "secret-2");

    let answer = app
        .call(
            Method::PATCH,
            &format!("/api/v1/jobs/{id}"),
            json!({"request": {"headers": {"Authorization": "Bearer brand-new-secret-4321"}}}),
        )
        .await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body["request"]["headers"]["Authorization"],
        "••••4321"
    );
    let stored = app
        .store
        .job(&app.workspace_id, &id)
        .await?
        .ok_or("job is stored")?;
    assert_eq!(
        stored.spec.request.headers["Authorization"],
        "Bearer brand-new-secret-4321"
    );
    assert_eq!(stored.spec.request.headers["Accept"], "text/plain");
    Ok(())
}

#[tokio::test]
async fn schedule_preview_lists_the_count_asked() -> TestResult {
    let app = TestApp::new().await?;
    let answer = app
        .call(
            Method::GET,
            "/api/v1/schedule/preview?cron=0%203%20*%20*%20*&timezone=Europe/Berlin&count=7&from=2026-11-26T12:00:00Z",
            Value::Null,
        )
        .await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["next"].as_array().map(Vec::len), Some(7));
    assert_eq!(answer.body["next"][0], "2026-11-27T02:00:00Z");
    assert_eq!(answer.body["next_local"][0], "2026-11-27T03:00:00+01:00");
    assert!(answer.body["description"].is_string());

    let answer = app
        .call(
            Method::GET,
            "/api/v1/schedule/preview?cron=not%20a%20cron",
            Value::Null,
        )
        .await?;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.is_problem());
    assert_eq!(answer.field(), "cron");
    Ok(())
}

#[tokio::test]
async fn run_now_on_a_paused_job_queues_an_execution() -> TestResult {
    let app = TestApp::new().await?;
    let mut body = job("paused");
    body["paused"] = json!(true);
    let created = app.create_job(body).await?;
    assert_eq!(created["next_run_at"], Value::Null);
    let id = id_of(&created);

    let run = app
        .call(Method::POST, &format!("/api/v1/jobs/{id}/run"), Value::Null)
        .await?;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.body);
    assert_eq!(run.body["trigger"], "manual");
    assert_eq!(run.body["status"], "queued");
    assert_eq!(run.body["job_id"], id.as_str());
    assert_eq!(run.body["attempts"], json!([]));
    let execution_id = id_of(&run.body);

    let list = app
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{id}/executions"),
            Value::Null,
        )
        .await?;
    assert_eq!(list.status, StatusCode::OK);
    let listed: Vec<String> = list.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(id_of)
        .collect();
    assert_eq!(listed, vec![execution_id.clone()]);

    let read = app
        .call(
            Method::GET,
            &format!("/api/v1/executions/{execution_id}"),
            Value::Null,
        )
        .await?;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["trigger"], "manual");

    let replay = app
        .call(
            Method::POST,
            &format!("/api/v1/executions/{execution_id}/replay"),
            Value::Null,
        )
        .await?;
    assert_eq!(replay.status, StatusCode::ACCEPTED);
    assert_eq!(replay.body["trigger"], "replay");
    assert_eq!(replay.body["job_id"], id.as_str());

    let list = app
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{id}/executions"),
            Value::Null,
        )
        .await?;
    let listed: Vec<String> = list.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(id_of)
        .collect();
    assert_eq!(
        listed,
        vec![id_of(&replay.body), execution_id],
        "newest first"
    );

    let failed = app
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{id}/executions?status=failed"),
            Value::Null,
        )
        .await?;
    assert_eq!(failed.body["data"], json!([]));
    let bad = app
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{id}/executions?status=bogus"),
            Value::Null,
        )
        .await?;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.field(), "status");
    Ok(())
}

#[tokio::test]
async fn pause_clears_the_next_run_and_resume_sets_it() -> TestResult {
    let app = TestApp::new().await?;
    let id = id_of(&app.create_job(job("toggle")).await?);
    let paused = app
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/pause"),
            Value::Null,
        )
        .await?;
    assert_eq!(paused.status, StatusCode::OK);
    assert_eq!(paused.body["paused"], true);
    assert_eq!(paused.body["next_run_at"], Value::Null);

    let resumed = app
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/resume"),
            Value::Null,
        )
        .await?;
    assert_eq!(resumed.status, StatusCode::OK);
    assert_eq!(resumed.body["paused"], false);
    assert!(resumed.body["next_run_at"].is_string(), "{}", resumed.body);

    let paused = app
        .call(
            Method::PATCH,
            &format!("/api/v1/jobs/{id}"),
            json!({"paused": true}),
        )
        .await?;
    assert_eq!(paused.body["next_run_at"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn the_workspace_shows_and_rotates_its_signing_secret() -> TestResult {
    let app = TestApp::new().await?;
    let before = app
        .call(Method::GET, "/api/v1/workspace", Value::Null)
        .await?;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.body["id"], app.workspace_id.as_str());
    assert_eq!(before.body["slug"], "main");
    assert_eq!(before.body["previous_signing_secret"], Value::Null);

    let after = app
        .call(
            Method::POST,
            "/api/v1/workspace/rotate-signing-secret",
            Value::Null,
        )
        .await?;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert!(
        after.body["signing_secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    assert_ne!(after.body["signing_secret"], before.body["signing_secret"]);
    assert_eq!(
        after.body["previous_signing_secret"],
        before.body["signing_secret"]
    );
    assert!(after.body["signing_secret_rotated_at"].is_string());
    Ok(())
}

/// Regression: two run-now requests in the same millisecond clashed on the one-execution-per-
/// (job, instant) key and the second answered 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_run_now_requests_each_get_an_execution() -> TestResult {
    let app = TestApp::new().await?;
    let created = app.create_job(job("busy")).await?;
    let id = id_of(&created);
    let path = format!("/api/v1/jobs/{id}/run");
    let runs =
        futures::future::join_all((0..20).map(|_| app.call(Method::POST, &path, Value::Null)))
            .await;
    let mut ids = std::collections::BTreeSet::new();
    for run in runs {
        let run = run?;
        assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.body);
        ids.insert(id_of(&run.body));
    }
    assert_eq!(ids.len(), 20);
    Ok(())
}
