//! Starting orgsso for a test: a fresh SQLite file in a temp dir, port 0, and clients that
//! behave like a browser (cookie jar, no automatic redirects).

use std::time::Duration;

use orgsso::access::Access;
use orgsso::configuration::Settings;
use orgsso::crypto::Secret;
use orgsso::startup::Application;
use orgsso::store::Store;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::idp::{login_at_idp, IdpClient, IdpConfig, TestIdp};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const CLIENT_ID: &str = "orgsso-test";
pub const CLIENT_SECRET: &str = "test-client-secret-that-must-never-leak";

pub struct TestApp {
    /// Where this instance listens.
    pub base: String,
    /// Where `/metrics` is served alone, when `[metrics] listen` is set.
    pub metrics: Option<String>,
    /// The public URL (the load balancer's, when several instances share one).
    pub public: String,
    pub database_url: String,
    pub api: Client,
    pub store: Store,
    pub access: std::sync::Arc<Access>,
    pub db_path: std::path::PathBuf,
    /// Answers for names ahead of DNS, as orgsso's outbound clients see them (a rebinding).
    pub hosts: orgsso::outbound::HostOverrides,
    _dir: TempDir,
    _server: tokio::task::JoinHandle<()>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    // Logs only on request (TEST_LOG=1), so a failing test's output stays readable.
    if std::env::var_os("TEST_LOG").is_some() {
        orgsso::telemetry::init(orgsso::configuration::LogFormat::Text);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("orgsso.db");
    let database_url = match backend() {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", db_path.display()),
        Backend::Postgres(server) => fresh_pg_database(&server).await,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut settings = Settings::defaults();
    settings.listen = addr.to_string();
    settings.public_url = format!("http://{addr}").parse().unwrap();
    settings.database_url = Secret::new(database_url.clone());
    settings.data_dir = dir.path().join("data");
    settings.admin_token = Some(Secret::new(ADMIN_TOKEN));
    settings.oidc.http_timeout_secs = 2;
    customise(&mut settings);
    let database_url = settings.database_url.expose().to_owned();
    let public = settings
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let app = Application::build_with_listener(settings, listener)
        .await
        .expect("app builds");
    let (store, access) = (app.state.store.clone(), app.state.access.clone());
    let hosts = app.state.sso.host_overrides().clone();
    let metrics = app.metrics_addr().map(|a| format!("http://{a}"));
    let server = tokio::spawn(async move {
        app.run_until_stopped().await.expect("server runs");
    });
    // On PostgreSQL caches answer only once the listener hears other instances: wait for it,
    // so what a test sees does not depend on when the listener happened to connect.
    for _ in 0..200 {
        if access.is_live() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    TestApp {
        base: format!("http://{addr}"),
        metrics,
        public,
        database_url,
        api: Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        store,
        access,
        db_path,
        hosts,
        _dir: dir,
        _server: server,
    }
}

/// A browser: its own cookie jar (path-aware), redirects followed by hand.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The anti-forgery token in a page's forms.
pub fn form_token_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field in the page:\n{html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

pub fn location(resp: &Response) -> String {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .unwrap_or_else(|| panic!("no Location header on a {} answer", resp.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/sso/callback", self.public)
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .api
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn create_org(&self, slug: &str, domains: &[&str]) {
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                "/api/v1/orgs",
                Some(json!({"slug": slug, "name": format!("Org {slug}"), "domains": domains})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Connects the org to `issuer` and returns the answer (with `login_url`).
    pub async fn connect(&self, slug: &str, issuer: &str) -> Value {
        let (status, body) = self
            .admin(
                reqwest::Method::PUT,
                &format!("/api/v1/orgs/{slug}/sso"),
                Some(json!({"issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "scopes": ["openid", "email", "profile", "groups"]})),
            )
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {body}"
        );
        body
    }

    pub async fn set_rules(&self, slug: &str, rules: Value) {
        let (status, body) = self
            .admin(
                reqwest::Method::PUT,
                &format!("/api/v1/orgs/{slug}/sso/role-mapping"),
                Some(rules),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn members(&self, slug: &str) -> Vec<Value> {
        let (status, body) = self
            .admin(
                reqwest::Method::GET,
                &format!("/api/v1/orgs/{slug}/members"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    }

    /// The status of a plain `GET path` (no cookies, no token).
    pub async fn status_of(&self, path: &str) -> StatusCode {
        self.api.get(self.url(path)).send().await.unwrap().status()
    }

    /// The anti-forgery token in the forms of the page at `path`, for this browser's session.
    pub async fn form_token(&self, browser: &Client, path: &str) -> String {
        let html = browser
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        form_token_in(&html)
    }

    /// Signs this browser out the way its sign-out button does (with the page's form token).
    pub async fn logout(&self, browser: &Client) -> Response {
        let csrf = self.form_token(browser, "/").await;
        browser
            .post(self.url("/logout"))
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap()
    }

    /// A browser signed in to the console as the operator (with the admin token).
    pub async fn operator_console(&self) -> Client {
        let b = browser();
        let ok = b
            .post(self.url("/admin/login"))
            .form(&[("token", ADMIN_TOKEN)])
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::SEE_OTHER, "operator sign-in");
        b
    }

    /// The HTML of a page at `path` as `browser` sees it.
    pub async fn page_text(&self, browser: &Client, path: &str) -> String {
        browser
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `GET /api/v1/me` in this browser: `Some(identity)` when signed in, `None` on 401.
    pub async fn me(&self, browser: &Client) -> Option<Value> {
        let resp = browser.get(self.url("/api/v1/me")).send().await.unwrap();
        match resp.status() {
            StatusCode::OK => Some(resp.json().await.unwrap()),
            StatusCode::UNAUTHORIZED => None,
            other => panic!("/api/v1/me answered {other}"),
        }
    }

    /// Signs in through `login_url` at the real IdP as `account`; returns orgsso's answer to
    /// the callback.
    pub async fn login(&self, browser: &Client, login_url: &str, account: &str) -> Response {
        let start = browser.get(login_url).send().await.unwrap();
        assert_eq!(
            start.status(),
            StatusCode::SEE_OTHER,
            "login URL should redirect to the IdP"
        );
        let callback = login_at_idp(browser, &location(&start), account).await;
        assert!(
            callback.starts_with(&self.redirect_uri()),
            "IdP sent the browser to {callback}"
        );
        browser.get(&callback).send().await.unwrap()
    }
}

/// A real IdP with one client for this app and the given accounts.
pub async fn start_idp(app: &TestApp, accounts: Value) -> TestIdp {
    TestIdp::start(IdpConfig {
        clients: vec![IdpClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![app.redirect_uri()],
            post_logout_redirect_uris: vec![format!("{}/signed-out", app.public)],
            ..IdpClient::default()
        }],
        accounts: accounts.as_object().unwrap().clone(),
        ..IdpConfig::default()
    })
    .await
}

/// A published client key set: one key, public members only (no private part).
pub fn assert_public_key_set(set: &Value) {
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{set}");
    let mut members: Vec<&str> = keys[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort();
    assert_eq!(
        members,
        ["alg", "crv", "kid", "kty", "use", "x", "y"],
        "no private part: {set}"
    );
    assert_eq!(keys[0]["alg"], "ES256");
}

pub fn account(email: &str, name: &str, groups: &[&str]) -> Value {
    json!({"email": email, "email_verified": true, "name": name, "groups": groups})
}

/// What the database holds at rest, as bytes: the SQLite file (with its WAL), or on PostgreSQL
/// every row of the tables that hold secrets, as text.
pub async fn raw_database(app: &TestApp) -> Vec<u8> {
    if app.database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        let mut out = Vec::new();
        for table in [
            "sso_connections",
            "jwt_secrets",
            "signing_keys",
            "sessions",
            "login_flows",
            "audit_events",
        ] {
            let rows: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            for (r,) in rows {
                out.extend(r.into_bytes());
            }
        }
        return out;
    }
    let mut bytes = std::fs::read(&app.db_path).unwrap_or_default();
    let wal = app.db_path.with_extension("db-wal");
    bytes.extend(std::fs::read(wal).unwrap_or_default());
    bytes
}

pub enum Backend {
    Sqlite,
    /// The URL of a PostgreSQL server where tests may create databases.
    Postgres(String),
}

/// `ORGSSO_TEST_BACKEND=postgres` runs the suite on PostgreSQL at `ORGSSO_TEST_PG_URL`.
pub fn backend() -> Backend {
    match std::env::var("ORGSSO_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres(
            pg_server().expect("ORGSSO_TEST_BACKEND=postgres needs ORGSSO_TEST_PG_URL"),
        ),
        _ => Backend::Sqlite,
    }
}

/// The PostgreSQL server tests may use (`ORGSSO_TEST_PG_URL`, which .ci/run always sets).
pub fn pg_server() -> Option<String> {
    std::env::var("ORGSSO_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A new, empty database on `server` for one test, so tests never see each other's data.
pub async fn fresh_pg_database(server: &str) -> String {
    use sqlx::ConnectOptions;
    let name = format!(
        "orgsso_t_{}",
        orgsso::crypto::random_token(9)
            .to_lowercase()
            .replace(['-', '_'], "x")
    );
    let opts: sqlx::postgres::PgConnectOptions = server
        .parse()
        .expect("ORGSSO_TEST_PG_URL is a postgres URL");
    let mut conn = opts
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at ORGSSO_TEST_PG_URL: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}
