//! Claims delivered at the userinfo endpoint, against the real IdP configured as several real
//! providers are (`conformIdTokenClaims: true`: the ID token carries `sub` alone, email, name and
//! groups come only from userinfo), and the per-connection switch that turns the call off.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{account, browser, location, spawn_app, TestApp, CLIENT_ID, CLIENT_SECRET};
use crate::idp::{IdpClient, IdpConfig, TestIdp};

const SCOPES: [&str; 4] = ["openid", "email", "profile", "groups"];

const RULES: &str = r#"{
    "default_role": "viewer",
    "rules": [
        {"claim": "groups", "op": "contains", "value": "admins", "role": "admin"},
        {"claim": "email", "op": "matches", "value": ".*@userinfo[.]test", "role": "developer"}
    ]
}"#;

/// The real IdP with scope claims only at userinfo (and, if asked, userinfo as a signed JWT).
pub async fn start_conforming_idp(app: &TestApp, signed_userinfo: bool) -> TestIdp {
    TestIdp::start(IdpConfig {
        clients: vec![IdpClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![app.redirect_uri()],
            ..IdpClient::default()
        }],
        accounts: json!({
            "alice": account("alice@example.com", "Alice", &["engineering", "admins"]),
            "uma": account("uma@userinfo.test", "Uma", &[]),
        })
        .as_object()
        .unwrap()
        .clone(),
        conform_id_token_claims: true,
        signed_userinfo,
    })
    .await
}

async fn setup(signed_userinfo: bool) -> (TestApp, TestIdp, String) {
    let app = spawn_app().await;
    let idp = start_conforming_idp(&app, signed_userinfo).await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    assert_eq!(conn["userinfo"], true, "on by default: {conn}");
    app.set_rules("acme", serde_json::from_str(RULES).unwrap())
        .await;
    let login_url = conn["login_url"].as_str().unwrap().to_owned();
    (app, idp, login_url)
}

/// The detail of the newest audit event with this action.
async fn last_event(app: &TestApp, action: &str) -> Value {
    let (_, audit) = app
        .admin(Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} event: {audit}"))["detail"]
        .clone()
}

/// The member's last sign-in claims as the dry run offers them.
async fn last_claims(app: &TestApp, email: Option<&str>) -> Value {
    let org = app.store.org_by_slug("acme").await.unwrap().unwrap();
    let recent = app.store.recent_claims(&org.id, 10).await.unwrap();
    let r = recent
        .iter()
        .find(|r| r.email.as_deref() == email)
        .unwrap_or_else(|| panic!("no claims for {email:?}"));
    serde_json::from_str(&r.claims).unwrap()
}

#[tokio::test]
async fn claims_only_at_userinfo_reach_the_rules_the_profile_and_the_dry_run() {
    let (app, _idp, login_url) = setup(false).await;

    let b = browser();
    let resp = app.login(&b, &login_url, "alice").await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{}",
        resp.text().await.unwrap()
    );
    let me = app.me(&b).await.expect("signed in");
    assert_eq!(me["role"], "admin", "groups came from userinfo: {me}");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["name"], "Alice");
    let detail = last_event(&app, "login").await;
    assert_eq!(
        detail["userinfo_claims"],
        json!(["email", "email_verified", "groups", "name"]),
        "the ID token carried none of the scope claims: {detail}"
    );
    let claims = last_claims(&app, Some("alice@example.com")).await;
    assert_eq!(claims["groups"], json!(["engineering", "admins"]));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["iss"],
        _idp.issuer.as_str(),
        "the ID token's claims are kept"
    );

    // A rule on the email, which also came only from userinfo.
    let uma = browser();
    assert_eq!(
        app.login(&uma, &login_url, "uma").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.me(&uma).await.unwrap()["role"], "developer");
}

#[tokio::test]
async fn with_userinfo_off_the_claims_are_missing_and_the_default_role_applies() {
    let (app, idp, login_url) = setup(false).await;
    let (status, body) = app
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            Some(json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "scopes": SCOPES, "userinfo": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["userinfo"], false);
    assert_eq!(
        body["login_url"],
        login_url.as_str(),
        "an update keeps the URL"
    );
    let (_, shown) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(shown["userinfo"], false);
    assert_eq!(last_event(&app, "sso.update").await["userinfo"], false);

    let b = browser();
    let resp = app.login(&b, &login_url, "alice").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let me = app.me(&b).await.unwrap();
    assert_eq!(me["role"], "viewer", "no groups without userinfo: {me}");
    assert!(me["email"].is_null(), "no email without userinfo: {me}");
    let detail = last_event(&app, "login").await;
    assert!(detail.get("userinfo_claims").is_none(), "{detail}");
    assert!(last_claims(&app, None).await.get("groups").is_none());

    // An update that does not mention it keeps it off; turning it on again brings the claims.
    let (_, body) = app
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            Some(json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "scopes": SCOPES})),
        )
        .await;
    assert_eq!(body["userinfo"], false);
    let (_, body) = app
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            Some(json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "scopes": SCOPES, "userinfo": true})),
        )
        .await;
    assert_eq!(body["userinfo"], true);
    let again = browser();
    assert_eq!(
        app.login(&again, &login_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.me(&again).await.unwrap()["role"], "admin");

    // A wrongly typed setting is refused and changes nothing.
    let (status, _) = app
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            Some(json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "scopes": SCOPES, "userinfo": "no"})),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
    let (_, shown) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(shown["userinfo"], true);
}

#[tokio::test]
async fn a_signed_userinfo_answer_from_the_real_idp_is_verified_and_used() {
    let (app, _idp, login_url) = setup(true).await;
    let b = browser();
    let resp = app.login(&b, &login_url, "alice").await;
    let status = resp.status();
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "{}",
        resp.text().await.unwrap()
    );
    assert_eq!(location(&resp), "/");
    let me = app.me(&b).await.unwrap();
    assert_eq!(me["role"], "admin", "{me}");
    assert_eq!(me["email"], "alice@example.com");
    let claims = last_claims(&app, Some("alice@example.com")).await;
    assert_eq!(claims["groups"], json!(["engineering", "admins"]));
}
