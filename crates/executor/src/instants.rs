//! Releasing executions prepared ahead at their instant, precisely.
//!
//! A tokio timer wakes up to ~2 ms late: its wheel counts whole milliseconds, rounding a deadline
//! up, and a parked worker's `epoll_wait` takes its timeout in whole milliseconds too. That was
//! most of the first request's lag in a burst. Executions due at the same instant wait on one
//! gate instead of a timer each; one thread sleeps until the earliest instant with the operating
//! system's timer (microseconds of slack) and opens its gate, waking every execution of the
//! burst at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cronhook_store::DatabaseClock;
use tokio_util::sync::CancellationToken;

/// Gates that open at instants of the database clock. Stops its thread when dropped.
pub(crate) struct InstantGates {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    clock: Arc<DatabaseClock>,
}

#[derive(Default)]
struct State {
    gates: BTreeMap<DateTime<Utc>, CancellationToken>,
    stopped: bool,
    /// Set by [`InstantGates::open_all`]: every gate asked for from then on is open.
    all_open: bool,
}

impl InstantGates {
    /// Starts the thread that opens the gates.
    pub(crate) fn start(clock: Arc<DatabaseClock>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            changed: Condvar::new(),
            clock,
        });
        let opener = shared.clone();
        std::thread::Builder::new()
            .name("cronhook-instants".into())
            .spawn(move || opener.open_gates())?;
        Ok(Self { shared })
    }

    /// A token cancelled when the database clock reaches `at` (at once if it has).
    pub(crate) fn gate(&self, at: DateTime<Utc>) -> CancellationToken {
        let mut state = self.shared.lock();
        if state.all_open {
            let open = CancellationToken::new();
            open.cancel();
            return open;
        }
        if let Some(gate) = state.gates.get(&at) {
            return gate.clone();
        }
        let gate = CancellationToken::new();
        let earliest = state
            .gates
            .first_key_value()
            .is_none_or(|(first, _)| at < *first);
        state.gates.insert(at, gate.clone());
        drop(state);
        if earliest {
            self.shared.changed.notify_one();
        }
        gate
    }

    /// Opens every gate now and each one asked for later: at shutdown, the executions waiting
    /// for their instant wake, see the shutdown and end, without each waiting on the shutdown
    /// token as well (a burst's worth of registrations with one shared lock).
    pub(crate) fn open_all(&self) {
        let opened = {
            let mut state = self.shared.lock();
            state.all_open = true;
            std::mem::take(&mut state.gates)
        };
        for gate in opened.into_values() {
            gate.cancel();
        }
    }

    /// Instants with a gate not opened yet.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.shared.lock().gates.len()
    }
}

impl Drop for InstantGates {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The thread: opens each gate when its instant comes, earliest first.
    fn open_gates(&self) {
        let mut state = self.lock();
        loop {
            if state.stopped {
                return;
            }
            let Some(next) = state.gates.first_key_value().map(|(at, _)| *at) else {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            };
            let wait = (self.clock.to_local(next) - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                let opened = state.gates.pop_first();
                // Waking a burst's tasks is done without the lock, so new gates are not held up.
                drop(state);
                if let Some((_, gate)) = opened {
                    gate.cancel();
                }
                state = self.lock();
                continue;
            }
            state = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn gates() -> InstantGates {
        InstantGates::start(Arc::new(DatabaseClock::new())).expect("start the gate thread")
    }

    #[tokio::test]
    async fn a_gate_opens_at_its_instant_never_before() {
        let gates = gates();
        let at = Utc::now() + TimeDelta::milliseconds(30);
        let gate = gates.gate(at);
        assert!(!gate.is_cancelled());
        tokio::time::timeout(Duration::from_secs(5), gate.cancelled())
            .await
            .expect("the gate opens");
        assert!(Utc::now() >= at, "opened before its instant");
        assert_eq!(gates.pending(), 0, "an opened gate is forgotten");
    }

    #[tokio::test]
    async fn executions_due_together_share_one_gate_and_later_ones_wait() {
        let gates = gates();
        let soon = Utc::now() + TimeDelta::milliseconds(20);
        let later = soon + TimeDelta::seconds(30);
        let first = gates.gate(soon);
        let same = gates.gate(soon);
        let after = gates.gate(later);
        assert_eq!(gates.pending(), 2);
        tokio::time::timeout(Duration::from_secs(5), same.cancelled())
            .await
            .expect("the gate opens");
        assert!(first.is_cancelled(), "one gate for one instant");
        assert!(!after.is_cancelled(), "a later instant is still closed");
    }

    #[tokio::test]
    async fn an_earlier_instant_added_later_opens_first() {
        let gates = gates();
        let late = gates.gate(Utc::now() + TimeDelta::seconds(30));
        let early = gates.gate(Utc::now() + TimeDelta::milliseconds(10));
        tokio::time::timeout(Duration::from_secs(5), early.cancelled())
            .await
            .expect("the earlier gate opens though the thread slept for the later one");
        assert!(!late.is_cancelled());
    }

    #[test]
    fn opening_all_opens_the_waiting_gates_and_every_later_one() {
        let gates = gates();
        let waiting = gates.gate(Utc::now() + TimeDelta::seconds(30));
        gates.open_all();
        assert!(
            waiting.is_cancelled(),
            "a gate waiting for its instant opens"
        );
        assert_eq!(gates.pending(), 0);
        let later = gates.gate(Utc::now() + TimeDelta::seconds(60));
        assert!(
            later.is_cancelled(),
            "a gate asked for afterwards is open at once"
        );
        assert_eq!(gates.pending(), 0, "and not kept");
    }

    #[test]
    fn a_past_instant_opens_at_once() {
        let gates = gates();
        let gate = gates.gate(Utc::now() - TimeDelta::seconds(1));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !gate.is_cancelled() {
            assert!(std::time::Instant::now() < deadline, "a past gate opens");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
