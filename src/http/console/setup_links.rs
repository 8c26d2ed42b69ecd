//! The org's setup links page: create one (its URL shown on this answer only, with a copy
//! button), list them with their status, revoke. And the SSO page's "Test sign-in": a test
//! flow with the live connection's settings whose result (claims and the role the current
//! rules give) is shown here, with no enrolment and no session.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{pages, CsrfForm, OrgConsole};
use crate::http::browser::{flow_binding, flow_cookie};
use crate::http::error::ApiError;
use crate::http::pages::PageQuery;
use crate::http::setup::{hours_of, test_view};
use crate::http::{now, see_other, AppState};
use crate::sso::{SetupError, TestTarget, DEFAULT_HOURS, MAX_HOURS};

async fn render(
    oc: &OrgConsole,
    status: StatusCode,
    new_url: Option<String>,
    error: Option<String>,
) -> Response {
    let t = now().unix_timestamp();
    let links = match oc.c.sso.setup_links(&oc.org.id, t).await {
        Ok(l) => l,
        Err(e) => return oc.c.store_failed(e),
    };
    let links: Vec<Value> = links
        .iter()
        .map(|l| json!({"id": l.id, "status": l.status, "created": super::when(Some(l.created_at)),
                        "expires": super::when(Some(l.expires_at)), "last_used": super::when(l.last_used_at)}))
        .collect();
    oc.render(
        status,
        "console_setup_links.html",
        "Setup links",
        "setup",
        json!({"links": links, "new_url": new_url, "error": error,
               "default_hours": DEFAULT_HOURS, "max_hours": MAX_HOURS}),
    )
}

/// `GET /admin/orgs/{slug}/setup-links`.
pub async fn page(oc: OrgConsole) -> Response {
    render(&oc, StatusCode::OK, None, None).await
}

/// `POST /admin/orgs/{slug}/setup-links` with `hours`: the URL is shown on this answer only.
pub async fn create(oc: OrgConsole, CsrfForm(form): CsrfForm) -> Response {
    let created = match hours_of(form.get("hours")) {
        Ok(h) => {
            oc.c.sso
                .create_setup_link(&oc.org, h, &oc.actor(), now().unix_timestamp())
                .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok((_, url)) => render(&oc, StatusCode::OK, Some(url.expose().to_owned()), None).await,
        Err(SetupError::Store(e)) => oc.c.store_failed(e),
        Err(e) => {
            let e = ApiError::from(e);
            render(&oc, e.status, None, Some(e.message)).await
        }
    }
}

/// `POST /admin/orgs/{slug}/setup-links/revoke` with `id`.
pub async fn revoke(oc: OrgConsole, CsrfForm(form): CsrfForm) -> Response {
    match oc
        .c
        .sso
        .revoke_setup_link(
            &oc.org.id,
            form.get("id"),
            &oc.actor(),
            now().unix_timestamp(),
        )
        .await
    {
        Ok(true) => {
            oc.done("/setup-links", "Revoked: the link stops working at once.")
                .await
        }
        Ok(false) => oc.done("/setup-links", "There was no such link.").await,
        Err(e) => oc.c.store_failed(e),
    }
}

/// `POST /admin/orgs/{slug}/sso/test`: 303 to the IdP with the live connection's settings.
pub async fn start_test(
    oc: OrgConsole,
    axum::extract::State(state): axum::extract::State<AppState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm,
) -> Response {
    let binding = flow_binding(&jar);
    let actor = oc.actor();
    let started =
        oc.c.sso
            .start_test_sign_in(
                TestTarget::Live {
                    org: &oc.org,
                    actor: &actor,
                },
                &binding,
                now().unix_timestamp(),
            )
            .await;
    match started {
        Ok(url) => (
            jar.add(flow_cookie(&state, binding)),
            see_other(url.as_str()),
        )
            .into_response(),
        Err(crate::sso::LoginError::Store(e)) => oc.c.store_failed(e),
        Err(e) => {
            oc.done("", format!("The test sign-in could not start: {e}"))
                .await
        }
    }
}

#[derive(Deserialize)]
pub struct TestQuery {
    id: Option<String>,
}

/// `GET /admin/orgs/{slug}/sso/test?id=…`: a console test's result, while it lasts.
pub async fn test_result(oc: OrgConsole, PageQuery(q): PageQuery<TestQuery>) -> Response {
    let t = now().unix_timestamp();
    let id = q.id.unwrap_or_default();
    let (result, mapping) = match tokio::try_join!(
        oc.c.sso.console_test_result(&oc.org.id, &id, t),
        oc.c.sso.role_mapping(&oc.org.id)
    ) {
        Ok(v) => v,
        Err(e) => return oc.c.store_failed(e),
    };
    let Some(result) = result else {
        return pages::message(
            StatusCode::NOT_FOUND,
            "Test sign-in",
            "This test sign-in's result is unknown or has expired. Start another from the Single sign-on page.",
            &oc.c.rid,
            vec![pages::Link {
                href: format!("/admin/orgs/{}", oc.org.slug),
                label: "Single sign-on",
            }],
        );
    };
    oc.render(
        StatusCode::OK,
        "console_test.html",
        "Test sign-in",
        "sso",
        json!({"test": test_view(&mapping, &result)}),
    )
}
