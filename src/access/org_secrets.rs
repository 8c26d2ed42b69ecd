//! Each org's JWT secrets parsed once into ready keys (no key parsing per request), rebuilt
//! when a secret is added or deleted.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey};

use crate::cache::RevocableCache;
use crate::crypto::SecretBox;
use crate::jose::jwks::{Egress, JwksRegistry};
use crate::jwt::ready_secret::ReadySecret;
use crate::jwt::secret_input::SecretKind;
use crate::store::{JwtSecretRow, Store, StoreError};

/// An org secret marked primary: it signs the org's tokens instead of the service key.
pub struct PrimarySigner {
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
    cache: RevocableCache<Arc<OrgSecrets>>,
    /// A build in progress per org (an entry per org; orgs are never deleted): concurrent misses
    /// wait for it instead of each reading and decrypting the org's secrets.
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// One entry per org; the bound only guards against a runaway.
const MAX_ORGS: usize = 100_000;

impl Default for SecretsCache {
    fn default() -> Self {
        SecretsCache {
            cache: RevocableCache::new(MAX_ORGS),
            building: Mutex::new(HashMap::new()),
        }
    }
}

/// Builds the runtime form of one stored secret. A row that cannot be used (key changed,
/// corrupt) is skipped with an error log rather than failing every token of the org.
fn ready(
    row: &JwtSecretRow,
    secrets: &SecretBox,
    jwks: &JwksRegistry,
) -> Result<(Arc<ReadySecret>, Option<PrimarySigner>), String> {
    let (aud, iss) = (row.audiences()?, row.issuers()?);
    let private = || -> Result<crate::crypto::Secret, String> {
        let enc = row
            .private_enc
            .as_deref()
            .ok_or("no private material stored")?;
        secrets.decrypt(enc, &row.id).map_err(|e| e.to_string())
    };
    let kind = SecretKind::from_str(&row.kind)
        .map_err(|_| format!("unknown secret type {:?}", row.kind))?;
    match kind {
        SecretKind::Hs256 => {
            let secret = private()?;
            let verifier = ReadySecret::hs256(&row.name, secret.expose().as_bytes(), aud, iss);
            let primary = row.is_primary.then(|| PrimarySigner {
                alg: Algorithm::HS256,
                kid: row.kid.clone(),
                key: EncodingKey::from_secret(secret.expose().as_bytes()),
            });
            Ok((Arc::new(verifier), primary))
        }
        SecretKind::Rs256 | SecretKind::Rs256Public => {
            let pem = row.public.as_deref().ok_or("no public key stored")?;
            let verifier =
                ReadySecret::rsa_public_pem(&row.name, kind, pem, row.kid.clone(), aud, iss)
                    .map_err(|e| e.to_string())?;
            let primary = if row.is_primary && kind.can_sign() {
                let key = EncodingKey::from_rsa_pem(private()?.expose().as_bytes())
                    .map_err(|e| e.to_string())?;
                Some(PrimarySigner {
                    alg: Algorithm::RS256,
                    kid: row.kid.clone(),
                    key,
                })
            } else {
                None
            };
            Ok((Arc::new(verifier), primary))
        }
        SecretKind::JwkUrl => {
            let url = row.public.as_deref().ok_or("no URL stored")?;
            let url = url::Url::parse(url).map_err(|e| e.to_string())?;
            Ok((
                Arc::new(ReadySecret::jwk_url(
                    &row.name,
                    jwks.get(&url, Egress::of(row.public_only)),
                    aud,
                    iss,
                )),
                None,
            ))
        }
    }
}

/// Reads and readies an org's secrets, skipping (with an error log) rows that cannot be used.
async fn build(
    org_id: &str,
    store: &Store,
    secrets: &SecretBox,
    jwks: &JwksRegistry,
) -> Result<OrgSecrets, StoreError> {
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
    Ok(built)
}

impl SecretsCache {
    pub async fn for_org(
        &self,
        org_id: &str,
        store: &Store,
        secrets: &SecretBox,
        jwks: &JwksRegistry,
    ) -> Result<Arc<OrgSecrets>, StoreError> {
        if !self.cache.is_enabled() {
            // Nothing is cached, so nothing to wait for: read in parallel.
            return Ok(Arc::new(build(org_id, store, secrets, jwks).await?));
        }
        if let Some(s) = self.cache.get(org_id) {
            return Ok(s);
        }
        let lock = self
            .building
            .lock()
            .expect("secrets lock")
            .entry(org_id.to_owned())
            .or_default()
            .clone();
        let _leader = match lock.try_lock() {
            Ok(guard) => Some(guard),
            Err(_) => {
                // Another request is building: wait for it and use its answer.
                drop(lock.lock().await);
                if let Some(s) = self.cache.get(org_id) {
                    return Ok(s);
                }
                // It failed or was outdated: build, without queueing behind one another.
                None
            }
        };
        let generation = self.cache.generation();
        let built = Arc::new(build(org_id, store, secrets, jwks).await?);
        self.cache.insert_since(generation, org_id, built.clone());
        Ok(built)
    }

    pub fn set_enabled(&self, on: bool) {
        self.cache.set_enabled(on);
    }

    /// Changes so far; compare before and after a read to know whether it may be cached.
    pub fn generation(&self) -> u64 {
        self.cache.generation()
    }

    pub fn invalidate(&self, org_id: &str) {
        self.cache.remove(org_id);
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::*;
    use crate::jose::jwks::JwksSettings;

    const HS_SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

    fn row(kind: &str, audiences: &str, issuers: &str, sb: &SecretBox) -> JwtSecretRow {
        JwtSecretRow {
            id: "s1".into(),
            org_id: "o1".into(),
            name: "hs".into(),
            kind: kind.into(),
            private_enc: Some(sb.encrypt(HS_SECRET, "s1")),
            public: None,
            public_jwk: None,
            kid: None,
            audiences: audiences.into(),
            issuers: issuers.into(),
            is_primary: false,
            created_at: 0,
            public_only: false,
        }
    }

    #[test]
    fn damaged_rows_are_refused_not_opened() {
        let sb = SecretBox::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        let jwks = JwksRegistry::new(
            crate::test_support::idp_keys::outbound(),
            JwksSettings::default(),
        );
        let Ok((verifier, _)) = ready(&row("hs256", r#"["app"]"#, "[]", &sb), &sb, &jwks) else {
            panic!("a sound row is ready");
        };
        assert_eq!(verifier.audiences, ["app"]);
        assert!(verifier.issuers.is_empty());
        for (kind, aud, iss) in [
            ("hs256", "", "[]"),
            ("hs256", "[]", "not json"),
            ("hs256", "null", "[]"),
            ("hs256", r#"[1]"#, "[]"),
            ("hs256", r#"{"a":"b"}"#, "[]"),
            ("hs512", "[]", "[]"),
        ] {
            match ready(&row(kind, aud, iss, &sb), &sb, &jwks) {
                Ok(_) => panic!("{kind} {aud:?} {iss:?}: accepted"),
                Err(e) => assert!(!e.contains(HS_SECRET), "{e}"),
            }
        }
    }
}
