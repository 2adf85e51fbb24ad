//! Retention and lease release for SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_store::{KeepLastPruning, MaintenanceStore, PoolUsage, RetentionPolicy, StoreResult};

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

/// The jobs with a `keep_last` from `?1` on, in id order, with it, at most `?2`: from
/// `jobs_keeping_last`, whose where clause it repeats word for word. Read from the executions'
/// side, every batch walked the whole history of every job from the cursor on (~0.24 s a
/// million executions, holding the writer) to find the few jobs with a `keep_last`, usually
/// none.
pub(crate) const JOBS_KEEPING_LAST: &str = "select id, json_extract(spec, '$.keep_last')
     from jobs indexed by jobs_keeping_last
     where json_extract(spec, '$.keep_last') is not null and id >= ?1
     order by id
     limit ?2";

/// The instant of the job `?1`'s `?2`-th newest finished execution, below which pruning by
/// `keep_last` deletes: its executions not yet filed, newest first, then its filed ones through
/// `job_history` (as `job_history!` reads them), so a batch reads `?2` executions.
pub(crate) const KEEP_LAST_BOUNDARY: &str = concat!(
    "select scheduled_for from executions
     where scheduled_for >= ",
    filed_upto!(),
    " and job_id = ?1 and ",
    finished!("status"),
    "
     union all
     select h.scheduled_for from ",
    filed_executions!(),
    "
     where h.job_id = ?1 and h.scheduled_for < ",
    filed_upto!(),
    " and ",
    finished!("e.status"),
    "
     order by scheduled_for desc
     limit 1 offset ?2 - 1"
);

/// Up to `?3` finished executions of the job `?1` scheduled before `?2` (its
/// [`KEEP_LAST_BOUNDARY`]), oldest first: the filed ones through `job_history`, then those not
/// yet filed. Returns each one's job (see [`cronhook_store::prune_beyond_keep_last`]).
pub(crate) const PRUNE_BEYOND_KEEP_LAST: &str = concat!(
    "delete from executions where rowid in (
         select row from (
             select e.rowid as row, h.scheduled_for as at from ",
    filed_executions!(),
    "
             where h.job_id = ?1 and h.scheduled_for < min(",
    filed_upto!(),
    ", ?2) and ",
    finished!("e.status"),
    "
             union all
             select rowid, scheduled_for from executions
             where scheduled_for >= ",
    filed_upto!(),
    " and scheduled_for < ?2 and job_id = ?1 and ",
    finished!("status"),
    "
             order by at
             limit ?3))
     returning job_id"
);

/// Up to `?2` executions of a deleted job (`?1`) and, by cascade, their attempts: the history
/// its deletion left behind (see `SqliteStore::delete_job`), the filed part through
/// `job_history` and the rest from the time-first occurrence key. The two arms do not overlap,
/// so fewer than `?2` deleted means none is left.
pub(crate) const PURGE_DELETED_JOB: &str = concat!(
    "delete from executions where rowid in (
         select e.rowid from ",
    filed_executions!(),
    "
         where h.job_id = ?1 and h.scheduled_for < ",
    filed_upto!(),
    "
         union all
         select rowid from executions where scheduled_for >= ",
    filed_upto!(),
    " and job_id = ?1
         limit ?2)"
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
        let room = u64::from(batch).saturating_sub(by_age);
        let deleted_jobs = cronhook_store::prune_beyond_keep_last(
            &mut KeepLastInTransaction(&mut tx),
            &self.keep_last_cursor.start(),
            room,
        )
        .await?;
        let beyond_keep_last = deleted_jobs.len() as u64;
        let purged = purge_deleted_jobs(&mut tx, room.saturating_sub(beyond_keep_last)).await?;
        commit(tx).await?;
        self.keep_last_cursor.advance(room, &deleted_jobs);
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

/// [`cronhook_store::prune_beyond_keep_last`] inside a write transaction.
struct KeepLastInTransaction<'a>(&'a mut Transaction<'static, Sqlite>);

impl KeepLastPruning for KeepLastInTransaction<'_> {
    async fn jobs_keeping_last(
        &mut self,
        from_job: &str,
        limit: u32,
    ) -> StoreResult<Vec<(String, i64)>> {
        sqlx::query_as(JOBS_KEEPING_LAST)
            .bind(from_job)
            .bind(i64::from(limit))
            .fetch_all(&mut **self.0)
            .await
            .map_err(db_err)
    }

    async fn prune_job(
        &mut self,
        job: &str,
        keep_last: i64,
        limit: u64,
    ) -> StoreResult<Vec<String>> {
        let boundary: Option<i64> = sqlx::query_scalar(KEEP_LAST_BOUNDARY)
            .bind(job)
            .bind(keep_last)
            .fetch_optional(&mut **self.0)
            .await
            .map_err(db_err)?;
        // Fewer finished executions than it keeps: nothing to prune.
        let Some(boundary) = boundary else {
            return Ok(Vec::new());
        };
        sqlx::query_scalar(PRUNE_BEYOND_KEEP_LAST)
            .bind(job)
            .bind(boundary)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut **self.0)
            .await
            .map_err(db_err)
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
