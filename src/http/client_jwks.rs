//! `GET /sso/client-jwks/{jwks_id}`: the public key of a connection's `private_key_jwt` key
//! pair, as a JWKS for the admin to register at the IdP (the IdP fetches it to check orgsso's
//! client assertions). Also an active setup link's own key, so the IdP can check the test
//! sign-in's assertions. Public, no secrets; unknown and disconnected ids are 404.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use super::AppState;
use crate::sso::Sso;

pub fn router() -> Router<AppState> {
    Router::new().route("/sso/client-jwks/{jwks_id}", get(client_jwks))
}

async fn client_jwks(State(sso): State<Sso>, Path(jwks_id): Path<String>) -> Response {
    match sso
        .client_jwks(&jwks_id, super::now().unix_timestamp())
        .await
    {
        // The key of a connection never changes; an hour spares the IdP's fetches.
        Ok(Some(doc)) => {
            ([(header::CACHE_CONTROL, "public, max-age=3600")], Json(doc)).into_response()
        }
        Ok(None) => {
            let mut res = ApiError::not_found(
                "unknown_client_jwks",
                "No connected identity provider publishes a key set here; check the URL shown beside the connection.",
            )
            .into_response();
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
