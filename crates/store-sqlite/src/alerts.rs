//! `AlertStore` on SQLite, and the alert rules applied when `record_attempts` finishes an
//! execution.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_core::alerting::{self, AlertFacts, AlertKind, Outcome, Streak};
use cronhook_core::{Attempt, ExecutionStatus, JobSpec, ids};
use cronhook_store::{
    Alert, AlertStatus, AlertStore, Channel, ClaimedAlert, DeliveryOutcome, Lease, Page,
    PageRequest, StoreError, StoreResult,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use crate::convert::{
    conflict_or_db_err, db_err, enum_from_text, enum_text, from_json, from_ms, ms, opt_from_ms,
    opt_ms, to_json, unsigned,
};
use crate::{SqliteStore, commit, fetch_limit, into_page};

/// The columns [`alert_from_row`] reads.
const ALERT_COLUMNS: &str = "id, workspace_id, job_id, execution_id, channel_id, kind, status, \
     attempts, error, facts, created_at, next_attempt_at, delivered_at";

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column).map_err(db_err)
}

fn channel_from_row(row: &SqliteRow) -> StoreResult<Channel> {
    let id: String = get(row, "id")?;
    Ok(Channel {
        target: from_json(get(row, "target")?, &format!("target of channel `{id}`"))?,
        workspace_id: get(row, "workspace_id")?,
        name: get(row, "name")?,
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
        id,
    })
}

fn alert_from_row(row: &SqliteRow) -> StoreResult<Alert> {
    let id: String = get(row, "id")?;
    Ok(Alert {
        workspace_id: get(row, "workspace_id")?,
        job_id: get(row, "job_id")?,
        execution_id: get(row, "execution_id")?,
        channel_id: get(row, "channel_id")?,
        kind: enum_from_text(get(row, "kind")?, "alerts.kind")?,
        status: enum_from_text(get(row, "status")?, "alerts.status")?,
        attempts: unsigned(get(row, "attempts")?, "alerts.attempts")?,
        error: get(row, "error")?,
        facts: from_json(get(row, "facts")?, &format!("facts of alert `{id}`"))?,
        created_at: from_ms(get(row, "created_at")?)?,
        next_attempt_at: opt_from_ms(get(row, "next_attempt_at")?)?,
        delivered_at: opt_from_ms(get(row, "delivered_at")?)?,
        id,
    })
}

async fn insert_alert_row(conn: &mut sqlx::SqliteConnection, alert: &Alert) -> StoreResult<()> {
    sqlx::query(
        "insert into alerts
            (id, workspace_id, job_id, execution_id, channel_id, kind, status, attempts, error,
             facts, created_at, next_attempt_at, delivered_at)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&alert.id)
    .bind(&alert.workspace_id)
    .bind(&alert.job_id)
    .bind(&alert.execution_id)
    .bind(&alert.channel_id)
    .bind(enum_text(&alert.kind)?)
    .bind(enum_text(&alert.status)?)
    .bind(i64::from(alert.attempts))
    .bind(&alert.error)
    .bind(to_json(&alert.facts)?)
    .bind(ms(alert.created_at))
    .bind(opt_ms(alert.next_attempt_at))
    .bind(opt_ms(alert.delivered_at))
    .execute(conn)
    .await
    .map_err(|err| conflict_or_db_err(err, |_| format!("alert `{}`", alert.id)))?;
    Ok(())
}

fn channel_conflict(err: sqlx::Error, channel: &Channel) -> StoreError {
    conflict_or_db_err(err, |columns| {
        if columns.ends_with(".id") {
            format!("channel `{}`", channel.id)
        } else {
            format!("a channel named `{}`", channel.name)
        }
    })
}

/// Applies the alert rules to the execution `execution_id` that `attempt` just finished with
/// `status`, inside the recording transaction: the job's streak, the alerts it raises, and the
/// pause. Statuses other than succeeded and failed change nothing.
pub(crate) async fn on_finished(
    tx: &mut Transaction<'static, Sqlite>,
    execution_id: &str,
    attempt: &Attempt,
    status: ExecutionStatus,
) -> StoreResult<()> {
    let outcome = match status {
        ExecutionStatus::Succeeded => Outcome::Succeeded,
        ExecutionStatus::Failed => Outcome::Failed {
            gone: attempt.status_code == Some(410),
        },
        _ => return Ok(()),
    };
    let Some(row) = sqlx::query(
        "select j.id, j.workspace_id, j.name, j.spec, j.paused, j.next_run_at, j.failure_streak,
                j.failure_streak_started_at, j.failure_streak_alerted
         from executions e join jobs j on j.id = e.job_id
         where e.id = ?",
    )
    .bind(execution_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?
    else {
        return Ok(());
    };
    let job_id: String = get(&row, "id")?;
    let workspace_id: String = get(&row, "workspace_id")?;
    let name: String = get(&row, "name")?;
    let spec: JobSpec = from_json(get(&row, "spec")?, &format!("spec of job `{job_id}`"))?;
    let paused: bool = get(&row, "paused")?;
    let next_run_at = opt_from_ms(get(&row, "next_run_at")?)?;
    let before = Streak {
        failures: unsigned(get(&row, "failure_streak")?, "jobs.failure_streak")?,
        started_at: opt_from_ms(get(&row, "failure_streak_started_at")?)?,
        alerted: get(&row, "failure_streak_alerted")?,
    };
    let finished_at = attempt.started_at
        + chrono::Duration::milliseconds(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX));
    let decision = alerting::on_finished(
        &spec.alerts,
        spec.auto_disable_after_failures,
        paused,
        before,
        outcome,
        finished_at,
    );
    sqlx::query(
        "update jobs set failure_streak = ?, failure_streak_started_at = ?,
                failure_streak_alerted = ?
         where id = ?",
    )
    .bind(i64::from(decision.streak.failures))
    .bind(opt_ms(decision.streak.started_at))
    .bind(decision.streak.alerted)
    .bind(&job_id)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if decision.disable.is_some() {
        // The spec's own `paused` is kept in step, as `pause_job` does.
        sqlx::query(
            "update jobs
             set paused = 1, next_run_at = null, updated_at = ?,
                 spec = json_set(spec, '$.paused', json('true'))
             where id = ?",
        )
        .bind(ms(finished_at))
        .bind(&job_id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    let Some(kind) = decision.alert else {
        return Ok(());
    };
    let facts = AlertFacts::for_decision(&name, before, &decision, attempt, next_run_at);
    let channels = alert_channels(tx, &workspace_id, &spec.alerts.channels).await?;
    for channel_id in channels {
        let alert = new_alert(
            &workspace_id,
            Some(&job_id),
            Some(execution_id),
            &channel_id,
            kind,
            facts.clone(),
            finished_at,
        );
        insert_alert_row(tx, &alert).await?;
    }
    Ok(())
}

/// A pending alert, due at `at`.
fn new_alert(
    workspace_id: &str,
    job_id: Option<&str>,
    execution_id: Option<&str>,
    channel_id: &str,
    kind: AlertKind,
    facts: AlertFacts,
    at: DateTime<Utc>,
) -> Alert {
    Alert {
        id: ids::new_id(ids::ALERT),
        workspace_id: workspace_id.to_owned(),
        job_id: job_id.map(str::to_owned),
        execution_id: execution_id.map(str::to_owned),
        channel_id: channel_id.to_owned(),
        kind,
        status: AlertStatus::Pending,
        attempts: 0,
        error: None,
        facts,
        created_at: at,
        next_attempt_at: Some(at),
        delivered_at: None,
    }
}

/// The channels a job's alert goes to: the ones it names that exist in its workspace, in its
/// order, or the workspace's default channels when it names none.
async fn alert_channels(
    tx: &mut Transaction<'static, Sqlite>,
    workspace_id: &str,
    named: &[String],
) -> StoreResult<Vec<String>> {
    if named.is_empty() {
        return sqlx::query_scalar(
            "select channel_id from workspace_alert_channels where workspace_id = ?
             order by position",
        )
        .bind(workspace_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err);
    }
    let existing: Vec<String> = sqlx::query_scalar(
        "select id from channels
         where workspace_id = ? and id in (select value from json_each(?))",
    )
    .bind(workspace_id)
    .bind(to_json(&named)?)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let mut channels: Vec<String> = Vec::new();
    for id in named {
        if existing.contains(id) && !channels.contains(id) {
            channels.push(id.clone());
        }
    }
    Ok(channels)
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn insert_channel(&self, channel: &Channel) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "insert into channels (id, workspace_id, name, target, created_at, updated_at)
             values (?, ?, ?, ?, ?, ?)",
        )
        .bind(&channel.id)
        .bind(&channel.workspace_id)
        .bind(&channel.name)
        .bind(to_json(&channel.target)?)
        .bind(ms(channel.created_at))
        .bind(ms(channel.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| channel_conflict(err, channel))?;
        commit(tx).await
    }

    async fn channel(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Channel>> {
        let row = sqlx::query(
            "select id, workspace_id, name, target, created_at, updated_at from channels
             where id = ? and workspace_id = ?",
        )
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(channel_from_row).transpose()
    }

    async fn list_channels(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Channel>> {
        let rows = sqlx::query(
            "select id, workspace_id, name, target, created_at, updated_at from channels
             where workspace_id = ? and id > ? order by id limit ?",
        )
        .bind(workspace_id)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(fetch_limit(page))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        let channels = rows
            .iter()
            .map(channel_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(into_page(channels, page, |channel| &channel.id))
    }

    async fn update_channel(&self, channel: &Channel) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "update channels set name = ?, target = ?, updated_at = ?
             where id = ? and workspace_id = ?",
        )
        .bind(&channel.name)
        .bind(to_json(&channel.target)?)
        .bind(ms(channel.updated_at))
        .bind(&channel.id)
        .bind(&channel.workspace_id)
        .execute(&mut *tx)
        .await
        .map_err(|err| channel_conflict(err, channel))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        commit(tx).await
    }

    async fn delete_channel(&self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        // Its place in the default list goes with it (`on delete cascade`).
        let done = sqlx::query("delete from channels where id = ? and workspace_id = ?")
            .bind(id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        commit(tx).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn default_alert_channels(&self, workspace_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "select channel_id from workspace_alert_channels where workspace_id = ?
             order by position",
        )
        .bind(workspace_id)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)
    }

    async fn set_default_alert_channels(
        &self,
        workspace_id: &str,
        channel_ids: &[String],
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("delete from workspace_alert_channels where workspace_id = ?")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for (position, channel_id) in channel_ids.iter().enumerate() {
            // The `select` makes a channel of another workspace (or none) insert nothing.
            let done = sqlx::query(
                "insert into workspace_alert_channels (workspace_id, channel_id, position)
                 select workspace_id, id, ? from channels where id = ? and workspace_id = ?
                 on conflict do nothing",
            )
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(channel_id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 && !channel_ids[..position].contains(channel_id) {
                // Dropping the transaction rolls it back: nothing changes.
                return Err(StoreError::NotFound);
            }
        }
        commit(tx).await
    }

    async fn insert_alert(&self, alert: &Alert) -> StoreResult<()> {
        let mut tx = self.write().await?;
        insert_alert_row(&mut tx, alert).await?;
        commit(tx).await
    }

    async fn claim_alerts(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedAlert>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        // The inner where clause starts with the partial index's, word for word.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "update alerts set locked_by = ?1, lease_until = ?2
             where id in (select id from alerts
                          where status = 'pending' and next_attempt_at <= ?3
                            and (lease_until is null or lease_until < ?3)
                          order by next_attempt_at limit ?4)
             returning {ALERT_COLUMNS}"
        )))
        .bind(&lease.node_id)
        .bind(ms(lease.until))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let alert = alert_from_row(row)?;
            let channel = sqlx::query(
                "select id, workspace_id, name, target, created_at, updated_at from channels
                 where id = ? and workspace_id = ?",
            )
            .bind(&alert.channel_id)
            .bind(&alert.workspace_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            let channel = channel.as_ref().map(channel_from_row).transpose()?;
            claimed.push(ClaimedAlert { alert, channel });
        }
        commit(tx).await?;
        claimed.sort_by_key(|claimed| claimed.alert.next_attempt_at);
        Ok(claimed)
    }

    async fn complete_alert(
        &self,
        alert_id: &str,
        node_id: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<bool> {
        let (status, error, next_attempt_at, delivered_at) = match outcome {
            DeliveryOutcome::Delivered { at } => (AlertStatus::Delivered, None, None, Some(*at)),
            DeliveryOutcome::Retry {
                error, retry_at, ..
            } => (AlertStatus::Pending, Some(error), Some(*retry_at), None),
            DeliveryOutcome::Failed { error, .. } => (AlertStatus::Failed, Some(error), None, None),
        };
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "update alerts
             set status = ?, attempts = attempts + 1, error = coalesce(?, error),
                 next_attempt_at = ?, delivered_at = ?, locked_by = null, lease_until = null
             where id = ? and locked_by = ? and status = 'pending'",
        )
        .bind(enum_text(&status)?)
        .bind(error)
        .bind(opt_ms(next_attempt_at))
        .bind(opt_ms(delivered_at))
        .bind(alert_id)
        .bind(node_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_alerts(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Alert>> {
        let rows = match &page.after {
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                "select {ALERT_COLUMNS} from alerts where workspace_id = ?
                 order by id desc limit ?"
            )))
            .bind(workspace_id),
            Some(after) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "select {ALERT_COLUMNS} from alerts where workspace_id = ? and id < ?
                 order by id desc limit ?"
            )))
            .bind(workspace_id)
            .bind(after.as_str()),
        }
        .bind(fetch_limit(page))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        let alerts = rows
            .iter()
            .map(alert_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(into_page(alerts, page, |alert| &alert.id))
    }

    async fn next_alert_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        // A pending alert held by a worker becomes claimable again when its lease runs out.
        let earliest: Option<i64> = sqlx::query_scalar(
            "select min(max(next_attempt_at, coalesce(lease_until, next_attempt_at)))
             from alerts where status = 'pending'",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)?;
        opt_from_ms(earliest)
    }
}
