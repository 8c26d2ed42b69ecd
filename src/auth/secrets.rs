//! Each org's JWT secrets parsed once into ready keys (no key parsing per request), rebuilt
//! when a secret is added or deleted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey};

use crate::crypto::SecretBox;
use crate::jwt::secrets::{ReadySecret, SecretKind};
use crate::oidc::jwks::JwksRegistry;
use crate::store::{JwtSecretRow, Store, StoreError};

/// An org secret marked primary: it signs the org's tokens instead of the service key.
pub struct PrimarySigner {
    pub name: String,
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub key: EncodingKey,
}

#[derive(Default)]
pub struct OrgSecrets {
    pub verifiers: Vec<Arc<ReadySecret>>,
    pub primary: Option<PrimarySigner>,
}

pub struct SecretsCache {
    map: Mutex<HashMap<String, Arc<OrgSecrets>>>,
    /// Off while this instance may miss other instances' secret changes (listener down).
    enabled: AtomicBool,
    /// Bumped by every change: a list read before a change is never cached after it (a deleted
    /// secret must not come back).
    generation: AtomicU64,
}

impl Default for SecretsCache {
    fn default() -> Self {
        SecretsCache {
            map: Mutex::new(HashMap::new()),
            enabled: AtomicBool::new(true),
            generation: AtomicU64::new(0),
        }
    }
}

fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Builds the runtime form of one stored secret. A row that cannot be used (key changed,
/// corrupt) is skipped with an error log rather than failing every token of the org.
fn ready(
    row: &JwtSecretRow,
    secrets: &SecretBox,
    jwks: &JwksRegistry,
) -> Result<(Arc<ReadySecret>, Option<PrimarySigner>), String> {
    let (aud, iss) = (strings(&row.audiences), strings(&row.issuers));
    let private = || -> Result<crate::crypto::Secret, String> {
        let enc = row
            .private_enc
            .as_deref()
            .ok_or("no private material stored")?;
        secrets.decrypt(enc, &row.id).map_err(|e| e.to_string())
    };
    match row.kind.as_str() {
        "hs256" => {
            let secret = private()?;
            let verifier = ReadySecret::hs256(&row.name, secret.expose().as_bytes(), aud, iss);
            let primary = row.is_primary.then(|| PrimarySigner {
                name: row.name.clone(),
                alg: Algorithm::HS256,
                kid: row.kid.clone(),
                key: EncodingKey::from_secret(secret.expose().as_bytes()),
            });
            Ok((Arc::new(verifier), primary))
        }
        "rs256" | "rs256_public" => {
            let kind = if row.kind == "rs256" {
                SecretKind::Rs256
            } else {
                SecretKind::Rs256Public
            };
            let pem = row.public.as_deref().ok_or("no public key stored")?;
            let verifier =
                ReadySecret::rsa_public_pem(&row.name, kind, pem, row.kid.clone(), aud, iss)
                    .map_err(|e| e.to_string())?;
            let primary = if row.is_primary && row.kind == "rs256" {
                let key = EncodingKey::from_rsa_pem(private()?.expose().as_bytes())
                    .map_err(|e| e.to_string())?;
                Some(PrimarySigner {
                    name: row.name.clone(),
                    alg: Algorithm::RS256,
                    kid: row.kid.clone(),
                    key,
                })
            } else {
                None
            };
            Ok((Arc::new(verifier), primary))
        }
        "jwk_url" => {
            let url = row.public.as_deref().ok_or("no URL stored")?;
            let url = url::Url::parse(url).map_err(|e| e.to_string())?;
            Ok((
                Arc::new(ReadySecret::jwk_url(&row.name, jwks.get(&url), aud, iss)),
                None,
            ))
        }
        other => Err(format!("unknown secret type {other:?}")),
    }
}

impl SecretsCache {
    pub async fn for_org(
        &self,
        org_id: &str,
        store: &Store,
        secrets: &SecretBox,
        jwks: &JwksRegistry,
    ) -> Result<Arc<OrgSecrets>, StoreError> {
        let enabled = self.enabled.load(Ordering::Acquire);
        if enabled {
            if let Some(s) = self.map.lock().expect("secrets lock").get(org_id) {
                return Ok(s.clone());
            }
        }
        let generation = self.generation();
        let rows = store.jwt_secrets(org_id).await?;
        let mut built = OrgSecrets::default();
        for row in &rows {
            match ready(row, secrets, jwks) {
                Ok((verifier, primary)) => {
                    built.verifiers.push(verifier);
                    if primary.is_some() {
                        built.primary = primary;
                    }
                }
                Err(e) => {
                    tracing::error!(org_id, secret = %row.name, error = %e, "JWT secret unusable; skipped")
                }
            }
        }
        let built = Arc::new(built);
        let mut map = self.map.lock().expect("secrets lock");
        if enabled && self.generation() == generation {
            map.insert(org_id.to_owned(), built.clone());
        }
        Ok(built)
    }

    pub fn set_enabled(&self, on: bool) {
        let mut map = self.map.lock().expect("secrets lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.enabled.store(on, Ordering::Release);
        map.clear();
    }

    /// Changes so far; compare before and after a read to know whether it may be cached.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn invalidate(&self, org_id: &str) {
        let mut map = self.map.lock().expect("secrets lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(org_id);
    }
}
