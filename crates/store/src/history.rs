//! Light views of a job's history for overviews (sparklines, charts): executions without their
//! attempts, so that reading hundreds of them costs little.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_core::{ExecutionStatus, Trigger};

use crate::StoreResult;

/// One execution, without its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionPoint {
    pub id: String,
    pub job_id: String,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: Trigger,
    pub status: ExecutionStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
}

/// Overviews of executions.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// At most `limit` executions of the job `job_id` in `workspace_id`, newest first (by
    /// scheduled instant, unique within a job), restricted to those scheduled at or after
    /// `since` when given.
    /// Another workspace's job yields nothing.
    async fn execution_points(
        &self,
        workspace_id: &str,
        job_id: &str,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> StoreResult<Vec<ExecutionPoint>>;
}
