//! The relying-party side of the authorization code flow: the authorization request and the
//! code exchange at the token endpoint.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use url::Url;

use super::discovery::ProviderMetadata;
use super::{describe, read_limited};
use crate::crypto::Secret;

const MAX_TOKEN_RESPONSE: usize = 256 * 1024;

/// What goes into the authorization request besides the provider's metadata.
pub struct AuthorizeRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub nonce: &'a str,
    pub code_challenge: &'a str,
    pub login_hint: Option<&'a str>,
}

/// The IdP's authorization endpoint with the request's parameters appended to any it already has.
pub fn authorize_url(
    meta: &ProviderMetadata,
    req: &AuthorizeRequest<'_>,
) -> Result<Url, url::ParseError> {
    let mut url = Url::parse(&meta.authorization_endpoint)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", req.client_id)
            .append_pair("redirect_uri", req.redirect_uri)
            .append_pair("scope", &req.scopes.join(" "))
            .append_pair("state", req.state)
            .append_pair("nonce", req.nonce)
            .append_pair("code_challenge", req.code_challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = req.login_hint {
            q.append_pair("login_hint", hint);
        }
    }
    Ok(url)
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("the identity provider's token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the identity provider refused the sign-in code ({error}{})", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
    },
    #[error("the identity provider's token endpoint failed with HTTP {0}")]
    Status(u16),
    #[error("the identity provider's token endpoint answered something that is not a token response ({0})")]
    Malformed(String),
    #[error("the identity provider returned no ID token; the connection's scopes must include \"openid\"")]
    NoIdToken,
}

/// Exchanges the code for tokens and returns the raw ID token (the access and refresh tokens
/// are dropped: orgsso does not call the IdP on the user's behalf).
pub async fn exchange_code(
    http: &reqwest::Client,
    meta: &ProviderMetadata,
    client_id: &str,
    client_secret: &Secret,
    code: &str,
    redirect_uri: &str,
    code_verifier: &str,
) -> Result<String, ExchangeError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", code_verifier),
    ];
    let mut req = http
        .post(&meta.token_endpoint)
        .header(reqwest::header::ACCEPT, "application/json");
    if meta.use_post_auth() {
        form.push(("client_id", client_id));
        form.push(("client_secret", client_secret.expose()));
    } else {
        // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = STANDARD.encode(format!(
            "{}:{}",
            enc(client_id),
            enc(client_secret.expose())
        ));
        req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"));
    }
    let resp = req
        .form(&form)
        .send()
        .await
        .map_err(|e| ExchangeError::Unreachable(describe(&e)))?;
    let status = resp.status();
    let body = read_limited(resp, MAX_TOKEN_RESPONSE)
        .await
        .map_err(|e| ExchangeError::Malformed(e.to_string()))?;
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    if !status.is_success() {
        // RFC 6749 §5.2 error answers are shown (trimmed, printable) so an admin can act on them.
        if let Some(error) = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(|e| e.as_str())
        {
            return Err(ExchangeError::Refused {
                error: printable(error, 64),
                description: json
                    .as_ref()
                    .and_then(|j| j.get("error_description"))
                    .and_then(|d| d.as_str())
                    .map(|d| printable(d, 300)),
            });
        }
        return Err(ExchangeError::Status(status.as_u16()));
    }
    let json = json.ok_or_else(|| ExchangeError::Malformed("not JSON".into()))?;
    if let Some(tt) = json.get("token_type") {
        if !tt
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("dpop"))
        {
            return Err(ExchangeError::Malformed("unexpected token_type".into()));
        }
    }
    match json.get("id_token") {
        Some(serde_json::Value::String(t)) if !t.is_empty() => Ok(t.clone()),
        Some(_) => Err(ExchangeError::Malformed("id_token is not a string".into())),
        None => Err(ExchangeError::NoIdToken),
    }
}

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
    fn authorize_url_keeps_existing_query_and_sends_pkce() {
        let meta = ProviderMetadata {
            issuer: "https://idp.example.com".into(),
            authorization_endpoint: "https://idp.example.com/auth?tenant=acme".into(),
            token_endpoint: "https://idp.example.com/token".into(),
            jwks_uri: "https://idp.example.com/jwks".into(),
            end_session_endpoint: None,
            token_endpoint_auth_methods_supported: vec![],
            id_token_signing_alg_values_supported: vec![],
            authorization_response_iss_parameter_supported: false,
        };
        let scopes = vec!["openid".to_string(), "email".to_string()];
        let url = authorize_url(
            &meta,
            &AuthorizeRequest {
                client_id: "c",
                redirect_uri: "https://sso.example.com/sso/callback",
                scopes: &scopes,
                state: "st",
                nonce: "no",
                code_challenge: "ch",
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
    }

    #[test]
    fn printable_strips_control_characters() {
        assert_eq!(printable("bad\r\n<b>x</b>", 100), "bad<b>x</b>");
        assert_eq!(printable("abcdef", 3), "abc");
    }
}
