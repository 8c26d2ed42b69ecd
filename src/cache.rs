//! The one mechanism behind orgsso's in-memory caches of database state (live sessions, org
//! secrets, role mappings): a map that fails closed, bounded in bytes or entries.
//!
//! - While not enabled (this instance may be missing other instances' changes) nothing is read
//!   from it or written to it.
//! - Every change bumps a generation. A reader notes the generation before it reads the
//!   database and stores what it read only if the generation has not moved, so a value read
//!   before a revocation is never cached after it.
//!
//! Underneath is [`Bounded`]: a concurrent map with a weight budget and S3-FIFO eviction
//! (`quick_cache`), so entries read again and again survive a stream of entries read once,
//! and the map never starts over when full. The verdict and refusal caches of `access` use it
//! directly.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Memory an entry owns outside its inline size (heap buffers), for the byte budgets.
pub trait Weigh {
    fn heap_bytes(&self) -> usize;
}

impl Weigh for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl Weigh for Instant {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl<const N: usize> Weigh for [u8; N] {
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// What the map itself spends per entry beyond key and value: its slab links, hash slot and
/// state, the ghost entry an eviction leaves, and growth slack of both tables.
pub const ENTRY_OVERHEAD: usize = 64;

/// The bytes one entry of a byte-budgeted map is charged.
pub fn entry_bytes<K: Weigh, V: Weigh>(key: &K, value: &V) -> u64 {
    (std::mem::size_of::<K>()
        + std::mem::size_of::<V>()
        + key.heap_bytes()
        + value.heap_bytes()
        + ENTRY_OVERHEAD) as u64
}

/// How an entry is weighed: by [`entry_bytes`], or one unit each (a bound on entries).
pub struct Weigher<K, V>(fn(&K, &V) -> u64);

impl<K, V> Clone for Weigher<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Weigher<K, V> {}

impl<K, V> quick_cache::Weighter<K, V> for Weigher<K, V> {
    fn weight(&self, key: &K, value: &V) -> u64 {
        (self.0)(key, value)
    }
}

/// A concurrent map bounded by a weight budget, evicting what is least used (S3-FIFO: a new
/// entry must be read again before it can push out entries that are read often).
///
/// Writes (insert, remove, retain, clear) are serialized by one lock, so an insert that checks
/// a condition under it (a generation, liveness) cannot land after a removal that the
/// condition was meant to see. Reads take only the map's own shard lock.
pub struct Bounded<K, V> {
    map: quick_cache::sync::Cache<K, V, Weigher<K, V>>,
    writes: Mutex<()>,
}

impl<K: Eq + Hash + Clone, V: Clone> Bounded<K, V> {
    /// At most `budget` bytes of entries as [`entry_bytes`] counts them; `typical` is a
    /// typical entry's size, for sizing the tables.
    pub fn with_budget(budget: u64, typical: u64) -> Self
    where
        K: Weigh,
        V: Weigh,
    {
        Self::with_weigher(
            budget,
            budget / typical.max(1),
            Weigher(entry_bytes::<K, V>),
        )
    }

    /// At most `max_entries` entries.
    pub fn with_max_entries(max_entries: usize) -> Self {
        Self::with_weigher(max_entries as u64, max_entries as u64, Weigher(|_, _| 1))
    }

    fn with_weigher(capacity: u64, items: u64, weigher: Weigher<K, V>) -> Self {
        Bounded {
            map: quick_cache::sync::Cache::with_weighter(
                usize::try_from(items.max(1)).unwrap_or(usize::MAX),
                capacity.max(1),
                weigher,
            ),
            writes: Mutex::new(()),
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        self.map.get(key)
    }

    /// Inserts when `keep()`, called with every other write held off, says so.
    pub fn insert_if(&self, key: K, value: V, keep: impl FnOnce() -> bool) -> bool {
        let _writes = self.writes();
        if !keep() {
            return false;
        }
        self.map.insert(key, value);
        true
    }

    /// Runs `before` and then removes `key`, with every other write held off.
    pub fn remove_after<Q>(&self, key: &Q, before: impl FnOnce())
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        let _writes = self.writes();
        before();
        self.map.remove(key);
    }

    /// Runs `before` and then drops every entry `keep` refuses, with every other write held off.
    pub fn retain_after(&self, keep: impl Fn(&K, &V) -> bool, before: impl FnOnce()) {
        let _writes = self.writes();
        before();
        self.map.retain(keep);
    }

    /// Runs `before` and then empties the map, with every other write held off.
    pub fn clear_after(&self, before: impl FnOnce()) {
        let _writes = self.writes();
        before();
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The weight held (bytes, for a byte budget).
    pub fn weight(&self) -> u64 {
        self.map.weight()
    }

    fn writes(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct RevocableCache<V> {
    map: Bounded<String, V>,
    enabled: AtomicBool,
    generation: AtomicU64,
}

impl<V: Clone> RevocableCache<V> {
    /// Bounded to `max_entries` entries (values whose size is not worth weighing: one per org).
    pub fn new(max_entries: usize) -> Self {
        Self::over(Bounded::with_max_entries(max_entries))
    }

    /// Bounded to `budget` bytes of entries; `typical` is a typical entry's size.
    pub fn with_budget(budget: u64, typical: u64) -> Self
    where
        V: Weigh,
    {
        Self::over(Bounded::with_budget(budget, typical))
    }

    fn over(map: Bounded<String, V>) -> Self {
        RevocableCache {
            map,
            enabled: AtomicBool::new(true),
            generation: AtomicU64::new(0),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Changes so far: note it before reading the database, pass it to [`Self::insert_since`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached value, never while disabled.
    pub fn get(&self, key: &str) -> Option<V> {
        if !self.is_enabled() {
            return None;
        }
        self.map.get(key)
    }

    /// Caches `value` if enabled and nothing changed since `generation`; says whether it did.
    pub fn insert_since(&self, generation: u64, key: &str, value: V) -> bool {
        self.map.insert_if(key.to_owned(), value, || {
            self.is_enabled() && self.generation() == generation
        })
    }

    /// Turns caching on or off; either way it starts empty.
    pub fn set_enabled(&self, on: bool) {
        self.map.clear_after(|| {
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.enabled.store(on, Ordering::Release);
        });
    }

    pub fn remove(&self, key: &str) {
        self.map.remove_after(key, || {
            self.generation.fetch_add(1, Ordering::AcqRel);
        });
    }

    /// Drops every entry `keep` refuses.
    pub fn retain(&self, keep: impl Fn(&String, &V) -> bool) {
        self.map.retain_after(keep, || {
            self.generation.fetch_add(1, Ordering::AcqRel);
        });
    }

    /// Bytes (or entries) held.
    pub fn weight(&self) -> u64 {
        self.map.weight()
    }
}

/// Cached text handed out without a copy (`bytestring::ByteString`, UTF-8 over a shared
/// `bytes::Bytes`): the verify answer's strings come from a cached verdict or session this way,
/// and its header values from the same buffer.
impl Weigh for bytestring::ByteString {
    /// The shared buffer, charged whole to each holder (an upper bound).
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_before_a_change_is_not_cached_after_it() {
        let c = RevocableCache::new(10);
        let g = c.generation();
        c.remove("other");
        assert!(!c.insert_since(g, "k", 1));
        assert_eq!(c.get("k"), None);
        assert!(c.insert_since(c.generation(), "k", 1));
        assert_eq!(c.get("k"), Some(1));
    }

    #[test]
    fn disabled_reads_and_stores_nothing_and_restarts_empty() {
        let c = RevocableCache::new(10);
        c.insert_since(c.generation(), "k", 1);
        c.set_enabled(false);
        assert_eq!(c.get("k"), None);
        assert!(!c.insert_since(c.generation(), "k", 2));
        c.set_enabled(true);
        assert_eq!(c.get("k"), None);
    }

    // Was "bounded_and_retain" with a map that started over when full: now the newest entry
    // stays and the bound holds without emptying the map.
    #[test]
    fn bounded_and_retain() {
        let c = RevocableCache::new(2);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            c.insert_since(c.generation(), k, i);
        }
        let held = ["a", "b", "c"].map(|k| c.get(k));
        assert_eq!(held.iter().flatten().count(), 2, "{held:?}");
        assert_eq!(c.get("c"), Some(2));
        c.insert_since(c.generation(), "d", 3);
        c.retain(|_, v| *v != 3);
        assert_eq!((c.get("c"), c.get("d")), (Some(2), None));
    }

    #[test]
    fn entries_are_charged_their_real_size() {
        let inline = std::mem::size_of::<String>();
        for (key, value, want) in [
            ("", String::new(), 2 * inline + ENTRY_OVERHEAD),
            ("k", String::from("v"), 2 * inline + 2 + ENTRY_OVERHEAD),
            (
                "a-session-id-hash-of-43-characters-00000000",
                "x".repeat(1000),
                2 * inline + 43 + 1000 + ENTRY_OVERHEAD,
            ),
        ] {
            assert_eq!(
                entry_bytes(&key.to_owned(), &value),
                want as u64,
                "{key}/{}",
                value.len()
            );
        }
        let instant = std::mem::size_of::<Instant>();
        assert_eq!(
            entry_bytes(&[0u8; 32], &Instant::now()),
            (32 + instant + ENTRY_OVERHEAD) as u64
        );
    }

    #[test]
    fn a_byte_budget_holds_whatever_is_inserted() {
        // (budget, entries inserted, value size): far more than fits, small and large values.
        for (budget, n, size) in [
            (64 * 1024, 10_000, 10),
            (64 * 1024, 10_000, 500),
            (1 << 20, 50_000, 100),
            (1 << 20, 5_000, 6_000),
        ] {
            let c: Bounded<String, String> = Bounded::with_budget(budget, 200);
            for i in 0..n {
                c.insert_if(format!("key-{i}"), "v".repeat(size), || true);
                assert!(c.weight() <= budget, "{budget} B after {i} of {size} B");
            }
            assert!(!c.is_empty(), "{budget} B holds entries of {size} B");
            let one = entry_bytes(&format!("key-{}", n - 1), &"v".repeat(size));
            assert!(
                c.len() as u64 * one >= budget / 2,
                "{budget} B is used: {} entries of {one} B",
                c.len()
            );
        }
    }

    #[test]
    fn a_hot_set_survives_a_scan_of_cold_entries() {
        // (budget in entries of ~100 B, hot entries, cold entries each read once, hot reads
        // between cold inserts: 0 = the scan runs alone).
        for (fits, hot, cold, every) in [
            (1_000, 50, 20_000, 0),
            (1_000, 200, 20_000, 0),
            (1_000, 200, 50_000, 100),
            (10_000, 2_000, 200_000, 0),
        ] {
            let budget = fits * entry_bytes(&"hot-00000".to_owned(), &"v".repeat(20));
            let c: Bounded<String, String> = Bounded::with_budget(budget, 100);
            let hot_keys: Vec<String> = (0..hot).map(|i| format!("hot-{i:05}")).collect();
            for k in &hot_keys {
                c.insert_if(k.clone(), "v".repeat(20), || true);
            }
            for _ in 0..3 {
                for k in &hot_keys {
                    assert!(c.get(k).is_some(), "{k} before the scan");
                }
            }
            for i in 0..cold {
                c.insert_if(format!("cold-{i:07}"), "v".repeat(18), || true);
                if every > 0 && i % every == 0 {
                    let k = &hot_keys[(i / every) % hot_keys.len()];
                    assert!(c.get(k).is_some(), "{k} during the scan");
                }
            }
            let kept = hot_keys.iter().filter(|k| c.get(*k).is_some()).count();
            assert_eq!(
                kept,
                hot_keys.len(),
                "budget {fits}, hot {hot}, scan {cold}"
            );
            assert!(c.weight() <= budget);
        }
    }

    #[test]
    fn a_checked_insert_waits_for_a_removal_in_progress() {
        let c: Bounded<String, u32> = Bounded::with_max_entries(10);
        c.insert_if("k".into(), 1, || true);
        // The condition is evaluated under the write lock: inside a removal's `before`, a
        // checked insert would deadlock, so it is shown from the other side: a removal runs
        // its `before` and removal as one step.
        c.remove_after("k", || assert_eq!(c.get("k"), Some(1)));
        assert_eq!(c.get("k"), None);
        assert!(!c.insert_if("k".into(), 2, || false));
        assert_eq!(c.get("k"), None);
    }
}
