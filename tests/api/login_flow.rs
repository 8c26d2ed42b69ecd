//! The whole life cycle against the real IdP: connect, sign in, roles from rules, Login with
//! SSO, disconnect, reconnect, key rotation.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{account, browser, location, spawn_app, spawn_app_with, start_idp, TestApp};
use crate::idp::TestIdp;

const RULES: &str = r#"{
    "default_role": "viewer",
    "rules": [
        {"claim": "groups", "op": "contains", "value": "contractors", "role": "deny"},
        {"claim": "groups", "op": "contains", "value": "admins", "role": "admin"},
        {"claim": "groups", "op": "contains", "value": "engineering", "role": "developer"}
    ]
}"#;

async fn setup() -> (TestApp, TestIdp, String) {
    setup_with(spawn_app().await).await
}

async fn setup_with(app: TestApp) -> (TestApp, TestIdp, String) {
    let idp = start_idp(
        &app,
        json!({
            "alice": account("alice@example.com", "Alice", &["engineering", "admins"]),
            "bob": account("bob@example.com", "Bob", &["engineering"]),
            "carol": account("carol@example.com", "Carol", &[]),
            "mallory": account("mallory@example.com", "Mallory", &["contractors", "admins"]),
        }),
    )
    .await;
    app.create_org("acme", &["acme.test"]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    app.set_rules("acme", serde_json::from_str(RULES).unwrap())
        .await;
    let login_url = conn["login_url"].as_str().unwrap().to_owned();
    (app, idp, login_url)
}

#[tokio::test]
async fn sign_in_applies_rules_and_recomputes_roles_on_every_login() {
    let (app, idp, login_url) = setup().await;

    let alice = browser();
    let resp = app.login(&alice, &login_url, "alice").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/");
    let me = app.me(&alice).await.expect("alice is signed in");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["org"], "acme");
    assert_eq!(me["role"], "admin");
    let alice_id = me["user_id"].as_str().unwrap().to_owned();

    let bob = browser();
    assert_eq!(
        app.login(&bob, &login_url, "bob").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.me(&bob).await.unwrap()["role"], "developer");

    let carol = browser();
    assert_eq!(
        app.login(&carol, &login_url, "carol").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.me(&carol).await.unwrap()["role"],
        "viewer",
        "no rule matched: default role"
    );

    let mallory = browser();
    let resp = app.login(&mallory, &login_url, "mallory").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "deny rule");
    let page = resp.text().await.unwrap();
    assert!(page.contains("not allowed to sign in"), "{page}");
    assert!(app.me(&mallory).await.is_none(), "no session after a deny");

    // Alice leaves the admins group at the IdP: her next sign-in makes her a developer.
    idp.set_account(
        "alice",
        account("alice@example.com", "Alice", &["engineering"]),
    )
    .await;
    let again = browser();
    assert_eq!(
        app.login(&again, &login_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    let me = app.me(&again).await.unwrap();
    assert_eq!(me["role"], "developer");
    assert_eq!(
        me["user_id"],
        alice_id.as_str(),
        "same (issuer, subject), same user"
    );

    let members = app.members("acme").await;
    assert_eq!(members.len(), 3, "{members:?}");
    for m in &members {
        assert_eq!(m["source"], "sso");
        assert!(m["last_login_at"].is_i64());
    }
    let (_, audit) = app
        .admin(Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "sso.connect",
        "role_mapping.update",
        "login",
        "login.denied",
        "member.role_change",
    ] {
        assert!(
            actions.contains(&expected),
            "audit lacks {expected}: {actions:?}"
        );
    }
}

#[tokio::test]
async fn return_to_is_honoured_and_the_session_id_changes_at_sign_in() {
    let (app, _idp, login_url) = setup().await;
    let b = browser();
    let start = b
        .get(format!("{login_url}?return_to=/dashboard%3Ftab%3D2"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let idp_url = location(&start);
    for param in [
        "response_type=code",
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
        "scope=openid",
    ] {
        assert!(
            idp_url.contains(param),
            "authorization request lacks {param}: {idp_url}"
        );
    }
    let callback = crate::idp::login_at_idp(&b, &idp_url, "bob").await;
    let resp = b.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/dashboard?tab=2");
    let first_cookie = session_cookie(&resp);
    assert!(app.me(&b).await.is_some());

    // Signing in again in the same browser issues a new session id; the old one is dead.
    let resp = app.login(&b, &login_url, "bob").await;
    let second_cookie = session_cookie(&resp);
    assert_ne!(first_cookie, second_cookie);
    let stale = reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("orgsso_session={first_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);

    // Replaying the callback is refused: the state was single-use.
    let replay = b.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
}

fn session_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("orgsso_session="))
        .map(|c| {
            assert!(c.contains("HttpOnly"), "{c}");
            assert!(c.contains("SameSite=Lax"), "{c}");
            c.split(';')
                .next()
                .unwrap()
                .trim_start_matches("orgsso_session=")
                .to_owned()
        })
        .expect("a session cookie is set at sign-in")
}

#[tokio::test]
async fn login_with_sso_routes_emails_to_their_org() {
    let (app, _idp, login_url) = setup().await;
    let b = browser();
    let page = b.get(app.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("name=\"email\""));

    // By verified domain.
    let resp = b
        .post(app.url("/login/sso"))
        .form(&[("email", "Dave@Acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(&resp);
    assert!(
        login_url.ends_with(to.split('?').next().unwrap()),
        "{to} vs {login_url}"
    );
    assert!(to.contains("login_hint=dave%40acme.test"), "{to}");

    // Unknown email: a clear answer, no redirect.
    let resp = b
        .post(app.url("/login/sso"))
        .form(&[("email", "eve@nowhere.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.headers().get("location").is_none());
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("know an organisation for eve@nowhere.test"));

    // Not an email at all.
    let resp = b
        .post(app.url("/login/sso"))
        .form(&[("email", "not-an-email")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // By this browser's earlier SSO sign-in (example.com is no org's domain; more in
    // routing.rs), then the whole way through.
    assert_eq!(
        app.login(&b, &login_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    let resp = b
        .post(app.url("/login/sso"))
        .form(&[("email", "alice@example.com"), ("return_to", "/after")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let start = b.get(app.url(&location(&resp))).send().await.unwrap();
    let callback = crate::idp::login_at_idp(&b, &location(&start), "alice").await;
    let done = b.get(&callback).send().await.unwrap();
    assert_eq!(location(&done), "/after");
    assert_eq!(app.me(&b).await.unwrap()["email"], "alice@example.com");

    // Signed-in page, then logout ends the session.
    let home = b.get(app.url("/")).send().await.unwrap();
    assert!(home.text().await.unwrap().contains("alice@example.com"));
    // A client that is not a browser (no Origin, no Sec-Fetch-Site) signs out with the cookie
    // alone, as the contract says; browsers must send the page's form token.
    let out = b.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert!(app.me(&b).await.is_none());
}

#[tokio::test]
async fn disconnect_revokes_sessions_downgrades_members_and_reconnect_issues_a_new_url() {
    let (app, _idp, login_url) = setup().await;
    let alice = browser();
    let bob = browser();
    let carol = browser();
    for (b, who) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        assert_eq!(
            app.login(b, &login_url, who).await.status(),
            StatusCode::SEE_OTHER
        );
    }
    let (status, body) = app
        .admin(Method::DELETE, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "disconnected", "sessions_revoked": 3, "members_downgraded": 2})
    );

    for b in [&alice, &bob, &carol] {
        assert!(app.me(b).await.is_none(), "every SSO session ends at once");
    }
    for m in app.members("acme").await {
        assert_eq!(m["role"], "viewer", "{m}");
    }
    let old = browser().get(&login_url).send().await.unwrap();
    assert_eq!(old.status(), StatusCode::GONE);
    let (_, org) = app.admin(Method::GET, "/api/v1/orgs/acme", None).await;
    assert_eq!(org["sso"]["status"], "disconnected");
    let (status, _) = app
        .admin(Method::DELETE, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing left to disconnect");

    // Login with SSO for a disconnected org says so.
    let resp = browser()
        .post(app.url("/login/sso"))
        .form(&[("email", "x@acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().await.unwrap().contains("not connected"));

    // Reconnect: a new login URL; the old one stays retired; roles come back on sign-in.
    let (status, conn) = app
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            Some(json!({"issuer": _idp.issuer, "client_id": crate::helpers::CLIENT_ID, "client_secret": crate::helpers::CLIENT_SECRET, "scopes": ["openid", "email", "profile", "groups"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{conn}");
    let new_url = conn["login_url"].as_str().unwrap();
    assert_ne!(new_url, login_url);
    assert_eq!(
        browser().get(&login_url).send().await.unwrap().status(),
        StatusCode::GONE
    );
    let alice = browser();
    assert_eq!(
        app.login(&alice, new_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.me(&alice).await.unwrap()["role"], "admin");
}

#[tokio::test]
async fn sign_in_follows_key_rotation_at_the_idp() {
    let (app, mut idp, login_url) = setup().await;
    assert_eq!(
        app.login(&browser(), &login_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    let old_kid = idp.kid.clone();
    idp.rotate_keys().await;
    assert_ne!(idp.kid, old_kid);
    let before = idp.stats().await["jwks_fetches"].as_i64().unwrap();
    let b = browser();
    let resp = app.login(&b, &login_url, "bob").await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(app.me(&b).await.unwrap()["role"], "developer");
    let after = idp.stats().await["jwks_fetches"].as_i64().unwrap();
    assert_eq!(after - before, 1, "one refetch for the unknown kid");
    // A second sign-in with the new key needs no fetch.
    assert_eq!(
        app.login(&browser(), &login_url, "carol").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(idp.stats().await["jwks_fetches"].as_i64().unwrap(), after);
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_the_absolute_timeout() {
    // Idle: a session unused for longer than the idle timeout is gone.
    let (app, _idp, login_url) =
        setup_with(spawn_app_with(|s| s.session.idle_timeout_secs = 2).await).await;
    let b = browser();
    assert_eq!(
        app.login(&b, &login_url, "bob").await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(app.me(&b).await.is_some());
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert!(app.me(&b).await.is_none(), "idle session expired");

    // Absolute: however busy, a session ends this long after sign-in.
    let (app, _idp, login_url) =
        setup_with(spawn_app_with(|s| s.session.absolute_timeout_secs = 3).await).await;
    let b = browser();
    let signed_in_at = std::time::Instant::now();
    assert_eq!(
        app.login(&b, &login_url, "bob").await.status(),
        StatusCode::SEE_OTHER
    );
    // Times are whole seconds: within 1.9 s of sign-in the session is certainly alive, and
    // 4.1 s after it certainly past 3 s, whatever the rounding.
    for _ in 0..3 {
        let alive = app.me(&b).await.is_some();
        if signed_in_at.elapsed() < std::time::Duration::from_millis(1900) {
            assert!(alive, "a busy session is alive before its absolute timeout");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    tokio::time::sleep(
        std::time::Duration::from_millis(4100).saturating_sub(signed_in_at.elapsed()),
    )
    .await;
    assert!(app.me(&b).await.is_none(), "absolute timeout reached");
}

#[tokio::test]
async fn malformed_browser_requests_get_a_page_not_a_500() {
    let app = spawn_app().await;
    let b = browser();
    for url in [
        app.url("/sso/callback?state=a&state=b"),
        app.url("/sso/callback?code=%FF%FE&state=x"),
        app.url("/sso/callback"),
    ] {
        let resp = b.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{url}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    let resp = b
        .post(app.url("/login/sso"))
        .form(&[("nope", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("form is malformed"));
    assert_eq!(
        b.get(app.url("/")).send().await.unwrap().status(),
        StatusCode::SEE_OTHER,
        "/ sends strangers to /login"
    );
    // Signed out already: no session, no token, nothing to forge.
    let out = b
        .post(app.url("/logout"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.status(),
        StatusCode::OK,
        "logout without a session is harmless"
    );
}

#[tokio::test]
async fn two_tabs_of_one_browser_can_sign_in_at_once() {
    let (app, _idp, login_url) = setup().await;
    let b = browser();
    let first = location(&b.get(&login_url).send().await.unwrap());
    let second = location(
        &b.get(format!("{login_url}?return_to=/second"))
            .send()
            .await
            .unwrap(),
    );
    let back_second = crate::idp::login_at_idp(&b, &second, "bob").await;
    let back_first = crate::idp::login_at_idp(&b, &first, "bob").await;
    for (back, to) in [(back_first, "/"), (back_second, "/second")] {
        let resp = b.get(&back).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&resp), to);
    }
    assert_eq!(app.me(&b).await.unwrap()["email"], "bob@example.com");
}

#[tokio::test]
async fn cross_site_form_posts_are_refused() {
    let (app, _idp, login_url) = setup().await;
    let b = browser();
    assert_eq!(
        app.login(&b, &login_url, "bob").await.status(),
        StatusCode::SEE_OTHER
    );
    let forged = [
        ("/logout", ("origin", "http://evil.example")),
        ("/logout", ("sec-fetch-site", "cross-site")),
        ("/logout", ("origin", "null")),
        ("/login/sso", ("sec-fetch-site", "same-site")),
        ("/api/v1/me/token", ("origin", "http://evil.example")),
    ];
    for (path, (name, value)) in forged {
        let resp = b
            .post(app.url(path))
            .header(name, value)
            .form(&[("email", "x@acme.test")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{path} with {name}: {value}"
        );
    }
    assert!(
        app.me(&b).await.is_some(),
        "the forged logouts changed nothing"
    );
    // Same-origin but without the page's form token: refused too.
    let resp = b
        .post(app.url("/logout"))
        .header("origin", app.base.as_str())
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("Request refused"));
    assert!(app.me(&b).await.is_some());
    let csrf = app.form_token(&b, "/").await;
    let resp = b
        .post(app.url("/logout"))
        .header("origin", app.base.as_str())
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(app.me(&b).await.is_none());
}

/// (session reference, is this browser) for each entry of the "your sessions" page.
fn session_entries(html: &str) -> Vec<(String, bool)> {
    html.split("<li>")
        .skip(1)
        .map(|block| {
            let id = block
                .split("name=\"session\" value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned();
            (id, block.contains("This browser"))
        })
        .collect()
}

#[tokio::test]
async fn a_colleague_lists_and_ends_their_own_sessions() {
    let (app, _idp, login_url) = setup().await;
    let (laptop, phone, alice) = (browser(), browser(), browser());
    for (b, who) in [(&laptop, "bob"), (&phone, "bob"), (&alice, "alice")] {
        assert_eq!(
            app.login(b, &login_url, who).await.status(),
            StatusCode::SEE_OTHER
        );
    }
    let page = laptop.get(app.url("/sessions")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let entries = session_entries(&page.text().await.unwrap());
    assert_eq!(entries.len(), 2, "bob's two sessions, not alice's");
    assert_eq!(entries.iter().filter(|(_, here)| *here).count(), 1);
    let phone_ref = entries.iter().find(|(_, here)| !here).unwrap().0.clone();
    let laptop_ref = entries.iter().find(|(_, here)| *here).unwrap().0.clone();

    // End the phone's session from the laptop.
    let resp = laptop
        .post(app.url("/sessions/end"))
        .form(&[
            ("csrf", app.form_token(&laptop, "/sessions").await.as_str()),
            ("session", phone_ref.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/sessions".to_owned())
    );
    assert!(app.me(&phone).await.is_none(), "the phone's session ended");
    assert!(
        app.me(&laptop).await.is_some(),
        "the laptop stays signed in"
    );

    // Nobody can end someone else's session, even knowing its reference.
    let alice_ref = session_entries(
        &alice
            .get(app.url("/sessions"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )[0]
    .0
    .clone();
    laptop
        .post(app.url("/sessions/end"))
        .form(&[
            ("csrf", app.form_token(&laptop, "/sessions").await.as_str()),
            ("session", alice_ref.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        app.me(&alice).await.is_some(),
        "alice's session survives bob's attempt"
    );

    // Ending this browser's own session signs it out.
    let resp = laptop
        .post(app.url("/sessions/end"))
        .form(&[
            ("csrf", app.form_token(&laptop, "/sessions").await.as_str()),
            ("session", laptop_ref.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/login".to_owned())
    );
    assert!(app.me(&laptop).await.is_none());
    assert_eq!(
        laptop
            .get(app.url("/sessions"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER
    );
}
