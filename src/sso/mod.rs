//! The SSO life cycle without HTTP types: connecting an IdP, starting and finishing a sign-in,
//! routing an email to its org, merging a sign-in's claims (ID token and userinfo), role mapping, the IdP's end-session URL, back-channel logout, disconnecting, and SCIM provisioning (the org's
//! directory creating, changing and deprovisioning members; linking their first sign-in).
//! Handlers in `http/` stay thin and call into here; the current time is passed in so tests can
//! pin it. [`Sso`] owns what it needs behind private fields and never calls into `access`.

mod backchannel;
mod claims;
mod connect;
mod jwt_secrets;
mod login;
mod lookups;
mod mappings;
mod orgs;
mod provisioning;
mod routing;
mod scim_groups;
mod scim_link;
mod scim_users;
mod setup;
mod token_auth;

use std::sync::Arc;
use std::time::Duration;

pub use backchannel::BackchannelError;
pub use claims::{groups_overage, warnings, GROUPS_OVERAGE};
pub use connect::{ConnectError, ConnectRequest, ConnectionView};
pub use jwt_secrets::SecretError;
pub use login::{CallbackParams, LoginError, LoginSuccess, SessionFacts};
pub use orgs::OrgError;
pub use provisioning::{
    store_failed as scim_store_failed, ListParams, ScimAnswer, ScimCaller, ScimTokenError,
};
pub use routing::EmailRoute;
pub use setup::{
    link_status, Callback, Draft, DraftInput, SetupAccess, SetupError, SetupLinkView, TestResult,
    TestTarget, BROWSER_IDLE_SECS, DEFAULT_HOURS, MAX_HOURS,
};

use crate::configuration::Settings;
use crate::crypto::SecretBox;
use crate::jose::jwks::JwksRegistry;
use crate::oidc::egress::{Egress, Http, Outbound};
use crate::roles::{RoleChange, RoleMapping};
use crate::store::events::{EventSink, Sinks};
use crate::store::{Rederived, Store, StoreError};

/// The signed-out page the IdP returns the browser to after RP-initiated logout.
pub const SIGNED_OUT_PATH: &str = "/signed-out";

/// The slice of the settings [`Sso`] reads.
#[derive(Debug, Clone)]
pub struct SsoSettings {
    /// The public URL without a trailing slash.
    pub public_base: String,
    pub flow_ttl_secs: i64,
    pub leeway: Duration,
    pub max_id_token_age: Duration,
    pub max_pending_flows: u32,
    /// Where a setup link's IdP may be (see `login.setup_links_internal_idp`).
    pub setup_egress: Egress,
}

impl SsoSettings {
    pub fn from_settings(s: &Settings) -> Self {
        SsoSettings {
            public_base: s.public_url.as_str().trim_end_matches('/').to_owned(),
            flow_ttl_secs: s.login.flow_ttl_secs as i64,
            leeway: Duration::from_secs(s.oidc.clock_leeway_secs),
            max_id_token_age: Duration::from_secs(s.oidc.max_id_token_age_secs),
            max_pending_flows: s.login.max_pending_flows_per_connection,
            setup_egress: if s.login.setup_links_internal_idp {
                Egress::Any
            } else {
                Egress::PublicOnly
            },
        }
    }

    fn public_path(&self, path: &str) -> String {
        format!("{}{path}", self.public_base)
    }
}

/// Everything the SSO logic needs, built once at start. Cheap to clone.
#[derive(Clone)]
pub struct Sso {
    store: Store,
    settings: Arc<SsoSettings>,
    secret_box: SecretBox,
    outbound: Outbound,
    jwks: Arc<JwksRegistry>,
    mappings: Arc<mappings::MappingCache>,
    lookups: Arc<lookups::Lookups>,
}

impl Sso {
    pub fn new(
        store: Store,
        secret_box: SecretBox,
        outbound: Outbound,
        jwks: Arc<JwksRegistry>,
        settings: SsoSettings,
    ) -> Self {
        Sso {
            store,
            settings: Arc::new(settings),
            secret_box,
            outbound,
            jwks,
            mappings: Arc::default(),
            lookups: Arc::default(),
        }
    }

    /// The client for URLs a connection's or secret's saver supplied (`public_only` for an
    /// org admin: pinned to public addresses at every connection).
    fn http(&self, public_only: bool) -> &Http {
        self.outbound.http(Egress::of(public_only))
    }

    /// Answers for names ahead of DNS (tests act out a DNS rebinding with them).
    pub fn host_overrides(&self) -> &crate::oidc::egress::HostOverrides {
        self.outbound.hosts()
    }

    /// What must hear committed changes for this service's caches to stay right.
    pub fn event_sink(&self) -> Arc<dyn EventSink> {
        Arc::new(Sinks(vec![self.mappings.clone(), self.lookups.clone()]))
    }

    /// The org's compiled rule set, or the default (everyone is a viewer) when none was set.
    pub async fn role_mapping(&self, org_id: &str) -> Result<Arc<RoleMapping>, StoreError> {
        self.mappings.get(&self.store, org_id).await
    }

    /// Stores a rule set (it is a `RoleMapping`, so it was validated whole before this) and
    /// re-derives every SSO member's role from their last sign-in claims in the same
    /// transaction: the changes written and audited, denied members' sessions ended.
    pub async fn put_role_mapping(
        &self,
        org_id: &str,
        mapping: &RoleMapping,
        actor: &str,
        now: i64,
    ) -> Result<Rederived, StoreError> {
        self.store
            .save_role_mapping(org_id, mapping.spec(), actor, now, |members| {
                crate::roles::rederive(mapping, members)
            })
            .await
    }

    /// What saving `mapping` would change now (a dry run over every member's last claims;
    /// nothing is written).
    pub async fn preview_role_mapping(
        &self,
        org_id: &str,
        mapping: &RoleMapping,
    ) -> Result<Vec<RoleChange>, StoreError> {
        let members = self.store.members_with_claims(org_id).await?;
        Ok(crate::roles::rederive(mapping, &members))
    }

    pub fn login_url(&self, login_id: &str) -> String {
        self.settings.public_path(&format!("/sso/{login_id}"))
    }

    /// `{public_url}/sso/callback`, the one redirect URI admins register at their IdP.
    pub fn redirect_uri(&self) -> String {
        self.settings.public_path("/sso/callback")
    }

    /// `{public_url}/signed-out`, where the IdP sends the browser back after RP-initiated
    /// logout: admins register it at their IdP as the post-logout redirect URI.
    pub fn post_logout_redirect_uri(&self) -> String {
        self.settings.public_path(SIGNED_OUT_PATH)
    }

    /// Ends one of the user's own sessions in this org (not the current one: the caller ends
    /// that through the session layer).
    pub async fn end_own_session(
        &self,
        org_id: &str,
        user_id: &str,
        sid_hash: &str,
    ) -> Result<(), StoreError> {
        self.store
            .end_user_session(org_id, user_id, sid_hash)
            .await
            .map(|_| ())
    }
}
