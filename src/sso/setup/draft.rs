//! A setup link's draft: the IdP chosen, the credentials checked by discovery, the rules, and
//! the link's own `private_key_jwt` key.

use super::*;

impl Sso {
    /// Step 1: the IdP chosen (a preset id the caller checked, `""` for another provider),
    /// with the preset's scopes, groups claim and SCIM link claim as the form's defaults.
    pub async fn choose_setup_preset(
        &self,
        access: &SetupAccess,
        preset: &str,
        defaults: Draft,
        now: i64,
    ) -> Result<(), SetupError> {
        Self::live(access)?;
        let mut draft = access.draft().unwrap_or_default();
        if draft.preset != preset || draft.scopes.is_empty() {
            draft.scopes = defaults.scopes;
            draft.groups_claim = defaults.groups_claim;
            draft.scim_link_claim = defaults.scim_link_claim;
        }
        draft.preset = preset.to_owned();
        self.save_draft(access, &draft, None, json!({"preset": preset}), now)
            .await
    }

    pub(super) async fn save_draft(
        &self,
        access: &SetupAccess,
        draft: &Draft,
        secret_enc: Option<&str>,
        detail: serde_json::Value,
        now: i64,
    ) -> Result<(), SetupError> {
        let text = serde_json::to_string(draft).expect("a draft serialises");
        let part = DraftPart::Connection {
            draft: &text,
            secret_enc,
        };
        self.save_part(access, part, "setup_link.draft_saved", &detail, now)
            .await
    }

    /// Writes part of the draft; a link used or revoked meanwhile is `Used` (nothing written).
    pub(super) async fn save_part(
        &self,
        access: &SetupAccess,
        part: DraftPart<'_>,
        action: &str,
        detail: &serde_json::Value,
        now: i64,
    ) -> Result<(), SetupError> {
        if self
            .store
            .save_setup_draft(&access.link, part, action, detail, now)
            .await?
        {
            Ok(())
        } else {
            Err(SetupError::Used)
        }
    }

    /// Step 3: the credentials, checked as a connect checks them (the same discovery) and
    /// saved on the draft; the live connection is untouched. The secret is encrypted, bound to
    /// the link.
    pub async fn save_setup_credentials(
        &self,
        access: &SetupAccess,
        input: DraftInput,
        now: i64,
    ) -> Result<(), SetupError> {
        Self::live(access)?;
        let issuer = Issuer::parse(&input.issuer).map_err(ConnectError::from)?;
        let client_id = parse_client_id(&input.client_id).map_err(ConnectError::from)?;
        let scopes = parse_scopes((!input.scopes.is_empty()).then_some(input.scopes))
            .map_err(ConnectError::from)?;
        let groups_claim = parse_groups_claim(&input.groups_claim).map_err(ConnectError::from)?;
        let method = parse_token_auth_method(
            Some(input.token_auth_method.as_str()).filter(|m| !m.is_empty()),
        )
        .map_err(ConnectError::from)?;
        let uses_secret = method.is_none_or(TokenAuthMethod::uses_secret);
        if let Some(s) = &input.client_secret {
            if !uses_secret {
                return Err(SetupError::Invalid("private_key_jwt uses no shared secret: leave the client secret empty and register the key URL shown above at your identity provider.".into()));
            }
            check_secret(s).map_err(ConnectError::from)?;
        }
        if uses_secret && input.client_secret.is_none() && !access.has_secret() {
            return Err(SetupError::Invalid(
                "Enter the client secret your identity provider shows for this application.".into(),
            ));
        }
        // The stored secret goes only to the client and IdP it was entered for: whoever holds
        // the link must not send it to a token endpoint of their choosing.
        let saved = access.draft().filter(|d| d.metadata.is_some());
        let keeps_secret = uses_secret && input.client_secret.is_none();
        if keeps_secret
            && !saved
                .as_ref()
                .is_some_and(|d| d.issuer == issuer.as_str() && d.client_id == client_id)
        {
            return Err(SetupError::Invalid(SECRET_AGAIN.into()));
        }
        let meta = self
            .discover_checked(&issuer, method, self.settings.setup_egress)
            .await
            .map_err(ConnectError::from)?;
        let same_endpoint = |d: &Draft| {
            d.metadata
                .as_ref()
                .is_some_and(|m| m.token_endpoint() == meta.token_endpoint())
        };
        if keeps_secret && !saved.as_ref().is_some_and(same_endpoint) {
            return Err(SetupError::Invalid(SECRET_AGAIN.into()));
        }
        if !uses_secret {
            self.ensure_link_key(access, issuer.as_str(), &client_id)
                .await?;
        }
        let mut draft = access.draft().unwrap_or_default();
        draft.issuer = issuer.as_str().to_owned();
        draft.client_id = client_id;
        draft.scopes = scopes;
        draft.groups_claim = groups_claim;
        draft.token_auth_method = method.map(|m| m.as_str().to_owned());
        if !input.scim_link_claim.trim().is_empty() {
            draft.scim_link_claim = Some(input.scim_link_claim.trim().to_owned());
        }
        draft.metadata = Some(meta);
        let secret_enc = match (&input.client_secret, uses_secret) {
            (Some(s), true) => Some(self.secret_box.encrypt(s.expose(), &draft_context(access))),
            // No shared secret is kept for a method that uses none.
            (_, false) => Some(String::new()),
            (None, true) => None,
        };
        let detail = json!({"issuer": draft.issuer, "client_id": draft.client_id, "scopes": draft.scopes,
            "token_auth_method": draft.token_auth_method.as_deref().unwrap_or("automatic"),
            "secret_changed": input.client_secret.is_some()});
        self.save_draft(access, &draft, secret_enc.as_deref(), detail, now)
            .await
    }

    /// Step 4: the rules (validated whole by the caller: a `RoleMapping`) saved on the draft.
    pub async fn save_setup_rules(
        &self,
        access: &SetupAccess,
        mapping: &RoleMapping,
        now: i64,
    ) -> Result<(), SetupError> {
        Self::live(access)?;
        let spec = mapping.spec();
        let text = serde_json::to_string(spec).expect("rules serialise");
        let detail = json!({"rules": spec.rules.len(), "default_role": spec.default_role.as_str()});
        self.save_part(
            access,
            DraftPart::Rules(&text),
            "setup_link.rules_saved",
            &detail,
            now,
        )
        .await
    }

    /// The rules a test or an activation applies: the draft's, else the org's current ones.
    pub async fn setup_mapping(
        &self,
        access: &SetupAccess,
    ) -> Result<std::sync::Arc<RoleMapping>, StoreError> {
        match access.rules().map(RoleMapping::compile) {
            Some(Ok(m)) => Ok(std::sync::Arc::new(m)),
            _ => self.role_mapping(&access.org.id).await,
        }
    }

    /// The org's live connection when it has a `private_key_jwt` key pair and the same
    /// issuer and client as the draft: only then does a draft sign with (and activation keep)
    /// its key; any other client would make the link a signing oracle on a production key.
    pub(super) async fn lendable_key(
        &self,
        org_id: &str,
        issuer: &str,
        client_id: &str,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(self.store.latest_connection(org_id).await?.filter(|c| {
            c.is_connected()
                && c.token_auth.key.is_some()
                && c.issuer == issuer
                && c.client_id == client_id
        }))
    }

    /// Makes the link's own key pair when a `private_key_jwt` draft for this client cannot
    /// borrow the live connection's (a new customer has none); a link keeps its first key.
    pub(super) async fn ensure_link_key(
        &self,
        access: &SetupAccess,
        issuer: &str,
        client_id: &str,
    ) -> Result<(), StoreError> {
        if access.link.client_jwks_id.is_some()
            || self
                .lendable_key(&access.org.id, issuer, client_id)
                .await?
                .is_some()
        {
            return Ok(());
        }
        let key = new_client_key(&self.secret_box, &link_key_owner(&access.link));
        // False: another request made it first; that one stays.
        self.store.set_setup_link_key(&access.link.id, &key).await?;
        Ok(())
    }

    /// The key a `private_key_jwt` draft signs with, and what its private key is bound to:
    /// the live connection's for the same client, else the link's own.
    pub(super) async fn draft_key(
        &self,
        link: &SetupLinkRow,
        draft: &Draft,
    ) -> Result<Option<(String, ClientKey)>, StoreError> {
        let live = self
            .lendable_key(&link.org_id, &draft.issuer, &draft.client_id)
            .await?;
        if let Some(c) = live {
            return Ok(c.token_auth.key.map(|k| (c.id, k)));
        }
        Ok(link.client_key()?.map(|k| (link_key_owner(link), k)))
    }

    /// The `private_key_jwt` key URL the customer registers, once the draft chose that method.
    pub async fn setup_client_jwks_uri(
        &self,
        access: &SetupAccess,
    ) -> Result<Option<String>, StoreError> {
        let Some(draft) = access.draft().filter(|d| {
            d.token_auth_method.as_deref() == Some(TokenAuthMethod::PrivateKeyJwt.as_str())
        }) else {
            return Ok(None);
        };
        Ok(self
            .draft_key(&access.link, &draft)
            .await?
            .map(|(_, k)| self.client_jwks_uri(&k.jwks_id)))
    }
}
