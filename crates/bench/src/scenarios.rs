//! The scenarios: `ceiling`, `fire`, `startup` and `api`.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use cronhook_core::net::TargetPolicy;
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::Report;
use crate::histogram::{Histogram, counter};
use crate::process::{
    self, Api, Database, FreshDatabase, Sampler, SamplerState, Server, clock_ticks,
    cronhook_binary, read_proc,
};
use crate::seed::Stored;
use crate::sink::Sink;

const MIB: f64 = 1024.0;

#[derive(Debug, clap::Args)]
pub struct CeilingArgs {
    /// Seconds to measure.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[derive(Debug, clap::Args)]
pub struct FireArgs {
    /// Jobs firing every second at the sink.
    #[arg(long, default_value_t = 100)]
    jobs: u32,
    /// Jobs registered that do not fire during the run (`0 0 1 1 *`).
    #[arg(long, default_value_t = 0)]
    idle_jobs: u64,
    /// Finished executions already in the history, of one idle job (seeded in bulk), as a
    /// deployment that has run for a while holds.
    #[arg(long, default_value_t = 0)]
    history_executions: u64,
    /// Executions waiting to retry a day from now (seeded in bulk), left by a node that is gone:
    /// the backlog of a target that was down for a while.
    #[arg(long, default_value_t = 0)]
    waiting_retries: u64,
    /// Seconds of history each firing job already has when the window starts (seeded in bulk,
    /// one finished execution a second): a deployment whose jobs have fired for a while, whose
    /// every job's history index takes each new execution on a page of its own.
    #[arg(long, default_value_t = 0)]
    history_per_job: u64,
    /// Clients listing the stored history's failed executions, one request after another,
    /// through the measured window: operators browsing failures while jobs fire. Needs
    /// `--history-executions`.
    #[arg(long, default_value_t = 0)]
    browsing_clients: usize,
    /// Deletes the stored history's job this many seconds into the measured window (an
    /// operator removing an old, noisy job) and reports how long the request took. Needs
    /// `--history-executions`.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=3600))]
    delete_history_job_at: Option<u64>,
    /// Sets the stored history's job's `keep_last` to [`KEEP_LAST`] this many seconds into the
    /// measured window (an operator capping a noisy job's history), for the pruner to apply,
    /// and reports how long the request took. Needs `--history-executions`.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=3600), conflicts_with = "delete_history_job_at")]
    keep_last_history_at: Option<u64>,
    /// Seconds measured, after a warm-up second.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, value_enum, default_value_t = Database::Sqlite)]
    database: Database,
    /// Seconds of the `ceiling` measurement the ratio is taken against.
    #[arg(long, default_value_t = 2.0)]
    ceiling_seconds: f64,
    /// Jobs whose executions are cross-checked in the database.
    #[arg(long, default_value_t = 5)]
    db_sample_jobs: usize,
    /// `cronhook serve` processes sharing the database (PostgreSQL only); RSS and CPU are the
    /// first one's.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    nodes: u32,
    /// API requests at once while creating the firing jobs.
    #[arg(long, default_value_t = 32)]
    seed_concurrency: usize,
    /// Writes each burst's lags (ms, in arrival order) to this file, one JSON object per burst,
    /// to see how a burst drains.
    #[arg(long)]
    lags_out: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StartupArgs {
    /// Jobs registered before the measured start.
    #[arg(long, default_value_t = 1000)]
    idle_jobs: u64,
    #[arg(long, value_enum, default_value_t = Database::Sqlite)]
    database: Database,
}

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// Requests of each kind.
    #[arg(long, default_value_t = 2000)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Executions of the job whose executions are listed.
    #[arg(long, default_value_t = 20)]
    executions: u64,
    /// Finished executions of one more job (seeded in bulk, one in 100 000 failed), whose
    /// history is then listed whole and filtered to `status=failed`.
    #[arg(long, default_value_t = 0)]
    history_executions: u64,
    #[arg(long, value_enum, default_value_t = Database::Sqlite)]
    database: Database,
}

/// One line per burst, in scheduled order: `{"second": s, "lags_ms": [sorted lags]}`.
fn write_burst_lags(path: &Path, bursts: &HashMap<i64, Vec<f64>>) -> anyhow::Result<()> {
    let mut seconds: Vec<_> = bursts.keys().copied().collect();
    seconds.sort_unstable();
    let mut text = String::new();
    for second in seconds {
        let lags: Vec<f64> = bursts[&second].iter().map(|&lag| round(lag)).collect();
        text.push_str(&json!({ "second": second, "lags_ms": lags }).to_string());
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The executor's client settings, for the sink on loopback.
fn executor_client() -> anyhow::Result<reqwest::Client> {
    let targets = TargetPolicy {
        allow_private: true,
        ..TargetPolicy::default()
    };
    cronhook_executor::guarded_client(&targets).context("building the executor's client")
}

fn api_http() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the API client")
}

/// Requests/s of a bare client against `sink` for `seconds`, `concurrency` at once:
/// (requests/s, requests, errors).
async fn measure_ceiling(
    sink: &Sink,
    seconds: f64,
    concurrency: usize,
) -> anyhow::Result<(f64, u64, u64)> {
    let client = executor_client()?;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds.max(0.1));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency.max(1) {
        let client = client.clone();
        let url = sink.url(u32::try_from(worker).unwrap_or(u32::MAX));
        let (done, failed) = (done.clone(), failed.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let ok = match client.get(&url).send().await {
                    Ok(response) => response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let requests = done.load(Ordering::Relaxed);
    sink.take();
    Ok((
        requests as f64 / elapsed,
        requests,
        failed.load(Ordering::Relaxed),
    ))
}

pub async fn ceiling(args: &CeilingArgs) -> anyhow::Result<Vec<Report>> {
    let sink = Sink::start().await?;
    let (rps, requests, errors) = measure_ceiling(&sink, args.duration, args.concurrency).await?;
    let mut report = Report::new("ceiling");
    report.add("duration_s", args.duration);
    report.add("concurrency", args.concurrency);
    report.add("requests", requests);
    report.add("errors", errors);
    report.add("requests_per_s", round(rps));
    Ok(vec![report])
}

/// A started cronhook with its database and an API key.
struct Instance {
    database: FreshDatabase,
    server: Server,
    api: Api,
    binary: std::path::PathBuf,
}

impl Instance {
    async fn start(kind: Database, cronhook: Option<&Path>) -> anyhow::Result<Instance> {
        let binary = cronhook_binary(cronhook)?;
        let database = FreshDatabase::create(kind).await?;
        let http = api_http()?;
        let server = match Server::start(&binary, &database, &http).await {
            Ok(server) => server,
            Err(error) => {
                database.drop_database().await;
                return Err(error);
            }
        };
        let key = match process::create_api_key(&binary, &database) {
            Ok(key) => key,
            Err(error) => {
                database.drop_database().await;
                return Err(error);
            }
        };
        let api = Api {
            base_url: server.base_url.clone(),
            key,
            http,
        };
        Ok(Instance {
            database,
            server,
            api,
            binary,
        })
    }

    async fn finish(mut self) {
        self.server.stop(Duration::from_secs(30)).await;
        self.database.drop_database().await;
    }
}

/// `value` to two decimals, as every figure is reported.
pub(crate) fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn mib(kib: u64) -> f64 {
    round(kib as f64 / MIB)
}

/// KiB the process sent toward storage between the window's first and last samples, per
/// execution delivered in it; None without both counts or without a delivery.
fn written_per_execution(samples: &SamplerState, delivered: u64) -> Option<f64> {
    let first = samples.first?.written_bytes?;
    let last = samples.last?.written_bytes?;
    (delivered > 0).then(|| last.saturating_sub(first) as f64 / 1024.0 / delivered as f64)
}

/// The `q` quantile (0..=1) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn sleep_until_wall(instant: DateTime<Utc>) {
    if let Ok(wait) = (instant - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

pub async fn fire(args: &FireArgs, cronhook: Option<&Path>) -> anyhow::Result<Vec<Report>> {
    if args.nodes > 1 && args.database != Database::Postgres {
        anyhow::bail!(
            "--nodes above 1 needs --database postgres (one SQLite file serves one process)"
        );
    }
    let sink = Sink::start().await?;
    let (ceiling_before, _, _) = measure_ceiling(&sink, args.ceiling_seconds, 64).await?;
    let instance = Instance::start(args.database, cronhook).await?;
    let mut others = Vec::new();
    for _ in 1..args.nodes {
        match Server::start(&instance.binary, &instance.database, &instance.api.http).await {
            Ok(server) => others.push(server),
            Err(error) => {
                for mut server in others {
                    server.stop(Duration::from_secs(30)).await;
                }
                instance.finish().await;
                return Err(error.context("starting another node"));
            }
        }
    }
    let result = run_fire(args, &instance, &sink).await.map_err(|error| {
        error.context(format!(
            "the fire scenario failed; cronhook's log ends:\n{}",
            tail(&instance.server.log(), 40)
        ))
    });
    for mut server in others {
        server.stop(Duration::from_secs(30)).await;
    }
    instance.finish().await;
    let (mut report, executions_per_s) = result?;
    // Measured again with cronhook stopped, and averaged: one short measurement on a shared
    // machine varies by a third from one to the next.
    let (ceiling_after, _, _) = measure_ceiling(&sink, args.ceiling_seconds, 64).await?;
    let ceiling_rps = (ceiling_before + ceiling_after) / 2.0;
    // The goal: a burst of N cannot drain faster than N ÷ ceiling.
    let burst_p99_goal_ms = 1.25 * (0.99 * f64::from(args.jobs) / ceiling_rps * 1000.0) + 5.0;
    report.add("burst_p99_goal_ms", round(burst_p99_goal_ms));
    report.add("ceiling_before_rps", round(ceiling_before));
    report.add("ceiling_after_rps", round(ceiling_after));
    report.add("ceiling_rps", round(ceiling_rps));
    report.add(
        "ratio_to_ceiling",
        if ceiling_rps > 0.0 {
            (executions_per_s / ceiling_rps * 1e6).round() / 1e6
        } else {
            0.0
        },
    );
    Ok(vec![report])
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn run_fire(
    args: &FireArgs,
    instance: &Instance,
    sink: &Sink,
) -> anyhow::Result<(Report, f64)> {
    let api = &instance.api;
    let seed_started = Instant::now();
    crate::seed::seed_idle_jobs(api, &instance.database, args.idle_jobs)
        .await
        .context("seeding idle jobs")?;
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    if args.browsing_clients > 0 && args.history_executions == 0 {
        anyhow::bail!("--browsing-clients lists a stored history: add --history-executions");
    }
    let history_change = match (args.delete_history_job_at, args.keep_last_history_at) {
        (Some(after), _) => Some((HistoryChange::Delete, after)),
        (None, Some(after)) => Some((HistoryChange::KeepLast, after)),
        (None, None) => None,
    };
    if history_change.is_some() && args.history_executions == 0 {
        anyhow::bail!(
            "--delete-history-job-at and --keep-last-history-at change a stored history: add --history-executions"
        );
    }
    let stored_started = Instant::now();
    let history_job = crate::seed::seed_executions(
        api,
        &instance.database,
        Stored::History,
        args.history_executions,
    )
    .await
    .context("seeding the history")?;
    crate::seed::seed_executions(
        api,
        &instance.database,
        Stored::WaitingRetries,
        args.waiting_retries,
    )
    .await
    .context("seeding the waiting retries")?;
    let stored_seconds = stored_started.elapsed().as_secs_f64();

    // The firing jobs' seeded history ends a second before the first of them can fire.
    let firing_history_before_ms = (Utc::now().timestamp() - 1) * 1000;
    let ids: Vec<anyhow::Result<String>> = futures::stream::iter(0..args.jobs)
        .map(|index| {
            let job = json!({
                "name": format!("fire-{index}"),
                "schedule": {"cron": "* * * * * *"},
                "request": {"url": sink.url(index)},
            });
            async move { api.create_job(&job).await }
        })
        .buffered(args.seed_concurrency.max(1))
        .collect()
        .await;
    let ids = ids.into_iter().collect::<anyhow::Result<Vec<String>>>()?;
    let firing_history_started = Instant::now();
    let firing_history = crate::seed::seed_firing_history(
        &instance.database,
        &ids,
        args.history_per_job,
        firing_history_before_ms,
    )
    .await
    .context("seeding the firing jobs' history")?;
    let firing_history_seconds = firing_history_started.elapsed().as_secs_f64();

    // At least one whole warm-up second, then whole seconds measured; after seeding a history
    // two more, for the scheduler to catch up with what it shed meanwhile.
    let warm_up = if args.history_per_job > 0 { 4 } else { 2 };
    let now = Utc::now();
    let window_start =
        DateTime::<Utc>::from_timestamp(now.timestamp() + warm_up, 0).context("time")?;
    let duration = args.duration.max(1);
    let window_end = window_start + chrono::Duration::seconds(i64::try_from(duration)?);
    sleep_until_wall(window_start).await;
    let pid = instance.server.pid().context("cronhook is not running")?;
    let sampler = Sampler::start(pid);
    let cpu_started = Instant::now();
    let metrics_before = api.metrics().await.context("scraping /metrics")?;
    let browsing_path = history_job.as_deref().map(failed_page_path);
    let change = history_job
        .as_deref()
        .zip(history_change)
        .map(|(job, (change, after))| {
            // At most an hour (the argument's range), so the conversion cannot wrap.
            let after = chrono::Duration::seconds(after as i64);
            (job, change, window_start + after)
        });
    let ((), browsed, changed) = tokio::join!(
        sleep_until_wall(window_end),
        browse(
            api,
            browsing_path.as_deref(),
            args.browsing_clients,
            window_end
        ),
        change_history_at(api, change)
    );
    let mut browsed = browsed.context("browsing the history's failures")?;
    let history_change_ms = changed.context("changing the history's job")?;
    browsed.sort_by(f64::total_cmp);
    let metrics_after = api.metrics().await.context("scraping /metrics")?;
    let samples = sampler.finish().await;
    let cpu_wall = cpu_started.elapsed().as_secs_f64();
    // What the scheduler measured about itself over the window (its first node's).
    let scheduler = |name: &str| {
        Histogram::parse(&metrics_after, name)
            .map(|after| after.since(Histogram::parse(&metrics_before, name).as_ref()))
            .unwrap_or_default()
    };
    let missed_unfired = counter(&metrics_after, cronhook_scheduler::MISSED_UNFIRED_TOTAL)
        - counter(&metrics_before, cronhook_scheduler::MISSED_UNFIRED_TOTAL);
    let scheduler_delay = scheduler(cronhook_scheduler::DELAY_SECONDS);
    let materialize = scheduler(cronhook_scheduler::MATERIALIZE_SECONDS);
    let claim = scheduler(cronhook_scheduler::CLAIM_SECONDS);
    // Late deliveries of the window's last seconds still count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records = sink.take();

    let (start_s, end_s) = (window_start.timestamp(), window_end.timestamp());
    let mut per_occurrence: HashMap<(u32, i64), u32> = HashMap::new();
    let mut webhook_ids: std::collections::HashSet<(u32, i64, &str)> =
        std::collections::HashSet::new();
    let mut lags_ms = Vec::new();
    // Occurrences due at the same instant form a burst; the goals are per burst.
    let mut bursts: HashMap<i64, Vec<f64>> = HashMap::new();
    for record in &records {
        if record.job >= args.jobs {
            continue;
        }
        let Some(scheduled) = record
            .scheduled_for
            .as_deref()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc))
        else {
            continue;
        };
        let second = scheduled.timestamp();
        if second < start_s || second >= end_s {
            continue;
        }
        *per_occurrence.entry((record.job, second)).or_default() += 1;
        webhook_ids.insert((
            record.job,
            second,
            record.webhook_id.as_deref().unwrap_or_default(),
        ));
        if let Some(micros) = (record.at - scheduled).num_microseconds() {
            lags_ms.push(micros as f64 / 1000.0);
            bursts
                .entry(second)
                .or_default()
                .push(micros as f64 / 1000.0);
        }
    }
    lags_ms.sort_by(f64::total_cmp);
    let mut first_lags_ms = Vec::with_capacity(bursts.len());
    let mut worst_burst_p99_ms: f64 = 0.0;
    for lags in bursts.values_mut() {
        lags.sort_by(f64::total_cmp);
        first_lags_ms.push(lags.first().copied().unwrap_or(0.0));
        worst_burst_p99_ms = worst_burst_p99_ms.max(quantile(lags, 0.99));
    }
    first_lags_ms.sort_by(f64::total_cmp);
    if let Some(path) = &args.lags_out {
        write_burst_lags(path, &bursts)?;
    }
    let expected = u64::from(args.jobs) * duration;
    let delivered: u64 = per_occurrence.values().map(|&count| u64::from(count)).sum();
    let lost = expected.saturating_sub(per_occurrence.len() as u64);
    let duplicated: u64 = per_occurrence
        .values()
        .map(|&count| u64::from(count.saturating_sub(1)))
        .sum();
    // Occurrences delivered under more than one `webhook-id`: executed twice, not retried.
    let duplicate_executions = (webhook_ids.len() - per_occurrence.len()) as u64;
    let executions_per_s = delivered as f64 / duration as f64;

    // The database's side, for a sample of jobs.
    let mut db_lost = 0u64;
    let mut db_duplicated = 0u64;
    let sampled = ids.iter().take(args.db_sample_jobs);
    let sampled_count = sampled.len();
    for id in sampled {
        let seconds = execution_seconds(api, id, start_s, end_s).await?;
        db_lost += duration.saturating_sub(seconds.len() as u64);
        db_duplicated += seconds
            .values()
            .map(|&count| u64::from(count.saturating_sub(1)))
            .sum::<u64>();
    }

    let departures_ms =
        crate::departures::first_departures_ms(&instance.database, start_s, end_s).await?;
    // What is left on disk of a changed history: the pruner deletes it in the background.
    let history_left = match (&history_job, history_change_ms) {
        (Some(job), Some(_)) => crate::seed::stored_executions(&instance.database.url, job)
            .await
            .context("counting what is left of the changed history")?,
        _ => 0,
    };

    let ticks = clock_ticks().max(1) as f64;
    let cpu_percent = match (samples.first, samples.last) {
        (Some(first), Some(last)) if cpu_wall > 0.0 => {
            last.cpu_ticks.saturating_sub(first.cpu_ticks) as f64 / ticks / cpu_wall * 100.0
        }
        _ => 0.0,
    };
    let mut report = Report::new("fire");
    report.add("nodes", args.nodes);
    report.add(
        "database",
        match args.database {
            Database::Sqlite => "sqlite",
            Database::Postgres => "postgres",
        },
    );
    report.add("jobs", args.jobs);
    report.add("idle_jobs", args.idle_jobs);
    report.add("idle_seed_s", round(seed_seconds));
    report.add("history_executions", args.history_executions);
    report.add("waiting_retries", args.waiting_retries);
    report.add("history_per_job", args.history_per_job);
    report.add("history_per_job_executions", firing_history);
    report.add("history_per_job_seed_s", round(firing_history_seconds));
    report.add("executions_seed_s", round(stored_seconds));
    report.add("browsing_clients", args.browsing_clients);
    report.add("browsing_requests", browsed.len());
    report.add("browsing_p50_ms", round(quantile(&browsed, 0.5)));
    report.add(
        "browsing_max_ms",
        round(browsed.last().copied().unwrap_or(0.0)),
    );
    report.add(
        "history_change",
        history_change.map_or("none", |(change, _)| change.name()),
    );
    report.add("history_change_ms", round(history_change_ms.unwrap_or(0.0)));
    report.add("history_left", history_left);
    report.add("duration_s", duration);
    report.add("expected", expected);
    report.add("delivered", delivered);
    report.add("executions_per_s", round(executions_per_s));
    report.add("lag_p50_ms", round(quantile(&lags_ms, 0.5)));
    report.add("lag_p99_ms", round(quantile(&lags_ms, 0.99)));
    report.add("lag_max_ms", round(lags_ms.last().copied().unwrap_or(0.0)));
    report.add("first_lag_p50_ms", round(quantile(&first_lags_ms, 0.5)));
    report.add("first_lag_p99_ms", round(quantile(&first_lags_ms, 0.99)));
    report.add(
        "first_departure_min_ms",
        round(departures_ms.first().copied().unwrap_or(0.0)),
    );
    report.add(
        "first_departure_p50_ms",
        round(quantile(&departures_ms, 0.5)),
    );
    report.add(
        "first_departure_p99_ms",
        round(quantile(&departures_ms, 0.99)),
    );
    report.add(
        "first_departure_max_ms",
        round(departures_ms.last().copied().unwrap_or(0.0)),
    );
    report.add("worst_burst_p99_ms", round(worst_burst_p99_ms));
    report.add("lost", lost);
    report.add("duplicated", duplicated);
    report.add("duplicate_executions", duplicate_executions);
    report.add("db_sampled_jobs", sampled_count);
    report.add("db_lost", db_lost);
    report.add("db_duplicated", db_duplicated);
    report.add("peak_rss_mib", mib(samples.peak_rss_kib));
    report.add(
        "hwm_rss_mib",
        mib(samples.last.map_or(0, |sample| sample.hwm_kib)),
    );
    report.add("cpu_percent", round(cpu_percent));
    // What the database costs in writes, beside CPU: on SQLite the WAL's frames and the
    // checkpoints copying them back. A PostgreSQL node writes next to nothing itself.
    report.add(
        "written_kib_per_execution",
        written_per_execution(&samples, delivered).map(round),
    );
    let ms = |seconds: Option<f64>| seconds.filter(|s| s.is_finite()).map(|s| round(s * 1000.0));
    report.add("scheduler_passes", scheduler_delay.count);
    report.add("scheduler_delay_mean_ms", ms(scheduler_delay.mean()));
    // A bucket bound: the p99 is at most this; null when beyond the last finite bucket.
    report.add(
        "scheduler_delay_p99_le_ms",
        ms(scheduler_delay.quantile_bound(0.99)),
    );
    report.add("materialize_batches", materialize.count);
    report.add("materialize_mean_ms", ms(materialize.mean()));
    report.add("claim_reads", claim.count);
    report.add("claim_mean_ms", ms(claim.mean()));
    // What the scheduler itself says it shed (misfire policy) while the window ran: beside
    // `lost`, which the sink saw.
    report.add("scheduler_missed_unfired", missed_unfired);
    Ok((report, executions_per_s))
}

/// A job's executions scheduled in [start_s, end_s), counted per second (from the API).
async fn execution_seconds(
    api: &Api,
    job_id: &str,
    start_s: i64,
    end_s: i64,
) -> anyhow::Result<HashMap<i64, u32>> {
    let mut counts = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => {
                format!("/api/v1/jobs/{job_id}/executions?limit=500&cursor={cursor}")
            }
            None => format!("/api/v1/jobs/{job_id}/executions?limit=500"),
        };
        let page = api.get(&path).await?;
        let mut oldest = i64::MAX;
        for execution in page
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(second) = execution
                .get("scheduled_for")
                .and_then(Value::as_str)
                .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                .map(|time| time.timestamp())
            else {
                continue;
            };
            oldest = oldest.min(second);
            if (start_s..end_s).contains(&second) {
                *counts.entry(second).or_default() += 1;
            }
        }
        cursor = page
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() || oldest < start_s {
            return Ok(counts);
        }
    }
}

pub async fn startup(args: &StartupArgs, cronhook: Option<&Path>) -> anyhow::Result<Vec<Report>> {
    let mut instance = Instance::start(args.database, cronhook).await?;
    let first_start = instance.server.ready_after;
    let seed_started = Instant::now();
    if let Err(error) =
        crate::seed::seed_idle_jobs(&instance.api, &instance.database, args.idle_jobs).await
    {
        instance.finish().await;
        return Err(error.context("seeding idle jobs"));
    }
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    instance.server.stop(Duration::from_secs(30)).await;
    let restarted = Server::start(&instance.binary, &instance.database, &instance.api.http).await;
    let mut server = match restarted {
        Ok(server) => server,
        Err(error) => {
            instance.finish().await;
            return Err(error);
        }
    };
    let ready = server.ready_after;
    let at_ready = server.pid().and_then(read_proc);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = server.pid().and_then(read_proc);
    server.stop(Duration::from_secs(30)).await;
    instance.finish().await;

    let mut report = Report::new("startup");
    report.add("idle_jobs", args.idle_jobs);
    report.add("idle_seed_s", round(seed_seconds));
    report.add("first_start_ms", round(first_start.as_secs_f64() * 1000.0));
    report.add("ready_ms", round(ready.as_secs_f64() * 1000.0));
    report.add("rss_ready_mib", mib(at_ready.map_or(0, |s| s.rss_kib)));
    report.add("rss_1s_mib", mib(settled.map_or(0, |s| s.rss_kib)));
    report.add("hwm_rss_mib", mib(settled.map_or(0, |s| s.hwm_kib)));
    Ok(vec![report])
}

/// `clients` clients each listing `path` one request after another until `until`; every
/// request's latency in milliseconds. Nothing when there are no clients (or no path).
async fn browse(
    api: &Api,
    path: Option<&str>,
    clients: usize,
    until: DateTime<Utc>,
) -> anyhow::Result<Vec<f64>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let client = |_| async move {
        let mut latencies = Vec::new();
        while Utc::now() < until {
            let sent = Instant::now();
            api.get(path).await?;
            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::Ok(latencies)
    };
    let per_client = futures::future::try_join_all((0..clients).map(client)).await?;
    Ok(per_client.into_iter().flatten().collect())
}

/// The `keep_last` `--keep-last-history-at` sets.
const KEEP_LAST: u32 = 1_000;

/// What `fire` does to the stored history's job mid-window.
#[derive(Debug, Clone, Copy)]
enum HistoryChange {
    /// `DELETE` the job.
    Delete,
    /// Set its `keep_last` to [`KEEP_LAST`].
    KeepLast,
}

impl HistoryChange {
    fn name(self) -> &'static str {
        match self {
            HistoryChange::Delete => "delete",
            HistoryChange::KeepLast => "keep_last",
        }
    }
}

/// Makes the change `change` names to its job at its instant; how long the request took, in ms.
async fn change_history_at(
    api: &Api,
    change: Option<(&str, HistoryChange, DateTime<Utc>)>,
) -> anyhow::Result<Option<f64>> {
    let Some((job, change, at)) = change else {
        return Ok(None);
    };
    sleep_until_wall(at).await;
    let path = format!("/api/v1/jobs/{job}");
    let sent = Instant::now();
    match change {
        HistoryChange::Delete => api.delete(&path).await?,
        HistoryChange::KeepLast => api.patch(&path, &json!({"keep_last": KEEP_LAST})).await?,
    }
    Ok(Some(sent.elapsed().as_secs_f64() * 1000.0))
}

/// Runs `count` requests made by `make`, `concurrency` at once: (requests/s, p50 ms, p99 ms).
async fn throughput<F, Fut>(
    count: u64,
    concurrency: usize,
    make: F,
) -> anyhow::Result<(f64, f64, f64)>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let results: Vec<anyhow::Result<f64>> = futures::stream::iter(0..count)
        .map(|index| {
            let request = make(index);
            async move {
                let sent = Instant::now();
                request.await?;
                Ok(sent.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = results.into_iter().collect::<anyhow::Result<Vec<f64>>>()?;
    latencies.sort_by(f64::total_cmp);
    Ok((
        count as f64 / elapsed,
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
    ))
}

pub async fn api(args: &ApiArgs, cronhook: Option<&Path>) -> anyhow::Result<Vec<Report>> {
    let sink = Sink::start().await?;
    let instance = Instance::start(args.database, cronhook).await?;
    let result = run_api(args, &instance, &sink).await;
    instance.finish().await;
    result
}

async fn run_api(args: &ApiArgs, instance: &Instance, sink: &Sink) -> anyhow::Result<Vec<Report>> {
    let api = &instance.api;
    let (create_rps, create_p50, create_p99) =
        throughput(args.requests, args.concurrency, |index| async move {
            let job = json!({
                "name": format!("api-{index}"),
                "schedule": {"cron": "0 0 1 1 *"},
                "request": {"url": "http://127.0.0.1:9/idle"},
            });
            api.create_job(&job).await.map(drop)
        })
        .await
        .context("creating jobs")?;

    // One job with some executions to list.
    let job_id = api
        .create_job(&json!({
            "name": "listed",
            "schedule": {"cron": "0 0 1 1 *"},
            "request": {"url": sink.url(0)},
        }))
        .await?;
    let run_path = format!("/api/v1/jobs/{job_id}/run");
    for _ in 0..args.executions {
        api.post_empty(&run_path).await?;
    }
    let list_path = format!("/api/v1/jobs/{job_id}/executions");
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let page = api.get(&list_path).await?;
        let listed = page
            .get("data")
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as u64;
        if listed >= args.executions.min(50) || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let list_path = &list_path;
    let (list_rps, list_p50, list_p99) =
        throughput(args.requests, args.concurrency, |_| async move {
            api.get(list_path).await.map(drop)
        })
        .await
        .context("listing executions")?;

    let mut report = Report::new("api");
    report.add("requests", args.requests);
    report.add("concurrency", args.concurrency);
    report.add("create_per_s", round(create_rps));
    report.add("create_p50_ms", round(create_p50));
    report.add("create_p99_ms", round(create_p99));
    report.add("listed_executions", listed);
    report.add("list_per_s", round(list_rps));
    report.add("list_p50_ms", round(list_p50));
    report.add("list_p99_ms", round(list_p99));
    if args.history_executions > 0 {
        list_long_history(args, instance, &mut report).await?;
    }
    Ok(vec![report])
}

/// The size of the page of failed executions the bench lists: the API's default.
const FAILED_PAGE: u64 = 50;

/// The first page of the failed executions of the job `job` (`?status=failed`, the query of the
/// dashboard's "failed only" too).
fn failed_page_path(job: &str) -> String {
    format!("/api/v1/jobs/{job}/executions?status=failed&limit={FAILED_PAGE}")
}

/// Seeds a job with a long history and measures listing it: its newest page, and its failed
/// executions (one in 100 000), which a history filtered by status must find without reading
/// through the others.
async fn list_long_history(
    args: &ApiArgs,
    instance: &Instance,
    report: &mut Report,
) -> anyhow::Result<()> {
    let api = &instance.api;
    let job_id = crate::seed::seed_executions(
        api,
        &instance.database,
        Stored::History,
        args.history_executions,
    )
    .await
    .context("seeding the long history")?
    .context("a history of more than 0 executions has a job")?;
    let expected_listed =
        (args.history_executions / crate::seed::HISTORY_FAILED_EVERY).min(FAILED_PAGE);
    let all_path = format!("/api/v1/jobs/{job_id}/executions");
    let failed_path = failed_page_path(&job_id);
    let failed = api.get(&failed_path).await?;
    let failed_listed = failed
        .get("data")
        .and_then(Value::as_array)
        .context("a page of failed executions")?;
    // Every failed one is listed (up to a page), and nothing else.
    if failed_listed.len() as u64 != expected_listed
        || failed_listed
            .iter()
            .any(|execution| execution["status"] != "failed")
    {
        anyhow::bail!(
            "listing {failed_path} gave {} executions, expected {expected_listed} failed ones",
            failed_listed.len(),
        );
    }
    let (all_path, failed_path) = (&all_path, &failed_path);
    let (history_rps, history_p50, history_p99) =
        throughput(args.requests, args.concurrency, |_| async move {
            api.get(all_path).await.map(drop)
        })
        .await
        .context("listing the long history")?;
    let (failed_rps, failed_p50, failed_p99) =
        throughput(args.requests, args.concurrency, |_| async move {
            api.get(failed_path).await.map(drop)
        })
        .await
        .context("listing the long history's failed executions")?;
    report.add("history_executions", args.history_executions);
    report.add("history_list_per_s", round(history_rps));
    report.add("history_list_p50_ms", round(history_p50));
    report.add("history_list_p99_ms", round(history_p99));
    report.add("failed_listed", failed_listed.len() as u64);
    report.add("failed_list_per_s", round(failed_rps));
    report.add("failed_list_p50_ms", round(failed_p50));
    report.add("failed_list_p99_ms", round(failed_p99));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ProcSample;

    fn sample(written_bytes: Option<u64>) -> ProcSample {
        ProcSample {
            written_bytes,
            ..ProcSample::default()
        }
    }

    #[test]
    fn writes_per_execution_are_the_window_s_difference_over_its_deliveries() {
        let samples = SamplerState {
            first: Some(sample(Some(1 << 20))),
            last: Some(sample(Some(3 << 20))),
            peak_rss_kib: 0,
        };
        assert_eq!(written_per_execution(&samples, 512), Some(4.0));
        assert_eq!(
            written_per_execution(&samples, 0),
            None,
            "nothing delivered"
        );
        let uncounted = SamplerState {
            first: Some(sample(None)),
            ..samples
        };
        assert_eq!(
            written_per_execution(&uncounted, 512),
            None,
            "no count kept"
        );
        let unsampled = SamplerState::default();
        assert_eq!(written_per_execution(&unsampled, 512), None, "no sample");
    }
}
