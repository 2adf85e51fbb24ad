//! What one due job turns into: the pure decision, apart from the loop and the store.

use chrono::{DateTime, TimeDelta, Utc};
use cronhook_core::{CompiledSchedule, Job, Misfire, Trigger, ids};
use cronhook_store::{Lease, NewExecution, Occurrence};

/// `fire_all` catches up at most this many missed occurrences (the most recent ones).
pub const MISFIRE_FIRE_ALL_LIMIT: usize = 100;

/// What [`plan_occurrence`] decided for one due job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The executions to create and how the job advances.
    pub occurrence: Occurrence,
    /// Missed instants the misfire policy leaves unfired: `skip` all of them, `fire_once` all
    /// but the newest, `fire_all` those beyond its limit. Zero for an occurrence on time.
    pub dropped: usize,
}

/// Plans the occurrence of a job whose `next_run_at` has come (`≤ now`).
///
/// On time (no later than `misfire_threshold`), the occurrence at `next_run_at` fires with
/// trigger `schedule`, and the job advances to the instant after it. Later than that, cronhook
/// was down or stalled: the job's misfire policy decides — `skip` fires nothing, `fire_once`
/// fires the most recent missed occurrence, `fire_all` each missed one (at most
/// [`MISFIRE_FIRE_ALL_LIMIT`], the most recent), all with trigger `catchup` — and the job
/// advances to the first instant after `now`.
///
/// Returns `None` for a job that is not due.
pub fn plan_occurrence(
    job: &Job,
    schedule: &CompiledSchedule,
    now: DateTime<Utc>,
    misfire_threshold: TimeDelta,
    lease: Option<&Lease>,
) -> Option<Planned> {
    let due = job.next_run_at.filter(|at| *at <= now)?;
    let new_execution = |scheduled_for: DateTime<Utc>, trigger: Trigger| NewExecution {
        id: ids::new_id(ids::EXECUTION),
        workspace_id: job.workspace_id.clone(),
        job_id: job.id.clone(),
        scheduled_for,
        trigger,
        run_at: scheduled_for.max(now),
        lease: lease.cloned(),
    };
    let planned = |executions: Vec<NewExecution>, new_next_run_at, dropped| Planned {
        occurrence: Occurrence {
            executions,
            job_id: job.id.clone(),
            workspace_id: job.workspace_id.clone(),
            expected_next_run_at: due,
            new_next_run_at,
            concurrency: job.spec.concurrency,
        },
        dropped,
    };

    if now - due <= misfire_threshold {
        let execution = new_execution(due, Trigger::Schedule);
        return Some(planned(vec![execution], schedule.next_after(due), 0));
    }

    // Missed occurrences run from `due` up to `now`. Walk them (keeping only the newest the
    // policy can use) so the DST rule sees each instant the way it would have live.
    let keep = match job.spec.misfire {
        Misfire::Skip => 0,
        Misfire::FireOnce => 1,
        Misfire::FireAll => MISFIRE_FIRE_ALL_LIMIT,
    };
    let mut missed = std::collections::VecDeque::with_capacity(keep);
    let mut missed_count = 0usize;
    let mut cursor = Some(due);
    let mut after_now = None;
    while let Some(at) = cursor {
        if at > now {
            after_now = Some(at);
            break;
        }
        missed_count += 1;
        if keep > 0 {
            if missed.len() == keep {
                missed.pop_front();
            }
            missed.push_back(at);
        }
        cursor = schedule.next_after(at);
    }
    let executions: Vec<NewExecution> = missed
        .into_iter()
        .map(|at| new_execution(at, Trigger::Catchup))
        .collect();
    let dropped = missed_count - executions.len();
    Some(planned(executions, after_now, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cronhook_core::JobSpec;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test instant parses")
            .with_timezone(&Utc)
    }

    fn job(cron: &str, misfire: Misfire, next_run_at: &str) -> (Job, CompiledSchedule) {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "name": "j",
            "schedule": {"cron": cron},
            "request": {"url": "https://example.com/"},
            "misfire": misfire,
        }))
        .expect("test spec parses");
        let created = at("2026-01-01T00:00:00Z");
        let schedule =
            CompiledSchedule::compile(&spec.schedule, "job_test", created).expect("compiles");
        let job = Job {
            id: "job_test".into(),
            workspace_id: "wsp_test".into(),
            spec: spec.into(),
            next_run_at: Some(at(next_run_at)),
            created_at: created,
            updated_at: created,
        };
        (job, schedule)
    }

    const THRESHOLD: TimeDelta = TimeDelta::seconds(5);

    #[test]
    fn an_on_time_occurrence_fires_and_advances() {
        let (job, schedule) = job("*/10 * * * * *", Misfire::FireOnce, "2026-01-01T00:00:10Z");
        let planned = plan_occurrence(
            &job,
            &schedule,
            at("2026-01-01T00:00:10.002Z"),
            THRESHOLD,
            None,
        )
        .expect("due");
        assert_eq!(planned.dropped, 0);
        let occurrence = planned.occurrence;
        assert_eq!(occurrence.executions.len(), 1);
        assert_eq!(
            occurrence.executions[0].scheduled_for,
            at("2026-01-01T00:00:10Z")
        );
        assert_eq!(occurrence.executions[0].trigger, Trigger::Schedule);
        assert_eq!(occurrence.expected_next_run_at, at("2026-01-01T00:00:10Z"));
        assert_eq!(occurrence.new_next_run_at, Some(at("2026-01-01T00:00:20Z")));
    }

    #[test]
    fn a_job_not_yet_due_plans_nothing() {
        let (job, schedule) = job("* * * * *", Misfire::FireOnce, "2026-01-01T00:01:00Z");
        assert!(
            plan_occurrence(&job, &schedule, at("2026-01-01T00:00:59Z"), THRESHOLD, None).is_none()
        );
    }

    #[test]
    fn misfire_skip_fires_nothing_and_jumps_past_now() {
        let (job, schedule) = job("* * * * *", Misfire::Skip, "2026-01-01T00:01:00Z");
        let planned = plan_occurrence(&job, &schedule, at("2026-01-01T01:00:30Z"), THRESHOLD, None)
            .expect("due");
        // 00:01 to 01:00, every minute: sixty missed, none fired.
        assert_eq!(planned.dropped, 60);
        let occurrence = planned.occurrence;
        assert!(occurrence.executions.is_empty());
        assert_eq!(occurrence.new_next_run_at, Some(at("2026-01-01T01:01:00Z")));
    }

    #[test]
    fn misfire_fire_once_fires_the_latest_missed() {
        let (job, schedule) = job("* * * * *", Misfire::FireOnce, "2026-01-01T00:01:00Z");
        let planned = plan_occurrence(&job, &schedule, at("2026-01-01T01:00:30Z"), THRESHOLD, None)
            .expect("due");
        assert_eq!(planned.dropped, 59);
        let occurrence = planned.occurrence;
        assert_eq!(occurrence.executions.len(), 1);
        assert_eq!(
            occurrence.executions[0].scheduled_for,
            at("2026-01-01T01:00:00Z")
        );
        assert_eq!(occurrence.executions[0].trigger, Trigger::Catchup);
        assert_eq!(occurrence.new_next_run_at, Some(at("2026-01-01T01:01:00Z")));
    }

    #[test]
    fn misfire_fire_all_is_bounded_to_the_most_recent() {
        let (job, schedule) = job("* * * * *", Misfire::FireAll, "2026-01-01T00:01:00Z");
        let planned = plan_occurrence(&job, &schedule, at("2026-01-01T05:00:30Z"), THRESHOLD, None)
            .expect("due");
        // 00:01 to 05:00: 300 missed, the newest 100 fired.
        assert_eq!(planned.dropped, 300 - MISFIRE_FIRE_ALL_LIMIT);
        let occurrence = planned.occurrence;
        assert_eq!(occurrence.executions.len(), MISFIRE_FIRE_ALL_LIMIT);
        assert_eq!(
            occurrence.executions.last().map(|e| e.scheduled_for),
            Some(at("2026-01-01T05:00:00Z"))
        );
        assert_eq!(
            occurrence.executions.first().map(|e| e.scheduled_for),
            Some(at("2026-01-01T03:21:00Z"))
        );
        assert!(
            occurrence
                .executions
                .iter()
                .all(|e| e.run_at == at("2026-01-01T05:00:30Z"))
        );
    }

    #[test]
    fn the_k8s_missed_run_count_is_not_uniform() {
        // `30 6-16/4 * * 1-5` fires at 06:30, 10:30 and 14:30 on weekdays. Down from Monday
        // 06:00 for 26 hours: missed Monday 06:30, 10:30, 14:30 and Tuesday 06:30.
        let (job, schedule) = job(
            "30 6-16/4 * * 1-5",
            Misfire::FireAll,
            "2026-01-05T06:30:00Z",
        );
        let planned = plan_occurrence(&job, &schedule, at("2026-01-06T08:00:00Z"), THRESHOLD, None)
            .expect("due");
        assert_eq!(planned.dropped, 0, "all four fit under the limit");
        let occurrence = planned.occurrence;
        let missed: Vec<_> = occurrence
            .executions
            .iter()
            .map(|e| e.scheduled_for)
            .collect();
        assert_eq!(
            missed,
            vec![
                at("2026-01-05T06:30:00Z"),
                at("2026-01-05T10:30:00Z"),
                at("2026-01-05T14:30:00Z"),
                at("2026-01-06T06:30:00Z"),
            ]
        );
        assert_eq!(occurrence.new_next_run_at, Some(at("2026-01-06T10:30:00Z")));
    }

    #[test]
    fn a_lease_is_carried_to_every_execution() {
        let (job, schedule) = job("* * * * * *", Misfire::FireOnce, "2026-01-01T00:00:01Z");
        let lease = Lease {
            node_id: "node-a".into(),
            until: at("2026-01-01T00:00:31Z"),
        };
        let occurrence = plan_occurrence(
            &job,
            &schedule,
            at("2026-01-01T00:00:01Z"),
            THRESHOLD,
            Some(&lease),
        )
        .expect("due")
        .occurrence;
        assert_eq!(occurrence.executions[0].lease.as_ref(), Some(&lease));
    }
}
