//! Verification keys: the RSA size limits, the one key-set type every JWKS cache holds
//! ([`KeySet`]: keys parsed once, looked up by algorithm and `kid`), and a log-safe way to name
//! a token's `kid`.

use std::sync::Arc;
use std::time::Instant;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::alg::alg_name;

/// Smallest RSA modulus accepted anywhere, in bits (NIST SP 800-131A: 2048 and up).
pub const RSA_MIN_BITS: usize = 2048;

/// Largest RSA modulus accepted in an identity provider's JWKS (and a jwk_url secret's), in
/// bits. These keys verify through jsonwebtoken, whose RustCrypto backend refuses larger moduli
/// at verification time: a larger JWK could be listed but never verify, so it is skipped when
/// the set is parsed, with a message that says why.
pub const RSA_MAX_BITS_JWK: usize = 4096;

/// Largest RSA modulus accepted for an org's rs256 / rs256_public secret, in bits. Those keys
/// are parsed and verified with the `rsa` crate directly (`RsaPublicKey::new_with_max_size`),
/// which handles 8192-bit keys; admins do register such keys (tests pin 8192). The two ceilings
/// differ only because the verifier each key goes through differs; both live here so that a
/// change to one is made next to the other.
pub const RSA_MAX_BITS_SECRET: usize = 8192;

/// Human-readable, log-safe description of a key id: quoted and escaped,
/// truncated to 64 characters (key ids come from untrusted input).
pub fn describe_kid(kid: Option<&str>) -> String {
    const MAX_CHARS: usize = 64;
    match kid {
        None => "no key id".to_owned(),
        Some(kid) => {
            let truncated: String = kid.chars().take(MAX_CHARS).collect();
            let ellipsis = if kid.chars().nth(MAX_CHARS).is_some() {
                "…"
            } else {
                ""
            };
            format!("key id {truncated:?}{ellipsis}")
        }
    }
}

/// Which algorithms a parsed key can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyClass {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyClass {
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        match self {
            KeyClass::Rsa => alg.family() == AlgorithmFamily::Rsa,
            KeyClass::EcP256 => alg == Algorithm::ES256,
            KeyClass::EcP384 => alg == Algorithm::ES384,
            KeyClass::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// One usable public key from a JWKS.
pub(crate) struct CachedKey {
    pub(crate) kid: Option<String>,
    pub(crate) class: KeyClass,
    /// The JWK's `alg`, if it had one (kept as the raw name so that unknown
    /// values simply never match).
    pub(crate) alg: Option<String>,
    pub(crate) key: Arc<DecodingKey>,
}

impl CachedKey {
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        self.class.fits(alg) && self.alg.as_deref().is_none_or(|a| a == alg_name(alg))
    }
}

/// An immutable snapshot of a key set.
#[derive(Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<CachedKey>,
    /// When these keys were fetched/seeded; `None` = never loaded.
    pub(crate) loaded_at: Option<Instant>,
    /// From this instant on, the next lookup refreshes the set.
    pub(crate) fresh_until: Option<Instant>,
    /// Past this instant the keys are no longer served (while refreshes
    /// fail): `fresh_until + max_stale`.
    pub(crate) usable_until: Option<Instant>,
}

pub(crate) enum Lookup {
    Found(Arc<DecodingKey>),
    NotFound,
    Ambiguous,
}

impl KeySet {
    /// Loaded keys, freshly enough to be served without a refresh.
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|t| now < t)
    }

    /// Loaded keys, possibly stale, but not beyond `max_stale`.
    pub(crate) fn is_usable(&self, now: Instant) -> bool {
        self.usable_until.is_some_and(|t| now <= t)
    }

    /// Loaded once, and now beyond `max_stale`.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.loaded_at.is_some() && !self.is_usable(now)
    }

    pub(crate) fn lookup(&self, alg: Algorithm, kid: Option<&str>) -> Lookup {
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| k.fits(alg))
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid);
        match (candidates.next(), candidates.next()) {
            (Some(k), None) => Lookup::Found(Arc::clone(&k.key)),
            (Some(_), Some(_)) => Lookup::Ambiguous,
            (None, _) => Lookup::NotFound,
        }
    }
}
