//! Delivers cronhook's alerts: email (SMTP through `lettre`), Slack and Discord webhooks, and
//! signed JSON webhooks, drained from the store's alert outbox.
//!
//! The store records an alert in the same transaction as the execution result that raised it;
//! this worker claims due alerts with a lease (so several nodes never send one alert at once, and
//! an alert whose sender died is taken over once the lease runs out), sends each in its own task
//! bounded by a semaphore and a deadline shorter than the lease, and records delivered, a retry
//! with exponential backoff, or failed for good with the error.
//!
//! Architecture invariant: alert delivery never touches the executor's tasks, slots or writer:
//! a hanging SMTP server or a failing Slack endpoint delays other alerts at most by its deadline,
//! and job executions not at all. Every outbound HTTP connection passes the same SSRF guard as
//! job requests.

pub mod render;
mod smtp;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cronhook_core::alerting::ChannelTarget;
use cronhook_core::net::TargetPolicy;
use cronhook_core::validate::validate_target_url;
use cronhook_store::{Alert, ClaimedAlert, DeliveryOutcome, Lease, Store};
use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use render::Links;
pub use smtp::{SmtpConfig, SmtpConfigError};

/// The most alerts sent at once by one node.
const MAX_CONCURRENT_DELIVERIES: usize = 32;
/// How long one delivery may take, at most (shorter when the lease is short).
const MAX_DELIVERY_TIME: Duration = Duration::from_secs(30);
/// How long the previous signing secret still signs after a rotation (as for job requests).
const ROTATION_OVERLAP_HOURS: i64 = 24;
/// The longest wait between looks at the outbox when nothing is due.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// How a delivery worker runs.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    pub node_id: String,
    /// How long a claim on an alert lasts; a dead node's alerts are taken over after it.
    pub lease: Duration,
    pub targets: TargetPolicy,
    /// The SMTP server email channels send through; without it their deliveries fail.
    pub smtp: Option<SmtpConfig>,
    pub links: Links,
    /// Delivery tries before an alert is failed for good (the first try counts).
    pub max_tries: u32,
    /// The wait before the second try; each later wait is three times the one before.
    pub first_retry_delay: Duration,
}

impl AlertsConfig {
    /// The defaults: 30 s lease, private targets refused, no SMTP, no public URL, 5 tries over
    /// about 6 minutes (10 s, 30 s, 90 s, 270 s).
    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            lease: Duration::from_secs(30),
            targets: TargetPolicy::default(),
            smtp: None,
            links: Links::default(),
            max_tries: 5,
            first_retry_delay: Duration::from_secs(10),
        }
    }

    /// How long one delivery may take: well inside the lease, so no other node takes an alert
    /// over while it is still being sent.
    fn delivery_deadline(&self) -> Duration {
        (self.lease * 2 / 3).min(MAX_DELIVERY_TIME)
    }

    /// The wait after failed try number `tries`.
    fn retry_delay(&self, tries: u32) -> Duration {
        let factor = 3_u32.saturating_pow(tries.saturating_sub(1));
        self.first_retry_delay
            .saturating_mul(factor)
            .min(Duration::from_secs(3600))
    }
}

/// Why a worker could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("cannot build the HTTP client for alerts")]
    Client(#[source] reqwest::Error),
    #[error("invalid alerts configuration: {0}")]
    InvalidConfig(String),
}

/// Wakes a running [`AlertWorker`] (a channel test was recorded); cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AlertsHandle {
    wake: Arc<Notify>,
}

impl AlertsHandle {
    /// Asks the worker to look at the outbox now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Sends alerts from the outbox until shut down.
pub struct AlertWorker {
    store: Arc<dyn Store>,
    config: Arc<AlertsConfig>,
    http: reqwest::Client,
    wake: Arc<Notify>,
}

impl AlertWorker {
    /// Makes a worker and the handle that wakes it.
    pub fn new(
        store: Arc<dyn Store>,
        config: AlertsConfig,
    ) -> Result<(AlertWorker, AlertsHandle), AlertsError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        if config.max_tries == 0 {
            return Err(AlertsError::InvalidConfig(
                "max_tries must be at least 1".into(),
            ));
        }
        if config.lease < Duration::from_millis(300) {
            return Err(AlertsError::InvalidConfig(
                "the lease must be at least 300 ms".into(),
            ));
        }
        let http =
            cronhook_executor::guarded_client(&config.targets).map_err(AlertsError::Client)?;
        let handle = AlertsHandle::default();
        Ok((
            AlertWorker {
                store,
                config: Arc::new(config),
                http,
                wake: handle.wake.clone(),
            },
            handle,
        ))
    }

    /// Runs until `shutdown`: claims due alerts, sends each in its own task, records outcomes.
    /// At shutdown it stops claiming and gives deliveries in flight their deadline to finish;
    /// whatever is cut stays leased and is sent again after the lease.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_DELIVERIES));
        let mut deliveries = JoinSet::new();
        info!(node_id = %self.config.node_id, smtp = self.config.smtp.is_some(), "alert delivery started");
        let mut backoff = Duration::from_millis(100);
        loop {
            while deliveries.try_join_next().is_some() {}
            let free = slots.available_permits();
            let mut claimed_any = false;
            if free > 0 {
                let now = Utc::now();
                let lease = Lease {
                    node_id: self.config.node_id.clone(),
                    until: now + chrono_duration(self.config.lease),
                };
                match self
                    .store
                    .claim_alerts(&lease, now, u32::try_from(free).unwrap_or(u32::MAX))
                    .await
                {
                    Ok(claimed) => {
                        backoff = Duration::from_millis(100);
                        claimed_any = !claimed.is_empty();
                        for alert in claimed {
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                return;
                            };
                            let store = self.store.clone();
                            let config = self.config.clone();
                            let http = self.http.clone();
                            deliveries.spawn(async move {
                                deliver(&store, &config, &http, alert).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(store_error) => {
                        warn!(error = %store_error, "cannot claim alerts; trying again");
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            let wait = if claimed_any {
                // More may be due right away.
                Duration::ZERO
            } else {
                self.idle_wait()
                    .await
                    .max(backoff.min(Duration::from_millis(100)))
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                // A delivery finished: its slot is free again.
                Some(_) = deliveries.join_next(), if free == 0 => {}
            }
        }
        let drained = tokio::time::timeout(self.config.delivery_deadline(), async {
            while deliveries.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                "alert deliveries still in flight at shutdown; they are sent again after their lease"
            );
        }
        info!("alert delivery stopped");
    }

    /// How long to sleep: until the next alert is due, at most [`MAX_IDLE`] (alerts recorded by
    /// other processes are noticed within that).
    async fn idle_wait(&self) -> Duration {
        match self.store.next_alert_due().await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(MAX_IDLE)
                // Never spin: an alert due now but held by a live lease is not claimable yet.
                .max(Duration::from_millis(50)),
            Ok(None) => MAX_IDLE,
            Err(_) => Duration::from_secs(1),
        }
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Sends one claimed alert and records the outcome.
async fn deliver(
    store: &Arc<dyn Store>,
    config: &AlertsConfig,
    http: &reqwest::Client,
    claimed: ClaimedAlert,
) {
    let ClaimedAlert { alert, channel } = claimed;
    let deadline = config.delivery_deadline();
    let sent = match &channel {
        None => Err(Failure::permanent("the channel was deleted")),
        Some(channel) => {
            match tokio::time::timeout(deadline, send(store, config, http, &alert, &channel.target))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(Failure::retryable(format!(
                    "timeout: the {} delivery took longer than {} s",
                    channel.target.type_name(),
                    deadline.as_secs_f32()
                ))),
            }
        }
    };
    let now = Utc::now();
    let tries = alert.attempts + 1;
    let outcome = match sent {
        Ok(()) => DeliveryOutcome::Delivered { at: now },
        Err(failure) if failure.retryable && tries < config.max_tries => DeliveryOutcome::Retry {
            retry_at: now + chrono_duration(config.retry_delay(tries)),
            error: failure.message,
            at: now,
        },
        Err(failure) => DeliveryOutcome::Failed {
            error: failure.message,
            at: now,
        },
    };
    match &outcome {
        DeliveryOutcome::Delivered { .. } => {
            info!(alert_id = %alert.id, kind = alert.kind.as_str(), channel_id = %alert.channel_id, "alert delivered");
        }
        DeliveryOutcome::Retry {
            error, retry_at, ..
        } => {
            warn!(alert_id = %alert.id, channel_id = %alert.channel_id, tries, %error, retry_at = %retry_at, "alert delivery failed; will try again");
        }
        DeliveryOutcome::Failed { error, .. } => {
            warn!(alert_id = %alert.id, channel_id = %alert.channel_id, tries, %error, "alert delivery failed for good");
        }
    }
    let delivered = match &outcome {
        DeliveryOutcome::Delivered { .. } => Some("true"),
        DeliveryOutcome::Failed { .. } => Some("false"),
        DeliveryOutcome::Retry { .. } => None,
    };
    match store
        .complete_alert(&alert.id, &config.node_id, &outcome)
        .await
    {
        Ok(true) => {
            if let Some(delivered) = delivered {
                metrics::counter!(
                    "cronhook_alerts_total",
                    "kind" => alert.kind.as_str(),
                    "delivered" => delivered
                )
                .increment(1);
            }
        }
        Ok(false) => {
            debug!(alert_id = %alert.id, "another node holds the alert now; outcome dropped");
        }
        Err(store_error) => {
            // The lease runs out and the alert is taken again: a delivered alert may then be sent
            // twice, which beats never.
            warn!(alert_id = %alert.id, error = %store_error, "cannot record the alert's delivery");
        }
    }
}

/// Why a delivery failed, and whether trying again may help.
#[derive(Debug)]
struct Failure {
    message: String,
    retryable: bool,
}

impl Failure {
    fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

async fn send(
    store: &Arc<dyn Store>,
    config: &AlertsConfig,
    http: &reqwest::Client,
    alert: &Alert,
    target: &ChannelTarget,
) -> Result<(), Failure> {
    let rendered = render::render(alert, &config.links);
    match target {
        ChannelTarget::Email { to } => {
            let Some(smtp) = &config.smtp else {
                return Err(Failure::permanent(
                    "no SMTP server is configured (set CRONHOOK_SMTP_URL and CRONHOOK_SMTP_FROM)",
                ));
            };
            smtp.send(to, &rendered).await
        }
        ChannelTarget::Slack { webhook_url } => {
            post(
                http,
                config,
                webhook_url,
                "webhook_url",
                &rendered.slack(),
                None,
            )
            .await
        }
        ChannelTarget::Discord { webhook_url } => {
            post(
                http,
                config,
                webhook_url,
                "webhook_url",
                &rendered.discord(alert.kind),
                None,
            )
            .await
        }
        ChannelTarget::Webhook { url } => {
            let workspace = store
                .workspace(&alert.workspace_id)
                .await
                .map_err(|error| Failure::retryable(format!("reading the workspace: {error}")))?
                .ok_or_else(|| Failure::permanent("the workspace no longer exists"))?;
            let event = render::webhook_event(alert, &rendered);
            let mut secrets = vec![workspace.signing_secret.clone()];
            if let (Some(previous), Some(rotated_at)) = (
                workspace.previous_signing_secret.as_ref(),
                workspace.signing_secret_rotated_at,
            ) && Utc::now() - rotated_at < chrono::Duration::hours(ROTATION_OVERLAP_HOURS)
            {
                secrets.push(previous.clone());
            }
            post(
                http,
                config,
                url,
                "url",
                &event,
                Some(Signing {
                    message_id: &alert.id,
                    secrets: &secrets,
                }),
            )
            .await
        }
    }
}

/// What a webhook channel signs with.
struct Signing<'a> {
    message_id: &'a str,
    secrets: &'a [String],
}

/// POSTs a JSON payload through the guarded client: 2xx is delivered; anything else fails with
/// the status and the start of the answer.
async fn post(
    http: &reqwest::Client,
    config: &AlertsConfig,
    url: &str,
    field: &str,
    payload: &serde_json::Value,
    signing: Option<Signing<'_>>,
) -> Result<(), Failure> {
    // Literal addresses never reach the guarded resolver: check them here, every time (the
    // operator's policy may have changed since the channel was defined).
    validate_target_url(url, field, &config.targets).map_err(|error| {
        Failure::permanent(format!("blocked_target: {field} {}", error.message))
    })?;
    let body = serde_json::to_vec(payload)
        .map_err(|error| Failure::permanent(format!("cannot encode the message: {error}")))?;
    let mut request = http
        .post(url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(
            USER_AGENT,
            HeaderValue::from_static(cronhook_executor::USER_AGENT),
        )
        .timeout(config.delivery_deadline());
    if let Some(signing) = signing {
        let timestamp = Utc::now().timestamp();
        let mut signatures = Vec::new();
        for secret in signing.secrets {
            signatures.push(
                cronhook_executor::signing::sign(secret, signing.message_id, timestamp, &body)
                    .map_err(|error| Failure::permanent(format!("cannot sign: {error}")))?,
            );
        }
        request = request
            .header("webhook-id", signing.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "));
    }
    let response = request.body(body).send().await.map_err(|error| {
        let described = cronhook_executor::describe_request_error(&error);
        let kind = serde_json::to_value(described.kind)
            .ok()
            .and_then(|kind| kind.as_str().map(str::to_owned))
            .unwrap_or_else(|| "connect".to_owned());
        Failure {
            retryable: kind != "blocked_target",
            message: format!("{kind}: {}", described.message),
        }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let (excerpt, cut) = cronhook_core::alerting::excerpt(text.trim(), 200);
    let message = if excerpt.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!(
            "HTTP {}: {excerpt}{}",
            status.as_u16(),
            if cut { "…" } else { "" }
        )
    };
    // A 4xx other than 408/429 means the channel is misconfigured (a revoked Slack hook answers
    // 404 or 410): trying again will not help.
    let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
    Err(Failure { message, retryable })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_over_minutes() {
        let config = AlertsConfig::new("n");
        let waits: Vec<u64> = (1..5)
            .map(|tries| config.retry_delay(tries).as_secs())
            .collect();
        assert_eq!(waits, vec![10, 30, 90, 270]);
        assert_eq!(config.delivery_deadline(), Duration::from_secs(20));
        let short = AlertsConfig {
            lease: Duration::from_secs(3),
            ..AlertsConfig::new("n")
        };
        assert_eq!(short.delivery_deadline(), Duration::from_secs(2));
    }
}
