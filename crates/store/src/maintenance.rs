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
    /// beyond the `keep_last` newest of its job. Unfinished executions are never deleted. Returns
    /// how many were deleted; callers repeat until fewer than `batch` come back, so each
    /// transaction stays short and never holds up the scheduler for long.
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
