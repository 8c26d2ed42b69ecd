//! OpenID Connect Back-Channel Logout 1.0 logout tokens (§2.4, checked as §2.6 says): a policy
//! over [`crate::jose`], with the ID token's key set and algorithms.
//!
//! [`route`] reads `iss` and `aud` of a token whose shape and header passed, before any key
//! lookup, only to find the connections it may be for; nothing else is read unverified.
//! [`verify`] then checks, per connection: the header (an ID-token algorithm the connection
//! allows, never `none` or HMAC, no embedded keys, `typ` `logout+jwt` when present), the
//! signature with a key from the connection's [`JwksCache`] (so rotation rules apply), `iss`,
//! `aud` containing the client id, `iat` (not in the future, not older than the ID tokens' max
//! age), `exp` when present, `events` with the back-channel-logout member (an object), `sub` or
//! `sid`, no `nonce`, and a `jti`. Whether the `jti` was seen before is the store's to say.
//! Messages never contain the token or any part of it.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::jose::alg::{alg_name, ID_TOKEN_ALGS};
use crate::jose::claims::{self, AudienceRule, ClaimError, ClaimRules, IssuerRule};
use crate::jose::compact::{
    self, Jws, JwsError, JwsRules, TypRule, VerifyingKey, ID_TOKEN_FORBIDDEN_HEADERS,
    MAX_ID_TOKEN_BYTES,
};
use crate::jose::json::parse_object;
use crate::jose::jwks::{JwksCache, JwksError};

/// The `events` member that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Longest `sid`, `sub` and `jti` kept, in bytes.
/// (The same bound as an ID token's `sub`.)
const MAX_ID_BYTES: usize = super::idtoken::MAX_SUBJECT_BYTES;

/// Why a logout token was refused: a sentence an IdP administrator can act on.
#[derive(Debug, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("the logout token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the logout token is unsigned (algorithm \"none\"), which is never accepted")]
    AlgNone,
    #[error(
        "the logout token is signed with a shared-secret (HS*) algorithm, which is never accepted"
    )]
    SymmetricAlg,
    #[error("the logout token is signed with {}, which this connection does not accept for ID tokens", .0.map_or("an unknown algorithm", alg_name))]
    AlgNotAllowed(Option<Algorithm>),
    #[error("the logout token's header names its own key (\"{0}\") or has \"crit\"; keys from the token are never trusted")]
    ForbiddenHeader(&'static str),
    #[error("the logout token's header declares a type (\"typ\") other than logout+jwt")]
    BadType,
    #[error("the identity provider publishes no signing key matching the logout token")]
    UnknownKey,
    #[error("the identity provider's signing keys could not be used: {0}")]
    Jwks(#[source] JwksError),
    #[error("the logout token's signature does not verify with the identity provider's key")]
    BadSignature,
    #[error("the logout token has no \"{0}\" claim")]
    MissingClaim(&'static str),
    #[error("the logout token's \"{0}\" claim has the wrong type or length")]
    WrongClaimType(&'static str),
    #[error("the logout token was issued by a different issuer than the connection's")]
    BadIssuer,
    #[error("the logout token's audience does not include the connection's client id")]
    BadAudience,
    #[error("the logout token has expired")]
    Expired,
    #[error("the logout token's issue time (\"iat\") is in the future; check the identity provider's clock")]
    IssuedInFuture,
    #[error("the logout token was issued too long ago")]
    IssuedTooLongAgo,
    #[error("the logout token's \"events\" claim has no back-channel logout event ({BACKCHANNEL_LOGOUT_EVENT} with an object)")]
    NoLogoutEvent,
    #[error("the logout token names no session: it has neither \"sub\" nor \"sid\"")]
    NoSubjectOrSession,
    #[error("the logout token has a \"nonce\" claim, which logout tokens must not have (is it an ID token?)")]
    NoncePresent,
}

impl From<JwsError> for LogoutTokenError {
    fn from(e: JwsError) -> Self {
        use LogoutTokenError::Malformed;
        match e {
            JwsError::TooLarge => Malformed("it is longer than 16 KiB"),
            JwsError::NotBase64UrlChars
            | JwsError::NotThreeParts
            | JwsError::EmptyPart
            | JwsError::HeaderNotBase64
            | JwsError::SignatureNotBase64
            | JwsError::PayloadNotBase64 => {
                Malformed("it is not a compact JWS (three base64url parts)")
            }
            JwsError::HeaderNotObject | JwsError::HeaderDuplicate => {
                Malformed("its header is not a JSON object (without duplicate names)")
            }
            JwsError::PayloadNotObject | JwsError::PayloadDuplicate => {
                Malformed("its payload is not a JSON object (without duplicate names)")
            }
            JwsError::AlgMissing | JwsError::AlgNotString => {
                Malformed("its header has no \"alg\" string")
            }
            JwsError::KidNotString => Malformed("its header's \"kid\" is not a string"),
            JwsError::AlgNone => LogoutTokenError::AlgNone,
            JwsError::AlgSymmetric => LogoutTokenError::SymmetricAlg,
            JwsError::AlgNotAllowed(alg) => LogoutTokenError::AlgNotAllowed(alg),
            JwsError::ForbiddenHeader(h) => LogoutTokenError::ForbiddenHeader(h),
            JwsError::BadType => LogoutTokenError::BadType,
            JwsError::BadSignature => LogoutTokenError::BadSignature,
        }
    }
}

impl From<ClaimError> for LogoutTokenError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Missing(c) => LogoutTokenError::MissingClaim(c),
            ClaimError::WrongType(c) => LogoutTokenError::WrongClaimType(c),
            ClaimError::Expired => LogoutTokenError::Expired,
            ClaimError::IssuedInFuture => LogoutTokenError::IssuedInFuture,
            ClaimError::IssuedTooLongAgo => LogoutTokenError::IssuedTooLongAgo,
            ClaimError::BadIssuer => LogoutTokenError::BadIssuer,
            ClaimError::BadAudience | ClaimError::UntrustedAudience => {
                LogoutTokenError::BadAudience
            }
            ClaimError::NotYetValid => LogoutTokenError::Malformed("it is not valid yet (\"nbf\")"),
        }
    }
}

/// What one connection expects of a logout token.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The connection's ID-token algorithms (anything outside [`ID_TOKEN_ALGS`] is ignored).
    pub algorithms: &'a [Algorithm],
    pub leeway: Duration,
    /// The ID tokens' max `iat` age, also the longest a logout token is taken.
    pub max_iat_age: Duration,
}

/// A verified logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutClaims {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    /// The unix second after which the token is refused anyway: its `jti` is kept until then.
    pub valid_until: i64,
}

/// The issuer and audiences a token says it is from and for: used only to find connections.
pub struct Route {
    pub issuer: String,
    pub audiences: Vec<String>,
}

fn parse<'t>(token: &'t str, algorithms: &[Algorithm]) -> Result<Jws<'t>, LogoutTokenError> {
    let rules = JwsRules {
        max_bytes: MAX_ID_TOKEN_BYTES,
        charset_first: true,
        algorithms,
        forbidden_headers: ID_TOKEN_FORBIDDEN_HEADERS,
        typ: TypRule::Any,
    };
    let jws = compact::parse(token, &rules)?;
    // §2.6 / RFC 8725 explicit typing: `logout+jwt` when a type is declared at all.
    match jws.header.get("typ") {
        None => {}
        Some(Value::String(t))
            if t.eq_ignore_ascii_case("logout+jwt")
                || t.eq_ignore_ascii_case("application/logout+jwt") => {}
        Some(_) => return Err(LogoutTokenError::BadType),
    }
    if !jws.registered_header_types_ok() {
        return Err(LogoutTokenError::Malformed(
            "a header member has the wrong type",
        ));
    }
    Ok(jws)
}

/// `iss` and `aud` of a well-formed token with an ID-token algorithm, read before verification
/// only to find the connections to verify it for.
/// Longest `iss` or `aud` value looked up (issuer URLs and client ids are far shorter).
const MAX_ROUTE_BYTES: usize = 2048;

pub fn route(token: &str) -> Result<Route, LogoutTokenError> {
    let jws = parse(token, ID_TOKEN_ALGS)?;
    let payload = parse_object(&jws.payload()?).map_err(JwsError::from)?;
    let issuer = claims::required_string(&payload, "iss")?.to_owned();
    let audiences = claims::audiences(&payload)?
        .ok_or(LogoutTokenError::MissingClaim("aud"))?
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<String>>();
    // Read before any signature check and used in a query: nothing a database refuses (a NUL
    // byte is an error on PostgreSQL, which must not become a 500), nothing unbounded.
    let fit =
        |s: &str| !s.is_empty() && s.len() <= MAX_ROUTE_BYTES && !s.chars().any(char::is_control);
    if !fit(&issuer) || !audiences.iter().all(|a| fit(a)) {
        return Err(LogoutTokenError::Malformed(
            "its iss or aud is empty, too long or has control characters",
        ));
    }
    Ok(Route { issuer, audiences })
}

/// The `sid` of verified claims (an ID token's or a logout token's) when usable.
pub fn session_id(claims: &Map<String, Value>) -> Option<&str> {
    claims
        .get("sid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES && !s.chars().any(char::is_control))
}

/// Fully verifies a logout token for one connection at `now`.
pub async fn verify(
    token: &str,
    jwks: &JwksCache,
    expect: &Expectations<'_>,
    now: OffsetDateTime,
) -> Result<LogoutClaims, LogoutTokenError> {
    let allowed: Vec<Algorithm> = ID_TOKEN_ALGS
        .iter()
        .copied()
        .filter(|a| expect.algorithms.contains(a))
        .collect();
    let jws = parse(token, &allowed)?;
    let key = jwks
        .key_for(jws.alg, jws.kid.as_deref())
        .await
        .map_err(|e| match e {
            JwksError::NoMatchingKey { .. } => LogoutTokenError::UnknownKey,
            other => LogoutTokenError::Jwks(other),
        })?;
    let claims = jws.verify(VerifyingKey::Jwt(&key))?.payload_object()?;
    check_claims(&claims, expect, now)
}

/// The claims of a verified token (pure).
pub fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
    now: OffsetDateTime,
) -> Result<LogoutClaims, LogoutTokenError> {
    // §2.6: `aud` as for ID tokens: it must name this client and no client orgsso does not trust.
    let rules = ClaimRules {
        issuer: IssuerRule::Exactly(expect.issuer),
        audience: AudienceRule::Includes {
            id: expect.client_id,
            also_trusted: &[],
        },
        max_iat_age: Some(expect.max_iat_age),
        leeway: expect.leeway,
        now,
    };
    rules.check_issuer(claims::string(claims, "iss")?)?;
    rules.check_audience(claims::audiences(claims)?.as_deref())?;
    let iat = claims::required_numeric_date(claims, "iat")?;
    rules.check_issued_at(Some(iat))?;
    let exp = claims::numeric_date(claims, "exp")?;
    if let Some(exp) = exp {
        rules.check_expiry(exp)?;
    }
    match claims.get("events") {
        Some(Value::Object(events))
            if matches!(events.get(BACKCHANNEL_LOGOUT_EVENT), Some(Value::Object(_))) => {}
        Some(Value::Object(_)) | None => return Err(LogoutTokenError::NoLogoutEvent),
        Some(_) => return Err(LogoutTokenError::WrongClaimType("events")),
    }
    if claims.contains_key("nonce") {
        return Err(LogoutTokenError::NoncePresent);
    }
    let id = |name: &'static str| -> Result<Option<String>, LogoutTokenError> {
        match claims::string(claims, name)? {
            None => Ok(None),
            // Used in queries: a NUL is an error on PostgreSQL, never a 500.
            Some(v)
                if v.is_empty() || v.len() > MAX_ID_BYTES || v.chars().any(char::is_control) =>
            {
                Err(LogoutTokenError::WrongClaimType(name))
            }
            Some(v) => Ok(Some(v.to_owned())),
        }
    };
    let (sub, sid) = (id("sub")?, id("sid")?);
    if sub.is_none() && sid.is_none() {
        return Err(LogoutTokenError::NoSubjectOrSession);
    }
    let jti = id("jti")?.ok_or(LogoutTokenError::MissingClaim("jti"))?;
    let leeway = expect.leeway.as_secs() as i64;
    let by_age = iat as i64 + expect.max_iat_age.as_secs() as i64 + leeway + 1;
    // Saturating: a far-future `exp` must not wrap into the past (the jti would look expired).
    let valid_until = exp.map_or(by_age, |e| {
        by_age.min((e as i64).saturating_add(leeway + 1))
    });
    Ok(LogoutClaims {
        sub,
        sid,
        jti,
        valid_until,
    })
}

#[cfg(test)]
#[path = "logout_token_tests.rs"]
mod tests;
