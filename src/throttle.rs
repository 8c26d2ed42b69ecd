//! Per-address throttles for credential guessing and anonymous sign-in starts, on `governor`
//! (GCRA; its keyed state is the only state kept here). A leaf module: no axum, no orgsso
//! imports; `http::client_addr` finds the address, callers decide what to throttle.
//!
//! Only failures are counted: an address with the right token is never slowed. Each address
//! has `free_failures` in a row, then waits `failure_delay` per failure; past
//! `long_free_failures` it waits `long_failure_delay` per failure (0 → 10 s → 2 min with the
//! defaults). Whether an address may try now is asked of governor without spending a cell (a
//! second limiter over the same state that never writes, see `Shared`), so the arithmetic stays
//! governor's.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::{DefaultKeyedStateStore, ShrinkableKeyedStateStore};
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use serde::Deserialize;

type Keyed = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;
type Store = DefaultKeyedStateStore<IpAddr>;

/// One governor state store seen by two limiters: the one that writes (`dry == false`) and one
/// that only measures, for "may this address try now?" without spending its budget.
struct Shared {
    store: Arc<Store>,
    dry: bool,
}

impl StateStore for Shared {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if !self.dry {
            return self.store.measure_and_replace(key, f);
        }
        // An unknown address is fresh: measure it without making an entry for it.
        let Some(entry) = self.store.get(key) else {
            return f(None).map(|(t, _)| t);
        };
        // Refusing to replace keeps the state: the outcome is carried out in the error.
        let measured = entry.measure_and_replace(&NotKeyed::NonKey, |v| match f(v) {
            Ok((t, _)) => Err(Ok::<T, E>(t)),
            Err(e) => Err(Err(e)),
        });
        match measured {
            Ok(()) => unreachable!("the closure never accepts"),
            Err(outcome) => outcome,
        }
    }
}

impl ShrinkableKeyedStateStore<IpAddr> for Shared {
    fn retain_recent(&self, drop_below: Nanos) {
        self.store.retain_recent(drop_below)
    }
    fn shrink_to_fit(&self) {
        self.store.shrink_to_fit()
    }
    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&*self.store)
    }
    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&*self.store)
    }
}

/// The `[throttle]` settings (documented in `config/default.toml`).
#[derive(Debug, Clone, Deserialize)]
pub struct ThrottleSettings {
    /// Failures an address may make in a row before it waits.
    pub free_failures: u32,
    /// Each failure past `free_failures` waits this long (seconds).
    pub failure_delay_secs: u64,
    /// Failures, over a longer time, before the long delay applies.
    pub long_free_failures: u32,
    /// Each failure past `long_free_failures` waits this long (seconds).
    pub long_failure_delay_secs: u64,
    /// Sign-ins (`GET /sso/{login_id}`) one address may start per minute (also the burst).
    pub sign_in_starts_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed (CIDRs, e.g. "10.0.0.0/8", "127.0.0.1/32"):
    /// a list in a file, or one comma-separated string (how an environment variable says it).
    #[serde(default, deserialize_with = "list_or_commas")]
    pub trusted_proxies: Vec<String>,
}

fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match Given::deserialize(d)? {
        Given::List(v) => v,
        Given::Commas(s) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
    })
}

impl ThrottleSettings {
    /// A setting that makes no sense, said in a sentence.
    pub fn check(&self) -> Result<(), String> {
        if self.free_failures == 0
            || self.long_free_failures == 0
            || self.sign_in_starts_per_minute == 0
        {
            return Err("throttle: free_failures, long_free_failures and sign_in_starts_per_minute must be greater than zero".into());
        }
        if !(1..=3_600).contains(&self.failure_delay_secs)
            || !(1..=86_400).contains(&self.long_failure_delay_secs)
        {
            return Err("throttle: failure_delay_secs must be 1..=3600 and long_failure_delay_secs 1..=86400".into());
        }
        self.proxies().map(|_| ())
    }

    fn proxies(&self) -> Result<Vec<IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("throttle.trusted_proxies: {p:?} is not an address or CIDR")
                    })
            })
            .collect()
    }
}

/// Refused for now: try again after this long (the `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds, at least 1, as `Retry-After` wants them.
    pub fn retry_after_secs(&self) -> u64 {
        let up = u64::from(self.retry_after.subsec_nanos() > 0);
        (self.retry_after.as_secs() + up).max(1)
    }
}

/// One tier: the limiter that charges failures and its dry twin over the same state.
struct Tier {
    charge: RateLimiter<IpAddr, Shared, DefaultClock>,
    peek: RateLimiter<IpAddr, Shared, DefaultClock>,
}

impl Tier {
    fn new(clock: &DefaultClock, delay_secs: u64, free: u32) -> Tier {
        let quota = Quota::with_period(Duration::from_secs(delay_secs))
            .expect("delay checked non-zero")
            .allow_burst(NonZeroU32::new(free).unwrap_or(NonZeroU32::MIN));
        let store = Arc::new(Store::default());
        let shared = |dry| Shared {
            store: store.clone(),
            dry,
        };
        Tier {
            charge: RateLimiter::new(quota, shared(false), clock.clone()),
            peek: RateLimiter::new(quota, shared(true), clock.clone()),
        }
    }
}

/// The per-address throttles. Shared (`Arc`) by every handler that checks a credential.
pub struct Throttle {
    tiers: [Tier; 2],
    starts: Keyed,
    trusted: Vec<IpNet>,
    clock: DefaultClock,
}

impl Throttle {
    pub fn new(s: &ThrottleSettings) -> Result<Throttle, String> {
        s.check()?;
        let clock = DefaultClock::default();
        let per_minute = NonZeroU32::new(s.sign_in_starts_per_minute).unwrap_or(NonZeroU32::MIN);
        Ok(Throttle {
            tiers: [
                Tier::new(&clock, s.failure_delay_secs, s.free_failures),
                Tier::new(&clock, s.long_failure_delay_secs, s.long_free_failures),
            ],
            starts: RateLimiter::dashmap(Quota::per_minute(per_minute)),
            trusted: s.proxies()?,
            clock,
        })
    }

    /// Before checking a credential from `addr`: `Err` means answer 429 without looking at
    /// the credential at all. Even the right token is refused while its address waits:
    /// otherwise the guesser would still learn, at full speed, which guess is right (200
    /// versus 429). The right token from another address is unaffected.
    pub fn check(&self, addr: IpAddr) -> Result<(), Throttled> {
        let key = bucket(addr);
        for tier in &self.tiers {
            tier.peek
                .check_key(&key)
                .map_err(|n| self.throttled(CREDENTIALS, n.wait_time_from(self.clock.now())))?;
        }
        Ok(())
    }

    /// After a wrong credential from `addr` (which passed `check`): charges the failure.
    /// `Err` only when another request from the address spent the last free failure first.
    pub fn failed(&self, addr: IpAddr) -> Result<(), Throttled> {
        let key = bucket(addr);
        let mut result = Ok(());
        for tier in &self.tiers {
            if let Err(n) = tier.charge.check_key(&key) {
                result = Err(self.throttled(CREDENTIALS, n.wait_time_from(self.clock.now())));
            }
        }
        result
    }

    /// After the right credential: successes cost nothing (an address that failed a few times
    /// and then got it right keeps its count until it drains). Kept so callers, the SCIM
    /// bearer too, state every outcome, and a later policy can use it without their change.
    pub fn succeeded(&self, _addr: IpAddr) {}

    /// Before starting a sign-in from `addr` (each start may cost a `login_flows` row).
    pub fn start_sign_in(&self, addr: IpAddr) -> Result<(), Throttled> {
        self.starts
            .check_key(&bucket(addr))
            .map_err(|n| self.throttled("sign_in_starts", n.wait_time_from(self.clock.now())))
    }

    /// The client's address: `X-Forwarded-For`'s rightmost address that is not itself a
    /// trusted proxy, when (and only when) the TCP peer is a trusted proxy.
    pub fn client_addr(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        client_addr(&self.trusted, peer, forwarded_for)
    }

    /// Forgets addresses whose state is back to fresh: bounds memory (run periodically).
    pub fn retain_recent(&self) {
        for tier in &self.tiers {
            tier.charge.retain_recent();
            tier.charge.shrink_to_fit();
        }
        self.starts.retain_recent();
        self.starts.shrink_to_fit();
    }

    /// Addresses currently remembered (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.tiers.iter().map(|t| t.charge.len()).sum::<usize>() + self.starts.len()
    }

    /// Every `Err` of this type is answered 429: counted here, by kind.
    fn throttled(&self, kind: &'static str, wait: Duration) -> Throttled {
        crate::telemetry::metrics::throttled(kind);
        Throttled { retry_after: wait }
    }
}

/// The metrics' throttle kind of failed credentials (admin token, console, SCIM tokens).
const CREDENTIALS: &str = "credentials";

/// IPv6 clients are keyed by their /64: one subscriber holds a whole /64, so keying single
/// addresses would hand a guesser 2^64 fresh budgets (and fill memory).
fn bucket(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// `forwarded_for`: every `X-Forwarded-For` header value in order (each may list several).
/// Walks from the right past trusted proxies; an entry that is not an address stops the walk
/// at the last address known good (a proxy that wrote garbage is not believed further).
fn client_addr(trusted: &[IpNet], peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(a));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(addr) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = addr;
        if !is_trusted(&addr) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ThrottleSettings {
        ThrottleSettings {
            free_failures: 3,
            failure_delay_secs: 10,
            long_free_failures: 6,
            long_failure_delay_secs: 120,
            sign_in_starts_per_minute: 5,
            trusted_proxies: vec!["10.0.0.0/8".into(), "127.0.0.1".into()],
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let t = Throttle::new(&settings()).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (peer, xff, want) in [
            ("203.0.113.9", vec!["198.51.100.1"], "203.0.113.9"),
            ("127.0.0.1", vec![], "127.0.0.1"),
            ("127.0.0.1", vec!["198.51.100.1"], "198.51.100.1"),
            (
                "10.1.2.3",
                vec!["1.1.1.1, 198.51.100.1, 10.0.0.7"],
                "198.51.100.1",
            ),
            ("10.1.2.3", vec!["1.1.1.1", "198.51.100.1"], "198.51.100.1"),
            ("10.1.2.3", vec!["10.0.0.5, 10.0.0.6"], "10.0.0.5"),
            (
                "10.1.2.3",
                vec!["198.51.100.1, garbage, 10.0.0.6"],
                "10.0.0.6",
            ),
            ("10.1.2.3", vec!["garbage"], "10.1.2.3"),
            ("10.1.2.3", vec![" 2001:db8::1 "], "2001:db8::1"),
        ] {
            assert_eq!(t.client_addr(ip(peer), &xff), ip(want), "{peer} {xff:?}");
        }
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        for (a, want) in [
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("192.0.2.1", "192.0.2.1"),
        ] {
            assert_eq!(
                bucket(a.parse().unwrap()),
                want.parse::<IpAddr>().unwrap(),
                "{a}"
            );
        }
    }

    #[test]
    fn failures_past_the_free_ones_wait_and_other_addresses_do_not() {
        let t = Throttle::new(&settings()).unwrap();
        let guesser: IpAddr = "192.0.2.1".parse().unwrap();
        let admin: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..3 {
            assert_eq!(t.check(guesser), Ok(()), "attempt {i}");
            assert_eq!(t.failed(guesser), Ok(()), "attempt {i}");
        }
        for _ in 0..3 {
            // Asking does not spend: the wait stays about one delay, asked however often.
            let refused = t.check(guesser).expect_err("the fourth attempt waits");
            assert!(refused.retry_after > Duration::from_secs(5), "{refused:?}");
            assert!(refused.retry_after_secs() <= 10, "{refused:?}");
        }
        // The right token from elsewhere is not held up, however often it is used.
        for _ in 0..100 {
            assert_eq!(t.check(admin), Ok(()));
            t.succeeded(admin);
        }
    }

    #[test]
    fn successes_cost_nothing_and_unknown_addresses_leave_no_state() {
        let t = Throttle::new(&settings()).unwrap();
        let a: IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..100 {
            assert_eq!(t.check(a), Ok(()));
            t.succeeded(a);
        }
        assert_eq!(t.tracked(), 0, "checks alone remember nothing");
        assert_eq!(t.failed(a), Ok(()));
        assert_eq!(t.tracked(), 2, "one failure is remembered in both tiers");
    }

    #[test]
    fn starts_are_limited_per_address() {
        let t = Throttle::new(&settings()).unwrap();
        let a: IpAddr = "192.0.2.4".parse().unwrap();
        let b: IpAddr = "192.0.2.5".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(t.start_sign_in(a), Ok(()));
        }
        assert!(t.start_sign_in(a).is_err());
        assert_eq!(t.start_sign_in(b), Ok(()));
    }

    #[test]
    fn settings_are_checked() {
        let mut s = settings();
        s.trusted_proxies = vec!["not-a-cidr".into()];
        assert!(Throttle::new(&s).is_err());
        let mut s = settings();
        s.free_failures = 0;
        assert!(Throttle::new(&s).is_err());
        let mut s = settings();
        s.long_failure_delay_secs = 86_401;
        assert!(Throttle::new(&s).is_err());
    }

    #[test]
    fn trusted_proxies_are_a_list_or_commas() {
        for (given, want) in [
            (serde_json::json!([]), vec![]),
            (serde_json::json!(["10.0.0.0/8"]), vec!["10.0.0.0/8"]),
            (
                serde_json::json!("10.0.0.0/8, 127.0.0.1"),
                vec!["10.0.0.0/8", "127.0.0.1"],
            ),
            (serde_json::json!(""), vec![]),
        ] {
            let v = serde_json::json!({"free_failures": 1, "failure_delay_secs": 1,
                "long_free_failures": 1, "long_failure_delay_secs": 1,
                "sign_in_starts_per_minute": 1, "trusted_proxies": given});
            let s: ThrottleSettings = serde_json::from_value(v).unwrap();
            assert_eq!(s.trusted_proxies, want, "{given}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        for (d, want) in [
            (Duration::from_millis(1), 1),
            (Duration::from_millis(1_000), 1),
            (Duration::from_millis(1_001), 2),
            (Duration::from_secs(0), 1),
            (Duration::from_secs(120), 120),
        ] {
            assert_eq!(
                Throttled { retry_after: d }.retry_after_secs(),
                want,
                "{d:?}"
            );
        }
    }
}
