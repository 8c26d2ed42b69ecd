//! Form bodies of signed-in pages (the console, sign-out, ending a session): read once, the
//! per-session anti-forgery token (`csrf`) checked in constant time before any field is used.
//! Fields keep their order and may repeat (the rule editor sends one `claim` per row).
//!
//! This is on top of `http::csrf` (Origin/Sec-Fetch-Site) and SameSite=Lax cookies. Forms shown
//! before sign-in ("Login with SSO") carry no token: a token needs a session, and making one
//! for every anonymous visitor would let anyone fill the session table.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::Response;
use tower_sessions::Session;

use super::pages::{self, PageError};
use super::AppState;
use crate::crypto::{ct_eq, random_token};

/// Where the session keeps its anti-forgery token.
pub const KEY_CSRF: &str = "csrf";

/// The session's anti-forgery token, made on first use.
pub async fn csrf_token(session: &Session, rid: &str) -> Result<String, PageError> {
    let failed = |e| PageError::from_session(e, rid.to_owned());
    if let Some(t) = session.get::<String>(KEY_CSRF).await.map_err(failed)? {
        return Ok(t);
    }
    let t = random_token(32);
    session.insert(KEY_CSRF, &t).await.map_err(failed)?;
    Ok(t)
}

/// Largest form accepted (a PEM key of 8192 bits is about 6 KiB).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// A form's fields, in order. Values may be secrets (the admin token, a client secret, a
/// private key), so `Debug` shows the field names only.
#[derive(Default, Clone)]
pub struct FormData(Vec<(String, String)>);

impl std::fmt::Debug for FormData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl FormData {
    pub fn parse(body: &[u8]) -> FormData {
        FormData(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// Whether a request was sent by a browser: browsers mark every POST with `Sec-Fetch-Site` or
/// `Origin`. Only browsers carry ambient cookies a forged form could ride on, so the contract's
/// cookie-only endpoints (`POST /logout`) ask browsers alone for the form token.
pub fn from_browser(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key("sec-fetch-site") || headers.contains_key(axum::http::header::ORIGIN)
}

/// A form whose `csrf` field matched this session's token.
pub struct CsrfForm(pub FormData);

/// Whether `form` carries this session's token; the refusal page when not.
pub async fn verify(
    session: &Session,
    form: &FormData,
    rid: &str,
    path: &str,
) -> Result<(), Response> {
    let expected: Option<String> = session.get(KEY_CSRF).await.ok().flatten();
    let back = if path.starts_with("/admin") {
        "/admin"
    } else {
        "/"
    };
    match (expected, form.has("csrf")) {
        (_, false) => Err(refused(rid, "no token", back)),
        (None, true) => Err(refused(rid, "no token in the session", back)),
        (Some(t), true) if !ct_eq(form.get("csrf"), &t) => Err(refused(rid, "wrong token", back)),
        _ => Ok(()),
    }
}

fn refused(rid: &str, why: &str, back: &str) -> Response {
    tracing::warn!(reason = why, "form refused");
    pages::message(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form did not come from the page orgsso gave you (its anti-forgery token is missing or out of date), so nothing was changed. Reload the page and try again.",
        rid,
        vec![pages::Link {
            href: back.into(),
            label: "Back",
        }],
    )
}

impl FromRequest<AppState> for CsrfForm {
    type Rejection = Response;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let rid = super::RequestId::of(&parts.headers);
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(|(status, msg)| pages::message(status, "Console error", msg, &rid, vec![]))?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                pages::message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Form too large",
                    "This form is larger than orgsso accepts (256 KiB).",
                    &rid,
                    vec![],
                )
            })?;
        let form = FormData::parse(&bytes);
        verify(&session, &form, &rid, parts.uri.path()).await?;
        Ok(CsrfForm(form))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_and_repeat() {
        let f = FormData::parse(b"claim=groups&op=in&claim=%2Frealm_access%2Froles&value=a%2Cb&x=");
        assert_eq!(f.all("claim"), vec!["groups", "/realm_access/roles"]);
        assert_eq!(f.get("value"), "a,b");
        assert_eq!(f.get("missing"), "");
        assert!(f.has("x") && !f.has("y"));
        let shown = format!("{f:?}");
        assert!(
            shown.contains("claim") && !shown.contains("groups"),
            "{shown}"
        );
    }
}
