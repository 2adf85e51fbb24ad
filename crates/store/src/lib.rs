//! The `Store` trait: everything cronhook keeps, in domain terms, behind one interface that each
//! database implements (`cronhook-store-sqlite`, later `cronhook-store-postgres`).
//!
//! Architecture invariant: no SQL here and no database named. Every method that reads or changes
//! a user's object takes the workspace id, so a query can never cross workspaces. Every write that
//! reports an executor's result is fenced by the lease holder and the attempt number, so a node
//! whose lease was taken over cannot overwrite the new holder's work.

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "conformance")]
pub mod conformance_alerts;
#[cfg(feature = "conformance")]
pub mod conformance_security;

pub mod api_keys;
pub mod sealing;
pub mod workspace_keys;
pub use api_keys::*;
pub use sealing::Sealer;
pub use workspace_keys::*;
pub mod alerts;
#[cfg(feature = "conformance")]
pub mod conformance_sessions;
pub mod history;
pub mod sessions;
pub use alerts::*;
pub use history::*;
pub use sessions::*;
pub mod clock;
pub mod codec;
pub mod maintenance;
pub mod nodes;
pub mod spec_cache;

pub use clock::DatabaseClock;
pub use maintenance::{
    KEEP_LAST_JOBS_PAGE, KeepLastCursor, KeepLastPruning, MaintenanceStore, PoolUsage,
    RetentionPolicy, prune_beyond_keep_last,
};
pub use nodes::{NodeInfo, NodeStore};
pub use spec_cache::SpecCache;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_core::{Attempt, Concurrency, Execution, ExecutionStatus, Job, JobSpec, Trigger};

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key would be violated: `what` names the clashing value for the user.
    #[error("{what} already exists")]
    Conflict { what: String },
    /// The object does not exist (in this workspace).
    #[error("not found")]
    NotFound,
    /// The database cannot be reached right now; the caller may try again later.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Any other database failure.
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored value could not be read back (a bug or a hand-edited row).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

/// The result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A tenant: every job, key and user belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub slug: String,
    /// The Standard Webhooks signing secret (`whsec_…`).
    pub signing_secret: String,
    /// The secret before the last rotation, still used to sign for 24 hours after it.
    pub previous_signing_secret: Option<String>,
    pub signing_secret_rotated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An API key as stored: only the SHA-256 of the key, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    /// Lowercase hex SHA-256 of the whole key.
    pub key_hash: String,
    /// What the key may do.
    pub scope: ApiKeyScope,
    pub created_at: DateTime<Utc>,
    /// When the key last authenticated a request, to the minute (`ApiKeyStore::touch_api_key`).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A dashboard user; the password is kept as an argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub workspace_id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A page request: at most `limit` items after the item whose id is `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<String>,
}

/// One page of a list; `next_after` is the id to pass as `after` for the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

/// A node's claim on an execution until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub node_id: String,
    pub until: DateTime<Utc>,
}

/// An execution to create. With a `lease` it is created already claimed by that node, which
/// saves the executor a claim when the same process will run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExecution {
    pub id: String,
    pub workspace_id: String,
    pub job_id: String,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: Trigger,
    /// When the first attempt may start.
    pub run_at: DateTime<Utc>,
    pub lease: Option<Lease>,
}

/// One due occurrence of a job, to turn into an execution while advancing the job's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// The execution to create for it (`fire_all` catch-up passes several for one job; they are
    /// all materialized or none).
    pub executions: Vec<NewExecution>,
    pub job_id: String,
    /// The job's workspace: a job of another workspace behaves as absent (nothing is written).
    pub workspace_id: String,
    /// The `next_run_at` the scheduler read; if the job's value differs now (edited, paused,
    /// deleted, or another scheduler got there first), nothing is written.
    pub expected_next_run_at: DateTime<Utc>,
    /// The value `next_run_at` takes; `None` when the schedule has nothing left.
    pub new_next_run_at: Option<DateTime<Utc>>,
    /// The job's overlap policy: with `forbid`, an occurrence that comes while an earlier
    /// execution of the job is unfinished is recorded as `skipped`; with `replace`, the job's
    /// unfinished executions are cancelled in the same transaction — each becomes `cancelled`
    /// (finished at the new occurrence's `run_at`, lease released), and one that was `running`
    /// gets its cut attempt recorded (the next attempt number, error kind `cancelled`, started at
    /// that instant, duration 0), which also fences out the executor still holding it.
    pub concurrency: Concurrency,
}

/// An edit or pause discards the job's executions prepared ahead of their instant (created
/// leased, not yet started) when the edit changes or stops the schedule; those due within this
/// margin of the edit are left to run, as they may already be on their way.
pub const PREPARED_DISCARD_MARGIN: chrono::TimeDelta = chrono::TimeDelta::milliseconds(50);

impl Occurrence {
    /// Overlap allowed and exactly one execution: nothing to check or cancel besides the
    /// compare-and-set, so stores may materialize a batch of these in a few statements.
    pub fn is_simple(&self) -> bool {
        self.concurrency == Concurrency::Allow && self.executions.len() == 1
    }
}

/// What became of an occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialized {
    /// The executions were created (queued, or leased when a lease was given).
    Created,
    /// `forbid` found an unfinished execution: created as `skipped`, nothing to run.
    Skipped,
    /// The job changed under the scheduler, or the occurrence exists already: nothing written.
    Superseded,
}

/// An execution handed to an executor, with what it needs to make the next attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedExecution {
    pub id: String,
    pub workspace_id: String,
    pub job_id: String,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: Trigger,
    /// Attempts already recorded; the next attempt is number `attempts_done + 1`.
    pub attempts_done: u32,
    /// The previous holder's lease ran out while an attempt was in flight: the executor records
    /// that cut attempt as `interrupted` before making the next one.
    pub interrupted: bool,
    pub started_at: Option<DateTime<Utc>>,
    /// The job's spec at claim time, shared with the job it came from.
    pub spec: std::sync::Arc<JobSpec>,
}

/// What an executor decided after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Try again at `run_at`; the executor keeps its lease until `lease_until`.
    Retry {
        run_at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    },
    /// Done: `status` is final (succeeded, failed or cancelled).
    Finish { status: ExecutionStatus },
}

/// One attempt's result, to record with the execution's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub execution_id: String,
    /// The node that holds the lease; a record from any other node is refused.
    pub node_id: String,
    pub attempt: Attempt,
    pub next: NextStep,
}

impl AttemptRecord {
    /// Whether this record ends its execution as succeeded: the one outcome that leaves a job
    /// with no failure streak exactly as it was, so stores skip the alerting rules for it.
    pub fn succeeds(&self) -> bool {
        matches!(
            self.next,
            NextStep::Finish {
                status: ExecutionStatus::Succeeded
            }
        )
    }
}

/// Splits a batch of records into consecutive waves in which no execution appears twice. A
/// store applies each wave as a set, in order: an execution recorded twice in one batch has its
/// first record applied (or refused) before its second is judged.
pub fn record_waves(records: &[AttemptRecord]) -> Vec<std::ops::Range<usize>> {
    let mut waves = Vec::new();
    let mut start = 0;
    // Execution ids are cronhook's own, so the fast hasher is safe here.
    let mut in_wave: foldhash::HashSet<&str> = foldhash::HashSet::default();
    for (index, record) in records.iter().enumerate() {
        if !in_wave.insert(record.execution_id.as_str()) {
            waves.push(start..index);
            start = index;
            in_wave.clear();
            in_wave.insert(record.execution_id.as_str());
        }
    }
    if start < records.len() {
        waves.push(start..records.len());
    }
    waves
}

/// Filters for listing a job's executions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionFilter {
    pub status: Option<ExecutionStatus>,
}

/// Where a store reads a job's history of one status from. Most of a history succeeded, so
/// reading it in order finds succeeded executions at once; the other statuses are rare, and
/// reading the history in order to find them read through all of it (a month of an
/// every-second job is 2.6 million executions, for each page of its few failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusIndex {
    /// Succeeded: the occurrence key `(job_id, scheduled_for)`, newest first, filtered.
    Occurrences,
    /// Failed, skipped or cancelled: the partial index of finished executions that did not
    /// succeed, `(job_id, status, scheduled_for)`, in order.
    Unsuccessful,
    /// Queued, running or retrying: the partial index of unfinished executions by job, sorted
    /// (a job has few).
    Unfinished,
}

impl StatusIndex {
    /// The index a history of `status` is read from.
    pub fn of(status: ExecutionStatus) -> StatusIndex {
        match status {
            ExecutionStatus::Succeeded => StatusIndex::Occurrences,
            ExecutionStatus::Failed | ExecutionStatus::Skipped | ExecutionStatus::Cancelled => {
                StatusIndex::Unsuccessful
            }
            ExecutionStatus::Queued | ExecutionStatus::Running | ExecutionStatus::Retrying => {
                StatusIndex::Unfinished
            }
        }
    }
}

/// A store's statements of a job's history of one status: for each [`StatusIndex`], the
/// statement of the first page and the one of a page after a cursor.
#[derive(Debug, Clone, Copy)]
pub struct HistoryByStatus {
    /// [`StatusIndex::Occurrences`]: (first page, after a cursor).
    pub occurrences: (&'static str, &'static str),
    /// [`StatusIndex::Unsuccessful`]: (first page, after a cursor).
    pub unsuccessful: (&'static str, &'static str),
    /// [`StatusIndex::Unfinished`]: (first page, after a cursor).
    pub unfinished: (&'static str, &'static str),
}

impl HistoryByStatus {
    /// The statement reading a history of `status`, from a cursor or from the newest.
    pub fn statement(&self, status: ExecutionStatus, after_cursor: bool) -> &'static str {
        let (first, after) = match StatusIndex::of(status) {
            StatusIndex::Occurrences => self.occurrences,
            StatusIndex::Unsuccessful => self.unsuccessful,
            StatusIndex::Unfinished => self.unfinished,
        };
        if after_cursor { after } else { first }
    }
}

/// Everything cronhook persists. Implementations must be safe to share between tasks and, for
/// databases that allow it, between processes.
#[async_trait]
pub trait Store:
    AlertStore
    + MaintenanceStore
    + NodeStore
    + SessionStore
    + HistoryStore
    + ApiKeyStore
    + WorkspaceKeyStore
    + Send
    + Sync
    + 'static
{
    /// Succeeds when the database answers and its schema is current.
    async fn ping(&self) -> StoreResult<()>;

    // Workspaces, keys and users.

    /// Creates a workspace; `Conflict` if the slug is taken.
    async fn create_workspace(&self, workspace: &Workspace) -> StoreResult<()>;
    async fn workspace(&self, id: &str) -> StoreResult<Option<Workspace>>;
    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>>;
    /// Makes `new_secret` current and the current one previous, stamped `at`.
    async fn rotate_signing_secret(
        &self,
        workspace_id: &str,
        new_secret: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Workspace>;
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;
    /// Creates a user; `Conflict` if the email is taken.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    // Jobs.

    /// Creates a job; `Conflict` if its name is taken in the workspace.
    async fn insert_job(&self, job: &Job) -> StoreResult<()>;
    async fn job(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Job>>;
    /// Jobs in id (creation) order.
    async fn list_jobs(&self, workspace_id: &str, page: &PageRequest) -> StoreResult<Page<Job>>;
    /// Replaces a job's spec, `next_run_at` and `updated_at`; `NotFound` or `Conflict` on name.
    /// When the job is paused or its `next_run_at` changes, executions prepared ahead of their
    /// instant (see [`PREPARED_DISCARD_MARGIN`]) are deleted in the same transaction.
    async fn update_job(&self, job: &Job) -> StoreResult<()>;
    /// Pauses a job on the target's behalf (a `410 Gone`); false when there was none.
    async fn pause_job(&self, workspace_id: &str, id: &str, at: DateTime<Utc>)
    -> StoreResult<bool>;
    /// Deletes a job and its executions; false when there was none. From then on neither the
    /// job nor any of its executions can be read, claimed or recorded. A store may leave its
    /// finished executions on disk for [`MaintenanceStore::prune_executions`] to delete in
    /// batches (SQLite does: its one writer would otherwise be held for the whole history).
    async fn delete_job(&self, workspace_id: &str, id: &str) -> StoreResult<bool>;

    // Scheduling.

    /// Unpaused jobs whose `next_run_at` is at or before `until`, earliest first, across
    /// workspaces. Read by index; never a scan of all jobs.
    async fn due_jobs(&self, until: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Job>>;
    /// Like [`Store::due_jobs`], but claims what it returns for `lease.node_id` until
    /// `lease.until`, so schedulers sharing a database split the due jobs between them instead
    /// of all racing for every occurrence: a job another node claimed, whose claim has not run
    /// out at `now`, is left out. A store that serves a single scheduler may return the due jobs
    /// without claiming. Correctness never rests on the claim (a node may die holding it): the
    /// compare-and-set of [`Store::materialize`] does.
    async fn claim_due_jobs(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Job>>;
    /// The earliest `next_run_at` of any unpaused job, to know how long to sleep.
    async fn earliest_next_run(&self) -> StoreResult<Option<DateTime<Utc>>>;
    /// Materializes occurrences: for each, in one transaction, advances the job's `next_run_at`
    /// (only if it still equals `expected_next_run_at`) and creates its executions (unique per
    /// job and scheduled instant). Returns one outcome per occurrence, in order.
    async fn materialize(&self, occurrences: &[Occurrence]) -> StoreResult<Vec<Materialized>>;

    // Executions.

    /// Creates one execution outside the schedule (run now, replay).
    async fn insert_execution(&self, execution: &NewExecution) -> StoreResult<()>;
    /// Claims up to `limit` executions that are ready (queued or retrying with `run_at` ≤ `now`
    /// and no live lease) or orphaned (a lease that ran out before `now`), leasing them to
    /// `lease.node_id` until `lease.until` and marking them running.
    async fn claim_executions(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedExecution>>;
    /// Records attempts with their executions' next state. A record whose node no longer holds
    /// the lease, or whose attempt number is not the next one, is refused: `false` at its index.
    ///
    /// A record that finishes an execution as succeeded or failed also applies the alert rules
    /// (`cronhook_core::alerting::on_finished`) in the same transaction: it updates the job's
    /// failure streak, records the alerts it raises (one per channel: the job's
    /// `alerts.channels`, or the workspace's default channels when it names none; ids that name
    /// no channel of the workspace are passed over), and pauses the job when the streak reaches
    /// `auto_disable_after_failures` or the attempt was answered `410 Gone`.
    async fn record_attempts(&self, records: &[AttemptRecord]) -> StoreResult<Vec<bool>>;
    /// Extends the running and retrying leases held by `node_id` to at least `until`; returns
    /// how many were extended (a lease that lasts until then already is left alone, unwritten).
    /// A retry whose `run_at` is `until` or later is left for a later renewal: nobody can claim
    /// it before its `run_at`, the holder renews at least once a lease, and the executor leases
    /// a retry until a lease past its `run_at` anyway. So the renewal reads the executions due
    /// within a lease, not every retry backing off.
    async fn renew_leases(&self, node_id: &str, until: DateTime<Utc>) -> StoreResult<u64>;
    async fn execution(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Execution>>;
    /// A job's executions, newest first (by scheduled instant, which is unique within a job),
    /// with their attempts. `page.after` is the id of the previous page's last execution: the
    /// page starts below its instant (an id that names no execution of the job gives an empty
    /// page).
    async fn list_executions(
        &self,
        workspace_id: &str,
        job_id: &str,
        filter: &ExecutionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Execution>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Succeeded is the one common status; each rare one has its partial index, and the
    /// statement after a cursor is the second of its pair.
    #[test]
    fn each_status_reads_its_index_first_page_or_after_a_cursor() {
        let statements = HistoryByStatus {
            occurrences: ("occurrences", "occurrences after"),
            unsuccessful: ("unsuccessful", "unsuccessful after"),
            unfinished: ("unfinished", "unfinished after"),
        };
        for (status, index) in [
            (ExecutionStatus::Succeeded, "occurrences"),
            (ExecutionStatus::Failed, "unsuccessful"),
            (ExecutionStatus::Skipped, "unsuccessful"),
            (ExecutionStatus::Cancelled, "unsuccessful"),
            (ExecutionStatus::Queued, "unfinished"),
            (ExecutionStatus::Running, "unfinished"),
            (ExecutionStatus::Retrying, "unfinished"),
        ] {
            assert_eq!(statements.statement(status, false), index, "{status:?}");
            assert_eq!(
                statements.statement(status, true),
                format!("{index} after"),
                "{status:?}"
            );
        }
    }

    fn record(execution_id: &str) -> AttemptRecord {
        AttemptRecord {
            execution_id: execution_id.to_owned(),
            node_id: "node".to_owned(),
            attempt: Attempt {
                number: 1,
                started_at: chrono::DateTime::UNIX_EPOCH,
                duration_ms: 0,
                status_code: Some(200),
                error: None,
                response_headers: Default::default(),
                response_body: None,
                response_body_truncated: false,
                redirect_location: None,
                timing: Default::default(),
            },
            next: NextStep::Finish {
                status: ExecutionStatus::Succeeded,
            },
        }
    }

    #[test]
    fn a_wave_ends_where_an_execution_comes_again() {
        let records: Vec<AttemptRecord> = ["a", "b", "c", "b", "d", "b", "a"]
            .into_iter()
            .map(record)
            .collect();
        assert_eq!(record_waves(&records), [0..3, 3..5, 5..7]);
        assert!(record_waves(&[]).is_empty());
        let one = record_waves(&records[..1]);
        assert_eq!((one.len(), one[0].clone()), (1, 0..1));
    }
}
