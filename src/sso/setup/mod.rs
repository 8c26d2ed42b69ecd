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

mod activate;
mod draft;
mod test_sign_in;

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
        self.link.actor()
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
        let row = SetupLinkRow::new(
            new_id(),
            org.id.clone(),
            actor.to_owned(),
            now,
            now + hours * 3600,
        );
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
        let actor = link.actor();
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
        SetupLinkRow::new("l".into(), "o".into(), "admin".into(), 0, expires_at)
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
