//! Statements that take a batch of rows as a multi-row `values` list of bound parameters.
//!
//! sqlx binds no arrays to SQLite. A batch sent as one JSON array and read back with
//! `json_each` and `->>` costs a JSON parse per column per row: in the executor's hot path that
//! was a quarter of the process's CPU. Rows are bound as plain parameters instead, in chunks
//! whose sizes are powers of two, so a batch of any size reuses a few prepared statements
//! (`MAX_ROWS` = 256 gives at most nine shapes per statement).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use cronhook_store::StoreResult;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::{Row, Sqlite};

use crate::convert::db_err;

/// The most rows bound in one statement (well below SQLite's 32 766 parameters for any of
/// ours).
pub(crate) const MAX_ROWS: usize = 256;

/// A query being bound.
pub(crate) type Query = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// A statement shaped `head` + `(?, …), (?, …)` + `tail` [+ `returning` …]. In `head` and
/// `tail` the values are the columns `column1`, `column2`, … of the list (SQLite's names for a
/// `values` list's columns) when the list is a subquery.
pub(crate) struct RowsStatement {
    pub(crate) head: &'static str,
    pub(crate) columns: usize,
    pub(crate) tail: &'static str,
    /// What a changed row returns (one text column), or empty.
    pub(crate) returning: &'static str,
}

/// Which rows of a batch a statement changed (see [`RowsStatement::changed_rows`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Changed {
    /// Every row: the common case, told without copying a key.
    All,
    /// Only the rows with these keys (the statement's `returning` column).
    Only(HashSet<String>),
}

impl Changed {
    /// Whether the row with this key changed.
    pub(crate) fn contains(&self, key: &str) -> bool {
        match self {
            Changed::All => true,
            Changed::Only(keys) => keys.contains(key),
        }
    }

    /// Whether no row changed.
    pub(crate) fn is_none(&self) -> bool {
        matches!(self, Changed::Only(keys) if keys.is_empty())
    }
}

/// The texts a batch binds in row after row (a status, a trigger, the node's id), made once per
/// distinct key and bound as `Arc<str>`: sqlx copies every `&str` it binds into a new `String`,
/// but takes an `Arc<str>` as it is. A batch holds a handful of distinct values, so a list does.
pub(crate) struct SharedTexts<K> {
    made: Vec<(K, Arc<str>)>,
}

impl<K: PartialEq> SharedTexts<K> {
    pub(crate) fn new() -> Self {
        Self { made: Vec::new() }
    }

    /// The text of `key`, made by `text` the first time it is asked for.
    pub(crate) fn get(
        &mut self,
        key: K,
        text: impl FnOnce(&K) -> StoreResult<String>,
    ) -> StoreResult<Arc<str>> {
        if let Some((_, shared)) = self.made.iter().find(|(made, _)| *made == key) {
            return Ok(Arc::clone(shared));
        }
        let shared: Arc<str> = text(&key)?.into();
        self.made.push((key, Arc::clone(&shared)));
        Ok(shared)
    }
}

/// The savepoint the chunks of [`RowsStatement::changed_rows`] run in.
const CHUNK_SAVEPOINT: &str = "cronhook_rows_chunk";

impl RowsStatement {
    /// The SQL for `rows` rows, with the `returning` clause or without it.
    pub(crate) fn sql(&self, rows: usize, returning: bool) -> String {
        let row = format!("({})", vec!["?"; self.columns].join(", "));
        let list = vec![row.as_str(); rows].join(", ");
        if returning && !self.returning.is_empty() {
            format!(
                "{} {list} {} returning {}",
                self.head, self.tail, self.returning
            )
        } else {
            format!("{} {list} {}", self.head, self.tail)
        }
    }

    /// The statement over one chunk of rows, `bind` binding one row's `columns` values in order.
    fn chunk_query<T>(
        &self,
        chunk: impl ExactSizeIterator<Item = T>,
        returning: bool,
        bind: impl Fn(Query, T) -> Query,
    ) -> Query {
        let sql = self.sql(chunk.len(), returning);
        chunk.fold(sqlx::query(sqlx::AssertSqlSafe(sql)), bind)
    }

    /// Runs the statement over `rows`, one query per chunk (see [`chunks`]), and tells which
    /// rows it changed: all of them, or those whose `returning` column it read back.
    ///
    /// Nearly always every row changes, and then nothing is read back: the chunks run without
    /// their `returning` clause inside one savepoint, and only when a chunk changed fewer rows
    /// than it has is the savepoint rolled back and every chunk run again with it. (Every
    /// returned row is a message from SQLite's thread, and so is every statement; while a
    /// transaction waits for its next message it holds the write lock, so a savepoint per chunk
    /// kept the lock ~2× as long as SQLite worked under load.) The count stands for the rows
    /// only when no two rows of a chunk change the same row, which holds for our statements:
    /// their rows have distinct keys.
    pub(crate) async fn changed_rows<T>(
        &self,
        conn: &mut SqliteConnection,
        rows: &[T],
        bind: impl Fn(Query, &T) -> Query,
    ) -> StoreResult<Changed> {
        if rows.is_empty() {
            return Ok(Changed::All);
        }
        savepoint(conn, "savepoint").await?;
        let mut every_row_changed = true;
        for chunk in chunks(rows.len()) {
            let chunk = &rows[chunk];
            let done = self
                .chunk_query(chunk.iter(), false, &bind)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            if done.rows_affected() != chunk.len() as u64 {
                every_row_changed = false;
                break;
            }
        }
        if every_row_changed {
            savepoint(conn, "release").await?;
            return Ok(Changed::All);
        }
        savepoint(conn, "rollback to").await?;
        savepoint(conn, "release").await?;
        let mut changed = HashSet::with_capacity(rows.len());
        for chunk in chunks(rows.len()) {
            for row in self
                .chunk_query(rows[chunk].iter(), true, &bind)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?
            {
                changed.insert(row.try_get::<String, _>(0).map_err(db_err)?);
            }
        }
        Ok(Changed::Only(changed))
    }

    /// Runs the statement over `rows`, one query per chunk (see [`chunks`]).
    pub(crate) async fn execute<T>(
        &self,
        conn: &mut SqliteConnection,
        rows: Vec<T>,
        bind: impl Fn(Query, T) -> Query,
    ) -> StoreResult<()> {
        let mut rows = rows.into_iter();
        for chunk in chunks(rows.len()) {
            self.chunk_query(rows.by_ref().take(chunk.len()), false, &bind)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
}

/// `savepoint`, `release` or `rollback to` the chunks' savepoint.
async fn savepoint(conn: &mut SqliteConnection, verb: &str) -> StoreResult<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{verb} {CHUNK_SAVEPOINT}")))
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Splits `len` rows into consecutive chunks whose sizes are powers of two no larger than
/// [`MAX_ROWS`], largest first.
pub(crate) fn chunks(len: usize) -> impl Iterator<Item = Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = len - start;
        if left == 0 {
            return None;
        }
        let size = if left >= MAX_ROWS {
            MAX_ROWS
        } else {
            1 << left.ilog2()
        };
        let chunk = start..start + size;
        start += size;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_texts_are_made_once_per_key() {
        let mut texts = SharedTexts::new();
        let mut made = 0;
        let mut text = |key: &&str| {
            made += 1;
            Ok(key.to_uppercase())
        };
        let first = texts.get("running", &mut text).expect("made");
        let again = texts.get("running", &mut text).expect("shared");
        let other = texts.get("queued", &mut text).expect("made");
        assert_eq!(&*first, "RUNNING");
        assert_eq!(&*other, "QUEUED");
        assert!(Arc::ptr_eq(&first, &again), "the same text, not a copy");
        assert_eq!(made, 2);
        let refused = texts.get("broken", |_| {
            Err(cronhook_store::StoreError::Database("no text".into()))
        });
        assert!(refused.is_err());
        assert!(
            texts.get("broken", |_| Ok("later".into())).is_ok(),
            "a failure is not kept"
        );
    }

    #[test]
    fn chunks_cover_every_row_once_in_power_of_two_sizes() {
        for len in [0, 1, 2, 3, 7, 255, 256, 257, 1000, 2000] {
            let chunks: Vec<Range<usize>> = chunks(len).collect();
            let mut next = 0;
            for chunk in &chunks {
                assert_eq!(chunk.start, next, "len {len}: contiguous");
                assert!(chunk.len().is_power_of_two() && chunk.len() <= MAX_ROWS);
                next = chunk.end;
            }
            assert_eq!(next, len, "len {len}: every row");
        }
        assert_eq!(
            chunks(1000).map(|c| c.len()).collect::<Vec<_>>(),
            vec![256, 256, 256, 128, 64, 32, 8]
        );
    }

    #[test]
    fn the_sql_has_one_placeholder_group_per_row() {
        let statement = RowsStatement {
            head: "insert into t (a, b) values",
            columns: 2,
            tail: "on conflict do nothing",
            returning: "a",
        };
        assert_eq!(
            statement.sql(3, false),
            "insert into t (a, b) values (?, ?), (?, ?), (?, ?) on conflict do nothing"
        );
        assert_eq!(
            statement.sql(1, true),
            "insert into t (a, b) values (?, ?) on conflict do nothing returning a"
        );
    }
}
