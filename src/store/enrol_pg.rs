//! A sign-in's enrolment on PostgreSQL in two statements where SQLite runs five or six.
//!
//! Every statement is a round trip to the server (about 0.2 ms on loopback here, more across
//! a network), so `Store::enrol_with` folds what one sign-in writes into data-modifying CTEs:
//!
//! 1. [`IDENTITY`]: the identity's sign-in noted and its user's profile refreshed, or, for an
//!    identity never seen, its user and identity made. A concurrent first sign-in of the same
//!    identity that won the identity's primary key leaves this one's user row behind: the
//!    caller removes it and adopts the winner, as on SQLite.
//! 2. [`MEMBERSHIP_WITH_SESSION`] (or [`MEMBERSHIP`] without a session): the session, the
//!    membership and the audit rows. A new statement, so its snapshot is taken after the first
//!    one waited for any other sign-in of the identity: `old`, the membership before, reads
//!    what that sign-in committed. The membership is written from the session's row, so the
//!    session's share lock on the connection is taken first (the order a disconnect locks
//!    in), and a session the connection refuses (disconnected) writes no membership and no
//!    audit row.
//!
//! What `old` cannot see: a change to the same membership committed while this statement
//! waits, on the connection row (an admin saving the connection) or on the membership row
//! itself (a rule save, SCIM). The upsert still writes the sign-in's role over it; only the
//! `member.role_change` row and the `MemberRolesChanged` event may then be missed or
//! doubled, and other instances re-read a cached session's role within 10 s anyway
//! (`session::cache`). The membership-row case was there before the statements were folded.
//!
//! SQLite keeps its statements: it has no data-modifying CTEs, and a statement there costs no
//! round trip.

use super::users::membership_upsert;

/// `$1` now, `$2` issuer, `$3` subject, `$4` email, `$5` name, `$6` the id a new user gets.
/// Answers: the existing user's id, and the new user's id when this statement made the
/// identity. (The membership before is read by the next statement.)
pub(super) const IDENTITY: &str = "WITH i AS (
    UPDATE identities SET last_login_at = $1 WHERE issuer = $2 AND subject = $3 RETURNING user_id),
  profile AS (UPDATE users SET email = $4, name = $5, updated_at = $1 WHERE id = (SELECT user_id FROM i)),
  nu AS (INSERT INTO users (id, email, name, created_at, updated_at)
    SELECT $6, $4, $5, $1, $1 WHERE NOT EXISTS (SELECT 1 FROM i) RETURNING id),
  ni AS (INSERT INTO identities (issuer, subject, user_id, created_at, last_login_at)
    SELECT $2, $3, id, $1, $1 FROM nu ON CONFLICT (issuer, subject) DO NOTHING RETURNING user_id)
SELECT (SELECT user_id FROM i), (SELECT user_id FROM ni)";

/// The previous role as the rules read it (an unknown stored role, or a denied member, has
/// none: `Role::from_str` and `Store::enrol_with` say the same; the unit test below keeps the
/// list in step), the membership upsert and the audit rows: `login` ($8) always,
/// `member.role_change` when the role changed, its detail the text serde_json writes for
/// `{"user_id", "from", "to"}` (keys sorted, compact), as on SQLite.
macro_rules! membership_and_audit {
    ($rows:literal) => {
        concat!(
            "old AS (SELECT role, denied_at FROM memberships WHERE org_id = $1 AND user_id = $2),
  up AS (",
            membership_upsert!($rows),
            "
    RETURNING 1),
  prev AS (SELECT CASE WHEN old.denied_at IS NULL AND old.role IN ('admin', 'developer', 'viewer')
      THEN old.role END AS role FROM (SELECT 1) AS one LEFT JOIN old ON TRUE),
  audit AS (INSERT INTO audit_events (org_id, actor, action, detail, created_at)
    SELECT $1, $7, 'login', $8, $5 FROM up
    UNION ALL
    SELECT $1, 'rules', 'member.role_change',
      '{\"from\":' || COALESCE(to_json(prev.role)::text, 'null') || ',\"to\":' || to_json($3::text)::text
        || ',\"user_id\":' || to_json($2::text)::text || '}', $5
    FROM up, prev WHERE prev.role IS DISTINCT FROM $3::text)
SELECT EXISTS (SELECT 1 FROM up), (SELECT role FROM old), (SELECT denied_at FROM old)"
        )
    };
}

/// `$1` org id, `$2` user id, `$3` role, `$4` connection id, `$5` now, `$6` claims JSON,
/// `$7` audit actor, `$8` the `login` event's detail. Answers: whether the membership was
/// written, and the membership's role and `denied_at` before.
pub(super) const MEMBERSHIP: &str = concat!(
    "WITH ",
    membership_and_audit!("VALUES ($1, $2, $3, 'sso', $4, $5, $6, $5, $5)")
);

/// [`MEMBERSHIP`] with the session (`$9` id, `$10` data, `$11` expires at, `$12` created at,
/// `$13` id hash, `$14` the IdP's `sid`), written only while the connection is connected.
pub(super) const MEMBERSHIP_WITH_SESSION: &str = concat!(
    "WITH s AS (INSERT INTO sessions (id, data, expires_at, user_id, org_id, connection_id, created_at, sid_hash, idp_sid)
    SELECT $9, $10, $11, $2, $1, $4, $12, $13, $14
    WHERE EXISTS (SELECT 1 FROM sso_connections WHERE id = $4 AND status = 'connected' FOR SHARE)
    ON CONFLICT (id) DO NOTHING RETURNING 1),
  ",
    membership_and_audit!("SELECT $1, $2, $3, 'sso', $4, $5, $6, $5, $5 FROM s")
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::Role;

    /// The SQL's list of roles is `Role::from_str`'s: a role added to one and not the other
    /// would make the audit row and the event disagree.
    #[test]
    fn the_sql_knows_the_roles_rust_knows() {
        let listed = "old.role IN ('admin', 'developer', 'viewer')";
        for sql in [MEMBERSHIP, MEMBERSHIP_WITH_SESSION] {
            assert!(sql.contains(listed), "{sql}");
        }
        for role in ["admin", "developer", "viewer"] {
            assert!(role.parse::<Role>().is_ok(), "{role}");
        }
        for not_a_role in ["Admin", "owner", "deny", ""] {
            assert!(not_a_role.parse::<Role>().is_err(), "{not_a_role}");
        }
        // Every role's name is in the list (a new variant fails to compile here first).
        for role in [Role::Admin, Role::Developer, Role::Viewer] {
            match role {
                Role::Admin | Role::Developer | Role::Viewer => {
                    assert!(listed.contains(&format!("'{}'", role.as_str())))
                }
            }
        }
    }
}
