//! The SQLite implementation of cronhook's `Store`: the embedded default, one file, one process.
//!
//! Architecture invariant: every write goes through one writer connection and starts with
//! `BEGIN IMMEDIATE`, so writers in this process queue for the lock instead of failing with
//! `SQLITE_BUSY`; reads go through a separate pool and, in WAL mode, never wait for the writer.
//! Every instant is stored as integer unix milliseconds, so a value read back is the value
//! written truncated to the millisecond.

/// The columns `rows::workspace_from_row` reads.
macro_rules! workspace_columns {
    () => {
        "id, slug, signing_secret, previous_signing_secret, signing_secret_rotated_at, created_at"
    };
}

/// The columns `rows::api_key_from_row` reads.
macro_rules! api_key_columns {
    () => {
        "id, workspace_id, name, key_hash, scope, created_at, last_used_at, revoked_at"
    };
}

/// The columns `rows::job_from_row` reads.
macro_rules! job_columns {
    () => {
        "id, workspace_id, name, spec, paused, next_run_at, created_at, updated_at"
    };
}

/// The columns `rows::execution_from_row` reads; with two prefixes, the row's columns from the
/// first (`"e."`) and its occurrence key's from the second (`"h."`, a [`job_history!`] arm's
/// `job_history`, so that SQLite sees the arm ordered by that table's key).
macro_rules! execution_columns {
    () => {
        execution_columns!("", "")
    };
    ($row:literal, $key:literal) => {
        concat!(
            $row,
            "id, ",
            $row,
            "workspace_id, ",
            $key,
            "job_id, ",
            $key,
            "scheduled_for, ",
            $row,
            "trigger, ",
            $row,
            "status, ",
            $row,
            "started_at, ",
            $row,
            "finished_at, ",
            $row,
            "duration_ms"
        )
    };
}

/// The mark below which `job_history` holds every execution: `history_filed.upto`
/// (`migrations/sqlite/0019_history_filed_by_job.sql`).
macro_rules! filed_upto {
    () => {
        "(select upto from history_filed where id = 1)"
    };
}

/// The filed entries `h` of `job_history`, each joined back to its execution `e` through the
/// time-first occurrence key: the filed arm of every read of a job's history.
macro_rules! filed_executions {
    () => {
        "job_history h
           join executions e on e.scheduled_for = h.scheduled_for and e.job_id = h.job_id"
    };
}

/// A job's (`?1`, of the workspace `?2`) executions, newest scheduled instant first, up to
/// `limit` (a parameter): those not yet filed, at or after [`filed_upto!`] (`from`, a lower
/// bound no lower than the mark, and `recent`, more conditions), read from the time-first
/// occurrence key, where they are a few seconds of all jobs' executions; then the filed ones,
/// through `job_history` (`h`) below the mark (`filed`, conditions on `h` and its execution
/// `e`, the mark's bound among them). SQLite merges the two arms, each read in order.
macro_rules! job_history {
    (from: [$($from:tt)*], recent: [$($recent:tt)*], filed: [$($filed:tt)*], limit: $limit:literal) => {
        concat!(
            "select ",
            execution_columns!(),
            " from executions
              where scheduled_for >= ", $($from)*, " and job_id = ?1 and workspace_id = ?2",
            $($recent)*,
            "
            union all
            select ",
            execution_columns!("e.", "h."),
            " from ",
            filed_executions!(),
            "
              where h.job_id = ?1 and e.workspace_id = ?2",
            $($filed)*,
            "
            order by scheduled_for desc limit ", $limit
        )
    };
}

/// The columns `rows::attempt_from_row` reads.
macro_rules! attempt_columns {
    () => {
        "execution_id, number, started_at, duration_ms, status_code, error_kind, error_message, \
         response_headers, response_body, response_body_truncated, redirect_location, timing"
    };
}

/// The where clause of the partial indexes of unfinished executions (`executions_claimable`,
/// `executions_unfinished_by_job`) over `$status`, the status column as the query names it. A
/// query repeats it word for word to let SQLite use them. ORs, not `in (...)`: see
/// `migrations/sqlite/0012_partial_index_predicates.sql`.
macro_rules! unfinished {
    ($status:literal) => {
        concat!(
            "(",
            $status,
            " = 'queued' or ",
            $status,
            " = 'running' or ",
            $status,
            " = 'retrying')"
        )
    };
}

/// The where clause of the partial index of finished executions (`executions_finished`), as
/// [`unfinished!`]'s.
macro_rules! finished {
    ($status:literal) => {
        concat!(
            "(",
            $status,
            " = 'succeeded' or ",
            $status,
            " = 'failed' or ",
            $status,
            " = 'skipped' or ",
            $status,
            " = 'cancelled')"
        )
    };
}

/// The where clause of the partial index of finished executions that did not succeed
/// (`executions_unsuccessful_by_job`), as [`unfinished!`]'s.
macro_rules! unsuccessful {
    ($status:literal) => {
        concat!(
            "(",
            $status,
            " = 'failed' or ",
            $status,
            " = 'skipped' or ",
            $status,
            " = 'cancelled')"
        )
    };
}

/// The where clause of `jobs_in_failure_streak` (`migrations/sqlite/0014_jobs_in_failure_streak.sql`),
/// word for word, so that a query repeating it can read that index.
macro_rules! in_failure_streak {
    () => {
        "(failure_streak > 0 or failure_streak_alerted or failure_streak_started_at is not null)"
    };
}

mod alerts;
mod allocator;
mod api_keys;
mod batch;
mod convert;
mod maintenance;
mod nodes;
mod rows;
mod sessions;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_core::{Concurrency, Execution, ExecutionStatus, Job};
use cronhook_store::{
    ApiKey, AttemptRecord, ClaimedExecution, ExecutionFilter, HistoryByStatus, Lease, Materialized,
    NewExecution, NextStep, Occurrence, Page, PageRequest, Store, StoreError, StoreResult, User,
    Workspace,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::batch::SharedTexts;
use crate::convert::{
    SchemaNotCurrent, conflict_or_db_err, db_err, enum_text, ms, opt_ms, signed, to_json,
};
use crate::rows::{
    attempt_from_row, claimed_from_row, execution_from_row, job_from_row, workspace_from_row,
};

/// The schema, embedded at build time from `migrations/sqlite`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The writer connection's page cache, in KiB (SQLite takes it negative).
const WRITER_CACHE_KIB: u32 = 32 * 1024;
/// The WAL pages after which a commit on the writer checkpoints by itself (SQLite's default is
/// 1 000). A backstop only: the checkpointer copies the WAL back in the background every
/// [`CHECKPOINT_INTERVAL`], and reaching this many pages means it fell behind. Done on the
/// writer, a checkpoint (page copies and two fsyncs) was ~12 % of the writer's time at 4 000
/// executions/s, and the commit that ran it held the one write lock ~55 ms instead of ~10.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 50_000;
/// How often the checkpointer copies the WAL back into the database file. The pages every burst
/// rewrites (due jobs, the newest executions) are copied once per checkpoint, however often they
/// were written in between.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// Where in each [`CHECKPOINT_INTERVAL`] of the wall clock the checkpointer runs: a quarter
/// second past the whole and the half second. Cron occurrences fall on whole seconds, so a
/// burst's requests leave from x.000, and the scheduler writes the next ones half a second
/// ahead; a checkpoint (10–45 ms of page copies at 8 000 executions a second) that fell into a
/// burst's drain, as a timer started at an arbitrary moment let it, made the burst's p99 lag
/// 10–20 % worse.
const CHECKPOINT_PHASE: Duration = Duration::from_millis(250);
/// How often the history is filed into `job_history`
/// (`migrations/sqlite/0019_history_filed_by_job.sql`). A pass writes each job's leaf of that
/// table once, so a longer interval writes less per execution; a history page reads all jobs'
/// executions scheduled since the last pass from the time-first occurrence key (about a
/// millisecond per 8 000), which a shorter one keeps fewer.
pub const FILING_INTERVAL: Duration = Duration::from_secs(10);
/// Where in each [`FILING_INTERVAL`] of the wall clock a pass starts: with a checkpoint, away
/// from the bursts at whole seconds and the scheduler's writes at the half (see
/// [`CHECKPOINT_PHASE`]).
const FILING_PHASE: Duration = CHECKPOINT_PHASE;
/// How far behind the wall clock a pass files: the burst just due, and the occurrences prepared
/// ahead, are still being written, and wait for the next pass.
pub const FILING_LAG: Duration = Duration::from_secs(2);
/// The most executions a filing pass reads into memory at once (~50 bytes each); a pass files
/// a longer stretch in rounds.
const FILING_ROUND_ROWS: usize = 262_144;
/// `job_history` rows written per transaction of a pass, so the pass holds the one write lock
/// a few milliseconds at a time.
const FILING_ROWS_PER_TRANSACTION: usize = 2_048;
/// The bytes of WAL file kept when the WAL starts over, so a burst's spike does not stay on disk.
const WAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
/// The rows SQLite's thread may run ahead of the task reading them. With sqlx's default of 50,
/// reading a thousand due jobs made SQLite's thread stop twenty times and wait for the reading
/// task to be scheduled, which on a busy runtime took longer than the reading itself.
const ROW_BUFFER: usize = 4_096;
/// Connections that serve reads; in WAL mode they read while the writer writes.
const READERS: u32 = 4;

/// A cronhook store in one SQLite file.
///
/// Instants round-trip truncated to the millisecond: they are stored as integer unix
/// milliseconds so that indexed comparisons are numeric and exact.
#[derive(Clone)]
pub struct SqliteStore {
    /// One connection: every write transaction queues here.
    writer: SqlitePool,
    /// Query-only connections for everything that does not write.
    reader: SqlitePool,
    filename: PathBuf,
    /// Seals secret header values before specs are written and opens them after reads.
    sealer: std::sync::Arc<cronhook_store::Sealer>,
    /// The opened specs of due jobs, so a job read every second is parsed once.
    due_specs: std::sync::Arc<cronhook_store::SpecCache>,
    /// The background checkpointer's connection; the checkpointer stops with the last clone.
    checkpointer: std::sync::Arc<Checkpointer>,
    /// Where pruning by `keep_last` resumes.
    keep_last_cursor: std::sync::Arc<cronhook_store::KeepLastCursor>,
    /// Stops the filing loop (see [`SqliteStore::file_history`]) when the last clone goes; set
    /// by the first successful [`SqliteStore::migrate`], which starts it.
    filer: std::sync::Arc<std::sync::OnceLock<tokio::sync::oneshot::Sender<()>>>,
}

/// How long from `now` until the next checkpoint: the next instant [`CHECKPOINT_PHASE`] past a
/// multiple of [`CHECKPOINT_INTERVAL`] since the Unix epoch (a whole interval when `now` is one).
fn until_next_checkpoint(now: std::time::SystemTime) -> Duration {
    until_next_phase(now, CHECKPOINT_INTERVAL, CHECKPOINT_PHASE)
}

/// How long from `now` until the next instant `phase` past a multiple of `interval` since the
/// Unix epoch (a whole interval when `now` is one).
fn until_next_phase(now: std::time::SystemTime, interval: Duration, phase: Duration) -> Duration {
    let interval = interval.as_micros();
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let into_interval = (since_epoch + interval - phase.as_micros() % interval) % interval;
    let wait = interval - into_interval;
    Duration::from_micros(u64::try_from(wait).unwrap_or(u64::MAX))
}

/// The connection [`checkpoint_loop`] runs on, and what stops it: dropping the sender.
struct Checkpointer {
    pool: SqlitePool,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Copies the WAL back into the database file every [`CHECKPOINT_INTERVAL`] on its own
/// connection, so the writer's commits never do it. `PASSIVE` neither waits for nor blocks the
/// writer and the readers: it copies what no reader still needs, and the writer starts the WAL
/// over at its next transaction once everything was copied.
async fn checkpoint_loop(pool: SqlitePool, mut stop: tokio::sync::oneshot::Receiver<()>) {
    // A failure is logged when it starts and when it ends, not twice a second.
    let mut failing = false;
    loop {
        let wait = until_next_checkpoint(std::time::SystemTime::now());
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
        // (busy, frames in the WAL, frames copied back)
        match sqlx::query_as::<_, (i64, i64, i64)>("pragma wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok((_, frames, copied)) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(frames, copied, "checkpointing the WAL again");
                }
                tracing::trace!(frames, copied, "checkpointed the WAL");
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(err) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        error = %err,
                        "cannot checkpoint the WAL; trying again every {} ms",
                        CHECKPOINT_INTERVAL.as_millis()
                    );
                }
            }
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("filename", &self.filename)
            .field("writer_connections", &self.writer.size())
            .field("reader_connections", &self.reader.size())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if missing, with its directory) the database file named by a
    /// `sqlite://path/to/file.db` URL. In-memory databases are refused: the reader and writer
    /// pools would not share one. Call [`SqliteStore::migrate`] before use.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Database(
                format!("`{url}` is an in-memory database; cronhook needs a file").into(),
            ));
        }
        allocator::route_sqlite_to_mimalloc();
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_err)?
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .row_buffer_size(ROW_BUFFER);
        let filename = options.get_filename().to_owned();
        if let Some(parent) = filename.parent()
            && !parent.as_os_str().is_empty()
        {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|err| StoreError::Unavailable(Box::new(err)))?;
        }
        // The writer connects first: it creates the file and switches it to WAL (a setting kept
        // in the file), so the readers find it ready.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .journal_mode(SqliteJournalMode::Wal)
                    // Room for every write statement, batch shapes included (see `batch`), so
                    // none is evicted and prepared again under load.
                    .statement_cache_capacity(512)
                    // A page cache that holds the indexes a burst touches (the default 2 MiB
                    // spilled dirty pages mid-transaction and read them back at 6 000/s), and
                    // statement journals in memory.
                    .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                    .pragma("temp_store", "memory")
                    .pragma(
                        "wal_autocheckpoint",
                        WRITER_AUTOCHECKPOINT_PAGES.to_string(),
                    )
                    .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES.to_string()),
            )
            .await
            .map_err(db_err)?;
        let checkpoint_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(checkpoint_loop(checkpoint_pool.clone(), stopped));
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            // `query_only` rather than a read-only open: a read-only connection cannot create
            // the WAL index file if it happens to be missing.
            .connect_with(options.pragma("query_only", "ON"))
            .await
            .map_err(db_err)?;
        Ok(SqliteStore {
            writer,
            reader,
            filename,
            sealer: std::sync::Arc::default(),
            due_specs: std::sync::Arc::default(),
            keep_last_cursor: std::sync::Arc::default(),
            filer: std::sync::Arc::default(),
            checkpointer: std::sync::Arc::new(Checkpointer {
                pool: checkpoint_pool,
                _stop: stop,
            }),
        })
    }

    /// Applies the embedded migrations that are not applied yet; a no-op when the schema is
    /// current.
    ///
    /// The first success also starts filing the history in the background, every
    /// [`FILING_INTERVAL`] (see [`SqliteStore::file_history`]), until the last clone of the
    /// store is dropped or it is closed.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.writer).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::Execute(inner) => db_err(inner),
            other => StoreError::Database(Box::new(other)),
        })?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        if self.filer.set(stop).is_ok() {
            tokio::spawn(filing_loop(
                self.writer.clone(),
                self.reader.clone(),
                stopped,
            ));
        }
        Ok(())
    }

    /// Files into `job_history` the executions scheduled before `until` and not filed yet
    /// (`migrations/sqlite/0019_history_filed_by_job.sql`); returns how many it found. The
    /// store runs a pass every [`FILING_INTERVAL`], up to [`FILING_LAG`] before the wall clock;
    /// this runs one now, up to another instant (a later one is kept: the marks never move
    /// back). A pass stopped anywhere leaves the history readable, and the next one completes
    /// it.
    pub async fn file_history(&self, until: DateTime<Utc>) -> StoreResult<u64> {
        file_history(&self.writer, &self.reader, ms(until), FILING_ROUND_ROWS).await
    }

    /// Writes a consistent copy of the whole database to a new file at `path` (`VACUUM INTO`),
    /// while other processes go on reading and writing. A path that exists is refused.
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<(), StoreError> {
        if tokio::fs::symlink_metadata(path).await.is_ok() {
            return Err(StoreError::Conflict {
                what: format!("the backup file {}", path.display()),
            });
        }
        let target = path.to_str().ok_or_else(|| {
            StoreError::Database(
                format!("the backup path {} is not valid UTF-8", path.display()).into(),
            )
        })?;
        // A read of one snapshot: in WAL mode other connections and processes go on writing.
        // It runs on the writer connection (the readers are `query_only`, which refuses it), so
        // this store's own writes wait for it.
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Closes the pools, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
        self.checkpointer.pool.close().await;
    }

    /// A write transaction on the writer connection, holding the database's write lock from
    /// its first statement.
    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        write_on(&self.writer).await
    }

    /// A read transaction in which the job `job_id` of the workspace exists; `None` when it
    /// does not. A deleted job's history stays on disk until it is pruned (see `delete_job`),
    /// so reads of a job's history check in the same snapshot that the job is still there.
    async fn read_job_history(
        &self,
        workspace_id: &str,
        job_id: &str,
    ) -> StoreResult<Option<Transaction<'static, Sqlite>>> {
        let mut tx = self.reader.begin().await.map_err(db_err)?;
        let exists: bool = sqlx::query_scalar(
            "select exists (select 1 from jobs where id = ? and workspace_id = ?)",
        )
        .bind(job_id)
        .bind(workspace_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        Ok(exists.then_some(tx))
    }

    /// The newest migration this build knows.
    fn expected_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

/// A write transaction on `writer` (the writer pool), holding the database's write lock from
/// its first statement.
async fn write_on(writer: &SqlitePool) -> StoreResult<Transaction<'static, Sqlite>> {
    writer.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
}

/// Files the executions of a stretch of time into `job_history`, in job order (the statement's
/// rows: job id, instant). An execution deleted since it was read is not filed: the join finds
/// it gone.
const FILE_HISTORY: batch::RowsStatement = batch::RowsStatement {
    head: "insert or ignore into job_history (job_id, scheduled_for)
           select e.job_id, e.scheduled_for from (values",
    columns: 2,
    tail: ") r join executions e on e.scheduled_for = r.column2 and e.job_id = r.column1",
    returning: "",
};

/// One filing pass up to `until` (unix milliseconds); see [`SqliteStore::file_history`].
///
/// It raises `filing_upto` first (from then on the insert trigger files what arrives below it),
/// then files the executions between the marks in rounds of at most `round_rows` (so a backlog,
/// after the pass failed for a long while, is not read into memory at once): each round reads
/// the earliest of them on a reader, outside the write lock, sorts them by job and files them in
/// transactions of [`FILING_ROWS_PER_TRANSACTION`] rows, each job's new entries together on its
/// leaf; then it moves `upto` past them, below which reads now take the filed entries.
async fn file_history(
    writer: &SqlitePool,
    reader: &SqlitePool,
    until: i64,
    round_rows: usize,
) -> StoreResult<u64> {
    let mut tx = write_on(writer).await?;
    let (mut upto, filing_upto): (i64, i64) = sqlx::query_as(
        "update history_filed set filing_upto = max(filing_upto, ?1) where id = 1
         returning upto, filing_upto",
    )
    .bind(until)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_err)?;
    commit(tx).await?;
    let mut found = 0;
    while upto < filing_upto {
        let (mut rows, filed_upto) = filing_round(reader, upto, filing_upto, round_rows).await?;
        rows.sort_unstable();
        found += rows.len() as u64;
        let mut rows = rows.into_iter();
        loop {
            let chunk: Vec<_> = rows.by_ref().take(FILING_ROWS_PER_TRANSACTION).collect();
            if chunk.is_empty() {
                break;
            }
            let mut tx = write_on(writer).await?;
            FILE_HISTORY
                .execute(&mut tx, chunk, |query, (job_id, at)| {
                    query.bind(job_id).bind(at)
                })
                .await?;
            commit(tx).await?;
        }
        let mut tx = write_on(writer).await?;
        sqlx::query("update history_filed set upto = max(upto, ?1) where id = 1")
            .bind(filed_upto)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        commit(tx).await?;
        upto = filed_upto;
    }
    Ok(found)
}

/// The executions (job id, instant) scheduled from `?1` to before `?2`, in time order, at most
/// `?3`.
const FILING_ROUND: &str = "select job_id, scheduled_for from executions
     where scheduled_for >= ?1 and scheduled_for < ?2
     order by scheduled_for
     limit ?3";

/// The executions (job id, instant) of one round of a filing pass, from `upto` toward
/// `filing_upto`, and the instant below which they are all of them: at most about `round_rows`,
/// whole instants only (more when a single instant holds more).
async fn filing_round(
    reader: &SqlitePool,
    upto: i64,
    filing_upto: i64,
    round_rows: usize,
) -> StoreResult<(Vec<(String, i64)>, i64)> {
    let mut rows: Vec<(String, i64)> = sqlx::query_as(FILING_ROUND)
        .bind(upto)
        .bind(filing_upto)
        .bind(i64::try_from(round_rows.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(reader)
        .await
        .map_err(db_err)?;
    let Some(&(_, cut)) = rows.get(round_rows) else {
        return Ok((rows, filing_upto));
    };
    // The instant of the first row left out may have more rows: leave it whole to the next
    // round, unless it is all the round holds.
    rows.retain(|(_, at)| *at < cut);
    if !rows.is_empty() {
        return Ok((rows, cut));
    }
    let instant =
        sqlx::query_as("select job_id, scheduled_for from executions where scheduled_for = ?1")
            .bind(cut)
            .fetch_all(reader)
            .await
            .map_err(db_err)?;
    Ok((instant, cut.saturating_add(1)))
}

/// Runs [`file_history`] every [`FILING_INTERVAL`], up to [`FILING_LAG`] before the wall clock,
/// until `stop` fires or is dropped, or the pools close.
async fn filing_loop(
    writer: SqlitePool,
    reader: SqlitePool,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    // A failure is logged when it starts and when it ends, not at every pass.
    let mut failing = false;
    loop {
        let wait = until_next_phase(std::time::SystemTime::now(), FILING_INTERVAL, FILING_PHASE);
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
        let lag = i64::try_from(FILING_LAG.as_millis()).unwrap_or(i64::MAX);
        let until = ms(Utc::now()).saturating_sub(lag);
        match file_history(&writer, &reader, until, FILING_ROUND_ROWS).await {
            Ok(filed) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(filed, "filing the history again");
                }
                tracing::trace!(filed, "filed the history");
            }
            Err(_) if writer.is_closed() || reader.is_closed() => return,
            Err(err) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        error = %err,
                        "cannot file the history; trying again every {} s",
                        FILING_INTERVAL.as_secs()
                    );
                }
            }
        }
    }
}

async fn commit(tx: Transaction<'static, Sqlite>) -> StoreResult<()> {
    tx.commit().await.map_err(db_err)
}

/// The page size asked for, with room for one more row that says whether another page follows.
fn fetch_limit(page: &PageRequest) -> i64 {
    i64::from(page.limit.max(1)) + 1
}

/// Cuts the extra row fetched by [`fetch_limit`] and names the cursor of the next page.
fn into_page<T>(mut items: Vec<T>, page: &PageRequest, id: impl Fn(&T) -> &str) -> Page<T> {
    let limit = usize::try_from(page.limit.max(1)).unwrap_or(usize::MAX);
    let next_after = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|item| id(item).to_owned())
    } else {
        None
    };
    Page { items, next_after }
}

/// The columns of the due-jobs read: `job_columns!()`'s with the job's revision in place of the
/// spec's text, in the order `rows::DueRow` reads them.
macro_rules! due_columns {
    () => {
        "id, workspace_id, name, revision, paused, next_run_at, created_at, updated_at"
    };
}

/// One of [`DUE_JOBS`]' columns: the due jobs whose rowid is `$slot` modulo 8, as a JSON array
/// with an array of `due_columns!()` per job.
macro_rules! due_jobs_in_slot {
    ($slot:literal) => {
        concat!(
            "json_group_array(json_array(",
            due_columns!(),
            ")) filter (where slot % 8 = ",
            $slot,
            ")"
        )
    };
}

/// Due jobs (up to `?2`, earliest first, due by `?1`), packed into one row of eight JSON arrays
/// (see [`rows::due_rows`]), each in no particular order. The where clause of the inner select
/// implies the partial index `jobs_due`, which is read in order. The texts of the specs come
/// from [`SPECS_OF_JOBS`], only for the jobs whose opened spec is not cached at their revision.
///
/// Packed rather than a row per job: sqlx hands each row from SQLite's thread to the reading
/// task on its own (a message, and a copy of each of its values), which cost twice what SQLite
/// spends reading the jobs, and the scheduler reads every due job each time it comes due. Eight
/// arrays rather than one: a whole batch's text (~140 KB for 1 000 jobs, and the buffers it
/// grows through) made the allocator keep large pages per thread and size, ~60 MB more at
/// 8 000 jobs a second; an eighth stays a medium-sized allocation up to ~2 000 jobs a read.
/// (Splitting with `group by` instead made SQLite sort the jobs.)
const DUE_JOBS: &str = concat!(
    "select ",
    due_jobs_in_slot!(0),
    ", ",
    due_jobs_in_slot!(1),
    ", ",
    due_jobs_in_slot!(2),
    ", ",
    due_jobs_in_slot!(3),
    ", ",
    due_jobs_in_slot!(4),
    ", ",
    due_jobs_in_slot!(5),
    ", ",
    due_jobs_in_slot!(6),
    ", ",
    due_jobs_in_slot!(7),
    "
      from (select rowid as slot, ",
    due_columns!(),
    "
            from jobs
            where paused = 0 and next_run_at is not null and next_run_at <= ?
            order by next_run_at
            limit ?)"
);

/// The JSON arrays a row of [`DUE_JOBS`] holds.
const DUE_JOBS_SLOTS: usize = 8;

/// The stored specs of the jobs whose ids `?` lists (a JSON array), by id.
const SPECS_OF_JOBS: &str =
    "select id, spec from jobs where id in (select value from json_each(?))";

/// Executions a claim may take, oldest `run_at` first, with their job (`?1` is now, `?2` the
/// limit). The leading term is word for word the where clause of the partial index
/// `executions_claimable`, which is what lets SQLite use it, and `run_at <= ?1` makes each status
/// a range of it that ends at now. Without that bound every claim (each second, inside a write
/// transaction) read every waiting retry: ~160 ms a claim with a million backing off. A running
/// execution always has `run_at <= lease_until` (it was due, or prepared less than a lease
/// ahead), so one whose lease ran out is due; the one exception is an execution prepared ahead
/// and released at shutdown, which is then claimed at its instant rather than before it.
const CLAIM_CANDIDATES: &str = concat!(
    "select e.id, e.workspace_id, e.job_id, e.scheduled_for,
        e.trigger, e.status, e.attempt_count, e.started_at,
        j.name as job_name, j.spec as job_spec, j.paused as job_paused
    from executions e join jobs j on j.id = e.job_id
    where ",
    unfinished!("e.status"),
    " and e.run_at <= ?1
      and ((e.status in ('queued', 'retrying')
            and (e.locked_by is null or e.lease_until < ?1))
           or (e.status = 'running' and e.lease_until < ?1))
    order by e.run_at
    limit ?2"
);

/// Extends the leases of a node's running and retrying executions to `?1` (`?2` the node),
/// only those that end sooner: executions prepared ahead were leased long enough at creation,
/// and rewriting a whole burst's rows every renewal held up the next burst. It runs every third
/// of a lease while the node holds executions; the leading term, word for word the where clause
/// of the partial indexes of unfinished executions, keeps it to those. Without it, SQLite (which
/// does not see that `status in ('running', 'retrying')` implies that clause) scanned the whole
/// history each time, inside a write transaction. `run_at < ?1` (see
/// [`cronhook_store::Store::renew_leases`]) makes it a range of `executions_claimable` that
/// ends within a lease, so retries backing off for longer are not read.
const RENEW_LEASES: &str = concat!(
    "update executions set lease_until = ?1
     where ",
    unfinished!("status"),
    " and status in ('running', 'retrying') and run_at < ?1 and locked_by = ?2
       and (lease_until is null or lease_until < ?1)"
);

/// Whether a job has an unfinished execution (the `forbid` overlap policy). Its where clause
/// ends with `executions_unfinished_by_job`'s, word for word.
const HAS_UNFINISHED: &str = concat!(
    "select exists (select 1 from executions where job_id = ? and ",
    unfinished!("status"),
    ")"
);

/// A job's running executions, with their attempt counts (the `replace` overlap policy): the
/// where clause of `executions_unfinished_by_job`, narrowed.
const RUNNING_OF_JOB: &str = concat!(
    "select id, attempt_count from executions where job_id = ? and ",
    unfinished!("status"),
    " and status = 'running'"
);

/// The instant of the cursor execution `?3` of the job `?1`: the next page starts below it
/// (an instant is unique within a job). No row, no instant, and an empty page.
macro_rules! cursor_instant {
    () => {
        "(select scheduled_for from executions where id = ?3 and job_id = ?1)"
    };
}

/// A job's history, one static statement per shape (so each is prepared once), newest
/// scheduled instant first: see [`job_history!`]. Parameters: job id, workspace id, [the
/// cursor's execution id], [status], limit.
const HISTORY: &str = job_history!(
    from: [filed_upto!()],
    recent: [""],
    filed: [" and h.scheduled_for < ", filed_upto!()],
    limit: "?3"
);

/// [`HISTORY`] after a cursor.
const HISTORY_AFTER: &str = job_history!(
    from: [filed_upto!()],
    recent: [" and scheduled_for < ", cursor_instant!()],
    filed: [" and h.scheduled_for < min(", filed_upto!(), ", ", cursor_instant!(), ")"],
    limit: "?4"
);

/// [`HISTORY`] of succeeded executions (see [`cronhook_store::StatusIndex`]), read along the
/// occurrence key: most of a history succeeded. Parameters: job id, workspace id, status, limit.
const HISTORY_WITH_STATUS: &str = job_history!(
    from: [filed_upto!()],
    recent: [" and status = ?3"],
    filed: [" and h.scheduled_for < ", filed_upto!(), " and e.status = ?3"],
    limit: "?4"
);

/// [`HISTORY_WITH_STATUS`] after a cursor: job id, workspace id, cursor, status, limit.
const HISTORY_WITH_STATUS_AFTER: &str = job_history!(
    from: [filed_upto!()],
    recent: [" and scheduled_for < ", cursor_instant!(), " and status = ?4"],
    filed: [
        " and h.scheduled_for < min(", filed_upto!(), ", ", cursor_instant!(), ")",
        " and e.status = ?4"
    ],
    limit: "?5"
);

/// [`HISTORY_WITH_STATUS`] of failed, skipped or cancelled executions, read in order from
/// `executions_unsuccessful_by_job`, whose where clause it repeats word for word. Walking the
/// occurrence key instead read through the whole history for a page of a status it rarely
/// holds.
const HISTORY_UNSUCCESSFUL: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions where job_id = ? and workspace_id = ? and status = ? and ",
    unsuccessful!("status"),
    " order by scheduled_for desc limit ?"
);

/// [`HISTORY_UNSUCCESSFUL`] after a cursor.
const HISTORY_UNSUCCESSFUL_AFTER: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions where job_id = ?1 and workspace_id = ?2
      and scheduled_for < ",
    cursor_instant!(),
    "
      and status = ?4 and ",
    unsuccessful!("status"),
    " order by scheduled_for desc limit ?5"
);

/// [`HISTORY_WITH_STATUS`] of queued, running or retrying executions: the job's unfinished
/// executions (few) from `executions_unfinished_by_job`, sorted. `indexed by` because
/// SQLite would rather read the occurrence key, which needs no sort, through the whole history.
const HISTORY_UNFINISHED: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions indexed by executions_unfinished_by_job
      where job_id = ? and workspace_id = ? and status = ? and ",
    unfinished!("status"),
    " order by scheduled_for desc limit ?"
);

/// [`HISTORY_UNFINISHED`] after a cursor.
const HISTORY_UNFINISHED_AFTER: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions indexed by executions_unfinished_by_job
      where job_id = ?1 and workspace_id = ?2
      and scheduled_for < ",
    cursor_instant!(),
    "
      and status = ?4 and ",
    unfinished!("status"),
    " order by scheduled_for desc limit ?5"
);

/// A job's history of one status, a statement for each [`cronhook_store::StatusIndex`].
/// Parameters: job id, workspace id, [the cursor's execution id,] status, limit.
const HISTORY_BY_STATUS: HistoryByStatus = HistoryByStatus {
    occurrences: (HISTORY_WITH_STATUS, HISTORY_WITH_STATUS_AFTER),
    unsuccessful: (HISTORY_UNSUCCESSFUL, HISTORY_UNSUCCESSFUL_AFTER),
    unfinished: (HISTORY_UNFINISHED, HISTORY_UNFINISHED_AFTER),
};

/// Inserts one execution of a job of the given workspace; the `SELECT` from `jobs` makes a job
/// of another workspace behave as absent (no row inserted).
const INSERT_EXECUTION: &str = "insert into executions
        (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, locked_by, lease_until,
         finished_at)
    select ?, workspace_id, id, ?, ?, ?, ?, ?, ?, ? from jobs where id = ? and workspace_id = ?";

/// [`INSERT_EXECUTION`], but an occurrence that exists already is left alone.
const INSERT_EXECUTION_ONCE: &str = "insert into executions
        (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, locked_by, lease_until,
         finished_at)
    select ?, workspace_id, id, ?, ?, ?, ?, ?, ?, ? from jobs where id = ? and workspace_id = ?
    on conflict (scheduled_for, job_id) do nothing";

/// The fence of a retry: only the lease holder, only the next attempt number. A retrying
/// execution is still held by the node that will make its next attempt. Rows: execution id,
/// attempt number, started at, run at, lease until, node id.
const RECORD_RETRIES: batch::RowsStatement = batch::RowsStatement {
    head: "update executions
               set attempt_count = r.column2, status = 'retrying', run_at = r.column4,
                   lease_until = r.column5,
                   started_at = coalesce(executions.started_at, r.column3)
               from (values",
    columns: 6,
    tail: ") r
               where executions.id = r.column1 and executions.locked_by = r.column6
                 and executions.attempt_count = r.column2 - 1
                 and executions.status in ('running', 'retrying')",
    returning: "executions.id",
};

/// The fence of a last attempt, as [`RECORD_RETRIES`]'. Rows: execution id, attempt number,
/// started at, finished at, status, node id.
const RECORD_FINISHES: batch::RowsStatement = batch::RowsStatement {
    head: "update executions
               set attempt_count = f.column2, status = f.column5, locked_by = null,
                   lease_until = null,
                   started_at = coalesce(executions.started_at, f.column3),
                   finished_at = f.column4,
                   duration_ms = f.column4 - coalesce(executions.started_at, f.column3)
               from (values",
    columns: 6,
    tail: ") f
               where executions.id = f.column1 and executions.locked_by = f.column6
                 and executions.attempt_count = f.column2 - 1
                 and executions.status in ('running', 'retrying')",
    returning: "executions.id",
};

/// Of the executions named in the JSON array `?1`, those whose job is in a failure streak. Both
/// subqueries read `jobs_in_failure_streak`. The first does not depend on the executions, so
/// SQLite works it out once, and while no job is in a streak (nearly always) it passes over
/// each row of the batch without searching `executions`. (A scalar subquery, not `exists`:
/// SQLite turns an `exists` into a join, evaluated per row.)
const SUCCEEDED_IN_FAILURE_STREAK: &str = concat!(
    "select e.id from json_each(?1) s join executions e on e.id = s.value
     where (select 1 from jobs where ",
    in_failure_streak!(),
    " limit 1) is not null and e.job_id in (select id from jobs where ",
    in_failure_streak!(),
    ")"
);

/// Records attempts of distinct executions in a few statements (see `record_attempts`).
async fn record_wave(
    tx: &mut Transaction<'static, Sqlite>,
    records: &[AttemptRecord],
) -> StoreResult<Vec<bool>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let mut retries = Vec::new();
    let mut finishes = Vec::new();
    let mut nodes = SharedTexts::new();
    let mut statuses = SharedTexts::new();
    for record in records {
        let attempt = &record.attempt;
        let started_at = ms(attempt.started_at);
        let duration_ms = signed(attempt.duration_ms, "attempt duration")?;
        let node_id = nodes.get(record.node_id.as_str(), |id| Ok(id.to_string()))?;
        match &record.next {
            NextStep::Retry {
                run_at,
                lease_until,
            } => retries.push((record, started_at, ms(*run_at), ms(*lease_until), node_id)),
            NextStep::Finish { status } => finishes.push((
                record,
                started_at,
                started_at.saturating_add(duration_ms),
                statuses.get(*status, enum_text)?,
                node_id,
            )),
        }
    }
    let retries_applied = RECORD_RETRIES
        .changed_rows(
            tx,
            &retries,
            |query, (record, started_at, run_at, lease_until, node_id)| {
                query
                    .bind(record.execution_id.as_str())
                    .bind(i64::from(record.attempt.number))
                    .bind(*started_at)
                    .bind(*run_at)
                    .bind(*lease_until)
                    .bind(Arc::clone(node_id))
            },
        )
        .await?;
    let finishes_applied = RECORD_FINISHES
        .changed_rows(
            tx,
            &finishes,
            |query, (record, started_at, finished_at, status, node_id)| {
                query
                    .bind(record.execution_id.as_str())
                    .bind(i64::from(record.attempt.number))
                    .bind(*started_at)
                    .bind(*finished_at)
                    .bind(Arc::clone(status))
                    .bind(Arc::clone(node_id))
            },
        )
        .await?;
    // A wave holds each execution once, so a record was judged by exactly one of the two.
    let accepted: Vec<bool> = records
        .iter()
        .map(|record| match record.next {
            NextStep::Retry { .. } => retries_applied.contains(&record.execution_id),
            NextStep::Finish { .. } => finishes_applied.contains(&record.execution_id),
        })
        .collect();
    let attempts: Vec<(&str, &cronhook_core::Attempt)> = records
        .iter()
        .zip(&accepted)
        .filter(|(_, accepted)| **accepted)
        .map(|(r, _)| (r.execution_id.as_str(), &r.attempt))
        .collect();
    rows::insert_attempts(tx, &attempts).await?;
    // Failure streaks: a success of a job with no streak changes nothing, which is nearly
    // every execution; only the others go through the alerting rules one by one.
    let finished: Vec<&AttemptRecord> = records
        .iter()
        .zip(&accepted)
        .filter(|(r, accepted)| **accepted && matches!(r.next, NextStep::Finish { .. }))
        .map(|(r, _)| r)
        .collect();
    let succeeded: Vec<&str> = finished
        .iter()
        .filter(|r| r.succeeds())
        .map(|r| r.execution_id.as_str())
        .collect();
    let streaked: std::collections::HashSet<String> = if succeeded.is_empty() {
        std::collections::HashSet::new()
    } else {
        sqlx::query_scalar::<_, String>(SUCCEEDED_IN_FAILURE_STREAK)
            .bind(to_json(&succeeded)?)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err)?
            .into_iter()
            .collect()
    };
    for record in finished {
        let NextStep::Finish { status } = &record.next else {
            continue;
        };
        if *status == ExecutionStatus::Succeeded && !streaked.contains(&record.execution_id) {
            continue;
        }
        alerts::on_finished(tx, &record.execution_id, &record.attempt, *status).await?;
    }
    Ok(accepted)
}

/// The compare-and-set of simple occurrences' jobs; a job of another workspace than the
/// occurrence's behaves as absent. Rows: job id, expected `next_run_at`, new `next_run_at`,
/// the occurrence's workspace id.
const ADVANCE_JOBS: batch::RowsStatement = batch::RowsStatement {
    head: "update jobs set next_run_at = j.column3
           from (values",
    columns: 4,
    tail: ") j
           where jobs.id = j.column1 and jobs.paused = 0 and jobs.next_run_at = j.column2
             and jobs.workspace_id = j.column4",
    returning: "jobs.id",
};

/// The executions of simple occurrences whose job [`ADVANCE_JOBS`] advanced, in the same
/// transaction: each job exists and is of its occurrence's workspace, so the values go in as
/// they are (a join with `jobs` to check it again cost a lookup per execution). Rows: id, the
/// occurrence's workspace id and job id, scheduled for, trigger, status, run at, locked by,
/// lease until.
const INSERT_SIMPLE_EXECUTIONS: batch::RowsStatement = batch::RowsStatement {
    head: "insert into executions
              (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, locked_by,
               lease_until)
           select * from (values",
    columns: 9,
    tail: ")
           where true
           on conflict (scheduled_for, job_id) do nothing",
    returning: "job_id",
};

/// One row of [`INSERT_SIMPLE_EXECUTIONS`], its repeated texts shared (see [`SharedTexts`]).
struct SimpleExecutionRow<'a> {
    /// Its job and workspace, as [`ADVANCE_JOBS`] checked them, and its one execution.
    occurrence: &'a Occurrence,
    trigger: Arc<str>,
    status: Arc<str>,
    node_id: Option<Arc<str>>,
}

/// Materializes simple occurrences (see [`Occurrence::is_simple`]) in two statements: one compare-and-set
/// of every job's `next_run_at`, one insert of the executions of the jobs it advanced. The same
/// rules as the one-by-one path: a job not advanced, or an occurrence that exists already, is
/// superseded.
async fn materialize_simple(
    conn: &mut sqlx::SqliteConnection,
    occurrences: &[&Occurrence],
) -> StoreResult<Vec<Materialized>> {
    let advanced = ADVANCE_JOBS
        .changed_rows(conn, occurrences, |query, occurrence| {
            query
                .bind(occurrence.job_id.as_str())
                .bind(ms(occurrence.expected_next_run_at))
                .bind(opt_ms(occurrence.new_next_run_at))
                .bind(occurrence.workspace_id.as_str())
        })
        .await?;
    if advanced.is_none() {
        return Ok(vec![Materialized::Superseded; occurrences.len()]);
    }
    let mut triggers = SharedTexts::new();
    let mut statuses = SharedTexts::new();
    let mut nodes = SharedTexts::new();
    let mut rows = Vec::with_capacity(occurrences.len());
    for occurrence in occurrences {
        if !advanced.contains(&occurrence.job_id) {
            continue;
        }
        let execution = &occurrence.executions[0];
        let lease = execution.lease.as_ref();
        let status = if lease.is_some() {
            ExecutionStatus::Running
        } else {
            ExecutionStatus::Queued
        };
        rows.push(SimpleExecutionRow {
            occurrence,
            trigger: triggers.get(execution.trigger, enum_text)?,
            status: statuses.get(status, enum_text)?,
            node_id: lease
                .map(|lease| nodes.get(lease.node_id.as_str(), |id| Ok(id.to_string())))
                .transpose()?,
        });
    }
    let inserted = INSERT_SIMPLE_EXECUTIONS
        .changed_rows(conn, &rows, |query, row| {
            let execution = &row.occurrence.executions[0];
            query
                .bind(execution.id.as_str())
                .bind(row.occurrence.workspace_id.as_str())
                .bind(row.occurrence.job_id.as_str())
                .bind(ms(execution.scheduled_for))
                .bind(Arc::clone(&row.trigger))
                .bind(Arc::clone(&row.status))
                .bind(ms(execution.run_at))
                .bind(row.node_id.clone())
                .bind(execution.lease.as_ref().map(|lease| ms(lease.until)))
        })
        .await?;
    Ok(occurrences
        .iter()
        .map(|occurrence| {
            // `inserted` speaks only of the rows of jobs that advanced.
            if advanced.contains(&occurrence.job_id) && inserted.contains(&occurrence.job_id) {
                Materialized::Created
            } else {
                // Not advanced (an edit, a pause, a delete or another scheduler came first),
                // or advanced but the occurrence exists already.
                Materialized::Superseded
            }
        })
        .collect())
}

/// Runs [`INSERT_EXECUTION`] or [`INSERT_EXECUTION_ONCE`]; `skipped` records the execution as
/// skipped (finished at its scheduled instant, never leased). Returns the rows inserted.
async fn insert_execution_row(
    conn: &mut sqlx::SqliteConnection,
    sql: &'static str,
    execution: &NewExecution,
    skipped: bool,
) -> Result<u64, sqlx::Error> {
    let (status, lease, finished_at) = if skipped {
        (
            ExecutionStatus::Skipped,
            None,
            Some(execution.scheduled_for),
        )
    } else if let Some(lease) = &execution.lease {
        (ExecutionStatus::Running, Some(lease), None)
    } else {
        (ExecutionStatus::Queued, None, None)
    };
    let status = enum_text(&status).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    let trigger =
        enum_text(&execution.trigger).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    let done = sqlx::query(sql)
        .bind(&execution.id)
        .bind(ms(execution.scheduled_for))
        .bind(trigger)
        .bind(status)
        .bind(ms(execution.run_at))
        .bind(lease.map(|lease| lease.node_id.as_str()))
        .bind(lease.map(|lease| ms(lease.until)))
        .bind(opt_ms(finished_at))
        .bind(&execution.job_id)
        .bind(&execution.workspace_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// The `replace` overlap policy: cancels a job's unfinished executions at `at`, recording the cut
/// attempt of those that were running (which also fences out the executor holding them).
async fn cancel_unfinished(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: &str,
    at: DateTime<Utc>,
    replaced_by: DateTime<Utc>,
) -> StoreResult<()> {
    let running: Vec<(String, i64)> = sqlx::query_as(RUNNING_OF_JOB)
        .bind(job_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
    for (execution_id, attempts_done) in running {
        let attempt = cronhook_core::Attempt {
            number: u32::try_from(attempts_done + 1)
                .map_err(|_| StoreError::Corrupt(format!("attempt count {attempts_done}")))?,
            started_at: at,
            duration_ms: 0,
            status_code: None,
            error: Some(cronhook_core::AttemptError {
                kind: cronhook_core::ErrorKind::Cancelled,
                message: format!(
                    "cancelled: replaced by the occurrence scheduled for {}",
                    replaced_by.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            }),
            response_headers: Default::default(),
            response_body: None,
            response_body_truncated: false,
            redirect_location: None,
            timing: Default::default(),
        };
        rows::insert_attempts(tx, &[(&execution_id, &attempt)]).await?;
    }
    sqlx::query(concat!(
        "update executions
             set attempt_count = attempt_count + (status = 'running'), status = 'cancelled',
                 finished_at = ?1, duration_ms = ?1 - started_at, locked_by = null,
                 lease_until = null
             where job_id = ?2 and ",
        unfinished!("status")
    ))
    .bind(ms(at))
    .bind(job_id)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The attempts of a job's (`?1`) unfinished executions. With [`DELETE_UNFINISHED_OF_JOB`], what
/// deleting a job removes besides its row: with foreign keys off nothing cascades, and no
/// execution of a deleted job may be claimed, leased or recorded. Both read
/// `executions_unfinished_by_job`, whose where clause they repeat word for word.
const DELETE_UNFINISHED_ATTEMPTS_OF_JOB: &str = concat!(
    "delete from attempts where execution_id in (
         select id from executions where job_id = ?1 and ",
    unfinished!("status"),
    ")"
);

/// A job's (`?1`) unfinished executions; see [`DELETE_UNFINISHED_ATTEMPTS_OF_JOB`].
const DELETE_UNFINISHED_OF_JOB: &str = concat!(
    "delete from executions where job_id = ?1 and ",
    unfinished!("status")
);

/// The occurrences of the job `?1` (of the workspace `?3`) prepared ahead for after `?2` and not
/// started, when its schedule changes (`?4` paused, `?5` its new `next_run_at`): they were
/// prepared for the old one. SQLite reads them from `executions_unfinished_by_job`, the job's
/// few unfinished executions, as `status = 'running'` implies its where clause.
const DISCARD_PREPARED: &str = "delete from executions
     where job_id = ?1 and trigger = 'schedule' and status = 'running'
       and attempt_count = 0 and started_at is null and scheduled_for > ?2
       and exists (select 1 from jobs where id = ?1 and workspace_id = ?3
                   and (?4 or next_run_at is not ?5))";

/// The writer connection while its foreign keys may be off: closed rather than given back to
/// the pool unless [`ForeignKeysOff::restore`] turned them on again, so that a deletion
/// cancelled halfway (its request dropped) or failing cannot leave the writer without them.
struct ForeignKeysOff {
    conn: sqlx::pool::PoolConnection<Sqlite>,
    restored: bool,
}

impl ForeignKeysOff {
    /// Turns foreign keys off on `conn`; from here on it is closed unless restored.
    async fn turn_off(conn: sqlx::pool::PoolConnection<Sqlite>) -> StoreResult<ForeignKeysOff> {
        let mut off = ForeignKeysOff {
            conn,
            restored: false,
        };
        sqlx::query("pragma foreign_keys = off")
            .execute(&mut *off.conn)
            .await
            .map_err(db_err)?;
        Ok(off)
    }

    /// Turns foreign keys on again, so that the connection goes back to the pool; when that
    /// fails, it is closed and the pool opens a new one when next needed.
    async fn restore(mut self) {
        let enforced: Result<i64, sqlx::Error> = async {
            sqlx::query("pragma foreign_keys = on")
                .execute(&mut *self.conn)
                .await?;
            sqlx::query_scalar("pragma foreign_keys")
                .fetch_one(&mut *self.conn)
                .await
        }
        .await;
        self.restored = matches!(enforced, Ok(1));
        if !self.restored {
            tracing::warn!(
                outcome = ?enforced,
                "cannot turn foreign keys back on after deleting a job; closing the connection"
            );
        }
    }
}

impl Drop for ForeignKeysOff {
    fn drop(&mut self) {
        if !self.restored {
            self.conn.close_on_drop();
        }
    }
}

/// Deletes a job's row and its unfinished executions and marks its history for the pruner
/// (`deleted_jobs`), in one transaction on `conn`, whose foreign keys the caller turned off.
async fn delete_job_leaving_history(
    conn: &mut sqlx::pool::PoolConnection<Sqlite>,
    workspace_id: &str,
    id: &str,
) -> StoreResult<bool> {
    let mut tx = sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE")
        .await
        .map_err(db_err)?;
    let done = sqlx::query("delete from jobs where id = ? and workspace_id = ?")
        .bind(id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        tx.rollback().await.map_err(db_err)?;
        return Ok(false);
    }
    for statement in [DELETE_UNFINISHED_ATTEMPTS_OF_JOB, DELETE_UNFINISHED_OF_JOB] {
        sqlx::query(statement)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    sqlx::query("insert into deleted_jobs (job_id, deleted_at) values (?, ?)")
        .bind(id)
        .bind(ms(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

fn execution_conflict(execution: &NewExecution) -> impl FnOnce(&str) -> String {
    move |columns| {
        if columns.ends_with(".id") {
            format!("execution `{}`", execution.id)
        } else {
            format!(
                "an execution of job `{}` scheduled for {}",
                execution.job_id,
                execution.scheduled_for.to_rfc3339()
            )
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(&self.reader)
            .await
            .map_err(db_err)?;
        let expected = Self::expected_schema_version();
        let has_table: bool = sqlx::query_scalar(
            "select exists (select 1 from sqlite_master where type = 'table' and name = '_sqlx_migrations')",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)?;
        let applied: Option<i64> = if has_table {
            sqlx::query_scalar("select max(version) from _sqlx_migrations where success = 1")
                .fetch_one(&self.reader)
                .await
                .map_err(db_err)?
        } else {
            None
        };
        if applied == Some(expected) {
            Ok(())
        } else {
            Err(StoreError::Unavailable(Box::new(SchemaNotCurrent {
                applied,
                expected,
            })))
        }
    }

    async fn create_workspace(&self, workspace: &Workspace) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "insert into workspaces
                (id, slug, signing_secret, previous_signing_secret, signing_secret_rotated_at,
                 created_at)
             values (?, ?, ?, ?, ?, ?)",
        )
        .bind(&workspace.id)
        .bind(&workspace.slug)
        .bind(&workspace.signing_secret)
        .bind(&workspace.previous_signing_secret)
        .bind(opt_ms(workspace.signing_secret_rotated_at))
        .bind(ms(workspace.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            conflict_or_db_err(err, |columns| {
                if columns.ends_with(".id") {
                    format!("workspace id `{}`", workspace.id)
                } else {
                    format!("workspace `{}`", workspace.slug)
                }
            })
        })?;
        commit(tx).await
    }

    async fn workspace(&self, id: &str) -> StoreResult<Option<Workspace>> {
        let row = sqlx::query(concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>> {
        let row = sqlx::query(concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where slug = ?"
        ))
        .bind(slug)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    async fn rotate_signing_secret(
        &self,
        workspace_id: &str,
        new_secret: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Workspace> {
        let mut tx = self.write().await?;
        // In an UPDATE every right-hand side reads the old row, so `previous` gets the old current.
        let row = sqlx::query(concat!(
            "update workspaces
             set previous_signing_secret = signing_secret, signing_secret = ?,
                 signing_secret_rotated_at = ?
             where id = ?
             returning ",
            workspace_columns!()
        ))
        .bind(new_secret)
        .bind(ms(at))
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let workspace = row
            .as_ref()
            .map(workspace_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)?;
        commit(tx).await?;
        Ok(workspace)
    }

    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "insert into api_keys
                (id, workspace_id, name, key_hash, scope, created_at, last_used_at, revoked_at)
             values (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.workspace_id)
        .bind(&key.name)
        .bind(&key.key_hash)
        .bind(key.scope.as_str())
        .bind(ms(key.created_at))
        .bind(opt_ms(key.last_used_at))
        .bind(opt_ms(key.revoked_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            conflict_or_db_err(err, |columns| {
                if columns.ends_with(".id") {
                    format!("API key `{}`", key.id)
                } else {
                    "an API key with this hash".to_owned()
                }
            })
        })?;
        commit(tx).await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(concat!(
            "select ",
            api_key_columns!(),
            " from api_keys where key_hash = ?"
        ))
        .bind(key_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(rows::api_key_from_row).transpose()
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let email = user.email.to_lowercase();
        let mut tx = self.write().await?;
        sqlx::query(
            "insert into users (id, workspace_id, email, password_hash, created_at)
             values (?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.workspace_id)
        .bind(&email)
        .bind(&user.password_hash)
        .bind(ms(user.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            conflict_or_db_err(err, |columns| {
                if columns.ends_with(".id") {
                    format!("user id `{}`", user.id)
                } else {
                    format!("user `{email}`")
                }
            })
        })?;
        commit(tx).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "select id, workspace_id, email, password_hash, created_at from users where email = ?",
        )
        .bind(email.to_lowercase())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(rows::user_from_row).transpose()
    }

    async fn insert_job(&self, job: &Job) -> StoreResult<()> {
        let spec = to_json(&self.seal_spec(job).await?)?;
        let mut tx = self.write().await?;
        sqlx::query(
            "insert into jobs
                (id, workspace_id, name, spec, paused, next_run_at, created_at, updated_at)
             values (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&job.id)
        .bind(&job.workspace_id)
        .bind(&job.spec.name)
        .bind(spec)
        .bind(job.spec.paused)
        .bind(opt_ms(job.next_run_at))
        .bind(ms(job.created_at))
        .bind(ms(job.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| job_conflict(err, job))?;
        commit(tx).await
    }

    async fn job(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "select ",
            job_columns!(),
            " from jobs where id = ? and workspace_id = ?"
        ))
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        let Some(mut job) = row.as_ref().map(job_from_row).transpose()? else {
            return Ok(None);
        };
        self.open_spec(&job.workspace_id, &job.id, Arc::make_mut(&mut job.spec))
            .await?;
        Ok(Some(job))
    }

    async fn list_jobs(&self, workspace_id: &str, page: &PageRequest) -> StoreResult<Page<Job>> {
        let query = match &page.after {
            None => sqlx::query(concat!(
                "select ",
                job_columns!(),
                " from jobs where workspace_id = ? order by id limit ?"
            ))
            .bind(workspace_id),
            Some(after) => sqlx::query(concat!(
                "select ",
                job_columns!(),
                " from jobs where workspace_id = ? and id > ? order by id limit ?"
            ))
            .bind(workspace_id)
            .bind(after.as_str()),
        };
        let rows = query
            .bind(fetch_limit(page))
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        self.open_jobs(&mut jobs).await?;
        Ok(into_page(jobs, page, |job| &job.id))
    }

    async fn update_job(&self, job: &Job) -> StoreResult<()> {
        let spec = to_json(&self.seal_spec(job).await?)?;
        let mut tx = self.write().await?;
        // Before the update, while the stored `next_run_at` is the old one.
        sqlx::query(DISCARD_PREPARED)
            .bind(&job.id)
            .bind(ms(job.updated_at + cronhook_store::PREPARED_DISCARD_MARGIN))
            .bind(&job.workspace_id)
            .bind(job.spec.paused)
            .bind(opt_ms(job.next_run_at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let done = sqlx::query(
            "update jobs set name = ?, spec = ?, paused = ?, next_run_at = ?, updated_at = ?
             where id = ? and workspace_id = ?",
        )
        .bind(&job.spec.name)
        .bind(spec)
        .bind(job.spec.paused)
        .bind(opt_ms(job.next_run_at))
        .bind(ms(job.updated_at))
        .bind(&job.id)
        .bind(&job.workspace_id)
        .execute(&mut *tx)
        .await
        .map_err(|err| job_conflict(err, job))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        commit(tx).await
    }

    async fn pause_job(
        &self,
        workspace_id: &str,
        id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        // The spec's own `paused` is kept in step so the stored json says what the column says.
        let done = sqlx::query(
            "update jobs
             set paused = 1, next_run_at = null, updated_at = ?,
                 spec = json_set(spec, '$.paused', json('true'))
             where id = ? and workspace_id = ?",
        )
        .bind(ms(at))
        .bind(id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await?;
        Ok(done.rows_affected() > 0)
    }

    /// The job's row goes at once with its unfinished executions; the rest of its history stays
    /// behind, out of sight, for the pruner to delete in batches (migration 0017). With
    /// `on delete cascade` the whole history went in this one transaction and held the only
    /// writer for seconds. SQLite cannot drop the foreign key without rebuilding the table, so
    /// enforcement is off for this transaction: a connection setting, which SQLite ignores
    /// inside a transaction and so is switched around it. Switching it expires the writer's
    /// prepared statements, and each is prepared again once, when next used.
    async fn delete_job(&self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        let mut off =
            ForeignKeysOff::turn_off(self.writer.acquire().await.map_err(db_err)?).await?;
        let deleted = delete_job_leaving_history(&mut off.conn, workspace_id, id).await;
        off.restore().await;
        deleted
    }

    async fn due_jobs(&self, until: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Job>> {
        // One read transaction, so the texts fetched are those of the revisions read.
        let mut tx = self.reader.begin().await.map_err(db_err)?;
        let packed = sqlx::query(DUE_JOBS)
            .bind(ms(until))
            .bind(i64::from(limit))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let rows = rows::due_rows(&packed, DUE_JOBS_SLOTS)?;
        let read: Vec<(&str, i64)> = rows.iter().map(rows::DueRow::revision).collect();
        let (cached, uncached) = self.due_specs.lookup(&read);
        let stored: HashMap<String, String> = if uncached.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as(SPECS_OF_JOBS)
                .bind(to_json(&uncached)?)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?
                .into_iter()
                .collect()
        };
        tx.commit().await.map_err(db_err)?;
        let read = rows
            .into_iter()
            .zip(cached)
            .map(|(row, spec)| row.into_job(spec, &stored))
            .collect::<StoreResult<Vec<_>>>()?;
        self.due_specs.open_and_keep(&self.sealer, self, read).await
    }

    /// One SQLite file serves one process, so there is no other scheduler to split the work
    /// with: the due jobs are returned without a claim (and without a write).
    async fn claim_due_jobs(
        &self,
        _lease: &Lease,
        _now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Job>> {
        self.due_jobs(until, limit).await
    }

    async fn earliest_next_run(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let earliest: Option<i64> = sqlx::query_scalar(
            "select min(next_run_at) from jobs where paused = 0 and next_run_at is not null",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)?;
        convert::opt_from_ms(earliest)
    }

    async fn materialize(&self, occurrences: &[Occurrence]) -> StoreResult<Vec<Materialized>> {
        let mut tx = self.write().await?;
        // The common case (overlap allowed, one execution) goes in two statements for the whole
        // batch; per-row statements cost a round trip each and made a burst of 1 000 take
        // ~100 ms.
        let (simple, special): (Vec<usize>, Vec<usize>) =
            (0..occurrences.len()).partition(|&index| occurrences[index].is_simple());
        let mut outcomes = vec![Materialized::Superseded; occurrences.len()];
        if !simple.is_empty() {
            let batch: Vec<&Occurrence> = simple.iter().map(|&index| &occurrences[index]).collect();
            let simple_outcomes = materialize_simple(&mut tx, &batch).await?;
            for (index, outcome) in simple.into_iter().zip(simple_outcomes) {
                outcomes[index] = outcome;
            }
        }
        for index in special {
            let occurrence = &occurrences[index];
            // Compare-and-set on the value the scheduler read: an edit, a pause, a delete or
            // another scheduler leaves it different, and then nothing is written.
            // A job of another workspace than the occurrence's behaves as absent.
            let advanced = sqlx::query(
                "update jobs set next_run_at = ?
                 where id = ? and paused = 0 and next_run_at = ?
                   and workspace_id = ?",
            )
            .bind(opt_ms(occurrence.new_next_run_at))
            .bind(&occurrence.job_id)
            .bind(ms(occurrence.expected_next_run_at))
            .bind(occurrence.workspace_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if advanced == 0 {
                outcomes[index] = Materialized::Superseded;
                continue;
            }
            let skip = occurrence.concurrency == Concurrency::Forbid
                && sqlx::query_scalar::<_, bool>(HAS_UNFINISHED)
                    .bind(&occurrence.job_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if occurrence.concurrency == Concurrency::Replace
                && let Some(first) = occurrence.executions.first()
            {
                cancel_unfinished(
                    &mut tx,
                    &occurrence.job_id,
                    first.run_at,
                    first.scheduled_for,
                )
                .await?;
            }
            let mut inserted = 0;
            for execution in &occurrence.executions {
                inserted += insert_execution_row(&mut tx, INSERT_EXECUTION_ONCE, execution, skip)
                    .await
                    .map_err(|err| conflict_or_db_err(err, execution_conflict(execution)))?;
            }
            outcomes[index] = if inserted == 0 && !occurrence.executions.is_empty() {
                // The occurrence exists already. `next_run_at` stays advanced: rolling it back
                // would hand the scheduler the same occurrence again, forever.
                Materialized::Superseded
            } else if skip {
                Materialized::Skipped
            } else {
                Materialized::Created
            };
        }
        commit(tx).await?;
        Ok(outcomes)
    }

    async fn insert_execution(&self, execution: &NewExecution) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let inserted = insert_execution_row(&mut tx, INSERT_EXECUTION, execution, false)
            .await
            .map_err(|err| conflict_or_db_err(err, execution_conflict(execution)))?;
        if inserted == 0 {
            // No such job in this workspace.
            return Err(StoreError::NotFound);
        }
        commit(tx).await
    }

    async fn claim_executions(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedExecution>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        // Selected first, inside the same immediate transaction, because the old status says
        // whether an attempt was cut (`running` with an expired lease); `returning` would only
        // show the new one.
        let rows = sqlx::query(CLAIM_CANDIDATES)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut claimed = rows
            .iter()
            .map(claimed_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let ids = to_json(&claimed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())?;
        sqlx::query(
            "update executions set status = 'running', locked_by = ?, lease_until = ?
             where id in (select value from json_each(?))",
        )
        .bind(&lease.node_id)
        .bind(ms(lease.until))
        .bind(ids)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await?;
        for execution in &mut claimed {
            self.open_spec(
                &execution.workspace_id,
                &execution.job_id,
                Arc::make_mut(&mut execution.spec),
            )
            .await?;
        }
        Ok(claimed)
    }

    async fn record_attempts(&self, records: &[AttemptRecord]) -> StoreResult<Vec<bool>> {
        // A handful of statements for the whole batch, whatever its size: a statement costs a
        // round trip to SQLite's worker thread, and three per record used more CPU than the
        // requests themselves. Records are applied in order: an execution recorded twice in one
        // batch starts a new wave, which sees what the waves before it wrote.
        let mut tx = self.write().await?;
        let mut accepted = Vec::with_capacity(records.len());
        for wave in cronhook_store::record_waves(records) {
            accepted.extend(record_wave(&mut tx, &records[wave]).await?);
        }
        commit(tx).await?;
        Ok(accepted)
    }

    async fn renew_leases(&self, node_id: &str, until: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let done = sqlx::query(RENEW_LEASES)
            .bind(ms(until))
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        commit(tx).await?;
        Ok(done.rows_affected())
    }

    async fn execution(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Execution>> {
        let Some(row) = sqlx::query(concat!(
            "select ",
            execution_columns!(),
            " from executions where id = ? and workspace_id = ?
              and exists (select 1 from jobs where jobs.id = executions.job_id)"
        ))
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut execution = execution_from_row(&row)?;
        let attempts = sqlx::query(concat!(
            "select ",
            attempt_columns!(),
            " from attempts where execution_id = ? order by number"
        ))
        .bind(id)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        execution.attempts = attempts
            .iter()
            .map(|row| attempt_from_row(row).map(|(_, attempt)| attempt))
            .collect::<StoreResult<_>>()?;
        Ok(Some(execution))
    }

    async fn list_executions(
        &self,
        workspace_id: &str,
        job_id: &str,
        filter: &ExecutionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Execution>> {
        let query = match (&page.after, filter.status) {
            (None, None) => sqlx::query(HISTORY).bind(job_id).bind(workspace_id),
            (Some(after), None) => sqlx::query(HISTORY_AFTER)
                .bind(job_id)
                .bind(workspace_id)
                .bind(after.as_str()),
            (None, Some(status)) => sqlx::query(HISTORY_BY_STATUS.statement(status, false))
                .bind(job_id)
                .bind(workspace_id)
                .bind(enum_text(&status)?),
            (Some(after), Some(status)) => sqlx::query(HISTORY_BY_STATUS.statement(status, true))
                .bind(job_id)
                .bind(workspace_id)
                .bind(after.as_str())
                .bind(enum_text(&status)?),
        };
        let Some(mut tx) = self.read_job_history(workspace_id, job_id).await? else {
            return Ok(into_page(Vec::new(), page, |execution: &Execution| {
                &execution.id
            }));
        };
        let rows = query
            .bind(fetch_limit(page))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let executions = rows
            .iter()
            .map(execution_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut page = into_page(executions, page, |execution| &execution.id);
        if page.items.is_empty() {
            return Ok(page);
        }
        // The page's attempts in one query.
        let ids = to_json(&page.items.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())?;
        let attempt_rows = sqlx::query(concat!(
            "select ",
            attempt_columns!(),
            " from attempts where execution_id in (select value from json_each(?))
              order by execution_id, number"
        ))
        .bind(ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let mut attempts: HashMap<String, Vec<_>> = HashMap::new();
        for row in &attempt_rows {
            let (execution_id, attempt) = attempt_from_row(row)?;
            attempts.entry(execution_id).or_default().push(attempt);
        }
        for execution in &mut page.items {
            execution.attempts = attempts.remove(&execution.id).unwrap_or_default();
        }
        Ok(page)
    }
}

fn job_conflict(err: sqlx::Error, job: &Job) -> StoreError {
    conflict_or_db_err(err, |columns| {
        if columns.ends_with(".id") {
            format!("job `{}`", job.id)
        } else {
            format!("a job named `{}`", job.spec.name)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_fall_a_quarter_second_past_the_whole_and_the_half_second() {
        let at = |millis: u64| std::time::UNIX_EPOCH + Duration::from_millis(millis);
        let second = 1_795_855_616_000;
        // (now, wait until the next checkpoint) in milliseconds into a second
        for (now, wait) in [
            (0, 250),
            (1, 249),
            (249, 1),
            (250, 500),
            (251, 499),
            (500, 250),
            (749, 1),
            (750, 500),
            (999, 251),
        ] {
            assert_eq!(
                until_next_checkpoint(at(second + now)),
                Duration::from_millis(wait),
                "{now} ms into the second"
            );
        }
        // A clock before the epoch is treated as the epoch, not a panic.
        assert_eq!(
            until_next_checkpoint(std::time::UNIX_EPOCH - Duration::from_secs(1)),
            Duration::from_millis(250)
        );
    }

    /// What `explain_sql` returns in `column`, one line per row, with `params` parameters bound
    /// (zeros: the statement is prepared, not run).
    async fn explain(
        store: &SqliteStore,
        explain_sql: String,
        params: usize,
        column: &str,
    ) -> String {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(explain_sql));
        for _ in 0..params {
            query = query.bind(0_i64);
        }
        let rows = query.fetch_all(&store.reader).await.expect("explain");
        rows.iter()
            .map(|row| sqlx::Row::get::<String, _>(row, column))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The plan SQLite picks for `sql`, one line per step.
    async fn plan(store: &SqliteStore, sql: &str, params: usize) -> String {
        explain(store, format!("explain query plan {sql}"), params, "detail").await
    }

    /// The program SQLite runs for `sql`, one opcode per line.
    async fn opcodes(store: &SqliteStore, sql: &str, params: usize) -> String {
        explain(store, format!("explain {sql}"), params, "opcode").await
    }

    async fn fresh() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::TempDir::new().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = SqliteStore::open(&url).await.expect("open");
        store.migrate().await.expect("migrate");
        (store, dir)
    }

    #[tokio::test]
    async fn due_jobs_read_the_partial_index_in_order() {
        let (store, _dir) = fresh().await;
        // Its columns are `job_columns!()`'s with the revision where the spec is, in the order
        // `rows::DueRow` reads them; each of its arrays packs them.
        assert_eq!(due_columns!(), job_columns!().replace("spec", "revision"));
        assert_eq!(
            DUE_JOBS
                .matches(concat!("json_array(", due_columns!(), ")"))
                .count(),
            DUE_JOBS_SLOTS
        );
        let due = plan(&store, DUE_JOBS, 2).await;
        assert!(due.contains("USING INDEX jobs_due"), "{due}");
        assert!(!due.contains("TEMP B-TREE"), "no sort: {due}");
        // The texts of the specs not cached, each by its key.
        let specs = plan(&store, SPECS_OF_JOBS, 1).await;
        assert!(specs.contains("sqlite_autoindex_jobs_1 (id=?)"), "{specs}");
        assert!(!specs.contains("SCAN jobs"), "{specs}");
    }

    /// The arm of a history read that takes the executions not yet filed: a range of the
    /// time-first occurrence key from the filing mark (and up to a cursor).
    const RECENT: &str = "USING INDEX sqlite_autoindex_executions_2 (scheduled_for>?";
    /// The arm that takes the filed ones: `job_history`'s key, below the mark or a cursor, each
    /// execution then looked up by its occurrence.
    const FILED: &str = "SEARCH h USING PRIMARY KEY (job_id=? AND scheduled_for";
    const BY_OCCURRENCE: &str = "sqlite_autoindex_executions_2 (scheduled_for=? AND job_id=?)";

    #[tokio::test]
    async fn histories_read_the_filed_and_the_recent_executions_in_order() {
        let (store, _dir) = fresh().await;
        for (sql, params, recent) in [
            (HISTORY, 3, "(scheduled_for>?)"),
            (HISTORY_AFTER, 4, "(scheduled_for>? AND scheduled_for<?)"),
            (HISTORY_WITH_STATUS, 4, "(scheduled_for>?)"),
            (
                HISTORY_WITH_STATUS_AFTER,
                5,
                "(scheduled_for>? AND scheduled_for<?)",
            ),
            (sessions::EXECUTION_POINTS, 4, "(scheduled_for>?)"),
        ] {
            let plan = plan(&store, sql, params).await;
            assert!(plan.contains("MERGE (UNION ALL)"), "{sql}: {plan}");
            assert!(
                plan.contains(&format!(
                    "USING INDEX sqlite_autoindex_executions_2 {recent}"
                )),
                "{sql}: {plan}"
            );
            assert!(plan.contains(FILED), "{sql}: {plan}");
            assert!(plan.contains(BY_OCCURRENCE), "{sql}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "no sort: {sql}: {plan}");
            assert!(!plan.contains("SCAN"), "{sql}: {plan}");
        }
    }

    /// A pass looks each execution it files up by its occurrence (one deleted since it was
    /// read is not filed), in the order it was given.
    #[tokio::test]
    async fn filing_looks_each_execution_up_by_its_occurrence() {
        let (store, _dir) = fresh().await;
        let sql = FILE_HISTORY.sql(4, false);
        let filing = plan(&store, &sql, 8).await;
        assert!(filing.contains(BY_OCCURRENCE), "{filing}");
        assert!(!filing.contains("SCAN e"), "{filing}");
        assert!(!filing.contains("TEMP B-TREE"), "no sort: {filing}");
        // A round reads the stretch in time order from the key itself.
        let round = plan(&store, FILING_ROUND, 3).await;
        assert!(
            round.contains(
                "USING COVERING INDEX sqlite_autoindex_executions_2 (scheduled_for>? AND scheduled_for<?)"
            ),
            "{round}"
        );
        assert!(!round.contains("TEMP B-TREE"), "no sort: {round}");
    }

    /// A history of a rare status reads only that status's executions of the job: the
    /// finished ones that did not succeed in order, the unfinished ones sorted (a job has few).
    #[tokio::test]
    async fn histories_of_rare_statuses_read_their_partial_indexes() {
        let (store, _dir) = fresh().await;
        let unsuccessful = "USING INDEX executions_unsuccessful_by_job (job_id=? AND status=?)";
        let unsuccessful_below = "USING INDEX executions_unsuccessful_by_job (job_id=? AND status=? AND scheduled_for<?)";
        let unfinished = "USING INDEX executions_unfinished_by_job (job_id=?)";
        for (status, after_cursor, range, sorted) in [
            (ExecutionStatus::Failed, false, unsuccessful, false),
            (ExecutionStatus::Skipped, true, unsuccessful_below, false),
            (ExecutionStatus::Running, false, unfinished, true),
            (ExecutionStatus::Retrying, true, unfinished, true),
        ] {
            let sql = HISTORY_BY_STATUS.statement(status, after_cursor);
            let plan = plan(&store, sql, 4 + usize::from(after_cursor)).await;
            assert!(plan.contains(range), "{sql}: {plan}");
            assert_eq!(plan.contains("TEMP B-TREE"), sorted, "{sql}: {plan}");
            assert!(!plan.contains(FILED), "{sql}: {plan}");
        }
    }

    #[tokio::test]
    async fn streak_checks_read_the_jobs_in_a_failure_streak() {
        let (store, _dir) = fresh().await;
        let plan = plan(&store, SUCCEEDED_IN_FAILURE_STREAK, 1).await;
        // The scalar subquery is worked out once; while it finds no job, each row of the batch
        // is passed over before the executions are searched.
        assert!(plan.contains("SCALAR SUBQUERY"), "{plan}");
        assert_eq!(
            plan.matches("SCAN jobs USING INDEX jobs_in_failure_streak")
                .count(),
            2,
            "both subqueries: {plan}"
        );
        assert!(
            plan.contains("SEARCH e USING INDEX sqlite_autoindex_executions_1 (id=?)"),
            "{plan}"
        );
        assert!(
            !plan.contains("SCAN jobs\n") && !plan.contains("SEARCH j"),
            "{plan}"
        );
    }

    /// Claims run every second inside a write transaction: each status is read up to now, not
    /// every waiting retry, and nothing reads the history.
    #[tokio::test]
    async fn claims_read_only_unfinished_executions_up_to_now() {
        let (store, _dir) = fresh().await;
        let plan = plan(&store, CLAIM_CANDIDATES, 2).await;
        assert!(
            plan.contains("SEARCH e USING INDEX executions_claimable (status=? AND run_at<?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN e"), "{plan}");
    }

    #[tokio::test]
    async fn overlap_checks_read_only_the_unfinished_executions_of_the_job() {
        let (store, _dir) = fresh().await;
        for sql in [HAS_UNFINISHED, RUNNING_OF_JOB] {
            let plan = plan(&store, sql, 1).await;
            assert!(
                plan.contains("executions_unfinished_by_job"),
                "{sql}: {plan}"
            );
        }
    }

    /// Renewals run every third of a lease inside a write transaction, and the history grows
    /// without bound: a scan of `executions` there stalled every other write for as long as it
    /// took.
    #[tokio::test]
    async fn lease_renewals_and_releases_read_only_unfinished_executions() {
        let (store, _dir) = fresh().await;
        for (sql, params, range) in [
            (RENEW_LEASES, 2, "(status=? AND run_at<?)"),
            (maintenance::RELEASE_RUNNING, 2, "(status=?)"),
            (maintenance::RELEASE_WAITING, 1, "(status=?)"),
        ] {
            let plan = plan(&store, sql, params).await;
            assert!(
                plan.contains(&format!("USING INDEX executions_claimable {range}")),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("SCAN"), "{sql}: {plan}");
        }
    }

    #[tokio::test]
    async fn pruning_by_age_reads_only_finished_executions_in_order() {
        let (store, _dir) = fresh().await;
        let plan = plan(&store, maintenance::PRUNE_BY_AGE, 3).await;
        assert!(
            plan.contains("USING INDEX executions_finished (finished_at<?)"),
            "up to the later cut-off: {plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
    }

    #[tokio::test]
    async fn pruning_by_keep_last_reads_the_history_in_order() {
        let (store, _dir) = fresh().await;
        let jobs = plan(&store, maintenance::JOBS_KEEPING_LAST, 2).await;
        assert!(
            jobs.contains("SEARCH jobs USING INDEX jobs_keeping_last (id>?)"),
            "the jobs with a keep_last, from the cursor on: {jobs}"
        );
        assert!(!jobs.contains("TEMP B-TREE"), "no sort: {jobs}");
        for (sql, params, order) in [
            (
                maintenance::KEEP_LAST_BOUNDARY,
                2,
                "the newest kept, newest first",
            ),
            (
                maintenance::PRUNE_BEYOND_KEEP_LAST,
                3,
                "the older ones, oldest first",
            ),
        ] {
            let plan = plan(&store, sql, params).await;
            assert!(plan.contains("MERGE (UNION ALL)"), "{order}: {plan}");
            assert!(plan.contains(RECENT), "{order}: {plan}");
            assert!(plan.contains(FILED), "{order}: {plan}");
            assert!(plan.contains(BY_OCCURRENCE), "{order}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "no sort: {order}: {plan}");
            assert!(!plan.contains("SCAN executions"), "{order}: {plan}");
        }
    }

    /// A job's revision moves with every write of its spec, name or paused flag, by whatever
    /// statement, and not when the scheduler advances `next_run_at`: the due-jobs read keys the
    /// opened specs by it.
    #[tokio::test]
    async fn a_jobs_revision_moves_with_its_spec_and_not_with_its_schedule() {
        let (store, _dir) = fresh().await;
        for sql in [
            "insert into workspaces (id, slug, signing_secret, created_at) values ('w', 'w', 's', 0)",
            "insert into jobs (id, workspace_id, name, spec, next_run_at, created_at, updated_at)
             values ('job_1', 'w', 'one', '{}', 1000, 0, 0)",
        ] {
            sqlx::query(sql).execute(&store.writer).await.expect(sql);
        }
        let revision = || async {
            sqlx::query_scalar::<_, i64>("select revision from jobs where id = 'job_1'")
                .fetch_one(&store.reader)
                .await
                .expect("revision")
        };
        assert_eq!(revision().await, 0);
        let steps = [
            // The scheduler's own writes: the schedule, and nothing the spec holds.
            ("update jobs set next_run_at = 2000 where id = 'job_1'", 0),
            (
                "update jobs set next_run_at = 3000, updated_at = 5 where id = 'job_1'",
                0,
            ),
            ("update jobs set failure_streak = 2 where id = 'job_1'", 0),
            // An edit, even one that leaves the text as it was.
            ("update jobs set spec = '{\"x\": 1}' where id = 'job_1'", 1),
            ("update jobs set spec = spec where id = 'job_1'", 2),
            ("update jobs set name = 'renamed' where id = 'job_1'", 3),
            // A pause, as the 410 path writes it: flag and text in one statement, one move.
            (
                "update jobs set paused = 1, next_run_at = null,
                     spec = json_set(spec, '$.paused', json('true')) where id = 'job_1'",
                4,
            ),
        ];
        for (sql, expected) in steps {
            sqlx::query(sql).execute(&store.writer).await.expect(sql);
            assert_eq!(revision().await, expected, "{sql}");
        }
    }

    /// Jobs with a `keep_last` are read a page at a time: a pass reaches jobs past the first
    /// page, and a batch that fills up in a later page resumes there.
    #[tokio::test]
    async fn keep_last_pruning_reads_the_jobs_keeping_last_page_after_page() {
        let (store, _dir) = fresh().await;
        let jobs = i64::from(cronhook_store::KEEP_LAST_JOBS_PAGE) * 2 + 5;
        for sql in [
            "insert into workspaces (id, slug, signing_secret, created_at) values ('w', 'w', 's', 0)",
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < ?1)
             insert into jobs (id, workspace_id, name, spec, created_at, updated_at)
             select printf('job_%04d', i), 'w', printf('job_%04d', i), '{\"keep_last\": 1}', 0, 0
             from n",
            "with recursive n(i) as (select 0 union all select i + 1 from n where i < 2)
             insert into executions
                 (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             select j.id || '_' || n.i, 'w', j.id, n.i, 'schedule', 'succeeded', n.i
             from jobs j, n",
        ] {
            sqlx::query(sql)
                .bind(jobs)
                .execute(&store.writer)
                .await
                .expect(sql);
        }
        let policy = cronhook_store::RetentionPolicy {
            succeeded_for: chrono::TimeDelta::days(1),
            failed_for: chrono::TimeDelta::days(1),
        };
        let prune = |batch| {
            cronhook_store::MaintenanceStore::prune_executions(
                &store,
                &policy,
                DateTime::UNIX_EPOCH,
                batch,
            )
        };
        let first_page = u64::from(cronhook_store::KEEP_LAST_JOBS_PAGE);
        // Two older ones each: the first page's jobs and one of the second.
        assert_eq!(
            prune(2 * u32::try_from(first_page + 1).expect("a size"))
                .await
                .expect("prune"),
            2 * (first_page + 1)
        );
        let total = 2 * u64::try_from(jobs).expect("a size");
        assert_eq!(
            prune(u32::try_from(total).expect("a size"))
                .await
                .expect("prune"),
            total - 2 * (first_page + 1),
            "the rest, resumed where the first batch stopped"
        );
        let left: i64 = sqlx::query_scalar("select count(*) from executions")
            .fetch_one(&store.writer)
            .await
            .expect("count");
        assert_eq!(left, jobs, "each job keeps its newest");
    }

    /// What a job's deletion deletes at once, inside the writer's transaction, reads only that
    /// job's unfinished executions; what the pruner purges later reads the job's history.
    #[tokio::test]
    async fn deleting_a_job_reads_only_its_unfinished_executions_and_purging_its_history() {
        let (store, _dir) = fresh().await;
        for (sql, params, index) in [
            (
                DELETE_UNFINISHED_ATTEMPTS_OF_JOB,
                1,
                "USING INDEX executions_unfinished_by_job (job_id=?)",
            ),
            (
                DELETE_UNFINISHED_OF_JOB,
                1,
                "USING INDEX executions_unfinished_by_job (job_id=?)",
            ),
            (
                maintenance::PURGE_DELETED_JOB,
                2,
                // And the executions not filed yet from the recent range of the time-first key.
                FILED,
            ),
        ] {
            let plan = plan(&store, sql, params).await;
            assert!(plan.contains(index), "{sql}: {plan}");
            assert!(!plan.contains("SCAN executions"), "{sql}: {plan}");
        }
    }

    /// 2100-01-01 in unix milliseconds: after the filing marks a fresh store starts with (the
    /// wall clock when it was migrated), so nothing scheduled from here on is filed until a
    /// test files it.
    const LATER: i64 = 4_102_444_800_000;

    /// A workspace `w` and jobs `job_a` (with a `keep_last` of `keep_last`) and `job_b`, each
    /// with an execution every second for 30 s from [`LATER`] (ids `a_00`…, `b_00`…; every
    /// fifth failed), and one attempt each.
    async fn two_jobs_with_history(store: &SqliteStore, keep_last: u32) {
        for sql in [
            "insert into workspaces (id, slug, signing_secret, created_at) values ('w', 'w', 's', 0)",
            "insert into jobs (id, workspace_id, name, spec, created_at, updated_at)
             values ('job_a', 'w', 'a', json_object('keep_last', ?2), 0, 0),
                    ('job_b', 'w', 'b', '{}', 0, 0)",
            "with recursive n(i) as (select 0 union all select i + 1 from n where i < 29)
             insert into executions
                 (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, finished_at)
             select substr(j.id, 5) || printf('_%02d', n.i), 'w', j.id, ?1 + n.i * 1000,
                    'schedule', iif(n.i % 5 = 0, 'failed', 'succeeded'), ?1 + n.i * 1000,
                    ?1 + n.i * 1000 + 10
             from n, jobs j order by n.i, j.id",
            "insert into attempts (execution_id, number, started_at, duration_ms,
                                   response_headers, response_body_truncated, timing)
             select id, 1, scheduled_for, 10, '{}', 0, '{\"total_ms\": 10}' from executions",
        ] {
            sqlx::query(sql)
                .bind(LATER)
                .bind(keep_last)
                .execute(&store.writer)
                .await
                .expect(sql);
        }
    }

    /// `job_a`'s execution ids newest first, as a scan of the table reads them.
    async fn scanned(store: &SqliteStore, status: Option<&str>, since: i64) -> Vec<String> {
        sqlx::query_scalar(
            "select id from executions not indexed
             where job_id = 'job_a' and (?1 is null or status = ?1) and scheduled_for >= ?2
             order by scheduled_for desc",
        )
        .bind(status)
        .bind(since)
        .fetch_all(&store.reader)
        .await
        .expect("scan")
    }

    /// `job_a`'s history as the store pages it, `limit` at a time.
    async fn paged(
        store: &SqliteStore,
        status: Option<ExecutionStatus>,
        limit: u32,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_executions(
                    "w",
                    "job_a",
                    &ExecutionFilter { status },
                    &PageRequest { limit, after },
                )
                .await
                .expect("a page");
            ids.extend(page.items.into_iter().map(|execution| execution.id));
            match page.next_after {
                Some(next) => after = Some(next),
                None => return ids,
            }
        }
    }

    /// The history pages, the chart's points and the entries of `job_history` agree with a scan
    /// of the table whatever the filing marks say.
    async fn assert_history_reads_as_scanned(store: &SqliteStore, when: &str) {
        use cronhook_store::HistoryStore as _;
        for limit in [1, 4, 100] {
            assert_eq!(
                paged(store, None, limit).await,
                scanned(store, None, i64::MIN).await,
                "{when}: pages of {limit}"
            );
        }
        assert_eq!(
            paged(store, Some(ExecutionStatus::Succeeded), 3).await,
            scanned(store, Some("succeeded"), i64::MIN).await,
            "{when}: succeeded"
        );
        assert_eq!(
            paged(store, Some(ExecutionStatus::Failed), 2).await,
            scanned(store, Some("failed"), i64::MIN).await,
            "{when}: failed"
        );
        let since = LATER + 12_000;
        let points = store
            .execution_points(
                "w",
                "job_a",
                Some(DateTime::from_timestamp_millis(since).expect("an instant")),
                100,
            )
            .await
            .expect("points");
        assert_eq!(
            points.into_iter().map(|point| point.id).collect::<Vec<_>>(),
            scanned(store, None, since).await,
            "{when}: points since"
        );
        // Below `upto` every execution is filed, and nothing filed is missing from the table.
        let (unfiled, dangling): (i64, i64) = sqlx::query_as(
            "select
                (select count(*) from executions e where e.scheduled_for < (select upto from history_filed)
                   and not exists (select 1 from job_history h
                                   where h.job_id = e.job_id and h.scheduled_for = e.scheduled_for)),
                (select count(*) from job_history h where not exists (
                   select 1 from executions e
                   where e.job_id = h.job_id and e.scheduled_for = h.scheduled_for))",
        )
        .fetch_one(&store.reader)
        .await
        .expect("check job_history");
        assert_eq!((unfiled, dangling), (0, 0), "{when}");
    }

    async fn marks(store: &SqliteStore) -> (i64, i64) {
        sqlx::query_as("select upto, filing_upto from history_filed")
            .fetch_one(&store.reader)
            .await
            .expect("marks")
    }

    #[tokio::test]
    async fn a_history_reads_the_same_filed_or_not() {
        let (store, _dir) = fresh().await;
        two_jobs_with_history(&store, 100).await;
        assert_history_reads_as_scanned(&store, "nothing filed").await;
        for (until, found) in [
            (LATER + 7_500, 16),
            (LATER + 20_000, 24),
            (LATER + 60_000, 20),
        ] {
            let at = DateTime::from_timestamp_millis(until).expect("an instant");
            assert_eq!(
                store.file_history(at).await.expect("file"),
                found,
                "{until}"
            );
            assert_eq!(marks(&store).await, (until, until));
            assert_history_reads_as_scanned(&store, &format!("filed up to {until}")).await;
        }
        // An earlier instant moves neither mark back.
        let earlier = DateTime::from_timestamp_millis(LATER).expect("an instant");
        assert_eq!(store.file_history(earlier).await.expect("file"), 0);
        assert_eq!(marks(&store).await, (LATER + 60_000, LATER + 60_000));

        // An execution that arrives below the marks (caught up after downtime) is filed at once,
        // and a deleted one's entry goes with it (its attempts by cascade).
        for sql in [
            "insert into executions (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             values ('a_late', 'w', 'job_a', ?1 - 500, 'schedule', 'succeeded', ?1)",
            "delete from executions where id in ('a_03', 'a_29')",
        ] {
            sqlx::query(sql)
                .bind(LATER)
                .execute(&store.writer)
                .await
                .expect(sql);
        }
        assert_history_reads_as_scanned(&store, "a late execution, two deleted").await;
        assert_eq!(
            paged(&store, None, 100).await.last().map(String::as_str),
            Some("a_late")
        );
        let attempts: i64 = sqlx::query_scalar(
            "select count(*) from attempts where execution_id in ('a_03', 'a_29')",
        )
        .fetch_one(&store.reader)
        .await
        .expect("count");
        assert_eq!(attempts, 0);
    }

    /// A pass stopped after raising `filing_upto` (the process killed) leaves reads right, and
    /// the next pass completes it.
    #[tokio::test]
    async fn a_pass_stopped_halfway_is_completed_by_the_next() {
        let (store, _dir) = fresh().await;
        two_jobs_with_history(&store, 100).await;
        let at = |millis| DateTime::from_timestamp_millis(millis).expect("an instant");
        store.file_history(at(LATER + 10_000)).await.expect("file");
        // What a pass does first; then it read and filed part of the stretch, and stopped.
        for sql in [
            "update history_filed set filing_upto = ?1 + 20000",
            "insert into job_history (job_id, scheduled_for)
             select job_id, scheduled_for from executions
             where scheduled_for >= ?1 + 10000 and scheduled_for < ?1 + 14000 and job_id = 'job_b'",
            "insert into executions (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             values ('a_new', 'w', 'job_a', ?1 + 15500, 'manual', 'succeeded', ?1)",
        ] {
            sqlx::query(sql)
                .bind(LATER)
                .execute(&store.writer)
                .await
                .expect(sql);
        }
        assert_eq!(marks(&store).await, (LATER + 10_000, LATER + 20_000));
        assert_history_reads_as_scanned(&store, "a pass stopped halfway").await;
        // The next pass (after a restart, the clock a little behind) files from `upto` on.
        assert_eq!(
            store.file_history(at(LATER + 18_000)).await.expect("file"),
            21,
            "ten seconds of both jobs and the manual run"
        );
        assert_eq!(marks(&store).await, (LATER + 20_000, LATER + 20_000));
        assert_history_reads_as_scanned(&store, "completed").await;
    }

    /// `migrate` starts the filing loop: an execution scheduled after the migration is filed
    /// by a pass within a few intervals, without anyone asking.
    #[tokio::test]
    async fn the_history_is_filed_in_the_background() {
        let (store, _dir) = fresh().await;
        two_jobs_with_history(&store, 100).await;
        let (migrated, _) = marks(&store).await;
        sqlx::query(
            "insert into executions (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             values ('a_now', 'w', 'job_a', ?1, 'manual', 'succeeded', ?1)",
        )
        .bind(migrated)
        .execute(&store.writer)
        .await
        .expect("insert");
        let filed = || async {
            sqlx::query_scalar::<_, bool>(
                "select exists (select 1 from job_history where job_id = 'job_a' and scheduled_for = ?1)
                    and (select upto from history_filed) > ?1",
            )
            .bind(migrated)
            .fetch_one(&store.reader)
            .await
            .expect("read")
        };
        assert!(!filed().await, "not filed by its insert: it is at the mark");
        let deadline = std::time::Instant::now() + 4 * FILING_INTERVAL;
        while !filed().await {
            assert!(
                std::time::Instant::now() < deadline,
                "not filed within {:?}: {:?}",
                4 * FILING_INTERVAL,
                marks(&store).await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Nothing else moved: the executions of 2100 are after the wall clock.
        assert_history_reads_as_scanned(&store, "filed in the background").await;
        store.close().await;
    }

    /// A pass reads a long stretch in rounds of whole instants, however small a round (one
    /// smaller than an instant takes the instant whole), and files it all.
    #[tokio::test]
    async fn a_long_stretch_is_filed_in_rounds_of_whole_instants() {
        for round_rows in [1, 2, 3, 7, 1_000] {
            let (store, _dir) = fresh().await;
            two_jobs_with_history(&store, 100).await;
            let until = LATER + 29_500;
            let found = file_history(&store.writer, &store.reader, until, round_rows)
                .await
                .expect("file");
            assert_eq!(found, 60, "rounds of {round_rows}");
            assert_eq!(marks(&store).await, (until, until));
            assert_history_reads_as_scanned(&store, &format!("rounds of {round_rows}")).await;
        }
    }

    /// Pruning by `keep_last` and purging a deleted job take filed and unfiled executions
    /// alike.
    #[tokio::test]
    async fn pruning_and_purging_take_filed_and_unfiled_executions() {
        use cronhook_store::MaintenanceStore as _;
        let (store, _dir) = fresh().await;
        two_jobs_with_history(&store, 3).await;
        store
            .file_history(DateTime::from_timestamp_millis(LATER + 15_500).expect("an instant"))
            .await
            .expect("file");
        let policy = cronhook_store::RetentionPolicy {
            succeeded_for: chrono::TimeDelta::days(365_000),
            failed_for: chrono::TimeDelta::days(365_000),
        };
        let now = DateTime::from_timestamp_millis(LATER + 60_000).expect("an instant");
        // job_a keeps its 3 newest (all unfiled); the 16 filed and 11 unfiled older go, oldest
        // first, 10 a batch.
        let mut pruned = 0;
        for _ in 0..4 {
            pruned += store
                .prune_executions(&policy, now, 10)
                .await
                .expect("prune");
        }
        assert_eq!(pruned, 27);
        assert_eq!(
            scanned(&store, None, i64::MIN).await,
            ["a_29", "a_28", "a_27"]
        );
        assert_history_reads_as_scanned(&store, "pruned to the newest 3").await;

        // job_b's history (16 filed, 14 not) is purged after its deletion, and nothing of it
        // stays in `job_history`.
        assert!(store.delete_job("w", "job_b").await.expect("delete"));
        let mut purged = 0;
        for _ in 0..4 {
            purged += store
                .prune_executions(&policy, now, 8)
                .await
                .expect("prune");
        }
        assert_eq!(purged, 30);
        let left: (i64, i64, i64) = sqlx::query_as(
            "select (select count(*) from executions where job_id = 'job_b'),
                    (select count(*) from job_history where job_id = 'job_b'),
                    (select count(*) from deleted_jobs)",
        )
        .fetch_one(&store.reader)
        .await
        .expect("count");
        assert_eq!(left, (0, 0, 0));
    }

    /// The migration that keys executions time first keeps every execution and attempt of the
    /// jobs there are, files them, and drops what deleted jobs left behind (bound for the
    /// pruner anyway).
    #[tokio::test]
    async fn keying_executions_time_first_keeps_their_history() {
        let dir = tempfile::TempDir::new().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let store = SqliteStore::open(&url).await.expect("open");
        MIGRATOR
            .run_to(18, &store.writer)
            .await
            .expect("migrate to 18");
        for sql in [
            "insert into workspaces (id, slug, signing_secret, created_at) values ('w', 'w', 's', 0)",
            "insert into jobs (id, workspace_id, name, spec, created_at, updated_at)
             values ('job_a', 'w', 'a', '{}', 0, 0), ('job_gone', 'w', 'g', '{}', 0, 0)",
            "with recursive n(i) as (select 0 union all select i + 1 from n where i < 9)
             insert into executions
                 (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             select substr(j.id, 5) || '_' || n.i, 'w', j.id, 1000 * n.i, 'schedule',
                    'succeeded', 1000 * n.i
             from n, jobs j",
            // One prepared ahead, past the wall clock.
            "insert into executions (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             values ('a_next', 'w', 'job_a', ?1, 'schedule', 'queued', ?1)",
            "insert into attempts (execution_id, number, started_at, duration_ms,
                                   response_headers, response_body_truncated, timing)
             select id, 1, scheduled_for, 10, '{}', 0, '{\"total_ms\": 10}' from executions",
            // Deleted as `delete_job` deletes, its history left for the pruner.
            "pragma foreign_keys = off",
            "delete from jobs where id = 'job_gone'",
            "insert into deleted_jobs (job_id, deleted_at) values ('job_gone', 0)",
            "pragma foreign_keys = on",
        ] {
            sqlx::query(sql)
                .bind(LATER)
                .execute(&store.writer)
                .await
                .expect(sql);
        }
        store.migrate().await.expect("migrate");
        let counts: (i64, i64, i64, i64) = sqlx::query_as(
            "select (select count(*) from executions), (select count(*) from attempts),
                    (select count(*) from job_history), (select count(*) from deleted_jobs)",
        )
        .fetch_one(&store.reader)
        .await
        .expect("count");
        assert_eq!(
            counts,
            (11, 11, 10, 0),
            "job_a's, the one ahead not filed yet"
        );
        let violations: Vec<(String, i64, String, i64)> =
            sqlx::query_as("pragma foreign_key_check")
                .fetch_all(&store.writer)
                .await
                .expect("check");
        assert!(violations.is_empty(), "{violations:?}");
        let ids = {
            let page = store
                .list_executions(
                    "w",
                    "job_a",
                    &ExecutionFilter { status: None },
                    &PageRequest {
                        limit: 3,
                        after: None,
                    },
                )
                .await
                .expect("a page");
            assert_eq!(page.items[1].attempts.len(), 1, "attempts kept");
            page.items.into_iter().map(|e| e.id).collect::<Vec<_>>()
        };
        assert_eq!(ids, ["a_next", "a_9", "a_8"]);
        // Deleting an execution still deletes its attempts: the rebuilt `attempts` refers to the
        // rebuilt `executions`.
        sqlx::query("delete from executions where id = 'a_9'")
            .execute(&store.writer)
            .await
            .expect("delete");
        let attempts: i64 =
            sqlx::query_scalar("select count(*) from attempts where execution_id = 'a_9'")
                .fetch_one(&store.reader)
                .await
                .expect("count");
        assert_eq!(attempts, 0);
        // The occurrence key is time first now: one occurrence, one execution.
        let twice = sqlx::query(
            "insert into executions (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             values ('a_again', 'w', 'job_a', 8000, 'schedule', 'queued', 0)",
        )
        .execute(&store.writer)
        .await;
        assert!(twice.is_err(), "{twice:?}");
    }

    /// Editing a job reads only its unfinished executions for the occurrences prepared for
    /// its old schedule: the occurrence key is time first, and no index holds all of a job's.
    #[tokio::test]
    async fn editing_a_job_reads_only_its_unfinished_executions() {
        let (store, _dir) = fresh().await;
        let plan = plan(&store, DISCARD_PREPARED, 5).await;
        assert!(
            plan.contains("USING INDEX executions_unfinished_by_job (job_id=?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN executions"), "{plan}");
    }

    /// A deletion dropped while foreign keys are off (its request gone) does not give the
    /// writer back without them: the pool opens a new connection.
    #[tokio::test]
    async fn a_writer_left_without_foreign_keys_is_closed_not_reused() {
        let (store, _dir) = fresh().await;
        let off = ForeignKeysOff::turn_off(store.writer.acquire().await.expect("acquire"))
            .await
            .expect("off");
        drop(off);
        assert_eq!(pragma(&store.writer, "pragma foreign_keys").await, "1");
    }

    /// Deleting a job leaves its finished executions and their attempts on disk, out of sight,
    /// with foreign keys enforced again on the writer afterwards; pruning deletes them in
    /// batches and then forgets the job.
    #[tokio::test]
    async fn a_deleted_jobs_history_is_left_for_the_pruner() {
        let (store, _dir) = fresh().await;
        let count = |sql: &'static str| {
            let writer = store.writer.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&writer)
                    .await
                    .expect("count")
            }
        };
        for sql in [
            "insert into workspaces (id, slug, signing_secret, created_at) values ('w', 'w', 's', 0)",
            "insert into jobs (id, workspace_id, name, spec, created_at, updated_at)
             values ('doomed', 'w', 'doomed', '{}', 0, 0), ('kept', 'w', 'kept', '{}', 0, 0)",
            "with recursive n(i) as (select 0 union all select i + 1 from n where i < 6)
             insert into executions
                 (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             select 'x' || i, 'w', 'doomed', i, 'schedule',
                    case i when 5 then 'queued' when 6 then 'retrying' else 'succeeded' end, i
             from n
             union all select 'kept', 'w', 'kept', 0, 'schedule', 'succeeded', 0",
            "insert into attempts
                 (execution_id, number, started_at, duration_ms, response_headers,
                  response_body_truncated, timing)
             select id, 1, 0, 1, '{}', 0, '{}' from executions",
        ] {
            sqlx::query(sql).execute(&store.writer).await.expect(sql);
        }

        assert!(store.delete_job("w", "doomed").await.expect("delete"));
        assert_eq!(pragma(&store.writer, "pragma foreign_keys").await, "1");
        let left = "select count(*) from executions where job_id = 'doomed'";
        assert_eq!(
            count(left).await,
            5,
            "the finished ones are left, the unfinished gone"
        );
        assert_eq!(count("select count(*) from attempts").await, 6);
        assert_eq!(count("select count(*) from deleted_jobs").await, 1);

        let policy = cronhook_store::RetentionPolicy {
            succeeded_for: chrono::TimeDelta::days(1),
            failed_for: chrono::TimeDelta::days(1),
        };
        let prune = || {
            cronhook_store::MaintenanceStore::prune_executions(
                &store,
                &policy,
                DateTime::UNIX_EPOCH,
                2,
            )
        };
        assert_eq!(prune().await.expect("prune"), 2);
        assert_eq!(count(left).await, 3, "in batches");
        assert_eq!(prune().await.expect("prune"), 2);
        assert_eq!(prune().await.expect("prune"), 1, "the last of it");
        assert_eq!(
            count("select count(*) from deleted_jobs").await,
            0,
            "then forgotten"
        );
        assert_eq!(count(left).await, 0);
        assert_eq!(
            count("select count(*) from attempts").await,
            1,
            "their attempts go with them, the kept job's stay"
        );
        assert_eq!(prune().await.expect("prune"), 0);
    }

    /// SQLite evaluates each partial index's where clause for every row written (twice for an
    /// update). Written as `in (...)` lists of three or more constants, each evaluation built a
    /// temporary b-tree of the constants: nine per execution.
    #[tokio::test]
    async fn writing_executions_builds_no_temporary_btree_for_the_partial_indexes() {
        let (store, _dir) = fresh().await;
        let writes = [
            (
                "insert into executions
                     (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
                 values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                7,
            ),
            (
                "update executions set status = ?1, finished_at = ?2 where id = ?3",
                3,
            ),
            ("delete from executions where id = ?1", 1),
        ];
        for (sql, params) in writes {
            let program = opcodes(&store, sql, params).await;
            assert!(
                program.contains("IdxInsert") || program.contains("IdxDelete"),
                "{sql}: {program}"
            );
            assert!(!program.contains("OpenEphemeral"), "{sql}: {program}");
        }
    }

    async fn pragma(pool: &SqlitePool, sql: &'static str) -> String {
        let row = sqlx::query(sql).fetch_one(pool).await.expect("pragma");
        sqlx::Row::try_get::<String, _>(&row, 0)
            .or_else(|_| sqlx::Row::try_get::<i64, _>(&row, 0).map(|n| n.to_string()))
            .expect("a pragma value")
    }

    #[tokio::test]
    async fn sqlite_is_built_as_configured() {
        let (store, _dir) = fresh().await;
        let options: Vec<String> = sqlx::query_scalar("pragma compile_options")
            .fetch_all(&store.writer)
            .await
            .expect("compile options");
        // `.cargo/config.toml`, LIBSQLITE3_FLAGS.
        for wanted in [
            "DEFAULT_MEMSTATUS=0",
            "DEFAULT_LOOKASIDE=1200,1000",
            "ENABLE_QPSG",
        ] {
            assert!(options.iter().any(|o| o == wanted), "{wanted}: {options:?}");
        }
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }

    #[tokio::test]
    async fn connections_are_set_up_as_documented() {
        let (store, _dir) = fresh().await;
        for pool in [&store.writer, &store.reader] {
            assert_eq!(pragma(pool, "pragma journal_mode").await, "wal");
            assert_eq!(pragma(pool, "pragma foreign_keys").await, "1");
            // 1 is NORMAL.
            assert_eq!(pragma(pool, "pragma synchronous").await, "1");
            assert_eq!(pragma(pool, "pragma busy_timeout").await, "5000");
        }
        assert_eq!(pragma(&store.writer, "pragma query_only").await, "0");
        assert_eq!(pragma(&store.reader, "pragma query_only").await, "1");
        assert_eq!(
            pragma(&store.writer, "pragma cache_size").await,
            format!("-{WRITER_CACHE_KIB}")
        );
        // 2 is MEMORY.
        assert_eq!(pragma(&store.writer, "pragma temp_store").await, "2");
        assert_eq!(
            pragma(&store.writer, "pragma wal_autocheckpoint").await,
            WRITER_AUTOCHECKPOINT_PAGES.to_string()
        );
        assert_eq!(
            pragma(&store.writer, "pragma journal_size_limit").await,
            WAL_SIZE_LIMIT_BYTES.to_string()
        );
        assert!(
            sqlx::query("delete from jobs")
                .execute(&store.reader)
                .await
                .is_err(),
            "readers cannot write"
        );
        assert!(format!("{store:?}").contains("plan.db"));
    }

    #[tokio::test]
    async fn the_wal_is_copied_back_in_the_background() {
        let (store, _dir) = fresh().await;
        let file_size = || {
            std::fs::metadata(&store.filename)
                .expect("the database file")
                .len()
        };
        let before = file_size();
        // ~1 MiB of rows, far below the writer's own checkpoint backstop: only the checkpointer
        // copies them into the database file.
        sqlx::query(
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < 10000)
             insert into workspaces (id, slug, signing_secret, created_at)
             select 'wsp_' || i, 'slug-' || i, 'whsec_' || hex(randomblob(32)), 0 from n",
        )
        .execute(&store.writer)
        .await
        .expect("write");
        let deadline = std::time::Instant::now() + CHECKPOINT_INTERVAL * 20;
        while file_size() < before + 1024 * 1024 && std::time::Instant::now() < deadline {
            tokio::time::sleep(CHECKPOINT_INTERVAL / 5).await;
        }
        assert!(
            file_size() >= before + 1024 * 1024,
            "the database file stayed at {} bytes (before the write: {before})",
            file_size()
        );
        // After `close` the checkpointer's connection is gone too.
        store.close().await;
        assert!(store.checkpointer.pool.is_closed());
    }

    #[tokio::test]
    async fn backups_copy_the_database_and_never_overwrite() {
        let (store, dir) = fresh().await;
        let workspace = Workspace {
            id: "wsp_backup".into(),
            slug: "backup".into(),
            signing_secret: "whsec_x".into(),
            previous_signing_secret: None,
            signing_secret_rotated_at: None,
            created_at: DateTime::from_timestamp_millis(1_700_000_000_000).expect("instant"),
        };
        store.create_workspace(&workspace).await.expect("create");
        let path = dir.path().join("copy.db");
        store.backup_to(&path).await.expect("backup");
        let copy = SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .expect("open the copy");
        let read = copy.workspace_by_slug("backup").await.expect("read");
        assert_eq!(read, Some(workspace));
        copy.close().await;
        assert!(matches!(
            store.backup_to(&path).await,
            Err(StoreError::Conflict { .. })
        ));
    }
}
