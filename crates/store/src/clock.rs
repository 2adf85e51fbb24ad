//! The cluster's clock: the database's time, as seen from this process.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Store, StoreResult};

/// Samples taken per [`DatabaseClock::sync`].
const SAMPLES: usize = 3;
/// How long a reading is preferred to fresher ones with longer round trips. Clocks kept by NTP
/// drift by well under a millisecond in this time.
const READING_LIFETIME: Duration = Duration::from_secs(60);
/// Slack for the clocks' resolution when judging whether two readings can agree.
const AGREEMENT_SLACK: TimeDelta = TimeDelta::milliseconds(1);

/// The database's clock, read through this process's clock plus the offset last measured against
/// the database. Every node judges due-ness and leases by this one clock, so a node whose own
/// clock drifts neither fires early or late nor takes over leases that are still alive.
#[derive(Debug, Default)]
pub struct DatabaseClock {
    offset_us: AtomicI64,
    kept: Mutex<Option<Reading>>,
}

/// One reading of the database's clock: the offset it gives, and the round trip it took. The
/// true offset lies within half the round trip of `offset`.
#[derive(Debug, Clone, Copy)]
struct Reading {
    offset: TimeDelta,
    round_trip: TimeDelta,
    taken: Instant,
}

impl Reading {
    /// Whether the two readings' intervals overlap: no clock moved between them.
    fn agrees_with(&self, other: &Reading) -> bool {
        (self.offset - other.offset).abs()
            <= (self.round_trip + other.round_trip) / 2 + AGREEMENT_SLACK
    }
}

/// The reading to go by, given the one kept so far and a fresh one: the one with the shorter
/// round trip, unless the kept one is older than [`READING_LIFETIME`] or the two cannot agree
/// (a clock was stepped), and then the fresh one.
fn better(kept: Option<Reading>, fresh: Reading) -> Reading {
    match kept {
        Some(kept)
            if fresh.taken.duration_since(kept.taken) < READING_LIFETIME
                && kept.agrees_with(&fresh)
                && kept.round_trip < fresh.round_trip =>
        {
            kept
        }
        _ => fresh,
    }
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
        TimeDelta::microseconds(self.offset_us.load(Ordering::Relaxed))
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
    /// by up to half that delay — firing jobs early or late. For the same reason a reading from
    /// an earlier sync with a shorter round trip is kept for up to [`READING_LIFETIME`] while it
    /// agrees with the fresh ones: a sync that runs while the machine is busy (every few seconds
    /// under load) moved the clock by several milliseconds.
    pub async fn sync(&self, store: &dyn Store) -> StoreResult<TimeDelta> {
        let mut best: Option<Reading> = None;
        for _ in 0..SAMPLES {
            let sent = Utc::now();
            let started = Instant::now();
            let database = store.database_now().await?;
            let round_trip = TimeDelta::from_std(started.elapsed()).unwrap_or(TimeDelta::MAX);
            let fresh = Reading {
                offset: database - (sent + round_trip / 2),
                round_trip,
                taken: Instant::now(),
            };
            best = Some(match best {
                Some(best) if best.round_trip <= fresh.round_trip => best,
                _ => fresh,
            });
        }
        let Some(fresh) = best else {
            return Ok(self.offset());
        };
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let reading = better(*kept, fresh);
        *kept = Some(reading);
        let micros = reading.offset.num_microseconds().unwrap_or(0);
        self.offset_us.store(micros, Ordering::Relaxed);
        Ok(self.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(offset_ms: i64, round_trip_ms: i64, taken: Instant) -> Reading {
        Reading {
            offset: TimeDelta::milliseconds(offset_ms),
            round_trip: TimeDelta::milliseconds(round_trip_ms),
            taken,
        }
    }

    #[test]
    fn the_shortest_round_trip_is_kept_while_the_readings_agree() {
        let start = Instant::now();
        let first = reading(0, 1, start);
        assert_eq!(better(None, first).offset, first.offset);
        // A busy sync: 12 ms round trip, 5 ms off, within its own uncertainty.
        let busy = reading(5, 12, start + Duration::from_secs(5));
        assert_eq!(better(Some(first), busy).offset, TimeDelta::zero());
        // A quicker one replaces the kept one.
        let quick = reading(-1, 1, start + Duration::from_secs(10));
        let kept = better(Some(first), quick);
        assert_eq!(kept.offset, TimeDelta::milliseconds(-1));
        assert_eq!(kept.taken, quick.taken);
    }

    #[test]
    fn a_stepped_clock_or_an_old_reading_gives_way_to_the_fresh_one() {
        let start = Instant::now();
        let kept = reading(0, 1, start);
        // The local clock was stepped by two seconds: the readings cannot both be right.
        let stepped = reading(2_000, 20, start + Duration::from_secs(5));
        assert_eq!(
            better(Some(kept), stepped).offset,
            TimeDelta::milliseconds(2_000)
        );
        // Older than its lifetime: the fresh reading wins even with a longer round trip.
        let later = reading(3, 8, start + READING_LIFETIME + Duration::from_secs(1));
        assert_eq!(better(Some(kept), later).offset, TimeDelta::milliseconds(3));
    }
}
