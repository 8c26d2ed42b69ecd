//! A directory's first SCIM sync through the HTTP API: 10,000 users created (POST /Users, the
//! lookup by `userName eq` each client sends first included), 500 groups created and filled
//! with Entra ID-style PATCHes (`add members`, 20 members each, 10,000 memberships in all),
//! then list paging deep in the set (startIndex 9901). Release build, in process, SQLite file;
//! also PostgreSQL when `ORGSSO_TEST_PG_URL` is set (a fresh database). Every request must
//! succeed; the bench fails otherwise.
//!
//! Run: `cargo bench --bench scim_sync` (USERS=n, GROUPS=n, CONCURRENCY=n to change the sizes;
//! defaults 10000, 500, 8).

use std::sync::Arc;
use std::time::{Duration, Instant};

use orgsso::configuration::Settings;
use orgsso::crypto::Secret;
use orgsso::startup::Application;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

const ADMIN: &str = "bench-admin-token";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Target {
    base: String,
    token: String,
    api: Client,
}

impl Target {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .api
            .request(method, format!("{}/scim/v2/bench{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

async fn start(database_url: String) -> (Target, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = Settings::defaults();
    settings.public_url = format!("http://{addr}").parse().unwrap();
    settings.database_url = Secret::new(database_url);
    settings.data_dir = dir.path().join("data");
    settings.admin_token = Some(Secret::new(ADMIN));
    let app = Application::build_with_listener(settings, listener)
        .await
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    let base = format!("http://{addr}");
    let api = Client::new();
    let ok = api
        .post(format!("{base}/api/v1/orgs"))
        .bearer_auth(ADMIN)
        .json(&json!({"slug": "bench", "name": "Bench"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    let token: Value = api
        .post(format!("{base}/api/v1/orgs/bench/scim-tokens"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    (Target { base, token, api }, dir)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run(label: &str, database_url: String) {
    let (users, groups, concurrency) = (
        env("USERS", 10_000),
        env("GROUPS", 500),
        env("CONCURRENCY", 8),
    );
    let (target, _dir) = start(database_url).await;
    let target = Arc::new(target);
    let gate = Arc::new(Semaphore::new(concurrency));

    // Users: each is looked up first (as Okta and Entra ID do), then created.
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..users {
        let (t, gate) = (target.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let name = format!("user{i:05}@bench.test");
            let (s, found) = t
                .call(
                    Method::GET,
                    &format!("/Users?filter=userName%20eq%20%22{name}%22"),
                    None,
                )
                .await;
            assert_eq!(
                (s, found["totalResults"].as_u64()),
                (StatusCode::OK, Some(0)),
                "lookup {i}"
            );
            let (s, body) = t
                .call(
                    Method::POST,
                    "/Users",
                    Some(json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": name, "externalId": format!("ext-{i}"), "active": true,
                        "name": {"givenName": "User", "familyName": format!("{i}")},
                        "emails": [{"value": name, "type": "work", "primary": true}]
                    })),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "create {i}: {body}");
            body["id"].as_str().unwrap().to_owned()
        });
    }
    let mut ids = Vec::with_capacity(users);
    while let Some(id) = tasks.join_next().await {
        ids.push(id.expect("user task"));
    }
    let users_time = t0.elapsed();

    // Groups: created empty, then filled with one PATCH each.
    let t1 = Instant::now();
    let per_group = users.checked_div(groups).unwrap_or(0);
    let ids = Arc::new(ids);
    let mut tasks = tokio::task::JoinSet::new();
    for g in 0..groups {
        let (t, gate, ids) = (target.clone(), gate.clone(), ids.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let (s, body) = t
                .call(
                    Method::POST,
                    "/Groups",
                    Some(
                        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": format!("group {g:03}"), "externalId": format!("gext-{g}")}),
                    ),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "group {g}: {body}");
            let gid = body["id"].as_str().unwrap().to_owned();
            let members: Vec<Value> = ids[g * per_group..(g + 1) * per_group]
                .iter()
                .map(|id| json!({"value": id}))
                .collect();
            let (s, body) = t
                .call(
                    Method::PATCH,
                    &format!("/Groups/{gid}"),
                    Some(json!({"schemas": [PATCH_OP], "Operations": [
                        {"op": "Add", "path": "members", "value": members}]})),
                )
                .await;
            assert_eq!(s, StatusCode::NO_CONTENT, "members of group {g}: {body}");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("group task");
    }
    let groups_time = t1.elapsed();
    let total = t0.elapsed();

    // Paging deep in the set, and a lookup, 20 times each (sequential).
    let mut deep = Vec::new();
    let mut first = Vec::new();
    let mut lookup = Vec::new();
    let start_index = users.saturating_sub(99).max(1);
    for _ in 0..20 {
        let t = Instant::now();
        let (s, page) = target
            .call(
                Method::GET,
                &format!("/Users?startIndex={start_index}&count=100"),
                None,
            )
            .await;
        deep.push(t.elapsed());
        assert_eq!(s, StatusCode::OK);
        assert_eq!(page["totalResults"].as_u64(), Some(users as u64));
        let t = Instant::now();
        let (s, _) = target
            .call(Method::GET, "/Users?startIndex=1&count=100", None)
            .await;
        first.push(t.elapsed());
        assert_eq!(s, StatusCode::OK);
        let t = Instant::now();
        let (s, found) = target
            .call(
                Method::GET,
                "/Users?filter=userName%20eq%20%22user04242%40bench.test%22",
                None,
            )
            .await;
        lookup.push(t.elapsed());
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            found["totalResults"].as_u64(),
            Some(u64::from(users > 4242))
        );
    }
    println!(
        "{label}: {users} users + {groups} groups ({} memberships), concurrency {concurrency}",
        per_group * groups
    );
    println!(
        "  users (lookup + create each): {:>8.2?}  {:>7.0} users/s",
        users_time,
        users as f64 / users_time.as_secs_f64()
    );
    println!("  groups (create + PATCH add):  {groups_time:>8.2?}");
    println!(
        "  first sync total:             {total:>8.2?}  {:>7.0} users/s overall, 0 errors",
        users as f64 / total.as_secs_f64()
    );
    println!(
        "  GET /Users count=100, median of 20: startIndex={start_index} {:>7.2?}, startIndex=1 {:>7.2?}; userName eq lookup {:>7.2?}",
        median(deep),
        median(first),
        median(lookup)
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    run(
        "SQLite",
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
    )
    .await;
    if let Some(server) = std::env::var("ORGSSO_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        use sqlx::ConnectOptions;
        let name = format!(
            "orgsso_bench_{}",
            orgsso::crypto::random_token(6)
                .to_lowercase()
                .replace(['-', '_'], "x")
        );
        let opts: sqlx::postgres::PgConnectOptions = server.parse().unwrap();
        let mut conn = opts.connect().await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&format!("/{name}"));
        run("PostgreSQL", url.to_string()).await;
    }
}
