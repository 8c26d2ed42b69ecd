//! HTTP: thin handlers over `sso` and `store`. Each module owns its `router()`.

pub mod admin;
pub mod browser;
pub mod console;
pub mod csrf;
pub mod error;
pub mod form;
pub mod pages;
pub mod secrets;
pub mod session;
pub mod tokens;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::sso::Sso;

#[derive(Clone)]
pub struct AppState {
    pub sso: Sso,
}

impl FromRef<AppState> for Sso {
    fn from_ref(s: &AppState) -> Sso {
        s.sso.clone()
    }
}

/// The request id set by the request-id layer, to show on pages and quote in support.
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(
            parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}

pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(axum::extract::State(sso): axum::extract::State<Sso>) -> impl IntoResponse {
    if sso.store.ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLESHEET,
    )
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/static/style.css", get(stylesheet))
        .merge(admin::router())
        .merge(browser::router())
        .merge(console::router())
        .merge(secrets::router())
        .merge(tokens::router())
}
