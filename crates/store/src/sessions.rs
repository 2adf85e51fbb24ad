//! Dashboard sign-in sessions, and the user lookups the dashboard needs besides `Store`'s.
//!
//! A session is known to the store only by the SHA-256 of its token (the token lives in the
//! browser's cookie), so a copy of the database cannot be used to sign in.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{StoreResult, User, Workspace};

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Lowercase hex SHA-256 of the session token; the token itself is never stored.
    pub token_hash: String,
    pub user_id: String,
    /// The signed-in user's workspace, which every page of the session is scoped to.
    pub workspace_id: String,
    /// The token every form of this session must carry back (CSRF defence).
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    /// The session ends at this instant unless it is used before (idle expiry); each use moves
    /// it forward, never past `expires_at`.
    pub idle_expires_at: DateTime<Utc>,
    /// The session ends at this instant however much it is used (absolute expiry).
    pub expires_at: DateTime<Utc>,
}

/// Sessions and users, for the dashboard.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session; `Conflict` if its token hash exists already.
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// The live session with this token hash and its user: `None` when there is none, or when
    /// `now` is at or past its idle or absolute expiry (an expired session never comes back).
    async fn session_by_token_hash(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Session, User)>>;
    /// Moves a session's idle expiry to `idle_expires_at`, capped at its absolute expiry.
    /// Returns false when there is no such session.
    async fn touch_session(
        &self,
        token_hash: &str,
        idle_expires_at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Ends a session (sign-out, rotation); false when there was none.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool>;
    /// Removes every session whose idle or absolute expiry is at or before `now`; returns how
    /// many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Whether any user exists at all, in any workspace (first-run setup is offered when none).
    async fn has_users(&self) -> StoreResult<bool>;
    /// Creates the very first user, atomically with the check that no user exists: returns
    /// `None` (and writes nothing) when a user exists already. The user joins the workspace
    /// with `workspace.slug` when there is one (it may exist from `cronhook keys create`),
    /// otherwise `workspace` is created; the returned user carries the workspace id it got.
    async fn create_first_user(
        &self,
        workspace: &Workspace,
        user: &User,
    ) -> StoreResult<Option<User>>;
}
