//! The pruner: keeps the execution history to the retention policy, in small batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use cronhook_store::{RetentionPolicy, Store};
use tokio_util::sync::CancellationToken;

/// How many executions one pruning transaction deletes at most: small, so the writer is never
/// held for long and the scheduler's transactions slip in between.
pub const PRUNE_BATCH: u32 = 500;

/// Deletes what `policy` no longer keeps every `interval` (and once at start), until `shutdown`.
pub async fn run_pruner(
    store: Arc<dyn Store>,
    policy: RetentionPolicy,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match prune_all(store.as_ref(), &policy, &shutdown).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "pruned old executions"),
            Err(error) => {
                tracing::warn!(%error, "pruning old executions failed; trying again later")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// After a full batch the pruner rests this many times as long as the batch took, so it holds
/// the store for at most a fifth of the time. Every write of firing and recording that comes
/// while a batch runs waits for it, and with only a yield between batches, pruning a backlog (a
/// deleted job's month of every-second history, a shortened retention) left a thousand jobs
/// firing every second up to 4 s late on SQLite, and occurrences were missed.
pub const REST_PER_BATCH: u32 = 4;

/// Prunes batch after batch until a batch comes back short, resting between batches (see
/// [`REST_PER_BATCH`]); returns how many were deleted.
pub async fn prune_all(
    store: &dyn Store,
    policy: &RetentionPolicy,
    shutdown: &CancellationToken,
) -> Result<u64, cronhook_store::StoreError> {
    let mut total = 0;
    loop {
        let started = Instant::now();
        let deleted = store
            .prune_executions(policy, Utc::now(), PRUNE_BATCH)
            .await?;
        total += deleted;
        if deleted < u64::from(PRUNE_BATCH) || shutdown.is_cancelled() {
            return Ok(total);
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(total),
            () = tokio::time::sleep(started.elapsed() * REST_PER_BATCH) => {}
        }
    }
}
