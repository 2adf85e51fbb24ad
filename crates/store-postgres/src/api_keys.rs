//! API key management and the wrapped workspace data keys (secrets at rest) in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_core::{Job, JobSpec};
use cronhook_store::{
    ApiKey, ApiKeyStore, LAST_USED_RESOLUTION, Sealer, StoreResult, WorkspaceKeyStore,
};

use crate::PostgresStore;
use crate::convert::{db_err, ms};
use crate::rows::api_key_from_row;

impl PostgresStore {
    /// Seals secret header values with `sealer` from now on (the binary always sets one).
    pub fn with_sealer(mut self, sealer: Sealer) -> Self {
        self.sealer = std::sync::Arc::new(sealer);
        self
    }

    /// The spec of `job` as it is written: secret header values sealed.
    pub(crate) async fn seal_spec(&self, job: &Job) -> StoreResult<JobSpec> {
        self.sealer
            .seal_spec(self, &job.workspace_id, &job.id, &job.spec)
            .await
    }

    /// Opens the sealed values of a spec read back.
    pub(crate) async fn open_spec(
        &self,
        workspace_id: &str,
        job_id: &str,
        spec: &mut JobSpec,
    ) -> StoreResult<()> {
        self.sealer
            .open_spec(self, workspace_id, job_id, spec)
            .await
    }

    pub(crate) async fn open_jobs(&self, jobs: &mut [Job]) -> StoreResult<()> {
        for job in jobs {
            self.sealer
                .open_spec(
                    self,
                    &job.workspace_id,
                    &job.id,
                    std::sync::Arc::make_mut(&mut job.spec),
                )
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ApiKeyStore for PostgresStore {
    async fn list_api_keys(&self, workspace_id: &str) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query(concat!(
            "select ",
            api_key_columns!(),
            " from api_keys where workspace_id = $1 order by id"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn api_key(&self, workspace_id: &str, id: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(concat!(
            "select ",
            api_key_columns!(),
            " from api_keys where workspace_id = $1 and id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn revoke_api_key(
        &self,
        workspace_id: &str,
        id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "update api_keys set revoked_at = $1
             where workspace_id = $2 and id = $3 and revoked_at is null",
        )
        .bind(ms(at))
        .bind(workspace_id)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "update api_keys set last_used_at = $1
             where id = $2 and (last_used_at is null or last_used_at <= $3)",
        )
        .bind(ms(at))
        .bind(id)
        .bind(ms(at - LAST_USED_RESOLUTION))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl WorkspaceKeyStore for PostgresStore {
    async fn wrapped_data_key(&self, workspace_id: &str) -> StoreResult<Option<String>> {
        let key: Option<Option<String>> =
            sqlx::query_scalar("select data_key from workspaces where id = $1")
                .bind(workspace_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(key.flatten())
    }

    async fn replace_wrapped_data_key(
        &self,
        workspace_id: &str,
        expected: Option<&str>,
        new: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "update workspaces set data_key = $1
             where id = $2 and data_key is not distinct from $3",
        )
        .bind(new)
        .bind(workspace_id)
        .bind(expected)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn wrapped_data_keys(&self) -> StoreResult<Vec<(String, String)>> {
        sqlx::query_as("select id, data_key from workspaces where data_key is not null order by id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }
}
