//! tower-sessions storage in the `sessions` table. The signed-in user, org, connection and the
//! IdP's session id (`idp_sid`, for back-channel logout) are
//! copied from the record into columns, so revoking every session of a connection, org or user
//! is one statement. `save` only updates: a session deleted by a revocation is never brought back
//! by a request that loaded it just before.

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result as StoreResult, SessionStore};

use super::events::{notify_in_tx, Event};
use super::{on_db, Db, Store};

use crate::roles::Role;
use crate::session::keys::{
    CONNECTION as KEY_CONNECTION, IDP_SID as KEY_IDP_SID, ORG as KEY_ORG, USER as KEY_USER,
};

#[derive(Debug, Clone)]
pub struct DbSessionStore {
    store: Store,
}

impl DbSessionStore {
    pub fn new(store: Store) -> Self {
        DbSessionStore { store }
    }
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

/// A session written by the transaction of the sign-in that starts it (`Store::enrol_with`), so
/// a sign-in commits once: its record's data without the user id, which the enrolment fills in.
/// No `Debug`: the data holds the sealed ID token.
#[derive(Clone)]
pub struct SessionDraft {
    /// The new session id (the cookie value).
    pub id: String,
    /// The record's data (`session::keys`) but `USER`.
    pub data: serde_json::Map<String, serde_json::Value>,
    pub expires_at: i64,
    pub created_at: i64,
    pub idp_sid: Option<String>,
}

/// Why `Store::enrol_with` refused a sign-in whose session it could not write: the connection
/// was disconnected meanwhile (or, never in practice, the random id was taken). Nothing of the
/// sign-in was written.
pub const SESSION_REFUSED: &str = "session_refused";

/// Inserts a session only while its connection (if any) is connected. On PostgreSQL the check
/// takes a share lock on the connection row: a disconnect holding the row waits for this insert
/// (and then deletes the session), or this insert waits for the disconnect (and sees it).
/// SQLite serialises writers, so the plain check is enough there.
pub(super) fn insert_sql(db: &Db) -> &'static str {
    macro_rules! insert_session {
        ($lock:literal) => {
            concat!(
                "INSERT INTO sessions (id, data, expires_at, user_id, org_id, connection_id, created_at, sid_hash, idp_sid)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
                 WHERE $6 IS NULL OR EXISTS (SELECT 1 FROM sso_connections WHERE id = $6 AND status = 'connected'",
                $lock,
                ") ON CONFLICT (id) DO NOTHING"
            )
        };
    }
    match db {
        Db::Sqlite(_) => insert_session!(""),
        Db::Postgres(_) => insert_session!(" FOR SHARE"),
    }
}

/// The non-secret reference to a session that tokens carry: a hash of its id (the cookie value).
pub fn sid_hash(session_id: &str) -> String {
    crate::crypto::sha256_b64(session_id)
}

/// [`sid_hash`] written into `buf`: the verify path looks a cookie up on every request and
/// needs no `String` for it.
pub fn sid_hash_in<'a>(
    session_id: &str,
    buf: &'a mut [u8; crate::crypto::SHA256_B64_LEN],
) -> &'a str {
    crate::crypto::sha256_b64_in(session_id, buf)
}

/// The expiry in whole seconds, rounded up: a session never ends before its time.
fn expires_at(record: &Record) -> i64 {
    let t = record.expiry_date;
    t.unix_timestamp() + i64::from(t.nanosecond() > 0)
}

fn column(record: &Record, key: &str) -> Option<String> {
    record
        .data
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// A live session with the identity it stands for, as the verify endpoint needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveSessionRow {
    pub user_id: String,
    pub org_id: String,
    pub org_slug: String,
    pub expires_at: i64,
    pub data: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub email: Option<String>,
    pub name: Option<String>,
}

impl Store {
    /// The session behind `sid_hash`, if it exists and has not expired and its member is neither
    /// denied by the rules nor deprovisioned by the org's directory (SCIM), with the member's current role.
    pub async fn live_session(
        &self,
        sid_hash: &str,
        now: i64,
    ) -> super::Result<Option<LiveSessionRow>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, LiveSessionRow>(
            "SELECT s.user_id, s.org_id, o.slug AS org_slug, s.expires_at, s.data, m.role, u.email, u.name
             FROM sessions s
             JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id AND m.denied_at IS NULL AND m.deprovisioned_at IS NULL
             JOIN users u ON u.id = s.user_id
             JOIN orgs o ON o.id = s.org_id
             WHERE s.sid_hash = $1 AND s.expires_at > $2")
            .bind(sid_hash).bind(now).fetch_optional(p).await?))
    }

    /// Pushes a session's idle expiry forward (activity seen by the verify endpoint).
    pub async fn touch_session(&self, sid_hash: &str, expires_at: i64) -> super::Result<()> {
        on_db!(self.db(), p => {
            sqlx::query("UPDATE sessions SET expires_at = $1 WHERE sid_hash = $2 AND expires_at < $1")
                .bind(expires_at).bind(sid_hash).execute(p).await?;
        });
        Ok(())
    }

    /// Unexpired sessions in all orgs (one indexed count; for the metrics).
    pub async fn count_live_sessions(&self, now: i64) -> super::Result<i64> {
        let (n,): (i64,) = on_db!(self.db(), p => sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE expires_at > $1")
            .bind(now).fetch_one(p).await?);
        Ok(n)
    }

    pub async fn count_sessions(&self, org_id: &str) -> super::Result<i64> {
        let (n,): (i64,) = on_db!(self.db(), p => sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE org_id = $1")
            .bind(org_id).fetch_one(p).await?);
        Ok(n)
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> StoreResult<()> {
        let data = serde_json::to_string(&record.data).map_err(backend)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let (user, org, conn, idp_sid) = (
            column(record, KEY_USER),
            column(record, KEY_ORG),
            column(record, KEY_CONNECTION),
            column(record, KEY_IDP_SID),
        );
        // Bounded retries on the (astronomically unlikely) id collision.
        for _ in 0..3 {
            let id = record.id.to_string();
            // An SSO session is only written while its connection is still connected, so a
            // sign-in that races a disconnect cannot leave a live session behind.
            let inserted = on_db!(self.store.db(), p => sqlx::query(insert_sql(self.store.db()))
                .bind(&id).bind(&data).bind(expires_at(record))
                .bind(&user).bind(&org).bind(&conn).bind(now).bind(sid_hash(&id)).bind(&idp_sid)
                .execute(p).await.map_err(backend)?.rows_affected());
            if inserted == 1 {
                // In-process only (see `Event::SessionStarted` for why no NOTIFY).
                self.store.announce(&Event::SessionStarted {
                    sid_hash: sid_hash(&id),
                });
                return Ok(());
            }
            let taken: Option<(String,)> = on_db!(self.store.db(), p => sqlx::query_as("SELECT id FROM sessions WHERE id = $1")
                .bind(&id).fetch_optional(p).await.map_err(backend)?);
            if taken.is_none() {
                return Err(Error::Backend(
                    "the SSO connection was disconnected during sign-in".into(),
                ));
            }
            record.id = Id::default();
        }
        Err(Error::Backend("could not allocate a session id".into()))
    }

    async fn save(&self, record: &Record) -> StoreResult<()> {
        let data = serde_json::to_string(&record.data).map_err(backend)?;
        on_db!(self.store.db(), p => { sqlx::query("UPDATE sessions SET data = $1, expires_at = $2 WHERE id = $3")
            .bind(&data).bind(expires_at(record)).bind(record.id.to_string())
            .execute(p).await.map_err(backend)?; });
        Ok(())
    }

    async fn load(&self, id: &Id) -> StoreResult<Option<Record>> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let row: Option<(String, i64)> = on_db!(self.store.db(), p => sqlx::query_as(
            "SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2")
            .bind(id.to_string()).bind(now).fetch_optional(p).await.map_err(backend)?);
        let Some((data, expires_at)) = row else {
            return Ok(None);
        };
        let data: HashMap<String, serde_json::Value> =
            serde_json::from_str(&data).map_err(backend)?;
        let expiry_date = OffsetDateTime::from_unix_timestamp(expires_at).map_err(backend)?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> StoreResult<()> {
        let id = id.to_string();
        let ended = Event::SessionEnded {
            sid_hash: sid_hash(&id),
        };
        let db = self.store.db();
        // tower-sessions deletes the old id at every `cycle_id`, usually one never stored (an
        // anonymous visitor signing in): only a session that existed is announced.
        let run = async {
            let n = on_db!(db, p => {
                let mut tx = p.begin().await?;
                let n = sqlx::query("DELETE FROM sessions WHERE id = $1").bind(&id).execute(&mut *tx).await?.rows_affected();
                if n > 0 {
                    notify_in_tx!(db, tx, ended);
                }
                tx.commit().await?;
                n
            });
            Ok::<u64, sqlx::Error>(n)
        };
        if run.await.map_err(backend)? > 0 {
            self.store.announce(&ended);
        }
        Ok(())
    }
}

/// One of a user's sessions, as the "your sessions" page shows it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SessionSummary {
    pub sid_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    /// The user's live sessions in an org, newest first.
    pub async fn user_sessions(
        &self,
        org_id: &str,
        user_id: &str,
        now: i64,
    ) -> super::Result<Vec<SessionSummary>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, SessionSummary>(
            "SELECT sid_hash, created_at, expires_at FROM sessions
             WHERE org_id = $1 AND user_id = $2 AND expires_at > $3 AND sid_hash IS NOT NULL
             ORDER BY created_at DESC, sid_hash")
            .bind(org_id).bind(user_id).bind(now).fetch_all(p).await?))
    }

    /// Ends one of the user's own sessions (never someone else's); announces it to other
    /// instances. False when there was no such session.
    pub async fn end_user_session(
        &self,
        org_id: &str,
        user_id: &str,
        sid_hash: &str,
    ) -> super::Result<bool> {
        let db = self.db();
        let ended = Event::SessionEnded {
            sid_hash: sid_hash.to_owned(),
        };
        let n = on_db!(db, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND user_id = $2 AND sid_hash = $3")
                .bind(org_id).bind(user_id).bind(sid_hash).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                notify_in_tx!(db, tx, ended);
            }
            tx.commit().await?;
            n
        });
        if n == 1 {
            self.announce(&ended);
        }
        Ok(n == 1)
    }
}
