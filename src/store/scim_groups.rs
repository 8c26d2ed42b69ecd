//! SCIM Group resources and their members. A change of membership (or of a group's name)
//! refreshes the `scim.groups` claim of each member it touches and re-derives their role in
//! the same transaction, as a rule save does, in batches of [`BATCH`] members, so an Entra ID
//! PATCH adding thousands of members costs a few dozen statements.

use super::events::notify_in_tx;
use super::scim::{member_events, rederive_members, write_role_changes, Derive};
use super::{audit_in_tx, new_id, on_db, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScimGroupRow {
    pub id: String,
    pub org_id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const GROUP_COLUMNS: &str =
    "id, org_id, display_name, external_id, version, created_at, updated_at";

/// Which groups a list reads, answered from an index.
#[derive(Debug, Clone, Copy)]
pub enum GroupIndex<'a> {
    All,
    Id(&'a str),
    /// Lower-cased.
    DisplayName(&'a str),
    ExternalId(&'a str),
}

/// What a PATCH or PUT changes in a group. Member ids are SCIM user ids; ids of no user of the
/// org are ignored.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub display_name: Option<String>,
    pub external_id: Option<Option<String>>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub replace: Option<Vec<String>>,
}

pub(super) fn numbered(first: usize, n: usize) -> String {
    (0..n)
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds (`$add` true) or removes the given SCIM users to or from the group, in batches, each
/// batch audited. Evaluates to the SCIM user ids that were in the batches (the members touched).
macro_rules! change_members {
    ($tx:expr, $org_id:expr, $group_id:expr, $ids:expr, $add:expr, $actor:expr, $now:expr) => {{
        for batch in $ids.chunks($crate::store::scim::BATCH) {
            let sql = if $add {
                format!(
                    "INSERT INTO scim_group_members (group_id, scim_user_id)
                     SELECT $1, id FROM scim_users WHERE org_id = $2 AND id IN ({})
                     ON CONFLICT DO NOTHING",
                    $crate::store::scim_groups::numbered(3, batch.len())
                )
            } else {
                format!(
                    "DELETE FROM scim_group_members WHERE group_id = $1
                     AND scim_user_id IN (SELECT id FROM scim_users WHERE org_id = $2 AND id IN ({}))",
                    $crate::store::scim_groups::numbered(3, batch.len())
                )
            };
            let mut q = sqlx::query(&sql).bind($group_id).bind($org_id);
            for id in batch {
                q = q.bind(id.as_str());
            }
            let n = q.execute(&mut *$tx).await?.rows_affected();
            let key = if $add { "added" } else { "removed" };
            let detail = serde_json::json!({"id": $group_id, key: batch, "changed": n});
            audit_in_tx!($tx, $org_id, $actor, "scim.group.members", detail, $now)?;
        }
    }};
}

/// Refreshes the `scim.groups` claim of the SCIM users named and re-derives their roles.
/// Evaluates to the orgsso user ids whose role or denial changed.
macro_rules! refresh_members {
    ($tx:expr, $org_id:expr, $now:expr, $scim_ids:expr, $derive:expr) => {{
        let mut changed: Vec<String> = Vec::new();
        for batch in $scim_ids.chunks($crate::store::scim::BATCH) {
            let list = $crate::store::scim_groups::numbered(2, batch.len());
            let sql = format!(
                "SELECT su.id, su.user_id, m.last_claims FROM scim_users su
                 JOIN memberships m ON m.org_id = su.org_id AND m.user_id = su.user_id
                 WHERE su.org_id = $1 AND su.id IN ({list})"
            );
            let mut q = sqlx::query_as::<_, (String, String, Option<String>)>(&sql).bind($org_id);
            for id in batch {
                q = q.bind(id.as_str());
            }
            let members = q.fetch_all(&mut *$tx).await?;
            let sql = format!(
                "SELECT gm.scim_user_id, g.display_name FROM scim_group_members gm JOIN scim_groups g ON g.id = gm.group_id
                 WHERE g.org_id = $1 AND gm.scim_user_id IN ({list}) ORDER BY g.display_name_key, g.id"
            );
            let mut q = sqlx::query_as::<_, (String, String)>(&sql).bind($org_id);
            for id in batch {
                q = q.bind(id.as_str());
            }
            let mut groups: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
            for (user, name) in q.fetch_all(&mut *$tx).await? {
                groups.entry(user).or_default().push(name);
            }
            if members.is_empty() {
                continue;
            }
            let sql = format!(
                "WITH v(user_id, claims) AS (VALUES {})
                 UPDATE memberships SET last_claims = v.claims, updated_at = $2
                 FROM v WHERE memberships.org_id = $1 AND memberships.user_id = v.user_id",
                $crate::store::rederive::placeholders(3, members.len(), 2)
            );
            let mut q = sqlx::query(&sql).bind($org_id).bind($now);
            let base = serde_json::json!({});
            for (scim_id, user_id, stored) in &members {
                let names = groups.remove(scim_id).unwrap_or_default();
                q = q.bind(user_id.as_str()).bind($crate::store::scim::claims_with_scim(stored.as_deref(), &base, None, names));
            }
            q.execute(&mut *$tx).await?;
            let user_ids: Vec<String> = members.into_iter().map(|(_, u, _)| u).collect();
            changed.extend(rederive_members!($tx, $org_id, $now, user_ids, $derive));
        }
        changed
    }};
}

impl Store {
    /// Creates a group with its members; their roles are re-derived.
    #[allow(clippy::too_many_arguments)]
    pub async fn scim_create_group(
        &self,
        org_id: &str,
        display_name: &str,
        external_id: Option<&str>,
        members: &[String],
        actor: &str,
        now: i64,
        derive: Derive<'_>,
    ) -> Result<ScimGroupRow> {
        let id = new_id();
        let db = self.db();
        let events = on_db!(db, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO scim_groups (id, org_id, display_name, display_name_key, external_id, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $6)")
                .bind(&id).bind(org_id).bind(display_name).bind(display_name.to_lowercase()).bind(external_id).bind(now)
                .execute(&mut *tx).await?;
            audit_in_tx!(tx, org_id, actor, "scim.group.create", serde_json::json!({"id": id, "displayName": display_name, "externalId": external_id}), now)?;
            change_members!(tx, org_id, &id, members, true, actor, now);
            let changed = refresh_members!(tx, org_id, now, members, derive);
            let events = member_events(org_id, &changed);
            for e in &events {
                notify_in_tx!(db, tx, e);
            }
            tx.commit().await?;
            events
        });
        for e in &events {
            self.announce(e);
        }
        Ok(ScimGroupRow {
            id,
            org_id: org_id.to_owned(),
            display_name: display_name.to_owned(),
            external_id: external_id.map(str::to_owned),
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn scim_group(&self, org_id: &str, id: &str) -> Result<Option<ScimGroupRow>> {
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, ScimGroupRow>(&format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE org_id = $1 AND id = $2"))
            .bind(org_id).bind(id).fetch_optional(p).await?),
        )
    }

    /// A group's members: (SCIM user id, userName), by id.
    pub async fn scim_group_members(&self, group_id: &str) -> Result<Vec<(String, String)>> {
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, (String, String)>(
            "SELECT su.id, su.user_name FROM scim_group_members gm JOIN scim_users su ON su.id = gm.scim_user_id
             WHERE gm.group_id = $1 ORDER BY su.id")
            .bind(group_id).fetch_all(p).await?),
        )
    }

    /// One page of the org's groups (ordered by id) answered from an index, and how many match.
    pub async fn scim_groups_page(
        &self,
        org_id: &str,
        index: GroupIndex<'_>,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<ScimGroupRow>)> {
        let (cond, value) = match index {
            GroupIndex::All => ("", None),
            GroupIndex::Id(v) => (" AND id = $2", Some(v)),
            GroupIndex::DisplayName(v) => (" AND display_name_key = $2", Some(v)),
            GroupIndex::ExternalId(v) => (" AND external_id = $2", Some(v)),
        };
        let n = if value.is_some() { 3 } else { 2 };
        let count_sql = format!("SELECT COUNT(*) FROM scim_groups WHERE org_id = $1{cond}");
        let page_sql = format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE org_id = $1{cond} ORDER BY id LIMIT ${n} OFFSET ${}",
            n + 1
        );
        Ok(on_db!(self.db(), p => {
            let mut count = sqlx::query_as::<_, (i64,)>(&count_sql).bind(org_id);
            let mut page = sqlx::query_as::<_, ScimGroupRow>(&page_sql).bind(org_id);
            if let Some(v) = value {
                count = count.bind(v);
                page = page.bind(v);
            }
            let (total,) = count.fetch_one(p).await?;
            let rows = if limit > 0 { page.bind(limit).bind(offset).fetch_all(p).await? } else { Vec::new() };
            (total, rows)
        }))
    }

    /// Every group of the org (at most `bound`, by id) for filters no index answers; `None`
    /// when there are more.
    pub async fn scim_groups_all(
        &self,
        org_id: &str,
        bound: i64,
    ) -> Result<Option<Vec<ScimGroupRow>>> {
        let rows = on_db!(self.db(), p => sqlx::query_as::<_, ScimGroupRow>(&format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE org_id = $1 ORDER BY id LIMIT $2"))
            .bind(org_id).bind(bound + 1).fetch_all(p).await?);
        Ok((rows.len() as i64 <= bound).then_some(rows))
    }

    /// Changes a group (a PATCH or PUT) when its version is still `expected_version` (if
    /// given): name, externalId, members added, removed or replaced. The members touched get
    /// their `scim.groups` claim refreshed and their roles re-derived. `None` when there is no
    /// such group or its version moved on.
    #[allow(clippy::too_many_arguments)]
    pub async fn scim_update_group(
        &self,
        org_id: &str,
        id: &str,
        expected_version: Option<i64>,
        change: &GroupChange,
        actor: &str,
        now: i64,
        derive: Derive<'_>,
    ) -> Result<Option<ScimGroupRow>> {
        let db = self.db();
        let result = on_db!(db, p => {
            let mut tx = p.begin().await?;
            // The write first: it locks the group row (PostgreSQL) or the database (SQLite),
            // so concurrent changes of one group apply one after the other.
            let row = sqlx::query_as::<_, ScimGroupRow>(&format!(
                "UPDATE scim_groups SET display_name = COALESCE($1, display_name), display_name_key = COALESCE($2, display_name_key),
                   external_id = CASE WHEN $3 THEN $4 ELSE external_id END, version = version + 1, updated_at = $5
                 WHERE org_id = $6 AND id = $7 RETURNING {GROUP_COLUMNS}"))
                .bind(change.display_name.as_deref()).bind(change.display_name.as_deref().map(str::to_lowercase))
                .bind(change.external_id.is_some()).bind(change.external_id.clone().flatten())
                .bind(now).bind(org_id).bind(id)
                .fetch_optional(&mut *tx).await?;
            match row {
                Some(row) if expected_version.is_none_or(|v| v + 1 == row.version) => {
                    let mut touched: Vec<String> = Vec::new();
                    let renamed = change.display_name.is_some();
                    if change.replace.is_some() || renamed {
                        let before: Vec<(String,)> = sqlx::query_as("SELECT scim_user_id FROM scim_group_members WHERE group_id = $1")
                            .bind(id).fetch_all(&mut *tx).await?;
                        touched.extend(before.into_iter().map(|(u,)| u));
                    }
                    if let Some(members) = &change.replace {
                        sqlx::query("DELETE FROM scim_group_members WHERE group_id = $1").bind(id).execute(&mut *tx).await?;
                        change_members!(tx, org_id, id, members, true, actor, now);
                        touched.extend(members.iter().cloned());
                    }
                    change_members!(tx, org_id, id, change.remove, false, actor, now);
                    change_members!(tx, org_id, id, change.add, true, actor, now);
                    touched.extend(change.remove.iter().cloned());
                    touched.extend(change.add.iter().cloned());
                    touched.sort();
                    touched.dedup();
                    let detail = serde_json::json!({"id": id, "displayName": row.display_name, "externalId": row.external_id,
                        "added": change.add.len(), "removed": change.remove.len(), "replaced": change.replace.as_ref().map(Vec::len)});
                    audit_in_tx!(tx, org_id, actor, "scim.group.update", detail, now)?;
                    let changed = refresh_members!(tx, org_id, now, touched, derive);
                    let events = member_events(org_id, &changed);
                    for e in &events {
                        notify_in_tx!(db, tx, e);
                    }
                    tx.commit().await?;
                    Some((row, events))
                }
                // Unknown, or changed since the client read it: nothing written.
                _ => {
                    tx.rollback().await?;
                    None
                }
            }
        });
        Ok(result.map(|(row, events)| {
            for e in &events {
                self.announce(e);
            }
            row
        }))
    }

    /// Deletes a group; its former members' roles are re-derived. False when there is none.
    pub async fn scim_delete_group(
        &self,
        org_id: &str,
        id: &str,
        actor: &str,
        now: i64,
        derive: Derive<'_>,
    ) -> Result<bool> {
        let db = self.db();
        let result = on_db!(db, p => {
            let mut tx = p.begin().await?;
            let members: Vec<(String,)> = sqlx::query_as("SELECT scim_user_id FROM scim_group_members WHERE group_id = $1")
                .bind(id).fetch_all(&mut *tx).await?;
            let gone: Option<(String,)> = sqlx::query_as("DELETE FROM scim_groups WHERE org_id = $1 AND id = $2 RETURNING display_name")
                .bind(org_id).bind(id).fetch_optional(&mut *tx).await?;
            match gone {
                Some((name,)) => {
                    audit_in_tx!(tx, org_id, actor, "scim.group.delete", serde_json::json!({"id": id, "displayName": name, "members": members.len()}), now)?;
                    let touched: Vec<String> = members.into_iter().map(|(u,)| u).collect();
                    let changed = refresh_members!(tx, org_id, now, touched, derive);
                    let events = member_events(org_id, &changed);
                    for e in &events {
                        notify_in_tx!(db, tx, e);
                    }
                    tx.commit().await?;
                    Some(events)
                }
                None => None,
            }
        });
        Ok(match result {
            Some(events) => {
                for e in &events {
                    self.announce(e);
                }
                true
            }
            None => false,
        })
    }
}
