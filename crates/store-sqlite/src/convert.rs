//! Conversions between domain values and their SQLite columns, and between sqlx errors and
//! `StoreError`.

use chrono::{DateTime, Utc};
use cronhook_store::StoreError;
use sqlx::error::DatabaseError;

/// An instant as stored: unix milliseconds. Sub-millisecond precision is dropped.
pub(crate) fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn opt_ms(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(ms)
}

/// An instant read back from unix milliseconds.
pub(crate) fn from_ms(value: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(value)
        .ok_or_else(|| StoreError::Corrupt(format!("instant of {value} ms is out of range")))
}

pub(crate) fn opt_from_ms(value: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    value.map(from_ms).transpose()
}

pub(crate) use cronhook_store::codec::{
    enum_from_text, enum_text, from_json, signed, to_json, unsigned,
};

/// Maps any sqlx error: connection trouble and lock timeouts become `Unavailable` (worth a later
/// try), undecodable columns `Corrupt`, the rest `Database`.
pub(crate) fn db_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(err)),
        sqlx::Error::Database(ref db) if is_busy(db.as_ref()) => {
            StoreError::Unavailable(Box::new(err))
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(err.to_string()),
        other => StoreError::Database(Box::new(other)),
    }
}

/// Like [`db_err`], but a unique violation becomes `Conflict`; `what` is given the name of the
/// violated column(s) (`jobs.workspace_id, jobs.name`) and returns the user-facing description.
pub(crate) fn conflict_or_db_err(
    err: sqlx::Error,
    what: impl FnOnce(&str) -> String,
) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        // SQLite says "UNIQUE constraint failed: table.column[, table.column]".
        let message = db.message();
        let columns = message.rsplit(": ").next().unwrap_or(message);
        return StoreError::Conflict {
            what: what(columns),
        };
    }
    db_err(err)
}

/// SQLITE_BUSY or SQLITE_LOCKED, in any of their extended forms: another connection held the
/// lock for longer than the busy timeout.
fn is_busy(db: &dyn DatabaseError) -> bool {
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
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
