use super::events::{notify_in_tx, Event};
use super::{audit_in_tx, on_db, Result, Store, StoreError};
use crate::oidc::client_auth::TokenAuthMethod;
use crate::oidc::discovery::ProviderMetadata;

/// Whether a connection's login URL works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Connected,
    /// Retired by a disconnect: its login URL answers 410 for good.
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }
}

/// An org's IdP connection, parsed once as it is read.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub org_id: String,
    pub login_id: String,
    pub issuer: String,
    pub client_id: String,
    /// Encrypted with the service's secret key, bound to `id`. Empty when the connection has
    /// no shared secret (`private_key_jwt`).
    pub client_secret_enc: String,
    pub scopes: Vec<String>,
    /// What discovery found.
    pub metadata: ProviderMetadata,
    pub status: ConnectionStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub disconnected_at: Option<i64>,
    /// Where the IdP puts group or role names; a hint for the rule editor.
    pub groups_claim: Option<String>,
    /// Whether sign-ins ask the IdP's userinfo endpoint for the claims the ID token lacks.
    pub userinfo: bool,
    /// How orgsso authenticates at the IdP's token endpoint.
    pub token_auth: TokenAuth,
    /// Saved by an org admin: every request to its URLs (discovery, keys, token endpoint,
    /// userinfo) goes through the client pinned to public addresses (migration 0010).
    pub public_only: bool,
    /// The sign-in claim matched to a SCIM user's `externalId` when an identity is first seen
    /// (`sub`, or `oid` for Entra ID).
    pub scim_link_claim: String,
}

/// A connection's token-endpoint client authentication.
#[derive(Debug, Clone, Default)]
pub struct TokenAuth {
    /// The admin's choice; `None` is automatic (from discovery).
    pub method: Option<TokenAuthMethod>,
    /// Automatic mode only: the secret method the IdP accepted after refusing the other one.
    pub learned: Option<TokenAuthMethod>,
    /// The connection's own key pair for `private_key_jwt`, made when the admin first chose it
    /// and kept if they switch away (the registration at the IdP stays valid).
    pub key: Option<ClientKey>,
}

/// A connection's `private_key_jwt` key pair.
#[derive(Clone)]
pub struct ClientKey {
    /// Names the public key set's URL (`/sso/client-jwks/{jwks_id}`): random, not the login id.
    pub jwks_id: String,
    /// PKCS#8 PEM, encrypted with the service's secret key, bound to [`ClientKey::context`].
    pub private_key_enc: String,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub public_jwk: serde_json::Value,
}

impl ClientKey {
    /// What the private key's encryption is bound to: the connection, and this column (so the
    /// key cannot be swapped with the client secret of the same row).
    pub fn context(connection_id: &str) -> String {
        format!("{connection_id}:client_key")
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("jwks_id", &self.jwks_id)
            .field("public_jwk", &self.public_jwk)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub fn is_connected(&self) -> bool {
        self.status == ConnectionStatus::Connected
    }
}

/// The row as stored: scopes and metadata are JSON text.
#[derive(sqlx::FromRow)]
pub(super) struct StoredConnection {
    id: String,
    org_id: String,
    login_id: String,
    issuer: String,
    client_id: String,
    client_secret_enc: String,
    scopes: String,
    metadata: String,
    status: String,
    created_at: i64,
    updated_at: i64,
    disconnected_at: Option<i64>,
    groups_claim: Option<String>,
    userinfo: bool,
    token_auth_method: Option<String>,
    token_auth_learned: Option<String>,
    client_key_enc: Option<String>,
    client_public_jwk: Option<String>,
    client_jwks_id: Option<String>,
    public_only: bool,
    scim_link_claim: String,
}

impl TryFrom<StoredConnection> for Connection {
    type Error = StoreError;
    fn try_from(r: StoredConnection) -> Result<Connection> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("connection {} {what}: {e}", r.id))
        };
        let status = match r.status.as_str() {
            "connected" => ConnectionStatus::Connected,
            "disconnected" => ConnectionStatus::Disconnected,
            other => return Err(corrupt("status", &other)),
        };
        let scopes = serde_json::from_str(&r.scopes).map_err(|e| corrupt("scopes", &e))?;
        let metadata = serde_json::from_str(&r.metadata).map_err(|e| corrupt("metadata", &e))?;
        let method = |v: Option<&str>, what: &str| {
            v.map(str::parse::<TokenAuthMethod>)
                .transpose()
                .map_err(|e| corrupt(what, &e))
        };
        let key = match (r.client_key_enc, r.client_public_jwk, r.client_jwks_id) {
            (Some(private_key_enc), Some(jwk), Some(jwks_id)) => Some(ClientKey {
                jwks_id,
                private_key_enc,
                public_jwk: serde_json::from_str(&jwk).map_err(|e| corrupt("client key", &e))?,
            }),
            (None, None, None) => None,
            _ => return Err(corrupt("client key", &"partly stored")),
        };
        let token_auth = TokenAuth {
            method: method(r.token_auth_method.as_deref(), "token_auth_method")?,
            learned: method(r.token_auth_learned.as_deref(), "token_auth_learned")?,
            key,
        };
        Ok(Connection {
            token_auth,
            scopes,
            metadata,
            status,
            id: r.id,
            org_id: r.org_id,
            login_id: r.login_id,
            issuer: r.issuer,
            client_id: r.client_id,
            client_secret_enc: r.client_secret_enc,
            created_at: r.created_at,
            updated_at: r.updated_at,
            disconnected_at: r.disconnected_at,
            groups_claim: r.groups_claim,
            userinfo: r.userinfo,
            public_only: r.public_only,
            scim_link_claim: r.scim_link_claim,
        })
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("scopes and metadata serialise")
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct DisconnectCounts {
    pub sessions_revoked: u64,
    pub members_downgraded: u64,
}

pub(super) const COLUMNS: &str = "id, org_id, login_id, issuer, client_id, client_secret_enc, scopes, metadata, status, created_at, updated_at, disconnected_at, groups_claim, userinfo, token_auth_method, token_auth_learned, client_key_enc, client_public_jwk, client_jwks_id, public_only, scim_link_claim";

/// The token-auth columns as bound: method, learned, key (encrypted), public JWK, JWKS id.
type TokenAuthColumns = (
    Option<&'static str>,
    Option<&'static str>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn token_auth_columns(t: &TokenAuth) -> TokenAuthColumns {
    let key = t.key.as_ref();
    (
        t.method.map(TokenAuthMethod::as_str),
        t.learned.map(TokenAuthMethod::as_str),
        key.map(|k| k.private_key_enc.clone()),
        key.map(|k| k.public_jwk.to_string()),
        key.map(|k| k.jwks_id.clone()),
    )
}

/// What a change to `c` announces (caches of connections drop it).
fn connection_changed(org_id: &str) -> Event {
    Event::ConnectionChanged {
        org_id: org_id.to_owned(),
    }
}

impl Store {
    /// Stores a new, connected connection. A second concurrent connect for the same org hits
    /// the one-connected-per-org index and is a `Conflict`.
    pub async fn insert_connection(
        &self,
        c: &Connection,
        actor: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let (method, learned, key_enc, jwk, jwks_id) = token_auth_columns(&c.token_auth);
        let changed = connection_changed(&c.org_id);
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            sqlx::query(&format!("INSERT INTO sso_connections ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"))
                .bind(&c.id).bind(&c.org_id).bind(&c.login_id).bind(&c.issuer).bind(&c.client_id)
                .bind(&c.client_secret_enc).bind(to_json(&c.scopes)).bind(to_json(&c.metadata)).bind(c.status.as_str())
                .bind(c.created_at).bind(c.updated_at).bind(c.disconnected_at).bind(&c.groups_claim)
                .bind(c.userinfo)
                .bind(method).bind(learned).bind(&key_enc).bind(&jwk).bind(&jwks_id).bind(c.public_only).bind(&c.scim_link_claim)
                .execute(&mut *tx).await?;
            audit_in_tx!(tx, &c.org_id, actor, "sso.connect", detail, c.updated_at)?;
            notify_in_tx!(self.db(), tx, changed);
            tx.commit().await?;
        });
        self.announce(&changed);
        Ok(())
    }

    /// Updates a connected connection in place (its login URL stays). Returns false when it
    /// is no longer connected.
    pub async fn update_connection(
        &self,
        c: &Connection,
        actor: &str,
        detail: &serde_json::Value,
    ) -> Result<bool> {
        let (method, learned, key_enc, jwk, jwks_id) = token_auth_columns(&c.token_auth);
        let changed = connection_changed(&c.org_id);
        let updated = on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE sso_connections SET issuer = $1, client_id = $2, client_secret_enc = $3, scopes = $4, metadata = $5, updated_at = $6, groups_claim = $7, userinfo = $9,
                 token_auth_method = $10, token_auth_learned = $11, client_key_enc = $12, client_public_jwk = $13, client_jwks_id = $14, public_only = $15, scim_link_claim = $16
                 WHERE id = $8 AND status = 'connected'")
                .bind(&c.issuer).bind(&c.client_id).bind(&c.client_secret_enc).bind(to_json(&c.scopes))
                .bind(to_json(&c.metadata)).bind(c.updated_at).bind(&c.groups_claim).bind(&c.id).bind(c.userinfo)
                .bind(method).bind(learned).bind(&key_enc).bind(&jwk).bind(&jwks_id).bind(c.public_only).bind(&c.scim_link_claim)
                .execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                audit_in_tx!(tx, &c.org_id, actor, "sso.update", detail, c.updated_at)?;
                notify_in_tx!(self.db(), tx, changed);
            }
            tx.commit().await?;
            n == 1
        });
        if updated {
            self.announce(&changed);
        }
        Ok(updated)
    }

    /// Remembers, in automatic mode, the secret method the IdP accepted after refusing the
    /// other, with its audit event. Nothing changes (false) when the connection was
    /// disconnected or the admin chose a method meanwhile.
    pub async fn learn_token_auth(
        &self,
        c: &Connection,
        method: TokenAuthMethod,
        detail: &serde_json::Value,
        now: i64,
    ) -> Result<bool> {
        let changed = connection_changed(&c.org_id);
        let learned = on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE sso_connections SET token_auth_learned = $1
                 WHERE id = $2 AND status = 'connected' AND token_auth_method IS NULL")
                .bind(method.as_str()).bind(&c.id)
                .execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                audit_in_tx!(tx, &c.org_id, "sso", "sso.token_auth_learned", detail, now)?;
                notify_in_tx!(self.db(), tx, changed);
            }
            tx.commit().await?;
            n == 1
        });
        if learned {
            self.announce(&changed);
        }
        Ok(learned)
    }

    /// The public JWK of a connected connection's `private_key_jwt` key, by its JWKS id.
    pub async fn client_public_jwk(&self, jwks_id: &str) -> Result<Option<serde_json::Value>> {
        let row: Option<(String,)> = on_db!(self.db(), p => sqlx::query_as(
            "SELECT client_public_jwk FROM sso_connections WHERE client_jwks_id = $1 AND status = 'connected' AND client_public_jwk IS NOT NULL")
            .bind(jwks_id).fetch_optional(p).await?);
        row.map(|(jwk,)| {
            serde_json::from_str(&jwk)
                .map_err(|e| StoreError::Corrupt(format!("client public key: {e}")))
        })
        .transpose()
    }

    pub async fn connection_by_login_id(&self, login_id: &str) -> Result<Option<Connection>> {
        let row = on_db!(self.db(), p => sqlx::query_as::<_, StoredConnection>(&format!("SELECT {COLUMNS} FROM sso_connections WHERE login_id = $1"))
            .bind(login_id).fetch_optional(p).await?);
        row.map(Connection::try_from).transpose()
    }

    pub async fn connection_by_id(&self, id: &str) -> Result<Option<Connection>> {
        let row = on_db!(self.db(), p => sqlx::query_as::<_, StoredConnection>(&format!("SELECT {COLUMNS} FROM sso_connections WHERE id = $1"))
            .bind(id).fetch_optional(p).await?);
        row.map(Connection::try_from).transpose()
    }

    /// The org's newest connection, connected or not.
    pub async fn latest_connection(&self, org_id: &str) -> Result<Option<Connection>> {
        let row = on_db!(self.db(), p => sqlx::query_as::<_, StoredConnection>(&format!(
            "SELECT {COLUMNS} FROM sso_connections WHERE org_id = $1 ORDER BY (status = 'connected') DESC, created_at DESC, id DESC LIMIT 1"))
            .bind(org_id).fetch_optional(p).await?);
        row.map(Connection::try_from).transpose()
    }

    /// What a disconnect would do now: the live SSO sessions it would end and the SSO members
    /// it would make viewers. The same predicates as [`Store::disconnect`].
    pub async fn disconnect_preview(&self, org_id: &str, now: i64) -> Result<DisconnectCounts> {
        let (sessions, members): (i64, i64) = on_db!(self.db(), p => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM sessions WHERE org_id = $1 AND connection_id IS NOT NULL AND expires_at > $2),
                    (SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND source = 'sso' AND role <> 'viewer')")
            .bind(org_id).bind(now).fetch_one(p).await?);
        Ok(DisconnectCounts {
            sessions_revoked: sessions.max(0) as u64,
            members_downgraded: members.max(0) as u64,
        })
    }

    /// Disconnects the org's connected IdP in one transaction: the connection is retired (its
    /// login URL answers 410 from now on), every session that came through the org's SSO is
    /// deleted, every SSO member becomes viewer, and pending sign-ins are dropped. `None` when
    /// nothing was connected.
    pub async fn disconnect(
        &self,
        org_id: &str,
        actor: &str,
        now: i64,
    ) -> Result<Option<DisconnectCounts>> {
        let ended = Event::OrgSessionsEnded {
            org_id: org_id.to_owned(),
        };
        // Members keep sessions that did not come through SSO: their cached roles go too.
        let downgraded = Event::MemberRolesChanged {
            org_id: org_id.to_owned(),
            user_id: None,
        };
        let gone = connection_changed(org_id);
        let counts = on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let retired: Option<(String,)> = sqlx::query_as(
                "UPDATE sso_connections SET status = 'disconnected', disconnected_at = $1, updated_at = $1
                 WHERE org_id = $2 AND status = 'connected' RETURNING id")
                .bind(now).bind(org_id).fetch_optional(&mut *tx).await?;
            let counts = match retired {
                None => None,
                Some((conn_id,)) => {
                    // Expired rows go first, so the count says how many live sessions ended.
                    sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND connection_id IS NOT NULL AND expires_at <= $2")
                        .bind(org_id).bind(now).execute(&mut *tx).await?;
                    let sessions_revoked = sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND connection_id IS NOT NULL")
                        .bind(org_id).execute(&mut *tx).await?.rows_affected();
                    let members_downgraded = sqlx::query(
                        "UPDATE memberships SET role = 'viewer', updated_at = $1 WHERE org_id = $2 AND source = 'sso' AND role <> 'viewer'")
                        .bind(now).bind(org_id).execute(&mut *tx).await?.rows_affected();
                    sqlx::query("DELETE FROM login_flows WHERE connection_id = $1").bind(&conn_id).execute(&mut *tx).await?;
                    let counts = DisconnectCounts { sessions_revoked, members_downgraded };
                    let detail = serde_json::json!({"connection_id": conn_id, "sessions_revoked": sessions_revoked, "members_downgraded": members_downgraded});
                    audit_in_tx!(tx, org_id, actor, "sso.disconnect", detail, now)?;
                    notify_in_tx!(self.db(), tx, ended);
                    notify_in_tx!(self.db(), tx, gone);
                    if members_downgraded > 0 {
                        notify_in_tx!(self.db(), tx, downgraded);
                    }
                    Some(counts)
                }
            };
            tx.commit().await?;
            counts
        });
        if let Some(c) = counts {
            self.announce(&ended);
            self.announce(&gone);
            if c.members_downgraded > 0 {
                self.announce(&downgraded);
            }
        }
        Ok(counts)
    }
}
