//! HTTP: thin handlers over `sso` and `store`. Each module owns its `router()`.

pub mod admin;
pub mod backchannel;
pub mod browser;
pub mod client_addr;
pub mod client_jwks;
pub mod console;
pub mod csrf;
pub mod edge;
pub mod error;
pub mod form;
pub mod hot;
pub mod jwt_secrets;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod paging;
pub mod request_id;
pub mod scim;
pub mod setup;
pub mod signed_in;
pub mod tokens;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::access::Access;
use crate::configuration::Settings;
use crate::crypto::SecretBox;
use crate::sso::Sso;
use crate::store::Store;
use crate::throttle::Throttle;

/// The router's one state: the services side by side, behind one `Arc`. The router clones
/// its state for every request, so a clone is one counter increment, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// Handlers read listings through `store`; every change goes through a service (`sso`,
/// `access`), which owns its rules and caches.
pub struct Services {
    pub sso: Sso,
    pub access: Arc<Access>,
    pub store: Store,
    /// What the HTTP layer itself reads: cookies, the admin token, session timeouts.
    pub settings: Arc<Settings>,
    /// The service key, for the console's operator fingerprint and the session's sealed ID
    /// token (read at logout).
    pub secret_box: SecretBox,
    /// Per-address throttles for failed credentials and sign-in starts (see `throttle`;
    /// SCIM's bearer check calls `check`, then `failed` or `succeeded`).
    pub throttle: Arc<Throttle>,
}

impl FromRef<AppState> for Sso {
    fn from_ref(s: &AppState) -> Sso {
        s.sso.clone()
    }
}

impl FromRef<AppState> for Arc<Access> {
    fn from_ref(s: &AppState) -> Arc<Access> {
        s.access.clone()
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(s: &AppState) -> Store {
        s.store.clone()
    }
}

impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(s: &AppState) -> Arc<Settings> {
        s.settings.clone()
    }
}

/// 303 to `to`, never cached.
pub fn see_other(to: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
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

async fn readyz(State(store): State<Store>) -> impl IntoResponse {
    if store.ping().await {
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

/// Routes served without the session layer and the CSRF guard: health, static assets, verify
/// and the JWKS (the hot paths every proxied request takes: none reads the session, verify
/// reads the cookie itself through the live-session cache, none changes anything on a cookie's
/// authority), the OpenAPI document (static), and the SSO callback (a GET that writes its new
/// session itself, see `browser::callback_router`).
pub fn sessionless_router() -> Router<AppState> {
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
        .merge(tokens::sessionless_router())
        .merge(openapi::router())
        .merge(browser::callback_router())
}

/// Everything else: served behind the session layer and the CSRF guard (see `startup`).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(admin::router())
        .merge(backchannel::router())
        .merge(browser::router())
        .merge(client_jwks::router())
        .merge(console::router())
        .merge(jwt_secrets::router())
        .merge(scim::router())
        .merge(setup::router())
        .merge(tokens::router())
}
