//! Where orgsso may send requests on behalf of an org admin. The operator configures IdPs
//! anywhere (an internal Keycloak, a test IdP on 127.0.0.1); an org admin, who is only trusted
//! with their own org, may not point the service at the operator's private network: issuer
//! discovery, the endpoints a discovery document names and JWK URLs must be public addresses.
//!
//! Checked when a URL is saved (names are resolved then); a name that later resolves elsewhere
//! (DNS rebinding) is not caught here.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Longest a name lookup may take; past it the URL is refused.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Who asked for the request, and so where it may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// The operator: anywhere.
    Any,
    /// An org admin: public addresses only.
    PublicOnly,
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
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // 192.0.0.0/24 protocol assignments
        || a >= 240 // reserved
}

impl Egress {
    /// Refuses `url` when this caller may not send requests there; the reason names the host,
    /// never what it resolved to (which would map the private network for the caller).
    pub async fn check(self, url: &str) -> Result<(), String> {
        if self == Egress::Any {
            return Ok(());
        }
        let parsed = url::Url::parse(url).map_err(|e| format!("{url} is not a URL ({e})"))?;
        let refused = |host: &str| {
            Err(format!(
                "{host} is a private or local address; organisation admins can only use identity providers and key URLs on public addresses (ask the operator to connect one on a private network)"
            ))
        };
        let port = parsed.port_or_known_default().unwrap_or(443);
        match parsed.host() {
            None => Err(format!("{url} has no host")),
            Some(url::Host::Ipv4(ip)) if is_internal(IpAddr::V4(ip)) => refused(&ip.to_string()),
            Some(url::Host::Ipv6(ip)) if is_internal(IpAddr::V6(ip)) => refused(&ip.to_string()),
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => Ok(()),
            Some(url::Host::Domain(name)) => {
                if name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost") {
                    return refused(name);
                }
                let lookup = tokio::net::lookup_host((name, port));
                match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                    Ok(Ok(mut addrs)) => match addrs.any(|a| is_internal(a.ip())) {
                        true => refused(name),
                        false => Ok(()),
                    },
                    // Fail closed: a name that cannot be checked now is not fetched.
                    Ok(Err(_)) | Err(_) => {
                        Err(format!("{name} could not be resolved; check the host name"))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
            ("2001:db8::1", true), ("64:ff9b::a00:1", true),
        ];
        for (ip, want) in cases {
            assert_eq!(is_internal(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[tokio::test]
    async fn org_admins_are_kept_on_public_addresses() {
        let p = Egress::PublicOnly;
        for url in [
            "http://127.0.0.1:8080/realms/x",
            "https://localhost/x",
            "https://[::1]/jwks",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/.well-known/jwks.json",
        ] {
            let e = p.check(url).await.unwrap_err();
            assert!(e.contains("private or local"), "{url}: {e}");
        }
        assert!(p.check("https://8.8.8.8/x").await.is_ok());
        assert!(Egress::Any.check("http://127.0.0.1/x").await.is_ok());
        assert!(p.check("not a url").await.is_err());
        let unresolvable = p.check("https://no-such-host.invalid/x").await.unwrap_err();
        assert!(
            unresolvable.contains("could not be resolved"),
            "{unresolvable}"
        );
    }
}
