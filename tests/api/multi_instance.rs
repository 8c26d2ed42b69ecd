//! Several orgsso instances on one PostgreSQL database behave as one service: sessions, flows,
//! revocations and rotations cross instances at once; concurrent sign-ins lose nothing; a
//! database restart gives 503s and recovery without restarting orgsso.
//!
//! Needs `ORGSSO_TEST_PG_URL` (set by .ci/run); without it these tests say so loudly and pass.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    account, browser, fresh_pg_database, location, pg_server, spawn_app_with, start_idp, TestApp,
};
use crate::idp::login_at_idp;
use crate::pgcluster::PgCluster;

/// One secret key for every instance, as operators must configure it.
const SHARED_KEY: &str = "q83vEi0PKrsOTx4GRJ6q4q0yH2n3A+Yp8Z2XJkqvX2E=";

fn not_run(test: &str) {
    eprintln!(
        "\n*** NOT RUN: {test} needs PostgreSQL: set ORGSSO_TEST_PG_URL (bash .ci/run does) ***\n"
    );
}

/// `n` instances on `database_url`, all with the first one's address as their public URL, as
/// if behind one load balancer.
pub async fn instances(n: usize, database_url: &str, acquire_timeout_secs: u64) -> Vec<TestApp> {
    let mut apps: Vec<TestApp> = Vec::new();
    for _ in 0..n {
        let public = apps.first().map(|a| a.public.clone());
        let url = database_url.to_owned();
        apps.push(
            spawn_app_with(move |s| {
                s.database_url = orgsso::crypto::Secret::new(url);
                s.secret_key = Some(orgsso::crypto::Secret::new(SHARED_KEY));
                s.database.acquire_timeout_secs = acquire_timeout_secs;
                // Hundreds of colleagues signing in, all from 127.0.0.1: a load, not a flood.
                s.throttle.sign_in_starts_per_minute = 100_000;
                if let Some(p) = public {
                    s.public_url = p.parse().unwrap();
                }
            })
            .await,
        );
    }
    apps
}

/// `n` accounts `{prefix}0`… with emails `{prefix}0@example.com`….
fn numbered_accounts(prefix: &str, n: usize) -> Value {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{i}");
            let email = format!("{id}@example.com");
            (id, account(&email, &prefix.to_uppercase(), &[]))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Signs in: starts on `start`, the IdP sends the browser back to the public URL, and the
/// load balancer hands the callback to `finish`.
async fn login_across(
    start: &TestApp,
    finish: &TestApp,
    login_url_path: &str,
    account: &str,
) -> (reqwest::Client, StatusCode) {
    let b = browser();
    let first = b.get(start.url(login_url_path)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let back = login_at_idp(&b, &location(&first), account).await;
    let back = back.replacen(&start.public, &finish.base, 1);
    let status = b.get(&back).send().await.unwrap().status();
    (b, status)
}

fn path_of(login_url: &str) -> String {
    url::Url::parse(login_url).unwrap().path().to_owned()
}

async fn verify_status(app: &TestApp, b: &reqwest::Client) -> StatusCode {
    b.get(app.url("/auth/acme/verify"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn bearer_status(app: &TestApp, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(app.url("/auth/acme/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn multi_instance_sessions_and_revocations_cross_instances_at_once() {
    let Some(server) = pg_server() else {
        return not_run("multi_instance_sessions_and_revocations_cross_instances_at_once");
    };
    let db = fresh_pg_database(&server).await;
    let apps = instances(3, &db, 5).await;
    let (a, b, c) = (&apps[0], &apps[1], &apps[2]);
    let idp = start_idp(
        a,
        json!({"alice": account("alice@example.com", "Alice", &["admins"])}),
    )
    .await;
    a.create_org("acme", &[]).await;
    let conn = b.connect("acme", &idp.issuer).await;
    c.set_rules("acme", json!({"default_role": "viewer", "rules": [{"claim": "groups", "op": "contains", "value": "admins", "role": "admin"}]}))
        .await;
    let login_path = path_of(conn["login_url"].as_str().unwrap());

    // A flow begun on A finishes on B; the session is valid on C.
    let (browser_1, status) = login_across(a, b, &login_path, "alice").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    for app in [a, b, c] {
        assert_eq!(app.me(&browser_1).await.unwrap()["role"], "admin");
        assert_eq!(verify_status(app, &browser_1).await, StatusCode::OK);
    }
    // A token minted on A verifies on C.
    let token: Value = browser_1
        .post(a.url("/api/v1/me/token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    for app in [a, b, c] {
        assert_eq!(bearer_status(app, &token).await, StatusCode::OK);
    }

    // Logout on B: the token and the cookie stop everywhere. The notification crosses
    // instances within milliseconds; poll (bounded to a second) rather than race it.
    let out = b.logout(&browser_1).await;
    assert_eq!(out.status(), StatusCode::OK);
    for app in [a, c] {
        let mut refused = false;
        for _ in 0..100 {
            if bearer_status(app, &token).await == StatusCode::UNAUTHORIZED
                && verify_status(app, &browser_1).await == StatusCode::UNAUTHORIZED
            {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            refused,
            "revoked token and cookie refused on {} within a second",
            app.base
        );
    }

    // A second colleague session, cached on A and B; disconnect on C.
    let (browser_2, status) = login_across(b, a, &login_path, "alice").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    for app in [a, b] {
        assert_eq!(verify_status(app, &browser_2).await, StatusCode::OK);
    }
    let (s, body) = c.admin(Method::DELETE, "/api/v1/orgs/acme/sso", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["sessions_revoked"], 1);
    // The notification crosses instances within milliseconds; poll (bounded) and report.
    let started = Instant::now();
    for app in [a, b] {
        let mut refused = false;
        for _ in 0..100 {
            if verify_status(app, &browser_2).await == StatusCode::UNAUTHORIZED {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            refused,
            "{} still accepts a session of a disconnected org",
            app.base
        );
    }
    eprintln!(
        "disconnect on C took effect on A and B within {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "revocation took {:?}",
        started.elapsed()
    );
    for app in [a, b, c] {
        assert_eq!(
            browser()
                .get(app.url(&login_path))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::GONE
        );
    }

    // Key rotation on one instance reaches the others: a token signed with the new key verifies
    // everywhere, the JWKS of every instance lists it.
    let new_kid = c
        .access
        .rotate_signing_key("test", time::OffsetDateTime::now_utc().unix_timestamp())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for app in [a, b, c] {
        let jwks: Value = reqwest::get(app.url("/.well-known/jwks.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            jwks.to_string().contains(&new_kid),
            "{} does not publish the new key yet",
            app.base
        );
    }
}

#[tokio::test]
async fn multi_instance_200_first_logins_make_200_users() {
    let Some(server) = pg_server() else {
        return not_run("multi_instance_200_first_logins_make_200_users");
    };
    let db = fresh_pg_database(&server).await;
    let apps = Arc::new(instances(3, &db, 5).await);
    let accounts = numbered_accounts("u", 200);
    let idp = start_idp(&apps[0], accounts).await;
    apps[0].create_org("acme", &[]).await;
    let conn = apps[1].connect("acme", &idp.issuer).await;
    let login_path = Arc::new(path_of(conn["login_url"].as_str().unwrap()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (apps, login_path, next) = (apps.clone(), login_path.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= 200 {
                    break;
                }
                let (start, finish) = (&apps[i % 3], &apps[(i + 1) % 3]);
                let (_, status) = login_across(start, finish, &login_path, &format!("u{i}")).await;
                assert_eq!(status, StatusCode::SEE_OTHER, "sign-in {i}");
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let (users,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (identities,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM identities")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (members,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM memberships")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((users, identities, members), (200, 200, 200));
}

#[tokio::test]
async fn multi_instance_disconnect_racing_logins_leaves_no_session() {
    let Some(server) = pg_server() else {
        return not_run("multi_instance_disconnect_racing_logins_leaves_no_session");
    };
    let db = fresh_pg_database(&server).await;
    let apps = Arc::new(instances(3, &db, 5).await);
    let accounts = numbered_accounts("r", 40);
    let idp = start_idp(&apps[0], accounts).await;
    apps[0].create_org("acme", &[]).await;
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    // Three rounds, the disconnect landing early, midway and late among the sign-ins.
    for landed_before_disconnect in [1, 10, 25] {
        let conn = apps[0].connect("acme", &idp.issuer).await;
        let login_path = path_of(conn["login_url"].as_str().unwrap());
        // Bring 40 sign-ins to the brink: each has been to the IdP and holds its callback URL.
        let mut pending = Vec::new();
        for i in 0..40 {
            let start = &apps[i % 3];
            let b = browser();
            let first = b.get(start.url(&login_path)).send().await.unwrap();
            let back = login_at_idp(&b, &location(&first), &format!("r{i}")).await;
            pending.push((b, back.replacen(&start.public, &apps[(i + 2) % 3].base, 1)));
        }
        // Fire all callbacks at once; disconnect on another instance once some have landed.
        let mut tasks = Vec::new();
        for (b, url) in pending {
            tasks.push(tokio::spawn(async move {
                b.get(&url).send().await.unwrap().status()
            }));
        }
        for _ in 0..1000 {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
                .fetch_one(&pool)
                .await
                .unwrap();
            if n >= landed_before_disconnect {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (s, body) = apps[1]
            .admin(Method::DELETE, "/api/v1/orgs/acme/sso", None)
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::SEE_OTHER || *s == StatusCode::GONE),
            "{statuses:?}"
        );
        let (live,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(live, 0, "a session survived the disconnect");
        let ok = statuses
            .iter()
            .filter(|s| **s == StatusCode::SEE_OTHER)
            .count();
        let gone = statuses.iter().filter(|s| **s == StatusCode::GONE).count();
        eprintln!(
            "racing disconnect: {ok} sign-ins completed (revoked by it: {}), {gone} refused with 410, 0 sessions left",
            body["sessions_revoked"]
        );
    }
}

#[tokio::test]
async fn multi_instance_database_restart_gives_503_then_recovers() {
    if pg_server().is_none() {
        return not_run("multi_instance_database_restart_gives_503_then_recovers");
    }
    let Some(cluster) = PgCluster::start().await else {
        return;
    };
    let db = cluster.create_database("orgsso_restart").await;
    let apps = instances(2, &db, 1).await;
    apps[0].create_org("acme", &[]).await;
    for app in &apps {
        assert_eq!(app.status_of("/readyz").await, StatusCode::OK);
    }
    cluster.stop().await;
    for app in &apps {
        assert_eq!(
            app.status_of("/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (s, body) = app.admin(Method::GET, "/api/v1/orgs/acme", None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(
            app.status_of("/healthz").await,
            StatusCode::OK,
            "the process is up"
        );
    }
    cluster.start_again().await;
    for app in &apps {
        let mut back = false;
        for _ in 0..60 {
            if app.status_of("/readyz").await == StatusCode::OK {
                back = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(back, "{} did not recover", app.base);
        let (s, body) = app.admin(Method::GET, "/api/v1/orgs/acme", None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn multi_instance_first_start_of_two_instances_at_once() {
    let Some(server) = pg_server() else {
        return not_run("multi_instance_first_start_of_two_instances_at_once");
    };
    let db = fresh_pg_database(&server).await;
    // Both apply migrations and create the first signing key at the same moment: one wins, the
    // other waits (migration lock) or adopts the winner's key.
    let (one, two) = tokio::join!(instances(1, &db, 5), instances(1, &db, 5));
    for app in one.iter().chain(two.iter()) {
        assert_eq!(app.status_of("/readyz").await, StatusCode::OK);
    }
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let (active,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(active, 1, "exactly one signing key");
    let (migrations,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    assert_eq!(migrations, files, "each migration applied once");
    let jwks_one: Value = reqwest::get(one[0].url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_two: Value = reqwest::get(two[0].url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_one, jwks_two, "both publish the same key");
}

/// Back-channel logout on three instances: the IdP posts the logout token to one (A); the
/// session and its minted token are refused on the others within a second (NOTIFY, not a cache
/// expiry). Done 20 times, it prints the time from the IdP's logout request to refusal on the
/// slower of B and C (the figure in BENCHMARKS.md).
#[tokio::test]
async fn multi_instance_backchannel_logout_is_refused_everywhere_at_once() {
    use crate::backchannel::{backchannel_idp, mint, refused_within, sign_out_at_idp, verify};
    let Some(server) = pg_server() else {
        return not_run("multi_instance_backchannel_logout_is_refused_everywhere_at_once");
    };
    let db = fresh_pg_database(&server).await;
    let apps = instances(3, &db, 5).await;
    let (a, b, c) = (&apps[0], &apps[1], &apps[2]);
    let idp = backchannel_idp(
        a,
        json!({"alice": account("alice@example.com", "Alice", &[])}),
    )
    .await;
    a.create_org("acme", &[]).await;
    let conn = b.connect("acme", &idp.issuer).await;
    let login_path = path_of(conn["login_url"].as_str().unwrap());
    const ROUNDS: usize = 20;
    let mut times = Vec::with_capacity(ROUNDS);
    let mut after_idp = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (browser, status) = login_across(b, c, &login_path, "alice").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let token = mint(c, &browser).await;
        for app in [b, c] {
            assert_eq!(verify(app, &browser, None).await, StatusCode::OK);
            assert_eq!(verify(app, &browser, Some(&token)).await, StatusCode::OK);
        }
        // The IdP's back-channel URI is the public URL: instance A gets the logout token.
        let since = Instant::now();
        sign_out_at_idp(&idp, a, &browser).await;
        // The IdP answers the confirmation once A has answered its logout token (committed).
        let idp_done = since.elapsed();
        let on_b = refused_within(b, &browser, &token, since).await;
        let on_c = refused_within(c, &browser, &token, since).await;
        eprintln!("[backchannel] round {round}: IdP done after {idp_done:?}, refused on B after {on_b:?}, on C after {on_c:?}");
        times.push(on_b.max(on_c));
        after_idp.push(on_b.max(on_c) - idp_done);
    }
    assert_eq!(idp.stats().await["backchannel_sent"], ROUNDS as i64);
    let ms = |mut v: Vec<Duration>| {
        v.sort();
        (
            v[ROUNDS / 2].as_secs_f64() * 1000.0,
            v[ROUNDS - 1].as_secs_f64() * 1000.0,
        )
    };
    let ((median, max), (median_after, max_after)) = (ms(times), ms(after_idp));
    eprintln!(
        "BENCH backchannel logout (PostgreSQL, 3 instances, {ROUNDS} logouts): IdP logout request -> refused on both other instances: median {median:.1} ms, max {max:.1} ms; of which after the IdP's logout answer: median {median_after:.1} ms, max {max_after:.1} ms"
    );
}

/// Polls `app`'s verify endpoint with `b` (and `token`, when given) until it reports `want`
/// (a role, or `None` for a refusal); bounded to one second. Returns how long it took.
async fn role_reaches(
    app: &TestApp,
    b: &reqwest::Client,
    token: Option<&str>,
    want: Option<&str>,
    started: Instant,
) -> Duration {
    for _ in 0..200 {
        let (status, role) = crate::roles::verify_role(app, b, token).await;
        let seen = (status == StatusCode::OK).then_some(role).flatten();
        if seen.as_deref() == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{} still answers {status} {seen:?}, want {want:?}",
            app.base
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{} never showed {want:?}", app.base);
}

#[tokio::test]
async fn multi_instance_role_changes_reach_every_instance_at_once() {
    let Some(server) = pg_server() else {
        return not_run("multi_instance_role_changes_reach_every_instance_at_once");
    };
    let db = fresh_pg_database(&server).await;
    let apps = instances(3, &db, 5).await;
    let (a, b, c) = (&apps[0], &apps[1], &apps[2]);
    let idp = start_idp(
        a,
        json!({
            "dev": account("dev@example.com", "Dev", &["engineering"]),
            "carl": account("carl@example.com", "Carl", &["contractors"]),
        }),
    )
    .await;
    a.create_org("acme", &[]).await;
    let conn = a.connect("acme", &idp.issuer).await;
    a.set_rules(
        "acme",
        json!({"default_role": "viewer", "rules": [
        {"claim": "groups", "op": "contains", "value": "engineering", "role": "developer"}]}),
    )
    .await;
    let login_path = path_of(conn["login_url"].as_str().unwrap());
    let (dev, status) = login_across(a, a, &login_path, "dev").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (carl, status) = login_across(a, a, &login_path, "carl").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let carl_token = crate::roles::mint(a, &carl).await;
    // Cached on A and B.
    for app in [a, b] {
        assert_eq!(
            crate::roles::verify_role(app, &dev, None).await,
            (StatusCode::OK, Some("developer".into()))
        );
        assert_eq!(
            crate::roles::verify_role(app, &browser(), Some(&carl_token)).await,
            (StatusCode::OK, Some("viewer".into()))
        );
    }

    // A rule save on C: a developer becomes admin, the contractor is denied.
    let started = Instant::now();
    let (s, body) = c
        .admin(
            Method::PUT,
            "/api/v1/orgs/acme/sso/role-mapping",
            Some(json!({"default_role": "viewer", "rules": [
                {"claim": "groups", "op": "contains", "value": "engineering", "role": "admin"},
                {"claim": "groups", "op": "contains", "value": "contractors", "role": "deny"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["members_changed"], 2, "{body}");
    let saved = started.elapsed();
    let mut seen = Vec::new();
    for app in [a, b] {
        seen.push(role_reaches(app, &dev, None, Some("admin"), started).await);
        seen.push(role_reaches(app, &browser(), Some(&carl_token), None, started).await);
    }
    eprintln!(
        "rule save on C ({saved:?} for the PUT) reached A and B's verify (session cookie and minted token) within {:?} of the request",
        seen.iter().max().unwrap()
    );

    // A role change through sign-in: the developer's groups change at the IdP, they sign in
    // again in another browser on B; their first session (cached on A and C) shows it.
    for app in [a, c] {
        assert_eq!(
            crate::roles::verify_role(app, &dev, None).await,
            (StatusCode::OK, Some("admin".into()))
        );
    }
    idp.set_account("dev", account("dev@example.com", "Dev", &["support"]))
        .await;
    let (_again, status) = login_across(b, b, &login_path, "dev").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let started = Instant::now();
    let mut seen = Vec::new();
    for app in [a, c] {
        seen.push(role_reaches(app, &dev, None, Some("viewer"), started).await);
    }
    eprintln!(
        "a role change through sign-in on B reached A and C's verify within {:?} of the sign-in",
        seen.iter().max().unwrap()
    );
}

/// An org created on one instance is known at once on another that had just remembered its
/// slug as unknown (`OrgCreated` by NOTIFY), well before the few seconds a miss is believed.
#[tokio::test]
async fn multi_instance_a_new_org_is_known_everywhere_at_once() {
    let Some(server) = pg_server() else {
        return not_run("multi_instance_a_new_org_is_known_everywhere_at_once");
    };
    let db = fresh_pg_database(&server).await;
    let apps = instances(2, &db, 5).await;
    let (a, b) = (&apps[0], &apps[1]);
    for _ in 0..2 {
        assert_eq!(
            b.status_of("/auth/newco/verify").await,
            StatusCode::NOT_FOUND
        );
    }
    a.create_org("newco", &[]).await;
    let started = Instant::now();
    for _ in 0..200 {
        if b.status_of("/auth/newco/verify").await == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the other instance still says the org does not exist"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        b.status_of("/auth/newco/verify").await,
        StatusCode::UNAUTHORIZED
    );
}
