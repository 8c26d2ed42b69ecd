//! The store against a real SQLite file: concurrent first sign-ins of one identity make one
//! user and one membership.

use orgsso::store::{new_id, NewLogin, OrgRow};

use crate::helpers::spawn_app;

/// A sign-in of the subject "same-subject" (email a@example.com) at `issuer`.
fn login_of<'a>(issuer: &'a str, org_id: &'a str, role: &'a str, now: i64) -> NewLogin<'a> {
    let role = role.parse().expect("a known role");
    NewLogin {
        issuer,
        subject: "same-subject",
        email: Some("a@example.com"),
        name: Some("A"),
        org_id,
        connection_id: "c1",
        role,
        claims_json: "{}",
        now,
    }
}

#[tokio::test]
async fn concurrent_first_logins_make_one_user() {
    let app = spawn_app().await;
    let store = app.store.clone();
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
                .enrol(&login_of(
                    "https://idp.example.com",
                    &org_id,
                    if i % 2 == 0 { "admin" } else { "viewer" },
                    100 + i,
                ))
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
        .enrol(&login_of(
            "https://other-idp.example.com",
            &org.id,
            "viewer",
            200,
        ))
        .await
        .unwrap();
    assert!(!ids.contains(&other.user_id));
    assert_eq!(store.members(&org.id).await.unwrap().len(), 2);
}

/// A sign-in that finishes after its connection was disconnected cannot leave a session: the
/// session row is only written while the connection is connected.
#[tokio::test]
async fn no_session_is_written_for_a_disconnected_connection() {
    use orgsso::session::keys::{CONNECTION as KEY_CONNECTION, ORG as KEY_ORG, USER as KEY_USER};
    use orgsso::store::sessions::DbSessionStore;
    use orgsso::store::{Connection, ConnectionStatus};
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore;

    let app = spawn_app().await;
    let store = app.store.clone();
    let org = OrgRow {
        id: new_id(),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: 0,
    };
    store.create_org(&org, &[], "test").await.unwrap();
    let conn = Connection {
        id: new_id(),
        org_id: org.id.clone(),
        login_id: new_id(),
        issuer: "https://idp.example.com".into(),
        client_id: "c".into(),
        client_secret_enc: "v1:x".into(),
        scopes: vec!["openid".into()],
        metadata: serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/authorize",
            "token_endpoint": "https://idp.example.com/token",
            "jwks_uri": "https://idp.example.com/jwks",
        }))
        .unwrap(),
        status: ConnectionStatus::Connected,
        created_at: 0,
        updated_at: 0,
        groups_claim: None,
        disconnected_at: None,
        userinfo: true,
        public_only: false,
        token_auth: Default::default(),
        scim_link_claim: "sub".into(),
    };
    store
        .insert_connection(&conn, "test", &serde_json::json!({}))
        .await
        .unwrap();
    let sessions = DbSessionStore::new(store.clone());
    let record = |user: &str| {
        let mut data = std::collections::HashMap::new();
        data.insert(KEY_USER.to_owned(), serde_json::json!(user));
        data.insert(KEY_ORG.to_owned(), serde_json::json!(org.id));
        data.insert(KEY_CONNECTION.to_owned(), serde_json::json!(conn.id));
        Record {
            id: Id::default(),
            data,
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        }
    };
    let mut live = record("u1");
    sessions
        .create(&mut live)
        .await
        .expect("connected: session written");
    assert!(sessions.load(&live.id).await.unwrap().is_some());

    let counts = store
        .disconnect(&org.id, "test", 10)
        .await
        .unwrap()
        .expect("was connected");
    assert_eq!(counts.sessions_revoked, 1);
    assert!(sessions.load(&live.id).await.unwrap().is_none(), "revoked");
    // A request that loaded the session before the disconnect must not write it back.
    sessions.save(&live).await.unwrap();
    assert!(
        sessions.load(&live.id).await.unwrap().is_none(),
        "save never resurrects"
    );
    let mut late = record("u2");
    assert!(
        sessions.create(&mut late).await.is_err(),
        "a late sign-in gets no session"
    );
    assert_eq!(store.count_sessions(&org.id).await.unwrap(), 0);
}

/// The services hold the store and the store tells them of changes: a strong reference both
/// ways would keep the pool (and its database connections) alive after the app is gone.
#[tokio::test]
async fn a_stopped_app_releases_its_services_and_pool() {
    use orgsso::configuration::Settings;
    use orgsso::crypto::Secret;
    use orgsso::startup::Application;

    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults();
    settings.database_url = Secret::new(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("o.db").display()
    ));
    settings.data_dir = dir.path().join("data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build_with_listener(settings, listener)
        .await
        .unwrap();
    let access = std::sync::Arc::downgrade(&app.state.access);
    drop(app);
    assert!(
        access.upgrade().is_none(),
        "something still holds the verify service (and with it the pool)"
    );
}
