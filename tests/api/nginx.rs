//! The verify endpoint behind a real nginx `auth_request` (Debian's nginx, installed by
//! .ci/run): nginx asks orgsso, then passes the identity headers to the protected app.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::spawn_app;

const SECRET: &str = "nginx-test-secret-of-more-than-32-bytes";

fn nginx_binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn nginx_auth_request_lets_through_only_what_orgsso_verifies() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("\n*** SKIPPED nginx_auth_request: nginx is not installed (bash .ci/run installs it) ***\n");
        return;
    };
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let (s, b) = app
        .admin(
            Method::POST,
            "/api/v1/orgs/acme/jwt-secrets",
            Some(json!({"name": "svc", "type": "hs256", "secret": SECRET})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // The protected app echoes the identity headers nginx hands it.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    let echo = Router::new().route(
        "/{*path}",
        get(|h: HeaderMap| async move {
            let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            Json(json!({"email": get("x-auth-email"), "role": get("x-auth-role"), "subject": get("x-auth-subject")}))
        }),
    );
    let upstream_task = tokio::spawn(async move { axum::serve(upstream, echo).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let port = free_port().await;
    let orgsso = app.base.trim_start_matches("http://").to_owned();
    let d = dir.path().display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_orgsso;
      auth_request_set $auth_email $upstream_http_x_auth_email;
      auth_request_set $auth_role $upstream_http_x_auth_role;
      auth_request_set $auth_subject $upstream_http_x_auth_subject;
      proxy_set_header X-Auth-Email $auth_email;
      proxy_set_header X-Auth-Role $auth_role;
      proxy_set_header X-Auth-Subject $auth_subject;
      proxy_pass http://127.0.0.1:{upstream_port};
    }}
    location = /_orgsso {{
      internal;
      proxy_pass http://{orgsso}/auth/acme/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
    }}
  }}
}}
"#
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut child = tokio::process::Command::new(nginx)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .kill_on_drop(true)
        .spawn()
        .expect("nginx starts");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert!(up, "nginx did not start: {}", log());

    let anonymous = client.get(format!("{base}/orders")).send().await.unwrap();
    assert_eq!(
        anonymous.status(),
        StatusCode::UNAUTHORIZED,
        "no credentials: nginx refuses"
    );

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims =
        json!({"sub": "svc-7", "email": "svc7@example.com", "role": "admin", "exp": now + 300});
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let through = client
        .get(format!("{base}/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), StatusCode::OK, "{}", log());
    let seen: Value = through.json().await.unwrap();
    assert_eq!(
        seen,
        json!({"email": "svc7@example.com", "role": "admin", "subject": "svc-7"})
    );

    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"some-other-secret-of-32-bytes-or-more"),
    )
    .unwrap();
    let refused = client
        .get(format!("{base}/orders"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    child.kill().await.ok();
    upstream_task.abort();
}
