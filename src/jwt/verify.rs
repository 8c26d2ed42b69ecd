//! Verifying an app's bearer token against the JWT secrets of its org: a policy over
//! [`crate::jose`].
//!
//! * The token is parsed strictly (size limit, exactly three base64url parts
//!   without padding, JSON objects without duplicate members) before any key
//!   is touched. Only `HS256` and `RS256` are accepted; `none`, other
//!   algorithms and headers that carry or point at keys (`jwk`, `jku`, `x5u`,
//!   `x5c`) or demand extensions (`crit`, `b64`) are refused.
//! * The algorithm is pinned by each secret's kind ([`SecretKind::algorithm`]):
//!   an `HS256` token is only ever checked against hs256 secrets, an `RS256`
//!   token only against RSA keys. The header's `alg` merely selects which
//!   secrets are tried.
//! * The payload is parsed only after a signature verified, then its claims
//!   are checked against that secret's audiences and issuers.
//!
//! What is specific to org secrets lives here: [`TokenError`] and its reasons, narrowing the
//! secrets by `kid`, and ranking the failures when several secrets were tried.
//!
//! Error reasons ([`TokenError`]'s `Display`) are short, fixed, plain-ASCII
//! phrases without quotes or backslashes, fit for
//! `WWW-Authenticate: Bearer error="invalid_token", error_description="…"`.
//! They never contain any part of the token or of a key.
//!
//! [`SecretKind::algorithm`]: super::secret_input::SecretKind::algorithm

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::ready_secret::{ReadyKey, ReadySecret};
use crate::jose::alg::{alg_name, ORG_SECRET_ALGS};
use crate::jose::claims::{AudienceRule, ClaimError, ClaimRules, IssuerRule};
use crate::jose::compact::{
    self, Jws, JwsError, JwsRules, TypRule, VerifyingKey, BEARER_FORBIDDEN_HEADERS,
    MAX_BEARER_TOKEN_BYTES,
};
use crate::jose::json::parse_object;
use crate::jose::jwks::JwksError;

/// A token that verified with one of the org's secrets and passed the claim
/// checks.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedToken {
    /// Name of the secret that verified the token.
    pub secret: String,
    /// All claims of the token.
    pub claims: Map<String, Value>,
}

/// Why a token was refused. `Display` is the short reason for
/// `error_description` (see [`TokenError::www_authenticate`]); [`code`]
/// is a stable snake_case identifier for logs and metrics.
///
/// [`code`]: TokenError::code
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("token is larger than {MAX_BEARER_TOKEN_BYTES} bytes")]
    TooLarge,
    /// The token is not a well-formed JWS; the text is a fixed phrase.
    #[error("{0}")]
    Malformed(&'static str),
    #[error("unsigned tokens with alg none are not accepted")]
    AlgNone,
    /// A JOSE algorithm other than HS256 and RS256 (`None`: not a known one).
    #[error("{}", unsupported_reason(*.0))]
    UnsupportedAlgorithm(Option<Algorithm>),
    #[error("the token header must not contain {0}")]
    ForbiddenHeader(&'static str),
    /// The org has no secret of the family the token's algorithm needs.
    #[error("no secret of this org accepts {} tokens", alg_name(*.0))]
    NoSecretForAlgorithm(Algorithm),
    /// Every secret of the right family knows its key id and none matches.
    #[error("no secret of this org has the key id of the token")]
    UnknownKeyId,
    #[error("the token signature is invalid")]
    BadSignature,
    /// A jwk_url secret's key set has no key for the token (`source` names
    /// the URL and key id, for logs).
    #[error("no published key of this org matches the token")]
    NoPublishedKey {
        secret: String,
        #[source]
        source: JwksError,
    },
    /// A jwk_url secret's key set could not be loaded (`source` says why,
    /// for logs).
    #[error("the signing keys of this org could not be loaded")]
    KeysUnavailable {
        secret: String,
        #[source]
        source: JwksError,
    },
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the {0} claim of the token has the wrong type")]
    InvalidClaimType(&'static str),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token audience is not accepted")]
    AudienceMismatch,
    #[error("the token issuer is not accepted")]
    IssuerMismatch,
}

/// `Bearer error="invalid_token", error_description="<reason>"`, the reason
/// kept to printable ASCII without quotes or backslashes (at most 200
/// characters) so that it can never break out of the quoted string.
pub fn invalid_token_challenge(reason: &str) -> String {
    let reason: String = reason
        .chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(200)
        .collect();
    format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"")
}

fn unsupported_reason(alg: Option<Algorithm>) -> String {
    match alg {
        Some(alg) => format!(
            "tokens signed with {} are not accepted, only HS256 and RS256",
            alg_name(alg)
        ),
        None => "the token algorithm is not supported, only HS256 and RS256".to_owned(),
    }
}

impl TokenError {
    /// Stable snake_case code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLarge => "token_too_large",
            TokenError::Malformed(_) => "malformed",
            TokenError::AlgNone => "alg_none",
            TokenError::UnsupportedAlgorithm(_) => "unsupported_alg",
            TokenError::ForbiddenHeader(_) => "forbidden_header",
            TokenError::NoSecretForAlgorithm(_) => "no_secret_for_alg",
            TokenError::UnknownKeyId => "unknown_kid",
            TokenError::BadSignature => "bad_signature",
            TokenError::NoPublishedKey { .. } => "no_published_key",
            TokenError::KeysUnavailable { .. } => "keys_unavailable",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::InvalidClaimType(_) => "invalid_claim_type",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::AudienceMismatch => "invalid_audience",
            TokenError::IssuerMismatch => "invalid_issuer",
        }
    }

    /// Whether the org's configuration or an identity provider, rather than
    /// the token, is at fault (a jwk_url key set could not be loaded).
    pub fn is_server_side(&self) -> bool {
        matches!(self, TokenError::KeysUnavailable { .. })
    }

    /// The full `WWW-Authenticate` header value for this error:
    /// `Bearer error="invalid_token", error_description="<reason>"`.
    pub fn www_authenticate(&self) -> String {
        invalid_token_challenge(&self.to_string())
    }

    /// How informative this failure is when several secrets were tried: the
    /// highest-ranked failure is reported.
    fn rank(&self, kid_matched: bool) -> u8 {
        match self {
            // The signature verified: the claims are the problem.
            TokenError::MissingClaim(_)
            | TokenError::InvalidClaimType(_)
            | TokenError::Expired
            | TokenError::NotYetValid
            | TokenError::IssuedInFuture
            | TokenError::AudienceMismatch
            | TokenError::IssuerMismatch => 50,
            TokenError::KeysUnavailable { .. } => 40,
            TokenError::BadSignature if kid_matched => 30,
            TokenError::NoPublishedKey { .. } => 20,
            TokenError::BadSignature => 10,
            _ => 0,
        }
    }
}

const NOT_JWS: &str = "the token is not a JWT in compact form";

impl From<JwsError> for TokenError {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::TooLarge => TokenError::TooLarge,
            JwsError::NotBase64UrlChars
            | JwsError::NotThreeParts
            | JwsError::EmptyPart
            | JwsError::BadType => TokenError::Malformed(NOT_JWS),
            JwsError::HeaderNotBase64 => TokenError::Malformed("the token header is not base64url"),
            JwsError::HeaderNotObject => {
                TokenError::Malformed("the token header is not a JSON object")
            }
            JwsError::HeaderDuplicate => {
                TokenError::Malformed("the token header has duplicate members")
            }
            JwsError::AlgMissing => TokenError::Malformed("the token header has no alg"),
            JwsError::AlgNotString => TokenError::Malformed("the token alg is not a string"),
            JwsError::AlgNone => TokenError::AlgNone,
            JwsError::AlgSymmetric => TokenError::UnsupportedAlgorithm(None),
            JwsError::AlgNotAllowed(alg) => TokenError::UnsupportedAlgorithm(alg),
            JwsError::ForbiddenHeader(name) => TokenError::ForbiddenHeader(name),
            JwsError::KidNotString => TokenError::Malformed("the token kid is not a string"),
            JwsError::SignatureNotBase64 => {
                TokenError::Malformed("the token signature is not base64url")
            }
            JwsError::PayloadNotBase64 => {
                TokenError::Malformed("the token payload is not base64url")
            }
            JwsError::PayloadNotObject => {
                TokenError::Malformed("the token payload is not a JSON object")
            }
            JwsError::PayloadDuplicate => {
                TokenError::Malformed("the token payload has duplicate members")
            }
            JwsError::BadSignature => TokenError::BadSignature,
        }
    }
}

impl From<ClaimError> for TokenError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Missing(claim) => TokenError::MissingClaim(claim),
            ClaimError::WrongType(claim) => TokenError::InvalidClaimType(claim),
            // Not produced by the rules bearer tokens use (no iat age limit).
            ClaimError::Expired | ClaimError::IssuedTooLongAgo => TokenError::Expired,
            ClaimError::NotYetValid => TokenError::NotYetValid,
            ClaimError::IssuedInFuture => TokenError::IssuedInFuture,
            ClaimError::BadAudience | ClaimError::UntrustedAudience => TokenError::AudienceMismatch,
            ClaimError::BadIssuer => TokenError::IssuerMismatch,
        }
    }
}

/// The JWS rules of bearer tokens checked against org secrets.
const RULES: JwsRules<'static> = JwsRules {
    max_bytes: MAX_BEARER_TOKEN_BYTES,
    charset_first: false,
    algorithms: ORG_SECRET_ALGS,
    forbidden_headers: BEARER_FORBIDDEN_HEADERS,
    typ: TypRule::Any,
};

/// A token split and checked up to (not including) its signature.
struct ParsedToken<'a> {
    jws: Jws<'a>,
    payload: Vec<u8>,
}

fn parse_token(token: &str) -> Result<ParsedToken<'_>, TokenError> {
    let jws = compact::parse(token, &RULES)?;
    if jws.signature_b64().is_empty() {
        return Err(TokenError::Malformed("the token has no signature"));
    }
    // Decoded now, before any secret is chosen, so a damaged token is reported as such.
    jws.signature()?;
    let payload = jws.payload()?;
    Ok(ParsedToken { jws, payload })
}

/// Checks a token's form and header without verifying anything: its
/// algorithm (HS256 or RS256) and key id. Refuses oversized and malformed
/// tokens, `alg: none`, other algorithms, and `jwk`/`jku`/`x5u`/`x5c`/`crit`/
/// `b64` headers. Tests check `parse_token` through it.
#[cfg(test)]
fn peek_header(token: &str) -> Result<(Algorithm, Option<String>), TokenError> {
    let parsed = parse_token(token)?;
    Ok((parsed.jws.alg, parsed.jws.kid))
}

/// Verifies `token` against an org's secrets and checks its claims.
///
/// Only secrets whose kind fits the token's algorithm are tried (HS256 →
/// hs256; RS256 → rs256, rs256_public, jwk_url), verifying with the kind's
/// algorithm, never the header's. When the token has a `kid`, secrets with
/// a different known `kid` are skipped; secrets with that exact `kid` are
/// tried first, then secrets without a `kid` (always tried), each group in
/// the given order. The first secret whose signature verifies and whose
/// audience/issuer rules the claims satisfy wins. If none does, the most
/// informative failure is returned (a claim failure after a verified
/// signature beats a key-set failure, which beats a bad signature).
///
/// Must be polled within a Tokio runtime when jwk_url secrets are tried.
pub async fn verify_with_secrets(
    token: &str,
    secrets: &[Arc<ReadySecret>],
    now: OffsetDateTime,
    leeway: Duration,
) -> Result<VerifiedToken, TokenError> {
    let parsed = parse_token(token)?;
    let alg = parsed.jws.alg;
    let fitting: Vec<&ReadySecret> = secrets
        .iter()
        .map(Arc::as_ref)
        .filter(|s| s.kind.algorithm() == alg)
        .collect();
    if fitting.is_empty() {
        return Err(TokenError::NoSecretForAlgorithm(alg));
    }
    let candidates: Vec<(&ReadySecret, bool)> = match parsed.jws.kid.as_deref() {
        None => fitting.iter().map(|s| (*s, false)).collect(),
        Some(kid) => {
            let exact = fitting
                .iter()
                .filter(|s| s.kid.as_deref() == Some(kid))
                .map(|s| (*s, true));
            let open = fitting
                .iter()
                .filter(|s| s.kid.is_none())
                .map(|s| (*s, false));
            exact.chain(open).collect()
        }
    };
    if candidates.is_empty() {
        return Err(TokenError::UnknownKeyId);
    }

    let mut claims: Option<Map<String, Value>> = None;
    let mut best: Option<(u8, TokenError)> = None;
    for (secret, kid_matched) in candidates {
        let failure = match verify_signature(secret, &parsed.jws).await {
            Ok(()) => {
                if claims.is_none() {
                    // Same payload for every secret: a payload that is not a
                    // JSON object can never be accepted.
                    claims = Some(parse_object(&parsed.payload).map_err(JwsError::from)?);
                }
                let map = claims.as_ref().ok_or(TokenError::BadSignature)?;
                match check_claim_map(map, &secret.audiences, &secret.issuers, now, leeway) {
                    Ok(()) => {
                        return Ok(VerifiedToken {
                            secret: secret.name.clone(),
                            claims: claims.take().unwrap_or_default(),
                        });
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        tracing::debug!(
            secret = %secret.name,
            kind = secret.kind.as_str(),
            error_code = failure.code(),
            "JWT secret did not accept the token"
        );
        let rank = failure.rank(kid_matched);
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, failure));
        }
    }
    Err(best.map_or(TokenError::BadSignature, |(_, e)| e))
}

/// Verifies the signature with the secret's key and the algorithm pinned by
/// its kind.
async fn verify_signature(secret: &ReadySecret, token: &Jws<'_>) -> Result<(), TokenError> {
    // Pinned twice: by the secret's kind (which selected it) and by its key
    // (so that a kind edited after construction cannot pair an HMAC key with
    // an RS256 token or the reverse).
    let key_alg = match secret.key() {
        ReadyKey::Hmac(_) => Algorithm::HS256,
        ReadyKey::Rsa(_) | ReadyKey::Jwks(_) => Algorithm::RS256,
        ReadyKey::Unusable => return Err(TokenError::BadSignature),
    };
    if key_alg != token.alg || secret.kind.algorithm() != token.alg {
        return Err(TokenError::BadSignature);
    }
    let verified = match secret.key() {
        // Constant-time comparison (aws-lc's HMAC verify, through jsonwebtoken).
        ReadyKey::Hmac(key) => token.verify(VerifyingKey::Jwt(key)),
        ReadyKey::Rsa(key) => token.verify(VerifyingKey::Rs256(key)),
        ReadyKey::Jwks(cache) => {
            let key = cache
                .key_for(Algorithm::RS256, token.kid.as_deref())
                .await
                .map_err(|source| {
                    let secret = secret.name.clone();
                    if source.is_idp_fault() {
                        TokenError::KeysUnavailable { secret, source }
                    } else {
                        TokenError::NoPublishedKey { secret, source }
                    }
                })?;
            token.verify(VerifyingKey::Jwt(&key))
        }
        ReadyKey::Unusable => Err(JwsError::BadSignature),
    };
    // The payload was decoded up front (its errors rank before signature checks) and is
    // parsed by the caller only after this succeeded.
    verified.map(|_| ()).map_err(|_| TokenError::BadSignature)
}

/// Checks a token's claims (`claims` must be a JSON object):
///
/// * registered claims must have their types: `exp`, `nbf`, `iat` numbers;
///   `iss`, `sub` strings; `aud` a string or an array of strings;
/// * `exp` is required and `now` must be before `exp + leeway`;
/// * `nbf`, when present, must not be after `now + leeway`;
/// * `iat`, when present, must not be after `now + leeway`;
/// * with a non-empty `audiences`, `aud` is required and must contain one
///   of them; with a non-empty `issuers`, `iss` is required and must be one
///   of them (exact comparison). Empty lists mean no check.
#[cfg(test)]
pub fn check_claims(
    claims: &Value,
    audiences: &[String],
    issuers: &[String],
    now: OffsetDateTime,
    leeway: Duration,
) -> Result<(), TokenError> {
    let map = claims.as_object().ok_or(TokenError::Malformed(
        "the token payload is not a JSON object",
    ))?;
    check_claim_map(map, audiences, issuers, now, leeway)
}

/// The claims policy of bearer tokens ([`ClaimRules::check`]) with a secret's lists.
pub(crate) fn check_claim_map(
    map: &Map<String, Value>,
    audiences: &[String],
    issuers: &[String],
    now: OffsetDateTime,
    leeway: Duration,
) -> Result<(), TokenError> {
    let rules = ClaimRules {
        issuer: IssuerRule::any_if_empty(issuers),
        audience: AudienceRule::any_if_empty(audiences),
        max_iat_age: None,
        leeway,
        now,
    };
    Ok(rules.check(map)?)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;
    use url::Url;

    use super::*;
    use crate::jose::jwks::{JwksCache, JwksSettings};
    use crate::jwt::secret_input::{parse_secret, ParsedSecret, SecretInput, SecretKind};
    use crate::test_support::idp_keys::http_client;
    use crate::test_support::jwks_server::{Answer, JwksServer};
    use crate::test_support::secret_keys::*;

    const NOW: i64 = 1_700_000_000;
    const HS_SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";
    const OTHER_HS_SECRET: &str = "another-hs256-secret-32-bytes-long!!";
    const LEEWAY: Duration = Duration::from_secs(60);

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(NOW).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A compact JWS with an arbitrary header, signed with `key` using `alg`.
    fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
        format!("{message}.{signature}")
    }

    /// A compact JWS whose payload is the given raw bytes.
    fn sign_raw_payload(
        header: &Value,
        payload: &[u8],
        key: &EncodingKey,
        alg: Algorithm,
    ) -> String {
        let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
        format!("{message}.{signature}")
    }

    /// The signing key orgsso itself would use: the stored PKCS#1 form of a PKCS#1 or PKCS#8 PEM.
    fn rsa_encoding_key(pem: &str) -> EncodingKey {
        let pkcs1 = crate::jwt::rsa_pem::parse_private_key_pem(pem)
            .unwrap()
            .pkcs1_pem()
            .unwrap();
        EncodingKey::from_rsa_pem(pkcs1.as_bytes()).unwrap()
    }

    fn good_claims() -> Value {
        json!({
            "sub": "user-1",
            "iss": "https://issuer.example",
            "aud": "app",
            "iat": NOW - 10,
            "exp": NOW + 600,
            "email": "u@example.com",
        })
    }

    fn with(mut claims: Value, changes: Value) -> Value {
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    fn parsed(v: Value) -> ParsedSecret {
        parse_secret(SecretInput::from_json(v).unwrap()).unwrap()
    }

    fn ready_rsa(p: &ParsedSecret, aud: &[&str], iss: &[&str]) -> Arc<ReadySecret> {
        Arc::new(
            ReadySecret::rsa_public_pem(
                p.name.clone(),
                p.kind,
                p.public.as_deref().unwrap(),
                p.kid.clone(),
                strings(aud),
                strings(iss),
            )
            .unwrap(),
        )
    }

    fn ready_hs(name: &str, secret: &str, aud: &[&str], iss: &[&str]) -> Arc<ReadySecret> {
        Arc::new(ReadySecret::hs256(
            name,
            secret.as_bytes(),
            strings(aud),
            strings(iss),
        ))
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    struct Keys {
        hs: EncodingKey,
        hs_other: EncodingKey,
        a: EncodingKey,
        b: EncodingKey,
        kid_a: String,
        kid_b: String,
        parsed_a: ParsedSecret,
        parsed_a_public: ParsedSecret,
        parsed_b: ParsedSecret,
    }

    fn keys() -> Keys {
        let parsed_a = parsed(json!({"type": "rs256", "name": "rs-a", "private_key": RSA_A_PKCS1}));
        let parsed_a_public =
            parsed(json!({"type": "rs256_public", "name": "pub-a", "public_key": RSA_A_SPKI}));
        let parsed_b = parsed(json!({"type": "rs256", "name": "rs-b", "private_key": RSA_B_PKCS8}));
        Keys {
            hs: EncodingKey::from_secret(HS_SECRET.as_bytes()),
            hs_other: EncodingKey::from_secret(OTHER_HS_SECRET.as_bytes()),
            a: rsa_encoding_key(RSA_A_PKCS1),
            b: rsa_encoding_key(RSA_B_PKCS8),
            kid_a: parsed_a.kid.clone().unwrap(),
            kid_b: parsed_b.kid.clone().unwrap(),
            parsed_a,
            parsed_a_public,
            parsed_b,
        }
    }

    fn hs_token(k: &Keys, claims: &Value) -> String {
        sign_raw(
            &json!({"alg": "HS256", "typ": "JWT"}),
            claims,
            &k.hs,
            Algorithm::HS256,
        )
    }

    fn rs_token(key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        sign_raw(&header, claims, key, Algorithm::RS256)
    }

    enum Expect {
        Ok(&'static str),
        Err(&'static str),
    }

    async fn run(cases: Vec<(&str, String, Vec<Arc<ReadySecret>>, Expect)>) {
        for (what, token, secrets, expect) in cases {
            let result = verify_with_secrets(&token, &secrets, now(), LEEWAY).await;
            match (expect, result) {
                (Expect::Ok(name), Ok(verified)) => {
                    assert_eq!(verified.secret, name, "{what}");
                    assert_eq!(verified.claims["sub"], "user-1", "{what}");
                    assert_eq!(verified.claims["email"], "u@example.com", "{what}");
                }
                (Expect::Err(code), Err(e)) => {
                    assert_eq!(e.code(), code, "{what}: {e}");
                    assert_reason_is_header_safe(&e);
                }
                (Expect::Ok(name), Err(e)) => {
                    panic!(
                        "{what}: expected success with {name}, got {} ({e})",
                        e.code()
                    )
                }
                (Expect::Err(code), Ok(v)) => {
                    panic!(
                        "{what}: expected {code}, but {} accepted the token",
                        v.secret
                    )
                }
            }
        }
    }

    fn assert_reason_is_header_safe(e: &TokenError) {
        let reason = e.to_string();
        assert!(!reason.is_empty());
        assert!(
            reason
                .chars()
                .all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\'),
            "{reason:?}"
        );
        assert_eq!(
            e.www_authenticate(),
            format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"")
        );
    }

    #[tokio::test]
    async fn each_kind_accepts_its_tokens_and_refuses_others() {
        let k = keys();
        let hs = ready_hs("hs", HS_SECRET, &[], &[]);
        let hs_other = ready_hs("hs-other", OTHER_HS_SECRET, &[], &[]);
        let rs_a = ready_rsa(&k.parsed_a, &[], &[]);
        let pub_a = ready_rsa(&k.parsed_a_public, &[], &[]);
        let rs_b = ready_rsa(&k.parsed_b, &[], &[]);
        let claims = good_claims();
        let ka = Some(k.kid_a.as_str());
        let kb = Some(k.kid_b.as_str());

        // HMAC over the token with the RSA public key's PEM bytes as the
        // secret: the classic algorithm-confusion forgery.
        let confused = |header_alg: &str, pem: &str| {
            let message = format!(
                "{}.{}",
                b64(json!({"alg": header_alg, "kid": k.kid_a})
                    .to_string()
                    .as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig = jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &EncodingKey::from_secret(pem.as_bytes()),
                Algorithm::HS256,
            )
            .unwrap();
            format!("{message}.{sig}")
        };
        let stored_pem = k.parsed_a_public.public.clone().unwrap();

        let mut tampered = rs_token(&k.a, ka, &claims);
        let payload_start = tampered.find('.').unwrap() + 1;
        let evil = b64(with(claims.clone(), json!({"sub": "admin"}))
            .to_string()
            .as_bytes());
        let payload_end = tampered.rfind('.').unwrap();
        tampered.replace_range(payload_start..payload_end, &evil);

        #[rustfmt::skip]
        let cases = vec![
            ("hs256 good", hs_token(&k, &claims), vec![hs.clone()], Expect::Ok("hs")),
            ("hs256 second secret", hs_token(&k, &claims), vec![hs_other.clone(), hs.clone()], Expect::Ok("hs")),
            ("rs256 good", rs_token(&k.a, ka, &claims), vec![rs_a.clone()], Expect::Ok("rs-a")),
            ("rs256 without kid", rs_token(&k.a, None, &claims), vec![rs_b.clone(), rs_a.clone()], Expect::Ok("rs-a")),
            ("rs256_public good", rs_token(&k.a, ka, &claims), vec![pub_a.clone()], Expect::Ok("pub-a")),
            ("kid picks the right one of two rs256 secrets", rs_token(&k.b, kb, &claims), vec![rs_a.clone(), rs_b.clone()], Expect::Ok("rs-b")),
            ("kid skips the secret that would verify", rs_token(&k.b, ka, &claims), vec![rs_a.clone(), rs_b.clone()], Expect::Err("bad_signature")),
            ("unknown kid", rs_token(&k.a, Some("nope"), &claims), vec![rs_a.clone(), rs_b.clone()], Expect::Err("unknown_kid")),
            ("first of two verifying secrets wins", rs_token(&k.a, None, &claims), vec![pub_a.clone(), rs_a.clone()], Expect::Ok("pub-a")),
            (
                "hs256 wrong secret",
                sign_raw(
                    &json!({"alg": "HS256"}),
                    &claims,
                    &k.hs_other,
                    Algorithm::HS256,
                ),
                vec![hs.clone()],
                Expect::Err("bad_signature"),
            ),
            ("rs256 wrong key", rs_token(&k.b, None, &claims), vec![rs_a.clone()], Expect::Err("bad_signature")),
            ("tampered payload", tampered, vec![rs_a.clone()], Expect::Err("bad_signature")),
            ("HS256 token, org has only RSA keys", hs_token(&k, &claims), vec![rs_a.clone(), pub_a.clone()], Expect::Err("no_secret_for_alg")),
            ("RS256 token, org has only hs256", rs_token(&k.a, None, &claims), vec![hs.clone()], Expect::Err("no_secret_for_alg")),
            ("no secrets at all", hs_token(&k, &claims), vec![], Expect::Err("no_secret_for_alg")),
            (
                "alg confusion: HMAC with the input PEM vs rs256_public",
                confused("HS256", RSA_A_SPKI),
                vec![pub_a.clone()],
                Expect::Err("no_secret_for_alg"),
            ),
            (
                "alg confusion: HMAC with the stored PEM vs rs256_public",
                confused("HS256", &stored_pem),
                vec![pub_a.clone(), rs_a.clone()],
                Expect::Err("no_secret_for_alg"),
            ),
            (
                "alg confusion with an hs256 secret present",
                confused("HS256", &stored_pem),
                vec![pub_a.clone(), hs.clone()],
                Expect::Err("bad_signature"),
            ),
            (
                "alg confusion: HMAC signature under an RS256 header",
                confused("RS256", &stored_pem),
                vec![pub_a.clone()],
                Expect::Err("bad_signature"),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(br#"{"alg":"none","typ":"JWT"}"#),
                    b64(claims.to_string().as_bytes())
                ),
                vec![hs.clone(), pub_a.clone()],
                Expect::Err("alg_none"),
            ),
            ("alg None with a signature", format!("{}.{}.c2ln", b64(br#"{"alg":"None"}"#), b64(b"{}")), vec![hs.clone()], Expect::Err("alg_none")),
            ("HS512", sign_raw(&json!({"alg": "HS512"}), &claims, &k.hs, Algorithm::HS512), vec![hs.clone()], Expect::Err("unsupported_alg")),
            ("PS256", sign_raw(&json!({"alg": "PS256"}), &claims, &k.a, Algorithm::PS256), vec![rs_a.clone()], Expect::Err("unsupported_alg")),
            (
                "embedded jwk header",
                sign_raw(
                    &json!({"alg": "RS256", "jwk": k.parsed_b.public_jwk}),
                    &claims,
                    &k.b,
                    Algorithm::RS256,
                ),
                vec![rs_a.clone()],
                Expect::Err("forbidden_header"),
            ),
        ];
        run(cases).await;
    }

    #[tokio::test]
    async fn claims_are_checked_against_the_verifying_secret() {
        let k = keys();
        let hs_aud = ready_hs(
            "hs-aud",
            HS_SECRET,
            &["app", "app2"],
            &["https://issuer.example", "https://other.example"],
        );
        let hs_other = ready_hs("hs-other", OTHER_HS_SECRET, &[], &[]);
        let rs_aud = ready_rsa(&k.parsed_a, &["app"], &["https://issuer.example"]);
        let g = good_claims();
        let hs = |changes: Value| hs_token(&k, &with(g.clone(), changes));
        #[rustfmt::skip]
        let cases = vec![
            ("aud string", hs(json!({})), vec![hs_aud.clone()], Expect::Ok("hs-aud")),
            ("aud array sharing one value", hs(json!({"aud": ["x", "app2"]})), vec![hs_aud.clone()], Expect::Ok("hs-aud")),
            ("second issuer of the list", hs(json!({"iss": "https://other.example"})), vec![hs_aud.clone()], Expect::Ok("hs-aud")),
            ("wrong aud", hs(json!({"aud": "x"})), vec![hs_aud.clone()], Expect::Err("invalid_audience")),
            ("aud array without a shared value", hs(json!({"aud": ["x", "y"]})), vec![hs_aud.clone()], Expect::Err("invalid_audience")),
            ("empty aud array", hs(json!({"aud": []})), vec![hs_aud.clone()], Expect::Err("invalid_audience")),
            ("missing aud", hs(json!({"aud": null})), vec![hs_aud.clone()], Expect::Err("missing_claim")),
            ("aud is case sensitive", hs(json!({"aud": "APP"})), vec![hs_aud.clone()], Expect::Err("invalid_audience")),
            ("wrong iss", hs(json!({"iss": "https://evil.example"})), vec![hs_aud.clone()], Expect::Err("invalid_issuer")),
            ("missing iss", hs(json!({"iss": null})), vec![hs_aud.clone()], Expect::Err("missing_claim")),
            ("iss with trailing slash", hs(json!({"iss": "https://issuer.example/"})), vec![hs_aud.clone()], Expect::Err("invalid_issuer")),
            ("expired", hs(json!({"exp": NOW - 61})), vec![hs_aud.clone()], Expect::Err("expired")),
            ("expired within leeway", hs(json!({"exp": NOW - 59})), vec![hs_aud.clone()], Expect::Ok("hs-aud")),
            ("no exp", hs(json!({"exp": null})), vec![hs_aud.clone()], Expect::Err("missing_claim")),
            ("nbf in the future", hs(json!({"nbf": NOW + 120})), vec![hs_aud.clone()], Expect::Err("not_yet_valid")),
            ("nbf in the past", hs(json!({"nbf": NOW - 5})), vec![hs_aud.clone()], Expect::Ok("hs-aud")),
            ("iat in the future", hs(json!({"iat": NOW + 120})), vec![hs_aud.clone()], Expect::Err("issued_in_future")),
            ("exp as string", hs(json!({"exp": "9999999999"})), vec![hs_aud.clone()], Expect::Err("invalid_claim_type")),
            ("aud as number", hs(json!({"aud": 7})), vec![hs_other.clone(), hs_aud.clone()], Expect::Err("invalid_claim_type")),
            ("iss not a string", hs(json!({"iss": ["https://issuer.example"]})), vec![hs_aud.clone()], Expect::Err("invalid_claim_type")),
            ("sub not a string", hs(json!({"sub": 12})), vec![hs_aud.clone()], Expect::Err("invalid_claim_type")),
            ("nbf as bool", hs(json!({"nbf": true})), vec![hs_aud.clone()], Expect::Err("invalid_claim_type")),
            (
                "claim failure beats bad signature (claim secret last)",
                hs(json!({"aud": "x"})),
                vec![hs_other.clone(), hs_aud.clone()],
                Expect::Err("invalid_audience"),
            ),
            (
                "claim failure beats bad signature (claim secret first)",
                hs(json!({"aud": "x"})),
                vec![hs_aud.clone(), hs_other.clone()],
                Expect::Err("invalid_audience"),
            ),
            ("rs256 audience and issuer", rs_token(&k.a, None, &g), vec![rs_aud.clone()], Expect::Ok("rs-a")),
            (
                "rs256 wrong audience",
                rs_token(&k.a, None, &with(g.clone(), json!({"aud": "x"}))),
                vec![rs_aud.clone()],
                Expect::Err("invalid_audience"),
            ),
        ];
        run(cases).await;

        // Same key under two secrets with different audiences: the second
        // secret's rules accept what the first one's refuse.
        let hs_app3 = ready_hs("hs-app3", HS_SECRET, &["app3"], &[]);
        run(vec![(
            "later secret with matching audience",
            hs(json!({"aud": "app3"})),
            vec![hs_aud, hs_app3],
            Expect::Ok("hs-app3"),
        )])
        .await;
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused() {
        let k = keys();
        let hs = ready_hs("hs", HS_SECRET, &[], &[]);
        let secrets = vec![hs.clone(), ready_rsa(&k.parsed_a, &[], &[])];
        let good = hs_token(&k, &good_claims());
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let hdr = |v: &str| b64(v.as_bytes());
        let signed_payload = |payload: &[u8]| {
            sign_raw_payload(&json!({"alg": "HS256"}), payload, &k.hs, Algorithm::HS256)
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, String, &str)> = vec![
            ("empty", String::new(), "malformed"),
            ("garbage", "garbage".into(), "malformed"),
            ("two parts", format!("{h}.{p}"), "malformed"),
            ("four parts", format!("{good}.x"), "malformed"),
            ("five parts (JWE)", format!("{h}.{p}.{s}.a.b"), "malformed"),
            ("empty header", format!(".{p}.{s}"), "malformed"),
            ("empty payload", format!("{h}..{s}"), "malformed"),
            ("missing signature", format!("{h}.{p}."), "malformed"),
            ("padded signature", format!("{h}.{p}.{s}="), "malformed"),
            ("standard base64 chars", format!("{h}.{p}.{}", s.replace(['-', '_'], "+")), "malformed"),
            ("whitespace", format!(" {good}"), "malformed"),
            ("header not base64", format!("@@@.{p}.{s}"), "malformed"),
            ("header not json", format!("{}.{p}.{s}", hdr("not json")), "malformed"),
            ("header an array", format!("{}.{p}.{s}", hdr("[\"HS256\"]")), "malformed"),
            ("header duplicate alg", format!("{}.{p}.{s}", hdr(r#"{"alg":"none","alg":"HS256"}"#)), "malformed"),
            ("header without alg", format!("{}.{p}.{s}", hdr(r#"{"typ":"JWT"}"#)), "malformed"),
            ("alg a number", format!("{}.{p}.{s}", hdr(r#"{"alg":256}"#)), "malformed"),
            ("kid a number", format!("{}.{p}.{s}", hdr(r#"{"alg":"HS256","kid":1}"#)), "malformed"),
            ("unknown alg", format!("{}.{p}.{s}", hdr(r#"{"alg":"XS999"}"#)), "unsupported_alg"),
            ("lowercase alg", format!("{}.{p}.{s}", hdr(r#"{"alg":"hs256"}"#)), "unsupported_alg"),
            ("ES256", format!("{}.{p}.{s}", hdr(r#"{"alg":"ES256"}"#)), "unsupported_alg"),
            ("NONE", format!("{}.{p}.{s}", hdr(r#"{"alg":"NONE"}"#)), "alg_none"),
            ("jku", format!("{}.{p}.{s}", hdr(r#"{"alg":"HS256","jku":"https://x"}"#)), "forbidden_header"),
            ("x5u", format!("{}.{p}.{s}", hdr(r#"{"alg":"HS256","x5u":"https://x"}"#)), "forbidden_header"),
            ("x5c", format!("{}.{p}.{s}", hdr(r#"{"alg":"RS256","x5c":["MII"]}"#)), "forbidden_header"),
            ("crit", format!("{}.{p}.{s}", hdr(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#)), "forbidden_header"),
            ("b64", format!("{}.{p}.{s}", hdr(r#"{"alg":"HS256","b64":false}"#)), "forbidden_header"),
            ("payload not base64", format!("{h}.@@.{s}"), "malformed"),
            ("signed payload not json", signed_payload(b"not json"), "malformed"),
            ("signed payload an array", signed_payload(b"[1,2]"), "malformed"),
            ("signed payload duplicate exp", signed_payload(br#"{"exp":1,"exp":9999999999}"#), "malformed"),
            ("signed payload bad utf-8", signed_payload(b"{\"sub\":\"\xff\"}"), "malformed"),
            ("oversized", format!("{h}.{}.{s}", "A".repeat(MAX_BEARER_TOKEN_BYTES)), "token_too_large"),
            ("control bytes", "\u{0}.\u{1}.\u{2}".into(), "malformed"),
        ];
        for (what, token, code) in cases {
            let err = verify_with_secrets(&token, &secrets, now(), LEEWAY)
                .await
                .unwrap_err();
            assert_eq!(err.code(), code, "{what}: {err}");
            assert_reason_is_header_safe(&err);
            // peek_header agrees on everything before the signature check.
            if what.starts_with("signed payload") {
                assert!(peek_header(&token).is_ok(), "{what}");
            } else {
                assert_eq!(peek_header(&token).unwrap_err().code(), code, "{what}");
            }
        }
        // Random signature bytes of the right length never verify (and never panic).
        let rs = ready_rsa(&k.parsed_a, &[], &[]);
        for fill in [0u8, 1, 0x7f, 0xff] {
            let token = format!("{h}.{p}.{}", b64(&[fill; 256]));
            let token = token.replacen(h, &hdr(r#"{"alg":"RS256"}"#), 1);
            let err = verify_with_secrets(&token, std::slice::from_ref(&rs), now(), LEEWAY)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "bad_signature");
        }
    }

    #[tokio::test]
    async fn damaged_tokens_never_verify_or_panic() {
        let k = keys();
        let hs = ready_hs("hs", HS_SECRET, &[], &[]);
        let secrets = vec![hs, ready_rsa(&k.parsed_a, &[], &[])];
        for token in [
            rs_token(&k.a, Some(&k.kid_a), &good_claims()),
            hs_token(&k, &good_claims()),
        ] {
            verify_with_secrets(&token, &secrets, now(), LEEWAY)
                .await
                .unwrap();
            for i in 0..token.len() {
                let replacement = match token.as_bytes()[i] {
                    b'.' => "A",
                    b'A' => "B",
                    _ => "A",
                };
                let mut damaged = token.clone();
                damaged.replace_range(i..=i, replacement);
                assert!(
                    verify_with_secrets(&damaged, &secrets, now(), LEEWAY)
                        .await
                        .is_err(),
                    "byte {i} changed"
                );
            }
            for len in (0..token.len()).step_by(5) {
                assert!(verify_with_secrets(&token[..len], &secrets, now(), LEEWAY)
                    .await
                    .is_err());
            }
        }
    }

    #[tokio::test]
    async fn size_limit_is_exact() {
        let k = keys();
        let hs = ready_hs("hs", HS_SECRET, &[], &[]);
        let base_len = hs_token(&k, &with(good_claims(), json!({"pad": ""}))).len();
        // Each 3 bytes of padding add 4 base64 characters.
        let pad = (MAX_BEARER_TOKEN_BYTES - base_len) / 4 * 3;
        let token = hs_token(&k, &with(good_claims(), json!({"pad": "p".repeat(pad)})));
        assert!(token.len() <= MAX_BEARER_TOKEN_BYTES && token.len() > MAX_BEARER_TOKEN_BYTES - 4);
        verify_with_secrets(&token, std::slice::from_ref(&hs), now(), LEEWAY)
            .await
            .unwrap();
        let token = hs_token(
            &k,
            &with(good_claims(), json!({"pad": "p".repeat(pad + 3)})),
        );
        assert!(token.len() > MAX_BEARER_TOKEN_BYTES);
        let err = verify_with_secrets(&token, &[hs], now(), LEEWAY)
            .await
            .unwrap_err();
        assert!(matches!(err, TokenError::TooLarge));
    }

    #[test]
    fn peek_header_reports_alg_and_kid() {
        let k = keys();
        let token = rs_token(&k.a, Some("kid-1"), &good_claims());
        assert_eq!(
            peek_header(&token).unwrap(),
            (Algorithm::RS256, Some("kid-1".to_owned()))
        );
        assert_eq!(
            peek_header(&hs_token(&k, &good_claims())).unwrap(),
            (Algorithm::HS256, None)
        );
    }

    #[test]
    fn check_claims_table() {
        let n = NOW;
        let none: &[&str] = &[];
        #[allow(clippy::type_complexity)]
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, &[&str], &[&str], u64, Option<&str>)> = vec![
            ("minimal", json!({"exp": n + 1}), none, none, 0, None),
            ("exp equals now", json!({"exp": n}), none, none, 0, Some("expired")),
            ("exp equals now with leeway", json!({"exp": n}), none, none, 1, None),
            ("exp at now minus leeway", json!({"exp": n - 60}), none, none, 60, Some("expired")),
            ("exp fractional ahead", json!({"exp": n as f64 + 0.5}), none, none, 0, None),
            ("exp fractional behind", json!({"exp": n as f64 - 0.5}), none, none, 0, Some("expired")),
            ("exp huge", json!({"exp": 1e300}), none, none, 0, None),
            ("exp negative", json!({"exp": -1}), none, none, 0, Some("expired")),
            ("exp u64 max", json!({"exp": u64::MAX}), none, none, 0, None),
            ("exp missing", json!({"sub": "x"}), none, none, 0, Some("missing_claim")),
            ("exp null", json!({"exp": null}), none, none, 0, Some("invalid_claim_type")),
            ("exp string", json!({"exp": "1"}), none, none, 0, Some("invalid_claim_type")),
            ("exp array", json!({"exp": [n + 10]}), none, none, 0, Some("invalid_claim_type")),
            ("nbf now", json!({"exp": n + 10, "nbf": n}), none, none, 0, None),
            ("nbf ahead", json!({"exp": n + 10, "nbf": n + 1}), none, none, 0, Some("not_yet_valid")),
            ("nbf ahead within leeway", json!({"exp": n + 10, "nbf": n + 30}), none, none, 60, None),
            ("nbf string", json!({"exp": n + 10, "nbf": "0"}), none, none, 0, Some("invalid_claim_type")),
            ("iat now", json!({"exp": n + 10, "iat": n}), none, none, 0, None),
            ("iat ahead", json!({"exp": n + 10, "iat": n + 61}), none, none, 60, Some("issued_in_future")),
            ("iat ahead within leeway", json!({"exp": n + 10, "iat": n + 60}), none, none, 60, None),
            ("iat object", json!({"exp": n + 10, "iat": {}}), none, none, 0, Some("invalid_claim_type")),
            ("wrong types checked before expiry", json!({"exp": n - 100, "aud": 1}), none, none, 0, Some("invalid_claim_type")),
            ("aud unchecked when list empty", json!({"exp": n + 10, "aud": "x"}), none, none, 0, None),
            ("aud type checked when list empty", json!({"exp": n + 10, "aud": 5}), none, none, 0, Some("invalid_claim_type")),
            ("aud array with a number", json!({"exp": n + 10, "aud": ["a", 1]}), &["a"], none, 0, Some("invalid_claim_type")),
            ("aud null", json!({"exp": n + 10, "aud": null}), &["a"], none, 0, Some("invalid_claim_type")),
            ("aud match", json!({"exp": n + 10, "aud": "b"}), &["a", "b"], none, 0, None),
            ("aud array match", json!({"exp": n + 10, "aud": ["z", "a"]}), &["a", "b"], none, 0, None),
            ("aud mismatch", json!({"exp": n + 10, "aud": "c"}), &["a", "b"], none, 0, Some("invalid_audience")),
            ("aud array mismatch", json!({"exp": n + 10, "aud": ["c", "d"]}), &["a"], none, 0, Some("invalid_audience")),
            ("aud missing", json!({"exp": n + 10}), &["a"], none, 0, Some("missing_claim")),
            ("iss match", json!({"exp": n + 10, "iss": "i2"}), none, &["i1", "i2"], 0, None),
            ("iss mismatch", json!({"exp": n + 10, "iss": "i3"}), none, &["i1", "i2"], 0, Some("invalid_issuer")),
            ("iss missing", json!({"exp": n + 10}), none, &["i1"], 0, Some("missing_claim")),
            ("iss number", json!({"exp": n + 10, "iss": 1}), none, none, 0, Some("invalid_claim_type")),
            ("iss array", json!({"exp": n + 10, "iss": ["i1"]}), none, &["i1"], 0, Some("invalid_claim_type")),
            ("sub number", json!({"exp": n + 10, "sub": 1}), none, none, 0, Some("invalid_claim_type")),
            ("not an object", json!([{"exp": n + 10}]), none, none, 0, Some("malformed")),
            ("all good", json!({"exp": n + 10, "nbf": n - 1, "iat": n - 1, "aud": ["a"], "iss": "i1", "sub": "s"}), &["a"], &["i1"], 0, None),
        ];
        for (what, claims, aud, iss, leeway, expected) in cases {
            let result = check_claims(
                &claims,
                &strings(aud),
                &strings(iss),
                now(),
                Duration::from_secs(leeway),
            );
            match (expected, result) {
                (None, Ok(())) => {}
                (Some(code), Err(e)) => assert_eq!(e.code(), code, "{what}: {e}"),
                (None, Err(e)) => panic!("{what}: unexpected {e}"),
                (Some(code), Ok(())) => panic!("{what}: expected {code}"),
            }
        }
        // Sub-second `now` is honoured.
        let later = now() + time::Duration::milliseconds(500);
        let err = check_claims(
            &json!({"exp": n as f64 + 0.25}),
            &[],
            &[],
            later,
            Duration::ZERO,
        );
        assert!(matches!(err, Err(TokenError::Expired)));
    }

    #[test]
    fn every_reason_is_header_safe() {
        let jwks_error = || JwksError::NoMatchingKey {
            uri: "https://x.example/jwks".into(),
            alg: Algorithm::RS256,
            kid: Some("k\"\\".into()),
        };
        let all = vec![
            TokenError::TooLarge,
            TokenError::Malformed("the token is not a JWT in compact form"),
            TokenError::AlgNone,
            TokenError::UnsupportedAlgorithm(Some(Algorithm::ES256)),
            TokenError::UnsupportedAlgorithm(None),
            TokenError::ForbiddenHeader("jku"),
            TokenError::NoSecretForAlgorithm(Algorithm::RS256),
            TokenError::NoSecretForAlgorithm(Algorithm::HS256),
            TokenError::UnknownKeyId,
            TokenError::BadSignature,
            TokenError::NoPublishedKey {
                secret: "s".into(),
                source: jwks_error(),
            },
            TokenError::KeysUnavailable {
                secret: "s".into(),
                source: jwks_error(),
            },
            TokenError::MissingClaim("exp"),
            TokenError::InvalidClaimType("aud"),
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::IssuedInFuture,
            TokenError::AudienceMismatch,
            TokenError::IssuerMismatch,
        ];
        for e in &all {
            assert_reason_is_header_safe(e);
        }
        assert_eq!(
            TokenError::NoSecretForAlgorithm(Algorithm::RS256).to_string(),
            "no secret of this org accepts RS256 tokens"
        );
        assert_eq!(
            TokenError::NoSecretForAlgorithm(Algorithm::HS256).to_string(),
            "no secret of this org accepts HS256 tokens"
        );
        assert_eq!(
            TokenError::UnsupportedAlgorithm(Some(Algorithm::ES256)).to_string(),
            "tokens signed with ES256 are not accepted, only HS256 and RS256"
        );
    }

    #[test]
    fn the_verify_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let secrets: Vec<Arc<ReadySecret>> = vec![];
        let fut = verify_with_secrets("a.b.c", &secrets, now(), LEEWAY);
        assert_send(&fut);
    }

    #[test]
    fn an_8192_bit_key_verifies() {
        let p = parsed(json!({"type": "rs256", "name": "big", "private_key": RSA_8192_PKCS8}));
        let secret = ready_rsa(&p, &[], &[]);
        let token = rs_token(
            &rsa_encoding_key(RSA_8192_PKCS8),
            p.kid.as_deref(),
            &good_claims(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let verified = runtime
            .block_on(verify_with_secrets(&token, &[secret], now(), LEEWAY))
            .unwrap();
        assert_eq!(verified.secret, "big");
    }

    #[test]
    fn an_hs256_secret_too_short_in_storage_verifies_nothing() {
        let short = ready_hs("short", "", &[], &[]);
        let token = sign_raw(
            &json!({"alg": "HS256"}),
            &good_claims(),
            &EncodingKey::from_secret(b""),
            Algorithm::HS256,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = runtime
            .block_on(verify_with_secrets(&token, &[short], now(), LEEWAY))
            .unwrap_err();
        assert_eq!(err.code(), "bad_signature");
    }

    #[tokio::test]
    async fn jwk_url_secrets_verify_through_the_jwks_cache() {
        let k = keys();
        let server = JwksServer::start(Answer::Json(
            json!({"keys": [k.parsed_b.public_jwk]}).to_string(),
        ))
        .await;
        let url = server.uri.clone();
        // The URL passes parse_secret's rules (http on loopback).
        let p = parsed(
            json!({"type": "jwk_url", "name": "idp", "url": url.as_str(), "audiences": ["app"]}),
        );
        assert_eq!(p.kind, SecretKind::JwkUrl);
        let cache = Arc::new(JwksCache::new(
            http_client(),
            url.clone(),
            JwksSettings::default(),
        ));
        let idp = Arc::new(ReadySecret::jwk_url(
            p.name.clone(),
            Arc::clone(&cache),
            p.audiences.clone(),
            p.issuers.clone(),
        ));
        let hs = ready_hs("hs", HS_SECRET, &[], &[]);
        let rs_a = ready_rsa(&k.parsed_a, &[], &[]);
        let g = good_claims();
        let kb = Some(k.kid_b.as_str());
        #[rustfmt::skip]
        let cases = vec![
            ("good token", rs_token(&k.b, kb, &g), vec![hs.clone(), idp.clone()], Expect::Ok("idp")),
            ("good token, rs256 secret tried first", rs_token(&k.b, kb, &g), vec![rs_a.clone(), idp.clone()], Expect::Ok("idp")),
            ("no kid, single key", rs_token(&k.b, None, &g), vec![idp.clone()], Expect::Ok("idp")),
            ("wrong audience", rs_token(&k.b, kb, &with(g.clone(), json!({"aud": "x"}))), vec![idp.clone()], Expect::Err("invalid_audience")),
            ("kid not published", rs_token(&k.a, Some("other"), &g), vec![idp.clone()], Expect::Err("no_published_key")),
            ("published kid, wrong key", rs_token(&k.a, kb, &g), vec![idp.clone()], Expect::Err("bad_signature")),
            ("HS256 token never reaches the JWKS", hs_token(&k, &g), vec![idp.clone()], Expect::Err("no_secret_for_alg")),
        ];
        run(cases).await;
        let fetches = cache.fetch_count();
        assert!((1..=2).contains(&fetches), "{fetches} fetches");
        server.stop().await;

        // An unreachable key set is reported as such, and outranks a bad
        // signature from another secret.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let down = Arc::new(ReadySecret::jwk_url(
            "down",
            Arc::new(JwksCache::new(http_client(), dead, JwksSettings::default())),
            vec![],
            vec![],
        ));
        let err = verify_with_secrets(&rs_token(&k.b, kb, &g), &[rs_a, down], now(), LEEWAY)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "keys_unavailable", "{err}");
        assert!(err.is_server_side());
        assert_reason_is_header_safe(&err);
        assert!(std::error::Error::source(&err).is_some());
    }
}
