//! The admin API for org JWT secrets: `POST/GET /api/v1/orgs/{slug}/jwt-secrets`,
//! `DELETE …/jwt-secrets/{name}`. Key material goes in once and never comes back out.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::admin::{AdminOrg, ACTOR};
use super::error::{ApiError, ApiJson};
use super::openapi::{ErrorBody, Slug};
use super::{now, AppState};
use crate::jwt::secret_input::SecretInput;
use crate::oidc::egress::Egress;
use crate::sso::Sso;
use crate::store::{JwtSecretRow, Store};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{slug}/jwt-secrets", post(create).get(list))
        .route("/api/v1/orgs/{slug}/jwt-secrets/{name}", delete(remove))
}

/// A secret as the API shows it: public parts only.
#[derive(Serialize, ToSchema)]
#[schema(as = JwtSecret)]
pub(super) struct SecretView {
    name: String,
    /// `hs256`, `rs256`, `rs256_public` or `jwk_url`.
    #[serde(rename = "type")]
    kind: String,
    /// Null when the stored list is damaged (the verify endpoint then refuses the secret).
    audiences: Option<Vec<String>>,
    issuers: Option<Vec<String>>,
    primary: bool,
    /// Unix seconds.
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    /// PEM, for `rs256` and `rs256_public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    /// The public key as a JWK, for `rs256` and `rs256_public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    public_jwk: Option<Value>,
    /// For `jwk_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

pub(super) fn view(row: &JwtSecretRow) -> SecretView {
    let rsa = matches!(row.kind.as_str(), "rs256" | "rs256_public");
    SecretView {
        name: row.name.clone(),
        kind: row.kind.clone(),
        // A damaged list shows as null, never as [] ("any"): the verify endpoint refuses the row.
        audiences: row.audiences().ok(),
        issuers: row.issuers().ok(),
        primary: row.is_primary,
        created_at: row.created_at,
        kid: row.kid.clone(),
        public_key: row.public.clone().filter(|_| rsa),
        public_jwk: row
            .public_jwk
            .as_deref()
            .filter(|_| rsa)
            .and_then(|j| serde_json::from_str::<Value>(j).ok()),
        url: row.public.clone().filter(|_| row.kind == "jwk_url"),
    }
}

// The body is read as JSON and parsed by the service, so that no error message repeats key
// material; the document shows the type it must parse into.
#[utoipa::path(post, path = "/api/v1/orgs/{slug}/jwt-secrets", tag = "jwt-secrets", params(Slug),
    request_body = SecretInput,
    responses((status = 201, description = "The secret, stored; key material never comes back", body = SecretView),
        (status = 409, description = "The org has a secret of this name", body = ErrorBody)))]
pub(super) async fn create(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let row = sso
        .add_jwt_secret(&org, body, ACTOR, Egress::Any, now().unix_timestamp())
        .await?;
    Ok((StatusCode::CREATED, Json(view(&row))).into_response())
}

#[utoipa::path(get, path = "/api/v1/orgs/{slug}/jwt-secrets", tag = "jwt-secrets", params(Slug),
    responses((status = 200, description = "The org's secrets, without key material", body = Vec<SecretView>)))]
pub(super) async fn list(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
) -> Result<Json<Vec<SecretView>>, ApiError> {
    let rows = store.jwt_secrets(&org.id).await?;
    Ok(Json(rows.iter().map(view).collect()))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{slug}/jwt-secrets/{name}", tag = "jwt-secrets",
    params(Slug, ("name" = String, Path, description = "The secret's name")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No org with this slug, or no secret of this name", body = ErrorBody)))]
pub(super) async fn remove(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !sso
        .delete_jwt_secret(&org, &name, ACTOR, now().unix_timestamp())
        .await?
    {
        return Err(ApiError::not_found(
            "secret_not_found",
            format!("This org has no JWT secret named {name:?}."),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
