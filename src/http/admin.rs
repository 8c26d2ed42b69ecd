//! The admin API (`/api/v1/orgs…`), behind the bootstrap admin token.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::client_addr::{api_throttled, client_addr};
use super::error::{ApiError, ApiJson};
use super::openapi::{ErrorBody, Slug};
use super::paging::AuditQuery;
use super::{now, AppState};
use crate::oidc::egress::Egress;
use crate::roles::{Outcome, RoleMapping, RoleMappingSpec, RuleSpec};
use crate::sso::{ConnectRequest, ConnectionView, Sso};
use crate::store::{MemberRow, OrgRow, Store};

/// Proof that the request carried the admin token. Compared in constant time.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    /// A response, not an `ApiError`: a throttled answer carries `Retry-After`.
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if state.settings.admin_token.is_none() {
            return Err(ApiError::unauthorized(
                "The admin API is disabled: set ORGSSO_ADMIN_TOKEN to enable it.",
            )
            .into_response());
        }
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(token) = given else {
            return Err(ApiError::unauthorized(
                "Send the admin token as `Authorization: Bearer <token>`.",
            )
            .into_response());
        };
        // Throttled before the token is compared, and per client address (see `throttle`).
        let addr = client_addr(parts, state);
        state.throttle.check(addr).map_err(api_throttled)?;
        if state.settings.is_admin_token(token) {
            state.throttle.succeeded(addr);
            return Ok(Admin);
        }
        tracing::warn!(client = %addr, "admin API token refused");
        state.throttle.failed(addr).map_err(api_throttled)?;
        Err(ApiError::unauthorized("The admin token is wrong.").into_response())
    }
}

/// The admin token and the org named by the path's `{slug}`: an unknown slug is 404.
pub struct AdminOrg(pub OrgRow);

impl FromRequestParts<AppState> for AdminOrg {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Admin::from_request_parts(parts, state).await?;
        Self::org(parts, state)
            .await
            .map_err(IntoResponse::into_response)
    }
}

impl AdminOrg {
    async fn org(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await?;
        let slug = params.get("slug").map(String::as_str).unwrap_or_default();
        let org = state.store.org_by_slug(slug).await?.ok_or_else(|| {
            ApiError::not_found(
                "org_not_found",
                format!("There is no org with slug {slug:?}."),
            )
        })?;
        Ok(AdminOrg(org))
    }
}

pub(super) const ACTOR: &str = "admin";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs", post(create_org).get(list_orgs))
        .route("/api/v1/orgs/{slug}", get(get_org))
        .route("/api/v1/orgs/{slug}/domains", put(put_domains))
        .route(
            "/api/v1/orgs/{slug}/sso",
            put(put_sso).get(get_sso).delete(delete_sso),
        )
        .route(
            "/api/v1/orgs/{slug}/sso/role-mapping",
            put(put_rules).get(get_rules),
        )
        .route(
            "/api/v1/orgs/{slug}/sso/role-mapping/test",
            post(test_rules),
        )
        .route("/api/v1/orgs/{slug}/members", get(members))
        .route("/api/v1/orgs/{slug}/audit", get(audit))
}

/// An org as the admin API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Org)]
pub(super) struct OrgView {
    slug: String,
    name: String,
    /// Email domains verified for the org ("Login with SSO" routes them here).
    domains: Vec<String>,
    /// Unix seconds.
    created_at: i64,
    sso: OrgSsoStatus,
}

/// The org's SSO status: `not_configured`, or the latest connection's status.
#[derive(Serialize, ToSchema)]
pub(super) struct OrgSsoStatus {
    /// `not_configured`, `connected` or `disconnected`.
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    /// Present (possibly null) when a connection exists; null once disconnected.
    #[serde(skip_serializing_if = "Option::is_none")]
    login_url: Option<Option<String>>,
}

async fn org_view(sso: &Sso, store: &Store, org: &OrgRow) -> Result<OrgView, ApiError> {
    let domains = store.org_domains(&org.id).await?;
    let sso_status = match store.latest_connection(&org.id).await? {
        Some(c) => {
            let v = sso.view(&c);
            OrgSsoStatus {
                status: v.status.into(),
                issuer: Some(v.issuer),
                login_url: Some(v.login_url),
            }
        }
        None => OrgSsoStatus {
            status: "not_configured".into(),
            issuer: None,
            login_url: None,
        },
    };
    Ok(OrgView {
        slug: org.slug.clone(),
        name: org.name.clone(),
        domains,
        created_at: org.created_at,
        sso: sso_status,
    })
}

/// `POST /api/v1/orgs`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateOrg {
    #[schema(pattern = "^[a-z0-9-]{2,63}$")]
    slug: String,
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[serde(default)]
    domains: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, description = "The org, created", body = OrgView),
        (status = 409, description = "The slug or a domain is taken", body = ErrorBody)))]
pub(super) async fn create_org(
    _: Admin,
    State(sso): State<Sso>,
    State(store): State<Store>,
    ApiJson(req): ApiJson<CreateOrg>,
) -> Result<Response, ApiError> {
    let org = sso
        .create_org(
            &req.slug,
            &req.name,
            &req.domains,
            ACTOR,
            now().unix_timestamp(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(org_view(&sso, &store, &org).await?),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs",
    responses((status = 200, description = "Every org", body = Vec<OrgView>)))]
pub(super) async fn list_orgs(
    _: Admin,
    State(sso): State<Sso>,
    State(store): State<Store>,
) -> Result<Json<Vec<OrgView>>, ApiError> {
    let orgs = store.list_orgs().await?;
    let mut out = Vec::with_capacity(orgs.len());
    for o in &orgs {
        out.push(org_view(&sso, &store, o).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/orgs/{slug}", tag = "orgs", params(Slug),
    responses((status = 200, description = "The org, with its SSO status", body = OrgView)))]
pub(super) async fn get_org(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    State(store): State<Store>,
) -> Result<Json<OrgView>, ApiError> {
    Ok(Json(org_view(&sso, &store, &org).await?))
}

/// `PUT /api/v1/orgs/{slug}/domains`: the whole list of the org's verified domains.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PutDomains {
    domains: Vec<String>,
}

#[utoipa::path(put, path = "/api/v1/orgs/{slug}/domains", tag = "orgs", params(Slug),
    request_body = PutDomains,
    responses((status = 200, description = "The org with its new domains", body = OrgView),
        (status = 409, description = "A domain belongs to another org", body = ErrorBody)))]
pub(super) async fn put_domains(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    State(store): State<Store>,
    ApiJson(req): ApiJson<PutDomains>,
) -> Result<Json<OrgView>, ApiError> {
    sso.set_org_domains(&org, &req.domains, ACTOR, now().unix_timestamp())
        .await?;
    Ok(Json(org_view(&sso, &store, &org).await?))
}

#[utoipa::path(put, path = "/api/v1/orgs/{slug}/sso", tag = "sso", params(Slug),
    request_body = ConnectRequest,
    responses((status = 200, description = "The connection, updated (same login URL)", body = ConnectionView),
        (status = 201, description = "The connection, created: a new login URL", body = ConnectionView),
        (status = 409, description = "Another change to the connection happened at the same time", body = ErrorBody)))]
pub(super) async fn put_sso(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    ApiJson(req): ApiJson<ConnectRequest>,
) -> Result<Response, ApiError> {
    let (conn, created) = sso
        .connect(&org, req, ACTOR, Egress::Any, now().unix_timestamp())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(sso.view(&conn))).into_response())
}

#[utoipa::path(get, path = "/api/v1/orgs/{slug}/sso", tag = "sso", params(Slug),
    responses((status = 200, description = "The connection, without its secret", body = ConnectionView)))]
pub(super) async fn get_sso(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    State(store): State<Store>,
) -> Result<Response, ApiError> {
    match store.latest_connection(&org.id).await? {
        Some(c) => Ok(Json(sso.view(&c)).into_response()),
        None => Err(ApiError::not_found(
            "sso_not_configured",
            "This org has never connected an identity provider; PUT one to this URL.",
        )),
    }
}

/// What a disconnect did.
#[derive(Serialize, ToSchema)]
pub(super) struct Disconnected {
    /// Always `disconnected`.
    #[schema(value_type = String)]
    status: &'static str,
    sessions_revoked: u64,
    members_downgraded: u64,
}

#[utoipa::path(delete, path = "/api/v1/orgs/{slug}/sso", tag = "sso", params(Slug),
    responses((status = 200, description = "Disconnected: the org's SSO sessions revoked, its SSO members made viewers", body = Disconnected),
        (status = 409, description = "The identity provider is not connected", body = ErrorBody)))]
pub(super) async fn delete_sso(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
) -> Result<Json<Disconnected>, ApiError> {
    match sso.disconnect(&org, ACTOR, now().unix_timestamp()).await? {
        Some(c) => Ok(Json(Disconnected {
            status: "disconnected",
            sessions_revoked: c.sessions_revoked,
            members_downgraded: c.members_downgraded,
        })),
        None => Err(ApiError::conflict(
            "sso_not_connected",
            "This org's identity provider is not connected, so there is nothing to disconnect.",
        )),
    }
}

/// Reads a rule set rule by rule, so a malformed rule is named by its index.
fn parse_rule_set(value: serde_json::Value) -> Result<RoleMappingSpec, ApiError> {
    let bad = |m: String| ApiError::unprocessable("invalid_rule", m);
    let serde_json::Value::Object(mut obj) = value else {
        return Err(bad(
            "The rule set must be a JSON object: {\"default_role\": \"viewer\", \"rules\": [...]}"
                .into(),
        ));
    };
    if let Some(serde_json::Value::Array(rules)) = obj.get("rules") {
        for (i, rule) in rules.iter().enumerate() {
            serde_json::from_value::<crate::roles::RuleSpec>(rule.clone())
                .map_err(|e| bad(format!("rule {i}: {e}")))?;
        }
    }
    match obj.get("default_role") {
        None => {
            obj.insert("default_role".into(), json!("viewer"));
        }
        Some(d) => {
            serde_json::from_value::<crate::roles::Outcome>(d.clone())
                .map_err(|e| bad(format!("default_role: {e}")))?;
        }
    }
    serde_json::from_value(serde_json::Value::Object(obj))
        .map_err(|e| bad(format!("The rule set is not valid: {e}")))
}

/// A saved rule set, with how many members the save re-derived to another role.
#[derive(Serialize, ToSchema)]
pub(super) struct SavedRules {
    // Not `RoleMappingSpec` flattened: its schema refuses other fields (`deny_unknown_fields`).
    default_role: Outcome,
    rules: Vec<RuleSpec>,
    members_changed: usize,
}

// The body is read as JSON and then rule by rule (`parse_rule_set`), so that a bad rule is
// named by its index; the document shows the type it must parse into.
#[utoipa::path(put, path = "/api/v1/orgs/{slug}/sso/role-mapping", tag = "rules", params(Slug),
    request_body = RoleMappingSpec,
    responses((status = 200, description = "The rules, saved; members re-derived", body = SavedRules)))]
pub(super) async fn put_rules(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    ApiJson(value): ApiJson<serde_json::Value>,
) -> Result<Json<SavedRules>, ApiError> {
    let mapping = RoleMapping::compile(parse_rule_set(value)?)
        .map_err(|e| ApiError::unprocessable("invalid_rule", e.to_string()))?;
    let saved = sso
        .put_role_mapping(&org.id, &mapping, ACTOR, now().unix_timestamp())
        .await?;
    let spec = mapping.spec().clone();
    Ok(Json(SavedRules {
        default_role: spec.default_role,
        rules: spec.rules,
        members_changed: saved.changes.len(),
    }))
}

#[utoipa::path(get, path = "/api/v1/orgs/{slug}/sso/role-mapping", tag = "rules", params(Slug),
    responses((status = 200, description = "The org's rules", body = RoleMappingSpec)))]
pub(super) async fn get_rules(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
) -> Result<Json<RoleMappingSpec>, ApiError> {
    Ok(Json(sso.role_mapping(&org.id).await?.spec().clone()))
}

/// `POST …/sso/role-mapping/test`: claims as an ID token would carry them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DryRun {
    /// A JSON object.
    #[schema(value_type = Object)]
    claims: serde_json::Value,
}

/// What the rules decide for the claims.
#[derive(Serialize, ToSchema)]
pub(super) struct DryRunResult {
    role: Outcome,
    /// The index of the rule that matched; null when the default applied.
    rule: Option<usize>,
    /// Problems seen in the claims (such as an Entra ID groups overage).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    warnings: Vec<&'static str>,
}

#[utoipa::path(post, path = "/api/v1/orgs/{slug}/sso/role-mapping/test", tag = "rules",
    params(Slug), request_body = DryRun,
    responses((status = 200, description = "The dry run's decision", body = DryRunResult)))]
pub(super) async fn test_rules(
    AdminOrg(org): AdminOrg,
    State(sso): State<Sso>,
    ApiJson(req): ApiJson<DryRun>,
) -> Result<Json<DryRunResult>, ApiError> {
    if !req.claims.is_object() {
        return Err(ApiError::unprocessable(
            "invalid_claims",
            "`claims` must be a JSON object, like an ID token's payload.",
        ));
    }
    let decision = sso.role_mapping(&org.id).await?.evaluate(&req.claims);
    Ok(Json(DryRunResult {
        role: decision.outcome,
        rule: decision.rule,
        warnings: crate::sso::warnings(&req.claims),
    }))
}

#[utoipa::path(get, path = "/api/v1/orgs/{slug}/members", tag = "members", params(Slug),
    responses((status = 200, description = "The org's members", body = Vec<MemberRow>)))]
pub(super) async fn members(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
) -> Result<Json<Vec<MemberRow>>, ApiError> {
    Ok(Json(store.members(&org.id).await?))
}

/// One audit event.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditEvent)]
pub(super) struct AuditEventView {
    id: i64,
    actor: String,
    action: String,
    /// What changed; its fields depend on `action`.
    detail: serde_json::Value,
    /// Unix seconds.
    created_at: i64,
}

/// `GET /api/v1/orgs/{slug}/audit?before=<id>&after=<id>&limit=<n>`: newest first, `limit`
/// (default 100, at most 1000) events. The body stays the array it always was; the way on is
/// in a `Link` header (RFC 8288): `rel="next"` for older events, `rel="prev"` for newer ones.
#[utoipa::path(get, path = "/api/v1/orgs/{slug}/audit", tag = "audit", params(Slug, AuditQuery),
    responses((status = 200, description = "A page of events, newest first", body = Vec<AuditEventView>,
        headers(("Link" = String, description = "RFC 8288 links to the older (`rel=\"next\"`) and newer (`rel=\"prev\"`) pages")))))]
pub(super) async fn audit(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let (cursor, limit) = query
        .parse(100)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", m))?;
    let page = store.audit_page(&org.id, cursor, limit).await?;
    let base = format!("/api/v1/orgs/{}/audit", org.slug);
    let mut links = Vec::new();
    if let (true, Some(last)) = (page.older, page.events.last()) {
        links.push(format!(
            "<{base}?before={}&limit={limit}>; rel=\"next\"",
            last.id
        ));
    }
    if let (true, Some(first)) = (page.newer, page.events.first()) {
        links.push(format!(
            "<{base}?after={}&limit={limit}>; rel=\"prev\"",
            first.id
        ));
    }
    let out: Vec<_> = page
        .events
        .into_iter()
        .map(|e| AuditEventView {
            detail: serde_json::from_str(&e.detail).unwrap_or_default(),
            id: e.id,
            actor: e.actor,
            action: e.action,
            created_at: e.created_at,
        })
        .collect();
    let mut res = Json(out).into_response();
    if !links.is_empty() {
        // Slugs are [a-z0-9-] and ids numbers: always a valid header value.
        if let Ok(v) = header::HeaderValue::from_str(&links.join(", ")) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(res)
}
