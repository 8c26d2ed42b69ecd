//! The SCIM 2.0 protocol core (RFC 7643 schema, RFC 7644 protocol) as pure functions: no HTTP,
//! no database. The store, service and endpoints build on this; these docs are the
//! specification of what orgsso's SCIM service provider accepts and answers.
//!
//! # Resources ([`resource`])
//!
//! - **User** (`urn:ietf:params:scim:schemas:core:2.0:User`, with the optional enterprise
//!   extension `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`).
//!   [`resource::UserResource::from_json`] checks a POST/PUT body or a patched document:
//!   `userName` required (1-256 characters); `active` defaults to true and may be a boolean or
//!   `"True"`/`"False"` in any case (Entra ID); `primary` likewise; `emails` needs a `value`
//!   in each item. Known core attributes are kept with their canonical spelling whatever case
//!   the client used; unknown core attributes are ignored; `id`, `meta` and `groups` in a body
//!   are ignored (server-owned); `password` is never stored. Extension objects are kept under
//!   their URN (at most 10), including attributes sent as one key
//!   (`"urn:…:enterprise:2.0:User:department": "R&D"`); a bare manager id becomes
//!   `{"value": id}`. Bounded: document ≤ 64 KB, ≤ 100 values per multi-valued attribute,
//!   other strings ≤ 2048 characters; NUL anywhere is refused (PostgreSQL cannot store it).
//!   `null` means "no value".
//! - **Group** (`urn:ietf:params:scim:schemas:core:2.0:Group`): `displayName` required (1-256),
//!   `externalId`, `members` as `[{"value": user id}, …]` (users only, deduplicated, at most
//!   100,000 per body). Nested groups are not supported.
//! - Answers: [`resource::user_json`] and [`resource::group_json`] add `schemas`, `id`, the
//!   user's `groups` / the group's `members` (`value`, `display`, `$ref`) and `meta`
//!   (`resourceType`, `created`, `lastModified`, `location`, `version` = ETag `W/"n"`).
//! - [`resource::Projection`]: `attributes` / `excludedAttributes` (comma-separated,
//!   case-insensitive, `name.sub` and URN-prefixed names, or a whole extension URN); `id`,
//!   `schemas` and `meta` are always returned; with both parameters, `attributes` wins.
//! - ETags: [`resource::etag`] makes `W/"n"`; [`resource::if_match`] checks an `If-Match`
//!   header (`*`, lists, weak or strong tags) against the current version.
//! - [`resource::Paging`]: `startIndex` 1-based (below 1 means 1), `count` default 100, at
//!   most 1000, negative means 0; anything not an integer is 400 `invalidValue`.
//!
//! # Filters ([`filter`])
//!
//! RFC 7644 §3.4.2.2 in full except sorting: `eq ne co sw ew gt ge lt le pr`, `and`, `or`,
//! `not (…)`, parentheses (precedence `not` > `and` > `or`), value paths
//! (`emails[type eq "work" and value co "@x"]`, `emails[type eq "work"].value eq "x"`),
//! URN-prefixed paths, keywords and attribute names case-insensitive. String comparison is
//! case-insensitive except for `caseExact` attributes: `id`, `externalId`, `members.value`,
//! `groups.value`, `manager.value`, `meta.version`. Values: JSON strings (with escapes),
//! numbers, `true`, `false`, `null` (`eq null` = absent). Ordering operators compare RFC 3339
//! date-times as instants. Bounded: 4096 bytes, 32 levels of nesting, one linear pass;
//! anything malformed is 400 `invalidFilter` with the position. [`filter::Filter::matches`]
//! evaluates over a resource's full JSON as `user_json`/`group_json` build it (so `meta.*`
//! and `groups` can be filtered on); [`filter::Filter::eq_value`] recognises a whole
//! `attr eq "x"` so the store can answer it from an index instead.
//!
//! # PATCH ([`patch`])
//!
//! `add`, `replace`, `remove` (any case), with or without `path`. Paths: `attr`, `attr.sub`,
//! `urn:…:attr`, a whole extension URN, `attr[filter]`, `attr[filter].sub`. Without a path the
//! value is an object whose keys may themselves be paths or schema URNs. Users: the ops are
//! applied to the stored document ([`patch::apply_to_user`]) and the result re-checked;
//! adding to a multi-valued attribute appends (an existing `value` is updated in place); a
//! new primary value clears the others; `replace`/`add` through a filter that matches nothing
//! creates the element from the filter's `eq` pairs (`emails[type eq "work"].value`), other
//! filters then answer 400 `noTarget`; `remove` of something absent is a no-op; `id`, `meta`,
//! `groups`, `schemas` are 400 `mutability`. Groups ([`patch::group_patch`]): `displayName`,
//! `externalId`, and member deltas: `add members [{value}]`, `remove members [{value}]`
//! (Entra ID), `remove members[value eq "id"]` (Okta, also `or` of them), `replace members`,
//! `remove members` (all); later operations fold into earlier ones (add then remove of one
//! id cancels). [`patch::GroupPatch::apply`] applies a patch to a group in memory. At most
//! 1000 operations per request.
//!
//! # Errors ([`error`])
//!
//! RFC 7644 §3.12 bodies: `{"schemas": [Error URN], "status": "400", "scimType": …, "detail": …}`.
//!
//! # Discovery ([`discovery`])
//!
//! ServiceProviderConfig (patch and ETag yes; bulk, sort, changePassword no; filter up to 1000
//! results; OAuth bearer token), ResourceTypes (User with the enterprise extension, Group) and
//! Schemas (User, Group, EnterpriseUser).

pub mod discovery;
pub mod error;
pub mod filter;
mod lex;
pub mod patch;
mod projection;
pub mod resource;

pub use error::{ScimError, ScimType};

/// The media type of SCIM requests and answers (RFC 7644 §3.1); `application/json` is
/// accepted too.
pub const CONTENT_TYPE: &str = "application/scim+json";
