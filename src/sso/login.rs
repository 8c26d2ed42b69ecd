use openidconnect::PkceCodeChallenge;
use serde::Deserialize;
use time::OffsetDateTime;

use super::claims::{self, GROUPS_OVERAGE};
use super::Sso;
use crate::crypto::{ct_eq, random_token, sha256_b64, Secret};
use crate::domain::{EmailAddress, ReturnTo};
use crate::oidc::client::{authorize_url, AuthorizeRequest};
use crate::oidc::egress::Egress;
use crate::oidc::idtoken::{self, Expectations, IdTokenError};
use crate::oidc::printable;
use crate::oidc::token_endpoint::ExchangeError;
use crate::oidc::userinfo::{self, UserinfoError, UserinfoRequest};
use crate::roles::{Outcome, Role};
use crate::store::sessions::{SessionDraft, SESSION_REFUSED};
use crate::store::{FlowRow, NewLogin, StoreError};

/// Query parameters of `GET /sso/callback`.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A verified, enrolled sign-in; the caller starts the session.
#[derive(Debug, Clone)]
pub struct LoginSuccess {
    pub user_id: String,
    pub org_id: String,
    pub connection_id: String,
    pub role: Role,
    pub return_to: String,
    /// The raw ID token, kept (sealed) in the session for RP-initiated logout's
    /// `id_token_hint`. Redacted in `Debug`.
    pub id_token: Secret,
    /// The ID token's `sid` (the IdP's session), kept with the session so a back-channel
    /// logout token naming it ends exactly that session. `None` when absent or unusable.
    pub idp_sid: Option<String>,
    /// The email the IdP asserted (lowercased), if any: what "Login with SSO" will route by.
    pub email: Option<String>,
    /// The session written with the enrolment.
    pub session_id: String,
}

/// What the caller of [`Sso::finish_login`] drafts the new session from, once the sign-in is
/// verified and allowed (the store writes it with the enrolment).
pub struct SessionFacts<'a> {
    pub org_id: &'a str,
    pub connection_id: &'a str,
    pub id_token: &'a Secret,
    pub idp_sid: Option<&'a str>,
}

/// Every way a sign-in can fail. Each says what happened and what to try; none carries a
/// token, code or secret.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("This login link does not exist. Check the link your administrator shared.")]
    UnknownLoginUrl,
    #[error("This login link was retired when single sign-on was disconnected. Ask your administrator for the current link.")]
    Retired,
    #[error("{0}")]
    BadRequest(String),
    /// The connection has as many sign-ins in progress as it may (a flood, or a very busy
    /// morning): nothing was stored.
    #[error("Too many sign-ins to this organisation are in progress right now. Wait a minute and start again from your organisation's login link.")]
    TooManyPending,
    #[error("This sign-in attempt is unknown or was already used. Start again from your organisation's login link.")]
    UnknownFlow,
    #[error("This sign-in attempt expired. Start again from your organisation's login link.")]
    FlowExpired,
    #[error("This sign-in was started in a different browser. Start again from your organisation's login link in this browser.")]
    OtherBrowser,
    #[error("The answer came from {got:?}, not from the identity provider this sign-in was sent to. Start again; if it happens again, tell your administrator.")]
    WrongIssuer { got: String },
    #[error("The identity provider did not sign you in: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Idp {
        error: String,
        description: Option<String>,
    },
    #[error("The identity provider could not complete the sign-in: {0}. Try again later; if it persists, tell your administrator.")]
    Exchange(#[from] ExchangeError),
    /// The token endpoint refused orgsso itself (`invalid_client`, `unauthorized_client`, a
    /// bare 401): a setting to fix, not a moment to wait out.
    #[error("The identity provider refused orgsso's client authentication ({methods}): {reason}. Tell your administrator: the connection's token endpoint authentication method, and its secret or key, must match what is registered for orgsso's client at the identity provider.")]
    ClientAuth { methods: String, reason: String },
    #[error("The identity provider's answer could not be verified: {0}. Tell your administrator.")]
    IdToken(#[from] IdTokenError),
    #[error("The identity provider could not complete the sign-in: {0}. Try again later; if it persists, tell your administrator.")]
    Userinfo(#[from] UserinfoError),
    #[error("Your account is not allowed to sign in to this organisation{}. Ask your administrator for access.{}", rule.map(|r| format!(" (rule {r})")).unwrap_or_default(), if *groups_overage { format!(" For your administrator: {GROUPS_OVERAGE}") } else { String::new() })]
    Denied {
        rule: Option<usize>,
        /// The claims had an Entra groups overage: the groups rules could not match.
        groups_overage: bool,
        /// The org whose rules denied (for its per-org metrics label; never shown).
        org_id: String,
    },
    #[error("The identity provider sent a {claim:?} that orgsso cannot store (it contains a control character, such as NUL or a line break). Tell your administrator: the identity provider's value for it must change.")]
    UnstorableClaim { claim: &'static str },
    /// The org's directory (SCIM) deactivated or deleted the member.
    #[error("Your organisation's directory has deactivated your account, so you cannot sign in to this organisation. Ask your administrator to reactivate it.")]
    Deprovisioned,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LoginError {
    /// A stable snake_case code for logs and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::UnknownLoginUrl => "unknown_login_url",
            LoginError::Retired => "login_url_retired",
            LoginError::BadRequest(_) => "bad_request",
            LoginError::TooManyPending => "too_many_pending_sign_ins",
            LoginError::UnknownFlow => "unknown_state",
            LoginError::FlowExpired => "flow_expired",
            LoginError::OtherBrowser => "other_browser",
            LoginError::WrongIssuer { .. } => "issuer_mismatch",
            LoginError::Idp { .. } => "idp_error",
            LoginError::Exchange(_) => "token_exchange_failed",
            LoginError::ClientAuth { .. } => "client_auth_refused",
            LoginError::IdToken(e) => e.code(),
            LoginError::Userinfo(e) => e.code(),
            LoginError::Denied { .. } => "access_denied",
            LoginError::UnstorableClaim { .. } => "idp_claim_unstorable",
            LoginError::Deprovisioned => "deprovisioned",
            LoginError::Store(_) => "store",
        }
    }
}

impl Sso {
    /// Begins a sign-in through the connection behind `login_id`: stores the flow (state,
    /// nonce, PKCE verifier, browser binding) and returns the IdP authorization URL.
    pub async fn start_login(
        &self,
        login_id: &str,
        return_to: Option<&str>,
        login_hint: Option<&str>,
        browser_binding: &str,
        now: i64,
    ) -> Result<url::Url, LoginError> {
        let conn = self
            .lookups
            .connection_by_login_id(&self.store, login_id)
            .await?
            .ok_or(LoginError::UnknownLoginUrl)?;
        if !conn.is_connected() {
            return Err(LoginError::Retired);
        }
        let return_to = return_to
            .map(ReturnTo::parse)
            .transpose()
            .map_err(|e| LoginError::BadRequest(e.to_string()))?;
        let login_hint = login_hint.and_then(|h| EmailAddress::parse(h).ok());
        let auth = self.authorization(&conn, login_hint.as_ref().map(|h| h.as_str()))?;
        let stored = self
            .store
            .insert_flow(
                &FlowRow {
                    state_hash: sha256_b64(&auth.state),
                    connection_id: conn.id.clone(),
                    browser_hash: sha256_b64(browser_binding),
                    nonce: auth.nonce,
                    pkce_verifier: auth.pkce_verifier,
                    return_to: return_to.map(|r| r.as_str().to_owned()),
                    created_at: now,
                    expires_at: now + self.settings.flow_ttl_secs,
                },
                self.settings.max_pending_flows,
            )
            .await?;
        if !stored {
            return Err(LoginError::TooManyPending);
        }
        Ok(auth.url)
    }

    /// A fresh authorization request for `conn`: state, nonce and PKCE verifier (to keep
    /// server-side) and the IdP's URL carrying them.
    pub(super) fn authorization(
        &self,
        conn: &crate::store::Connection,
        login_hint: Option<&str>,
    ) -> Result<Authorization, LoginError> {
        let state = random_token(32);
        let nonce = random_token(32);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let redirect_uri = self.redirect_uri();
        let url = authorize_url(
            &conn.metadata,
            &AuthorizeRequest {
                client_id: &conn.client_id,
                redirect_uri: &redirect_uri,
                scopes: &conn.scopes,
                state: &state,
                nonce: &nonce,
                code_challenge: &challenge,
                login_hint,
            },
        )
        .map_err(|e| StoreError::Corrupt(format!("authorization endpoint: {e}")))?;
        Ok(Authorization {
            url,
            state,
            nonce,
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a sign-in at the callback: checks the flow, exchanges the code, verifies the
    /// ID token, applies the org's rules and enrols the user, with the session `session` drafts
    /// in the same transaction.
    pub async fn finish_login(
        &self,
        params: &CallbackParams,
        browser_binding: Option<&str>,
        now: OffsetDateTime,
        session: impl FnOnce(SessionFacts<'_>) -> SessionDraft,
    ) -> Result<LoginSuccess, LoginError> {
        let ts = now.unix_timestamp();
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 512)
            .ok_or_else(|| LoginError::BadRequest("The answer from the identity provider has no state. Start again from your organisation's login link.".into()))?;
        // Taken (deleted) first: whatever happens below, this state cannot be used again.
        let flow = self
            .store
            .take_flow(&sha256_b64(state))
            .await?
            .ok_or(LoginError::UnknownFlow)?;
        check_flow(flow.expires_at, &flow.browser_hash, browser_binding, ts)?;
        let conn = self
            .lookups
            .connection_by_id(&self.store, &flow.connection_id)
            .await?
            .ok_or(LoginError::Retired)?;
        if !conn.is_connected() {
            return Err(LoginError::Retired);
        }
        let Answer {
            tokens,
            verified,
            merged,
            from_userinfo,
        } = self
            .verify_answer(&conn, params, &flow.nonce, &flow.pkce_verifier, now)
            .await?;
        let groups_overage = claims::groups_overage(&merged.claims);
        let mut notes = serde_json::Map::new();
        if from_userinfo.is_some() {
            notes.insert(
                "userinfo_claims".into(),
                merged.from_userinfo.clone().into(),
            );
        }
        if groups_overage {
            notes.insert("groups_overage".into(), true.into());
            notes.insert("warning".into(), GROUPS_OVERAGE.into());
        }
        let email = claims::profile_str(&merged.claims, "email").map(|e| e.to_lowercase());
        let name = claims::profile_str(&merged.claims, "name");
        // Stored in their own columns (PostgreSQL cannot hold a NUL; the claims as a whole are
        // JSON text, where it is an escape) and carried in X-Auth-* headers and minted tokens,
        // which refuse control characters: refused here, once, with the reason.
        for (claim, value) in [("email", &email), ("name", &name)] {
            if value
                .as_deref()
                .is_some_and(|v| v.chars().any(char::is_control))
            {
                return Err(LoginError::UnstorableClaim { claim });
            }
        }
        if let Some(other) = self
            .note_foreign_domain(email.as_deref(), &conn, &verified.subject, ts)
            .await?
        {
            notes.insert("email_domain_verified_by".into(), other.into());
        }
        let mut claims = serde_json::Value::Object(merged.claims);
        // SCIM: a deprovisioned member is refused; a first sign-in is linked to the member
        // the directory provisioned; the rules see the directory's `scim` claim.
        self.scim_sign_in(&conn, &verified.subject, &mut claims, email.as_deref(), ts)
            .await?;
        let mapping = self.role_mapping(&conn.org_id).await?;
        let decision = mapping.evaluate(&claims);
        let role = match decision.outcome {
            Outcome::Deny => {
                let mut detail = serde_json::json!({"issuer": conn.issuer, "subject": verified.subject, "rule": decision.rule});
                for (k, v) in &notes {
                    detail[k] = v.clone();
                }
                self.store
                    .audit(Some(&conn.org_id), "rules", "login.denied", &detail, ts)
                    .await?;
                // A member the rules now deny loses the sessions they still hold, at once.
                self.store
                    .deny_member(
                        &conn.org_id,
                        &conn.issuer,
                        &verified.subject,
                        decision.rule,
                        &claims.to_string(),
                        ts,
                    )
                    .await?;
                return Err(LoginError::Denied {
                    rule: decision.rule,
                    groups_overage,
                    org_id: conn.org_id.clone(),
                });
            }
            Outcome::Role(r) => r,
        };
        let claims_json = claims.to_string();
        let id_token = Secret::new(tokens.id_token);
        let idp_sid = crate::oidc::logout_token::session_id(&verified.claims).map(str::to_owned);
        let draft = session(SessionFacts {
            org_id: &conn.org_id,
            connection_id: &conn.id,
            id_token: &id_token,
            idp_sid: idp_sid.as_deref(),
        });
        let enrolled = self
            .store
            .enrol_with(
                &NewLogin {
                    issuer: &conn.issuer,
                    subject: &verified.subject,
                    email: email.as_deref(),
                    name: name.as_deref(),
                    org_id: &conn.org_id,
                    connection_id: &conn.id,
                    role,
                    claims_json: &claims_json,
                    now: ts,
                },
                &notes,
                Some(&draft),
            )
            .await;
        let outcome = match enrolled {
            Ok(o) => o,
            // The expected reason: the connection was disconnected while the user signed in.
            Err(StoreError::Conflict(c)) if c == SESSION_REFUSED => {
                return Err(if self.was_disconnected(&conn.id).await {
                    LoginError::Retired
                } else {
                    StoreError::Conflict(c).into()
                });
            }
            Err(e) => return Err(e.into()),
        };
        Ok(LoginSuccess {
            user_id: outcome.user_id,
            org_id: conn.org_id.clone(),
            connection_id: conn.id.clone(),
            role,
            return_to: flow.return_to.unwrap_or_else(|| "/".into()),
            id_token,
            idp_sid,
            email,
            session_id: draft.id,
        })
    }
}

/// A flow taken at its callback must be unexpired and come back to the browser that started it.
pub(super) fn check_flow(
    expires_at: i64,
    browser_hash: &str,
    browser_binding: Option<&str>,
    now: i64,
) -> Result<(), LoginError> {
    if expires_at <= now {
        return Err(LoginError::FlowExpired);
    }
    if !browser_binding.is_some_and(|b| ct_eq(&sha256_b64(b), browser_hash)) {
        return Err(LoginError::OtherBrowser);
    }
    Ok(())
}

/// An authorization request about to be sent: the URL and what the callback needs.
pub(super) struct Authorization {
    pub url: url::Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// What the IdP's answer to a callback proved: the tokens, the verified ID token and the claims
/// merged with userinfo's.
pub(super) struct Answer {
    pub tokens: crate::oidc::client::Tokens,
    pub verified: idtoken::VerifiedIdToken,
    pub merged: claims::SignInClaims,
    pub from_userinfo: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Sso {
    /// Checks the IdP's answer for `conn` and verifies what it sent, as every sign-in does
    /// (the real ones and the tests): RFC 9207 `iss`, the IdP's error, the code exchanged with
    /// the connection's client authentication, the ID token (keys, nonce, `at_hash`), userinfo
    /// merged. Nothing is stored.
    pub(super) async fn verify_answer(
        &self,
        conn: &crate::store::Connection,
        params: &CallbackParams,
        nonce: &str,
        pkce_verifier: &str,
        now: OffsetDateTime,
    ) -> Result<Answer, LoginError> {
        let ts = now.unix_timestamp();
        let meta = &conn.metadata;
        // RFC 9207: the answer must come from the issuer we sent the browser to (mix-up defence).
        match &params.iss {
            Some(iss) if iss != &conn.issuer => return Err(LoginError::WrongIssuer { got: printable(iss, 200) }),
            None if meta.iss_parameter_supported() => {
                return Err(LoginError::BadRequest(
                    "The identity provider's answer lacks the `iss` parameter it promises to send. Start again; if it happens again, tell your administrator.".into(),
                ))
            }
            _ => {}
        }
        if let Some(error) = &params.error {
            return Err(LoginError::Idp {
                error: printable(error, 64),
                description: params
                    .error_description
                    .as_deref()
                    .map(|d| printable(d, 300)),
            });
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| {
                LoginError::BadRequest(
                    "The identity provider's answer has no authorization code. Start again.".into(),
                )
            })?;

        // Client authentication as the connection says (see `token_auth`).
        // The IdP's calls are timed (durations only) so that orgsso's own share of a sign-in
        // can be told apart from the provider's, at debug (benches/login_roundtrip.rs reads it).
        let asked = std::time::Instant::now();
        let tokens = self.exchange(conn, code, pkce_verifier, ts).await?;
        let mut idp_time = asked.elapsed();

        let cache = self.jwks.get(meta.jwks_uri(), Egress::of(conn.public_only));
        let algorithms = meta.id_token_algorithms();
        let expect = Expectations {
            issuer: &conn.issuer,
            client_id: &conn.client_id,
            nonce,
            algorithms: &algorithms,
            trusted_audiences: &[],
            leeway: self.settings.leeway,
            max_iat_age: self.settings.max_id_token_age,
        };
        let access_token = tokens.access_token.as_ref().map(|t| t.secret().as_str());
        let verified =
            idtoken::verify_with_access_token(&tokens.id_token, access_token, &cache, &expect, now)
                .await?;

        // OIDC Core §5.4: scope claims may come only from userinfo when an access token was
        // issued. Asked when the provider has the endpoint and the admin left it on; a failure
        // fails the sign-in rather than going on with claims missing.
        let from_userinfo = match (
            conn.userinfo,
            meta.userinfo_endpoint(),
            tokens.access_token.as_ref(),
        ) {
            (true, Some(endpoint), Some(access_token)) => Some({
                let asked = std::time::Instant::now();
                let answer = userinfo::fetch(
                    self.http(conn.public_only),
                    &cache,
                    &UserinfoRequest {
                        endpoint,
                        access_token,
                        subject: &verified.subject,
                        issuer: &conn.issuer,
                        client_id: &conn.client_id,
                        algorithms: &algorithms,
                    },
                )
                .await;
                idp_time += asked.elapsed();
                answer?
            }),
            _ => None,
        };
        tracing::debug!(
            idp_us = idp_time.as_micros() as u64,
            "identity provider calls of this sign-in (token endpoint, userinfo)"
        );
        let merged = claims::merge(&verified.claims, from_userinfo.as_ref());
        Ok(Answer {
            tokens,
            verified,
            merged,
            from_userinfo,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_overage_failures_have_stable_codes_and_say_why() {
        #[rustfmt::skip]
        let cases: Vec<(LoginError, &str, &str)> = vec![
            (UserinfoError::SubjectMismatch.into(), "userinfo_subject_mismatch", "about another user"),
            (UserinfoError::Status { status: 500, error: None }.into(), "userinfo_failed", "answered HTTP 500"),
            (UserinfoError::NotJson { content_type: "text/html".into() }.into(), "userinfo_failed", "not a JSON object"),
            (UserinfoError::BadSignature.into(), "userinfo_bad_signature", "does not verify"),
            (LoginError::Denied { rule: Some(2), groups_overage: false, org_id: "o".into() }, "access_denied", "not allowed to sign in to this organisation (rule 2). Ask your administrator for access."),
            (LoginError::Denied { rule: None, groups_overage: true, org_id: "o".into() }, "access_denied", "For your administrator: The groups rules cannot match"),
        ];
        for (err, code, says) in cases {
            assert_eq!(err.code(), code, "{err}");
            assert!(err.to_string().contains(says), "{err}");
        }
        let plain = LoginError::Denied {
            rule: None,
            groups_overage: false,
            org_id: "o".into(),
        };
        assert!(!plain.to_string().contains("Entra"), "{plain}");
    }
}
