//! The one place a sign-in's claims are put together: the ID token's claims, filled in from the
//! userinfo answer ([`merge`]), and what an admin must be told about them ([`warnings`]: today
//! Microsoft Entra's groups overage). The merged set is what the rules see, what is kept as the
//! member's last claims (so the dry run shows it) and where email and name come from.

use serde_json::{Map, Value};

/// Said wherever a sign-in with an Entra groups overage is shown: audit, dry run, sign-in page.
pub const GROUPS_OVERAGE: &str = "The groups rules cannot match: Microsoft Entra sent a link to the user's groups instead of the groups themselves (a groups overage, more groups than fit in a token). Configure group filtering in Entra (\"Groups assigned to the application\") or use app roles.";

/// A sign-in's claims after merging, with where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInClaims {
    pub claims: Map<String, Value>,
    /// Names of the claims that came from userinfo (the ID token lacked them), sorted.
    pub from_userinfo: Vec<String>,
}

/// Claims about the authentication itself: only the (verified) ID token may state them, so a
/// rule on `acr` or `amr` never matches something an unsigned userinfo answer said.
const ID_TOKEN_ONLY: &[&str] = &[
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "azp",
    "auth_time",
    "acr",
    "amr",
    "sid",
    "at_hash",
    "c_hash",
    "s_hash",
    "cnf",
];

/// The ID token's claims win; userinfo fills in what they lack (absent or `null`), except the
/// claims about the authentication itself ([`ID_TOKEN_ONLY`]).
pub fn merge(id_token: &Map<String, Value>, userinfo: Option<&Map<String, Value>>) -> SignInClaims {
    let mut claims = id_token.clone();
    let mut from_userinfo = Vec::new();
    for (name, value) in userinfo.into_iter().flatten() {
        if value.is_null()
            || claims.get(name).is_some_and(|v| !v.is_null())
            || ID_TOKEN_ONLY.contains(&name.as_str())
        {
            continue;
        }
        claims.insert(name.clone(), value.clone());
        from_userinfo.push(name.clone());
    }
    from_userinfo.sort();
    SignInClaims {
        claims,
        from_userinfo,
    }
}

/// A profile string (`email`, `name`) from the merged claims: a string or nothing. (The ID
/// token's own wrongly typed profile claims were refused by its verifier already; a wrongly
/// typed one from userinfo is not worth failing the sign-in for.)
pub fn profile_str(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// Entra's groups overage (distributed claims, OIDC Core §5.6.2): no `groups`, but
/// `_claim_names.groups` naming a source in `_claim_sources` (a Graph URL to call).
pub fn groups_overage(claims: &Map<String, Value>) -> bool {
    if claims.get("groups").is_some_and(|g| !g.is_null()) {
        return false;
    }
    let source = claims
        .get("_claim_names")
        .and_then(|n| n.get("groups"))
        .and_then(Value::as_str);
    match (source, claims.get("_claim_sources")) {
        (Some(source), Some(Value::Object(sources))) => sources.contains_key(source),
        _ => false,
    }
}

/// What an admin should know about these claims before trusting a rule outcome.
pub fn warnings(claims: &Value) -> Vec<&'static str> {
    match claims {
        Value::Object(map) if groups_overage(map) => vec![GROUPS_OVERAGE],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_id_token_wins_and_userinfo_fills_in() {
        #[rustfmt::skip]
        let cases = [
            ("no userinfo", json!({"sub": "u", "email": "a@x"}), None, json!({"sub": "u", "email": "a@x"}), vec![]),
            ("fills missing", json!({"sub": "u"}), Some(json!({"sub": "u", "email": "a@x", "groups": ["g"]})), json!({"sub": "u", "email": "a@x", "groups": ["g"]}), vec!["email", "groups"]),
            ("id token wins", json!({"sub": "u", "email": "id@x"}), Some(json!({"sub": "u", "email": "ui@x"})), json!({"sub": "u", "email": "id@x"}), vec![]),
            ("null in the id token is filled", json!({"sub": "u", "name": null}), Some(json!({"name": "Ada"})), json!({"sub": "u", "name": "Ada"}), vec!["name"]),
            ("null from userinfo adds nothing", json!({"sub": "u"}), Some(json!({"name": null})), json!({"sub": "u"}), vec![]),
            ("empty list in id token wins", json!({"sub": "u", "groups": []}), Some(json!({"groups": ["g"]})), json!({"sub": "u", "groups": []}), vec![]),
            ("authentication claims only from the id token", json!({"sub": "u"}), Some(json!({"acr": "mfa", "amr": ["otp"], "auth_time": 1, "iss": "x", "email": "a@x"})), json!({"sub": "u", "email": "a@x"}), vec!["email"]),
        ];
        for (case, id, ui, expected, filled) in cases {
            let ui = ui.map(obj);
            let got = merge(&obj(id), ui.as_ref());
            assert_eq!(Value::Object(got.claims), expected, "{case}");
            assert_eq!(got.from_userinfo, filled, "{case}");
        }
    }

    #[test]
    fn entra_groups_overage_is_recognised() {
        let sources = json!({"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}});
        #[rustfmt::skip]
        let cases = [
            ("overage", json!({"_claim_names": {"groups": "src1"}, "_claim_sources": sources}), true),
            ("groups present after all", json!({"groups": ["g"], "_claim_names": {"groups": "src1"}, "_claim_sources": sources}), false),
            ("source missing", json!({"_claim_names": {"groups": "src2"}, "_claim_sources": sources}), false),
            ("no sources", json!({"_claim_names": {"groups": "src1"}}), false),
            ("another claim distributed", json!({"_claim_names": {"roles": "src1"}, "_claim_sources": sources}), false),
            ("wrong types", json!({"_claim_names": {"groups": 1}, "_claim_sources": sources}), false),
            ("plain", json!({"groups": ["g"]}), false),
        ];
        for (case, claims, overage) in cases {
            assert_eq!(groups_overage(&obj(claims.clone())), overage, "{case}");
            assert_eq!(warnings(&claims).len(), usize::from(overage), "{case}");
        }
        assert!(warnings(&json!([1])).is_empty());
    }

    #[test]
    fn profile_strings_are_strings_or_nothing() {
        let c = obj(json!({"email": "a@x", "name": 5}));
        assert_eq!(profile_str(&c, "email").as_deref(), Some("a@x"));
        assert_eq!(profile_str(&c, "name"), None);
        assert_eq!(profile_str(&c, "missing"), None);
    }
}
