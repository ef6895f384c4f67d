//! `denorm check`: plan every view against the source schema and show, per
//! view, its key, columns, triggers, propagation, staleness budget and
//! operator graph; or every error, each with its file:line:column.

use std::io::Write;
use std::path::Path;

use crate::config;
use crate::describe;
use crate::estimate;
use crate::plan::plan_all;
use crate::source;

/// Whether every view planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The errors were written to the error stream.
    Refused,
}

/// Runs `denorm check --config config_path`, writing the report to `out` and
/// plan errors to `err`. Configuration and source failures are returned.
pub fn run(config_path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Outcome> {
    let config = config::load(config_path)?;
    let source = source::catalog(&config)?;
    let catalog = source.catalog;
    let (views, errors) = plan_all(&config, &catalog)?;
    if !errors.is_empty() {
        for e in &errors {
            writeln!(err, "{e}")?;
        }
        let s = if errors.len() == 1 { "" } else { "s" };
        writeln!(err, "check failed: {} error{s}", errors.len())?;
        return Ok(Outcome::Refused);
    }
    let defs: Vec<_> = views.iter().map(|(view, _)| view.clone()).collect();
    let estimates = estimate::estimate(&config, &catalog, &defs);
    for (i, (view, file)) in views.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        write!(out, "{}", describe::render_view(view, file, &catalog))?;
        write!(out, "{}", sinks_of(view, &config.sinks))?;
        if let Ok(estimates) = &estimates {
            write!(out, "{}", estimate::render(&estimates[i]))?;
        }
    }
    match &estimates {
        Ok(estimates) => {
            let total: f64 = estimates.iter().map(|e| e.bytes).sum();
            let budget = config.engine.max_memory.map_or_else(
                || "no [engine] max_memory".to_string(),
                |b| format!("[engine] max_memory = {}", estimate::bytes(b as f64)),
            );
            writeln!(out, "\noperator state, estimated: ~{} in all; {budget}", estimate::bytes(total))?;
            if let Some(refusal) = config.engine.max_memory.and_then(|b| estimate::over_budget(estimates, b)) {
                writeln!(out, "warning: denorm run would refuse to start:\n{refusal}")?;
            }
        }
        Err(e) => writeln!(out, "\noperator state: no estimate ({})", crate::cli::render_error(e))?,
    }
    let files = config.views.len();
    writeln!(
        out,
        "\nok: {} view{} in {files} file{} planned against {} source table{} of {}",
        views.len(),
        plural(views.len()),
        plural(files),
        catalog.tables().count(),
        plural(catalog.tables().count()),
        source.name,
    )?;
    Ok(Outcome::Ok)
}

/// Where `[[sink]]` entries write `view` (nothing when none does): each
/// sink's name and target, and the indexes a table sink creates.
fn sinks_of(view: &denorm_sql::ViewDef, sinks: &[config::sink::SinkSettings]) -> String {
    use config::sink::SinkKind;
    let targets: Vec<String> = sinks
        .iter()
        .filter(|s| s.views.iter().any(|v| v.eq_ignore_ascii_case(&view.name)))
        .map(|s| match &s.kind {
            SinkKind::Postgres { schema, .. } => format!("{} (postgres table {schema}.{})", s.name, view.name),
            SinkKind::Sqlite { path } => format!("{} (sqlite table {} in {})", s.name, view.name, path.display()),
            SinkKind::Redis(redis) => format!("{} (redis keys {}{}:…)", s.name, redis.prefix, view.name),
        })
        .collect();
    if targets.is_empty() {
        return String::new();
    }
    let mut out = format!("  sinks: {}\n", targets.join(", "));
    if !view.indexes.is_empty() {
        let name = |i: &usize| view.columns.get(*i).map_or("?", |c| c.name.as_str()).to_string();
        let indexes: Vec<String> = view
            .indexes
            .iter()
            .map(|index| format!("({})", index.iter().map(name).collect::<Vec<_>>().join(", ")))
            .collect();
        out.push_str(&format!("  sink indexes: {}\n", indexes.join(", ")));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
