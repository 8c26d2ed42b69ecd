//! Changes other instances must act on at once (PostgreSQL `NOTIFY` on one channel). Each is
//! sent inside the transaction that makes the change, so it is delivered exactly when the change
//! commits. SQLite runs one process: nothing to send there.

use serde::{Deserialize, Serialize};

pub const CHANNEL: &str = "orgsso_events";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// One session ended (logout, new id at sign-in).
    SessionEnded { sid_hash: String },
    /// A session was stored (sign-in). Announced in this process only, never by NOTIFY: it drops
    /// a remembered "no such session" for that id hash. Other instances need not hear it: a
    /// session id is 128 fresh random bits whose cookie reaches the browser only after the row
    /// is committed, so no instance can have asked for it before (short of guessing it), and a
    /// remembered miss lives a few seconds at most (`session::cache`'s `NEGATIVE_TTL`). A
    /// NOTIFY here would add a statement to every sign-in for nothing.
    SessionStarted { sid_hash: String },
    /// An org was created: a remembered "no such org" for its slug is dropped on every instance,
    /// and so is what is remembered of the domains it may have claimed.
    OrgCreated { slug: String },
    /// An org's claimed (verified) email domains were replaced.
    DomainsChanged { org_id: String },
    /// An org's SSO connection was added, changed (its settings, a learned token endpoint
    /// method) or disconnected.
    ConnectionChanged { org_id: String },
    /// Every SSO session of an org ended (disconnect).
    OrgSessionsEnded { org_id: String },
    /// An org's JWT secrets were added or removed.
    SecretsChanged { org_id: String },
    /// The service's signing key was rotated.
    KeysRotated,
    /// An org's role mapping was saved.
    RoleMappingChanged { org_id: String },
    /// Members' roles (or whether the rules deny them) changed: one member at sign-in, or every
    /// member of the org (`user_id` absent) at a rule save or disconnect. Whatever caches roles
    /// drops what it holds for them.
    MemberRolesChanged {
        org_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
}

/// Who acts on changes in this process (the services' caches). The store calls it right after
/// each change commits, so the instance that made a change never serves it stale, and handlers
/// need not remember to invalidate anything themselves.
pub trait EventSink: Send + Sync {
    fn apply(&self, event: &Event);
    /// Whether every change is heard (always on SQLite; on PostgreSQL while the listener is
    /// connected). A sink that is not live must bypass its caches; it starts live.
    fn set_live(&self, live: bool);
}

/// Several sinks told of every change in turn.
pub struct Sinks(pub Vec<std::sync::Arc<dyn EventSink>>);

impl EventSink for Sinks {
    fn apply(&self, event: &Event) {
        for s in &self.0 {
            s.apply(event);
        }
    }

    fn set_live(&self, live: bool) {
        for s in &self.0 {
            s.set_live(live);
        }
    }
}

impl Event {
    pub fn payload(&self) -> String {
        serde_json::to_string(self).expect("events serialise")
    }
}

/// Sends `$event` within the open transaction `$tx` when `$db` is PostgreSQL.
macro_rules! notify_in_tx {
    ($db:expr, $tx:expr, $event:expr) => {
        if matches!($db, $crate::store::Db::Postgres(_)) {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind($crate::store::events::CHANNEL)
                .bind($event.payload())
                .execute(&mut *$tx)
                .await?;
        }
    };
}
pub(crate) use notify_in_tx;
