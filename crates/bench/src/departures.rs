//! When each burst's first request left, read from the attempts cronhook recorded.
//!
//! The sink sees when a request arrives, which also counts how soon the sink's own threads got
//! the CPU; an attempt's `started_at` is taken just before the request is sent, in the clock the
//! scheduler judges instants by. On SQLite instants are stored in whole milliseconds (truncated),
//! so a departure of `n` ms means somewhere in [n, n + 1) ms.

use anyhow::Context;
use sqlx::Connection;

use crate::process::FreshDatabase;

/// Per burst scheduled in [start_s, end_s): how long after its instant its first attempt
/// started, in milliseconds, sorted.
pub async fn first_departures_ms(
    database: &FreshDatabase,
    start_s: i64,
    end_s: i64,
) -> anyhow::Result<Vec<f64>> {
    let mut lags: Vec<f64> = if database.url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(&database.url)
            .await
            .context("opening the SQLite file to read departures")?;
        sqlx::query_as::<_, (i64, i64)>(
            "select e.scheduled_for, min(a.started_at) from executions e
             join attempts a on a.execution_id = e.id and a.number = 1
             where e.scheduled_for >= ?1 and e.scheduled_for < ?2
             group by e.scheduled_for",
        )
        .bind(start_s * 1000)
        .bind(end_s * 1000)
        .fetch_all(&mut connection)
        .await
        .context("reading departures")?
        .into_iter()
        .map(|(scheduled, started)| (started - scheduled) as f64)
        .collect()
    } else {
        let mut connection = sqlx::PgConnection::connect(&database.url)
            .await
            .context("connecting to PostgreSQL to read departures")?;
        sqlx::query_scalar::<_, f64>(
            "select (extract(epoch from min(a.started_at) - e.scheduled_for) * 1000)::float8
             from executions e
             join attempts a on a.execution_id = e.id and a.number = 1
             where e.scheduled_for >= to_timestamp($1) and e.scheduled_for < to_timestamp($2)
             group by e.scheduled_for",
        )
        .bind(start_s as f64)
        .bind(end_s as f64)
        .fetch_all(&mut connection)
        .await
        .context("reading departures")?
    };
    lags.sort_by(f64::total_cmp);
    Ok(lags)
}
