//! Cross-site request forgery protection for every state-changing request that rides on the
//! session cookie. Browsers say where a request comes from (`Sec-Fetch-Site`, `Origin`); a POST
//! from another site is refused before any handler runs. Requests carrying `Authorization` (the
//! admin API, bearer tokens) are not cookie-authenticated and pass; so do clients that send
//! neither header (not a browser, so no ambient cookie to abuse). The session cookie is also
//! `SameSite=Lax`, which keeps it off cross-site POSTs in every current browser.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::pages;

/// The decision, as a pure function of the request's headers.
pub fn allowed(
    method: &Method,
    has_authorization: bool,
    fetch_site: Option<&str>,
    origin: Option<&str>,
    own_origin: &str,
) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || has_authorization {
        return true;
    }
    if let Some(site) = fetch_site {
        return matches!(site, "same-origin" | "none");
    }
    match origin {
        Some(o) => o == own_origin,
        None => true,
    }
}

/// The service's own origin (`scheme://host[:port]` of `ORGSSO_PUBLIC_URL`), computed once.
#[derive(Clone)]
pub struct OwnOrigin(pub std::sync::Arc<str>);

pub async fn guard(State(own): State<OwnOrigin>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let h = req.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let own_origin: &str = &own.0;
    if allowed(
        req.method(),
        h.contains_key(header::AUTHORIZATION),
        text("sec-fetch-site"),
        text("origin"),
        own_origin,
    ) {
        return next.run(req).await;
    }
    // The logged path never holds a setup link's token.
    tracing::warn!(path = %super::request_id::log_path(req.uri().path()), "cross-site request refused");
    if req.uri().path().starts_with("/api/") {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site_request",
            "This request came from another site and was refused.",
        )
        .into_response();
    }
    let rid = super::RequestId::of(h);
    pages::message(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was sent from another site, so it was refused to protect your account. Open orgsso directly and try again.",
        &rid,
        vec![pages::Link { href: "/login".into(), label: "Go to sign-in" }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let own = "https://sso.example.com";
        let post = Method::POST;
        #[rustfmt::skip]
        type Case<'a> = (&'a Method, bool, Option<&'a str>, Option<&'a str>, bool);
        let cases: &[Case] = &[
            (
                &Method::GET,
                false,
                Some("cross-site"),
                Some("https://evil.example"),
                true,
            ),
            (&post, false, Some("same-origin"), Some(own), true),
            (&post, false, Some("none"), None, true),
            (&post, false, Some("cross-site"), None, false),
            (
                &post,
                false,
                Some("same-site"),
                Some("https://app.example.com"),
                false,
            ),
            (&post, false, None, Some("https://evil.example"), false),
            (&post, false, None, Some("null"), false),
            (&post, false, None, Some(own), true),
            (&post, false, None, None, true),
            (
                &post,
                true,
                Some("cross-site"),
                Some("https://evil.example"),
                true,
            ),
            (&Method::DELETE, false, Some("cross-site"), None, false),
        ];
        for (i, (m, auth, site, origin, expect)) in cases.iter().enumerate() {
            assert_eq!(allowed(m, *auth, *site, *origin, own), *expect, "case {i}");
        }
    }
}
