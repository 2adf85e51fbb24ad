//! `cronhook`: the binary. Reads configuration, opens the store and wires the roles (API,
//! scheduler, executor) of one process; also the administrative commands.
//!
//! Architecture invariant: this is the only crate (besides tests) that names a concrete store.

mod backup;
mod config;
mod crontab;
mod jobs;
mod secrets;
mod serve;

use std::io::Read as _;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use config::{Cli, Command, KeysCommand, SecretsCommand, UsersCommand};
use cronhook_store::{ApiKey, Store, User, Workspace};

/// mimalloc instead of glibc's malloc: requests and rows allocate on every execution, and
/// glibc's allocator was ~15 % of the process's CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cronhook_executor::allocator::keep_freed_memory_between_bursts();
    let cli = Cli::parse();
    config::init_tracing(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "could not start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {error:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // reqwest is built without a default crypto provider; install ring's once, first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve(options) => serve::serve(&cli.global, *options).await,
        Command::Jobs(command) => jobs::run(command).await,
        Command::Backup { path } => backup::backup(&cli.global, &path).await,
        Command::Migrate => {
            let store = config::open_store(&cli.global).await?;
            drop(store);
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Secrets(SecretsCommand::RotateKey {
            new_secret_key,
            key_file,
            finish,
        }) => secrets::rotate_key(&cli.global, new_secret_key, key_file, finish).await,
        Command::Keys(KeysCommand::Create {
            workspace,
            name,
            scope,
        }) => {
            let scope = cronhook_store::ApiKeyScope::parse(&scope)
                .with_context(|| format!("--scope: `{scope}` is not read, write or admin"))?;
            let store = config::open_store(&cli.global).await?;
            let workspace = workspace_or_create(store.as_ref(), &workspace).await?;
            let (key, key_hash) = cronhook_web::auth::new_api_key();
            store
                .insert_api_key(&ApiKey {
                    id: cronhook_core::ids::new_id(cronhook_core::ids::API_KEY),
                    workspace_id: workspace.id,
                    name: name.unwrap_or_else(|| "cli".to_owned()),
                    key_hash,
                    scope,
                    created_at: now_ms(),
                    last_used_at: None,
                    revoked_at: None,
                })
                .await
                .context("storing the API key")?;
            print_line(&key);
            Ok(())
        }
        Command::Users(UsersCommand::Create { email, workspace }) => {
            let email = email.trim().to_ascii_lowercase();
            if !email.contains('@') {
                bail!("--email: `{email}` is not an email address");
            }
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.chars().count() < 8 {
                bail!("the password (read from standard input) must be at least 8 characters");
            }
            let password_hash = hash_password(password)?;
            let store = config::open_store(&cli.global).await?;
            let workspace = workspace_or_create(store.as_ref(), &workspace).await?;
            store
                .insert_user(&User {
                    id: cronhook_core::ids::new_id(cronhook_core::ids::USER),
                    workspace_id: workspace.id,
                    email: email.clone(),
                    password_hash,
                    created_at: now_ms(),
                })
                .await
                .with_context(|| format!("creating user {email}"))?;
            tracing::info!(%email, "user created");
            Ok(())
        }
    }
}

/// The workspace with this slug, created (with a fresh signing secret) when missing.
async fn workspace_or_create(store: &dyn Store, slug: &str) -> anyhow::Result<Workspace> {
    config::validate_slug(slug)?;
    if let Some(workspace) = store.workspace_by_slug(slug).await? {
        return Ok(workspace);
    }
    let workspace = Workspace {
        id: cronhook_core::ids::new_id(cronhook_core::ids::WORKSPACE),
        slug: slug.to_owned(),
        signing_secret: cronhook_executor::signing::new_secret(),
        previous_signing_secret: None,
        signing_secret_rotated_at: None,
        created_at: now_ms(),
    };
    match store.create_workspace(&workspace).await {
        Ok(()) => {
            tracing::info!(slug, "workspace created");
            Ok(workspace)
        }
        // Another process created it between our read and our write.
        Err(cronhook_store::StoreError::Conflict { .. }) => store
            .workspace_by_slug(slug)
            .await?
            .context("workspace vanished while being created"),
        Err(error) => Err(error.into()),
    }
}

fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::PasswordHasher as _;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|error| anyhow::anyhow!("hashing the password: {error}"))?;
    Ok(hash.to_string())
}

/// Now, truncated to the millisecond precision the store keeps.
fn now_ms() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// The command's one line of output, for scripts.
#[allow(clippy::print_stdout)]
fn print_line(text: &str) {
    println!("{text}");
}
