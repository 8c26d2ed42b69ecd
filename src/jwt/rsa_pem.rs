//! RSA keys of org secrets from PEM: one PEM block, PKCS#1 / PKCS#8 private keys, SPKI /
//! PKCS#1 public keys, size checks ([`RSA_MIN_BITS`] to [`RSA_MAX_BITS_SECRET`]), messages that
//! say what to do with the wrong kind of key, and what is derived for storage (SPKI PEM, JWK,
//! RFC 7638 thumbprint as `kid`). Nothing here puts key material into a message.
//!
//! The DER structures are read with the RustCrypto `pkcs1`/`pkcs8` crates (parsing only); a
//! private key is checked for consistency by aws-lc (`RSA_check_key`: n = p·q, d·e ≡ 1, CRT
//! values), which also signs with it through jsonwebtoken. No private-key arithmetic runs in
//! the `rsa` crate (its RUSTSEC-2023-0071 timing advisory).

use aws_lc_rs::rsa::KeyPair;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use pkcs1::der::asn1::{AnyRef, BitStringRef, UintRef};
use pkcs1::der::{Decode as _, Encode as _, Tagged as _};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::{LineEnding, ObjectIdentifier};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::secret_input::SecretError;
use crate::jose::keys::{bits_of_be, Rs256Key, RSA_MAX_BITS_SECRET, RSA_MIN_BITS};

/// Largest accepted PEM text (an 8192-bit PKCS#8 key is about 6.4 KiB).
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// rsaEncryption (PKCS#1), the only key algorithm accepted.
const RSA_ENCRYPTION_OID: ObjectIdentifier = pkcs1::ALGORITHM_OID;
/// RSASSA-PSS-restricted RSA keys.
const RSA_PSS_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
/// id-ecPublicKey.
const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// Ed25519 / Ed448.
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ED448_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");

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
            "\"{field}\" is larger than {} KiB; an RSA key of up to {RSA_MAX_BITS_SECRET} bits is about 7 KiB of PEM, so paste a single key",
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
        "{what}; only RSA keys ({RSA_MIN_BITS} to {RSA_MAX_BITS_SECRET} bits) are supported \
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
    let bits = bits_of_be(modulus_be);
    if bits < RSA_MIN_BITS {
        return Err(SecretError(format!(
            "the RSA key has {bits} bits; at least {RSA_MIN_BITS} bits are required \
             (generate one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072`)"
        )));
    }
    if bits > RSA_MAX_BITS_SECRET {
        return Err(SecretError(format!(
            "the RSA key has {bits} bits; at most {RSA_MAX_BITS_SECRET} bits are supported"
        )));
    }
    Ok(())
}

/// `which` is "private" or "public"; `format` names the container.
fn unreadable_key(which: &str, format: &str) -> SecretError {
    SecretError(format!(
        "the {which} key could not be read as a {format} RSA {which} key (is it complete and unmodified?)"
    ))
}

fn invalid_private_key(format: &str) -> SecretError {
    unreadable_key("private", format)
}

/// An org's RSA private key, checked: its PKCS#1 `RSAPrivateKey` DER (what is stored,
/// encrypted, as PEM) and its public key. The DER is wiped when dropped.
pub(crate) struct RsaPrivate {
    pkcs1_der: Zeroizing<Vec<u8>>,
    pub(crate) public: Rs256Key,
}

impl RsaPrivate {
    /// The key as PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), what the signer reads.
    pub(crate) fn pkcs1_pem(&self) -> Result<String, SecretError> {
        pkcs1::der::pem::encode_string("RSA PRIVATE KEY", LineEnding::LF, &self.pkcs1_der)
            .map_err(|_| SecretError::new("the RSA private key could not be re-encoded"))
    }
}

/// Parses an RSA private key (PKCS#1 or PKCS#8 PEM), checks its size and
/// consistency (n = p·q, d·e ≡ 1; by aws-lc).
pub(crate) fn parse_private_key_pem(text: &str) -> Result<RsaPrivate, SecretError> {
    let pem = parse_pem(text, "private_key")?;
    let checked = |pkcs1_der: &[u8], format: &str| -> Result<RsaPrivate, SecretError> {
        let structure =
            pkcs1::RsaPrivateKey::from_der(pkcs1_der).map_err(|_| invalid_private_key(format))?;
        check_bits(structure.modulus.as_bytes())?;
        KeyPair::from_der(pkcs1_der).map_err(|_| invalid_private_key(format))?;
        let public = rsa_public_key(
            structure.modulus.as_bytes(),
            structure.public_exponent.as_bytes(),
        )
        .map_err(|_| invalid_private_key(format))?;
        Ok(RsaPrivate {
            pkcs1_der: Zeroizing::new(pkcs1_der.to_vec()),
            public,
        })
    };
    match pem.label.as_str() {
        "RSA PRIVATE KEY" => checked(&pem.der, "PKCS#1"),
        "PRIVATE KEY" => {
            let info = pkcs8::PrivateKeyInfo::from_der(&pem.der)
                .map_err(|_| invalid_private_key("PKCS#8"))?;
            if info.algorithm.oid != RSA_ENCRYPTION_OID {
                return Err(algorithm_error(info.algorithm.oid));
            }
            checked(info.private_key, "PKCS#8")
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
    unreadable_key("public", format)
}

/// Parses an RSA public key (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
pub(crate) fn parse_public_key_pem(text: &str) -> Result<Rs256Key, SecretError> {
    let pem = parse_pem(text, "public_key")?;
    match pem.label.as_str() {
        "PUBLIC KEY" => {
            const FORMAT: &str = "SubjectPublicKeyInfo";
            let spki = SubjectPublicKeyInfoRef::from_der(&pem.der)
                .map_err(|_| invalid_public_key(FORMAT))?;
            if spki.algorithm.oid != RSA_ENCRYPTION_OID {
                return Err(algorithm_error(spki.algorithm.oid));
            }
            // rsaEncryption parameters must be NULL or absent.
            if spki
                .algorithm
                .parameters
                .is_some_and(|p| p.tag() != pkcs1::der::Tag::Null)
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

/// A PKCS#1 `RSAPublicKey` (DER) as a checked key of [`RSA_MIN_BITS`] to
/// [`RSA_MAX_BITS_SECRET`] bits. `format` names the container in messages.
fn rsa_public_from_pkcs1_der(der: &[u8], format: &str) -> Result<Rs256Key, SecretError> {
    let structure = pkcs1::RsaPublicKey::from_der(der).map_err(|_| invalid_public_key(format))?;
    check_bits(structure.modulus.as_bytes())?;
    rsa_public_key(
        structure.modulus.as_bytes(),
        structure.public_exponent.as_bytes(),
    )
}

/// The public key of big-endian `n` and `e`, with the range checks the `rsa` crate applied
/// (and messages have named) since the first release: n odd, e odd, 3 ≤ e ≤ 2³³−1, e < n.
fn rsa_public_key(n: &[u8], e: &[u8]) -> Result<Rs256Key, SecretError> {
    const MAX_EXPONENT: u64 = (1 << 33) - 1;
    let out_of_range = || {
        SecretError::new(
            "the RSA public key is invalid: its modulus or public exponent is out of range",
        )
    };
    let e_value = e
        .iter()
        .try_fold(0u64, |acc, b| {
            acc.checked_mul(256).map(|v| v | u64::from(*b))
        })
        .ok_or_else(out_of_range)?;
    let n_odd = n.last().is_some_and(|b| b & 1 == 1);
    // n has at least RSA_MIN_BITS bits here, so e ≤ 2³³−1 is below it.
    if !n_odd || e_value % 2 == 0 || !(3..=MAX_EXPONENT).contains(&e_value) {
        return Err(out_of_range());
    }
    Rs256Key::from_components(n, e).ok_or_else(out_of_range)
}

/// What is derived from an RSA public key for storage and display.
pub(crate) struct RsaPublicInfo {
    pub(crate) spki_pem: String,
    pub(crate) jwk: Value,
    pub(crate) kid: String,
}

impl RsaPublicInfo {
    pub(crate) fn of(key: &Rs256Key) -> Result<Self, SecretError> {
        check_bits(key.n())?;
        let spki_pem = spki_pem(key.n(), key.e())
            .ok_or_else(|| SecretError::new("the RSA public key could not be encoded"))?;
        let n = URL_SAFE_NO_PAD.encode(key.n());
        let e = URL_SAFE_NO_PAD.encode(key.e());
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

/// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`, rsaEncryption with NULL
/// parameters) of big-endian `n` and `e`.
fn spki_pem(n: &[u8], e: &[u8]) -> Option<String> {
    let pkcs1 = pkcs1::RsaPublicKey {
        modulus: UintRef::new(n).ok()?,
        public_exponent: UintRef::new(e).ok()?,
    }
    .to_der()
    .ok()?;
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: RSA_ENCRYPTION_OID,
            parameters: Some(AnyRef::NULL),
        },
        subject_public_key: BitStringRef::from_bytes(&pkcs1).ok()?,
    }
    .to_der()
    .ok()?;
    pkcs1::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &spki).ok()
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA key given its
/// base64url `n` and `e`: the hash of `{"e":…,"kty":"RSA","n":…}` with the
/// members in lexicographic order and no whitespace.
pub(crate) fn rsa_thumbprint(n_b64: &str, e_b64: &str) -> String {
    // base64url characters never need JSON escaping.
    let canonical = format!(r#"{{"e":"{e_b64}","kty":"RSA","n":"{n_b64}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}
