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
    /// The master key that encrypts secrets at rest: 32 bytes in base64 (`openssl rand -base64
    /// 32`). During a key rotation, several keys separated by commas, the new one first.
    /// Required with PostgreSQL (every node must share it); with SQLite, when absent, a key is
    /// generated into `secret.key` beside the database file on first start and read from there.
    #[arg(
        long,
        env = "CRONHOOK_SECRET_KEY",
        global = true,
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
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
    Serve(Box<ServeOptions>),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage the master key that encrypts secrets at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
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
        /// What the key may do: `read` (GET only), `write` (everything but key management) or
        /// `admin` (everything).
        #[arg(long, default_value = "admin", value_parser = ["read", "write", "admin"])]
        scope: String,
    },
}

/// `cronhook secrets …`
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-wrap every workspace's data key under a new master key, while cronhook runs.
    ///
    /// The new key (given, or generated) wraps every data key; the wrap under the old key is
    /// kept beside it, so nodes still running with the old key keep working. The new keyring
    /// (new key first, old key second) is written to a file: with SQLite and a generated key,
    /// over `secret.key` itself; otherwise to `--key-file`. Restart every node with it, then run
    /// `cronhook secrets rotate-key --finish` with the new key alone to drop the old wraps.
    RotateKey {
        /// The new master key (base64 of 32 bytes); generated when left out.
        #[arg(long, env = "CRONHOOK_NEW_SECRET_KEY", hide_env_values = true)]
        new_secret_key: Option<String>,
        /// Where to write the new keyring (default: `secret.key` beside the SQLite database
        /// when that is where the key came from, else `./secret.key.new`). Must not exist,
        /// unless it is the `secret.key` being rotated.
        #[arg(long)]
        key_file: Option<std::path::PathBuf>,
        /// Finish a rotation: re-wrap under the current key only, dropping wraps under older
        /// keys. Run it once every node runs with the new key.
        #[arg(long, conflicts_with = "new_secret_key")]
        finish: bool,
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
    /// Succeeded, skipped and cancelled executions are deleted this many days after they
    /// finished.
    #[arg(long, env = "CRONHOOK_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: u32,
    /// Failed executions are deleted this many days after they finished (kept longer: they
    /// are what someone investigates).
    #[arg(long, env = "CRONHOOK_FAILED_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub failed_retention_days: u32,
    /// How often old executions are pruned, in seconds.
    #[arg(long, env = "CRONHOOK_PRUNE_INTERVAL_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub prune_interval_seconds: u64,
    /// At shutdown (SIGTERM, SIGINT), how many seconds attempts in flight may take to finish;
    /// what is left is given back for another node or the next start.
    #[arg(long, env = "CRONHOOK_SHUTDOWN_GRACE", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace: u64,
    /// An occurrence later than this many milliseconds (cronhook was down or stalled) is a
    /// misfire, handled by the job's `misfire` policy (`skip`, `fire_once`, `fire_all`).
    #[arg(long, env = "CRONHOOK_MISFIRE_THRESHOLD_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub misfire_threshold_ms: u64,
    /// How many milliseconds before their instant occurrences are written to the database and
    /// handed to this node's executor, which sends them at the instant (jobs that allow overlap,
    /// on nodes running both the scheduler and the executor). 0 writes them at the instant.
    #[arg(long, env = "CRONHOOK_PREPARE_AHEAD_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub prepare_ahead_ms: u64,
    /// API requests each workspace may make per second, sustained (over it: 429 with
    /// Retry-After). Other workspaces are not affected.
    #[arg(long, env = "CRONHOOK_API_RATE_LIMIT", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate_limit: u32,
    /// API requests each workspace may make at once before the sustained rate applies.
    #[arg(long, env = "CRONHOOK_API_RATE_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate_burst: u32,
    /// The most HTTP requests in flight at once per workspace on this node, so one tenant's
    /// slow targets cannot take every slot.
    #[arg(long, env = "CRONHOOK_MAX_IN_FLIGHT_PER_WORKSPACE", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight_per_workspace: u64,
    /// The most HTTP requests in flight at once to one target host (host and port) per
    /// workspace on this node, so one slow host cannot take its workspace's every slot, and a
    /// burst of jobs calling one host opens no more connections to it than this.
    #[arg(long, env = "CRONHOOK_MAX_IN_FLIGHT_PER_HOST", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight_per_host: u64,
    /// Resolve job hosts through this DNS server (`ip:port`, UDP and TCP) instead of the
    /// system resolver. Every answer still passes the SSRF guard.
    #[arg(long, env = "CRONHOOK_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,
    /// This node's name in leases, logs and the node list (default: the host name); each start
    /// adds a random suffix, so a restarted node never inherits its previous leases.
    #[arg(long, env = "CRONHOOK_NODE_ID")]
    pub node_id: Option<String>,
    /// The SMTP server email alerts go through: `smtp://user:pass@host:port` (plain),
    /// `smtp://...?tls=required` (STARTTLS) or `smtps://...` (TLS). Without it, deliveries to
    /// email channels fail, saying so.
    #[arg(long, env = "CRONHOOK_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of email alerts, such as `cronhook <alerts@example.com>` (default:
    /// `cronhook@` the SMTP host).
    #[arg(long, env = "CRONHOOK_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// The dashboard's address as users reach it (`https://cron.example.com`), for links in
    /// alerts.
    #[arg(long, env = "CRONHOOK_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
}

/// An `http(s)://` address without a query or fragment, kept without its trailing `/`.
fn parse_public_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|error| format!("`{text}` is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{text}` must be an http:// or https:// address"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}` must have no query or fragment"));
    }
    Ok(text.trim_end_matches('/').to_owned())
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

/// Where the master keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--secret-key` / `CRONHOOK_SECRET_KEY`.
    Configured,
    /// The key file beside the SQLite database.
    File(std::path::PathBuf),
}

/// The master keys: `--secret-key`, or (SQLite only) the `secret.key` file beside the database,
/// generated with mode 0600 on first use. PostgreSQL without a configured key is refused: the
/// nodes sharing the database must share the key.
pub fn keyring(options: &GlobalOptions) -> anyhow::Result<(cronhook_secrets::Keyring, KeySource)> {
    if let Some(text) = &options.secret_key {
        let keyring = cronhook_secrets::Keyring::parse(text).context("CRONHOOK_SECRET_KEY")?;
        return Ok((keyring, KeySource::Configured));
    }
    let url = options.database_url.as_str();
    let Some(path) = sqlite_path(url) else {
        bail!(
            "CRONHOOK_SECRET_KEY (--secret-key) is required with PostgreSQL: every node must share the master key that encrypts secrets at rest; make one with `openssl rand -base64 32` and give it to every node"
        );
    };
    if path.is_empty() || path == ":memory:" {
        bail!("CRONHOOK_SECRET_KEY (--secret-key) is required without a database file");
    }
    ensure_parent_directory(url)?;
    let key_file = Path::new(path)
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(cronhook_secrets::KEY_FILE_NAME);
    let (keyring, created) =
        cronhook_secrets::Keyring::load_or_create(&key_file).context("the secret key file")?;
    if created {
        tracing::info!(path = %key_file.display(), "generated the master key for secrets at rest; back it up with the database");
    }
    Ok((keyring, KeySource::File(key_file)))
}

fn sqlite_path(url: &str) -> Option<&str> {
    url.starts_with("sqlite:").then(|| {
        url.trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .split('?')
            .next()
            .unwrap_or_default()
    })
}

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(options: &GlobalOptions) -> anyhow::Result<Arc<dyn Store>> {
    let url = options.database_url.as_str();
    let is_sqlite = url.starts_with("sqlite:");
    let is_postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
    if !is_sqlite && !is_postgres {
        bail!(
            "DATABASE_URL: `{}` must start with sqlite:// or postgres://",
            redact(url)
        );
    }
    // Secrets at rest are sealed at the store boundary: every store this binary opens seals.
    let (keyring, _) = keyring(options)?;
    let sealer = cronhook_store::Sealer::new(keyring);
    if is_sqlite {
        ensure_parent_directory(url)?;
        let store = cronhook_store_sqlite::SqliteStore::open(url)
            .await
            .with_context(|| format!("opening the SQLite database {}", redact(url)))?;
        store.migrate().await.context("applying migrations")?;
        return Ok(Arc::new(store.with_sealer(sealer)));
    }
    if is_postgres {
        let store = cronhook_store_postgres::PostgresStore::open(url)
            .await
            .with_context(|| format!("connecting to the PostgreSQL database {}", redact(url)))?;
        store.migrate().await.context("applying migrations")?;
        return Ok(Arc::new(store.with_sealer(sealer)));
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
