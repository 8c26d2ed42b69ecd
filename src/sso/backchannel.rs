//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the IdP posts a logout token;
//! the connections it is for are found by its `iss` and `aud` (all connected connections with
//! that issuer whose client id is in `aud`), it is verified for each with the connection's key
//! set and algorithms (`oidc::logout_token`), and the store accepts its `jti` once and ends the
//! sessions it names in one transaction, on every instance at once.

use time::OffsetDateTime;

use super::Sso;
use crate::crypto::sha256_b64;
use crate::oidc::egress::Egress;
use crate::oidc::logout_token::{self, Expectations, LogoutClaims, LogoutTokenError};
use crate::store::{LogoutEnded, LogoutTarget, StoreError};

/// Why a logout request was refused. Every variant but `Store` is the sender's to fix (400).
#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    #[error("The request has no logout_token form field (it must be one application/x-www-form-urlencoded field).")]
    NoToken,
    #[error("The logout token was refused: {0}.")]
    Token(#[from] LogoutTokenError),
    #[error("No connected SSO connection has this issuer with a client id in the logout token's audience; check the connection's issuer and client id.")]
    NoConnection,
    #[error("The logout token was refused: its \"jti\" was already used (a replay).")]
    Replayed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Sso {
    /// `{public_url}/sso/backchannel-logout`, the back-channel logout URI admins register.
    pub fn backchannel_logout_uri(&self) -> String {
        self.settings.public_path("/sso/backchannel-logout")
    }

    /// Verifies `token` and ends the sessions it names. `Ok` with what ended per connection
    /// (possibly nothing, when no session matched).
    pub async fn backchannel_logout(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<LogoutEnded>, BackchannelError> {
        let route = logout_token::route(token)?;
        let conns: Vec<_> = self
            .store
            .connected_by_issuer(&route.issuer)
            .await?
            .into_iter()
            .filter(|c| route.audiences.iter().any(|a| a == &c.client_id))
            .collect();
        if conns.is_empty() {
            return Err(BackchannelError::NoConnection);
        }
        // Each connection that accepts the token has its sessions ended; one that refuses it
        // (another org that copied this issuer and client id, stale metadata) cannot block the
        // others. Refused by all: the first reason is the answer.
        let mut verified: Option<LogoutClaims> = None;
        let mut refusal: Option<LogoutTokenError> = None;
        let mut targets = Vec::with_capacity(conns.len());
        for c in &conns {
            let meta = &c.metadata;
            let algorithms = meta.id_token_algorithms();
            let expect = Expectations {
                issuer: &c.issuer,
                client_id: &c.client_id,
                algorithms: &algorithms,
                leeway: self.settings.leeway,
                max_iat_age: self.settings.max_id_token_age,
            };
            let cache = self.jwks.get(meta.jwks_uri(), Egress::of(c.public_only));
            let claims = match logout_token::verify(token, &cache, &expect, now).await {
                Ok(claims) => claims,
                Err(e) => {
                    refusal.get_or_insert(e);
                    continue;
                }
            };
            if verified.as_ref().is_some_and(|v| v != &claims) {
                return Err(
                    LogoutTokenError::Malformed("it reads differently per connection").into(),
                );
            }
            verified = Some(claims);
            targets.push(LogoutTarget {
                connection_id: c.id.clone(),
                org_id: c.org_id.clone(),
                issuer: c.issuer.clone(),
            });
        }
        let Some(claims) = verified else {
            return Err(refusal.map_or(BackchannelError::NoConnection, Into::into));
        };
        // A jti is unique per issuer and client: the clients that accepted it name its space.
        let mut clients: Vec<&str> = conns
            .iter()
            .filter(|c| targets.iter().any(|t| t.connection_id == c.id))
            .map(|c| c.client_id.as_str())
            .collect();
        clients.sort_unstable();
        clients.dedup();
        let jti_hash = sha256_b64(&format!(
            "{}\n{}\n{}",
            route.issuer,
            clients.join("\n"),
            claims.jti
        ));
        self.store
            .backchannel_logout(
                &jti_hash,
                claims.valid_until,
                &targets,
                claims.sid.as_deref(),
                claims.sub.as_deref(),
                now.unix_timestamp(),
            )
            .await?
            .ok_or(BackchannelError::Replayed)
    }
}
