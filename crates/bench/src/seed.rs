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
