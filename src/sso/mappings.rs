//! Each org's rule set, compiled once and kept until a save announces a change (on this
//! instance at commit, on others through NOTIFY): a sign-in never parses or compiles rules.

use std::sync::Arc;

use crate::cache::RevocableCache;
use crate::roles::RoleMapping;
use crate::store::events::{Event, EventSink};
use crate::store::{Store, StoreError};

/// Rule sets are small and orgs few; the bound only guards against a runaway.
const MAX_ORGS: usize = 100_000;

pub(super) struct MappingCache(RevocableCache<Arc<RoleMapping>>);

impl Default for MappingCache {
    fn default() -> Self {
        MappingCache(RevocableCache::new(MAX_ORGS))
    }
}

impl MappingCache {
    /// The org's compiled rule set, or the default (everyone is a viewer) when none was set.
    pub async fn get(&self, store: &Store, org_id: &str) -> Result<Arc<RoleMapping>, StoreError> {
        if let Some(m) = self.0.get(org_id) {
            return Ok(m);
        }
        let generation = self.0.generation();
        let spec = store.role_mapping(org_id).await?.unwrap_or_default();
        let mapping = Arc::new(
            RoleMapping::compile(spec)
                .map_err(|e| StoreError::Corrupt(format!("role mapping of org {org_id}: {e}")))?,
        );
        self.0.insert_since(generation, org_id, mapping.clone());
        Ok(mapping)
    }
}

impl EventSink for MappingCache {
    fn apply(&self, event: &Event) {
        if let Event::RoleMappingChanged { org_id } = event {
            self.0.remove(org_id);
        }
    }

    fn set_live(&self, live: bool) {
        self.0.set_enabled(live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::{Outcome, Role, RoleMappingSpec};

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(
            &url,
            &crate::store::PoolSettings {
                max_connections: 2,
                acquire_timeout: std::time::Duration::from_secs(5),
            },
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    fn spec(default: &str) -> RoleMappingSpec {
        serde_json::from_value(serde_json::json!({"default_role": default, "rules": []})).unwrap()
    }

    #[tokio::test]
    async fn compiled_once_and_dropped_by_the_change_event() {
        let (store, _dir) = store().await;
        let org = crate::store::OrgRow {
            id: "o1".into(),
            slug: "acme".into(),
            name: "Acme".into(),
            created_at: 1,
        };
        store.create_org(&org, &[], "test").await.unwrap();
        let cache = Arc::new(MappingCache::default());
        let sink: Arc<dyn EventSink> = cache.clone();
        store.set_event_sink(&sink);
        let claims = serde_json::json!({});
        let first = cache.get(&store, "o1").await.unwrap();
        assert_eq!(first.evaluate(&claims).outcome, Outcome::Role(Role::Viewer));
        // Cached: the same compiled object.
        assert!(Arc::ptr_eq(&first, &cache.get(&store, "o1").await.unwrap()));
        store
            .put_role_mapping("o1", &spec("developer"), "test", 2)
            .await
            .unwrap();
        let after = cache.get(&store, "o1").await.unwrap();
        assert_eq!(
            after.evaluate(&claims).outcome,
            Outcome::Role(Role::Developer)
        );
        // Not live: never served from memory.
        cache.set_live(false);
        let a = cache.get(&store, "o1").await.unwrap();
        let b = cache.get(&store, "o1").await.unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
    }
}
