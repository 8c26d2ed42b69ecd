//! Verification keys: the RSA size limits, the one key-set type every JWKS cache holds
//! ([`KeySet`]: keys parsed once, looked up by algorithm and `kid`), the RS256 key of an org's
//! RSA secret ([`Rs256Key`]), and a log-safe way to name a token's `kid`.
//!
//! Every signature is checked by aws-lc (through `aws-lc-rs`, directly or as jsonwebtoken's
//! `aws_lc_rs` backend): RSA verification there is about ten times faster than the pure-Rust
//! `rsa` crate, which a verify endpoint fed new tokens spends most of its time in.

use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::alg::alg_name;

/// Smallest RSA modulus accepted anywhere, in bits (NIST SP 800-131A: 2048 and up).
pub const RSA_MIN_BITS: usize = 2048;

/// Largest RSA modulus accepted in an identity provider's JWKS (and a jwk_url secret's), in
/// bits; a larger JWK is skipped when the set is parsed, with a message that says why. Kept
/// from the days of the RustCrypto backend, which refused larger moduli: aws-lc would verify up
/// to 8192 bits, but no provider publishes such keys and a fetched key set is untrusted input
/// whose verification cost grows with the modulus.
pub const RSA_MAX_BITS_JWK: usize = 4096;

/// Largest RSA modulus accepted for an org's rs256 / rs256_public secret, in bits: what aws-lc
/// verifies RS256 with (`RSA_PKCS1_2048_8192_SHA256`) and signs with; admins do register such
/// keys (tests pin 8192). Both ceilings live here so that a change to one is made next to the
/// other.
pub const RSA_MAX_BITS_SECRET: usize = 8192;

/// Bits of an unsigned big-endian integer (leading zero bytes allowed).
pub fn bits_of_be(value: &[u8]) -> usize {
    let value = &value[value.iter().take_while(|b| **b == 0).count()..];
    value.first().map_or(0, |top| {
        (value.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
    })
}

/// The RS256 public key of an org's rs256 / rs256_public secret, parsed once by aws-lc so that a
/// verification does not rebuild it. `n` and `e` are kept for what is derived from the key
/// (SPKI, JWK, thumbprint); their range is checked by the PEM parser before this is built.
pub struct Rs256Key {
    parsed: ParsedPublicKey,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl Rs256Key {
    /// From big-endian modulus and exponent; `None` when aws-lc does not take them as a key.
    pub fn from_components(n: &[u8], e: &[u8]) -> Option<Self> {
        let strip = |v: &[u8]| v[v.iter().take_while(|b| **b == 0).count()..].to_vec();
        let (n, e) = (strip(n), strip(e));
        let parsed = RsaPublicKeyComponents { n: &n, e: &e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .ok()?;
        Some(Rs256Key { parsed, n, e })
    }

    /// Modulus, big-endian without leading zeros.
    pub fn n(&self) -> &[u8] {
        &self.n
    }

    /// Public exponent, big-endian without leading zeros.
    pub fn e(&self) -> &[u8] {
        &self.e
    }

    pub fn bits(&self) -> usize {
        bits_of_be(&self.n)
    }

    /// Whether `signature` is an RS256 (PKCS#1 v1.5, SHA-256) signature of `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify_sig(message, signature).is_ok()
    }
}

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
