//! `cronhook jobs …`: export, apply and import-crontab. These commands are clients of the REST
//! API (`--api-url`, `--api-key`); they never open the database.
//!
//! A jobs file is `{"jobs": [job, …]}` in YAML or JSON, each job as the API shows it without
//! its read-only fields. Jobs are matched by name. Secret header values are exported masked
//! (`••••` and the last 4 characters), as the API shows them; applying a masked value keeps the
//! stored secret, so an exported file can live in version control and be applied again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use cronhook_core::net::TargetPolicy;
use cronhook_core::validate::validate_job;
use cronhook_core::{JobSpec, ScheduleSpec, secrets};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crontab;

/// The writable fields of the API's job object (a `JobSpec`); the others (`id`, `next_run_at`,
/// `created_at`, `updated_at`, `schedule_description`, and any the server adds) are read-only.
const SPEC_FIELDS: [&str; 10] = [
    "name",
    "schedule",
    "request",
    "retry",
    "success",
    "concurrency",
    "misfire",
    "alerts",
    "auto_disable_after_failures",
    "paused",
];

/// The most jobs asked for per page when listing.
const PAGE_SIZE: u32 = 500;

/// Where the API is and the key to use.
#[derive(Debug, Args)]
pub struct ApiOptions {
    /// The cronhook API to talk to.
    #[arg(
        long,
        env = "CRONHOOK_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api_url: String,
    /// An API key of the workspace (`cronhook keys create --workspace SLUG`).
    #[arg(long, env = "CRONHOOK_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// The formats of a jobs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    Yaml,
    Json,
}

/// `cronhook jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Print the workspace's jobs as a jobs file, sorted by name. Secret header values are
    /// masked, as the API shows them; applying the file keeps the stored secrets.
    Export {
        #[command(flatten)]
        api: ApiOptions,
        /// The file format.
        #[arg(long, value_enum, default_value_t = FileFormat::Yaml)]
        format: FileFormat,
    },
    /// Make the workspace's jobs match a jobs file, matched by name: create the missing ones,
    /// change the different ones, and (with --prune) delete the ones not in the file.
    ///
    /// A field left out of a job takes its default. A masked secret header value (`••••1234`,
    /// as exported) keeps the stored secret; a real value replaces it when its masked form
    /// differs from the stored one's (or always, with --resend-secrets).
    Apply {
        #[command(flatten)]
        api: ApiOptions,
        /// The jobs file (YAML or JSON); `-` reads standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: String,
        /// Print what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Delete the workspace's jobs that the file does not name.
        #[arg(long)]
        prune: bool,
        /// Send every real (unmasked) secret header value in the file, even when its masked form
        /// matches the stored secret's (the API never shows a secret, so a change that keeps
        /// the last 4 characters cannot be seen otherwise).
        #[arg(long)]
        resend_secrets: bool,
    },
    /// Turn crontab lines that run curl or wget into jobs (method, headers, body, URL,
    /// schedule); every line that could not be turned is printed on standard error with why.
    ///
    /// Jobs are named after the URL's host and path and use the time zone of the last
    /// CRON_TZ= or TZ= line before them (UTC without one). Jobs that already exist with the
    /// same name are updated, as `jobs apply` does.
    ImportCrontab {
        #[command(flatten)]
        api: ApiOptions,
        /// The crontab file; `-` reads standard input.
        #[arg(value_name = "FILE")]
        file: String,
        /// Print the jobs file (YAML) instead of creating the jobs.
        #[arg(long)]
        dry_run: bool,
    },
}

/// A jobs file as written.
#[derive(Debug, Serialize)]
struct JobsFileOut<'a> {
    jobs: &'a [JobSpec],
}

/// A jobs file as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsFileIn {
    jobs: Vec<JobSpec>,
}

pub async fn run(command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::Export { api, format } => export(&api, format).await,
        JobsCommand::Apply {
            api,
            file,
            dry_run,
            prune,
            resend_secrets,
        } => {
            let (text, format) = read_input(&file)?;
            let specs = parse_jobs_file(&text, format, &file)?;
            check_jobs(&specs, &file)?;
            let desired = specs
                .into_iter()
                .map(|spec| Desired { spec, note: None })
                .collect::<Vec<_>>();
            let client = Client::new(&api)?;
            reconcile(
                &client,
                &desired,
                Options {
                    dry_run,
                    prune,
                    resend_secrets,
                },
            )
            .await
        }
        JobsCommand::ImportCrontab { api, file, dry_run } => {
            import_crontab(&api, &file, dry_run).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The API client

/// A client of the REST API with one key.
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// A job as the server holds it: its id and its spec (secret headers masked).
struct ServerJob {
    id: String,
    spec: JobSpec,
}

impl Client {
    fn new(api: &ApiOptions) -> anyhow::Result<Client> {
        let key = api
            .api_key
            .clone()
            .filter(|key| !key.trim().is_empty())
            .context(
                "an API key is needed: pass --api-key or set CRONHOOK_API_KEY \
                 (create one with `cronhook keys create --workspace SLUG`)",
            )?;
        let base = api.api_url.trim_end_matches('/').to_owned();
        url::Url::parse(&base).with_context(|| format!("--api-url: `{base}` is not a URL"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("cronhook-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("setting up the HTTP client")?;
        Ok(Client { http, base, key })
    }

    /// Sends a request; the parsed JSON answer (`Null` for an empty one), or the API's
    /// `detail` as the error.
    async fn send(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path_and_query}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| {
            anyhow!(
                "cannot reach the cronhook API at {} ({error}); is `cronhook serve` running \
                 there? (--api-url, CRONHOOK_API_URL)",
                self.base
            )
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer to {method} {path_and_query}"))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).with_context(|| {
                format!("the answer to {method} {path_and_query} is not JSON: {text:.200}")
            });
        }
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|body| {
                body.get("detail")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("{text:.200}"));
        let hint = match status.as_u16() {
            401 => " (check --api-key / CRONHOOK_API_KEY)",
            _ => "",
        };
        Err(anyhow!("{detail} (HTTP {}){hint}", status.as_u16()))
    }

    /// Every job of the workspace, page by page.
    async fn list_jobs(&self) -> anyhow::Result<Vec<ServerJob>> {
        let mut jobs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/jobs?limit={PAGE_SIZE}");
            if let Some(cursor) = &cursor {
                path.push_str("&cursor=");
                path.extend(url::form_urlencoded::byte_serialize(cursor.as_bytes()));
            }
            let page = self
                .send(reqwest::Method::GET, &path, None)
                .await
                .context("listing the workspace's jobs")?;
            let data = page
                .get("data")
                .and_then(Value::as_array)
                .context("the job list has no `data` array")?;
            for job in data {
                jobs.push(server_job(job)?);
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(jobs)
    }
}

/// A job object from the API as its id and spec.
fn server_job(job: &Value) -> anyhow::Result<ServerJob> {
    let id = job
        .get("id")
        .and_then(Value::as_str)
        .context("a job from the API has no id")?
        .to_owned();
    let mut fields = job.clone();
    if let Value::Object(map) = &mut fields {
        map.retain(|field, _| SPEC_FIELDS.contains(&field.as_str()));
    }
    let spec: JobSpec = serde_json::from_value(fields).with_context(|| {
        format!(
            "the API's job {id} does not read as a job spec (is this cronhook the server's \
             version?)"
        )
    })?;
    Ok(ServerJob { id, spec })
}

// ---------------------------------------------------------------------------------------------
// Files

/// The text of FILE (or standard input for `-`) and the format it is in.
fn read_input(file: &str) -> anyhow::Result<(String, FileFormat)> {
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
    };
    let extension = Path::new(file)
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase);
    let format = match extension.as_deref() {
        Some("json") => FileFormat::Json,
        Some("yaml" | "yml") => FileFormat::Yaml,
        _ if text.trim_start().starts_with('{') => FileFormat::Json,
        _ => FileFormat::Yaml,
    };
    Ok((text, format))
}

/// Reads a jobs file into specs; an error names the place (line and column) and, where it can,
/// the job.
fn parse_jobs_file(text: &str, format: FileFormat, source: &str) -> anyhow::Result<Vec<JobSpec>> {
    let typed = match format {
        FileFormat::Json => serde_json::from_str::<JobsFileIn>(text).map_err(|e| e.to_string()),
        FileFormat::Yaml => serde_yaml_ng::from_str::<JobsFileIn>(text).map_err(|e| e.to_string()),
    };
    let message = match typed {
        Ok(file) => return Ok(file.jobs),
        Err(message) => message,
    };
    // Which job is wrong, when the file is well-formed enough to tell.
    let loose = match format {
        FileFormat::Json => serde_json::from_str::<Value>(text).ok(),
        FileFormat::Yaml => serde_yaml_ng::from_str::<Value>(text).ok(),
    };
    let which = loose
        .as_ref()
        .and_then(|value| value.get("jobs"))
        .and_then(Value::as_array)
        .and_then(|jobs| {
            jobs.iter().enumerate().find_map(|(index, job)| {
                serde_json::from_value::<JobSpec>(job.clone()).err()?;
                Some(match job.get("name").and_then(Value::as_str) {
                    Some(name) => format!("job `{name}`: "),
                    // serde_yaml_ng names the path itself.
                    None if message.contains("jobs[") => String::new(),
                    None => format!("jobs[{index}]: "),
                })
            })
        })
        .unwrap_or_default();
    let hint = if message.contains("untagged enum ScheduleSpec") {
        " — a schedule is {cron: EXPR, timezone: ZONE} or {at: RFC 3339 time}"
    } else if message.contains("untagged enum StatusRule") {
        " — success.status is classes like \"2xx,3xx\" or a list of codes like [200, 204]"
    } else {
        ""
    };
    let kind = match format {
        FileFormat::Json => "JSON",
        FileFormat::Yaml => "YAML",
    };
    bail!("{source} is not a valid jobs file ({kind}): {which}{message}{hint}")
}

/// Checks a file's jobs as a whole before anything is sent: unique names, and each job valid
/// as far as the client can tell (the server checks the rest, such as its target policy).
fn check_jobs(specs: &[JobSpec], source: &str) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for spec in specs {
        if !seen.insert(spec.name.as_str()) {
            duplicates.insert(spec.name.as_str());
        }
    }
    if !duplicates.is_empty() {
        let names = duplicates
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        bail!(
            "{source} names more than one job {names}; job names must be unique (jobs are \
             matched by name)"
        );
    }
    let policy = TargetPolicy {
        allow_private: true,
        allowed_nets: Vec::new(),
    };
    let problems = specs
        .iter()
        .filter_map(|spec| {
            validate_job(spec, "job_client_check", chrono::Utc::now(), &policy)
                .err()
                .map(|error| format!("  {}: {}: {}", spec.name, error.field, error.message))
        })
        .collect::<Vec<_>>();
    if !problems.is_empty() {
        bail!(
            "{source} has invalid jobs; nothing was changed:\n{}",
            problems.join("\n")
        );
    }
    Ok(())
}

/// A jobs file's text.
fn render_jobs_file(specs: &[JobSpec], format: FileFormat) -> anyhow::Result<String> {
    let file = JobsFileOut { jobs: specs };
    Ok(match format {
        FileFormat::Json => serde_json::to_string_pretty(&file).context("writing JSON")?,
        FileFormat::Yaml => serde_yaml_ng::to_string(&file).context("writing YAML")?,
    })
}

// ---------------------------------------------------------------------------------------------
// export

async fn export(api: &ApiOptions, format: FileFormat) -> anyhow::Result<()> {
    let client = Client::new(api)?;
    let mut specs = client
        .list_jobs()
        .await?
        .into_iter()
        .map(|job| job.spec)
        .collect::<Vec<_>>();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    let text = render_jobs_file(&specs, format)?;
    if format == FileFormat::Yaml {
        crate::print_line(
            "# cronhook jobs file (`cronhook jobs apply -f FILE`). Secret header values are masked\n\
             # (••••1234); applying a masked value keeps the stored secret.",
        );
    }
    crate::print_line(text.trim_end());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// apply

/// A job the workspace should have, with an optional note for the output (the crontab line).
struct Desired {
    spec: JobSpec,
    note: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Options {
    dry_run: bool,
    prune: bool,
    resend_secrets: bool,
}

/// What one job needs.
enum Action {
    Create {
        spec: Box<JobSpec>,
    },
    Change {
        id: String,
        name: String,
        patch: Value,
        changes: Vec<String>,
    },
    Delete {
        id: String,
        name: String,
    },
}

/// Makes the server's jobs match `desired`; prints one line per created, changed and deleted
/// job and a summary. Errors of single jobs are reported and counted; the result is an error
/// when any job failed.
async fn reconcile(client: &Client, desired: &[Desired], options: Options) -> anyhow::Result<()> {
    let server = client.list_jobs().await?;
    let by_name: BTreeMap<&str, &ServerJob> = server
        .iter()
        .map(|job| (job.spec.name.as_str(), job))
        .collect();

    let mut actions: Vec<(Action, Option<&str>)> = Vec::new();
    let mut unchanged = 0_usize;
    let mut problems = Vec::new();
    for wanted in desired {
        let spec = &wanted.spec;
        match by_name.get(spec.name.as_str()) {
            None => {
                if let Some(header) = masked_headers(spec).first() {
                    problems.push(format!(
                        "{}: request.headers.{header} is a masked value; a new job needs the \
                         real secret",
                        spec.name
                    ));
                    continue;
                }
                actions.push((
                    Action::Create {
                        spec: Box::new(spec.clone()),
                    },
                    wanted.note.as_deref(),
                ));
            }
            Some(current) => match plan_change(current, spec, options.resend_secrets) {
                Err(problem) => problems.push(format!("{}: {problem}", spec.name)),
                Ok(None) => unchanged += 1,
                Ok(Some((patch, changes))) => actions.push((
                    Action::Change {
                        id: current.id.clone(),
                        name: spec.name.clone(),
                        patch,
                        changes,
                    },
                    wanted.note.as_deref(),
                )),
            },
        }
    }
    if !problems.is_empty() {
        bail!(
            "nothing was changed:\n{}",
            problems
                .iter()
                .map(|problem| format!("  {problem}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    if options.prune {
        let wanted: BTreeSet<&str> = desired.iter().map(|d| d.spec.name.as_str()).collect();
        for (name, job) in &by_name {
            if !wanted.contains(name) {
                actions.push((
                    Action::Delete {
                        id: job.id.clone(),
                        name: (*name).to_owned(),
                    },
                    None,
                ));
            }
        }
    }

    let (mut created, mut changed, mut deleted, mut failed) = (0_usize, 0, 0, 0);
    for (action, note) in actions {
        let note = note.map(|note| format!(" ({note})")).unwrap_or_default();
        match action {
            Action::Create { spec } => {
                let result = if options.dry_run {
                    Ok(())
                } else {
                    create(client, &spec).await
                };
                match result {
                    Ok(()) => {
                        created += 1;
                        crate::print_line(&format!("+ created {}{note}", spec.name));
                    }
                    Err(error) => {
                        failed += 1;
                        report(&format!("could not create {}: {error:#}", spec.name));
                    }
                }
            }
            Action::Change {
                id,
                name,
                patch,
                changes,
            } => {
                let result = if options.dry_run {
                    Ok(Value::Null)
                } else {
                    client
                        .send(
                            reqwest::Method::PATCH,
                            &format!("/api/v1/jobs/{id}"),
                            Some(&patch),
                        )
                        .await
                };
                match result {
                    Ok(_) => {
                        changed += 1;
                        crate::print_line(&format!(
                            "~ changed {name}: {}{note}",
                            changes.join(", ")
                        ));
                    }
                    Err(error) => {
                        failed += 1;
                        report(&format!("could not change {name}: {error:#}"));
                    }
                }
            }
            Action::Delete { id, name } => {
                let result = if options.dry_run {
                    Ok(Value::Null)
                } else {
                    client
                        .send(reqwest::Method::DELETE, &format!("/api/v1/jobs/{id}"), None)
                        .await
                };
                match result {
                    Ok(_) => {
                        deleted += 1;
                        crate::print_line(&format!("- deleted {name}"));
                    }
                    Err(error) => {
                        failed += 1;
                        report(&format!("could not delete {name}: {error:#}"));
                    }
                }
            }
        }
    }
    let failures = if failed > 0 {
        format!(", {failed} failed")
    } else {
        String::new()
    };
    crate::print_line(&format!(
        "{created} created, {changed} changed, {deleted} deleted, {unchanged} unchanged{failures}"
    ));
    if options.dry_run {
        report("dry run: nothing was changed");
    }
    if failed > 0 {
        bail!("{failed} job(s) could not be applied (see above)");
    }
    Ok(())
}

async fn create(client: &Client, spec: &JobSpec) -> anyhow::Result<()> {
    let body = serde_json::to_value(spec).context("encoding the job")?;
    client
        .send(reqwest::Method::POST, "/api/v1/jobs", Some(&body))
        .await
        .map(drop)
}

/// A line on standard error.
#[allow(clippy::print_stderr)]
fn report(text: &str) {
    eprintln!("{text}");
}

/// The names of the secret headers of `spec` whose values are masked.
fn masked_headers(spec: &JobSpec) -> Vec<&str> {
    spec.request
        .headers
        .iter()
        .filter(|(_, value)| value.starts_with(secrets::MASK))
        .map(|(name, _)| name.as_str())
        .collect()
}

/// What it takes to turn `current` into `wanted`: `None` when they are the same, else the merge
/// patch (the whole wanted spec, with `null` for every member the server has and the file does
/// not) and the readable changes. Secret headers are compared in their masked forms.
fn plan_change(
    current: &ServerJob,
    wanted: &JobSpec,
    resend_secrets: bool,
) -> Result<Option<(Value, Vec<String>)>, String> {
    let stored_headers = &current.spec.request.headers;
    // What the file says, as the server would show it (real secrets masked where they match).
    let mut compared = wanted.clone();
    let mut resent = Vec::new();
    for (name, value) in &mut compared.request.headers {
        if !secrets::is_secret_header(name) {
            continue;
        }
        let stored = stored_headers.get(name).or_else(|| {
            stored_headers
                .iter()
                .find(|(stored_name, _)| stored_name.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        });
        if value.starts_with(secrets::MASK) {
            if stored != Some(value) {
                return Err(format!(
                    "request.headers.{name} is a masked value ({value}) that does not match \
                     the stored secret ({}); put the real value in the file",
                    stored.map_or("none stored", String::as_str)
                ));
            }
            continue;
        }
        let masked = secrets::mask(value);
        if stored == Some(&masked) && !resend_secrets {
            *value = masked;
        } else {
            // Shown masked in the diff; a real value differs from any masked one.
            resent.push(name.clone());
        }
    }
    let wanted_json = serde_json::to_value(wanted).map_err(|error| error.to_string())?;
    let compared_json = serde_json::to_value(&compared).map_err(|error| error.to_string())?;
    let current_json = serde_json::to_value(&current.spec).map_err(|error| error.to_string())?;
    if compared_json == current_json {
        return Ok(None);
    }
    let mut before = BTreeMap::new();
    let mut after = BTreeMap::new();
    flatten("", &current_json, &mut before);
    flatten("", &compared_json, &mut after);
    let paths: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut changes = Vec::new();
    for path in paths {
        let old = before.get(path);
        let new = after.get(path);
        let is_resent = path
            .strip_prefix("request.headers.")
            .is_some_and(|name| resent.iter().any(|r| r == name));
        if old == new && !is_resent {
            continue;
        }
        let secret = path
            .strip_prefix("request.headers.")
            .is_some_and(secrets::is_secret_header);
        let show = |value: Option<&Value>| match value {
            None => "(none)".to_owned(),
            Some(Value::String(text)) if secret && !text.starts_with(secrets::MASK) => {
                format!("{:?} (new secret)", secrets::mask(text))
            }
            Some(value) => value.to_string(),
        };
        changes.push(format!("{path} {} → {}", show(old), show(new)));
    }
    changes.sort_by_key(|change| field_rank(change));
    Ok(Some((merge_patch_to(&current_json, &wanted_json), changes)))
}

/// Orders changed fields as a job reads: name, schedule, request, then the rest.
fn field_rank(change: &str) -> usize {
    const ORDER: [&str; 10] = [
        "name",
        "schedule",
        "request",
        "retry",
        "success",
        "concurrency",
        "misfire",
        "alerts",
        "auto_disable_after_failures",
        "paused",
    ];
    ORDER
        .iter()
        .position(|field| change.starts_with(field))
        .unwrap_or(ORDER.len())
}

/// Leaves of a JSON object, by dotted path (arrays and scalars are leaves).
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, value, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// A merge patch (RFC 7396) that turns `current` into `wanted`: `wanted` whole, plus `null` for
/// each member of `current` that `wanted` lacks, at every depth.
fn merge_patch_to(current: &Value, wanted: &Value) -> Value {
    match (current, wanted) {
        (Value::Object(current), Value::Object(wanted)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in wanted {
                let member = match current.get(key) {
                    Some(existing) => merge_patch_to(existing, value),
                    None => value.clone(),
                };
                patch.insert(key.clone(), member);
            }
            for key in current.keys() {
                if !wanted.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => wanted.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// import-crontab

async fn import_crontab(api: &ApiOptions, file: &str, dry_run: bool) -> anyhow::Result<()> {
    let (text, _) = read_input(file)?;
    let import = crontab::parse_crontab(&text);
    for refused in &import.refused {
        report(&format!(
            "line {}: {}: {}",
            refused.line, refused.text, refused.why
        ));
    }
    if dry_run {
        let specs = import
            .jobs
            .iter()
            .map(|job| job.spec.clone())
            .collect::<Vec<_>>();
        crate::print_line(&format!(
            "# jobs from {file} (`cronhook jobs import-crontab`); create them with \
             `cronhook jobs apply -f FILE`"
        ));
        crate::print_line(render_jobs_file(&specs, FileFormat::Yaml)?.trim_end());
        return Ok(());
    }
    if import.jobs.is_empty() {
        report(&format!("no line of {file} became a job"));
        return Ok(());
    }
    let desired = import
        .jobs
        .into_iter()
        .map(|job| {
            let note = format!("line {}: {}", job.line, summary(&job.spec));
            Desired {
                spec: job.spec,
                note: Some(note),
            }
        })
        .collect::<Vec<_>>();
    let client = Client::new(api)?;
    reconcile(
        &client,
        &desired,
        Options {
            dry_run: false,
            prune: false,
            resend_secrets: false,
        },
    )
    .await
}

/// `POST https://… at "0 3 * * *" UTC`.
fn summary(spec: &JobSpec) -> String {
    let when = match &spec.schedule {
        ScheduleSpec::Cron { cron, timezone } => format!("{cron:?} {timezone}"),
        ScheduleSpec::At { at } => at.to_rfc3339(),
    };
    format!("{} {} at {when}", spec.request.method, spec.request.url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> JobSpec {
        serde_json::from_value(value).expect("spec parses")
    }

    fn stored(spec: JobSpec) -> ServerJob {
        // As the API shows it: secrets masked.
        let mut spec = spec;
        for (name, value) in &mut spec.request.headers {
            if secrets::is_secret_header(name) {
                *value = secrets::mask(value);
            }
        }
        ServerJob {
            id: "job_1".into(),
            spec,
        }
    }

    fn base() -> Value {
        json!({
            "name": "nightly-report",
            "schedule": {"cron": "0 3 * * *"},
            "request": {"url": "https://example.com/r",
                        "headers": {"Authorization": "Bearer abcdefgh1234", "X-Old": "1"}},
            "retry": {"max_attempts": 3}
        })
    }

    #[test]
    fn the_same_job_after_defaults_needs_nothing() {
        let current = stored(spec(base()));
        let mut file = base();
        file["request"]["headers"]["Authorization"] = json!("••••1234");
        assert!(
            plan_change(&current, &spec(file), false)
                .expect("plan")
                .is_none()
        );
        // The real value, whose masked form matches, is taken as the same.
        assert!(
            plan_change(&current, &spec(base()), false)
                .expect("plan")
                .is_none()
        );
        // Unless asked to send it anyway.
        let (_, changes) = plan_change(&current, &spec(base()), true)
            .expect("plan")
            .expect("a change");
        assert_eq!(
            changes,
            ["request.headers.Authorization \"••••1234\" → \"••••1234\" (new secret)"]
        );
    }

    #[test]
    fn changes_read_as_a_diff_and_the_patch_clears_what_the_file_lacks() {
        let current = stored(spec(base()));
        let mut file = base();
        file["schedule"]["cron"] = json!("0 4 * * *");
        file["retry"]["max_attempts"] = json!(5);
        file["request"]["headers"] = json!({"Authorization": "••••1234"});
        let (patch, changes) = plan_change(&current, &spec(file), false)
            .expect("plan")
            .expect("a change");
        assert_eq!(
            changes,
            [
                "schedule.cron \"0 3 * * *\" → \"0 4 * * *\"",
                "request.headers.X-Old \"1\" → (none)",
                "retry.max_attempts 3 → 5",
            ]
        );
        assert_eq!(patch["request"]["headers"]["X-Old"], Value::Null);
        assert_eq!(patch["request"]["headers"]["Authorization"], "••••1234");
        assert_eq!(patch["schedule"]["cron"], "0 4 * * *");
        assert_eq!(patch["request"]["body"], Value::Null);
    }

    #[test]
    fn switching_schedule_kinds_clears_the_old_fields() {
        let current = json!({"schedule": {"cron": "0 3 * * *", "timezone": "UTC"}});
        let wanted = json!({"schedule": {"at": "2030-01-01T00:00:00Z"}});
        let patch = merge_patch_to(&current, &wanted);
        assert_eq!(
            patch,
            json!({"schedule": {"at": "2030-01-01T00:00:00Z", "cron": null, "timezone": null}})
        );
    }

    #[test]
    fn a_foreign_mask_is_refused() {
        let current = stored(spec(base()));
        let mut file = base();
        file["request"]["headers"]["Authorization"] = json!("••••9999");
        let problem = plan_change(&current, &spec(file), false).expect_err("refused");
        assert!(
            problem.contains("does not match the stored secret"),
            "{problem}"
        );
    }

    #[test]
    fn files_are_read_in_both_formats_with_positions_on_errors() {
        let yaml = "jobs:\n  - name: a\n    schedule: {cron: '0 3 * * *'}\n    request: {url: 'https://e.example/'}\n";
        let jobs = parse_jobs_file(yaml, FileFormat::Yaml, "f.yaml").expect("parses");
        assert_eq!(jobs[0].request.method, "GET");
        let json_text = r#"{"jobs": [{"name": "a", "schedule": {"cron": "0 3 * * *"}, "request": {"url": "https://e.example/"}}]}"#;
        assert_eq!(
            parse_jobs_file(json_text, FileFormat::Json, "f.json").expect("parses"),
            jobs
        );
        let bad = "jobs:\n  - name: a\n    schedule: {cron: '0 3 * * *'}\n    request: {url: 'https://e.example/', methd: GET}\n";
        let error = parse_jobs_file(bad, FileFormat::Yaml, "f.yaml")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("methd"), "{error}");
        assert!(error.contains("line 4"), "{error}");
        assert!(error.contains("job `a`: jobs[0].request"), "{error}");
        let bad_schedule = r#"{"jobs": [{"name": "b", "schedule": {"cron": "0 3 * * *", "tz": "UTC"}, "request": {"url": "https://e.example/"}}]}"#;
        let error = parse_jobs_file(bad_schedule, FileFormat::Json, "f.json")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("line 1"), "{error}");
        assert!(error.contains("a schedule is"), "{error}");
    }

    #[test]
    fn server_jobs_lose_their_read_only_fields() {
        let mut body = base();
        body["id"] = json!("job_1");
        body["next_run_at"] = json!("2030-01-01T03:00:00Z");
        body["schedule_description"] = json!("At 03:00, every day");
        body["created_at"] = json!("2029-01-01T00:00:00Z");
        body["updated_at"] = json!("2029-01-01T00:00:00Z");
        body["last_status"] = json!("succeeded");
        let job = server_job(&body).expect("reads");
        assert_eq!(job.id, "job_1");
        assert_eq!(job.spec, spec(base()));
    }

    #[test]
    fn duplicate_names_are_named() {
        let one = spec(json!({"name": "a", "schedule": {"cron": "0 3 * * *"},
                              "request": {"url": "https://e.example/"}}));
        let error = check_jobs(&[one.clone(), one], "f.yaml")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("`a`"), "{error}");
    }

    #[test]
    fn exported_files_read_back_the_same() {
        let jobs = vec![spec(base())];
        for format in [FileFormat::Yaml, FileFormat::Json] {
            let text = render_jobs_file(&jobs, format).expect("renders");
            assert_eq!(
                parse_jobs_file(&text, format, "f").expect("parses"),
                jobs,
                "{text}"
            );
        }
    }
}
