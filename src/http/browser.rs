//! Browser endpoints: the login URL, the callback, "Login with SSO", the signed-in page,
//! `/api/v1/me` and logout.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use super::error::ApiError;
use super::form::{self, csrf_token, FormData};
use super::pages::{self, PageError, PageForm, PageQuery};
use super::session::{self, SignedIn};
use super::{now, AppState, RequestId};
use crate::crypto::random_token;
use crate::domain::{EmailAddress, ReturnTo};
use crate::oidc::discovery::ProviderMetadata;
use crate::sso::{CallbackParams, Sso};
use crate::store::StoreError;

/// The short-lived cookie that binds a sign-in to the browser that started it.
const FLOW_COOKIE: &str = "orgsso_flow";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page))
        .route("/login/sso", post(login_sso))
        .route("/sso/callback", get(callback))
        .route("/sso/{login_id}", get(start))
        .route("/api/v1/me", get(me))
        .route("/logout", post(logout))
        .route("/sessions", get(sessions_page))
        .route("/sessions/end", post(end_session))
}

fn see_other(to: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

#[derive(Deserialize)]
struct StartQuery {
    return_to: Option<String>,
    login_hint: Option<String>,
}

/// `GET /sso/{login_id}`: 303 to the IdP, with the flow bound to this browser.
async fn start(
    State(sso): State<Sso>,
    Path(login_id): Path<String>,
    PageQuery(q): PageQuery<StartQuery>,
    jar: CookieJar,
    RequestId(rid): RequestId,
) -> Result<(CookieJar, Response), PageError> {
    // Reuse the binding of a sign-in already running in another tab of this browser.
    let binding = jar
        .get(FLOW_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() >= 32 && v.len() <= 64)
        .unwrap_or_else(|| random_token(32));
    let url = sso
        .start_login(
            &login_id,
            q.return_to.as_deref(),
            q.login_hint.as_deref(),
            &binding,
            now().unix_timestamp(),
        )
        .await
        .map_err(|e| PageError::from_login(e, rid))?;
    let cookie = Cookie::build((FLOW_COOKIE, binding))
        // Sent to /sso/{id} too, so a second tab reuses the binding instead of replacing it.
        .path("/sso")
        .http_only(true)
        .secure(sso.settings.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(
            sso.settings.login.flow_ttl_secs as i64,
        ))
        .build();
    Ok((jar.add(cookie), see_other(url.as_str())))
}

/// `GET /sso/callback`: verifies the answer, enrols the user and starts the session.
async fn callback(
    State(sso): State<Sso>,
    PageQuery(params): PageQuery<CallbackParams>,
    jar: CookieJar,
    session: Session,
    RequestId(rid): RequestId,
) -> Result<Response, PageError> {
    let binding = jar.get(FLOW_COOKIE).map(|c| c.value().to_owned());
    let login = sso
        .finish_login(&params, binding.as_deref(), now())
        .await
        .map_err(|e| PageError::from_login(e, rid.clone()))?;
    if let Err(e) = session::establish(&session, &login, now().unix_timestamp()).await {
        tracing::warn!(error = %e, "session not started");
        // The only expected cause: the connection was disconnected while the user signed in.
        let gone = matches!(sso.store.connection_by_id(&login.connection_id).await, Ok(Some(c)) if !c.is_connected());
        return Err(if gone {
            PageError::from_login(crate::sso::LoginError::Retired, rid)
        } else {
            PageError::from_session(e, rid)
        });
    }
    tracing::info!(user_id = %login.user_id, org_id = %login.org_id, role = %login.role, "signed in");
    Ok(see_other(&login.return_to))
}

async fn signed_in(session: &Session, sso: &Sso) -> Result<Option<SignedIn>, StoreError> {
    session::current(session, &sso.settings.session, now().unix_timestamp())
        .await
        .map_err(StoreError::from)
}

/// `GET /`: who you are, or the way to sign in.
async fn home(
    State(sso): State<Sso>,
    session: Session,
    RequestId(rid): RequestId,
) -> Result<Response, PageError> {
    let fail = |e| PageError::from_store(e, rid.clone());
    let Some(who) = signed_in(&session, &sso).await.map_err(fail)? else {
        return Ok(see_other("/login"));
    };
    let (Some(member), Some(org)) = (
        sso.store
            .member(&who.org_id, &who.user_id)
            .await
            .map_err(fail)?,
        sso.store.org_by_id(&who.org_id).await.map_err(fail)?,
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
    RequestId(rid): RequestId,
    PageForm(form): PageForm<LoginForm>,
) -> Result<Response, PageError> {
    let return_to = form
        .return_to
        .as_deref()
        .filter(|r| !r.is_empty() && ReturnTo::parse(r).is_ok());
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
    let fail = |e| PageError::from_store(e, rid.clone());
    let mut orgs = sso
        .store
        .orgs_for_email(email.as_str())
        .await
        .map_err(fail)?;
    if let Some(o) = sso
        .store
        .org_for_domain(email.domain())
        .await
        .map_err(fail)?
    {
        if !orgs.iter().any(|x| x.id == o.id) {
            orgs.push(o);
        }
    }
    if orgs.is_empty() {
        let msg = format!(
            "We don't know an organisation for {}. Use the login link your administrator shared with you, or ask them to add your email domain.",
            email.as_str()
        );
        return Ok(login_form(
            StatusCode::NOT_FOUND,
            Some(&msg),
            Some(email.as_str()),
            return_to,
            &rid,
        ));
    }
    let mut choices = Vec::new();
    for org in &orgs {
        if let Some(c) = sso
            .store
            .latest_connection(&org.id)
            .await
            .map_err(fail)?
            .filter(|c| c.is_connected())
        {
            let mut href = format!(
                "/sso/{}?login_hint={}",
                c.login_id,
                urlencode(email.as_str())
            );
            if let Some(r) = return_to {
                href.push_str(&format!("&return_to={}", urlencode(r)));
            }
            choices.push((org.name.clone(), href));
        }
    }
    match choices.len() {
        0 => {
            let names: Vec<_> = orgs.iter().map(|o| o.name.as_str()).collect();
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
        1 => Ok(see_other(&choices[0].1)),
        _ => {
            let orgs: Vec<_> = choices
                .into_iter()
                .map(|(name, href)| json!({"name": name, "href": href}))
                .collect();
            Ok(pages::render(
                StatusCode::OK,
                "choose.html",
                minijinja::context! { title => "Choose your organisation", email => email.as_str(), orgs, request_id => rid },
            ))
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET /api/v1/me`.
async fn me(State(sso): State<Sso>, session: Session) -> Result<Json<serde_json::Value>, ApiError> {
    let who = signed_in(&session, &sso).await?.ok_or_else(|| {
        ApiError::unauthorized(
            "You are not signed in: sign in through your organisation's login link.",
        )
    })?;
    let (Some(member), Some(org)) = (
        sso.store.member(&who.org_id, &who.user_id).await?,
        sso.store.org_by_id(&who.org_id).await?,
    ) else {
        session.flush().await.ok();
        return Err(ApiError::unauthorized(
            "Your membership no longer exists: sign in again.",
        ));
    };
    Ok(Json(
        json!({"user_id": member.user_id, "email": member.email, "name": member.name, "org": org.slug, "role": member.role}),
    ))
}

/// `POST /logout`: ends the session and offers the IdP's end-session URL.
async fn logout(
    State(sso): State<Sso>,
    session: Session,
    headers: HeaderMap,
    RequestId(rid): RequestId,
    body: Bytes,
) -> Result<Response, Response> {
    let fail = |e| PageError::from_store(e, rid.clone()).into_response();
    let who = signed_in(&session, &sso).await.map_err(fail)?;
    if who.is_some() && form::from_browser(&headers) {
        // Signed in: only the session's own pages may sign it out. (Signed out already: there
        // is nothing to forge, and a stale page's button still says "signed out".)
        form::verify(&session, &FormData::parse(&body), &rid, "/logout").await?;
    }
    let mut end_session_url = None;
    if let Some(conn_id) = who.as_ref().and_then(|w| w.connection_id.clone()) {
        if let Some(c) = sso.store.connection_by_id(&conn_id).await.map_err(fail)? {
            if let Ok(meta) = serde_json::from_str::<ProviderMetadata>(&c.metadata) {
                end_session_url = meta
                    .end_session_endpoint
                    .and_then(|e| url::Url::parse(&e).ok())
                    .map(|mut u| {
                        u.query_pairs_mut()
                            .append_pair("client_id", &c.client_id)
                            .append_pair(
                                "post_logout_redirect_uri",
                                &sso.settings.public_path("/login"),
                            );
                        u.to_string()
                    });
            }
        }
    }
    // Deleting the session announces it: tokens minted from it stop verifying at once.
    session.flush().await.map_err(|e| fail(e.into()))?;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return Ok(
            Json(json!({"status": "signed_out", "end_session_url": end_session_url}))
                .into_response(),
        );
    }
    Ok(pages::render(
        StatusCode::OK,
        "signed_out.html",
        minijinja::context! { title => "Signed out", end_session_url, request_id => rid },
    ))
}

/// `GET /sessions`: where you are signed in, with a button to end each session.
async fn sessions_page(
    State(sso): State<Sso>,
    session: Session,
    RequestId(rid): RequestId,
) -> Result<Response, PageError> {
    let fail = |e| PageError::from_store(e, rid.clone());
    let Some(who) = signed_in(&session, &sso).await.map_err(fail)? else {
        return Ok(see_other("/login"));
    };
    let current = session
        .id()
        .map(|i| crate::store::sessions::sid_hash(&i.to_string()));
    let list = sso
        .store
        .user_sessions(&who.org_id, &who.user_id, now().unix_timestamp())
        .await
        .map_err(fail)?;
    let org = sso
        .store
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
    session: Session,
    RequestId(rid): RequestId,
    body: Bytes,
) -> Result<Response, Response> {
    let fail = |e| PageError::from_store(e, rid.clone()).into_response();
    let Some(who) = signed_in(&session, &sso).await.map_err(fail)? else {
        return Ok(see_other("/login"));
    };
    // Only the sessions page may end a session, whatever sent the request (unlike
    // `POST /logout`, this endpoint has no cookie-only contract to keep).
    let form = FormData::parse(&body);
    form::verify(&session, &form, &rid, "/sessions/end").await?;
    let ended = form.get("session");
    let current = session
        .id()
        .map(|i| crate::store::sessions::sid_hash(&i.to_string()));
    if current.as_deref() == Some(ended) {
        // Flushing deletes (and announces) this session once.
        session.flush().await.map_err(|e| fail(e.into()))?;
        return Ok(see_other("/login"));
    }
    sso.store
        .end_user_session(&who.org_id, &who.user_id, ended)
        .await
        .map_err(fail)?;
    Ok(see_other("/sessions"))
}
