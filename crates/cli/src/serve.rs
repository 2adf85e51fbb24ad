//! `cronhook serve`: one process running the chosen roles until SIGTERM or SIGINT.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cronhook_core::net::TargetPolicy;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{GlobalOptions, Role, ServeOptions};

/// Runs the service until a shutdown signal.
pub async fn serve(global: &GlobalOptions, options: ServeOptions) -> anyhow::Result<()> {
    if options.role.is_empty() {
        bail!("--role: name at least one of api, scheduler, executor");
    }
    let has = |role: Role| options.role.contains(&role);
    let store = crate::config::open_store(global).await?;
    let node_id = options.node_id.clone().unwrap_or_else(default_node_id);
    let targets = TargetPolicy {
        allow_private: options.allow_private_targets,
        allowed_nets: options.allowed_target_nets.clone(),
    };
    let lease = Duration::from_secs(options.lease_seconds);
    let shutdown = CancellationToken::new();
    let jobs_changed = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();

    let executor = if has(Role::Executor) {
        let (executor, handle) = cronhook_executor::Executor::new(
            Arc::clone(&store),
            cronhook_executor::ExecutorConfig {
                node_id: node_id.clone(),
                max_in_flight: options.max_in_flight.max(1),
                lease,
                targets: targets.clone(),
                poll_interval: Duration::from_secs(1),
            },
        )
        .context("starting the executor")?;
        tasks.spawn(executor.run(shutdown.clone()));
        Some(handle)
    } else {
        None
    };

    if has(Role::Scheduler) {
        let local_executor = executor
            .clone()
            .map(|handle| cronhook_scheduler::LocalExecutor {
                node_id: node_id.clone(),
                lease,
                submit: Arc::new(move |execution| handle.submit(execution)),
            });
        let scheduler = cronhook_scheduler::Scheduler::new(
            Arc::clone(&store),
            cronhook_scheduler::SchedulerConfig {
                local_executor,
                ..cronhook_scheduler::SchedulerConfig::default()
            },
            Arc::clone(&jobs_changed),
        );
        tasks.spawn(scheduler.run(shutdown.clone()));
    }

    if has(Role::Api) {
        let state = cronhook_web::AppState {
            store: Arc::clone(&store),
            executor: executor.clone(),
            jobs_changed: Arc::clone(&jobs_changed),
            targets,
        };
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("--listen: cannot listen on {}", options.listen))?;
        let address = listener
            .local_addr()
            .context("reading the listening address")?;
        tracing::info!(%address, node_id, roles = ?options.role, "cronhook is listening");
        let app = cronhook_web::app(state);
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the HTTP server stopped");
            }
        });
    } else {
        tracing::info!(node_id, roles = ?options.role, "cronhook is running");
    }

    wait_for_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "some work did not finish in time; its leases will expire and another run takes it over"
        );
    }
    Ok(())
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops cronhook");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A node id unique enough for leases: the host name and a random suffix.
fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    let suffix: u32 = rand::random();
    format!("{host}-{suffix:08x}")
}
