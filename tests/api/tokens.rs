//! Apps and APIs trusting orgsso: JWT secrets of all four kinds, the service's own tokens and
//! JWKS (checked with `jose`, an independent implementation), revocation, and the verify
//! endpoint with session cookies and bearer tokens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{account, browser, spawn_app, spawn_app_with, start_idp, TestApp};
use crate::idp::TestIdp;

pub(crate) const KEY_A: &str = include_str!("../fixtures/rsa_a.pem");
const KEY_A_PUB: &str = include_str!("../fixtures/rsa_a.pub.pem");
const KEY_B: &str = include_str!("../fixtures/rsa_b.pem");
const KEY_B_PUB: &str = include_str!("../fixtures/rsa_b.pub.pem");
pub(crate) const JWK_A: &str = include_str!("../fixtures/rsa_a.jwk.json");
const JWK_B: &str = include_str!("../fixtures/rsa_b.jwk.json");
const HS_SECRET: &str = "an-hs256-shared-secret-of-at-least-32-bytes!";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn hs(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
}

pub(crate) fn rs(pem: &str, kid: Option<&str>, claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        kid,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
}

pub(crate) fn base_claims() -> Value {
    json!({"sub": "svc-1", "email": "svc@example.com", "role": "developer", "aud": "api://orders", "iss": "https://issuer.example.com", "iat": now(), "exp": now() + 300})
}

pub(crate) async fn verify(
    app: &TestApp,
    slug: &str,
    token: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let resp = reqwest::Client::new()
        .get(app.url(&format!("/auth/{slug}/verify")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

async fn add_secret(app: &TestApp, slug: &str, body: Value) -> (StatusCode, Value) {
    app.admin(
        Method::POST,
        &format!("/api/v1/orgs/{slug}/jwt-secrets"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn hs256_secret_accepts_good_tokens_and_refuses_every_defect() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let (s, b) = add_secret(
        &app,
        "acme",
        json!({"name": "short", "type": "hs256", "secret": "too-short"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("32"),
        "{b}"
    );
    let (s, b) = add_secret(
        &app,
        "acme",
        json!({"name": "orders", "type": "hs256", "secret": HS_SECRET, "audiences": ["api://orders", "api://billing"], "issuers": ["https://issuer.example.com", "https://other.example.com"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(!b.to_string().contains(HS_SECRET), "secret echoed");
    let (s, _) = add_secret(
        &app,
        "acme",
        json!({"name": "orders", "type": "hs256", "secret": HS_SECRET}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "names are unique per org");

    let (status, headers, body) = verify(&app, "acme", &hs(&base_claims())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-auth-subject"], "svc-1");
    assert_eq!(headers["x-auth-email"], "svc@example.com");
    assert_eq!(headers["x-auth-role"], "developer");
    assert_eq!(body["secret"], "orders");

    let mut aud_array = base_claims();
    aud_array["aud"] = json!(["api://unrelated", "api://billing"]);
    let mut other_iss = base_claims();
    other_iss["iss"] = json!("https://other.example.com");
    for (case, claims) in [
        ("aud array sharing one value", aud_array),
        ("second issuer in the list", other_iss),
    ] {
        assert_eq!(
            verify(&app, "acme", &hs(&claims)).await.0,
            StatusCode::OK,
            "{case}"
        );
    }

    let header_b64 = |v: Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let body_b64 = header_b64(base_claims());
    let mutate = |f: fn(&mut Value)| {
        let mut c = base_claims();
        f(&mut c);
        hs(&c)
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong signature",
            sign(
                Algorithm::HS256,
                None,
                &base_claims(),
                &EncodingKey::from_secret(b"another-secret-that-is-32-bytes-long!!"),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                header_b64(json!({"alg": "none", "typ": "JWT"})),
                body_b64
            ),
        ),
        ("wrong aud", mutate(|c| c["aud"] = json!("api://other"))),
        (
            "missing aud",
            mutate(|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        (
            "wrong iss",
            mutate(|c| c["iss"] = json!("https://evil.example.com")),
        ),
        ("expired", mutate(|c| c["exp"] = json!(now() - 600))),
        (
            "nbf in the future",
            mutate(|c| c["nbf"] = json!(now() + 600)),
        ),
        (
            "exp as a string",
            mutate(|c| c["exp"] = json!("9999999999")),
        ),
        ("aud as a number", mutate(|c| c["aud"] = json!(7))),
        (
            "oversized",
            mutate(|c| c["pad"] = json!("x".repeat(20_000))),
        ),
        ("garbage", "garbage".into()),
        (
            "RS256 token for an HS256-only org",
            rs(KEY_A, None, &base_claims()),
        ),
    ];
    for (case, token) in cases {
        let (status, headers, body) = verify(&app, "acme", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{case}: {challenge}"
        );
        assert!(
            challenge.contains("error_description="),
            "{case}: {challenge}"
        );
    }
    let (status, _, _) = verify(&app, "nope", &hs(&base_claims())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown org");

    // Deleting the secret stops its tokens at once.
    let (s, _) = app
        .admin(Method::DELETE, "/api/v1/orgs/acme/jwt-secrets/orders", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        verify(&app, "acme", &hs(&base_claims())).await.0,
        StatusCode::UNAUTHORIZED
    );
    let raw = crate::helpers::raw_database(&app).await;
    assert!(
        !raw.windows(HS_SECRET.len())
            .any(|w| w == HS_SECRET.as_bytes()),
        "HS256 secret stored in clear"
    );
}

/// `GET` verify is answered ahead of the router (`http::hot`); `HEAD` and other methods go
/// through the router's route. Both give the same answer, on the wire as the router would.
#[tokio::test]
async fn verify_answers_alike_ahead_of_and_through_the_router() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let (s, b) = add_secret(
        &app,
        "acme",
        json!({"name": "orders", "type": "hs256", "secret": HS_SECRET}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let client = reqwest::Client::new();
    let good = hs(&base_claims());
    let send = |method: Method, path: &str, token: &str| {
        client
            .request(method, app.url(path))
            .bearer_auth(token)
            .send()
    };
    for (token, path, status) in [
        (good.as_str(), "/auth/acme/verify", StatusCode::OK),
        (good.as_str(), "/auth/%61cme/verify", StatusCode::OK),
        ("not-a-jwt", "/auth/acme/verify", StatusCode::UNAUTHORIZED),
        (good.as_str(), "/auth/nope/verify", StatusCode::NOT_FOUND),
        (good.as_str(), "/auth//verify", StatusCode::NOT_FOUND),
    ] {
        let get = send(Method::GET, path, token).await.unwrap();
        let head = send(Method::HEAD, path, token).await.unwrap();
        assert_eq!(get.status(), status, "GET {path}");
        assert_eq!(head.status(), status, "HEAD {path}");
        for name in [
            "content-type",
            "content-length",
            "cache-control",
            "www-authenticate",
            "x-auth-subject",
            "x-auth-email",
            "x-auth-role",
            "x-auth-org",
        ] {
            assert_eq!(
                get.headers().get(name),
                head.headers().get(name),
                "{name} of {path}"
            );
        }
        assert!(get.headers().contains_key("x-request-id"), "{path}");
        assert!(head.headers().contains_key("x-request-id"), "{path}");
        let length: usize = get.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(get.bytes().await.unwrap().len(), length, "{path}");
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
    // Other methods: the router's 405, naming the ones it takes.
    let post = send(Method::POST, "/auth/acme/verify", &good)
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET,HEAD");
    // An encoded NUL is refused at the edge, ahead of both.
    let nul = send(Method::GET, "/auth/a%00b/verify", &good)
        .await
        .unwrap();
    assert_eq!(nul.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn rs256_secrets_verify_with_pinned_algorithms() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let (s, created) = add_secret(
        &app,
        "acme",
        json!({"name": "signer", "type": "rs256", "private_key": KEY_A}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert!(created["public_key"]
        .as_str()
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));
    assert_eq!(created["public_jwk"]["kty"], "RSA");
    let text = created.to_string();
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains(&KEY_A[40..100]),
        "private key echoed"
    );
    let (s, b) = add_secret(
        &app,
        "acme",
        json!({"name": "partner", "type": "rs256_public", "public_key": KEY_B_PUB}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = add_secret(
        &app,
        "acme",
        json!({"name": "confused", "type": "rs256_public", "public_key": KEY_A}),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a private key given as public: {b}"
    );
    let (s, _) = add_secret(
        &app,
        "acme",
        json!({"name": "p", "type": "rs256_public", "public_key": KEY_B_PUB, "primary": true}),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "primary only for keys we can sign with"
    );

    let (status, _, body) = verify(&app, "acme", &rs(KEY_A, None, &base_claims())).await;
    assert_eq!(
        (status, body["secret"].as_str()),
        (StatusCode::OK, Some("signer")),
        "{body}"
    );
    let (status, _, body) = verify(&app, "acme", &rs(KEY_B, None, &base_claims())).await;
    assert_eq!(
        (status, body["secret"].as_str()),
        (StatusCode::OK, Some("partner")),
        "{body}"
    );
    // HMAC keyed with the public key, the classic confusion: the algorithm is pinned by the secret.
    let confused = sign(
        Algorithm::HS256,
        None,
        &base_claims(),
        &EncodingKey::from_secret(KEY_A_PUB.as_bytes()),
    );
    assert_eq!(
        verify(&app, "acme", &confused).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, listed) = app
        .admin(Method::GET, "/api/v1/orgs/acme/jwt-secrets", None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("PRIVATE KEY"));
}

/// A JWKS endpoint the test controls: its keys, its Cache-Control, up or down; counts fetches.
pub(crate) struct JwksServer {
    pub(crate) url: String,
    fetches: Arc<AtomicUsize>,
    state: Arc<Mutex<(Value, Option<String>, bool)>>,
    _task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub(crate) async fn start(keys: Value, cache_control: Option<&str>) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let fetches = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(Mutex::new((keys, cache_control.map(str::to_owned), true)));
        let (f, st) = (fetches.clone(), state.clone());
        let app = Router::new().route(
            "/jwks",
            get(move || {
                let (f, st) = (f.clone(), st.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    // A little latency, so concurrent misses really overlap.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let (keys, cc, up) = st.lock().unwrap().clone();
                    let mut res = axum::response::IntoResponse::into_response(axum::Json(keys));
                    if !up {
                        *res.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    if let Some(cc) = cc {
                        res.headers_mut()
                            .insert("cache-control", cc.parse().unwrap());
                    }
                    res
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer {
            url,
            fetches,
            state,
            _task: task,
        }
    }
    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
    fn set_keys(&self, keys: Value) {
        self.state.lock().unwrap().0 = keys;
    }
    fn set_up(&self, up: bool) {
        self.state.lock().unwrap().2 = up;
    }
}

pub(crate) fn jwks_of(jwks: &[&str]) -> Value {
    json!({"keys": jwks.iter().map(|j| serde_json::from_str::<Value>(j).unwrap()).collect::<Vec<_>>()})
}

#[tokio::test]
async fn jwk_url_secret_follows_rotation_with_single_flight_and_survives_outages() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let server = JwksServer::start(jwks_of(&[JWK_A]), Some("max-age=3600")).await;
    let (s, b) = add_secret(&app, "acme", json!({"name": "auth0", "type": "jwk_url", "url": server.url, "audiences": ["api://orders"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = add_secret(
        &app,
        "acme",
        json!({"name": "bad", "type": "jwk_url", "url": "http://127.0.0.1:1/jwks"}),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an unreachable JWKS is refused at once: {b}"
    );
    let after_create = server.fetches();

    let token_a = rs(KEY_A, Some("hostile-a"), &base_claims());
    assert_eq!(verify(&app, "acme", &token_a).await.0, StatusCode::OK);
    assert_eq!(
        server.fetches(),
        after_create,
        "keys fetched at creation are used (max-age=3600)"
    );

    // The provider rotates to key B: 50 concurrent requests with the new kid cause one fetch.
    server.set_keys(jwks_of(&[JWK_A, JWK_B]));
    let token_b = rs(KEY_B, Some("hostile-b"), &base_claims());
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (url, t) = (app.url("/auth/acme/verify"), token_b.clone());
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        server.fetches(),
        after_create + 1,
        "single-flight refetch for the new kid"
    );

    // The JWKS goes down: cached keys keep working.
    server.set_up(false);
    let fresh_b = rs(
        KEY_B,
        Some("hostile-b"),
        &json!({"sub": "x", "aud": "api://orders", "exp": now() + 120}),
    );
    assert_eq!(
        verify(&app, "acme", &fresh_b).await.0,
        StatusCode::OK,
        "stale keys used while the URL is down"
    );
    // An unknown kid while down, never a 500. A kid not seen before may fetch once the
    // refetch floor (1 s) has passed since the last fetch: that fetch fails, so the keys are
    // unavailable (503, retry later); after a failed fetch the cooldown holds, so the next
    // unknown kid is refused for its key (401). Waiting out the floor makes the order certain.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = rs(KEY_B, Some("no-such-kid"), &base_claims());
    assert_eq!(
        verify(&app, "acme", &unknown).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let another = rs(KEY_B, Some("no-such-kid-either"), &base_claims());
    assert_eq!(
        verify(&app, "acme", &another).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn jwk_url_secret_honours_cache_control() {
    let app = spawn_app_with(|s| s.oidc.jwks_min_refresh_secs = 1).await;
    app.create_org("acme", &[]).await;
    let server = JwksServer::start(jwks_of(&[JWK_A]), Some("public, max-age=1")).await;
    let (s, b) = add_secret(
        &app,
        "acme",
        json!({"name": "idp", "type": "jwk_url", "url": server.url}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let before = server.fetches();
    let token = |n: i64| {
        rs(
            KEY_A,
            Some("hostile-a"),
            &json!({"sub": format!("s{n}"), "exp": now() + 300}),
        )
    };
    assert_eq!(verify(&app, "acme", &token(1)).await.0, StatusCode::OK);
    // Past max-age the keys are refreshed on use, even for a known kid.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(verify(&app, "acme", &token(2)).await.0, StatusCode::OK);
    assert!(
        server.fetches() > before,
        "max-age=1 expired: keys refreshed"
    );
}

async fn signed_in(app: &TestApp, idp_groups: &[&str]) -> (TestIdp, reqwest::Client, String) {
    let idp = start_idp(
        app,
        json!({"alice": account("alice@example.com", "Alice", idp_groups)}),
    )
    .await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    app.set_rules("acme", json!({"default_role": "viewer", "rules": [{"claim": "groups", "op": "contains", "value": "admins", "role": "admin"}]}))
        .await;
    let login_url = conn["login_url"].as_str().unwrap().to_owned();
    let b = browser();
    assert_eq!(
        app.login(&b, &login_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    (idp, b, login_url)
}

pub async fn mint(app: &TestApp, b: &reqwest::Client) -> Value {
    let resp = b.post(app.url("/api/v1/me/token")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// Checks a token with `jose` (Node) against orgsso's published JWKS.
async fn jose_verify(app: &TestApp, token: &str) -> Result<Value, String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp");
    let out = tokio::process::Command::new("node")
        .current_dir(&dir)
        .arg("verify-jwt.mjs")
        .arg(app.url("/.well-known/jwks.json"))
        .arg(&app.base)
        .arg(app.url("/orgs/acme"))
        .arg(token)
        .output()
        .await
        .expect("node runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn own_tokens_verify_independently_survive_rotation_and_die_with_their_session() {
    let app = spawn_app().await;
    let (_idp, b, login_url) = signed_in(&app, &["admins"]).await;
    let minted = mint(&app, &b).await;
    assert_eq!(minted["token_type"], "Bearer");
    assert_eq!(minted["expires_in"], 900);
    let token = minted["access_token"].as_str().unwrap().to_owned();

    let checked = jose_verify(&app, &token)
        .await
        .expect("jose verifies the token");
    assert_eq!(checked["header"]["typ"], "at+jwt");
    assert_eq!(checked["header"]["alg"], "ES256");
    let p = &checked["payload"];
    assert_eq!(p["email"], "alice@example.com");
    assert_eq!(p["org"], "acme");
    assert_eq!(p["role"], "admin");
    for claim in ["sub", "iat", "exp", "jti", "sid"] {
        assert!(!p[claim].is_null(), "{claim} missing: {p}");
    }

    let (status, headers, body) = verify(&app, "acme", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-auth-role"], "admin");
    assert_eq!(headers["x-auth-email"], "alice@example.com");
    // The session cookie passes the verify endpoint too, for this org only.
    let by_cookie = b.get(app.url("/auth/acme/verify")).send().await.unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    assert_eq!(
        by_cookie.headers()["x-auth-subject"],
        p["sub"].as_str().unwrap()
    );
    app.create_org("other", &[]).await;
    assert_eq!(
        b.get(app.url("/auth/other/verify"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        verify(&app, "other", &token).await.0,
        StatusCode::UNAUTHORIZED,
        "a token for acme is not valid for other"
    );

    // Rotation: a new key signs; the old key stays published, so old tokens still verify.
    let old_kid = checked["header"]["kid"].as_str().unwrap().to_owned();
    let new_kid = app.access.rotate_signing_key("test", now()).await.unwrap();
    let newer = mint(&app, &b).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let checked_new = jose_verify(&app, &newer).await.expect("new token verifies");
    assert_eq!(checked_new["header"]["kid"], new_kid.as_str());
    assert_ne!(new_kid, old_kid);
    jose_verify(&app, &token)
        .await
        .expect("old token still verifies after rotation");
    assert_eq!(verify(&app, "acme", &token).await.0, StatusCode::OK);
    assert_eq!(verify(&app, "acme", &newer).await.0, StatusCode::OK);
    let (_, jwks) = (
        0,
        reqwest::get(app.url("/.well-known/jwks.json"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap(),
    );
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    assert!(
        !jwks.to_string().contains("\"d\""),
        "no private key parts published"
    );

    // Logout: tokens minted from the session stop at once.
    let out = app.logout(&b).await;
    assert_eq!(out.status(), StatusCode::OK);
    let (status, headers, _) = verify(&app, "acme", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("session"));
    assert_eq!(
        verify(&app, "acme", &newer).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.post(app.url("/api/v1/me/token"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Disconnect: likewise.
    let b2 = browser();
    assert_eq!(
        app.login(&b2, &login_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    let t2 = mint(&app, &b2).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(verify(&app, "acme", &t2).await.0, StatusCode::OK);
    let (s, _) = app
        .admin(Method::DELETE, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(verify(&app, "acme", &t2).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        b2.get(app.url("/auth/acme/verify"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_org_primary_secret_signs_its_tokens() {
    let app = spawn_app().await;
    let (_idp, b, _) = signed_in(&app, &[]).await;
    let (s, body) = add_secret(
        &app,
        "acme",
        json!({"name": "mine", "type": "hs256", "secret": HS_SECRET, "primary": true}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let token = mint(&app, &b).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
    v.set_audience(&[app.url("/orgs/acme")]);
    v.set_issuer(&[app.base.as_str()]);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(HS_SECRET.as_bytes()),
        &v,
    )
    .expect("signed with the org secret");
    assert_eq!(data.claims["role"], "viewer");
    let (status, _, body) = verify(&app, "acme", &token).await;
    assert_eq!(
        (status, body["secret"].as_str()),
        (StatusCode::OK, Some("mine")),
        "{body}"
    );
}
