//! Where orgsso may send requests on behalf of an org admin. The operator configures IdPs
//! anywhere (an internal Keycloak, a test IdP on 127.0.0.1); an org admin, who is only trusted
//! with their own org, may not point the service at the operator's private network: issuer
//! discovery, the endpoints a discovery document names, JWK URLs and userinfo must be public
//! addresses.
//!
//! Checked twice: when a URL is saved ([`Http::check`](super::Http::check), a clear refusal
//! for the admin), and at every connection to it: the org-admin client resolves names through
//! [`Resolver`], which drops internal addresses from each answer, and refuses IP-literal hosts
//! before each request (reqwest does not ask a resolver about those). So a name that resolved
//! to a public address at the save and to 127.0.0.1 or 169.254.169.254 later (DNS rebinding)
//! is refused before any connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Longest a name lookup may take; past it the URL is refused.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Who asked for the request, and so where it may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Egress {
    /// The operator: anywhere.
    Any,
    /// An org admin: public addresses only.
    PublicOnly,
}

impl Egress {
    /// The policy stored with a row (`public_only` column).
    pub fn of(public_only: bool) -> Egress {
        if public_only {
            Egress::PublicOnly
        } else {
            Egress::Any
        }
    }

    pub fn is_public_only(self) -> bool {
        self == Egress::PublicOnly
    }
}

/// A refused or failed lookup, in a sentence that names the host and never what it resolved
/// to (which would map the private network for the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Refused {
    pub(crate) fn internal(host: &str) -> Refused {
        Refused(format!(
            "{host} is a private or local address; organisation admins can only use identity providers and key URLs on public addresses (ask the operator to connect one on a private network)"
        ))
    }

    fn unresolved(host: &str) -> Refused {
        Refused(format!("{host} could not be resolved; check the host name"))
    }
}

/// Answers for names that take precedence over DNS, changeable while running: the hook tests
/// use to make a name resolve first one way and then another (a rebinding), without a DNS
/// server. Empty in production. Shared by every client of an [`Outbound`](super::Outbound).
#[derive(Debug, Clone, Default)]
pub struct HostOverrides(Arc<RwLock<HashMap<String, Vec<IpAddr>>>>);

impl HostOverrides {
    /// From now on `name` resolves to `ips` (names compare case-insensitively).
    pub fn set(&self, name: &str, ips: Vec<IpAddr>) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_ascii_lowercase(), ips);
    }

    fn get(&self, name: &str) -> Option<Vec<IpAddr>> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if map.is_empty() {
            return None;
        }
        map.get(&name.to_ascii_lowercase()).cloned()
    }
}

/// Every address `name` resolves to (the overrides first, then the system resolver), port 0.
/// Fails closed: no answer in time is an error.
pub(crate) async fn lookup(name: &str, hosts: &HostOverrides) -> Result<Vec<SocketAddr>, Refused> {
    if let Some(ips) = hosts.get(name) {
        return Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect());
    }
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name, 0))).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(_)) | Err(_) => Err(Refused::unresolved(name)),
    }
}

/// The public addresses of an answer for `host`; none left (or none at all) is a refusal.
pub fn keep_public(host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
    if addrs.is_empty() {
        return Err(Refused::unresolved(host));
    }
    let kept: Vec<SocketAddr> = addrs.into_iter().filter(|a| !is_internal(a.ip())).collect();
    if kept.is_empty() {
        return Err(Refused::internal(host));
    }
    Ok(kept)
}

/// The resolver of orgsso's outbound clients: the overrides, then the system resolver; for the
/// org-admin client only the public addresses of each answer.
#[derive(Debug, Clone)]
pub(crate) struct Resolver {
    pub(crate) egress: Egress,
    pub(crate) hosts: HostOverrides,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str();
            let addrs = lookup(host, &this.hosts).await?;
            let addrs = match this.egress {
                Egress::Any => addrs,
                Egress::PublicOnly => {
                    let kept = keep_public(host, addrs);
                    if let Err(refused) = &kept {
                        tracing::warn!(host, reason = %refused, "refused an org admin's URL at connection time");
                    }
                    kept?
                }
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Refuses an IP-literal host the org-admin client may not reach (names go through the
/// [`Resolver`]; reqwest connects to literals without asking it).
pub(crate) fn check_literal(egress: Egress, url: &url::Url) -> Result<(), Refused> {
    if egress == Egress::Any {
        return Ok(());
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) if is_internal(IpAddr::V4(ip)) => {
            Err(Refused::internal(&ip.to_string()))
        }
        Some(url::Host::Ipv6(ip)) if is_internal(IpAddr::V6(ip)) => {
            Err(Refused::internal(&ip.to_string()))
        }
        _ => Ok(()),
    }
}

/// The save-time check: refuses `url` when `egress` may not send requests there (any internal
/// address in the name's answer refuses it; at connection time only the public ones are used).
pub(crate) async fn check_url(
    egress: Egress,
    hosts: &HostOverrides,
    url: &str,
) -> Result<(), String> {
    if egress == Egress::Any {
        return Ok(());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("{url} is not a URL ({e})"))?;
    check_literal(egress, &parsed).map_err(|r| r.0)?;
    match parsed.host() {
        None => Err(format!("{url} has no host")),
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => Ok(()),
        Some(url::Host::Domain(name)) => {
            if name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost") {
                return Err(Refused::internal(name).0);
            }
            let addrs = lookup(name, hosts).await.map_err(|r| r.0)?;
            if addrs.iter().any(|a| is_internal(a.ip())) {
                return Err(Refused::internal(name).0);
            }
            keep_public(name, addrs).map(|_| ()).map_err(|r| r.0)
        }
    }
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, multicast, broadcast and
/// documentation ranges, and IPv6 unique-local and link-local (IPv4-mapped and -compatible
/// addresses are judged as the IPv4 address they carry).
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4() {
                return internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (first & 0xffc0) == 0xfe80 // fe80::/10 link local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] // NAT64 to any IPv4
                || v6.segments()[..3] == [0x64, 0xff9b, 0x0001] // 64:ff9b:1::/48 local NAT64
                || first == 0x2002 // 6to4: reaches an IPv4 address of the sender's choosing
                || (first == 0x2001 && v6.segments()[1] == 0) // Teredo 2001::/32, likewise
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10 shared address space
        || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15 benchmarking
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // 192.0.0.0/24 protocol assignments
        || a >= 240 // reserved
}

#[cfg(test)]
mod tests {
    use reqwest::dns::Resolve as _;

    use super::*;

    #[test]
    fn internal_addresses() {
        #[rustfmt::skip]
        let cases = [
            ("127.0.0.1", true), ("10.1.2.3", true), ("172.16.0.1", true), ("172.32.0.1", false),
            ("192.168.1.1", true), ("169.254.169.254", true), ("100.64.0.1", true),
            ("100.128.0.1", false), ("0.0.0.0", true), ("255.255.255.255", true),
            ("224.0.0.1", true), ("192.0.2.1", true), ("8.8.8.8", false), ("1.1.1.1", false),
            ("::1", true), ("::", true), ("fd00::1", true), ("fe80::1", true),
            ("::ffff:10.0.0.1", true), ("::ffff:8.8.8.8", false), ("2606:4700::1111", false),
            ("2001:db8::1", true), ("64:ff9b::a00:1", true), ("198.18.0.1", true),
            ("198.19.255.1", true), ("198.20.0.1", false), ("2002:7f00:1::1", true),
            ("2001:0:4136:e378::1", true), ("64:ff9b:1::a00:1", true), ("2001:4860::8888", false),
        ];
        for (ip, want) in cases {
            assert_eq!(is_internal(ip.parse().unwrap()), want, "{ip}");
        }
    }

    fn addrs(ips: &[&str]) -> Vec<SocketAddr> {
        ips.iter()
            .map(|ip| SocketAddr::new(ip.parse().unwrap(), 0))
            .collect()
    }

    /// An answer, and the addresses kept or the refusal's words.
    type Case = (
        &'static [&'static str],
        Result<&'static [&'static str], &'static str>,
    );

    #[test]
    fn each_answer_keeps_only_its_public_addresses() {
        #[rustfmt::skip]
        let cases: [Case; 7] = [
            (&["93.184.215.14"], Ok(&["93.184.215.14"])),
            (&["127.0.0.1"], Err("private or local")),
            (&["169.254.169.254", "::1"], Err("private or local")),
            // A mixed answer: the internal addresses are never tried.
            (&["10.0.0.5", "93.184.215.14", "::ffff:127.0.0.1"], Ok(&["93.184.215.14"])),
            (&["fd00::1", "2606:4700::1111"], Ok(&["2606:4700::1111"])),
            (&["0.0.0.0"], Err("private or local")),
            (&[], Err("could not be resolved")),
        ];
        for (answer, want) in cases {
            let got = keep_public("idp.example", addrs(answer));
            match (got, want) {
                (Ok(kept), Ok(want)) => assert_eq!(kept, addrs(want), "{answer:?}"),
                (Err(e), Err(want)) => {
                    assert!(
                        e.0.contains(want) && e.0.starts_with("idp.example "),
                        "{answer:?}: {e}"
                    );
                    // The sentence names the host, never the addresses it resolved to.
                    assert!(answer.iter().all(|ip| !e.0.contains(ip)), "{e}");
                }
                (got, want) => panic!("{answer:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn ip_literals_are_checked_before_each_request() {
        #[rustfmt::skip]
        let cases = [
            ("https://127.0.0.1/jwks", Egress::PublicOnly, false),
            ("https://169.254.169.254/latest/meta-data", Egress::PublicOnly, false),
            ("https://[::1]:8443/x", Egress::PublicOnly, false),
            ("https://[::ffff:10.0.0.1]/x", Egress::PublicOnly, false),
            // Other spellings of 127.0.0.1 are parsed to the address by the URL parser.
            ("http://2130706433/x", Egress::PublicOnly, false),
            ("http://127.1:8080/x", Egress::PublicOnly, false),
            ("http://0x7f.0.0.1/x", Egress::PublicOnly, false),
            ("https://8.8.8.8/x", Egress::PublicOnly, true),
            ("https://idp.example/x", Egress::PublicOnly, true), // a name: the resolver's job
            ("http://127.0.0.1:8080/x", Egress::Any, true),
        ];
        for (url, egress, ok) in cases {
            let got = check_literal(egress, &url::Url::parse(url).unwrap());
            assert_eq!(got.is_ok(), ok, "{url} {egress:?}: {got:?}");
        }
    }

    #[tokio::test]
    async fn the_resolver_judges_every_answer_not_the_first() {
        let hosts = HostOverrides::default();
        let pinned = Resolver {
            egress: Egress::PublicOnly,
            hosts: hosts.clone(),
        };
        let any = Resolver {
            egress: Egress::Any,
            hosts: hosts.clone(),
        };
        let name = || "Rebind.Example".parse::<reqwest::dns::Name>().unwrap();
        // Public at the save...
        hosts.set("rebind.example", vec!["93.184.215.14".parse().unwrap()]);
        assert!(
            check_url(Egress::PublicOnly, &hosts, "https://rebind.example/jwks")
                .await
                .is_ok()
        );
        let first: Vec<_> = pinned.resolve(name()).await.unwrap().collect();
        assert_eq!(first, addrs(&["93.184.215.14"]));
        // ...then the metadata service: refused at the connection, with a sentence naming the host.
        hosts.set("rebind.example", vec!["169.254.169.254".parse().unwrap()]);
        let refused = pinned.resolve(name()).await.err().expect("refused");
        assert!(
            refused
                .to_string()
                .starts_with("Rebind.Example is a private or local address"),
            "{refused}"
        );
        // The operator's client goes anywhere.
        let operator: Vec<_> = any.resolve(name()).await.unwrap().collect();
        assert_eq!(operator, addrs(&["169.254.169.254"]));
        let e = check_url(Egress::PublicOnly, &hosts, "https://rebind.example/jwks")
            .await
            .unwrap_err();
        assert!(e.contains("private or local"), "{e}");
    }

    #[tokio::test]
    async fn org_admins_are_kept_on_public_addresses() {
        let hosts = HostOverrides::default();
        let check = |url| check_url(Egress::PublicOnly, &hosts, url);
        for url in [
            "http://127.0.0.1:8080/realms/x",
            "https://localhost/x",
            "https://[::1]/jwks",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/.well-known/jwks.json",
        ] {
            let e = check(url).await.unwrap_err();
            assert!(e.contains("private or local"), "{url}: {e}");
        }
        assert!(check("https://8.8.8.8/x").await.is_ok());
        assert!(check_url(Egress::Any, &hosts, "http://127.0.0.1/x")
            .await
            .is_ok());
        assert!(check("not a url").await.is_err());
        let unresolvable = check("https://no-such-host.invalid/x").await.unwrap_err();
        assert!(
            unresolvable.contains("could not be resolved"),
            "{unresolvable}"
        );
    }
}
