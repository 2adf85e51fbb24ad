//! Retention and lease release for PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_store::{KeepLastPruning, MaintenanceStore, PoolUsage, RetentionPolicy, StoreResult};

use crate::convert::{db_err, ms};
use crate::{PostgresStore, retrying};

/// Finished executions past their age, oldest first (`$1` and `$2` the cut-off instants of
/// successes and failures, `$3` the limit), from the `executions_finished` index in order, up to
/// the later cut-off. Without that bound (the cut-off per status is no range), a batch that
/// found fewer than its limit read the whole history: ~0.7 s for 2.6 million executions, at
/// every pass. `skip locked` leaves rows another pruner holds to that pruner.
pub(crate) const PRUNE_BY_AGE: &str = "delete from executions where id in (
     select id from executions
     where status in ('succeeded', 'failed', 'skipped', 'cancelled')
       and finished_at < greatest($1, $2)
       and finished_at < (case status when 'failed' then $2 else $1 end)
     order by finished_at
     limit $3
     for update skip locked)";

/// The jobs with a `keep_last` from `$1` on, in id order, with it, at most `$2`: from
/// `jobs_keeping_last` (migration 0017). Read from each spec as json instead, every batch parsed
/// every job's spec, and failed on any that held an escaped NUL.
pub(crate) const JOBS_KEEPING_LAST: &str = "select id, keep_last
     from jobs
     where keep_last is not null and id >= $1
     order by id
     limit $2";

/// Up to `$3` finished executions of the job `$1` older than its `$2` newest finished ones,
/// oldest first; returns each one's job. Both are ranges of the occurrence key (see
/// [`cronhook_store::prune_beyond_keep_last`]); ranked over the job's whole history instead, a
/// job whose `keep_last` was just set on 2.6 million executions pruned 500 of them in 19 s.
/// `skip locked` leaves rows another pruner holds to that pruner.
pub(crate) const PRUNE_BEYOND_KEEP_LAST: &str = "delete from executions where id in (
     select id from executions
     where job_id = $1 and status in ('succeeded', 'failed', 'skipped', 'cancelled')
       and scheduled_for < (
           select scheduled_for from executions
           where job_id = $1 and status in ('succeeded', 'failed', 'skipped', 'cancelled')
           order by scheduled_for desc
           limit 1 offset $2 - 1)
     order by scheduled_for
     limit $3
     for update skip locked)
 returning job_id";

/// [`cronhook_store::prune_beyond_keep_last`] on the pool, a statement at a time.
struct KeepLastOnPool<'a>(&'a sqlx::PgPool);

impl KeepLastPruning for KeepLastOnPool<'_> {
    async fn jobs_keeping_last(
        &mut self,
        from_job: &str,
        limit: u32,
    ) -> StoreResult<Vec<(String, i64)>> {
        sqlx::query_as(JOBS_KEEPING_LAST)
            .bind(from_job)
            .bind(i64::from(limit))
            .fetch_all(self.0)
            .await
            .map_err(db_err)
    }

    async fn prune_job(
        &mut self,
        job: &str,
        keep_last: i64,
        limit: u64,
    ) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(PRUNE_BEYOND_KEEP_LAST)
            .bind(job)
            .bind(keep_last)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.0)
            .await
            .map_err(db_err)
    }
}

#[async_trait]
impl MaintenanceStore for PostgresStore {
    async fn prune_executions(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        batch: u32,
    ) -> StoreResult<u64> {
        let succeeded_before = ms(now - policy.succeeded_for);
        let failed_before = ms(now - policy.failed_for);
        let batch = i64::from(batch);
        let from_job = self.keep_last_cursor.start();
        let from_job = from_job.as_str();
        let (by_age, room, deleted_jobs) = retrying(move || async move {
            // By age first: it reads the `executions_finished` index in order.
            let by_age = sqlx::query(PRUNE_BY_AGE)
                .bind(succeeded_before)
                .bind(failed_before)
                .bind(batch)
                .execute(&self.pool)
                .await
                .map_err(db_err)?
                .rows_affected();
            let room = batch.saturating_sub(i64::try_from(by_age).unwrap_or(i64::MAX));
            if room <= 0 {
                return Ok((by_age, 0, Vec::new()));
            }
            let deleted_jobs = cronhook_store::prune_beyond_keep_last(
                &mut KeepLastOnPool(&self.pool),
                from_job,
                u64::try_from(room).unwrap_or(0),
            )
            .await?;
            Ok((by_age, room, deleted_jobs))
        })
        .await?;
        self.keep_last_cursor
            .advance(u64::try_from(room).unwrap_or(0), &deleted_jobs);
        Ok(by_age + deleted_jobs.len() as u64)
    }

    async fn release_leases(&self, node_id: &str, now: DateTime<Utc>) -> StoreResult<u64> {
        let now = ms(now);
        retrying(move || async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            // A running execution's lease ends just before now (claims take leases that ended
            // before their instant), so the next claim treats its attempt as cut.
            let running = sqlx::query(
                "update executions set lease_until = $1 - interval '1 millisecond'
                 where locked_by = $2 and status = 'running'",
            )
            .bind(now)
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            let waiting = sqlx::query(
                "update executions set locked_by = null, lease_until = null
                 where locked_by = $1 and status in ('queued', 'retrying')",
            )
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            // The scheduler's claims on due jobs go back too.
            sqlx::query(
                "update jobs set claimed_by = null, claim_until = null where claimed_by = $1",
            )
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(running + waiting)
        })
        .await
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        vec![PoolUsage {
            pool: "main",
            open: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }]
    }
}
