//! "Login with SSO": which org's IdP an email goes to, and where a signed-out user is sent at
//! the IdP. The routing rules themselves live here, not in the page handler.

use serde::Serialize;

use super::Sso;
use crate::crypto::{ct_eq, Secret};
use crate::domain::{EmailAddress, ReturnTo};
use crate::oidc::logout::end_session_url;
use crate::store::{Connection, StoreError};

/// One org the email may sign in to, and the link that starts its sign-in.
#[derive(Debug, Clone, Serialize)]
pub struct OrgChoice {
    pub name: String,
    pub href: String,
}

/// Where an email goes.
#[derive(Debug)]
pub enum EmailRoute {
    /// Neither a verified domain nor this browser's memory names an org.
    Unknown,
    /// The orgs it belongs to have no connected IdP now (their names).
    NotConnected(Vec<String>),
    /// Exactly one: straight to its login link.
    One(String),
    /// Several: the person chooses.
    Choose(Vec<OrgChoice>),
}

/// How many orgs a browser remembers (newest first): a consultant signing in to a few
/// customers' orgs, not a list that grows without bound.
const REMEMBERED_ORGS: usize = 5;
/// The MAC purpose of the browser's org memory, so no other MAC'd value can stand in for it.
const ORG_MEMORY_PURPOSE: &str = "login-org-memory/v2";
const ORG_MEMORY_EMAIL_PURPOSE: &str = "login-org-memory-email/v2";

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Sso {
    /// Routes an email, in this order and never by what an IdP once asserted:
    /// 1. a domain verified for an org routes only to that org;
    /// 2. otherwise the orgs this browser signed in to before with this email (`remembered`,
    ///    the value of the cookie [`Sso::remember_org`] made), so that after the first sign-in
    ///    nobody needs the login URL again;
    /// 3. otherwise nowhere ([`EmailRoute::Unknown`]): the page asks for the org's login URL
    ///    instead of sending a stranger to some tenant's IdP.
    ///
    /// Each choice links to the org's login URL with `login_hint` (and `return_to`).
    pub async fn route_email(
        &self,
        email: &EmailAddress,
        return_to: Option<&ReturnTo>,
        remembered: Option<&str>,
    ) -> Result<EmailRoute, StoreError> {
        let orgs = match self
            .lookups
            .org_for_domain(&self.store, email.domain())
            .await?
        {
            Some(o) => vec![o],
            None => {
                let mut orgs = Vec::new();
                for id in self.remembered_orgs(remembered, email.as_str()) {
                    // An org deleted since is simply forgotten.
                    if let Some(o) = self.store.org_by_id(&id).await? {
                        orgs.push(o);
                    }
                }
                orgs
            }
        };
        if orgs.is_empty() {
            return Ok(EmailRoute::Unknown);
        }
        let mut choices = Vec::new();
        for org in &orgs {
            let connected = self
                .store
                .latest_connection(&org.id)
                .await?
                .filter(|c| c.is_connected());
            if let Some(c) = connected {
                let mut href = format!(
                    "/sso/{}?login_hint={}",
                    c.login_id,
                    urlencode(email.as_str())
                );
                if let Some(r) = return_to {
                    href.push_str(&format!("&return_to={}", urlencode(r.as_str())));
                }
                choices.push(OrgChoice {
                    name: org.name.clone(),
                    href,
                });
            }
        }
        Ok(match choices.len() {
            0 => EmailRoute::NotConnected(orgs.into_iter().map(|o| o.name).collect()),
            1 => EmailRoute::One(choices.remove(0).href),
            _ => EmailRoute::Choose(choices),
        })
    }

    /// An IdP asserting an email whose domain another org verified is how one tenant would
    /// try to claim another's people: it routes nothing now (see [`Sso::route_email`]), but
    /// both orgs' audit logs say it happened. Returns the other org's slug for this sign-in's
    /// own `login` event.
    pub(super) async fn note_foreign_domain(
        &self,
        email: Option<&str>,
        conn: &Connection,
        subject: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let Some(domain) = email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d) else {
            return Ok(None);
        };
        let Some(owner) = self.lookups.org_for_domain(&self.store, domain).await? else {
            return Ok(None);
        };
        if owner.id == conn.org_id {
            return Ok(None);
        }
        let asserted_in = self.store.org_by_id(&conn.org_id).await?;
        let detail = serde_json::json!({
            "email": email,
            "issuer": conn.issuer,
            "subject": subject,
            "asserted_in_org": asserted_in.map(|o| o.slug),
            "domain_verified_by": owner.slug,
        });
        self.store
            .audit(
                Some(&owner.id),
                "sso",
                "login.foreign_domain_email",
                &detail,
                now,
            )
            .await?;
        Ok(Some(owner.slug))
    }

    /// The new value of the browser's org memory after `email` signed in to `org_id`: that org
    /// first, then the others it remembered (at most [`REMEMBERED_ORGS`]). Each entry is the
    /// org id with a tag binding it to the email (a MAC of both, so the cookie never holds the
    /// email), and the whole list is MAC'd with the service key: a cookie planted by someone
    /// else (a tenant's own, from a sibling subdomain, say) names orgs for the planter's email
    /// only, and routes nobody who types theirs.
    pub fn remember_org(&self, current: Option<&str>, org_id: &str, email: &str) -> String {
        let email = email.to_lowercase();
        let mut entries = vec![format!("{org_id}:{}", self.email_tag(org_id, &email))];
        entries.extend(
            self.remembered_entries(current)
                .into_iter()
                .filter(|(id, _)| id != org_id)
                .map(|(id, tag)| format!("{id}:{tag}")),
        );
        entries.truncate(REMEMBERED_ORGS);
        // `~`, `:` and `.`: cookie-safe, and never in an id or tag (base64url).
        let list = entries.join("~");
        let mac = self.secret_box.mac(ORG_MEMORY_PURPOSE, &list);
        format!("{list}.{mac}")
    }

    /// The org ids a cookie value remembers for `email`, if its MAC is ours; nothing otherwise.
    fn remembered_orgs(&self, value: Option<&str>, email: &str) -> Vec<String> {
        let email = email.to_lowercase();
        self.remembered_entries(value)
            .into_iter()
            .filter(|(id, tag)| ct_eq(&self.email_tag(id, &email), tag))
            .map(|(id, _)| id)
            .collect()
    }

    /// (org id, email tag) pairs of a cookie value whose MAC is ours.
    fn remembered_entries(&self, value: Option<&str>) -> Vec<(String, String)> {
        let Some((list, mac)) = value.and_then(|v| v.rsplit_once('.')) else {
            return Vec::new();
        };
        if list.len() > 96 * REMEMBERED_ORGS
            || !ct_eq(&self.secret_box.mac(ORG_MEMORY_PURPOSE, list), mac)
        {
            return Vec::new();
        }
        list.split('~')
            .filter_map(|e| e.split_once(':'))
            .take(REMEMBERED_ORGS)
            .map(|(id, tag)| (id.to_owned(), tag.to_owned()))
            .collect()
    }

    /// 96 bits of a MAC over org and email: enough to tell emails apart, short in a cookie.
    fn email_tag(&self, org_id: &str, email: &str) -> String {
        let mut tag = self
            .secret_box
            .mac(ORG_MEMORY_EMAIL_PURPOSE, &format!("{org_id}\0{email}"));
        tag.truncate(16);
        tag
    }

    /// The IdP's end-session URL for a session that came through `connection_id`, when the
    /// IdP has one (RP-initiated logout): the browser is offered it after signing out here.
    /// It carries the session's ID token as `id_token_hint` (several providers refuse or
    /// ignore the request without it), `client_id`, the signed-out page as
    /// `post_logout_redirect_uri`, and `state`.
    pub async fn end_session_url(
        &self,
        connection_id: &str,
        id_token_hint: Option<&Secret>,
        state: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(c) = self.store.connection_by_id(connection_id).await? else {
            return Ok(None);
        };
        let after = self.post_logout_redirect_uri();
        // The connection may have been pointed at another IdP since this sign-in: its ID token
        // (email, name) goes back only to the IdP and client that issued it.
        let hint = id_token_hint
            .map(Secret::expose)
            .filter(|t| issued_for(t, &c.issuer, &c.client_id));
        Ok(end_session_url(&c.metadata, &c.client_id, &after, hint, Some(state)).map(String::from))
    }

    /// Whether the connection a sign-in came through was disconnected meanwhile (the one
    /// expected reason a new session could not be stored).
    pub async fn was_disconnected(&self, connection_id: &str) -> bool {
        matches!(self.store.connection_by_id(connection_id).await, Ok(Some(c)) if !c.is_connected())
    }
}

/// Whether a (stored, once verified) ID token names `issuer` and has `client_id` in `aud`.
fn issued_for(token: &str, issuer: &str, client_id: &str) -> bool {
    use base64::Engine;
    let Some(payload) = token.split('.').nth(1) else {
        return false;
    };
    let Some(claims) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return false;
    };
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => a == client_id,
        serde_json::Value::Array(a) => a.iter().any(|v| v == client_id),
        _ => false,
    };
    claims["iss"] == issuer && aud_ok
}

#[cfg(test)]
mod tests {
    use super::issued_for;
    use base64::Engine;

    fn token(claims: serde_json::Value) -> String {
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(&claims.to_string())
        )
    }

    #[test]
    fn a_hint_goes_only_to_the_idp_and_client_that_issued_it() {
        use serde_json::json;
        let i = "https://idp.example";
        #[rustfmt::skip]
        let cases = [
            (json!({"iss": i, "aud": "c1"}), true),
            (json!({"iss": i, "aud": ["x", "c1"]}), true),
            (json!({"iss": "https://other.example", "aud": "c1"}), false),
            (json!({"iss": i, "aud": "c2"}), false),
            (json!({"iss": i}), false),
        ];
        for (claims, ok) in cases {
            assert_eq!(issued_for(&token(claims.clone()), i, "c1"), ok, "{claims}");
        }
        assert!(!issued_for("garbage", i, "c1"));
    }
}
