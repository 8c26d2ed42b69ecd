//! Discovery documents (RFC 7644 §4, RFC 7643 §5-7): what this service provider supports,
//! its resource types and its schemas. They describe exactly what `scim/` implements.

use serde_json::{json, Value};

use super::resource::{
    list_response, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, MAX_COUNT, USER_SCHEMA,
};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

fn trim(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

/// `GET /ServiceProviderConfig`: PATCH, filters (up to 1000 results) and ETags supported;
/// bulk, sorting and password changes not; authentication by bearer token.
pub fn service_provider_config(base_url: &str) -> Value {
    let base = trim(base_url);
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A SCIM token of this organisation, created in the console or the admin API, sent as 'Authorization: Bearer <token>'.",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig")
        }
    })
}

fn user_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A member of the organisation",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
    })
}

fn group_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "description": "A group of members; role rules can match it",
        "schema": GROUP_SCHEMA,
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")}
    })
}

/// `GET /ResourceTypes`: a ListResponse of User and Group.
pub fn resource_types(base_url: &str) -> Value {
    let base = trim(base_url);
    list_response(2, 1, vec![user_type(base), group_type(base)])
}

/// `GET /ResourceTypes/{name}`; `None` for an unknown name (404).
pub fn resource_type(base_url: &str, name: &str) -> Option<Value> {
    let base = trim(base_url);
    if name.eq_ignore_ascii_case("User") {
        Some(user_type(base))
    } else if name.eq_ignore_ascii_case("Group") {
        Some(group_type(base))
    } else {
        None
    }
}

/// An attribute definition (RFC 7643 §7).
struct A {
    name: &'static str,
    ty: &'static str,
    multi: bool,
    required: bool,
    case_exact: bool,
    mutability: &'static str,
    returned: &'static str,
    uniqueness: &'static str,
    desc: &'static str,
}

const fn s(name: &'static str, desc: &'static str) -> A {
    A {
        name,
        ty: "string",
        multi: false,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        returned: "default",
        uniqueness: "none",
        desc,
    }
}

impl A {
    fn json(&self, subs: &[A]) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.ty,
            "multiValued": self.multi,
            "description": self.desc,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        });
        if self.ty == "complex" {
            v["subAttributes"] = Value::Array(subs.iter().map(|a| a.json(&[])).collect());
        }
        if self.ty == "reference" {
            v["referenceTypes"] = json!(["User", "Group", "external"]);
        }
        v
    }
}

/// The sub-attributes of a multi-valued attribute (value, display, type, primary).
fn multi_subs(types: &'static [&'static str]) -> Value {
    let mut ty = s("type", "A label: work, home, other, …").json(&[]);
    ty["canonicalValues"] = json!(types);
    Value::Array(vec![
        s("value", "The value").json(&[]),
        s("display", "A human-readable name").json(&[]),
        ty,
        A {
            ty: "boolean",
            ..s("primary", "The preferred value; at most one is primary")
        }
        .json(&[]),
    ])
}

fn multi(name: &'static str, desc: &'static str, types: &'static [&'static str]) -> Value {
    let mut v = A {
        ty: "complex",
        multi: true,
        ..s(name, desc)
    }
    .json(&[]);
    v["subAttributes"] = multi_subs(types);
    v
}

fn schema_doc(id: &str, name: &str, desc: &str, attributes: Vec<Value>) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": id,
        "name": name,
        "description": desc,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("/Schemas/{id}")}
    })
}

fn user_schema() -> Value {
    let name_subs = [
        s("formatted", "The full name"),
        s("familyName", "Family name"),
        s("givenName", "Given name"),
        s("middleName", "Middle name"),
        s("honorificPrefix", "Honorific prefix"),
        s("honorificSuffix", "Honorific suffix"),
    ];
    let attrs = vec![
        A {
            required: true,
            uniqueness: "server",
            ..s("userName", "Unique identifier of the user in this organisation, usually an email")
        }
        .json(&[]),
        A {
            ty: "complex",
            ..s("name", "The user's name")
        }
        .json(&name_subs),
        s("displayName", "The name shown for the user").json(&[]),
        s("nickName", "Casual name").json(&[]),
        A {
            ty: "reference",
            ..s("profileUrl", "Profile page")
        }
        .json(&[]),
        s("title", "Job title").json(&[]),
        s("userType", "Relationship to the organisation").json(&[]),
        s("preferredLanguage", "Preferred language").json(&[]),
        s("locale", "Locale").json(&[]),
        s("timezone", "Time zone").json(&[]),
        A {
            ty: "boolean",
            ..s("active", "false deprovisions the user: sessions end, tokens stop verifying, sign-in is refused")
        }
        .json(&[]),
        A {
            mutability: "writeOnly",
            returned: "never",
            ..s("password", "Not stored: orgsso has no passwords")
        }
        .json(&[]),
        multi("emails", "Email addresses", &["work", "home", "other"]),
        multi("phoneNumbers", "Phone numbers", &["work", "home", "mobile", "fax", "pager", "other"]),
        multi("ims", "Instant messaging addresses", &[]),
        multi("photos", "Photo URLs", &["photo", "thumbnail"]),
        multi("addresses", "Postal addresses (kept as sent)", &["work", "home", "other"]),
        {
            let mut g = A {
                ty: "complex",
                multi: true,
                mutability: "readOnly",
                ..s("groups", "Groups the user belongs to (change them through /Groups)")
            }
            .json(&[]);
            g["subAttributes"] = multi_subs(&["direct"]);
            g
        },
        multi("entitlements", "Entitlements", &[]),
        multi("roles", "Roles (kept as sent; orgsso roles come from role rules)", &[]),
        multi("x509Certificates", "Certificates", &[]),
        A {
            case_exact: true,
            ..s("externalId", "The directory's own id for the user; can link a sign-in identity")
        }
        .json(&[]),
    ];
    schema_doc(USER_SCHEMA, "User", "User Account", attrs)
}

fn group_schema() -> Value {
    let member_subs = [
        A {
            case_exact: true,
            mutability: "immutable",
            ..s("value", "The member's user id")
        },
        A {
            ty: "reference",
            mutability: "immutable",
            ..s("$ref", "The member's URL")
        },
        A {
            mutability: "readOnly",
            ..s("display", "The member's display name")
        },
        A {
            mutability: "immutable",
            ..s("type", "User")
        },
    ];
    let attrs = vec![
        A {
            required: true,
            ..s("displayName", "The group's name; role rules match it")
        }
        .json(&[]),
        A {
            ty: "complex",
            multi: true,
            ..s("members", "Members (users only)")
        }
        .json(&member_subs),
        A {
            case_exact: true,
            ..s("externalId", "The directory's own id for the group")
        }
        .json(&[]),
    ];
    schema_doc(GROUP_SCHEMA, "Group", "Group", attrs)
}

fn enterprise_schema() -> Value {
    let manager_subs = [
        A {
            case_exact: true,
            ..s("value", "The manager's user id")
        },
        A {
            ty: "reference",
            ..s("$ref", "The manager's URL")
        },
        A {
            mutability: "readOnly",
            ..s("displayName", "The manager's name")
        },
    ];
    let attrs = vec![
        s("employeeNumber", "Employee number").json(&[]),
        s("costCenter", "Cost center").json(&[]),
        s("organization", "Organization").json(&[]),
        s("division", "Division").json(&[]),
        s("department", "Department").json(&[]),
        A {
            ty: "complex",
            ..s("manager", "The user's manager")
        }
        .json(&manager_subs),
    ];
    schema_doc(
        ENTERPRISE_USER_SCHEMA,
        "EnterpriseUser",
        "Enterprise User",
        attrs,
    )
}

/// `GET /Schemas`: a ListResponse of the User, Group and EnterpriseUser schemas. Their
/// `meta.location` is relative (`/Schemas/{urn}`); [`schemas_at`] makes it absolute.
pub fn schemas() -> Value {
    list_response(
        3,
        1,
        vec![user_schema(), group_schema(), enterprise_schema()],
    )
}

/// [`schemas`] with `meta.location` under `base_url`.
pub fn schemas_at(base_url: &str) -> Value {
    let base = trim(base_url);
    let all = vec![user_schema(), group_schema(), enterprise_schema()]
        .into_iter()
        .map(|d| located(d, base))
        .collect();
    list_response(3, 1, all)
}

fn located(mut d: Value, base: &str) -> Value {
    let id = d["id"].as_str().unwrap_or_default().to_owned();
    d["meta"]["location"] = Value::String(format!("{base}/Schemas/{id}"));
    d
}

/// `GET /Schemas/{urn}`; `None` for an unknown URN (404).
pub fn schema(base_url: &str, id: &str) -> Option<Value> {
    let base = trim(base_url);
    let d = if id.eq_ignore_ascii_case(USER_SCHEMA) {
        user_schema()
    } else if id.eq_ignore_ascii_case(GROUP_SCHEMA) {
        group_schema()
    } else if id.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) {
        enterprise_schema()
    } else {
        return None;
    };
    Some(located(d, base))
}

#[cfg(test)]
#[path = "tests/discovery.rs"]
mod tests;
