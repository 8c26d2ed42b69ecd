//! The org's members (filterable) and its audit log.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::OrgConsole;
use crate::http::pages::{self, PageQuery};
use crate::http::paging::AuditQuery;
use crate::store::AuditCursor;
use crate::store::MemberRow;

/// Audit events shown on one page, newest first.
const AUDIT_PAGE: i64 = 200;

#[derive(Deserialize, Default)]
pub struct MemberFilter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    role: String,
}

/// Whether a member passes the filter: `q` is a case-insensitive substring of email or name.
fn shown(m: &MemberRow, f: &MemberFilter) -> bool {
    let q = f.q.trim().to_lowercase();
    let text_ok = q.is_empty()
        || [m.email.as_deref(), m.name.as_deref()]
            .into_iter()
            .flatten()
            .any(|s| s.to_lowercase().contains(&q));
    text_ok && (f.role.is_empty() || m.role.as_str() == f.role)
}

/// `GET /admin/orgs/{slug}/members?q=&role=`.
pub async fn members(oc: OrgConsole, PageQuery(filter): PageQuery<MemberFilter>) -> Response {
    let all = match oc.c.store.members(&oc.org.id).await {
        Ok(m) => m,
        Err(e) => return oc.c.store_failed(e),
    };
    let total = all.len();
    let rows: Vec<Value> = all
        .iter()
        .filter(|m| shown(m, &filter))
        .map(|m| {
            json!({
                "email": m.email, "name": m.name, "role": m.role, "source": m.source,
                "last_login": super::when(m.last_login_at), "denied_at": m.denied_at,
            })
        })
        .collect();
    oc.render(
        StatusCode::OK,
        "console_members.html",
        "Members",
        "members",
        json!({"members": rows, "total": total, "q": filter.q, "role": filter.role,
               "roles": ["admin", "developer", "viewer"]}),
    )
}

/// `GET /admin/orgs/{slug}/audit?before=<id>|after=<id>`: one page, newest first, with
/// "older" and "newer" links (keyset paging, see `Store::audit_page`).
pub async fn audit(oc: OrgConsole, PageQuery(query): PageQuery<AuditQuery>) -> Response {
    let here = format!("/admin/orgs/{}/audit", oc.org.slug);
    let (cursor, limit) = match query.parse(AUDIT_PAGE) {
        Ok(p) => p,
        Err(m) => {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Bad request",
                &format!("This audit page address is wrong: {m}."),
                &oc.c.rid,
                vec![pages::Link {
                    href: here,
                    label: "The newest events",
                }],
            )
        }
    };
    let page = match oc.c.store.audit_page(&oc.org.id, cursor, limit).await {
        Ok(p) => p,
        Err(e) => return oc.c.store_failed(e),
    };
    // Links keep a page size the viewer chose; the default one stays out of the address.
    let size = if limit == AUDIT_PAGE {
        String::new()
    } else {
        format!("&limit={limit}")
    };
    let older = page
        .older
        .then(|| {
            page.events
                .last()
                .map(|e| format!("{here}?before={}{size}", e.id))
        })
        .flatten();
    let newer = page
        .newer
        .then(|| {
            page.events
                .first()
                .map(|e| format!("{here}?after={}{size}", e.id))
        })
        .flatten();
    let rows: Vec<Value> = page
        .events
        .into_iter()
        .map(|e| {
            json!({"when": super::when(Some(e.created_at)), "actor": e.actor, "action": e.action,
                   "detail": compact(&e.detail)})
        })
        .collect();
    oc.render(
        StatusCode::OK,
        "console_audit.html",
        "Audit log",
        "audit",
        json!({"events": rows, "limit": limit, "older": older, "newer": newer,
               "newest": matches!(cursor, AuditCursor::Newest)}),
    )
}

/// An event's detail as `key: value` pairs, for reading rather than parsing.
fn compact(detail: &str) -> String {
    match serde_json::from_str::<Value>(detail) {
        Ok(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(" · "),
        _ => detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(email: &str, name: Option<&str>, role: &str) -> MemberRow {
        MemberRow {
            user_id: "u".into(),
            email: Some(email.into()),
            name: name.map(Into::into),
            role: role.parse().unwrap(),
            source: "sso".into(),
            last_login_at: None,
            denied_at: None,
            deprovisioned_at: None,
        }
    }

    #[test]
    fn filter() {
        let bob = member("bob@acme.test", Some("Bob Stone"), "admin");
        let f = |q: &str, role: &str| MemberFilter {
            q: q.into(),
            role: role.parse().unwrap(),
        };
        #[rustfmt::skip]
        let cases = [
            (f("", ""), true), (f("BOB", ""), true), (f("stone", ""), true),
            (f("alice", ""), false), (f("", "admin"), true), (f("", "viewer"), false),
            (f("bob", "viewer"), false), (f("  acme.test ", "admin"), true),
        ];
        for (i, (filter, want)) in cases.iter().enumerate() {
            assert_eq!(shown(&bob, filter), *want, "case {i}");
        }
    }

    #[test]
    fn details_read_as_pairs() {
        assert_eq!(
            compact(r#"{"from":"viewer","to":"admin","n":2}"#),
            "from: viewer · n: 2 · to: admin"
        );
        assert_eq!(compact("not json"), "not json");
    }
}
