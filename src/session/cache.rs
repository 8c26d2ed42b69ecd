//! Live-session lookups for the verify endpoint: a short positive cache in front of the
//! database, invalidated at once by this process's logouts and disconnects, so the hot path
//! does no database round trip per request and a revoked session never passes.

use std::time::{Duration, Instant};

use super::{auth_at_of, Timeouts, SEEN_RESOLUTION};
use crate::cache::RevocableCache;
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

pub struct SessionCache(RevocableCache<Cached>);

impl Default for SessionCache {
    fn default() -> Self {
        SessionCache(RevocableCache::new(MAX_ENTRIES))
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
        if let Some(c) = self.0.get(sid_hash) {
            if c.checked.elapsed() < RECHECK && now < c.valid_until {
                return Ok(Some(c.identity));
            }
        }
        let generation = self.0.generation();
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
        // Not cached when a revocation happened while we read: answered from what we read.
        self.0.insert_since(
            generation,
            sid_hash,
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
        self.0.set_enabled(on);
    }

    pub fn forget(&self, sid_hash: &str) {
        self.0.remove(sid_hash);
    }

    /// Drops the cached sessions of one member of an org, or of all its members (`None`):
    /// their role changed.
    pub fn forget_members(&self, org_id: &str, user_id: Option<&str>) {
        self.0.retain(|_, c| {
            c.identity.org_id != org_id || user_id.is_some_and(|u| c.identity.user_id != u)
        });
    }

    /// Drops every cached session of an org (disconnect).
    pub fn forget_org(&self, org_id: &str) {
        self.0.retain(|_, c| c.identity.org_id != org_id);
    }
}
