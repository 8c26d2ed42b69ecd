//! The store against a real SQLite file: concurrent first sign-ins of one identity make one
//! user and one membership.

use orgsso::store::{new_id, NewLogin, OrgRow};

use crate::helpers::spawn_app;

#[tokio::test]
async fn concurrent_first_logins_make_one_user() {
    let app = spawn_app().await;
    let store = app.sso.store.clone();
    let org = OrgRow {
        id: new_id(),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: 0,
    };
    store.create_org(&org, &[], "test").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let org_id = org.id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .enrol(&NewLogin {
                    issuer: "https://idp.example.com",
                    subject: "same-subject",
                    email: Some("a@example.com"),
                    name: Some("A"),
                    org_id: &org_id,
                    connection_id: "c1",
                    role: if i % 2 == 0 { "admin" } else { "viewer" },
                    claims_json: "{}",
                    now: 100 + i,
                })
                .await
                .map(|o| o.user_id)
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().expect("every concurrent sign-in succeeds"));
    }
    assert_eq!(ids.len(), 1, "one user for one (issuer, subject)");
    assert_eq!(store.members(&org.id).await.unwrap().len(), 1);

    // Same email from another issuer is another person: never linked by email.
    let other = store
        .enrol(&NewLogin {
            issuer: "https://other-idp.example.com",
            subject: "same-subject",
            email: Some("a@example.com"),
            name: Some("A"),
            org_id: &org.id,
            connection_id: "c1",
            role: "viewer",
            claims_json: "{}",
            now: 200,
        })
        .await
        .unwrap();
    assert!(!ids.contains(&other.user_id));
    assert_eq!(store.members(&org.id).await.unwrap().len(), 2);
}
