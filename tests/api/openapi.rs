//! The OpenAPI document at `GET /api/v1/openapi.json`, checked by tools written by other
//! people: `openapi-spec-validator` accepts it as OpenAPI 3.1, and `schemathesis` (property-based
//! API testing) runs every operation against a live orgsso with the admin token and finds no
//! 5xx, no undocumented status or content type and no body or header that breaks the document.
//! Both come from PyPI, pinned in `tests/openapi/requirements.txt`, installed in
//! `tests/openapi/.venv` (`venv.rs`). A Rust-side check keeps every `/api/v1` route in the
//! document.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::helpers::{account, spawn_app, start_idp, TestApp, ADMIN_TOKEN};
use crate::idp::output_within;
use crate::scim::scim_token;

const VALIDATE_TIMEOUT: Duration = Duration::from_secs(120);
/// One schemathesis run: under a minute (about 20 s for both on a loaded 2-core machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Examples per operation and phase, and the seed, so that a run can be repeated.
const MAX_EXAMPLES: &str = "50";
const SEED: &str = "20261201";
/// Routes under `/api/v1` deliberately outside the document, with why.
const NOT_DOCUMENTED: &[(&str, &str, &str)] =
    &[("GET", "/api/v1/openapi.json", "the document itself")];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("openapi")
}

static VENV_READY: tokio::sync::OnceCell<Option<PathBuf>> = tokio::sync::OnceCell::const_new();

/// `tests/openapi/.venv/bin`, after making the virtualenv when needed; None (after a loud
/// `NOT RUN` line) where python3 or its venv module is missing.
async fn venv_bin(test: &str) -> Option<PathBuf> {
    let bin = VENV_READY
        .get_or_init(|| async {
            if !crate::venv::python_available().await {
                return None;
            }
            let dir = dir();
            crate::venv::ensure(&dir, "schemathesis", "openapi").await;
            Some(dir.join(".venv/bin"))
        })
        .await
        .clone();
    if bin.is_none() {
        eprintln!("\n*** NOT RUN: {test} needs python3 with venv (bash .ci/run installs it) ***\n");
    }
    bin
}

async fn document(app: &TestApp) -> (String, Value) {
    let resp = app
        .api
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let text = resp.text().await.unwrap();
    let doc = serde_json::from_str(&text).expect("the document is JSON");
    (text, doc)
}

#[tokio::test]
async fn openapi_spec_validator_accepts_the_served_document() {
    let Some(bin) = venv_bin("openapi_spec_validator_accepts_the_served_document").await else {
        return;
    };
    let app = spawn_app().await;
    let (text, doc) = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0", "{text}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let mut cmd = Command::new(bin.join("openapi-spec-validator"));
    cmd.arg(file.path());
    let out = output_within(cmd, &dir(), "`openapi-spec-validator`", VALIDATE_TIMEOUT).await;
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `seed` leaves for the run: the IdP (kept running), a member's session cookie and a
/// token minted from it.
struct Seeded {
    _idp: crate::idp::TestIdp,
    session: String,
    jwt: String,
}

/// An org with a connection, a signed-in member, rules, a JWT secret, a SCIM token and audit
/// events, so that the documented examples (`acme`) reach real answers, not only 404s.
async fn seed(app: &TestApp) -> Seeded {
    app.create_org("acme", &["acme.test"]).await;
    let idp = start_idp(
        app,
        json!({"alice": account("alice@acme.test", "Alice", &["admins"])}),
    )
    .await;
    let conn = app.connect("acme", &idp.issuer).await;
    let browser = crate::helpers::browser();
    let signed_in = app
        .login(&browser, conn["login_url"].as_str().unwrap(), "alice")
        .await;
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_prefix("orgsso_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .next()
        .expect("a session cookie at sign-in");
    let minted = crate::tokens::mint(app, &browser).await;
    let jwt = minted["access_token"]
        .as_str()
        .expect("a minted token")
        .to_owned();
    app.set_rules(
        "acme",
        json!({"default_role": "viewer", "rules": [{"claim": "groups", "op": "contains", "value": "admins", "role": "admin"}]}),
    )
    .await;
    let (s, body) = app
        .admin(
            Method::POST,
            "/api/v1/orgs/acme/jwt-secrets",
            Some(json!({"name": "app", "type": "hs256", "secret": "s".repeat(40)})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    scim_token(app, "acme", "directory").await;
    Seeded {
        _idp: idp,
        session,
        jwt,
    }
}

/// Runs schemathesis over the operations `filter` selects, panicking with its failure report.
async fn schemathesis(bin: &Path, app: &TestApp, seeded: &Seeded, filter: &[&str]) {
    let report = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin.join("schemathesis"));
    cmd.args(["--no-color", "--config-file", "schemathesis.toml", "run"])
        .arg(app.url("/api/v1/openapi.json"))
        .args(filter)
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            // One worker: Python 3.11's compiler is not safe to call from several threads
            // (a `SystemError` inside hypothesis), and the run takes seconds anyway.
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--report-dir",
        ])
        .arg(report.path())
        // Credentials through the environment, never the command line (schemathesis.toml).
        .env("ORGSSO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("ORGSSO_SESSION", &seeded.session)
        .env("ORGSSO_APP_JWT", &seeded.jwt);
    let started = std::time::Instant::now();
    let out = output_within(cmd, &dir(), "`schemathesis run`", RUN_TIMEOUT).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis {filter:?} found failures (exit {:?}):\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    // The run's warnings and summary, for the log.
    let summary = stdout
        .find("=== WARNINGS")
        .or_else(|| stdout.find("=== SUMMARY"));
    eprintln!(
        "[schemathesis] {filter:?} done in {} s\n{}",
        started.elapsed().as_secs(),
        &stdout[summary.unwrap_or(0)..]
    );
}

#[tokio::test]
async fn schemathesis_finds_no_failure_in_any_operation() {
    let test = "schemathesis_finds_no_failure_in_any_operation";
    let Some(bin) = venv_bin(test).await else {
        return;
    };
    let app = spawn_app().await;
    let seeded = seed(&app).await;
    // The signed-in member's operations first: the admin operations then change rules and
    // disconnect the IdP, which ends the member's session (and so every later 200 there).
    let member = ["--include-tag", "me", "--include-tag", "verify"];
    let admin = ["--exclude-tag", "me", "--exclude-tag", "verify"];
    for filter in [member, admin] {
        schemathesis(&bin, &app, &seeded, &filter).await;
    }
}

/// Every `(METHOD, path)` routed under `/api/v1`, read from the routers' source: each
/// `.route("/api/v1/…", get(…).post(…))` call in `src/http`.
fn api_routes() -> Vec<(String, String)> {
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http")];
    let mut out = Vec::new();
    let method = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        for (at, _) in src.match_indices(".route(") {
            let call = balanced(&src[at + ".route".len()..]);
            let Some(route) = call.split('"').nth(1).filter(|r| r.starts_with("/api/v1")) else {
                continue;
            };
            for m in method.captures_iter(call) {
                out.push((m[1].to_uppercase(), route.to_owned()));
            }
        }
    }
    out.sort();
    out
}

/// The text of the parenthesised group `text` starts with.
fn balanced(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..=i];
                }
            }
            _ => {}
        }
    }
    text
}

#[tokio::test]
async fn every_api_route_is_in_the_document() {
    let app = spawn_app().await;
    let (_, doc) = document(&app).await;
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| matches!(k.as_str(), "get" | "post" | "put" | "delete" | "patch"))
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    documented.sort();
    let routes = api_routes();
    assert!(
        routes.len() >= 20,
        "the route scan found too few: {routes:?}"
    );
    let missing: Vec<_> = routes
        .iter()
        .filter(|r| !documented.contains(r))
        .filter(|(m, p)| !NOT_DOCUMENTED.iter().any(|(em, ep, _)| em == m && ep == p))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document (add #[utoipa::path] and list the handler in \
         http::openapi, or add them to NOT_DOCUMENTED with why): {missing:?}"
    );
    // And the other way round: nothing documented that is not routed (the verify endpoint
    // lives outside /api/v1).
    let unrouted: Vec<_> = documented
        .iter()
        .filter(|(_, p)| p.starts_with("/api/v1"))
        .filter(|r| !routes.contains(r))
        .collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    // Every error answer uses the one shared error schema.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        resp["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}
