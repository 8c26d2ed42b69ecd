//! Registering an org's JWT secrets, shared by the admin API and the console. Key material is
//! encrypted before it is stored and never leaves again; error texts never repeat it.

use serde_json::{json, Value};

use super::Sso;
use crate::jwt::secret_input::{parse_secret, SecretInput, SecretKind};
use crate::oidc::egress::Egress;
use crate::store::{new_id, JwtSecretRow, OrgRow, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0}")]
    Invalid(String),
    /// A `jwk_url` that serves no usable key now.
    #[error("{0}")]
    JwksUnusable(String),
    #[error(
        "This org already has a JWT secret named {0:?}; delete it first or pick another name."
    )]
    NameTaken(String),
    #[error(transparent)]
    Store(StoreError),
}

impl Sso {
    /// Parses, checks and stores a JWT secret given as the API's JSON object.
    pub async fn add_jwt_secret(
        &self,
        org: &OrgRow,
        body: Value,
        actor: &str,
        egress: Egress,
        now: i64,
    ) -> Result<JwtSecretRow, SecretError> {
        // Parsed from a Value so that error messages never repeat the (secret) input.
        let input = SecretInput::from_json(body).map_err(|e| SecretError::Invalid(e.0))?;
        let parsed = parse_secret(input).map_err(|e| SecretError::Invalid(e.0))?;
        if matches!(parsed.kind, SecretKind::JwkUrl) {
            // Refuse a URL that does not serve usable keys now, rather than fail every token later.
            let url = url::Url::parse(parsed.public.as_deref().unwrap_or_default())
                .map_err(|e| SecretError::Invalid(e.to_string()))?;
            self.outbound
                .http(egress)
                .check(url.as_str())
                .await
                .map_err(SecretError::Invalid)?;
            self.jwks
                .get(&url, egress)
                .prefetch()
                .await
                .map_err(|e| SecretError::JwksUnusable(e.to_string()))?;
        }
        let id = new_id();
        let row = JwtSecretRow {
            private_enc: parsed
                .private_material
                .as_ref()
                .map(|m| self.secret_box.encrypt(m.expose(), &id)),
            id,
            org_id: org.id.clone(),
            name: parsed.name.clone(),
            kind: parsed.kind.as_str().to_owned(),
            public: parsed.public.clone(),
            public_jwk: parsed.public_jwk.as_ref().map(|j| j.to_string()),
            kid: parsed.kid.clone(),
            audiences: json!(parsed.audiences).to_string(),
            issuers: json!(parsed.issuers).to_string(),
            is_primary: parsed.primary,
            created_at: now,
            // Every later fetch of an org admin's jwk_url is pinned to public addresses.
            public_only: matches!(parsed.kind, SecretKind::JwkUrl) && egress.is_public_only(),
        };
        self.store
            .insert_jwt_secret(&row, actor)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => SecretError::NameTaken(row.name.clone()),
                other => SecretError::Store(other),
            })?;
        Ok(row)
    }

    /// Removes an org's JWT secret by name; false when it has none by that name.
    pub async fn delete_jwt_secret(
        &self,
        org: &OrgRow,
        name: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.store
            .delete_jwt_secret(&org.id, name, actor, now)
            .await
    }
}
