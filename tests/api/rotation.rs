//! Key rotation at the real test IdP, whatever its ID tokens say about their key: with a
//! `kid`, without one, right after a token naming an unknown kid, and a reconnect that
//! brings a stale key cache up to date. JWKS fetches are counted at the IdP.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{account, browser, spawn_app, start_idp, TestApp};
use crate::idp::TestIdp;

/// The refetch floor orgsso runs with (`jwks_refetch_floor_ms` default).
const FLOOR: Duration = Duration::from_secs(1);

async fn setup() -> (TestApp, TestIdp, String) {
    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({
            "alice": account("alice@example.com", "Alice", &[]),
            "bob": account("bob@example.com", "Bob", &[]),
            "carol": account("carol@example.com", "Carol", &[]),
        }),
    )
    .await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    let login_url = conn["login_url"].as_str().unwrap().to_owned();
    (app, idp, login_url)
}

async fn jwks_fetches(idp: &TestIdp) -> i64 {
    idp.stats().await["jwks_fetches"].as_i64().unwrap()
}

/// Signs `account` in through a fresh browser; the callback's status and page.
async fn sign_in(app: &TestApp, login_url: &str, account: &str) -> (StatusCode, String) {
    let resp = app.login(&browser(), login_url, account).await;
    (resp.status(), resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn kid_less_id_tokens_follow_a_rotation_with_one_fetch() {
    let (app, mut idp, login_url) = setup().await;
    idp.set_id_token_kid("omit", None).await;
    let (status, page) = sign_in(&app, &login_url, "alice").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let before = jwks_fetches(&idp).await;

    // The IdP re-keys; its tokens still name no key. Before, the cached (old) key failed the
    // signature until the cache expired (an hour).
    idp.rotate_keys().await;
    idp.set_id_token_kid("omit", None).await;
    let (status, page) = sign_in(&app, &login_url, "bob").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(
        jwks_fetches(&idp).await - before,
        1,
        "one refetch, then the retry verified"
    );
    let (status, page) = sign_in(&app, &login_url, "carol").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(
        jwks_fetches(&idp).await - before,
        1,
        "the new key is cached"
    );
}

#[tokio::test]
async fn a_rotation_right_after_an_unknown_kid_token_is_followed() {
    let (app, mut idp, login_url) = setup().await;
    // A token naming a kid the IdP never published (a forgery, a misconfigured IdP).
    idp.set_id_token_kid("replace", Some("never-published"))
        .await;
    let before = jwks_fetches(&idp).await;
    let (status, page) = sign_in(&app, &login_url, "alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    assert!(page.contains("no signing key matching"), "{page}");
    let refused_at = Instant::now();
    assert_eq!(jwks_fetches(&idp).await - before, 1);
    // Repeating it costs no fetch (the kid is remembered as unknown).
    let (status, _) = sign_in(&app, &login_url, "alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(jwks_fetches(&idp).await - before, 1);

    // A genuine rotation well inside the 30 s cooldown that used to refuse it.
    idp.rotate_keys().await;
    tokio::time::sleep(FLOOR.saturating_sub(refused_at.elapsed())).await;
    let (status, page) = sign_in(&app, &login_url, "bob").await;
    assert!(refused_at.elapsed() < Duration::from_secs(30));
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(
        jwks_fetches(&idp).await - before,
        2,
        "one fetch for the new kid"
    );
}

#[tokio::test]
async fn a_kid_less_rotation_right_after_an_unknown_kid_token_is_followed() {
    let (app, mut idp, login_url) = setup().await;
    idp.set_id_token_kid("replace", Some("never-published"))
        .await;
    let before = jwks_fetches(&idp).await;
    let (status, _) = sign_in(&app, &login_url, "alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let refused_at = Instant::now();
    assert_eq!(jwks_fetches(&idp).await - before, 1);

    // The IdP re-keys and signs without kids: the cached (old) key fails the signature once,
    // the set is refetched once and the token verifies.
    idp.rotate_keys().await;
    idp.set_id_token_kid("omit", None).await;
    tokio::time::sleep(FLOOR.saturating_sub(refused_at.elapsed())).await;
    let (status, page) = sign_in(&app, &login_url, "bob").await;
    assert!(refused_at.elapsed() < Duration::from_secs(30));
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(jwks_fetches(&idp).await - before, 2);
    // A kid-less token signed by a key the IdP does not publish is still refused.
    idp.set_id_token_kid("replace", Some("never-published"))
        .await;
    let (status, _) = sign_in(&app, &login_url, "carol").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reconnecting_replaces_a_stale_key_cache() {
    let (app, mut idp, login_url) = setup().await;
    let (status, _) = sign_in(&app, &login_url, "alice").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    idp.rotate_keys().await;
    // The admin reconnects (updates) the IdP: discovery downloads the new key set, which
    // now replaces the cached one, so the next sign-in needs no fetch at all.
    app.connect("acme", &idp.issuer).await;
    let after_connect = jwks_fetches(&idp).await;
    let (status, page) = sign_in(&app, &login_url, "bob").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(
        jwks_fetches(&idp).await,
        after_connect,
        "served from the key set fetched at connect"
    );
}
