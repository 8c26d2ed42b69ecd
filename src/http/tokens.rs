//! Apps and APIs: `GET /auth/{slug}/verify` (for reverse proxies and services),
//! `POST /api/v1/me/token` and `GET /.well-known/jwks.json`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytestring::ByteString;
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

// Names built at compile time: `from_static` on a custom name checks it on every call.
const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
const X_AUTH_EMAIL: HeaderName = HeaderName::from_static("x-auth-email");
const X_AUTH_ROLE: HeaderName = HeaderName::from_static("x-auth-role");
const X_AUTH_ORG: HeaderName = HeaderName::from_static("x-auth-org");

/// The org slug of a verify URL, `/auth/{slug}/verify`, percent-decoded as axum's `Path` would,
/// read from the path the router matched rather than through `Path<String>`, which copies the
/// router's parameter list and the slug on every verify. `None` when it is not UTF-8 once
/// decoded: no org has such a slug.
fn verify_slug(path: &str) -> Option<Cow<'_, str>> {
    let raw = path.strip_prefix("/auth/")?.strip_suffix("/verify")?;
    percent_encoding::percent_decode_str(raw).decode_utf8().ok()
}

/// The value of the request's cookie `name`, as `CookieJar::from_headers(headers).get(name)`
/// finds it: every `Cookie` header, `;`-separated pairs, name and value trimmed and
/// percent-decoded, pairs that do not parse skipped, the last of a name winning. Without
/// building the jar, which copies and hashes every cookie the browser sends on every verify.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    let pairs = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'));
    let mut found = None;
    for pair in pairs {
        let Some((n, v)) = pair.split_once('=') else {
            continue;
        };
        let n = n.trim();
        if n.is_empty() {
            continue;
        }
        let decode = |t: &'h str| percent_encoding::percent_decode_str(t).decode_utf8();
        if let (Ok(n), Ok(v)) = (decode(n), decode(v.trim())) {
            if n == name {
                found = Some(v);
            }
        }
    }
    found
}

/// The JSON body of a verify answer: the bytes `serde_json::to_vec(&id)` gives (a test holds
/// it to them), written directly. The derived serializer escapes each of the fourteen keys and
/// values byte by byte; here the keys are constants and a value is copied whole unless it has
/// a character JSON must escape. Sized exactly in the usual case, so the buffer becomes the
/// body without another allocation.
fn identity_json(id: &Identity) -> Vec<u8> {
    let text = Option::as_deref;
    let fields = [
        (&b"{\"subject\":"[..], Some(&*id.subject)),
        (b",\"email\":", text(&id.email)),
        (b",\"name\":", text(&id.name)),
        (b",\"role\":", id.role.map(|r| r.as_str())),
        (b",\"org\":", Some(&*id.org)),
        (b",\"via\":", Some(id.via)),
        (b",\"secret\":", text(&id.secret)),
    ];
    // Left out when absent, as `skip_serializing_if` says; the others are `null` then.
    let shown = if id.secret.is_some() { 7 } else { 6 };
    let fields = &fields[..shown];
    let size = 1 + fields
        .iter()
        .map(|(key, value)| key.len() + value.map_or(4, |v| v.len() + 2))
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    for (key, value) in fields {
        out.extend_from_slice(key);
        match value {
            Some(v) => json_string(&mut out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    out
}

/// A JSON string as serde_json writes it: quoted, with `"`, `\` and control characters
/// escaped (by serde_json itself when there are any).
fn json_string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn granted(id: Identity) -> Response {
    // The hot path's answer, built in one go: the body written into a buffer of its size
    // (`identity_json`), the header map sized once, and the identity's own strings moved into
    // the `X-Auth-*` values (no copies). The same answer `Json` and `HeaderValue::from_str` gave.
    let body = identity_json(&id);
    let mut res = Response::new(axum::body::Body::from(body));
    let h = res.headers_mut();
    h.reserve(ANSWER_HEADERS);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let owned = |v: ByteString| HeaderValue::from_maybe_shared(v.into_bytes()).ok();
    let mut set = |name: HeaderName, value: Option<HeaderValue>| {
        if let Some(v) = value {
            h.insert(name, v);
        }
    };
    set(X_AUTH_SUBJECT, owned(id.subject));
    set(X_AUTH_EMAIL, id.email.and_then(owned));
    set(
        X_AUTH_ROLE,
        id.role.map(|r| HeaderValue::from_static(r.as_str())),
    );
    set(X_AUTH_ORG, owned(id.org));
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
    req: axum::extract::Request,
) -> Response {
    verify_request(&access, &settings, req).await
}

/// The verify endpoint's answer to `req`: the route above and, for `GET`, `hot::HotRoutes` ahead
/// of the router. Takes the request itself, not a `HeaderMap` (which the extractor would clone);
/// the slug is read from its path (`verify_slug`).
pub(super) async fn verify_request(
    access: &Access,
    settings: &Settings,
    req: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let headers = req.headers();
    let found = match verify_slug(req.uri().path()) {
        Some(slug) => access.org(&slug).await,
        None => Err(Denied::UnknownOrg),
    };
    let org = match found {
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
    } else if let Some(cookie) = cookie_value(headers, &settings.session.cookie_name) {
        let result = access
            .verify_cookie(&org, &cookie, now().unix_timestamp())
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

    /// The slug as `Path<String>` gave it: percent-decoded, and nothing for text that is not
    /// UTF-8 once decoded.
    #[test]
    fn the_slug_is_read_from_the_verify_path() {
        for (path, slug) in [
            ("/auth/acme/verify", Some("acme")),
            ("/auth/%61cme/verify", Some("acme")),
            ("/auth/a%2Fb/verify", Some("a/b")),
            ("/auth/caf%C3%A9/verify", Some("café")),
            ("/auth/%FF/verify", None),
        ] {
            assert_eq!(verify_slug(path).as_deref(), slug, "{path}");
        }
    }

    /// The session cookie is found as the cookie jar finds it, for every way a `Cookie` header
    /// can be written (the jar is the reference: the session layer reads cookies with it).
    #[test]
    fn the_cookie_is_found_as_the_jar_finds_it() {
        use axum_extra::extract::cookie::CookieJar;
        let cases: &[&[&str]] = &[
            &["orgsso_session=abc"],
            &["a=1; orgsso_session=abc; b=2"],
            &["  orgsso_session  =  abc  ;b=2"],
            &["orgsso_session=one; orgsso_session=two"],
            &["orgsso_session=one", "orgsso_session=two"],
            &["orgsso_session=a%62c"],
            &["orgsso_%73ession=abc"],
            &["orgsso_session=%FF", "x=1"],
            &["orgsso_session=ok; orgsso_session=%FF"],
            &["orgsso_session"],
            &["=abc; orgsso_session=abc"],
            &["orgsso_session="],
            &["orgsso_session=\"abc\""],
            &["orgsso_session=a=b"],
            &["other=abc"],
            &[";;; ; orgsso_session=abc;"],
            &["ORGSSO_SESSION=abc"],
            &[],
        ];
        for headers in cases {
            let mut map = HeaderMap::new();
            for h in *headers {
                map.append(header::COOKIE, HeaderValue::from_str(h).unwrap());
            }
            let jar = CookieJar::from_headers(&map);
            let expected = jar.get("orgsso_session").map(|c| c.value().to_owned());
            assert_eq!(
                cookie_value(&map, "orgsso_session").map(Cow::into_owned),
                expected,
                "{headers:?}"
            );
        }
    }

    /// The verify answer's body is byte for byte what serde_json makes of the identity, with
    /// and without the optional fields, and with text that must be escaped.
    #[test]
    fn the_answer_body_is_the_identitys_json() {
        use crate::roles::Role;
        let full = Identity {
            subject: "user-1".into(),
            email: Some("a@example.com".into()),
            name: Some("Ada Lovelace".into()),
            role: Some(Role::Developer),
            org: "acme".into(),
            via: "token",
            secret: Some("idp".into()),
        };
        let bare = Identity {
            email: None,
            name: None,
            role: None,
            secret: None,
            via: "session",
            ..full.clone()
        };
        let odd = Identity {
            subject: "quote\" back\\slash".into(),
            name: Some("tab\t new\nline \u{1} é ✓ </script>".into()),
            secret: Some("\u{7f}\u{1f}".into()),
            ..full.clone()
        };
        for id in [full, bare, odd] {
            let body = identity_json(&id);
            assert_eq!(
                String::from_utf8(body.clone()).unwrap(),
                serde_json::to_string(&id).unwrap()
            );
        }
        // The usual answer fills its buffer exactly: no spare room, no second allocation.
        let usual = identity_json(&Identity {
            subject: "user-1".into(),
            email: Some("a@example.com".into()),
            name: None,
            role: Some(Role::Viewer),
            org: "acme".into(),
            via: "token",
            secret: Some("idp".into()),
        });
        assert_eq!(usual.len(), usual.capacity());
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
