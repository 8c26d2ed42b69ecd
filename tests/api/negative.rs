//! Negative answers on the verify endpoint: an unknown org slug and an unknown session are
//! remembered briefly, and never hide an org or a session created afterwards.

use orgsso::session::keys::{AUTH_AT, ORG as KEY_ORG, USER as KEY_USER};
use orgsso::store::sessions::{sid_hash, DbSessionStore};
use orgsso::store::{new_id, NewLogin};
use reqwest::StatusCode;
use tower_sessions::session::{Id, Record};
use tower_sessions::SessionStore;

use crate::helpers::spawn_app;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn an_unknown_slug_becomes_known_as_soon_as_the_org_is_created() {
    let app = spawn_app().await;
    // Asked twice: the second answer comes from memory.
    for _ in 0..2 {
        assert_eq!(
            app.status_of("/auth/newco/verify").await,
            StatusCode::NOT_FOUND
        );
    }
    app.create_org("newco", &[]).await;
    // At once, not after the few seconds a "no such org" is believed: no credentials now.
    assert_eq!(
        app.status_of("/auth/newco/verify").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.status_of("/auth/other/verify").await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_unknown_session_id_never_hides_a_session_stored_afterwards() {
    let app = spawn_app().await;
    let store = app.store.clone();
    let org = crate::store::acme(&store).await;
    let user = store
        .enrol(&NewLogin {
            issuer: "https://idp.example.com",
            subject: "s1",
            email: Some("a@example.com"),
            name: Some("A"),
            org_id: &org.id,
            connection_id: "c1",
            role: "viewer".parse().unwrap(),
            claims_json: "{}",
            now: now(),
        })
        .await
        .unwrap()
        .user_id;
    let id = Id::default();
    let cookie = id.to_string();
    // Unknown, asked twice (the second from memory), by cookie and by a token's `sid`.
    for _ in 0..2 {
        assert!(app
            .access
            .live_session(&cookie, now())
            .await
            .unwrap()
            .is_none());
    }
    let mut data = std::collections::HashMap::new();
    data.insert(KEY_USER.to_owned(), serde_json::json!(user));
    data.insert(KEY_ORG.to_owned(), serde_json::json!(org.id));
    data.insert(AUTH_AT.to_owned(), serde_json::json!(now()));
    let mut record = Record {
        id,
        data,
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    DbSessionStore::new(store.clone())
        .create(&mut record)
        .await
        .unwrap();
    assert_eq!(record.id, id, "stored under the id asked for before");
    let live = app
        .access
        .live_session(&cookie, now())
        .await
        .unwrap()
        .expect("the stored session is seen at once, not after the negative TTL");
    assert_eq!(
        (&*live.user_id, live.org_id.as_str()),
        (user.as_str(), org.id.as_str())
    );
    assert_eq!(sid_hash(&cookie).len(), 43);

    // The verify endpoint says the same with the cookie, and refuses an unknown one (twice).
    let verify = app.url("/auth/acme/verify");
    let with = |c: &str| {
        app.api
            .get(&verify)
            .header("cookie", format!("orgsso_session={c}"))
            .send()
    };
    assert_eq!(with(&cookie).await.unwrap().status(), StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(
            with("no-such-session").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

/// The remembered miss is what answers (a row written behind the store's back, with no event,
/// stays unseen), and it is bypassed while this instance may miss other instances' changes.
#[tokio::test]
async fn a_remembered_unknown_slug_answers_from_memory_and_not_while_not_live() {
    use orgsso::store::events::EventSink;
    let app = spawn_app().await;
    // On PostgreSQL nothing is remembered until the listener hears other instances
    // (`spawn_app` waits for it).
    assert!(app.access.is_live());
    assert_eq!(
        app.status_of("/auth/ghost/verify").await,
        StatusCode::NOT_FOUND
    );
    let insert = "INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, 'ghost', 'Ghost', 0)";
    let id = new_id();
    let written = match app.store.db() {
        orgsso::store::Db::Sqlite(p) => {
            (sqlx::query(insert).bind(&id).execute(p).await).map(|r| r.rows_affected())
        }
        orgsso::store::Db::Postgres(p) => {
            (sqlx::query(insert).bind(&id).execute(p).await).map(|r| r.rows_affected())
        }
    };
    assert_eq!(written.unwrap(), 1);
    assert_eq!(
        app.status_of("/auth/ghost/verify").await,
        StatusCode::NOT_FOUND,
        "answered from memory, no query"
    );
    app.access.set_live(false);
    assert_eq!(
        app.status_of("/auth/ghost/verify").await,
        StatusCode::UNAUTHORIZED,
        "not live: the database is asked"
    );
    app.access.set_live(true);
    assert_eq!(
        app.status_of("/auth/ghost/verify").await,
        StatusCode::UNAUTHORIZED
    );
}
