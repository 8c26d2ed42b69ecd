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
