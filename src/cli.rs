//! Command line: `serve`, `migrate up|down|status`, `openapi`, `asyncapi`, `config-reference`,
//! `demo-seed`, `admin ...`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::{App, admin, asyncapi, db, demo, openapi, telemetry};

#[derive(Debug, Parser)]
#[command(name = "guildhall", version, about = "Community platform backend")]
struct Cli {
    /// Optional TOML file; `GUILDHALL_*` environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API on GUILDHALL_BIND until SIGTERM/SIGINT.
    Serve,
    /// Apply or revert database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the OpenAPI document (JSON).
    Openapi,
    /// Print the AsyncAPI document of the WebSocket protocol (YAML).
    Asyncapi,
    /// Print every setting with its default and meaning (the README's Markdown table).
    ConfigReference,
    /// Create demo users and data, printing their credentials; safe to run again.
    DemoSeed,
    /// Operator tasks: create users, make owners, revoke sessions, export a community.
    Admin {
        #[command(subcommand)]
        action: admin::AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Apply pending migrations (all, or the next N).
    Up {
        #[arg(short = 'n', long)]
        steps: Option<u32>,
    },
    /// Revert the last N migrations (default 1).
    Down {
        #[arg(short = 'n', long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Openapi) {
        print!("{}", openapi::spec_json());
        return ExitCode::SUCCESS;
    }
    if matches!(cli.command, Command::Asyncapi) {
        print!("{}", asyncapi::spec_yaml());
        return ExitCode::SUCCESS;
    }
    if matches!(cli.command, Command::ConfigReference) {
        print!("{}", crate::config::reference_table());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("guildhall: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log, config.log_format);
    match execute(cli.command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("guildhall: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => App::build(config).await?.run_until_stopped().await,
        Command::Migrate { action } => migrate(action, &config).await,
        Command::DemoSeed => demo::seed(config).await,
        Command::Admin { action } => admin::run(action, config).await,
        Command::Openapi | Command::Asyncapi | Command::ConfigReference => {
            unreachable!("handled before configuration is read")
        }
    }
}

async fn migrate(action: MigrateAction, config: &Config) -> anyhow::Result<()> {
    let conn = db::connect(config).await?;
    match action {
        MigrateAction::Up { steps } => {
            db::migrate_up(&conn, steps).await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps } => {
            db::migrate_down(&conn, steps).await?;
            println!("reverted {steps} migration(s)");
        }
        MigrateAction::Status => {
            for (name, applied) in db::migration_status(&conn).await? {
                println!("{} {name}", if applied { "applied" } else { "pending" });
            }
        }
    }
    Ok(())
}
