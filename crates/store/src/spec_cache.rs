//! Opened specs of jobs the scheduler reads again and again.
//!
//! An every-second job is read back every second, and parsing its stored JSON and opening its
//! sealed headers was most of what reading due jobs cost. The cache keeps the opened spec with
//! the exact stored text it came from, and hands it out again only for the same text, name and
//! paused flag: any edit, pause or re-seal changes one of them, so a stale spec is never served.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cronhook_core::JobSpec;

/// The most jobs a [`SpecCache`] holds (a spec and its stored text take a few KiB). When it is
/// full, the entries not read since the previous sweep are dropped (deleted jobs, jobs that fire
/// rarely), at most once per [`SPEC_CACHE_SWEEP`]; in between, new jobs are not cached.
pub const SPEC_CACHE_CAPACITY: usize = 20_000;
/// The least time between two sweeps of a full [`SpecCache`], so the jobs read every second
/// stay cached however many more there are.
pub const SPEC_CACHE_SWEEP: Duration = Duration::from_secs(60);

/// Opened job specs keyed by job id, each with the stored text it was read from.
#[derive(Debug, Default)]
pub struct SpecCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Keyed by job id: ids are cronhook's own, so the fast hasher is safe here.
    entries: foldhash::HashMap<String, CachedSpec>,
    last_sweep: Option<Instant>,
}

#[derive(Debug)]
struct CachedSpec {
    stored: String,
    name: String,
    paused: bool,
    spec: Arc<JobSpec>,
    /// Read since the last sweep.
    read: bool,
}

impl SpecCache {
    /// The opened spec of job `id`, when it was cached from exactly this stored text, name and
    /// paused flag.
    pub fn get(&self, id: &str, stored: &str, name: &str, paused: bool) -> Option<Arc<JobSpec>> {
        let mut inner = self.lock();
        let cached = inner.entries.get_mut(id).filter(|cached| {
            cached.stored == stored && cached.name == name && cached.paused == paused
        })?;
        cached.read = true;
        Some(Arc::clone(&cached.spec))
    }

    /// Remembers the opened `spec` of job `id`, read from `stored` (its name and paused flag are
    /// the spec's own).
    pub fn put(&self, id: &str, stored: String, spec: &Arc<JobSpec>) {
        self.put_at(id, stored, spec, Instant::now());
    }

    fn put_at(&self, id: &str, stored: String, spec: &Arc<JobSpec>, now: Instant) {
        let mut inner = self.lock();
        if inner.entries.len() >= SPEC_CACHE_CAPACITY && !inner.entries.contains_key(id) {
            if inner
                .last_sweep
                .is_some_and(|swept| now.duration_since(swept) < SPEC_CACHE_SWEEP)
            {
                return;
            }
            // Second chance: keep what was read since the last sweep, and mark it unread.
            inner.last_sweep = Some(now);
            inner
                .entries
                .retain(|_, cached| std::mem::take(&mut cached.read));
            if inner.entries.len() >= SPEC_CACHE_CAPACITY {
                return;
            }
        }
        inner.entries.insert(
            id.to_owned(),
            CachedSpec {
                stored,
                name: spec.name.clone(),
                paused: spec.paused,
                spec: Arc::clone(spec),
                read: false,
            },
        );
    }

    /// How many jobs are cached.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> Arc<JobSpec> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "name": "nightly",
                "schedule": {"cron": "* * * * *"},
                "request": {"url": url},
            }))
            .expect("a valid spec"),
        )
    }

    #[test]
    fn serves_only_the_text_it_was_read_from() {
        let cache = SpecCache::default();
        let stored = r#"{"request":{"url":"https://a.example/"}}"#;
        let opened = spec("https://a.example/");
        cache.put("job_1", stored.to_owned(), &opened);
        let hit = cache
            .get("job_1", stored, "nightly", false)
            .expect("cached");
        assert_eq!(hit.request.url, "https://a.example/");
        assert!(Arc::ptr_eq(&hit, &opened), "handed out shared, not copied");
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
    fn when_full_it_keeps_the_specs_still_read() {
        let cache = SpecCache::default();
        let spec = spec("https://a.example/");
        let start = Instant::now();
        for index in 0..SPEC_CACHE_CAPACITY {
            cache.put_at(&format!("job_{index}"), String::new(), &spec, start);
        }
        assert_eq!(cache.len(), SPEC_CACHE_CAPACITY);
        cache.put_at("job_1", "changed".to_owned(), &spec, start);
        assert_eq!(
            cache.len(),
            SPEC_CACHE_CAPACITY,
            "replacing an entry keeps the rest"
        );
        // Two jobs still fire (read back); the rest were deleted or fire rarely.
        assert!(cache.get("job_2", "", "nightly", false).is_some());
        assert!(cache.get("job_3", "", "nightly", false).is_some());
        cache.put_at("one_more", String::new(), &spec, start);
        assert_eq!(cache.len(), 3, "the unread were dropped");
        assert!(cache.get("job_2", "", "nightly", false).is_some());
        assert!(cache.get("one_more", "", "nightly", false).is_some());
        assert!(cache.get("job_4", "", "nightly", false).is_none());
    }

    #[test]
    fn jobs_read_every_second_stay_cached_however_many_more_there_are() {
        let cache = SpecCache::default();
        let spec = spec("https://a.example/");
        let start = Instant::now();
        let fill = |at: Instant| {
            for index in 0..SPEC_CACHE_CAPACITY {
                let id = format!("job_{index}");
                if cache.get(&id, "", "nightly", false).is_none() {
                    cache.put_at(&id, String::new(), &spec, at);
                }
            }
        };
        fill(start);
        fill(start);
        // Full of jobs that are read: a sweep keeps them all, and newcomers wait.
        for newcomer in ["n1", "n2", "n3"] {
            cache.put_at(
                newcomer,
                String::new(),
                &spec,
                start + Duration::from_secs(1),
            );
            assert!(cache.get(newcomer, "", "nightly", false).is_none());
        }
        assert_eq!(cache.len(), SPEC_CACHE_CAPACITY);
        fill(start + Duration::from_secs(2));
        assert!(cache.get("job_7", "", "nightly", false).is_some());
        // A sweep a full interval later still keeps every job read since the last one.
        cache.put_at("n4", String::new(), &spec, start + SPEC_CACHE_SWEEP * 2);
        assert_eq!(cache.len(), SPEC_CACHE_CAPACITY);
        assert!(cache.get("job_7", "", "nightly", false).is_some());
    }
}
