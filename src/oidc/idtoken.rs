//! OpenID Connect ID token verification: a policy over [`crate::jose`].
//!
//! [`verify`] = [`check_header`] (pure, before any key lookup) + signature
//! check with a key from [`JwksCache`] + [`check_claims`] (pure, with an
//! injected `now`). What is ID-token-specific lives here: the error codes
//! shown on sign-in pages, `nonce`, `azp`, the `iat` age, `sub` and the
//! profile claims (`email`, `name`, `email_verified`).
//!
//! Error messages never contain the token or any part of it; the only
//! token-derived values that can appear are a recognised algorithm name and
//! an escaped, truncated key id (`kid`).

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::jose::alg::{alg_name, ID_TOKEN_ALGS};
use crate::jose::claims::{self, AudienceRule, ClaimError, ClaimRules, IssuerRule};
use crate::jose::compact::{
    self, Jws, JwsError, JwsRules, TypRule, VerifyingKey, ID_TOKEN_FORBIDDEN_HEADERS,
    MAX_ID_TOKEN_BYTES,
};
use crate::jose::jwks::{JwksCache, JwksError};
use crate::jose::keys::describe_kid;

/// Longest accepted `sub`, in bytes (OIDC Core §2).
pub const MAX_SUBJECT_BYTES: usize = 255;

/// What a particular login expects of its ID token.
#[derive(Clone, Copy)]
pub struct Expectations<'a> {
    /// The provider's issuer identifier; `iss` must equal it exactly.
    pub issuer: &'a str,
    /// This connection's client id; must be in `aud` (and equal `azp` when
    /// present).
    pub client_id: &'a str,
    /// The nonce sent in the authorization request (compared in constant time).
    pub nonce: &'a str,
    /// Algorithms to accept: the provider's advertised ones ∩ [`ID_TOKEN_ALGS`]
    /// (anything outside `ID_TOKEN_ALGS` is ignored even if listed here).
    pub algorithms: &'a [Algorithm],
    /// Additional audiences that may appear in `aud` next to `client_id`.
    pub trusted_audiences: &'a [String],
    /// Clock-skew allowance for `exp`, `nbf` and `iat` (typically 60 s).
    pub leeway: Duration,
    /// How old `iat` may be (plus leeway), e.g. 10 minutes.
    pub max_iat_age: Duration,
}

impl fmt::Debug for Expectations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expectations")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("nonce", &"[redacted]")
            .field("algorithms", &self.algorithms)
            .field("trusted_audiences", &self.trusted_audiences)
            .field("leeway", &self.leeway)
            .field("max_iat_age", &self.max_iat_age)
            .finish()
    }
}

/// A verified ID token.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedIdToken {
    pub subject: String,
    /// `email` claim if present (not validated beyond being a string).
    pub email: Option<String>,
    /// `email_verified`; `false` when absent. Accepts a JSON boolean or the
    /// exact strings `"true"` / `"false"` (sent by some IdPs, e.g. Cognito).
    pub email_verified: bool,
    pub name: Option<String>,
    /// All claims of the token, as signed by the IdP.
    pub claims: Map<String, Value>,
}

/// Why an ID token was rejected. One variant per defect class; `Display` is
/// a sentence for a human, [`IdTokenError::code`] a stable snake_case code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    #[error("the ID token is longer than {MAX_ID_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("the ID token is malformed: {what}")]
    Malformed { what: &'static str },
    #[error("the ID token is unsigned (algorithm \"none\"), which is never accepted")]
    AlgNone,
    #[error(
        "the ID token is signed with a shared-secret (HS*) algorithm, which is never accepted"
    )]
    SymmetricAlg,
    #[error(
        "the ID token is signed with {alg_desc}, which this connection does not accept",
        alg_desc = alg.map_or("an unknown algorithm", alg_name)
    )]
    AlgNotAllowed { alg: Option<Algorithm> },
    #[error("the ID token's header names its own key (\"{header}\"); keys from the token are never trusted")]
    EmbeddedKey { header: &'static str },
    #[error("the ID token's header has a \"crit\" parameter, and no JWS extensions are supported")]
    CriticalHeader,
    #[error("the ID token's header declares a type (\"typ\") other than JWT")]
    BadType,
    #[error(
        "the identity provider publishes no signing key matching the ID token ({kid_desc})",
        kid_desc = describe_kid(.kid.as_deref())
    )]
    UnknownKey { kid: Option<String> },
    #[error("the identity provider's signing keys could not be used: {0}")]
    Jwks(#[source] JwksError),
    #[error("the ID token's signature does not verify with the identity provider's key")]
    BadSignature,
    #[error("the ID token has no \"{claim}\" claim")]
    MissingClaim { claim: &'static str },
    #[error("the ID token's \"{claim}\" claim has the wrong type")]
    WrongClaimType { claim: &'static str },
    #[error("the ID token was issued by a different issuer than this connection's")]
    BadIssuer,
    #[error("the ID token's audience does not include this connection's client id")]
    BadAudience,
    #[error("the ID token is also intended for an audience this connection does not trust")]
    UntrustedAudience,
    #[error("the ID token has several audiences but no authorized party (\"azp\") claim")]
    MissingAzp,
    #[error("the ID token's authorized party (\"azp\") is not this connection's client id")]
    BadAzp,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is not valid yet (\"nbf\" is in the future)")]
    NotYetValid,
    #[error("the ID token's issue time (\"iat\") is in the future")]
    IssuedInFuture,
    #[error("the ID token was issued too long ago")]
    IssuedTooLongAgo,
    #[error("the ID token's nonce does not match the one sent with this login")]
    BadNonce,
    #[error("the ID token's subject (\"sub\") is {what}")]
    BadSubject { what: &'static str },
    #[error(
        "the ID token cannot be checked because this login's expectations are incomplete: {what}"
    )]
    BadExpectations { what: &'static str },
    #[error("the ID token's access-token hash (\"at_hash\") does not match the access token it came with")]
    BadAtHash,
}

impl IdTokenError {
    /// `true` when the identity provider (its JWKS endpoint or key set) is at
    /// fault rather than the token: worth a 502-style answer and an admin
    /// alert instead of "sign-in refused".
    pub fn is_idp_fault(&self) -> bool {
        matches!(self, IdTokenError::Jwks(e) if e.is_idp_fault())
    }

    /// Stable snake_case code, e.g. `"id_token_bad_audience"`.
    pub fn code(&self) -> &'static str {
        match self {
            IdTokenError::TooLarge => "id_token_too_large",
            IdTokenError::Malformed { .. } => "id_token_malformed",
            IdTokenError::AlgNone => "id_token_alg_none",
            IdTokenError::SymmetricAlg => "id_token_alg_symmetric",
            IdTokenError::AlgNotAllowed { .. } => "id_token_alg_not_allowed",
            IdTokenError::EmbeddedKey { .. } => "id_token_embedded_key",
            IdTokenError::CriticalHeader => "id_token_crit_header",
            IdTokenError::BadType => "id_token_bad_typ",
            IdTokenError::UnknownKey { .. } => "id_token_unknown_key",
            IdTokenError::Jwks(_) => "id_token_jwks_unavailable",
            IdTokenError::BadSignature => "id_token_bad_signature",
            IdTokenError::MissingClaim { .. } => "id_token_missing_claim",
            IdTokenError::WrongClaimType { .. } => "id_token_bad_claim_type",
            IdTokenError::BadIssuer => "id_token_bad_issuer",
            IdTokenError::BadAudience => "id_token_bad_audience",
            IdTokenError::UntrustedAudience => "id_token_untrusted_audience",
            IdTokenError::MissingAzp => "id_token_missing_azp",
            IdTokenError::BadAzp => "id_token_bad_azp",
            IdTokenError::Expired => "id_token_expired",
            IdTokenError::NotYetValid => "id_token_not_yet_valid",
            IdTokenError::IssuedInFuture => "id_token_issued_in_future",
            IdTokenError::IssuedTooLongAgo => "id_token_too_old",
            IdTokenError::BadNonce => "id_token_bad_nonce",
            IdTokenError::BadSubject { .. } => "id_token_bad_subject",
            IdTokenError::BadExpectations { .. } => "id_token_bad_expectations",
            IdTokenError::BadAtHash => "id_token_bad_at_hash",
        }
    }
}

const fn malformed(what: &'static str) -> IdTokenError {
    IdTokenError::Malformed { what }
}

const NOT_AN_OBJECT: &str = "its header or payload is not a JSON object (without duplicate names)";

impl From<JwsError> for IdTokenError {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::TooLarge => IdTokenError::TooLarge,
            JwsError::NotBase64UrlChars => malformed("it contains characters outside base64url"),
            JwsError::NotThreeParts => {
                malformed("it does not have exactly three dot-separated parts")
            }
            JwsError::EmptyPart => malformed("its header or payload is empty"),
            JwsError::HeaderNotBase64 => malformed("its header is not valid base64url"),
            JwsError::HeaderNotObject | JwsError::HeaderDuplicate => {
                malformed("its header is not a JSON object (without duplicate names)")
            }
            JwsError::AlgMissing => malformed("its header has no \"alg\""),
            JwsError::AlgNotString => malformed("its header's \"alg\" is not a string"),
            JwsError::AlgNone => IdTokenError::AlgNone,
            JwsError::AlgSymmetric => IdTokenError::SymmetricAlg,
            JwsError::AlgNotAllowed(alg) => IdTokenError::AlgNotAllowed { alg },
            JwsError::ForbiddenHeader("crit") => IdTokenError::CriticalHeader,
            JwsError::ForbiddenHeader(header) => IdTokenError::EmbeddedKey { header },
            JwsError::BadType => IdTokenError::BadType,
            JwsError::KidNotString => malformed("its header's \"kid\" is not a string"),
            JwsError::SignatureNotBase64 | JwsError::PayloadNotBase64 => {
                malformed("its payload or signature is not valid base64url")
            }
            JwsError::PayloadNotObject | JwsError::PayloadDuplicate => malformed(NOT_AN_OBJECT),
            JwsError::BadSignature => IdTokenError::BadSignature,
        }
    }
}

impl From<ClaimError> for IdTokenError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Missing(claim) => IdTokenError::MissingClaim { claim },
            ClaimError::WrongType(claim) => IdTokenError::WrongClaimType { claim },
            ClaimError::Expired => IdTokenError::Expired,
            ClaimError::NotYetValid => IdTokenError::NotYetValid,
            ClaimError::IssuedInFuture => IdTokenError::IssuedInFuture,
            ClaimError::IssuedTooLongAgo => IdTokenError::IssuedTooLongAgo,
            ClaimError::BadIssuer => IdTokenError::BadIssuer,
            ClaimError::BadAudience => IdTokenError::BadAudience,
            ClaimError::UntrustedAudience => IdTokenError::UntrustedAudience,
        }
    }
}

/// Shape and header of an ID token, checked against `algorithms` ∩ [`ID_TOKEN_ALGS`].
fn parse_header<'t>(token: &'t str, algorithms: &[Algorithm]) -> Result<Jws<'t>, IdTokenError> {
    let allowed: Vec<Algorithm> = ID_TOKEN_ALGS
        .iter()
        .copied()
        .filter(|a| algorithms.contains(a))
        .collect();
    let rules = JwsRules {
        max_bytes: MAX_ID_TOKEN_BYTES,
        charset_first: true,
        algorithms: &allowed,
        forbidden_headers: ID_TOKEN_FORBIDDEN_HEADERS,
        typ: TypRule::JwtOrAbsent,
    };
    Ok(compact::parse(token, &rules)?)
}

/// Checks the token's shape and JOSE header, without any key. Returns the
/// algorithm to verify with and the `kid`, if any.
///
/// Rejects: tokens over [`MAX_ID_TOKEN_BYTES`]; anything but three base64url
/// segments; a header that is not a JSON object (or has duplicate names);
/// `alg` `none`/HS*/outside `algorithms` ∩ [`ID_TOKEN_ALGS`]; `jwk`, `jku`,
/// `x5u` (keys named by the token are never trusted); `crit`; a `typ` other
/// than `JWT` / `application/jwt` (case-insensitive). `x5c`/`x5t` are ignored.
#[cfg(test)]
pub fn check_header(
    token: &str,
    algorithms: &[Algorithm],
) -> Result<(Algorithm, Option<String>), IdTokenError> {
    let jws = parse_header(token, algorithms)?;
    Ok((jws.alg, jws.kid))
}

fn required_str<'c>(
    claims: &'c Map<String, Value>,
    claim: &'static str,
) -> Result<&'c str, IdTokenError> {
    Ok(claims::required_string(claims, claim)?)
}

/// Optional profile claim: absent or JSON `null` => `None`.
fn optional_profile_str(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, IdTokenError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(IdTokenError::WrongClaimType { claim }),
    }
}

fn check_expectations(exp: &Expectations<'_>) -> Result<(), IdTokenError> {
    let bad = |what| Err(IdTokenError::BadExpectations { what });
    if exp.issuer.is_empty() {
        return bad("the expected issuer is empty");
    }
    if exp.client_id.is_empty() {
        return bad("the client id is empty");
    }
    if exp.nonce.is_empty() {
        return bad("the expected nonce is empty");
    }
    Ok(())
}

/// Checks the claims of a (signature-verified) ID token against `exp` at
/// time `now`. Pure.
///
/// * `iss`: required string, exactly `exp.issuer`.
/// * `aud`: required string or array of strings containing `client_id`; every
///   other audience must be in `trusted_audiences`.
/// * `azp`: when present must be a string equal to `client_id`; required
///   when `aud` has more than one distinct value.
/// * `exp`: required number, `now < exp + leeway`.
/// * `iat`: required number, `now - max_iat_age - leeway <= iat <= now + leeway`.
/// * `nbf`: when present a number, `nbf <= now + leeway`.
/// * `nonce`: required string, equal to `exp.nonce` (constant time).
/// * `sub`: required non-empty string of at most 255 bytes.
/// * `email`, `name`: optional strings; `email_verified`: optional bool or
///   `"true"`/`"false"`. For these three profile claims JSON `null` counts as
///   absent; for all protocol claims above `null` is a wrong type.
///
/// NumericDates may be integers or finite floats. Wrongly typed claims are
/// rejected, never ignored.
#[cfg(test)]
pub fn check_claims(
    claims: &Value,
    exp: &Expectations<'_>,
    now: OffsetDateTime,
) -> Result<VerifiedIdToken, IdTokenError> {
    check_expectations(exp)?;
    let map = claims
        .as_object()
        .ok_or(malformed("its claims are not a JSON object"))?;
    check_claims_map(map, exp, now)?;
    build_verified(map.clone())
}

/// The claims, in the order sign-in pages have always reported them: issuer, audience and
/// `azp`, then times (`exp`, `iat`, `nbf`), nonce, subject, profile claims.
fn check_claims_map(
    claims: &Map<String, Value>,
    exp: &Expectations<'_>,
    now: OffsetDateTime,
) -> Result<(), IdTokenError> {
    let rules = ClaimRules {
        issuer: IssuerRule::Exactly(exp.issuer),
        audience: AudienceRule::Includes {
            id: exp.client_id,
            also_trusted: exp.trusted_audiences,
        },
        max_iat_age: Some(exp.max_iat_age),
        leeway: exp.leeway,
        now,
    };
    rules.check_issuer(claims::string(claims, "iss")?)?;
    let audiences = claims::audiences(claims)?;
    rules.check_audience(audiences.as_deref())?;
    let distinct: HashSet<&str> = audiences.unwrap_or_default().into_iter().collect();

    // azp
    match claims.get("azp") {
        None if distinct.len() > 1 => return Err(IdTokenError::MissingAzp),
        None => {}
        Some(Value::String(azp)) if azp == exp.client_id => {}
        Some(Value::String(_)) => return Err(IdTokenError::BadAzp),
        Some(_) => return Err(IdTokenError::WrongClaimType { claim: "azp" }),
    }

    let expires = claims::required_numeric_date(claims, "exp")?;
    let issued = claims::required_numeric_date(claims, "iat")?;
    let not_before = claims::numeric_date(claims, "nbf")?;
    rules.check_expiry(expires)?;
    rules.check_issued_at(Some(issued))?;
    rules.check_not_before(not_before)?;

    // nonce
    let nonce = required_str(claims, "nonce")?;
    if !bool::from(nonce.as_bytes().ct_eq(exp.nonce.as_bytes())) {
        return Err(IdTokenError::BadNonce);
    }

    // sub
    let sub = required_str(claims, "sub")?;
    if sub.is_empty() {
        return Err(IdTokenError::BadSubject { what: "empty" });
    }
    if sub.len() > MAX_SUBJECT_BYTES {
        return Err(IdTokenError::BadSubject {
            what: "longer than 255 bytes",
        });
    }
    // A NUL cannot be stored (PostgreSQL), and no provider's identifier has control characters.
    if sub.chars().any(char::is_control) {
        return Err(IdTokenError::BadSubject {
            what: "made with control characters",
        });
    }

    // Profile claims: type-checked here so that check_claims fails, not build.
    optional_profile_str(claims, "email")?;
    optional_profile_str(claims, "name")?;
    email_verified(claims)?;
    Ok(())
}

fn email_verified(claims: &Map<String, Value>) -> Result<bool, IdTokenError> {
    match claims.get("email_verified") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(_) => Err(IdTokenError::WrongClaimType {
            claim: "email_verified",
        }),
    }
}

fn build_verified(claims: Map<String, Value>) -> Result<VerifiedIdToken, IdTokenError> {
    Ok(VerifiedIdToken {
        subject: required_str(&claims, "sub")?.to_owned(),
        email: optional_profile_str(&claims, "email")?,
        email_verified: email_verified(&claims)?,
        name: optional_profile_str(&claims, "name")?,
        claims,
    })
}

fn map_jwks_error(err: JwksError) -> IdTokenError {
    match err {
        JwksError::NoMatchingKey { kid, .. } => IdTokenError::UnknownKey { kid },
        other => IdTokenError::Jwks(other),
    }
}

/// Fully verifies an ID token: header rules, signature with a key from
/// `jwks` (which may fetch), then [`check_claims`] at `now`.
///
/// A token without `kid` whose signature fails with the single fitting cached key may come
/// from a provider that re-keyed: the key set is refetched once (single flight, subject to
/// the cache's floor) and the signature checked again.
#[cfg(test)]
pub async fn verify(
    token: &str,
    jwks: &JwksCache,
    exp: &Expectations<'_>,
    now: OffsetDateTime,
) -> Result<VerifiedIdToken, IdTokenError> {
    verify_signed(token, jwks, exp, now)
        .await
        .map(|(verified, _)| verified)
}

/// [`verify`] for a token response that may carry an access token: when it does and the ID
/// token has `at_hash`, the hash must match (OIDC Core §3.1.3.8). An absent `at_hash` is fine
/// (it is optional in the code flow).
pub async fn verify_with_access_token(
    token: &str,
    access_token: Option<&str>,
    jwks: &JwksCache,
    exp: &Expectations<'_>,
    now: OffsetDateTime,
) -> Result<VerifiedIdToken, IdTokenError> {
    let (verified, alg) = verify_signed(token, jwks, exp, now).await?;
    check_at_hash(&verified.claims, alg, access_token)?;
    Ok(verified)
}

/// The `at_hash` rule on verified claims: checked when both it and an access token exist.
fn check_at_hash(
    claims: &Map<String, Value>,
    alg: Algorithm,
    access_token: Option<&str>,
) -> Result<(), IdTokenError> {
    let (Some(claimed), Some(access_token)) = (claims.get("at_hash"), access_token) else {
        return Ok(());
    };
    let Value::String(claimed) = claimed else {
        return Err(IdTokenError::WrongClaimType { claim: "at_hash" });
    };
    if super::at_hash::matches(alg, access_token, claimed) {
        Ok(())
    } else {
        Err(IdTokenError::BadAtHash)
    }
}

async fn verify_signed(
    token: &str,
    jwks: &JwksCache,
    exp: &Expectations<'_>,
    now: OffsetDateTime,
) -> Result<(VerifiedIdToken, Algorithm), IdTokenError> {
    check_expectations(exp)?;
    let jws = parse_header(token, exp.algorithms)?;
    let looked_up = Instant::now();
    let key = jwks
        .key_for(jws.alg, jws.kid.as_deref())
        .await
        .map_err(map_jwks_error)?;
    // Registered header members of the wrong type have always been refused here, after the
    // key lookup (jsonwebtoken's typed header parse used to do it).
    if !jws.registered_header_types_ok() {
        return Err(malformed(NOT_AN_OBJECT));
    }
    let claims = match jws.verify(VerifyingKey::Jwt(&key)) {
        Err(JwsError::BadSignature)
            if jws.kid.is_none() && jwks.refresh_after_bad_signature(looked_up).await =>
        {
            let key = jwks.key_for(jws.alg, None).await.map_err(map_jwks_error)?;
            jws.verify(VerifyingKey::Jwt(&key))?.payload_object()?
        }
        verified => verified?.payload_object()?,
    };
    check_claims_map(&claims, exp, now)?;
    Ok((build_verified(claims)?, jws.alg))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::{json, Map, Value};
    use time::OffsetDateTime;
    use url::Url;

    use super::*;
    use crate::jose::jwks::{JwksCache, JwksSettings};
    use crate::test_support::idp_keys::*;
    use crate::test_support::jwks_server::{Answer, JwksServer};

    const NOW: i64 = 1_700_000_000;
    const ISSUER: &str = "https://idp.example/tenant";
    const CLIENT: &str = "client-1";
    const NONCE: &str = "n-0S6_WzA2Mj-3fd8a";
    const TRUSTED: &str = "https://api.example";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(NOW).unwrap()
    }

    fn trusted() -> Vec<String> {
        vec![TRUSTED.to_owned()]
    }

    fn expectations<'a>(trusted: &'a [String], algorithms: &'a [Algorithm]) -> Expectations<'a> {
        Expectations {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: NONCE,
            algorithms,
            trusted_audiences: trusted,
            leeway: Duration::from_secs(60),
            max_iat_age: Duration::from_secs(600),
        }
    }

    fn base_claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": CLIENT,
            "exp": NOW + 300,
            "iat": NOW - 10,
            "nonce": NONCE,
            "sub": "user-123",
            "email": "ada@example.com",
            "email_verified": true,
            "name": "Ada Lovelace",
        })
    }

    /// Claim overrides: `Some(value)` sets, `None` removes.
    type Patch<'a> = Vec<(&'a str, Option<Value>)>;

    fn patched(patch: &[(&str, Option<Value>)]) -> Value {
        let mut claims = base_claims();
        let map = claims.as_object_mut().unwrap();
        for (name, value) in patch {
            match value {
                Some(v) => {
                    map.insert((*name).to_owned(), v.clone());
                }
                None => {
                    map.remove(*name);
                }
            }
        }
        claims
    }

    fn code<T>(result: &Result<T, IdTokenError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn check_claims_table() {
        let set = |v: Value| Some(v);
        let gone = None;
        let long_sub = "s".repeat(256);
        let max_sub = "s".repeat(255);
        #[rustfmt::skip]
        let cases: Vec<(&str, Patch, &str)> = vec![
            ("baseline", vec![], "ok"),
            // iss
            ("iss missing", vec![("iss", gone.clone())], "id_token_missing_claim"),
            ("iss number", vec![("iss", set(json!(5)))], "id_token_bad_claim_type"),
            ("iss null", vec![("iss", set(json!(null)))], "id_token_bad_claim_type"),
            ("iss other", vec![("iss", set(json!("https://evil.example/tenant")))], "id_token_bad_issuer"),
            ("iss trailing slash", vec![("iss", set(json!(format!("{ISSUER}/"))))], "id_token_bad_issuer"),
            ("iss case", vec![("iss", set(json!(ISSUER.to_uppercase())))], "id_token_bad_issuer"),
            // aud
            ("aud missing", vec![("aud", gone.clone())], "id_token_missing_claim"),
            ("aud number", vec![("aud", set(json!(5)))], "id_token_bad_claim_type"),
            ("aud object", vec![("aud", set(json!({"a": CLIENT})))], "id_token_bad_claim_type"),
            ("aud array with number", vec![("aud", set(json!([CLIENT, 5])))], "id_token_bad_claim_type"),
            ("aud empty array", vec![("aud", set(json!([])))], "id_token_bad_audience"),
            ("aud other", vec![("aud", set(json!("client-2")))], "id_token_bad_audience"),
            ("aud prefix", vec![("aud", set(json!("client-")))], "id_token_bad_audience"),
            ("aud only trusted", vec![("aud", set(json!([TRUSTED])))], "id_token_bad_audience"),
            ("aud array ok", vec![("aud", set(json!([CLIENT])))], "ok"),
            ("aud duplicate client", vec![("aud", set(json!([CLIENT, CLIENT])))], "ok"),
            ("aud + trusted + azp", vec![("aud", set(json!([CLIENT, TRUSTED]))), ("azp", set(json!(CLIENT)))], "ok"),
            ("aud + untrusted + azp", vec![("aud", set(json!([CLIENT, "https://other.example"]))), ("azp", set(json!(CLIENT)))], "id_token_untrusted_audience"),
            // azp
            ("aud multi, no azp", vec![("aud", set(json!([CLIENT, TRUSTED])))], "id_token_missing_azp"),
            ("azp single aud ok", vec![("azp", set(json!(CLIENT)))], "ok"),
            ("azp other", vec![("azp", set(json!(TRUSTED)))], "id_token_bad_azp"),
            ("azp other, multi aud", vec![("aud", set(json!([CLIENT, TRUSTED]))), ("azp", set(json!(TRUSTED)))], "id_token_bad_azp"),
            ("azp number", vec![("azp", set(json!(1)))], "id_token_bad_claim_type"),
            ("azp null", vec![("azp", set(json!(null)))], "id_token_bad_claim_type"),
            // exp
            ("exp missing", vec![("exp", gone.clone())], "id_token_missing_claim"),
            ("exp string", vec![("exp", set(json!("1700000300")))], "id_token_bad_claim_type"),
            ("exp null", vec![("exp", set(json!(null)))], "id_token_bad_claim_type"),
            ("exp bool", vec![("exp", set(json!(true)))], "id_token_bad_claim_type"),
            ("exp float ok", vec![("exp", set(json!(NOW as f64 + 300.5)))], "ok"),
            ("exp within leeway", vec![("exp", set(json!(NOW - 59)))], "ok"),
            ("exp at leeway boundary", vec![("exp", set(json!(NOW - 60)))], "id_token_expired"),
            ("exp expired", vec![("exp", set(json!(NOW - 3600)))], "id_token_expired"),
            ("exp float expired", vec![("exp", set(json!(NOW as f64 - 60.5)))], "id_token_expired"),
            ("exp negative", vec![("exp", set(json!(-1)))], "id_token_expired"),
            ("exp huge", vec![("exp", set(json!(1e300)))], "ok"),
            ("exp u64 max", vec![("exp", set(json!(u64::MAX)))], "ok"),
            // iat
            ("iat missing", vec![("iat", gone.clone())], "id_token_missing_claim"),
            ("iat string", vec![("iat", set(json!("now")))], "id_token_bad_claim_type"),
            ("iat array", vec![("iat", set(json!([NOW])))], "id_token_bad_claim_type"),
            ("iat future within leeway", vec![("iat", set(json!(NOW + 60)))], "ok"),
            ("iat future", vec![("iat", set(json!(NOW + 61)))], "id_token_issued_in_future"),
            ("iat oldest allowed", vec![("iat", set(json!(NOW - 660)))], "ok"),
            ("iat too old", vec![("iat", set(json!(NOW - 661)))], "id_token_too_old"),
            ("iat float too old", vec![("iat", set(json!(NOW as f64 - 660.5)))], "id_token_too_old"),
            // nbf
            ("nbf past", vec![("nbf", set(json!(NOW - 10)))], "ok"),
            ("nbf within leeway", vec![("nbf", set(json!(NOW + 60)))], "ok"),
            ("nbf future", vec![("nbf", set(json!(NOW + 61)))], "id_token_not_yet_valid"),
            ("nbf string", vec![("nbf", set(json!("0")))], "id_token_bad_claim_type"),
            ("nbf null", vec![("nbf", set(json!(null)))], "id_token_bad_claim_type"),
            // nonce
            ("nonce missing", vec![("nonce", gone.clone())], "id_token_missing_claim"),
            ("nonce number", vec![("nonce", set(json!(42)))], "id_token_bad_claim_type"),
            ("nonce other", vec![("nonce", set(json!("n-0S6_WzA2Mj-3fd8b")))], "id_token_bad_nonce"),
            ("nonce prefix", vec![("nonce", set(json!("n-0S6_WzA2Mj")))], "id_token_bad_nonce"),
            ("nonce longer", vec![("nonce", set(json!(format!("{NONCE}x"))))], "id_token_bad_nonce"),
            ("nonce empty", vec![("nonce", set(json!("")))], "id_token_bad_nonce"),
            // sub
            ("sub missing", vec![("sub", gone.clone())], "id_token_missing_claim"),
            ("sub number", vec![("sub", set(json!(123)))], "id_token_bad_claim_type"),
            ("sub empty", vec![("sub", set(json!("")))], "id_token_bad_subject"),
            ("sub 255 bytes", vec![("sub", set(json!(max_sub)))], "ok"),
            ("sub 256 bytes", vec![("sub", set(json!(long_sub)))], "id_token_bad_subject"),
            ("sub with a NUL", vec![("sub", set(json!("a\u{0}b")))], "id_token_bad_subject"),
            ("sub with a newline", vec![("sub", set(json!("a\nb")))], "id_token_bad_subject"),
            // profile claims
            ("email number", vec![("email", set(json!(5)))], "id_token_bad_claim_type"),
            ("email null", vec![("email", set(json!(null)))], "ok"),
            ("name array", vec![("name", set(json!([])))], "id_token_bad_claim_type"),
            ("name null", vec![("name", set(json!(null)))], "ok"),
            ("email_verified yes", vec![("email_verified", set(json!("yes")))], "id_token_bad_claim_type"),
            ("email_verified TRUE", vec![("email_verified", set(json!("TRUE")))], "id_token_bad_claim_type"),
            ("email_verified 1", vec![("email_verified", set(json!(1)))], "id_token_bad_claim_type"),
            ("email_verified \"true\"", vec![("email_verified", set(json!("true")))], "ok"),
            ("email_verified \"false\"", vec![("email_verified", set(json!("false")))], "ok"),
            ("email_verified null", vec![("email_verified", set(json!(null)))], "ok"),
        ];
        let trusted = trusted();
        let exp = expectations(&trusted, ID_TOKEN_ALGS);
        for (name, patch, expected) in cases {
            let result = check_claims(&patched(&patch), &exp, now());
            assert_eq!(code(&result), expected, "case {name:?}: {result:?}");
        }
    }

    #[test]
    fn check_claims_extracts_profile() {
        let trusted = trusted();
        let exp = expectations(&trusted, ID_TOKEN_ALGS);
        let token = check_claims(&base_claims(), &exp, now()).unwrap();
        assert_eq!(token.subject, "user-123");
        assert_eq!(token.email.as_deref(), Some("ada@example.com"));
        assert!(token.email_verified);
        assert_eq!(token.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(token.claims.get("nonce"), Some(&json!(NONCE)));

        let minimal = patched(&[("email", None), ("email_verified", None), ("name", None)]);
        let token = check_claims(&minimal, &exp, now()).unwrap();
        assert_eq!(
            (token.email, token.email_verified, token.name),
            (None, false, None)
        );

        for (value, expected) in [
            (json!("true"), true),
            (json!("false"), false),
            (json!(false), false),
        ] {
            let claims = patched(&[("email_verified", Some(value))]);
            assert_eq!(
                check_claims(&claims, &exp, now()).unwrap().email_verified,
                expected
            );
        }
    }

    #[test]
    fn check_claims_rejects_non_objects_and_bad_expectations() {
        let trusted = trusted();
        let exp = expectations(&trusted, ID_TOKEN_ALGS);
        for claims in [json!(null), json!([]), json!("claims"), json!(1)] {
            assert_eq!(
                code(&check_claims(&claims, &exp, now())),
                "id_token_malformed"
            );
        }
        // An empty expected nonce must never match an empty token nonce.
        let claims = patched(&[("nonce", Some(json!("")))]);
        let mut bad = exp;
        bad.nonce = "";
        assert_eq!(
            code(&check_claims(&claims, &bad, now())),
            "id_token_bad_expectations"
        );
        let mut bad = exp;
        bad.issuer = "";
        assert_eq!(
            code(&check_claims(
                &patched(&[("iss", Some(json!("")))]),
                &bad,
                now()
            )),
            "id_token_bad_expectations"
        );
        let mut bad = exp;
        bad.client_id = "";
        assert_eq!(
            code(&check_claims(
                &patched(&[("aud", Some(json!("")))]),
                &bad,
                now()
            )),
            "id_token_bad_expectations"
        );
    }

    #[test]
    fn now_is_injected_including_subseconds() {
        let trusted = trusted();
        let mut exp = expectations(&trusted, ID_TOKEN_ALGS);
        exp.leeway = Duration::ZERO;
        let claims = patched(&[("exp", Some(json!(NOW + 1)))]);
        let just_before = now() + time::Duration::milliseconds(999);
        assert_eq!(code(&check_claims(&claims, &exp, just_before)), "ok");
        let at = now() + time::Duration::seconds(1);
        assert_eq!(code(&check_claims(&claims, &exp, at)), "id_token_expired");
    }

    fn header_token(header: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(b"{}"),
            b64(b"signature")
        )
    }

    #[test]
    fn check_header_table() {
        use Algorithm::*;
        let rs256_only: &[Algorithm] = &[RS256];
        let all = ID_TOKEN_ALGS;
        let with_hs: &[Algorithm] = &[RS256, HS256, HS384, HS512];
        let body = b64(b"{}");
        let sig = b64(b"signature");
        let rs = b64(br#"{"alg":"RS256"}"#);
        #[rustfmt::skip]
        let cases: Vec<(&str, String, &[Algorithm], &str)> = vec![
            ("ok minimal", format!("{rs}.{body}.{sig}"), rs256_only, "ok"),
            ("too large", format!("{rs}.{}.{sig}", "A".repeat(MAX_ID_TOKEN_BYTES)), all, "id_token_too_large"),
            ("two parts", format!("{rs}.{body}"), all, "id_token_malformed"),
            ("four parts", format!("{rs}.{body}.{sig}.{sig}"), all, "id_token_malformed"),
            ("five parts (JWE)", format!("{rs}.{body}.{sig}.{sig}.{sig}"), all, "id_token_malformed"),
            ("one part", rs.clone(), all, "id_token_malformed"),
            ("empty", String::new(), all, "id_token_malformed"),
            ("empty header", format!(".{body}.{sig}"), all, "id_token_malformed"),
            ("empty payload", format!("{rs}..{sig}"), all, "id_token_malformed"),
            ("space", format!("{rs} .{body}.{sig}"), all, "id_token_malformed"),
            ("padding", format!("{rs}=.{body}.{sig}"), all, "id_token_malformed"),
            ("std base64 chars", format!("{rs}+/.{body}.{sig}"), all, "id_token_malformed"),
            ("non-ascii", format!("{rs}é.{body}.{sig}"), all, "id_token_malformed"),
            ("header bad length", format!("A.{body}.{sig}"), all, "id_token_malformed"),
            ("header not json", header_token("not json"), all, "id_token_malformed"),
            ("header array", header_token(r#"["RS256"]"#), all, "id_token_malformed"),
            ("header duplicate alg", header_token(r#"{"alg":"HS256","alg":"RS256"}"#), all, "id_token_malformed"),
            ("alg missing", header_token(r#"{"typ":"JWT"}"#), all, "id_token_malformed"),
            ("alg number", header_token(r#"{"alg":256}"#), all, "id_token_malformed"),
            ("alg none", header_token(r#"{"alg":"none"}"#), all, "id_token_alg_none"),
            ("alg None", header_token(r#"{"alg":"None"}"#), all, "id_token_alg_none"),
            ("alg NONE", header_token(r#"{"alg":"NONE"}"#), all, "id_token_alg_none"),
            ("alg HS256", header_token(r#"{"alg":"HS256"}"#), all, "id_token_alg_symmetric"),
            ("alg HS256 even if listed", header_token(r#"{"alg":"HS256"}"#), with_hs, "id_token_alg_symmetric"),
            ("alg HS512 even if listed", header_token(r#"{"alg":"HS512"}"#), with_hs, "id_token_alg_symmetric"),
            ("alg hs256", header_token(r#"{"alg":"hs256"}"#), with_hs, "id_token_alg_symmetric"),
            ("alg unknown", header_token(r#"{"alg":"RS1"}"#), all, "id_token_alg_not_allowed"),
            ("alg lowercase rs256", header_token(r#"{"alg":"rs256"}"#), all, "id_token_alg_not_allowed"),
            ("alg not advertised", header_token(r#"{"alg":"RS384"}"#), rs256_only, "id_token_alg_not_allowed"),
            ("alg ES256 vs RS256 only", header_token(r#"{"alg":"ES256"}"#), rs256_only, "id_token_alg_not_allowed"),
            ("alg list empty", header_token(r#"{"alg":"RS256"}"#), &[], "id_token_alg_not_allowed"),
            ("jwk", header_token(r#"{"alg":"RS256","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}"#), all, "id_token_embedded_key"),
            ("jku", header_token(r#"{"alg":"RS256","jku":"https://evil.example/jwks"}"#), all, "id_token_embedded_key"),
            ("x5u", header_token(r#"{"alg":"RS256","x5u":"https://evil.example/cert"}"#), all, "id_token_embedded_key"),
            ("jwk null", header_token(r#"{"alg":"RS256","jwk":null}"#), all, "id_token_embedded_key"),
            ("crit", header_token(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#), all, "id_token_crit_header"),
            ("crit empty", header_token(r#"{"alg":"RS256","crit":[]}"#), all, "id_token_crit_header"),
            ("typ at+jwt", header_token(r#"{"alg":"RS256","typ":"at+jwt"}"#), all, "id_token_bad_typ"),
            ("typ logout", header_token(r#"{"alg":"RS256","typ":"logout+jwt"}"#), all, "id_token_bad_typ"),
            ("typ JWS", header_token(r#"{"alg":"RS256","typ":"JOSE"}"#), all, "id_token_bad_typ"),
            ("typ number", header_token(r#"{"alg":"RS256","typ":1}"#), all, "id_token_bad_typ"),
            ("typ null", header_token(r#"{"alg":"RS256","typ":null}"#), all, "id_token_bad_typ"),
            ("typ JWT", header_token(r#"{"alg":"RS256","typ":"JWT"}"#), all, "ok"),
            ("typ jwt", header_token(r#"{"alg":"RS256","typ":"jwt"}"#), all, "ok"),
            ("typ application/jwt", header_token(r#"{"alg":"RS256","typ":"application/jwt"}"#), all, "ok"),
            ("typ Application/JWT", header_token(r#"{"alg":"RS256","typ":"Application/JWT"}"#), all, "ok"),
            ("kid number", header_token(r#"{"alg":"RS256","kid":1}"#), all, "id_token_malformed"),
            ("x5c and x5t ignored", header_token(r#"{"alg":"RS256","x5c":["MIIB"],"x5t":"abc","x5t#S256":"def"}"#), all, "ok"),
            ("EdDSA", header_token(r#"{"alg":"EdDSA"}"#), all, "ok"),
            ("PS512", header_token(r#"{"alg":"PS512"}"#), all, "ok"),
            ("empty signature", format!("{rs}.{body}."), all, "ok"),
        ];
        for (name, token, algorithms, expected) in cases {
            let result = check_header(&token, algorithms);
            assert_eq!(code(&result), expected, "case {name:?}: {result:?}");
        }
    }

    #[test]
    fn check_header_returns_alg_and_kid() {
        let token = header_token(r#"{"alg":"ES256","kid":"key-7","typ":"JWT"}"#);
        assert_eq!(
            check_header(&token, ID_TOKEN_ALGS).unwrap(),
            (Algorithm::ES256, Some("key-7".to_owned()))
        );
        let token = header_token(r#"{"alg":"PS384"}"#);
        assert_eq!(
            check_header(&token, ID_TOKEN_ALGS).unwrap(),
            (Algorithm::PS384, None)
        );
        // Exactly at the size limit is still parsed.
        let rs = b64(br#"{"alg":"RS256"}"#);
        let pad = MAX_ID_TOKEN_BYTES - rs.len() - 2 - 4;
        let token = format!("{rs}.{}.AAAA", "A".repeat(pad));
        assert_eq!(token.len(), MAX_ID_TOKEN_BYTES);
        assert!(check_header(&token, ID_TOKEN_ALGS).is_ok());
    }

    #[test]
    fn error_codes_are_unique_snake_case_and_messages_are_sentences() {
        let errors = [
            IdTokenError::TooLarge,
            IdTokenError::Malformed { what: "x" },
            IdTokenError::AlgNone,
            IdTokenError::SymmetricAlg,
            IdTokenError::AlgNotAllowed {
                alg: Some(Algorithm::RS384),
            },
            IdTokenError::EmbeddedKey { header: "jku" },
            IdTokenError::CriticalHeader,
            IdTokenError::BadType,
            IdTokenError::UnknownKey {
                kid: Some("k1".into()),
            },
            IdTokenError::Jwks(JwksError::BadStatus {
                uri: "https://idp.example/jwks".into(),
                status: 500,
            }),
            IdTokenError::BadSignature,
            IdTokenError::MissingClaim { claim: "exp" },
            IdTokenError::WrongClaimType { claim: "exp" },
            IdTokenError::BadIssuer,
            IdTokenError::BadAudience,
            IdTokenError::UntrustedAudience,
            IdTokenError::MissingAzp,
            IdTokenError::BadAzp,
            IdTokenError::Expired,
            IdTokenError::NotYetValid,
            IdTokenError::IssuedInFuture,
            IdTokenError::IssuedTooLongAgo,
            IdTokenError::BadNonce,
            IdTokenError::BadSubject { what: "empty" },
            IdTokenError::BadExpectations { what: "x" },
        ];
        let mut codes = HashSet::new();
        for e in &errors {
            let code = e.code();
            assert!(code.starts_with("id_token_"), "{code}");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
            assert!(codes.insert(code), "duplicate code {code}");
            assert!(e.to_string().starts_with("the "), "{e}");
        }
        assert_eq!(
            IdTokenError::BadAudience.to_string(),
            "the ID token's audience does not include this connection's client id"
        );
        assert_eq!(
            IdTokenError::AlgNotAllowed {
                alg: Some(Algorithm::RS384)
            }
            .to_string(),
            "the ID token is signed with RS384, which this connection does not accept"
        );
        assert_eq!(
            IdTokenError::UnknownKey {
                kid: Some("k1".into())
            }
            .to_string(),
            "the identity provider publishes no signing key matching the ID token (key id \"k1\")"
        );
    }

    // ---- end-to-end ------------------------------------------------------

    fn dead_uri() -> Url {
        // Loopback port 9: nothing listens; used where no fetch is expected.
        Url::parse("http://127.0.0.1:9/jwks").unwrap()
    }

    fn long_settings() -> JwksSettings {
        JwksSettings {
            refetch_cooldown: Duration::from_secs(3600),
            max_age: Duration::from_secs(3600),
            max_bytes: 64 * 1024,
            ..JwksSettings::default()
        }
    }

    fn all_public_keys() -> Value {
        let rsa_any = without_alg(rsa1().jwk); // usable for RS* and PS*
        jwks(&[&rsa_any, &ec256().jwk, &ec384().jwk, &ed25519().jwk])
    }

    fn seeded_cache() -> JwksCache {
        JwksCache::with_keys(
            http_client(),
            dead_uri(),
            long_settings(),
            &all_public_keys(),
        )
        .unwrap()
    }

    /// Asserts that neither Display nor Debug of the error contains any
    /// part of the token.
    fn assert_no_leak(err: &IdTokenError, token: &str) {
        let texts = [err.to_string(), format!("{err:?}")];
        for part in token.split('.').filter(|p| p.len() >= 8) {
            for text in &texts {
                assert!(!text.contains(part), "error text leaks the token: {text}");
                assert!(
                    !text.contains(&part[..8]),
                    "error text leaks the token: {text}"
                );
            }
        }
    }

    async fn run(
        token: &str,
        cache: &JwksCache,
        algorithms: &[Algorithm],
    ) -> Result<VerifiedIdToken, IdTokenError> {
        let trusted = trusted();
        let exp = expectations(&trusted, algorithms);
        let result = verify(token, cache, &exp, now()).await;
        if let Err(err) = &result {
            assert_no_leak(err, token);
        }
        result
    }

    #[tokio::test]
    async fn good_tokens_verify_for_every_key_type() {
        let cache = seeded_cache();
        for key in [rsa1(), ec256(), ec384(), ed25519()] {
            let token = sign(&key, &base_claims());
            let verified = run(&token, &cache, ID_TOKEN_ALGS)
                .await
                .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
            assert_eq!(verified.subject, "user-123");
            assert_eq!(verified.email.as_deref(), Some("ada@example.com"));
        }
        // Float NumericDates and a negative nbf pass through the signature
        // step (jsonwebtoken's own claim parsing must not get in the way).
        let odd_times = patched(&[
            ("exp", Some(json!(NOW as f64 + 300.25))),
            ("iat", Some(json!(NOW as f64 - 1.5))),
            ("nbf", Some(json!(-1))),
        ]);
        run(&sign(&rsa1(), &odd_times), &cache, ID_TOKEN_ALGS)
            .await
            .unwrap();
        // PS256 with the same RSA key (the JWK has no "alg").
        let rsa = rsa1();
        let header = json!({"alg": "PS256", "kid": "rsa1"});
        let token = sign_raw(&header, &base_claims(), &rsa.signing, Algorithm::PS256);
        run(&token, &cache, ID_TOKEN_ALGS).await.unwrap();
        assert_eq!(cache.fetch_count(), 0);
    }

    #[tokio::test]
    async fn kid_less_token_uses_the_single_fitting_key() {
        let ec = ec256();
        let cache = JwksCache::with_keys(
            http_client(),
            dead_uri(),
            long_settings(),
            &jwks(&[&rsa1().jwk, &ec.jwk]),
        )
        .unwrap();
        let token = sign_raw(
            &json!({"alg": "ES256"}),
            &base_claims(),
            &ec.signing,
            Algorithm::ES256,
        );
        run(&token, &cache, ID_TOKEN_ALGS).await.unwrap();
    }

    #[tokio::test]
    async fn rs256_and_es256_rejections() {
        let cache = seeded_cache();
        let (rsa, other_rsa, ec) = (rsa1(), rsa2(), ec256());
        let claims = base_claims();

        // Signed by a different RSA key under the trusted kid.
        let forged = sign_raw(
            &json!({"alg": "RS256", "kid": "rsa1"}),
            &claims,
            &other_rsa.signing,
            Algorithm::RS256,
        );
        assert_eq!(
            code(&run(&forged, &cache, ID_TOKEN_ALGS).await),
            "id_token_bad_signature"
        );

        // Signed by a different EC key under the trusted kid.
        let other_ec = EncodingKey::from_ec_der(&pem_to_der(EC256_PKCS8_PEM));
        let ec_claims = patched(&[("sub", Some(json!("someone-else")))]);
        let good_ec = sign(&ec, &claims);
        let swapped = {
            // Payload of one token with the signature of another.
            let other = sign_raw(
                &json!({"alg": "ES256", "kid": "ec256", "typ": "JWT"}),
                &ec_claims,
                &other_ec,
                Algorithm::ES256,
            );
            let good: Vec<&str> = good_ec.split('.').collect();
            let other: Vec<&str> = other.split('.').collect();
            format!("{}.{}.{}", good[0], other[1], good[2])
        };
        assert_eq!(
            code(&run(&swapped, &cache, ID_TOKEN_ALGS).await),
            "id_token_bad_signature"
        );

        // Tampered RS256 payload.
        let good_rs = sign(&rsa, &claims);
        let parts: Vec<&str> = good_rs.split('.').collect();
        let evil_payload = b64(patched(&[("sub", Some(json!("admin")))])
            .to_string()
            .as_bytes());
        let tampered = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
        assert_eq!(
            code(&run(&tampered, &cache, ID_TOKEN_ALGS).await),
            "id_token_bad_signature"
        );

        // Signature stripped (fails verification) / truncated to a
        // non-canonical base64url length (malformed).
        let stripped = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(
            code(&run(&stripped, &cache, ID_TOKEN_ALGS).await),
            "id_token_bad_signature"
        );
        let truncated = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            &parts[2][..parts[2].len() - 4]
        );
        assert_eq!(
            code(&run(&truncated, &cache, ID_TOKEN_ALGS).await),
            "id_token_malformed"
        );

        // ES256 signature presented as RS256 (alg switched in the header).
        let ec_parts: Vec<&str> = good_ec.split('.').collect();
        let relabeled_header = b64(json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"})
            .to_string()
            .as_bytes());
        let relabeled = format!("{relabeled_header}.{}.{}", ec_parts[1], ec_parts[2]);
        assert_eq!(
            code(&run(&relabeled, &cache, ID_TOKEN_ALGS).await),
            "id_token_bad_signature"
        );

        // alg none.
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        assert_eq!(
            code(&run(&none, &cache, ID_TOKEN_ALGS).await),
            "id_token_alg_none"
        );

        // Classic confusion: HS256 "signed" with the RSA public key bytes.
        let hmac_key = EncodingKey::from_secret(RSA1_PUBLIC_PEM.as_bytes());
        let confused = sign_raw(
            &json!({"alg": "HS256", "kid": "rsa1", "typ": "JWT"}),
            &claims,
            &hmac_key,
            Algorithm::HS256,
        );
        assert_eq!(
            code(&run(&confused, &cache, ID_TOKEN_ALGS).await),
            "id_token_alg_symmetric"
        );
        let with_hs = [Algorithm::RS256, Algorithm::HS256];
        assert_eq!(
            code(&run(&confused, &cache, &with_hs).await),
            "id_token_alg_symmetric"
        );
        // Same with the DER modulus/SPKI bytes as the secret.
        let der_key = EncodingKey::from_secret(&pem_to_der(RSA1_PUBLIC_PEM));
        let confused = sign_raw(
            &json!({"alg": "HS256", "kid": "rsa1"}),
            &claims,
            &der_key,
            Algorithm::HS256,
        );
        assert_eq!(
            code(&run(&confused, &cache, &with_hs).await),
            "id_token_alg_symmetric"
        );

        // Algorithm valid but not among the provider's advertised ones.
        let good_rs = sign(&rsa, &claims);
        assert_eq!(
            code(&run(&good_rs, &cache, &[Algorithm::ES256]).await),
            "id_token_alg_not_allowed"
        );

        // Header key references, with otherwise valid signatures.
        let public_jwk = rsa.jwk.clone();
        for (header, expected) in [
            (
                json!({"alg": "RS256", "kid": "rsa1", "jwk": public_jwk}),
                "id_token_embedded_key",
            ),
            (
                json!({"alg": "RS256", "kid": "rsa1", "jku": "https://evil.example/jwks"}),
                "id_token_embedded_key",
            ),
            (
                json!({"alg": "RS256", "kid": "rsa1", "x5u": "https://evil.example/x5u"}),
                "id_token_embedded_key",
            ),
            (
                json!({"alg": "RS256", "kid": "rsa1", "crit": ["b64"], "b64": false}),
                "id_token_crit_header",
            ),
            (
                json!({"alg": "RS256", "kid": "rsa1", "typ": "at+jwt"}),
                "id_token_bad_typ",
            ),
        ] {
            let token = sign_raw(&header, &claims, &rsa.signing, Algorithm::RS256);
            assert_eq!(
                code(&run(&token, &cache, ID_TOKEN_ALGS).await),
                expected,
                "{header}"
            );
        }
        // x5c/x5t are ignored (the key still comes from the JWKS).
        let token = sign_raw(
            &json!({"alg": "RS256", "kid": "rsa1", "x5c": ["MIIBIjAN"], "x5t": "abc"}),
            &claims,
            &rsa.signing,
            Algorithm::RS256,
        );
        run(&token, &cache, ID_TOKEN_ALGS).await.unwrap();

        // Valid signature, bad claims: claim checks use the injected time.
        let expired = sign(&rsa, &patched(&[("exp", Some(json!(NOW - 3600)))]));
        assert_eq!(
            code(&run(&expired, &cache, ID_TOKEN_ALGS).await),
            "id_token_expired"
        );
        let wrong_nonce = sign(&ec, &patched(&[("nonce", Some(json!("other")))]));
        assert_eq!(
            code(&run(&wrong_nonce, &cache, ID_TOKEN_ALGS).await),
            "id_token_bad_nonce"
        );

        // Signed payloads that are not JSON objects / have duplicate claims.
        for payload in [&b"[1,2]"[..], b"not json", br#"{"sub":"a","sub":"b"}"#] {
            let message = format!(
                "{}.{}",
                b64(br#"{"alg":"RS256","kid":"rsa1"}"#),
                b64(payload)
            );
            let signature =
                jsonwebtoken::crypto::sign(message.as_bytes(), &rsa.signing, Algorithm::RS256)
                    .unwrap();
            let token = format!("{message}.{signature}");
            assert_eq!(
                code(&run(&token, &cache, ID_TOKEN_ALGS).await),
                "id_token_malformed"
            );
        }
        assert_eq!(cache.fetch_count(), 0, "none of these needed a fetch");
    }

    #[tokio::test]
    async fn kid_not_in_jwks_is_rejected_after_one_refetch() {
        let server = JwksServer::start(Answer::Json(all_public_keys().to_string())).await;
        let cache = JwksCache::with_keys(
            http_client(),
            server.uri.clone(),
            long_settings(),
            &all_public_keys(),
        )
        .unwrap();
        let rsa = rsa1();
        let claims = base_claims();

        let unknown = sign_raw(
            &json!({"alg": "RS256", "kid": "rotated-away"}),
            &claims,
            &rsa.signing,
            Algorithm::RS256,
        );
        let result = run(&unknown, &cache, ID_TOKEN_ALGS).await;
        assert_eq!(code(&result), "id_token_unknown_key");
        assert!(result.unwrap_err().to_string().contains("\"rotated-away\""));
        assert_eq!(server.hits(), 1);

        // A kid that exists but for another key type is also "unknown".
        let ec_with_rsa_kid = sign_raw(
            &json!({"alg": "ES256", "kid": "rsa1"}),
            &claims,
            &ec256().signing,
            Algorithm::ES256,
        );
        assert_eq!(
            code(&run(&ec_with_rsa_kid, &cache, ID_TOKEN_ALGS).await),
            "id_token_unknown_key"
        );
        assert_eq!(
            server.hits(),
            1,
            "second miss inside the cooldown does not fetch"
        );

        // The good token still verifies from the cache.
        run(&sign(&rsa, &claims), &cache, ID_TOKEN_ALGS)
            .await
            .unwrap();
        server.stop().await;
    }

    #[tokio::test]
    async fn unreachable_jwks_is_reported_as_such() {
        // A loopback port that was just free: nothing listens there.
        let port = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let uri = Url::parse(&format!("http://127.0.0.1:{port}/jwks")).unwrap();
        let cache = JwksCache::new(http_client(), uri, long_settings());
        let token = sign(&rsa1(), &base_claims());
        let result = run(&token, &cache, ID_TOKEN_ALGS).await;
        assert_eq!(code(&result), "id_token_jwks_unavailable");
        let err = result.unwrap_err();
        assert!(
            matches!(&err, IdTokenError::Jwks(JwksError::Unreachable { .. })),
            "{err:?}"
        );
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.is_idp_fault());
        assert!(!IdTokenError::BadSignature.is_idp_fault());
        assert!(!IdTokenError::UnknownKey { kid: None }.is_idp_fault());
    }

    #[tokio::test]
    async fn oversized_token_is_rejected_before_parsing() {
        let cache = seeded_cache();
        let claims = patched(&[("padding", Some(json!("x".repeat(MAX_ID_TOKEN_BYTES))))]);
        let token = sign(&rsa1(), &claims);
        assert_eq!(
            code(&run(&token, &cache, ID_TOKEN_ALGS).await),
            "id_token_too_large"
        );
    }

    #[test]
    fn claims_map_is_used_verbatim() {
        let trusted = trusted();
        let exp = expectations(&trusted, ID_TOKEN_ALGS);
        let claims = patched(&[("groups", Some(json!(["a", "b"])))]);
        let verified = check_claims(&claims, &exp, now()).unwrap();
        let expected: Map<String, Value> = claims.as_object().unwrap().clone();
        assert_eq!(verified.claims, expected);
    }

    #[tokio::test]
    async fn kid_less_token_after_a_rotation_refetches_once_and_verifies() {
        let (old, new) = (rsa1(), rsa2());
        let server = JwksServer::start(Answer::Json(jwks(&[&new.jwk]).to_string())).await;
        let cache = JwksCache::with_keys(
            http_client(),
            server.uri.clone(),
            long_settings(),
            &jwks(&[&old.jwk]),
        )
        .unwrap();
        let kid_less = |key: &EncodingKey| {
            sign_raw(
                &json!({"alg": "RS256"}),
                &base_claims(),
                key,
                Algorithm::RS256,
            )
        };
        // Signed with the new key, which the cached set lacks: one refetch, then it verifies.
        run(&kid_less(&new.signing), &cache, ID_TOKEN_ALGS)
            .await
            .unwrap();
        assert_eq!(server.hits(), 1);
        run(&kid_less(&new.signing), &cache, ID_TOKEN_ALGS)
            .await
            .unwrap();
        assert_eq!(server.hits(), 1, "the new key is cached now");
        // A kid-less forgery right after: refused, and the floor spares the IdP a fetch.
        let forged = run(&kid_less(&old.signing), &cache, ID_TOKEN_ALGS).await;
        assert_eq!(code(&forged), "id_token_bad_signature");
        assert_eq!(server.hits(), 1);
        // A token with a kid and a bad signature never refetches.
        let with_kid = sign_raw(
            &json!({"alg": "RS256", "kid": "rsa2"}),
            &base_claims(),
            &old.signing,
            Algorithm::RS256,
        );
        assert_eq!(
            code(&run(&with_kid, &cache, ID_TOKEN_ALGS).await),
            "id_token_bad_signature"
        );
        assert_eq!(server.hits(), 1);
        server.stop().await;
    }

    /// (case, signing key, `at_hash` claim, access token, expected code)
    type AtHashCase<'a> = (&'a str, TestKey, Option<Value>, Option<&'a str>, &'a str);

    #[tokio::test]
    async fn at_hash_is_checked_when_an_access_token_came_with_the_id_token() {
        let cache = seeded_cache();
        let trusted = trusted();
        let exp = expectations(&trusted, ID_TOKEN_ALGS);
        let good = crate::oidc::at_hash::at_hash(Algorithm::RS256, "the-access-token").unwrap();
        let es_good = crate::oidc::at_hash::at_hash(Algorithm::ES384, "the-access-token").unwrap();
        #[rustfmt::skip]
        let cases: Vec<AtHashCase> = vec![
            ("matching at_hash", rsa1(), Some(json!(good)), Some("the-access-token"), "ok"),
            ("matching at_hash, SHA-384", ec384(), Some(json!(es_good)), Some("the-access-token"), "ok"),
            ("another access token", rsa1(), Some(json!(good)), Some("swapped-token"), "id_token_bad_at_hash"),
            ("hash of the wrong size (SHA-256 under ES384)", ec384(), Some(json!(good)), Some("the-access-token"), "id_token_bad_at_hash"),
            ("garbage at_hash", rsa1(), Some(json!("AAAA")), Some("the-access-token"), "id_token_bad_at_hash"),
            ("at_hash a number", rsa1(), Some(json!(5)), Some("the-access-token"), "id_token_bad_claim_type"),
            ("no at_hash (code flow)", rsa1(), None, Some("the-access-token"), "ok"),
            ("no access token: nothing to check", rsa1(), Some(json!("AAAA")), None, "ok"),
        ];
        for (case, key, at_hash, access_token, expected) in cases {
            let claims = patched(&[("at_hash", at_hash)]);
            let token = sign(&key, &claims);
            let result = verify_with_access_token(&token, access_token, &cache, &exp, now()).await;
            assert_eq!(code(&result), expected, "{case}");
        }
        assert_eq!(
            IdTokenError::BadAtHash.to_string(),
            "the ID token's access-token hash (\"at_hash\") does not match the access token it came with"
        );
        assert_eq!(cache.fetch_count(), 0);
    }
}
