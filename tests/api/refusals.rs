//! Remembered refusals: a refused bearer token sent again gets the same answer (from memory),
//! a secrets change forgets it at once, and a refusal time can heal is never remembered.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};

const KEY_A: &str = include_str!("../fixtures/rsa_a.pem");
const KEY_A_PUB: &str = include_str!("../fixtures/rsa_a.pub.pem");
const KEY_B: &str = include_str!("../fixtures/rsa_b.pem");

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn rs(pem: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Status, `WWW-Authenticate` and body of the verify endpoint's answer.
async fn verify(app: &TestApp, token: &str) -> (StatusCode, Option<String>, String) {
    let resp = reqwest::Client::new()
        .get(app.url("/auth/acme/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, resp.text().await.unwrap())
}

async fn add_secret(app: &TestApp, body: Value) {
    let (s, b) = app
        .admin(Method::POST, "/api/v1/orgs/acme/jwt-secrets", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

async fn app() -> TestApp {
    // No clock leeway, so that an nbf a second or two ahead is really in the future.
    let app = spawn_app_with(|s| s.oidc.clock_leeway_secs = 0).await;
    app.create_org("acme", &[]).await;
    app
}

#[tokio::test]
async fn a_forged_token_is_refused_identically_until_the_right_secret_is_added() {
    let app = app().await;
    add_secret(
        &app,
        json!({"name": "ours", "type": "rs256_public", "public_key": KEY_A_PUB}),
    )
    .await;
    // Signed by a key the org does not trust: a bad signature for its rs256 secret.
    let claims = json!({"sub": "svc-1", "role": "developer", "iat": now(), "exp": now() + 300});
    let forged = rs(KEY_B, &claims);
    let first = verify(&app, &forged).await;
    assert_eq!(first.0, StatusCode::UNAUTHORIZED, "{first:?}");
    assert!(
        first.1.as_deref().unwrap().contains("signature is invalid"),
        "{first:?}"
    );
    for _ in 0..3 {
        assert_eq!(
            verify(&app, &forged).await,
            first,
            "answered as the first time"
        );
    }
    // The same token with a good signature is not confused with the forged one.
    let (s, _, b) = verify(&app, &rs(KEY_A, &claims)).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Its key becomes trusted (SecretsChanged): the remembered refusal goes at once.
    add_secret(
        &app,
        json!({"name": "partner", "type": "rs256", "private_key": KEY_B}),
    )
    .await;
    let (s, _, b) = verify(&app, &forged).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["secret"],
        "partner"
    );
}

#[tokio::test]
async fn a_token_refused_as_not_yet_valid_is_accepted_once_its_time_comes() {
    let app = app().await;
    add_secret(
        &app,
        json!({"name": "ours", "type": "rs256_public", "public_key": KEY_A_PUB}),
    )
    .await;
    let nbf = now() + 2;
    let token = rs(
        KEY_A,
        &json!({"sub": "svc-1", "iat": now(), "nbf": nbf, "exp": now() + 300}),
    );
    let (s, challenge, _) = verify(&app, &token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("not valid yet"));
    let again = verify(&app, &token).await;
    assert_eq!(again.0, StatusCode::UNAUTHORIZED, "still early: {again:?}");
    // Bounded wait (at most 3 s past nbf); it is never refused from memory.
    let deadline = Instant::now() + Duration::from_secs(5);
    let accepted = loop {
        let (s, _, _) = verify(&app, &token).await;
        if s == StatusCode::OK {
            break true;
        }
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        if Instant::now() > deadline || now() > nbf + 3 {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(accepted, "the token became valid at its nbf");
}
