//! `X-Request-Id`: kept when the client (a proxy in front) sent a usable one, else made here;
//! set on the request, where handlers, pages and the request span read it, and answered on the
//! response. A caller's id is usable only when short and made of safe characters
//! ([`usable`]): it lands in logs and pages, which must not carry text an attacker chose (line
//! breaks, quotes, markup, a kilobyte of anything).
//!
//! One layer instead of tower-http's set + propagate pair: no request extension (nothing reads
//! it), no boxed future, and the id made from the thread's RNG on the stack instead of an
//! `OsRng` system call and two heap strings per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderName, HeaderValue, Request, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use tower::{Layer, Service};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh id: 96 random bits, base64url (16 characters), as before. Unique, not secret: the
/// thread's reseeding generator is enough and costs no system call.
pub fn make() -> HeaderValue {
    let mut raw = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut raw);
    let mut text = [0u8; 16];
    let n = URL_SAFE_NO_PAD
        .encode_slice(raw, &mut text)
        .expect("12 bytes encode to 16 characters");
    HeaderValue::from_bytes(&text[..n]).expect("base64url is a valid header value")
}

/// The longest caller-sent id kept (a UUID is 36 characters, a W3C trace id 32).
pub const MAX_CALLER_ID: usize = 64;

/// Whether a caller's id may stand: 1 to [`MAX_CALLER_ID`] characters from `A-Z a-z 0-9 - _ . :`.
pub fn usable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_CALLER_ID
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

#[derive(Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = match req.headers().get(&X_REQUEST_ID).filter(|v| usable(v)) {
            Some(v) => v.clone(),
            None => {
                let v = make();
                req.headers_mut().insert(X_REQUEST_ID, v.clone());
                v
            }
        };
        RequestIdFuture {
            inner: self.inner.call(req),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, R, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        // A handler that set its own id (none does today) keeps it.
        if let Some(id) = this.id.take() {
            res.headers_mut().entry(X_REQUEST_ID).or_insert(id);
        }
        Poll::Ready(Ok(res))
    }
}

/// The path as logged: a setup link's token is its only credential, and span fields are
/// printed with every event of the request, so it is replaced by `{token}`.
pub fn log_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/setup/") {
        Some(rest) => {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/setup/{{token}}{tail}").into()
        }
        None => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_safe_caller_ids_are_kept() {
        let long = "a".repeat(MAX_CALLER_ID + 1);
        let max = "a".repeat(MAX_CALLER_ID);
        #[rustfmt::skip]
        let cases: &[(&[u8], bool)] = &[
            (b"3f2c9a1e-7b4d-4e8a-9c1f-2b3d4e5f6a7b", true),
            (b"Root=1-67a2b3c4-abcdef012345678901234567", false),
            (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true),
            (b"req_01.trace:7", true),
            (max.as_bytes(), true),
            (long.as_bytes(), false),
            (b"", false),
            (b"a b", false),
            (b"x\" injected=\"y", false),
            (b"<script>", false),
            (b"caf\xc3\xa9", false),
        ];
        for (raw, ok) in cases {
            let v = HeaderValue::from_bytes(raw).unwrap();
            assert_eq!(usable(&v), *ok, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn ids_are_16_url_safe_characters_and_differ() {
        let a = make();
        let b = make();
        for v in [&a, &b] {
            let s = v.to_str().unwrap();
            assert_eq!(s.len(), 16, "{s}");
            assert!(
                s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
                "{s}"
            );
        }
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn kept_when_sent_made_when_not_and_answered() {
        use tower::ServiceExt as _;
        let echo = tower::service_fn(|req: Request<()>| async move {
            let seen = req.headers().get(&X_REQUEST_ID).cloned();
            Ok::<_, std::convert::Infallible>(Response::new(seen))
        });
        let svc = RequestIdLayer.layer(echo);
        let sent = Request::builder()
            .header("x-request-id", "from-the-proxy")
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(sent).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "from-the-proxy");
        assert_eq!(res.body().as_ref().unwrap(), "from-the-proxy");

        // Text a caller chose that logs and pages must not carry: replaced, everywhere.
        let spoof = Request::builder()
            .header("x-request-id", "ok\" level=\"error")
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(spoof).await.unwrap();
        let made = res.headers()["x-request-id"].clone();
        assert_eq!(made.len(), 16);
        assert_eq!(
            res.body().as_ref(),
            Some(&made),
            "the handler saw the new id"
        );

        let res = svc.oneshot(Request::new(())).await.unwrap();
        let answered = res.headers()["x-request-id"].clone();
        assert_eq!(answered.len(), 16);
        assert_eq!(
            res.body().as_ref(),
            Some(&answered),
            "the handler saw the same id"
        );
    }

    #[test]
    fn a_setup_token_never_reaches_the_log() {
        assert_eq!(log_path("/setup/SECRET"), "/setup/{token}");
        assert_eq!(log_path("/setup/SECRET/test"), "/setup/{token}/test");
        assert_eq!(log_path("/setup/"), "/setup/{token}");
        assert_eq!(log_path("/sso/callback"), "/sso/callback");
        assert_eq!(log_path("/admin/setup/x"), "/admin/setup/x");
    }
}
