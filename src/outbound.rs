//! Outbound HTTP to identity providers and key URLs: the one client (no redirects, bounded
//! time), bounded body reads, and error descriptions an admin can act on. A leaf: `oidc` and
//! the JOSE core's JWKS cache both fetch through it.

use std::time::Duration;

/// The one HTTP client for every IdP request: rustls, no redirects (an IdP endpoint that
/// redirects is misconfigured, and following redirects invites SSRF), bounded timeouts.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("orgsso/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initialises")
}

/// Reads a response body, refusing more than `max` bytes without buffering them.
pub async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Read(describe(&e)))?
    {
        if out.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the answer could not be read: {0}")]
    Read(String),
}

/// A reqwest error in words an admin can act on, without the URL's query (which may carry a
/// code) and without the request body.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "it did not answer in time".into()
    } else if e.is_connect() {
        "the connection was refused or could not be made".into()
    } else if e.is_body() || e.is_decode() {
        "the answer was cut short or malformed".into()
    } else {
        "the request failed".into()
    }
}
