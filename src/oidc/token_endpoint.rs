//! What openidconnect's code exchange needs from orgsso to behave as orgsso always has: the HTTP
//! client it sends through ([`send`]) and the two answer types it parses into ([`TokenAnswer`],
//! [`TokenRefusal`]).
//!
//! The crate builds the request (form, PKCE verifier, client authentication). Its stock parts
//! would answer differently: its reqwest client reads any body size, it takes only HTTP 200 as
//! success and refuses a JSON body labelled with another Content-Type, a non-JSON error page
//! loses its status code, and its standard token response requires `access_token`, a known
//! `token_type` and a numeric `expires_in`, and parses `id_token` into its own type (a garbage
//! ID token must reach orgsso's verifier, which answers 401, not fail the exchange). So
//! [`send`] bounds the body and sorts answers by status the way orgsso did before, and the
//! answer types keep what orgsso checks, untyped, for `client::exchange_code` to judge.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreTokenType,
};
use openidconnect::http::{self, StatusCode};
use openidconnect::{
    AccessToken, AsyncHttpClient, EmptyAdditionalClaims, ErrorResponse, HttpRequest, HttpResponse,
    IdToken, JsonWebKey, RefreshToken, RequestTokenError, Scope,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::printable;
use crate::outbound::{describe, read_limited, BodyError, Http};

const MAX_TOKEN_RESPONSE: usize = 256 * 1024;

/// Why the token endpoint gave no answer the crate should parse.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Unreachable(String),
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A failure status without an RFC 6749 §5.2 error object.
    #[error("HTTP {0}")]
    Status(u16),
    #[error("not JSON")]
    NotJson,
}

/// openidconnect's HTTP client for the token endpoint: [`send`] through orgsso's IdP client.
/// (A named type with a boxed `Send` future: a closure here makes the sign-in handler's future
/// fail the `Send` check.)
pub struct TokenHttp<'a>(pub &'a Http);

impl<'c> AsyncHttpClient<'c> for TokenHttp<'_> {
    type Error = WireError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, WireError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(self.0, request))
    }
}

/// Sends one token request through orgsso's IdP client (no redirects, its timeouts) and reads
/// at most 256 KiB of the answer. A 2xx answer must be JSON and goes on as a plain 200 (orgsso
/// judges it by its body, whatever its Content-Type); a failure goes on only when it is an
/// RFC 6749 error object, so the crate can parse it; any other failure keeps its status.
async fn send(http: &Http, request: HttpRequest) -> Result<HttpResponse, WireError> {
    let request =
        reqwest::Request::try_from(request).map_err(|e| WireError::Unreachable(describe(&e)))?;
    let resp = http
        .execute(request)
        .await
        .map_err(WireError::Unreachable)?;
    let status = resp.status();
    let body = read_limited(resp, MAX_TOKEN_RESPONSE).await?;
    let status = if status.is_success() {
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|_| WireError::NotJson)?;
        StatusCode::OK
    } else if serde_json::from_slice::<TokenRefusal>(&body).is_ok() {
        status
    } else {
        return Err(WireError::Status(status.as_u16()));
    };
    let mut answer = http::Response::new(body);
    *answer.status_mut() = status;
    Ok(answer)
}

/// An RFC 6749 §5.2 error answer: a JSON object whose `error` is a string. The description is
/// kept only when it is a string; other members are ignored.
#[derive(Clone, Serialize)]
pub struct TokenRefusal {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl<'de> Deserialize<'de> for TokenRefusal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let text = |k: &str| v.get(k).and_then(|e| e.as_str()).map(str::to_owned);
        Ok(TokenRefusal {
            error: text("error")
                .ok_or_else(|| serde::de::Error::custom("no RFC 6749 `error` string"))?,
            error_description: text("error_description"),
        })
    }
}

impl fmt::Debug for TokenRefusal {
    // IdP text: shown only through `printable` by the caller.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRefusal")
            .field("error", &printable(&self.error, 64))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&printable(&self.error, 64))
    }
}

impl ErrorResponse for TokenRefusal {}

/// A successful token answer, kept as the JSON it was (any JSON value: what orgsso requires of
/// it is checked by [`TokenAnswer::into_tokens`]). Its Debug shows no token.
pub struct TokenAnswer {
    raw: serde_json::Value,
    /// `access_token` when it is a string, else empty: the crate's trait wants one.
    access_token: AccessToken,
    /// For the crate's trait only; orgsso's own check is on the raw value.
    token_type: CoreTokenType,
}

/// The ID token as it came, and the access token for calls on the user's behalf (userinfo).
pub struct Tokens {
    pub id_token: String,
    pub access_token: Option<AccessToken>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("id_token", &"[redacted]")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl TokenAnswer {
    /// The checks orgsso has always made: `token_type`, when present, is Bearer or DPoP (any
    /// case); `id_token` is a non-empty string (its contents are the verifier's business).
    pub fn into_tokens(self) -> Result<Tokens, ExchangeError> {
        if let Some(tt) = self.raw.get("token_type") {
            if !tt
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("dpop"))
            {
                return Err(ExchangeError::Malformed("unexpected token_type".into()));
            }
        }
        let id_token = match self.raw.get("id_token") {
            Some(serde_json::Value::String(t)) if !t.is_empty() => t.clone(),
            Some(_) => return Err(ExchangeError::Malformed("id_token is not a string".into())),
            None => return Err(ExchangeError::NoIdToken),
        };
        let access_token = (!self.access_token.secret().is_empty()).then_some(self.access_token);
        Ok(Tokens {
            id_token,
            access_token,
        })
    }
}

impl<'de> Deserialize<'de> for TokenAnswer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        let text = |k: &str| raw.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let token_type = match text("token_type") {
            t if t.eq_ignore_ascii_case("bearer") || t.is_empty() => CoreTokenType::Bearer,
            t => CoreTokenType::Extension(t.to_ascii_lowercase()),
        };
        Ok(TokenAnswer {
            access_token: AccessToken::new(text("access_token").to_owned()),
            token_type,
            raw,
        })
    }
}

impl Serialize for TokenAnswer {
    // Required by the crate's trait; orgsso never serialises an answer.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAnswer").finish_non_exhaustive()
    }
}

impl openidconnect::OAuth2TokenResponse for TokenAnswer {
    type TokenType = CoreTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &CoreTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<std::time::Duration> {
        None
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        None
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

impl
    openidconnect::TokenResponse<
        EmptyAdditionalClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        <CoreJsonWebKey as JsonWebKey>::SigningAlgorithm,
    > for TokenAnswer
{
    /// Always `None`: orgsso verifies the raw ID token itself (`Tokens::id_token`).
    fn id_token(
        &self,
    ) -> Option<
        &IdToken<
            EmptyAdditionalClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            <CoreJsonWebKey as JsonWebKey>::SigningAlgorithm,
        >,
    > {
        None
    }
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
    /// orgsso's own settings make no valid request (not reached with a checked public URL).
    #[error("orgsso's configuration is not usable: {0}")]
    Config(String),
}

impl From<RequestTokenError<WireError, TokenRefusal>> for ExchangeError {
    fn from(e: RequestTokenError<WireError, TokenRefusal>) -> Self {
        match e {
            // RFC 6749 §5.2 error answers are shown (trimmed, printable) so an admin can act on them.
            RequestTokenError::ServerResponse(r) => ExchangeError::Refused {
                error: printable(&r.error, 64),
                description: r.error_description.as_deref().map(|d| printable(d, 300)),
            },
            RequestTokenError::Request(WireError::Unreachable(reason)) => {
                ExchangeError::Unreachable(reason)
            }
            RequestTokenError::Request(WireError::Status(status)) => ExchangeError::Status(status),
            RequestTokenError::Request(WireError::Body(e)) => {
                ExchangeError::Malformed(e.to_string())
            }
            // `Parse` is not reached: the wire lets only JSON through, which both answer types
            // take whole.
            RequestTokenError::Request(WireError::NotJson) | RequestTokenError::Parse(..) => {
                ExchangeError::Malformed("not JSON".into())
            }
            RequestTokenError::Other(reason) => ExchangeError::Malformed(printable(&reason, 200)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(v: serde_json::Value) -> Result<Tokens, ExchangeError> {
        serde_json::from_value::<TokenAnswer>(v)
            .unwrap()
            .into_tokens()
    }

    #[test]
    fn answers_are_judged_as_before() {
        use serde_json::json;
        let ok =
            answer(json!({"token_type": "DPoP", "id_token": "not.a.jwt", "access_token": "at"}))
                .unwrap();
        assert_eq!(ok.id_token, "not.a.jwt");
        assert_eq!(ok.access_token.unwrap().secret(), "at");
        // No access_token, a string expires_in: still an answer (the crate's type would refuse).
        let ok = answer(json!({"id_token": "x", "expires_in": "3600"})).unwrap();
        assert!(ok.access_token.is_none());
        assert!(matches!(
            answer(json!({"token_type": "mac", "id_token": "x"})),
            Err(ExchangeError::Malformed(m)) if m == "unexpected token_type"
        ));
        assert!(matches!(
            answer(json!({"token_type": 5, "id_token": "x"})),
            Err(ExchangeError::Malformed(m)) if m == "unexpected token_type"
        ));
        assert!(matches!(
            answer(json!({"id_token": 7})),
            Err(ExchangeError::Malformed(m)) if m == "id_token is not a string"
        ));
        assert!(matches!(
            answer(json!({"id_token": ""})),
            Err(ExchangeError::Malformed(m)) if m == "id_token is not a string"
        ));
        assert!(matches!(answer(json!([1])), Err(ExchangeError::NoIdToken)));
        let debug = format!(
            "{:?}",
            answer(json!({"id_token": "secret-jwt", "access_token": "secret-at"})).unwrap()
        );
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn refusals_need_an_error_string() {
        let r: TokenRefusal =
            serde_json::from_str(r#"{"error":"invalid_grant","error_description":5}"#).unwrap();
        assert_eq!(r.error, "invalid_grant");
        assert_eq!(r.error_description, None);
        assert!(serde_json::from_str::<TokenRefusal>(r#"{"error":5}"#).is_err());
        assert!(serde_json::from_str::<TokenRefusal>("[]").is_err());
    }
}
