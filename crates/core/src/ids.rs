//! Opaque identifiers with a type prefix (`job_…`, `exe_…`).
//!
//! The body is a UUIDv7 in lowercase hex, so ids sort by creation time; callers must still treat
//! them as opaque strings.

/// The prefix of job ids.
pub const JOB: &str = "job";
/// The prefix of execution ids.
pub const EXECUTION: &str = "exe";
/// The prefix of workspace ids.
pub const WORKSPACE: &str = "wsp";
/// The prefix of API key ids.
pub const API_KEY: &str = "key";
/// The prefix of user ids.
pub const USER: &str = "usr";
/// The prefix of alert channel ids.
pub const CHANNEL: &str = "chn";
/// The prefix of alert ids.
pub const ALERT: &str = "alr";

/// A new, time-ordered id with the given type prefix.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Whether `id` has the given type prefix and a well-formed body.
pub fn has_prefix(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| body.len() == 32 && body.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_creation() {
        let first = new_id(JOB);
        let second = new_id(JOB);
        assert!(has_prefix(&first, JOB));
        assert!(!has_prefix(&first, EXECUTION));
        assert!(first < second);
    }

    #[test]
    fn malformed_ids_are_not_recognised() {
        assert!(!has_prefix("job_", JOB));
        assert!(!has_prefix("job_zz", JOB));
        assert!(!has_prefix("jobx0193a6f0c2d87c3e8a0b1c2d3e4f5a6b", JOB));
    }
}
