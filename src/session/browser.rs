//! The session on top of tower-sessions: establishing it at sign-in (with a new id, so a
//! planted session id is worthless; written straight to the store in one insert) and reading
//! it back with the absolute timeout enforced.

use std::collections::HashMap;

use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error as StoreError, SessionStore as _};
use tower_sessions::Session;

use super::keys::{AUTH_AT, CONNECTION, IDP_SID, ID_TOKEN, ORG, SEEN, USER};
use super::{Timeouts, SEEN_RESOLUTION};
use crate::crypto::{Secret, SecretBox};
use crate::store::sessions::{sid_hash, DbSessionStore};

#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user_id: String,
    pub org_id: String,
    pub connection_id: Option<String>,
}

pub type SessionResult<T> = Result<T, tower_sessions::session::Error>;

/// What the sealed ID token is bound to: this session's id (through its hash), so a sealed
/// value copied into another session's record does not open.
fn id_token_context(session_id: &str) -> String {
    format!("session id_token_hint {}", sid_hash(session_id))
}

/// Starts the session of a sign-in: ends the one the browser had (`previous`, the id its
/// cookie carried, if any: a planted id is worthless) and writes a fresh one with one insert,
/// the ID token (when given) already sealed to the new id for RP-initiated logout and the ID
/// token's `sid` (`idp_sid`) in its column for back-channel logout. Written now, so a
/// disconnect that raced the sign-in is noticed here (the insert refuses it). Returns the new
/// id, for the caller to set as the cookie; the tower-sessions layer is not involved (no
/// second write of the same record at the response).
pub async fn establish(
    sessions: &DbSessionStore,
    previous: Option<Id>,
    who: &SignedIn,
    now: i64,
    timeouts: &Timeouts,
    id_token: Option<(&Secret, &SecretBox)>,
    idp_sid: Option<&str>,
) -> SessionResult<Id> {
    use tower_sessions::session::Error;
    if let Some(old) = previous {
        sessions.delete(&old).await.map_err(Error::Store)?;
    }
    let json = |v: serde_json::Result<serde_json::Value>| v.map_err(Error::SerdeJson);
    let mut data = HashMap::new();
    data.insert(USER.to_owned(), json(serde_json::to_value(&who.user_id))?);
    data.insert(ORG.to_owned(), json(serde_json::to_value(&who.org_id))?);
    data.insert(
        CONNECTION.to_owned(),
        json(serde_json::to_value(&who.connection_id))?,
    );
    data.insert(AUTH_AT.to_owned(), now.into());
    data.insert(SEEN.to_owned(), now.into());
    if let Some(sid) = idp_sid {
        data.insert(IDP_SID.to_owned(), sid.into());
    }
    let expiry_date = OffsetDateTime::from_unix_timestamp(timeouts.idle_deadline(now))
        .map_err(|e| Error::Store(StoreError::Encode(e.to_string())))?;
    let mut record = Record {
        id: Id::default(),
        data,
        expiry_date,
    };
    let seal = |record: &mut Record| {
        if let Some((token, secret_box)) = id_token {
            let sealed =
                secret_box.encrypt(token.expose(), &id_token_context(&record.id.to_string()));
            record.data.insert(ID_TOKEN.to_owned(), sealed.into());
        }
    };
    seal(&mut record);
    let chosen = record.id;
    sessions.create(&mut record).await.map_err(Error::Store)?;
    if record.id != chosen {
        // The store picked another id (a 128-bit collision): the seal must follow it.
        seal(&mut record);
        sessions.save(&record).await.map_err(Error::Store)?;
    }
    Ok(record.id)
}

/// The session's ID token for `id_token_hint`, when it holds one that opens for this very
/// session. Read only at logout; never logged.
pub async fn id_token_hint(
    session: &Session,
    secret_box: &SecretBox,
) -> SessionResult<Option<Secret>> {
    let (Some(sealed), Some(id)) = (session.get::<String>(ID_TOKEN).await?, session.id()) else {
        return Ok(None);
    };
    match secret_box.decrypt(&sealed, &id_token_context(&id.to_string())) {
        Ok(token) => Ok(Some(token)),
        Err(e) => {
            // Logout still proceeds, without the hint.
            tracing::warn!(error = %e, "the session's ID token could not be opened");
            Ok(None)
        }
    }
}

/// Marks the session as used now, at most once a minute: modifying it makes the layer save it,
/// which pushes the idle expiry forward without a write on every request.
pub async fn keep_alive(session: &Session, now: i64) -> SessionResult<()> {
    let seen: i64 = session.get(SEEN).await?.unwrap_or(0);
    if now - seen >= SEEN_RESOLUTION {
        session.insert(SEEN, now).await?;
    }
    Ok(())
}

/// The signed-in user, if the session is live. Past the absolute timeout the session is ended.
pub async fn current(
    session: &Session,
    timeouts: &Timeouts,
    now: i64,
) -> SessionResult<Option<SignedIn>> {
    let (Some(user_id), Some(org_id)) = (
        session.get::<String>(USER).await?,
        session.get::<String>(ORG).await?,
    ) else {
        return Ok(None);
    };
    let auth_at: i64 = session.get(AUTH_AT).await?.unwrap_or(0);
    if timeouts.is_over(auth_at, now) {
        session.flush().await?;
        return Ok(None);
    }
    keep_alive(session, now).await?;
    Ok(Some(SignedIn {
        user_id,
        org_id,
        connection_id: session.get(CONNECTION).await?,
    }))
}
