//! Any expression, time zone and instant: `compile` must not panic, and what compiles must
//! evaluate without panicking, strictly after the instant it is asked about.

#![no_main]

use chrono::DateTime;
use cronhook_core::{CompiledSchedule, ScheduleSpec};
use libfuzzer_sys::fuzz_target;

const ZONES: [&str; 8] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Pacific/Chatham",
    "Asia/Kolkata",
];

fuzz_target!(|data: &[u8]| {
    let Some((&zone, rest)) = data.split_first() else {
        return;
    };
    let Some((instant, expression)) = rest.split_first_chunk::<8>() else {
        return;
    };
    // 1970..2100, whole seconds, from the input.
    let secs = (u64::from_le_bytes(*instant) % 4_102_444_800) as i64;
    let Some(after) = DateTime::from_timestamp(secs, 0) else {
        return;
    };
    let spec = ScheduleSpec::Cron {
        cron: String::from_utf8_lossy(expression).into_owned(),
        timezone: ZONES[usize::from(zone) % ZONES.len()].to_owned(),
    };
    let Ok(schedule) = CompiledSchedule::compile(&spec, "job_fuzz", after) else {
        return;
    };
    let _ = schedule.describe();
    if let Some(next) = schedule.next_after(after) {
        assert!(next > after);
        assert_eq!(schedule.upcoming(after, 1), vec![next]);
    }
});
