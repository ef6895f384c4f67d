//! The command line. Each subcommand is a function in its own module; this
//! module parses arguments, runs one, and turns its result into an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::check;

/// denorm keeps denormalized read models in sync with a normalized source
/// database, incrementally.
#[derive(Debug, Parser)]
#[command(name = "denorm", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan every view against the source schema and show its key, columns,
    /// triggers, propagation, staleness budget and operator graph.
    Check {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    run(Cli::parse())
}

/// Runs a parsed command: exit 0 on success, 1 when the configuration, the
/// source or a view is refused.
pub fn run(cli: Cli) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let result = match &cli.command {
        Command::Check { config } => check::run(config, &mut stdout.lock(), &mut stderr.lock()),
    };
    match result {
        Ok(check::Outcome::Ok) => ExitCode::SUCCESS,
        Ok(check::Outcome::Refused) => ExitCode::from(1),
        Err(e) => {
            let _ = writeln!(stderr.lock(), "{}", render_error(&e));
            ExitCode::from(1)
        }
    }
}

/// `error: <what>` followed by one `  cause: <why>` line per underlying error.
pub fn render_error(error: &anyhow::Error) -> String {
    let mut out = format!("error: {error}");
    for cause in error.chain().skip(1) {
        out.push_str(&format!("\n  cause: {cause}"));
    }
    out
}
