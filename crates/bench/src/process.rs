//! Running the real `cronhook` binary: a fresh database, `serve`, an API key, and sampling the
//! process's RSS, CPU and writes from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::Value;
use sqlx::{Connection as _, Executor as _};

/// Where the databases live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Database {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server fresh bench databases are created on.
const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database (and the directory cronhook keeps its files in); dropped with it.
pub struct FreshDatabase {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub secret_key: Option<String>,
    postgres_name: Option<String>,
}

impl FreshDatabase {
    pub async fn create(kind: Database) -> anyhow::Result<FreshDatabase> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        match kind {
            Database::Sqlite => Ok(FreshDatabase {
                url: format!("sqlite://{}/cronhook.db", dir.path().display()),
                dir,
                secret_key: None,
                postgres_name: None,
            }),
            Database::Postgres => {
                let name = format!("cronhook_bench_{:016x}", rand::random::<u64>());
                let mut admin = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL)
                    .await
                    .with_context(|| format!("connecting to {POSTGRES_ADMIN_URL}"))?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .context("creating the bench database")?;
                let key: [u8; 32] = rand::random();
                Ok(FreshDatabase {
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    dir,
                    secret_key: Some(base64::engine::general_purpose::STANDARD.encode(key)),
                    postgres_name: Some(name),
                })
            }
        }
    }

    /// Drops the PostgreSQL database (nothing for SQLite: the directory goes with `self`).
    pub async fn drop_database(&self) {
        let Some(name) = &self.postgres_name else {
            return;
        };
        if let Ok(mut admin) = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }
}

/// The `cronhook` binary: `explicit`, else next to this executable.
pub fn cronhook_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let me = std::env::current_exe().context("locating cronhook-bench")?;
    let path = me
        .parent()
        .map(|dir| dir.join("cronhook"))
        .context("cronhook-bench has no directory")?;
    if !path.exists() {
        bail!(
            "no cronhook binary at {} (build it with `cargo build -p cronhook`, or pass --cronhook)",
            path.display()
        );
    }
    Ok(path)
}

/// A running `cronhook serve`.
pub struct Server {
    child: Option<Child>,
    pub base_url: String,
    pub started: Instant,
    pub ready_after: Duration,
    log_path: PathBuf,
}

impl Server {
    /// Spawns `cronhook serve` on `database` and waits for `/readyz`.
    pub async fn start(
        binary: &Path,
        database: &FreshDatabase,
        http: &reqwest::Client,
    ) -> anyhow::Result<Server> {
        let log_path = database.dir.path().join("cronhook.log");
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)?;
            let mut command = Command::new(binary);
            command
                .arg("serve")
                .arg("--allow-private-targets")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(["--api-rate-limit", "1000000", "--api-rate-burst", "1000000"])
                .env("DATABASE_URL", &database.url)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            if let Some(key) = &database.secret_key {
                command.env("CRONHOOK_SECRET_KEY", key);
            }
            let started = Instant::now();
            let child = command.spawn().context("spawning cronhook serve")?;
            let mut server = Server {
                child: Some(child),
                base_url: format!("http://127.0.0.1:{port}"),
                started,
                ready_after: Duration::ZERO,
                log_path: log_path.clone(),
            };
            match server.wait_ready(http, Duration::from_secs(60)).await {
                Ok(()) => return Ok(server),
                Err(error) => {
                    server.kill();
                    last_error = Some(error);
                }
            }
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("cronhook did not start"))
            .context(format!("cronhook log:\n{log}")))
    }

    async fn wait_ready(&mut self, http: &reqwest::Client, limit: Duration) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.base_url);
        while self.started.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("cronhook exited during start-up: {status}");
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                self.ready_after = self.started.elapsed();
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("cronhook was not ready within {limit:?}")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Asks the process to stop (SIGTERM) and waits up to `limit`, then kills it.
    pub async fn stop(&mut self, limit: Duration) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(_)) = child.try_wait()
                {
                    self.child = None;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.kill();
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cronhook keys create --workspace bench` and returns the key it prints.
pub fn create_api_key(binary: &Path, database: &FreshDatabase) -> anyhow::Result<String> {
    let mut command = Command::new(binary);
    command
        .args(["keys", "create", "--workspace", "bench"])
        .env("DATABASE_URL", &database.url)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if let Some(key) = &database.secret_key {
        command.env("CRONHOOK_SECRET_KEY", key);
    }
    let output = command.output().context("running cronhook keys create")?;
    if !output.status.success() {
        bail!(
            "cronhook keys create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let key = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if key.is_empty() {
        bail!("cronhook keys create printed no key");
    }
    Ok(key)
}

/// A JSON client of cronhook's API with one key.
#[derive(Clone)]
pub struct Api {
    pub base_url: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    /// `POST /api/v1/jobs`; the new job's id.
    pub async fn create_job(&self, job: &Value) -> anyhow::Result<String> {
        let response = self
            .http
            .post(self.url("/api/v1/jobs"))
            .bearer_auth(&self.key)
            .json(job)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.as_u16() != 201 {
            bail!("creating a job: {status} {body}");
        }
        body.get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .context("created job has no id")
    }

    /// `GET path` as JSON, failing unless 2xx.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.get_success(path).await?.json().await?)
    }

    /// `GET /metrics`: the process's metrics in the Prometheus text format.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.get_success("/metrics").await?.text().await?)
    }

    /// `GET path`, failing unless 2xx.
    async fn get_success(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.send(self.http.get(self.url(path)), "GET", path).await
    }

    /// `PATCH path` with a JSON merge patch, failing unless 2xx.
    pub async fn patch(&self, path: &str, patch: &Value) -> anyhow::Result<()> {
        let request = self
            .http
            .patch(self.url(path))
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string());
        self.send(request, "PATCH", path).await.map(drop)
    }

    /// `DELETE path`, failing unless 2xx.
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send(self.http.delete(self.url(path)), "DELETE", path)
            .await
            .map(drop)
    }

    /// `POST path` with no body, failing unless 2xx.
    pub async fn post_empty(&self, path: &str) -> anyhow::Result<()> {
        self.send(self.http.post(self.url(path)), "POST", path)
            .await
            .map(drop)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends `request` with the key, failing unless 2xx; `method` and `path` name it in the error.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        path: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request.bearer_auth(&self.key).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("{method} {path}: {status}");
        }
        Ok(response)
    }
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// One `/proc` reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Bytes the process has sent toward storage (`write_bytes` of `/proc/<pid>/io`: files'
    /// pages it dirtied, its sockets not included); None where the kernel keeps no such count.
    pub written_bytes: Option<u64>,
}

/// Reads `/proc/<pid>/status` (VmRSS, VmHWM), `/proc/<pid>/stat` (utime + stime) and
/// `/proc/<pid>/io` (write_bytes).
pub fn read_proc(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcSample {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        cpu_ticks: utime + stime,
        written_bytes: read_written_bytes(pid),
    })
}

/// `write_bytes` of `/proc/<pid>/io`.
pub fn read_written_bytes(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// CPU time of every live thread of this process, in nanoseconds: the first field of each
/// `/proc/self/task/<tid>/schedstat`. Finer than `/proc/<pid>/stat`'s clock ticks (10 ms), for
/// stretches of a few milliseconds; a thread that ended meanwhile is not counted.
pub fn own_threads_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that ended since the listing has no file any more.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that fails).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// Samples a process every 100 ms until stopped: the peak RSS seen, and the first/last samples.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<SamplerState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SamplerState {
    pub first: Option<ProcSample>,
    pub last: Option<ProcSample>,
    pub peak_rss_kib: u64,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(SamplerState::default()));
        let task = tokio::spawn({
            let stop = stop.clone();
            let state = state.clone();
            async move {
                let mut interval = tokio::time::interval(Duration::from_millis(100));
                loop {
                    interval.tick().await;
                    if let Some(sample) = read_proc(pid)
                        && let Ok(mut state) = state.lock()
                    {
                        state.first.get_or_insert(sample);
                        state.last = Some(sample);
                        state.peak_rss_kib = state.peak_rss_kib.max(sample.rss_kib);
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
        });
        Sampler { stop, state, task }
    }

    /// Stops sampling (after one last sample) and returns what was seen.
    pub async fn finish(self) -> SamplerState {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.state.lock().map(|state| *state).unwrap_or_default()
    }
}
