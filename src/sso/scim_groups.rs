//! SCIM Groups: create, read, replace, PATCH (member deltas, however many), delete and list.
//! Group membership is the `scim.groups` claim the rules can match (`/scim/groups`): every
//! change re-derives the roles of the members it touches in the same transaction.

use serde_json::Value;

use super::provisioning::{
    check_if_match, deriver, meta, projection, store_failed, ListParams, ScimAnswer, ScimCaller,
    SCAN_BOUND,
};
use super::Sso;
use crate::scim::filter::Filter;
use crate::scim::patch::{group_patch, parse_patch};
use crate::scim::resource::{group_json, list_response, GroupResource, Paging, Projection};
use crate::scim::{ScimError, ScimType};
use crate::store::{GroupChange, GroupIndex, ScimGroupRow};

fn no_group(id: &str) -> ScimError {
    ScimError::not_found(format!(
        "there is no Group with id {:?}",
        crate::scim::filter::clip(id)
    ))
}

impl Sso {
    fn group_location(&self, c: &ScimCaller, id: &str) -> String {
        format!("{}/Groups/{id}", self.scim_base_url(&c.slug))
    }

    /// A Group's JSON answer, with its members when `with_members` (they may be many).
    async fn group_body(
        &self,
        c: &ScimCaller,
        row: &ScimGroupRow,
        with_members: bool,
    ) -> Result<Value, ScimError> {
        let refs = if with_members {
            self.store
                .scim_group_members(&row.id)
                .await
                .map_err(store_failed)?
        } else {
            Vec::new()
        };
        let g = GroupResource {
            display_name: row.display_name.clone(),
            external_id: row.external_id.clone(),
            members: refs.iter().map(|(id, _)| id.clone()).collect(),
        };
        let m = meta(
            "Group",
            self.group_location(c, &row.id),
            row.created_at,
            row.updated_at,
            row.version,
        );
        Ok(group_json(&row.id, &g, &refs, &m))
    }

    async fn group_or_404(&self, c: &ScimCaller, id: &str) -> Result<ScimGroupRow, ScimError> {
        self.store
            .scim_group(&c.org_id, id)
            .await
            .map_err(store_failed)?
            .ok_or_else(|| no_group(id))
    }

    /// `POST /Groups`: 201 with the Group; its members' roles are re-derived.
    pub async fn scim_create_group(
        &self,
        c: &ScimCaller,
        body: &Value,
        now: i64,
    ) -> Result<ScimAnswer, ScimError> {
        let g = GroupResource::from_json(body)?;
        let derive = deriver(self.scim_rules(&c.org_id).await?);
        let row = self
            .store
            .scim_create_group(
                &c.org_id,
                &g.display_name,
                g.external_id.as_deref(),
                &g.members,
                &c.actor,
                now,
                &derive,
            )
            .await
            .map_err(store_failed)?;
        let body = self.group_body(c, &row, true).await?;
        Ok(ScimAnswer::resource(
            201,
            body,
            row.version,
            Some(self.group_location(c, &row.id)),
        ))
    }

    /// `GET /Groups/{id}`; members are not read when the projection leaves them out.
    pub async fn scim_get_group(
        &self,
        c: &ScimCaller,
        id: &str,
        p: &ListParams<'_>,
    ) -> Result<ScimAnswer, ScimError> {
        let proj = projection(p)?;
        let row = self.group_or_404(c, id).await?;
        let body = proj.apply(self.group_body(c, &row, proj.wants("members")).await?);
        Ok(ScimAnswer::resource(200, body, row.version, None))
    }

    /// Applies a change to a group; 404 for an unknown group, 412 when `If-Match` no longer
    /// holds.
    async fn change_group(
        &self,
        c: &ScimCaller,
        id: &str,
        change: &GroupChange,
        if_match: Option<&str>,
        now: i64,
    ) -> Result<ScimGroupRow, ScimError> {
        let expected = match if_match {
            Some(_) => {
                let row = self.group_or_404(c, id).await?;
                check_if_match(if_match, row.version)?;
                Some(row.version)
            }
            None => None,
        };
        let derive = deriver(self.scim_rules(&c.org_id).await?);
        match self
            .store
            .scim_update_group(&c.org_id, id, expected, change, &c.actor, now, &derive)
            .await
            .map_err(store_failed)?
        {
            Some(row) => Ok(row),
            None if expected.is_some() => Err(ScimError::precondition_failed(
                "the Group changed since you read it; read it again",
            )),
            None => Err(no_group(id)),
        }
    }

    /// `PUT /Groups/{id}`: name, externalId and members replaced.
    pub async fn scim_replace_group(
        &self,
        c: &ScimCaller,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        now: i64,
    ) -> Result<ScimAnswer, ScimError> {
        let g = GroupResource::from_json(body)?;
        let change = GroupChange {
            display_name: Some(g.display_name),
            external_id: Some(g.external_id),
            replace: Some(g.members),
            ..GroupChange::default()
        };
        let row = self.change_group(c, id, &change, if_match, now).await?;
        let body = self.group_body(c, &row, true).await?;
        Ok(ScimAnswer::resource(200, body, row.version, None))
    }

    /// `PATCH /Groups/{id}`: 204 (a large group's members are not sent back), with the new
    /// ETag. Member deltas apply in batches, however many a request carries.
    pub async fn scim_patch_group(
        &self,
        c: &ScimCaller,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
        now: i64,
    ) -> Result<ScimAnswer, ScimError> {
        let gp = group_patch(&parse_patch(body)?)?;
        let change = GroupChange {
            display_name: gp.display_name,
            external_id: gp.external_id,
            add: gp.add_members,
            remove: gp.remove_members,
            replace: gp.replace_members,
        };
        let row = self.change_group(c, id, &change, if_match, now).await?;
        let mut answer = ScimAnswer::no_content();
        answer.etag = Some(crate::scim::resource::etag(row.version));
        Ok(answer)
    }

    /// `DELETE /Groups/{id}`: its former members' roles are re-derived.
    pub async fn scim_delete_group(
        &self,
        c: &ScimCaller,
        id: &str,
        now: i64,
    ) -> Result<ScimAnswer, ScimError> {
        let derive = deriver(self.scim_rules(&c.org_id).await?);
        if self
            .store
            .scim_delete_group(&c.org_id, id, &c.actor, now, &derive)
            .await
            .map_err(store_failed)?
        {
            Ok(ScimAnswer::no_content())
        } else {
            Err(no_group(id))
        }
    }

    /// `GET /Groups`: `displayName`, `externalId` and `id` equality filters from an index;
    /// other filters evaluated over the org's groups (members read only when the filter names
    /// them).
    pub async fn scim_list_groups(
        &self,
        c: &ScimCaller,
        p: &ListParams<'_>,
    ) -> Result<ScimAnswer, ScimError> {
        let paging = Paging::parse(p.start_index, p.count)?;
        let proj: Projection = projection(p)?;
        let filter = p
            .filter
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(Filter::parse)
            .transpose()?;
        let lowered;
        let index = match &filter {
            None => Some(GroupIndex::All),
            Some(f) => {
                if let Some(v) = f.eq_value("displayName") {
                    lowered = v.to_lowercase();
                    Some(GroupIndex::DisplayName(&lowered))
                } else if let Some(v) = f.eq_value("externalId") {
                    Some(GroupIndex::ExternalId(v))
                } else {
                    f.eq_value("id").map(GroupIndex::Id)
                }
            }
        };
        let with_members = proj.wants("members");
        let offset = paging.offset();
        let (total, resources) = match (index, &filter) {
            (Some(index), _) => {
                let (total, rows) = self
                    .store
                    .scim_groups_page(&c.org_id, index, offset as i64, paging.count as i64)
                    .await
                    .map_err(store_failed)?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(proj.apply(self.group_body(c, row, with_members).await?));
                }
                (total.max(0) as usize, out)
            }
            (None, Some(filter)) => {
                let rows = self
                    .store
                    .scim_groups_all(&c.org_id, SCAN_BOUND)
                    .await
                    .map_err(store_failed)?
                    .ok_or_else(|| {
                        ScimError::bad_request(
                            ScimType::TooMany,
                            format!("this organisation has more than {SCAN_BOUND} groups: filter with displayName, externalId or id eq"),
                        )
                    })?;
                let needs_members = p
                    .filter
                    .is_some_and(|f| f.to_ascii_lowercase().contains("members"));
                let mut matched = Vec::new();
                for row in &rows {
                    let json = self.group_body(c, row, needs_members).await?;
                    if filter.matches(&json) {
                        matched.push((row, json));
                    }
                }
                let total = matched.len();
                let mut page = Vec::new();
                for (row, json) in matched.into_iter().skip(offset).take(paging.count) {
                    let json = if with_members && !needs_members {
                        self.group_body(c, row, true).await?
                    } else {
                        json
                    };
                    page.push(proj.apply(json));
                }
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
