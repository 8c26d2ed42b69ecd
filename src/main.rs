use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use orgsso::configuration::Settings;
use orgsso::startup::{open_store, Application};

/// orgsso: OpenID Connect single sign-on for organisations.
///
/// Settings come from the built-in defaults (config/default.toml), the file given with
/// --config, then ORGSSO_* environment variables, which win.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// A TOML settings file layered over the defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (applies database migrations first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage the keys orgsso signs its tokens with.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Add a new signing key and sign with it from now on; the old public key stays in
    /// /.well-known/jwks.json until the tokens it signed have expired. Running instances pick the
    /// new key up within 30 seconds.
    Rotate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with causes), not a backtrace: this is what operators see.
            eprintln!("orgsso: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    orgsso::telemetry::init(settings.log_format);
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            tracing::info!(addr = %app.local_addr(), public_url = %app.state.settings.public_url, "orgsso listening");
            if let Some(addr) = app.metrics_addr() {
                tracing::info!(%addr, "metrics at GET /metrics on their own listener");
            } else if app.state.settings.metrics.on_main() {
                tracing::info!(
                    "metrics at GET /metrics on the main listener (metrics.expose_on_main)"
                );
            }
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            open_store(&settings).await?;
            tracing::info!("migrations applied");
        }
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let kid = orgsso::startup::rotate_signing_key(&settings).await?;
            println!("new signing key {kid} is active");
        }
    }
    Ok(())
}
