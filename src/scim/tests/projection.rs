use serde_json::{json, Value};

use super::*;

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "u1",
        "userName": "bjensen",
        "displayName": "Babs",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "b@x", "type": "work"}, {"value": "h@x", "type": "home"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops", "costCenter": "9"},
        "meta": {"resourceType": "User"}
    })
}

#[test]
fn projections_table() {
    let always = |mut extra: Value| {
        extra["schemas"] = user()["schemas"].clone();
        extra["id"] = json!("u1");
        extra["meta"] = json!({"resourceType": "User"});
        extra
    };
    // (attributes, excludedAttributes, expected answer)
    let cases: Vec<(Option<&str>, Option<&str>, Value)> = vec![
        (None, None, user()),
        (Some(""), Some(" "), user()),
        (Some("userName"), None, always(json!({"userName": "bjensen"}))),
        (Some("USERNAME , displayname"), None, always(json!({"userName": "bjensen", "displayName": "Babs"}))),
        (Some("name.givenName"), None, always(json!({"name": {"givenName": "Barbara"}}))),
        (Some("name.givenName,name.familyName"), None, always(json!({"name": {"givenName": "Barbara", "familyName": "Jensen"}}))),
        (Some("emails.value"), None, always(json!({"emails": [{"value": "b@x"}, {"value": "h@x"}]}))),
        (Some("emails.value,emails.type"), None, always(json!({"emails": [{"value": "b@x", "type": "work"}, {"value": "h@x", "type": "home"}]}))),
        (Some("urn:ietf:params:scim:schemas:core:2.0:User:userName"), None, always(json!({"userName": "bjensen"}))),
        (Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"), None,
            always(json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops"}}))),
        (Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"), None,
            always(json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops", "costCenter": "9"}}))),
        (Some("id,meta,nickName"), None, always(json!({}))),
        (Some("userName"), Some("userName"), always(json!({"userName": "bjensen"}))),
        (None, Some("emails,name.familyName"), {
            let mut u = user();
            u.as_object_mut().unwrap().remove("emails");
            u["name"].as_object_mut().unwrap().remove("familyName");
            u
        }),
        (None, Some("id,schemas,meta"), user()),
        (None, Some("emails.type"), {
            let mut u = user();
            u["emails"] = json!([{"value": "b@x"}, {"value": "h@x"}]);
            u
        }),
        (None, Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"), {
            let mut u = user();
            u.as_object_mut().unwrap().remove("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User");
            u
        }),
        (None, Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"), {
            let mut u = user();
            u.as_object_mut().unwrap().remove("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User");
            u
        }),
    ];
    for (a, e, want) in cases {
        let p = Projection::parse(a, e).unwrap_or_else(|err| panic!("{a:?} {e:?}: {err}"));
        assert_eq!(p.apply(user()), want, "{a:?} {e:?}");
    }
}

#[test]
fn malformed_projection_lists() {
    let cases: &[(Option<&str>, Option<&str>, ScimType)] = &[
        (Some("userName,"), None, ScimType::InvalidValue),
        (Some(",userName"), None, ScimType::InvalidValue),
        (None, Some("a,,b"), ScimType::InvalidValue),
        (Some("user name"), None, ScimType::InvalidPath),
        (
            Some("emails[type eq \"work\"]"),
            None,
            ScimType::InvalidPath,
        ),
        (None, Some("a.b.c"), ScimType::InvalidPath),
    ];
    for (a, e, t) in cases {
        let err = Projection::parse(*a, *e).unwrap_err();
        assert_eq!((err.status, err.scim_type), (400, Some(*t)), "{a:?} {e:?}");
    }
    let many = vec!["userName"; MAX_PROJECTION_NAMES + 1].join(",");
    assert!(Projection::parse(Some(&many), None).is_err());
}

#[test]
fn wants_tells_what_to_load() {
    let only = Projection::parse(Some("displayName"), None).unwrap();
    assert!(only.wants("displayName") && only.wants("id") && !only.wants("members"));
    let except = Projection::parse(None, Some("members")).unwrap();
    assert!(!except.wants("members") && except.wants("displayName"));
    assert!(Projection::parse(None, Some("members.display"))
        .unwrap()
        .wants("members"));
    assert!(Projection::default().wants("members") && Projection::default().is_all());
}
