//! Text the databases cannot store, refused at the edge.
//!
//! PostgreSQL's text types cannot hold a NUL character; SQLite can. Left to the driver, a NUL in
//! a path, a query, a JSON field or a form field would be a 500 deep inside some handler on
//! PostgreSQL and a 4xx on SQLite. One check in front of every route makes both backends answer
//! alike: a clear 400 before any handler runs, so nothing is half-written. (Claims an IdP sends
//! are checked where sign-in reads them: `oidc::idtoken` for `sub`, `sso::login` for the rest.)

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::error::ApiError;
use super::{pages, RequestId};

/// What every refusal says.
pub const NUL_REFUSED: &str = "The request contains a NUL character (%00 or \\u0000), which orgsso does not accept in any text. Remove it and try again.";

/// The most body this check reads: axum's default limit, which every route but SCIM keeps (or
/// lowers). Larger bodies are refused (413) as the extractors would, by `Content-Length` before
/// anything is read when the client sends one.
pub const MAX_CHECKED_BODY: usize = 2 * 1024 * 1024;
/// SCIM's: a directory's group change may carry many thousands of members.
pub const MAX_CHECKED_SCIM_BODY: usize = 8 * 1024 * 1024;

/// Whether a path or query carries an encoded NUL. A raw NUL cannot reach here: the HTTP
/// parser refuses it.
pub fn uri_has_nul(path_and_query: &str) -> bool {
    path_and_query.contains("%00")
}

/// Whether a JSON text has a raw NUL byte or a `\u0000` escape (one whose backslash is not
/// itself escaped: `"\\u0000"` is the six characters `\u0000`, which any database stores).
pub fn json_has_nul(body: &[u8]) -> bool {
    if body.contains(&0) {
        return true;
    }
    let mut i = 0;
    while let Some(at) = find(&body[i..], b"u0000").map(|p| p + i) {
        let slashes = body[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if slashes % 2 == 1 {
            return true;
        }
        i = at + 1;
    }
    false
}

/// Whether a form body (`application/x-www-form-urlencoded`) carries a NUL.
pub fn form_has_nul(body: &[u8]) -> bool {
    body.contains(&0) || find(body, b"%00").is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum BodyKind {
    Json,
    Form,
    /// Any other type: some handlers read a body as a form whatever its type, so it is
    /// checked as one (a raw NUL or `%00`).
    Other,
    /// No body to check (no content type on a GET or HEAD).
    None,
}

fn body_kind(content_type: Option<&str>) -> BodyKind {
    let Some(ct) = content_type else {
        return BodyKind::Other;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else if mime == "application/json" || mime.ends_with("+json") {
        BodyKind::Json
    } else {
        BodyKind::Other
    }
}

/// The layer in front of the routes: refuses a NUL in the URI, and in a JSON or form body (or
/// any other body: checked as a form), with a 400 in the form the path's clients read (JSON for
/// the APIs and the verify endpoint, a SCIM error for SCIM, a page otherwise). A GET without a
/// body type passes untouched, without a copy, and without the boxed future and service clone
/// `axum::middleware::from_fn` costs every request: verify is such a GET, on the hot path.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefuseNulLayer;

impl<S> Layer<S> for RefuseNulLayer {
    type Service = RefuseNul<S>;
    fn layer(&self, inner: S) -> RefuseNul<S> {
        RefuseNul { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RefuseNul<S> {
    inner: S,
}

type Boxed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

pin_project_lite::pin_project! {
    /// The route's own future when nothing needed reading; a boxed one when a body was.
    #[project = EdgeProj]
    pub enum EdgeFuture<F> {
        Passed { #[pin] inner: F },
        Checked { inner: Boxed },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for EdgeFuture<F> {
    type Output = Result<Response, Infallible>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            EdgeProj::Passed { inner } => inner.poll(cx),
            EdgeProj::Checked { inner } => inner.as_mut().poll(cx),
        }
    }
}

impl<S> Service<Request> for RefuseNul<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let uri_nul = req
            .uri()
            .path_and_query()
            .is_some_and(|pq| uri_has_nul(pq.as_str()));
        if uri_nul {
            let res = refusal(&req, StatusCode::BAD_REQUEST, NUL_REFUSED);
            return EdgeFuture::Checked {
                inner: Box::pin(std::future::ready(Ok(res))),
            };
        }
        let content_type = req.headers().get(header::CONTENT_TYPE);
        let kind = match (content_type, req.method()) {
            (None, &Method::GET | &Method::HEAD) => BodyKind::None,
            (ct, _) => body_kind(ct.and_then(|v| v.to_str().ok())),
        };
        if kind == BodyKind::None {
            return EdgeFuture::Passed {
                inner: self.inner.call(req),
            };
        }
        // The service polled ready goes with the request (tower's contract); a clone stays.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        EdgeFuture::Checked {
            inner: Box::pin(async move {
                match check_body(req, kind).await {
                    Ok(req) => inner.call(req).await,
                    Err(refused) => Ok(refused),
                }
            }),
        }
    }
}

/// Reads a body of `kind` (within the route's limit) and gives the request back with it, or
/// the refusal.
async fn check_body(req: Request, kind: BodyKind) -> Result<Request, Response> {
    let limit = if req.uri().path().starts_with("/scim/") {
        MAX_CHECKED_SCIM_BODY
    } else {
        MAX_CHECKED_BODY
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(refusal(
            &req,
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large.",
        ));
    }
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            let req = Request::from_parts(parts, Body::empty());
            return Err(refusal(
                &req,
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            ));
        }
    };
    let nul = match kind {
        BodyKind::Json => json_has_nul(&bytes),
        BodyKind::Form | BodyKind::Other => form_has_nul(&bytes),
        BodyKind::None => false,
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    if nul {
        return Err(refusal(&req, StatusCode::BAD_REQUEST, NUL_REFUSED));
    }
    Ok(req)
}

fn refusal(req: &Request, status: StatusCode, message: &str) -> Response {
    let path = req.uri().path();
    if path.starts_with("/scim/") {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": status.as_u16().to_string(),
            "scimType": "invalidValue",
            "detail": message,
        });
        let mut res = (status, axum::Json(body)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/scim+json"),
        );
        return res;
    }
    if path.starts_with("/api/") || path.starts_with("/auth/") || path.starts_with("/.well-known/")
    {
        let code = if status == StatusCode::BAD_REQUEST {
            "invalid_text"
        } else {
            "body_too_large"
        };
        return ApiError::new(status, code, message).into_response();
    }
    let rid = RequestId::of(req.headers());
    pages::message(status, "Request refused", message, &rid, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_every_encoding_and_nowhere_else() {
        #[rustfmt::skip]
        let json_cases: &[(&[u8], bool)] = &[
            (br#"{"a": "x\u0000y"}"#, true),
            (br#"{"a\u0000": 1}"#, true),
            (br#"{"a": "\\\u0000"}"#, true),
            (b"{\"a\": \"x\0\"}", true),
            (br#"{"a": "\\u0000"}"#, false),
            (br#"{"a": "\\\\u0000"}"#, false),
            (br#"{"a": "u0000"}"#, false),
            (br#"{"a": "\u0001 \u00001"}"#, true),
            (br#"{"a": "\u0041"}"#, false),
            (b"", false),
        ];
        for (body, nul) in json_cases {
            assert_eq!(
                json_has_nul(body),
                *nul,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        #[rustfmt::skip]
        let form_cases: &[(&[u8], bool)] = &[
            (b"email=a%00b", true),
            (b"email=a\0b", true),
            (b"email=a%2500b", false),
            (b"email=a%0b", false),
            (b"email=a+b", false),
        ];
        for (body, nul) in form_cases {
            assert_eq!(
                form_has_nul(body),
                *nul,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for (uri, nul) in [
            ("/auth/a%00b/verify", true),
            ("/sso/x?return_to=/a%00", true),
            ("/auth/a%2500b/verify", false),
            ("/healthz", false),
        ] {
            assert_eq!(uri_has_nul(uri), nul, "{uri}");
        }
    }

    #[test]
    fn body_kinds_follow_the_content_type() {
        for (ct, kind) in [
            (Some("application/json"), BodyKind::Json),
            (Some("Application/JSON; charset=utf-8"), BodyKind::Json),
            (Some("application/scim+json"), BodyKind::Json),
            (Some("application/x-www-form-urlencoded"), BodyKind::Form),
            (Some("text/plain"), BodyKind::Other),
            (Some("application/jwt"), BodyKind::Other),
            (None, BodyKind::Other),
        ] {
            assert_eq!(body_kind(ct), kind, "{ct:?}");
        }
    }
}
