//! The end-to-end harness: starts the real `cronhook` binary on a free loopback port with its
//! own SQLite file, drives it only through HTTP and its command line, and stands up real HTTP
//! targets on loopback that record what they receive.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use chrono::{DateTime, Utc};

pub mod postgres;
pub mod smtp;

pub use serde_json::{Value, json};

/// The `cronhook` binary under test: `CRONHOOK_BIN`, or the one cargo built beside this test.
pub fn cronhook_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CRONHOOK_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // Tests live in target/<profile>/deps/, tools in target/<profile>/; the binary beside either.
    let mut dir = exe.parent().expect("executable has a directory");
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    let binary = dir.join("cronhook");
    assert!(
        binary.exists(),
        "{} does not exist: build it first with `cargo build -p cronhook` (the README's test command does)",
        binary.display()
    );
    binary
}

/// A free TCP port on loopback (bound and released; the race with other processes is harmless
/// here, since each test spawns its own server and retries on a clash).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Options for a cronhook process.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub allow_private_targets: bool,
    pub extra_args: Vec<String>,
    pub extra_env: Vec<(String, String)>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            allow_private_targets: true,
            extra_args: Vec::new(),
            extra_env: Vec::new(),
        }
    }
}

/// A running `cronhook serve` with its own data directory.
pub struct Cronhook {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    port: u16,
    options: ServeOptions,
    _temp: Option<tempfile::TempDir>,
    log_path: PathBuf,
    pub http: reqwest::Client,
}

impl Cronhook {
    /// Starts cronhook on a fresh SQLite database and waits until it is ready.
    pub async fn start(options: ServeOptions) -> Cronhook {
        Self::start_on(None, options).await
    }

    /// Starts cronhook on `database_url` (a fresh SQLite file when `None`) and waits until it
    /// is ready. Several processes may share one PostgreSQL database.
    pub async fn start_on(database_url: Option<&str>, options: ServeOptions) -> Cronhook {
        install_crypto_provider();
        let temp = tempfile::tempdir().expect("temporary data directory");
        let data_dir = temp.path().to_path_buf();
        let database_url = database_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sqlite://{}/cronhook.db", data_dir.display()));
        let mut cronhook = Cronhook {
            child: None,
            base_url: String::new(),
            database_url,
            log_path: data_dir.join("cronhook.log"),
            data_dir,
            port: 0,
            options,
            _temp: Some(temp),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
        };
        cronhook.spawn().await;
        cronhook
    }

    async fn spawn(&mut self) {
        for _ in 0..5 {
            let port = if self.port == 0 {
                free_port()
            } else {
                self.port
            };
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_path)
                .expect("log file");
            let mut command = Command::new(cronhook_binary());
            command
                .arg("serve")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(&self.options.extra_args)
                .env("DATABASE_URL", &self.database_url)
                .envs(secret_key_env(&self.database_url))
                .env("CRONHOOK_LOG", "info,cronhook_executor=debug")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log);
            if self.options.allow_private_targets {
                command.arg("--allow-private-targets");
            }
            for (key, value) in &self.options.extra_env {
                command.env(key, value);
            }
            let child = command.spawn().expect("spawn cronhook");
            self.child = Some(child);
            self.port = port;
            self.base_url = format!("http://127.0.0.1:{port}");
            if self.wait_ready(Duration::from_secs(20)).await {
                return;
            }
            self.kill();
            if self.port != 0 && !self.log().contains("cannot listen") {
                break;
            }
            self.port = 0;
        }
        panic!("cronhook did not become ready; its log:\n{}", self.log());
    }

    async fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if let Ok(response) = self.http.get(self.url("/readyz")).send().await
                && response.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The process's log so far (stderr and stdout).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Kills the process with SIGKILL (no chance to clean up).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `limit` for the process to exit by itself; its exit status, or `None`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, …) to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.pid().expect("cronhook is running");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// Starts the process again on the same database and port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Runs `cronhook ARGS…` against this instance's database; returns (status, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write as _;
        let mut child = Command::new(cronhook_binary())
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .envs(secret_key_env(&self.database_url))
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cronhook CLI");
        if let Some(mut input) = child.stdin.take()
            && let Some(text) = stdin
        {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        let output = child.wait_with_output().expect("CLI finishes");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Creates an API key for `workspace` through the CLI and returns a client bound to it.
    pub fn api(&self, workspace: &str) -> Api {
        let (ok, stdout, stderr) = self.cli(&["keys", "create", "--workspace", workspace], None);
        assert!(ok, "keys create failed: {stderr}");
        let key = stdout.trim().to_owned();
        assert!(
            !key.is_empty() && !key.contains('\n'),
            "one key on stdout: {stdout:?}"
        );
        Api {
            base_url: self.base_url.clone(),
            key,
            http: self.http.clone(),
        }
    }
}

impl Drop for Cronhook {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The master key the harness gives PostgreSQL-backed processes (nodes sharing a database must
/// share it; cronhook refuses to start on PostgreSQL without one). SQLite instances generate
/// their own `secret.key` in the data directory.
pub const TEST_SECRET_KEY: &str = "dGVzdCBzZWNyZXQga2V5IG9mIDMyIGJ5dGVzIGxvbmc=";

fn secret_key_env(database_url: &str) -> Vec<(&'static str, &'static str)> {
    if database_url.starts_with("postgres") {
        vec![("CRONHOOK_SECRET_KEY", TEST_SECRET_KEY)]
    } else {
        Vec::new()
    }
}

/// A JSON client of the REST API with one API key.
#[derive(Clone)]
pub struct Api {
    pub base_url: String,
    pub key: String,
    pub http: reqwest::Client,
}

/// A response: status, content type and body (JSON when it parses, else a string).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Api {
    /// Sends `method path` with an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .http
            .request(
                method.parse().expect("HTTP method"),
                format!("{}{path}", self.base_url),
            )
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::reply(request.send().await.expect("API reachable")).await
    }

    /// Sends a raw body with a content type.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let request = self
            .http
            .request(
                method.parse().expect("HTTP method"),
                format!("{}{path}", self.base_url),
            )
            .bearer_auth(&self.key)
            .header("content-type", content_type)
            .body(body);
        Self::reply(request.send().await.expect("API reachable")).await
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// Creates a job; panics unless the answer is 201.
    pub async fn create_job(&self, job: Value) -> Value {
        let reply = self.call("POST", "/api/v1/jobs", Some(job)).await;
        assert_eq!(reply.status, 201, "create job: {:?}", reply.body);
        reply.body
    }

    /// A job's executions (newest first, first page of up to 500).
    pub async fn executions(&self, job_id: &str) -> Vec<Value> {
        let reply = self
            .call(
                "GET",
                &format!("/api/v1/jobs/{job_id}/executions?limit=500"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "list executions: {:?}", reply.body);
        reply.body["data"].as_array().cloned().unwrap_or_default()
    }

    /// Polls one execution until its status is final, or panics after `limit`.
    pub async fn wait_final(&self, execution_id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let reply = self
                .call("GET", &format!("/api/v1/executions/{execution_id}"), None)
                .await;
            assert_eq!(reply.status, 200, "get execution: {:?}", reply.body);
            let status = reply.body["status"].as_str().unwrap_or_default().to_owned();
            if matches!(
                status.as_str(),
                "succeeded" | "failed" | "skipped" | "cancelled"
            ) {
                return reply.body;
            }
            assert!(
                Instant::now() < deadline,
                "execution {execution_id} still {status} after {limit:?}: {:?}",
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One request a [`Target`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: DateTime<Utc>,
}

impl Received {
    /// A header's value (names are lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// How a target answers one path: statuses in turn (the last repeats) after a delay.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub statuses: VecDeque<u16>,
    pub delay: Duration,
    /// Delays in turn for the first requests, before `delay` applies.
    pub delays: VecDeque<Duration>,
    pub body: String,
}

#[derive(Default)]
struct TargetState {
    received: Vec<Received>,
    behaviours: HashMap<String, Behaviour>,
}

/// A real HTTP server on loopback that records every request and answers as told.
#[derive(Clone)]
pub struct Target {
    pub address: SocketAddr,
    state: Arc<Mutex<TargetState>>,
}

impl Target {
    /// Starts a target on `127.0.0.1:0`; by default every path answers 200 `{"ok":true}`.
    pub async fn start() -> Target {
        let state = Arc::new(Mutex::new(TargetState::default()));
        let app = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind target");
        let address = listener.local_addr().expect("target address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Target { address, state }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Makes `path` answer with `statuses` in turn (the last one repeats).
    pub fn respond(&self, path: &str, statuses: &[u16], delay: Duration) {
        let mut state = self.state.lock().expect("target state");
        state.behaviours.insert(
            path.to_owned(),
            Behaviour {
                statuses: statuses.iter().copied().collect(),
                delay,
                delays: VecDeque::new(),
                body: "{\"ok\":true}".to_owned(),
            },
        );
    }

    /// Makes `path` answer 200 after each of `delays` in turn, then at once.
    pub fn respond_after(&self, path: &str, delays: &[Duration]) {
        let mut state = self.state.lock().expect("target state");
        state.behaviours.insert(
            path.to_owned(),
            Behaviour {
                statuses: VecDeque::from([200]),
                delay: Duration::ZERO,
                delays: delays.iter().copied().collect(),
                body: "{\"ok\":true}".to_owned(),
            },
        );
    }

    /// Makes `path` answer with `statuses` in turn (the last one repeats) and `body`.
    pub fn respond_with_body(&self, path: &str, statuses: &[u16], body: &str) {
        let mut state = self.state.lock().expect("target state");
        state.behaviours.insert(
            path.to_owned(),
            Behaviour {
                statuses: statuses.iter().copied().collect(),
                delay: Duration::ZERO,
                delays: VecDeque::new(),
                body: body.to_owned(),
            },
        );
    }

    /// Every request received on `path` so far.
    pub fn received(&self, path: &str) -> Vec<Received> {
        let state = self.state.lock().expect("target state");
        state
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Every request received at all.
    pub fn all_received(&self) -> Vec<Received> {
        self.state.lock().expect("target state").received.clone()
    }

    /// Waits until `path` has received at least `count` requests, or `limit` passes.
    pub async fn wait_for(&self, path: &str, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let received = self.received(path);
            if received.len() >= count || Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn record(
    State(state): State<Arc<Mutex<TargetState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let at = Utc::now();
    let path = uri.path().to_owned();
    let (status, delay, reply) = {
        let mut state = state.lock().expect("target state");
        state.received.push(Received {
            method: method.to_string(),
            path: path.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
            at,
        });
        match state.behaviours.get_mut(&path) {
            Some(behaviour) => {
                let status = if behaviour.statuses.len() > 1 {
                    behaviour.statuses.pop_front().unwrap_or(200)
                } else {
                    behaviour.statuses.front().copied().unwrap_or(200)
                };
                let delay = behaviour.delays.pop_front().unwrap_or(behaviour.delay);
                (status, delay, behaviour.body.clone())
            }
            None => (200, Duration::ZERO, "{\"ok\":true}".to_owned()),
        }
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply,
    )
}

/// Verifies a Standard Webhooks signature header against `secret` (`whsec_…`).
pub fn signature_is_valid(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
) -> bool {
    use base64::Engine as _;
    use hmac::Mac as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| engine.decode(encoded).ok())
    else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|candidate| candidate == expected)
}

/// Installs rustls's ring provider for reqwest (once per process).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Parses an RFC 3339 instant from a JSON value.
pub fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a timestamp: {value}")),
    )
    .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {value}"))
    .with_timezone(&Utc)
}
