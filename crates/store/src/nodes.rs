//! The node registry: which `cronhook serve` processes are alive, with what roles.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreResult;

/// One running process, as it reports itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The id it holds leases under (its name and a per-start suffix).
    pub id: String,
    /// The name given with `--node-id`, or the host name.
    pub name: String,
    /// `api`, `scheduler`, `executor`.
    pub roles: Vec<String>,
    /// The cronhook version it runs.
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat_at: DateTime<Utc>,
}

/// Where nodes report themselves.
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Records that `node` is alive at `node.last_heartbeat_at` (creating its row on the first
    /// call), and forgets nodes not heard from for a day.
    async fn heartbeat(&self, node: &NodeInfo) -> StoreResult<()>;

    /// Nodes heard from since `since`, the most recently heard first.
    async fn nodes(&self, since: DateTime<Utc>) -> StoreResult<Vec<NodeInfo>>;

    /// The database's clock now: the one clock every node judges due-ness and leases by (see
    /// [`crate::DatabaseClock`]).
    async fn database_now(&self) -> StoreResult<DateTime<Utc>>;
}
