//! The one mechanism behind orgsso's in-memory caches of database state (live sessions, org
//! secrets, role mappings): a map that fails closed.
//!
//! - While not enabled (this instance may be missing other instances' changes) nothing is read
//!   from it or written to it.
//! - Every change bumps a generation. A reader notes the generation before it reads the
//!   database and stores what it read only if the generation has not moved, so a value read
//!   before a revocation is never cached after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

pub struct RevocableCache<V> {
    map: Mutex<HashMap<String, V>>,
    enabled: AtomicBool,
    generation: AtomicU64,
    /// Bound on memory: past this many entries the map starts over.
    max_entries: usize,
}

impl<V: Clone> RevocableCache<V> {
    pub fn new(max_entries: usize) -> Self {
        RevocableCache {
            map: Mutex::new(HashMap::new()),
            enabled: AtomicBool::new(true),
            generation: AtomicU64::new(0),
            max_entries,
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
        self.lock().get(key).cloned()
    }

    /// Caches `value` if enabled and nothing changed since `generation`; says whether it did.
    pub fn insert_since(&self, generation: u64, key: &str, value: V) -> bool {
        let mut map = self.lock();
        if !self.is_enabled() || self.generation() != generation {
            return false;
        }
        if map.len() >= self.max_entries {
            map.clear();
        }
        map.insert(key.to_owned(), value);
        true
    }

    /// Turns caching on or off; either way it starts empty.
    pub fn set_enabled(&self, on: bool) {
        let mut map = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.enabled.store(on, Ordering::Release);
        map.clear();
    }

    pub fn remove(&self, key: &str) {
        let mut map = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(key);
    }

    /// Drops every entry `keep` refuses.
    pub fn retain(&self, keep: impl FnMut(&String, &mut V) -> bool) {
        let mut map = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(keep);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, V>> {
        self.map.lock().expect("cache lock")
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

    #[test]
    fn bounded_and_retain() {
        let c = RevocableCache::new(2);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            c.insert_since(c.generation(), k, i);
        }
        assert_eq!((c.get("a"), c.get("b"), c.get("c")), (None, None, Some(2)));
        c.insert_since(c.generation(), "d", 3);
        c.retain(|_, v| *v != 3);
        assert_eq!((c.get("c"), c.get("d")), (Some(2), None));
    }
}
