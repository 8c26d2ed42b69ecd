//! Activation: the link claimed first, then the draft applied through the admin API's paths.

use super::*;

impl Sso {
    /// Step 6: applies the draft through the admin API's own paths (connect or update, then
    /// the rules when the draft has any), then marks the link used. Returns the login URL.
    /// Refused until a test sign-in with the saved settings succeeded. The link is claimed
    /// first, so a revocation, expiry or second activation cannot interleave with the changes.
    pub async fn activate_setup_link(
        &self,
        access: &SetupAccess,
        now: i64,
    ) -> Result<String, SetupError> {
        Self::live(access)?;
        let Some(link) = self.store.claim_setup_link(&access.link.id, now).await? else {
            let now_row = self.store.setup_link(&access.link.id).await?;
            return Err(match now_row.as_ref().map(|l| link_status(l, now)) {
                Some("revoked") => SetupError::Revoked,
                Some("expired") => SetupError::Expired,
                _ => SetupError::Used,
            });
        };
        let claimed = SetupAccess {
            link,
            org: access.org.clone(),
            new_browser: None,
        };
        match self.apply_setup_draft(&claimed, now).await {
            Ok(url) => Ok(url),
            Err(e) => {
                self.store.release_setup_link(&claimed.link.id, now).await?;
                Err(e)
            }
        }
    }

    /// Activation's changes, on the link as claimed.
    pub(super) async fn apply_setup_draft(
        &self,
        access: &SetupAccess,
        now: i64,
    ) -> Result<String, SetupError> {
        let draft = access
            .draft()
            .filter(|d| d.metadata.is_some())
            .ok_or_else(|| {
                SetupError::Invalid("Save the identity provider's settings (step 3) first.".into())
            })?;
        let fingerprint = draft_fingerprint(&access.link);
        if !access
            .test_result()
            .is_some_and(|t| t.ok && t.fingerprint.as_deref() == Some(fingerprint.as_str()))
        {
            return Err(SetupError::Invalid(
                "Run a successful test sign-in (step 5) with these settings first.".into(),
            ));
        }
        let secret = match access.link.draft_secret_enc.as_deref() {
            Some(enc) if !enc.is_empty() => Some(
                self.secret_box
                    .decrypt(enc, &draft_context(access))
                    .map_err(|e| StoreError::Corrupt(format!("setup draft secret: {e}")))?,
            ),
            _ => None,
        };
        // A private_key_jwt draft tested with the link's own key: the connection takes that key
        // (the IdP has its URL); one tested with the live connection's keeps it.
        let key = match draft.token_auth_method.as_deref() {
            Some(m) if m == TokenAuthMethod::PrivateKeyJwt.as_str() => {
                self.draft_key(&access.link, &draft).await?
            }
            _ => None,
        };
        let owner = link_key_owner(&access.link);
        let premade = key
            .as_ref()
            .filter(|(bound_to, _)| *bound_to == owner)
            .map(|(bound_to, key)| PremadeKey { key, bound_to });
        let actor = access.actor();
        let req = ConnectRequest {
            issuer: draft.issuer.clone(),
            client_id: draft.client_id.clone(),
            client_secret: secret,
            scopes: Some(draft.scopes.clone()),
            groups_claim: Some(draft.groups_claim.clone().unwrap_or_default()),
            userinfo: None,
            token_auth_method: Some(draft.token_auth_method.clone()),
            scim_link_claim: draft.scim_link_claim.clone(),
        };
        let (conn, created) = self
            .connect_with_key(
                &access.org,
                req,
                premade,
                &actor,
                self.settings.setup_egress,
                now,
            )
            .await?;
        if let Some(spec) = access.rules() {
            let mapping = RoleMapping::compile(spec).map_err(|e| SetupError::Invalid(e.message))?;
            self.put_role_mapping(&access.org.id, &mapping, &actor, now)
                .await?;
        }
        let detail = json!({"id": access.link.id, "connection_id": conn.id, "created": created});
        let login_url = self.login_url(&conn.login_id);
        let recorded = Draft {
            login_url: Some(login_url.clone()),
            ..draft
        };
        let text = serde_json::to_string(&recorded).expect("a draft serialises");
        // One write: a failure after it cannot hand back a link whose secret is gone.
        self.store
            .mark_setup_link_used(&access.link, &text, &detail, now)
            .await?;
        Ok(login_url)
    }

    /// The org's live connection's login URL, if it has one.
    pub async fn setup_login_url(&self, org: &OrgRow) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .latest_connection(&org.id)
            .await?
            .filter(Connection::is_connected)
            .map(|c| self.login_url(&c.login_id)))
    }

    /// Whether the org has a live connection (activation will update it, keeping its login URL).
    pub async fn org_connected(&self, org: &OrgRow) -> Result<bool, StoreError> {
        Ok(self.setup_login_url(org).await?.is_some())
    }
}
