//! The executor: sends cronhook's HTTP requests and records what came of them.
//!
//! An execution reaches this node either handed over in-process ([`ExecutorHandle::submit`], by
//! the scheduler or the API, already leased to this node) or claimed by the poller from the store
//! (queued by another node, retries after a restart, expired leases). Each execution runs as one
//! task: it waits for a slot (at most `max_in_flight` requests at once), makes an attempt through
//! the SSRF-guarded client, judges the answer, and hands the attempt record to the single writer
//! task, which batches records into `Store::record_attempts`. Failed attempts that deserve another
//! try sleep in the task (the lease kept alive by the renewal task) and go again with the same
//! `webhook-id`. The database row is the truth: whatever this node drops or loses in a crash is
//! taken over by another node once its lease runs out.

pub mod allocator;
mod http;
mod instants;
pub mod signing;
pub mod telemetry;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use cronhook_core::net::TargetPolicy;
use cronhook_core::retry::{is_retryable, retry_delay};
use cronhook_core::{
    Attempt, AttemptError, ErrorKind, ExecutionStatus, StatusRule, SuccessRule, Timing,
};
use cronhook_store::{AttemptRecord, ClaimedExecution, Lease, NextStep, Store, Workspace};
// Maps keyed by ids cronhook generates (jobs, workspaces) and read per execution: the fast
// hasher is safe for them, and std's SipHash showed in the profile.
use foldhash::HashMap;
use regex::Regex;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use signing::{SigningError, SigningKey};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub use http::{
    BlockedTarget, MAX_REDIRECTS, TooManyRedirects, describe_request_error, guarded_client,
    use_dns_server,
};
pub use telemetry::describe_metrics;

/// The `User-Agent` of every request cronhook sends.
pub const USER_AGENT: &str = concat!("cronhook/", env!("CARGO_PKG_VERSION"));

/// How long a fetched workspace (its signing secrets) is reused.
const WORKSPACE_CACHE_TTL: Duration = Duration::from_secs(5);
/// The most attempt records gathered before they are written: a whole burst's, so that its
/// records are written after it instead of in the middle of it (in transactions of at most
/// [`WRITE_TRANSACTION`]).
const WRITE_BATCH: usize = 20_000;
/// The writer lets records gather until none has come for this long and no request is waiting
/// or on the wire: during a burst of requests the records wait until the burst is sent, instead
/// of competing with it for the CPU.
const WRITE_QUIET: Duration = Duration::from_millis(5);
/// No record for this long, requests on the wire or not: no burst is draining (its records
/// come every few microseconds), only slow requests are out, which need not be waited for.
const WRITE_SETTLE: Duration = Duration::from_millis(25);
/// The most attempt records written in one transaction; a gathered batch is written in several.
pub const WRITE_TRANSACTION: usize = 2_000;
/// The longest records wait to be gathered.
const WRITE_GATHER_LIMIT: Duration = Duration::from_secs(1);
/// The most executions claimed in one store call.
const CLAIM_BATCH: usize = 500;
/// How long the previous signing secret still signs after a rotation.
const ROTATION_OVERLAP_HOURS: i64 = 24;
/// The largest compiled `success.body_regex`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The longest wait between retries of a failing store call.
const MAX_STORE_BACKOFF: Duration = Duration::from_secs(10);

/// How an executor runs.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    pub node_id: String,
    /// Requests in flight at once on this node.
    pub max_in_flight: usize,
    /// How long a claim lasts without renewal; renewed every lease/3 while work is held.
    pub lease: Duration,
    pub targets: TargetPolicy,
    /// How often to look for ready executions that were not handed over in-process (queued by
    /// another node, retries after a restart, expired leases).
    pub poll_interval: Duration,
    /// At shutdown, how long attempts in flight may finish before they are cut and their
    /// executions given back for another node (or the next start) to take over.
    pub shutdown_grace: Duration,
    /// Requests in flight at once per workspace on this node, so one tenant's slow targets
    /// cannot take every slot (`--max-in-flight-per-workspace`).
    pub max_in_flight_per_workspace: usize,
    /// Requests in flight at once to one target host (host and port) per workspace on this node
    /// (`--max-in-flight-per-host`): a slow host cannot take every slot of its workspace, and a
    /// burst opens no more connections to one host than this.
    pub max_in_flight_per_host: usize,
    /// The clock leases and retry instants are judged by: the database's, shared by every node.
    pub clock: Arc<cronhook_store::DatabaseClock>,
    /// Where the loop that writes attempt records runs; `None`: the runtime `run` is called on.
    /// Each of its database round trips resumes only when its runtime polls it again, behind
    /// every runnable task, with the write transaction (SQLite's one write lock) open
    /// meanwhile; on a runtime busy sending a burst that is long. A runtime of its own is not
    /// busy.
    pub record_runtime: Option<tokio::runtime::Handle>,
}

impl ExecutorConfig {
    /// The defaults (1024 in flight, 256 per workspace, 64 per host, 30 s lease, 1 s poll,
    /// private targets refused) for `node_id`.
    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            max_in_flight: 1024,
            lease: Duration::from_secs(30),
            targets: TargetPolicy::default(),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            max_in_flight_per_workspace: 256,
            max_in_flight_per_host: 64,
            clock: Arc::new(cronhook_store::DatabaseClock::new()),
            record_runtime: None,
        }
    }
}

/// Why an executor could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("invalid executor configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot build the HTTP clients")]
    Client(#[source] http::ClientError),
    #[error("cannot start the thread that releases prepared executions")]
    Thread(#[source] std::io::Error),
}

/// Counts shared by the executor and its handles.
#[derive(Debug, Default)]
struct Counters {
    /// Executions this node holds: handed over or claimed, not yet finished or dropped.
    held: AtomicUsize,
    /// Of those, the ones sleeping until their next attempt (they need no slot).
    sleeping: AtomicUsize,
    /// Of those, the ones waiting for a slot or waiting for their request's answer: while any
    /// is, a burst is still being sent, and the writer holds its records back.
    sending: AtomicUsize,
}

/// Decrements a counter when dropped.
struct CountGuard<'a>(&'a AtomicUsize);

impl<'a> CountGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One attempt record on its way to the writer, with where to send the store's answer.
struct WriteRequest {
    record: AttemptRecord,
    reply: oneshot::Sender<bool>,
}

/// The executions this node is working on: for each, its job id and the token that cancels it
/// (the `replace` overlap policy). A slot per execution, which the execution's task frees by
/// index when it ends.
type Running = Arc<Mutex<slab::Slab<(String, CancellationToken)>>>;

/// Jobs edited, paused or deleted in this process, with when: an execution prepared ahead of
/// its instant before that moment asks the store whether it still stands before sending.
type Edited = Arc<Mutex<HashMap<String, Instant>>>;

/// How long an edit is remembered; longer than any execution is prepared ahead.
const EDIT_MEMORY: Duration = Duration::from_secs(30);

/// What every execution task shares.
struct Shared {
    running: Running,
    edited: Edited,
    store: Arc<dyn Store>,
    config: ExecutorConfig,
    http: http::HttpClients,
    /// Metric handles, registered with the recorder installed when the executor is made.
    meters: telemetry::Meters,
    slots: Arc<Semaphore>,
    /// Each workspace's own slots, taken before a global one.
    workspace_slots: SlotTable,
    /// The slots of each target host of each workspace, taken before the workspace's.
    host_slots: SlotTable,
    counters: Arc<Counters>,
    workspaces: Mutex<HashMap<String, (Instant, Arc<SigningWorkspace>)>>,
    /// Per workspace, held while one task reads it from the store.
    workspace_fetches: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    writes: mpsc::UnboundedSender<WriteRequest>,
    /// Where executions prepared ahead wait for their instant.
    gates: instants::InstantGates,
}

/// Sends the requests of the executions this node holds. Made by [`Executor::new`], driven by
/// [`Executor::run`].
pub struct Executor {
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<ClaimedExecution>,
    inbox_tx: mpsc::UnboundedSender<ClaimedExecution>,
    wake: Arc<Notify>,
    writes: mpsc::UnboundedReceiver<WriteRequest>,
}

struct HandleInner {
    running: Running,
    edited: Edited,
    node_id: String,
    lease: Duration,
    inbox: mpsc::UnboundedSender<ClaimedExecution>,
    wake: Arc<Notify>,
    counters: Arc<Counters>,
}

/// Hands work to a running [`Executor`]; cheap to clone.
#[derive(Clone)]
pub struct ExecutorHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for ExecutorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorHandle")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

impl ExecutorHandle {
    /// The node id leases are taken under.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// How long a lease lasts without renewal.
    pub fn lease_duration(&self) -> Duration {
        self.inner.lease
    }

    /// Hands over an execution this node already holds the lease of (the scheduler or the API
    /// created it with a `Lease` for this node). Never blocks.
    pub fn submit(&self, execution: ClaimedExecution) {
        self.inner.counters.held.fetch_add(1, Ordering::SeqCst);
        if let Err(refused) = self.inner.inbox.send(execution) {
            self.inner.counters.held.fetch_sub(1, Ordering::SeqCst);
            debug!(
                execution_id = %refused.0.id,
                "executor stopped; the execution stays leased and is taken over later"
            );
        }
    }

    /// Stops working on the job's executions that this node has in flight: the `replace`
    /// overlap policy, after the store has recorded them cancelled. Their attempt in flight is
    /// dropped without a record (the store wrote the cut attempt).
    pub fn cancel_job(&self, job_id: &str) {
        cancel_running_of_job(&self.inner.running, job_id);
    }

    /// Notes that a job was edited, paused or deleted: its executions prepared ahead of their
    /// instant check with the store, just before sending, that the edit did not discard them.
    pub fn job_edited(&self, job_id: &str) {
        let mut edited = self.inner.edited.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if edited.len() > 1_000 {
            edited.retain(|_, at| now.duration_since(*at) < EDIT_MEMORY);
        }
        edited.insert(job_id.to_owned(), now);
    }

    /// Asks the poller to look for claimable work now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

impl Executor {
    /// Makes an executor and the handle that feeds it.
    pub fn new(
        store: Arc<dyn Store>,
        config: ExecutorConfig,
    ) -> Result<(Executor, ExecutorHandle), ExecutorError> {
        // The binary installs it first; this makes the crate safe to use alone.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if config.node_id.is_empty() {
            return Err(ExecutorError::InvalidConfig(
                "node_id must not be empty".into(),
            ));
        }
        if config.max_in_flight_per_workspace == 0 {
            return Err(ExecutorError::InvalidConfig(
                "max_in_flight_per_workspace must be at least 1".into(),
            ));
        }
        if config.max_in_flight_per_host == 0 {
            return Err(ExecutorError::InvalidConfig(
                "max_in_flight_per_host must be at least 1".into(),
            ));
        }
        if config.max_in_flight == 0 {
            return Err(ExecutorError::InvalidConfig(
                "max_in_flight must be at least 1".into(),
            ));
        }
        if config.lease < Duration::from_millis(30) {
            return Err(ExecutorError::InvalidConfig(
                "lease must be at least 30 ms".into(),
            ));
        }
        if config.poll_interval.is_zero() {
            return Err(ExecutorError::InvalidConfig(
                "poll_interval must be positive".into(),
            ));
        }
        let http = http::HttpClients::new(&config.targets).map_err(ExecutorError::Client)?;
        let gates =
            instants::InstantGates::start(config.clock.clone()).map_err(ExecutorError::Thread)?;
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let (writes_tx, writes) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let counters = Arc::new(Counters::default());
        let permits = config.max_in_flight.min(Semaphore::MAX_PERMITS);
        let running: Running = Arc::default();
        let edited: Edited = Arc::default();
        let handle = ExecutorHandle {
            inner: Arc::new(HandleInner {
                running: running.clone(),
                edited: edited.clone(),
                node_id: config.node_id.clone(),
                lease: config.lease,
                inbox: inbox_tx.clone(),
                wake: wake.clone(),
                counters: counters.clone(),
            }),
        };
        let workspace_slots = SlotTable::new(config.max_in_flight_per_workspace);
        let host_slots = SlotTable::new(config.max_in_flight_per_host);
        let shared = Arc::new(Shared {
            running,
            edited,
            store,
            config,
            http,
            meters: telemetry::Meters::register(),
            slots: Arc::new(Semaphore::new(permits)),
            workspace_slots,
            host_slots,
            counters,
            workspaces: Mutex::new(HashMap::default()),
            workspace_fetches: Mutex::new(HashMap::default()),
            writes: writes_tx,
            gates,
        });
        Ok((
            Executor {
                shared,
                inbox,
                inbox_tx,
                wake,
                writes,
            },
            handle,
        ))
    }

    /// Runs until `shutdown` is cancelled: receives handed-over executions, polls for claimable
    /// ones, renews leases, writes attempt records in batches. On shutdown it stops taking work,
    /// lets attempts in flight finish for a few seconds, and returns; whatever is unfinished stays
    /// leased and is taken over when the lease runs out.
    pub async fn run(self, shutdown: CancellationToken) {
        let Executor {
            shared,
            mut inbox,
            inbox_tx,
            wake,
            writes,
        } = self;
        let hard_stop = CancellationToken::new();
        let write = write_loop(
            shared.store.clone(),
            writes,
            shared.counters.clone(),
            hard_stop.clone(),
        );
        let writer = match &shared.config.record_runtime {
            Some(runtime) => runtime.spawn(write),
            None => tokio::spawn(write),
        };
        let renewer = tokio::spawn(renew_loop(shared.clone(), hard_stop.clone()));
        let poller = tokio::spawn(poll_loop(shared.clone(), inbox_tx, wake, shutdown.clone()));
        info!(node_id = %shared.config.node_id, "executor started");

        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    // The executions waiting for their instant end now; they send nothing.
                    shared.gates.open_all();
                    break;
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => report_join(joined),
                Some(execution) = inbox.recv() => {
                    tasks.spawn(run_execution(shared.clone(), execution, shutdown.clone()));
                }
            }
        }

        inbox.close();
        if let Err(join_error) = poller.await {
            error!(error = %join_error, "executor poller failed");
        }
        let drained = tokio::time::timeout(shared.config.shutdown_grace, async {
            while let Some(joined) = tasks.join_next().await {
                report_join(joined);
            }
        })
        .await;
        if drained.is_err() {
            warn!(
                unfinished = tasks.len(),
                grace_seconds = shared.config.shutdown_grace.as_secs(),
                "attempts still in flight after the shutdown grace period; cutting them"
            );
        }
        tasks.shutdown().await;
        hard_stop.cancel();
        for task in [writer, renewer] {
            if let Err(join_error) = task.await {
                error!(error = %join_error, "executor task failed");
            }
        }
        // Whatever this node still holds (cut attempts, retries waiting, hand-overs never
        // started) goes back now, so another node or the next start takes it without waiting
        // for the leases to run out.
        match shared
            .store
            .release_leases(&shared.config.node_id, shared.config.clock.now())
            .await
        {
            Ok(0) => {}
            Ok(released) => info!(released, "gave back unfinished executions"),
            Err(store_error) => warn!(
                error = %store_error,
                "cannot give back unfinished executions; they are taken over when their leases run out"
            ),
        }
        info!(node_id = %shared.config.node_id, "executor stopped");
    }
}

fn report_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(join_error) = joined
        && join_error.is_panic()
    {
        error!(error = %join_error, "execution task panicked");
    }
}

/// Claims ready executions whenever asked, and every `poll_interval`.
async fn poll_loop(
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedSender<ClaimedExecution>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let more = match poll_once(&shared, &inbox).await {
            Ok(more) => more,
            Err(store_error) => {
                warn!(error = %store_error, source = ?std::error::Error::source(&store_error), "cannot claim executions");
                false
            }
        };
        if more {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(shared.config.poll_interval) => {}
        }
    }
}

/// Claims as many executions as there are free slots; true when a full batch came back.
async fn poll_once(
    shared: &Shared,
    inbox: &mpsc::UnboundedSender<ClaimedExecution>,
) -> Result<bool, cronhook_store::StoreError> {
    let held = shared.counters.held.load(Ordering::SeqCst);
    let sleeping = shared.counters.sleeping.load(Ordering::SeqCst);
    let busy = held.saturating_sub(sleeping);
    let free = shared
        .config
        .max_in_flight
        .saturating_sub(busy)
        .min(CLAIM_BATCH);
    if free == 0 {
        return Ok(false);
    }
    let now = shared.config.clock.now();
    let lease = Lease {
        node_id: shared.config.node_id.clone(),
        until: now + chrono_duration(shared.config.lease),
    };
    let limit = u32::try_from(free).unwrap_or(u32::MAX);
    let claimed = shared.store.claim_executions(&lease, now, limit).await?;
    let full = claimed.len() >= free;
    if !claimed.is_empty() {
        debug!(count = claimed.len(), "claimed executions");
    }
    for execution in claimed {
        shared.counters.held.fetch_add(1, Ordering::SeqCst);
        if inbox.send(execution).is_err() {
            shared.counters.held.fetch_sub(1, Ordering::SeqCst);
            return Ok(false);
        }
    }
    Ok(full)
}

/// Keeps this node's leases alive while it holds any execution.
async fn renew_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let every = (shared.config.lease / 3).max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if shared.counters.held.load(Ordering::SeqCst) == 0 {
            continue;
        }
        let until = shared.config.clock.now() + chrono_duration(shared.config.lease);
        match shared
            .store
            .renew_leases(&shared.config.node_id, until)
            .await
        {
            Ok(renewed) => debug!(renewed, "renewed leases"),
            Err(store_error) => {
                warn!(error = %store_error, source = ?std::error::Error::source(&store_error), "cannot renew leases")
            }
        }
    }
}

/// The single writer: batches whatever records have accumulated into one store call and answers
/// each sender. A failing store is retried with backoff until `stop`.
async fn write_loop(
    store: Arc<dyn Store>,
    mut requests: mpsc::UnboundedReceiver<WriteRequest>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let mut batch = Vec::new();
    loop {
        batch.clear();
        let received = tokio::select! {
            biased;
            received = requests.recv_many(&mut batch, WRITE_BATCH) => received,
            () = stop.cancelled() => 0,
        };
        if received == 0 {
            return;
        }
        let gather_until = tokio::time::Instant::now() + WRITE_GATHER_LIMIT;
        let mut last_arrival = tokio::time::Instant::now();
        while batch.len() < WRITE_BATCH && !stop.is_cancelled() {
            let settle_at = (last_arrival + WRITE_SETTLE).min(gather_until);
            let quiet_until = (tokio::time::Instant::now() + WRITE_QUIET).min(settle_at);
            // Slept through, then taken: waiting on the channel instead woke this thread for
            // each record of a burst, and the worker that sent it paid for the wake-up (a
            // write to the runtime's event fd, ~10 % of the workers' time at 8 000 a second).
            tokio::select! {
                biased;
                () = stop.cancelled() => {}
                () = tokio::time::sleep_until(quiet_until) => {}
            }
            let room = WRITE_BATCH - batch.len();
            let more = take_waiting(&mut requests, &mut batch, room);
            let now = tokio::time::Instant::now();
            if more > 0 {
                last_arrival = now;
            }
            if now >= gather_until || now >= last_arrival + WRITE_SETTLE {
                break;
            }
            // Quiet, and no request waiting or on the wire: the burst is over.
            if more == 0 && counters.sending.load(Ordering::SeqCst) == 0 {
                break;
            }
        }
        // Written in several transactions, one after the other: the scheduler's
        // materializations queue for the same write lock, and a whole burst's records in one
        // transaction kept them waiting for a fifth of a second at 20 000 a second.
        let (records, replies): (Vec<AttemptRecord>, Vec<oneshot::Sender<bool>>) = batch
            .drain(..)
            .map(|request| (request.record, request.reply))
            .unzip();
        let mut replies = replies.into_iter();
        for records in records.chunks(WRITE_TRANSACTION) {
            let Some(results) = record_until_written(&*store, records, &stop).await else {
                return;
            };
            for (index, reply) in replies.by_ref().take(records.len()).enumerate() {
                let _ = reply.send(results.get(index).copied().unwrap_or(false));
            }
        }
    }
}

/// Moves up to `room` requests already in the channel to `batch` without waiting for more;
/// how many it moved.
fn take_waiting(
    requests: &mut mpsc::UnboundedReceiver<WriteRequest>,
    batch: &mut Vec<WriteRequest>,
    room: usize,
) -> usize {
    let before = batch.len();
    while batch.len() - before < room {
        match requests.try_recv() {
            Ok(request) => batch.push(request),
            // Empty, or every sender gone: the outer wait sees the end.
            Err(_) => break,
        }
    }
    batch.len() - before
}

/// Records `records`, retrying with backoff while the store fails; None when stopped first.
async fn record_until_written(
    store: &dyn Store,
    records: &[AttemptRecord],
    stop: &CancellationToken,
) -> Option<Vec<bool>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.record_attempts(records).await {
            Ok(results) => return Some(results),
            Err(store_error) => {
                warn!(
                    error = %store_error,
                    source = ?std::error::Error::source(&store_error),
                    records = records.len(),
                    "cannot record attempts; trying again"
                );
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_STORE_BACKOFF);
            }
        }
    }
}

/// Runs one execution to its end on this node: every attempt it has left, or until the store
/// refuses a record (another node took it over) or shutdown.
async fn run_execution(shared: Arc<Shared>, execution: ClaimedExecution, stop: CancellationToken) {
    // `held` was counted when the execution was handed over; this releases it at the end.
    let _held = HeldRelease(&shared.counters);
    let cancelled = CancellationToken::new();
    let _registered = Registered::new(&shared.running, &execution.job_id, cancelled.clone());
    let lease = chrono_duration(shared.config.lease);
    let max_attempts = execution.spec.retry.max_attempts.max(1);
    let mut number = execution.attempts_done + 1;
    // Looked up before the instant, once: every attempt goes to the same URL.
    let host_slots = host_key(&execution.workspace_id, &execution.spec.request.url)
        .map(|key| shared.host_slots.get(&key));

    // The first attempt's request, built while waiting for the instant so that a burst of
    // occurrences due together costs only the sending at the instant.
    let mut prepared = None;
    // The workspace that signed it, so the instant does not wait for a workspace read (the
    // cache entry may expire in between, and then a whole burst would read it at once).
    let mut prepared_with = None;
    if number == 1 && !execution.interrupted {
        // Prepared ahead by the scheduler: hold it until its instant.
        let handed_over = Instant::now();
        if execution.scheduled_for > shared.config.clock.now() {
            let Some(workspace) = workspace_for(&shared, &execution.workspace_id, &stop).await
            else {
                return;
            };
            prepared = outbound_for(&execution, number, &workspace, execution.scheduled_for)
                .ok()
                .map(|outbound| shared.http.check(outbound));
            prepared_with = Some(workspace);
            let _sleeping = CountGuard::enter(&shared.counters.sleeping);
            let instant = shared.gates.gate(execution.scheduled_for);
            // Not waiting on `stop` too: shutdown opens every gate (`open_all`).
            tokio::select! {
                () = cancelled.cancelled() => {
                    telemetry::execution_finished(execution.trigger, ExecutionStatus::Cancelled);
                    return;
                }
                () = instant.cancelled() => {}
            }
            if stop.is_cancelled() {
                return;
            }
            if edited_since(&shared, &execution.job_id, handed_over)
                && !still_stands(&shared, &execution).await
            {
                debug!(
                    execution_id = %execution.id,
                    job_id = %execution.job_id,
                    "prepared occurrence discarded by an edit; not sending it"
                );
                return;
            }
        }
    }

    if execution.interrupted {
        let now = shared.config.clock.now();
        let attempt = Attempt {
            number,
            started_at: now,
            duration_ms: 0,
            status_code: None,
            error: Some(AttemptError {
                kind: ErrorKind::Interrupted,
                message: "the node running this attempt stopped before it finished".into(),
            }),
            response_headers: BTreeMap::new(),
            response_body: None,
            response_body_truncated: false,
            redirect_location: None,
            timing: Timing::default(),
        };
        let next = if number < max_attempts {
            NextStep::Retry {
                run_at: now,
                lease_until: now + lease,
            }
        } else {
            NextStep::Finish {
                status: ExecutionStatus::Failed,
            }
        };
        let finished = matches!(next, NextStep::Finish { .. });
        shared.meters.attempt_without_answer(ErrorKind::Interrupted);
        let recorded = record(&shared, &execution, attempt, next).await;
        if recorded && finished {
            telemetry::execution_finished(execution.trigger, ExecutionStatus::Failed);
        }
        if !recorded || finished {
            return;
        }
        number += 1;
    }

    let body_regex = execution.spec.success.body_regex.as_deref().map(|pattern| {
        regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|regex_error| regex_error.to_string())
    });

    loop {
        let workspace = match prepared_with.take() {
            Some(workspace) => workspace,
            None => match workspace_for(&shared, &execution.workspace_id, &stop).await {
                Some(workspace) => workspace,
                None => return,
            },
        };
        let sending = CountGuard::enter(&shared.counters.sending);
        let queued = shared.meters.queued();
        // The host's slot first, then the workspace's, then a global one: an execution waiting
        // on a busy host holds no slot its workspace's other hosts could use, and one waiting
        // on its workspace's cap holds none that another workspace could use.
        let host_permit = match &host_slots {
            Some(semaphore) => match slot(Arc::clone(semaphore), &stop).await {
                Some(permit) => Some(permit),
                None => return,
            },
            None => None,
        };
        let Some(workspace_permit) =
            slot(shared.workspace_slots.get(&execution.workspace_id), &stop).await
        else {
            return;
        };
        let Some(permit) = slot(shared.slots.clone(), &stop).await else {
            return;
        };
        drop(queued);
        let in_flight = shared.meters.in_flight();
        let outcome = tokio::select! {
            // The request first: it is what wakes the task, and polling the cancellation on
            // each of its wake-ups costs a lock. When both are ready the fence refuses the
            // record of the attempt the cancellation cut.
            biased;
            // Boxed: the request's future is most of the task's size, and a smaller task is
            // cheaper to spawn and to move.
            outcome = Box::pin(make_attempt(&shared, &execution, number, &workspace, body_regex.as_ref(), prepared.take())) => outcome,
            // The store recorded the cut attempt; nothing more to write.
            () = cancelled.cancelled() => {
                shared.meters.attempt_without_answer(ErrorKind::Cancelled);
                telemetry::execution_finished(execution.trigger, ExecutionStatus::Cancelled);
                return;
            }
        };
        drop(permit);
        drop(workspace_permit);
        drop(host_permit);
        drop(in_flight);
        drop(sending);

        let attempt = outcome.attempt;
        shared
            .meters
            .attempt_sent(&attempt, &execution.spec.success.status);
        if number == 1 {
            shared.meters.first_attempt_sent(
                execution.trigger,
                execution.scheduled_for,
                attempt.started_at,
            );
        }
        let now = shared.config.clock.now();
        let gone = attempt.status_code == Some(410);
        let error_kind = attempt.error.as_ref().map(|e| e.kind);
        let next = if attempt.error.is_none() && !gone {
            NextStep::Finish {
                status: ExecutionStatus::Succeeded,
            }
        } else if !gone && number < max_attempts && is_retryable(attempt.status_code, error_kind) {
            let delay = retry_delay(
                &execution.spec.retry,
                number,
                outcome.retry_after,
                rand::random::<f64>(),
            );
            let run_at = now + chrono_duration(delay);
            NextStep::Retry {
                run_at,
                lease_until: run_at + lease,
            }
        } else {
            NextStep::Finish {
                status: ExecutionStatus::Failed,
            }
        };
        let retry_at = match &next {
            NextStep::Retry { run_at, .. } => Some(*run_at),
            NextStep::Finish { .. } => None,
        };
        let final_status = match &next {
            NextStep::Finish { status } => Some(*status),
            NextStep::Retry { .. } => None,
        };
        if !record(&shared, &execution, attempt, next).await {
            return;
        }
        if let Some(status) = final_status {
            telemetry::execution_finished(execution.trigger, status);
        }
        if gone {
            // Recording the attempt paused the job and raised its alert, in one transaction.
            info!(
                execution_id = %execution.id,
                job_id = %execution.job_id,
                "the target answered 410 Gone; the job is paused"
            );
        }
        let Some(run_at) = retry_at else {
            return;
        };
        let wait = (run_at - shared.config.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let _sleeping = CountGuard::enter(&shared.counters.sleeping);
        tokio::select! {
            () = stop.cancelled() => return,
            () = cancelled.cancelled() => {
                telemetry::execution_finished(execution.trigger, ExecutionStatus::Cancelled);
                return;
            }
            () = tokio::time::sleep(wait) => {}
        }
        number += 1;
    }
}

/// A slot of `slots`, or None when stopped first (or the semaphore is closed).
///
/// A free slot is taken without waiting on `stop`: every execution of a burst shares that
/// token, and registering with it and leaving again took its locks three times per slot.
async fn slot(slots: Arc<Semaphore>, stop: &CancellationToken) -> Option<OwnedSemaphorePermit> {
    // tokio's semaphore hands released permits to its waiters first, so a free one here
    // overtakes nobody.
    match Arc::clone(&slots).try_acquire_owned() {
        // Stopped meanwhile: the slot goes back unused, as the wait below would have ended.
        Ok(permit) => (!stop.is_cancelled()).then_some(permit),
        Err(TryAcquireError::Closed) => None,
        Err(TryAcquireError::NoPermits) => tokio::select! {
            biased;
            () = stop.cancelled() => None,
            permit = slots.acquire_owned() => permit.ok(),
        },
    }
}

/// Whether the job was edited in this process after `since`.
fn edited_since(shared: &Shared, job_id: &str, since: Instant) -> bool {
    shared
        .edited
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(job_id)
        .is_some_and(|at| *at >= since)
}

/// Whether a prepared execution is still in the store, leased to this node and not started:
/// an edit or pause deletes prepared executions it makes obsolete. When the store cannot be
/// read, it is sent (a discarded one's record is refused by the fence).
async fn still_stands(shared: &Shared, execution: &ClaimedExecution) -> bool {
    match shared
        .store
        .execution(&execution.workspace_id, &execution.id)
        .await
    {
        Ok(Some(stored)) => stored.status == ExecutionStatus::Running,
        Ok(None) => false,
        Err(store_error) => {
            warn!(execution_id = %execution.id, error = %store_error, "cannot check a prepared execution after an edit; sending it");
            true
        }
    }
}

impl Shared {
    /// The workspace, when fetched less than [`WORKSPACE_CACHE_TTL`] ago.
    fn cached_workspace(&self, workspace_id: &str) -> Option<Arc<SigningWorkspace>> {
        let cache = self.workspaces.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(workspace_id)
            .filter(|(fetched, _)| fetched.elapsed() < WORKSPACE_CACHE_TTL)
            .map(|(_, workspace)| workspace.clone())
    }

    /// The lock that lets one task at a time read a workspace from the store.
    fn workspace_fetch(&self, workspace_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut fetches = self
            .workspace_fetches
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if fetches.len() > 10_000 {
            // Only locks nobody waits on or holds.
            fetches.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        fetches.entry(workspace_id.to_owned()).or_default().clone()
    }
}

/// Semaphores of slots by key (a workspace, a workspace's target host), each made on first use
/// with the same number of permits.
struct SlotTable {
    permits: usize,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl SlotTable {
    fn new(permits: usize) -> Self {
        Self {
            permits: permits.min(Semaphore::MAX_PERMITS),
            semaphores: Mutex::new(HashMap::default()),
        }
    }

    /// The semaphore of `key`'s slots.
    fn get(&self, key: &str) -> Arc<Semaphore> {
        let mut semaphores = self.semaphores.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up by `&str` first: every execution asks, and the key is owned only once.
        if let Some(semaphore) = semaphores.get(key) {
            return semaphore.clone();
        }
        if semaphores.len() > 10_000 {
            // Only semaphores nobody waits on or holds.
            semaphores.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
        }
        let semaphore = Arc::new(Semaphore::new(self.permits));
        semaphores.insert(key.to_owned(), semaphore.clone());
        semaphore
    }
}

/// The key of a workspace's target host in [`Shared::host_slots`]: the host and port of the
/// URL (the scheme's port when it names none; a redirect's host is not counted). None for a URL
/// that cannot be sent to, whose attempt fails before sending.
fn host_key(workspace_id: &str, url: &str) -> Option<String> {
    let (host, port) = http::host_and_port(url)?;
    Some(format!("{workspace_id} {host}:{port}"))
}

/// Cancels the executions of `job_id` in `running`.
fn cancel_running_of_job(running: &Running, job_id: &str) {
    let running = running.lock().unwrap_or_else(|p| p.into_inner());
    for (_, (running_job, token)) in running.iter() {
        if running_job == job_id {
            debug!(%job_id, "cancelling an execution: replaced by a newer occurrence");
            token.cancel();
        }
    }
}

/// An execution's slot in [`Running`], freed when its task ends.
struct Registered<'a> {
    running: &'a Running,
    slot: usize,
}

impl<'a> Registered<'a> {
    fn new(running: &'a Running, job_id: &str, token: CancellationToken) -> Self {
        let slot = running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((job_id.to_owned(), token));
        Self { running, slot }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_remove(self.slot);
    }
}

/// Releases an execution's `held` count when its task ends.
struct HeldRelease<'a>(&'a Counters);

impl Drop for HeldRelease<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends an attempt record through the writer; true when the store accepted it.
async fn record(
    shared: &Shared,
    execution: &ClaimedExecution,
    attempt: Attempt,
    next: NextStep,
) -> bool {
    let number = attempt.number;
    let (reply, answer) = oneshot::channel();
    let request = WriteRequest {
        record: AttemptRecord {
            execution_id: execution.id.clone(),
            node_id: shared.config.node_id.clone(),
            attempt,
            next,
        },
        reply,
    };
    if shared.writes.send(request).is_err() {
        return false;
    }
    match answer.await {
        Ok(true) => true,
        Ok(false) => {
            debug!(
                execution_id = %execution.id,
                attempt = number,
                "record refused: another node holds the execution now; dropping it"
            );
            false
        }
        Err(_) => false,
    }
}

/// The execution's workspace, from the cache when fetched in the last 5 s. Waits out a failing
/// store; `None` when the workspace is gone or shutdown came first.
async fn workspace_for(
    shared: &Shared,
    workspace_id: &str,
    stop: &CancellationToken,
) -> Option<Arc<SigningWorkspace>> {
    if let Some(workspace) = shared.cached_workspace(workspace_id) {
        return Some(workspace);
    }
    // One read per workspace at a time: a burst that finds the entry expired waits for one read
    // instead of making a thousand.
    let fetching = shared.workspace_fetch(workspace_id);
    let _fetching = tokio::select! {
        () = stop.cancelled() => return None,
        guard = fetching.lock() => guard,
    };
    if let Some(workspace) = shared.cached_workspace(workspace_id) {
        return Some(workspace);
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        match shared.store.workspace(workspace_id).await {
            Ok(Some(workspace)) => {
                let workspace = Arc::new(SigningWorkspace::new(&workspace));
                if let Ok(mut cache) = shared.workspaces.lock() {
                    if cache.len() > 10_000 {
                        cache.retain(|_, (fetched, _)| fetched.elapsed() < WORKSPACE_CACHE_TTL);
                    }
                    cache.insert(workspace_id.to_owned(), (Instant::now(), workspace.clone()));
                }
                return Some(workspace);
            }
            Ok(None) => {
                warn!(
                    workspace_id,
                    "the execution's workspace no longer exists; dropping it"
                );
                return None;
            }
            Err(store_error) => {
                warn!(workspace_id, error = %store_error, "cannot read the workspace; trying again");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_STORE_BACKOFF);
            }
        }
    }
}

/// One attempt's record and what the retry decision needs besides it.
struct AttemptOutcome {
    attempt: Attempt,
    retry_after: Option<Duration>,
}

// A debug span: at the default level the per-attempt span costs more than the request's
// signing; the one info event below names the execution itself.
#[tracing::instrument(level = "debug", skip_all, fields(execution_id = %execution.id, job_id = %execution.job_id, attempt = number))]
async fn make_attempt(
    shared: &Shared,
    execution: &ClaimedExecution,
    number: u32,
    workspace: &SigningWorkspace,
    body_regex: Option<&Result<Regex, String>>,
    prepared: Option<http::Outbound>,
) -> AttemptOutcome {
    let started_at = shared.config.clock.now();
    let outbound = match prepared {
        Some(outbound) => outbound,
        None => match outbound_for(execution, number, workspace, started_at) {
            Ok(outbound) => outbound,
            Err(message) => {
                return AttemptOutcome {
                    attempt: failed_before_sending(number, started_at, message),
                    retry_after: None,
                };
            }
        },
    };
    let captured = shared.http.send(outbound).await;

    let mut error = captured.error;
    if error.is_none()
        && let Some(status) = captured.status
        && let Some(message) = judge(
            &execution.spec.success,
            body_regex,
            status,
            captured.body.as_deref().unwrap_or(""),
            captured.total_ms,
        )
    {
        error = Some(AttemptError {
            kind: ErrorKind::AssertionFailed,
            message,
        });
    }
    match (&error, captured.status) {
        (None, Some(status)) => {
            debug!(status, duration_ms = captured.total_ms, "attempt succeeded")
        }
        (Some(failure), status) => info!(
            execution_id = %execution.id,
            job_id = %execution.job_id,
            attempt = number,
            status,
            error_kind = ?failure.kind,
            duration_ms = captured.total_ms,
            "attempt failed"
        ),
        (None, None) => {}
    }
    let attempt = Attempt {
        number,
        started_at,
        duration_ms: captured.total_ms,
        status_code: captured.status,
        error,
        response_headers: captured.headers,
        response_body: captured.body,
        response_body_truncated: captured.truncated,
        redirect_location: captured.location,
        timing: Timing {
            dns_ms: None,
            connect_ms: None,
            tls_ms: None,
            ttfb_ms: captured.ttfb_ms,
            total_ms: captured.total_ms,
        },
    };
    AttemptOutcome {
        attempt,
        retry_after: captured.retry_after,
    }
}

/// The request of an attempt sent at `at` (signed with its second), or why it cannot be sent.
fn outbound_for(
    execution: &ClaimedExecution,
    number: u32,
    workspace: &SigningWorkspace,
    at: chrono::DateTime<Utc>,
) -> Result<http::Outbound, String> {
    let request = &execution.spec.request;
    let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
        return Err(format!(
            "request.method `{}` is not an HTTP method",
            request.method
        ));
    };
    let body = request.body.clone().map(Bytes::from);
    let signature = signatures(
        workspace,
        &execution.id,
        at,
        body.as_deref().unwrap_or_default(),
    );
    let headers = request_headers(&request.headers, execution, number, at, signature);
    Ok(http::Outbound {
        method,
        url: http::Destination::Unchecked(request.url.clone()),
        headers,
        body,
        timeout: Duration::from_millis(request.timeout_ms),
        follow_redirects: request.follow_redirects,
    })
}

fn failed_before_sending(
    number: u32,
    started_at: chrono::DateTime<Utc>,
    message: String,
) -> Attempt {
    Attempt {
        number,
        started_at,
        duration_ms: 0,
        status_code: None,
        error: Some(AttemptError {
            kind: ErrorKind::AssertionFailed,
            message,
        }),
        response_headers: BTreeMap::new(),
        response_body: None,
        response_body_truncated: false,
        redirect_location: None,
        timing: Timing::default(),
    }
}

/// A workspace as its requests need it: its signing secrets, keyed once when it is read.
struct SigningWorkspace {
    id: String,
    current: Result<SigningKey, SigningError>,
    /// The secret the current one replaced, and when.
    previous: Option<(Result<SigningKey, SigningError>, chrono::DateTime<Utc>)>,
}

impl SigningWorkspace {
    fn new(workspace: &Workspace) -> Self {
        let previous = match (
            &workspace.previous_signing_secret,
            workspace.signing_secret_rotated_at,
        ) {
            (Some(secret), Some(rotated_at)) => Some((SigningKey::new(secret), rotated_at)),
            _ => None,
        };
        Self {
            id: workspace.id.clone(),
            current: SigningKey::new(&workspace.signing_secret),
            previous,
        }
    }
}

/// The `webhook-signature` value: by the current secret, and by the previous one for 24 hours
/// after a rotation, space-separated. `None` if no secret can sign (logged, never shown).
fn signatures(
    workspace: &SigningWorkspace,
    execution_id: &str,
    at: chrono::DateTime<Utc>,
    body: &[u8],
) -> Option<String> {
    let timestamp = at.timestamp();
    let mut all = Vec::with_capacity(2);
    match &workspace.current {
        Ok(key) => all.push(key.sign(execution_id, timestamp, body)),
        Err(signing_error) => {
            warn!(workspace_id = %workspace.id, error = %signing_error, "cannot sign with the workspace's secret")
        }
    }
    if let Some((previous, rotated_at)) = &workspace.previous
        && at - *rotated_at < chrono::Duration::hours(ROTATION_OVERLAP_HOURS)
    {
        match previous {
            Ok(key) => all.push(key.sign(execution_id, timestamp, body)),
            Err(signing_error) => {
                warn!(workspace_id = %workspace.id, error = %signing_error, "cannot sign with the workspace's previous secret")
            }
        }
    }
    (!all.is_empty()).then(|| all.join(" "))
}

/// Headers that would corrupt framing or that cronhook sets itself.
const DROPPED_JOB_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "user-agent",
];

/// The outbound headers: the job's own, then cronhook's and the Standard Webhooks ones.
fn request_headers(
    job_headers: &BTreeMap<String, String>,
    execution: &ClaimedExecution,
    number: u32,
    sent_at: chrono::DateTime<Utc>,
    signature: Option<String>,
) -> HeaderMap {
    // Room for the job's headers, ours, and the direct client's `Accept` and `Host`, so the
    // map never grows.
    let mut headers = HeaderMap::with_capacity(job_headers.len() + 8);
    for (name, value) in job_headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            warn!(header = %name, "skipping a job header that is not valid HTTP");
            continue;
        };
        if DROPPED_JOB_HEADERS.contains(&name.as_str()) {
            continue;
        }
        headers.append(name, value);
    }
    // Each replaces the job's own header of that name; `HeaderValue::try_from(String)` keeps
    // the string's buffer rather than copying it.
    let ours = [
        ("user-agent", Some(HeaderValue::from_static(USER_AGENT))),
        (
            "cronhook-scheduled-for",
            HeaderValue::try_from(
                execution
                    .scheduled_for
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            )
            .ok(),
        ),
        ("cronhook-attempt", Some(HeaderValue::from(number))),
        ("webhook-id", HeaderValue::from_str(&execution.id).ok()),
        (
            "webhook-timestamp",
            Some(HeaderValue::from(sent_at.timestamp())),
        ),
        (
            "webhook-signature",
            signature.and_then(|signature| HeaderValue::try_from(signature).ok()),
        ),
    ];
    for (name, value) in ours {
        let name = HeaderName::from_static(name);
        match value {
            Some(value) => {
                headers.insert(name, value);
            }
            None => {
                headers.remove(name);
            }
        }
    }
    headers
}

/// Why a response breaks the job's success rule, or `None` when it passes.
fn judge(
    rule: &SuccessRule,
    body_regex: Option<&Result<Regex, String>>,
    status: u16,
    body: &str,
    duration_ms: u64,
) -> Option<String> {
    if !rule.status.accepts(status) {
        let accepted = match &rule.status {
            StatusRule::Classes(text) => format!("\"{text}\""),
            StatusRule::Codes(codes) => format!("{codes:?}"),
        };
        return Some(format!(
            "status {status} is not accepted by success.status {accepted}"
        ));
    }
    match body_regex {
        Some(Ok(regex)) if !regex.is_match(body) => {
            return Some(format!(
                "the response body does not match success.body_regex `{}`",
                regex.as_str()
            ));
        }
        Some(Err(message)) => {
            return Some(format!("success.body_regex cannot be used: {message}"));
        }
        _ => {}
    }
    if let Some(max) = rule.max_duration_ms
        && duration_ms > max
    {
        return Some(format!(
            "the attempt took {duration_ms} ms, more than success.max_duration_ms {max}"
        ));
    }
    None
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_executions_are_cancelled_by_job_and_freed_when_they_end() {
        let running = Running::default();
        let tokens: Vec<CancellationToken> = (0..3).map(|_| CancellationToken::new()).collect();
        let first = Registered::new(&running, "job_a", tokens[0].clone());
        let second = Registered::new(&running, "job_a", tokens[1].clone());
        let other = Registered::new(&running, "job_b", tokens[2].clone());
        let held = || running.lock().unwrap_or_else(|p| p.into_inner()).len();
        assert_eq!(held(), 3);

        cancel_running_of_job(&running, "job_a");
        assert!(tokens[0].is_cancelled() && tokens[1].is_cancelled());
        assert!(!tokens[2].is_cancelled(), "another job's execution runs on");

        drop(first);
        assert_eq!(held(), 2, "an ended execution frees its slot");
        // A freed slot is taken again; the execution in it is the new one's.
        let reused = CancellationToken::new();
        let again = Registered::new(&running, "job_c", reused.clone());
        drop(second);
        cancel_running_of_job(&running, "job_c");
        assert!(reused.is_cancelled());
        drop(again);
        drop(other);
        assert_eq!(held(), 0);
    }
    use chrono::TimeZone as _;

    fn rule(status: StatusRule, max_duration_ms: Option<u64>) -> SuccessRule {
        SuccessRule {
            status,
            body_regex: None,
            max_duration_ms,
        }
    }

    #[test]
    fn judging_names_the_broken_rule() {
        let plain = SuccessRule::default();
        assert_eq!(judge(&plain, None, 200, "", 5), None);
        let status = judge(&plain, None, 500, "", 5).expect("fails");
        assert!(status.contains("500") && status.contains("2xx"), "{status}");

        let codes = rule(StatusRule::Codes(vec![200, 204]), Some(100));
        assert_eq!(judge(&codes, None, 204, "", 100), None);
        assert!(
            judge(&codes, None, 201, "", 1)
                .expect("fails")
                .contains("[200, 204]")
        );
        assert!(
            judge(&codes, None, 200, "", 101)
                .expect("fails")
                .contains("max_duration_ms")
        );

        let regex = Ok(Regex::new(r#""ok":\s*true"#).expect("regex"));
        assert_eq!(judge(&plain, Some(&regex), 200, r#"{"ok": true}"#, 1), None);
        assert!(
            judge(&plain, Some(&regex), 200, r#"{"ok": false}"#, 1)
                .expect("fails")
                .contains("body_regex")
        );
        let broken = Err("bad".to_owned());
        assert!(judge(&plain, Some(&broken), 200, "", 1).is_some());
    }

    fn workspace(previous: Option<(&str, chrono::DateTime<Utc>)>) -> SigningWorkspace {
        SigningWorkspace::new(&Workspace {
            id: "wsp_1".into(),
            slug: "acme".into(),
            signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            previous_signing_secret: previous.map(|(secret, _)| secret.to_owned()),
            signing_secret_rotated_at: previous.map(|(_, at)| at),
            created_at: Utc::now(),
        })
    }

    #[test]
    fn the_previous_secret_signs_for_a_day_after_rotation() {
        let at = Utc
            .with_ymd_and_hms(2021, 2, 21, 16, 22, 10)
            .single()
            .expect("time");
        let old = signing::new_secret();
        let current_only = signatures(&workspace(None), "exe_1", at, b"x").expect("signs");
        assert!(!current_only.contains(' '));

        let recent = workspace(Some((&old, at - chrono::Duration::hours(23))));
        let both = signatures(&recent, "exe_1", at, b"x").expect("signs");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], current_only);
        assert_eq!(
            parts[1],
            signing::sign(&old, "exe_1", at.timestamp(), b"x").expect("signs")
        );

        let stale = workspace(Some((&old, at - chrono::Duration::hours(25))));
        assert_eq!(
            signatures(&stale, "exe_1", at, b"x").expect("signs"),
            current_only
        );
    }
}
