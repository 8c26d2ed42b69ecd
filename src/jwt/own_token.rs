//! orgsso's own access tokens (ES256, `typ: at+jwt`, one of the service's kids): a policy over
//! [`crate::jose`]. The verify endpoint asks [`own_candidate`] whether a bearer token claims to
//! be one of ours, looks the kid up among the service's keys, and then calls [`verify`].
//! Claims are checked like an org secret's (audience and issuer lists of one, same reasons),
//! plus the `org` claim.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::signing::ACCESS_TOKEN_TYP;
use super::verify::{check_claim_map, TokenError};
use crate::jose::alg::OWN_TOKEN_ALGS;
use crate::jose::compact::{
    self, JwsError, JwsRules, TypRule, VerifyingKey, BEARER_FORBIDDEN_HEADERS,
    MAX_BEARER_TOKEN_BYTES,
};

/// A bearer token whose header says it is one of orgsso's own: ES256 with a `kid`.
#[derive(Debug)]
pub struct OwnCandidate {
    kid: String,
    typ: Option<String>,
}

impl OwnCandidate {
    /// The kid to look up among the service's verification keys.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The token's header could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("the token is not a well-formed JWT")]
pub struct NotAJwt;

/// Reads the header the way the verify endpoint always has (jsonwebtoken's lenient typed
/// header: what it cannot read is "not a well-formed JWT" before any secret is tried), and says
/// whether the token claims to be one of ours. `None`: the org's secrets decide.
pub fn own_candidate(token: &str) -> Result<Option<OwnCandidate>, NotAJwt> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| NotAJwt)?;
    Ok(match (header.alg, header.kid) {
        (Algorithm::ES256, Some(kid)) => Some(OwnCandidate {
            kid,
            typ: header.typ,
        }),
        _ => None,
    })
}

/// What one of our tokens must say for this org.
#[derive(Clone, Copy, Debug)]
pub struct OwnTokenExpectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// The org's slug, the `org` claim.
    pub org: &'a str,
    pub leeway: Duration,
}

/// Why one of our own tokens was refused.
#[derive(Debug, thiserror::Error)]
pub enum OwnTokenError {
    #[error("the token is not an orgsso access token (typ must be at+jwt)")]
    NotAccessToken,
    #[error(transparent)]
    Token(TokenError),
    #[error("the token was issued for another org")]
    OtherOrg,
}

/// Verifies a token [`own_candidate`] picked out, with the service key its kid names.
/// Returns its claims.
pub fn verify(
    token: &str,
    candidate: &OwnCandidate,
    key: &DecodingKey,
    expect: &OwnTokenExpectations<'_>,
    now: OffsetDateTime,
) -> Result<Map<String, Value>, OwnTokenError> {
    if candidate.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return Err(OwnTokenError::NotAccessToken);
    }
    let rules = JwsRules {
        max_bytes: MAX_BEARER_TOKEN_BYTES,
        charset_first: false,
        algorithms: OWN_TOKEN_ALGS,
        forbidden_headers: BEARER_FORBIDDEN_HEADERS,
        typ: TypRule::Any,
    };
    // Whatever fails before the claims is reported as a bad signature, as it always was: only
    // tokens that our own key signed get further.
    let bad_signature = |_| OwnTokenError::Token(TokenError::BadSignature);
    let jws = compact::parse(token, &rules).map_err(bad_signature)?;
    let verified = jws.verify(VerifyingKey::Jwt(key)).map_err(bad_signature)?;
    let claims = verified.payload_object().map_err(|e| match e {
        JwsError::PayloadNotObject => OwnTokenError::Token(TokenError::Malformed(
            "the token payload is not a JSON object",
        )),
        other => bad_signature(other),
    })?;
    check_claim_map(
        &claims,
        &[expect.audience.to_owned()],
        &[expect.issuer.to_owned()],
        now,
        expect.leeway,
    )
    .map_err(OwnTokenError::Token)?;
    if claims.get("org").and_then(Value::as_str) != Some(expect.org) {
        return Err(OwnTokenError::OtherOrg);
    }
    Ok(claims)
}
