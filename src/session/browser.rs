//! The session on top of tower-sessions: drafting it at sign-in (with a new id, so a planted
//! session id is worthless; written by the sign-in's own transaction) and reading it back with
//! the absolute timeout enforced.

use tower_sessions::session::Id;
use tower_sessions::Session;

use super::keys::{AUTH_AT, CONNECTION, IDP_SID, ID_TOKEN, ORG, SEEN, USER};
use super::{Timeouts, SEEN_RESOLUTION};
use crate::crypto::{Secret, SecretBox};
use crate::store::sessions::{sid_hash, SessionDraft};

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

/// The session a sign-in starts, for the store to write in the sign-in's own transaction
/// (`Store::enrol_with`, which adds the user id): a fresh id (a planted one is worthless), the
/// ID token (when given) sealed to that id for RP-initiated logout, and the ID token's `sid`
/// (`idp_sid`) for back-channel logout. The caller sets the cookie once it is written and ends
/// the session the browser had, if any.
pub fn draft(
    org_id: &str,
    connection_id: &str,
    now: i64,
    timeouts: &Timeouts,
    id_token: Option<(&Secret, &SecretBox)>,
    idp_sid: Option<&str>,
) -> SessionDraft {
    let id = Id::default().to_string();
    let mut data = serde_json::Map::new();
    data.insert(ORG.to_owned(), org_id.into());
    data.insert(CONNECTION.to_owned(), connection_id.into());
    data.insert(AUTH_AT.to_owned(), now.into());
    data.insert(SEEN.to_owned(), now.into());
    if let Some(sid) = idp_sid {
        data.insert(IDP_SID.to_owned(), sid.into());
    }
    if let Some((token, secret_box)) = id_token {
        let sealed = secret_box.encrypt(token.expose(), &id_token_context(&id));
        data.insert(ID_TOKEN.to_owned(), sealed.into());
    }
    SessionDraft {
        id,
        data,
        expires_at: timeouts.idle_deadline(now),
        created_at: now,
        idp_sid: idp_sid.map(str::to_owned),
    }
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
