//! orgsso against OpenID Providers written by other people, through the whole life cycle:
//! connect, sign in through the provider's own login form, role from rules, logout at the
//! provider (its session ends), disconnect, reconnect.
//!
//! Provider here: django-oauth-toolkit (`django_op.rs`). What differs from oidc-provider, and
//! how orgsso copes, is written down in the README's per-provider notes.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use url::Url;

use crate::django_op::{walk_at_op, DjangoClient, DjangoOp, DjangoOpConfig, PASSWORD};
use crate::helpers::{browser, location, spawn_app, TestApp, CLIENT_ID, CLIENT_SECRET};

fn user(email: &str, name: &str, groups: &[&str]) -> Value {
    json!({"email": email, "name": name, "groups": groups, "password": PASSWORD})
}

async fn start_django(app: &TestApp, authz_iss: bool) -> DjangoOp {
    start_django_with(app, authz_iss, None).await
}

async fn start_django_with(app: &TestApp, authz_iss: bool, algorithm: Option<&str>) -> DjangoOp {
    DjangoOp::start(DjangoOpConfig {
        clients: vec![DjangoClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![app.redirect_uri()],
            // What orgsso sends as post_logout_redirect_uri: its signed-out page.
            post_logout_redirect_uris: vec![format!("{}/signed-out", app.public)],
            algorithm: algorithm.map(str::to_owned),
        }],
        users: json!({
            "dana": user("dana@acme.test", "Dana Admin", &["ops-admins", "staff"]),
            "erin": user("erin@acme.test", "Erin Staff", &["staff"]),
        })
        .as_object()
        .unwrap()
        .clone(),
        authz_iss,
    })
    .await
}

/// Signs `username` in through `login_url`: orgsso's redirect, the provider's pages (its login
/// form only when the browser has no provider session), then orgsso's callback. Returns the
/// callback URL (not secret to the test) and orgsso's answer to it.
async fn sign_in(
    app: &TestApp,
    b: &reqwest::Client,
    login_url: &str,
    username: &str,
) -> (String, reqwest::Response, bool) {
    let start = b.get(login_url).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER, "login URL redirects");
    let walk = walk_at_op(b, &location(&start), Some((username, PASSWORD))).await;
    let callback = walk.left_to.unwrap_or_else(|| {
        panic!(
            "the provider did not send {username} back: {:?}",
            walk.trail
        )
    });
    assert!(
        callback.starts_with(&app.redirect_uri()),
        "the provider sent the browser to {callback}"
    );
    let answer = b.get(&callback).send().await.unwrap();
    (callback, answer, walk.asked_for_credentials)
}

async fn signed_out_at_op(b: &reqwest::Client, login_url: &str) -> bool {
    let start = b.get(login_url).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let walk = walk_at_op(b, &location(&start), None).await;
    walk.asked_for_credentials
}

const RULES: &str = r#"{
    "default_role": "viewer",
    "rules": [{"claim": "groups", "op": "contains", "value": "ops-admins", "role": "admin"}]
}"#;

#[tokio::test]
async fn django_oauth_toolkit_whole_life_cycle() {
    let app = spawn_app().await;
    let op = start_django(&app, false).await;
    assert!(op.issuer.ends_with("/o"), "{}", op.issuer);

    // Connect: discovery at {issuer}/.well-known/openid-configuration, issuer with a path.
    app.create_org("acme", &["acme.test"]).await;
    let conn = app.connect("acme", &op.issuer).await;
    assert_eq!(conn["status"], "connected", "{conn}");
    assert_eq!(conn["issuer"], op.issuer.as_str());
    let login_url = conn["login_url"].as_str().unwrap().to_owned();
    app.set_rules("acme", serde_json::from_str(RULES).unwrap())
        .await;

    // Sign in through Django's login form: the groups claim (Django groups) picks the role.
    let dana = browser();
    let (callback, answer, asked) = sign_in(&app, &dana, &login_url, "dana").await;
    assert!(asked, "a fresh browser meets the provider's login form");
    assert!(
        !callback.contains("iss="),
        "DOT sends no RFC 9207 `iss` unless configured to: {callback}"
    );
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&answer), "/");
    let me = app.me(&dana).await.expect("dana is signed in");
    assert_eq!(
        me,
        json!({"user_id": me["user_id"], "email": "dana@acme.test", "name": "Dana Admin", "org": "acme", "role": "admin"})
    );
    let dana_id = me["user_id"].as_str().unwrap().to_owned();

    let erin = browser();
    let (_, answer, _) = sign_in(&app, &erin, &login_url, "erin").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.me(&erin).await.unwrap()["role"],
        "viewer",
        "no rule matched"
    );

    // While the provider's session lives, the login URL goes straight through (no form).
    let (_, answer, asked) = sign_in(&app, &dana, &login_url, "dana").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(!asked, "the provider's session is reused");
    assert_eq!(app.me(&dana).await.unwrap()["user_id"], dana_id.as_str());

    // Logout: orgsso's session ends and the browser is sent to DOT's end-session endpoint,
    // which (without id_token_hint) asks "log out of the provider too?"; accepting it ends the
    // provider's session and returns to the registered post-logout redirect URI.
    let csrf = app.form_token(&dana, "/").await;
    let out = dana
        .post(app.url("/logout"))
        .header("accept", "application/json")
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    let out: Value = out.json().await.unwrap();
    let end_session = out["end_session_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no end_session_url: {out}"))
        .to_owned();
    assert!(
        end_session.starts_with(&op.end_session_endpoint()),
        "{end_session}"
    );
    assert!(app.me(&dana).await.is_none(), "orgsso's session ended");
    let walk = walk_at_op(&dana, &end_session, None).await;
    assert!(
        !walk.asked_for_credentials,
        "logout asked for credentials: {:?}",
        walk.trail
    );
    let back = walk
        .left_to
        .unwrap_or_else(|| panic!("DOT did not redirect after logout: {:?}", walk.trail));
    assert!(
        back.starts_with(&format!("{}/signed-out?", app.public)),
        "DOT sent the browser to {back} after logout"
    );
    // OpenID RP-Initiated Logout §2: with an ID token hint naming the signed-in user (orgsso
    // keeps it per session), DOT ends its session without asking.
    let hinted = Url::parse(&end_session)
        .unwrap()
        .query_pairs()
        .any(|(k, _)| k == "id_token_hint");
    assert!(hinted, "no id_token_hint in {end_session}");
    assert_eq!(
        walk.confirmations, 0,
        "confirmation forms at DOT's logout: {:?}",
        walk.trail
    );
    assert!(
        signed_out_at_op(&dana, &login_url).await,
        "after logout the provider asks for credentials again"
    );
    assert!(
        !signed_out_at_op(&erin, &login_url).await,
        "another browser's provider session is untouched"
    );

    // Disconnect: every SSO session ends, the admin becomes a viewer, the login URL is gone.
    let (_, answer, asked) = sign_in(&app, &dana, &login_url, "dana").await;
    assert!(asked);
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.me(&dana).await.unwrap()["role"], "admin");
    let (status, body) = app
        .admin(Method::DELETE, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "disconnected", "sessions_revoked": 2, "members_downgraded": 1})
    );
    assert!(app.me(&dana).await.is_none());
    assert!(app.me(&erin).await.is_none());
    assert_eq!(
        browser().get(&login_url).send().await.unwrap().status(),
        StatusCode::GONE
    );

    // Reconnect: a new login URL; signing in again gives the role back from the rules, as the
    // same (issuer, subject) user.
    let conn = app.connect("acme", &op.issuer).await;
    let new_url = conn["login_url"].as_str().unwrap().to_owned();
    assert_ne!(new_url, login_url);
    assert_eq!(
        browser().get(&login_url).send().await.unwrap().status(),
        StatusCode::GONE
    );
    let fresh = browser();
    let (_, answer, asked) = sign_in(&app, &fresh, &new_url, "dana").await;
    assert!(asked);
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let me = app.me(&fresh).await.unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["user_id"], dana_id.as_str());
    let members = app.members("acme").await;
    assert_eq!(members.len(), 2, "{members:?}");
}

/// DOT 3.x sends RFC 9207 `iss` on authorization responses and announces it in discovery when
/// `COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS` is on; orgsso compares it with the issuer (with
/// its `/o` path) and signs in.
#[tokio::test]
async fn django_oauth_toolkit_with_the_iss_response_parameter() {
    let app = spawn_app().await;
    let op = start_django(&app, true).await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &op.issuer).await;
    app.set_rules("acme", serde_json::from_str(RULES).unwrap())
        .await;
    let b = browser();
    let (callback, answer, _) =
        sign_in(&app, &b, conn["login_url"].as_str().unwrap(), "dana").await;
    let iss = Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "iss")
        .map(|(_, v)| v.into_owned());
    assert_eq!(iss.as_deref(), Some(op.issuer.as_str()), "{callback}");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.me(&b).await.unwrap()["role"], "admin");
}

/// Two ways admins register a DOT application that orgsso cannot sign in with, each refused
/// with a page that says what to change and no session: HS256 ID tokens (signed with the client
/// secret, no `kid`), and DOT's default "No OIDC support", whose token endpoint fails (500).
#[tokio::test]
async fn django_oauth_toolkit_misregistered_applications_are_refused_clearly() {
    for (algorithm, status, says) in [
        ("HS256", StatusCode::UNAUTHORIZED, "shared-secret (HS*)"),
        ("", StatusCode::FAILED_DEPENDENCY, "500"),
    ] {
        let app = spawn_app().await;
        let op = start_django_with(&app, false, Some(algorithm)).await;
        app.create_org("acme", &[]).await;
        let conn = app.connect("acme", &op.issuer).await;
        let b = browser();
        let (_, answer, _) = sign_in(&app, &b, conn["login_url"].as_str().unwrap(), "dana").await;
        assert_eq!(answer.status(), status, "algorithm {algorithm:?}");
        let page = answer.text().await.unwrap();
        assert!(page.contains(says), "algorithm {algorithm:?}: {page}");
        assert!(
            app.me(&b).await.is_none(),
            "no session (algorithm {algorithm:?})"
        );
    }
}
