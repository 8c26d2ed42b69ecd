//! Self-serve setup links: an operator or org admin hands a customer's IT admin a link (shown
//! once; only its HMAC is kept) that connects one org's IdP without an account.
//!
//! - **One org.** Every step finds the link by its token and acts on the link's org only; no
//!   slug or id from a form is ever read.
//! - **Expiry and revocation.** A link lives 1 to 168 hours (72 by default) and can be revoked;
//!   once activated it is `used` and changes nothing more.
//! - **One browser at a time.** The first browser that presses the start page's Start is bound
//!   to the link (a random cookie, its SHA-256 on the row; a GET never binds: link scanners). Another browser is refused while the bound one was seen in
//!   the last [`BROWSER_IDLE_SECS`]; after that idle time the next browser to open the link takes
//!   it over (a customer who switched machines is not locked out; the operator can always revoke).
//! - **A draft.** What the customer enters is a draft on the link (the secret encrypted, never
//!   shown back); the org's live connection is untouched until activation, which applies the
//!   draft through [`Sso::connect`] and [`Sso::put_role_mapping`], the admin API's own paths.
//! - **Test sign-ins.** A real authorization-code flow with the draft's (or, from the console,
//!   the live connection's) settings, verified by [`Sso::verify_answer`] like a real sign-in,
//!   that stores the claims received and never enrols anyone or starts a session.
//!
//! Audit actions: `setup_link.created/revoked/opened/bound/draft_saved/rules_saved/
//! test_started/test_sign_in/activated` (actor `setup_link:<id>` for the link's own steps), and
//! `sso.test_started/test_sign_in` for the console's test.

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::connect::{
    check_secret, parse_client_id, parse_groups_claim, parse_token_auth_method, ConnectError,
    ConnectRequest,
};
use super::token_auth::{new_client_key, PremadeKey};
use super::{LoginError, LoginSuccess, Sso};
use crate::crypto::{ct_eq, random_token, sha256_b64, Secret};
use crate::domain::{parse_scopes, Issuer};
use crate::oidc::client_auth::TokenAuthMethod;
use crate::oidc::discovery::ProviderMetadata;
use crate::roles::{RoleMapping, RoleMappingSpec};
use crate::store::{
    new_id, ClientKey, Connection, ConnectionStatus, DraftPart, OrgRow, SetupLinkRow, StoreError,
    TestFlowRow, TokenAuth,
};

pub const DEFAULT_HOURS: i64 = 72;
pub const MAX_HOURS: i64 = 168;
/// A bound browser not seen for this long frees the link for another browser.
pub const BROWSER_IDLE_SECS: i64 = 30 * 60;
/// What the service key's MAC of a link token is for (never shared with other MACs).
const TOKEN_MAC_PURPOSE: &str = "setup-link";
/// Longer is not one of our tokens (43 characters): refused before hashing.
const MAX_TOKEN_LEN: usize = 128;
/// Unfinished console test sign-ins one org may have at once.
const MAX_PENDING_TESTS: i64 = 20;
/// Unfinished test sign-ins one setup link may have at once (apart from the console's).
const MAX_PENDING_LINK_TESTS: i64 = 3;
/// A browser's binding cookie is re-stamped at most this often (no write on every page).
const SEEN_EVERY_SECS: i64 = 60;
const SECRET_AGAIN: &str = "The issuer, client ID or token endpoint changed: enter the client secret again (a stored secret is only sent where it was entered for).";

/// A link as the API and console list it: never the token.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SetupLinkView {
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// When the customer's browser last opened one of its pages.
    pub last_used_at: Option<i64>,
    /// `active`, `expired`, `revoked` or `used` (activated).
    #[schema(value_type = String, example = "active")]
    pub status: &'static str,
}

/// `used`, `revoked`, `expired` or `active`, in that order of precedence.
pub fn link_status(l: &SetupLinkRow, now: i64) -> &'static str {
    if l.used_at.is_some() {
        "used"
    } else if l.revoked_at.is_some() {
        "revoked"
    } else if l.expires_at <= now {
        "expired"
    } else {
        "active"
    }
}

impl SetupLinkView {
    fn of(l: &SetupLinkRow, now: i64) -> Self {
        SetupLinkView {
            id: l.id.clone(),
            created_at: l.created_at,
            expires_at: l.expires_at,
            revoked_at: l.revoked_at,
            last_used_at: l.last_used_at,
            status: link_status(l, now),
        }
    }
}

/// Why a setup step was refused. Each sentence says what to do; none names the org of a link
/// the caller could not open.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("expires_in_hours must be a whole number of hours from 1 to {MAX_HOURS} (default {DEFAULT_HOURS}).")]
    BadExpiry,
    #[error("This setup link does not exist. Check that you copied all of it, or ask your contact for a new link.")]
    Unknown,
    #[error("This setup link has expired. Ask your contact for a new link.")]
    Expired,
    #[error("This setup link was revoked. Ask your contact for a new link.")]
    Revoked,
    #[error("This setup link is open in another browser. Continue there; or ask your contact to revoke this link and send you a new one.")]
    OtherBrowser,
    #[error("This setup link was already used to connect the identity provider; nothing more can be changed through it.")]
    Used,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Connect(ConnectError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ConnectError> for SetupError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Store(s) => SetupError::Store(s),
            other => SetupError::Connect(other),
        }
    }
}

/// An opened link: its row and org, and the binding cookie to set when this browser was just
/// bound.
#[derive(Debug, Clone)]
pub struct SetupAccess {
    pub link: SetupLinkRow,
    pub org: OrgRow,
    pub new_browser: Option<String>,
}

impl SetupAccess {
    pub fn actor(&self) -> String {
        format!("setup_link:{}", self.link.id)
    }

    pub fn draft(&self) -> Option<Draft> {
        json_of(self.link.draft.as_deref())
    }

    /// The draft's saved rules, if any.
    pub fn rules(&self) -> Option<RoleMappingSpec> {
        json_of(self.link.rules.as_deref())
    }

    pub fn test_result(&self) -> Option<TestResult> {
        json_of(self.link.test_result.as_deref())
    }

    /// The login URL recorded when this link was activated.
    pub fn activated_login_url(&self) -> Option<String> {
        self.draft().and_then(|d| d.login_url)
    }

    /// A secret is stored with the draft (never shown, only said).
    pub fn has_secret(&self) -> bool {
        self.link
            .draft_secret_enc
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    }
}

/// The customer's entries so far (no secret: that is apart, encrypted).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Draft {
    #[serde(default)]
    pub preset: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// `None` is automatic.
    #[serde(default)]
    pub token_auth_method: Option<String>,
    #[serde(default)]
    pub scim_link_claim: Option<String>,
    /// What discovery found when the credentials were saved; `None` until then.
    #[serde(default)]
    pub metadata: Option<ProviderMetadata>,
    /// The login URL the activation gave (the done page shows this one).
    #[serde(default)]
    pub login_url: Option<String>,
}

/// The credentials form as submitted.
#[derive(Debug, Clone, Default)]
pub struct DraftInput {
    pub issuer: String,
    pub client_id: String,
    /// `None` keeps the stored one.
    pub client_secret: Option<Secret>,
    /// `""` is automatic.
    pub token_auth_method: String,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub scim_link_claim: String,
}

/// What a test sign-in found: the claims (ID token and userinfo merged), never a token; or the
/// sign-in failure's sentence and code.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TestResult {
    pub ok: bool,
    pub at: i64,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
    /// Claims that came from userinfo (the ID token lacked them).
    #[serde(default)]
    pub userinfo_claims: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// The draft tested ([`draft_fingerprint`]): activation applies only what was tested.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl TestResult {
    fn failed(e: &LoginError, at: i64) -> Self {
        TestResult {
            ok: false,
            at,
            code: Some(e.code().to_owned()),
            message: Some(e.to_string()),
            ..TestResult::default()
        }
    }

    /// The audit detail: the outcome, never the claims.
    fn audit_detail(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut d = json!({"ok": self.ok, "subject": self.subject, "code": self.code});
        if let (Some(o), serde_json::Value::Object(e)) = (d.as_object_mut(), extra) {
            o.extend(e);
        }
        d
    }
}

/// What a test sign-in tests.
pub enum TestTarget<'a> {
    /// A setup link's draft, back to its page (`return_to` carries the token; kept encrypted).
    Draft {
        access: &'a SetupAccess,
        return_to: &'a str,
    },
    /// The org's live connection, from the console; the result is shown at `/admin/orgs/{slug}/sso/test?id=…`.
    Live { org: &'a OrgRow, actor: &'a str },
}

/// What the callback did.
#[derive(Debug)]
pub enum Callback {
    SignedIn(LoginSuccess),
    /// A test sign-in: its result stored, nobody enrolled, no session; the browser goes back.
    Tested {
        return_to: String,
    },
}

impl Sso {
    fn token_hash(&self, token: &str) -> String {
        self.secret_box.mac(TOKEN_MAC_PURPOSE, token)
    }

    /// Creates a link for the org: the URL (with the token) is returned once.
    pub async fn create_setup_link(
        &self,
        org: &OrgRow,
        hours: Option<i64>,
        actor: &str,
        now: i64,
    ) -> Result<(SetupLinkView, Secret), SetupError> {
        let hours = hours.unwrap_or(DEFAULT_HOURS);
        if !(1..=MAX_HOURS).contains(&hours) {
            return Err(SetupError::BadExpiry);
        }
        // 256 bits: the link is the customer's only credential.
        let token = random_token(32);
        let row = SetupLinkRow {
            id: new_id(),
            org_id: org.id.clone(),
            created_by: actor.to_owned(),
            created_at: now,
            expires_at: now + hours * 3600,
            revoked_at: None,
            used_at: None,
            last_used_at: None,
            browser_hash: None,
            browser_seen_at: None,
            draft: None,
            draft_secret_enc: None,
            rules: None,
            test_result: None,
            client_key_enc: None,
            client_public_jwk: None,
            client_jwks_id: None,
        };
        self.store
            .insert_setup_link(&row, &self.token_hash(&token), actor)
            .await?;
        let url = self.settings.public_path(&format!("/setup/{token}"));
        Ok((SetupLinkView::of(&row, now), Secret::new(url)))
    }

    pub async fn setup_links(
        &self,
        org_id: &str,
        now: i64,
    ) -> Result<Vec<SetupLinkView>, StoreError> {
        let rows = self.store.setup_links(org_id).await?;
        Ok(rows.iter().map(|l| SetupLinkView::of(l, now)).collect())
    }

    /// Revokes a link of the org at once. False: the org has no such link.
    pub async fn revoke_setup_link(
        &self,
        org_id: &str,
        id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(false);
        }
        self.store.revoke_setup_link(org_id, id, actor, now).await
    }

    /// Opens the link behind `token` for this browser (`browser`: its binding cookie, if
    /// any). `may_bind`: an unbound browser may take the link (the start page's POST), else it
    /// is refused with `OtherBrowser` (a GET shows the start page; a form is refused). A used
    /// link opens only for its bound browser until expiry or revocation (the done page), else
    /// `Used`; a revoked or expired one does not.
    pub async fn open_setup_link(
        &self,
        token: &str,
        browser: Option<&str>,
        may_bind: bool,
        now: i64,
    ) -> Result<SetupAccess, SetupError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(SetupError::Unknown);
        }
        let link = self
            .store
            .setup_link_by_hash(&self.token_hash(token))
            .await?
            .ok_or(SetupError::Unknown)?;
        let org = self
            .store
            .org_by_id(&link.org_id)
            .await?
            .ok_or(SetupError::Unknown)?;
        let this_browser = browser.filter(|b| b.len() <= MAX_TOKEN_LEN).map(sha256_b64);
        let bound_here = match (&link.browser_hash, &this_browser) {
            (Some(bound), Some(mine)) => ct_eq(bound, mine),
            _ => false,
        };
        match link_status(&link, now) {
            // The done page (with the login URL) only for the browser that activated, until
            // the link expires or is revoked; anyone else just learns it was used.
            "used" if bound_here && link.expires_at > now && link.revoked_at.is_none() => {
                return Ok(SetupAccess {
                    link,
                    org,
                    new_browser: None,
                })
            }
            "used" => return Err(SetupError::Used),
            "revoked" => return Err(SetupError::Revoked),
            "expired" => return Err(SetupError::Expired),
            _ => {}
        }
        if bound_here {
            if link
                .browser_seen_at
                .is_none_or(|t| t < now - SEEN_EVERY_SECS)
            {
                self.store.touch_setup_link(&link.id, now).await?;
            }
            return Ok(SetupAccess {
                link,
                org,
                new_browser: None,
            });
        }
        if !may_bind {
            return Err(SetupError::OtherBrowser);
        }
        let actor = format!("setup_link:{}", link.id);
        let value = random_token(32);
        let bound = self
            .store
            .bind_setup_link(&link, &sha256_b64(&value), now - BROWSER_IDLE_SECS, now)
            .await?;
        let outcome = if bound { "bound" } else { "other_browser" };
        self.store
            .audit(
                Some(&link.org_id),
                &actor,
                "setup_link.opened",
                &json!({"id": link.id, "outcome": outcome}),
                now,
            )
            .await?;
        if !bound {
            return Err(SetupError::OtherBrowser);
        }
        // Read back: the row as this browser now holds it.
        let link = self
            .store
            .setup_link(&link.id)
            .await?
            .ok_or(SetupError::Unknown)?;
        Ok(SetupAccess {
            link,
            org,
            new_browser: Some(value),
        })
    }

    fn live(access: &SetupAccess) -> Result<(), SetupError> {
        if access.link.used_at.is_some() {
            return Err(SetupError::Used);
        }
        Ok(())
    }

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

    async fn save_draft(
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
    async fn save_part(
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
    async fn lendable_key(
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
    async fn ensure_link_key(
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
    async fn draft_key(
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

    /// The draft as a connection a test sign-in can use (in memory only; never stored).
    async fn draft_connection(&self, link: &SetupLinkRow) -> Result<Connection, LoginError> {
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
        params: &super::CallbackParams,
        browser_binding: Option<&str>,
        now: OffsetDateTime,
        session: impl FnOnce(
            super::login::SessionFacts<'_>,
        ) -> Option<crate::store::sessions::SessionDraft>,
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
        super::login::check_flow(flow.expires_at, &flow.browser_hash, browser_binding, ts)?;
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
    async fn run_test(
        &self,
        flow: &TestFlowRow,
        link: Option<&SetupLinkRow>,
        params: &super::CallbackParams,
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
            warnings: super::warnings(&claims)
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
    async fn apply_setup_draft(
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
        self.store
            .mark_setup_link_used(&access.link, &detail, now)
            .await?;
        let login_url = self.login_url(&conn.login_id);
        let recorded = Draft {
            login_url: Some(login_url.clone()),
            ..draft
        };
        let text = serde_json::to_string(&recorded).expect("a draft serialises");
        self.store
            .record_setup_link_draft(&access.link.id, &text)
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

/// A JSON column read back (`None` when empty or unreadable: the step is then not done).
fn json_of<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// What the draft's secret is encrypted for: this link (and the in-memory connection of its
/// tests, whose id it is).
fn draft_context(access: &SetupAccess) -> String {
    link_key_owner(&access.link)
}

/// The owner a link's own key is bound to ([`ClientKey::context`]): the id of the in-memory
/// connection its tests sign in with.
fn link_key_owner(link: &SetupLinkRow) -> String {
    format!("setup_link:{}", link.id)
}

/// What a test sign-in tested: the draft and its secret (ciphertext) as stored. A save changes
/// it, so a result cannot vouch for settings it did not test.
fn draft_fingerprint(link: &SetupLinkRow) -> String {
    let text =
        serde_json::to_string(&(&link.draft, &link.draft_secret_enc)).expect("a draft serialises");
    sha256_b64(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(expires_at: i64) -> SetupLinkRow {
        SetupLinkRow {
            id: "l".into(),
            org_id: "o".into(),
            created_by: "admin".into(),
            created_at: 0,
            expires_at,
            revoked_at: None,
            used_at: None,
            last_used_at: None,
            browser_hash: None,
            browser_seen_at: None,
            draft: None,
            draft_secret_enc: None,
            rules: None,
            test_result: None,
            client_key_enc: None,
            client_public_jwk: None,
            client_jwks_id: None,
        }
    }

    #[test]
    fn status_takes_used_then_revoked_then_expired() {
        let now = 100;
        assert_eq!(link_status(&row(200), now), "active");
        assert_eq!(link_status(&row(100), now), "expired");
        let mut r = row(50);
        r.revoked_at = Some(10);
        assert_eq!(link_status(&r, now), "revoked");
        r.used_at = Some(20);
        assert_eq!(link_status(&r, now), "used");
    }

    #[test]
    fn a_failed_test_keeps_the_sentence_and_code_and_no_claims() {
        let r = TestResult::failed(&LoginError::FlowExpired, 5);
        assert!(!r.ok);
        assert_eq!(r.code.as_deref(), Some("flow_expired"));
        assert!(r.message.unwrap().contains("expired"));
        assert!(r.claims.is_none());
        let d = TestResult::default().audit_detail(json!({"id": "x"}));
        assert_eq!(d["id"], "x");
        assert!(d.get("claims").is_none());
    }
}
