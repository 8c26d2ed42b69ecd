//! The web console at `/admin`: server-rendered pages over the same `sso` operations as the admin
//! API. Who may enter:
//! - the operator, who signs in at `/admin/login` with the admin token (checked once in constant
//!   time, never stored: the session only remembers that an operator signed in), and sees every
//!   org;
//! - org admins: users signed in through an org's SSO whose role there is `admin` right now
//!   (re-read on every request, so a demotion takes effect at once), limited to that org.
//!
//! Every form carries the session's anti-forgery token (`http::form`), on top of the
//! Origin/Sec-Fetch-Site guard in `http::csrf`.

pub(crate) mod connection;
mod jwt_secrets;
mod members;
pub(crate) mod orgs;
pub(crate) mod rules;
mod scim;
mod setup_links;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use tower_sessions::Session;

use super::pages::{self, PageError};
use super::{now, AppState, RequestId};
use crate::crypto::ct_eq;
use crate::oidc::egress::Egress;
use crate::roles::Role;
use crate::sso::Sso;
use crate::store::{OrgRow, Store, StoreError};

use super::form::{csrf_token, CsrfForm};

const KEY_OPERATOR_AT: &str = "operator_at";
/// A MAC of the admin token the operator signed in with: changing or unsetting
/// ORGSSO_ADMIN_TOKEN ends every console session that used the old one.
const KEY_OPERATOR_FP: &str = "operator_fp";
const OPERATOR_MAC_PURPOSE: &str = "console operator";

/// What the session records of an operator's sign-in with `token`.
fn operator_fingerprint(state: &AppState, token: &str) -> String {
    state.secret_box.mac(OPERATOR_MAC_PURPOSE, token)
}
const KEY_FLASH: &str = "flash";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(orgs::list).post(orgs::create))
        .route("/admin/login", get(orgs::login_page).post(orgs::login))
        .route("/admin/logout", post(orgs::logout))
        .route(
            "/admin/orgs/{slug}",
            get(connection::page).post(connection::save),
        )
        .route(
            "/admin/orgs/{slug}/disconnect",
            get(connection::confirm_disconnect).post(connection::disconnect),
        )
        .route("/admin/orgs/{slug}/domains", post(connection::save_domains))
        .route(
            "/admin/orgs/{slug}/rules",
            get(rules::page).post(rules::submit),
        )
        .route("/admin/orgs/{slug}/members", get(members::members))
        .route("/admin/orgs/{slug}/audit", get(members::audit))
        .route(
            "/admin/orgs/{slug}/secrets",
            get(jwt_secrets::page).post(jwt_secrets::add),
        )
        .route(
            "/admin/orgs/{slug}/scim",
            get(scim::page).post(scim::create),
        )
        .route("/admin/orgs/{slug}/scim/revoke", post(scim::revoke))
        .route(
            "/admin/orgs/{slug}/setup-links",
            get(setup_links::page).post(setup_links::create),
        )
        .route(
            "/admin/orgs/{slug}/setup-links/revoke",
            post(setup_links::revoke),
        )
        .route(
            "/admin/orgs/{slug}/sso/test",
            get(setup_links::test_result).post(setup_links::start_test),
        )
        .route(
            "/admin/orgs/{slug}/secrets/delete",
            post(jwt_secrets::delete),
        )
}

/// Who is using the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Operator,
    OrgAdmin { user_id: String, org_id: String },
}

impl Viewer {
    /// How audit events name this person.
    pub fn actor(&self) -> String {
        match self {
            Viewer::Operator => "operator".into(),
            Viewer::OrgAdmin { user_id, .. } => format!("user:{user_id}"),
        }
    }

    /// Where orgsso may send requests on this person's say-so.
    pub fn egress(&self) -> Egress {
        match self {
            Viewer::Operator => Egress::Any,
            Viewer::OrgAdmin { .. } => Egress::PublicOnly,
        }
    }

    pub fn may_open(&self, org: &OrgRow) -> bool {
        match self {
            Viewer::Operator => true,
            Viewer::OrgAdmin { org_id, .. } => *org_id == org.id,
        }
    }
}

fn session_failed(e: tower_sessions::session::Error, rid: &str) -> PageError {
    console_error(PageError::from_session(e, rid.to_owned()))
}

fn console_error(mut e: PageError) -> PageError {
    e.title = "Console error";
    e
}

/// The console's user for this session, if any.
async fn viewer(
    session: &Session,
    state: &AppState,
    rid: &str,
) -> Result<Option<Viewer>, PageError> {
    let t = now().unix_timestamp();
    let at: Option<i64> = session
        .get(KEY_OPERATOR_AT)
        .await
        .map_err(|e| session_failed(e, rid))?;
    let fp: Option<String> = session
        .get(KEY_OPERATOR_FP)
        .await
        .map_err(|e| session_failed(e, rid))?;
    let token_still_valid = match (&state.settings.admin_token, fp) {
        (Some(token), Some(fp)) => ct_eq(&fp, &operator_fingerprint(state, token.expose())),
        _ => false,
    };
    let timeouts = crate::session::Timeouts::from_settings(&state.settings.session);
    if token_still_valid && at.is_some_and(|at| !timeouts.is_over(at, t)) {
        crate::session::keep_alive(session, t)
            .await
            .map_err(|e| session_failed(e, rid))?;
        return Ok(Some(Viewer::Operator));
    }
    let signed_in = crate::session::current(session, &timeouts, t)
        .await
        .map_err(|e| session_failed(e, rid))?;
    let Some(s) = signed_in else {
        return Ok(None);
    };
    // The role as it is now, not as it was at sign-in.
    let member = state
        .store
        .member(&s.org_id, &s.user_id)
        .await
        .map_err(|e| console_error(PageError::from_store(e, rid.to_owned())))?;
    Ok(member
        // A member the rules deny, or the directory deprovisioned, is no admin, whatever role
        // the row still holds.
        .filter(|m| m.role == Role::Admin && m.denied_at.is_none() && m.deprovisioned_at.is_none())
        .map(|_| Viewer::OrgAdmin {
            user_id: s.user_id,
            org_id: s.org_id,
        }))
}

/// A one-time notice for the next page (post/redirect/get).
async fn flash(session: &Session, message: impl Into<String>) {
    // A lost notice is not worth failing the change that already happened.
    let _ = session.insert(KEY_FLASH, message.into()).await;
}

async fn take_flash(session: &Session) -> Option<String> {
    // Read first: removing an absent key would still mark the session for a write.
    session.get::<String>(KEY_FLASH).await.ok().flatten()?;
    session.remove::<String>(KEY_FLASH).await.ok().flatten()
}

fn forbidden(rid: &str, message: &str) -> Response {
    pages::message(
        StatusCode::FORBIDDEN,
        "Not allowed",
        message,
        rid,
        vec![pages::Link {
            href: "/admin".into(),
            label: "Back to the console",
        }],
    )
}

/// A signed-in console user (operator or org admin) and the session's form token.
pub struct Console {
    pub viewer: Viewer,
    pub session: Session,
    pub sso: Sso,
    pub store: Store,
    pub csrf: String,
    pub rid: String,
    pub flash: Option<String>,
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let rid = RequestId::of(&parts.headers);
        let session =
            Session::from_request_parts(parts, state)
                .await
                .map_err(|(status, msg)| {
                    pages::message(status, "Console error", msg, &rid, Vec::new())
                })?;
        let Some(viewer) = viewer(&session, state, &rid)
            .await
            .map_err(IntoResponse::into_response)?
        else {
            return Err(Redirect::to("/admin/login").into_response());
        };
        let csrf = csrf_token(&session, &rid)
            .await
            .map_err(IntoResponse::into_response)?;
        let flash = if parts.method == axum::http::Method::GET {
            take_flash(&session).await
        } else {
            None
        };
        Ok(Console {
            viewer,
            session,
            sso: state.sso.clone(),
            store: state.store.clone(),
            csrf,
            rid,
            flash,
        })
    }
}

/// A console user on one org's pages (`/admin/orgs/{slug}/…`) they may open.
pub struct OrgConsole {
    pub c: Console,
    pub org: OrgRow,
}

impl FromRequestParts<AppState> for OrgConsole {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let c = Console::from_request_parts(parts, state).await?;
        let Path(slug) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let org = c
            .store
            .org_by_slug(&slug)
            .await
            .map_err(|e| PageError::from_store(e, c.rid.clone()).into_response())?;
        match org {
            Some(org) if c.viewer.may_open(&org) => Ok(OrgConsole { c, org }),
            // The same answer for "no such org" and "not yours", so org admins cannot probe slugs.
            _ => Err(forbidden(
                &c.rid,
                "This organisation does not exist or you are not one of its admins.",
            )),
        }
    }
}

/// What every console page's template gets.
#[derive(Serialize)]
struct Frame<'a> {
    title: &'a str,
    request_id: &'a str,
    csrf: &'a str,
    notice: Option<&'a str>,
    operator: bool,
    org: Option<OrgFrame<'a>>,
    section: &'a str,
}

#[derive(Serialize)]
struct OrgFrame<'a> {
    slug: &'a str,
    name: &'a str,
}

impl Console {
    fn frame<'a>(&'a self, title: &'a str, section: &'a str, org: Option<&'a OrgRow>) -> Frame<'a> {
        Frame {
            title,
            request_id: &self.rid,
            csrf: &self.csrf,
            notice: self.flash.as_deref(),
            operator: self.viewer == Viewer::Operator,
            org: org.map(|o| OrgFrame {
                slug: &o.slug,
                name: &o.name,
            }),
            section,
        }
    }

    fn store_failed(&self, e: StoreError) -> Response {
        console_error(PageError::from_store(e, self.rid.clone())).into_response()
    }
}

impl OrgConsole {
    /// Renders an org page: the frame (nav, token, notice) plus the page's own context.
    fn render(
        &self,
        status: StatusCode,
        template: &str,
        title: &str,
        section: &str,
        page: impl Serialize,
    ) -> Response {
        pages::render(
            status,
            template,
            minijinja::context! {
                ..minijinja::Value::from_serialize(self.c.frame(title, section, Some(&self.org))),
                ..minijinja::Value::from_serialize(page)
            },
        )
    }

    fn actor(&self) -> String {
        self.c.viewer.actor()
    }

    /// Back to a page of this org with a notice.
    async fn done(&self, page: &str, notice: impl Into<String>) -> Response {
        flash(&self.c.session, notice).await;
        Redirect::to(&format!("/admin/orgs/{}{page}", self.org.slug)).into_response()
    }
}

/// Unix seconds as the console shows them.
fn when(t: Option<i64>) -> String {
    t.map_or_else(
        || "never".into(),
        |t| format!("{} UTC", pages::minutes_utc(t)),
    )
}
