//! A JWKS document into usable verification keys: each JWK is checked (type, curve, size,
//! `use`, `key_ops`, no private parts) and parsed once; unusable keys are skipped with a
//! warning, and a document without a usable key is an error.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use url::Url;

use super::JwksError;
use crate::jose::keys::{describe_kid, CachedKey, KeyClass, RSA_MAX_BITS_JWK, RSA_MIN_BITS};

/// A key set with more entries than this is rejected as invalid (bounds the
/// work done per fetch; real IdPs publish a handful of keys).
pub const MAX_KEYS_PER_SET: usize = 256;

/// Decode base64url, tolerating (but not requiring) trailing `=` padding,
/// which a few IdPs emit in JWKs.
fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

fn str_member<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{name}\" is not a string")),
    }
}

fn required_b64(
    obj: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<Vec<u8>, String> {
    let s = str_member(obj, name)?.ok_or_else(|| format!("\"{name}\" is missing"))?;
    b64url(s).ok_or_else(|| format!("\"{name}\" is not base64url"))
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&top) => (be.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// Checks that `public` (an uncompressed EC point, or an Ed25519 key) is a well-formed key for
/// `alg` by having aws-lc parse it now: jsonwebtoken's aws-lc backend parses keys only when it
/// verifies, where a bad point would merely verify nothing.
fn ec_or_ed_key_parses(public: &[u8], alg: Algorithm) -> bool {
    use aws_lc_rs::signature::{
        ParsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED,
        ED25519,
    };
    let algorithm: &'static dyn VerificationAlgorithm = match alg {
        Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &ED25519,
        _ => return false,
    };
    ParsedPublicKey::new(algorithm, public).is_ok()
}

/// Parses one JWK into a usable verification key, or says why it was skipped.
pub(crate) fn parse_jwk(jwk: &Value) -> Result<CachedKey, String> {
    let obj = jwk.as_object().ok_or("not a JSON object")?;
    let kid = str_member(obj, "kid")?.map(str::to_owned);
    let kty = str_member(obj, "kty")?.ok_or("\"kty\" is missing")?;
    let alg = str_member(obj, "alg")?.map(str::to_owned);
    if let Some(use_) = str_member(obj, "use")? {
        if use_ != "sig" {
            return Err(format!("\"use\" is {use_:?}, not \"sig\""));
        }
    }
    match obj.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) if ops.iter().any(|op| op.as_str() == Some("verify")) => {}
        Some(Value::Array(_)) => {
            return Err("\"key_ops\" does not include \"verify\"".to_owned());
        }
        Some(_) => return Err("\"key_ops\" is not an array".to_owned()),
    }
    if obj.contains_key("d") {
        // A published private key is compromised by definition: anyone could
        // forge tokens with it.
        return Err("it contains private key material (\"d\")".to_owned());
    }

    let (class, key) = match kty {
        "RSA" => {
            let n = required_b64(obj, "n")?;
            let e = required_b64(obj, "e")?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            let bits = bit_len(n);
            if !(RSA_MIN_BITS..=RSA_MAX_BITS_JWK).contains(&bits) {
                return Err(format!(
                    "RSA modulus is {bits} bits (accepted: {RSA_MIN_BITS}..={RSA_MAX_BITS_JWK})"
                ));
            }
            if n.last().is_some_and(|b| b & 1 == 0) {
                return Err("RSA modulus is even".to_owned());
            }
            // 3 <= e <= 2^33 - 1 and odd (the range the `rsa` crate accepts).
            let e_bits = bit_len(e);
            if !(2..=33).contains(&e_bits) || e.last().is_some_and(|b| b & 1 == 0) {
                return Err("RSA public exponent is out of range".to_owned());
            }
            (KeyClass::Rsa, DecodingKey::from_rsa_raw_components(n, e))
        }
        "EC" => {
            let crv = str_member(obj, "crv")?.ok_or("\"crv\" is missing")?;
            let (class, len, check_alg) = match crv {
                "P-256" => (KeyClass::EcP256, 32, Algorithm::ES256),
                "P-384" => (KeyClass::EcP384, 48, Algorithm::ES384),
                other => return Err(format!("EC curve {other:?} is not supported")),
            };
            let x = required_b64(obj, "x")?;
            let y = required_b64(obj, "y")?;
            if x.len() != len || y.len() != len {
                return Err(format!("EC coordinates are not {len} bytes long"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if !ec_or_ed_key_parses(&point, check_alg) {
                return Err("EC point is not on the curve".to_owned());
            }
            (class, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            let crv = str_member(obj, "crv")?.ok_or("\"crv\" is missing")?;
            if crv != "Ed25519" {
                return Err(format!("OKP curve {crv:?} is not supported"));
            }
            let x = required_b64(obj, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key is not 32 bytes long".to_owned());
            }
            if !ec_or_ed_key_parses(&x, Algorithm::EdDSA) {
                return Err("Ed25519 key is not a valid curve point".to_owned());
            }
            (KeyClass::Ed25519, DecodingKey::from_ed_der(&x))
        }
        other => {
            return Err(format!(
                "key type {other:?} is not supported for signatures"
            ))
        }
    };
    Ok(CachedKey {
        kid,
        class,
        alg,
        key: Arc::new(key),
    })
}

/// Parses a JWKS document. Unusable keys are skipped (and logged); a document
/// without any usable key is an error.
pub(crate) fn parse_jwks(uri: &Url, doc: &Value) -> Result<Vec<CachedKey>, JwksError> {
    let invalid = |reason: String| JwksError::Invalid {
        uri: uri.to_string(),
        reason,
    };
    let keys = doc
        .as_object()
        .and_then(|o| o.get("keys"))
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("it is not an object with a \"keys\" array".to_owned()))?;
    if keys.len() > MAX_KEYS_PER_SET {
        return Err(invalid(format!(
            "it lists {} keys, more than the limit of {MAX_KEYS_PER_SET}",
            keys.len()
        )));
    }
    let mut usable = Vec::with_capacity(keys.len());
    for (index, jwk) in keys.iter().enumerate() {
        match parse_jwk(jwk) {
            Ok(key) => usable.push(key),
            Err(reason) => {
                let kid = jwk.get("kid").and_then(Value::as_str);
                // Encryption keys and symmetric keys are expected in some
                // JWKS (e.g. Keycloak's RSA-OAEP key): not worth a warning.
                let not_for_signing = jwk.get("use").is_some_and(|u| u != "sig")
                    || jwk.get("kty").and_then(Value::as_str) == Some("oct");
                if not_for_signing {
                    tracing::debug!(
                        jwks_uri = %uri,
                        key_index = index,
                        kid = %describe_kid(kid),
                        %reason,
                        "ignoring non-signing key in the identity provider's JWKS"
                    );
                } else {
                    tracing::warn!(
                        jwks_uri = %uri,
                        key_index = index,
                        kid = %describe_kid(kid),
                        %reason,
                        "skipping unusable key in the identity provider's JWKS"
                    );
                }
            }
        }
    }
    if usable.is_empty() {
        return Err(invalid(format!(
            "none of its {} keys is a usable signing key",
            keys.len()
        )));
    }
    Ok(usable)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use jsonwebtoken::Algorithm;
    use serde_json::{json, Value};

    use super::*;
    use crate::jose::jwks::{JwksCache, JwksSettings};
    use crate::jose::keys::{KeySet, Lookup};
    use crate::test_support::idp_keys::*;
    use crate::test_support::jwks_server::test_uri;

    fn parse(doc: &Value) -> Result<KeySet, JwksError> {
        parse_jwks(&test_uri(), doc).map(|keys| KeySet {
            keys,
            loaded_at: Some(Instant::now()),
            ..KeySet::default()
        })
    }

    fn found(set: &KeySet, alg: Algorithm, kid: Option<&str>) -> bool {
        matches!(set.lookup(alg, kid), Lookup::Found(_))
    }

    #[test]
    fn key_type_must_fit_the_algorithm() {
        let (rsa, ec256, ec384, ed) = (rsa1(), ec256(), ec384(), ed25519());
        let set = parse(&jwks(&[
            &without_alg(rsa.jwk.clone()),
            &without_alg(ec256.jwk.clone()),
            &without_alg(ec384.jwk.clone()),
            &without_alg(ed.jwk.clone()),
        ]))
        .unwrap();
        assert_eq!(set.keys.len(), 4);
        use Algorithm::*;
        let table: &[(&str, &[Algorithm], &[Algorithm])] = &[
            (
                "rsa1",
                &[RS256, RS384, RS512, PS256, PS384, PS512],
                &[ES256, ES384, EdDSA, HS256],
            ),
            ("ec256", &[ES256], &[ES384, RS256, EdDSA, HS256]),
            ("ec384", &[ES384], &[ES256, RS256, EdDSA]),
            ("ed25519", &[EdDSA], &[ES256, RS256, HS256]),
        ];
        for (kid, fits, not_fits) in table {
            for alg in *fits {
                assert!(found(&set, *alg, Some(kid)), "{kid} should fit {alg:?}");
            }
            for alg in *not_fits {
                assert!(!found(&set, *alg, Some(kid)), "{kid} must not fit {alg:?}");
            }
        }
    }

    #[test]
    fn jwk_alg_use_and_key_ops_are_honoured() {
        let base = rsa1().jwk; // has "alg": "RS256", "use": "sig"
        let set = parse(&jwks(&[&base])).unwrap();
        assert!(found(&set, Algorithm::RS256, Some("rsa1")));
        assert!(
            !found(&set, Algorithm::PS256, Some("rsa1")),
            "JWK alg RS256 != PS256"
        );

        let mut unknown_alg = base.clone();
        unknown_alg["alg"] = json!("RSA-OAEP");
        let set = parse(&jwks(&[&unknown_alg])).unwrap();
        assert!(!found(&set, Algorithm::RS256, Some("rsa1")));

        let mut ops_ok = base.clone();
        ops_ok["key_ops"] = json!(["verify"]);
        assert!(found(
            &parse(&jwks(&[&ops_ok])).unwrap(),
            Algorithm::RS256,
            Some("rsa1")
        ));

        let mut rejected = Vec::new();
        for (field, value) in [
            ("use", json!("enc")),
            ("use", json!(5)),
            ("key_ops", json!(["encrypt"])),
            ("key_ops", json!([])),
            ("key_ops", json!("verify")),
            ("kid", json!(7)),
            ("d", json!("AQAB")),
            ("n", json!("***")),
            ("n", json!(b64(&[0xff; 128]))), // 1024-bit modulus
            ("e", json!(b64(&[1]))),
            ("e", json!(b64(&[1, 0]))), // even exponent
        ] {
            let mut jwk = base.clone();
            jwk[field] = value.clone();
            rejected.push(jwk);
        }
        let mut no_n = base.clone();
        no_n.as_object_mut().unwrap().remove("n");
        rejected.push(no_n);
        for jwk in &rejected {
            assert!(parse_jwk(jwk).is_err(), "must be skipped: {jwk}");
            // Alone in a set: the set is invalid.
            assert!(matches!(
                parse(&jwks(&[jwk])),
                Err(JwksError::Invalid { .. })
            ));
        }
    }

    #[test]
    fn broken_or_unsupported_keys_are_skipped_not_fatal() {
        let good = rsa1().jwk;
        let ec = ec256().jwk;
        let mut off_curve = ec.clone();
        off_curve["kid"] = json!("off-curve");
        off_curve["y"] = json!(b64(&[7u8; 32]));
        let mut wrong_len = ec.clone();
        wrong_len["kid"] = json!("short");
        wrong_len["x"] = json!(b64(&[7u8; 31]));
        let mut p384_as_p256 = ec384().jwk;
        p384_as_p256["crv"] = json!("P-256");
        let mut bad_ed = ed25519().jwk;
        bad_ed["x"] = json!(b64(&[1u8; 31]));
        let docs = [
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}),
            json!({"kty": "OKP", "crv": "Ed448", "x": "AA"}),
            json!("not an object"),
            json!({"kid": "no-kty"}),
            off_curve,
            wrong_len,
            p384_as_p256,
            bad_ed,
        ];
        let mut all: Vec<&Value> = docs.iter().collect();
        all.push(&good);
        let set = parse(&jwks(&all)).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert!(found(&set, Algorithm::RS256, Some("rsa1")));
        assert!(!found(&set, Algorithm::ES256, None));
        assert!(!found(&set, Algorithm::HS256, Some("hmac")));
    }

    #[test]
    fn kid_selection_and_ambiguity() {
        let (a, b) = (rsa1(), rsa2());
        let set = parse(&jwks(&[&a.jwk, &b.jwk])).unwrap();
        assert!(found(&set, Algorithm::RS256, Some("rsa1")));
        assert!(found(&set, Algorithm::RS256, Some("rsa2")));
        assert!(matches!(
            set.lookup(Algorithm::RS256, Some("rsa3")),
            Lookup::NotFound
        ));
        // No kid, two fitting keys: ambiguous.
        assert!(matches!(
            set.lookup(Algorithm::RS256, None),
            Lookup::Ambiguous
        ));

        // No kid, a single fitting key (the EC key does not fit RS256).
        let set = parse(&jwks(&[&a.jwk, &ec256().jwk])).unwrap();
        assert!(found(&set, Algorithm::RS256, None));
        assert!(found(&set, Algorithm::ES256, None));

        // Keys without kid only match kid-less tokens.
        let set = parse(&jwks(&[&without_kid(&a.jwk)])).unwrap();
        assert!(found(&set, Algorithm::RS256, None));
        assert!(!found(&set, Algorithm::RS256, Some("rsa1")));

        // Same kid twice for the same algorithm family: ambiguous.
        let mut dup = b.jwk.clone();
        dup["kid"] = json!("rsa1");
        let set = parse(&jwks(&[&a.jwk, &dup])).unwrap();
        assert!(matches!(
            set.lookup(Algorithm::RS256, Some("rsa1")),
            Lookup::Ambiguous
        ));
    }

    fn without_kid(jwk: &Value) -> Value {
        let mut jwk = jwk.clone();
        jwk.as_object_mut().unwrap().remove("kid");
        jwk
    }

    #[test]
    fn invalid_documents() {
        let many: Vec<Value> = (0..=MAX_KEYS_PER_SET).map(|_| rsa1().jwk).collect();
        let many_refs: Vec<&Value> = many.iter().collect();
        for doc in [
            json!([]),
            json!({}),
            json!({"keys": {}}),
            json!({"keys": []}),
            json!({"keys": [{"kty": "oct", "k": "AA"}]}),
            jwks(&many_refs),
        ] {
            let err = parse(&doc).err().expect("must be invalid");
            assert!(matches!(err, JwksError::Invalid { .. }), "{err:?}");
            assert!(err.is_idp_fault());
            assert!(err.to_string().contains("127.0.0.1:9/jwks"), "{err}");
        }
        let err = JwksCache::with_keys(
            http_client(),
            test_uri(),
            JwksSettings::default(),
            &json!({}),
        )
        .unwrap_err();
        assert_eq!(err.code(), "jwks_invalid");
    }
}
