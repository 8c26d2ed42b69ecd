//! Outbound HTTP to identity providers and key URLs: the clients (no redirects, bounded
//! time), bounded body reads, and error descriptions an admin can act on. A leaf: `oidc` and
//! the JOSE core's JWKS cache both fetch through it. Every request goes through an [`Http`] of
//! the [`Egress`] of whoever supplied its URL: the operator's goes anywhere, an org admin's is
//! pinned to public addresses at connection time (`egress`).
//!
//! Idle connections are kept for [`POOL_IDLE`], under the 5 s after which Node.js and Apache
//! servers close theirs, and a request that a kept connection loses before any answer (the
//! server closed it as the request went out) is sent once more on a new one ([`Http::execute`]).

pub mod egress;

use std::sync::Arc;
use std::time::Duration;

/// How long an idle connection to an IdP is kept for the next request. reqwest's default (90 s)
/// outlives the keep-alive of many servers (Node.js and Apache close idle connections after 5 s,
/// an AWS ALB after 60 s, nginx after 75 s); a request written into a connection the server is
/// closing is lost. Under 5 s, the client is the side that closes, except in a race that
/// [`Http::execute`] answers by sending once more.
pub const POOL_IDLE: Duration = Duration::from_secs(4);

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
            .pool_idle_timeout(POOL_IDLE)
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
    ///
    /// A request whose connection closed before any answer came (a kept connection the server
    /// closed as the request went out: [`closed_before_answer`]) is sent once more, on a new
    /// connection. The server did not act on it; should it have (it fell over while answering),
    /// a token request sent twice is refused as a reused code, which the sign-in reports.
    /// Never a third time, nor after a timeout.
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, String> {
        egress::check_literal(self.egress, request.url()).map_err(|r| r.0)?;
        let again = request.try_clone();
        match self.client.execute(request).await {
            Err(e) if closed_before_answer(&e) => match again {
                Some(request) => {
                    tracing::info!(
                        host = request.url().host_str().unwrap_or_default(),
                        "an IdP connection closed before answering; sending the request once more"
                    );
                    self.client.execute(request).await.map_err(|e| describe(&e))
                }
                None => Err(describe(&e)),
            },
            answer => answer.map_err(|e| describe(&e)),
        }
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
    if let Some(refused) = causes(e).find_map(|s| s.downcast_ref::<Refused>()) {
        return refused.0.clone();
    }
    if e.is_timeout() {
        "it did not answer in time".into()
    } else if closed_before_answer(e) {
        "the connection was closed before an answer came".into()
    } else if e.is_connect() {
        "the connection was refused or could not be made".into()
    } else if e.is_body() || e.is_decode() {
        "the answer was cut short or malformed".into()
    } else {
        "the request failed".into()
    }
}

/// Whether the connection of `e`'s request ended before any answer: closed (hyper's
/// "incomplete message") or reset. Neither a timeout nor a refused connection.
pub fn closed_before_answer(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    // The first I/O error decides; hyper's own "incomplete message" has none behind it.
    causes(e)
        .find_map(|s| {
            if s.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_incomplete_message)
            {
                return Some(true);
            }
            s.downcast_ref::<std::io::Error>()
                .map(|io| matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe))
        })
        .unwrap_or(false)
}

/// The errors behind `e`, nearest first; at most 16, so that a chain that loops ends.
fn causes(e: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(e), |s| s.source()).take(16)
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

    /// What the hand-written server does with a request.
    #[derive(Clone, Copy)]
    enum Closing {
        /// Answers the first request of a connection; reads the second and closes unanswered,
        /// as a server whose keep-alive ran out as the request arrived.
        SecondOnAConnection,
        /// Reads every request and closes unanswered.
        Every,
        /// Reads every request and never answers.
        Never,
    }

    /// An HTTP/1.1 server on 127.0.0.1 written by hand, so that a test decides which requests
    /// are answered. Records (connection number, request line, body) of each request read.
    struct ClosingServer {
        uri: String,
        seen: Arc<std::sync::Mutex<Vec<(usize, String, String)>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl ClosingServer {
        async fn start(closing: Closing) -> ClosingServer {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let uri = format!("http://{}/", listener.local_addr().unwrap());
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let log = seen.clone();
            let task = tokio::spawn(async move {
                for conn in 0..8 {
                    let Ok((mut socket, _)) = listener.accept().await else {
                        return;
                    };
                    let log = log.clone();
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        for nth in 0..4 {
                            let Some((line, body)) = read_request(&mut socket, &mut buf).await
                            else {
                                return;
                            };
                            log.lock().unwrap().push((conn, line, body));
                            let answer = match closing {
                                Closing::SecondOnAConnection => nth == 0,
                                Closing::Every => false,
                                Closing::Never => {
                                    tokio::time::sleep(Duration::from_secs(5)).await;
                                    return;
                                }
                            };
                            if !answer {
                                return;
                            }
                            let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(ok.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });

            /// Reads one request (head and `content-length` body) from `socket`; `None` at EOF.
            async fn read_request(
                socket: &mut tokio::net::TcpStream,
                buf: &mut Vec<u8>,
            ) -> Option<(String, String)> {
                let mut chunk = [0u8; 4096];
                for _ in 0..64 {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8(buf[..end].to_vec()).ok()?;
                        let length: usize = head
                            .lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                            .map_or(0, |(_, v)| v.trim().parse().unwrap());
                        if buf.len() >= end + 4 + length {
                            let body = buf[end + 4..end + 4 + length].to_vec();
                            buf.drain(..end + 4 + length);
                            let line = head.lines().next().unwrap_or_default().to_owned();
                            return Some((line, String::from_utf8(body).ok()?));
                        }
                    }
                    let n = socket.read(&mut chunk).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                None
            }
            ClosingServer { uri, seen, task }
        }

        fn seen(&self) -> Vec<(usize, String, String)> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for ClosingServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn operator(timeout: Duration) -> Http {
        Http::new(Egress::Any, timeout, HostOverrides::default())
    }

    #[tokio::test]
    async fn a_request_a_kept_connection_loses_is_sent_once_more_on_a_new_one() {
        let server = ClosingServer::start(Closing::SecondOnAConnection).await;
        let http = operator(Duration::from_secs(5));
        let first = http.send(http.get(&server.uri)).await.unwrap();
        assert_eq!(first.text().await.unwrap(), "ok");
        // A token request: a POST with a form body, which must go out again whole.
        let form = http
            .client
            .post(&server.uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=authorization_code&code=c1")
            .build()
            .unwrap();
        let second = http.execute(form).await.unwrap();
        assert_eq!(second.text().await.unwrap(), "ok");

        let post = |conn: usize| {
            (
                conn,
                "POST / HTTP/1.1".to_owned(),
                "grant_type=authorization_code&code=c1".to_owned(),
            )
        };
        assert_eq!(
            server.seen(),
            vec![
                (0, "GET / HTTP/1.1".to_owned(), String::new()),
                post(0),
                post(1)
            ],
            "the POST went out on the kept connection, then once more on a new one"
        );
    }

    #[tokio::test]
    async fn a_server_that_closes_every_time_gets_two_tries_and_a_clear_sentence() {
        let server = ClosingServer::start(Closing::Every).await;
        let http = operator(Duration::from_secs(5));
        let e = http.send(http.get(&server.uri)).await.unwrap_err();
        assert_eq!(e, "the connection was closed before an answer came");
        assert_eq!(server.seen().len(), 2, "{:?}", server.seen());
    }

    #[tokio::test]
    async fn a_request_that_timed_out_is_not_sent_again() {
        let server = ClosingServer::start(Closing::Never).await;
        let http = operator(Duration::from_millis(300));
        let e = http.send(http.get(&server.uri)).await.unwrap_err();
        assert_eq!(e, "it did not answer in time");
        assert_eq!(server.seen().len(), 1, "{:?}", server.seen());
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_a_closed_one() {
        // A port nothing listens on: bound, then released.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let http = operator(Duration::from_secs(5));
        let e = http.send(http.get(&uri)).await.unwrap_err();
        assert_eq!(e, "the connection was refused or could not be made");
    }
}
