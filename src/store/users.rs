use super::events::{notify_in_tx, Event};
use super::sessions::{insert_sql, sid_hash, SessionDraft, SESSION_REFUSED};
use super::{enrol_pg, new_id, on_db, Db, Result, Store, StoreError};
use crate::roles::Role;
use crate::session::keys::USER;

/// What a verified sign-in tells the store.
#[derive(Debug, Clone)]
pub struct NewLogin<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub org_id: &'a str,
    pub connection_id: &'a str,
    pub role: Role,
    /// The sign-in's claims (ID token filled in from userinfo) as JSON, kept on the membership
    /// for the rule dry run.
    pub claims_json: &'a str,
    pub now: i64,
}

#[derive(Debug, Clone)]
pub struct EnrolOutcome {
    pub user_id: String,
    pub new_user: bool,
    pub previous_role: Option<Role>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Member)]
pub struct MemberRow {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub source: String,
    pub last_login_at: Option<i64>,
    /// When a rule save denied the member: the membership is kept but cannot be used.
    pub denied_at: Option<i64>,
    /// When the org's directory (SCIM) deactivated or deleted the member.
    pub deprovisioned_at: Option<i64>,
}

/// A member's last sign-in claims (JSON text), for the dry run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecentClaims {
    pub user_id: String,
    pub email: Option<String>,
    pub last_login_at: i64,
    pub claims: String,
}

/// The user id of an identity and, in the org being signed in to, the role and `denied_at` of
/// its membership before this sign-in (`None`: no membership).
type Enrolled = (String, Option<String>, Option<i64>);

/// Columns that read, with a row of `identities`, its user's membership in the org bound as
/// `$org` (a placeholder such as `"$4"`).
macro_rules! membership_before {
    ($org:literal) => {
        concat!(
            "(SELECT role FROM memberships WHERE org_id = ",
            $org,
            " AND user_id = identities.user_id), ",
            "(SELECT denied_at FROM memberships WHERE org_id = ",
            $org,
            " AND user_id = identities.user_id)"
        )
    };
}

/// A sign-in's membership from `$rows` (org, user, role, 'sso', connection, now, claims, now,
/// now): its role set, a denial lifted. `enrol_pg` uses it too.
macro_rules! membership_upsert {
    ($rows:literal) => {
        concat!(
            "INSERT INTO memberships (org_id, user_id, role, source, connection_id, last_login_at, last_claims, created_at, updated_at)
     ", $rows, "
     ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role, source = 'sso', denied_at = NULL,
       connection_id = excluded.connection_id, last_login_at = excluded.last_login_at,
       last_claims = excluded.last_claims, updated_at = excluded.updated_at"
        )
    };
}
pub(super) use membership_upsert;

impl Store {
    /// Finds or creates the user for (issuer, subject), refreshes their profile and sets their
    /// membership role, all in one transaction. Concurrent first sign-ins of one identity make
    /// exactly one user: the identity's primary key decides, and a loser adopts the winner.
    pub async fn enrol(&self, l: &NewLogin<'_>) -> Result<EnrolOutcome> {
        self.enrol_with(l, &serde_json::Map::new(), None).await
    }

    /// [`Store::enrol`], with `notes` added to the `login` audit event's detail (what the admin
    /// should know about this sign-in, e.g. a groups overage or the claims userinfo supplied).
    ///
    /// With `session`, the new session is written in the same transaction (one commit for the
    /// whole sign-in), after the identity and before the membership: its insert takes a share
    /// lock on the connection row, which a disconnect takes before the org's memberships, so
    /// the two never wait on each other in a circle. A disconnected connection refuses it, and
    /// then nothing is written (`StoreError::Conflict(SESSION_REFUSED)`).
    pub async fn enrol_with(
        &self,
        l: &NewLogin<'_>,
        notes: &serde_json::Map<String, serde_json::Value>,
        session: Option<&SessionDraft>,
    ) -> Result<EnrolOutcome> {
        let pg = matches!(self.db(), Db::Postgres(_));
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let uid = new_id();
            // PostgreSQL: identity and user in one statement (`enrol_pg::IDENTITY`). SQLite: a
            // write first, which takes the write lock at once, so two sign-ins never race from a
            // read snapshot into a write; it also reads the membership it is about to change
            // (role, denied_at).
            let (found, won): (Option<Enrolled>, bool) = if pg {
                // The membership before is read by the second statement (`previous` below).
                let (existing, made): (Option<String>, Option<String>) = sqlx::query_as(enrol_pg::IDENTITY)
                    .bind(l.now).bind(l.issuer).bind(l.subject).bind(l.email).bind(l.name).bind(&uid)
                    .fetch_one(&mut *tx).await?;
                (existing.map(|u| (u, None, None)), made.is_some())
            } else {
                let existing: Option<Enrolled> = sqlx::query_as(concat!(
                    "UPDATE identities SET last_login_at = $1 WHERE issuer = $2 AND subject = $3 RETURNING user_id, ", membership_before!("$4")))
                    .bind(l.now).bind(l.issuer).bind(l.subject).bind(l.org_id).fetch_optional(&mut *tx).await?;
                match existing {
                    Some((uid, role, denied_at)) => {
                        sqlx::query("UPDATE users SET email = $1, name = $2, updated_at = $3 WHERE id = $4")
                            .bind(l.email).bind(l.name).bind(l.now).bind(&uid).execute(&mut *tx).await?;
                        (Some((uid, role, denied_at)), false)
                    }
                    None => {
                        sqlx::query("INSERT INTO users (id, email, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
                            .bind(&uid).bind(l.email).bind(l.name).bind(l.now).execute(&mut *tx).await?;
                        let won = sqlx::query(
                            "INSERT INTO identities (issuer, subject, user_id, created_at, last_login_at) VALUES ($1, $2, $3, $4, $4)
                             ON CONFLICT (issuer, subject) DO NOTHING")
                            .bind(l.issuer).bind(l.subject).bind(&uid).bind(l.now)
                            .execute(&mut *tx).await?.rows_affected() == 1;
                        (None, won)
                    }
                }
            };
            let (user_id, new_user, previous) = match found {
                Some((existing, role, denied_at)) => (existing, false, role.map(|r| (r, denied_at))),
                // A user made just now has no membership anywhere.
                None if won => (uid, true, None),
                // Another first sign-in of this identity made it meanwhile: adopt its user.
                None => {
                    sqlx::query("DELETE FROM users WHERE id = $1").bind(&uid).execute(&mut *tx).await?;
                    let (winner, role, denied_at): Enrolled = sqlx::query_as(concat!(
                        "SELECT user_id, ", membership_before!("$3"), " FROM identities WHERE issuer = $1 AND subject = $2"))
                        .bind(l.issuer).bind(l.subject).bind(l.org_id).fetch_one(&mut *tx).await?;
                    (winner, false, role.map(|r| (r, denied_at)))
                }
            };
            let session_hash = session.map(|s| sid_hash(&s.id));
            let session_data = session.map(|s| {
                let mut data = s.data.clone();
                data.insert(USER.to_owned(), user_id.clone().into());
                serde_json::Value::Object(data).to_string()
            });
            let mut login = serde_json::json!({"user_id": user_id, "connection_id": l.connection_id, "role": l.role.as_str(), "new_user": new_user});
            for (k, v) in notes {
                if login.get(k).is_none() {
                    login[k] = v.clone();
                }
            }
            let actor = format!("user:{user_id}");
            let previous = if pg {
                // The session, the membership and the audit rows: one statement (`enrol_pg`).
                let sql = if session.is_some() { enrol_pg::MEMBERSHIP_WITH_SESSION } else { enrol_pg::MEMBERSHIP };
                let mut q = sqlx::query_as(sql)
                    .bind(l.org_id).bind(&user_id).bind(l.role.as_str()).bind(l.connection_id).bind(l.now)
                    .bind(l.claims_json).bind(&actor).bind(login.to_string());
                if let (Some(s), Some(data)) = (session, &session_data) {
                    q = q.bind(&s.id).bind(data).bind(s.expires_at).bind(s.created_at).bind(&session_hash).bind(&s.idp_sid);
                }
                let (written, role, denied_at): (bool, Option<String>, Option<i64>) = q.fetch_one(&mut *tx).await?;
                if !written {
                    return Err(StoreError::Conflict(SESSION_REFUSED.into()));
                }
                role.map(|r| (r, denied_at))
            } else {
                if let (Some(s), Some(data)) = (session, &session_data) {
                    let stored = sqlx::query(insert_sql(self.db()))
                        .bind(&s.id).bind(data).bind(s.expires_at).bind(&user_id).bind(l.org_id)
                        .bind(l.connection_id).bind(s.created_at).bind(&session_hash).bind(&s.idp_sid)
                        .execute(&mut *tx).await?.rows_affected();
                    if stored == 0 {
                        return Err(StoreError::Conflict(SESSION_REFUSED.into()));
                    }
                }
                // SQLite's write lock made the first read exact (a CTE here would see the
                // upsert's own change).
                sqlx::query(membership_upsert!("VALUES ($1, $2, $3, 'sso', $4, $5, $6, $5, $5)"))
                    .bind(l.org_id).bind(&user_id).bind(l.role.as_str()).bind(l.connection_id).bind(l.now).bind(l.claims_json)
                    .execute(&mut *tx).await?;
                previous
            };
            // An unknown stored role reads as none, so the change is written and audited.
            // A member the rules had denied counts as having no role: this sign-in (which the
            // rules let in) gives them one again. (`enrol_pg` reads it the same way.)
            let previous_role = previous.and_then(|(r, denied_at)| denied_at.is_none().then(|| r.parse::<Role>().ok()).flatten());
            let role_changed = previous_role != Some(l.role);
            if !pg {
                // The `login` event and, when the role changed, `member.role_change`: one statement.
                let change = role_changed.then(|| serde_json::json!({"user_id": user_id, "from": previous_role.map(|r| r.as_str()), "to": l.role.as_str()}));
                let audit = if change.is_some() {
                    "INSERT INTO audit_events (org_id, actor, action, detail, created_at)
                     VALUES ($1, $2, 'login', $3, $4), ($1, 'rules', 'member.role_change', $5, $4)"
                } else {
                    "INSERT INTO audit_events (org_id, actor, action, detail, created_at) VALUES ($1, $2, 'login', $3, $4)"
                };
                let mut audit = sqlx::query(audit)
                    .bind(l.org_id).bind(&actor).bind(login.to_string()).bind(l.now);
                if let Some(change) = &change {
                    audit = audit.bind(change.to_string());
                }
                audit.execute(&mut *tx).await?;
            }
            let changed = role_changed.then(|| Event::MemberRolesChanged {
                org_id: l.org_id.to_owned(),
                user_id: Some(user_id.clone()),
            });
            // Other instances hold nothing of a user made in this transaction (no session, no
            // cached role: the id is new), so they need not hear of it; this one is told below.
            if let Some(event) = changed.as_ref().filter(|_| !new_user) {
                notify_in_tx!(self.db(), tx, event);
            }
            tx.commit().await?;
            if let Some(event) = &changed {
                self.announce(event);
            }
            if let Some(sid_hash) = session_hash {
                // In-process only (see `Event::SessionStarted` for why no NOTIFY).
                self.announce(&Event::SessionStarted { sid_hash });
            }
            Ok(EnrolOutcome { user_id, new_user, previous_role })
        })
    }

    pub async fn members(&self, org_id: &str) -> Result<Vec<MemberRow>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, MemberRow>(
            "SELECT u.id AS user_id, u.email, u.name, m.role, m.source, m.last_login_at, m.denied_at, m.deprovisioned_at
             FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY u.email, u.id")
            .bind(org_id).fetch_all(p).await?))
    }

    pub async fn member(&self, org_id: &str, user_id: &str) -> Result<Option<MemberRow>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, MemberRow>(
            "SELECT u.id AS user_id, u.email, u.name, m.role, m.source, m.last_login_at, m.denied_at, m.deprovisioned_at
             FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id = $2")
            .bind(org_id).bind(user_id).fetch_optional(p).await?))
    }

    /// The claims of the org's most recent sign-ins (one per member), newest first, for the
    /// rule dry run.
    pub async fn recent_claims(&self, org_id: &str, limit: i64) -> Result<Vec<RecentClaims>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, RecentClaims>(
            "SELECT u.id AS user_id, u.email, m.last_login_at, m.last_claims AS claims
             FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.org_id = $1 AND m.last_claims IS NOT NULL AND m.last_login_at IS NOT NULL
             ORDER BY m.last_login_at DESC, u.id LIMIT $2")
            .bind(org_id).bind(limit).fetch_all(p).await?))
    }
}
