//! Reading domain values out of rows, and writing attempts.

use chrono::{DateTime, Utc};
use cronhook_core::{Attempt, AttemptError, Execution, Job, JobSpec};
use cronhook_store::{ApiKey, ClaimedExecution, StoreError, StoreResult, User, Workspace};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::convert::{db_err, enum_from_text, enum_text, from_json, ms, signed, to_json, unsigned};

fn get<'r, T>(row: &'r PgRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(db_err)
}

fn instant(row: &PgRow, column: &str) -> StoreResult<DateTime<Utc>> {
    get(row, column)
}

fn opt_instant(row: &PgRow, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
    get(row, column)
}

/// Reads the columns of `workspace_columns!()`.
pub(crate) fn workspace_from_row(row: &PgRow) -> StoreResult<Workspace> {
    Ok(Workspace {
        id: get(row, "id")?,
        slug: get(row, "slug")?,
        signing_secret: get(row, "signing_secret")?,
        previous_signing_secret: get(row, "previous_signing_secret")?,
        signing_secret_rotated_at: opt_instant(row, "signing_secret_rotated_at")?,
        created_at: instant(row, "created_at")?,
    })
}

pub(crate) fn api_key_from_row(row: &PgRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        name: get(row, "name")?,
        key_hash: get(row, "key_hash")?,
        scope: {
            let scope: String = get(row, "scope")?;
            cronhook_store::ApiKeyScope::parse(&scope).ok_or_else(|| {
                cronhook_store::StoreError::Corrupt(format!("unknown API key scope `{scope}`"))
            })?
        },
        created_at: instant(row, "created_at")?,
        last_used_at: opt_instant(row, "last_used_at")?,
        revoked_at: opt_instant(row, "revoked_at")?,
    })
}

pub(crate) fn user_from_row(row: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        email: get(row, "email")?,
        password_hash: get(row, "password_hash")?,
        created_at: instant(row, "created_at")?,
    })
}

/// A stored spec, with the `name` and `paused` columns winning over the json's copies.
pub(crate) fn spec_from_columns(
    id: &str,
    json: &str,
    name: String,
    paused: bool,
) -> StoreResult<std::sync::Arc<JobSpec>> {
    let mut spec: JobSpec = from_json(json, &format!("spec of job `{id}`"))?;
    spec.name = name;
    spec.paused = paused;
    Ok(std::sync::Arc::new(spec))
}

/// Reads the columns of `job_columns!()`.
pub(crate) fn job_from_row(row: &PgRow) -> StoreResult<Job> {
    let id: String = get(row, "id")?;
    let spec = spec_from_columns(
        &id,
        get(row, "spec")?,
        get(row, "name")?,
        get(row, "paused")?,
    )?;
    job_with_spec(row, id, spec)
}

/// The job of a row of `job_columns!()` or `claimed_job_columns!()`, with `spec`.
fn job_with_spec(row: &PgRow, id: String, spec: std::sync::Arc<JobSpec>) -> StoreResult<Job> {
    Ok(Job {
        workspace_id: get(row, "workspace_id")?,
        spec,
        next_run_at: opt_instant(row, "next_run_at")?,
        created_at: instant(row, "created_at")?,
        updated_at: instant(row, "updated_at")?,
        id,
    })
}

/// The id and revision of a row of the due-jobs claim (`claimed_job_columns!()`).
pub(crate) fn claimed_job_revision(row: &PgRow) -> StoreResult<(&str, i64)> {
    Ok((get(row, "id")?, get(row, "revision")?))
}

/// Reads a row of the due-jobs claim (`claimed_job_columns!()`): the job with `cached`, its spec
/// opened at the row's revision, when there is one. Otherwise the spec is read from `stored`
/// (the job's id to its stored text) and not yet opened; the second value is then the row's
/// revision and the text's length, for the caller to open and cache it.
pub(crate) fn claimed_job_from_row(
    row: &PgRow,
    cached: Option<std::sync::Arc<JobSpec>>,
    stored: &std::collections::HashMap<String, String>,
) -> StoreResult<(Job, Option<(i64, usize)>)> {
    let id: String = get(row, "id")?;
    let (spec, opened_here) = match cached {
        Some(spec) => (spec, None),
        None => {
            // Read in the claim's transaction, which holds the row, so it is there.
            let text = stored.get(&id).ok_or_else(|| {
                StoreError::Corrupt(format!("claimed job `{id}` has no stored spec"))
            })?;
            let spec = spec_from_columns(&id, text, get(row, "name")?, get(row, "paused")?)?;
            (spec, Some((get(row, "revision")?, text.len())))
        }
    };
    Ok((job_with_spec(row, id, spec)?, opened_here))
}

/// Reads the columns of `execution_columns!()`; attempts are left empty for the caller.
pub(crate) fn execution_from_row(row: &PgRow) -> StoreResult<Execution> {
    Ok(Execution {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        job_id: get(row, "job_id")?,
        scheduled_for: instant(row, "scheduled_for")?,
        trigger: enum_from_text(get(row, "trigger")?, "executions.trigger")?,
        status: enum_from_text(get(row, "status")?, "executions.status")?,
        started_at: opt_instant(row, "started_at")?,
        finished_at: opt_instant(row, "finished_at")?,
        duration_ms: get::<Option<i64>>(row, "duration_ms")?
            .map(|value| unsigned(value, "executions.duration_ms"))
            .transpose()?,
        attempts: Vec::new(),
    })
}

/// The job id and the job's revision of a row of the claim statement.
pub(crate) fn claimed_execution_job(row: &PgRow) -> StoreResult<(&str, i64)> {
    Ok((get(row, "job_id")?, get(row, "job_revision")?))
}

/// Reads a row of the claim statement: the claimed execution, with its status before the claim
/// (`previous_status`), and `spec`, its job's opened spec.
pub(crate) fn claimed_from_row(
    row: &PgRow,
    spec: std::sync::Arc<JobSpec>,
) -> StoreResult<ClaimedExecution> {
    let id: String = get(row, "id")?;
    let job_id: String = get(row, "job_id")?;
    let previous_status: &str = get(row, "previous_status")?;
    Ok(ClaimedExecution {
        workspace_id: get(row, "workspace_id")?,
        scheduled_for: instant(row, "scheduled_for")?,
        trigger: enum_from_text(get(row, "trigger")?, "executions.trigger")?,
        attempts_done: unsigned(get(row, "attempt_count")?, "executions.attempt_count")?,
        // Only a running execution whose lease ran out had an attempt in flight.
        interrupted: previous_status == "running",
        started_at: opt_instant(row, "started_at")?,
        spec,
        job_id,
        id,
    })
}

/// Reads the columns of `attempt_columns!()`: the execution id and the attempt.
pub(crate) fn attempt_from_row(row: &PgRow) -> StoreResult<(String, Attempt)> {
    let execution_id: String = get(row, "execution_id")?;
    let error_kind: Option<&str> = get(row, "error_kind")?;
    let error = match error_kind {
        Some(kind) => Some(AttemptError {
            kind: enum_from_text(kind, "attempts.error_kind")?,
            message: get::<Option<String>>(row, "error_message")?.unwrap_or_default(),
        }),
        None => None,
    };
    let what = |column: &str| format!("`{column}` of attempt of `{execution_id}`");
    let response_body = get::<Option<Vec<u8>>>(row, "response_body")?
        .map(|bytes| {
            String::from_utf8(bytes)
                .map_err(|_| StoreError::Corrupt(format!("{} is not utf-8", what("response_body"))))
        })
        .transpose()?;
    let attempt = Attempt {
        number: unsigned(get(row, "number")?, "attempts.number")?,
        started_at: instant(row, "started_at")?,
        duration_ms: unsigned(get(row, "duration_ms")?, "attempts.duration_ms")?,
        status_code: get::<Option<i64>>(row, "status_code")?
            .map(|code| unsigned(code, "attempts.status_code"))
            .transpose()?,
        error,
        response_headers: from_json(get(row, "response_headers")?, &what("response_headers"))?,
        response_body,
        response_body_truncated: get(row, "response_body_truncated")?,
        redirect_location: get(row, "redirect_location")?,
        timing: from_json(get(row, "timing")?, &what("timing"))?,
    };
    Ok((execution_id, attempt))
}

/// Inserts the attempts of the given executions in one statement (the caller has fenced them).
pub(crate) async fn insert_attempts(
    conn: &mut sqlx::PgConnection,
    records: &[(&str, &Attempt)],
) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut execution_ids = Vec::with_capacity(records.len());
    let mut numbers = Vec::with_capacity(records.len());
    let mut started = Vec::with_capacity(records.len());
    let mut durations = Vec::with_capacity(records.len());
    let mut status_codes = Vec::with_capacity(records.len());
    let mut error_kinds = Vec::with_capacity(records.len());
    let mut error_messages = Vec::with_capacity(records.len());
    let mut headers = Vec::with_capacity(records.len());
    let mut bodies = Vec::with_capacity(records.len());
    let mut truncated = Vec::with_capacity(records.len());
    let mut locations = Vec::with_capacity(records.len());
    let mut timings = Vec::with_capacity(records.len());
    for &(execution_id, attempt) in records {
        execution_ids.push(execution_id);
        numbers.push(i64::from(attempt.number));
        started.push(ms(attempt.started_at));
        durations.push(signed(attempt.duration_ms, "attempt duration")?);
        status_codes.push(attempt.status_code.map(i64::from));
        error_kinds.push(
            attempt
                .error
                .as_ref()
                .map(|error| enum_text(&error.kind))
                .transpose()?,
        );
        error_messages.push(attempt.error.as_ref().map(|error| error.message.as_str()));
        headers.push(to_json(&attempt.response_headers)?);
        bodies.push(attempt.response_body.as_deref().map(str::as_bytes));
        truncated.push(attempt.response_body_truncated);
        locations.push(attempt.redirect_location.as_deref());
        timings.push(to_json(&attempt.timing)?);
    }
    sqlx::query(
        "insert into attempts
            (execution_id, number, started_at, duration_ms, status_code, error_kind,
             error_message, response_headers, response_body, response_body_truncated,
             redirect_location, timing)
         select * from unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::bigint[],
                              $5::bigint[], $6::text[], $7::text[], $8::text[], $9::bytea[],
                              $10::boolean[], $11::text[], $12::text[])",
    )
    .bind(&execution_ids)
    .bind(&numbers)
    .bind(&started)
    .bind(&durations)
    .bind(&status_codes)
    .bind(&error_kinds)
    .bind(&error_messages)
    .bind(&headers)
    .bind(&bodies)
    .bind(&truncated)
    .bind(&locations)
    .bind(&timings)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}
