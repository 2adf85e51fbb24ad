//! Reading domain values out of rows, and writing attempts.

use std::sync::Arc;

use cronhook_core::{Attempt, AttemptError, Execution, Job, JobSpec};
use cronhook_store::{ApiKey, ClaimedExecution, StoreResult, User, Workspace};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::batch::RowsStatement;
use crate::convert::{
    db_err, enum_from_text, enum_text, from_json, from_ms, ms, opt_from_ms, signed, to_json,
    unsigned,
};

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(db_err)
}

/// Reads the columns of `workspace_columns!()`.
pub(crate) fn workspace_from_row(row: &SqliteRow) -> StoreResult<Workspace> {
    Ok(Workspace {
        id: get(row, "id")?,
        slug: get(row, "slug")?,
        signing_secret: get(row, "signing_secret")?,
        previous_signing_secret: get(row, "previous_signing_secret")?,
        signing_secret_rotated_at: opt_from_ms(get(row, "signing_secret_rotated_at")?)?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

pub(crate) fn api_key_from_row(row: &SqliteRow) -> StoreResult<ApiKey> {
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
        created_at: from_ms(get(row, "created_at")?)?,
        last_used_at: opt_from_ms(get(row, "last_used_at")?)?,
        revoked_at: opt_from_ms(get(row, "revoked_at")?)?,
    })
}

pub(crate) fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        email: get(row, "email")?,
        password_hash: get(row, "password_hash")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

/// A stored spec, with the `name` and `paused` columns winning over the json's copies.
fn spec_from_columns(id: &str, json: &str, name: String, paused: bool) -> StoreResult<JobSpec> {
    let mut spec: JobSpec = from_json(json, &format!("spec of job `{id}`"))?;
    spec.name = name;
    spec.paused = paused;
    Ok(spec)
}

/// The positions of `job_columns!()`'s columns. Rows of jobs are read by position: the scheduler
/// reads a thousand due jobs per pass, and looking each column up by name hashed its name every
/// time. `job_column_positions_follow_the_select_list` checks them against the macro.
mod job_column {
    pub(super) const ID: usize = 0;
    pub(super) const WORKSPACE_ID: usize = 1;
    pub(super) const NAME: usize = 2;
    pub(super) const SPEC: usize = 3;
    pub(super) const PAUSED: usize = 4;
    pub(super) const NEXT_RUN_AT: usize = 5;
    pub(super) const CREATED_AT: usize = 6;
    pub(super) const UPDATED_AT: usize = 7;
}

/// The value at `position`.
fn at<'r, T>(row: &'r SqliteRow, position: usize) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(position).map_err(db_err)
}

/// Reads the columns of `job_columns!()`, in its order.
pub(crate) fn job_from_row(row: &SqliteRow) -> StoreResult<Job> {
    let id: String = at(row, job_column::ID)?;
    let spec = spec_from_columns(
        &id,
        at(row, job_column::SPEC)?,
        at(row, job_column::NAME)?,
        at(row, job_column::PAUSED)?,
    )?;
    job_with_spec(row, id, Arc::new(spec))
}

/// A job of the due-jobs read (`DUE_JOBS`), which packs them into JSON arrays: the columns of
/// `job_columns!()`, in its order, with the job's revision (migration 0018) where the spec's
/// text is.
#[derive(serde::Deserialize)]
pub(crate) struct DueRow<'a>(
    String,
    String,
    #[serde(borrow)] std::borrow::Cow<'a, str>,
    i64,
    i64,
    Option<i64>,
    i64,
    i64,
);

/// The jobs of the due-jobs read, from the `columns` JSON arrays of the row it packed them
/// into, earliest first.
pub(crate) fn due_rows(packed: &SqliteRow, columns: usize) -> StoreResult<Vec<DueRow<'_>>> {
    let mut rows = Vec::new();
    for column in 0..columns {
        // An array no job fell into is null.
        let Some(text) = at::<Option<&str>>(packed, column)? else {
            continue;
        };
        let mut jobs: Vec<DueRow<'_>> = serde_json::from_str(text).map_err(|err| {
            cronhook_store::StoreError::Corrupt(format!("due jobs as read: {err}"))
        })?;
        rows.append(&mut jobs);
    }
    // The inner select reads them in order; the packing leaves them in none.
    rows.sort_by_key(|row| row.5);
    Ok(rows)
}

impl DueRow<'_> {
    /// The job's id and revision.
    pub(crate) fn revision(&self) -> (&str, i64) {
        (&self.0, self.3)
    }

    /// The job with `cached`, its spec opened at the row's revision, when there is one.
    /// Otherwise the spec is read from `stored` (the job's id to its stored text) and not yet
    /// opened; the second value is then the row's revision and the text's length, for the
    /// caller to open and cache it.
    pub(crate) fn into_job(
        self,
        cached: Option<Arc<JobSpec>>,
        stored: &std::collections::HashMap<String, String>,
    ) -> StoreResult<(Job, Option<(i64, usize)>)> {
        let DueRow(id, workspace_id, name, revision, paused, next_run_at, created_at, updated_at) =
            self;
        let (spec, parsed) = match cached {
            Some(spec) => (spec, None),
            None => {
                // Read in the same snapshot as the row, so it is there.
                let text = stored.get(&id).ok_or_else(|| {
                    cronhook_store::StoreError::Corrupt(format!(
                        "due job `{id}` has no stored spec"
                    ))
                })?;
                let spec = spec_from_columns(&id, text, name.into_owned(), paused != 0)?;
                (Arc::new(spec), Some((revision, text.len())))
            }
        };
        let job = Job {
            id,
            workspace_id,
            spec,
            next_run_at: opt_from_ms(next_run_at)?,
            created_at: from_ms(created_at)?,
            updated_at: from_ms(updated_at)?,
        };
        Ok((job, parsed))
    }
}

fn job_with_spec(row: &SqliteRow, id: String, spec: Arc<JobSpec>) -> StoreResult<Job> {
    Ok(Job {
        workspace_id: at(row, job_column::WORKSPACE_ID)?,
        spec,
        next_run_at: opt_from_ms(at(row, job_column::NEXT_RUN_AT)?)?,
        created_at: from_ms(at(row, job_column::CREATED_AT)?)?,
        updated_at: from_ms(at(row, job_column::UPDATED_AT)?)?,
        id,
    })
}

/// Reads the columns of `execution_columns!()`; attempts are left empty for the caller.
pub(crate) fn execution_from_row(row: &SqliteRow) -> StoreResult<Execution> {
    Ok(Execution {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        job_id: get(row, "job_id")?,
        scheduled_for: from_ms(get(row, "scheduled_for")?)?,
        trigger: enum_from_text(get(row, "trigger")?, "executions.trigger")?,
        status: enum_from_text(get(row, "status")?, "executions.status")?,
        started_at: opt_from_ms(get(row, "started_at")?)?,
        finished_at: opt_from_ms(get(row, "finished_at")?)?,
        duration_ms: get::<Option<i64>>(row, "duration_ms")?
            .map(|value| unsigned(value, "executions.duration_ms"))
            .transpose()?,
        attempts: Vec::new(),
    })
}

/// Reads a row of the claim query (the execution as it was before the claim, and its job).
pub(crate) fn claimed_from_row(row: &SqliteRow) -> StoreResult<ClaimedExecution> {
    let id: String = get(row, "id")?;
    let job_id: String = get(row, "job_id")?;
    let status: &str = get(row, "status")?;
    Ok(ClaimedExecution {
        workspace_id: get(row, "workspace_id")?,
        scheduled_for: from_ms(get(row, "scheduled_for")?)?,
        trigger: enum_from_text(get(row, "trigger")?, "executions.trigger")?,
        attempts_done: unsigned(get(row, "attempt_count")?, "executions.attempt_count")?,
        // Only a running execution whose lease ran out had an attempt in flight.
        interrupted: status == "running",
        started_at: opt_from_ms(get(row, "started_at")?)?,
        spec: Arc::new(spec_from_columns(
            &job_id,
            get(row, "job_spec")?,
            get(row, "job_name")?,
            get(row, "job_paused")?,
        )?),
        job_id,
        id,
    })
}

/// Reads the columns of `attempt_columns!()`: the execution id and the attempt.
pub(crate) fn attempt_from_row(row: &SqliteRow) -> StoreResult<(String, Attempt)> {
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
    let attempt = Attempt {
        number: unsigned(get(row, "number")?, "attempts.number")?,
        started_at: from_ms(get(row, "started_at")?)?,
        duration_ms: unsigned(get(row, "duration_ms")?, "attempts.duration_ms")?,
        status_code: get::<Option<i64>>(row, "status_code")?
            .map(|code| unsigned(code, "attempts.status_code"))
            .transpose()?,
        error,
        response_headers: from_json(get(row, "response_headers")?, &what("response_headers"))?,
        response_body: get(row, "response_body")?,
        response_body_truncated: get(row, "response_body_truncated")?,
        redirect_location: get(row, "redirect_location")?,
        timing: from_json(get(row, "timing")?, &what("timing"))?,
    };
    Ok((execution_id, attempt))
}

/// The statement [`insert_attempts`] runs.
const INSERT_ATTEMPTS: RowsStatement = RowsStatement {
    head: "insert into attempts
            (execution_id, number, started_at, duration_ms, status_code, error_kind,
             error_message, response_headers, response_body, response_body_truncated,
             redirect_location, timing)
         values",
    columns: 12,
    tail: "",
    returning: "",
};

/// Inserts the attempts of the given executions, a few statements for the whole batch.
pub(crate) async fn insert_attempts(
    conn: &mut sqlx::SqliteConnection,
    attempts: &[(&str, &Attempt)],
) -> StoreResult<()> {
    // Encoded first, so a value that cannot be stored fails before anything is written.
    let mut rows = Vec::with_capacity(attempts.len());
    for (execution_id, attempt) in attempts {
        rows.push(AttemptRow {
            execution_id,
            attempt,
            duration_ms: signed(attempt.duration_ms, "attempt duration")?,
            error_kind: attempt
                .error
                .as_ref()
                .map(|error| enum_text(&error.kind))
                .transpose()?,
            response_headers: to_json(&attempt.response_headers)?,
            timing: to_json(&attempt.timing)?,
        });
    }
    INSERT_ATTEMPTS
        .execute(conn, rows, |query, row| {
            let attempt = row.attempt;
            query
                .bind(row.execution_id)
                .bind(i64::from(attempt.number))
                .bind(ms(attempt.started_at))
                .bind(row.duration_ms)
                .bind(attempt.status_code.map(i64::from))
                .bind(row.error_kind)
                .bind(attempt.error.as_ref().map(|error| error.message.as_str()))
                .bind(row.response_headers)
                .bind(attempt.response_body.as_deref())
                .bind(i64::from(attempt.response_body_truncated))
                .bind(attempt.redirect_location.as_deref())
                .bind(row.timing)
        })
        .await
}

/// One attempt of [`insert_attempts`], its columns that need encoding encoded.
struct AttemptRow<'a> {
    execution_id: &'a str,
    attempt: &'a Attempt,
    duration_ms: i64,
    error_kind: Option<String>,
    response_headers: String,
    timing: String,
}

#[cfg(test)]
mod tests {
    use super::job_column;

    #[test]
    fn job_column_positions_follow_the_select_list() {
        let names: Vec<&str> = job_columns!().split(',').map(str::trim).collect();
        let positions = [
            ("id", job_column::ID),
            ("workspace_id", job_column::WORKSPACE_ID),
            ("name", job_column::NAME),
            ("spec", job_column::SPEC),
            ("paused", job_column::PAUSED),
            ("next_run_at", job_column::NEXT_RUN_AT),
            ("created_at", job_column::CREATED_AT),
            ("updated_at", job_column::UPDATED_AT),
        ];
        assert_eq!(names.len(), positions.len(), "every column has a position");
        for (name, position) in positions {
            assert_eq!(names[position], name, "position {position}");
        }
    }
}
