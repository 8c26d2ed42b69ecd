//! SCIM 2.0 provisioning (issue 13): the org's directory creates, changes and removes members.
//! This file holds what the User and Group operations share: the org's SCIM tokens (created
//! once, stored as an HMAC under the service key, valid for their own org only), the caller a
//! token stands for, answers, and the mapping of store failures to SCIM errors. The resources
//! are in `scim_users.rs` and `scim_groups.rs`; the protocol itself (filters, PATCH, JSON) is
//! the pure `crate::scim`.

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use super::Sso;
use crate::crypto::{ct_eq, random_token, Secret};
use crate::roles::{MemberClaims, RoleChange, RoleMapping};
use crate::scim::resource::{etag, Meta, Projection};
use crate::scim::ScimError;
use crate::store::{new_id, OrgRow, ScimTokenRow, StoreError};

/// What the service key's MAC of a SCIM token is for (never shared with other MACs).
const TOKEN_MAC_PURPOSE: &str = "scim-token";
/// Tokens start with this, so a leaked one is recognisable (secret scanners, logs).
const TOKEN_PREFIX: &str = "orgsso_scim_";
/// Longer bearer values are refused before any work.
const MAX_TOKEN_LEN: usize = 256;
/// Most tokens per org: enough for a directory and its rotations.
const MAX_TOKENS: usize = 20;
/// Filters no index answers are evaluated over at most this many of the org's rows.
pub const SCAN_BOUND: i64 = 50_000;

/// Who is calling: the org and the SCIM token's name (the audit actor `scim:<name>`).
#[derive(Debug, Clone)]
pub struct ScimCaller {
    pub org_id: String,
    pub slug: String,
    pub actor: String,
}

/// An answer to a SCIM request: status, body (none for 204), ETag and Location.
#[derive(Debug, Clone)]
pub struct ScimAnswer {
    pub status: u16,
    pub body: Option<Value>,
    pub etag: Option<String>,
    pub location: Option<String>,
}

impl ScimAnswer {
    pub fn ok(body: Value) -> Self {
        ScimAnswer {
            status: 200,
            body: Some(body),
            etag: None,
            location: None,
        }
    }
    pub fn no_content() -> Self {
        ScimAnswer {
            status: 204,
            body: None,
            etag: None,
            location: None,
        }
    }
    /// A single resource: its ETag is its `meta.version`.
    pub(super) fn resource(
        status: u16,
        body: Value,
        version: i64,
        location: Option<String>,
    ) -> Self {
        ScimAnswer {
            status,
            body: Some(body),
            etag: Some(etag(version)),
            location,
        }
    }
}

/// A list request's query parameters, as given.
#[derive(Debug, Clone, Default)]
pub struct ListParams<'a> {
    pub filter: Option<&'a str>,
    pub start_index: Option<&'a str>,
    pub count: Option<&'a str>,
    pub attributes: Option<&'a str>,
    pub excluded_attributes: Option<&'a str>,
}

/// Refusals of the token admin API.
#[derive(Debug, thiserror::Error)]
pub enum ScimTokenError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A store failure as a SCIM error: 503 when the database is away, 409 `uniqueness` for a
/// unique key, 500 (logged, no details) otherwise.
pub fn store_failed(e: StoreError) -> ScimError {
    match e {
        StoreError::Unavailable(m) => {
            tracing::warn!(error = %m, "database unavailable");
            ScimError::new(
                503,
                None,
                "The database is not answering; try again shortly.",
            )
        }
        StoreError::Conflict(_) => ScimError::conflict_uniqueness(
            "userName is already taken in this organisation (compared without regard to case)",
        ),
        other => {
            tracing::error!(error = %other, "SCIM request failed");
            ScimError::new(
                500,
                None,
                "Something went wrong on our side; the error was logged. Try again, and quote the X-Request-Id header if it persists.",
            )
        }
    }
}

pub(super) fn time_of(ts: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn meta(
    resource_type: &'static str,
    location: String,
    created: i64,
    updated: i64,
    version: i64,
) -> Meta {
    Meta {
        resource_type,
        created: time_of(created),
        last_modified: time_of(updated),
        location,
        version: etag(version),
    }
}

/// `If-Match` against a resource's version: absent or `*` always matches.
pub(super) fn check_if_match(if_match: Option<&str>, version: i64) -> Result<(), ScimError> {
    match if_match.map(str::trim) {
        None | Some("*") => Ok(()),
        Some(given) => {
            let want = etag(version);
            let strong = want.trim_start_matches("W/");
            if given
                .split(',')
                .map(str::trim)
                .any(|t| t == want || t.trim_start_matches("W/") == strong)
            {
                Ok(())
            } else {
                Err(ScimError::precondition_failed(
                    "the resource changed since you read it (If-Match does not match its version); read it again",
                ))
            }
        }
    }
}

pub(super) fn projection(p: &ListParams<'_>) -> Result<Projection, ScimError> {
    Projection::parse(p.attributes, p.excluded_attributes)
}

impl Sso {
    /// `{public_url}/scim/v2/{slug}`: the SCIM base URL the directory is given.
    pub fn scim_base_url(&self, slug: &str) -> String {
        self.settings.public_path(&format!("/scim/v2/{slug}"))
    }

    /// Creates a SCIM token for the org: the token itself is returned once and only its MAC
    /// is stored.
    pub async fn create_scim_token(
        &self,
        org: &OrgRow,
        name: &str,
        actor: &str,
        now: i64,
    ) -> Result<(ScimTokenRow, Secret), ScimTokenError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ScimTokenError::Invalid(
                "name must be 1 to 100 characters, e.g. \"Okta\" or \"Entra ID\"".into(),
            ));
        }
        let existing = self.store.scim_tokens(&org.id).await?;
        if existing.len() >= MAX_TOKENS {
            return Err(ScimTokenError::Invalid(format!(
                "this org has {MAX_TOKENS} SCIM tokens already: revoke one first"
            )));
        }
        let token = format!("{TOKEN_PREFIX}{}", random_token(32));
        let row = ScimTokenRow {
            id: new_id(),
            org_id: org.id.clone(),
            name: name.to_owned(),
            created_at: now,
            last_used_at: None,
        };
        self.store
            .insert_scim_token(&row, &self.secret_box.mac(TOKEN_MAC_PURPOSE, &token), actor)
            .await?;
        Ok((row, Secret::new(token)))
    }

    pub async fn scim_tokens(&self, org_id: &str) -> Result<Vec<ScimTokenRow>, StoreError> {
        self.store.scim_tokens(org_id).await
    }

    /// Revokes a token at once (the next request with it is refused). False: no such token.
    pub async fn revoke_scim_token(
        &self,
        org_id: &str,
        id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.store.delete_scim_token(org_id, id, actor, now).await
    }

    /// The caller behind a bearer token sent to the org's SCIM endpoint: 401 without a token,
    /// with an unknown or revoked one, or with another org's.
    pub async fn scim_authenticate(
        &self,
        org: &OrgRow,
        bearer: Option<&str>,
        now: i64,
    ) -> Result<ScimCaller, ScimError> {
        let unauthorized = |m: &str| ScimError::new(401, None, m);
        let token = bearer.filter(|t| !t.is_empty()).ok_or_else(|| {
            unauthorized(
                "Send one of this organisation's SCIM tokens as 'Authorization: Bearer <token>'.",
            )
        })?;
        if token.len() > MAX_TOKEN_LEN || !token.starts_with(TOKEN_PREFIX) {
            return Err(unauthorized("This is not an orgsso SCIM token."));
        }
        let hash = self.secret_box.mac(TOKEN_MAC_PURPOSE, token);
        let row = self
            .store
            .scim_token_by_hash(&hash, now)
            .await
            .map_err(store_failed)?;
        // The lookup is by MAC (a guess learns nothing from timing); the org is compared in
        // constant time all the same.
        match row {
            Some(r) if ct_eq(&r.org_id, &org.id) => Ok(ScimCaller {
                org_id: org.id.clone(),
                slug: org.slug.clone(),
                actor: format!("scim:{}", r.name),
            }),
            Some(_) => Err(unauthorized(
                "This SCIM token belongs to another organisation.",
            )),
            None => Err(unauthorized(
                "The SCIM token is unknown or was revoked; create a new one for this organisation.",
            )),
        }
    }

    /// The org's rules as the re-derivation the store runs inside a change.
    pub(super) async fn scim_rules(&self, org_id: &str) -> Result<Arc<RoleMapping>, ScimError> {
        self.role_mapping(org_id).await.map_err(store_failed)
    }
}

/// The re-derivation over `mapping`, as the store takes it.
pub(super) fn deriver(
    mapping: Arc<RoleMapping>,
) -> impl Fn(&[MemberClaims]) -> Vec<RoleChange> + Send + Sync {
    move |members| crate::roles::rederive(&mapping, members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_compares_versions() {
        #[rustfmt::skip]
        let cases: Vec<(Option<&str>, i64, bool)> = vec![
            (None, 3, true),
            (Some("*"), 3, true),
            (Some("W/\"3\""), 3, true),
            (Some("\"3\""), 3, true),
            (Some("W/\"2\", W/\"3\""), 3, true),
            (Some("W/\"2\""), 3, false),
            (Some("garbage"), 3, false),
        ];
        for (given, version, ok) in cases {
            let got = check_if_match(given, version);
            assert_eq!(got.is_ok(), ok, "{given:?}");
            if let Err(e) = got {
                assert_eq!(e.status, 412);
            }
        }
    }

    #[test]
    fn store_failures_are_scim_errors() {
        assert_eq!(
            store_failed(StoreError::Unavailable("x".into())).status,
            503
        );
        let c = store_failed(StoreError::Conflict("scim_users_name".into()));
        assert_eq!(c.status, 409);
        assert_eq!(c.to_json()["scimType"], "uniqueness");
        assert_eq!(store_failed(StoreError::Corrupt("x".into())).status, 500);
    }
}
