//! RP-initiated logout against the real test IdP: the end-session request carries the
//! session's ID token as `id_token_hint` (with `client_id`, `post_logout_redirect_uri` and
//! `state`), the IdP accepts it and ends its own session, and the browser lands on orgsso's
//! signed-out page. The ID token is kept sealed in the session record and goes with it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{account, browser, location, raw_database, spawn_app, start_idp, TestApp};
use crate::idp::{idp_asks_for_credentials, logout_at_idp, TestIdp};

async fn setup() -> (TestApp, TestIdp, String) {
    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({
            "alice": account("alice@example.com", "Alice", &["admins"]),
            "bob": account("bob@example.com", "Bob", &[]),
        }),
    )
    .await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    let login_url = conn["login_url"].as_str().unwrap().to_owned();
    (app, idp, login_url)
}

/// `POST /logout` as a script would (no Origin: the cookie alone), answered in JSON.
async fn logout_json(app: &TestApp, b: &Client) -> Value {
    let resp = b
        .post(app.url("/logout"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The IdP's authorization URL orgsso sends this browser to from the login URL.
async fn authorize_url(b: &Client, login_url: &str) -> String {
    let start = b.get(login_url).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    location(&start)
}

#[tokio::test]
async fn logout_ends_the_idp_session_through_its_end_session_endpoint_with_id_token_hint() {
    let (app, idp, login_url) = setup().await;
    let b = browser();
    assert_eq!(
        app.login(&b, &login_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    // The IdP session is live: another visit to the login URL passes without credentials.
    assert!(!idp_asks_for_credentials(&b, &authorize_url(&b, &login_url).await).await);

    // The admin API shows the URI to register.
    let (status, conn) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let post_logout = format!("{}/signed-out", app.public);
    assert_eq!(conn["post_logout_redirect_uri"], post_logout.as_str());

    let out = logout_json(&app, &b).await;
    assert_eq!(out["status"], "signed_out");
    assert!(app.me(&b).await.is_none(), "orgsso's session ended");
    let end_session = out["end_session_url"].as_str().expect("an end-session URL");
    assert!(
        end_session.starts_with(&format!("{}/session/end", idp.issuer)),
        "{end_session}"
    );
    let q = query(end_session);
    assert_eq!(q["client_id"], crate::helpers::CLIENT_ID);
    assert_eq!(q["post_logout_redirect_uri"], post_logout);
    assert!(q["state"].len() >= 32, "{end_session}");
    let hint = claims_of(&q["id_token_hint"]);
    assert_eq!(hint["sub"], "alice");
    assert_eq!(hint["iss"], idp.issuer.as_str());
    assert_eq!(hint["aud"], crate::helpers::CLIENT_ID);

    // The IdP accepts the request (an invalid hint or unregistered URI is an error page there)
    // and, once confirmed, sends the browser to orgsso's signed-out page with the state.
    let hints_before = idp.stats().await["end_session_hints"].as_i64().unwrap();
    let back = logout_at_idp(&b, end_session).await;
    assert!(back.starts_with(&post_logout), "{back}");
    assert_eq!(query(&back)["state"], q["state"]);
    assert_eq!(
        idp.stats().await["end_session_hints"].as_i64().unwrap(),
        hints_before + 1,
        "the IdP received the hint"
    );
    let page = b
        .get(app.url(&format!(
            "/signed-out?{}",
            url::Url::parse(&back).unwrap().query().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("You are signed out"), "{html}");
    assert!(
        html.contains("identity provider has signed you out too"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/login\""),
        "a way to sign in again: {html}"
    );

    // The IdP's own session ended: the next visit to the login URL asks for credentials.
    assert!(idp_asks_for_credentials(&b, &authorize_url(&b, &login_url).await).await);
    // And signing in again works.
    assert_eq!(
        app.login(&b, &login_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.me(&b).await.unwrap()["email"], "alice@example.com");

    // The signed-out page on its own (a stale link, another browser) says only "signed out".
    let stranger = browser()
        .get(app.url(&format!("/signed-out?state={}", q["state"])))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::OK);
    let html = stranger.text().await.unwrap();
    assert!(html.contains("You are signed out") && !html.contains("signed you out too"));
}

#[tokio::test]
async fn the_page_logout_links_to_the_idp_and_the_console_shows_the_uri() {
    let (app, _idp, login_url) = setup().await;
    let b = browser();
    app.login(&b, &login_url, "bob").await;
    let page = app.logout(&b).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    // The page escapes the link as HTML (minijinja escapes `/` too).
    let link = html
        .split("href=\"")
        .map(|s| {
            s.split('"')
                .next()
                .unwrap()
                .replace("&#x2f;", "/")
                .replace("&amp;", "&")
        })
        .find(|h| h.contains("/session/end"))
        .unwrap_or_else(|| panic!("no end-session link: {html}"));
    assert_eq!(claims_of(&query(&link)["id_token_hint"])["sub"], "bob");

    // The operator console shows the post-logout redirect URI beside the redirect URI.
    let operator = app.operator_console().await;
    let html = app.page_text(&operator, "/admin/orgs/acme").await;
    let escaped = format!("{}/signed-out", app.public).replace('/', "&#x2f;");
    assert!(
        html.contains(&format!(
            "<code id=\"post-logout-redirect-uri\">{escaped}</code>"
        )),
        "{html}"
    );
    assert!(html.contains("data-copy=\"post-logout-redirect-uri\""));
}

/// The `data` of every session row, as the database holds it.
async fn session_rows(app: &TestApp) -> Vec<(String, String)> {
    if app.database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        return sqlx::query_as("SELECT id, data FROM sessions ORDER BY created_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    }
    let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
    sqlx::query_as("SELECT id, data FROM sessions ORDER BY created_at")
        .fetch_all(&pool)
        .await
        .unwrap()
}

async fn set_session_data(app: &TestApp, id: &str, data: &str) {
    if app.database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query("UPDATE sessions SET data = $1 WHERE id = $2")
            .bind(data)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        return;
    }
    let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
    sqlx::query("UPDATE sessions SET data = $1 WHERE id = $2")
        .bind(data)
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_id_token_is_sealed_at_rest_bound_to_its_session_and_gone_after_logout() {
    let (app, _idp, login_url) = setup().await;
    let (alice, bob) = (browser(), browser());
    app.login(&alice, &login_url, "alice").await;
    app.login(&bob, &login_url, "bob").await;
    let rows = session_rows(&app).await;
    assert_eq!(rows.len(), 2);
    let sealed: Vec<String> = rows
        .iter()
        .map(|(_, data)| {
            let d: Value = serde_json::from_str(data).unwrap();
            d["idt"]
                .as_str()
                .expect("the session keeps the sealed ID token")
                .to_owned()
        })
        .collect();
    let at_rest = raw_database(&app).await;

    // Alice's sealed token moved into Bob's row does not open there: Bob's logout goes out
    // without a hint (the IdP still gets client_id), rather than with Alice's token.
    let (bob_id, bob_data) = &rows[1];
    let mut moved: Value = serde_json::from_str(bob_data).unwrap();
    moved["idt"] = json!(sealed[0]);
    set_session_data(&app, bob_id, &moved.to_string()).await;
    let out = logout_json(&app, &bob).await;
    let q = query(out["end_session_url"].as_str().unwrap());
    assert!(!q.contains_key("id_token_hint"), "{q:?}");
    assert_eq!(q["client_id"], crate::helpers::CLIENT_ID);

    // Alice's own logout sends it; the raw token was never readable in the database.
    let out = logout_json(&app, &alice).await;
    let token = query(out["end_session_url"].as_str().unwrap())["id_token_hint"].clone();
    let needle = |hay: &[u8], s: &str| hay.windows(s.len()).any(|w| w == s.as_bytes());
    for part in token.split('.') {
        assert!(
            !needle(&at_rest, part),
            "a part of the ID token is readable at rest"
        );
    }
    assert!(
        needle(&at_rest, &sealed[0]),
        "the sealed value is what is stored"
    );
    // Gone with the sessions.
    assert!(session_rows(&app).await.is_empty());
}
