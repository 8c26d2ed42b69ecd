//! Talking to OpenID Providers: discovery, the authorization request, the code exchange, the
//! end-session URL, and ID-token verification (a policy over [`crate::jose`], keys from the
//! provider's JWKS). Nothing here knows about HTTP handlers.
//!
//! openidconnect does the protocol requests (authorization request, code exchange with client
//! authentication, RP-initiated logout request) and lends its types to the stored provider
//! metadata; orgsso keeps its own discovery checks, answer judging, JWKS cache and ID-token
//! verification (see each module's doc for why).

pub mod client;
pub mod client_auth;
pub mod discovery;
pub mod egress;
pub mod idtoken;
pub mod logout;
pub mod token_endpoint;

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
