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
        self.audit_page(org_id, AuditCursor::Newest, limit)
            .await
            .map(|p| p.events)
    }

    /// One page of the org's audit events, newest first: at most `limit` events from where
    /// `cursor` says, and whether there are older and newer events beyond the page. Keyset
    /// paging on `id` (index `audit_events_org`): each page costs the same however deep.
    pub async fn audit_page(
        &self,
        org_id: &str,
        cursor: AuditCursor,
        limit: i64,
    ) -> Result<AuditPage> {
        const COLS: &str = "SELECT id, actor, action, detail, created_at FROM audit_events";
        let (sql, bound) = match cursor {
            // The newest page is the page before any id.
            AuditCursor::Newest | AuditCursor::Before(_) => (
                format!("{COLS} WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
                match cursor {
                    AuditCursor::Before(id) => id,
                    _ => i64::MAX,
                },
            ),
            AuditCursor::After(id) => (
                format!("{COLS} WHERE org_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3"),
                id,
            ),
        };
        // One more than asked: whether the page is the last in its direction.
        let mut events = on_db!(self.db(), p => sqlx::query_as::<_, AuditEvent>(&sql)
            .bind(org_id).bind(bound).bind(limit + 1).fetch_all(p).await?);
        let more = events.len() as i64 > limit;
        events.truncate(limit.max(0) as usize);
        // The other side of a cursor is checked, not assumed: a cursor is caller input.
        let (older, newer) = match cursor {
            AuditCursor::Newest => (more, false),
            AuditCursor::Before(id) => (more, self.audit_exists(org_id, ">=", id).await?),
            AuditCursor::After(id) => {
                events.reverse();
                (self.audit_exists(org_id, "<=", id).await?, more)
            }
        };
        Ok(AuditPage {
            events,
            older,
            newer,
        })
    }

    async fn audit_exists(&self, org_id: &str, op: &'static str, id: i64) -> Result<bool> {
        let sql = format!("SELECT id FROM audit_events WHERE org_id = $1 AND id {op} $2 LIMIT 1");
        let row: Option<(i64,)> = on_db!(self.db(), p => sqlx::query_as(&sql)
            .bind(org_id).bind(id).fetch_optional(p).await?);
        Ok(row.is_some())
    }

    /// Deletes audit events created before `cutoff` (unix seconds), oldest first, `batch` rows
    /// per statement and at most `max_batches` statements, so a huge backlog is worked off over
    /// several runs without one long lock. Returns how many rows went.
    pub async fn purge_audit_before(
        &self,
        cutoff: i64,
        batch: i64,
        max_batches: u32,
    ) -> Result<u64> {
        let mut total = 0;
        for _ in 0..max_batches {
            let n = on_db!(self.db(), p => sqlx::query(
                "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE created_at < $1 ORDER BY created_at LIMIT $2)")
                .bind(cutoff).bind(batch).execute(p).await?.rows_affected());
            total += n;
            if (n as i64) < batch {
                break;
            }
        }
        Ok(total)
    }
}

/// Where a page of audit events starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditCursor {
    /// The newest events.
    Newest,
    /// Events older than this id (the "older" link: the last id of the page shown).
    Before(i64),
    /// Events newer than this id (the "newer" link: the first id of the page shown).
    After(i64),
}

/// A page of audit events, newest first, and whether more lie on either side.
#[derive(Debug)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub older: bool,
    pub newer: bool,
}
