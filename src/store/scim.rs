//! SCIM 2.0 provisioning rows (migration 0009): the org's SCIM tokens (hashed), the User
//! resources with the orgsso user and membership made for each, and the effects of a change
//! on that member, all in the change's transaction: the claims the rules see (the `scim` key
//! of the membership's last claims), the role re-derived by the caller's function, and
//! deprovisioning (`memberships.deprovisioned_at`, sessions deleted, `MemberRolesChanged`
//! sent by NOTIFY). Groups and their members are in `scim_groups.rs`.

use super::events::{notify_in_tx, Event};
use super::{audit_in_tx, new_id, on_db, Result, Store};
use crate::roles::{MemberClaims, Role, RoleChange};

/// Rows per statement for member batches (ids, role changes): far below both databases'
/// bound-parameter limits.
pub(super) const BATCH: usize = 500;

/// More members changed at once than this: one org-wide `MemberRolesChanged` instead of one
/// event per member.
const EVENTS_PER_MEMBER_MAX: usize = 50;

/// The re-derivation the caller passes in (the org's compiled rules, `roles::rederive`).
pub type Derive<'a> = &'a (dyn Fn(&[MemberClaims]) -> Vec<RoleChange> + Send + Sync);

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ScimToken)]
pub struct ScimTokenRow {
    pub id: String,
    #[serde(skip)]
    pub org_id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A provisioned member as the console lists them.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ProvisionedRow {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub updated_at: i64,
    pub role: String,
    pub last_login_at: Option<i64>,
    pub deprovisioned_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScimUserRow {
    pub id: String,
    pub org_id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub document: String,
    pub version: i64,
    pub user_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(super) const USER_COLUMNS: &str =
    "id, org_id, user_name, external_id, active, document, version, user_id, created_at, updated_at";

/// SCIM at sign-in, as [`Store::scim_sign_in_state`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInState {
    /// The identity signed in before.
    pub returning: Option<Returning>,
    /// The org's directory provisioned anyone at all.
    pub org_has_scim: bool,
}

/// A returning identity's member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returning {
    pub user_id: String,
    /// The org's directory deactivated or deleted the member.
    pub deprovisioned: bool,
    /// The org's directory provisioned the member (a SCIM user is linked to them).
    pub provisioned: bool,
}

/// A User resource as the service validated it, for a create or a replace.
#[derive(Debug, Clone)]
pub struct ScimUserWrite<'a> {
    pub org_id: &'a str,
    pub user_name: &'a str,
    pub external_id: Option<&'a str>,
    /// The work email, lower-cased: the member's email and the email index.
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub active: bool,
    /// The resource's JSON document (text).
    pub document: &'a str,
    /// What the rules see of the resource besides its groups (the `scim` claim); the store adds
    /// `groups`.
    pub scim_claims: serde_json::Value,
    /// The SCIM token's name, the audit actor.
    pub actor: &'a str,
    pub now: i64,
}

/// Which rows a list reads, answered from an index.
#[derive(Debug, Clone, Copy)]
pub enum UserIndex<'a> {
    All,
    Id(&'a str),
    /// Lower-cased.
    UserName(&'a str),
    ExternalId(&'a str),
    /// Lower-cased.
    Email(&'a str),
}

/// Sets `claims.scim` to `scim` plus `groups`, keeping the rest (the member's sign-in claims).
/// Claims that are not a JSON object (never signed in) start from `base`.
pub(super) fn claims_with_scim(
    stored: Option<&str>,
    base: &serde_json::Value,
    scim: Option<&serde_json::Value>,
    groups: Vec<String>,
) -> String {
    let mut claims = stored
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| base.clone());
    let mut scim = scim
        .cloned()
        .or_else(|| claims.get("scim").cloned())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    scim["groups"] = serde_json::json!(groups);
    claims["scim"] = scim;
    claims.to_string()
}

/// Writes role changes (role, or the rules' denial) with one statement per [`BATCH`], audits
/// them with actor `rules`, and deletes the sessions of members now denied. Runs inside `$tx`;
/// evaluates to the sessions ended.
macro_rules! write_role_changes {
    ($tx:expr, $org_id:expr, $now:expr, $changes:expr) => {{
        let mut ended: u64 = 0;
        for batch in $changes.chunks($crate::store::scim::BATCH) {
            let sql = format!(
                "WITH v(user_id, role, denied_at) AS (VALUES {})
                 UPDATE memberships SET role = v.role, denied_at = v.denied_at, updated_at = $2
                 FROM v WHERE memberships.org_id = $1 AND memberships.user_id = v.user_id",
                $crate::store::rederive::placeholders(3, batch.len(), 3)
            );
            let mut q = sqlx::query(&sql).bind($org_id).bind($now);
            for c in batch {
                let denied_at = (c.to == $crate::roles::Outcome::Deny).then_some($now);
                q = q.bind(&c.user_id).bind(c.new_role().as_str()).bind(denied_at);
            }
            q.execute(&mut *$tx).await?;
            let sql = format!(
                "INSERT INTO audit_events (org_id, actor, action, created_at, detail) VALUES {}",
                (0..batch.len()).map(|i| format!("($1, $2, $3, $4, ${})", 5 + i)).collect::<Vec<_>>().join(", ")
            );
            let mut q = sqlx::query(&sql).bind($org_id).bind("rules").bind("member.role_change").bind($now);
            for c in batch {
                let change = serde_json::json!({"user_id": c.user_id, "from": c.from.as_str(), "to": c.to.as_str(), "rule": c.rule, "cause": "scim"});
                q = q.bind(change.to_string());
            }
            q.execute(&mut *$tx).await?;
            for c in batch.iter().filter(|c| c.to == $crate::roles::Outcome::Deny) {
                ended += sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND user_id = $2")
                    .bind($org_id)
                    .bind(&c.user_id)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
            }
        }
        ended
    }};
}
pub(super) use write_role_changes;

/// Reads the members named (orgsso user ids) with their stored claims, after their `scim`
/// claim was refreshed, and re-derives their roles: the changes are written and audited.
/// Evaluates to the user ids whose outcome changed.
macro_rules! rederive_members {
    ($tx:expr, $org_id:expr, $now:expr, $user_ids:expr, $derive:expr) => {{
        let mut changed: Vec<String> = Vec::new();
        for batch in $user_ids.chunks($crate::store::scim::BATCH) {
            let sql = format!(
                "SELECT m.user_id, u.email, u.name, m.role, m.denied_at, m.last_claims
                 FROM memberships m JOIN users u ON u.id = m.user_id
                 WHERE m.org_id = $1 AND m.last_claims IS NOT NULL AND m.user_id IN ({})",
                (0..batch.len())
                    .map(|i| format!("${}", 2 + i))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut q = sqlx::query_as::<
                _,
                (
                    String,
                    Option<String>,
                    Option<String>,
                    String,
                    Option<i64>,
                    String,
                ),
            >(&sql)
            .bind($org_id);
            for id in batch {
                q = q.bind(id.as_str());
            }
            let rows = q.fetch_all(&mut *$tx).await?;
            let members: Vec<$crate::roles::MemberClaims> = rows
                .into_iter()
                .filter_map(|(user_id, email, name, role, denied_at, claims)| {
                    Some($crate::roles::MemberClaims {
                        label: email.or(name).unwrap_or_else(|| user_id.clone()),
                        role: role.parse::<$crate::roles::Role>().ok()?,
                        user_id,
                        denied: denied_at.is_some(),
                        claims,
                    })
                })
                .collect();
            let changes = ($derive)(&members);
            write_role_changes!($tx, $org_id, $now, changes);
            changed.extend(changes.into_iter().map(|c| c.user_id));
        }
        changed
    }};
}
pub(super) use rederive_members;

/// The events for members whose access changed: one per member, or one for the org.
pub(super) fn member_events(org_id: &str, user_ids: &[String]) -> Vec<Event> {
    if user_ids.len() > EVENTS_PER_MEMBER_MAX {
        return vec![Event::MemberRolesChanged {
            org_id: org_id.to_owned(),
            user_id: None,
        }];
    }
    user_ids
        .iter()
        .map(|u| Event::MemberRolesChanged {
            org_id: org_id.to_owned(),
            user_id: Some(u.clone()),
        })
        .collect()
}

/// Marks a member deprovisioned (ending their sessions) or lifts it, and audits it. Inside `$tx`.
macro_rules! set_deprovisioned {
    ($tx:expr, $org_id:expr, $user_id:expr, $scim_id:expr, $actor:expr, $deprovision:expr, $now:expr) => {{
        if $deprovision {
            sqlx::query("UPDATE memberships SET deprovisioned_at = $1, updated_at = $1 WHERE org_id = $2 AND user_id = $3 AND deprovisioned_at IS NULL")
                .bind($now).bind($org_id).bind($user_id).execute(&mut *$tx).await?;
            let ended = sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND user_id = $2")
                .bind($org_id).bind($user_id).execute(&mut *$tx).await?.rows_affected();
            let detail = serde_json::json!({"id": $scim_id, "user_id": $user_id, "sessions_ended": ended});
            audit_in_tx!($tx, $org_id, $actor, "scim.user.deprovision", detail, $now)?;
        } else {
            sqlx::query("UPDATE memberships SET deprovisioned_at = NULL, updated_at = $1 WHERE org_id = $2 AND user_id = $3")
                .bind($now).bind($org_id).bind($user_id).execute(&mut *$tx).await?;
            let detail = serde_json::json!({"id": $scim_id, "user_id": $user_id});
            audit_in_tx!($tx, $org_id, $actor, "scim.user.reactivate", detail, $now)?;
        }
    }};
}

impl Store {
    pub async fn insert_scim_token(
        &self,
        row: &ScimTokenRow,
        token_hash: &str,
        actor: &str,
    ) -> Result<()> {
        let detail = serde_json::json!({"id": row.id, "name": row.name});
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO scim_tokens (id, org_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&row.id).bind(&row.org_id).bind(&row.name).bind(token_hash).bind(row.created_at)
                .execute(&mut *tx).await?;
            audit_in_tx!(tx, &row.org_id, actor, "scim.token.create", detail, row.created_at)?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn scim_tokens(&self, org_id: &str) -> Result<Vec<ScimTokenRow>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, ScimTokenRow>(
            "SELECT id, org_id, name, created_at, last_used_at FROM scim_tokens WHERE org_id = $1 ORDER BY created_at, id")
            .bind(org_id).fetch_all(p).await?))
    }

    /// Revokes a token of the org. False when the org has no such token.
    pub async fn delete_scim_token(
        &self,
        org_id: &str,
        id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool> {
        Ok(on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let gone: Option<(String,)> = sqlx::query_as("DELETE FROM scim_tokens WHERE org_id = $1 AND id = $2 RETURNING name")
                .bind(org_id).bind(id).fetch_optional(&mut *tx).await?;
            if let Some((name,)) = &gone {
                audit_in_tx!(tx, org_id, actor, "scim.token.revoke", serde_json::json!({"id": id, "name": name}), now)?;
            }
            tx.commit().await?;
            gone.is_some()
        }))
    }

    /// The token with this hash, whichever org it belongs to (the caller checks the org).
    /// Its `last_used_at` is moved to `now` when it is more than a minute old, so a sync does
    /// not write on every request.
    pub async fn scim_token_by_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<ScimTokenRow>> {
        let row = on_db!(self.db(), p => sqlx::query_as::<_, ScimTokenRow>(
            "SELECT id, org_id, name, created_at, last_used_at FROM scim_tokens WHERE token_hash = $1")
            .bind(token_hash).fetch_optional(p).await?);
        if let Some(r) = &row {
            if r.last_used_at.is_none_or(|t| t < now - 60) {
                on_db!(self.db(), p => {
                    sqlx::query("UPDATE scim_tokens SET last_used_at = $1 WHERE id = $2")
                        .bind(now).bind(&r.id).execute(p).await?;
                });
            }
        }
        Ok(row)
    }

    /// Provisions a user: the orgsso user, their membership (source `scim`, `role` and the
    /// rules' denial as the caller derived them from `claims`, deprovisioned at once when the
    /// resource is inactive) and the SCIM row, in one transaction. A userName taken in the org
    /// (any case) is a `Conflict`.
    pub async fn scim_create_user(
        &self,
        w: &ScimUserWrite<'_>,
        role: Role,
        denied: bool,
    ) -> Result<ScimUserRow> {
        let id = new_id();
        let user_id = new_id();
        let claims = claims_with_scim(
            None,
            &serde_json::json!({"email": w.email, "name": w.display_name}),
            Some(&w.scim_claims),
            Vec::new(),
        );
        let detail = serde_json::json!({"id": id, "user_id": user_id, "userName": w.user_name, "externalId": w.external_id, "active": w.active, "role": role.as_str(), "denied": denied});
        let inactive_at = (!w.active).then_some(w.now);
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO users (id, email, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
                .bind(&user_id).bind(w.email).bind(w.display_name).bind(w.now).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO memberships (org_id, user_id, role, source, last_claims, created_at, updated_at, denied_at, deprovisioned_at)
                 VALUES ($1, $2, $3, 'scim', $4, $5, $5, $6, $7)")
                .bind(w.org_id).bind(&user_id).bind(role.as_str()).bind(&claims).bind(w.now)
                .bind(denied.then_some(w.now)).bind(inactive_at)
                .execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO scim_users (id, org_id, user_name, user_name_key, external_id, email_key, active, document, version, user_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $10)")
                .bind(&id).bind(w.org_id).bind(w.user_name).bind(w.user_name.to_lowercase()).bind(w.external_id)
                .bind(w.email).bind(w.active).bind(w.document).bind(&user_id).bind(w.now)
                .execute(&mut *tx).await?;
            audit_in_tx!(tx, w.org_id, w.actor, "scim.user.create", detail, w.now)?;
            tx.commit().await?;
        });
        Ok(ScimUserRow {
            id,
            org_id: w.org_id.to_owned(),
            user_name: w.user_name.to_owned(),
            external_id: w.external_id.map(str::to_owned),
            active: w.active,
            document: w.document.to_owned(),
            version: 1,
            user_id,
            created_at: w.now,
            updated_at: w.now,
        })
    }

    /// Provisions a user who is a member already (they signed in before the directory pushed
    /// them): the SCIM row is attached to their orgsso user, the `scim` claim added to their
    /// last claims and their role re-derived; inactive deprovisions them at once. A userName
    /// taken in the org, or a member attached already, is a `Conflict`.
    pub async fn scim_adopt_member(
        &self,
        w: &ScimUserWrite<'_>,
        user_id: &str,
        derive: Derive<'_>,
    ) -> Result<ScimUserRow> {
        let id = new_id();
        let detail = serde_json::json!({"id": id, "user_id": user_id, "userName": w.user_name, "externalId": w.external_id, "active": w.active, "adopted": true});
        let db = self.db();
        let events = on_db!(db, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO scim_users (id, org_id, user_name, user_name_key, external_id, email_key, active, document, version, user_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $10)")
                .bind(&id).bind(w.org_id).bind(w.user_name).bind(w.user_name.to_lowercase()).bind(w.external_id)
                .bind(w.email).bind(w.active).bind(w.document).bind(user_id).bind(w.now)
                .execute(&mut *tx).await?;
            let (stored,): (Option<String>,) = sqlx::query_as(
                "SELECT last_claims FROM memberships WHERE org_id = $1 AND user_id = $2")
                .bind(w.org_id).bind(user_id).fetch_one(&mut *tx).await?;
            let claims = claims_with_scim(
                stored.as_deref(),
                &serde_json::json!({"email": w.email, "name": w.display_name}),
                Some(&w.scim_claims),
                Vec::new(),
            );
            sqlx::query("UPDATE memberships SET last_claims = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4")
                .bind(&claims).bind(w.now).bind(w.org_id).bind(user_id).execute(&mut *tx).await?;
            audit_in_tx!(tx, w.org_id, w.actor, "scim.user.create", detail, w.now)?;
            let mut changed = rederive_members!(tx, w.org_id, w.now, [user_id.to_owned()], derive);
            if !w.active {
                set_deprovisioned!(tx, w.org_id, user_id, &id, w.actor, true, w.now);
                if !changed.iter().any(|u| u == user_id) {
                    changed.push(user_id.to_owned());
                }
            }
            let events = member_events(w.org_id, &changed);
            for e in &events {
                notify_in_tx!(db, tx, e);
            }
            tx.commit().await?;
            events
        });
        for e in &events {
            self.announce(e);
        }
        Ok(ScimUserRow {
            id,
            org_id: w.org_id.to_owned(),
            user_name: w.user_name.to_owned(),
            external_id: w.external_id.map(str::to_owned),
            active: w.active,
            document: w.document.to_owned(),
            version: 1,
            user_id: user_id.to_owned(),
            created_at: w.now,
            updated_at: w.now,
        })
    }

    pub async fn scim_user(&self, org_id: &str, id: &str) -> Result<Option<ScimUserRow>> {
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, ScimUserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM scim_users WHERE org_id = $1 AND id = $2"))
            .bind(org_id).bind(id).fetch_optional(p).await?),
        )
    }

    /// The groups a SCIM user is in: (group id, displayName), by name.
    pub async fn scim_user_groups(&self, scim_user_id: &str) -> Result<Vec<(String, String)>> {
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, (String, String)>(
            "SELECT g.id, g.display_name FROM scim_group_members gm JOIN scim_groups g ON g.id = gm.group_id
             WHERE gm.scim_user_id = $1 ORDER BY g.display_name_key, g.id")
            .bind(scim_user_id).fetch_all(p).await?),
        )
    }

    /// The groups of several SCIM users at once (a list page): user id → (group id,
    /// displayName), by name.
    pub async fn scim_groups_of_users(
        &self,
        scim_user_ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<(String, String)>>> {
        let mut out: std::collections::HashMap<String, Vec<(String, String)>> =
            std::collections::HashMap::new();
        for batch in scim_user_ids.chunks(BATCH) {
            let sql = format!(
                "SELECT gm.scim_user_id, g.id, g.display_name FROM scim_group_members gm JOIN scim_groups g ON g.id = gm.group_id
                 WHERE gm.scim_user_id IN ({}) ORDER BY g.display_name_key, g.id",
                super::scim_groups::numbered(1, batch.len())
            );
            let rows: Vec<(String, String, String)> = on_db!(self.db(), p => {
                let mut q = sqlx::query_as(&sql);
                for id in batch {
                    q = q.bind(id.as_str());
                }
                q.fetch_all(p).await?
            });
            for (user, gid, name) in rows {
                out.entry(user).or_default().push((gid, name));
            }
        }
        Ok(out)
    }

    /// One page of the org's users (ordered by id) answered from an index, and how many match.
    pub async fn scim_users_page(
        &self,
        org_id: &str,
        index: UserIndex<'_>,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<ScimUserRow>)> {
        let (cond, value) = match index {
            UserIndex::All => ("", None),
            UserIndex::Id(v) => (" AND id = $2", Some(v)),
            UserIndex::UserName(v) => (" AND user_name_key = $2", Some(v)),
            UserIndex::ExternalId(v) => (" AND external_id = $2", Some(v)),
            UserIndex::Email(v) => (" AND email_key = $2", Some(v)),
        };
        let n = if value.is_some() { 3 } else { 2 };
        let count_sql = format!("SELECT COUNT(*) FROM scim_users WHERE org_id = $1{cond}");
        let page_sql = format!(
            "SELECT {USER_COLUMNS} FROM scim_users WHERE org_id = $1{cond} ORDER BY id LIMIT ${n} OFFSET ${}",
            n + 1
        );
        Ok(on_db!(self.db(), p => {
            let mut count = sqlx::query_as::<_, (i64,)>(&count_sql).bind(org_id);
            let mut page = sqlx::query_as::<_, ScimUserRow>(&page_sql).bind(org_id);
            if let Some(v) = value {
                count = count.bind(v);
                page = page.bind(v);
            }
            let (total,) = count.fetch_one(p).await?;
            let rows = if limit > 0 { page.bind(limit).bind(offset).fetch_all(p).await? } else { Vec::new() };
            (total, rows)
        }))
    }

    /// Every user of the org (at most `bound`, ordered by id), with their groups'
    /// displayNames, for filters no index answers. `None` when the org has more than `bound`.
    pub async fn scim_users_all(
        &self,
        org_id: &str,
        bound: i64,
    ) -> Result<Option<Vec<(ScimUserRow, Vec<(String, String)>)>>> {
        let (rows, memberships) = on_db!(self.db(), p => {
            let rows = sqlx::query_as::<_, ScimUserRow>(&format!(
                "SELECT {USER_COLUMNS} FROM scim_users WHERE org_id = $1 ORDER BY id LIMIT $2"))
                .bind(org_id).bind(bound + 1).fetch_all(p).await?;
            let memberships = sqlx::query_as::<_, (String, String, String)>(
                "SELECT gm.scim_user_id, g.id, g.display_name FROM scim_group_members gm JOIN scim_groups g ON g.id = gm.group_id
                 WHERE g.org_id = $1 ORDER BY g.display_name_key, g.id")
                .bind(org_id).fetch_all(p).await?;
            (rows, memberships)
        });
        if rows.len() as i64 > bound {
            return Ok(None);
        }
        let mut groups: std::collections::HashMap<String, Vec<(String, String)>> =
            std::collections::HashMap::new();
        for (user, gid, name) in memberships {
            groups.entry(user).or_default().push((gid, name));
        }
        Ok(Some(
            rows.into_iter()
                .map(|r| {
                    let g = groups.remove(&r.id).unwrap_or_default();
                    (r, g)
                })
                .collect(),
        ))
    }

    /// Replaces a user's resource (a PUT, or a PATCH applied by the caller), when its version
    /// is still `expected_version` (if given). The member's email, name and `scim` claim follow;
    /// their role is re-derived by `derive`; going inactive deprovisions them (membership
    /// marked, sessions deleted), going active again lifts it. `Ok(None)` when there is no such
    /// user or its version moved on (the caller tells them apart). A userName taken by
    /// another user is a `Conflict`.
    pub async fn scim_replace_user(
        &self,
        id: &str,
        expected_version: Option<i64>,
        w: &ScimUserWrite<'_>,
        derive: Derive<'_>,
    ) -> Result<Option<ScimUserRow>> {
        let db = self.db();
        let result = on_db!(db, p => {
            let mut tx = p.begin().await?;
            let before: Option<(bool, i64)> = sqlx::query_as(
                "SELECT active, version FROM scim_users WHERE org_id = $1 AND id = $2")
                .bind(w.org_id).bind(id).fetch_optional(&mut *tx).await?;
            match before {
                Some((was_active, version)) if expected_version.is_none_or(|v| v == version) => {
                    let row = sqlx::query_as::<_, ScimUserRow>(&format!(
                        "UPDATE scim_users SET user_name = $1, user_name_key = $2, external_id = $3, email_key = $4, active = $5,
                           document = $6, version = version + 1, updated_at = $7
                         WHERE org_id = $8 AND id = $9 RETURNING {USER_COLUMNS}"))
                        .bind(w.user_name).bind(w.user_name.to_lowercase()).bind(w.external_id).bind(w.email)
                        .bind(w.active).bind(w.document).bind(w.now).bind(w.org_id).bind(id)
                        .fetch_one(&mut *tx).await?;
                    let user_id = row.user_id.clone();
                    // The profile follows the directory until the member signs in; the IdP's
                    // claims win from then on (as `enrol` writes them).
                    sqlx::query(
                        "UPDATE users SET email = $1, name = $2, updated_at = $3 WHERE id = $4
                           AND NOT EXISTS (SELECT 1 FROM identities WHERE user_id = $4)")
                        .bind(w.email).bind(w.display_name).bind(w.now).bind(&user_id).execute(&mut *tx).await?;
                    let (stored,): (Option<String>,) = sqlx::query_as(
                        "SELECT last_claims FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(w.org_id).bind(&user_id).fetch_optional(&mut *tx).await?.unwrap_or((None,));
                    let groups: Vec<(String,)> = sqlx::query_as(
                        "SELECT g.display_name FROM scim_group_members gm JOIN scim_groups g ON g.id = gm.group_id
                         WHERE gm.scim_user_id = $1 ORDER BY g.display_name_key")
                        .bind(id).fetch_all(&mut *tx).await?;
                    let claims = claims_with_scim(
                        stored.as_deref(),
                        &serde_json::json!({"email": w.email, "name": w.display_name}),
                        Some(&w.scim_claims),
                        groups.into_iter().map(|(g,)| g).collect(),
                    );
                    sqlx::query("UPDATE memberships SET last_claims = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4")
                        .bind(&claims).bind(w.now).bind(w.org_id).bind(&user_id).execute(&mut *tx).await?;
                    let mut changed = rederive_members!(tx, w.org_id, w.now, [user_id.clone()], derive);
                    let detail = serde_json::json!({"id": id, "user_id": user_id, "userName": w.user_name, "externalId": w.external_id, "active": w.active});
                    audit_in_tx!(tx, w.org_id, w.actor, "scim.user.update", detail, w.now)?;
                    if was_active != w.active {
                        set_deprovisioned!(tx, w.org_id, &user_id, id, w.actor, !w.active, w.now);
                        if !changed.contains(&user_id) {
                            changed.push(user_id.clone());
                        }
                    }
                    let events = member_events(w.org_id, &changed);
                    for e in &events {
                        notify_in_tx!(db, tx, e);
                    }
                    tx.commit().await?;
                    Some((row, events))
                }
                _ => None,
            }
        });
        Ok(result.map(|(row, events)| {
            for e in &events {
                self.announce(e);
            }
            row
        }))
    }

    /// Deletes a SCIM user: the resource and its group memberships go, the member stays
    /// (role, history) but is deprovisioned: sessions deleted, sign-ins refused. False when
    /// there is no such user.
    pub async fn scim_delete_user(
        &self,
        org_id: &str,
        id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool> {
        let db = self.db();
        let event = on_db!(db, p => {
            let mut tx = p.begin().await?;
            let gone: Option<(String, String)> = sqlx::query_as(
                "DELETE FROM scim_users WHERE org_id = $1 AND id = $2 RETURNING user_id, user_name")
                .bind(org_id).bind(id).fetch_optional(&mut *tx).await?;
            let event = match gone {
                Some((user_id, user_name)) => {
                    audit_in_tx!(tx, org_id, actor, "scim.user.delete", serde_json::json!({"id": id, "user_id": user_id, "userName": user_name}), now)?;
                    set_deprovisioned!(tx, org_id, &user_id, id, actor, true, now);
                    let e = Event::MemberRolesChanged { org_id: org_id.to_owned(), user_id: Some(user_id) };
                    notify_in_tx!(db, tx, e);
                    Some(e)
                }
                None => None,
            };
            tx.commit().await?;
            event
        });
        if let Some(e) = &event {
            self.announce(e);
        }
        Ok(event.is_some())
    }

    /// The orgsso user an identity (issuer, subject) signs in as, if it was seen before.
    pub async fn identity_user(&self, issuer: &str, subject: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = on_db!(self.db(), p => sqlx::query_as(
            "SELECT user_id FROM identities WHERE issuer = $1 AND subject = $2")
            .bind(issuer).bind(subject).fetch_optional(p).await?);
        Ok(row.map(|(u,)| u))
    }

    /// What a sign-in needs to know of SCIM, in one statement (the callback is a hot path, and
    /// most orgs have no directory): the identity's orgsso user if it was seen before, whether
    /// the org's directory deprovisioned or provisioned that member, and whether the org has
    /// any SCIM user at all (if not, a first sign-in has nothing to be linked to).
    pub async fn scim_sign_in_state(
        &self,
        org_id: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<SignInState> {
        let (user_id, deprovisioned_at, scim_id, org_has_scim): (
            Option<String>,
            Option<i64>,
            Option<String>,
            bool,
        ) = on_db!(self.db(), p => sqlx::query_as(
            "SELECT i.user_id, m.deprovisioned_at, s.id,
                    EXISTS (SELECT 1 FROM scim_users WHERE org_id = $1)
             FROM (SELECT 1 AS one) AS always
             LEFT JOIN identities i ON i.issuer = $2 AND i.subject = $3
             LEFT JOIN memberships m ON m.org_id = $1 AND m.user_id = i.user_id
             LEFT JOIN scim_users s ON s.org_id = $1 AND s.user_id = i.user_id")
            .bind(org_id).bind(issuer).bind(subject).fetch_one(p).await?);
        Ok(SignInState {
            returning: user_id.map(|user_id| Returning {
                user_id,
                deprovisioned: deprovisioned_at.is_some(),
                provisioned: scim_id.is_some(),
            }),
            org_has_scim,
        })
    }

    /// The SCIM user provisioned as this orgsso user in the org.
    pub async fn scim_user_of(&self, org_id: &str, user_id: &str) -> Result<Option<ScimUserRow>> {
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, ScimUserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM scim_users WHERE org_id = $1 AND user_id = $2"))
            .bind(org_id).bind(user_id).fetch_optional(p).await?),
        )
    }

    /// Attaches a first-seen identity to a provisioned member (no second member is made),
    /// audited with how it was matched. False when the identity was attached meanwhile (a
    /// concurrent first sign-in): the caller goes on with whichever user it has.
    pub async fn scim_link_identity(
        &self,
        org_id: &str,
        issuer: &str,
        subject: &str,
        user_id: &str,
        via: &serde_json::Value,
        now: i64,
    ) -> Result<bool> {
        Ok(on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let won = sqlx::query(
                "INSERT INTO identities (issuer, subject, user_id, created_at, last_login_at) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (issuer, subject) DO NOTHING")
                .bind(issuer).bind(subject).bind(user_id).bind(now)
                .execute(&mut *tx).await?.rows_affected() == 1;
            if won {
                let detail = serde_json::json!({"user_id": user_id, "issuer": issuer, "subject": subject, "matched": via});
                audit_in_tx!(tx, org_id, "scim", "scim.user.link", detail, now)?;
            }
            tx.commit().await?;
            won
        }))
    }

    /// The org's members provisioned by SCIM, with their last sign-in, for the console.
    pub async fn scim_provisioned(&self, org_id: &str, limit: i64) -> Result<Vec<ProvisionedRow>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, ProvisionedRow>(
            "SELECT su.id, su.user_name, su.external_id, su.active, su.updated_at, m.role, m.last_login_at, m.deprovisioned_at
             FROM scim_users su JOIN memberships m ON m.org_id = su.org_id AND m.user_id = su.user_id
             WHERE su.org_id = $1 ORDER BY su.user_name_key LIMIT $2")
            .bind(org_id).bind(limit).fetch_all(p).await?))
    }

    /// How many users and groups the org's directory has provisioned.
    pub async fn scim_counts(&self, org_id: &str) -> Result<(i64, i64)> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, (i64, i64)>(
            "SELECT (SELECT COUNT(*) FROM scim_users WHERE org_id = $1), (SELECT COUNT(*) FROM scim_groups WHERE org_id = $1)")
            .bind(org_id).fetch_one(p).await?))
    }

    /// Whether the member is deprovisioned in the org (`None`: no such member).
    pub async fn member_deprovisioned(&self, org_id: &str, user_id: &str) -> Result<Option<bool>> {
        let row: Option<(Option<i64>,)> = on_db!(self.db(), p => sqlx::query_as(
            "SELECT deprovisioned_at FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id).bind(user_id).fetch_optional(p).await?);
        Ok(row.map(|(d,)| d.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_scim_claim_is_set_and_the_rest_kept() {
        let base = json!({"email": "a@x.test"});
        let scim = json!({"userName": "a@x.test"});
        #[rustfmt::skip]
        #[allow(clippy::type_complexity)]
        let cases: Vec<(Option<&str>, Option<&serde_json::Value>, Vec<&str>, serde_json::Value)> = vec![
            // Never signed in: the base with the scim claim.
            (None, Some(&scim), vec!["Eng"], json!({"email": "a@x.test", "scim": {"userName": "a@x.test", "groups": ["Eng"]}})),
            // Signed in: their claims kept, scim replaced.
            (Some(r#"{"sub": "s", "scim": {"userName": "old", "groups": []}}"#), Some(&scim), vec![], json!({"sub": "s", "scim": {"userName": "a@x.test", "groups": []}})),
            // Only the groups change: the stored scim attributes stay.
            (Some(r#"{"sub": "s", "scim": {"userName": "old", "groups": []}}"#), None, vec!["A", "B"], json!({"sub": "s", "scim": {"userName": "old", "groups": ["A", "B"]}})),
            // Unreadable stored claims: the base.
            (Some("not json"), None, vec![], json!({"email": "a@x.test", "scim": {"groups": []}})),
        ];
        for (stored, scim, groups, want) in cases {
            let got: serde_json::Value = serde_json::from_str(&claims_with_scim(
                stored,
                &base,
                scim,
                groups.into_iter().map(str::to_owned).collect(),
            ))
            .unwrap();
            assert_eq!(got, want, "{stored:?}");
        }
    }

    #[test]
    fn many_members_make_one_org_event() {
        let few: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        assert_eq!(member_events("o", &few).len(), 3);
        let many: Vec<String> = (0..500).map(|i| i.to_string()).collect();
        assert_eq!(
            member_events("o", &many),
            vec![Event::MemberRolesChanged {
                org_id: "o".into(),
                user_id: None
            }]
        );
    }
}
