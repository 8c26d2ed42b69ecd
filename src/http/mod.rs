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

impl RequestId {
    /// The request id in `headers` ("" when the layer did not set one).
    pub fn of(headers: &axum::http::HeaderMap) -> String {
        headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(Self::of(&parts.headers)))
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

/// A static asset compiled into the binary, cacheable for an hour.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/static/style.css",
            get(|| async { asset("text/css; charset=utf-8", pages::STYLESHEET) }),
        )
        .route(
            "/static/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", pages::SCRIPT) }),
        )
        .merge(admin::router())
        .merge(browser::router())
        .merge(console::router())
        .merge(secrets::router())
        .merge(tokens::router())
}
