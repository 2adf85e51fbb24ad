//! The `store` scenario: what the SQLite store's firing path costs per execution, in this
//! process, against bare inserts of the same rows measured in the same run.
//!
//! `fire` measures the whole service, where one execution's CPU is the HTTP exchange, the
//! scheduler, the executor and the store together, and varies by ±10 % from run to run on a
//! shared machine. This scenario takes the store alone: each simulated second, every job's
//! occurrence is materialized in the scheduler's batches and its answer recorded in the
//! executor's transactions, through the real `SqliteStore`. The inputs are built before the
//! clock starts, so what is measured is the store: its statements, SQLite's work, and the
//! round trips to SQLite's threads. `--history-seconds` writes that many seconds first,
//! unmeasured, so that the measured ones land on jobs with a history, as in a deployment that
//! has run for a while.
//!
//! The baseline writes as many rows of the same widths into two tables without keys, indexes
//! or constraints (an execution row per execution in transactions of the batch size, then an
//! attempt row per execution in transactions of the record size), as multi-row inserts through
//! sqlx on a file with the store's settings. It is what logging an execution costs at the
//! least; the store also advances each job, finishes each execution and keeps the indexes that
//! the claims, the overlap checks, retention and the history pages read.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use cronhook_core::Job;
use cronhook_store::{AttemptRecord, Materialized, Occurrence, Store, conformance};
use cronhook_store_sqlite::SqliteStore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection as _, SqliteConnection};

use crate::Report;
use crate::process::{own_threads_cpu_ns, read_written_bytes};
use crate::scenarios::round;

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Every-second jobs: executions written per simulated second.
    #[arg(long, default_value_t = 8_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    jobs: u32,
    /// Simulated seconds measured.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3_600))]
    seconds: u32,
    /// Simulated seconds written before the measured ones, so that each job has that much
    /// history (a fresh database otherwise, as in `fire`).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=86_400))]
    history_seconds: u32,
}

/// The scheduler's batch: occurrences materialized in one store call.
fn materialize_batch() -> usize {
    usize::try_from(cronhook_scheduler::SchedulerConfig::default().batch_size).unwrap_or(1_000)
}

/// Rows bound in one statement of the baseline (the store's own chunk is at most 256 rows).
const BARE_ROWS_PER_STATEMENT: usize = 256;

/// The node the executions are leased to.
const NODE: &str = "bench-node";

/// The most executions measured in one run: the measured seconds' inputs are built in memory
/// before the clock starts, ~1 KB each.
const MAX_MEASURED_EXECUTIONS: u64 = 2_000_000;

pub async fn store(args: &StoreArgs) -> anyhow::Result<Vec<Report>> {
    let jobs = usize::try_from(args.jobs).context("jobs")?;
    let seconds = i64::from(args.seconds);
    let executions = u64::from(args.jobs) * u64::from(args.seconds);
    anyhow::ensure!(
        executions <= MAX_MEASURED_EXECUTIONS,
        "--jobs × --seconds is {executions} executions; at most {MAX_MEASURED_EXECUTIONS} are \
         measured in one run (their inputs are built in memory first): lower --seconds"
    );
    // Past the wall clock, so the store's own filing loop (on the wall clock) finds nothing to
    // file, and this scenario files on its simulated clock instead, as often as the loop would.
    let start = DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z")
        .context("the first instant")?
        .to_utc();

    let dir = tempfile::tempdir().context("temporary directory")?;
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = SqliteStore::open(&url).await.context("opening the store")?;
    store.migrate().await.context("migrating the store")?;
    let seeded = seed(&store, jobs, start).await?;
    let batch = materialize_batch();
    let history_started = Instant::now();
    for second in 0..i64::from(args.history_seconds) {
        let (occurrences, records) = second_of_writes(&seeded, start + TimeDelta::seconds(second));
        write_second(&store, &occurrences, &records, batch).await?;
        file_history_when_due(&store, start, second).await?;
    }
    let history_seconds_taken = history_started.elapsed().as_secs_f64();
    let first_measured = i64::from(args.history_seconds);
    let seconds_of_writes: Vec<(Vec<Occurrence>, Vec<AttemptRecord>)> = (first_measured
        ..first_measured + seconds)
        .map(|second| second_of_writes(&seeded, start + TimeDelta::seconds(second)))
        .collect();
    let measured = measure(|| async {
        for (second, (occurrences, records)) in (first_measured..).zip(&seconds_of_writes) {
            write_second(&store, occurrences, records, batch).await?;
            file_history_when_due(&store, start, second).await?;
        }
        Ok(())
    })
    .await?;
    let pages = history_pages(&store, &seeded, start, first_measured + seconds, batch).await?;
    store.close().await;

    let bare_dir = tempfile::tempdir().context("temporary directory")?;
    let mut bare = bare_connection(&bare_dir.path().join("bare.db")).await?;
    let bare_measured = measure(|| async {
        for (occurrences, records) in &seconds_of_writes {
            for chunk in occurrences.chunks(batch) {
                bare_executions(&mut bare, chunk).await?;
            }
            for chunk in records.chunks(cronhook_executor::WRITE_TRANSACTION) {
                bare_attempts(&mut bare, chunk).await?;
            }
        }
        Ok(())
    })
    .await?;
    bare.close()
        .await
        .context("closing the baseline's database")?;

    let store_cpu = measured.cpu_us_per(executions);
    let bare_cpu = bare_measured.cpu_us_per(executions);
    let mut report = Report::new("store");
    report.add("jobs", args.jobs);
    report.add("seconds", args.seconds);
    report.add("history_seconds", args.history_seconds);
    report.add("history_write_s", round(history_seconds_taken));
    report.add("executions", executions);
    report.add("store_cpu_us_per_execution", round(store_cpu));
    report.add(
        "store_wall_us_per_execution",
        round(measured.wall_us_per(executions)),
    );
    report.add(
        "store_written_kib_per_execution",
        measured
            .written_bytes
            .map(|bytes| round(bytes as f64 / 1024.0 / executions as f64)),
    );
    report.add("bare_cpu_us_per_execution", round(bare_cpu));
    report.add(
        "bare_wall_us_per_execution",
        round(bare_measured.wall_us_per(executions)),
    );
    report.add(
        "ratio_to_bare",
        if bare_cpu > 0.0 {
            round(store_cpu / bare_cpu)
        } else {
            0.0
        },
    );
    report.add("history_page_unfiled_executions", pages.unfiled_executions);
    report.add("history_page_p50_ms", round(pages.p50_ms));
    report.add("history_page_max_ms", round(pages.max_ms));
    Ok(vec![report])
}

/// Jobs whose newest history page is read after the measured seconds.
const HISTORY_PAGE_READS: usize = 100;
/// Executions a history page holds (the dashboard's page).
const HISTORY_PAGE_SIZE: u32 = 20;

/// History pages read when the most executions wait to be filed.
struct HistoryPages {
    /// All jobs' executions not yet filed when the pages were read.
    unfiled_executions: u64,
    p50_ms: f64,
    max_ms: f64,
}

/// Reads the newest history page of up to [`HISTORY_PAGE_READS`] jobs (spread over all of
/// them) when the most executions wait to be filed, as a dashboard might just before a pass:
/// everything up to the end of second `next_second` (counted from `start`) is filed as the
/// loop would file it, then one more interval of seconds is written without filing, so that
/// the interval and the filing lag (about 12 s of all jobs' executions) are unfiled. Checks
/// each page holds the job's newest executions, newest first.
async fn history_pages(
    store: &SqliteStore,
    jobs: &[Job],
    start: DateTime<Utc>,
    next_second: i64,
    batch: usize,
) -> anyhow::Result<HistoryPages> {
    let (interval, lag) = filing_schedule()?;
    store
        .file_history(start + TimeDelta::seconds(next_second) - lag)
        .await
        .context("filing the history")?;
    for second in next_second..next_second + interval {
        let (occurrences, records) = second_of_writes(jobs, start + TimeDelta::seconds(second));
        write_second(store, &occurrences, &records, batch).await?;
    }
    let last_instant = start + TimeDelta::seconds(next_second + interval - 1);
    let unfiled_seconds = u64::try_from(interval + lag.num_seconds().min(next_second))?;
    // Each job has one execution a second, from `start` on.
    let page_len = usize::try_from((next_second + interval).min(i64::from(HISTORY_PAGE_SIZE)))?;
    let step = (jobs.len() / HISTORY_PAGE_READS).max(1);
    let mut took_ms = Vec::with_capacity(HISTORY_PAGE_READS);
    for job in jobs.iter().step_by(step).take(HISTORY_PAGE_READS) {
        let started = Instant::now();
        let page = store
            .list_executions(
                &job.workspace_id,
                &job.id,
                &cronhook_store::ExecutionFilter { status: None },
                &cronhook_store::PageRequest {
                    limit: HISTORY_PAGE_SIZE,
                    after: None,
                },
            )
            .await
            .context("reading a history page")?;
        took_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let newest = page.items.first().map(|execution| execution.scheduled_for);
        anyhow::ensure!(
            newest == Some(last_instant)
                && page.items.len() == page_len
                && page
                    .items
                    .windows(2)
                    .all(|pair| pair[0].scheduled_for > pair[1].scheduled_for),
            "job {}'s history page does not hold its {page_len} newest executions, newest \
             first (it starts at {newest:?}, expected {last_instant}; {} executions)",
            job.id,
            page.items.len()
        );
    }
    took_ms.sort_by(f64::total_cmp);
    Ok(HistoryPages {
        unfiled_executions: unfiled_seconds * jobs.len() as u64,
        p50_ms: took_ms.get(took_ms.len() / 2).copied().unwrap_or_default(),
        max_ms: took_ms.last().copied().unwrap_or_default(),
    })
}

/// One simulated second through the store: the occurrences materialized in the scheduler's
/// batches, then their answers recorded in the executor's transactions.
async fn write_second(
    store: &SqliteStore,
    occurrences: &[Occurrence],
    records: &[AttemptRecord],
    batch: usize,
) -> anyhow::Result<()> {
    for chunk in occurrences.chunks(batch) {
        let outcomes = store.materialize(chunk).await?;
        anyhow::ensure!(
            outcomes.iter().all(|o| *o == Materialized::Created),
            "an occurrence was not created"
        );
    }
    for chunk in records.chunks(cronhook_executor::WRITE_TRANSACTION) {
        let accepted = store.record_attempts(chunk).await?;
        anyhow::ensure!(
            accepted.iter().all(|accepted| *accepted),
            "an attempt record was refused"
        );
    }
    Ok(())
}

/// The store's filing loop's schedule: whole seconds between passes, and how far behind the
/// clock a pass files.
fn filing_schedule() -> anyhow::Result<(i64, TimeDelta)> {
    let interval = i64::try_from(cronhook_store_sqlite::FILING_INTERVAL.as_secs())?.max(1);
    Ok((
        interval,
        TimeDelta::from_std(cronhook_store_sqlite::FILING_LAG)?,
    ))
}

/// Files the history as the store's filing loop would at the end of the simulated second
/// `second` (counted from `start`): every [`cronhook_store_sqlite::FILING_INTERVAL`], up to
/// [`cronhook_store_sqlite::FILING_LAG`] before then.
async fn file_history_when_due(
    store: &SqliteStore,
    start: DateTime<Utc>,
    second: i64,
) -> anyhow::Result<()> {
    let (interval, lag) = filing_schedule()?;
    let now = second + 1;
    if now % interval == 0 {
        store
            .file_history(start + TimeDelta::seconds(now) - lag)
            .await
            .context("filing the history")?;
    }
    Ok(())
}

/// What one measured stretch cost this process.
struct Measured {
    wall: Duration,
    /// CPU of every thread of the process (SQLite's included).
    cpu_seconds: f64,
    /// Bytes sent toward storage; None where the kernel keeps no such count.
    written_bytes: Option<u64>,
}

impl Measured {
    /// CPU microseconds per execution, over `executions`.
    fn cpu_us_per(&self, executions: u64) -> f64 {
        self.cpu_seconds * 1e6 / executions as f64
    }

    /// Wall-clock microseconds per execution, over `executions`.
    fn wall_us_per(&self, executions: u64) -> f64 {
        self.wall.as_secs_f64() * 1e6 / executions as f64
    }
}

async fn measure<F, Fut>(work: F) -> anyhow::Result<Measured>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let cpu = || own_threads_cpu_ns().context("reading this process's threads' CPU time");
    let written = || read_written_bytes(std::process::id());
    let (cpu_before, written_before) = (cpu()?, written());
    let started = Instant::now();
    work().await?;
    let wall = started.elapsed();
    let (cpu_after, written_after) = (cpu()?, written());
    Ok(Measured {
        wall,
        cpu_seconds: cpu_after.saturating_sub(cpu_before) as f64 / 1e9,
        written_bytes: written_after
            .zip(written_before)
            .map(|(after, before)| after.saturating_sub(before)),
    })
}

/// A workspace and `jobs` every-second jobs due at `due`, stored as the API stores them.
async fn seed(store: &SqliteStore, jobs: usize, due: DateTime<Utc>) -> anyhow::Result<Vec<Job>> {
    let workspace = conformance::new_workspace(store).await;
    let mut seeded = Vec::with_capacity(jobs);
    for index in 0..jobs {
        let job = conformance::firing_job(&workspace, index, false, due);
        store.insert_job(&job).await.context("storing a job")?;
        seeded.push(job);
    }
    Ok(seeded)
}

/// One simulated second's writes: every job's occurrence, and its answer.
fn second_of_writes(jobs: &[Job], due: DateTime<Utc>) -> (Vec<Occurrence>, Vec<AttemptRecord>) {
    let occurrences = conformance::firing_occurrences(jobs, due, NODE);
    let records = conformance::succeeded_answers(&occurrences, NODE);
    (occurrences, records)
}

/// The baseline's database: a file with the store's settings and two bare tables.
async fn bare_connection(path: &std::path::Path) -> anyhow::Result<SqliteConnection> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .context("opening the baseline's database")?;
    sqlx::raw_sql(
        "create table bare_executions (id text, workspace_id text, job_id text,
             scheduled_for integer, trigger text, status text, run_at integer, locked_by text,
             lease_until integer);
         create table bare_attempts (execution_id text, number integer, started_at integer,
             duration_ms integer, status_code integer, response_headers text,
             response_body text, response_body_truncated integer, timing text);",
    )
    .execute(&mut conn)
    .await
    .context("creating the baseline's tables")?;
    Ok(conn)
}

/// `insert into TABLE values (?, …), …` for `rows` rows of `columns` values.
fn multi_row_insert(table: &str, columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    format!("insert into {table} values {}", vec![row; rows].join(", "))
}

/// One transaction inserting an execution row per occurrence.
async fn bare_executions(conn: &mut SqliteConnection, chunk: &[Occurrence]) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    for rows in chunk.chunks(BARE_ROWS_PER_STATEMENT) {
        let sql = multi_row_insert("bare_executions", 9, rows.len());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for execution in rows.iter().flat_map(|occurrence| &occurrence.executions) {
            let lease = execution.lease.as_ref();
            query = query
                .bind(execution.id.as_str())
                .bind(execution.workspace_id.as_str())
                .bind(execution.job_id.as_str())
                .bind(execution.scheduled_for.timestamp_millis())
                .bind("schedule")
                .bind("running")
                .bind(execution.run_at.timestamp_millis())
                .bind(lease.map(|lease| lease.node_id.as_str()))
                .bind(lease.map(|lease| lease.until.timestamp_millis()));
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One transaction inserting an attempt row per record, its headers and timing as JSON.
async fn bare_attempts(conn: &mut SqliteConnection, chunk: &[AttemptRecord]) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    for rows in chunk.chunks(BARE_ROWS_PER_STATEMENT) {
        let sql = multi_row_insert("bare_attempts", 9, rows.len());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for record in rows {
            let attempt = &record.attempt;
            query = query
                .bind(record.execution_id.as_str())
                .bind(i64::from(attempt.number))
                .bind(attempt.started_at.timestamp_millis())
                .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
                .bind(attempt.status_code.map(i64::from))
                .bind(serde_json::to_string(&attempt.response_headers)?)
                .bind(attempt.response_body.as_deref())
                .bind(attempt.response_body_truncated)
                .bind(serde_json::to_string(&attempt.timing)?);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
