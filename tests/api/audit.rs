//! The audit log: retention (only events older than the cutoff go, in bounded batches) and
//! paging of the admin API and the console (every event exactly once, bad parameters a 400).

use std::collections::HashSet;

use orgsso::store::{new_id, AuditCursor, OrgRow, Store};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, ADMIN_TOKEN};

async fn org(store: &Store, slug: &str) -> OrgRow {
    let org = OrgRow {
        id: new_id(),
        slug: slug.into(),
        name: slug.to_uppercase(),
        created_at: 1_000,
    };
    store.create_org(&org, &[], "test").await.unwrap();
    org
}

/// Every audit event of the org, newest first, read in one page.
async fn all_ids(store: &Store, org_id: &str) -> Vec<i64> {
    let page = store
        .audit_page(org_id, AuditCursor::Newest, 100_000)
        .await
        .unwrap();
    assert!(!page.older && !page.newer);
    page.events.iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn retention_deletes_only_events_older_than_the_cutoff_in_bounded_batches() {
    // The service's own purge off (its first run is at start): this test purges by hand.
    let app = spawn_app_with(|s| s.audit.retention_days = 0).await;
    let acme = org(&app.store, "acme").await;
    let other = org(&app.store, "other").await;
    // Times passed in: ten old events (before 5_000) and five recent ones per org.
    for (o, t) in [&acme, &other]
        .into_iter()
        .flat_map(|o| (0..15).map(move |i| (o, if i < 10 { 2_000 + i } else { 5_000 + i })))
    {
        app.store
            .audit(Some(&o.id), "test", "x.event", &json!({"t": t}), t)
            .await
            .unwrap();
    }
    let before =
        all_ids(&app.store, &acme.id).await.len() + all_ids(&app.store, &other.id).await.len();
    assert_eq!(before, 32, "15 and org.create per org");
    // One batch of 3 at most: the three oldest go, nothing recent.
    assert_eq!(app.store.purge_audit_before(5_000, 3, 1).await.unwrap(), 3);
    // The rest of the backlog in batches of 4: 2 × 10 old + the two `org.create` (t = 1000),
    // less the three already gone.
    assert_eq!(
        app.store.purge_audit_before(5_000, 4, 100).await.unwrap(),
        19
    );
    assert_eq!(
        app.store.purge_audit_before(5_000, 4, 100).await.unwrap(),
        0
    );
    for o in [&acme, &other] {
        let page = app
            .store
            .audit_page(&o.id, AuditCursor::Newest, 100)
            .await
            .unwrap();
        assert_eq!(page.events.len(), 5, "{}: the recent ones stay", o.slug);
        assert!(page.events.iter().all(|e| e.created_at >= 5_000));
    }
    // The cutoff is exclusive: the events exactly at it (one per org) stay, then go.
    assert_eq!(
        app.store.purge_audit_before(5_010, 10, 10).await.unwrap(),
        0
    );
    assert_eq!(
        app.store.purge_audit_before(5_011, 10, 10).await.unwrap(),
        2
    );
}

/// The `Link` header's target for `rel`, as a path.
fn link(resp: &reqwest::Response, rel: &str) -> Option<String> {
    let header = resp.headers().get("link")?.to_str().unwrap().to_owned();
    header.split(", ").find_map(|l| {
        let (target, params) = l.split_once(">; ")?;
        (params == format!("rel=\"{rel}\"")).then(|| target.trim_start_matches('<').to_owned())
    })
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.api
        .get(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn api_paging_walks_every_event_exactly_once_both_ways() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let acme = app.store.org_by_slug("acme").await.unwrap().unwrap();
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    for i in 0..22 {
        app.store
            .audit(Some(&acme.id), "test", "x.event", &json!({"i": i}), t)
            .await
            .unwrap();
    }
    let every = all_ids(&app.store, &acme.id).await;
    assert_eq!(every.len(), 23, "22 and org.create");

    // Older and older, five at a time.
    let mut seen = Vec::new();
    let mut pages = vec!["/api/v1/orgs/acme/audit?limit=5".to_owned()];
    let mut next = Some(pages[0].clone());
    for _ in 0..10 {
        let Some(path) = next.take() else { break };
        let resp = get(&app, &path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        next = link(&resp, "next");
        if let Some(n) = &next {
            pages.push(n.clone());
        }
        let body: Value = resp.json().await.unwrap();
        let page: Vec<i64> = body
            .as_array()
            .expect("the body stays an array")
            .iter()
            .map(|e| {
                assert!(
                    e["actor"].is_string() && e["action"].is_string() && e["created_at"].is_i64()
                );
                e["id"].as_i64().unwrap()
            })
            .collect();
        assert!(page.len() <= 5 && !page.is_empty(), "{path}: {page:?}");
        seen.extend(page);
    }
    assert!(next.is_none(), "the walk ends");
    assert_eq!(pages.len(), 5, "23 events, 5 a page");
    assert_eq!(seen, every, "every event once, newest first");

    // And back, newer and newer, from the last page.
    let last = get(&app, pages.last().unwrap()).await;
    assert!(link(&last, "next").is_none());
    let mut prev = link(&last, "prev");
    let mut back: Vec<i64> = last
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    for _ in 0..10 {
        let Some(path) = prev.take() else { break };
        let resp = get(&app, &path).await;
        prev = link(&resp, "prev");
        let ids: Vec<i64> = resp
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        back.splice(0..0, ids);
    }
    assert_eq!(back, every, "walked back, every event once");
    let unique: HashSet<_> = back.iter().collect();
    assert_eq!(unique.len(), every.len());

    // Without parameters: the newest 100 at most, no link when everything fits.
    let resp = get(&app, "/api/v1/orgs/acme/audit").await;
    assert!(resp.headers().get("link").is_none());
    assert_eq!(
        resp.json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        23
    );
}

#[tokio::test]
async fn bad_paging_parameters_are_a_clear_400() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    for (query, says) in [
        ("before=abc", "`before` must be an event id"),
        ("before=0", "`before` must be an event id"),
        ("after=-1", "`after` must be an event id"),
        ("before=3&after=1", "not both"),
        ("limit=0", "`limit` must be a whole number from 1 to 1000"),
        (
            "limit=1001",
            "`limit` must be a whole number from 1 to 1000",
        ),
        (
            "limit=lots",
            "`limit` must be a whole number from 1 to 1000",
        ),
    ] {
        let (status, body) = app
            .admin(
                Method::GET,
                &format!("/api/v1/orgs/acme/audit?{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
    // A cursor past either end is not an error: an empty page, no dead links.
    let resp = get(&app, "/api/v1/orgs/acme/audit?before=1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("link").is_none());
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([]));

    let console = app.operator_console().await;
    let resp = console
        .get(app.url("/admin/orgs/acme/audit?limit=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("`limit` must be a whole number"));
}

#[tokio::test]
async fn console_audit_pages_have_older_and_newer_links() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let acme = app.store.org_by_slug("acme").await.unwrap().unwrap();
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    for i in 0..4 {
        app.store
            .audit(
                Some(&acme.id),
                "test",
                &format!("x.event{i}"),
                &json!({}),
                t,
            )
            .await
            .unwrap();
    }
    let b = app.operator_console().await;
    let href = |html: &str, id: &str| -> Option<String> {
        let start = html.find(&format!("id=\"{id}\" href=\""))? + id.len() + 12;
        let end = start + html[start..].find('"')?;
        Some(
            html[start..end]
                .replace("&amp;", "&")
                .replace("&#x2f;", "/"),
        )
    };
    let first = app.page_text(&b, "/admin/orgs/acme/audit?limit=2").await;
    assert!(first.contains("x.event3") && first.contains("x.event2"));
    assert!(!first.contains("x.event1"));
    assert!(href(&first, "audit-newer").is_none());
    let older = href(&first, "audit-older").expect("an older link");
    let second = app.page_text(&b, &older).await;
    assert!(
        second.contains("x.event1") && second.contains("x.event0"),
        "{second}"
    );
    let third = app
        .page_text(&b, &href(&second, "audit-older").expect("older again"))
        .await;
    assert!(third.contains("org.create") && href(&third, "audit-older").is_none());
    let newer = href(&third, "audit-newer").expect("a newer link");
    let back = app.page_text(&b, &newer).await;
    assert!(back.contains("x.event1") && back.contains("x.event0"));
    assert!(href(&back, "audit-newer").is_some());
}
