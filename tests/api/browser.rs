//! A real browser: Debian's headless Chromium, driven by Playwright (`tests/browser/login.mjs`,
//! `playwright-core` pinned in `tests/browser/package-lock.json`, no browser download), signs a
//! colleague in through "Login with SSO" against the real test IdP, and screenshots the pages
//! (into `docs/screenshots/`, which the README shows, when ORGSSO_UPDATE_SCREENSHOTS=1).
//!
//! Skipped, with a loud `NOT RUN` line on stderr, where `/usr/bin/chromium` is missing
//! (`bash .ci/run` installs Debian's `chromium`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::Command;

use crate::helpers::{account, spawn_app, start_idp};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest wait for `npm ci` in `tests/browser`.
/// Longest wait for `login.mjs`, which stops itself after 90 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

static NPM_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// `tests/browser` of this crate.
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

/// Whether `node_modules` holds the `playwright-core` version the lockfile pins.
fn node_modules_current(dir: &Path) -> bool {
    let read =
        |p: PathBuf| -> Option<Value> { serde_json::from_slice(&std::fs::read(p).ok()?).ok() };
    let lock = read(dir.join("package-lock.json")).unwrap_or_else(|| {
        panic!(
            "{} is missing or not JSON",
            dir.join("package-lock.json").display()
        )
    });
    let wanted = lock["packages"]["node_modules/playwright-core"]["version"].clone();
    let installed =
        read(dir.join("node_modules/playwright-core/package.json")).map(|v| v["version"].clone());
    wanted.is_string() && installed.as_ref() == Some(&wanted)
}

/// Runs `npm ci` in `tests/browser` once per test process when `node_modules` is missing or
/// stale (`playwright-core` downloads no browser).
async fn ensure_node_modules(dir: &Path) {
    NPM_READY
        .get_or_init(|| async {
            if node_modules_current(dir) {
                return;
            }
            crate::idp::npm_ci(dir).await;
            assert!(
                node_modules_current(dir),
                "`npm ci` in {} left another playwright-core than the lockfile's",
                dir.display()
            );
        })
        .await;
}

/// Runs `login.mjs` with `config`; returns its JSON line. Panics with its output on failure.
async fn run_login_script(config: &Value) -> Value {
    let dir = browser_dir();
    let mut cmd = Command::new("node");
    cmd.arg("login.mjs")
        .arg(config.to_string())
        .env_remove("LOGIN_CONFIG")
        .env_remove("DEBUG");
    let out = crate::idp::output_within(
        cmd,
        &dir,
        "`node login.mjs` (is Node.js installed?)",
        SCRIPT_TIMEOUT,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "login.mjs failed ({}):\nstderr:\n{stderr}\nstdout:\n{stdout}",
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| {
            panic!("login.mjs printed no JSON line:\nstdout:\n{stdout}\nstderr:\n{stderr}")
        });
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("login.mjs printed bad JSON ({e}): {line}\nstderr:\n{stderr}"))
}

#[tokio::test]
async fn browser_colleague_signs_in_through_login_with_sso() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "NOT RUN: browser_colleague_signs_in_through_login_with_sso: {CHROMIUM} missing, \
             chromium not installed (bash .ci/run installs it)"
        );
        return;
    }
    let started = Instant::now();
    ensure_node_modules(&browser_dir()).await;

    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({ "alice": account("alice@acme.test", "Alice", &["engineering"]) }),
    )
    .await;
    app.create_org("acme", &["acme.test"]).await;
    app.connect("acme", &idp.issuer).await;
    app.set_rules(
        "acme",
        json!({
            "default_role": "viewer",
            "rules": [{"claim": "groups", "op": "contains", "value": "engineering", "role": "developer"}]
        }),
    )
    .await;

    // (less a second: file times come from a coarser clock)
    let before_script = std::time::SystemTime::now() - Duration::from_secs(1);
    // The README's pictures are refreshed on request (ORGSSO_UPDATE_SCREENSHOTS=1); otherwise
    // they go to a temp dir, so test runs leave the work tree clean.
    let temp_shots = tempfile::tempdir().unwrap();
    let screenshots = if std::env::var_os("ORGSSO_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join("screenshots")
    } else {
        temp_shots.path().to_path_buf()
    };
    let result = run_login_script(&json!({
        "base": app.base,
        "email": "alice@acme.test",
        "account": "alice",
        "screenshots": screenshots,
    }))
    .await;
    eprintln!("[browser] login.mjs: {result}");

    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["url"], format!("{}/", app.base), "{result}");
    assert_eq!(result["heading"], "You are signed in", "{result}");
    assert_eq!(result["name"], "Alice", "{result}");
    assert_eq!(result["email"], "alice@acme.test", "{result}");
    assert_eq!(result["org"], "Org acme", "{result}");
    assert_eq!(result["role"], "developer", "{result}");
    assert_eq!(
        result["role_shown"], "Developer",
        "the CSS capitalises the role: {result}"
    );
    assert_eq!(result["sign_out_button"], true, "{result}");
    assert!(
        result["idp_login_url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{}/interaction/", idp.issuer))),
        "the browser went through the IdP's login form: {result}"
    );
    // orgsso's own pages fetch nothing outside 127.0.0.1 and log no errors. (The IdP's
    // development login form asks for a Google font; login.mjs aborts that and reports it.)
    let on_orgsso = |list: &Value| -> Vec<Value> {
        list.as_array()
            .unwrap_or_else(|| panic!("login.mjs result lacks a list: {result}"))
            .iter()
            .filter(|e| e["page"].as_str().is_some_and(|p| p.starts_with(&app.base)))
            .cloned()
            .collect()
    };
    assert_eq!(
        on_orgsso(&result["blocked_requests"]),
        Vec::<Value>::new(),
        "orgsso's pages asked for something outside 127.0.0.1: {result}"
    );
    assert_eq!(
        on_orgsso(&result["page_errors"]),
        Vec::<Value>::new(),
        "errors on orgsso's pages: {result}"
    );
    for name in [
        "login-mobile.png",
        "login-desktop.png",
        "login.png",
        "signed-in.png",
    ] {
        let path = screenshots.join(name);
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        assert!(
            png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{name} is not a PNG"
        );
        let written = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap();
        assert!(
            written >= before_script,
            "{name} was not written by this run"
        );
    }
    eprintln!(
        "[browser] signed in through Chromium {} in {} ms (script {} ms)",
        result["browser"],
        started.elapsed().as_millis(),
        result["ms"]
    );
}
