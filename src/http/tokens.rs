//! Apps and APIs: `GET /auth/{slug}/verify` (for reverse proxies and services),
//! `POST /api/v1/me/token` and `GET /.well-known/jwks.json`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use serde_json::json;

use super::error::ApiError;
use super::openapi::ErrorBody;
use super::signed_in::{not_signed_in, ApiSignedIn};
use super::{now, AppState};
use crate::access::{Access, Denied, Identity, KeyError};
use crate::configuration::Settings;
use crate::jwt::verify::invalid_token_challenge;
use crate::telemetry::metrics::{self as m, Credential, Decision};

/// Verify and the JWKS: no session, no CSRF guard (see `http::sessionless_router`).
pub fn sessionless_router() -> Router<AppState> {
    Router::new()
        .route("/auth/{slug}/verify", get(verify))
        .route("/.well-known/jwks.json", get(jwks))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/me/token", post(mint))
}

/// 401 `invalid_token`: the reason in the body and in `challenge` (`WWW-Authenticate`).
fn unauthorized(reason: &str, challenge: &str) -> Response {
    let mut res = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": {"code": "invalid_token", "message": reason}})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn denied(e: Denied) -> Response {
    refused(e).1
}

/// A refusal's answer and its class for the metrics, decided in one place so the two cannot
/// drift apart (503 and 500 are `unavailable`).
fn refused(e: Denied) -> (Decision, Response) {
    match e {
        Denied::Unauthenticated(reason) => (
            Decision::Denied,
            unauthorized(reason, &invalid_token_challenge(reason)),
        ),
        // Our fault or the identity provider's, not the token's: 503, so that clients retry
        // rather than drop a good token.
        Denied::Token(e) if e.is_server_side() => {
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            tracing::warn!(error_code = e.code(), error = %e, cause, "could not check a bearer token");
            let mut res = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                e.code(),
                format!("{e}; try again shortly"),
            )
            .into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            (Decision::Unavailable, res)
        }
        Denied::Token(e) => {
            tracing::debug!(error_code = e.code(), "bearer token refused");
            (
                Decision::Denied,
                unauthorized(&e.to_string(), &e.www_authenticate()),
            )
        }
        Denied::UnknownOrg => (
            Decision::UnknownOrg,
            ApiError::not_found(
                "org_not_found",
                "There is no org with this slug: check the verify URL.",
            )
            .into_response(),
        ),
        Denied::Store(s) => (Decision::Unavailable, ApiError::from(s).into_response()),
    }
}

/// The headers of a verify answer: the six `granted` sets, then `x-request-id` and
/// `content-length`, added on the way out. Room for all of them from the start, so that the
/// map does not grow (and copy itself) in the layers.
const ANSWER_HEADERS: usize = 8;

fn granted(id: Identity) -> Response {
    // The hot path's answer, built in one go: the body serialised into a buffer of its usual
    // size, the header map sized once, and the identity's own strings moved into the
    // `X-Auth-*` values (no copies). The same answer `Json` and `HeaderValue::from_str` gave.
    let mut body = Vec::with_capacity(256);
    if serde_json::to_writer(&mut body, &id).is_err() {
        return Json(&id).into_response();
    }
    let mut res = Response::new(axum::body::Body::from(body));
    let h = res.headers_mut();
    h.reserve(ANSWER_HEADERS);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let owned = |v: String| HeaderValue::from_maybe_shared(Bytes::from(v)).ok();
    let mut set = |name: &'static str, value: Option<HeaderValue>| {
        if let Some(v) = value {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set("x-auth-subject", owned(id.subject));
    set("x-auth-email", id.email.and_then(owned));
    set(
        "x-auth-role",
        id.role.map(|r| HeaderValue::from_static(r.as_str())),
    );
    set("x-auth-org", owned(id.org));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /auth/{slug}/verify`: 200 with `X-Auth-*` headers, 401 with a reason, or 503 when the
/// token cannot be checked now. A bearer token wins over a session cookie when both are sent.
#[utoipa::path(get, path = "/auth/{slug}/verify", tag = "verify",
    params(("slug" = String, Path, description = "The org's slug", example = "acme")),
    responses(
        (status = 200, description = "Let through: who the caller is", body = Identity, headers(
            ("X-Auth-Subject" = String, description = "The user id (session) or the token's `sub`"),
            ("X-Auth-Email" = String, description = "The email, when known"),
            ("X-Auth-Role" = String, description = "`admin`, `developer` or `viewer`, when known"),
            ("X-Auth-Org" = String, description = "The org's slug"))),
        (status = 401, description = "No valid session cookie or bearer token", body = ErrorBody, headers(
            ("WWW-Authenticate" = String, description = "`Bearer` with `error=\"invalid_token\"` and a description (RFC 6750)"))),
        (status = 404, description = "There is no org with this slug", body = ErrorBody),
        (status = 503, description = "The token cannot be checked now (keys unavailable, database down); retry", body = ErrorBody, headers(
            ("Retry-After" = String, description = "Seconds to wait")))))]
pub(super) async fn verify(
    State(access): State<Arc<Access>>,
    State(settings): State<Arc<Settings>>,
    Path(slug): Path<String>,
    // The request itself, not a `HeaderMap` (which the extractor would clone).
    req: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let headers = req.headers();
    let org = match access.org(&slug).await {
        Ok(org) => org,
        Err(e) => {
            let (decision, res) = refused(e);
            // No org label: the slug of an unknown org is the caller's input.
            m::verify_decision(decision, Credential::None, None, started.elapsed());
            return res;
        }
    };
    let (credential, result) = if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let result = match auth.to_str().ok().and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        }) {
            Some(token) => access.verify_bearer(&org, token.trim(), now()).await,
            None => Err(Denied::Unauthenticated(
                "the Authorization header must be Bearer <token>",
            )),
        };
        (Credential::Bearer, result)
    } else if let Some(cookie) = CookieJar::from_headers(headers).get(&settings.session.cookie_name)
    {
        let result = access
            .verify_cookie(&org, cookie.value(), now().unix_timestamp())
            .await;
        (Credential::Cookie, result)
    } else {
        let result = Err(Denied::Unauthenticated(
            "no session cookie and no bearer token",
        ));
        (Credential::None, result)
    };
    let (decision, res) = match result {
        Ok(id) => (Decision::Allowed, granted(id)),
        Err(e) => refused(e),
    };
    m::verify_decision(
        decision,
        credential,
        settings.metrics.per_org_labels.then_some(org.slug.as_str()),
        started.elapsed(),
    );
    res
}

/// A token minted for the signed-in user.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Minted {
    /// A JWT signed with orgsso's primary key (`iss` = the public URL).
    access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String)]
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: u64,
}

/// `POST /api/v1/me/token`: a short-lived JWT for the signed-in user.
#[utoipa::path(post, path = "/api/v1/me/token", tag = "me",
    responses((status = 200, description = "A short-lived JWT for the signed-in user", body = Minted),
        (status = 403, description = "A cross-site request (the session cookie rode on another site's form)", body = ErrorBody)))]
pub(super) async fn mint(
    State(access): State<Arc<Access>>,
    ApiSignedIn { session, .. }: ApiSignedIn,
) -> Response {
    // The extractor applied the absolute timeout and idle refresh through the session layer.
    let Some(id) = session.id().map(|i| i.to_string()) else {
        return not_signed_in().into_response();
    };
    match access.mint_for_session(&id, now()).await {
        Ok(Some((token, ttl))) => {
            let mut res = Json(Minted {
                access_token: token,
                token_type: "Bearer",
                expires_in: ttl,
            })
            .into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Ok(None) => not_signed_in().into_response(),
        Err(e) => denied(e),
    }
}

/// `GET /.well-known/jwks.json`: every public key tokens are signed with, retired ones
/// included until their tokens expire.
async fn jwks(State(access): State<Arc<Access>>) -> Response {
    match access.jwks_document(now().unix_timestamp()).await {
        Ok(doc) => ([(header::CACHE_CONTROL, "public, max-age=300")], Json(doc)).into_response(),
        Err(KeyError::Store(e)) => ApiError::from(e).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use jsonwebtoken::Algorithm;
    use serde_json::Value;

    use super::*;
    use crate::jose::jwks::JwksError;
    use crate::jwt::verify::TokenError;

    async fn parts(res: Response) -> (StatusCode, HeaderMap, Value) {
        let (parts, body) = res.into_parts();
        let body = axum::body::to_bytes(body, 64 * 1024).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&body).unwrap(),
        )
    }

    /// Each refusal's metric class goes with the status it is answered with.
    #[test]
    fn refusals_are_counted_as_they_are_answered() {
        use crate::store::StoreError;
        let outage = TokenError::KeysUnavailable {
            secret: "idp".into(),
            source: JwksError::BadStatus {
                uri: "https://idp.example/jwks".into(),
                status: 503,
            },
        };
        let cases = [
            (
                Denied::Unauthenticated("no session cookie and no bearer token"),
                Decision::Denied,
                StatusCode::UNAUTHORIZED,
            ),
            (
                Denied::Token(TokenError::TooLarge),
                Decision::Denied,
                StatusCode::UNAUTHORIZED,
            ),
            (
                Denied::Token(outage),
                Decision::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Denied::UnknownOrg,
                Decision::UnknownOrg,
                StatusCode::NOT_FOUND,
            ),
            (
                Denied::Store(StoreError::Unavailable("down".into())),
                Decision::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Denied::Store(StoreError::Corrupt("bad row".into())),
                Decision::Unavailable,
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (denied, decision, status) in cases {
            let label = format!("{denied:?}");
            let (got, res) = refused(denied);
            assert_eq!((got, res.status()), (decision, status), "{label}");
        }
    }

    #[tokio::test]
    async fn key_outages_answer_503_and_token_faults_401() {
        let (status, headers, body) = parts(denied(Denied::Token(TokenError::KeysUnavailable {
            secret: "idp".into(),
            source: JwksError::BadStatus {
                uri: "https://idp.example/jwks".into(),
                status: 503,
            },
        })))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key(header::RETRY_AFTER));
        assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(body["error"]["code"], "keys_unavailable");
        assert!(!body.to_string().contains("idp.example"), "{body}");

        let e = TokenError::NoPublishedKey {
            secret: "idp".into(),
            source: JwksError::NoMatchingKey {
                uri: "https://idp.example/jwks".into(),
                alg: Algorithm::RS256,
                kid: Some("k1".into()),
            },
        };
        let (challenge, reason) = (e.www_authenticate(), e.to_string());
        let (status, headers, body) = parts(denied(Denied::Token(e))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], challenge.as_str());
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            body,
            json!({"error": {"code": "invalid_token", "message": reason}})
        );

        let (status, headers, _) = parts(denied(Denied::Unauthenticated("no \"way\""))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"no way\""
        );
    }
}
