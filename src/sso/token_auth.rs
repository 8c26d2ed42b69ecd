//! How a connection authenticates at its IdP's token endpoint: the code exchange with the
//! connection's method (and, in automatic mode, one retry with the other secret method, the
//! one that worked remembered), the `private_key_jwt` key pair (made at connect, the private key
//! encrypted at rest, the public key published at `/sso/client-jwks/{jwks_id}`) and the client
//! assertions signed with it. The decisions themselves are pure, in `oidc::client_auth`.

use serde_json::json;

use super::{LoginError, Sso};
use crate::crypto::{random_token, Secret, SecretBox};
use crate::jwt::signing::{jwks_document, SigningKey};
use crate::oidc::client::{exchange_code_with, ClientAuth, Tokens};
use crate::oidc::client_auth::{
    assertion_claims, is_client_refusal, refusal_reason, retry_method, AuthSetting, TokenAuthMethod,
};
use crate::oidc::token_endpoint::ExchangeError;
use crate::store::{ClientKey, Connection, StoreError, TokenAuth};

/// The `typ` of client assertions (RFC 7523 leaves it open; "JWT" is what providers expect).
const ASSERTION_TYP: &str = "JWT";

/// A new key pair for `connection_id`: ES256 on P-256 like orgsso's own signing keys (RSA is
/// never signed with; see `jwt::signing`), the private key encrypted and bound to the connection.
pub(super) fn new_client_key(secret_box: &SecretBox, connection_id: &str) -> ClientKey {
    let (key, pem) = SigningKey::generate_es256();
    ClientKey {
        // Its own random id: the published URL says nothing about the login URL or the row.
        jwks_id: random_token(18),
        private_key_enc: secret_box.encrypt(pem.expose(), &ClientKey::context(connection_id)),
        public_jwk: key.public_jwk().clone(),
    }
}

/// A key pair made before its connection (a setup link's): `key` with its private key bound to
/// `bound_to` (what [`ClientKey::context`] takes).
pub(super) struct PremadeKey<'a> {
    pub key: &'a ClientKey,
    pub bound_to: &'a str,
}

/// The premade key for `connection_id`: the same key pair and JWKS id (the IdP has its URL),
/// the private key re-encrypted bound to the connection.
pub(super) fn rebind_client_key(
    secret_box: &SecretBox,
    premade: &PremadeKey<'_>,
    connection_id: &str,
) -> Result<ClientKey, StoreError> {
    let pem = secret_box
        .decrypt(
            &premade.key.private_key_enc,
            &ClientKey::context(premade.bound_to),
        )
        .map_err(|e| StoreError::Corrupt(format!("{} client key: {e}", premade.bound_to)))?;
    Ok(ClientKey {
        jwks_id: premade.key.jwks_id.clone(),
        private_key_enc: secret_box.encrypt(pem.expose(), &ClientKey::context(connection_id)),
        public_jwk: premade.key.public_jwk.clone(),
    })
}

impl TokenAuth {
    /// The admin's choice, or automatic with what was learned.
    pub fn setting(&self) -> AuthSetting {
        match self.method {
            Some(m) => AuthSetting::Explicit(m),
            None => AuthSetting::Automatic {
                learned: self.learned,
            },
        }
    }
}

impl Sso {
    /// `{public_url}/sso/client-jwks/{jwks_id}`: where the IdP fetches a connection's public key.
    pub fn client_jwks_uri(&self, jwks_id: &str) -> String {
        self.settings
            .public_path(&format!("/sso/client-jwks/{jwks_id}"))
    }

    /// The public key set of a connected connection's `private_key_jwt` key, or of an active
    /// setup link's own key (no private part).
    pub async fn client_jwks(
        &self,
        jwks_id: &str,
        now: i64,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        if jwks_id.is_empty() || jwks_id.len() > 64 {
            return Ok(None);
        }
        let jwk = match self.store.client_public_jwk(jwks_id).await? {
            Some(jwk) => Some(jwk),
            None => self.store.setup_link_public_jwk(jwks_id, now).await?,
        };
        Ok(jwk.map(|jwk| jwks_document(&[jwk])))
    }

    /// Exchanges the code as the connection's setting says. In automatic mode a refusal of the
    /// client is retried once with the other secret method (the code is unused then), and the
    /// method that worked is remembered. A refusal of the client names the method(s) refused,
    /// on the page and in the audit trail.
    pub(super) async fn exchange(
        &self,
        conn: &Connection,
        code: &str,
        code_verifier: &str,
        now: i64,
    ) -> Result<Tokens, LoginError> {
        let setting = conn.token_auth.setting();
        let meta = &conn.metadata;
        let first = setting.first_method(meta);
        let error = match self
            .exchange_as(conn, first, code, code_verifier, now)
            .await?
        {
            Ok(tokens) => return Ok(tokens),
            Err(e) => e,
        };
        let Some(next) = retry_method(setting, first, meta.token_auth_methods_supported(), &error)
        else {
            return Err(self.refused(conn, &[first], error, now).await);
        };
        tracing::info!(connection_id = %conn.id, refused = %first, retry = %next, "the IdP refused the client; retrying with the other secret method");
        match self
            .exchange_as(conn, next, code, code_verifier, now)
            .await?
        {
            Ok(tokens) => {
                let detail = json!({"connection_id": conn.id, "refused": first.as_str(), "method": next.as_str()});
                // The sign-in worked: failing to remember costs one retry next time, no more.
                if let Err(e) = self.store.learn_token_auth(conn, next, &detail, now).await {
                    tracing::warn!(error = %e, "the token auth method that worked was not stored");
                }
                Ok(tokens)
            }
            Err(e) if is_client_refusal(&e) => {
                Err(self.refused(conn, &[first, next], e, now).await)
            }
            // The retry failed otherwise (an IdP that spends the code on a refused client, a
            // 5xx): the refusal of the first method is still what the admin must see.
            Err(e) => {
                tracing::warn!(connection_id = %conn.id, retry = %next, error = %e, "the retry with the other secret method failed");
                Err(self.refused(conn, &[first], error, now).await)
            }
        }
    }

    /// One token request with `method`.
    async fn exchange_as(
        &self,
        conn: &Connection,
        method: TokenAuthMethod,
        code: &str,
        code_verifier: &str,
        now: i64,
    ) -> Result<Result<Tokens, ExchangeError>, LoginError> {
        let redirect_uri = self.redirect_uri();
        let secret;
        let auth = match method {
            TokenAuthMethod::PrivateKeyJwt => {
                secret = self.client_assertion(conn, now)?;
                ClientAuth::Assertion(&secret)
            }
            m => {
                if conn.client_secret_enc.is_empty() {
                    return Err(StoreError::Corrupt(format!(
                        "connection {} has no client secret for {m}",
                        conn.id
                    ))
                    .into());
                }
                secret = self
                    .secret_box
                    .decrypt(&conn.client_secret_enc, &conn.id)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                ClientAuth::Secret {
                    method: m,
                    secret: &secret,
                }
            }
        };
        Ok(exchange_code_with(
            self.http(conn.public_only),
            &conn.metadata,
            &conn.client_id,
            &auth,
            code,
            &redirect_uri,
            code_verifier,
        )
        .await)
    }

    /// A client assertion for this connection's token endpoint, signed with its own key.
    fn client_assertion(&self, conn: &Connection, now: i64) -> Result<Secret, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("connection {} {what}", conn.id));
        let key = conn
            .token_auth
            .key
            .as_ref()
            .ok_or_else(|| corrupt("uses private_key_jwt but has no key"))?;
        let pem = self
            .secret_box
            .decrypt(&key.private_key_enc, &ClientKey::context(&conn.id))
            .map_err(|e| corrupt(&format!("client key: {e}")))?;
        let signing = SigningKey::from_pkcs8_pem(pem.expose())
            .map_err(|e| corrupt(&format!("client key: {e}")))?;
        let claims = assertion_claims(&conn.metadata, &conn.client_id, &random_token(24), now);
        signing
            .sign(ASSERTION_TYP, &claims)
            .map(Secret::new)
            .map_err(|e| corrupt(&format!("client assertion: {e}")))
    }

    /// The sign-in error for a failed exchange; a refusal of the client is audited with the
    /// method(s) refused.
    async fn refused(
        &self,
        conn: &Connection,
        methods: &[TokenAuthMethod],
        error: ExchangeError,
        now: i64,
    ) -> LoginError {
        if !is_client_refusal(&error) {
            return LoginError::Exchange(error);
        }
        let methods = methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", then ");
        let reason = refusal_reason(&error);
        tracing::warn!(connection_id = %conn.id, methods = %methods, reason = %reason, "the IdP refused orgsso's client authentication");
        let detail = json!({"connection_id": conn.id, "methods": methods, "reason": reason});
        if let Err(e) = self
            .store
            .audit(
                Some(&conn.org_id),
                "idp",
                "sso.client_auth_refused",
                &detail,
                now,
            )
            .await
        {
            tracing::warn!(error = %e, "the refusal was not audited");
        }
        LoginError::ClientAuth { methods, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;

    #[test]
    fn a_client_key_is_encrypted_bound_and_public_only_in_the_jwk() {
        let sb = SecretBox::from_base64(&STANDARD.encode([3u8; 32])).unwrap();
        let key = new_client_key(&sb, "conn-1");
        assert!(!key.private_key_enc.contains("PRIVATE"));
        let pem = sb
            .decrypt(&key.private_key_enc, &ClientKey::context("conn-1"))
            .unwrap();
        assert!(
            sb.decrypt(&key.private_key_enc, "conn-1").is_err(),
            "bound to its column"
        );
        assert!(sb
            .decrypt(&key.private_key_enc, &ClientKey::context("conn-2"))
            .is_err());
        let signing = SigningKey::from_pkcs8_pem(pem.expose()).unwrap();
        assert_eq!(signing.public_jwk(), &key.public_jwk);
        let jwk = key.public_jwk.as_object().unwrap();
        let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
        members.sort();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(jwk["alg"], "ES256");
        assert!(key.jwks_id.len() >= 24);
        assert_ne!(new_client_key(&sb, "conn-1").jwks_id, key.jwks_id);
    }

    #[test]
    fn a_premade_key_is_rebound_to_its_connection_with_the_same_jwks_id() {
        let sb = SecretBox::from_base64(&STANDARD.encode([3u8; 32])).unwrap();
        let link_key = new_client_key(&sb, "setup_link:l1");
        let premade = PremadeKey {
            key: &link_key,
            bound_to: "setup_link:l1",
        };
        let conn_key = rebind_client_key(&sb, &premade, "conn-9").unwrap();
        assert_eq!(conn_key.jwks_id, link_key.jwks_id);
        assert_eq!(conn_key.public_jwk, link_key.public_jwk);
        let pem = sb
            .decrypt(&conn_key.private_key_enc, &ClientKey::context("conn-9"))
            .unwrap();
        assert_eq!(
            SigningKey::from_pkcs8_pem(pem.expose())
                .unwrap()
                .public_jwk(),
            &link_key.public_jwk
        );
        assert!(sb
            .decrypt(
                &conn_key.private_key_enc,
                &ClientKey::context("setup_link:l1")
            )
            .is_err());
        let wrong = PremadeKey {
            key: &link_key,
            bound_to: "setup_link:other",
        };
        assert!(rebind_client_key(&sb, &wrong, "conn-9").is_err());
    }

    #[test]
    fn an_assertion_verifies_with_the_published_key() {
        use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
        let sb = SecretBox::from_base64(&STANDARD.encode([3u8; 32])).unwrap();
        let key = new_client_key(&sb, "c1");
        let pem = sb
            .decrypt(&key.private_key_enc, &ClientKey::context("c1"))
            .unwrap();
        let meta: crate::oidc::discovery::ProviderMetadata = serde_json::from_value(json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": "https://idp.example.com/oauth/token",
            "jwks_uri": "https://idp.example.com/jwks",
        }))
        .unwrap();
        let claims = assertion_claims(&meta, "client-1", "jti-1", 1_700_000_000);
        let jwt = SigningKey::from_pkcs8_pem(pem.expose())
            .unwrap()
            .sign(ASSERTION_TYP, &claims)
            .unwrap();
        let header = decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), key.public_jwk["kid"].as_str());
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let (x, y) = (
            key.public_jwk["x"].as_str().unwrap(),
            key.public_jwk["y"].as_str().unwrap(),
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(x).unwrap().len(), 32);
        let dk = DecodingKey::from_ec_components(x, y).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.set_audience(&["https://idp.example.com/oauth/token"]);
        v.set_issuer(&["client-1"]);
        v.sub = Some("client-1".into());
        let got = decode::<serde_json::Value>(&jwt, &dk, &v).unwrap().claims;
        assert_eq!(got, claims);
    }
}
