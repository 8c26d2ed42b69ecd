//! Algorithm allow-lists (one per token kind) and JOSE algorithm names.

use jsonwebtoken::Algorithm;

/// Every algorithm an identity provider's ID token may ever use: asymmetric only, never `none`,
/// never HS*. A connection narrows it further to what its provider advertises.
pub const ID_TOKEN_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What an org's JWT secrets verify: HS256 (hs256) and RS256 (rs256, rs256_public, jwk_url).
/// Each secret pins one of them; the token's header only selects which secrets are tried.
pub const ORG_SECRET_ALGS: &[Algorithm] = &[Algorithm::HS256, Algorithm::RS256];

/// What orgsso signs its own access tokens with.
pub const OWN_TOKEN_ALGS: &[Algorithm] = &[Algorithm::ES256];

/// JOSE name of an algorithm.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        #[allow(unreachable_patterns)]
        _ => "unknown-algorithm",
    }
}
