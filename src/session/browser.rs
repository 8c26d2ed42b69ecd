//! The session on top of tower-sessions: establishing it at sign-in (with a new id, so a
//! planted session id is worthless) and reading it back with the absolute timeout enforced.

use tower_sessions::Session;

use super::keys::{AUTH_AT, CONNECTION, ORG, SEEN, USER};
use super::{Timeouts, SEEN_RESOLUTION};

#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user_id: String,
    pub org_id: String,
    pub connection_id: Option<String>,
}

pub type SessionResult<T> = Result<T, tower_sessions::session::Error>;

/// Replaces whatever session the browser had with a fresh one for this sign-in, and writes it
/// now, so a disconnect that raced the sign-in is noticed here rather than after the response.
pub async fn establish(session: &Session, who: &SignedIn, now: i64) -> SessionResult<()> {
    // Nothing from before carries over: not an operator's console sign-in, not a form token.
    session.clear().await;
    session.cycle_id().await?;
    session.insert(USER, &who.user_id).await?;
    session.insert(ORG, &who.org_id).await?;
    session.insert(CONNECTION, &who.connection_id).await?;
    session.insert(AUTH_AT, now).await?;
    session.insert(SEEN, now).await?;
    if let Err(e) = session.save().await {
        // Leave nothing behind for the session layer to retry.
        session.clear().await;
        return Err(e);
    }
    Ok(())
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
