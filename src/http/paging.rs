//! Paging parameters of the audit views (`?before=<id>` / `?after=<id>` / `?limit=<n>`), read
//! once for the admin API and the console: what the caller typed, checked, with a sentence
//! saying what to fix.

use serde::Deserialize;

use crate::store::AuditCursor;

/// Most events one page may hold.
pub const MAX_LIMIT: i64 = 1000;

/// The raw query: text, so a malformed number gets our sentence, not the extractor's (the
/// OpenAPI document shows the numbers it must hold).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Events older than this event id (the `rel="next"` link).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before: Option<String>,
    /// Events newer than this event id (the `rel="prev"` link); not with `before`.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub after: Option<String>,
    /// Events per page (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

impl AuditQuery {
    /// The cursor and page size asked for; `default_limit` when no `limit` is given.
    pub fn parse(&self, default_limit: i64) -> Result<(AuditCursor, i64), String> {
        let id = |name: &str, v: &str| match v.parse::<i64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "`{name}` must be an event id (a positive whole number, as in the `id` of an \
                 event or the link to the next page), got {v:?}"
            )),
        };
        let cursor = match (self.before.as_deref(), self.after.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(
                    "give either `before` (older events) or `after` (newer events), \
                            not both"
                        .into(),
                )
            }
            (Some(b), None) => AuditCursor::Before(id("before", b)?),
            (None, Some(a)) => AuditCursor::After(id("after", a)?),
            (None, None) => AuditCursor::Newest,
        };
        let limit = match self.limit.as_deref() {
            None => default_limit,
            Some(l) => match l.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "`limit` must be a whole number from 1 to {MAX_LIMIT}, got {l:?}"
                    ))
                }
            },
        };
        Ok((cursor, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(before: Option<&str>, after: Option<&str>, limit: Option<&str>) -> AuditQuery {
        AuditQuery {
            before: before.map(str::to_owned),
            after: after.map(str::to_owned),
            limit: limit.map(str::to_owned),
        }
    }

    #[test]
    fn paging_parameters() {
        use AuditCursor::*;
        let ok = [
            (q(None, None, None), (Newest, 100)),
            (q(Some("42"), None, None), (Before(42), 100)),
            (q(None, Some("7"), Some("1")), (After(7), 1)),
            (q(None, None, Some("1000")), (Newest, 1000)),
        ];
        for (query, want) in ok {
            assert_eq!(query.parse(100), Ok(want), "{query:?}");
        }
        let bad = [
            (q(Some("x"), None, None), "`before` must be an event id"),
            (q(Some("0"), None, None), "`before` must be an event id"),
            (q(Some("-3"), None, None), "`before` must be an event id"),
            (q(Some(""), None, None), "`before` must be an event id"),
            (q(None, Some("1e3"), None), "`after` must be an event id"),
            (q(Some("1"), Some("2"), None), "either `before`"),
            (
                q(None, None, Some("0")),
                "`limit` must be a whole number from 1 to 1000",
            ),
            (
                q(None, None, Some("1001")),
                "`limit` must be a whole number",
            ),
            (q(None, None, Some("ten")), "`limit` must be a whole number"),
            (q(None, None, Some("99999999999999999999")), "`limit` must"),
        ];
        for (query, want) in bad {
            let got = query.parse(100).unwrap_err();
            assert!(
                got.starts_with(want) || got.contains(want),
                "{query:?}: {got}"
            );
        }
    }
}
