//! Console entry and the orgs list: operator sign-in and sign-out, list, create.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use tower_sessions::Session;

use super::{
    flash, forbidden, operator_fingerprint, pages, session_failed, viewer, Console, CsrfForm,
    Viewer, KEY_OPERATOR_AT, KEY_OPERATOR_FP,
};
use crate::http::client_addr::{page_throttled, ClientAddr};
use crate::http::error::ApiError;
use crate::http::form::FormData;
use crate::http::{now, AppState, RequestId};
use crate::sso::OrgError;
use crate::throttle::Throttled;
use axum::extract::State;

fn login_form(status: StatusCode, message: Option<&str>, rid: &str) -> Response {
    pages::render(
        status,
        "admin_login.html",
        minijinja::context! { title => "Console sign-in", message, request_id => rid },
    )
}

/// `GET /admin/login`.
pub async fn login_page(
    State(state): State<AppState>,
    session: Session,
    RequestId(rid): RequestId,
) -> Response {
    match viewer(&session, &state, &rid).await {
        Ok(Some(_)) => return Redirect::to("/admin").into_response(),
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    // No form token here: it would need a session for every anonymous visitor. A forged
    // sign-in would need the admin token, and the Origin/Sec-Fetch-Site guard refuses
    // cross-site posts anyway.
    login_form(StatusCode::OK, None, &rid)
}

/// `POST /admin/login` with the field `token`.
pub async fn login(
    State(state): State<AppState>,
    session: Session,
    RequestId(rid): RequestId,
    ClientAddr(addr): ClientAddr,
    body: axum::body::Bytes,
) -> Response {
    let form = FormData::parse(&body);
    let given = form.get("token").trim();
    let throttled = |t: Throttled, rid: &str| {
        let message = format!(
            "Too many wrong tokens from your address. Try again in {} s.",
            t.retry_after_secs()
        );
        page_throttled(t, "Console sign-in", message, rid.to_owned())
    };
    // Throttled before the token is compared (see `throttle`); a disabled console has no
    // token to guess.
    if state.settings.admin_token.is_some() {
        if let Err(t) = state.throttle.check(addr) {
            return throttled(t, &rid);
        }
    }
    if !state.settings.is_admin_token(given) {
        tracing::warn!(client = %addr, "console sign-in refused");
        if state.settings.admin_token.is_some() {
            if let Err(t) = state.throttle.failed(addr) {
                return throttled(t, &rid);
            }
        }
        let message = if state.settings.admin_token.is_none() {
            "The console is disabled for the operator: set ORGSSO_ADMIN_TOKEN to enable it."
        } else {
            "That is not the admin token."
        };
        return login_form(StatusCode::UNAUTHORIZED, Some(message), &rid);
    }
    state.throttle.succeeded(addr);
    let fingerprint = operator_fingerprint(&state, given);
    let signed_in = async {
        // A fresh session with a new id: nothing planted before sign-in (an SSO sign-in, a
        // form token) is worth anything after it; the next page makes a new form token.
        session.clear().await;
        session.cycle_id().await?;
        session.insert(KEY_OPERATOR_FP, fingerprint).await?;
        session
            .insert(KEY_OPERATOR_AT, now().unix_timestamp())
            .await
    };
    if let Err(e) = signed_in.await {
        return session_failed(e, &rid).into_response();
    }
    let audit = state
        .store
        .audit(
            None,
            &Viewer::Operator.actor(),
            "console.sign_in",
            &json!({}),
            now().unix_timestamp(),
        )
        .await;
    if let Err(e) = audit {
        return pages::PageError::from_store(e, rid).into_response();
    }
    Redirect::to("/admin").into_response()
}

/// `POST /admin/logout`: ends the whole session (an org admin's SSO session included).
pub async fn logout(session: Session, CsrfForm(_): CsrfForm) -> Response {
    session.flush().await.ok();
    Redirect::to("/admin/login").into_response()
}

/// The orgs list with the create form (operator), or straight to one's own org (org admin).
async fn list_page(
    c: &Console,
    status: StatusCode,
    error: Option<String>,
    typed: serde_json::Value,
) -> Response {
    let orgs = match c.store.list_orgs().await {
        Ok(o) => o,
        Err(e) => return c.store_failed(e),
    };
    let mut rows = Vec::with_capacity(orgs.len());
    for org in orgs {
        let conn = match c.store.latest_connection(&org.id).await {
            Ok(conn) => conn,
            Err(e) => return c.store_failed(e),
        };
        let view = conn.as_ref().map(|conn| c.sso.view(conn));
        rows.push(json!({
            "name": org.name,
            "slug": org.slug,
            "sso": view.as_ref().map_or("not configured", |v| v.status),
            "login_url": view.and_then(|v| v.login_url),
        }));
    }
    pages::render(
        status,
        "admin_orgs.html",
        minijinja::context! {
            ..minijinja::Value::from_serialize(c.frame("Organisations", "orgs", None)),
            ..minijinja::context! { orgs => rows, error, typed }
        },
    )
}

/// `GET /admin`.
pub async fn list(c: Console) -> Response {
    if let Viewer::OrgAdmin { org_id, .. } = &c.viewer {
        return match c.store.org_by_id(org_id).await {
            Ok(Some(org)) => Redirect::to(&format!("/admin/orgs/{}", org.slug)).into_response(),
            Ok(None) => forbidden(&c.rid, "Your organisation no longer exists."),
            Err(e) => c.store_failed(e),
        };
    }
    list_page(&c, StatusCode::OK, None, json!({})).await
}

/// `POST /admin`: create an org (operator only).
pub async fn create(c: Console, CsrfForm(form): CsrfForm) -> Response {
    if c.viewer != Viewer::Operator {
        return forbidden(&c.rid, "Only the operator can create organisations.");
    }
    let domains: Vec<&str> = split_list(form.get("domains"));
    let created = c
        .sso
        .create_org(
            form.get("slug"),
            form.get("name"),
            &domains,
            &c.viewer.actor(),
            now().unix_timestamp(),
        )
        .await;
    match created {
        Ok(org) => {
            flash(&c.session, format!("Created {}.", org.name)).await;
            Redirect::to(&format!("/admin/orgs/{}", org.slug)).into_response()
        }
        Err(OrgError::Store(e)) => c.store_failed(e),
        Err(e) => {
            let typed = json!({"slug": form.get("slug"), "name": form.get("name"), "domains": form.get("domains")});
            let e = ApiError::from(e);
            list_page(&c, e.status, Some(e.message), typed).await
        }
    }
}

/// A comma-, space- or newline-separated list as typed into one field.
pub(crate) fn split_list(s: &str) -> Vec<&str> {
    s.split([',', '\n', '\r', ' ', '\t'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}
