//! Housekeeping: keeping the execution history to its retention policy, and giving leases back
//! at shutdown.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::StoreResult;

/// How long finished executions are kept. Failures are worth keeping longer than successes: they
/// are what someone investigates. A job's `keep_last` caps its history further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Succeeded, skipped and cancelled executions are deleted this long after they finished.
    pub succeeded_for: TimeDelta,
    /// Failed executions are deleted this long after they finished.
    pub failed_for: TimeDelta,
}

/// Where a store's pass over the jobs with a `keep_last` resumes, from one pruning batch to the
/// next. A batch reads jobs in id order from the cursor on and stops when it has deleted enough,
/// so the next batch starts at the last job it deleted from (which may have more) instead of at
/// the first job: started from the first job each time, a pass read every earlier job again per
/// batch, and its cost grew with the square of the number of jobs.
#[derive(Debug, Default)]
pub struct KeepLastCursor(std::sync::Mutex<Option<String>>);

impl KeepLastCursor {
    /// The least job id the next batch reads: the empty string (below every id) at the start
    /// of a pass.
    pub fn start(&self) -> String {
        self.lock().clone().unwrap_or_default()
    }

    /// Moves the cursor after a batch that had room for `room` executions and deleted those of
    /// `deleted_jobs` (one job id per execution). A batch that deleted fewer than it had room
    /// for read every job to the end: the next pass starts from the first job again. A batch
    /// with no room left (pruning by age filled it) read no job, and leaves the cursor alone.
    pub fn advance(&self, room: u64, deleted_jobs: &[String]) {
        if room == 0 {
            return;
        }
        let mut cursor = self.lock();
        *cursor = if (deleted_jobs.len() as u64) < room {
            None
        } else {
            deleted_jobs.iter().max().cloned()
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How many jobs with a `keep_last` [`prune_beyond_keep_last`] reads at a time.
pub const KEEP_LAST_JOBS_PAGE: u32 = 64;

/// A store's two reads and writes behind [`prune_beyond_keep_last`].
pub trait KeepLastPruning {
    /// Up to `limit` jobs with a `keep_last`, from the id `from_job` on (itself included), in id
    /// order, each with its `keep_last`.
    fn jobs_keeping_last(
        &mut self,
        from_job: &str,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<(String, i64)>>> + Send;

    /// Deletes up to `limit` finished executions of `job` older than its `keep_last` newest
    /// finished ones, oldest first; returns the job of each (so, `job` once per execution).
    fn prune_job(
        &mut self,
        job: &str,
        keep_last: i64,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
}

/// Deletes up to `room` finished executions beyond their job's `keep_last`, job after job in id
/// order from `from_job`, reading the jobs with a `keep_last` a page at a time; returns the job
/// of each (what [`KeepLastCursor::advance`] takes). Each job costs its `keep_last` newest and
/// what is deleted: ranking each job's whole history instead (window functions), a job whose
/// `keep_last` was just set on 2.6 million executions took seconds a batch and held SQLite's
/// writer meanwhile.
pub async fn prune_beyond_keep_last(
    store: &mut impl KeepLastPruning,
    from_job: &str,
    mut room: u64,
) -> StoreResult<Vec<String>> {
    let mut deleted_jobs = Vec::new();
    let mut from = from_job.to_owned();
    // A page starts at the job the previous one ended with, which is done.
    let mut done: Option<String> = None;
    while room > 0 {
        let page = store.jobs_keeping_last(&from, KEEP_LAST_JOBS_PAGE).await?;
        let full = page.len() == KEEP_LAST_JOBS_PAGE as usize;
        for (job, keep_last) in page {
            if done.as_ref() == Some(&job) {
                continue;
            }
            let deleted = store.prune_job(&job, keep_last, room).await?;
            room = room.saturating_sub(deleted.len() as u64);
            deleted_jobs.extend(deleted);
            if room == 0 {
                break;
            }
            from = job;
        }
        if !full {
            break;
        }
        done = Some(from.clone());
    }
    Ok(deleted_jobs)
}

/// How busy one of the store's connection pools is, for the pool gauges of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Which pool (`writer`, `reader`, `main`).
    pub pool: &'static str,
    /// Connections open now.
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// Housekeeping the store does on request of a background task.
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Deletes up to `batch` finished executions (and their attempts) that `policy` no longer
    /// keeps at `now`: succeeded, skipped and cancelled ones finished before
    /// `now - succeeded_for`, failed ones before `now - failed_for`, and any finished execution
    /// beyond the `keep_last` newest of its job, and any execution a deleted job left behind
    /// (see [`crate::Store::delete_job`]). Unfinished executions of jobs that exist are never
    /// deleted. Returns how many were deleted; callers repeat until fewer than `batch` come
    /// back, so each transaction stays short and never holds up the scheduler for long. Pruning
    /// by `keep_last` resumes at the job the previous batch stopped at ([`KeepLastCursor`]), and
    /// a batch that comes back short ends the pass.
    async fn prune_executions(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        batch: u32,
    ) -> StoreResult<u64>;

    /// Gives back every lease `node_id` holds, effective at `now`: running executions become
    /// claimable at once (the next holder records their cut attempt as interrupted), retrying
    /// ones at their `run_at`. Returns how many were released.
    async fn release_leases(&self, node_id: &str, now: DateTime<Utc>) -> StoreResult<u64>;

    /// The usage of each connection pool, now.
    fn pool_usage(&self) -> Vec<PoolUsage>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn a_full_batch_resumes_at_the_last_job_it_deleted_from() {
        let cursor = KeepLastCursor::default();
        assert_eq!(cursor.start(), "", "a pass starts below every id");
        cursor.advance(3, &ids(&["job_b", "job_c", "job_a"]));
        assert_eq!(
            cursor.start(),
            "job_c",
            "the greatest: the job that may have more"
        );
        cursor.advance(2, &ids(&["job_c", "job_d"]));
        assert_eq!(cursor.start(), "job_d");
        cursor.advance(0, &[]);
        assert_eq!(cursor.start(), "job_d", "a batch with no room read no job");
    }

    #[test]
    fn a_short_batch_ends_the_pass() {
        let cursor = KeepLastCursor::default();
        cursor.advance(2, &ids(&["job_b", "job_c"]));
        cursor.advance(5, &ids(&["job_d"]));
        assert_eq!(
            cursor.start(),
            "",
            "read to the end: the next pass starts over"
        );
        cursor.advance(2, &ids(&["job_e", "job_e"]));
        cursor.advance(4, &[]);
        assert_eq!(cursor.start(), "");
    }
}
