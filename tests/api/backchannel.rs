//! Back-channel logout against the real test IdP (oidc-provider with its `backchannelLogout`
//! feature on): the user ends the IdP session at its end-session endpoint, the IdP posts a
//! logout token to orgsso, and the orgsso session that IdP session started, and every token
//! minted from it, are refused within a second, while another session of the same user (another
//! IdP session) lives on. Across instances on PostgreSQL: `multi_instance.rs`.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{account, browser, spawn_app, TestApp, CLIENT_ID, CLIENT_SECRET};
use crate::idp::{logout_at_idp, IdpClient, IdpConfig, TestIdp};

/// How long a refusal may take to show, on any instance.
pub const WITHIN: Duration = Duration::from_secs(1);

/// A real IdP whose client for `app` has orgsso's back-channel logout URI registered, with
/// "session required" (ID tokens and logout tokens carry `sid`).
pub async fn backchannel_idp(app: &TestApp, accounts: Value) -> TestIdp {
    TestIdp::start(IdpConfig {
        clients: vec![IdpClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![app.redirect_uri()],
            post_logout_redirect_uris: vec![format!("{}/signed-out", app.public)],
            backchannel_logout_uri: Some(format!("{}/sso/backchannel-logout", app.public)),
            backchannel_logout_session_required: true,
            ..IdpClient::default()
        }],
        accounts: accounts.as_object().unwrap().clone(),
        ..IdpConfig::default()
    })
    .await
}

/// The user ends their IdP session in browser `b`, at the IdP (no orgsso involved): the
/// end-session endpoint, confirmed "yes". oidc-provider posts the logout tokens before it
/// answers the confirmation.
pub async fn sign_out_at_idp(idp: &TestIdp, app: &TestApp, b: &Client) {
    let mut url = url::Url::parse(&format!("{}/session/end", idp.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair(
            "post_logout_redirect_uri",
            &format!("{}/signed-out", app.public),
        );
    let back = logout_at_idp(b, url.as_str()).await;
    assert!(back.starts_with(&app.public), "{back}");
}

/// `/auth/acme/verify` on `app` with the cookie of `b`, or with `token` when given.
pub async fn verify(app: &TestApp, b: &Client, token: Option<&str>) -> StatusCode {
    let req = match token {
        Some(t) => Client::new()
            .get(app.url("/auth/acme/verify"))
            .bearer_auth(t),
        None => b.get(app.url("/auth/acme/verify")),
    };
    req.send().await.unwrap().status()
}

/// Polls until both the session (cookie of `b`) and `token` are refused on `app`; how long that
/// took. Panics after [`WITHIN`].
pub async fn refused_within(app: &TestApp, b: &Client, token: &str, since: Instant) -> Duration {
    loop {
        let cookie = verify(app, b, None).await;
        let bearer = verify(app, b, Some(token)).await;
        if cookie == StatusCode::UNAUTHORIZED && bearer == StatusCode::UNAUTHORIZED {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < WITHIN,
            "still accepted after {:?}: cookie {cookie}, token {bearer}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn mint(app: &TestApp, b: &Client) -> String {
    let resp = b.post(app.url("/api/v1/me/token")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signing_out_at_the_idp_ends_that_session_and_its_tokens_at_once() {
    let app = spawn_app().await;
    let idp = backchannel_idp(
        &app,
        json!({"alice": account("alice@example.com", "Alice", &[])}),
    )
    .await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    assert_eq!(
        conn["backchannel_logout_uri"],
        format!("{}/sso/backchannel-logout", app.public).as_str()
    );
    let login_url = conn["login_url"].as_str().unwrap();

    // Alice signs in twice, in two browsers: two IdP sessions, two orgsso sessions.
    let (one, two) = (browser(), browser());
    for b in [&one, &two] {
        assert_eq!(
            app.login(b, login_url, "alice").await.status(),
            StatusCode::SEE_OTHER
        );
    }
    let (token_one, token_two) = (mint(&app, &one).await, mint(&app, &two).await);
    for (b, t) in [(&one, &token_one), (&two, &token_two)] {
        assert_eq!(verify(&app, b, None).await, StatusCode::OK);
        assert_eq!(verify(&app, b, Some(t)).await, StatusCode::OK);
    }

    let since = Instant::now();
    sign_out_at_idp(&idp, &app, &one).await;
    let took = refused_within(&app, &one, &token_one, since).await;
    eprintln!(
        "[backchannel] session and minted token refused {took:?} after the IdP logout request"
    );
    assert!(app.me(&one).await.is_none());
    let stats = idp.stats().await;
    assert_eq!(
        (
            stats["backchannel_sent"].as_i64(),
            stats["backchannel_failed"].as_i64()
        ),
        (Some(1), Some(0)),
        "{stats}"
    );

    // The other IdP session's orgsso session lives on (the token named its `sid`).
    assert_eq!(verify(&app, &two, None).await, StatusCode::OK);
    assert_eq!(verify(&app, &two, Some(&token_two)).await, StatusCode::OK);
    assert!(app.me(&two).await.is_some());

    let (_, audit) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    let logout = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "sso.backchannel_logout")
        .unwrap_or_else(|| panic!("no audit event: {audit}"));
    assert_eq!(logout["detail"]["sessions_ended"], 1, "{logout}");
    assert_eq!(logout["detail"]["sid"], true, "{logout}");
    assert_eq!(logout["detail"]["sub"], true, "{logout}");

    // The operator console shows the URI to register, with a copy button.
    let operator = app.operator_console().await;
    let html = app.page_text(&operator, "/admin/orgs/acme").await;
    let escaped = format!("{}/sso/backchannel-logout", app.public).replace('/', "&#x2f;");
    assert!(
        html.contains(&format!(
            "<code id=\"backchannel-logout-uri\">{escaped}</code>"
        )),
        "{html}"
    );
    assert!(html.contains("data-copy=\"backchannel-logout-uri\""));
}
