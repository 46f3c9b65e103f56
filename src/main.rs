//! The `missive` binary: parses the command line and calls into the library.

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

use missive::auth::Auth;
use missive::config::Settings;
use missive::domain::UserId;
use missive::startup::{Application, shutdown_signal};

#[derive(Parser)]
#[command(name = "missive", version, about = "Real-time messaging backend: REST for actions, WebSocket for push")]
struct Cli {
    /// TOML configuration file (also MISSIVE_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Flags override the environment and the file. Only flags that were given are set.
#[derive(Args, Serialize)]
struct Flags {
    /// Listen address (MISSIVE_BIND, default 127.0.0.1:4000).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    bind: Option<String>,
    /// postgres://… or a SQLite path (MISSIVE_DATABASE_URL, DATABASE_URL).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    /// redis://… turns cluster mode on (MISSIVE_REDIS_URL; needs PostgreSQL).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_url: Option<String>,
    /// Data directory for the SQLite file and the dev secret (MISSIVE_DATA_DIR, default ./data).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// text or json (MISSIVE_LOG_FORMAT).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a token for USER signed with the configured (or dev) secret.
    Token {
        user: String,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "24h")]
        ttl: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref(), &cli.flags) {
        Ok(s) => s,
        Err(e) => return fail(format!("configuration: {e}")),
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Token { user, ttl } => token(&settings, &user, &ttl),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("missive: {msg}");
    ExitCode::FAILURE
}

async fn serve(settings: Settings) -> Result<(), String> {
    missive::telemetry::init(&settings.log_format);
    let app = Application::build(settings).await.map_err(|e| e.to_string())?;
    tracing::info!(backend = app.database_backend(), auth = app.describe_auth(), "configured");
    if app.is_dev_auth() {
        tracing::warn!(
            "DEV AUTH: tokens are signed with a generated secret; mint one with `missive token <user>`. \
             Set MISSIVE_JWT_SECRET or MISSIVE_JWT_PUBLIC_KEY in production."
        );
    }
    if let Some(metrics) = app.metrics_addr() {
        tracing::info!("metrics on http://{metrics}/metrics (and not on the main listener)");
    }
    let addr = app.local_addr();
    tracing::info!(
        "missive {} listening on http://{addr} (WebSocket at ws://{addr}/messaging)",
        env!("CARGO_PKG_VERSION")
    );
    app.run_until_stopped(shutdown_signal()).await.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(settings: Settings) -> Result<(), String> {
    missive::telemetry::init(&settings.log_format);
    let (url, postgres) = match settings.database() {
        missive::config::DatabaseKind::Postgres(url) => (url, true),
        missive::config::DatabaseKind::Sqlite(path) => {
            missive::private_fs::prepare_sqlite_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            (path.to_string_lossy().into_owned(), false)
        }
    };
    let applied = missive::db::run_migrations(url, postgres).await.map_err(|e| e.to_string())?;
    println!("applied {applied} migration(s)");
    Ok(())
}

fn token(settings: &Settings, user: &str, ttl: &str) -> Result<(), String> {
    let user = UserId::parse(user).map_err(|e| e.to_string())?;
    let ttl = humantime::parse_duration(ttl).map_err(|e| format!("--ttl {ttl:?}: {e}"))?;
    let auth = Auth::from_settings(settings).map_err(|e| e.to_string())?;
    println!("{}", auth.mint(&user, ttl).map_err(|e| e.to_string())?);
    Ok(())
}
