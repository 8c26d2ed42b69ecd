//! Memory of the verify path's caches under many distinct tokens, against a release
//! `orgsso serve` process (SQLite), with the server's resident memory read from
//! `/proc/<pid>/status` after each phase:
//!
//! 1. 50,000 distinct valid 1.1 KB HS256 tokens (25 claims), each sent once;
//! 2. 10,000 distinct 6 KB tokens (the same claims and many groups), each sent once;
//! 3. a repeating working set larger than the old verdict cap (`WORKING_SET`, default 120,000
//!    distinct 1.1 KB tokens) sent three times in the same order: the later passes show how
//!    much of it the verdict cache kept.
//!
//! The verdict cache's hit and miss counts come from its debug line (`verdict cache`, every
//! 10,000 lookups, target `orgsso::access::verdicts`): the phases are multiples of 10,000
//! requests, so each phase's counts are exact.
//!
//! Run: `cargo bench --bench verify_memory` (WORKING_SET=n, CONCURRENCY=n, default 32;
//! ORGSSO_BIN=path runs another build of the server; ORGSSO_CACHE__MEMORY_MB passes through to
//! it). Traffic stays on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ADMIN: &str = "bench-admin-token";
const HS_SECRET: &str = "bench-hs256-secret-of-at-least-32-bytes";

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Enterprise-sized claims: 25 of them, about 1.1 KB once signed; `groups` many group names
/// on top make the 6 KB tokens.
fn claims(i: usize, exp: i64, groups: usize) -> Value {
    let mut c = json!({
        "sub": format!("00u{i:012}-employee"),
        "email": format!("employee.number.{i}@enterprise.example.com"),
        "name": format!("Employee Number {i}"),
        "given_name": "Employee",
        "family_name": format!("Number {i}"),
        "preferred_username": format!("employee{i}"),
        "role": "developer",
        "exp": exp,
        "iat": exp - 4 * 3600,
        "auth_time": exp - 4 * 3600,
        "jti": format!("jti-{i:016}-{exp}"),
        "locale": "en-GB",
        "zoneinfo": "Europe/London",
        "department": "Platform Engineering",
        "cost_center": "CC-4711-0815",
        "employee_id": format!("E{i:09}"),
        "title": "Senior Software Engineer",
        "office": "London, 1 Example Square, Floor 7",
        "manager": "00u000000000042-employee",
        "phone_number": "+44 20 7946 0000",
        "tenant": "enterprise-example-production-tenant",
        "client_id": "0oa1b2c3d4e5f6g7h8i9-enterprise-gateway",
        "scope": "openid profile email offline_access api.read api.write",
        "amr": ["pwd", "mfa", "hwk"],
        "acr": "urn:enterprise:loa:substantial",
    });
    if groups > 0 {
        c["groups"] = (0..groups)
            .map(|g| Value::String(format!("enterprise-group-{g:04}-members")))
            .collect();
    }
    c
}

fn tokens(from: usize, n: usize, exp: i64, groups: usize) -> Vec<String> {
    let key = EncodingKey::from_secret(HS_SECRET.as_bytes());
    let header = Header::new(Algorithm::HS256);
    (from..from + n)
        .map(|i| jsonwebtoken::encode(&header, &claims(i, exp, groups), &key).unwrap())
        .collect()
}

/// Sends every token once through verify, `concurrency` at a time; returns the seconds taken
/// and the number of answers that were not 200.
async fn send_all(
    client: &reqwest::Client,
    url: &str,
    tokens: Arc<Vec<String>>,
    concurrency: usize,
) -> (f64, usize) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (client, url, tokens) = (client.clone(), url.to_owned(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let mut bad = 0;
            for token in tokens.iter().skip(t).step_by(concurrency) {
                let why = match client.get(&url).bearer_auth(token).send().await {
                    Ok(r) if r.status() == 200 => continue,
                    Ok(r) => format!("{} {:?}", r.status(), r.headers().get("www-authenticate")),
                    Err(e) => e.to_string(),
                };
                if bad == 0 && t == 0 {
                    eprintln!("first refusal: {why}");
                }
                bad += 1;
            }
            bad
        }));
    }
    let mut bad = 0;
    for t in tasks {
        bad += t.await.unwrap();
    }
    (started.elapsed().as_secs_f64(), bad)
}

/// The verdict cache's last debug line, colour escapes dropped.
fn stats_line(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| l.contains("verdict cache"))?;
    // Colours off by NO_COLOR; escapes dropped anyway.
    Some(
        line.split('\x1b')
            .enumerate()
            .map(|(i, part)| match part.split_once('m') {
                Some((_, rest)) if i > 0 => rest,
                _ => part,
            })
            .collect(),
    )
}

/// A `name=value` number of the verdict cache's last debug line.
fn stat(log: &std::path::Path, name: &str) -> Option<u64> {
    stats_line(log)?
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// The verdict cache's (hits, misses) from its last debug line, if any.
fn counts(log: &std::path::Path) -> Option<(u64, u64)> {
    Some((stat(log, "hits")?, stat(log, "misses")?))
}

#[tokio::main]
async fn main() {
    let working_set: usize = std::env::var("WORKING_SET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120_000);
    let concurrency: usize = std::env::var("CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    // ORGSSO_BIN: another build of the server (a before/after comparison in one session).
    let bin = std::env::var("ORGSSO_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_orgsso").into());
    let mut server = tokio::process::Command::new(bin)
        .arg("serve")
        .env("ORGSSO_LISTEN", format!("127.0.0.1:{port}"))
        .env("ORGSSO_PUBLIC_URL", &base)
        .env(
            "ORGSSO_DATABASE_URL",
            format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
        )
        .env("ORGSSO_DATA_DIR", dir.path().join("data"))
        .env("ORGSSO_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "warn,orgsso::access::verdicts=debug")
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("orgsso starts");
    let pid = server.id().unwrap();
    let api = reqwest::Client::new();
    for _ in 0..100 {
        if api.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin = |r: reqwest::RequestBuilder| r.bearer_auth(ADMIN);
    let r = admin(api.post(format!("{base}/api/v1/orgs")))
        .json(&json!({"slug": "acme", "name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "org created");
    let r = admin(api.post(format!("{base}/api/v1/orgs/acme/jwt-secrets")))
        .json(&json!({"name": "hs", "type": "hs256", "secret": HS_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "secret added");
    let verify = format!("{base}/auth/acme/verify");

    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 4 * 3600;
    let small = Arc::new(tokens(0, 50_000, exp, 0));
    let large = Arc::new(tokens(1_000_000, 10_000, exp, 115));
    let set = Arc::new(tokens(2_000_000, working_set, exp, 0));
    let avg = |t: &[String]| t.iter().map(String::len).sum::<usize>() / t.len().max(1);
    println!(
        "token sizes: {} B (25 claims), {} B (with 115 groups); working set {} tokens; {} concurrent",
        avg(&small),
        avg(&large),
        set.len(),
        concurrency
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("\n| phase | requests/s | non-200 | verdict hits | misses | VmRSS MiB | VmHWM MiB |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| idle | | | | | {} | {} |",
        mib(status_kib(pid, "VmRSS:")),
        mib(status_kib(pid, "VmHWM:"))
    );
    let mut last = (0, 0);
    let phases: [(&str, &Arc<Vec<String>>); 5] = [
        ("50,000 distinct 1.1 KB tokens", &small),
        ("10,000 distinct 6 KB tokens", &large),
        ("working set, pass 1 (all new)", &set),
        ("working set, pass 2 (same tokens)", &set),
        ("working set, pass 3 (same tokens)", &set),
    ];
    for (name, toks) in phases {
        let (secs, bad) = send_all(&api, &verify, (*toks).clone(), concurrency).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = counts(&log).unwrap_or(last);
        let (hits, misses) = (now.0 - last.0, now.1 - last.1);
        last = now;
        println!(
            "| {name} | {:.0} | {bad} | {hits} | {misses} | {} | {} |",
            toks.len() as f64 / secs,
            mib(status_kib(pid, "VmRSS:")),
            mib(status_kib(pid, "VmHWM:"))
        );
    }
    let (hits, misses) = last;
    println!("\ntotal verdict lookups: {hits} hits, {misses} misses");
    // Only builds that report them (after the byte budgets came).
    if let (Some(entries), Some(bytes)) = (stat(&log, "entries"), stat(&log, "bytes")) {
        println!(
            "verdict cache at the end: {entries} entries, {:.1} MiB charged",
            bytes as f64 / 1048576.0
        );
    }
    server.kill().await.ok();
}
