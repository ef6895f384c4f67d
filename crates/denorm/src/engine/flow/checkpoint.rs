//! The flow's part of a checkpoint: its one shared dataflow and the
//! publishing slot of each of its views, then (file format 2) each view
//! refreshed on a schedule: its slot, its own dataflow (as of its last
//! refresh), the changes it gathered since, and the time left until its
//! next refresh. Flows with views added by a live reload (dataflows of
//! their own, rebuilt as one at the next session) or failed views are not
//! saved. A feed view's parts are views of the dataflow like any other
//! (their published rows are saved by the engine, per part).
//!
//! **Views changed since** (file format 3, dataflow state version 2):
//! [`SavedFlow`] reads the checkpoint node by node; [`Flow::slots_held`]
//! says which of this flow's views it holds wholly (same name, same kind
//! — on change or scheduled — and every node's structure found), and
//! [`Flow::load_partial`] loads those from it and the others from a flow of
//! just them built from the input rows at the checkpoint (a node shared by
//! a held and a rebuilt view loads once, from the checkpoint).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use denorm_core::checkpoint::{CheckpointError, Reader, Saved, Writer};
use denorm_types::{Diff, Position, Row};

use super::Flow;

impl Flow {
    /// Appends the flow's state to `w`.
    pub fn save_checkpoint(&self, w: &mut Writer) -> Result<(), CheckpointError> {
        if !self.added.is_empty() || !self.failed.is_empty() {
            return Err(CheckpointError::Unsupported("views added by a reload, or failed".into()));
        }
        w.count(self.slots.len());
        for &(slot, part) in &self.slots {
            w.u64(slot as u64);
            w.u64(part as u64);
        }
        self.main.save_checkpoint(w)?;
        let now = Instant::now();
        w.count(self.scheduled.len());
        for s in &self.scheduled {
            w.u64(s.slot as u64);
            s.dataflow.save_checkpoint(w)?;
            w.count(s.pending.len());
            for (table, changes) in &s.pending {
                w.str(table);
                w.count(changes.len());
                for (row, diff) in changes {
                    w.row(row);
                    w.i64(*diff);
                }
            }
            w.u64(s.due.saturating_duration_since(now).as_millis() as u64);
        }
        Ok(())
    }

    /// Loads what [`Flow::save_checkpoint`] wrote into a new flow (built
    /// from the same views, no batch applied); returns its position, which
    /// becomes the flow's. `scheduled`: the file holds the scheduled views'
    /// section (format 2; format 1 files were written only without them).
    pub fn load_checkpoint(&mut self, r: &mut Reader<'_>, scheduled: bool) -> Result<Position, CheckpointError> {
        if !scheduled && !self.scheduled.is_empty() {
            return Err(CheckpointError::Unsupported("views refreshed on a schedule (an older file)".into()));
        }
        let n = r.count()?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            slots.push((r.u64()? as usize, r.u64()? as usize));
        }
        if slots != self.slots {
            return Err(CheckpointError::Mismatch("the views are published in other slots".into()));
        }
        let position = self.main.load_checkpoint(r)?;
        if scheduled {
            self.load_scheduled(r)?;
        }
        self.position = position;
        Ok(position)
    }

    fn load_scheduled(&mut self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        if r.count()? != self.scheduled.len() {
            return Err(CheckpointError::Mismatch("other views refreshed on a schedule".into()));
        }
        let now = Instant::now();
        for s in &mut self.scheduled {
            if r.u64()? != s.slot as u64 {
                return Err(CheckpointError::Mismatch("the scheduled views are published in other slots".into()));
            }
            s.dataflow.load_checkpoint(r)?;
            s.pending.clear();
            for _ in 0..r.count()? {
                let table = r.str()?.to_string();
                s.pending.insert(table, r.changes()?);
            }
            s.pending_changes = s.pending.values().map(Vec::len).sum();
            s.due = now + Duration::from_millis(r.u64()?).min(s.every);
        }
        Ok(())
    }

    /// Per publishing slot of this flow, the checkpoint's slot of the same
    /// view when `saved` holds its whole state: the same name (`old_names`
    /// are the checkpoint's slot names, `names` this flow's), refreshed the
    /// same way, with the same parts, every node found. The slots not in
    /// it are to be rebuilt from the input rows.
    pub fn slots_held(&self, saved: &SavedFlow<'_>, old_names: &[String], names: &[String]) -> BTreeMap<usize, usize> {
        let old_slot = |slot: usize| names.get(slot).and_then(|name| old_names.iter().position(|n| n == name));
        let mut held = BTreeMap::new();
        let main_held = self.main.views_held(&[&saved.main]);
        let mut main: BTreeMap<usize, bool> = BTreeMap::new();
        for (&(slot, part), ok) in self.slots.iter().zip(main_held) {
            let was = old_slot(slot).is_some_and(|old| saved.slots.contains(&(old, part)));
            *main.entry(slot).or_insert(true) &= ok && was;
        }
        for (slot, ok) in main {
            let parts = |slots: &[(usize, usize)], s: usize| slots.iter().filter(|(x, _)| *x == s).count();
            let old = old_slot(slot).filter(|&old| parts(&saved.slots, old) == parts(&self.slots, slot));
            if let (true, Some(old)) = (ok, old) {
                held.insert(slot, old);
            }
        }
        for s in &self.scheduled {
            let Some(old) = old_slot(s.slot) else { continue };
            let Some(was) = saved.scheduled.iter().find(|w| w.slot == old) else { continue };
            if s.dataflow.views_held(&[&was.dataflow]).iter().all(|&ok| ok) && was.views == s.parts.len() {
                held.insert(s.slot, old);
            }
        }
        held
    }

    /// Loads a new flow (no batch applied) from `saved`, for the slots of
    /// `held` (see [`Flow::slots_held`]), and from `rebuilt` — a flow of
    /// the other views, in the same slots, that applied the input rows at
    /// the checkpoint's position — for the rest: its main dataflow's nodes
    /// (a node held by both loads from `saved`) and its scheduled views
    /// whole. `at`: the checkpoint's (the flow's) position, which the
    /// rebuilt flow must be at (the main dataflow's own position, its last
    /// batch's, may be older). Returns the main dataflow's position, which
    /// becomes the flow's, as [`Flow::load_checkpoint`] does.
    pub fn load_partial(
        &mut self,
        saved: &SavedFlow<'_>,
        held: &BTreeMap<usize, usize>,
        rebuilt: Option<Flow>,
        at: Position,
    ) -> Result<Position, CheckpointError> {
        let position = saved.main.position;
        let mut donor = Writer::default();
        let mut rebuilt_scheduled = Vec::new();
        if let Some(rebuilt) = rebuilt {
            if rebuilt.position != at {
                return Err(CheckpointError::Mismatch("the rebuilt views are at another position".into()));
            }
            rebuilt.main.save_checkpoint(&mut donor)?;
            rebuilt_scheduled = rebuilt.scheduled;
        }
        let donor = if donor.buf.is_empty() { None } else { Some(Saved::read(&mut Reader::new(&donor.buf))?) };
        let sources: Vec<&Saved<'_>> = std::iter::once(&saved.main).chain(donor.as_ref()).collect();
        self.main.load_nodes(&sources, position)?;
        let now = Instant::now();
        for s in &mut self.scheduled {
            if let Some(was) = held.get(&s.slot).and_then(|old| saved.scheduled.iter().find(|w| w.slot == *old)) {
                s.dataflow.load_nodes(&[&was.dataflow], was.dataflow.position)?;
                s.pending = was.pending.clone();
                s.pending_changes = s.pending.values().map(Vec::len).sum();
                s.due = now + Duration::from_millis(was.due_ms).min(s.every);
                continue;
            }
            let Some(at) = rebuilt_scheduled.iter().position(|r| r.slot == s.slot) else {
                return Err(CheckpointError::Mismatch(format!(
                    "the view in slot {} was neither saved nor rebuilt",
                    s.slot
                )));
            };
            *s = rebuilt_scheduled.swap_remove(at);
        }
        self.position = position;
        Ok(position)
    }

    /// Every published part of the flow's views, `(slot, part)`: part 0
    /// (the view's rows) and a feed's other parts, scheduled ones included.
    pub fn published_parts(&self) -> Vec<(usize, usize)> {
        let scheduled = self.scheduled.iter().flat_map(|s| &s.parts);
        self.slots.iter().chain(scheduled).copied().collect()
    }
}

/// A flow's checkpoint read node by node (see [`Flow::slots_held`]).
#[derive(Debug)]
pub struct SavedFlow<'a> {
    /// The main dataflow's views → (publishing slot, part), as saved.
    slots: Vec<(usize, usize)>,
    main: Saved<'a>,
    scheduled: Vec<SavedScheduled<'a>>,
}

#[derive(Debug)]
struct SavedScheduled<'a> {
    slot: usize,
    /// How many dataflow views (parts) it had.
    views: usize,
    dataflow: Saved<'a>,
    pending: BTreeMap<String, Vec<(Row, Diff)>>,
    due_ms: u64,
}

impl<'a> SavedFlow<'a> {
    /// Reads what [`Flow::save_checkpoint`] wrote, with dataflow states of
    /// version 2 (an older one is a [`CheckpointError::Mismatch`]: load it
    /// whole with [`Flow::load_checkpoint`]).
    pub fn read(r: &mut Reader<'a>) -> Result<SavedFlow<'a>, CheckpointError> {
        let n = r.count()?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            slots.push((r.u64()? as usize, r.u64()? as usize));
        }
        let main = Saved::read(r)?;
        let mut scheduled = Vec::new();
        for _ in 0..r.count()? {
            let slot = r.u64()? as usize;
            let dataflow = Saved::read(r)?;
            let mut pending = BTreeMap::new();
            for _ in 0..r.count()? {
                let table = r.str()?.to_string();
                pending.insert(table, r.changes()?);
            }
            let due_ms = r.u64()?;
            scheduled.push(SavedScheduled { slot, views: dataflow.views.len(), dataflow, pending, due_ms });
        }
        Ok(SavedFlow { slots, main, scheduled })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use denorm_core::SourceBatch;
    use denorm_sql::{plan_views, ViewDef};
    use denorm_types::{consolidate, Catalog, ColumnSchema, Datum, Dialect, Diff, Row, ScalarType, TableSchema};

    use super::*;
    use crate::engine::flow::Step;

    fn catalog() -> Catalog {
        let col = |name: &str, ty| ColumnSchema { name: name.into(), ty, nullable: false };
        let mut catalog = Catalog::new();
        catalog.add(TableSchema {
            name: "sales".into(),
            columns: vec![col("id", ScalarType::Int), col("day", ScalarType::Text), col("amount", ScalarType::Int)],
            primary_key: vec![0],
            unique_keys: vec![],
        });
        catalog
    }

    fn flow(now: Instant) -> Flow {
        let sql = "CREATE MATERIALIZED VIEW live AS SELECT day, SUM(amount) AS total FROM sales GROUP BY day;
                   CREATE MATERIALIZED VIEW hourly WITH (refresh = '1h') AS
                   SELECT day, COUNT(*) AS n, MAX(amount) AS top FROM sales GROUP BY day;";
        let planned: Vec<Option<ViewDef>> =
            plan_views(sql, &catalog(), Dialect::Sqlite).unwrap().into_iter().map(Some).collect();
        Flow::new(catalog(), &planned, Dialect::Sqlite, now).unwrap()
    }

    fn flow_of(sql: &str, now: Instant) -> (Flow, Vec<Option<ViewDef>>) {
        let planned: Vec<Option<ViewDef>> =
            plan_views(sql, &catalog(), Dialect::Sqlite).unwrap().into_iter().map(Some).collect();
        (Flow::new(catalog(), &planned, Dialect::Sqlite, now).unwrap(), planned)
    }

    /// A changed on-change view beside an unchanged scheduled one (moved to
    /// another slot): the scheduled view loads from the checkpoint with its
    /// gathered changes, the changed one from a flow built from the rows at
    /// the checkpoint; the loaded flow then applies and refreshes exactly
    /// as one built from scratch over every batch.
    #[test]
    fn a_changed_view_is_rebuilt_beside_a_loaded_scheduled_one() {
        let start = Instant::now();
        let hourly = "CREATE MATERIALIZED VIEW hourly WITH (refresh = '1h') AS
                      SELECT day, COUNT(*) AS n, MAX(amount) AS top FROM sales GROUP BY day;";
        let old_sql = format!(
            "CREATE MATERIALIZED VIEW live AS SELECT day, SUM(amount) AS total FROM sales GROUP BY day;{hourly}"
        );
        let new_sql = format!("CREATE MATERIALIZED VIEW added AS SELECT id FROM sales WHERE amount > 6;{hourly}
                               CREATE MATERIALIZED VIEW live AS SELECT day, MIN(amount) AS low FROM sales GROUP BY day;");
        let (first, second) =
            (batch(1, vec![(1, "mon", 5, 1), (2, "tue", 7, 1)]), batch(2, vec![(3, "mon", 9, 1), (1, "mon", 5, -1)]));
        let (mut original, _) = flow_of(&old_sql, start);
        original.snapshot(&first);
        original.apply(&second);
        let mut w = Writer::default();
        original.save_checkpoint(&mut w).unwrap();
        let saved = SavedFlow::read(&mut Reader::new(&w.buf)).unwrap();
        let (old_names, names) = (["live", "hourly"].map(String::from), ["added", "hourly", "live"].map(String::from));

        let (mut loaded, planned) = flow_of(&new_sql, start);
        let held = loaded.slots_held(&saved, &old_names, &names);
        assert_eq!(held, BTreeMap::from([(1, 1)]));
        let rebuild: Vec<Option<ViewDef>> =
            planned.iter().enumerate().map(|(slot, d)| d.clone().filter(|_| !held.contains_key(&slot))).collect();
        let mut rebuilt = Flow::new(catalog(), &rebuild, Dialect::Sqlite, start).unwrap();
        let rows = batch(2, vec![(2, "tue", 7, 1), (3, "mon", 9, 1)]);
        let step = rebuilt.snapshot(&rows);
        assert_eq!(step.views.iter().map(|(slot, _, _)| *slot).collect::<BTreeSet<_>>(), BTreeSet::from([0, 2]));
        assert_eq!(loaded.load_partial(&saved, &held, Some(rebuilt), Position(2)), Ok(Position(2)));

        let (mut scratch, _) = flow_of(&new_sql, start);
        scratch.snapshot(&first);
        scratch.apply(&second);
        let next = batch(3, vec![(4, "tue", 1, 1), (2, "tue", 7, -1)]);
        assert_eq!(by_slot(Some(loaded.apply(&next))), by_slot(Some(scratch.apply(&next))));
        let later = start + Duration::from_secs(7200);
        let refreshed = by_slot(loaded.refresh_due(later));
        assert_eq!(refreshed, by_slot(scratch.refresh_due(later)));
        assert!(refreshed.contains_key(&1), "{refreshed:?}");
    }

    /// `sales` and `notes` (sale_id, text): joins of several views read
    /// `sales` by `id` with different columns, so they share one
    /// arrangement of it (denorm-core's `graph/share.rs`).
    fn joined_catalog() -> Catalog {
        let mut catalog = catalog();
        let col = |name: &str, ty| ColumnSchema { name: name.into(), ty, nullable: false };
        catalog.add(TableSchema {
            name: "notes".into(),
            columns: vec![col("sale_id", ScalarType::Int), col("text", ScalarType::Text)],
            primary_key: vec![],
            unique_keys: vec![],
        });
        catalog
    }

    /// A restart whose views changed, where views share a widened
    /// arrangement: a view whose join now reads another arrangement (the
    /// union of the columns changed) is rebuilt, never loaded wrong; the
    /// views rebuilt are built as the flow of all the views builds them, so
    /// the flow loads; it then applies exactly as one built from scratch.
    #[test]
    fn views_sharing_an_arrangement_load_or_rebuild_when_the_views_change() {
        let start = Instant::now();
        let view = |name: &str, columns: &str| {
            format!(
                "CREATE MATERIALIZED VIEW {name} AS SELECT {columns} FROM sales s JOIN notes n ON n.sale_id = s.id;"
            )
        };
        // `sales` by id with (id, day) and with (id, amount): one arrangement
        // of the whole table.
        let (by_day, by_amount) = (view("by_day", "s.day, n.text"), view("by_amount", "s.amount, n.text"));
        let old_sql = format!("{by_day}{by_amount}");
        let totals = "CREATE MATERIALIZED VIEW totals AS SELECT day, SUM(amount) AS total FROM sales GROUP BY day;";
        let cases = [
            // An unrelated view added: both join views load.
            (format!("{by_day}{by_amount}{totals}"), vec![(0, 0), (1, 1)]),
            // by_day's columns reordered, its table columns (hence the
            // union) the same: by_amount loads, by_day is rebuilt, over
            // the shared arrangement (apart, it would arrange its own
            // columns, a node the flow of all the views does not have).
            (format!("{}{by_amount}", view("by_day", "n.text, s.day")), vec![(1, 1)]),
            // by_amount dropped, a view of the ids added: the union shrinks
            // to (id, day), both rebuilt.
            (format!("{by_day}{}", view("by_id", "s.id, n.text")), vec![]),
        ];
        let notes = |changes: Vec<(i64, &str, Diff)>| {
            let rows = changes.into_iter().map(|(id, text, d)| (Row::pack([Datum::Int(id), Datum::text(text)]), d));
            ("notes".to_string(), rows.collect::<Vec<_>>())
        };
        let with_notes = |mut batch: SourceBatch, changes| {
            batch.tables.push(notes(changes));
            batch
        };
        let first = with_notes(batch(1, vec![(1, "mon", 5, 1), (2, "tue", 7, 1)]), vec![(1, "a", 1), (2, "b", 1)]);
        let second =
            with_notes(batch(2, vec![(3, "mon", 9, 1), (1, "mon", 5, -1), (1, "wed", 4, 1)]), vec![(3, "c", 1)]);
        let plan = |sql: &str| -> Vec<Option<ViewDef>> {
            plan_views(sql, &joined_catalog(), Dialect::Sqlite).unwrap().into_iter().map(Some).collect()
        };
        let mut original = Flow::new(joined_catalog(), &plan(&old_sql), Dialect::Sqlite, start).unwrap();
        original.snapshot(&first);
        original.apply(&second);
        let mut w = Writer::default();
        original.save_checkpoint(&mut w).unwrap();
        let saved = SavedFlow::read(&mut Reader::new(&w.buf)).unwrap();
        let old_names = ["by_day", "by_amount"].map(String::from);
        for (new_sql, want_held) in cases {
            let planned = plan(&new_sql);
            let names: Vec<String> = planned.iter().flatten().map(|d| d.name.clone()).collect();
            let mut loaded = Flow::new(joined_catalog(), &planned, Dialect::Sqlite, start).unwrap();
            let held = loaded.slots_held(&saved, &old_names, &names);
            assert_eq!(held, want_held.into_iter().collect::<BTreeMap<_, _>>(), "{new_sql}");
            let rebuild: Vec<Option<ViewDef>> =
                planned.iter().enumerate().map(|(slot, d)| d.clone().filter(|_| !held.contains_key(&slot))).collect();
            let mut rebuilt = Flow::sharing_with(joined_catalog(), &rebuild, &planned, Dialect::Sqlite, start).unwrap();
            let rows = with_notes(
                batch(2, vec![(2, "tue", 7, 1), (3, "mon", 9, 1), (1, "wed", 4, 1)]),
                vec![(1, "a", 1), (2, "b", 1), (3, "c", 1)],
            );
            rebuilt.snapshot(&rows);
            assert_eq!(loaded.load_partial(&saved, &held, Some(rebuilt), Position(2)), Ok(Position(2)), "{new_sql}");
            let mut scratch = Flow::new(joined_catalog(), &planned, Dialect::Sqlite, start).unwrap();
            scratch.snapshot(&first);
            scratch.apply(&second);
            let next = with_notes(batch(3, vec![(1, "wed", 4, -1), (1, "thu", 4, 1)]), vec![(2, "b", -1), (4, "d", 1)]);
            let (got, want) = (by_slot(Some(loaded.apply(&next))), by_slot(Some(scratch.apply(&next))));
            assert_eq!(got, want, "{new_sql}");
            assert!(got.contains_key(&0), "{got:?}");
        }
    }

    fn batch(position: u64, changes: Vec<(i64, &str, i64, Diff)>) -> SourceBatch {
        let rows = changes
            .into_iter()
            .map(|(id, day, amount, d)| (Row::pack([Datum::Int(id), Datum::text(day), Datum::Int(amount)]), d))
            .collect();
        SourceBatch { position: Position(position), tables: vec![("sales".into(), rows)] }
    }

    fn by_slot(step: Option<Step>) -> BTreeMap<usize, Vec<(Row, Diff)>> {
        let mut out: BTreeMap<usize, Vec<(Row, Diff)>> = BTreeMap::new();
        for (slot, _, changes) in step.map(|s| s.views).unwrap_or_default() {
            out.entry(slot).or_default().extend(changes);
        }
        out.values_mut().for_each(consolidate);
        out
    }

    /// A scheduled view's dataflow and the changes it gathered since its
    /// last refresh are saved: a loaded flow gathers the next batch too,
    /// refreshes when due with exactly the original's changes, and keeps
    /// the time left to the refresh (never more than its period).
    #[test]
    fn scheduled_views_are_saved_with_their_gathered_changes() {
        let start = Instant::now();
        let mut original = flow(start);
        original.snapshot(&batch(1, vec![(1, "mon", 5, 1), (2, "tue", 7, 1)]));
        original.apply(&batch(2, vec![(3, "mon", 9, 1), (1, "mon", 5, -1)]));
        assert_eq!(original.published_parts(), vec![(0, 0), (1, 0)]);
        let mut w = Writer::default();
        original.save_checkpoint(&mut w).unwrap();
        let mut loaded = flow(start);
        let mut r = Reader::new(&w.buf);
        assert_eq!(loaded.load_checkpoint(&mut r, true).unwrap(), Position(2));
        assert!(r.at_end());
        let due = loaded.next_due().unwrap();
        assert!(due > Instant::now() + Duration::from_secs(3500) && due <= Instant::now() + Duration::from_secs(3600));
        let next = batch(3, vec![(4, "tue", 1, 1), (2, "tue", 7, -1)]);
        assert_eq!(by_slot(Some(loaded.apply(&next))), by_slot(Some(original.apply(&next))));
        let later = start + Duration::from_secs(7200);
        let (a, b) = (by_slot(original.refresh_due(later)), by_slot(loaded.refresh_due(later)));
        assert_eq!(a, b);
        assert_eq!(a.get(&1).map(Vec::len), Some(4), "{a:?}");
        // A format-1 file holds no scheduled views' section.
        assert!(matches!(
            flow(start).load_checkpoint(&mut Reader::new(&w.buf), false),
            Err(CheckpointError::Unsupported(_))
        ));
    }
}
