//! The executor against a real loopback HTTP target and an in-memory store.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use cronhook_core::net::TargetPolicy;
use cronhook_core::{ErrorKind, Execution, ExecutionStatus, Job, JobSpec, Trigger};
use cronhook_executor::{Executor, ExecutorConfig, ExecutorHandle, USER_AGENT, signing};
use cronhook_store::{
    ApiKey, AttemptRecord, ClaimedExecution, ExecutionFilter, Lease, Materialized, NewExecution,
    NextStep, Occurrence, Page, PageRequest, Store, StoreError, StoreResult, User, Workspace,
};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WORKSPACE: &str = "wsp_test";

// ---------------------------------------------------------------------------------------------
// An in-memory store: only what the executor calls behaves.

#[derive(Default)]
struct MemState {
    workspace: Option<Workspace>,
    queued: Vec<ClaimedExecution>,
    claims: Vec<Lease>,
    records: Vec<AttemptRecord>,
    renewals: u32,
    paused: Vec<String>,
    refuse_records: bool,
    /// The next this many `record_attempts` calls fail as if the database were down.
    failing_writes: u32,
    write_calls: u32,
    /// The records of each `record_attempts` call, in order.
    write_sizes: Vec<usize>,
    /// When set, the next `record_attempts` call waits for it to be notified.
    write_gate: Option<Arc<tokio::sync::Notify>>,
    /// The name of the thread each `record_attempts` call ran on.
    write_threads: Vec<Option<String>>,
    workspace_reads: u32,
}

#[derive(Default)]
struct MemStore {
    state: Mutex<MemState>,
}

impl MemStore {
    fn new() -> Arc<Self> {
        let store = Self::default();
        store.lock().workspace = Some(Workspace {
            id: WORKSPACE.into(),
            slug: "test".into(),
            signing_secret: SECRET.into(),
            previous_signing_secret: None,
            signing_secret_rotated_at: None,
            created_at: Utc::now(),
        });
        Arc::new(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().expect("store lock")
    }

    fn records_of(&self, execution_id: &str) -> Vec<AttemptRecord> {
        self.lock()
            .records
            .iter()
            .filter(|record| record.execution_id == execution_id)
            .cloned()
            .collect()
    }

    /// Waits until the execution has a final record; returns all its records.
    async fn finished(&self, execution_id: &str) -> Vec<AttemptRecord> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.records_of(execution_id);
            if records
                .iter()
                .any(|record| matches!(record.next, NextStep::Finish { .. }))
            {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "execution {execution_id} did not finish: {records:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait]
impl cronhook_store::SessionStore for MemStore {
    async fn insert_session(&self, _: &cronhook_store::Session) -> StoreResult<()> {
        Err(StoreError::NotFound)
    }
    async fn session_by_token_hash(
        &self,
        _: &str,
        _: DateTime<Utc>,
    ) -> StoreResult<Option<(cronhook_store::Session, User)>> {
        Ok(None)
    }
    async fn touch_session(&self, _: &str, _: DateTime<Utc>) -> StoreResult<bool> {
        Ok(false)
    }
    async fn delete_session(&self, _: &str) -> StoreResult<bool> {
        Ok(false)
    }
    async fn delete_expired_sessions(&self, _: DateTime<Utc>) -> StoreResult<u64> {
        Ok(0)
    }
    async fn has_users(&self) -> StoreResult<bool> {
        Ok(false)
    }
    async fn create_first_user(&self, _: &Workspace, _: &User) -> StoreResult<Option<User>> {
        Err(StoreError::NotFound)
    }
}

#[async_trait]
impl cronhook_store::HistoryStore for MemStore {
    async fn execution_points(
        &self,
        _: &str,
        _: &str,
        _: Option<DateTime<Utc>>,
        _: u32,
    ) -> StoreResult<Vec<cronhook_store::ExecutionPoint>> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl cronhook_store::NodeStore for MemStore {
    async fn heartbeat(&self, _: &cronhook_store::NodeInfo) -> StoreResult<()> {
        Ok(())
    }
    async fn nodes(&self, _: DateTime<Utc>) -> StoreResult<Vec<cronhook_store::NodeInfo>> {
        Ok(Vec::new())
    }
    async fn database_now(&self) -> StoreResult<DateTime<Utc>> {
        Ok(Utc::now())
    }
}

/// Alerts play no part in the executor: this fake has no channels and records no alerts.
#[async_trait]
impl cronhook_store::AlertStore for MemStore {
    async fn insert_channel(&self, _: &cronhook_store::Channel) -> StoreResult<()> {
        Ok(())
    }
    async fn channel(&self, _: &str, _: &str) -> StoreResult<Option<cronhook_store::Channel>> {
        Ok(None)
    }
    async fn list_channels(
        &self,
        _: &str,
        _: &PageRequest,
    ) -> StoreResult<Page<cronhook_store::Channel>> {
        Ok(Page {
            items: Vec::new(),
            next_after: None,
        })
    }
    async fn update_channel(&self, _: &cronhook_store::Channel) -> StoreResult<()> {
        Err(StoreError::NotFound)
    }
    async fn delete_channel(&self, _: &str, _: &str) -> StoreResult<bool> {
        Ok(false)
    }
    async fn default_alert_channels(&self, _: &str) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }
    async fn set_default_alert_channels(&self, _: &str, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }
    async fn insert_alert(&self, _: &cronhook_store::Alert) -> StoreResult<()> {
        Ok(())
    }
    async fn claim_alerts(
        &self,
        _: &Lease,
        _: DateTime<Utc>,
        _: u32,
    ) -> StoreResult<Vec<cronhook_store::ClaimedAlert>> {
        Ok(Vec::new())
    }
    async fn complete_alert(
        &self,
        _: &str,
        _: &str,
        _: &cronhook_store::DeliveryOutcome,
    ) -> StoreResult<bool> {
        Ok(false)
    }
    async fn list_alerts(
        &self,
        _: &str,
        _: &PageRequest,
    ) -> StoreResult<Page<cronhook_store::Alert>> {
        Ok(Page {
            items: Vec::new(),
            next_after: None,
        })
    }
    async fn next_alert_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(None)
    }
}

#[async_trait]
impl cronhook_store::MaintenanceStore for MemStore {
    async fn prune_executions(
        &self,
        _: &cronhook_store::RetentionPolicy,
        _: DateTime<Utc>,
        _: u32,
    ) -> StoreResult<u64> {
        Ok(0)
    }
    async fn release_leases(&self, _: &str, _: DateTime<Utc>) -> StoreResult<u64> {
        Ok(0)
    }
    fn pool_usage(&self) -> Vec<cronhook_store::PoolUsage> {
        Vec::new()
    }
}

#[async_trait]
impl Store for MemStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
    async fn create_workspace(&self, _: &Workspace) -> StoreResult<()> {
        Err(StoreError::NotFound)
    }
    async fn workspace(&self, id: &str) -> StoreResult<Option<Workspace>> {
        let workspace = {
            let mut state = self.lock();
            state.workspace_reads += 1;
            state.workspace.clone().filter(|w| w.id == id)
        };
        // A read takes a while, as a database's does, so concurrent readers overlap.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(workspace)
    }
    async fn workspace_by_slug(&self, _: &str) -> StoreResult<Option<Workspace>> {
        Err(StoreError::NotFound)
    }
    async fn rotate_signing_secret(
        &self,
        _: &str,
        _: &str,
        _: DateTime<Utc>,
    ) -> StoreResult<Workspace> {
        Err(StoreError::NotFound)
    }
    async fn insert_api_key(&self, _: &ApiKey) -> StoreResult<()> {
        Err(StoreError::NotFound)
    }
    async fn api_key_by_hash(&self, _: &str) -> StoreResult<Option<ApiKey>> {
        Err(StoreError::NotFound)
    }
    async fn insert_user(&self, _: &User) -> StoreResult<()> {
        Err(StoreError::NotFound)
    }
    async fn user_by_email(&self, _: &str) -> StoreResult<Option<User>> {
        Err(StoreError::NotFound)
    }
    async fn insert_job(&self, _: &Job) -> StoreResult<()> {
        Err(StoreError::NotFound)
    }
    async fn job(&self, _: &str, _: &str) -> StoreResult<Option<Job>> {
        Err(StoreError::NotFound)
    }
    async fn list_jobs(&self, _: &str, _: &PageRequest) -> StoreResult<Page<Job>> {
        Err(StoreError::NotFound)
    }
    async fn update_job(&self, _: &Job) -> StoreResult<()> {
        Err(StoreError::NotFound)
    }
    async fn pause_job(&self, workspace_id: &str, id: &str, _: DateTime<Utc>) -> StoreResult<bool> {
        assert_eq!(workspace_id, WORKSPACE);
        self.lock().paused.push(id.to_owned());
        Ok(true)
    }
    async fn delete_job(&self, _: &str, _: &str) -> StoreResult<bool> {
        Err(StoreError::NotFound)
    }
    async fn due_jobs(&self, _: DateTime<Utc>, _: u32) -> StoreResult<Vec<Job>> {
        Err(StoreError::NotFound)
    }
    async fn claim_due_jobs(
        &self,
        _: &Lease,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: u32,
    ) -> StoreResult<Vec<Job>> {
        Err(StoreError::NotFound)
    }
    async fn earliest_next_run(&self) -> StoreResult<Option<DateTime<Utc>>> {
        Err(StoreError::NotFound)
    }
    async fn materialize(&self, _: &[Occurrence]) -> StoreResult<Vec<Materialized>> {
        Err(StoreError::NotFound)
    }
    async fn insert_execution(&self, _: &NewExecution) -> StoreResult<()> {
        Err(StoreError::NotFound)
    }
    async fn claim_executions(
        &self,
        lease: &Lease,
        _: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedExecution>> {
        let mut state = self.lock();
        state.claims.push(lease.clone());
        let take = state.queued.len().min(limit as usize);
        Ok(state.queued.drain(..take).collect())
    }
    async fn record_attempts(&self, records: &[AttemptRecord]) -> StoreResult<Vec<bool>> {
        let gate = self.lock().write_gate.take();
        if let Some(gate) = gate {
            gate.notified().await;
        }
        let mut state = self.lock();
        state.write_calls += 1;
        state.write_sizes.push(records.len());
        state
            .write_threads
            .push(std::thread::current().name().map(str::to_owned));
        if state.failing_writes > 0 {
            state.failing_writes -= 1;
            return Err(StoreError::Unavailable("database down".into()));
        }
        let accept = !state.refuse_records;
        state.records.extend(records.iter().cloned());
        Ok(vec![accept; records.len()])
    }
    async fn renew_leases(&self, _: &str, _: DateTime<Utc>) -> StoreResult<u64> {
        self.lock().renewals += 1;
        Ok(1)
    }
    async fn execution(&self, _: &str, _: &str) -> StoreResult<Option<Execution>> {
        Err(StoreError::NotFound)
    }
    async fn list_executions(
        &self,
        _: &str,
        _: &str,
        _: &ExecutionFilter,
        _: &PageRequest,
    ) -> StoreResult<Page<Execution>> {
        Err(StoreError::NotFound)
    }
}

// ---------------------------------------------------------------------------------------------
// A loopback target that records what it receives and answers as each test says.

#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    path: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    delay: Duration,
}

impl Reply {
    fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

struct TargetState {
    seen: Mutex<Vec<Seen>>,
    respond: Box<Responder>,
}

struct Target {
    addr: SocketAddr,
    state: Arc<TargetState>,
}

impl Target {
    async fn start(respond: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Self {
        let state = Arc::new(TargetState {
            seen: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind target");
        let addr = listener.local_addr().expect("target address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("seen lock").clone()
    }
}

async fn handle(State(state): State<Arc<TargetState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body")
        .to_vec();
    let seen = Seen {
        at: Instant::now(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
    };
    let index = {
        let mut all = state.seen.lock().expect("seen lock");
        all.push(seen.clone());
        all.len() - 1
    };
    let reply = (state.respond)(index, &seen);
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder().status(reply.status);
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    response
        .body(Body::from(reply.body))
        .expect("test response")
}

/// A raw listener that only counts the connections it accepts.
struct Counter {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Counter {
    async fn start(ip: &str) -> Option<Self> {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.ok()?;
        let addr = listener.local_addr().ok()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Some(Self { addr, accepted })
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn open_policy() -> TargetPolicy {
    TargetPolicy {
        allow_private: true,
        ..TargetPolicy::default()
    }
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    if let (Some(base), serde_json::Value::Object(patch)) = (base.as_object_mut(), patch) {
        for (key, value) in patch {
            match base.get_mut(&key) {
                Some(existing) if value.is_object() => merge(existing, value),
                _ => {
                    base.insert(key, value);
                }
            }
        }
    }
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

fn execution(url: &str, patch: serde_json::Value) -> ClaimedExecution {
    let mut spec = serde_json::json!({
        "name": "test",
        "schedule": {"cron": "* * * * *"},
        "request": {"url": url, "timeout_ms": 5000},
        "retry": {"max_attempts": 1, "initial_delay_ms": 100, "max_delay_ms": 10000, "jitter": false}
    });
    merge(&mut spec, patch);
    let spec: JobSpec = serde_json::from_value(spec).expect("test spec");
    let n = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    ClaimedExecution {
        id: format!("exe_test{n}"),
        workspace_id: WORKSPACE.into(),
        job_id: format!("job_test{n}"),
        scheduled_for: DateTime::parse_from_rfc3339("2026-01-01T02:00:00Z")
            .expect("time")
            .with_timezone(&Utc),
        trigger: Trigger::Manual,
        attempts_done: 0,
        interrupted: false,
        started_at: None,
        spec: spec.into(),
    }
}

struct Running {
    handle: ExecutorHandle,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(8), self.task)
            .await
            .expect("executor stops in time")
            .expect("executor task");
    }
}

fn start(store: Arc<MemStore>, targets: TargetPolicy) -> Running {
    start_with(store, targets, Duration::from_secs(3))
}

fn start_with(store: Arc<MemStore>, targets: TargetPolicy, lease: Duration) -> Running {
    start_configured(store, test_config(targets, lease))
}

/// The tests' executor settings: 16 in flight, a 50 ms poll.
fn test_config(targets: TargetPolicy, lease: Duration) -> ExecutorConfig {
    ExecutorConfig {
        node_id: "node-a".into(),
        max_in_flight: 16,
        lease,
        targets,
        poll_interval: Duration::from_millis(50),
        ..ExecutorConfig::new("node-a")
    }
}

fn start_configured(store: Arc<MemStore>, config: ExecutorConfig) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (executor, handle) = Executor::new(store, config).expect("executor");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(executor.run(shutdown.clone()));
    Running {
        handle,
        shutdown,
        task,
    }
}

fn error_kind(record: &AttemptRecord) -> Option<ErrorKind> {
    record.attempt.error.as_ref().map(|error| error.kind)
}

fn finish_status(record: &AttemptRecord) -> Option<ExecutionStatus> {
    match record.next {
        NextStep::Finish { status } => Some(status),
        NextStep::Retry { .. } => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn a_success_records_status_headers_body_and_timing() {
    let target = Target::start(|_, _| {
        Reply::status(200)
            .header("content-type", "application/json")
            .header("x-reply", "one")
            .body(r#"{"ok":true}"#)
    })
    .await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let exe = execution(
        &target.url("/hook?x=1"),
        serde_json::json!({"request": {
            "method": "POST",
            "headers": {"X-Custom": "custom-value", "Content-Type": "application/json"},
            "body": "{\"kind\":\"nightly\"}"
        }}),
    );
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;

    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.node_id, "node-a");
    assert_eq!(finish_status(record), Some(ExecutionStatus::Succeeded));
    let attempt = &record.attempt;
    assert_eq!(attempt.number, 1);
    assert_eq!(attempt.status_code, Some(200));
    assert_eq!(attempt.error, None);
    assert_eq!(attempt.response_body.as_deref(), Some(r#"{"ok":true}"#));
    assert!(!attempt.response_body_truncated);
    assert_eq!(
        attempt
            .response_headers
            .get("content-type")
            .map(String::as_str),
        Some("application/json")
    );
    assert_eq!(
        attempt.response_headers.get("x-reply").map(String::as_str),
        Some("one")
    );
    assert!(attempt.timing.ttfb_ms.is_some());
    assert!(attempt.timing.ttfb_ms <= Some(attempt.timing.total_ms));
    assert_eq!(attempt.duration_ms, attempt.timing.total_ms);

    let seen = target.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.path, "/hook");
    assert_eq!(request.body, b"{\"kind\":\"nightly\"}");
    assert_eq!(request.header("user-agent"), USER_AGENT);
    assert!(USER_AGENT.starts_with("cronhook/"));
    assert_eq!(request.header("x-custom"), "custom-value");
    assert_eq!(request.header("host"), target.addr.to_string());
    assert_eq!(request.header("accept"), "*/*");
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("cronhook-attempt"), "1");
    assert_eq!(
        request.header("cronhook-scheduled-for"),
        "2026-01-01T02:00:00Z"
    );
    assert_eq!(request.header("webhook-id"), exe.id);
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .parse()
        .expect("unix seconds");
    assert!((Utc::now().timestamp() - timestamp).abs() < 30);
    let expected = signing::sign(SECRET, &exe.id, timestamp, &request.body).expect("signature");
    assert_eq!(request.header("webhook-signature"), expected);
}

#[tokio::test]
async fn after_a_rotation_requests_carry_both_signatures() {
    let target = Target::start(|_, _| Reply::status(204)).await;
    let store = MemStore::new();
    let previous = signing::new_secret();
    let current = signing::new_secret();
    {
        let mut state = store.lock();
        let workspace = state.workspace.as_mut().expect("workspace");
        workspace.signing_secret = current.clone();
        workspace.previous_signing_secret = Some(previous.clone());
        workspace.signing_secret_rotated_at = Some(Utc::now() - chrono::Duration::hours(1));
    }
    let running = start(store.clone(), open_policy());
    let exe = execution(&target.url("/"), serde_json::json!({}));
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(records[0].attempt.status_code, Some(204));

    let seen = target.seen();
    let request = &seen[0];
    let timestamp: i64 = request.header("webhook-timestamp").parse().expect("ts");
    let expected = format!(
        "{} {}",
        signing::sign(&current, &exe.id, timestamp, b"").expect("sign"),
        signing::sign(&previous, &exe.id, timestamp, b"").expect("sign")
    );
    assert_eq!(request.header("webhook-signature"), expected);
}

#[tokio::test]
async fn failures_are_retried_with_growing_gaps_and_one_webhook_id() {
    let target = Target::start(|index, _| {
        if index < 2 {
            Reply::status(500).body("boom")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let exe = execution(
        &target.url("/"),
        serde_json::json!({"retry": {"max_attempts": 3, "initial_delay_ms": 100, "jitter": false}}),
    );
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;

    assert_eq!(records.len(), 3);
    let numbers: Vec<u32> = records.iter().map(|r| r.attempt.number).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    for record in &records[..2] {
        assert_eq!(record.attempt.status_code, Some(500));
        assert_eq!(error_kind(record), Some(ErrorKind::AssertionFailed));
        assert!(matches!(record.next, NextStep::Retry { .. }));
        assert_eq!(record.attempt.response_body.as_deref(), Some("boom"));
    }
    if let NextStep::Retry {
        run_at,
        lease_until,
    } = records[0].next
    {
        assert!(lease_until > run_at);
    }
    assert_eq!(finish_status(&records[2]), Some(ExecutionStatus::Succeeded));

    let seen = target.seen();
    assert_eq!(seen.len(), 3);
    for (index, request) in seen.iter().enumerate() {
        assert_eq!(request.header("webhook-id"), exe.id);
        assert_eq!(request.header("cronhook-attempt"), (index + 1).to_string());
    }
    let first_gap = seen[1].at - seen[0].at;
    let second_gap = seen[2].at - seen[1].at;
    assert!(first_gap >= Duration::from_millis(100), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(200), "{second_gap:?}");
    assert!(second_gap > first_gap);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let target = Target::start(|index, _| {
        if index == 0 {
            Reply::status(429).header("retry-after", "1")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let exe = execution(
        &target.url("/"),
        serde_json::json!({"retry": {"max_attempts": 2, "initial_delay_ms": 10}}),
    );
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(records.len(), 2);
    let seen = target.seen();
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_target_that_hangs_times_out() {
    let target = Target::start(|_, _| Reply::status(200).delay(Duration::from_secs(5))).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let exe = execution(
        &target.url("/slow"),
        serde_json::json!({"request": {"timeout_ms": 300}}),
    );
    let started = Instant::now();
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    running.stop().await;
    assert_eq!(records.len(), 1);
    assert_eq!(error_kind(&records[0]), Some(ErrorKind::Timeout));
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Failed));
    assert!(records[0].attempt.duration_ms >= 300);
}

#[tokio::test]
async fn a_huge_body_is_cut_at_64_kib_and_flagged() {
    let target = Target::start(|_, _| Reply::status(200).body(vec![b'x'; 1024 * 1024])).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let exe = execution(&target.url("/big"), serde_json::json!({}));
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    let attempt = &records[0].attempt;
    assert_eq!(attempt.status_code, Some(200));
    assert!(attempt.response_body_truncated);
    assert_eq!(
        attempt.response_body.as_ref().map(String::len),
        Some(cronhook_core::MAX_STORED_RESPONSE_BODY)
    );
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Succeeded));
}

#[tokio::test]
async fn a_loopback_target_is_blocked_by_default_and_never_contacted() {
    let counter = Counter::start("127.0.0.1").await.expect("listener");
    let store = MemStore::new();
    let running = start(store.clone(), TargetPolicy::default());
    let exe = execution(
        &format!("http://{}/", counter.addr),
        serde_json::json!({"retry": {"max_attempts": 3}}),
    );
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(records.len(), 1, "a blocked target is not retried");
    assert_eq!(error_kind(&records[0]), Some(ErrorKind::BlockedTarget));
    assert_eq!(records[0].attempt.status_code, None);
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Failed));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(counter.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_blocked_at_the_hop() {
    // 127.0.0.2 is loopback on Linux; [::1] is the fallback where it cannot be bound.
    let (counter, host) = match Counter::start("127.0.0.2").await {
        Some(counter) => {
            let host = counter.addr.to_string();
            (counter, host)
        }
        None => {
            let counter = Counter::start("::1")
                .await
                .expect("a second loopback address");
            let host = format!("[::1]:{}", counter.addr.port());
            (counter, host)
        }
    };
    let location = format!("http://{host}/elsewhere");
    let target =
        Target::start(move |_, _| Reply::status(302).header("location", location.clone())).await;
    let store = MemStore::new();
    let policy = TargetPolicy {
        allow_private: false,
        allowed_nets: vec!["127.0.0.1/32".parse().expect("net")],
    };
    let running = start(store.clone(), policy);
    let exe = execution(
        &target.url("/start"),
        serde_json::json!({"request": {"follow_redirects": true}, "retry": {"max_attempts": 3}}),
    );
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        error_kind(&records[0]),
        Some(ErrorKind::BlockedTarget),
        "{records:#?}"
    );
    assert_eq!(target.seen().len(), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(counter.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn redirects_are_not_followed_unless_asked() {
    let target = Target::start(|_, seen| {
        if seen.path == "/final" {
            Reply::status(200).body("arrived")
        } else {
            Reply::status(302).header("location", "/final")
        }
    })
    .await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());

    let stay = execution(&target.url("/start"), serde_json::json!({}));
    running.handle.submit(stay.clone());
    let records = store.finished(&stay.id).await;
    let attempt = &records[0].attempt;
    assert_eq!(attempt.status_code, Some(302));
    assert_eq!(attempt.redirect_location.as_deref(), Some("/final"));
    assert_eq!(error_kind(&records[0]), Some(ErrorKind::AssertionFailed));

    let accepted = execution(
        &target.url("/start"),
        serde_json::json!({"success": {"status": "2xx,3xx"}}),
    );
    running.handle.submit(accepted.clone());
    let records = store.finished(&accepted.id).await;
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Succeeded));

    let follow = execution(
        &target.url("/start"),
        serde_json::json!({"request": {"follow_redirects": true}}),
    );
    running.handle.submit(follow.clone());
    let records = store.finished(&follow.id).await;
    running.stop().await;
    let attempt = &records[0].attempt;
    assert_eq!(attempt.status_code, Some(200));
    assert_eq!(attempt.response_body.as_deref(), Some("arrived"));
    assert_eq!(attempt.redirect_location, None);
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Succeeded));
}

#[tokio::test]
async fn a_redirect_loop_is_too_many_redirects() {
    let target = Target::start(|index, _| {
        Reply::status(302).header("location", format!("/hop{}", index + 1))
    })
    .await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let exe = execution(
        &target.url("/hop0"),
        serde_json::json!({"request": {"follow_redirects": true}, "retry": {"max_attempts": 3}}),
    );
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(records.len(), 1);
    assert_eq!(error_kind(&records[0]), Some(ErrorKind::TooManyRedirects));
    assert_eq!(target.seen().len(), 11, "the first request and 10 hops");
}

#[tokio::test]
async fn gone_finishes_failed_without_retry() {
    let target = Target::start(|_, _| Reply::status(410)).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let exe = execution(
        &target.url("/"),
        serde_json::json!({"retry": {"max_attempts": 3}}),
    );
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    // The store pauses the job when it records a 410 (conformance_alerts, e2e alerts tests);
    // the executor's part is to finish the execution failed at once, without a retry.
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].attempt.status_code, Some(410));
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Failed));
    assert_eq!(target.seen().len(), 1);
}

#[tokio::test]
async fn a_body_that_breaks_the_regex_fails_without_retry() {
    let target = Target::start(|_, _| Reply::status(200).body(r#"{"ok":false}"#)).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let exe = execution(
        &target.url("/"),
        serde_json::json!({"success": {"body_regex": "\"ok\":true"}, "retry": {"max_attempts": 3}}),
    );
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(records.len(), 1);
    let error = records[0].attempt.error.as_ref().expect("error");
    assert_eq!(error.kind, ErrorKind::AssertionFailed);
    assert!(error.message.contains("body_regex"), "{}", error.message);
    assert_eq!(records[0].attempt.status_code, Some(200));
}

#[tokio::test]
async fn an_interrupted_attempt_is_recorded_before_the_next() {
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let mut exe = execution(
        &target.url("/"),
        serde_json::json!({"retry": {"max_attempts": 3}}),
    );
    exe.attempts_done = 1;
    exe.interrupted = true;
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].attempt.number, 2);
    assert_eq!(error_kind(&records[0]), Some(ErrorKind::Interrupted));
    assert!(matches!(records[0].next, NextStep::Retry { .. }));
    assert_eq!(records[1].attempt.number, 3);
    assert_eq!(finish_status(&records[1]), Some(ExecutionStatus::Succeeded));
    assert_eq!(target.seen()[0].header("cronhook-attempt"), "3");
}

#[tokio::test]
async fn an_interrupted_last_attempt_finishes_failed() {
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let mut exe = execution(
        &target.url("/"),
        serde_json::json!({"retry": {"max_attempts": 2}}),
    );
    exe.attempts_done = 1;
    exe.interrupted = true;
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(records.len(), 1);
    assert_eq!(error_kind(&records[0]), Some(ErrorKind::Interrupted));
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Failed));
    assert!(target.seen().is_empty());
}

#[tokio::test]
async fn the_poller_claims_queued_work_and_leases_are_renewed() {
    let target = Target::start(|_, _| Reply::status(200).delay(Duration::from_millis(400))).await;
    let store = MemStore::new();
    let exe = execution(&target.url("/"), serde_json::json!({}));
    store.lock().queued.push(exe.clone());
    let running = start_with(store.clone(), open_policy(), Duration::from_millis(300));
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Succeeded));
    let state = store.lock();
    assert!(state.renewals >= 1, "renewals: {}", state.renewals);
    let claim = state.claims.first().expect("a claim");
    assert_eq!(claim.node_id, "node-a");
    assert!(claim.until > Utc::now() - chrono::Duration::seconds(5));
}

/// Submits `size` executions against `target` at once and waits for each to succeed.
async fn send_burst_and_see_it_succeed(
    running: &Running,
    store: &MemStore,
    target: &Target,
    size: usize,
) {
    let burst: Vec<ClaimedExecution> = (0..size)
        .map(|_| execution(&target.url("/"), serde_json::json!({})))
        .collect();
    for exe in &burst {
        running.handle.submit(exe.clone());
    }
    for exe in &burst {
        let records = store.finished(&exe.id).await;
        assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Succeeded));
    }
}

#[tokio::test]
async fn records_are_written_on_the_runtime_given_for_them() {
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    let records_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("records-runtime")
        .enable_all()
        .build()
        .expect("records runtime");
    let running = start_configured(
        store.clone(),
        ExecutorConfig {
            record_runtime: Some(records_runtime.handle().clone()),
            ..test_config(open_policy(), Duration::from_secs(3))
        },
    );
    send_burst_and_see_it_succeed(&running, &store, &target, 20).await;
    running.stop().await;
    records_runtime.shutdown_background();
    let threads = store.lock().write_threads.clone();
    assert!(!threads.is_empty());
    assert!(
        threads
            .iter()
            .all(|name| name.as_deref() == Some("records-runtime")),
        "every record written on the runtime given for them: {threads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reads_its_workspace_once() {
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    send_burst_and_see_it_succeed(&running, &store, &target, 100).await;
    running.stop().await;
    assert_eq!(
        store.lock().workspace_reads,
        1,
        "the burst waits for one read of its workspace instead of making one each"
    );
}

#[tokio::test]
async fn wake_polls_at_once() {
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ExecutorConfig {
        poll_interval: Duration::from_secs(60),
        targets: open_policy(),
        ..ExecutorConfig::new("node-w")
    };
    let (executor, handle) = Executor::new(store.clone(), config).expect("executor");
    assert_eq!(handle.node_id(), "node-w");
    assert_eq!(handle.lease_duration(), Duration::from_secs(30));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(executor.run(shutdown.clone()));
    // Let the first (empty) poll pass, then queue work and wake.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let exe = execution(&target.url("/"), serde_json::json!({}));
    store.lock().queued.push(exe.clone());
    handle.wake();
    let records = store.finished(&exe.id).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(8), task)
        .await
        .expect("stops")
        .expect("task");
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Succeeded));
}

#[tokio::test]
async fn a_refused_record_drops_the_execution() {
    let target = Target::start(|_, _| Reply::status(500)).await;
    let store = MemStore::new();
    store.lock().refuse_records = true;
    let running = start(store.clone(), open_policy());
    let exe = execution(
        &target.url("/"),
        serde_json::json!({"retry": {"max_attempts": 3, "initial_delay_ms": 10}}),
    );
    running.handle.submit(exe.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.records_of(&exe.id).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    assert_eq!(store.records_of(&exe.id).len(), 1);
    assert_eq!(target.seen().len(), 1, "no attempt after the store refused");
}

#[tokio::test]
async fn shutdown_returns_promptly_while_a_retry_waits() {
    let target = Target::start(|_, _| Reply::status(503)).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let exe = execution(
        &target.url("/"),
        serde_json::json!({"retry": {"max_attempts": 3, "initial_delay_ms": 60000, "max_delay_ms": 60000}}),
    );
    running.handle.submit(exe.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.records_of(&exe.id).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let records = store.records_of(&exe.id);
    assert!(matches!(records[0].next, NextStep::Retry { .. }));
    let stopping = Instant::now();
    running.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(2));
    assert_eq!(store.records_of(&exe.id).len(), 1);
}

#[tokio::test]
async fn shutdown_ends_an_execution_waiting_for_its_instant_without_sending_it() {
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let mut exe = execution(&target.url("/"), serde_json::json!({}));
    exe.trigger = Trigger::Schedule;
    exe.scheduled_for = Utc::now() + chrono::TimeDelta::seconds(60);
    running.handle.submit(exe.clone());
    // Time to build its request and start waiting for its instant.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    running.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "shutdown ends the wait for the instant"
    );
    assert!(target.seen().is_empty(), "nothing is sent");
    assert!(store.records_of(&exe.id).is_empty(), "nothing is recorded");
}

#[tokio::test]
async fn a_request_prepared_ahead_carries_its_host_and_accept_and_not_the_jobs_host() {
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    let mut exe = execution(
        &target.url("/prepared"),
        serde_json::json!({"request": {"headers": {"Host": "elsewhere.example"}}}),
    );
    exe.trigger = Trigger::Schedule;
    // Far enough ahead that its request is built before the instant.
    exe.scheduled_for = Utc::now() + chrono::TimeDelta::milliseconds(600);
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Succeeded));
    let seen = target.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/prepared");
    assert_eq!(seen[0].header("host"), target.addr.to_string());
    assert_eq!(seen[0].header("accept"), "*/*");
    assert_eq!(seen[0].headers.get_all("host").iter().count(), 1);
}

#[test]
fn a_bad_config_is_refused() {
    let store = MemStore::new();
    let config = ExecutorConfig {
        max_in_flight: 0,
        ..ExecutorConfig::new("n")
    };
    assert!(Executor::new(store, config).is_err());
}

#[tokio::test]
async fn records_are_written_again_while_the_store_is_down() {
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    store.lock().failing_writes = 2;
    let running = start(store.clone(), open_policy());
    let exe = execution(&target.url("/"), serde_json::json!({}));
    running.handle.submit(exe.clone());
    let records = store.finished(&exe.id).await;
    running.stop().await;
    assert_eq!(records.len(), 1);
    assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Succeeded));
    assert_eq!(store.lock().write_calls, 3);
    assert_eq!(target.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_burst_is_recorded_in_several_transactions() {
    const BURST: usize = 2 * cronhook_executor::WRITE_TRANSACTION + 500;
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    // The first record's write waits at the gate while the whole burst is answered, so the
    // burst's records queue behind it and are gathered into one batch larger than a
    // transaction, however long the burst takes (the gathering stops after a second).
    let gate = Arc::new(tokio::sync::Notify::new());
    store.lock().write_gate = Some(Arc::clone(&gate));
    let running = start(store.clone(), open_policy());
    let first = execution(&target.url("/"), serde_json::json!({}));
    running.handle.submit(first.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.lock().write_gate.is_some() {
        assert!(
            Instant::now() < deadline,
            "the first record is sent to the store"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let burst: Vec<ClaimedExecution> = (0..BURST)
        .map(|_| execution(&target.url("/"), serde_json::json!({})))
        .collect();
    for exe in &burst {
        running.handle.submit(exe.clone());
    }
    while target.seen().len() < BURST + 1 {
        assert!(Instant::now() < deadline, "the burst is answered in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The answers' records reach the writer's queue a moment after the target saw the requests.
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.notify_one();
    for exe in std::iter::once(&first).chain(&burst) {
        let records = store.finished(&exe.id).await;
        assert_eq!(finish_status(&records[0]), Some(ExecutionStatus::Succeeded));
    }
    running.stop().await;
    let sizes = store.lock().write_sizes.clone();
    assert_eq!(sizes.iter().sum::<usize>(), BURST + 1, "{sizes:?}");
    assert!(
        sizes
            .iter()
            .all(|&size| size <= cronhook_executor::WRITE_TRANSACTION),
        "{sizes:?}"
    );
    assert!(
        sizes
            .iter()
            .filter(|&&size| size == cronhook_executor::WRITE_TRANSACTION)
            .count()
            >= 2,
        "the gathered batch was split into full transactions: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_recorded_in_a_few_gathered_writes() {
    const BURST: usize = 300;
    let target = Target::start(|_, _| Reply::status(200)).await;
    let store = MemStore::new();
    let running = start(store.clone(), open_policy());
    send_burst_and_see_it_succeed(&running, &store, &target, BURST).await;
    running.stop().await;
    let sizes = store.lock().write_sizes.clone();
    assert_eq!(sizes.iter().sum::<usize>(), BURST, "{sizes:?}");
    // The writer gathers while the burst is on the wire instead of writing as records come;
    // a tenth is far more than it takes even on a loaded machine.
    assert!(
        sizes.len() <= BURST / 10,
        "{} writes for {BURST} records: {sizes:?}",
        sizes.len()
    );
}

// The executor never manages API keys or data keys: these answer as an empty store would.
#[async_trait::async_trait]
impl cronhook_store::ApiKeyStore for MemStore {
    async fn list_api_keys(
        &self,
        _workspace_id: &str,
    ) -> cronhook_store::StoreResult<Vec<cronhook_store::ApiKey>> {
        Ok(Vec::new())
    }
    async fn api_key(
        &self,
        _workspace_id: &str,
        _id: &str,
    ) -> cronhook_store::StoreResult<Option<cronhook_store::ApiKey>> {
        Ok(None)
    }
    async fn revoke_api_key(
        &self,
        _workspace_id: &str,
        _id: &str,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> cronhook_store::StoreResult<bool> {
        Ok(false)
    }
    async fn touch_api_key(
        &self,
        _id: &str,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> cronhook_store::StoreResult<bool> {
        Ok(false)
    }
}

#[async_trait::async_trait]
impl cronhook_store::WorkspaceKeyStore for MemStore {
    async fn wrapped_data_key(
        &self,
        _workspace_id: &str,
    ) -> cronhook_store::StoreResult<Option<String>> {
        Ok(None)
    }
    async fn replace_wrapped_data_key(
        &self,
        _workspace_id: &str,
        _expected: Option<&str>,
        _new: &str,
    ) -> cronhook_store::StoreResult<bool> {
        Ok(false)
    }
    async fn wrapped_data_keys(&self) -> cronhook_store::StoreResult<Vec<(String, String)>> {
        Ok(Vec::new())
    }
}
