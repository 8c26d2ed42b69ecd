//! Claim-to-role mapping: turns the claims an upstream identity provider asserted about a user
//! into the role they get here (or a refusal to sign them in).
//!
//! A rule set is stored and exchanged as a [`RoleMappingSpec`]:
//!
//! ```json
//! {"default_role": "viewer",
//!  "rules": [{"claim": "groups", "op": "contains", "value": "admins", "role": "admin"}]}
//! ```
//!
//! and is checked once by [`RoleMapping::compile`] (regexes compiled, pointers parsed) before it
//! is saved or used. [`RoleMapping::evaluate`] is pure and never panics, whatever the claims.
//!
//! # Evaluation
//!
//! Rules are tried in order and the first one that matches decides; when none matches,
//! `default_role` applies. Rule indices (in [`Decision::rule`] and [`RuleError::rule`]) count
//! from 0. Any outcome, including `default_role`, may be `deny`, which refuses the login: a
//! `deny` default with a few allowing rules is an allow-list ("only group X may sign in").
//! Claims that are not a JSON object match no rule, so the default applies.
//!
//! # Selecting a claim
//!
//! `claim` (1 to 256 characters) is either
//! - a top-level claim name taken whole, when it does not start with `/`: `groups`, or a
//!   namespaced name such as `https://acme.com/roles` (slashes and `~` have no special meaning);
//! - a JSON Pointer (RFC 6901) when it starts with `/`: `/realm_access/roles`,
//!   `/resource_access/my~1app/roles` (`~1` stands for `/`, `~0` for `~`; any other `~` is
//!   refused), `/roles/0` (array index: digits without leading zeros; `-` never matches).
//!
//! A claim that is missing, or whose pointer leads nowhere, makes the rule not match.
//!
//! # Operators
//!
//! "Scalar" below means a string, number or boolean. Numbers compare by value (`1` equals
//! `1.0`); strings compare exactly (case-sensitive).
//! - `equals`: `value` required, any JSON except null. Matches when the claim equals `value`
//!   as JSON, objects and arrays included. An array claim is compared whole, never element by
//!   element: use `contains` or `in` for membership.
//! - `contains`: `value` required, a scalar (a string must be non-empty, since the empty string
//!   is a substring of everything). Matches an array claim with an element equal to `value`, or
//!   a string claim of which a string `value` is a substring. Anything else does not match.
//! - `in`: `value` required, a non-empty array of scalars. Matches a scalar claim equal to one
//!   of them, or an array claim with at least one element equal to one of them.
//! - `matches`: `value` required, a regex string of at most 1024 characters, in the syntax of
//!   the `regex` crate. It must match the whole string (it is anchored as `^(?:value)$`; use
//!   `.*` for a partial match and `(?i)` to ignore case). Matches a string claim, or an array
//!   claim with at least one string element that matches. Numbers and booleans are never
//!   matched: their text form is ambiguous (`1` vs `1.0`), so use `equals` or `in` for them.
//! - `exists`: `value` absent or null. Matches when the claim is present and not null (an
//!   empty string or array counts as present).
//!
//! Arrays are only looked into one level deep: an array nested in an array claim is an element
//! like any other, not searched itself.
//!
//! # Validation
//!
//! [`RoleMapping::compile`] refuses the whole set on the first problem, naming the rule. A set
//! holds at most [`MAX_RULES`] rules. Unknown fields are refused when deserialising, so a typo
//! such as `"vaule"` cannot silently turn a rule into something else.

use std::fmt;
use std::str::FromStr;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod rederive;

pub use rederive::{rederive, MemberClaims, RoleChange};

#[cfg(test)]
mod tests;

/// Most rules in one set: enough for real mappings, small enough to keep evaluation cheap.
pub const MAX_RULES: usize = 100;
/// Longest `claim`, in characters.
pub const MAX_CLAIM_LEN: usize = 256;
/// Longest `matches` pattern, in characters.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Compiled size limit per regex, so a tiny pattern like `\w{1000}` cannot blow up memory.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Lazy-DFA cache limit per regex; claims are short, and up to 100 of these live per org.
const REGEX_DFA_SIZE_LIMIT: usize = 1024 * 1024;

/// A role a user can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Role {
    Admin,
    Developer,
    Viewer,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "developer" => Ok(Role::Developer),
            "viewer" => Ok(Role::Viewer),
            _ => Err(UnknownRole {
                given: s.to_owned(),
                expected: "admin, developer or viewer",
            }),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = UnknownRole;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Role> for &'static str {
    fn from(r: Role) -> Self {
        r.as_str()
    }
}

/// A JSON string with one of `values` (for the OpenAPI document: `Role` and `Outcome`
/// serialise as their names, which the derive cannot see through `into`).
fn string_enum(values: &[&str]) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .into()
}

impl utoipa::PartialSchema for Role {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(&["admin", "developer", "viewer"])
    }
}

impl utoipa::ToSchema for Role {}

impl utoipa::PartialSchema for Outcome {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(&["admin", "developer", "viewer", "deny"])
    }
}

impl utoipa::ToSchema for Outcome {}

/// What a rule (or the default) decides: a role, or refusing the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Outcome {
    Role(Role),
    Deny,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Role(r) => r.as_str(),
            Outcome::Deny => "deny",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "deny" {
            return Ok(Outcome::Deny);
        }
        s.parse().map(Outcome::Role).map_err(|_| UnknownRole {
            given: s.to_owned(),
            expected: "admin, developer, viewer or deny",
        })
    }
}

impl TryFrom<String> for Outcome {
    type Error = UnknownRole;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Outcome> for &'static str {
    fn from(o: Outcome) -> Self {
        o.as_str()
    }
}

impl From<Role> for Outcome {
    fn from(r: Role) -> Self {
        Outcome::Role(r)
    }
}

/// A role name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {given:?}: use {expected}")]
pub struct UnknownRole {
    pub given: String,
    expected: &'static str,
}

/// How a rule tests its claim; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Equals,
    Contains,
    In,
    Matches,
    Exists,
}

impl Op {
    pub fn as_str(&self) -> &'static str {
        match self {
            Op::Equals => "equals",
            Op::Contains => "contains",
            Op::In => "in",
            Op::Matches => "matches",
            Op::Exists => "exists",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule as stored and exchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub claim: String,
    pub op: Op,
    // JSON null deserialises to `None`, so `"value": null` reads as "no value".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub role: Outcome,
}

/// A whole rule set as stored and exchanged; not yet validated (see [`RoleMapping::compile`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleMappingSpec {
    pub default_role: Outcome,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

impl Default for RoleMappingSpec {
    /// Everyone who signs in is a viewer.
    fn default() -> Self {
        RoleMappingSpec {
            default_role: Outcome::Role(Role::Viewer),
            rules: Vec::new(),
        }
    }
}

/// A rule set refused by [`RoleMapping::compile`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", rule_prefix(*.rule))]
pub struct RuleError {
    /// Index (from 0) of the offending rule; `None` for problems with the set as a whole.
    pub rule: Option<usize>,
    /// What is wrong and what to do about it.
    pub message: String,
}

fn rule_prefix(rule: Option<usize>) -> String {
    rule.map(|i| format!("rule {i}: ")).unwrap_or_default()
}

/// The result of evaluating a mapping; serialises as `{"role": "admin", "rule": 0}`, with
/// `"rule": null` when the default applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    #[serde(rename = "role")]
    pub outcome: Outcome,
    pub rule: Option<usize>,
}

/// A validated rule set, ready to evaluate.
#[derive(Debug, Clone)]
pub struct RoleMapping {
    spec: RoleMappingSpec,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    path: ClaimPath,
    test: Test,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
enum ClaimPath {
    /// A top-level claim name, taken whole.
    Key(String),
    /// Unescaped JSON Pointer reference tokens; never empty (the pointer starts with `/`).
    Pointer(Vec<String>),
}

#[derive(Debug, Clone)]
enum Test {
    Equals(Value),
    Contains(Value),
    In(Vec<Value>),
    Matches(Regex),
    Exists,
}

impl Default for RoleMapping {
    /// The mapping of [`RoleMappingSpec::default`]: everyone is a viewer.
    fn default() -> Self {
        RoleMapping {
            spec: RoleMappingSpec::default(),
            rules: Vec::new(),
        }
    }
}

impl RoleMapping {
    /// Validates the whole set, reporting the first bad rule.
    pub fn compile(spec: RoleMappingSpec) -> Result<RoleMapping, RuleError> {
        if spec.rules.len() > MAX_RULES {
            return Err(RuleError {
                rule: None,
                message: format!(
                    "a role mapping holds at most {MAX_RULES} rules, this one has {}: \
                     combine rules with `in` or `matches`, or remove some",
                    spec.rules.len()
                ),
            });
        }
        let rules = spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                compile_rule(r).map_err(|message| RuleError {
                    rule: Some(i),
                    message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RoleMapping { spec, rules })
    }

    /// The rule set this mapping was compiled from, for storing or showing.
    pub fn spec(&self) -> &RoleMappingSpec {
        &self.spec
    }

    /// Decides the outcome for a user's claims: the first matching rule, else the default.
    pub fn evaluate(&self, claims: &Value) -> Decision {
        let default = Decision {
            outcome: self.spec.default_role,
            rule: None,
        };
        let Some(claims) = claims.as_object() else {
            return default;
        };
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(claims))
            .map_or(default, |(i, r)| Decision {
                outcome: r.outcome,
                rule: Some(i),
            })
    }
}

impl TryFrom<RoleMappingSpec> for RoleMapping {
    type Error = RuleError;
    fn try_from(spec: RoleMappingSpec) -> Result<Self, Self::Error> {
        RoleMapping::compile(spec)
    }
}

fn compile_rule(r: &RuleSpec) -> Result<Rule, String> {
    let path = parse_claim(&r.claim)?;
    let test = match (r.op, &r.value) {
        (Op::Exists, None) => Test::Exists,
        (Op::Exists, Some(v)) => {
            return Err(format!(
                "`op` \"exists\" takes no `value` (it checks only that the claim is present and \
                 not null): got {}; remove `value`, or use `op` \"equals\" to compare",
                kind(v)
            ))
        }
        (Op::Equals, Some(v)) => Test::Equals(v.clone()),
        (Op::Equals, None) => {
            return Err(
                "`op` \"equals\" needs a `value` to compare the claim with: add one, \
                 or use `op` \"exists\" to test only that the claim is present"
                    .to_owned(),
            )
        }
        (Op::Contains, Some(Value::String(s))) if s.is_empty() => {
            return Err(
                "`op` \"contains\" with an empty string would match every string claim: \
                 give a non-empty `value`, or use `op` \"exists\""
                    .to_owned(),
            )
        }
        (Op::Contains, Some(v)) if is_scalar(v) => Test::Contains(v.clone()),
        (Op::Contains, v) => {
            return Err(format!(
                "`op` \"contains\" needs `value` to be a string, number or boolean: got {}; \
                 give the single value to look for, or use `op` \"in\" for a list",
                kind_or_missing(v.as_ref())
            ))
        }
        (Op::In, Some(Value::Array(items))) if !items.is_empty() => {
            if let Some((j, bad)) = items.iter().enumerate().find(|(_, v)| !is_scalar(v)) {
                return Err(format!(
                    "`op` \"in\": item {j} of `value` is {}, but only strings, numbers and \
                     booleans can be listed",
                    kind(bad)
                ));
            }
            Test::In(items.clone())
        }
        (Op::In, v) => {
            return Err(format!(
                "`op` \"in\" needs `value` to be a non-empty list of strings, numbers or \
                 booleans: got {}; list the accepted values, such as [\"admins\", \"ops\"]",
                match v {
                    Some(Value::Array(_)) => "an empty list",
                    v => kind_or_missing(v.as_ref()),
                }
            ))
        }
        (Op::Matches, Some(Value::String(p))) => Test::Matches(compile_regex(p)?),
        (Op::Matches, v) => {
            return Err(format!(
                "`op` \"matches\" needs `value` to be a string regex: got {}; write the \
                 pattern as a JSON string, such as \"team-(a|b)\"",
                kind_or_missing(v.as_ref())
            ))
        }
    };
    Ok(Rule {
        path,
        test,
        outcome: r.role,
    })
}

/// Whether `claim` is a valid rule `claim` (a top-level name or a JSON Pointer); the reason when
/// it is not.
pub fn check_claim(claim: &str) -> Result<(), String> {
    parse_claim(claim).map(|_| ())
}

fn parse_claim(claim: &str) -> Result<ClaimPath, String> {
    if claim.is_empty() {
        return Err(
            "`claim` is empty: name a top-level claim such as \"groups\", or a JSON \
             Pointer such as \"/realm_access/roles\""
                .to_owned(),
        );
    }
    let len = claim.chars().count();
    if len > MAX_CLAIM_LEN {
        return Err(format!(
            "`claim` is {len} characters long, but at most {MAX_CLAIM_LEN} are allowed: \
             shorten it"
        ));
    }
    let Some(pointer) = claim.strip_prefix('/') else {
        return Ok(ClaimPath::Key(claim.to_owned()));
    };
    pointer
        .split('/')
        .map(|token| unescape_token(token).ok_or_else(|| bad_escape(claim)))
        .collect::<Result<Vec<_>, _>>()
        .map(ClaimPath::Pointer)
}

/// RFC 6901 unescaping, in one pass so `~01` becomes `~1` and not `/`.
fn unescape_token(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn bad_escape(claim: &str) -> String {
    format!(
        "`claim` {claim:?} is not a valid JSON Pointer: `~` must be followed by `0` (meaning `~`) \
         or `1` (meaning `/`); write a literal `~` as `~0`, and a `/` inside a name as `~1`"
    )
}

fn compile_regex(pattern: &str) -> Result<Regex, String> {
    let len = pattern.chars().count();
    if len > MAX_PATTERN_LEN {
        return Err(format!(
            "`value` regex is {len} characters long, but at most {MAX_PATTERN_LEN} are allowed: \
             simplify it or split it across several rules"
        ));
    }
    let build = |p: &str| {
        RegexBuilder::new(p)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
            .build()
    };
    // Checked alone first: a pattern such as `a)|(b` is invalid by itself but would escape the
    // anchoring group once wrapped; this also keeps error positions relative to the user's text.
    build(pattern).map_err(|e| match e {
        regex::Error::CompiledTooBig(limit) => format!(
            "`value` regex is too complex: compiled it exceeds {limit} bytes; use fewer or \
             smaller counted repetitions such as `{{100}}`, or split it across several rules"
        ),
        e => format!("`value` is not a valid regex (Rust `regex` syntax); fix the pattern: {e}"),
    })?;
    build(&format!("^(?:{pattern})$")).map_err(|e| {
        format!(
            "`value` regex no longer compiles once anchored as `^(?:...)$` to match the whole \
             claim (for instance, a `#` comment in `(?x)` mode must end with a newline); fix \
             the pattern: {e}"
        )
    })
}

impl Rule {
    fn matches(&self, claims: &Map<String, Value>) -> bool {
        let Some(claim) = self.path.lookup(claims) else {
            return false;
        };
        match &self.test {
            Test::Exists => !claim.is_null(),
            Test::Equals(v) => json_eq(claim, v),
            Test::Contains(v) => match (claim, v) {
                (Value::Array(items), _) => items.iter().any(|x| scalar_eq(x, v)),
                (Value::String(s), Value::String(needle)) => s.contains(needle.as_str()),
                _ => false,
            },
            Test::In(list) => {
                let listed = |x: &Value| list.iter().any(|v| scalar_eq(x, v));
                match claim {
                    Value::Array(items) => items.iter().any(listed),
                    other => listed(other),
                }
            }
            Test::Matches(re) => match claim {
                Value::String(s) => re.is_match(s),
                Value::Array(items) => items
                    .iter()
                    .any(|x| x.as_str().is_some_and(|s| re.is_match(s))),
                _ => false,
            },
        }
    }
}

impl ClaimPath {
    fn lookup<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        match self {
            ClaimPath::Key(k) => claims.get(k),
            ClaimPath::Pointer(tokens) => {
                let (first, rest) = tokens.split_first()?;
                rest.iter()
                    .try_fold(claims.get(first)?, |v, token| step(v, token))
            }
        }
    }
}

/// One JSON Pointer step: an object member, or an array element by RFC 6901 index.
fn step<'a>(v: &'a Value, token: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(token),
        Value::Array(items) => {
            // Only canonical indices: "01", "+1" and "-" (the slot past the end) select nothing.
            let canonical = token == "0"
                || (!token.is_empty()
                    && !token.starts_with('0')
                    && token.bytes().all(|b| b.is_ascii_digit()));
            if !canonical {
                return None;
            }
            items.get(token.parse::<usize>().ok()?)
        }
        _ => None,
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Equality of two scalars; null, arrays and objects never compare equal here.
fn scalar_eq(a: &Value, b: &Value) -> bool {
    is_scalar(a) && is_scalar(b) && json_eq(a, b)
}

/// JSON equality, except that numbers compare by value, so `1` equals `1.0`.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

fn num_eq(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    // Integers compare exactly; only when one side is fractional do we fall back to f64.
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    if x.is_f64() || y.is_f64() {
        return matches!((x.as_f64(), y.as_f64()), (Some(a), Some(b)) if a == b);
    }
    // One negative i64 and one u64 above i64::MAX.
    false
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn kind_or_missing(v: Option<&Value>) -> &'static str {
    v.map_or("nothing", kind)
}
