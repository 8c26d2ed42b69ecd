//! Throwaway IdP keys (RSA, EC P-256/P-384, Ed25519) as signing keys and public JWKs, and
//! token helpers, for the JWKS and ID-token tests. The PEM files under `testdata/idp/` were
//! generated with the `openssl` CLI for these tests only.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

/// PKCS#1 RSA private key (2048 bits), kid "rsa1".
pub const RSA1_PKCS1_PEM: &str = include_str!("testdata/idp/rsa1_pkcs1.pem");
/// SubjectPublicKeyInfo of rsa1, used as an HMAC secret in the classic
/// algorithm-confusion attack test.
pub const RSA1_PUBLIC_PEM: &str = include_str!("testdata/idp/rsa1_public.pem");
/// A second PKCS#1 RSA private key (2048 bits), kid "rsa2".
pub const RSA2_PKCS1_PEM: &str = include_str!("testdata/idp/rsa2_pkcs1.pem");
/// PKCS#8 EC P-256 private key, kid "ec256".
pub const EC256_PKCS8_PEM: &str = include_str!("testdata/idp/ec256_pkcs8.pem");
/// PKCS#8 EC P-384 private key, kid "ec384".
pub const EC384_PKCS8_PEM: &str = include_str!("testdata/idp/ec384_pkcs8.pem");
/// PKCS#8 Ed25519 private key, kid "ed25519".
pub const ED25519_PKCS8_PEM: &str = include_str!("testdata/idp/ed25519_pkcs8.pem");

/// The DER bytes inside a single-block PEM file.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD.decode(body).expect("fixture PEM is base64")
}

pub struct TestKey {
    pub alg: Algorithm,
    pub kid: &'static str,
    pub signing: EncodingKey,
    /// Public JWK with kid, alg and use=sig.
    pub jwk: Value,
}

fn make(alg: Algorithm, kid: &'static str, signing: EncodingKey) -> TestKey {
    let jwk = Jwk::from_encoding_key(&signing, alg).expect("public JWK from private key");
    let mut jwk = serde_json::to_value(jwk).expect("JWK serializes");
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    TestKey {
        alg,
        kid,
        signing,
        jwk,
    }
}

pub fn rsa1() -> TestKey {
    let der = pem_to_der(RSA1_PKCS1_PEM);
    make(Algorithm::RS256, "rsa1", EncodingKey::from_rsa_der(&der))
}
pub fn rsa2() -> TestKey {
    let der = pem_to_der(RSA2_PKCS1_PEM);
    make(Algorithm::RS256, "rsa2", EncodingKey::from_rsa_der(&der))
}
pub fn ec256() -> TestKey {
    let der = pem_to_der(EC256_PKCS8_PEM);
    make(Algorithm::ES256, "ec256", EncodingKey::from_ec_der(&der))
}
pub fn ec384() -> TestKey {
    let der = pem_to_der(EC384_PKCS8_PEM);
    make(Algorithm::ES384, "ec384", EncodingKey::from_ec_der(&der))
}
pub fn ed25519() -> TestKey {
    let der = pem_to_der(ED25519_PKCS8_PEM);
    make(Algorithm::EdDSA, "ed25519", EncodingKey::from_ed_der(&der))
}

/// A JWK without its `alg` member (as many IdPs publish them).
pub fn without_alg(mut jwk: Value) -> Value {
    if let Some(obj) = jwk.as_object_mut() {
        obj.remove("alg");
    }
    jwk
}

pub fn jwks(keys: &[&Value]) -> Value {
    json!({ "keys": keys })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compact JWS with an arbitrary header, signed with `key` using `alg`.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("sign");
    format!("{message}.{signature}")
}

/// Compact JWS with header `{"alg", "kid", "typ": "JWT"}` signed by `key`.
pub fn sign(key: &TestKey, claims: &Value) -> String {
    let header =
        json!({ "alg": crate::jose::alg::alg_name(key.alg), "kid": key.kid, "typ": "JWT" });
    sign_raw(&header, claims, &key.signing, key.alg)
}

/// Client for the local test servers: short timeout, no proxy, and no
/// connection reuse (so a stopped server really is unreachable).
/// The operator's policy ([`Egress::Any`](crate::outbound::Egress::Any)): the servers are on
/// 127.0.0.1.
pub fn http_client() -> crate::outbound::Http {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .expect("reqwest client");
    crate::outbound::Http::from_client(client)
}

/// Both of the process's clients (operator's and org admins'), as `startup` builds them.
pub fn outbound() -> crate::outbound::Outbound {
    crate::outbound::Outbound::new(std::time::Duration::from_secs(5))
}
