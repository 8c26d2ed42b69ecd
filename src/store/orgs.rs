use super::events::{notify_in_tx, Event};
use super::{audit_in_tx, on_db, Result, Store, StoreError};
use crate::roles::RoleMappingSpec;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OrgRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
}

impl Store {
    /// Creates the org and its claimed domains in one transaction. A taken slug or domain is a
    /// `Conflict`, and nothing is written. Announces `OrgCreated`, so an instance that
    /// remembered the slug as unknown knows it at once.
    pub async fn create_org(&self, org: &OrgRow, domains: &[String], actor: &str) -> Result<()> {
        let detail = serde_json::json!({"slug": org.slug, "name": org.name, "domains": domains});
        let created = Event::OrgCreated {
            slug: org.slug.clone(),
        };
        let db = self.db();
        on_db!(db, p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&org.id).bind(&org.slug).bind(&org.name).bind(org.created_at)
                .execute(&mut *tx).await?;
            for d in domains {
                sqlx::query("INSERT INTO org_domains (domain, org_id, created_at) VALUES ($1, $2, $3)")
                    .bind(d).bind(&org.id).bind(org.created_at)
                    .execute(&mut *tx).await?;
            }
            audit_in_tx!(tx, &org.id, actor, "org.create", detail, org.created_at)?;
            notify_in_tx!(db, tx, created);
            tx.commit().await?;
        });
        self.announce(&created);
        Ok(())
    }

    pub async fn org_by_slug(&self, slug: &str) -> Result<Option<OrgRow>> {
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, OrgRow>("SELECT id, slug, name, created_at FROM orgs WHERE slug = $1")
            .bind(slug).fetch_optional(p).await?),
        )
    }

    pub async fn org_by_id(&self, id: &str) -> Result<Option<OrgRow>> {
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, OrgRow>("SELECT id, slug, name, created_at FROM orgs WHERE id = $1")
            .bind(id).fetch_optional(p).await?),
        )
    }

    pub async fn list_orgs(&self) -> Result<Vec<OrgRow>> {
        Ok(
            on_db!(self.db(), p => sqlx::query_as::<_, OrgRow>("SELECT id, slug, name, created_at FROM orgs ORDER BY slug")
            .fetch_all(p).await?),
        )
    }

    pub async fn org_domains(&self, org_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_db!(self.db(), p => sqlx::query_as("SELECT domain FROM org_domains WHERE org_id = $1 ORDER BY domain")
            .bind(org_id).fetch_all(p).await?);
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Replaces the org's claimed domains as a whole. Announces `DomainsChanged`: whoever
    /// remembers which org a domain belongs to forgets it.
    pub async fn set_org_domains(
        &self,
        org_id: &str,
        domains: &[String],
        actor: &str,
        now: i64,
    ) -> Result<()> {
        let detail = serde_json::json!({"domains": domains});
        let changed = Event::DomainsChanged {
            org_id: org_id.to_owned(),
        };
        let db = self.db();
        on_db!(db, p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM org_domains WHERE org_id = $1").bind(org_id).execute(&mut *tx).await?;
            for d in domains {
                sqlx::query("INSERT INTO org_domains (domain, org_id, created_at) VALUES ($1, $2, $3)")
                    .bind(d).bind(org_id).bind(now)
                    .execute(&mut *tx).await?;
            }
            audit_in_tx!(tx, org_id, actor, "org.domains", detail, now)?;
            notify_in_tx!(db, tx, changed);
            tx.commit().await?;
        });
        self.announce(&changed);
        Ok(())
    }

    pub async fn org_for_domain(&self, domain: &str) -> Result<Option<OrgRow>> {
        Ok(on_db!(self.db(), p => sqlx::query_as::<_, OrgRow>(
            "SELECT o.id, o.slug, o.name, o.created_at FROM orgs o JOIN org_domains d ON d.org_id = o.id WHERE d.domain = $1")
            .bind(domain).fetch_optional(p).await?))
    }

    /// The org's role-mapping rule set as stored JSON, if one was ever set.
    /// The org's stored rule set (`None`: never set).
    pub async fn role_mapping(&self, org_id: &str) -> Result<Option<RoleMappingSpec>> {
        let row: Option<(String,)> = on_db!(self.db(), p => sqlx::query_as("SELECT spec FROM role_mappings WHERE org_id = $1")
            .bind(org_id).fetch_optional(p).await?);
        row.map(|(json,)| {
            serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("role mapping of org {org_id}: {e}")))
        })
        .transpose()
    }

    /// Stores a rule set (validated whole by the caller) and announces the change, without
    /// re-deriving anyone's role (see [`Store::save_role_mapping`], which does).
    #[cfg(test)]
    pub async fn put_role_mapping(
        &self,
        org_id: &str,
        spec: &RoleMappingSpec,
        actor: &str,
        now: i64,
    ) -> Result<()> {
        self.save_role_mapping(org_id, spec, actor, now, |_| Vec::new())
            .await
            .map(|_| ())
    }
}
