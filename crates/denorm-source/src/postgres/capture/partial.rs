//! [`PgCapture::follow_reading`]: some captured tables read again (added,
//! or recreated with another shape, while denorm was down), the others
//! followed from the kept slot — without dropping the slot or reading the
//! other tables.
//!
//! ```text
//!  kept slot s, state kept at P        prepare_stream(P): START_REPLICATION deferred
//!  second replication connection:      CREATE_REPLICATION_SLOT s_r<pid> TEMPORARY LOGICAL pgoutput
//!                                      EXPORT_SNAPSHOT → consistent point C ≥ P, snapshot N
//!  ordinary connection:                BEGIN REPEATABLE READ; SET TRANSACTION SNAPSHOT N;
//!                                      COPY the fresh tables; COMMIT      (the temporary slot ends
//!                                                                         with its connection)
//!  kept slot's stream from P, cut at C: a transaction whose commit ends at or before C
//!                                      loses its fresh tables' changes (they are in the copy)
//!                                      and ignores their earlier shapes (Relation messages);
//!                                      the other tables' changes in (P, C] are gathered
//!  until a keepalive at or past C, or a batch ending past C (its transactions past
//!  C keep the fresh tables' changes: they follow the rows read)
//!  → PartialRead { position, changes in (P, position], fresh tables' rows at C }
//! ```
//!
//! Why the copy and the stream meet exactly: the exported snapshot sees
//! every transaction whose commit record lies before C and none after (it
//! is the snapshot a slot created at C starts from, as in
//! [`PgCapture::snapshot`]), and C is a record boundary, so "commit ends at
//! or before C" selects the same transactions. A keepalive's WAL end W (no
//! transaction open) means every commit at or before W was sent (module
//! documentation of [`super`]): past C, the gathered changes are complete.
//!
//! Falls back (the caller snapshots everything) when the kept slot is gone,
//! no slot or WAL sender is free for the temporary slot, or a kept table was
//! truncated before C (a TRUNCATE cannot be merged into the gathered
//! changes).

use std::time::Duration;

use denorm_types::{Position, Row};

use super::{PgCapture, Poll};
use crate::postgres::{format_lsn, parse_lsn, ChangeBatch};
use crate::SourceError;

/// Which changes the stream drops while following up to the point the
/// fresh tables were read at.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cut {
    /// The temporary slot's consistent point: the fresh tables' rows hold
    /// every transaction whose commit ends at or before it.
    upto: u64,
    /// The fresh tables: indices into `PgCapture::tables`, and names.
    indices: Vec<usize>,
    names: Vec<String>,
}

impl Cut {
    /// Whether table `table` in the transaction whose commit record starts
    /// at `final_lsn` is in the rows read.
    pub(super) fn covers(&self, table: usize, final_lsn: u64) -> bool {
        final_lsn < self.upto && self.indices.contains(&table)
    }

    /// Removes the fresh tables from a transaction committed at or before
    /// the cut: its effect on them is in the rows read.
    pub(super) fn drop_read_tables(&self, batch: &mut ChangeBatch) {
        if batch.position.0 > self.upto {
            return;
        }
        let fresh = |name: &String| self.names.contains(name);
        batch.tables.retain(|(name, _)| !fresh(name));
        batch.truncated.retain(|name| !fresh(name));
        batch.commits.retain(|(name, _)| !fresh(name));
        batch.undecodable.retain(|u| !fresh(&u.table));
    }
}

/// Tables read: name and rows.
type Tables = Vec<(String, Vec<Row>)>;

/// What [`PgCapture::follow_reading`] read.
#[derive(Debug)]
pub struct PartialRead {
    /// Where the stream continues after: at or past the cut.
    pub position: Position,
    /// The committed changes in (kept position, `position`]: the other
    /// tables', and the fresh tables' past the cut (`None`: there were none).
    pub changes: Option<ChangeBatch>,
    /// The fresh tables' rows at the cut (apply `changes` after them).
    pub tables: Tables,
}

/// How long one poll waits while following up to the cut (keepalives are
/// asked for every few milliseconds meanwhile).
const FOLLOW_WAIT: Duration = Duration::from_millis(200);

impl PgCapture {
    /// Instead of [`follow_from`](Self::follow_from): the captured tables
    /// as of `at` are kept except `fresh`; reads those in a snapshot
    /// exported at a point C of the stream and gathers the other tables'
    /// changes from the kept slot up to C (see the module documentation).
    /// `Ok(Err(reason))`: cannot; snapshot everything instead.
    pub fn follow_reading(
        &mut self,
        at: Position,
        fresh: &[String],
    ) -> Result<Result<PartialRead, String>, SourceError> {
        let result = self.follow_reading_inner(at, fresh);
        self.cut = None;
        result
    }

    fn follow_reading_inner(
        &mut self,
        at: Position,
        fresh: &[String],
    ) -> Result<Result<PartialRead, String>, SourceError> {
        let mut indices = Vec::new();
        for name in fresh {
            match self.tables.iter().position(|t| t.name.eq_ignore_ascii_case(name)) {
                Some(i) => indices.push(i),
                None => return Ok(Err(format!("table {name} is not captured"))),
            }
        }
        if let Err(reason) = self.follow_from(at)?.map_or(Ok(()), Err) {
            return Ok(Err(reason));
        }
        if indices.is_empty() {
            // Tables only dropped from capture: nothing to read.
            return Ok(Ok(PartialRead { position: self.position, changes: None, tables: Vec::new() }));
        }
        let names = indices.iter().map(|&i| self.tables[i].name.clone()).collect();
        let (upto, tables) = match self.read_at_temporary_slot(&indices)? {
            Ok(read) => read,
            Err(reason) => return Ok(Err(reason)),
        };
        if upto < self.position {
            return Ok(Err(format!(
                "the temporary slot's point {} lies before the kept slot's {}",
                format_lsn(upto),
                format_lsn(self.position)
            )));
        }
        self.cut = Some(Cut { upto: upto.0, indices, names });
        let changes = match self.follow_to_cut(upto)? {
            Ok(changes) => changes,
            Err(reason) => return Ok(Err(reason)),
        };
        Ok(Ok(PartialRead { position: self.position, changes, tables }))
    }

    /// Creates a temporary slot with an exported snapshot on a replication
    /// connection of its own and reads the tables `indices` in it; the
    /// slot goes with the connection. Returns its consistent point.
    fn read_at_temporary_slot(&mut self, indices: &[usize]) -> Result<Result<(Position, Tables), String>, SourceError> {
        let unavailable = |e: &super::WireError| matches!(e.code(), Some("53400" | "53300"));
        let mut temporary = match self.replication_connection() {
            Ok(conn) => conn,
            Err(SourceError::PostgresReplication { source, .. }) if unavailable(&source) => {
                return Ok(Err(format!("no WAL sender is free for a temporary slot ({source})")))
            }
            Err(e) => return Err(e),
        };
        let name = temporary_slot_name(&self.names.slot, std::process::id());
        let create = format!("CREATE_REPLICATION_SLOT {name} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT");
        let rows = match temporary.simple_query(&create) {
            Ok(rows) => rows,
            Err(e) if unavailable(&e) => {
                return Ok(Err(format!("no replication slot is free for a temporary one ({e})")))
            }
            Err(e) => return Err(self.wire_error("creating a temporary replication slot")(e)),
        };
        let (upto, snapshot_name) = rows
            .first()
            .and_then(|row| Some((parse_lsn(row.get(1)?.as_deref()?)?, row.get(2)?.clone()?)))
            .ok_or_else(|| self.protocol_error("CREATE_REPLICATION_SLOT returned no consistent point"))?;
        let tables = self.read_snapshot(&snapshot_name, indices, &mut |_| {})?;
        drop(temporary);
        Ok(Ok((upto, tables)))
    }

    /// Polls the kept slot (the fresh tables cut at `upto`) until the
    /// stream is complete up to `upto`, gathering the other tables' changes.
    fn follow_to_cut(&mut self, upto: Position) -> Result<Result<Option<ChangeBatch>, String>, SourceError> {
        let mut gathered: Option<ChangeBatch> = None;
        let wanted = move || Some(upto);
        loop {
            match self.poll_wanting(FOLLOW_WAIT, &wanted)? {
                Poll::Idle => {}
                Poll::Progress(p) if p >= upto => return Ok(Ok(gathered)),
                Poll::Progress(_) => {}
                Poll::Changes(batch) if !batch.truncated.is_empty() => {
                    return Ok(Err(format!(
                        "{} truncated at {} while denorm was down",
                        batch.truncated.join(", "),
                        format_lsn(batch.position)
                    )))
                }
                Poll::Changes(batch) => {
                    // Past the cut, the fresh tables' changes are kept: they
                    // follow the rows read.
                    let past = batch.position > upto;
                    match gathered.as_mut() {
                        Some(g) => g.absorb(batch),
                        None => gathered = Some(batch),
                    }
                    if past {
                        return Ok(Ok(gathered));
                    }
                }
                Poll::SchemaChanged { tables } => {
                    return Ok(Err(format!("{} changed shape while following the stream", tables.join(", "))))
                }
            }
        }
    }
}

/// `<slot>_r<pid>`, within PostgreSQL's 63 bytes of a slot name (slot
/// names are validated lower-case ASCII).
fn temporary_slot_name(slot: &str, pid: u32) -> String {
    format!("{}_r{pid}", &slot[..slot.len().min(50)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Diff;

    fn batch(position: u64, tables: &[&str]) -> ChangeBatch {
        let rows: Vec<(Row, Diff)> = Vec::new();
        ChangeBatch {
            position: Position(position),
            head: Position(position),
            committed_at: 0.0,
            commits: tables.iter().map(|t| (t.to_string(), 0.0)).collect(),
            transactions: 1,
            truncated: tables.iter().filter(|t| t.starts_with('t')).map(|t| t.to_string()).collect(),
            tables: tables.iter().map(|t| (t.to_string(), rows.clone())).collect(),
            undecodable: Vec::new(),
        }
    }

    fn cut() -> Cut {
        Cut { upto: 100, indices: vec![1], names: vec!["fresh".into()] }
    }

    /// At or before the cut the fresh table's changes are dropped (they are
    /// in the rows read), after it they are kept; other tables always.
    #[test]
    fn the_cut_drops_only_fresh_changes_at_or_before_it() {
        let mut at_cut = batch(100, &["fresh", "kept"]);
        cut().drop_read_tables(&mut at_cut);
        assert_eq!(at_cut.tables.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), vec!["kept"]);
        assert_eq!(at_cut.commits.len(), 1);
        let mut after = batch(101, &["fresh", "kept"]);
        cut().drop_read_tables(&mut after);
        assert_eq!(after.tables.len(), 2);
        let mut truncated = batch(50, &["tfresh"]);
        let c = Cut { names: vec!["tfresh".into()], ..cut() };
        c.drop_read_tables(&mut truncated);
        assert!(truncated.truncated.is_empty() && truncated.tables.is_empty());
    }

    /// A commit record starting before the cut ends at or before it.
    #[test]
    fn covers_fresh_tables_of_transactions_before_the_cut() {
        assert!(cut().covers(1, 99));
        assert!(!cut().covers(1, 100));
        assert!(!cut().covers(0, 99));
    }

    #[test]
    fn temporary_slot_names_fit() {
        assert_eq!(temporary_slot_name("denorm", 42), "denorm_r42");
        let long = "a".repeat(63);
        assert!(temporary_slot_name(&long, u32::MAX).len() <= 63);
    }
}
