//! The PostgreSQL implementation of cronhook's `Store`: the scale-out engine, one database shared
//! by any number of `cronhook serve` processes.
//!
//! Architecture invariant: processes coordinate only through row locks. Claims take executions
//! with `FOR UPDATE SKIP LOCKED`, so claimers never wait for each other and never take one row
//! twice; every multi-row write locks rows in id order (jobs, then their executions), and a
//! transaction the server aborts as a deadlock or serialization failure is run again from the
//! start. Every instant is a `timestamptz` truncated to the millisecond on write, so a value read
//! back is the value written truncated to the millisecond, exactly as in the SQLite store.

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

/// The columns `rows::claimed_job_from_row` reads: `job_columns!()`'s with the job's revision in
/// place of the spec's text, which [`SPECS_OF_JOBS`] reads only for the jobs whose opened spec
/// is not cached at that revision.
macro_rules! claimed_job_columns {
    () => {
        "id, workspace_id, name, revision, paused, next_run_at, created_at, updated_at"
    };
}

/// The columns `rows::execution_from_row` reads.
macro_rules! execution_columns {
    () => {
        "id, workspace_id, job_id, scheduled_for, trigger, status, started_at, finished_at, \
         duration_ms"
    };
}

/// The columns `rows::attempt_from_row` reads.
macro_rules! attempt_columns {
    () => {
        "execution_id, number, started_at, duration_ms, status_code, error_kind, error_message, \
         response_headers, response_body, response_body_truncated, redirect_location, timing"
    };
}

mod alerts;
mod api_keys;
mod convert;
mod maintenance;
mod nodes;
mod rows;
mod sessions;

// The integration tests' support module (a database per test), reused by the unit tests; it
// names this crate.
#[cfg(test)]
extern crate self as cronhook_store_postgres;
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_core::{
    Attempt, AttemptError, Concurrency, ErrorKind, Execution, ExecutionStatus, Job, JobSpec,
};
use cronhook_store::{
    ApiKey, AttemptRecord, ClaimedExecution, ExecutionFilter, HistoryByStatus, Lease, Materialized,
    NewExecution, NextStep, Occurrence, Page, PageRequest, Store, StoreError, StoreResult, User,
    Workspace,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection as _, PgConnection, Postgres, Transaction};

use crate::convert::{
    SchemaNotCurrent, conflict_or_db_err, db_err, enum_text, from_json, is_retryable, ms, opt_ms,
    signed, to_json,
};
use crate::rows::{
    attempt_from_row, claimed_from_row, execution_from_row, job_from_row, workspace_from_row,
};

/// The schema, embedded at build time from `migrations/postgres`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connections per process.
const POOL_SIZE: u32 = 16;
/// How long a call waits for a connection (including opening one) before the database counts as
/// unavailable: short, so an outage surfaces as `Unavailable` instead of a hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a transaction aborted as a deadlock or serialization failure is run.
const TRANSACTION_TRIES: u32 = 5;

/// A cronhook store in a PostgreSQL database.
///
/// Instants round-trip truncated to the millisecond, like the SQLite store's.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Seals secret header values before specs are written and opens them after reads.
    sealer: std::sync::Arc<cronhook_store::Sealer>,
    /// Where pruning by `keep_last` resumes.
    keep_last_cursor: std::sync::Arc<cronhook_store::KeepLastCursor>,
    /// The opened specs of claimed jobs, so a job claimed every second is parsed once.
    due_specs: std::sync::Arc<cronhook_store::SpecCache>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options = self.pool.connect_options();
        f.debug_struct("PostgresStore")
            .field("host", &options.get_host())
            .field("port", &options.get_port())
            .field("database", &options.get_database())
            .field("connections", &self.pool.size())
            .finish()
    }
}

impl PostgresStore {
    /// Connects to the database named by a `postgres://user@host:port/database` URL, with a pool
    /// of 16 connections. Fails with `Unavailable` when the server cannot be reached within a few
    /// seconds. Call [`PostgresStore::migrate`] before use.
    ///
    /// Connections that died (a server restart, an administrator's `pg_terminate_backend`) are
    /// noticed when next taken from the pool and replaced, so the store recovers by itself.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(db_err)?
            .application_name("cronhook");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A ping before each use: a connection the server closed is dropped and replaced
            // instead of failing the caller's query.
            .test_before_acquire(true)
            .connect_with(options.clone())
            .await;
        match pool {
            Ok(pool) => Ok(PostgresStore {
                pool,
                sealer: std::sync::Arc::default(),
                keep_last_cursor: std::sync::Arc::default(),
                due_specs: std::sync::Arc::default(),
            }),
            // The pool kept retrying and says only that it timed out; one more attempt names the
            // reason (connection refused, unknown host...) for whoever reads the error.
            Err(sqlx::Error::PoolTimedOut) => match PgConnection::connect_with(&options).await {
                Ok(connection) => {
                    connection.close().await.ok();
                    Err(db_err(sqlx::Error::PoolTimedOut))
                }
                Err(err) => Err(db_err(err)),
            },
            Err(err) => Err(db_err(err)),
        }
    }

    /// Applies the embedded migrations that are not applied yet; a no-op when the schema is
    /// current. Safe to run from several processes at once (sqlx holds an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::Execute(inner) => db_err(inner),
            other => StoreError::Database(Box::new(other)),
        })
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db_err)
    }

    /// The newest migration this build knows.
    fn expected_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// One try of `claim_due_jobs`. The claim returns each job's revision; the texts of the
    /// specs not cached at theirs are read in the same transaction, where the claim's row locks
    /// keep every claimed job at the revision it returned.
    async fn claim_due_jobs_once(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Job>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(CLAIM_DUE_JOBS)
            .bind(ms(until))
            .bind(ms(now))
            .bind(lease.node_id.as_str())
            .bind(i64::from(limit))
            .bind(ms(lease.until))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let read = rows
            .iter()
            .map(rows::claimed_job_revision)
            .collect::<StoreResult<Vec<_>>>()?;
        let (cached, uncached) = self.due_specs.lookup(&read);
        let stored: HashMap<String, String> = if uncached.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as(SPECS_OF_JOBS)
                .bind(&uncached)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?
                .into_iter()
                .collect()
        };
        commit(tx).await?;
        let read = rows
            .iter()
            .zip(cached)
            .map(|(row, spec)| rows::claimed_job_from_row(row, spec, &stored))
            .collect::<StoreResult<Vec<_>>>()?;
        self.due_specs.open_and_keep(&self.sealer, self, read).await
    }

    async fn materialize_once(&self, occurrences: &[Occurrence]) -> StoreResult<Vec<Materialized>> {
        // Jobs are locked in id order, whatever order the scheduler passed them in, so two
        // schedulers materializing overlapping batches cannot deadlock.
        let mut order: Vec<usize> = (0..occurrences.len()).collect();
        order.sort_by(|&a, &b| occurrences[a].job_id.cmp(&occurrences[b].job_id));
        let mut outcomes = vec![Materialized::Superseded; occurrences.len()];
        let mut tx = self.begin().await?;
        // The common case (overlap allowed, one execution) in three statements for the whole
        // batch; one round trip per row made a burst of 1 000 take longer than it is prepared
        // ahead.
        let (simple, special): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .partition(|&index| occurrences[index].is_simple());
        if !simple.is_empty() {
            let batch: Vec<&Occurrence> = simple.iter().map(|&index| &occurrences[index]).collect();
            for (index, outcome) in simple
                .iter()
                .zip(materialize_simple(&mut tx, &batch).await?)
            {
                outcomes[*index] = outcome;
            }
        }
        for index in special {
            let occurrence = &occurrences[index];
            // Compare-and-set on the value the scheduler read: an edit, a pause, a delete or
            // another scheduler leaves it different, and then nothing is written. A second
            // scheduler waits here for the first one's row lock, then sees the new value.
            // A job of another workspace than the occurrence's behaves as absent.
            let advanced = sqlx::query(
                "update jobs set next_run_at = $1
                 where id = $2 and not paused and next_run_at = $3 and workspace_id = $4",
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
                continue;
            }
            let skip = occurrence.concurrency == Concurrency::Forbid
                && sqlx::query_scalar::<_, bool>(
                    // The where clause of `executions_unfinished_by_job`.
                    "select exists (select 1 from executions
                     where job_id = $1 and status in ('queued', 'running', 'retrying'))",
                )
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

    /// One try of `claim_executions`: the claim, and in its transaction the stored specs of
    /// the claimed executions' jobs whose opened spec is not cached at the revision the claim
    /// found (a failed read gives the claim back). Returns the claim's rows, the cached specs
    /// by job id, and the stored ones.
    async fn claim_once(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<(Vec<PgRow>, HashMap<String, Arc<JobSpec>>, Vec<StoredSpec>)> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(CLAIM)
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(&lease.node_id)
            .bind(ms(lease.until))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut cached = HashMap::new();
        let mut uncached = std::collections::BTreeSet::new();
        for row in &rows {
            let (job_id, revision) = rows::claimed_execution_job(row)?;
            if cached.contains_key(job_id) || uncached.contains(job_id) {
                continue;
            }
            match self.due_specs.get(job_id, revision) {
                Some(spec) => {
                    cached.insert(job_id.to_owned(), spec);
                }
                None => {
                    uncached.insert(job_id);
                }
            }
        }
        let stored = if uncached.is_empty() {
            Vec::new()
        } else {
            let ids: Vec<&str> = uncached.into_iter().collect();
            sqlx::query_as(SPECS_AT_REVISION)
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?
        };
        commit(tx).await?;
        Ok((rows, cached, stored))
    }

    /// The executions of claim `rows`, each with its job's opened spec: the one `cached` at the
    /// revision the claim found, or else the `stored` one, opened here and cached at the
    /// revision it was read at. The claim does not lock jobs, so an edit that landed between
    /// the claim and that read is sent as edited, as it would have been had the claim come a
    /// moment later; an execution whose job was deleted meanwhile is gone with it (the cascade)
    /// and is left out.
    async fn claimed_with_specs(
        &self,
        rows: &[PgRow],
        mut specs: HashMap<String, Arc<JobSpec>>,
        stored: Vec<StoredSpec>,
    ) -> StoreResult<Vec<ClaimedExecution>> {
        for (job_id, workspace_id, revision, name, paused, text) in stored {
            let mut spec = rows::spec_from_columns(&job_id, &text, name, paused)?;
            self.due_specs
                .open_and_keep_one(
                    &self.sealer,
                    self,
                    (&workspace_id, &job_id),
                    (revision, text.len()),
                    &mut spec,
                )
                .await?;
            specs.insert(job_id, spec);
        }
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let (job_id, _) = rows::claimed_execution_job(row)?;
            match specs.get(job_id) {
                Some(spec) => claimed.push(claimed_from_row(row, Arc::clone(spec))?),
                None => {
                    tracing::debug!(
                        job_id,
                        "claimed an execution of a job deleted since; leaving it out"
                    );
                }
            }
        }
        Ok(claimed)
    }

    async fn record_attempts_once(&self, records: &[AttemptRecord]) -> StoreResult<Vec<bool>> {
        let mut tx = self.begin().await?;
        // A success of a job with no failure streak changes nothing in its streak, which is
        // nearly every execution: those skip the alerting rules, and so leave the job's row
        // unlocked (a locked job row is skipped by the schedulers' claims until this commits).
        let succeeded: Vec<&str> = records
            .iter()
            .filter(|record| record.succeeds())
            .map(|record| record.execution_id.as_str())
            .collect();
        let streaked: std::collections::HashSet<String> = if succeeded.is_empty() {
            std::collections::HashSet::new()
        } else {
            sqlx::query_scalar::<_, String>(
                "select e.id from executions e join jobs j on j.id = e.job_id
                 where e.id = any($1)
                   and (j.failure_streak > 0 or j.failure_streak_alerted
                        or j.failure_streak_started_at is not null)",
            )
            .bind(&succeeded)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?
            .into_iter()
            .collect()
        };
        // A few statements per wave, whatever its size: one statement per record was most of
        // what a burst's results cost the database.
        let mut accepted = Vec::with_capacity(records.len());
        for wave in cronhook_store::record_waves(records) {
            accepted.extend(record_wave(&mut tx, &records[wave], &streaked).await?);
        }
        commit(tx).await?;
        Ok(accepted)
    }

    async fn update_job_once(&self, job: &Job, spec: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // The job's row first, then its executions: the order every other writer follows.
        let found: Option<String> = sqlx::query_scalar(
            "select id from jobs where id = $1 and workspace_id = $2 for update",
        )
        .bind(&job.id)
        .bind(&job.workspace_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        // Before the update, while the stored `next_run_at` is the old one.
        sqlx::query(
            "delete from executions
             where job_id = $1 and trigger = 'schedule' and status = 'running'
               and attempt_count = 0 and started_at is null and scheduled_for > $2
               and exists (select 1 from jobs where id = $1
                           and ($3 or next_run_at is distinct from $4))",
        )
        .bind(&job.id)
        .bind(ms(job.updated_at + cronhook_store::PREPARED_DISCARD_MARGIN))
        .bind(job.spec.paused)
        .bind(opt_ms(job.next_run_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "update jobs
             set name = $1, spec = $2, paused = $3, next_run_at = $4, updated_at = $5,
                 keep_last = $8
             where id = $6 and workspace_id = $7",
        )
        .bind(&job.spec.name)
        .bind(spec)
        .bind(job.spec.paused)
        .bind(opt_ms(job.next_run_at))
        .bind(ms(job.updated_at))
        .bind(&job.id)
        .bind(&job.workspace_id)
        .bind(job.spec.keep_last.map(i64::from))
        .execute(&mut *tx)
        .await
        .map_err(|err| job_conflict(err, job))?;
        commit(tx).await
    }

    async fn pause_job_once(
        &self,
        workspace_id: &str,
        id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let spec: Option<String> = sqlx::query_scalar(
            "select spec from jobs where id = $1 and workspace_id = $2 for update",
        )
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(spec) = spec else {
            return Ok(false);
        };
        // The spec's own `paused` is kept in step so the stored json says what the column says.
        // Done here rather than with `jsonb_set`, which would refuse a spec holding `\u0000`.
        let mut spec: serde_json::Value = from_json(&spec, &format!("spec of job `{id}`"))?;
        if let Some(fields) = spec.as_object_mut() {
            fields.insert("paused".to_owned(), serde_json::Value::Bool(true));
        }
        sqlx::query(
            "update jobs set paused = true, next_run_at = null, updated_at = $1, spec = $2
             where id = $3",
        )
        .bind(ms(at))
        .bind(to_json(&spec)?)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await?;
        Ok(true)
    }
}

/// Runs a transaction again, from the start, while the server aborts it as a deadlock or a
/// serialization failure, up to [`TRANSACTION_TRIES`] times.
/// Records attempts of distinct executions (see `record_attempts_once`): locks their rows in id
/// order, applies the fence and the new state to every retry and every finish in one statement
/// each, inserts the accepted attempts in one, then runs the alerting rules for the finishes
/// that need them. Returns, per record, whether it was accepted.
async fn record_wave(
    tx: &mut Transaction<'static, Postgres>,
    records: &[AttemptRecord],
    streaked: &std::collections::HashSet<String>,
) -> StoreResult<Vec<bool>> {
    // The order every writer of several executions follows, so two batches cannot deadlock.
    let mut ids: Vec<&str> = records.iter().map(|r| r.execution_id.as_str()).collect();
    ids.sort_unstable();
    sqlx::query("select id from executions where id = any($1) order by id for update")
        .bind(&ids)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;

    let mut retry_ids = Vec::new();
    let mut retry_numbers = Vec::new();
    let mut retry_started = Vec::new();
    let mut retry_run_at = Vec::new();
    let mut retry_lease_until = Vec::new();
    let mut retry_nodes = Vec::new();
    let mut finish_ids = Vec::new();
    let mut finish_numbers = Vec::new();
    let mut finish_statuses = Vec::new();
    let mut finish_started = Vec::new();
    let mut finish_ended = Vec::new();
    let mut finish_nodes = Vec::new();
    for record in records {
        let attempt = &record.attempt;
        let started_at = ms(attempt.started_at);
        match &record.next {
            NextStep::Retry {
                run_at,
                lease_until,
            } => {
                retry_ids.push(record.execution_id.as_str());
                retry_numbers.push(i64::from(attempt.number));
                retry_started.push(started_at);
                retry_run_at.push(ms(*run_at));
                retry_lease_until.push(ms(*lease_until));
                retry_nodes.push(record.node_id.as_str());
            }
            NextStep::Finish { status } => {
                let duration_ms = signed(attempt.duration_ms, "attempt duration")?;
                finish_ids.push(record.execution_id.as_str());
                finish_numbers.push(i64::from(attempt.number));
                finish_statuses.push(enum_text(status)?);
                finish_started.push(started_at);
                finish_ended.push(started_at + chrono::Duration::milliseconds(duration_ms));
                finish_nodes.push(record.node_id.as_str());
            }
        }
    }
    // The fence: only the lease holder, only the next attempt number. A retrying execution is
    // still held by the node that will make its next attempt.
    let mut accepted_ids: std::collections::HashSet<String> = std::collections::HashSet::new();
    if !retry_ids.is_empty() {
        accepted_ids.extend(
            sqlx::query_scalar::<_, String>(
                "update executions e
                 set attempt_count = r.number, status = 'retrying', run_at = r.run_at,
                     lease_until = r.lease_until, started_at = coalesce(e.started_at, r.started_at)
                 from unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[],
                             $5::timestamptz[], $6::text[])
                      as r(id, number, started_at, run_at, lease_until, node_id)
                 where e.id = r.id and e.locked_by = r.node_id and e.attempt_count = r.number - 1
                   and e.status in ('running', 'retrying')
                 returning e.id",
            )
            .bind(&retry_ids)
            .bind(&retry_numbers)
            .bind(&retry_started)
            .bind(&retry_run_at)
            .bind(&retry_lease_until)
            .bind(&retry_nodes)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err)?,
        );
    }
    if !finish_ids.is_empty() {
        accepted_ids.extend(
            sqlx::query_scalar::<_, String>(
                "update executions e
                 set attempt_count = r.number, status = r.status, locked_by = null,
                     lease_until = null, started_at = coalesce(e.started_at, r.started_at),
                     finished_at = r.finished_at,
                     duration_ms = (extract(epoch from r.finished_at
                                            - coalesce(e.started_at, r.started_at))
                                    * 1000)::bigint
                 from unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[],
                             $5::timestamptz[], $6::text[])
                      as r(id, number, status, started_at, finished_at, node_id)
                 where e.id = r.id and e.locked_by = r.node_id and e.attempt_count = r.number - 1
                   and e.status in ('running', 'retrying')
                 returning e.id",
            )
            .bind(&finish_ids)
            .bind(&finish_numbers)
            .bind(&finish_statuses)
            .bind(&finish_started)
            .bind(&finish_ended)
            .bind(&finish_nodes)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err)?,
        );
    }
    let accepted: Vec<&AttemptRecord> = records
        .iter()
        .filter(|record| accepted_ids.contains(&record.execution_id))
        .collect();
    let attempts: Vec<(&str, &Attempt)> = accepted
        .iter()
        .map(|record| (record.execution_id.as_str(), &record.attempt))
        .collect();
    rows::insert_attempts(tx, &attempts).await?;
    for record in &accepted {
        if let NextStep::Finish { status } = &record.next
            && (*status != ExecutionStatus::Succeeded || streaked.contains(&record.execution_id))
        {
            alerts::on_finished(tx, &record.execution_id, &record.attempt, *status).await?;
        }
    }
    Ok(records
        .iter()
        .map(|record| accepted_ids.contains(&record.execution_id))
        .collect())
}

async fn retrying<T, F, Fut>(mut transaction: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut tries = 1;
    loop {
        match transaction().await {
            Err(err) if tries < TRANSACTION_TRIES && is_retryable(&err) => {
                tracing::debug!(tries, error = %err, "transaction aborted by the server; running it again");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
            }
            outcome => return outcome,
        }
    }
}

async fn commit(tx: Transaction<'static, Postgres>) -> StoreResult<()> {
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

/// Due jobs, earliest first. The where clause implies the partial index `jobs_due`, which is
/// read in order.
const DUE_JOBS: &str = concat!(
    "select ",
    job_columns!(),
    " from jobs
      where not paused and next_run_at is not null and next_run_at <= $1
      order by next_run_at
      limit $2"
);

/// Claims up to `$4` due jobs (due by `$1`) for `$3` until `$5`: jobs no other scheduler holds
/// a live claim on at `$2`, in firing order. `skip locked` passes over rows another scheduler is
/// claiming or materializing right now instead of waiting for them.
const CLAIM_DUE_JOBS: &str = concat!(
    "with due as (
         select id as due_id from jobs
         where not paused and next_run_at is not null and next_run_at <= $1
           and (claim_until is null or claim_until < $2 or claimed_by = $3)
         order by next_run_at
         limit $4
         for update skip locked)
     update jobs set claimed_by = $3, claim_until = $5
     from due where jobs.id = due.due_id
     returning ",
    claimed_job_columns!(),
);

/// The stored specs of the jobs whose ids `$1` lists, by id.
const SPECS_OF_JOBS: &str = "select id, spec from jobs where id = any($1)";

/// The jobs whose ids `$1` lists, with what opening their specs takes: the revision the text is
/// at, the `name` and `paused` columns, and the text (a [`StoredSpec`] each).
const SPECS_AT_REVISION: &str =
    "select id, workspace_id, revision, name, paused, spec from jobs where id = any($1)";

/// A row of [`SPECS_AT_REVISION`]: job id, workspace id, revision, name, paused, stored text.
type StoredSpec = (String, String, i64, String, bool, String);

/// Claims up to `$2` executions that are ready at `$1` (queued or retrying, due, no live lease)
/// or orphaned (running with a lease that ran out), oldest `run_at` first, leasing them to `$3`
/// until `$4`. `skip locked` makes concurrent claimers pass over each other's rows instead of
/// waiting for them; a row another claimer took and committed meanwhile is re-checked against
/// the where clause and dropped. The candidates' old status says whether an attempt was cut.
/// `run_at <= $1` makes the claim a range of `executions_claimable (run_at)` that ends at now:
/// without it, each claim (every second on every node) walked every retry still backing off.
/// A running execution always has `run_at <= lease_until` (it was due, or prepared less than a
/// lease ahead), so one whose lease ran out is due; the one exception, an execution prepared
/// ahead and released at shutdown, is claimed at its instant rather than before it.
const CLAIM: &str = "with candidates as (
        select e.id, e.status, j.revision as job_revision
        from executions e join jobs j on j.id = e.job_id
        where e.status in ('queued', 'running', 'retrying') and e.run_at <= $1
          and ((e.status in ('queued', 'retrying')
                and (e.locked_by is null or e.lease_until < $1))
               or (e.status = 'running' and e.lease_until < $1))
        order by e.run_at
        limit $2
        for update of e skip locked
    ), claimed as (
        update executions e
        set status = 'running', locked_by = $3, lease_until = $4
        from candidates c
        where e.id = c.id
        returning e.id, e.workspace_id, e.job_id, e.scheduled_for, e.trigger, e.attempt_count,
            e.started_at, e.run_at, c.status as previous_status, c.job_revision
    )
    select * from claimed order by run_at, id";

/// Extends node `$2`'s running and retrying leases to `$1`, only those that end sooner (see
/// the SQLite store), of executions due before `$1` (see `Store::renew_leases`): a range of
/// `executions_claimable (run_at)`, so retries backing off for longer are not read.
const RENEW_LEASES: &str = "update executions set lease_until = $1
    where status in ('running', 'retrying') and run_at < $1 and locked_by = $2
      and (lease_until is null or lease_until < $1)";

/// Inserts one execution of a job of the given workspace; the `select` from `jobs` makes a job
/// of another workspace behave as absent (no row inserted).
const INSERT_EXECUTION: &str = "insert into executions
        (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, locked_by, lease_until,
         finished_at)
    select $1, workspace_id, id, $2, $3, $4, $5, $6, $7, $8 from jobs
    where id = $9 and workspace_id = $10";

/// [`INSERT_EXECUTION`], but an occurrence that exists already is left alone.
const INSERT_EXECUTION_ONCE: &str = "insert into executions
        (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, locked_by, lease_until,
         finished_at)
    select $1, workspace_id, id, $2, $3, $4, $5, $6, $7, $8 from jobs
    where id = $9 and workspace_id = $10
    on conflict (job_id, scheduled_for) do nothing";

/// Materializes simple occurrences (see [`Occurrence::is_simple`], sorted by job id) in three statements:
/// lock the jobs in id order, one compare-and-set of every job's `next_run_at`, one insert of
/// the executions of the jobs it advanced. The same rules as the one-by-one path: a job not
/// advanced, or an occurrence that exists already, is superseded.
async fn materialize_simple(
    tx: &mut Transaction<'static, Postgres>,
    occurrences: &[&Occurrence],
) -> StoreResult<Vec<Materialized>> {
    let job_ids: Vec<&str> = occurrences.iter().map(|o| o.job_id.as_str()).collect();
    let expected: Vec<DateTime<Utc>> = occurrences
        .iter()
        .map(|o| ms(o.expected_next_run_at))
        .collect();
    let new: Vec<Option<DateTime<Utc>>> = occurrences
        .iter()
        .map(|o| opt_ms(o.new_next_run_at))
        .collect();
    let workspaces: Vec<&str> = occurrences
        .iter()
        .map(|o| o.workspace_id.as_str())
        .collect();
    sqlx::query("select id from jobs where id = any($1) order by id for update")
        .bind(&job_ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
    let advanced: Vec<String> = sqlx::query_scalar(
        "update jobs j set next_run_at = v.new
         from unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[])
              as v(id, expected, new, workspace_id)
         where j.id = v.id and not j.paused and j.next_run_at = v.expected
           and j.workspace_id = v.workspace_id
         returning j.id",
    )
    .bind(&job_ids)
    .bind(&expected)
    .bind(&new)
    .bind(&workspaces)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    if advanced.is_empty() {
        return Ok(vec![Materialized::Superseded; occurrences.len()]);
    }
    let advanced: std::collections::HashSet<String> = advanced.into_iter().collect();
    let queued = enum_text(&ExecutionStatus::Queued)?;
    let running = enum_text(&ExecutionStatus::Running)?;
    let mut ids = Vec::new();
    let mut execution_workspaces = Vec::new();
    let mut jobs = Vec::new();
    let mut scheduled = Vec::new();
    let mut triggers = Vec::new();
    let mut statuses = Vec::new();
    let mut run_ats = Vec::new();
    let mut holders: Vec<Option<String>> = Vec::new();
    let mut lease_untils: Vec<Option<DateTime<Utc>>> = Vec::new();
    for occurrence in occurrences {
        if !advanced.contains(&occurrence.job_id) {
            continue;
        }
        let execution = &occurrence.executions[0];
        let lease = execution.lease.as_ref();
        ids.push(execution.id.clone());
        execution_workspaces.push(execution.workspace_id.clone());
        jobs.push(execution.job_id.clone());
        scheduled.push(ms(execution.scheduled_for));
        triggers.push(enum_text(&execution.trigger)?);
        statuses.push(if lease.is_some() {
            running.clone()
        } else {
            queued.clone()
        });
        run_ats.push(ms(execution.run_at));
        holders.push(lease.map(|lease| lease.node_id.clone()));
        lease_untils.push(lease.map(|lease| ms(lease.until)));
    }
    let inserted: Vec<String> = sqlx::query_scalar(
        "insert into executions
            (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, locked_by,
             lease_until)
         select v.id, j.workspace_id, j.id, v.scheduled_for, v.trigger, v.status, v.run_at,
                v.locked_by, v.lease_until
         from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
                     $6::text[], $7::timestamptz[], $8::text[], $9::timestamptz[])
              as v(id, workspace_id, job_id, scheduled_for, trigger, status, run_at, locked_by,
                   lease_until)
         join jobs j on j.id = v.job_id and j.workspace_id = v.workspace_id
         on conflict (job_id, scheduled_for) do nothing
         returning job_id",
    )
    .bind(&ids)
    .bind(&execution_workspaces)
    .bind(&jobs)
    .bind(&scheduled)
    .bind(&triggers)
    .bind(&statuses)
    .bind(&run_ats)
    .bind(&holders)
    .bind(&lease_untils)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
    Ok(occurrences
        .iter()
        .map(|occurrence| {
            if inserted.contains(&occurrence.job_id) {
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
    conn: &mut PgConnection,
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
    tx: &mut Transaction<'static, Postgres>,
    job_id: &str,
    at: DateTime<Utc>,
    replaced_by: DateTime<Utc>,
) -> StoreResult<()> {
    // Locked first, in id order, so that none changes (a claim turning a queued one into a
    // running one) between deciding which attempts were cut and cancelling them.
    let unfinished: Vec<(String, String, i64)> = sqlx::query_as(
        // The where clause of `executions_unfinished_by_job`.
        "select id, status, attempt_count from executions
         where job_id = $1 and status in ('queued', 'running', 'retrying')
         order by id
         for update",
    )
    .bind(job_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    if unfinished.is_empty() {
        return Ok(());
    }
    for (execution_id, status, attempts_done) in &unfinished {
        if status != "running" {
            continue;
        }
        let attempt = Attempt {
            number: u32::try_from(attempts_done + 1)
                .map_err(|_| StoreError::Corrupt(format!("attempt count {attempts_done}")))?,
            started_at: at,
            duration_ms: 0,
            status_code: None,
            error: Some(AttemptError {
                kind: ErrorKind::Cancelled,
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
        rows::insert_attempts(tx, &[(execution_id, &attempt)]).await?;
    }
    let ids: Vec<&str> = unfinished.iter().map(|(id, _, _)| id.as_str()).collect();
    sqlx::query(
        "update executions
         set attempt_count = attempt_count + case when status = 'running' then 1 else 0 end,
             status = 'cancelled', finished_at = $1,
             duration_ms = (extract(epoch from $1 - started_at) * 1000)::bigint,
             locked_by = null, lease_until = null
         where id = any($2)",
    )
    .bind(ms(at))
    .bind(&ids)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn execution_conflict(execution: &NewExecution) -> impl FnOnce(&str) -> String {
    move |constraint| {
        if constraint.ends_with("_pkey") {
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

fn job_conflict(err: sqlx::Error, job: &Job) -> StoreError {
    conflict_or_db_err(err, |constraint| {
        if constraint.ends_with("_pkey") {
            format!("job `{}`", job.id)
        } else {
            format!("a job named `{}`", job.spec.name)
        }
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        let expected = Self::expected_schema_version();
        let has_table: bool =
            sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        let applied: Option<i64> = if has_table {
            sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
                .fetch_one(&self.pool)
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
        sqlx::query(
            "insert into workspaces
                (id, slug, signing_secret, previous_signing_secret, signing_secret_rotated_at,
                 created_at)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&workspace.id)
        .bind(&workspace.slug)
        .bind(&workspace.signing_secret)
        .bind(&workspace.previous_signing_secret)
        .bind(opt_ms(workspace.signing_secret_rotated_at))
        .bind(ms(workspace.created_at))
        .execute(&self.pool)
        .await
        .map_err(|err| {
            conflict_or_db_err(err, |constraint| {
                if constraint.ends_with("_pkey") {
                    format!("workspace id `{}`", workspace.id)
                } else {
                    format!("workspace `{}`", workspace.slug)
                }
            })
        })?;
        Ok(())
    }

    async fn workspace(&self, id: &str) -> StoreResult<Option<Workspace>> {
        let row = sqlx::query(concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>> {
        let row = sqlx::query(concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where slug = $1"
        ))
        .bind(slug)
        .fetch_optional(&self.pool)
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
        // In an UPDATE every right-hand side reads the old row, so `previous` gets the old current.
        let row = sqlx::query(concat!(
            "update workspaces
             set previous_signing_secret = signing_secret, signing_secret = $1,
                 signing_secret_rotated_at = $2
             where id = $3
             returning ",
            workspace_columns!()
        ))
        .bind(new_secret)
        .bind(ms(at))
        .bind(workspace_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref()
            .map(workspace_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        sqlx::query(
            "insert into api_keys
                (id, workspace_id, name, key_hash, scope, created_at, last_used_at, revoked_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&key.id)
        .bind(&key.workspace_id)
        .bind(&key.name)
        .bind(&key.key_hash)
        .bind(key.scope.as_str())
        .bind(ms(key.created_at))
        .bind(key.last_used_at.map(ms))
        .bind(key.revoked_at.map(ms))
        .execute(&self.pool)
        .await
        .map_err(|err| {
            conflict_or_db_err(err, |constraint| {
                if constraint.ends_with("_pkey") {
                    format!("API key `{}`", key.id)
                } else {
                    "an API key with this hash".to_owned()
                }
            })
        })?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(concat!(
            "select ",
            api_key_columns!(),
            " from api_keys where key_hash = $1"
        ))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(rows::api_key_from_row).transpose()
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let email = user.email.to_lowercase();
        sqlx::query(
            "insert into users (id, workspace_id, email, password_hash, created_at)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(&user.id)
        .bind(&user.workspace_id)
        .bind(&email)
        .bind(&user.password_hash)
        .bind(ms(user.created_at))
        .execute(&self.pool)
        .await
        .map_err(|err| {
            conflict_or_db_err(err, |constraint| {
                if constraint.ends_with("_pkey") {
                    format!("user id `{}`", user.id)
                } else {
                    format!("user `{email}`")
                }
            })
        })?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "select id, workspace_id, email, password_hash, created_at from users
             where email = $1",
        )
        .bind(email.to_lowercase())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(rows::user_from_row).transpose()
    }

    async fn insert_job(&self, job: &Job) -> StoreResult<()> {
        let spec = to_json(&self.seal_spec(job).await?)?;
        sqlx::query(
            "insert into jobs
                (id, workspace_id, name, spec, paused, next_run_at, created_at, updated_at,
                 keep_last)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&job.id)
        .bind(&job.workspace_id)
        .bind(&job.spec.name)
        .bind(spec)
        .bind(job.spec.paused)
        .bind(opt_ms(job.next_run_at))
        .bind(ms(job.created_at))
        .bind(ms(job.updated_at))
        .bind(job.spec.keep_last.map(i64::from))
        .execute(&self.pool)
        .await
        .map_err(|err| job_conflict(err, job))?;
        Ok(())
    }

    async fn job(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "select ",
            job_columns!(),
            " from jobs where id = $1 and workspace_id = $2"
        ))
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(&self.pool)
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
                " from jobs where workspace_id = $1 order by id limit $2"
            ))
            .bind(workspace_id)
            .bind(fetch_limit(page)),
            Some(after) => sqlx::query(concat!(
                "select ",
                job_columns!(),
                " from jobs where workspace_id = $1 and id > $3 order by id limit $2"
            ))
            .bind(workspace_id)
            .bind(fetch_limit(page))
            .bind(after.as_str()),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(db_err)?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        self.open_jobs(&mut jobs).await?;
        Ok(into_page(jobs, page, |job| &job.id))
    }

    async fn update_job(&self, job: &Job) -> StoreResult<()> {
        let spec = to_json(&self.seal_spec(job).await?)?;
        retrying(|| self.update_job_once(job, &spec)).await
    }

    async fn pause_job(
        &self,
        workspace_id: &str,
        id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        retrying(|| self.pause_job_once(workspace_id, id, at)).await
    }

    async fn delete_job(&self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        // Executions and their attempts go with it (`on delete cascade`): the job's row is
        // locked first, then its executions, the order every other writer follows.
        let done = retrying(move || async move {
            sqlx::query("delete from jobs where id = $1 and workspace_id = $2")
                .bind(id)
                .bind(workspace_id)
                .execute(&self.pool)
                .await
                .map_err(db_err)
        })
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn due_jobs(&self, until: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(DUE_JOBS)
            .bind(ms(until))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        self.open_jobs(&mut jobs).await?;
        Ok(jobs)
    }

    async fn claim_due_jobs(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Job>> {
        let mut jobs = retrying(|| self.claim_due_jobs_once(lease, now, until, limit)).await?;
        // `returning` does not keep the order of the candidates.
        jobs.sort_by(|a, b| {
            a.next_run_at
                .cmp(&b.next_run_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(jobs)
    }

    async fn earliest_next_run(&self) -> StoreResult<Option<DateTime<Utc>>> {
        sqlx::query_scalar(
            "select min(next_run_at) from jobs where not paused and next_run_at is not null",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn materialize(&self, occurrences: &[Occurrence]) -> StoreResult<Vec<Materialized>> {
        if occurrences.is_empty() {
            return Ok(Vec::new());
        }
        retrying(|| self.materialize_once(occurrences)).await
    }

    async fn insert_execution(&self, execution: &NewExecution) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let inserted = insert_execution_row(&mut conn, INSERT_EXECUTION, execution, false)
            .await
            .map_err(|err| conflict_or_db_err(err, execution_conflict(execution)))?;
        if inserted == 0 {
            // No such job in this workspace.
            return Err(StoreError::NotFound);
        }
        Ok(())
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
        let (rows, cached, stored) = retrying(|| self.claim_once(lease, now, limit)).await?;
        self.claimed_with_specs(&rows, cached, stored).await
    }

    async fn record_attempts(&self, records: &[AttemptRecord]) -> StoreResult<Vec<bool>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        retrying(|| self.record_attempts_once(records)).await
    }

    async fn renew_leases(&self, node_id: &str, until: DateTime<Utc>) -> StoreResult<u64> {
        let until = ms(until);
        let done = retrying(move || async move {
            sqlx::query(RENEW_LEASES)
                .bind(until)
                .bind(node_id)
                .execute(&self.pool)
                .await
                .map_err(db_err)
        })
        .await?;
        Ok(done.rows_affected())
    }

    async fn execution(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Execution>> {
        let Some(row) = sqlx::query(concat!(
            "select ",
            execution_columns!(),
            " from executions where id = $1 and workspace_id = $2"
        ))
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut execution = execution_from_row(&row)?;
        let attempts = sqlx::query(concat!(
            "select ",
            attempt_columns!(),
            " from attempts where execution_id = $1 order by number"
        ))
        .bind(id)
        .fetch_all(&self.pool)
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
        // One static statement per shape, so each is prepared once and reads the occurrence key
        // `(job_id, scheduled_for)` backwards as a range. The cursor is the last execution's id;
        // the next page starts below its scheduled instant (unique within the job).
        let query = match (&page.after, filter.status) {
            (None, None) => sqlx::query(concat!(
                "select ",
                execution_columns!(),
                " from executions where job_id = $1 and workspace_id = $2
                  order by scheduled_for desc limit $3"
            ))
            .bind(job_id)
            .bind(workspace_id)
            .bind(fetch_limit(page)),
            (Some(after), None) => sqlx::query(concat!(
                "select ",
                execution_columns!(),
                " from executions where job_id = $1 and workspace_id = $2
                  and scheduled_for < (select scheduled_for from executions
                                       where id = $4 and job_id = $1)
                  order by scheduled_for desc limit $3"
            ))
            .bind(job_id)
            .bind(workspace_id)
            .bind(fetch_limit(page))
            .bind(after.as_str()),
            (None, Some(status)) => sqlx::query(HISTORY_BY_STATUS.statement(status, false))
                .bind(job_id)
                .bind(workspace_id)
                .bind(fetch_limit(page))
                .bind(enum_text(&status)?),
            (Some(after), Some(status)) => sqlx::query(HISTORY_BY_STATUS.statement(status, true))
                .bind(job_id)
                .bind(workspace_id)
                .bind(fetch_limit(page))
                .bind(after.as_str())
                .bind(enum_text(&status)?),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(db_err)?;
        let executions = rows
            .iter()
            .map(execution_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut page = into_page(executions, page, |execution| &execution.id);
        if page.items.is_empty() {
            return Ok(page);
        }
        // The page's attempts in one query.
        let ids: Vec<&str> = page.items.iter().map(|e| e.id.as_str()).collect();
        let attempt_rows = sqlx::query(concat!(
            "select ",
            attempt_columns!(),
            " from attempts where execution_id = any($1) order by execution_id, number"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
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

/// A job's history of one status, a statement for each [`cronhook_store::StatusIndex`].
/// Parameters: job id, workspace id, limit, [the cursor's execution id,] status. The literal
/// `in` lists are the partial indexes' predicates, which a query must imply for PostgreSQL to
/// read them (`status = $n` alone implies nothing in a generic plan).
const HISTORY_BY_STATUS: HistoryByStatus = HistoryByStatus {
    occurrences: (HISTORY_WITH_STATUS, HISTORY_WITH_STATUS_AFTER),
    unsuccessful: (HISTORY_UNSUCCESSFUL, HISTORY_UNSUCCESSFUL_AFTER),
    unfinished: (HISTORY_UNFINISHED, HISTORY_UNFINISHED_AFTER),
};

/// Succeeded executions, along the occurrence key: most of a history succeeded.
const HISTORY_WITH_STATUS: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions where job_id = $1 and workspace_id = $2 and status = $4
      order by scheduled_for desc limit $3"
);

/// [`HISTORY_WITH_STATUS`] after a cursor.
const HISTORY_WITH_STATUS_AFTER: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions
      where job_id = $1 and workspace_id = $2 and status = $5
        and scheduled_for < (select scheduled_for from executions where id = $4 and job_id = $1)
      order by scheduled_for desc limit $3"
);

/// Failed, skipped or cancelled executions, in order from `executions_unsuccessful_by_job`.
const HISTORY_UNSUCCESSFUL: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions
      where job_id = $1 and workspace_id = $2 and status = $4
        and status in ('failed', 'skipped', 'cancelled')
      order by scheduled_for desc limit $3"
);

/// [`HISTORY_UNSUCCESSFUL`] after a cursor.
const HISTORY_UNSUCCESSFUL_AFTER: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions
      where job_id = $1 and workspace_id = $2 and status = $5
        and status in ('failed', 'skipped', 'cancelled')
        and scheduled_for < (select scheduled_for from executions where id = $4 and job_id = $1)
      order by scheduled_for desc limit $3"
);

/// Queued, running or retrying executions: the job's few unfinished ones, from
/// `executions_unfinished_by_job`, sorted.
const HISTORY_UNFINISHED: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions
      where job_id = $1 and workspace_id = $2 and status = $4
        and status in ('queued', 'running', 'retrying')
      order by scheduled_for desc limit $3"
);

/// [`HISTORY_UNFINISHED`] after a cursor.
const HISTORY_UNFINISHED_AFTER: &str = concat!(
    "select ",
    execution_columns!(),
    " from executions
      where job_id = $1 and workspace_id = $2 and status = $5
        and status in ('queued', 'running', 'retrying')
        and scheduled_for < (select scheduled_for from executions where id = $4 and job_id = $1)
      order by scheduled_for desc limit $3"
);

#[cfg(test)]
mod tests {
    //! Plans that must stay bounded however much the tables hold, on a fresh database from the
    //! integration tests' support (`tests/support`).

    use sqlx::{Executor, Row};

    use super::*;
    use crate::test_support as support;

    /// What `explain` printed for `query`, one line per row.
    async fn plan(
        connection: &mut PgConnection,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> String {
        query
            .fetch_all(connection)
            .await
            .expect("explain")
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A fresh database holding a workspace `wsp_plan` and what `rows` inserts, analyzed, on a
    /// connection whose prepared statements keep their generic plan: the one a statement ends
    /// up with, planned with no value known.
    async fn generic_plans(rows: &str) -> (support::TestDatabase, PgConnection) {
        let database = support::TestDatabase::create().await;
        database.store().await;
        let mut connection = database.connection().await;
        connection
            .execute(sqlx::AssertSqlSafe(format!(
                "insert into workspaces (id, slug, signing_secret, created_at)
                 values ('wsp_plan', 'plan', 'whsec_plan', now());
                 {rows}
                 analyze jobs;
                 analyze executions;
                 set plan_cache_mode = force_generic_plan;"
            )))
            .await
            .expect("rows to plan by");
        (database, connection)
    }

    /// The plan `sql`, prepared with the parameter types `types` (`""` to infer them), keeps
    /// when run with `arguments` (SQL text). `explain` of a statement with bound values plans
    /// for those values; a prepared statement's `explain execute` shows the plan it keeps.
    async fn generic_plan(
        connection: &mut PgConnection,
        types: &str,
        sql: &str,
        arguments: &str,
    ) -> String {
        connection
            .execute(sqlx::AssertSqlSafe(format!(
                "prepare planned {types} as {sql}"
            )))
            .await
            .expect("prepare");
        let explain = format!("explain execute planned({arguments})");
        let planned = plan(
            connection,
            sqlx::query(sqlx::AssertSqlSafe(explain.as_str())),
        )
        .await;
        connection
            .execute("deallocate planned")
            .await
            .expect("deallocate");
        planned
    }

    /// Claims (every second) and lease renewals (every third of a lease), on every node, read
    /// the claimable executions up to an instant, not every retry still backing off. Sequential
    /// scans are ruled out so that an empty table still shows whether the index bounds them.
    #[tokio::test]
    async fn claims_and_renewals_read_the_claimable_index_only_up_to_an_instant() {
        let database = support::TestDatabase::create().await;
        database.store().await;
        let mut connection = database.connection().await;
        connection
            .execute("set enable_seqscan = off")
            .await
            .expect("set enable_seqscan");
        let now = Utc::now();
        let (claim, renew) = (
            format!("explain {CLAIM}"),
            format!("explain {RENEW_LEASES}"),
        );
        let claim = sqlx::query(sqlx::AssertSqlSafe(claim.as_str()))
            .bind(now)
            .bind(10_i64)
            .bind("node")
            .bind(now);
        let claiming = plan(&mut connection, claim).await;
        assert!(claiming.contains("executions_claimable"), "{claiming}");
        assert!(claiming.contains("Index Cond: (run_at <= "), "{claiming}");
        let renew = sqlx::query(sqlx::AssertSqlSafe(renew.as_str()))
            .bind(now)
            .bind("node");
        let renewal = plan(&mut connection, renew).await;
        assert!(renewal.contains("executions_claimable"), "{renewal}");
        assert!(renewal.contains("Index Cond: (run_at < "), "{renewal}");
    }

    /// A history of a rare status reads only that status's executions of the job, in the
    /// generic plan a prepared statement ends up with (no status known), with a history of
    /// 20 000 succeeded executions and statistics to plan by.
    #[tokio::test]
    async fn histories_of_rare_statuses_read_their_partial_indexes() {
        let (_database, mut connection) = generic_plans(
            "insert into jobs (id, workspace_id, name, spec, created_at, updated_at)
             values ('job_plan', 'wsp_plan', 'plan', '{}', now(), now());
             insert into executions
                 (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             select 'exe_' || i, 'wsp_plan', 'job_plan', to_timestamp(i), 'schedule',
                    case when i % 5000 = 0 then 'failed' else 'succeeded' end, to_timestamp(i)
             from generate_series(1, 20000) i;",
        )
        .await;
        let expected = [
            (ExecutionStatus::Failed, "executions_unsuccessful_by_job"),
            (ExecutionStatus::Skipped, "executions_unsuccessful_by_job"),
            (ExecutionStatus::Cancelled, "executions_unsuccessful_by_job"),
            (ExecutionStatus::Queued, "executions_unfinished_by_job"),
            (ExecutionStatus::Running, "executions_unfinished_by_job"),
            (ExecutionStatus::Retrying, "executions_unfinished_by_job"),
        ];
        for (status, index) in expected {
            for after_cursor in [false, true] {
                let status_text = enum_text(&status).expect("a status");
                let arguments = if after_cursor {
                    format!("'job_plan', 'wsp_plan', 50, 'exe_10000', '{status_text}'")
                } else {
                    format!("'job_plan', 'wsp_plan', 50, '{status_text}'")
                };
                let planned = generic_plan(
                    &mut connection,
                    "",
                    HISTORY_BY_STATUS.statement(status, after_cursor),
                    &arguments,
                )
                .await;
                assert!(planned.contains(index), "{status:?}: {planned}");
                assert!(!planned.contains("Seq Scan"), "{status:?}: {planned}");
                assert!(
                    planned.contains("$"),
                    "the generic plan, with its parameters: {planned}"
                );
            }
        }
    }

    /// Pruning by age reads `executions_finished` only up to the later cut-off: a pass that
    /// finds nothing old enough reads nothing, instead of the whole history.
    #[tokio::test]
    async fn pruning_by_age_reads_the_finished_index_up_to_the_later_cut_off() {
        let (_database, mut connection) = generic_plans(
            "insert into jobs (id, workspace_id, name, spec, created_at, updated_at)
             values ('job_plan', 'wsp_plan', 'plan', '{}', now(), now());
             insert into executions
                 (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, finished_at)
             select 'exe_' || i, 'wsp_plan', 'job_plan', to_timestamp(i), 'schedule',
                    'succeeded', to_timestamp(i), now() - i * interval '1 second'
             from generate_series(1, 20000) i;",
        )
        .await;
        let planned = generic_plan(
            &mut connection,
            "(timestamptz, timestamptz, bigint)",
            maintenance::PRUNE_BY_AGE,
            "now() - interval '30 days', now() - interval '90 days', 500",
        )
        .await;
        assert!(
            planned.contains("Index Scan using executions_finished")
                && planned.contains("Index Cond: (finished_at < GREATEST($1, $2))"),
            "{planned}"
        );
    }

    /// Pruning by `keep_last` reads the jobs that have one from their index, and each one's
    /// executions as two ranges of the occurrence key.
    #[tokio::test]
    async fn pruning_by_keep_last_reads_only_the_capped_jobs_and_ranges_of_their_history() {
        let (_database, mut connection) = generic_plans(
            "insert into jobs
                 (id, workspace_id, name, spec, created_at, updated_at, keep_last)
             select 'job_' || i, 'wsp_plan', 'plan' || i,
                    case when i = 1 then '{\"keep_last\": 3}' else '{}' end, now(), now(),
                    case when i = 1 then 3 end
             from generate_series(1, 2000) i;
             insert into executions
                 (id, workspace_id, job_id, scheduled_for, trigger, status, run_at)
             select 'exe_' || i, 'wsp_plan', 'job_' || (i % 2000 + 1), to_timestamp(i),
                    'schedule', 'succeeded', to_timestamp(i)
             from generate_series(1, 40000) i;",
        )
        .await;
        for (sql, arguments, index) in [
            (
                maintenance::JOBS_KEEPING_LAST,
                "'', 64",
                "jobs_keeping_last",
            ),
            (
                maintenance::PRUNE_BEYOND_KEEP_LAST,
                "'job_1', 3, 500",
                "executions_job_id_scheduled_for_key",
            ),
        ] {
            let planned = generic_plan(&mut connection, "", sql, arguments).await;
            assert!(planned.contains(index), "{sql}: {planned}");
            assert!(
                !planned.contains("Seq Scan on jobs") && !planned.contains("Sort"),
                "{sql}: {planned}"
            );
        }
    }
}
