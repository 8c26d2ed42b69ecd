//! The org's SCIM page: the base URL to give the directory (with a copy button), its tokens
//! (created here and shown once, revoked here), the last sync and the provisioned members.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{CsrfForm, OrgConsole};
use crate::http::error::ApiError;
use crate::http::now;
use crate::sso::ScimTokenError;

/// Provisioned members listed on the page (the members page has them all).
const LISTED: i64 = 200;

async fn render(
    oc: &OrgConsole,
    status: StatusCode,
    new_token: Option<Value>,
    error: Option<String>,
) -> Response {
    let store = &oc.c.store;
    let (tokens, users, counts) = match tokio::try_join!(
        store.scim_tokens(&oc.org.id),
        store.scim_provisioned(&oc.org.id, LISTED),
        store.scim_counts(&oc.org.id),
    ) {
        Ok(v) => v,
        Err(e) => return oc.c.store_failed(e),
    };
    let last_sync = tokens.iter().filter_map(|t| t.last_used_at).max();
    let tokens: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"id": t.id, "name": t.name, "created": super::when(Some(t.created_at)), "last_used": super::when(t.last_used_at)}))
        .collect();
    let users: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({"user_name": u.user_name, "external_id": u.external_id, "active": u.active && u.deprovisioned_at.is_none(),
                   "role": u.role, "updated": super::when(Some(u.updated_at)), "last_login": super::when(u.last_login_at)})
        })
        .collect();
    oc.render(
        status,
        "console_scim.html",
        "SCIM provisioning",
        "scim",
        json!({"base_url": oc.c.sso.scim_base_url(&oc.org.slug), "tokens": tokens, "users": users,
               "user_count": counts.0, "group_count": counts.1, "listed": LISTED,
               "last_sync": super::when(last_sync), "new_token": new_token, "error": error}),
    )
}

/// `GET /admin/orgs/{slug}/scim`.
pub async fn page(oc: OrgConsole) -> Response {
    render(&oc, StatusCode::OK, None, None).await
}

/// `POST /admin/orgs/{slug}/scim` with `name`: the new token is shown on this answer only
/// (never through the session's one-time notice, which is stored).
pub async fn create(oc: OrgConsole, CsrfForm(form): CsrfForm) -> Response {
    let created =
        oc.c.sso
            .create_scim_token(
                &oc.org,
                form.get("name"),
                &oc.actor(),
                now().unix_timestamp(),
            )
            .await;
    match created {
        Ok((row, token)) => {
            let shown = json!({"name": row.name, "token": token.expose()});
            render(&oc, StatusCode::OK, Some(shown), None).await
        }
        Err(ScimTokenError::Store(e)) => oc.c.store_failed(e),
        Err(e) => {
            let e = ApiError::from(e);
            render(&oc, e.status, None, Some(e.message)).await
        }
    }
}

/// `POST /admin/orgs/{slug}/scim/revoke` with `id`.
pub async fn revoke(oc: OrgConsole, CsrfForm(form): CsrfForm) -> Response {
    let revoked =
        oc.c.sso
            .revoke_scim_token(
                &oc.org.id,
                form.get("id"),
                &oc.actor(),
                now().unix_timestamp(),
            )
            .await;
    match revoked {
        Ok(true) => {
            oc.done("/scim", "Revoked: the token stops working at once.")
                .await
        }
        Ok(false) => oc.done("/scim", "There was no such token.").await,
        Err(e) => oc.c.store_failed(e),
    }
}
