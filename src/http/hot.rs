//! The verify endpoint answered ahead of the router.
//!
//! Reverse proxies call `GET /auth/{slug}/verify` on every request they pass on, so it is the
//! one route whose routing shows in the service's throughput: the router's match, the parameter
//! list and matched path it stores in the request, and the boxed route future took about 5,900
//! of a cached verify's 38,400 instructions (callgrind, BENCHMARKS.md). [`HotRoutes`] wraps the
//! router: a `GET` whose path has the route's shape ([`is_verify_path`]) goes straight to the
//! verify handler ([`super::tokens::verify_request`]); everything else, `HEAD` included, goes to
//! the router, which keeps the route (its one definition, the OpenAPI document's, and the
//! answer to `HEAD` and other methods). Both run behind the same edge layers (`startup`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::Router;
use tower::Service;

use crate::access::Access;
use crate::configuration::Settings;

/// Whether the router would match `path` (raw, still percent-encoded) to
/// `/auth/{slug}/verify`: one segment between the two, without a `/`, empty included (the
/// router's matcher takes `/auth//verify` too; no org has an empty slug, so it answers 404). A
/// test holds the two to the same answers.
pub fn is_verify_path(path: &str) -> bool {
    path.strip_prefix("/auth/")
        .and_then(|rest| rest.strip_suffix("/verify"))
        .is_some_and(|slug| !slug.contains('/'))
}

/// The router, with `GET /auth/{slug}/verify` answered in front of it (see the module docs).
#[derive(Clone)]
pub struct HotRoutes {
    router: Router,
    access: Arc<Access>,
    settings: Arc<Settings>,
}

impl HotRoutes {
    pub fn new(router: Router, access: Arc<Access>, settings: Arc<Settings>) -> HotRoutes {
        HotRoutes {
            router,
            access,
            settings,
        }
    }
}

impl Service<Request> for HotRoutes {
    type Response = Response;
    type Error = Infallible;
    type Future = HotFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready (axum's `Router::poll_ready`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> HotFuture {
        if req.method() == Method::GET && is_verify_path(req.uri().path()) {
            let (access, settings) = (self.access.clone(), self.settings.clone());
            HotFuture::Verify {
                fut: Box::pin(async move {
                    super::tokens::verify_request(&access, &settings, req).await
                }),
            }
        } else {
            HotFuture::Routed {
                fut: self.router.call(req),
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The verify handler's future, or the router's.
    #[project = HotProj]
    pub enum HotFuture {
        Verify { fut: Pin<Box<dyn Future<Output = Response> + Send>> },
        Routed { #[pin] fut: RouteFuture<Infallible> },
    }
}

impl Future for HotFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            HotProj::Verify { fut } => fut.as_mut().poll(cx).map(Ok),
            HotProj::Routed { fut } => fut.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    /// `is_verify_path` answers as the router's matcher does, for the route's own pattern.
    #[tokio::test]
    async fn the_hot_path_is_taken_exactly_where_the_router_matches() {
        let router = Router::new()
            .route("/auth/{slug}/verify", get(|| async { "matched" }))
            .route("/auth", get(|| async { "other" }));
        let paths = [
            "/auth/acme/verify",
            "/auth/a/verify",
            "/auth/%61cme/verify",
            "/auth/a%2Fb/verify",
            "/auth/a%00b/verify",
            "/auth/a.b-c_d~e/verify",
            "/auth/verify/verify",
            "/auth//verify",
            "/auth/verify",
            "/auth/a/b/verify",
            "/auth/acme/verify/",
            "/auth/acme/verify/x",
            "/auth/acme/verifyx",
            "/auth/acme/Verify",
            "/Auth/acme/verify",
            "//auth/acme/verify",
            "/auth/acme//verify",
            "/auth",
            "/auth/",
            "/auth/acme",
            "/healthz",
            "/",
        ];
        for path in paths {
            let answer = router
                .clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let body = axum::body::to_bytes(answer.into_body(), 1024)
                .await
                .unwrap();
            let routed = body.as_ref() == b"matched";
            assert_eq!(is_verify_path(path), routed, "{path}");
        }
        // An unmatched path gets the router's 404.
        let answer = router
            .oneshot(
                Request::get("/auth/a/b/verify")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    }
}
