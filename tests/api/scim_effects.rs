//! SCIM's effects on sign-ins and sessions (issue 13): deprovisioning ends sessions and minted
//! tokens at once (on another instance too) and refuses sign-ins until reactivated; a first
//! sign-in links to the provisioned member by the connection's link claim or a verified-domain
//! email, never by an unverified one; the console's SCIM page. Runs on SQLite, and on
//! PostgreSQL with `ORGSSO_TEST_BACKEND=postgres`; the cross-instance test needs
//! `ORGSSO_TEST_PG_URL`.

use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    account, browser, fresh_pg_database, pg_server, spawn_app, start_idp, TestApp,
};
use crate::roles::{mint, verify_role};
use crate::scim::{member, patch, scim, scim_token, USER};

/// Orgsso with the org, its IdP connection and a SCIM token: (app, idp, login URL, token).
async fn connected(
    app: &TestApp,
    accounts: Value,
    domains: &[&str],
) -> (crate::idp::TestIdp, String, String) {
    let idp = start_idp(app, accounts).await;
    app.create_org("acme", domains).await;
    let conn = app.connect("acme", &idp.issuer).await;
    assert_eq!(conn["scim_link_claim"], "sub", "{conn}");
    let token = scim_token(app, "acme", "Okta").await;
    (idp, conn["login_url"].as_str().unwrap().to_owned(), token)
}

async fn provision(
    app: &TestApp,
    token: &str,
    user_name: &str,
    external_id: Option<&str>,
    email: &str,
) -> String {
    let mut body = json!({"schemas": [USER], "userName": user_name, "active": true,
        "emails": [{"value": email, "type": "work", "primary": true}]});
    if let Some(e) = external_id {
        body["externalId"] = json!(e);
    }
    let a = scim(
        app,
        Some(token),
        Method::POST,
        "/scim/v2/acme/Users",
        Some(body),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

async fn set_active(app: &TestApp, token: &str, id: &str, active: bool) {
    let a = scim(
        app,
        Some(token),
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(patch(
            json!([{"op": "replace", "value": {"active": active}}]),
        )),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn deprovisioning_ends_sessions_and_tokens_and_refuses_sign_in_until_reactivated() {
    let app = spawn_app().await;
    let (_idp, login_url, token) = connected(
        &app,
        json!({"ada": account("ada@example.com", "Ada", &["eng"])}),
        &[],
    )
    .await;
    app.set_rules(
        "acme",
        json!({"default_role": "viewer", "rules": [
        {"claim": "/scim/groups", "op": "contains", "value": "Admins", "role": "admin"}]}),
    )
    .await;
    // Provisioned with externalId = the IdP's `sub`, and put in Admins.
    let id = provision(
        &app,
        &token,
        "ada@example.com",
        Some("ada"),
        "ada@example.com",
    )
    .await;
    let g = scim(
        &app,
        Some(&token),
        Method::POST,
        "/scim/v2/acme/Groups",
        Some(json!({"displayName": "Admins", "members": [{"value": id}]})),
    )
    .await;
    assert_eq!(g.status, StatusCode::CREATED);

    // The first sign-in is the provisioned member (linked by sub = externalId), with the
    // role the directory's groups give.
    let b = browser();
    assert_eq!(
        app.login(&b, &login_url, "ada").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.members("acme").await.len(), 1, "no second member");
    assert_eq!(app.me(&b).await.unwrap()["role"], "admin");
    let minted = mint(&app, &b).await;
    assert_eq!(
        verify_role(&app, &browser(), Some(&minted)).await,
        (StatusCode::OK, Some("admin".into()))
    );
    assert_eq!(verify_role(&app, &b, None).await.0, StatusCode::OK);

    // Deactivated: session and minted token stop at once.
    set_active(&app, &token, &id, false).await;
    assert_eq!(
        verify_role(&app, &b, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        verify_role(&app, &browser(), Some(&minted)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(app.me(&b).await.is_none());
    // The next sign-in is refused with a clear page.
    let again = browser();
    let refused = app.login(&again, &login_url, "ada").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("directory has deactivated your account"),
        "{page}"
    );
    // A rule save does not undo it.
    app.set_rules("acme", json!({"default_role": "developer", "rules": []}))
        .await;
    assert_eq!(
        app.login(&browser(), &login_url, "ada").await.status(),
        StatusCode::FORBIDDEN
    );

    // Reactivated: they may sign in again.
    set_active(&app, &token, &id, true).await;
    let back = browser();
    assert_eq!(
        app.login(&back, &login_url, "ada").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.me(&back).await.unwrap()["role"], "developer");
    // Deleted: refused again.
    assert_eq!(
        scim(
            &app,
            Some(&token),
            Method::DELETE,
            &format!("/scim/v2/acme/Users/{id}"),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert!(app.me(&back).await.is_none());
    assert_eq!(
        app.login(&browser(), &login_url, "ada").await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn first_sign_in_links_by_verified_domain_email_but_never_by_an_unverified_one() {
    let app = spawn_app().await;
    let (_idp, login_url, token) = connected(
        &app,
        json!({
            "u-verified": account("vera@acme.test", "Vera", &[]),
            "u-unverified": account("una@elsewhere.test", "Una", &[]),
        }),
        &["acme.test"],
    )
    .await;
    // externalIds that match no `sub`: only the email can link.
    provision(
        &app,
        &token,
        "vera@acme.test",
        Some("entra-oid-1"),
        "vera@acme.test",
    )
    .await;
    provision(
        &app,
        &token,
        "una@elsewhere.test",
        Some("entra-oid-2"),
        "una@elsewhere.test",
    )
    .await;
    assert_eq!(app.members("acme").await.len(), 2);

    let b = browser();
    assert_eq!(
        app.login(&b, &login_url, "u-verified").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.members("acme").await.len(),
        2,
        "linked to the provisioned member"
    );
    let me = app.me(&b).await.unwrap();
    let members = app.members("acme").await;
    assert_eq!(
        member(&members, "vera@acme.test").unwrap()["user_id"],
        me["user_id"]
    );

    // The same email claim on a domain the org has not verified links nothing: a new member.
    let b2 = browser();
    assert_eq!(
        app.login(&b2, &login_url, "u-unverified").await.status(),
        StatusCode::SEE_OTHER
    );
    let members = app.members("acme").await;
    assert_eq!(
        members.len(),
        3,
        "an unverified email is not trusted to link"
    );
    let me2 = app.me(&b2).await.unwrap();
    let provisioned: Vec<&Value> = members
        .iter()
        .filter(|m| m["email"] == "una@elsewhere.test")
        .collect();
    assert_eq!(provisioned.len(), 2);
    assert!(provisioned
        .iter()
        .any(|m| m["user_id"] != me2["user_id"] && m["source"] == "scim"));

    // The link is audited with how it was matched.
    let (_, audit) = app
        .admin(Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    let link = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "scim.user.link")
        .expect("link audited");
    assert_eq!(
        link["detail"]["matched"]["by"], "verified_domain_email",
        "{link}"
    );
}

#[tokio::test]
async fn the_link_claim_is_a_connection_setting() {
    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({"s1": {"email": "x@acme.test", "preferred_username": "dir-77"}}),
    )
    .await;
    app.create_org("acme", &[]).await;
    app.connect("acme", &idp.issuer).await;
    let (s, conn) = app
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            Some(json!({
        "issuer": idp.issuer, "client_id": crate::helpers::CLIENT_ID, "scim_link_claim": "oid"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{conn}");
    assert_eq!(conn["scim_link_claim"], "oid");
    let (_, shown) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(shown["scim_link_claim"], "oid");
    let (s, bad) = app.admin(Method::PUT, "/api/v1/orgs/acme/sso", Some(json!({
        "issuer": idp.issuer, "client_id": crate::helpers::CLIENT_ID, "scim_link_claim": "no spaces"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    // Through the real IdP, with a claim other than `sub` (its profile scope's
    // `preferred_username`, standing in for Entra ID's `oid`): the first sign-in is the
    // provisioned member whose externalId it equals.
    let (s, conn) = app.admin(Method::PUT, "/api/v1/orgs/acme/sso", Some(json!({
        "issuer": idp.issuer, "client_id": crate::helpers::CLIENT_ID, "scim_link_claim": "preferred_username"}))).await;
    assert_eq!(s, StatusCode::OK, "{conn}");
    let token = scim_token(&app, "acme", "Entra ID").await;
    provision(
        &app,
        &token,
        "someone@acme.test",
        Some("dir-77"),
        "someone@acme.test",
    )
    .await;
    let b = browser();
    let login_url = conn["login_url"].as_str().unwrap();
    assert_eq!(
        app.login(&b, login_url, "s1").await.status(),
        StatusCode::SEE_OTHER
    );
    let members = app.members("acme").await;
    assert_eq!(members.len(), 1, "linked, no second member: {members:?}");
    assert_eq!(app.me(&b).await.unwrap()["user_id"], members[0]["user_id"]);
    let (_, audit) = app
        .admin(Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    let link = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "scim.user.link")
        .expect("link audited");
    assert_eq!(
        link["detail"]["matched"],
        json!({"by": "link_claim", "claim": "preferred_username"}),
        "{link}"
    );
}

/// Polls `check` until it holds, at most `bound`; true when it held.
async fn within(bound: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > bound {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn deprovisioning_on_one_instance_ends_access_on_another() {
    let Some(server) = pg_server() else {
        eprintln!("\n*** NOT RUN: deprovisioning_on_one_instance_ends_access_on_another needs ORGSSO_TEST_PG_URL ***\n");
        return;
    };
    let url = fresh_pg_database(&server).await;
    let apps = crate::multi_instance::instances(2, &url, 5).await;
    let (a, b) = (&apps[0], &apps[1]);
    let (_idp, login_url, token) = connected(
        a,
        json!({"ada": account("ada@example.com", "Ada", &[])}),
        &[],
    )
    .await;
    let id = provision(b, &token, "ada@example.com", Some("ada"), "ada@example.com").await;
    let user: Client = browser();
    assert_eq!(
        a.login(&user, &login_url, "ada").await.status(),
        StatusCode::SEE_OTHER
    );
    let minted = mint(a, &user).await;
    // Warm instance A's caches.
    assert_eq!(verify_role(a, &user, None).await.0, StatusCode::OK);
    assert_eq!(
        verify_role(a, &browser(), Some(&minted)).await.0,
        StatusCode::OK
    );

    set_active(b, &token, &id, false).await;
    let ended = within(Duration::from_secs(1), async || {
        verify_role(a, &user, None).await.0 == StatusCode::UNAUTHORIZED
            && verify_role(a, &browser(), Some(&minted)).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(ended, "instance A still lets the deprovisioned member in");
}

#[tokio::test]
async fn the_console_scim_page_creates_shows_once_and_revokes_tokens() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let op = app.operator_console().await;
    let page = app.page_text(&op, "/admin/orgs/acme/scim").await;
    assert!(
        page.replace("&#x2f;", "/")
            .contains(&format!("{}/scim/v2/acme", app.public)),
        "{page}"
    );
    assert!(page.contains("data-copy=\"scim-base-url\""));
    let csrf = crate::helpers::form_token_in(&page);
    let created = op
        .post(app.url("/admin/orgs/acme/scim"))
        .form(&[("csrf", csrf.as_str()), ("name", "Entra ID")])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let html = created.text().await.unwrap();
    let start = html.find("orgsso_scim_").expect("the new token is shown");
    let token: String = html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    // It works, and it is never shown again.
    assert_eq!(
        scim(&app, Some(&token), Method::GET, "/scim/v2/acme/Users", None)
            .await
            .status,
        StatusCode::OK
    );
    let again = app.page_text(&op, "/admin/orgs/acme/scim").await;
    assert!(
        !again.contains(&token) && again.contains("Entra ID"),
        "{again}"
    );
    provision(&app, &token, "pat@acme.test", None, "pat@acme.test").await;
    let listed = app.page_text(&op, "/admin/orgs/acme/scim").await;
    assert!(listed.contains("pat@acme.test"), "{listed}");
    let (_, tokens) = app
        .admin(Method::GET, "/api/v1/orgs/acme/scim-tokens", None)
        .await;
    let id = tokens[0]["id"].as_str().unwrap();
    let revoked = op
        .post(app.url("/admin/orgs/acme/scim/revoke"))
        .form(&[("csrf", csrf.as_str()), ("id", id)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        scim(&app, Some(&token), Method::GET, "/scim/v2/acme/Users", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_member_who_signed_in_before_provisioning_is_adopted_not_duplicated() {
    let app = spawn_app().await;
    let (_idp, login_url, token) = connected(
        &app,
        json!({"ada": account("ada@example.com", "Ada", &[])}),
        &[],
    )
    .await;
    let b = browser();
    assert_eq!(
        app.login(&b, &login_url, "ada").await.status(),
        StatusCode::SEE_OTHER
    );
    // The directory pushes her later, with externalId = her `sub`.
    let id = provision(
        &app,
        &token,
        "ada@example.com",
        Some("ada"),
        "ada@example.com",
    )
    .await;
    let members = app.members("acme").await;
    assert_eq!(members.len(), 1, "adopted, no second member: {members:?}");
    assert_eq!(app.me(&b).await.unwrap()["user_id"], members[0]["user_id"]);
    // Deprovisioning reaches the session she already had.
    set_active(&app, &token, &id, false).await;
    assert!(app.me(&b).await.is_none());
}
