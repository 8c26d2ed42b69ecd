//! Property tests for the parsers an attacker reaches without an account: compact JWS, JWK
//! sets, the rule language (an admin's input, but evaluated on IdP claims), forms, slugs,
//! emails, domains, `return_to`, and SCIM filters and PATCH bodies (a directory's input).
//! Whatever the input: no panic, a refusal is a 4xx, and what is accepted has the property the
//! parser promises. Inputs are bounded (each parser refuses more than its limit before work that
//! grows with the input), so every case ends quickly; the HTTP-level counterpart (no 5xx from
//! any path or body) is `tests/api/props.rs`.

use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::domain::{Domain, EmailAddress, ReturnTo, Slug};
use crate::http::form::FormData;
use crate::jose::compact::{parse, JwsRules, TypRule};
use crate::roles::{check_claim, RoleMapping, RoleMappingSpec};

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Any JSON value, a few levels deep, with the keys JOSE and the rule language look at.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("alg".to_owned()),
        Just("kid".to_owned()),
        Just("typ".to_owned()),
        Just("crit".to_owned()),
        Just("kty".to_owned()),
        Just("n".to_owned()),
        Just("e".to_owned()),
        Just("crv".to_owned()),
        Just("x".to_owned()),
        Just("y".to_owned()),
        Just("use".to_owned()),
        Just("groups".to_owned()),
        "[a-z/._~\\[\\]0-9]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("RS256".to_owned()),
            Just("none".to_owned()),
            Just("HS256".to_owned()),
            Just("RSA".to_owned()),
            Just("EC".to_owned()),
            Just("P-256".to_owned()),
            Just("AQAB".to_owned()),
            any::<String>(),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const ALGS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::PS256];
const RULES: JwsRules<'static> = JwsRules {
    max_bytes: 16 * 1024,
    charset_first: false,
    algorithms: ALGS,
    forbidden_headers: &["jwk", "jku", "x5u", "crit"],
    typ: TypRule::JwtOrAbsent,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn compact_jws_never_panics_on_any_text(token in any::<String>()) {
        let _ = parse(&token, &RULES);
        let _ = parse(&token, &JwsRules { charset_first: true, ..RULES });
    }

    #[test]
    fn an_accepted_header_has_an_allowed_alg_and_no_forbidden_member(
        mut header in json_value(),
        alg in prop::sample::select(vec!["RS256", "ES256", "PS256", "HS256", "none", "nOnE", "RS512", ""]),
        payload in json_value(),
        sig in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        if let Value::Object(h) = &mut header {
            h.insert("alg".into(), json!(alg));
        }
        let token = format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()), b64(&sig));
        if let Ok(jws) = parse(&token, &RULES) {
            prop_assert!(ALGS.contains(&jws.alg));
            for h in RULES.forbidden_headers {
                prop_assert!(header.get(*h).is_none());
            }
            // Claims are out of reach without a signature check: only `Verified` reads them.
            let _ = jws.signature_b64();
        }
    }

    #[test]
    fn jwk_sets_never_panic(doc in json_value(), keys in prop::collection::vec(json_value(), 0..6)) {
        let uri = url::Url::parse("https://idp.example/jwks").unwrap();
        let _ = crate::jose::jwks::parse::parse_jwks(&uri, &doc);
        let _ = crate::jose::jwks::parse::parse_jwks(&uri, &json!({"keys": keys}));
        for k in &keys {
            let _ = crate::jose::jwks::parse::parse_jwk(k);
        }
    }

    #[test]
    fn rule_sets_compile_or_say_why_and_evaluate_any_claims(spec in json_value(), claims in json_value()) {
        if let Ok(spec) = serde_json::from_value::<RoleMappingSpec>(spec) {
            if let Ok(mapping) = RoleMapping::compile(spec) {
                let _ = mapping.evaluate(&claims);
            }
        }
    }

    #[test]
    fn well_formed_rules_on_hostile_claims_never_panic(
        claim in "[a-z/_.~0-9\\[\\]]{0,40}",
        op in prop_oneof![Just("equals"), Just("contains"), Just("in"), Just("matches"), Just("exists"), Just("ends_with")],
        value in json_value(),
        claims in json_value(),
    ) {
        let _ = check_claim(&claim);
        let spec = json!({"default_role": "viewer", "rules": [{"claim": claim, "op": op, "value": value, "role": "admin"}]});
        if let Ok(spec) = serde_json::from_value::<RoleMappingSpec>(spec) {
            if let Ok(mapping) = RoleMapping::compile(spec) {
                let _ = mapping.evaluate(&claims);
            }
        }
    }

    #[test]
    fn forms_keep_every_field_whatever_the_bytes(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let form = FormData::parse(&body);
        let _ = form.get("email");
        let _ = form.all("email");
    }

    #[test]
    fn accepted_slugs_emails_and_domains_have_the_promised_shape(s in any::<String>(), ascii in "[ -~]{0,80}") {
        for input in [s.as_str(), ascii.as_str()] {
            if let Ok(slug) = Slug::parse(input) {
                prop_assert!((2..=63).contains(&slug.as_str().len()));
                prop_assert!(slug.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
            if let Ok(email) = EmailAddress::parse(input) {
                prop_assert!(email.as_str().contains('@'));
                prop_assert!(!email.as_str().chars().any(|c| c.is_control() || c.is_whitespace()));
            }
            if let Ok(domain) = Domain::parse(input) {
                prop_assert!(!domain.as_str().chars().any(char::is_control));
            }
        }
    }

    #[test]
    fn an_accepted_return_to_never_leaves_the_site(
        s in any::<String>(),
        path in "[/\\\\a-z.:@%?#0-9 \t]{0,40}",
    ) {
        for input in [s.as_str(), path.as_str()] {
            if let Ok(r) = ReturnTo::parse(input) {
                let base = url::Url::parse("https://orgsso.example/").unwrap();
                let joined = base.join(r.as_str()).unwrap();
                prop_assert_eq!(joined.origin(), base.origin(), "{:?}", input);
                prop_assert!(!r.as_str().starts_with("//"));
            }
        }
    }
}

/// SCIM filters and PATCH paths: the text of `?filter=` and of an operation's `path`, as the
/// directory (or anyone with a stolen token) sends it.
fn scim_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z.:\\[\\]\\(\\) \"0-9]{0,60}",
        "(userName|emails\\[type eq \"work\"\\]\\.value|members|name\\.givenName|urn:ietf:params:scim:schemas:core:2\\.0:User:userName) (eq|ne|co|sw|pr|gt) \"[a-z@.\"\\\\]{0,12}\"( (and|or) not \\(active eq (true|false)\\))?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn scim_filters_parse_or_are_a_400_and_evaluate_any_resource(text in scim_text(), resource in json_value()) {
        match crate::scim::filter::Filter::parse(&text) {
            Ok(f) => {
                let _ = f.matches(&resource);
                let _ = f.eq_value("userName");
            }
            Err(e) => prop_assert_eq!(e.status, 400),
        }
    }

    #[test]
    fn scim_patches_parse_or_are_a_400_and_apply_to_any_user(path in scim_text(), value in json_value(), doc in json_value()) {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": path, "value": value}, {"op": "Add", "value": value}],
        });
        match crate::scim::patch::parse_patch(&body) {
            Ok(ops) => {
                if let Err(e) = crate::scim::patch::apply_to_user(&doc, &ops) {
                    prop_assert!((400..500).contains(&e.status));
                }
                if let Err(e) = crate::scim::patch::group_patch(&ops) {
                    prop_assert!((400..500).contains(&e.status));
                }
            }
            Err(e) => prop_assert!((400..500).contains(&e.status)),
        }
    }
}
