//! Wiring of `[[sink]]`: each configured sink's views checked against the
//! planned views, turned into [`ViewSpec`]s and handed with the sink to a
//! [`SinkHub`] the engine feeds (see `denorm-sink`).

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use denorm_serve::{Reader, ViewInfo};
use denorm_sink::{ColumnSpec, SinkConfig, SinkHub, ViewSpec};
use denorm_sql::ViewDef;

use crate::config::sink::{open_sink, SinkKind, SinkSettings};
use crate::config::{Config, SourceConfig};

/// What a sink is told about a planned view.
pub fn view_spec(view: &ViewDef) -> ViewSpec {
    ViewSpec {
        name: view.name.clone(),
        columns: view
            .columns
            .iter()
            .map(|c| ColumnSpec { name: c.name.clone(), ty: c.ty, nullable: c.nullable })
            .collect(),
        key: view.key.columns.clone(),
        partition_by: view.feed.as_ref().map(|f| f.partition),
        order: match &view.feed {
            Some(feed) => feed.order.iter().map(|o| (o.column, o.descending)).collect(),
            None => view.order.iter().map(|k| (k.column, k.descending)).collect(),
        },
        indexes: view.indexes.clone(),
        feed: None,
    }
}

/// Starts a runner per configured sink (`None` without `[[sink]]`); refuses
/// a sink that names an unknown view, or a
/// SQLite sink in the source database whose tables a view reads.
pub fn start(
    config: &Config,
    specs: &[ViewSpec],
    infos: &[ViewInfo],
    reader: &Reader,
) -> anyhow::Result<Option<Arc<SinkHub>>> {
    if config.sinks.is_empty() {
        return Ok(None);
    }
    let mut sinks = Vec::new();
    for settings in &config.sinks {
        let views = sink_views(config, settings, specs, infos)?;
        sinks.push(SinkConfig {
            name: settings.name.clone(),
            sink: open_sink(&settings.kind)?,
            views,
            queue_rows: settings.queue_rows,
            reconcile_every: settings.reconcile_every,
            repair: settings.repair,
            reconcile_sample: settings.reconcile_sample,
        });
    }
    Ok(Some(Arc::new(SinkHub::start(sinks, reader.clone()))))
}

fn sink_views(
    config: &Config,
    settings: &SinkSettings,
    specs: &[ViewSpec],
    infos: &[ViewInfo],
) -> anyhow::Result<Vec<(usize, ViewSpec)>> {
    let at = format!("{}:{}", config.file.display(), settings.views_at);
    let mut views = Vec::new();
    for name in &settings.views {
        let Some(slot) = specs.iter().position(|s| s.name.eq_ignore_ascii_case(name)) else {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            bail!("{at}: sink \"{}\" names no view \"{name}\"\n  hint: views: {}", settings.name, known.join(", "));
        };
        let spec = &specs[slot];
        // A feed is written as three parts (denorm_sink::feed).
        let parts: Vec<ViewSpec> = match infos.get(slot).and_then(|i| i.feed.as_ref()) {
            Some(feed) => denorm_sink::feed::part_specs(spec, feed).into(),
            None => vec![spec.clone()],
        };
        if let (SinkKind::Sqlite { path }, SourceConfig::Sqlite(source)) = (&settings.kind, &config.source) {
            if same_file(path, &source.path) {
                let mut tables: Vec<String> = parts
                    .iter()
                    .map(denorm_sink::feed::as_table)
                    .flat_map(|p| [p.name.clone(), format!("{}__new", p.name)])
                    .collect();
                tables.extend([spec.name.clone(), "denorm_sink_positions".to_owned()]);
                if let Some(reader) =
                    infos.iter().find(|i| i.tables.iter().any(|t| tables.iter().any(|n| n.eq_ignore_ascii_case(t))))
                {
                    bail!(
                        "{at}: sink \"{}\" would write table \"{}\" of the source database, which view \"{}\" reads\n  \
                         hint: a view must not read a table denorm writes (it would capture its own writes); write the \
                         view to another file, or rename the table",
                        settings.name,
                        spec.name,
                        reader.name
                    );
                }
            }
        }
        views.extend(parts.into_iter().map(|part| (slot, part)));
    }
    Ok(views)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
