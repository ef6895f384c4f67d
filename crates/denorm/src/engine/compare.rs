//! Comparing a view's published rows with its defining SELECT run on the
//! source (reconcile and the drift sampler, see [`super::admin`]).
//!
//! Rows are matched by the view's key (a multiset view: by whole rows).
//! Values meet as [`Cell`]s: floats equal to 1e-9 relative (absolute below
//! 1: a sum computed in another order), integral floats equal integers,
//! booleans are 0/1, numeric/date/time/uuid compare by their PostgreSQL
//! text, JSON columns as parsed documents (members in any order, numbers
//! by value). A view whose SELECT the source cannot run is skipped with the
//! reason.
//!
//! A [`SourceReader`] reads in one snapshot: SQLite, one read transaction
//! whose position is the change log's last `seq`; PostgreSQL, one
//! REPEATABLE READ transaction whose position is
//! `pg_current_wal_insert_lsn()` read in it (every transaction it sees
//! committed at or below it). The keys that differ are kept as
//! [`Suspect`]s with both sides' rows, to be [confirmed](confirmed) in a
//! later snapshot where the position cannot be matched exactly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use denorm_serve::{PublishedView, ViewInfo};
use denorm_types::{Datum, ScalarType};
use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value as Json};

use crate::config::SourceConfig;

/// Rows shown per view in a report.
const SAMPLES: usize = 15;
/// Differing keys kept per view for a recheck.
const MAX_SUSPECTS: usize = 10_000;
/// Floats closer than this (relative) are equal.
const FLOAT_TOLERANCE: f64 = 1e-9;

/// A value as compared: the source's and the view's types meet here.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

pub(super) fn cell(datum: &Datum<'_>) -> Cell {
    match datum {
        Datum::Null => Cell::Null,
        Datum::Bool(b) => Cell::Int(i64::from(*b)),
        Datum::Int(i) => Cell::Int(*i),
        Datum::Float(f) => Cell::Float(*f),
        Datum::Text(t) => Cell::Text(t.to_string()),
        Datum::Blob(b) => Cell::Bytes(b.to_vec()),
        other => Cell::Text(other.pg_text().unwrap_or_default()),
    }
}

/// One key of a view that differed: its key cells and both sides' rows.
#[derive(Debug, Clone)]
pub(super) struct Suspect {
    pub key: Vec<Cell>,
    pub source: Vec<Vec<Cell>>,
    pub view: Vec<Vec<Cell>>,
}

/// One view's comparison with the source.
#[derive(Debug, Default)]
pub(crate) struct ViewReport {
    pub view: String,
    pub slot: usize,
    pub checked: u64,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    pub samples: Vec<Json>,
    pub skipped: Option<String>,
    /// The differing keys (to recheck where the position is not exact).
    pub suspects: Vec<Suspect>,
}

impl ViewReport {
    pub(super) fn differences(&self) -> u64 {
        self.missing + self.extra + self.different
    }

    pub(super) fn json(&self) -> Json {
        match &self.skipped {
            Some(reason) => json!({ "view": self.view, "skipped": reason }),
            None => json!({
                "view": self.view,
                "checked_rows": self.checked,
                "missing": self.missing,
                "extra": self.extra,
                "different": self.different,
                "samples": self.samples,
            }),
        }
    }
}

/// The columns rows are matched by: the key, or every column of a multiset view.
pub(super) fn match_columns(info: &ViewInfo) -> Vec<usize> {
    if info.is_multiset() {
        (0..info.columns.len()).collect()
    } else {
        info.key.clone()
    }
}

/// A connection reading the source in one snapshot at a time.
pub(super) enum SourceReader {
    Sqlite(Connection),
    Postgres(Box<postgres::Client>),
}

impl SourceReader {
    pub(super) fn open(source: &SourceConfig) -> Result<SourceReader, String> {
        match source {
            SourceConfig::Sqlite(sqlite) => {
                let conn = denorm_source::sqlite::open_read_only(&sqlite.path).map_err(|e| super::error_chain(&e))?;
                conn.busy_timeout(Duration::from_secs(2)).map_err(|e| sqlite_error(&sqlite.path, e))?;
                Ok(SourceReader::Sqlite(conn))
            }
            SourceConfig::Postgres(pg) => {
                let client = denorm_source::postgres::connect(&pg.url).map_err(|e| super::error_chain(&e))?;
                Ok(SourceReader::Postgres(Box::new(client)))
            }
        }
    }

    /// Starts a snapshot; returns its position (see the module documentation).
    pub(super) fn begin(&mut self) -> Result<u64, String> {
        match self {
            SourceReader::Sqlite(conn) => {
                conn.execute_batch("BEGIN").map_err(|e| format!("starting a read of the source: {e}"))?;
                log_head(conn).map_err(|e| format!("reading the change-log position: {e}"))
            }
            SourceReader::Postgres(client) => {
                client
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .map_err(|e| format!("starting a snapshot of the source: {e}"))?;
                let row = client
                    .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
                    .map_err(|e| format!("reading the WAL position: {e}"))?;
                let text: String = row.get(0);
                denorm_source::postgres::parse_lsn(&text)
                    .map(|p| p.0)
                    .ok_or_else(|| format!("the server returned the WAL position {text:?}"))
            }
        }
    }

    pub(super) fn end(&mut self) -> Result<(), String> {
        match self {
            SourceReader::Sqlite(conn) => conn.execute_batch("COMMIT"),
            SourceReader::Postgres(client) => return client.batch_execute("COMMIT").map_err(|e| e.to_string()),
        }
        .map_err(|e| e.to_string())
    }

    /// The rows of `select` (`key`: only those whose `columns` equal it).
    pub(super) fn rows(
        &mut self,
        select: &str,
        info: &ViewInfo,
        key: Option<(&[usize], &[Cell])>,
    ) -> Result<Vec<Vec<Cell>>, String> {
        let width = info.columns.len();
        let name = |k: usize| format!("\"{}\"", info.columns[k].name.replace('"', "\"\""));
        match self {
            SourceReader::Sqlite(conn) => {
                let (sql, params) = match key {
                    None => (format!("SELECT * FROM ({select})"), Vec::new()),
                    Some((columns, values)) => {
                        let conditions: Vec<String> =
                            columns.iter().enumerate().map(|(i, &k)| format!("{} IS ?{}", name(k), i + 1)).collect();
                        let params = values.iter().map(sqlite_value).collect();
                        (format!("SELECT * FROM ({select}) WHERE {}", conditions.join(" AND ")), params)
                    }
                };
                let mut rows = sqlite_rows(conn, &sql, &params, width)
                    .map_err(|e| format!("the view's SELECT failed on SQLite: {e}"))?;
                normalize(&mut rows, info);
                Ok(rows)
            }
            SourceReader::Postgres(client) => {
                let mut sql = format!("SELECT * FROM ({select}) AS denorm_reconcile");
                if let Some((columns, values)) = key {
                    let conditions: Vec<String> = columns
                        .iter()
                        .zip(values)
                        .map(|(&k, value)| match value {
                            Cell::Null => format!("{} IS NULL", name(k)),
                            value => format!("{} = {}", name(k), pg_literal(value, info.columns[k].ty)),
                        })
                        .collect();
                    sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
                }
                // A failed SELECT must not abort the snapshot's other reads.
                client.batch_execute("SAVEPOINT denorm_reconcile").map_err(|e| e.to_string())?;
                let messages = match client.simple_query(&sql) {
                    Ok(messages) => messages,
                    Err(e) => {
                        let _ = client.batch_execute("ROLLBACK TO SAVEPOINT denorm_reconcile");
                        return Err(format!("the view's SELECT failed on PostgreSQL: {e}"));
                    }
                };
                client.batch_execute("RELEASE SAVEPOINT denorm_reconcile").map_err(|e| e.to_string())?;
                let mut rows = Vec::new();
                for message in messages {
                    let postgres::SimpleQueryMessage::Row(row) = message else { continue };
                    let cells = info
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| crate::fallback::from_pg_text(row.get(i), c.ty).map(|d| cell(&d)))
                        .collect::<Result<Vec<Cell>, String>>()?;
                    rows.push(cells);
                }
                normalize(&mut rows, info);
                Ok(rows)
            }
        }
    }
}

fn sqlite_error(path: &Path, e: rusqlite::Error) -> String {
    format!("reading the source {}: {e}", path.display())
}

/// The change log's last `seq` (what the SQLite capture calls its position).
fn log_head(conn: &Connection) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn
        .query_row("SELECT seq FROM sqlite_sequence WHERE name = '_denorm_changes'", [], |r| r.get(0))
        .optional()
        .or_else(|e| match e {
            rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.contains("no such table") => Ok(None),
            e => Err(e),
        })?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

fn sqlite_value(value: &Cell) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match value {
        Cell::Null => Value::Null,
        Cell::Int(i) => Value::Integer(*i),
        Cell::Float(f) => Value::Real(*f),
        Cell::Text(t) => Value::Text(t.clone()),
        Cell::Bytes(b) => Value::Blob(b.clone()),
    }
}

fn sqlite_rows(
    conn: &Connection,
    sql: &str,
    params: &[rusqlite::types::Value],
    width: usize,
) -> rusqlite::Result<Vec<Vec<Cell>>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(params.iter()), |row| {
        (0..width).map(|i| row.get_ref(i).map(|v| cell(&crate::fallback::from_sql(v)))).collect()
    })?;
    rows.collect()
}

/// A key value as a PostgreSQL literal of the column's type.
fn pg_literal(value: &Cell, ty: ScalarType) -> String {
    match (value, ty) {
        (Cell::Int(i), ScalarType::Bool) => (*i != 0).to_string(),
        (Cell::Int(i), _) => i.to_string(),
        (Cell::Float(f), _) => crate::fallback::pg_literal(&Datum::Float(*f)),
        (Cell::Text(t), _) => format!("'{}'", t.replace('\'', "''")),
        (Cell::Bytes(b), _) => format!("'\\x{}'::bytea", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        (Cell::Null, _) => "NULL".into(),
    }
}

/// The view's rows as cells, each repeated by its count.
pub(super) fn view_cells(view: &PublishedView) -> Vec<Vec<Cell>> {
    let mut out = Vec::with_capacity(view.rows.len() as usize);
    for (row, n) in view.rows.iter() {
        let cells: Vec<Cell> = row.unpack().iter().map(cell).collect();
        for _ in 0..n.max(0) {
            out.push(cells.clone());
        }
    }
    normalize(&mut out, &view.info);
    out
}

/// Puts the JSON columns of `rows` in canonical form (see [`canonical_json`]).
pub(super) fn normalize(rows: &mut [Vec<Cell>], info: &ViewInfo) {
    let json: Vec<usize> = (0..info.columns.len()).filter(|&i| info.columns[i].ty == ScalarType::Json).collect();
    if json.is_empty() {
        return;
    }
    for row in rows {
        for &i in &json {
            if let Some(Cell::Text(text)) = row.get_mut(i) {
                if let Ok(value) = serde_json::from_str::<Json>(text) {
                    *text = canonical_json(&value);
                }
            }
        }
    }
}

/// A JSON document's text with object members sorted and numbers written by
/// value (`1.0` as `1`), so that documents equal as JSON have equal text.
fn canonical_json(value: &Json) -> String {
    match value {
        Json::Object(members) => {
            let mut sorted: Vec<(&String, &Json)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> =
                sorted.iter().map(|(k, v)| format!("{}:{}", Json::String((*k).clone()), canonical_json(v))).collect();
            format!("{{{}}}", inner.join(","))
        }
        Json::Array(items) => format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
            (None, Some(f)) => format!("{f:e}"),
            (None, None) => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Matches both sides' rows by `key` and counts the differences into
/// `report`, keeping each differing key as a suspect.
pub(super) fn classify(key: &[usize], source: Vec<Vec<Cell>>, view: Vec<Vec<Cell>>, report: &mut ViewReport) {
    // Per key: the source's rows, the view's rows.
    type Sides = (Vec<Vec<Cell>>, Vec<Vec<Cell>>);
    let mut by_key: BTreeMap<String, Sides> = BTreeMap::new();
    for row in source {
        by_key.entry(key_text(key, &row)).or_default().0.push(row);
    }
    for row in view {
        by_key.entry(key_text(key, &row)).or_default().1.push(row);
    }
    for (expected, found) in by_key.into_values() {
        report.checked += expected.len().max(found.len()) as u64;
        let (missing, extra) = unmatched(&expected, &found);
        let sample = report.samples.len() < SAMPLES;
        match (missing.is_empty(), extra.is_empty()) {
            (true, true) => continue,
            (false, true) => {
                report.missing += missing.len() as u64;
                if sample {
                    report.samples.push(json!({ "missing": rows_json(&missing) }));
                }
            }
            (true, false) => {
                report.extra += extra.len() as u64;
                if sample {
                    report.samples.push(json!({ "extra": rows_json(&extra) }));
                }
            }
            (false, false) => {
                report.different += missing.len().max(extra.len()) as u64;
                if sample {
                    report.samples.push(json!({ "view": rows_json(&extra), "source": rows_json(&missing) }));
                }
            }
        }
        if report.suspects.len() < MAX_SUSPECTS {
            let any = expected.first().or(found.first()).cloned().unwrap_or_default();
            let key_cells = key.iter().map(|&k| any.get(k).cloned().unwrap_or(Cell::Null)).collect();
            report.suspects.push(Suspect { key: key_cells, source: expected, view: found });
        }
    }
}

/// The rows of `expected` no row of `found` matches, and the reverse.
fn unmatched(expected: &[Vec<Cell>], found: &[Vec<Cell>]) -> (Vec<Vec<Cell>>, Vec<Vec<Cell>>) {
    let mut left: Vec<Vec<Cell>> = found.to_vec();
    let mut missing = Vec::new();
    for e in expected {
        match left.iter().position(|f| same_row(e, f)) {
            Some(i) => {
                left.swap_remove(i);
            }
            None => missing.push(e.clone()),
        }
    }
    (missing, left)
}

fn same_rows(a: &[Vec<Cell>], b: &[Vec<Cell>]) -> bool {
    let (missing, extra) = unmatched(a, b);
    missing.is_empty() && extra.is_empty()
}

/// Rechecks `report`'s suspects in the reader's current snapshot against
/// `view` now: a key is confirmed when the source's rows and the view's
/// rows are both as they were and still differ. Returns the report of the
/// confirmed keys (checked rows as first counted).
pub(super) fn confirmed(
    reader: &mut SourceReader,
    select: &str,
    view: &PublishedView,
    report: ViewReport,
) -> Result<ViewReport, String> {
    let key = match_columns(&view.info);
    let wanted: HashSet<String> = report.suspects.iter().map(|s| key_text_of(&s.key)).collect();
    let mut now: HashMap<String, Vec<Vec<Cell>>> = HashMap::new();
    for row in view_cells(view) {
        let k = key_text(&key, &row);
        if wanted.contains(&k) {
            now.entry(k).or_default().push(row);
        }
    }
    let mut out = ViewReport { view: report.view, slot: report.slot, ..ViewReport::default() };
    let (mut source, mut found) = (Vec::new(), Vec::new());
    for suspect in report.suspects {
        let source_now = reader.rows(select, &view.info, Some((&key, &suspect.key)))?;
        let view_now = now.remove(&key_text_of(&suspect.key)).unwrap_or_default();
        if same_rows(&source_now, &suspect.source) && same_rows(&view_now, &suspect.view) {
            source.extend(source_now);
            found.extend(view_now);
        }
    }
    classify(&key, source, found, &mut out);
    out.checked = report.checked;
    Ok(out)
}

fn same_cell(a: &Cell, b: &Cell) -> bool {
    let close = |x: f64, y: f64| x == y || (x - y).abs() <= FLOAT_TOLERANCE * x.abs().max(y.abs()).max(1.0);
    match (a, b) {
        (Cell::Float(x), Cell::Float(y)) => close(*x, *y),
        (Cell::Int(i), Cell::Float(f)) | (Cell::Float(f), Cell::Int(i)) => close(*i as f64, *f),
        _ => a == b,
    }
}

fn same_row(a: &[Cell], b: &[Cell]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_cell(x, y))
}

/// The key columns of a row as text that equal keys share (an integral
/// float reads as the integer).
fn key_text(key: &[usize], row: &[Cell]) -> String {
    let cells: Vec<Cell> = key.iter().map(|&k| row.get(k).cloned().unwrap_or(Cell::Null)).collect();
    key_text_of(&cells)
}

fn key_text_of(cells: &[Cell]) -> String {
    let mut out = String::new();
    for c in cells {
        match c {
            Cell::Null => out.push('n'),
            Cell::Int(i) => out.push_str(&format!("i{i}")),
            Cell::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => out.push_str(&format!("i{}", *f as i64)),
            Cell::Float(f) => out.push_str(&format!("f{f:e}")),
            Cell::Text(t) => out.push_str(&format!("t{}:{t}", t.len())),
            Cell::Bytes(b) => out.push_str(&format!("b{b:?}")),
        }
        out.push('\u{0}');
    }
    out
}

fn rows_json(rows: &[Vec<Cell>]) -> Json {
    let value = |c: &Cell| match c {
        Cell::Null => Json::Null,
        Cell::Int(i) => json!(i),
        Cell::Float(f) => json!(f),
        Cell::Text(t) => json!(t),
        Cell::Bytes(b) => json!(format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())),
    };
    Json::Array(rows.iter().map(|row| Json::Array(row.iter().map(value).collect())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(values: &[i64]) -> Vec<Cell> {
        values.iter().map(|&v| Cell::Int(v)).collect()
    }

    /// Rows are matched by key: a key only in the source is missing, only
    /// in the view extra, in both with other values different; floats that
    /// differ in their last bits and integral floats against integers match.
    #[test]
    fn differences_are_classified_by_key() {
        let source = vec![ints(&[1, 10]), ints(&[2, 20]), ints(&[3, 30]), vec![Cell::Int(5), Cell::Float(0.3)]];
        let view = vec![ints(&[1, 10]), ints(&[2, 21]), ints(&[4, 40]), vec![Cell::Float(5.0), Cell::Float(0.1 + 0.2)]];
        let mut report = ViewReport::default();
        classify(&[0], source, view, &mut report);
        assert_eq!((report.missing, report.extra, report.different), (1, 1, 1), "{report:?}");
        assert_eq!(report.checked, 5);
        assert_eq!(report.samples.len(), 3);
        assert!(report.samples.contains(&json!({ "view": [[2, 21]], "source": [[2, 20]] })), "{:?}", report.samples);
        let keys: Vec<Vec<Cell>> = report.suspects.iter().map(|s| s.key.clone()).collect();
        assert_eq!(keys, vec![ints(&[2]), ints(&[3]), ints(&[4])]);
    }

    /// A multiset view (matched by whole rows) compares counts.
    #[test]
    fn multisets_compare_counts() {
        let source = vec![ints(&[1]), ints(&[1]), ints(&[2])];
        let view = vec![ints(&[1]), ints(&[2]), ints(&[2])];
        let mut report = ViewReport::default();
        classify(&[0], source, view, &mut report);
        assert_eq!((report.missing, report.extra, report.different), (1, 1, 0), "{report:?}");
        let mut report = ViewReport::default();
        classify(&[0], vec![ints(&[7])], vec![ints(&[7])], &mut report);
        assert_eq!((report.differences(), report.checked), (0, 1));
    }

    #[test]
    fn json_documents_compare_as_parsed_and_small_floats_absolutely() {
        let parse = |t: &str| canonical_json(&serde_json::from_str(t).unwrap());
        assert_eq!(
            parse(r#"{"b": [1.0, 2], "a": {"y": null, "x": "s"}}"#),
            parse(r#"{"a":{"x":"s","y":null},"b":[1,2.0]}"#)
        );
        assert_ne!(parse(r#"{"a": 1}"#), parse(r#"{"a": 2}"#));
        assert!(same_cell(&Cell::Float(1e-17), &Cell::Float(0.0)));
        assert!(!same_cell(&Cell::Float(1e-3), &Cell::Float(0.0)));
    }

    #[test]
    fn key_values_become_literals_of_their_column_type() {
        assert_eq!(pg_literal(&Cell::Int(1), ScalarType::Bool), "true");
        assert_eq!(pg_literal(&Cell::Int(-4), ScalarType::Int), "-4");
        assert_eq!(pg_literal(&Cell::Text("it's".into()), ScalarType::Date), "'it''s'");
        assert_eq!(key_text_of(&[Cell::Float(3.0)]), key_text_of(&[Cell::Int(3)]));
        assert_ne!(
            key_text_of(&[Cell::Text("a".into()), Cell::Text("b".into())]),
            key_text_of(&[Cell::Text("a\0b".into())])
        );
    }
}
