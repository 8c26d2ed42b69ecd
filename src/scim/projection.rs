//! `attributes` and `excludedAttributes` (RFC 7644 §3.9): which attributes an answer carries.

use serde_json::{Map, Value};

use super::error::{bad, ScimError, ScimType};
use super::filter::{is_core_schema, is_urn, AttrPath};

/// Most names in one `attributes` or `excludedAttributes` list.
pub const MAX_PROJECTION_NAMES: usize = 100;

/// Attributes every answer carries whatever the lists say (`returned: always`).
const ALWAYS: &[&str] = &["id", "schemas", "meta"];

/// One name of a list: an attribute path, or a whole extension (`urn:…:enterprise:2.0:User`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Path(AttrPath),
    Extension(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    All,
    Only(Vec<Item>),
    Except(Vec<Item>),
}

/// A parsed projection; [`Projection::apply`] applies it to a full resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    mode: Mode,
}

impl Default for Projection {
    fn default() -> Self {
        Projection { mode: Mode::All }
    }
}

fn parse_list(text: &str, what: &str) -> Result<Vec<Item>, ScimError> {
    let names: Vec<&str> = text.split(',').map(str::trim).collect();
    if names.len() > MAX_PROJECTION_NAMES {
        return bad(
            ScimType::InvalidValue,
            format!("'{what}' names more than {MAX_PROJECTION_NAMES} attributes"),
        );
    }
    names
        .into_iter()
        .map(|n| {
            if n.is_empty() {
                return bad(
                    ScimType::InvalidValue,
                    format!("'{what}' has an empty name (a stray comma?)"),
                );
            }
            if is_urn(n) && !is_core_schema(n) {
                // A whole extension is a URN whose last part starts with an upper-case letter
                // (`…:2.0:User`); attributes start lower-case (`…:2.0:User:department`).
                let last = n.rsplit(':').next().unwrap_or_default();
                if last.starts_with(|c: char| c.is_ascii_uppercase()) {
                    return Ok(Item::Extension(n.to_owned()));
                }
            }
            match AttrPath::parse(n) {
                Some(p) => Ok(Item::Path(p)),
                None => {
                    let shown: String = n.chars().take(60).collect();
                    bad(
                        ScimType::InvalidPath,
                        format!("'{what}': '{shown}' is not an attribute name"),
                    )
                }
            }
        })
        .collect()
}

impl Projection {
    /// Parses the two query parameters. When both are given, `attributes` wins (the RFC says
    /// `attributes` overrides the default set). Empty parameters mean "not given".
    pub fn parse(
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Projection, ScimError> {
        fn given(s: Option<&str>) -> Option<&str> {
            s.map(str::trim).filter(|s| !s.is_empty())
        }
        let mode = if let Some(a) = given(attributes) {
            Mode::Only(parse_list(a, "attributes")?)
        } else if let Some(e) = given(excluded) {
            Mode::Except(parse_list(e, "excludedAttributes")?)
        } else {
            Mode::All
        };
        Ok(Projection { mode })
    }

    /// True when the answer is the full resource.
    pub fn is_all(&self) -> bool {
        self.mode == Mode::All
    }

    /// Whether the answer may carry the top-level attribute `name` (so the caller can skip
    /// loading, e.g., a large group's members).
    pub fn wants(&self, name: &str) -> bool {
        let names = |items: &[Item]| {
            items.iter().any(|i| match i {
                Item::Path(p) => p.is_core() && p.name.eq_ignore_ascii_case(name),
                Item::Extension(_) => false,
            })
        };
        match &self.mode {
            Mode::All => true,
            Mode::Only(items) => ALWAYS.contains(&name) || names(items),
            Mode::Except(items) => {
                ALWAYS.contains(&name)
                    || !items.iter().any(|i| match i {
                        Item::Path(p) => {
                            p.is_core() && p.sub.is_none() && p.name.eq_ignore_ascii_case(name)
                        }
                        Item::Extension(_) => false,
                    })
            }
        }
    }

    /// Applies the projection to a full resource (as `user_json`/`group_json` build it).
    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(src) = resource else {
            return resource;
        };
        match &self.mode {
            Mode::All => Value::Object(src),
            Mode::Only(items) => {
                let mut out = Map::new();
                for (k, v) in &src {
                    if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(k)) {
                        out.insert(k.clone(), v.clone());
                    }
                }
                for item in items {
                    keep(&src, &mut out, item);
                }
                Value::Object(out)
            }
            Mode::Except(items) => {
                let mut out = src;
                for item in items {
                    drop_item(&mut out, item);
                }
                Value::Object(out)
            }
        }
    }
}

fn key_ci(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Copies what `item` names from `src` into `out`.
fn keep(src: &Map<String, Value>, out: &mut Map<String, Value>, item: &Item) {
    let path = match item {
        Item::Extension(urn) => {
            if let Some(k) = key_ci(src, urn) {
                out.insert(k.clone(), src[&k].clone());
            }
            return;
        }
        Item::Path(p) => p,
    };
    // The object holding the attribute, and where its copy goes.
    let (from, to): (&Map<String, Value>, &mut Map<String, Value>) = match &path.schema {
        Some(urn) if !is_core_schema(urn) => {
            let Some(k) = key_ci(src, urn) else { return };
            let Some(inner) = src[&k].as_object() else {
                return;
            };
            let slot = out.entry(k).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            (inner, slot.as_object_mut().expect("object just ensured"))
        }
        _ => (src, out),
    };
    let Some(k) = key_ci(from, &path.name) else {
        return;
    };
    let value = &from[&k];
    let picked = match &path.sub {
        None => value.clone(),
        Some(sub) => match value {
            Value::Object(o) => match key_ci(o, sub) {
                Some(sk) => Value::Object(Map::from_iter([(sk.clone(), o[&sk].clone())])),
                None => return,
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|el| {
                        match el
                            .as_object()
                            .and_then(|o| key_ci(o, sub).map(|sk| (o, sk)))
                        {
                            Some((o, sk)) => {
                                Value::Object(Map::from_iter([(sk.clone(), o[&sk].clone())]))
                            }
                            None => Value::Object(Map::new()),
                        }
                    })
                    .collect(),
            ),
            _ => return,
        },
    };
    match to.get_mut(&k) {
        Some(existing) => merge(existing, picked),
        None => {
            to.insert(k, picked);
        }
    }
}

/// Merges two projections of one attribute (`name.givenName` and `name.familyName`).
fn merge(dst: &mut Value, src: Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(&k) {
                    Some(x) => merge(x, v),
                    None => {
                        d.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) if d.len() == s.len() => {
            for (x, v) in d.iter_mut().zip(s) {
                merge(x, v);
            }
        }
        (d, s) => *d = s,
    }
}

/// Removes what `item` names from `out` (never `id`, `schemas` or `meta`).
fn drop_item(out: &mut Map<String, Value>, item: &Item) {
    let path = match item {
        Item::Extension(urn) => {
            if let Some(k) = key_ci(out, urn) {
                out.remove(&k);
            }
            return;
        }
        Item::Path(p) => p,
    };
    let ext_key = match &path.schema {
        Some(urn) if !is_core_schema(urn) => match key_ci(out, urn) {
            Some(k) => Some(k),
            None => return,
        },
        _ => None,
    };
    let holder = match &ext_key {
        Some(k) => match out.get_mut(k).and_then(Value::as_object_mut) {
            Some(o) => o,
            None => return,
        },
        None => {
            if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(&path.name)) {
                return;
            }
            &mut *out
        }
    };
    if let Some(k) = key_ci(holder, &path.name) {
        match &path.sub {
            None => {
                holder.remove(&k);
            }
            Some(sub) => {
                let strip = |o: &mut Map<String, Value>| {
                    if let Some(sk) = key_ci(o, sub) {
                        o.remove(&sk);
                    }
                };
                match holder.get_mut(&k) {
                    Some(Value::Object(o)) => strip(o),
                    Some(Value::Array(items)) => items
                        .iter_mut()
                        .filter_map(Value::as_object_mut)
                        .for_each(strip),
                    _ => {}
                }
            }
        }
    }
    if let Some(k) = ext_key {
        if out
            .get(&k)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            out.remove(&k);
        }
    }
}

#[cfg(test)]
#[path = "tests/projection.rs"]
mod tests;
