// TEMPORARY STUB (helper is writing the real module)
use std::time::Duration;
use jsonwebtoken::Algorithm;
pub const ALLOWED_ALGS: &[Algorithm] = &[Algorithm::RS256];
pub struct Expectations<'a> { pub issuer: &'a str, pub client_id: &'a str, pub nonce: &'a str, pub algorithms: &'a [Algorithm], pub trusted_audiences: &'a [String], pub leeway: Duration, pub max_iat_age: Duration }
pub struct VerifiedIdToken { pub subject: String, pub email: Option<String>, pub email_verified: bool, pub name: Option<String>, pub claims: serde_json::Map<String, serde_json::Value> }
#[derive(Debug, thiserror::Error)] #[error("x")] pub struct IdTokenError;
impl IdTokenError { pub fn code(&self) -> &'static str { "x" } }
pub async fn verify(_t: &str, _j: &crate::oidc::jwks::JwksCache, _e: &Expectations<'_>, _n: time::OffsetDateTime) -> Result<VerifiedIdToken, IdTokenError> { Err(IdTokenError) }
