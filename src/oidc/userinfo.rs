//! The userinfo request (OIDC Core §5.3): the claims a provider releases only there (several
//! put `email`, `name` and `groups` at userinfo, not in the ID token, whenever they issue an
//! access token, as §5.4 allows).
//!
//! [`fetch`] sends `GET` with the bearer access token through orgsso's IdP client (no redirects,
//! its timeouts), reads at most [`MAX_USERINFO_BYTES`], and takes a JSON object or a signed JWT
//! (`application/jwt`) verified with the connection's JWKS under the ID token's algorithm rules.
//! Either way the answer's `sub` must equal the ID token's (§5.3.2), or its claims are someone
//! else's. Every failure is a [`UserinfoError`]: the sign-in fails rather than going on with
//! claims silently missing.
//!
//! Hand-written rather than openidconnect's `user_info` request: that one fails the whole answer
//! on one wrongly typed standard claim (an `email_verified: "true"` or a non-URL `picture`), reads
//! bodies without a bound through its stock client, and verifies signed answers only with a static
//! key set, not orgsso's JWKS cache (rotation, refetch on an unknown `kid`).

use jsonwebtoken::Algorithm;
use openidconnect::AccessToken;
use serde_json::{Map, Value};
use url::Url;

use super::printable;
use crate::jose::alg::ID_TOKEN_ALGS;
use crate::jose::compact::{self, JwsError, JwsRules, TypRule, VerifyingKey};
use crate::jose::json::parse_object;
use crate::jose::jwks::{JwksCache, JwksError};
use crate::jose::keys::describe_kid;
use crate::outbound::{read_limited, BodyError, Http};

/// Largest userinfo answer read, JSON or JWT: group lists can be long.
pub const MAX_USERINFO_BYTES: usize = 256 * 1024;

/// Header members refused in a signed userinfo answer: keys it names are never trusted, and no
/// JWS extension is supported (the ID token's rule).
const FORBIDDEN_HEADERS: &[&str] = compact::ID_TOKEN_FORBIDDEN_HEADERS;

/// What one userinfo call needs besides the HTTP client and the provider's keys.
pub struct UserinfoRequest<'a> {
    pub endpoint: &'a Url,
    pub access_token: &'a AccessToken,
    /// The verified ID token's `sub`: the answer must be about this user.
    pub subject: &'a str,
    /// The connection's issuer and client id: a signed answer's `iss` and `aud`, when present,
    /// must name them.
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The provider's ID-token algorithms (within orgsso's allow-list).
    pub algorithms: &'a [Algorithm],
}

/// Why the userinfo answer could not be used. Never holds the access token or the answer.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    #[error("its userinfo endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("its userinfo endpoint answered HTTP {status}{}", error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Status { status: u16, error: Option<String> },
    #[error("its userinfo answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("its userinfo answer could not be read: {0}")]
    Read(String),
    #[error("its userinfo answer is not a JSON object (Content-Type {content_type:?}); orgsso takes application/json or a signed application/jwt")]
    NotJson { content_type: String },
    #[error("its userinfo answer is encrypted (JWE), which orgsso does not decrypt; turn off userinfo encryption for this client at the IdP")]
    Encrypted,
    #[error("its signed userinfo answer is not acceptable: {0}")]
    BadJwt(&'static str),
    #[error("it publishes no signing key matching its signed userinfo answer ({0})")]
    UnknownKey(String),
    #[error("its signing keys could not be used for the userinfo answer: {0}")]
    Jwks(#[source] JwksError),
    #[error("its signed userinfo answer's signature does not verify with its published keys")]
    BadSignature,
    #[error("its signed userinfo answer names another issuer or another client (\"{0}\")")]
    WrongParty(&'static str),
    #[error("its userinfo answer has no \"sub\" (subject) string")]
    NoSubject,
    #[error("its userinfo answer is about another user: its \"sub\" differs from the ID token's")]
    SubjectMismatch,
}

impl UserinfoError {
    /// Stable snake_case code for the sign-in page, logs and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            UserinfoError::SubjectMismatch => "userinfo_subject_mismatch",
            UserinfoError::BadJwt(_)
            | UserinfoError::UnknownKey(_)
            | UserinfoError::BadSignature
            | UserinfoError::WrongParty(_) => "userinfo_bad_signature",
            _ => "userinfo_failed",
        }
    }
}

/// Asks the userinfo endpoint about the signed-in user and returns its claims, checked.
pub async fn fetch(
    http: &Http,
    jwks: &JwksCache,
    req: &UserinfoRequest<'_>,
) -> Result<Map<String, Value>, UserinfoError> {
    let request = http
        .get(req.endpoint.clone())
        .bearer_auth(req.access_token.secret())
        .header(
            reqwest::header::ACCEPT,
            "application/json, application/jwt;q=0.9",
        );
    let resp = http
        .send(request)
        .await
        .map_err(UserinfoError::Unreachable)?;
    let status = resp.status();
    if !status.is_success() {
        // RFC 6750 §3: `WWW-Authenticate: Bearer error="invalid_token"` says why.
        let error = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_error);
        return Err(UserinfoError::Status {
            status: status.as_u16(),
            error,
        });
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_limited(resp, MAX_USERINFO_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(n) => UserinfoError::TooLarge(n),
            BodyError::Read(r) => UserinfoError::Read(r),
        })?;
    let claims = judge(content_type.as_deref(), &body, jwks, req).await?;
    check_subject(&claims, req.subject)?;
    Ok(claims)
}

/// The `error` parameter of a Bearer challenge, printable and short.
fn bearer_error(challenge: &str) -> Option<String> {
    let rest = challenge.split_once("error=\"")?.1;
    let value = rest.split_once('"')?.0;
    Some(printable(value, 64)).filter(|v| !v.is_empty())
}

/// Reads the answer by its Content-Type: `application/jwt` is a signed JWT; anything else must
/// be a JSON object (some providers label JSON loosely, as with token answers).
async fn judge(
    content_type: Option<&str>,
    body: &[u8],
    jwks: &JwksCache,
    req: &UserinfoRequest<'_>,
) -> Result<Map<String, Value>, UserinfoError> {
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if essence == "application/jwt" {
        let text = std::str::from_utf8(body)
            .map_err(|_| UserinfoError::BadJwt("it is not text"))?
            .trim();
        return verify_jwt(text, jwks, req).await;
    }
    parse_object(body).map_err(|_| UserinfoError::NotJson {
        content_type: printable(content_type.unwrap_or("none"), 80),
    })
}

/// A signed answer: the ID token's header rules and algorithms, a key from the provider's JWKS,
/// then `iss`/`aud` when present (§5.3.2: they should be there, and name the OP and this client).
async fn verify_jwt(
    token: &str,
    jwks: &JwksCache,
    req: &UserinfoRequest<'_>,
) -> Result<Map<String, Value>, UserinfoError> {
    if token.split('.').count() == 5 {
        return Err(UserinfoError::Encrypted);
    }
    let allowed: Vec<Algorithm> = ID_TOKEN_ALGS
        .iter()
        .copied()
        .filter(|a| req.algorithms.contains(a))
        .collect();
    let rules = JwsRules {
        max_bytes: MAX_USERINFO_BYTES,
        charset_first: true,
        algorithms: &allowed,
        forbidden_headers: FORBIDDEN_HEADERS,
        typ: TypRule::Any,
    };
    let jws = compact::parse(token, &rules).map_err(jws_error)?;
    let key = jwks
        .key_for(jws.alg, jws.kid.as_deref())
        .await
        .map_err(|e| match e {
            JwksError::NoMatchingKey { kid, .. } => {
                UserinfoError::UnknownKey(describe_kid(kid.as_deref()))
            }
            other => UserinfoError::Jwks(other),
        })?;
    if !jws.registered_header_types_ok() {
        return Err(UserinfoError::BadJwt(
            "its header has a wrongly typed member",
        ));
    }
    let claims = jws
        .verify(VerifyingKey::Jwt(&key))
        .map_err(jws_error)?
        .payload_object()
        .map_err(jws_error)?;
    match claims.get("iss") {
        None => {}
        Some(Value::String(iss)) if iss == req.issuer => {}
        Some(_) => return Err(UserinfoError::WrongParty("iss")),
    }
    let aud_ok = match claims.get("aud") {
        None => true,
        Some(Value::String(a)) => a == req.client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(req.client_id)),
        Some(_) => false,
    };
    if !aud_ok {
        return Err(UserinfoError::WrongParty("aud"));
    }
    Ok(claims)
}

fn jws_error(e: JwsError) -> UserinfoError {
    match e {
        JwsError::BadSignature => UserinfoError::BadSignature,
        JwsError::TooLarge => UserinfoError::TooLarge(MAX_USERINFO_BYTES),
        JwsError::AlgNone => UserinfoError::BadJwt("it is unsigned (algorithm \"none\")"),
        JwsError::AlgSymmetric => {
            UserinfoError::BadJwt("it is signed with a shared-secret (HS*) algorithm")
        }
        JwsError::AlgNotAllowed(_) | JwsError::AlgMissing | JwsError::AlgNotString => {
            UserinfoError::BadJwt("its algorithm is not one this connection accepts")
        }
        JwsError::ForbiddenHeader(_) => {
            UserinfoError::BadJwt("its header names its own key or a critical extension")
        }
        _ => UserinfoError::BadJwt("it is not a well-formed signed JWT"),
    }
}

/// §5.3.2: the answer's `sub` must be exactly the ID token's.
fn check_subject(claims: &Map<String, Value>, expected: &str) -> Result<(), UserinfoError> {
    match claims.get("sub") {
        Some(Value::String(s)) if s == expected => Ok(()),
        Some(Value::String(_)) => Err(UserinfoError::SubjectMismatch),
        _ => Err(UserinfoError::NoSubject),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::*;
    use crate::jose::jwks::JwksSettings;
    use crate::test_support::idp_keys::*;

    const ISSUER: &str = "https://idp.example";
    const CLIENT: &str = "client-1";

    fn cache() -> JwksCache {
        JwksCache::with_keys(
            http_client(),
            // Nothing listens on port 9: every key must come from the seeded set.
            Url::parse("http://127.0.0.1:9/jwks").unwrap(),
            JwksSettings {
                refetch_cooldown: std::time::Duration::from_secs(3600),
                max_age: std::time::Duration::from_secs(3600),
                ..JwksSettings::default()
            },
            &jwks(&[&rsa1().jwk]),
        )
        .unwrap()
    }

    async fn judged(content_type: Option<&str>, body: &str) -> Result<Value, String> {
        let endpoint = Url::parse("https://idp.example/me").unwrap();
        let token = AccessToken::new("at".into());
        let req = UserinfoRequest {
            endpoint: &endpoint,
            access_token: &token,
            subject: "user-1",
            issuer: ISSUER,
            client_id: CLIENT,
            algorithms: &[Algorithm::RS256],
        };
        let claims = judge(content_type, body.as_bytes(), &cache(), &req)
            .await
            .map_err(|e| format!("{}: {e}", e.code()))?;
        check_subject(&claims, req.subject).map_err(|e| format!("{}: {e}", e.code()))?;
        Ok(Value::Object(claims))
    }

    #[tokio::test]
    async fn answers_are_judged_by_type_signature_and_subject() {
        let good = json!({"sub": "user-1", "email": "a@example.com", "groups": ["eng"]});
        let signed = |claims: &Value| sign(&rsa1(), claims);
        let other_key = |claims: &Value| {
            sign_raw(
                &json!({"alg": "RS256", "kid": "rsa1"}),
                claims,
                &rsa2().signing,
                Algorithm::RS256,
            )
        };
        let jwt = Some("application/jwt");
        let plain = Some("application/json; charset=utf-8");
        type Case<'a> = (&'a str, Option<&'a str>, String, Result<(), &'a str>);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("JSON", plain, good.to_string(), Ok(())),
            ("JSON labelled loosely", Some("text/plain"), good.to_string(), Ok(())),
            ("JSON without a label", None, good.to_string(), Ok(())),
            ("signed by the IdP", jwt, signed(&good), Ok(())),
            ("signed, naming this IdP and client", jwt, signed(&json!({"sub": "user-1", "iss": ISSUER, "aud": [CLIENT, "x"]})), Ok(())),
            ("another sub", plain, json!({"sub": "user-2"}).to_string(), Err("userinfo_subject_mismatch")),
            ("sub as a number", plain, json!({"sub": 1}).to_string(), Err("userinfo_failed: its userinfo answer has no \"sub\"")),
            ("no sub", plain, json!({"email": "a@example.com"}).to_string(), Err("userinfo_failed")),
            ("HTML", Some("text/html"), "<html>oops".into(), Err("userinfo_failed: its userinfo answer is not a JSON object (Content-Type \"text/html\")")),
            ("JSON array", plain, "[1]".into(), Err("not a JSON object")),
            ("duplicate members", plain, r#"{"sub":"user-1","sub":"user-2"}"#.into(), Err("not a JSON object")),
            ("signed by another key", jwt, other_key(&good), Err("userinfo_bad_signature: its signed userinfo answer's signature does not verify")),
            // An unknown kid refetches the JWKS, which here cannot be reached.
            ("unknown kid", jwt, sign_raw(&json!({"alg": "RS256", "kid": "nope"}), &good, &rsa2().signing, Algorithm::RS256), Err("userinfo_failed: its signing keys could not be used")),
            ("no kid, another key", jwt, sign_raw(&json!({"alg": "RS256"}), &good, &rsa2().signing, Algorithm::RS256), Err("userinfo_bad_signature")),
            ("alg none", jwt, format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(good.to_string().as_bytes())), Err("unsigned")),
            ("HS256", jwt, sign_raw(&json!({"alg": "HS256"}), &good, &jsonwebtoken::EncodingKey::from_secret(b"k"), Algorithm::HS256), Err("shared-secret")),
            ("embedded key", jwt, sign_raw(&json!({"alg": "RS256", "kid": "rsa1", "jwk": rsa1().jwk}), &good, &rsa1().signing, Algorithm::RS256), Err("names its own key")),
            ("another issuer", jwt, signed(&json!({"sub": "user-1", "iss": "https://evil.example"})), Err("another issuer or another client (\"iss\")")),
            ("another client", jwt, signed(&json!({"sub": "user-1", "aud": "evil"})), Err("(\"aud\")")),
            ("signed, another sub", jwt, signed(&json!({"sub": "user-2"})), Err("userinfo_subject_mismatch")),
            ("encrypted", jwt, "a.b.c.d.e".into(), Err("encrypted (JWE)")),
            ("garbage JWT", jwt, "not-a-jwt".into(), Err("not a well-formed signed JWT")),
        ];
        for (case, content_type, body, expected) in cases {
            let got = judged(content_type, &body).await;
            match (expected, got) {
                (Ok(()), Ok(claims)) => assert_eq!(claims["sub"], "user-1", "{case}"),
                (Err(says), Err(e)) => assert!(e.contains(says), "{case}: {e}"),
                (expected, got) => panic!("{case}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn bearer_challenges_give_their_error() {
        for (header, expected) in [
            (
                r#"Bearer error="invalid_token", error_description="x""#,
                Some("invalid_token"),
            ),
            ("Bearer realm=\"x\"", None),
            ("Bearer error=\"\"", None),
            ("Bearer error=\"bad\r\n\"", Some("bad")),
        ] {
            assert_eq!(bearer_error(header).as_deref(), expected, "{header}");
        }
    }
}
