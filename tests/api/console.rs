//! The web console over HTTP (the real-browser walk-through is in `browser.rs`): who may enter,
//! the anti-forgery token on every form, errors shown in the forms with nothing changed, and
//! key material never shown again.

use reqwest::{Client, StatusCode};
use serde_json::json;

use crate::helpers::{
    account, browser, form_token_in, location, spawn_app, spawn_app_with, start_idp, TestApp,
    ADMIN_TOKEN, CLIENT_ID, CLIENT_SECRET,
};

/// `s` as the pages' HTML escaping writes it (minijinja escapes `/` too).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

async fn page(b: &Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let resp = b.get(app.url(path)).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Posts a console form with the token taken from `from` (a page of the same session).
pub(crate) async fn post_form(
    b: &Client,
    app: &TestApp,
    from: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (status, html) = page(b, app, from).await;
    assert_eq!(status, StatusCode::OK, "{from}: {html}");
    let csrf = form_token_in(&html);
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend_from_slice(fields);
    b.post(app.url(path)).form(&form).send().await.unwrap()
}

/// Posts the SSO page's connect form.
async fn connect_form(
    b: &Client,
    app: &TestApp,
    issuer: &str,
    secret: &str,
    scopes: &str,
    groups_claim: &str,
) -> reqwest::Response {
    let fields = [
        ("issuer", issuer),
        ("client_id", CLIENT_ID),
        ("client_secret", secret),
        ("scopes", scopes),
        ("groups_claim", groups_claim),
    ];
    post_form(b, app, "/admin/orgs/acme", "/admin/orgs/acme", &fields).await
}

/// Posts the rule editor of org acme.
async fn post_rules(b: &Client, app: &TestApp, fields: &[(&str, &str)]) -> reqwest::Response {
    let rules = "/admin/orgs/acme/rules";
    post_form(b, app, rules, rules, fields).await
}

/// Org acme's stored rule set, through the admin API.
async fn saved_rules(app: &TestApp) -> serde_json::Value {
    let path = "/api/v1/orgs/acme/sso/role-mapping";
    app.admin(reqwest::Method::GET, path, None).await.1
}

/// A browser signed in to the console as the operator.
async fn operator(app: &TestApp) -> Client {
    let b = browser();
    let ok = b
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ok.status(), location(&ok)),
        (StatusCode::SEE_OTHER, "/admin".to_owned())
    );
    b
}

#[tokio::test]
async fn operator_signs_in_with_the_admin_token_and_sees_the_orgs() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let b = browser();
    let resp = b.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/admin/login".to_owned())
    );
    let login = b.get(app.url("/admin/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["x-frame-options"], "DENY");
    assert_eq!(login.headers()["referrer-policy"], "no-referrer");
    assert!(login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(
        login.headers().get("set-cookie").is_none(),
        "an anonymous visit stores no session"
    );
    let html = login.text().await.unwrap();
    assert!(html.contains("name=\"token\""));

    let wrong = b
        .post(app.url("/admin/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("not the admin token"));
    assert_eq!(
        b.get(app.url("/admin")).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );

    let cross_site = b
        .post(app.url("/admin/login"))
        .header("origin", "http://evil.example")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    let ok = b
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ok.status(), location(&ok)),
        (StatusCode::SEE_OTHER, "/admin".to_owned())
    );
    let set_cookie: Vec<String> = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(set_cookie
        .iter()
        .any(|c| c.starts_with("orgsso_session=") && c.contains("HttpOnly")));
    assert!(
        !set_cookie.iter().any(|c| c.contains(ADMIN_TOKEN)),
        "the token is never kept in the browser"
    );
    let (status, html) = page(&b, &app, "/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Org acme") && html.contains("not configured"),
        "{html}"
    );
    assert!(!html.contains(ADMIN_TOKEN));
    let raw = crate::helpers::raw_database(&app).await;
    assert!(
        !raw.windows(ADMIN_TOKEN.len())
            .any(|w| w == ADMIN_TOKEN.as_bytes()),
        "token stored"
    );

    let out = post_form(&b, &app, "/admin", "/admin/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        b.get(app.url("/admin")).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );

    let disabled = spawn_app_with(|s| s.admin_token = None).await;
    let resp = browser()
        .post(disabled.url("/admin/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.unwrap().contains("ORGSSO_ADMIN_TOKEN"));
}

#[tokio::test]
async fn every_console_form_needs_this_sessions_token() {
    let app = spawn_app().await;
    let b = operator(&app).await;
    let other = operator(&app).await;
    let (_, other_html) = page(&other, &app, "/admin").await;
    let foreign = form_token_in(&other_html);
    let fields = [("slug", "acme"), ("name", "Acme"), ("domains", "")];
    for csrf in [None, Some(""), Some("forged"), Some(foreign.as_str())] {
        let mut form = fields.to_vec();
        if let Some(t) = csrf {
            form.push(("csrf", t));
        }
        let resp = b.post(app.url("/admin")).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "token {csrf:?}");
        assert!(resp.text().await.unwrap().contains("Request refused"));
    }
    let (_, orgs) = app.admin(reqwest::Method::GET, "/api/v1/orgs", None).await;
    assert_eq!(orgs, json!([]), "nothing was created without the token");

    let created = post_form(&b, &app, "/admin", "/admin", &fields).await;
    assert_eq!(
        (created.status(), location(&created)),
        (StatusCode::SEE_OTHER, "/admin/orgs/acme".to_owned())
    );
    let (status, html) = page(&b, &app, "/admin/orgs/acme").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"notice\"") && html.contains("Created Acme"));

    // Each page renders, with the session's token in its forms and the page headers.
    let mine = form_token_in(&page(&b, &app, "/admin").await.1);
    assert_ne!(mine, foreign);
    for path in [
        "/admin/orgs/acme",
        "/admin/orgs/acme/rules",
        "/admin/orgs/acme/secrets",
    ] {
        let resp = b.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()["x-frame-options"], "DENY", "{path}");
        let html = resp.text().await.unwrap();
        assert!(html.contains("/static/console.js"), "{path}");
        assert_eq!(form_token_in(&html), mine, "{path}: one token per session");
    }
    for path in ["/admin/orgs/acme/members", "/admin/orgs/acme/audit"] {
        let (status, html) = page(&b, &app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
    }
    let (_, audit) = page(&b, &app, "/admin/orgs/acme/audit").await;
    assert!(audit.contains("org.create") && audit.contains("operator"));
    let js = b.get(app.url("/static/console.js")).send().await.unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
}

#[tokio::test]
async fn connect_form_shows_discovery_errors_and_keeps_what_was_typed() {
    let app = spawn_app().await;
    let idp = start_idp(&app, json!({})).await;
    app.create_org("acme", &[]).await;
    let b = operator(&app).await;
    let bad_issuer = "http://127.0.0.1:9/nothing";
    let groups_scopes = "openid email profile groups";
    let resp = connect_form(&b, &app, bad_issuer, CLIENT_SECRET, groups_scopes, "groups").await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"connect-error\""), "{html}");
    assert!(html.contains("discovery"), "{html}");
    assert!(html.contains(&esc(bad_issuer)), "the typed issuer is kept");
    assert!(!html.contains(CLIENT_SECRET), "the secret is never echoed");
    let (status, _) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    let bad_claim = connect_form(
        &b,
        &app,
        &idp.issuer,
        CLIENT_SECRET,
        "openid",
        "/bad~pointer",
    )
    .await;
    assert_eq!(bad_claim.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_claim.text().await.unwrap().contains("groups_claim"));

    let ok = connect_form(
        &b,
        &app,
        &idp.issuer,
        CLIENT_SECRET,
        groups_scopes,
        "groups",
    )
    .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let (_, sso) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(sso["status"], "connected");
    assert_eq!(sso["groups_claim"], "groups");
    let (_, html) = page(&b, &app, "/admin/orgs/acme").await;
    let login_url = sso["login_url"].as_str().unwrap();
    assert!(html.contains(&format!("<code id=\"login-url\">{}</code>", esc(login_url))));
    assert!(html.contains(&format!(
        "<code id=\"redirect-uri\">{}</code>",
        esc(&app.redirect_uri())
    )));
    assert!(!html.contains(CLIENT_SECRET));

    // An update without a secret keeps the stored one and the login URL.
    let update = connect_form(&b, &app, &idp.issuer, "", "openid email", "groups").await;
    assert_eq!(update.status(), StatusCode::SEE_OTHER);
    let (_, after) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(
        (after["login_url"].as_str(), &after["scopes"]),
        (Some(login_url), &json!(["openid", "email"]))
    );
}

#[tokio::test]
async fn rule_editor_refuses_bad_rules_beside_the_rule_and_dry_runs_unsaved_rules() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let b = operator(&app).await;
    let rows = |second_op: &'static str, second_value: &'static str| {
        vec![
            ("claim", "groups"),
            ("op", "contains"),
            ("value", "engineering"),
            ("role", "developer"),
            ("claim", "groups"),
            ("op", second_op),
            ("value", second_value),
            ("role", "admin"),
            ("default_role", "viewer"),
        ]
    };
    let mut bad = rows("matches", "(");
    bad.push(("action", "save"));
    let resp = post_rules(&b, &app, &bad).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    let error_at = html
        .find("class=\"rule-error")
        .expect("an error beside a rule");
    assert!(
        html[error_at..].starts_with("class=\"rule-error error\" role=\"alert\">Rule 2:"),
        "{}",
        &html[error_at..error_at + 200]
    );
    assert_eq!(html.matches("class=\"rule-error").count(), 1, "only rule 2");
    assert!(html.contains("value=\"(\""), "the rows come back as typed");
    let rules = saved_rules(&app).await;
    assert_eq!(rules["rules"], json!([]), "nothing was saved");

    // A dry run evaluates the rules as typed, without saving them.
    let mut dry = rows("contains", "admins");
    dry.extend([
        ("action", "dry_run"),
        ("claims", r#"{"groups": ["admins"]}"#),
    ]);
    let resp = post_rules(&b, &app, &dry).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("<strong id=\"dry-run-rule\">2</strong>")
            && html.contains("<strong id=\"dry-run-role\">admin</strong>"),
        "{html}"
    );
    let rules = saved_rules(&app).await;
    assert_eq!(rules["rules"], json!([]), "a dry run saves nothing");
    let mut not_json = rows("contains", "admins");
    not_json.extend([("action", "dry_run"), ("claims", "[1, 2]")]);
    let resp = post_rules(&b, &app, &not_json).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.text().await.unwrap().contains("JSON object"));

    let mut save = rows("in", "admins, owners");
    save.push(("action", "save"));
    let resp = post_rules(&b, &app, &save).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let rules = saved_rules(&app).await;
    assert_eq!(
        rules,
        json!({"default_role": "viewer", "rules": [
            {"claim": "groups", "op": "contains", "value": "engineering", "role": "developer"},
            {"claim": "groups", "op": "in", "value": ["admins", "owners"], "role": "admin"}]})
    );
    let (_, html) = page(&b, &app, "/admin/orgs/acme/rules").await;
    assert!(html.contains("value=\"admins, owners\""), "shown as typed");
}

#[tokio::test]
async fn org_admins_get_their_own_org_only_and_lose_it_with_the_role() {
    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({
            "bob": account("bob@acme.test", "Bob", &["admins"]),
            "alice": account("alice@acme.test", "Alice", &["engineering"]),
        }),
    )
    .await;
    app.create_org("acme", &[]).await;
    app.create_org("other", &[]).await;
    let sso = app.connect("acme", &idp.issuer).await;
    let login_url = sso["login_url"].as_str().unwrap().to_owned();
    app.set_rules(
        "acme",
        json!({"default_role": "viewer", "rules": [
            {"claim": "groups", "op": "contains", "value": "admins", "role": "admin"}]}),
    )
    .await;

    let bob = browser();
    assert_eq!(
        app.login(&bob, &login_url, "bob").await.status(),
        StatusCode::SEE_OTHER
    );
    let resp = bob.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/admin/orgs/acme".to_owned())
    );
    let (status, html) = page(&bob, &app, "/admin/orgs/acme/members").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("bob@acme.test"));
    assert!(!html.contains("All organisations"), "no operator links");
    for path in ["/admin/orgs/other", "/admin/orgs/nope/rules"] {
        let (status, html) = page(&bob, &app, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(html.contains("not one of its admins"));
    }
    let create = post_form(
        &bob,
        &app,
        "/admin/orgs/acme",
        "/admin",
        &[("slug", "mine"), ("name", "Mine")],
    )
    .await;
    assert_eq!(create.status(), StatusCode::FORBIDDEN, "operator only");
    // An org admin's change is audited under their own name.
    let saved = post_form(
        &bob,
        &app,
        "/admin/orgs/acme/rules",
        "/admin/orgs/acme/rules",
        &[
            ("claim", "groups"),
            ("op", "contains"),
            ("value", "admins"),
            ("role", "admin"),
            ("default_role", "viewer"),
            ("action", "save"),
        ],
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let (_, audit) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    assert!(
        audit[0]["action"] == "role_mapping.update"
            && audit[0]["actor"].as_str().unwrap().starts_with("user:"),
        "{audit}"
    );

    // An org admin may not point orgsso at the operator's network, nor claim email domains.
    let internal = post_form(
        &bob,
        &app,
        "/admin/orgs/acme",
        "/admin/orgs/acme",
        &[
            ("issuer", idp.issuer.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", ""),
            ("scopes", "openid"),
            ("groups_claim", "groups"),
        ],
    )
    .await;
    assert_eq!(internal.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(internal
        .text()
        .await
        .unwrap()
        .contains("private or local address"));
    let jwk_url = format!("{}/jwks", idp.issuer);
    let internal = post_form(
        &bob,
        &app,
        "/admin/orgs/acme/secrets",
        "/admin/orgs/acme/secrets",
        &[
            ("name", "k"),
            ("type", "jwk_url"),
            ("url", jwk_url.as_str()),
        ],
    )
    .await;
    assert_eq!(internal.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let domains = post_form(
        &bob,
        &app,
        "/admin/orgs/acme",
        "/admin/orgs/acme/domains",
        &[("domains", "gmail.com")],
    )
    .await;
    assert_eq!(domains.status(), StatusCode::FORBIDDEN);
    let (_, org) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme", None)
        .await;
    assert_eq!(org["domains"], json!([]), "nothing claimed");

    // Alice's browser was the operator's a moment ago: signing in through SSO starts afresh,
    // so nothing of the operator's console sign-in is left to her.
    let alice = operator(&app).await;
    app.login(&alice, &login_url, "alice").await;
    let resp = alice.get(app.url("/admin/orgs/acme")).send().await.unwrap();
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/admin/login".to_owned()),
        "a viewer is not let in"
    );

    // The role is read on every request: once the rules make Bob a viewer at his next sign-in,
    // his console is gone.
    app.set_rules("acme", json!({"default_role": "viewer", "rules": []}))
        .await;
    app.login(&bob, &login_url, "bob").await;
    let resp = bob.get(app.url("/admin/orgs/acme")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn jwt_secret_material_is_never_shown_again() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let b = operator(&app).await;
    let material = "a-shared-secret-of-at-least-32-bytes-0123456789";
    let short = "too-short-secret-material";
    let resp = post_form(
        &b,
        &app,
        "/admin/orgs/acme/secrets",
        "/admin/orgs/acme/secrets",
        &[
            ("name", "api"),
            ("type", "hs256"),
            ("material", short),
            ("audiences", "https://api.acme.test"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"secret-error\""), "{html}");
    assert!(
        !html.contains(short),
        "material is not put back into the form"
    );
    assert!(html.contains(&format!("value=\"{}\"", esc("https://api.acme.test"))));

    let resp = post_form(
        &b,
        &app,
        "/admin/orgs/acme/secrets",
        "/admin/orgs/acme/secrets",
        &[
            ("name", "api"),
            ("type", "hs256"),
            ("material", material),
            ("audiences", "https://api.acme.test"),
            ("primary", "on"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&b, &app, "/admin/orgs/acme/secrets").await;
    assert!(html.contains("data-name=\"api\"") && html.contains("primary"));
    assert!(!html.contains(material));
    let (_, listed) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/jwt-secrets", None)
        .await;
    assert_eq!(listed[0]["name"], "api");

    let gone = post_form(
        &b,
        &app,
        "/admin/orgs/acme/secrets",
        "/admin/orgs/acme/secrets/delete",
        &[("name", "api")],
    )
    .await;
    assert_eq!(gone.status(), StatusCode::SEE_OTHER);
    let (_, listed) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/jwt-secrets", None)
        .await;
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn disconnect_confirmation_counts_what_will_happen() {
    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({
            "bob": account("bob@acme.test", "Bob", &["admins"]),
            "alice": account("alice@acme.test", "Alice", &[]),
        }),
    )
    .await;
    app.create_org("acme", &[]).await;
    let sso = app.connect("acme", &idp.issuer).await;
    let login_url = sso["login_url"].as_str().unwrap().to_owned();
    app.set_rules(
        "acme",
        json!({"default_role": "viewer", "rules": [
            {"claim": "groups", "op": "contains", "value": "admins", "role": "developer"}]}),
    )
    .await;
    let (bob, alice, bob2) = (browser(), browser(), browser());
    app.login(&bob, &login_url, "bob").await;
    app.login(&bob2, &login_url, "bob").await;
    app.login(&alice, &login_url, "alice").await;

    let b = operator(&app).await;
    let (status, html) = page(&b, &app, "/admin/orgs/acme/disconnect").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<strong id=\"disconnect-sessions\">3</strong>")
            && html.contains("<strong id=\"disconnect-members\">1</strong>"),
        "{html}"
    );
    let resp = post_form(
        &b,
        &app,
        "/admin/orgs/acme/disconnect",
        "/admin/orgs/acme/disconnect",
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&b, &app, "/admin/orgs/acme").await;
    assert!(
        html.contains("3 sessions ended, 1 member is now a viewer"),
        "{html}"
    );
    assert!(html.contains("id=\"sso-status\"") && html.contains(">disconnected<"));
    assert!(app.me(&bob).await.is_none() && app.me(&alice).await.is_none());
}

#[tokio::test]
async fn changing_the_admin_token_ends_operator_console_sessions() {
    // Three instances on one database and one service key, as behind a load balancer; the
    // second has been given a new admin token. (Cookies for 127.0.0.1 are shared across ports,
    // so one browser reaches all three with the same session.)
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let first = {
        let key = key.clone();
        spawn_app_with(move |s| s.secret_key = Some(orgsso::crypto::Secret::new(key))).await
    };
    let shared = |token: &'static str| {
        let (db, key) = (first.database_url.clone(), key.clone());
        move |s: &mut orgsso::configuration::Settings| {
            s.database_url = orgsso::crypto::Secret::new(db);
            s.secret_key = Some(orgsso::crypto::Secret::new(key));
            s.admin_token = Some(orgsso::crypto::Secret::new(token));
        }
    };
    let rotated = spawn_app_with(shared("a-new-admin-token-0123456789abcdef")).await;
    let same = spawn_app_with(shared(ADMIN_TOKEN)).await;
    let b = operator(&first).await;
    let on = |app: &TestApp| b.get(app.url("/admin")).send();
    assert_eq!(on(&same).await.unwrap().status(), StatusCode::OK);
    let resp = on(&rotated).await.unwrap();
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/admin/login".to_owned()),
        "a console session made with the old token is worth nothing under the new one"
    );
}

#[tokio::test]
async fn the_userinfo_switch_and_the_dry_run_of_userinfo_claims_and_overage() {
    let app = spawn_app().await;
    let idp = crate::userinfo::start_conforming_idp(&app, false).await;
    app.create_org("acme", &[]).await;
    let b = operator(&app).await;
    let (_, html) = page(&b, &app, "/admin/orgs/acme").await;
    let ticked = r#"<input id="userinfo" name="userinfo" type="checkbox" value="on" checked>"#;
    assert!(html.contains(ticked), "on by default");

    // Unticked: the form sends only `userinfo_shown`.
    let mut fields = vec![
        ("issuer", idp.issuer.as_str()),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scopes", "openid email profile groups"),
        ("groups_claim", "groups"),
        ("userinfo_shown", "1"),
    ];
    let resp = post_form(&b, &app, "/admin/orgs/acme", "/admin/orgs/acme", &fields).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, sso) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(sso["userinfo"], false);
    let (_, html) = page(&b, &app, "/admin/orgs/acme").await;
    assert!(
        html.contains(r#"<input id="userinfo" name="userinfo" type="checkbox" value="on">"#),
        "shown unticked"
    );
    fields.push(("userinfo", "on"));
    let resp = post_form(&b, &app, "/admin/orgs/acme", "/admin/orgs/acme", &fields).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, sso) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(sso["userinfo"], true);

    // A member whose groups came only from userinfo: the dry run on their last sign-in sees them.
    let alice = browser();
    let resp = app
        .login(&alice, sso["login_url"].as_str().unwrap(), "alice")
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let alice_id = app.me(&alice).await.unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rule = [
        ("claim", "groups"),
        ("op", "contains"),
        ("value", "admins"),
        ("role", "admin"),
        ("default_role", "viewer"),
        ("action", "dry_run"),
    ];
    let mut dry = rule.to_vec();
    dry.extend([("claims", ""), ("sample", alice_id.as_str())]);
    let html = post_rules(&b, &app, &dry).await.text().await.unwrap();
    assert!(
        html.contains("<strong id=\"dry-run-role\">admin</strong>"),
        "{html}"
    );
    assert!(
        !html.contains("dry-run-warning"),
        "no warning for plain claims"
    );

    // Claims with an Entra groups overage: the panel says why the groups rule cannot match.
    let overage = r#"{"sub": "x", "_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}}}"#;
    let mut dry = rule.to_vec();
    dry.push(("claims", overage));
    let html = post_rules(&b, &app, &dry).await.text().await.unwrap();
    assert!(html.contains("No rule matched"), "{html}");
    assert!(html.contains("class=\"error dry-run-warning\""), "{html}");
    assert!(html.contains("group filtering in Entra"), "{html}");
}
