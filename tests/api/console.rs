//! The console's entry: operator sign-in with the admin token (never kept in the browser) and
//! the orgs list.

use reqwest::StatusCode;

use crate::helpers::{browser, location, spawn_app, spawn_app_with, ADMIN_TOKEN};

#[tokio::test]
async fn operator_signs_in_with_the_admin_token_and_sees_the_orgs() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let b = browser();
    let resp = b.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(
        (resp.status(), location(&resp)),
        (StatusCode::SEE_OTHER, "/admin/login".to_owned())
    );
    let page = b.get(app.url("/admin/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("name=\"token\""));

    let wrong = b
        .post(app.url("/admin/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("not the admin token"));
    assert_eq!(
        b.get(app.url("/admin")).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );

    let cross_site = b
        .post(app.url("/admin/login"))
        .header("origin", "http://evil.example")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    let ok = b
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ok.status(), location(&ok)),
        (StatusCode::SEE_OTHER, "/admin".to_owned())
    );
    let set_cookie: Vec<String> = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(set_cookie
        .iter()
        .any(|c| c.starts_with("orgsso_session=") && c.contains("HttpOnly")));
    assert!(
        !set_cookie.iter().any(|c| c.contains(ADMIN_TOKEN)),
        "the token is never kept in the browser"
    );
    let orgs = b.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(orgs.status(), StatusCode::OK);
    let html = orgs.text().await.unwrap();
    assert!(
        html.contains("Org acme") && html.contains("not configured"),
        "{html}"
    );
    assert!(!html.contains(ADMIN_TOKEN));
    let raw = crate::helpers::raw_database(&app).await;
    assert!(
        !raw.windows(ADMIN_TOKEN.len())
            .any(|w| w == ADMIN_TOKEN.as_bytes()),
        "token stored"
    );

    let out = b.post(app.url("/admin/logout")).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        b.get(app.url("/admin")).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );

    let disabled = spawn_app_with(|s| s.admin_token = None).await;
    let resp = browser()
        .post(disabled.url("/admin/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.unwrap().contains("ORGSSO_ADMIN_TOKEN"));
}
