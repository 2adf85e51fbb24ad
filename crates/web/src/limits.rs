//! Rate limits: the per-workspace API limit, and a limiter for sign-in attempts.
//!
//! Both are GCRA limiters (`governor`) keyed in memory, per process: each node limits what it
//! serves. Keys that have been idle long enough to be back at a full burst are dropped now and
//! then, so the maps stay as large as the set of recently active keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How many checks pass between two sweeps of idle keys.
const SWEEP_EVERY: u64 = 4096;

/// A rate limiter keyed by text: `per_second` sustained, `burst` at once.
pub struct KeyedLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl std::fmt::Debug for KeyedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("keys", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

impl KeyedLimiter {
    /// A limiter allowing `burst` requests at once per key, refilled by `quota`.
    pub fn new(quota: Quota) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// `per_second` sustained, `burst` at once (both at least 1).
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self::new(Quota::per_second(rate).allow_burst(burst))
    }

    /// Counts one event for `key`: `Ok` when allowed, or how long until the next one would be.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The API's per-workspace request limit (`--api-rate-limit`, `--api-rate-burst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for ApiRateLimit {
    /// Generous: 50 requests a second sustained, bursts of 200, per workspace.
    fn default() -> Self {
        Self {
            per_second: 50,
            burst: 200,
        }
    }
}

/// Sign-in attempts: at most 5 a minute (bursts of 5) per (address, email), and 30 a minute
/// (bursts of 30) per address whatever the email, so guessing one account's password and
/// spraying many accounts from one address are both slowed down.
#[derive(Debug)]
pub struct LoginLimiter {
    per_account: KeyedLimiter,
    per_address: KeyedLimiter,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        let per_minute = |n: u32| {
            let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(n).allow_burst(n)
        };
        Self {
            per_account: KeyedLimiter::new(per_minute(5)),
            per_address: KeyedLimiter::new(per_minute(30)),
        }
    }
}

impl LoginLimiter {
    /// Counts one sign-in attempt from `address` for `email` (compared case-insensitively).
    /// `Ok` when it may proceed; otherwise how long to wait (answer 429 with `Retry-After`, and
    /// do not check the password). Call it before verifying the password, for every attempt.
    pub fn check(&self, address: IpAddr, email: &str) -> Result<(), Duration> {
        let address_key = address.to_string();
        let account = format!("{address_key}|{}", email.trim().to_lowercase());
        self.per_address.check(&address_key)?;
        self.per_account.check(&account)
    }
}

/// The limits every API request passes through, shared by all handlers.
#[derive(Debug)]
pub struct Limits {
    /// Requests per workspace.
    pub api: KeyedLimiter,
    /// Sign-in attempts (the dashboard's login handler calls `login.check(ip, email)`).
    pub login: LoginLimiter,
    /// When this process last recorded each API key's use, so `last_used_at` is written at most
    /// once a minute per key (and not read from the store on every request).
    touched: Mutex<HashMap<String, Instant>>,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(ApiRateLimit::default())
    }
}

impl Limits {
    /// Limits with the API allowance `api`.
    pub fn new(api: ApiRateLimit) -> Self {
        Self {
            api: KeyedLimiter::per_second(api.per_second, api.burst),
            login: LoginLimiter::default(),
            touched: Mutex::default(),
        }
    }

    /// Whether the use of `key_id` now should be written (first use here, or a minute since).
    pub(crate) fn should_touch(&self, key_id: &str) -> bool {
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if touched.len() > 100_000 {
            touched.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
        }
        match touched.get(key_id) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
            _ => {
                touched.insert(key_id.to_owned(), now);
                true
            }
        }
    }
}

/// Seconds for a `Retry-After` header: the wait rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_key_waits_and_other_keys_do_not() {
        let limiter = KeyedLimiter::per_second(1, 3);
        for _ in 0..3 {
            assert!(limiter.check("wsp_a").is_ok());
        }
        let wait = limiter.check("wsp_a").expect_err("limited");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        assert!(limiter.check("wsp_b").is_ok(), "another key is unaffected");
    }

    #[test]
    fn sign_in_attempts_are_limited_per_account_and_per_address() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        for _ in 0..5 {
            assert!(limiter.check(ip, "Ann@Example.com").is_ok());
        }
        let wait = limiter.check(ip, "ann@example.com").expect_err("limited");
        assert!(wait > Duration::from_secs(1));
        // Another account from the same address still may, until the address limit.
        assert!(limiter.check(ip, "bob@example.com").is_ok());
        let other: IpAddr = "198.51.100.1".parse().expect("ip");
        assert!(limiter.check(other, "ann@example.com").is_ok());
        for n in 0..40 {
            let _ = limiter.check(ip, &format!("user{n}@example.com"));
        }
        assert!(limiter.check(ip, "fresh@example.com").is_err());
    }

    #[test]
    fn key_use_is_recorded_once_a_minute() {
        let limits = Limits::default();
        assert!(limits.should_touch("key_1"));
        assert!(!limits.should_touch("key_1"));
        assert!(limits.should_touch("key_2"));
    }
}
