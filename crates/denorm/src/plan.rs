//! Planning every view of a configuration against a source catalog, shared
//! by `denorm check`, `denorm run` (at start and after a source schema
//! change) and `denorm demo`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use denorm_sql::{plan_views, ViewDef};
use denorm_types::Catalog;

use crate::config::Config;

/// A planned view and the file that defines it.
pub type Planned = (ViewDef, PathBuf);

/// Plans every views file; returns the views with their files, and every
/// error already rendered.
pub fn plan_all(config: &Config, catalog: &Catalog) -> anyhow::Result<(Vec<Planned>, Vec<String>)> {
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
        match plan_views(&sql, catalog, config.source.dialect()) {
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
