//! `cronhook-bench`: the performance harness. Each scenario prints a table (or, with `--json`,
//! one JSON object per result line). See the README's "Benchmarks" section.

mod departures;
mod histogram;
mod process;
mod scenarios;
mod seed;
mod sink;
mod store;

use std::path::PathBuf;

/// The same allocator as `cronhook`, so the ceiling's client and sink pay what cronhook pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

#[derive(Debug, Parser)]
#[command(
    name = "cronhook-bench",
    about = "Measures cronhook's throughput, fire lag and footprint"
)]
struct Cli {
    /// One JSON object per result line instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// The `cronhook` binary (default: next to this one).
    #[arg(long, global = true)]
    cronhook: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// A bare reqwest client (the executor's settings) against the in-process sink.
    Ceiling(scenarios::CeilingArgs),
    /// The real `cronhook serve` firing N every-second jobs at the sink.
    Fire(scenarios::FireArgs),
    /// Time from process start to ready, and RSS, with M jobs registered.
    Startup(scenarios::StartupArgs),
    /// Requests/s of job creation and of listing executions.
    Api(scenarios::ApiArgs),
    /// CPU per execution of the SQLite store's firing path, against bare inserts of its rows.
    Store(store::StoreArgs),
}

/// One result: a scenario name and its fields, in order.
pub struct Report {
    pub scenario: &'static str,
    pub fields: Vec<(&'static str, Value)>,
}

impl Report {
    pub fn new(scenario: &'static str) -> Report {
        Report {
            scenario,
            fields: Vec::new(),
        }
    }

    pub fn add(&mut self, name: &'static str, value: impl Into<Value>) {
        self.fields.push((name, value.into()));
    }
}

#[tokio::main]
async fn main() {
    // As `cronhook` does, so the sink's bursts and the ceiling's client pay what cronhook pays.
    cronhook_executor::allocator::keep_freed_memory_between_bursts();
    let cli = Cli::parse();
    // reqwest is built without a default crypto provider; install ring's once, first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match &cli.scenario {
        Scenario::Ceiling(args) => scenarios::ceiling(args).await,
        Scenario::Fire(args) => scenarios::fire(args, cli.cronhook.as_deref()).await,
        Scenario::Startup(args) => scenarios::startup(args, cli.cronhook.as_deref()).await,
        Scenario::Api(args) => scenarios::api(args, cli.cronhook.as_deref()).await,
        Scenario::Store(args) => store::store(args).await,
    };
    match result {
        Ok(reports) => print_reports(&reports, cli.json),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    }
}

/// Prints the results: a plain two-column table per result, or one JSON object per line.
#[allow(clippy::print_stdout)]
fn print_reports(reports: &[Report], json: bool) {
    for report in reports {
        if json {
            let mut object = Map::new();
            object.insert("scenario".to_owned(), Value::from(report.scenario));
            for (name, value) in &report.fields {
                object.insert((*name).to_owned(), value.clone());
            }
            println!("{}", Value::Object(object));
        } else {
            let width = report
                .fields
                .iter()
                .map(|(name, _)| name.len())
                .max()
                .unwrap_or(0)
                .max("scenario".len());
            println!("{:<width$}  {}", "scenario", report.scenario);
            for (name, value) in &report.fields {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                println!("{name:<width$}  {text}");
            }
            println!();
        }
    }
}
