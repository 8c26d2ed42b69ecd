//! The ID token's `at_hash` (OIDC Core §3.1.3.6, §3.1.3.8): the left half of the hash of the
//! access token, base64url, with the hash function of the ID token's signing algorithm. It
//! binds the access token to the signed ID token, so a token response cannot pair a genuine
//! ID token with another access token. Pure.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

/// `at_hash` for `access_token` under `alg`; `None` for an algorithm without a defined hash.
/// EdDSA (Ed25519) uses SHA-512, as providers do.
pub fn at_hash(alg: Algorithm, access_token: &str) -> Option<String> {
    let digest: Vec<u8> = match alg {
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::HS256 => {
            Sha256::digest(access_token.as_bytes()).to_vec()
        }
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 | Algorithm::HS384 => {
            Sha384::digest(access_token.as_bytes()).to_vec()
        }
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::HS512 | Algorithm::EdDSA => {
            Sha512::digest(access_token.as_bytes()).to_vec()
        }
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]))
}

/// Whether `claimed` (the ID token's `at_hash`) fits `access_token` under `alg`; compared in
/// constant time.
pub fn matches(alg: Algorithm, access_token: &str, claimed: &str) -> bool {
    at_hash(alg, access_token).is_some_and(|h| bool::from(h.as_bytes().ct_eq(claimed.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // OIDC Core §A.3 (RS256): access token and at_hash of the example ID token.
        let spec_token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        #[rustfmt::skip]
        let cases = [
            ("OIDC Core A.3", Algorithm::RS256, spec_token, "77QmUPtjPfzWtF2AnpK9RQ"),
            ("same under ES256", Algorithm::ES256, spec_token, "77QmUPtjPfzWtF2AnpK9RQ"),
            ("same under PS256", Algorithm::PS256, spec_token, "77QmUPtjPfzWtF2AnpK9RQ"),
        ];
        for (case, alg, token, expected) in cases {
            assert_eq!(at_hash(alg, token).as_deref(), Some(expected), "{case}");
            assert!(matches(alg, token, expected), "{case}");
        }
        // Hash sizes: half of 32, 48 and 64 bytes, base64url without padding.
        for (alg, chars) in [
            (Algorithm::RS256, 22),
            (Algorithm::ES384, 32),
            (Algorithm::RS512, 43),
            (Algorithm::EdDSA, 43),
        ] {
            assert_eq!(at_hash(alg, "at").unwrap().len(), chars, "{alg:?}");
        }
    }

    #[test]
    fn mismatches_are_refused() {
        let good = at_hash(Algorithm::RS256, "at").unwrap();
        #[rustfmt::skip]
        let cases = [
            ("another access token", Algorithm::RS256, "at2", good.as_str()),
            ("another hash function", Algorithm::RS384, "at", good.as_str()),
            ("empty claim", Algorithm::RS256, "at", ""),
            ("full hash instead of half", Algorithm::RS256, "at", "Ob4y1ZqHx2w6nA7rM3s0Vx4D9nbD5Hk1b4pS0cB9uFk"),
            ("padded", Algorithm::RS256, "at", &format!("{good}==")),
        ];
        for (case, alg, token, claimed) in cases {
            assert!(!matches(alg, token, claimed), "{case}");
        }
        assert!(matches(Algorithm::RS256, "at", &good));
    }
}
