//! The cluster's clock: the database's time, as seen from this process.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Store, StoreResult};

/// Samples taken per [`DatabaseClock::sync`].
const SAMPLES: usize = 3;

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

    /// Measures the offset against `store` and keeps it; returns it.
    ///
    /// As NTP does, it takes a few samples and keeps the one with the shortest round trip,
    /// assuming half of it each way: a slow sample (a connection being opened, a busy pool) says
    /// little about when the database read its clock, and trusting one would shift this clock
    /// by up to half that delay — firing jobs early.
    pub async fn sync(&self, store: &dyn Store) -> StoreResult<TimeDelta> {
        let mut best: Option<(TimeDelta, TimeDelta)> = None;
        for _ in 0..SAMPLES {
            let sent = Utc::now();
            let database = store.database_now().await?;
            let received = Utc::now();
            let round_trip = received - sent;
            let offset = database - (sent + round_trip / 2);
            if best.is_none_or(|(shortest, _)| round_trip < shortest) {
                best = Some((round_trip, offset));
            }
        }
        let offset = best.map_or(TimeDelta::zero(), |(_, offset)| offset);
        self.offset_ms
            .store(offset.num_milliseconds(), Ordering::Relaxed);
        Ok(offset)
    }
}
