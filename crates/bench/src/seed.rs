//! Seeding many idle jobs fast: a few through the API (so real, validated jobs exist), the rest
//! copied from the first of them straight into the database in large multi-row statements.
//!
//! Creating a million jobs through the API would take ~8 minutes here and measure the API, not
//! what an idle job costs the scheduler. The copies differ from their template only in id and
//! name, so they are exactly what the API would have stored for the same spec.

use anyhow::Context;
use serde_json::json;
use sqlx::Connection;

use crate::process::{Api, FreshDatabase};

/// Jobs created through the API before the bulk copy.
const THROUGH_API: u64 = 10;
/// Rows per insert statement.
const CHUNK: usize = 20_000;

/// Seeds `count` jobs that do not fire for months (`0 0 1 1 *`).
pub async fn seed_idle_jobs(api: &Api, database: &FreshDatabase, count: u64) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let mut template = None;
    for index in 0..count.min(THROUGH_API) {
        let id = api
            .create_job(&json!({
                "name": format!("idle-{index}"),
                "schedule": {"cron": "0 0 1 1 *"},
                "request": {"url": "http://127.0.0.1:9/idle"},
            }))
            .await
            .context("creating an idle job through the API")?;
        template.get_or_insert(id);
    }
    let Some(template) = template else {
        return Ok(());
    };
    let copies = count.saturating_sub(THROUGH_API);
    if copies == 0 {
        return Ok(());
    }
    let ids: Vec<String> = (0..copies)
        .map(|_| cronhook_core::ids::new_id(cronhook_core::ids::JOB))
        .collect();
    let stored = if database.url.starts_with("sqlite:") {
        copy_sqlite(&database.url, &template, &ids).await?
    } else {
        copy_postgres(&database.url, &template, &ids).await?
    };
    // The figures measured with these jobs mean nothing unless they are all there.
    if stored < count {
        anyhow::bail!("seeded {count} idle jobs but the database holds {stored} jobs");
    }
    Ok(())
}

/// The statement's column list and select list: every column of the template, with `id` and
/// `name` taken from the generated values instead.
fn column_lists(columns: &[String], id: &str, name: &str) -> (String, String) {
    let select = columns
        .iter()
        .map(|column| match column.as_str() {
            "id" => id.to_owned(),
            "name" => name.to_owned(),
            other => format!("t.{other}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    (columns.join(", "), select)
}

/// Copies the template once per id; returns the jobs stored afterwards.
async fn copy_sqlite(url: &str, template: &str, ids: &[String]) -> anyhow::Result<u64> {
    let mut connection = sqlx::SqliteConnection::connect(url)
        .await
        .context("opening the SQLite file to seed")?;
    let columns: Vec<String> = sqlx::query_scalar("select name from pragma_table_info('jobs')")
        .fetch_all(&mut connection)
        .await?;
    let (insert, select) = column_lists(&columns, "j.value", "'idle-copy-' || j.key || '-' || ?1");
    let statement = format!(
        "insert into jobs ({insert}) select {select} from jobs t, json_each(?2) j where t.id = ?3"
    );
    for (chunk_index, chunk) in ids.chunks(CHUNK).enumerate() {
        let mut tx = connection.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
            .bind(chunk_index as i64)
            .bind(serde_json::to_string(chunk)?)
            .bind(template)
            .execute(&mut *tx)
            .await
            .context("copying idle jobs")?;
        tx.commit().await?;
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&mut connection)
        .await?;
    Ok(u64::try_from(stored).unwrap_or(0))
}

/// Copies the template once per id; returns the jobs stored afterwards.
async fn copy_postgres(url: &str, template: &str, ids: &[String]) -> anyhow::Result<u64> {
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL to seed")?;
    let columns: Vec<String> = sqlx::query_scalar(
        "select column_name::text from information_schema.columns
         where table_name = 'jobs' and table_schema = current_schema() order by ordinal_position",
    )
    .fetch_all(&mut connection)
    .await?;
    let (insert, select) = column_lists(&columns, "j.id", "'idle-copy-' || j.n || '-' || $1");
    let statement = format!(
        "insert into jobs ({insert}) select {select}
         from jobs t, unnest($2::text[]) with ordinality as j(id, n) where t.id = $3"
    );
    for (chunk_index, chunk) in ids.chunks(CHUNK).enumerate() {
        sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
            .bind(chunk_index.to_string())
            .bind(chunk)
            .bind(template)
            .execute(&mut connection)
            .await
            .context("copying idle jobs")?;
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&mut connection)
        .await?;
    Ok(u64::try_from(stored).unwrap_or(0))
}

/// Executions written per statement when seeding executions.
const EXECUTIONS_CHUNK: u64 = 200_000;

/// Executions a long-running deployment holds besides those of its firing jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Finished executions, one per millisecond within the last `count` milliseconds (inside
    /// any retention period, so the pruner leaves them): the history that periodic queries of
    /// `executions` must not read through. One in [`HISTORY_FAILED_EVERY`] failed, as a healthy
    /// job's few failures of a month, which a history filtered by status must not read through
    /// either.
    History,
    /// Executions waiting to retry a day from now, one per millisecond, still held by a node
    /// that left: a target that was down for a while, whose backlog periodic queries must not
    /// read through either.
    WaitingRetries,
}

impl Stored {
    fn name(self) -> &'static str {
        match self {
            Stored::History => "history",
            Stored::WaitingRetries => "waiting-retries",
        }
    }

    /// Added to the row number in ids, so that both kinds can be seeded in one database.
    fn id_offset(self) -> i64 {
        match self {
            Stored::History => 0,
            Stored::WaitingRetries => 1 << 48,
        }
    }

    /// The node holding the executions: the one the waiting retries were left by.
    fn held_by(self) -> Option<&'static str> {
        match self {
            Stored::History => None,
            Stored::WaitingRetries => Some("departed-node"),
        }
    }
}

/// One in this many of the seeded history's executions failed (the rest succeeded).
pub const HISTORY_FAILED_EVERY: u64 = 100_000;

/// Seeds `count` executions of `kind`, all of one idle job of their own, in bulk SQL, with ids
/// in the product's format (older than any new one), and counts them. Returns the job's id,
/// None when `count` is 0.
pub async fn seed_executions(
    api: &Api,
    database: &FreshDatabase,
    kind: Stored,
    count: u64,
) -> anyhow::Result<Option<String>> {
    if count == 0 {
        return Ok(None);
    }
    let job = api
        .create_job(&json!({
            "name": kind.name(),
            "schedule": {"cron": "0 0 1 1 *"},
            "request": {"url": "http://127.0.0.1:9/stored"},
        }))
        .await
        .context("creating the job the executions belong to")?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let stored = if database.url.starts_with("sqlite:") {
        executions_sqlite(&database.url, &job, kind, count, now_ms).await?
    } else {
        executions_postgres(&database.url, &job, kind, count, now_ms).await?
    };
    if stored < count {
        anyhow::bail!(
            "seeded {count} {} executions but the database holds {stored}",
            kind.name()
        );
    }
    Ok(Some(job))
}

/// The status of the history's row `n.i`, in SQL both databases read alike: failed once every
/// [`HISTORY_FAILED_EVERY`] rows, succeeded otherwise.
fn history_status() -> String {
    format!(
        "case when n.i % {HISTORY_FAILED_EVERY} = {} then 'failed' else 'succeeded' end",
        HISTORY_FAILED_EVERY - 1
    )
}

/// The first and last index of each statement.
fn execution_chunks(count: u64) -> impl Iterator<Item = (i64, i64)> {
    (0..count)
        .step_by(EXECUTIONS_CHUNK as usize)
        .map(move |first| {
            let last = (first + EXECUTIONS_CHUNK).min(count) - 1;
            (first as i64, last as i64)
        })
}

/// Row `i`'s columns from `scheduled_for` on, from `?1` (now, in milliseconds), `i` and `?4`
/// (the holding node): SQLite's select list.
fn sqlite_select(kind: Stored) -> String {
    match kind {
        // Scheduled, started, finished 5 ms later; `i` milliseconds ago.
        Stored::History => format!(
            "?1 - 1 - n.i - 5, 'schedule', {},
             ?1 - 1 - n.i - 5, 1, ?4, null, ?1 - 1 - n.i - 5, ?1 - 1 - n.i, 5",
            history_status()
        ),
        // Failed once a minute ago; retries a day and `i` milliseconds from now.
        Stored::WaitingRetries => "?1 - 60000 - n.i, 'schedule', 'retrying', ?1 + 86400000 + n.i,
             1, ?4, ?1 + 86400000 + n.i + 30000, ?1 - 60000 - n.i, null, null"
            .to_owned(),
    }
}

async fn executions_sqlite(
    url: &str,
    job: &str,
    kind: Stored,
    count: u64,
    now_ms: i64,
) -> anyhow::Result<u64> {
    let mut connection = sqlx::SqliteConnection::connect(url)
        .await
        .context("opening the SQLite file to seed")?;
    let statement = format!(
        "insert into executions
             (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, attempt_count,
              locked_by, lease_until, started_at, finished_at, duration_ms)
         with recursive n(i) as (select ?2 union all select i + 1 from n where i < ?3)
         select 'exe_' || printf('%032x', n.i + {}), j.workspace_id, j.id, {}
         from n, jobs j where j.id = ?5",
        kind.id_offset(),
        sqlite_select(kind)
    );
    for (first, last) in execution_chunks(count) {
        let mut tx = connection.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
            .bind(now_ms)
            .bind(first)
            .bind(last)
            .bind(kind.held_by())
            .bind(job)
            .execute(&mut *tx)
            .await
            .context("seeding executions")?;
        tx.commit().await?;
    }
    drop(connection);
    stored_executions(url, job).await
}

/// PostgreSQL's select list, as [`sqlite_select`]'s (`$1` now in milliseconds, `pg_temp.at`
/// the instant of a number of milliseconds).
fn postgres_select(kind: Stored) -> String {
    match kind {
        Stored::History => format!(
            "pg_temp.at($1 - 1 - n.i - 5), 'schedule', {}, pg_temp.at($1 - 1 - n.i - 5), 1, $4,
             null, pg_temp.at($1 - 1 - n.i - 5), pg_temp.at($1 - 1 - n.i), 5",
            history_status()
        ),
        Stored::WaitingRetries => {
            "pg_temp.at($1 - 60000 - n.i), 'schedule', 'retrying', pg_temp.at($1 + 86400000 + n.i),
             1, $4, pg_temp.at($1 + 86400000 + n.i + 30000), pg_temp.at($1 - 60000 - n.i), null,
             null"
                .to_owned()
        }
    }
}

async fn executions_postgres(
    url: &str,
    job: &str,
    kind: Stored,
    count: u64,
    now_ms: i64,
) -> anyhow::Result<u64> {
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL to seed")?;
    // `pg_temp.at(ms)`: the instant `ms` milliseconds after the epoch. A function of this
    // session only, so the schema does not change.
    sqlx::query(
        "create function pg_temp.at(epoch_ms bigint) returns timestamptz
         language sql immutable as $$ select to_timestamp(0) + epoch_ms * interval '1 millisecond' $$",
    )
    .execute(&mut connection)
    .await
    .context("defining the seeding function")?;
    let statement = format!(
        "insert into executions
             (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, attempt_count,
              locked_by, lease_until, started_at, finished_at, duration_ms)
         select 'exe_' || lpad(to_hex(n.i + {}), 32, '0'), j.workspace_id, j.id, {}
         from generate_series($2::bigint, $3::bigint) n(i) join jobs j on j.id = $5",
        kind.id_offset(),
        postgres_select(kind)
    );
    for (first, last) in execution_chunks(count) {
        sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
            .bind(now_ms)
            .bind(first)
            .bind(last)
            .bind(kind.held_by())
            .bind(job)
            .execute(&mut connection)
            .await
            .context("seeding executions")?;
    }
    // Statistics, as autovacuum gathers them while a history grows: without them the planner
    // still sees the table as it was before the seeding, and the first queries after it plan
    // for a table that is not there.
    sqlx::query("analyze executions")
        .execute(&mut connection)
        .await
        .context("gathering statistics of the seeded executions")?;
    drop(connection);
    stored_executions(url, job).await
}

/// How many executions of `job` the database at `url` holds, whatever became of the job.
pub async fn stored_executions(url: &str, job: &str) -> anyhow::Result<u64> {
    let stored: i64 = if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query_scalar("select count(*) from executions where job_id = ?")
            .bind(job)
            .fetch_one(&mut connection)
            .await?
    } else {
        let mut connection = sqlx::PgConnection::connect(url).await?;
        sqlx::query_scalar("select count(*) from executions where job_id = $1")
            .bind(job)
            .fetch_one(&mut connection)
            .await?
    };
    Ok(u64::try_from(stored).unwrap_or(0))
}

/// Rows per statement when seeding the firing jobs' history.
const FIRING_HISTORY_CHUNK: u64 = 100_000;

/// Added to the row number in the ids of the firing jobs' history (see [`Stored::id_offset`]).
const FIRING_HISTORY_ID_OFFSET: i64 = 2 << 48;

/// Seeds `seconds` of history for each of the firing `jobs`: one finished execution a second
/// before `before_ms`, as if each job had fired that long already. Written job after job (a
/// job's rows together, in few pages, which is fast) rather than second after second as real
/// firing writes them, so each job's newest rows end a full page, where its next execution
/// goes. Returns the executions written.
pub async fn seed_firing_history(
    database: &FreshDatabase,
    jobs: &[String],
    seconds: u64,
    before_ms: i64,
) -> anyhow::Result<u64> {
    if seconds == 0 || jobs.is_empty() {
        return Ok(0);
    }
    let expected = seconds * jobs.len() as u64;
    let jobs_per_chunk = usize::try_from((FIRING_HISTORY_CHUNK / seconds).max(1))?;
    let seconds = i64::try_from(seconds)?;
    let sqlite = database.url.starts_with("sqlite:");
    // Row `n.i` of job number `k.key`: `seconds - n.i` seconds before `before_ms`.
    let statement = if sqlite {
        format!(
            "insert into executions
                 (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, attempt_count,
                  locked_by, lease_until, started_at, finished_at, duration_ms)
             with recursive n(i) as (select 0 union all select i + 1 from n where i < ?2 - 1)
             select 'exe_' || printf('%032x', {FIRING_HISTORY_ID_OFFSET} + (?3 + k.key) * ?2 + n.i),
                    j.workspace_id, j.id, ?1 - (?2 - n.i) * 1000, 'schedule', 'succeeded',
                    ?1 - (?2 - n.i) * 1000, 1, null, null, ?1 - (?2 - n.i) * 1000,
                    ?1 - (?2 - n.i) * 1000 + 5, 5
             from json_each(?4) k join jobs j on j.id = k.value, n
             order by k.key, n.i"
        )
    } else {
        format!(
            "insert into executions
                 (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, attempt_count,
                  locked_by, lease_until, started_at, finished_at, duration_ms)
             select 'exe_' || lpad(to_hex({FIRING_HISTORY_ID_OFFSET} + ($3 + k.key - 1) * $2 + n.i), 32, '0'),
                    j.workspace_id, j.id, at.t, 'schedule', 'succeeded', at.t, 1, null, null,
                    at.t, at.t + interval '5 milliseconds', 5
             from unnest($4::text[]) with ordinality k(id, key)
             join jobs j on j.id = k.id
             cross join generate_series(0::bigint, $2::bigint - 1) n(i)
             cross join lateral (select to_timestamp(0)
                 + ($1 - ($2 - n.i) * 1000) * interval '1 millisecond') at(t)
             order by k.key, n.i"
        )
    };
    // Each chunk with the number of its first job, which numbers its rows' ids.
    let chunks = jobs
        .chunks(jobs_per_chunk)
        .enumerate()
        .map(|(index, chunk)| ((index * jobs_per_chunk) as i64, chunk));
    let mut written = 0;
    if sqlite {
        let mut connection = sqlx::SqliteConnection::connect(&database.url)
            .await
            .context("opening the SQLite file to seed")?;
        for (first_job, chunk) in chunks {
            written += sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
                .bind(before_ms)
                .bind(seconds)
                .bind(first_job)
                .bind(serde_json::to_string(chunk)?)
                .execute(&mut connection)
                .await
                .context("seeding the firing jobs' history")?
                .rows_affected();
        }
        // What the seeding put in the WAL goes to the file now, not in the measured window
        // (a history that grew over weeks was checkpointed as it grew).
        sqlx::query("pragma wal_checkpoint(TRUNCATE)")
            .execute(&mut connection)
            .await
            .context("checkpointing the seeded history")?;
    } else {
        let mut connection = sqlx::PgConnection::connect(&database.url)
            .await
            .context("connecting to PostgreSQL to seed")?;
        for (first_job, chunk) in chunks {
            written += sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
                .bind(before_ms)
                .bind(seconds)
                .bind(first_job)
                .bind(chunk)
                .execute(&mut connection)
                .await
                .context("seeding the firing jobs' history")?
                .rows_affected();
        }
        // Statistics, as in `executions_postgres`.
        sqlx::query("analyze executions")
            .execute(&mut connection)
            .await
            .context("gathering statistics of the seeded executions")?;
    }
    if written < expected {
        anyhow::bail!("seeded {written} executions of the firing jobs' history, not {expected}");
    }
    Ok(written)
}
