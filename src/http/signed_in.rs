//! Who is signed in, as extractors: a handler that takes [`SignedIn`] only runs for a live
//! session (pages without one go to `/login`); [`ApiSignedIn`] answers 401 instead. Both apply
//! the session rules of `crate::session` (absolute timeout, idle refresh).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use super::error::ApiError;
use super::pages::PageError;
use super::{now, AppState, RequestId};
use crate::session::{self, Timeouts};
use crate::store::StoreError;

/// The signed-in user of this request's session, if any.
pub async fn current(
    session: &Session,
    state: &AppState,
) -> Result<Option<session::SignedIn>, StoreError> {
    let timeouts = Timeouts::from_settings(&state.settings.session);
    session::current(session, &timeouts, now().unix_timestamp())
        .await
        .map_err(StoreError::from)
}

async fn session_of(parts: &mut Parts, state: &AppState) -> Result<Session, StoreError> {
    Session::from_request_parts(parts, state)
        .await
        .map_err(|(_, msg)| StoreError::Unavailable(msg.into()))
}

/// A signed-in colleague on a page; without a live session the browser goes to `/login`.
pub struct SignedIn {
    pub who: session::SignedIn,
    pub session: Session,
    pub rid: String,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let rid = RequestId::of(&parts.headers);
        let fail = |e| PageError::from_store(e, rid.clone()).into_response();
        let session = session_of(parts, state).await.map_err(fail)?;
        match current(&session, state).await.map_err(fail)? {
            Some(who) => Ok(SignedIn { who, session, rid }),
            None => Err(super::see_other("/login")),
        }
    }
}

/// A signed-in user of the JSON API; 401 without a live session.
pub struct ApiSignedIn {
    pub who: session::SignedIn,
    pub session: Session,
}

pub fn not_signed_in() -> ApiError {
    ApiError::unauthorized("You are not signed in: sign in through your organisation's login link.")
}

impl FromRequestParts<AppState> for ApiSignedIn {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let session = session_of(parts, state).await?;
        match current(&session, state).await? {
            Some(who) => Ok(ApiSignedIn { who, session }),
            None => Err(not_signed_in()),
        }
    }
}
