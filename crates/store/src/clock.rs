//! The cluster's clock: the database's time, as seen from this process.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Store, StoreResult};

/// The database's clock, read through this process's clock plus the offset last measured against
/// the database. Every node judges due-ness and leases by this one clock, so a node whose own
/// clock drifts neither fires early or late nor takes over leases that are still alive.
#[derive(Debug, Default)]
pub struct DatabaseClock {
    offset_ms: AtomicI64,
}

impl DatabaseClock {
    /// A clock that trusts this process's time until the first [`DatabaseClock::sync`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Now, by the database's clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    /// How far the database's clock is ahead of this process's (negative when behind).
    pub fn offset(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// This process's instant that corresponds to `at` on the database's clock (for sleeping).
    pub fn to_local(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at - self.offset()
    }

    /// Measures the offset against `store` (half the round trip is assumed each way) and keeps
    /// it; returns it.
    pub async fn sync(&self, store: &dyn Store) -> StoreResult<TimeDelta> {
        let sent = Utc::now();
        let database = store.database_now().await?;
        let received = Utc::now();
        let offset = database - (sent + (received - sent) / 2);
        self.offset_ms
            .store(offset.num_milliseconds(), Ordering::Relaxed);
        Ok(offset)
    }
}
