//! Opened specs of jobs the scheduler reads again and again.
//!
//! An every-second job is read back every second, and parsing its stored JSON and opening its
//! sealed headers was most of what reading due jobs cost. The cache keeps the opened spec with
//! the exact stored text it came from, and hands it out again only for the same text, name and
//! paused flag: any edit, pause or re-seal changes one of them, so a stale spec is never served.

use std::collections::HashMap;
use std::sync::Mutex;

use cronhook_core::JobSpec;

/// The most jobs a [`SpecCache`] holds; past it the cache starts over (jobs that fire often
/// come straight back, deleted ones do not).
pub const SPEC_CACHE_CAPACITY: usize = 100_000;

/// Opened job specs keyed by job id, each with the stored text it was read from.
#[derive(Debug, Default)]
pub struct SpecCache {
    entries: Mutex<HashMap<String, CachedSpec>>,
}

#[derive(Debug)]
struct CachedSpec {
    stored: String,
    name: String,
    paused: bool,
    spec: JobSpec,
}

impl SpecCache {
    /// The opened spec of job `id`, when it was cached from exactly this stored text, name and
    /// paused flag.
    pub fn get(&self, id: &str, stored: &str, name: &str, paused: bool) -> Option<JobSpec> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(id)
            .filter(|cached| {
                cached.stored == stored && cached.name == name && cached.paused == paused
            })
            .map(|cached| cached.spec.clone())
    }

    /// Remembers the opened `spec` of job `id`, read from `stored` (its name and paused flag are
    /// the spec's own).
    pub fn put(&self, id: &str, stored: String, spec: &JobSpec) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= SPEC_CACHE_CAPACITY && !entries.contains_key(id) {
            entries.clear();
        }
        entries.insert(
            id.to_owned(),
            CachedSpec {
                stored,
                name: spec.name.clone(),
                paused: spec.paused,
                spec: spec.clone(),
            },
        );
    }

    /// How many jobs are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "name": "nightly",
            "schedule": {"cron": "* * * * *"},
            "request": {"url": url},
        }))
        .expect("a valid spec")
    }

    #[test]
    fn serves_only_the_text_it_was_read_from() {
        let cache = SpecCache::default();
        let stored = r#"{"request":{"url":"https://a.example/"}}"#;
        cache.put("job_1", stored.to_owned(), &spec("https://a.example/"));
        let hit = cache
            .get("job_1", stored, "nightly", false)
            .expect("cached");
        assert_eq!(hit.request.url, "https://a.example/");
        assert!(
            cache
                .get(
                    "job_1",
                    r#"{"request":{"url":"https://b.example/"}}"#,
                    "nightly",
                    false
                )
                .is_none()
        );
        assert!(cache.get("job_1", stored, "renamed", false).is_none());
        assert!(cache.get("job_1", stored, "nightly", true).is_none());
        assert!(cache.get("job_2", stored, "nightly", false).is_none());
    }

    #[test]
    fn starts_over_when_full() {
        let cache = SpecCache::default();
        let spec = spec("https://a.example/");
        for index in 0..SPEC_CACHE_CAPACITY {
            cache.put(&format!("job_{index}"), String::new(), &spec);
        }
        assert_eq!(cache.len(), SPEC_CACHE_CAPACITY);
        cache.put("job_1", "changed".to_owned(), &spec);
        assert_eq!(
            cache.len(),
            SPEC_CACHE_CAPACITY,
            "replacing an entry keeps the rest"
        );
        cache.put("one_more", String::new(), &spec);
        assert_eq!(cache.len(), 1);
    }
}
