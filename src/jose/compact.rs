//! Strict compact-JWS parsing and signature verification.
//!
//! [`parse`] checks a token's shape and JOSE header against a token kind's [`JwsRules`] before
//! any key is touched: size limit, exactly three base64url parts, a header that is a strict JSON
//! object, `alg` (never `none`; HS* only where the kind accepts a shared secret), forbidden
//! header members, `typ`, and `kid`. The payload and signature are decoded only when a policy
//! asks ([`Jws::signature`], [`Jws::payload`], [`Jws::verify`], [`Verified::payload_object`]), so
//! each policy keeps the order in which its refusals have always been reported.
//!
//! [`JwsError`] names the defect; each token kind maps it to its own words. Nothing here ever
//! puts any part of a token into an error.

use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::{Map, Value};

use super::json::{parse_object, ObjectError};
use super::keys::Rs256Key;

/// Largest ID token accepted, in bytes. ID tokens come from an identity provider this
/// connection trusts, once per sign-in, and can carry large claims (group lists).
pub const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;

/// Largest bearer token accepted at the verify endpoint (org secrets and orgsso's own tokens),
/// in bytes. Anyone can send these on every request, and they are hashed before the verdict
/// cache is asked, so the bound is kept tighter; `TokenError::TooLarge` says "8192 bytes".
pub const MAX_BEARER_TOKEN_BYTES: usize = 8 * 1024;

/// Header members that carry or point at a key, or demand processing rules nobody here
/// implements: refused for bearer tokens.
pub const BEARER_FORBIDDEN_HEADERS: &[&str] = &["jwk", "jku", "x5u", "x5c", "crit", "b64"];

/// Header members refused in ID tokens: keys named by the token are never trusted, and no JWS
/// extension is supported. `x5c`/`x5t` are tolerated there (the key still comes from the JWKS).
pub const ID_TOKEN_FORBIDDEN_HEADERS: &[&str] = &["jwk", "jku", "x5u", "crit"];

/// What a token kind requires of the `typ` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypRule {
    /// Not looked at.
    Any,
    /// Absent, or `JWT` / `application/jwt` in any case (an ID token is never an `at+jwt`).
    JwtOrAbsent,
    /// Exactly this value (e.g. `logout+jwt`).
    Exactly(&'static str),
}

/// A token kind's parsing rules.
#[derive(Clone, Copy, Debug)]
pub struct JwsRules<'a> {
    /// Longer tokens are refused before anything else.
    pub max_bytes: usize,
    /// Refuse any byte outside base64url and `.` before splitting (ID tokens); otherwise each
    /// part's base64url decoding finds such bytes, in the parsing order.
    pub charset_first: bool,
    /// Algorithms accepted. HS* in a token whose kind accepts no HS* algorithm is reported as
    /// [`JwsError::AlgSymmetric`] (an attack signal), not as merely unlisted.
    pub algorithms: &'a [Algorithm],
    /// Header members refused, checked in this order.
    pub forbidden_headers: &'a [&'static str],
    pub typ: TypRule,
}

/// Why a token was refused by the JWS layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwsError {
    TooLarge,
    /// A byte outside base64url and `.` (only with [`JwsRules::charset_first`]).
    NotBase64UrlChars,
    NotThreeParts,
    /// Empty header or payload.
    EmptyPart,
    HeaderNotBase64,
    HeaderNotObject,
    HeaderDuplicate,
    AlgMissing,
    AlgNotString,
    AlgNone,
    AlgSymmetric,
    /// A known algorithm outside the rules, or (`None`) not a known one.
    AlgNotAllowed(Option<Algorithm>),
    ForbiddenHeader(&'static str),
    BadType,
    KidNotString,
    SignatureNotBase64,
    PayloadNotBase64,
    PayloadNotObject,
    PayloadDuplicate,
    BadSignature,
}

impl From<ObjectError> for JwsError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotObject => JwsError::PayloadNotObject,
            ObjectError::Duplicate => JwsError::PayloadDuplicate,
        }
    }
}

/// A key to verify a signature with.
#[derive(Clone, Copy)]
pub enum VerifyingKey<'k> {
    /// Any jsonwebtoken key (HMAC secrets, JWKS keys, orgsso's own ES256 keys), checked by
    /// jsonwebtoken's aws-lc backend.
    Jwt(&'k DecodingKey),
    /// An org secret's RSA key, parsed once ([`Rs256Key`]) and checked with RS256 by aws-lc
    /// directly: jsonwebtoken would rebuild the key from its components on every call.
    Rs256(&'k Rs256Key),
}

/// A token whose shape and header passed the rules; payload and signature not yet decoded.
/// No `Debug`: it holds parts of a token.
pub struct Jws<'t> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub header: Map<String, Value>,
    /// `header.payload`, exactly as received: what the signature covers.
    signing_input: &'t str,
    payload_b64: &'t str,
    signature_b64: &'t str,
}

fn is_b64url_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Checks `token`'s shape and header against `rules` (see the module docs for the order).
pub fn parse<'t>(token: &'t str, rules: &JwsRules<'_>) -> Result<Jws<'t>, JwsError> {
    if token.len() > rules.max_bytes {
        return Err(JwsError::TooLarge);
    }
    if rules.charset_first && !token.bytes().all(|b| is_b64url_char(b) || b == b'.') {
        return Err(JwsError::NotBase64UrlChars);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::NotThreeParts);
    };
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err(JwsError::EmptyPart);
    }
    let header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwsError::HeaderNotBase64)?;
    let header = parse_object(&header).map_err(|e| match e {
        ObjectError::NotObject => JwsError::HeaderNotObject,
        ObjectError::Duplicate => JwsError::HeaderDuplicate,
    })?;
    let alg = check_alg(header.get("alg"), rules.algorithms)?;
    if let Some(name) = rules
        .forbidden_headers
        .iter()
        .find(|h| header.contains_key(**h))
    {
        return Err(JwsError::ForbiddenHeader(name));
    }
    let typ_ok = match (rules.typ, header.get("typ")) {
        (TypRule::Any, _) | (TypRule::JwtOrAbsent, None) => true,
        (TypRule::JwtOrAbsent, Some(Value::String(typ))) => {
            typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("application/jwt")
        }
        (TypRule::Exactly(want), Some(Value::String(typ))) => typ == want,
        _ => false,
    };
    if !typ_ok {
        return Err(JwsError::BadType);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(JwsError::KidNotString),
    };
    Ok(Jws {
        alg,
        kid,
        header,
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        payload_b64,
        signature_b64,
    })
}

fn check_alg(alg: Option<&Value>, allowed: &[Algorithm]) -> Result<Algorithm, JwsError> {
    let alg = match alg {
        None => return Err(JwsError::AlgMissing),
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(JwsError::AlgNotString),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwsError::AlgNone);
    }
    let parsed = Algorithm::from_str(alg).ok();
    let looks_hmac = alg.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS"))
        || parsed.is_some_and(|a| a.family() == AlgorithmFamily::Hmac);
    if looks_hmac && !allowed.iter().any(|a| a.family() == AlgorithmFamily::Hmac) {
        return Err(JwsError::AlgSymmetric);
    }
    match parsed {
        Some(a) if allowed.contains(&a) => Ok(a),
        other => Err(JwsError::AlgNotAllowed(other)),
    }
}

impl<'a> Jws<'a> {
    /// The third part as received (base64url), possibly empty.
    pub fn signature_b64(&self) -> &str {
        self.signature_b64
    }

    /// The decoded signature.
    pub fn signature(&self) -> Result<Vec<u8>, JwsError> {
        URL_SAFE_NO_PAD
            .decode(self.signature_b64)
            .map_err(|_| JwsError::SignatureNotBase64)
    }

    /// The decoded payload bytes.
    pub fn payload(&self) -> Result<Vec<u8>, JwsError> {
        URL_SAFE_NO_PAD
            .decode(self.payload_b64)
            .map_err(|_| JwsError::PayloadNotBase64)
    }

    /// Verifies the signature over the signing input with `key`, using the header's (already
    /// allowed) algorithm. Only the answer gives access to the claims.
    pub fn verify(&self, key: VerifyingKey<'_>) -> Result<Verified<'_, 'a>, JwsError> {
        let message = self.signing_input.as_bytes();
        let ok = match key {
            VerifyingKey::Jwt(key) => {
                match jsonwebtoken::crypto::verify(self.signature_b64, message, key, self.alg) {
                    Ok(ok) => ok,
                    Err(e) if matches!(e.kind(), ErrorKind::Base64(_)) => {
                        return Err(JwsError::SignatureNotBase64)
                    }
                    // A key that does not fit the algorithm: it verifies nothing.
                    Err(_) => false,
                }
            }
            VerifyingKey::Rs256(key) => {
                self.alg == Algorithm::RS256 && key.verify(message, &self.signature()?)
            }
        };
        if ok {
            Ok(Verified { jws: self })
        } else {
            Err(JwsError::BadSignature)
        }
    }

    /// Whether the registered header members `cty`, `x5t`, `x5t#S256`, `enc`, `zip`, `url` and
    /// `nonce` are strings and `x5c` an array of strings (or null), as RFC 7515 types them.
    /// ID tokens have always been refused otherwise (jsonwebtoken's typed header parse did it).
    pub fn registered_header_types_ok(&self) -> bool {
        let strings = ["cty", "x5t", "x5t#S256", "enc", "zip", "url", "nonce"];
        strings.iter().all(|m| {
            matches!(
                self.header.get(*m),
                None | Some(Value::Null | Value::String(_))
            )
        }) && match self.header.get("x5c") {
            None | Some(Value::Null) => true,
            Some(Value::Array(items)) => items.iter().all(Value::is_string),
            Some(_) => false,
        }
    }
}

/// A token whose signature checked out: the only way to its claims, so no policy can read
/// claims of a token it has not verified.
pub struct Verified<'j, 'a> {
    jws: &'j Jws<'a>,
}

impl Verified<'_, '_> {
    /// The payload as a strict JSON object (claims).
    pub fn payload_object(&self) -> Result<Map<String, Value>, JwsError> {
        Ok(parse_object(&self.jws.payload()?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn token(header: &str) -> String {
        format!("{}.{}.{}", b64(header.as_bytes()), b64(b"{}"), b64(b"sig"))
    }

    const LOGOUT: JwsRules<'static> = JwsRules {
        max_bytes: MAX_ID_TOKEN_BYTES,
        charset_first: true,
        algorithms: &[Algorithm::RS256],
        forbidden_headers: ID_TOKEN_FORBIDDEN_HEADERS,
        typ: TypRule::Exactly("logout+jwt"),
    };

    /// The rules a new token kind would use: exact `typ`, HS* an attack signal, order kept.
    #[test]
    fn rules_are_parameters_of_one_parser() {
        let code = |header: &str, rules: &JwsRules<'_>| {
            parse(&token(header), rules).map(|j| (j.alg, j.kid)).err()
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<JwsError>)> = vec![
            (r#"{"alg":"RS256","typ":"logout+jwt","kid":"k"}"#, None),
            (r#"{"alg":"RS256","typ":"JWT"}"#, Some(JwsError::BadType)),
            (r#"{"alg":"RS256"}"#, Some(JwsError::BadType)),
            (r#"{"alg":"HS256","typ":"logout+jwt"}"#, Some(JwsError::AlgSymmetric)),
            (r#"{"alg":"ES256","typ":"logout+jwt"}"#, Some(JwsError::AlgNotAllowed(Some(Algorithm::ES256)))),
            (r#"{"alg":"RS256","typ":"logout+jwt","jku":"x"}"#, Some(JwsError::ForbiddenHeader("jku"))),
            (r#"{"alg":"RS256","typ":"logout+jwt","kid":1}"#, Some(JwsError::KidNotString)),
        ];
        for (header, expected) in cases {
            assert_eq!(code(header, &LOGOUT), expected, "{header}");
        }
        // Bearer rules: HS256 accepted, other HS* merely not allowed, typ not looked at.
        let bearer = JwsRules {
            max_bytes: MAX_BEARER_TOKEN_BYTES,
            charset_first: false,
            algorithms: &[Algorithm::HS256, Algorithm::RS256],
            forbidden_headers: BEARER_FORBIDDEN_HEADERS,
            typ: TypRule::Any,
        };
        assert_eq!(code(r#"{"alg":"HS256","typ":"x"}"#, &bearer), None);
        assert_eq!(
            code(r#"{"alg":"HS512"}"#, &bearer),
            Some(JwsError::AlgNotAllowed(Some(Algorithm::HS512)))
        );
        // charset_first decides which defect of a doubly damaged token is reported.
        let damaged = format!("{} .x", token(r#"{"alg":"none"}"#));
        assert_eq!(
            parse(&damaged, &LOGOUT).err(),
            Some(JwsError::NotBase64UrlChars)
        );
        assert_eq!(
            parse(&damaged, &bearer).err(),
            Some(JwsError::NotThreeParts)
        );
    }

    #[test]
    fn registered_header_members_must_have_their_types() {
        let rules = JwsRules {
            typ: TypRule::Any,
            ..LOGOUT
        };
        for (header, ok) in [
            (
                r#"{"alg":"RS256","x5c":["MII"],"cty":"JWT","x5t":null}"#,
                true,
            ),
            (r#"{"alg":"RS256","x5c":"MII"}"#, false),
            (r#"{"alg":"RS256","x5c":[1]}"#, false),
            (r#"{"alg":"RS256","cty":5}"#, false),
            (r#"{"alg":"RS256","nonce":{}}"#, false),
        ] {
            let token = token(header);
            let jws = parse(&token, &rules).unwrap();
            assert_eq!(jws.registered_header_types_ok(), ok, "{header}");
        }
    }
}
