//! API keys beyond creation and lookup: listing, revoking, and when each was last used.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{ApiKey, StoreResult};

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiKeyScope {
    /// Only reads (`GET`).
    Read,
    /// Everything except managing API keys.
    Write,
    /// Everything.
    Admin,
}

impl ApiKeyScope {
    /// Every scope, narrowest first.
    pub const ALL: [ApiKeyScope; 3] = [ApiKeyScope::Read, ApiKeyScope::Write, ApiKeyScope::Admin];

    /// The scope's name as stored and shown: `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyScope::Read => "read",
            ApiKeyScope::Write => "write",
            ApiKeyScope::Admin => "admin",
        }
    }

    /// The scope named `text`, if any.
    pub fn parse(text: &str) -> Option<ApiKeyScope> {
        ApiKeyScope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
    }

    /// Whether a key of this scope may do what `needed` requires.
    pub fn allows(self, needed: ApiKeyScope) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for ApiKeyScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long `touch_api_key` leaves `last_used_at` alone after setting it: one write a minute per
/// key at most, however busy the key is.
pub const LAST_USED_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The API keys of a workspace. Keys themselves are never stored, only their SHA-256
/// (`Store::insert_api_key`, `Store::api_key_by_hash`).
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// The workspace's keys, revoked ones included (with `revoked_at`), in creation (id) order.
    async fn list_api_keys(&self, workspace_id: &str) -> StoreResult<Vec<ApiKey>>;
    /// The key `id` of the workspace, revoked or not.
    async fn api_key(&self, workspace_id: &str, id: &str) -> StoreResult<Option<ApiKey>>;
    /// Revokes the key `id` of the workspace at `at`: from then on it authenticates nothing. False
    /// when the workspace has no such key or it was revoked already (`revoked_at` is kept).
    async fn revoke_api_key(
        &self,
        workspace_id: &str,
        id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Records that the key `id` was used at `at`: sets `last_used_at` only when it is unset or
    /// older than `at - LAST_USED_RESOLUTION`, so a busy key costs one write a minute. True when
    /// it wrote.
    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool>;
}
