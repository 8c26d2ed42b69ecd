//! [`ReadySecret`]: the runtime form of an org's JWT secret, built once from a stored row so
//! that no key is parsed per request. `Debug` shows no key material.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::DecodingKey;

use super::rsa_pem::parse_public_key_pem;
use super::secret_input::{SecretError, SecretKind, MIN_HS256_SECRET_BYTES};
use crate::jose::jwks::JwksCache;
use crate::jose::keys::Rs256Key;

/// The runtime form of a JWT secret, built once from a stored row.
pub struct ReadySecret {
    pub name: String,
    pub kind: SecretKind,
    /// Tokens whose header `kid` differs skip this secret (when `Some`).
    pub kid: Option<String>,
    pub audiences: Vec<String>,
    pub issuers: Vec<String>,
    key: ReadyKey,
}

/// The verification key of a [`ReadySecret`], already parsed.
pub(crate) enum ReadyKey {
    /// HS256 shared secret.
    Hmac(DecodingKey),
    /// RS256 public key (rs256 and rs256_public), up to [`RSA_MAX_BITS_SECRET`](crate::jose::keys::RSA_MAX_BITS_SECRET),
    /// parsed once by aws-lc.
    Rsa(Rs256Key),
    /// RS256 keys from a JWKS document (jwk_url).
    Jwks(Arc<JwksCache>),
    /// A stored secret that must never verify anything (e.g. an hs256
    /// secret shorter than [`MIN_HS256_SECRET_BYTES`] read from storage).
    Unusable,
}

impl fmt::Debug for ReadySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.key {
            ReadyKey::Hmac(_) => "hmac(***)".to_owned(),
            ReadyKey::Rsa(k) => format!("rsa({} bits)", k.bits()),
            ReadyKey::Jwks(cache) => format!("jwks({})", cache.jwks_uri()),
            ReadyKey::Unusable => "unusable".to_owned(),
        };
        f.debug_struct("ReadySecret")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("kid", &self.kid)
            .field("audiences", &self.audiences)
            .field("issuers", &self.issuers)
            .field("key", &key)
            .finish()
    }
}

impl ReadySecret {
    /// An hs256 secret. A secret shorter than [`MIN_HS256_SECRET_BYTES`]
    /// (which [`parse_secret`](super::secret_input::parse_secret) never lets through, so storage was tampered
    /// with or corrupted) gives a secret that verifies nothing.
    pub fn hs256(
        name: impl Into<String>,
        secret: &[u8],
        audiences: Vec<String>,
        issuers: Vec<String>,
    ) -> Self {
        let name = name.into();
        let key = if secret.len() < MIN_HS256_SECRET_BYTES {
            tracing::error!(
                secret = %name,
                "stored hs256 secret is shorter than {MIN_HS256_SECRET_BYTES} bytes; it will verify no token"
            );
            ReadyKey::Unusable
        } else {
            ReadyKey::Hmac(DecodingKey::from_secret(secret))
        };
        ReadySecret {
            name,
            kind: SecretKind::Hs256,
            kid: None,
            audiences,
            issuers,
            key,
        }
    }

    /// An rs256 or rs256_public secret from its public key PEM (SPKI as
    /// stored in [`ParsedSecret::public`](super::secret_input::ParsedSecret::public), or PKCS#1 `RSA PUBLIC KEY`).
    /// `kid` is normally [`ParsedSecret::kid`](super::secret_input::ParsedSecret::kid); `None` makes the secret be
    /// tried for every RS256 token whatever its `kid`.
    pub fn rsa_public_pem(
        name: impl Into<String>,
        kind: SecretKind,
        pem: &str,
        kid: Option<String>,
        audiences: Vec<String>,
        issuers: Vec<String>,
    ) -> Result<Self, SecretError> {
        if !matches!(kind, SecretKind::Rs256 | SecretKind::Rs256Public) {
            return Err(SecretError(format!(
                "a {kind} secret has no RSA public key; use ReadySecret::{} instead",
                if kind == SecretKind::Hs256 {
                    "hs256"
                } else {
                    "jwk_url"
                }
            )));
        }
        let key = parse_public_key_pem(pem)?;
        Ok(ReadySecret {
            name: name.into(),
            kind,
            kid,
            audiences,
            issuers,
            key: ReadyKey::Rsa(key),
        })
    }

    /// A jwk_url secret, verified through a (shared) JWKS cache for its URL.
    pub fn jwk_url(
        name: impl Into<String>,
        cache: Arc<JwksCache>,
        audiences: Vec<String>,
        issuers: Vec<String>,
    ) -> Self {
        ReadySecret {
            name: name.into(),
            kind: SecretKind::JwkUrl,
            kid: None,
            audiences,
            issuers,
            key: ReadyKey::Jwks(cache),
        }
    }

    pub(crate) fn key(&self) -> &ReadyKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::secret_input::{parse_secret, ParsedSecret, SecretInput};
    use crate::test_support::secret_keys::*;

    const GOOD_SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn parse(v: serde_json::Value) -> Result<ParsedSecret, SecretError> {
        parse_secret(SecretInput::from_json(v)?)
    }

    #[test]
    fn ready_secrets_are_built_from_stored_material() {
        let p =
            parse(serde_json::json!({"type": "rs256", "name": "a", "private_key": RSA_A_PKCS1}))
                .unwrap();
        let ready = ReadySecret::rsa_public_pem(
            "a",
            SecretKind::Rs256,
            p.public.as_deref().unwrap(),
            p.kid.clone(),
            vec![],
            vec![],
        )
        .unwrap();
        assert_eq!(ready.kid, p.kid);
        assert!(matches!(ready.key(), ReadyKey::Rsa(_)));
        assert!(format!("{ready:?}").contains("rsa(2048 bits)"));
        let e =
            ReadySecret::rsa_public_pem("a", SecretKind::Hs256, RSA_A_SPKI, None, vec![], vec![])
                .unwrap_err();
        assert!(e.0.contains("ReadySecret::hs256"), "{e}");
        assert!(ReadySecret::rsa_public_pem(
            "a",
            SecretKind::Rs256,
            RSA_A_PKCS1,
            None,
            vec![],
            vec![]
        )
        .is_err());

        let hs = ReadySecret::hs256("h", GOOD_SECRET.as_bytes(), vec![], vec![]);
        assert!(matches!(hs.key(), ReadyKey::Hmac(_)));
        assert!(!format!("{hs:?}").contains(GOOD_SECRET));
        let short = ReadySecret::hs256("h", b"short", vec![], vec![]);
        assert!(matches!(short.key(), ReadyKey::Unusable));
    }
}
