//! Retention and lease release for PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_store::{MaintenanceStore, PoolUsage, RetentionPolicy, StoreResult};

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
            // Beyond `keep_last`, as the SQLite store's `PRUNE_BEYOND_KEEP_LAST`: the jobs from
            // the cursor on, each ranked from its oldest so that the occurrence key is read in
            // its own order and the ranking stops at the limit. The spec is json text; `::json`
            // (not jsonb) accepts every string a spec may hold.
            let deleted_jobs: Vec<String> = sqlx::query_scalar(
                "delete from executions where id in (
                     select id from (
                         select e.id,
                                count(*) over (partition by e.job_id)
                                    - row_number() over (partition by e.job_id order by e.scheduled_for)
                                    + 1 as newest,
                                (j.spec::json ->> 'keep_last')::bigint as keep_last
                         from executions e join jobs j on j.id = e.job_id
                         where e.status in ('succeeded', 'failed', 'skipped', 'cancelled')
                           and e.job_id >= $2
                           and j.spec::json ->> 'keep_last' is not null) ranked
                     where newest > keep_last
                     limit $1)
                 returning job_id",
            )
            .bind(room)
            .bind(from_job)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
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
