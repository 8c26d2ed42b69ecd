//! Typed settings: `config/default.toml` (compiled in), an optional file, then `ORGSSO_*`
//! environment variables. Parsed once at start into a tree the rest of the service reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use url::Url;

use crate::crypto::Secret;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub listen: String,
    pub public_url: Url,
    pub database_url: Secret,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub admin_token: Option<Secret>,
    #[serde(default)]
    pub secret_key: Option<Secret>,
    pub log_format: LogFormat,
    pub database: DatabaseSettings,
    pub session: SessionSettings,
    pub login: LoginSettings,
    pub oidc: OidcSettings,
    pub tokens: TokenSettings,
    pub audit: AuditSettings,
    pub cache: CacheSettings,
    pub throttle: crate::throttle::ThrottleSettings,
    pub metrics: MetricsSettings,
}

/// Where `GET /metrics` is served, and how finely.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// Its own listener (`ORGSSO_METRICS_LISTEN`); then never on the main one.
    #[serde(default)]
    pub listen: Option<String>,
    /// Without `listen`: served on the main listener only when this is on.
    pub expose_on_main: bool,
    /// An `org` label (the slug) on sign-in and verify counters: one series per org.
    pub per_org_labels: bool,
}

impl MetricsSettings {
    /// The separate listener's address, if one is set (an empty value is none).
    pub fn listen(&self) -> Option<&str> {
        self.listen.as_deref().filter(|l| !l.trim().is_empty())
    }

    /// Whether the main listener answers `/metrics`.
    pub fn on_main(&self) -> bool {
        self.listen().is_none() && self.expose_on_main
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CacheSettings {
    /// Memory for the verify path's caches, in MiB, split by [`CacheSettings::budgets`].
    pub memory_mb: u64,
}

/// Byte budgets of the verify path's caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBudgets {
    /// Token verdicts: most of it, one entry per live token (a few hundred bytes each).
    pub verdicts: u64,
    /// Live sessions (only those used in the last 10 s are worth keeping).
    pub live_sessions: u64,
    /// Refusals of bad tokens (60 s each).
    pub refusals: u64,
    /// "No such session" (5 s each).
    pub absent_sessions: u64,
    /// "No such org" (5 s each).
    pub unknown_orgs: u64,
}

impl CacheSettings {
    /// The split, in sixteenths: verdicts 10, live sessions 2, refusals 2, unknown sessions 1,
    /// unknown orgs 1.
    pub fn budgets(&self) -> CacheBudgets {
        let sixteenth = self.memory_mb.saturating_mul(1 << 20) / 16;
        CacheBudgets {
            verdicts: sixteenth * 10,
            live_sessions: sixteenth * 2,
            refusals: sixteenth * 2,
            absent_sessions: sixteenth,
            unknown_orgs: sixteenth,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditSettings {
    /// Audit events older than this many days are deleted by the periodic purge; 0 keeps them.
    pub retention_days: u64,
}

impl AuditSettings {
    /// Events created before this unix second are due for deletion; `None` keeps every event.
    pub fn cutoff(&self, now: i64) -> Option<i64> {
        let days = i64::try_from(self.retention_days).unwrap_or(i64::MAX);
        (days > 0).then(|| now.saturating_sub(days.saturating_mul(86_400)))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenSettings {
    pub access_token_ttl_secs: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    pub cookie_name: String,
    pub idle_timeout_secs: u64,
    pub absolute_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LoginSettings {
    pub flow_ttl_secs: u64,
    /// Sign-ins in progress one connection may have at once (each is a `login_flows` row).
    pub max_pending_flows_per_connection: u32,
    /// Whether the IdP a customer enters through a setup link may be on an internal address
    /// (an IdP inside the operator's own network; tests). Off: public addresses only, as for
    /// org admins.
    #[serde(default)]
    pub setup_links_internal_idp: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OidcSettings {
    pub http_timeout_secs: u64,
    pub clock_leeway_secs: u64,
    pub max_id_token_age_secs: u64,
    pub jwks_refetch_cooldown_secs: u64,
    pub jwks_refetch_floor_ms: u64,
    pub jwks_max_age_secs: u64,
    pub jwks_min_refresh_secs: u64,
    pub jwks_max_refresh_secs: u64,
    pub jwks_max_stale_secs: u64,
}

impl OidcSettings {
    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs(self.http_timeout_secs)
    }
}

impl Settings {
    /// Whether `given` is the configured admin token (constant time; never with none or "").
    pub fn is_admin_token(&self, given: &str) -> bool {
        self.admin_token
            .as_ref()
            .is_some_and(|t| !t.expose().is_empty() && crate::crypto::ct_eq(given, t.expose()))
    }

    /// Defaults, then `file` when given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, config::ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        let settings: Settings = builder
            .add_source(
                Environment::with_prefix("ORGSSO")
                    .prefix_separator("_")
                    .separator("__"),
            )
            // DESIGN.md's name for it (the section form ORGSSO_METRICS__LISTEN works too).
            .set_override_option(
                "metrics.listen",
                std::env::var("ORGSSO_METRICS_LISTEN").ok(),
            )?
            .build()?
            .try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// The compiled-in defaults alone (tests start from these).
    pub fn defaults() -> Settings {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("config/default.toml is valid")
    }

    fn check(&self) -> Result<(), config::ConfigError> {
        let bad = |m: String| Err(config::ConfigError::Message(m));
        if !matches!(self.public_url.scheme(), "http" | "https") {
            return bad(format!(
                "public_url must be an http(s) URL, got {}",
                self.public_url
            ));
        }
        if self.session.idle_timeout_secs == 0 || self.session.absolute_timeout_secs == 0 {
            return bad("session timeouts must be greater than zero".into());
        }
        if self.tokens.access_token_ttl_secs == 0 || self.tokens.access_token_ttl_secs > 86_400 {
            return bad("tokens.access_token_ttl_secs must be between 1 and 86400".into());
        }
        if self.database.max_connections < 2 {
            return bad("database.max_connections must be at least 2 (on PostgreSQL one connection listens for other instances' changes)".into());
        }
        if self.oidc.jwks_refetch_floor_ms == 0 {
            return bad("oidc.jwks_refetch_floor_ms must be greater than zero (it bounds JWKS fetches caused by tokens with unknown kids)".into());
        }
        if self.cache.memory_mb == 0 || self.cache.memory_mb > 1 << 20 {
            return bad("cache.memory_mb must be between 1 and 1048576".into());
        }
        if self.login.flow_ttl_secs == 0 {
            return bad("login.flow_ttl_secs must be greater than zero".into());
        }
        if self.login.max_pending_flows_per_connection == 0 {
            return bad("login.max_pending_flows_per_connection must be greater than zero".into());
        }
        if let Err(m) = self.throttle.check() {
            return bad(m);
        }
        Ok(())
    }

    /// Cookies carry `Secure` when users reach the service over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

#[cfg(test)]
mod tests {
    use super::{AuditSettings, CacheBudgets, CacheSettings, MetricsSettings};

    #[test]
    fn metrics_are_off_the_main_listener_unless_asked_and_never_beside_their_own() {
        let defaults = super::Settings::defaults().metrics;
        assert_eq!(defaults.listen(), None);
        assert!(!defaults.expose_on_main && !defaults.per_org_labels);
        assert!(!defaults.on_main());
        for (listen, expose_on_main, on_main, own) in [
            (None, true, true, None),
            (Some(""), true, true, None),
            (Some(" "), false, false, None),
            (Some("127.0.0.1:9464"), true, false, Some("127.0.0.1:9464")),
            (Some("127.0.0.1:9464"), false, false, Some("127.0.0.1:9464")),
        ] {
            let m = MetricsSettings {
                listen: listen.map(str::to_owned),
                expose_on_main,
                per_org_labels: false,
            };
            assert_eq!(m.on_main(), on_main, "{listen:?} {expose_on_main}");
            assert_eq!(m.listen(), own, "{listen:?}");
        }
    }

    #[test]
    fn cache_budgets_split_the_memory_setting() {
        const MIB: u64 = 1 << 20;
        for (mb, want) in [
            (
                64,
                CacheBudgets {
                    verdicts: 40 * MIB,
                    live_sessions: 8 * MIB,
                    refusals: 8 * MIB,
                    absent_sessions: 4 * MIB,
                    unknown_orgs: 4 * MIB,
                },
            ),
            (
                1,
                CacheBudgets {
                    verdicts: 10 * MIB / 16,
                    live_sessions: MIB / 8,
                    refusals: MIB / 8,
                    absent_sessions: MIB / 16,
                    unknown_orgs: MIB / 16,
                },
            ),
        ] {
            let got = CacheSettings { memory_mb: mb }.budgets();
            assert_eq!(got, want, "{mb} MiB");
            let sum = got.verdicts
                + got.live_sessions
                + got.refusals
                + got.absent_sessions
                + got.unknown_orgs;
            assert_eq!(sum, mb * MIB, "{mb} MiB is used whole");
        }
        assert_eq!(
            super::Settings::defaults().cache.memory_mb,
            64,
            "documented default"
        );
    }

    #[test]
    fn audit_retention_cutoff() {
        let now = 1_800_000_000;
        for (days, want) in [
            (0, None),
            (1, Some(now - 86_400)),
            (400, Some(now - 400 * 86_400)),
            (u64::MAX, Some(now - i64::MAX)),
        ] {
            let got = AuditSettings {
                retention_days: days,
            }
            .cutoff(now);
            assert_eq!(got, want, "{days} days");
        }
        assert_eq!(
            super::Settings::defaults().audit.retention_days,
            400,
            "documented default"
        );
    }
}
