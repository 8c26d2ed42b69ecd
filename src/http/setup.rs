//! Setup links: the admin API (`/api/v1/orgs/{slug}/setup-links`) and the link's own pages
//! (`/setup/{token}…`), the guided steps a customer's IT admin follows without an account.
//! Thin: every decision is in `sso::setup`. Each setup route carries the token and acts on
//! that link's org only; forms carry a token derived from the browser's binding cookie
//! (a MAC under the service key), on top of the Origin guard in `http::csrf`.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::admin::{AdminOrg, ACTOR};
use super::browser::{flow_binding, flow_cookie};
use super::client_addr::{page_throttled, ClientAddr};
use super::console::connection::PRESETS;
use super::console::rules::{compile_rows, describe, rows_from_form, rows_of, OPS, OUTCOMES};
use super::error::{ApiError, ApiJson};
use super::form::FormData;
use super::openapi::{ErrorBody, Slug};
use super::pages::{self, PageQuery};
use super::{now, see_other, AppState, RequestId};
use crate::crypto::{ct_eq, Secret};
use crate::sso::{
    Draft, DraftInput, SetupAccess, SetupError, SetupLinkView, Sso, TestResult, TestTarget,
    MAX_HOURS,
};

/// The cookie binding a link to one browser (only its hash is stored). Its path is the link's
/// own (`/setup/{token}`), so each link in a browser has its own binding.
pub const SETUP_COOKIE: &str = "orgsso_setup";
/// The same over HTTPS: a `__Secure-` cookie cannot be set by a plain-HTTP page.
const SECURE_SETUP_COOKIE: &str = "__Secure-orgsso_setup";
const FORM_MAC_PURPOSE: &str = "setup form";
const MAX_FORM_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/orgs/{slug}/setup-links",
            post(create_link).get(list_links),
        )
        .route("/api/v1/orgs/{slug}/setup-links/{id}", delete(revoke_link))
        .route("/setup/{token}", get(page))
        .route("/setup/{token}/start", post(start))
        .route("/setup/{token}/preset", post(choose_preset))
        .route("/setup/{token}/credentials", post(save_credentials))
        .route("/setup/{token}/rules", post(save_rules))
        .route("/setup/{token}/test", post(start_test))
        .route("/setup/{token}/activate", post(activate))
}

impl From<SetupError> for ApiError {
    fn from(e: SetupError) -> Self {
        let m = e.to_string();
        match e {
            SetupError::BadExpiry => ApiError::unprocessable("invalid_expiry", m),
            SetupError::Unknown => ApiError::not_found("setup_link_not_found", m),
            SetupError::Expired => ApiError::new(StatusCode::GONE, "setup_link_expired", m),
            SetupError::Revoked => ApiError::new(StatusCode::GONE, "setup_link_revoked", m),
            SetupError::OtherBrowser => ApiError::conflict("setup_link_in_use", m),
            SetupError::Used => ApiError::conflict("setup_link_used", m),
            SetupError::Invalid(_) => ApiError::unprocessable("invalid_setup", m),
            SetupError::Connect(c) => c.into(),
            SetupError::Store(s) => s.into(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateLink {
    /// 1 to 168; 72 when left out.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 168, example = 72)]
    expires_in_hours: Option<serde_json::Number>,
}

/// A new link: `url` is shown this once (only its hash is kept).
#[derive(Serialize, ToSchema)]
pub(super) struct NewSetupLink {
    id: String,
    /// `{public_url}/setup/{token}`, for the customer's IT admin.
    url: String,
    expires_at: i64,
    created_at: i64,
}

/// `POST /api/v1/orgs/{slug}/setup-links` `{"expires_in_hours"}` → 201 with the URL, shown
/// this once.
#[utoipa::path(post, path = "/api/v1/orgs/{slug}/setup-links", tag = "setup-links", params(Slug),
    request_body = CreateLink,
    responses((status = 201, description = "The link, its URL shown this once", body = NewSetupLink)))]
pub(super) async fn create_link(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    ApiJson(req): ApiJson<CreateLink>,
) -> Result<Response, ApiError> {
    let hours = match req.expires_in_hours {
        None => None,
        // A fraction or a number past i64 is refused like any other bad value.
        Some(n) => Some(n.as_i64().ok_or(SetupError::BadExpiry)?),
    };
    let (view, url) = sso
        .create_setup_link(&org, hours, ACTOR, now().unix_timestamp())
        .await?;
    let body = NewSetupLink {
        id: view.id,
        url: url.expose().to_owned(),
        expires_at: view.expires_at,
        created_at: view.created_at,
    };
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /api/v1/orgs/{slug}/setup-links`: times and status, never a token.
#[utoipa::path(get, path = "/api/v1/orgs/{slug}/setup-links", tag = "setup-links", params(Slug),
    responses((status = 200, description = "The org's setup links, never a token", body = Vec<SetupLinkView>)))]
pub(super) async fn list_links(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
) -> Result<Json<Vec<SetupLinkView>>, ApiError> {
    Ok(Json(
        sso.setup_links(&org.id, now().unix_timestamp()).await?,
    ))
}

/// `DELETE /api/v1/orgs/{slug}/setup-links/{id}` → 204; the link stops working at once.
#[utoipa::path(delete, path = "/api/v1/orgs/{slug}/setup-links/{id}", tag = "setup-links",
    params(Slug, ("id" = String, Path, description = "The link's id")),
    responses((status = 204, description = "Revoked: the link stops working at once"),
        (status = 404, description = "No org with this slug, or no setup link with this id", body = ErrorBody)))]
pub(super) async fn revoke_link(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let id = path.get("id").map(String::as_str).unwrap_or_default();
    if sso
        .revoke_setup_link(&org.id, id, ACTOR, now().unix_timestamp())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "setup_link_not_found",
            "This org has no setup link with that id.",
        ))
    }
}

/// A refusal as a page: what happened and what to do, never the org of a link it did not open.
fn refusal(e: SetupError, rid: &str) -> Response {
    let e = match e {
        SetupError::Store(s) => {
            let page = pages::PageError {
                title: "Setup failed",
                ..pages::PageError::from_store(s, rid.to_owned())
            };
            return page.into_response();
        }
        other => other,
    };
    let (status, title) = match &e {
        SetupError::Unknown => (StatusCode::NOT_FOUND, "Setup link not found"),
        SetupError::Expired => (StatusCode::GONE, "Setup link expired"),
        SetupError::Revoked => (StatusCode::GONE, "Setup link revoked"),
        SetupError::OtherBrowser => (StatusCode::CONFLICT, "Open in another browser"),
        SetupError::Used => (StatusCode::CONFLICT, "Setup already done"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "Setup"),
    };
    pages::message(status, title, &e.to_string(), rid, Vec::new())
}

/// The link opened for this request, with what the page needs.
struct Wizard {
    access: SetupAccess,
    token: String,
    /// The form token for this browser.
    csrf: String,
    rid: String,
    jar: CookieJar,
}

fn form_token(state: &AppState, binding: &str) -> String {
    state.secret_box.mac(FORM_MAC_PURPOSE, binding)
}

fn setup_cookie(state: &AppState) -> &'static str {
    if state.settings.secure_cookies() {
        SECURE_SETUP_COOKIE
    } else {
        SETUP_COOKIE
    }
}

/// Opens the link for this browser: binds it when `may_bind` and the link is free.
async fn open(
    state: &AppState,
    token: &str,
    jar: CookieJar,
    rid: &str,
    may_bind: bool,
) -> Result<Wizard, SetupError> {
    let t = now().unix_timestamp();
    let name = setup_cookie(state);
    let binding = jar.get(name).map(|c| c.value().to_owned());
    let access = state
        .sso
        .open_setup_link(token, binding.as_deref(), may_bind, t)
        .await?;
    let (jar, binding) = match &access.new_browser {
        Some(value) => {
            // Only set for a link found by this token: the path holds nothing but our token.
            let cookie = Cookie::build((name, value.clone()))
                .path(format!("/setup/{token}"))
                .http_only(true)
                .secure(state.settings.secure_cookies())
                .same_site(SameSite::Lax)
                .max_age(time::Duration::seconds(
                    (access.link.expires_at - t).max(60),
                ))
                .build();
            (jar.add(cookie), value.clone())
        }
        None => (jar, binding.unwrap_or_default()),
    };
    Ok(Wizard {
        csrf: form_token(state, &binding),
        access,
        token: token.to_owned(),
        rid: rid.to_owned(),
        jar,
    })
}

/// A form posted to a setup route: the link opened for a browser it is bound to, and the form
/// token checked.
async fn open_form(
    state: &AppState,
    token: &str,
    jar: CookieJar,
    rid: &str,
    body: &[u8],
) -> Result<(Wizard, FormData), Response> {
    let w = open(state, token, jar, rid, false)
        .await
        .map_err(|e| refusal(e, rid))?;
    if w.access.link.used_at.is_some() {
        return Err(refusal(SetupError::Used, rid));
    }
    let form = FormData::parse(body);
    if !ct_eq(form.get("csrf"), &w.csrf) {
        tracing::warn!("setup form refused: wrong token");
        return Err(pages::message(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form did not come from the page orgsso gave you, so nothing was changed. Reload the setup page and try again.",
            rid,
            Vec::new(),
        ));
    }
    Ok((w, form))
}

const STEPS: [&str; 6] = [
    "Choose your identity provider",
    "Register orgsso",
    "Client credentials",
    "Role rules",
    "Test sign-in",
    "Activate",
];

#[derive(Default)]
struct View {
    status: Option<StatusCode>,
    error: Option<String>,
    /// The credentials form as typed (after a refusal).
    typed: Option<Draft>,
    rules: Option<(String, Vec<super::console::rules::Row>)>,
    claims: Option<String>,
    dry_run: Option<Value>,
}

/// The role the rules give to a test's claims, and which rule.
fn decision(mapping: &crate::roles::RoleMapping, claims: &Value) -> Value {
    let d = mapping.evaluate(claims);
    json!({"role": d.outcome.as_str(), "rule": d.rule.map(|i| i + 1),
           "rule_text": d.rule.map(|i| describe(&mapping.spec().rules[i]))})
}

async fn render(state: &AppState, w: Wizard, step: usize, v: View) -> Response {
    let sso = &state.sso;
    let a = &w.access;
    let fail = |e: crate::store::StoreError| refusal(SetupError::Store(e), &w.rid);
    if a.link.used_at.is_some() {
        // The URL recorded at activation (a later reconnect is not this link's business).
        let login_url = a.activated_login_url();
        let page = pages::render(
            StatusCode::OK,
            "setup.html",
            json!({"title": "Single sign-on is set up", "done": true, "org_name": a.org.name,
                   "login_url": login_url, "request_id": w.rid}),
        );
        return (w.jar, page).into_response();
    }
    let draft = a.draft().unwrap_or_default();
    let typed = v.typed.unwrap_or_else(|| draft.clone());
    let mapping = match sso.setup_mapping(a).await {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let (default_role, rows) = v.rules.unwrap_or_else(|| {
        (
            mapping.spec().default_role.as_str().to_owned(),
            rows_of(mapping.spec()),
        )
    });
    let test = a.test_result();
    let test_view = test.as_ref().map(|t| test_view(&mapping, t));
    let claims_text = v.claims.unwrap_or_else(|| {
        test.as_ref()
            .and_then(|t| t.claims.as_ref())
            .and_then(|c| serde_json::to_string_pretty(c).ok())
            .unwrap_or_default()
    });
    let (connected, jwks_uri) =
        match tokio::try_join!(sso.org_connected(&a.org), sso.setup_client_jwks_uri(a)) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
    let saved = [
        !draft.preset.is_empty() || draft.metadata.is_some(),
        !draft.preset.is_empty() || draft.metadata.is_some(),
        draft.metadata.is_some(),
        a.rules().is_some(),
        test.as_ref().is_some_and(|t| t.ok),
        false,
    ];
    let steps: Vec<Value> = STEPS
        .iter()
        .enumerate()
        .map(|(i, label)| json!({"n": i + 1, "label": label, "done": saved[i], "current": i + 1 == step}))
        .collect();
    let preset = PRESETS.iter().find(|p| p.id == typed.preset);
    let page = json!({
        "title": format!("Set up single sign-on · {}", STEPS[step - 1]),
        "org_name": a.org.name,
        "token": w.token,
        "csrf": w.csrf,
        "request_id": w.rid,
        "step": step,
        "steps": steps,
        "presets": PRESETS,
        "preset": preset,
        "typed": {
            "preset": typed.preset, "issuer": typed.issuer, "client_id": typed.client_id,
            "scopes": typed.scopes.join(" "), "groups_claim": typed.groups_claim.clone().unwrap_or_default(),
            "token_auth_method": typed.token_auth_method.clone().unwrap_or_default(),
        },
        "has_secret": a.has_secret(),
        "saved_settings": draft.metadata.is_some(),
        "redirect_uri": sso.redirect_uri(),
        "post_logout_redirect_uri": sso.post_logout_redirect_uri(),
        "backchannel_logout_uri": sso.backchannel_logout_uri(),
        "client_jwks_uri": jwks_uri.filter(|_| typed.token_auth_method.as_deref() == Some("private_key_jwt")),
        "error": v.error,
        "rows": rows,
        "default_role": default_role,
        "ops": OPS,
        "outcomes": OUTCOMES,
        "groups_claim": typed.groups_claim.clone().unwrap_or_else(|| "groups".into()),
        "rules_saved": a.rules().is_some(),
        "claims": claims_text,
        "dry_run": v.dry_run,
        "test": test_view,
        "connected": connected,
        "expires": pages::minutes_utc(a.link.expires_at),
    });
    let page = pages::render(v.status.unwrap_or(StatusCode::OK), "setup.html", page);
    (w.jar, page).into_response()
}

#[derive(Deserialize)]
struct StepQuery {
    step: Option<String>,
}

/// `GET /setup/{token}?step=N`: the wizard at step N (1 to 6) for the bound browser, or the
/// done page once used. Any other browser gets the start page: a GET never binds, since link
/// scanners and chat unfurlers fetch links before the customer does.
async fn page(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
    PageQuery(q): PageQuery<StepQuery>,
    jar: CookieJar,
    RequestId(rid): RequestId,
) -> Response {
    let Ok(Path(token)) = token else {
        return refusal(SetupError::Unknown, &rid);
    };
    let w = match open(&state, &token, jar, &rid, false).await {
        Ok(w) => w,
        Err(SetupError::OtherBrowser) => return landing(&token, &rid),
        Err(e) => return refusal(e, &rid),
    };
    let step = q
        .step
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| (1..=STEPS.len()).contains(s))
        .unwrap_or(1);
    render(&state, w, step, View::default()).await
}

/// The start page: nothing of the link's org, one button that binds this browser.
fn landing(token: &str, rid: &str) -> Response {
    pages::render(
        StatusCode::OK,
        "setup.html",
        json!({"title": "Set up single sign-on", "landing": true, "token": token, "request_id": rid}),
    )
}

/// `POST /setup/{token}/start`: binds this browser when the link is free (audited
/// `setup_link.opened` and `bound`), then step 1. Behind the Origin guard; throttled per
/// address like sign-in starts, so refusals cannot flood the audit log.
async fn start(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
    jar: CookieJar,
    RequestId(rid): RequestId,
    ClientAddr(addr): ClientAddr,
) -> Response {
    let Ok(Path(token)) = token else {
        return refusal(SetupError::Unknown, &rid);
    };
    if let Some(r) = throttled(&state, addr, &rid) {
        return r;
    }
    match open(&state, &token, jar, &rid, true).await {
        Ok(w) => {
            let to = back_to(&w.token, 1);
            (w.jar, to).into_response()
        }
        Err(e) => refusal(e, &rid),
    }
}

/// The sign-in start throttle, for setup steps that reach out to an IdP or bind a browser:
/// the 429 page when this address is over it.
fn throttled(state: &AppState, addr: std::net::IpAddr, rid: &str) -> Option<Response> {
    let t = state.throttle.start_sign_in(addr).err()?;
    let message = format!(
        "Too many setup steps were sent from your address. Wait {} s and try again.",
        t.retry_after_secs()
    );
    Some(page_throttled(
        t,
        "Too many requests",
        message,
        rid.to_owned(),
    ))
}

fn back_to(token: &str, step: usize) -> Response {
    see_other(&format!("/setup/{token}?step={step}"))
}

async fn read_body(body: axum::body::Body, rid: &str) -> Result<axum::body::Bytes, Response> {
    axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            pages::message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "This form is larger than orgsso accepts (64 KiB).",
                rid,
                Vec::new(),
            )
        })
}

/// A form posted to a setup route: the link opened for a browser bound to it, the form token
/// checked (see [`open_form`]); else the refusal page.
struct SetupForm {
    w: Wizard,
    form: FormData,
}

impl axum::extract::FromRequest<AppState> for SetupForm {
    type Rejection = Response;
    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let rid = RequestId::of(&parts.headers);
        let Path(token) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(|_| refusal(SetupError::Unknown, &rid))?;
        let jar = CookieJar::from_headers(&parts.headers);
        let bytes = read_body(body, &rid).await?;
        let (w, form) = open_form(state, &token, jar, &rid, &bytes).await?;
        Ok(SetupForm { w, form })
    }
}

/// After a step's change: on to step `next`, or the step's form with the refusal.
async fn step_saved(
    state: &AppState,
    w: Wizard,
    saved: Result<(), SetupError>,
    next: usize,
    here: usize,
    v: View,
) -> Response {
    match saved {
        Ok(()) => {
            let to = back_to(&w.token, next);
            (w.jar, to).into_response()
        }
        Err(e) => step_failed(state, w, here, e, v).await,
    }
}

/// A setup step's failure: a form error on the step's page, else the refusal page.
async fn step_failed(state: &AppState, w: Wizard, step: usize, e: SetupError, v: View) -> Response {
    match e {
        SetupError::Invalid(_) | SetupError::Connect(_) => {
            let api = ApiError::from(e);
            let v = View {
                status: Some(api.status),
                error: Some(api.message),
                ..v
            };
            render(state, w, step, v).await
        }
        other => refusal(other, &w.rid),
    }
}

/// `POST /setup/{token}/preset` with `preset` (a preset id, or empty for another provider).
async fn choose_preset(
    State(state): State<AppState>,
    SetupForm { w, form }: SetupForm,
) -> Response {
    let id = form.get("preset");
    let defaults = match PRESETS.iter().find(|p| p.id == id) {
        Some(p) => Draft {
            scopes: p.scopes.split(' ').map(str::to_owned).collect(),
            groups_claim: Some(p.groups_claim.to_owned()),
            scim_link_claim: Some(p.scim_link_claim.to_owned()),
            ..Draft::default()
        },
        None if id == "other" => Draft {
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            ..Draft::default()
        },
        None => {
            let e = SetupError::Invalid("Choose one of the identity providers listed.".into());
            return step_failed(&state, w, 1, e, View::default()).await;
        }
    };
    let saved = state
        .sso
        .choose_setup_preset(&w.access, id, defaults, now().unix_timestamp())
        .await;
    step_saved(&state, w, saved, 2, 1, View::default()).await
}

/// `POST /setup/{token}/credentials`: discovery checked; a refusal keeps what was typed except
/// the secret.
async fn save_credentials(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    SetupForm { w, form }: SetupForm,
) -> Response {
    // Each save runs discovery and a key fetch against the typed issuer.
    if let Some(r) = throttled(&state, addr, &w.rid) {
        return r;
    }
    let secret = form.get("client_secret");
    let input = DraftInput {
        issuer: form.get("issuer").trim().to_owned(),
        client_id: form.get("client_id").trim().to_owned(),
        client_secret: (!secret.is_empty()).then(|| Secret::new(secret)),
        token_auth_method: form.get("token_auth_method").trim().to_owned(),
        scopes: super::console::orgs::split_list(form.get("scopes"))
            .into_iter()
            .map(str::to_owned)
            .collect(),
        groups_claim: form.get("groups_claim").trim().to_owned(),
        scim_link_claim: String::new(),
    };
    let typed = Draft {
        preset: w.access.draft().unwrap_or_default().preset,
        issuer: input.issuer.clone(),
        client_id: input.client_id.clone(),
        scopes: input.scopes.clone(),
        groups_claim: Some(input.groups_claim.clone()),
        token_auth_method: Some(input.token_auth_method.clone()),
        ..Draft::default()
    };
    let saved = state
        .sso
        .save_setup_credentials(&w.access, input, now().unix_timestamp())
        .await;
    let v = View {
        typed: Some(typed),
        ..View::default()
    };
    step_saved(&state, w, saved, 4, 3, v).await
}

/// `POST /setup/{token}/rules`: `action=save` stores the rules on the draft (each bad rule
/// named beside it); `action=dry_run` evaluates them as typed against the claims.
async fn save_rules(State(state): State<AppState>, SetupForm { w, form }: SetupForm) -> Response {
    let default_role = form.get("default_role").to_owned();
    let rows = rows_from_form(&form);
    let claims_text = form.get("claims").to_owned();
    let mapping = match compile_rows(&default_role, rows.clone()) {
        Ok(m) => m,
        Err((rows, summary)) => {
            let v = View {
                status: Some(StatusCode::UNPROCESSABLE_ENTITY),
                error: Some(summary),
                rules: Some((default_role, rows)),
                claims: Some(claims_text),
                ..View::default()
            };
            return render(&state, w, 4, v).await;
        }
    };
    if form.get("action") == "dry_run" {
        let mut v = View {
            rules: Some((default_role, rows)),
            claims: Some(claims_text.clone()),
            ..View::default()
        };
        match serde_json::from_str::<Value>(&claims_text) {
            Ok(c @ Value::Object(_)) => {
                let mut d = decision(&mapping, &c);
                d["warnings"] = json!(crate::sso::warnings(&c));
                v.dry_run = Some(d);
            }
            _ => {
                v.status = Some(StatusCode::UNPROCESSABLE_ENTITY);
                v.error = Some("The claims must be a JSON object, like an ID token's payload (a test sign-in fills them in).".into());
            }
        }
        return render(&state, w, 4, v).await;
    }
    let saved = state
        .sso
        .save_setup_rules(&w.access, &mapping, now().unix_timestamp())
        .await;
    step_saved(&state, w, saved, 5, 4, View::default()).await
}

/// `POST /setup/{token}/test`: 303 to the IdP with the draft's settings; the callback stores
/// the result on the draft and comes back to step 5.
async fn start_test(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    SetupForm { w, .. }: SetupForm,
) -> Response {
    if let Some(r) = throttled(&state, addr, &w.rid) {
        return r;
    }
    let return_to = format!("/setup/{}?step=5", w.token);
    let binding = flow_binding(&w.jar);
    let started = state
        .sso
        .start_test_sign_in(
            TestTarget::Draft {
                access: &w.access,
                return_to: &return_to,
            },
            &binding,
            now().unix_timestamp(),
        )
        .await;
    match started {
        Ok(url) => {
            let jar = w.jar.clone().add(flow_cookie(&state, binding));
            (jar, see_other(url.as_str())).into_response()
        }
        Err(crate::sso::LoginError::Store(e)) => refusal(SetupError::Store(e), &w.rid),
        Err(e) => {
            let (status, error) = match e {
                crate::sso::LoginError::TooManyPending => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Several test sign-ins from this link are still waiting at your identity provider: finish one there, or wait 10 minutes for them to expire.".to_owned(),
                ),
                e => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            };
            let v = View {
                status: Some(status),
                error: Some(error),
                ..View::default()
            };
            render(&state, w, 5, v).await
        }
    }
}

/// `POST /setup/{token}/activate`: the draft applied; the done page with the login URL.
async fn activate(State(state): State<AppState>, SetupForm { w, .. }: SetupForm) -> Response {
    let activated = state
        .sso
        .activate_setup_link(&w.access, now().unix_timestamp())
        .await
        .map(|_| ());
    step_saved(&state, w, activated, 6, 6, View::default()).await
}

/// Bounds what the expiry field of the console's form accepts (the service checks again).
pub fn hours_of(text: &str) -> Result<Option<i64>, SetupError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<i64>()
        .ok()
        .filter(|h| (1..=MAX_HOURS).contains(h))
        .map(Some)
        .ok_or(SetupError::BadExpiry)
}

/// What a test result shows beside its claims, for the console's page.
pub fn test_view(mapping: &crate::roles::RoleMapping, t: &TestResult) -> Value {
    let mut out = serde_json::to_value(t).unwrap_or_default();
    if let Some(c) = &t.claims {
        out["pretty"] = json!(serde_json::to_string_pretty(c).unwrap_or_default());
        out["decision"] = decision(mapping, c);
    }
    out["when"] = json!(pages::minutes_utc(t.at));
    out
}
