//! Self-serve setup links (issue 15 item 3): the admin API, the link's refusals (unknown,
//! expired, revoked, another browser, another org), the guided steps driven like a browser
//! (cookie jar) with the real test IdP, a test sign-in that enrols nobody, activation, and the
//! console's test sign-in. SQLite, and PostgreSQL with `ORGSSO_TEST_BACKEND=postgres`.

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    account, assert_public_key_set, browser, form_token_in, location, raw_database, spawn_app_with,
    start_idp, TestApp, CLIENT_ID, CLIENT_SECRET,
};
use crate::idp::{login_at_idp, IdpClient, TestIdp};

async fn app() -> TestApp {
    // The test IdP listens on 127.0.0.1: allow it for setup links (off by default).
    spawn_app_with(|s| s.login.setup_links_internal_idp = true).await
}

/// A new link for `slug`: (id, url).
async fn new_link(app: &TestApp, slug: &str, body: Value) -> (String, String) {
    let (s, b) = app
        .admin(
            Method::POST,
            &format!("/api/v1/orgs/{slug}/setup-links"),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    (
        b["id"].as_str().unwrap().to_owned(),
        b["url"].as_str().unwrap().to_owned(),
    )
}

async fn links(app: &TestApp, slug: &str) -> Vec<Value> {
    let (s, b) = app
        .admin(
            Method::GET,
            &format!("/api/v1/orgs/{slug}/setup-links"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b.as_array().unwrap().clone()
}

async fn audit_actions(app: &TestApp, slug: &str) -> Vec<Value> {
    let (s, b) = app
        .admin(Method::GET, &format!("/api/v1/orgs/{slug}/audit"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b.as_array().unwrap().clone()
}

fn has_action(events: &[Value], action: &str) -> bool {
    events.iter().any(|e| e["action"] == action)
}

/// Runs one statement on the app's database (test-only changes: expiry, idle time).
pub async fn exec(app: &TestApp, sql: &str, id: &str) {
    match app.store.db() {
        orgsso::store::Db::Sqlite(p) => {
            sqlx::query(sql).bind(id).execute(p).await.unwrap();
        }
        orgsso::store::Db::Postgres(p) => {
            sqlx::query(sql).bind(id).execute(p).await.unwrap();
        }
    }
}

async fn get(b: &Client, url: &str) -> (StatusCode, String) {
    let r = b.get(url).send().await.unwrap();
    (r.status(), unescape(&r.text().await.unwrap()))
}

/// Pages escape `/` in text (minijinja's HTML escaping): read URLs back as typed.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
}

/// Opens the link in `b` the way a person does: the start page (a GET binds nothing), then its
/// Start button. Returns the binding cookie as set.
async fn start_link(b: &Client, url: &str) -> String {
    let (s, landing) = get(b, url).await;
    assert_eq!(s, StatusCode::OK, "{landing}");
    assert!(landing.contains("setup-start"), "{landing}");
    assert!(
        !landing.contains("Org ") && !landing.contains("name=\"csrf\""),
        "the start page shows nothing of the link's org: {landing}"
    );
    let r = b.post(format!("{url}/start")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    assert!(location(&r).ends_with("?step=1"));
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("orgsso_setup="))
        .unwrap_or_default()
}

/// Posts a setup form with the page's token.
async fn post(b: &Client, url: &str, page: &str, fields: &[(&str, &str)]) -> Response {
    let csrf = form_token_in(page);
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    b.post(url).form(&all).send().await.unwrap()
}

#[tokio::test]
async fn api_creates_lists_and_revokes_and_refuses_bad_input() {
    let app = app().await;
    app.create_org("acme", &[]).await;
    app.create_org("beta", &[]).await;

    for bad in [
        json!({"expires_in_hours": 0}),
        json!({"expires_in_hours": 169}),
        json!({"expires_in_hours": 1.5}),
        json!({"expires_in_hours": -3}),
    ] {
        let (s, b) = app
            .admin(
                Method::POST,
                "/api/v1/orgs/acme/setup-links",
                Some(bad.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
        assert_eq!(b["error"]["code"], "invalid_expiry", "{b}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains("1 to 168"),
            "{b}"
        );
    }
    for bad in [json!({"expires_in_hours": "x"}), json!({"hours": 3})] {
        let (s, b) = app
            .admin(Method::POST, "/api/v1/orgs/acme/setup-links", Some(bad))
            .await;
        assert!(s.is_client_error(), "{s} {b}");
        assert!(b["error"]["code"].is_string(), "{b}");
    }
    assert!(
        links(&app, "acme").await.is_empty(),
        "bad input created nothing"
    );
    let no_token = app
        .api
        .post(app.url("/api/v1/orgs/acme/setup-links"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    let (s, created) = app
        .admin(
            Method::POST,
            "/api/v1/orgs/acme/setup-links",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let url = created["url"].as_str().unwrap();
    let token = url
        .strip_prefix(&format!("{}/setup/", app.public))
        .expect("the URL is {public}/setup/{token}");
    assert!(token.len() >= 43, "256-bit token: {token}");
    let t = |k: &str| created[k].as_i64().unwrap();
    assert_eq!(
        t("expires_at") - t("created_at"),
        72 * 3600,
        "default 72 hours"
    );
    let (id2, _) = new_link(&app, "acme", json!({"expires_in_hours": 2})).await;

    let listed = links(&app, "acme").await;
    assert_eq!(listed.len(), 2);
    for l in &listed {
        assert_eq!(l["status"], "active");
        for k in [
            "id",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ] {
            assert!(l.get(k).is_some(), "{k} in {l}");
        }
        assert!(
            !l.to_string().contains(token),
            "the list never shows a token"
        );
    }
    let two = listed.iter().find(|l| l["id"] == id2.as_str()).unwrap();
    assert_eq!(
        two["expires_at"].as_i64().unwrap() - two["created_at"].as_i64().unwrap(),
        7200
    );
    // Only its hash is stored.
    let raw = raw_database(&app).await;
    assert!(
        !raw.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is stored only as a hash"
    );

    // Another org's id is not found; its own is revoked.
    let id = created["id"].as_str().unwrap();
    let (s, b) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/orgs/beta/setup-links/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(b["error"]["code"], "setup_link_not_found");
    let b = browser();
    assert_eq!(
        get(&b, url).await.0,
        StatusCode::OK,
        "beta's attempt changed nothing"
    );
    let (s, _) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/orgs/acme/setup-links/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (status, page) = get(&b, url).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(
        page.contains("revoked") && page.contains("Ask your contact for a new link"),
        "{page}"
    );
    assert!(
        !page.contains("Org acme"),
        "a refused link never names its org"
    );
    let revoked = links(&app, "acme").await;
    assert_eq!(
        revoked.iter().find(|l| l["id"] == id).unwrap()["status"],
        "revoked"
    );

    // Unknown and expired tokens.
    let (status, page) = get(
        &b,
        &app.url("/setup/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("ask your contact for a new link"), "{page}");
    assert!(!page.contains("Org "), "{page}");
    let (gone_id, gone_url) = new_link(&app, "acme", json!({"expires_in_hours": 1})).await;
    exec(
        &app,
        "UPDATE setup_links SET expires_at = 1 WHERE id = $1",
        &gone_id,
    )
    .await;
    let (status, page) = get(&browser(), &gone_url).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(
        page.contains("expired") && page.contains("Ask your contact for a new link"),
        "{page}"
    );
    assert!(!page.contains("Org acme"));
    let listed = links(&app, "acme").await;
    assert_eq!(
        listed.iter().find(|l| l["id"] == gone_id.as_str()).unwrap()["status"],
        "expired"
    );

    let events = audit_actions(&app, "acme").await;
    assert!(has_action(&events, "setup_link.created"));
    assert!(has_action(&events, "setup_link.revoked"));
    assert!(audit_actions(&app, "beta")
        .await
        .iter()
        .all(|e| !e["action"].as_str().unwrap().starts_with("setup_link")));
}

#[tokio::test]
async fn one_browser_at_a_time_and_idle_bindings_free_the_link() {
    let app = app().await;
    app.create_org("acme", &[]).await;
    let (id, url) = new_link(&app, "acme", json!({})).await;

    let first = browser();
    // A link scanner's GET (no cookie kept) binds nothing and writes nothing.
    for _ in 0..3 {
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("set-cookie").is_none());
    }
    assert!(links(&app, "acme").await[0]["last_used_at"].is_null());
    assert!(!audit_actions(&app, "acme")
        .await
        .iter()
        .any(|e| e["action"] == "setup_link.opened" || e["action"] == "setup_link.bound"));
    let cookie = start_link(&first, &url).await;
    let token = url.rsplit('/').next().unwrap();
    for attr in [
        "HttpOnly".to_owned(),
        "SameSite=Lax".to_owned(),
        format!("Path=/setup/{token}"),
    ] {
        assert!(cookie.contains(&attr), "{attr} in {cookie}");
    }
    let (_, page) = get(&first, &url).await;
    assert!(page.contains("Org acme"));

    // Another browser sees the start page; pressing Start is refused.
    let second = browser();
    let (status, other) = get(&second, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !other.contains("Org acme") && !other.contains("name=\"csrf\""),
        "offers nothing else"
    );
    let r = second.post(format!("{url}/start")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let other = r.text().await.unwrap();
    assert!(other.contains("open in another browser"), "{other}");
    assert!(!other.contains("Org acme"), "offers nothing else");
    // The second browser cannot post with the first one's form token either.
    let r = post(
        &second,
        &format!("{url}/preset"),
        &page,
        &[("preset", "okta")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // The first still can.
    let page_first = page.clone();
    assert_eq!(get(&first, &url).await.0, StatusCode::OK);
    let r = post(
        &first,
        &format!("{url}/preset"),
        &page,
        &[("preset", "okta")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).ends_with("?step=2"));
    // A forged form token changes nothing.
    let r = first
        .post(format!("{url}/preset"))
        .form(&[("csrf", "forged"), ("preset", "google")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // After 30 minutes idle, the next browser takes the link over.
    exec(
        &app,
        "UPDATE setup_links SET browser_seen_at = browser_seen_at - 3600 WHERE id = $1",
        &id,
    )
    .await;
    start_link(&second, &url).await;
    let (status, page) = get(&first, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("setup-start"),
        "the first is back at the start page"
    );
    let r = post(
        &first,
        &format!("{url}/preset"),
        &page_first,
        &[("preset", "okta")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    let events = audit_actions(&app, "acme").await;
    let actor = format!("setup_link:{id}");
    let bound = events
        .iter()
        .filter(|e| e["action"] == "setup_link.bound")
        .count();
    assert_eq!(bound, 2, "{events:?}");
    assert!(events
        .iter()
        .any(|e| e["action"] == "setup_link.opened" && e["detail"]["outcome"] == "other_browser"));
    assert!(events
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("setup_link.")
            && e["action"] != "setup_link.created")
        .all(|e| e["actor"] == actor.as_str()));
    assert!(has_action(&events, "setup_link.draft_saved"));
}

/// Everything is the count of rows in `table` (sessions, memberships) on the app's database.
async fn count(app: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match app.store.db() {
        orgsso::store::Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(p)
            .await
            .unwrap(),
        orgsso::store::Db::Postgres(p) => sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(p)
            .await
            .unwrap(),
    }
}

/// Step `n`'s page.
async fn step(b: &Client, url: &str, n: usize) -> String {
    let (s, page) = get(b, &format!("{url}?step={n}")).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page
}

/// A test sign-in from `page` (step 5) as `account`; returns step 5 after the callback.
async fn test_sign_in(app: &TestApp, b: &Client, url: &str, page: &str, account: &str) -> String {
    let r = post(b, &format!("{url}/test"), page, &[]).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let back = login_at_idp(b, &location(&r), account).await;
    assert!(back.starts_with(&app.redirect_uri()), "{back}");
    let r = b.get(&back).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    assert!(to.starts_with("/setup/") && to.ends_with("?step=5"), "{to}");
    assert!(
        !r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("orgsso_session=")),
        "no session cookie"
    );
    let (s, page) = get(b, &app.url(&to)).await;
    assert_eq!(s, StatusCode::OK);
    page
}

#[tokio::test]
async fn the_full_flow_tests_without_enrolling_then_activates_for_its_org_only() {
    let app = app().await;
    let idp = start_idp(
        &app,
        json!({"ada": account("ada@acme.test", "Ada", &["engineering"])}),
    )
    .await;
    app.create_org("acme", &[]).await;
    app.create_org("beta", &[]).await;
    let (id, url) = new_link(&app, "acme", json!({})).await;
    let b = browser();
    start_link(&b, &url).await;

    // 1. Choose the IdP (a slug smuggled into the form is ignored).
    let page = step(&b, &url, 1).await;
    for label in [
        "Okta",
        "Auth0",
        "Keycloak",
        "Microsoft Entra ID",
        "Google Workspace",
    ] {
        assert!(page.contains(label), "{label}");
    }
    let r = post(&b, &format!("{url}/preset"), &page, &[("preset", "nope")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post(
        &b,
        &format!("{url}/preset"),
        &page,
        &[("preset", "keycloak"), ("slug", "beta")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // 2. What to register.
    let page = step(&b, &url, 2).await;
    assert!(page.contains(&app.redirect_uri()));
    assert!(page.contains(&format!("{}/signed-out", app.public)));
    assert!(page.contains(&format!("{}/sso/backchannel-logout", app.public)));
    assert!(page.contains("data-copy=\"redirect-uri\""));

    // 3. Credentials: a bad issuer shows discovery's error and keeps what was typed but the secret.
    let page = step(&b, &url, 3).await;
    assert!(
        page.contains("/realm_access/roles"),
        "the preset's groups claim"
    );
    let bad = "http://127.0.0.1:9/realms/x";
    let r = post(
        &b,
        &format!("{url}/credentials"),
        &page,
        &[
            ("issuer", bad),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("token_auth_method", ""),
            ("scopes", "openid email profile groups"),
            ("groups_claim", "groups"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = unescape(&r.text().await.unwrap());
    assert!(
        refused.contains("setup-error") && refused.contains("127.0.0.1:9"),
        "{refused}"
    );
    assert!(
        refused.contains(&format!("value=\"{CLIENT_ID}\"")),
        "typed values kept"
    );
    assert!(
        !refused.contains(CLIENT_SECRET),
        "the secret is never echoed"
    );
    // A wrong secret passes discovery; the test sign-in then fails with its sentence and code.
    let r = post(
        &b,
        &format!("{url}/credentials"),
        &page,
        &[
            ("issuer", &idp.issuer),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong-secret"),
            ("token_auth_method", "client_secret_basic"),
            ("scopes", "openid email profile groups"),
            ("groups_claim", "groups"),
            ("org", "beta"),
        ],
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let page = step(&b, &url, 5).await;
    let failed = test_sign_in(&app, &b, &url, &page, "ada").await;
    assert!(
        failed.contains("test-failed") && failed.contains("client_auth_refused"),
        "{failed}"
    );
    // The right secret.
    let page = step(&b, &url, 3).await;
    assert!(page.contains("A secret is stored"));
    let r = post(
        &b,
        &format!("{url}/credentials"),
        &page,
        &[
            ("issuer", &idp.issuer),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("token_auth_method", ""),
            ("scopes", "openid email profile groups"),
            ("groups_claim", "groups"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).ends_with("?step=4"));
    let page = step(&b, &url, 3).await;
    assert!(page.contains("A secret is stored") && !page.contains(CLIENT_SECRET));

    // 4. Rules: a bad rule is named; good ones saved.
    let page = step(&b, &url, 4).await;
    let r = post(
        &b,
        &format!("{url}/rules"),
        &page,
        &[
            ("claim", "groups"),
            ("op", "matches"),
            ("value", "(unclosed"),
            ("role", "admin"),
            ("default_role", "viewer"),
            ("action", "save"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("Rule 1:"));
    let r = post(
        &b,
        &format!("{url}/rules"),
        &page,
        &[
            ("claim", "groups"),
            ("op", "contains"),
            ("value", "engineering"),
            ("role", "admin"),
            ("default_role", "viewer"),
            ("action", "save"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // 5. Test sign-in: the claims and the role, nobody enrolled, no session.
    let page = step(&b, &url, 5).await;
    let tested = test_sign_in(&app, &b, &url, &page, "ada").await;
    assert!(tested.contains("test-ok"), "{tested}");
    assert!(tested.contains("ada@acme.test"), "claims shown");
    assert!(tested.contains("engineering"));
    assert!(
        tested.contains("id=\"test-role-name\">admin<"),
        "the role the rules give"
    );
    assert!(!tested.contains(CLIENT_SECRET));
    assert!(app.members("acme").await.is_empty(), "no member");
    assert_eq!(count(&app, "sessions").await, 0, "no session");
    assert!(app.me(&b).await.is_none());
    let (s, _) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the live connection is untouched until activation"
    );
    // The dry run of step 4 starts from the claims received.
    assert!(step(&b, &url, 4).await.contains("ada@acme.test"));

    // 6. Activate.
    let page = step(&b, &url, 6).await;
    assert!(page.contains("activate-new"));
    let r = post(&b, &format!("{url}/activate"), &page, &[("slug", "beta")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (s, done) = get(&b, &url).await;
    assert_eq!(s, StatusCode::OK);
    assert!(done.contains("setup-done"));
    let (s, sso) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(s, StatusCode::OK);
    let login_url = sso["login_url"].as_str().unwrap();
    assert!(
        done.contains(login_url),
        "the done page shows the login URL"
    );
    assert_eq!(links(&app, "acme").await[0]["status"], "used");
    let r = post(
        &b,
        &format!("{url}/rules"),
        &page,
        &[("default_role", "admin"), ("action", "save")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "no change after use");
    // Org B was never touched.
    let (s, _) = app.admin(Method::GET, "/api/v1/orgs/beta/sso", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, beta_rules) = app
        .admin(Method::GET, "/api/v1/orgs/beta/sso/role-mapping", None)
        .await;
    assert_eq!(beta_rules["rules"], json!([]));

    // The login URL works for a real sign-in, with the rules saved through the link.
    let colleague = browser();
    assert_eq!(
        app.login(&colleague, login_url, "ada").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.me(&colleague).await.unwrap()["role"], "admin");

    let events = audit_actions(&app, "acme").await;
    for a in [
        "created",
        "opened",
        "bound",
        "draft_saved",
        "rules_saved",
        "test_started",
        "test_sign_in",
        "activated",
    ] {
        assert!(
            has_action(&events, &format!("setup_link.{a}")),
            "{a}: {events:?}"
        );
    }
    let actor = format!("setup_link:{id}");
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "sso.connect" && e["actor"] == actor.as_str()),
        "connected through the API's path"
    );
    assert!(!serde_json::to_string(&events)
        .unwrap()
        .contains(CLIENT_SECRET));
    assert!(!serde_json::to_string(&events)
        .unwrap()
        .contains("wrong-secret"));
    assert!(
        audit_actions(&app, "beta")
            .await
            .iter()
            .all(|e| e["action"] == "org.create"),
        "beta: only its creation"
    );
}

#[tokio::test]
async fn a_link_for_a_connected_org_updates_it_and_keeps_the_login_url() {
    let app = app().await;
    let idp = start_idp(
        &app,
        json!({"ada": account("ada@acme.test", "Ada", &["ops"])}),
    )
    .await;
    app.create_org("acme", &[]).await;
    let before = app.connect("acme", &idp.issuer).await;
    let (id, url) = new_link(&app, "acme", json!({"expires_in_hours": 3})).await;
    let b = browser();
    // A real sign-in started in another tab of the same browser, finished after the test.
    let login_url = before["login_url"].as_str().unwrap();
    let r = b.get(login_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let pending_sign_in = location(&r);
    start_link(&b, &url).await;
    let page = step(&b, &url, 1).await;
    post(&b, &format!("{url}/preset"), &page, &[("preset", "other")]).await;
    let page = step(&b, &url, 3).await;
    let r = post(
        &b,
        &format!("{url}/credentials"),
        &page,
        &[
            ("issuer", &idp.issuer),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scopes", "openid email profile"),
            ("groups_claim", ""),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Activation before a successful test is refused.
    let page = step(&b, &url, 6).await;
    assert!(
        page.contains("activate-update"),
        "says the connection will be updated"
    );
    let r = post(&b, &format!("{url}/activate"), &page, &[]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = step(&b, &url, 5).await;
    let tested = test_sign_in(&app, &b, &url, &page, "ada").await;
    assert!(
        tested.contains("id=\"test-role-name\">viewer<"),
        "org's current rules: {tested}"
    );
    let back = login_at_idp(&b, &pending_sign_in, "ada").await;
    let r = b.get(&back).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    assert!(
        app.me(&b).await.is_some(),
        "the real sign-in survived the test started after it"
    );

    // A link may have 3 test sign-ins waiting at the IdP; the console's button stays free.
    for _ in 0..3 {
        let r = post(&b, &format!("{url}/test"), &tested, &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    let r = post(&b, &format!("{url}/test"), &tested, &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.unwrap().contains("still waiting"));
    let op = app.operator_console().await;
    let console = app.page_text(&op, "/admin/orgs/acme").await;
    let r = post(&op, &app.url("/admin/orgs/acme/sso/test"), &console, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let started = audit_actions(&app, "acme")
        .await
        .iter()
        .filter(|e| e["action"] == "setup_link.test_started")
        .count();
    assert_eq!(started, 4, "each start audited");

    let page = step(&b, &url, 6).await;
    assert_eq!(
        post(&b, &format!("{url}/activate"), &page, &[])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let (_, after) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(after["login_url"], before["login_url"]);
    assert_eq!(after["scopes"], json!(["openid", "email", "profile"]));

    // The done page and its login URL: for this browser only, until the link expires.
    let (s, done) = get(&b, &url).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        done.contains("setup-done") && done.contains(login_url),
        "{done}"
    );
    for other in [browser(), Client::new()] {
        let (s, page) = get(&other, &url).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert!(
            !page.contains(login_url) && page.contains("already used"),
            "{page}"
        );
    }
    exec(
        &app,
        "UPDATE setup_links SET expires_at = 1 WHERE id = $1",
        &id,
    )
    .await;
    let (s, page) = get(&b, &url).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(!page.contains(login_url));
}

/// The draft columns of a link: (draft, secret, test result) as stored.
async fn draft_of(app: &TestApp, id: &str) -> (Option<String>, Option<String>, Option<String>) {
    let sql = "SELECT draft, draft_secret_enc, test_result FROM setup_links WHERE id = $1";
    match app.store.db() {
        orgsso::store::Db::Sqlite(p) => sqlx::query_as(sql).bind(id).fetch_one(p).await.unwrap(),
        orgsso::store::Db::Postgres(p) => sqlx::query_as(sql).bind(id).fetch_one(p).await.unwrap(),
    }
}

#[tokio::test]
async fn two_links_in_one_browser_both_work_and_ended_links_forget_their_drafts() {
    let app = app().await;
    app.create_org("acme", &[]).await;
    let (one, url1) = new_link(&app, "acme", json!({})).await;
    let (two, url2) = new_link(&app, "acme", json!({})).await;
    let b = browser();
    start_link(&b, &url1).await;
    start_link(&b, &url2).await;
    for url in [&url1, &url2] {
        let page = step(&b, url, 1).await;
        let r = post(&b, &format!("{url}/preset"), &page, &[("preset", "okta")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{url}");
    }
    assert!(draft_of(&app, &one).await.0.is_some());
    assert!(draft_of(&app, &two).await.0.is_some());

    // Revoked: the draft goes at once. Expired: at the next purge; the row after 30 days.
    let (s, _) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/orgs/acme/setup-links/{one}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(draft_of(&app, &one).await, (None, None, None));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sql = format!(
        "UPDATE setup_links SET expires_at = {} WHERE id = $1",
        now - 60
    );
    exec(&app, &sql, &two).await;
    app.store.purge_expired(now).await.unwrap();
    assert_eq!(draft_of(&app, &two).await, (None, None, None));
    assert_eq!(links(&app, "acme").await.len(), 2, "kept for the record");
    app.store.purge_expired(now + 31 * 24 * 3600).await.unwrap();
    let left = links(&app, "acme").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], one.as_str());
}

/// The private_key_jwt key set URL a setup page shows (`None`: none shown).
fn key_url_in(page: &str) -> Option<String> {
    let start = page.find("id=\"client-jwks-uri\">")? + "id=\"client-jwks-uri\">".len();
    let rest = &page[start..];
    Some(rest[..rest.find('<')?].to_owned())
}

/// Steps 1 and 3 for `client_id` with `method` and no secret; returns the response.
async fn save_client(
    b: &Client,
    url: &str,
    issuer: &str,
    client_id: &str,
    method: &str,
) -> Response {
    let page = step(b, url, 1).await;
    post(b, &format!("{url}/preset"), &page, &[("preset", "other")]).await;
    let page = step(b, url, 3).await;
    post(
        b,
        &format!("{url}/credentials"),
        &page,
        &[
            ("issuer", issuer),
            ("client_id", client_id),
            ("token_auth_method", method),
            ("scopes", "openid email profile groups"),
            ("groups_claim", "groups"),
        ],
    )
    .await
}

/// Step 3 saved with the test IdP's client and secret, and `scopes`.
async fn save_secret_draft(b: &Client, url: &str, issuer: &str, scopes: &str) {
    let page = step(b, url, 3).await;
    let r = post(
        b,
        &format!("{url}/credentials"),
        &page,
        &[
            ("issuer", issuer),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("token_auth_method", ""),
            ("scopes", scopes),
            ("groups_claim", ""),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_new_org_uses_private_key_jwt_through_the_link_and_keeps_the_key_url() {
    const PKJWT_CLIENT: &str = "orgsso-pkjwt";
    let app = app().await;
    let idp = start_idp(
        &app,
        json!({"ada": account("ada@acme.test", "Ada", &["engineering"])}),
    )
    .await;
    app.create_org("acme", &[]).await;
    let (id, url) = new_link(&app, "acme", json!({})).await;
    let b = browser();
    start_link(&b, &url).await;
    assert_eq!(key_url_in(&step(&b, &url, 1).await), None);
    let r = save_client(&b, &url, &idp.issuer, PKJWT_CLIENT, "private_key_jwt").await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );

    // The link's own key: its URL on steps 2, 3 and 5, a public-only key set while active.
    let page = step(&b, &url, 3).await;
    let jwks_uri = key_url_in(&page).expect("the key URL on step 3");
    assert!(
        jwks_uri.starts_with(&format!("{}/sso/client-jwks/", app.public)),
        "{jwks_uri}"
    );
    assert_eq!(
        key_url_in(&step(&b, &url, 2).await).as_deref(),
        Some(jwks_uri.as_str())
    );
    assert_eq!(
        key_url_in(&step(&b, &url, 5).await).as_deref(),
        Some(jwks_uri.as_str())
    );
    assert!(!page.contains("PRIVATE"));
    let resp = app.api.get(&jwks_uri).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set: Value = resp.json().await.unwrap();
    assert_public_key_set(&set);
    // Saving again keeps the key (its URL may be registered already).
    let r = save_client(&b, &url, &idp.issuer, PKJWT_CLIENT, "private_key_jwt").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        key_url_in(&step(&b, &url, 3).await).as_deref(),
        Some(jwks_uri.as_str())
    );

    // The customer registers the client with that URL; the test sign-in signs with the key.
    idp.put_client(&IdpClient::private_key_jwt(
        PKJWT_CLIENT,
        app.redirect_uri(),
        &jwks_uri,
    ))
    .await;
    let page = step(&b, &url, 5).await;
    let tested = test_sign_in(&app, &b, &url, &page, "ada").await;
    assert!(tested.contains("test-ok"), "{tested}");
    let stats = idp.stats().await;
    assert_eq!(
        stats
            .pointer("/token_auth/private_key_jwt")
            .and_then(Value::as_u64),
        Some(1),
        "{stats}"
    );

    // Activation: the new connection has the same key and JWKS id.
    let page = step(&b, &url, 6).await;
    let r = post(&b, &format!("{url}/activate"), &page, &[]).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let (s, sso) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(s, StatusCode::OK, "{sso}");
    assert_eq!(sso["token_auth_method"], "private_key_jwt");
    assert_eq!(sso["client_jwks_uri"], jwks_uri.as_str());
    let resp = app.api.get(&jwks_uri).send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the same URL, now the connection's"
    );
    assert_eq!(resp.json::<Value>().await.unwrap(), set, "the same key");
    let link = app.store.setup_link(&id).await.unwrap().unwrap();
    assert!(
        link.client_key_enc.is_none(),
        "the link's copy of the private key is gone"
    );
    let org = app.store.org_by_slug("acme").await.unwrap().unwrap();
    let conn = app.store.latest_connection(&org.id).await.unwrap().unwrap();
    assert_eq!(conn.client_secret_enc, "");

    // A real sign-in through the new login URL signs with the same key.
    let colleague = browser();
    let resp = app
        .login(&colleague, sso["login_url"].as_str().unwrap(), "ada")
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        resp.text().await
    );
    assert_eq!(app.me(&colleague).await.unwrap()["email"], "ada@acme.test");
    let events = serde_json::to_string(&audit_actions(&app, "acme").await).unwrap();
    assert!(!events.contains("PRIVATE"), "{events}");
}

#[tokio::test]
async fn a_draft_borrows_the_live_key_only_for_the_same_issuer_and_client() {
    let app = app().await;
    let idp = start_idp(&app, json!({})).await;
    app.create_org("acme", &[]).await;
    let (s, live) = app
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            Some(json!({"issuer": idp.issuer, "client_id": "live-pkjwt", "token_auth_method": "private_key_jwt"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{live}");
    let live_uri = live["client_jwks_uri"].as_str().unwrap();
    let (id, url) = new_link(&app, "acme", json!({})).await;
    let b = browser();
    start_link(&b, &url).await;
    let r = save_client(&b, &url, &idp.issuer, "live-pkjwt", "private_key_jwt").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        key_url_in(&step(&b, &url, 3).await).as_deref(),
        Some(live_uri)
    );
    // Another client: never the production key, the link's own.
    let r = save_client(&b, &url, &idp.issuer, "someone-else", "private_key_jwt").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let own = key_url_in(&step(&b, &url, 3).await).unwrap();
    assert_ne!(own, live_uri);
    assert_eq!(
        app.api.get(&own).send().await.unwrap().status(),
        StatusCode::OK
    );
    // A revoked link's key is published no more; the live one still is.
    let (s, _) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/orgs/acme/setup-links/{id}"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s}");
    assert_eq!(
        app.api.get(&own).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.api.get(live_uri).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_stored_secret_is_sent_only_where_it_was_entered_for() {
    let app = app().await;
    let idp = start_idp(&app, json!({})).await;
    app.create_org("acme", &[]).await;
    let (_, url) = new_link(&app, "acme", json!({})).await;
    let b = browser();
    start_link(&b, &url).await;
    let page = step(&b, &url, 3).await;
    let fields = |issuer: &'static str, client_id: &'static str| {
        vec![
            ("issuer", issuer),
            ("client_id", client_id),
            ("token_auth_method", ""),
            ("scopes", "openid email"),
            ("groups_claim", ""),
        ]
    };
    let issuer: &'static str = Box::leak(idp.issuer.clone().into_boxed_str());
    let mut first = fields(issuer, CLIENT_ID);
    first.push(("client_secret", CLIENT_SECRET));
    let r = post(&b, &format!("{url}/credentials"), &page, &first).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Another issuer or client with the secret left empty: refused, the draft unchanged.
    for (i, c) in [
        ("https://elsewhere.example", CLIENT_ID),
        (issuer, "other-client"),
    ] {
        let r = post(&b, &format!("{url}/credentials"), &page, &fields(i, c)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{i} {c}");
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("enter the client secret again"));
    }
    let page = step(&b, &url, 3).await;
    assert!(
        page.contains(&format!("value=\"{CLIENT_ID}\"")) && page.contains("A secret is stored")
    );
    // The same client keeps it.
    let r = post(
        &b,
        &format!("{url}/credentials"),
        &page,
        &fields(issuer, CLIENT_ID),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// Org acme, the test IdP with account `ada`, a link in a browser with a secret draft saved.
async fn drafted() -> (TestApp, TestIdp, String, Client) {
    let app = app().await;
    let idp = start_idp(&app, json!({"ada": account("ada@acme.test", "Ada", &[])})).await;
    app.create_org("acme", &[]).await;
    let (_, url) = new_link(&app, "acme", json!({})).await;
    let b = browser();
    start_link(&b, &url).await;
    save_secret_draft(&b, &url, &idp.issuer, "openid email").await;
    (app, idp, url, b)
}

#[tokio::test]
async fn activation_applies_only_the_tested_draft_and_once() {
    let (app, idp, url, b) = drafted().await;
    // A save while a test is at the IdP: that test's result is not written for the new draft.
    let page = step(&b, &url, 5).await;
    let r = post(&b, &format!("{url}/test"), &page, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = login_at_idp(&b, &location(&r), "ada").await;
    save_secret_draft(&b, &url, &idp.issuer, "openid email profile").await;
    let r = b.get(&back).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = step(&b, &url, 6).await;
    let failed = step(&b, &url, 5).await;
    assert!(
        !failed.contains("test-ok") && failed.contains("changed during this test"),
        "{failed}"
    );
    let r = post(&b, &format!("{url}/activate"), &page, &[]).await;
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "untested draft"
    );

    // Two activations at once (a double click): one applies, the other is refused with 409.
    let page = step(&b, &url, 5).await;
    assert!(test_sign_in(&app, &b, &url, &page, "ada")
        .await
        .contains("test-ok"));
    let page = step(&b, &url, 6).await;
    let target = format!("{url}/activate");
    let (r1, r2) = tokio::join!(post(&b, &target, &page, &[]), post(&b, &target, &page, &[]));
    let mut got = [r1.status(), r2.status()];
    got.sort();
    assert_eq!(got, [StatusCode::SEE_OTHER, StatusCode::CONFLICT]);
    let connects = audit_actions(&app, "acme")
        .await
        .iter()
        .filter(|e| e["action"] == "sso.connect")
        .count();
    assert_eq!(connects, 1);
    assert_eq!(links(&app, "acme").await[0]["status"], "used");
}

#[tokio::test]
async fn a_failed_activation_gives_the_link_back() {
    let (app, idp, url, b) = drafted().await;
    let page = step(&b, &url, 5).await;
    assert!(test_sign_in(&app, &b, &url, &page, "ada")
        .await
        .contains("test-ok"));
    // The IdP goes away: activation's discovery fails (waited for by polling, a bounded loop).
    let discovery = format!("{}/.well-known/openid-configuration", idp.issuer);
    drop(idp);
    let mut gone = false;
    for _ in 0..100 {
        if reqwest::get(&discovery).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the IdP stopped");
    let page = step(&b, &url, 6).await;
    let r = post(&b, &format!("{url}/activate"), &page, &[]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        links(&app, "acme").await[0]["status"],
        "active",
        "given back"
    );
    let events = audit_actions(&app, "acme").await;
    assert!(!has_action(&events, "sso.connect") && !has_action(&events, "setup_link.activated"));
    assert!(
        step(&b, &url, 6).await.contains("activate-new"),
        "the customer can retry"
    );
}

#[tokio::test]
async fn the_console_tests_a_connected_org_without_enrolling_and_manages_links() {
    let app = app().await;
    let idp = start_idp(
        &app,
        json!({"ada": account("ada@acme.test", "Ada", &["engineering"])}),
    )
    .await;
    app.create_org("acme", &[]).await;
    app.connect("acme", &idp.issuer).await;
    let op = app.operator_console().await;
    let page = app.page_text(&op, "/admin/orgs/acme").await;
    assert!(page.contains("test-sign-in"));
    let r = post(&op, &app.url("/admin/orgs/acme/sso/test"), &page, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = login_at_idp(&op, &location(&r), "ada").await;
    let r = op.get(&back).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    assert!(to.starts_with("/admin/orgs/acme/sso/test?id="), "{to}");
    let result = unescape(&app.page_text(&op, &to).await);
    assert!(
        result.contains("test-ok") && result.contains("ada@acme.test"),
        "{result}"
    );
    assert!(result.contains("id=\"test-role-name\">viewer<"));
    assert!(app.members("acme").await.is_empty());
    assert_eq!(
        count(&app, "sessions").await,
        1,
        "only the operator's console session"
    );
    let events = audit_actions(&app, "acme").await;
    assert!(has_action(&events, "sso.test_sign_in"));
    assert!(has_action(&events, "sso.test_started"));

    // Setup links page: create (shown once), list, revoke.
    let page = app.page_text(&op, "/admin/orgs/acme/setup-links").await;
    let r = post(
        &op,
        &app.url("/admin/orgs/acme/setup-links"),
        &page,
        &[("hours", "500")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post(
        &op,
        &app.url("/admin/orgs/acme/setup-links"),
        &page,
        &[("hours", "24")],
    )
    .await;
    let shown = unescape(&r.text().await.unwrap());
    assert!(shown.contains(&format!("{}/setup/", app.public)), "{shown}");
    let listed = unescape(&app.page_text(&op, "/admin/orgs/acme/setup-links").await);
    assert!(
        !listed.contains(&format!("{}/setup/", app.public)),
        "shown once"
    );
    let id = links(&app, "acme").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(
        &op,
        &app.url("/admin/orgs/acme/setup-links/revoke"),
        &listed,
        &[("id", &id)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(links(&app, "acme").await[0]["status"], "revoked");
}

/// A test sign-in through `url` (credentials for `issuer`) as `account`: step 5 after it.
async fn link_test(app: &TestApp, url: &str, issuer: &str, account: &str) -> String {
    let b = browser();
    start_link(&b, url).await;
    let page = step(&b, url, 1).await;
    post(&b, &format!("{url}/preset"), &page, &[("preset", "other")]).await;
    let page = step(&b, url, 3).await;
    let r = post(
        &b,
        &format!("{url}/credentials"),
        &page,
        &[
            ("issuer", issuer),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scopes", "openid email profile groups"),
            ("groups_claim", "groups"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = step(&b, url, 5).await;
    test_sign_in(app, &b, url, &page, account).await
}

#[tokio::test]
async fn the_test_asks_userinfo_as_activation_will() {
    let app = app().await;
    // Scope claims only at userinfo: whether it is asked shows in the result.
    let idp = crate::userinfo::start_conforming_idp(&app, false).await;
    app.create_org("acme", &[]).await;
    app.connect("acme", &idp.issuer).await;
    let (s, b) = app
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            Some(json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "userinfo": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, url) = new_link(&app, "acme", json!({})).await;
    let off = link_test(&app, &url, &idp.issuer, "alice").await;
    assert!(off.contains("test-ok"), "{off}");
    assert!(
        !off.contains("From userinfo") && !off.contains("alice@example.com"),
        "the live connection does not ask userinfo, so neither does the test: {off}"
    );

    // A new org (no connection): activation turns userinfo on, and so does the test.
    app.create_org("fresh", &[]).await;
    let (_, url) = new_link(&app, "fresh", json!({})).await;
    let on = link_test(&app, &url, &idp.issuer, "alice").await;
    assert!(
        on.contains("From userinfo") && on.contains("alice@example.com"),
        "{on}"
    );
}
