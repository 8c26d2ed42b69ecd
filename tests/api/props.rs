//! No 5xx from any input: random paths, queries, JSON and form bodies at every route family a
//! stranger (or a tenant's admin) reaches, on the backend the suite runs on. The parsers' own
//! property tests are in `src/props.rs`.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, ADMIN_TOKEN};

/// A path segment: any bytes, percent-encoded (so `%00`, `%2F`, `..` and UTF-8 garbage arrive).
fn segment() -> impl Strategy<Value = String> {
    // Bytes that matter to parsers and databases, often; any byte, sometimes.
    let byte = prop_oneof![
        Just(0u8),
        Just(b'/'),
        Just(b'.'),
        Just(b'%'),
        Just(b'\\'),
        Just(0xFFu8),
        Just(b'a'),
        any::<u8>(),
    ];
    prop_oneof![
        prop::collection::vec(byte, 0..40)
            .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect::<String>()),
        "[a-z0-9._~-]{0,30}",
        Just("acme".to_owned()),
        Just("..".to_owned()),
    ]
}

fn request() -> impl Strategy<Value = (Method, String, Option<(&'static str, Vec<u8>)>)> {
    let prefix = prop::sample::select(vec![
        "/auth/{}/verify",
        "/sso/{}",
        "/sso/callback?state={}&code={}",
        "/api/v1/orgs/{}",
        "/api/v1/orgs/acme/{}",
        "/api/v1/orgs/{}/sso/role-mapping/test",
        "/api/v1/orgs/acme/jwt-secrets/{}",
        "/api/v1/orgs/acme/audit?before={}&limit={}",
        "/admin/orgs/{}",
        "/login?return_to={}",
        "/sso/backchannel-logout?x={}",
        "/scim/v2/{}/Users",
        "/setup/{}",
        "/setup/{}/{}",
        "/api/v1/orgs/acme/setup-links/{}",
        "/{}",
    ]);
    let method = prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]);
    let body = prop_oneof![
        Just(None),
        prop_oneof![any::<String>(), r#"[\x00-\x1f"\\a-z%/@.]{0,20}"#].prop_map(|s| Some((
            "application/json",
            json!({"slug": s, "name": s, "domains": [s], "claims": {"groups": [s]}, "email": s})
                .to_string()
                .into_bytes()
        ))),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| Some(("application/json", b))),
        prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| Some(("application/x-www-form-urlencoded", b))),
        "[a-z_]{1,10}=[%0-9A-Fa-z]{0,30}(&[a-z_]{1,10}=[%0-9A-Fa-z]{0,30}){0,3}"
            .prop_map(|s| Some(("application/x-www-form-urlencoded", s.into_bytes()))),
    ];
    (method, prefix, segment(), segment(), body).prop_map(|(m, p, a, b, body)| {
        let path = p.replacen("{}", &a, 1).replacen("{}", &b, 1);
        (m, path, body)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_at_any_route_gets_a_5xx() {
    let app = spawn_app().await;
    app.create_org("acme", &["acme.test"]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let rt = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(
            &(request(), any::<bool>()),
            |((method, path, body), admin)| {
                let mut req = client.request(method.clone(), app.url(&path));
                if admin {
                    req = req.bearer_auth(ADMIN_TOKEN);
                }
                if let Some((ct, bytes)) = body {
                    req = req.header("content-type", ct).body(bytes);
                }
                let status = rt
                    .block_on(req.send())
                    .map_err(|e| TestCaseError::fail(format!("{method} {path}: {e}")))?
                    .status();
                prop_assert!(
                    !status.is_server_error(),
                    "{} {} answered {}",
                    method,
                    path,
                    status
                );
                Ok(())
            },
        )
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
