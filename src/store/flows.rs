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
    /// Stores the flow unless its connection already has `max_pending` unexpired flows
    /// (`false`): anonymous starts cannot grow the table past that. One statement, so the
    /// count and the insert agree on SQLite; on PostgreSQL concurrent starts may overshoot
    /// the cap by the few that count at once.
    pub async fn insert_flow(&self, f: &FlowRow, max_pending: u32) -> Result<bool> {
        let done = on_db!(self.db(), p => sqlx::query(
            "INSERT INTO login_flows (state_hash, connection_id, browser_hash, nonce, pkce_verifier, return_to, created_at, expires_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE (SELECT COUNT(*) FROM login_flows WHERE connection_id = $2 AND expires_at > $7) < $9")
            .bind(&f.state_hash).bind(&f.connection_id).bind(&f.browser_hash).bind(&f.nonce)
            .bind(&f.pkce_verifier).bind(&f.return_to).bind(f.created_at).bind(f.expires_at)
            .bind(i64::from(max_pending))
            .execute(p).await?.rows_affected());
        Ok(done == 1)
    }

    /// Unexpired flows of a connection (tests and the flood bench read it).
    pub async fn pending_flows(&self, connection_id: &str, now: i64) -> Result<i64> {
        Ok(on_db!(self.db(), p => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM login_flows WHERE connection_id = $1 AND expires_at > $2")
            .bind(connection_id).bind(now).fetch_one(p).await?))
    }

    /// Removes and returns the flow: a state can be used once, whatever happens next.
    pub async fn take_flow(&self, state_hash: &str) -> Result<Option<FlowRow>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, FlowRow>(
            "DELETE FROM login_flows WHERE state_hash = $1
             RETURNING state_hash, connection_id, browser_hash, nonce, pkce_verifier, return_to, created_at, expires_at")
            .bind(state_hash).fetch_optional(p).await?))
    }
}
