//! The "new-token RS256" comparison of `benches/verify.rs`: every request carries an RS256 token
//! the server has never seen (distinct `sub`/`jti`), so no verdict cache can answer and each
//! request costs one signature check. The same token stream goes, one after the other in one
//! run, to a Node `jose` server (`benches/node-jose`, single process and optionally
//! node:cluster workers), to a baseline orgsso binary if one is given, and to the orgsso under
//! test. All on 127.0.0.1.
//!
//! Settings (environment): NEW_TOKENS (tokens generated, default 200000), NEW_TOKEN_SECS (wrk
//! duration per server, default 5), NODE_WORKERS (also run Node with that many cluster
//! workers, default 2; 1 = only the single process), ORGSSO_BASELINE_BIN (an orgsso binary
//! built from older code, e.g. before a change: started and measured in the same run).
//!
//! Tokens are signed once and kept in `CARGO_TARGET_TMPDIR` for later runs while they have
//! more than two hours left (each server process starts with empty caches, so a token file
//! serves many runs).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

pub const RSA_PUBLIC_PEM_FILE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rsa_a.pub.pem");
const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/node-jose");
const LUA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/new_tokens.lua");
const WRK_THREADS: u32 = 2;
const TOKEN_LIFETIME_SECS: i64 = 24 * 3600;

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measured server.
pub struct NewTokenRun {
    pub name: String,
    pub rps: f64,
    pub p50: String,
    pub p99: String,
    pub requests: u64,
    pub non_2xx: u64,
    pub exhausted: bool,
}

/// `count` distinct RS256 tokens signed with `private_pem`, one a line in a file, reused from
/// an earlier run when it is still valid for two hours.
pub fn token_file(private_pem: &str, count: usize) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("new-rs256-tokens-{count}.txt"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expires_at = |p: &Path| -> Option<i64> {
        std::fs::read_to_string(p.with_extension("exp"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if expires_at(&path).is_some_and(|exp| exp > now + 2 * 3600) && path.exists() {
        return path;
    }
    let started = std::time::Instant::now();
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("bench key");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let exp = now + TOKEN_LIFETIME_SECS;
    let chunks: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let key = &key;
                scope.spawn(move || {
                    let mut out = String::new();
                    for i in (w..count).step_by(workers) {
                        let claims = json!({
                            "sub": format!("user-{i}"),
                            "jti": format!("{now}-{i}"),
                            "email": format!("user-{i}@example.com"),
                            "role": "developer",
                            "iat": now,
                            "exp": exp,
                        });
                        let token =
                            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
                                .expect("signs");
                        out.push_str(&token);
                        out.push('\n');
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    std::fs::write(&path, chunks.concat()).expect("token file written");
    std::fs::write(path.with_extension("exp"), exp.to_string()).expect("exp written");
    eprintln!(
        "signed {count} RS256 tokens in {:.1} s ({workers} threads)",
        started.elapsed().as_secs_f64()
    );
    path
}

/// wrk over the token stream against `url`.
pub fn wrk_stream(name: String, url: &str, tokens: &Path, secs: u64, conns: u32) -> NewTokenRun {
    let out = std::process::Command::new("wrk")
        .args([
            format!("-t{WRK_THREADS}"),
            format!("-c{conns}"),
            format!("-d{secs}s"),
            "--latency".to_owned(),
            "-s".to_owned(),
            LUA.to_owned(),
            url.to_owned(),
            "--".to_owned(),
            tokens.display().to_string(),
            WRK_THREADS.to_string(),
        ])
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str, nth: usize| -> String {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(nth))
            .unwrap_or("?")
            .to_owned()
    };
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    NewTokenRun {
        name,
        rps: field("Requests/sec:", 1).parse().unwrap_or(0.0),
        p50: field("50%", 1),
        p99: field("99%", 1),
        requests,
        non_2xx,
        exhausted: field("token stream wraps:", 3) != "0",
    }
}

/// Installs the Node server's packages (`npm ci`) when they are missing.
pub fn ensure_node_packages() {
    if Path::new(NODE_DIR).join("node_modules/jose").exists() {
        return;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(NODE_DIR)
        .status()
        .expect("npm runs");
    assert!(status.success(), "npm ci in benches/node-jose failed");
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts the Node `jose` server with `workers` processes; answers `(child, verify URL)` once
/// it answers.
pub async fn start_node(workers: u32) -> (tokio::process::Child, String) {
    let port = free_port();
    let child = tokio::process::Command::new("node")
        .arg("server.mjs")
        .arg(port.to_string())
        .arg(RSA_PUBLIC_PEM_FILE)
        .arg(workers.to_string())
        .current_dir(NODE_DIR)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let url = format!("http://127.0.0.1:{port}/verify");
    let api = reqwest::Client::new();
    for _ in 0..100 {
        if api.get(&url).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, url)
}

/// Asserts that `url` accepts `good` and refuses `forged` before any load is measured.
pub async fn check_answers(url: &str, good: &str, forged: &str) {
    let api = reqwest::Client::new();
    let status = |t: &str| {
        let r = api.get(url).bearer_auth(t);
        async move { r.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(status(good).await, 200, "{url} accepts a good token");
    assert_eq!(status(forged).await, 401, "{url} refuses a forged token");
}

/// Prints the comparison table; ratios are against the first (single-process Node) run.
pub fn report(runs: &[NewTokenRun], secs: u64, conns: u32, count: usize) {
    println!(
        "\nnew-token RS256: wrk -t{WRK_THREADS} -c{conns} -d{secs}s -s benches/new_tokens.lua, \
         {count} distinct tokens, each sent at most once per server\n"
    );
    println!("| server | requests/s | vs Node (1 process) | p50 | p99 | requests | non-2xx |");
    println!("|---|---|---|---|---|---|---|");
    let node = runs.first().map_or(0.0, |r| r.rps);
    for r in runs {
        println!(
            "| {} | {:.0} | {:.2}× | {} | {} | {} | {}{} |",
            r.name,
            r.rps,
            r.rps / node,
            r.p50,
            r.p99,
            r.requests,
            r.non_2xx,
            if r.exhausted {
                " (token stream ran out: raise NEW_TOKENS)"
            } else {
                ""
            }
        );
    }
}
