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
/// `id_token_hint` is sent when it has the shape of a compact JWS (the ID token orgsso verified
/// at sign-in). The crate takes the hint typed and would silently drop a token whose claims its
/// types refuse (`email_verified` as the string `"true"`, as Cognito sends it, …), so such a
/// token is appended as it is: providers such as Okta refuse an end-session request without
/// the hint. Anything else is not sent; the request stays valid without it, since `client_id`
/// names the client.
pub fn end_session_url(
    meta: &ProviderMetadata,
    client_id: &str,
    post_logout_redirect_uri: &str,
    id_token_hint: Option<&str>,
    state: Option<&str>,
) -> Option<Url> {
    let mut request = LogoutRequest::from(meta.end_session_endpoint.clone()?)
        .set_client_id(ClientId::new(client_id.to_owned()));
    let hint = id_token_hint.filter(|t| is_compact_jws(t));
    let typed = hint.and_then(|t| CoreIdToken::from_str(t).ok());
    if let Some(typed) = &typed {
        request = request.set_id_token_hint(typed);
    }
    if let Ok(uri) = PostLogoutRedirectUrl::new(post_logout_redirect_uri.to_owned()) {
        request = request.set_post_logout_redirect_uri(uri);
    }
    if let Some(state) = state {
        request = request.set_state(CsrfToken::new(state.to_owned()));
    }
    let mut url = request.http_get_url();
    if let (Some(raw), None) = (hint, &typed) {
        url.query_pairs_mut().append_pair("id_token_hint", raw);
    }
    Some(url)
}

/// Three dot-separated base64url parts, the first two non-empty.
fn is_compact_jws(token: &str) -> bool {
    let b64url = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|p| b64url(p))
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

    #[test]
    fn the_hint_is_sent_for_every_id_token_orgsso_accepted() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let base = serde_json::json!({"iss": "https://idp.example.com", "aud": "c", "sub": "u",
                                      "exp": 2_000_000_000, "iat": 1_700_000_000});
        #[rustfmt::skip]
        let cases: Vec<(&str, serde_json::Value, serde_json::Value)> = vec![
            ("oidc-provider's claims", serde_json::json!({"alg": "RS256", "kid": "k"}), serde_json::json!({"at_hash": "x", "sid": "s", "groups": ["a"], "email_verified": true, "auth_time": 1_700_000_000})),
            ("email_verified as a string (Cognito)", serde_json::json!({"alg": "RS256"}), serde_json::json!({"email_verified": "true"})),
            ("float times", serde_json::json!({"alg": "ES256"}), serde_json::json!({"exp": 2_000_000_000.5, "iat": 1_700_000_000.25})),
            ("several audiences", serde_json::json!({"alg": "PS256"}), serde_json::json!({"aud": ["c", "api"], "azp": "c"})),
            ("EdDSA, typ JWT", serde_json::json!({"alg": "EdDSA", "typ": "JWT"}), serde_json::json!({"updated_at": "2024-01-01"})),
            ("Entra-style claims", serde_json::json!({"alg": "RS256", "kid": "k", "x5t": "t"}), serde_json::json!({"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph"}}, "address": "not an object"})),
        ];
        for (case, header, extra) in cases {
            let mut claims = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                claims[k] = v.clone();
            }
            let token = format!("{}.{}.c2ln", part(header), part(claims));
            let url = end_session_url(
                &meta(Some("https://idp.example.com/logout")),
                "c",
                "https://sso.example.com/signed-out",
                Some(&token),
                Some("st"),
            )
            .unwrap();
            let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
            assert_eq!(q.get("id_token_hint"), Some(&token), "{case}: {url}");
            assert_eq!(q["client_id"], "c", "{case}");
            assert_eq!(
                q["post_logout_redirect_uri"], "https://sso.example.com/signed-out",
                "{case}"
            );
            assert_eq!(q["state"], "st", "{case}");
            assert_eq!(
                url.query_pairs()
                    .filter(|(k, _)| k == "id_token_hint")
                    .count(),
                1,
                "{case}"
            );
        }
    }
}
