//! No 5xx from a NUL, on either database: PostgreSQL cannot store one in text, so every way a
//! NUL can arrive (path, query, JSON, form, an IdP's claims, a token's claims) is refused with a
//! clear 4xx before anything is written, the same on SQLite and PostgreSQL (the PostgreSQL API
//! suite runs this module too).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{account, browser, spawn_app, start_idp};

const HS_SECRET: &str = "an-hs256-shared-secret-of-at-least-32-bytes!";
const SAYS: &str = "NUL character";

#[tokio::test]
async fn a_nul_anywhere_in_a_request_is_a_clear_400_that_changes_nothing() {
    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({"alice": account("alice@example.com", "Alice", &[])}),
    )
    .await;
    app.create_org("acme", &["acme.test"]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    let login_url = conn["login_url"].as_str().unwrap().to_owned();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Paths and queries: JSON answers for the APIs and verify, pages elsewhere.
    for (path, json_answer) in [
        ("/auth/a%00b/verify", true),
        ("/api/v1/orgs/a%00b", true),
        ("/api/v1/orgs/acme/audit?before=1%00", true),
        ("/sso/a%00b", false),
        ("/sso/callback?code=c&state=a%00b", false),
        (
            &format!(
                "{}?return_to=/a%00b",
                login_url.trim_start_matches(&app.public)
            ),
            false,
        ),
        (
            &format!(
                "{}?login_hint=a%00b%40acme.test",
                login_url.trim_start_matches(&app.public)
            ),
            false,
        ),
        ("/login?return_to=/x%00", false),
    ] {
        let resp = plain.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let body = resp.text().await.unwrap();
        assert!(body.contains(SAYS), "{path}: {body}");
        assert_eq!(
            ct.starts_with("application/json"),
            json_answer,
            "{path}: {ct}"
        );
    }

    // JSON bodies: nothing is created or changed.
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/orgs",
            r#"{"slug": "globex", "name": "Glo\u0000bex", "domains": []}"#,
        ),
        (
            Method::POST,
            "/api/v1/orgs",
            r#"{"slug": "globex", "name": "Globex", "domains": ["a\u0000.test"]}"#,
        ),
        (
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            r#"{"issuer": "http://127.0.0.1:1", "client_id": "a\u0000", "client_secret": "s"}"#,
        ),
        (
            Method::PUT,
            "/api/v1/orgs/acme/domains",
            r#"{"domains": ["x\u0000.test"]}"#,
        ),
        (
            Method::PUT,
            "/api/v1/orgs/acme/sso/role-mapping",
            r#"{"default_role": "viewer", "rules": [{"claim": "groups", "op": "contains", "value": "a\u0000", "role": "admin"}]}"#,
        ),
        (
            Method::POST,
            "/api/v1/orgs/acme/jwt-secrets",
            r#"{"name": "n\u0000", "type": "hs256", "secret": "an-hs256-shared-secret-of-at-least-32-bytes!"}"#,
        ),
        (
            Method::POST,
            "/api/v1/orgs/acme/sso/role-mapping/test",
            r#"{"claims": {"groups": ["a\u0000"]}}"#,
        ),
    ] {
        let resp = plain
            .request(method.clone(), app.url(path))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{method} {path}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "invalid_text", "{answer}");
    }
    let (_, orgs) = app.admin(Method::GET, "/api/v1/orgs", None).await;
    assert_eq!(
        orgs.as_array().unwrap().len(),
        1,
        "no org was created: {orgs}"
    );
    let (_, org) = app.admin(Method::GET, "/api/v1/orgs/acme", None).await;
    assert_eq!(org["domains"], json!(["acme.test"]), "{org}");
    let (_, secrets) = app
        .admin(Method::GET, "/api/v1/orgs/acme/jwt-secrets", None)
        .await;
    assert_eq!(secrets.as_array().map(Vec::len), Some(0), "{secrets}");

    // The six characters `\u0000` as text (an escaped backslash) are ordinary text.
    let resp = plain
        .post(app.url("/api/v1/orgs"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"slug": "globex", "name": "Globex \\u0000", "domains": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Forms: pages answer with a page.
    for (path, form) in [
        ("/login/sso", "email=a%00b%40acme.test"),
        ("/admin/login", "token=%00"),
    ] {
        let resp = plain
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(resp.text().await.unwrap().contains(SAYS), "{path}");
    }

    // A bearer token whose claims carry a NUL: refused or answered, never a 5xx.
    let (status, _) = app
        .admin(
            Method::POST,
            "/api/v1/orgs/acme/jwt-secrets",
            Some(json!({"name": "svc", "type": "hs256", "secret": HS_SECRET})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for claims in [
        json!({"sub": "a\u{0}b", "iat": now, "exp": now + 300}),
        json!({"sub": "svc", "email": "a\u{0}@x.test", "role": "admin", "iat": now, "exp": now + 300}),
        json!({"sub": "svc", "role": "ad\u{0}min", "jti": "j\u{0}", "sid": "s\u{0}", "iat": now, "exp": now + 300}),
    ] {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        )
        .unwrap();
        let resp = plain
            .get(app.url("/auth/acme/verify"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_client_error(),
            "{claims}: {}",
            resp.status()
        );
    }

    // The session still works after all that: the refusals changed nothing.
    let b = browser();
    assert_eq!(
        app.login(&b, &login_url, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn an_idp_asserting_a_nul_in_a_stored_claim_fails_the_sign_in_with_a_clear_page() {
    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({
            "nulname": account("n@example.com", "A\u{0}B", &[]),
            "nulmail": account("a\u{0}@example.com", "A", &[]),
            "fine": account("fine@example.com", "Fine", &["a\u{0}group"]),
        }),
    )
    .await;
    app.create_org("acme", &[]).await;
    let login_url = app.connect("acme", &idp.issuer).await["login_url"]
        .as_str()
        .unwrap()
        .to_owned();
    for (who, claim) in [("nulname", "name"), ("nulmail", "email")] {
        let b = browser();
        let resp = app.login(&b, &login_url, who).await;
        assert_eq!(resp.status(), StatusCode::FAILED_DEPENDENCY, "{who}");
        let page = resp.text().await.unwrap();
        assert!(page.contains("cannot store"), "{who}: {page}");
        assert!(
            page.contains(&format!("&quot;{claim}&quot;")),
            "{who}: {page}"
        );
        assert!(app.me(&b).await.is_none());
    }
    assert!(app.members("acme").await.is_empty(), "nobody was enrolled");
    // A NUL in a claim that is only kept as JSON (groups) is an escape there: stored fine.
    let b = browser();
    assert_eq!(
        app.login(&b, &login_url, "fine").await.status(),
        StatusCode::SEE_OTHER
    );
}
