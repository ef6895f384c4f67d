//! The command line. Each subcommand is a function in its own module; this
//! module parses arguments, runs one, and turns its result into an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::advise;
use crate::check;
use crate::config;
use crate::demo;
use crate::dlq;
use crate::redacting::Redacting;
use crate::run;

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
    /// Capture the source, maintain every view, and serve them over HTTP
    /// until SIGINT/SIGTERM.
    Run {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Create a SQLite marketplace with realistic volumes, write to it at a
    /// steady rate, maintain and serve its views, and print freshness and
    /// read latency (view vs normalized SQL) every few seconds.
    Demo {
        /// Work directory (created; its demo database is recreated).
        #[arg(long, value_name = "DIR", default_value = "denorm-demo")]
        dir: PathBuf,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
        /// Address of the HTTP server.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
        listen: std::net::SocketAddr,
        /// Writer transactions per second.
        #[arg(long, value_name = "TXN_PER_SECOND", default_value_t = 200.0)]
        rate: f64,
        /// Data volume; 1 is about 270,000 rows.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Seconds between reports.
        #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
        every: f64,
    },
    /// Rank the application's frequent reads by the time a view would save,
    /// with a verdict per the seeds' decision framework, and write the
    /// recommended ones as views.
    Advise {
        /// The source: sqlite://app.db or postgres://user:pw@host/db
        /// (PostgreSQL: reads pg_stat_statements and pg_stat_user_tables).
        #[arg(long, value_name = "URL")]
        source: String,
        /// SQLite: the application's frequent statements, each ended by `;`
        /// with an optional `-- calls: N` comment (writes included).
        #[arg(long, value_name = "FILE")]
        queries: Option<PathBuf>,
        /// Report at most this many queries.
        #[arg(long, value_name = "N", default_value_t = 10)]
        top: usize,
        /// Append the recommended views to this file (e.g. views.sql).
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compare views of the running instance with the source at the
    /// position they reached, and print missing / extra / different rows
    /// (exit 1 when some remain). SQLite sources.
    Reconcile {
        /// The views to compare (default: every view).
        #[arg(value_name = "VIEW")]
        views: Vec<String>,
        /// Fix the differences in place: the views keep serving.
        #[arg(long)]
        repair: bool,
        /// Compare the rows `[[sink]]` NAME wrote with the views instead
        /// (someone edited the copy); with --repair, rewrite what differs.
        #[arg(long, value_name = "NAME", conflicts_with = "views")]
        sink: Option<String>,
        /// Print the JSON reply instead of a summary.
        #[arg(long)]
        json: bool,
        /// A bearer token of a role with admin = true (when [auth] is set).
        #[arg(long, value_name = "JWT")]
        token: Option<String>,
        /// The configuration file of the running instance (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Make the running instance read its configuration and views files
    /// again (as SIGHUP does): added views are built, dropped ones removed,
    /// changed ones rebuilt; an invalid file is refused whole.
    Reload {
        /// A bearer token of a role with admin = true (when [auth] is set).
        #[arg(long, value_name = "JWT")]
        token: Option<String>,
        /// The configuration file of the running instance (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Manage what denorm installs in the source database.
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// Helpers for `[auth]`.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// The dead-letter queue: source changes that could not be applied
    /// (asks the running denorm over HTTP, or reads the state directory
    /// while it is stopped).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Read a password (the first line of standard input) and print its
    /// SCRAM-SHA-256 verifier, for `password = "…"` in `[auth.users.NAME]`
    /// (the form PostgreSQL keeps in pg_authid; the password itself is
    /// never stored).
    HashPassword {
        /// PBKDF2 iterations (PostgreSQL's default is 4096).
        #[arg(long, default_value_t = denorm_serve::scram::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the entries: table, key, position, reason and the raw value.
    List {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Read the entries' rows again from the source at the running engine's
    /// position and apply them if they now decode (the entries are
    /// removed); otherwise keep them with the new reason. Needs the running
    /// `denorm run` (it holds the position and the stored input rows).
    Retry {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Every entry.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// The entries' ids (`denorm dlq list` shows them).
        #[arg(value_name = "ID", required_unless_present = "all")]
        ids: Vec<u64>,
    },
    /// Discard entries.
    Drop {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The entries' ids (`denorm dlq list` shows them).
        #[arg(value_name = "ID", required = true)]
        ids: Vec<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Remove what denorm installed in the source database: on SQLite its
    /// triggers and change-log tables (every `_denorm_` object), on
    /// PostgreSQL its replication slot and publication. Stop `denorm run`
    /// first.
    Uninstall {
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
    // Nothing printed shows a password (see `redacting`).
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let result = match &cli.command {
        Command::Check { config } => {
            check::run(config, &mut Redacting::new(stdout.lock()), &mut Redacting::new(stderr.lock()))
        }
        Command::Run { config } => {
            run::init_logging();
            run::run(config).map(|()| check::Outcome::Ok)
        }
        Command::Demo { dir, duration, listen, rate, scale, every } => {
            run::init_logging();
            let args = demo::DemoArgs {
                dir: dir.clone(),
                duration: duration.map(std::time::Duration::from_secs_f64),
                listen: *listen,
                rate: *rate,
                scale: *scale,
                every: std::time::Duration::from_secs_f64(every.max(0.5)),
            };
            demo::run(&args).map(|()| check::Outcome::Ok)
        }
        Command::Advise { source, queries, top, write, json } => {
            let args = advise::AdviseArgs {
                source: source.clone(),
                queries: queries.clone(),
                top: *top,
                write: write.clone(),
                json: *json,
            };
            advise::run(&args, &mut stdout.lock())
        }
        Command::Reconcile { views, repair, sink, json, token, config } => {
            let args = crate::admin_cli::ReconcileArgs {
                sink: sink.clone(),
                views: views.clone(),
                repair: *repair,
                json: *json,
                token: token.clone(),
            };
            crate::admin_cli::reconcile(config, &args, &mut Redacting::new(stdout.lock()))
        }
        Command::Reload { token, config } => {
            crate::admin_cli::reload(config, token.as_deref(), &mut Redacting::new(stdout.lock()))
        }
        Command::Source { command: SourceCommand::Uninstall { config } } => {
            uninstall(config, &mut Redacting::new(stdout.lock())).map(|()| check::Outcome::Ok)
        }
        Command::Auth { command: AuthCommand::HashPassword { iterations } } => {
            hash_password(*iterations, &mut std::io::stdin().lock(), &mut stdout.lock()).map(|()| check::Outcome::Ok)
        }
        Command::Dlq { command } => {
            let (action, config, ids) = match command {
                DlqCommand::List { config } => (dlq::Action::List, config, &[][..]),
                DlqCommand::Drop { config, ids } => (dlq::Action::Drop, config, ids.as_slice()),
                DlqCommand::Retry { config, all: true, .. } => (dlq::Action::RetryAll, config, &[][..]),
                DlqCommand::Retry { config, ids, .. } => (dlq::Action::Retry, config, ids.as_slice()),
            };
            dlq::run(action, config, ids, &mut Redacting::new(stdout.lock())).map(|()| check::Outcome::Ok)
        }
    };
    match result {
        Ok(check::Outcome::Ok) => ExitCode::SUCCESS,
        Ok(check::Outcome::Refused) => ExitCode::from(1),
        Err(e) => {
            let _ = writeln!(Redacting::new(stderr.lock()), "{}", render_error(&e));
            ExitCode::from(1)
        }
    }
}

/// `denorm auth hash-password`: the verifier of the first line of `input`.
fn hash_password(iterations: u32, input: &mut dyn std::io::BufRead, out: &mut dyn Write) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if iterations < 4096 {
        anyhow::bail!("{iterations} iterations are too few for SCRAM-SHA-256: give at least 4096 (RFC 7677)");
    }
    if std::io::stdin().is_terminal() {
        eprint!("password (echoed as you type; pipe it in to avoid that): ");
    }
    let mut line = String::new();
    input.read_line(&mut line)?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    if password.is_empty() {
        anyhow::bail!("no password on standard input: e.g. `printf '%s' \"$PASSWORD\" | denorm auth hash-password`");
    }
    writeln!(out, "{}", denorm_serve::scram::Verifier::generate(password, iterations).encode())?;
    Ok(())
}

/// `error: <what>` followed by one `  cause: <why>` line per underlying error.
pub fn render_error(error: &anyhow::Error) -> String {
    let mut out = format!("error: {error}");
    for cause in error.chain().skip(1) {
        out.push_str(&format!("\n  cause: {cause}"));
    }
    out
}

/// `denorm source uninstall`: removes every `_denorm_` object from the
/// configured SQLite database, or the replication slot and publication from
/// the PostgreSQL database, and says what it removed.
fn uninstall(config_path: &std::path::Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let config = config::load(config_path)?;
    let database = match &config.source {
        config::SourceConfig::Sqlite(sqlite) => sqlite.path.clone(),
        config::SourceConfig::Postgres(pg) => return uninstall_postgres(pg, out),
    };
    let removed = denorm_source::sqlite::uninstall(&database)?;
    if removed.is_empty() {
        writeln!(out, "nothing to remove: {} has no denorm objects", database.display())?;
        return Ok(());
    }
    for (kind, names) in [("trigger", &removed.triggers), ("table", &removed.tables), ("object", &removed.other)] {
        for name in names {
            writeln!(out, "removed {kind} {name}")?;
        }
    }
    writeln!(out, "denorm objects removed from {}", database.display())?;
    Ok(())
}

/// Drops the replication slot (the WAL it retains is freed) and the
/// publication.
fn uninstall_postgres(pg: &config::PostgresSource, out: &mut dyn Write) -> anyhow::Result<()> {
    let name = denorm_source::postgres::redact(&pg.url);
    let dropped = denorm_source::postgres::uninstall(&pg.url, &pg.names())
        .map_err(|e| anyhow::Error::new(e).context(format!("cannot uninstall denorm from {name}")))?;
    if !dropped.slot && !dropped.publication {
        writeln!(
            out,
            "nothing to remove: {name} has no replication slot {} and no publication {}",
            pg.slot, pg.publication
        )?;
        return Ok(());
    }
    if dropped.slot {
        writeln!(out, "dropped replication slot {}", pg.slot)?;
    }
    if dropped.publication {
        writeln!(out, "dropped publication {}", pg.publication)?;
    }
    writeln!(out, "denorm objects removed from {name}")?;
    Ok(())
}
