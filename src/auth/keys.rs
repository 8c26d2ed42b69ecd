//! The service's own signing keys in memory: the active key that signs, and every published
//! public key by kid for verification. Reloaded from the database when a kid is unknown (a
//! rotation by `orgsso keys rotate` or another instance) and periodically for the JWKS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;

use crate::crypto::SecretBox;
use crate::jwt::signing::{jwks_document, SigningKey};
use crate::store::{SigningKeyRow, Store, StoreError};

#[derive(Default)]
struct KeySet {
    active: Option<Arc<SigningKey>>,
    verify: HashMap<String, Arc<DecodingKey>>,
    jwks: serde_json::Value,
}

pub struct OwnKeys {
    set: RwLock<Arc<KeySet>>,
    loaded: Mutex<Option<Instant>>,
    /// Retired keys stay published this long (the longest token lifetime plus leeway).
    keep_secs: i64,
}

/// At most one reload per this interval, however many unknown kids arrive.
const RELOAD_COOLDOWN: Duration = Duration::from_secs(1);
/// The JWKS and the active key are re-read at least this often.
const REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored signing key is unusable: {0}")]
    Corrupt(String),
}

impl OwnKeys {
    pub fn new(keep_secs: i64) -> Self {
        OwnKeys {
            set: RwLock::new(Arc::new(KeySet::default())),
            loaded: Mutex::new(None),
            keep_secs,
        }
    }

    /// Creates the first signing key when there is none (first start), then loads the keys.
    pub async fn ensure_initial(
        &self,
        store: &Store,
        secrets: &SecretBox,
        now: i64,
    ) -> Result<(), KeyError> {
        if store
            .published_signing_keys(now, self.keep_secs)
            .await?
            .iter()
            .all(|k| k.retired_at.is_some())
        {
            let row = new_key_row(secrets, now);
            if store.insert_first_signing_key(&row).await? {
                tracing::info!(kid = %row.kid, "created the service's first signing key (ES256)");
            }
        }
        self.reload(store, secrets, now).await
    }

    pub async fn reload(
        &self,
        store: &Store,
        secrets: &SecretBox,
        now: i64,
    ) -> Result<(), KeyError> {
        let rows = store.published_signing_keys(now, self.keep_secs).await?;
        let mut set = KeySet::default();
        let mut jwks = Vec::new();
        for row in &rows {
            let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk)
                .map_err(|e| KeyError::Corrupt(e.to_string()))?;
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())
                .map_err(|e| KeyError::Corrupt(e.to_string()))?;
            let key =
                DecodingKey::from_jwk(&parsed).map_err(|e| KeyError::Corrupt(e.to_string()))?;
            set.verify.insert(row.kid.clone(), Arc::new(key));
            jwks.push(jwk);
            if row.retired_at.is_none() {
                let pem = secrets
                    .decrypt(&row.private_enc, &row.kid)
                    .map_err(|e| KeyError::Corrupt(e.to_string()))?;
                let key = SigningKey::from_pkcs8_pem(pem.expose())
                    .map_err(|e| KeyError::Corrupt(e.to_string()))?;
                set.active = Some(Arc::new(key));
            }
        }
        set.jwks = jwks_document(&jwks);
        *self.set.write().expect("keys lock") = Arc::new(set);
        *self.loaded.lock().expect("keys lock") = Some(Instant::now());
        Ok(())
    }

    /// Forces a reload at the next use (a rotation elsewhere).
    pub fn mark_stale(&self) {
        *self.loaded.lock().expect("keys lock") = None;
    }

    fn current(&self) -> Arc<KeySet> {
        self.set.read().expect("keys lock").clone()
    }

    fn loaded_within(&self, d: Duration) -> bool {
        self.loaded
            .lock()
            .expect("keys lock")
            .is_some_and(|t| t.elapsed() < d)
    }

    async fn refresh_if_older(
        &self,
        d: Duration,
        store: &Store,
        secrets: &SecretBox,
        now: i64,
    ) -> Result<(), KeyError> {
        if !self.loaded_within(d) {
            self.reload(store, secrets, now).await?;
        }
        Ok(())
    }

    /// The key that signs now (re-read at least every 30 s, so a rotation elsewhere is picked up).
    pub async fn signing_key(
        &self,
        store: &Store,
        secrets: &SecretBox,
        now: i64,
    ) -> Result<Arc<SigningKey>, KeyError> {
        self.refresh_if_older(REFRESH, store, secrets, now).await?;
        self.current()
            .active
            .clone()
            .ok_or_else(|| KeyError::Corrupt("no active signing key".into()))
    }

    /// The published key with this kid; an unknown kid reloads at most once per second.
    pub async fn verify_key(
        &self,
        kid: &str,
        store: &Store,
        secrets: &SecretBox,
        now: i64,
    ) -> Result<Option<Arc<DecodingKey>>, KeyError> {
        if let Some(k) = self.current().verify.get(kid) {
            return Ok(Some(k.clone()));
        }
        self.refresh_if_older(RELOAD_COOLDOWN, store, secrets, now)
            .await?;
        Ok(self.current().verify.get(kid).cloned())
    }

    /// Whether `kid` names one of our keys, without I/O (routing a bearer token).
    pub fn knows(&self, kid: &str) -> bool {
        self.current().verify.contains_key(kid)
    }

    pub async fn jwks(
        &self,
        store: &Store,
        secrets: &SecretBox,
        now: i64,
    ) -> Result<serde_json::Value, KeyError> {
        self.refresh_if_older(REFRESH, store, secrets, now).await?;
        Ok(self.current().jwks.clone())
    }
}

/// A fresh ES256 key as a row, its private key encrypted and bound to its kid.
pub fn new_key_row(secrets: &SecretBox, now: i64) -> SigningKeyRow {
    let (key, pem) = SigningKey::generate_es256();
    SigningKeyRow {
        private_enc: secrets.encrypt(pem.expose(), &key.kid),
        kid: key.kid.clone(),
        alg: "ES256".into(),
        public_jwk: key.public_jwk().to_string(),
        created_at: now,
        retired_at: None,
    }
}
