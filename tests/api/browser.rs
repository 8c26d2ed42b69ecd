//! A real browser: Debian's headless Chromium, driven by Playwright (`tests/browser/*.mjs`,
//! `playwright-core` pinned in `tests/browser/package-lock.json`, no browser download), against
//! the real test IdP: a colleague signs in through "Login with SSO" (`login.mjs`), and an operator
//! configures an org's SSO in the admin console while a member signs in (`admin.mjs`). Both
//! screenshot the pages (into `docs/screenshots/`, which the README shows, when
//! ORGSSO_UPDATE_SCREENSHOTS=1).
//!
//! Skipped, with a loud `NOT RUN` line on stderr, where `/usr/bin/chromium` is missing
//! (`bash .ci/run` installs Debian's `chromium`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio::process::Command;

use crate::helpers::{account, spawn_app, start_idp, ADMIN_TOKEN, CLIENT_ID, CLIENT_SECRET};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest wait for a script: `login.mjs` stops itself after 90 s, `admin.mjs` after 150 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

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

/// Runs `tests/browser/{name}` with `config`; returns its JSON line. Panics with its output on
/// failure.
async fn run_script(name: &str, config: &Value) -> Value {
    let dir = browser_dir();
    let mut cmd = Command::new("node");
    cmd.arg(name)
        .arg(config.to_string())
        .env_remove("LOGIN_CONFIG")
        .env_remove("ADMIN_CONFIG")
        .env_remove("DEBUG");
    let out = crate::idp::output_within(
        cmd,
        &dir,
        &format!("`node {name}` (is Node.js installed?)"),
        SCRIPT_TIMEOUT,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({}):\nstderr:\n{stderr}\nstdout:\n{stdout}",
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| {
            panic!("{name} printed no JSON line:\nstdout:\n{stdout}\nstderr:\n{stderr}")
        });
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{name} printed bad JSON ({e}): {line}\nstderr:\n{stderr}"))
}

/// Where the screenshots go. The README's pictures are refreshed on request
/// (ORGSSO_UPDATE_SCREENSHOTS=1, into `docs/screenshots/`); otherwise they go to `temp`, so test
/// runs leave the work tree clean.
fn screenshot_dir(temp: &Path) -> PathBuf {
    if std::env::var_os("ORGSSO_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join("screenshots")
    } else {
        temp.to_path_buf()
    }
}

/// Panics unless every one of `names` in `dir` is a PNG written at or after `since`.
fn assert_fresh_pngs(dir: &Path, names: &[&str], since: SystemTime) {
    for name in names {
        let path = dir.join(name);
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        assert!(
            png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{name} is not a PNG"
        );
        let written = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap();
        assert!(written >= since, "{name} was not written by this run");
    }
}

/// The entries of a script's `blocked_requests` or `page_errors` list (`key`) made on orgsso's
/// pages, at `base`. (The test IdP's development login form asks for a Google font; the scripts
/// abort that and report it, with the IdP's page.)
fn on_orgsso(result: &Value, key: &str, base: &str) -> Vec<Value> {
    let prefix = format!("{base}/");
    result[key]
        .as_array()
        .unwrap_or_else(|| panic!("the script's result lacks the list {key}: {result}"))
        .iter()
        .filter(|e| {
            e["page"]
                .as_str()
                .is_some_and(|p| p == base || p.starts_with(&prefix))
        })
        .cloned()
        .collect()
}

/// Says loudly that `test` did not run when there is no Chromium.
fn chromium_missing(test: &str) -> bool {
    let missing = !Path::new(CHROMIUM).exists();
    if missing {
        eprintln!(
            "NOT RUN: {test}: {CHROMIUM} missing, chromium not installed (bash .ci/run installs it)"
        );
    }
    missing
}

#[tokio::test]
async fn browser_colleague_signs_in_through_login_with_sso() {
    if chromium_missing("browser_colleague_signs_in_through_login_with_sso") {
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
    let before_script = SystemTime::now() - Duration::from_secs(1);
    let temp_shots = tempfile::tempdir().unwrap();
    let screenshots = screenshot_dir(temp_shots.path());
    let result = run_script(
        "login.mjs",
        &json!({
            "base": app.base,
            "email": "alice@acme.test",
            "account": "alice",
            "screenshots": screenshots,
        }),
    )
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
    // orgsso's own pages fetch nothing outside 127.0.0.1 and log no errors.
    assert_eq!(
        on_orgsso(&result, "blocked_requests", &app.base),
        Vec::<Value>::new(),
        "orgsso's pages asked for something outside 127.0.0.1: {result}"
    );
    assert_eq!(
        on_orgsso(&result, "page_errors", &app.base),
        Vec::<Value>::new(),
        "errors on orgsso's pages: {result}"
    );
    assert_fresh_pngs(
        &screenshots,
        &[
            "login-mobile.png",
            "login-desktop.png",
            "login.png",
            "signed-in.png",
        ],
        before_script,
    );
    eprintln!(
        "[browser] signed in through Chromium {} in {} ms (script {} ms)",
        result["browser"],
        started.elapsed().as_millis(),
        result["ms"]
    );
}

#[tokio::test]
async fn browser_admin_configures_sso_in_the_console() {
    if chromium_missing("browser_admin_configures_sso_in_the_console") {
        return;
    }
    let started = Instant::now();
    ensure_node_modules(&browser_dir()).await;

    // The org does not exist yet: the operator creates it in the console.
    let app = spawn_app().await;
    let idp = start_idp(
        &app,
        json!({ "bob": account("bob@acme.test", "Bob", &["engineering"]) }),
    )
    .await;

    // (less a second: file times come from a coarser clock)
    let before_script = SystemTime::now() - Duration::from_secs(1);
    let temp_shots = tempfile::tempdir().unwrap();
    let screenshots = screenshot_dir(temp_shots.path());
    let result = run_script(
        "admin.mjs",
        &json!({
            "base": app.base,
            "admin_token": ADMIN_TOKEN,
            "issuer": idp.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "member_account": "bob",
            "member_email": "bob@acme.test",
            "screenshots": screenshots,
        }),
    )
    .await;
    eprintln!("[browser] admin.mjs: {result}");
    assert_eq!(result["ok"], true, "{result}");
    let text = |key: &str| -> String {
        result[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is not a string: {result}"))
            .to_owned()
    };

    // An issuer that is not there: refused with the reason, the secret not echoed back.
    let bad_issuer = text("bad_issuer_error").to_lowercase();
    assert!(
        ["issuer", "discover", "well-known", "openid-configuration"]
            .iter()
            .any(|w| bad_issuer.contains(w)),
        "the reason for the refused issuer should be about the issuer or its discovery: {result}"
    );
    assert_eq!(result["bad_issuer_secret_cleared"], true, "{result}");

    // The real connection: its login URL, copied to the clipboard by the button.
    let login_url = text("login_url");
    assert!(
        login_url.starts_with(&format!("{}/sso/", app.base)),
        "{result}"
    );
    assert_eq!(result["clipboard"], login_url.as_str(), "{result}");
    assert_eq!(result["copy_button_text"], "Copied", "{result}");
    assert_eq!(result["redirect_uri"], app.redirect_uri(), "{result}");

    // Rules: an invalid regex is refused in its row and nothing is saved; the dry run uses the
    // rules as typed (the "admins" rule moved up, so the engineering rule is rule 2).
    let invalid = text("invalid_rule_error").to_lowercase();
    assert!(
        ["regex", "regular expression", "pattern"]
            .iter()
            .any(|w| invalid.contains(w)),
        "the invalid rule's error should be about the regex: {result}"
    );
    assert!(!text("rules_error").is_empty(), "{result}");
    assert_eq!(result["rules_after_invalid"], 0, "{result}");
    assert_eq!(
        result["dry_run_typed"],
        json!({"role": "developer", "rule": 2}),
        "{result}"
    );
    assert!(
        text("rules_saved_notice").contains("Rules saved"),
        "{result}"
    );
    assert_eq!(result["sample_claims_json"], true, "{result}");
    assert_eq!(
        result["sample_claims_groups"],
        json!(["engineering"]),
        "{result}"
    );
    assert_eq!(
        result["dry_run_sample"],
        json!({"role": "developer", "rule": 2}),
        "{result}"
    );

    // The member's role follows the rules at once, and again at their next sign-in.
    assert_eq!(
        result["member_signins"][0]["idp_form_shown"], true,
        "the first sign-in went through the IdP's login form: {result}"
    );
    for (key, role) in [
        ("member_role_before", "developer"),
        // Issue 11: saving the rules re-derives the member's role at once from their last
        // sign-in's claims, so the members page shows admin before they sign in again.
        ("members_role_before_relogin", "admin"),
        ("member_role_after", "admin"),
        ("members_role_after_relogin", "admin"),
    ] {
        assert_eq!(result[key], role, "{key}: {result}");
    }
    assert_eq!(result["filter_hits"], 1, "{result}");
    assert_eq!(result["filter_misses"], 0, "{result}");

    // A JWT secret: listed, its material never shown again, deleted.
    assert_eq!(result["secret_listed"], true, "{result}");
    assert_eq!(result["secret_shown_after_save"], false, "{result}");
    assert_eq!(result["secret_deleted"], true, "{result}");

    let actions: Vec<&str> = result["audit_actions"]
        .as_array()
        .unwrap_or_else(|| panic!("audit_actions is not a list: {result}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for action in [
        "sso.connect",
        "role_mapping.update",
        "login",
        "member.role_change",
    ] {
        assert!(
            actions.contains(&action),
            "the audit log lacks {action}: {result}"
        );
    }

    // POSTs without the CSRF field are refused, from a form and from a same-origin fetch.
    assert_eq!(result["csrf_missing_status"], 403, "{result}");
    assert_eq!(
        result["csrf_missing_heading"], "Request refused",
        "{result}"
    );
    assert_eq!(result["csrf_fetch_status"], 403, "{result}");

    // No console page scrolls sideways on a phone.
    let widths = result["mobile_widths"]
        .as_object()
        .unwrap_or_else(|| panic!("mobile_widths is not an object: {result}"));
    for path in [
        "/admin",
        "/admin/orgs/acme",
        "/admin/orgs/acme/rules",
        "/admin/orgs/acme/members",
        "/admin/orgs/acme/secrets",
        "/admin/orgs/acme/audit",
        "/admin/orgs/acme/disconnect",
    ] {
        let width = widths
            .get(path)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no mobile width for {path}: {result}"));
        assert!(
            width <= 375,
            "{path} is {width} px wide in a 375 px viewport: {result}"
        );
    }

    // Disconnecting: the confirmation counts bob's session and membership; his session ends.
    assert_eq!(result["confirm_sessions"], 1, "{result}");
    assert_eq!(result["confirm_members"], 1, "{result}");
    assert!(!text("disconnect_notice").is_empty(), "{result}");
    assert_ne!(
        result["member_after_disconnect"]["heading"], "You are signed in",
        "the member's session ended with the disconnect: {result}"
    );

    // Reconnecting: prefilled but for the secret; a new login URL, the old one retired.
    assert_eq!(result["reconnect_prefilled"], true, "{result}");
    assert_eq!(result["reconnect_secret_empty"], true, "{result}");
    let new_login_url = text("new_login_url");
    assert_ne!(new_login_url, login_url, "{result}");
    assert!(
        new_login_url.starts_with(&format!("{}/sso/", app.base)),
        "{result}"
    );
    assert_eq!(result["old_login_url_status"], 410, "{result}");

    // orgsso's own pages fetch nothing outside 127.0.0.1 and log no errors (but for the error
    // answers the script provoked, which it reports apart).
    assert_eq!(
        on_orgsso(&result, "blocked_requests", &app.base),
        Vec::<Value>::new(),
        "orgsso's pages asked for something outside 127.0.0.1: {result}"
    );
    assert_eq!(
        on_orgsso(&result, "page_errors", &app.base),
        Vec::<Value>::new(),
        "errors on orgsso's pages: {result}"
    );
    assert_fresh_pngs(
        &screenshots,
        &[
            "console-login.png",
            "console-sso.png",
            "console-sso-mobile.png",
            "console-rules.png",
            "console-rules-mobile.png",
            "console-members.png",
            "console-secrets.png",
            "console-audit.png",
            "console-disconnect.png",
        ],
        before_script,
    );

    // The disconnect made bob a viewer, and the reconnection did not change that.
    let members = app.members("acme").await;
    let bob = members
        .iter()
        .find(|m| m["email"] == "bob@acme.test")
        .unwrap_or_else(|| panic!("bob is not a member of acme: {members:?}"));
    assert_eq!(bob["role"], "viewer", "{bob}");
    eprintln!(
        "[browser] configured SSO in the console through Chromium {} in {} ms (script {} ms)",
        result["browser"],
        started.elapsed().as_millis(),
        result["ms"]
    );
}

#[tokio::test]
async fn browser_customer_sets_up_sso_through_a_setup_link() {
    if chromium_missing("browser_customer_sets_up_sso_through_a_setup_link") {
        return;
    }
    ensure_node_modules(&browser_dir()).await;
    let app = crate::helpers::spawn_app_with(|s| s.login.setup_links_internal_idp = true).await;
    let idp = start_idp(
        &app,
        json!({ "ada": account("ada@acme.test", "Ada", &["engineering"]) }),
    )
    .await;
    app.create_org("acme", &[]).await;
    app.create_org("beta", &[]).await;
    let link = |body: Value| {
        let app = &app;
        async move {
            let (s, b) = app
                .admin(
                    reqwest::Method::POST,
                    "/api/v1/orgs/acme/setup-links",
                    Some(body),
                )
                .await;
            assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
            (
                b["id"].as_str().unwrap().to_owned(),
                b["url"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (_, setup_url) = link(json!({})).await;
    let (expired_id, expired_url) = link(json!({"expires_in_hours": 1})).await;
    crate::setup_links::exec(
        &app,
        "UPDATE setup_links SET expires_at = 1 WHERE id = $1",
        &expired_id,
    )
    .await;
    let (revoked_id, revoked_url) = link(json!({})).await;
    let (s, _) = app
        .admin(
            reqwest::Method::DELETE,
            &format!("/api/v1/orgs/acme/setup-links/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::NO_CONTENT);

    let before_script = SystemTime::now() - Duration::from_secs(1);
    let temp_shots = tempfile::tempdir().unwrap();
    let screenshots = screenshot_dir(temp_shots.path());
    let result = run_script(
        "setup.mjs",
        &json!({
            "base": app.base,
            "setup_url": setup_url,
            "expired_url": expired_url,
            "revoked_url": revoked_url,
            "other_slug": "beta",
            "issuer": idp.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "account": "ada",
            "screenshots": screenshots,
        }),
    )
    .await;
    eprintln!("[browser] setup.mjs: {result}");
    assert_eq!(result["ok"], true, "{result}");

    // Expired and revoked links: 410 pages that say what to do and name no org.
    for (key, heading) in [
        ("expired", "Setup link expired"),
        ("revoked", "Setup link revoked"),
    ] {
        assert_eq!(result[key]["status"], 410, "{result}");
        assert_eq!(result[key]["heading"], heading, "{result}");
        let text = result[key]["text"].as_str().unwrap();
        assert!(text.contains("Ask your contact for a new link"), "{result}");
        assert!(!text.contains("Org acme"), "{result}");
    }
    // The start page names no org (a link scanner learns nothing); Start leads to step 1.
    assert_eq!(result["landing"]["status"], 200, "{result}");
    assert_eq!(
        result["landing"]["heading"], "Set up single sign-on",
        "{result}"
    );
    assert!(
        !result["landing"]["text"]
            .as_str()
            .unwrap()
            .contains("Org acme"),
        "{result}"
    );
    assert_eq!(result["first"]["status"], 200, "{result}");
    assert_eq!(
        result["first"]["heading"], "Set up single sign-on for Org acme",
        "{result}"
    );
    assert_eq!(
        result["presets"],
        json!(["okta", "auth0", "keycloak", "entra", "google", "other"]),
        "{result}"
    );
    assert_eq!(result["redirect_uri"], app.redirect_uri(), "{result}");
    assert_eq!(result["clipboard"], app.redirect_uri(), "{result}");
    assert_eq!(
        result["groups_claim_from_preset"], "/realm_access/roles",
        "{result}"
    );
    assert!(
        result["bad_issuer_error"]
            .as_str()
            .is_some_and(|e| e.contains("127.0.0.1:9")),
        "{result}"
    );
    assert_eq!(result["bad_issuer_kept"], CLIENT_ID, "{result}");
    assert_eq!(result["bad_issuer_secret_cleared"], true, "{result}");
    assert_eq!(result["test_ok"], true, "{result}");
    assert_eq!(result["test_role"], "admin", "{result}");
    assert_eq!(result["test_claims"]["email"], "ada@acme.test", "{result}");
    assert!(
        !result["cookies_after_test"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "orgsso_session"),
        "the test sign-in started no session: {result}"
    );
    let (_, sso) = app
        .admin(reqwest::Method::GET, "/api/v1/orgs/acme/sso", None)
        .await;
    assert_eq!(result["login_url"], sso["login_url"], "{result}");
    assert!(
        app.members("acme").await.is_empty(),
        "nobody enrolled by the test"
    );
    // The link's browser gets nothing of another org.
    assert!(
        result["other_org_console"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/admin/login"),
        "{result}"
    );
    assert_eq!(result["other_org_api"], 401, "{result}");
    assert_eq!(result["reopened"]["status"], 200, "{result}");
    assert_eq!(
        result["reopened"]["heading"], "Single sign-on is set up",
        "{result}"
    );
    assert_eq!(
        on_orgsso(&result, "blocked_requests", &app.base),
        Vec::<Value>::new(),
        "{result}"
    );
    assert_eq!(
        on_orgsso(&result, "page_errors", &app.base),
        Vec::<Value>::new(),
        "{result}"
    );
    assert_fresh_pngs(
        &screenshots,
        &[
            "setup-start.png",
            "setup-choose-idp.png",
            "setup-register.png",
            "setup-credentials-error.png",
            "setup-test-result.png",
            "setup-done.png",
            "setup-revoked.png",
        ],
        before_script,
    );
}
