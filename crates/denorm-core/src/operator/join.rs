//! Symmetric hash join: inner, left outer and full outer.
//!
//! Both inputs are arrangements ([`Index`]) keyed by the join columns, already
//! updated with this batch's deltas when the join runs (they may be shared with
//! other joins). By bilinearity of the join over Z-sets,
//!
//! ```text
//! Δ(L ⋈ R) = ΔL ⋈ R' + L' ⋈ ΔR − ΔL ⋈ ΔR        (L' = L + ΔL, R' = R + ΔR)
//! ```
//!
//! computed as `ΔL ⋈ R' + L ⋈ ΔR` (the same sum, with `L = L' − ΔL`
//! rebuilt only for the keys both deltas touch): pairs of two changed rows
//! are made once, not made twice and cancelled — a snapshot, whose `L` is
//! empty, makes each output row once. So every change costs work
//! proportional to the rows it matches, never to the size of either input.
//! A left join adds the NULL-padded left rows that have no match: for each
//! key the batch touched, the padded output before and after the batch is
//! derived from the new state and the deltas, and only the difference is
//! emitted (a left row's padded copy is retracted when its first match
//! arrives and re-inserted when its last match leaves). A full join does
//! the same for the right rows, with the sides' roles swapped.

use denorm_expr::{EvalError, Expr, JoinKind};
use denorm_types::{Datum, Dialect, Diff, Row, RowPacker, RowRef};

use crate::index::{merge, ByKey, Group, Index};

/// The join's parameters; its state lives in the two arrangements.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    pub(crate) kind: JoinKind,
    pub(crate) left_key: Vec<usize>,
    pub(crate) right_key: Vec<usize>,
    pub(crate) residual: Option<Expr>,
    pub(crate) left_arity: usize,
    pub(crate) right_arity: usize,
    /// The columns of `left ++ right` to emit (a fused column projection);
    /// `None` emits every column.
    pub(crate) project: Option<Vec<usize>>,
    pub(crate) dialect: Dialect,
}

/// Which input of the join a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

struct Output<'j> {
    join: &'j Join,
    packer: RowPacker,
    changes: Vec<(Row, Diff)>,
    /// The projection as runs of adjacent columns of one side, each copied
    /// as one byte range (see [`Run`]).
    runs: Vec<Run>,
    /// Column spans of the pair being emitted (for a projection), each
    /// side's computed once for a run of pairs sharing that side's row.
    left_spans: Spans,
    right_spans: Spans,
}

/// Output columns `first..=last` of one side, adjacent in its row, so
/// their encoded bytes are one range. A join over a shared, widened
/// arrangement (`graph/share.rs`) always projects, mostly whole runs of a
/// side or all of it: copying a run at once, and a whole side without
/// finding its spans, keeps a projected pair nearly as cheap as `left ++
/// right`.
#[derive(Debug, Clone, Copy)]
struct Run {
    right: bool,
    first: usize,
    last: usize,
    /// The run is the side's whole row.
    whole: bool,
}

/// The runs of `join`'s projection (none without one).
fn runs(join: &Join) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for &c in join.project.iter().flatten() {
        let (right, column) = match c.checked_sub(join.left_arity) {
            None => (false, c),
            Some(r) => (true, r),
        };
        match runs.last_mut() {
            Some(run) if run.right == right && run.last + 1 == column => run.last = column,
            _ => runs.push(Run { right, first: column, last: column, whole: false }),
        }
    }
    for run in &mut runs {
        let arity = if run.right { join.right_arity } else { join.left_arity };
        run.whole = run.first == 0 && run.last + 1 == arity;
    }
    runs
}

/// The column spans of the row last asked for, found again only for
/// another row: a join emits one row paired with each row of a group, and
/// an updated row's retraction and insertion with each row of the other
/// side, so consecutive pairs mostly share one side.
#[derive(Default)]
struct Spans {
    spans: Vec<(u32, u32)>,
    /// The row the spans are of: its bytes' address and length. Every row
    /// a step reads is borrowed for the whole step (no buffer is freed or
    /// reused meanwhile), so equal addresses and lengths are the same row.
    of: Option<(usize, usize)>,
}

impl Spans {
    fn of(&mut self, row: RowRef<'_>) -> &[(u32, u32)] {
        let bytes = row.as_bytes();
        let id = (bytes.as_ptr() as usize, bytes.len());
        if self.of != Some(id) {
            row.spans(&mut self.spans);
            self.of = Some(id);
        }
        &self.spans
    }
}

impl Output<'_> {
    /// Emits `left ++ right` with weight `diff` if the residual holds.
    fn pair(&mut self, left: RowRef<'_>, right: RowRef<'_>, diff: Diff) -> Result<(), EvalError> {
        if diff == 0 || !self.residual_holds(left, right)? {
            return Ok(());
        }
        match &self.join.project {
            None => {
                self.packer.extend_from_ref(left);
                self.packer.extend_from_ref(right);
            }
            Some(_) => {
                for run in &self.runs {
                    let (row, spans) =
                        if run.right { (right, &mut self.right_spans) } else { (left, &mut self.left_spans) };
                    if run.whole {
                        self.packer.extend_from_ref(row);
                    } else {
                        let spans = spans.of(row);
                        self.packer.push_encoded_ref(row, spans[run.first].0, spans[run.last].1);
                    }
                }
            }
        }
        self.changes.push((self.packer.finish(), diff));
        Ok(())
    }

    /// The residual over `row` (of `side`) and `other` (of the other side).
    fn holds(&self, side: Side, row: RowRef<'_>, other: RowRef<'_>) -> Result<bool, EvalError> {
        match side {
            Side::Left => self.residual_holds(row, other),
            Side::Right => self.residual_holds(other, row),
        }
    }

    fn residual_holds(&self, left: RowRef<'_>, right: RowRef<'_>) -> Result<bool, EvalError> {
        match &self.join.residual {
            None => Ok(true),
            Some(p) => {
                let datums: Vec<Datum<'_>> = left.iter().chain(right.iter()).collect();
                p.holds(&datums, self.join.dialect)
            }
        }
    }

    /// Emits `row ++ NULL…` (or `NULL… ++ row` for a right row) with weight `diff`.
    fn padded(&mut self, side: Side, row: RowRef<'_>, diff: Diff) {
        if diff == 0 {
            return;
        }
        if side == Side::Right {
            return self.padded_right(row, diff);
        }
        let left = row;
        match &self.join.project {
            None => {
                self.packer.extend_from_ref(left);
                for _ in 0..self.join.right_arity {
                    self.packer.push(&Datum::Null);
                }
            }
            Some(columns) => {
                let spans = self.left_spans.of(left);
                for &c in columns {
                    match spans.get(c) {
                        Some(&(start, end)) => self.packer.push_encoded_ref(left, start, end),
                        None => self.packer.push(&Datum::Null),
                    }
                }
            }
        }
        self.changes.push((self.packer.finish(), diff));
    }

    fn padded_right(&mut self, right: RowRef<'_>, diff: Diff) {
        match &self.join.project {
            None => {
                for _ in 0..self.join.left_arity {
                    self.packer.push(&Datum::Null);
                }
                self.packer.extend_from_ref(right);
            }
            Some(columns) => {
                let spans = self.right_spans.of(right);
                for &c in columns {
                    match c.checked_sub(self.join.left_arity) {
                        Some(r) => {
                            let (start, end) = spans[r];
                            self.packer.push_encoded_ref(right, start, end);
                        }
                        None => self.packer.push(&Datum::Null),
                    }
                }
            }
        }
        self.changes.push((self.packer.finish(), diff));
    }

    /// Σ over `rows` (of the other side) of their weight where the pair
    /// with `row` (of `side`) passes the residual.
    fn matches<'r>(
        &self,
        side: Side,
        row: RowRef<'_>,
        rows: impl Iterator<Item = (RowRef<'r>, Diff)>,
    ) -> Result<Diff, EvalError> {
        let mut total = 0;
        for (r, d) in rows {
            if self.holds(side, row, r)? {
                total += d;
            }
        }
        Ok(total)
    }
}

/// The rows of a group before a batch: its rows `now` less the batch's
/// `delta` to them (each row once), rows at zero dropped.
fn before<'r>(now: Option<Group<'r>>, delta: &[(RowRef<'r>, Diff)]) -> Vec<(RowRef<'r>, Diff)> {
    let mut rows: Vec<(RowRef<'r>, Diff)> = now.iter().flat_map(Group::iter).collect();
    let undo: Vec<(RowRef<'r>, Diff)> = delta.iter().map(|&(r, d)| (r, -d)).collect();
    merge(&mut rows, &undo);
    rows
}

impl Join {
    /// The join's output delta for one batch. `left` and `right` already
    /// include `left_delta` and `right_delta` (both consolidated).
    pub(crate) fn step(
        &self,
        left: &Index,
        right: &Index,
        left_delta: &[(Row, Diff)],
        right_delta: &[(Row, Diff)],
    ) -> Result<Vec<(Row, Diff)>, EvalError> {
        let mut packer = RowPacker::new();
        let dl = ByKey::new(&self.left_key, left_delta, &mut packer);
        let dr = ByKey::new(&self.right_key, right_delta, &mut packer);
        let mut out = Output {
            join: self,
            packer,
            changes: Vec::new(),
            runs: runs(self),
            left_spans: Spans::default(),
            right_spans: Spans::default(),
        };
        for (key, rows, has_null) in dl.iter() {
            if has_null {
                continue;
            }
            if let Some((group, _)) = right.get(key) {
                for &(l, d) in rows {
                    for (r, c) in group.iter() {
                        out.pair(l, r, d * c)?;
                    }
                }
            }
        }
        for (key, rows, has_null) in dr.iter() {
            if has_null {
                continue;
            }
            // Left rows outermost: an updated right row's retraction and
            // insertion come out next to each other for every left row,
            // which the view applies as one in-place replacement.
            let now = left.get(key).map(|(group, _)| group);
            match dl.get(key) {
                None => {
                    for (l, c) in now.iter().flat_map(Group::iter) {
                        for &(r, d) in rows {
                            out.pair(l, r, c * d)?;
                        }
                    }
                }
                Some(changed) => {
                    for (l, c) in before(now, changed) {
                        for &(r, d) in rows {
                            out.pair(l, r, c * d)?;
                        }
                    }
                }
            }
        }
        if matches!(self.kind, JoinKind::Left | JoinKind::Full) {
            self.pad(Side::Left, left, right, &dl, &dr, &mut out)?;
        }
        if self.kind == JoinKind::Full {
            self.pad(Side::Right, right, left, &dr, &dl, &mut out)?;
        }
        Ok(out.changes)
    }

    /// The join's output rows that `rows` take part in: each is a row of
    /// the left side when `left` (else of the right), paired with `other`'s
    /// rows under its join key. (A bounded top-k reads a partition this
    /// way; see [`super::JoinTopK`].) Inner joins only.
    pub(crate) fn pairs_of<'r>(
        &self,
        rows: impl Iterator<Item = (RowRef<'r>, Diff)>,
        left: bool,
        other: &Index,
    ) -> Result<Vec<(Row, Diff)>, EvalError> {
        let mut out = Output {
            join: self,
            packer: RowPacker::new(),
            changes: Vec::new(),
            runs: runs(self),
            left_spans: Spans::default(),
            right_spans: Spans::default(),
        };
        let key_columns = if left { &self.left_key } else { &self.right_key };
        let mut key = RowPacker::new();
        let mut datums = Vec::new();
        for (row, diff) in rows {
            datums.clear();
            datums.extend(row.iter());
            let mut has_null = false;
            for &c in key_columns {
                has_null |= datums[c].is_null();
                key.push_key(&datums[c]);
            }
            let k = key.finish();
            if has_null {
                continue;
            }
            let Some((group, _)) = other.get(&k) else { continue };
            for (o, count) in group.iter() {
                if left {
                    out.pair(row, o, diff * count)?;
                } else {
                    out.pair(o, row, count * diff)?;
                }
            }
        }
        Ok(out.changes)
    }

    /// The change in NULL-padded rows of `side` for every key the batch
    /// touched. `left`/`dl` are that side's arrangement and delta, `right`/
    /// `dr` the other side's (the names read as for a left join).
    fn pad(
        &self,
        side: Side,
        left: &Index,
        right: &Index,
        dl: &ByKey<'_>,
        dr: &ByKey<'_>,
        out: &mut Output<'_>,
    ) -> Result<(), EvalError> {
        for (key, rows, has_null) in dl.iter() {
            if has_null || !dr.contains_key(key) {
                // The right side did not change under this key: only the
                // changed left rows change their padded copies.
                let group = if has_null { None } else { right.get(key) };
                for &(l, d) in rows {
                    let m = match group {
                        Some((g, total)) => self.matches_in(out, side, l, g, total)?,
                        None => 0,
                    };
                    if m == 0 {
                        out.padded(side, l, d);
                    }
                }
            }
        }
        for (key, rrows, has_null) in dr.iter() {
            if has_null {
                continue;
            }
            let left_rows = dl.get(key).unwrap_or(&[]);
            self.repad_key(side, left.get(key).map(|(g, _)| g), left_rows, right.get(key), rrows, out)?;
        }
        Ok(())
    }

    fn matches_in(
        &self,
        out: &Output<'_>,
        side: Side,
        l: RowRef<'_>,
        group: Group<'_>,
        total: Diff,
    ) -> Result<Diff, EvalError> {
        if self.residual.is_none() {
            Ok(total)
        } else {
            out.matches(side, l, group.iter())
        }
    }

    /// Recomputes the padded rows of one key whose right side changed.
    fn repad_key(
        &self,
        side: Side,
        left_now: Option<Group<'_>>,
        left_delta: &[(RowRef<'_>, Diff)],
        right_now: Option<(Group<'_>, Diff)>,
        right_delta: &[(RowRef<'_>, Diff)],
        out: &mut Output<'_>,
    ) -> Result<(), EvalError> {
        // Left rows now present, plus rows the batch removed entirely.
        let mut candidates: Vec<(RowRef<'_>, Diff)> = left_now.map(|g| g.iter().collect()).unwrap_or_default();
        for &(l, d) in left_delta {
            if left_now.is_none_or(|g| g.count(l) == 0) && d < 0 {
                candidates.push((l, 0));
            }
        }
        for (l, count_now) in candidates {
            let delta = left_delta.iter().filter(|(r, _)| *r == l).map(|(_, d)| d).sum::<Diff>();
            let count_before = count_now - delta;
            let (m_now, m_delta) = match &self.residual {
                None => (right_now.map_or(0, |(_, t)| t), right_delta.iter().map(|(_, d)| d).sum()),
                Some(_) => (
                    right_now.map_or(Ok(0), |(g, _)| out.matches(side, l, g.iter()))?,
                    out.matches(side, l, right_delta.iter().copied())?,
                ),
            };
            let padded_now = if m_now == 0 { count_now } else { 0 };
            let padded_before = if m_now - m_delta == 0 { count_before } else { 0 };
            out.padded(side, l, padded_now - padded_before);
        }
        Ok(())
    }
}
