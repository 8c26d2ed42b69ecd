//! [`JwksCache`]: the key set of one `jwks_uri`, fetched lazily, refreshed by freshness or on a
//! `kid` miss (see [`super::refetch`] for when: a floor per URL for kids not seen before, a
//! per-kid memory of unknown kids, a cooldown for stale sets; one fetch in flight), and kept
//! working through failed refreshes for a bounded staleness.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;
use url::Url;

use super::freshness::{freshness_from_headers, instant_after};
use super::parse::parse_jwks;
use super::refetch::{may_fetch, LastAttempt, Need, UnknownKids};
use super::{JwksError, JwksSettings};
use crate::jose::keys::{CachedKey, KeySet, Lookup};
use crate::outbound::Http;
use crate::telemetry::metrics::JwksCounters;

/// Upper bound on one fetch (connect + headers + body), on top of whatever
/// timeout the client has, so a stuck IdP can never hold the
/// fetch lock forever.
const FETCH_HARD_TIMEOUT: Duration = Duration::from_secs(60);

struct FetchState {
    /// The most recent fetch attempt (successful or not): when it started, whether it failed.
    last_attempt: Option<LastAttempt>,
    /// Message of the most recent fetch attempt if it failed (`None` after a
    /// success), for [`JwksError::Expired`].
    last_error: Option<String>,
}

type FetchGuard = tokio::sync::OwnedMutexGuard<FetchState>;

/// Everything a background fetch needs (shared with the fetch task so the
/// fetch completes even if the caller that started it is cancelled, e.g. by
/// a request timeout).
struct Inner {
    http: Http,
    uri: Url,
    settings: JwksSettings,
    keys: RwLock<Arc<KeySet>>,
    fetch: Arc<tokio::sync::Mutex<FetchState>>,
    /// Key ids a recent fetch lacked (read without waiting for a fetch in flight).
    unknown: StdMutex<UnknownKids>,
    fetches: AtomicU64,
    /// Fetches, failures and stale-key uses of this URL's host, for the metrics.
    counters: JwksCounters,
}

/// Cached, lazily (re)fetched key set of one `jwks_uri`. Share it as
/// `Arc<JwksCache>` (see [`JwksRegistry`]); all methods take `&self`.
///
/// [`JwksRegistry`]: super::JwksRegistry
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
    pub fn new(http: Http, jwks_uri: Url, settings: JwksSettings) -> Self {
        let counters = JwksCounters::for_host(jwks_uri.host_str().unwrap_or("none"));
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
                unknown: StdMutex::new(UnknownKids::default()),
                fetches: AtomicU64::new(0),
                counters,
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
        http: Http,
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

    /// Installs `keys` (downloaded elsewhere, e.g. at connect) in place of whatever is cached,
    /// like [`JwksCache::with_keys`]: loaded now, not counted as a fetch, and what was
    /// remembered about unknown key ids is forgotten (it described the old set).
    pub(super) fn replace_keys(&self, keys: Vec<CachedKey>) {
        let inner = &self.inner;
        inner.store(inner.key_set(keys, None));
        inner.unknown().clear();
        // A fetch in flight keeps its own record; it will store an answer at least as new.
        if let Ok(mut state) = inner.fetch.try_lock() {
            state.last_attempt = None;
            state.last_error = None;
        }
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

    /// For a token whose key was chosen without a `kid` (the single fitting key) and whose
    /// signature did not verify with it, as when the provider re-keyed: refetches the key set
    /// once (single flight; at most once per floor after a successful fetch, once per cooldown
    /// after a failed one) unless a fetch started after `since` (when the caller looked the
    /// key up) already. Returns whether a key set newer than `since` is now cached, i.e.
    /// whether looking the key up and verifying again is worth it.
    pub async fn refresh_after_bad_signature(&self, since: Instant) -> bool {
        let inner = &self.inner;
        let mut state = Arc::clone(&inner.fetch).lock_owned().await;
        if let Some(last) = state.last_attempt.filter(|l| l.at >= since) {
            return !last.failed;
        }
        let now = Instant::now();
        if !may_fetch(state.last_attempt, Need::Miss, now, &inner.settings) {
            return false;
        }
        state.last_attempt = Some(LastAttempt {
            at: now,
            failed: false,
        });
        match Inner::refresh(inner, state).await {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(
                    jwks_uri = %inner.uri,
                    error = %err,
                    error_code = err.code(),
                    "refetching the identity provider's JWKS after a signature failure failed"
                );
                false
            }
        }
    }

    /// The key that verifies a token whose header has this `alg` and `kid`.
    ///
    /// Only keys whose type fits `alg` are considered (RSA for RS*/PS*, EC
    /// P-256 for ES256, EC P-384 for ES384, OKP Ed25519 for EdDSA), and whose
    /// JWK `alg`, `use` and `key_ops` (when present) allow it. With a `kid`:
    /// the key with that kid; without: the single fitting key.
    ///
    /// On a miss or an empty cache the set is refetched at once unless the
    /// `kid` is remembered as unknown (a fetch lacked it within the cooldown)
    /// or the last fetch was less than a floor ago; a set past its freshness
    /// is refreshed at most once per cooldown. One fetch is in flight at a
    /// time: concurrent callers that miss wait for it, then re-check (and are
    /// answered by it); callers whose key is in the stale set get it at once.
    /// When that fetch fails, still-cached keys keep working up to
    /// `max_stale` past their freshness, after which [`JwksError::Expired`] is
    /// returned; the fetch error itself is returned only if the key is not
    /// cached at all.
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
        let started = Instant::now();
        let set = inner.snapshot();
        let lookup = set.lookup(alg, kid);
        let found = !matches!(lookup, Lookup::NotFound);
        if found && set.is_fresh(started) {
            return inner.resolve(lookup, alg, kid);
        }
        // A kid a recent fetch lacked: refused at once, without waiting for any fetch.
        if !found
            && set.is_usable(started)
            && kid.is_some_and(|k| {
                inner
                    .unknown()
                    .is_unknown(k, started, inner.settings.refetch_cooldown)
            })
        {
            return Err(inner.no_key(alg, kid));
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
        let missing = matches!(lookup, Lookup::NotFound);
        if set.is_fresh(now) && !missing {
            return inner.resolve(lookup, alg, kid);
        }
        // A fetch that started after this lookup did has answered it (single flight).
        let answered = state.last_attempt.filter(|l| l.at >= started);
        let need = if missing { Need::Miss } else { Need::Stale };
        if answered.is_some() || !may_fetch(state.last_attempt, need, now, &inner.settings) {
            if let (Some(last), true, Some(kid)) = (answered, missing, kid) {
                if !last.failed && set.loaded_at.is_some() {
                    inner.remember_unknown(kid, last.at);
                }
            }
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
            // Past freshness because the last refresh failed: what the stale alert watches.
            if !missing && !set.is_fresh(now) && state.last_error.is_some() {
                inner.counters.stale_uses.increment(1);
            }
            return inner.resolve(lookup, alg, kid);
        }
        state.last_attempt = Some(LastAttempt {
            at: now,
            failed: false,
        });

        match Inner::refresh(inner, state).await {
            Ok(new_set) => {
                let lookup = new_set.lookup(alg, kid);
                if let (Lookup::NotFound, Some(kid)) = (&lookup, kid) {
                    inner.remember_unknown(kid, now);
                }
                inner.resolve(lookup, alg, kid)
            }
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
                    other => {
                        inner.counters.stale_uses.increment(1);
                        inner.resolve(other, alg, kid)
                    }
                }
            }
        }
    }
}

impl Inner {
    fn unknown(&self) -> std::sync::MutexGuard<'_, UnknownKids> {
        self.unknown.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember_unknown(&self, kid: &str, fetched_at: Instant) {
        self.unknown()
            .remember(kid, fetched_at, self.settings.refetch_cooldown);
    }

    /// Runs one fetch in a spawned task that owns the fetch lock (`state`), so the lock is
    /// released only once the new key set is stored or the fetch has failed, even if the
    /// caller is cancelled. The caller has set `state.last_attempt`.
    async fn refresh(inner: &Arc<Inner>, mut state: FetchGuard) -> Result<Arc<KeySet>, JwksError> {
        let task_inner = Arc::clone(inner);
        let refresh = async move {
            let result = task_inner.fetch_keys().await.map(|(keys, lifetime)| {
                let new_set = Arc::new(task_inner.key_set(keys, lifetime));
                task_inner.store(Arc::clone(&new_set));
                new_set
            });
            state.last_error = result.as_ref().err().map(ToString::to_string);
            if result.is_err() {
                task_inner.counters.failures.increment(1);
            }
            if let (Err(_), Some(last)) = (&result, state.last_attempt.as_mut()) {
                last.failed = true;
            }
            drop(state);
            result
        };
        match tokio::runtime::Handle::try_current() {
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
        }
    }

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
        self.counters.fetches.increment(1);
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
        let request = self.http.get(self.uri.clone()).header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        );
        let response = self
            .http
            .send(request)
            .await
            .map_err(|reason| JwksError::Unreachable { uri: uri(), reason })?;
        let status = response.status();
        if !status.is_success() {
            return Err(JwksError::BadStatus {
                uri: uri(),
                status: status.as_u16(),
            });
        }
        let lifetime = freshness_from_headers(response.headers(), SystemTime::now());
        let body = crate::outbound::read_limited(response, self.settings.max_bytes)
            .await
            .map_err(|e| match e {
                crate::outbound::BodyError::TooLarge(limit) => {
                    JwksError::TooLarge { uri: uri(), limit }
                }
                crate::outbound::BodyError::Read(reason) => {
                    JwksError::Unreachable { uri: uri(), reason }
                }
            })?;
        let doc = serde_json::from_slice(&body).map_err(|e| JwksError::NotJson {
            uri: uri(),
            reason: e.to_string(),
        })?;
        Ok((doc, lifetime))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::idp_keys::*;
    use crate::test_support::jwks_server::{settings, Answer, JwksServer, HOUR};

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
        // Installed before the cache registers its counters (other tests share the host).
        crate::telemetry::metrics::install();
        let counted = |name: &str| {
            crate::telemetry::metrics::value_of(&format!("{name}{{host=\"127.0.0.1\"}}"))
        };
        let (stale_before, failed_before) = (
            counted(crate::telemetry::metrics::JWKS_STALE_KEY_USES),
            counted(crate::telemetry::metrics::JWKS_FETCH_FAILURES),
        );
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
        // Both counted for the stale-keys alert.
        assert!(counted(crate::telemetry::metrics::JWKS_STALE_KEY_USES) > stale_before);
        assert!(counted(crate::telemetry::metrics::JWKS_FETCH_FAILURES) > failed_before);
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

    // ---- per-kid memory, the floor, signature-failure refetch ---------------

    fn floor_settings(floor: Duration) -> JwksSettings {
        JwksSettings {
            refetch_floor: floor,
            ..settings(HOUR, HOUR, 64 * 1024)
        }
    }

    fn is_no_key(result: &Result<Arc<DecodingKey>, JwksError>) -> bool {
        matches!(result, Err(JwksError::NoMatchingKey { .. }))
    }

    #[tokio::test]
    async fn a_rotation_right_after_an_unknown_kid_is_followed() {
        let (a, b) = (rsa1(), rsa2());
        let server = JwksServer::start(Answer::Json(jwks(&[&a.jwk]).to_string())).await;
        let floor = Duration::from_millis(100);
        let cache = JwksCache::with_keys(
            http_client(),
            server.uri.clone(),
            floor_settings(floor),
            &jwks(&[&a.jwk]),
        )
        .unwrap();
        // An invented kid: one fetch, then it is remembered: repeating it costs nothing.
        for _ in 0..5 {
            assert!(is_no_key(
                &cache.key_for(Algorithm::RS256, Some("bogus")).await
            ));
        }
        assert_eq!(server.hits(), 1);
        // The IdP re-keys well inside the hour-long cooldown: the new kid is fetched at once
        // (the floor has passed), where a per-URL cooldown refused it for the whole hour.
        server.set_answer(Answer::Json(jwks(&[&b.jwk]).to_string()));
        tokio::time::sleep(floor + Duration::from_millis(50)).await;
        cache.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        assert_eq!(server.hits(), 2);
        // The bogus kid is still known to be unknown.
        assert!(is_no_key(
            &cache.key_for(Algorithm::RS256, Some("bogus")).await
        ));
        assert_eq!(server.hits(), 2);
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_storm_of_invented_kids_costs_one_fetch_per_floor() {
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa1().jwk]).to_string())).await;
        let floor = Duration::from_millis(300);
        let cache = Arc::new(JwksCache::new(
            http_client(),
            server.uri.clone(),
            floor_settings(floor),
        ));
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits(), 1);

        // 300 different invented kids one after another.
        let started = Instant::now();
        for i in 0..300 {
            let kid = format!("invented-{i}");
            assert!(is_no_key(
                &cache.key_for(Algorithm::RS256, Some(&kid)).await
            ));
        }
        let floors = (started.elapsed().as_millis() / floor.as_millis()) as usize;
        assert!(
            server.hits() - 1 <= floors + 1,
            "{} fetches in {} floors",
            server.hits() - 1,
            floors
        );

        // 50 concurrent invented kids once the floor passed: one fetch answers them all.
        tokio::time::sleep(floor).await;
        let before = server.hits();
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move {
                    let kid = format!("concurrent-{i}");
                    is_no_key(&cache.key_for(Algorithm::RS256, Some(&kid)).await)
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap());
        }
        assert_eq!(server.hits() - before, 1);
        // The known key is still served without a fetch.
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert_eq!(server.hits() - before, 1);
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signature_failure_refetches_once_with_single_flight_and_the_floor() {
        let (a, b) = (rsa1(), rsa2());
        let server = JwksServer::start(Answer::Json(jwks(&[&b.jwk]).to_string())).await;
        server.set_delay(Duration::from_millis(100));
        let floor = Duration::from_millis(200);
        let cache = Arc::new(
            JwksCache::with_keys(
                http_client(),
                server.uri.clone(),
                floor_settings(floor),
                &jwks(&[&a.jwk]),
            )
            .unwrap(),
        );
        // 20 callers whose kid-less signature failed at the same time: one fetch, all retry.
        let since = Instant::now();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move { cache.refresh_after_bad_signature(since).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap(), "a newer key set is there: retry");
        }
        assert_eq!(server.hits(), 1);
        cache.key_for(Algorithm::RS256, None).await.unwrap();
        assert!(is_no_key(
            &cache.key_for(Algorithm::RS256, Some("rsa1")).await
        ));

        // Another failure inside the floor: no fetch, no retry.
        assert!(!cache.refresh_after_bad_signature(Instant::now()).await);
        assert_eq!(server.hits(), 1);
        // After the floor: one more fetch.
        tokio::time::sleep(floor + Duration::from_millis(20)).await;
        assert!(cache.refresh_after_bad_signature(Instant::now()).await);
        assert_eq!(server.hits(), 2);
        // A failed fetch says "no retry", and the next attempt waits the (hour) cooldown.
        server.set_answer(Answer::Status(503));
        tokio::time::sleep(floor + Duration::from_millis(20)).await;
        assert!(!cache.refresh_after_bad_signature(Instant::now()).await);
        assert_eq!(server.hits(), 3);
        tokio::time::sleep(floor + Duration::from_millis(20)).await;
        assert!(!cache.refresh_after_bad_signature(Instant::now()).await);
        assert_eq!(server.hits(), 3);
        // The keys fetched before keep working.
        cache.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        server.stop().await;
    }
}
