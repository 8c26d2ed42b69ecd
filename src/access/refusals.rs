//! Refusals already decided, by token hash: a bad token sent again is answered from memory,
//! exactly as the first time, so a flood of one forged token costs no signature check.
//!
//! Only refusals the same token can never turn into acceptance while the org's secrets stay the
//! same are kept (see [`Refusal::of`]); time-healed ones (`nbf`, `iat` in the future), server-side
//! failures and "no published key" answers of `jwk_url` secrets (the provider may rotate without
//! any event) never are. Bounded in bytes apart from the positive verdicts (distinct garbage
//! never evicts a good verdict) and kept [`REFUSAL_TTL_SECS`] at most.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache::{Bounded, Weigh};
use crate::jwt::verify::TokenError;

use super::verdicts::TokenKey;
use super::Denied;

/// How long a refusal is remembered.
pub(super) const REFUSAL_TTL_SECS: i64 = 60;
/// How long a key-related refusal is remembered when the org has a `jwk_url` secret: its
/// provider may publish a new key without any event reaching us.
pub(super) const PROVIDER_KEYS_TTL_SECS: i64 = 5;
/// A typical entry's size (key, org id, refusal, the map's own share).
const TYPICAL_BYTES: u64 = 200;

/// What is needed to answer a refused token again: a cheap copy of the [`Denied`] it got.
#[derive(Debug)]
pub(super) struct Refusal(Kind);

#[derive(Debug)]
enum Kind {
    Reason(&'static str),
    /// Only variants [`copy`] returns, which carry no source.
    Token(TokenError),
}

/// A copy of a refusal that is final for the token, `None` for anything time, the server or
/// a key provider can change (and, by default, for variants added later).
fn copy(e: &TokenError) -> Option<TokenError> {
    use TokenError as T;
    Some(match e {
        T::Malformed(m) => T::Malformed(m),
        T::AlgNone => T::AlgNone,
        T::UnsupportedAlgorithm(a) => T::UnsupportedAlgorithm(*a),
        T::ForbiddenHeader(h) => T::ForbiddenHeader(h),
        T::NoSecretForAlgorithm(a) => T::NoSecretForAlgorithm(*a),
        T::UnknownKeyId => T::UnknownKeyId,
        T::BadSignature => T::BadSignature,
        T::MissingClaim(c) => T::MissingClaim(c),
        T::InvalidClaimType(c) => T::InvalidClaimType(c),
        T::Expired => T::Expired,
        T::AudienceMismatch => T::AudienceMismatch,
        T::IssuerMismatch => T::IssuerMismatch,
        // Time heals these; a server or provider fault is not the token's.
        T::TooLarge
        | T::NotYetValid
        | T::IssuedInFuture
        | T::NoPublishedKey { .. }
        | T::KeysUnavailable { .. } => return None,
    })
}

/// Whether a refusal depends on which keys the org's secrets hold (a `jwk_url` secret's set
/// may change unannounced).
fn about_keys(e: &TokenError) -> bool {
    matches!(
        e,
        TokenError::BadSignature | TokenError::UnknownKeyId | TokenError::NoSecretForAlgorithm(_)
    )
}

impl Refusal {
    /// The refusal to remember for `denied` (from the signature and claim checks) and for how
    /// many seconds, or `None` when it must not be remembered. `provider_keys`: the org has a
    /// `jwk_url` secret.
    pub fn of(denied: &Denied, provider_keys: bool) -> Option<(Refusal, i64)> {
        match denied {
            // Fixed reasons of the checks: not a JWT, not an access token, another org's.
            Denied::Unauthenticated(r) => Some((Refusal(Kind::Reason(r)), REFUSAL_TTL_SECS)),
            Denied::Token(e) => {
                let ttl = if provider_keys && about_keys(e) {
                    PROVIDER_KEYS_TTL_SECS
                } else {
                    REFUSAL_TTL_SECS
                };
                copy(e).map(|e| (Refusal(Kind::Token(e)), ttl))
            }
            Denied::UnknownOrg | Denied::Store(_) => None,
        }
    }

    /// Whether how long `denied` is remembered depends on the org having a `jwk_url` secret
    /// (so the caller need not look its secrets up otherwise).
    pub fn depends_on_provider_keys(denied: &Denied) -> bool {
        matches!(denied, Denied::Token(e) if about_keys(e))
    }

    /// The same answer as the first time.
    pub fn denied(&self) -> Denied {
        match &self.0 {
            Kind::Reason(r) => Denied::Unauthenticated(r),
            Kind::Token(e) => match copy(e) {
                Some(e) => Denied::Token(e),
                // Not reached: only copyable errors are stored.
                None => Denied::Unauthenticated("the token was refused"),
            },
        }
    }
}

impl Clone for Refusal {
    fn clone(&self) -> Self {
        Refusal(match &self.0 {
            Kind::Reason(r) => Kind::Reason(r),
            // Only copyable errors are stored; the fallback is not reached.
            Kind::Token(e) => copy(e).map_or(Kind::Reason("the token was refused"), Kind::Token),
        })
    }
}

#[derive(Clone)]
struct Entry {
    org_id: String,
    refusal: Refusal,
    until: i64,
}

impl Weigh for Entry {
    fn heap_bytes(&self) -> usize {
        self.org_id.capacity()
    }
}

pub(super) struct Refusals {
    map: Bounded<TokenKey, Entry>,
    /// Bumped by every forget and clear: a check that started before one is not remembered.
    generation: AtomicU64,
}

impl Refusals {
    /// At most `budget` bytes of refusals.
    pub fn new(budget: u64) -> Self {
        Refusals {
            map: Bounded::with_budget(budget, TYPICAL_BYTES),
            generation: AtomicU64::new(0),
        }
    }

    /// The refusal of the token hashed to `key` for `org_id`, if remembered and not expired.
    pub fn get(&self, key: &TokenKey, org_id: &str, now: i64) -> Option<Denied> {
        self.map
            .get(key)
            .filter(|e| e.org_id == org_id && now < e.until)
            .map(|e| e.refusal.denied())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers a refusal for `ttl` seconds unless something was forgotten since `generation`
    /// was read, or `keep()` fails with other writes held off.
    pub fn insert_if(
        &self,
        key: TokenKey,
        org_id: &str,
        (refusal, ttl): (Refusal, i64),
        now: i64,
        generation: u64,
        keep: impl FnOnce() -> bool,
    ) {
        let entry = Entry {
            org_id: org_id.to_owned(),
            refusal,
            until: now + ttl,
        };
        self.map
            .insert_if(key, entry, || self.generation() == generation && keep());
    }

    /// Forgets the refusals of one org (its secrets changed).
    pub fn forget_org(&self, org_id: &str) {
        self.map.retain_after(
            |_, e| e.org_id != org_id,
            || {
                self.generation.fetch_add(1, Ordering::AcqRel);
            },
        );
    }

    pub fn clear(&self) {
        self.map.clear_after(|| {
            self.generation.fetch_add(1, Ordering::AcqRel);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jwks::JwksError;
    use crate::store::StoreError;
    use jsonwebtoken::Algorithm;

    fn jwks_error() -> JwksError {
        JwksError::NoMatchingKey {
            uri: "https://idp.example/jwks".into(),
            alg: Algorithm::RS256,
            kid: Some("k1".into()),
        }
    }

    #[test]
    fn only_final_refusals_are_remembered() {
        use TokenError as T;
        let d = Denied::Token;
        // (refusal, remembered, ttl without a jwk_url secret, ttl with one)
        let table: Vec<(Denied, bool, i64, i64)> = vec![
            (d(T::BadSignature), true, 60, 5),
            (d(T::Malformed("x")), true, 60, 60),
            (d(T::AlgNone), true, 60, 60),
            (
                d(T::UnsupportedAlgorithm(Some(Algorithm::ES256))),
                true,
                60,
                60,
            ),
            (d(T::ForbiddenHeader("jku")), true, 60, 60),
            (d(T::AudienceMismatch), true, 60, 60),
            (d(T::IssuerMismatch), true, 60, 60),
            (d(T::NoSecretForAlgorithm(Algorithm::RS256)), true, 60, 5),
            (d(T::UnknownKeyId), true, 60, 5),
            (d(T::Expired), true, 60, 60),
            (d(T::MissingClaim("exp")), true, 60, 60),
            (d(T::InvalidClaimType("exp")), true, 60, 60),
            (
                Denied::Unauthenticated("the token is not a well-formed JWT"),
                true,
                60,
                60,
            ),
            (d(T::NotYetValid), false, 0, 0),
            (d(T::IssuedInFuture), false, 0, 0),
            (d(T::TooLarge), false, 0, 0),
            (
                d(T::NoPublishedKey {
                    secret: "idp".into(),
                    source: jwks_error(),
                }),
                false,
                0,
                0,
            ),
            (
                d(T::KeysUnavailable {
                    secret: "idp".into(),
                    source: jwks_error(),
                }),
                false,
                0,
                0,
            ),
            (Denied::UnknownOrg, false, 0, 0),
            (Denied::Store(StoreError::Corrupt("x".into())), false, 0, 0),
        ];
        for (denied, remembered, ttl, provider_ttl) in table {
            let plain = Refusal::of(&denied, false);
            let provider = Refusal::of(&denied, true);
            assert_eq!(plain.is_some(), remembered, "{denied:?}");
            assert_eq!(provider.is_some(), remembered, "{denied:?}");
            if let (Some((r, t)), Some((_, pt))) = (plain, provider) {
                assert_eq!((t, pt), (ttl, provider_ttl), "{denied:?}");
                // Answered exactly as the first time.
                assert_eq!(format!("{:?}", r.denied()), format!("{denied:?}"));
            }
        }
    }

    fn k(name: &str) -> TokenKey {
        crate::access::token_key(name)
    }

    fn bad() -> (Refusal, i64) {
        Refusal::of(&Denied::Token(TokenError::BadSignature), false).unwrap()
    }

    #[test]
    fn remembered_per_org_until_the_ttl() {
        let r = Refusals::new(1 << 20);
        r.insert_if(k("k"), "org1", bad(), 100, r.generation(), || true);
        assert!(matches!(
            r.get(&k("k"), "org1", 100),
            Some(Denied::Token(TokenError::BadSignature))
        ));
        assert!(r.get(&k("k"), "org2", 100).is_none(), "another org's");
        assert!(
            r.get(&k("k"), "org1", 100 + REFUSAL_TTL_SECS).is_none(),
            "expired"
        );
        r.forget_org("org1");
        assert!(r.get(&k("k"), "org1", 100).is_none(), "secrets changed");
    }

    #[test]
    fn a_check_overtaken_by_a_change_is_not_remembered() {
        let r = Refusals::new(1 << 20);
        let before = r.generation();
        r.forget_org("org1");
        r.insert_if(k("k"), "org1", bad(), 100, before, || true);
        assert!(r.get(&k("k"), "org1", 100).is_none());
        r.insert_if(k("k"), "org1", bad(), 100, r.generation(), || false);
        assert!(r.get(&k("k"), "org1", 100).is_none(), "keep() refused");
        r.insert_if(k("k"), "org1", bad(), 100, r.generation(), || true);
        r.clear();
        assert!(r.get(&k("k"), "org1", 100).is_none(), "liveness switch");
    }

    #[test]
    fn bounded() {
        let budget = 64 * 1024;
        let r = Refusals::new(budget);
        for i in 0..20_000 {
            r.insert_if(
                k(&format!("k{i}")),
                "org1",
                bad(),
                100,
                r.generation(),
                || true,
            );
            assert!(r.map.weight() <= budget);
        }
        assert!(r.map.len() > 100, "{} refusals in 64 KiB", r.map.len());
    }
}
