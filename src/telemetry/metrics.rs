//! Prometheus metrics (`GET /metrics`, served by `http::metrics`).
//!
//! The `metrics` crate's recorder is global to the process: [`install`] sets it once (tests run
//! many apps in one process), and any module may emit through the functions here without
//! importing `http`. Label values are `&'static str` from bounded sets; the only value taken from
//! data is an org slug, and only when `[metrics] per_org_labels` is on (the caller passes it).
//! The verify path uses handles registered once at install (an atomic add, no lookup, no
//! allocation); cold paths use the macros.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics::{Counter, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const SIGN_INS_STARTED: &str = "orgsso_sign_ins_started_total";
pub const SIGN_INS_FINISHED: &str = "orgsso_sign_ins_finished_total";
pub const VERIFY_DECISIONS: &str = "orgsso_verify_decisions_total";
pub const VERIFY_SECONDS: &str = "orgsso_verify_duration_seconds";
pub const JWKS_FETCHES: &str = "orgsso_jwks_fetches_total";
pub const JWKS_FETCH_FAILURES: &str = "orgsso_jwks_fetch_failures_total";
pub const JWKS_STALE_KEY_USES: &str = "orgsso_jwks_stale_key_uses_total";
pub const CACHE_LOOKUPS: &str = "orgsso_cache_lookups_total";
pub const LIVE_SESSIONS: &str = "orgsso_live_sessions";
pub const SCIM_REQUESTS: &str = "orgsso_scim_requests_total";
pub const THROTTLED: &str = "orgsso_throttled_requests_total";
pub const DB_POOL_CONNECTIONS: &str = "orgsso_db_pool_connections";
pub const DB_ERRORS: &str = "orgsso_db_errors_total";
pub const BUILD_INFO: &str = "orgsso_build_info";

/// Verify latencies: a cache hit takes tens of microseconds, a database or key fetch
/// milliseconds, a stalled IdP seconds.
const VERIFY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// What the verify endpoint answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
    UnknownOrg,
    Unavailable,
}

/// What the caller presented (for a denial, the class of reason: a session that is not live,
/// a refused token, or nothing usable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    Cookie,
    Bearer,
    None,
}

const DECISIONS: [Decision; 4] = [
    Decision::Allowed,
    Decision::Denied,
    Decision::UnknownOrg,
    Decision::Unavailable,
];
const CREDENTIALS: [Credential; 3] = [Credential::Cookie, Credential::Bearer, Credential::None];

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::UnknownOrg => "unknown_org",
            Decision::Unavailable => "unavailable",
        }
    }
}

impl Credential {
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::Cookie => "cookie",
            Credential::Bearer => "bearer",
            Credential::None => "none",
        }
    }
}

/// The caches whose hits and misses are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    Verdicts,
    Sessions,
}

/// Handles of the hot path, registered once.
struct Hot {
    /// `[decision][credential]`; `None` for pairs the handler never produces (an unknown org
    /// is answered before any credential is read), so no always-zero series is shown.
    verify: [[Option<Counter>; 3]; 4],
    verify_seconds: Histogram,
    /// `[cache][hit as usize]`.
    cache: [[Counter; 2]; 2],
}

struct Installed {
    handle: PrometheusHandle,
    hot: Hot,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle) and describes
/// every metric. Call before building the services, so their handles are live.
pub fn install() -> &'static PrometheusHandle {
    &INSTALLED
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(VERIFY_SECONDS.into()), VERIFY_BUCKETS)
                .expect("the bucket list is not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                // Another recorder came first (an embedding program): this one renders nothing.
                tracing::warn!("a metrics recorder was already installed: /metrics stays empty");
            }
            describe();
            // Histogram samples wait in a queue until drained: drained here even if nobody scrapes.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .expect("spawn the metrics upkeep thread");
            Installed {
                handle,
                hot: Hot::register(),
            }
        })
        .handle
}

/// The exposition text (Prometheus text format 0.0.4), or `None` when never installed.
pub fn render() -> Option<String> {
    INSTALLED.get().map(|i| i.handle.render())
}

impl Hot {
    fn register() -> Hot {
        let verify = DECISIONS.map(|d| {
            CREDENTIALS.map(|c| {
                let happens = match d {
                    Decision::Allowed => c != Credential::None,
                    Decision::UnknownOrg => c == Credential::None,
                    Decision::Denied | Decision::Unavailable => true,
                };
                happens.then(|| verify_counter(d, c, None))
            })
        });
        let cache = [Cache::Verdicts, Cache::Sessions].map(|c| {
            let name = match c {
                Cache::Verdicts => "verdicts",
                Cache::Sessions => "sessions",
            };
            [
                counter!(CACHE_LOOKUPS, "cache" => name, "result" => "miss"),
                counter!(CACHE_LOOKUPS, "cache" => name, "result" => "hit"),
            ]
        });
        Hot {
            verify,
            verify_seconds: metrics::histogram!(VERIFY_SECONDS),
            cache,
        }
    }
}

fn describe() {
    describe_counter!(
        SIGN_INS_STARTED,
        "Sign-ins started at a login URL, by outcome (redirected to the IdP, or why not)"
    );
    describe_counter!(
        SIGN_INS_FINISHED,
        "Sign-ins finished at the callback, by outcome (success, denied, or the failure code)"
    );
    describe_counter!(
        VERIFY_DECISIONS,
        "Verify endpoint answers, by outcome and the credential presented"
    );
    describe_histogram!(
        VERIFY_SECONDS,
        Unit::Seconds,
        "Time to answer the verify endpoint"
    );
    describe_counter!(JWKS_FETCHES, "JWKS fetches started, by key URL host");
    describe_counter!(
        JWKS_FETCH_FAILURES,
        "JWKS fetches that failed, by key URL host"
    );
    describe_counter!(
        JWKS_STALE_KEY_USES,
        "Keys used past their freshness because the key URL could not be refreshed, by host"
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Lookups in the verify path's caches, by cache and result (hit or miss)"
    );
    describe_gauge!(
        LIVE_SESSIONS,
        "Unexpired sessions in the database (counted at scrape, at most every 10 s)"
    );
    describe_counter!(
        SCIM_REQUESTS,
        "SCIM requests answered, by status class and scimType"
    );
    describe_counter!(THROTTLED, "Requests answered 429, by throttle kind");
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database pool connections, by state (in_use or idle), read at scrape"
    );
    describe_counter!(DB_ERRORS, "Database errors, by kind");
    describe_gauge!(BUILD_INFO, "Always 1; the version in a label");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Present from the start (at zero), so rates and alerts have a series to read.
    for outcome in ["success", "denied"] {
        counter!(SIGN_INS_FINISHED, "outcome" => outcome).absolute(0);
    }
    counter!(SIGN_INS_STARTED, "outcome" => "redirected").absolute(0);
    for kind in ["sign_in_starts", "credentials", "pending_sign_ins"] {
        counter!(THROTTLED, "kind" => kind).absolute(0);
    }
    for kind in ["unavailable", "conflict", "other"] {
        counter!(DB_ERRORS, "kind" => kind).absolute(0);
    }
}

/// A verify answer and how long it took. `org` is the slug when per-org labels are on and
/// the org exists (never the slug of an unknown org: that is caller input).
pub fn verify_decision(
    decision: Decision,
    credential: Credential,
    org: Option<&str>,
    took: Duration,
) {
    let Some(i) = INSTALLED.get() else { return };
    match (org, &i.hot.verify[decision as usize][credential as usize]) {
        (None, Some(registered)) => registered.increment(1),
        (org, _) => verify_counter(decision, credential, org).increment(1),
    }
    i.hot.verify_seconds.record(took.as_secs_f64());
}

fn verify_counter(decision: Decision, credential: Credential, org: Option<&str>) -> Counter {
    let (outcome, credential) = (decision.as_str(), credential.as_str());
    match org {
        None => counter!(VERIFY_DECISIONS, "outcome" => outcome, "credential" => credential),
        Some(slug) => {
            counter!(VERIFY_DECISIONS, "outcome" => outcome, "credential" => credential, "org" => slug.to_owned())
        }
    }
}

/// A lookup in one of the verify path's caches.
pub fn cache_lookup(cache: Cache, hit: bool) {
    if let Some(i) = INSTALLED.get() {
        i.hot.cache[cache as usize][usize::from(hit)].increment(1);
    }
}

/// A sign-in start: `redirected`, `throttled`, or the `LoginError` code.
pub fn sign_in_started(outcome: &'static str) {
    counter!(SIGN_INS_STARTED, "outcome" => outcome).increment(1);
}

/// A sign-in's end at the callback: `success`, `denied`, or the `LoginError` code; `org` as
/// for [`verify_decision`].
pub fn sign_in_finished(outcome: &'static str, org: Option<&str>) {
    match org {
        None => counter!(SIGN_INS_FINISHED, "outcome" => outcome).increment(1),
        Some(slug) => {
            counter!(SIGN_INS_FINISHED, "outcome" => outcome, "org" => slug.to_owned()).increment(1)
        }
    }
}

/// The counters of one key URL (registered when its cache is made: fetches are rare, stale
/// uses can be frequent while a provider is down).
#[derive(Clone)]
pub struct JwksCounters {
    pub fetches: Counter,
    pub failures: Counter,
    pub stale_uses: Counter,
}

/// At most this many distinct key URL hosts get series of their own in a process; later ones
/// are counted under `other`. Key URLs come from discovery documents that org admins and setup
/// link holders (no account) choose, so the label set must not grow with what they type.
pub const MAX_JWKS_HOSTS: usize = 256;

/// The host label for a key URL's host: itself while fewer than [`MAX_JWKS_HOSTS`] hosts are
/// labelled, else `other`.
fn jwks_host_label(host: &str) -> String {
    static HOSTS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut hosts = HOSTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if hosts.contains(host) {
        return host.to_owned();
    }
    if hosts.len() < MAX_JWKS_HOSTS {
        hosts.insert(host.to_owned());
        return host.to_owned();
    }
    "other".to_owned()
}

impl JwksCounters {
    /// `host`: the key URL's host, one series per host up to [`MAX_JWKS_HOSTS`].
    pub fn for_host(host: &str) -> JwksCounters {
        let host = jwks_host_label(host);
        JwksCounters {
            fetches: counter!(JWKS_FETCHES, "host" => host.clone()),
            failures: counter!(JWKS_FETCH_FAILURES, "host" => host.clone()),
            stale_uses: counter!(JWKS_STALE_KEY_USES, "host" => host),
        }
    }
}

/// A request answered 429: `sign_in_starts`, `credentials` (failed tokens or passwords from
/// one address) or `pending_sign_ins` (a connection's flows full).
pub fn throttled(kind: &'static str) {
    counter!(THROTTLED, "kind" => kind).increment(1);
}

/// A SCIM answer: its status class and `scimType` (`none` when it has none).
pub fn scim_request(status: u16, scim_type: &'static str) {
    let class = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!(SCIM_REQUESTS, "status_class" => class, "scim_type" => scim_type).increment(1);
}

/// A database error: `unavailable`, `conflict` or `other`.
pub fn db_error(kind: &'static str) {
    counter!(DB_ERRORS, "kind" => kind).increment(1);
}

/// The pool's connections, read at scrape.
pub fn db_pool(in_use: u32, idle: u32) {
    gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
}

/// The count of unexpired sessions.
pub fn live_sessions(n: u64) {
    gauge!(LIVE_SESSIONS).set(n as f64);
}

/// The value of one series as rendered (`name{labels}` exactly as the exporter writes it),
/// 0 when absent: for unit tests that compare before and after.
#[cfg(test)]
pub(crate) fn value_of(series: &str) -> f64 {
    render()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_text_has_the_hot_path_series_and_build_info() {
        install();
        verify_decision(
            Decision::Allowed,
            Credential::Cookie,
            None,
            Duration::from_micros(80),
        );
        cache_lookup(Cache::Verdicts, true);
        let text = render().expect("installed");
        for want in [
            "orgsso_verify_decisions_total{outcome=\"allowed\",credential=\"cookie\"}",
            "orgsso_verify_duration_seconds_bucket{le=\"0.0001\"}",
            "orgsso_cache_lookups_total{cache=\"verdicts\",result=\"hit\"}",
            "orgsso_build_info{version=\"",
            "# TYPE orgsso_verify_duration_seconds histogram",
        ] {
            assert!(text.contains(want), "{want} missing in:\n{text}");
        }
    }
}
