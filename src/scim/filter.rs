//! SCIM filters (RFC 7644 §3.4.2.2): parsed once into a small AST, then evaluated over a
//! resource's JSON.
//!
//! Grammar (keywords and attribute names case-insensitive):
//!
//! ```text
//! filter    = term *("or" term)            ; "and" binds tighter than "or",
//! term      = factor *("and" factor)       ; "not" tighter than both
//! factor    = "(" filter ")" / "not" "(" filter ")" / attrExp / valuePath
//! attrExp   = attrPath "pr" / attrPath op value
//! valuePath = attrPath "[" filter "]" [ "." subAttr ( "pr" / op value ) ]
//! attrPath  = [ URN ":" ] name [ "." subAttr ]
//! op        = eq / ne / co / sw / ew / gt / ge / lt / le
//! value     = "quoted string with JSON escapes" / number / true / false / null
//! ```
//!
//! Inside brackets, attribute paths name sub-attributes of one element (`emails[type eq
//! "work"]`); brackets do not nest. Input is bounded ([`MAX_FILTER_LEN`] characters,
//! [`MAX_DEPTH`] nested parentheses or brackets) and parsed in one linear pass; anything
//! malformed is a 400 `invalidFilter` naming the position, never a panic.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::{bad, ScimError, ScimType};
pub(crate) use super::lex::clip;
use super::lex::{lex, Tok};
use super::resource::{GROUP_SCHEMA, USER_SCHEMA};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not (…)` and brackets.
pub const MAX_DEPTH: usize = 32;

/// An attribute path: `[urn:]name[.sub]`, names as written (matched case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN prefix, when written (`urn:ietf:params:scim:schemas:core:2.0:User`).
    pub schema: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

pub(crate) fn valid_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.len() <= 128
}

fn valid_urn(s: &str) -> bool {
    s.len() > 4
        && s.len() <= 256
        && is_urn(s)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":._-".contains(c))
}

/// Whether `s` starts with `urn:` in any case (byte-safe for any UTF-8).
pub(crate) fn is_urn(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// Whether `urn` names the core User or Group schema (whose attributes sit at the top level).
pub(crate) fn is_core_schema(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(USER_SCHEMA) || urn.eq_ignore_ascii_case(GROUP_SCHEMA)
}

/// The object member named `key`, case-insensitively (an exact match first).
pub(crate) fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

impl AttrPath {
    /// Parses `[urn:]name[.sub]`; `None` when it is not one.
    pub fn parse(text: &str) -> Option<AttrPath> {
        let (schema, rest) = match text.rsplit_once(':') {
            Some((urn, rest)) => {
                if !valid_urn(urn) {
                    return None;
                }
                (Some(urn.to_owned()), rest)
            }
            None => (None, text),
        };
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        if !valid_name(name) || !sub.is_none_or(valid_name) {
            return None;
        }
        Some(AttrPath {
            schema,
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }

    /// True when no schema is written or it is a core schema.
    pub fn is_core(&self) -> bool {
        self.schema.as_deref().is_none_or(is_core_schema)
    }

    /// The same attribute, names compared case-insensitively; a core URN equals no URN.
    pub fn same_as(&self, other: &AttrPath) -> bool {
        let schemas = match (&self.schema, &other.schema) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b) || (self.is_core() && other.is_core()),
            _ => self.is_core() && other.is_core(),
        };
        let subs = match (&self.sub, &other.sub) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        schemas && subs && self.name.eq_ignore_ascii_case(&other.name)
    }

    /// The object holding this path's top-level attribute: the resource itself for core
    /// attributes, the extension's object otherwise.
    pub(crate) fn container<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        match &self.schema {
            Some(urn) if !is_core_schema(urn) => get_ci(root, urn),
            _ => Some(root),
        }
    }

    /// Every value this path reaches (arrays flattened once; nulls dropped).
    fn values<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let Some(top) = self.container(root).and_then(|c| get_ci(c, &self.name)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match &self.sub {
            None => match top {
                Value::Array(items) => out.extend(items.iter()),
                v => out.push(v),
            },
            Some(sub) => {
                let mut take = |v: &'a Value| match get_ci(v, sub) {
                    Some(Value::Array(items)) => out.extend(items.iter()),
                    Some(x) => out.push(x),
                    None => {}
                };
                match top {
                    Value::Array(items) => items.iter().for_each(&mut take),
                    v => take(v),
                }
            }
        }
        out.retain(|v| !v.is_null());
        out
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.schema {
            write!(f, "{s}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// Comparison operators; `ne` is evaluated as `not eq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

/// The filter AST. `And`/`Or` are flat lists, so long chains never recurse deeply.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Value),
    /// `attr[filter]` or `attr[filter].sub op value`: some element of `attr` matches `filter`
    /// (and `rest`, evaluated on that same element).
    ValuePath {
        path: AttrPath,
        filter: Box<Expr>,
        rest: Option<Box<Expr>>,
    },
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    /// Parses a filter; 400 `invalidFilter` with the reason and position when malformed.
    pub fn parse(text: &str) -> Result<Filter, ScimError> {
        if text.len() > MAX_FILTER_LEN {
            return bad(
                ScimType::InvalidFilter,
                format!("the filter is longer than {MAX_FILTER_LEN} characters"),
            );
        }
        let toks = lex(text)?;
        if toks.is_empty() {
            return bad(ScimType::InvalidFilter, "the filter is empty");
        }
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
            in_brackets: false,
        };
        let expr = p.or()?;
        if let Some((tok, at)) = p.toks.get(p.pos) {
            return p.fail(
                *at,
                format!("unexpected {} after a complete filter", tok.describe()),
            );
        }
        Ok(Filter { expr })
    }

    /// The AST, for callers that translate filters (e.g. to SQL).
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether the resource (its full JSON, as returned to clients) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        eval(&self.expr, resource, None)
    }

    /// Evaluates the filter on one element of the multi-valued attribute `parent` (the inside
    /// of `emails[type eq "work"]`).
    pub(crate) fn matches_element(&self, element: &Value, parent: &str) -> bool {
        eval(&self.expr, element, Some(parent))
    }

    /// `Some(value)` when the whole filter is `attr eq "value"` for that attribute (names
    /// case-insensitive, URN prefix allowed), so the store can answer it from an index.
    pub fn eq_value(&self, attr: &str) -> Option<&str> {
        let want = AttrPath::parse(attr)?;
        match &self.expr {
            Expr::Compare(path, CompareOp::Eq, Value::String(s)) if path.same_as(&want) => Some(s),
            _ => None,
        }
    }

    /// Whether the filter holds a value path (`attr[…]`), which may not nest in brackets.
    pub(crate) fn has_value_path(&self) -> bool {
        fn walk(e: &Expr) -> bool {
            match e {
                Expr::And(v) | Expr::Or(v) => v.iter().any(walk),
                Expr::Not(x) => walk(x),
                Expr::ValuePath { .. } => true,
                _ => false,
            }
        }
        walk(&self.expr)
    }

    /// The `name eq value` pairs when the filter is one comparison or an `and` of them:
    /// what a new element must hold to match (`emails[type eq "work"]` → type = work).
    pub(crate) fn eq_pairs(&self) -> Option<Vec<(&AttrPath, &Value)>> {
        fn one(e: &Expr) -> Option<(&AttrPath, &Value)> {
            match e {
                Expr::Compare(p, CompareOp::Eq, v) if p.sub.is_none() && !v.is_null() => {
                    Some((p, v))
                }
                _ => None,
            }
        }
        match &self.expr {
            Expr::And(items) => items.iter().map(one).collect(),
            e => one(e).map(|x| vec![x]),
        }
    }

    /// The strings of `name eq "…"` when the filter is one such comparison or an `or` of
    /// them (`members[value eq "a" or value eq "b"]`).
    pub(crate) fn eq_strings(&self, name: &str) -> Option<Vec<&str>> {
        fn one<'a>(e: &'a Expr, name: &str) -> Option<&'a str> {
            match e {
                Expr::Compare(p, CompareOp::Eq, Value::String(s))
                    if p.sub.is_none()
                        && p.schema.is_none()
                        && p.name.eq_ignore_ascii_case(name) =>
                {
                    Some(s)
                }
                _ => None,
            }
        }
        match &self.expr {
            Expr::Or(items) => items.iter().map(|e| one(e, name)).collect(),
            e => one(e, name).map(|x| vec![x]),
        }
    }
}

/// Attributes whose strings compare exactly (RFC 7643 `caseExact: true`): ids and external ids.
fn case_exact(parent: Option<&str>, path: &AttrPath) -> bool {
    let (top, leaf) = match parent {
        Some(p) => (p, Some(path.name.as_str())),
        None => (path.name.as_str(), path.sub.as_deref()),
    };
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match leaf {
        // `members eq "id"` compares the members' values, which are ids.
        None => is(top, "id") || is(top, "externalId") || is(top, "members") || is(top, "groups"),
        Some(l) => {
            ((is(top, "members") || is(top, "groups")) && (is(l, "value") || is(l, "$ref")))
                || (is(top, "meta") && is(l, "version"))
                || (is(top, "manager") && is(l, "value"))
        }
    }
}

fn eval(e: &Expr, root: &Value, parent: Option<&str>) -> bool {
    match e {
        Expr::And(items) => items.iter().all(|x| eval(x, root, parent)),
        Expr::Or(items) => items.iter().any(|x| eval(x, root, parent)),
        Expr::Not(x) => !eval(x, root, parent),
        Expr::Present(path) => path.values(root).into_iter().any(non_empty),
        Expr::Compare(path, CompareOp::Ne, lit) => {
            !any_equal(path, CompareOp::Eq, lit, root, parent)
        }
        Expr::Compare(path, op, lit) => any_equal(path, *op, lit, root, parent),
        Expr::ValuePath { path, filter, rest } => {
            let Some(top) = path.container(root).and_then(|c| get_ci(c, &path.name)) else {
                return false;
            };
            let elems: &[Value] = match top {
                Value::Array(items) => items,
                v => std::slice::from_ref(v),
            };
            elems.iter().any(|el| {
                eval(filter, el, Some(&path.name))
                    && rest.as_ref().is_none_or(|r| eval(r, el, Some(&path.name)))
            })
        }
    }
}

/// Whether some value of `path` compares true (`eq null`: the attribute is absent).
fn any_equal(
    path: &AttrPath,
    op: CompareOp,
    lit: &Value,
    root: &Value,
    parent: Option<&str>,
) -> bool {
    let values = path.values(root);
    if lit.is_null() {
        return !values.into_iter().any(non_empty);
    }
    let exact = case_exact(parent, path);
    values.into_iter().any(|v| {
        // A complex value compares through its `value` sub-attribute.
        let v = match v {
            Value::Object(_) => match get_ci(v, "value") {
                Some(x) => x,
                None => return false,
            },
            v => v,
        };
        compare(op, v, lit, exact)
    })
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => o.values().any(non_empty),
        _ => true,
    }
}

fn compare(op: CompareOp, attr: &Value, lit: &Value, exact: bool) -> bool {
    match (attr, lit) {
        (Value::String(a), Value::String(b)) => {
            let (a, b): (Cow<str>, Cow<str>) = if exact {
                (a.into(), b.into())
            } else {
                (a.to_lowercase().into(), b.to_lowercase().into())
            };
            match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                CompareOp::Co => a.contains(b.as_ref()),
                CompareOp::Sw => a.starts_with(b.as_ref()),
                CompareOp::Ew => a.ends_with(b.as_ref()),
                _ => ordered(op, order_strings(&a, &b)),
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let ord = match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(x, y)| x.partial_cmp(&y)),
            };
            match op {
                CompareOp::Eq => ord == Some(Ordering::Equal),
                CompareOp::Ne => ord != Some(Ordering::Equal),
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
                _ => ord.is_some_and(|o| ordered(op, o)),
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            _ => false,
        },
        // Lenient: a boolean some client stored as "True"/"False".
        (Value::String(a), Value::Bool(b)) => match op {
            CompareOp::Eq => a.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        },
        _ => false,
    }
}

/// Strings order as instants when both are RFC 3339 date-times (meta.lastModified), else by
/// code points.
fn order_strings(a: &str, b: &str) -> Ordering {
    match (
        OffsetDateTime::parse(a, &Rfc3339),
        OffsetDateTime::parse(b, &Rfc3339),
    ) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

fn ordered(op: CompareOp, o: Ordering) -> bool {
    match op {
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Parser (the lexer is in lex.rs)

struct Parser<'a> {
    toks: Vec<(Tok<'a>, usize)>,
    pos: usize,
    depth: usize,
    in_brackets: bool,
}

impl<'a> Parser<'a> {
    fn fail<T>(&self, at: usize, what: impl std::fmt::Display) -> Result<T, ScimError> {
        bad(
            ScimType::InvalidFilter,
            format!("invalid filter: {what} at position {at}"),
        )
    }

    fn end_pos(&self) -> usize {
        self.toks.last().map_or(0, |(_, at)| at + 1)
    }

    fn peek(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn next(&mut self) -> Option<(Tok<'a>, usize)> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Tok<'static>, what: &str) -> Result<(), ScimError> {
        match self.next() {
            Some((t, _)) if t == want => Ok(()),
            Some((t, at)) => self.fail(at, format!("expected {what} but found {}", t.describe())),
            None => self.fail(
                self.end_pos(),
                format!("expected {what} but the filter ended"),
            ),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(at, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ScimError> {
        let mut items = vec![self.and()?];
        while self.peek_keyword("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ScimError> {
        let mut items = vec![self.factor()?];
        while self.peek_keyword("and") {
            self.pos += 1;
            items.push(self.factor()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Expr::And(items)
        })
    }

    fn group(&mut self, at: usize) -> Result<Expr, ScimError> {
        self.enter(at)?;
        let e = self.or()?;
        self.expect(Tok::RParen, "')'")?;
        self.depth -= 1;
        Ok(e)
    }

    fn factor(&mut self) -> Result<Expr, ScimError> {
        let Some((tok, at)) = self.next() else {
            return self.fail(
                self.end_pos(),
                "expected an expression but the filter ended",
            );
        };
        match tok {
            Tok::LParen => self.group(at),
            Tok::Word(w) if w.eq_ignore_ascii_case("not") && self.peek() == Some(&Tok::LParen) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.group(at)?)))
            }
            Tok::Word(w) => {
                let Some(path) = AttrPath::parse(w) else {
                    return self.fail(at, format!("'{}' is not an attribute path", clip(w)));
                };
                if self.peek() == Some(&Tok::LBracket) {
                    self.value_path(path, at)
                } else {
                    self.attr_exp(path)
                }
            }
            t => self.fail(
                at,
                format!("expected an attribute path but found {}", t.describe()),
            ),
        }
    }

    fn value_path(&mut self, path: AttrPath, at: usize) -> Result<Expr, ScimError> {
        if self.in_brackets {
            return self.fail(at, "brackets inside brackets");
        }
        if path.sub.is_some() {
            return self.fail(at, "a sub-attribute before '['");
        }
        self.pos += 1;
        self.enter(at)?;
        self.in_brackets = true;
        let filter = self.or()?;
        self.expect(Tok::RBracket, "']'")?;
        self.in_brackets = false;
        self.depth -= 1;
        // `emails[type eq "work"].value eq "x"`: the word right after ']' starts with '.'.
        let rest = match self.peek() {
            Some(Tok::Word(w)) if w.starts_with('.') => {
                let (w, at) = (*w, self.toks[self.pos].1);
                self.pos += 1;
                let name = &w[1..];
                if !valid_name(name) {
                    return self.fail(at, format!("'{}' is not a sub-attribute", clip(w)));
                }
                let sub = AttrPath {
                    schema: None,
                    name: name.to_owned(),
                    sub: None,
                };
                Some(Box::new(self.attr_exp(sub)?))
            }
            _ => None,
        };
        Ok(Expr::ValuePath {
            path,
            filter: Box::new(filter),
            rest,
        })
    }

    fn attr_exp(&mut self, path: AttrPath) -> Result<Expr, ScimError> {
        let Some((tok, at)) = self.next() else {
            return self.fail(
                self.end_pos(),
                format!(
                    "expected an operator after '{}' but the filter ended",
                    clip(&path.to_string())
                ),
            );
        };
        let Tok::Word(w) = tok else {
            return self.fail(
                at,
                format!("expected an operator but found {}", tok.describe()),
            );
        };
        if w.eq_ignore_ascii_case("pr") {
            return Ok(Expr::Present(path));
        }
        let Some(op) = CompareOp::parse(w) else {
            return self.fail(
                at,
                format!(
                    "'{}' is not an operator (eq ne co sw ew gt ge lt le pr)",
                    clip(w)
                ),
            );
        };
        let value = match self.next() {
            Some((Tok::Str(s), _)) => Value::String(s),
            Some((Tok::Word(v), vat)) => match literal(v) {
                Some(x) => x,
                None => {
                    return self.fail(
                        vat,
                        format!(
                            "'{}' is not a value (a quoted string, number, true, false or null)",
                            clip(v)
                        ),
                    )
                }
            },
            Some((t, vat)) => {
                return self.fail(vat, format!("expected a value but found {}", t.describe()))
            }
            None => {
                return self.fail(self.end_pos(), "expected a value but the filter ended");
            }
        };
        let allowed = match &value {
            Value::String(_) => true,
            Value::Number(_) => !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew),
            Value::Bool(_) | Value::Null => matches!(op, CompareOp::Eq | CompareOp::Ne),
            _ => false,
        };
        if !allowed {
            return self.fail(at, format!("'{w}' cannot compare with {value}"));
        }
        Ok(Expr::Compare(path, op, value))
    }
}

fn literal(word: &str) -> Option<Value> {
    match word.to_ascii_lowercase().as_str() {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ => serde_json::from_str::<Number>(word).ok().map(Value::Number),
    }
}

#[cfg(test)]
#[path = "tests/filter.rs"]
mod tests;
