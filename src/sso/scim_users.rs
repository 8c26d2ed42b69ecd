//! SCIM Users: create, read, replace, PATCH, delete and list. A User is provisioned as an
//! orgsso member at once (role from the org's rules over what the directory says: the `scim`
//! claim); `active: false` or a delete deprovisions the member (the store ends their sessions
//! and tells every instance in the same transaction).

use serde_json::{json, Value};

use super::provisioning::{
    check_if_match, deriver, meta, projection, store_failed, ListParams, ScimAnswer, ScimCaller,
    SCAN_BOUND,
};
use super::Sso;
use crate::roles::{Outcome, Role};
use crate::scim::filter::Filter;
use crate::scim::patch::{apply_to_user, parse_patch};
use crate::scim::resource::{
    list_response, user_json, Paging, UserResource, ENTERPRISE_USER_SCHEMA,
};
use crate::scim::{ScimError, ScimType};
use crate::store::{ScimUserRow, ScimUserWrite, StoreError, UserIndex};

/// How often a PATCH is retried when another change of the same user got in first.
const PATCH_ATTEMPTS: usize = 3;

/// What the org's rules see of a User (the `scim` claim, `groups` added by the store):
/// `/scim/userName`, `/scim/department`, `/scim/groups`, …
pub fn scim_claims(u: &UserResource) -> Value {
    let doc = &u.document;
    let mut c = json!({
        "userName": u.user_name,
        "active": u.active,
        "emails": u.emails.iter().map(|e| e.value.as_str()).collect::<Vec<_>>(),
    });
    if let Some(e) = &u.external_id {
        c["externalId"] = json!(e);
    }
    if let Some(d) = &u.display_name {
        c["displayName"] = json!(d);
    }
    for k in ["title", "userType"] {
        if let Some(v) = doc.get(k).filter(|v| v.is_string()) {
            c[k] = v.clone();
        }
    }
    if let Some(ext) = doc.get(ENTERPRISE_USER_SCHEMA) {
        for k in [
            "department",
            "organization",
            "division",
            "costCenter",
            "employeeNumber",
        ] {
            if let Some(v) = ext.get(k).filter(|v| v.is_string()) {
                c[k] = v.clone();
            }
        }
    }
    c
}

/// The member's display name: `displayName`, else given and family names.
fn member_name(u: &UserResource) -> Option<String> {
    u.display_name.clone().or_else(|| {
        let parts: Vec<&str> = [u.given_name.as_deref(), u.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

fn taken(user_name: &str) -> ScimError {
    ScimError::conflict_uniqueness(format!(
        "userName {user_name:?} is already taken in this organisation (compared without regard to case)"
    ))
}

fn write_failed(e: StoreError, user_name: &str) -> ScimError {
    match e {
        StoreError::Conflict(_) => taken(user_name),
        other => store_failed(other),
    }
}

fn no_user(id: &str) -> ScimError {
    ScimError::not_found(format!(
        "there is no User with id {:?}",
        crate::scim::filter::clip(id)
    ))
}

impl Sso {
    fn user_location(&self, c: &ScimCaller, id: &str) -> String {
        format!("{}/Users/{id}", self.scim_base_url(&c.slug))
    }

    /// A User's full JSON answer.
    fn user_body(&self, c: &ScimCaller, row: &ScimUserRow, groups: &[(String, String)]) -> Value {
        let doc: Value = serde_json::from_str(&row.document).unwrap_or_else(|_| json!({}));
        let m = meta(
            "User",
            self.user_location(c, &row.id),
            row.created_at,
            row.updated_at,
            row.version,
        );
        user_json(&row.id, &doc, groups, &m)
    }

    async fn user_or_404(&self, c: &ScimCaller, id: &str) -> Result<ScimUserRow, ScimError> {
        self.store
            .scim_user(&c.org_id, id)
            .await
            .map_err(store_failed)?
            .ok_or_else(|| no_user(id))
    }

    /// `POST /Users`: 201 with the User; the member exists from now on.
    pub async fn scim_create_user(
        &self,
        c: &ScimCaller,
        body: &Value,
        now: i64,
    ) -> Result<ScimAnswer, ScimError> {
        let u = UserResource::from_json(body)?;
        let email = u.work_email().map(str::to_lowercase);
        let name = member_name(&u);
        let scim = scim_claims(&u);
        let mapping = self.scim_rules(&c.org_id).await?;
        let mut claims = json!({"email": email, "name": name, "scim": scim});
        claims["scim"]["groups"] = json!([]);
        let (role, denied) = match mapping.evaluate(&claims).outcome {
            Outcome::Role(r) => (r, false),
            // Kept as a viewer the rules deny, exactly as a rule save leaves one.
            Outcome::Deny => (Role::Viewer, true),
        };
        let document = u.document.to_string();
        let w = ScimUserWrite {
            org_id: &c.org_id,
            user_name: &u.user_name,
            external_id: u.external_id.as_deref(),
            email: email.as_deref(),
            display_name: name.as_deref(),
            active: u.active,
            document: &document,
            scim_claims: scim,
            actor: &c.actor,
            now,
        };
        let row = match self.scim_signed_in_before(c, &u).await? {
            Some(user_id) => {
                let derive = deriver(mapping);
                self.store.scim_adopt_member(&w, &user_id, &derive).await
            }
            None => self.store.scim_create_user(&w, role, denied).await,
        }
        .map_err(|e| write_failed(e, &u.user_name))?;
        let location = self.user_location(c, &row.id);
        Ok(ScimAnswer::resource(
            201,
            self.user_body(c, &row, &[]),
            row.version,
            Some(location),
        ))
    }

    /// The member a new User already is, when they signed in before the directory pushed
    /// them: the connection links by `sub` and an identity of its issuer has the User's
    /// externalId as subject, and that member is not provisioned yet. (Other link claims and
    /// emails are matched at their next first sign-in only.)
    async fn scim_signed_in_before(
        &self,
        c: &ScimCaller,
        u: &UserResource,
    ) -> Result<Option<String>, ScimError> {
        let Some(external_id) = u.external_id.as_deref() else {
            return Ok(None);
        };
        let conn = self
            .store
            .latest_connection(&c.org_id)
            .await
            .map_err(store_failed)?
            .filter(|conn| conn.is_connected() && conn.scim_link_claim == "sub");
        let Some(conn) = conn else {
            return Ok(None);
        };
        let Some(user_id) = self
            .store
            .identity_user(&conn.issuer, external_id)
            .await
            .map_err(store_failed)?
        else {
            return Ok(None);
        };
        let member = self
            .store
            .member(&c.org_id, &user_id)
            .await
            .map_err(store_failed)?;
        let provisioned = self
            .store
            .scim_user_of(&c.org_id, &user_id)
            .await
            .map_err(store_failed)?;
        Ok((member.is_some() && provisioned.is_none()).then_some(user_id))
    }

    /// `GET /Users/{id}`.
    pub async fn scim_get_user(
        &self,
        c: &ScimCaller,
        id: &str,
        p: &ListParams<'_>,
    ) -> Result<ScimAnswer, ScimError> {
        let proj = projection(p)?;
        let row = self.user_or_404(c, id).await?;
        let groups = self
            .store
            .scim_user_groups(&row.id)
            .await
            .map_err(store_failed)?;
        let body = proj.apply(self.user_body(c, &row, &groups));
        Ok(ScimAnswer::resource(200, body, row.version, None))
    }

    /// Writes a checked User over `row` (PUT, or a PATCH applied): `Ok(None)` when another
    /// change got in first.
    async fn write_user(
        &self,
        c: &ScimCaller,
        row: &ScimUserRow,
        u: UserResource,
        now: i64,
    ) -> Result<Option<ScimAnswer>, ScimError> {
        let email = u.work_email().map(str::to_lowercase);
        let name = member_name(&u);
        let document = u.document.to_string();
        let w = ScimUserWrite {
            org_id: &c.org_id,
            user_name: &u.user_name,
            external_id: u.external_id.as_deref(),
            email: email.as_deref(),
            display_name: name.as_deref(),
            active: u.active,
            document: &document,
            scim_claims: scim_claims(&u),
            actor: &c.actor,
            now,
        };
        let derive = deriver(self.scim_rules(&c.org_id).await?);
        let Some(new) = self
            .store
            .scim_replace_user(&row.id, Some(row.version), &w, &derive)
            .await
            .map_err(|e| write_failed(e, &u.user_name))?
        else {
            return Ok(None);
        };
        let groups = self
            .store
            .scim_user_groups(&new.id)
            .await
            .map_err(store_failed)?;
        Ok(Some(ScimAnswer::resource(
            200,
            self.user_body(c, &new, &groups),
            new.version,
            None,
        )))
    }

    /// `PUT /Users/{id}`: the User replaced whole.
    pub async fn scim_replace_user(
        &self,
        c: &ScimCaller,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        now: i64,
    ) -> Result<ScimAnswer, ScimError> {
        let u = UserResource::from_json(body)?;
        let row = self.user_or_404(c, id).await?;
        check_if_match(if_match, row.version)?;
        self.write_user(c, &row, u, now).await?.ok_or_else(|| {
            ScimError::precondition_failed(
                "the User changed while it was being replaced; read it again",
            )
        })
    }

    /// `PATCH /Users/{id}`: the operations applied to the stored User, the result checked as
    /// a PUT body would be. Retried (without `If-Match`) when another change got in first.
    pub async fn scim_patch_user(
        &self,
        c: &ScimCaller,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        now: i64,
    ) -> Result<ScimAnswer, ScimError> {
        let ops = parse_patch(body)?;
        for _ in 0..PATCH_ATTEMPTS {
            let row = self.user_or_404(c, id).await?;
            check_if_match(if_match, row.version)?;
            let doc: Value = serde_json::from_str(&row.document).unwrap_or_else(|_| json!({}));
            let u = UserResource::from_json(&apply_to_user(&doc, &ops)?)?;
            if let Some(answer) = self.write_user(c, &row, u, now).await? {
                return Ok(answer);
            }
        }
        Err(ScimError::new(
            409,
            None,
            "the User is being changed by other requests at the same time; try again",
        ))
    }

    /// `DELETE /Users/{id}`: the resource goes and the member is deprovisioned.
    pub async fn scim_delete_user(
        &self,
        c: &ScimCaller,
        id: &str,
        now: i64,
    ) -> Result<ScimAnswer, ScimError> {
        if self
            .store
            .scim_delete_user(&c.org_id, id, &c.actor, now)
            .await
            .map_err(store_failed)?
        {
            Ok(ScimAnswer::no_content())
        } else {
            Err(no_user(id))
        }
    }

    /// `GET /Users`: `userName`, `externalId` and `id` equality filters are answered from an
    /// index; any other filter is evaluated over the org's users (at most [`SCAN_BOUND`]).
    pub async fn scim_list_users(
        &self,
        c: &ScimCaller,
        p: &ListParams<'_>,
    ) -> Result<ScimAnswer, ScimError> {
        let paging = Paging::parse(p.start_index, p.count)?;
        let proj = projection(p)?;
        let filter = p
            .filter
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(Filter::parse)
            .transpose()?;
        let lowered;
        let index = match &filter {
            None => Some(UserIndex::All),
            Some(f) => {
                if let Some(v) = f.eq_value("userName") {
                    lowered = v.to_lowercase();
                    Some(UserIndex::UserName(&lowered))
                } else if let Some(v) = f.eq_value("externalId") {
                    Some(UserIndex::ExternalId(v))
                } else {
                    f.eq_value("id").map(UserIndex::Id)
                }
            }
        };
        let offset = paging.offset();
        let (total, resources) = match (index, &filter) {
            (Some(index), _) => {
                let (total, rows) = self
                    .store
                    .scim_users_page(&c.org_id, index, offset as i64, paging.count as i64)
                    .await
                    .map_err(store_failed)?;
                // One query for the page's groups, not one per user.
                let mut groups = if proj.wants("groups") {
                    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
                    self.store
                        .scim_groups_of_users(&ids)
                        .await
                        .map_err(store_failed)?
                } else {
                    Default::default()
                };
                let out = rows
                    .iter()
                    .map(|row| {
                        let g = groups.remove(&row.id).unwrap_or_default();
                        proj.apply(self.user_body(c, row, &g))
                    })
                    .collect();
                (total.max(0) as usize, out)
            }
            (None, Some(filter)) => {
                let all = self
                    .store
                    .scim_users_all(&c.org_id, SCAN_BOUND)
                    .await
                    .map_err(store_failed)?
                    .ok_or_else(|| {
                        ScimError::bad_request(
                            ScimType::TooMany,
                            format!("this organisation has more than {SCAN_BOUND} users: filter with userName, externalId or id eq"),
                        )
                    })?;
                let matched: Vec<Value> = all
                    .iter()
                    .map(|(row, groups)| self.user_body(c, row, groups))
                    .filter(|json| filter.matches(json))
                    .collect();
                let total = matched.len();
                let page = matched
                    .into_iter()
                    .skip(offset)
                    .take(paging.count)
                    .map(|j| proj.apply(j))
                    .collect();
                (total, page)
            }
            // No filter is the whole index (above).
            (None, None) => (0, Vec::new()),
        };
        Ok(ScimAnswer::ok(list_response(
            total,
            paging.start_index,
            resources,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_see_what_the_directory_says() {
        let u = UserResource::from_json(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
            "userName": "ada@acme.test", "externalId": "00u1", "active": "True",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@acme.test", "type": "work", "primary": true}],
            "title": "Engineer",
            ENTERPRISE_USER_SCHEMA: {"department": "R&D"}
        }))
        .unwrap();
        let c = scim_claims(&u);
        #[rustfmt::skip]
        let cases: Vec<(&str, Value)> = vec![
            ("/userName", json!("ada@acme.test")),
            ("/externalId", json!("00u1")),
            ("/active", json!(true)),
            ("/emails/0", json!("ada@acme.test")),
            ("/title", json!("Engineer")),
            ("/department", json!("R&D")),
        ];
        for (pointer, want) in cases {
            assert_eq!(c.pointer(pointer), Some(&want), "{pointer}");
        }
        assert_eq!(member_name(&u).as_deref(), Some("Ada Lovelace"));
    }
}
