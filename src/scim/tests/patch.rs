//! PATCH bodies as Okta ("SCIM 2.0 with Okta" guide) and Microsoft Entra ID ("Tutorial:
//! Develop and plan provisioning for a SCIM endpoint", and the SCIM compliance notes) send
//! them, close to verbatim.

use serde_json::{json, Value};

use super::*;
use crate::scim::resource::{UserResource, USER_SCHEMA};

fn okta_user() -> Value {
    // Okta's create-user body, as stored by UserResource::from_json.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    });
    UserResource::from_json(&body).unwrap().document
}

fn patch_user(doc: &Value, body: Value) -> Result<UserResource, ScimError> {
    let ops = parse_patch(&body)?;
    let patched = apply_to_user(doc, &ops)?;
    UserResource::from_json(&patched)
}

fn ops(list: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": list})
}

#[test]
fn okta_and_entra_user_patches() {
    // (name, operations, check on the result)
    type Check = fn(&UserResource) -> bool;
    let cases: Vec<(&str, Value, Check)> = vec![
        (
            "okta deactivate (no path)",
            json!([{"op": "replace", "value": {"active": false}}]),
            |u| !u.active,
        ),
        (
            "okta password change is accepted and not stored",
            json!([{"op": "replace", "value": {"password": "t1meMa$heen"}}]),
            |u| u.document.get("password").is_none() && u.active,
        ),
        (
            "okta profile update (no path, several attributes)",
            json!([{"op": "replace", "value": {"name": {"givenName": "Another"}, "displayName": "Another User"}}]),
            |u| {
                u.given_name.as_deref() == Some("Another")
                    && u.family_name.as_deref() == Some("User")
                    && u.display_name.as_deref() == Some("Another User")
            },
        ),
        (
            "entra disable",
            json!([{"op": "Replace", "path": "active", "value": false}]),
            |u| !u.active,
        ),
        (
            "entra disable with a string boolean",
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
            |u| !u.active && u.document["active"] == json!(false),
        ),
        (
            "entra path-less with string boolean",
            json!([{"op": "Replace", "value": {"active": "True"}}]),
            |u| u.active,
        ),
        (
            "entra multi-valued update",
            json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
            ]),
            |u| {
                u.work_email() == Some("updatedEmail@microsoft.com")
                    && u.family_name.as_deref() == Some("updatedFamilyName")
                    && u.emails.len() == 1
            },
        ),
        (
            "entra single-valued update",
            json!([{"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]),
            |u| u.user_name == "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com",
        ),
        (
            "entra add givenName and familyName",
            json!([
                {"op": "Add", "path": "name.givenName", "value": "John"},
                {"op": "Add", "path": "name.familyName", "value": "Smith"}
            ]),
            |u| {
                u.given_name.as_deref() == Some("John") && u.family_name.as_deref() == Some("Smith")
            },
        ),
        (
            "entra path-less value with path-style keys",
            json!([{"op": "replace", "value": {
                "active": false,
                "name.givenName": "Jane",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984"
            }}]),
            |u| {
                !u.active
                    && u.given_name.as_deref() == Some("Jane")
                    && u.document[ENTERPRISE_USER_SCHEMA]["employeeNumber"] == "701984"
            },
        ),
        (
            "entra enterprise attributes by URN path",
            json!([
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "2819c223-7f76-453a-919d-413861904646"}
            ]),
            |u| {
                u.document[ENTERPRISE_USER_SCHEMA]["department"] == "R&D"
                    && u.document[ENTERPRISE_USER_SCHEMA]["manager"]["value"]
                        == "2819c223-7f76-453a-919d-413861904646"
                    && u.document["schemas"].as_array().unwrap().len() == 2
            },
        ),
        (
            "whole extension object without a path",
            json!([{"op": "add", "value": {ENTERPRISE_USER_SCHEMA: {"costCenter": "4130", "division": "Theme Park"}}}]),
            |u| {
                u.document[ENTERPRISE_USER_SCHEMA]["costCenter"] == "4130"
                    && u.document[ENTERPRISE_USER_SCHEMA]["division"] == "Theme Park"
            },
        ),
        (
            "an extension the user does not have yet, without a path",
            json!([{"op": "add", "value": {"urn:okta:onprem_app:1.0:user:custom": {"roleUUID": "84e67f54"}}}]),
            |u| {
                u.document["urn:okta:onprem_app:1.0:user:custom"]["roleUUID"] == "84e67f54"
                    && u.document["schemas"].as_array().unwrap().len() == 2
            },
        ),
        (
            "a complex enterprise attribute as one key",
            json!([{"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": {"value": "m2"}}}]),
            |u| u.document[ENTERPRISE_USER_SCHEMA]["manager"] == json!({"value": "m2"}),
        ),
        (
            "echoed groups in a path-less value are ignored",
            json!([{"op": "replace", "value": {"groups": [{"value": "g"}], "nickName": "Tess"}}]),
            |u| u.document["nickName"] == "Tess" && u.document.get("groups").is_none(),
        ),
        (
            "work email created when missing (a home email exists)",
            json!([
                {"op": "remove", "path": "emails[type eq \"work\"]"},
                {"op": "add", "path": "emails", "value": [{"value": "h@home.example", "type": "home"}]},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "w@corp.example"}
            ]),
            |u| u.emails.len() == 2 && u.work_email() == Some("w@corp.example"),
        ),
        (
            "add a new primary email clears the old primary",
            json!([{"op": "add", "path": "emails", "value": [{"value": "n@corp.example", "type": "work", "primary": "true"}]}]),
            |u| {
                u.emails.iter().filter(|e| e.primary).count() == 1
                    && u.work_email() == Some("n@corp.example")
            },
        ),
        (
            "add an email that exists updates it in place",
            json!([{"op": "add", "path": "emails", "value": {"value": "TEST.USER@okta.local", "type": "home"}}]),
            |u| u.emails.len() == 1 && u.emails[0].kind.as_deref() == Some("home"),
        ),
        (
            "remove an attribute; remove something absent is a no-op",
            json!([
                {"op": "remove", "path": "displayName"},
                {"op": "remove", "path": "nickName"},
                {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}
            ]),
            |u| u.display_name.is_none(),
        ),
        (
            "remove a sub-attribute",
            json!([{"op": "remove", "path": "name.givenName"}]),
            |u| u.given_name.is_none() && u.family_name.as_deref() == Some("User"),
        ),
        (
            "remove listed emails by value",
            json!([{"op": "remove", "path": "emails", "value": [{"value": "test.user@okta.local"}]}]),
            |u| u.emails.is_empty(),
        ),
        (
            "replace the whole emails list",
            json!([{"op": "replace", "path": "emails", "value": [{"value": "a@x.example"}, {"value": "b@x.example", "type": "work"}]}]),
            |u| u.emails.len() == 2 && u.work_email() == Some("b@x.example"),
        ),
        (
            "op and attribute names in any case",
            json!([{"OP": "REPLACE", "PATH": "DisplayName", "VALUE": "Loud"}]),
            |u| {
                u.display_name.as_deref() == Some("Loud") && u.document.get("DisplayName").is_none()
            },
        ),
        (
            "URN-prefixed core path",
            json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName", "value": "Core"}]),
            |u| u.family_name.as_deref() == Some("Core"),
        ),
        (
            "echoed id and schemas in a path-less value are not changes",
            json!([{"op": "replace", "value": {"id": "other", "schemas": [], "title": "Boss"}}]),
            |u| u.document["title"] == "Boss" && u.document.get("id").is_none(),
        ),
    ];
    let doc = okta_user();
    for (name, list, check) in cases {
        let u = patch_user(&doc, ops(list)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(check(&u), "{name}: {:#}", u.document);
    }
}

#[test]
fn bad_patches_are_refused_with_the_right_type() {
    let doc = okta_user();
    // (name, whole body, scimType)
    let cases: Vec<(&str, Value, ScimType)> = vec![
        ("not an object", json!([1]), ScimType::InvalidSyntax),
        (
            "no schemas",
            json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
            ScimType::InvalidSyntax,
        ),
        (
            "wrong schema",
            json!({"schemas": [USER_SCHEMA], "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
            ScimType::InvalidSyntax,
        ),
        ("no operations", ops(json!([])), ScimType::InvalidSyntax),
        (
            "operations not an array",
            ops(json!({"op": "add"})),
            ScimType::InvalidSyntax,
        ),
        (
            "unknown op",
            ops(json!([{"op": "move", "path": "title", "value": "x"}])),
            ScimType::InvalidSyntax,
        ),
        (
            "remove without path",
            ops(json!([{"op": "remove"}])),
            ScimType::NoTarget,
        ),
        (
            "add without value",
            ops(json!([{"op": "add", "path": "title"}])),
            ScimType::InvalidValue,
        ),
        (
            "path-less scalar value",
            ops(json!([{"op": "replace", "value": false}])),
            ScimType::InvalidValue,
        ),
        (
            "bad path",
            ops(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}])),
            ScimType::InvalidPath,
        ),
        (
            "bad path chars",
            ops(json!([{"op": "replace", "path": "a b", "value": "x"}])),
            ScimType::InvalidPath,
        ),
        (
            "path not a string",
            ops(json!([{"op": "replace", "path": 3, "value": "x"}])),
            ScimType::InvalidPath,
        ),
        (
            "junk after ]",
            ops(json!([{"op": "replace", "path": "emails[type eq \"w\"]x", "value": "x"}])),
            ScimType::InvalidPath,
        ),
        (
            "id read-only",
            ops(json!([{"op": "replace", "path": "id", "value": "x"}])),
            ScimType::Mutability,
        ),
        (
            "groups read-only",
            ops(json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}])),
            ScimType::Mutability,
        ),
        (
            "meta read-only",
            ops(json!([{"op": "remove", "path": "meta.created"}])),
            ScimType::Mutability,
        ),
        (
            "no target for a complex filter",
            ops(json!([{"op": "replace", "path": "emails[value co \"x\"].type", "value": "work"}])),
            ScimType::NoTarget,
        ),
        (
            "active not a boolean",
            ops(json!([{"op": "replace", "path": "active", "value": "maybe"}])),
            ScimType::InvalidValue,
        ),
        (
            "userName removed",
            ops(json!([{"op": "remove", "path": "userName"}])),
            ScimType::InvalidValue,
        ),
        (
            "NUL in a value",
            ops(json!([{"op": "replace", "path": "title", "value": "a\u{0}b"}])),
            ScimType::InvalidValue,
        ),
    ];
    for (name, body, want) in cases {
        let e = patch_user(&doc, body).expect_err(name);
        assert_eq!((e.status, e.scim_type), (400, Some(want)), "{name}: {e}");
    }
    let many = ops(Value::Array(vec![
        json!({"op": "remove", "path": "title"});
        MAX_OPERATIONS + 1
    ]));
    assert_eq!(
        parse_patch(&many).unwrap_err().scim_type,
        Some(ScimType::InvalidSyntax)
    );
}

fn group(list: Value) -> Result<GroupPatch, ScimError> {
    group_patch(&parse_patch(&ops(list))?)
}

#[test]
fn okta_and_entra_group_patches() {
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Okta: rename (path-less, id echoed).
    let g = group(json!([{"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2"}}])).unwrap();
    assert_eq!(g.display_name.as_deref(), Some("Test SCIMv2"));
    assert!(g.add_members.is_empty() && g.replace_members.is_none());
    // Okta: add members, remove one by filter.
    let g = group(json!([{"op": "add", "path": "members", "value": [
        {"value": "b1c794f24f4c49f4b5d503a4cb2686ea", "display": "SCIM 2 Group A"}]}]))
    .unwrap();
    assert_eq!(g.add_members, ids(&["b1c794f24f4c49f4b5d503a4cb2686ea"]));
    let g = group(json!([{"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"}])).unwrap();
    assert_eq!(
        g.remove_members,
        ids(&["89bb1940-b905-4575-9e7f-6f887cfb368e"])
    );
    // Entra: add and remove members with a value list ("$ref": null included).
    let g = group(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}])).unwrap();
    assert_eq!(g.add_members, ids(&["f648f8d5ea4e4cd38e9c"]));
    let g = group(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}])).unwrap();
    assert_eq!(g.remove_members, ids(&["f648f8d5ea4e4cd38e9c"]));
    // Entra: rename by path; externalId set and removed.
    let g = group(json!([{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}])).unwrap();
    assert_eq!(
        g.display_name.as_deref(),
        Some("1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName")
    );
    let g = group(json!([{"op": "replace", "path": "externalId", "value": "e1"}, {"op": "remove", "path": "externalId"}])).unwrap();
    assert_eq!(g.external_id, Some(None));
    // Entra: many members in one request.
    let many: Vec<Value> = (0..5000)
        .map(|i| json!({"value": format!("u{i}")}))
        .collect();
    let g = group(json!([{"op": "Add", "path": "members", "value": many}])).unwrap();
    assert_eq!(g.add_members.len(), 5000);
    // Several ids in one filter; replace; remove all.
    let g = group(json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"}]))
        .unwrap();
    assert_eq!(g.remove_members, ids(&["a", "b"]));
    let g = group(json!([{"op": "replace", "path": "members", "value": [{"value": "a"}, {"value": "a"}, {"value": "b"}]}])).unwrap();
    assert_eq!(g.replace_members, Some(ids(&["a", "b"])));
    let g = group(json!([{"op": "remove", "path": "members"}])).unwrap();
    assert_eq!(g.replace_members, Some(vec![]));
    // Sequences fold: add then remove cancels; replace then add extends the list.
    let g = group(json!([
        {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
        {"op": "remove", "path": "members[value eq \"a\"]"}
    ]))
    .unwrap();
    assert_eq!(
        (g.add_members.clone(), g.remove_members.clone()),
        (ids(&["b"]), ids(&["a"]))
    );
    let g = group(json!([
        {"op": "replace", "path": "members", "value": [{"value": "a"}]},
        {"op": "add", "path": "members", "value": [{"value": "c"}]},
        {"op": "remove", "path": "members", "value": [{"value": "a"}]}
    ]))
    .unwrap();
    assert_eq!(g.replace_members, Some(ids(&["c"])));
    assert!(g.add_members.is_empty() && g.remove_members.is_empty());
    assert!(
        group(json!([{"op": "replace", "value": {"schemas": [GROUP_SCHEMA_URN]}}]))
            .unwrap()
            .is_empty()
    );
}

const GROUP_SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

#[test]
fn bad_group_patches() {
    let cases: Vec<(&str, Value, ScimType)> = vec![
        (
            "remove displayName",
            json!([{"op": "remove", "path": "displayName"}]),
            ScimType::InvalidValue,
        ),
        (
            "empty displayName",
            json!([{"op": "replace", "path": "displayName", "value": " "}]),
            ScimType::InvalidValue,
        ),
        (
            "displayName not a string",
            json!([{"op": "replace", "value": {"displayName": 5}}]),
            ScimType::InvalidValue,
        ),
        (
            "member filter not by value",
            json!([{"op": "remove", "path": "members[display eq \"x\"]"}]),
            ScimType::InvalidFilter,
        ),
        (
            "member filter with and",
            json!([{"op": "remove", "path": "members[value eq \"x\" and value eq \"y\"]"}]),
            ScimType::InvalidFilter,
        ),
        (
            "add through a filter",
            json!([{"op": "add", "path": "members[value eq \"x\"]", "value": {}}]),
            ScimType::InvalidPath,
        ),
        (
            "member sub-attribute",
            json!([{"op": "replace", "path": "members[value eq \"x\"].display", "value": "y"}]),
            ScimType::InvalidPath,
        ),
        (
            "members not objects",
            json!([{"op": "add", "path": "members", "value": ["x"]}]),
            ScimType::InvalidValue,
        ),
        (
            "members without value",
            json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}]),
            ScimType::InvalidValue,
        ),
        (
            "id by path",
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            ScimType::Mutability,
        ),
        (
            "displayName sub",
            json!([{"op": "replace", "path": "displayName.x", "value": "x"}]),
            ScimType::InvalidPath,
        ),
    ];
    for (name, list, want) in cases {
        let e = group(list).expect_err(name);
        assert_eq!((e.status, e.scim_type), (400, Some(want)), "{name}: {e}");
    }
}

/// Deterministic pseudo-random paths: a refusal is always a 400 with a scimType, never a panic.
#[test]
fn random_paths_never_panic() {
    const ALPHABET: &[&str] = &[
        "emails",
        "members",
        "name",
        ".",
        "givenName",
        "[",
        "]",
        "value eq \"x\"",
        " ",
        "\"",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ":",
        "department",
        "é",
        " or ",
        "(",
        ")",
        "\\",
    ];
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let doc = okta_user();
    let mut ok = 0;
    for _ in 0..10_000 {
        let len = 1 + (next() % 8) as usize;
        let path: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        let body = ops(json!([{"op": "add", "path": path, "value": "v"}]));
        match parse_patch(&body).and_then(|o| apply_to_user(&doc, &o)) {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.status == 400 && e.scim_type.is_some(), "{path:?}: {e}"),
        }
        let _ = crate::scim::resource::Projection::parse(Some(&path), None);
        let _ = parse_patch(&body).and_then(|o| group_patch(&o));
    }
    assert!(ok > 50, "{ok}");
}

#[test]
fn group_patch_applies_in_memory() {
    let mut g = crate::scim::resource::GroupResource {
        display_name: "Old".into(),
        external_id: Some("e".into()),
        members: vec!["a".into(), "b".into()],
    };
    let p = group(json!([
        {"op": "replace", "value": {"displayName": "New"}},
        {"op": "remove", "path": "externalId"},
        {"op": "remove", "path": "members[value eq \"a\"]"},
        {"op": "add", "path": "members", "value": [{"value": "c"}, {"value": "b"}]}
    ]))
    .unwrap();
    p.apply(&mut g);
    assert_eq!(g.display_name, "New");
    assert_eq!(g.external_id, None);
    assert_eq!(g.members, vec!["b".to_string(), "c".to_string()]);
    group(json!([{"op": "replace", "path": "members", "value": [{"value": "z"}]}]))
        .unwrap()
        .apply(&mut g);
    assert_eq!(g.members, vec!["z".to_string()]);
}
