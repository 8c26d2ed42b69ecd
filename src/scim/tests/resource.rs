use serde_json::{json, Value};
use time::OffsetDateTime;

use super::*;

fn entra_create() -> Value {
    // Microsoft Entra ID's create-user request (SCIM endpoint tutorial).
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": true,
        "emails": [{
            "primary": true,
            "type": "work",
            "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
        }],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []
    })
}

#[test]
fn entra_and_okta_users_parse() {
    let u = UserResource::from_json(&entra_create()).unwrap();
    assert_eq!(
        u.user_name,
        "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"
    );
    assert_eq!(
        u.external_id.as_deref(),
        Some("0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef")
    );
    assert!(u.active);
    assert_eq!(u.given_name.as_deref(), Some("givenName"));
    assert_eq!(
        u.work_email(),
        Some("Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com")
    );
    assert!(u.document.get("meta").is_none(), "meta is server-owned");
    assert_eq!(
        u.document["schemas"],
        json!([USER_SCHEMA]),
        "no extension object, no extension schema"
    );

    let okta = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [], "password": "1mz050nq", "active": true
    });
    let u = UserResource::from_json(&okta).unwrap();
    assert_eq!(u.display_name.as_deref(), Some("Test User"));
    assert!(u.document.get("password").is_none() && u.document.get("groups").is_none());
    assert_eq!(u.document["locale"], "en-US");
}

#[test]
fn user_bodies_table() {
    type Check = fn(&UserResource) -> bool;
    // (name, body, Ok(check) or Err(scimType))
    let cases: Vec<(&str, Value, Result<Check, ScimType>)> = vec![
        (
            "minimal, active by default",
            json!({"userName": "a"}),
            Ok(|u| u.active && u.document["active"] == true),
        ),
        (
            "active \"False\"",
            json!({"userName": "a", "active": "False"}),
            Ok(|u| !u.active && u.document["active"] == false),
        ),
        (
            "active \"TRUE\"",
            json!({"userName": "a", "active": "TRUE"}),
            Ok(|u| u.active),
        ),
        (
            "active 0 refused",
            json!({"userName": "a", "active": 0}),
            Err(ScimType::InvalidValue),
        ),
        (
            "active \"no\" refused",
            json!({"userName": "a", "active": "no"}),
            Err(ScimType::InvalidValue),
        ),
        (
            "primary \"True\"",
            json!({"userName": "a", "emails": [{"value": "x@y", "primary": "True"}]}),
            Ok(|u| u.emails[0].primary && u.document["emails"][0]["primary"] == true),
        ),
        (
            "attribute names in any case",
            json!({"USERNAME": "a", "DisplayName": "D", "Name": {"GIVENNAME": "G"}}),
            Ok(|u| {
                u.user_name == "a"
                    && u.display_name.as_deref() == Some("D")
                    && u.given_name.as_deref() == Some("G")
                    && u.document.get("DisplayName").is_none()
            }),
        ),
        (
            "unknown core attributes ignored",
            json!({"userName": "a", "favouriteColour": "blue", "id": "x", "meta": {}}),
            Ok(|u| u.document.get("favouriteColour").is_none() && u.document.get("id").is_none()),
        ),
        (
            "extension kept, schema listed",
            json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"department": "Ops", "manager": "m1"}}),
            Ok(|u| {
                u.document[ENTERPRISE_USER_SCHEMA]["department"] == "Ops"
                    && u.document[ENTERPRISE_USER_SCHEMA]["manager"] == json!({"value": "m1"})
                    && u.document["schemas"] == json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA])
            }),
        ),
        (
            "extension attribute as one key",
            json!({"userName": "a", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter": "9"}),
            Ok(|u| u.document[ENTERPRISE_USER_SCHEMA]["costCenter"] == "9"),
        ),
        (
            "complex enterprise attribute as one key",
            json!({"userName": "a", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": {"value": "m"}}),
            Ok(|u| {
                u.document[ENTERPRISE_USER_SCHEMA]["manager"] == json!({"value": "m"})
                    && u.document["schemas"] == json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA])
            }),
        ),
        (
            "core attributes under the core URN",
            json!({USER_SCHEMA: {"userName": "a", "title": "T"}}),
            Ok(|u| u.user_name == "a" && u.document["title"] == "T"),
        ),
        (
            "nulls are no value",
            json!({"userName": "a", "displayName": null, "name": {"givenName": null}}),
            Ok(|u| u.display_name.is_none() && u.given_name.is_none()),
        ),
        (
            "single email object taken as a list",
            json!({"userName": "a", "emails": {"value": "x@y"}}),
            Ok(|u| u.emails.len() == 1),
        ),
        (
            "work email: primary first",
            json!({"userName": "a", "emails": [{"value": "w@x", "type": "work"}, {"value": "p@x", "primary": true}]}),
            Ok(|u| u.work_email() == Some("p@x")),
        ),
        (
            "work email: type work next",
            json!({"userName": "a", "emails": [{"value": "h@x", "type": "home"}, {"value": "w@x", "type": "Work"}]}),
            Ok(|u| u.work_email() == Some("w@x")),
        ),
        (
            "work email: else first",
            json!({"userName": "a", "emails": [{"value": "h@x", "type": "home"}]}),
            Ok(|u| u.work_email() == Some("h@x")),
        ),
        (
            "no userName",
            json!({"displayName": "x"}),
            Err(ScimType::InvalidValue),
        ),
        (
            "blank userName",
            json!({"userName": "  "}),
            Err(ScimType::InvalidValue),
        ),
        (
            "userName a number",
            json!({"userName": 5}),
            Err(ScimType::InvalidValue),
        ),
        (
            "userName 257 chars",
            json!({"userName": "é".repeat(257)}),
            Err(ScimType::InvalidValue),
        ),
        (
            "userName 256 chars",
            json!({"userName": "é".repeat(256)}),
            Ok(|u| u.user_name.chars().count() == 256),
        ),
        (
            "NUL in userName",
            json!({"userName": "a\u{0}b"}),
            Err(ScimType::InvalidValue),
        ),
        (
            "NUL deep inside",
            json!({"userName": "a", "addresses": [{"locality": "x\u{0}"}]}),
            Err(ScimType::InvalidValue),
        ),
        (
            "NUL in a key",
            json!({"userName": "a", "x\u{0}": 1}),
            Err(ScimType::InvalidValue),
        ),
        (
            "not an object",
            json!(["userName"]),
            Err(ScimType::InvalidSyntax),
        ),
        (
            "non-ASCII keys ignored",
            json!({"userName": "a", "éé": 1, "urné": 2, "uré:x": {"y": 1}}),
            Ok(|u| u.document.get("éé").is_none() && u.document.get("urné").is_none()),
        ),
        (
            "document over 64 KB",
            json!({"userName": "a", "title": "x".repeat(2000), "addresses": (0..40).map(|_| json!({"formatted": "y".repeat(2000)})).collect::<Vec<_>>()}),
            Err(ScimType::InvalidValue),
        ),
        (
            "101 emails",
            json!({"userName": "a", "emails": (0..101).map(|i| json!({"value": format!("{i}@x")})).collect::<Vec<_>>()}),
            Err(ScimType::InvalidValue),
        ),
        (
            "100 emails",
            json!({"userName": "a", "emails": (0..100).map(|i| json!({"value": format!("{i}@x")})).collect::<Vec<_>>()}),
            Ok(|u| u.emails.len() == 100),
        ),
        (
            "email without value",
            json!({"userName": "a", "emails": [{"type": "work"}]}),
            Err(ScimType::InvalidValue),
        ),
        (
            "emails a string",
            json!({"userName": "a", "emails": "x@y"}),
            Err(ScimType::InvalidValue),
        ),
        (
            "name a string",
            json!({"userName": "a", "name": "A B"}),
            Err(ScimType::InvalidValue),
        ),
        (
            "displayName an object",
            json!({"userName": "a", "displayName": {}}),
            Err(ScimType::InvalidValue),
        ),
        (
            "too many extensions",
            {
                let mut b = json!({"userName": "a"});
                for i in 0..11 {
                    b[format!("urn:example:ext:{i}:User")] = json!({"x": "y"});
                }
                b
            },
            Err(ScimType::InvalidValue),
        ),
    ];
    for (name, body, want) in cases {
        match (UserResource::from_json(&body), want) {
            (Ok(u), Ok(check)) => assert!(check(&u), "{name}: {:#}", u.document),
            (Err(e), Err(t)) => assert_eq!((e.status, e.scim_type), (400, Some(t)), "{name}: {e}"),
            (got, _) => panic!("{name}: unexpected {got:?}"),
        }
    }
}

fn meta(kind: &'static str, location: &str) -> Meta {
    Meta {
        resource_type: kind,
        created: OffsetDateTime::from_unix_timestamp(1796115600).unwrap(),
        last_modified: OffsetDateTime::from_unix_timestamp(1796121000).unwrap(),
        location: location.into(),
        version: etag(3),
    }
}

#[test]
fn user_and_group_answers() {
    let u = UserResource::from_json(&entra_create()).unwrap();
    let base = "https://sso.example.com/scim/v2/acme";
    let m = meta("User", &format!("{base}/Users/u1"));
    let j = user_json("u1", &u.document, &[("g1".into(), "Admins".into())], &m);
    assert_eq!(j["id"], "u1");
    assert_eq!(j["schemas"], json!([USER_SCHEMA]));
    assert_eq!(j["userName"], u.user_name);
    assert_eq!(
        j["groups"],
        json!([{"value": "g1", "display": "Admins", "$ref": format!("{base}/Groups/g1"), "type": "direct"}])
    );
    assert_eq!(
        j["meta"],
        json!({
            "resourceType": "User", "created": "2026-12-01T09:00:00Z", "lastModified": "2026-12-01T10:30:00Z",
            "location": format!("{base}/Users/u1"), "version": "W/\"3\""
        })
    );
    assert!(user_json("u1", &u.document, &[], &m)
        .get("groups")
        .is_none());

    let g = GroupResource::from_json(&json!({
        // Entra's create-group request, plus members.
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "displayName",
        "meta": {"resourceType": "Group"},
        "members": [{"value": "u1"}, {"value": "u2", "display": "ignored"}, {"value": "u1"}]
    })).unwrap();
    assert_eq!(g.members, vec!["u1".to_string(), "u2".to_string()]);
    let gj = group_json(
        "g1",
        &g,
        &[("u1".into(), "Una".into())],
        &meta("Group", &format!("{base}/Groups/g1")),
    );
    assert_eq!(
        gj["members"],
        json!([
            {"value": "u1", "display": "Una", "$ref": format!("{base}/Users/u1"), "type": "User"},
            {"value": "u2", "$ref": format!("{base}/Users/u2"), "type": "User"}
        ])
    );
    assert_eq!(gj["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    assert_eq!(gj["meta"]["resourceType"], "Group");
    assert_eq!(etag(42), "W/\"42\"");
    // (If-Match, accepts version 42)
    let cases = [
        ("W/\"42\"", true),
        ("\"42\"", true),
        ("*", true),
        ("W/\"41\", W/\"42\"", true),
        ("W/\"41\"", false),
        ("42", false),
        ("W/\"420\"", false),
        ("", false),
    ];
    for (h, want) in cases {
        assert_eq!(if_match(h, 42), want, "{h}");
    }
}

#[test]
fn group_bodies_table() {
    let cases: Vec<(&str, Value, Option<ScimType>)> = vec![
        (
            "okta create",
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []}),
            None,
        ),
        (
            "members null",
            json!({"displayName": "g", "members": null}),
            None,
        ),
        (
            "no displayName",
            json!({"members": []}),
            Some(ScimType::InvalidValue),
        ),
        (
            "blank displayName",
            json!({"displayName": ""}),
            Some(ScimType::InvalidValue),
        ),
        (
            "long displayName",
            json!({"displayName": "x".repeat(257)}),
            Some(ScimType::InvalidValue),
        ),
        (
            "member without value",
            json!({"displayName": "g", "members": [{"display": "x"}]}),
            Some(ScimType::InvalidValue),
        ),
        (
            "members a string",
            json!({"displayName": "g", "members": "u1"}),
            Some(ScimType::InvalidValue),
        ),
        (
            "externalId a number",
            json!({"displayName": "g", "externalId": 1}),
            Some(ScimType::InvalidValue),
        ),
        (
            "NUL",
            json!({"displayName": "g\u{0}"}),
            Some(ScimType::InvalidValue),
        ),
        ("array", json!([]), Some(ScimType::InvalidSyntax)),
    ];
    for (name, body, want) in cases {
        let got = GroupResource::from_json(&body)
            .err()
            .map(|e| e.scim_type.unwrap());
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn paging_table() {
    // (startIndex, count, Ok((start, count)) or Err)
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<(usize, usize)>);
    let cases: &[Case] = &[
        (None, None, Some((1, 100))),
        (Some("1"), Some("10"), Some((1, 10))),
        (Some("0"), Some("0"), Some((1, 0))),
        (Some("-5"), Some("-5"), Some((1, 0))),
        (Some("101"), Some("5000"), Some((101, 1000))),
        (Some(" 7 "), Some(""), Some((7, 100))),
        (Some("+3"), Some("+2"), Some((3, 2))),
        (
            Some("99999999999999999999999999999999999999999"),
            None,
            Some((usize::try_from(i64::MAX).unwrap(), 100)),
        ),
        (Some("abc"), None, None),
        (None, Some("1.5"), None),
        (None, Some("-"), None),
        (Some("1e3"), None, None),
    ];
    for (s, c, want) in cases {
        let got = Paging::parse(*s, *c).map(|p| (p.start_index, p.count));
        match want {
            Some(w) => assert_eq!(got.unwrap(), *w, "{s:?} {c:?}"),
            None => assert_eq!(
                got.unwrap_err().scim_type,
                Some(ScimType::InvalidValue),
                "{s:?} {c:?}"
            ),
        }
    }
    assert_eq!(Paging::parse(Some("11"), None).unwrap().offset(), 10);
    let l = list_response(250, 0, vec![json!({"id": "a"})]);
    assert_eq!(
        l,
        json!({
            "schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 250, "startIndex": 1,
            "itemsPerPage": 1, "Resources": [{"id": "a"}]
        })
    );
}
