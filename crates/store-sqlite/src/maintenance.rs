//! Retention and lease release for SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_store::{MaintenanceStore, PoolUsage, RetentionPolicy, StoreResult};

use sqlx::{Sqlite, Transaction};

use crate::convert::{db_err, ms};
use crate::{SqliteStore, commit};

/// Finished executions past their age, oldest first (`?1` and `?2` the cut-off instants of
/// successes and failures, `?3` the limit): the where clause starts with `executions_finished`'s,
/// word for word, and reads that index in order, up to the later cut-off. Without that bound
/// (the cut-off per status is no range), a batch that found fewer than its limit read the
/// whole history: ~0.13 s a million executions, holding the writer, at every pass.
pub(crate) const PRUNE_BY_AGE: &str = concat!(
    "delete from executions where id in (
         select id from executions
         where ",
    finished!("status"),
    "
           and finished_at < max(?1, ?2)
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
/// it deletes from. The jobs come first, from `jobs_keeping_last` (the `cross join` keeps them
/// the outer loop), and only their executions are read: read from the executions' side, every
/// batch walked the whole history of every job from the cursor on (~0.24 s a million
/// executions, holding the writer) to find the few jobs with a `keep_last`, usually none.
/// Partitioned by `j.id`, the order the loops produce, from an index declared unique, so that
/// SQLite does not sort.
pub(crate) const PRUNE_BEYOND_KEEP_LAST: &str = concat!(
    "delete from executions where id in (
         select id from (
             select e.id,
                    count(*) over (partition by j.id)
                        - row_number() over (partition by j.id order by e.scheduled_for)
                        + 1 as newest,
                    j.keep_last
             from (select id, json_extract(spec, '$.keep_last') as keep_last
                   from jobs indexed by jobs_keeping_last
                   where json_extract(spec, '$.keep_last') is not null and id >= ?2) j
                  cross join executions e on e.job_id = j.id
             where ",
    finished!("e.status"),
    ")
         where newest > keep_last
         limit ?1)
     returning job_id"
);

/// Up to `?2` executions of a deleted job (`?1`) and, by cascade, their attempts: the history
/// its deletion left behind (see `SqliteStore::delete_job`), read along the occurrence key.
pub(crate) const PURGE_DELETED_JOB: &str = "delete from executions where id in (
         select id from executions where job_id = ?1 limit ?2)";

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
        let beyond_keep_last = deleted_jobs.len() as u64;
        let purged = purge_deleted_jobs(
            &mut tx,
            u64::try_from(room)
                .unwrap_or(0)
                .saturating_sub(beyond_keep_last),
        )
        .await?;
        commit(tx).await?;
        self.keep_last_cursor
            .advance(u64::try_from(room).unwrap_or(0), &deleted_jobs);
        Ok(by_age + beyond_keep_last + purged)
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

/// Deletes up to `room` executions left behind by deleted jobs, the earliest deletion first, and
/// forgets each job whose history is gone; returns how many were deleted. A batch that fills
/// `room` exactly leaves the job marked, and the next finds nothing left and forgets it.
async fn purge_deleted_jobs(
    tx: &mut Transaction<'static, Sqlite>,
    mut room: u64,
) -> StoreResult<u64> {
    let mut purged = 0;
    while room > 0 {
        let Some(job_id): Option<String> = sqlx::query_scalar(
            "select job_id from deleted_jobs order by deleted_at, job_id limit 1",
        )
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        else {
            break;
        };
        let deleted = sqlx::query(PURGE_DELETED_JOB)
            .bind(&job_id)
            .bind(i64::try_from(room).unwrap_or(i64::MAX))
            .execute(&mut **tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        purged += deleted;
        if deleted == room {
            break;
        }
        room -= deleted;
        sqlx::query("delete from deleted_jobs where job_id = ?")
            .bind(&job_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(purged)
}
