//! Which attempt outcomes are retried, and how long to wait before the next attempt.

use std::time::Duration;

use crate::model::{ErrorKind, RetryPolicy};

/// Whether an attempt that ended this way deserves another try.
///
/// Retried: connect, DNS and TLS errors, timeouts, interrupted attempts, 5xx, 408 and 429.
/// Not retried: other statuses (an assertion failure on a 2xx or 4xx answer included), a blocked
/// target, too many redirects, a cancellation.
pub fn is_retryable(status_code: Option<u16>, error: Option<ErrorKind>) -> bool {
    if let Some(code) = status_code
        && (code >= 500 || code == 408 || code == 429)
    {
        return true;
    }
    match error {
        Some(ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Dns | ErrorKind::Tls) => true,
        Some(ErrorKind::Interrupted) => true,
        Some(
            ErrorKind::BlockedTarget
            | ErrorKind::TooManyRedirects
            | ErrorKind::AssertionFailed
            | ErrorKind::Cancelled,
        ) => false,
        None => false,
    }
}

/// The wait before the attempt after `failed_attempt` (1 for the first attempt).
///
/// `min(max_delay, initial × 2^(n-1))`; with `jitter`, full jitter: a uniform pick in
/// `[0, that]`, from `unit_random` in `[0, 1)`. A `Retry-After` the target sent wins over the
/// computed delay, capped at `max_delay` so a target cannot park a job for ever.
pub fn retry_delay(
    policy: &RetryPolicy,
    failed_attempt: u32,
    retry_after: Option<Duration>,
    unit_random: f64,
) -> Duration {
    let max = Duration::from_millis(policy.max_delay_ms);
    if let Some(asked) = retry_after {
        return asked.min(max);
    }
    let doublings = failed_attempt.saturating_sub(1).min(63);
    let exponential = policy
        .initial_delay_ms
        .saturating_mul(1u64 << doublings)
        .min(policy.max_delay_ms);
    let millis = if policy.jitter {
        let fraction = unit_random.clamp(0.0, 1.0);
        // The product is at most max_delay_ms, well inside f64's exact integer range.
        (exponential as f64 * fraction) as u64
    } else {
        exponential
    };
    Duration::from_millis(millis)
}

/// Parses a `Retry-After` header: delay-seconds, or an HTTP date relative to `now_unix_secs`.
pub fn parse_retry_after(value: &str, now_unix_secs: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let seconds = when.timestamp().saturating_sub(now_unix_secs).max(0);
    Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: bool) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_delay_ms: 1_000,
            max_delay_ms: 5_000,
            jitter,
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = policy(false);
        let delays: Vec<u64> = (1..=5)
            .map(|n| retry_delay(&p, n, None, 0.5).as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![1_000, 2_000, 4_000, 5_000, 5_000]);
    }

    #[test]
    fn full_jitter_stays_within_the_exponential_bound() {
        let p = policy(true);
        assert_eq!(retry_delay(&p, 2, None, 0.0), Duration::ZERO);
        assert_eq!(retry_delay(&p, 2, None, 0.5), Duration::from_millis(1_000));
        assert!(retry_delay(&p, 2, None, 0.999) < Duration::from_millis(2_000));
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let p = policy(true);
        assert_eq!(
            retry_delay(&p, 1, Some(Duration::from_secs(3)), 0.1),
            Duration::from_secs(3)
        );
        assert_eq!(
            retry_delay(&p, 1, Some(Duration::from_secs(3600)), 0.1),
            Duration::from_millis(5_000)
        );
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy {
            max_delay_ms: u64::MAX,
            ..policy(false)
        };
        assert_eq!(
            retry_delay(&p, 200, None, 0.0),
            Duration::from_millis(u64::MAX)
        );
    }

    #[test]
    fn classification_follows_the_contract() {
        for code in [500, 502, 503, 408, 429] {
            assert!(is_retryable(Some(code), None), "{code}");
        }
        for code in [400, 401, 404, 410, 200] {
            assert!(!is_retryable(Some(code), None), "{code}");
        }
        assert!(is_retryable(None, Some(ErrorKind::Timeout)));
        assert!(is_retryable(None, Some(ErrorKind::Dns)));
        assert!(is_retryable(None, Some(ErrorKind::Connect)));
        assert!(!is_retryable(None, Some(ErrorKind::BlockedTarget)));
        assert!(!is_retryable(Some(200), Some(ErrorKind::AssertionFailed)));
        assert!(is_retryable(Some(503), Some(ErrorKind::AssertionFailed)));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        assert_eq!(parse_retry_after("7", 0), Some(Duration::from_secs(7)));
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("valid")
            .timestamp();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
