//! The relying-party side of the authorization code flow, through openidconnect's client: the
//! authorization request and the code exchange at the token endpoint. The wire details that keep
//! orgsso's behaviour (bounded answers, how answers are judged) are in [`super::token_endpoint`].

use std::borrow::Cow;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse,
};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, EndpointNotSet, EndpointSet, JsonWebKeySet, LoginHint, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use url::Url;

use super::client_auth::{TokenAuthMethod, ASSERTION_TYPE};
use super::discovery::ProviderMetadata;
use super::token_endpoint::{ExchangeError, TokenAnswer, TokenHttp, TokenRefusal};
use crate::crypto::Secret;
use crate::outbound::Http;

pub use super::token_endpoint::Tokens;

/// openidconnect's client as orgsso uses it: authorization and token endpoints set, orgsso's own
/// token answer and refusal types (see [`super::token_endpoint`]). Its ID-token verifier and key
/// set are unused: ID tokens are verified by `oidc::idtoken` with orgsso's JWKS cache.
pub type OidcClient = openidconnect::Client<
    EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    TokenRefusal,
    TokenAnswer,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
>;

/// The client for one connection: its endpoints, its client id and how it authenticates.
pub fn oidc_client(meta: &ProviderMetadata, client_id: &str) -> OidcClient {
    openidconnect::Client::new(
        ClientId::new(client_id.to_owned()),
        meta.issuer.clone(),
        JsonWebKeySet::default(),
    )
    .set_auth_uri(meta.authorization_endpoint.clone())
    .set_token_uri(meta.token_endpoint.clone())
    .set_auth_type(meta.token_auth_method().auth_type())
    // The connection's scopes already hold `openid` (checked when it was saved).
    .disable_openid_scope()
}

/// What goes into the authorization request besides the provider's metadata.
pub struct AuthorizeRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub nonce: &'a str,
    pub code_challenge: &'a PkceCodeChallenge,
    pub login_hint: Option<&'a str>,
}

/// The IdP's authorization endpoint with the request's parameters appended to any it already has.
pub fn authorize_url(
    meta: &ProviderMetadata,
    req: &AuthorizeRequest<'_>,
) -> Result<Url, url::ParseError> {
    let state = CsrfToken::new(req.state.to_owned());
    let nonce = Nonce::new(req.nonce.to_owned());
    let client = oidc_client(meta, req.client_id);
    let mut request = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            move || state,
            move || nonce,
        )
        .set_redirect_uri(Cow::Owned(RedirectUrl::new(req.redirect_uri.to_owned())?))
        .add_scopes(req.scopes.iter().map(|s| Scope::new(s.clone())))
        .set_pkce_challenge(req.code_challenge.clone());
    if let Some(hint) = req.login_hint {
        request = request.set_login_hint(LoginHint::new(hint.to_owned()));
    }
    Ok(request.url().0)
}

/// How orgsso proves itself in one token request.
pub enum ClientAuth<'a> {
    /// `client_secret_basic` or `client_secret_post` with the connection's secret.
    Secret {
        method: TokenAuthMethod,
        secret: &'a Secret,
    },
    /// `private_key_jwt`: a client assertion signed for this request (see
    /// [`super::client_auth::assertion_claims`]); no secret is sent.
    Assertion(&'a Secret),
}

impl ClientAuth<'_> {
    pub fn method(&self) -> TokenAuthMethod {
        match self {
            ClientAuth::Secret { method, .. } => *method,
            ClientAuth::Assertion(_) => TokenAuthMethod::PrivateKeyJwt,
        }
    }
}

/// Exchanges the code for tokens with the secret method the provider's metadata suggests
/// (see [`exchange_code_with`]).
#[cfg(test)]
pub async fn exchange_code(
    http: &Http,
    meta: &ProviderMetadata,
    client_id: &str,
    client_secret: &Secret,
    code: &str,
    redirect_uri: &str,
    code_verifier: &str,
) -> Result<Tokens, ExchangeError> {
    let auth = ClientAuth::Secret {
        method: meta.token_auth_method(),
        secret: client_secret,
    };
    exchange_code_with(
        http,
        meta,
        client_id,
        &auth,
        code,
        redirect_uri,
        code_verifier,
    )
    .await
}

/// Exchanges the code for tokens (the given client authentication, PKCE verifier, orgsso's IdP
/// HTTP client) and returns the raw ID token with the access token.
pub async fn exchange_code_with(
    http: &Http,
    meta: &ProviderMetadata,
    client_id: &str,
    auth: &ClientAuth<'_>,
    code: &str,
    redirect_uri: &str,
    code_verifier: &str,
) -> Result<Tokens, ExchangeError> {
    let redirect_uri = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| ExchangeError::Config(format!("the redirect URI is not a URL ({e})")))?;
    let client = oidc_client(meta, client_id).set_auth_type(auth.method().auth_type());
    let client = match auth {
        ClientAuth::Secret { secret, .. } => {
            client.set_client_secret(ClientSecret::new(secret.expose().to_owned()))
        }
        ClientAuth::Assertion(_) => client,
    };
    let mut request = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(code_verifier.to_owned()))
        .set_redirect_uri(Cow::Owned(redirect_uri));
    if let ClientAuth::Assertion(assertion) = auth {
        request = request
            .add_extra_param("client_assertion_type", ASSERTION_TYPE)
            .add_extra_param("client_assertion", assertion.expose().to_owned());
    }
    request
        .request_async(&TokenHttp(http))
        .await
        .map_err(ExchangeError::from)?
        .into_tokens()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(token_endpoint: &str, auth_methods: serde_json::Value) -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/auth?tenant=acme",
            "token_endpoint": token_endpoint,
            "jwks_uri": "https://idp.example.com/jwks",
            "token_endpoint_auth_methods_supported": auth_methods,
        }))
        .unwrap()
    }

    #[test]
    fn authorize_url_keeps_existing_query_and_sends_pkce() {
        let meta = meta("https://idp.example.com/token", serde_json::json!([]));
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new("v".repeat(43)));
        let scopes = vec!["openid".to_string(), "email".to_string()];
        let url = authorize_url(
            &meta,
            &AuthorizeRequest {
                client_id: "c",
                redirect_uri: "https://sso.example.com/sso/callback",
                scopes: &scopes,
                state: "st",
                nonce: "no",
                code_challenge: &challenge,
                login_hint: Some("a@acme.com"),
            },
        )
        .unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "acme");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "openid email");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["login_hint"], "a@acme.com");
        assert_eq!(q["client_id"], "c");
        assert_eq!(q["redirect_uri"], "https://sso.example.com/sso/callback");
        assert_eq!(q["state"], "st");
        assert_eq!(q["nonce"], "no");
        assert_eq!(q["code_challenge"], challenge.as_str());
        assert_eq!(url.query_pairs().count(), 10, "{url}");
    }

    /// Answers one HTTP request with `answer` and hands back the request as text.
    async fn one_request(
        status: u16,
        answer: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            sock.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&seen).to_string()
        });
        (url, server)
    }

    async fn exchange(meta: &ProviderMetadata) -> Result<Tokens, ExchangeError> {
        exchange_code(
            &crate::test_support::idp_keys::http_client(),
            meta,
            "c:id",
            &Secret::new("s+cret&="),
            "the-code",
            "https://sso.example.com/sso/callback",
            "the-verifier",
        )
        .await
    }

    #[tokio::test]
    async fn exchange_authenticates_as_the_provider_asks() {
        use base64::Engine;
        // Basic: RFC 6749 §2.3.1 form-urlencodes both parts; the answer's text/plain label does
        // not matter, its JSON body does.
        let (url, server) = one_request(
            200,
            r#"{"token_type":"Bearer","id_token":"a.b.c","access_token":"at"}"#,
        )
        .await;
        let tokens = exchange(&meta(&url, serde_json::json!([]))).await.unwrap();
        assert_eq!(tokens.id_token, "a.b.c");
        assert_eq!(tokens.access_token.unwrap().secret(), "at");
        let seen = server.await.unwrap();
        let basic = base64::engine::general_purpose::STANDARD.encode("c%3Aid:s%2Bcret%26%3D");
        assert!(
            seen.contains(&format!("authorization: Basic {basic}")),
            "{seen}"
        );
        assert!(seen.contains("accept: application/json"), "{seen}");
        let body = seen.split_once("\r\n\r\n").unwrap().1;
        let form: std::collections::HashMap<_, _> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(form["grant_type"], "authorization_code");
        assert_eq!(form["code"], "the-code");
        assert_eq!(form["code_verifier"], "the-verifier");
        assert_eq!(form["redirect_uri"], "https://sso.example.com/sso/callback");
        assert!(!form.contains_key("client_secret"), "{seen}");

        // Post, when that is all the provider offers.
        let (url, server) = one_request(201, r#"{"id_token":"a.b.c"}"#).await;
        let tokens = exchange(&meta(&url, serde_json::json!(["client_secret_post"])))
            .await
            .unwrap();
        assert!(tokens.access_token.is_none());
        let seen = server.await.unwrap();
        assert!(
            !seen.to_ascii_lowercase().contains("authorization:"),
            "{seen}"
        );
        let body = seen.split_once("\r\n\r\n").unwrap().1;
        let form: std::collections::HashMap<_, _> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(form["client_id"], "c:id");
        assert_eq!(form["client_secret"], "s+cret&=");
    }

    #[tokio::test]
    async fn private_key_jwt_sends_an_assertion_and_no_secret() {
        let (url, server) = one_request(200, r#"{"id_token":"a.b.c"}"#).await;
        let meta = meta(&url, serde_json::json!(["private_key_jwt"]));
        let assertion = Secret::new("h.p.s");
        exchange_code_with(
            &crate::test_support::idp_keys::http_client(),
            &meta,
            "c:id",
            &ClientAuth::Assertion(&assertion),
            "the-code",
            "https://sso.example.com/sso/callback",
            "the-verifier",
        )
        .await
        .unwrap();
        let seen = server.await.unwrap();
        assert!(
            !seen.to_ascii_lowercase().contains("authorization:"),
            "{seen}"
        );
        let body = seen.split_once("\r\n\r\n").unwrap().1;
        let form: std::collections::HashMap<_, _> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(form["client_id"], "c:id");
        assert_eq!(form["client_assertion_type"], ASSERTION_TYPE);
        assert_eq!(form["client_assertion"], "h.p.s");
        assert_eq!(form["code"], "the-code");
        assert_eq!(form["code_verifier"], "the-verifier");
        assert!(!form.contains_key("client_secret"), "{seen}");
    }

    #[tokio::test]
    async fn exchange_failures_read_as_before() {
        let cases: [(u16, &'static str, &str); 7] = [
            (200, "not json", "not a token response (not JSON)"),
            (200, "", "not a token response (not JSON)"),
            (200, r#"{"id_token":5}"#, "(id_token is not a string)"),
            (200, r#"{"access_token":"x"}"#, "no ID token"),
            (502, "<html>", "failed with HTTP 502"),
            (401, r#"{"error":5}"#, "failed with HTTP 401"),
            (
                400,
                r#"{"error":"invalid_grant\r\n","error_description":7}"#,
                "refused the sign-in code (invalid_grant)",
            ),
        ];
        for (status, answer, says) in cases {
            let (url, _server) = one_request(status, answer).await;
            let err = exchange(&meta(&url, serde_json::json!([])))
                .await
                .unwrap_err();
            assert!(err.to_string().contains(says), "{answer}: {err}");
        }
        let err = exchange(&meta("http://127.0.0.1:9/token", serde_json::json!([])))
            .await
            .unwrap_err();
        assert!(matches!(err, ExchangeError::Unreachable(_)), "{err}");
    }
}
