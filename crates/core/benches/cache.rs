//! What the caches of values costly to make again cost per read when more keys are read in turn
//! than the old caches held: a second of 24 000 every-second jobs, each with its own URL.
//!
//! `cargo bench -p cronhook-core --bench cache -- --warm-up-time 2 --measurement-time 5`
//!
//! Each iteration reads the 24 000 keys once, as one second of firing does; the figure is per
//! second of firing. "before" is the policy the executor's checked URLs had until session 24
//! (start over at 20 000) and the spec cache's (keyed by the stored text, no newcomer past 20 000
//! jobs); "now" is `BoundedCache` with the executor's and the store's bounds, specs keyed by the
//! job's revision. What the store no longer copies out of SQLite (each due job's text) is not
//! in these figures.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use cronhook_core::JobSpec;
use cronhook_core::cache::BoundedCache;
use cronhook_core::net::TargetPolicy;
use cronhook_core::validate::validate_target_url;

const JOBS: usize = 24_000;
const OLD_CAPACITY: usize = 20_000;
const SWEEP: Duration = Duration::from_secs(60);

fn urls() -> Vec<String> {
    (0..JOBS)
        .map(|index| format!("http://127.0.0.1:40000/fire/{index}"))
        .collect()
}

fn checked_urls(c: &mut Criterion) {
    let targets = TargetPolicy {
        allow_private: true,
        ..TargetPolicy::default()
    };
    let urls = urls();
    let check = |text: &str| validate_target_url(text, "request.url", &targets).expect("permitted");
    let mut group = c.benchmark_group("checked URLs, 24 000 read in turn");
    group.sample_size(10);

    let mut before: HashMap<String, url::Url> = HashMap::new();
    group.bench_function("before: start over at 20 000", |b| {
        b.iter(|| {
            for text in &urls {
                let url = match before.get(text.as_str()) {
                    Some(url) => url.clone(),
                    None => {
                        let url = check(text);
                        if before.len() >= OLD_CAPACITY {
                            before.clear();
                        }
                        before.insert(text.clone(), url.clone());
                        url
                    }
                };
                black_box(url);
            }
        });
    });

    let mut now: BoundedCache<String, url::Url> = BoundedCache::new(32 * 1024 * 1024, SWEEP);
    group.bench_function("now: BoundedCache, 32 MiB", |b| {
        b.iter(|| {
            for text in &urls {
                let url = match now.get(text.as_str()) {
                    Some(url) => url.clone(),
                    None => {
                        let url = check(text);
                        now.insert(
                            text.clone(),
                            url.clone(),
                            3 * text.len() + 96,
                            Instant::now(),
                        );
                        url
                    }
                };
                black_box(url);
            }
        });
    });
    group.finish();
}

fn opened_specs(c: &mut Criterion) {
    let stored: Vec<(String, String)> = urls()
        .iter()
        .enumerate()
        .map(|(index, url)| {
            let spec: JobSpec = serde_json::from_value(serde_json::json!({
                "name": format!("fire-{index}"),
                "schedule": {"cron": "* * * * * *"},
                "request": {"url": url},
            }))
            .expect("a valid spec");
            (
                format!("job_{index:06}"),
                serde_json::to_string(&spec).expect("serializes"),
            )
        })
        .collect();
    let open = |text: &str| Arc::new(serde_json::from_str::<JobSpec>(text).expect("opens"));
    let mut group = c.benchmark_group("opened specs, 24 000 read in turn");
    group.sample_size(10);

    // Keyed by the stored text, as the SQLite store read it with every due job.
    let mut before: BoundedCache<String, (String, Arc<JobSpec>)> =
        BoundedCache::new(OLD_CAPACITY, SWEEP);
    group.bench_function("before: by text, no newcomer past 20 000", |b| {
        b.iter(|| {
            for (id, text) in &stored {
                let hit = before
                    .get(id.as_str())
                    .filter(|(kept, _)| kept == text)
                    .map(|(_, spec)| Arc::clone(spec));
                let spec = hit.unwrap_or_else(|| {
                    let spec = open(text);
                    let kept = (text.clone(), Arc::clone(&spec));
                    before.insert(id.clone(), kept, 1, Instant::now());
                    spec
                });
                black_box(spec);
            }
        });
    });

    // Keyed by the job's revision, as it reads it now; the text is fetched only on a miss.
    let mut now: BoundedCache<String, (i64, Arc<JobSpec>)> =
        BoundedCache::new(64 * 1024 * 1024, SWEEP);
    let revision = 7;
    group.bench_function("now: by revision, 64 MiB", |b| {
        b.iter(|| {
            for (id, text) in &stored {
                let hit = now
                    .get(id.as_str())
                    .filter(|(kept, _)| *kept == revision)
                    .map(|(_, spec)| Arc::clone(spec));
                let spec = hit.unwrap_or_else(|| {
                    let spec = open(text);
                    let weight = id.len() + text.len() + 512;
                    now.insert(
                        id.clone(),
                        (revision, Arc::clone(&spec)),
                        weight,
                        Instant::now(),
                    );
                    spec
                });
                black_box(spec);
            }
        });
    });
    group.finish();
}

criterion_group!(benches, checked_urls, opened_specs);
criterion_main!(benches);
