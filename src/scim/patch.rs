//! PATCH (RFC 7644 §3.5.2), including the forms Okta and Entra ID really send: `op` in any
//! case, path-less `{"op": "Replace", "value": {"active": false}}`, path-style keys inside a
//! path-less value (`"name.givenName"`, `"urn:…:enterprise:2.0:User:department"`), booleans as
//! `"True"`/`"False"`, `emails[type eq "work"].value` on a user with no work email yet (the
//! email is created), and member lists of any length.
//!
//! Users are patched as documents ([`apply_to_user`]); the caller re-checks the result with
//! `UserResource::from_json`. Groups are patched as member deltas ([`group_patch`]) so a large
//! group is never rewritten for one member.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::error::{bad, ScimError, ScimType};
use super::filter::{
    clip, get_ci, is_core_schema, is_urn, valid_name, AttrPath, Filter, MAX_FILTER_LEN,
};
use super::resource::{
    canonical, check_no_nul, is_known_schema, is_multi_valued, member_ids, GroupResource,
    ENTERPRISE_USER_SCHEMA, MAX_NAME_CHARS,
};

/// The URN a PATCH body must list in `schemas`.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Most operations in one PATCH.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Add,
    Replace,
    Remove,
}

/// A PATCH path: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after `]` (`.value` in `emails[type eq "work"].value`).
    pub sub: Option<String>,
}

impl PatchPath {
    /// 400 `invalidPath` when malformed.
    pub fn parse(text: &str) -> Result<PatchPath, ScimError> {
        let (attr, filter, sub) = parse_path(text)?;
        Ok(PatchPath { attr, filter, sub })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub kind: PatchKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// A PATCH path (RFC 7644 §3.5.2): `attrPath` or `attrPath[filter][.subAttr]`.
/// Malformed paths are 400 `invalidPath`.
fn parse_path(text: &str) -> Result<(AttrPath, Option<Filter>, Option<String>), ScimError> {
    let invalid = |why: String| {
        ScimError::bad_request(
            ScimType::InvalidPath,
            format!("invalid path '{}': {why}", clip(text)),
        )
    };
    if text.len() > MAX_FILTER_LEN {
        return Err(invalid("too long".into()));
    }
    let text_t = text.trim();
    let Some(open) = text_t.find('[') else {
        let path =
            resolve_schema_only(text_t).ok_or_else(|| invalid("not an attribute path".into()))?;
        return Ok((path, None, None));
    };
    let close = text_t
        .rfind(']')
        .filter(|c| *c > open)
        .ok_or_else(|| invalid("'[' without ']'".into()))?;
    let attr = AttrPath::parse(&text_t[..open])
        .filter(|p| p.sub.is_none())
        .ok_or_else(|| invalid("not an attribute path before '['".into()))?;
    let filter = Filter::parse(&text_t[open + 1..close]).map_err(|e| invalid(e.detail))?;
    if filter.has_value_path() {
        return Err(invalid("brackets inside brackets".into()));
    }
    let after = &text_t[close + 1..];
    let sub = if after.is_empty() {
        None
    } else {
        match after.strip_prefix('.') {
            Some(s) if valid_name(s) => Some(s.to_owned()),
            _ => return Err(invalid("only '.subAttribute' may follow ']'".into())),
        }
    };
    Ok((attr, Some(filter), sub))
}

/// An attribute path, where a bare extension URN (`urn:…:enterprise:2.0:User`) names the
/// whole extension: it comes back with that URN as `name` and no schema.
fn resolve_schema_only(text: &str) -> Option<AttrPath> {
    if text.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) {
        return Some(AttrPath {
            schema: None,
            name: ENTERPRISE_USER_SCHEMA.to_owned(),
            sub: None,
        });
    }
    AttrPath::parse(text)
}

/// Parses a PatchOp body: `schemas` must list [`PATCH_SCHEMA`], `Operations` must be a
/// non-empty array (at most [`MAX_OPERATIONS`]); `add`/`replace` need a value (an object when
/// there is no path); `remove` needs a path (400 `noTarget`).
pub fn parse_patch(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    if !body.is_object() {
        return bad(
            ScimType::InvalidSyntax,
            "a PATCH body must be a JSON object",
        );
    }
    check_no_nul(body)?;
    let listed = get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_SCHEMA))
            })
        });
    if !listed {
        return bad(
            ScimType::InvalidSyntax,
            format!("'schemas' must list {PATCH_SCHEMA}"),
        );
    }
    let ops = match get_ci(body, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        _ => {
            return bad(
                ScimType::InvalidSyntax,
                "'Operations' must be a non-empty array",
            )
        }
    };
    if ops.len() > MAX_OPERATIONS {
        return bad(
            ScimType::InvalidSyntax,
            format!("more than {MAX_OPERATIONS} operations in one PATCH"),
        );
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_op(i, op))
        .collect()
}

fn parse_op(i: usize, op: &Value) -> Result<PatchOp, ScimError> {
    let n = i + 1;
    if !op.is_object() {
        return bad(
            ScimType::InvalidSyntax,
            format!("operation {n} is not an object"),
        );
    }
    let kind = match get_ci(op, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => PatchKind::Add,
        Some(s) if s.eq_ignore_ascii_case("replace") => PatchKind::Replace,
        Some(s) if s.eq_ignore_ascii_case("remove") => PatchKind::Remove,
        _ => {
            return bad(
                ScimType::InvalidSyntax,
                format!("operation {n}: 'op' must be add, replace or remove"),
            )
        }
    };
    let path = match get_ci(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(PatchPath::parse(s).map_err(|e| {
            ScimError::bad_request(
                ScimType::InvalidPath,
                format!("operation {n}: {}", e.detail),
            )
        })?),
        Some(_) => {
            return bad(
                ScimType::InvalidPath,
                format!("operation {n}: 'path' must be a string"),
            )
        }
    };
    let value = get_ci(op, "value").cloned();
    match (kind, &path, &value) {
        (PatchKind::Remove, None, _) => bad(
            ScimType::NoTarget,
            format!("operation {n}: remove needs a 'path'"),
        ),
        (PatchKind::Add | PatchKind::Replace, _, None) => bad(
            ScimType::InvalidValue,
            format!("operation {n}: add and replace need a 'value'"),
        ),
        (PatchKind::Add | PatchKind::Replace, None, Some(v)) if !v.is_object() => bad(
            ScimType::InvalidValue,
            format!("operation {n}: without a 'path', 'value' must be an object of attributes"),
        ),
        _ => Ok(PatchOp { kind, path, value }),
    }
}

/// Applies the operations in order to a User document (the stored representation) and
/// returns the new document; `id`, `meta` and `groups` are read-only (400 `mutability`).
pub fn apply_to_user(doc: &Value, ops: &[PatchOp]) -> Result<Value, ScimError> {
    let mut doc = match doc {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for op in ops {
        match (&op.path, &op.value) {
            (Some(path), value) => apply_path(&mut doc, op.kind, path, value.as_ref())?,
            (None, Some(Value::Object(attrs))) => {
                for (k, v) in attrs {
                    apply_pathless(&mut doc, op.kind, k, v)?;
                }
            }
            // parse_patch refuses the other shapes; an op built by hand that lacks them is a no-op.
            (None, _) => {}
        }
    }
    Ok(Value::Object(doc))
}

/// One member of a path-less value: an attribute, a path-style key, or a schema URN whose
/// object holds that extension's attributes.
fn apply_pathless(
    doc: &mut Map<String, Value>,
    kind: PatchKind,
    key: &str,
    v: &Value,
) -> Result<(), ScimError> {
    if ["schemas", "id", "meta", "groups"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
    {
        return Ok(()); // clients echo these read-only attributes; they are not changes
    }
    let known = |urn: &str| {
        is_known_schema(urn)
            || doc
                .get("schemas")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter()
                        .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn)))
                })
    };
    // A URN key is a whole schema when known, or when it holds an object and is not a known
    // schema plus an attribute name (an extension this user does not have yet).
    let whole_schema = known(key)
        || (is_urn(key)
            && v.is_object()
            && !key.rsplit_once(':').is_some_and(|(urn, _)| known(urn)));
    if whole_schema {
        if let Value::Object(inner) = v {
            for (k, x) in inner {
                let attr = AttrPath::parse(k).ok_or_else(|| {
                    ScimError::bad_request(
                        ScimType::InvalidPath,
                        format!("'{}' is not an attribute of {key}", clip(k)),
                    )
                })?;
                let path = PatchPath {
                    attr: AttrPath {
                        schema: Some(key.to_owned()),
                        ..attr
                    },
                    filter: None,
                    sub: None,
                };
                apply_path(doc, kind, &path, Some(x))?;
            }
            return Ok(());
        }
    }
    let path = PatchPath::parse(key)?;
    apply_path(doc, kind, &path, Some(v))
}

/// The key of `name` in `map`: the existing spelling, else the canonical one.
fn key_for(map: &Map<String, Value>, name: &str) -> String {
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| canonical(name))
}

fn apply_path(
    doc: &mut Map<String, Value>,
    kind: PatchKind,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let attr = &path.attr;
    if attr.is_core()
        && ["id", "meta", "groups", "schemas"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&attr.name))
    {
        return bad(
            ScimType::Mutability,
            format!(
                "'{}' is read-only{}",
                attr.name,
                if attr.name.eq_ignore_ascii_case("groups") {
                    "; change membership through the Group"
                } else {
                    ""
                }
            ),
        );
    }
    // The object holding the attribute: the document, or an extension's object.
    let holder: &mut Map<String, Value> = match &attr.schema {
        Some(urn) if !is_core_schema(urn) => {
            let k = key_for(doc, urn);
            if kind == PatchKind::Remove && !doc.contains_key(&k) {
                return Ok(());
            }
            let slot = doc.entry(k).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut().expect("object just ensured")
        }
        _ => doc,
    };
    let key = key_for(holder, &attr.name);
    match (&path.filter, &attr.sub, &path.sub) {
        (None, None, _) => {
            plain(holder, kind, key, value);
            Ok(())
        }
        (None, Some(sub), _) => {
            sub_attr(holder, kind, key, sub, value);
            Ok(())
        }
        (Some(filter), _, sub) => filtered(holder, kind, key, filter, sub.as_deref(), value),
    }
}

/// `attr` (no filter, no sub-attribute).
fn plain(holder: &mut Map<String, Value>, kind: PatchKind, key: String, value: Option<&Value>) {
    let multi = is_multi_valued(&key) || holder.get(&key).is_some_and(Value::is_array);
    match (kind, value) {
        (PatchKind::Remove, Some(Value::Array(gone))) if multi => {
            // Remove the listed values (Entra ID's form for members, used for emails too).
            if let Some(Value::Array(items)) = holder.get_mut(&key) {
                items.retain(|el| !gone.iter().any(|g| same_value(el, g)));
            }
        }
        (PatchKind::Remove, _) | (_, None | Some(Value::Null)) => {
            holder.remove(&key);
        }
        (PatchKind::Add, Some(v)) if multi => {
            let new: Vec<Value> = match v {
                Value::Array(a) => a.clone(),
                x => vec![x.clone()],
            };
            let slot = holder
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            let items = slot.as_array_mut().expect("array just ensured");
            for n in new {
                if is_primary(&n) {
                    items.iter_mut().for_each(clear_primary);
                }
                match items.iter_mut().find(|el| same_value(el, &n)) {
                    Some(el) => merge(el, n),
                    None => items.push(n),
                }
            }
        }
        (_, Some(v)) => match holder.get_mut(&key) {
            // A complex single-valued attribute (name, manager): the given sub-attributes change.
            Some(existing @ Value::Object(_)) if v.is_object() && !multi => {
                merge(existing, v.clone())
            }
            _ => {
                let v = if multi && !v.is_array() {
                    Value::Array(vec![v.clone()])
                } else {
                    v.clone()
                };
                holder.insert(key, v);
            }
        },
    }
}

/// `attr.sub` without a filter: `name.givenName`, or every element of a multi-valued attribute.
fn sub_attr(
    holder: &mut Map<String, Value>,
    kind: PatchKind,
    key: String,
    sub: &str,
    value: Option<&Value>,
) {
    let set = |o: &mut Map<String, Value>| {
        let sk = key_for(o, sub);
        match (kind, value) {
            (PatchKind::Remove, _) | (_, None | Some(Value::Null)) => {
                o.remove(&sk);
            }
            (_, Some(v)) => {
                o.insert(sk, v.clone());
            }
        }
    };
    match holder.get_mut(&key) {
        Some(Value::Object(o)) => set(o),
        Some(Value::Array(items)) => items
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(set),
        _ if kind == PatchKind::Remove => {}
        _ => {
            let mut o = Map::new();
            set(&mut o);
            let v = if is_multi_valued(&key) {
                Value::Array(vec![Value::Object(o)])
            } else {
                Value::Object(o)
            };
            holder.insert(key, v);
        }
    }
}

/// `attr[filter]` and `attr[filter].sub`.
fn filtered(
    holder: &mut Map<String, Value>,
    kind: PatchKind,
    key: String,
    filter: &Filter,
    sub: Option<&str>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let items = match holder.get_mut(&key) {
        Some(Value::Array(items)) => items,
        Some(_) => {
            return bad(
                ScimType::InvalidPath,
                format!("'{key}' is not multi-valued; a filter cannot select its values"),
            )
        }
        None if kind == PatchKind::Remove => return Ok(()),
        None if !is_multi_valued(&key) => {
            return bad(
                ScimType::NoTarget,
                format!("'{key}' has no values for the path's filter to select"),
            )
        }
        None => {
            holder.insert(key.clone(), Value::Array(Vec::new()));
            holder
                .get_mut(&key)
                .and_then(Value::as_array_mut)
                .expect("array just inserted")
        }
    };
    let hits: Vec<usize> = (0..items.len())
        .filter(|i| filter.matches_element(&items[*i], &key))
        .collect();
    if kind == PatchKind::Remove {
        match sub {
            None => {
                let mut i = 0;
                items.retain(|_| {
                    i += 1;
                    !hits.contains(&(i - 1))
                });
            }
            Some(s) => {
                for i in hits {
                    if let Some(o) = items[i].as_object_mut() {
                        let sk = key_for(o, s);
                        o.remove(&sk);
                    }
                }
            }
        }
        if items.is_empty() {
            holder.remove(&key);
        }
        return Ok(());
    }
    let v = value.cloned().unwrap_or(Value::Null);
    if hits.is_empty() {
        // No such element yet: create it from the filter's `eq` pairs, as clients expect of
        // `emails[type eq "work"].value` on a user without a work email.
        let Some(pairs) = filter.eq_pairs() else {
            return bad(
                ScimType::NoTarget,
                format!("no value of '{key}' matches the path's filter"),
            );
        };
        let mut el = Map::new();
        for (p, x) in pairs {
            el.insert(canonical(&p.name), x.clone());
        }
        let mut el = Value::Object(el);
        match sub {
            Some(s) => {
                el[canonical(s)] = v;
            }
            None => merge(&mut el, v),
        }
        if is_primary(&el) {
            items.iter_mut().for_each(clear_primary);
        }
        items.push(el);
        return Ok(());
    }
    for i in hits {
        match sub {
            Some(s) => {
                if let Some(o) = items[i].as_object_mut() {
                    let sk = key_for(o, s);
                    o.insert(sk, v.clone());
                }
            }
            None if kind == PatchKind::Replace && v.is_object() => items[i] = v.clone(),
            None => merge(&mut items[i], v.clone()),
        }
    }
    Ok(())
}

/// Two values of a multi-valued attribute are the same when their `value`s are (strings
/// case-insensitively), or, without `value`, when they are equal.
fn same_value(a: &Value, b: &Value) -> bool {
    match (get_ci(a, "value"), get_ci(b, "value")) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.eq_ignore_ascii_case(y),
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn is_primary(v: &Value) -> bool {
    matches!(get_ci(v, "primary"), Some(Value::Bool(true)))
        || matches!(get_ci(v, "primary"), Some(Value::String(s)) if s.eq_ignore_ascii_case("true"))
}

/// Only one value may be primary (RFC 7643 §2.4): a new primary clears the others.
fn clear_primary(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        let k = key_for(o, "primary");
        if o.contains_key(&k) {
            o.insert(k, Value::Bool(false));
        }
    }
}

/// Object into object by key (case-insensitive); anything else replaces.
fn merge(dst: &mut Value, src: Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                let dk = key_for(d, &k);
                d.insert(dk, v);
            }
        }
        (d, s) => *d = s,
    }
}

/// A group PATCH as changes: the name and external id, and member deltas (ids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPatch {
    pub display_name: Option<String>,
    /// `Some(None)` removes the external id.
    pub external_id: Option<Option<String>>,
    pub add_members: Vec<String>,
    pub remove_members: Vec<String>,
    /// `Some` when the member list is replaced whole (then `add_members`/`remove_members` are
    /// empty: later adds and removes are folded into it).
    pub replace_members: Option<Vec<String>>,
}

impl GroupPatch {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == GroupPatch::default()
    }

    /// Applies the changes to a group held in memory (small groups, tests); the store applies
    /// member deltas in SQL instead.
    pub fn apply(&self, g: &mut GroupResource) {
        if let Some(name) = &self.display_name {
            g.display_name = name.clone();
        }
        if let Some(ext) = &self.external_id {
            g.external_id = ext.clone();
        }
        if let Some(list) = &self.replace_members {
            g.members = list.clone();
        }
        let gone: HashSet<&str> = self.remove_members.iter().map(String::as_str).collect();
        g.members.retain(|m| !gone.contains(m.as_str()));
        push_new(&mut g.members, self.add_members.clone());
    }

    fn add(&mut self, ids: Vec<String>) {
        let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
        match &mut self.replace_members {
            Some(list) => push_new(list, ids),
            None => {
                self.remove_members.retain(|m| !set.contains(m.as_str()));
                push_new(&mut self.add_members, ids);
            }
        }
    }

    fn remove(&mut self, ids: Vec<String>) {
        let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
        match &mut self.replace_members {
            Some(list) => list.retain(|m| !set.contains(m.as_str())),
            None => {
                self.add_members.retain(|m| !set.contains(m.as_str()));
                push_new(&mut self.remove_members, ids);
            }
        }
    }

    fn replace(&mut self, ids: Vec<String>) {
        self.add_members.clear();
        self.remove_members.clear();
        self.replace_members = Some(ids);
    }

    fn members(&mut self, kind: PatchKind, value: Option<&Value>) -> Result<(), ScimError> {
        match (kind, value) {
            (PatchKind::Add, Some(v)) => self.add(member_ids(v)?),
            (PatchKind::Replace, Some(v)) => self.replace(member_ids(v)?),
            (PatchKind::Remove, Some(v)) if !v.is_null() => self.remove(member_ids(v)?),
            // Remove without a value, or a null value: all members go.
            _ => self.replace(Vec::new()),
        }
        Ok(())
    }

    fn attribute(
        &mut self,
        kind: PatchKind,
        name: &str,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let is = |k: &str| name.eq_ignore_ascii_case(k);
        if is("displayName") {
            match (kind, value) {
                (PatchKind::Remove, _) | (_, None | Some(Value::Null)) => {
                    return bad(
                        ScimType::InvalidValue,
                        "'displayName' is required; it cannot be removed",
                    )
                }
                (_, Some(Value::String(s)))
                    if !s.trim().is_empty() && s.chars().count() <= MAX_NAME_CHARS =>
                {
                    self.display_name = Some(s.clone());
                }
                _ => {
                    return bad(
                        ScimType::InvalidValue,
                        format!(
                            "'displayName' must be a string of 1 to {MAX_NAME_CHARS} characters"
                        ),
                    )
                }
            }
        } else if is("externalId") {
            self.external_id = match (kind, value) {
                (PatchKind::Remove, _) | (_, None | Some(Value::Null)) => Some(None),
                (_, Some(Value::String(s))) if s.chars().count() <= MAX_NAME_CHARS => {
                    Some(Some(s.clone()))
                }
                _ => {
                    return bad(
                        ScimType::InvalidValue,
                        format!(
                            "'externalId' must be a string of at most {MAX_NAME_CHARS} characters"
                        ),
                    )
                }
            };
        } else if is("members") {
            self.members(kind, value)?;
        } else if is("id") || is("meta") {
            // Okta echoes the id in a path-less replace; a path naming it is a real attempt.
            if kind == PatchKind::Remove {
                return bad(ScimType::Mutability, format!("'{name}' is read-only"));
            }
        }
        // Other attributes (schemas, unknown ones) are ignored, as in bodies.
        Ok(())
    }
}

fn push_new(list: &mut Vec<String>, ids: Vec<String>) {
    let mut seen: HashSet<String> = list.iter().cloned().collect();
    for id in ids {
        if seen.insert(id.clone()) {
            list.push(id);
        }
    }
}

/// Turns the operations of a group PATCH into a [`GroupPatch`], in order.
pub fn group_patch(ops: &[PatchOp]) -> Result<GroupPatch, ScimError> {
    let mut gp = GroupPatch::default();
    for op in ops {
        let Some(path) = &op.path else {
            if let Some(Value::Object(attrs)) = &op.value {
                for (k, v) in attrs {
                    gp.attribute(op.kind, k, Some(v))?;
                }
            }
            continue;
        };
        let attr = &path.attr;
        if !attr.is_core() {
            continue; // no group extensions are kept
        }
        if attr.name.eq_ignore_ascii_case("members") {
            if attr.sub.is_some() || path.sub.is_some() {
                return bad(
                    ScimType::InvalidPath,
                    "member sub-attributes cannot be changed; add or remove the member",
                );
            }
            match (&path.filter, op.kind) {
                (None, _) => gp.members(op.kind, op.value.as_ref())?,
                (Some(f), PatchKind::Remove) => {
                    let ids = f.eq_strings("value").ok_or_else(|| {
                        ScimError::bad_request(
                            ScimType::InvalidFilter,
                            "only members[value eq \"id\"] (or an 'or' of them) can select members",
                        )
                    })?;
                    gp.remove(ids.into_iter().map(str::to_owned).collect());
                }
                (Some(_), _) => {
                    return bad(
                        ScimType::InvalidPath,
                        "add and replace take 'members' without a filter",
                    )
                }
            }
            continue;
        }
        if path.filter.is_some() || attr.sub.is_some() {
            return bad(
                ScimType::InvalidPath,
                format!("'{}' has no sub-attributes", attr.name),
            );
        }
        if attr.name.eq_ignore_ascii_case("id") || attr.name.eq_ignore_ascii_case("meta") {
            return bad(
                ScimType::Mutability,
                format!("'{}' is read-only", attr.name),
            );
        }
        gp.attribute(op.kind, &attr.name, op.value.as_ref())?;
    }
    Ok(gp)
}

#[cfg(test)]
#[path = "tests/patch.rs"]
mod tests;
