//! Operator commands end to end: `jobs export`, `jobs apply`, `jobs import-crontab` (clients of
//! the REST API) and `backup` (of the SQLite file under a running server).

use std::time::Duration;

use cronhook_tests::{Api, Cronhook, ServeOptions, Target, Value, json};

/// Runs `cronhook jobs ARGS… --api-url … --api-key …` as `api`'s workspace.
fn jobs(
    cronhook: &Cronhook,
    api: &Api,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut full = vec!["jobs"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--api-url", &cronhook.base_url, "--api-key", &api.key]);
    cronhook.cli(&full, stdin)
}

/// Runs a jobs command that must succeed; returns its standard output.
fn jobs_ok(cronhook: &Cronhook, api: &Api, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, stdout, stderr) = jobs(cronhook, api, args, stdin);
    assert!(ok, "cronhook jobs {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Every job of the workspace (one page is plenty here), by name.
async fn list(api: &Api) -> Vec<Value> {
    let reply = api.call("GET", "/api/v1/jobs?limit=500", None).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let mut jobs = reply.body["data"].as_array().cloned().unwrap_or_default();
    jobs.sort_by_key(|job| job["name"].as_str().unwrap_or_default().to_owned());
    jobs
}

async fn job_named(api: &Api, name: &str) -> Value {
    list(api)
        .await
        .into_iter()
        .find(|job| job["name"] == name)
        .unwrap_or_else(|| panic!("no job {name}"))
}

const FILE: &str = r#"
jobs:
  - name: nightly-report
    schedule: {cron: "0 3 * * *", timezone: Europe/Berlin}
    request:
      method: POST
      url: https://api.example.com/reports
      headers: {Content-Type: application/json}
      body: '{"kind":"nightly"}'
  - name: hourly-ping
    schedule: {cron: "@hourly"}
    request: {url: "https://api.example.com/ping"}
    retry: {max_attempts: 2}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_export_applied_to_an_empty_workspace_creates_the_same_jobs_once() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let acme = cronhook.api("acme");
    acme.create_job(json!({
        "name": "nightly-report",
        "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
        "request": {"method": "POST", "url": "https://api.example.com/reports",
                    "headers": {"Content-Type": "application/json"}, "body": "{\"a\":1}",
                    "timeout_ms": 5000, "follow_redirects": true},
        "retry": {"max_attempts": 5, "initial_delay_ms": 2000},
        "success": {"status": [200, 204], "body_regex": "ok"},
        "concurrency": "forbid",
        "misfire": "skip",
    }))
    .await;
    acme.create_job(json!({
        "name": "a-one-off",
        "schedule": {"at": "2031-01-01T00:00:00Z"},
        "request": {"url": "https://api.example.com/once"},
        "paused": true,
    }))
    .await;

    let exported = jobs_ok(&cronhook, &acme, &["export"], None);
    assert!(exported.contains("jobs:"), "{exported}");
    assert!(
        exported.find("a-one-off") < exported.find("nightly-report"),
        "sorted by name: {exported}"
    );
    for read_only in [
        "id:",
        "next_run_at",
        "created_at",
        "updated_at",
        "schedule_description",
    ] {
        assert!(!exported.contains(read_only), "{read_only} in {exported}");
    }
    assert_eq!(
        jobs_ok(&cronhook, &acme, &["export"], None),
        exported,
        "stable output"
    );

    let beta = cronhook.api("beta");
    let applied = jobs_ok(&cronhook, &beta, &["apply", "-f", "-"], Some(&exported));
    assert!(applied.contains("+ created nightly-report"), "{applied}");
    assert!(applied.contains("+ created a-one-off"), "{applied}");
    assert!(
        applied.contains("2 created, 0 changed, 0 deleted, 0 unchanged"),
        "{applied}"
    );
    assert_eq!(jobs_ok(&cronhook, &beta, &["export"], None), exported);

    let json_export = jobs_ok(&cronhook, &beta, &["export", "--format", "json"], None);
    let parsed: Value = serde_json::from_str(&json_export).expect("JSON export parses");
    assert_eq!(parsed["jobs"].as_array().map(Vec::len), Some(2));
    let again = jobs_ok(&cronhook, &beta, &["apply", "-f", "-"], Some(&json_export));
    assert!(
        again.contains("0 created, 0 changed, 0 deleted, 2 unchanged"),
        "{again}"
    );
    assert_eq!(
        list(&acme).await.len(),
        2,
        "the source workspace is untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_reports_changes_dry_runs_and_prunes() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let api = cronhook.api("acme");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("jobs.yaml");
    std::fs::write(&path, FILE).expect("write the file");
    let file = path.to_str().expect("UTF-8 path");

    let dry = jobs_ok(&cronhook, &api, &["apply", "-f", file, "--dry-run"], None);
    assert!(dry.contains("2 created"), "{dry}");
    assert!(list(&api).await.is_empty(), "a dry run creates nothing");

    let first = jobs_ok(&cronhook, &api, &["apply", "-f", file], None);
    assert!(
        first.contains("2 created, 0 changed, 0 deleted, 0 unchanged"),
        "{first}"
    );
    let second = jobs_ok(&cronhook, &api, &["apply", "-f", file], None);
    assert!(
        second.contains("0 created, 0 changed, 0 deleted, 2 unchanged"),
        "{second}"
    );
    let nightly = job_named(&api, "nightly-report").await;
    assert_eq!(nightly["request"]["method"], "POST");
    assert_eq!(nightly["request"]["body"], "{\"kind\":\"nightly\"}");
    assert_eq!(nightly["schedule"]["timezone"], "Europe/Berlin");
    assert_eq!(
        job_named(&api, "hourly-ping").await["retry"]["max_attempts"],
        2
    );

    // A changed schedule and retry count; the hourly job's retry block left out (defaults).
    let changed = FILE
        .replace("0 3 * * *", "0 4 * * *")
        .replace("    retry: {max_attempts: 2}\n", "")
        .replace(
            "  - name: nightly-report\n",
            "  - name: nightly-report\n    retry: {max_attempts: 5}\n",
        );
    std::fs::write(&path, &changed).expect("write the file");
    let dry = jobs_ok(&cronhook, &api, &["apply", "-f", file, "--dry-run"], None);
    assert!(
        dry.contains(
            "~ changed nightly-report: schedule.cron \"0 3 * * *\" → \"0 4 * * *\", retry.max_attempts 3 → 5"
        ),
        "{dry}"
    );
    assert!(
        dry.contains("~ changed hourly-ping: retry.max_attempts 2 → 3"),
        "{dry}"
    );
    assert!(
        dry.contains("0 created, 2 changed, 0 deleted, 0 unchanged"),
        "{dry}"
    );
    assert_eq!(
        job_named(&api, "nightly-report").await["schedule"]["cron"],
        "0 3 * * *",
        "a dry run changes nothing"
    );
    let applied = jobs_ok(&cronhook, &api, &["apply", "-f", file], None);
    assert_eq!(applied, dry, "a dry run prints what the run does");
    let nightly = job_named(&api, "nightly-report").await;
    assert_eq!(nightly["schedule"]["cron"], "0 4 * * *");
    assert_eq!(nightly["retry"]["max_attempts"], 5);
    assert_eq!(
        job_named(&api, "hourly-ping").await["retry"]["max_attempts"],
        3
    );

    // Pruning: only the nightly job stays.
    let only_nightly = changed
        .split("  - name: hourly-ping")
        .next()
        .expect("first part")
        .to_owned();
    let dry = jobs_ok(
        &cronhook,
        &api,
        &["apply", "-f", "-", "--prune", "--dry-run"],
        Some(&only_nightly),
    );
    assert!(dry.contains("- deleted hourly-ping"), "{dry}");
    assert_eq!(list(&api).await.len(), 2, "a dry run deletes nothing");
    let without_prune = jobs_ok(&cronhook, &api, &["apply", "-f", "-"], Some(&only_nightly));
    assert!(
        without_prune.contains("0 created, 0 changed, 0 deleted, 1 unchanged"),
        "{without_prune}"
    );
    let pruned = jobs_ok(
        &cronhook,
        &api,
        &["apply", "-f", "-", "--prune"],
        Some(&only_nightly),
    );
    assert!(
        pruned.contains("0 created, 0 changed, 1 deleted, 1 unchanged"),
        "{pruned}"
    );
    let names: Vec<_> = list(&api).await.iter().map(|j| j["name"].clone()).collect();
    assert_eq!(names, [json!("nightly-report")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_files_and_refused_jobs_fail_with_the_reason() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let api = cronhook.api("acme");

    let duplicate = format!(
        "{FILE}  - name: hourly-ping\n    schedule: {{cron: '@daily'}}\n    request: {{url: 'https://e.example/'}}\n"
    );
    let (ok, _, stderr) = jobs(&cronhook, &api, &["apply", "-f", "-"], Some(&duplicate));
    assert!(!ok);
    assert!(stderr.contains("`hourly-ping`"), "{stderr}");

    let typo = "jobs:\n  - name: x\n    schedule: {cron: '@daily'}\n    request: {url: 'https://e.example/', methd: GET}\n";
    let (ok, _, stderr) = jobs(&cronhook, &api, &["apply", "-f", "-"], Some(typo));
    assert!(!ok);
    assert!(
        stderr.contains("methd") && stderr.contains("line 4"),
        "{stderr}"
    );

    let invalid_cron = "{\"jobs\": [{\"name\": \"x\", \"schedule\": {\"cron\": \"61 * * * *\"}, \"request\": {\"url\": \"https://e.example/\"}}]}";
    let (ok, _, stderr) = jobs(&cronhook, &api, &["apply", "-f", "-"], Some(invalid_cron));
    assert!(!ok);
    assert!(stderr.contains("x: schedule.cron"), "{stderr}");
    assert!(
        list(&api).await.is_empty(),
        "nothing created from an invalid file"
    );

    // The server refuses a one-off time in the past: the job is named, the others applied.
    let past = format!(
        "{FILE}  - name: too-late\n    schedule: {{at: '2001-01-01T00:00:00Z'}}\n    request: {{url: 'https://e.example/'}}\n"
    );
    let (ok, stdout, stderr) = jobs(&cronhook, &api, &["apply", "-f", "-"], Some(&past));
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("too-late") && stderr.contains("schedule.at"),
        "{stderr}"
    );
    assert!(
        stdout.contains("2 created") && stdout.contains("1 failed"),
        "{stdout}"
    );

    let (ok, _, stderr) = cronhook.cli(
        &[
            "jobs",
            "export",
            "--api-url",
            &cronhook.base_url,
            "--api-key",
            "chk_wrong",
        ],
        None,
    );
    assert!(!ok);
    assert!(stderr.contains("401"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_masked_secret_applied_back_keeps_the_real_one() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let secret = "Bearer real-secret-value-1234";
    api.create_job(json!({
        "name": "with-secret",
        "schedule": {"cron": "0 0 1 1 *"},
        "request": {"method": "POST", "url": target.url("/secret"), "body": "v1",
                    "headers": {"Authorization": secret, "X-Plain": "visible"}},
    }))
    .await;

    let exported = jobs_ok(&cronhook, &api, &["export"], None);
    assert!(exported.contains("••••1234"), "{exported}");
    assert!(!exported.contains("real-secret"), "{exported}");
    let unchanged = jobs_ok(&cronhook, &api, &["apply", "-f", "-"], Some(&exported));
    assert!(unchanged.contains("0 changed"), "{unchanged}");

    // Change the body: the PATCH carries the masked value back.
    let edited = exported.replace("body: v1", "body: v2");
    assert_ne!(edited, exported);
    let changed = jobs_ok(&cronhook, &api, &["apply", "-f", "-"], Some(&edited));
    assert!(
        changed.contains("~ changed with-secret: request.body \"v1\" → \"v2\""),
        "{changed}"
    );

    let job = job_named(&api, "with-secret").await;
    let id = job["id"].as_str().expect("id");
    let run = api
        .call("POST", &format!("/api/v1/jobs/{id}/run"), None)
        .await;
    assert_eq!(run.status, 202, "{:?}", run.body);
    let execution = api
        .wait_final(
            run.body["id"].as_str().expect("execution id"),
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    let received = target.received("/secret");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("authorization"), Some(secret));
    assert_eq!(received[0].header("x-plain"), Some("visible"));
    assert_eq!(received[0].body, b"v2");

    // A real value in the file that differs from the stored one replaces it (shown masked).
    let rotated = edited.replace("••••1234", "Bearer rotated-value-5678");
    let changed = jobs_ok(&cronhook, &api, &["apply", "-f", "-"], Some(&rotated));
    assert!(
        changed.contains("request.headers.Authorization \"••••1234\" → \"••••5678\" (new secret)"),
        "{changed}"
    );
    assert!(!changed.contains("rotated-value"), "{changed}");
    assert_eq!(
        job_named(&api, "with-secret").await["request"]["headers"]["Authorization"],
        "••••5678"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_crontab_turns_curl_and_wget_lines_into_jobs_and_says_why_not_for_the_rest() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let crontab = format!(
        "# m h dom mon dow command\n\
         MAILTO=ops@example.com\n\
         */5 * * * * curl -fsS {ping} >/dev/null 2>&1\n\
         CRON_TZ=Europe/Berlin\n\
         0 3 * * 1-5 /usr/bin/curl -sS -X POST -H 'Content-Type: application/json' -H \"Authorization: Bearer abcdefgh1234\" -d '{{\"kind\":\"nightly\"}}' --max-time 120 {report} || true\n\
         @hourly wget -q -O /dev/null --method=PUT --header='X-Source: cron' --body-data='a=1' {hourly}\n\
         0 4 * * * curl -k {ping}\n\
         0 5 * * * /opt/scripts/backup.sh --full\n\
         0 6 * * * curl -d @payload.json {ping}\n\
         0 7 * * * curl --frobnicate {ping}\n",
        ping = target.url("/health/ping"),
        report = target.url("/reports/nightly"),
        hourly = target.url("/hourly"),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("crontab");
    std::fs::write(&path, &crontab).expect("write the crontab");
    let file = path.to_str().expect("UTF-8 path");

    let (ok, preview, stderr) = jobs(
        &cronhook,
        &api,
        &["import-crontab", file, "--dry-run"],
        None,
    );
    assert!(ok, "{stderr}");
    assert!(preview.contains("jobs:"), "{preview}");
    assert!(list(&api).await.is_empty(), "a dry run creates nothing");

    let (ok, stdout, stderr) = jobs(&cronhook, &api, &["import-crontab", file], None);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("3 created"), "{stdout}");
    for (line, why) in [
        (2, "not a job"),
        (4, "not a job"),
        (7, "TLS verification cannot be disabled"),
        (8, "not curl or wget"),
        (9, "from a file"),
        (10, "`--frobnicate` is not supported"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("line {line}: ")) && l.contains(why)),
            "line {line} ({why}) not reported:\n{stderr}"
        );
    }

    let jobs_now = list(&api).await;
    assert_eq!(jobs_now.len(), 3, "{jobs_now:?}");
    let ping = jobs_now
        .iter()
        .find(|job| job["request"]["url"] == target.url("/health/ping"))
        .expect("the ping job");
    assert_eq!(
        ping["schedule"],
        json!({"cron": "*/5 * * * *", "timezone": "UTC"})
    );
    assert_eq!(ping["request"]["method"], "GET");
    assert_eq!(ping["name"], "127-0-0-1-health-ping");

    let report = jobs_now
        .iter()
        .find(|job| job["request"]["url"] == target.url("/reports/nightly"))
        .expect("the report job");
    assert_eq!(
        report["schedule"],
        json!({"cron": "0 3 * * 1-5", "timezone": "Europe/Berlin"})
    );
    assert_eq!(report["request"]["method"], "POST");
    assert_eq!(report["request"]["body"], "{\"kind\":\"nightly\"}");
    assert_eq!(report["request"]["timeout_ms"], 120_000);
    assert_eq!(
        report["request"]["headers"]["Content-Type"],
        "application/json"
    );
    assert_eq!(report["request"]["headers"]["Authorization"], "••••1234");

    let hourly = jobs_now
        .iter()
        .find(|job| job["request"]["url"] == target.url("/hourly"))
        .expect("the hourly job");
    assert_eq!(hourly["schedule"]["cron"], "@hourly");
    assert_eq!(hourly["request"]["method"], "PUT");
    assert_eq!(hourly["request"]["body"], "a=1");
    assert_eq!(hourly["request"]["headers"]["X-Source"], "cron");
    assert_eq!(hourly["request"]["follow_redirects"], true);

    // The report job sends what curl sent.
    let id = report["id"].as_str().expect("id");
    let run = api
        .call("POST", &format!("/api/v1/jobs/{id}/run"), None)
        .await;
    assert_eq!(run.status, 202, "{:?}", run.body);
    api.wait_final(
        run.body["id"].as_str().expect("execution id"),
        Duration::from_secs(15),
    )
    .await;
    let received = target.received("/reports/nightly");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(
        received[0].header("authorization"),
        Some("Bearer abcdefgh1234")
    );
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    assert_eq!(received[0].body, b"{\"kind\":\"nightly\"}");

    // Importing again changes nothing.
    let again = jobs_ok(&cronhook, &api, &["import-crontab", file], None);
    assert!(
        again.contains("0 created, 0 changed, 0 deleted, 3 unchanged"),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_serving_opens_with_the_same_jobs() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    for index in 0..5 {
        api.create_job(json!({
            "name": format!("job-{index}"),
            "schedule": {"cron": "* * * * * *"},
            "request": {"url": target.url("/tick")},
        }))
        .await;
    }
    // The jobs fire every second, so the server writes while the copy is made.
    target.wait_for("/tick", 5, Duration::from_secs(10)).await;
    let backup = cronhook.data_dir.join("backup.db");
    let backup_path = backup.to_str().expect("UTF-8 path");
    let (ok, stdout, stderr) = cronhook.cli(&["backup", backup_path], None);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(backup.is_file());

    let (ok, _, stderr) = cronhook.cli(&["backup", backup_path], None);
    assert!(!ok, "an existing file is never overwritten");
    assert!(stderr.contains("already exists"), "{stderr}");
    let (ok, _, stderr) = cronhook.cli(
        &[
            "--database-url",
            "postgres://u:p@127.0.0.1:1/db",
            "backup",
            "/tmp/never.db",
        ],
        None,
    );
    assert!(!ok);
    assert!(stderr.contains("pg_dump"), "{stderr}");

    let names =
        |jobs: Vec<Value>| -> Vec<Value> { jobs.iter().map(|j| j["name"].clone()).collect() };
    let original = names(list(&api).await);
    let restored = Cronhook::start_on(
        Some(&format!("sqlite://{backup_path}")),
        ServeOptions::default(),
    )
    .await;
    let restored_api = Api {
        base_url: restored.base_url.clone(),
        ..api.clone()
    };
    assert_eq!(names(list(&restored_api).await), original);
    assert_eq!(original.len(), 5);
}
