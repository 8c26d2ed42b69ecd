use serde_json::{json, Value};

use super::*;

fn user() -> Value {
    json!({
        "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "userName": "Bjensen@Example.com",
        "displayName": "Babs Jensen",
        "active": true,
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "loginCount": 7,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        },
        "meta": {"lastModified": "2026-05-13T04:42:34Z", "version": "W/\"3\""}
    })
}

#[test]
fn filters_match_as_the_rfc_says() {
    // (filter, matches the user above)
    let cases: &[(&str, bool)] = &[
        // each operator
        (r#"userName eq "bjensen@example.com""#, true),
        (r#"userName eq "someone""#, false),
        (r#"userName ne "someone""#, true),
        (r#"userName ne "BJENSEN@example.com""#, false),
        (r#"userName co "jensen""#, true),
        (r#"userName co "smith""#, false),
        (r#"userName sw "BJ""#, true),
        (r#"userName sw "je""#, false),
        (r#"userName ew ".COM""#, true),
        (r#"userName ew ".org""#, false),
        (r#"userName gt "a""#, true),
        (r#"userName ge "bjensen@example.com""#, true),
        (r#"userName lt "a""#, false),
        (r#"userName le "c""#, true),
        ("loginCount gt 6", true),
        ("loginCount ge 7", true),
        ("loginCount lt 7", false),
        ("loginCount le 7.0", true),
        ("loginCount eq 7", true),
        ("title pr", false),
        ("userName pr", true),
        ("name pr", true),
        // date-times order as instants
        (r#"meta.lastModified gt "2026-05-13T04:42:33Z""#, true),
        (r#"meta.lastModified lt "2026-05-13T06:42:33+02:00""#, false),
        (r#"meta.lastModified ge "2026-05-13T06:42:34+02:00""#, true),
        // booleans and null
        ("active eq true", true),
        ("active eq false", false),
        ("active ne false", true),
        ("title eq null", true),
        ("userName eq null", false),
        ("title ne null", false),
        // case: names and keywords case-insensitive; caseExact only for ids
        (r#"USERNAME EQ "BJENSEN@EXAMPLE.COM""#, true),
        (r#"name.GIVENNAME eq "barbara""#, true),
        (r#"externalId eq "00ujl29u0le5T6Aj10h7""#, true),
        (r#"externalId eq "00UJL29U0LE5T6AJ10H7""#, false),
        (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
        (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
        (r#"displayName eq "BABS JENSEN""#, true),
        (r#"emails.value eq "BABS@jensen.org""#, true),
        // multi-valued: any value matches
        (r#"emails.type eq "home""#, true),
        (r#"emails co "jensen.org""#, true),
        // precedence: not > and > or
        (
            r#"userName eq "x" and active eq true or displayName pr"#,
            true,
        ),
        (
            r#"userName eq "x" and (active eq true or displayName pr)"#,
            false,
        ),
        (
            r#"displayName pr or userName eq "x" and active eq false"#,
            true,
        ),
        (
            r#"(displayName pr or userName eq "x") and active eq false"#,
            false,
        ),
        (r#"not (userName eq "x") and active eq true"#, true),
        (r#"not (userName eq "x" or active eq true)"#, false),
        (r#"not(title pr)"#, true),
        (r#"((((userName pr))))"#, true),
        // value paths
        (r#"emails[type eq "work"]"#, true),
        (
            r#"emails[type eq "work" and value co "@example.com"]"#,
            true,
        ),
        (
            r#"emails[type eq "home" and value co "@example.com"]"#,
            false,
        ),
        (
            r#"emails[type eq "work"].value eq "bjensen@example.com""#,
            true,
        ),
        (
            r#"emails[type eq "home"].value eq "bjensen@example.com""#,
            false,
        ),
        (
            r#"emails[not (type eq "work")].value ew "jensen.org""#,
            true,
        ),
        (r#"emails[primary eq true].type eq "work""#, true),
        (r#"emails[type eq "work"] and userName sw "b""#, true),
        (r#"phoneNumbers[type eq "work"]"#, false),
        // URN-prefixed paths
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen@example.com""#,
            true,
        ),
        (
            r#"URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:name.givenName sw "bar""#,
            true,
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#,
            true,
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
            true,
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:other:2.0:User:department pr"#,
            false,
        ),
        // strings with escapes
        (r#"displayName eq "Babs\u0020Jensen""#, true),
        (r#"displayName ne "Babs \"J\" Jensen""#, true),
        // absent attributes
        (r#"nickName eq "x""#, false),
        (r#"nickName ne "x""#, true),
    ];
    let u = user();
    for (text, want) in cases {
        let f = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(f.matches(&u), *want, "{text}");
    }
}

#[test]
fn malformed_filters_are_invalid_filter_with_a_reason() {
    // (filter, part of the detail)
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        ("   ", "empty"),
        ("userName", "ended"),
        ("userName eq", "ended"),
        ("userName xx \"a\"", "not an operator"),
        ("userName eq \"a", "no closing quote"),
        ("userName eq \"\\q\"", "escape"),
        ("userName eq bob", "not a value"),
        ("userName eq \"a\" and", "ended"),
        ("userName eq \"a\" or or", "ended"),
        ("(userName pr", "')'"),
        ("userName pr)", "unexpected"),
        ("emails[type eq \"work\"", "']'"),
        ("emails[type eq \"work\"].", "not a sub-attribute"),
        ("emails[type[value pr]]", "brackets inside brackets"),
        ("emails.type[value pr]", "sub-attribute before"),
        ("active gt true", "cannot compare"),
        ("title co null", "cannot compare"),
        ("loginCount sw 1", "cannot compare"),
        ("1userName pr", "not an attribute path"),
        ("userName eq \"a\" # x", "unexpected character"),
        ("userName eq 'a'", "unexpected character"),
        ("a.b.c pr", "not an attribute path"),
        ("urn:userName pr", "not an attribute path"),
        ("x y:userName pr", "operator"),
        ("not userName pr", "operator"),
        ("userName eq \"a\" userName eq \"b\"", "unexpected"),
        ("()", "expected an attribute path"),
        ("[", "expected an attribute path"),
    ];
    for (text, why) in cases {
        let e = Filter::parse(text).expect_err(text);
        assert_eq!(e.status, 400, "{text}");
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{text}");
        assert!(e.detail.contains(why), "{text}: {}", e.detail);
    }
}

#[test]
fn hostile_filters_are_bounded() {
    let deep_ok = format!(
        "{}userName pr{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(Filter::parse(&deep_ok).is_ok());
    let too_deep = format!(
        "{}userName pr{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    let e = Filter::parse(&too_deep).unwrap_err();
    assert!(e.detail.contains("nested deeper"), "{}", e.detail);
    let nots = format!("{}userName pr{}", "not (".repeat(40), ")".repeat(40));
    assert_eq!(
        Filter::parse(&nots).unwrap_err().scim_type,
        Some(ScimType::InvalidFilter)
    );
    // Unclosed parentheses up to the length limit: refused, no stack overflow.
    let open = "(".repeat(MAX_FILTER_LEN);
    assert!(Filter::parse(&open).is_err());
    let long = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LEN));
    assert!(Filter::parse(&long)
        .unwrap_err()
        .detail
        .contains("longer than"));
    // A long flat chain is fine (flat And/Or lists) and evaluates.
    let chain = vec!["title pr"; 300].join(" or ");
    assert!(chain.len() <= MAX_FILTER_LEN);
    assert!(!Filter::parse(&chain).unwrap().matches(&user()));
    // Odd bytes: never a panic.
    for text in [
        "\u{0}",
        "é eq \"x\"",
        "userName eq \"\u{1}\"",
        "\"",
        "\\",
        "userName eq -",
        "x eq 1e999999",
    ] {
        let _ = Filter::parse(text);
    }
}

#[test]
fn eq_value_answers_only_a_whole_equality() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        (r#"userName eq "bjensen""#, "userName", Some("bjensen")),
        (r#"USERNAME Eq "bjensen""#, "username", Some("bjensen")),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "b""#,
            "userName",
            Some("b"),
        ),
        (
            r#"userName eq "b""#,
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            Some("b"),
        ),
        (r#"externalId eq "00u1""#, "externalId", Some("00u1")),
        (r#"displayName eq "Admins""#, "displayName", Some("Admins")),
        (r#"emails.value eq "a@b.c""#, "emails.value", Some("a@b.c")),
        (r#"userName eq "b""#, "externalId", None),
        (r#"userName ne "b""#, "userName", None),
        (r#"userName eq "b" and active eq true"#, "userName", None),
        (
            r#"emails[type eq "work"].value eq "a@b.c""#,
            "emails.value",
            None,
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "b""#,
            "userName",
            None,
        ),
        ("userName eq 1", "userName", None),
    ];
    for (text, attr, want) in cases {
        let f = Filter::parse(text).unwrap();
        assert_eq!(f.eq_value(attr), *want, "{text} / {attr}");
    }
}

#[test]
fn attr_paths_parse_with_and_without_urn() {
    let p = AttrPath::parse("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName").unwrap();
    assert_eq!(p.schema.as_deref(), Some(USER_SCHEMA));
    assert_eq!(
        (p.name.as_str(), p.sub.as_deref()),
        ("name", Some("givenName"))
    );
    assert!(p.is_core());
    let e =
        AttrPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
            .unwrap();
    assert!(!e.is_core());
    assert_eq!(
        e.to_string(),
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
    );
    for bad in [
        "",
        ".",
        "a.",
        ".a",
        "a..b",
        "a b",
        "urn:",
        "x:y",
        "a-b.c_d.e",
    ] {
        assert_eq!(AttrPath::parse(bad), None, "{bad}");
    }
    assert!(AttrPath::parse("members.$ref").is_some());
}

#[test]
fn members_values_compare_exactly() {
    let g = json!({"displayName": "Admins", "members": [{"value": "AbC"}]});
    let yes = Filter::parse(r#"members[value eq "AbC"]"#).unwrap();
    let no = Filter::parse(r#"members[value eq "abc"]"#).unwrap();
    let dotted = Filter::parse(r#"members.value eq "abc""#).unwrap();
    assert!(yes.matches(&g));
    assert!(!no.matches(&g));
    assert!(!dotted.matches(&g));
    assert!(Filter::parse(r#"members eq "AbC""#).unwrap().matches(&g));
    assert!(!Filter::parse(r#"members eq "abc""#).unwrap().matches(&g));
    assert!(Filter::parse(r#"displayName eq "admins""#)
        .unwrap()
        .matches(&g));
}

/// Deterministic pseudo-random filters from filter-ish characters: every refusal is a 400
/// invalidFilter, and whatever parses evaluates without a panic.
#[test]
fn random_filters_never_panic() {
    const ALPHABET: &[&str] = &[
        "userName",
        "emails",
        "name.givenName",
        " eq ",
        " ne ",
        " co ",
        " pr",
        " gt ",
        " and ",
        " or ",
        "not ",
        "(",
        ")",
        "[",
        "]",
        ".value",
        "\"x\"",
        "\"",
        "\\",
        "\\u00",
        "true",
        "null",
        "1",
        "-2.5e3",
        " ",
        "urn:ietf:params:scim:schemas:core:2.0:User:",
        "é",
        "\u{0}",
        "type eq \"work\"",
        ":",
        ",",
        "'",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let u = user();
    let (mut parsed, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let len = (next() % 12) as usize;
        let text: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        match Filter::parse(&text) {
            Ok(f) => {
                parsed += 1;
                let _ = f.matches(&u);
            }
            Err(e) => {
                refused += 1;
                assert_eq!(
                    (e.status, e.scim_type),
                    (400, Some(ScimType::InvalidFilter)),
                    "{text:?}"
                );
            }
        }
    }
    assert!(
        parsed > 100 && refused > 100,
        "{parsed} parsed, {refused} refused"
    );
}

/// The example filters of RFC 7644 §3.4.2.2, against an employee with a work email at
/// example.com.
#[test]
fn rfc_7644_examples() {
    let u = json!({
        "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "jensen",
        "name": {"familyName": "O'Malley"},
        "title": "Tour Guide",
        "userType": "Employee",
        "emails": [{"value": "bjensen@example.com", "type": "work"}],
        "ims": [{"value": "babs@foo.com", "type": "aim"}],
        "meta": {"lastModified": "2011-05-13T04:42:35Z"}
    });
    let cases: &[(&str, bool)] = &[
        (r#"userName Eq "JENSEN""#, true),
        (r#"name.familyName co "O'Malley""#, true),
        (r#"userName sw "J""#, true),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            true,
        ),
        ("title pr", true),
        (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, true),
        (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
        (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, false),
        (r#"title pr and userType eq "Employee""#, true),
        (r#"title pr or userType eq "Intern""#, true),
        (
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            true,
        ),
        (
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            true,
        ),
        (
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            false,
        ),
        (
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            true,
        ),
        (
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            true,
        ),
        (
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            true,
        ),
        (
            r#"emails[type eq "home"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            false,
        ),
    ];
    for (text, want) in cases {
        let f = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(f.matches(&u), *want, "{text}");
    }
}
