//! The web console's entry: the operator signs in at `/admin/login` with the admin token (checked
//! once in constant time, never stored: the session only remembers that an operator signed in)
//! and sees the orgs at `/admin`. Org-admin access and the editing pages come next.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use super::pages::{self, PageError, PageForm};
use super::{now, AppState, RequestId};
use crate::crypto::ct_eq;
use crate::sso::Sso;
use crate::store::StoreError;

const KEY_OPERATOR_AT: &str = "operator_at";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(orgs_page))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
}

fn login_form(status: StatusCode, message: Option<&str>, rid: &str) -> Response {
    pages::render(
        status,
        "admin_login.html",
        minijinja::context! { title => "Console sign-in", message, request_id => rid },
    )
}

async fn login_page(RequestId(rid): RequestId) -> Response {
    login_form(StatusCode::OK, None, &rid)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// Whether the session belongs to an operator who signed in less than the absolute session
/// timeout ago.
async fn is_operator(session: &Session, sso: &Sso) -> Result<bool, StoreError> {
    let at: Option<i64> = session
        .get(KEY_OPERATOR_AT)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(at.is_some_and(|t| {
        now().unix_timestamp() - t < sso.settings.session.absolute_timeout_secs as i64
    }))
}

async fn login(
    State(sso): State<Sso>,
    session: Session,
    RequestId(rid): RequestId,
    PageForm(form): PageForm<LoginForm>,
) -> Result<Response, PageError> {
    let ok = sso
        .settings
        .admin_token
        .as_ref()
        .is_some_and(|t| !t.expose().is_empty() && ct_eq(form.token.trim(), t.expose()));
    if !ok {
        tracing::warn!("console sign-in refused");
        let message = if sso.settings.admin_token.is_none() {
            "The console is disabled: set ORGSSO_ADMIN_TOKEN to enable it."
        } else {
            "That is not the admin token."
        };
        return Ok(login_form(StatusCode::UNAUTHORIZED, Some(message), &rid));
    }
    let fail = |e: tower_sessions::session::Error| {
        PageError::from_store(StoreError::Unavailable(e.to_string()), rid.clone())
    };
    // A new session id: a session planted before sign-in is worth nothing after it.
    session.cycle_id().await.map_err(fail)?;
    session
        .insert(KEY_OPERATOR_AT, now().unix_timestamp())
        .await
        .map_err(fail)?;
    let detail = json!({});
    sso.store
        .audit(
            None,
            "operator",
            "console.sign_in",
            &detail,
            now().unix_timestamp(),
        )
        .await
        .map_err(|e| PageError::from_store(e, rid.clone()))?;
    Ok(Redirect::to("/admin").into_response())
}

async fn logout(session: Session) -> Response {
    session.flush().await.ok();
    Redirect::to("/admin/login").into_response()
}

async fn orgs_page(
    State(sso): State<Sso>,
    session: Session,
    RequestId(rid): RequestId,
) -> Result<Response, PageError> {
    let fail = |e| PageError::from_store(e, rid.clone());
    if !is_operator(&session, &sso).await.map_err(fail)? {
        return Ok(Redirect::to("/admin/login").into_response());
    }
    let mut orgs = Vec::new();
    for org in sso.store.list_orgs().await.map_err(fail)? {
        let conn = sso.store.latest_connection(&org.id).await.map_err(fail)?;
        let view = conn.as_ref().map(|c| sso.view(c));
        orgs.push(json!({
            "name": org.name,
            "slug": org.slug,
            "sso": view.as_ref().map(|v| v.status).unwrap_or("not configured"),
            "login_url": view.and_then(|v| v.login_url),
        }));
    }
    Ok(pages::render(
        StatusCode::OK,
        "admin_orgs.html",
        minijinja::context! { title => "Organisations", orgs, request_id => rid },
    ))
}
