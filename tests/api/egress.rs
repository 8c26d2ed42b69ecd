//! Egress pinned against DNS rebinding: an org admin's URLs are judged by the address each
//! connection would use, not only when they were saved. The name's answers come from the
//! app's host overrides, changed while it runs; every request stays on 127.0.0.1.
//!
//! An org admin's save fetches (discovery, the key set), so a save "while the name resolved to
//! a public address" would send traffic off this machine: the rows such a save writes are
//! written with the store's own methods instead, and the save-time refusal is tested on its own.

use reqwest::StatusCode;
use serde_json::json;

use crate::console::post_form;
use crate::helpers::{account, browser, spawn_app, start_idp, TestApp};
use crate::tokens::{base_claims, jwks_of, rs, verify, JwksServer, JWK_A, KEY_A};

const REBOUND: &str = "keys.rebind.test";

fn loopback() -> Vec<std::net::IpAddr> {
    vec!["127.0.0.1".parse().unwrap()]
}

async fn org_id(app: &TestApp, slug: &str) -> String {
    app.store.org_by_slug(slug).await.unwrap().unwrap().id
}

/// A `jwk_url` secret as the console's save writes it.
async fn insert_jwk_url(app: &TestApp, slug: &str, url: &str, public_only: bool) {
    let id = orgsso::store::new_id();
    let row = orgsso::store::JwtSecretRow {
        id,
        org_id: org_id(app, slug).await,
        name: "keys".into(),
        kind: "jwk_url".into(),
        private_enc: None,
        public: Some(url.into()),
        public_jwk: None,
        kid: None,
        audiences: json!(["api://orders"]).to_string(),
        issuers: "[]".into(),
        is_primary: false,
        created_at: time::OffsetDateTime::now_utc().unix_timestamp(),
        public_only,
    };
    let actor = if public_only { "user:bob" } else { "operator" };
    app.store.insert_jwt_secret(&row, actor).await.unwrap();
}

#[tokio::test]
async fn an_org_admins_jwk_url_that_rebinds_to_loopback_is_never_fetched() {
    let app = spawn_app().await;
    let server = JwksServer::start(jwks_of(&[JWK_A]), None).await;
    // The key server's URL under a name.
    let port = server
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/jwks");
    // Plain http so the operator's control fetch needs no TLS (the save's https rule for names
    // is not what is tested here; the org admin's fetch is refused before any scheme matters).
    let url = format!("http://{REBOUND}:{port}/jwks");
    app.create_org("acme", &[]).await;
    app.create_org("globex", &[]).await;

    // acme's org admin saved the URL while the name resolved to a public address; globex's
    // operator registered the same URL.
    insert_jwk_url(&app, "acme", &url, true).await;
    insert_jwk_url(&app, "globex", &url, false).await;
    // Now the name answers 127.0.0.1.
    app.hosts.set(REBOUND, loopback());
    let token = rs(KEY_A, Some("hostile-a"), &base_claims());

    let (status, _, body) = verify(&app, "acme", &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // The verify API's callers are apps: the reason (naming the host) goes to the log.
    assert_eq!(body["error"]["code"], "keys_unavailable", "{body}");
    assert_eq!(server.fetches(), 0, "refused before any connection");
    // A second try (past the refetch floor or not) still connects nowhere.
    let (status, _, _) = verify(&app, "acme", &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.fetches(), 0);

    // The operator's secret of the same URL is fetched as before: the policy is the row's.
    let (status, _, body) = verify(&app, "globex", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.fetches(), 1);
    let (status, _, _) = verify(&app, "acme", &token).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not the operator's cache"
    );
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn an_org_admins_connection_is_checked_at_the_token_endpoint() {
    let app = spawn_app().await;
    let idp = start_idp(&app, json!({"bob": account("bob@acme.test", "Bob", &[])})).await;
    app.create_org("acme", &[]).await;
    let sso = app.connect("acme", &idp.issuer).await;
    let login_url = sso["login_url"].as_str().unwrap().to_owned();
    // The operator's connection to an IdP on 127.0.0.1 signs in.
    let ok = app.login(&browser(), &login_url, "bob").await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);

    // The same connection as an org admin's save leaves it: from now on every request to its
    // URLs goes through the pinned client, which refuses 127.0.0.1 before connecting.
    let org = org_id(&app, "acme").await;
    let mut conn = app.store.latest_connection(&org).await.unwrap().unwrap();
    conn.public_only = true;
    assert!(app
        .store
        .update_connection(&conn, "user:bob", &json!({}))
        .await
        .unwrap());
    let refused = app.login(&browser(), &login_url, "bob").await;
    assert_eq!(refused.status(), StatusCode::FAILED_DEPENDENCY);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("127.0.0.1 is a private or local address"),
        "{page}"
    );
    assert!(!page.contains("500"), "{page}");
}

#[tokio::test]
async fn an_org_admins_save_judges_the_name_as_it_resolves_now() {
    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({"bob": account("bob@acme.test", "Bob", &["admins"])}),
    )
    .await;
    app.create_org("acme", &[]).await;
    let sso = app.connect("acme", &idp.issuer).await;
    app.set_rules(
        "acme",
        json!({"default_role": "viewer", "rules": [
            {"claim": "groups", "op": "contains", "value": "admins", "role": "admin"}]}),
    )
    .await;
    let bob = browser();
    let login_url = sso["login_url"].as_str().unwrap();
    assert_eq!(
        app.login(&bob, login_url, "bob").await.status(),
        StatusCode::SEE_OTHER
    );
    let server = JwksServer::start(jwks_of(&[JWK_A]), None).await;
    let port = server
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/jwks");
    // https: plain http is for loopback literals only (the check comes first anyway).
    let url = format!("https://{REBOUND}:{port}/jwks");
    let secrets = "/admin/orgs/acme/secrets";
    let fields = [("name", "k"), ("type", "jwk_url"), ("url", url.as_str())];

    for answer in ["127.0.0.1", "169.254.169.254", "10.0.0.5"] {
        app.hosts.set(REBOUND, vec![answer.parse().unwrap()]);
        let refused = post_form(&bob, &app, secrets, secrets, &fields).await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{answer}"
        );
        let page = refused.text().await.unwrap();
        assert!(
            page.contains("keys.rebind.test is a private or local address"),
            "{answer}: {page}"
        );
        assert!(!page.contains(answer), "the answer is not revealed: {page}");
    }
    // A new issuer by that name is refused before discovery.
    let issuer = format!("https://{REBOUND}:{port}");
    let refused = post_form(
        &bob,
        &app,
        "/admin/orgs/acme",
        "/admin/orgs/acme",
        &[
            ("issuer", issuer.as_str()),
            ("client_id", "x"),
            ("client_secret", ""),
            ("scopes", "openid"),
            ("groups_claim", "groups"),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("keys.rebind.test is a private or local address"));
    assert_eq!(server.fetches(), 0, "nothing fetched for the org admin");
    let org = org_id(&app, "acme").await;
    assert!(app.store.jwt_secrets(&org).await.unwrap().is_empty());
}

/// Rows saved before migration 0010: an org admin's (audit actor `user:…`) saves make them
/// org admins'; the operator's stay unpinned; only `jwk_url` secrets fetch anything.
#[tokio::test]
async fn rows_from_before_0010_are_judged_by_the_audit_log() {
    const BEFORE: &str = "
        INSERT INTO orgs (id, slug, name, created_at) VALUES ('a', 'a', 'A', 0), ('b', 'b', 'B', 0), ('c', 'c', 'C', 0);
        INSERT INTO sso_connections (id, org_id, login_id, issuer, client_id, client_secret_enc, scopes, metadata, status, created_at, updated_at, disconnected_at) VALUES
            ('a1', 'a', 'la1', 'https://a', 'x', '', '[]', '{}', 'connected', 100, 200, NULL),
            ('b1', 'b', 'lb1', 'https://b', 'x', '', '[]', '{}', 'connected', 100, 100, NULL),
            ('c1', 'c', 'lc1', 'https://c', 'x', '', '[]', '{}', 'disconnected', 100, 100, 150),
            ('c2', 'c', 'lc2', 'https://c', 'x', '', '[]', '{}', 'connected', 300, 300, NULL);
        INSERT INTO jwt_secrets (id, org_id, name, kind, public, audiences, issuers, is_primary, created_at) VALUES
            ('s1', 'a', 'k1', 'jwk_url', 'https://k', '[]', '[]', FALSE, 500),
            ('s2', 'a', 'k2', 'jwk_url', 'https://k', '[]', '[]', FALSE, 600),
            ('s3', 'a', 'h', 'hs256', NULL, '[]', '[]', FALSE, 500);
        INSERT INTO audit_events (org_id, actor, action, detail, created_at) VALUES
            ('a', 'operator', 'sso.connect', '{}', 100),
            ('a', 'user:u1', 'sso.update', '{}', 200),
            ('b', 'admin', 'sso.connect', '{}', 100),
            ('c', 'user:u2', 'sso.connect', '{}', 100),
            ('c', 'admin', 'sso.connect', '{}', 300),
            ('a', 'user:u1', 'jwt_secret.create', '{}', 500),
            ('a', 'admin', 'jwt_secret.create', '{}', 600);";
    const AFTER: &str = "SELECT id, public_only FROM sso_connections UNION ALL SELECT id, public_only FROM jwt_secrets ORDER BY id";
    let want = [
        ("a1", true),
        ("b1", false),
        ("c1", true),
        ("c2", false),
        ("s1", true),
        ("s2", false),
        ("s3", false),
    ]
    .map(|(id, p)| (id.to_owned(), p))
    .to_vec();
    let dir = tempfile::tempdir().unwrap();
    let got: Vec<(String, bool)> = match crate::helpers::backend() {
        crate::helpers::Backend::Sqlite => {
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let mut before = sqlx::migrate!("./migrations/sqlite");
            before.migrations = before
                .migrations
                .iter()
                .filter(|m| m.version <= 8)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            before.run(&pool).await.unwrap();
            sqlx::raw_sql(BEFORE).execute(&pool).await.unwrap();
            sqlx::migrate!("./migrations/sqlite")
                .run(&pool)
                .await
                .unwrap();
            sqlx::query_as(AFTER).fetch_all(&pool).await.unwrap()
        }
        crate::helpers::Backend::Postgres(server) => {
            let url = crate::helpers::fresh_pg_database(&server).await;
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let mut before = sqlx::migrate!("./migrations/postgres");
            before.migrations = before
                .migrations
                .iter()
                .filter(|m| m.version <= 8)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            before.run(&pool).await.unwrap();
            sqlx::raw_sql(BEFORE).execute(&pool).await.unwrap();
            sqlx::migrate!("./migrations/postgres")
                .run(&pool)
                .await
                .unwrap();
            sqlx::query_as(AFTER).fetch_all(&pool).await.unwrap()
        }
    };
    assert_eq!(got, want);
}
