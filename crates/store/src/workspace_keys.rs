//! The wrapped per-workspace data keys that seal secret header values at rest (see
//! `cronhook-secrets` and [`crate::sealing`]).

use async_trait::async_trait;

use crate::StoreResult;

/// Where each workspace's data key is kept, wrapped by the master key. The store never sees a
/// key in the clear: these methods move opaque wrapped text.
#[async_trait]
pub trait WorkspaceKeyStore: Send + Sync {
    /// The wrapped data key of a workspace; `None` when it has none yet (or does not exist).
    async fn wrapped_data_key(&self, workspace_id: &str) -> StoreResult<Option<String>>;
    /// Sets the wrapped data key to `new` if it still is `expected` (`None`: unset). False when
    /// it was not (another node set or rotated it first) or the workspace does not exist.
    async fn replace_wrapped_data_key(
        &self,
        workspace_id: &str,
        expected: Option<&str>,
        new: &str,
    ) -> StoreResult<bool>;
    /// Every workspace with a wrapped data key: `(workspace id, wrapped key)`, in id order.
    async fn wrapped_data_keys(&self) -> StoreResult<Vec<(String, String)>>;
}
