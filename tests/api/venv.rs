//! Python tools written by other people, installed for the tests in a virtualenv made from a
//! pinned `requirements.txt` when missing or stale (bounded in time; a file lock serialises
//! test processes). Used by `django_op.rs`, `scim_tester.rs` and `openapi.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::idp::{output_within, process_lock};

const VENV_TIMEOUT: Duration = Duration::from_secs(120);
const PIP_TIMEOUT: Duration = Duration::from_secs(600);
/// A copy of the requirements the virtualenv was made from: it is current when they match.
const STAMP: &str = ".venv/orgsso-requirements.txt";

/// Whether `python3` with its `venv` module is here (`bash .ci/run` guarantees both).
pub async fn python_available() -> bool {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import venv, ensurepip"]);
    match cmd.stdin(std::process::Stdio::null()).output().await {
        Ok(out) => out.status.success(),
        Err(_) => false,
    }
}

fn current(dir: &Path, probe: &str) -> bool {
    let wanted = std::fs::read(dir.join("requirements.txt")).expect("requirements.txt");
    dir.join(".venv/bin").join(probe).exists()
        && std::fs::read(dir.join(STAMP)).ok().as_ref() == Some(&wanted)
}

/// Makes `dir/.venv` from `dir/requirements.txt` unless it is current (`.venv/bin/<probe>`
/// exists and the requirements did not change). `label` names it in lock file and messages.
pub async fn ensure(dir: &Path, probe: &str, label: &str) {
    if current(dir, probe) {
        return;
    }
    let lock = process_lock(&format!("{label}-venv.lock")).await;
    if !current(dir, probe) {
        let started = Instant::now();
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "venv", "--clear", ".venv"]);
        let out = output_within(cmd, dir, "`python3 -m venv`", VENV_TIMEOUT).await;
        assert!(
            out.status.success(),
            "python3 -m venv failed (on Debian install python3-venv): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cmd = Command::new(dir.join(".venv/bin/python"));
        cmd.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "-r",
            "requirements.txt",
        ]);
        let out = output_within(cmd, dir, "`pip install`", PIP_TIMEOUT).await;
        assert!(
            out.status.success(),
            "pip install -r {}/requirements.txt failed:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::copy(dir.join("requirements.txt"), dir.join(STAMP)).expect("stamp");
        eprintln!(
            "[{label}] virtualenv ready in {} ms",
            started.elapsed().as_millis()
        );
    }
    drop(lock);
}
