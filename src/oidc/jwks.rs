// TEMPORARY STUB (helper is writing the real module)
use std::sync::Arc;
use std::time::Duration;
pub struct JwksSettings { pub refetch_cooldown: Duration, pub max_age: Duration, pub max_bytes: usize }
pub struct JwksCache;
pub struct JwksRegistry;
#[derive(Debug, thiserror::Error)] #[error("x")] pub struct JwksError;
impl JwksRegistry {
    pub fn new(_h: reqwest::Client, _s: JwksSettings) -> Self { JwksRegistry }
    pub fn get(&self, _u: &url::Url) -> Arc<JwksCache> { Arc::new(JwksCache) }
    pub fn insert_seeded(&self, _u: &url::Url, _v: &serde_json::Value) -> Result<(), JwksError> { Ok(()) }
}
