//! Bounded fuzzing of schedule compilation and evaluation, on stable Rust (cargo-fuzz needs
//! nightly; `fuzz/` at the workspace root holds the same target for it).
//!
//! `cargo run --release -p cronhook-core --example fuzz_schedule -- --seconds 600 [--seed N]`
//!
//! Inputs come from three sources: a grammar of cron tokens (valid and broken ones, macros,
//! `@every`, `H`, names, odd whitespace), mutations of valid expressions, and random bytes. Each
//! input is compiled; an accepted one is then evaluated (`next_after` at ordinary and extreme
//! instants, `upcoming`, `describe`). Checked: no panic, `next_after(t) > t`, `upcoming` starts
//! with `next_after`, and no input takes longer than the watchdog's limit (the process aborts,
//! naming the input, when one does). Prints the number of inputs, accepted and refused counts,
//! and the slowest input with its time. Exits non-zero on a panic or a broken law.

#![allow(clippy::print_stdout)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cronhook_core::{CompiledSchedule, ScheduleSpec};

/// One input taking longer than this (compile plus evaluation) aborts the run.
const WATCHDOG: Duration = Duration::from_secs(10);

/// splitmix64: small, seedable, good enough to pick tokens.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + i64::try_from(self.below(u64::try_from(hi - lo + 1).unwrap_or(1))).unwrap_or(0)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

const VALID: &[&str] = &[
    "* * * * *",
    "* * * * * *",
    "*/15 * * * *",
    "0 3 * * *",
    "30 2 * * *",
    "0,30 2 * * *",
    "*/15 9-17 * * 1-5",
    "30 6-16/4 * * 1-5",
    "0 0 L * *",
    "0 0 LW * *",
    "0 0 15W * *",
    "0 0 * * 5#2",
    "0 0 * * 5L",
    "0 0 1,15 * 1",
    "0 0 29 2 *",
    "0 9 * * MON-FRI",
    "0 0 1 JAN-MAR *",
    "H H * * *",
    "H/15 * * * *",
    "H(0-5) H(1-3) * * *",
    "0 H/4 * * *",
    "*/7 * * * * *",
    "5/15 * * * *",
    "@daily",
    "@hourly",
    "@yearly",
    "@every 90s",
    "@every 1h30m",
    "0 0 ? * SUN",
    "59 23 31 12 *",
];

const TOKENS: &[&str] = &[
    "*",
    "?",
    "L",
    "LW",
    "W",
    "#",
    "-",
    "/",
    ",",
    "H",
    "H/2",
    "H(0-5)",
    "H(5-0)",
    "H(",
    "H()",
    "0",
    "00",
    "7",
    "59",
    "60",
    "23",
    "24",
    "31",
    "32",
    "12",
    "13",
    "99999999999",
    "000000000000001",
    "-1",
    "1-5",
    "5-1",
    "1-5/2",
    "*/0",
    "*/1",
    "*/60",
    "*/61",
    "0/0",
    "1/7",
    "SUN",
    "MON",
    "sat",
    "FRI-SUN",
    "SUN-SAT",
    "JAN",
    "dec",
    "XYZ",
    "5#2",
    "5#6",
    "5#0",
    "5#L",
    "L#1",
    "5L",
    "LL",
    "15W",
    "LW",
    "0W",
    "32W",
    "1-5W",
    "L-2",
    "??",
    "**",
    "*/",
    "/5",
    "1,,2",
    ",",
    "1,*",
    "é",
    "٣",
    "\u{0}",
];

const MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    "@every",
    "@every ",
    "@every 0s",
    "@every 1s",
    "@every 999999999999999999999d",
    "@every 3651d",
    "@every 1.5s",
    "@every 1ns",
    "@every -5m",
    "@everyday",
    "@reboot",
    "@",
];

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "America/St_Johns",
    "Africa/Casablanca",
    "Mars/Olympus_Mons",
    "",
    " UTC ",
    "utc",
    "Etc/GMT+12",
    "Etc/GMT-14",
];

/// A mostly valid item for field `index` (0 seconds, 1 minutes, ... 5 day of week).
fn valid_item(rng: &mut Rng, index: usize) -> String {
    let (lo, hi) = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)][index];
    let a = rng.range(lo, hi);
    let b = rng.range(a, hi);
    let step = rng.range(1, hi - lo + 1);
    match rng.below(12) {
        0 => "*".to_owned(),
        1 => format!("*/{step}"),
        2 => format!("{a}-{b}"),
        3 => format!("{a}-{b}/{step}"),
        4 => format!("{a}/{step}"),
        5 => "H".to_owned(),
        6 => format!("H({a}-{b})/{step}"),
        7 if index == 3 => rng.pick(&["L", "LW", "15W", "1W", "31W", "?"]).to_owned(),
        7 if index == 4 => rng.pick(&["JAN", "feb-apr", "JUN-DEC/2"]).to_owned(),
        7 if index == 5 => format!("{a}{}", rng.pick(&["#1", "#5", "L", "#L"])),
        8 if index == 5 => rng
            .pick(&["MON-FRI", "SAT-SUN", "?", "sun", "FRI-SUN"])
            .to_owned(),
        _ => a.to_string(),
    }
}

fn valid_biased(rng: &mut Rng) -> String {
    let seconds = rng.chance(30);
    let mut fields = Vec::new();
    for index in 0..6 {
        if index == 0 && !seconds {
            continue;
        }
        let star = if index >= 3 { 60 } else { 25 };
        let field = if rng.chance(star) {
            "*".to_owned()
        } else {
            let items = 1 + rng.below(3);
            (0..items)
                .map(|_| valid_item(rng, index))
                .collect::<Vec<_>>()
                .join(",")
        };
        fields.push(field);
    }
    fields.join(" ")
}

const SPACES: &[&str] = &[" ", " ", " ", "  ", "\t", "\n", "\u{a0}", "\u{3000}"];

fn grammar(rng: &mut Rng) -> String {
    if rng.chance(8) {
        let head = rng.pick(MACROS).to_owned();
        return if rng.chance(50) {
            format!("{head}{}", rng.range(0, 100_000))
        } else if rng.chance(50) {
            format!(
                "{head} {}{}",
                rng.range(0, 5000),
                rng.pick(&["s", "m", "h", "d", "x", ""])
            )
        } else {
            head
        };
    }
    let fields = match rng.below(10) {
        0 => rng.below(9),
        1..=3 => 6,
        _ => 5,
    };
    let mut out = String::new();
    for i in 0..fields {
        if i > 0 {
            out.push_str(rng.pick(SPACES));
        }
        let many = rng.chance(20);
        let items = 1 + if many { rng.below(4) } else { 0 };
        for j in 0..items {
            if j > 0 {
                out.push(',');
            }
            if rng.chance(60) {
                out.push_str(rng.pick(TOKENS));
            } else {
                // A number token, sometimes with a range or step.
                let a = rng.range(0, 62);
                match rng.below(4) {
                    0 => out.push_str(&a.to_string()),
                    1 => out.push_str(&format!("{a}-{}", rng.range(0, 62))),
                    2 => out.push_str(&format!("{a}-{}/{}", rng.range(0, 62), rng.range(0, 62))),
                    _ => out.push_str(&format!("*/{}", rng.range(0, 62))),
                }
            }
        }
    }
    if rng.chance(5) {
        // Near the length limit (1024 bytes).
        while out.len() < 1000 + usize::try_from(rng.below(60)).unwrap_or(0) {
            out.push_str(",1");
        }
    }
    out
}

fn mutate(rng: &mut Rng) -> String {
    let mut bytes = rng.pick(VALID).as_bytes().to_vec();
    let alphabet = b"0123456789*/-,?#LWH() @\tMONSUNJANevrydhms";
    for _ in 0..1 + rng.below(4) {
        let at = usize::try_from(rng.below(bytes.len() as u64 + 1)).unwrap_or(0);
        match rng.below(5) {
            0 => bytes.insert(
                at,
                alphabet[usize::try_from(rng.below(alphabet.len() as u64)).unwrap_or(0)],
            ),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            2 if at < bytes.len() => {
                bytes[at] =
                    alphabet[usize::try_from(rng.below(alphabet.len() as u64)).unwrap_or(0)];
            }
            3 => {
                let token = rng.pick(TOKENS).as_bytes().to_vec();
                bytes.splice(at..at, token);
            }
            _ => bytes.insert(at, u8::try_from(rng.below(256)).unwrap_or(0)),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_bytes(rng: &mut Rng) -> String {
    let len = if rng.chance(3) {
        rng.below(1100)
    } else {
        rng.below(40)
    };
    let bytes: Vec<u8> = (0..len)
        .map(|_| u8::try_from(rng.below(256)).unwrap_or(0))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn input(rng: &mut Rng) -> (String, String, String) {
    let expr = match rng.below(10) {
        0..=3 => valid_biased(rng),
        4..=5 => grammar(rng),
        6..=8 => mutate(rng),
        _ => random_bytes(rng),
    };
    let zone = if rng.chance(90) {
        rng.pick(&ZONES[..10]).to_owned()
    } else {
        rng.pick(ZONES).to_owned()
    };
    let job = format!("job_{:x}", rng.next_u64());
    (expr, zone, job)
}

fn instants(rng: &mut Rng) -> Vec<DateTime<Utc>> {
    let mut out = vec![
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default(), // 9999-12-31T23:59:59Z
        DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or_default(), // 0001-01-01
    ];
    for _ in 0..4 {
        let secs = rng.range(0, 4_102_444_800); // 1970..2100
        let nanos = u32::try_from(rng.below(1_000_000_000)).unwrap_or(0);
        out.push(DateTime::from_timestamp(secs, nanos).unwrap_or_default());
    }
    out
}

#[derive(Debug, Default)]
pub struct Report {
    pub inputs: u64,
    pub accepted: u64,
    pub refused: u64,
    pub evaluations: u64,
    pub slowest: Option<(String, String, Duration)>,
    pub panics: Vec<String>,
    pub broken_laws: Vec<String>,
}

/// One input: compile, and evaluate what compiles. Returns whether it was accepted.
fn check(
    report: &mut Report,
    expr: &str,
    zone: &str,
    job: &str,
    at: &[DateTime<Utc>],
) -> Option<bool> {
    let spec = ScheduleSpec::Cron {
        cron: expr.to_owned(),
        timezone: zone.to_owned(),
    };
    let anchor = at[4];
    let compiled = catch_unwind(|| CompiledSchedule::compile(&spec, job, anchor)).ok()?;
    let Ok(schedule) = compiled else {
        return Some(false);
    };
    let evaluated = catch_unwind(AssertUnwindSafe(|| {
        let mut broken = Vec::new();
        let _ = schedule.describe();
        let _ = schedule.resolved_expression();
        let _ = schedule.follows_elapsed_time();
        for t in at {
            report.evaluations += 1;
            let next = schedule.next_after(*t);
            if next.is_some_and(|n| n <= *t) {
                broken.push(format!("next_after({t}) = {next:?} is not after it"));
            }
            let upcoming = schedule.upcoming(*t, 3);
            if upcoming.first().copied() != next {
                broken.push(format!("upcoming({t}) starts {upcoming:?}, next {next:?}"));
            }
            if upcoming.windows(2).any(|w| w[0] >= w[1]) {
                broken.push(format!("upcoming({t}) out of order: {upcoming:?}"));
            }
        }
        broken
    }))
    .ok()?;
    for law in evaluated {
        report
            .broken_laws
            .push(format!("{expr:?} in {zone:?}: {law}"));
    }
    Some(true)
}

pub enum Budget {
    Inputs(u64),
    Time(Duration),
}

/// Runs the fuzz loop. A watchdog thread aborts the process when one input runs longer than
/// `WATCHDOG`.
pub fn run(budget: Budget, seed: u64) -> Report {
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let current = Arc::new(Mutex::new(String::new()));
    let started_ms = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let clock = Instant::now();
    let watchdog = {
        let (current, started_ms, done) = (current.clone(), started_ms.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let now_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
                let since = now_ms.saturating_sub(started_ms.load(Ordering::Relaxed));
                if since > u64::try_from(WATCHDOG.as_millis()).unwrap_or(10_000) {
                    let input = current.lock().map(|s| s.clone()).unwrap_or_default();
                    eprintln!("fuzz_schedule: input running for {since} ms: {input}");
                    std::process::abort();
                }
            }
        })
    };
    // Panics are caught and counted; keep their messages short.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| eprintln!("fuzz_schedule: panic: {info}")));
    loop {
        match budget {
            Budget::Inputs(n) if report.inputs >= n => break,
            Budget::Time(limit) if clock.elapsed() >= limit => break,
            _ => {}
        }
        let (expr, zone, job) = input(&mut rng);
        let at = instants(&mut rng);
        if let Ok(mut slot) = current.lock() {
            *slot = format!("{expr:?} in {zone:?} (job {job:?})");
        }
        started_ms.store(
            u64::try_from(clock.elapsed().as_millis()).unwrap_or(0),
            Ordering::Relaxed,
        );
        let start = Instant::now();
        let outcome = check(&mut report, &expr, &zone, &job, &at);
        let took = start.elapsed();
        report.inputs += 1;
        match outcome {
            Some(true) => report.accepted += 1,
            Some(false) => report.refused += 1,
            None => report
                .panics
                .push(format!("{expr:?} in {zone:?} (job {job:?})")),
        }
        if outcome.is_some() && report.slowest.as_ref().is_none_or(|(_, _, t)| took > *t) {
            // A candidate for the slowest: time it twice more and keep the fastest run, so a
            // moment of preemption does not name an input.
            let mut best = took;
            for _ in 0..2 {
                let start = Instant::now();
                let _ = check(&mut Report::default(), &expr, &zone, &job, &at);
                best = best.min(start.elapsed());
            }
            if report.slowest.as_ref().is_none_or(|(_, _, t)| best > *t) {
                report.slowest = Some((expr, zone, best));
            }
        }
    }
    std::panic::set_hook(previous_hook);
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    report
}

impl Report {
    pub fn summary(&self) -> String {
        let slowest = self
            .slowest
            .as_ref()
            .map(|(expr, zone, took)| format!("{expr:?} in {zone:?}, {took:?}"))
            .unwrap_or_default();
        format!(
            "inputs {}, accepted {}, refused {}, evaluations {}, panics {}, broken laws {}, \
             slowest input (best of 3 runs): {slowest}",
            self.inputs,
            self.accepted,
            self.refused,
            self.evaluations,
            self.panics.len(),
            self.broken_laws.len()
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let seconds = arg("--seconds").unwrap_or(60);
    let seed = arg("--seed").unwrap_or(0x00C0_FFEE);
    println!("fuzz_schedule: {seconds} s, seed {seed}");
    let report = run(Budget::Time(Duration::from_secs(seconds)), seed);
    println!("{}", report.summary());
    for panic in report.panics.iter().take(20) {
        println!("panicked: {panic}");
    }
    for law in report.broken_laws.iter().take(20) {
        println!("broken law: {law}");
    }
    if !report.panics.is_empty() || !report.broken_laws.is_empty() {
        std::process::exit(1);
    }
}
