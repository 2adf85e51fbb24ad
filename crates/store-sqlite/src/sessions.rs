//! Dashboard sessions, first-run setup and execution overviews for SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_store::{
    ExecutionPoint, HistoryStore, Session, SessionStore, StoreResult, User, Workspace,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::convert::{conflict_or_db_err, db_err, from_ms, ms, opt_ms};
use crate::rows::{execution_from_row, user_from_row};
use crate::{SqliteStore, commit};

fn session_from_row(row: &SqliteRow) -> StoreResult<Session> {
    let get_ms = |column: &str| -> StoreResult<DateTime<Utc>> {
        from_ms(row.try_get(column).map_err(db_err)?)
    };
    Ok(Session {
        token_hash: row.try_get("token_hash").map_err(db_err)?,
        user_id: row.try_get("user_id").map_err(db_err)?,
        workspace_id: row.try_get("workspace_id").map_err(db_err)?,
        csrf_token: row.try_get("csrf_token").map_err(db_err)?,
        created_at: get_ms("session_created_at")?,
        idle_expires_at: get_ms("idle_expires_at")?,
        expires_at: get_ms("expires_at")?,
    })
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "insert into sessions
                (token_hash, user_id, workspace_id, csrf_token, created_at, idle_expires_at,
                 expires_at)
             values (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&session.token_hash)
        .bind(&session.user_id)
        .bind(&session.workspace_id)
        .bind(&session.csrf_token)
        .bind(ms(session.created_at))
        .bind(ms(session.idle_expires_at))
        .bind(ms(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| conflict_or_db_err(err, |_| "session".to_owned()))?;
        commit(tx).await
    }

    async fn session_by_token_hash(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Session, User)>> {
        let row = sqlx::query(
            "select s.token_hash, s.user_id, s.workspace_id, s.csrf_token,
                    s.created_at as session_created_at, s.idle_expires_at, s.expires_at,
                    u.id, u.email, u.password_hash, u.created_at
             from sessions s join users u on u.id = s.user_id
             where s.token_hash = ?1 and s.idle_expires_at > ?2 and s.expires_at > ?2",
        )
        .bind(token_hash)
        .bind(ms(now))
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((session_from_row(&row)?, user_from_row(&row)?)))
    }

    async fn touch_session(
        &self,
        token_hash: &str,
        idle_expires_at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "update sessions set idle_expires_at = min(?, expires_at) where token_hash = ?",
        )
        .bind(ms(idle_expires_at))
        .bind(token_hash)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        commit(tx).await?;
        Ok(changed > 0)
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let deleted = sqlx::query("delete from sessions where token_hash = ?")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        commit(tx).await?;
        Ok(deleted > 0)
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        // The idle expiry never passes the absolute one, so it alone decides.
        let deleted = sqlx::query("delete from sessions where idle_expires_at <= ?")
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        commit(tx).await?;
        Ok(deleted)
    }

    async fn has_users(&self) -> StoreResult<bool> {
        let row = sqlx::query("select exists (select 1 from users) as any_user")
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)?;
        row.try_get::<bool, _>("any_user").map_err(db_err)
    }

    async fn create_first_user(
        &self,
        workspace: &Workspace,
        user: &User,
    ) -> StoreResult<Option<User>> {
        // `BEGIN IMMEDIATE` holds the write lock from here, so two setups cannot both see no
        // user.
        let mut tx = self.write().await?;
        let any_user: bool = sqlx::query("select exists (select 1 from users) as any_user")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?
            .try_get("any_user")
            .map_err(db_err)?;
        if any_user {
            return Ok(None);
        }
        let existing: Option<String> = sqlx::query("select id from workspaces where slug = ?")
            .bind(&workspace.slug)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .map(|row| row.try_get("id"))
            .transpose()
            .map_err(db_err)?;
        let workspace_id = match existing {
            Some(id) => id,
            None => {
                sqlx::query(
                    "insert into workspaces
                        (id, slug, signing_secret, previous_signing_secret,
                         signing_secret_rotated_at, created_at)
                     values (?, ?, ?, ?, ?, ?)",
                )
                .bind(&workspace.id)
                .bind(&workspace.slug)
                .bind(&workspace.signing_secret)
                .bind(&workspace.previous_signing_secret)
                .bind(opt_ms(workspace.signing_secret_rotated_at))
                .bind(ms(workspace.created_at))
                .execute(&mut *tx)
                .await
                .map_err(|err| {
                    conflict_or_db_err(err, |_| format!("workspace `{}`", workspace.slug))
                })?;
                workspace.id.clone()
            }
        };
        let user = User {
            workspace_id,
            email: user.email.to_lowercase(),
            ..user.clone()
        };
        sqlx::query(
            "insert into users (id, workspace_id, email, password_hash, created_at)
             values (?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.workspace_id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(ms(user.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| conflict_or_db_err(err, |_| format!("user `{}`", user.email)))?;
        commit(tx).await?;
        Ok(Some(user))
    }
}

/// A job's executions scheduled at or after an instant, newest scheduled instant first (see
/// `job_history!`). The executions not yet filed are read from the later of the instant and the
/// filing mark, so an instant long past does not read every job's history. Parameters: job id,
/// workspace id, since, limit.
pub(crate) const EXECUTION_POINTS: &str = job_history!(
    from: ["max(", filed_upto!(), ", ?3)"],
    recent: [""],
    filed: [" and h.scheduled_for < ", filed_upto!(), " and h.scheduled_for >= ?3"],
    limit: "?4"
);

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn execution_points(
        &self,
        workspace_id: &str,
        job_id: &str,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> StoreResult<Vec<ExecutionPoint>> {
        let Some(mut tx) = self.read_job_history(workspace_id, job_id).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(EXECUTION_POINTS)
            .bind(job_id)
            .bind(workspace_id)
            .bind(since.map_or(i64::MIN, ms))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let execution = execution_from_row(row)?;
                Ok(ExecutionPoint {
                    id: execution.id,
                    job_id: execution.job_id,
                    scheduled_for: execution.scheduled_for,
                    trigger: execution.trigger,
                    status: execution.status,
                    started_at: execution.started_at,
                    finished_at: execution.finished_at,
                    duration_ms: execution.duration_ms,
                })
            })
            .collect()
    }
}
