//! The session on top of tower-sessions: establishing it at sign-in (with a new id, so a
//! planted session id is worthless) and reading it back with the absolute timeout enforced.

use tower_sessions::Session;

use super::keys::{AUTH_AT, CONNECTION, IDP_SID, ID_TOKEN, ORG, SEEN, USER};
use super::{Timeouts, SEEN_RESOLUTION};
use crate::crypto::{Secret, SecretBox};
use crate::store::sessions::sid_hash;

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

/// Replaces whatever session the browser had with a fresh one for this sign-in, and writes it
/// now, so a disconnect that raced the sign-in is noticed here rather than after the response.
/// The sign-in's ID token, when given, is kept sealed for RP-initiated logout: once the new
/// id is known (after the first write), sealed to it and written in a second one. The ID
/// token's `sid` (`idp_sid`), when given, is written with the first write, so its column is
/// filled when the row is made (back-channel logout finds the session by it).
pub async fn establish(
    session: &Session,
    who: &SignedIn,
    now: i64,
    id_token: Option<(&Secret, &SecretBox)>,
    idp_sid: Option<&str>,
) -> SessionResult<()> {
    // Nothing from before carries over: not an operator's console sign-in, not a form token.
    session.clear().await;
    session.cycle_id().await?;
    session.insert(USER, &who.user_id).await?;
    session.insert(ORG, &who.org_id).await?;
    session.insert(CONNECTION, &who.connection_id).await?;
    session.insert(AUTH_AT, now).await?;
    session.insert(SEEN, now).await?;
    if let Some(sid) = idp_sid {
        session.insert(IDP_SID, sid).await?;
    }
    if let Err(e) = session.save().await {
        // Leave nothing behind for the session layer to retry.
        session.clear().await;
        return Err(e);
    }
    if let (Some((token, secret_box)), Some(id)) = (id_token, session.id()) {
        let sealed = secret_box.encrypt(token.expose(), &id_token_context(&id.to_string()));
        session.insert(ID_TOKEN, sealed).await?;
        if let Err(e) = session.save().await {
            // A session that cannot keep its hint is not started half-way.
            session.flush().await.ok();
            return Err(e);
        }
    }
    Ok(())
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
