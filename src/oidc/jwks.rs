//! JWKS (JSON Web Key Set) cache, one per identity-provider `jwks_uri`.
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
//! * A lookup that misses (unknown `kid`, empty cache, or a set past its
//!   freshness) triggers a refetch, at most once per
//!   [`JwksSettings::refetch_cooldown`], with at most ONE fetch in flight per
//!   cache: concurrent callers that miss wait for that fetch and re-check the
//!   result; callers whose key is in the stale set are answered at once.
//! * A failed refresh (IdP down, bad status, garbage, too large) keeps the
//!   previously cached keys working, but only for
//!   [`JwksSettings::max_stale`] past their freshness: after that lookups
//!   fail with [`JwksError::Expired`] until a refresh succeeds.
//! * The response body is read chunk by chunk and abandoned as soon as it
//!   exceeds [`JwksSettings::max_bytes`].
//!
//! Nothing in this module ever sees an ID token; error messages contain the
//! JWKS URI, HTTP details and (sanitised) key ids only.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;
use url::Url;

/// Upper bound on one fetch (connect + headers + body), on top of whatever
/// timeout the `reqwest::Client` has, so a stuck IdP can never hold the
/// fetch lock forever.
const FETCH_HARD_TIMEOUT: Duration = Duration::from_secs(60);

/// A key set with more entries than this is rejected as invalid (bounds the
/// work done per fetch; real IdPs publish a handful of keys).
pub const MAX_KEYS_PER_SET: usize = 256;

/// Smallest RSA modulus accepted, in bits.
const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the RustCrypto `rsa` backend
/// refuses larger keys at verification time anyway).
const RSA_MAX_BITS: usize = 4096;

/// Tuning for a [`JwksCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwksSettings {
    /// Minimum gap between two fetches (a fetch triggered by an unknown key id
    /// or by age). Also applies after failed fetches.
    pub refetch_cooldown: Duration,
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
            max_age: Duration::from_secs(3600),
            max_bytes: 256 * 1024,
            min_refresh: Duration::from_secs(10),
            max_refresh: Duration::from_secs(24 * 3600),
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

impl JwksSettings {
    /// `lifetime` limited to [`min_refresh`, `max_refresh`] (`max_refresh`
    /// wins if the bounds are inverted; never panics).
    ///
    /// [`min_refresh`]: JwksSettings::min_refresh
    /// [`max_refresh`]: JwksSettings::max_refresh
    fn clamp_freshness(&self, lifetime: Duration) -> Duration {
        lifetime.max(self.min_refresh).min(self.max_refresh)
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

/// JOSE name of an algorithm.
pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        #[allow(unreachable_patterns)]
        _ => "unknown-algorithm",
    }
}

/// Human-readable, log-safe description of a key id: quoted and escaped,
/// truncated to 64 characters (key ids come from untrusted input).
pub(crate) fn describe_kid(kid: Option<&str>) -> String {
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
enum KeyClass {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyClass {
    fn fits(self, alg: Algorithm) -> bool {
        match self {
            KeyClass::Rsa => alg.family() == AlgorithmFamily::Rsa,
            KeyClass::EcP256 => alg == Algorithm::ES256,
            KeyClass::EcP384 => alg == Algorithm::ES384,
            KeyClass::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// One usable public key from a JWKS.
struct CachedKey {
    kid: Option<String>,
    class: KeyClass,
    /// The JWK's `alg`, if it had one (kept as the raw name so that unknown
    /// values simply never match).
    alg: Option<String>,
    key: Arc<DecodingKey>,
}

impl CachedKey {
    fn fits(&self, alg: Algorithm) -> bool {
        self.class.fits(alg) && self.alg.as_deref().is_none_or(|a| a == alg_name(alg))
    }
}

/// An immutable snapshot of a key set.
#[derive(Default)]
struct KeySet {
    keys: Vec<CachedKey>,
    /// When these keys were fetched/seeded; `None` = never loaded.
    loaded_at: Option<Instant>,
    /// From this instant on, the next lookup refreshes the set.
    fresh_until: Option<Instant>,
    /// Past this instant the keys are no longer served (while refreshes
    /// fail): `fresh_until + max_stale`.
    usable_until: Option<Instant>,
}

enum Lookup {
    Found(Arc<DecodingKey>),
    NotFound,
    Ambiguous,
}

impl KeySet {
    /// Loaded keys, freshly enough to be served without a refresh.
    fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|t| now < t)
    }

    /// Loaded keys, possibly stale, but not beyond `max_stale`.
    fn is_usable(&self, now: Instant) -> bool {
        self.usable_until.is_some_and(|t| now <= t)
    }

    /// Loaded once, and now beyond `max_stale`.
    fn is_expired(&self, now: Instant) -> bool {
        self.loaded_at.is_some() && !self.is_usable(now)
    }

    fn lookup(&self, alg: Algorithm, kid: Option<&str>) -> Lookup {
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

/// Decode base64url, tolerating (but not requiring) trailing `=` padding,
/// which a few IdPs emit in JWKs.
fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

fn str_member<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{name}\" is not a string")),
    }
}

fn required_b64(
    obj: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<Vec<u8>, String> {
    let s = str_member(obj, name)?.ok_or_else(|| format!("\"{name}\" is missing"))?;
    b64url(s).ok_or_else(|| format!("\"{name}\" is not base64url"))
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&top) => (be.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// Checks that `key` is a well-formed key for `alg` by building a verifier
/// (which parses the curve point). An empty signature never verifies, so
/// `Ok(false)` means the key parsed, `Err` means it did not.
fn ec_or_ed_key_parses(key: &DecodingKey, alg: Algorithm) -> bool {
    jsonwebtoken::crypto::verify("", b"", key, alg).is_ok()
}

/// Parses one JWK into a usable verification key, or says why it was skipped.
fn parse_jwk(jwk: &Value) -> Result<CachedKey, String> {
    let obj = jwk.as_object().ok_or("not a JSON object")?;
    let kid = str_member(obj, "kid")?.map(str::to_owned);
    let kty = str_member(obj, "kty")?.ok_or("\"kty\" is missing")?;
    let alg = str_member(obj, "alg")?.map(str::to_owned);
    if let Some(use_) = str_member(obj, "use")? {
        if use_ != "sig" {
            return Err(format!("\"use\" is {use_:?}, not \"sig\""));
        }
    }
    match obj.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) if ops.iter().any(|op| op.as_str() == Some("verify")) => {}
        Some(Value::Array(_)) => {
            return Err("\"key_ops\" does not include \"verify\"".to_owned());
        }
        Some(_) => return Err("\"key_ops\" is not an array".to_owned()),
    }
    if obj.contains_key("d") {
        // A published private key is compromised by definition: anyone could
        // forge tokens with it.
        return Err("it contains private key material (\"d\")".to_owned());
    }

    let (class, key) = match kty {
        "RSA" => {
            let n = required_b64(obj, "n")?;
            let e = required_b64(obj, "e")?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            let bits = bit_len(n);
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                return Err(format!(
                    "RSA modulus is {bits} bits (accepted: {RSA_MIN_BITS}..={RSA_MAX_BITS})"
                ));
            }
            if n.last().is_some_and(|b| b & 1 == 0) {
                return Err("RSA modulus is even".to_owned());
            }
            // 3 <= e <= 2^33 - 1 and odd (the range the `rsa` crate accepts).
            let e_bits = bit_len(e);
            if !(2..=33).contains(&e_bits) || e.last().is_some_and(|b| b & 1 == 0) {
                return Err("RSA public exponent is out of range".to_owned());
            }
            (KeyClass::Rsa, DecodingKey::from_rsa_raw_components(n, e))
        }
        "EC" => {
            let crv = str_member(obj, "crv")?.ok_or("\"crv\" is missing")?;
            let (class, len, check_alg) = match crv {
                "P-256" => (KeyClass::EcP256, 32, Algorithm::ES256),
                "P-384" => (KeyClass::EcP384, 48, Algorithm::ES384),
                other => return Err(format!("EC curve {other:?} is not supported")),
            };
            let x = required_b64(obj, "x")?;
            let y = required_b64(obj, "y")?;
            if x.len() != len || y.len() != len {
                return Err(format!("EC coordinates are not {len} bytes long"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let key = DecodingKey::from_ec_der(&point);
            if !ec_or_ed_key_parses(&key, check_alg) {
                return Err("EC point is not on the curve".to_owned());
            }
            (class, key)
        }
        "OKP" => {
            let crv = str_member(obj, "crv")?.ok_or("\"crv\" is missing")?;
            if crv != "Ed25519" {
                return Err(format!("OKP curve {crv:?} is not supported"));
            }
            let x = required_b64(obj, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key is not 32 bytes long".to_owned());
            }
            let key = DecodingKey::from_ed_der(&x);
            if !ec_or_ed_key_parses(&key, Algorithm::EdDSA) {
                return Err("Ed25519 key is not a valid curve point".to_owned());
            }
            (KeyClass::Ed25519, key)
        }
        other => {
            return Err(format!(
                "key type {other:?} is not supported for signatures"
            ))
        }
    };
    Ok(CachedKey {
        kid,
        class,
        alg,
        key: Arc::new(key),
    })
}

/// Parses a JWKS document. Unusable keys are skipped (and logged); a document
/// without any usable key is an error.
fn parse_jwks(uri: &Url, doc: &Value) -> Result<Vec<CachedKey>, JwksError> {
    let invalid = |reason: String| JwksError::Invalid {
        uri: uri.to_string(),
        reason,
    };
    let keys = doc
        .as_object()
        .and_then(|o| o.get("keys"))
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("it is not an object with a \"keys\" array".to_owned()))?;
    if keys.len() > MAX_KEYS_PER_SET {
        return Err(invalid(format!(
            "it lists {} keys, more than the limit of {MAX_KEYS_PER_SET}",
            keys.len()
        )));
    }
    let mut usable = Vec::with_capacity(keys.len());
    for (index, jwk) in keys.iter().enumerate() {
        match parse_jwk(jwk) {
            Ok(key) => usable.push(key),
            Err(reason) => {
                let kid = jwk.get("kid").and_then(Value::as_str);
                // Encryption keys and symmetric keys are expected in some
                // JWKS (e.g. Keycloak's RSA-OAEP key): not worth a warning.
                let not_for_signing = jwk.get("use").is_some_and(|u| u != "sig")
                    || jwk.get("kty").and_then(Value::as_str) == Some("oct");
                if not_for_signing {
                    tracing::debug!(
                        jwks_uri = %uri,
                        key_index = index,
                        kid = %describe_kid(kid),
                        %reason,
                        "ignoring non-signing key in the identity provider's JWKS"
                    );
                } else {
                    tracing::warn!(
                        jwks_uri = %uri,
                        key_index = index,
                        kid = %describe_kid(kid),
                        %reason,
                        "skipping unusable key in the identity provider's JWKS"
                    );
                }
            }
        }
    }
    if usable.is_empty() {
        return Err(invalid(format!(
            "none of its {} keys is a usable signing key",
            keys.len()
        )));
    }
    Ok(usable)
}

struct FetchState {
    /// Start of the most recent fetch attempt (successful or not).
    last_attempt: Option<Instant>,
    /// Message of the most recent fetch attempt if it failed (`None` after a
    /// success), for [`JwksError::Expired`].
    last_error: Option<String>,
}

/// Everything a background fetch needs (shared with the fetch task so the
/// fetch completes even if the caller that started it is cancelled, e.g. by
/// a request timeout).
struct Inner {
    http: reqwest::Client,
    uri: Url,
    settings: JwksSettings,
    keys: RwLock<Arc<KeySet>>,
    fetch: Arc<tokio::sync::Mutex<FetchState>>,
    fetches: AtomicU64,
}

/// Cached, lazily (re)fetched key set of one `jwks_uri`. Share it as
/// `Arc<JwksCache>` (see [`JwksRegistry`]); all methods take `&self`.
pub struct JwksCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.inner.snapshot();
        f.debug_struct("JwksCache")
            .field("jwks_uri", &self.inner.uri.as_str())
            .field("keys", &set.keys.len())
            .field("fetch_count", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// An empty cache; the first lookup fetches. Does no I/O.
    pub fn new(http: reqwest::Client, jwks_uri: Url, settings: JwksSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                uri: jwks_uri,
                settings,
                keys: RwLock::new(Arc::new(KeySet::default())),
                fetch: Arc::new(tokio::sync::Mutex::new(FetchState {
                    last_attempt: None,
                    last_error: None,
                })),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    /// A cache pre-seeded with an already downloaded key set (e.g. fetched
    /// during discovery). The seed counts as loaded now, fresh for `max_age`
    /// (clamped to [`min_refresh`, `max_refresh`]), but not as a fetch for
    /// the cooldown: the first unknown key id still triggers an immediate
    /// fetch. Does no I/O.
    ///
    /// [`min_refresh`]: JwksSettings::min_refresh
    /// [`max_refresh`]: JwksSettings::max_refresh
    pub fn with_keys(
        http: reqwest::Client,
        jwks_uri: Url,
        settings: JwksSettings,
        jwks_json: &Value,
    ) -> Result<Self, JwksError> {
        let keys = parse_jwks(&jwks_uri, jwks_json)?;
        let cache = Self::new(http, jwks_uri, settings);
        let set = cache.inner.key_set(keys, None);
        cache.inner.store(set);
        Ok(cache)
    }

    /// The `jwks_uri` this cache serves.
    pub fn jwks_uri(&self) -> &Url {
        &self.inner.uri
    }

    /// Number of HTTP fetches started so far (for tests/metrics).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Until when the cached key set is fresh (from then on the next lookup
    /// refreshes it); `None` if nothing was ever loaded. For tests/metrics.
    pub fn fresh_until(&self) -> Option<Instant> {
        self.inner.snapshot().fresh_until
    }

    /// Installs `keys` only if nothing was ever loaded. Returns whether it did.
    fn seed_if_empty(&self, keys: Vec<CachedKey>) -> bool {
        let mut guard = self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if guard.loaded_at.is_some() {
            return false;
        }
        *guard = Arc::new(self.inner.key_set(keys, None));
        true
    }

    /// Fetches the key set now (waiting for a fetch already in flight), stores it with the
    /// answer's freshness, and returns how many usable keys it holds. Used when a JWK URL is
    /// registered, so a URL that serves no usable keys is refused at once.
    pub async fn prefetch(&self) -> Result<usize, JwksError> {
        let inner = &self.inner;
        // Not a kid miss: it does not start the refetch cooldown, so a rotation right after
        // registration is still followed.
        let mut state = Arc::clone(&inner.fetch).lock_owned().await;
        let result = inner.fetch_keys().await.map(|(keys, lifetime)| {
            let set = Arc::new(inner.key_set(keys, lifetime));
            inner.store(Arc::clone(&set));
            set.keys.len()
        });
        state.last_error = result.as_ref().err().map(ToString::to_string);
        result
    }

    /// The key that verifies a token whose header has this `alg` and `kid`.
    ///
    /// Only keys whose type fits `alg` are considered (RSA for RS*/PS*, EC
    /// P-256 for ES256, EC P-384 for ES384, OKP Ed25519 for EdDSA), and whose
    /// JWK `alg`, `use` and `key_ops` (when present) allow it. With a `kid`:
    /// the key with that kid; without: the single fitting key.
    ///
    /// On a miss, an empty cache or a key set past its freshness, the set is
    /// refetched, at most once per cooldown and with a single fetch in
    /// flight (concurrent callers that miss wait for it, then re-check;
    /// callers whose key is in the stale set get it at once). When that
    /// fetch fails, still-cached keys keep working up to `max_stale` past
    /// their freshness, after which [`JwksError::Expired`] is returned; the
    /// fetch error itself is returned only if the key is not cached at all.
    ///
    /// The fetch runs in a spawned task, so cancelling this future does not
    /// abort it; must be called within a Tokio runtime (as reqwest requires).
    pub async fn key_for(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Arc<DecodingKey>, JwksError> {
        let inner = &self.inner;
        // We never hold shared-secret keys: do not let HS* tokens cause fetches.
        if alg.family() == AlgorithmFamily::Hmac {
            return Err(inner.no_key(alg, kid));
        }

        // Fast path: fresh set, unambiguous answer.
        let set = inner.snapshot();
        let lookup = set.lookup(alg, kid);
        let found = !matches!(lookup, Lookup::NotFound);
        if found && set.is_fresh(Instant::now()) {
            return inner.resolve(lookup, alg, kid);
        }

        // Slow path: one fetcher at a time; waiters re-check after the lock.
        let mut state = match Arc::clone(&inner.fetch).try_lock_owned() {
            Ok(state) => state,
            Err(_busy) => {
                // Another caller is refreshing (or about to decide not to).
                // A stale but still usable key answers now rather than after
                // that fetch; a miss waits, as the fetch may bring the key.
                if found && set.is_usable(Instant::now()) {
                    return inner.resolve(lookup, alg, kid);
                }
                Arc::clone(&inner.fetch).lock_owned().await
            }
        };
        drop(lookup);
        let set = inner.snapshot();
        let lookup = set.lookup(alg, kid);
        let now = Instant::now();
        if set.is_fresh(now) && !matches!(lookup, Lookup::NotFound) {
            return inner.resolve(lookup, alg, kid);
        }
        let cooling_down = state
            .last_attempt
            .is_some_and(|t| now.saturating_duration_since(t) < inner.settings.refetch_cooldown);
        if cooling_down {
            // Possibly stale keys, but we may not fetch yet.
            if set.loaded_at.is_none() {
                // Never loaded: the provider is the problem, not the token's key id.
                return Err(JwksError::Unreachable {
                    uri: inner.uri.to_string(),
                    reason: state
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "the key set could not be fetched".into()),
                });
            }
            if set.is_expired(now) {
                return Err(inner.expired(&set, now, state.last_error.clone()));
            }
            return inner.resolve(lookup, alg, kid);
        }
        state.last_attempt = Some(now);

        // The task owns the lock guard: the lock is released only once the
        // new key set is stored (or the fetch has failed).
        let task_inner = Arc::clone(inner);
        let refresh = async move {
            let result = task_inner.fetch_keys().await.map(|(keys, lifetime)| {
                let new_set = Arc::new(task_inner.key_set(keys, lifetime));
                task_inner.store(Arc::clone(&new_set));
                new_set
            });
            state.last_error = result.as_ref().err().map(ToString::to_string);
            drop(state);
            result
        };
        let result = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => match runtime.spawn(refresh).await {
                Ok(result) => result,
                Err(join_error) => Err(JwksError::Unreachable {
                    uri: inner.uri.to_string(),
                    reason: format!("the fetch task did not complete ({join_error})"),
                }),
            },
            // Not inside a Tokio runtime: fetch inline (reqwest will report
            // the problem as an error).
            Err(_) => refresh.await,
        };

        match result {
            Ok(new_set) => inner.resolve(new_set.lookup(alg, kid), alg, kid),
            Err(err) => {
                let now = Instant::now();
                if set.is_expired(now) {
                    let expired = inner.expired(&set, now, Some(err.to_string()));
                    tracing::warn!(
                        jwks_uri = %inner.uri,
                        error = %err,
                        error_code = err.code(),
                        cached_keys = set.keys.len(),
                        "fetching the identity provider's JWKS failed and the cached keys are too stale to use; refusing tokens until a refresh succeeds"
                    );
                    return Err(expired);
                }
                let stale_for = set
                    .fresh_until
                    .map_or(0, |t| now.saturating_duration_since(t).as_secs());
                tracing::warn!(
                    jwks_uri = %inner.uri,
                    error = %err,
                    error_code = err.code(),
                    cached_keys = set.keys.len(),
                    stale_secs = stale_for,
                    max_stale_secs = inner.settings.max_stale.as_secs(),
                    "fetching the identity provider's JWKS failed; keeping the previously cached keys"
                );
                match lookup {
                    Lookup::NotFound => Err(err),
                    other => inner.resolve(other, alg, kid),
                }
            }
        }
    }
}

impl Inner {
    /// A key set loaded now, fresh for `lifetime` (from the answer's caching
    /// headers; `None` = the configured `max_age`), clamped to the settings.
    fn key_set(&self, keys: Vec<CachedKey>, lifetime: Option<Duration>) -> KeySet {
        let settings = &self.settings;
        let lifetime = settings.clamp_freshness(lifetime.unwrap_or(settings.max_age));
        let now = Instant::now();
        let fresh_until = instant_after(now, lifetime);
        KeySet {
            keys,
            loaded_at: Some(now),
            fresh_until: Some(fresh_until),
            usable_until: Some(instant_after(fresh_until, settings.max_stale)),
        }
    }

    fn expired(&self, set: &KeySet, now: Instant, last_error: Option<String>) -> JwksError {
        JwksError::Expired {
            uri: self.uri.to_string(),
            stale_secs: set
                .fresh_until
                .map_or(0, |t| now.saturating_duration_since(t).as_secs()),
            max_stale_secs: self.settings.max_stale.as_secs(),
            last_error,
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn store(&self, set: impl Into<Arc<KeySet>>) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = set.into();
    }

    fn no_key(&self, alg: Algorithm, kid: Option<&str>) -> JwksError {
        JwksError::NoMatchingKey {
            uri: self.uri.to_string(),
            alg,
            kid: kid.map(str::to_owned),
        }
    }

    fn resolve(
        &self,
        lookup: Lookup,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Arc<DecodingKey>, JwksError> {
        match lookup {
            Lookup::Found(key) => Ok(key),
            Lookup::Ambiguous => Err(JwksError::AmbiguousKey {
                uri: self.uri.to_string(),
                alg,
                kid: kid.map(str::to_owned),
            }),
            Lookup::NotFound => Err(self.no_key(alg, kid)),
        }
    }

    /// Fetches and parses the key set (does not store it), with the
    /// freshness its answer grants (`None`: no caching headers).
    async fn fetch_keys(&self) -> Result<(Vec<CachedKey>, Option<Duration>), JwksError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let (doc, lifetime) =
            match tokio::time::timeout(FETCH_HARD_TIMEOUT, self.fetch_document()).await {
                Ok(result) => result?,
                Err(_elapsed) => {
                    return Err(JwksError::Unreachable {
                        uri: self.uri.to_string(),
                        reason: format!(
                            "no complete answer within {}s",
                            FETCH_HARD_TIMEOUT.as_secs()
                        ),
                    })
                }
            };
        let keys = parse_jwks(&self.uri, &doc)?;
        tracing::info!(
            jwks_uri = %self.uri,
            keys = keys.len(),
            fresh_for_secs = self
                .settings
                .clamp_freshness(lifetime.unwrap_or(self.settings.max_age))
                .as_secs(),
            freshness_from_answer = lifetime.is_some(),
            "fetched the identity provider's JWKS"
        );
        Ok((keys, lifetime))
    }

    async fn fetch_document(&self) -> Result<(Value, Option<Duration>), JwksError> {
        let uri = || self.uri.to_string();
        let response = self
            .http
            .get(self.uri.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| JwksError::Unreachable {
                uri: uri(),
                reason: super::describe(&e),
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(JwksError::BadStatus {
                uri: uri(),
                status: status.as_u16(),
            });
        }
        let lifetime = freshness_from_headers(response.headers(), SystemTime::now());
        let body = super::read_limited(response, self.settings.max_bytes)
            .await
            .map_err(|e| match e {
                super::BodyError::TooLarge(limit) => JwksError::TooLarge { uri: uri(), limit },
                super::BodyError::Read(reason) => JwksError::Unreachable { uri: uri(), reason },
            })?;
        let doc = serde_json::from_slice(&body).map_err(|e| JwksError::NotJson {
            uri: uri(),
            reason: e.to_string(),
        })?;
        Ok((doc, lifetime))
    }
}

/// `t + d`, or a far-future instant where that is not representable.
fn instant_after(t: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d)
        .or_else(|| t.checked_add(CENTURY.min(d)))
        .unwrap_or(t)
}

/// An HTTP delta-seconds value (`1*DIGIT`, tolerating surrounding quotes);
/// values too large for `u64` saturate. `None` if malformed.
fn delta_seconds(value: &str) -> Option<Duration> {
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)))
}

/// How long an answer with these headers stays fresh (RFC 9111 section
/// 4.2.1), minus its `Age`; `None` when it carries no freshness information
/// (the configured `max_age` applies then).
///
/// * `Cache-Control: no-cache` or `no-store`: zero (refresh next time).
/// * else `s-maxage=N` (we are a shared cache), else `max-age=N`; a
///   malformed value counts as zero (RFC 9111: treat as stale);
/// * else `Expires` minus the answer's `Date` (or `now` without a usable
///   `Date`); an unparseable `Expires` (e.g. `0`) counts as zero.
fn freshness_from_headers(
    headers: &reqwest::header::HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    use reqwest::header::{AGE, CACHE_CONTROL, DATE, EXPIRES};

    let mut no_cache = false;
    let mut max_age: Option<Duration> = None;
    let mut s_maxage: Option<Duration> = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for directive in value.split(',') {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument)),
                None => (directive.trim(), None),
            };
            let seconds = || Some(argument.and_then(delta_seconds).unwrap_or(Duration::ZERO));
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                no_cache = true;
            } else if name.eq_ignore_ascii_case("max-age") {
                // The first occurrence counts.
                max_age = max_age.or_else(seconds);
            } else if name.eq_ignore_ascii_case("s-maxage") {
                s_maxage = s_maxage.or_else(seconds);
            }
        }
    }

    let http_date = |name| {
        headers
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
    };
    let lifetime = if no_cache {
        Duration::ZERO
    } else if let Some(lifetime) = s_maxage.or(max_age) {
        lifetime
    } else if headers.contains_key(EXPIRES) {
        match http_date(EXPIRES) {
            Some(expires) => {
                let date = http_date(DATE).unwrap_or(now);
                expires.duration_since(date).unwrap_or(Duration::ZERO)
            }
            None => Duration::ZERO,
        }
    } else {
        return None;
    };
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(delta_seconds)
        .unwrap_or(Duration::ZERO);
    Some(lifetime.saturating_sub(age))
}

/// All [`JwksCache`]s of the process, keyed by `jwks_uri`, so every
/// connection that uses the same identity provider shares one cache (and one
/// fetch cooldown).
pub struct JwksRegistry {
    http: reqwest::Client,
    settings: JwksSettings,
    caches: StdMutex<HashMap<Url, Arc<JwksCache>>>,
}

impl fmt::Debug for JwksRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self
            .caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("JwksRegistry")
            .field("caches", &count)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl JwksRegistry {
    pub fn new(http: reqwest::Client, settings: JwksSettings) -> Self {
        Self {
            http,
            settings,
            caches: StdMutex::new(HashMap::new()),
        }
    }

    /// The shared cache for `uri`, created (empty, no I/O) on first use.
    pub fn get(&self, uri: &Url) -> Arc<JwksCache> {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(caches.entry(uri.clone()).or_insert_with(|| {
            Arc::new(JwksCache::new(
                self.http.clone(),
                uri.clone(),
                self.settings,
            ))
        }))
    }

    /// Seeds the cache for `uri` with an already downloaded key set and
    /// returns it. A cache that already holds keys keeps them (they are at
    /// least as recent); the seed is validated either way, and an invalid
    /// seed leaves the registry untouched.
    pub fn insert_seeded(&self, uri: &Url, jwks_json: &Value) -> Result<Arc<JwksCache>, JwksError> {
        let keys = parse_jwks(uri, jwks_json)?;
        let cache = self.get(uri);
        cache.seed_if_empty(keys);
        Ok(cache)
    }
}

/// Test keys and token helpers shared by the `jwks` and `idtoken` tests.
/// The PEM files under `testdata/` are throwaway keys generated with the
/// `openssl` CLI for these tests only.
#[cfg(test)]
pub(crate) mod test_support {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::{json, Value};

    /// PKCS#1 RSA private key (2048 bits), kid "rsa1".
    pub const RSA1_PKCS1_PEM: &str = include_str!("testdata/rsa1_pkcs1.pem");
    /// SubjectPublicKeyInfo of rsa1, used as an HMAC secret in the classic
    /// algorithm-confusion attack test.
    pub const RSA1_PUBLIC_PEM: &str = include_str!("testdata/rsa1_public.pem");
    /// A second PKCS#1 RSA private key (2048 bits), kid "rsa2".
    pub const RSA2_PKCS1_PEM: &str = include_str!("testdata/rsa2_pkcs1.pem");
    /// PKCS#8 EC P-256 private key, kid "ec256".
    pub const EC256_PKCS8_PEM: &str = include_str!("testdata/ec256_pkcs8.pem");
    /// PKCS#8 EC P-384 private key, kid "ec384".
    pub const EC384_PKCS8_PEM: &str = include_str!("testdata/ec384_pkcs8.pem");
    /// PKCS#8 Ed25519 private key, kid "ed25519".
    pub const ED25519_PKCS8_PEM: &str = include_str!("testdata/ed25519_pkcs8.pem");

    /// The DER bytes inside a single-block PEM file.
    pub fn pem_to_der(pem: &str) -> Vec<u8> {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        STANDARD.decode(body).expect("fixture PEM is base64")
    }

    pub struct TestKey {
        pub alg: Algorithm,
        pub kid: &'static str,
        pub signing: EncodingKey,
        /// Public JWK with kid, alg and use=sig.
        pub jwk: Value,
    }

    fn make(alg: Algorithm, kid: &'static str, signing: EncodingKey) -> TestKey {
        let jwk = Jwk::from_encoding_key(&signing, alg).expect("public JWK from private key");
        let mut jwk = serde_json::to_value(jwk).expect("JWK serializes");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        TestKey {
            alg,
            kid,
            signing,
            jwk,
        }
    }

    pub fn rsa1() -> TestKey {
        let der = pem_to_der(RSA1_PKCS1_PEM);
        make(Algorithm::RS256, "rsa1", EncodingKey::from_rsa_der(&der))
    }
    pub fn rsa2() -> TestKey {
        let der = pem_to_der(RSA2_PKCS1_PEM);
        make(Algorithm::RS256, "rsa2", EncodingKey::from_rsa_der(&der))
    }
    pub fn ec256() -> TestKey {
        let der = pem_to_der(EC256_PKCS8_PEM);
        make(Algorithm::ES256, "ec256", EncodingKey::from_ec_der(&der))
    }
    pub fn ec384() -> TestKey {
        let der = pem_to_der(EC384_PKCS8_PEM);
        make(Algorithm::ES384, "ec384", EncodingKey::from_ec_der(&der))
    }
    pub fn ed25519() -> TestKey {
        let der = pem_to_der(ED25519_PKCS8_PEM);
        make(Algorithm::EdDSA, "ed25519", EncodingKey::from_ed_der(&der))
    }

    /// A JWK without its `alg` member (as many IdPs publish them).
    pub fn without_alg(mut jwk: Value) -> Value {
        if let Some(obj) = jwk.as_object_mut() {
            obj.remove("alg");
        }
        jwk
    }

    pub fn jwks(keys: &[&Value]) -> Value {
        json!({ "keys": keys })
    }

    pub fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Compact JWS with an arbitrary header, signed with `key` using `alg`.
    pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("sign");
        format!("{message}.{signature}")
    }

    /// Compact JWS with header `{"alg", "kid", "typ": "JWT"}` signed by `key`.
    pub fn sign(key: &TestKey, claims: &Value) -> String {
        let header =
            json!({ "alg": crate::oidc::jwks::alg_name(key.alg), "kid": key.kid, "typ": "JWT" });
        sign_raw(&header, claims, &key.signing, key.alg)
    }

    /// Client for the local test servers: short timeout, no proxy, and no
    /// connection reuse (so a stopped server really is unreachable).
    pub fn http_client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .no_proxy()
            .build()
            .expect("reqwest client")
    }

    /// A local JWKS endpoint on 127.0.0.1 whose answer can be changed and
    /// which counts requests.
    pub mod server {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use axum::http::{header, StatusCode};
        use axum::response::{IntoResponse, Response};
        use axum::routing::get;
        use axum::Router;
        use url::Url;

        #[derive(Clone, Debug)]
        pub enum Answer {
            Json(String),
            Status(u16),
        }

        struct State {
            hits: AtomicUsize,
            answer: Mutex<Answer>,
            delay: Mutex<Duration>,
            headers: Mutex<Vec<(String, String)>>,
        }

        pub struct JwksServer {
            state: Arc<State>,
            pub uri: Url,
            task: tokio::task::JoinHandle<()>,
        }

        impl JwksServer {
            pub async fn start(answer: Answer) -> Self {
                let state = Arc::new(State {
                    hits: AtomicUsize::new(0),
                    answer: Mutex::new(answer),
                    delay: Mutex::new(Duration::ZERO),
                    headers: Mutex::new(Vec::new()),
                });
                let handler_state = Arc::clone(&state);
                let app = Router::new().route(
                    "/jwks",
                    get(move || {
                        let state = Arc::clone(&handler_state);
                        async move {
                            state.hits.fetch_add(1, Ordering::SeqCst);
                            let delay = *state.delay.lock().unwrap();
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let answer = state.answer.lock().unwrap().clone();
                            let extra = state.headers.lock().unwrap().clone();
                            let mut response: Response = match answer {
                                Answer::Json(body) => {
                                    ([(header::CONTENT_TYPE, "application/json")], body)
                                        .into_response()
                                }
                                Answer::Status(code) => {
                                    StatusCode::from_u16(code).unwrap().into_response()
                                }
                            };
                            for (name, value) in extra {
                                response.headers_mut().append(
                                    header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                                    header::HeaderValue::from_str(&value).unwrap(),
                                );
                            }
                            response
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let task = tokio::spawn(async move {
                    axum::serve(listener, app).await.unwrap();
                });
                let uri = Url::parse(&format!("http://{addr}/jwks")).unwrap();
                JwksServer { state, uri, task }
            }

            pub fn hits(&self) -> usize {
                self.state.hits.load(Ordering::SeqCst)
            }

            pub fn set_answer(&self, answer: Answer) {
                *self.state.answer.lock().unwrap() = answer;
            }

            pub fn set_delay(&self, delay: Duration) {
                *self.state.delay.lock().unwrap() = delay;
            }

            /// Extra response headers (e.g. `Cache-Control`), added to every
            /// answer from now on.
            pub fn set_headers(&self, headers: &[(&str, &str)]) {
                *self.state.headers.lock().unwrap() = headers
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect();
            }

            /// Stops accepting connections (the listener is dropped).
            pub async fn stop(self) {
                self.task.abort();
                let _ = self.task.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use jsonwebtoken::Algorithm;
    use serde_json::{json, Value};
    use url::Url;

    use super::test_support::server::{Answer, JwksServer};
    use super::test_support::*;
    use super::*;

    fn test_uri() -> Url {
        // Never contacted by the pure tests (port 9 = discard, on loopback).
        Url::parse("http://127.0.0.1:9/jwks").unwrap()
    }

    fn parse(doc: &Value) -> Result<KeySet, JwksError> {
        parse_jwks(&test_uri(), doc).map(|keys| KeySet {
            keys,
            loaded_at: Some(Instant::now()),
            ..KeySet::default()
        })
    }

    fn found(set: &KeySet, alg: Algorithm, kid: Option<&str>) -> bool {
        matches!(set.lookup(alg, kid), Lookup::Found(_))
    }

    /// No lower clamp (so `max_age` zero means "refresh on every lookup"),
    /// a day of staleness.
    fn settings(cooldown: Duration, max_age: Duration, max_bytes: usize) -> JwksSettings {
        JwksSettings {
            refetch_cooldown: cooldown,
            max_age,
            max_bytes,
            min_refresh: Duration::ZERO,
            max_refresh: DAY,
            max_stale: DAY,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);

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
    fn key_type_must_fit_the_algorithm() {
        let (rsa, ec256, ec384, ed) = (rsa1(), ec256(), ec384(), ed25519());
        let set = parse(&jwks(&[
            &without_alg(rsa.jwk.clone()),
            &without_alg(ec256.jwk.clone()),
            &without_alg(ec384.jwk.clone()),
            &without_alg(ed.jwk.clone()),
        ]))
        .unwrap();
        assert_eq!(set.keys.len(), 4);
        use Algorithm::*;
        let table: &[(&str, &[Algorithm], &[Algorithm])] = &[
            (
                "rsa1",
                &[RS256, RS384, RS512, PS256, PS384, PS512],
                &[ES256, ES384, EdDSA, HS256],
            ),
            ("ec256", &[ES256], &[ES384, RS256, EdDSA, HS256]),
            ("ec384", &[ES384], &[ES256, RS256, EdDSA]),
            ("ed25519", &[EdDSA], &[ES256, RS256, HS256]),
        ];
        for (kid, fits, not_fits) in table {
            for alg in *fits {
                assert!(found(&set, *alg, Some(kid)), "{kid} should fit {alg:?}");
            }
            for alg in *not_fits {
                assert!(!found(&set, *alg, Some(kid)), "{kid} must not fit {alg:?}");
            }
        }
    }

    #[test]
    fn jwk_alg_use_and_key_ops_are_honoured() {
        let base = rsa1().jwk; // has "alg": "RS256", "use": "sig"
        let set = parse(&jwks(&[&base])).unwrap();
        assert!(found(&set, Algorithm::RS256, Some("rsa1")));
        assert!(
            !found(&set, Algorithm::PS256, Some("rsa1")),
            "JWK alg RS256 != PS256"
        );

        let mut unknown_alg = base.clone();
        unknown_alg["alg"] = json!("RSA-OAEP");
        let set = parse(&jwks(&[&unknown_alg])).unwrap();
        assert!(!found(&set, Algorithm::RS256, Some("rsa1")));

        let mut ops_ok = base.clone();
        ops_ok["key_ops"] = json!(["verify"]);
        assert!(found(
            &parse(&jwks(&[&ops_ok])).unwrap(),
            Algorithm::RS256,
            Some("rsa1")
        ));

        let mut rejected = Vec::new();
        for (field, value) in [
            ("use", json!("enc")),
            ("use", json!(5)),
            ("key_ops", json!(["encrypt"])),
            ("key_ops", json!([])),
            ("key_ops", json!("verify")),
            ("kid", json!(7)),
            ("d", json!("AQAB")),
            ("n", json!("***")),
            ("n", json!(b64(&[0xff; 128]))), // 1024-bit modulus
            ("e", json!(b64(&[1]))),
            ("e", json!(b64(&[1, 0]))), // even exponent
        ] {
            let mut jwk = base.clone();
            jwk[field] = value.clone();
            rejected.push(jwk);
        }
        let mut no_n = base.clone();
        no_n.as_object_mut().unwrap().remove("n");
        rejected.push(no_n);
        for jwk in &rejected {
            assert!(parse_jwk(jwk).is_err(), "must be skipped: {jwk}");
            // Alone in a set: the set is invalid.
            assert!(matches!(
                parse(&jwks(&[jwk])),
                Err(JwksError::Invalid { .. })
            ));
        }
    }

    #[test]
    fn broken_or_unsupported_keys_are_skipped_not_fatal() {
        let good = rsa1().jwk;
        let ec = ec256().jwk;
        let mut off_curve = ec.clone();
        off_curve["kid"] = json!("off-curve");
        off_curve["y"] = json!(b64(&[7u8; 32]));
        let mut wrong_len = ec.clone();
        wrong_len["kid"] = json!("short");
        wrong_len["x"] = json!(b64(&[7u8; 31]));
        let mut p384_as_p256 = ec384().jwk;
        p384_as_p256["crv"] = json!("P-256");
        let mut bad_ed = ed25519().jwk;
        bad_ed["x"] = json!(b64(&[1u8; 31]));
        let docs = [
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}),
            json!({"kty": "OKP", "crv": "Ed448", "x": "AA"}),
            json!("not an object"),
            json!({"kid": "no-kty"}),
            off_curve,
            wrong_len,
            p384_as_p256,
            bad_ed,
        ];
        let mut all: Vec<&Value> = docs.iter().collect();
        all.push(&good);
        let set = parse(&jwks(&all)).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert!(found(&set, Algorithm::RS256, Some("rsa1")));
        assert!(!found(&set, Algorithm::ES256, None));
        assert!(!found(&set, Algorithm::HS256, Some("hmac")));
    }

    #[test]
    fn kid_selection_and_ambiguity() {
        let (a, b) = (rsa1(), rsa2());
        let set = parse(&jwks(&[&a.jwk, &b.jwk])).unwrap();
        assert!(found(&set, Algorithm::RS256, Some("rsa1")));
        assert!(found(&set, Algorithm::RS256, Some("rsa2")));
        assert!(matches!(
            set.lookup(Algorithm::RS256, Some("rsa3")),
            Lookup::NotFound
        ));
        // No kid, two fitting keys: ambiguous.
        assert!(matches!(
            set.lookup(Algorithm::RS256, None),
            Lookup::Ambiguous
        ));

        // No kid, a single fitting key (the EC key does not fit RS256).
        let set = parse(&jwks(&[&a.jwk, &ec256().jwk])).unwrap();
        assert!(found(&set, Algorithm::RS256, None));
        assert!(found(&set, Algorithm::ES256, None));

        // Keys without kid only match kid-less tokens.
        let set = parse(&jwks(&[&without_kid(&a.jwk)])).unwrap();
        assert!(found(&set, Algorithm::RS256, None));
        assert!(!found(&set, Algorithm::RS256, Some("rsa1")));

        // Same kid twice for the same algorithm family: ambiguous.
        let mut dup = b.jwk.clone();
        dup["kid"] = json!("rsa1");
        let set = parse(&jwks(&[&a.jwk, &dup])).unwrap();
        assert!(matches!(
            set.lookup(Algorithm::RS256, Some("rsa1")),
            Lookup::Ambiguous
        ));
    }

    fn without_kid(jwk: &Value) -> Value {
        let mut jwk = jwk.clone();
        jwk.as_object_mut().unwrap().remove("kid");
        jwk
    }

    #[test]
    fn invalid_documents() {
        let many: Vec<Value> = (0..=MAX_KEYS_PER_SET).map(|_| rsa1().jwk).collect();
        let many_refs: Vec<&Value> = many.iter().collect();
        for doc in [
            json!([]),
            json!({}),
            json!({"keys": {}}),
            json!({"keys": []}),
            json!({"keys": [{"kty": "oct", "k": "AA"}]}),
            jwks(&many_refs),
        ] {
            let err = parse(&doc).err().expect("must be invalid");
            assert!(matches!(err, JwksError::Invalid { .. }), "{err:?}");
            assert!(err.is_idp_fault());
            assert!(err.to_string().contains("127.0.0.1:9/jwks"), "{err}");
        }
        let err = JwksCache::with_keys(
            http_client(),
            test_uri(),
            JwksSettings::default(),
            &json!({}),
        )
        .unwrap_err();
        assert_eq!(err.code(), "jwks_invalid");
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

    #[tokio::test]
    async fn hmac_lookups_never_fetch() {
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa1().jwk]).to_string())).await;
        let cache = JwksCache::new(http_client(), server.uri.clone(), JwksSettings::default());
        let err = cache
            .key_for(Algorithm::HS256, Some("rsa1"))
            .await
            .unwrap_err();
        assert!(matches!(err, JwksError::NoMatchingKey { .. }));
        assert_eq!(cache.fetch_count(), 0);
        assert_eq!(server.hits(), 0);
        server.stop().await;
    }

    #[tokio::test]
    async fn empty_cache_fetches_once_then_serves_from_memory() {
        let server =
            JwksServer::start(Answer::Json(jwks(&[&rsa1().jwk, &ec256().jwk]).to_string())).await;
        let cache = JwksCache::new(
            http_client(),
            server.uri.clone(),
            settings(HOUR, HOUR, 256 * 1024),
        );
        assert_eq!(cache.fetch_count(), 0, "new() does no I/O");
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        cache
            .key_for(Algorithm::ES256, Some("ec256"))
            .await
            .unwrap();
        cache.key_for(Algorithm::ES256, None).await.unwrap();
        for _ in 0..10 {
            cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        }
        assert_eq!(cache.fetch_count(), 1);
        assert_eq!(server.hits(), 1);
        server.stop().await;
    }

    #[tokio::test]
    async fn unknown_kid_refetches_once_and_misses_inside_cooldown_do_not_fetch() {
        let (a, b) = (rsa1(), rsa2());
        let server = JwksServer::start(Answer::Json(jwks(&[&a.jwk, &b.jwk]).to_string())).await;
        let cache = JwksCache::with_keys(
            http_client(),
            server.uri.clone(),
            settings(HOUR, HOUR, 256 * 1024),
            &jwks(&[&a.jwk]),
        )
        .unwrap();

        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 0, "seeded key is served without I/O");

        // Unknown kid: exactly one refetch, which finds it.
        cache.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        assert_eq!(server.hits(), 1);
        cache.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        assert_eq!(server.hits(), 1);

        // Another miss inside the cooldown: no fetch, a clean error.
        for _ in 0..5 {
            let err = cache
                .key_for(Algorithm::RS256, Some("rsa-unknown"))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, JwksError::NoMatchingKey { kid: Some(k), .. } if k == "rsa-unknown"),
                "{err:?}"
            );
        }
        assert_eq!(server.hits(), 1);
        assert_eq!(cache.fetch_count(), 1);
        server.stop().await;
    }

    #[tokio::test]
    async fn miss_after_cooldown_fetches_again() {
        let (a, b) = (rsa1(), rsa2());
        let server = JwksServer::start(Answer::Json(jwks(&[&a.jwk]).to_string())).await;
        let cooldown = Duration::from_millis(200);
        let cache = JwksCache::new(
            http_client(),
            server.uri.clone(),
            settings(cooldown, HOUR, 256 * 1024),
        );
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 1);

        // The IdP rotates in a new key; a token with it arrives after the cooldown.
        server.set_answer(Answer::Json(jwks(&[&b.jwk]).to_string()));
        tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
        cache.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        assert_eq!(server.hits(), 2);
        // The rotated-out key is gone (a successful fetch replaces the set).
        let err = cache
            .key_for(Algorithm::RS256, Some("rsa1"))
            .await
            .unwrap_err();
        assert!(matches!(err, JwksError::NoMatchingKey { .. }), "{err:?}");
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_misses_cause_exactly_one_fetch() {
        let (a, b) = (rsa1(), rsa2());
        let server = JwksServer::start(Answer::Json(jwks(&[&a.jwk, &b.jwk]).to_string())).await;
        server.set_delay(Duration::from_millis(300));
        let cache = Arc::new(
            JwksCache::with_keys(
                http_client(),
                server.uri.clone(),
                settings(Duration::ZERO, HOUR, 256 * 1024),
                &jwks(&[&a.jwk]),
            )
            .unwrap(),
        );
        fifty_lookups(&cache, Algorithm::RS256, "rsa2").await;
        // Even with a zero cooldown, waiters re-check after the fetch and
        // find the key instead of fetching again.
        assert_eq!(server.hits(), 1);
        assert_eq!(cache.fetch_count(), 1);
        server.stop().await;
    }

    /// 50 concurrent lookups of `kid`, each of which must succeed.
    async fn fifty_lookups(cache: &Arc<JwksCache>, alg: Algorithm, kid: &'static str) {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let cache = Arc::clone(cache);
                tokio::spawn(async move { cache.key_for(alg, Some(kid)).await.map(|_| ()) })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_first_lookups_on_an_empty_cache_cause_one_fetch() {
        let server = JwksServer::start(Answer::Json(jwks(&[&ec256().jwk]).to_string())).await;
        server.set_delay(Duration::from_millis(200));
        let cache = Arc::new(JwksCache::new(
            http_client(),
            server.uri.clone(),
            settings(HOUR, HOUR, 256 * 1024),
        ));
        fifty_lookups(&cache, Algorithm::ES256, "ec256").await;
        assert_eq!(server.hits(), 1);
        server.stop().await;
    }

    #[tokio::test]
    async fn a_cancelled_caller_does_not_abort_the_fetch() {
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa1().jwk]).to_string())).await;
        server.set_delay(Duration::from_millis(300));
        let cache = JwksCache::new(
            http_client(),
            server.uri.clone(),
            settings(HOUR, HOUR, 64 * 1024),
        );
        // The first caller gives up (e.g. a request timeout) mid-fetch...
        let first = tokio::time::timeout(
            Duration::from_millis(50),
            cache.key_for(Algorithm::RS256, Some("rsa1")),
        )
        .await;
        assert!(first.is_err(), "the first caller must time out");
        // ...but the fetch completes and the next caller (inside the
        // cooldown) gets the key without a second fetch.
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 1);
        assert_eq!(cache.fetch_count(), 1);
        server.stop().await;
    }

    #[tokio::test]
    async fn oversized_body_is_rejected() {
        let big = json!({ "keys": [rsa1().jwk], "padding": "x".repeat(4096) }).to_string();
        let server = JwksServer::start(Answer::Json(big.clone())).await;
        let cache = JwksCache::new(
            http_client(),
            server.uri.clone(),
            settings(Duration::ZERO, HOUR, 2048),
        );
        let err = cache
            .key_for(Algorithm::RS256, Some("rsa1"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, JwksError::TooLarge { limit: 2048, .. }),
            "{err:?}"
        );
        assert!(err.is_idp_fault());

        // Exactly at the limit is fine.
        let cache = JwksCache::new(
            http_client(),
            server.uri.clone(),
            settings(Duration::ZERO, HOUR, big.len()),
        );
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        server.stop().await;
    }

    /// A raw HTTP/1.1 server that streams an endless chunked body without a
    /// Content-Length: the size limit must stop the read.
    #[tokio::test]
    async fn oversized_chunked_body_without_content_length_is_rejected() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return 0usize;
            }
            // 16 KiB chunks; bounded at 64 MiB, far beyond the 8 KiB limit
            // and beyond what loopback socket buffers absorb.
            let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
            let mut sent = 0usize;
            for _ in 0..4096 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent += 0x4000;
            }
            sent
        });
        let uri = Url::parse(&format!("http://{addr}/jwks")).unwrap();
        let cache = JwksCache::new(http_client(), uri, settings(Duration::ZERO, HOUR, 8 * 1024));
        let err = cache
            .key_for(Algorithm::RS256, Some("rsa1"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, JwksError::TooLarge { limit: 8192, .. }),
            "{err:?}"
        );
        drop(cache);
        let sent = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
        assert!(
            sent < 4096 * 0x4000,
            "the client must stop reading early (sent {sent})"
        );
    }

    #[tokio::test]
    async fn garbage_or_error_answers_keep_previously_cached_keys() {
        let a = rsa1();
        let server = JwksServer::start(Answer::Json(jwks(&[&a.jwk]).to_string())).await;
        // Zero cooldown and zero max_age: every lookup tries to refresh.
        let cache = JwksCache::new(
            http_client(),
            server.uri.clone(),
            settings(Duration::ZERO, Duration::ZERO, 64 * 1024),
        );
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 1);

        let answers = [
            (Answer::Json("this is not json {".into()), "jwks_not_json"),
            (Answer::Json("{\"keys\": []}".into()), "jwks_invalid"),
            (
                Answer::Json(
                    "{\"keys\": [{\"kty\": \"RSA\", \"n\": \"AQAB\", \"e\": \"AQAB\"}]}".into(),
                ),
                "jwks_invalid",
            ),
            (Answer::Status(500), "jwks_bad_status"),
            (Answer::Status(404), "jwks_bad_status"),
        ];
        for (i, (answer, code)) in answers.into_iter().enumerate() {
            server.set_answer(answer);
            // A miss surfaces the fetch error...
            let err = cache
                .key_for(Algorithm::RS256, Some("rsa2"))
                .await
                .unwrap_err();
            assert_eq!(err.code(), code, "{err}");
            assert!(err.is_idp_fault());
            // ...and the cached key still works (the stale refresh failed too).
            cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
            assert_eq!(server.hits(), 1 + 2 * (i + 1));
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn server_down_keeps_cached_keys() {
        let a = rsa1();
        let server = JwksServer::start(Answer::Json(jwks(&[&a.jwk]).to_string())).await;
        let uri = server.uri.clone();
        let cache = JwksCache::new(
            http_client(),
            uri.clone(),
            settings(Duration::ZERO, Duration::ZERO, 64 * 1024),
        );
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        server.stop().await;

        let before = cache.fetch_count();
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(cache.fetch_count(), before + 1, "a refresh was attempted");
        let err = cache
            .key_for(Algorithm::RS256, Some("rsa2"))
            .await
            .unwrap_err();
        assert!(matches!(err, JwksError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "the identity provider's JWKS at {uri} did not answer: "
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn failed_fetches_respect_the_cooldown() {
        let server = JwksServer::start(Answer::Status(503)).await;
        let cache = JwksCache::new(
            http_client(),
            server.uri.clone(),
            settings(HOUR, HOUR, 64 * 1024),
        );
        let err = cache
            .key_for(Algorithm::RS256, Some("rsa1"))
            .await
            .unwrap_err();
        assert!(matches!(err, JwksError::BadStatus { status: 503, .. }));
        for _ in 0..5 {
            let err = cache
                .key_for(Algorithm::RS256, Some("rsa1"))
                .await
                .unwrap_err();
            // Nothing was ever loaded: the provider is at fault (its last error), not the kid.
            assert!(
                matches!(&err, JwksError::Unreachable { reason, .. } if reason.contains("503")),
                "{err:?}"
            );
        }
        assert_eq!(server.hits(), 1);
        server.stop().await;
    }

    #[tokio::test]
    async fn registry_shares_one_cache_per_uri() {
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa2().jwk]).to_string())).await;
        let registry = JwksRegistry::new(http_client(), settings(HOUR, HOUR, 64 * 1024));
        let one = registry.get(&server.uri);
        let two = registry.get(&server.uri);
        assert!(Arc::ptr_eq(&one, &two));
        let other = registry.get(&Url::parse("http://127.0.0.1:9/other").unwrap());
        assert!(!Arc::ptr_eq(&one, &other));

        one.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        two.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        assert_eq!(server.hits(), 1);

        // Seeding a cache that already holds keys keeps them.
        let seeded = registry
            .insert_seeded(&server.uri, &jwks(&[&rsa1().jwk]))
            .unwrap();
        assert!(Arc::ptr_eq(&seeded, &one));
        seeded
            .key_for(Algorithm::RS256, Some("rsa2"))
            .await
            .unwrap();

        // Seeding a new URI serves the seed without I/O.
        let seeded_uri = Url::parse("http://127.0.0.1:9/seeded").unwrap();
        let seeded = registry
            .insert_seeded(&seeded_uri, &jwks(&[&rsa1().jwk]))
            .unwrap();
        registry
            .get(&seeded_uri)
            .key_for(Algorithm::RS256, Some("rsa1"))
            .await
            .unwrap();
        assert_eq!(seeded.fetch_count(), 0);

        // An invalid seed is an error and registers nothing new.
        let bad_uri = Url::parse("http://127.0.0.1:9/bad").unwrap();
        assert!(registry
            .insert_seeded(&bad_uri, &json!({"keys": 1}))
            .is_err());
        assert_eq!(registry.get(&bad_uri).fetch_count(), 0);
        server.stop().await;
    }

    // ---- freshness from the answer, bounded staleness ----------------------

    fn headers(pairs: &[(&str, &str)]) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                reqwest::header::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[test]
    fn freshness_from_cache_control_expires_and_age() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = |t: SystemTime| httpdate::fmt_http_date(t);
        let at = |d: u64| date(t0 + Duration::from_secs(d));
        let before = date(t0 - Duration::from_secs(60));
        let (now, plus60, plus120) = (at(0), at(60), at(120));
        type Case<'a> = (Vec<(&'a str, &'a str)>, Option<Duration>);
        let cases: Vec<Case> = vec![
            (vec![], None),
            (vec![("content-type", "application/json")], None),
            (vec![("cache-control", "public")], None),
            (vec![("cache-control", "max-age=60")], secs(60)),
            (
                vec![("cache-control", "public, max-age=60, must-revalidate")],
                secs(60),
            ),
            (vec![("Cache-Control", "MAX-AGE=60")], secs(60)),
            (vec![("cache-control", "max-age=\"60\"")], secs(60)),
            (vec![("cache-control", "max-age = 60")], secs(60)),
            // s-maxage wins over max-age, whichever is larger and in any order.
            (
                vec![("cache-control", "max-age=3600, s-maxage=30")],
                secs(30),
            ),
            (
                vec![("cache-control", "s-maxage=300, max-age=30")],
                secs(300),
            ),
            // no-cache / no-store: refresh next time, whatever else is said.
            (vec![("cache-control", "no-cache")], secs(0)),
            (vec![("cache-control", "max-age=60, No-Store")], secs(0)),
            (
                vec![
                    ("cache-control", "s-maxage=60"),
                    ("cache-control", "no-cache"),
                ],
                secs(0),
            ),
            // Malformed values count as stale.
            (vec![("cache-control", "max-age=abc")], secs(0)),
            (vec![("cache-control", "max-age=-5")], secs(0)),
            (vec![("cache-control", "max-age")], secs(0)),
            (vec![("cache-control", "max-age=")], secs(0)),
            // The first occurrence counts; several header lines combine.
            (vec![("cache-control", "max-age=5, max-age=10")], secs(5)),
            (
                vec![("cache-control", "public"), ("cache-control", "max-age=5")],
                secs(5),
            ),
            // Absurd values saturate (and are clamped by the settings later).
            (
                vec![("cache-control", "max-age=99999999999999999999999")],
                Some(Duration::from_secs(u64::MAX)),
            ),
            // Expires, relative to the answer's Date, or to our clock.
            (vec![("date", &now), ("expires", &plus120)], secs(120)),
            (vec![("date", &plus60), ("expires", &plus120)], secs(60)),
            (vec![("expires", &plus60)], secs(60)),
            (vec![("expires", &before)], secs(0)),
            (vec![("expires", "0")], secs(0)),
            (vec![("date", "yesterday"), ("expires", &plus60)], secs(60)),
            // Cache-Control wins over Expires.
            (
                vec![("cache-control", "max-age=5"), ("expires", &plus60)],
                secs(5),
            ),
            (
                vec![("cache-control", "public"), ("expires", &plus60)],
                secs(60),
            ),
            // Age (time spent in caches on the way) is subtracted.
            (
                vec![("cache-control", "max-age=100"), ("age", "30")],
                secs(70),
            ),
            (
                vec![("cache-control", "max-age=100"), ("age", "300")],
                secs(0),
            ),
            (
                vec![("cache-control", "max-age=100"), ("age", "x")],
                secs(100),
            ),
            (vec![("expires", &plus60), ("age", "10")], secs(50)),
            (vec![("age", "10")], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                freshness_from_headers(&headers(&pairs), t0),
                expected,
                "{pairs:?}"
            );
        }
        // A header value that is not text is ignored, not fatal.
        let mut map = headers(&[("cache-control", "max-age=7")]);
        map.append(
            reqwest::header::CACHE_CONTROL,
            reqwest::header::HeaderValue::from_bytes(b"no-cache\xff").unwrap(),
        );
        assert_eq!(freshness_from_headers(&map, t0), secs(7));
    }

    #[test]
    fn freshness_is_clamped_and_never_overflows() {
        let s = JwksSettings {
            min_refresh: Duration::from_secs(10),
            max_refresh: HOUR,
            ..JwksSettings::default()
        };
        assert_eq!(s.clamp_freshness(Duration::ZERO), Duration::from_secs(10));
        assert_eq!(
            s.clamp_freshness(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert_eq!(s.clamp_freshness(Duration::MAX), HOUR);
        // Inverted bounds: max_refresh wins, no panic.
        let inverted = JwksSettings {
            min_refresh: HOUR,
            max_refresh: Duration::from_secs(10),
            ..s
        };
        assert_eq!(
            inverted.clamp_freshness(Duration::ZERO),
            Duration::from_secs(10)
        );

        // Unbounded settings do not overflow Instant arithmetic.
        let unbounded = JwksSettings {
            max_age: Duration::MAX,
            max_refresh: Duration::MAX,
            max_stale: Duration::MAX,
            ..JwksSettings::default()
        };
        let cache =
            JwksCache::with_keys(http_client(), test_uri(), unbounded, &jwks(&[&rsa1().jwk]))
                .unwrap();
        assert!(cache.fresh_until().unwrap() > Instant::now() + 365 * DAY);
        assert_eq!(
            JwksCache::new(http_client(), test_uri(), unbounded).fresh_until(),
            None
        );
    }

    fn fresh_for(cache: &JwksCache) -> Duration {
        cache
            .fresh_until()
            .expect("keys were loaded")
            .saturating_duration_since(Instant::now())
    }

    /// Sleeps until just past the cache's freshness (bounded: at most 3 s).
    async fn sleep_past_freshness(cache: &JwksCache) {
        let left = fresh_for(cache);
        assert!(left <= Duration::from_secs(3), "{left:?}");
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }

    fn assert_close(actual: Duration, expected: Duration) {
        let slack = Duration::from_millis(400);
        assert!(
            actual <= expected && actual + slack >= expected,
            "expected about {expected:?}, got {actual:?}"
        );
    }

    async fn served_with(
        header_pairs: &[(&str, &str)],
        settings: JwksSettings,
    ) -> (JwksServer, JwksCache) {
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa1().jwk]).to_string())).await;
        server.set_headers(header_pairs);
        let cache = JwksCache::new(http_client(), server.uri.clone(), settings);
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 1);
        (server, cache)
    }

    #[tokio::test]
    async fn max_age_from_the_answer_is_honoured() {
        // Configured max_age is an hour: the answer's max-age=1 must win.
        let (server, cache) = served_with(
            &[("cache-control", "public, max-age=1")],
            settings(Duration::ZERO, HOUR, 64 * 1024),
        )
        .await;
        assert_close(fresh_for(&cache), Duration::from_secs(1));
        for _ in 0..10 {
            cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        }
        assert_eq!(server.hits(), 1, "no fetch while fresh");
        sleep_past_freshness(&cache).await;
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 2, "one fetch once stale");
        assert_close(fresh_for(&cache), Duration::from_secs(1));
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 2);
        server.stop().await;
    }

    #[tokio::test]
    async fn s_maxage_wins_over_max_age() {
        let (server, cache) = served_with(
            &[("cache-control", "max-age=3600, s-maxage=1")],
            settings(Duration::ZERO, HOUR, 64 * 1024),
        )
        .await;
        assert_close(fresh_for(&cache), Duration::from_secs(1));
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 1);
        sleep_past_freshness(&cache).await;
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 2);

        // And the other way round: a long s-maxage beats a short max-age.
        server.set_headers(&[("cache-control", "max-age=1, s-maxage=600")]);
        sleep_past_freshness(&cache).await;
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 3);
        assert_close(fresh_for(&cache), Duration::from_secs(600));
        server.stop().await;
    }

    #[tokio::test]
    async fn expires_is_honoured() {
        let base = SystemTime::now();
        let date = httpdate::fmt_http_date(base);
        let expires = httpdate::fmt_http_date(base + Duration::from_secs(1));
        let (server, cache) = served_with(
            &[("date", &date), ("expires", &expires)],
            settings(Duration::ZERO, HOUR, 64 * 1024),
        )
        .await;
        assert_close(fresh_for(&cache), Duration::from_secs(1));
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 1);
        sleep_past_freshness(&cache).await;
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 2);
        server.stop().await;
    }

    #[tokio::test]
    async fn without_caching_headers_the_configured_max_age_applies() {
        let max_age = Duration::from_millis(700);
        let (server, cache) = served_with(&[], settings(Duration::ZERO, max_age, 64 * 1024)).await;
        assert_close(fresh_for(&cache), max_age);
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 1);
        sleep_past_freshness(&cache).await;
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 2);
        server.stop().await;
    }

    #[tokio::test]
    async fn answer_freshness_is_clamped_and_no_cache_means_refresh_next_time() {
        let clamped = JwksSettings {
            min_refresh: Duration::from_secs(10),
            max_refresh: Duration::from_secs(60),
            ..settings(Duration::ZERO, HOUR, 64 * 1024)
        };
        for (cache_control, expected) in [
            ("max-age=31536000", 60),
            ("max-age=0", 10),
            ("no-cache", 10),
            ("no-store, max-age=30", 10),
            ("max-age=30", 30),
        ] {
            let (server, cache) = served_with(&[("cache-control", cache_control)], clamped).await;
            assert_close(fresh_for(&cache), Duration::from_secs(expected));
            server.stop().await;
        }

        // Without a lower clamp, no-cache: the keys are used now, and the
        // next lookup refreshes.
        let (server, cache) = served_with(
            &[("cache-control", "no-cache")],
            settings(Duration::ZERO, HOUR, 64 * 1024),
        )
        .await;
        assert_eq!(fresh_for(&cache), Duration::ZERO);
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 2);
        server.stop().await;
    }

    fn stale_settings(max_age: Duration, max_stale: Duration) -> JwksSettings {
        JwksSettings {
            max_stale,
            ..settings(Duration::ZERO, max_age, 64 * 1024)
        }
    }

    #[tokio::test]
    async fn server_down_stale_keys_work_within_max_stale_and_are_refused_past_it() {
        let (max_age, max_stale) = (Duration::from_millis(400), Duration::from_millis(800));
        let (server, cache) = served_with(&[], stale_settings(max_age, max_stale)).await;
        let uri = server.uri.clone();
        let fresh_until = cache.fresh_until().unwrap();
        server.stop().await;

        // Fresh: no fetch at all.
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(cache.fetch_count(), 1);

        // Stale but within max_stale: the refresh fails, the key still works.
        sleep_past_freshness(&cache).await;
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(cache.fetch_count(), 2, "a refresh was attempted");
        assert_eq!(cache.fresh_until(), Some(fresh_until), "unchanged");
        // A miss surfaces the fetch error.
        let err = cache
            .key_for(Algorithm::RS256, Some("rsa2"))
            .await
            .unwrap_err();
        assert!(matches!(err, JwksError::Unreachable { .. }), "{err:?}");

        // Past max_stale: refused with a clear error, known kid or not.
        let past = (fresh_until + max_stale).saturating_duration_since(Instant::now());
        tokio::time::sleep(past + Duration::from_millis(50)).await;
        for kid in ["rsa1", "rsa2"] {
            let err = cache
                .key_for(Algorithm::RS256, Some(kid))
                .await
                .unwrap_err();
            let JwksError::Expired {
                uri: err_uri,
                max_stale_secs,
                last_error: Some(last_error),
                ..
            } = &err
            else {
                panic!("expected Expired, got {err:?}");
            };
            assert_eq!(err_uri, uri.as_str());
            assert_eq!(*max_stale_secs, 0);
            assert!(last_error.contains("did not answer"), "{last_error}");
            assert_eq!(err.code(), "jwks_expired");
            assert!(err.is_idp_fault());
            let text = err.to_string();
            assert!(
                text.contains(uri.as_str()) && text.contains("expired"),
                "{text}"
            );
        }
        assert_eq!(
            cache.fetch_count(),
            5,
            "each lookup retried (zero cooldown)"
        );
    }

    #[tokio::test]
    async fn expired_keys_inside_the_cooldown_are_refused_without_fetching() {
        let settings = JwksSettings {
            refetch_cooldown: HOUR,
            ..stale_settings(Duration::from_millis(200), Duration::from_millis(200))
        };
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa1().jwk]).to_string())).await;
        let cache = JwksCache::with_keys(
            http_client(),
            server.uri.clone(),
            settings,
            &jwks(&[&rsa1().jwk]),
        )
        .unwrap();
        server.set_answer(Answer::Status(503));
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Stale: one refresh (fails), the stale key is served.
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Expired, and the cooldown forbids a new attempt: refused, no fetch.
        let err = cache
            .key_for(Algorithm::RS256, Some("rsa1"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, JwksError::Expired { last_error: Some(e), .. } if e.contains("503")),
            "{err:?}"
        );
        assert_eq!(server.hits(), 1);
        server.stop().await;
    }

    #[tokio::test]
    async fn failing_refreshes_of_any_kind_hit_the_staleness_bound_and_a_success_recovers() {
        let (max_age, max_stale) = (Duration::from_millis(300), Duration::from_millis(300));
        let good = jwks(&[&rsa1().jwk]).to_string();
        let big = json!({ "keys": [rsa1().jwk], "padding": "x".repeat(8192) }).to_string();
        for (answer, code) in [
            (Answer::Status(500), "jwks_bad_status"),
            (Answer::Json("garbage {".into()), "jwks_not_json"),
            (Answer::Json("{\"keys\": []}".into()), "jwks_invalid"),
            (Answer::Json(big), "jwks_too_large"),
        ] {
            let settings = JwksSettings {
                max_bytes: 4096,
                ..stale_settings(max_age, max_stale)
            };
            let (server, cache) = served_with(&[], settings).await;
            server.set_answer(answer);
            sleep_past_freshness(&cache).await;
            cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
            let err = cache
                .key_for(Algorithm::RS256, Some("rsa2"))
                .await
                .unwrap_err();
            assert_eq!(err.code(), code, "{err}");

            tokio::time::sleep(max_stale + Duration::from_millis(50)).await;
            let err = cache
                .key_for(Algorithm::RS256, Some("rsa1"))
                .await
                .unwrap_err();
            assert_eq!(err.code(), "jwks_expired", "{err}");

            // The IdP recovers: the next lookup refreshes and succeeds.
            server.set_answer(Answer::Json(good.clone()));
            cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
            assert_close(fresh_for(&cache), max_age);
            server.stop().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stale_keys_are_served_at_once_while_one_slow_refresh_runs() {
        let (a, b) = (rsa1(), rsa2());
        let server = JwksServer::start(Answer::Json(jwks(&[&a.jwk, &b.jwk]).to_string())).await;
        let cache = Arc::new(
            JwksCache::with_keys(
                http_client(),
                server.uri.clone(),
                stale_settings(Duration::from_millis(100), HOUR),
                &jwks(&[&a.jwk]),
            )
            .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        server.set_delay(Duration::from_millis(1500));

        // One caller starts the (slow) refresh...
        let trigger = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .key_for(Algorithm::RS256, Some("rsa1"))
                    .await
                    .map(|_| ())
            })
        };
        for _ in 0..200 {
            if server.hits() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(server.hits(), 1);

        // ...meanwhile 50 callers with the stale key get it without waiting,
        // and 50 callers with the new kid wait for that same fetch.
        let mut quick = Vec::new();
        let mut waiting = Vec::new();
        for _ in 0..50 {
            let c = Arc::clone(&cache);
            quick.push(tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_millis(500),
                    c.key_for(Algorithm::RS256, Some("rsa1")),
                )
                .await
                .map(|r| r.map(|_| ()))
            }));
            let c = Arc::clone(&cache);
            waiting.push(tokio::spawn(async move {
                c.key_for(Algorithm::RS256, Some("rsa2")).await.map(|_| ())
            }));
        }
        for task in quick {
            task.await
                .unwrap()
                .expect("served from the stale set, not after the refresh")
                .unwrap();
        }
        for task in waiting {
            task.await.unwrap().unwrap();
        }
        trigger.await.unwrap().unwrap();
        assert_eq!(server.hits(), 1);
        assert_eq!(cache.fetch_count(), 1);
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_lookups_of_a_new_kid_on_a_stale_set_cause_exactly_one_fetch() {
        let (a, b) = (rsa1(), rsa2());
        let server = JwksServer::start(Answer::Json(jwks(&[&a.jwk, &b.jwk]).to_string())).await;
        server.set_headers(&[("cache-control", "max-age=600")]);
        server.set_delay(Duration::from_millis(300));
        let cache = Arc::new(
            JwksCache::with_keys(
                http_client(),
                server.uri.clone(),
                stale_settings(Duration::ZERO, HOUR),
                &jwks(&[&a.jwk]),
            )
            .unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..50 {
            let cache = Arc::clone(&cache);
            let kid = if i % 2 == 0 { "rsa2" } else { "rsa1" };
            tasks.push(tokio::spawn(async move {
                cache.key_for(Algorithm::RS256, Some(kid)).await.map(|_| ())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(server.hits(), 1);
        assert_eq!(cache.fetch_count(), 1);
        assert_close(fresh_for(&cache), Duration::from_secs(600));
        server.stop().await;
    }
}
