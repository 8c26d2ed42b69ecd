//! Creating orgs and claiming their email domains, shared by the admin API and the console.

use super::Sso;
use crate::domain::{parse_name, Domain, Slug};
use crate::store::{new_id, OrgRow, StoreError};

/// Most domains one org may claim.
const MAX_DOMAINS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// A field is not acceptable; `.0` names the problem for the API (`invalid_slug`, …).
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("The slug {0:?} is already taken.")]
    SlugTaken(String),
    #[error("One of these domains already belongs to another org.")]
    DomainTaken,
    #[error(transparent)]
    Store(StoreError),
}

/// Domains as typed (`Acme.com`, duplicates) into the canonical, de-duplicated list.
pub fn parse_domains<S: AsRef<str>>(domains: &[S]) -> Result<Vec<String>, OrgError> {
    let mut out: Vec<String> = Vec::new();
    for d in domains {
        let d = Domain::parse(d.as_ref()).map_err(|e| OrgError::Invalid("invalid_domain", e.0))?;
        if !out.iter().any(|o| o == d.as_str()) {
            out.push(d.as_str().to_owned());
        }
    }
    if out.len() > MAX_DOMAINS {
        return Err(OrgError::Invalid(
            "invalid_domain",
            format!("At most {MAX_DOMAINS} domains per org."),
        ));
    }
    Ok(out)
}

impl Sso {
    /// Creates an org with its domains; nothing is written when any part is refused.
    pub async fn create_org<S: AsRef<str>>(
        &self,
        slug: &str,
        name: &str,
        domains: &[S],
        actor: &str,
        now: i64,
    ) -> Result<OrgRow, OrgError> {
        let slug = Slug::parse(slug).map_err(|e| OrgError::Invalid("invalid_slug", e.0))?;
        let name = parse_name(name).map_err(|e| OrgError::Invalid("invalid_name", e.0))?;
        let domains = parse_domains(domains)?;
        let org = OrgRow {
            id: new_id(),
            slug: slug.as_str().to_owned(),
            name,
            created_at: now,
        };
        self.store
            .create_org(&org, &domains, actor)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(c) if c.contains("domain") => OrgError::DomainTaken,
                StoreError::Conflict(_) => OrgError::SlugTaken(org.slug.clone()),
                other => OrgError::Store(other),
            })?;
        Ok(org)
    }

    /// Replaces the org's claimed domains.
    pub async fn set_org_domains<S: AsRef<str>>(
        &self,
        org: &OrgRow,
        domains: &[S],
        actor: &str,
        now: i64,
    ) -> Result<Vec<String>, OrgError> {
        let domains = parse_domains(domains)?;
        self.store
            .set_org_domains(&org.id, &domains, actor, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => OrgError::DomainTaken,
                other => OrgError::Store(other),
            })?;
        Ok(domains)
    }
}
