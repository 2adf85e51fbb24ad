//! Schedules: what a user writes (`ScheduleSpec`), how it is checked, and how it yields instants
//! (`CompiledSchedule`).
//!
//! Cron expressions are parsed and validated here, field by field, then handed to croner in a
//! normalised numeric form (names replaced, `H` substituted, `?` turned into `*`). croner only
//! matches *wall clock* times (`NaiveDateTime`); turning wall clock times into instants, with the
//! time-zone rules of the contract, happens here:
//!
//! * a wall clock time that does not exist (spring forward) fires once, at the first instant after
//!   the gap, unless the expression "follows elapsed time";
//! * a wall clock time that occurs twice (fall back) fires once, at its first occurrence, unless
//!   the expression follows elapsed time, in which case it fires in both passes;
//! * an expression follows elapsed time when its hour field is `*` or contains a step (`/`);
//!   such expressions simply skip wall clock times that do not exist.
//!
//! croner's own time-zone handling is not used: it classifies "fixed time" jobs differently
//! (seconds, minutes and hours must each be one value), so e.g. `0,30 2 * * *` would be skipped
//! on a spring-forward day and run twice on a fall-back day.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use chrono::{DateTime, Datelike, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::BoundedCache;

const FIELD_CRON: &str = "schedule.cron";
const FIELD_TIMEZONE: &str = "schedule.timezone";

/// Longest accepted cron expression, in bytes.
const MAX_EXPRESSION_LEN: usize = 1024;
/// Longest accepted `@every` interval (ten years).
const MAX_EVERY_SECS: u64 = 3650 * 86_400;
/// Days in 400 Gregorian years: the calendar (weekdays included) repeats with this period.
const DAYS_PER_400_YEARS: i64 = 146_097;
/// Safety net for the wall-clock walk; real searches finish in a handful of steps.
const MAX_WALK_STEPS: u32 = 10_000;
/// Longest gap or repeated range of wall clock time searched for (real ones are at most a day).
const MAX_TRANSITION_SECS: i64 = 4 * 86_400;

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const WEEKDAYS_EN: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn default_timezone() -> String {
    "UTC".to_owned()
}

/// What the user wrote. Serde: untagged; `{"cron": "...", "timezone": "..."}` or `{"at": "..."}`;
/// deny unknown fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "utoipa",
    schema(
        description = "When a job fires: `{\"cron\": EXPR, \"timezone\": IANA}` (time zone default `UTC`) or `{\"at\": RFC3339}` (once)."
    )
)]
#[serde(untagged, deny_unknown_fields)]
pub enum ScheduleSpec {
    Cron {
        cron: String,
        #[serde(default = "default_timezone")]
        timezone: String,
    },
    At {
        at: DateTime<Utc>,
    },
}

/// Why a schedule was refused. `field` is the JSON path of the bad field: "schedule.cron",
/// "schedule.timezone" or "schedule.at".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    pub field: &'static str,
    pub message: String,
}

impl ScheduleError {
    fn cron(message: impl Into<String>) -> Self {
        Self {
            field: FIELD_CRON,
            message: message.into(),
        }
    }
}

/// A schedule ready to evaluate. `Send + Sync`; clones share the parsed expression.
#[derive(Debug, Clone)]
pub struct CompiledSchedule {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron(Box<CronSchedule>),
    Every {
        anchor: DateTime<Utc>,
        interval_secs: u64,
    },
    At(DateTime<Utc>),
}

#[derive(Debug, Clone)]
struct CronSchedule {
    /// croner's parse of `expression`, shared (see [`ParsedPatterns`]); used for wall clock
    /// matching only.
    cron: Arc<Cron>,
    tz: Tz,
    /// Hour field `*` or stepped: fires in both passes of a repeated hour, skips missing times.
    elapsed: bool,
    /// The normalised expression handed to croner (names resolved, `H` substituted).
    expression: String,
    /// The expression as written (macros expanded) and the job id that seeds its `H`: what
    /// [`CronSchedule::description`] parses again. Describing costs several times what compiling
    /// does, and only the API's and the dashboard's views ask for it, not the scheduler or
    /// validation.
    written: String,
    seed: String,
}

impl CronSchedule {
    /// English description, without the time zone.
    fn description(&self) -> String {
        match parse_expression(&self.written, &self.seed) {
            Ok(parsed) => describe_fields(&parsed.fields),
            // Unreachable: `compile` parsed the same text with the same seed.
            Err(_) => self.expression.clone(),
        }
    }
}

impl CompiledSchedule {
    /// `job_id` seeds `H`; `anchor` is the job's creation instant (for `@every`).
    pub fn compile(
        spec: &ScheduleSpec,
        job_id: &str,
        anchor: DateTime<Utc>,
    ) -> Result<Self, ScheduleError> {
        match spec {
            ScheduleSpec::At { at } => Ok(Self {
                kind: Kind::At(*at),
            }),
            ScheduleSpec::Cron { cron, timezone } => {
                let text = cron.trim();
                if text.is_empty() {
                    return Err(ScheduleError::cron("the expression is empty"));
                }
                if text.len() > MAX_EXPRESSION_LEN {
                    return Err(ScheduleError::cron(format!(
                        "the expression is too long (at most {MAX_EXPRESSION_LEN} characters)"
                    )));
                }
                if let Some(rest) = strip_prefix_ignore_case(text, "@every") {
                    let interval_secs = parse_every(rest).map_err(ScheduleError::cron)?;
                    parse_timezone(timezone)?;
                    return Ok(Self {
                        kind: Kind::Every {
                            anchor,
                            interval_secs,
                        },
                    });
                }
                let expression = expand_macro(text).map_err(ScheduleError::cron)?;
                let parsed = parse_expression(expression, job_id).map_err(ScheduleError::cron)?;
                let tz = parse_timezone(timezone)?;
                let cron = PARSED_PATTERNS
                    .parse(&parsed.expression, Seconds::Optional)
                    .map_err(|error| {
                        ScheduleError::cron(format!("the cron parser refused it: {error}"))
                    })?;
                Ok(Self {
                    kind: Kind::Cron(Box::new(CronSchedule {
                        cron,
                        tz,
                        elapsed: parsed.elapsed,
                        expression: parsed.expression,
                        written: expression.to_owned(),
                        seed: job_id.to_owned(),
                    })),
                })
            }
        }
    }

    /// The first fire instant strictly after `after`, or None when there is none (a one-off in the
    /// past, or beyond year 9999). For a one-off `at`: Some(at) iff at > after.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::At(at) => (*at > after).then_some(*at),
            Kind::Every {
                anchor,
                interval_secs,
            } => next_every(*anchor, *interval_secs, after),
            Kind::Cron(cron) => cron.next_after(after),
        }
    }

    /// Up to `count` fire instants strictly after `after`, in order.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count.min(1024));
        let mut cursor = after;
        while out.len() < count {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            out.push(next);
            cursor = next;
        }
        out
    }

    /// Plain English, e.g. "At 03:00, every day", "At 03:00, Monday through Friday (Europe/Berlin)",
    /// "Every 90 seconds", "Once, at 2026-12-01 10:00:00 UTC".
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::At(at) => format!("Once, at {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
            Kind::Every { interval_secs, .. } => describe_interval(*interval_secs),
            Kind::Cron(cron) if cron.tz == Tz::UTC => cron.description(),
            Kind::Cron(cron) => format!("{} ({})", cron.description(), cron.tz.name()),
        }
    }

    /// The IANA time zone (UTC for `at` and `@every`).
    pub fn timezone(&self) -> Tz {
        match &self.kind {
            Kind::Cron(cron) => cron.tz,
            Kind::Every { .. } | Kind::At(_) => Tz::UTC,
        }
    }

    /// True for a one-off (`at`) schedule.
    pub fn is_one_off(&self) -> bool {
        matches!(self.kind, Kind::At(_))
    }

    /// True when the schedule follows real elapsed time across time-zone transitions: a cron
    /// expression whose hour field is `*` or a step (hourly, every 15 minutes...), or `@every`.
    /// Such schedules fire in both passes of a repeated hour and skip a missing one. Informational.
    pub fn follows_elapsed_time(&self) -> bool {
        match &self.kind {
            Kind::Cron(cron) => cron.elapsed,
            Kind::Every { .. } => true,
            Kind::At(_) => false,
        }
    }

    /// The cron expression as evaluated (names resolved, `H` substituted, macros expanded);
    /// None for `at` and `@every`.
    pub fn resolved_expression(&self) -> Option<&str> {
        match &self.kind {
            Kind::Cron(cron) => Some(&cron.expression),
            Kind::Every { .. } | Kind::At(_) => None,
        }
    }
}

fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    name.trim().parse::<Tz>().map_err(|_| ScheduleError {
        field: FIELD_TIMEZONE,
        message: format!(
            "unknown time zone {name:?} (expected an IANA name such as \"Europe/Berlin\")"
        ),
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

// ---------------------------------------------------------------------------------------------
// Instants

/// 0001-01-01T00:00:00Z: searches start no earlier.
fn min_instant() -> DateTime<Utc> {
    DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// 9999-12-31T23:59:59Z: the last instant a schedule may yield.
fn max_instant() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn next_every(
    anchor: DateTime<Utc>,
    interval_secs: u64,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    const NANOS: i128 = 1_000_000_000;
    let nanos_of = |t: DateTime<Utc>| {
        i128::from(t.timestamp()) * NANOS + i128::from(t.timestamp_subsec_nanos())
    };
    let interval = i128::from(interval_secs) * NANOS;
    let (anchor_ns, after_ns) = (nanos_of(anchor), nanos_of(after));
    let k = if after_ns < anchor_ns {
        1
    } else {
        (after_ns - anchor_ns) / interval + 1
    };
    let at = anchor_ns.checked_add(k.checked_mul(interval)?)?;
    let secs = i64::try_from(at.div_euclid(NANOS)).ok()?;
    let nanos = u32::try_from(at.rem_euclid(NANOS)).ok()?;
    DateTime::from_timestamp(secs, nanos).filter(|t| *t <= max_instant())
}

impl CronSchedule {
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Fire instants are whole seconds, so "strictly after `after`" is "strictly after its
        // second".
        let after = after.max(min_instant());
        let after = DateTime::from_timestamp(after.timestamp(), 0)?;
        if after >= max_instant() {
            return None;
        }
        let local = after.with_timezone(&self.tz).naive_local();
        let mut best = self.walk_forward(local, after);
        if self.elapsed
            && let Some(second_pass) = self.second_pass_candidate(local, after)
        {
            best = Some(best.map_or(second_pass, |first| first.min(second_pass)));
        }
        best.filter(|t| *t <= max_instant())
    }

    fn resolve(&self, naive: NaiveDateTime) -> LocalResult<DateTime<Tz>> {
        self.tz.from_local_datetime(&naive)
    }

    /// The first matching wall clock time strictly after `naive`.
    ///
    /// croner gives up at year 5000, so the search runs in the 400-year cycle that starts in
    /// 2000 and is shifted back: the Gregorian calendar, weekdays included, repeats exactly.
    fn naive_next(&self, naive: NaiveDateTime) -> Option<NaiveDateTime> {
        let cycles = i64::from(naive.year() - 2000).div_euclid(400);
        let shift = TimeDelta::try_days(cycles * DAYS_PER_400_YEARS)?;
        let shifted = naive.checked_sub_signed(shift)?;
        let found = self.cron.find_next_occurrence(&shifted, false).ok()?;
        found.checked_add_signed(shift)
    }

    /// Walks the matching wall clock times after `start` (the wall clock of `after`) and returns
    /// the first that yields an instant after `after`, applying the transition rules.
    fn walk_forward(&self, start: NaiveDateTime, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut naive = start;
        for _ in 0..MAX_WALK_STEPS {
            naive = self.naive_next(naive)?;
            if naive.year() > 10_000 {
                return None;
            }
            match self.resolve(naive) {
                LocalResult::Single(t) => {
                    let t = t.to_utc();
                    if t > after {
                        return Some(t);
                    }
                }
                LocalResult::Ambiguous(earlier, later) => {
                    let (earlier, later) = (earlier.to_utc(), later.to_utc());
                    if earlier > after {
                        return Some(earlier);
                    }
                    if self.elapsed {
                        if later > after {
                            return Some(later);
                        }
                    } else {
                        // `after` is in the second pass; a fixed-time expression already ran
                        // through the whole repeated range in the first pass.
                        let end = first_outside(naive, |m| {
                            matches!(self.resolve(m), LocalResult::Ambiguous(..))
                        })?;
                        naive = end.checked_sub_signed(TimeDelta::seconds(1))?;
                    }
                }
                LocalResult::None => {
                    let end =
                        first_outside(naive, |m| matches!(self.resolve(m), LocalResult::None))?;
                    if !self.elapsed {
                        // A missing fixed time fires at the first instant after the gap.
                        let t = self.resolve(end).earliest()?.to_utc();
                        if t > after {
                            return Some(t);
                        }
                    }
                    naive = end.checked_sub_signed(TimeDelta::seconds(1))?;
                }
            }
        }
        None
    }

    /// When `after` sits in the first pass of a repeated range of wall clock time, the second
    /// pass still lies ahead although its wall clock times precede `after`'s: the first match
    /// in it, as an instant of the second pass.
    fn second_pass_candidate(
        &self,
        local: NaiveDateTime,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let LocalResult::Ambiguous(earlier, _) = self.resolve(local) else {
            return None;
        };
        if earlier.to_utc() != after {
            return None;
        }
        let ambiguous = |m: NaiveDateTime| matches!(self.resolve(m), LocalResult::Ambiguous(..));
        let start = first_inside_backward(local, ambiguous)?;
        let end = first_outside(local, ambiguous)?;
        let naive = self.naive_next(start.checked_sub_signed(TimeDelta::seconds(1))?)?;
        if naive >= end {
            return None;
        }
        Some(self.resolve(naive).latest()?.to_utc())
    }
}

fn offset(base: NaiveDateTime, seconds: i64) -> Option<NaiveDateTime> {
    base.checked_add_signed(TimeDelta::seconds(seconds))
}

/// The first wall clock time after `from` for which `inside` is false, given that it holds at
/// `from` and on one contiguous stretch after it (a gap or a repeated range).
fn first_outside(
    from: NaiveDateTime,
    inside: impl Fn(NaiveDateTime) -> bool,
) -> Option<NaiveDateTime> {
    let (mut lo, mut hi) = (0_i64, 1_i64);
    while inside(offset(from, hi)?) {
        lo = hi;
        hi *= 2;
        if hi > MAX_TRANSITION_SECS {
            return None;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if inside(offset(from, mid)?) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    offset(from, hi)
}

/// The earliest wall clock time of the contiguous stretch on which `inside` holds, ending at
/// `from`.
fn first_inside_backward(
    from: NaiveDateTime,
    inside: impl Fn(NaiveDateTime) -> bool,
) -> Option<NaiveDateTime> {
    let (mut lo, mut hi) = (0_i64, 1_i64);
    while inside(offset(from, -hi)?) {
        lo = hi;
        hi *= 2;
        if hi > MAX_TRANSITION_SECS {
            return None;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if inside(offset(from, -mid)?) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    offset(from, -lo)
}

// ---------------------------------------------------------------------------------------------
// `@every` and macros

fn parse_every(rest: &str) -> Result<u64, String> {
    if !rest.is_empty() && !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(format!(
            "unknown macro \"@every{rest}\" (write e.g. \"@every 5m\")"
        ));
    }
    let text = rest.trim();
    if text.is_empty() {
        return Err("@every needs an interval, e.g. \"@every 90s\" or \"@every 1h30m\"".into());
    }
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("invalid @every interval {text:?}: {error}"))?;
    if duration.subsec_nanos() != 0 {
        return Err(format!(
            "the @every interval {text:?} must be a whole number of seconds"
        ));
    }
    let secs = duration.as_secs();
    if secs < 1 {
        return Err("the @every interval must be at least 1 second".into());
    }
    if secs > MAX_EVERY_SECS {
        return Err("the @every interval must be at most 3650 days".into());
    }
    Ok(secs)
}

fn expand_macro(text: &str) -> Result<&str, String> {
    if !text.starts_with('@') {
        return Ok(text);
    }
    let lower = text.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => {
            return Err(format!(
                "unknown macro {text:?} (expected @yearly, @annually, @monthly, @weekly, \
                 @daily, @midnight, @hourly or @every <interval>)"
            ));
        }
    })
}

fn describe_interval(secs: u64) -> String {
    let unit = |n: u64, name: &str| {
        if n == 1 {
            format!("1 {name}")
        } else {
            format!("{n} {name}s")
        }
    };
    let parts: Vec<String> = if secs.is_multiple_of(86_400) {
        vec![unit(secs / 86_400, "day")]
    } else if secs < 3600 {
        if secs.is_multiple_of(60) {
            vec![unit(secs / 60, "minute")]
        } else {
            vec![unit(secs, "second")]
        }
    } else {
        let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        [(h, "hour"), (m, "minute"), (s, "second")]
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, name)| unit(n, name))
            .collect()
    };
    let text = parts.join(" ");
    match text.strip_prefix("1 ") {
        Some(single) if parts.len() == 1 => format!("Every {single}"),
        _ => format!("Every {text}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Cron expression parsing

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl FieldKind {
    const fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
        }
    }

    const fn bounds(self) -> (u32, u32) {
        match self {
            Self::Second | Self::Minute => (0, 59),
            Self::Hour => (0, 23),
            Self::DayOfMonth => (1, 31),
            Self::Month => (1, 12),
            Self::DayOfWeek => (0, 7),
        }
    }

    /// The range a bare `H` picks from: days 1-28 exist in every month, weekdays are 0-6.
    const fn hash_bounds(self) -> (u32, u32) {
        match self {
            Self::DayOfMonth => (1, 28),
            Self::DayOfWeek => (0, 6),
            _ => self.bounds(),
        }
    }

    const fn max_step(self) -> u32 {
        match self {
            Self::DayOfWeek => 7,
            _ => {
                let (lo, hi) = self.bounds();
                hi - lo + 1
            }
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Self::Month => &MONTH_NAMES,
            Self::DayOfWeek => &WEEKDAY_NAMES,
            _ => &[],
        }
    }

    const fn is_day(self) -> bool {
        matches!(self, Self::DayOfMonth | Self::DayOfWeek)
    }
}

/// One element of a field's list, with `H` already substituted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// `start..=end` by `step`: a value, a range, `*/n` or a stepped range.
    Values { start: u32, end: u32, step: u32 },
    /// `L` in the day of month.
    LastDay,
    /// `LW` in the day of month.
    LastWeekday,
    /// `15W` in the day of month.
    NearestWeekday(u32),
    /// `5#2` in the day of week.
    NthWeekday,
    /// `5L` or `5#L` in the day of week.
    LastWeekdayOf,
}

#[derive(Debug, Clone)]
struct Field {
    /// The field is `*` (or `?`): croner ignores it in the day-of-month/day-of-week OR.
    star: bool,
    /// The field contains a step (`/`).
    stepped: bool,
    items: Vec<Item>,
    /// Normalised text for croner.
    text: String,
    /// The same field for croner's describe(), which misreads steps other than a lone `*/n`
    /// in a time field (`0-30/10` as "every 10 minutes", month `1-3/2` as "every 2 months"):
    /// those are written out as lists.
    describe_text: String,
}

impl Field {
    fn implicit_zero_seconds() -> Self {
        Self {
            star: false,
            stepped: false,
            items: vec![Item::Values {
                start: 0,
                end: 0,
                step: 1,
            }],
            text: "0".into(),
            describe_text: "0".into(),
        }
    }

    /// The field's only value, when it is one plain value.
    fn single(&self) -> Option<u32> {
        match self.items.as_slice() {
            [Item::Values { start, end, .. }] if start == end => Some(*start),
            _ => None,
        }
    }

    /// The field's values, when it is a list of plain values.
    fn plain_values(&self) -> Option<Vec<u32>> {
        let mut values = self
            .items
            .iter()
            .map(|item| match item {
                Item::Values { start, end, .. } if start == end => Some(*start),
                _ => None,
            })
            .collect::<Option<Vec<u32>>>()?;
        values.sort_unstable();
        values.dedup();
        Some(values)
    }
}

struct ParsedExpression {
    /// Second, minute, hour, day of month, month, day of week.
    fields: [Field; 6],
    expression: String,
    elapsed: bool,
}

fn parse_expression(text: &str, job_id: &str) -> Result<ParsedExpression, String> {
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let (seconds, rest) = match parts.as_slice() {
        [_, _, _, _, _] => (None, parts.as_slice()),
        [seconds, rest @ ..] if rest.len() == 5 => (Some(*seconds), rest),
        _ => {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), or 6 with \
                 seconds first; found {}",
                parts.len()
            ));
        }
    };
    let seconds = match seconds {
        Some(raw) => parse_field(FieldKind::Second, raw, job_id)?,
        None => Field::implicit_zero_seconds(),
    };
    let kinds = [
        FieldKind::Minute,
        FieldKind::Hour,
        FieldKind::DayOfMonth,
        FieldKind::Month,
        FieldKind::DayOfWeek,
    ];
    let mut parsed = Vec::with_capacity(5);
    for (kind, raw) in kinds.into_iter().zip(rest) {
        parsed.push(parse_field(kind, raw, job_id)?);
    }
    let [minutes, hours, days, months, weekdays]: [Field; 5] = parsed
        .try_into()
        .map_err(|_| "internal error: wrong field count".to_owned())?;

    if !can_ever_fire(&days, &months, &weekdays) {
        return Err(
            "the expression can never fire: no month it names has the day of month it names".into(),
        );
    }

    let mut expression = String::new();
    if parts.len() == 6 {
        expression.push_str(&seconds.text);
        expression.push(' ');
    }
    expression.push_str(
        &[&minutes, &hours, &days, &months, &weekdays]
            .map(|field| field.text.as_str())
            .join(" "),
    );
    let elapsed = hours.star || hours.stepped;
    Ok(ParsedExpression {
        fields: [seconds, minutes, hours, days, months, weekdays],
        expression,
        elapsed,
    })
}

/// Whether any day in any year matches. Days of month and week combine with OR when both are
/// restricted, and every weekday (also its 1st-5th and last occurrence) happens in every month
/// in some year, so only a day-of-month field with an unrestricted day of week can rule a day
/// out: it does when none of its days exists in any month the month field names.
fn can_ever_fire(days: &Field, months: &Field, weekdays: &Field) -> bool {
    if !weekdays.star || days.star {
        return true;
    }
    let longest_month = months
        .items
        .iter()
        .flat_map(|item| match *item {
            Item::Values { start, end, step } => (start..=end).step_by(step as usize),
            _ => (1..=12).step_by(1),
        })
        .map(|month| match month {
            2 => 29,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        })
        .max()
        .unwrap_or(31);
    days.items.iter().any(|item| match *item {
        Item::Values { start, .. } | Item::NearestWeekday(start) => start <= longest_month,
        _ => true,
    })
}

fn parse_field(kind: FieldKind, raw: &str, job_id: &str) -> Result<Field, String> {
    let upper = raw.to_ascii_uppercase();
    let (lo, hi) = kind.bounds();
    if upper == "*" || (upper == "?" && kind.is_day()) {
        return Ok(Field {
            star: true,
            stepped: false,
            items: vec![Item::Values {
                start: lo,
                end: hi,
                step: 1,
            }],
            text: "*".into(),
            describe_text: "*".into(),
        });
    }
    let context = |message: String| format!("{} field {raw:?}: {message}", kind.name());
    let mut field = Field {
        star: false,
        stepped: false,
        items: Vec::new(),
        text: String::new(),
        describe_text: String::new(),
    };
    let mut texts = Vec::new();
    for part in upper.split(',') {
        let (item, text, stepped) = parse_item(kind, part, job_id).map_err(context)?;
        texts.push(text);
        field.items.push(item);
        field.stepped |= stepped;
    }
    field.text = texts.join(",");
    let time_field = matches!(
        kind,
        FieldKind::Second | FieldKind::Minute | FieldKind::Hour
    );
    let lone = field.items.len() == 1;
    field.describe_text = field
        .items
        .iter()
        .zip(&texts)
        .map(|(item, text)| match *item {
            Item::Values { start, end, step } if step > 1 => {
                if time_field && lone && start == lo && end == hi {
                    format!("*/{step}")
                } else {
                    (start..=end)
                        .step_by(step as usize)
                        .map(|value| value_text(kind, value))
                        .collect::<Vec<_>>()
                        .join(",")
                }
            }
            _ => text.clone(),
        })
        .collect::<Vec<_>>()
        .join(",");
    if field.items.contains(&Item::LastDay) && field.items.contains(&Item::LastWeekday) {
        return Err(context("\"L\" and \"LW\" cannot be combined".into()));
    }
    Ok(field)
}

/// Parses one list element: returns it, its normalised text, and whether it has a step.
fn parse_item(kind: FieldKind, part: &str, job_id: &str) -> Result<(Item, String, bool), String> {
    match part {
        "" => return Err("empty list element".into()),
        "*" => return Err("\"*\" cannot be combined with other values".into()),
        "?" if kind.is_day() => return Err("\"?\" cannot be combined with other values".into()),
        "?" => return Err("\"?\" is only allowed in the day fields".into()),
        _ => {}
    }
    if let Some(rest) = part.strip_prefix('H') {
        return parse_hash(kind, rest, job_id);
    }
    let (lo, hi) = kind.bounds();
    let values = |start: u32, end: u32, step: u32| Item::Values { start, end, step };

    if let Some((base, step)) = part.split_once('/') {
        let step = parse_step(kind, step)?;
        if base == "*" {
            return Ok((values(lo, hi, step), format!("*/{step}"), true));
        }
        let (start, end) = match base.split_once('-') {
            Some((a, b)) => parse_range(kind, a, b)?,
            // `5/15`: from 5 to the end of the field, as in Quartz.
            None => {
                let end = if kind == FieldKind::DayOfWeek { 6 } else { hi };
                (parse_value(kind, base, false)?, end)
            }
        };
        return Ok((
            values(start, end, step),
            format!("{start}-{end}/{step}"),
            true,
        ));
    }

    match kind {
        FieldKind::DayOfMonth => {
            if part == "L" {
                return Ok((Item::LastDay, "L".into(), false));
            }
            if part == "LW" {
                return Ok((Item::LastWeekday, "LW".into(), false));
            }
            if let Some(day) = part.strip_suffix('W') {
                if day.contains('-') {
                    return Err("\"W\" needs a single day, e.g. 15W".into());
                }
                let day = parse_value(kind, day, false)?;
                return Ok((Item::NearestWeekday(day), format!("{day}W"), false));
            }
        }
        FieldKind::DayOfWeek => {
            if let Some((day, nth)) = part.split_once('#') {
                if day.contains('-') {
                    return Err("\"#\" needs a single weekday, e.g. FRI#2".into());
                }
                let day = parse_value(kind, day, false)? % 7;
                if nth == "L" {
                    return Ok((Item::LastWeekdayOf, format!("{day}L"), false));
                }
                return match nth {
                    "1" | "2" | "3" | "4" | "5" => {
                        Ok((Item::NthWeekday, format!("{day}#{nth}"), false))
                    }
                    _ => Err(format!(
                        "the occurrence after \"#\" must be 1 to 5 or L, not {nth:?}"
                    )),
                };
            }
            if let Some(day) = part.strip_suffix('L') {
                if day.is_empty() || day.contains('-') {
                    return Err(
                        "\"L\" in the day of week needs a single weekday before it, e.g. 5L \
                         (the last Friday of the month)"
                            .into(),
                    );
                }
                let day = parse_value(kind, day, false)? % 7;
                return Ok((Item::LastWeekdayOf, format!("{day}L"), false));
            }
        }
        _ => {}
    }

    if let Some((a, b)) = part.split_once('-') {
        let (start, end) = parse_range(kind, a, b)?;
        return Ok((values(start, end, 1), format!("{start}-{end}"), false));
    }
    let value = parse_value(kind, part, false)?;
    Ok((values(value, value, 1), value_text(kind, value), false))
}

fn value_text(kind: FieldKind, value: u32) -> String {
    if kind == FieldKind::DayOfWeek {
        (value % 7).to_string()
    } else {
        value.to_string()
    }
}

/// `H`, `H/step`, `H(a-b)`, `H(a-b)/step`: a value derived from the job id.
fn parse_hash(kind: FieldKind, rest: &str, job_id: &str) -> Result<(Item, String, bool), String> {
    let syntax = || format!("invalid \"H{rest}\" (use H, H/step, H(a-b) or H(a-b)/step)");
    let (range, step) = match rest.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(kind, step)?)),
        None => (rest, None),
    };
    let (lo, hi) = if range.is_empty() {
        kind.hash_bounds()
    } else {
        let inner = range
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(syntax)?;
        let (a, b) = inner.split_once('-').ok_or_else(syntax)?;
        parse_range(kind, a, b)?
    };
    let span = hi - lo + 1;
    let hash = hash_for(job_id, kind);
    match step {
        None => {
            let value = lo + pick(hash, span);
            Ok((
                Item::Values {
                    start: value,
                    end: value,
                    step: 1,
                },
                value_text(kind, value),
                false,
            ))
        }
        Some(step) => {
            let start = lo + pick(hash, step.min(span));
            let text = if start == hi {
                value_text(kind, start)
            } else {
                format!("{start}-{hi}/{step}")
            };
            Ok((
                Item::Values {
                    start,
                    end: hi,
                    step,
                },
                text,
                true,
            ))
        }
    }
}

/// `hash mod n`, for `n >= 1`.
fn pick(hash: u64, n: u32) -> u32 {
    u32::try_from(hash % u64::from(n.max(1))).unwrap_or(0)
}

/// The stable hash behind `H`: SHA-256 of the job id and the field. It must never change, or
/// every `H` job would move.
fn hash_for(job_id: &str, kind: FieldKind) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"cronhook-H\0");
    hasher.update(job_id.as_bytes());
    hasher.update([0, kind as u8]);
    let digest = hasher.finalize();
    let mut bytes = [0_u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

fn parse_range(kind: FieldKind, a: &str, b: &str) -> Result<(u32, u32), String> {
    let start = parse_value(kind, a, false)?;
    let end = parse_value(kind, b, true)?;
    if start > end {
        return Err(format!(
            "the range {a}-{b} runs backwards (its start is after its end)"
        ));
    }
    Ok((start, end))
}

fn parse_number(text: &str) -> Option<Result<u64, ()>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = text.trim_start_matches('0');
    if digits.len() > 9 {
        return Some(Err(()));
    }
    Some(Ok(digits.parse().unwrap_or(0)))
}

/// A number or (month and day-of-week fields) a three-letter name. As the end of a day-of-week
/// range, SUN is 7.
fn parse_value(kind: FieldKind, token: &str, range_end: bool) -> Result<u32, String> {
    let (lo, hi) = kind.bounds();
    if token.is_empty() {
        return Err("a value is missing".into());
    }
    match parse_number(token) {
        Some(Ok(value)) if (u64::from(lo)..=u64::from(hi)).contains(&value) => {
            return Ok(u32::try_from(value).unwrap_or(0));
        }
        Some(_) => return Err(format!("{token} is out of range {lo}-{hi}")),
        None => {}
    }
    let names = kind.names();
    match names.iter().position(|name| *name == token) {
        Some(0) if kind == FieldKind::DayOfWeek && range_end => Ok(7),
        Some(index) => {
            let index = u32::try_from(index).unwrap_or(0);
            Ok(if kind == FieldKind::Month {
                index + 1
            } else {
                index
            })
        }
        None if names.is_empty() => Err(format!("{token:?} is not a number")),
        None => Err(format!("unknown name {token:?}")),
    }
}

fn parse_step(kind: FieldKind, text: &str) -> Result<u32, String> {
    let max = kind.max_step();
    match parse_number(text) {
        None if text.is_empty() => Err("a step is missing after \"/\"".into()),
        None => Err(format!("the step {text:?} is not a number")),
        Some(Ok(0)) => Err("the step must be at least 1".into()),
        Some(Ok(step)) if step <= u64::from(max) => Ok(u32::try_from(step).unwrap_or(1)),
        Some(_) => Err(format!(
            "the step {text} is larger than the field ({max} values)"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Descriptions

fn describe_fields(fields: &[Field; 6]) -> String {
    let [seconds, minutes, hours, days, months, weekdays] = fields;
    let time = describe_time(seconds, minutes, hours);
    let day = describe_days(days, months, weekdays);
    if !day.is_empty() {
        format!("{time}, {day}")
    } else if !hours.star && !hours.stepped && time.starts_with("At ") {
        format!("{time}, every day")
    } else {
        time
    }
}

fn croner_describe(pattern: &str) -> Option<String> {
    PARSED_PATTERNS.describe(pattern)
}

/// Every croner pattern this process parsed, shared by the schedules that use it.
static PARSED_PATTERNS: LazyLock<ParsedPatterns> =
    LazyLock::new(|| ParsedPatterns::new(PARSED_PATTERNS_CAPACITY));

/// The most patterns [`PARSED_PATTERNS`] keeps (~5 MB), and the most descriptions. When full,
/// the patterns not used for a minute make room for new ones, so jobs churning through distinct
/// expressions (`H` gives each job its own) cost parsing, never memory.
const PARSED_PATTERNS_CAPACITY: usize = 1_000;
/// The least time between two sweeps of a full cache of patterns or descriptions.
const PARSED_PATTERNS_SWEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// croner patterns parsed once per distinct text (and seconds rule), then shared.
///
/// croner fills its year field (years 1 to 5 000) value by value on every parse, with years
/// disallowed too: ~60 % of the ~260 k instructions a parse costs, and a 5 KB table in every
/// copy. Validating, compiling and describing a job parsed its expression again each time, and
/// each compiled schedule the scheduler keeps held its own copy; jobs mostly share a few
/// expressions. Refusals are not kept.
///
/// croner's descriptions are kept the same way: describing `* * * * * *` cost ~250 k
/// instructions, more than half of what the API spent creating a job, and every job returned
/// by the API is described.
struct ParsedPatterns {
    /// By whether seconds are required (index 1) or optional (index 0), then by text; half the
    /// capacity each.
    parsed: std::sync::Mutex<[BoundedCache<String, Arc<Cron>>; 2]>,
    /// croner's English for patterns with seconds required, by text.
    described: std::sync::Mutex<BoundedCache<String, String>>,
}

impl ParsedPatterns {
    fn new(capacity: usize) -> Self {
        let half = || BoundedCache::new(capacity.div_ceil(2), PARSED_PATTERNS_SWEEP);
        Self {
            parsed: std::sync::Mutex::new([half(), half()]),
            described: std::sync::Mutex::new(BoundedCache::new(capacity, PARSED_PATTERNS_SWEEP)),
        }
    }

    /// croner's description of `pattern` (seconds required), without its final period; `None`
    /// when croner refuses the pattern.
    fn describe(&self, pattern: &str) -> Option<String> {
        if let Some(text) = lock(&self.described).get(pattern) {
            return Some(text.clone());
        }
        let cron = self.parse(pattern, Seconds::Required).ok()?;
        // Described outside the lock, as a parse is.
        let text = cron.describe().trim_end_matches('.').to_owned();
        lock(&self.described).insert(pattern.to_owned(), text.clone(), 1, Instant::now());
        Some(text)
    }

    /// `pattern` parsed with years disallowed and `seconds` as given.
    fn parse(
        &self,
        pattern: &str,
        seconds: Seconds,
    ) -> Result<Arc<Cron>, croner::errors::CronError> {
        let rule = usize::from(matches!(seconds, Seconds::Required));
        if let Some(cron) = lock(&self.parsed)[rule].get(pattern) {
            return Ok(Arc::clone(cron));
        }
        // Parsed outside the lock: another thread's hit does not wait for it.
        let cron = Arc::new(
            CronParser::builder()
                .seconds(seconds)
                .year(Year::Disallowed)
                .build()
                .parse(pattern)?,
        );
        lock(&self.parsed)[rule].insert(pattern.to_owned(), Arc::clone(&cron), 1, Instant::now());
        Ok(cron)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.parsed).iter().map(BoundedCache::len).sum()
    }
}

/// A cache's lock; a panic elsewhere leaves the cache usable (entries are inserted whole).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn describe_time(seconds: &Field, minutes: &Field, hours: &Field) -> String {
    // "At 09:00 and 17:00" reads better than croner's "At minute 0, of hour 9 and 17".
    if let (Some(second), Some(minute), Some(hour_values)) =
        (seconds.single(), minutes.single(), hours.plain_values())
        && (2..=6).contains(&hour_values.len())
    {
        let times: Vec<String> = hour_values
            .iter()
            .map(|hour| {
                if second == 0 {
                    format!("{hour:02}:{minute:02}")
                } else {
                    format!("{hour:02}:{minute:02}:{second:02}")
                }
            })
            .collect();
        return format!("At {}", join_and(&times));
    }
    let pattern = format!(
        "{} {} {} * * *",
        seconds.describe_text, minutes.describe_text, hours.describe_text
    );
    let Some(text) = croner_describe(&pattern) else {
        return format!("On cron schedule \"{pattern}\"");
    };
    let text = match text.strip_prefix("At every ") {
        Some(rest) => format!("Every {rest}"),
        None => text,
    };
    text.replace(" past of every ", " of every ")
        .replace(", of every ", " of every ")
        .replace(", of hour ", " past hour ")
}

fn describe_days(days: &Field, months: &Field, weekdays: &Field) -> String {
    if days.star && months.star && weekdays.star {
        return String::new();
    }
    let pattern = format!(
        "0 0 0 {} {} {}",
        days.describe_text, months.describe_text, weekdays.describe_text
    );
    let Some(text) = croner_describe(&pattern) else {
        return format!(
            "on days \"{} {} {}\"",
            days.text, months.text, weekdays.text
        );
    };
    let text = text.strip_prefix("At 00:00").unwrap_or(&text);
    let mut text = text.trim_start_matches(", ").to_owned();
    if days.items.contains(&Item::LastWeekday) {
        // croner describes LW as the last day of the month.
        text = text.replace("the last day of the month", "the last weekday of the month");
    }
    text = collapse_runs(&text, &WEEKDAYS_EN);
    text = collapse_runs(&text, &MONTHS_EN);
    if let Some(rest) = text.strip_prefix("on ")
        && WEEKDAYS_EN.iter().any(|day| rest.starts_with(day))
    {
        text = rest.to_owned();
    }
    text
}

/// "A and B", "A, B, and C": croner's list style.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [front @ .., last] => format!("{}, and {last}", front.join(", ")),
    }
}

/// Rewrites runs of three or more consecutive names in croner's lists as "A through B".
fn collapse_runs(text: &str, names: &[&str]) -> String {
    let mut out = text.to_owned();
    for len in (3..=names.len()).rev() {
        for run in names.windows(len) {
            let (first, last) = (run[0], run[len - 1]);
            let through = format!("{first} through {last}");
            let closing = format!("{}, and {last}", run[..len - 1].join(", "));
            out = out.replace(&closing, &through);
            let open = format!("{}, ", run.join(", "));
            out = out.replace(&open, &format!("{through}, "));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use std::time::Instant;

    use chrono::NaiveDate;

    use proptest::prelude::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test instant")
            .to_utc()
    }

    fn anchor() -> DateTime<Utc> {
        utc("2026-01-01T00:00:00Z")
    }

    fn cron_in(expr: &str, tz: &str) -> Result<CompiledSchedule, ScheduleError> {
        CompiledSchedule::compile(
            &ScheduleSpec::Cron {
                cron: expr.into(),
                timezone: tz.into(),
            },
            "job-1",
            anchor(),
        )
    }

    #[test]
    fn a_pattern_is_parsed_once_and_shared() {
        let patterns = ParsedPatterns::new(2);
        let first = patterns
            .parse("0 */5 * * * *", Seconds::Optional)
            .expect("parses");
        let again = patterns
            .parse("0 */5 * * * *", Seconds::Optional)
            .expect("parses");
        assert!(Arc::ptr_eq(&first, &again), "the same text is parsed once");
        assert_eq!(patterns.len(), 1);
        let required = patterns
            .parse("0 */5 * * * *", Seconds::Required)
            .expect("parses");
        assert!(
            !Arc::ptr_eq(&first, &required),
            "the seconds rule is part of the key"
        );
        assert_eq!(patterns.len(), 2);
        assert!(patterns.parse("61 * * * * *", Seconds::Required).is_err());
        assert!(
            patterns.parse("61 * * * * *", Seconds::Required).is_err(),
            "a refusal is refused each time"
        );
        assert_eq!(patterns.len(), 2, "and never kept");
        // Full (one per seconds rule) of patterns in use: a newcomer is parsed, not kept.
        let other = patterns
            .parse("0 0 * * * *", Seconds::Optional)
            .expect("parses");
        assert_eq!(patterns.len(), 2);
        assert!(!Arc::ptr_eq(
            &other,
            &patterns
                .parse("0 0 * * * *", Seconds::Optional)
                .expect("parses")
        ));
        assert!(Arc::ptr_eq(
            &first,
            &patterns
                .parse("0 */5 * * * *", Seconds::Optional)
                .expect("parses")
        ));
    }

    #[test]
    fn a_description_is_made_once_and_kept_while_it_is_read() {
        let patterns = ParsedPatterns::new(2);
        let fresh = patterns.describe("*/5 * * * * *").expect("described");
        assert!(!fresh.ends_with('.'), "{fresh}");
        assert_eq!(lock(&patterns.described).len(), 1);
        // Read back from the cache: the same text, and nothing more is stored.
        assert_eq!(patterns.describe("*/5 * * * * *"), Some(fresh));
        assert_eq!(lock(&patterns.described).len(), 1);
        assert_eq!(patterns.describe("61 * * * * *"), None, "a refusal");
        assert_eq!(lock(&patterns.described).len(), 1, "is never kept");
        patterns.describe("0 * * * * *").expect("described");
        assert_eq!(lock(&patterns.described).len(), 2);
        // Full of descriptions in use: a newcomer is described, not kept.
        patterns.describe("0 * * * * *").expect("described");
        patterns.describe("0 0 * * * *").expect("described");
        assert_eq!(lock(&patterns.described).len(), 2);
        assert!(lock(&patterns.described).get("0 0 * * * *").is_none());
        assert!(lock(&patterns.described).get("*/5 * * * * *").is_some());
        // The cached text is croner's own.
        let cron = patterns
            .parse("0 0 * * * *", Seconds::Required)
            .expect("parses");
        assert_eq!(
            patterns.describe("0 0 * * * *"),
            Some(cron.describe().trim_end_matches('.').to_owned())
        );
    }

    #[test]
    fn schedules_of_one_expression_share_its_parse_and_agree() {
        let berlin = cron_in("*/7 9-17 * * 1-5", "Europe/Berlin").expect("compiles");
        let again = cron_in("*/7 9-17 * * 1-5", "Europe/Berlin").expect("compiles");
        let (Kind::Cron(berlin_cron), Kind::Cron(again_cron)) = (&berlin.kind, &again.kind) else {
            panic!("cron schedules");
        };
        assert!(Arc::ptr_eq(&berlin_cron.cron, &again_cron.cron));
        let after = utc("2026-03-27T16:55:00Z");
        assert_eq!(berlin.upcoming(after, 20), again.upcoming(after, 20));
        assert_eq!(
            berlin.next_after(utc("2026-03-02T07:00:00Z")),
            Some(utc("2026-03-02T08:00:00Z")),
            "09:00 in Berlin (UTC+1), from the shared parse"
        );
    }

    fn compile(expr: &str, tz: &str) -> CompiledSchedule {
        cron_in(expr, tz).unwrap_or_else(|e| panic!("{expr} in {tz}: {e}"))
    }

    fn fires(schedule: &CompiledSchedule, from: &str, until: &str) -> Vec<String> {
        let until = utc(until);
        schedule
            .upcoming(utc(from), 500)
            .into_iter()
            .take_while(|t| *t < until)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect()
    }

    #[test]
    fn compiled_schedule_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<CompiledSchedule>();
    }

    #[test]
    fn macros() {
        let from = "2026-05-13T10:20:30Z"; // a Wednesday
        let table = [
            ("@yearly", "2027-01-01T00:00:00Z"),
            ("@annually", "2027-01-01T00:00:00Z"),
            ("@monthly", "2026-06-01T00:00:00Z"),
            ("@weekly", "2026-05-17T00:00:00Z"),
            ("@daily", "2026-05-14T00:00:00Z"),
            ("@midnight", "2026-05-14T00:00:00Z"),
            ("@hourly", "2026-05-13T11:00:00Z"),
            ("@HOURLY", "2026-05-13T11:00:00Z"),
        ];
        for (expr, expected) in table {
            let schedule = compile(expr, "UTC");
            assert_eq!(
                schedule.next_after(utc(from)),
                Some(utc(expected)),
                "{expr}"
            );
        }
        assert!(cron_in("@fortnightly", "UTC").is_err());
        assert_eq!(
            compile("@daily", "Europe/Berlin").next_after(utc(from)),
            Some(utc("2026-05-13T22:00:00Z"))
        );
    }

    #[test]
    fn every_is_anchored_at_creation() {
        let anchor = utc("2026-01-01T00:00:10Z");
        let every = |text: &str| {
            CompiledSchedule::compile(
                &ScheduleSpec::Cron {
                    cron: text.into(),
                    timezone: "Europe/Berlin".into(),
                },
                "job",
                anchor,
            )
            .expect(text)
        };
        let s = every("@every 90s");
        assert_eq!(s.timezone(), Tz::UTC);
        assert!(s.follows_elapsed_time());
        // Before the anchor: the first fire is anchor + 1 interval.
        assert_eq!(
            s.next_after(utc("2025-06-01T00:00:00Z")),
            Some(utc("2026-01-01T00:01:40Z"))
        );
        assert_eq!(s.next_after(anchor), Some(utc("2026-01-01T00:01:40Z")));
        // Exactly on a fire: the next one.
        assert_eq!(
            s.next_after(utc("2026-01-01T00:01:40Z")),
            Some(utc("2026-01-01T00:03:10Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-01-01T00:01:39.999Z")),
            Some(utc("2026-01-01T00:01:40Z"))
        );
        assert_eq!(
            s.upcoming(utc("2026-01-01T01:00:00Z"), 2),
            vec![utc("2026-01-01T01:00:10Z"), utc("2026-01-01T01:01:40Z")]
        );
        assert_eq!(
            every("@every 5m").next_after(utc("2026-01-01T00:07:00Z")),
            Some(utc("2026-01-01T00:10:10Z"))
        );
        assert_eq!(
            every("@EVERY 1h30m").next_after(utc("2026-01-01T02:00:00Z")),
            Some(utc("2026-01-01T03:00:10Z"))
        );
        assert_eq!(every("@every 90s").describe(), "Every 90 seconds");
        assert_eq!(every("@every 5m").describe(), "Every 5 minutes");
        assert_eq!(every("@every 1h30m").describe(), "Every 1 hour 30 minutes");
        assert_eq!(every("@every 1h").describe(), "Every hour");
        assert_eq!(every("@every 1s").describe(), "Every second");
        assert_eq!(every("@every 2d").describe(), "Every 2 days");
        // Beyond year 9999: none.
        assert_eq!(every("@every 1s").next_after(max_instant()), None);

        for bad in [
            "@every",
            "@every 0s",
            "@every 500ms",
            "@every 1.5s",
            "@every soon",
            "@every -5m",
            "@everyday",
            "@every 11y",
        ] {
            let error = cron_in(bad, "UTC").expect_err(bad);
            assert_eq!(error.field, "schedule.cron", "{bad}");
        }
    }

    #[test]
    fn h_is_stable_and_spread() {
        let minute_of = |id: &str| {
            let s = CompiledSchedule::compile(
                &ScheduleSpec::Cron {
                    cron: "H * * * *".into(),
                    timezone: "UTC".into(),
                },
                id,
                anchor(),
            )
            .expect("H");
            s.next_after(utc("2026-01-01T00:00:00Z"))
                .expect("fires")
                .minute()
        };
        use chrono::Timelike;
        assert_eq!(minute_of("alpha"), minute_of("alpha"));
        let minutes: std::collections::BTreeSet<u32> =
            (0..1000).map(|i| minute_of(&format!("job-{i}"))).collect();
        assert!(
            minutes.len() >= 40,
            "only {} distinct minutes",
            minutes.len()
        );

        let resolved = |expr: &str, id: &str| {
            CompiledSchedule::compile(
                &ScheduleSpec::Cron {
                    cron: expr.into(),
                    timezone: "UTC".into(),
                },
                id,
                anchor(),
            )
            .expect(expr)
            .resolved_expression()
            .expect("cron")
            .to_owned()
        };
        // Different fields draw different values; the same id always draws the same.
        let hh: Vec<String> = (0..20)
            .map(|i| resolved("H H * * *", &i.to_string()))
            .collect();
        assert!(hh.iter().any(|e| {
            let f: Vec<&str> = e.split(' ').collect();
            f[0] != f[1]
        }));
        assert_eq!(resolved("H H * * *", "x"), resolved("h h * * *", "x"));
        for i in 0..200 {
            let id = format!("id{i}");
            let e = resolved("H/15 H(9-17) H * H", &id);
            let f: Vec<&str> = e.split(' ').collect();
            let start: u32 = f[0].split('-').next().unwrap().parse().unwrap();
            assert!(start < 15, "{e}");
            assert!(
                f[0] == start.to_string() || f[0] == format!("{start}-59/15"),
                "{e}"
            );
            let hour: u32 = f[1].parse().unwrap();
            assert!((9..=17).contains(&hour), "{e}");
            let day: u32 = f[2].parse().unwrap();
            assert!((1..=28).contains(&day), "{e}");
            let weekday: u32 = f[4].parse().unwrap();
            assert!(weekday <= 6, "{e}");
        }
        // H/15 fires four times an hour, 15 minutes apart.
        let s = compile("H/15 * * * *", "UTC");
        let times = s.upcoming(utc("2026-01-01T00:00:00Z"), 4);
        assert_eq!(times.len(), 4);
        assert!(
            times
                .windows(2)
                .all(|w| w[1] - w[0] == TimeDelta::minutes(15))
        );
        assert!(cron_in("H(30-10) * * * *", "UTC").is_err());
        assert!(cron_in("H(0-60) * * * *", "UTC").is_err());
        assert!(cron_in("H/0 * * * *", "UTC").is_err());
        assert!(cron_in("Hx * * * *", "UTC").is_err());
    }

    #[test]
    fn malformed_expressions_are_refused() {
        let table = [
            "",
            "   ",
            "1,,2 * * * *",
            ",1 * * * *",
            "1, * * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "* * * *",
            "* * * * * * *",
            "* * * * * * * *",
            "99999999999999999999 * * * *",
            "4294967296 * * * *",
            "*/99999999999 * * * *",
            "* * * * FOO",
            "* * * FOO *",
            "* * * * MONDAY",
            "* * * MON *",
            "* * * * JAN",
            "0 0 L * * ",
            "L * * * *",
            "0 0 * * L",
            "0 0 * * 5#6",
            "0 0 * * 5#0",
            "0 0 1-5#2 * *",
            "0 0 * * 1-5#2",
            "0 0 15W-3 * *",
            "0 0 L,LW * *",
            "1-* * * * *",
            "*,5 * * * *",
            "? * * * *",
            "5- * * * *",
            "-5 * * * *",
            "*/ * * * *",
            "1/x * * * *",
            "*/61 * * * *",
            "0 0 * * +MON",
            "@reboot",
            "0 0 0 0 0 0",
            "a b c d e",
        ];
        for expr in table {
            match cron_in(expr, "UTC") {
                Err(error) => {
                    assert_eq!(error.field, "schedule.cron", "{expr:?}");
                    assert!(!error.message.is_empty());
                }
                Ok(s) => {
                    // "0 0 L * * " is valid (trailing space): the only Ok in the table.
                    assert_eq!(expr, "0 0 L * * ", "{expr:?} was accepted as {s:?}");
                }
            }
        }
        let message = |expr: &str| cron_in(expr, "UTC").expect_err(expr).message;
        assert!(message("1,,2 * * * *").contains("empty"));
        assert!(message("*/0 * * * *").contains("at least 1"));
        assert!(message("5-1 * * * *").contains("backwards"));
        assert!(message("60 * * * *").contains("out of range"));
        assert!(message("* 24 * * *").contains("hour"));
        assert!(message("* * * *").contains("found 4"));
        assert!(message("* * * * * * *").contains("found 7"));
        assert!(message("* * * * FOO").contains("unknown name"));
        assert!(message("").contains("empty"));
        assert!(message("0 0 30 2 *").contains("never"));
    }

    #[test]
    fn accepted_syntax() {
        let from = utc("2026-05-13T10:20:30Z"); // Wednesday
        let table = [
            ("0 9 * * mon-fri", "2026-05-14T09:00:00Z"),
            ("0 9 * JAN-MAR,jun *", "2026-06-01T09:00:00Z"),
            ("0 9 * * SAT-SUN", "2026-05-16T09:00:00Z"),
            ("0 9 * * 7", "2026-05-17T09:00:00Z"),
            ("0 9 ? * 5", "2026-05-15T09:00:00Z"),
            ("0 9 L * ?", "2026-05-31T09:00:00Z"),
            ("0 9 LW * *", "2026-05-29T09:00:00Z"),
            ("0 9 16W * *", "2026-05-15T09:00:00Z"), // 16th is a Saturday
            ("0 9 * * 5#3", "2026-05-15T09:00:00Z"),
            ("0 9 * * FRI#L", "2026-05-29T09:00:00Z"),
            ("0 9 * * 5L", "2026-05-29T09:00:00Z"),
            ("0 9 1,15 * 1", "2026-05-15T09:00:00Z"), // OR: the 15th (Fri) before Monday 18th
            ("5/20 * * * *", "2026-05-13T10:25:00Z"),
            ("10-40/15 * * * *", "2026-05-13T10:25:00Z"),
            ("0 0 1 */3 *", "2026-07-01T00:00:00Z"),
            ("0 */6 * * *", "2026-05-13T12:00:00Z"),
            ("00 09 * * *", "2026-05-14T09:00:00Z"),
            ("0 12 * * *  ", "2026-05-13T12:00:00Z"),
            ("  0\t12 * * *", "2026-05-13T12:00:00Z"),
            ("0 0 31 4,6,9,11,12 *", "2026-12-31T00:00:00Z"),
            ("0 0 29 2 *", "2028-02-29T00:00:00Z"),
            ("0 0 30 2 1", "2027-02-01T00:00:00Z"), // OR: any Monday in February
        ];
        for (expr, expected) in table {
            let s = compile(expr, "UTC");
            assert_eq!(s.next_after(from), Some(utc(expected)), "{expr}");
        }
    }

    #[test]
    fn seconds_fields() {
        let every_second = compile("* * * * * *", "UTC");
        assert_eq!(
            every_second.next_after(utc("2026-05-13T10:20:30Z")),
            Some(utc("2026-05-13T10:20:31Z"))
        );
        assert_eq!(
            every_second.next_after(utc("2026-05-13T10:20:30.999Z")),
            Some(utc("2026-05-13T10:20:31Z"))
        );
        assert_eq!(
            every_second.next_after(utc("2026-12-31T23:59:59Z")),
            Some(utc("2027-01-01T00:00:00Z"))
        );
        let every_other = compile("*/2 * * * * *", "Europe/Berlin");
        assert_eq!(
            every_other.upcoming(utc("2026-05-13T10:20:30Z"), 3),
            vec![
                utc("2026-05-13T10:20:32Z"),
                utc("2026-05-13T10:20:34Z"),
                utc("2026-05-13T10:20:36Z")
            ]
        );
        assert_eq!(
            compile("30 15 10 * * *", "UTC").next_after(utc("2026-05-13T10:20:30Z")),
            Some(utc("2026-05-14T10:15:30Z"))
        );

        // Cheap enough to call once per fire (generous bound: debug builds, shared machines).
        for tz in ["UTC", "Europe/Berlin"] {
            let s = compile("* * * * * *", tz);
            let mut t = utc("2026-10-25T00:00:00Z");
            let started = Instant::now();
            for _ in 0..20_000 {
                let next = s.next_after(t).expect("fires");
                assert_eq!(next - t, TimeDelta::seconds(1));
                t = next;
            }
            let per_call = started.elapsed() / 20_000;
            assert!(per_call.as_micros() < 200, "{tz}: {per_call:?} per call");
        }
    }

    #[test]
    fn unknown_timezone_is_refused() {
        for tz in ["Mars/Olympus", "", "utc+1", "Europe/Berlinn"] {
            let error = cron_in("0 3 * * *", tz).expect_err(tz);
            assert_eq!(error.field, "schedule.timezone", "{tz:?}");
        }
        let error = cron_in("@every 5m", "Nowhere").expect_err("tz");
        assert_eq!(error.field, "schedule.timezone");
        assert_eq!(
            compile("0 3 * * *", "America/New_York").timezone(),
            chrono_tz::America::New_York
        );
    }

    #[test]
    fn never_firing_expressions_are_refused_quickly() {
        for expr in [
            "0 0 30 2 *",
            "0 0 31 2 *",
            "0 0 31 4,6,9,11 *",
            "0 0 30,31 2 ?",
            "0 0 30W 2 *",
            "0 0 31 */2 *", // months 1,3,5,...: January has 31 days, so this one fires
            "0 0 31 2-4/2 *",
            "0 0 0 31 FEB *",
            "0 0 H(30-31) 2 *",
        ] {
            let started = Instant::now();
            let result = cron_in(expr, "Europe/Berlin");
            let elapsed = started.elapsed();
            assert!(elapsed.as_millis() < 50, "{expr} took {elapsed:?}");
            if expr == "0 0 31 */2 *" {
                assert!(result.is_ok(), "{expr}");
                continue;
            }
            let error = result.expect_err(expr);
            assert_eq!(error.field, "schedule.cron");
            assert!(error.message.contains("never"), "{expr}: {}", error.message);
        }
        // L, LW, weekdays and OR keep an expression alive.
        for expr in [
            "0 0 L 2 *",
            "0 0 LW 2 *",
            "0 0 31 2 1",
            "0 0 30 2 5#5",
            "0 0 * 2 1#5",
            "0 0 29W 2 *",
        ] {
            let s = compile(expr, "UTC");
            assert!(s.next_after(anchor()).is_some(), "{expr}");
        }
    }

    #[test]
    fn rare_and_far_dates() {
        let leap = compile("0 0 29 2 *", "UTC");
        assert_eq!(
            leap.next_after(utc("2097-03-01T00:00:00Z")),
            Some(utc("2104-02-29T00:00:00Z"))
        );
        // Beyond croner's year-5000 search limit.
        assert_eq!(
            compile("0 0 1 1 *", "UTC").next_after(utc("6001-06-01T00:00:00Z")),
            Some(utc("6002-01-01T00:00:00Z"))
        );
        assert_eq!(
            leap.next_after(utc("9997-03-01T00:00:00Z")),
            None, // 9998 and 9999 are not leap years, 10000 is beyond the limit
        );
        assert_eq!(
            compile("0 0 1 1 *", "UTC").next_after(utc("9998-06-01T00:00:00Z")),
            Some(utc("9999-01-01T00:00:00Z"))
        );
        assert_eq!(
            compile("* * * * *", "UTC").next_after(utc("9999-12-31T23:59:00Z")),
            None
        );
        assert_eq!(
            compile("* * * * * *", "UTC").next_after(utc("9999-12-31T23:59:58Z")),
            Some(utc("9999-12-31T23:59:59Z"))
        );
        assert_eq!(
            compile("* * * * * *", "UTC").next_after(DateTime::<Utc>::MAX_UTC),
            None
        );
        assert_eq!(
            compile("0 0 1 1 *", "America/New_York").next_after(DateTime::<Utc>::MIN_UTC),
            Some(utc("0001-01-01T04:56:02Z")) // New York's local mean time
        );
        // Fifth Monday of February: leap years whose February starts on a Monday.
        assert_eq!(
            compile("0 0 * 2 1#5", "UTC").next_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2044-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn one_off() {
        let at = utc("2026-12-01T10:00:00Z");
        let s = CompiledSchedule::compile(&ScheduleSpec::At { at }, "job", anchor()).expect("at");
        assert!(s.is_one_off());
        assert!(!s.follows_elapsed_time());
        assert_eq!(s.timezone(), Tz::UTC);
        assert_eq!(s.next_after(utc("2026-11-30T00:00:00Z")), Some(at));
        assert_eq!(s.next_after(utc("2026-12-01T09:59:59.999Z")), Some(at));
        assert_eq!(s.next_after(at), None);
        assert_eq!(s.upcoming(utc("2026-01-01T00:00:00Z"), 5), vec![at]);
        assert_eq!(s.describe(), "Once, at 2026-12-01 10:00:00 UTC");
        assert!(!compile("0 3 * * *", "UTC").is_one_off());
    }

    #[test]
    fn serde_forms() {
        let spec: ScheduleSpec = serde_json::from_str(r#"{"cron": "0 3 * * *"}"#).expect("cron");
        assert_eq!(
            spec,
            ScheduleSpec::Cron {
                cron: "0 3 * * *".into(),
                timezone: "UTC".into()
            }
        );
        let spec: ScheduleSpec =
            serde_json::from_str(r#"{"cron": "@daily", "timezone": "Europe/Berlin"}"#)
                .expect("cron");
        assert_eq!(
            serde_json::to_value(&spec).expect("json"),
            serde_json::json!({"cron": "@daily", "timezone": "Europe/Berlin"})
        );
        let spec: ScheduleSpec =
            serde_json::from_str(r#"{"at": "2026-12-01T11:00:00+01:00"}"#).expect("at");
        assert_eq!(
            spec,
            ScheduleSpec::At {
                at: utc("2026-12-01T10:00:00Z")
            }
        );
        assert_eq!(
            serde_json::to_value(&spec).expect("json"),
            serde_json::json!({"at": "2026-12-01T10:00:00Z"})
        );
        for bad in [
            r#"{"cron": "0 3 * * *", "tz": "UTC"}"#,
            r#"{"cron": "0 3 * * *", "at": "2026-12-01T10:00:00Z"}"#,
            r#"{"at": "2026-12-01T10:00:00Z", "timezone": "UTC"}"#,
            r#"{"at": "tomorrow"}"#,
            r#"{}"#,
            r#""0 3 * * *""#,
        ] {
            assert!(serde_json::from_str::<ScheduleSpec>(bad).is_err(), "{bad}");
        }
    }

    /// The description is worked out when asked for, from the expression as written and the
    /// job's seed: it names the minute `H` drew for this job, the one the schedule fires at.
    #[test]
    fn descriptions_name_what_h_drew_for_the_job() {
        for job_id in ["job_a", "job_b", "job_c"] {
            let schedule = CompiledSchedule::compile(
                &ScheduleSpec::Cron {
                    cron: "H 3 * * *".into(),
                    timezone: "Europe/Berlin".into(),
                },
                job_id,
                anchor(),
            )
            .expect("compiles");
            let resolved = schedule.resolved_expression().expect("a cron expression");
            let fields: Vec<&str> = resolved.split_ascii_whitespace().collect();
            // Five fields, or six with seconds first.
            let minute: u32 = fields[fields.len() - 5]
                .parse()
                .unwrap_or_else(|_| panic!("a minute in `{resolved}`"));
            assert_eq!(
                schedule.describe(),
                format!("At 03:{minute:02}, every day (Europe/Berlin)"),
                "{job_id}: {resolved}"
            );
        }
    }

    #[test]
    fn descriptions() {
        let table = [
            ("0 3 * * *", "UTC", "At 03:00, every day"),
            ("0 3 * * 1-5", "UTC", "At 03:00, Monday through Friday"),
            (
                "0 3 * * MON-FRI",
                "Europe/Berlin",
                "At 03:00, Monday through Friday (Europe/Berlin)",
            ),
            (
                "0 3 * * *",
                "Europe/Berlin",
                "At 03:00, every day (Europe/Berlin)",
            ),
            ("@daily", "UTC", "At 00:00, every day"),
            ("@weekly", "UTC", "At 00:00, Sunday"),
            ("@monthly", "UTC", "At 00:00, on day 1"),
            ("@yearly", "UTC", "At 00:00, on day 1, in January"),
            ("@hourly", "UTC", "At minute 0 past every hour"),
            ("*/15 * * * *", "UTC", "Every 15 minutes"),
            ("* * * * *", "UTC", "Every minute"),
            ("* * * * * *", "UTC", "Every second"),
            ("*/2 * * * * *", "UTC", "Every 2 seconds"),
            ("0 9,17 * * *", "UTC", "At 09:00 and 17:00, every day"),
            ("0 */2 * * *", "UTC", "At minute 0 of every 2 hours"),
            (
                "15,45 9-17 * * 1-5",
                "UTC",
                "At minute 15 and 45 past hour 9-17, Monday through Friday",
            ),
            (
                "0 0 * * 1-3,5",
                "UTC",
                "At 00:00, Monday through Wednesday, and Friday",
            ),
            (
                "0 0 1 1-6 *",
                "UTC",
                "At 00:00, on day 1, in January through June",
            ),
            (
                "0 0 LW * *",
                "UTC",
                "At 00:00, on the last weekday of the month",
            ),
            ("0 0 L * *", "UTC", "At 00:00, on the last day of the month"),
            (
                "0 0 * * 5#2",
                "UTC",
                "At 00:00, on the 2nd Friday of the month",
            ),
            ("0 0 1,15 * 1", "UTC", "At 00:00, on day 1 and 15 or Monday"),
            ("30 0 3 * * *", "UTC", "At 03:00:30, every day"),
            (
                "0-30/10 * * * *",
                "UTC",
                "At minute 0, 10, 20, and 30 past every hour",
            ),
            (
                "0 0 1 1-3/2 *",
                "UTC",
                "At 00:00, on day 1, in January and March",
            ),
            (
                "0 0 1 */3 *",
                "UTC",
                "At 00:00, on day 1, in January, April, July, and October",
            ),
            ("0 9 * * SAT-SUN", "UTC", "At 09:00, Sunday and Saturday"),
        ];
        let wrong: Vec<String> = table
            .iter()
            .filter_map(|(expr, tz, expected)| {
                let actual = compile(expr, tz).describe();
                (actual != *expected).then(|| format!("{expr}: {actual:?}, expected {expected:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    // --- Time-zone transitions -------------------------------------------------------------

    #[test]
    fn berlin_fixed_time_across_transitions() {
        let s = compile("30 2 * * *", "Europe/Berlin");
        assert!(!s.follows_elapsed_time());
        // Spring forward: 02:30 does not exist; once, at 03:00 CEST.
        assert_eq!(
            fires(&s, "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z"),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
        // Fall back: 02:30 happens twice; once, at the first (CEST).
        assert_eq!(
            fires(&s, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z"),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        // Restarting from inside either pass never adds a second fire.
        assert_eq!(
            s.next_after(utc("2026-10-25T00:45:00Z")),
            Some(utc("2026-10-26T01:30:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-10-25T01:15:00Z")),
            Some(utc("2026-10-26T01:30:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-03-29T00:59:59Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );

        // The hour is fixed, so a list of minutes in it also fires once per wall clock time
        // (croner alone skips these on the spring-forward day and repeats them in the fall).
        let s = compile("0,30 2 * * *", "Europe/Berlin");
        assert_eq!(
            fires(&s, "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"),
            ["2026-03-29T01:00:00Z"]
        );
        assert_eq!(
            fires(&s, "2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z"),
            ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z"]
        );
        // Several missing times and a real one coincide at the end of the gap: one fire.
        let s = compile("0 2,3 * * *", "Europe/Berlin");
        assert_eq!(
            fires(&s, "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"),
            ["2026-03-29T01:00:00Z"]
        );
    }

    #[test]
    fn berlin_elapsed_time_across_transitions() {
        let s = compile("*/15 * * * *", "Europe/Berlin");
        assert!(s.follows_elapsed_time());
        // Fall back: both passes of 02:00-02:59, 8 fires from 02:00 CEST up to 03:00 CET.
        assert_eq!(
            fires(&s, "2026-10-24T23:59:59Z", "2026-10-25T02:00:00Z"),
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T00:15:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T00:45:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T01:15:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T01:45:00Z",
            ]
        );
        // From the middle of the first pass, the second pass still comes.
        assert_eq!(
            s.next_after(utc("2026-10-25T00:50:00Z")),
            Some(utc("2026-10-25T01:00:00Z"))
        );
        // Spring forward: 02:00-02:59 does not exist and is skipped.
        assert_eq!(
            fires(&s, "2026-03-29T00:30:00Z", "2026-03-29T01:31:00Z"),
            [
                "2026-03-29T00:45:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:15:00Z",
                "2026-03-29T01:30:00Z",
            ]
        );
        let hourly = compile("30 * * * *", "Europe/Berlin");
        assert_eq!(
            fires(&hourly, "2026-10-24T23:00:00Z", "2026-10-25T03:00:00Z"),
            [
                "2026-10-24T23:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T02:30:00Z",
            ]
        );
    }

    #[test]
    fn new_york_across_transitions() {
        let fixed = compile("30 2 * * *", "America/New_York");
        assert_eq!(
            fires(&fixed, "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z"),
            ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
        );
        let fixed = compile("30 1 * * *", "America/New_York");
        assert_eq!(
            fires(&fixed, "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z"),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
        );
        let elapsed = compile("*/15 * * * *", "America/New_York");
        let fall = fires(&elapsed, "2026-11-01T04:59:59Z", "2026-11-01T07:00:00Z");
        assert_eq!(fall.len(), 8, "{fall:?}");
        assert_eq!(fall[0], "2026-11-01T05:00:00Z");
        assert_eq!(fall[7], "2026-11-01T06:45:00Z");
        let spring = fires(&elapsed, "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z");
        assert_eq!(
            spring,
            [
                "2026-03-08T06:45:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:15:00Z"
            ]
        );
    }

    #[test]
    fn sao_paulo_midnight_skipped() {
        // 2018-11-04: clocks jumped from 00:00 to 01:00.
        let s = compile("0 0 * * *", "America/Sao_Paulo");
        let tz = chrono_tz::America::Sao_Paulo;
        let day = NaiveDate::from_ymd_opt(2018, 11, 4).expect("date");
        let fires: Vec<DateTime<Utc>> = s
            .upcoming(utc("2018-11-02T12:00:00Z"), 5)
            .into_iter()
            .filter(|t| t.with_timezone(&tz).date_naive() == day)
            .collect();
        assert_eq!(fires, vec![utc("2018-11-04T03:00:00Z")]); // 01:00 -02:00
        assert_eq!(
            s.upcoming(utc("2018-11-02T12:00:00Z"), 4),
            vec![
                utc("2018-11-03T03:00:00Z"),
                utc("2018-11-04T03:00:00Z"),
                utc("2018-11-05T02:00:00Z"),
                utc("2018-11-06T02:00:00Z"),
            ]
        );
    }

    #[test]
    fn lord_howe_half_hour_shift() {
        let tz = chrono_tz::Australia::Lord_Howe;
        let s = compile("30 1 * * *", "Australia/Lord_Howe");
        // 2026-04-05 02:00 -> 01:30 (01:30-01:59 twice); 2026-10-04 02:00 -> 02:30.
        for (from, days) in [("2026-04-02T00:00:00Z", 6), ("2026-10-01T00:00:00Z", 6)] {
            let all = s.upcoming(utc(from), days);
            let mut dates: Vec<NaiveDate> = all
                .iter()
                .map(|t| t.with_timezone(&tz).date_naive())
                .collect();
            dates.dedup();
            assert_eq!(dates.len(), days, "one fire per local day: {all:?}");
            for t in &all {
                let local = t.with_timezone(&tz);
                assert_eq!(local.format("%H:%M").to_string(), "01:30", "{t}");
            }
        }
        // The repeated 01:30 fires at its first occurrence (+11:00).
        assert!(
            s.upcoming(utc("2026-04-04T00:00:00Z"), 1)
                .contains(&utc("2026-04-04T14:30:00Z"))
        );
        // A fixed time inside the spring gap fires at its end.
        let gap = compile("15 2 * * *", "Australia/Lord_Howe");
        assert_eq!(
            gap.next_after(utc("2026-10-03T12:00:00Z")),
            Some(utc("2026-10-03T15:30:00Z")) // 02:30 +11:00
        );
        let elapsed = compile("*/10 * * * *", "Australia/Lord_Howe");
        let fall = fires(&elapsed, "2026-04-04T14:29:59Z", "2026-04-04T15:30:00Z");
        assert_eq!(fall.len(), 6, "{fall:?}"); // 01:30-01:50 twice
    }

    /// An independent statement of the rules, checked minute by minute: a wall clock time that
    /// matches fires at every instant that shows it (elapsed class) or at the first (fixed
    /// class); a fixed class time inside a gap fires when the gap ends.
    fn reference(
        cron: &Cron,
        tz: Tz,
        elapsed: bool,
        from: DateTime<Utc>,
        minutes: i64,
    ) -> Vec<DateTime<Utc>> {
        let matches = |naive: NaiveDateTime| cron.is_time_matching(&naive).expect("match");
        let mut out = Vec::new();
        for i in 1..=minutes {
            let t = from + TimeDelta::minutes(i);
            let local = t.with_timezone(&tz).naive_local();
            let first = tz
                .from_local_datetime(&local)
                .earliest()
                .expect("exists")
                .to_utc();
            let mut fire = matches(local) && (elapsed || first == t);
            if !elapsed {
                let previous = (t - TimeDelta::minutes(1)).with_timezone(&tz).naive_local();
                let mut skipped = previous + TimeDelta::minutes(1);
                while skipped < local {
                    fire |= matches(skipped);
                    skipped += TimeDelta::minutes(1);
                }
            }
            if fire {
                out.push(t);
            }
        }
        out
    }

    #[test]
    fn transitions_match_the_reference() {
        let cases = [
            ("Europe/Berlin", "2026-03-28T12:00:00Z"),
            ("Europe/Berlin", "2026-10-24T12:00:00Z"),
            ("America/New_York", "2026-03-07T12:00:00Z"),
            ("America/New_York", "2026-10-31T12:00:00Z"),
            ("America/Sao_Paulo", "2018-11-03T12:00:00Z"),
            ("America/Sao_Paulo", "2019-02-16T12:00:00Z"),
            ("Australia/Lord_Howe", "2026-04-04T00:00:00Z"),
            ("Australia/Lord_Howe", "2026-10-03T00:00:00Z"),
            ("Pacific/Apia", "2011-12-29T00:00:00Z"), // a whole day skipped
        ];
        let expressions = [
            "30 2 * * *",
            "0,30 2 * * *",
            "*/15 * * * *",
            "45 * * * *",
            "0 0 * * *",
            "*/20 1-3 * * *",
            "0 */2 * * *",
            "10 0-3 * * *",
            "0 2,3 * * *",
            "59 23 * * *",
        ];
        for (tz_name, from) in cases {
            for expr in expressions {
                let s = compile(expr, tz_name);
                let Kind::Cron(cron) = &s.kind else {
                    panic!("cron")
                };
                let from = utc(from);
                let minutes = 48 * 60;
                let expected = reference(&cron.cron, cron.tz, cron.elapsed, from, minutes);
                let until = from + TimeDelta::minutes(minutes);
                let actual: Vec<DateTime<Utc>> = s
                    .upcoming(from, 1000)
                    .into_iter()
                    .take_while(|t| *t <= until)
                    .collect();
                assert_eq!(actual, expected, "{expr} in {tz_name} from {from}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn next_is_strictly_after(
            secs in -2_000_000_000_i64..8_000_000_000,
            nanos in 0_u32..1_000_000_000,
            expr in prop::sample::select(vec![
                "* * * * *", "*/15 * * * *", "30 2 * * *", "0 0 29 2 *", "*/7 * * * * *",
                "0 0 L * *", "0 9 * * MON-FRI", "@every 90s", "H H * * *", "0,30 1-3 * * 0",
            ]),
            tz in prop::sample::select(vec![
                "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                "America/Sao_Paulo",
            ]),
        ) {
            let s = compile(expr, tz);
            let after = DateTime::from_timestamp(secs, nanos).expect("instant");
            let upcoming = s.upcoming(after, 5);
            prop_assert_eq!(upcoming.len(), 5);
            prop_assert!(upcoming[0] > after);
            prop_assert!(upcoming.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(s.next_after(after), Some(upcoming[0]));
        }
    }
}
