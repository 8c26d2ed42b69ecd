//! Values that arrive from outside, parsed once into types that can only hold valid data.

use std::net::IpAddr;

use url::Url;

/// A domain-level refusal of input; the message says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// An org's slug: `[a-z0-9-]{2,63}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Slug, Invalid> {
        let ok = (2..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Slug(s.to_owned()))
        } else {
            invalid(format!(
                "slug {s:?} is not valid: use 2 to 63 characters from a-z, 0-9 and '-'"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, 1 to 200 characters, no control characters.
pub fn parse_name(s: &str) -> Result<String, Invalid> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return invalid("name must be 1 to 200 characters without control characters");
    }
    Ok(t.to_owned())
}

/// An email address, lower-cased. Only the shape is checked: the IdP owns the truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<EmailAddress, Invalid> {
        let t = s.trim().to_lowercase();
        let bad = || {
            Invalid(format!(
                "{s:?} does not look like an email address (name@example.com)"
            ))
        };
        if t.len() > 254 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = t.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty() || Domain::parse(domain).is_err() {
            return Err(bad());
        }
        Ok(EmailAddress(t))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

/// An email domain an org claims (`acme.com`), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(String);

impl Domain {
    pub fn parse(s: &str) -> Result<Domain, Invalid> {
        let t = s.trim().trim_end_matches('.').to_lowercase();
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if t.len() > 253 || !t.contains('.') || !t.split('.').all(label_ok) {
            return invalid(format!("{s:?} is not a valid domain name (example.com)"));
        }
        Ok(Domain(t))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IdP issuer: an absolute https URL without query or fragment. Plain http is allowed only
/// for loopback hosts, so the service can be tried and tested locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

impl Issuer {
    pub fn parse(s: &str) -> Result<Issuer, Invalid> {
        let url = Url::parse(s.trim()).map_err(|e| {
            Invalid(format!(
                "issuer {s:?} is not a URL ({e}); use e.g. https://login.example.com"
            ))
        })?;
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return invalid("issuer must not carry a query, fragment or credentials");
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return invalid(format!(
                    "issuer {s:?} must use https (plain http is only allowed for 127.0.0.1, ::1 and localhost)"
                ))
            }
            other => return invalid(format!("issuer scheme {other:?} is not supported; use https")),
        }
        // Kept exactly as given (minus surrounding blanks): the ID token's `iss` must match it
        // character for character, trailing slash included.
        Ok(Issuer(s.trim().to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Where to send the browser after sign-in: a same-origin relative path only (`/app?x=1`), never
/// `//evil.com`, `/\evil.com`, `https://…` or anything with control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo(String);

impl ReturnTo {
    pub fn parse(s: &str) -> Result<ReturnTo, Invalid> {
        let bad = || {
            Invalid(
                "return_to must be a relative path on this site, starting with a single '/'".into(),
            )
        };
        if s.len() > 2048
            || !s.starts_with('/')
            || s.starts_with("//")
            || s.starts_with("/\\")
            || s.chars().any(|c| c.is_control() || c == '\\')
        {
            return Err(bad());
        }
        // Resolve against a throwaway origin: whatever the path does, it must stay there.
        let base = Url::parse("http://orgsso.invalid/").expect("static URL");
        let joined = base.join(s).map_err(|_| bad())?;
        if joined.origin() != base.origin() {
            return Err(bad());
        }
        Ok(ReturnTo(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// OAuth scopes for a connection: must include `openid`; each a printable token.
pub fn parse_scopes(scopes: Option<Vec<String>>) -> Result<Vec<String>, Invalid> {
    let scopes = scopes.unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    let mut out: Vec<String> = Vec::new();
    for s in scopes {
        let s = s.trim().to_owned();
        if s.is_empty()
            || s.len() > 128
            || !s
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        {
            return invalid(format!(
                "scope {s:?} is not valid: scopes are non-empty words without spaces or quotes"
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if !out.iter().any(|s| s == "openid") {
        return invalid("scopes must include \"openid\" (add \"email\" and \"profile\" for the user's email and name)");
    }
    if out.len() > 32 {
        return invalid("at most 32 scopes");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["ac", "acme", "acme-2", &"a".repeat(63)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "Acme", "ac_me", "acme!", "", &"a".repeat(64), "ac me"] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn return_to_only_same_origin_paths() {
        for ok in ["/", "/app", "/app?x=1&y=%2F", "/a/b#frag"] {
            assert!(ReturnTo::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "app",
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "http:/evil.com",
            "/%0d%0aSet-Cookie:x",
            "/a\r\nb",
            "javascript:alert(1)",
            "/a\\b",
        ] {
            let r = ReturnTo::parse(bad);
            // `%0d%0a` stays percent-encoded and harmless in a Location header.
            if bad == "/%0d%0aSet-Cookie:x" {
                assert!(r.is_ok());
            } else {
                assert!(r.is_err(), "{bad}");
            }
        }
    }

    #[test]
    fn issuers() {
        for ok in [
            "https://login.example.com",
            "https://login.example.com/realms/acme",
            "http://127.0.0.1:4444",
            "http://localhost:8080/",
            "http://[::1]:9000",
        ] {
            assert!(Issuer::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "ftp://x.example.com",
            "not a url",
            "https://x.example.com/?a=b",
            "https://user:pw@x.example.com",
            "http://10.0.0.1",
        ] {
            assert!(Issuer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_and_domains() {
        assert_eq!(
            EmailAddress::parse(" Alice@Acme.COM ").unwrap().as_str(),
            "alice@acme.com"
        );
        assert_eq!(
            EmailAddress::parse("a@acme.com").unwrap().domain(),
            "acme.com"
        );
        for bad in [
            "",
            "alice",
            "@acme.com",
            "alice@",
            "alice@acme",
            "a b@acme.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        assert!(Domain::parse("acme.com").is_ok());
        for bad in ["acme", "-acme.com", "ac me.com", "acme..com"] {
            assert!(Domain::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(
            parse_scopes(None).unwrap(),
            vec!["openid", "email", "profile"]
        );
        assert_eq!(
            parse_scopes(Some(vec![
                "openid".into(),
                "groups".into(),
                "openid".into()
            ]))
            .unwrap(),
            vec!["openid", "groups"]
        );
        assert!(parse_scopes(Some(vec!["email".into()])).is_err());
        assert!(parse_scopes(Some(vec!["openid".into(), "a b".into()])).is_err());
    }
}
