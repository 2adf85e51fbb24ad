//! A brute-force reference for cron schedule evaluation, written independently of
//! `schedule.rs` (no croner, no internals), and property tests comparing `CompiledSchedule` with
//! it.
//!
//! The reference states the contract's rule literally, over real instants:
//!
//! * an instant fires when its local wall clock time matches the fields and either the
//!   expression follows elapsed time (hour field `*` or stepped) or the instant is the first one
//!   that shows that wall clock time (a repeated time fires once, at its first occurrence);
//! * for a fixed-hour expression, the first instant after a gap (spring forward) also fires when
//!   any wall clock time skipped by the gap matches.
//!
//! Two forms of it are used. `fires_at` checks one instant with nothing but chrono-tz. `Oracle`
//! finds the next fire by walking the zone's constant-offset stretches (found once by probing
//! chrono-tz) and, inside each, stepping wall clock time minute by minute (second by second for
//! six-field expressions), skipping whole days and hours that cannot match. The tests check the
//! two forms against each other as well as against `CompiledSchedule`.
//!
//! Day of month and day of week combine with OR when both are restricted (neither is literally
//! `*` or `?`), with AND otherwise.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use cronhook_core::{CompiledSchedule, ScheduleSpec};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

// ---------------------------------------------------------------------------------------------
// The reference cron grammar

const DAY: i64 = 86_400;

/// Searches stop here: the transition tables below end a little later.
fn horizon() -> i64 {
    secs_of("2110-01-01T00:00:00Z")
}

fn secs_of(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test instant")
        .timestamp()
}

fn utc(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("instant in range")
}

fn show(secs: i64) -> String {
    utc(secs).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A parsed expression of the restricted grammar: numbers (and month and weekday names),
/// `a-b`, `a-b/s`, `a/s`, `*`, `*/s`, `?`, lists; `L`, `LW`, `nW` in the day of month; `n#k`
/// and `nL` in the day of week.
#[derive(Debug, Clone)]
struct Expr {
    has_seconds: bool,
    seconds: u64,
    minutes: u64,
    hours: u64,
    /// Bits 1..=31.
    days: u64,
    last_day: bool,
    last_weekday: bool,
    /// `nW` days, bits 1..=31.
    nearest_weekday: u64,
    /// Bits 1..=12.
    months: u64,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u64,
    /// `weekday#k`: bit k-1 of entry `weekday`.
    nth_weekday: [u8; 7],
    /// `weekdayL`: bits 0..=6.
    last_of_weekday: u64,
    dom_star: bool,
    dow_star: bool,
    /// Hour field `*` or stepped.
    elapsed: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum F {
    Sec,
    Min,
    Hour,
    Dom,
    Month,
    Dow,
}

impl F {
    fn bounds(self) -> (u32, u32) {
        match self {
            F::Sec | F::Min => (0, 59),
            F::Hour => (0, 23),
            F::Dom => (1, 31),
            F::Month => (1, 12),
            F::Dow => (0, 7),
        }
    }
}

fn value(kind: F, text: &str, range_end: bool) -> Result<u32, String> {
    if let Ok(v) = text.parse::<u32>() {
        let (lo, hi) = kind.bounds();
        return if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} out of range"))
        };
    }
    let upper = text.to_ascii_uppercase();
    match kind {
        F::Month => MONTHS
            .iter()
            .position(|m| *m == upper)
            .map(|i| i as u32 + 1)
            .ok_or_else(|| format!("bad month {text}")),
        F::Dow => match WEEKDAYS.iter().position(|d| *d == upper) {
            Some(0) if range_end => Ok(7),
            Some(i) => Ok(i as u32),
            None => Err(format!("bad weekday {text}")),
        },
        _ => Err(format!("bad number {text}")),
    }
}

/// Sets bits `start..=end` by `step` (weekday 7 is Sunday).
fn set_range(bits: &mut u64, kind: F, start: u32, end: u32, step: u32) {
    let mut v = start;
    while v <= end {
        let bit = if kind == F::Dow { v % 7 } else { v };
        *bits |= 1 << bit;
        v += step;
    }
}

impl Expr {
    fn parse(text: &str) -> Result<Expr, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (seconds, rest) = match parts.len() {
            5 => (None, &parts[..]),
            6 => (Some(parts[0]), &parts[1..]),
            n => return Err(format!("{n} fields")),
        };
        let mut e = Expr {
            has_seconds: seconds.is_some(),
            seconds: 1,
            minutes: 0,
            hours: 0,
            days: 0,
            last_day: false,
            last_weekday: false,
            nearest_weekday: 0,
            months: 0,
            weekdays: 0,
            nth_weekday: [0; 7],
            last_of_weekday: 0,
            dom_star: matches!(rest[2], "*" | "?"),
            dow_star: matches!(rest[4], "*" | "?"),
            elapsed: rest[1] == "*" || rest[1].contains('/'),
        };
        if let Some(s) = seconds {
            e.seconds = 0;
            e.field(F::Sec, s)?;
        }
        e.field(F::Min, rest[0])?;
        e.field(F::Hour, rest[1])?;
        e.field(F::Dom, rest[2])?;
        e.field(F::Month, rest[3])?;
        e.field(F::Dow, rest[4])?;
        if e.last_day && e.last_weekday {
            return Err("L and LW together".into());
        }
        Ok(e)
    }

    fn bits(&mut self, kind: F) -> &mut u64 {
        match kind {
            F::Sec => &mut self.seconds,
            F::Min => &mut self.minutes,
            F::Hour => &mut self.hours,
            F::Dom => &mut self.days,
            F::Month => &mut self.months,
            F::Dow => &mut self.weekdays,
        }
    }

    fn field(&mut self, kind: F, text: &str) -> Result<(), String> {
        let (lo, hi) = kind.bounds();
        if text == "*" || (text == "?" && matches!(kind, F::Dom | F::Dow)) {
            set_range(self.bits(kind), kind, lo, hi, 1);
            return Ok(());
        }
        for item in text.split(',') {
            if let Some((base, step)) = item.split_once('/') {
                let step: u32 = step.parse().map_err(|_| format!("bad step {step}"))?;
                if step == 0 {
                    return Err("zero step".into());
                }
                let (start, end) = match base.split_once('-') {
                    _ if base == "*" => (lo, hi),
                    Some((a, b)) => (value(kind, a, false)?, value(kind, b, true)?),
                    None if kind == F::Dow => return Err("a/s in the day of week".into()),
                    None => (value(kind, base, false)?, hi),
                };
                if start > end {
                    return Err("backwards".into());
                }
                set_range(self.bits(kind), kind, start, end, step);
                continue;
            }
            if kind == F::Dom {
                if item == "L" {
                    self.last_day = true;
                    continue;
                }
                if item == "LW" {
                    self.last_weekday = true;
                    continue;
                }
                if let Some(day) = item.strip_suffix('W') {
                    self.nearest_weekday |= 1 << value(kind, day, false)?;
                    continue;
                }
            }
            if kind == F::Dow {
                if let Some((day, k)) = item.split_once('#') {
                    let day = value(kind, day, false)? % 7;
                    if k == "L" {
                        self.last_of_weekday |= 1 << day;
                    } else {
                        let k: u32 = k.parse().map_err(|_| format!("bad #{k}"))?;
                        if !(1..=5).contains(&k) {
                            return Err(format!("bad #{k}"));
                        }
                        self.nth_weekday[day as usize] |= 1 << (k - 1);
                    }
                    continue;
                }
                if let Some(day) = item.strip_suffix('L') {
                    self.last_of_weekday |= 1 << (value(kind, day, false)? % 7);
                    continue;
                }
            }
            let (start, end) = match item.split_once('-') {
                Some((a, b)) => (value(kind, a, false)?, value(kind, b, true)?),
                None => {
                    let v = value(kind, item, false)?;
                    (v, v)
                }
            };
            if start > end {
                return Err("backwards".into());
            }
            set_range(self.bits(kind), kind, start, end, 1);
        }
        Ok(())
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let day = date.day();
        let len = month_len(date.year(), date.month());
        let weekday = date.weekday().num_days_from_sunday();
        let is_workday = |d: u32| (1..=5).contains(&((weekday + 35 + d - day) % 7));
        let dom = self.days & (1 << day) != 0
            || (self.last_day && day == len)
            || (self.last_weekday && is_workday(day) && (day + 1..=len).all(|d| !is_workday(d)))
            || (1..=len).any(|n| {
                // `nW`: the weekday nearest to day n, without leaving the month.
                if self.nearest_weekday & (1 << n) == 0 {
                    return false;
                }
                let n_weekday = (weekday + 35 + n - day) % 7;
                let target = match n_weekday {
                    6 if n == 1 => 3,
                    6 => n - 1,
                    0 if n == len => n - 2,
                    0 => n + 1,
                    _ => n,
                };
                target == day
            });
        let dow = self.weekdays & (1 << weekday) != 0
            || self.nth_weekday[weekday as usize] & (1 << ((day - 1) / 7)) != 0
            || (self.last_of_weekday & (1 << weekday) != 0 && day + 7 > len);
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The first matching wall clock time (seconds of a naive local time) in `[from, until)`,
    /// stepping minute by minute (second by second when there is a seconds field), skipping days
    /// and hours that do not match.
    fn next_match(&self, from: i64, until: i64) -> Option<i64> {
        let unit = if self.has_seconds { 1 } else { 60 };
        let mut w = from + (unit - from.rem_euclid(unit)) % unit;
        while w < until {
            let day_start = w - w.rem_euclid(DAY);
            let date = utc(day_start).date_naive();
            if !self.day_matches(date) {
                w = day_start + DAY;
                continue;
            }
            let of_day = w - day_start;
            let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
            if self.hours & (1 << hour) == 0 {
                w = day_start + (hour + 1) * 3600;
            } else if self.minutes & (1 << minute) == 0 {
                w = day_start + hour * 3600 + (minute + 1) * 60;
            } else if self.seconds & (1 << second) == 0 {
                w += unit;
            } else {
                return Some(w);
            }
        }
        None
    }

    fn matches_wall(&self, w: i64) -> bool {
        self.next_match(w, w + 1) == Some(w)
    }

    /// Whether the expression can never fire: an explicit day of month with any day of week,
    /// where no named day exists in any named month.
    fn never_fires(&self) -> bool {
        if !self.dow_star || self.dom_star || self.last_day || self.last_weekday {
            return false;
        }
        let longest = (1..=12)
            .filter(|m| self.months & (1 << m) != 0)
            .map(|m| month_len(2000, m))
            .max()
            .unwrap_or(31);
        (1..=longest).all(|d| (self.days | self.nearest_weekday) & (1 << d) == 0)
    }
}

fn month_len(year: i32, month: u32) -> u32 {
    match month {
        2 if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// ---------------------------------------------------------------------------------------------
// Zones

const ZONES: [&str; 14] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/St_Johns",
    "Australia/Sydney",
    "Europe/London",
    "Pacific/Apia",
    "America/Havana",
    "Africa/Casablanca",
    "America/Santiago",
];

/// A zone's UTC offsets as constant stretches, from probing chrono-tz every 6 hours between
/// 1965 and 2115 (and bisecting to the second). Assumes no two transitions within 6 hours, and
/// checks what it can of that.
struct Zone {
    tz: Tz,
    first_offset: i64,
    /// (instant, offset from that instant on).
    transitions: Vec<(i64, i64)>,
}

fn offset_at(tz: Tz, secs: i64) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&utc(secs).naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

fn local_secs(tz: Tz, secs: i64) -> i64 {
    secs + offset_at(tz, secs)
}

/// The earliest instant showing wall clock time `w`, if any.
fn earliest(tz: Tz, w: i64) -> Option<i64> {
    tz.from_local_datetime(&utc(w).naive_utc())
        .earliest()
        .map(|t| t.timestamp())
}

impl Zone {
    fn build(name: &str) -> Zone {
        let tz: Tz = name.parse().expect("zone");
        let (start, end) = (
            secs_of("1965-01-01T00:00:00Z"),
            secs_of("2115-01-01T00:00:00Z"),
        );
        let step = 6 * 3600;
        let first_offset = offset_at(tz, start);
        let mut transitions = Vec::new();
        let (mut a, mut oa) = (start, first_offset);
        while a < end {
            let b = a + step;
            let ob = offset_at(tz, b);
            if ob != oa {
                let (mut lo, mut hi) = (a, b);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if offset_at(tz, mid) == oa {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let at = offset_at(tz, hi);
                assert_eq!(
                    at,
                    ob,
                    "{name}: two transitions within 6 h near {}",
                    show(hi)
                );
                assert_eq!(hi % 60, 0, "{name}: transition off the minute {}", show(hi));
                transitions.push((hi, ob));
            }
            assert_eq!(ob % 60, 0, "{name}: offset {ob} is not whole minutes");
            (a, oa) = (b, ob);
        }
        Zone {
            tz,
            first_offset,
            transitions,
        }
    }

    fn get(name: &str) -> &'static Zone {
        static ZONE_TABLE: OnceLock<HashMap<&'static str, Zone>> = OnceLock::new();
        ZONE_TABLE
            .get_or_init(|| {
                ZONES
                    .iter()
                    .map(|name| (*name, Zone::build(name)))
                    .collect()
            })
            .get(name)
            .expect("a listed zone")
    }

    fn offset_of_segment(&self, index: usize) -> i64 {
        match index {
            0 => self.first_offset,
            i => self.transitions[i - 1].1,
        }
    }

    /// Transitions between 1970 and 2100, to bias instants towards them.
    fn recent_transitions(&self) -> Vec<i64> {
        let (from, to) = (0, secs_of("2100-01-01T00:00:00Z"));
        self.transitions
            .iter()
            .map(|(at, _)| *at)
            .filter(|at| (from..to).contains(at))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The reference

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    At(i64),
    /// Nothing before `horizon()`.
    Beyond,
}

/// The next fire strictly after `after` (whole seconds; a fraction is dropped, as fire instants
/// are whole seconds), by walking the zone's constant-offset stretches.
fn oracle_next(expr: &Expr, zone: &Zone, after: i64) -> Next {
    oracle_next_until(expr, zone, after, horizon())
}

/// `oracle_next` with another horizon (only for zones without transitions after 2115).
fn oracle_next_until(expr: &Expr, zone: &Zone, after: i64, horizon: i64) -> Next {
    let mut cur = after + 1;
    let mut index = zone.transitions.partition_point(|(at, _)| *at <= cur);
    loop {
        let offset = zone.offset_of_segment(index);
        // A stretch that starts at `cur` with a jump forward: a fixed-hour expression whose
        // wall clock time was skipped fires at the first instant after the gap.
        if index > 0 && zone.transitions[index - 1].0 == cur && !expr.elapsed {
            let before = zone.offset_of_segment(index - 1);
            if offset > before && expr.next_match(cur + before, cur + offset).is_some() {
                return Next::At(cur);
            }
        }
        let end = zone
            .transitions
            .get(index)
            .map_or(horizon, |(at, _)| *at)
            .min(horizon);
        let mut w = cur + offset;
        while let Some(m) = expr.next_match(w, end + offset) {
            let instant = m - offset;
            if expr.elapsed || earliest(zone.tz, m) == Some(instant) {
                return Next::At(instant);
            }
            w = m + 1;
        }
        if end >= horizon {
            return Next::Beyond;
        }
        cur = end;
        index += 1;
    }
}

/// Whether instant `t` (whole seconds) fires, from chrono-tz alone.
fn fires_at(expr: &Expr, tz: Tz, t: i64) -> bool {
    let w = local_secs(tz, t);
    if expr.matches_wall(w) && (expr.elapsed || earliest(tz, w) == Some(t)) {
        return true;
    }
    if !expr.elapsed {
        let previous = local_secs(tz, t - 1);
        if w - previous > 1 && expr.next_match(previous + 1, w).is_some() {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------
// The system under test

fn compile(expr: &str, zone: &str) -> Result<CompiledSchedule, String> {
    CompiledSchedule::compile(
        &ScheduleSpec::Cron {
            cron: expr.into(),
            timezone: zone.into(),
        },
        "job_oracle",
        utc(secs_of("2026-01-01T00:00:00Z")),
    )
    .map_err(|e| e.to_string())
}

fn sut_next(schedule: &CompiledSchedule, secs: i64, nanos: u32) -> Option<i64> {
    let after = DateTime::from_timestamp(secs, nanos).expect("instant");
    schedule.next_after(after).map(|t| {
        assert_eq!(
            t.timestamp_subsec_nanos(),
            0,
            "fire instants are whole seconds"
        );
        t.timestamp()
    })
}

// ---------------------------------------------------------------------------------------------
// Generators

fn item(lo: u32, hi: u32, max_step: u32, near: (u32, u32)) -> BoxedStrategy<String> {
    let v = prop_oneof![3 => near.0..=near.1, 2 => lo..=hi];
    let v2 = prop_oneof![3 => near.0..=near.1, 2 => lo..=hi];
    prop_oneof![
        4 => v.clone().prop_map(|a| a.to_string()),
        2 => (v.clone(), v2.clone()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        1 => (v.clone(), v2, 1..=max_step)
            .prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
        1 => (v, 1..=max_step).prop_map(|(a, s)| format!("{a}/{s}")),
    ]
    .boxed()
}

fn time_field(lo: u32, hi: u32, near: (u32, u32), star: u32) -> BoxedStrategy<String> {
    let max_step = hi - lo + 1;
    prop_oneof![
        star => Just("*".to_owned()),
        2 => prop_oneof![3 => 1..=15_u32, 1 => 1..=max_step].prop_map(|s| format!("*/{s}")),
        6 => prop::collection::vec(item(lo, hi, max_step, near), 1..=3).prop_map(|v| v.join(",")),
    ]
    .boxed()
}

fn dom_field() -> BoxedStrategy<String> {
    let one = prop_oneof![
        6 => item(1, 31, 31, (1, 31)),
        1 => Just("L".to_owned()),
        1 => Just("LW".to_owned()),
        1 => (1..=31_u32).prop_map(|d| format!("{d}W")),
    ];
    prop_oneof![
        10 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        1 => (1..=10_u32).prop_map(|s| format!("*/{s}")),
        6 => prop::collection::vec(one, 1..=3).prop_map(|v| v.join(",")),
    ]
    .boxed()
}

fn month_field() -> BoxedStrategy<String> {
    let names = prop::sample::select(MONTHS.to_vec()).prop_map(str::to_owned);
    prop_oneof![
        12 => Just("*".to_owned()),
        1 => names,
        4 => prop::collection::vec(item(1, 12, 12, (2, 4)), 1..=3).prop_map(|v| v.join(",")),
        1 => prop::collection::vec(item(1, 12, 12, (9, 11)), 1..=3).prop_map(|v| v.join(",")),
    ]
    .boxed()
}

fn dow_field() -> BoxedStrategy<String> {
    let range = (0..=7_u32, 0..=7_u32).prop_map(|(a, b)| (a.min(b), a.max(b)));
    let one = prop_oneof![
        4 => (0..=7_u32).prop_map(|d| d.to_string()),
        1 => prop::sample::select(WEEKDAYS.to_vec()).prop_map(str::to_owned),
        3 => range.clone().prop_map(|(a, b)| format!("{a}-{b}")),
        1 => (range, 1..=7_u32).prop_map(|((a, b), s)| format!("{a}-{b}/{s}")),
        2 => (0..=7_u32, 1..=5_u32).prop_map(|(d, k)| format!("{d}#{k}")),
        1 => (0..=7_u32).prop_map(|d| format!("{d}L")),
    ];
    prop_oneof![
        10 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        1 => (1..=7_u32).prop_map(|s| format!("*/{s}")),
        6 => prop::collection::vec(one, 1..=3).prop_map(|v| v.join(",")),
    ]
    .boxed()
}

fn expression() -> BoxedStrategy<String> {
    let seconds = prop_oneof![
        3 => Just(None),
        1 => time_field(0, 59, (0, 5), 2).prop_map(Some),
    ];
    (
        seconds,
        time_field(0, 59, (0, 59), 2),
        time_field(0, 23, (0, 4), 3),
        dom_field(),
        month_field(),
        dow_field(),
    )
        .prop_map(|(s, mi, h, dom, mo, dow)| {
            let five = format!("{mi} {h} {dom} {mo} {dow}");
            match s {
                Some(s) => format!("{s} {five}"),
                None => five,
            }
        })
        .boxed()
}

#[derive(Debug, Clone)]
enum When {
    Uniform(i64),
    /// A transition of the zone (picked by index) plus an offset in seconds.
    NearTransition(usize, i64),
}

fn when() -> BoxedStrategy<(When, u32)> {
    let (from, to) = (
        secs_of("1970-01-01T00:00:00Z"),
        secs_of("2100-01-01T00:00:00Z"),
    );
    let near = prop_oneof![
        3 => -7200_i64..7200,
        1 => -3 * DAY..3 * DAY,
        1 => prop::sample::select(vec![-3600_i64, -1800, -60, -1, 0, 1, 59, 60, 1800, 3600]),
    ];
    let instant = prop_oneof![
        1 => (from..to).prop_map(When::Uniform),
        3 => (any::<usize>(), near).prop_map(|(i, d)| When::NearTransition(i, d)),
    ];
    let nanos = prop_oneof![3 => Just(0_u32), 1 => 0..1_000_000_000_u32];
    (instant, nanos).boxed()
}

fn resolve_when(zone: &Zone, when: &When) -> i64 {
    match *when {
        When::Uniform(t) => t,
        When::NearTransition(i, delta) => {
            let recent = zone.recent_transitions();
            if recent.is_empty() {
                secs_of("2026-03-29T01:00:00Z") + delta
            } else {
                recent[i % recent.len()] + delta
            }
        }
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison

/// What the cases covered; each test keeps its own.
#[derive(Default)]
struct Stats {
    compared: AtomicU64,
    refused: AtomicU64,
    /// The fire is the first instant after a gap (a skipped fixed time, or the gap's end).
    gap_end: AtomicU64,
    /// The fire shows a wall clock time that occurs twice: first pass, second pass.
    first_pass: AtomicU64,
    second_pass: AtomicU64,
    /// `after` is within a day of a transition.
    near_transition: AtomicU64,
}

impl Stats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn record(&self, zone: &Zone, after: i64, next: Next) {
        Self::add(&self.compared);
        let i = zone.transitions.partition_point(|(at, _)| *at <= after);
        let near = |k: usize| {
            zone.transitions
                .get(k)
                .is_some_and(|(at, _)| (at - after).abs() < DAY)
        };
        if (i > 0 && near(i - 1)) || near(i) {
            Self::add(&self.near_transition);
        }
        let Next::At(fire) = next else {
            return;
        };
        let wall = local_secs(zone.tz, fire);
        if local_secs(zone.tz, fire - 1) + 1 < wall {
            Self::add(&self.gap_end);
        }
        match zone.tz.from_local_datetime(&utc(wall).naive_utc()) {
            chrono::LocalResult::Ambiguous(first, _) if first.timestamp() == fire => {
                Self::add(&self.first_pass);
            }
            chrono::LocalResult::Ambiguous(..) => Self::add(&self.second_pass),
            _ => {}
        }
    }

    fn report(&self, name: &str) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        eprintln!(
            "{name}: {} cases compared with the reference ({} within a day of a transition; \
             fires at a gap end {}, in a first pass {}, in a second pass {}); {} refused as \
             never firing",
            get(&self.compared),
            get(&self.near_transition),
            get(&self.gap_end),
            get(&self.first_pass),
            get(&self.second_pass),
            get(&self.refused),
        );
    }
}

/// Compiles, checks the refusal rule and the classification, then compares `next_after` with
/// the reference. Returns the schedule and parsed expression when they were compared.
fn compare(
    stats: &Stats,
    text: &str,
    zone_name: &str,
    when: &When,
    nanos: u32,
) -> Result<Option<(CompiledSchedule, Expr, i64, Next)>, TestCaseError> {
    let expr = match Expr::parse(text) {
        Ok(expr) => expr,
        Err(why) => {
            // Only "L and LW together" is generated on purpose; refused by both.
            prop_assert!(compile(text, zone_name).is_err(), "{text}: {why}");
            return Ok(None);
        }
    };
    let schedule = match compile(text, zone_name) {
        Ok(schedule) => schedule,
        Err(error) => {
            prop_assert!(
                expr.never_fires(),
                "{text} in {zone_name} refused but it can fire: {error}"
            );
            Stats::add(&stats.refused);
            return Ok(None);
        }
    };
    prop_assert!(!expr.never_fires(), "{text} accepted but never fires");
    prop_assert_eq!(schedule.follows_elapsed_time(), expr.elapsed, "{}", text);
    prop_assert_eq!(schedule.timezone().name(), zone_name);
    let zone = Zone::get(zone_name);
    let after = resolve_when(zone, when);
    let expected = oracle_next(&expr, zone, after);
    let actual = sut_next(&schedule, after, nanos);
    let context = || {
        format!(
            "{text:?} in {zone_name} after {}.{nanos:09} (local {}): resolved {:?}",
            show(after),
            utc(after)
                .with_timezone(&zone.tz)
                .format("%Y-%m-%d %H:%M:%S %Z"),
            schedule.resolved_expression()
        )
    };
    match expected {
        Next::At(fire) => {
            prop_assert_eq!(
                actual.map(show),
                Some(show(fire)),
                "{}; oracle fire local {}",
                context(),
                utc(fire)
                    .with_timezone(&zone.tz)
                    .format("%Y-%m-%d %H:%M:%S %Z")
            );
            // The two forms of the reference agree on the fire itself.
            prop_assert!(fires_at(&expr, zone.tz, fire), "{}", context());
        }
        Next::Beyond => {
            prop_assert!(
                actual.is_none_or(|t| t >= horizon()),
                "{}: got {:?}, reference found nothing before 2110",
                context(),
                actual.map(show)
            );
        }
    }
    stats.record(zone, after, expected);
    Ok(Some((schedule, expr, after, expected)))
}

/// Cases per comparison test (three of them); `CRONHOOK_ORACLE_CASES` overrides it for a
/// longer run.
fn oracle_cases() -> u32 {
    std::env::var("CRONHOOK_ORACLE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(34_000)
}

fn run_comparison(name: &str, zones: &'static [&'static str]) {
    let stats = Stats::default();
    proptest!(config(oracle_cases()), |(
        text in expression(),
        zone in prop::sample::select(zones),
        (when, nanos) in when(),
    )| {
        compare(&stats, &text, zone, &when, nanos)?;
    });
    stats.report(name);
}

#[test]
fn next_after_matches_the_reference_dst_zones_a() {
    run_comparison(
        "dst zones a",
        &[
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "America/Sao_Paulo",
            "Pacific/Chatham",
        ],
    );
}

#[test]
fn next_after_matches_the_reference_dst_zones_b() {
    run_comparison(
        "dst zones b",
        &[
            "America/St_Johns",
            "Australia/Sydney",
            "Europe/London",
            "Pacific/Apia",
            "America/Havana",
        ],
    );
}

#[test]
fn next_after_matches_the_reference_other_zones() {
    run_comparison(
        "other zones",
        &[
            "UTC",
            "Asia/Kolkata",
            "Africa/Casablanca",
            "America/Santiago",
            "Europe/Berlin",
        ],
    );
}

/// Far from now: years 2100 to 9999 (croner stops at 5000; the schedule shifts by 400-year
/// cycles) and the end of the range (nothing after 9999-12-31T23:59:59Z), in zones whose offset
/// no longer changes.
#[test]
fn far_future_matches_the_reference() {
    let last = secs_of("9999-12-31T23:59:59Z");
    let stats = Stats::default();
    proptest!(config(3_000), |(
        text in expression(),
        zone_name in prop::sample::select(vec!["UTC", "Asia/Kolkata", "Etc/GMT+12"]),
        after in prop_oneof![
            secs_of("2100-01-01T00:00:00Z")..last,
            last - 40 * DAY..last + 10,
        ],
    )| {
        let expr = Expr::parse(&text).map_err(TestCaseError::reject)?;
        let Ok(schedule) = compile(&text, zone_name) else {
            prop_assert!(expr.never_fires());
            return Ok(());
        };
        let zone = far_zone(zone_name);
        let expected = match oracle_next_until(&expr, zone, after, last + 1) {
            Next::At(t) => Some(show(t)),
            Next::Beyond => None,
        };
        prop_assert_eq!(
            sut_next(&schedule, after, 0).map(show),
            expected,
            "{} in {} after {}",
            text,
            zone_name,
            show(after)
        );
        Stats::add(&stats.compared);
    });
    stats.report("far future");
}

fn far_zone(name: &str) -> &'static Zone {
    static FAR: OnceLock<HashMap<String, Zone>> = OnceLock::new();
    FAR.get_or_init(|| {
        ["UTC", "Asia/Kolkata", "Etc/GMT+12"]
            .iter()
            .map(|name| {
                let zone = Zone::build(name);
                assert!(
                    zone.transitions.iter().all(|(at, _)| *at < 0),
                    "{name} changes offset after 1970"
                );
                (name.to_string(), zone)
            })
            .collect()
    })
    .get(name)
    .expect("a far zone")
}

/// Two laws, checked with the instant-by-instant form only: the next fire is strictly after
/// `after` and fires, and no instant strictly between them fires (near both ends, bounded).
#[test]
fn nothing_fires_between_after_and_next() {
    const EDGE_STEPS: i64 = 150;
    let stats = Stats::default();
    proptest!(config(6_000), |(
        text in expression(),
        zone in prop::sample::select(ZONES.to_vec()),
        (when, nanos) in when(),
    )| {
        let Some((schedule, expr, after, _)) = compare(&stats, &text, zone, &when, nanos)? else {
            return Ok(());
        };
        let Some(next) = sut_next(&schedule, after, nanos) else {
            return Ok(());
        };
        prop_assert!(next > after);
        let tz = Zone::get(zone).tz;
        prop_assert!(fires_at(&expr, tz, next), "{text} in {zone}: {} does not fire", show(next));
        // Fire instants are whole minutes for five fields (every offset here is whole minutes).
        let unit = if expr.has_seconds { 1 } else { 60 };
        let first = after + 1 + (unit - (after + 1).rem_euclid(unit)) % unit;
        let near_after = (0..EDGE_STEPS).map(|k| first + k * unit);
        let near_next = (1..=EDGE_STEPS).map(|k| next - k * unit);
        for t in near_after.chain(near_next).filter(|t| *t > after && *t < next) {
            prop_assert!(
                !fires_at(&expr, tz, t),
                "{text} in {zone}: {} fires between {} and next_after {}",
                show(t), show(after), show(next)
            );
        }
    });
    stats.report("laws");
}

/// `upcoming(t, n)` is `next_after` iterated, and follows the reference fire by fire.
#[test]
fn upcoming_iterates_next_after() {
    let stats = Stats::default();
    proptest!(config(2_000), |(
        text in expression(),
        zone in prop::sample::select(ZONES.to_vec()),
        (when, nanos) in when(),
    )| {
        let Some((schedule, expr, after, _)) = compare(&stats, &text, zone, &when, nanos)? else {
            return Ok(());
        };
        let start = DateTime::from_timestamp(after, nanos).expect("instant");
        let upcoming = schedule.upcoming(start, 8);
        let mut cursor = start;
        let mut reference = after;
        for fire in &upcoming {
            prop_assert_eq!(Some(*fire), schedule.next_after(cursor));
            match oracle_next(&expr, Zone::get(zone), reference) {
                Next::At(t) => prop_assert_eq!(show(fire.timestamp()), show(t), "{} in {}", text, zone),
                Next::Beyond => prop_assert!(fire.timestamp() >= horizon()),
            }
            cursor = *fire;
            reference = fire.timestamp();
        }
        if upcoming.len() < 8 {
            prop_assert_eq!(schedule.next_after(cursor), None);
        }
    });
    stats.report("upcoming");
}

// ---------------------------------------------------------------------------------------------
// Tables

fn fires_between(schedule: &CompiledSchedule, from: &str, count: usize) -> Vec<String> {
    schedule
        .upcoming(utc(secs_of(from)), count)
        .into_iter()
        .map(|t| show(t.timestamp()))
        .collect()
}

/// The Kubernetes CronJob report: a stepped hour range on weekdays must not run at the weekend
/// or drift after it.
#[test]
fn stepped_hours_on_weekdays_across_a_weekend() {
    let s = compile("30 6-16/4 * * 1-5", "UTC").expect("compiles");
    // 2026-05-15 is a Friday.
    assert_eq!(
        fires_between(&s, "2026-05-15T12:00:00Z", 7),
        [
            "2026-05-15T14:30:00Z",
            "2026-05-18T06:30:00Z",
            "2026-05-18T10:30:00Z",
            "2026-05-18T14:30:00Z",
            "2026-05-19T06:30:00Z",
            "2026-05-19T10:30:00Z",
            "2026-05-19T14:30:00Z",
        ]
    );
    // Same in Berlin, across the spring-forward weekend (Sunday 2026-03-29); the step makes the
    // hour field follow elapsed time, which changes nothing at 06:30-14:30.
    let s = compile("30 6-16/4 * * 1-5", "Europe/Berlin").expect("compiles");
    assert!(s.follows_elapsed_time());
    assert_eq!(
        fires_between(&s, "2026-03-27T12:00:00Z", 4),
        [
            "2026-03-27T13:30:00Z",
            "2026-03-30T04:30:00Z",
            "2026-03-30T08:30:00Z",
            "2026-03-30T12:30:00Z",
        ]
    );
    // And the reference agrees along the way.
    let expr = Expr::parse("30 6-16/4 * * 1-5").expect("parses");
    let zone = Zone::get("Europe/Berlin");
    let mut t = secs_of("2026-03-20T00:00:00Z");
    for _ in 0..40 {
        let Next::At(expected) = oracle_next(&expr, zone, t) else {
            panic!("fires");
        };
        assert_eq!(sut_next(&s, t, 0), Some(expected));
        t = expected;
    }
}

#[test]
fn berlin_examples_of_the_rule() {
    // Spring forward 2026-03-29: 02:00 CET -> 03:00 CEST. Fall back 2026-10-25: 03:00 CEST ->
    // 02:00 CET.
    let table: [(&str, &str, &[&str]); 4] = [
        (
            "30 2 * * *",
            "2026-03-28T12:00:00Z",
            &["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
        ),
        (
            "30 2 * * *",
            "2026-10-24T12:00:00Z",
            &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        ),
        (
            "30 * * * *",
            "2026-03-29T00:00:00Z",
            &["2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"],
        ),
        (
            "30 * * * *",
            "2026-10-25T00:00:00Z",
            &[
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T02:30:00Z",
            ],
        ),
    ];
    for (text, from, expected) in table {
        let s = compile(text, "Europe/Berlin").expect("compiles");
        assert_eq!(fires_between(&s, from, expected.len()), expected, "{text}");
        let expr = Expr::parse(text).expect("parses");
        let mut t = secs_of(from);
        for want in expected {
            let Next::At(got) = oracle_next(&expr, Zone::get("Europe/Berlin"), t) else {
                panic!("fires");
            };
            assert_eq!(show(got), *want, "reference, {text}");
            t = got;
        }
    }
}

/// `H` resolves to values in range, stably per job id, spread across job ids; the resolved
/// expression evaluates like the reference's reading of it.
#[test]
fn hash_expressions_resolve_and_evaluate() {
    let anchor = utc(secs_of("2026-01-01T00:00:00Z"));
    let with_id = |text: &str, id: &str| {
        CompiledSchedule::compile(
            &ScheduleSpec::Cron {
                cron: text.into(),
                timezone: "Europe/Berlin".into(),
            },
            id,
            anchor,
        )
        .expect("compiles")
    };
    let zone = Zone::get("Europe/Berlin");
    let cases = [
        ("H H * * *", false),
        ("H/15 * * * *", true),
        ("H(0-5) H(1-3) * * *", false),
        ("0 H/4 * * *", true),
        ("H H(0-3) H * H", false),
        ("H H H(1-6)/2 * *", false),
    ];
    for (text, elapsed) in cases {
        let mut distinct = std::collections::BTreeSet::new();
        for n in 0..60 {
            let id = format!("job_{n:04}");
            let s = with_id(text, &id);
            assert_eq!(s.follows_elapsed_time(), elapsed, "{text}");
            let resolved = s.resolved_expression().expect("cron").to_owned();
            assert!(!resolved.contains('H'), "{text} -> {resolved}");
            assert_eq!(
                with_id(text, &id).resolved_expression(),
                Some(resolved.as_str()),
                "stable per job id"
            );
            let expr = Expr::parse(&resolved).unwrap_or_else(|e| panic!("{resolved}: {e}"));
            assert_eq!(expr.elapsed, elapsed, "{text} -> {resolved}");
            for from in [
                "2026-03-28T23:10:00Z",
                "2026-10-24T23:59:00Z",
                "2026-10-25T00:59:59Z",
            ] {
                let t = secs_of(from);
                let Next::At(expected) = oracle_next(&expr, zone, t) else {
                    panic!("{resolved} fires");
                };
                assert_eq!(
                    sut_next(&s, t, 0).map(show),
                    Some(show(expected)),
                    "{text} -> {resolved} after {from}"
                );
            }
            distinct.insert(resolved);
        }
        assert!(
            distinct.len() > 3,
            "{text} spreads over job ids: {distinct:?}"
        );
    }
    // `H H * * *` stays within a day: every job fires once per local day.
    let s = with_id("H H * * *", "job_daily");
    let fires = s.upcoming(utc(secs_of("2026-06-01T00:00:00Z")), 5);
    for pair in fires.windows(2) {
        assert_eq!((pair[1] - pair[0]).num_seconds(), DAY);
    }
}

/// Reference sanity: the literal instant form and the stretch walk agree on every instant of a
/// few days around transitions (a check of the test's own machinery).
#[test]
fn reference_forms_agree() {
    let cases = [
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T20:00:00Z"),
        ("*/20 * * * *", "Europe/Berlin", "2026-10-24T22:00:00Z"),
        ("0,30 2 * * *", "Europe/Berlin", "2026-10-24T22:00:00Z"),
        ("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00Z"),
        (
            "*/10 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T12:00:00Z",
        ),
        ("0 12 30 12 *", "Pacific/Apia", "2011-12-28T00:00:00Z"),
        ("0 0 * * *", "America/Sao_Paulo", "2018-11-02T00:00:00Z"),
        ("45 2 * * *", "Pacific/Chatham", "2026-09-26T00:00:00Z"),
    ];
    for (text, zone_name, from) in cases {
        let expr = Expr::parse(text).expect("parses");
        let zone = Zone::get(zone_name);
        let start = secs_of(from);
        let literal: Vec<i64> = (0..3 * 24 * 60)
            .map(|k| start + 60 * k)
            .filter(|t| fires_at(&expr, zone.tz, *t))
            .collect();
        let mut walked = Vec::new();
        let mut t = start - 1;
        while let Next::At(next) = oracle_next(&expr, zone, t) {
            if next >= start + 3 * DAY {
                break;
            }
            walked.push(next);
            t = next;
        }
        assert_eq!(walked, literal, "{text} in {zone_name}");
        assert!(!walked.is_empty(), "{text} in {zone_name}");
    }
    // The Apia day that never was: a fixed time on 2011-12-30 fires when the gap ends.
    let apia = Zone::get("Pacific/Apia");
    let expr = Expr::parse("0 12 30 12 *").expect("parses");
    assert_eq!(
        oracle_next(&expr, apia, secs_of("2011-12-28T00:00:00Z")),
        Next::At(secs_of("2011-12-30T10:00:00Z")) // 2011-12-31 00:00 +14:00
    );
}
