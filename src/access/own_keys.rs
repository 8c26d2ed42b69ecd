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
struct Loaded {
    at: Option<Instant>,
    /// Bumped by `mark_stale`: a reload that read before the mark does not count as fresh.
    stale_marks: u64,
    /// Reloads finished, and why the last one failed: callers that waited for a failed reload
    /// share its error instead of queueing to fail one after another (database outage).
    attempts: u64,
    failure: Option<KeyError>,
}

impl Loaded {
    fn within(&self, d: Duration) -> bool {
        self.at.is_some_and(|t| t.elapsed() < d)
    }
}

#[derive(Default)]
struct LoadedKeys {
    active: Option<Arc<SigningKey>>,
    verify: HashMap<String, Arc<DecodingKey>>,
    jwks: serde_json::Value,
}

pub struct OwnKeys {
    set: RwLock<Arc<LoadedKeys>>,
    loaded: Mutex<Loaded>,
    /// Reloads one at a time: concurrent misses wait and then find the keys fresh.
    reloading: tokio::sync::Mutex<()>,
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
    /// What waiters see of a reload that failed while they waited.
    #[error("reloading the signing keys failed: {0}")]
    ReloadFailed(String),
}

impl KeyError {
    fn shared(&self) -> KeyError {
        match self {
            KeyError::Store(StoreError::Unavailable(m)) => {
                KeyError::Store(StoreError::Unavailable(m.clone()))
            }
            KeyError::ReloadFailed(m) => KeyError::ReloadFailed(m.clone()),
            other => KeyError::ReloadFailed(other.to_string()),
        }
    }
}

impl OwnKeys {
    pub fn new(keep_secs: i64) -> Self {
        OwnKeys {
            set: RwLock::new(Arc::new(LoadedKeys::default())),
            loaded: Mutex::new(Loaded::default()),
            reloading: tokio::sync::Mutex::new(()),
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
        let _reloading = self.reloading.lock().await;
        self.load(store, secrets, now).await
    }

    /// Reads the keys; the caller holds `reloading`.
    async fn load(&self, store: &Store, secrets: &SecretBox, now: i64) -> Result<(), KeyError> {
        let marks = self.loaded.lock().expect("keys lock").stale_marks;
        let result = self.read(store, secrets, now).await;
        let mut loaded = self.loaded.lock().expect("keys lock");
        loaded.attempts += 1;
        loaded.failure = result.as_ref().err().map(KeyError::shared);
        if result.is_ok() && loaded.stale_marks == marks {
            loaded.at = Some(Instant::now());
        }
        result
    }

    async fn read(&self, store: &Store, secrets: &SecretBox, now: i64) -> Result<(), KeyError> {
        let rows = store.published_signing_keys(now, self.keep_secs).await?;
        let mut set = LoadedKeys::default();
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
        Ok(())
    }

    /// Forces a reload at the next use (a rotation elsewhere).
    pub fn mark_stale(&self) {
        let mut loaded = self.loaded.lock().expect("keys lock");
        loaded.at = None;
        loaded.stale_marks += 1;
    }

    fn current(&self) -> Arc<LoadedKeys> {
        self.set.read().expect("keys lock").clone()
    }

    fn loaded_within(&self, d: Duration) -> bool {
        self.loaded.lock().expect("keys lock").within(d)
    }

    async fn refresh_if_older(
        &self,
        d: Duration,
        store: &Store,
        secrets: &SecretBox,
        now: i64,
    ) -> Result<(), KeyError> {
        if self.loaded_within(d) {
            return Ok(());
        }
        let attempts = self.loaded.lock().expect("keys lock").attempts;
        let _reloading = self.reloading.lock().await;
        // Checked again: whoever held the lock may just have reloaded.
        {
            let loaded = self.loaded.lock().expect("keys lock");
            if loaded.within(d) {
                return Ok(());
            }
            if loaded.attempts != attempts {
                if let Some(f) = &loaded.failure {
                    return Err(f.shared());
                }
            }
        }
        self.load(store, secrets, now).await
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

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::*;
    use crate::store::{Db, PoolSettings};

    async fn setup() -> (Arc<OwnKeys>, Store, SecretBox) {
        let pool = PoolSettings {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        };
        let store = Store::connect("sqlite::memory:", &pool).await.unwrap();
        store.migrate().await.unwrap();
        let secrets = SecretBox::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        let keys = Arc::new(OwnKeys::new(600));
        keys.ensure_initial(&store, &secrets, 1_700_000_000)
            .await
            .unwrap();
        (keys, store, secrets)
    }

    fn unknown_kids(
        n: usize,
        keys: &Arc<OwnKeys>,
        store: &Store,
        secrets: &SecretBox,
    ) -> tokio::task::JoinSet<Result<Option<Arc<DecodingKey>>, KeyError>> {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (keys, store, secrets) = (keys.clone(), store.clone(), secrets.clone());
            tasks.spawn(async move {
                keys.verify_key(&format!("nope-{i}"), &store, &secrets, 1_700_000_000)
                    .await
            });
        }
        tasks
    }

    fn attempts(keys: &OwnKeys) -> u64 {
        keys.loaded.lock().unwrap().attempts
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_unknown_kids_cause_one_reload() {
        let (keys, store, secrets) = setup().await;
        keys.mark_stale();
        let before = attempts(&keys);
        for r in unknown_kids(50, &keys, &store, &secrets).join_all().await {
            assert!(r.unwrap().is_none());
        }
        assert_eq!(attempts(&keys), before + 1);
        // Within the cooldown, further misses cause none.
        unknown_kids(10, &keys, &store, &secrets).join_all().await;
        assert_eq!(attempts(&keys), before + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiters_share_a_failed_reload() {
        let (keys, store, secrets) = setup().await;
        let Db::Sqlite(pool) = store.db() else {
            unreachable!()
        };
        pool.close().await;
        keys.mark_stale();
        let before = attempts(&keys);
        // Held here so that every task is waiting when the first reload runs.
        let held = keys.reloading.lock().await;
        let tasks = unknown_kids(20, &keys, &store, &secrets);
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(held);
        for r in tasks.join_all().await {
            assert!(
                matches!(r, Err(KeyError::Store(StoreError::Unavailable(_)))),
                "{r:?}"
            );
        }
        assert_eq!(attempts(&keys), before + 1);
    }
}
