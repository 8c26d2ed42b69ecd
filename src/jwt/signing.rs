//! orgsso's own signing keys: the keys it signs user access tokens with, and
//! the public key set it publishes at `/.well-known/jwks.json`.
//!
//! * Algorithm: **ES256** (ECDSA over P-256 with SHA-256) only. Keys are
//!   generated with the RustCrypto `p256` crate from the OS random generator
//!   and stored as PKCS#8; tokens are signed by `jsonwebtoken`'s `aws_lc_rs`
//!   backend. The service key stays ECDSA (small tokens, cheap to verify for
//!   everyone); an org that needs RS256 marks an rs256 secret primary, which
//!   aws-lc signs with (see `access::org_secrets`), never the `rsa` crate.
//! * Key ids are RFC 7638 JWK thumbprints (SHA-256 over the required public
//!   members), so a key keeps its `kid` across restarts and PEM round trips,
//!   and two instances holding the same key publish the same `kid`.
//! * Private key material never leaves this module except as the PKCS#8 PEM
//!   returned by [`SigningKey::generate_es256`], wrapped in a redacting
//!   [`Secret`] for the caller to store encrypted. `Debug` shows public parts
//!   only; errors never contain key material or tokens.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::crypto::Secret;

/// The `typ` header of user access tokens (RFC 9068): a verifier that
/// requires it can never confuse an access token with an ID token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Why a signing key could not be loaded or a token could not be signed.
///
/// Messages never contain key material, claims or tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// The stored key is not a PKCS#8 PEM-encoded P-256 private key (wrong
    /// format, wrong curve, another key type, or corrupted).
    #[error("the signing key is not a PKCS#8 PEM-encoded P-256 (ES256) private key")]
    InvalidKey,
    /// The claims to sign are not a JSON object.
    #[error("the token claims are not a JSON object")]
    ClaimsNotObject,
    /// The header `typ` is empty.
    #[error("the token type (typ header) is empty")]
    EmptyTyp,
    /// The cryptographic backend refused to sign.
    #[error("signing the token failed ({0})")]
    Sign(String),
}

/// One of orgsso's own signing keys (ES256).
///
/// `Clone` copies the private key in memory (it is zeroised on drop by
/// `jsonwebtoken`); `Debug` shows the key id and the public JWK only.
#[derive(Clone)]
pub struct SigningKey {
    /// RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.
    pub kid: String,
    /// Always [`Algorithm::ES256`].
    pub alg: Algorithm,
    encoding: EncodingKey,
    public_jwk: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("public_jwk", &self.public_jwk)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random P-256 key, and its private key as PKCS#8 PEM ("PRIVATE
    /// KEY") for the caller to store encrypted; [`SigningKey::from_pkcs8_pem`]
    /// loads it back with the same `kid`.
    pub fn generate_es256() -> (SigningKey, Secret) {
        let secret = p256::SecretKey::random(&mut OsRng);
        // Encoding a valid in-memory key as PKCS#8 only fails on allocation
        // failure; there is no input here that could make it fail.
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a freshly generated P-256 key encodes as PKCS#8");
        let key = Self::from_secret_key(&secret)
            .expect("a freshly generated P-256 key encodes as PKCS#8");
        (key, Secret::new(pem.as_str()))
    }

    /// Loads a key stored as PKCS#8 PEM. Only P-256 (ES256) keys are
    /// accepted; anything else is [`SigningError::InvalidKey`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, SigningError> {
        let secret =
            p256::SecretKey::from_pkcs8_pem(pem.trim()).map_err(|_| SigningError::InvalidKey)?;
        Self::from_secret_key(&secret)
    }

    fn from_secret_key(secret: &p256::SecretKey) -> Result<SigningKey, SigningError> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|_| SigningError::InvalidKey)?;
        let encoding = EncodingKey::from_ec_der(der.as_bytes());

        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            // Only the identity point lacks coordinates, and it is never
            // the public key of a valid secret key.
            return Err(SigningError::InvalidKey);
        };
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        let kid = ec_p256_thumbprint(&x, &y);
        let public_jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": x,
            "y": y,
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        });
        Ok(SigningKey {
            kid,
            alg: Algorithm::ES256,
            encoding,
            public_jwk,
        })
    }

    /// The public JWK to publish:
    /// `{"kty":"EC","crv":"P-256","x","y","kid","alg":"ES256","use":"sig"}`.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// A compact JWS over `claims` (which must be a JSON object), with the
    /// header `{"alg":"ES256","kid":<kid>,"typ":<header_typ>}`. Use
    /// [`ACCESS_TOKEN_TYP`] for access tokens.
    pub fn sign(&self, header_typ: &str, claims: &Value) -> Result<String, SigningError> {
        if !claims.is_object() {
            return Err(SigningError::ClaimsNotObject);
        }
        if header_typ.is_empty() {
            return Err(SigningError::EmptyTyp);
        }
        let mut header = Header::new(self.alg);
        header.typ = Some(header_typ.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| SigningError::Sign(e.to_string()))
    }
}

/// RFC 7638 thumbprint of an EC P-256 public key: SHA-256 over the required
/// members in lexicographic order, no whitespace, base64url.
fn ec_p256_thumbprint(x: &str, y: &str) -> String {
    // x and y are base64url (no characters that need JSON escaping).
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A published key set: the current signing key and the retired ones still
/// published until the tokens they signed have expired.
///
/// Returns `{"keys": [...]}` in the given order. A key listed twice (same
/// `kid`) is published once, at its first position, so verifiers never see
/// an ambiguous key id.
pub fn jwks_document(public_jwks: &[Value]) -> Value {
    let mut seen: Vec<&str> = Vec::with_capacity(public_jwks.len());
    let mut keys = Vec::with_capacity(public_jwks.len());
    for jwk in public_jwks {
        if let Some(kid) = jwk.get("kid").and_then(Value::as_str) {
            if seen.contains(&kid) {
                continue;
            }
            seen.push(kid);
        }
        keys.push(jwk.clone());
    }
    json!({ "keys": keys })
}

/// Claims for a user access token (RFC 9068 style). Sign them with
/// [`SigningKey::sign`] and [`ACCESS_TOKEN_TYP`] so the token can never be
/// mistaken for an ID token.
#[derive(Clone, Copy, Debug)]
pub struct AccessTokenClaims<'a> {
    /// `iss`: orgsso's public base URL.
    pub issuer: &'a str,
    /// `sub`: the user's stable id.
    pub subject: &'a str,
    /// `aud`: the resource (application) the token is for.
    pub audience: &'a str,
    /// `org`: the organisation (tenant) the user signed in to.
    pub org: &'a str,
    /// `role`: the user's role in that organisation.
    pub role: &'a str,
    /// `email`: omitted when `None`.
    pub email: Option<&'a str>,
    /// `sid`: an opaque hash of the session (for revocation), never the
    /// session cookie itself.
    pub session_ref: &'a str,
    /// Lifetime: `exp = iat + ttl` (whole seconds).
    pub ttl: Duration,
    /// `iat`.
    pub now: OffsetDateTime,
}

/// The claims object of an access token: `iss`, `sub`, `aud`, `org`, `role`,
/// `email` (when known), `sid`, `iat`, `exp` and `jti` (128 random bits,
/// base64url). No `client_id`.
pub fn access_token_claims(c: &AccessTokenClaims) -> Value {
    let iat = c.now.unix_timestamp();
    let ttl = i64::try_from(c.ttl.as_secs()).unwrap_or(i64::MAX);
    let exp = iat.saturating_add(ttl);
    let mut jti = [0u8; 16];
    OsRng.fill_bytes(&mut jti);

    let mut claims = Map::new();
    claims.insert("iss".into(), json!(c.issuer));
    claims.insert("sub".into(), json!(c.subject));
    claims.insert("aud".into(), json!(c.audience));
    claims.insert("org".into(), json!(c.org));
    claims.insert("role".into(), json!(c.role));
    if let Some(email) = c.email {
        claims.insert("email".into(), json!(email));
    }
    claims.insert("sid".into(), json!(c.session_ref));
    claims.insert("iat".into(), json!(iat));
    claims.insert("exp".into(), json!(exp));
    claims.insert("jti".into(), json!(URL_SAFE_NO_PAD.encode(jti)));
    Value::Object(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
    use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};

    const ISSUER: &str = "https://sso.example.test";
    const AUDIENCE: &str = "https://app.example.test";

    fn claims_at(now: OffsetDateTime) -> Value {
        access_token_claims(&AccessTokenClaims {
            issuer: ISSUER,
            subject: "user-123",
            audience: AUDIENCE,
            org: "acme",
            role: "admin",
            email: Some("ann@acme.test"),
            session_ref: "c2Vzc2lvbi1oYXNo",
            ttl: Duration::from_secs(300),
            now,
        })
    }

    fn decoding_key(jwk: &Value) -> DecodingKey {
        let jwk: Jwk = serde_json::from_value(jwk.clone()).unwrap();
        DecodingKey::from_jwk(&jwk).unwrap()
    }

    fn validation() -> Validation {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v
    }

    fn verify(token: &str, jwk: &Value) -> jsonwebtoken::errors::Result<Value> {
        decode::<Value>(token, &decoding_key(jwk), &validation()).map(|d| d.claims)
    }

    #[test]
    fn generate_sign_verify_with_published_jwk() {
        let (key, _pem) = SigningKey::generate_es256();
        assert_eq!(key.alg, Algorithm::ES256);
        let claims = claims_at(OffsetDateTime::now_utc());
        let token = key.sign(ACCESS_TOKEN_TYP, &claims).unwrap();

        // The verifier only has the published key set.
        let doc = jwks_document(&[key.public_jwk().clone()]);
        let published = &doc["keys"][0];
        assert_eq!(verify(&token, published).unwrap(), claims);

        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    }

    #[test]
    fn public_jwk_has_exactly_the_public_members() {
        let (key, _) = SigningKey::generate_es256();
        let jwk = key.public_jwk().as_object().unwrap();
        let mut names: Vec<&str> = jwk.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], key.kid.as_str());
        for coord in ["x", "y"] {
            let bytes = URL_SAFE_NO_PAD
                .decode(jwk[coord].as_str().unwrap())
                .unwrap();
            assert_eq!(bytes.len(), 32, "{coord} is a full 32-byte coordinate");
        }
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint_and_survives_a_pem_round_trip() {
        let (key, pem) = SigningKey::generate_es256();
        assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = SigningKey::from_pkcs8_pem(pem.expose()).unwrap();
        assert_eq!(again.kid, key.kid);
        assert_eq!(again.public_jwk(), key.public_jwk());

        // Same value as jsonwebtoken's own RFC 7638 implementation.
        let jwk: Jwk = serde_json::from_value(key.public_jwk().clone()).unwrap();
        assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).unwrap(), key.kid);

        // A token signed by the reloaded key verifies with the original JWK.
        let token = again
            .sign(ACCESS_TOKEN_TYP, &claims_at(OffsetDateTime::now_utc()))
            .unwrap();
        verify(&token, key.public_jwk()).unwrap();
    }

    /// RFC 7638 section 3.1's method applied to the EC example key of
    /// RFC 7517 appendix A.1, cross-checked against jsonwebtoken.
    #[test]
    fn thumbprint_matches_jsonwebtoken_on_a_fixed_key() {
        let x = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
        let y = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";
        let jwk: Jwk = serde_json::from_value(json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "enc", "kid": "1"
        }))
        .unwrap();
        assert_eq!(
            ec_p256_thumbprint(x, y),
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
        );
    }

    #[test]
    fn fixture_key_loads_and_other_keys_are_refused() {
        let ec256 = crate::test_support::idp_keys::EC256_PKCS8_PEM;
        let key = SigningKey::from_pkcs8_pem(ec256).unwrap();
        // Stable, key-derived id.
        assert_eq!(SigningKey::from_pkcs8_pem(ec256).unwrap().kid, key.kid);

        let refused = [
            crate::test_support::idp_keys::EC384_PKCS8_PEM,
            crate::test_support::idp_keys::ED25519_PKCS8_PEM,
            crate::test_support::idp_keys::RSA1_PKCS1_PEM,
            crate::test_support::idp_keys::RSA1_PUBLIC_PEM,
            "",
            "not a pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ];
        for pem in refused {
            let err = SigningKey::from_pkcs8_pem(pem).unwrap_err();
            assert!(matches!(err, SigningError::InvalidKey), "{err:?}");
        }
    }

    #[test]
    fn tampered_token_fails() {
        let (key, _) = SigningKey::generate_es256();
        let token = key
            .sign(ACCESS_TOKEN_TYP, &claims_at(OffsetDateTime::now_utc()))
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);

        // Changed claims, original signature.
        let mut claims = claims_at(OffsetDateTime::now_utc());
        claims["role"] = json!("owner");
        let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(verify(&forged, key.public_jwk()).is_err());

        // Flipped bit in the signature.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[5] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert!(verify(&forged, key.public_jwk()).is_err());

        // Changed header (typ swapped to look like an ID token).
        let header = URL_SAFE_NO_PAD
            .encode(json!({"alg": "ES256", "kid": key.kid, "typ": "JWT"}).to_string());
        let forged = format!("{header}.{}.{}", parts[1], parts[2]);
        assert!(verify(&forged, key.public_jwk()).is_err());

        verify(&token, key.public_jwk()).unwrap();
    }

    #[test]
    fn token_from_key_a_does_not_verify_with_key_b() {
        let (a, _) = SigningKey::generate_es256();
        let (b, _) = SigningKey::generate_es256();
        assert_ne!(a.kid, b.kid);
        let token = a
            .sign(ACCESS_TOKEN_TYP, &claims_at(OffsetDateTime::now_utc()))
            .unwrap();
        assert!(verify(&token, b.public_jwk()).is_err());
        verify(&token, a.public_jwk()).unwrap();
    }

    #[test]
    fn access_token_claims_contents() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let claims = claims_at(now);
        let map = claims.as_object().unwrap();
        let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["aud", "email", "exp", "iat", "iss", "jti", "org", "role", "sid", "sub"]
        );
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"], "user-123");
        assert_eq!(claims["aud"], AUDIENCE);
        assert_eq!(claims["org"], "acme");
        assert_eq!(claims["role"], "admin");
        assert_eq!(claims["email"], "ann@acme.test");
        assert_eq!(claims["sid"], "c2Vzc2lvbi1oYXNo");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_000_300);
        let jti = URL_SAFE_NO_PAD
            .decode(claims["jti"].as_str().unwrap())
            .unwrap();
        assert_eq!(jti.len(), 16);
        assert_ne!(claims_at(now)["jti"], claims["jti"], "jti is random");

        let no_email = access_token_claims(&AccessTokenClaims {
            issuer: ISSUER,
            subject: "s",
            audience: AUDIENCE,
            org: "o",
            role: "r",
            email: None,
            session_ref: "x",
            ttl: Duration::MAX,
            now,
        });
        assert!(no_email.get("email").is_none());
        assert_eq!(no_email["exp"], i64::MAX, "a huge ttl saturates");
    }

    #[test]
    fn expired_token_is_refused() {
        let (key, _) = SigningKey::generate_es256();
        let long_ago = OffsetDateTime::now_utc() - time::Duration::hours(2);
        let token = key.sign(ACCESS_TOKEN_TYP, &claims_at(long_ago)).unwrap();
        let err = verify(&token, key.public_jwk()).unwrap_err();
        assert_eq!(
            err.kind(),
            &jsonwebtoken::errors::ErrorKind::ExpiredSignature
        );
    }

    #[test]
    fn sign_rejects_non_object_claims_and_empty_typ() {
        let (key, _) = SigningKey::generate_es256();
        for claims in [json!(null), json!([1, 2]), json!("x"), json!(5)] {
            assert!(matches!(
                key.sign(ACCESS_TOKEN_TYP, &claims),
                Err(SigningError::ClaimsNotObject)
            ));
        }
        assert!(matches!(
            key.sign("", &json!({})),
            Err(SigningError::EmptyTyp)
        ));
        // Other typ values are passed through.
        let token = key.sign("JWT", &json!({"a": 1})).unwrap();
        assert_eq!(decode_header(&token).unwrap().typ.as_deref(), Some("JWT"));
    }

    #[test]
    fn debug_and_errors_do_not_leak_private_material() {
        let (key, pem) = SigningKey::generate_es256();
        let body: String = pem
            .expose()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let debug = format!("{key:?} {pem:?}");
        assert!(debug.contains(&key.kid));
        assert!(!debug.contains(&body));
        assert!(!debug.contains("PRIVATE KEY"));
        assert!(!debug.contains("\"d\""));
        assert!(key.public_jwk().get("d").is_none());

        let mut damaged = pem.expose().to_owned();
        damaged.insert_str(40, "!!");
        let err = SigningKey::from_pkcs8_pem(&damaged).unwrap_err();
        assert!(!err.to_string().contains(&body[..20]));
    }

    #[test]
    fn jwks_document_publishes_current_and_retired_keys_once() {
        let (current, _) = SigningKey::generate_es256();
        let (retired, _) = SigningKey::generate_es256();
        let doc = jwks_document(&[
            current.public_jwk().clone(),
            retired.public_jwk().clone(),
            current.public_jwk().clone(),
        ]);
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["kid"], current.kid.as_str());
        assert_eq!(keys[1]["kid"], retired.kid.as_str());
        assert_eq!(jwks_document(&[]), json!({"keys": []}));

        // A token of the retired key still verifies through the document.
        let token = retired
            .sign(ACCESS_TOKEN_TYP, &claims_at(OffsetDateTime::now_utc()))
            .unwrap();
        let kid = decode_header(&token).unwrap().kid.unwrap();
        let jwk = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
        verify(&token, jwk).unwrap();
    }
}
