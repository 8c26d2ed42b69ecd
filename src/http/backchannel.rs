//! `POST /sso/backchannel-logout`: the receiver of OpenID Connect Back-Channel Logout 1.0.
//! Answers as §2.8 says: 200 with `Cache-Control: no-store` (also when no session matched),
//! 400 `{"error": "invalid_request", "error_description": …}` for any bad request or token,
//! 503 only when the database is down. The token is never logged or echoed.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::{now, AppState};
use crate::sso::BackchannelError;
use crate::store::StoreError;

/// A logout token is at most 16 KiB; the form around it gets a little more.
const MAX_BODY_BYTES: usize = 20 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/sso/backchannel-logout",
        post(backchannel_logout).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
    )
}

fn no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

fn invalid_request(description: String) -> Response {
    no_store(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_request", "error_description": description}),
    )
}

/// The one `logout_token` field of a form body; `None` when absent, repeated or not a form.
fn logout_token(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return None;
    }
    let mut tokens = url::form_urlencoded::parse(body).filter(|(k, _)| k == "logout_token");
    match (tokens.next(), tokens.next()) {
        (Some((_, t)), None) if !t.is_empty() => Some(t.into_owned()),
        _ => None,
    }
}

async fn backchannel_logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = logout_token(&headers, &body) else {
        return invalid_request(BackchannelError::NoToken.to_string());
    };
    match state.sso.backchannel_logout(&token, now()).await {
        Ok(ended) => {
            let sessions: u64 = ended.iter().map(|e| e.sessions_ended).sum();
            tracing::info!(connections = ended.len(), sessions, "back-channel logout");
            no_store(StatusCode::OK, json!({}))
        }
        Err(BackchannelError::Store(e)) => {
            // §2.8: no answer of this endpoint may be cached, errors included.
            let mut res = match e {
                StoreError::Unavailable(_) => ApiError::unavailable(e).into_response(),
                other => ApiError::internal(other).into_response(),
            };
            res.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => {
            tracing::info!(reason = %e, "back-channel logout refused");
            invalid_request(e.to_string())
        }
    }
}
