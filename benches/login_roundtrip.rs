//! Login round trip on this machine: orgsso + the real test IdP (npm `oidc-provider`) on
//! 127.0.0.1, SQLite file. Measures, over sequential sign-ins,
//!
//! - the whole browser round trip: login URL → IdP authorize + login form → callback → session;
//! - orgsso's callback alone: flow lookup, code exchange, ID-token verification, rules,
//!   enrolment and session write.
//!
//! - orgsso's own share of the callback: the callback minus the time orgsso spent waiting for
//!   the IdP's token endpoint and userinfo, as orgsso itself measures and logs it at debug
//!   (`idp_us`, durations only); this bench runs orgsso in-process and reads those events with a
//!   tracing layer. The IdP's JWKS is fetched once, at the first sign-in, and counts as
//!   orgsso's there (the median does not see it);
//! - the SQL statements per callback: sqlx's statement events (`sqlx::query`, debug) counted
//!   the same way (on PostgreSQL `BEGIN`/`COMMIT` are statements; on SQLite sqlx runs them
//!   without a statement event), in further sign-ins after the timed ones: while those events
//!   are on, sqlx formats every statement for the log (`sqlformat`), work a production log
//!   filter never asks for, so the timed rounds run with them off. The counted rounds' times
//!   are printed too, to show what the logging costs.
//!
//! On SQLite and, when `ORGSSO_TEST_PG_URL` is set, on a fresh PostgreSQL database.
//!
//! Run: `cargo bench --bench login_roundtrip` (ROUNDS=n timed sign-ins, default 200;
//! COUNT_ROUNDS=n counted ones, default 20; SHOW_STATEMENTS=1 also prints the statements of the
//! last callback, to see which ones run; PIN=a,b runs orgsso and the client on core a and the
//! IdP on core b; LOGGED_FLOWS=1 turns PostgreSQL's `login_flows` back
//! into a logged table, as before migration 0012, for a before/after in one build).

#[path = "../tests/api/idp.rs"]
mod idp;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Microseconds orgsso spent waiting for the IdP, and SQL statements run, since the last reset.
static IDP_US: AtomicU64 = AtomicU64::new(0);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
/// Statements are counted only while a callback is in flight.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// sqlx's statement events are enabled only in the counted rounds.
static STATEMENT_EVENTS: AtomicBool = AtomicBool::new(false);
/// The statements' summaries during the callback being measured (SHOW_STATEMENTS=1).
static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

struct Meter;

struct IdpUs(Option<u64>);

struct Summary(Option<String>);

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        // The whole statement when sqlx gives it, else its short summary (the whole of it).
        let text = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match field.name() {
            "db.statement" if !text.is_empty() => self.0 = Some(text.chars().take(150).collect()),
            "summary" if self.0.is_none() => self.0 = Some(text),
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl tracing::field::Visit for IdpUs {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "idp_us" {
            self.0 = Some(value);
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Meter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let target = event.metadata().target();
        if target == "sqlx::query" {
            if COUNTING.load(Ordering::Relaxed) {
                STATEMENTS.fetch_add(1, Ordering::Relaxed);
                let mut summary = Summary(None);
                event.record(&mut summary);
                SEEN.lock().unwrap().extend(summary.0);
            }
        } else if target.starts_with("orgsso::sso") {
            let mut v = IdpUs(None);
            event.record(&mut v);
            if let Some(us) = v.0 {
                IDP_US.fetch_add(us, Ordering::Relaxed);
            }
        }
    }
}

/// A new, empty database on the PostgreSQL server at `server`.
async fn fresh_pg_database(server: &str) -> String {
    use sqlx::ConnectOptions;
    let name = format!(
        "orgsso_bench_{}",
        orgsso::crypto::random_token(9)
            .to_lowercase()
            .replace(['-', '_'], "x")
    );
    let opts: sqlx::postgres::PgConnectOptions = server.parse().expect("a postgres URL");
    let mut conn = opts.connect().await.expect("PostgreSQL answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create the bench database");
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// `PIN=a,b`: the core this process runs on and the IdP's.
fn pins() -> Option<(String, String)> {
    let v = std::env::var("PIN").ok()?;
    let (a, b) = v.split_once(',')?;
    Some((a.trim().to_owned(), b.trim().to_owned()))
}

/// Pins every thread of process `pid` to `core`.
fn pin(core: &str, pid: u32) {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", core, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset pins process {pid} to core {core}");
}

fn main() {
    // Pinned before the runtime starts, so tokio counts the one core and starts one worker,
    // as under `taskset -c` (the IdP, started later, is moved to its own core then).
    if let Some((ours, _)) = pins() {
        pin(&ours, std::process::id());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    use tracing::Level;
    use tracing_subscriber::filter::DynFilterFn;
    use tracing_subscriber::prelude::*;
    // Only the two kinds of event the meter reads are enabled, the statements only in the
    // counted rounds (asked again at each statement: `Interest::sometimes`).
    let filter = DynFilterFn::new(|meta, _| match meta.target() {
        "sqlx::query" => STATEMENT_EVENTS.load(Ordering::Relaxed) && *meta.level() <= Level::DEBUG,
        t if t.starts_with("orgsso::sso") => *meta.level() <= Level::DEBUG,
        _ => *meta.level() <= Level::WARN,
    })
    .with_callsite_filter(|meta| match meta.target() {
        "sqlx::query" => tracing::subscriber::Interest::sometimes(),
        t if t.starts_with("orgsso::sso") && *meta.level() <= Level::DEBUG => {
            tracing::subscriber::Interest::always()
        }
        _ if *meta.level() <= Level::WARN => tracing::subscriber::Interest::always(),
        _ => tracing::subscriber::Interest::never(),
    })
    // Nothing above debug: `log` records of the dependencies stay off as before.
    .with_max_level_hint(tracing_subscriber::filter::LevelFilter::DEBUG);
    tracing_subscriber::registry()
        .with(Meter.with_filter(filter))
        .init();
    let count = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(default)
    };
    let rounds = (count("ROUNDS", 200), count("COUNT_ROUNDS", 20).max(1));
    let dir = tempfile::tempdir().unwrap();
    let mut backends = vec![(
        "SQLite",
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
    )];
    if let Some(pg) = std::env::var("ORGSSO_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        backends.push(("PostgreSQL", fresh_pg_database(&pg).await));
    }
    for (backend, url) in backends {
        run(backend, url, rounds, dir.path()).await;
    }
}

async fn run(backend: &str, url: String, rounds: (usize, usize), dir: &std::path::Path) {
    let (timed, counted) = rounds;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = Settings::defaults();
    settings.public_url = format!("http://{addr}").parse().unwrap();
    settings.database_url = Secret::new(url.clone());
    settings.data_dir = dir.join("data");
    settings.admin_token = Some(Secret::new("bench-admin-token"));
    // Every sign-in comes from 127.0.0.1: a load to measure, not a flood to refuse.
    settings.throttle.sign_in_starts_per_minute = 1_000_000;
    let app = Application::build_with_listener(settings, listener)
        .await
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    let base = format!("http://{addr}");

    let mut accounts = serde_json::Map::new();
    for i in 0..timed + counted {
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
    // PIN=a,b: this process (orgsso and the bench's client) on core a (see `main`), the IdP
    // on core b, so that the IdP's own work after it answers does not land in orgsso's share.
    if let Some((ours, idp_core)) = pins() {
        pin(&idp_core, idp.pid().expect("the IdP runs"));
        println!("(PIN: orgsso and the client on core {ours}, the IdP on core {idp_core}; PostgreSQL unpinned)");
    }
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
    if backend == "PostgreSQL" && std::env::var("LOGGED_FLOWS").as_deref() == Ok("1") {
        use sqlx::ConnectOptions;
        let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        let mut db = opts.connect().await.unwrap();
        sqlx::query("ALTER TABLE login_flows SET LOGGED")
            .execute(&mut db)
            .await
            .unwrap();
        println!("(LOGGED_FLOWS: login_flows is a logged table in this run, as before 0012)");
    }

    let (mut whole, mut callback, mut own, mut statements) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut counted_callback, mut counted_own) = (Vec::new(), Vec::new());
    for i in 0..timed + counted {
        let counting = i >= timed;
        STATEMENT_EVENTS.store(counting, Ordering::Relaxed);
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
        IDP_US.store(0, Ordering::Relaxed);
        STATEMENTS.store(0, Ordering::Relaxed);
        SEEN.lock().unwrap().clear();
        COUNTING.store(true, Ordering::Relaxed);
        let t1 = Instant::now();
        let done = browser.get(&back).send().await.unwrap();
        assert_eq!(done.status(), 303, "sign-in {i} failed");
        let t2 = Instant::now();
        COUNTING.store(false, Ordering::Relaxed);
        let idp = Duration::from_micros(IDP_US.load(Ordering::Relaxed));
        if counting {
            counted_callback.push(t2 - t1);
            counted_own.push((t2 - t1).saturating_sub(idp));
            statements.push(STATEMENTS.load(Ordering::Relaxed));
        } else {
            whole.push(t2 - t0);
            callback.push(t2 - t1);
            own.push((t2 - t1).saturating_sub(idp));
        }
    }
    STATEMENT_EVENTS.store(false, Ordering::Relaxed);
    if std::env::var_os("SHOW_STATEMENTS").is_some() {
        println!("statements of the last callback ({backend}):");
        for s in SEEN.lock().unwrap().iter() {
            println!("  {s}");
        }
    }
    statements.sort();
    println!("login round trip, {timed} sequential first sign-ins, orgsso + oidc-provider on 127.0.0.1, {backend}");
    if timed > 0 {
        report("whole browser round trip", whole);
        report("orgsso callback alone", callback);
        report("callback minus IdP calls", own);
    }
    println!("then {counted} more with sqlx's statement events on (each statement formatted for the log):");
    report("orgsso callback alone", counted_callback);
    report("callback minus IdP calls", counted_own);
    println!(
        "SQL statements per callback: min {} median {} max {}\n",
        statements[0],
        statements[statements.len() / 2],
        statements[statements.len() - 1]
    );
}
