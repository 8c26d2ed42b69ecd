//! How orgsso authenticates itself at a provider's token endpoint, chosen from the provider's
//! `token_endpoint_auth_methods_supported` and handed to openidconnect as its [`AuthType`].

use openidconnect::core::CoreClientAuthMethod;
use openidconnect::AuthType;

/// A client authentication method orgsso can use.
///
/// `private_key_jwt` comes next: it gets a variant here, a place in [`Self::choose`] (which also
/// needs to know whether the connection has a key), and a `client_assertion` added to the token
/// request in `client::exchange_code`, since openidconnect's [`AuthType`] has no JWT assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuthMethod {
    /// RFC 6749 §2.3.1: HTTP Basic with the form-urlencoded client id and secret.
    ClientSecretBasic,
    /// The client id and secret in the form body.
    ClientSecretPost,
}

impl TokenAuthMethod {
    /// The methods orgsso offers, for refusals.
    pub const OFFERED: &'static str = "client_secret_basic or client_secret_post";

    /// `client_secret_basic` unless the provider offers only `client_secret_post`; an empty list
    /// means the spec default (basic). `None`: the provider offers nothing orgsso can use.
    pub fn choose(supported: &[CoreClientAuthMethod]) -> Option<TokenAuthMethod> {
        let offers = |m: &CoreClientAuthMethod| supported.contains(m);
        if supported.is_empty() || offers(&CoreClientAuthMethod::ClientSecretBasic) {
            Some(TokenAuthMethod::ClientSecretBasic)
        } else if offers(&CoreClientAuthMethod::ClientSecretPost) {
            Some(TokenAuthMethod::ClientSecretPost)
        } else {
            None
        }
    }

    /// openidconnect's name for the method (its basic auth form-urlencodes id and secret as
    /// RFC 6749 §2.3.1 asks).
    pub fn auth_type(self) -> AuthType {
        match self {
            TokenAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
            TokenAuthMethod::ClientSecretPost => AuthType::RequestBody,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CoreClientAuthMethod as M;

    #[test]
    fn basic_unless_only_post_is_offered() {
        let choose = |m: &[M]| TokenAuthMethod::choose(m);
        assert_eq!(choose(&[]), Some(TokenAuthMethod::ClientSecretBasic));
        assert_eq!(
            choose(&[M::ClientSecretPost, M::ClientSecretBasic]),
            Some(TokenAuthMethod::ClientSecretBasic)
        );
        assert_eq!(
            choose(&[M::PrivateKeyJwt, M::ClientSecretPost]),
            Some(TokenAuthMethod::ClientSecretPost)
        );
        assert_eq!(
            choose(&[M::PrivateKeyJwt, M::ClientSecretJwt, M::None]),
            None
        );
        assert!(matches!(
            TokenAuthMethod::ClientSecretPost.auth_type(),
            AuthType::RequestBody
        ));
    }
}
