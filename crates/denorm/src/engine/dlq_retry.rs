//! `denorm dlq retry` / `POST /dlq/{id}/retry`: a dead-lettered row is read
//! again from the source and, if it now decodes, applied — exactly once.
//!
//! ```text
//!  request (between batches)
//!    └─ the entry's key (`id=2`, `a='x',b=3`) parsed        no key → kept: "names no key"
//!  read   ChangeSource::read_key(table, key) → rows at L   cannot decode → kept with the new reason
//!         (SQLite: one read transaction, L = log head;
//!          PostgreSQL: REPEATABLE READ, L = WAL insert LSN)
//!  wait   until the engine's position P ≥ L                 (want(L): the stream reports progress)
//!         a batch applied since the read changed the key → read again (at most PATIENCE)
//!  apply  at P: -(stored input rows of the key) + (rows read), through the state directory and
//!         the dataflow like a batch; every entry of the same table and key is removed
//! ```
//!
//! Why exactly once: the rows read hold every change at or below L and none
//! above. If no change of the key was applied between the read and P, the
//! source's rows for the key are the same at L and at P, and the correction
//! sets the input's rows for the key to them at P: a later change of the row
//! then retracts exactly what was applied. A change of the key arriving
//! after the read (a race) is detected (`saw`) and the row is read again
//! instead of applying a stale image. On SQLite, the read is normally at
//! the engine's own position (L = P), so it applies at once. Needs the
//! state directory (the stored input rows of the key are what the correction
//! retracts); without it the entry is kept with that reason.

use std::time::{Duration, Instant};

use denorm_serve::dlq::DeadLetter;
use denorm_source::{Batch, ChangeSource, KeyRead};
use denorm_types::{consolidate, Catalog, Datum, Diff, Position, Row, Value};
use tracing::{info, warn};

use super::flow::Flow;
use super::{dead, error_chain, Engine, EngineError};
use crate::state_dir::StateDir;

/// How long a retry waits for a moment at which its row did not change
/// between the read and the engine's position.
const PATIENCE: Duration = Duration::from_secs(30);

/// The retries asked for and not finished.
#[derive(Debug, Default)]
pub(crate) struct Retries {
    jobs: Vec<Job>,
    /// This module asked the publisher for a position (`want`).
    wanting: bool,
}

#[derive(Debug)]
struct Job {
    id: u64,
    table: String,
    key: Key,
    since: Instant,
    /// The last read, when one is in hand.
    read: Option<KeyRead>,
    /// A batch applied since the read changed the key.
    touched: bool,
}

/// A dead letter's key: per key column, its name, index in the table and
/// value as the entry shows it (the datum's SQL-literal display) and as
/// parsed for the source's query.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    text: String,
    columns: Vec<(String, usize, String, Value)>,
}

impl Key {
    /// Whether `row` (full width) has this key.
    fn matches(&self, row: &Row) -> bool {
        self.columns.iter().all(|(_, i, literal, _)| *i < row.len() && row.get(*i).to_string() == *literal)
    }

    fn values(&self) -> Vec<(String, Value)> {
        self.columns.iter().map(|(name, _, _, value)| (name.clone(), value.clone())).collect()
    }
}

impl Retries {
    /// A batch is about to be applied: the retries whose read it can make
    /// stale (it changes, truncates or dead-letters their key) read again.
    pub(crate) fn saw(&mut self, batch: &Batch) {
        for job in self.jobs.iter_mut().filter(|j| j.read.is_some()) {
            let truncated = batch.truncated.iter().any(|t| t.eq_ignore_ascii_case(&job.table));
            let changed = batch
                .tables
                .iter()
                .filter(|(t, _)| t.eq_ignore_ascii_case(&job.table))
                .any(|(_, changes)| changes.iter().any(|(row, _)| job.key.matches(row)));
            let dead =
                batch.undecodable.iter().any(|u| u.table.eq_ignore_ascii_case(&job.table) && u.key == job.key.text);
            job.touched |= truncated || changed || dead;
        }
    }
}

/// What became of one retry at this batch boundary.
enum Outcome {
    /// Waiting for the engine to reach the read's position.
    Wait,
    Applied(usize),
    Kept(String),
}

impl Engine {
    /// Takes the retries asked for (`asked`: entry ids) and moves every
    /// retry on: read, wait, apply or keep (see the module documentation).
    pub(super) fn dlq_retries(
        &mut self,
        asked: Vec<u64>,
        catalog: &Catalog,
        capture: &mut dyn ChangeSource,
        flow: &mut Flow,
        mut state: Option<&mut StateDir>,
    ) -> Result<(), EngineError> {
        for id in asked {
            let Some(letter) = self.publisher.dead_letters().get(id) else { continue };
            if self.retries.jobs.iter().any(|j| j.id == id) {
                continue;
            }
            match parse_key(&letter.key, catalog.get(&letter.table).map(|t| &t.columns[..]).unwrap_or(&[])) {
                Ok(key) => self.retries.jobs.push(Job {
                    id,
                    table: letter.table.clone(),
                    key,
                    since: Instant::now(),
                    read: None,
                    touched: false,
                }),
                Err(reason) => keep(&self.publisher, state.as_deref_mut(), letter, &reason)?,
            }
        }
        let mut wanted: Option<Position> = None;
        let jobs = std::mem::take(&mut self.retries.jobs);
        for mut job in jobs {
            let outcome = self.step(&mut job, capture, flow, state.as_deref_mut())?;
            let Some(letter) = self.publisher.dead_letters().get(job.id) else { continue };
            match outcome {
                Outcome::Wait => {
                    wanted = wanted.max(job.read.as_ref().map(|r| r.position));
                    self.retries.jobs.push(job);
                }
                Outcome::Applied(changes) => {
                    let removed = remove_key(&self.publisher, state.as_deref_mut(), &letter)?;
                    info!(id = job.id, table = %job.table, key = %job.key.text, changes, removed, at = %capture.describe(flow.position), "dead-letter retry applied the row as the source holds it; its entries are removed");
                }
                Outcome::Kept(reason) => {
                    let reason = format!("retried at {}: {reason}", capture.describe(flow.position));
                    warn!(id = job.id, table = %job.table, key = %job.key.text, %reason, "dead-letter retry kept the entry");
                    keep(&self.publisher, state.as_deref_mut(), letter, &reason)?;
                }
            }
        }
        if wanted.is_some() || self.retries.wanting {
            self.publisher.want(wanted);
            self.retries.wanting = wanted.is_some();
        }
        Ok(())
    }

    /// One retry at this batch boundary: reads (again) when it has no read
    /// or the read may be stale, applies once the engine reached it.
    fn step(
        &mut self,
        job: &mut Job,
        capture: &mut dyn ChangeSource,
        flow: &mut Flow,
        state: Option<&mut StateDir>,
    ) -> Result<Outcome, EngineError> {
        let Some(state) = state else {
            return Ok(Outcome::Kept(
                "a retry needs the state directory (the stored input rows of the key); run with [engine] state_dir"
                    .into(),
            ));
        };
        if job.since.elapsed() > PATIENCE {
            return Ok(Outcome::Kept(format!(
                "the row kept changing for {} s: no moment was found at which the read was current; try again",
                PATIENCE.as_secs()
            )));
        }
        if job.read.is_none() || job.touched {
            match capture.read_key(&job.table, &job.key.values()) {
                Ok(read) => {
                    job.read = Some(read);
                    job.touched = false;
                }
                Err(e) => {
                    return Ok(Outcome::Kept(format!("the row read again cannot be applied: {}", error_chain(&e))))
                }
            }
        }
        let Some(read) = &job.read else { return Ok(Outcome::Wait) };
        if read.position > flow.position {
            return Ok(Outcome::Wait);
        }
        let stored = state.rows_of(std::slice::from_ref(&job.table))?;
        let mut changes: Vec<(Row, Diff)> = stored
            .tables
            .into_iter()
            .flat_map(|(_, rows)| rows)
            .filter(|(row, _)| job.key.matches(row))
            .map(|(row, count)| (row, -count))
            .chain(read.rows.iter().map(|row| (row.clone(), 1)))
            .collect();
        consolidate(&mut changes);
        let applied = changes.len();
        if !changes.is_empty() {
            let tables = vec![(job.table.clone(), changes)];
            state.apply(flow.position, &[], &tables)?;
            self.follow(flow, Batch { position: flow.position, head: flow.position, tables, ..Batch::default() });
        }
        Ok(Outcome::Applied(applied))
    }
}

/// Keeps `letter` with the retry's reason (counted in `retries`), in the
/// list and the state directory.
fn keep(
    publisher: &denorm_serve::Publisher,
    state: Option<&mut StateDir>,
    mut letter: DeadLetter,
    reason: &str,
) -> Result<(), EngineError> {
    letter.reason = reason.to_string();
    letter.retries += 1;
    if let Some(state) = state {
        state.put_dead_letter(&letter)?;
    }
    publisher.dead_letters().replace(letter);
    Ok(())
}

/// Removes every entry of `letter`'s table and key (the row is now as the
/// source holds it); how many.
fn remove_key(
    publisher: &denorm_serve::Publisher,
    mut state: Option<&mut StateDir>,
    letter: &DeadLetter,
) -> Result<usize, EngineError> {
    let dlq = publisher.dead_letters();
    let same: Vec<u64> =
        dlq.list().into_iter().filter(|l| l.table == letter.table && l.key == letter.key).map(|l| l.id).collect();
    for id in &same {
        dead::remove(dlq, state.as_deref_mut(), *id)?;
    }
    Ok(same.len())
}

/// Parses an entry's key (`id=2`, `a='o''k',b=3`: `name=literal` per key
/// column, joined by `,`, as both sources write them) against the table's
/// columns; why not when the entry names no key (a whole row, a retraction).
fn parse_key(text: &str, columns: &[denorm_types::ColumnSchema]) -> Result<Key, String> {
    let no_key = || format!("the entry names no key ({text:?}); it cannot be read again, only dropped");
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').ok_or_else(no_key)?;
        let index = columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)).ok_or_else(no_key)?;
        let (literal, after) = split_literal(after).ok_or_else(no_key)?;
        let value = literal_value(literal).ok_or_else(no_key)?;
        if literal.contains('\u{fffd}') {
            return Err(format!("the key {text:?} holds text that is not UTF-8; it cannot be looked up"));
        }
        out.push((columns[index].name.clone(), index, literal.to_string(), value));
        rest = match after.strip_prefix(',') {
            Some(more) if !more.is_empty() => more,
            None if after.is_empty() => after,
            _ => return Err(no_key()),
        };
    }
    if out.is_empty() {
        return Err(no_key());
    }
    Ok(Key { text: text.to_string(), columns: out })
}

/// The literal at the start of `text` and what follows it: a quoted string
/// (`''` inside), `X'…'`, or everything up to the next `,`.
fn split_literal(text: &str) -> Option<(&str, &str)> {
    let quoted_from = if text.starts_with('\'') {
        Some(0)
    } else if text.starts_with("X'") {
        Some(1)
    } else {
        None
    };
    match quoted_from {
        Some(open) => {
            let bytes = text.as_bytes();
            let mut i = open + 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return Some(text.split_at(i + 1));
                }
                i += 1;
            }
            None
        }
        None => Some(text.split_at(text.find(',').unwrap_or(text.len()))),
    }
}

/// The value a literal shows (`Datum`'s display): NULL, true/false, an
/// integer, a float, `'text'`, `X'hex'`; a number beyond i64/f64's exact
/// display is kept as text (the source coerces it to the column's type).
fn literal_value(literal: &str) -> Option<Value> {
    if let Some(hex) = literal.strip_prefix("X'").and_then(|l| l.strip_suffix('\'')) {
        let bytes: Option<Vec<u8>> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
        return bytes.map(|b| Datum::Blob(b.into()));
    }
    if let Some(inner) = literal.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')) {
        return Some(Datum::Text(inner.replace("''", "'").into()));
    }
    match literal {
        "NULL" => return Some(Datum::Null),
        "true" => return Some(Datum::Bool(true)),
        "false" => return Some(Datum::Bool(false)),
        _ => {}
    }
    if let Ok(i) = literal.parse::<i64>() {
        return Some(Datum::Int(i));
    }
    match literal.parse::<f64>() {
        Ok(f) if format!("{f:?}") == literal => Some(Datum::Float(f)),
        _ if !literal.is_empty() && literal.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => {
            Some(Datum::Text(literal.to_string().into()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::{ColumnSchema, ScalarType};

    fn columns(names: &[&str]) -> Vec<ColumnSchema> {
        names.iter().map(|n| ColumnSchema { name: n.to_string(), ty: ScalarType::Int, nullable: true }).collect()
    }

    /// Keys as both sources write them parse back to the values whose
    /// display they are, and match exactly the rows holding them; anything
    /// else is refused with a reason.
    #[test]
    fn keys_parse_back_and_match_their_rows() {
        let table = columns(&["id", "name", "v", "b"]);
        let values = [Datum::Int(-2), Datum::text("o'k, x"), Datum::Float(1.5), Datum::Blob(vec![0xab, 1].into())];
        let text: Vec<String> = ["id", "name", "v", "b"].iter().zip(&values).map(|(n, v)| format!("{n}={v}")).collect();
        let key = parse_key(&text.join(","), &table).unwrap();
        let parsed: Vec<&Value> = key.columns.iter().map(|(_, _, _, v)| v).collect();
        assert_eq!(parsed, values.iter().collect::<Vec<_>>());
        assert_eq!(key.columns.iter().map(|c| c.1).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        let row = Row::pack(values.clone());
        assert!(key.matches(&row));
        let other = Row::pack([Datum::Int(-2), Datum::text("o'k"), Datum::Float(1.5), Datum::Null]);
        assert!(!key.matches(&other));

        let id = parse_key("ID=7", &table).unwrap();
        assert_eq!(id.values(), vec![("id".to_string(), Datum::Int(7))]);
        assert_eq!(parse_key("v=NULL", &table).unwrap().values()[0].1, Datum::Null);
        let big = parse_key("v=123456789012345678901234.5", &table).unwrap();
        assert_eq!(big.values()[0].1, Datum::text("123456789012345678901234.5"), "kept as text");
        for refused in
            ["", "3,'c',NULL", "Row { x }", "nope=1", "id=", "id='open", "id=1,", "id=1;drop", "name='\u{fffd}'"]
        {
            assert!(parse_key(refused, &table).is_err(), "{refused:?} is refused");
        }
    }
}
