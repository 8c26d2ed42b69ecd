//! Rows every sign-in reads that change only by an admin's hand: SSO connections (by id at the
//! callback, by login id at the start) and which org verified an email domain (Login with SSO
//! routing, the foreign-domain note of a callback). Kept until a change announces itself
//! (`ConnectionChanged`, `DomainsChanged`, `OrgCreated`: on this instance at commit, on others
//! through NOTIFY), so a callback reads neither from the database; bypassed while not live.
//! What must be exact at the moment of a change is still checked in SQL: the session insert
//! refuses a disconnected connection, and `Sso::was_disconnected` reads the row.

use std::sync::Arc;

use crate::cache::RevocableCache;
use crate::store::events::{Event, EventSink};
use crate::store::{Connection, OrgRow, Store, StoreError};

/// Two entries per connection (by id and by login id): room for 10,000 connections; the
/// least used go first past that.
const MAX_CONNECTION_ENTRIES: usize = 20_000;
/// Domains asked about, verified or not (an unverified one is the usual answer, and Login with
/// SSO lets anyone ask): a bound, not a working set.
const MAX_DOMAINS: usize = 50_000;
const MAX_DOMAIN_LEN: usize = 253;

pub(super) struct Lookups {
    connections: RevocableCache<Arc<Connection>>,
    /// `None`: no org verified the domain.
    domains: RevocableCache<Option<OrgRow>>,
}

impl Default for Lookups {
    fn default() -> Self {
        Lookups {
            connections: RevocableCache::new(MAX_CONNECTION_ENTRIES),
            domains: RevocableCache::new(MAX_DOMAINS),
        }
    }
}

impl Lookups {
    /// The connection with this id.
    pub async fn connection_by_id(
        &self,
        store: &Store,
        id: &str,
    ) -> Result<Option<Arc<Connection>>, StoreError> {
        let key = format!("id:{id}");
        if let Some(c) = self.connections.get(&key) {
            return Ok(Some(c));
        }
        let generation = self.connections.generation();
        let found = store.connection_by_id(id).await?.map(Arc::new);
        self.remember(generation, found.as_ref());
        Ok(found)
    }

    /// The connection behind a login URL.
    pub async fn connection_by_login_id(
        &self,
        store: &Store,
        login_id: &str,
    ) -> Result<Option<Arc<Connection>>, StoreError> {
        if let Some(c) = self.connections.get(&format!("login:{login_id}")) {
            return Ok(Some(c));
        }
        let generation = self.connections.generation();
        let found = store.connection_by_login_id(login_id).await?.map(Arc::new);
        self.remember(generation, found.as_ref());
        Ok(found)
    }

    /// Unknown ids are not remembered: a guessed login id costs its query (the per-address
    /// throttle bounds those), and a new connection needs no announcement to be found.
    fn remember(&self, generation: u64, found: Option<&Arc<Connection>>) {
        if let Some(c) = found {
            let by_id = format!("id:{}", c.id);
            let by_login = format!("login:{}", c.login_id);
            self.connections.insert_since(generation, &by_id, c.clone());
            self.connections
                .insert_since(generation, &by_login, c.clone());
        }
    }

    /// The org that verified `domain` (lowercase), if any.
    pub async fn org_for_domain(
        &self,
        store: &Store,
        domain: &str,
    ) -> Result<Option<OrgRow>, StoreError> {
        // No verified domain is longer than DNS allows; a longer one asked about is not kept
        // (the bound is on entries, so an entry must stay small).
        if domain.len() > MAX_DOMAIN_LEN {
            return store.org_for_domain(domain).await;
        }
        if let Some(owner) = self.domains.get(domain) {
            return Ok(owner);
        }
        let generation = self.domains.generation();
        let owner = store.org_for_domain(domain).await?;
        self.domains.insert_since(generation, domain, owner.clone());
        Ok(owner)
    }
}

impl EventSink for Lookups {
    fn apply(&self, event: &Event) {
        match event {
            Event::ConnectionChanged { org_id } => {
                self.connections.retain(|_, c| &c.org_id != org_id)
            }
            // Rare admin actions: everything remembered of domains goes (a domain remembered as
            // nobody's may be the new org's now).
            Event::DomainsChanged { .. } | Event::OrgCreated { .. } => {
                self.domains.retain(|_, _| false)
            }
            _ => {}
        }
    }

    fn set_live(&self, live: bool) {
        self.connections.set_enabled(live);
        self.domains.set_enabled(live);
    }
}
