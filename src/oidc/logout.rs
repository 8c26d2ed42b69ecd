//! OpenID Connect RP-Initiated Logout 1.0: the URL that sends the browser to the provider's
//! end-session endpoint, built with openidconnect's `LogoutRequest`.

use std::str::FromStr;

use openidconnect::core::CoreIdToken;
use openidconnect::{ClientId, CsrfToken, LogoutRequest, PostLogoutRedirectUrl};
use url::Url;

use super::discovery::ProviderMetadata;

/// The provider's end-session URL for this client, or `None` when the provider has no
/// end-session endpoint. `post_logout_redirect_uri` must be registered at the provider.
///
/// `id_token_hint` is sent only when it parses as an ID token (the crate takes it typed); the
/// request stays valid without it, since `client_id` names the client.
pub fn end_session_url(
    meta: &ProviderMetadata,
    client_id: &str,
    post_logout_redirect_uri: &str,
    id_token_hint: Option<&str>,
    state: Option<&str>,
) -> Option<Url> {
    let mut request = LogoutRequest::from(meta.end_session_endpoint.clone()?)
        .set_client_id(ClientId::new(client_id.to_owned()));
    if let Some(hint) = id_token_hint.and_then(|t| CoreIdToken::from_str(t).ok()) {
        request = request.set_id_token_hint(&hint);
    }
    if let Ok(uri) = PostLogoutRedirectUrl::new(post_logout_redirect_uri.to_owned()) {
        request = request.set_post_logout_redirect_uri(uri);
    }
    if let Some(state) = state {
        request = request.set_state(CsrfToken::new(state.to_owned()));
    }
    Some(request.http_get_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(end_session: Option<&str>) -> ProviderMetadata {
        let mut doc = serde_json::json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": "https://idp.example.com/token",
            "jwks_uri": "https://idp.example.com/jwks",
        });
        if let Some(e) = end_session {
            doc["end_session_endpoint"] = e.into();
        }
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn gives_todays_url_for_todays_inputs() {
        let url = end_session_url(
            &meta(Some("https://idp.example.com/logout?realm=a")),
            "client 1",
            "https://sso.example.com/login",
            None,
            None,
        )
        .unwrap();
        // What http/browser.rs built inline before: the endpoint's own query, then these two.
        let mut expected = Url::parse("https://idp.example.com/logout?realm=a").unwrap();
        expected
            .query_pairs_mut()
            .append_pair("client_id", "client 1")
            .append_pair("post_logout_redirect_uri", "https://sso.example.com/login");
        assert_eq!(url, expected);
        assert_eq!(
            end_session_url(
                &meta(None),
                "c",
                "https://sso.example.com/login",
                None,
                None
            ),
            None
        );
    }

    #[test]
    fn sends_state_and_a_parseable_hint() {
        let url = end_session_url(
            &meta(Some("https://idp.example.com/logout")),
            "c",
            "https://sso.example.com/login",
            Some("not-a-token"),
            Some("st"),
        )
        .unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "st");
        assert!(!q.contains_key("id_token_hint"), "{url}");

        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.c2ln",
            part(serde_json::json!({"alg": "RS256"})),
            part(
                serde_json::json!({"iss": "https://idp.example.com", "aud": "c", "sub": "u",
                                    "exp": 2_000_000_000, "iat": 1_700_000_000})
            )
        );
        let url = end_session_url(
            &meta(Some("https://idp.example.com/logout")),
            "c",
            "https://sso.example.com/login",
            Some(&token),
            None,
        )
        .unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["id_token_hint"], token);
    }
}
