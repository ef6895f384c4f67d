//! `denorm check`: plan every view against the source schema and show, per
//! view, its key, columns, triggers, propagation, staleness budget and
//! operator graph; or every error, each with its file:line:column.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use denorm_sql::{plan_views, ViewDef};
use denorm_types::{Catalog, Dialect};

use crate::config::{self, Config};
use crate::describe;
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
    let source = source::open(&config)?;
    let catalog = denorm_source::sqlite::read_catalog(&source.connection)
        .with_context(|| format!("cannot read the schema of {}", source.name))?;
    let (views, errors) = plan_all(&config, &catalog)?;
    if !errors.is_empty() {
        for e in &errors {
            writeln!(err, "{e}")?;
        }
        let s = if errors.len() == 1 { "" } else { "s" };
        writeln!(err, "check failed: {} error{s}", errors.len())?;
        return Ok(Outcome::Refused);
    }
    for (i, (view, file)) in views.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        write!(out, "{}", describe::render_view(view, file, &catalog))?;
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

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A planned view and the file that defines it.
type Planned = (ViewDef, PathBuf);

/// Plans every views file; returns the views with their files, and every
/// error already rendered.
fn plan_all(config: &Config, catalog: &Catalog) -> anyhow::Result<(Vec<Planned>, Vec<String>)> {
    // Read every file before planning any, so that a missing file is
    // reported before (and not drowned by) plan errors in the others.
    let mut texts = Vec::with_capacity(config.views.len());
    for file in &config.views {
        let sql = std::fs::read_to_string(&file.path).with_context(|| {
            format!("{}:{}: cannot read views file {}", config.file.display(), file.listed_at, file.path.display())
        })?;
        texts.push((sql, &file.path));
    }
    let mut views = Vec::new();
    let mut errors = Vec::new();
    for (sql, path) in texts {
        match plan_views(&sql, catalog, Dialect::Sqlite) {
            Ok(planned) => views.extend(planned.into_iter().map(|v| (v, path.clone()))),
            Err(found) => errors.extend(found.iter().map(|e| e.render(&path.display().to_string()))),
        }
    }
    errors.extend(duplicate_names(&views));
    Ok((views, errors))
}

/// View names are unique across all views files (case-insensitively, as SQL
/// identifiers are).
fn duplicate_names(views: &[Planned]) -> Vec<String> {
    let mut first: HashMap<String, (&ViewDef, &Path)> = HashMap::new();
    let mut errors = Vec::new();
    for (view, file) in views {
        match first.get(&view.name.to_lowercase()) {
            None => {
                first.insert(view.name.to_lowercase(), (view, file));
            }
            Some((earlier, earlier_file)) => errors.push(format!(
                "error: view {} is defined twice ({}:{})\n  view: {}\n  detail: first defined at {}:{}\n  \
                 hint: view names must be unique across all views files; rename one",
                view.name,
                file.display(),
                view.location,
                view.name,
                earlier_file.display(),
                earlier.location,
            )),
        }
    }
    errors
}
