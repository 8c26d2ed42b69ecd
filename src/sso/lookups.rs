//! Rows every sign-in reads that change only by an admin's hand: SSO connections (by id at the
//! callback, by login id at the start) and which org verified an email domain (Login with SSO
//! routing, the foreign-domain note of a callback). Kept until a change announces itself
//! (`ConnectionChanged`, `DomainsChanged`, `OrgCreated`: on this instance at commit, on others
//! through NOTIFY), so a callback reads neither from the database; bypassed while not live.
//! What must be exact at the moment of a change is still checked in SQL: the session insert
//! refuses a disconnected connection, and `Sso::was_disconnected` reads the row.
//! Entries are also read again after [`MAX_AGE`], so an event this instance never heard (an
//! older version during a rolling deploy sends none) cannot keep a rotated secret or a moved
//! domain here for longer than that.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
/// How long an entry is used without reading the row again.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// A value and when it was read.
type Aged<V> = (Instant, V);

fn fresh<V>(entry: Option<Aged<V>>) -> Option<V> {
    entry
        .filter(|(read, _)| read.elapsed() < MAX_AGE)
        .map(|(_, v)| v)
}

pub(super) struct Lookups {
    connections: RevocableCache<Aged<Arc<Connection>>>,
    /// `None`: no org verified the domain.
    domains: RevocableCache<Aged<Option<OrgRow>>>,
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
        if let Some(c) = fresh(self.connections.get(&key)) {
            return Ok(Some(c));
        }
        let generation = self.connections.generation();
        let read = Instant::now();
        let found = store.connection_by_id(id).await?.map(Arc::new);
        self.remember(generation, read, found.as_ref());
        Ok(found)
    }

    /// The connection behind a login URL.
    pub async fn connection_by_login_id(
        &self,
        store: &Store,
        login_id: &str,
    ) -> Result<Option<Arc<Connection>>, StoreError> {
        if let Some(c) = fresh(self.connections.get(&format!("login:{login_id}"))) {
            return Ok(Some(c));
        }
        let generation = self.connections.generation();
        let read = Instant::now();
        let found = store.connection_by_login_id(login_id).await?.map(Arc::new);
        self.remember(generation, read, found.as_ref());
        Ok(found)
    }

    /// Unknown ids are not remembered: a guessed login id costs its query (the per-address
    /// throttle bounds those), and a new connection needs no announcement to be found.
    fn remember(&self, generation: u64, read: Instant, found: Option<&Arc<Connection>>) {
        if let Some(c) = found {
            let by_id = format!("id:{}", c.id);
            let by_login = format!("login:{}", c.login_id);
            self.connections
                .insert_since(generation, &by_id, (read, c.clone()));
            self.connections
                .insert_since(generation, &by_login, (read, c.clone()));
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
        if let Some(owner) = fresh(self.domains.get(domain)) {
            return Ok(owner);
        }
        let generation = self.domains.generation();
        let read = Instant::now();
        let owner = store.org_for_domain(domain).await?;
        self.domains
            .insert_since(generation, domain, (read, owner.clone()));
        Ok(owner)
    }
}

impl EventSink for Lookups {
    fn apply(&self, event: &Event) {
        match event {
            Event::ConnectionChanged { org_id } => {
                self.connections.retain(|_, (_, c)| &c.org_id != org_id)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, PoolSettings};

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let pool = PoolSettings {
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        };
        let store = Store::connect(&url, &pool).await.unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    /// A store whose changes `Lookups` hears, as in the service.
    async fn watched() -> (Store, Arc<Lookups>, tempfile::TempDir) {
        let (store, dir) = store().await;
        let lookups = Arc::new(Lookups::default());
        let sink: Arc<dyn EventSink> = lookups.clone();
        store.set_event_sink(&sink);
        (store, lookups, dir)
    }

    fn org(id: &str) -> OrgRow {
        OrgRow {
            id: id.into(),
            slug: id.into(),
            name: id.into(),
            created_at: 1,
        }
    }

    /// Changes the database behind the cache's back: what a cache answers then is what it kept.
    async fn sql(store: &Store, statement: &str) {
        let Db::Sqlite(p) = store.db() else {
            unreachable!("these tests run on SQLite")
        };
        sqlx::query(statement).execute(p).await.unwrap();
    }

    #[tokio::test]
    async fn domains_are_kept_until_a_domain_change_or_a_new_org() {
        let (store, lookups, _dir) = watched().await;
        store
            .create_org(&org("o1"), &["acme.com".into()], "test")
            .await
            .unwrap();
        let owner = |d: &'static str| {
            let (lookups, store) = (lookups.clone(), store.clone());
            async move {
                lookups
                    .org_for_domain(&store, d)
                    .await
                    .unwrap()
                    .map(|o| o.id)
            }
        };
        assert_eq!(owner("acme.com").await.as_deref(), Some("o1"));
        assert_eq!(owner("other.com").await, None);
        // Kept: a change made behind the store's back is not seen.
        sql(&store, "DELETE FROM org_domains").await;
        sql(
            &store,
            "INSERT INTO org_domains (domain, org_id, created_at) VALUES ('other.com', 'o1', 1)",
        )
        .await;
        assert_eq!(owner("acme.com").await.as_deref(), Some("o1"));
        assert_eq!(owner("other.com").await, None);
        // A change through the store drops what was kept, "nobody's" included.
        store
            .set_org_domains("o1", &["other.com".into()], "test", 2)
            .await
            .unwrap();
        assert_eq!(owner("acme.com").await, None);
        assert_eq!(owner("other.com").await.as_deref(), Some("o1"));
        assert_eq!(owner("new.com").await, None);
        store
            .create_org(&org("o2"), &["new.com".into()], "test")
            .await
            .unwrap();
        assert_eq!(owner("new.com").await.as_deref(), Some("o2"));
        // Not live: always read.
        lookups.set_live(false);
        sql(&store, "DELETE FROM org_domains").await;
        assert_eq!(owner("new.com").await, None);
    }

    #[tokio::test]
    async fn connections_are_kept_until_their_org_announces_a_change() {
        let (store, lookups, _dir) = watched().await;
        for o in ["a", "b"] {
            store.create_org(&org(o), &[], "test").await.unwrap();
            sql(&store, &format!(
                "INSERT INTO sso_connections (id, org_id, login_id, issuer, client_id, client_secret_enc, scopes, metadata, status, created_at, updated_at) \
                 VALUES ('{o}1', '{o}', 'l{o}1', 'https://{o}', 'x', '', '[]', '{{\"issuer\": \"https://{o}\", \"authorization_endpoint\": \"https://{o}/auth\", \"token_endpoint\": \"https://{o}/token\", \"jwks_uri\": \"https://{o}/jwks\", \"response_types_supported\": [\"code\"], \"subject_types_supported\": [\"public\"], \"id_token_signing_alg_values_supported\": [\"RS256\"]}}', 'connected', 1, 1)",
            ))
            .await;
        }
        let connected = |by_login: bool, key: &'static str| {
            let (lookups, store) = (lookups.clone(), store.clone());
            async move {
                let c = if by_login {
                    lookups.connection_by_login_id(&store, key).await
                } else {
                    lookups.connection_by_id(&store, key).await
                };
                c.unwrap().map(|c| c.is_connected())
            }
        };
        assert_eq!(connected(false, "a1").await, Some(true));
        assert_eq!(connected(true, "lb1").await, Some(true));
        assert_eq!(connected(false, "nope").await, None);
        // Found by either key once read by one.
        sql(&store, "UPDATE sso_connections SET status = 'disconnected'").await;
        assert_eq!(connected(true, "la1").await, Some(true));
        assert_eq!(connected(false, "b1").await, Some(true));
        // Org a's change drops org a's connection only.
        sql(&store, "UPDATE sso_connections SET status = 'connected'").await;
        store.disconnect("a", "test", 2).await.unwrap();
        sql(
            &store,
            "UPDATE sso_connections SET status = 'disconnected' WHERE id = 'b1'",
        )
        .await;
        assert_eq!(connected(false, "a1").await, Some(false));
        assert_eq!(connected(true, "la1").await, Some(false));
        assert_eq!(connected(true, "lb1").await, Some(true));
        lookups.set_live(false);
        assert_eq!(connected(true, "lb1").await, Some(false));
    }
}
