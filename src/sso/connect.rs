use serde::{Deserialize, Serialize};

use super::token_auth::{new_client_key, rebind_client_key, PremadeKey};
use super::Sso;
use crate::crypto::{random_token, Secret};
use crate::domain::{parse_scopes, Invalid, Issuer};
use crate::oidc::client_auth::TokenAuthMethod;
use crate::oidc::discovery::{discover_for, DiscoveryError, ProviderMetadata};
use crate::oidc::egress::Egress;
use crate::store::{
    new_id, Connection, ConnectionStatus, DisconnectCounts, OrgRow, StoreError, TokenAuth,
};

/// `PUT /api/v1/orgs/{slug}/sso`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    pub issuer: String,
    pub client_id: String,
    /// Required on first connect; on an update, omitted keeps the stored secret.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The claim holding group or role names (`groups`, `/realm_access/roles`), offered by the
    /// rule editor. Omitted keeps the stored one on an update; `""` clears it.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Whether sign-ins ask the IdP's userinfo endpoint for claims the ID token lacks. Omitted
    /// keeps the stored setting on an update; on by default.
    #[serde(default)]
    pub userinfo: Option<bool>,
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`; `null` is automatic:
    /// chosen from discovery, the other secret method tried once if the IdP refuses the client,
    /// the one that worked remembered. Omitted: automatic on a first connect, the stored choice
    /// kept on an update (like the other optional fields). `private_key_jwt` takes no
    /// `client_secret`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub token_auth_method: Option<Option<String>>,
    /// The sign-in claim matched to a SCIM user's `externalId` when someone signs in for the
    /// first time (`sub` by default; `oid` for Entra ID). Omitted keeps the stored one.
    #[serde(default)]
    pub scim_link_claim: Option<String>,
}

/// A field that is present (`Some`, its value possibly `null`) rather than omitted (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A connection as the admin API shows it: never the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    /// `connected` or `disconnected`.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
    pub redirect_uri: String,
    /// The signed-out page to register at the IdP for RP-initiated logout.
    pub post_logout_redirect_uri: String,
    /// Where the IdP posts logout tokens (OpenID Connect Back-Channel Logout).
    pub backchannel_logout_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    pub userinfo: bool,
    /// The admin's choice; null is automatic.
    #[schema(value_type = Option<String>)]
    pub token_auth_method: Option<&'static str>,
    /// Automatic mode: the secret method learned after the IdP refused the other one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub token_auth_method_learned: Option<&'static str>,
    /// Where the IdP fetches the public key of the connection's `private_key_jwt` key pair
    /// (register it as the client's JWKS URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_jwks_uri: Option<String>,
    pub scim_link_claim: String,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    Discovery(#[from] DiscoveryError),
    #[error("another change to this org's SSO connection happened at the same time; try again")]
    Conflict,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ConnectError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => ConnectError::Conflict,
            other => ConnectError::Store(other),
        }
    }
}

pub(super) fn parse_client_id(s: &str) -> Result<String, Invalid> {
    let t = s.trim();
    if t.is_empty() || t.len() > 255 || t.chars().any(char::is_control) {
        return Err(Invalid(
            "client_id must be 1 to 255 characters, as your IdP shows it".into(),
        ));
    }
    Ok(t.to_owned())
}

/// A claim name or JSON Pointer, checked by the rule engine's own rules for `claim`.
pub(super) fn parse_groups_claim(s: &str) -> Result<Option<String>, Invalid> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    crate::roles::check_claim(t)
        .map(|()| Some(t.to_owned()))
        .map_err(|e| Invalid(format!("groups_claim: {e}")))
}

/// A top-level claim name: what a SCIM user's `externalId` is compared with at first sign-in.
fn parse_scim_link_claim(s: &str) -> Result<String, Invalid> {
    let t = s.trim();
    if t.is_empty()
        || t.len() > 64
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c))
    {
        return Err(Invalid(
            "scim_link_claim must be a claim name of 1 to 64 characters such as `sub` or `oid`"
                .into(),
        ));
    }
    Ok(t.to_owned())
}

pub(super) fn parse_token_auth_method(s: Option<&str>) -> Result<Option<TokenAuthMethod>, Invalid> {
    s.map(str::parse::<TokenAuthMethod>)
        .transpose()
        .map_err(|e| Invalid(e.to_string()))
}

pub(super) fn check_secret(s: &Secret) -> Result<(), Invalid> {
    if s.expose().is_empty() || s.expose().len() > 2048 {
        return Err(Invalid("client_secret must be 1 to 2048 characters".into()));
    }
    Ok(())
}

impl Sso {
    /// Discovery for `issuer` with its key set checked usable, as a connect runs it before
    /// anything is saved (the setup wizard's draft runs the same).
    pub(super) async fn discover_checked(
        &self,
        issuer: &Issuer,
        method: Option<TokenAuthMethod>,
        egress: Egress,
    ) -> Result<ProviderMetadata, DiscoveryError> {
        let (meta, jwks): (ProviderMetadata, serde_json::Value) =
            discover_for(self.outbound.http(egress), issuer, method).await?;
        // The keys must be usable before anything is saved: a key set of only 1024-bit, `oct` or
        // encryption keys would fail every sign-in later. Seeding also spares the first sign-in
        // a fetch.
        self.jwks
            .insert_seeded(meta.jwks_uri(), egress, &jwks)
            .map_err(|e| DiscoveryError::Jwks {
                url: meta.jwks_uri().to_string(),
                reason: e.to_string(),
            })?;
        Ok(meta)
    }

    pub fn view(&self, c: &Connection) -> ConnectionView {
        ConnectionView {
            status: c.status.as_str(),
            issuer: c.issuer.clone(),
            client_id: c.client_id.clone(),
            scopes: c.scopes.clone(),
            login_url: c.is_connected().then(|| self.login_url(&c.login_id)),
            redirect_uri: self.redirect_uri(),
            post_logout_redirect_uri: self.post_logout_redirect_uri(),
            backchannel_logout_uri: self.backchannel_logout_uri(),
            groups_claim: c.groups_claim.clone(),
            userinfo: c.userinfo,
            token_auth_method: c.token_auth.method.map(TokenAuthMethod::as_str),
            token_auth_method_learned: c
                .token_auth
                .learned
                .filter(|_| c.token_auth.method.is_none())
                .map(TokenAuthMethod::as_str),
            client_jwks_uri: c
                .token_auth
                .key
                .as_ref()
                .filter(|_| c.is_connected())
                .map(|k| self.client_jwks_uri(&k.jwks_id)),
            scim_link_claim: c.scim_link_claim.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            disconnected_at: c.disconnected_at,
        }
    }

    /// Connects (or updates) the org's IdP after discovery succeeds. Returns the connection
    /// and whether it is new (a new login URL) rather than an update (login URL kept).
    pub async fn connect(
        &self,
        org: &OrgRow,
        req: ConnectRequest,
        actor: &str,
        egress: Egress,
        now: i64,
    ) -> Result<(Connection, bool), ConnectError> {
        self.connect_with_key(org, req, None, actor, egress, now)
            .await
    }

    /// [`Sso::connect`], with a `private_key_jwt` key pair made beforehand (a setup link's,
    /// whose URL the customer registered): used instead of the connection's own, re-bound to
    /// the connection, its JWKS id kept.
    pub(super) async fn connect_with_key(
        &self,
        org: &OrgRow,
        req: ConnectRequest,
        premade: Option<PremadeKey<'_>>,
        actor: &str,
        egress: Egress,
        now: i64,
    ) -> Result<(Connection, bool), ConnectError> {
        let issuer = Issuer::parse(&req.issuer)?;
        let client_id = parse_client_id(&req.client_id)?;
        let scopes = parse_scopes(req.scopes)?;
        let groups_claim = req
            .groups_claim
            .as_deref()
            .map(parse_groups_claim)
            .transpose()?;
        let scim_link_claim = req
            .scim_link_claim
            .as_deref()
            .map(parse_scim_link_claim)
            .transpose()?;
        let given = req
            .token_auth_method
            .as_ref()
            .map(|m| parse_token_auth_method(m.as_deref()))
            .transpose()?;
        let current = self
            .store
            .latest_connection(&org.id)
            .await?
            .filter(|c| c.is_connected());
        let method = match given {
            Some(m) => m,
            None => current.as_ref().and_then(|c| c.token_auth.method),
        };
        let uses_secret = method.is_none_or(TokenAuthMethod::uses_secret);
        if let Some(s) = &req.client_secret {
            if !uses_secret {
                return Err(Invalid("private_key_jwt uses no shared secret: leave client_secret out. orgsso signs with the connection's own key; register client_jwks_uri (in the answer) at the IdP".into()).into());
            }
            check_secret(s)?;
        }
        let has_secret = current
            .as_ref()
            .is_some_and(|c| !c.client_secret_enc.is_empty());
        if uses_secret && req.client_secret.is_none() && !has_secret {
            let why = if current.is_none() {
                "client_secret is required to connect an IdP".to_owned()
            } else {
                format!(
                    "client_secret is required for {}: the connection has no secret stored",
                    method.map_or("a secret method", TokenAuthMethod::as_str)
                )
            };
            return Err(Invalid(why).into());
        }
        let meta = self.discover_checked(&issuer, method, egress).await?;
        let mut detail = serde_json::json!({"issuer": issuer.as_str(), "client_id": client_id, "scopes": scopes, "groups_claim": groups_claim,
            "token_auth_method": method.map_or("automatic", TokenAuthMethod::as_str)});
        if let Some(u) = req.userinfo {
            detail["userinfo"] = u.into();
        }
        if let Some(l) = &scim_link_claim {
            detail["scim_link_claim"] = l.as_str().into();
        }
        let row = match current {
            Some(mut c) => {
                if let Some(s) = &req.client_secret {
                    c.client_secret_enc = self.secret_box.encrypt(s.expose(), &c.id);
                }
                if !uses_secret {
                    // No shared secret is kept for a connection that does not use one.
                    c.client_secret_enc = String::new();
                    if let Some(p) = &premade {
                        c.token_auth.key = Some(rebind_client_key(&self.secret_box, p, &c.id)?);
                    } else if c.token_auth.key.is_none() {
                        c.token_auth.key = Some(new_client_key(&self.secret_box, &c.id));
                    }
                }
                c.token_auth.method = method;
                // What was learned may not hold for the changed settings: learn again.
                c.token_auth.learned = None;
                // The URLs are now this saver's: an org admin's are pinned to public addresses.
                c.public_only = egress.is_public_only();
                c.issuer = issuer.as_str().to_owned();
                c.client_id = client_id;
                c.scopes = scopes;
                c.metadata = meta;
                c.updated_at = now;
                if let Some(g) = groups_claim {
                    c.groups_claim = g;
                }
                if let Some(u) = req.userinfo {
                    c.userinfo = u;
                }
                if let Some(l) = scim_link_claim {
                    c.scim_link_claim = l;
                }
                if !self.store.update_connection(&c, actor, &detail).await? {
                    return Err(ConnectError::Conflict);
                }
                (c, false)
            }
            None => {
                let id = new_id();
                let client_secret_enc = match &req.client_secret {
                    Some(secret) => self.secret_box.encrypt(secret.expose(), &id),
                    None => String::new(), // private_key_jwt (checked above)
                };
                let key = match (&premade, uses_secret) {
                    (_, true) => None,
                    (Some(p), false) => Some(rebind_client_key(&self.secret_box, p, &id)?),
                    (None, false) => Some(new_client_key(&self.secret_box, &id)),
                };
                let token_auth = TokenAuth {
                    method,
                    learned: None,
                    key,
                };
                let c = Connection {
                    client_secret_enc,
                    token_auth,
                    id,
                    org_id: org.id.clone(),
                    // 256 bits: the login URL is shared, but not guessable.
                    login_id: random_token(32),
                    issuer: issuer.as_str().to_owned(),
                    client_id,
                    scopes,
                    metadata: meta,
                    status: ConnectionStatus::Connected,
                    created_at: now,
                    updated_at: now,
                    disconnected_at: None,
                    groups_claim: groups_claim.flatten(),
                    userinfo: req.userinfo.unwrap_or(true),
                    public_only: egress.is_public_only(),
                    scim_link_claim: scim_link_claim.unwrap_or_else(|| "sub".to_owned()),
                };
                self.store.insert_connection(&c, actor, &detail).await?;
                (c, true)
            }
        };
        Ok(row)
    }

    pub async fn disconnect(
        &self,
        org: &OrgRow,
        actor: &str,
        now: i64,
    ) -> Result<Option<DisconnectCounts>, StoreError> {
        self.store.disconnect(&org.id, actor, now).await
    }
}
