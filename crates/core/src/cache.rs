//! A bounded map that keeps the entries still in use.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

/// A map of entries weighing at most `capacity` together, for values that cost more to make
/// again than to keep (checked URLs, opened job specs, compiled schedules, parsed cron patterns),
/// read over and over by the same keys. An entry's weight is what its caller says: 1 to bound
/// entries, or roughly its bytes to bound memory when sizes vary.
///
/// When a newcomer does not fit, it sweeps out the entries not read since the previous sweep (a
/// second chance) and takes a freed place; when every entry was read, the newcomer is refused and
/// its caller makes its value again the next time. Sweeps are at least `sweep_every` apart, so an
/// entry read at least that often stays, however many more keys there are, and a flood of keys
/// read once costs making their values, never memory. (Starting over when full, as some of these
/// caches once did, missed on every read as soon as more keys than `capacity` were read in turn:
/// 24 000 every-second jobs each parsed its URL on every fire.)
///
/// The caller passes the time, which keeps the cache free of clocks and its tests exact.
#[derive(Debug)]
pub struct BoundedCache<K, V, S = RandomState> {
    capacity: usize,
    sweep_every: Duration,
    entries: HashMap<K, Entry<V>, S>,
    /// The weights of `entries`, summed.
    weight: usize,
    last_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    weight: usize,
    /// Read since the last sweep.
    read: bool,
}

impl<K: Eq + Hash, V, S: BuildHasher + Default> BoundedCache<K, V, S> {
    /// An empty cache that holds entries weighing at most `capacity` together (at least 1) and
    /// sweeps at most once per `sweep_every`.
    pub fn new(capacity: usize, sweep_every: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            sweep_every,
            entries: HashMap::default(),
            weight: 0,
            last_sweep: None,
        }
    }

    /// The value kept under `key`, marked as read.
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.entries.get_mut(key)?;
        entry.read = true;
        Some(&entry.value)
    }

    /// Keeps `value`, weighing `weight`, under `key` in place of the value it had; false when
    /// it was not kept: it weighs more than the whole capacity, or it does not fit beside the
    /// entries read since a sweep less than `sweep_every` before `now`.
    pub fn insert(&mut self, key: K, value: V, weight: usize, now: Instant) -> bool {
        if weight > self.capacity {
            return false;
        }
        // A replaced entry's place is its own again.
        if let Some(old) = self.entries.remove(&key) {
            self.weight -= old.weight;
        }
        if self.weight + weight > self.capacity {
            if self
                .last_sweep
                .is_some_and(|swept| now.saturating_duration_since(swept) < self.sweep_every)
            {
                return false;
            }
            self.last_sweep = Some(now);
            let mut kept = 0;
            self.entries.retain(|_, entry| {
                let read = std::mem::replace(&mut entry.read, false);
                if read {
                    kept += entry.weight;
                }
                read
            });
            self.weight = kept;
            if self.weight + weight > self.capacity {
                return false;
            }
        }
        self.weight += weight;
        self.entries.insert(
            key,
            Entry {
                value,
                weight,
                read: false,
            },
        );
        true
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most the entries kept at once weigh together.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// What the entries kept weigh together.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWEEP: Duration = Duration::from_secs(60);

    fn cache(capacity: usize) -> BoundedCache<String, usize> {
        BoundedCache::new(capacity, SWEEP)
    }

    fn key(index: usize) -> String {
        format!("k{index}")
    }

    #[test]
    fn keeps_what_it_is_given_up_to_its_capacity() {
        let now = Instant::now();
        let mut cache = cache(4);
        assert!(cache.is_empty());
        for index in 0..4 {
            assert!(cache.insert(key(index), index, 1, now));
        }
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.get("k2"), Some(&2));
        assert!(
            cache.insert(key(2), 20, 1, now),
            "a replacement is always kept"
        );
        assert_eq!(cache.get("k2"), Some(&20));
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.get("k9"), None);
    }

    #[test]
    fn when_full_a_newcomer_takes_the_place_of_an_entry_not_read() {
        let now = Instant::now();
        let mut cache = cache(4);
        for index in 0..4 {
            cache.insert(key(index), index, 1, now);
        }
        // k1 and k3 are still read; k0 and k2 are not.
        cache.get("k1");
        cache.get("k3");
        assert!(cache.insert(key(4), 4, 1, now));
        assert_eq!(cache.len(), 3, "the two unread went, the newcomer came");
        assert_eq!(cache.get("k0"), None);
        assert_eq!(cache.get("k2"), None);
        assert_eq!(cache.get("k1"), Some(&1));
        assert_eq!(cache.get("k4"), Some(&4));
    }

    #[test]
    fn keys_read_every_second_stay_cached_however_many_more_there_are() {
        // 1 000 keys read in turn once a second through a cache of 400: starting over when
        // full hit nothing; keeping what is read hits the same 400 every second.
        let start = Instant::now();
        let mut cache = cache(400);
        let mut hits_per_second = Vec::new();
        for second in 0..130 {
            let now = start + Duration::from_secs(second);
            let mut hits = 0;
            for index in 0..1_000 {
                if cache.get(key(index).as_str()).is_some() {
                    hits += 1;
                } else {
                    cache.insert(key(index), index, 1, now);
                }
            }
            hits_per_second.push(hits);
        }
        assert_eq!(hits_per_second[0], 0);
        assert!(
            hits_per_second[1..].iter().all(|&hits| hits == 400),
            "{hits_per_second:?}"
        );
        assert_eq!(cache.len(), 400);
    }

    #[test]
    fn a_flood_of_keys_read_once_neither_grows_it_nor_evicts_what_is_read() {
        let start = Instant::now();
        let mut cache = cache(100);
        for index in 0..50 {
            cache.insert(key(index), index, 1, start);
            cache.get(key(index).as_str());
        }
        for flood in 1_000..11_000 {
            // A thousand newcomers a second; the 50 are read every second.
            let now = start + Duration::from_millis(flood as u64);
            cache.insert(key(flood), flood, 1, now);
            if flood % 1_000 == 999 {
                for index in 0..50 {
                    assert!(
                        cache.get(key(index).as_str()).is_some(),
                        "k{index} at {flood}"
                    );
                }
            }
            assert!(cache.len() <= 100);
        }
    }

    #[test]
    fn sweeps_wait_for_their_interval() {
        let start = Instant::now();
        let mut cache = cache(10);
        for index in 0..10 {
            cache.insert(key(index), index, 1, start);
            cache.get(key(index).as_str());
        }
        // Every entry read: the sweep keeps them all and refuses the newcomer.
        assert!(!cache.insert(key(100), 100, 1, start));
        // Nothing read since, but the next sweep waits for its interval.
        let soon = start + SWEEP - Duration::from_millis(1);
        assert!(!cache.insert(key(101), 101, 1, soon));
        assert!(
            cache.insert(key(102), 102, 1, start + SWEEP),
            "swept: the unread made room"
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn weights_bound_what_it_keeps() {
        let now = Instant::now();
        let mut cache = cache(100);
        assert!(!cache.insert(key(0), 0, 101, now), "heavier than the whole");
        assert!(cache.insert(key(1), 1, 60, now));
        assert!(cache.insert(key(2), 2, 30, now));
        assert_eq!(cache.weight(), 90);
        cache.get("k2");
        // k1 was not read: the sweep makes room for a newcomer of 50.
        assert!(cache.insert(key(3), 3, 50, now));
        assert_eq!(cache.weight(), 80);
        assert_eq!(cache.get("k1"), None);
        // A replacement gives back its old weight first.
        assert!(cache.insert(key(3), 33, 70, now));
        assert_eq!(cache.weight(), 100);
        assert_eq!(cache.get("k3"), Some(&33));
    }

    #[test]
    fn a_capacity_of_zero_keeps_one() {
        let now = Instant::now();
        let mut cache = cache(0);
        assert_eq!(cache.capacity(), 1);
        assert!(cache.insert(key(1), 1, 1, now));
        assert!(cache.insert(key(2), 2, 1, now), "the unread one made room");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("k2"), Some(&2));
    }
}
