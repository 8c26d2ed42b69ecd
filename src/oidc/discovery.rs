//! OpenID Connect discovery: fetch `/.well-known/openid-configuration`, check it, and fetch the
//! JWKS it names. Every refusal says which part of the provider's answer was wrong.
//!
//! [`ProviderMetadata`] is orgsso's own struct, not openidconnect's `ProviderMetadata<…>`, but its
//! endpoints and client authentication methods are the crate's types, so the client in
//! [`super::client`] and the logout request in [`super::logout`] take them as they are. Why not the
//! crate's struct: it requires `response_types_supported` and `subject_types_supported`, which the
//! rows stored in `sso_connections.metadata` do not have (they would no longer load), its serde
//! errors cannot say which field was wrong the way [`check_document`] does, and its signing
//! algorithm list silently drops names it does not know (a refusal lists what the provider
//! offered). The crate's URL types serialise as the exact string they were parsed from, so stored
//! JSON reads and writes as before.

use openidconnect::core::CoreClientAuthMethod;
use openidconnect::{AuthUrl, EndSessionUrl, IssuerUrl, JsonWebKeySetUrl, TokenUrl, UserInfoUrl};
use serde::{Deserialize, Serialize};
use url::Url;

use super::client_auth::TokenAuthMethod;
use crate::domain::{is_loopback, Issuer};
use crate::jose::alg::{alg_name, ID_TOKEN_ALGS};
use crate::outbound::{read_limited, Http};

const MAX_DOCUMENT: usize = 512 * 1024;

/// What orgsso keeps of the provider's discovery document (stored as JSON with each connection).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProviderMetadata {
    pub(super) issuer: IssuerUrl,
    pub(super) authorization_endpoint: AuthUrl,
    pub(super) token_endpoint: TokenUrl,
    pub(super) jwks_uri: JsonWebKeySetUrl,
    /// Where claims the ID token lacks may be asked for; see [`super::userinfo`]. Absent in rows
    /// stored before orgsso used it, and optional in discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) userinfo_endpoint: Option<UserInfoUrl>,
    /// RP-initiated logout; see [`super::logout::end_session_url`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) end_session_endpoint: Option<EndSessionUrl>,
    /// Empty means the spec default, `client_secret_basic`.
    #[serde(default)]
    pub(super) token_endpoint_auth_methods_supported: Vec<CoreClientAuthMethod>,
    /// Kept as names: checked against orgsso's allow-list by [`Self::id_token_algorithms`].
    #[serde(default)]
    pub(super) id_token_signing_alg_values_supported: Vec<String>,
    /// RFC 9207: when true the callback must carry `iss`.
    #[serde(default)]
    pub(super) authorization_response_iss_parameter_supported: bool,
}

impl ProviderMetadata {
    pub fn token_endpoint(&self) -> &Url {
        self.token_endpoint.url()
    }

    pub fn jwks_uri(&self) -> &Url {
        self.jwks_uri.url()
    }

    pub fn userinfo_endpoint(&self) -> Option<&Url> {
        self.userinfo_endpoint.as_ref().map(UserInfoUrl::url)
    }

    pub fn end_session_endpoint(&self) -> Option<&Url> {
        self.end_session_endpoint.as_ref().map(EndSessionUrl::url)
    }

    /// The methods the provider lists; empty means it did not say.
    pub fn token_auth_methods_supported(&self) -> &[CoreClientAuthMethod] {
        &self.token_endpoint_auth_methods_supported
    }

    /// How orgsso authenticates at this provider's token endpoint.
    pub fn token_auth_method(&self) -> TokenAuthMethod {
        TokenAuthMethod::choose(&self.token_endpoint_auth_methods_supported)
            .unwrap_or(TokenAuthMethod::ClientSecretBasic)
    }

    /// RFC 9207: whether the callback must carry `iss`.
    pub fn iss_parameter_supported(&self) -> bool {
        self.authorization_response_iss_parameter_supported
    }

    /// Algorithms we accept for this provider's ID tokens: its advertised list within our
    /// allow-list (never `none`, never HMAC).
    pub fn id_token_algorithms(&self) -> Vec<jsonwebtoken::Algorithm> {
        if self.id_token_signing_alg_values_supported.is_empty() {
            return vec![jsonwebtoken::Algorithm::RS256];
        }
        ID_TOKEN_ALGS
            .iter()
            .copied()
            .filter(|a| {
                self.id_token_signing_alg_values_supported
                    .iter()
                    .any(|s| alg_name(*a) == s)
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the issuer's discovery document at {url} could not be fetched: {reason}. Check the issuer URL and that the IdP is reachable from orgsso")]
    Unreachable { url: String, reason: String },
    #[error("the issuer's discovery document at {url} answered HTTP {status}; is the issuer URL right? (it is the URL before /.well-known/openid-configuration)")]
    Status { url: String, status: u16 },
    #[error("the issuer's discovery document at {url} is not valid JSON ({reason})")]
    NotJson { url: String, reason: String },
    #[error("the discovery document lacks `{0}`, which OpenID Connect requires")]
    Missing(&'static str),
    #[error("the discovery document says its issuer is {found:?}, not {expected:?}: use exactly the issuer the document names")]
    IssuerMismatch { expected: String, found: String },
    #[error("the discovery document's `{field}` is not usable: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("the IdP's JWKS at {url} is not usable: {reason}")]
    Jwks { url: String, reason: String },
    #[error("{0}")]
    NotAllowed(String),
}

/// Fetches and checks the provider's configuration and its JWKS (returned raw, to seed the
/// key cache).
/// `http` is the client of whoever supplied the issuer: for an org admin, the discovery URL
/// and every endpoint the document names are checked before anything is fetched from them
/// (a clear refusal), and each fetch is pinned to public addresses as it connects.
#[cfg(test)]
pub async fn discover(
    http: &Http,
    issuer: &Issuer,
) -> Result<(ProviderMetadata, serde_json::Value), DiscoveryError> {
    discover_for(http, issuer, None).await
}

/// [`discover`] for a connection that authenticates with `method` (`None`: automatic, which
/// needs a secret method).
pub async fn discover_for(
    http: &Http,
    issuer: &Issuer,
    method: Option<TokenAuthMethod>,
) -> Result<(ProviderMetadata, serde_json::Value), DiscoveryError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    );
    http.check(&url).await.map_err(DiscoveryError::NotAllowed)?;
    let doc = fetch_json(http, &url).await?;
    let meta = check_document_for(&doc, issuer, method)?;
    // Only what orgsso itself fetches: the authorization and end-session endpoints are the
    // browser's to visit.
    let userinfo = meta.userinfo_endpoint.as_ref().map(|u| u.as_str());
    for endpoint in [meta.token_endpoint.as_str(), meta.jwks_uri.as_str()]
        .into_iter()
        .chain(userinfo)
    {
        http.check(endpoint)
            .await
            .map_err(DiscoveryError::NotAllowed)?;
    }
    let jwks = fetch_json(http, &meta.jwks_uri)
        .await
        .map_err(|e| DiscoveryError::Jwks {
            url: meta.jwks_uri.to_string(),
            reason: e.to_string(),
        })?;
    match jwks.get("keys") {
        Some(serde_json::Value::Array(keys)) if !keys.is_empty() => Ok((meta, jwks)),
        _ => Err(DiscoveryError::Jwks {
            url: meta.jwks_uri.to_string(),
            reason: "it has no `keys` array with at least one key".into(),
        }),
    }
}

async fn fetch_json(http: &Http, url: &str) -> Result<serde_json::Value, DiscoveryError> {
    let request = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    let resp = http
        .send(request)
        .await
        .map_err(|reason| DiscoveryError::Unreachable {
            url: url.into(),
            reason,
        })?;
    if !resp.status().is_success() {
        return Err(DiscoveryError::Status {
            url: url.into(),
            status: resp.status().as_u16(),
        });
    }
    let body = read_limited(resp, MAX_DOCUMENT)
        .await
        .map_err(|e| DiscoveryError::Unreachable {
            url: url.into(),
            reason: e.to_string(),
        })?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| DiscoveryError::NotJson {
            url: url.into(),
            reason: e.to_string(),
        })?;
    if !value.is_object() {
        return Err(DiscoveryError::NotJson {
            url: url.into(),
            reason: "expected a JSON object".into(),
        });
    }
    Ok(value)
}

/// Pure check of a discovery document against the configured issuer, for automatic client
/// authentication.
#[cfg(test)]
pub fn check_document(
    doc: &serde_json::Value,
    issuer: &Issuer,
) -> Result<ProviderMetadata, DiscoveryError> {
    check_document_for(doc, issuer, None)
}

/// [`check_document`] for a connection that authenticates with `method` (`None`: automatic).
pub fn check_document_for(
    doc: &serde_json::Value,
    issuer: &Issuer,
    method: Option<TokenAuthMethod>,
) -> Result<ProviderMetadata, DiscoveryError> {
    let text = |field: &'static str| -> Result<String, DiscoveryError> {
        match doc.get(field) {
            None | Some(serde_json::Value::Null) => Err(DiscoveryError::Missing(field)),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(DiscoveryError::BadField {
                field,
                reason: "it is not a string".into(),
            }),
        }
    };
    let found = text("issuer")?;
    if found != issuer.as_str() {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.as_str().into(),
            found,
        });
    }
    let strings = |field: &'static str| -> Result<Vec<String>, DiscoveryError> {
        match doc.get(field) {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(DiscoveryError::BadField {
                    field,
                    reason: "it must be an array of strings".into(),
                }),
            Some(_) => Err(DiscoveryError::BadField {
                field,
                reason: "it must be an array of strings".into(),
            }),
        }
    };
    let issuer_url = IssuerUrl::new(found.clone()).map_err(|e| DiscoveryError::BadField {
        field: "issuer",
        reason: e.to_string(),
    })?;
    // Evaluated in the document's field order, so the first defect is the one reported.
    let authorization_endpoint = endpoint(
        "authorization_endpoint",
        text("authorization_endpoint")?,
        AuthUrl::new,
    )?;
    let token_endpoint = endpoint("token_endpoint", text("token_endpoint")?, TokenUrl::new)?;
    let jwks_uri = endpoint("jwks_uri", text("jwks_uri")?, JsonWebKeySetUrl::new)?;
    let userinfo_endpoint = match doc.get("userinfo_endpoint") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => {
            Some(endpoint("userinfo_endpoint", s.clone(), UserInfoUrl::new)?)
        }
        Some(_) => {
            return Err(DiscoveryError::BadField {
                field: "userinfo_endpoint",
                reason: "it is not a string".into(),
            })
        }
    };
    let end_session_endpoint = match doc.get("end_session_endpoint") {
        Some(serde_json::Value::String(s)) => Some(endpoint(
            "end_session_endpoint",
            s.clone(),
            EndSessionUrl::new,
        )?),
        _ => None,
    };
    let auth_methods = strings("token_endpoint_auth_methods_supported")?;
    let meta = ProviderMetadata {
        issuer: issuer_url,
        authorization_endpoint,
        token_endpoint,
        jwks_uri,
        userinfo_endpoint,
        end_session_endpoint,
        token_endpoint_auth_methods_supported: auth_methods
            .iter()
            .map(|m| serde_json::from_value(serde_json::Value::String(m.clone())))
            .collect::<Result<_, _>>()
            .map_err(|e| DiscoveryError::BadField {
                field: "token_endpoint_auth_methods_supported",
                reason: e.to_string(),
            })?,
        id_token_signing_alg_values_supported: strings("id_token_signing_alg_values_supported")?,
        authorization_response_iss_parameter_supported: doc
            .get("authorization_response_iss_parameter_supported")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    };
    let response_types = strings("response_types_supported")?;
    if !response_types.is_empty() && !response_types.iter().any(|t| t == "code") {
        return Err(DiscoveryError::BadField {
            field: "response_types_supported",
            reason: "the IdP does not offer the authorization code flow (response type `code`)"
                .into(),
        });
    }
    match method {
        None if TokenAuthMethod::choose(&meta.token_endpoint_auth_methods_supported).is_none() => {
            return Err(DiscoveryError::BadField {
                field: "token_endpoint_auth_methods_supported",
                reason: format!(
                    "automatically, orgsso authenticates with {}; the IdP offers only {:?} (set token_auth_method to private_key_jwt if it offers that)",
                    TokenAuthMethod::OFFERED,
                    auth_methods
                ),
            });
        }
        Some(m) if !m.offered_by(&meta.token_endpoint_auth_methods_supported) => {
            return Err(DiscoveryError::BadField {
                field: "token_endpoint_auth_methods_supported",
                reason: format!(
                    "the IdP does not offer {m}, only {auth_methods:?}: choose one of those as token_auth_method, or leave it out for automatic"
                ),
            });
        }
        _ => {}
    }
    if method == Some(TokenAuthMethod::PrivateKeyJwt) {
        // orgsso's client assertions are ES256: an IdP that lists its accepted algorithms
        // without ES256 would refuse every sign-in later.
        let algs = strings("token_endpoint_auth_signing_alg_values_supported")?;
        if !algs.is_empty() && !algs.iter().any(|a| a == "ES256") {
            return Err(DiscoveryError::BadField {
                field: "token_endpoint_auth_signing_alg_values_supported",
                reason: format!(
                    "orgsso signs client assertions with ES256, and the IdP accepts only {algs:?}: use client_secret_basic or client_secret_post with this IdP"
                ),
            });
        }
    }
    if meta.id_token_algorithms().is_empty() {
        return Err(DiscoveryError::BadField {
            field: "id_token_signing_alg_values_supported",
            reason: format!(
                "the IdP signs ID tokens only with {:?}; orgsso accepts RS256/384/512, PS256/384/512, ES256/384 and EdDSA",
                meta.id_token_signing_alg_values_supported
            ),
        });
    }
    Ok(meta)
}

/// Checks an endpoint (the refusal names its field), then gives it the crate's URL type.
fn endpoint<T>(
    field: &'static str,
    s: String,
    typed: fn(String) -> Result<T, url::ParseError>,
) -> Result<T, DiscoveryError> {
    check_endpoint(&s).map_err(|reason| DiscoveryError::BadField { field, reason })?;
    typed(s).map_err(|e| DiscoveryError::BadField {
        field,
        reason: e.to_string(),
    })
}

/// Endpoints follow the issuer rule: https, or http on a loopback host.
fn check_endpoint(s: &str) -> Result<(), String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err(format!("{s:?} must use https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issuer() -> Issuer {
        Issuer::parse("https://idp.example.com").unwrap()
    }

    fn doc() -> serde_json::Value {
        json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": "https://idp.example.com/token",
            "jwks_uri": "https://idp.example.com/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256", "HS256"],
        })
    }

    #[test]
    fn accepts_a_good_document() {
        let m = check_document(&doc(), &issuer()).unwrap();
        assert_eq!(
            m.id_token_algorithms(),
            vec![jsonwebtoken::Algorithm::RS256]
        );
        assert_eq!(m.token_auth_method(), TokenAuthMethod::ClientSecretBasic);
    }

    #[test]
    fn refuses_bad_documents() {
        type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "issuer mismatch",
                Box::new(|d| d["issuer"] = json!("https://other.example.com")),
                "not \"https://idp.example.com\"",
            ),
            (
                "trailing slash counts",
                Box::new(|d| d["issuer"] = json!("https://idp.example.com/")),
                "issuer",
            ),
            (
                "no jwks_uri",
                Box::new(|d| {
                    d.as_object_mut().unwrap().remove("jwks_uri");
                }),
                "lacks `jwks_uri`",
            ),
            (
                "no token endpoint",
                Box::new(|d| {
                    d.as_object_mut().unwrap().remove("token_endpoint");
                }),
                "token_endpoint",
            ),
            (
                "http endpoint",
                Box::new(|d| d["token_endpoint"] = json!("http://idp.example.com/token")),
                "https",
            ),
            (
                "no code flow",
                Box::new(|d| d["response_types_supported"] = json!(["id_token"])),
                "authorization code",
            ),
            (
                "only HMAC",
                Box::new(|d| d["id_token_signing_alg_values_supported"] = json!(["HS256", "none"])),
                "accepts",
            ),
            (
                "private_key_jwt only",
                Box::new(|d| {
                    d["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"])
                }),
                "client_secret_basic",
            ),
            (
                "wrong type",
                Box::new(|d| d["jwks_uri"] = json!(5)),
                "not a string",
            ),
            (
                "http userinfo endpoint",
                Box::new(|d| d["userinfo_endpoint"] = json!("http://idp.example.com/me")),
                "`userinfo_endpoint` is not usable: \"http://idp.example.com/me\" must use https",
            ),
            (
                "userinfo endpoint not a string",
                Box::new(|d| d["userinfo_endpoint"] = json!(["https://idp.example.com/me"])),
                "`userinfo_endpoint` is not usable: it is not a string",
            ),
        ];
        for (name, mutate, expect) in cases {
            let mut d = doc();
            mutate(&mut d);
            let err = check_document(&d, &issuer()).expect_err(name).to_string();
            assert!(err.contains(expect), "{name}: {err}");
        }
    }

    #[test]
    fn userinfo_endpoint_is_kept_when_offered() {
        assert_eq!(
            check_document(&doc(), &issuer())
                .unwrap()
                .userinfo_endpoint(),
            None
        );
        let mut d = doc();
        d["userinfo_endpoint"] = json!("https://idp.example.com/me");
        let m = check_document(&d, &issuer()).unwrap();
        assert_eq!(
            m.userinfo_endpoint().map(Url::as_str),
            Some("https://idp.example.com/me")
        );
        let stored = serde_json::to_value(&m).unwrap();
        assert_eq!(stored["userinfo_endpoint"], "https://idp.example.com/me");
        let back: ProviderMetadata = serde_json::from_value(stored).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn an_explicit_method_must_be_offered() {
        use TokenAuthMethod::*;
        #[rustfmt::skip]
        let cases = [
            (json!(["private_key_jwt"]), Some(PrivateKeyJwt), true),
            (json!(["private_key_jwt"]), None, false),
            (json!(["client_secret_basic"]), Some(ClientSecretPost), false),
            (json!(["client_secret_basic", "client_secret_post"]), Some(PrivateKeyJwt), false),
            (json!([]), Some(PrivateKeyJwt), true),
            (json!(["client_secret_post"]), Some(ClientSecretPost), true),
        ];
        for (listed, method, ok) in cases {
            let mut d = doc();
            d["token_endpoint_auth_methods_supported"] = listed.clone();
            match check_document_for(&d, &issuer(), method) {
                Ok(_) => assert!(ok, "{listed} {method:?} accepted"),
                Err(e) => {
                    assert!(!ok, "{listed} {method:?}: {e}");
                    assert!(e.to_string().contains("token_auth_method"), "{e}");
                }
            }
        }
    }

    #[test]
    fn private_key_jwt_needs_es256_when_the_idp_lists_assertion_algorithms() {
        #[rustfmt::skip]
        let cases = [(None, true), (Some(json!(["ES256", "RS256"])), true), (Some(json!(["RS256", "PS256"])), false)];
        for (algs, ok) in cases {
            let mut d = doc();
            d["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
            if let Some(a) = &algs {
                d["token_endpoint_auth_signing_alg_values_supported"] = a.clone();
            }
            let result = check_document_for(&d, &issuer(), Some(TokenAuthMethod::PrivateKeyJwt));
            assert_eq!(result.is_ok(), ok, "{algs:?}");
            if let Err(e) = result {
                assert!(e.to_string().contains("ES256"), "{e}");
            }
        }
    }

    #[test]
    fn post_auth_only_when_basic_is_missing() {
        let mut d = doc();
        d["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
        assert_eq!(
            check_document(&d, &issuer()).unwrap().token_auth_method(),
            TokenAuthMethod::ClientSecretPost
        );
        d["token_endpoint_auth_methods_supported"] =
            json!(["client_secret_post", "client_secret_basic"]);
        assert_eq!(
            check_document(&d, &issuer()).unwrap().token_auth_method(),
            TokenAuthMethod::ClientSecretBasic
        );
    }

    #[test]
    fn rows_stored_by_earlier_versions_load_and_write_back_unchanged() {
        // Exactly what the hand-written struct of earlier versions wrote.
        let full = r#"{"issuer":"https://idp.example.com","authorization_endpoint":"https://idp.example.com/auth?tenant=a","token_endpoint":"https://idp.example.com/token","jwks_uri":"https://idp.example.com/jwks","end_session_endpoint":"https://idp.example.com/logout","token_endpoint_auth_methods_supported":["client_secret_post","tls_client_auth"],"id_token_signing_alg_values_supported":["RS256","HS256","XX999"],"authorization_response_iss_parameter_supported":true}"#;
        let m: ProviderMetadata = serde_json::from_str(full).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), full);
        assert_eq!(m.token_auth_method(), TokenAuthMethod::ClientSecretPost);
        assert_eq!(m.token_endpoint().as_str(), "https://idp.example.com/token");
        assert_eq!(
            m.end_session_endpoint().map(Url::as_str),
            Some("https://idp.example.com/logout")
        );
        assert!(m.iss_parameter_supported());
        let minimal = r#"{"issuer":"https://idp.example.com","authorization_endpoint":"https://idp.example.com/auth","token_endpoint":"https://idp.example.com/token","jwks_uri":"https://idp.example.com/jwks","token_endpoint_auth_methods_supported":[],"id_token_signing_alg_values_supported":[],"authorization_response_iss_parameter_supported":false}"#;
        let m: ProviderMetadata = serde_json::from_str(minimal).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), minimal);
        assert_eq!(m.end_session_endpoint(), None);
        assert_eq!(m.token_auth_method(), TokenAuthMethod::ClientSecretBasic);
        assert_eq!(
            m.id_token_algorithms(),
            vec![jsonwebtoken::Algorithm::RS256]
        );
        // And what check_document makes serialises as the old struct did (no URL normalising).
        let m = check_document(&doc(), &issuer()).unwrap();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["issuer"], "https://idp.example.com");
        assert_eq!(v["authorization_endpoint"], "https://idp.example.com/auth");
    }
}
