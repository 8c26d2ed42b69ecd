//! Live-session lookups for the verify endpoint: a short positive cache in front of the
//! database, invalidated at once by this process's logouts and disconnects, so the hot path
//! does no database round trip per request and a revoked session never passes.
//!
//! Misses are remembered too, briefly, so a flood of one unknown cookie costs no query per
//! request. A remembered "no such session" must never hide a session stored later under the
//! same id hash. It cannot in practice: session ids are 128 fresh random bits, and the cookie
//! carrying a new id reaches the browser only after its row is committed, so nobody asks for
//! an id before it exists except by guessing it. Still, the answer is bounded three ways: it
//! lives at most [`NEGATIVE_TTL`]; storing a session announces `SessionStarted`, which drops
//! it in this process and moves the generation, so a miss read before the insert is never
//! cached after it; and like every entry here it is bypassed while not live. Negatives live
//! in their own map with their own bound, so a flood of random cookies can never push live
//! sessions out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytestring::ByteString;

use super::{auth_at_of, Timeouts, SEEN_RESOLUTION};
use crate::cache::{RevocableCache, Weigh};
use crate::roles::Role;
use crate::store::{Store, StoreError};
use crate::telemetry::metrics::{self as m, Cache};

/// Who a live session stands for, with the member's current role.
#[derive(Debug, Clone, PartialEq, Eq)]
///
/// The text the verify answer repeats is `ByteString`: a cache hit hands it out without a copy.
pub struct SessionIdentity {
    pub user_id: ByteString,
    pub org_id: String,
    pub org_slug: ByteString,
    pub role: Role,
    pub email: Option<ByteString>,
    pub name: Option<ByteString>,
}

#[derive(Clone)]
struct Cached {
    /// Shared, so that a hit copies no string.
    identity: Arc<SessionIdentity>,
    /// Unix second after which the session is over (idle expiry or absolute timeout).
    valid_until: i64,
    checked: Instant,
}

impl Weigh for Cached {
    fn heap_bytes(&self) -> usize {
        let i = &*self.identity;
        let opt = |s: &Option<ByteString>| s.as_ref().map_or(0, Weigh::heap_bytes);
        // The `Arc`'s counters and the identity itself, then its strings.
        16 + std::mem::size_of::<SessionIdentity>()
            + i.user_id.heap_bytes()
            + i.org_id.capacity()
            + i.org_slug.heap_bytes()
            + opt(&i.email)
            + opt(&i.name)
    }
}

/// How long a positive answer is reused before the database is asked again (idle expiry
/// pushed by other requests, role rows) — revocations do not wait for it.
const RECHECK: Duration = Duration::from_secs(10);
/// A typical live entry's size (key, identity, the map's share), for sizing its table.
const TYPICAL_BYTES: u64 = 400;
/// How long a "no such session" is believed.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// A typical remembered miss's size (key, instant, the map's share).
const TYPICAL_NEGATIVE_BYTES: u64 = 160;

pub struct SessionCache {
    live: RevocableCache<Cached>,
    /// Id hashes with no live session, and when that was read (their own budget: random
    /// cookies never evict live sessions).
    absent: RevocableCache<Instant>,
}

impl SessionCache {
    /// Live sessions in at most `live` bytes, remembered misses in at most `absent` bytes.
    pub fn new(live: u64, absent: u64) -> Self {
        SessionCache {
            live: RevocableCache::with_budget(live, TYPICAL_BYTES),
            absent: RevocableCache::with_budget(absent, TYPICAL_NEGATIVE_BYTES),
        }
    }

    /// The identity behind `sid_hash` if that session is live now.
    pub async fn lookup(
        &self,
        store: &Store,
        timeouts: &Timeouts,
        sid_hash: &str,
        now: i64,
    ) -> Result<Option<Arc<SessionIdentity>>, StoreError> {
        if let Some(c) = self.live.get(sid_hash) {
            if c.checked.elapsed() < RECHECK && now < c.valid_until {
                m::cache_lookup(Cache::Sessions, true);
                return Ok(Some(c.identity));
            }
        }
        // A remembered "no such session" is a hit too: it saved the query.
        if let Some(seen) = self.absent.get(sid_hash) {
            if seen.elapsed() < NEGATIVE_TTL {
                m::cache_lookup(Cache::Sessions, true);
                return Ok(None);
            }
        }
        m::cache_lookup(Cache::Sessions, false);
        let generation = self.live.generation();
        let absent_generation = self.absent.generation();
        let Some(row) = store.live_session(sid_hash, now).await? else {
            self.live.remove(sid_hash);
            self.remember_absent(absent_generation, sid_hash);
            return Ok(None);
        };
        let absolute = timeouts.absolute_end(auth_at_of(&row.data));
        if now >= absolute {
            self.live.remove(sid_hash);
            self.remember_absent(absent_generation, sid_hash);
            return Ok(None);
        }
        let mut expires_at = row.expires_at;
        let idle_deadline = timeouts.idle_deadline(now);
        // Activity through the verify endpoint pushes the idle expiry forward at most this often.
        if idle_deadline - expires_at >= SEEN_RESOLUTION {
            store.touch_session(sid_hash, idle_deadline).await?;
            expires_at = idle_deadline;
        }
        let identity = Arc::new(SessionIdentity {
            user_id: row.user_id.into(),
            org_id: row.org_id,
            org_slug: row.org_slug.into(),
            role: row.role,
            email: row.email.map(ByteString::from),
            name: row.name.map(ByteString::from),
        });
        // Not cached when a revocation happened while we read: answered from what we read.
        self.live.insert_since(
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

    /// Remembers a miss unless a session was stored (or caching switched) since `generation`.
    fn remember_absent(&self, generation: u64, sid_hash: &str) {
        self.absent
            .insert_since(generation, sid_hash, Instant::now());
    }

    /// Turns caching on or off; either way the cache starts empty.
    pub fn set_enabled(&self, on: bool) {
        self.live.set_enabled(on);
        self.absent.set_enabled(on);
    }

    pub fn forget(&self, sid_hash: &str) {
        self.live.remove(sid_hash);
    }

    /// A session was stored under `sid_hash`: a remembered miss for it is dropped, and a miss
    /// read before the store is not remembered after it.
    pub fn started(&self, sid_hash: &str) {
        self.absent.remove(sid_hash);
    }

    /// Drops the cached sessions of one member of an org, or of all its members (`None`):
    /// their role changed. Remembered misses go too (they may stand for a denied member's
    /// session, which a role change can make live again).
    pub fn forget_members(&self, org_id: &str, user_id: Option<&str>) {
        self.live.retain(|_, c| {
            c.identity.org_id != org_id || user_id.is_some_and(|u| c.identity.user_id != *u)
        });
        self.absent.retain(|_, _| false);
    }

    /// Drops every cached session of an org (disconnect).
    pub fn forget_org(&self, org_id: &str) {
        self.live.retain(|_, c| c.identity.org_id != org_id);
    }
}
