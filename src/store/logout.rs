//! Back-channel logout in the store: the connections a logout token may be for, and the one
//! transaction that accepts its `jti` once and ends the sessions it names (with an audit event
//! per org and a `SessionEnded` per session, sent by NOTIFY inside the transaction and
//! announced in-process after it commits).

use super::connections::{StoredConnection, COLUMNS};
use super::events::{notify_in_tx, Event};
use super::{audit_in_tx, on_db, Connection, Result, Store};

/// A connection a verified logout token is for, and what it names there.
#[derive(Debug, Clone)]
pub struct LogoutTarget {
    pub connection_id: String,
    pub org_id: String,
    pub issuer: String,
}

/// What one logout ended in one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutEnded {
    pub connection_id: String,
    pub org_id: String,
    pub sessions_ended: u64,
}

/// Sessions of a connection started by the IdP session `sid` (and, when given, of the user
/// behind (issuer, `sub`)), or with only `sub` every session of that user through it.
const BY_SID: &str = "DELETE FROM sessions WHERE connection_id = $1 AND idp_sid = $2
     AND ($4 IS NULL OR user_id IN (SELECT user_id FROM identities WHERE issuer = $3 AND subject = $4))
     RETURNING sid_hash";
const BY_SUB: &str = "DELETE FROM sessions WHERE connection_id = $1
     AND user_id IN (SELECT user_id FROM identities WHERE issuer = $3 AND subject = $4)
     RETURNING sid_hash";

impl Store {
    /// Connected connections whose issuer is `issuer` (several orgs may use the same IdP).
    pub async fn connected_by_issuer(&self, issuer: &str) -> Result<Vec<Connection>> {
        let rows = on_db!(self.db(), p => sqlx::query_as::<_, StoredConnection>(&format!(
            "SELECT {COLUMNS} FROM sso_connections WHERE issuer = $1 AND status = 'connected' ORDER BY id"))
            .bind(issuer).fetch_all(p).await?);
        rows.into_iter().map(Connection::try_from).collect()
    }

    /// In one transaction: accepts `jti_hash` once (until `jti_expires_at`; a row left from a
    /// token that has expired is taken over), then in each target ends the sessions `sid` /
    /// `sub` name, with an `sso.backchannel_logout` audit event per target. `None` when the
    /// `jti` was already used (a replay): nothing changes then.
    #[allow(clippy::too_many_arguments)]
    pub async fn backchannel_logout(
        &self,
        jti_hash: &str,
        jti_expires_at: i64,
        targets: &[LogoutTarget],
        sid: Option<&str>,
        sub: Option<&str>,
        now: i64,
    ) -> Result<Option<Vec<LogoutEnded>>> {
        let db = self.db();
        let query = if sid.is_some() { BY_SID } else { BY_SUB };
        let outcome = on_db!(db, p => {
            let mut tx = p.begin().await?;
            let fresh = sqlx::query(
                "INSERT INTO logout_jtis (jti_hash, expires_at) VALUES ($1, $2)
                 ON CONFLICT (jti_hash) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE logout_jtis.expires_at <= $3")
                .bind(jti_hash).bind(jti_expires_at).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if fresh == 0 {
                tx.rollback().await?;
                None
            } else {
                let mut ended = Vec::with_capacity(targets.len());
                let mut events = Vec::new();
                for t in targets {
                    // One statement deletes them; each is announced, so every instance's
                    // caches (and the tokens minted from them) drop it at once.
                    let hashes: Vec<(String,)> = sqlx::query_as(query)
                        .bind(&t.connection_id).bind(sid).bind(&t.issuer).bind(sub)
                        .fetch_all(&mut *tx).await?;
                    let n = hashes.len() as u64;
                    for (hash,) in hashes {
                        let event = Event::SessionEnded { sid_hash: hash };
                        notify_in_tx!(db, tx, event);
                        events.push(event);
                    }
                    let detail = serde_json::json!({
                        "connection_id": t.connection_id,
                        "sub": sub.is_some(),
                        "sid": sid.is_some(),
                        "sessions_ended": n,
                    });
                    audit_in_tx!(tx, &t.org_id, "idp", "sso.backchannel_logout", detail, now)?;
                    ended.push(LogoutEnded {
                        connection_id: t.connection_id.clone(),
                        org_id: t.org_id.clone(),
                        sessions_ended: n,
                    });
                }
                tx.commit().await?;
                Some((ended, events))
            }
        });
        Ok(outcome.map(|(ended, events)| {
            for e in &events {
                self.announce(e);
            }
            ended
        }))
    }
}
