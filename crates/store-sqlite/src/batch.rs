//! Statements that take a batch of rows as a multi-row `values` list of bound parameters.
//!
//! sqlx binds no arrays to SQLite. A batch sent as one JSON array and read back with
//! `json_each` and `->>` costs a JSON parse per column per row: in the executor's hot path that
//! was a quarter of the process's CPU. Rows are bound as plain parameters instead, in chunks
//! whose sizes are powers of two, so a batch of any size reuses a few prepared statements
//! (`MAX_ROWS` = 256 gives at most nine shapes per statement).

use std::ops::Range;

use cronhook_store::StoreResult;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::{Row, Sqlite};

use crate::convert::db_err;

/// The most rows bound in one statement (well below SQLite's 32 766 parameters for any of
/// ours).
pub(crate) const MAX_ROWS: usize = 256;

/// A query being bound.
pub(crate) type Query = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// A statement shaped `head` + `(?, …), (?, …)` + `tail`. In `head` and `tail` the values are
/// the columns `column1`, `column2`, … of the list (SQLite's names for a `values` list's
/// columns) when the list is a subquery.
pub(crate) struct RowsStatement {
    pub(crate) head: &'static str,
    pub(crate) columns: usize,
    pub(crate) tail: &'static str,
}

impl RowsStatement {
    /// The SQL for `rows` rows.
    fn sql(&self, rows: usize) -> String {
        let row = format!("({})", vec!["?"; self.columns].join(", "));
        let list = vec![row.as_str(); rows].join(", ");
        format!("{} {list} {}", self.head, self.tail)
    }

    /// The statement over `rows`, one query per chunk, `bind` binding one row's `columns` values
    /// in order.
    fn bound<T>(&self, rows: Vec<T>, bind: impl Fn(Query, T) -> Query) -> Vec<Query> {
        let sizes: Vec<usize> = chunks(rows.len()).map(|chunk| chunk.len()).collect();
        let mut rows = rows.into_iter();
        sizes
            .into_iter()
            .map(|size| {
                rows.by_ref()
                    .take(size)
                    .fold(sqlx::query(sqlx::AssertSqlSafe(self.sql(size))), &bind)
            })
            .collect()
    }

    /// Runs the statement over `rows` (see `bound`) and returns the first column of every row
    /// it returns.
    pub(crate) async fn fetch_strings<T>(
        &self,
        conn: &mut SqliteConnection,
        rows: Vec<T>,
        bind: impl Fn(Query, T) -> Query,
    ) -> StoreResult<Vec<String>> {
        let mut returned = Vec::new();
        for query in self.bound(rows, bind) {
            for row in query.fetch_all(&mut *conn).await.map_err(db_err)? {
                returned.push(row.try_get::<String, _>(0).map_err(db_err)?);
            }
        }
        Ok(returned)
    }

    /// Runs the statement over `rows` (see `bound`).
    pub(crate) async fn execute<T>(
        &self,
        conn: &mut SqliteConnection,
        rows: Vec<T>,
        bind: impl Fn(Query, T) -> Query,
    ) -> StoreResult<()> {
        for query in self.bound(rows, bind) {
            query.execute(&mut *conn).await.map_err(db_err)?;
        }
        Ok(())
    }
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
        };
        assert_eq!(
            statement.sql(3),
            "insert into t (a, b) values (?, ?), (?, ?), (?, ?) on conflict do nothing"
        );
    }
}
