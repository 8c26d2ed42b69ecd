//! Live-session lookups for the verify endpoint: a short positive cache in front of the
//! database, invalidated at once by this process's logouts and disconnects, so the hot path
//! does no database round trip per request and a revoked session never passes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{auth_at_of, Timeouts, SEEN_RESOLUTION};
use crate::roles::Role;
use crate::store::{Store, StoreError};

/// Who a live session stands for, with the member's current role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    pub user_id: String,
    pub org_id: String,
    pub org_slug: String,
    pub role: Role,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Clone)]
struct Cached {
    identity: SessionIdentity,
    /// Unix second after which the session is over (idle expiry or absolute timeout).
    valid_until: i64,
    checked: Instant,
}

/// How long a positive answer is reused before the database is asked again (idle expiry
/// pushed by other requests, role rows) — revocations do not wait for it.
const RECHECK: Duration = Duration::from_secs(10);
/// Bound on memory: past this many entries the cache starts over.
const MAX_ENTRIES: usize = 100_000;

pub struct SessionCache {
    map: Mutex<HashMap<String, Cached>>,
    /// Off while this instance may miss other instances' revocations (listener down).
    enabled: AtomicBool,
    /// Bumped by every revocation. A lookup that read the database before a revocation must not
    /// cache what it read after it: it caches only if the generation did not move meanwhile.
    generation: AtomicU64,
}

impl Default for SessionCache {
    fn default() -> Self {
        SessionCache {
            map: Mutex::new(HashMap::new()),
            enabled: AtomicBool::new(true),
            generation: AtomicU64::new(0),
        }
    }
}

impl SessionCache {
    /// The identity behind `sid_hash` if that session is live now.
    pub async fn lookup(
        &self,
        store: &Store,
        timeouts: &Timeouts,
        sid_hash: &str,
        now: i64,
    ) -> Result<Option<SessionIdentity>, StoreError> {
        if !self.enabled.load(Ordering::Acquire) {
            // Fall through to the database every time.
        } else if let Some(c) = self.map.lock().expect("cache lock").get(sid_hash) {
            if c.checked.elapsed() < RECHECK && now < c.valid_until {
                return Ok(Some(c.identity.clone()));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(row) = store.live_session(sid_hash, now).await? else {
            self.forget(sid_hash);
            return Ok(None);
        };
        let absolute = timeouts.absolute_end(auth_at_of(&row.data));
        if now >= absolute {
            self.forget(sid_hash);
            return Ok(None);
        }
        let mut expires_at = row.expires_at;
        let idle_deadline = timeouts.idle_deadline(now);
        // Activity through the verify endpoint pushes the idle expiry forward at most this often.
        if idle_deadline - expires_at >= SEEN_RESOLUTION {
            store.touch_session(sid_hash, idle_deadline).await?;
            expires_at = idle_deadline;
        }
        let identity = SessionIdentity {
            user_id: row.user_id,
            org_id: row.org_id,
            org_slug: row.org_slug,
            role: row.role,
            email: row.email,
            name: row.name,
        };
        let mut map = self.map.lock().expect("cache lock");
        if self.generation.load(Ordering::Acquire) != generation {
            // A revocation happened while we read: answer from what we read, cache nothing.
            return Ok(Some(identity));
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            sid_hash.to_owned(),
            Cached {
                identity: identity.clone(),
                valid_until: expires_at.min(absolute),
                checked: Instant::now(),
            },
        );
        Ok(Some(identity))
    }

    /// Turns caching on or off; either way the cache starts empty.
    pub fn set_enabled(&self, on: bool) {
        let mut map = self.map.lock().expect("cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.enabled.store(on, Ordering::Release);
        map.clear();
    }

    pub fn forget(&self, sid_hash: &str) {
        let mut map = self.map.lock().expect("cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(sid_hash);
    }

    /// Drops every cached session of an org (disconnect).
    pub fn forget_org(&self, org_id: &str) {
        let mut map = self.map.lock().expect("cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, c| c.identity.org_id != org_id);
    }
}
