//! The API's JSON forms of stored objects: jobs (with secret headers masked) and executions.

use chrono::{DateTime, SecondsFormat, Utc};
use cronhook_core::secrets;
use cronhook_core::{CompiledSchedule, Execution, Job, JobSpec};
use serde_json::{Value, json};

/// Fields of the job object that the server sets; ignored when a client sends them.
pub const JOB_READ_ONLY_FIELDS: [&str; 5] = [
    "id",
    "next_run_at",
    "created_at",
    "updated_at",
    "schedule_description",
];

/// A timestamp as the API writes it: RFC 3339 in UTC with a `Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn optional_timestamp(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |at| Value::String(timestamp(at)))
}

/// A spec as JSON with every secret header value masked.
pub fn masked_spec(spec: &JobSpec) -> Value {
    let mut spec = spec.clone();
    for (name, value) in &mut spec.request.headers {
        if secrets::is_secret_header(name) {
            *value = secrets::mask(value);
        }
    }
    serde_json::to_value(&spec).unwrap_or_else(|_| json!({}))
}

/// The API's job object.
pub fn job(job: &Job) -> Value {
    let mut body = masked_spec(&job.spec);
    let description = CompiledSchedule::compile(&job.spec.schedule, &job.id, job.created_at)
        .map(|schedule| Value::String(schedule.describe()))
        .unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut body {
        fields.insert("id".into(), json!(job.id));
        fields.insert("schedule_description".into(), description);
        fields.insert("next_run_at".into(), optional_timestamp(job.next_run_at));
        fields.insert("created_at".into(), json!(timestamp(job.created_at)));
        fields.insert("updated_at".into(), json!(timestamp(job.updated_at)));
    }
    body
}

/// The API's execution object, attempts included.
pub fn execution(execution: &Execution) -> Value {
    json!({
        "id": execution.id,
        "job_id": execution.job_id,
        "scheduled_for": timestamp(execution.scheduled_for),
        "trigger": execution.trigger,
        "status": execution.status,
        "started_at": optional_timestamp(execution.started_at),
        "finished_at": optional_timestamp(execution.finished_at),
        "duration_ms": execution.duration_ms,
        "attempts": execution.attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        serde_json::from_value(json!({
            "name": "n",
            "schedule": {"at": "2030-01-01T00:00:00Z"},
            "request": {
                "url": "https://example.com/",
                "headers": {
                    "Authorization": "Bearer abcdefgh1234",
                    "X-Api-Key": "short",
                    "Accept": "application/json"
                }
            }
        }))
        .expect("spec parses")
    }

    #[test]
    fn secret_headers_are_masked_on_output() {
        let body = masked_spec(&spec());
        let headers = &body["request"]["headers"];
        assert_eq!(headers["Authorization"], "••••1234");
        assert_eq!(headers["X-Api-Key"], "••••");
        assert_eq!(headers["Accept"], "application/json");
        assert!(!body.to_string().contains("abcdefgh"));
    }

    #[test]
    fn a_job_object_carries_its_read_only_fields() {
        let created = DateTime::parse_from_rfc3339("2029-01-01T00:00:00.123Z")
            .expect("valid")
            .with_timezone(&Utc);
        let body = job(&Job {
            id: "job_x".into(),
            workspace_id: "wsp_x".into(),
            spec: spec().into(),
            next_run_at: None,
            created_at: created,
            updated_at: created,
        });
        for field in JOB_READ_ONLY_FIELDS {
            assert!(body.get(field).is_some(), "{field} in {body}");
        }
        assert_eq!(body["created_at"], "2029-01-01T00:00:00.123Z");
        assert_eq!(body["next_run_at"], Value::Null);
        assert_eq!(body["request"]["headers"]["Authorization"], "••••1234");
    }
}
