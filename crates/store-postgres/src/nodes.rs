//! The node registry in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use cronhook_store::{NodeInfo, NodeStore, StoreResult};
use sqlx::Row as _;

use crate::convert::{db_err, from_json, ms, to_json};
use crate::{PostgresStore, retrying};

/// Nodes not heard from for this long are forgotten.
const FORGET_AFTER: TimeDelta = TimeDelta::days(1);

#[async_trait]
impl NodeStore for PostgresStore {
    async fn heartbeat(&self, node: &NodeInfo) -> StoreResult<()> {
        let roles = to_json(&node.roles)?;
        retrying(|| async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            sqlx::query(
                "insert into nodes (id, name, roles, version, started_at, last_heartbeat_at)
                 values ($1, $2, $3, $4, $5, $6)
                 on conflict (id) do update set last_heartbeat_at = excluded.last_heartbeat_at,
                     roles = excluded.roles, version = excluded.version",
            )
            .bind(&node.id)
            .bind(&node.name)
            .bind(&roles)
            .bind(&node.version)
            .bind(ms(node.started_at))
            .bind(ms(node.last_heartbeat_at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query("delete from nodes where last_heartbeat_at < $1")
                .bind(ms(node.last_heartbeat_at - FORGET_AFTER))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    async fn nodes(&self, since: DateTime<Utc>) -> StoreResult<Vec<NodeInfo>> {
        let rows = sqlx::query(
            "select id, name, roles, version, started_at, last_heartbeat_at from nodes
             where last_heartbeat_at >= $1
             order by last_heartbeat_at desc, id",
        )
        .bind(ms(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(NodeInfo {
                    id: row.try_get("id").map_err(db_err)?,
                    name: row.try_get("name").map_err(db_err)?,
                    roles: from_json(
                        &row.try_get::<String, _>("roles").map_err(db_err)?,
                        "node roles",
                    )?,
                    version: row.try_get("version").map_err(db_err)?,
                    started_at: row.try_get("started_at").map_err(db_err)?,
                    last_heartbeat_at: row.try_get("last_heartbeat_at").map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn database_now(&self) -> StoreResult<DateTime<Utc>> {
        // `clock_timestamp()`, not `now()`: the latter is the start of the transaction.
        sqlx::query_scalar("select clock_timestamp()")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }
}
