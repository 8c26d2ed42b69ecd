//! [`JwksRegistry`]: one [`JwksCache`] per `jwks_uri` for the whole process, so every
//! connection and jwk_url secret naming the same URI shares its keys and its fetch cooldown.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};

use serde_json::Value;
use url::Url;

use super::parse::parse_jwks;
use super::{JwksCache, JwksError, JwksSettings};

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

    /// Seeds the cache for `uri` with an already downloaded key set (fetched at connect) and
    /// returns it. The seed replaces whatever was cached: it was fetched just now, so a
    /// reconnect repairs a cache that went stale behind the provider's rotation. An invalid
    /// seed is an error and leaves the registry untouched.
    pub fn insert_seeded(&self, uri: &Url, jwks_json: &Value) -> Result<Arc<JwksCache>, JwksError> {
        let keys = parse_jwks(uri, jwks_json)?;
        let cache = self.get(uri);
        cache.replace_keys(keys);
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::*;
    use crate::test_support::idp_keys::*;
    use crate::test_support::jwks_server::{settings, Answer, JwksServer, HOUR};

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

        // Seeding a cache that already holds keys replaces them; a kid only the IdP serves
        // is still fetched at once.
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

    #[tokio::test]
    async fn a_seed_replaces_a_stale_cache_and_forgets_unknown_kids() {
        // The IdP re-keyed to rsa2; the cache still holds rsa1 and has been told (by a token)
        // that rsa2 is unknown, e.g. a probe before the IdP published it.
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa1().jwk]).to_string())).await;
        let registry = JwksRegistry::new(http_client(), settings(HOUR, HOUR, 64 * 1024));
        let cache = registry.get(&server.uri);
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert!(cache.key_for(Algorithm::RS256, Some("rsa2")).await.is_err());
        let fetched = server.hits();
        // Reconnecting downloads the new set at connect: it replaces the cached one.
        server.set_answer(Answer::Json(jwks(&[&rsa2().jwk]).to_string()));
        registry
            .insert_seeded(&server.uri, &jwks(&[&rsa2().jwk]))
            .unwrap();
        cache.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        cache.key_for(Algorithm::RS256, None).await.unwrap();
        assert!(cache.key_for(Algorithm::RS256, Some("rsa1")).await.is_err());
        assert_eq!(server.hits(), fetched + 1, "only the rsa1 miss fetched");
        server.stop().await;
    }
}
