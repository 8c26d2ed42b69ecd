//! JSON Web Tokens apps and APIs use to trust orgsso: an org's JWT secrets (admin input in
//! `secret_input`, PEM keys in `rsa_pem`, JWKS URLs in `jwks_url`, the runtime form in
//! `ready_secret`), checking tokens against them (`verify`), orgsso's own access tokens
//! (`own_token`), and the service's own signing keys (`signing`). The token checks are policies
//! over [`crate::jose`].

pub mod jwks_url;
pub mod own_token;
pub mod ready_secret;
pub mod rsa_pem;
pub mod secret_input;
pub mod signing;
pub mod verify;
