//! Trust for apps and APIs: the verify endpoint's checks (session cookie or bearer token), the
//! tokens orgsso mints for signed-in users, and the caches that keep the hot path free of
//! database round trips and key parsing. No HTTP types here.

pub mod events;
pub mod keys;
pub mod secrets;
pub mod sessions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use jsonwebtoken::Header;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::crypto::sha256_b64;
use crate::jose::compact::MAX_BEARER_TOKEN_BYTES as MAX_TOKEN_BYTES;
use crate::jwt::own_token::{self, OwnTokenError, OwnTokenExpectations};
use crate::jwt::signing::{access_token_claims, AccessTokenClaims};
use crate::jwt::verify::{verify_with_secrets, TokenError};
use crate::sso::Sso;
use crate::store::events::{Event, EventSink};
use crate::store::sessions::sid_hash;
use crate::store::{OrgRow, StoreError};

pub use keys::OwnKeys;
pub use secrets::SecretsCache;
pub use sessions::{SessionCache, SessionIdentity};

/// The `typ` header of tokens orgsso mints (RFC 9068): never mistaken for an ID token.
pub use crate::jwt::signing::ACCESS_TOKEN_TYP;

/// Who a request comes from, as the verify endpoint reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Option<String>,
    pub org: String,
    /// "session" or "token".
    pub via: &'static str,
    /// The org secret that verified the token, or "orgsso" for the service's own key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
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

fn key_err(e: keys::KeyError) -> Denied {
    match e {
        keys::KeyError::Store(s) => Denied::Store(s),
        other => Denied::Store(StoreError::Corrupt(other.to_string())),
    }
}

fn deny(reason: &'static str) -> Denied {
    Denied::Unauthenticated(reason)
}

#[derive(Clone)]
struct Verdict {
    org_id: String,
    claims: Map<String, Value>,
    secret: String,
    exp: i64,
}

const MAX_VERDICTS: usize = 50_000;

/// Runtime state behind the verify endpoint and token minting.
pub struct Gate {
    pub sessions: SessionCache,
    pub keys: OwnKeys,
    pub secrets: SecretsCache,
    orgs: Mutex<HashMap<String, OrgRow>>,
    /// Signature checks already done, by token hash, until the token expires: an RS256 check
    /// is done once per token, not per request. Revocation is still checked every time.
    verdicts: Mutex<HashMap<String, Verdict>>,
    /// False while revocations from other instances might be missed: every cache is bypassed.
    live: AtomicBool,
}

impl Gate {
    /// Starts live, as on SQLite; on PostgreSQL [`events::listen`] turns it off when called,
    /// before any request, until the listener is connected.
    pub fn new(token_ttl_secs: i64, leeway_secs: i64) -> Self {
        Gate {
            sessions: SessionCache::default(),
            keys: OwnKeys::new(token_ttl_secs + leeway_secs),
            secrets: SecretsCache::default(),
            orgs: Mutex::new(HashMap::new()),
            verdicts: Mutex::new(HashMap::new()),
            live: AtomicBool::new(true),
        }
    }

    /// Whether this instance hears every other instance's changes (always, on SQLite; while the
    /// PostgreSQL listener is connected, otherwise). Caches are emptied on every switch and
    /// bypassed while not live, so a missed notification can never let a revoked session through.
    pub fn set_live(&self, live: bool) {
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

    fn reset_caches(&self, enabled: bool) {
        self.sessions.set_enabled(enabled);
        self.secrets.set_enabled(enabled);
        self.verdicts.lock().expect("verdict lock").clear();
        self.keys.mark_stale();
    }

    /// Org by slug; orgs are never renamed or deleted, so a found org is cached for good.
    pub async fn org(&self, sso: &Sso, slug: &str) -> Result<OrgRow, Denied> {
        if let Some(o) = self.orgs.lock().expect("orgs lock").get(slug) {
            return Ok(o.clone());
        }
        let org = sso
            .store
            .org_by_slug(slug)
            .await?
            .ok_or(Denied::UnknownOrg)?;
        self.orgs
            .lock()
            .expect("orgs lock")
            .insert(slug.to_owned(), org.clone());
        Ok(org)
    }

    /// Forgets cached verdicts of an org (its secrets changed).
    pub fn secrets_changed(&self, org_id: &str) {
        self.secrets.invalidate(org_id);
        self.verdicts
            .lock()
            .expect("verdict lock")
            .retain(|_, v| v.org_id != org_id);
    }

    /// The audience of tokens minted for an org.
    pub fn audience(sso: &Sso, slug: &str) -> String {
        sso.settings.public_path(&format!("/orgs/{slug}"))
    }

    fn issuer(sso: &Sso) -> String {
        sso.settings
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_owned()
    }

    /// A session cookie value: valid when its session is live and belongs to this org.
    pub async fn verify_cookie(
        &self,
        sso: &Sso,
        org: &OrgRow,
        cookie: &str,
        now: i64,
    ) -> Result<Identity, Denied> {
        let identity = self
            .sessions
            .lookup(&sso.store, &sso.settings.session, &sid_hash(cookie), now)
            .await?
            .ok_or_else(|| deny("the session has ended or does not exist; sign in again"))?;
        if identity.org_id != org.id {
            return Err(deny("the session belongs to another org"));
        }
        Ok(Identity {
            subject: identity.user_id,
            email: identity.email,
            name: identity.name,
            role: Some(identity.role),
            org: org.slug.clone(),
            via: "session",
            secret: None,
        })
    }

    /// A bearer token: checked against the service's own keys or the org's JWT secrets, then,
    /// for tokens minted from a session, against that session's liveness.
    pub async fn verify_bearer(
        &self,
        sso: &Sso,
        org: &OrgRow,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Identity, Denied> {
        let ts = now.unix_timestamp();
        // Before hashing: an oversized token costs no work.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Denied::Token(TokenError::TooLarge));
        }
        let key = sha256_b64(token);
        // Not live (PostgreSQL listener down): a secret deleted elsewhere might be unknown here.
        let cached = if self.live.load(Ordering::Acquire) {
            self.verdicts
                .lock()
                .expect("verdict lock")
                .get(&key)
                .cloned()
        } else {
            None
        };
        let verdict = match cached {
            Some(v) if v.org_id == org.id && ts < v.exp => v,
            _ => {
                let generation = self.secrets.generation();
                let v = self
                    .check_signature_and_claims(sso, org, token, now)
                    .await?;
                let mut map = self.verdicts.lock().expect("verdict lock");
                // Not live, or secrets changed while we checked (which going live also counts
                // as): use the answer once, remember nothing.
                if self.live.load(Ordering::Acquire) && self.secrets.generation() == generation {
                    if map.len() >= MAX_VERDICTS {
                        map.retain(|_, v| v.exp > ts);
                        if map.len() >= MAX_VERDICTS {
                            map.clear();
                        }
                    }
                    map.insert(key, v.clone());
                }
                drop(map);
                v
            }
        };
        let claims = &verdict.claims;
        let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let mut role = text("role").filter(|r| r.parse::<crate::roles::Role>().is_ok());
        let mut email = text("email");
        let mut name = text("name");
        // A token minted from a session dies with it (logout, disconnect, timeout), at once.
        if text("iss").as_deref() == Some(Self::issuer(sso).as_str()) {
            if let Some(sid) = text("sid") {
                let live = self
                    .sessions
                    .lookup(&sso.store, &sso.settings.session, &sid, ts)
                    .await?
                    .filter(|s| s.org_id == org.id)
                    .ok_or_else(|| deny("the session this token was issued from has ended"))?;
                role = Some(live.role);
                email = live.email.or(email);
                name = live.name.or(name);
            }
        }
        Ok(Identity {
            subject: text("sub").unwrap_or_default(),
            email,
            name,
            role,
            org: org.slug.clone(),
            via: "token",
            secret: Some(verdict.secret.clone()),
        })
    }

    async fn check_signature_and_claims(
        &self,
        sso: &Sso,
        org: &OrgRow,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Verdict, Denied> {
        let leeway = Duration::from_secs(sso.settings.oidc.clock_leeway_secs);
        // Our own tokens are ES256 with one of our kids; everything else goes to the org's
        // secrets, whose checks refuse anything but HS256 and RS256.
        let candidate = own_token::own_candidate(token)
            .map_err(|_| deny("the token is not a well-formed JWT"))?;
        let own = match candidate {
            Some(c) => self
                .keys
                .verify_key(c.kid(), &sso.store, &sso.secrets, now.unix_timestamp())
                .await
                .map_err(key_err)?
                .map(|key| (c, key)),
            None => None,
        };
        let (claims, secret) = match own {
            Some((candidate, key)) => {
                let expect = OwnTokenExpectations {
                    issuer: &Self::issuer(sso),
                    audience: &Self::audience(sso, &org.slug),
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
                    .secrets
                    .for_org(&org.id, &sso.store, &sso.secrets, &sso.jwks)
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
        Ok(Verdict {
            org_id: org.id.clone(),
            claims,
            secret,
            exp,
        })
    }

    /// Mints an access token for a signed-in user, signed by the org's primary secret when it
    /// has one, else by the service's active key.
    pub async fn mint(
        &self,
        sso: &Sso,
        who: &SessionIdentity,
        session_id: &str,
        now: OffsetDateTime,
    ) -> Result<(String, u64), Denied> {
        let ttl = sso.settings.tokens.access_token_ttl_secs;
        let issuer = Self::issuer(sso);
        let audience = Self::audience(sso, &who.org_slug);
        let sid = sid_hash(session_id);
        let claims = access_token_claims(&AccessTokenClaims {
            issuer: &issuer,
            subject: &who.user_id,
            audience: &audience,
            org: &who.org_slug,
            role: &who.role,
            email: who.email.as_deref(),
            session_ref: &sid,
            ttl: Duration::from_secs(ttl),
            now,
        });
        let org_secrets = self
            .secrets
            .for_org(&who.org_id, &sso.store, &sso.secrets, &sso.jwks)
            .await?;
        let token = match &org_secrets.primary {
            Some(p) => {
                let mut header = Header::new(p.alg);
                header.kid = p.kid.clone();
                header.typ = Some(ACCESS_TOKEN_TYP.into());
                jsonwebtoken::encode(&header, &claims, &p.key)
                    .map_err(|e| Denied::Store(StoreError::Corrupt(e.to_string())))?
            }
            None => {
                let key = self
                    .keys
                    .signing_key(&sso.store, &sso.secrets, now.unix_timestamp())
                    .await
                    .map_err(key_err)?;
                key.sign(ACCESS_TOKEN_TYP, &claims)
                    .map_err(|e| Denied::Store(StoreError::Corrupt(e.to_string())))?
            }
        };
        Ok((token, ttl))
    }
}

impl EventSink for Gate {
    /// Applies a committed change, made by this instance or (through NOTIFY) another.
    fn apply(&self, event: &Event) {
        match event {
            Event::SessionEnded { sid_hash } => self.sessions.forget(sid_hash),
            Event::OrgSessionsEnded { org_id } => self.sessions.forget_org(org_id),
            Event::SecretsChanged { org_id } => self.secrets_changed(org_id),
            Event::KeysRotated => self.keys.mark_stale(),
        }
    }
}
