//! The admin API for org JWT secrets: `POST/GET /api/v1/orgs/{slug}/jwt-secrets`,
//! `DELETE …/jwt-secrets/{name}`. Key material goes in once and never comes back out.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::admin::{AdminOrg, ACTOR};
use super::error::{ApiError, ApiJson};
use super::{now, AppState};
use crate::oidc::egress::Egress;
use crate::sso::Sso;
use crate::store::{JwtSecretRow, Store};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{slug}/jwt-secrets", post(create).get(list))
        .route("/api/v1/orgs/{slug}/jwt-secrets/{name}", delete(remove))
}

/// A secret as the API shows it: public parts only.
pub(super) fn view(row: &JwtSecretRow) -> Value {
    // A damaged list shows as null, never as [] ("any"): the verify endpoint refuses the row.
    let mut v = json!({
        "name": row.name,
        "type": row.kind,
        "audiences": row.audiences().ok(),
        "issuers": row.issuers().ok(),
        "primary": row.is_primary,
        "created_at": row.created_at,
    });
    if let Some(kid) = &row.kid {
        v["kid"] = json!(kid);
    }
    match row.kind.as_str() {
        "rs256" | "rs256_public" => {
            v["public_key"] = json!(row.public);
            if let Some(jwk) = row
                .public_jwk
                .as_deref()
                .and_then(|j| serde_json::from_str::<Value>(j).ok())
            {
                v["public_jwk"] = jwk;
            }
        }
        "jwk_url" => v["url"] = json!(row.public),
        _ => {}
    }
    v
}

async fn create(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let row = sso
        .add_jwt_secret(&org, body, ACTOR, Egress::Any, now().unix_timestamp())
        .await?;
    Ok((StatusCode::CREATED, Json(view(&row))).into_response())
}

async fn list(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
) -> Result<Json<Value>, ApiError> {
    let rows = store.jwt_secrets(&org.id).await?;
    Ok(Json(Value::Array(rows.iter().map(view).collect())))
}

async fn remove(
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
