//! Secrets in memory and at rest: a redacting wrapper, authenticated encryption of stored
//! secrets, random identifiers and constant-time comparison.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A string that never shows itself in `Debug` or logs.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `n` random bytes from the OS generator, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 by aws-lc (linked for signatures anyway): its assembly picks the CPU's SHA
/// extensions or AVX at run time, where `sha2` without them falls back to portable code at
/// several times the instructions. The verify path hashes every token and cookie with it.
pub fn sha256(value: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// SHA-256, base64url: how single-use values (flow state, browser binding) are stored, so a
/// database reader cannot replay them.
pub fn sha256_b64(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(value.as_bytes()))
}

/// Characters of a SHA-256 in unpadded base64url.
pub const SHA256_B64_LEN: usize = 43;

/// [`sha256_b64`] written into `out`, for lookups on the verify path that need no `String`.
pub fn sha256_b64_in<'a>(value: &str, out: &'a mut [u8; SHA256_B64_LEN]) -> &'a str {
    let n = URL_SAFE_NO_PAD
        .encode_slice(sha256(value.as_bytes()), out)
        .expect("32 bytes encode to 43 characters");
    std::str::from_utf8(&out[..n]).expect("base64url is ASCII")
}

/// Equality that takes the same time wherever the inputs differ, and hides their lengths.
pub fn ct_eq(a: &str, b: &str) -> bool {
    let (ha, hb) = (sha256(a.as_bytes()), sha256(b.as_bytes()));
    ha.ct_eq(&hb).into()
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the secret key must be 32 bytes, base64 encoded (generate one with `openssl rand -base64 32`)")]
    BadKey,
    #[error("a stored secret could not be decrypted: was ORGSSO_SECRET_KEY changed?")]
    Decrypt,
    #[error("could not read or write the secret key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
}

/// AES-256-GCM over stored secrets. Each value is bound to a context (e.g. the row it belongs
/// to) as associated data, so a ciphertext copied to another row does not decrypt.
#[derive(Clone)]
pub struct SecretBox {
    // Shared: the service state is cloned per request, the key schedule need not be.
    cipher: std::sync::Arc<Aes256Gcm>,
    /// A separate key for MACs, derived from the same secret (never the AES key itself).
    mac_key: std::sync::Arc<[u8; 32]>,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

const VERSION: &str = "v1";

impl SecretBox {
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(key.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(key.trim()))
            .map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let mac_key: [u8; 32] = Sha256::new()
            .chain_update(b"orgsso mac key\0")
            .chain_update(&bytes)
            .finalize()
            .into();
        Ok(SecretBox {
            cipher: std::sync::Arc::new(
                Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey)?,
            ),
            mac_key: std::sync::Arc::new(mac_key),
        })
    }

    /// The configured key or the one in `data_dir/secret.key`; never creates one. For commands
    /// that change existing data, where a new key would make it unreadable.
    pub fn load_existing(configured: Option<&str>, data_dir: &Path) -> Result<Self, CryptoError> {
        if let Some(key) = configured {
            return Self::from_base64(key);
        }
        let path = data_dir.join("secret.key");
        let key = std::fs::read_to_string(&path).map_err(|source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_base64(&key)
    }

    /// The configured key, or the one kept in `data_dir/secret.key`, created (mode 0600) when
    /// missing. Returns whether a key was generated, so the caller can warn.
    pub fn load_or_create(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> Result<(Self, bool), CryptoError> {
        if let Some(key) = configured {
            return Ok((Self::from_base64(key)?, false));
        }
        let path = data_dir.join("secret.key");
        let io = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(key) => Ok((Self::from_base64(&key)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let encoded = STANDARD.encode(key);
                write_private(&path, &encoded).map_err(io)?;
                Ok((Self::from_base64(&encoded)?, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// HMAC-SHA256 of `message` under the service key, for `purpose`: a fingerprint that can be
    /// stored (e.g. in a session) without being reversible or brute-forceable offline.
    pub fn mac(&self, purpose: &str, message: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key[..])
            .expect("HMAC takes any key length");
        m.update(purpose.as_bytes());
        m.update(b"\0");
        m.update(message.as_bytes());
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    }

    pub fn encrypt(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{VERSION}:{}", URL_SAFE_NO_PAD.encode(out))
    }

    pub fn decrypt(&self, stored: &str, context: &str) -> Result<Secret, CryptoError> {
        let body = stored
            .strip_prefix(VERSION)
            .and_then(|s| s.strip_prefix(':'))
            .ok_or(CryptoError::Decrypt)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::Decrypt)?;
        if bytes.len() < 12 + 16 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretBox {
        SecretBox::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
    }

    /// The stack-buffer hash is the stored session-id hash, for ids of any length.
    #[test]
    fn the_hash_in_a_buffer_is_the_hash() {
        for value in [
            "",
            "a",
            "a-session-id-of-the-usual-length-22",
            &"x".repeat(5000),
        ] {
            let mut buf = [0u8; SHA256_B64_LEN];
            assert_eq!(sha256_b64_in(value, &mut buf), sha256_b64(value));
        }
    }

    #[test]
    fn macs_depend_on_key_purpose_and_message() {
        let (a, b) = (
            key(),
            SecretBox::from_base64(&STANDARD.encode([8u8; 32])).unwrap(),
        );
        let m = a.mac("operator", "token");
        assert_eq!(m, a.mac("operator", "token"));
        assert_ne!(m, b.mac("operator", "token"));
        assert_ne!(m, a.mac("operator", "token2"));
        assert_ne!(m, a.mac("other", "token"));
        assert!(!m.contains("token"));
    }

    #[test]
    fn round_trip_and_context_binding() {
        let b = key();
        let sealed = b.encrypt("s3cret", "conn-1");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(b.decrypt(&sealed, "conn-1").unwrap().expose(), "s3cret");
        assert!(b.decrypt(&sealed, "conn-2").is_err(), "other row's context");
        let other = SecretBox::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.decrypt(&sealed, "conn-1").is_err(), "other key");
        assert!(b.decrypt("v1:short", "conn-1").is_err());
        assert!(b.decrypt("garbage", "conn-1").is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(SecretBox::from_base64("not base64!").is_err());
        assert!(SecretBox::from_base64(&STANDARD.encode([1u8; 16])).is_err());
    }

    #[test]
    fn generated_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = SecretBox::load_or_create(None, dir.path()).unwrap();
        assert!(created);
        let (b, created_again) = SecretBox::load_or_create(None, dir.path()).unwrap();
        assert!(!created_again);
        assert_eq!(b.decrypt(&a.encrypt("x", "c"), "c").unwrap().expose(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
    }
}
