//! Test OpenID Provider harness.
//!
//! [`TestIdp::start`] runs `tests/idp/server.mjs` (a real `oidc-provider`, pinned in
//! `tests/idp/package-lock.json`) on `127.0.0.1` as a child process, and
//! [`login_at_idp`] walks the IdP side of an authorization-code login like a browser.
//!
//! What the IdP does (details in `tests/idp/server.mjs`):
//! - issuer `http://127.0.0.1:<port>`, discovery at `/.well-known/openid-configuration`,
//!   endpoints `/auth`, `/token`, `/jwks`, `/me` (userinfo), `/session/end`;
//! - RS256 ID tokens signed with a fresh RSA key (random `kid`) per process start;
//! - PKCE S256 required; response type `code` only; clients authenticate with their registered
//!   method ([`IdpClient::token_endpoint_auth_method`], `client_secret_basic` by default): the
//!   other secret method is refused with 401 `invalid_client`; `private_key_jwt` clients (with a
//!   `jwks_uri`, fetched even on 127.0.0.1) are registered at run time by
//!   [`TestIdp::put_client`];
//! - scopes `openid email profile groups`, whose claims (`sub`, `email`, `email_verified`,
//!   `name`, `preferred_username`, `groups`) are also put into the ID token (unless
//!   [`IdpConfig::conform_id_token_claims`]: then only at userinfo); other account claims are
//!   never released;
//! - consent is pre-granted; an `iss` parameter (RFC 9207) is on every authorization response;
//! - state is in memory only: restarting ([`TestIdp::rotate_keys`]) forgets sessions,
//!   codes and tokens.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use url::Url;

/// Longest wait for the IdP's READY line.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// A node process that has not said READY within START_TIMEOUT is killed and started again
/// (seen rarely on a loaded machine: the process hangs before listening).
const START_ATTEMPTS: usize = 3;
/// Longest wait for `npm ci`.
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
/// Per-request timeout for the control endpoints and for each step of [`login_at_idp`].
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed inside the IdP by [`login_at_idp`].
const MAX_REDIRECTS: usize = 10;
/// Forms (login, consent, logout confirmation) submitted by [`login_at_idp`].
const MAX_FORMS: usize = 4;
/// Lines of IdP stderr kept for panic messages.
const STDERR_TAIL: usize = 60;

/// Header sent by [`login_at_idp`] on every IdP request: if the IdP session (cookie) belongs to
/// another account, the IdP asks for a login again, so one cookie jar can log in as several
/// accounts in turn. Without it, an existing IdP session would be reused silently.
pub const ACCOUNT_HEADER: &str = "x-test-idp-account";

#[derive(Clone, Debug, Default)]
pub struct IdpConfig {
    pub clients: Vec<IdpClient>,
    /// account id (the `sub`, and what is typed into the login form) -> claims object.
    pub accounts: serde_json::Map<String, serde_json::Value>,
    /// oidc-provider's `conformIdTokenClaims`: scope claims (email, name, groups) only at
    /// userinfo, the ID token carrying `sub` alone, as several real providers do.
    pub conform_id_token_claims: bool,
    /// Userinfo answers a signed JWT (`application/jwt`, RS256 with the ID-token key).
    pub signed_userinfo: bool,
}

#[derive(Clone, Debug, Default)]
pub struct IdpClient {
    pub client_id: String,
    /// Unused (and not sent) for `private_key_jwt`.
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    /// Where the IdP may send the browser after RP-initiated logout (none: it refuses any).
    pub post_logout_redirect_uris: Vec<String>,
    /// `client_secret_basic` (when `None`), `client_secret_post` or `private_key_jwt`.
    pub token_endpoint_auth_method: Option<String>,
    /// For `private_key_jwt`: where the IdP fetches the client's public keys.
    pub jwks_uri: Option<String>,
    /// Where the IdP posts logout tokens when the user ends the IdP session.
    pub backchannel_logout_uri: Option<String>,
    /// ID tokens and logout tokens carry `sid`.
    pub backchannel_logout_session_required: bool,
}

impl IdpClient {
    /// A `private_key_jwt` client whose public keys the IdP fetches from `jwks_uri`.
    pub fn private_key_jwt(client_id: &str, redirect_uri: String, jwks_uri: &str) -> Self {
        IdpClient {
            client_id: client_id.into(),
            redirect_uris: vec![redirect_uri],
            token_endpoint_auth_method: Some("private_key_jwt".into()),
            jwks_uri: Some(jwks_uri.into()),
            ..IdpClient::default()
        }
    }

    fn metadata(&self) -> Value {
        let mut m = json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
        });
        if let Some(method) = &self.token_endpoint_auth_method {
            m["token_endpoint_auth_method"] = json!(method);
        }
        if let Some(uri) = &self.jwks_uri {
            m["jwks_uri"] = json!(uri);
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            m["backchannel_logout_uri"] = json!(uri);
            m["backchannel_logout_session_required"] =
                json!(self.backchannel_logout_session_required);
        }
        m
    }
}

pub struct TestIdp {
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub issuer: String,
    pub port: u16,
    /// `kid` of the current (only) signing key.
    pub kid: String,
    clients: Vec<IdpClient>,
    accounts: Mutex<serde_json::Map<String, Value>>,
    /// `conform_id_token_claims` and `signed_userinfo`, kept for restarts.
    options: Value,
    process: IdpProcess,
    http: reqwest::Client,
}

struct IdpProcess {
    child: Child,
    /// Held open for the child's lifetime: the IdP exits when its stdin closes.
    stdin: Option<ChildStdin>,
}

struct Ready {
    issuer: String,
    port: u16,
    kid: String,
}

impl TestIdp {
    /// The IdP process's id (benchmarks pin it to a core of its own).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.process.child.id()
    }

    /// Starts an IdP on a free port. Panics with a clear message on failure.
    pub async fn start(config: IdpConfig) -> TestIdp {
        let dir = idp_dir();
        ensure_node_modules(&dir).await;
        let started = Instant::now();
        let options = json!({
            "conform_id_token_claims": config.conform_id_token_claims,
            "signed_userinfo": config.signed_userinfo,
        });
        let mut attempt = 0;
        let (process, ready) = loop {
            attempt += 1;
            match spawn_idp(&dir, 0, &config.clients, &config.accounts, None, &options).await {
                Ok(started) => break started,
                Err(e) if attempt < START_ATTEMPTS => {
                    eprintln!("[test-idp] start attempt {attempt} failed, retrying: {e}")
                }
                Err(e) => panic!("test IdP failed to start after {attempt} attempts: {e}"),
            }
        };
        eprintln!(
            "[test-idp] ready at {} (kid {}) in {} ms",
            ready.issuer,
            ready.kid,
            started.elapsed().as_millis()
        );
        TestIdp {
            issuer: ready.issuer,
            port: ready.port,
            kid: ready.kid,
            clients: config.clients,
            accounts: Mutex::new(config.accounts),
            options,
            process,
            http: control_client(),
        }
    }

    /// Creates or replaces the claims of account `id` in the running IdP (seen by the next
    /// token/userinfo request) and remembers them for restarts. `claims` must be a JSON object.
    pub async fn set_account(&self, id: &str, claims: serde_json::Value) {
        let Value::Object(map) = &claims else {
            panic!("TestIdp::set_account({id:?}): claims must be a JSON object, got {claims}");
        };
        self.accounts
            .lock()
            .unwrap()
            .insert(id.to_string(), Value::Object(map.clone()));
        let mut url = Url::parse(&self.issuer).expect("issuer is a URL");
        url.path_segments_mut()
            .expect("issuer URL has a path")
            .clear()
            .extend(["__test", "accounts", id]);
        let resp = self
            .http
            .put(url)
            .json(&claims)
            .send()
            .await
            .unwrap_or_else(|e| panic!("TestIdp::set_account({id:?}): request failed: {e}"));
        let status = resp.status();
        if status != reqwest::StatusCode::NO_CONTENT {
            let body = resp.text().await.unwrap_or_default();
            panic!("TestIdp::set_account({id:?}): IdP answered {status}: {body}");
        }
    }

    /// Registers (or replaces) a client in the running IdP, e.g. a `private_key_jwt` client once
    /// orgsso published its key set. Forgotten by a restart ([`TestIdp::rotate_keys`]).
    pub async fn put_client(&self, client: &IdpClient) {
        let mut url = Url::parse(&self.issuer).expect("issuer is a URL");
        url.path_segments_mut()
            .expect("issuer URL has a path")
            .clear()
            .extend(["__test", "clients", &client.client_id]);
        let resp = self
            .http
            .put(url)
            .json(&client.metadata())
            .send()
            .await
            .unwrap_or_else(|e| panic!("TestIdp::put_client: request failed: {e}"));
        let status = resp.status();
        if status != reqwest::StatusCode::NO_CONTENT {
            let body = resp.text().await.unwrap_or_default();
            panic!("TestIdp::put_client: IdP answered {status}: {body}");
        }
    }

    /// Restarts the IdP on the same port (same issuer, clients and accounts) with a new
    /// signing key, so `kid` changes and the old key is gone from the JWKS. The restart also
    /// drops every IdP session, code and token; `stats()` counters carry over.
    pub async fn rotate_keys(&mut self) {
        let stats = self.stats().await;
        let old_kid = self.kid.clone();
        self.process.stop().await;
        let accounts = self.accounts.lock().unwrap().clone();
        let mut attempt = 0;
        let (process, ready) = loop {
            attempt += 1;
            match spawn_idp(
                &idp_dir(),
                self.port,
                &self.clients,
                &accounts,
                Some(stats.clone()),
                &self.options,
            )
            .await
            {
                Ok(started) => break started,
                Err(e) if attempt < START_ATTEMPTS => {
                    eprintln!("[test-idp] restart attempt {attempt} failed, retrying: {e}")
                }
                Err(e) => panic!(
                    "test IdP failed to restart on port {} after {attempt} attempts: {e}",
                    self.port
                ),
            }
        };
        assert_eq!(
            ready.issuer, self.issuer,
            "restarted IdP has another issuer"
        );
        assert_ne!(ready.kid, old_kid, "restarted IdP kept its kid");
        self.process = process;
        self.kid = ready.kid;
    }

    /// How the next ID tokens' headers name their key: `"keep"` (as made, the default again
    /// after `rotate_keys`), `"omit"` (no `kid`, re-signed with the same key), or `"replace"`
    /// with `kid` (a kid the JWKS lacks, re-signed with the same key).
    pub async fn set_id_token_kid(&self, mode: &str, kid: Option<&str>) {
        let url = format!("{}/__test/id_token_kid", self.issuer);
        let resp = self
            .http
            .put(&url)
            .json(&json!({"mode": mode, "kid": kid}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("TestIdp::set_id_token_kid: request failed: {e}"));
        assert_eq!(resp.status(), reqwest::StatusCode::NO_CONTENT);
    }

    /// `{"jwks_fetches": n, "token_requests": n, "end_session_hints": n, "token_auth":
    /// {"client_secret_basic": n, …}}`: requests seen on the JWKS and token endpoints,
    /// end-session requests carrying `id_token_hint`, and how each token request authenticated,
    /// since `start` (kept across `rotate_keys`).
    pub async fn stats(&self) -> serde_json::Value {
        let url = format!("{}/__test/stats", self.issuer);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("TestIdp::stats: request failed: {e}"));
        let status = resp.status();
        if !status.is_success() {
            panic!("TestIdp::stats: IdP answered {status}");
        }
        resp.json()
            .await
            .unwrap_or_else(|e| panic!("TestIdp::stats: bad JSON: {e}"))
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        // kill_on_drop does the same; closing stdin makes the IdP exit even if the kill is lost.
        self.process.stdin.take();
        let _ = self.process.child.start_kill();
    }
}

impl IdpProcess {
    async fn stop(&mut self) {
        self.stdin.take();
        let _ = self.child.start_kill();
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => panic!("test IdP did not exit within 10 s of SIGKILL"),
        }
    }
}

/// `tests/idp` of this crate.
fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("idp")
}

fn control_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build reqwest client")
}

static NPM_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Runs `npm ci` in `dir` once per process if `node_modules` is missing or holds another
/// oidc-provider version than the lockfile. A file lock in CARGO_TARGET_TMPDIR also
/// serialises concurrent test processes (e.g. nextest).
async fn ensure_node_modules(dir: &Path) {
    NPM_READY
        .get_or_init(|| async {
            if node_modules_current(dir) {
                return;
            }
            let lock = process_lock("test-idp-npm-ci.lock").await;
            if !node_modules_current(dir) {
                npm_ci(dir).await;
            }
            drop(lock);
        })
        .await;
}

/// An exclusive lock on `CARGO_TARGET_TMPDIR/<name>` held until the file is dropped: one test
/// process at a time installs a tool (e.g. under nextest).
pub async fn process_lock(name: &str) -> std::fs::File {
    let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = lock_path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", lock_path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));
        file
    })
    .await
    .expect("lock task")
}

fn node_modules_current(dir: &Path) -> bool {
    let read =
        |p: PathBuf| -> Option<Value> { serde_json::from_slice(&std::fs::read(p).ok()?).ok() };
    let Some(lock) = read(dir.join("package-lock.json")) else {
        panic!(
            "{} is missing or not JSON",
            dir.join("package-lock.json").display()
        );
    };
    let wanted = lock["packages"]["node_modules/oidc-provider"]["version"].clone();
    let installed =
        read(dir.join("node_modules/oidc-provider/package.json")).map(|v| v["version"].clone());
    wanted.is_string() && installed.as_ref() == Some(&wanted)
}

/// Runs `cmd` in `dir` with its output captured, killed if it outlives `limit`; panics with a
/// clear message (naming `what`) when it cannot run or takes too long.
pub async fn output_within(
    mut cmd: Command,
    dir: &Path,
    what: &str,
    limit: Duration,
) -> std::process::Output {
    let child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what} in {}: {e}", dir.display()));
    tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{what} in {} took more than {limit:?} (killed)",
                dir.display()
            )
        })
        .unwrap_or_else(|e| panic!("{what} in {}: {e}", dir.display()))
}

/// Runs `npm ci` in `dir` (bounded in time), panicking with npm's output when it fails.
pub async fn npm_ci(dir: &Path) {
    eprintln!("[test-idp] running `npm ci` in {}", dir.display());
    let started = Instant::now();
    let mut cmd = Command::new("npm");
    cmd.args(["ci", "--no-audit", "--no-fund"]);
    let out = output_within(cmd, dir, "`npm ci` (is npm installed?)", NPM_CI_TIMEOUT).await;
    if !out.status.success() {
        panic!(
            "`npm ci` in {} failed ({}):\n{}\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "[test-idp] `npm ci` done in {} ms",
        started.elapsed().as_millis()
    );
}

async fn spawn_idp(
    dir: &Path,
    port: u16,
    clients: &[IdpClient],
    accounts: &serde_json::Map<String, Value>,
    initial_stats: Option<Value>,
    options: &Value,
) -> Result<(IdpProcess, Ready), String> {
    let clients: Vec<Value> = clients.iter().map(IdpClient::metadata).collect();
    let mut config = json!({ "port": port, "clients": clients, "accounts": accounts });
    if let Some(stats) = initial_stats {
        config["initial_stats"] = stats;
    }
    for (k, v) in options.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }

    let mut cmd = Command::new("node");
    cmd.arg("server.mjs")
        .current_dir(dir)
        .env("IDP_CONFIG", config.to_string())
        .env_remove("IDP_IGNORE_STDIN")
        .env_remove("DEBUG");
    let started = start_ready_child(cmd, "test-idp", START_TIMEOUT)
        .await
        .map_err(|e| {
            format!(
                "`node server.mjs` in {} (is Node.js installed?): {e}",
                dir.display()
            )
        })?;
    let ready = &started.ready;
    let ready = Ready {
        issuer: ready["issuer"]
            .as_str()
            .ok_or("READY without issuer")?
            .to_string(),
        port: ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("READY without port")?,
        kid: ready["kid"]
            .as_str()
            .ok_or("READY without kid")?
            .to_string(),
    };
    Ok((
        IdpProcess {
            child: started.child,
            stdin: started.stdin,
        },
        ready,
    ))
}

/// A helper process a test started (the test IdP, the Django OP) once it said `READY {json}`.
pub struct ReadyChild {
    pub child: Child,
    /// Held open for the child's lifetime: the helpers exit when their stdin closes.
    pub stdin: Option<ChildStdin>,
    /// The JSON after `READY `.
    pub ready: Value,
}

/// Spawns `cmd` with piped stdio (killed on drop) and waits up to `timeout` for its one
/// `READY {json}` line on stdout. Its stderr (and any other stdout) goes to the test's stderr
/// prefixed with `[label]`; a failure quotes the last lines of its stderr.
pub async fn start_ready_child(
    mut cmd: Command,
    label: &'static str,
    timeout: Duration,
) -> Result<ReadyChild, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");

    // Forward stderr to the test's (captured) stderr and keep a tail for panic messages.
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let stderr_task = {
        let tail = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{label}] {line}");
                let mut t = tail.lock().unwrap();
                if t.len() == STDERR_TAIL {
                    t.pop_front();
                }
                t.push_back(line);
            }
        })
    };
    let stderr_tail = |tail: &Arc<Mutex<VecDeque<String>>>| -> String {
        let t = tail.lock().unwrap();
        if t.is_empty() {
            "(its stderr was empty)".to_string()
        } else {
            format!(
                "its stderr:\n{}",
                t.iter().cloned().collect::<Vec<_>>().join("\n")
            )
        }
    };

    let mut lines = BufReader::new(stdout).lines();
    let waited = tokio::time::timeout(timeout, async {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some(rest) = line.strip_prefix("READY ") {
                        return Ok(rest.to_string());
                    }
                    eprintln!("[{label}] {line}");
                }
                Ok(None) => return Err("it closed its stdout before READY".to_string()),
                Err(e) => return Err(format!("reading its stdout: {e}")),
            }
        }
    })
    .await;
    let ready_json = match waited {
        Ok(Ok(json)) => json,
        Ok(Err(why)) => {
            let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), stderr_task).await;
            let status = match status {
                Ok(Ok(s)) => s.to_string(),
                _ => "still running".to_string(),
            };
            return Err(format!("{why} (exit: {status})\n{}", stderr_tail(&tail)));
        }
        Err(_) => {
            let _ = child.start_kill();
            return Err(format!(
                "no READY line within {timeout:?}\n{}",
                stderr_tail(&tail)
            ));
        }
    };
    let ready: Value = serde_json::from_str(&ready_json)
        .map_err(|e| format!("bad READY line {ready_json:?}: {e}"))?;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{label}] {line}");
        }
    });
    Ok(ReadyChild {
        child,
        stdin,
        ready,
    })
}

/// Walks the IdP side of an authorization-code login like a browser would: GET authorize_url
/// (the URL orgsso redirected to), follow the IdP's redirects within the IdP only, post the
/// login form for `account` (and consent if asked), and return the URL the IdP finally
/// redirects to outside itself (the relying party's callback with code/state/iss, or with
/// error/error_description/state/iss), WITHOUT requesting it.
///
/// "Within the IdP" means the same origin (scheme, host, port) as `authorize_url`.
/// If the cookie jar already holds an IdP session for `account`, no login form is shown
/// (SSO); for another account the IdP asks for a login again (see [`ACCOUNT_HEADER`]).
/// Panics with the IdP's error (e.g. `invalid_redirect_uri`, `invalid_client`) when the IdP
/// shows an error page instead of redirecting, and when `account` is unknown to the IdP.
pub async fn login_at_idp(client: &reqwest::Client, authorize_url: &str, account: &str) -> String {
    let start = Url::parse(authorize_url)
        .unwrap_or_else(|e| panic!("login_at_idp: bad authorize URL {authorize_url:?}: {e}"));
    let idp_origin = start.origin();
    let mut url = start;
    let mut form: Option<Vec<(String, String)>> = None;
    let mut redirects = 0usize;
    let mut forms = 0usize;
    let mut logins = 0usize;
    let mut trail: Vec<String> = Vec::new();

    loop {
        let method = if form.is_some() { "POST" } else { "GET" };
        let request = match &form {
            Some(fields) => client.post(url.clone()).form(fields),
            None => client.get(url.clone()),
        };
        let resp = request
            .header(ACCOUNT_HEADER, account)
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("login_at_idp: {method} {url} failed: {e}\nsteps: {trail:#?}")
            });
        let status = resp.status();
        trail.push(format!("{method} {} -> {status}", path_of(&url)));

        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| {
                    panic!("login_at_idp: {status} without a Location at {url}\nsteps: {trail:#?}")
                })
                .to_string();
            let next = url.join(&location).unwrap_or_else(|e| {
                panic!("login_at_idp: bad Location {location:?} at {url}: {e}\nsteps: {trail:#?}")
            });
            if next.origin() != idp_origin {
                eprintln!("[test-idp] login_at_idp({account:?}) steps: {trail:?}");
                return next.to_string();
            }
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                panic!("login_at_idp: more than {MAX_REDIRECTS} redirects inside the IdP\nsteps: {trail:#?}");
            }
            url = next;
            form = None;
            continue;
        }

        let body = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::OK {
            if let Some(html_form) = parse_post_form(&body) {
                let action = url.join(&html_form.action).unwrap_or_else(|e| {
                    panic!("login_at_idp: bad form action {:?}: {e}", html_form.action)
                });
                if action.origin() != idp_origin {
                    panic!(
                        "login_at_idp: the IdP answered with a form posting to {action} \
                         (response_mode=form_post?); only redirect-based responses are supported\nsteps: {trail:#?}"
                    );
                }
                let prompt = html_form
                    .inputs
                    .iter()
                    .find(|(k, _)| k == "prompt")
                    .map(|(_, v)| v.as_str());
                let fields: Vec<(String, String)> = match prompt {
                    Some("login") => {
                        logins += 1;
                        if logins > 1 {
                            panic!(
                                "login_at_idp: the IdP asked for a login again after logging in as \
                                 {account:?}: is that account known to the IdP (IdpConfig.accounts / \
                                 set_account)?\nsteps: {trail:#?}"
                            );
                        }
                        vec![
                            ("prompt".into(), "login".into()),
                            ("login".into(), account.to_string()),
                            ("password".into(), "test-password".into()),
                        ]
                    }
                    Some("consent") => vec![("prompt".into(), "consent".into())],
                    // e.g. the logout confirmation shown when switching accounts: submit as is.
                    _ => html_form.inputs.clone(),
                };
                trail.push(format!("  form: {}", prompt.unwrap_or("auto-submit")));
                forms += 1;
                if forms > MAX_FORMS {
                    panic!(
                        "login_at_idp: more than {MAX_FORMS} forms at the IdP\nsteps: {trail:#?}"
                    );
                }
                url = action;
                form = Some(fields);
                continue;
            }
        }
        panic!(
            "login_at_idp: the IdP answered {status} at {} instead of redirecting: {}\nsteps: {trail:#?}",
            path_of(&url),
            error_summary(&body)
        );
    }
}

/// Follows an end-session URL (RP-initiated logout) at the IdP like a browser: its redirects
/// inside the IdP, and its confirmation form answered "Yes, sign me out". Returns the URL the
/// IdP finally sends the browser to (the post-logout redirect URI with `state`) WITHOUT
/// requesting it. Panics with the IdP's error page when it refuses the request.
pub async fn logout_at_idp(client: &reqwest::Client, end_session_url: &str) -> String {
    let start = Url::parse(end_session_url)
        .unwrap_or_else(|e| panic!("logout_at_idp: bad URL {end_session_url:?}: {e}"));
    let idp_origin = start.origin();
    let mut url = start;
    let mut form: Option<Vec<(String, String)>> = None;
    let mut trail: Vec<String> = Vec::new();
    for _ in 0..(MAX_REDIRECTS + MAX_FORMS) {
        let method = if form.is_some() { "POST" } else { "GET" };
        let request = match form.take() {
            Some(fields) => client.post(url.clone()).form(&fields),
            None => client.get(url.clone()),
        };
        let resp = request
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("logout_at_idp: {method} {url} failed: {e}\nsteps: {trail:#?}")
            });
        let status = resp.status();
        trail.push(format!("{method} {} -> {status}", path_of(&url)));
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("a redirect has a Location")
                .to_string();
            let next = url.join(&location).expect("Location is a URL");
            if next.origin() != idp_origin {
                return next.to_string();
            }
            url = next;
            continue;
        }
        let body = resp.text().await.unwrap_or_default();
        match parse_post_form(&body) {
            Some(html_form) if status == reqwest::StatusCode::OK => {
                let mut fields = html_form.inputs.clone();
                // The confirmation page's submit button, outside the form: "Yes, sign me out".
                fields.push(("logout".into(), "yes".into()));
                url = url.join(&html_form.action).expect("form action is a URL");
                form = Some(fields);
            }
            _ => panic!(
                "logout_at_idp: the IdP answered {status} at {}: {}\nsteps: {trail:#?}",
                path_of(&url),
                error_summary(&body)
            ),
        }
    }
    panic!("logout_at_idp: too many steps at the IdP\nsteps: {trail:#?}");
}

/// Whether the IdP asks for credentials at `authorize_url` (the browser has no IdP session):
/// follows the IdP's redirects and answers `true` at a login form, `false` when the IdP sends
/// the browser back to the relying party without asking (a live IdP session).
pub async fn idp_asks_for_credentials(client: &reqwest::Client, authorize_url: &str) -> bool {
    let mut url = Url::parse(authorize_url).expect("authorize URL");
    let idp_origin = url.origin();
    for _ in 0..MAX_REDIRECTS {
        let resp = client
            .get(url.clone())
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .expect("IdP request");
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("a redirect has a Location")
                .to_string();
            let next = url.join(&location).expect("Location is a URL");
            if next.origin() != idp_origin {
                return false;
            }
            url = next;
            continue;
        }
        let body = resp.text().await.unwrap_or_default();
        let form = parse_post_form(&body)
            .unwrap_or_else(|| panic!("the IdP answered {status}: {}", error_summary(&body)));
        return form
            .inputs
            .iter()
            .any(|(k, v)| k == "prompt" && v == "login");
    }
    panic!("idp_asks_for_credentials: more than {MAX_REDIRECTS} redirects inside the IdP");
}

fn path_of(url: &Url) -> String {
    // Path only: the query of an authorize URL is long and may carry a code_challenge.
    url.path().to_string()
}

pub struct HtmlForm {
    pub action: String,
    pub inputs: Vec<(String, String)>,
}

/// The first `<form method="post">` of a page: its action (empty when the form has none, which
/// means the page's own URL) and its named inputs with values. Also used for the login and
/// logout-confirmation forms of other providers (`django_op.rs`).
pub fn parse_post_form(html: &str) -> Option<HtmlForm> {
    let lower = html.to_ascii_lowercase();
    let mut search = 0;
    while let Some(rel) = lower[search..].find("<form") {
        let start = search + rel;
        let tag_end = start + lower[start..].find('>')?;
        let tag = &html[start..=tag_end];
        search = tag_end;
        let method = attr(tag, "method").unwrap_or_default();
        if !method.eq_ignore_ascii_case("post") {
            continue;
        }
        let action = attr(tag, "action").unwrap_or_default();
        let form_end = lower[tag_end..]
            .find("</form")
            .map(|i| tag_end + i)
            .unwrap_or(html.len());
        let mut inputs = Vec::new();
        let mut pos = tag_end;
        while let Some(rel) = lower[pos..form_end].find("<input") {
            let istart = pos + rel;
            let iend = istart + lower[istart..].find('>').unwrap_or(form_end - istart);
            let itag = &html[istart..=iend.min(html.len() - 1)];
            if let Some(name) = attr(itag, "name") {
                inputs.push((name, attr(itag, "value").unwrap_or_default()));
            }
            pos = iend;
        }
        return Some(HtmlForm { action, inputs });
    }
    None
}

/// Value of attribute `name` in one HTML tag (double- or single-quoted), entity-decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(rel) = lower[from..].find(name) {
        let at = from + rel;
        from = at + name.len();
        let before_ok = at > 0 && lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - rest.len() + 1;
        let value = tag[value_start..].trim_start();
        let quote = value.chars().next()?;
        if quote == '"' || quote == '\'' {
            let end = value[1..].find(quote)?;
            return Some(html_unescape(&value[1..1 + end]));
        }
        let end = value
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .unwrap_or(value.len());
        return Some(html_unescape(&value[..end]));
    }
    None
}

fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';').filter(|&j| j <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `error: ...; error_description: ...` from the IdP's error page, or the start of the body.
fn error_summary(body: &str) -> String {
    let field = |name: &str| -> Option<String> {
        let marker = format!("<strong>{name}</strong>: ");
        let start = body.find(&marker)? + marker.len();
        let end = start + body[start..].find("</pre>")?;
        Some(html_unescape(&body[start..end]))
    };
    if let Some(error) = field("error") {
        return match field("error_description") {
            Some(d) => format!("error: {error}; error_description: {d}"),
            None => format!("error: {error}"),
        };
    }
    let text: String = body.chars().take(500).collect();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text
    }
}
