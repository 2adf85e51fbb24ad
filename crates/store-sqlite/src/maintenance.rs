//! Retention and lease release for SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_store::{MaintenanceStore, PoolUsage, RetentionPolicy, StoreResult};

use crate::convert::{db_err, ms};
use crate::{SqliteStore, commit};

/// Finished executions past their age, oldest first (`?1` and `?2` the cut-off instants of
/// successes and failures, `?3` the limit): the where clause starts with `executions_finished`'s,
/// word for word, and reads that index in order.
pub(crate) const PRUNE_BY_AGE: &str = concat!(
    "delete from executions where id in (
         select id from executions
         where ",
    finished!("status"),
    "
           and finished_at < (case status when 'failed' then ?2 else ?1 end)
         order by finished_at
         limit ?3)"
);

/// Finished executions beyond their job's `keep_last`, newest scheduled instant kept (`?1` the
/// limit), of the jobs from `?2` on in id order; returns each one's job. A job's rank from its
/// newest is counted from its oldest (the partition's size less the rank from the oldest, plus
/// one), so the occurrence key `(job_id, scheduled_for)` is read in its own order from `?2`:
/// ranked from the newest, SQLite sorted each job's executions again. It stops at the limit, so
/// a batch reads the jobs from the cursor ([`cronhook_store::KeepLastCursor`]) to the last one
/// it deletes from.
pub(crate) const PRUNE_BEYOND_KEEP_LAST: &str = concat!(
    "delete from executions where id in (
         select id from (
             select e.id,
                    count(*) over (partition by e.job_id)
                        - row_number() over (partition by e.job_id order by e.scheduled_for)
                        + 1 as newest,
                    json_extract(j.spec, '$.keep_last') as keep_last
             from executions e join jobs j on j.id = e.job_id
             where ",
    finished!("e.status"),
    "
               and e.job_id >= ?2
               and json_extract(j.spec, '$.keep_last') is not null)
         where newest > keep_last
         limit ?1)
     returning job_id"
);

/// Ends a node's leases of running executions just before `?1` (`?2` the node). Both release
/// statements start with the where clause of the partial indexes of unfinished executions, word
/// for word, so that they read only those and not the whole history: SQLite sees that a status
/// equals one of the clause's values, but not that a list of them implies it.
pub(crate) const RELEASE_RUNNING: &str = concat!(
    "update executions set lease_until = ?1
     where ",
    unfinished!("status"),
    " and status = 'running' and locked_by = ?2"
);

/// Gives back a node's (`?1`) queued and retrying executions, for any node to claim.
pub(crate) const RELEASE_WAITING: &str = concat!(
    "update executions set locked_by = null, lease_until = null
     where ",
    unfinished!("status"),
    " and status in ('queued', 'retrying') and locked_by = ?1"
);

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn prune_executions(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        batch: u32,
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        // By age first: it reads the `executions_finished` index in order.
        let by_age = sqlx::query(PRUNE_BY_AGE)
            .bind(ms(now - policy.succeeded_for))
            .bind(ms(now - policy.failed_for))
            .bind(i64::from(batch))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        let room = i64::from(batch).saturating_sub(i64::try_from(by_age).unwrap_or(i64::MAX));
        let deleted_jobs: Vec<String> = if room > 0 {
            sqlx::query_scalar(PRUNE_BEYOND_KEEP_LAST)
                .bind(room)
                .bind(self.keep_last_cursor.start())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?
        } else {
            Vec::new()
        };
        commit(tx).await?;
        self.keep_last_cursor
            .advance(u64::try_from(room).unwrap_or(0), &deleted_jobs);
        Ok(by_age + deleted_jobs.len() as u64)
    }

    async fn release_leases(&self, node_id: &str, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        // A running execution's lease ends just before now (claims take leases that ended
        // before their instant), so the next claim treats its attempt as cut.
        let running = sqlx::query(RELEASE_RUNNING)
            .bind(ms(now) - 1)
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        let waiting = sqlx::query(RELEASE_WAITING)
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        commit(tx).await?;
        Ok(running + waiting)
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        [("writer", &self.writer), ("reader", &self.reader)]
            .into_iter()
            .map(|(pool, connections)| PoolUsage {
                pool,
                open: connections.size(),
                idle: u32::try_from(connections.num_idle()).unwrap_or(u32::MAX),
                max: connections.options().get_max_connections(),
            })
            .collect()
    }
}
