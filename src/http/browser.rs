//! Browser endpoints: the login URL, the callback, "Login with SSO", the signed-in page,
//! `/api/v1/me`, logout and the signed-out page the IdP returns to.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use serde_json::json;
use tower_sessions::session_store::SessionStore as _;
use tower_sessions::Session;

use super::client_addr::{page_throttled, ClientAddr};
use super::error::ApiError;
use super::form::{self, csrf_token, FormData};
use super::pages::{self, PageError, PageForm, PageQuery};
use super::signed_in::{self, ApiSignedIn, SignedIn};
use super::{now, see_other, AppState, RequestId};
use crate::crypto::{ct_eq, random_token};
use crate::domain::{EmailAddress, ReturnTo};
use crate::session;
use crate::sso::{CallbackParams, EmailRoute, LoginError, Sso, SIGNED_OUT_PATH};
use crate::store::sessions::{sid_hash, DbSessionStore};
use crate::store::Store;
use crate::telemetry::metrics as m;
use crate::throttle::Throttled;

/// The short-lived cookie that binds a sign-in to the browser that started it.
const FLOW_COOKIE: &str = "orgsso_flow";
/// The `state` of this browser's RP-initiated logout, for the signed-out page to recognise
/// the IdP's return.
const SIGN_OUT_COOKIE: &str = "orgsso_signout";
/// How long the IdP's end-session round trip may take for the return to be recognised.
const SIGN_OUT_TTL_SECS: i64 = 600;
/// This browser's memory of the orgs it signed in to, for "Login with SSO" (names orgs, never
/// the email; MAC'd by `Sso::remember_org`). Path `/`: read at `/login/sso` and extended at
/// `/sso/callback`, which share no narrower prefix.
const ORG_MEMORY_COOKIE: &str = "orgsso_orgs";
/// With secure cookies, `__Host-`: the browser then takes it only from this host, over HTTPS,
/// with `Path=/` and no `Domain`, so a sibling subdomain cannot plant one.
const ORG_MEMORY_COOKIE_HOST: &str = "__Host-orgsso_orgs";

fn org_memory_cookie(settings: &crate::configuration::Settings) -> &'static str {
    if settings.secure_cookies() {
        ORG_MEMORY_COOKIE_HOST
    } else {
        ORG_MEMORY_COOKIE
    }
}
const ORG_MEMORY_PATH: &str = "/";
/// 400 days, the longest a browser keeps a cookie.
const ORG_MEMORY_DAYS: i64 = 400;

/// The callback writes the new session itself (one insert) and sets its cookie: it is served
/// without the session layer (see `http::sessionless_router`), which would otherwise write the
/// same record again at the response.
pub fn callback_router() -> Router<AppState> {
    Router::new().route("/sso/callback", get(callback))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page))
        .route("/login/sso", post(login_sso))
        .route("/sso/{login_id}", get(start))
        .route("/api/v1/me", get(me))
        .route("/logout", post(logout))
        .route(SIGNED_OUT_PATH, get(signed_out))
        .route("/sessions", get(sessions_page))
        .route("/sessions/end", post(end_session))
}

#[derive(Deserialize)]
struct StartQuery {
    return_to: Option<String>,
    login_hint: Option<String>,
}

/// `GET /sso/{login_id}`: 303 to the IdP, with the flow bound to this browser.
async fn start(
    State(state): State<AppState>,
    Path(login_id): Path<String>,
    PageQuery(q): PageQuery<StartQuery>,
    jar: CookieJar,
    RequestId(rid): RequestId,
    ClientAddr(addr): ClientAddr,
) -> Result<(CookieJar, Response), Response> {
    // Each start may store a flow row: an address starts only so many a minute.
    state.throttle.start_sign_in(addr).map_err(|t| {
        m::sign_in_started("throttled");
        let message = format!("Too many sign-ins were started from your address. Wait {} s and start again from your organisation's login link.", t.retry_after_secs());
        page_throttled(t, "Too many sign-ins", message, rid.clone())
    })?;
    let binding = flow_binding(&jar);
    let url = state
        .sso
        .start_login(
            &login_id,
            q.return_to.as_deref(),
            q.login_hint.as_deref(),
            &binding,
            now().unix_timestamp(),
        )
        .await
        .map_err(|e| {
            m::sign_in_started(e.code());
            match e {
                // Full until some flows finish or expire: a minute is a fair wait.
                LoginError::TooManyPending => {
                    m::throttled("pending_sign_ins");
                    page_throttled(
                        Throttled {
                            retry_after: std::time::Duration::from_secs(60),
                        },
                        "Too many sign-ins",
                        e.to_string(),
                        rid,
                    )
                }
                e => PageError::from_login(e, rid).into_response(),
            }
        })?;
    m::sign_in_started("redirected");
    Ok((
        jar.add(flow_cookie(&state, binding)),
        see_other(url.as_str()),
    ))
}

/// The browser's sign-in binding: reused when a sign-in (or a test sign-in) is already running
/// in another tab of this browser.
pub(crate) fn flow_binding(jar: &CookieJar) -> String {
    jar.get(FLOW_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() >= 32 && v.len() <= 64)
        .unwrap_or_else(|| random_token(32))
}

/// The cookie binding a sign-in (or a test sign-in) to this browser until its callback.
pub(crate) fn flow_cookie(state: &AppState, binding: String) -> Cookie<'static> {
    Cookie::build((FLOW_COOKIE, binding))
        // Sent to /sso/{id}, /setup and /admin too, so a sign-in or test started in another tab
        // reuses the binding instead of replacing it (which would fail the first's callback).
        .path("/")
        .http_only(true)
        .secure(state.settings.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(
            state.settings.login.flow_ttl_secs as i64,
        ))
        .build()
}

/// `GET /sso/callback`: verifies the answer, enrols the user and starts the session.
async fn callback(
    State(state): State<AppState>,
    PageQuery(params): PageQuery<CallbackParams>,
    jar: CookieJar,
    RequestId(rid): RequestId,
) -> Result<(CookieJar, Response), PageError> {
    let sso = &state.sso;
    let settings = &state.settings;
    let binding = jar.get(FLOW_COOKIE).map(|c| c.value().to_owned());
    let timeouts = session::Timeouts::from_settings(&settings.session);
    // The session is written by the sign-in's own transaction (one commit for both).
    let draft = |f: crate::sso::SessionFacts<'_>| {
        session::draft(
            f.org_id,
            f.connection_id,
            now().unix_timestamp(),
            &timeouts,
            Some((f.id_token, &state.secret_box)),
            f.idp_sid,
        )
    };
    let login = match sso
        .finish_callback(&params, binding.as_deref(), now(), draft)
        .await
    {
        Ok(crate::sso::Callback::SignedIn(login)) => login,
        // A test sign-in: its result is stored; no session, back to the page that started it.
        // Not a sign-in, so not counted as one.
        Ok(crate::sso::Callback::Tested { return_to }) => return Ok((jar, see_other(&return_to))),
        Err(e) => {
            let (outcome, org_id) = finish_outcome(&e);
            count_finished(&state, outcome, org_id).await;
            return Err(PageError::from_login(e, rid));
        }
    };
    let id = login.session_id.as_str();
    // The session this browser had, if its cookie names one: it ends here.
    let previous = jar
        .get(&settings.session.cookie_name)
        .and_then(|c| c.value().parse::<tower_sessions::session::Id>().ok())
        .filter(|old| old.to_string() != id);
    if let Some(old) = previous {
        if let Err(e) = DbSessionStore::new(state.store.clone()).delete(&old).await {
            tracing::warn!(error = %e, "the browser's previous session could not be ended");
            // The new session goes too (best effort): no live session this browser never got.
            if let Ok(new) = id.parse::<tower_sessions::session::Id>() {
                let _ = DbSessionStore::new(state.store.clone()).delete(&new).await;
            }
            count_finished(&state, "session_not_started", Some(&login.org_id)).await;
            return Err(PageError::from_session(
                tower_sessions::session::Error::Store(e),
                rid,
            ));
        }
    }
    tracing::info!(user_id = %login.user_id, org_id = %login.org_id, role = %login.role, "signed in");
    count_finished(&state, "success", Some(&login.org_id)).await;
    // As the session layer would set it (see `startup::app_router`).
    let cookie = Cookie::build((settings.session.cookie_name.clone(), id.to_owned()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(settings.secure_cookies())
        .path("/")
        .max_age(time::Duration::seconds(timeouts.idle_secs))
        .build();
    let mut jar = jar.add(cookie);
    // Remembered for the email the IdP asserted: without one, "Login with SSO" has nothing
    // to route by.
    if let Some(email) = login.email.as_deref() {
        let name = org_memory_cookie(settings);
        let memory = sso.remember_org(jar.get(name).map(Cookie::value), &login.org_id, email);
        let org_memory = Cookie::build((name, memory))
            .path(ORG_MEMORY_PATH)
            .http_only(true)
            .secure(settings.secure_cookies())
            .same_site(SameSite::Lax)
            .max_age(time::Duration::days(ORG_MEMORY_DAYS))
            .build();
        jar = jar.add(org_memory);
    }
    Ok((jar, see_other(&login.return_to)))
}

/// The sign-in counter's outcome for a failure: `denied` (with the org) for the org's rules,
/// else the code (other failures name no org: most happen before it is known).
fn finish_outcome(e: &LoginError) -> (&'static str, Option<&str>) {
    match e {
        LoginError::Denied { org_id, .. } => ("denied", Some(org_id)),
        e => (e.code(), None),
    }
}

/// A finished sign-in, with its org's slug when per-org labels are on (one read by id).
async fn count_finished(state: &AppState, outcome: &'static str, org_id: Option<&str>) {
    let org = match org_id {
        Some(id) if state.settings.metrics.per_org_labels => {
            state.store.org_by_id(id).await.ok().flatten()
        }
        _ => None,
    };
    m::sign_in_finished(outcome, org.as_ref().map(|o| o.slug.as_str()));
}

/// `GET /`: who you are, or the way to sign in.
async fn home(State(store): State<Store>, signed: SignedIn) -> Result<Response, PageError> {
    let SignedIn { who, session, rid } = signed;
    let fail = |e| PageError::from_store(e, rid.clone());
    let (Some(member), Some(org)) = (
        store
            .member(&who.org_id, &who.user_id)
            .await
            .map_err(fail)?,
        store.org_by_id(&who.org_id).await.map_err(fail)?,
    ) else {
        session.flush().await.ok();
        return Ok(see_other("/login"));
    };
    let csrf = csrf_token(&session, &rid).await?;
    Ok(pages::render(
        StatusCode::OK,
        "home.html",
        minijinja::context! { title => "Signed in", name => member.name, email => member.email, org => org.name, role => member.role, csrf, request_id => rid },
    ))
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
}

fn login_form(
    status: StatusCode,
    message: Option<&str>,
    email: Option<&str>,
    return_to: Option<&str>,
    rid: &str,
) -> Response {
    pages::render(
        status,
        "login.html",
        minijinja::context! { title => "Sign in", message, email, return_to, request_id => rid },
    )
}

/// `GET /login`: the "Login with SSO" page.
async fn login_page(Query(q): Query<LoginQuery>, RequestId(rid): RequestId) -> Response {
    let return_to = q
        .return_to
        .as_deref()
        .filter(|r| ReturnTo::parse(r).is_ok());
    login_form(StatusCode::OK, None, None, return_to, &rid)
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    return_to: Option<String>,
}

/// `POST /login/sso`: routes an email to its org's IdP.
async fn login_sso(
    State(sso): State<Sso>,
    State(settings): State<std::sync::Arc<crate::configuration::Settings>>,
    RequestId(rid): RequestId,
    jar: CookieJar,
    PageForm(form): PageForm<LoginForm>,
) -> Result<Response, PageError> {
    let parsed_return_to = form
        .return_to
        .as_deref()
        .filter(|r| !r.is_empty())
        .and_then(|r| ReturnTo::parse(r).ok());
    let return_to = parsed_return_to.as_ref().map(ReturnTo::as_str);
    let email = match EmailAddress::parse(&form.email) {
        Ok(e) => e,
        Err(e) => {
            return Ok(login_form(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&e.0),
                Some(&form.email),
                return_to,
                &rid,
            ))
        }
    };
    let route = sso
        .route_email(
            &email,
            parsed_return_to.as_ref(),
            jar.get(org_memory_cookie(&settings)).map(Cookie::value),
        )
        .await
        .map_err(|e| PageError::from_store(e, rid.clone()))?;
    match route {
        EmailRoute::Unknown => {
            let msg = format!(
                "We don't know an organisation for {}. Ask your administrator for your organisation's login URL: after your first sign-in through it, this browser remembers your organisation.",
                email.as_str()
            );
            Ok(login_form(
                StatusCode::NOT_FOUND,
                Some(&msg),
                Some(email.as_str()),
                return_to,
                &rid,
            ))
        }
        EmailRoute::NotConnected(names) => {
            let msg = format!(
                "Single sign-on for {} is not connected right now. Ask your administrator.",
                names.join(", ")
            );
            Ok(login_form(
                StatusCode::CONFLICT,
                Some(&msg),
                Some(email.as_str()),
                return_to,
                &rid,
            ))
        }
        EmailRoute::One(href) => Ok(see_other(&href)),
        EmailRoute::Choose(orgs) => Ok(pages::render(
            StatusCode::OK,
            "choose.html",
            minijinja::context! { title => "Choose your organisation", email => email.as_str(), orgs, request_id => rid },
        )),
    }
}

/// `GET /api/v1/me`.
/// The signed-in user, as `GET /api/v1/me` shows them.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Me {
    user_id: String,
    email: Option<String>,
    name: Option<String>,
    /// The org's slug.
    org: String,
    role: crate::roles::Role,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "me",
    responses((status = 200, description = "The signed-in user", body = Me)))]
pub(super) async fn me(
    State(store): State<Store>,
    ApiSignedIn { who, session }: ApiSignedIn,
) -> Result<Json<Me>, ApiError> {
    let (Some(member), Some(org)) = (
        store.member(&who.org_id, &who.user_id).await?,
        store.org_by_id(&who.org_id).await?,
    ) else {
        session.flush().await.ok();
        return Err(ApiError::unauthorized(
            "Your membership no longer exists: sign in again.",
        ));
    };
    if member.deprovisioned_at.is_some() {
        session.flush().await.ok();
        return Err(ApiError::unauthorized(
            "Your organisation's directory has deactivated your account: ask its administrator.",
        ));
    }
    if member.denied_at.is_some() {
        session.flush().await.ok();
        return Err(ApiError::unauthorized(
            "Your organisation's role rules no longer let you in: ask its administrator.",
        ));
    }
    Ok(Json(Me {
        user_id: member.user_id,
        email: member.email,
        name: member.name,
        org: org.slug,
        role: member.role,
    }))
}

/// `POST /logout`: ends the session and offers the IdP's end-session URL (RP-initiated logout
/// with the session's ID token as `id_token_hint` and a `state` this browser keeps in a cookie).
async fn logout(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    jar: CookieJar,
    RequestId(rid): RequestId,
    body: Bytes,
) -> Result<Response, Response> {
    let fail = |e| PageError::from_store(e, rid.clone()).into_response();
    let who = signed_in::current(&session, &state).await.map_err(fail)?;
    if who.is_some() && form::from_browser(&headers) {
        // Signed in: only the session's own pages may sign it out. (Signed out already: there
        // is nothing to forge, and a stale page's button still says "signed out".)
        form::verify(&session, &FormData::parse(&body), &rid, "/logout").await?;
    }
    let logout_state = random_token(24);
    let end_session_url = match who.as_ref().and_then(|w| w.connection_id.as_deref()) {
        Some(conn_id) => {
            let hint = session::id_token_hint(&session, &state.secret_box)
                .await
                .map_err(|e| fail(e.into()))?;
            state
                .sso
                .end_session_url(conn_id, hint.as_ref(), &logout_state)
                .await
                .map_err(fail)?
        }
        None => None,
    };
    // Deleting the session announces it: tokens minted from it stop verifying at once. The
    // sealed ID token goes with it.
    session.flush().await.map_err(|e| fail(e.into()))?;
    let jar = match end_session_url {
        Some(_) => jar.add(
            Cookie::build((SIGN_OUT_COOKIE, logout_state))
                .path(SIGNED_OUT_PATH)
                .http_only(true)
                .secure(state.settings.secure_cookies())
                .same_site(SameSite::Lax)
                .max_age(time::Duration::seconds(SIGN_OUT_TTL_SECS))
                .build(),
        ),
        None => jar,
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return Ok((
            jar,
            Json(json!({"status": "signed_out", "end_session_url": end_session_url})),
        )
            .into_response());
    }
    Ok((
        jar,
        pages::render(
            StatusCode::OK,
            "signed_out.html",
            minijinja::context! { title => "Signed out", end_session_url, request_id => rid },
        ),
    )
        .into_response())
}

#[derive(Deserialize)]
struct SignedOutQuery {
    state: Option<String>,
}

/// `GET /signed-out`: where the IdP sends the browser back after ending its own session (the
/// post-logout redirect URI admins register). With the `state` this browser's logout sent, it
/// says the IdP session ended too; anyone else just sees that they are signed out.
async fn signed_out(
    PageQuery(q): PageQuery<SignedOutQuery>,
    jar: CookieJar,
    RequestId(rid): RequestId,
) -> Response {
    let expected = jar.get(SIGN_OUT_COOKIE).map(|c| c.value().to_owned());
    let at_idp = matches!((&q.state, &expected), (Some(got), Some(want)) if ct_eq(got, want));
    let jar = if expected.is_some() {
        jar.remove(Cookie::build(SIGN_OUT_COOKIE).path(SIGNED_OUT_PATH))
    } else {
        jar
    };
    (
        jar,
        pages::render(
            StatusCode::OK,
            "signed_out.html",
            minijinja::context! { title => "Signed out", at_idp, request_id => rid },
        ),
    )
        .into_response()
}

/// `GET /sessions`: where you are signed in, with a button to end each session.
async fn sessions_page(
    State(store): State<Store>,
    signed: SignedIn,
) -> Result<Response, PageError> {
    let SignedIn { who, session, rid } = signed;
    let fail = |e| PageError::from_store(e, rid.clone());
    let current = session.id().map(|i| sid_hash(&i.to_string()));
    let list = store
        .user_sessions(&who.org_id, &who.user_id, now().unix_timestamp())
        .await
        .map_err(fail)?;
    let org = store
        .org_by_id(&who.org_id)
        .await
        .map_err(fail)?
        .map(|o| o.name)
        .unwrap_or_default();
    let sessions: Vec<_> = list
        .iter()
        .map(|s| json!({"id": s.sid_hash, "current": current.as_deref() == Some(s.sid_hash.as_str()), "created": pages::minutes_utc(s.created_at), "expires": pages::minutes_utc(s.expires_at)}))
        .collect();
    let csrf = csrf_token(&session, &rid).await?;
    Ok(pages::render(
        StatusCode::OK,
        "sessions.html",
        minijinja::context! { title => "Your sessions", org, sessions, csrf, request_id => rid },
    ))
}

/// `POST /sessions/end`: ends one of your own sessions (this one signs you out).
async fn end_session(
    State(sso): State<Sso>,
    signed: SignedIn,
    body: Bytes,
) -> Result<Response, Response> {
    let SignedIn { who, session, rid } = signed;
    let fail = |e| PageError::from_store(e, rid.clone()).into_response();
    // Only the sessions page may end a session, whatever sent the request (unlike
    // `POST /logout`, this endpoint has no cookie-only contract to keep).
    let form = FormData::parse(&body);
    form::verify(&session, &form, &rid, "/sessions/end").await?;
    let ended = form.get("session");
    let current = session.id().map(|i| sid_hash(&i.to_string()));
    if current.as_deref() == Some(ended) {
        // Flushing deletes (and announces) this session once.
        session.flush().await.map_err(|e| fail(e.into()))?;
        return Ok(see_other("/login"));
    }
    sso.end_own_session(&who.org_id, &who.user_id, ended)
        .await
        .map_err(fail)?;
    Ok(see_other("/sessions"))
}
