//! Throttled guessing (issue 14 item 3) and bounded anonymous sign-in starts (item 4), per
//! client address: the test clients bind 127.0.0.2, 127.0.0.3… (Linux routes all of
//! 127.0.0.0/8 to lo), so one server sees several addresses.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::json;

use crate::helpers::{account, location, spawn_app_with, start_idp, TestApp, ADMIN_TOKEN};

/// A client (cookie jar, no redirects) whose requests come from `from`.
fn client_from(from: &str) -> Client {
    Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn orgs_with(c: &Client, app: &TestApp, token: &str, xff: Option<&str>) -> reqwest::Response {
    let mut req = c.get(app.url("/api/v1/orgs")).bearer_auth(token);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap()
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("a {} without Retry-After", resp.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Three free failures, then a minute per failure.
fn strict(s: &mut orgsso::configuration::Settings) {
    s.throttle.free_failures = 3;
    s.throttle.failure_delay_secs = 60;
}

#[tokio::test]
async fn wrong_admin_tokens_are_throttled_per_address() {
    let app = spawn_app_with(strict).await;
    let guesser = client_from("127.0.0.2");
    for i in 0..3 {
        let resp = orgs_with(&guesser, &app, "wrong-token", None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let resp = orgs_with(&guesser, &app, "wrong-token", None).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&resp);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts", "{body}");

    // The throttled address is not told whether a token is right (else guessing goes on at
    // full speed): the right one waits too.
    let resp = orgs_with(&guesser, &app, ADMIN_TOKEN, None).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // From another address the right token works, and so does a first wrong one's 401.
    let admin = client_from("127.0.0.1");
    assert_eq!(
        orgs_with(&admin, &app, ADMIN_TOKEN, None).await.status(),
        StatusCode::OK
    );
    let other = client_from("127.0.0.3");
    assert_eq!(
        orgs_with(&other, &app, "wrong-token", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // No token at all is not a guess.
    let resp = admin.get(app.url("/api/v1/orgs")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn console_sign_in_is_throttled_per_address() {
    let app = spawn_app_with(strict).await;
    let guesser = client_from("127.0.0.2");
    for i in 0..3 {
        let resp = guesser
            .post(app.url("/admin/login"))
            .form(&[("token", "not-the-token")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let resp = guesser
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&resp) >= 1);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Too many wrong tokens"), "{page}");

    // The admin API shares the count: guesses at either door add up.
    let resp = orgs_with(&guesser, &app, "wrong-token", None).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    let operator = client_from("127.0.0.1");
    let ok = operator
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ok.status(), location(&ok)),
        (StatusCode::SEE_OTHER, "/admin".to_owned())
    );
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let app = spawn_app_with(|s| {
        strict(s);
        s.throttle.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let proxy = client_from("127.0.0.1");
    // Behind the proxy, each client is the address it reports: the guesser waits...
    for _ in 0..3 {
        let resp = orgs_with(&proxy, &app, "wrong", Some("198.51.100.7")).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // (rightmost first: a client-written entry on the left is not believed)
    let resp = orgs_with(&proxy, &app, ADMIN_TOKEN, Some("203.0.113.1, 198.51.100.7")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...while the admin behind the same proxy does not, nor does the proxy's own address.
    let resp = orgs_with(
        &proxy,
        &app,
        ADMIN_TOKEN,
        Some("198.51.100.7, 198.51.100.8"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        orgs_with(&proxy, &app, ADMIN_TOKEN, None).await.status(),
        StatusCode::OK
    );
    // Another trusted hop in the chain is skipped over to the client.
    let resp = orgs_with(&proxy, &app, ADMIN_TOKEN, Some("198.51.100.7, 127.0.0.1")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    // A peer that is not a trusted proxy cannot shift the blame (nor escape) with the header.
    let direct = client_from("127.0.0.2");
    for _ in 0..3 {
        let resp = orgs_with(&direct, &app, "wrong", Some("198.51.100.9")).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = orgs_with(&direct, &app, ADMIN_TOKEN, Some("198.51.100.10")).await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "keyed on the peer"
    );
    let resp = orgs_with(&proxy, &app, ADMIN_TOKEN, Some("198.51.100.9")).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the named address was not blamed"
    );
}

/// A connected org with the real test IdP; returns its login URL.
async fn connected(app: &TestApp) -> (crate::idp::TestIdp, String) {
    let idp = start_idp(
        app,
        json!({"alice": account("alice@example.com", "Alice", &[])}),
    )
    .await;
    app.create_org("acme", &[]).await;
    let conn = app.connect("acme", &idp.issuer).await;
    (idp, conn["login_url"].as_str().unwrap().to_owned())
}

async fn pending(app: &TestApp, login_url: &str) -> i64 {
    let login_id = login_url.rsplit('/').next().unwrap();
    let conn = app
        .store
        .connection_by_login_id(login_id)
        .await
        .unwrap()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    app.store.pending_flows(&conn.id, now).await.unwrap()
}

#[tokio::test]
async fn sign_in_starts_are_limited_per_address() {
    let app = spawn_app_with(|s| s.throttle.sign_in_starts_per_minute = 3).await;
    let (_idp, login_url) = connected(&app).await;
    let flooder = client_from("127.0.0.2");
    for i in 0..3 {
        let resp = flooder.get(&login_url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "start {i}");
    }
    for _ in 0..5 {
        let resp = flooder.get(&login_url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=60).contains(&retry_after(&resp)));
        let page = resp.text().await.unwrap();
        assert!(
            page.contains("Too many sign-ins"),
            "a page for browsers: {page}"
        );
    }
    assert_eq!(
        pending(&app, &login_url).await,
        3,
        "refused starts store nothing"
    );
    // A colleague elsewhere signs in as usual.
    let colleague = client_from("127.0.0.1");
    let done = app.login(&colleague, &login_url, "alice").await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(app.me(&colleague).await.is_some());
}

#[tokio::test]
async fn pending_flows_per_connection_are_capped() {
    let app = spawn_app_with(|s| {
        s.throttle.sign_in_starts_per_minute = 1_000;
        s.login.max_pending_flows_per_connection = 5;
    })
    .await;
    let (_idp, login_url) = connected(&app).await;
    // Many addresses (a distributed flood) fill the cap, and no further.
    for i in 0..12 {
        let from = format!("127.0.1.{}", i + 1);
        let resp = client_from(&from).get(&login_url).send().await.unwrap();
        let want = if i < 5 {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(resp.status(), want, "start {i}");
        if want == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(retry_after(&resp), 60);
        }
    }
    assert_eq!(pending(&app, &login_url).await, 5);
    let (status, _) = app.admin(Method::GET, "/api/v1/orgs/acme", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_scim_tokens_are_throttled_per_address() {
    let app = spawn_app_with(strict).await;
    app.create_org("acme", &[]).await;
    let (status, created) = app
        .admin(
            Method::POST,
            "/api/v1/orgs/acme/scim-tokens",
            Some(json!({"name": "okta"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let users = app.url("/scim/v2/acme/Users");
    let guesser = client_from("127.0.0.2");
    for i in 0..3 {
        let resp = guesser
            .get(&users)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let resp = guesser
        .get(&users)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&retry_after(&resp)));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "429", "a SCIM error: {body}");
    // The right token from the guesser's address waits too; from the directory's, it works.
    let resp = guesser
        .get(&users)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let directory = client_from("127.0.0.3");
    let resp = directory
        .get(&users)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn setup_link_starts_share_the_sign_in_start_throttle() {
    let app = spawn_app_with(|s| s.throttle.sign_in_starts_per_minute = 2).await;
    app.create_org("acme", &[]).await;
    let (s, link) = app
        .admin(
            Method::POST,
            "/api/v1/orgs/acme/setup-links",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().unwrap();
    // Refused Starts from another browser would each write an audit row: bounded per address.
    let holder = client_from("127.0.0.1");
    let r = holder.post(format!("{url}/start")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let flooder = client_from("127.0.0.2");
    for _ in 0..2 {
        let r = flooder.post(format!("{url}/start")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
    }
    let r = flooder.post(format!("{url}/start")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&retry_after(&r)));
    let (_, events) = app
        .admin(Method::GET, "/api/v1/orgs/acme/audit", None)
        .await;
    let opened = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "setup_link.opened")
        .count();
    assert_eq!(opened, 3, "the holder's and two refusals: {events}");
}
