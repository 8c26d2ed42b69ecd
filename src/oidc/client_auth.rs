//! How orgsso authenticates itself at a provider's token endpoint: the three methods a
//! connection may use, which one to try first, whether to try the other secret method after a
//! refusal, and the claims of a `private_key_jwt` client assertion.
//!
//! * `client_secret_basic` and `client_secret_post` go to openidconnect as its [`AuthType`].
//! * `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9) has no [`AuthType`]: the request carries no
//!   secret (`AuthType::RequestBody` puts only `client_id` in the form) and gets
//!   `client_assertion_type` and `client_assertion` as extra parameters in
//!   `client::exchange_code_with`. The assertion is signed by the caller (`sso`, with the
//!   connection's own key); [`assertion_claims`] says what it holds.
//!
//! Automatic mode (the admin chose nothing): the method learned earlier, else the one discovery
//! suggests ([`TokenAuthMethod::choose`]). Many providers bind a client to one method and refuse
//! the other with `invalid_client`/`unauthorized_client` (or a bare 401) before looking at the
//! code, so the code is still good for one more try with the other secret method
//! ([`retry_method`]). An explicit choice is never switched.

use std::fmt;
use std::str::FromStr;

use openidconnect::core::CoreClientAuthMethod;
use openidconnect::AuthType;

use super::discovery::ProviderMetadata;
use super::token_endpoint::ExchangeError;

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid: short, it is used at once (OIDC Core §9 asks for a
/// short lifetime; providers refuse long ones).
pub const ASSERTION_TTL_SECS: i64 = 60;

/// A client authentication method orgsso can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenAuthMethod {
    /// RFC 6749 §2.3.1: HTTP Basic with the form-urlencoded client id and secret.
    ClientSecretBasic,
    /// The client id and secret in the form body.
    ClientSecretPost,
    /// A client assertion signed with the connection's own key; no shared secret.
    PrivateKeyJwt,
}

impl TokenAuthMethod {
    /// The secret methods orgsso picks in automatic mode, for refusals.
    pub const OFFERED: &'static str = "client_secret_basic or client_secret_post";

    /// Every name the admin may choose, for refusals.
    pub const NAMES: &'static str = "client_secret_basic, client_secret_post or private_key_jwt";

    /// The registered name (RFC 7591 §2, OIDC Registration §2).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
            TokenAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Whether the method sends a shared secret.
    pub fn uses_secret(self) -> bool {
        self != TokenAuthMethod::PrivateKeyJwt
    }

    /// The automatic choice: `client_secret_basic` unless the provider offers only
    /// `client_secret_post`; an empty list means the spec default (basic). `None`: the provider
    /// offers no secret method.
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

    /// Whether the provider lists this method (an empty list lists nothing, and refuses
    /// nothing: the spec default is basic, and many providers accept more than they list).
    pub fn offered_by(self, supported: &[CoreClientAuthMethod]) -> bool {
        supported.is_empty() || supported.contains(&self.core())
    }

    fn core(self) -> CoreClientAuthMethod {
        match self {
            TokenAuthMethod::ClientSecretBasic => CoreClientAuthMethod::ClientSecretBasic,
            TokenAuthMethod::ClientSecretPost => CoreClientAuthMethod::ClientSecretPost,
            TokenAuthMethod::PrivateKeyJwt => CoreClientAuthMethod::PrivateKeyJwt,
        }
    }

    /// openidconnect's name for how the request carries the client (its basic auth
    /// form-urlencodes id and secret as RFC 6749 §2.3.1 asks; with no secret set, the request
    /// body carries only `client_id`, which is what `private_key_jwt` wants).
    pub fn auth_type(self) -> AuthType {
        match self {
            TokenAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
            TokenAuthMethod::ClientSecretPost | TokenAuthMethod::PrivateKeyJwt => {
                AuthType::RequestBody
            }
        }
    }

    /// The other secret method, for the automatic retry.
    fn other_secret_method(self) -> Option<TokenAuthMethod> {
        match self {
            TokenAuthMethod::ClientSecretBasic => Some(TokenAuthMethod::ClientSecretPost),
            TokenAuthMethod::ClientSecretPost => Some(TokenAuthMethod::ClientSecretBasic),
            TokenAuthMethod::PrivateKeyJwt => None,
        }
    }
}

impl fmt::Display for TokenAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown method name.
#[derive(Debug, thiserror::Error)]
#[error("token_auth_method must be client_secret_basic, client_secret_post or private_key_jwt, or left out for automatic (got {0:?})")]
pub struct UnknownMethod(pub String);

impl FromStr for TokenAuthMethod {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, UnknownMethod> {
        match s {
            "client_secret_basic" => Ok(TokenAuthMethod::ClientSecretBasic),
            "client_secret_post" => Ok(TokenAuthMethod::ClientSecretPost),
            "private_key_jwt" => Ok(TokenAuthMethod::PrivateKeyJwt),
            other => Err(UnknownMethod(super::printable(other, 64))),
        }
    }
}

/// A connection's setting: the admin's choice, or automatic with what was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSetting {
    Explicit(TokenAuthMethod),
    Automatic { learned: Option<TokenAuthMethod> },
}

impl AuthSetting {
    /// The method to try first with this provider.
    pub fn first_method(self, meta: &ProviderMetadata) -> TokenAuthMethod {
        match self {
            AuthSetting::Explicit(m) => m,
            AuthSetting::Automatic { learned: Some(m) } => m,
            AuthSetting::Automatic { learned: None } => meta.token_auth_method(),
        }
    }
}

/// Whether the token endpoint refused the client itself (not the code): RFC 6749 §5.2
/// `invalid_client` or `unauthorized_client`, or HTTP 401 without an error object.
pub fn is_client_refusal(e: &ExchangeError) -> bool {
    match e {
        ExchangeError::Refused { error, .. } => {
            error == "invalid_client" || error == "unauthorized_client"
        }
        ExchangeError::Status(401) => true,
        _ => false,
    }
}

/// What the sign-in page and the audit say about a refusal of the client: the RFC 6749 error
/// with its description (already trimmed and printable), or the bare status.
pub fn refusal_reason(e: &ExchangeError) -> String {
    match e {
        ExchangeError::Refused { error, description } => match description {
            Some(d) => format!("{error} ({d})"),
            None => error.clone(),
        },
        ExchangeError::Status(s) => format!("HTTP {s} without an error object"),
        other => other.to_string(),
    }
}

/// After `tried` failed with `error`: the method to try once more with the same code, if any.
/// Only in automatic mode, only after a refusal of the client, only between the two secret
/// methods, and only to a method the provider lists (or when it lists none).
pub fn retry_method(
    setting: AuthSetting,
    tried: TokenAuthMethod,
    supported: &[CoreClientAuthMethod],
    error: &ExchangeError,
) -> Option<TokenAuthMethod> {
    if matches!(setting, AuthSetting::Explicit(_)) || !is_client_refusal(error) {
        return None;
    }
    tried
        .other_secret_method()
        .filter(|m| m.offered_by(supported))
}

/// The claims of a `private_key_jwt` client assertion (RFC 7523 §3, OIDC Core §9): `iss` and
/// `sub` are the client id, `aud` the token endpoint exactly as discovery named it, `jti` a
/// fresh random value (providers refuse a replay), `iat` now and `exp` at most
/// [`ASSERTION_TTL_SECS`] later.
pub fn assertion_claims(
    meta: &ProviderMetadata,
    client_id: &str,
    jti: &str,
    now: i64,
) -> serde_json::Value {
    serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": meta.token_endpoint.as_str(),
        "jti": jti,
        "iat": now,
        "exp": now + ASSERTION_TTL_SECS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use CoreClientAuthMethod as M;
    use TokenAuthMethod::*;

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

    #[test]
    fn names_parse_both_ways_and_unknown_ones_are_refused_clearly() {
        for m in [ClientSecretBasic, ClientSecretPost, PrivateKeyJwt] {
            assert_eq!(m.as_str().parse::<TokenAuthMethod>().unwrap(), m);
        }
        for bad in [
            "",
            "basic",
            "CLIENT_SECRET_POST",
            "client_secret_jwt",
            "none",
        ] {
            let e = bad.parse::<TokenAuthMethod>().unwrap_err().to_string();
            assert!(
                e.contains("client_secret_basic, client_secret_post or private_key_jwt"),
                "{e}"
            );
        }
        let e = "x\r\n<b>"
            .parse::<TokenAuthMethod>()
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    fn refused(error: &str) -> ExchangeError {
        ExchangeError::Refused {
            error: error.into(),
            description: None,
        }
    }

    /// (case, setting, method tried, methods listed, its error, the retry expected)
    type Case<'a> = (
        &'a str,
        AuthSetting,
        TokenAuthMethod,
        &'a [M],
        ExchangeError,
        Option<TokenAuthMethod>,
    );

    #[test]
    fn the_retry_decision() {
        let auto = AuthSetting::Automatic { learned: None };
        let learned = AuthSetting::Automatic {
            learned: Some(ClientSecretPost),
        };
        let both = [M::ClientSecretBasic, M::ClientSecretPost];
        let basic_only = [M::ClientSecretBasic, M::PrivateKeyJwt];
        let post_only = [M::ClientSecretPost];
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("invalid_client: the other one", auto, ClientSecretBasic, &both, refused("invalid_client"), Some(ClientSecretPost)),
            ("unauthorized_client too", auto, ClientSecretBasic, &both, refused("unauthorized_client"), Some(ClientSecretPost)),
            ("bare 401 too", auto, ClientSecretBasic, &both, ExchangeError::Status(401), Some(ClientSecretPost)),
            ("post to basic", auto, ClientSecretPost, &both, refused("invalid_client"), Some(ClientSecretBasic)),
            ("a list of nothing refuses nothing", auto, ClientSecretBasic, &[], refused("invalid_client"), Some(ClientSecretPost)),
            ("learned, refused again: back", learned, ClientSecretPost, &both, refused("invalid_client"), Some(ClientSecretBasic)),
            ("not listed: no retry", auto, ClientSecretBasic, &basic_only, refused("invalid_client"), None),
            ("listed only post, post refused", auto, ClientSecretPost, &post_only, refused("invalid_client"), None),
            ("explicit is never switched", AuthSetting::Explicit(ClientSecretBasic), ClientSecretBasic, &both, refused("invalid_client"), None),
            ("explicit post neither", AuthSetting::Explicit(ClientSecretPost), ClientSecretPost, &both, ExchangeError::Status(401), None),
            ("private_key_jwt has no other", AuthSetting::Explicit(PrivateKeyJwt), PrivateKeyJwt, &both, refused("invalid_client"), None),
            ("the code was refused: the code is spent", auto, ClientSecretBasic, &both, refused("invalid_grant"), None),
            ("invalid_request is not about the client", auto, ClientSecretBasic, &both, refused("invalid_request"), None),
            ("other statuses are faults", auto, ClientSecretBasic, &both, ExchangeError::Status(403), None),
            ("5xx", auto, ClientSecretBasic, &both, ExchangeError::Status(500), None),
            ("unreachable", auto, ClientSecretBasic, &both, ExchangeError::Unreachable("x".into()), None),
            ("garbage", auto, ClientSecretBasic, &both, ExchangeError::Malformed("x".into()), None),
        ];
        for (case, setting, tried, supported, error, expect) in cases {
            assert_eq!(
                retry_method(setting, tried, supported, &error),
                expect,
                "{case}"
            );
        }
    }

    fn meta(token_endpoint: &str, methods: serde_json::Value) -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": token_endpoint,
            "jwks_uri": "https://idp.example.com/jwks",
            "token_endpoint_auth_methods_supported": methods,
        }))
        .unwrap()
    }

    #[test]
    fn the_first_method() {
        let post_only = meta(
            "https://idp.example.com/token",
            serde_json::json!(["client_secret_post"]),
        );
        let any = meta("https://idp.example.com/token", serde_json::json!([]));
        #[rustfmt::skip]
        let cases = [
            (AuthSetting::Automatic { learned: None }, &any, ClientSecretBasic),
            (AuthSetting::Automatic { learned: None }, &post_only, ClientSecretPost),
            (AuthSetting::Automatic { learned: Some(ClientSecretPost) }, &any, ClientSecretPost),
            (AuthSetting::Explicit(ClientSecretBasic), &post_only, ClientSecretBasic),
            (AuthSetting::Explicit(PrivateKeyJwt), &any, PrivateKeyJwt),
        ];
        for (setting, meta, expect) in cases {
            assert_eq!(setting.first_method(meta), expect, "{setting:?}");
        }
    }

    #[test]
    fn assertion_claims_table() {
        let now = 1_700_000_000;
        #[rustfmt::skip]
        let cases = [
            // (token endpoint as discovered, client id, aud expected: the string as given)
            ("https://idp.example.com/oauth2/v1/token", "0oa123", "https://idp.example.com/oauth2/v1/token"),
            ("https://idp.example.com/token?tenant=a", "c:id", "https://idp.example.com/token?tenant=a"),
            ("https://IDP.example.com:443/t", "x", "https://IDP.example.com:443/t"),
        ];
        for (endpoint, client_id, aud) in cases {
            let c = assertion_claims(
                &meta(endpoint, serde_json::json!([])),
                client_id,
                "j-1",
                now,
            );
            let obj = c.as_object().unwrap();
            assert_eq!(obj.len(), 6, "{c}");
            assert_eq!(c["iss"], client_id);
            assert_eq!(c["sub"], client_id);
            assert_eq!(
                c["aud"], aud,
                "aud is the token endpoint exactly as discovered"
            );
            assert_eq!(c["jti"], "j-1");
            assert_eq!(c["iat"], now);
            let exp = c["exp"].as_i64().unwrap();
            assert!(exp > now && exp - now <= 60, "{c}");
        }
    }
}
