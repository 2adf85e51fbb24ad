//! The bench's own HTTP sink: answers 200 at once and records each request's arrival instant,
//! its `cronhook-scheduled-for` and `webhook-id` headers and the job marker from the path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::any;
use chrono::{DateTime, Utc};

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: DateTime<Utc>,
    pub job: u32,
    pub scheduled_for: Option<String>,
    pub webhook_id: Option<String>,
}

/// A running sink; its records stay in memory until taken.
#[derive(Clone)]
pub struct Sink {
    pub address: SocketAddr,
    records: Arc<Mutex<Vec<Arrival>>>,
}

impl Sink {
    /// Starts the sink on 127.0.0.1 (a free port) in this runtime.
    pub async fn start() -> anyhow::Result<Sink> {
        let records = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
        let app = Router::new()
            .route("/j/{job}", any(record))
            .with_state(records.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Sink { address, records })
    }

    /// The URL of job `job`'s target.
    pub fn url(&self, job: u32) -> String {
        format!("http://{}/j/{job}", self.address)
    }

    /// Everything received so far (the records are left empty).
    pub fn take(&self) -> Vec<Arrival> {
        match self.records.lock() {
            Ok(mut records) => std::mem::take(&mut *records),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

async fn record(
    State(records): State<Arc<Mutex<Vec<Arrival>>>>,
    Path(job): Path<u32>,
    headers: HeaderMap,
) -> &'static str {
    let at = Utc::now();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let arrival = Arrival {
        at,
        job,
        scheduled_for: text("cronhook-scheduled-for"),
        webhook_id: text("webhook-id"),
    };
    if let Ok(mut records) = records.lock() {
        records.push(arrival);
    }
    "ok"
}
