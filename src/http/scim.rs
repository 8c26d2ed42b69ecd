//! SCIM 2.0 endpoints per org at `/scim/v2/{slug}/…` and the org's SCIM tokens in the admin
//! API (`/api/v1/orgs/{slug}/scim-tokens`). Thin: the caller is authenticated and the request
//! read here; `Sso`'s provisioning methods do the rest. Every error is a SCIM error body
//! (RFC 7644 §3.12) with `application/scim+json`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::admin::AdminOrg;
use super::client_addr::client_addr;
use super::error::{ApiError, ApiJson};
use super::openapi::{ErrorBody, Slug};
use super::{now, AppState};
use crate::scim::{discovery, ScimError, ScimType};
use crate::sso::{ListParams, ScimAnswer, ScimCaller, ScimTokenError, Sso};
use crate::store::ScimTokenRow;

const SCIM_JSON: &str = "application/scim+json";
/// Largest request body: an Entra ID group PATCH with tens of thousands of members fits.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Actor of token changes made through the admin API.
const ACTOR: &str = "admin";

/// A SCIM error as an HTTP answer.
pub struct ScimFailure(pub ScimError);

impl From<ScimError> for ScimFailure {
    fn from(e: ScimError) -> Self {
        ScimFailure(e)
    }
}

fn scim_response(status: u16, body: Option<&Value>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = match body {
        Some(b) => (status, b.to_string()).into_response(),
        None => status.into_response(),
    };
    if body.is_some() {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    }
    res
}

impl IntoResponse for ScimFailure {
    fn into_response(self) -> Response {
        let mut res = scim_response(self.0.status, Some(&self.0.to_json()));
        if let Some(t) = self.0.scim_type {
            res.extensions_mut().insert(CountedType(t.as_str()));
        }
        let h = res.headers_mut();
        match self.0.status {
            401 => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scim\""),
                );
            }
            503 => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        res
    }
}

/// The `scimType` of an error answer, for the request counter (`count`).
#[derive(Clone, Copy)]
struct CountedType(&'static str);

/// Counts every SCIM answer, errors of extractors and unknown routes included.
async fn count(res: Response) -> Response {
    let scim_type = res
        .extensions()
        .get::<CountedType>()
        .map_or("none", |t| t.0);
    crate::telemetry::metrics::scim_request(res.status().as_u16(), scim_type);
    res
}

/// A successful answer with its ETag and Location.
pub struct ScimReply(pub ScimAnswer);

impl IntoResponse for ScimReply {
    fn into_response(self) -> Response {
        let a = self.0;
        let mut res = scim_response(a.status, a.body.as_ref());
        let h = res.headers_mut();
        for (name, value) in [(header::ETAG, a.etag), (header::LOCATION, a.location)] {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                h.insert(name, v);
            }
        }
        res
    }
}

type Answer = Result<ScimReply, ScimFailure>;

/// The org of the path, for discovery (no token needed).
struct ScimOrg(crate::store::OrgRow);

impl FromRequestParts<AppState> for ScimOrg {
    type Rejection = ScimFailure;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimFailure> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ScimError::bad_request(ScimType::InvalidValue, e.body_text()))?;
        let slug = params.get("slug").map(String::as_str).unwrap_or_default();
        let org = state
            .store
            .org_by_slug(slug)
            .await
            .map_err(crate::sso::scim_store_failed)?
            .ok_or_else(|| {
                ScimError::not_found(format!(
                    "there is no organisation {:?}",
                    slug.chars().take(64).collect::<String>()
                ))
            })?;
        Ok(ScimOrg(org))
    }
}

/// The caller behind the request's SCIM bearer token, for the org of the path.
struct Scim(ScimCaller);

impl FromRequestParts<AppState> for Scim {
    /// A response: a throttled answer carries `Retry-After`.
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let ScimOrg(org) = ScimOrg::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        // Throttled before the token is compared, per client address, as the admin token is
        // (see `throttle`): a guesser waits, the directory's right token elsewhere does not.
        let addr = client_addr(parts, state);
        state.throttle.check(addr).map_err(scim_throttled)?;
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        match state
            .sso
            .scim_authenticate(&org, bearer, now().unix_timestamp())
            .await
        {
            Ok(caller) => {
                state.throttle.succeeded(addr);
                Ok(Scim(caller))
            }
            Err(e) => {
                // A wrong token is a guess; no token at all is not.
                if e.status == 401 && bearer.is_some() {
                    state.throttle.failed(addr).map_err(scim_throttled)?;
                }
                Err(ScimFailure(e).into_response())
            }
        }
    }
}

/// 429 as a SCIM error, with `Retry-After`.
fn scim_throttled(t: crate::throttle::Throttled) -> Response {
    let secs = t.retry_after_secs();
    let err = ScimError::new(
        429,
        None,
        format!("Too many wrong SCIM tokens from your address: try again in {secs} s."),
    );
    let mut res = scim_response(429, Some(&err.to_json()));
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// The query parameters, names matched without regard to case.
struct Params(HashMap<String, String>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn list(&self) -> ListParams<'_> {
        ListParams {
            filter: self.get("filter"),
            start_index: self.get("startIndex"),
            count: self.get("count"),
            attributes: self.get("attributes"),
            excluded_attributes: self.get("excludedAttributes"),
        }
    }
}

fn params(
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Params, ScimFailure> {
    q.map(|Query(m)| Params(m))
        .map_err(|e| ScimError::bad_request(ScimType::InvalidValue, e.body_text()).into())
}

/// The request body as JSON: `application/scim+json` or `application/json` (or no type);
/// 413 over [`MAX_BODY`], 400 `invalidSyntax` when it is not JSON.
fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ScimFailure> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.contains("json") {
            return Err(ScimError::new(
                415,
                None,
                "send the body as application/scim+json (or application/json)",
            )
            .into());
        }
    }
    let bytes = body.map_err(|e| {
        let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
        if too_large {
            ScimError::new(
                413,
                None,
                format!("the body is larger than {} MiB", MAX_BODY / 1024 / 1024),
            )
        } else {
            ScimError::bad_request(ScimType::InvalidSyntax, e.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("the body is not valid JSON: {e}"),
        )
        .into()
    })
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

fn id_of(params: &HashMap<String, String>) -> &str {
    params.get("id").map(String::as_str).unwrap_or_default()
}

pub fn router() -> Router<AppState> {
    let scim = Router::new()
        .route("/scim/v2/{slug}/Users", get(list_users).post(create_user))
        .route("/scim/v2/{slug}/.search", post(search_all))
        .route("/scim/v2/{slug}/Users/.search", post(search_users))
        .route("/scim/v2/{slug}/Groups/.search", post(search_groups))
        .route(
            "/scim/v2/{slug}/Users/{id}",
            get(get_user)
                .put(put_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route(
            "/scim/v2/{slug}/Groups",
            get(list_groups).post(create_group),
        )
        .route(
            "/scim/v2/{slug}/Groups/{id}",
            get(get_group)
                .put(put_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route("/scim/v2/{slug}/ServiceProviderConfig", get(spc))
        .route("/scim/v2/{slug}/ResourceTypes", get(resource_types))
        .route("/scim/v2/{slug}/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/{slug}/Schemas", get(schemas))
        .route("/scim/v2/{slug}/Schemas/{id}", get(schema))
        .route("/scim/v2/{slug}/{*rest}", axum::routing::any(unknown))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(count));
    Router::new()
        .route(
            "/api/v1/orgs/{slug}/scim-tokens",
            post(create_token).get(list_tokens),
        )
        .route("/api/v1/orgs/{slug}/scim-tokens/{id}", delete(revoke_token))
        .merge(scim)
}

async fn unknown() -> ScimFailure {
    ScimError::not_found("no such SCIM endpoint: use /Users, /Groups, /ServiceProviderConfig, /ResourceTypes or /Schemas").into()
}

async fn list_users(
    Scim(c): Scim,
    State(sso): State<Sso>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = params(q)?;
    Ok(ScimReply(sso.scim_list_users(&c, &p.list()).await?))
}

async fn create_user(
    Scim(c): Scim,
    State(sso): State<Sso>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = json_body(&headers, body)?;
    Ok(ScimReply(
        sso.scim_create_user(&c, &body, now().unix_timestamp())
            .await?,
    ))
}

async fn get_user(
    Scim(c): Scim,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = params(q)?;
    Ok(ScimReply(
        sso.scim_get_user(&c, id_of(&path), &p.list()).await?,
    ))
}

async fn put_user(
    Scim(c): Scim,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = json_body(&headers, body)?;
    Ok(ScimReply(
        sso.scim_replace_user(
            &c,
            id_of(&path),
            &body,
            if_match(&headers),
            now().unix_timestamp(),
        )
        .await?,
    ))
}

async fn patch_user(
    Scim(c): Scim,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = json_body(&headers, body)?;
    Ok(ScimReply(
        sso.scim_patch_user(
            &c,
            id_of(&path),
            &body,
            if_match(&headers),
            now().unix_timestamp(),
        )
        .await?,
    ))
}

async fn delete_user(
    Scim(c): Scim,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
) -> Answer {
    Ok(ScimReply(
        sso.scim_delete_user(&c, id_of(&path), now().unix_timestamp())
            .await?,
    ))
}

/// A SearchRequest body (RFC 7644 §3.4.3) as query parameters.
struct Search {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    excluded: Option<String>,
}

impl Search {
    fn parse(body: &Value) -> Result<Search, ScimFailure> {
        if !body.is_object() {
            return Err(ScimError::bad_request(
                ScimType::InvalidSyntax,
                "a SearchRequest must be a JSON object",
            )
            .into());
        }
        let text = |k: &str| match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(|v| Some(v.join(",")))
                .ok_or_else(|| {
                    ScimError::bad_request(
                        ScimType::InvalidValue,
                        format!("'{k}' must be a list of attribute names"),
                    )
                }),
            Some(_) => Err(ScimError::bad_request(
                ScimType::InvalidValue,
                format!("'{k}' has the wrong type"),
            )),
        };
        Ok(Search {
            filter: text("filter")?,
            start_index: text("startIndex")?,
            count: text("count")?,
            attributes: text("attributes")?,
            excluded: text("excludedAttributes")?,
        })
    }

    fn list(&self) -> ListParams<'_> {
        ListParams {
            filter: self.filter.as_deref(),
            start_index: self.start_index.as_deref(),
            count: self.count.as_deref(),
            attributes: self.attributes.as_deref(),
            excluded_attributes: self.excluded.as_deref(),
        }
    }
}

/// `POST /.search` over every resource type: not supported (RFC 7644 §3.4.3 lets a server
/// answer 501); `/Users/.search` and `/Groups/.search` are.
async fn search_all(Scim(_): Scim) -> ScimFailure {
    ScimError::new(
        501,
        None,
        "searching Users and Groups at once is not supported: POST /Users/.search or /Groups/.search",
    )
    .into()
}

/// `POST /Users/.search`.
async fn search_users(
    Scim(c): Scim,
    State(sso): State<Sso>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let search = Search::parse(&json_body(&headers, body)?)?;
    Ok(ScimReply(sso.scim_list_users(&c, &search.list()).await?))
}

/// `POST /Groups/.search`.
async fn search_groups(
    Scim(c): Scim,
    State(sso): State<Sso>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let search = Search::parse(&json_body(&headers, body)?)?;
    Ok(ScimReply(sso.scim_list_groups(&c, &search.list()).await?))
}

async fn list_groups(
    Scim(c): Scim,
    State(sso): State<Sso>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = params(q)?;
    Ok(ScimReply(sso.scim_list_groups(&c, &p.list()).await?))
}

async fn create_group(
    Scim(c): Scim,
    State(sso): State<Sso>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = json_body(&headers, body)?;
    Ok(ScimReply(
        sso.scim_create_group(&c, &body, now().unix_timestamp())
            .await?,
    ))
}

async fn get_group(
    Scim(c): Scim,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = params(q)?;
    Ok(ScimReply(
        sso.scim_get_group(&c, id_of(&path), &p.list()).await?,
    ))
}

async fn put_group(
    Scim(c): Scim,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = json_body(&headers, body)?;
    Ok(ScimReply(
        sso.scim_replace_group(
            &c,
            id_of(&path),
            &body,
            if_match(&headers),
            now().unix_timestamp(),
        )
        .await?,
    ))
}

async fn patch_group(
    Scim(c): Scim,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = json_body(&headers, body)?;
    Ok(ScimReply(
        sso.scim_patch_group(
            &c,
            id_of(&path),
            &body,
            if_match(&headers),
            now().unix_timestamp(),
        )
        .await?,
    ))
}

async fn delete_group(
    Scim(c): Scim,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
) -> Answer {
    Ok(ScimReply(
        sso.scim_delete_group(&c, id_of(&path), now().unix_timestamp())
            .await?,
    ))
}

async fn spc(ScimOrg(org): ScimOrg, State(sso): State<Sso>) -> Answer {
    let base = sso.scim_base_url(&org.slug);
    Ok(ScimReply(ScimAnswer::ok(
        discovery::service_provider_config(&base),
    )))
}

async fn resource_types(ScimOrg(org): ScimOrg, State(sso): State<Sso>) -> Answer {
    let base = sso.scim_base_url(&org.slug);
    Ok(ScimReply(ScimAnswer::ok(discovery::resource_types(&base))))
}

async fn resource_type(
    ScimOrg(org): ScimOrg,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
) -> Answer {
    let base = sso.scim_base_url(&org.slug);
    discovery::resource_type(&base, id_of(&path))
        .map(|v| ScimReply(ScimAnswer::ok(v)))
        .ok_or_else(|| ScimError::not_found("no such resource type: User or Group").into())
}

async fn schemas(ScimOrg(org): ScimOrg, State(sso): State<Sso>) -> Answer {
    let base = sso.scim_base_url(&org.slug);
    Ok(ScimReply(ScimAnswer::ok(discovery::schemas_at(&base))))
}

async fn schema(
    ScimOrg(org): ScimOrg,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
) -> Answer {
    let base = sso.scim_base_url(&org.slug);
    discovery::schema(&base, id_of(&path))
        .map(|v| ScimReply(ScimAnswer::ok(v)))
        .ok_or_else(|| ScimError::not_found("no such schema").into())
}

/// `POST /api/v1/orgs/{slug}/scim-tokens`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateToken {
    /// A name to recognise the token by (the directory's, such as `okta`).
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

/// A new SCIM token: `token` is shown this once.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct NewScimToken {
    id: String,
    name: String,
    /// Unix seconds.
    created_at: i64,
    /// Always null for a new token.
    last_used_at: Option<i64>,
    /// The bearer token for the directory; never shown again.
    #[schema(format = Password)]
    token: String,
    /// The SCIM base URL to give the directory.
    scim_base_url: String,
}

impl From<ScimTokenError> for ApiError {
    fn from(e: ScimTokenError) -> Self {
        match e {
            ScimTokenError::Invalid(m) => ApiError::unprocessable("invalid_scim_token", m),
            ScimTokenError::Store(s) => s.into(),
        }
    }
}

/// `POST /api/v1/orgs/{slug}/scim-tokens` `{"name"}` → 201 with the token, shown this once.
#[utoipa::path(post, path = "/api/v1/orgs/{slug}/scim-tokens", tag = "scim-tokens", params(Slug),
    request_body = CreateToken,
    responses((status = 201, description = "The token, shown this once", body = NewScimToken)))]
pub(super) async fn create_token(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    let (row, token) = sso
        .create_scim_token(&org, &req.name, ACTOR, now().unix_timestamp())
        .await?;
    let body = NewScimToken {
        id: row.id,
        name: row.name,
        created_at: row.created_at,
        last_used_at: None,
        token: token.expose().to_owned(),
        scim_base_url: sso.scim_base_url(&org.slug),
    };
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /api/v1/orgs/{slug}/scim-tokens`: names and times, never a token.
#[utoipa::path(get, path = "/api/v1/orgs/{slug}/scim-tokens", tag = "scim-tokens", params(Slug),
    responses((status = 200, description = "The org's SCIM tokens, never a token itself", body = Vec<ScimTokenRow>)))]
pub(super) async fn list_tokens(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
) -> Result<Json<Vec<ScimTokenRow>>, ApiError> {
    Ok(Json(sso.scim_tokens(&org.id).await?))
}

/// `DELETE /api/v1/orgs/{slug}/scim-tokens/{id}` → 204; the token stops working at once.
#[utoipa::path(delete, path = "/api/v1/orgs/{slug}/scim-tokens/{id}", tag = "scim-tokens",
    params(Slug, ("id" = String, Path, description = "The token's id")),
    responses((status = 204, description = "Revoked: the token stops working at once"),
        (status = 404, description = "No org with this slug, or no SCIM token with this id", body = ErrorBody)))]
pub(super) async fn revoke_token(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    Path(path): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    if sso
        .revoke_scim_token(&org.id, id_of(&path), ACTOR, now().unix_timestamp())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "scim_token_not_found",
            "This org has no SCIM token with that id.",
        ))
    }
}
