//! A hostile identity provider inside the test: an axum server whose token endpoint answers
//! whatever the test sets, used for every class of ID-token defect, flow attacks and broken
//! IdP behaviour. Every case must end in a 4xx page with no session and no user.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{browser, location, spawn_app, spawn_app_with, TestApp, CLIENT_ID};

const KEY_A: &str = include_str!("../fixtures/rsa_a.pem");
const KEY_A_PUB: &str = include_str!("../fixtures/rsa_a.pub.pem");
const KEY_B: &str = include_str!("../fixtures/rsa_b.pem");
const JWK_A: &str = include_str!("../fixtures/rsa_a.jwk.json");
const JWK_B: &str = include_str!("../fixtures/rsa_b.jwk.json");

/// How the token endpoint answers the next exchange.
#[derive(Clone)]
enum Answer {
    /// A JWT built from this header and payload, signed as `Sign` says.
    Token {
        header: Value,
        claims: Value,
        sign: Sign,
    },
    /// Any raw body with a status.
    Raw(u16, String),
    /// Waits this long before answering (past orgsso's timeout).
    Slow(Duration),
}

#[derive(Clone, Copy)]
enum Sign {
    KeyA,
    KeyB,
    /// `alg: none`: no signature at all.
    Unsigned,
    /// HMAC keyed with the RSA public key PEM: the classic algorithm confusion.
    HmacWithPublicKey,
}

struct Hostile {
    issuer: String,
    answer: Arc<Mutex<Answer>>,
    /// How `/userinfo` answers; discovery names it only for [`Hostile::start_with_userinfo`].
    userinfo: Arc<Mutex<UserinfoAnswer>>,
    /// Requests seen at `/jwks`.
    jwks_hits: Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

/// How the userinfo endpoint answers a request with the access token the token endpoint gave.
#[derive(Clone)]
enum UserinfoAnswer {
    /// 200 `application/json`.
    Json(Value),
    /// A JWT of these claims (header `RS256`, kid `hostile-a`), 200 `application/jwt`.
    Jwt(Value, Sign),
    /// Any status, content type and body.
    Raw(u16, &'static str, String),
    /// Waits this long before answering (past orgsso's timeout).
    Slow(Duration),
}

async fn userinfo(
    State(answer): State<Arc<Mutex<UserinfoAnswer>>>,
    headers: axum::http::HeaderMap,
) -> Response {
    // The access token from `token` above, as a bearer token (RFC 6750 §2.1).
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer at") {
        return (axum::http::StatusCode::UNAUTHORIZED, "no bearer token").into_response();
    }
    let a = answer.lock().unwrap().clone();
    let (status, content_type, body) = match a {
        UserinfoAnswer::Json(v) => (200, "application/json", v.to_string()),
        UserinfoAnswer::Jwt(claims, sign) => (
            200,
            "application/jwt",
            build_jwt(&json!({"alg": "RS256", "kid": "hostile-a"}), &claims, sign),
        ),
        UserinfoAnswer::Raw(status, content_type, body) => (status, content_type, body),
        UserinfoAnswer::Slow(d) => {
            tokio::time::sleep(d).await;
            (200, "application/json", "{}".into())
        }
    };
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [("content-type", content_type)],
        body,
    )
        .into_response()
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn token(State(answer): State<Arc<Mutex<Answer>>>) -> Response {
    let a = answer.lock().unwrap().clone();
    match a {
        Answer::Raw(status, body) => (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
        Answer::Slow(d) => {
            tokio::time::sleep(d).await;
            (axum::http::StatusCode::OK, "{}").into_response()
        }
        Answer::Token {
            header,
            claims,
            sign,
        } => {
            let jwt = build_jwt(&header, &claims, sign);
            Json(json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": jwt})).into_response()
        }
    }
}

fn build_jwt(header: &Value, claims: &Value, sign: Sign) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = match sign {
        Sign::KeyA => jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_rsa_pem(KEY_A.as_bytes()).unwrap(),
            Algorithm::RS256,
        )
        .unwrap(),
        Sign::KeyB => jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_rsa_pem(KEY_B.as_bytes()).unwrap(),
            Algorithm::RS256,
        )
        .unwrap(),
        Sign::Unsigned => String::new(),
        Sign::HmacWithPublicKey => jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(KEY_A_PUB.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap(),
    };
    format!("{input}.{sig}")
}

impl Hostile {
    async fn start() -> Hostile {
        Self::start_inner(false).await
    }

    /// Also offers a userinfo endpoint in discovery.
    async fn start_with_userinfo() -> Hostile {
        Self::start_inner(true).await
    }

    async fn start_inner(with_userinfo: bool) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new(Answer::Raw(500, "{}".into())));
        let userinfo_answer = Arc::new(Mutex::new(UserinfoAnswer::Raw(
            500,
            "application/json",
            "{}".into(),
        )));
        let mut discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            // A hostile IdP advertises weak algorithms too; orgsso must not take its word.
            "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
            "authorization_response_iss_parameter_supported": true,
        });
        if with_userinfo {
            discovery["userinfo_endpoint"] = json!(format!("{issuer}/userinfo"));
        }
        let jwks = json!({"keys": [serde_json::from_str::<Value>(JWK_A).unwrap()]});
        let jwks_hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hits = jwks_hits.clone();
        let userinfo_route = Router::new()
            .route("/userinfo", get(userinfo))
            .with_state(userinfo_answer.clone());
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(discovery) }),
            )
            .route(
                "/jwks",
                get(move || async move {
                    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Json(jwks)
                }),
            )
            .route("/token", post(token))
            .with_state(answer.clone())
            .merge(userinfo_route);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Hostile {
            issuer,
            answer,
            userinfo: userinfo_answer,
            jwks_hits,
            server,
        }
    }

    fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn set_userinfo(&self, a: UserinfoAnswer) {
        *self.userinfo.lock().unwrap() = a;
    }

    /// The header and claims of a token that is right in every way, for this sign-in's nonce.
    fn good(&self, nonce: &str) -> (Value, Value) {
        let now = now();
        (
            json!({"alg": "RS256", "typ": "JWT", "kid": "hostile-a"}),
            json!({"iss": self.issuer, "aud": CLIENT_ID, "sub": "user-1", "email": "victim@example.com", "email_verified": true,
                   "nonce": nonce, "iat": now, "exp": now + 300}),
        )
    }
}

struct Started {
    browser: reqwest::Client,
    state: String,
    nonce: String,
}

async fn setup() -> (TestApp, Hostile, String) {
    setup_with(spawn_app().await).await
}

async fn setup_with(app: TestApp) -> (TestApp, Hostile, String) {
    let hostile = Hostile::start().await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &hostile.issuer).await;
    (app, hostile, conn["login_url"].as_str().unwrap().to_owned())
}

async fn start(login_url: &str) -> Started {
    let browser = browser();
    let resp = browser.get(login_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let url = url::Url::parse(&location(&resp)).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    Started {
        browser,
        state: q["state"].clone(),
        nonce: q["nonce"].clone(),
    }
}

impl Started {
    async fn callback(&self, app: &TestApp, issuer: &str) -> (StatusCode, String) {
        let url = format!(
            "{}?code=the-code&state={}&iss={}",
            app.redirect_uri(),
            self.state,
            url::form_urlencoded::byte_serialize(issuer.as_bytes()).collect::<String>()
        );
        let resp = self.browser.get(url).send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }
}

async fn assert_refused(
    app: &TestApp,
    s: &Started,
    status: StatusCode,
    expected: StatusCode,
    page: &str,
    case: &str,
) {
    assert_eq!(status, expected, "{case}: {page}");
    assert!(
        app.me(&s.browser).await.is_none(),
        "{case}: a session was started"
    );
    assert!(
        app.members("acme").await.is_empty(),
        "{case}: a user was enrolled"
    );
    assert!(
        page.contains("Request id"),
        "{case}: the page gives a request id"
    );
}

type Mutation = fn(&mut Value, &mut Value);

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn every_id_token_defect_is_refused() {
    let (app, hostile, login_url) = setup().await;
    // (case, signature, mutation of header and claims, what the refusal page must say)
    #[rustfmt::skip]
    let cases: Vec<(&str, Sign, Mutation, &str)> = vec![
        ("unpublished key, published kid", Sign::KeyB, |_, _| {}, "signature does not verify"),
        ("kid the JWKS lacks", Sign::KeyB, |h, _| h["kid"] = json!("hostile-b"), "no signing key matching"),
        ("alg none", Sign::Unsigned, |h, _| h["alg"] = json!("none"), "unsigned"),
        ("HS256 keyed with the RSA public key", Sign::HmacWithPublicKey, |h, _| h["alg"] = json!("HS256"), "shared-secret"),
        ("embedded jwk header", Sign::KeyB, |h, _| h["jwk"] = serde_json::from_str(JWK_B).unwrap(), "names its own key"),
        ("jku header", Sign::KeyA, |h, _| h["jku"] = json!("http://127.0.0.1:1/jwks"), "names its own key"),
        ("x5u header", Sign::KeyA, |h, _| h["x5u"] = json!("http://127.0.0.1:1/cert"), "names its own key"),
        ("unknown crit", Sign::KeyA, |h, _| h["crit"] = json!(["exp-ext"]), "crit"),
        ("wrong iss", Sign::KeyA, |_, c| c["iss"] = json!("http://127.0.0.1:9/other"), "different issuer"),
        ("aud without our client", Sign::KeyA, |_, c| c["aud"] = json!("someone-else"), "audience does not include"),
        ("untrusted extra audience", Sign::KeyA, |_, c| c["aud"] = json!([CLIENT_ID, "evil-app"]), "audience this connection does not trust"),
        ("azp of another client", Sign::KeyA, |_, c| c["azp"] = json!("evil-app"), "authorized party"),
        ("expired", Sign::KeyA, |_, c| c["exp"] = json!(now() - 3600), "expired"),
        ("exp as a string", Sign::KeyA, |_, c| c["exp"] = json!("9999999999"), "wrong type"),
        ("aud as a number", Sign::KeyA, |_, c| c["aud"] = json!(5), "wrong type"),
        ("no exp", Sign::KeyA, |_, c| { c.as_object_mut().unwrap().remove("exp"); }, "no &quot;exp&quot;"),
        ("no iat", Sign::KeyA, |_, c| { c.as_object_mut().unwrap().remove("iat"); }, "no &quot;iat&quot;"),
        ("iat in the future", Sign::KeyA, |_, c| c["iat"] = json!(now() + 3600), "in the future"),
        ("iat long ago", Sign::KeyA, |_, c| c["iat"] = json!(now() - 86400), "too long ago"),
        ("nbf in the future", Sign::KeyA, |_, c| c["nbf"] = json!(now() + 3600), "not valid yet"),
        ("wrong nonce", Sign::KeyA, |_, c| c["nonce"] = json!("not-the-nonce"), "nonce does not match"),
        ("no nonce", Sign::KeyA, |_, c| { c.as_object_mut().unwrap().remove("nonce"); }, "no &quot;nonce&quot;"),
        ("no sub", Sign::KeyA, |_, c| { c.as_object_mut().unwrap().remove("sub"); }, "no &quot;sub&quot;"),
        ("empty sub", Sign::KeyA, |_, c| c["sub"] = json!(""), "subject"),
        ("NUL in sub", Sign::KeyA, |_, c| c["sub"] = json!("vic\u{0}tim"), "control characters"),
    ];
    for (case, sign, mutate, says) in cases {
        let s = start(&login_url).await;
        let (mut header, mut claims) = hostile.good(&s.nonce);
        mutate(&mut header, &mut claims);
        hostile.set(Answer::Token {
            header,
            claims,
            sign,
        });
        let (status, page) = s.callback(&app, &hostile.issuer).await;
        assert_refused(&app, &s, status, StatusCode::UNAUTHORIZED, &page, case).await;
        assert!(
            page.contains(says),
            "{case}: page should say {says:?}: {page}"
        );
    }
    for (case, raw) in [
        ("garbage", "not.a.jwt"),
        ("two parts", "abc.def"),
        ("oversized", &"a".repeat(20_000)),
    ] {
        hostile.set(Answer::Raw(
            200,
            json!({"token_type": "Bearer", "id_token": raw}).to_string(),
        ));
        let s2 = start(&login_url).await;
        let (status, page) = s2.callback(&app, &hostile.issuer).await;
        assert_refused(&app, &s2, status, StatusCode::UNAUTHORIZED, &page, case).await;
    }

    // The same harness with a good token signs in: the refusals above were for their defects.
    let s = start(&login_url).await;
    let (header, claims) = hostile.good(&s.nonce);
    hostile.set(Answer::Token {
        header,
        claims,
        sign: Sign::KeyA,
    });
    let (status, page) = s.callback(&app, &hostile.issuer).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(
        app.me(&s.browser).await.unwrap()["email"],
        "victim@example.com"
    );
}

#[tokio::test]
async fn flow_attacks_are_refused() {
    let (app, hostile, login_url) = setup().await;

    // Unknown and missing state.
    let b = browser();
    for url in [
        format!("{}?code=x&state=forged", app.redirect_uri()),
        format!("{}?code=x", app.redirect_uri()),
    ] {
        let resp = b.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{url}");
    }

    // Finished in another browser: refused, and the flow is spent for the rightful browser too.
    let s = start(&login_url).await;
    let (header, claims) = hostile.good(&s.nonce);
    hostile.set(Answer::Token {
        header,
        claims,
        sign: Sign::KeyA,
    });
    let thief = Started {
        browser: browser(),
        state: s.state.clone(),
        nonce: s.nonce.clone(),
    };
    let (status, page) = thief.callback(&app, &hostile.issuer).await;
    assert_refused(
        &app,
        &thief,
        status,
        StatusCode::BAD_REQUEST,
        &page,
        "other browser",
    )
    .await;
    assert!(page.contains("different browser"), "{page}");
    let (status, _) = s.callback(&app, &hostile.issuer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "state is single-use");

    // A callback claiming another issuer (mix-up), and one without the promised `iss`.
    let s = start(&login_url).await;
    let (status, page) = s.callback(&app, "http://127.0.0.1:9").await;
    assert_refused(
        &app,
        &s,
        status,
        StatusCode::BAD_REQUEST,
        &page,
        "wrong iss on callback",
    )
    .await;
    let s = start(&login_url).await;
    let resp = s
        .browser
        .get(format!("{}?code=x&state={}", app.redirect_uri(), s.state))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "missing iss although promised"
    );

    // The IdP says no.
    let s = start(&login_url).await;
    let url = format!(
        "{}?error=access_denied&error_description=User+cancelled%0d%0a&state={}&iss={}",
        app.redirect_uri(),
        s.state,
        url::form_urlencoded::byte_serialize(hostile.issuer.as_bytes()).collect::<String>()
    );
    let resp = s.browser.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("User cancelled"));

    // Open redirects through return_to are refused before anything starts.
    for evil in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "evil",
        "/%5Cevil",
    ] {
        let q = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>();
        let resp = browser()
            .get(format!("{login_url}?return_to={q}"))
            .send()
            .await
            .unwrap();
        if evil == "/%5Cevil" {
            // Percent-encoded, it is a harmless path on this site.
            assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        } else {
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{evil}");
            assert!(resp.headers().get("location").is_none());
        }
    }

    // Unknown login URL.
    let resp = browser()
        .get(app.url("/sso/not-a-real-login-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(app.members("acme").await.is_empty());
}

#[tokio::test]
async fn an_expired_flow_is_refused() {
    let (app, hostile, login_url) =
        setup_with(spawn_app_with(|s| s.login.flow_ttl_secs = 1).await).await;
    let s = start(&login_url).await;
    let (header, claims) = hostile.good(&s.nonce);
    hostile.set(Answer::Token {
        header,
        claims,
        sign: Sign::KeyA,
    });
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, page) = s.callback(&app, &hostile.issuer).await;
    assert_refused(
        &app,
        &s,
        status,
        StatusCode::BAD_REQUEST,
        &page,
        "expired flow",
    )
    .await;
    assert!(page.contains("expired"), "{page}");
}

#[tokio::test]
async fn a_broken_idp_gives_a_clear_4xx() {
    let (app, hostile, login_url) = setup().await;
    let cases = [
        (
            "token endpoint 500",
            Answer::Raw(500, "{}".into()),
            "HTTP 500",
        ),
        (
            "garbage JSON",
            Answer::Raw(200, "<html>oops".into()),
            "not a token response",
        ),
        (
            "invalid_grant",
            Answer::Raw(
                400,
                r#"{"error":"invalid_grant","error_description":"code expired"}"#.into(),
            ),
            "invalid_grant",
        ),
        (
            "no id_token",
            Answer::Raw(200, r#"{"access_token":"x","token_type":"Bearer"}"#.into()),
            "no ID token",
        ),
        (
            "slow past the timeout",
            Answer::Slow(Duration::from_secs(5)),
            "did not answer in time",
        ),
    ];
    for (case, answer, says) in cases {
        hostile.set(answer);
        let s = start(&login_url).await;
        let (status, page) = s.callback(&app, &hostile.issuer).await;
        assert_refused(&app, &s, status, StatusCode::FAILED_DEPENDENCY, &page, case).await;
        assert!(page.contains(says), "{case}: {page}");
        assert!(
            !page.contains(crate::helpers::CLIENT_SECRET) && !page.contains("the-code"),
            "{case}: page leaks"
        );
    }
    // The IdP goes away entirely.
    let s = start(&login_url).await;
    let issuer = hostile.issuer.clone();
    drop(hostile);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, page) = s.callback(&app, &issuer).await;
    assert_refused(
        &app,
        &s,
        status,
        StatusCode::FAILED_DEPENDENCY,
        &page,
        "IdP down",
    )
    .await;
}

#[tokio::test]
async fn userinfo_answers_are_judged_before_anyone_signs_in() {
    let app = spawn_app().await;
    let hostile = Hostile::start_with_userinfo().await;
    app.create_org("acme", &[]).await;
    let login_url = app.connect("acme", &hostile.issuer).await["login_url"]
        .as_str()
        .unwrap()
        .to_owned();
    app.set_rules(
        "acme",
        json!({"default_role": "viewer", "rules": [{"claim": "groups", "op": "contains", "value": "admins", "role": "admin"}]}),
    )
    .await;
    let about =
        |sub: &str| json!({"sub": sub, "groups": ["admins"], "email": "userinfo@example.com"});
    #[rustfmt::skip]
    let cases: Vec<(&str, UserinfoAnswer, &str)> = vec![
        ("another sub", UserinfoAnswer::Json(about("user-2")), "about another user"),
        ("another sub, signed", UserinfoAnswer::Jwt(about("user-2"), Sign::KeyA), "about another user"),
        ("no sub", UserinfoAnswer::Json(json!({"groups": ["admins"]})), "no &quot;sub&quot;"),
        ("HTTP 500", UserinfoAnswer::Raw(500, "application/json", "{}".into()), "answered HTTP 500"),
        ("token refused", UserinfoAnswer::Raw(401, "text/plain", "".into()), "answered HTTP 401"),
        ("a redirect is not followed", UserinfoAnswer::Raw(302, "text/plain", "".into()), "answered HTTP 302"),
        ("slow past the timeout", UserinfoAnswer::Slow(Duration::from_secs(3)), "did not answer in time"),
        ("garbage", UserinfoAnswer::Raw(200, "text/html", "<html>oops".into()), "not a JSON object"),
        ("a JSON array", UserinfoAnswer::Raw(200, "application/json", "[1]".into()), "not a JSON object"),
        ("too large", UserinfoAnswer::Raw(200, "application/json", format!("{{\"sub\":\"user-1\",\"x\":\"{}\"}}", "a".repeat(300 * 1024))), "larger than"),
        ("signed by a key the IdP does not publish", UserinfoAnswer::Jwt(about("user-1"), Sign::KeyB), "signature does not verify"),
        ("unsigned", UserinfoAnswer::Raw(200, "application/jwt", format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(about("user-1").to_string()))), "unsigned"),
        ("HS256 keyed with the public key", UserinfoAnswer::Raw(200, "application/jwt", build_jwt(&json!({"alg": "HS256"}), &about("user-1"), Sign::HmacWithPublicKey)), "shared-secret"),
    ];
    for (case, answer, says) in cases {
        let s = start(&login_url).await;
        let (header, claims) = hostile.good(&s.nonce);
        hostile.set(Answer::Token {
            header,
            claims,
            sign: Sign::KeyA,
        });
        hostile.set_userinfo(answer);
        let (status, page) = s.callback(&app, &hostile.issuer).await;
        assert_refused(&app, &s, status, StatusCode::FAILED_DEPENDENCY, &page, case).await;
        assert!(
            page.contains(says),
            "{case}: page should say {says:?}: {page}"
        );
        assert!(
            page.contains("userinfo"),
            "{case}: the page names the cause"
        );
    }
    // No refused case left a login behind.
    let (_, audit) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    assert!(
        !audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "login"),
        "no login was recorded: {audit}"
    );

    // Signed by the IdP's published key, and as plain JSON: accepted, and the groups that came
    // only from userinfo reach the rules (the ID token's email wins over userinfo's).
    for (case, answer) in [
        ("signed", UserinfoAnswer::Jwt(about("user-1"), Sign::KeyA)),
        ("JSON", UserinfoAnswer::Json(about("user-1"))),
    ] {
        let s = start(&login_url).await;
        let (header, claims) = hostile.good(&s.nonce);
        hostile.set(Answer::Token {
            header,
            claims,
            sign: Sign::KeyA,
        });
        hostile.set_userinfo(answer);
        let (status, page) = s.callback(&app, &hostile.issuer).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{case}: {page}");
        let me = app.me(&s.browser).await.unwrap();
        assert_eq!(me["role"], "admin", "{case}: {me}");
        assert_eq!(
            me["email"], "victim@example.com",
            "{case}: the ID token wins"
        );
    }
}

#[tokio::test]
async fn an_entra_groups_overage_is_said_plainly() {
    let (app, hostile, login_url) = setup().await;
    app.set_rules(
        "acme",
        json!({"default_role": "viewer", "rules": [{"claim": "groups", "op": "contains", "value": "admins", "role": "admin"}]}),
    )
    .await;
    let overage = |claims: &mut Value| {
        claims["_claim_names"] = json!({"groups": "src1"});
        claims["_claim_sources"] = json!({"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}});
    };
    let sign_in = || async {
        let s = start(&login_url).await;
        let (header, mut claims) = hostile.good(&s.nonce);
        overage(&mut claims);
        hostile.set(Answer::Token {
            header,
            claims,
            sign: Sign::KeyA,
        });
        let (status, page) = s.callback(&app, &hostile.issuer).await;
        (s, status, page)
    };

    // Signed in with the default role, and the audit event says why the groups rule missed.
    let (s, status, page) = sign_in().await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(app.me(&s.browser).await.unwrap()["role"], "viewer");
    let (_, audit) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    let login = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "login")
        .expect("a login event");
    assert_eq!(login["detail"]["groups_overage"], true, "{login}");
    assert!(
        login["detail"]["warning"]
            .as_str()
            .unwrap()
            .contains("Groups assigned to the application"),
        "{login}"
    );

    // The dry run on those claims says it beside the outcome; plain claims get no warning.
    let mut claims = json!({"sub": "user-1"});
    overage(&mut claims);
    let (status, dry) = app
        .admin(
            reqwest::Method::POST,
            "/api/v1/orgs/acme/sso/role-mapping/test",
            Some(json!({ "claims": claims })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dry["role"], "viewer");
    assert_eq!(dry["rule"], Value::Null);
    let warnings = dry["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{dry}");
    assert!(
        warnings[0].as_str().unwrap().contains("group filtering"),
        "{dry}"
    );
    let (_, plain) = app
        .admin(
            reqwest::Method::POST,
            "/api/v1/orgs/acme/sso/role-mapping/test",
            Some(json!({"claims": {"groups": ["admins"]}})),
        )
        .await;
    assert_eq!(plain, json!({"role": "admin", "rule": 0}));

    // When the rules refuse, the access-denied page says it too, and so does the audit event.
    app.set_rules(
        "acme",
        json!({"default_role": "deny", "rules": [{"claim": "groups", "op": "contains", "value": "admins", "role": "admin"}]}),
    )
    .await;
    let (s, status, page) = sign_in().await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("not allowed to sign in"), "{page}");
    assert!(page.contains("group filtering in Entra"), "{page}");
    assert!(app.me(&s.browser).await.is_none());
    let (_, audit) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    let denied = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "login.denied")
        .expect("a login.denied event");
    assert_eq!(denied["detail"]["groups_overage"], true, "{denied}");
}

#[tokio::test]
async fn a_storm_of_invented_kids_costs_at_most_one_jwks_fetch_per_floor() {
    // 40 sign-ins from one address: more than a minute's worth of starts by default.
    let app = spawn_app_with(|s| s.throttle.sign_in_starts_per_minute = 1_000).await;
    let (app, hostile, login_url) = setup_with(app).await;
    // Sign-in attempts with ever new invented kids, as fast as they come.
    let started = std::time::Instant::now();
    let before = hostile.jwks_hits();
    let attempts = 40;
    for i in 0..attempts {
        let s = start(&login_url).await;
        let (mut header, claims) = hostile.good(&s.nonce);
        header["kid"] = json!(format!("invented-{i}"));
        hostile.set(Answer::Token {
            header,
            claims,
            sign: Sign::KeyA,
        });
        let (status, page) = s.callback(&app, &hostile.issuer).await;
        assert_refused(
            &app,
            &s,
            status,
            StatusCode::UNAUTHORIZED,
            &page,
            "invented kid",
        )
        .await;
        assert!(page.contains("no signing key matching"), "{page}");
    }
    let fetches = hostile.jwks_hits() - before;
    let floors = started.elapsed().as_secs() as usize + 1;
    assert!(
        fetches <= floors,
        "{fetches} JWKS fetches for {attempts} invented kids in {floors} floor(s) of 1 s"
    );
    eprintln!(
        "[storm] {attempts} invented kids in {:?}: {fetches} JWKS fetches",
        started.elapsed()
    );

    // One bogus kid repeated: one fetch at most (once past the floor), then none.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = hostile.jwks_hits();
    for _ in 0..10 {
        let s = start(&login_url).await;
        let (mut header, claims) = hostile.good(&s.nonce);
        header["kid"] = json!("the-same-bogus-kid");
        hostile.set(Answer::Token {
            header,
            claims,
            sign: Sign::KeyA,
        });
        let (status, _) = s.callback(&app, &hostile.issuer).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(hostile.jwks_hits() - before, 1);

    // The published key still signs in, without a fetch.
    let before = hostile.jwks_hits();
    let s = start(&login_url).await;
    let (header, claims) = hostile.good(&s.nonce);
    hostile.set(Answer::Token {
        header,
        claims,
        sign: Sign::KeyA,
    });
    let (status, page) = s.callback(&app, &hostile.issuer).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(hostile.jwks_hits(), before);
}

#[tokio::test]
async fn an_at_hash_that_does_not_match_the_access_token_is_refused() {
    let (app, hostile, login_url) = setup().await;
    // The hostile token endpoint always answers the access token "at".
    let at_hash = |token: &str| {
        use sha2::Digest;
        URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(token.as_bytes())[..16])
    };
    for (case, claimed) in [
        (
            "at_hash of another access token",
            at_hash("another-access-token"),
        ),
        ("garbage at_hash", "not-a-hash".to_owned()),
    ] {
        let s = start(&login_url).await;
        let (header, mut claims) = hostile.good(&s.nonce);
        claims["at_hash"] = json!(claimed);
        hostile.set(Answer::Token {
            header,
            claims,
            sign: Sign::KeyA,
        });
        let (status, page) = s.callback(&app, &hostile.issuer).await;
        assert_refused(&app, &s, status, StatusCode::UNAUTHORIZED, &page, case).await;
        assert!(page.contains("at_hash"), "{case}: {page}");
        assert!(
            page.contains("does not match the access token"),
            "{case}: {page}"
        );
    }
    // The right at_hash signs in.
    let s = start(&login_url).await;
    let (header, mut claims) = hostile.good(&s.nonce);
    claims["at_hash"] = json!(at_hash("at"));
    hostile.set(Answer::Token {
        header,
        claims,
        sign: Sign::KeyA,
    });
    let (status, page) = s.callback(&app, &hostile.issuer).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
}

/// The back-channel logout event member of a logout token.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token right in every way for the hostile IdP's user-1 and IdP session `sid`.
fn good_logout(issuer: &str, sid: &str) -> (Value, Value) {
    let now = now();
    (
        json!({"alg": "RS256", "typ": "logout+jwt", "kid": "hostile-a"}),
        json!({"iss": issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120,
               "jti": URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>()),
               "sub": "user-1", "sid": sid, "events": {LOGOUT_EVENT: {}}}),
    )
}

/// Posts a logout token as an IdP does; the status, `Cache-Control` and JSON answer.
async fn post_logout_token(app: &TestApp, token: &str) -> (StatusCode, Option<String>, Value) {
    let resp = app
        .api
        .post(app.url("/sso/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cache, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn hostile_logout_tokens_are_refused_and_end_nothing() {
    let (app, hostile, login_url) = setup().await;
    // A second org on another IdP with its own client: its client id is no client of ours at
    // the hostile IdP.
    let other = Hostile::start().await;
    app.create_org("beta", &[]).await;
    let (status, body) = app
        .admin(
            reqwest::Method::PUT,
            "/api/v1/orgs/beta/sso",
            Some(json!({"issuer": other.issuer, "client_id": "beta-client", "client_secret": "beta-secret-0123456789"})),
        )
        .await;
    assert!(status.is_success(), "{body}");

    // user-1 signs in; the ID token carries the IdP's session id.
    let s = start(&login_url).await;
    let (header, mut claims) = hostile.good(&s.nonce);
    claims["sid"] = json!("hsid-1");
    hostile.set(Answer::Token {
        header,
        claims,
        sign: Sign::KeyA,
    });
    let (status, page) = s.callback(&app, &hostile.issuer).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let resp = s
        .browser
        .post(app.url("/api/v1/me/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let minted: Value = resp.json().await.unwrap();
    let minted = minted["access_token"].as_str().unwrap().to_owned();
    let verify = |t: String| {
        let url = app.url("/auth/acme/verify");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(verify(minted.clone()).await, StatusCode::OK);

    let replayed = good_logout(&hostile.issuer, "no-such-idp-session");
    let replayed = build_jwt(&replayed.0, &replayed.1, Sign::KeyA);
    // A valid token that matches nothing: 200, nothing ended.
    let (status, cache, body) = post_logout_token(&app, &replayed).await;
    assert_eq!(
        (status, cache.as_deref()),
        (StatusCode::OK, Some("no-store")),
        "{body}"
    );
    assert!(app.me(&s.browser).await.is_some());

    #[rustfmt::skip]
    let cases: Vec<(&str, Sign, Mutation, &str)> = vec![
        ("bad signature", Sign::KeyB, |_, _| {}, "signature does not verify"),
        ("alg none", Sign::Unsigned, |h, _| h["alg"] = json!("none"), "unsigned"),
        ("HMAC keyed with the public key", Sign::HmacWithPublicKey, |h, _| h["alg"] = json!("HS256"), "shared-secret"),
        ("unknown key", Sign::KeyB, |h, _| h["kid"] = json!("hostile-b"), "no signing key matching"),
        ("typ JWT", Sign::KeyA, |h, _| h["typ"] = json!("JWT"), "logout+jwt"),
        ("wrong iss", Sign::KeyA, |_, c| c["iss"] = json!("http://127.0.0.1:9/other"), "No connected SSO connection"),
        ("wrong aud", Sign::KeyA, |_, c| c["aud"] = json!("someone-else"), "No connected SSO connection"),
        ("another connection's client", Sign::KeyA, |_, c| c["aud"] = json!("beta-client"), "No connected SSO connection"),
        // Read before the signature to find the connection: never a 500 on PostgreSQL.
        ("a NUL byte in iss", Sign::KeyA, |_, c| c["iss"] = json!("http://127.0.0.1:9/x\u{0}y"), "control characters"),
        ("a NUL byte in aud", Sign::KeyA, |_, c| c["aud"] = json!(["a\u{0}b"]), "control characters"),
        ("expired", Sign::KeyA, |_, c| c["exp"] = json!(now() - 3600), "expired"),
        ("iat in the future", Sign::KeyA, |_, c| c["iat"] = json!(now() + 3600), "in the future"),
        ("iat long ago", Sign::KeyA, |_, c| { c["iat"] = json!(now() - 86400); c.as_object_mut().unwrap().remove("exp"); }, "too long ago"),
        ("nonce present", Sign::KeyA, |_, c| c["nonce"] = json!("n"), "nonce"),
        ("no events", Sign::KeyA, |_, c| { c.as_object_mut().unwrap().remove("events"); }, "no back-channel logout event"),
        ("wrong event", Sign::KeyA, |_, c| c["events"] = json!({"http://schemas.openid.net/event/other": {}}), "no back-channel logout event"),
        ("neither sub nor sid", Sign::KeyA, |_, c| { let m = c.as_object_mut().unwrap(); m.remove("sub"); m.remove("sid"); }, "neither"),
        ("no jti", Sign::KeyA, |_, c| { c.as_object_mut().unwrap().remove("jti"); }, "jti"),
    ];
    let mut sent = vec![("replayed jti", replayed.clone(), "already used")];
    for (case, sign, mutate, says) in cases {
        let (mut header, mut claims) = good_logout(&hostile.issuer, "hsid-1");
        mutate(&mut header, &mut claims);
        sent.push((case, build_jwt(&header, &claims, sign), says));
    }
    sent.push(("garbage", "not.a.jwt".into(), "malformed"));
    for (case, token, says) in &sent {
        let (status, cache, body) = post_logout_token(&app, token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(cache.as_deref(), Some("no-store"), "{case}");
        assert_eq!(body["error"], "invalid_request", "{case}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains(says),
            "{case}: should say {says:?}: {description}"
        );
        for part in token.split('.').filter(|p| p.len() >= 8) {
            assert!(
                !description.contains(&part[..8]),
                "{case}: the answer quotes the token"
            );
        }
        assert!(
            app.me(&s.browser).await.is_some(),
            "{case}: the session ended"
        );
    }
    assert_eq!(
        verify(minted.clone()).await,
        StatusCode::OK,
        "the minted token still works"
    );

    // Not a form, or no token: 400 too.
    let resp = app
        .api
        .post(app.url("/sso/backchannel-logout"))
        .json(&json!({"logout_token": replayed}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = app
        .api
        .post(app.url("/sso/backchannel-logout"))
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = app
        .api
        .post(app.url("/sso/backchannel-logout"))
        .form(&[("logout_token", "a".repeat(64 * 1024))])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert!(app.me(&s.browser).await.is_some());

    // The right token ends the session and the token minted from it; sent twice, the second
    // is a replay.
    let (header, claims) = good_logout(&hostile.issuer, "hsid-1");
    let token = build_jwt(&header, &claims, Sign::KeyA);
    let (status, _, body) = post_logout_token(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(app.me(&s.browser).await.is_none(), "the session ended");
    assert_eq!(verify(minted).await, StatusCode::UNAUTHORIZED);
    let (status, _, body) = post_logout_token(&app, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, audit) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    let logouts: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "sso.backchannel_logout")
        .collect();
    assert_eq!(logouts.len(), 2, "{audit}");
    assert!(logouts
        .iter()
        .any(|e| e["detail"]["sessions_ended"] == 1 && e["detail"]["sid"] == true));
    assert!(logouts.iter().any(|e| e["detail"]["sessions_ended"] == 0));

    // With only `sub`: every session of that subject through the connection ends.
    let mut browsers = Vec::new();
    for sid in ["hsid-2", "hsid-3"] {
        let s = start(&login_url).await;
        let (header, mut claims) = hostile.good(&s.nonce);
        claims["sid"] = json!(sid);
        hostile.set(Answer::Token {
            header,
            claims,
            sign: Sign::KeyA,
        });
        assert_eq!(
            s.callback(&app, &hostile.issuer).await.0,
            StatusCode::SEE_OTHER
        );
        assert!(app.me(&s.browser).await.is_some());
        browsers.push(s.browser);
    }
    let (header, mut claims) = good_logout(&hostile.issuer, "unused");
    claims.as_object_mut().unwrap().remove("sid");
    let (status, _, body) = post_logout_token(&app, &build_jwt(&header, &claims, Sign::KeyA)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for b in &browsers {
        assert!(
            app.me(b).await.is_none(),
            "a session of the subject lives on"
        );
    }
    let (_, audit) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "sso.backchannel_logout"
                && e["detail"]["sessions_ended"] == 2
                && e["detail"]["sid"] == false),
        "{audit}"
    );

    // The accepted jtis are kept until the tokens could no longer be valid, then purged.
    app.store.purge_expired(now()).await.unwrap();
    let (status, _, body) = post_logout_token(&app, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "still a replay: {body}");
    // Three accepted tokens (the one matching nothing, the sid one, the sub-only one).
    assert!(app.store.purge_expired(now() + 3600).await.unwrap() >= 3);
}
