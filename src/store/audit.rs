use super::{on_db, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub actor: String,
    pub action: String,
    #[serde(skip)]
    pub detail: String,
    pub created_at: i64,
}

impl Store {
    /// Appends one audit event outside any other write.
    pub async fn audit(
        &self,
        org_id: Option<&str>,
        actor: &str,
        action: &str,
        detail: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        on_db!(self.db(), p => {
            sqlx::query("INSERT INTO audit_events (org_id, actor, action, detail, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(org_id).bind(actor).bind(action).bind(detail.to_string()).bind(now)
                .execute(p).await?;
        });
        Ok(())
    }

    /// The org's newest audit events first.
    pub async fn audit_events(&self, org_id: &str, limit: i64) -> Result<Vec<AuditEvent>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, AuditEvent>(
            "SELECT id, actor, action, detail, created_at FROM audit_events WHERE org_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(org_id).bind(limit).fetch_all(p).await?))
    }
}
