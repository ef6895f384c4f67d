//! The operator state each view is estimated to hold once loaded, from the
//! source's statistics, before anything runs: printed by `denorm check`,
//! and compared with `[engine] max_memory` by `denorm run` at start.
//!
//! Statistics per table a view reads:
//!
//! - SQLite: `SELECT count(*)`, and from a sample (the first
//!   [`SAMPLE_ROWS`] rows) each column's average width in denorm's row
//!   encoding (a tag byte; integers 1/2/4/8 bytes by magnitude; doubles 8,
//!   or 1 to 7 for a short decimal, bounded by its printed digits;
//!   text and blobs their bytes and a 1- or 4-byte length) and its distinct
//!   values (the sample's count when values repeat within it, else scaled
//!   to the table).
//! - PostgreSQL: `pg_class.reltuples` (`count(*)` when the table was never
//!   analysed), `pg_stats.avg_width` (plus the tag byte) and
//!   `pg_stats.n_distinct` (a negative value is a fraction of the rows).
//!
//! What the statistics become is [`denorm_core::Dataflow::estimate_state_bytes`]'s
//! to decide (per arrangement, group table and top-k the plans build,
//! shared nodes once). The figures are estimates and are printed as such;
//! `/metrics` has the exact ones once running.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use anyhow::Context as _;
use denorm_core::{StateEstimate, TableStats};
use denorm_sql::ViewDef;
use denorm_types::Catalog;

use crate::config::{Config, SourceConfig};
use crate::engine::flow::Flow;

/// Rows read from each SQLite table to measure its columns.
pub const SAMPLE_ROWS: usize = 1000;

/// One view's estimated state: its nodes (shared ones under the first view
/// reading them) and their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewEstimate {
    pub view: String,
    pub nodes: Vec<StateEstimate>,
    pub bytes: f64,
}

/// Reads the statistics of the tables `views` read and estimates each
/// view's state, in the views' order.
pub fn estimate(config: &Config, catalog: &Catalog, views: &[ViewDef]) -> anyhow::Result<Vec<ViewEstimate>> {
    let tables: BTreeSet<String> = views
        .iter()
        .flat_map(|v| &v.dependencies)
        .map(|d| catalog.get(&d.table).map_or(d.table.clone(), |t| t.name.clone()))
        .collect();
    let stats = read_stats(config, catalog, &tables)?;
    let planned: Vec<Option<ViewDef>> = views.iter().cloned().map(Some).collect();
    let flow = Flow::new(catalog.clone(), &planned, config.source.dialect(), Instant::now())
        .context("cannot build the dataflow to estimate (bug)")?;
    let names: Vec<String> = views.iter().map(|v| v.name.clone()).collect();
    let nodes = flow.estimate_state_bytes(&stats, &names);
    Ok(names
        .into_iter()
        .map(|view| {
            let nodes: Vec<StateEstimate> = nodes.iter().filter(|n| n.view == view).cloned().collect();
            let bytes = nodes.iter().map(|n| n.bytes).sum();
            ViewEstimate { view, nodes, bytes }
        })
        .collect())
}

/// The `state (estimate …)` section of a view in `denorm check`.
pub fn render(estimate: &ViewEstimate) -> String {
    let mut out = String::from("  state (estimate from the source's statistics):\n");
    if estimate.nodes.is_empty() {
        out.push_str("    none: no arrangement, group or top-k\n");
        return out;
    }
    for node in &estimate.nodes {
        out.push_str(&format!("    {}: ~{} rows, ~{}\n", node.operator, count(node.rows), bytes(node.bytes)));
    }
    out.push_str(&format!("    total: ~{}\n", bytes(estimate.bytes)));
    out
}

/// The refusal of `denorm run` when the views' estimated state exceeds
/// `[engine] max_memory`: every view's estimate, largest first, and the
/// budget.
pub fn over_budget(estimates: &[ViewEstimate], budget: u64) -> Option<String> {
    let total: f64 = estimates.iter().map(|e| e.bytes).sum();
    if total <= budget as f64 {
        return None;
    }
    let mut sorted: Vec<&ViewEstimate> = estimates.iter().collect();
    sorted.sort_by(|a, b| b.bytes.total_cmp(&a.bytes));
    let mut message = format!(
        "refusing to start: the views' operator state is estimated at ~{}, over [engine] max_memory = {}\n  \
         estimates (from the source's statistics; denorm check shows them per operator):",
        bytes(total),
        bytes(budget as f64)
    );
    for e in sorted {
        message.push_str(&format!("\n    {}: ~{}", e.view, bytes(e.bytes)));
    }
    message.push_str("\n  hint: raise max_memory, or remove or narrow the largest views");
    Some(message)
}

/// A byte count for people: `512 B`, `1.5 kB`, `12 MB`, `3.2 GB`.
pub fn bytes(value: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = value.max(0.0);
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", units[unit])
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// A row count for people: `1,234,567`.
fn count(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Reads the statistics of `tables` from the configured source.
pub(crate) fn read_stats(
    config: &Config,
    catalog: &Catalog,
    tables: &BTreeSet<String>,
) -> anyhow::Result<HashMap<String, TableStats>> {
    match &config.source {
        SourceConfig::Sqlite(source) => {
            let connection = denorm_source::sqlite::open_read_only(&source.path)?;
            tables.iter().map(|t| Ok((t.clone(), sqlite_stats(&connection, catalog, t)?))).collect()
        }
        SourceConfig::Postgres(source) => {
            let mut client = denorm_source::postgres::connect(&source.url)?;
            tables.iter().map(|t| Ok((t.clone(), postgres_stats(&mut client, catalog, t)?))).collect()
        }
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A column's width in denorm's row encoding, as SQL over SQLite's values.
/// A double is a short decimal (tag and a varint mantissa, see
/// `denorm_types::row`) unless SQLite prints it in exponent form or with
/// more than 14 significant digits: its width is bounded by its digits'.
fn sqlite_width(column: &str) -> String {
    format!(
        "CASE typeof({c}) WHEN 'null' THEN 1 WHEN 'real' THEN {real} \
         WHEN 'integer' THEN CASE WHEN {c} BETWEEN -128 AND 127 THEN 2 WHEN {c} BETWEEN -32768 AND 32767 THEN 3 \
         WHEN {c} BETWEEN -2147483648 AND 2147483647 THEN 5 ELSE 9 END \
         ELSE length(CAST({c} AS BLOB)) + CASE WHEN length(CAST({c} AS BLOB)) < 256 THEN 2 ELSE 5 END END",
        c = quote(column),
        real = sqlite_real_width(&quote(column)),
    )
}

/// The width of a double `c` (quoted) by its significant digits: an
/// integral one's integer digits, another's printed digits without the
/// point and leading zeros (SQLite prints the shortest form); exponent
/// forms and more than 14 digits take tag 7's nine bytes.
fn sqlite_real_width(c: &str) -> String {
    let digits = format!(
        "CASE WHEN {c} = CAST({c} AS INTEGER) AND abs({c}) < 1e15 THEN length(CAST(abs(CAST({c} AS INTEGER)) AS TEXT)) \
         WHEN instr(CAST({c} AS TEXT), 'e') > 0 THEN 99 \
         ELSE length(ltrim(replace(CAST(abs({c}) AS TEXT), '.', ''), '0')) END"
    );
    format!(
        "(SELECT CASE WHEN d <= 1 THEN 2 WHEN d <= 3 THEN 3 WHEN d <= 6 THEN 4 WHEN d <= 8 THEN 5 \
         WHEN d <= 10 THEN 6 WHEN d <= 12 THEN 7 WHEN d <= 14 THEN 8 ELSE 9 END FROM (SELECT {digits} AS d))"
    )
}

fn sqlite_stats(connection: &rusqlite::Connection, catalog: &Catalog, table: &str) -> anyhow::Result<TableStats> {
    let schema = catalog.get(table).with_context(|| format!("no table {table} in the source"))?;
    let context = || format!("cannot read the statistics of {table}");
    let rows: i64 = connection
        .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| r.get(0))
        .with_context(context)?;
    if schema.columns.is_empty() {
        return Ok(TableStats { rows: rows as f64, widths: Vec::new(), distinct: Vec::new() });
    }
    let columns: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let measures: Vec<String> =
        columns.iter().map(|c| format!("avg({}), count(DISTINCT {})", sqlite_width(c), quote(c))).collect();
    let sql = format!(
        "SELECT count(*), {} FROM (SELECT {} FROM {} LIMIT {SAMPLE_ROWS})",
        measures.join(", "),
        columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
        quote(table)
    );
    let (sample, figures) = connection
        .query_row(&sql, [], |r| {
            let sample: i64 = r.get(0)?;
            let mut figures = Vec::new();
            for i in 0..columns.len() {
                let width: Option<f64> = r.get(1 + 2 * i)?;
                let distinct: i64 = r.get(2 + 2 * i)?;
                figures.push((width.unwrap_or(1.0), distinct as f64));
            }
            Ok((sample as f64, figures))
        })
        .with_context(context)?;
    let rows = rows as f64;
    let (widths, distinct) = figures
        .into_iter()
        .map(|(width, seen)| {
            // Values repeating within the sample: about all of them were
            // seen; else as many as the sample's share suggests.
            let distinct = if sample >= rows || seen * 2.0 <= sample { seen } else { seen / sample.max(1.0) * rows };
            (width, Some(distinct))
        })
        .unzip();
    Ok(TableStats { rows, widths, distinct })
}

fn postgres_stats(client: &mut postgres::Client, catalog: &Catalog, table: &str) -> anyhow::Result<TableStats> {
    let schema = catalog.get(table).with_context(|| format!("no table {table} in the source"))?;
    let context = || format!("cannot read the statistics of {table}");
    let schema_name = denorm_source::postgres::SCHEMA;
    let reltuples: f32 = client
        .query_one(
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema_name, &schema.name],
        )
        .with_context(context)?
        .get(0);
    let rows = if reltuples >= 0.0 {
        f64::from(reltuples)
    } else {
        let sql = format!("SELECT count(*) FROM {}.{}", quote(schema_name), quote(&schema.name));
        client.query_one(&sql, &[]).with_context(context)?.get::<_, i64>(0) as f64
    };
    let stats: HashMap<String, (i32, f32)> = client
        .query(
            "SELECT attname::text, avg_width, n_distinct FROM pg_stats WHERE schemaname = $1 AND tablename = $2",
            &[&schema_name, &schema.name],
        )
        .with_context(context)?
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let (widths, distinct) = schema
        .columns
        .iter()
        .map(|c| match stats.get(&c.name) {
            Some(&(width, n)) => {
                let distinct = if n < 0.0 { -f64::from(n) * rows } else { f64::from(n) };
                (f64::from(width) + 1.0, Some(distinct))
            }
            None => (denorm_core::COMPUTED_WIDTH, None),
        })
        .unzip();
    Ok(TableStats { rows, widths, distinct })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_the_figures() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 kB");
        assert_eq!(bytes(12_345_678.0), "12.3 MB");
        assert_eq!(bytes(456_000_000.0), "456 MB");
        assert_eq!(count(0.0), "0");
        assert_eq!(count(1234567.4), "1,234,567");
        assert_eq!(count(999.0), "999");
    }

    /// Widths in the row encoding and distinct values, from a sample.
    #[test]
    fn sqlite_statistics_measure_the_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, small INTEGER, big INTEGER, name TEXT, x REAL, n);
             WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 3000)
             INSERT INTO t SELECT i, i % 7, 5000000000 + i, printf('%010d', i), i * 0.5, NULL FROM k;",
        )
        .unwrap();
        let catalog = denorm_source::sqlite::read_catalog(&db).unwrap();
        let stats = sqlite_stats(&db, &catalog, "t").unwrap();
        assert_eq!(stats.rows, 3000.0);
        // id: 1..1000 in the sample (2 bytes up to 127, then 3).
        let id_width = (127.0 * 2.0 + 873.0 * 3.0) / 1000.0;
        assert!((stats.widths[0] - id_width).abs() < 1e-9, "{:?}", stats.widths);
        assert_eq!(stats.widths[1..4], [2.0, 9.0, 12.0]);
        assert_eq!(stats.widths[5], 1.0);
        // x = i * 0.5, short decimals of 1 to 4 digits: the estimate bounds
        // the encoding's bytes from above, within a byte.
        let packed = (1..=1000)
            .map(|i| denorm_types::Row::pack([denorm_types::Datum::Float(f64::from(i) * 0.5)]).as_bytes().len())
            .sum::<usize>() as f64
            / 1000.0;
        assert!((packed..packed + 1.0).contains(&stats.widths[4]), "{} for {packed}", stats.widths[4]);
        // Unique columns scale to the table; repeating ones stay.
        assert_eq!(stats.distinct[0], Some(3000.0));
        assert_eq!(stats.distinct[1], Some(7.0));
        assert_eq!(stats.distinct[5], Some(0.0));
    }
}
