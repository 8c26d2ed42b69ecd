//! A sign-in meets SCIM provisioning: a deprovisioned member is refused, and an identity seen
//! for the first time is attached to the member the directory provisioned for it, matched
//! never by an email alone: the connection's link claim (`sub`, `oid` for Entra ID) equal to
//! the SCIM `externalId`, or the email only when its domain is one the org verified. The
//! linked member's `scim` claim (directory attributes and groups) is added to the claims the
//! rules see.

use serde_json::{json, Value};

use super::login::LoginError;
use super::scim_users::scim_claims;
use super::Sso;
use crate::scim::resource::UserResource;
use crate::store::{Connection, ScimUserRow, UserIndex};

/// What matched a first-seen identity to a provisioned user (kept in the audit event).
fn via_claim(claim: &str) -> Value {
    json!({"by": "link_claim", "claim": claim})
}

impl Sso {
    /// Called by `finish_login` before the rules are applied. Refuses a member the directory
    /// deprovisioned; links a first-seen identity; adds the `scim` claim to `claims`.
    pub(super) async fn scim_sign_in(
        &self,
        conn: &Connection,
        subject: &str,
        claims: &mut Value,
        email: Option<&str>,
        now: i64,
    ) -> Result<(), LoginError> {
        let result = self.scim_check(conn, subject, claims, email, now).await;
        if let Err(LoginError::Deprovisioned) = &result {
            let detail = json!({"issuer": conn.issuer, "subject": subject});
            self.store
                .audit(
                    Some(&conn.org_id),
                    "scim",
                    "login.deprovisioned",
                    &detail,
                    now,
                )
                .await?;
        }
        result
    }

    async fn scim_check(
        &self,
        conn: &Connection,
        subject: &str,
        claims: &mut Value,
        email: Option<&str>,
        now: i64,
    ) -> Result<(), LoginError> {
        let org_id = &conn.org_id;
        let state = self
            .store
            .scim_sign_in_state(org_id, &conn.issuer, subject)
            .await?;
        let provisioned = match state.returning {
            Some(r) if r.deprovisioned => return Err(LoginError::Deprovisioned),
            // Not provisioned by the directory (every member of an org without SCIM): nothing
            // more to read.
            Some(r) if !r.provisioned => None,
            Some(r) => self.store.scim_user_of(org_id, &r.user_id).await?,
            // A first sign-in where no directory provisioned anyone: nothing to link to.
            None if !state.org_has_scim => None,
            None => self.scim_match(conn, subject, claims, email, now).await?,
        };
        if let Some(row) = provisioned {
            if !row.active {
                return Err(LoginError::Deprovisioned);
            }
            let doc: Value = serde_json::from_str(&row.document).unwrap_or_default();
            let mut scim = UserResource::from_json(&doc)
                .map(|u| scim_claims(&u))
                .unwrap_or_else(|_| json!({}));
            let groups = self.store.scim_user_groups(&row.id).await?;
            scim["groups"] = json!(groups.into_iter().map(|(_, n)| n).collect::<Vec<_>>());
            if let Some(obj) = claims.as_object_mut() {
                obj.insert("scim".into(), scim);
            }
        }
        Ok(())
    }

    /// Finds the provisioned user a first-seen identity is, and attaches the identity to it.
    async fn scim_match(
        &self,
        conn: &Connection,
        subject: &str,
        claims: &Value,
        email: Option<&str>,
        now: i64,
    ) -> Result<Option<ScimUserRow>, LoginError> {
        let org_id = &conn.org_id;
        let link_value = claims
            .get(&conn.scim_link_claim)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty());
        let mut found: Option<(ScimUserRow, Value)> = None;
        if let Some(v) = link_value {
            let (total, mut rows) = self
                .store
                .scim_users_page(org_id, UserIndex::ExternalId(v), 0, 2)
                .await?;
            if total == 1 {
                found = rows.pop().map(|r| (r, via_claim(&conn.scim_link_claim)));
            }
        }
        if found.is_none() {
            if let Some(email) = email.map(str::to_lowercase) {
                let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
                let verified = self.store.org_domains(org_id).await?;
                // An email proves nothing unless its domain is the org's own.
                if !domain.is_empty() && verified.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
                    for index in [UserIndex::Email(&email), UserIndex::UserName(&email)] {
                        let (total, mut rows) =
                            self.store.scim_users_page(org_id, index, 0, 2).await?;
                        if total == 1 {
                            found = rows.pop().map(|r| {
                                (r, json!({"by": "verified_domain_email", "domain": domain}))
                            });
                            break;
                        }
                    }
                }
            }
        }
        let Some((row, via)) = found else {
            return Ok(None);
        };
        if self
            .store
            .member_deprovisioned(org_id, &row.user_id)
            .await?
            == Some(true)
        {
            return Err(LoginError::Deprovisioned);
        }
        self.store
            .scim_link_identity(org_id, &conn.issuer, subject, &row.user_id, &via, now)
            .await?;
        // A concurrent first sign-in may have attached the identity elsewhere: act on what
        // the identity now is.
        match self.store.identity_user(&conn.issuer, subject).await? {
            Some(u) if u == row.user_id => Ok(Some(row)),
            Some(u) => Ok(self.store.scim_user_of(org_id, &u).await?),
            None => Ok(None),
        }
    }
}
