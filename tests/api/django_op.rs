//! A second OpenID Provider written by other people: django-oauth-toolkit (PyPI), started by
//! the tests on 127.0.0.1.
//!
//! [`DjangoOp::start`] makes `tests/op-django/.venv` from the pinned `requirements.txt` when it
//! is missing or stale (bounded in time; `.ci/run` only makes sure `python3 -m venv` works),
//! then runs `tests/op-django/server.py` and waits for its `READY` line.
//! [`walk_at_op`] goes through its pages like a browser: Django's login form, the consent page
//! if one shows, and the RP-initiated logout confirmation.
//!
//! What the provider is (details in `tests/op-django/server.py` and `opsite/settings.py`):
//! - issuer `http://127.0.0.1:<port>/o` (a path, as DOT is usually mounted), discovery at
//!   `/o/.well-known/openid-configuration`, endpoints `/o/authorize/`, `/o/token/`,
//!   `/o/userinfo/`, `/o/.well-known/jwks.json`, `/o/logout/` (end session);
//! - RS256 ID tokens, `kid` = the key's RFC 7638 thumbprint; `sub` = the Django user's primary
//!   key ("1", "2", … in creation order);
//! - confidential clients, client secret hashed at rest, `client_secret_basic` tried first and
//!   `client_secret_post` accepted too; PKCE required; consent skipped;
//! - claims `email`, `email_verified`, `name`, `preferred_username`, `groups` (the user's Django
//!   groups), in the ID token and at userinfo alike;
//! - RP-initiated logout on; it asks for confirmation unless an `id_token_hint` for the signed-in
//!   user comes with the request.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::{Child, ChildStdin, Command};
use url::Url;

use crate::idp::{parse_post_form, start_ready_child};

/// Longest wait for the READY line (Django starts and migrates a fresh SQLite file: ~1 s).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;
/// Per-request timeout of each step of [`walk_at_op`].
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REDIRECTS: usize = 10;
const MAX_FORMS: usize = 4;

/// The password every test user gets unless the test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Clone, Debug, Default)]
pub struct DjangoOpConfig {
    pub clients: Vec<DjangoClient>,
    /// username -> {"email", "name", "groups": [...], "password"?}
    pub users: serde_json::Map<String, Value>,
    /// Send RFC 9207 `iss` on authorization responses (and say so in discovery).
    pub authz_iss: bool,
}

#[derive(Clone, Debug, Default)]
pub struct DjangoClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// The application's ID token algorithm: `None` for RS256; `Some("HS256")` (signed with the
    /// client secret) or `Some("")` (DOT's default, "No OIDC support") as admins sometimes
    /// register it.
    pub algorithm: Option<String>,
}

pub struct DjangoOp {
    /// `http://127.0.0.1:<port>/o` (no trailing slash).
    pub issuer: String,
    pub port: u16,
    /// `kid` of the signing key.
    pub kid: String,
    child: Child,
    /// Held open for the child's lifetime: the provider exits when its stdin closes.
    stdin: Option<ChildStdin>,
}

impl Drop for DjangoOp {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.start_kill();
    }
}

fn op_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("op-django")
}

impl DjangoOp {
    /// Starts the provider on a free port. Panics with a clear message (and the provider's
    /// stderr) when it cannot.
    pub async fn start(config: DjangoOpConfig) -> DjangoOp {
        let dir = op_dir();
        let python = ensure_venv(&dir).await;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match spawn(&dir, &python, &config).await {
                Ok(op) => {
                    eprintln!(
                        "[django-op] ready at {} (kid {}) in {} ms",
                        op.issuer,
                        op.kid,
                        started.elapsed().as_millis()
                    );
                    return op;
                }
                Err(e) if attempt < START_ATTEMPTS => {
                    eprintln!("[django-op] start attempt {attempt} failed, retrying: {e}")
                }
                Err(e) => {
                    panic!("django-oauth-toolkit failed to start after {attempt} attempts: {e}")
                }
            }
        }
    }

    /// The end-session endpoint DOT publishes.
    pub fn end_session_endpoint(&self) -> String {
        format!("{}/logout/", self.issuer)
    }
}

static VENV_READY: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

/// The virtualenv's interpreter, after making `.venv` from `requirements.txt` when it is
/// missing or was made from other requirements (`venv.rs`). Once per process.
async fn ensure_venv(dir: &Path) -> PathBuf {
    VENV_READY
        .get_or_init(|| async {
            crate::venv::ensure(dir, "python", "django-op").await;
            dir.join(".venv").join("bin").join("python")
        })
        .await
        .clone()
}

async fn spawn(dir: &Path, python: &Path, config: &DjangoOpConfig) -> Result<DjangoOp, String> {
    let clients: Vec<Value> = config
        .clients
        .iter()
        .map(|c| {
            json!({
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "redirect_uris": c.redirect_uris,
                "post_logout_redirect_uris": c.post_logout_redirect_uris,
                "algorithm": c.algorithm.as_deref().unwrap_or("RS256"),
            })
        })
        .collect();
    let env_config = json!({
        "port": 0,
        "authz_iss": config.authz_iss,
        "clients": clients,
        "users": config.users,
    });
    let mut cmd = Command::new(python);
    cmd.arg("server.py")
        .current_dir(dir)
        .env("OP_DJANGO_CONFIG", env_config.to_string())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("OP_DJANGO_IGNORE_STDIN")
        .env_remove("DJANGO_SETTINGS_MODULE");
    let started = start_ready_child(cmd, "django-op", START_TIMEOUT)
        .await
        .map_err(|e| format!("{} server.py: {e}", python.display()))?;
    let ready = &started.ready;
    let text = |k: &str| -> Result<String, String> {
        ready[k]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("READY without {k}: {ready}"))
    };
    Ok(DjangoOp {
        issuer: text("issuer")?,
        kid: text("kid")?,
        port: ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("READY without port")?,
        child: started.child,
        stdin: started.stdin,
    })
}

/// How a walk through the provider's pages ended.
#[derive(Debug)]
pub struct Walk {
    /// The first URL outside the provider it redirected to (not requested), or `None` when the
    /// walk stopped at a login form it had no credentials for.
    pub left_to: Option<String>,
    /// Whether a login form (a password field) was shown.
    pub asked_for_credentials: bool,
    /// Other forms submitted as they came (consent, "log out of the provider too?").
    pub confirmations: usize,
    /// `METHOD path -> status` of each step, for messages.
    pub trail: Vec<String>,
}

/// Walks the provider's pages from `url` like a browser in `client`'s cookie jar: follows
/// redirects within the provider's origin, fills a login form with `credentials` (username,
/// password) when one shows, submits other forms as they are (their `allow` button included),
/// and stops at the first redirect that leaves the provider. With `credentials` `None`, a login
/// form ends the walk (`left_to: None`). Panics when the provider answers anything else, or
/// shows the login form again after the credentials were sent (wrong password).
pub async fn walk_at_op(
    client: &reqwest::Client,
    url: &str,
    credentials: Option<(&str, &str)>,
) -> Walk {
    let start = Url::parse(url).unwrap_or_else(|e| panic!("walk_at_op: bad URL {url:?}: {e}"));
    let origin = start.origin();
    let mut url = start;
    let mut form: Option<Vec<(String, String)>> = None;
    let (mut redirects, mut forms) = (0usize, 0usize);
    let mut walk = Walk {
        left_to: None,
        asked_for_credentials: false,
        confirmations: 0,
        trail: Vec::new(),
    };
    let mut sent_credentials = false;
    loop {
        let method = if form.is_some() { "POST" } else { "GET" };
        let request = match &form {
            Some(fields) => client.post(url.clone()).form(fields),
            None => client.get(url.clone()),
        };
        let resp = request
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("walk_at_op: {method} {} failed: {e}", url.path()));
        let status = resp.status();
        // The path only: queries carry state, codes and ID token hints.
        walk.trail
            .push(format!("{method} {} -> {status}", url.path()));
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("walk_at_op: {status} without Location: {walk:#?}"))
                .to_owned();
            let next = url
                .join(&location)
                .unwrap_or_else(|e| panic!("walk_at_op: bad Location {location:?}: {e}"));
            if next.origin() != origin {
                walk.left_to = Some(next.to_string());
                return walk;
            }
            redirects += 1;
            assert!(
                redirects <= MAX_REDIRECTS,
                "walk_at_op: more than {MAX_REDIRECTS} redirects: {walk:#?}"
            );
            url = next;
            form = None;
            continue;
        }
        let body = resp.text().await.unwrap_or_default();
        let page = (status == reqwest::StatusCode::OK)
            .then(|| parse_post_form(&body))
            .flatten();
        let Some(page) = page else {
            let start: String = body.chars().take(600).collect();
            panic!(
                "walk_at_op: the provider answered {status} at {} with no form: {start}\n{walk:#?}",
                url.path()
            );
        };
        let action = url
            .join(&page.action)
            .unwrap_or_else(|e| panic!("walk_at_op: bad form action {:?}: {e}", page.action));
        assert_eq!(
            action.origin(),
            origin,
            "walk_at_op: a form posting outside the provider: {walk:#?}"
        );
        let is_login = page.inputs.iter().any(|(k, _)| k == "password");
        let fields = if is_login {
            walk.asked_for_credentials = true;
            let Some((username, password)) = credentials else {
                return walk;
            };
            assert!(
                !sent_credentials,
                "walk_at_op: the provider refused {username:?}'s credentials: {walk:#?}"
            );
            sent_credentials = true;
            page.inputs
                .iter()
                .map(|(k, v)| match k.as_str() {
                    "username" => (k.clone(), username.to_owned()),
                    "password" => (k.clone(), password.to_owned()),
                    _ => (k.clone(), v.clone()),
                })
                .collect()
        } else {
            walk.confirmations += 1;
            page.inputs.clone()
        };
        walk.trail.push(format!(
            "  form: {}",
            if is_login { "login" } else { "confirm" }
        ));
        forms += 1;
        assert!(
            forms <= MAX_FORMS,
            "walk_at_op: more than {MAX_FORMS} forms: {walk:#?}"
        );
        url = action;
        form = Some(fields);
    }
}
