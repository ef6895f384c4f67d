//! [`Differential`]: a views file planned over a real SQLite schema, the
//! dataflow beside it, and the comparison of every view with SQLite's own
//! answer after every batch. The differential property tests (the central
//! one, TPC-H's subquery shapes, collations) drive it with random workloads.

use denorm_core::{Dataflow, Runtime, SourceBatch, ViewId};
use denorm_sql::{plan_views, ViewDef};
use denorm_types::{clock, temporal, Collation, Datum, Dialect, Position, ScalarType, Value};

use crate::compare::{normalize_json, same_rows};
use crate::reference::{reference_sql, BY_RULE};
use crate::sqlite::SqliteReference;
use crate::workload::{apply_workload, Op, TableSpec};

/// The engine beside a SQLite that holds the same rows.
#[allow(missing_debug_implementations)] // the dataflow has no Debug
pub struct Differential {
    pub reference: SqliteReference,
    pub dataflow: Dataflow,
    pub views: Vec<(ViewDef, ViewId)>,
    position: u64,
    /// The engine's clock (milliseconds since the Unix epoch) when a view
    /// reads it: frozen, and moved only by [`Differential::set_clock`].
    clock: Option<i64>,
}

impl Differential {
    /// `schema` applied to a new SQLite, every view of `views` (named `file`
    /// in errors) planned and added; panics listing the errors if one does
    /// not plan.
    pub fn new(schema: &str, views: &str, file: &str) -> Self {
        let reference = SqliteReference::new(schema).unwrap();
        let mut catalog = reference.catalog();
        let defs = plan_views(views, &catalog, Dialect::Sqlite).unwrap_or_else(|errors| {
            let text: Vec<String> = errors.iter().map(|e| e.render(file)).collect();
            panic!("views must plan:\n{}", text.join("\n"))
        });
        if defs.iter().any(|def| def.plan.reads_clock()) {
            catalog.add(clock::schema());
        }
        let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
        // Batches of insertions run in pieces of two changes, as a
        // snapshot runs in pieces (the result must not depend on it).
        dataflow.set_chunk_size(2);
        // Joins of different views reading one table by one key share one
        // arrangement, as the engine builds them.
        dataflow.share_arrangements(defs.iter().map(|def| &def.plan));
        let views = defs
            .into_iter()
            .map(|def| {
                let id =
                    dataflow.add_view(&def.name, &def.plan, def.key.columns.clone(), !def.key.proven_unique).unwrap();
                (def, id)
            })
            .collect();
        let mut harness = Differential { reference, dataflow, views, position: 0, clock: None };
        harness.dataflow.apply(&SourceBatch::default());
        harness
    }

    /// Runs `ops` on SQLite as one transaction, applies their changes as one
    /// batch, and compares every view.
    pub fn step(&mut self, specs: &[TableSpec], ops: &[Op]) -> Result<(), String> {
        let tables = apply_workload(&self.reference, specs, ops).unwrap();
        self.position += 1;
        let out = self.dataflow.apply(&SourceBatch { position: Position(self.position), tables });
        if !out.errors.is_empty() {
            return Err(format!("view errors: {:?}", out.errors));
        }
        if !out.rejected.is_empty() {
            return Err(format!("rejected: {:?}", out.rejected));
        }
        self.check()
    }

    /// Moves the engine's clock to `epoch_ms` (the old time retracted, the
    /// new one inserted, one batch, as the engine does before a scheduled
    /// refresh) and compares every view with SQLite's answer at that time.
    pub fn set_clock(&mut self, epoch_ms: i64) -> Result<(), String> {
        let mut changes = vec![(clock::row(epoch_ms), 1)];
        if let Some(old) = self.clock.replace(epoch_ms) {
            changes.push((clock::row(old), -1));
        }
        self.position += 1;
        let batch = SourceBatch { position: Position(self.position), tables: vec![(clock::TABLE.into(), changes)] };
        let out = self.dataflow.apply(&batch);
        if !out.errors.is_empty() {
            return Err(format!("view errors: {:?}", out.errors));
        }
        self.check()
    }

    /// Compares the empty views, then runs `ops` in batches of the given
    /// sizes (cycled), comparing every view after each.
    pub fn run(&mut self, specs: &[TableSpec], ops: &[Op], batch_sizes: &[usize]) -> Result<(), String> {
        self.check()?;
        let mut rest = ops;
        for size in batch_sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*size).clamp(1, rest.len()));
            rest = later;
            self.step(specs, now)?;
        }
        Ok(())
    }

    /// Every view equals SQLite's answer to its SELECT (or its reference
    /// query), column names included; JSON columns compare parsed, columns
    /// with a collation compare under it (which of the rows that tie under
    /// it a group shows is not determined by the rows present).
    pub fn check(&self) -> Result<(), String> {
        self.compare(&[])
    }

    /// As [`Differential::check`], but the views named in `exact` compare
    /// their collated columns exactly too: for workloads where every group
    /// of rows that tie under a collation spells its value one way, so the
    /// value SQLite shows is determined.
    pub fn check_exactly(&self, exact: &[&str]) -> Result<(), String> {
        self.compare(exact)
    }

    fn compare(&self, exact: &[&str]) -> Result<(), String> {
        for (def, id) in &self.views {
            let sql = reference_sql(&def.name, &def.select_sql);
            let sql = match self.clock {
                Some(ms) => at_time(sql, ms),
                None => sql.to_string(),
            };
            let (names, mut want) = self.reference.query(&sql).unwrap();
            let ours: Vec<&str> = def.columns.iter().map(|c| c.name.as_str()).collect();
            if ours != names {
                return Err(format!("column names of {}: {ours:?} vs SQLite's {names:?}", def.name));
            }
            let mut got = Vec::new();
            for (row, diff) in self.dataflow.view_rows(*id) {
                let values: Vec<Value> = row.iter().map(Datum::into_owned).collect();
                got.extend(std::iter::repeat_n(values, usize::try_from(diff).unwrap()));
            }
            let json: Vec<usize> = (0..def.columns.len()).filter(|&c| def.columns[c].ty == ScalarType::Json).collect();
            normalize_json(&mut got, &json);
            normalize_json(&mut want, &json);
            let by_rule = BY_RULE.contains(&def.name.as_str());
            let collations: Vec<Option<Collation>> = match by_rule || exact.contains(&def.name.as_str()) {
                true => vec![None; def.columns.len()],
                false => def.columns.iter().map(|c| c.collation).collect(),
            };
            under_collations(&mut got, &collations);
            under_collations(&mut want, &collations);
            if by_rule {
                with_classes(&mut got);
                with_classes(&mut want);
            }
            if let Err(m) = same_rows(got, want) {
                return Err(format!("view {} differs after batch {}: {m}", def.name, self.position));
            }
        }
        Ok(())
    }
}

/// Replaces the text in the columns that carry a collation by its key.
fn under_collations(rows: &mut [Vec<Value>], collations: &[Option<Collation>]) {
    for row in rows {
        for (value, collation) in row.iter_mut().zip(collations) {
            if let (Datum::Text(t), Some(c)) = (&*value, collation) {
                *value = Value::from(c.key(t).into_owned());
            }
        }
    }
}

/// Appends each value's storage class to its row, so that rows compare
/// spelling for spelling (`1` is not `1.0` here, as it is elsewhere).
fn with_classes(rows: &mut [Vec<Value>]) {
    for row in rows {
        let classes: Vec<Value> = row
            .iter()
            .map(|v| match v {
                Datum::Int(_) => "integer",
                Datum::Float(_) => "real",
                Datum::Text(_) => "text",
                Datum::Blob(_) => "blob",
                Datum::Null => "null",
                _ => "other",
            })
            .map(Value::from)
            .collect();
        row.extend(classes);
    }
}

/// `sql` with the current time frozen at `epoch_ms`, as SQLite has no way
/// to fix `'now'`: `'now'` becomes the time's text to the millisecond (which
/// SQLite reads as it reads `'now'`), `CURRENT_TIMESTAMP`, `CURRENT_DATE`
/// and `CURRENT_TIME` their text, a date function without a time value
/// (`unixepoch()`) that text as its argument. The clock views of the
/// differential tests write these spellings.
pub fn at_time(sql: &str, epoch_ms: i64) -> String {
    let days = epoch_ms.div_euclid(86_400_000);
    let ms = epoch_ms.rem_euclid(86_400_000);
    let (year, month, day) = temporal::civil_from_days(days);
    let date = format!("{year:04}-{month:02}-{day:02}");
    let time = format!("{:02}:{:02}:{:02}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    let now = format!("'{date} {time}.{:03}'", ms % 1000);
    let mut sql = sql.replace("'now'", &now);
    sql = sql.replace("CURRENT_TIMESTAMP", &format!("'{date} {time}'"));
    sql = sql.replace("CURRENT_DATE", &format!("'{date}'"));
    sql = sql.replace("CURRENT_TIME", &format!("'{time}'"));
    for f in ["date", "time", "datetime", "julianday", "unixepoch"] {
        sql = sql.replace(&format!("{f}()"), &format!("{f}({now})"));
    }
    sql
}
