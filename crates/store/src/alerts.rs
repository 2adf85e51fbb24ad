//! Alert channels and the alert outbox.
//!
//! Alerts are raised inside the transaction that records an execution's last attempt
//! (`Store::record_attempts`), so an alert exists before anyone tries to send it and is never
//! lost: the delivery worker claims pending rows with a lease, sends them, and records the
//! outcome. A worker that dies mid-send leaves a lease that runs out; the next claim takes the
//! alert again. Every method that touches a user's object takes the workspace id.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cronhook_core::alerting::{AlertFacts, AlertKind, ChannelTarget};

use crate::{Lease, Page, PageRequest, StoreResult};

/// An alert channel of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// `chn_…`
    pub id: String,
    pub workspace_id: String,
    /// Unique within the workspace.
    pub name: String,
    pub target: ChannelTarget,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where an alert's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Not delivered yet: waiting for its first try, or for a retry at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up on; `error` says why.
    Failed,
}

/// One alert to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// `alr_…`
    pub id: String,
    pub workspace_id: String,
    pub job_id: Option<String>,
    pub execution_id: Option<String>,
    pub channel_id: String,
    pub kind: AlertKind,
    pub status: AlertStatus,
    /// Delivery tries made so far.
    pub attempts: u32,
    /// The last delivery error.
    pub error: Option<String>,
    pub facts: AlertFacts,
    pub created_at: DateTime<Utc>,
    /// When the next try may start (pending alerts).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// An alert handed to a delivery worker, with its channel (`None` when the channel was deleted
/// since).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedAlert {
    pub alert: Alert,
    pub channel: Option<Channel>,
}

/// What came of one delivery try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered {
        at: DateTime<Utc>,
    },
    /// Failed; try again at `retry_at`.
    Retry {
        error: String,
        at: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    },
    /// Failed for good.
    Failed {
        error: String,
        at: DateTime<Utc>,
    },
}

/// Alert channels, the workspace's default channels, and the alert outbox.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Creates a channel; `Conflict` if its name is taken in the workspace.
    async fn insert_channel(&self, channel: &Channel) -> StoreResult<()>;
    async fn channel(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Channel>>;
    /// Channels in id (creation) order.
    async fn list_channels(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Channel>>;
    /// Replaces a channel's name, target and `updated_at`; `NotFound`, or `Conflict` on name.
    async fn update_channel(&self, channel: &Channel) -> StoreResult<()>;
    /// Deletes a channel (and drops it from the workspace's default channels); false when there
    /// was none. Its alerts stay listed; pending ones fail with "the channel was deleted".
    async fn delete_channel(&self, workspace_id: &str, id: &str) -> StoreResult<bool>;
    /// The channels that alert for jobs that name none, in the order given.
    async fn default_alert_channels(&self, workspace_id: &str) -> StoreResult<Vec<String>>;
    /// Replaces the default channels; `NotFound` when one of them is not a channel of this
    /// workspace (then nothing changes).
    async fn set_default_alert_channels(
        &self,
        workspace_id: &str,
        channel_ids: &[String],
    ) -> StoreResult<()>;

    /// Records an alert outside the streak rules (a channel test): pending, due now.
    async fn insert_alert(&self, alert: &Alert) -> StoreResult<()>;
    /// Claims up to `limit` alerts that are pending with `next_attempt_at` ≤ `now` and no live
    /// lease, leasing them to `lease.node_id` until `lease.until`. An alert is never held by two
    /// workers at once; one whose holder died is claimed again once the lease ran out.
    async fn claim_alerts(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedAlert>>;
    /// Records a delivery try of a claimed alert: counts the try, releases the lease, and makes
    /// the alert delivered, pending again (retry) or failed. Refused (`false`) when `node_id`
    /// no longer holds the alert.
    async fn complete_alert(
        &self,
        alert_id: &str,
        node_id: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<bool>;
    /// The workspace's alerts, newest first.
    async fn list_alerts(&self, workspace_id: &str, page: &PageRequest)
    -> StoreResult<Page<Alert>>;
    /// The earliest instant at which a pending alert can be claimed (its `next_attempt_at`, or
    /// the end of the lease of a worker holding it), to know how long to sleep.
    async fn next_alert_due(&self) -> StoreResult<Option<DateTime<Utc>>>;
}
