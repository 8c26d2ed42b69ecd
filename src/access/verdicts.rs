//! Signature checks already done, by token hash, until the token expires: an RS256 check is
//! paid once per token, not per request. Revocation is still checked on every request.
//!
//! A verdict keeps only what the verify answer needs (org, secret, subject, email, name, role,
//! the session a minted token came from, `exp`), packed in one shared buffer, not the token's
//! claims: a 6 KB token with many groups costs what a small one does. The map is bounded in
//! bytes ([`crate::cache::Bounded`]): past its budget the least used verdicts go.

use std::sync::atomic::{AtomicU64, Ordering};

use bytestring::ByteString;
use serde_json::{Map, Value};

use crate::cache::{Bounded, Weigh};
use crate::roles::Role;

/// The token's hash: the map's key.
pub(super) type TokenKey = [u8; 32];

/// What a checked token stands for.
#[derive(Clone)]
pub(super) struct Verdict {
    /// org id, secret, subject, email, name, session, one after the other.
    text: ByteString,
    ends: [u32; FIELDS],
    /// Which of email, name, session the token had.
    present: u8,
    pub role: Option<Role>,
    pub exp: i64,
}

const FIELDS: usize = 6;
const ORG: usize = 0;
const SECRET: usize = 1;
const SUBJECT: usize = 2;
const EMAIL: usize = 3;
const NAME: usize = 4;
const SESSION: usize = 5;

impl Verdict {
    /// The verdict for `claims`, verified for `org_id` by `secret`. `session_of` says which
    /// `sid` to keep: only tokens orgsso minted from a session are tied to it.
    pub fn new(
        org_id: &str,
        secret: &str,
        claims: &Map<String, Value>,
        session_of: impl FnOnce(&Map<String, Value>) -> Option<String>,
        exp: i64,
    ) -> Verdict {
        let text_of = |k: &str| claims.get(k).and_then(Value::as_str);
        let session = session_of(claims);
        let fields: [Option<&str>; FIELDS] = [
            Some(org_id),
            Some(secret),
            Some(text_of("sub").unwrap_or_default()),
            text_of("email"),
            text_of("name"),
            session.as_deref(),
        ];
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let mut ends = [0u32; FIELDS];
        let mut present = 0u8;
        for (i, f) in fields.iter().enumerate() {
            if let Some(f) = f {
                text.push_str(f);
                present |= 1 << i;
            }
            // Tokens are at most 8 KiB (`MAX_BEARER_TOKEN_BYTES`), so offsets fit.
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Verdict {
            text: ByteString::from(text),
            ends,
            present,
            role: text_of("role").and_then(|r| r.parse().ok()),
            exp,
        }
    }

    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(start..self.ends[i] as usize)
    }

    fn field(&self, i: usize) -> Option<&str> {
        self.text.get(self.range(i)?)
    }

    /// A field as shared text (no copy), for the verify answer.
    fn shared(&self, i: usize) -> Option<ByteString> {
        self.field(i).map(|f| self.text.slice_ref(f))
    }

    pub fn org_id(&self) -> &str {
        self.field(ORG).unwrap_or_default()
    }

    /// The org secret that verified the token, or "orgsso" for the service's own key.
    pub fn secret(&self) -> ByteString {
        self.shared(SECRET).unwrap_or_default()
    }

    pub fn subject(&self) -> ByteString {
        self.shared(SUBJECT).unwrap_or_default()
    }

    pub fn email(&self) -> Option<ByteString> {
        self.shared(EMAIL)
    }

    pub fn name(&self) -> Option<ByteString> {
        self.shared(NAME)
    }

    /// The session (id hash) a token orgsso minted was issued from.
    pub fn session(&self) -> Option<&str> {
        self.field(SESSION)
    }
}

impl Weigh for Verdict {
    /// The shared text: its buffer with the allocator's rounding and header, and the shared
    /// header (`bytes`' counter, 24 bytes, in a 32-byte chunk) it gets when first cloned.
    fn heap_bytes(&self) -> usize {
        self.text.heap_bytes().next_multiple_of(16) + 8 + 32
    }
}

/// A typical entry's size (key, a verdict of ~130 bytes of text, the map's own share).
const TYPICAL_BYTES: u64 = 300;

/// A debug line with the counts every this many lookups (for the memory bench; no metrics API).
const STATS_EVERY: u64 = 10_000;

pub(super) struct Verdicts {
    map: Bounded<TokenKey, Verdict>,
    hits: AtomicU64,
    misses: AtomicU64,
    lookups: AtomicU64,
}

impl Verdicts {
    /// At most `budget` bytes of verdicts.
    pub fn new(budget: u64) -> Self {
        Verdicts {
            map: Bounded::with_budget(budget, TYPICAL_BYTES),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
        }
    }

    /// The verdict on the token hashed to `key`, if it is for `org_id` and still valid at `now`.
    pub fn get(&self, key: &TokenKey, org_id: &str, now: i64) -> Option<Verdict> {
        let found = self.map.get(key).filter(|v| v.org_id() == org_id);
        let found = match found {
            Some(v) if now >= v.exp => {
                // Expired: it goes now rather than waiting to be pushed out.
                self.map.remove_after(key, || {});
                None
            }
            other => other,
        };
        self.count(found.is_some());
        found
    }

    fn count(&self, hit: bool) {
        // Hit or miss first, then the total: the line for the last lookup of a quiet moment
        // has exact counts.
        (if hit { &self.hits } else { &self.misses }).fetch_add(1, Ordering::Relaxed);
        crate::telemetry::metrics::cache_lookup(crate::telemetry::metrics::Cache::Verdicts, hit);
        if (self.lookups.fetch_add(1, Ordering::AcqRel) + 1).is_multiple_of(STATS_EVERY) {
            let hits = self.hits.load(Ordering::Relaxed);
            let misses = self.misses.load(Ordering::Relaxed);
            tracing::debug!(
                hits,
                misses,
                entries = self.map.len(),
                bytes = self.map.weight(),
                "verdict cache"
            );
        }
    }

    /// Remembers a verdict if `keep()` still holds with other writes held off (the caller's
    /// check that nothing changed while the token was being checked).
    pub fn insert_if(&self, key: TokenKey, verdict: Verdict, keep: impl FnOnce() -> bool) {
        self.map.insert_if(key, verdict, keep);
    }

    /// Forgets the verdicts of one org (its secrets changed).
    pub fn forget_org(&self, org_id: &str) {
        self.map.retain_after(|_, v| v.org_id() != org_id, || {});
    }

    pub fn clear(&self) {
        self.map.clear_after(|| {});
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry_bytes;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_verdict_keeps_what_the_answer_needs() {
        let no_session = |_: &Map<String, Value>| None;
        for (c, session, want) in [
            (
                json!({"sub": "u1", "email": "a@b.c", "name": "A", "role": "admin", "groups": vec!["g"; 100]}),
                None,
                ("u1", Some("a@b.c"), Some("A"), Some(Role::Admin), None),
            ),
            (
                json!({"sub": "u2"}),
                Some("sid-hash"),
                ("u2", None, None, None, Some("sid-hash")),
            ),
            (
                json!({"email": "", "role": "no-such-role", "name": 7}),
                None,
                ("", Some(""), None, None, None),
            ),
        ] {
            let v = Verdict::new(
                "org-1",
                "hs",
                &claims(c.clone()),
                |cl| session.map(str::to_owned).or_else(|| no_session(cl)),
                99,
            );
            let text = |t: Option<ByteString>| t.map(|t| t.to_string());
            let want = (
                want.0.to_owned(),
                want.1.map(str::to_owned),
                want.2.map(str::to_owned),
                want.3,
                want.4,
            );
            assert_eq!(
                (
                    v.subject().to_string(),
                    text(v.email()),
                    text(v.name()),
                    v.role,
                    v.session()
                ),
                want,
                "{c}"
            );
            assert_eq!((v.org_id(), &*v.secret(), v.exp), ("org-1", "hs", 99));
        }
    }

    #[test]
    fn a_verdict_weighs_its_fields_not_the_token() {
        let big = json!({"sub": "u", "email": "e@x.y", "groups": vec!["a-long-group-name"; 300]});
        let small = json!({"sub": "u", "email": "e@x.y"});
        let weigh = |c: Value| {
            let v = Verdict::new("org-1", "hs", &claims(c), |_| None, 1);
            entry_bytes(&[0u8; 32], &v)
        };
        assert_eq!(weigh(big), weigh(small));
        assert!(
            weigh(json!({"sub": "u"})) < 256,
            "{}",
            weigh(json!({"sub": "u"}))
        );
    }

    fn verdict(org: &str, n: usize, exp: i64) -> Verdict {
        let c =
            claims(json!({"sub": format!("user-{n}"), "email": format!("user-{n}@example.com")}));
        Verdict::new(org, "hs", &c, |_| None, exp)
    }

    fn key(n: usize) -> TokenKey {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(n as u64).to_le_bytes());
        k
    }

    #[test]
    fn lookups_check_org_and_expiry_and_forget_per_org() {
        let v = Verdicts::new(1 << 20);
        v.insert_if(key(1), verdict("a", 1, 100), || true);
        v.insert_if(key(2), verdict("b", 2, 100), || true);
        v.insert_if(key(3), verdict("a", 3, 100), || false);
        for (k, org, now, found) in [
            (1, "a", 99, true),
            (1, "b", 99, false),
            (2, "b", 50, true),
            (3, "a", 50, false),
            (1, "a", 100, false),
            (1, "a", 50, false),
        ] {
            assert_eq!(v.get(&key(k), org, now).is_some(), found, "{k} {org} {now}");
        }
        v.forget_org("b");
        assert!(v.get(&key(2), "b", 50).is_none());
        v.insert_if(key(4), verdict("a", 4, 100), || true);
        v.clear();
        assert!(v.get(&key(4), "a", 50).is_none());
    }

    #[test]
    fn many_verdicts_stay_in_budget_and_hot_ones_stay() {
        let budget = 256 * 1024;
        let v = Verdicts::new(budget);
        let hot: Vec<usize> = (0..100).collect();
        for &n in &hot {
            v.insert_if(key(n), verdict("a", n, 100), || true);
        }
        for n in 100..50_000 {
            v.insert_if(key(n), verdict("a", n, 100), || true);
            if n % 50 == 0 {
                for &h in &hot {
                    assert!(v.get(&key(h), "a", 0).is_some(), "hot {h} at {n}");
                }
            }
            assert!(v.map.weight() <= budget);
        }
        assert!(v.map.len() > 500, "{} verdicts in 256 KiB", v.map.len());
    }
}
