//! The URL of a jwk_url secret: absolute, https (plain http only on loopback), no
//! credentials or fragment, bounded length.

use url::{Host, Url};

use super::secret_input::SecretError;

/// Longest accepted JWKS URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

pub(crate) fn check_jwks_url(input: &str) -> Result<Url, SecretError> {
    const HELP: &str = "the JWKS URL must be https://… (plain http:// is allowed only for 127.0.0.1, [::1] or localhost)";
    if input.len() > MAX_URL_BYTES {
        return Err(SecretError(format!(
            "the JWKS URL is longer than {MAX_URL_BYTES} bytes"
        )));
    }
    if input.trim() != input || input.is_empty() {
        return Err(SecretError::new(
            "the JWKS URL is empty or starts or ends with whitespace",
        ));
    }
    let url = Url::parse(input)
        .map_err(|e| SecretError(format!("the JWKS URL is not a valid absolute URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SecretError::new(
            "the JWKS URL must not contain a user name or password (it is stored and shown in clear)",
        ));
    }
    if url.fragment().is_some() {
        return Err(SecretError::new(
            "the JWKS URL must not contain a #fragment",
        ));
    }
    let host = url
        .host()
        .ok_or_else(|| SecretError(format!("the JWKS URL has no host; {HELP}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" => {
            let loopback = match host {
                Host::Ipv4(ip) => ip.is_loopback(),
                Host::Ipv6(ip) => ip.is_loopback(),
                Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            };
            if loopback {
                Ok(url)
            } else {
                Err(SecretError(format!(
                    "{HELP}: a key set fetched over plain http could be replaced on the way"
                )))
            }
        }
        _ => Err(SecretError::new(HELP)),
    }
}
