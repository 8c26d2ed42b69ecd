use super::{on_db, Result, Store};

/// A sign-in in progress, between the redirect to the IdP and its callback.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlowRow {
    pub state_hash: String,
    pub connection_id: String,
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn insert_flow(&self, f: &FlowRow) -> Result<()> {
        on_db!(self.db(), p => { sqlx::query(
            "INSERT INTO login_flows (state_hash, connection_id, browser_hash, nonce, pkce_verifier, return_to, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&f.state_hash).bind(&f.connection_id).bind(&f.browser_hash).bind(&f.nonce)
            .bind(&f.pkce_verifier).bind(&f.return_to).bind(f.created_at).bind(f.expires_at)
            .execute(p).await?; });
        Ok(())
    }

    /// Removes and returns the flow: a state can be used once, whatever happens next.
    pub async fn take_flow(&self, state_hash: &str) -> Result<Option<FlowRow>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, FlowRow>(
            "DELETE FROM login_flows WHERE state_hash = $1
             RETURNING state_hash, connection_id, browser_hash, nonce, pkce_verifier, return_to, created_at, expires_at")
            .bind(state_hash).fetch_optional(p).await?))
    }
}
