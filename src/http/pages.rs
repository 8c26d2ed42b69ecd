//! Server-rendered pages: templates, security headers, and the error page every browser
//! failure ends on.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

use crate::sso::LoginError;
use crate::store::StoreError;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, src) in [
            ("base.html", include_str!("templates/base.html")),
            ("message.html", include_str!("templates/message.html")),
            ("login.html", include_str!("templates/login.html")),
            ("choose.html", include_str!("templates/choose.html")),
            ("home.html", include_str!("templates/home.html")),
            ("signed_out.html", include_str!("templates/signed_out.html")),
            ("sessions.html", include_str!("templates/sessions.html")),
            (
                "admin_login.html",
                include_str!("templates/admin_login.html"),
            ),
            ("admin_orgs.html", include_str!("templates/admin_orgs.html")),
            (
                "console_base.html",
                include_str!("templates/console_base.html"),
            ),
            (
                "console_sso.html",
                include_str!("templates/console_sso.html"),
            ),
            (
                "console_disconnect.html",
                include_str!("templates/console_disconnect.html"),
            ),
            (
                "console_rules.html",
                include_str!("templates/console_rules.html"),
            ),
            (
                "console_members.html",
                include_str!("templates/console_members.html"),
            ),
            (
                "console_secrets.html",
                include_str!("templates/console_secrets.html"),
            ),
            (
                "console_scim.html",
                include_str!("templates/console_scim.html"),
            ),
            (
                "register_uris.html",
                include_str!("templates/register_uris.html"),
            ),
            (
                "rule_macros.html",
                include_str!("templates/rule_macros.html"),
            ),
            ("setup.html", include_str!("templates/setup.html")),
            (
                "console_setup_links.html",
                include_str!("templates/console_setup_links.html"),
            ),
            (
                "console_test.html",
                include_str!("templates/console_test.html"),
            ),
            (
                "test_result.html",
                include_str!("templates/test_result.html"),
            ),
            (
                "console_audit.html",
                include_str!("templates/console_audit.html"),
            ),
        ] {
            env.add_template(name, src).expect("templates compile");
        }
        env
    })
}

pub const STYLESHEET: &str = include_str!("templates/style.css");
/// The console's few conveniences (copy buttons, presets, rule rows); no inline script anywhere.
pub const SCRIPT: &str = include_str!("templates/console.js");

/// Headers for every HTML page: no framing, no referrer leaks of codes or states, nothing
/// loaded from elsewhere, nothing cached.
pub fn security_headers(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::CACHE_CONTROL, "no-store");
}

/// Renders `template` with `ctx` as a complete response.
pub fn render(status: StatusCode, template: &str, ctx: impl Serialize) -> Response {
    let body = env()
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, template, "template failed");
            "<!doctype html><title>Error</title><p>Something went wrong rendering this page.</p>"
                .into()
        });
    let mut res = (status, Html(body)).into_response();
    security_headers(res.headers_mut());
    res
}

#[derive(Serialize)]
pub struct Link {
    pub href: String,
    pub label: &'static str,
}

/// A page that says what happened and what to try, with the request id to quote.
pub fn message(
    status: StatusCode,
    title: &str,
    message: &str,
    request_id: &str,
    links: Vec<Link>,
) -> Response {
    let kind = if status.is_success() { "info" } else { "error" };
    render(
        status,
        "message.html",
        minijinja::context! { title, message, request_id, kind, links, hint => None::<&str> },
    )
}

/// A browser-facing failure: rendered as an error page with its status.
pub struct PageError {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
    pub request_id: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let links = vec![Link {
            href: "/login".into(),
            label: "Back to sign-in",
        }];
        message(
            self.status,
            self.title,
            &self.message,
            &self.request_id,
            links,
        )
    }
}

impl PageError {
    /// The session layer failed (its store is the database).
    pub fn from_session(e: tower_sessions::session::Error, request_id: String) -> Self {
        Self::from_store(e.into(), request_id)
    }

    pub fn from_store(e: StoreError, request_id: String) -> Self {
        let (status, message) = match &e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service cannot reach its database right now. Try again in a moment."
                        .to_owned(),
                )
            }
            _ => {
                tracing::error!(error = %e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side. Try again; if it persists, give your administrator the request id below.".to_owned())
            }
        };
        PageError {
            status,
            title: "Sign-in failed",
            message,
            request_id,
        }
    }

    /// Maps a sign-in failure to its page: 4xx for everything the browser, the IdP or the
    /// token did wrong; 5xx only for our own faults.
    pub fn from_login(e: LoginError, request_id: String) -> Self {
        let status = match &e {
            LoginError::UnknownLoginUrl => StatusCode::NOT_FOUND,
            LoginError::Retired => StatusCode::GONE,
            LoginError::TooManyPending => StatusCode::TOO_MANY_REQUESTS,
            LoginError::BadRequest(_)
            | LoginError::UnknownFlow
            | LoginError::FlowExpired
            | LoginError::OtherBrowser
            | LoginError::WrongIssuer { .. } => StatusCode::BAD_REQUEST,
            LoginError::Idp { error, .. } if error == "access_denied" => StatusCode::FORBIDDEN,
            LoginError::Idp { .. } => StatusCode::BAD_REQUEST,
            // The IdP misbehaved (down, slow, refused, garbage): the sign-in depended on it.
            LoginError::Exchange(_) | LoginError::ClientAuth { .. } => {
                StatusCode::FAILED_DEPENDENCY
            }
            LoginError::IdToken(t) if t.is_idp_fault() => StatusCode::FAILED_DEPENDENCY,
            LoginError::IdToken(_) => StatusCode::UNAUTHORIZED,
            // The ID token was good; the IdP's userinfo answer was not (down, refused, garbage,
            // badly signed, about someone else).
            LoginError::Userinfo(_) | LoginError::UnstorableClaim { .. } => {
                StatusCode::FAILED_DEPENDENCY
            }
            LoginError::Denied { .. } | LoginError::Deprovisioned => StatusCode::FORBIDDEN,
            LoginError::Store(_) => {
                let LoginError::Store(s) = e else {
                    unreachable!()
                };
                return Self::from_store(s, request_id);
            }
        };
        tracing::info!(
            reason = e.code(),
            status = status.as_u16(),
            "sign-in refused"
        );
        let title = match status {
            StatusCode::NOT_FOUND => "Login link not found",
            StatusCode::GONE => "Login link retired",
            StatusCode::FORBIDDEN => "Access denied",
            StatusCode::TOO_MANY_REQUESTS => "Too many sign-ins",
            _ => "Sign-in failed",
        };
        PageError {
            status,
            title,
            message: e.to_string(),
            request_id,
        }
    }
}

/// Minutes precision, UTC: enough to recognise a session or an event.
pub fn minutes_utc(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(dt) => format!("{} {:02}:{:02}", dt.date(), dt.hour(), dt.minute()),
        Err(_) => "—".into(),
    }
}

fn malformed(what: &str, detail: String, request_id: String) -> PageError {
    PageError {
        status: StatusCode::BAD_REQUEST,
        title: "Bad request",
        message: format!(
            "The {what} is malformed ({detail}). Start again from your organisation's login link."
        ),
        request_id,
    }
}

/// `Query` for pages: a malformed query string gets the error page, not plain text.
pub struct PageQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for PageQuery<T>
{
    type Rejection = PageError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, PageError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(PageQuery(v)),
            Err(e) => Err(malformed(
                "address",
                e.body_text(),
                super::RequestId::of(&parts.headers),
            )),
        }
    }
}

/// `Form` for pages, likewise.
pub struct PageForm<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for PageForm<T> {
    type Rejection = PageError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, PageError> {
        let rid = super::RequestId::of(req.headers());
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(PageForm(v)),
            Err(e) => Err(malformed("form", e.body_text(), rid)),
        }
    }
}
