use super::events::{notify_in_tx, Event};
use super::{audit_in_tx, on_db, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JwtSecretRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub kind: String,
    /// Encrypted with the service key, bound to `id`.
    pub private_enc: Option<String>,
    pub public: Option<String>,
    pub public_jwk: Option<String>,
    pub kid: Option<String>,
    /// JSON arrays.
    pub audiences: String,
    pub issuers: String,
    pub is_primary: bool,
    pub created_at: i64,
    /// A `jwk_url` an org admin registered: fetched only through the client pinned to public
    /// addresses (migration 0010).
    pub public_only: bool,
}

impl JwtSecretRow {
    /// The accepted audiences (empty: any). Unreadable is an error, never an empty list: empty
    /// means "no check", so a damaged row must not fail open.
    pub fn audiences(&self) -> std::result::Result<Vec<String>, String> {
        string_list(&self.audiences, "audiences")
    }

    /// The accepted issuers (empty: any); unreadable is an error, as for audiences.
    pub fn issuers(&self) -> std::result::Result<Vec<String>, String> {
        string_list(&self.issuers, "issuers")
    }
}

fn string_list(json: &str, field: &str) -> std::result::Result<Vec<String>, String> {
    // Fixed message: serde's would quote the stored text.
    serde_json::from_str(json).map_err(|_| format!("stored {field} are not a JSON list of strings"))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_enc: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

const SECRET_COLUMNS: &str = "id, org_id, name, kind, private_enc, public, public_jwk, kid, audiences, issuers, is_primary, created_at, public_only";

impl Store {
    /// Adds a secret; a new primary takes over from the org's previous one in the same
    /// transaction. A taken name is a `Conflict`.
    pub async fn insert_jwt_secret(&self, s: &JwtSecretRow, actor: &str) -> Result<()> {
        let detail = serde_json::json!({"name": s.name, "type": s.kind, "primary": s.is_primary});
        let changed = Event::SecretsChanged {
            org_id: s.org_id.clone(),
        };
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            if s.is_primary {
                sqlx::query("UPDATE jwt_secrets SET is_primary = FALSE WHERE org_id = $1 AND is_primary")
                    .bind(&s.org_id).execute(&mut *tx).await?;
            }
            sqlx::query(&format!("INSERT INTO jwt_secrets ({SECRET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"))
                .bind(&s.id).bind(&s.org_id).bind(&s.name).bind(&s.kind).bind(&s.private_enc).bind(&s.public)
                .bind(&s.public_jwk).bind(&s.kid).bind(&s.audiences).bind(&s.issuers).bind(s.is_primary).bind(s.created_at)
                .bind(s.public_only)
                .execute(&mut *tx).await?;
            audit_in_tx!(tx, &s.org_id, actor, "jwt_secret.create", detail, s.created_at)?;
            notify_in_tx!(self.db(), tx, changed);
            tx.commit().await?;
        });
        self.announce(&changed);
        Ok(())
    }

    pub async fn jwt_secrets(&self, org_id: &str) -> Result<Vec<JwtSecretRow>> {
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, JwtSecretRow>(&format!(
            "SELECT {SECRET_COLUMNS} FROM jwt_secrets WHERE org_id = $1 ORDER BY created_at, name"))
            .bind(org_id).fetch_all(p).await?),
        )
    }

    /// Removes a secret by name; false when there was none.
    pub async fn delete_jwt_secret(
        &self,
        org_id: &str,
        name: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool> {
        let detail = serde_json::json!({"name": name});
        let changed = Event::SecretsChanged {
            org_id: org_id.to_owned(),
        };
        let deleted = on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM jwt_secrets WHERE org_id = $1 AND name = $2")
                .bind(org_id).bind(name).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                audit_in_tx!(tx, org_id, actor, "jwt_secret.delete", detail, now)?;
                notify_in_tx!(self.db(), tx, changed);
            }
            tx.commit().await?;
            n == 1
        });
        if deleted {
            self.announce(&changed);
        }
        Ok(deleted)
    }

    /// Keys to publish: the active one and those retired less than `keep_secs` ago.
    pub async fn published_signing_keys(
        &self,
        now: i64,
        keep_secs: i64,
    ) -> Result<Vec<SigningKeyRow>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, SigningKeyRow>(
            "SELECT kid, alg, private_enc, public_jwk, created_at, retired_at FROM signing_keys
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid")
            .bind(now - keep_secs).fetch_all(p).await?))
    }

    /// Makes `key` the signing key, retiring the current one, in one transaction.
    pub async fn rotate_signing_key(&self, key: &SigningKeyRow, actor: &str) -> Result<()> {
        let detail = serde_json::json!({"kid": key.kid, "alg": key.alg});
        on_db!(self.db(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(key.created_at).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO signing_keys (kid, alg, private_enc, public_jwk, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, NULL)")
                .bind(&key.kid).bind(&key.alg).bind(&key.private_enc).bind(&key.public_jwk).bind(key.created_at)
                .execute(&mut *tx).await?;
            audit_in_tx!(tx, None::<String>, actor, "signing_key.rotate", detail, key.created_at)?;
            notify_in_tx!(self.db(), tx, Event::KeysRotated);
            tx.commit().await?;
        });
        self.announce(&Event::KeysRotated);
        Ok(())
    }

    /// Inserts `key` as the signing key only if there is none yet (first start). Returns
    /// whether it was inserted; a concurrent first start on another instance wins otherwise.
    pub async fn insert_first_signing_key(&self, key: &SigningKeyRow) -> Result<bool> {
        let inserted = on_db!(self.db(), p => sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_enc, public_jwk, created_at, retired_at)
             SELECT $1, $2, $3, $4, $5, NULL WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)")
            .bind(&key.kid).bind(&key.alg).bind(&key.private_enc).bind(&key.public_jwk).bind(key.created_at)
            .execute(p).await.map(|r| r.rows_affected()));
        match inserted {
            Ok(n) => Ok(n == 1),
            Err(e) => match super::StoreError::from(e) {
                super::StoreError::Conflict(_) => Ok(false),
                other => Err(other),
            },
        }
    }
}
