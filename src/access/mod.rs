//! Trust for apps and APIs: the verify endpoint's checks (session cookie or bearer token), the
//! access tokens orgsso issues to signed-in users, the service's published keys, and the caches
//! that keep the hot path free of database round trips and key parsing. No HTTP types here.
//!
//! [`Access`] owns what it needs (store handle, secret box, JWKS registry, its settings); it
//! never calls into `sso`. It hears committed changes through [`EventSink`], so revocations
//! reach its caches at once on every instance.

mod org_secrets;
mod own_keys;
mod refusals;
mod verdicts;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use jsonwebtoken::Header;
use serde_json::Value;
use time::OffsetDateTime;

use crate::cache::RevocableCache;
use crate::configuration::{CacheBudgets, Settings};
use crate::crypto::SecretBox;
use crate::jose::compact::MAX_BEARER_TOKEN_BYTES;
use crate::jose::jwks::JwksRegistry;
use crate::jwt::own_token::{self, OwnTokenError, OwnTokenExpectations};
use crate::jwt::secret_input::SecretKind;
use crate::jwt::signing::{access_token_claims, AccessTokenClaims};
use crate::jwt::verify::{verify_with_secrets, TokenError};
use crate::roles::Role;
use crate::session::{SessionCache, SessionIdentity, Timeouts};
use crate::store::events::{Event, EventSink};
use crate::store::sessions::{sid_hash, sid_hash_in};
use crate::store::{OrgRow, SigningKeyRow, Store, StoreError};

pub use own_keys::KeyError;
use own_keys::OwnKeys;
use refusals::{Refusal, Refusals};
use verdicts::{TokenKey, Verdict, Verdicts};

/// The `typ` header of tokens orgsso mints (RFC 9068): never mistaken for an ID token.
pub use crate::jwt::signing::ACCESS_TOKEN_TYP;

/// How long a "no such org" is believed; `OrgCreated` drops it sooner on every instance.
const UNKNOWN_ORG_TTL: Duration = Duration::from_secs(5);
/// A typical remembered unknown slug's size, for sizing its table.
const UNKNOWN_ORG_BYTES: u64 = 160;

/// The verdict and refusal caches' key: the token's SHA-256 (32 bytes inline, no allocation).
fn token_key(token: &str) -> TokenKey {
    crate::crypto::sha256(token.as_bytes())
}

/// Who a request comes from, as the verify endpoint reports it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
///
/// Its text is shared with the cache it came from (`ByteString`): answering copies no string.
pub struct Identity {
    #[schema(value_type = String)]
    pub subject: ByteString,
    #[schema(value_type = Option<String>)]
    pub email: Option<ByteString>,
    #[schema(value_type = Option<String>)]
    pub name: Option<ByteString>,
    pub role: Option<Role>,
    #[schema(value_type = String)]
    pub org: ByteString,
    /// "session" or "token".
    #[schema(value_type = String)]
    pub via: &'static str,
    /// The org secret that verified the token, or "orgsso" for the service's own key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<ByteString>,
}

/// Why a request is not let through.
#[derive(Debug)]
pub enum Denied {
    /// A fixed plain-ASCII reason, for `WWW-Authenticate`.
    Unauthenticated(&'static str),
    /// The token checks refused the token, or could not run ([`TokenError::is_server_side`]).
    Token(TokenError),
    UnknownOrg,
    Store(StoreError),
}

impl From<StoreError> for Denied {
    fn from(e: StoreError) -> Self {
        Denied::Store(e)
    }
}

impl From<KeyError> for Denied {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Store(s) => Denied::Store(s),
            other => Denied::Store(StoreError::Corrupt(other.to_string())),
        }
    }
}

fn deny(reason: &'static str) -> Denied {
    Denied::Unauthenticated(reason)
}

/// The slice of the settings [`Access`] reads.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// `iss` of the tokens orgsso mints: the public URL without a trailing slash.
    pub issuer: String,
    pub timeouts: Timeouts,
    pub token_ttl: Duration,
    pub leeway: Duration,
    /// Byte budgets of the verdict, refusal, session and negative caches.
    pub caches: CacheBudgets,
}

impl AccessSettings {
    pub fn from_settings(s: &Settings) -> Self {
        AccessSettings {
            issuer: s.public_url.as_str().trim_end_matches('/').to_owned(),
            timeouts: Timeouts::from_settings(&s.session),
            token_ttl: Duration::from_secs(s.tokens.access_token_ttl_secs),
            leeway: Duration::from_secs(s.oidc.clock_leeway_secs),
            caches: s.cache.budgets(),
        }
    }

    /// The audience of tokens minted for an org.
    pub fn audience(&self, slug: &str) -> String {
        format!("{}/orgs/{slug}", self.issuer)
    }
}

/// The verify endpoint, token minting and the service's signing keys.
pub struct Access {
    store: Store,
    secret_box: SecretBox,
    jwks: Arc<JwksRegistry>,
    settings: AccessSettings,
    sessions: SessionCache,
    keys: OwnKeys,
    org_secrets: org_secrets::SecretsCache,
    /// Shared, not copied: verify reads one per request.
    orgs: Mutex<HashMap<String, Arc<OrgRow>>>,
    /// Slugs no org had, and when that was read (dropped by `OrgCreated`).
    unknown_orgs: RevocableCache<Instant>,
    verdicts: Verdicts,
    /// Refusals final for their token, so a bad token sent again costs no signature check.
    refusals: Refusals,
    /// False while changes from other instances might be missed: every cache is bypassed.
    live: AtomicBool,
}

impl Access {
    /// Starts live, as on SQLite; on PostgreSQL the listener turns it off when it starts,
    /// before any request, until it is connected.
    pub fn new(
        store: Store,
        secret_box: SecretBox,
        jwks: Arc<JwksRegistry>,
        settings: AccessSettings,
    ) -> Self {
        let keep = settings.token_ttl + settings.leeway;
        let budgets = &settings.caches;
        Access {
            store,
            secret_box,
            jwks,
            sessions: SessionCache::new(budgets.live_sessions, budgets.absent_sessions),
            keys: OwnKeys::new(keep.as_secs() as i64),
            org_secrets: org_secrets::SecretsCache::default(),
            orgs: Mutex::new(HashMap::new()),
            unknown_orgs: RevocableCache::with_budget(budgets.unknown_orgs, UNKNOWN_ORG_BYTES),
            verdicts: Verdicts::new(budgets.verdicts),
            refusals: Refusals::new(budgets.refusals),
            live: AtomicBool::new(true),
            settings,
        }
    }

    pub fn settings(&self) -> &AccessSettings {
        &self.settings
    }

    /// Creates the service's first signing key when there is none (first start), then loads
    /// the keys.
    pub async fn ensure_signing_key(&self, now: i64) -> Result<(), KeyError> {
        self.keys
            .ensure_initial(&self.store, &self.secret_box, now)
            .await
    }

    /// A new signing key signs from now on; the previous one stays published until the tokens
    /// it signed have expired. Returns the new key's id.
    pub async fn rotate_signing_key(&self, actor: &str, now: i64) -> Result<String, KeyError> {
        let row = new_key_row(&self.secret_box, now);
        self.store.rotate_signing_key(&row, actor).await?;
        self.keys.reload(&self.store, &self.secret_box, now).await?;
        Ok(row.kid)
    }

    /// The published keys as a JWKS document.
    pub async fn jwks_document(&self, now: i64) -> Result<Value, KeyError> {
        self.keys.jwks(&self.store, &self.secret_box, now).await
    }

    fn reset_caches(&self, enabled: bool) {
        self.sessions.set_enabled(enabled);
        self.org_secrets.set_enabled(enabled);
        self.unknown_orgs.set_enabled(enabled);
        self.verdicts.clear();
        self.refusals.clear();
        self.keys.mark_stale();
    }

    /// Whether every instance's changes are heard now (on PostgreSQL, once the listener is
    /// connected), so caches may answer.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Org by slug; orgs are never renamed or deleted, so a found org is cached for good. A
    /// slug no org has is remembered for [`UNKNOWN_ORG_TTL`] (not while not live, and never
    /// past the `OrgCreated` of an org taking it).
    pub async fn org(&self, slug: &str) -> Result<Arc<OrgRow>, Denied> {
        if let Some(o) = self.orgs.lock().expect("orgs lock").get(slug) {
            return Ok(o.clone());
        }
        if let Some(seen) = self.unknown_orgs.get(slug) {
            if seen.elapsed() < UNKNOWN_ORG_TTL {
                return Err(Denied::UnknownOrg);
            }
        }
        // Noted before the read: an org created while we read is never remembered as unknown.
        let generation = self.unknown_orgs.generation();
        let Some(org) = self.store.org_by_slug(slug).await? else {
            self.unknown_orgs
                .insert_since(generation, slug, Instant::now());
            return Err(Denied::UnknownOrg);
        };
        let org = Arc::new(org);
        self.orgs
            .lock()
            .expect("orgs lock")
            .insert(slug.to_owned(), org.clone());
        Ok(org)
    }

    /// The live session behind a session id (the cookie value), with the member's current role.
    pub async fn live_session(
        &self,
        session_id: &str,
        now: i64,
    ) -> Result<Option<Arc<SessionIdentity>>, StoreError> {
        let mut buf = [0u8; crate::crypto::SHA256_B64_LEN];
        self.session_by_hash(sid_hash_in(session_id, &mut buf), now)
            .await
    }

    async fn session_by_hash(
        &self,
        sid_hash: &str,
        now: i64,
    ) -> Result<Option<Arc<SessionIdentity>>, StoreError> {
        self.sessions
            .lookup(&self.store, &self.settings.timeouts, sid_hash, now)
            .await
    }

    /// A session cookie value: valid when its session is live and belongs to this org.
    pub async fn verify_cookie(
        &self,
        org: &OrgRow,
        cookie: &str,
        now: i64,
    ) -> Result<Identity, Denied> {
        let identity = self
            .live_session(cookie, now)
            .await?
            .ok_or_else(|| deny("the session has ended or does not exist; sign in again"))?;
        if identity.org_id != org.id {
            return Err(deny("the session belongs to another org"));
        }
        Ok(Identity {
            subject: identity.user_id.clone(),
            email: identity.email.clone(),
            name: identity.name.clone(),
            role: Some(identity.role),
            // The session's org is this org (checked above).
            org: identity.org_slug.clone(),
            via: "session",
            secret: None,
        })
    }

    /// A bearer token: checked against the service's own keys or the org's JWT secrets, then,
    /// for tokens minted from a session, against that session's liveness.
    pub async fn verify_bearer(
        &self,
        org: &OrgRow,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Identity, Denied> {
        let ts = now.unix_timestamp();
        // Before hashing: an oversized token costs no work.
        if token.len() > MAX_BEARER_TOKEN_BYTES {
            return Err(Denied::Token(TokenError::TooLarge));
        }
        let key = token_key(token);
        // Not live (PostgreSQL listener down): a secret deleted elsewhere might be unknown here.
        let cached = if self.is_live() {
            self.verdicts.get(&key, &org.id, ts)
        } else {
            None
        };
        let verdict = match cached {
            Some(v) => v,
            None => {
                // A token refused before is refused again, the same way, without a check.
                if self.is_live() {
                    if let Some(denied) = self.refusals.get(&key, &org.id, ts) {
                        return Err(denied);
                    }
                }
                let generation = self.org_secrets.generation();
                let refusals_generation = self.refusals.generation();
                let v = match self.check_signature_and_claims(org, token, now).await {
                    Ok(v) => v,
                    Err(denied) => {
                        self.remember_refusal(
                            org,
                            key,
                            &denied,
                            ts,
                            generation,
                            refusals_generation,
                        )
                        .await;
                        return Err(denied);
                    }
                };
                // Not live, or secrets changed while we checked (which going live also counts
                // as): use the answer once, remember nothing.
                self.verdicts.insert_if(key, v.clone(), || {
                    self.is_live() && self.org_secrets.generation() == generation
                });
                v
            }
        };
        let mut role = verdict.role;
        let mut email = verdict.email();
        let mut name = verdict.name();
        // A token minted from a session dies with it (logout, disconnect, timeout), at once.
        if let Some(sid) = verdict.session() {
            let live = self
                .session_by_hash(sid, ts)
                .await?
                .filter(|s| s.org_id == org.id)
                .ok_or_else(|| deny("the session this token was issued from has ended"))?;
            role = Some(live.role);
            email = live.email.clone().or(email);
            name = live.name.clone().or(name);
        }
        Ok(Identity {
            subject: verdict.subject(),
            email,
            name,
            role,
            org: ByteString::from(org.slug.as_str()),
            via: "token",
            secret: Some(verdict.secret()),
        })
    }

    /// Remembers a refusal final for its token (see [`Refusal::of`]), unless not live or the
    /// secrets or keys changed while the token was being checked.
    async fn remember_refusal(
        &self,
        org: &OrgRow,
        key: TokenKey,
        denied: &Denied,
        ts: i64,
        secrets_generation: u64,
        generation: u64,
    ) {
        if !self.is_live() || Refusal::of(denied, false).is_none() {
            return;
        }
        // Already built by the check (a cache hit): does a key provider's set decide?
        let provider_keys = if Refusal::depends_on_provider_keys(denied) {
            let Ok(secrets) = self
                .org_secrets
                .for_org(&org.id, &self.store, &self.secret_box, &self.jwks)
                .await
            else {
                return;
            };
            secrets
                .verifiers
                .iter()
                .any(|s| s.kind == SecretKind::JwkUrl)
        } else {
            false
        };
        let Some(refusal) = Refusal::of(denied, provider_keys) else {
            return;
        };
        self.refusals
            .insert_if(key, &org.id, refusal, ts, generation, || {
                self.is_live() && self.org_secrets.generation() == secrets_generation
            });
    }

    async fn check_signature_and_claims(
        &self,
        org: &OrgRow,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Verdict, Denied> {
        let leeway = self.settings.leeway;
        // Our own tokens are ES256 with one of our kids; everything else goes to the org's
        // secrets, whose checks refuse anything but HS256 and RS256.
        let candidate = own_token::own_candidate(token)
            .map_err(|_| deny("the token is not a well-formed JWT"))?;
        let own = match candidate {
            Some(c) => self
                .keys
                .verify_key(c.kid(), &self.store, &self.secret_box, now.unix_timestamp())
                .await?
                .map(|key| (c, key)),
            None => None,
        };
        let (claims, secret) = match own {
            Some((candidate, key)) => {
                let audience = self.settings.audience(&org.slug);
                let expect = OwnTokenExpectations {
                    issuer: &self.settings.issuer,
                    audience: &audience,
                    org: &org.slug,
                    leeway,
                };
                let claims = own_token::verify(token, &candidate, &key, &expect, now).map_err(
                    |e| match e {
                        OwnTokenError::NotAccessToken => {
                            deny("the token is not an orgsso access token (typ must be at+jwt)")
                        }
                        OwnTokenError::Token(e) => Denied::Token(e),
                        OwnTokenError::OtherOrg => deny("the token was issued for another org"),
                    },
                )?;
                (claims, "orgsso".to_owned())
            }
            None => {
                let org_secrets = self
                    .org_secrets
                    .for_org(&org.id, &self.store, &self.secret_box, &self.jwks)
                    .await?;
                let verified = verify_with_secrets(token, &org_secrets.verifiers, now, leeway)
                    .await
                    .map_err(Denied::Token)?;
                (verified.claims, verified.secret)
            }
        };
        let exp = claims
            .get("exp")
            .and_then(|e| e.as_f64())
            .map(|e| e as i64)
            .unwrap_or(now.unix_timestamp());
        // Only tokens orgsso minted from a session are tied to it.
        let issuer = self.settings.issuer.as_str();
        let session_of = |c: &serde_json::Map<String, Value>| {
            let text = |k: &str| c.get(k).and_then(Value::as_str);
            (text("iss") == Some(issuer))
                .then(|| text("sid").map(str::to_owned))
                .flatten()
        };
        // These become X-Auth-* headers and session lookups: a control character (a NUL, a
        // line break) has no place in them, and a 200 without the subject header is no answer.
        let printable = |k: &str| {
            !claims
                .get(k)
                .and_then(Value::as_str)
                .is_some_and(|v| v.chars().any(char::is_control))
        };
        if !["sub", "email", "name", "sid"].into_iter().all(printable) {
            return Err(deny(
                "the token's sub, email, name or sid contains control characters",
            ));
        }
        Ok(Verdict::new(&org.id, &secret, &claims, session_of, exp))
    }

    /// Mints an access token for the live session behind `session_id`, signed by the org's
    /// primary secret when it has one, else by the service's active key. `None` when the
    /// session is not live.
    pub async fn mint_for_session(
        &self,
        session_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(String, u64)>, Denied> {
        let Some(who) = self.live_session(session_id, now.unix_timestamp()).await? else {
            return Ok(None);
        };
        let ttl = self.settings.token_ttl;
        let audience = self.settings.audience(&who.org_slug);
        let sid = sid_hash(session_id);
        let claims = access_token_claims(&AccessTokenClaims {
            issuer: &self.settings.issuer,
            subject: &who.user_id,
            audience: &audience,
            org: &who.org_slug,
            role: who.role.as_str(),
            email: who.email.as_deref(),
            session_ref: &sid,
            ttl,
            now,
        });
        let org_secrets = self
            .org_secrets
            .for_org(&who.org_id, &self.store, &self.secret_box, &self.jwks)
            .await?;
        let corrupt = |e: &dyn std::fmt::Display| Denied::Store(StoreError::Corrupt(e.to_string()));
        let token = match &org_secrets.primary {
            Some(p) => {
                let mut header = Header::new(p.alg);
                header.kid = p.kid.clone();
                header.typ = Some(ACCESS_TOKEN_TYP.into());
                jsonwebtoken::encode(&header, &claims, &p.key).map_err(|e| corrupt(&e))?
            }
            None => {
                let key = self
                    .keys
                    .signing_key(&self.store, &self.secret_box, now.unix_timestamp())
                    .await?;
                key.sign(ACCESS_TOKEN_TYP, &claims)
                    .map_err(|e| corrupt(&e))?
            }
        };
        Ok(Some((token, ttl.as_secs())))
    }
}

impl EventSink for Access {
    /// Applies a committed change, made by this instance or (through NOTIFY) another.
    fn apply(&self, event: &Event) {
        match event {
            Event::SessionEnded { sid_hash } => self.sessions.forget(sid_hash),
            Event::SessionStarted { sid_hash } => self.sessions.started(sid_hash),
            Event::OrgCreated { slug } => self.unknown_orgs.remove(slug),
            Event::OrgSessionsEnded { org_id } => self.sessions.forget_org(org_id),
            Event::SecretsChanged { org_id } => {
                self.org_secrets.invalidate(org_id);
                self.verdicts.forget_org(org_id);
                self.refusals.forget_org(org_id);
            }
            // A token with a kid of a key this instance has not loaded yet was refused.
            Event::KeysRotated => {
                self.keys.mark_stale();
                self.refusals.clear();
            }
            Event::RoleMappingChanged { .. }
            | Event::DomainsChanged { .. }
            | Event::ConnectionChanged { .. } => {}
            // Cached sessions hold the member's role: the next request reads the new one (or
            // finds the member denied).
            Event::MemberRolesChanged { org_id, user_id } => {
                self.sessions.forget_members(org_id, user_id.as_deref())
            }
        }
    }

    /// Whether this instance hears every other instance's changes (always, on SQLite; while the
    /// PostgreSQL listener is connected, otherwise). Caches are emptied on every switch and
    /// bypassed while not live, so a missed notification can never let a revoked session through.
    fn set_live(&self, live: bool) {
        // Fail closed: caches are emptied before going live and after going not-live, so
        // nothing learnt while not live is ever read as live.
        if live {
            self.reset_caches(true);
            self.live.store(true, Ordering::Release);
        } else {
            self.live.store(false, Ordering::Release);
            self.reset_caches(false);
        }
    }
}

/// A fresh ES256 key as a row, its private key encrypted and bound to its kid.
pub fn new_key_row(secret_box: &SecretBox, now: i64) -> SigningKeyRow {
    own_keys::new_key_row(secret_box, now)
}
