#![allow(dead_code)]
//! A private, throwaway PostgreSQL cluster for tests that must restart "the database"
//! under a running service without touching the machine's shared server on 127.0.0.1:5432.
//!
//! Uses Debian's server binaries (`/usr/lib/postgresql/<version>/bin`, highest version wins).
//! As root, `initdb`/`pg_ctl` run as the `postgres` OS user via `runuser`; otherwise they run
//! as the current user. The cluster listens only on 127.0.0.1 (plus a unix socket inside its
//! own data dir), uses trust auth, and lives in a temp dir that is removed on drop.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::Connection;
use tempfile::TempDir;

/// Upper bound for "until it accepts connections".
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for any single external command (pg_ctl itself is given `-t 30`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at finding a free port when a freshly picked one was taken in the meantime.
const PORT_ATTEMPTS: u32 = 5;

pub struct PgCluster {
    pub port: u16,
    /// `<tmp>/data`: the cluster's data dir, also its unix socket dir; `<tmp>/data/log` is the server log.
    data: PathBuf,
    /// `/usr/lib/postgresql/<version>/bin`.
    bin: PathBuf,
    /// Running as root: every server binary goes through `runuser -u postgres --`.
    as_postgres: bool,
    /// Removed (recursively) after `Drop::drop` has stopped the server.
    dir: TempDir,
}

impl PgCluster {
    /// initdb (trust auth, no fsync, unix socket in the data dir, listen only on 127.0.0.1) +
    /// start on a free port; waits (bounded, ≤ 30 s) until it accepts connections. Returns
    /// None, after printing a loud "NOT RUN: …" line to stderr, when the PostgreSQL server
    /// binaries are not installed.
    pub async fn start() -> Option<PgCluster> {
        let Some(bin) = find_bin_dir() else {
            eprintln!(
                "NOT RUN: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under \
                 /usr/lib/postgresql/<version>/bin; install the Debian `postgresql` package to run \
                 this test against a private cluster"
            );
            return None;
        };
        let as_postgres = current_uid() == 0;
        let dir = tempfile::Builder::new()
            .prefix("orgsso-pgcluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("pgcluster: cannot create temp dir: {e}"));
        if as_postgres {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!(
                    "pgcluster: cannot chown {} to postgres: {e}",
                    dir.path().display()
                )
            });
        }
        let data = dir.path().join("data");
        // A unix socket path must fit in sun_path (107 bytes): "<data>/.s.PGSQL.NNNNN".
        assert!(
            data.as_os_str().len() + 16 < 107,
            "pgcluster: temp dir path {} is too long for a unix socket; set TMPDIR to something shorter",
            data.display()
        );
        let mut cluster = PgCluster {
            port: 0,
            data,
            bin,
            as_postgres,
            dir,
        };

        let data_arg = cluster.data_arg();
        let initdb = [
            "-D",
            data_arg.as_str(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--no-locale",
        ];
        if let Err(e) = cluster.run("initdb", &initdb).await {
            panic!("pgcluster: initdb failed: {e}");
        }
        cluster.write_conf();

        for attempt in 1..=PORT_ATTEMPTS {
            cluster.port = free_port();
            match cluster.pg_ctl_start().await {
                Ok(()) => break,
                Err(e)
                    if attempt < PORT_ATTEMPTS && cluster.log_tail().contains("could not bind") =>
                {
                    eprintln!(
                        "pgcluster: port {} was taken before the server could bind it, retrying: {e}",
                        cluster.port
                    );
                }
                Err(e) => panic!(
                    "pgcluster: pg_ctl start on port {} failed: {e}\n--- server log tail ---\n{}",
                    cluster.port,
                    cluster.log_tail()
                ),
            }
        }
        cluster.wait_ready().await;
        Some(cluster)
    }

    /// postgres://postgres@127.0.0.1:<port>/postgres
    pub fn url(&self) -> String {
        self.db_url("postgres")
    }

    /// Creates a fresh database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name.len() < 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "pgcluster: database name {name:?} must be 1..63 chars of [A-Za-z0-9_-]"
        );
        let sql = format!("CREATE DATABASE \"{name}\"");
        let work = async {
            let mut conn = sqlx::PgConnection::connect(&self.url()).await?;
            sqlx::raw_sql(&sql).execute(&mut conn).await?;
            conn.close().await?;
            Ok::<(), sqlx::Error>(())
        };
        match tokio::time::timeout(READY_TIMEOUT, work).await {
            Ok(Ok(())) => self.db_url(name),
            Ok(Err(e)) => panic!(
                "pgcluster: {sql} failed: {e}\n--- server log tail ---\n{}",
                self.log_tail()
            ),
            Err(_) => panic!(
                "pgcluster: {sql} timed out after {READY_TIMEOUT:?}\n--- server log tail ---\n{}",
                self.log_tail()
            ),
        }
    }

    /// Stops the server (pg_ctl stop -m fast, waits until stopped); the same port stays
    /// reserved for start_again.
    pub async fn stop(&self) {
        let data_arg = self.data_arg();
        let args = [
            "stop",
            "-D",
            data_arg.as_str(),
            "-m",
            "fast",
            "-w",
            "-t",
            "30",
        ];
        if let Err(e) = self.run("pg_ctl", &args).await {
            panic!(
                "pgcluster: pg_ctl stop failed: {e}\n--- server log tail ---\n{}",
                self.log_tail()
            );
        }
        // pg_ctl -w returns once postmaster.pid is gone; double-check, bounded.
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.data.join("postmaster.pid").exists() {
            if Instant::now() > deadline {
                panic!(
                    "pgcluster: server still running (postmaster.pid present) {READY_TIMEOUT:?} after pg_ctl stop\n--- server log tail ---\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts it again on the same port and data dir; waits until it accepts connections.
    pub async fn start_again(&self) {
        if let Err(e) = self.pg_ctl_start().await {
            panic!(
                "pgcluster: pg_ctl start (again, port {}) failed: {e}\n--- server log tail ---\n{}",
                self.port,
                self.log_tail()
            );
        }
        self.wait_ready().await;
    }

    // ---- internals -------------------------------------------------------------------------

    fn db_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn data_arg(&self) -> String {
        self.data.to_string_lossy().into_owned()
    }

    fn log_path(&self) -> PathBuf {
        self.data.join("log")
    }

    /// Everything but the port, which is passed on each start so a clash can be retried.
    fn write_conf(&self) {
        let socket_dir = self.data_arg().replace('\'', "''");
        let conf = format!(
            "\n# pgcluster (orgsso tests)\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 100\n\
             shared_buffers = 16MB\n"
        );
        let path = self.data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("pgcluster: cannot open {}: {e}", path.display()));
        std::io::Write::write_all(&mut file, conf.as_bytes())
            .unwrap_or_else(|e| panic!("pgcluster: cannot append to {}: {e}", path.display()));
    }

    async fn pg_ctl_start(&self) -> Result<(), String> {
        let data_arg = self.data_arg();
        let log_arg = self.log_path().to_string_lossy().into_owned();
        let opts = format!("-c port={}", self.port);
        let args = [
            "start",
            "-D",
            data_arg.as_str(),
            "-l",
            log_arg.as_str(),
            "-w",
            "-t",
            "30",
            "-o",
            opts.as_str(),
        ];
        self.run("pg_ctl", &args).await
    }

    /// Bounded: until a real connection (as the tests will make) succeeds.
    async fn wait_ready(&self) {
        let url = self.url();
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_error;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url))
                .await
            {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    return;
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = "connect attempt timed out after 5s".to_string(),
            }
            if Instant::now() > deadline {
                panic!(
                    "pgcluster: server on port {} did not accept connections within {READY_TIMEOUT:?}: {last_error}\n--- server log tail ---\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `<bin>/<program> args…` (as postgres when root), bounded; Err describes a failure.
    async fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let mut cmd = tokio::process::Command::from(self.std_command(program, args));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let shown = format!("{program} {}", args.join(" "));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot spawn `{shown}`: {e}"))?;
        let output = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(format!("waiting for `{shown}`: {e}")),
            Err(_) => return Err(format!("`{shown}` timed out after {COMMAND_TIMEOUT:?}")),
        };
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{shown}` exited with {}\nstdout: {}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    fn std_command(&self, program: &str, args: &[&str]) -> std::process::Command {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        // Keep PGDATA/PGPORT/PGHOST/… of the environment from steering the tools.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    fn log_tail(&self) -> String {
        match std::fs::read_to_string(self.log_path()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            }
            Err(e) => format!("(no server log at {}: {e})", self.log_path().display()),
        }
    }

    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for PgCluster {
    /// Stops the server (immediate mode) and removes the data dir; never panics.
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let data_arg = self.data_arg();
            let args = [
                "stop",
                "-D",
                data_arg.as_str(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "10",
            ];
            let _ = self
                .std_command("pg_ctl", &args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // Last resort: the postmaster is still there; SIGKILL it (its children notice the
            // postmaster's death and exit on their own).
            if let Some(pid) = self.postmaster_pid() {
                let proc_dir = PathBuf::from(format!("/proc/{pid}"));
                if proc_dir.exists() {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while proc_dir.exists() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
        // `self.dir` (TempDir) is removed when the fields drop, right after this.
    }
}

/// Highest `/usr/lib/postgresql/<version>/bin` that has initdb, pg_ctl and postgres.
fn find_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(version) = name
            .split('.')
            .map(|part| part.parse::<u32>().ok())
            .collect::<Option<Vec<u32>>>()
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| bin.join(b).is_file())
        {
            found.push((version, bin));
        }
    }
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn id_output(args: &[&str]) -> String {
    let output = std::process::Command::new("id")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("pgcluster: cannot run `id {}`: {e}", args.join(" ")));
    assert!(
        output.status.success(),
        "pgcluster: `id {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn current_uid() -> u32 {
    let out = id_output(&["-u"]);
    out.parse()
        .unwrap_or_else(|e| panic!("pgcluster: `id -u` printed {out:?}: {e}"))
}

/// uid and gid of the `postgres` OS user (created by Debian's postgresql packages).
fn postgres_ids() -> (u32, u32) {
    let parse = |flag: &str| {
        let out = id_output(&[flag, "postgres"]);
        out.parse::<u32>().unwrap_or_else(|e| {
            panic!("pgcluster: `id {flag} postgres` printed {out:?}: {e} (running as root needs a `postgres` OS user)")
        })
    };
    (parse("-u"), parse("-g"))
}

/// A port the kernel just handed out on 127.0.0.1 (released again for the server to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("pgcluster: cannot bind 127.0.0.1:0 to pick a port: {e}"))
}
