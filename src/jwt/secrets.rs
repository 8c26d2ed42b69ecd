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
//! [`parse_secret`] validates admin input once and splits it into what must
//! be stored encrypted ([`ParsedSecret::private_material`]) and what may be
//! stored and shown in clear. [`ReadySecret`] is the runtime form, built once
//! from stored rows, so no key is parsed per request.
//!
//! Nothing here ever puts secret or key material into an error message, a log
//! line or a `Debug` output.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use rsa::pkcs1::der::{Decode as _, Tagged as _};
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding, ObjectIdentifier};
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use url::{Host, Url};

use crate::crypto::Secret;
use crate::oidc::jwks::JwksCache;

/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the
/// hash output size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Longest accepted HS256 secret, in bytes.
pub const MAX_HS256_SECRET_BYTES: usize = 4096;
/// Smallest accepted RSA modulus, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits.
pub const MAX_RSA_BITS: usize = 8192;
/// Longest accepted secret name, in characters (`[A-Za-z0-9._-]`).
pub const MAX_NAME_CHARS: usize = 64;
/// Most entries in `audiences` and in `issuers`.
pub const MAX_LIST_ENTRIES: usize = 50;
/// Longest accepted audience or issuer, in characters.
pub const MAX_LIST_ENTRY_CHARS: usize = 512;
/// Largest accepted PEM text (an 8192-bit PKCS#8 key is about 6.4 KiB).
pub const MAX_PEM_BYTES: usize = 64 * 1024;
/// Longest accepted JWKS URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// rsaEncryption (PKCS#1), the only key algorithm accepted.
const RSA_ENCRYPTION_OID: ObjectIdentifier = rsa::pkcs1::ALGORITHM_OID;
/// RSASSA-PSS-restricted RSA keys.
const RSA_PSS_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
/// id-ecPublicKey.
const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// Ed25519 / Ed448.
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ED448_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");

/// A JWT secret as given to the admin API (JSON, tagged by `"type"`).
///
/// `Debug` never shows `secret` or `private_key`.
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretInput {
    Hs256 {
        name: String,
        secret: String,
        #[serde(default)]
        audiences: Vec<String>,
        #[serde(default)]
        issuers: Vec<String>,
        #[serde(default)]
        primary: bool,
    },
    Rs256 {
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
    fn new(msg: impl Into<String>) -> Self {
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
            let public = RsaPublicInfo::of(&key.to_public_key())?;
            let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).map_err(|_| {
                SecretError::new("the RSA private key could not be re-encoded; check that it is a valid two-prime RSA key")
            })?;
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

fn check_jwks_url(input: &str) -> Result<Url, SecretError> {
    const HELP: &str = "the JWKS URL must be https://… (plain http:// is allowed only for 127.0.0.1, [::1] or localhost)";
    if input.len() > MAX_URL_BYTES {
        return Err(SecretError(format!(
            "the JWKS URL is longer than {MAX_URL_BYTES} bytes"
        )));
    }
    if input.trim() != input || input.is_empty() {
        return Err(SecretError::new(
            "the JWKS URL is empty or starts or ends with whitespace",
        ));
    }
    let url = Url::parse(input)
        .map_err(|e| SecretError(format!("the JWKS URL is not a valid absolute URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SecretError::new(
            "the JWKS URL must not contain a user name or password (it is stored and shown in clear)",
        ));
    }
    if url.fragment().is_some() {
        return Err(SecretError::new(
            "the JWKS URL must not contain a #fragment",
        ));
    }
    let host = url
        .host()
        .ok_or_else(|| SecretError(format!("the JWKS URL has no host; {HELP}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" => {
            let loopback = match host {
                Host::Ipv4(ip) => ip.is_loopback(),
                Host::Ipv6(ip) => ip.is_loopback(),
                Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            };
            if loopback {
                Ok(url)
            } else {
                Err(SecretError(format!(
                    "{HELP}: a key set fetched over plain http could be replaced on the way"
                )))
            }
        }
        _ => Err(SecretError::new(HELP)),
    }
}

/// One PEM block: its label and DER body.
struct Pem {
    label: String,
    der: Vec<u8>,
}

/// Extracts the single PEM block of `text`. `field` names the input field in
/// messages. Text before and after the block (e.g. OpenSSL's "Bag
/// Attributes") is ignored; several blocks are refused.
fn parse_pem(text: &str, field: &str) -> Result<Pem, SecretError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    if text.len() > MAX_PEM_BYTES {
        return Err(SecretError(format!(
            "\"{field}\" is larger than {} KiB; an RSA key of up to {MAX_RSA_BITS} bits is about 7 KiB of PEM, so paste a single key",
            MAX_PEM_BYTES / 1024
        )));
    }
    let trimmed = text.trim_start();
    let Some(start) = text.find(BEGIN) else {
        let hint = if trimmed.starts_with('{') {
            " (this looks like JSON: a JWK is not accepted here; convert it to PEM, or publish it and use type \"jwk_url\")"
        } else if trimmed.starts_with("ssh-rsa") {
            " (this is an OpenSSH public key: convert it with `ssh-keygen -e -m PKCS8 -f KEYFILE`)"
        } else {
            ""
        };
        return Err(SecretError(format!(
            "\"{field}\" must be a PEM block starting with \"-----BEGIN …-----\"{hint}"
        )));
    };
    let blocks = text.matches(BEGIN).count();
    if blocks > 1 {
        return Err(SecretError(format!(
            "\"{field}\" contains {blocks} PEM blocks; paste exactly one key"
        )));
    }
    let after_begin = &text[start + BEGIN.len()..];
    let label_end = after_begin.find(DASHES).ok_or_else(|| {
        SecretError(format!(
            "\"{field}\" has a malformed \"-----BEGIN …-----\" line"
        ))
    })?;
    let label = &after_begin[..label_end];
    if label.is_empty()
        || label.len() > 40
        || !label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b' ' || b.is_ascii_digit())
    {
        return Err(SecretError(format!(
            "\"{field}\" has a malformed \"-----BEGIN …-----\" line"
        )));
    }
    let body_and_rest = &after_begin[label_end + DASHES.len()..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_and_rest.find(&end_marker).ok_or_else(|| {
        SecretError(format!(
            "\"{field}\": the PEM block is not closed by \"{end_marker}\" (was it cut short?)"
        ))
    })?;
    let body = &body_and_rest[..body_end];
    if body.contains(':') {
        if body.contains("ENCRYPTED") {
            return Err(encrypted_key_error());
        }
        return Err(SecretError(format!(
            "\"{field}\": the PEM block has header lines, which are not supported"
        )));
    }
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(b64.as_bytes()).map_err(|_| {
        SecretError(format!(
            "\"{field}\": the PEM body is not valid base64 (was the key edited or cut short?)"
        ))
    })?;
    if der.is_empty() {
        return Err(SecretError(format!("\"{field}\": the PEM block is empty")));
    }
    Ok(Pem {
        label: label.to_owned(),
        der,
    })
}

fn encrypted_key_error() -> SecretError {
    SecretError::new(
        "the private key is protected by a passphrase; remove it first \
         (`openssl pkey -in encrypted.pem -out key.pem`) and paste the unencrypted key",
    )
}

fn not_rsa_error(what: &str) -> SecretError {
    SecretError(format!(
        "{what}; only RSA keys ({MIN_RSA_BITS} to {MAX_RSA_BITS} bits) are supported \
         (generate one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072`)"
    ))
}

fn algorithm_error(oid: ObjectIdentifier) -> SecretError {
    if oid == EC_PUBLIC_KEY_OID {
        not_rsa_error("this is an EC key")
    } else if oid == ED25519_OID || oid == ED448_OID {
        not_rsa_error("this is an EdDSA key")
    } else if oid == RSA_PSS_OID {
        not_rsa_error("this is an RSA-PSS-restricted key, which cannot sign RS256 tokens")
    } else {
        not_rsa_error("this is not an RSA key")
    }
}

fn check_bits(modulus_be: &[u8]) -> Result<(), SecretError> {
    let bits = BigUint::from_bytes_be(modulus_be).bits();
    if bits < MIN_RSA_BITS {
        return Err(SecretError(format!(
            "the RSA key has {bits} bits; at least {MIN_RSA_BITS} bits are required \
             (generate one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072`)"
        )));
    }
    if bits > MAX_RSA_BITS {
        return Err(SecretError(format!(
            "the RSA key has {bits} bits; at most {MAX_RSA_BITS} bits are supported"
        )));
    }
    Ok(())
}

fn invalid_private_key(format: &str) -> SecretError {
    SecretError(format!(
        "the private key could not be read as a {format} RSA private key (is it complete and unmodified?)"
    ))
}

/// Parses an RSA private key (PKCS#1 or PKCS#8 PEM), checks its size and
/// consistency (n = p·q, d·e ≡ 1).
fn parse_private_key_pem(text: &str) -> Result<RsaPrivateKey, SecretError> {
    let pem = parse_pem(text, "private_key")?;
    match pem.label.as_str() {
        "RSA PRIVATE KEY" => {
            let structure = rsa::pkcs1::RsaPrivateKey::from_der(&pem.der)
                .map_err(|_| invalid_private_key("PKCS#1"))?;
            check_bits(structure.modulus.as_bytes())?;
            RsaPrivateKey::from_pkcs1_der(&pem.der).map_err(|_| invalid_private_key("PKCS#1"))
        }
        "PRIVATE KEY" => {
            let info = rsa::pkcs8::PrivateKeyInfo::from_der(&pem.der)
                .map_err(|_| invalid_private_key("PKCS#8"))?;
            if info.algorithm.oid != RSA_ENCRYPTION_OID {
                return Err(algorithm_error(info.algorithm.oid));
            }
            let structure = rsa::pkcs1::RsaPrivateKey::from_der(info.private_key)
                .map_err(|_| invalid_private_key("PKCS#8"))?;
            check_bits(structure.modulus.as_bytes())?;
            RsaPrivateKey::from_pkcs8_der(&pem.der).map_err(|_| invalid_private_key("PKCS#8"))
        }
        "ENCRYPTED PRIVATE KEY" => Err(encrypted_key_error()),
        "PUBLIC KEY" | "RSA PUBLIC KEY" => Err(SecretError::new(
            "this is a public key: register it with type \"rs256_public\" to verify tokens \
             (type \"rs256\" takes the private key, which orgsso can also sign with)",
        )),
        "CERTIFICATE" => Err(SecretError::new(
            "this is a certificate, not a private key: type \"rs256\" takes an RSA private key; \
             to only verify tokens, extract the certificate's public key \
             (`openssl x509 -in cert.pem -pubkey -noout`) and use type \"rs256_public\"",
        )),
        "EC PRIVATE KEY" => Err(not_rsa_error("this is an EC key")),
        "OPENSSH PRIVATE KEY" => Err(SecretError::new(
            "this is an OpenSSH private key: convert a copy to PEM first \
             (`ssh-keygen -p -m PKCS8 -f COPY_OF_KEYFILE`)",
        )),
        other => Err(SecretError(format!(
            "unsupported PEM block \"{other}\": expected \"-----BEGIN PRIVATE KEY-----\" (PKCS#8) \
             or \"-----BEGIN RSA PRIVATE KEY-----\" (PKCS#1)"
        ))),
    }
}

fn invalid_public_key(format: &str) -> SecretError {
    SecretError(format!(
        "the public key could not be read as a {format} RSA public key (is it complete and unmodified?)"
    ))
}

/// Parses an RSA public key (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
fn parse_public_key_pem(text: &str) -> Result<RsaPublicKey, SecretError> {
    let pem = parse_pem(text, "public_key")?;
    match pem.label.as_str() {
        "PUBLIC KEY" => {
            const FORMAT: &str = "SubjectPublicKeyInfo";
            let spki = rsa::pkcs8::spki::SubjectPublicKeyInfoRef::from_der(&pem.der)
                .map_err(|_| invalid_public_key(FORMAT))?;
            if spki.algorithm.oid != RSA_ENCRYPTION_OID {
                return Err(algorithm_error(spki.algorithm.oid));
            }
            // rsaEncryption parameters must be NULL or absent.
            if spki
                .algorithm
                .parameters
                .is_some_and(|p| p.tag() != rsa::pkcs1::der::Tag::Null)
            {
                return Err(invalid_public_key(FORMAT));
            }
            let pkcs1 = spki
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| invalid_public_key(FORMAT))?;
            rsa_public_from_pkcs1_der(pkcs1, FORMAT)
        }
        "RSA PUBLIC KEY" => rsa_public_from_pkcs1_der(&pem.der, "PKCS#1"),
        "PRIVATE KEY"
        | "RSA PRIVATE KEY"
        | "ENCRYPTED PRIVATE KEY"
        | "EC PRIVATE KEY"
        | "OPENSSH PRIVATE KEY" => Err(SecretError::new(
            "this is a private key: use type \"rs256\" to register a key pair \
             (orgsso derives the public key and can sign with it), or give only the public key \
             (`openssl pkey -in key.pem -pubout`) with type \"rs256_public\"",
        )),
        "CERTIFICATE" => Err(SecretError::new(
            "this is a certificate: extract its public key \
             (`openssl x509 -in cert.pem -pubkey -noout`) and paste that",
        )),
        other => Err(SecretError(format!(
            "unsupported PEM block \"{other}\": expected \"-----BEGIN PUBLIC KEY-----\" \
             or \"-----BEGIN RSA PUBLIC KEY-----\""
        ))),
    }
}

/// A PKCS#1 `RSAPublicKey` (DER) as a checked key of [`MIN_RSA_BITS`] to
/// [`MAX_RSA_BITS`] bits (the `rsa` crate's own parsers stop at 4096).
/// `format` names the container in messages.
fn rsa_public_from_pkcs1_der(der: &[u8], format: &str) -> Result<RsaPublicKey, SecretError> {
    let structure =
        rsa::pkcs1::RsaPublicKey::from_der(der).map_err(|_| invalid_public_key(format))?;
    check_bits(structure.modulus.as_bytes())?;
    RsaPublicKey::new_with_max_size(
        BigUint::from_bytes_be(structure.modulus.as_bytes()),
        BigUint::from_bytes_be(structure.public_exponent.as_bytes()),
        MAX_RSA_BITS,
    )
    .map_err(|_| {
        SecretError::new(
            "the RSA public key is invalid: its modulus or public exponent is out of range",
        )
    })
}

/// What is derived from an RSA public key for storage and display.
struct RsaPublicInfo {
    spki_pem: String,
    jwk: Value,
    kid: String,
}

impl RsaPublicInfo {
    fn of(key: &RsaPublicKey) -> Result<Self, SecretError> {
        check_bits(&key.n().to_bytes_be())?;
        let spki_pem = key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| SecretError::new("the RSA public key could not be encoded"))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = rsa_thumbprint(&n, &e);
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": n,
            "e": e,
        });
        Ok(RsaPublicInfo { spki_pem, jwk, kid })
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA key given its
/// base64url `n` and `e`: the hash of `{"e":…,"kty":"RSA","n":…}` with the
/// members in lexicographic order and no whitespace.
fn rsa_thumbprint(n_b64: &str, e_b64: &str) -> String {
    // base64url characters never need JSON escaping.
    let canonical = format!(r#"{{"e":"{e_b64}","kty":"RSA","n":"{n_b64}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The runtime form of a JWT secret, built once from a stored row.
pub struct ReadySecret {
    pub name: String,
    pub kind: SecretKind,
    /// Tokens whose header `kid` differs skip this secret (when `Some`).
    pub kid: Option<String>,
    pub audiences: Vec<String>,
    pub issuers: Vec<String>,
    key: ReadyKey,
}

/// The verification key of a [`ReadySecret`], already parsed.
pub(crate) enum ReadyKey {
    /// HS256 shared secret.
    Hmac(DecodingKey),
    /// RS256 public key (rs256 and rs256_public), up to [`MAX_RSA_BITS`].
    Rsa(RsaPublicKey),
    /// RS256 keys from a JWKS document (jwk_url).
    Jwks(Arc<JwksCache>),
    /// A stored secret that must never verify anything (e.g. an hs256
    /// secret shorter than [`MIN_HS256_SECRET_BYTES`] read from storage).
    Unusable,
}

impl fmt::Debug for ReadySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.key {
            ReadyKey::Hmac(_) => "hmac(***)".to_owned(),
            ReadyKey::Rsa(k) => format!("rsa({} bits)", k.n().bits()),
            ReadyKey::Jwks(cache) => format!("jwks({})", cache.jwks_uri()),
            ReadyKey::Unusable => "unusable".to_owned(),
        };
        f.debug_struct("ReadySecret")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("kid", &self.kid)
            .field("audiences", &self.audiences)
            .field("issuers", &self.issuers)
            .field("key", &key)
            .finish()
    }
}

impl ReadySecret {
    /// An hs256 secret. A secret shorter than [`MIN_HS256_SECRET_BYTES`]
    /// (which [`parse_secret`] never lets through, so storage was tampered
    /// with or corrupted) gives a secret that verifies nothing.
    pub fn hs256(
        name: impl Into<String>,
        secret: &[u8],
        audiences: Vec<String>,
        issuers: Vec<String>,
    ) -> Self {
        let name = name.into();
        let key = if secret.len() < MIN_HS256_SECRET_BYTES {
            tracing::error!(
                secret = %name,
                "stored hs256 secret is shorter than {MIN_HS256_SECRET_BYTES} bytes; it will verify no token"
            );
            ReadyKey::Unusable
        } else {
            ReadyKey::Hmac(DecodingKey::from_secret(secret))
        };
        ReadySecret {
            name,
            kind: SecretKind::Hs256,
            kid: None,
            audiences,
            issuers,
            key,
        }
    }

    /// An rs256 or rs256_public secret from its public key PEM (SPKI as
    /// stored in [`ParsedSecret::public`], or PKCS#1 `RSA PUBLIC KEY`).
    /// `kid` is normally [`ParsedSecret::kid`]; `None` makes the secret be
    /// tried for every RS256 token whatever its `kid`.
    pub fn rsa_public_pem(
        name: impl Into<String>,
        kind: SecretKind,
        pem: &str,
        kid: Option<String>,
        audiences: Vec<String>,
        issuers: Vec<String>,
    ) -> Result<Self, SecretError> {
        if !matches!(kind, SecretKind::Rs256 | SecretKind::Rs256Public) {
            return Err(SecretError(format!(
                "a {kind} secret has no RSA public key; use ReadySecret::{} instead",
                if kind == SecretKind::Hs256 {
                    "hs256"
                } else {
                    "jwk_url"
                }
            )));
        }
        let key = parse_public_key_pem(pem)?;
        Ok(ReadySecret {
            name: name.into(),
            kind,
            kid,
            audiences,
            issuers,
            key: ReadyKey::Rsa(key),
        })
    }

    /// A jwk_url secret, verified through a (shared) JWKS cache for its URL.
    pub fn jwk_url(
        name: impl Into<String>,
        cache: Arc<JwksCache>,
        audiences: Vec<String>,
        issuers: Vec<String>,
    ) -> Self {
        ReadySecret {
            name: name.into(),
            kind: SecretKind::JwkUrl,
            kid: None,
            audiences,
            issuers,
            key: ReadyKey::Jwks(cache),
        }
    }

    pub(crate) fn key(&self) -> &ReadyKey {
        &self.key
    }
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Throwaway RSA keys generated once with the `openssl` CLI (see
    //! `testdata/README.md`). They protect nothing.

    pub const RSA_A_PKCS1: &str = include_str!("testdata/rsa_a_pkcs1.pem");
    pub const RSA_A_PKCS8: &str = include_str!("testdata/rsa_a_pkcs8.pem");
    pub const RSA_A_SPKI: &str = include_str!("testdata/rsa_a_spki.pem");
    pub const RSA_A_PKCS1_PUBLIC: &str = include_str!("testdata/rsa_a_pkcs1_public.pem");
    pub const RSA_A_ENCRYPTED: &str = include_str!("testdata/rsa_a_encrypted_pkcs8.pem");
    pub const RSA_A_CERT: &str = include_str!("testdata/rsa_a_cert.pem");
    pub const RSA_B_PKCS8: &str = include_str!("testdata/rsa_b_pkcs8.pem");
    pub const RSA_B_SPKI: &str = include_str!("testdata/rsa_b_spki.pem");
    pub const RSA_1024_PKCS8: &str = include_str!("testdata/rsa_1024_pkcs8.pem");
    pub const RSA_1024_SPKI: &str = include_str!("testdata/rsa_1024_spki.pem");
    pub const RSA_8192_PKCS8: &str = include_str!("testdata/rsa_8192_pkcs8.pem");
    pub const EC256_PKCS8: &str = include_str!("testdata/ec256_pkcs8.pem");
    pub const EC256_SPKI: &str = include_str!("testdata/ec256_spki.pem");
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;

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
        use rsa::pkcs1::EncodeRsaPublicKey as _;
        let one = BigUint::from(1u8);
        let mut n = (&one << (bits - 1)) | BigUint::from(12345u32);
        if even {
            n += &one;
        }
        RsaPublicKey::new_unchecked(n, BigUint::from(65537u32))
            .to_pkcs1_pem(LineEnding::LF)
            .unwrap()
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

    #[test]
    fn ready_secrets_are_built_from_stored_material() {
        let p = parse(json!({"type": "rs256", "name": "a", "private_key": RSA_A_PKCS1})).unwrap();
        let ready = ReadySecret::rsa_public_pem(
            "a",
            SecretKind::Rs256,
            p.public.as_deref().unwrap(),
            p.kid.clone(),
            vec![],
            vec![],
        )
        .unwrap();
        assert_eq!(ready.kid, p.kid);
        assert!(matches!(ready.key(), ReadyKey::Rsa(_)));
        assert!(format!("{ready:?}").contains("rsa(2048 bits)"));
        let e =
            ReadySecret::rsa_public_pem("a", SecretKind::Hs256, RSA_A_SPKI, None, vec![], vec![])
                .unwrap_err();
        assert!(e.0.contains("ReadySecret::hs256"), "{e}");
        assert!(ReadySecret::rsa_public_pem(
            "a",
            SecretKind::Rs256,
            RSA_A_PKCS1,
            None,
            vec![],
            vec![]
        )
        .is_err());

        let hs = ReadySecret::hs256("h", GOOD_SECRET.as_bytes(), vec![], vec![]);
        assert!(matches!(hs.key(), ReadyKey::Hmac(_)));
        assert!(!format!("{hs:?}").contains(GOOD_SECRET));
        let short = ReadySecret::hs256("h", b"short", vec![], vec![]);
        assert!(matches!(short.key(), ReadyKey::Unusable));
    }
}
