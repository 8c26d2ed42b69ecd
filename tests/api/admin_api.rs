//! The admin API's contract: authentication, validation with clear 4xx answers, discovery
//! refusals, secrets never returned and encrypted at rest, rule sets and the dry run.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, start_idp, ADMIN_TOKEN, CLIENT_SECRET};

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[tokio::test]
async fn admin_api_requires_the_token() {
    let app = spawn_app().await;
    let no_token = app.api.get(app.url("/api/v1/orgs")).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_token.json().await.unwrap();
    assert_eq!(error_code(&body), "unauthorized");
    let wrong = app
        .api
        .get(app.url("/api/v1/orgs"))
        .bearer_auth(format!("{ADMIN_TOKEN}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let disabled = spawn_app_with(|s| s.admin_token = None).await;
    let resp = disabled
        .api
        .get(disabled.url("/api/v1/orgs"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ORGSSO_ADMIN_TOKEN"));

    assert_eq!(app.status_of("/healthz").await, StatusCode::OK);
    assert_eq!(app.status_of("/readyz").await, StatusCode::OK);
}

#[tokio::test]
async fn orgs_are_validated() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"slug": "A", "name": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_slug",
        ),
        (
            json!({"slug": "acme!", "name": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_slug",
        ),
        (
            json!({"slug": "acme", "name": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            json!({"slug": "acme", "name": "Acme", "domains": ["not a domain"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_domain",
        ),
        (
            json!({"slug": "acme"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"slug": "acme", "name": "Acme", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let (s, b) = app
            .admin(Method::POST, "/api/v1/orgs", Some(body.clone()))
            .await;
        assert_eq!((s, error_code(&b)), (status, code), "{body}");
    }
    app.create_org("acme", &["acme.test"]).await;
    let (s, b) = app
        .admin(
            Method::POST,
            "/api/v1/orgs",
            Some(json!({"slug": "acme", "name": "Again"})),
        )
        .await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "slug_taken"));
    let (s, b) = app
        .admin(
            Method::POST,
            "/api/v1/orgs",
            Some(json!({"slug": "other", "name": "O", "domains": ["ACME.test"]})),
        )
        .await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "domain_taken"));
    let (s, _) = app.admin(Method::GET, "/api/v1/orgs/other", None).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the refused org left nothing behind"
    );
    let (s, b) = app.admin(Method::GET, "/api/v1/orgs/acme", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["sso"]["status"], "not_configured");
    assert_eq!(b["domains"], json!(["acme.test"]));
    let bad_json = app
        .api
        .post(app.url("/api/v1/orgs"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn connect_refuses_bad_issuers_with_reasons() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let idp = start_idp(&app, json!({})).await;
    let cases = [
        ("http://sso.example.com", "must use https"),
        ("not a url", "not a URL"),
        ("http://127.0.0.1:1", "could not be fetched"),
        (&format!("{}/", idp.issuer), "says its issuer is"),
        (&format!("{}/nope", idp.issuer), "HTTP 404"),
    ];
    for (issuer, reason) in cases {
        let (s, b) = app
            .admin(
                Method::PUT,
                "/api/v1/orgs/acme/sso",
                Some(json!({"issuer": issuer, "client_id": "c", "client_secret": "s"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{issuer}: {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{issuer}: {message}");
    }
    let (s, b) = app
        .admin(Method::PUT, "/api/v1/orgs/acme/sso", Some(json!({"issuer": idp.issuer, "client_id": "c", "client_secret": "s", "scopes": ["email"]})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(b["error"]["message"].as_str().unwrap().contains("openid"));
    let (s, _) = app
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso",
            Some(json!({"issuer": idp.issuer, "client_id": "c"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "first connect needs a secret"
    );
    let (s, b) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::NOT_FOUND, "sso_not_configured"),
        "refusals stored nothing"
    );
}

#[tokio::test]
async fn connection_secret_is_never_returned_and_encrypted_at_rest() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let idp = start_idp(&app, json!({})).await;
    let created = app.connect("acme", &idp.issuer).await;
    assert_eq!(created["status"], "connected");
    assert_eq!(created["redirect_uri"], app.redirect_uri());
    let login_url = created["login_url"].as_str().unwrap();
    let id = login_url.rsplit('/').next().unwrap();
    assert!(id.len() >= 22, "login id has at least 128 bits: {id}");
    let (_, got) = app.admin(Method::GET, "/api/v1/orgs/acme/sso", None).await;
    for body in [&created, &got] {
        assert!(
            !body.to_string().contains(CLIENT_SECRET),
            "secret echoed: {body}"
        );
        assert!(body.get("client_secret").is_none());
    }
    // An update keeps the login URL and may omit the secret.
    let (s, updated) = app
        .admin(Method::PUT, "/api/v1/orgs/acme/sso", Some(json!({"issuer": idp.issuer, "client_id": "orgsso-test", "scopes": ["openid", "email"]})))
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["login_url"], created["login_url"]);
    assert_eq!(updated["scopes"], json!(["openid", "email"]));
    let raw = crate::helpers::raw_database(&app).await;
    assert!(
        !raw.windows(CLIENT_SECRET.len())
            .any(|w| w == CLIENT_SECRET.as_bytes()),
        "client secret stored in clear"
    );
}

#[tokio::test]
async fn rule_sets_are_validated_whole_and_dry_run() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let (s, b) = app
        .admin(Method::GET, "/api/v1/orgs/acme/sso/role-mapping", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b, json!({"default_role": "viewer", "rules": []}));

    let good = json!({"default_role": "viewer", "rules": [
        {"claim": "/realm_access/roles", "op": "contains", "value": "admin", "role": "admin"},
        {"claim": "https://acme.com/roles", "op": "in", "value": ["dev", "eng"], "role": "developer"},
        {"claim": "email", "op": "matches", "value": ".*@contractor\\.test", "role": "deny"},
        {"claim": "groups", "op": "exists", "role": "viewer"}
    ]});
    app.set_rules("acme", good.clone()).await;
    let bad_sets = [
        (
            json!({"default_role": "viewer", "rules": [good["rules"][0], {"claim": "email", "op": "matches", "value": "(", "role": "admin"}]}),
            "rule 1",
        ),
        (
            json!({"default_role": "viewer", "rules": [{"claim": "g", "op": "contains", "value": "x", "role": "superuser"}]}),
            "rule 0",
        ),
        (
            json!({"default_role": "viewer", "rules": [good["rules"][0], good["rules"][1], {"claim": "g", "op": "nope", "role": "admin"}]}),
            "rule 2",
        ),
        (
            json!({"default_role": "viewer", "rules": [{"claim": "g", "op": "in", "value": "x", "role": "admin"}]}),
            "rule 0",
        ),
        (json!({"default_role": "root", "rules": []}), "default_role"),
    ];
    for (set, names) in bad_sets {
        let (s, b) = app
            .admin(
                Method::PUT,
                "/api/v1/orgs/acme/sso/role-mapping",
                Some(set.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{set}");
        assert_eq!(error_code(&b), "invalid_rule");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains(names), "{msg} should name {names}");
    }
    let (_, stored) = app
        .admin(Method::GET, "/api/v1/orgs/acme/sso/role-mapping", None)
        .await;
    assert_eq!(stored, good, "refused sets changed nothing");

    let dry = |claims: Value| {
        let app = &app;
        async move {
            app.admin(
                Method::POST,
                "/api/v1/orgs/acme/sso/role-mapping/test",
                Some(json!({"claims": claims})),
            )
            .await
            .1
        }
    };
    assert_eq!(
        dry(json!({"realm_access": {"roles": ["admin"]}})).await,
        json!({"role": "admin", "rule": 0})
    );
    assert_eq!(
        dry(json!({"https://acme.com/roles": "eng"})).await,
        json!({"role": "developer", "rule": 1})
    );
    assert_eq!(
        dry(json!({"email": "x@contractor.test"})).await,
        json!({"role": "deny", "rule": 2})
    );
    assert_eq!(
        dry(json!({"groups": []})).await,
        json!({"role": "viewer", "rule": 3})
    );
    assert_eq!(
        dry(json!({"sub": "x"})).await,
        json!({"role": "viewer", "rule": null})
    );
    let (s, _) = app
        .admin(
            Method::POST,
            "/api/v1/orgs/acme/sso/role-mapping/test",
            Some(json!({"claims": [1]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}
