//! `GET /metrics` (issue 15 item 1): where it is served, that counters move with real
//! sign-ins and verifies, and that Debian's `promtool` accepts the exposition and the sample
//! alert rules.
//!
//! The recorder is global to the test process and other tests sign in at the same time, so
//! counters are compared before and after: by the `org` label (per-org labels on, a slug no
//! other test uses) where the series has it, else as "moved by at least what this test did".

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{account, browser, spawn_app_with, start_idp, TestApp};

const SLUG: &str = "metered";

fn separate(s: &mut orgsso::configuration::Settings) {
    s.metrics.listen = Some("127.0.0.1:0".into());
}

async fn scrape(app: &TestApp) -> String {
    let base = app.metrics.as_deref().expect("a metrics listener");
    let resp = app.api.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    resp.text().await.unwrap()
}

/// The value of the series `name` with exactly `labels` (0 when absent).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let mut got: Vec<String> = rest
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            got.sort();
            (n == name && got == want).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_are_served_only_where_the_settings_say() {
    // Separate listener: served there, 404 on the main one (even with expose_on_main).
    let app = spawn_app_with(|s| {
        separate(s);
        s.metrics.expose_on_main = true;
    })
    .await;
    let text = scrape(&app).await;
    assert!(text.contains("orgsso_build_info{version=\""), "{text}");
    assert_eq!(app.status_of("/metrics").await, StatusCode::NOT_FOUND);

    // Default: nowhere.
    let app = spawn_app_with(|_| {}).await;
    assert!(app.metrics.is_none());
    assert_eq!(app.status_of("/metrics").await, StatusCode::NOT_FOUND);

    // Asked for on the main listener, and no separate one.
    let app = spawn_app_with(|s| s.metrics.expose_on_main = true).await;
    let resp = app.api.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("orgsso_build_info"));
}

#[tokio::test]
async fn counters_move_with_sign_ins_refusals_and_verifies_and_promtool_accepts_them() {
    let app = spawn_app_with(|s| {
        separate(s);
        s.metrics.per_org_labels = true;
    })
    .await;
    let idp = start_idp(
        &app,
        json!({
            "alice": account("alice@metered.test", "Alice", &["staff"]),
            "mallory": account("mallory@metered.test", "Mallory", &["contractors"]),
        }),
    )
    .await;
    app.create_org(SLUG, &[]).await;
    let login_url = app.connect(SLUG, &idp.issuer).await["login_url"]
        .as_str()
        .unwrap()
        .to_owned();
    app.set_rules(
        SLUG,
        json!({"default_role": "viewer", "rules": [
            {"claim": "groups", "op": "contains", "value": "contractors", "role": "deny"}
        ]}),
    )
    .await;
    let org = ("org", SLUG);
    let before = scrape(&app).await;

    // A sign-in, and a verify by its cookie.
    let alice = browser();
    let resp = app.login(&alice, &login_url, "alice").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let verify = app.url(&format!("/auth/{SLUG}/verify"));
    let resp = alice.get(&verify).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Verifies refused: nothing presented, a bad token, an unknown org.
    assert_eq!(
        app.api.get(&verify).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let bad = app
        .api
        .get(&verify)
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let unknown = app.url("/auth/no-such-org-here/verify");
    assert_eq!(
        app.api.get(&unknown).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    // Refused sign-ins: the org's deny rule, and a callback with a state nobody issued.
    let mallory = browser();
    let resp = app.login(&mallory, &login_url, "mallory").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = browser()
        .get(app.url("/sso/callback?state=never-issued&code=x"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    // A SCIM request with a wrong token.
    let scim = app
        .api
        .get(app.url(&format!("/scim/v2/{SLUG}/Users")))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(scim.status(), StatusCode::UNAUTHORIZED);

    let after = scrape(&app).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    let finished = "orgsso_sign_ins_finished_total";
    assert_eq!(delta(finished, &[("outcome", "success"), org]), 1.0);
    assert_eq!(delta(finished, &[("outcome", "denied"), org]), 1.0);
    assert!(delta(finished, &[("outcome", "unknown_state")]) >= 1.0);
    assert!(
        delta(
            "orgsso_sign_ins_started_total",
            &[("outcome", "redirected")]
        ) >= 2.0
    );
    let decisions = "orgsso_verify_decisions_total";
    let decision = |outcome, credential| {
        delta(
            decisions,
            &[("outcome", outcome), ("credential", credential), org],
        )
    };
    assert_eq!(decision("allowed", "cookie"), 1.0);
    assert_eq!(decision("denied", "none"), 1.0);
    assert_eq!(decision("denied", "bearer"), 1.0);
    assert!(
        delta(
            decisions,
            &[("outcome", "unknown_org"), ("credential", "none")]
        ) >= 1.0
    );
    assert!(delta("orgsso_verify_duration_seconds_count", &[]) >= 4.0);
    let sessions = |result| {
        delta(
            "orgsso_cache_lookups_total",
            &[("cache", "sessions"), ("result", result)],
        )
    };
    assert!(sessions("hit") + sessions("miss") >= 1.0);
    assert!(
        delta(
            "orgsso_cache_lookups_total",
            &[("cache", "verdicts"), ("result", "miss")]
        ) >= 1.0
    );
    let scim = [("status_class", "4xx"), ("scim_type", "none")];
    assert!(delta("orgsso_scim_requests_total", &scim) >= 1.0);
    for series in [
        "orgsso_jwks_fetches_total{host=\"127.0.0.1\"}",
        "orgsso_live_sessions ",
        "orgsso_db_pool_connections{state=\"idle\"}",
        "orgsso_db_pool_connections{state=\"in_use\"}",
        "orgsso_build_info{version=\"",
    ] {
        assert!(after.contains(series), "{series} missing:\n{after}");
    }
    // The live-session gauge is counted at most every 10 s and is shared by the process's
    // apps: only its presence is checked.
    // Nothing secret in the exposition: no cookie value, no token, no email.
    assert!(!after.contains("alice@"), "{after}");

    promtool(&["check", "metrics"], Some(&after));
}

#[tokio::test]
async fn the_sample_alert_rules_are_valid() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/config/alerts.yml");
    promtool(&["check", "rules", rules], None);
}

/// Runs Debian's `promtool` (package `prometheus`; `.ci/run` installs it), or says loudly that
/// this check did not run.
fn promtool(args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("!!!!! NOT RUN: promtool {args:?}: promtool is missing (apt-get install prometheus) !!!!!");
        return;
    };
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} refused it:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        stdin.unwrap_or("")
    );
}
