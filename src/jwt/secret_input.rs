//! JWT secrets that an org registers so that its apps' tokens can be checked
//! at the verify endpoint (see [`super::verify`]).
//!
//! Four kinds, chosen by the admin API's `"type"`:
//!
//! | type           | material                      | can sign (`primary`) |
//! |----------------|-------------------------------|----------------------|
//! | `hs256`        | shared secret, ≥ 32 bytes     | yes                  |
//! | `rs256`        | RSA private key (PKCS#1/#8)   | yes                  |
//! | `rs256_public` | RSA public key (SPKI/PKCS#1)  | no                   |
//! | `jwk_url`      | URL of a JWKS document        | no                   |
//!
//! [`parse_secret`] validates admin input once (names, hs256 secrets, audience and issuer
//! lists here; PEM keys in [`super::rsa_pem`]; URLs in [`super::jwks_url`]) and splits it into
//! what must be stored encrypted ([`ParsedSecret::private_material`]) and what may be stored
//! and shown in clear. The runtime form is [`super::ready_secret::ReadySecret`]. serde's
//! messages are rewritten so that they never echo a value from the input.
//!
//! Nothing here ever puts secret or key material into an error message, a log
//! line or a `Debug` output.

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;

use super::jwks_url::check_jwks_url;
use super::rsa_pem::{parse_private_key_pem, parse_public_key_pem, RsaPublicInfo};
use crate::crypto::Secret;

/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the
/// hash output size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Longest accepted HS256 secret, in bytes.
pub const MAX_HS256_SECRET_BYTES: usize = 4096;
/// Longest accepted secret name, in characters (`[A-Za-z0-9._-]`).
pub const MAX_NAME_CHARS: usize = 64;
/// Most entries in `audiences` and in `issuers`.
pub const MAX_LIST_ENTRIES: usize = 50;
/// Longest accepted audience or issuer, in characters.
pub const MAX_LIST_ENTRY_CHARS: usize = 512;

/// A JWT secret as given to the admin API (JSON, tagged by `"type"`).
///
/// `Debug` never shows `secret` or `private_key`.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretInput {
    Hs256 {
        #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
        name: String,
        #[schema(min_length = 32, max_length = 4096)]
        secret: String,
        #[serde(default)]
        audiences: Vec<String>,
        #[serde(default)]
        issuers: Vec<String>,
        #[serde(default)]
        primary: bool,
    },
    Rs256 {
        #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
        name: String,
        private_key: String,
        #[serde(default)]
        audiences: Vec<String>,
        #[serde(default)]
        issuers: Vec<String>,
        #[serde(default)]
        primary: bool,
    },
    /// `primary` is accepted by the parser only so that [`parse_secret`] can
    /// refuse `true` with a helpful message.
    Rs256Public {
        #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
        name: String,
        public_key: String,
        #[serde(default)]
        audiences: Vec<String>,
        #[serde(default)]
        issuers: Vec<String>,
        #[serde(default)]
        primary: bool,
    },
    /// `primary` is accepted by the parser only so that [`parse_secret`] can
    /// refuse `true` with a helpful message.
    JwkUrl {
        #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
        name: String,
        url: String,
        #[serde(default)]
        audiences: Vec<String>,
        #[serde(default)]
        issuers: Vec<String>,
        #[serde(default)]
        primary: bool,
    },
}

impl fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretInput::Hs256 {
                name,
                audiences,
                issuers,
                primary,
                ..
            } => f
                .debug_struct("Hs256")
                .field("name", name)
                .field("secret", &"***")
                .field("audiences", audiences)
                .field("issuers", issuers)
                .field("primary", primary)
                .finish(),
            SecretInput::Rs256 {
                name,
                audiences,
                issuers,
                primary,
                ..
            } => f
                .debug_struct("Rs256")
                .field("name", name)
                .field("private_key", &"***")
                .field("audiences", audiences)
                .field("issuers", issuers)
                .field("primary", primary)
                .finish(),
            SecretInput::Rs256Public {
                name,
                public_key,
                audiences,
                issuers,
                primary,
            } => f
                .debug_struct("Rs256Public")
                .field("name", name)
                .field("public_key", public_key)
                .field("audiences", audiences)
                .field("issuers", issuers)
                .field("primary", primary)
                .finish(),
            SecretInput::JwkUrl {
                name,
                url,
                audiences,
                issuers,
                primary,
            } => f
                .debug_struct("JwkUrl")
                .field("name", name)
                .field("url", url)
                .field("audiences", audiences)
                .field("issuers", issuers)
                .field("primary", primary)
                .finish(),
        }
    }
}

impl SecretInput {
    fn kind(&self) -> SecretKind {
        match self {
            SecretInput::Hs256 { .. } => SecretKind::Hs256,
            SecretInput::Rs256 { .. } => SecretKind::Rs256,
            SecretInput::Rs256Public { .. } => SecretKind::Rs256Public,
            SecretInput::JwkUrl { .. } => SecretKind::JwkUrl,
        }
    }

    fn primary(&self) -> bool {
        match self {
            SecretInput::Hs256 { primary, .. }
            | SecretInput::Rs256 { primary, .. }
            | SecretInput::Rs256Public { primary, .. }
            | SecretInput::JwkUrl { primary, .. } => *primary,
        }
    }

    /// Deserializes admin API JSON into a [`SecretInput`], turning serde's
    /// messages into ones an admin can act on. Unlike serde's own messages,
    /// these never echo a value from the input (which could be the secret).
    pub fn from_json(value: Value) -> Result<Self, SecretError> {
        let obj = value
            .as_object()
            .ok_or_else(|| SecretError::new("the JWT secret must be a JSON object"))?;
        match obj.get("type") {
            None => return Err(SecretError::new(TYPE_HELP)),
            Some(Value::String(t)) if SecretKind::from_str(t).is_ok() => {}
            Some(_) => return Err(SecretError::new(TYPE_HELP)),
        }
        serde_json::from_value(value).map_err(|e| SecretError(describe_serde_error(&e)))
    }
}

const TYPE_HELP: &str =
    "\"type\" must be one of \"hs256\", \"rs256\", \"rs256_public\" or \"jwk_url\"";

/// A serde error in words, without any value from the input: serde quotes
/// offending values ("invalid type: string \"...\""), so only field names
/// (which are checked against a fixed list) and the expectation are kept.
fn describe_serde_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // serde_json appends " at line L column C" for parse errors only; values
    // built by `from_value` have none, but strip it defensively.
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg.as_str(),
    };
    const KNOWN: [&str; 9] = [
        "name",
        "secret",
        "private_key",
        "public_key",
        "url",
        "audiences",
        "issuers",
        "primary",
        "type",
    ];
    let backticked = |prefix: &str| -> Option<&str> {
        let rest = msg.strip_prefix(prefix)?;
        let end = rest.find('`')?;
        Some(&rest[..end])
    };
    if let Some(field) = backticked("missing field `") {
        if KNOWN.contains(&field) {
            return format!("\"{field}\" is required for this type");
        }
    }
    if let Some(field) = backticked("unknown field `") {
        let allowed = msg
            .find("expected ")
            .map(|i| msg[i..].replace('`', "\""))
            .unwrap_or_default();
        // Echo the name only when it cannot be a secret: hs256 secrets are at
        // least 32 bytes, so a short identifier is safe to show.
        let shown = KNOWN.contains(&field)
            || (field.len() < MIN_HS256_SECRET_BYTES
                && !field.is_empty()
                && field
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        let field = if shown {
            format!("\"{field}\"")
        } else {
            "a field".to_owned()
        };
        return if allowed.is_empty() {
            format!("{field} is not allowed for this type")
        } else {
            format!("{field} is not allowed for this type ({allowed})")
        };
    }
    if let Some(i) = msg.find(", expected ") {
        if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
            return format!(
                "a field has the wrong type: {}",
                msg[i + 2..].replace('`', "\"")
            );
        }
    }
    "the JWT secret is not valid JSON for its type (check field names and types)".to_owned()
}

/// The four kinds of JWT secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretKind {
    Hs256,
    Rs256,
    Rs256Public,
    JwkUrl,
}

impl SecretKind {
    pub const ALL: [SecretKind; 4] = [
        SecretKind::Hs256,
        SecretKind::Rs256,
        SecretKind::Rs256Public,
        SecretKind::JwkUrl,
    ];

    /// The admin API / storage name: `hs256`, `rs256`, `rs256_public`, `jwk_url`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Hs256 => "hs256",
            SecretKind::Rs256 => "rs256",
            SecretKind::Rs256Public => "rs256_public",
            SecretKind::JwkUrl => "jwk_url",
        }
    }

    /// The one algorithm tokens are verified with for this kind. Pinned by
    /// the kind, never taken from a token.
    pub fn algorithm(self) -> Algorithm {
        match self {
            SecretKind::Hs256 => Algorithm::HS256,
            SecretKind::Rs256 | SecretKind::Rs256Public | SecretKind::JwkUrl => Algorithm::RS256,
        }
    }

    /// Whether orgsso holds the material to sign with it (may be `primary`).
    pub fn can_sign(self) -> bool {
        matches!(self, SecretKind::Hs256 | SecretKind::Rs256)
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretKind {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| SecretError::new(TYPE_HELP))
    }
}

/// Why a JWT secret was refused: a message for a human that says what to do.
/// Never contains secret or key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(pub String);

impl SecretError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        SecretError(msg.into())
    }
}

/// A validated JWT secret, split into what is stored encrypted and in clear.
#[derive(Clone, Debug)]
pub struct ParsedSecret {
    pub name: String,
    pub kind: SecretKind,
    /// Deduplicated, in input order.
    pub audiences: Vec<String>,
    /// Deduplicated, in input order.
    pub issuers: Vec<String>,
    pub primary: bool,
    /// What must be stored encrypted: the hs256 secret exactly as given, or
    /// the rs256 private key re-encoded as PKCS#1 PEM (`-----BEGIN RSA
    /// PRIVATE KEY-----`, LF line endings; accepted by
    /// `jsonwebtoken::EncodingKey::from_rsa_pem`). `None` for public kinds.
    pub private_material: Option<Secret>,
    /// Public material to store in clear and show: rs256 → the derived SPKI
    /// PEM, rs256_public → the normalised SPKI PEM, jwk_url → the normalised
    /// URL; `None` for hs256.
    pub public: Option<String>,
    /// RS256 public JWK (`kty`, `n`, `e`, `alg`, `use`, `kid`) for rs256 and
    /// rs256_public.
    pub public_jwk: Option<Value>,
    /// RFC 7638 SHA-256 thumbprint of the public key (base64url), for rs256
    /// and rs256_public; also the `kid` of `public_jwk`.
    pub kid: Option<String>,
}

/// Validates admin input and derives everything stored for a JWT secret.
pub fn parse_secret(input: SecretInput) -> Result<ParsedSecret, SecretError> {
    let kind = input.kind();
    if input.primary() && !kind.can_sign() {
        return Err(SecretError(format!(
            "a secret of type \"{kind}\" cannot be primary: orgsso has no private key to sign with. \
             Only \"hs256\" and \"rs256\" secrets can be primary; remove \"primary\" or set it to false"
        )));
    }
    match input {
        SecretInput::Hs256 {
            name,
            secret,
            audiences,
            issuers,
            primary,
        } => {
            let name = check_name(name)?;
            check_hs256_secret(&secret)?;
            let (audiences, issuers) = check_lists(audiences, issuers)?;
            Ok(ParsedSecret {
                name,
                kind: SecretKind::Hs256,
                audiences,
                issuers,
                primary,
                private_material: Some(Secret::new(secret)),
                public: None,
                public_jwk: None,
                kid: None,
            })
        }
        SecretInput::Rs256 {
            name,
            private_key,
            audiences,
            issuers,
            primary,
        } => {
            let name = check_name(name)?;
            let key = parse_private_key_pem(&private_key)?;
            let public = RsaPublicInfo::of(&key.public)?;
            let pkcs1 = key.pkcs1_pem()?;
            let (audiences, issuers) = check_lists(audiences, issuers)?;
            Ok(ParsedSecret {
                name,
                kind: SecretKind::Rs256,
                audiences,
                issuers,
                primary,
                private_material: Some(Secret::new(pkcs1.as_str())),
                public: Some(public.spki_pem),
                public_jwk: Some(public.jwk),
                kid: Some(public.kid),
            })
        }
        SecretInput::Rs256Public {
            name,
            public_key,
            audiences,
            issuers,
            primary: _,
        } => {
            let name = check_name(name)?;
            let key = parse_public_key_pem(&public_key)?;
            let public = RsaPublicInfo::of(&key)?;
            let (audiences, issuers) = check_lists(audiences, issuers)?;
            Ok(ParsedSecret {
                name,
                kind: SecretKind::Rs256Public,
                audiences,
                issuers,
                primary: false,
                private_material: None,
                public: Some(public.spki_pem),
                public_jwk: Some(public.jwk),
                kid: Some(public.kid),
            })
        }
        SecretInput::JwkUrl {
            name,
            url,
            audiences,
            issuers,
            primary: _,
        } => {
            let name = check_name(name)?;
            let url = check_jwks_url(&url)?;
            let (audiences, issuers) = check_lists(audiences, issuers)?;
            Ok(ParsedSecret {
                name,
                kind: SecretKind::JwkUrl,
                audiences,
                issuers,
                primary: false,
                private_material: None,
                public: Some(url.to_string()),
                public_jwk: None,
                kid: None,
            })
        }
    }
}

fn check_name(name: String) -> Result<String, SecretError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(SecretError(format!(
            "\"name\" must be 1 to {MAX_NAME_CHARS} characters, each a letter (A-Z, a-z), a digit, \".\", \"_\" or \"-\""
        )))
    }
}

fn check_hs256_secret(secret: &str) -> Result<(), SecretError> {
    let len = secret.len();
    if len < MIN_HS256_SECRET_BYTES {
        return Err(SecretError(format!(
            "the hs256 secret is {len} bytes long, but at least {MIN_HS256_SECRET_BYTES} bytes are required \
             (a shorter HMAC key can be guessed); generate one with `openssl rand -base64 48`"
        )));
    }
    if len > MAX_HS256_SECRET_BYTES {
        return Err(SecretError(format!(
            "the hs256 secret is {len} bytes long; at most {MAX_HS256_SECRET_BYTES} bytes are accepted"
        )));
    }
    if secret.trim() != secret {
        return Err(SecretError::new(
            "the hs256 secret starts or ends with whitespace (often a pasted line break); \
             remove it, the secret is used byte for byte",
        ));
    }
    Ok(())
}

fn check_lists(
    audiences: Vec<String>,
    issuers: Vec<String>,
) -> Result<(Vec<String>, Vec<String>), SecretError> {
    Ok((
        check_list("audiences", audiences)?,
        check_list("issuers", issuers)?,
    ))
}

fn check_list(field: &'static str, values: Vec<String>) -> Result<Vec<String>, SecretError> {
    let one = if field == "audiences" {
        "audience"
    } else {
        "issuer"
    };
    if values.len() > MAX_LIST_ENTRIES {
        return Err(SecretError(format!(
            "\"{field}\" has {} entries; at most {MAX_LIST_ENTRIES} are allowed",
            values.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let n = i + 1;
        if value.is_empty() {
            return Err(SecretError(format!(
                "{one} #{n} in \"{field}\" is empty; remove it (an empty list means any {one} is accepted)"
            )));
        }
        if value.chars().count() > MAX_LIST_ENTRY_CHARS {
            return Err(SecretError(format!(
                "{one} #{n} in \"{field}\" is longer than {MAX_LIST_ENTRY_CHARS} characters"
            )));
        }
        if value.trim() != value {
            return Err(SecretError(format!(
                "{one} #{n} in \"{field}\" starts or ends with whitespace; tokens are compared exactly, so remove it"
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(SecretError(format!(
                "{one} #{n} in \"{field}\" contains a control character"
            )));
        }
        if !out.contains(&value) {
            out.push(value);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use pkcs1::der::asn1::UintRef;
    use pkcs1::der::Encode as _;
    use serde_json::json;

    use super::*;
    use crate::jwt::rsa_pem::rsa_thumbprint;
    use crate::test_support::secret_keys::*;

    const GOOD_SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn input(v: Value) -> SecretInput {
        serde_json::from_value(v).expect("valid input JSON")
    }

    fn parse(v: Value) -> Result<ParsedSecret, SecretError> {
        parse_secret(SecretInput::from_json(v)?)
    }

    fn err(v: Value) -> String {
        match parse(v) {
            Ok(p) => panic!("expected an error, got {p:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn hs256_is_parsed() {
        let p = parse(json!({
            "type": "hs256", "name": "app-1.main_key", "secret": GOOD_SECRET,
            "audiences": ["a", "b", "a"], "issuers": ["https://issuer"], "primary": true
        }))
        .unwrap();
        assert_eq!(p.kind, SecretKind::Hs256);
        assert_eq!(p.name, "app-1.main_key");
        assert_eq!(p.audiences, vec!["a", "b"], "deduplicated, in order");
        assert_eq!(p.issuers, vec!["https://issuer"]);
        assert!(p.primary);
        assert_eq!(p.private_material.as_ref().unwrap().expose(), GOOD_SECRET);
        assert!(p.public.is_none() && p.public_jwk.is_none() && p.kid.is_none());
        assert!(!format!("{p:?}").contains(GOOD_SECRET));
    }

    #[test]
    fn rs256_pkcs1_and_pkcs8_derive_the_same_public_key() {
        let a = parse(json!({"type": "rs256", "name": "a", "private_key": RSA_A_PKCS1})).unwrap();
        let b = parse(json!({"type": "rs256", "name": "b", "private_key": RSA_A_PKCS8})).unwrap();
        assert_eq!(a.kind, SecretKind::Rs256);
        assert!(!a.primary);
        assert_eq!(a.public, b.public);
        assert_eq!(a.kid, b.kid);
        assert_eq!(a.public_jwk, b.public_jwk);
        // The derived SPKI is what openssl derived.
        assert_eq!(a.public.as_deref().unwrap().trim(), RSA_A_SPKI.trim());
        let private = a.private_material.as_ref().unwrap().expose();
        assert!(private.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert_eq!(private.trim(), RSA_A_PKCS1.trim());
        assert_eq!(
            b.private_material.as_ref().unwrap().expose(),
            private,
            "normalised to PKCS#1"
        );
        let other =
            parse(json!({"type": "rs256", "name": "other", "private_key": RSA_B_PKCS8})).unwrap();
        assert_eq!(other.public.as_deref().unwrap().trim(), RSA_B_SPKI.trim());
        assert_ne!(other.kid, a.kid);
        // The stored private material signs tokens with jsonwebtoken.
        assert!(jsonwebtoken::EncodingKey::from_rsa_pem(private.as_bytes()).is_ok());
        let debug = format!("{a:?}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
    }

    #[test]
    fn rs256_public_spki_and_pkcs1_normalise_to_the_same_spki() {
        let a =
            parse(json!({"type": "rs256_public", "name": "a", "public_key": RSA_A_SPKI})).unwrap();
        let b =
            parse(json!({"type": "rs256_public", "name": "b", "public_key": RSA_A_PKCS1_PUBLIC}))
                .unwrap();
        let from_private =
            parse(json!({"type": "rs256", "name": "c", "private_key": RSA_A_PKCS1})).unwrap();
        assert_eq!(a.kind, SecretKind::Rs256Public);
        assert!(a.private_material.is_none());
        assert_eq!(a.public.as_deref().unwrap().trim(), RSA_A_SPKI.trim());
        assert_eq!(a.public, b.public);
        assert_eq!(a.kid, from_private.kid);
        assert_eq!(a.public_jwk, from_private.public_jwk);
        // CRLF line endings and surrounding text are tolerated.
        let crlf = format!("Bag Attributes\r\n{}", RSA_A_SPKI.replace('\n', "\r\n"));
        let c = parse(json!({"type": "rs256_public", "name": "c", "public_key": crlf})).unwrap();
        assert_eq!(c.public, a.public);
    }

    #[test]
    fn public_jwk_and_kid_follow_rfc_7638() {
        let p =
            parse(json!({"type": "rs256_public", "name": "a", "public_key": RSA_A_SPKI})).unwrap();
        let jwk = p.public_jwk.clone().unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["kid"].as_str(), p.kid.as_deref());
        // Cross-check with jsonwebtoken's own thumbprint implementation.
        let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
        assert_eq!(
            parsed
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap(),
            p.kid.unwrap()
        );
        // The example of RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rsa_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn big_keys_up_to_8192_bits_are_accepted() {
        let p =
            parse(json!({"type": "rs256", "name": "big", "private_key": RSA_8192_PKCS8})).unwrap();
        let spki = p.public.clone().unwrap();
        let q = parse(json!({"type": "rs256_public", "name": "big", "public_key": spki})).unwrap();
        assert_eq!(p.kid, q.kid);
    }

    #[test]
    fn jwk_url_is_parsed() {
        for (url, normalised) in [
            (
                "https://idp.example.com/.well-known/jwks.json",
                "https://idp.example.com/.well-known/jwks.json",
            ),
            (
                "https://IDP.example.com:8443/k?x=1",
                "https://idp.example.com:8443/k?x=1",
            ),
            ("http://127.0.0.1:8080/jwks", "http://127.0.0.1:8080/jwks"),
            ("http://127.8.9.10/jwks", "http://127.8.9.10/jwks"),
            ("http://[::1]:9000/jwks", "http://[::1]:9000/jwks"),
            ("http://localhost/jwks", "http://localhost/jwks"),
        ] {
            let p = parse(json!({"type": "jwk_url", "name": "idp", "url": url})).unwrap();
            assert_eq!(p.kind, SecretKind::JwkUrl);
            assert_eq!(p.public.as_deref(), Some(normalised));
            assert!(p.private_material.is_none() && p.kid.is_none() && p.public_jwk.is_none());
        }
    }

    /// Every refusal, with a fragment of the message it must carry.
    #[test]
    fn validation_messages() {
        let long_name = "n".repeat(65);
        let many: Vec<String> = (0..51).map(|i| format!("a{i}")).collect();
        let long_entry = "x".repeat(513);
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, &str)> = vec![
            // input shape
            ("not an object", json!([1]), "must be a JSON object"),
            ("no type", json!({"name": "a"}), "\"type\" must be one of"),
            ("unknown type", json!({"type": "es256", "name": "a"}), "\"type\" must be one of"),
            ("type not a string", json!({"type": 1, "name": "a"}), "\"type\" must be one of"),
            ("missing secret", json!({"type": "hs256", "name": "a"}), "\"secret\" is required"),
            ("missing name", json!({"type": "hs256", "secret": GOOD_SECRET}), "\"name\" is required"),
            ("missing private_key", json!({"type": "rs256", "name": "a"}), "\"private_key\" is required"),
            ("missing public_key", json!({"type": "rs256_public", "name": "a"}), "\"public_key\" is required"),
            ("missing url", json!({"type": "jwk_url", "name": "a"}), "\"url\" is required"),
            ("unknown field", json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "kid": "x"}), "\"kid\" is not allowed"),
            ("long unknown field", json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "0123456789abcdef0123456789abcdefXY": 1}), "a field is not allowed"),
            ("field of another type", json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "url": "https://x"}), "\"url\" is not allowed"),
            ("wrong type", json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "audiences": "x"}), "wrong type"),
            ("primary not bool", json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "primary": "yes"}), "wrong type"),
            // name
            ("empty name", json!({"type": "hs256", "name": "", "secret": GOOD_SECRET}), "\"name\" must be 1 to 64 characters"),
            ("long name", json!({"type": "hs256", "name": long_name, "secret": GOOD_SECRET}), "\"name\" must be 1 to 64"),
            ("name with space", json!({"type": "hs256", "name": "a b", "secret": GOOD_SECRET}), "\"name\" must be"),
            ("name with slash", json!({"type": "hs256", "name": "a/b", "secret": GOOD_SECRET}), "\"name\" must be"),
            ("non-ascii name", json!({"type": "hs256", "name": "né", "secret": GOOD_SECRET}), "\"name\" must be"),
            // hs256
            (
                "short secret",
                json!({"type": "hs256", "name": "a", "secret": "0123456789abcdef0123456789abcde"}),
                "is 31 bytes long, but at least 32 bytes are required",
            ),
            ("empty secret", json!({"type": "hs256", "name": "a", "secret": ""}), "at least 32 bytes"),
            ("huge secret", json!({"type": "hs256", "name": "a", "secret": "s".repeat(4097)}), "at most 4096 bytes"),
            ("secret with newline", json!({"type": "hs256", "name": "a", "secret": format!("{GOOD_SECRET}\n")}), "whitespace"),
            // lists
            (
                "empty audience",
                json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "audiences": ["x", ""]}),
                "audience #2 in \"audiences\" is empty",
            ),
            ("empty issuer", json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "issuers": [""]}), "issuer #1 in \"issuers\" is empty"),
            ("long audience", json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "audiences": [long_entry]}), "longer than 512 characters"),
            (
                "too many audiences",
                json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "audiences": many}),
                "\"audiences\" has 51 entries; at most 50",
            ),
            (
                "too many issuers",
                json!({"type": "rs256_public", "name": "a", "public_key": RSA_A_SPKI, "issuers": many}),
                "\"issuers\" has 51 entries",
            ),
            ("padded issuer", json!({"type": "jwk_url", "name": "a", "url": "https://x.example", "issuers": [" https://x"]}), "whitespace"),
            ("control char", json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "audiences": ["a\tb"]}), "control character"),
            // primary
            (
                "primary rs256_public",
                json!({"type": "rs256_public", "name": "a", "public_key": RSA_A_SPKI, "primary": true}),
                "a secret of type \"rs256_public\" cannot be primary",
            ),
            (
                "primary jwk_url",
                json!({"type": "jwk_url", "name": "a", "url": "https://x.example", "primary": true}),
                "a secret of type \"jwk_url\" cannot be primary",
            ),
            // rs256 private key
            ("public key as rs256", json!({"type": "rs256", "name": "a", "private_key": RSA_A_SPKI}), "register it with type \"rs256_public\""),
            ("pkcs1 public as rs256", json!({"type": "rs256", "name": "a", "private_key": RSA_A_PKCS1_PUBLIC}), "type \"rs256_public\""),
            ("encrypted", json!({"type": "rs256", "name": "a", "private_key": RSA_A_ENCRYPTED}), "protected by a passphrase"),
            (
                "legacy encrypted",
                json!({"type": "rs256", "name": "a", "private_key": "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"}),
                "protected by a passphrase",
            ),
            ("certificate as rs256", json!({"type": "rs256", "name": "a", "private_key": RSA_A_CERT}), "this is a certificate"),
            ("ec key", json!({"type": "rs256", "name": "a", "private_key": EC256_PKCS8}), "this is an EC key; only RSA keys"),
            ("small key", json!({"type": "rs256", "name": "a", "private_key": RSA_1024_PKCS8}), "the RSA key has 1024 bits; at least 2048"),
            ("not pem", json!({"type": "rs256", "name": "a", "private_key": "hello"}), "must be a PEM block"),
            ("jwk json", json!({"type": "rs256", "name": "a", "private_key": "{\"kty\":\"RSA\"}"}), "looks like JSON"),
            ("two blocks", json!({"type": "rs256", "name": "a", "private_key": format!("{RSA_A_PKCS1}{RSA_A_CERT}")}), "contains 2 PEM blocks"),
            (
                "truncated",
                json!({"type": "rs256", "name": "a", "private_key": &RSA_A_PKCS8[..200]}),
                "is not closed by \"-----END PRIVATE KEY-----\"",
            ),
            (
                "bad base64",
                json!({"type": "rs256", "name": "a", "private_key": "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"}),
                "not valid base64",
            ),
            (
                "empty block",
                json!({"type": "rs256", "name": "a", "private_key": "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"}),
                "the PEM block is empty",
            ),
            (
                "garbage der",
                json!({"type": "rs256", "name": "a", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
                "could not be read as a PKCS#8 RSA private key",
            ),
            (
                "garbage pkcs1",
                json!({"type": "rs256", "name": "a", "private_key": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"}),
                "could not be read as a PKCS#1 RSA private key",
            ),
            (
                "openssh",
                json!({"type": "rs256", "name": "a", "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"}),
                "OpenSSH private key",
            ),
            (
                "other label",
                json!({"type": "rs256", "name": "a", "private_key": "-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n"}),
                "unsupported PEM block \"DSA PRIVATE KEY\"",
            ),
            (
                "bad label",
                json!({"type": "rs256", "name": "a", "private_key": "-----BEGIN \"x\"-----\nAAAA\n-----END \"x\"-----\n"}),
                "malformed \"-----BEGIN",
            ),
            ("huge pem", json!({"type": "rs256", "name": "a", "private_key": "A".repeat(70_000)}), "larger than 64 KiB"),
            // rs256_public
            (
                "private as rs256_public",
                json!({"type": "rs256_public", "name": "a", "public_key": RSA_A_PKCS8}),
                "this is a private key: use type \"rs256\"",
            ),
            ("pkcs1 private as rs256_public", json!({"type": "rs256_public", "name": "a", "public_key": RSA_A_PKCS1}), "use type \"rs256\""),
            ("cert as rs256_public", json!({"type": "rs256_public", "name": "a", "public_key": RSA_A_CERT}), "extract its public key"),
            ("ec public", json!({"type": "rs256_public", "name": "a", "public_key": EC256_SPKI}), "this is an EC key"),
            ("small public", json!({"type": "rs256_public", "name": "a", "public_key": RSA_1024_SPKI}), "the RSA key has 1024 bits"),
            (
                "oversized public",
                json!({"type": "rs256_public", "name": "a", "public_key": synthetic_public_pem(8200)}),
                "the RSA key has 8200 bits; at most 8192",
            ),
            (
                "even modulus",
                json!({"type": "rs256_public", "name": "a", "public_key": synthetic_public_pem_with(2048, true)}),
                "modulus or public exponent is out of range",
            ),
            (
                "garbage spki",
                json!({"type": "rs256_public", "name": "a", "public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}),
                "could not be read as a SubjectPublicKeyInfo",
            ),
            ("ssh key", json!({"type": "rs256_public", "name": "a", "public_key": "ssh-rsa AAAAB3Nza user@host"}), "OpenSSH public key"),
            // jwk_url
            (
                "http remote",
                json!({"type": "jwk_url", "name": "a", "url": "http://idp.example.com/jwks"}),
                "plain http:// is allowed only for 127.0.0.1",
            ),
            ("http private ip", json!({"type": "jwk_url", "name": "a", "url": "http://10.0.0.1/jwks"}), "plain http://"),
            ("http localhost lookalike", json!({"type": "jwk_url", "name": "a", "url": "http://localhost.example.com/jwks"}), "plain http://"),
            ("ftp", json!({"type": "jwk_url", "name": "a", "url": "ftp://x.example/jwks"}), "must be https://"),
            ("relative", json!({"type": "jwk_url", "name": "a", "url": "/jwks"}), "not a valid absolute URL"),
            ("credentials", json!({"type": "jwk_url", "name": "a", "url": "https://user:pw@x.example/jwks"}), "user name or password"),
            ("fragment", json!({"type": "jwk_url", "name": "a", "url": "https://x.example/jwks#k"}), "#fragment"),
            ("empty url", json!({"type": "jwk_url", "name": "a", "url": ""}), "is empty"),
            ("long url", json!({"type": "jwk_url", "name": "a", "url": format!("https://x.example/{}", "a".repeat(2048))}), "longer than 2048 bytes"),
            ("no host", json!({"type": "jwk_url", "name": "a", "url": "file:///etc/jwks.json"}), "has no host"),
            ("data url", json!({"type": "jwk_url", "name": "a", "url": "data:application/json,{}"}), "must be https://"),
        ];
        for (what, value, expected) in cases {
            let message = err(value);
            assert!(
                message.contains(expected),
                "{what}: {message:?} does not contain {expected:?}"
            );
            for marker in ["MII", "AAAA", GOOD_SECRET, "0123456789abcdef"] {
                assert!(
                    !message.contains(marker),
                    "{what}: message leaks input: {message}"
                );
            }
        }
    }

    /// An RSA "public key" PEM with an odd `bits`-bit modulus (not a real key
    /// pair: parsing only looks at the numbers).
    fn synthetic_public_pem(bits: usize) -> String {
        synthetic_public_pem_with(bits, false)
    }

    fn synthetic_public_pem_with(bits: usize, even: bool) -> String {
        // n = 2^(bits-1) + 12345 (odd), or + 12346 (even).
        let mut n = vec![0u8; bits.div_ceil(8)];
        n[0] = 1 << ((bits - 1) % 8);
        let low: u16 = if even { 12346 } else { 12345 };
        let len = n.len();
        n[len - 2..].copy_from_slice(&low.to_be_bytes());
        let der = pkcs1::RsaPublicKey {
            modulus: UintRef::new(&n).unwrap(),
            public_exponent: UintRef::new(&[1, 0, 1]).unwrap(),
        }
        .to_der()
        .unwrap();
        pkcs1::der::pem::encode_string("RSA PUBLIC KEY", pkcs8::LineEnding::LF, &der).unwrap()
    }

    #[test]
    fn damaged_keys_are_refused_without_panicking() {
        for (kind, field, pem) in [
            ("rs256", "private_key", RSA_A_PKCS8),
            ("rs256", "private_key", RSA_A_PKCS1),
            ("rs256_public", "public_key", RSA_A_SPKI),
            ("rs256_public", "public_key", RSA_A_PKCS1_PUBLIC),
        ] {
            let body_start = pem.find('\n').unwrap() + 1;
            let body_end = pem.rfind("-----END").unwrap();
            let mut inputs: Vec<String> = (0..pem.len())
                .step_by(37)
                .map(|i| pem[..i].to_owned())
                .collect();
            for i in (body_start..body_end).step_by(11) {
                if pem.as_bytes()[i] == b'\n' {
                    continue;
                }
                let replacement = if pem.as_bytes()[i] == b'A' { "/" } else { "A" };
                let mut damaged = pem.to_owned();
                damaged.replace_range(i..=i, replacement);
                inputs.push(damaged);
            }
            for input in inputs {
                let v = json!({"type": kind, "name": "a", field: input});
                if let Err(e) = parse(v) {
                    assert!(!e.0.contains("MII"), "{e}");
                }
            }
        }
    }

    #[test]
    fn serde_messages_never_echo_values() {
        let secret = "hunter2-hunter2-hunter2-hunter2-hunter2";
        for v in [
            json!({"type": "hs256", "name": "a", "secret": 12345678987654321u64}),
            json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "primary": secret}),
            json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "audiences": secret}),
            json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET, "issuers": [secret, 1]}),
            json!({"type": "hs256", "name": "a", "secret": [secret]}),
            json!({"type": "rs256", "name": "a", "private_key": {"pem": secret}}),
        ] {
            let message = SecretInput::from_json(v).unwrap_err().0;
            assert!(!message.contains("hunter2"), "{message}");
            assert!(!message.contains("12345678987654321"), "{message}");
        }
    }

    #[test]
    fn input_debug_is_redacted() {
        let hs = input(json!({"type": "hs256", "name": "a", "secret": GOOD_SECRET}));
        let rs = input(json!({"type": "rs256", "name": "a", "private_key": RSA_A_PKCS1}));
        assert!(!format!("{hs:?}").contains(GOOD_SECRET));
        assert!(!format!("{rs:?}").contains("MII"));
        assert!(format!("{rs:?}").contains("***"));
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in SecretKind::ALL {
            assert_eq!(kind.as_str().parse::<SecretKind>().unwrap(), kind);
        }
        assert!("HS256".parse::<SecretKind>().is_err());
        assert!(SecretKind::Hs256.can_sign() && SecretKind::Rs256.can_sign());
        assert!(!SecretKind::Rs256Public.can_sign() && !SecretKind::JwkUrl.can_sign());
    }
}
