//! Test sign-ins: a real authorization-code flow with a draft's (or the live connection's)
//! settings whose callback stores the claims received and never enrols or starts a session.

use super::*;

impl Sso {
    /// The draft as a connection a test sign-in can use (in memory only; never stored).
    pub(super) async fn draft_connection(
        &self,
        link: &SetupLinkRow,
    ) -> Result<Connection, LoginError> {
        let draft: Draft = json_of(link.draft.as_deref()).unwrap_or_default();
        let Some(metadata) = draft.metadata.clone() else {
            return Err(LoginError::BadRequest(
                "Save the identity provider's settings (step 3) before testing.".into(),
            ));
        };
        let method = draft
            .token_auth_method
            .as_deref()
            .and_then(|m| m.parse::<TokenAuthMethod>().ok());
        let mut id = link_key_owner(link);
        let mut key = None;
        if method == Some(TokenAuthMethod::PrivateKeyJwt) {
            // The assertion is signed as the key's owner: its id is what the key is bound to.
            let (owner, k) = self.draft_key(link, &draft).await?.ok_or_else(|| {
                LoginError::BadRequest(
                    "This draft has no key pair for private_key_jwt: save step 3 again.".into(),
                )
            })?;
            id = owner;
            key = Some(k);
        }
        // What activation will use: it keeps the live connection's setting (a new one's is on).
        let userinfo = self
            .store
            .latest_connection(&link.org_id)
            .await?
            .filter(Connection::is_connected)
            .is_none_or(|c| c.userinfo);
        Ok(Connection {
            id,
            org_id: link.org_id.clone(),
            login_id: String::new(),
            issuer: draft.issuer,
            client_id: draft.client_id,
            client_secret_enc: link.draft_secret_enc.clone().unwrap_or_default(),
            scopes: draft.scopes,
            metadata,
            status: ConnectionStatus::Connected,
            created_at: link.created_at,
            updated_at: link.created_at,
            disconnected_at: None,
            groups_claim: draft.groups_claim,
            userinfo,
            token_auth: TokenAuth {
                method,
                learned: None,
                key,
            },
            public_only: self.settings.setup_egress.is_public_only(),
            scim_link_claim: draft.scim_link_claim.unwrap_or_else(|| "sub".into()),
        })
    }

    /// Step 5 (and the console's button): starts a test sign-in bound to this browser and
    /// returns the IdP's URL.
    pub async fn start_test_sign_in(
        &self,
        target: TestTarget<'_>,
        browser_binding: &str,
        now: i64,
    ) -> Result<url::Url, LoginError> {
        let flow_id = new_id();
        let mut fingerprint = None;
        let (conn, org_id, setup_link_id, actor, return_to) = match target {
            TestTarget::Draft { access, return_to } => {
                if access.link.used_at.is_some() {
                    return Err(LoginError::BadRequest(SetupError::Used.to_string()));
                }
                fingerprint = Some(draft_fingerprint(&access.link));
                (
                    self.draft_connection(&access.link).await?,
                    access.org.id.clone(),
                    Some(access.link.id.clone()),
                    access.actor(),
                    return_to.to_owned(),
                )
            }
            TestTarget::Live { org, actor } => {
                let conn = self
                    .store
                    .latest_connection(&org.id)
                    .await?
                    .filter(Connection::is_connected)
                    .ok_or(LoginError::Retired)?;
                let back = format!("/admin/orgs/{}/sso/test?id={flow_id}", org.slug);
                (conn, org.id.clone(), None, actor.to_owned(), back)
            }
        };
        let cap = match setup_link_id {
            Some(_) => MAX_PENDING_LINK_TESTS,
            None => MAX_PENDING_TESTS,
        };
        let pending = self
            .store
            .pending_test_flows(&org_id, setup_link_id.as_deref(), now)
            .await?;
        if pending >= cap {
            return Err(LoginError::TooManyPending);
        }
        let auth = self.authorization(&conn, None)?;
        self.store
            .insert_test_flow(&TestFlowRow {
                state_hash: sha256_b64(&auth.state),
                org_id,
                connection_id: setup_link_id.is_none().then(|| conn.id.clone()),
                setup_link_id,
                actor,
                browser_hash: sha256_b64(browser_binding),
                nonce: auth.nonce,
                pkce_verifier: auth.pkce_verifier,
                return_enc: self.secret_box.encrypt(&return_to, &flow_id),
                draft_fingerprint: fingerprint,
                used_at: None,
                result: None,
                created_at: now,
                expires_at: now + self.settings.flow_ttl_secs,
                id: flow_id,
            })
            .await?;
        Ok(auth.url)
    }

    /// `GET /sso/callback`: a sign-in, or else a test sign-in (only when the state is no
    /// sign-in's, so real sign-ins pay nothing for tests).
    pub async fn finish_callback(
        &self,
        params: &crate::sso::CallbackParams,
        browser_binding: Option<&str>,
        now: OffsetDateTime,
        session: impl FnOnce(
            crate::sso::login::SessionFacts<'_>,
        ) -> crate::store::sessions::SessionDraft,
    ) -> Result<Callback, LoginError> {
        match self
            .finish_login(params, browser_binding, now, session)
            .await
        {
            Err(LoginError::UnknownFlow) => {}
            other => return other.map(Callback::SignedIn),
        }
        let ts = now.unix_timestamp();
        // finish_login checked that the state is there and of a sane length.
        let state = params.state.as_deref().unwrap_or_default();
        let flow = self
            .store
            .take_test_flow(&sha256_b64(state), ts)
            .await?
            .ok_or(LoginError::UnknownFlow)?;
        crate::sso::login::check_flow(flow.expires_at, &flow.browser_hash, browser_binding, ts)?;
        let return_to = self
            .secret_box
            .decrypt(&flow.return_enc, &flow.id)
            .map_err(|e| StoreError::Corrupt(format!("test flow return: {e}")))?
            .expose()
            .to_owned();
        // Read once: the link's draft as tested is the one the result is written for.
        let link = match &flow.setup_link_id {
            Some(id) => self.store.setup_link(id).await?,
            None => None,
        };
        let mut result = match self.run_test(&flow, link.as_ref(), params, now).await {
            Ok(r) => r,
            Err(LoginError::Store(e)) => return Err(e.into()),
            Err(e) => TestResult::failed(&e, ts),
        };
        result.fingerprint = link.as_ref().map(draft_fingerprint);
        let text = serde_json::to_string(&result).expect("a test result serialises");
        match &flow.setup_link_id {
            Some(_) => {
                if let Some(link) = &link {
                    let detail = result.audit_detail(json!({"id": link.id}));
                    // False: used, revoked or changed meanwhile; the page says so.
                    self.store
                        .save_setup_test_result(link, &text, &detail, ts)
                        .await?;
                }
            }
            None => {
                let detail = result.audit_detail(json!({"connection_id": flow.connection_id}));
                self.store
                    .finish_test_flow(&flow, &text, &detail, ts)
                    .await?;
            }
        }
        Ok(Callback::Tested { return_to })
    }

    /// Verifies the IdP's answer for the test's connection, as a sign-in does.
    pub(super) async fn run_test(
        &self,
        flow: &TestFlowRow,
        link: Option<&SetupLinkRow>,
        params: &crate::sso::CallbackParams,
        now: OffsetDateTime,
    ) -> Result<TestResult, LoginError> {
        let ts = now.unix_timestamp();
        let conn = match (&flow.setup_link_id, &flow.connection_id) {
            (Some(_), _) => {
                let link = link
                    .filter(|l| link_status(l, ts) == "active")
                    .ok_or_else(|| {
                        LoginError::BadRequest(
                            "This setup link was used, revoked or expired during the test.".into(),
                        )
                    })?;
                // The IdP was asked with the settings of the test's start: a result for
                // others would vouch for settings nobody tested.
                if flow.draft_fingerprint.as_deref() != Some(draft_fingerprint(link).as_str()) {
                    return Err(LoginError::BadRequest(
                        "The settings were changed during this test sign-in: test again.".into(),
                    ));
                }
                self.draft_connection(link).await?
            }
            (None, Some(id)) => self
                .store
                .connection_by_id(id)
                .await?
                .filter(Connection::is_connected)
                .ok_or(LoginError::Retired)?,
            (None, None) => return Err(LoginError::UnknownFlow),
        };
        let answer = self
            .verify_answer(&conn, params, &flow.nonce, &flow.pkce_verifier, now)
            .await?;
        let claims = serde_json::Value::Object(answer.merged.claims);
        Ok(TestResult {
            ok: true,
            at: ts,
            subject: Some(answer.verified.subject.clone()),
            warnings: crate::sso::warnings(&claims)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            claims: Some(claims),
            userinfo_claims: answer.merged.from_userinfo,
            code: None,
            message: None,
            fingerprint: None,
        })
    }

    /// A console test's result, while it lasts.
    pub async fn console_test_result(
        &self,
        org_id: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<TestResult>, StoreError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        Ok(self
            .store
            .test_flow(org_id, id, now)
            .await?
            .and_then(|f| f.result)
            .and_then(|r| serde_json::from_str(&r).ok()))
    }
}
