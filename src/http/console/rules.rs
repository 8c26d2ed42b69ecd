//! The role-mapping editor: ordered rules as form rows (add, remove and reorder are done in the
//! page; the server receives the rows in their final order), each refused with its reason
//! beside it, and a dry run of the rules as typed against pasted claims or a member's last
//! sign-in.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Value};

use super::{CsrfForm, OrgConsole};
use crate::http::form::FormData;
use crate::http::now;
use crate::roles::{Op, Outcome, RoleMapping, RoleMappingSpec, RuleSpec, MAX_RULES};

pub(crate) const OPS: [&str; 5] = ["equals", "contains", "in", "matches", "exists"];
pub(crate) const OUTCOMES: [&str; 4] = ["admin", "developer", "viewer", "deny"];
/// Recent sign-ins offered as dry-run samples.
const SAMPLES: i64 = 20;

/// One editor row as typed, with its problem if it has one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub claim: String,
    pub op: String,
    pub value: String,
    pub role: String,
    pub error: Option<String>,
}

/// Text in the value box → the rule's JSON value. `matches` takes the text as the pattern;
/// `in` takes a JSON array or comma-separated strings; `equals`/`contains` take JSON when the
/// text is JSON (`42`, `true`, `"007"`, `["a"]`), else the text as a string.
pub fn parse_value(op: Op, text: &str) -> Result<Option<Value>, String> {
    let t = text.trim();
    Ok(match op {
        Op::Exists if t.is_empty() => None,
        Op::Matches | Op::Exists => Some(Value::String(t.to_owned())),
        Op::In if t.starts_with('[') => Some(
            serde_json::from_str::<Value>(t)
                .map_err(|e| format!("the value is not a JSON array: {e}"))?,
        ),
        Op::In => Some(Value::Array(
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
        Op::Equals | Op::Contains => {
            Some(serde_json::from_str::<Value>(t).unwrap_or_else(|_| Value::String(t.to_owned())))
        }
    })
}

/// The inverse of [`parse_value`]: what the value box shows for a stored rule.
pub fn value_text(op: Op, value: Option<&Value>) -> String {
    let Some(v) = value else {
        return String::new();
    };
    match (op, v) {
        (Op::Matches, Value::String(s)) => s.clone(),
        (Op::In, Value::Array(items))
            if !items.is_empty()
                && items.iter().all(|i| {
                    i.as_str()
                        .is_some_and(|s| !s.is_empty() && !s.contains(',') && s.trim() == s)
                }) =>
        {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        }
        // A string that would read back as other JSON is shown quoted.
        (_, Value::String(s))
            if serde_json::from_str::<Value>(s.trim()).is_err() && s.trim() == s =>
        {
            s.clone()
        }
        _ => v.to_string(),
    }
}

/// The rows of a stored rule set.
pub fn rows_of(spec: &RoleMappingSpec) -> Vec<Row> {
    spec.rules
        .iter()
        .map(|r| Row {
            claim: r.claim.clone(),
            op: r.op.as_str().to_owned(),
            value: value_text(r.op, r.value.as_ref()),
            role: r.role.as_str().to_owned(),
            error: None,
        })
        .collect()
}

/// The editor's rows from the form: `claim`, `op`, `value` and `role` once per row, in order.
/// Rows left entirely empty (the spare row) are dropped.
pub fn rows_from_form(form: &FormData) -> Vec<Row> {
    let (claims, ops, values, roles) = (
        form.all("claim"),
        form.all("op"),
        form.all("value"),
        form.all("role"),
    );
    (0..claims.len())
        .map(|i| Row {
            claim: claims[i].trim().to_owned(),
            op: ops.get(i).copied().unwrap_or_default().to_owned(),
            value: values.get(i).copied().unwrap_or_default().to_owned(),
            role: roles.get(i).copied().unwrap_or_default().to_owned(),
            error: None,
        })
        .filter(|r| !(r.claim.is_empty() && r.value.trim().is_empty()))
        .collect()
}

/// Rows → a validated mapping, or the rows with every problem written beside its rule (each
/// rule is checked on its own, so all problems show at once) and a summary.
pub fn compile_rows(
    default_role: &str,
    mut rows: Vec<Row>,
) -> Result<RoleMapping, (Vec<Row>, String)> {
    if rows.len() > MAX_RULES {
        // Before compiling anything: each row may hold a regex.
        let message = format!(
            "A role mapping holds at most {MAX_RULES} rules; this one has {}. Combine rules with in or matches.",
            rows.len()
        );
        return Err((rows, message));
    }
    let mut specs = Vec::with_capacity(rows.len());
    for row in rows.iter_mut() {
        match rule_of(row) {
            Ok(spec) => {
                let alone = RoleMappingSpec {
                    default_role: Outcome::Deny,
                    rules: vec![spec.clone()],
                };
                if let Err(e) = RoleMapping::compile(alone) {
                    row.error = Some(e.message);
                }
                specs.push(spec);
            }
            Err(e) => row.error = Some(e),
        }
    }
    let bad = rows.iter().filter(|r| r.error.is_some()).count();
    let default_role = default_role.parse::<Outcome>();
    if bad > 0 || default_role.is_err() {
        let mut summary = match bad {
            0 => String::new(),
            1 => "One rule needs fixing; nothing was saved.".to_owned(),
            n => format!("{n} rules need fixing; nothing was saved."),
        };
        if let Err(e) = &default_role {
            summary = format!("{summary} The default role is not valid: {e}.");
        }
        return Err((rows, summary.trim().to_owned()));
    }
    let spec = RoleMappingSpec {
        default_role: default_role.expect("checked above"),
        rules: specs,
    };
    RoleMapping::compile(spec).map_err(|e| {
        if let Some(i) = e.rule {
            rows[i].error = Some(e.message.clone());
        }
        (rows, e.message)
    })
}

fn rule_of(row: &Row) -> Result<RuleSpec, String> {
    if row.claim.is_empty() {
        return Err("give the claim to test, such as groups or /realm_access/roles".into());
    }
    let op: Op = serde_json::from_value(json!(row.op))
        .map_err(|_| format!("pick an operator: {}", OPS.join(", ")))?;
    let role: Outcome = row.role.parse().map_err(|e| format!("{e}"))?;
    Ok(RuleSpec {
        claim: row.claim.clone(),
        op,
        value: parse_value(op, &row.value)?,
        role,
    })
}

/// What the dry run found, as the page shows it.
#[derive(Serialize)]
struct DryRun {
    role: &'static str,
    /// 1-based, as the editor numbers rules; `None` when the default applied.
    rule: Option<usize>,
    rule_text: Option<String>,
    /// What the admin must know about these claims (an Entra groups overage).
    warnings: Vec<&'static str>,
}

/// What saving the rules as typed would change, as the review step shows it.
#[derive(Serialize)]
struct Preview {
    count: usize,
    /// The first [`PREVIEW_NAMES`] changes: who, from what, to what.
    shown: Vec<Value>,
    /// How many more are not named.
    more: usize,
}

/// Members named in a preview; the count covers the rest.
const PREVIEW_NAMES: usize = 20;

struct Editor {
    status: StatusCode,
    preview: Option<Preview>,
    default_role: String,
    rows: Vec<Row>,
    error: Option<String>,
    claims: String,
    sample: String,
    dry_run: Option<DryRun>,
    claims_error: Option<String>,
}

async fn render(oc: &OrgConsole, e: Editor) -> Response {
    let samples = match oc.c.store.recent_claims(&oc.org.id, SAMPLES).await {
        Ok(s) => s,
        Err(err) => return oc.c.store_failed(err),
    };
    let samples: Vec<Value> = samples
        .into_iter()
        .map(|s| {
            let pretty = serde_json::from_str::<Value>(&s.claims)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(s.claims);
            json!({
                "user_id": s.user_id,
                "label": format!("{} · {}", s.email.as_deref().unwrap_or("(no email)"), super::when(Some(s.last_login_at))),
                "claims": pretty,
                "selected": s.user_id == e.sample,
            })
        })
        .collect();
    let groups_claim = match oc.c.store.latest_connection(&oc.org.id).await {
        Ok(c) => c
            .and_then(|c| c.groups_claim)
            .unwrap_or_else(|| "groups".into()),
        Err(err) => return oc.c.store_failed(err),
    };
    oc.render(
        e.status,
        "console_rules.html",
        "Role mapping",
        "rules",
        json!({
            "default_role": e.default_role,
            "rows": e.rows,
            "ops": OPS,
            "outcomes": OUTCOMES,
            "error": e.error,
            "claims": e.claims,
            "samples": samples,
            "dry_run": e.dry_run,
            "claims_error": e.claims_error,
            "groups_claim": groups_claim,
            "preview": e.preview,
        }),
    )
}

/// `GET /admin/orgs/{slug}/rules`.
pub async fn page(oc: OrgConsole) -> Response {
    let mapping = match oc.c.sso.role_mapping(&oc.org.id).await {
        Ok(m) => m,
        Err(e) => return oc.c.store_failed(e),
    };
    let spec = mapping.spec();
    let editor = Editor {
        status: StatusCode::OK,
        preview: None,
        default_role: spec.default_role.as_str().to_owned(),
        rows: rows_of(spec),
        error: None,
        claims: String::new(),
        sample: String::new(),
        dry_run: None,
        claims_error: None,
    };
    render(&oc, editor).await
}

/// `POST /admin/orgs/{slug}/rules`: `action=save` stores the rules (re-deriving every SSO
/// member's role); `action=dry_run` evaluates the rules as typed, unsaved, against the claims;
/// `action=preview` shows whose role saving them would change.
pub async fn submit(oc: OrgConsole, CsrfForm(form): CsrfForm) -> Response {
    let default_role = form.get("default_role").to_owned();
    let rows = rows_from_form(&form);
    let mut editor = Editor {
        status: StatusCode::OK,
        preview: None,
        default_role: default_role.clone(),
        rows: rows.clone(),
        error: None,
        claims: form.get("claims").to_owned(),
        sample: form.get("sample").to_owned(),
        dry_run: None,
        claims_error: None,
    };
    let mapping = match compile_rows(&default_role, rows) {
        Ok(m) => m,
        Err((rows, summary)) => {
            editor.status = StatusCode::UNPROCESSABLE_ENTITY;
            editor.rows = rows;
            editor.error = Some(summary);
            return render(&oc, editor).await;
        }
    };
    if form.get("action") == "preview" {
        let changes = match oc.c.sso.preview_role_mapping(&oc.org.id, &mapping).await {
            Ok(c) => c,
            Err(e) => return oc.c.store_failed(e),
        };
        editor.preview = Some(Preview {
            count: changes.len(),
            more: changes.len().saturating_sub(PREVIEW_NAMES),
            shown: changes
                .iter()
                .take(PREVIEW_NAMES)
                .map(|c| json!({"label": c.label, "from": c.from.as_str(), "to": c.to.as_str()}))
                .collect(),
        });
        return render(&oc, editor).await;
    }
    if form.get("action") == "dry_run" {
        match dry_run_claims(&oc, &editor.claims, &editor.sample).await {
            Ok(Ok((claims, text))) => {
                let d = mapping.evaluate(&claims);
                editor.claims = text;
                editor.dry_run = Some(DryRun {
                    role: d.outcome.as_str(),
                    rule: d.rule.map(|i| i + 1),
                    rule_text: d.rule.map(|i| describe(&mapping.spec().rules[i])),
                    warnings: crate::sso::warnings(&claims),
                });
            }
            Ok(Err(message)) => {
                editor.status = StatusCode::UNPROCESSABLE_ENTITY;
                editor.claims_error = Some(message);
            }
            Err(resp) => return resp,
        }
        return render(&oc, editor).await;
    }
    let saved =
        oc.c.sso
            .put_role_mapping(&oc.org.id, &mapping, &oc.actor(), now().unix_timestamp())
            .await;
    match saved {
        Ok(saved) => {
            let n = saved.changes.len();
            let members = if n == 1 { "member" } else { "members" };
            oc.done(
                "/rules",
                format!("Rules saved. {n} {members} changed role at once (their last sign-in's claims under the new rules)."),
            )
            .await
        }
        Err(e) => oc.c.store_failed(e),
    }
}

/// The claims to dry-run: pasted JSON, else the chosen member's last sign-in.
async fn dry_run_claims(
    oc: &OrgConsole,
    pasted: &str,
    sample: &str,
) -> Result<Result<(Value, String), String>, Response> {
    let text = if pasted.trim().is_empty() && !sample.is_empty() {
        let samples =
            oc.c.store
                .recent_claims(&oc.org.id, SAMPLES)
                .await
                .map_err(|e| oc.c.store_failed(e))?;
        match samples.into_iter().find(|s| s.user_id == sample) {
            Some(s) => s.claims,
            None => return Ok(Err("That member has no recent sign-in to test with.".into())),
        }
    } else {
        pasted.to_owned()
    };
    if text.trim().is_empty() {
        return Ok(Err(
            "Paste a claims JSON object (an ID token's payload) or pick a recent sign-in.".into(),
        ));
    }
    Ok(match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => {
            let pretty = serde_json::to_string_pretty(&v).unwrap_or(text);
            Ok((v, pretty))
        }
        Ok(_) => Err("The claims must be a JSON object, like an ID token's payload.".into()),
        Err(e) => Err(format!("The claims are not valid JSON: {e}.")),
    })
}

pub(crate) fn describe(r: &RuleSpec) -> String {
    match &r.value {
        Some(v) => format!("{} {} {}", r.claim, r.op, v),
        None => format!("{} {}", r.claim, r.op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<Value>, ()>;

    #[test]
    fn values_parse_by_operator() {
        let s = |t: &str| Some(json!(t));
        #[rustfmt::skip]
        let cases: Vec<(Op, &str, Parsed)> = vec![
            (Op::Contains, "engineering", Ok(s("engineering"))),
            (Op::Contains, " admins ", Ok(s("admins"))),
            (Op::Equals, "42", Ok(Some(json!(42)))),
            (Op::Equals, "\"42\"", Ok(s("42"))),
            (Op::Equals, "true", Ok(Some(json!(true)))),
            (Op::Equals, "[\"a\",\"b\"]", Ok(Some(json!(["a", "b"])))),
            (Op::In, "a, b ,c", Ok(Some(json!(["a", "b", "c"])))),
            (Op::In, "[1, \"x\"]", Ok(Some(json!([1, "x"])))),
            (Op::In, "[1,", Err(())),
            (Op::Matches, "[a-z]+@acme\\.com", Ok(s("[a-z]+@acme\\.com"))),
            (Op::Exists, "", Ok(None)),
            (Op::Exists, "x", Ok(s("x"))),
        ];
        for (op, text, want) in cases {
            let got = parse_value(op, text).map_err(|_| ());
            assert_eq!(got, want, "{op} {text:?}");
        }
    }

    #[test]
    fn stored_values_show_as_they_would_be_typed_and_read_back_the_same() {
        #[rustfmt::skip]
        let cases: Vec<(Op, Option<Value>, &str)> = vec![
            (Op::Contains, Some(json!("admins")), "admins"),
            (Op::Equals, Some(json!("42")), "\"42\""),
            (Op::Equals, Some(json!(42)), "42"),
            (Op::In, Some(json!(["a", "b"])), "a, b"),
            (Op::In, Some(json!(["a,b", "c"])), "[\"a,b\",\"c\"]"),
            (Op::In, Some(json!([1, 2])), "[1,2]"),
            (Op::Matches, Some(json!("(?i).*@acme\\.com")), "(?i).*@acme\\.com"),
            (Op::Exists, None, ""),
        ];
        for (op, value, text) in cases {
            assert_eq!(value_text(op, value.as_ref()), text, "{op} {value:?}");
            assert_eq!(
                parse_value(op, text).unwrap(),
                value,
                "round trip of {text:?}"
            );
        }
    }

    fn row(claim: &str, op: &str, value: &str, role: &str) -> Row {
        Row {
            claim: claim.into(),
            op: op.into(),
            value: value.into(),
            role: role.into(),
            error: None,
        }
    }

    #[test]
    fn every_bad_row_gets_its_own_reason() {
        let rows = vec![
            row("groups", "contains", "engineering", "developer"),
            row("groups", "matches", "(", "admin"),
            row("", "equals", "x", "viewer"),
            row("groups", "between", "x", "viewer"),
            row("groups", "contains", "x", "owner"),
        ];
        let (rows, summary) = compile_rows("viewer", rows).unwrap_err();
        let errors: Vec<bool> = rows.iter().map(|r| r.error.is_some()).collect();
        assert_eq!(errors, vec![false, true, true, true, true]);
        assert!(
            rows[1].error.as_ref().unwrap().contains("regex"),
            "{rows:?}"
        );
        assert!(
            rows[4].error.as_ref().unwrap().contains("owner"),
            "{rows:?}"
        );
        assert!(summary.contains("4 rules"), "{summary}");
    }

    #[test]
    fn too_many_rows_are_refused_before_any_is_compiled() {
        let rows = vec![row("groups", "matches", "(", "admin"); MAX_RULES + 1];
        let (rows, summary) = compile_rows("viewer", rows).unwrap_err();
        assert!(summary.contains("at most"), "{summary}");
        assert!(
            rows.iter().all(|r| r.error.is_none()),
            "no row was compiled"
        );
    }

    #[test]
    fn good_rows_compile_in_order_and_a_bad_default_is_refused() {
        let rows = vec![
            row("groups", "contains", "admins", "admin"),
            row("groups", "in", "eng, ops", "developer"),
        ];
        let m = compile_rows("viewer", rows.clone()).unwrap();
        let d = m.evaluate(&json!({"groups": ["ops"]}));
        assert_eq!((d.outcome.as_str(), d.rule), ("developer", Some(1)));
        let (_, summary) = compile_rows("root", rows).unwrap_err();
        assert!(summary.contains("default role"), "{summary}");
    }

    #[test]
    fn form_rows_keep_order_and_drop_the_empty_spare() {
        let f = FormData::parse(
            b"claim=groups&op=contains&value=a&role=admin&claim=&op=equals&value=&role=viewer&claim=email&op=matches&value=.*&role=developer",
        );
        let rows = rows_from_form(&f);
        assert_eq!(
            rows.iter().map(|r| r.claim.as_str()).collect::<Vec<_>>(),
            vec!["groups", "email"]
        );
        assert_eq!(rows[1].op, "matches");
    }
}
