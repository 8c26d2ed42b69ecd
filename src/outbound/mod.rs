//! Outbound HTTP to identity providers and key URLs: the clients (no redirects, bounded
//! time), bounded body reads, and error descriptions an admin can act on. A leaf: `oidc` and
//! the JOSE core's JWKS cache both fetch through it. Every request goes through an [`Http`] of
//! the [`Egress`] of whoever supplied its URL: the operator's goes anywhere, an org admin's is
//! pinned to public addresses at connection time (`egress`).

pub mod egress;

use std::sync::Arc;
use std::time::Duration;

pub use egress::{Egress, HostOverrides, Refused};

/// The clients of the process, one per [`Egress`], built once at start. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    any: Http,
    public_only: Http,
    hosts: HostOverrides,
}

impl Outbound {
    pub fn new(timeout: Duration) -> Outbound {
        let hosts = HostOverrides::default();
        Outbound {
            any: Http::new(Egress::Any, timeout, hosts.clone()),
            public_only: Http::new(Egress::PublicOnly, timeout, hosts.clone()),
            hosts,
        }
    }

    /// The client for URLs that `egress` supplied.
    pub fn http(&self, egress: Egress) -> &Http {
        match egress {
            Egress::Any => &self.any,
            Egress::PublicOnly => &self.public_only,
        }
    }

    /// Answers for names ahead of DNS, shared by both clients and the save-time check (tests
    /// change them while running to act out a DNS rebinding).
    pub fn hosts(&self) -> &HostOverrides {
        &self.hosts
    }
}

/// One HTTP client for IdP requests: rustls, no redirects (an IdP endpoint that redirects is
/// misconfigured, and following redirects invites SSRF), bounded timeouts, and for
/// [`Egress::PublicOnly`] the address checked at every connection.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    egress: Egress,
    hosts: HostOverrides,
}

impl Http {
    pub fn new(egress: Egress, timeout: Duration, hosts: HostOverrides) -> Http {
        let resolver = egress::Resolver {
            egress,
            hosts: hosts.clone(),
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("orgsso/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(resolver));
        if egress.is_public_only() {
            // Through a proxy the resolver would judge the proxy's address, not the IdP's.
            builder = builder.no_proxy();
        }
        Http {
            client: builder.build().expect("the TLS backend initialises"),
            egress,
            hosts,
        }
    }

    /// The operator's policy over a given client (the unit tests' local servers).
    #[cfg(test)]
    pub(crate) fn from_client(client: reqwest::Client) -> Http {
        Http {
            client,
            egress: Egress::Any,
            hosts: HostOverrides::default(),
        }
    }

    pub fn egress(&self) -> Egress {
        self.egress
    }

    /// A GET to finish and hand to [`Http::send`].
    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    /// Sends a request built with [`Http::get`]; the error is a sentence for the admin.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        let request = request.build().map_err(|e| describe(&e))?;
        self.execute(request).await
    }

    /// Sends `request`, refusing an IP-literal host this client may not reach first (names are
    /// judged by the resolver as the connection is made).
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, String> {
        egress::check_literal(self.egress, request.url()).map_err(|r| r.0)?;
        self.client.execute(request).await.map_err(|e| describe(&e))
    }

    /// The save-time check of a URL this client's caller supplied: a clear refusal for the
    /// admin before anything is fetched (the connection-time check stays the guarantee).
    pub async fn check(&self, url: &str) -> Result<(), String> {
        egress::check_url(self.egress, &self.hosts, url).await
    }
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
    // The resolver's refusal (or failed lookup) says best what went wrong.
    let mut source = std::error::Error::source(e);
    for _ in 0..16 {
        match source {
            Some(s) => match s.downcast_ref::<Refused>() {
                Some(refused) => return refused.0.clone(),
                None => source = s.source(),
            },
            None => break,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::idp_keys::{jwks, rsa1};
    use crate::test_support::jwks_server::{Answer, JwksServer};

    #[tokio::test]
    async fn a_name_that_rebinds_to_loopback_is_refused_before_connecting() {
        let server = JwksServer::start(Answer::Json(jwks(&[&rsa1().jwk]).to_string())).await;
        let outbound = Outbound::new(Duration::from_secs(5));
        // The server's URL with a name in place of 127.0.0.1.
        let mut url = server.uri.clone();
        url.set_host(Some("keys.rebind.test")).unwrap();
        outbound
            .hosts()
            .set("keys.rebind.test", vec!["127.0.0.1".parse().unwrap()]);
        let operator = outbound.http(Egress::Any);
        let answer = operator.send(operator.get(url.clone())).await.unwrap();
        assert!(answer.status().is_success());
        assert_eq!(server.hits(), 1);

        let org_admin = outbound.http(Egress::PublicOnly);
        let e = org_admin
            .send(org_admin.get(url.clone()))
            .await
            .unwrap_err();
        assert!(
            e.starts_with("keys.rebind.test is a private or local address"),
            "{e}"
        );
        let literal = org_admin.send(org_admin.get(server.uri.clone())).await;
        assert!(literal
            .unwrap_err()
            .starts_with("127.0.0.1 is a private or local address"));
        assert_eq!(server.hits(), 1, "the org admin's requests never connected");
        server.stop().await;
    }
}
