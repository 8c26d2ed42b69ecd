//! Token-endpoint client authentication per connection, against the real IdP (clients bound to
//! `client_secret_post`, to `client_secret_basic`, or to `private_key_jwt` with orgsso's
//! published key set) and against an in-test token endpoint that refuses with a bare 401.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    account, assert_public_key_set, browser, location, raw_database, spawn_app, TestApp, CLIENT_ID,
    CLIENT_SECRET,
};
use crate::idp::{IdpClient, IdpConfig, TestIdp};

fn accounts() -> serde_json::Map<String, Value> {
    json!({
        "alice": account("alice@example.com", "Alice", &["admins"]),
        "bob": account("bob@example.com", "Bob", &[]),
    })
    .as_object()
    .unwrap()
    .clone()
}

/// A real IdP whose one client (ours) is registered for `method`.
async fn idp_with(app: &TestApp, method: &str) -> TestIdp {
    TestIdp::start(IdpConfig {
        clients: vec![IdpClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![app.redirect_uri()],
            token_endpoint_auth_method: Some(method.into()),
            ..IdpClient::default()
        }],
        accounts: accounts(),
        ..IdpConfig::default()
    })
    .await
}

async fn put_sso(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.admin(Method::PUT, "/api/v1/orgs/acme/sso", Some(body))
        .await
}

async fn get_sso(app: &TestApp) -> Value {
    let (status, body) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The org's audit events (newest first) as (action, detail).
async fn audit(app: &TestApp) -> Vec<(String, Value)> {
    let org = app.store.org_by_slug("acme").await.unwrap().unwrap();
    app.store
        .audit_events(&org.id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, serde_json::from_str(&e.detail).unwrap()))
        .collect()
}

fn stat(stats: &Value, path: &str) -> u64 {
    stats.pointer(path).and_then(Value::as_u64).unwrap_or(0)
}

#[tokio::test]
async fn automatic_mode_learns_the_method_a_post_only_client_needs() {
    let app = spawn_app().await;
    let idp = idp_with(&app, "client_secret_post").await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    assert_eq!(conn["token_auth_method"], Value::Null, "automatic: {conn}");
    assert!(conn.get("token_auth_method_learned").is_none(), "{conn}");
    assert!(conn.get("client_jwks_uri").is_none(), "{conn}");
    let login_url = conn["login_url"].as_str().unwrap();

    // The IdP lists both secret methods; discovery picks basic, the client is bound to post.
    let alice = browser();
    let resp = app.login(&alice, login_url, "alice").await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        resp.text().await
    );
    assert_eq!(app.me(&alice).await.unwrap()["email"], "alice@example.com");
    let stats = idp.stats().await;
    assert_eq!(
        stat(&stats, "/token_requests"),
        2,
        "refused once, retried once: {stats}"
    );
    assert_eq!(
        stat(&stats, "/token_auth/client_secret_basic"),
        1,
        "{stats}"
    );
    assert_eq!(stat(&stats, "/token_auth/client_secret_post"), 1, "{stats}");

    // Remembered: shown, audited, and the next sign-in needs one token request.
    let view = get_sso(&app).await;
    assert_eq!(view["token_auth_method"], Value::Null, "still automatic");
    assert_eq!(view["token_auth_method_learned"], "client_secret_post");
    let events = audit(&app).await;
    let learned = events
        .iter()
        .find(|(a, _)| a == "sso.token_auth_learned")
        .expect("the learned method is audited");
    assert_eq!(learned.1["refused"], "client_secret_basic");
    assert_eq!(learned.1["method"], "client_secret_post");
    let bob = browser();
    let resp = app.login(&bob, login_url, "bob").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let stats = idp.stats().await;
    assert_eq!(
        stat(&stats, "/token_requests"),
        3,
        "one request this time: {stats}"
    );
    assert_eq!(stat(&stats, "/token_auth/client_secret_post"), 2, "{stats}");
    assert!(!events.iter().any(|(a, _)| a == "sso.client_auth_refused"));

    // An update of the connection forgets what was learned (the registration may have changed).
    let (status, body) = put_sso(
        &app,
        json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "scopes": ["openid", "email"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("token_auth_method_learned").is_none(), "{body}");
}

#[tokio::test]
async fn an_explicit_method_is_never_switched_and_its_refusal_is_named() {
    let app = spawn_app().await;
    let idp = idp_with(&app, "client_secret_post").await;
    app.create_org("acme", &[]).await;
    let (status, conn) = put_sso(
        &app,
        json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
               "scopes": ["openid", "email"], "token_auth_method": "client_secret_basic"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{conn}");
    assert_eq!(conn["token_auth_method"], "client_secret_basic");
    assert_eq!(
        get_sso(&app).await["token_auth_method"],
        "client_secret_basic"
    );
    let login_url = conn["login_url"].as_str().unwrap().to_owned();

    let alice = browser();
    let resp = app.login(&alice, &login_url, "alice").await;
    assert_eq!(resp.status(), StatusCode::FAILED_DEPENDENCY);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains(
            "refused orgsso&#x27;s client authentication (client_secret_basic): invalid_client"
        ) || page.contains(
            "refused orgsso's client authentication (client_secret_basic): invalid_client"
        ),
        "{page}"
    );
    assert!(!page.contains(CLIENT_SECRET));
    assert!(app.me(&alice).await.is_none());
    assert!(app.members("acme").await.is_empty());
    let stats = idp.stats().await;
    assert_eq!(stat(&stats, "/token_requests"), 1, "no retry: {stats}");
    let events = audit(&app).await;
    let (_, refused) = events
        .iter()
        .find(|(a, _)| a == "sso.client_auth_refused")
        .expect("the refusal is audited");
    assert_eq!(refused["methods"], "client_secret_basic");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid_client"),
        "{refused}"
    );
    assert!(!events.iter().any(|(a, _)| a == "sso.token_auth_learned"));

    // The admin sets what the IdP registered (the stored secret is kept): it works.
    let (status, body) = put_sso(
        &app,
        json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "scopes": ["openid", "email"],
               "token_auth_method": "client_secret_post"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp = app.login(&browser(), &login_url, "alice").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(stat(&idp.stats().await, "/token_requests"), 2);
}

#[tokio::test]
async fn the_method_is_checked_when_saved() {
    let app = spawn_app().await;
    let idp = idp_with(&app, "client_secret_basic").await;
    app.create_org("acme", &[]).await;
    let base =
        json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    #[rustfmt::skip]
    let refused = [
        (with(json!({"token_auth_method": "client_secret_jwt"})), "client_secret_basic, client_secret_post or private_key_jwt"),
        (with(json!({"token_auth_method": "Basic"})), "token_auth_method must be"),
        (with(json!({"token_auth_method": "private_key_jwt"})), "private_key_jwt uses no shared secret"),
        (json!({"issuer": idp.issuer, "client_id": CLIENT_ID}), "client_secret is required"),
    ];
    for (body, says) in refused {
        let (status, answer) = put_sso(&app, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
        assert!(!answer.to_string().contains(CLIENT_SECRET));
    }
    // A number is not a method either (refused by the body's types).
    let (status, _) = put_sso(&app, with(json!({"token_auth_method": 5}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Bad input changed nothing.
    let (status, _) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // null is automatic.
    let (status, body) = put_sso(&app, with(json!({"token_auth_method": null}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["token_auth_method"], Value::Null);
}

#[tokio::test]
async fn private_key_jwt_signs_in_with_no_secret_stored() {
    const PKJWT_CLIENT: &str = "orgsso-pkjwt";
    let app = spawn_app().await;
    let idp = TestIdp::start(IdpConfig {
        clients: vec![],
        accounts: accounts(),
        ..IdpConfig::default()
    })
    .await;
    app.create_org("acme", &[]).await;
    let (status, conn) = put_sso(
        &app,
        json!({"issuer": idp.issuer, "client_id": PKJWT_CLIENT, "scopes": ["openid", "email", "groups"],
               "token_auth_method": "private_key_jwt"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{conn}");
    assert_eq!(conn["token_auth_method"], "private_key_jwt");
    let jwks_uri = conn["client_jwks_uri"].as_str().unwrap().to_owned();
    assert!(
        jwks_uri.starts_with(&format!("{}/sso/client-jwks/", app.public)),
        "{jwks_uri}"
    );
    let login_url = conn["login_url"].as_str().unwrap().to_owned();
    assert!(!jwks_uri.contains(login_url.rsplit('/').next().unwrap()));
    assert_eq!(get_sso(&app).await["client_jwks_uri"], jwks_uri.as_str());

    // The key set holds the public key only, and may be cached.
    let resp = app.api.get(&jwks_uri).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cache = resp.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.contains("max-age="), "{cache}");
    let set: Value = resp.json().await.unwrap();
    assert_public_key_set(&set);
    assert_eq!(
        app.status_of("/sso/client-jwks/not-a-key-set").await,
        StatusCode::NOT_FOUND
    );

    // The admin registers the client at the IdP with that JWKS URL (the IdP fetches it).
    idp.put_client(&IdpClient::private_key_jwt(
        PKJWT_CLIENT,
        app.redirect_uri(),
        &jwks_uri,
    ))
    .await;
    let alice = browser();
    let resp = app.login(&alice, &login_url, "alice").await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        resp.text().await
    );
    assert_eq!(location(&resp), "/");
    assert_eq!(app.me(&alice).await.unwrap()["email"], "alice@example.com");
    let stats = idp.stats().await;
    assert_eq!(stat(&stats, "/token_requests"), 1, "{stats}");
    assert_eq!(stat(&stats, "/token_auth/private_key_jwt"), 1, "{stats}");
    // Each assertion is new (the IdP refuses a replayed jti): a second sign-in works too.
    let resp = app.login(&browser(), &login_url, "bob").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // No shared secret at rest, and the private key only encrypted.
    let org = app.store.org_by_slug("acme").await.unwrap().unwrap();
    let stored = app.store.latest_connection(&org.id).await.unwrap().unwrap();
    assert_eq!(stored.client_secret_enc, "");
    let raw = String::from_utf8_lossy(&raw_database(&app).await).to_string();
    assert!(
        !raw.contains("PRIVATE KEY"),
        "the private key is stored in clear"
    );

    // An update that leaves the method out keeps it (here: only userinfo changes).
    let (status, body) = put_sso(
        &app,
        json!({"issuer": idp.issuer, "client_id": PKJWT_CLIENT, "scopes": ["openid", "email", "groups"], "userinfo": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_auth_method"], "private_key_jwt", "{body}");

    // Back to automatic needs a secret again; the key set stays published meanwhile.
    let (status, body) = put_sso(
        &app,
        json!({"issuer": idp.issuer, "client_id": PKJWT_CLIENT, "token_auth_method": null}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("client_secret is required"));

    // Disconnected: the key set is gone with the connection.
    let (status, _) = app
        .admin(Method::DELETE, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let resp = app.api.get(&jwks_uri).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// An in-test IdP whose token endpoint refuses Basic with a bare 401 (no body) and answers a
/// client_secret_post request with a good ID token for `nonce`.
struct Bare401 {
    issuer: String,
    nonce: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<&'static str>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Bare401 {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Bare401State = (String, Arc<Mutex<String>>, Arc<Mutex<Vec<&'static str>>>);

async fn bare_401_token(
    State((issuer, nonce, seen)): State<Bare401State>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if headers.contains_key("authorization") {
        seen.lock().unwrap().push("client_secret_basic");
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    }
    assert!(body.contains("client_secret="), "{body}");
    seen.lock().unwrap().push("client_secret_post");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "hostile-a"});
    let claims = json!({"iss": issuer, "aud": CLIENT_ID, "sub": "user-1", "email": "u1@example.com",
        "nonce": *nonce.lock().unwrap(), "iat": now, "exp": now + 300});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rsa_a.pem")).unwrap();
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256).unwrap();
    Json(json!({"token_type": "Bearer", "id_token": format!("{input}.{sig}")})).into_response()
}

impl Bare401 {
    async fn start() -> Bare401 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        });
        let jwk: Value = serde_json::from_str(include_str!("../fixtures/rsa_a.jwk.json")).unwrap();
        let (nonce, seen) = (Arc::default(), Arc::default());
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(discovery) }),
            )
            .route(
                "/jwks",
                get(move || async move { Json(json!({"keys": [jwk]})) }),
            )
            .route("/token", post(bare_401_token))
            .with_state((issuer.clone(), Arc::clone(&nonce), Arc::clone(&seen)));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Bare401 {
            issuer,
            nonce,
            seen,
            server,
        }
    }

    /// Starts a sign-in in a new browser and brings back the IdP's answer with a code.
    async fn sign_in(&self, app: &TestApp, login_url: &str) -> (StatusCode, String) {
        let b = browser();
        let start = b.get(login_url).send().await.unwrap();
        let url = url::Url::parse(&location(&start)).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        *self.nonce.lock().unwrap() = q["nonce"].clone();
        let resp = b
            .get(format!(
                "{}?code=c&state={}",
                app.redirect_uri(),
                q["state"]
            ))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    fn seen(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

#[tokio::test]
async fn a_bare_401_is_a_refusal_of_the_client() {
    let app = spawn_app().await;
    let idp = Bare401::start().await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    let login_url = conn["login_url"].as_str().unwrap().to_owned();

    let (status, page) = idp.sign_in(&app, &login_url).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(idp.seen(), ["client_secret_basic", "client_secret_post"]);
    assert_eq!(
        get_sso(&app).await["token_auth_method_learned"],
        "client_secret_post"
    );
    let (status, _) = idp.sign_in(&app, &login_url).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        idp.seen(),
        ["client_secret_post"],
        "learned: straight to post"
    );

    // Chosen explicitly, basic is refused and named, with no retry.
    let (status, body) = put_sso(
        &app,
        json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "token_auth_method": "client_secret_basic"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, page) = idp.sign_in(&app, &login_url).await;
    assert_eq!(status, StatusCode::FAILED_DEPENDENCY, "{page}");
    assert!(page.contains("(client_secret_basic): HTTP 401"), "{page}");
    assert_eq!(idp.seen(), ["client_secret_basic"]);
}

#[tokio::test]
async fn the_console_chooses_the_method_and_shows_the_client_jwks_url() {
    use crate::helpers::form_token_in;
    let app = spawn_app().await;
    let idp = idp_with(&app, "client_secret_basic").await;
    app.create_org("acme", &[]).await;
    let b = app.operator_console().await;
    let post = |secret: &'static str, method: &'static str| {
        let (b, app, issuer) = (b.clone(), &app, idp.issuer.clone());
        async move {
            let html = b
                .get(app.url("/admin/orgs/acme"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let csrf = form_token_in(&html);
            let resp = b
                .post(app.url("/admin/orgs/acme"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("issuer", issuer.as_str()),
                    ("client_id", CLIENT_ID),
                    ("client_secret", secret),
                    ("scopes", "openid email"),
                    ("groups_claim", ""),
                    ("token_auth_method", method),
                ])
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let (_, html) = (
        (),
        b.get(app.url("/admin/orgs/acme"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(html.contains("<select id=\"token_auth_method\""), "{html}");
    for option in [
        "\"\"",
        "\"client_secret_basic\"",
        "\"client_secret_post\"",
        "\"private_key_jwt\"",
    ] {
        assert!(
            html.contains(&format!("<option value={option}")),
            "{option}: {html}"
        );
    }

    // A secret with private_key_jwt: refused in the form, the choice kept, nothing stored.
    let (status, html) = post(CLIENT_SECRET, "private_key_jwt").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("uses no shared secret"), "{html}");
    assert!(
        html.contains("<option value=\"private_key_jwt\" selected>"),
        "{html}"
    );
    assert!(!html.contains(CLIENT_SECRET));
    let (status, html) = post("", "client_secret_jwt").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("token_auth_method must be"), "{html}");
    let (status, _) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Without one: connected, and the JWKS URL is shown to copy beside the redirect URI.
    let (status, html) = post("", "private_key_jwt").await;
    assert!(
        status.is_success() || status == StatusCode::SEE_OTHER,
        "{html}"
    );
    let view = get_sso(&app).await;
    assert_eq!(view["token_auth_method"], "private_key_jwt");
    let jwks_uri = view["client_jwks_uri"].as_str().unwrap();
    let html = b
        .get(app.url("/admin/orgs/acme"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let escaped = jwks_uri.replace('/', "&#x2f;");
    assert!(
        html.contains(&format!("<code id=\"client-jwks-uri\">{escaped}</code>")),
        "{html}"
    );
    assert!(html.contains("data-copy=\"client-jwks-uri\""));
    assert!(html.contains("<option value=\"private_key_jwt\" selected>"));

    // Back to a secret method needs the secret again; with it, automatic it is.
    let (status, html) = post("", "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("client_secret is required"), "{html}");
    let (status, _) = post(CLIENT_SECRET, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(get_sso(&app).await["token_auth_method"], Value::Null);
}
