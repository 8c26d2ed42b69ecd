//! Signature checks already done, by token hash, until the token expires: an RS256 check is
//! paid once per token, not per request. Revocation is still checked on every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::{Map, Value};

#[derive(Clone)]
pub(super) struct Verdict {
    pub org_id: String,
    pub claims: Map<String, Value>,
    /// The org secret that verified the token, or "orgsso" for the service's own key.
    pub secret: String,
    pub exp: i64,
}

/// Bound on memory: when full, expired verdicts go; if that frees nothing, all go.
const MAX_VERDICTS: usize = 50_000;

#[derive(Default)]
pub(super) struct Verdicts {
    map: Mutex<HashMap<String, Verdict>>,
    hits: AtomicU64,
    misses: AtomicU64,
    lookups: AtomicU64,
}

/// A debug line with the counts every this many lookups (for the memory bench; no metrics API).
const STATS_EVERY: u64 = 10_000;

impl Verdicts {
    /// The verdict on the token hashed to `key`, if it is for `org_id` and still valid at `now`.
    pub fn get(&self, key: &str, org_id: &str, now: i64) -> Option<Verdict> {
        let found = {
            let map = self.map.lock().expect("verdict lock");
            map.get(key)
                .filter(|v| v.org_id == org_id && now < v.exp)
                .cloned()
        };
        self.count(found.is_some());
        found
    }

    fn count(&self, hit: bool) {
        // Hit or miss first, then the total: the line for the last lookup of a quiet moment
        // has exact counts.
        (if hit { &self.hits } else { &self.misses }).fetch_add(1, Ordering::Relaxed);
        if (self.lookups.fetch_add(1, Ordering::AcqRel) + 1) % STATS_EVERY == 0 {
            let hits = self.hits.load(Ordering::Relaxed);
            let misses = self.misses.load(Ordering::Relaxed);
            tracing::debug!(hits, misses, "verdict cache");
        }
    }

    /// Remembers a verdict if `keep()` still holds once the lock is taken (the caller's check
    /// that nothing changed while the token was being checked).
    pub fn insert_if(&self, key: String, verdict: Verdict, now: i64, keep: impl FnOnce() -> bool) {
        let mut map = self.map.lock().expect("verdict lock");
        if !keep() {
            return;
        }
        if map.len() >= MAX_VERDICTS {
            map.retain(|_, v| v.exp > now);
            if map.len() >= MAX_VERDICTS {
                map.clear();
            }
        }
        map.insert(key, verdict);
    }

    /// Forgets the verdicts of one org (its secrets changed).
    pub fn forget_org(&self, org_id: &str) {
        self.map
            .lock()
            .expect("verdict lock")
            .retain(|_, v| v.org_id != org_id);
    }

    pub fn clear(&self) {
        self.map.lock().expect("verdict lock").clear();
    }
}
