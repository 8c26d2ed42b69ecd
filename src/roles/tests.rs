use serde_json::{json, Value};

use super::*;

const ADMIN: Outcome = Outcome::Role(Role::Admin);
const DEVELOPER: Outcome = Outcome::Role(Role::Developer);
const VIEWER: Outcome = Outcome::Role(Role::Viewer);

fn spec(v: Value) -> RoleMappingSpec {
    serde_json::from_value(v).expect("test spec should deserialise")
}

fn mapping(v: Value) -> RoleMapping {
    RoleMapping::compile(spec(v)).expect("test spec should compile")
}

/// Leaves `value` out of a rule built with [`rule`].
const NO_VALUE: Value = Value::Null;

/// One rule, `role` admin; a null `value` is left out.
fn rule(claim: &str, op: &str, value: Value) -> Value {
    let mut r = json!({"claim": claim, "op": op, "role": "admin"});
    if !value.is_null() {
        r["value"] = value;
    }
    r
}

/// Each rule (alone, default viewer) against claims, and whether it should match.
fn check(table: Vec<(Value, Vec<(Value, bool)>)>) {
    for (r, cases) in table {
        let m = mapping(json!({"default_role": "viewer", "rules": [r]}));
        for (claims, expected) in cases {
            let want = if expected {
                Decision {
                    outcome: ADMIN,
                    rule: Some(0),
                }
            } else {
                Decision {
                    outcome: VIEWER,
                    rule: None,
                }
            };
            assert_eq!(m.evaluate(&claims), want, "rule {r} against {claims}");
        }
    }
}

#[test]
fn equals() {
    check(vec![
        (
            rule("email", "equals", json!("a@x.io")),
            vec![
                (json!({"email": "a@x.io"}), true),
                (json!({"email": "A@x.io"}), false),
                (json!({"email": "a@x.io "}), false),
                (json!({"email": ["a@x.io"]}), false),
                (json!({"email": null}), false),
                (json!({"other": "a@x.io"}), false),
                (json!({}), false),
            ],
        ),
        (
            rule("email", "equals", json!("")),
            vec![(json!({"email": ""}), true), (json!({}), false)],
        ),
        // numbers compare by value, never against their text
        (
            rule("level", "equals", json!(3)),
            vec![
                (json!({"level": 3}), true),
                (json!({"level": 3.0}), true),
                (json!({"level": 3.5}), false),
                (json!({"level": "3"}), false),
                (json!({"level": [3]}), false),
            ],
        ),
        (
            rule("level", "equals", json!(-1)),
            vec![
                (json!({"level": -1}), true),
                (json!({"level": -1.0}), true),
                (json!({"level": u64::MAX}), false),
            ],
        ),
        (
            rule("level", "equals", json!(u64::MAX)),
            vec![
                (json!({"level": u64::MAX}), true),
                (json!({"level": -1}), false),
            ],
        ),
        (
            rule("level", "equals", json!(1.5)),
            vec![(json!({"level": 1.5}), true), (json!({"level": 1}), false)],
        ),
        (
            rule("email_verified", "equals", json!(true)),
            vec![
                (json!({"email_verified": true}), true),
                (json!({"email_verified": false}), false),
                (json!({"email_verified": "true"}), false),
                (json!({"email_verified": 1}), false),
            ],
        ),
        // an array claim is compared whole: no element-wise match
        (
            rule("groups", "equals", json!("admins")),
            vec![
                (json!({"groups": ["admins"]}), false),
                (json!({"groups": "admins"}), true),
            ],
        ),
        (
            rule("groups", "equals", json!(["a", "b"])),
            vec![
                (json!({"groups": ["a", "b"]}), true),
                (json!({"groups": ["b", "a"]}), false),
                (json!({"groups": ["a"]}), false),
                (json!({"groups": ["a", "b", "c"]}), false),
            ],
        ),
        (
            rule("org", "equals", json!({"id": 1, "n": "x"})),
            vec![
                (json!({"org": {"n": "x", "id": 1.0}}), true),
                (json!({"org": {"id": 1}}), false),
                (json!({"org": {"id": 1, "n": "x", "m": 0}}), false),
            ],
        ),
    ]);
}

#[test]
fn contains() {
    check(vec![
        (
            rule("groups", "contains", json!("admins")),
            vec![
                // arrays: an element equal to the value
                (json!({"groups": ["devs", "admins"]}), true),
                (json!({"groups": ["devs"]}), false),
                (json!({"groups": ["team-admins"]}), false),
                (json!({"groups": []}), false),
                (json!({"groups": [["admins"]]}), false),
                (json!({"groups": [{"name": "admins"}]}), false),
                // strings: a substring, case-sensitive
                (json!({"groups": "team-admins-eu"}), true),
                (json!({"groups": "admins"}), true),
                (json!({"groups": "Admins"}), false),
                (json!({"groups": "admin"}), false),
                // nothing else
                (json!({"groups": {"admins": true}}), false),
                (json!({"groups": null}), false),
                (json!({}), false),
            ],
        ),
        (
            rule("groups", "contains", json!(2)),
            vec![
                (json!({"groups": [1, 2.0]}), true),
                (json!({"groups": ["2"]}), false),
                (json!({"groups": 2}), false),
                (json!({"groups": 12}), false),
                (json!({"groups": "v2"}), false),
            ],
        ),
        (
            rule("groups", "contains", json!(true)),
            vec![
                (json!({"groups": [false, true]}), true),
                (json!({"groups": ["true"]}), false),
                (json!({"groups": true}), false),
            ],
        ),
    ]);
}

#[test]
fn in_list() {
    check(vec![
        (
            rule("dept", "in", json!(["eng", "ops"])),
            vec![
                // scalars: one of the list
                (json!({"dept": "ops"}), true),
                (json!({"dept": "sales"}), false),
                (json!({"dept": "op"}), false),
                (json!({"dept": "OPS"}), false),
                // arrays: any element in the list
                (json!({"dept": ["x", "ops"]}), true),
                (json!({"dept": ["x", "y"]}), false),
                (json!({"dept": []}), false),
                (json!({"dept": [["eng"]]}), false),
                // nothing else
                (json!({"dept": {"eng": 1}}), false),
                (json!({"dept": null}), false),
                (json!({}), false),
            ],
        ),
        (
            rule("level", "in", json!([1, 2])),
            vec![
                (json!({"level": 2}), true),
                (json!({"level": 2.0}), true),
                (json!({"level": "2"}), false),
                (json!({"level": [3, 1]}), true),
            ],
        ),
        (
            rule("flag", "in", json!([true])),
            vec![
                (json!({"flag": true}), true),
                (json!({"flag": false}), false),
                (json!({"flag": "true"}), false),
            ],
        ),
    ]);
}

#[test]
fn matches() {
    check(vec![
        (
            rule("email", "matches", json!(".*@acme\\.com")),
            vec![
                (json!({"email": "a@acme.com"}), true),
                (json!({"email": "a@acme.com.evil"}), false),
                (json!({"email": "a@acmexcom"}), false),
                (json!({"email": "a@acme.com\n"}), false),
            ],
        ),
        // anchored: a bare word is no substring search
        (
            rule("email", "matches", json!("acme")),
            vec![
                (json!({"email": "a@acme.com"}), false),
                (json!({"email": "acme"}), true),
            ],
        ),
        // the anchors wrap the whole alternation
        (
            rule("group", "matches", json!("a|b")),
            vec![
                (json!({"group": "b"}), true),
                (json!({"group": "ab"}), false),
                (json!({"group": "xa"}), false),
            ],
        ),
        (
            rule("group", "matches", json!("team-.*")),
            vec![
                (json!({"group": "team-b"}), true),
                (json!({"group": "team-a\nx"}), false),
                // arrays: any string element
                (json!({"group": ["x", "team-b"]}), true),
                (json!({"group": ["x", "my-team-b"]}), false),
                (json!({"group": [["team-b"]]}), false),
            ],
        ),
        // flags inside the pattern do not loosen the outer anchors
        (
            rule("group", "matches", json!("(?m)^team$")),
            vec![
                (json!({"group": "team"}), true),
                (json!({"group": "team\nx"}), false),
            ],
        ),
        (
            rule("group", "matches", json!("(?i)ADMINS")),
            vec![(json!({"group": "admins"}), true)],
        ),
        (
            rule("group", "matches", json!("ADMINS")),
            vec![(json!({"group": "admins"}), false)],
        ),
        (
            rule("group", "matches", json!("(?x) team - a  # a comment\n")),
            vec![(json!({"group": "team-a"}), true)],
        ),
        // numbers and booleans are not turned into text
        (
            rule("level", "matches", json!("1|true")),
            vec![
                (json!({"level": 1}), false),
                (json!({"level": true}), false),
                (json!({"level": [1, true, null]}), false),
                (json!({"level": "1"}), true),
            ],
        ),
        (
            rule("group", "matches", json!(".*")),
            vec![
                (json!({"group": ""}), true),
                (json!({"group": []}), false),
                (json!({"group": {}}), false),
                (json!({"group": null}), false),
                (json!({}), false),
            ],
        ),
    ]);
}

#[test]
fn exists() {
    let present = vec![
        (json!({"email": "a@x.io"}), true),
        (json!({"email": ""}), true),
        (json!({"email": []}), true),
        (json!({"email": {}}), true),
        (json!({"email": false}), true),
        (json!({"email": 0}), true),
        (json!({"email": null}), false),
        (json!({"Email": "a@x.io"}), false),
        (json!({}), false),
    ];
    check(vec![
        (rule("email", "exists", NO_VALUE), present.clone()),
        // an explicit `"value": null` is the same as none
        (
            json!({"claim": "email", "op": "exists", "value": null, "role": "admin"}),
            present,
        ),
    ]);
}

#[test]
fn nested_claims_through_pointers() {
    check(vec![
        (
            rule("/realm_access/roles", "contains", json!("admin")),
            vec![
                (json!({"realm_access": {"roles": ["admin"]}}), true),
                (json!({"realm_access": {"roles": "admin"}}), true),
                (json!({"realm_access": {"roles": ["user"]}}), false),
                (json!({"realm_access": ["admin"]}), false),
                (json!({"realm_access": "admin"}), false),
                (json!({"realm_access/roles": ["admin"]}), false),
                (json!({"realm_access": null}), false),
                (json!({}), false),
            ],
        ),
        // `~1` is `/` inside a name
        (
            rule("/resource_access/my~1app/roles", "in", json!(["dev"])),
            vec![
                (
                    json!({"resource_access": {"my/app": {"roles": ["dev"]}}}),
                    true,
                ),
                (
                    json!({"resource_access": {"my": {"app": {"roles": ["dev"]}}}}),
                    false,
                ),
                (
                    json!({"resource_access": {"my~1app": {"roles": ["dev"]}}}),
                    false,
                ),
            ],
        ),
        // `~0` is `~`
        (
            rule("/a~0b", "exists", NO_VALUE),
            vec![(json!({"a~b": 1}), true), (json!({"a~0b": 1}), false)],
        ),
        // `~01` is `~1`, not `/`: unescaped in one pass
        (
            rule("/~01", "exists", NO_VALUE),
            vec![(json!({"~1": 1}), true), (json!({"/": 1}), false)],
        ),
        // empty reference tokens are names too (RFC 6901)
        (rule("/", "exists", NO_VALUE), vec![(json!({"": 1}), true)]),
        (
            rule("/a//b", "exists", NO_VALUE),
            vec![
                (json!({"a": {"": {"b": 1}}}), true),
                (json!({"a": {"b": 1}}), false),
            ],
        ),
        // array indices
        (
            rule("/roles/0", "equals", json!("admin")),
            vec![
                (json!({"roles": ["admin", "dev"]}), true),
                (json!({"roles": ["dev", "admin"]}), false),
                (json!({"roles": []}), false),
                (json!({"roles": {"0": "admin"}}), true),
                (json!({"roles": "admin"}), false),
            ],
        ),
        (
            rule("/roles/1", "equals", json!("dev")),
            vec![(json!({"roles": ["admin", "dev"]}), true)],
        ),
        (
            rule("/roles/0/name", "equals", json!("a")),
            vec![(json!({"roles": [{"name": "a"}]}), true)],
        ),
    ]);
    // indices that select nothing: past the end, non-canonical, `-`, empty, overflowing
    let roles = json!({"roles": ["admin", "dev"]});
    for claim in [
        "/roles/2",
        "/roles/01",
        "/roles/00",
        "/roles/+1",
        "/roles/-1",
        "/roles/-",
        "/roles/",
        "/roles/ 1",
        "/roles/1e0",
        "/roles/99999999999999999999999",
    ] {
        check(vec![(
            rule(claim, "exists", NO_VALUE),
            vec![(roles.clone(), false)],
        )]);
    }
}

#[test]
fn names_without_a_leading_slash_are_taken_whole() {
    check(vec![
        (
            rule("https://acme.com/roles", "contains", json!("admin")),
            vec![
                (json!({"https://acme.com/roles": ["admin"]}), true),
                (
                    json!({"https:": {"": {"acme.com": {"roles": ["admin"]}}}}),
                    false,
                ),
                (json!({"https://acme.com": {"roles": ["admin"]}}), false),
            ],
        ),
        // `~` needs no escaping outside a pointer, and is not checked there
        (
            rule("a~b", "exists", NO_VALUE),
            vec![(json!({"a~b": 1}), true)],
        ),
        (
            rule("a~2", "exists", NO_VALUE),
            vec![(json!({"a~2": 1}), true)],
        ),
        (
            rule("a~1b", "exists", NO_VALUE),
            vec![(json!({"a~1b": 1}), true), (json!({"a/b": 1}), false)],
        ),
    ]);
}

#[test]
fn claims_that_are_not_an_object_get_the_default() {
    let m = mapping(json!({"default_role": "developer", "rules": [
        {"claim": "/0", "op": "exists", "role": "admin"},
        {"claim": "/", "op": "exists", "role": "admin"},
        {"claim": "x", "op": "exists", "role": "admin"},
    ]}));
    for claims in [
        json!(null),
        json!([1]),
        json!(["x"]),
        json!("x"),
        json!(1),
        json!(true),
    ] {
        assert_eq!(
            m.evaluate(&claims),
            Decision {
                outcome: DEVELOPER,
                rule: None
            },
            "{claims}"
        );
    }
}

#[test]
fn first_matching_rule_wins() {
    let m = mapping(json!({"default_role": "viewer", "rules": [
        {"claim": "groups", "op": "contains", "value": "contractors", "role": "deny"},
        {"claim": "groups", "op": "contains", "value": "admins", "role": "admin"},
        {"claim": "groups", "op": "contains", "value": "devs", "role": "developer"},
        {"claim": "groups", "op": "contains", "value": "admins", "role": "developer"},
    ]}));
    let cases = [
        (json!({"groups": ["devs", "admins"]}), ADMIN, Some(1)),
        (json!({"groups": ["admins", "devs"]}), ADMIN, Some(1)),
        (json!({"groups": ["devs"]}), DEVELOPER, Some(2)),
        (
            json!({"groups": ["admins", "contractors"]}),
            Outcome::Deny,
            Some(0),
        ),
        (json!({"groups": ["sales"]}), VIEWER, None),
        (json!({}), VIEWER, None),
    ];
    for (claims, outcome, rule) in cases {
        assert_eq!(m.evaluate(&claims), Decision { outcome, rule }, "{claims}");
    }
}

#[test]
fn deny_by_default_is_an_allow_list() {
    let m = mapping(json!({"default_role": "deny", "rules": [
        {"claim": "groups", "op": "contains", "value": "staff", "role": "viewer"},
    ]}));
    assert_eq!(
        m.evaluate(&json!({"groups": ["staff"]})),
        Decision {
            outcome: VIEWER,
            rule: Some(0)
        }
    );
    assert_eq!(
        m.evaluate(&json!({"groups": ["guests"]})),
        Decision {
            outcome: Outcome::Deny,
            rule: None
        }
    );
}

#[test]
fn no_rules_gives_the_default() {
    let m = mapping(json!({"default_role": "admin"}));
    assert!(m.spec().rules.is_empty());
    assert_eq!(
        m.evaluate(&json!({"groups": ["x"]})),
        Decision {
            outcome: ADMIN,
            rule: None
        }
    );
    let d = RoleMapping::default();
    assert_eq!(d.spec(), &RoleMappingSpec::default());
    assert_eq!(d.evaluate(&json!({})).outcome, VIEWER);
    assert_eq!(
        RoleMappingSpec::default(),
        RoleMappingSpec {
            default_role: VIEWER,
            rules: vec![]
        }
    );
}

#[test]
fn spec_is_kept_as_given() {
    let s = spec(json!({"default_role": "deny", "rules": [
        {"claim": "/a/0", "op": "matches", "value": "x.*", "role": "admin"},
        {"claim": "b", "op": "exists", "role": "viewer"},
    ]}));
    let m = RoleMapping::compile(s.clone()).expect("valid");
    assert_eq!(m.spec(), &s);
    let m2 = RoleMapping::try_from(s.clone()).expect("valid");
    assert_eq!(m2.spec(), &s);
}

fn ok_rule() -> Value {
    rule("groups", "contains", json!("admins"))
}

#[test]
fn invalid_rules_are_refused_naming_the_rule() {
    let long_claim = "c".repeat(MAX_CLAIM_LEN + 1);
    let long_pattern = "a".repeat(MAX_PATTERN_LEN + 1);
    // (bad rule, substring the message must contain)
    let cases: Vec<(Value, &str)> = vec![
        (rule("", "exists", NO_VALUE), "`claim` is empty"),
        (rule(&long_claim, "exists", NO_VALUE), "at most 256"),
        (
            rule("/a~2b", "exists", NO_VALUE),
            "not a valid JSON Pointer",
        ),
        (rule("/a~", "exists", NO_VALUE), "not a valid JSON Pointer"),
        (
            rule("/a/~/b", "exists", NO_VALUE),
            "write a literal `~` as `~0`",
        ),
        (
            rule("groups", "equals", NO_VALUE),
            "`op` \"equals\" needs a `value`",
        ),
        // an explicit null reads as no value at all
        (
            json!({"claim": "groups", "op": "equals", "value": null, "role": "admin"}),
            "`op` \"equals\" needs a `value`",
        ),
        (
            rule("groups", "contains", NO_VALUE),
            "string, number or boolean: got nothing",
        ),
        (
            rule("groups", "contains", json!(["a"])),
            "got an array; give the single value",
        ),
        (rule("groups", "contains", json!({"a": 1})), "got an object"),
        (
            json!({"claim": "groups", "op": "contains", "value": null, "role": "admin"}),
            "`op` \"contains\" needs `value`",
        ),
        (rule("groups", "contains", json!("")), "empty string"),
        (rule("groups", "in", NO_VALUE), "non-empty list"),
        (
            rule("groups", "in", json!("admins")),
            "got a string; list the accepted values",
        ),
        (rule("groups", "in", json!([])), "got an empty list"),
        (
            rule("groups", "in", json!(["a", {"b": 1}])),
            "item 1 of `value` is an object",
        ),
        (
            rule("groups", "in", json!([null])),
            "item 0 of `value` is null",
        ),
        (
            rule("groups", "in", json!([["a"]])),
            "item 0 of `value` is an array",
        ),
        (
            rule("groups", "matches", NO_VALUE),
            "needs `value` to be a string regex: got nothing",
        ),
        (
            rule("groups", "matches", json!(1)),
            "needs `value` to be a string regex: got a number",
        ),
        (rule("groups", "matches", json!(["a"])), "string regex"),
        (rule("groups", "matches", json!("(")), "not a valid regex"),
        (rule("groups", "matches", json!("[a-")), "not a valid regex"),
        // would escape the anchors if only the wrapped form were checked
        (
            rule("groups", "matches", json!("a)|(b")),
            "not a valid regex",
        ),
        (rule("groups", "matches", json!("a\\")), "not a valid regex"),
        (
            rule("groups", "matches", json!("(?x)a # comment")),
            "once anchored",
        ),
        (
            rule("groups", "matches", json!(long_pattern)),
            "at most 1024",
        ),
        (
            rule("groups", "matches", json!("(\\w{100}){100}")),
            "too complex",
        ),
        (
            rule("groups", "exists", json!("x")),
            "`op` \"exists\" takes no `value`",
        ),
        (
            rule("groups", "exists", json!(false)),
            "got a boolean; remove `value`",
        ),
    ];
    for (bad, needle) in cases {
        for index in [0, 2] {
            let mut rules = vec![ok_rule(); index];
            rules.push(bad.clone());
            // a later bad rule must not hide the first one
            rules.push(rule("", "exists", NO_VALUE));
            let s = spec(json!({"default_role": "viewer", "rules": rules}));
            let err = RoleMapping::compile(s).expect_err(&format!("{bad} should be refused"));
            assert_eq!(err.rule, Some(index), "{bad}: {err}");
            assert!(
                err.message.contains(needle),
                "{bad}: {err:?} lacks {needle:?}"
            );
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("rule {index}: ")), "{shown}");
        }
    }
}

#[test]
fn error_messages_read_well() {
    let err = RoleMapping::compile(spec(json!({"default_role": "viewer", "rules": [
        ok_rule(), ok_rule(), rule("groups", "matches", json!(3)),
    ]})))
    .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "rule 2: `op` \"matches\" needs `value` to be a string regex: got a number; write \
         the pattern as a JSON string, such as \"team-(a|b)\""
    );
    let err = RoleMapping::compile(spec(json!({"default_role": "viewer", "rules": [
        rule("groups", "matches", json!("team-(")),
    ]})))
    .expect_err("refused");
    // the regex crate's own reason is passed on
    assert!(err.message.contains("unclosed group"), "{err}");
    let set_level = RuleError {
        rule: None,
        message: "too many".into(),
    };
    assert_eq!(set_level.to_string(), "too many");
}

#[test]
fn limits() {
    let at = |n: usize| spec(json!({"default_role": "viewer", "rules": vec![ok_rule(); n]}));
    assert!(RoleMapping::compile(at(MAX_RULES)).is_ok());
    let err = RoleMapping::compile(at(MAX_RULES + 1)).expect_err("too many rules");
    assert_eq!(err.rule, None);
    assert!(err
        .to_string()
        .starts_with("a role mapping holds at most 100 rules, this one has 101"));

    // lengths count characters, not bytes
    let claim = "é".repeat(MAX_CLAIM_LEN);
    let pattern = "é".repeat(MAX_PATTERN_LEN);
    let m = mapping(json!({"default_role": "viewer", "rules": [
        rule(&claim, "matches", json!(pattern)),
    ]}));
    assert_eq!(m.evaluate(&json!({ claim: pattern })).rule, Some(0));
}

#[test]
fn spec_round_trips_through_serde() {
    let original = json!({
        "default_role": "deny",
        "rules": [
            {"claim": "groups", "op": "contains", "value": "admins", "role": "admin"},
            {"claim": "https://acme.com/roles", "op": "in", "value": ["dev", 2, true], "role": "developer"},
            {"claim": "/realm_access/roles/0", "op": "equals", "value": {"a": [1, "b"]}, "role": "viewer"},
            {"claim": "email", "op": "matches", "value": ".*@acme\\.com", "role": "viewer"},
            {"claim": "email_verified", "op": "exists", "role": "deny"},
        ]
    });
    let s: RoleMappingSpec = serde_json::from_value(original.clone()).expect("parses");
    assert_eq!(s.rules[1].op, Op::In);
    assert_eq!(s.rules[4].value, None);
    let back = serde_json::to_value(&s).expect("serialises");
    assert_eq!(back, original);
    let again: RoleMappingSpec =
        serde_json::from_str(&serde_json::to_string(&s).expect("serialises")).expect("parses");
    assert_eq!(again, s);
    assert!(RoleMapping::compile(again).is_ok());

    // `"value": null` reads as no value and is not written back
    let s = spec(json!({"default_role": "viewer", "rules": [
        {"claim": "x", "op": "exists", "value": null, "role": "admin"},
    ]}));
    assert_eq!(
        serde_json::to_value(&s).expect("serialises"),
        json!({"default_role": "viewer", "rules": [{"claim": "x", "op": "exists", "role": "admin"}]})
    );
}

#[test]
fn serde_refuses_typos() {
    let cases = [
        (
            json!({"default_role": "viewer", "rules": [
                {"claim": "g", "op": "contains", "vaule": "x", "role": "admin"}]}),
            "unknown field `vaule`",
        ),
        (
            json!({"default_role": "viewer", "rule": []}),
            "unknown field `rule`",
        ),
        (json!({"default": "viewer"}), "unknown field `default`"),
        (json!({"rules": []}), "missing field `default_role`"),
        (
            json!({"default_role": "viewer", "rules": [{"claim": "g", "op": "exists"}]}),
            "missing field `role`",
        ),
        (
            json!({"default_role": "viewer", "rules": [{"claim": "g", "op": "equal", "value": 1, "role": "admin"}]}),
            "unknown variant `equal`",
        ),
        (
            json!({"default_role": "viewer", "rules": [{"claim": "g", "op": "Exists", "role": "admin"}]}),
            "unknown variant `Exists`",
        ),
        (
            json!({"default_role": "viewer", "rules": [{"claim": "g", "op": "exists", "role": "admn"}]}),
            "unknown role \"admn\": use admin, developer, viewer or deny",
        ),
        (json!({"default_role": "Admin"}), "unknown role \"Admin\""),
        (json!({"default_role": 1}), "invalid type"),
        (json!({"default_role": null}), "invalid type"),
    ];
    for (input, needle) in cases {
        let err = serde_json::from_value::<RoleMappingSpec>(input.clone())
            .expect_err(&format!("{input} should be refused"));
        assert!(err.to_string().contains(needle), "{input}: {err}");
    }
}

#[test]
fn roles_and_outcomes_as_strings() {
    let roles = [
        (Role::Admin, "admin"),
        (Role::Developer, "developer"),
        (Role::Viewer, "viewer"),
    ];
    for (role, name) in roles {
        assert_eq!(role.as_str(), name);
        assert_eq!(role.to_string(), name);
        assert_eq!(name.parse::<Role>(), Ok(role));
        assert_eq!(serde_json::to_value(role).ok(), Some(json!(name)));
        assert_eq!(serde_json::from_value::<Role>(json!(name)).ok(), Some(role));
        let outcome = Outcome::from(role);
        assert_eq!(outcome.as_str(), name);
        assert_eq!(outcome.to_string(), name);
        assert_eq!(name.parse::<Outcome>(), Ok(outcome));
        assert_eq!(serde_json::to_value(outcome).ok(), Some(json!(name)));
    }
    assert_eq!(Outcome::Deny.as_str(), "deny");
    assert_eq!("deny".parse::<Outcome>(), Ok(Outcome::Deny));
    assert_eq!(
        serde_json::to_value(Outcome::Deny).ok(),
        Some(json!("deny"))
    );
    assert_eq!(
        serde_json::from_value::<Outcome>(json!("deny")).ok(),
        Some(Outcome::Deny)
    );

    let err = "deny".parse::<Role>().expect_err("deny is no role");
    assert_eq!(
        err.to_string(),
        "unknown role \"deny\": use admin, developer or viewer"
    );
    assert_eq!(err.given, "deny");
    assert!(serde_json::from_value::<Role>(json!("deny")).is_err());
    let err = "root".parse::<Outcome>().expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "unknown role \"root\": use admin, developer, viewer or deny"
    );

    for (op, name) in [
        (Op::Equals, "equals"),
        (Op::Contains, "contains"),
        (Op::In, "in"),
        (Op::Matches, "matches"),
        (Op::Exists, "exists"),
    ] {
        assert_eq!(op.as_str(), name);
        assert_eq!(op.to_string(), name);
        assert_eq!(serde_json::to_value(op).ok(), Some(json!(name)));
        assert_eq!(serde_json::from_value::<Op>(json!(name)).ok(), Some(op));
    }
}

#[test]
fn decision_serialises_for_dry_runs() {
    let d = Decision {
        outcome: ADMIN,
        rule: Some(0),
    };
    assert_eq!(
        serde_json::to_value(d).ok(),
        Some(json!({"role": "admin", "rule": 0}))
    );
    let d = Decision {
        outcome: Outcome::Deny,
        rule: None,
    };
    assert_eq!(
        serde_json::to_value(d).ok(),
        Some(json!({"role": "deny", "rule": null}))
    );
    assert_eq!(
        serde_json::from_value::<Decision>(json!({"role": "deny", "rule": null})).ok(),
        Some(d)
    );
}

#[test]
fn odd_claims_never_panic() {
    let m = mapping(json!({"default_role": "deny", "rules": [
        rule("/a/0/b/1", "equals", json!({"x": [1.5, -2, u64::MAX]})),
        rule("/a/18446744073709551616", "contains", json!(-1)),
        rule("a", "contains", json!("é")),
        rule("/a", "in", json!([1e300, -0.0, "", false])),
        rule("a", "matches", json!("(?s).*\\p{Greek}.*")),
        rule("/", "exists", NO_VALUE),
    ]}));
    let mut deep = json!("end");
    for _ in 0..100 {
        deep = json!({"a": [deep]});
    }
    let claims = [
        json!({}),
        json!({"a": null}),
        json!({"a": ["é", 0.0, -0.0, 1e300, [], {}, null, "Ωmega"]}),
        json!({"a": "\u{0}\u{ffff}"}),
        json!({"a": [{"b": [0, {"x": [1.5, -2, u64::MAX]}]}]}),
        json!({"a": {"0": {"b": {"1": 1}}}}),
        deep,
        json!({"": null}),
        json!([]),
    ];
    let expected = [None, None, Some(2), None, Some(0), None, None, None, None];
    for (c, e) in claims.iter().zip(expected) {
        assert_eq!(m.evaluate(c).rule, e, "{c}");
    }
}
