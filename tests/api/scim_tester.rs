//! orgsso's SCIM service checked by a SCIM checker written by other people: scim2-tester (the
//! python-scim project's RFC 7643/7644 compliance checks), run through scim2-cli's `scim test`
//! against a spawned orgsso with an org's SCIM token. The virtualenv `tests/scim-tester/.venv`
//! is made from the pinned `requirements.txt` when missing or stale (`venv.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::spawn_app;
use crate::idp::output_within;
use crate::scim::scim_token;

/// The whole check run (about 130 checks, a few hundred requests).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Checks orgsso does not pass, each with why (check name, words of its message, reason).
const EXCLUDED: &[(&str, &str, &str)] = &[
    (
        "check_remove_attribute",
        "'active'",
        "orgsso reads an absent `active` as true (RFC 7643 gives no default; Okta and Entra ID \
         always send it) and answers it, since it decides whether the member may sign in",
    ),
    (
        "check_add_attribute",
        "'members'",
        "the checker adds members with random ids of no User; orgsso keeps only members that \
         are Users of the org (a group's members decide roles)",
    ),
    (
        "check_replace_attribute",
        "'members'",
        "as above: random member ids of no User are not kept",
    ),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("scim-tester")
}

static VENV_READY: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

/// `.venv/bin/scim`, after making the virtualenv when needed.
async fn scim_cli() -> PathBuf {
    VENV_READY
        .get_or_init(|| async {
            let dir = dir();
            crate::venv::ensure(&dir, "scim", "scim-tester").await;
            dir.join(".venv/bin/scim")
        })
        .await
        .clone()
}

/// One check's result as `scim test` prints it: `STATUS name` then indented message lines.
#[derive(Debug)]
struct CheckLine {
    status: String,
    name: String,
    message: String,
}

fn parse(output: &str) -> Vec<CheckLine> {
    let mut out: Vec<CheckLine> = Vec::new();
    for line in output.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some(s), Some(n))
                if !line.starts_with(' ')
                    && s.chars().all(|c| c.is_ascii_uppercase())
                    && s.len() > 3 =>
            {
                out.push(CheckLine {
                    status: s.to_owned(),
                    name: n.to_owned(),
                    message: String::new(),
                });
            }
            _ => {
                if let Some(last) = out.last_mut() {
                    last.message.push_str(line.trim());
                    last.message.push('\n');
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn scim2_tester_finds_no_failures_beyond_the_listed_ones() {
    let cli = scim_cli().await;
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let token = scim_token(&app, "acme", "scim2-tester").await;
    let mut cmd = Command::new(&cli);
    cmd.args(["-u", &format!("{}/scim/v2/acme", app.base), "test"])
        // The token through the environment, never the command line.
        .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {token}"));
    let out = output_within(cmd, &dir(), "`scim test`", RUN_TIMEOUT).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let checks = parse(&text);
    let passed = checks.iter().filter(|c| c.status == "SUCCESS").count();
    assert!(
        passed >= 100,
        "scim test ran too few checks ({passed} passed):\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failures: Vec<&CheckLine> = checks
        .iter()
        .filter(|c| !matches!(c.status.as_str(), "SUCCESS" | "SKIPPED"))
        .filter(|c| {
            !EXCLUDED
                .iter()
                .any(|(name, words, _)| c.name == *name && c.message.contains(words))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "scim2-tester failures: {failures:#?}\n(full output:\n{text})"
    );
    eprintln!(
        "[scim-tester] {passed} checks passed, {} skipped, {} excluded failures",
        checks.iter().filter(|c| c.status == "SKIPPED").count(),
        checks
            .iter()
            .filter(|c| c.status != "SUCCESS" && c.status != "SKIPPED")
            .count()
    );
}

#[test]
fn output_lines_are_parsed() {
    let text = "SUCCESS object_creation\n  Created User\nERROR check_add_attribute\n  Attribute 'members' was not added\nPatched value: []\n";
    let c = parse(text);
    assert_eq!(c.len(), 2);
    assert_eq!(
        (c[1].status.as_str(), c[1].name.as_str()),
        ("ERROR", "check_add_attribute")
    );
    assert!(c[1].message.contains("'members'") && c[1].message.contains("Patched value"));
}
