//! The client's address for the throttles, and their 429 answers (with `Retry-After`).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::pages::PageError;
use super::AppState;
use crate::throttle::Throttled;

/// The client's address: the TCP peer, or what a trusted proxy says in `X-Forwarded-For`
/// (`Throttle::client_addr`). Without `ConnectInfo` (a router served without it) every
/// client is `0.0.0.0`: one shared budget, never an error.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(ClientAddr(client_addr(parts, state)))
    }
}

pub fn client_addr(parts: &Parts, state: &AppState) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    state.throttle.client_addr(peer, &forwarded)
}

fn with_retry_after(mut res: Response, t: Throttled) -> Response {
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(t.retry_after_secs()));
    res
}

/// 429 for the JSON API: `{"error": {"code": "too_many_attempts", …}}` and `Retry-After`.
pub fn api_throttled(t: Throttled) -> Response {
    let secs = t.retry_after_secs();
    let err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("Too many wrong credentials from your address: try again in {secs} s."),
    );
    with_retry_after(err.into_response(), t)
}

/// 429 as a page for browsers, with `Retry-After`.
pub fn page_throttled(t: Throttled, title: &'static str, message: String, rid: String) -> Response {
    let page = PageError {
        status: StatusCode::TOO_MANY_REQUESTS,
        title,
        message,
        request_id: rid,
    };
    with_retry_after(page.into_response(), t)
}
