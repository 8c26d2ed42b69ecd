//! Saving a rule set and re-deriving every SSO member's role from their stored last sign-in
//! claims, in one transaction. The new outcomes are computed outside SQL by the caller's
//! function (the compiled rules, `roles::rederive`); this file reads the members and writes the
//! changes in batches (one statement per [`BATCH`] members), so 10,000 members cost a few dozen
//! round trips on PostgreSQL.

use super::events::{notify_in_tx, Event};
use super::{audit_in_tx, on_db, Result, Store, StoreError};
use crate::roles::{MemberClaims, Outcome, Role, RoleChange, RoleMappingSpec};

/// Members per statement: 500 rows × at most 3 parameters stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters.
const BATCH: usize = 500;

/// What a rule save did to the org's members.
#[derive(Debug, Clone, Default)]
pub struct Rederived {
    pub changes: Vec<RoleChange>,
    /// Sessions ended because their member is now denied.
    pub sessions_ended: u64,
}

/// `($b+1, $b+2, …), (…)`: `rows` tuples of `cols` numbered placeholders from `first`.
pub(super) fn placeholders(first: usize, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (0..cols)
                .map(|c| format!("${}", first + r * cols + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

type MemberRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    Option<i64>,
    String,
);

fn member_of(row: MemberRow) -> Result<MemberClaims> {
    let (user_id, email, name, role, denied_at, claims) = row;
    let role = role
        .parse::<Role>()
        .map_err(|e| StoreError::Corrupt(format!("role of member {user_id}: {e}")))?;
    Ok(MemberClaims {
        label: email.or(name).unwrap_or_else(|| user_id.clone()),
        user_id,
        role,
        denied: denied_at.is_some(),
        claims,
    })
}

const MEMBERS_SQL: &str = "SELECT m.user_id, u.email, u.name, m.role, m.denied_at, m.last_claims
     FROM memberships m JOIN users u ON u.id = m.user_id
     WHERE m.org_id = $1 AND m.source IN ('sso', 'scim') AND m.last_claims IS NOT NULL
     ORDER BY u.email, m.user_id";

impl Store {
    /// The org's SSO members with stored sign-in claims, for the rule editor's preview.
    pub async fn members_with_claims(&self, org_id: &str) -> Result<Vec<MemberClaims>> {
        let rows: Vec<MemberRow> = on_db!(self.db(), p => sqlx::query_as(MEMBERS_SQL)
            .bind(org_id).fetch_all(p).await?);
        rows.into_iter().map(member_of).collect()
    }

    /// Stores a rule set (validated whole by the caller) and, in the same transaction, applies
    /// `derive` to the org's SSO members with stored claims: each change it returns is written
    /// (role, or the denied mark) and audited as `member.role_change` (actor `rules`), and the
    /// sessions of members now denied are deleted. Announces the new rules and, when anyone
    /// changed, the members' roles (NOTIFY inside the transaction, in-process after commit).
    pub async fn save_role_mapping(
        &self,
        org_id: &str,
        spec: &RoleMappingSpec,
        actor: &str,
        now: i64,
        derive: impl FnOnce(&[MemberClaims]) -> Vec<RoleChange>,
    ) -> Result<Rederived> {
        let detail = serde_json::to_value(spec).expect("a rule set serialises");
        let mapping_changed = Event::RoleMappingChanged {
            org_id: org_id.to_owned(),
        };
        let roles_changed = Event::MemberRolesChanged {
            org_id: org_id.to_owned(),
            user_id: None,
        };
        let db = self.db();
        let outcome = on_db!(db, p => {
            let mut tx = p.begin().await?;
            // The write first: on SQLite it takes the write lock, on PostgreSQL it locks the
            // org's rule row, so two saves re-derive one after the other, each from the
            // members as the previous one left them.
            sqlx::query(
                "INSERT INTO role_mappings (org_id, spec, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (org_id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at")
                .bind(org_id).bind(detail.to_string()).bind(now)
                .execute(&mut *tx).await?;
            audit_in_tx!(tx, org_id, actor, "role_mapping.update", detail, now)?;
            let rows: Vec<MemberRow> = sqlx::query_as(MEMBERS_SQL).bind(org_id).fetch_all(&mut *tx).await?;
            let members = rows.into_iter().map(member_of).collect::<Result<Vec<_>>>()?;
            let changes = derive(&members);
            drop(members);
            for batch in changes.chunks(BATCH) {
                let sql = format!(
                    "WITH v(user_id, role, denied_at) AS (VALUES {})
                     UPDATE memberships SET role = v.role, denied_at = v.denied_at, updated_at = $2
                     FROM v WHERE memberships.org_id = $1 AND memberships.user_id = v.user_id",
                    placeholders(3, batch.len(), 3));
                let mut q = sqlx::query(&sql).bind(org_id).bind(now);
                for c in batch {
                    let denied_at = (c.to == Outcome::Deny).then_some(now);
                    q = q.bind(&c.user_id).bind(c.new_role().as_str()).bind(denied_at);
                }
                q.execute(&mut *tx).await?;
                let sql = format!(
                    "INSERT INTO audit_events (org_id, actor, action, created_at, detail) VALUES {}",
                    (0..batch.len()).map(|i| format!("($1, $2, $3, $4, ${})", 5 + i)).collect::<Vec<_>>().join(", "));
                let mut q = sqlx::query(&sql).bind(org_id).bind("rules").bind("member.role_change").bind(now);
                for c in batch {
                    let change = serde_json::json!({"user_id": c.user_id, "from": c.from.as_str(), "to": c.to.as_str(), "rule": c.rule});
                    q = q.bind(change.to_string());
                }
                q.execute(&mut *tx).await?;
            }
            let denied: Vec<&str> = changes.iter().filter(|c| c.to == Outcome::Deny).map(|c| c.user_id.as_str()).collect();
            let mut sessions_ended = 0;
            for batch in denied.chunks(BATCH) {
                let sql = format!(
                    "DELETE FROM sessions WHERE org_id = $1 AND user_id IN ({})",
                    (0..batch.len()).map(|i| format!("${}", 2 + i)).collect::<Vec<_>>().join(", "));
                let mut q = sqlx::query(&sql).bind(org_id);
                for user_id in batch {
                    q = q.bind(*user_id);
                }
                sessions_ended += q.execute(&mut *tx).await?.rows_affected();
            }
            notify_in_tx!(db, tx, mapping_changed);
            if !changes.is_empty() {
                notify_in_tx!(db, tx, roles_changed);
            }
            tx.commit().await?;
            Rederived { changes, sessions_ended }
        });
        self.announce(&mapping_changed);
        if !outcome.changes.is_empty() {
            self.announce(&roles_changed);
        }
        Ok(outcome)
    }

    /// A sign-in the rules deny, by an existing SSO member of the org (found by issuer and
    /// subject): in one transaction the sign-in's claims are kept as the member's last and, if
    /// they were not denied already, the membership is marked denied (its role kept), their
    /// sessions in the org deleted, and the change audited and announced. True when it was
    /// marked now.
    pub async fn deny_member(
        &self,
        org_id: &str,
        issuer: &str,
        subject: &str,
        rule: Option<usize>,
        claims_json: &str,
        now: i64,
    ) -> Result<bool> {
        let db = self.db();
        let denied = on_db!(db, p => {
            let mut tx = p.begin().await?;
            // A write first (SQLite's write lock at once); `denied_at` as it was before.
            let member: Option<(String, String, Option<i64>)> = sqlx::query_as(
                "UPDATE memberships SET last_claims = $1, updated_at = $2
                 WHERE org_id = $3 AND source = 'sso'
                   AND user_id = (SELECT user_id FROM identities WHERE issuer = $4 AND subject = $5)
                 RETURNING user_id, role, denied_at")
                .bind(claims_json).bind(now).bind(org_id).bind(issuer).bind(subject)
                .fetch_optional(&mut *tx).await?;
            let event = match member {
                Some((user_id, role, None)) => {
                    sqlx::query("UPDATE memberships SET denied_at = $1 WHERE org_id = $2 AND user_id = $3")
                        .bind(now).bind(org_id).bind(&user_id).execute(&mut *tx).await?;
                    sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND user_id = $2")
                        .bind(org_id).bind(&user_id).execute(&mut *tx).await?;
                    let change = serde_json::json!({"user_id": user_id, "from": role, "to": "deny", "rule": rule});
                    audit_in_tx!(tx, org_id, "rules", "member.role_change", change, now)?;
                    let event = Event::MemberRolesChanged { org_id: org_id.to_owned(), user_id: Some(user_id) };
                    notify_in_tx!(db, tx, event);
                    Some(event)
                }
                _ => None,
            };
            tx.commit().await?;
            event
        });
        if let Some(event) = &denied {
            self.announce(event);
        }
        Ok(denied.is_some())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(super::placeholders(3, 2, 3), "($3, $4, $5), ($6, $7, $8)");
        assert_eq!(super::placeholders(2, 1, 1), "($2)");
    }
}
