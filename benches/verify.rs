//! Load on the verify endpoint, the hot path of every protected request, against a release
//! `orgsso serve` process with a real HTTP load generator (`wrk`, Debian's package):
//! `/healthz` (the ceiling of the HTTP stack), a session cookie, an RS256 bearer token, an
//! HS256 bearer token, an unknown session cookie (401), an unknown org slug (404) and one forged
//! RS256 token (the org's rs256 secret, a random signature; 401) sent over and over, in one
//! run on the same machine. Reports requests/s, p50/p99 latency and the server's resident
//! memory idle and at peak.
//!
//! Then the new-token RS256 comparison against a Node `jose` server (see
//! `support/new_tokens.rs`): every request carries a token never seen before.
//!
//! Run: `cargo bench --bench verify` (DURATION=secs per scenario, default 10; CONNECTIONS=n,
//! default 64; ONLY=new-tokens runs only the new-token comparison; its own settings are in
//! `support/new_tokens.rs`). Traffic stays on 127.0.0.1.
//!
//! The HTTP ceiling (issue 12 item 5): `PIN=0,1` runs the server on core 0 and wrk (one thread)
//! on core 1, adds nginx (`/usr/sbin/nginx`, one worker, pinned to the server's core, answering
//! `return 200`) and prints `/healthz` vs nginx and verify vs `/healthz`. `ONLY_CEILING=1` skips
//! the negative-answer scenarios; `ORGSSO_BIN=path` measures another build of orgsso (an
//! unchanged one, for a before figure); `ALTERNATE=n` adds n interleaved rounds of the ceiling
//! scenarios with per-round ratios and medians (see `ceiling_rounds`). Under `taskset -c 0`
//! tokio starts one worker (it counts the CPUs the process may use); `TOKIO_WORKER_THREADS=n`
//! is passed through to try others.

#[path = "../tests/api/idp.rs"]
mod idp;
#[path = "support/new_tokens.rs"]
mod new_tokens;

use std::process::Stdio;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ADMIN: &str = "bench-admin-token";
const HS_SECRET: &str = "bench-hs256-secret-of-at-least-32-bytes";
const RSA_PEM: &str = include_str!("../tests/fixtures/rsa_a.pem");

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Run {
    name: &'static str,
    rps: f64,
    p50: String,
    p99: String,
    non_2xx: u64,
}

/// `PIN=server,load`: the cores the server (and nginx) and the load generator run on.
fn pins() -> Option<(String, String)> {
    let v = std::env::var("PIN").ok()?;
    let (a, b) = v.split_once(',')?;
    Some((a.trim().to_owned(), b.trim().to_owned()))
}

/// nginx answering `return 200` on 127.0.0.1:`port`: the ceiling of an HTTP server here.
fn start_nginx(dir: &std::path::Path, port: u16, core: Option<&str>) -> std::process::Child {
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off;\n client_body_temp_path {d}/cb; proxy_temp_path {d}/px; fastcgi_temp_path {d}/fc; uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\"; }} }} }}\n"
        ),
    )
    .unwrap();
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = std::process::Command::new("taskset");
            cmd.args(["-c", c, "/usr/sbin/nginx"]);
            cmd
        }
        None => std::process::Command::new("/usr/sbin/nginx"),
    };
    cmd.arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts (apt-get install nginx-light)")
}

/// Stops nginx: SIGTERM to the master, which stops its worker and waits for it. `Child::kill`
/// (SIGKILL) left the worker running after the bench, pinned to the server's core.
fn stop_nginx(mut nginx: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &nginx.id().to_string()])
        .status();
    nginx.wait().ok();
}

fn wrk(name: &'static str, url: &str, header: Option<String>, secs: u64, conns: u32) -> Run {
    let pinned = pins();
    let mut cmd = match &pinned {
        Some((_, load)) => {
            let mut cmd = std::process::Command::new("taskset");
            cmd.args(["-c", load, "wrk", "-t1"]);
            cmd
        }
        None => {
            let mut cmd = std::process::Command::new("wrk");
            cmd.arg("-t2");
            cmd
        }
    };
    cmd.args([&format!("-c{conns}"), &format!("-d{secs}s"), "--latency"]);
    if let Some(h) = header {
        cmd.args(["-H", &h]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| -> String {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Run {
        name,
        rps: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
        non_2xx,
    }
}

/// `ALTERNATE=n`: n rounds of nginx, `/healthz` and the three cached verify scenarios, one
/// after the other in each round, so that a noisy neighbour's minutes fall on every scenario
/// alike; prints each round's ratios and their medians.
fn ceiling_rounds(
    rounds: usize,
    scenarios: &[(&'static str, String, Option<String>)],
    secs: u64,
    conns: u32,
) {
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    println!("\nALTERNATE={rounds}: requests/s per round; /healthz as % of nginx, verify as % of /healthz\n");
    println!("| round | nginx | /healthz | cookie | RS256 | HS256 | /healthz vs nginx | cookie | RS256 | HS256 |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for round in 1..=rounds {
        let rps: Vec<f64> = scenarios
            .iter()
            .map(|(name, url, header)| {
                let run = wrk(name, url, header.clone(), secs, conns);
                // Every scenario here answers 200: a refusal would be cheap and count as speed.
                assert_eq!(run.non_2xx, 0, "{name}: non-2xx answers in round {round}");
                run.rps
            })
            .collect();
        let row: Vec<f64> = (1..rps.len())
            .map(|i| 100.0 * rps[i] / if i == 1 { rps[0] } else { rps[1] })
            .collect();
        for (i, r) in row.iter().enumerate() {
            ratios[i].push(*r);
        }
        let cells: Vec<String> = rps
            .iter()
            .map(|r| format!("{r:.0}"))
            .chain(row.iter().map(|r| format!("{r:.0}%")))
            .collect();
        println!("| {round} | {} |", cells.join(" | "));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        if v.len().is_multiple_of(2) {
            (v[mid - 1] + v[mid]) / 2.0
        } else {
            v[mid]
        }
    };
    let medians: Vec<String> = ratios
        .iter_mut()
        .take(4)
        .map(|v| format!("{:.0}%", median(v)))
        .collect();
    println!("| median | | | | | | {} |\n", medians.join(" | "));
}

/// Starts `orgsso serve` from `bin` on a free port with a fresh SQLite file in `dir`; answers
/// once `/healthz` does.
async fn start_orgsso(bin: &str, dir: &std::path::Path) -> (tokio::process::Child, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut server = match pins() {
        Some((core, _)) => {
            let mut cmd = tokio::process::Command::new("taskset");
            cmd.args(["-c", &core]).arg(bin);
            cmd
        }
        None => tokio::process::Command::new(bin),
    };
    let server = server
        .arg("serve")
        .env("ORGSSO_LISTEN", format!("127.0.0.1:{port}"))
        .env("ORGSSO_PUBLIC_URL", &base)
        .env(
            "ORGSSO_DATABASE_URL",
            format!("sqlite://{}/bench.db?mode=rwc", dir.display()),
        )
        .env("ORGSSO_DATA_DIR", dir.join("data"))
        .env("ORGSSO_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("orgsso starts");
    let api = reqwest::Client::new();
    for _ in 0..100 {
        if api.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, base)
}

/// Creates org `acme` with the bench's rs256 secret (and the HS256 one) on a server.
async fn add_org_and_secrets(api: &reqwest::Client, base: &str) {
    let admin = |r: reqwest::RequestBuilder| r.bearer_auth(ADMIN);
    admin(api.post(format!("{base}/api/v1/orgs")))
        .json(&json!({"slug": "acme", "name": "Acme"}))
        .send()
        .await
        .unwrap();
    for body in [
        json!({"name": "hs", "type": "hs256", "secret": HS_SECRET}),
        json!({"name": "rs", "type": "rs256", "private_key": RSA_PEM}),
    ] {
        let r = admin(api.post(format!("{base}/api/v1/orgs/{}/jwt-secrets", "acme")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("DURATION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let conns: u32 = std::env::var("CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let bin = std::env::var("ORGSSO_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_orgsso").into());
    let (mut server, base) = start_orgsso(&bin, dir.path()).await;
    let pid = server.id().unwrap();
    let api = reqwest::Client::new();

    // An org with an IdP, one signed-in colleague, and an HS256 and an RS256 secret.
    let idp = idp::TestIdp::start(idp::IdpConfig {
        clients: vec![idp::IdpClient {
            client_id: "bench".into(),
            client_secret: "bench-secret".into(),
            redirect_uris: vec![format!("{base}/sso/callback")],
            ..Default::default()
        }],
        accounts:
            json!({"alice": {"email": "alice@example.com", "name": "Alice", "groups": ["admins"]}})
                .as_object()
                .unwrap()
                .clone(),
        ..idp::IdpConfig::default()
    })
    .await;
    add_org_and_secrets(&api, &base).await;
    let conn: Value = api
        .put(format!("{base}/api/v1/orgs/acme/sso"))
        .bearer_auth(ADMIN)
        .json(&json!({"issuer": idp.issuer, "client_id": "bench", "client_secret": "bench-secret", "scopes": ["openid", "email", "profile", "groups"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = browser
        .get(conn["login_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let back = idp::login_at_idp(
        &browser,
        start.headers()["location"].to_str().unwrap(),
        "alice",
    )
    .await;
    let done = browser.get(&back).send().await.unwrap();
    let cookie = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("orgsso_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims =
        json!({"sub": "svc", "email": "svc@example.com", "role": "developer", "exp": now + 3600});
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .unwrap();
    let rs = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    // Garbage: a well-formed RS256 token for the org's rs256 secret with a random signature.
    let forged = {
        use base64::Engine as _;
        let (signed, _) = rs.rsplit_once('.').unwrap();
        let noise: Vec<u8> = (0..256u32).map(|i| (i * 151 + 7) as u8).collect();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(noise);
        format!("{signed}.{sig}")
    };
    let verify = format!("{base}/auth/acme/verify");
    let r = api.get(&verify).bearer_auth(&forged).send().await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "the forged token is refused before the load"
    );
    for (what, header) in [
        ("cookie", format!("Cookie: {cookie}")),
        ("hs", format!("Authorization: Bearer {hs}")),
        ("rs", format!("Authorization: Bearer {rs}")),
    ] {
        let (k, v) = header.split_once(": ").unwrap();
        let r = api.get(&verify).header(k, v).send().await.unwrap();
        assert_eq!(r.status(), 200, "{what} does not verify before the load");
    }

    if std::env::var("ONLY").as_deref() != Ok("new-tokens") {
        tokio::time::sleep(Duration::from_secs(1)).await;
        classic_runs(pid, &base, &verify, &cookie, &hs, &rs, &forged, secs, conns);
    }
    new_token_runs(&api, &verify, &rs, &forged, conns).await;
    server.kill().await.ok();
}

/// The scenarios with one repeated credential each (verdict caches warm).
#[allow(clippy::too_many_arguments)]
fn classic_runs(
    pid: u32,
    base: &str,
    verify: &str,
    cookie: &str,
    hs: &str,
    rs: &str,
    forged: &str,
    secs: u64,
    conns: u32,
) {
    let idle = rss_kib(pid, "VmRSS:");
    let pinned = pins();
    let only_ceiling = std::env::var("ONLY_CEILING").is_ok_and(|v| v == "1");
    let nginx_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nginx_dir = tempfile::tempdir().unwrap();
    let nginx = start_nginx(
        nginx_dir.path(),
        nginx_port,
        pinned.as_ref().map(|p| p.0.as_str()),
    );
    let nginx_url = format!("http://127.0.0.1:{nginx_port}/");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", nginx_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let alternate: usize = std::env::var("ALTERNATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if alternate > 0 {
        let auth = |t: &str| format!("Authorization: Bearer {t}");
        let scenarios = [
            ("nginx", nginx_url.clone(), None),
            ("/healthz", format!("{base}/healthz"), None),
            (
                "cookie",
                verify.to_owned(),
                Some(format!("Cookie: {cookie}")),
            ),
            ("RS256", verify.to_owned(), Some(auth(rs))),
            ("HS256", verify.to_owned(), Some(auth(hs))),
        ];
        ceiling_rounds(alternate, &scenarios, secs, conns);
    }
    let nginx_run = wrk("nginx `return 200`", &nginx_url, None, secs, conns);
    stop_nginx(nginx);
    let mut runs = vec![
        wrk(
            "/healthz (ceiling)",
            &format!("{base}/healthz"),
            None,
            secs,
            conns,
        ),
        wrk(
            "verify, session cookie",
            verify,
            Some(format!("Cookie: {cookie}")),
            secs,
            conns,
        ),
        wrk(
            "verify, RS256 bearer",
            verify,
            Some(format!("Authorization: Bearer {rs}")),
            secs,
            conns,
        ),
        wrk(
            "verify, HS256 bearer",
            verify,
            Some(format!("Authorization: Bearer {hs}")),
            secs,
            conns,
        ),
    ];
    if !only_ceiling {
        runs.extend([
            // Negative answers (401 and 404, counted as non-2xx): each used to cost a query.
            wrk(
                "verify, unknown session cookie",
                verify,
                Some("Cookie: orgsso_session=bench-no-such-session-id-0000000000".to_owned()),
                secs,
                conns,
            ),
            wrk(
                "verify, unknown org slug",
                &format!("{base}/auth/no-such-org/verify"),
                Some(format!("Cookie: {cookie}")),
                secs,
                conns,
            ),
            // The same forged token flooded (401, counted as non-2xx): should cost what /healthz does.
            wrk(
                "verify, forged RS256 token flooded",
                verify,
                Some(format!("Authorization: Bearer {forged}")),
                secs,
                conns,
            ),
        ]);
    }
    let peak = rss_kib(pid, "VmHWM:");
    let ceiling = runs[0].rps;
    match &pinned {
        Some((server, load)) => println!(
            "wrk -t1 -c{conns} -d{secs}s --latency on core {load}; orgsso and nginx on core {server}; TOKIO_WORKER_THREADS={}; 127.0.0.1, SQLite\n",
            std::env::var("TOKIO_WORKER_THREADS").unwrap_or_else(|_| "unset".into())
        ),
        None => println!("wrk -t2 -c{conns} -d{secs}s --latency, orgsso release on 127.0.0.1 (SQLite), same machine\n"),
    }
    println!(
        "nginx `return 200`: {:.0} requests/s (p50 {}, p99 {}); /healthz at {:.0}% of nginx\n",
        nginx_run.rps,
        nginx_run.p50,
        nginx_run.p99,
        100.0 * ceiling / nginx_run.rps
    );
    println!("| scenario | requests/s | vs /healthz | p50 | p99 | non-2xx |");
    println!("|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {:.0} | {:.0}% | {} | {} | {} |",
            r.name,
            r.rps,
            100.0 * r.rps / ceiling,
            r.p50,
            r.p99,
            r.non_2xx
        );
    }
    println!(
        "\nserver resident memory: idle {:.1} MiB, peak under load {:.1} MiB",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// New-token RS256: Node `jose` (one process, then cluster workers), the baseline orgsso
/// binary if given, and this orgsso, over the same token stream, in that order.
async fn new_token_runs(api: &reqwest::Client, verify: &str, good: &str, forged: &str, conns: u32) {
    let count: usize = new_tokens::env_or("NEW_TOKENS", 200_000);
    let secs: u64 = new_tokens::env_or("NEW_TOKEN_SECS", 5);
    let node_workers: u32 = new_tokens::env_or("NODE_WORKERS", 2);
    let tokens = new_tokens::token_file(RSA_PEM, count);
    new_tokens::ensure_node_packages();
    let mut runs = Vec::new();
    let mut node_counts = vec![1];
    if node_workers > 1 {
        node_counts.push(node_workers);
    }
    for workers in node_counts {
        let (mut node, url) = new_tokens::start_node(workers).await;
        new_tokens::check_answers(&url, good, forged).await;
        let name = if workers == 1 {
            "Node 20 + jose, 1 process".to_owned()
        } else {
            format!("Node 20 + jose, node:cluster {workers} workers")
        };
        runs.push(new_tokens::wrk_stream(name, &url, &tokens, secs, conns));
        node.kill().await.ok();
    }
    if let Ok(bin) = std::env::var("ORGSSO_BASELINE_BIN") {
        let dir = tempfile::tempdir().unwrap();
        let (mut baseline, base) = start_orgsso(&bin, dir.path()).await;
        add_org_and_secrets(api, &base).await;
        let url = format!("{base}/auth/acme/verify");
        new_tokens::check_answers(&url, good, forged).await;
        runs.push(new_tokens::wrk_stream(
            "orgsso baseline (ORGSSO_BASELINE_BIN)".to_owned(),
            &url,
            &tokens,
            secs,
            conns,
        ));
        baseline.kill().await.ok();
    }
    runs.push(new_tokens::wrk_stream(
        "orgsso (this build)".to_owned(),
        verify,
        &tokens,
        secs,
        conns,
    ));
    new_tokens::report(&runs, secs, conns, count);
}
