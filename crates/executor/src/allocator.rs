//! How the binaries' allocator (mimalloc) gives memory back to the operating system.
//!
//! Executions come in bursts: every job due at the same instant fires at once, and the memory
//! of a burst (requests, captured answers, rows) is freed when it ends. mimalloc returns freed
//! memory to the operating system 1 s after it is freed, by default, so a burst every second
//! or every few seconds faulted the same memory in again each time, zeroed huge page by huge
//! page: ~6 % of `cronhook`'s CPU per execution at 12 000 executions per second (BENCHMARKS.md,
//! session 12).
//! Freed memory is kept for [`PURGE_DELAY_MS`] instead; a process idle that long still gives
//! it back.

use std::ffi::{c_int, c_long};

/// How long freed memory stays with the process before it goes back to the operating system.
pub const PURGE_DELAY_MS: c_long = 10_000;

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_t` of mimalloc v3
/// (`include/mimalloc.h`), which `libmimalloc-sys` builds but names no constant for. A test
/// checks that this option is the one `MIMALLOC_PURGE_DELAY` sets.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Keeps freed memory [`PURGE_DELAY_MS`] before giving it back, unless the environment sets
/// `MIMALLOC_PURGE_DELAY` (which wins). Call it first thing in `main`; it takes effect for
/// memory freed from then on.
#[allow(unsafe_code)]
pub fn keep_freed_memory_between_bursts() {
    // SAFETY: sets one integer in mimalloc's option table; any value is valid for this option.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The purge delay in effect, in milliseconds (-1: never).
    #[allow(unsafe_code)]
    fn purge_delay_ms() -> c_long {
        // SAFETY: reads one integer of mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    /// The child's part, chosen by this variable: mimalloc reads its environment when the
    /// process loads, so each case runs in a process of its own.
    const CHILD: &str = "CRONHOOK_ALLOCATOR_TEST_CHILD";

    fn run_child(case: &str, purge_delay: Option<&str>) {
        let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([
                "--exact",
                "allocator::tests::the_purge_delay_defaults_to_ours_and_the_environment_wins",
            ])
            .env(CHILD, case);
        match purge_delay {
            Some(value) => command.env("MIMALLOC_PURGE_DELAY", value),
            None => command.env_remove("MIMALLOC_PURGE_DELAY"),
        };
        let output = command.output().expect("run the test binary");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{case}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn the_purge_delay_defaults_to_ours_and_the_environment_wins() {
        match std::env::var(CHILD).as_deref() {
            Ok("unset") => {
                assert_eq!(purge_delay_ms(), 1_000, "mimalloc v3's own default");
                keep_freed_memory_between_bursts();
                assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
            }
            Ok("set") => {
                // The option at our index is the one MIMALLOC_PURGE_DELAY names ...
                assert_eq!(purge_delay_ms(), 4_321);
                // ... and a value the environment sets is left alone.
                keep_freed_memory_between_bursts();
                assert_eq!(purge_delay_ms(), 4_321);
            }
            _ => {
                run_child("unset", None);
                run_child("set", Some("4321"));
            }
        }
    }
}
