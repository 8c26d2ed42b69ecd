//! The logout-token policy as tables: claims (pure), then whole tokens through a seeded key set.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use url::Url;

use super::*;
use crate::jose::jwks::{JwksCache, JwksSettings};
use crate::test_support::idp_keys::*;

const NOW: i64 = 1_700_000_000;
const ISSUER: &str = "https://idp.example/tenant";
const CLIENT: &str = "client-1";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap()
}

fn expect(algorithms: &[Algorithm]) -> Expectations<'_> {
    Expectations {
        issuer: ISSUER,
        client_id: CLIENT,
        algorithms,
        leeway: Duration::from_secs(60),
        max_iat_age: Duration::from_secs(600),
    }
}

fn base() -> Map<String, Value> {
    json!({
        "iss": ISSUER, "aud": CLIENT, "iat": NOW - 5, "exp": NOW + 115, "jti": "j-1",
        "sub": "alice", "sid": "s-1", "events": {EVENT: {}},
    })
    .as_object()
    .unwrap()
    .clone()
}

fn patched(patch: &[(&str, Option<Value>)]) -> Map<String, Value> {
    let mut m = base();
    for (k, v) in patch {
        match v {
            Some(v) => m.insert((*k).to_owned(), v.clone()),
            None => m.remove(*k),
        };
    }
    m
}

/// Claim overrides: `Some(value)` sets, `None` removes.
type Patch = Vec<(&'static str, Option<Value>)>;

/// The variant name of a result, "ok" for success.
fn kind<T>(r: &Result<T, LogoutTokenError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{e:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap()
            .to_owned(),
    }
}

#[test]
fn claims_table() {
    let set = |v: Value| Some(v);
    #[rustfmt::skip]
    let cases: Vec<(&str, Patch, &str)> = vec![
        ("baseline", vec![], "ok"),
        ("sub only", vec![("sid", None)], "ok"),
        ("sid only", vec![("sub", None)], "ok"),
        ("no exp", vec![("exp", None)], "ok"),
        // §2.6: `aud` as for ID tokens, which refuse audiences orgsso does not trust.
        ("aud array with others", vec![("aud", set(json!(["other", CLIENT])))], "BadAudience"),
        ("event with claims", vec![("events", set(json!({EVENT: {"x": 1}, "other": {}})))], "ok"),
        ("iss other", vec![("iss", set(json!("https://evil.example")))], "BadIssuer"),
        ("iss missing", vec![("iss", None)], "MissingClaim"),
        ("aud other", vec![("aud", set(json!("client-2")))], "BadAudience"),
        ("aud missing", vec![("aud", None)], "MissingClaim"),
        ("aud number", vec![("aud", set(json!(5)))], "WrongClaimType"),
        ("iat missing", vec![("iat", None)], "MissingClaim"),
        ("iat future", vec![("iat", set(json!(NOW + 120)))], "IssuedInFuture"),
        ("iat within leeway", vec![("iat", set(json!(NOW + 30)))], "ok"),
        ("iat too old", vec![("iat", set(json!(NOW - 700))), ("exp", None)], "IssuedTooLongAgo"),
        ("exp past", vec![("exp", set(json!(NOW - 61)))], "Expired"),
        ("exp string", vec![("exp", set(json!("soon")))], "WrongClaimType"),
        ("no events", vec![("events", None)], "NoLogoutEvent"),
        ("wrong event", vec![("events", set(json!({"http://schemas.openid.net/event/other": {}})))], "NoLogoutEvent"),
        ("event not an object", vec![("events", set(json!({EVENT: true})))], "NoLogoutEvent"),
        ("events an array", vec![("events", set(json!([EVENT])))], "WrongClaimType"),
        ("neither sub nor sid", vec![("sub", None), ("sid", None)], "NoSubjectOrSession"),
        ("sub empty", vec![("sub", set(json!("")))], "WrongClaimType"),
        ("sid number", vec![("sid", set(json!(1)))], "WrongClaimType"),
        ("sid too long", vec![("sid", set(json!("s".repeat(256))))], "WrongClaimType"),
        ("sub with a NUL", vec![("sub", set(json!("a\u{0}b")))], "WrongClaimType"),
        ("sid with a line break", vec![("sid", set(json!("a\nb")))], "WrongClaimType"),
        ("nonce present", vec![("nonce", set(json!("n")))], "NoncePresent"),
        ("jti missing", vec![("jti", None)], "MissingClaim"),
        ("jti number", vec![("jti", set(json!(7)))], "WrongClaimType"),
    ];
    for (name, patch, want) in cases {
        let got = check_claims(&patched(&patch), &expect(ID_TOKEN_ALGS), now());
        assert_eq!(kind(&got), want, "{name}: {got:?}");
    }
}

#[test]
fn the_jti_is_kept_while_the_token_could_be_valid() {
    let c = check_claims(&base(), &expect(ID_TOKEN_ALGS), now()).unwrap();
    assert_eq!(c.jti, "j-1");
    assert_eq!(
        (c.sub.as_deref(), c.sid.as_deref()),
        (Some("alice"), Some("s-1"))
    );
    // exp + leeway comes before iat + max age + leeway.
    assert_eq!(c.valid_until, NOW + 115 + 60 + 1);
    let c = check_claims(&patched(&[("exp", None)]), &expect(ID_TOKEN_ALGS), now()).unwrap();
    assert_eq!(c.valid_until, NOW - 5 + 600 + 60 + 1);
}

fn cache() -> JwksCache {
    let settings = JwksSettings {
        refetch_cooldown: Duration::from_secs(3600),
        max_age: Duration::from_secs(3600),
        max_bytes: 64 * 1024,
        ..JwksSettings::default()
    };
    let uri = Url::parse("http://127.0.0.1:9/jwks").unwrap();
    JwksCache::with_keys(
        http_client(),
        uri,
        settings,
        &jwks(&[&rsa1().jwk, &ec256().jwk]),
    )
    .unwrap()
}

fn token(header: Value, claims: &Map<String, Value>, key: &EncodingKey, alg: Algorithm) -> String {
    sign_raw(&header, &Value::Object(claims.clone()), key, alg)
}

#[tokio::test]
async fn tokens_table() {
    let rsa = rsa1();
    let ec = ec256();
    let rs = |typ: Option<&str>| {
        let mut h = json!({"alg": "RS256", "kid": "rsa1"});
        if let Some(t) = typ {
            h["typ"] = json!(t);
        }
        h
    };
    let good = token(
        rs(Some("logout+jwt")),
        &base(),
        &rsa.signing,
        Algorithm::RS256,
    );
    let mut tampered: Vec<&str> = good.split('.').collect();
    let other_payload = b64(Value::Object(patched(&[("sub", Some(json!("bob")))]))
        .to_string()
        .as_bytes());
    tampered[1] = &other_payload;
    let hmac = EncodingKey::from_secret(b"a shared secret of thirty-two bytes!");
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(Value::Object(base()).to_string().as_bytes())
    );
    #[rustfmt::skip]
    let cases: Vec<(&str, String, &[Algorithm], &str)> = vec![
        ("typ logout+jwt", good.clone(), ID_TOKEN_ALGS, "ok"),
        ("no typ", token(rs(None), &base(), &rsa.signing, Algorithm::RS256), ID_TOKEN_ALGS, "ok"),
        ("typ JWT", token(rs(Some("JWT")), &base(), &rsa.signing, Algorithm::RS256), ID_TOKEN_ALGS, "BadType"),
        ("ES256", token(json!({"alg": "ES256", "kid": "ec256"}), &base(), &ec.signing, Algorithm::ES256), ID_TOKEN_ALGS, "ok"),
        ("ES256 not allowed", token(json!({"alg": "ES256", "kid": "ec256"}), &base(), &ec.signing, Algorithm::ES256), &[Algorithm::RS256], "AlgNotAllowed"),
        ("tampered payload", tampered.join("."), ID_TOKEN_ALGS, "BadSignature"),
        ("signed by another key", token(rs(None), &base(), &rsa2().signing, Algorithm::RS256), ID_TOKEN_ALGS, "BadSignature"),
        ("alg none", unsigned, ID_TOKEN_ALGS, "AlgNone"),
        ("HS256", token(json!({"alg": "HS256"}), &base(), &hmac, Algorithm::HS256), ID_TOKEN_ALGS, "SymmetricAlg"),
        ("embedded jwk", token(json!({"alg": "RS256", "kid": "rsa1", "jwk": rsa.jwk}), &base(), &rsa.signing, Algorithm::RS256), ID_TOKEN_ALGS, "ForbiddenHeader"),
        ("not a JWS", "abc.def".into(), ID_TOKEN_ALGS, "Malformed"),
        ("nonce", token(rs(None), &patched(&[("nonce", Some(json!("n")))]), &rsa.signing, Algorithm::RS256), ID_TOKEN_ALGS, "NoncePresent"),
    ];
    let jwks = cache();
    for (name, t, algs, want) in cases {
        let got = verify(&t, &jwks, &expect(algs), now()).await;
        assert_eq!(kind(&got), want, "{name}: {got:?}");
        if let Err(e) = &got {
            for part in t.split('.').filter(|p| p.len() >= 8) {
                assert!(
                    !e.to_string().contains(&part[..8]),
                    "{name}: the error quotes the token"
                );
            }
        }
    }
    let r = route(&good).unwrap();
    assert_eq!(
        (r.issuer.as_str(), r.audiences),
        (ISSUER, vec![CLIENT.to_owned()])
    );
    assert_eq!(kind(&route("x.y.z").map(|_| ())), "Malformed");
}

#[test]
fn the_id_tokens_sid_is_kept_when_usable() {
    let claims = |v: Value| v.as_object().unwrap().clone();
    assert_eq!(session_id(&claims(json!({"sid": "s"}))), Some("s"));
    assert_eq!(session_id(&claims(json!({"sid": ""}))), None);
    assert_eq!(session_id(&claims(json!({"sid": 5}))), None);
    assert_eq!(session_id(&claims(json!({"sid": "a\u{0}b"}))), None);
    assert_eq!(session_id(&claims(json!({"sid": "s".repeat(256)}))), None);
    assert_eq!(session_id(&claims(json!({}))), None);
}
