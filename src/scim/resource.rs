//! SCIM resources (RFC 7643): parsing User and Group bodies into checked values and a
//! normalised stored document, and building the JSON answers (with `meta`, projection by
//! `attributes`/`excludedAttributes`, list responses and paging).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::{bad, ScimError, ScimType};
use super::filter::{get_ci, is_core_schema, is_urn};

pub use super::projection::Projection;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Longest userName and group displayName, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest other string attribute (externalId, displayName, title, …), in characters.
pub const MAX_STRING_CHARS: usize = 2048;
/// Largest User document, serialised, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Most values of one multi-valued User attribute (emails, phoneNumbers, …).
pub const MAX_MULTI_VALUES: usize = 100;
/// Most extension schemas kept on one User.
pub const MAX_EXTENSIONS: usize = 10;
/// Most members in one Group body (PUT/POST).
pub const MAX_GROUP_MEMBERS: usize = 100_000;

/// Single-valued core User attributes kept (canonical spelling). `id`, `meta` and `groups` are
/// server-owned and dropped from bodies; `password` is never stored (orgsso has no passwords).
const USER_STRINGS: &[&str] = &[
    "userName",
    "externalId",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
];
const USER_MULTI: &[&str] = &[
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "entitlements",
    "roles",
    "x509Certificates",
];
/// Canonical spellings of sub-attributes and extension attributes.
const SUB_NAMES: &[&str] = &[
    "formatted",
    "familyName",
    "givenName",
    "middleName",
    "honorificPrefix",
    "honorificSuffix",
    "value",
    "display",
    "type",
    "primary",
    "$ref",
    "streetAddress",
    "locality",
    "region",
    "postalCode",
    "country",
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
    "manager",
    "displayName",
];

/// The canonical spelling of a known attribute name, else the name as written.
pub(crate) fn canonical(name: &str) -> String {
    USER_STRINGS
        .iter()
        .chain(USER_MULTI)
        .chain(SUB_NAMES)
        .chain(&[
            "name",
            "active",
            "members",
            ENTERPRISE_USER_SCHEMA,
            USER_SCHEMA,
        ])
        .find(|k| k.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |k| (*k).to_owned())
}

/// The User schemas orgsso knows: core and enterprise.
pub(crate) fn is_known_schema(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(USER_SCHEMA) || urn.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA)
}

/// Whether the canonical User attribute is multi-valued.
pub(crate) fn is_multi_valued(name: &str) -> bool {
    USER_MULTI.iter().any(|k| k.eq_ignore_ascii_case(name)) || name.eq_ignore_ascii_case("members")
}

/// A boolean as Entra ID sends it too: `true`, `"True"`, `"false"`.
pub(crate) fn lenient_bool(v: &Value, what: &str) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => bad(
            ScimType::InvalidValue,
            format!("'{what}' must be a boolean (true or false)"),
        ),
    }
}

/// Refuses NUL anywhere (PostgreSQL text and jsonb cannot hold it).
pub(crate) fn check_no_nul(v: &Value) -> Result<(), ScimError> {
    let nul = |s: &str| s.contains('\0');
    let found = match v {
        Value::String(s) => nul(s),
        Value::Array(a) => return a.iter().try_for_each(check_no_nul),
        Value::Object(o) => {
            for (k, x) in o {
                if nul(k) {
                    return nul_error();
                }
                check_no_nul(x)?;
            }
            false
        }
        _ => false,
    };
    if found {
        return nul_error();
    }
    Ok(())
}

fn nul_error() -> Result<(), ScimError> {
    bad(
        ScimType::InvalidValue,
        "a string contains a NUL character (\\u0000), which cannot be stored",
    )
}

fn string_attr(v: &Value, what: &str, max: usize) -> Result<String, ScimError> {
    match v {
        Value::String(s) if s.chars().count() <= max => Ok(s.clone()),
        Value::String(_) => bad(
            ScimType::InvalidValue,
            format!("'{what}' is longer than {max} characters"),
        ),
        _ => bad(ScimType::InvalidValue, format!("'{what}' must be a string")),
    }
}

/// One email of a User.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub value: String,
    /// `type` (work, home, other, …).
    pub kind: Option<String>,
    pub primary: bool,
}

/// A checked User: the fields orgsso acts on, plus the normalised document it stores.
#[derive(Debug, Clone, PartialEq)]
pub struct UserResource {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub emails: Vec<Email>,
    /// The stored JSON: core attributes with canonical names, lenient booleans made booleans,
    /// extension objects under their URN, `schemas` recomputed; no `id`, `meta`, `groups` or
    /// `password`.
    pub document: Value,
}

impl UserResource {
    /// Parses a POST/PUT body or a patched document. userName is required; unknown core
    /// attributes are ignored; extension objects are kept; sizes are bounded; NUL is refused.
    pub fn from_json(body: &Value) -> Result<UserResource, ScimError> {
        let Some(obj) = body.as_object() else {
            return bad(ScimType::InvalidSyntax, "a User must be a JSON object");
        };
        check_no_nul(body)?;
        let size = serde_json::to_vec(body).map_or(usize::MAX, |b| b.len());
        if size > MAX_DOCUMENT_BYTES {
            return bad(
                ScimType::InvalidValue,
                format!("the User is larger than {} KB", MAX_DOCUMENT_BYTES / 1024),
            );
        }
        let mut doc = Map::new();
        for (k, v) in obj {
            put_user_attr(&mut doc, k, v)?;
        }
        let extensions: Vec<String> = doc.keys().filter(|k| k.contains(':')).cloned().collect();
        if extensions.len() > MAX_EXTENSIONS {
            return bad(
                ScimType::InvalidValue,
                format!("more than {MAX_EXTENSIONS} extension schemas"),
            );
        }
        let mut schemas = vec![Value::String(USER_SCHEMA.to_owned())];
        schemas.extend(extensions.into_iter().map(Value::String));
        doc.insert("schemas".into(), Value::Array(schemas));
        if !doc.contains_key("active") {
            doc.insert("active".into(), Value::Bool(true));
        }

        let user_name = match doc.get("userName") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => return bad(ScimType::InvalidValue, "'userName' is required"),
        };
        if user_name.chars().count() > MAX_NAME_CHARS {
            return bad(
                ScimType::InvalidValue,
                format!("'userName' is longer than {MAX_NAME_CHARS} characters"),
            );
        }
        let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        let name = doc.get("name");
        let name_part = |k: &str| {
            name.and_then(|n| n.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let emails = match doc.get("emails") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|e| Email {
                    value: e["value"].as_str().unwrap_or_default().to_owned(),
                    kind: e.get("type").and_then(Value::as_str).map(str::to_owned),
                    primary: e.get("primary") == Some(&Value::Bool(true)),
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(UserResource {
            user_name,
            external_id: text("externalId"),
            active: doc.get("active") != Some(&Value::Bool(false)),
            display_name: text("displayName"),
            given_name: name_part("givenName"),
            family_name: name_part("familyName"),
            emails,
            document: Value::Object(doc),
        })
    }

    /// The email to act on: the primary one, else the first of type work, else the first.
    pub fn work_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.primary)
            .or_else(|| {
                self.emails.iter().find(|e| {
                    e.kind
                        .as_deref()
                        .is_some_and(|k| k.eq_ignore_ascii_case("work"))
                })
            })
            .or_else(|| self.emails.first())
            .map(|e| e.value.as_str())
    }
}

/// Puts one attribute of a User body into the normalised document.
fn put_user_attr(doc: &mut Map<String, Value>, key: &str, v: &Value) -> Result<(), ScimError> {
    if v.is_null() {
        return Ok(()); // null is "no value" (RFC 7643 §2.5)
    }
    if is_urn(key) {
        if key.eq_ignore_ascii_case(USER_SCHEMA) {
            // A client that nests core attributes under their own schema URN.
            if let Value::Object(inner) = v {
                for (k, x) in inner {
                    if !k.contains(':') {
                        put_user_attr(doc, k, x)?;
                    }
                }
            }
            return Ok(());
        }
        // An object under a URN is a whole extension, unless the URN is a known schema plus
        // an attribute (`urn:…:enterprise:2.0:User:manager` with `{"value": id}`).
        let attr_of_known = key
            .rsplit_once(':')
            .is_some_and(|(urn, _)| is_known_schema(urn));
        if let (Value::Object(inner), false) = (v, attr_of_known) {
            let slot = ext_slot(doc, key);
            for (k, x) in inner {
                put_ext_attr(slot, k, x)?;
            }
            return Ok(());
        }
        // `urn:…:enterprise:2.0:User:department` written as one key.
        if let Some((urn, attr)) = key.rsplit_once(':') {
            if is_core_schema(urn) {
                return put_user_attr(doc, attr, v);
            }
            let slot = ext_slot(doc, urn);
            return put_ext_attr(slot, attr, v);
        }
        return Ok(());
    }
    let name = canonical(key);
    match name.as_str() {
        "active" => {
            doc.insert(name, Value::Bool(lenient_bool(v, "active")?));
        }
        "name" => {
            let Value::Object(parts) = v else {
                return bad(ScimType::InvalidValue, "'name' must be an object");
            };
            let mut out = Map::new();
            for (k, x) in parts {
                if x.is_null() {
                    continue;
                }
                let k = canonical(k);
                let s = string_attr(x, &format!("name.{k}"), MAX_STRING_CHARS)?;
                out.insert(k, Value::String(s));
            }
            doc.insert(name, Value::Object(out));
        }
        n if USER_STRINGS.contains(&n) => {
            let max = if n == "userName" || n == "externalId" {
                MAX_NAME_CHARS
            } else {
                MAX_STRING_CHARS
            };
            doc.insert(name.clone(), Value::String(string_attr(v, &name, max)?));
        }
        n if USER_MULTI.contains(&n) => {
            let items = multi_values(v, &name)?;
            doc.insert(name, Value::Array(items));
        }
        _ => {} // unknown or server-owned core attribute: ignored
    }
    Ok(())
}

/// The object of an extension schema in the document, created when missing; the URN is
/// spelled canonically when it is one we know, else as first written.
fn ext_slot<'a>(doc: &'a mut Map<String, Value>, urn: &str) -> &'a mut Map<String, Value> {
    let key = doc
        .keys()
        .find(|k| k.eq_ignore_ascii_case(urn))
        .cloned()
        .unwrap_or_else(|| canonical(urn));
    let slot = doc.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("object just ensured")
}

fn put_ext_attr(slot: &mut Map<String, Value>, key: &str, v: &Value) -> Result<(), ScimError> {
    if v.is_null() {
        return Ok(());
    }
    let name = canonical(key);
    let v = match (name.as_str(), v) {
        // Entra ID sends the manager as a bare id.
        ("manager", Value::String(s)) => json!({ "value": s }),
        _ => v.clone(),
    };
    if v.is_string() {
        string_attr(&v, &name, MAX_STRING_CHARS)?;
    }
    slot.insert(name, v);
    Ok(())
}

/// A multi-valued attribute: an array of objects (a single object is taken as one value),
/// sub-attribute names canonical, `primary` a real boolean, bounded in count.
fn multi_values(v: &Value, name: &str) -> Result<Vec<Value>, ScimError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => {
            return bad(
                ScimType::InvalidValue,
                format!("'{name}' must be an array of objects"),
            )
        }
    };
    if items.len() > MAX_MULTI_VALUES {
        return bad(
            ScimType::InvalidValue,
            format!("'{name}' has more than {MAX_MULTI_VALUES} values"),
        );
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(fields) = item else {
            return bad(
                ScimType::InvalidValue,
                format!("each value of '{name}' must be an object"),
            );
        };
        let mut o = Map::new();
        for (k, x) in fields {
            if x.is_null() {
                continue;
            }
            let k = canonical(k);
            let x = if k == "primary" {
                Value::Bool(lenient_bool(x, &format!("{name}.primary"))?)
            } else {
                x.clone()
            };
            o.insert(k, x);
        }
        if name == "emails" {
            match o.get("value") {
                Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_NAME_CHARS => {}
                _ => {
                    return bad(
                        ScimType::InvalidValue,
                        "each email needs a 'value' string of 1 to 256 characters",
                    )
                }
            }
        }
        out.push(Value::Object(o));
    }
    Ok(out)
}

/// `meta` of a resource (RFC 7643 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// "User" or "Group".
    pub resource_type: &'static str,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
    /// The resource's URL: `{base}/Users/{id}`.
    pub location: String,
    /// The ETag, as [`etag`] makes it: `W/"3"`.
    pub version: String,
}

impl Meta {
    pub fn to_json(&self) -> Value {
        let ts = |t: &OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        json!({
            "resourceType": self.resource_type,
            "created": ts(&self.created),
            "lastModified": ts(&self.last_modified),
            "location": self.location,
            "version": self.version,
        })
    }

    /// The service base URL, taken from `location` (`{base}/Users/{id}` → `{base}`).
    fn base_url(&self) -> &str {
        let marker = if self.resource_type == "Group" {
            "/Groups/"
        } else {
            "/Users/"
        };
        self.location
            .rsplit_once(marker)
            .map_or(self.location.as_str(), |(b, _)| b)
    }
}

/// ETag of a resource version: `W/"<version>"`.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match` header value accepts the current `version` (RFC 7232: `*`, or a
/// comma-separated list of entity tags, weak or strong, compared weakly as RFC 7644 §3.14 uses
/// weak ETags).
pub fn if_match(header: &str, version: i64) -> bool {
    let want = version.to_string();
    header.split(',').map(str::trim).any(|tag| {
        tag == "*" || {
            let t = tag.strip_prefix("W/").unwrap_or(tag);
            t.strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .is_some_and(|t| t == want)
        }
    })
}

/// The full JSON answer of a user: schemas, id, the document's attributes, `groups` (from
/// `(group id, displayName)` pairs; omitted when none) and meta.
pub fn user_json(id: &str, user: &Value, groups: &[(String, String)], meta: &Meta) -> Value {
    let mut out = Map::new();
    let schemas = user
        .get("schemas")
        .cloned()
        .unwrap_or_else(|| json!([USER_SCHEMA]));
    out.insert("schemas".into(), schemas);
    out.insert("id".into(), Value::String(id.to_owned()));
    if let Some(doc) = user.as_object() {
        for (k, v) in doc {
            if !matches!(
                k.as_str(),
                "schemas" | "id" | "meta" | "groups" | "password"
            ) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !groups.is_empty() {
        let base = meta.base_url();
        let list = groups
            .iter()
            .map(|(gid, name)| {
                json!({"value": gid, "display": name, "$ref": format!("{base}/Groups/{gid}"), "type": "direct"})
            })
            .collect();
        out.insert("groups".into(), Value::Array(list));
    }
    out.insert("meta".into(), meta.to_json());
    Value::Object(out)
}

/// A checked Group. Members are user ids (groups of groups are not supported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    pub display_name: String,
    pub external_id: Option<String>,
    /// Member user ids, duplicates removed, in first-seen order.
    pub members: Vec<String>,
}

impl GroupResource {
    /// Parses a POST/PUT body: displayName required; members as `[{"value": id}, …]`;
    /// unknown attributes ignored.
    pub fn from_json(body: &Value) -> Result<GroupResource, ScimError> {
        if !body.is_object() {
            return bad(ScimType::InvalidSyntax, "a Group must be a JSON object");
        }
        check_no_nul(body)?;
        let display_name = match get_ci(body, "displayName") {
            Some(v @ Value::String(s)) if !s.trim().is_empty() => {
                string_attr(v, "displayName", MAX_NAME_CHARS)?
            }
            _ => return bad(ScimType::InvalidValue, "'displayName' is required"),
        };
        let external_id = match get_ci(body, "externalId") {
            None | Some(Value::Null) => None,
            Some(v) => Some(string_attr(v, "externalId", MAX_NAME_CHARS)?),
        };
        let members = match get_ci(body, "members") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => member_ids(v)?,
        };
        Ok(GroupResource {
            display_name,
            external_id,
            members,
        })
    }
}

/// Member ids from `[{"value": id}, …]` (a single object taken as one), deduplicated.
pub(crate) fn member_ids(v: &Value) -> Result<Vec<String>, ScimError> {
    let items: &[Value] = match v {
        Value::Array(a) => a,
        Value::Object(_) => std::slice::from_ref(v),
        _ => {
            return bad(
                ScimType::InvalidValue,
                "'members' must be an array of {\"value\": id} objects",
            )
        }
    };
    if items.len() > MAX_GROUP_MEMBERS {
        return bad(
            ScimType::InvalidValue,
            format!("more than {MAX_GROUP_MEMBERS} members in one request"),
        );
    }
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for m in items {
        match get_ci(m, "value") {
            Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_NAME_CHARS => {
                if seen.insert(id.as_str()) {
                    out.push(id.clone());
                }
            }
            _ => {
                return bad(
                    ScimType::InvalidValue,
                    "each member needs a 'value' string (the user's id)",
                )
            }
        }
    }
    Ok(out)
}

/// The full JSON answer of a group; `member_refs` gives members' display names by id.
pub fn group_json(
    id: &str,
    g: &GroupResource,
    member_refs: &[(String, String)],
    meta: &Meta,
) -> Value {
    let base = meta.base_url();
    let names: HashMap<&str, &str> = member_refs
        .iter()
        .map(|(i, d)| (i.as_str(), d.as_str()))
        .collect();
    let members: Vec<Value> = g
        .members
        .iter()
        .map(|m| {
            let mut v = json!({"value": m, "$ref": format!("{base}/Users/{m}"), "type": "User"});
            if let Some(d) = names.get(m.as_str()) {
                v["display"] = Value::String((*d).to_owned());
            }
            v
        })
        .collect();
    let mut out = json!({
        "schemas": [GROUP_SCHEMA],
        "id": id,
        "displayName": g.display_name,
        "members": members,
        "meta": meta.to_json(),
    });
    if let Some(e) = &g.external_id {
        out["externalId"] = Value::String(e.clone());
    }
    out
}

/// A ListResponse (RFC 7644 §3.4.2); `start_index` below 1 is reported as 1.
pub fn list_response(total: usize, start_index: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index.max(1),
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// Default and largest page size.
pub const DEFAULT_COUNT: usize = 100;
pub const MAX_COUNT: usize = 1000;

/// `startIndex` (1-based) and `count` of a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub start_index: usize,
    pub count: usize,
}

impl Paging {
    /// Defaults: startIndex 1, count 100. startIndex below 1 is 1; a negative count is 0; a
    /// count above 1000 is 1000 (RFC 7644 §3.4.2.4 lets the server lower it). Anything not an
    /// integer is 400 `invalidValue`.
    pub fn parse(start_index: Option<&str>, count: Option<&str>) -> Result<Paging, ScimError> {
        let start = match start_index.map(str::trim).filter(|s| !s.is_empty()) {
            None => 1,
            Some(s) => integer(s, "startIndex")?.max(1),
        };
        let count = match count.map(str::trim).filter(|s| !s.is_empty()) {
            None => DEFAULT_COUNT as i128,
            Some(s) => integer(s, "count")?.clamp(0, MAX_COUNT as i128),
        };
        Ok(Paging {
            // At most i64::MAX, so the offset always fits an SQL OFFSET.
            start_index: usize::try_from(start.min(i128::from(i64::MAX))).unwrap_or(usize::MAX),
            count: count as usize,
        })
    }

    /// Rows to skip: `start_index - 1` (at most `i64::MAX - 1`).
    pub fn offset(&self) -> usize {
        self.start_index.saturating_sub(1)
    }
}

/// An integer, saturated far beyond any real page (so a 40-digit number is just "very large").
fn integer(s: &str, what: &str) -> Result<i128, ScimError> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || digits.len() > 1000 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return bad(
            ScimType::InvalidValue,
            format!("'{what}' must be an integer"),
        );
    }
    let n = if digits.len() > 30 {
        i128::from(u64::MAX)
    } else {
        digits.parse::<i128>().unwrap_or(i128::from(u64::MAX))
    };
    Ok(if s.starts_with('-') { -n } else { n })
}

#[cfg(test)]
#[path = "tests/resource.rs"]
mod tests;
