//! "Login with SSO" routing that no tenant can hijack: a verified domain routes only to its
//! org whatever any IdP asserted; otherwise this browser's own memory of where it signed in
//! (a MAC'd cookie naming orgs); otherwise a page asking for the login URL, never a redirect.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{account, browser, location, spawn_app, start_idp, TestApp};
use crate::idp::TestIdp;

struct Tenants {
    app: TestApp,
    _acme_idp: TestIdp,
    _globex_idp: TestIdp,
    acme_url: String,
    globex_url: String,
}

/// acme verifies acme.test; globex verifies globex.test and its IdP asserts an acme.test
/// address (mallory) and one in a domain nobody verified (pat).
async fn tenants() -> Tenants {
    let app = spawn_app().await;
    let acme_idp = start_idp(
        &app,
        json!({
            "dave": account("dave@acme.test", "Dave", &[]),
            "pat": account("pat@freelance.test", "Pat", &[]),
        }),
    )
    .await;
    let globex_idp = start_idp(
        &app,
        json!({
            "mallory": account("ceo@acme.test", "Not the CEO", &[]),
            "pat": account("pat@freelance.test", "Pat", &[]),
        }),
    )
    .await;
    app.create_org("acme", &["acme.test"]).await;
    app.create_org("globex", &["globex.test"]).await;
    let acme_url = app.connect("acme", &acme_idp.issuer).await["login_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let globex_url = app.connect("globex", &globex_idp.issuer).await["login_url"]
        .as_str()
        .unwrap()
        .to_owned();
    Tenants {
        app,
        _acme_idp: acme_idp,
        _globex_idp: globex_idp,
        acme_url,
        globex_url,
    }
}

async fn route(app: &TestApp, b: &reqwest::Client, email: &str) -> reqwest::Response {
    b.post(app.url("/login/sso"))
        .form(&[("email", email)])
        .send()
        .await
        .unwrap()
}

fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = &rest[rest.find('/').unwrap_or(rest.len())..];
    path.split('?').next().unwrap()
}

async fn audit(app: &TestApp, slug: &str) -> Vec<Value> {
    let (status, body) = app
        .admin(Method::GET, &format!("/api/v1/orgs/{slug}/audit"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

#[tokio::test]
async fn a_verified_domain_routes_only_to_its_org_whatever_another_tenants_idp_asserted() {
    let t = tenants().await;
    let mallory = browser();
    let resp = t.app.login(&mallory, &t.globex_url, "mallory").await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "globex's IdP may sign its own people in"
    );

    // From any browser, mallory's own included (it remembers globex), acme.test goes to acme.
    for b in [&browser(), &mallory] {
        let resp = route(&t.app, b, "ceo@acme.test").await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let to = location(&resp);
        assert_eq!(path_of(&to), path_of(&t.acme_url), "{to}");
        assert!(to.contains("login_hint=ceo%40acme.test"), "{to}");
    }

    // Both orgs' audit logs say what happened.
    let globex_login = audit(&t.app, "globex")
        .await
        .into_iter()
        .find(|e| e["action"] == "login")
        .expect("globex has the login event");
    assert_eq!(
        globex_login["detail"]["email_domain_verified_by"], "acme",
        "{globex_login}"
    );
    let acme_note = audit(&t.app, "acme")
        .await
        .into_iter()
        .find(|e| e["action"] == "login.foreign_domain_email")
        .expect("acme hears of an IdP asserting its domain");
    assert_eq!(acme_note["detail"]["email"], "ceo@acme.test");
    assert_eq!(acme_note["detail"]["asserted_in_org"], "globex");
    assert_eq!(acme_note["detail"]["domain_verified_by"], "acme");

    // An email in the org's own domain is not noted.
    t.app.login(&browser(), &t.acme_url, "dave").await;
    let notes = audit(&t.app, "acme")
        .await
        .into_iter()
        .filter(|e| e["action"] == "login.foreign_domain_email")
        .count();
    assert_eq!(notes, 1);
}

#[tokio::test]
async fn an_unclaimed_domain_routes_by_this_browsers_memory_or_not_at_all() {
    let t = tenants().await;

    // A stranger: a clear page, no redirect, even though globex's IdP knows this email.
    let pat = browser();
    assert_eq!(
        t.app.login(&browser(), &t.globex_url, "pat").await.status(),
        StatusCode::SEE_OTHER
    );
    let resp = route(&t.app, &pat, "pat@freelance.test").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.headers().get("location").is_none());
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Ask your administrator for your organisation&#x27;s login URL")
            || page.contains("Ask your administrator for your organisation's login URL"),
        "{page}"
    );

    // After a sign-in through the login URL, this browser remembers the org (not the email).
    let signed = t.app.login(&pat, &t.globex_url, "pat").await;
    let set_cookie: Vec<_> = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|c| c.starts_with("orgsso_orgs="))
        .collect();
    assert_eq!(set_cookie.len(), 1, "{set_cookie:?}");
    let cookie = &set_cookie[0];
    for attr in ["HttpOnly", "Path=/;", "SameSite=Lax", "Max-Age=34560000"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(
        !cookie.contains("freelance"),
        "the cookie names no email: {cookie}"
    );
    let resp = route(&t.app, &pat, "pat@freelance.test").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(path_of(&location(&resp)), path_of(&t.globex_url));

    // Signing in to a second org: this browser now offers both.
    let second = t.app.login(&pat, &t.acme_url, "pat").await;
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    let resp = route(&t.app, &pat, "pat@freelance.test").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Org acme") && page.contains("Org globex"),
        "{page}"
    );

    // A cookie that orgsso did not make (planted, edited, or another org's id) routes nobody.
    let value = cookie
        .trim_start_matches("orgsso_orgs=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (ids, mac) = value.rsplit_once('.').unwrap();
    for forged in [
        format!("{ids}~someone-else:AAAAAAAAAAAAAAAA.{mac}"),
        format!("{ids}.{}", "A".repeat(mac.len())),
        ids.to_owned(),
        "garbage".into(),
        format!("{}.{mac}", "x".repeat(5_000)),
    ] {
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(t.app.url("/login/sso"))
            .header("cookie", format!("orgsso_orgs={forged}"))
            .form(&[("email", "pat@freelance.test")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{forged}");
    }

    // A genuine cookie, planted in someone else's browser (a tenant's admin's own, say), names
    // orgs for the planter's email only: the victim's email routes nowhere.
    let planted = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(t.app.url("/login/sso"))
        .header("cookie", format!("orgsso_orgs={value}"))
        .form(&[("email", "victim@freelance.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(planted.status(), StatusCode::NOT_FOUND);
}
