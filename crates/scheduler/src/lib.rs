//! The scheduler: turns jobs whose `next_run_at` has come into executions, at the instant.
//!
//! It reads only the jobs due within a short look-ahead window (by index, in batches), sleeps
//! until the earliest of them, and then, for every job due, materializes the occurrence and
//! advances `next_run_at` in one transaction. Executions it creates while this process also runs
//! the executor are created already leased to it and handed over in memory; otherwise they are
//! queued for any executor to claim.
//!
//! Prepared ahead: when this process runs the executor, occurrences of jobs that allow overlap
//! are materialized up to [`SchedulerConfig::prepare_ahead`] before their instant and handed
//! over at once; the executor holds each until its instant and sends it then. Writing a burst of
//! a thousand executions takes milliseconds, and paying that before the instant instead of after
//! it is what lets the first request of a burst leave within a millisecond or two. `forbid` and
//! `replace` jobs are materialized at their instant, because whether the previous run still runs
//! is only known then. An edit or pause discards the job's prepared executions (the store deletes
//! them; the executor re-checks before sending).
//!
//! Architecture invariant: the database decides. Materializing is a compare-and-set on the job's
//! `next_run_at` plus a unique (job, scheduled instant) key, so however many schedulers run, and
//! whatever they had in memory, one occurrence yields at most one execution.

mod plan;
mod retention;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use cronhook_core::cache::BoundedCache;
use cronhook_core::{CompiledSchedule, Concurrency, Job};
use cronhook_store::{ClaimedExecution, Materialized, Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use plan::{MISFIRE_FIRE_ALL_LIMIT, Planned, plan_occurrence};
pub use retention::{PRUNE_BATCH, prune_all, run_pruner};

/// How the executions this scheduler creates reach an executor in the same process.
#[derive(Clone)]
pub struct LocalExecutor {
    /// The node id the executions are leased to.
    pub node_id: String,
    /// How long the lease given at creation lasts.
    pub lease: Duration,
    /// Hands a leased execution to the executor; must not block.
    pub submit: Arc<dyn Fn(ClaimedExecution) + Send + Sync>,
    /// Stops the executor's work on a job's executions (the `replace` policy: the store has
    /// recorded them cancelled); must not block.
    pub cancel_job: Arc<dyn Fn(&str) + Send + Sync>,
}

/// Scheduler settings.
#[derive(Clone)]
pub struct SchedulerConfig {
    /// How far ahead due jobs are read, so they can be fired from memory at the exact instant.
    pub lookahead: Duration,
    /// How long before their instant occurrences of `allow` jobs are materialized and handed to
    /// the local executor (which sends them at the instant). Zero materializes at the instant.
    /// Only used with a local executor; keep it well below `lookahead`.
    pub prepare_ahead: Duration,
    /// The most jobs read or materialized in one batch.
    pub batch_size: u32,
    /// An occurrence later than this is a misfire (cronhook was down or stalled) and is handled
    /// by the job's misfire policy instead of being fired as scheduled.
    pub misfire_threshold: Duration,
    /// The longest sleep while idle, so jobs changed by other processes are seen.
    pub idle_recheck: Duration,
    /// Present when this process also runs the executor role.
    pub local_executor: Option<LocalExecutor>,
    /// The id this scheduler claims due jobs under (see `Store::claim_due_jobs`).
    pub node_id: String,
    /// How long a claim on due jobs lasts beyond the look-ahead window; a scheduler that dies
    /// holding claims delays those jobs by at most this much.
    pub claim_margin: Duration,
    /// The clock due-ness is judged by: the database's, shared by every node.
    pub clock: Arc<cronhook_store::DatabaseClock>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            lookahead: Duration::from_secs(2),
            prepare_ahead: Duration::from_millis(500),
            batch_size: 1_000,
            misfire_threshold: Duration::from_secs(2),
            idle_recheck: Duration::from_secs(5),
            local_executor: None,
            node_id: "scheduler".to_owned(),
            claim_margin: Duration::from_secs(2),
            clock: Arc::new(cronhook_store::DatabaseClock::new()),
        }
    }
}

/// What one pass over due jobs did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FireReport {
    /// Executions created to run.
    pub created: usize,
    /// Occurrences recorded as skipped (`forbid` overlap).
    pub skipped: usize,
    /// Occurrences another scheduler or an edit got to first.
    pub superseded: usize,
    /// Jobs whose schedule is broken in storage (logged, left alone).
    pub unschedulable: usize,
    /// Missed occurrences the jobs' misfire policies left unfired (see [`Planned::dropped`]).
    pub dropped: usize,
}

/// Turns due jobs into executions. See the crate docs.
pub struct Scheduler {
    store: Arc<dyn Store>,
    config: SchedulerConfig,
    jobs_changed: Arc<Notify>,
    /// Compiled schedules of the jobs that fired recently, keyed by job id and checked against
    /// `updated_at`, so an every-second job is not re-parsed every second.
    compiled: BoundedCache<String, (DateTime<Utc>, Arc<CompiledSchedule>)>,
    /// What misfire policies dropped since the last warning about it.
    shed_log: ShedLog,
}

impl Scheduler {
    /// A scheduler over `store`; `jobs_changed` wakes it when jobs are edited in this process.
    pub fn new(store: Arc<dyn Store>, config: SchedulerConfig, jobs_changed: Arc<Notify>) -> Self {
        Self {
            store,
            config,
            jobs_changed,
            compiled: BoundedCache::new(COMPILED_SCHEDULES, COMPILED_SCHEDULES_SWEEP),
            shed_log: ShedLog::default(),
        }
    }

    /// Runs until `shutdown` is cancelled. Database errors are logged and retried with backoff;
    /// nothing is lost meanwhile, since due jobs stay due until they are materialized.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let outcome = tokio::select! {
                () = shutdown.cancelled() => return,
                outcome = self.step(&shutdown) => outcome,
            };
            match outcome {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let backoff = Duration::from_millis(100u64 << failures.min(6));
                    tracing::warn!(error = %error, retry_in_ms = backoff.as_millis() as u64, "scheduler pass failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
    }

    /// One turn of the loop: read the window, wait for its earliest instant (or a change), fire.
    async fn step(&mut self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let now = self.config.clock.now();
        let lookahead = to_delta(self.config.lookahead);
        let horizon = now + lookahead;
        let claim = cronhook_store::Lease {
            node_id: self.config.node_id.clone(),
            until: horizon + to_delta(self.config.claim_margin),
        };
        let reading = std::time::Instant::now();
        let window = self
            .store
            .claim_due_jobs(&claim, now, horizon, self.config.batch_size)
            .await?;
        metrics::histogram!(CLAIM_SECONDS).record(reading.elapsed().as_secs_f64());
        let wake_at = match window
            .iter()
            .filter_map(|job| job.next_run_at.map(|due| self.materialize_at(job, due)))
            .min()
        {
            Some(earliest) => earliest,
            None => {
                let earliest = self.store.earliest_next_run().await?;
                let recheck = now + to_delta(self.config.idle_recheck);
                // Wake a look-ahead before the next job so it is read into the window in time;
                // but not at once when that job is due and another scheduler holds it.
                earliest
                    .map(|at| (at - lookahead / 2).max(now + lookahead / 4))
                    .map_or(recheck, |at| at.min(recheck))
            }
        };
        if wake_at > self.config.clock.now() {
            let changed = self.jobs_changed.notified();
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = changed => return Ok(()),
                () = sleep_until(self.config.clock.to_local(wake_at)) => {}
            }
            if window.is_empty() {
                return Ok(());
            }
        }
        let report = self.fire(window, self.config.clock.now()).await?;
        record_metrics(&report);
        if report != FireReport::default() {
            tracing::debug!(?report, "fired due jobs");
        }
        Ok(())
    }

    /// When the job's next occurrence is materialized: its instant, or `prepare_ahead` before it
    /// when the local executor can hold it until then (see the crate docs).
    fn materialize_at(&self, job: &Job, due: DateTime<Utc>) -> DateTime<Utc> {
        if self.config.local_executor.is_some() && job.spec.concurrency == Concurrency::Allow {
            due - to_delta(self.config.prepare_ahead)
        } else {
            due
        }
    }

    /// Materializes every job in `jobs` that is due at `now` (or, when prepared ahead, due
    /// within `prepare_ahead` of it), in one batch, and hands the created executions to the
    /// local executor. Other jobs are left alone.
    pub async fn fire(
        &mut self,
        jobs: Vec<Job>,
        now: DateTime<Utc>,
    ) -> Result<FireReport, StoreError> {
        let mut report = FireReport::default();
        let prepare_ahead = to_delta(self.config.prepare_ahead);
        let lease = self
            .config
            .local_executor
            .as_ref()
            .map(|local| cronhook_store::Lease {
                node_id: local.node_id.clone(),
                until: now + prepare_ahead + to_delta(local.lease),
            });
        let mut occurrences = Vec::new();
        let mut planned_jobs = Vec::new();
        // (index in `occurrences`, count) of the rare occurrences whose misfire policy dropped
        // some: nothing is kept, nor allocated, for the on-time ones.
        let mut dropped = Vec::new();
        // When the earliest occurrence this pass writes was meant to be written.
        let mut meant_at: Option<DateTime<Utc>> = None;
        for job in jobs {
            let Some(due) = job.next_run_at else {
                continue;
            };
            let materialize_at = self.materialize_at(&job, due);
            if materialize_at > now {
                continue;
            }
            let Some(schedule) = self.schedule_of(&job) else {
                report.unschedulable += 1;
                continue;
            };
            // A prepared occurrence is planned as of its own instant: on time by definition.
            if let Some(planned) = plan_occurrence(
                &job,
                &schedule,
                now.max(due),
                to_delta(self.config.misfire_threshold),
                lease.as_ref(),
            ) {
                meant_at = Some(meant_at.map_or(materialize_at, |at| at.min(materialize_at)));
                if planned.dropped > 0 {
                    dropped.push((occurrences.len(), planned.dropped));
                }
                occurrences.push(planned.occurrence);
                planned_jobs.push(job);
            }
        }
        if occurrences.is_empty() {
            return Ok(report);
        }
        if let Some(meant_at) = meant_at {
            let late = (now - meant_at).to_std().unwrap_or(Duration::ZERO);
            metrics::histogram!(DELAY_SECONDS).record(late.as_secs_f64());
        }
        let writing = std::time::Instant::now();
        let outcomes = self.store.materialize(&occurrences).await?;
        metrics::histogram!(MATERIALIZE_SECONDS).record(writing.elapsed().as_secs_f64());
        for (index, count) in dropped {
            // A superseded occurrence was another scheduler's (or an edit's) to handle.
            if outcomes[index] != Materialized::Superseded {
                tracing::debug!(job_id = %occurrences[index].job_id, dropped = count, misfire = ?planned_jobs[index].spec.misfire, "missed occurrences left unfired by the job's misfire policy");
                report.dropped += count;
            }
        }
        for ((occurrence, job), outcome) in occurrences.into_iter().zip(planned_jobs).zip(outcomes)
        {
            match outcome {
                Materialized::Created => {
                    report.created += occurrence.executions.len();
                    for execution in &occurrence.executions {
                        tracing::debug!(
                            job_id = %execution.job_id,
                            execution_id = %execution.id,
                            scheduled_for = %execution.scheduled_for,
                            trigger = ?execution.trigger,
                            "occurrence materialized"
                        );
                    }
                    if let Some(local) = &self.config.local_executor {
                        if occurrence.concurrency == Concurrency::Replace {
                            (local.cancel_job)(&occurrence.job_id);
                        }
                        // Each execution takes its ids rather than a copy of them, and shares
                        // the job's spec.
                        for execution in occurrence.executions {
                            (local.submit)(handed_over(execution, Arc::clone(&job.spec)));
                        }
                    }
                }
                Materialized::Skipped => {
                    tracing::debug!(job_id = %occurrence.job_id, "occurrence skipped: the previous execution still runs");
                    report.skipped += occurrence.executions.len();
                }
                Materialized::Superseded => {
                    tracing::debug!(job_id = %occurrence.job_id, "occurrence superseded");
                    report.superseded += 1;
                }
            }
        }
        if report.dropped > 0
            && let Some(dropped) = self.shed_log.add(report.dropped, std::time::Instant::now())
        {
            tracing::warn!(
                dropped,
                "missed occurrences left unfired by their jobs' misfire policies since the last such warning (cronhook was down, or this node is behind its jobs)"
            );
        }
        Ok(report)
    }

    /// The job's compiled schedule, from the cache when the job has not changed.
    fn schedule_of(&mut self, job: &Job) -> Option<Arc<CompiledSchedule>> {
        if let Some((updated_at, schedule)) = self.compiled.get(&job.id)
            && *updated_at == job.updated_at
        {
            return Some(Arc::clone(schedule));
        }
        match CompiledSchedule::compile(&job.spec.schedule, &job.id, job.created_at) {
            Ok(schedule) => {
                let schedule = Arc::new(schedule);
                self.compiled.insert(
                    job.id.clone(),
                    (job.updated_at, Arc::clone(&schedule)),
                    1,
                    std::time::Instant::now(),
                );
                Some(schedule)
            }
            Err(error) => {
                tracing::error!(job_id = %job.id, error = %error, "stored job has a schedule that no longer compiles; leaving it alone");
                None
            }
        }
    }
}

/// The most compiled schedules a scheduler keeps (a few hundred bytes each; the parsed patterns
/// they share are kept apart).
const COMPILED_SCHEDULES: usize = 100_000;
/// The least time between two sweeps of the full cache of compiled schedules: a job firing at
/// least this often keeps its schedule compiled.
const COMPILED_SCHEDULES_SWEEP: Duration = Duration::from_secs(60);

/// The shortest time between two warnings about dropped occurrences. An overloaded node drops
/// some in every pass, twenty passes a second; the counter has every one of them.
const SHED_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Drops by misfire policies not yet warned about, so the log says it once per
/// [`SHED_WARNING_INTERVAL`] instead of once per job or per pass.
#[derive(Debug, Default)]
struct ShedLog {
    occurrences: usize,
    last_warned: Option<std::time::Instant>,
}

impl ShedLog {
    /// Adds one pass's drops; returns the occurrences to warn about when a warning is due (the
    /// first drop, or the interval has passed since the last warning).
    fn add(&mut self, occurrences: usize, now: std::time::Instant) -> Option<usize> {
        if occurrences == 0 {
            return None;
        }
        self.occurrences += occurrences;
        let due = self
            .last_warned
            .is_none_or(|at| now.duration_since(at) >= SHED_WARNING_INTERVAL);
        if !due {
            return None;
        }
        self.last_warned = Some(now);
        Some(std::mem::take(&mut self.occurrences))
    }
}

/// The name of the scheduler's counter of occurrences, by outcome.
pub const MATERIALIZED_TOTAL: &str = "cronhook_scheduler_materialized_total";

/// The name of the scheduler's counter of missed occurrences that misfire policies left unfired.
pub const MISSED_UNFIRED_TOTAL: &str = "cronhook_scheduler_missed_unfired_total";

/// The name of the histogram of how late each scheduler pass began (see [`describe_metrics`]).
pub const DELAY_SECONDS: &str = "cronhook_scheduler_delay_seconds";

/// The name of the histogram of how long reading (on PostgreSQL, claiming) one window of due
/// jobs took.
pub const CLAIM_SECONDS: &str = "cronhook_scheduler_claim_seconds";

/// The name of the histogram of how long writing one batch of occurrences took.
pub const MATERIALIZE_SECONDS: &str = "cronhook_scheduler_materialize_seconds";

/// Registers the help text of the scheduler's metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        MATERIALIZED_TOTAL,
        "Due occurrences handled by this node's scheduler, by outcome: created (executions made), skipped (forbid overlap), superseded (another scheduler or an edit came first), unschedulable (a stored schedule that no longer compiles)."
    );
    metrics::describe_counter!(
        MISSED_UNFIRED_TOTAL,
        "Occurrences found later than the misfire threshold (cronhook was down, or this node could not keep up with its jobs) that the job's misfire policy left unfired: all of them under skip, all but the newest under fire_once, those beyond the newest 100 under fire_all."
    );
    // Exported at zero from the start, so an alert on its rate has a series before the first drop.
    metrics::counter!(MISSED_UNFIRED_TOTAL).increment(0);
    metrics::describe_histogram!(
        DELAY_SECONDS,
        metrics::Unit::Seconds,
        "How late each pass of the scheduler began writing occurrences, from when the earliest of them was due to be written (its instant, or the prepare-ahead time before it). Near zero while the scheduler keeps up; values beyond the prepare-ahead time mean bursts leave late, and values that keep growing mean the node cannot keep up with its jobs."
    );
    metrics::describe_histogram!(
        MATERIALIZE_SECONDS,
        metrics::Unit::Seconds,
        "How long writing one batch of occurrences (and advancing their jobs) took, including the wait for the database's write lock."
    );
    metrics::describe_histogram!(
        CLAIM_SECONDS,
        metrics::Unit::Seconds,
        "How long each pass of the scheduler took to read the window of due jobs (on PostgreSQL, to claim them from the other nodes), opened specs included. A pass reads, waits for the earliest instant, then writes: while it keeps up, the reads and writes of one second's batches add up to well under the prepare-ahead time."
    );
}

/// A materialized execution as the local executor takes it over, with its job's spec.
fn handed_over(
    execution: cronhook_store::NewExecution,
    spec: Arc<cronhook_core::JobSpec>,
) -> ClaimedExecution {
    ClaimedExecution {
        id: execution.id,
        workspace_id: execution.workspace_id,
        job_id: execution.job_id,
        scheduled_for: execution.scheduled_for,
        trigger: execution.trigger,
        attempts_done: 0,
        interrupted: false,
        started_at: None,
        spec,
    }
}

/// Counts one pass's occurrences (a no-op until the binary installs a recorder).
fn record_metrics(report: &FireReport) {
    for (outcome, count) in [
        ("created", report.created),
        ("skipped", report.skipped),
        ("superseded", report.superseded),
        ("unschedulable", report.unschedulable),
    ] {
        if count > 0 {
            metrics::counter!(MATERIALIZED_TOTAL, "outcome" => outcome).increment(count as u64);
        }
    }
    if report.dropped > 0 {
        metrics::counter!(MISSED_UNFIRED_TOTAL).increment(report.dropped as u64);
    }
}

fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// Sleeps until this process's clock shows `at`.
async fn sleep_until(at: DateTime<Utc>) {
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_warned_about_at_once_then_at_most_every_interval() {
        let start = std::time::Instant::now();
        let mut log = ShedLog::default();
        assert_eq!(log.add(0, start), None, "nothing dropped, nothing to say");
        assert_eq!(log.add(5, start), Some(5), "the first drop is told at once");
        let soon = start + Duration::from_secs(1);
        assert_eq!(log.add(7, soon), None);
        assert_eq!(log.add(1, soon + Duration::from_secs(1)), None);
        let later = start + SHED_WARNING_INTERVAL;
        assert_eq!(log.add(2, later), Some(10), "what gathered meanwhile");
        assert_eq!(log.add(3, later + Duration::from_millis(1)), None);
    }
}
