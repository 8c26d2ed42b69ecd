//! A flood of login-URL requests (issue 14 item 4): `REQUESTS` (default 100,000) `GET
//! /sso/{login_id}` from one address (`wrk` on 127.0.0.1), against a release `orgsso serve`
//! process on a SQLite file, with the real test IdP (npm `oidc-provider`). Reports the
//! `login_flows` rows and database bytes (file + WAL) the flood added, and how long a real
//! colleague's sign-ins (each from its own address, 127.0.2.x, sequential, fresh browser each) take before and
//! during the flood.
//!
//! Run: `cargo bench --bench flood`. `ORGSSO_BIN=path` measures another build of orgsso
//! (e.g. the code before the throttles, for the before/after figures in BENCHMARKS.md);
//! `REQUESTS=n`, `CONNECTIONS=n` (default 16). Traffic stays on 127.0.0.1.

#[path = "../tests/api/idp.rs"]
mod idp;

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

const ADMIN: &str = "bench-admin-token";
/// Colleague sign-ins measured before the flood.
const QUIET_ROUNDS: usize = 20;
/// Colleague sign-ins at most during the flood (they stop when it ends).
const MAX_FLOOD_ROUNDS: usize = 5_000;
/// Accounts at the IdP (its configuration travels on its command line: keep it short); the
/// colleagues take them in turn, each sign-in in a fresh browser.
const ACCOUNTS: usize = 50;

/// Stops after `FLOOD_N` answers (one thread, so one counter) and says so in the file
/// `FLOOD_DONE`: wrk itself would wait out its `-d` before reporting, so the bench stops it
/// (SIGINT: wrk reports and exits) when the file appears.
const LUA: &str = r#"
local n, limit, said = 0, tonumber(os.getenv("FLOOD_N")), false
function response(status, headers, body)
  n = n + 1
  if n >= limit and not said then
    said = true
    local f = io.open(os.getenv("FLOOD_DONE"), "w")
    f:write("done")
    f:close()
    wrk.thread:stop()
  end
end
"#;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn db_bytes(path: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len(path) + len(&path.with_extension("db-wal"))
}

async fn flow_rows(path: &Path) -> i64 {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM login_flows")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    if samples.is_empty() {
        println!("{name:<34} none");
        return;
    }
    samples.sort();
    let pick = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<34} n={:<4} mean={:>8.2?} p50={:>8.2?} p90={:>8.2?} max={:>8.2?}",
        samples.len(),
        mean,
        pick(0.5),
        pick(0.9),
        samples.last().unwrap()
    );
}

/// Colleague `i`'s sign-in through the real IdP, from an address of their own (127.0.2.1,
/// 127.0.2.2, …: colleagues are different people); its duration.
async fn colleague(login_url: &str, i: usize) -> Duration {
    let account = format!("user{}", i % ACCOUNTS);
    let from = IpAddr::from([127, 0, 2 + (i / 250) as u8, 1 + (i % 250) as u8]);
    let browser = reqwest::Client::builder()
        .local_address(from)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let start = browser.get(login_url).send().await.unwrap();
    assert_eq!(start.status(), 303, "the colleague's start was refused");
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    let back = idp::login_at_idp(&browser, &authorize, &account).await;
    let done = browser.get(&back).send().await.unwrap();
    assert_eq!(done.status(), 303, "the colleague's sign-in failed");
    t0.elapsed()
}

#[tokio::main]
async fn main() {
    let requests = env_or("REQUESTS", 100_000);
    let connections = env_or("CONNECTIONS", 16);
    let bin = std::env::var("ORGSSO_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_orgsso").into());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut server = tokio::process::Command::new(&bin)
        .arg("serve")
        .env("ORGSSO_LISTEN", format!("127.0.0.1:{port}"))
        .env("ORGSSO_PUBLIC_URL", &base)
        .env(
            "ORGSSO_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        )
        .env("ORGSSO_DATA_DIR", dir.path().join("data"))
        .env("ORGSSO_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("orgsso starts");
    let api = reqwest::Client::new();
    for _ in 0..200 {
        if api.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rounds = QUIET_ROUNDS + MAX_FLOOD_ROUNDS;
    let mut accounts = serde_json::Map::new();
    for i in 0..ACCOUNTS {
        accounts.insert(
            format!("user{i}"),
            json!({"email": format!("user{i}@example.com"), "name": "U", "groups": []}),
        );
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
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(ADMIN);
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
    let login_url = conn["login_url"].as_str().unwrap().to_owned();

    let mut quiet = Vec::new();
    for i in 0..QUIET_ROUNDS {
        quiet.push(colleague(&login_url, i).await);
    }
    let (rows_before, bytes_before) = (flow_rows(&db).await, db_bytes(&db));

    let script = dir.path().join("flood.lua");
    std::fs::write(&script, LUA).unwrap();
    let marker = dir.path().join("flood.done");
    let t0 = Instant::now();
    let mut wrk = tokio::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            "-d600s",
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(&login_url)
        .env("FLOOD_N", requests.to_string())
        .env("FLOOD_DONE", &marker)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("wrk runs (apt-get install wrk)");
    let mut during = Vec::new();
    let mut i = QUIET_ROUNDS;
    while i < rounds && !marker.exists() {
        if let Ok(Some(_)) = wrk.try_wait() {
            break;
        }
        during.push(colleague(&login_url, i).await);
        i += 1;
    }
    // The last sign-in may have ended after the flood: the flood's end is the marker's.
    for _ in 0..60_000 {
        if marker.exists() || wrk.try_wait().is_ok_and(|s| s.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flood_time = t0.elapsed();
    if let Some(pid) = wrk.id() {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
    }
    let out = wrk.wait_with_output().await.unwrap();
    let wrk_text = String::from_utf8_lossy(&out.stdout);
    let refused = wrk_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "0".into());
    let sent = wrk_text
        .lines()
        .find(|l| l.contains("requests in"))
        .unwrap_or("")
        .trim()
        .to_owned();
    // The colleagues' own flows are taken at their callbacks: what is left is the flood's.
    let (rows_after, bytes_after) = (flow_rows(&db).await, db_bytes(&db));

    println!("flood of the login URL from 127.0.0.1 ({bin}), SQLite, {connections} connections");
    println!(
        "wrk: {sent}; refused (non-2xx/3xx, i.e. 429): {refused}; {requests} answers in {flood_time:.1?} ({:.0} req/s)",
        requests as f64 / flood_time.as_secs_f64()
    );
    println!(
        "login_flows rows added: {}; database bytes added (file + WAL): {} ({:.1} MiB)",
        rows_after - rows_before,
        bytes_after.saturating_sub(bytes_before),
        bytes_after.saturating_sub(bytes_before) as f64 / 1_048_576.0
    );
    summary("colleague sign-in, quiet", quiet);
    summary("colleague sign-in, during flood", during);
    server.kill().await.ok();
}
