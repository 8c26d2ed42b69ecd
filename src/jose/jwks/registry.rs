//! [`JwksRegistry`]: one [`JwksCache`] per `jwks_uri` for the whole process, so every
//! connection and jwk_url secret naming the same URI shares its keys and its fetch cooldown.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};

use serde_json::Value;
use url::Url;

use super::parse::parse_jwks;
use super::{JwksCache, JwksError, JwksSettings};
use crate::outbound::{Egress, Outbound};

/// All [`JwksCache`]s of the process, keyed by `jwks_uri`, so every
/// connection that uses the same identity provider shares one cache (and one
/// fetch cooldown).
pub struct JwksRegistry {
    outbound: Outbound,
    settings: JwksSettings,
    /// Keyed by who supplied the URL too: an org admin's fetches of a URL are pinned to public
    /// addresses even when the operator uses the same URL unpinned.
    caches: StdMutex<HashMap<(Url, Egress), Arc<JwksCache>>>,
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
    pub fn new(outbound: Outbound, settings: JwksSettings) -> Self {
        Self {
            outbound,
            settings,
            caches: StdMutex::new(HashMap::new()),
        }
    }

    /// The shared cache for `uri` as supplied by `egress`'s caller, created (empty, no I/O)
    /// on first use; it fetches through that caller's client.
    pub fn get(&self, uri: &Url, egress: Egress) -> Arc<JwksCache> {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(caches.entry((uri.clone(), egress)).or_insert_with(|| {
            Arc::new(JwksCache::new(
                self.outbound.http(egress).clone(),
                uri.clone(),
                self.settings,
            ))
        }))
    }

    /// Seeds the cache for `uri` with an already downloaded key set (fetched at connect) and
    /// returns it. The seed replaces whatever was cached: it was fetched just now, so a
    /// reconnect repairs a cache that went stale behind the provider's rotation. An invalid
    /// seed is an error and leaves the registry untouched.
    pub fn insert_seeded(
        &self,
        uri: &Url,
        egress: Egress,
        jwks_json: &Value,
    ) -> Result<Arc<JwksCache>, JwksError> {
        let keys = parse_jwks(uri, jwks_json)?;
        let cache = self.get(uri, egress);
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
        let registry = JwksRegistry::new(outbound(), settings(HOUR, HOUR, 64 * 1024));
        let one = registry.get(&server.uri, Egress::Any);
        let two = registry.get(&server.uri, Egress::Any);
        assert!(Arc::ptr_eq(&one, &two));
        let other = registry.get(
            &Url::parse("http://127.0.0.1:9/other").unwrap(),
            Egress::Any,
        );
        assert!(!Arc::ptr_eq(&one, &other));

        one.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        two.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        assert_eq!(server.hits(), 1);

        // Seeding a cache that already holds keys replaces them; a kid only the IdP serves
        // is still fetched at once.
        let seeded = registry
            .insert_seeded(&server.uri, Egress::Any, &jwks(&[&rsa1().jwk]))
            .unwrap();
        assert!(Arc::ptr_eq(&seeded, &one));
        seeded
            .key_for(Algorithm::RS256, Some("rsa2"))
            .await
            .unwrap();

        // Seeding a new URI serves the seed without I/O.
        let seeded_uri = Url::parse("http://127.0.0.1:9/seeded").unwrap();
        let seeded = registry
            .insert_seeded(&seeded_uri, Egress::Any, &jwks(&[&rsa1().jwk]))
            .unwrap();
        registry
            .get(&seeded_uri, Egress::Any)
            .key_for(Algorithm::RS256, Some("rsa1"))
            .await
            .unwrap();
        assert_eq!(seeded.fetch_count(), 0);

        // An invalid seed is an error and registers nothing new.
        let bad_uri = Url::parse("http://127.0.0.1:9/bad").unwrap();
        assert!(registry
            .insert_seeded(&bad_uri, Egress::Any, &json!({"keys": 1}))
            .is_err());
        assert_eq!(registry.get(&bad_uri, Egress::Any).fetch_count(), 0);
        server.stop().await;
    }

    // ---- freshness from the answer, bounded staleness ----------------------

    #[tokio::test]
    async fn a_seed_replaces_a_stale_cache_and_forgets_unknown_kids() {
        // The IdP re-keyed to rsa2; the cache still holds rsa1 and has been told (by a token)
        // that rsa2 is unknown, e.g. a probe before the IdP published it.
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa1().jwk]).to_string())).await;
        let registry = JwksRegistry::new(outbound(), settings(HOUR, HOUR, 64 * 1024));
        let cache = registry.get(&server.uri, Egress::Any);
        cache.key_for(Algorithm::RS256, Some("rsa1")).await.unwrap();
        assert!(cache.key_for(Algorithm::RS256, Some("rsa2")).await.is_err());
        let fetched = server.hits();
        // Reconnecting downloads the new set at connect: it replaces the cached one.
        server.set_answer(Answer::Json(jwks(&[&rsa2().jwk]).to_string()));
        registry
            .insert_seeded(&server.uri, Egress::Any, &jwks(&[&rsa2().jwk]))
            .unwrap();
        cache.key_for(Algorithm::RS256, Some("rsa2")).await.unwrap();
        cache.key_for(Algorithm::RS256, None).await.unwrap();
        assert!(cache.key_for(Algorithm::RS256, Some("rsa1")).await.is_err());
        assert_eq!(server.hits(), fetched + 1, "only the rsa1 miss fetched");
        server.stop().await;
    }

    #[tokio::test]
    async fn an_org_admins_url_is_pinned_at_every_fetch() {
        // The operator's cache of a URL on 127.0.0.1 fetches; an org admin's cache of the same
        // URL is its own, and refuses before connecting, even after a seed.
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa2().jwk]).to_string())).await;
        let registry = JwksRegistry::new(outbound(), settings(HOUR, HOUR, 64 * 1024));
        let operator = registry.get(&server.uri, Egress::Any);
        let org_admin = registry.get(&server.uri, Egress::PublicOnly);
        assert!(!Arc::ptr_eq(&operator, &org_admin));
        operator
            .key_for(Algorithm::RS256, Some("rsa2"))
            .await
            .unwrap();
        assert_eq!(server.hits(), 1);
        let seeded = registry
            .insert_seeded(&server.uri, Egress::PublicOnly, &jwks(&[&rsa1().jwk]))
            .unwrap();
        let e = seeded
            .key_for(Algorithm::RS256, Some("rsa2"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("127.0.0.1 is a private or local address"), "{e}");
        assert_eq!(server.hits(), 1, "no request reached the server");
        server.stop().await;
    }
}
