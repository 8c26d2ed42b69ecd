//! Re-deriving members' roles when an org's rules change: each member's stored last sign-in
//! claims are evaluated with the new rules and compared with what they hold now. Pure: the
//! store reads the members and writes the changes inside the save's transaction, and the rule
//! editor's preview runs the same function over the same rows without writing.

use serde_json::Value;

use super::{Outcome, Role, RoleMapping};

/// What a member holds now, as the re-derivation needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberClaims {
    pub user_id: String,
    /// Shown in previews; not used to decide.
    pub label: String,
    pub role: Role,
    /// Whether an earlier rule save denied the member (the membership is kept but unusable).
    pub denied: bool,
    /// The member's last sign-in claims as stored (JSON text).
    pub claims: String,
}

impl MemberClaims {
    /// What the member has now: `deny` while denied, else their role.
    pub fn current(&self) -> Outcome {
        if self.denied {
            Outcome::Deny
        } else {
            Outcome::Role(self.role)
        }
    }
}

/// One member whose outcome differs under the new rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    pub user_id: String,
    pub label: String,
    /// The role they held before (kept while denied, shown as `from` when the change is a deny).
    pub role: Role,
    pub from: Outcome,
    pub to: Outcome,
    /// The deciding rule (index from 0), `None` when the default applied.
    pub rule: Option<usize>,
}

impl RoleChange {
    /// The role column after the change: the new role, or the old one kept while denied.
    pub fn new_role(&self) -> Role {
        match self.to {
            Outcome::Role(r) => r,
            Outcome::Deny => self.role,
        }
    }
}

/// The members whose outcome changes under `mapping`, in the order given. Members whose stored
/// claims are not a JSON object (unreadable, or never stored) keep what they have: the rules
/// cannot judge them until they sign in again.
pub fn rederive(mapping: &RoleMapping, members: &[MemberClaims]) -> Vec<RoleChange> {
    members
        .iter()
        .filter_map(|m| {
            let claims: Value = serde_json::from_str(&m.claims).ok()?;
            if !claims.is_object() {
                return None;
            }
            let decision = mapping.evaluate(&claims);
            let from = m.current();
            (decision.outcome != from).then(|| RoleChange {
                user_id: m.user_id.clone(),
                label: m.label.clone(),
                role: m.role,
                from,
                to: decision.outcome,
                rule: decision.rule,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(id: &str, role: Role, denied: bool, claims: &str) -> MemberClaims {
        MemberClaims {
            user_id: id.into(),
            label: format!("{id}@example.com"),
            role,
            denied,
            claims: claims.into(),
        }
    }

    #[test]
    fn each_member_against_the_new_rules() {
        let mapping = RoleMapping::compile(
            serde_json::from_value(json!({"default_role": "viewer", "rules": [
                {"claim": "groups", "op": "contains", "value": "admins", "role": "admin"},
                {"claim": "groups", "op": "contains", "value": "contractors", "role": "deny"},
                {"claim": "groups", "op": "contains", "value": "devs", "role": "developer"},
            ]}))
            .unwrap(),
        )
        .unwrap();
        use Outcome::Deny;
        use Role::*;
        let admin = Outcome::Role(Admin);
        let dev = Outcome::Role(Developer);
        let viewer = Outcome::Role(Viewer);
        // (member, expected change: (from, to, rule, role column after)) — None: unchanged.
        #[allow(clippy::type_complexity)]
        let table: Vec<(
            MemberClaims,
            Option<(Outcome, Outcome, Option<usize>, Role)>,
        )> = vec![
            // A developer whose groups now make them admin.
            (
                member("a", Developer, false, r#"{"groups": ["admins"]}"#),
                Some((dev, admin, Some(0), Admin)),
            ),
            // Already what the rules say: no change, no audit.
            (member("b", Admin, false, r#"{"groups": ["admins"]}"#), None),
            // Denied by a rule: the role column keeps the old role.
            (
                member("c", Developer, false, r#"{"groups": ["contractors"]}"#),
                Some((dev, Deny, Some(1), Developer)),
            ),
            // Already denied and still denied: unchanged.
            (
                member("d", Viewer, true, r#"{"groups": ["contractors"]}"#),
                None,
            ),
            // Denied before, allowed now: gets a role back.
            (
                member("e", Viewer, true, r#"{"groups": ["devs"]}"#),
                Some((Deny, dev, Some(2), Developer)),
            ),
            // The default applies (rule null).
            (
                member("f", Admin, false, r#"{"groups": []}"#),
                Some((admin, viewer, None, Viewer)),
            ),
            // Unreadable or non-object claims: keep what they have.
            (member("g", Admin, false, "not json"), None),
            (member("h", Admin, false, "[1, 2]"), None),
            (member("i", Admin, false, "null"), None),
        ];
        let members: Vec<_> = table.iter().map(|(m, _)| m.clone()).collect();
        let changes = rederive(&mapping, &members);
        let expected: Vec<_> = table
            .iter()
            .filter_map(|(m, e)| {
                e.map(|(from, to, rule, after)| (m.user_id.clone(), from, to, rule, after))
            })
            .collect();
        let got: Vec<_> = changes
            .iter()
            .map(|c| (c.user_id.clone(), c.from, c.to, c.rule, c.new_role()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(changes[0].label, "a@example.com");
    }

    #[test]
    fn a_deny_default_denies_everyone_no_rule_lets_in() {
        let mapping = RoleMapping::compile(
            serde_json::from_value(json!({"default_role": "deny", "rules": []})).unwrap(),
        )
        .unwrap();
        let members = [
            member("a", Role::Viewer, false, "{}"),
            member("b", Role::Viewer, true, "{}"),
        ];
        let changes = rederive(&mapping, &members);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].from, changes[0].to),
            (Outcome::Role(Role::Viewer), Outcome::Deny)
        );
    }
}
