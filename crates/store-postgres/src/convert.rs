//! Conversions between domain values and their PostgreSQL columns, and between sqlx errors and
//! `StoreError`.

use chrono::{DateTime, Utc};
use cronhook_store::StoreError;
use sqlx::error::DatabaseError;

/// An instant as stored: truncated to the millisecond, as the SQLite store keeps it, so that a
/// value read back equals the value written and compare-and-set on it is exact.
pub(crate) fn ms(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

pub(crate) fn opt_ms(at: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    at.map(ms)
}

pub(crate) use cronhook_store::codec::{
    enum_from_text, enum_text, from_json, signed, to_json, unsigned,
};

/// Maps any sqlx error: connection trouble becomes `Unavailable` (worth a later try),
/// undecodable columns `Corrupt`, the rest `Database`.
pub(crate) fn db_err(err: sqlx::Error) -> StoreError {
    match err {
        // `Protocol` included: it is what a connection cut while it is being opened gives (the
        // server went away after accepting it), as happens while a server restarts.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(err)),
        sqlx::Error::Database(ref db) if is_unavailable(db.as_ref()) => {
            StoreError::Unavailable(Box::new(err))
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(err.to_string()),
        other => StoreError::Database(Box::new(other)),
    }
}

/// Like [`db_err`], but a unique violation becomes `Conflict`; `what` is given the name of the
/// violated constraint (`jobs_workspace_id_name_key`, `jobs_pkey`) and returns the user-facing
/// description.
pub(crate) fn conflict_or_db_err(
    err: sqlx::Error,
    what: impl FnOnce(&str) -> String,
) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        return StoreError::Conflict {
            what: what(db.constraint().unwrap_or_default()),
        };
    }
    db_err(err)
}

/// The SQLSTATE of a database error, if it came from the server.
fn sqlstate(db: &dyn DatabaseError) -> Option<String> {
    db.code().map(|code| code.into_owned())
}

/// Errors that say the server cannot serve us right now: class 08 (connection exception),
/// 57P01–57P03 (admin or crash shutdown, cannot connect now: a restart) and 53300 (too many
/// connections).
fn is_unavailable(db: &dyn DatabaseError) -> bool {
    sqlstate(db).is_some_and(|code| {
        code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "53300")
    })
}

/// Whether a failed transaction is worth running again from the start: a serialization failure
/// (40001) or a deadlock the server broke by aborting us (40P01).
pub(crate) fn is_retryable(err: &StoreError) -> bool {
    let StoreError::Database(source) = err else {
        return false;
    };
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => {
            sqlstate(db.as_ref()).is_some_and(|code| matches!(code.as_str(), "40001" | "40P01"))
        }
        _ => false,
    }
}

/// The error `ping` reports when the schema is older (or newer) than this build expects.
#[derive(Debug, thiserror::Error)]
#[error(
    "database schema is at version {applied:?}, this build expects {expected}; run `cronhook migrate`"
)]
pub(crate) struct SchemaNotCurrent {
    pub(crate) applied: Option<i64>,
    pub(crate) expected: i64,
}
