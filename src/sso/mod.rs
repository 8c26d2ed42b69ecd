//! The SSO life cycle without HTTP types: connecting an IdP, starting and finishing a sign-in,
//! role mapping and disconnecting. Handlers in `http/` stay thin and call into here; the
//! current time is passed in so tests can pin it.

mod connect;
mod login;
mod orgs;
mod secrets;

use std::sync::Arc;

pub use connect::{ConnectError, ConnectRequest, ConnectionView};
pub use login::{CallbackParams, LoginError, LoginSuccess};
pub use orgs::OrgError;
pub use secrets::SecretError;

use crate::configuration::Settings;
use crate::crypto::SecretBox;
use crate::jose::jwks::JwksRegistry;
use crate::roles::{RoleMapping, RoleMappingSpec};
use crate::store::{Store, StoreError};

/// Everything the SSO logic needs, built once at start.
#[derive(Clone)]
pub struct Sso {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub secrets: SecretBox,
    pub http: reqwest::Client,
    pub jwks: Arc<JwksRegistry>,
    /// Verify-endpoint caches and token minting; revocations here invalidate them at once.
    pub gate: Arc<crate::auth::Gate>,
}

impl Sso {
    /// The org's rule set, or the default (everyone is a viewer) when none was ever set.
    pub async fn role_mapping(&self, org_id: &str) -> Result<RoleMapping, StoreError> {
        let spec = match self.store.role_mapping(org_id).await? {
            Some(json) => serde_json::from_str::<RoleMappingSpec>(&json)
                .map_err(|e| StoreError::Corrupt(format!("role mapping of org {org_id}: {e}")))?,
            None => RoleMappingSpec::default(),
        };
        RoleMapping::compile(spec)
            .map_err(|e| StoreError::Corrupt(format!("role mapping of org {org_id}: {e}")))
    }

    /// Stores a rule set; it is a `RoleMapping`, so it was validated whole before this.
    pub async fn put_role_mapping(
        &self,
        org_id: &str,
        mapping: &RoleMapping,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(mapping.spec()).expect("a rule set serialises");
        self.store.put_role_mapping(org_id, &json, actor, now).await
    }

    pub fn login_url(&self, login_id: &str) -> String {
        self.settings.public_path(&format!("/sso/{login_id}"))
    }
}
