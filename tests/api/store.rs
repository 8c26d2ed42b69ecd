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

/// Org `acme`, created in `store`.
pub async fn acme(store: &orgsso::store::Store) -> OrgRow {
    let org = OrgRow {
        id: new_id(),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: 0,
    };
    store.create_org(&org, &[], "test").await.unwrap();
    org
}

#[tokio::test]
async fn concurrent_first_logins_make_one_user() {
    let app = spawn_app().await;
    let store = app.store.clone();
    let org = acme(&store).await;
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
    let org = acme(&store).await;
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

    // A whole sign-in whose session the disconnect refuses writes nothing at all: no user
    // made, no membership, no audit row (on PostgreSQL the membership and audit rows hang
    // off the session's row in one statement, see `store::enrol_pg`).
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let draft = orgsso::store::sessions::SessionDraft {
        id: new_id(),
        data: serde_json::Map::new(),
        expires_at: now + 3600,
        created_at: now,
        idp_sid: None,
    };
    let login = NewLogin {
        connection_id: &conn.id,
        ..login_of("https://idp.example.com", &org.id, "admin", now)
    };
    let refused = store
        .enrol_with(&login, &serde_json::Map::new(), Some(&draft))
        .await;
    assert!(
        matches!(&refused, Err(orgsso::store::StoreError::Conflict(c)) if c == orgsso::store::sessions::SESSION_REFUSED),
        "{refused:?}"
    );
    assert!(store.members(&org.id).await.unwrap().is_empty());
    let audit = store.audit_events(&org.id, 50).await.unwrap();
    assert!(
        audit
            .iter()
            .all(|e| e.action != "login" && e.action != "member.role_change"),
        "{:?}",
        audit.iter().map(|e| &e.action).collect::<Vec<_>>()
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

/// A sign-in audits `login` every time and `member.role_change` (user, from, to) only when the
/// role changed; a member the rules had denied has no role, so the sign-in that lets them in
/// again is a change from none. The same rows on SQLite and PostgreSQL (which writes them in
/// one statement with the membership, see `store::enrol_pg`).
#[tokio::test]
async fn sign_ins_audit_a_role_change_only_when_the_role_changes() {
    let app = spawn_app().await;
    let store = app.store.clone();
    let org = acme(&store).await;
    let issuer = "https://idp.example.com";
    // Today's times: the periodic purge drops audit events past the retention.
    let t0 = time::OffsetDateTime::now_utc().unix_timestamp();
    let sign_in = |role: &'static str, now: i64| {
        let store = store.clone();
        let org_id = org.id.clone();
        async move {
            store
                .enrol(&login_of(issuer, &org_id, role, now))
                .await
                .unwrap()
        }
    };
    let first = sign_in("viewer", t0).await;
    assert!(first.new_user);
    assert_eq!(first.previous_role, None);
    let again = sign_in("viewer", t0 + 1).await;
    assert!(!again.new_user);
    assert_eq!(again.user_id, first.user_id);
    assert_eq!(again.previous_role, Some("viewer".parse().unwrap()));
    let promoted = sign_in("admin", t0 + 2).await;
    assert_eq!(promoted.previous_role, Some("viewer".parse().unwrap()));
    assert!(store
        .deny_member(&org.id, issuer, "same-subject", Some(0), "{}", t0 + 3)
        .await
        .unwrap());
    let back = sign_in("admin", t0 + 4).await;
    assert_eq!(back.previous_role, None, "a denied member had no role");

    let events = store.audit_events(&org.id, 50).await.unwrap();
    let logins: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.action == "login")
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect();
    let all: Vec<(&str, &str, i64)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.detail.as_str(), e.created_at))
        .collect();
    assert_eq!(logins.len(), 4, "one login event per sign-in: {all:#?}");
    for l in &logins {
        assert_eq!(l["user_id"], first.user_id.as_str());
        assert_eq!(l["connection_id"], "c1");
    }
    let actor = format!("user:{}", first.user_id);
    for e in events.iter().filter(|e| e.action == "login") {
        assert_eq!(e.actor, actor, "{all:#?}");
    }
    assert_eq!(
        logins.iter().filter(|l| l["new_user"] == true).count(),
        1,
        "{logins:?}"
    );
    // The detail's text is serde_json's on both databases (keys sorted, compact).
    for e in events.iter().filter(|e| e.action == "member.role_change") {
        let parsed: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
        assert_eq!(e.detail, parsed.to_string());
    }
    let mut changes: Vec<(i64, serde_json::Value)> = events
        .iter()
        .filter(|e| e.action == "member.role_change" && e.actor == "rules")
        .map(|e| (e.created_at, serde_json::from_str(&e.detail).unwrap()))
        .filter(|(_, d): &(i64, serde_json::Value)| d.get("rule").is_none())
        .collect();
    changes.sort_by_key(|(at, _)| *at);
    let seen: Vec<(i64, serde_json::Value, serde_json::Value, serde_json::Value)> = changes
        .into_iter()
        .map(|(at, d)| (at, d["user_id"].clone(), d["from"].clone(), d["to"].clone()))
        .collect();
    let uid = serde_json::json!(first.user_id);
    assert_eq!(
        seen,
        vec![
            (t0, uid.clone(), serde_json::Value::Null, "viewer".into()),
            (t0 + 2, uid.clone(), "viewer".into(), "admin".into()),
            (t0 + 4, uid, serde_json::Value::Null, "admin".into()),
        ],
        "a change per changed role, none for the repeated one"
    );
}
