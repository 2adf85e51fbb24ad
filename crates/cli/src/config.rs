//! Command-line and environment configuration: every flag has an environment variable beside it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use cronhook_store::Store;

/// cronhook calls URLs on a schedule: cron jobs over HTTP, retried, signed and logged.
#[derive(Debug, Parser)]
#[command(name = "cronhook", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalOptions {
    /// The database: `sqlite://path/to/file.db` (the embedded default) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "sqlite://./cronhook-data/cronhook.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Log format on standard error.
    #[arg(long, env = "CRONHOOK_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, in `tracing` directive syntax (e.g. `info,cronhook_executor=debug`).
    #[arg(long, env = "CRONHOOK_LOG", global = true, default_value = "info")]
    pub log: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: API, dashboard, scheduler and executor (or the roles chosen with --role).
    Serve(ServeOptions),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Export, apply and import a workspace's jobs, through the REST API (--api-url, --api-key).
    #[command(subcommand)]
    Jobs(crate::jobs::JobsCommand),
    /// Copy the SQLite database to a new file, consistently, while cronhook runs.
    ///
    /// To restore: stop cronhook, copy the backup over the database file, delete the
    /// database's `-wal` and `-shm` files beside it, and start cronhook again. For PostgreSQL,
    /// use pg_dump and pg_restore.
    Backup {
        /// Where to write the copy; must not exist yet.
        path: std::path::PathBuf,
    },
}

/// `cronhook keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key (and the workspace, if missing); prints the key alone on stdout, once.
    Create {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// A name to recognise the key by.
        #[arg(long)]
        name: Option<String>,
    },
}

/// `cronhook users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a dashboard user; the password is read from standard input.
    Create {
        /// The user's email address (the sign-in name).
        #[arg(long)]
        email: String,
        /// The workspace's slug (created if missing).
        #[arg(long)]
        workspace: String,
    },
}

/// The roles one `serve` process can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Role {
    /// The REST API and the dashboard.
    Api,
    /// Turns due jobs into executions.
    Scheduler,
    /// Sends the HTTP requests.
    Executor,
}

/// `cronhook serve` options.
#[derive(Debug, Args)]
pub struct ServeOptions {
    /// The address the API and dashboard listen on.
    #[arg(long, env = "CRONHOOK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The roles this process runs, comma-separated.
    #[arg(
        long,
        env = "CRONHOOK_ROLE",
        value_enum,
        value_delimiter = ',',
        default_value = "api,scheduler,executor"
    )]
    pub role: Vec<Role>,
    /// Allow requests to loopback, private and other non-public addresses (self-hosting, tests).
    #[arg(long, env = "CRONHOOK_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
    /// Non-public networks that jobs may call all the same, comma-separated CIDRs.
    #[arg(long, env = "CRONHOOK_ALLOWED_TARGET_NETS", value_delimiter = ',')]
    pub allowed_target_nets: Vec<ipnet::IpNet>,
    /// The most HTTP requests in flight at once on this node.
    #[arg(long, env = "CRONHOOK_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// How long a node's claim on an execution lasts without renewal, in seconds; a killed
    /// node's work is taken over within this time.
    #[arg(long, env = "CRONHOOK_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_seconds: u64,
    /// An occurrence later than this many milliseconds (cronhook was down or stalled) is a
    /// misfire, handled by the job's `misfire` policy (`skip`, `fire_once`, `fire_all`).
    #[arg(long, env = "CRONHOOK_MISFIRE_THRESHOLD_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub misfire_threshold_ms: u64,
    /// This node's name in leases, logs and the node list (default: the host name); each start
    /// adds a random suffix, so a restarted node never inherits its previous leases.
    #[arg(long, env = "CRONHOOK_NODE_ID")]
    pub node_id: Option<String>,
}

/// Sets up logging to standard error; `RUST_LOG` overrides `--log` when set.
pub fn init_tracing(options: &GlobalOptions) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&options.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match options.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(options: &GlobalOptions) -> anyhow::Result<Arc<dyn Store>> {
    let url = options.database_url.as_str();
    if url.starts_with("sqlite:") {
        ensure_parent_directory(url)?;
        let store = cronhook_store_sqlite::SqliteStore::open(url)
            .await
            .with_context(|| format!("opening the SQLite database {}", redact(url)))?;
        store.migrate().await.context("applying migrations")?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = cronhook_store_postgres::PostgresStore::open(url)
            .await
            .with_context(|| format!("connecting to the PostgreSQL database {}", redact(url)))?;
        store.migrate().await.context("applying migrations")?;
        return Ok(Arc::new(store));
    }
    bail!(
        "DATABASE_URL: `{}` must start with sqlite:// or postgres://",
        redact(url)
    )
}

/// Creates the directory of a SQLite file path, so a fresh machine needs no set-up.
fn ensure_parent_directory(url: &str) -> anyhow::Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the data directory {}", parent.display()))?;
    }
    Ok(())
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Workspace slugs: lowercase letters, digits and dashes, 1 to 63 characters.
pub fn validate_slug(slug: &str) -> anyhow::Result<()> {
    let valid = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if !valid {
        bail!(
            "--workspace: `{slug}` is not a valid slug (lowercase letters, digits and dashes, at most 63)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_checked() {
        assert!(validate_slug("acme-2").is_ok());
        assert!(validate_slug("").is_err());
        assert!(validate_slug("Acme").is_err());
        assert!(validate_slug("-x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@db:5432/x"),
            "postgres://u:****@db:5432/x"
        );
        assert_eq!(redact("sqlite://./a.db"), "sqlite://./a.db");
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
