//! Login round trip on this machine: orgsso + the real test IdP (npm `oidc-provider`) on
//! 127.0.0.1, SQLite file. Measures, over sequential sign-ins,
//!
//! - the whole browser round trip: login URL → IdP authorize + login form → callback → session;
//! - orgsso's callback alone: flow lookup, code exchange, ID-token verification, rules,
//!   enrolment and session write.
//!
//! Run: `cargo bench --bench login_roundtrip` (ROUNDS=n to change the count, default 200).

#[path = "../tests/api/idp.rs"]
mod idp;

use std::time::{Duration, Instant};

use orgsso::configuration::Settings;
use orgsso::crypto::Secret;
use orgsso::startup::Application;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<28} n={:<4} mean={:>7.2?} p50={:>7.2?} p90={:>7.2?} p99={:>7.2?} max={:>7.2?}",
        samples.len(),
        mean,
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99),
        samples.last().unwrap()
    );
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = Settings::defaults();
    settings.public_url = format!("http://{addr}").parse().unwrap();
    settings.database_url = Secret::new(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    ));
    settings.data_dir = dir.path().join("data");
    settings.admin_token = Some(Secret::new("bench-admin-token"));
    // Every sign-in comes from 127.0.0.1: a load to measure, not a flood to refuse.
    settings.throttle.sign_in_starts_per_minute = 1_000_000;
    let app = Application::build_with_listener(settings, listener)
        .await
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    let base = format!("http://{addr}");

    let mut accounts = serde_json::Map::new();
    for i in 0..rounds {
        accounts.insert(format!("user{i}"), json!({"email": format!("user{i}@example.com"), "name": "U", "groups": ["engineering"]}));
    }
    let idp = idp::TestIdp::start(idp::IdpConfig {
        clients: vec![idp::IdpClient {
            client_id: "bench".into(),
            client_secret: "bench-secret".into(),
            redirect_uris: vec![format!("{base}/sso/callback")],
            ..Default::default()
        }],
        accounts,
        ..idp::IdpConfig::default()
    })
    .await;
    let api = reqwest::Client::new();
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth("bench-admin-token");
    admin(api.post(format!("{base}/api/v1/orgs")))
        .json(&json!({"slug": "bench", "name": "Bench"}))
        .send()
        .await
        .unwrap();
    let conn: serde_json::Value = admin(api.put(format!("{base}/api/v1/orgs/bench/sso")))
        .json(&json!({"issuer": idp.issuer, "client_id": "bench", "client_secret": "bench-secret", "scopes": ["openid", "email", "profile", "groups"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    admin(api.put(format!("{base}/api/v1/orgs/bench/sso/role-mapping")))
        .json(&json!({"default_role": "viewer", "rules": [{"claim": "groups", "op": "contains", "value": "engineering", "role": "developer"}]}))
        .send()
        .await
        .unwrap();
    let login_url = conn["login_url"].as_str().unwrap().to_owned();

    let (mut whole, mut callback) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        // A fresh browser per round: every sign-in is a first sign-in at orgsso and at the IdP.
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let t0 = Instant::now();
        let start = browser.get(&login_url).send().await.unwrap();
        let authorize = start.headers()["location"].to_str().unwrap().to_owned();
        let back = idp::login_at_idp(&browser, &authorize, &format!("user{i}")).await;
        let t1 = Instant::now();
        let done = browser.get(&back).send().await.unwrap();
        assert_eq!(done.status(), 303, "sign-in {i} failed");
        let t2 = Instant::now();
        whole.push(t2 - t0);
        callback.push(t2 - t1);
    }
    println!("login round trip, {rounds} sequential first sign-ins, orgsso + oidc-provider on 127.0.0.1, SQLite");
    report("whole browser round trip", whole);
    report("orgsso callback alone", callback);
}
