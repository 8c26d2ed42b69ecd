//! Persistence. One `Store` over either SQLite or PostgreSQL: queries are written once in SQL
//! both accept (`$n` placeholders, `ON CONFLICT`, `RETURNING`, unix-second BIGINTs, text ids)
//! and run on whichever pool is configured through the `on_db!` macro. Dialect differences live
//! in `migrations/sqlite` vs `migrations/postgres` and in `connect`.

use std::str::FromStr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod audit;
mod connections;
mod enrol_pg;
pub mod events;
mod flows;
mod jwt;
pub mod listen;
mod logout;
mod orgs;
mod rederive;
mod scim;
mod scim_groups;
pub mod sessions;
mod setup_links;
mod users;

pub use audit::{AuditCursor, AuditEvent, AuditPage};
pub use connections::{ClientKey, Connection, ConnectionStatus, DisconnectCounts, TokenAuth};
pub use flows::FlowRow;
pub use jwt::{JwtSecretRow, SigningKeyRow};
pub use logout::{LogoutEnded, LogoutTarget};
pub use orgs::OrgRow;
pub use rederive::Rederived;
pub use scim::{
    ProvisionedRow, Returning, ScimTokenRow, ScimUserRow, ScimUserWrite, SignInState, UserIndex,
};
pub use scim_groups::{GroupChange, GroupIndex, ScimGroupRow};
pub use setup_links::{DraftPart, SetupLinkRow, TestFlowRow};
pub use users::{EnrolOutcome, MemberRow, NewLogin};

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool. The body is compiled once per backend,
/// so the same query text is type-checked against both drivers.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// Appends an audit event inside an open transaction (`$tx`).
macro_rules! audit_in_tx {
    ($tx:expr, $org_id:expr, $actor:expr, $action:expr, $detail:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO audit_events (org_id, actor, action, detail, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($org_id)
        .bind($actor)
        .bind($action)
        .bind($detail.to_string())
        .bind($now)
        .execute(&mut *$tx)
        .await
    };
}
pub(crate) use audit_in_tx;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database did not answer in time or the connection broke: the caller should answer 503.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value could not be read back (corruption or a bug).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(sqlx::Error),
}

/// The session layer failed: its store is this database, so treat it as unavailable.
impl From<tower_sessions::session::Error> for StoreError {
    fn from(e: tower_sessions::session::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let err = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            // PostgreSQL going away under a query: admin shutdown, crash, starting up,
            // connection exceptions (SQLSTATE classes 57P and 08).
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(
                db.constraint()
                    .map(str::to_owned)
                    .unwrap_or_else(|| db.message().to_owned()),
            ),
            _ => StoreError::Other(e),
        };
        // Every database error passes here once: the count operators alert on.
        crate::telemetry::metrics::db_error(match &err {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Conflict(_) => "conflict",
            StoreError::Corrupt(_) | StoreError::Other(_) => "other",
        });
        err
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    db: Db,
    /// Weak: the services that listen hold this store, and a strong reference back would keep
    /// both (and the pool's connections) alive for ever.
    sink: Arc<OnceLock<Weak<dyn events::EventSink>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Store {
    /// Opens the pool for `url` (`sqlite://…` or `postgres://…`). SQLite files are created when
    /// missing, with WAL and a busy timeout so concurrent writers wait instead of failing.
    pub async fn connect(url: &str, pool: &PoolSettings) -> anyhow::Result<Store> {
        let db = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            if let Some(parent) = opts.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)?;
                }
            }
            Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(pool.max_connections)
                    .acquire_timeout(pool.acquire_timeout)
                    .connect_with(opts)
                    .await?,
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(pool.max_connections)
                    .acquire_timeout(pool.acquire_timeout)
                    .connect(url)
                    .await?,
            )
        } else {
            anyhow::bail!("database_url must start with sqlite:// or postgres://");
        };
        Ok(Store {
            db,
            sink: Arc::default(),
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
            Db::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Sets who is told of committed changes in this process (once, at start).
    /// The caller keeps the sink alive for as long as the service runs.
    pub fn set_event_sink(&self, sink: &Arc<dyn events::EventSink>) {
        let _ = self.sink.set(Arc::downgrade(sink));
    }

    /// Tells this process of a committed change; other instances hear it through NOTIFY.
    fn announce(&self, event: &events::Event) {
        if let Some(sink) = self.sink.get().and_then(Weak::upgrade) {
            sink.apply(event);
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The pool's open connections: (in use, idle).
    pub fn pool_connections(&self) -> (u32, u32) {
        on_db!(&self.db, p => {
            let idle = u32::try_from(p.num_idle()).unwrap_or(u32::MAX);
            (p.size().saturating_sub(idle), idle)
        })
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        on_db!(&self.db, p => sqlx::query("SELECT 1").execute(p).await.is_ok())
    }

    /// Deletes expired sessions, login flows, test sign-ins and logout-token `jti`s; run
    /// periodically.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        let n = on_db!(&self.db, p => {
            let a = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(p).await?;
            let b = sqlx::query("DELETE FROM login_flows WHERE expires_at <= $1").bind(now).execute(p).await?;
            let c = sqlx::query("DELETE FROM logout_jtis WHERE expires_at <= $1").bind(now).execute(p).await?;
            let d = sqlx::query("DELETE FROM test_flows WHERE expires_at <= $1").bind(now).execute(p).await?;
            a.rows_affected() + b.rows_affected() + c.rows_affected() + d.rows_affected()
        });
        Ok(n + self.purge_setup_links(now).await?)
    }
}

/// A fresh random identifier for a row (128 bits, base64url).
pub fn new_id() -> String {
    crate::crypto::random_token(16)
}
