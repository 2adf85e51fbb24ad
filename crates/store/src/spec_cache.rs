//! Opened specs of jobs the scheduler reads again and again.
//!
//! An every-second job is read back every second, and parsing its stored JSON and opening its
//! sealed headers was most of what reading due jobs cost. The cache keeps the opened spec with
//! the revision of the job it came from: a number the store moves whenever the job's spec, name
//! or paused flag change (any edit, pause or re-seal), so a stale spec is never served. The store
//! then reads a due job's revision, and its stored text only when the revision is not cached.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cronhook_core::cache::BoundedCache;
use cronhook_core::{Job, JobSpec};

use crate::{Sealer, StoreResult, WorkspaceKeyStore};

/// About the most memory, in bytes, a [`SpecCache`]'s entries take: ~90 000 jobs of a plain spec
/// (~700 bytes each, the opened spec and the id), fewer of larger ones. When it
/// is full, the entries not read since the previous sweep are dropped (deleted jobs, jobs that
/// fire rarely), at most once per [`SPEC_CACHE_SWEEP`]; in between, new jobs are not cached.
pub const SPEC_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The least time between two sweeps of a full [`SpecCache`], so the jobs read every second
/// stay cached however many more there are.
pub const SPEC_CACHE_SWEEP: Duration = Duration::from_secs(60);
/// What an entry takes beside its texts: the spec's fields, the map's slot, the `Arc`.
const ENTRY_OVERHEAD_BYTES: usize = 512;

/// Opened job specs keyed by job id, each with the revision it was read at.
#[derive(Debug)]
pub struct SpecCache {
    /// Keyed by job id: ids are cronhook's own, so the fast hasher is safe here.
    inner: Mutex<BoundedCache<String, CachedSpec, foldhash::fast::RandomState>>,
}

#[derive(Debug)]
struct CachedSpec {
    revision: i64,
    spec: Arc<JobSpec>,
}

impl Default for SpecCache {
    fn default() -> Self {
        Self {
            inner: Mutex::new(BoundedCache::new(SPEC_CACHE_BYTES, SPEC_CACHE_SWEEP)),
        }
    }
}

impl SpecCache {
    /// The opened spec of job `id`, when it was cached at exactly this revision.
    pub fn get(&self, id: &str, revision: i64) -> Option<Arc<JobSpec>> {
        let mut inner = self.lock();
        let cached = inner.get(id).filter(|cached| cached.revision == revision)?;
        Some(Arc::clone(&cached.spec))
    }

    /// The opened specs of the jobs `read` (each id with the revision a read found), in order:
    /// the cached spec where it is cached at that revision, else `None`; and the ids of the
    /// latter, whose stored texts the read must fetch.
    pub fn lookup<'a>(&self, read: &[(&'a str, i64)]) -> (Vec<Option<Arc<JobSpec>>>, Vec<&'a str>) {
        let mut cached = Vec::with_capacity(read.len());
        let mut uncached = Vec::new();
        for &(id, revision) in read {
            let spec = self.get(id, revision);
            if spec.is_none() {
                uncached.push(id);
            }
            cached.push(spec);
        }
        (cached, uncached)
    }

    /// Remembers the opened `spec` of job `id`, read at `revision` from a stored text of
    /// `stored_len` bytes (what the opened spec holds, about).
    pub fn put(&self, id: &str, revision: i64, stored_len: usize, spec: &Arc<JobSpec>) {
        self.put_at(id, revision, stored_len, spec, Instant::now());
    }

    fn put_at(
        &self,
        id: &str,
        revision: i64,
        stored_len: usize,
        spec: &Arc<JobSpec>,
        now: Instant,
    ) {
        let weight = id.len() + stored_len + ENTRY_OVERHEAD_BYTES;
        let cached = CachedSpec {
            revision,
            spec: Arc::clone(spec),
        };
        self.lock().insert(id.to_owned(), cached, weight, now);
    }

    /// The jobs of a read, each with its spec opened: `read` holds each job with, when the read
    /// parsed its spec from the stored text (not from this cache), the revision and the text's
    /// length it found. Those specs' sealed values are opened here, and the specs kept for the
    /// next read.
    pub async fn open_and_keep(
        &self,
        sealer: &Sealer,
        keys: &dyn WorkspaceKeyStore,
        read: Vec<(Job, Option<(i64, usize)>)>,
    ) -> StoreResult<Vec<Job>> {
        let mut jobs = Vec::with_capacity(read.len());
        for (mut job, parsed_at) in read {
            if let Some(stored_at) = parsed_at {
                self.open_and_keep_one(
                    sealer,
                    keys,
                    (&job.workspace_id, &job.id),
                    stored_at,
                    &mut job.spec,
                )
                .await?;
            }
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// Opens the sealed values of `spec`, parsed from the stored text of job `(workspace, job)`
    /// at `(revision, the text's length)`, and keeps it for the next read.
    pub async fn open_and_keep_one(
        &self,
        sealer: &Sealer,
        keys: &dyn WorkspaceKeyStore,
        (workspace_id, job_id): (&str, &str),
        (revision, stored_len): (i64, usize),
        spec: &mut Arc<JobSpec>,
    ) -> StoreResult<()> {
        sealer
            .open_spec(keys, workspace_id, job_id, Arc::make_mut(spec))
            .await?;
        self.put(job_id, revision, stored_len, spec);
        Ok(())
    }

    /// How many jobs are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, BoundedCache<String, CachedSpec, foldhash::fast::RandomState>>
    {
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
    fn serves_only_the_revision_it_was_read_at() {
        let cache = SpecCache::default();
        let opened = spec("https://a.example/");
        cache.put("job_1", 3, 40, &opened);
        let hit = cache.get("job_1", 3).expect("cached");
        assert_eq!(hit.request.url, "https://a.example/");
        assert!(Arc::ptr_eq(&hit, &opened), "handed out shared, not copied");
        assert!(cache.get("job_1", 4).is_none(), "edited since");
        assert!(cache.get("job_2", 3).is_none());
        // The next revision replaces it.
        cache.put("job_1", 4, 40, &spec("https://b.example/"));
        assert_eq!(
            cache.get("job_1", 4).expect("cached").request.url,
            "https://b.example/"
        );
        assert!(cache.get("job_1", 3).is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_lookup_keeps_the_read_order_and_names_what_to_fetch() {
        let cache = SpecCache::default();
        cache.put("job_1", 1, 40, &spec("https://one.example/"));
        cache.put("job_3", 7, 40, &spec("https://three.example/"));
        let (cached, uncached) = cache.lookup(&[("job_1", 1), ("job_2", 0), ("job_3", 8)]);
        let urls: Vec<Option<String>> = cached
            .iter()
            .map(|spec| spec.as_ref().map(|spec| spec.request.url.clone()))
            .collect();
        assert_eq!(urls, [Some("https://one.example/".to_owned()), None, None]);
        assert_eq!(
            uncached,
            ["job_2", "job_3"],
            "never cached, and edited since"
        );
    }

    #[test]
    fn jobs_read_every_second_stay_cached_however_many_more_there_are() {
        let cache = SpecCache::default();
        let opened = spec("https://a.example/");
        let id = |index: usize| format!("job_{index:06}");
        // Specs stored in ~300 bytes.
        let stored_len = 300;
        let fits = SPEC_CACHE_BYTES / (id(0).len() + stored_len + ENTRY_OVERHEAD_BYTES);
        let start = Instant::now();
        // A thousand more jobs than fit, all read every second, as the scheduler reads them.
        let read_all = |second: u64| {
            let mut hits = 0;
            for index in 0..fits + 1_000 {
                if cache.get(&id(index), 0).is_some() {
                    hits += 1;
                } else {
                    let now = start + Duration::from_secs(second);
                    cache.put_at(&id(index), 0, stored_len, &opened, now);
                }
            }
            hits
        };
        read_all(0);
        read_all(1);
        for second in [2, 3, 61, 62] {
            assert_eq!(read_all(second), fits, "second {second}");
            assert_eq!(cache.len(), fits);
        }
    }
}
