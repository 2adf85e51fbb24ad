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
    if let Some(dns_server) = options.dns_server {
        cronhook_executor::use_dns_server(dns_server)
            .map_err(|message| anyhow::anyhow!("--dns-server: {message}"))?;
    }
    let store = crate::config::open_store(global).await?;
    let node_name = node_name(options.node_id.as_deref());
    let node_id = incarnation_id(&node_name);
    let targets = TargetPolicy {
        allow_private: options.allow_private_targets,
        allowed_nets: options.allowed_target_nets.clone(),
    };
    let lease = Duration::from_secs(options.lease_seconds);
    let shutdown = CancellationToken::new();
    // Due-ness and leases are judged by the database's clock; the heartbeat keeps it in sync.
    let clock = Arc::new(cronhook_store::DatabaseClock::new());
    match clock.sync(store.as_ref()).await {
        Ok(offset) if offset.num_milliseconds().abs() > 1_000 => tracing::warn!(
            offset_ms = offset.num_milliseconds(),
            "this machine's clock differs from the database's; following the database"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read the database's clock yet"),
    }
    let jobs_changed = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    let metrics = install_metrics(&mut tasks, Arc::clone(&store), shutdown.clone());
    // The scheduler's loop and the attempt writer go back and forth with the database many times
    // per batch, and hold its write lock meanwhile. On the runtime that sends requests, each of
    // those turns waited behind a burst's runnable tasks: at 16 000 jobs a second the scheduler
    // fell a second and more behind with CPU to spare (BENCHMARKS.md, session 15). On a runtime
    // of their own, with one thread, they are polled as soon as the database answers.
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cronhook-control")
        .enable_all()
        .build()
        .context("starting the runtime of the scheduler and the attempt writer")?;

    let executor = if has(Role::Executor) {
        let (executor, handle) = cronhook_executor::Executor::new(
            Arc::clone(&store),
            cronhook_executor::ExecutorConfig {
                node_id: node_id.clone(),
                max_in_flight: options.max_in_flight.max(1),
                lease,
                targets: targets.clone(),
                poll_interval: Duration::from_secs(1),
                shutdown_grace: Duration::from_secs(options.shutdown_grace),
                max_in_flight_per_workspace: usize::try_from(options.max_in_flight_per_workspace)
                    .unwrap_or(usize::MAX),
                max_in_flight_per_host: usize::try_from(options.max_in_flight_per_host)
                    .unwrap_or(usize::MAX),
                clock: Arc::clone(&clock),
                record_runtime: Some(control.handle().clone()),
            },
        )
        .context("starting the executor")?;
        tasks.spawn(executor.run(shutdown.clone()));
        Some(handle)
    } else {
        None
    };

    // Alerts are delivered where requests are sent: by executor nodes.
    let alerts = if has(Role::Executor) {
        let smtp = match options.smtp_url.as_deref() {
            Some(url) => Some(
                cronhook_alerts::SmtpConfig::new(url, options.smtp_from.as_deref())
                    .context("--smtp-url / --smtp-from")?,
            ),
            None => None,
        };
        let mut config = cronhook_alerts::AlertsConfig::new(node_id.clone());
        config.lease = lease;
        config.targets = targets.clone();
        config.smtp = smtp;
        config.links = cronhook_alerts::Links {
            public_url: options.public_url.clone(),
        };
        let (worker, handle) = cronhook_alerts::AlertWorker::new(Arc::clone(&store), config)
            .context("starting alert delivery")?;
        tasks.spawn(worker.run(shutdown.clone()));
        Some(handle)
    } else {
        None
    };

    if has(Role::Scheduler) {
        let local_executor = executor.clone().map(|handle| {
            let canceller = handle.clone();
            cronhook_scheduler::LocalExecutor {
                node_id: node_id.clone(),
                lease,
                submit: Arc::new(move |execution| handle.submit(execution)),
                cancel_job: Arc::new(move |job_id| canceller.cancel_job(job_id)),
            }
        });
        let scheduler = cronhook_scheduler::Scheduler::new(
            Arc::clone(&store),
            cronhook_scheduler::SchedulerConfig {
                local_executor,
                misfire_threshold: Duration::from_millis(options.misfire_threshold_ms),
                prepare_ahead: Duration::from_millis(options.prepare_ahead_ms),
                node_id: node_id.clone(),
                clock: Arc::clone(&clock),
                ..cronhook_scheduler::SchedulerConfig::default()
            },
            Arc::clone(&jobs_changed),
        );
        tasks.spawn_on(scheduler.run(shutdown.clone()), control.handle());
        // Pruning is housekeeping of the schedule's history; every scheduler node may do it
        // (PostgreSQL's `skip locked` keeps two pruners apart).
        tasks.spawn(cronhook_scheduler::run_pruner(
            Arc::clone(&store),
            cronhook_store::RetentionPolicy {
                succeeded_for: chrono::TimeDelta::days(i64::from(options.retention_days)),
                failed_for: chrono::TimeDelta::days(i64::from(options.failed_retention_days)),
            },
            Duration::from_secs(options.prune_interval_seconds),
            shutdown.clone(),
        ));
    }

    if has(Role::Api) {
        let state = cronhook_web::AppState {
            store: Arc::clone(&store),
            executor: executor.clone(),
            jobs_changed: Arc::clone(&jobs_changed),
            targets,
            metrics,
            alerts,
            limits: Arc::new(cronhook_web::limits::Limits::new(
                cronhook_web::limits::ApiRateLimit {
                    per_second: options.api_rate_limit,
                    burst: options.api_rate_burst,
                },
            )),
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
            let served = axum::serve(
                listener,
                // Client addresses reach the handlers (the sign-in rate limit is per address).
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
            if let Err(error) = served {
                tracing::error!(%error, "the HTTP server stopped");
            }
        });
    } else {
        tracing::info!(node_id, roles = ?options.role, "cronhook is running");
    }

    tasks.spawn(report_heartbeats(
        Arc::clone(&store),
        Arc::clone(&clock),
        cronhook_store::NodeInfo {
            id: node_id.clone(),
            name: node_name,
            roles: options
                .role
                .iter()
                .map(|role| format!("{role:?}").to_ascii_lowercase())
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: chrono::Utc::now(),
            last_heartbeat_at: chrono::Utc::now(),
        },
        shutdown.clone(),
    ));

    wait_for_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
    // The executor needs the grace period, then a moment to write and give back what is left.
    let drain_limit = Duration::from_secs(options.shutdown_grace) + Duration::from_secs(10);
    let drained = tokio::time::timeout(drain_limit, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "some work did not finish in time; its leases will expire and another run takes it over"
        );
    }
    // Whatever did not finish in time stops here (dropping a runtime would block, which an
    // async function must not do).
    control.shutdown_background();
    Ok(())
}

/// Fire lag buckets, in seconds: a healthy scheduler fires within milliseconds; catch-ups after
/// downtime land in the last buckets.
const FIRE_LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Buckets of one batch's write, in seconds: milliseconds when the database keeps up.
const MATERIALIZE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Attempt duration buckets, in seconds, up to the longest timeout (15 minutes).
const ATTEMPT_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];
/// How often the recorder's histograms are drained when nobody scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder for the `metrics` facade the roles record through (once per
/// process), registers every metric's help text, and returns what renders `GET /metrics`.
/// Without a recorder (installation failed) the process runs on and `/metrics` answers 404.
fn install_metrics(
    tasks: &mut tokio::task::JoinSet<()>,
    store: Arc<dyn cronhook_store::Store>,
    shutdown: CancellationToken,
) -> Option<cronhook_web::MetricsRender> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let installed = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(cronhook_executor::telemetry::FIRE_LAG_SECONDS.to_owned()),
            FIRE_LAG_BUCKETS,
        )
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(cronhook_executor::telemetry::ATTEMPT_DURATION_SECONDS.to_owned()),
                ATTEMPT_DURATION_BUCKETS,
            )
        })
        .and_then(|builder| {
            // The scheduler's delay is a lag like the fire lag, on the same scale.
            builder.set_buckets_for_metric(
                Matcher::Full(cronhook_scheduler::DELAY_SECONDS.to_owned()),
                FIRE_LAG_BUCKETS,
            )
        })
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(cronhook_scheduler::MATERIALIZE_SECONDS.to_owned()),
                MATERIALIZE_BUCKETS,
            )
        })
        .and_then(|builder| {
            // A read of due jobs is a batch's database round like a write.
            builder.set_buckets_for_metric(
                Matcher::Full(cronhook_scheduler::CLAIM_SECONDS.to_owned()),
                MATERIALIZE_BUCKETS,
            )
        })
        .and_then(|builder| builder.install_recorder());
    let handle = match installed {
        Ok(handle) => handle,
        Err(error) => {
            tracing::warn!(%error, "cannot install the metrics recorder; /metrics is off");
            return None;
        }
    };
    cronhook_executor::describe_metrics();
    cronhook_scheduler::describe_metrics();
    // Recorded by the alerts feature; described here so the help text is there once it counts.
    metrics::describe_counter!(
        "cronhook_alerts_total",
        "Alerts sent, by kind (failure, recovery, test) and whether the delivery succeeded."
    );
    metrics::describe_gauge!(
        "cronhook_db_pool_connections",
        "Database connections by pool and state (idle, in_use)."
    );
    metrics::describe_gauge!(
        "cronhook_db_pool_max_connections",
        "The most connections each database pool opens."
    );
    let upkeep = handle.clone();
    tasks.spawn(async move {
        loop {
            for usage in store.pool_usage() {
                let in_use = usage.open.saturating_sub(usage.idle);
                metrics::gauge!("cronhook_db_pool_connections", "pool" => usage.pool, "state" => "idle")
                    .set(f64::from(usage.idle));
                metrics::gauge!("cronhook_db_pool_connections", "pool" => usage.pool, "state" => "in_use")
                    .set(f64::from(in_use));
                metrics::gauge!("cronhook_db_pool_max_connections", "pool" => usage.pool)
                    .set(f64::from(usage.max));
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(METRICS_UPKEEP) => upkeep.run_upkeep(),
            }
        }
    });
    Some(Arc::new(move || handle.render()))
}

/// How often a node reports itself in the node registry.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// Reports this node in the registry (`GET /api/v1/nodes`) and keeps its view of the
/// database's clock current, until shutdown.
async fn report_heartbeats(
    store: Arc<dyn cronhook_store::Store>,
    clock: Arc<cronhook_store::DatabaseClock>,
    mut node: cronhook_store::NodeInfo,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(error) = clock.sync(store.as_ref()).await {
            tracing::warn!(%error, "cannot read the database's clock");
        }
        node.last_heartbeat_at = chrono::Utc::now();
        if let Err(error) = store.heartbeat(&node).await {
            tracing::warn!(%error, "cannot report this node's heartbeat");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {}
        }
    }
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

/// The node's name: `--node-id`, or the host name.
fn node_name(configured: Option<&str>) -> String {
    configured
        .map(str::to_owned)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

/// The id this process holds leases under: the node's name and a random suffix for this start.
/// The suffix matters: a node restarted under the same name must not renew, and so keep for
/// ever, the leases its previous incarnation held when it died.
fn incarnation_id(name: &str) -> String {
    let suffix: u32 = rand::random();
    format!("{name}-{suffix:08x}")
}
