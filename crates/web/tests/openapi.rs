//! The OpenAPI document against the router and against real answers: every route the app serves
//! is documented with its methods (and nothing documented is missing from the router), and the
//! bodies the app answers validate against the document's schemas.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use chrono::{Duration, Utc};
use cronhook_core::{Attempt, ExecutionStatus, Timing, ids};
use cronhook_store::{ApiKey, AttemptRecord, Lease, NextStep, Store, Workspace};
use cronhook_store_sqlite::SqliteStore;
use cronhook_web::{AppState, app, auth};
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Every route of the API the app serves, by path and method. `/docs` (Swagger UI's pages and
/// assets) is served too but is not part of the API: see `the_docs_page_and_its_assets_load`.
const ROUTES: &[(&str, &[&str])] = &[
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
    ("/api/v1/openapi.json", &["get"]),
    ("/api/v1/jobs", &["get", "post"]),
    ("/api/v1/jobs/{id}", &["delete", "get", "patch"]),
    ("/api/v1/jobs/{id}/run", &["post"]),
    ("/api/v1/jobs/{id}/pause", &["post"]),
    ("/api/v1/jobs/{id}/resume", &["post"]),
    ("/api/v1/jobs/{id}/executions", &["get"]),
    ("/api/v1/executions/{id}", &["get"]),
    ("/api/v1/executions/{id}/replay", &["post"]),
    ("/api/v1/schedule/preview", &["get"]),
    ("/api/v1/workspace", &["get"]),
    ("/api/v1/workspace/rotate-signing-secret", &["post"]),
    ("/api/v1/channels", &["get", "post"]),
    ("/api/v1/channels/{id}", &["delete", "get", "patch"]),
    ("/api/v1/channels/{id}/test", &["post"]),
    ("/api/v1/alerts", &["get"]),
    ("/api/v1/workspace/alert-channels", &["get", "put"]),
    ("/api/v1/nodes", &["get"]),
    ("/api/v1/keys", &["get", "post"]),
    ("/api/v1/keys/{id}", &["delete"]),
];

/// Routes that need no API key.
const PUBLIC: &[&str] = &["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"];

const HTTP_METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

struct TestApp {
    app: Router,
    store: Arc<SqliteStore>,
    key: String,
    document: Value,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl TestApp {
    async fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display())).await?;
        store.migrate().await?;
        let store = Arc::new(store);
        let workspace_id = ids::new_id(ids::WORKSPACE);
        store
            .create_workspace(&Workspace {
                id: workspace_id.clone(),
                slug: "main".into(),
                signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                previous_signing_secret: None,
                signing_secret_rotated_at: None,
                created_at: Utc::now(),
            })
            .await?;
        let (key, key_hash) = auth::new_api_key();
        store
            .insert_api_key(&ApiKey {
                id: ids::new_id(ids::API_KEY),
                workspace_id,
                name: "test".into(),
                key_hash,
                created_at: Utc::now(),
                scope: cronhook_store::ApiKeyScope::Admin,
                last_used_at: None,
                revoked_at: None,
            })
            .await?;
        let state = AppState {
            store: store.clone(),
            executor: None,
            jobs_changed: Arc::new(tokio::sync::Notify::new()),
            targets: cronhook_core::net::TargetPolicy::default(),
            metrics: Some(Arc::new(|| {
                "# TYPE cronhook_executions_total counter\n".to_owned()
            })),
            limits: Default::default(),
            alerts: None,
        };
        let mut test = Self {
            app: app(state),
            store,
            key,
            document: Value::Null,
            _dir: dir,
        };
        let served = test
            .send(Method::GET, "/api/v1/openapi.json", None, false)
            .await?;
        assert_eq!(served.status, StatusCode::OK);
        assert_eq!(served.content_type, "application/json");
        test.document = serde_json::from_str(&served.text)?;
        Ok(test)
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<(&str, Value)>,
        with_key: bool,
    ) -> Result<Answer, Box<dyn std::error::Error>> {
        let mut request = Request::builder().method(method).uri(uri);
        if with_key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        }
        let request = match body {
            Some((content_type, body)) => request
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body.to_string()))?,
            None => request.body(Body::empty())?,
        };
        let response = self.app.clone().oneshot(request).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            content_type,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Sends a request with the key, checks its status, and validates the answer against the
    /// document's schema for `path` (the template), the method and that status.
    async fn checked(
        &self,
        method: Method,
        uri: &str,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        let content_type = if method == Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let answer = self
            .send(
                method.clone(),
                uri,
                body.map(|body| (content_type, body)),
                true,
            )
            .await?;
        assert_eq!(answer.status, expected, "{method} {uri}: {}", answer.text);
        conforms(&self.document, &method, path, &answer)?;
        Ok(answer.json())
    }
}

/// The document's paths as (path, methods).
fn documented(document: &Value) -> BTreeMap<String, BTreeSet<String>> {
    document["paths"]
        .as_object()
        .map(|paths| {
            paths
                .iter()
                .map(|(path, item)| {
                    let methods = HTTP_METHODS
                        .iter()
                        .filter(|method| item.get(**method).is_some())
                        .map(|method| (*method).to_owned())
                        .collect();
                    (path.clone(), methods)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The document's components, made strict for checking: an object schema that lists its
/// properties admits no others, so an answer field missing from the document fails.
fn strict_components(document: &Value) -> Value {
    fn tighten(schema: &mut Value) {
        match schema {
            Value::Object(fields) => {
                if fields.contains_key("properties") && !fields.contains_key("additionalProperties")
                {
                    fields.insert("additionalProperties".into(), Value::Bool(false));
                }
                fields.values_mut().for_each(tighten);
            }
            Value::Array(items) => items.iter_mut().for_each(tighten),
            _ => {}
        }
    }
    let mut components = document["components"].clone();
    tighten(&mut components);
    components
}

/// Checks that the document describes `answer` to `method path`: the status is documented, with
/// the answer's media type, and the body validates against its schema (formats included).
fn conforms(
    document: &Value,
    method: &Method,
    path: &str,
    answer: &Answer,
) -> Result<(), Box<dyn std::error::Error>> {
    let method_name = method.as_str().to_ascii_lowercase();
    let operation = &document["paths"][path][&method_name];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let response = &operation["responses"][answer.status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path}: status {} is not documented",
        answer.status
    );
    if answer.text.is_empty() {
        assert!(
            response.get("content").is_none(),
            "{method} {path} {}: documented with a body, answered none",
            answer.status
        );
        return Ok(());
    }
    let media_type = answer.content_type.split(';').next().unwrap_or("").trim();
    let content = response["content"]
        .as_object()
        .and_then(|content| {
            content.iter().find(|(documented, _)| {
                documented.split(';').next().unwrap_or("").trim() == media_type
            })
        })
        .map(|(_, content)| content)
        .unwrap_or_else(|| {
            panic!(
                "{method} {path} {}: media type `{media_type}` not documented in {}",
                answer.status, response["content"]
            )
        });
    if media_type == "text/plain" {
        assert_eq!(content["schema"]["type"], "string");
        return Ok(());
    }
    let body: Value = serde_json::from_str(&answer.text)?;
    let errors = violations(document, &content["schema"], &body)?;
    assert!(
        errors.is_empty(),
        "{method} {path} {}: the answer does not match the documented schema:\n{}\nanswer: {body:#}",
        answer.status,
        errors.join("\n")
    );
    Ok(())
}

/// Why `body` does not validate against `schema` (which may refer to the document's components).
fn violations(
    document: &Value,
    schema: &Value,
    body: &Value,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": strict_components(document),
        "$defs": {"answer": schema},
        "$ref": "#/$defs/answer",
    });
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)?;
    Ok(validator
        .iter_errors(body)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect())
}

#[tokio::test]
async fn the_schemas_refuse_what_the_api_does_not_answer() -> TestResult {
    let test = TestApp::new().await?;
    let job = test
        .checked(
            Method::POST,
            "/api/v1/jobs",
            "/api/v1/jobs",
            Some(json!({"name": "n", "schedule": {"cron": "@hourly"},
                "request": {"url": "https://api.example.com/"}})),
            StatusCode::CREATED,
        )
        .await?;
    let schema = json!({"$ref": "#/components/schemas/Job"});
    assert!(violations(&test.document, &schema, &job)?.is_empty());
    let tampered = [
        ("an undocumented field", {
            let mut job = job.clone();
            job["surprise"] = json!(1);
            job
        }),
        ("a missing read-only field", {
            let mut job = job.clone();
            job.as_object_mut()
                .map(|fields| fields.remove("next_run_at"));
            job
        }),
        ("a wrong type", {
            let mut job = job.clone();
            job["retry"]["max_attempts"] = json!("three");
            job
        }),
        ("an unknown enum value", {
            let mut job = job.clone();
            job["concurrency"] = json!("sometimes");
            job
        }),
        ("a timestamp that is not one", {
            let mut job = job.clone();
            job["created_at"] = json!("yesterday");
            job
        }),
        ("a schedule of neither form", {
            let mut job = job.clone();
            job["schedule"] = json!({"every": "day"});
            job
        }),
    ];
    for (what, body) in tampered {
        assert!(
            !violations(&test.document, &schema, &body)?.is_empty(),
            "a job with {what} passed"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_the_bearer_scheme() -> TestResult {
    let test = TestApp::new().await?;
    let document = &test.document;
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "cronhook");
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"],
        json!({"type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["api_key"]["description"]})
    );
    // The served document is the one the library builds.
    assert_eq!(
        *document,
        serde_json::to_value(cronhook_web::openapi())?,
        "served and built documents differ"
    );
    Ok(())
}

#[tokio::test]
async fn every_route_is_documented_with_its_methods() -> TestResult {
    let test = TestApp::new().await?;
    let expected: BTreeMap<String, BTreeSet<String>> = ROUTES
        .iter()
        .map(|(path, methods)| {
            (
                (*path).to_owned(),
                methods.iter().map(|m| (*m).to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(documented(&test.document), expected);

    for (path, methods) in ROUTES {
        let uri = path.replace("{id}", "x");
        for method in HTTP_METHODS {
            let answer = test
                .send(method.to_uppercase().parse()?, &uri, None, false)
                .await?;
            let body = answer.json();
            let operation = &test.document["paths"][*path][method];
            if methods.contains(&method) {
                // The router serves it: not the fallback's 404 or 405.
                assert_ne!(
                    body["detail"], "no such route",
                    "{method} {path} is documented but not routed"
                );
                assert_ne!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                let secured = operation["security"] == json!([{"api_key": []}]);
                if PUBLIC.contains(path) {
                    assert!(!secured, "{method} {path} needs no key");
                    assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
                } else {
                    assert!(secured, "{method} {path} must name the api_key scheme");
                    assert_eq!(
                        answer.status,
                        StatusCode::UNAUTHORIZED,
                        "{method} {path} without a key"
                    );
                    conforms(
                        &test.document,
                        &method.to_uppercase().parse()?,
                        path,
                        &answer,
                    )?;
                }
                for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            response["content"]["application/problem+json"]["schema"]["$ref"],
                            "#/components/schemas/Problem",
                            "{method} {path} {status} is a problem"
                        );
                    }
                }
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is routed but not documented"
                );
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn answers_match_the_documented_schemas() -> TestResult {
    let test = TestApp::new().await?;
    let job = test
        .checked(
            Method::POST,
            "/api/v1/jobs",
            "/api/v1/jobs",
            Some(json!({
                "name": "nightly-report",
                "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
                "request": {
                    "method": "POST",
                    "url": "https://api.example.com/reports",
                    "headers": {"Authorization": "Bearer abcdefgh1234"},
                    "body": "{}"
                },
                "success": {"status": [200, 204]}
            })),
            StatusCode::CREATED,
        )
        .await?;
    let job_id = job["id"].as_str().unwrap_or_default().to_owned();
    test.checked(
        Method::POST,
        "/api/v1/jobs",
        "/api/v1/jobs",
        Some(
            json!({"name": "one-off", "schedule": {"at": "2099-01-01T00:00:00Z"},
            "request": {"url": "https://api.example.com/once"}}),
        ),
        StatusCode::CREATED,
    )
    .await?;
    let job_path = format!("/api/v1/jobs/{job_id}");
    test.checked(
        Method::GET,
        &job_path,
        "/api/v1/jobs/{id}",
        None,
        StatusCode::OK,
    )
    .await?;
    test.checked(
        Method::GET,
        "/api/v1/jobs?limit=1",
        "/api/v1/jobs",
        None,
        StatusCode::OK,
    )
    .await?;
    test.checked(
        Method::PATCH,
        &job_path,
        "/api/v1/jobs/{id}",
        Some(json!({"retry": {"max_attempts": 5}})),
        StatusCode::OK,
    )
    .await?;
    test.checked(
        Method::POST,
        &format!("{job_path}/pause"),
        "/api/v1/jobs/{id}/pause",
        None,
        StatusCode::OK,
    )
    .await?;
    test.checked(
        Method::POST,
        &format!("{job_path}/resume"),
        "/api/v1/jobs/{id}/resume",
        None,
        StatusCode::OK,
    )
    .await?;

    // An execution with attempts: run now (no executor here: it is queued), then claim it and
    // record two attempts through the store, as an executor would.
    let queued = test
        .checked(
            Method::POST,
            &format!("{job_path}/run"),
            "/api/v1/jobs/{id}/run",
            None,
            StatusCode::ACCEPTED,
        )
        .await?;
    let execution_id = queued["id"].as_str().unwrap_or_default().to_owned();
    let now = Utc::now();
    let lease = Lease {
        node_id: "node-test".into(),
        until: now + Duration::minutes(1),
    };
    let claimed = test.store.claim_executions(&lease, now, 10).await?;
    assert_eq!(claimed.len(), 1);
    let failed = Attempt {
        number: 1,
        started_at: now,
        duration_ms: 12,
        status_code: None,
        error: Some(cronhook_core::AttemptError {
            kind: cronhook_core::ErrorKind::Timeout,
            message: "no answer within 30000 ms".into(),
        }),
        response_headers: BTreeMap::new(),
        response_body: None,
        response_body_truncated: false,
        redirect_location: None,
        timing: Timing {
            total_ms: 12,
            ..Timing::default()
        },
    };
    let succeeded = Attempt {
        number: 2,
        started_at: now + Duration::seconds(1),
        duration_ms: 184,
        status_code: Some(200),
        error: None,
        response_headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
        response_body: Some(r#"{"ok":true}"#.into()),
        response_body_truncated: false,
        redirect_location: None,
        timing: Timing {
            dns_ms: Some(1),
            connect_ms: Some(3),
            tls_ms: Some(12),
            ttfb_ms: Some(150),
            total_ms: 184,
        },
    };
    let recorded = test
        .store
        .record_attempts(&[AttemptRecord {
            execution_id: execution_id.clone(),
            node_id: lease.node_id.clone(),
            attempt: failed,
            next: NextStep::Retry {
                run_at: now,
                lease_until: lease.until,
            },
        }])
        .await?;
    assert_eq!(recorded, vec![true]);
    let recorded = test
        .store
        .record_attempts(&[AttemptRecord {
            execution_id: execution_id.clone(),
            node_id: lease.node_id.clone(),
            attempt: succeeded,
            next: NextStep::Finish {
                status: ExecutionStatus::Succeeded,
            },
        }])
        .await?;
    assert_eq!(recorded, vec![true]);
    let execution = test
        .checked(
            Method::GET,
            &format!("/api/v1/executions/{execution_id}"),
            "/api/v1/executions/{id}",
            None,
            StatusCode::OK,
        )
        .await?;
    assert_eq!(execution["status"], "succeeded");
    assert_eq!(execution["attempts"].as_array().map(Vec::len), Some(2));
    let listed = test
        .checked(
            Method::GET,
            &format!("{job_path}/executions?status=succeeded"),
            "/api/v1/jobs/{id}/executions",
            None,
            StatusCode::OK,
        )
        .await?;
    assert_eq!(listed["data"][0]["attempts"][1]["status_code"], 200);
    test.checked(
        Method::POST,
        &format!("/api/v1/executions/{execution_id}/replay"),
        "/api/v1/executions/{id}/replay",
        None,
        StatusCode::ACCEPTED,
    )
    .await?;

    test.checked(
        Method::GET,
        "/api/v1/schedule/preview?cron=0%203%20*%20*%20*&timezone=Europe/Berlin&count=3",
        "/api/v1/schedule/preview",
        None,
        StatusCode::OK,
    )
    .await?;
    test.checked(
        Method::GET,
        "/api/v1/workspace",
        "/api/v1/workspace",
        None,
        StatusCode::OK,
    )
    .await?;
    let rotated = test
        .checked(
            Method::POST,
            "/api/v1/workspace/rotate-signing-secret",
            "/api/v1/workspace/rotate-signing-secret",
            None,
            StatusCode::OK,
        )
        .await?;
    assert!(rotated["previous_signing_secret"].is_string());

    // Problems.
    let invalid = test
        .checked(
            Method::POST,
            "/api/v1/jobs",
            "/api/v1/jobs",
            Some(json!({"name": "bad", "schedule": {"cron": "0 3 * * *"},
                "request": {"url": "not a url"}})),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await?;
    assert_eq!(invalid["field"], "request.url");
    test.checked(
        Method::POST,
        "/api/v1/jobs",
        "/api/v1/jobs",
        Some(
            json!({"name": "nightly-report", "schedule": {"cron": "0 3 * * *"},
            "request": {"url": "https://api.example.com/"}}),
        ),
        StatusCode::CONFLICT,
    )
    .await?;
    test.checked(
        Method::GET,
        "/api/v1/jobs/job_nope",
        "/api/v1/jobs/{id}",
        None,
        StatusCode::NOT_FOUND,
    )
    .await?;
    test.checked(
        Method::GET,
        "/api/v1/executions/exe_nope",
        "/api/v1/executions/{id}",
        None,
        StatusCode::NOT_FOUND,
    )
    .await?;
    test.checked(
        Method::GET,
        "/api/v1/jobs?limit=0",
        "/api/v1/jobs",
        None,
        StatusCode::BAD_REQUEST,
    )
    .await?;
    test.checked(
        Method::GET,
        "/api/v1/schedule/preview?cron=nope",
        "/api/v1/schedule/preview",
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await?;
    let unsupported = test
        .send(
            Method::POST,
            "/api/v1/jobs",
            Some(("text/plain", json!("x"))),
            true,
        )
        .await?;
    assert_eq!(unsupported.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    conforms(&test.document, &Method::POST, "/api/v1/jobs", &unsupported)?;

    // Operations.
    for path in ["/healthz", "/readyz", "/metrics"] {
        test.checked(Method::GET, path, path, None, StatusCode::OK)
            .await?;
    }
    test.checked(
        Method::DELETE,
        &job_path,
        "/api/v1/jobs/{id}",
        None,
        StatusCode::NO_CONTENT,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn metrics_answer_prometheus_text_or_404_without_a_recorder() -> TestResult {
    let test = TestApp::new().await?;
    let answer = test.send(Method::GET, "/metrics", None, false).await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(answer.text.contains("cronhook_executions_total"));

    let without = app(AppState {
        store: test.store.clone(),
        executor: None,
        jobs_changed: Arc::new(tokio::sync::Notify::new()),
        targets: cronhook_core::net::TargetPolicy::default(),
        metrics: None,
        limits: Default::default(),
        alerts: None,
    });
    let response = without
        .oneshot(Request::builder().uri("/metrics").body(Body::empty())?)
        .await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    Ok(())
}

#[tokio::test]
async fn the_docs_page_and_its_assets_load() -> TestResult {
    let test = TestApp::new().await?;
    let redirect = test.send(Method::GET, "/docs", None, false).await?;
    assert!(redirect.status.is_redirection(), "{}", redirect.status);
    let page = test.send(Method::GET, "/docs/", None, false).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    let assets = asset_urls(&page.text);
    assert!(
        assets.iter().any(|asset| asset.ends_with(".js")),
        "{assets:?}"
    );
    for asset in &assets {
        assert!(
            !asset.starts_with("http:") && !asset.starts_with("https:") && !asset.starts_with("//"),
            "the docs page loads {asset} from elsewhere"
        );
        let uri = format!("/docs/{}", asset.trim_start_matches("./"));
        let answer = test.send(Method::GET, &uri, None, false).await?;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
    }
    let initializer = test
        .send(Method::GET, "/docs/swagger-initializer.js", None, false)
        .await?;
    assert!(
        initializer.text.contains("/api/v1/openapi.json"),
        "{}",
        initializer.text
    );
    Ok(())
}

/// The `src="..."` and `href="..."` values of an HTML page.
fn asset_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            rest = &rest[start + attribute.len()..];
            if let Some(end) = rest.find('"') {
                urls.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    urls
}
