//! Talking to OpenID Providers: discovery, the authorization request, the code exchange, the
//! end-session URL, the userinfo request, ID-token and back-channel logout-token verification (a policy over [`crate::jose`], keys from the
//! provider's JWKS). Nothing here knows about HTTP handlers.
//!
//! openidconnect does the protocol requests (authorization request, code exchange with client
//! authentication, RP-initiated logout request) and lends its types to the stored provider
//! metadata; orgsso keeps its own discovery checks, answer judging, JWKS cache and ID-token
//! verification (see each module's doc for why).

pub mod at_hash;
pub mod client;
pub mod client_auth;
pub mod discovery;
pub mod egress;
pub mod idtoken;
pub mod logout;
pub mod logout_token;
pub mod token_endpoint;
pub mod userinfo;

/// Keeps printable ASCII only, cut to `max` characters: IdP-provided text shown to people.
pub fn printable(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_strips_control_characters() {
        assert_eq!(printable("bad\r\n<b>x</b>", 100), "bad<b>x</b>");
        assert_eq!(printable("abcdef", 3), "abc");
    }
}
