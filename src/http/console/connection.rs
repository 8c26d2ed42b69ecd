//! An org's SSO page: connect, update or reconnect its IdP (with presets), the login URL and
//! redirect URI to copy, claimed domains, and disconnect with a confirmation that says what
//! will happen.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::json;

use super::orgs::split_list;
use super::{pages, CsrfForm, OrgConsole, Viewer};
use crate::crypto::Secret;
use crate::http::error::ApiError;
use crate::http::now;
use crate::sso::{ConnectError, ConnectRequest, OrgError};

/// Settings that most tenants of each IdP use; the form fills them in, the admin adjusts.
#[derive(Serialize)]
pub(crate) struct Preset {
    pub id: &'static str,
    pub label: &'static str,
    pub issuer_hint: &'static str,
    pub scopes: &'static str,
    pub groups_claim: &'static str,
    /// The claim matched to SCIM externalIds at a first sign-in.
    pub scim_link_claim: &'static str,
    pub note: &'static str,
}

pub(crate) const PRESETS: &[Preset] = &[
    Preset {
        id: "okta",
        label: "Okta",
        issuer_hint: "https://{yourOktaDomain}/oauth2/default",
        scopes: "openid email profile groups",
        groups_claim: "groups",
        scim_link_claim: "sub",
        note: "Add a groups claim to the app's ID token (filter e.g. Matches regex .*).",
    },
    Preset {
        id: "auth0",
        label: "Auth0",
        issuer_hint: "https://{tenant}.auth0.com/",
        scopes: "openid email profile",
        groups_claim: "https://example.com/roles",
        scim_link_claim: "sub",
        note: "Auth0 sends roles only through an Action that sets a namespaced claim; use your namespace.",
    },
    Preset {
        id: "keycloak",
        label: "Keycloak",
        issuer_hint: "https://{host}/realms/{realm}",
        scopes: "openid email profile",
        groups_claim: "/realm_access/roles",
        scim_link_claim: "sub",
        note: "Realm roles are at /realm_access/roles; with a Group Membership mapper use groups.",
    },
    Preset {
        id: "entra",
        label: "Microsoft Entra ID",
        issuer_hint: "https://login.microsoftonline.com/{tenant-id}/v2.0",
        scopes: "openid email profile",
        groups_claim: "groups",
        // Entra ID's SCIM externalId is the user's object id, which ID tokens carry as `oid`.
        scim_link_claim: "oid",
        note: "Enable the groups claim in Token configuration; Entra sends group object ids (or use roles for app roles).",
    },
    Preset {
        id: "google",
        label: "Google Workspace",
        issuer_hint: "https://accounts.google.com",
        scopes: "openid email profile",
        groups_claim: "hd",
        scim_link_claim: "sub",
        note: "Google sends no groups; map by hd (the Workspace domain) or by email with matches.",
    },
];

/// The connect form as typed (or as stored), never with the client secret.
#[derive(Serialize)]
struct Typed {
    issuer: String,
    client_id: String,
    scopes: String,
    groups_claim: String,
    userinfo: bool,
    /// `""` is automatic.
    token_auth_method: String,
    scim_link_claim: String,
}

impl Default for Typed {
    fn default() -> Self {
        Typed {
            issuer: String::new(),
            client_id: String::new(),
            scopes: String::new(),
            groups_claim: String::new(),
            userinfo: true,
            token_auth_method: String::new(),
            scim_link_claim: "sub".into(),
        }
    }
}

async fn render(
    oc: &OrgConsole,
    status: StatusCode,
    error: Option<String>,
    typed: Option<Typed>,
    domains_error: Option<String>,
) -> Response {
    let sso = &oc.c.sso;
    let conn = match oc.c.store.latest_connection(&oc.org.id).await {
        Ok(c) => c,
        Err(e) => return oc.c.store_failed(e),
    };
    let domains = match oc.c.store.org_domains(&oc.org.id).await {
        Ok(d) => d,
        Err(e) => return oc.c.store_failed(e),
    };
    let view = conn.as_ref().map(|c| sso.view(c));
    let typed = typed.unwrap_or_else(|| match &view {
        Some(v) => Typed {
            issuer: v.issuer.clone(),
            client_id: v.client_id.clone(),
            scopes: v.scopes.join(" "),
            groups_claim: v.groups_claim.clone().unwrap_or_default(),
            userinfo: v.userinfo,
            token_auth_method: v.token_auth_method.unwrap_or_default().to_owned(),
            scim_link_claim: v.scim_link_claim.clone(),
        },
        None => Typed {
            scopes: "openid email profile".into(),
            ..Typed::default()
        },
    });
    let status_text = view.as_ref().map_or("not configured", |v| v.status);
    let page = json!({
        "sso_status": status_text,
        "connected": status_text == "connected",
        "connection": view,
        "redirect_uri": sso.redirect_uri(),
        "post_logout_redirect_uri": sso.post_logout_redirect_uri(),
        "backchannel_logout_uri": sso.backchannel_logout_uri(),
        "presets": PRESETS,
        "typed": typed,
        "error": error,
        "domains": domains.join(", "),
        "domains_error": domains_error,
        "disconnected_at": view.as_ref().and_then(|v| v.disconnected_at).map(|t| super::when(Some(t))),
    });
    oc.render(status, "console_sso.html", "Single sign-on", "sso", page)
}

/// `GET /admin/orgs/{slug}`.
pub async fn page(oc: OrgConsole) -> Response {
    render(&oc, StatusCode::OK, None, None, None).await
}

/// `POST /admin/orgs/{slug}`: connect, update or reconnect. Discovery is run before anything is
/// saved; a failure shows its reason in the form with the typed values kept.
pub async fn save(oc: OrgConsole, CsrfForm(form): CsrfForm) -> Response {
    let typed = Typed {
        issuer: form.get("issuer").trim().to_owned(),
        client_id: form.get("client_id").trim().to_owned(),
        scopes: form.get("scopes").trim().to_owned(),
        groups_claim: form.get("groups_claim").trim().to_owned(),
        // An unticked checkbox sends nothing: `userinfo_shown` says the form had it.
        userinfo: !form.has("userinfo_shown") || form.has("userinfo"),
        token_auth_method: form.get("token_auth_method").trim().to_owned(),
        scim_link_claim: form.get("scim_link_claim").trim().to_owned(),
    };
    let secret = form.get("client_secret");
    let scopes: Vec<String> = split_list(&typed.scopes)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let req = ConnectRequest {
        issuer: typed.issuer.clone(),
        client_id: typed.client_id.clone(),
        client_secret: (!secret.is_empty()).then(|| Secret::new(secret)),
        scopes: (!scopes.is_empty()).then_some(scopes),
        groups_claim: Some(typed.groups_claim.clone()),
        userinfo: form.has("userinfo_shown").then_some(typed.userinfo),
        // The form always says: an empty choice is automatic.
        token_auth_method: Some(Some(typed.token_auth_method.clone()).filter(|m| !m.is_empty())),
        // Absent from the form, or left empty: the stored claim (or `sub`) is kept.
        scim_link_claim: Some(form.get("scim_link_claim").trim().to_owned())
            .filter(|c| !c.is_empty()),
    };
    let result =
        oc.c.sso
            .connect(
                &oc.org,
                req,
                &oc.actor(),
                oc.c.viewer.egress(),
                now().unix_timestamp(),
            )
            .await;
    let (status, error) = match result {
        Ok((_, true)) => {
            return oc
                .done(
                    "",
                    "Connected. Share the login URL below with your colleagues.",
                )
                .await
        }
        Ok((_, false)) => return oc.done("", "Saved. The login URL is unchanged.").await,
        Err(ConnectError::Store(e)) => return oc.c.store_failed(e),
        Err(e) => {
            let e = ApiError::from(e);
            (e.status, e.message)
        }
    };
    render(&oc, status, Some(error), Some(typed), None).await
}

/// `POST /admin/orgs/{slug}/domains`: the email domains that route "Login with SSO" here.
pub async fn save_domains(oc: OrgConsole, CsrfForm(form): CsrfForm) -> Response {
    // A claimed domain sends every stranger with that email to this org's IdP: only the
    // operator, who can check ownership, may claim one.
    if oc.c.viewer != Viewer::Operator {
        return super::forbidden(
            &oc.c.rid,
            "Only the operator can change an organisation's email domains.",
        );
    }
    let domains = split_list(form.get("domains"));
    match oc
        .c
        .sso
        .set_org_domains(&oc.org, &domains, &oc.actor(), now().unix_timestamp())
        .await
    {
        Ok(_) => oc.done("", "Domains saved.").await,
        Err(OrgError::Store(e)) => oc.c.store_failed(e),
        Err(e) => {
            let e = ApiError::from(e);
            render(&oc, e.status, None, None, Some(e.message)).await
        }
    }
}

/// `GET /admin/orgs/{slug}/disconnect`: what a disconnect would do, and the button.
pub async fn confirm_disconnect(oc: OrgConsole) -> Response {
    let connected = match oc.c.store.latest_connection(&oc.org.id).await {
        Ok(c) => c.is_some_and(|c| c.is_connected()),
        Err(e) => return oc.c.store_failed(e),
    };
    if !connected {
        return oc
            .done(
                "",
                "The identity provider is not connected; there is nothing to disconnect.",
            )
            .await;
    }
    let preview = match oc
        .c
        .store
        .disconnect_preview(&oc.org.id, now().unix_timestamp())
        .await
    {
        Ok(p) => p,
        Err(e) => return oc.c.store_failed(e),
    };
    let own_session = matches!(oc.c.viewer, super::Viewer::OrgAdmin { .. });
    oc.render(
        StatusCode::OK,
        "console_disconnect.html",
        "Disconnect",
        "sso",
        json!({
            "sessions": preview.sessions_revoked,
            "members": preview.members_downgraded,
            "own_session": own_session,
        }),
    )
}

/// `POST /admin/orgs/{slug}/disconnect`.
pub async fn disconnect(oc: OrgConsole, CsrfForm(_): CsrfForm) -> Response {
    let result =
        oc.c.sso
            .disconnect(&oc.org, &oc.actor(), now().unix_timestamp())
            .await;
    match result {
        Ok(Some(c)) if matches!(oc.c.viewer, Viewer::OrgAdmin { .. }) => {
            // The org admin's own session ended with the others: say so here, since there is
            // no session left to carry a notice to the next page.
            pages::message(
                StatusCode::OK,
                "Disconnected",
                &format!(
                    "{} ended, yours included; {}. The login URL is retired. Sign in again once the identity provider is reconnected.",
                    plural(c.sessions_revoked, "session", "sessions"),
                    plural(
                        c.members_downgraded,
                        "one member is now a viewer",
                        "members are now viewers"
                    ),
                ),
                &oc.c.rid,
                vec![pages::Link {
                    href: "/admin/login".into(),
                    label: "Console sign-in",
                }],
            )
        }
        Ok(Some(c)) => {
            let notice = format!(
                "Disconnected: {} ended, {}. The login URL is retired; reconnect below to issue a new one.",
                plural(c.sessions_revoked, "session", "sessions"),
                plural(
                    c.members_downgraded,
                    "member is now a viewer",
                    "members are now viewers"
                ),
            );
            oc.done("", notice).await
        }
        Ok(None) => {
            oc.done("", "The identity provider was already disconnected.")
                .await
        }
        Err(e) => oc.c.store_failed(e),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
