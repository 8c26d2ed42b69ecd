//! JWKS (JSON Web Key Set) cache, one per identity-provider `jwks_uri`: [`parse`] turns a
//! document into a [`KeySet`](crate::jose::keys::KeySet), [`cache`] holds it with single-flight
//! refetches, [`freshness`] reads the answer's caching headers, [`registry`] shares one cache
//! per URI across the process.
//!
//! * Keys are parsed into [`DecodingKey`]s once, when a key set is fetched or
//!   seeded, never per verification. Keys that cannot be used (unsupported
//!   type, malformed, weak, marked for encryption, carrying private material)
//!   are skipped with a warning; the rest of the set stays usable.
//! * Freshness comes from the JWKS answer itself (RFC 9111): `Cache-Control:
//!   s-maxage=N` (wins), else `max-age=N`, else `Expires` (relative to the
//!   answer's `Date`); `no-cache`/`no-store` mean "refresh next time", and an
//!   `Age` header is subtracted. Without any of these,
//!   [`JwksSettings::max_age`] applies. The result is clamped to
//!   [[`JwksSettings::min_refresh`], [`JwksSettings::max_refresh`]].
//! * A lookup that misses (a `kid` not seen before, empty cache) triggers a
//!   refetch at once, at most once per [`JwksSettings::refetch_floor`]; a `kid`
//!   that a fetched set lacked is remembered as unknown for
//!   [`JwksSettings::refetch_cooldown`] (repeating it costs nothing), and a set
//!   past its freshness is refreshed at most once per cooldown ([`refetch`]).
//!   At most ONE fetch is in flight per cache: concurrent callers that miss
//!   wait for that fetch and re-check the result; callers whose key is in the
//!   stale set are answered at once. A kid-less token whose signature fails
//!   can ask for one refetch ([`JwksCache::refresh_after_bad_signature`]).
//! * A key set downloaded elsewhere (at connect) replaces the cached one
//!   ([`JwksRegistry::insert_seeded`]).
//! * A failed refresh (IdP down, bad status, garbage, too large) keeps the
//!   previously cached keys working, but only for
//!   [`JwksSettings::max_stale`] past their freshness: after that lookups
//!   fail with [`JwksError::Expired`] until a refresh succeeds.
//! * The response body is read chunk by chunk and abandoned as soon as it
//!   exceeds [`JwksSettings::max_bytes`].
//!
//! Nothing in this module ever sees an ID token; error messages contain the
//! JWKS URI, HTTP details and (sanitised) key ids only.

pub mod cache;
pub mod freshness;
pub mod parse;
mod refetch;
pub mod registry;

use std::time::Duration;

use jsonwebtoken::Algorithm;

/// Who supplied a key URL, and so where its fetches may go (a registry key).
pub use crate::outbound::Egress;
pub use cache::JwksCache;
pub use registry::JwksRegistry;

use crate::jose::alg::alg_name;
use crate::jose::keys::describe_kid;

/// Tuning for a [`JwksCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwksSettings {
    /// Minimum gap between two fetches triggered by age (a stale set), and between any two
    /// fetches after a failed one. Also how long a key id that a fetched set lacked is
    /// remembered as unknown (looking it up again costs no fetch).
    pub refetch_cooldown: Duration,
    /// Minimum gap between two fetches triggered by a miss (a key id not seen before, or a
    /// kid-less token whose signature failed) after a successful fetch: a storm of invented
    /// key ids costs at most one fetch per floor. Never more than `refetch_cooldown`.
    pub refetch_floor: Duration,
    /// Freshness of a key set whose answer carries no caching headers
    /// (`Cache-Control: max-age`/`s-maxage`/`no-cache`, `Expires`), and of
    /// seeded key sets (clamped like answer-given freshness). A set past its
    /// freshness is refreshed on the next lookup even if the key is present.
    pub max_age: Duration,
    /// Largest JWKS response body accepted, in bytes.
    pub max_bytes: usize,
    /// Shortest freshness granted, whatever the answer says (so `no-cache`
    /// or `max-age=0` cannot make every lookup fetch). If larger than
    /// `max_refresh`, `max_refresh` wins.
    pub min_refresh: Duration,
    /// Longest freshness granted, whatever the answer says (so key rotation
    /// is noticed even behind `max-age=31536000`).
    pub max_refresh: Duration,
    /// How long past their freshness cached keys keep working while refreshes
    /// fail. Past that, lookups fail with [`JwksError::Expired`].
    pub max_stale: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            refetch_cooldown: Duration::from_secs(30),
            refetch_floor: Duration::from_secs(1),
            max_age: Duration::from_secs(3600),
            max_bytes: 256 * 1024,
            min_refresh: Duration::from_secs(10),
            max_refresh: Duration::from_secs(24 * 3600),
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why no key could be provided.
///
/// Messages name the JWKS URI so an administrator can act on them. See
/// [`JwksError::is_idp_fault`] for which variants point at the identity
/// provider (its JWKS endpoint or document) rather than at the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Network-level failure: DNS, connect, TLS, timeout, connection reset
    /// while reading. IdP's fault (or the network between us).
    #[error("the identity provider's JWKS at {uri} did not answer: {reason}")]
    Unreachable { uri: String, reason: String },
    /// The JWKS endpoint answered with a non-2xx status. IdP's fault.
    #[error(
        "the identity provider's JWKS at {uri} answered with HTTP status {status} instead of 200"
    )]
    BadStatus { uri: String, status: u16 },
    /// The JWKS body exceeded the configured size limit. IdP's fault.
    #[error("the identity provider's JWKS at {uri} is larger than the limit of {limit} bytes")]
    TooLarge { uri: String, limit: usize },
    /// The JWKS body is not JSON. IdP's fault.
    #[error("the identity provider's JWKS at {uri} is not valid JSON ({reason})")]
    NotJson { uri: String, reason: String },
    /// The JWKS is JSON but not a usable key set (no `keys` array, no usable
    /// signing key, too many keys). IdP's fault.
    #[error("the identity provider's JWKS at {uri} is not a usable key set: {reason}")]
    Invalid { uri: String, reason: String },
    /// The (successfully loaded) key set has no key for this algorithm and
    /// key id. Usually the token is forged, stale, or meant for another
    /// provider; can also mean the IdP signs with a key it does not publish.
    #[error(
        "the identity provider's JWKS at {uri} has no {alg_name} signing key with {kid_desc}",
        alg_name = alg_name(*.alg),
        kid_desc = describe_kid(.kid.as_deref())
    )]
    NoMatchingKey {
        uri: String,
        alg: Algorithm,
        kid: Option<String>,
    },
    /// Several published keys fit and the token does not say (unambiguously)
    /// which one to use. IdP's fault (duplicate kids, or no kids on a
    /// multi-key set).
    #[error(
        "the identity provider's JWKS at {uri} has several {alg_name} signing keys with {kid_desc}, so the right one cannot be chosen",
        alg_name = alg_name(*.alg),
        kid_desc = describe_kid(.kid.as_deref())
    )]
    AmbiguousKey {
        uri: String,
        alg: Algorithm,
        kid: Option<String>,
    },
    /// The cached keys are more than [`JwksSettings::max_stale`] past their
    /// freshness and could not be refreshed (the last refresh failed, or a
    /// new attempt is not allowed yet by the cooldown). IdP's fault.
    #[error(
        "the identity provider's JWKS at {uri} could not be refreshed and its cached keys expired: they are {stale_secs}s past their freshness, more than the {max_stale_secs}s they may be used stale ({last})",
        last = describe_last_error(.last_error.as_deref())
    )]
    Expired {
        uri: String,
        /// Seconds since the cached keys stopped being fresh.
        stale_secs: u64,
        /// The configured [`JwksSettings::max_stale`], in seconds.
        max_stale_secs: u64,
        /// Message of the last failed refresh, if one failed.
        last_error: Option<String>,
    },
}

fn describe_last_error(last_error: Option<&str>) -> String {
    match last_error {
        Some(err) => format!("last refresh error: {err}"),
        None => "no refresh has been attempted since".to_owned(),
    }
}

impl JwksError {
    /// `true` when the identity provider (its JWKS endpoint or document) is
    /// at fault, as opposed to the token naming a key that does not exist.
    pub fn is_idp_fault(&self) -> bool {
        !matches!(self, JwksError::NoMatchingKey { .. })
    }

    /// Stable snake_case code for logs/metrics.
    pub fn code(&self) -> &'static str {
        match self {
            JwksError::Unreachable { .. } => "jwks_unreachable",
            JwksError::BadStatus { .. } => "jwks_bad_status",
            JwksError::TooLarge { .. } => "jwks_too_large",
            JwksError::NotJson { .. } => "jwks_not_json",
            JwksError::Invalid { .. } => "jwks_invalid",
            JwksError::NoMatchingKey { .. } => "jwks_no_matching_key",
            JwksError::AmbiguousKey { .. } => "jwks_ambiguous_key",
            JwksError::Expired { .. } => "jwks_expired",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::idp_keys::http_client;
    use crate::test_support::jwks_server::test_uri;

    #[test]
    fn cache_and_registry_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<JwksCache>();
        assert_send_sync::<JwksRegistry>();
        assert_send_sync::<JwksError>();
        fn assert_send<T: Send>(_: &T) {}
        let cache = JwksCache::new(http_client(), test_uri(), JwksSettings::default());
        let fut = cache.key_for(Algorithm::RS256, Some("x"));
        assert_send(&fut);
    }

    #[test]
    fn error_messages_and_codes() {
        let uri = "https://idp.example/jwks".to_owned();
        let cases = [
            (
                JwksError::Unreachable { uri: uri.clone(), reason: "connection refused".into() },
                "jwks_unreachable",
                true,
                "the identity provider's JWKS at https://idp.example/jwks did not answer: connection refused",
            ),
            (
                JwksError::BadStatus { uri: uri.clone(), status: 503 },
                "jwks_bad_status",
                true,
                "the identity provider's JWKS at https://idp.example/jwks answered with HTTP status 503 instead of 200",
            ),
            (
                JwksError::TooLarge { uri: uri.clone(), limit: 10 },
                "jwks_too_large",
                true,
                "the identity provider's JWKS at https://idp.example/jwks is larger than the limit of 10 bytes",
            ),
            (
                JwksError::NoMatchingKey { uri: uri.clone(), alg: Algorithm::RS256, kid: Some("k\n1".into()) },
                "jwks_no_matching_key",
                false,
                "the identity provider's JWKS at https://idp.example/jwks has no RS256 signing key with key id \"k\\n1\"",
            ),
            (
                JwksError::AmbiguousKey { uri: uri.clone(), alg: Algorithm::ES256, kid: None },
                "jwks_ambiguous_key",
                true,
                "the identity provider's JWKS at https://idp.example/jwks has several ES256 signing keys with no key id, so the right one cannot be chosen",
            ),
            (
                JwksError::Expired { uri: uri.clone(), stale_secs: 90_000, max_stale_secs: 86_400, last_error: Some("HTTP status 503".into()) },
                "jwks_expired",
                true,
                "the identity provider's JWKS at https://idp.example/jwks could not be refreshed and its cached keys expired: they are 90000s past their freshness, more than the 86400s they may be used stale (last refresh error: HTTP status 503)",
            ),
            (
                JwksError::Expired { uri: uri.clone(), stale_secs: 5, max_stale_secs: 0, last_error: None },
                "jwks_expired",
                true,
                "the identity provider's JWKS at https://idp.example/jwks could not be refreshed and its cached keys expired: they are 5s past their freshness, more than the 0s they may be used stale (no refresh has been attempted since)",
            ),
        ];
        for (err, code, idp, text) in cases {
            assert_eq!(err.code(), code);
            assert_eq!(err.is_idp_fault(), idp, "{code}");
            assert_eq!(err.to_string(), text);
        }
        let long = "x".repeat(500);
        let described = describe_kid(Some(&long));
        assert!(described.len() < 80, "{described}");
    }
}
