//! Setup links and test sign-ins (migration 0011). A link's token is kept only as an HMAC
//! (the caller computes it); its draft connection, rules and last test result are JSON text
//! the service reads and writes whole; the draft's client secret is encrypted by the caller.
//! Every change is audited in its own transaction.

use super::{audit_in_tx, on_db, ClientKey, Result, Store, StoreError};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SetupLinkRow {
    pub id: String,
    pub org_id: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub used_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub browser_hash: Option<String>,
    pub browser_seen_at: Option<i64>,
    pub draft: Option<String>,
    pub draft_secret_enc: Option<String>,
    pub rules: Option<String>,
    pub test_result: Option<String>,
    /// The link's own `private_key_jwt` key pair (see [`SetupLinkRow::client_key`]).
    pub client_key_enc: Option<String>,
    pub client_public_jwk: Option<String>,
    pub client_jwks_id: Option<String>,
}

impl SetupLinkRow {
    /// Who the link's own steps are audited as.
    pub fn actor(&self) -> String {
        format!("setup_link:{}", self.id)
    }

    /// A link as created: nothing entered, bound, used or revoked yet.
    pub fn new(
        id: String,
        org_id: String,
        created_by: String,
        created_at: i64,
        expires_at: i64,
    ) -> Self {
        SetupLinkRow {
            id,
            org_id,
            created_by,
            created_at,
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

    /// The link's own `private_key_jwt` key pair, made when its draft needed one the org's
    /// connection could not lend; its private key is bound to `setup_link:{id}`.
    pub fn client_key(&self) -> Result<Option<ClientKey>> {
        match (
            &self.client_key_enc,
            &self.client_public_jwk,
            &self.client_jwks_id,
        ) {
            (Some(enc), Some(jwk), Some(jwks_id)) => Ok(Some(ClientKey {
                jwks_id: jwks_id.clone(),
                private_key_enc: enc.clone(),
                public_jwk: serde_json::from_str(jwk).map_err(|e| {
                    StoreError::Corrupt(format!("setup link {} client key: {e}", self.id))
                })?,
            })),
            _ => Ok(None),
        }
    }
}

const LINK_COLUMNS: &str = "id, org_id, created_by, created_at, expires_at, revoked_at, used_at, last_used_at, browser_hash, browser_seen_at, draft, draft_secret_enc, rules, test_result, client_key_enc, client_public_jwk, client_jwks_id";

/// A test sign-in in progress (or, for the console's, done: `result` set).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TestFlowRow {
    pub id: String,
    pub state_hash: String,
    pub org_id: String,
    /// A setup link's draft is tested; else `connection_id`, the org's live connection.
    pub setup_link_id: Option<String>,
    pub connection_id: Option<String>,
    /// Who started it (the audit actor).
    pub actor: String,
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where the callback sends the browser back, encrypted with the service key (bound to `id`).
    pub return_enc: String,
    /// A link's test: the draft's fingerprint when it started.
    pub draft_fingerprint: Option<String>,
    pub used_at: Option<i64>,
    pub result: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

const FLOW_COLUMNS: &str = "id, state_hash, org_id, setup_link_id, connection_id, actor, browser_hash, nonce, pkce_verifier, return_enc, draft_fingerprint, used_at, result, created_at, expires_at";

/// How many links the admin API and the console list (the newest).
pub const MAX_LISTED_LINKS: i64 = 200;
/// An expired link's row (times and status only by then) is deleted this long after expiry.
pub const SETUP_LINK_RETENTION_SECS: i64 = 30 * 24 * 3600;
/// What a link stops holding once revoked or expired: the customer's entries, secret, own
/// private key and claims (a used link's recorded login URL is in its draft, shown only until
/// expiry).
const FORGET_DRAFT: &str =
    "draft = NULL, draft_secret_enc = NULL, client_key_enc = NULL, test_result = NULL";

/// What a draft save writes.
#[derive(Debug, Clone, Copy)]
pub enum DraftPart<'a> {
    /// The connection draft; `secret_enc` `None` keeps the stored secret.
    Connection {
        draft: &'a str,
        secret_enc: Option<&'a str>,
    },
    Rules(&'a str),
}

impl Store {
    pub async fn insert_setup_link(
        &self,
        row: &SetupLinkRow,
        token_hash: &str,
        actor: &str,
    ) -> Result<()> {
        let detail = serde_json::json!({"id": row.id, "expires_at": row.expires_at});
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO setup_links (id, org_id, token_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&row.id).bind(&row.org_id).bind(token_hash).bind(&row.created_by)
                .bind(row.created_at).bind(row.expires_at)
                .execute(&mut *tx).await?;
            audit_in_tx!(tx, &row.org_id, actor, "setup_link.created", detail, row.created_at)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The org's links, newest first: at most [`MAX_LISTED_LINKS`] (no paging; expired links
    /// are deleted after [`SETUP_LINK_RETENTION_SECS`], so an org rarely has that many).
    pub async fn setup_links(&self, org_id: &str) -> Result<Vec<SetupLinkRow>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM setup_links WHERE org_id = $1 ORDER BY created_at DESC, id LIMIT {MAX_LISTED_LINKS}");
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, SetupLinkRow>(&sql)
            .bind(org_id).fetch_all(p).await?),
        )
    }

    /// The link with this token hash, whichever org it belongs to.
    pub async fn setup_link_by_hash(&self, token_hash: &str) -> Result<Option<SetupLinkRow>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM setup_links WHERE token_hash = $1");
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, SetupLinkRow>(&sql)
            .bind(token_hash).fetch_optional(p).await?),
        )
    }

    pub async fn setup_link(&self, id: &str) -> Result<Option<SetupLinkRow>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM setup_links WHERE id = $1");
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, SetupLinkRow>(&sql)
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// Revokes a link of the org (at once; revoking twice keeps the first time). False when
    /// the org has no such link.
    pub async fn revoke_setup_link(
        &self,
        org_id: &str,
        id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool> {
        Ok(on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let found: Option<(String,)> = sqlx::query_as(&format!(
                "UPDATE setup_links SET revoked_at = COALESCE(revoked_at, $3), {FORGET_DRAFT} WHERE org_id = $1 AND id = $2 RETURNING id"))
                .bind(org_id).bind(id).bind(now).fetch_optional(&mut *tx).await?;
            if found.is_some() {
                audit_in_tx!(tx, org_id, actor, "setup_link.revoked", serde_json::json!({"id": id}), now)?;
            }
            tx.commit().await?;
            found.is_some()
        }))
    }

    /// Binds the link to a browser when it has none or the bound one was idle since
    /// `idle_before`: one conditional statement, so of two browsers racing one wins.
    pub async fn bind_setup_link(
        &self,
        link: &SetupLinkRow,
        browser_hash: &str,
        idle_before: i64,
        now: i64,
    ) -> Result<bool> {
        let actor = link.actor();
        Ok(on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(
                "UPDATE setup_links SET browser_hash = $2, browser_seen_at = $3, last_used_at = $3
                 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL
                   AND (browser_hash IS NULL OR browser_seen_at < $4)")
                .bind(&link.id).bind(browser_hash).bind(now).bind(idle_before)
                .execute(&mut *tx).await?.rows_affected() == 1;
            if done {
                let detail = serde_json::json!({"id": link.id, "replaced_idle_browser": link.browser_hash.is_some()});
                audit_in_tx!(tx, &link.org_id, &actor, "setup_link.bound", detail, now)?;
            }
            tx.commit().await?;
            done
        }))
    }

    /// The bound browser was seen: keeps its binding from going idle.
    pub async fn touch_setup_link(&self, id: &str, now: i64) -> Result<()> {
        on_db!(self.db(), p => {
            sqlx::query("UPDATE setup_links SET browser_seen_at = $2, last_used_at = $2 WHERE id = $1")
                .bind(id).bind(now).execute(p).await?;
        });
        Ok(())
    }

    /// Writes part of a link's draft and audits it as `action` (never with the secret). False
    /// when the link was used or revoked meanwhile: nothing is written.
    pub async fn save_setup_draft(
        &self,
        link: &SetupLinkRow,
        part: DraftPart<'_>,
        action: &str,
        detail: &serde_json::Value,
        now: i64,
    ) -> Result<bool> {
        let actor = link.actor();
        const LIVE: &str = "id = $1 AND used_at IS NULL AND revoked_at IS NULL";
        let (sql, a, b) = match part {
            DraftPart::Connection { draft, secret_enc } => (
                format!("UPDATE setup_links SET draft = $2, draft_secret_enc = COALESCE($3, draft_secret_enc), test_result = NULL WHERE {LIVE}"),
                draft,
                secret_enc,
            ),
            DraftPart::Rules(r) => (
                // The test result stays: its role is re-derived from its claims under the new rules.
                format!("UPDATE setup_links SET rules = $2, draft_secret_enc = COALESCE($3, draft_secret_enc) WHERE {LIVE}"),
                r,
                None,
            ),
        };
        Ok(on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(&sql).bind(&link.id).bind(a).bind(b)
                .execute(&mut *tx).await?.rows_affected() == 1;
            if done {
                audit_in_tx!(tx, &link.org_id, &actor, action, detail, now)?;
            }
            tx.commit().await?;
            done
        }))
    }

    /// Stores a test's result, only while the link still holds the draft and secret that were
    /// tested (a save meanwhile cleared the result and must not get this one back). False
    /// when nothing was written.
    pub async fn save_setup_test_result(
        &self,
        tested: &SetupLinkRow,
        result: &str,
        detail: &serde_json::Value,
        now: i64,
    ) -> Result<bool> {
        let actor = tested.actor();
        Ok(on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(
                "UPDATE setup_links SET test_result = $2
                 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL
                   AND COALESCE(draft, '') = COALESCE($3, '') AND COALESCE(draft_secret_enc, '') = COALESCE($4, '')")
                .bind(&tested.id).bind(result).bind(&tested.draft).bind(&tested.draft_secret_enc)
                .execute(&mut *tx).await?.rows_affected() == 1;
            if done {
                audit_in_tx!(tx, &tested.org_id, &actor, "setup_link.test_sign_in", detail, now)?;
            }
            tx.commit().await?;
            done
        }))
    }

    /// Gives the link its own `private_key_jwt` key pair unless it has one (the first stays:
    /// its URL may be registered at the IdP already). False when the link has one, or was used
    /// or revoked.
    pub async fn set_setup_link_key(&self, id: &str, key: &ClientKey) -> Result<bool> {
        let jwk = key.public_jwk.to_string();
        Ok(on_db!(self.db(), p => sqlx::query(
            "UPDATE setup_links SET client_key_enc = $2, client_public_jwk = $3, client_jwks_id = $4
             WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL AND client_key_enc IS NULL")
            .bind(id).bind(&key.private_key_enc).bind(&jwk).bind(&key.jwks_id)
            .execute(p).await?.rows_affected() == 1))
    }

    /// The public JWK of an active link's own key, by its JWKS id (the IdP fetches it during
    /// the test sign-in; once the link is used the connection publishes it).
    pub async fn setup_link_public_jwk(
        &self,
        jwks_id: &str,
        now: i64,
    ) -> Result<Option<serde_json::Value>> {
        let row: Option<(String,)> = on_db!(self.db(), p => sqlx::query_as(
            "SELECT client_public_jwk FROM setup_links WHERE client_jwks_id = $1 AND client_public_jwk IS NOT NULL
               AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2")
            .bind(jwks_id).bind(now).fetch_optional(p).await?);
        row.map(|(jwk,)| {
            serde_json::from_str(&jwk)
                .map_err(|e| StoreError::Corrupt(format!("setup link public key: {e}")))
        })
        .transpose()
    }

    /// Claims the link for an activation before anything is applied: one conditional
    /// statement, so a revocation, expiry or second activation either comes first (nothing
    /// returned) or finds the link used. The row as claimed is returned.
    pub async fn claim_setup_link(&self, id: &str, now: i64) -> Result<Option<SetupLinkRow>> {
        let sql = format!("UPDATE setup_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 RETURNING {LINK_COLUMNS}");
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, SetupLinkRow>(&sql)
            .bind(id).bind(now).fetch_optional(p).await?),
        )
    }

    /// An activation that failed gives its claim back (the customer may fix and retry; a
    /// revocation meanwhile holds).
    pub async fn release_setup_link(&self, id: &str, claimed_at: i64) -> Result<()> {
        on_db!(self.db(), p => {
            sqlx::query("UPDATE setup_links SET used_at = NULL WHERE id = $1 AND used_at = $2")
                .bind(id).bind(claimed_at).execute(p).await?;
        });
        Ok(())
    }

    /// Expired links forget their drafts; rows past the retention go (with their test flows).
    pub async fn purge_setup_links(&self, now: i64) -> Result<u64> {
        let forget = format!("UPDATE setup_links SET {FORGET_DRAFT} WHERE expires_at <= $1 AND (draft IS NOT NULL OR draft_secret_enc IS NOT NULL OR client_key_enc IS NOT NULL OR test_result IS NOT NULL)");
        Ok(on_db!(self.db(), p => {
            let a = sqlx::query(&forget).bind(now).execute(p).await?;
            let b = sqlx::query("DELETE FROM setup_links WHERE expires_at <= $1")
                .bind(now - SETUP_LINK_RETENTION_SECS).execute(p).await?;
            a.rows_affected() + b.rows_affected()
        }))
    }

    /// Ends a claimed link's activation: the draft's secret and private key are now the
    /// connection's, so the link's copies go, and `draft` (the draft with its login URL)
    /// replaces the draft, in the same transaction; audited `setup_link.activated`.
    pub async fn mark_setup_link_used(
        &self,
        link: &SetupLinkRow,
        draft: &str,
        detail: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        let actor = link.actor();
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE setup_links SET draft_secret_enc = NULL, client_key_enc = NULL, draft = $2 WHERE id = $1")
                .bind(&link.id).bind(draft).execute(&mut *tx).await?;
            audit_in_tx!(tx, &link.org_id, &actor, "setup_link.activated", detail, now)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Stores a test flow and audits its start (`setup_link.test_started` for a link's draft,
    /// `sso.test_started` for the console's test of the live connection).
    pub async fn insert_test_flow(&self, f: &TestFlowRow) -> Result<()> {
        let (action, detail) = match &f.setup_link_id {
            Some(id) => ("setup_link.test_started", serde_json::json!({"id": id})),
            None => (
                "sso.test_started",
                serde_json::json!({"connection_id": f.connection_id}),
            ),
        };
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO test_flows (id, state_hash, org_id, setup_link_id, connection_id, actor, browser_hash, nonce, pkce_verifier, return_enc, created_at, expires_at, draft_fingerprint)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
                .bind(&f.id).bind(&f.state_hash).bind(&f.org_id).bind(&f.setup_link_id)
                .bind(&f.connection_id).bind(&f.actor).bind(&f.browser_hash).bind(&f.nonce)
                .bind(&f.pkce_verifier).bind(&f.return_enc).bind(f.created_at).bind(f.expires_at).bind(&f.draft_fingerprint)
                .execute(&mut *tx).await?;
            audit_in_tx!(tx, &f.org_id, &f.actor, action, detail, f.created_at)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Claims the test flow with this state for its callback: a state is used once.
    pub async fn take_test_flow(&self, state_hash: &str, now: i64) -> Result<Option<TestFlowRow>> {
        let sql = format!("UPDATE test_flows SET used_at = $2 WHERE state_hash = $1 AND used_at IS NULL RETURNING {FLOW_COLUMNS}");
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, TestFlowRow>(&sql)
            .bind(state_hash).bind(now).fetch_optional(p).await?),
        )
    }

    /// Stores a console test's result on its flow row and audits it (`sso.test_sign_in`).
    pub async fn finish_test_flow(
        &self,
        f: &TestFlowRow,
        result: &str,
        detail: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE test_flows SET result = $2 WHERE id = $1")
                .bind(&f.id).bind(result).execute(&mut *tx).await?;
            audit_in_tx!(tx, &f.org_id, &f.actor, "sso.test_sign_in", detail, now)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// A finished test flow of the org, unexpired.
    pub async fn test_flow(&self, org_id: &str, id: &str, now: i64) -> Result<Option<TestFlowRow>> {
        let sql = format!("SELECT {FLOW_COLUMNS} FROM test_flows WHERE org_id = $1 AND id = $2 AND expires_at > $3");
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, TestFlowRow>(&sql)
            .bind(org_id).bind(id).bind(now).fetch_optional(p).await?),
        )
    }

    /// Unfinished test flows of one link (`setup_link_id`), or else of the org's console
    /// tests: each has its own cap, so a link holder cannot block the console's button.
    pub async fn pending_test_flows(
        &self,
        org_id: &str,
        setup_link_id: Option<&str>,
        now: i64,
    ) -> Result<i64> {
        const PENDING: &str = "SELECT COUNT(*) FROM test_flows WHERE org_id = $1 AND expires_at > $2 AND used_at IS NULL";
        let sql = match setup_link_id {
            Some(_) => format!("{PENDING} AND setup_link_id = $3"),
            None => format!("{PENDING} AND setup_link_id IS NULL"),
        };
        Ok(on_db!(self.db(), p => {
            let q = sqlx::query_scalar::<_, i64>(&sql).bind(org_id).bind(now);
            match setup_link_id {
                Some(id) => q.bind(id),
                None => q,
            }.fetch_one(p).await?
        }))
    }
}
