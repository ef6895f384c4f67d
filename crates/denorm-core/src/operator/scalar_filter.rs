//! Outer rows compared with a relation of at most one row: `f(outer) op
//! g(scalar)`, where the scalar is an uncorrelated scalar subquery
//! (`c_acctbal > (SELECT avg(c_acctbal) FROM …)`, TPC-H q11, q15, q22).
//!
//! Planned as a product of the outer rows with the one-row result, filtered
//! by the comparison, every outer row is re-joined and re-filtered whenever
//! the scalar moves. This operator keeps the outer rows ordered by `f`
//! instead, so a move of the threshold from `t0` to `t1` visits only the
//! rows whose `f` lies between them (for `=` and `<>`: the rows equal to
//! `t0` or `t1`):
//!
//! ```text
//!  outer delta ──► rows: (key of f, row) → diff   (BTreeMap, f NULL: not kept)
//!       │              emitted when f op t0 holds
//!  scalar delta ─► relation (≤ 1 row) ──► t1 = g(row) ──► range of rows between t0 and t1:
//!                                                           emit (f op t1) − (f op t0)
//! ```
//!
//! The output is the outer rows that match (the scalar's columns are not
//! emitted: the graph builder uses this operator only under a projection
//! that drops them, so a moving scalar changes no row that stays).
//!
//! Order. A comparison is `Datum::total_cmp` (what the evaluator's `<`,
//! `=`, … compute once neither side is NULL), so the key must order values
//! exactly as `total_cmp` does: [`compare_key`] is TopK's order-preserving
//! encoding with `total_cmp`'s class ranks (booleans below numbers; dates,
//! timestamps and time-zoned timestamps apart) and NaN below every number.
//! Membership itself is always decided by `total_cmp` on the values, never
//! by the key; the key only finds the candidates. The one case where
//! `total_cmp` is not a total order — a PostgreSQL numeric compared with a
//! double (through the double: not transitive with exact integer
//! comparisons) — is detected (numerics and other numbers both among the
//! kept keys or thresholds), and a moving threshold then visits every row.
//!
//! NULLs: a NULL `f` or a NULL threshold matches nothing. An empty relation
//! matches nothing, except under a LEFT JOIN (`pad`), where the threshold is
//! `g` of an all-NULL row, as the padded product would compute it.
//!
//! Errors: a failing `g` (PostgreSQL's division by zero) fails the view
//! only while there are outer rows to compare with it, as the product's
//! filter would; over no outer rows it is kept and matches nothing.
//!
//! Cost: an outer change O(log n); a move of the scalar O(log n + rows
//! between the thresholds), plus, when the outer rows are all visited
//! (a threshold becoming NULL or the relation emptying), O(matched rows).

use std::collections::btree_map::Entry as MapEntry;
use std::collections::BTreeMap;
use std::ops::Bound;

use denorm_expr::{BinaryOp, EvalError, Expr};
use denorm_types::{consolidate_unordered, Datum, Dialect, Diff, Row, Value};

use super::topk::{encode_bytes, encode_number, encode_numeric};
use crate::checkpoint::{write_changes, CheckpointError, Reader, Writer};
use crate::memory;

/// Key tags: the class ranks of `Datum::total_cmp`, numbers split into the
/// binary ones (integers, doubles) and numerics.
const BOOL: u8 = 0x10;
const NUMBER: u8 = 0x20;
const NUMERIC: u8 = 0x21;
const TEXT: u8 = 0x30;
const BLOB: u8 = 0x38;
const DATE: u8 = 0x40;
const TIMESTAMP: u8 = 0x41;
const TIMESTAMPTZ: u8 = 0x42;
const UUID: u8 = 0x50;
const INTERVAL: u8 = 0x60;

/// What the operator compares: `outer op scalar`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScalarComparison {
    /// `f`, over the outer row.
    pub(crate) outer: Expr,
    /// One of `=`, `<>`, `<`, `<=`, `>`, `>=`.
    pub(crate) op: BinaryOp,
    /// `g`, over the scalar row.
    pub(crate) scalar: Expr,
    pub(crate) scalar_arity: usize,
    /// A LEFT JOIN: without a scalar row, `g` reads an all-NULL row.
    pub(crate) pad: bool,
}

/// The scalar's current value as a threshold.
#[derive(Debug, Clone)]
enum Threshold {
    /// Nothing matches (no row, or `g` is NULL).
    Nothing,
    Value {
        key: Box<[u8]>,
        value: Value,
    },
    /// `g` failed: every outer row evaluated against it fails the view.
    Failed(EvalError),
}

impl Threshold {
    fn key(&self) -> Option<&[u8]> {
        match self {
            Threshold::Value { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// The operator: its comparison and state.
#[derive(Debug)]
pub(crate) struct ScalarFilter {
    comparison: ScalarComparison,
    dialect: Dialect,
    /// Outer rows whose `f` is not NULL, by `f`'s key, with multiplicities.
    rows: BTreeMap<(Box<[u8]>, Row), Diff>,
    /// Outer rows in all (NULL `f` included).
    outer_rows: Diff,
    /// Entries of `rows` keyed as numerics / as integers or doubles.
    numerics: usize,
    numbers: usize,
    /// The scalar side's rows (at most one, proven by the plan).
    relation: Vec<(Row, Diff)>,
    /// `None` until the first batch.
    threshold: Option<Threshold>,
}

impl ScalarFilter {
    /// Live heap bytes of the kept outer rows and the scalar side's row
    /// (see [`crate::memory`]).
    pub(crate) fn state_bytes(&self) -> usize {
        let entries: usize = self.rows.keys().map(|(key, row)| memory::slice(key) + memory::row(row)).sum();
        let relation: usize = self.relation.iter().map(|(row, _)| memory::row(row)).sum();
        memory::btree_map(&self.rows) + entries + memory::vec(&self.relation) + relation
    }

    pub(crate) fn new(comparison: ScalarComparison, dialect: Dialect) -> Self {
        ScalarFilter {
            comparison,
            dialect,
            rows: BTreeMap::new(),
            outer_rows: 0,
            numerics: 0,
            numbers: 0,
            relation: Vec::new(),
            threshold: None,
        }
    }

    /// Checkpoint: the kept outer rows, the count of all outer rows and the
    /// scalar side's rows; [`ScalarFilter::load`] steps them in (the
    /// threshold and the key counts follow from them).
    pub(crate) fn save(&self, w: &mut Writer) {
        write_changes(w, self.rows.len(), self.rows.iter().map(|((_, row), d)| (row, *d)));
        w.i64(self.outer_rows);
        write_changes(w, self.relation.len(), self.relation.iter().map(|(r, d)| (r, *d)));
        w.u8(u8::from(self.threshold.is_some()));
    }

    /// Loads what [`ScalarFilter::save`] wrote into a fresh operator.
    pub(crate) fn load(&mut self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        let outer = r.changes()?;
        let outer_rows = r.i64()?;
        let relation = r.changes()?;
        if r.u8()? != 0 {
            self.step(&outer, &relation).map_err(|e| CheckpointError::Corrupt(format!("a scalar filter: {e}")))?;
        }
        self.outer_rows = outer_rows;
        Ok(())
    }

    /// Applies one batch of outer and scalar changes; returns the change of
    /// the matching outer rows, consolidated.
    pub(crate) fn step(
        &mut self,
        outer: &[(Row, Diff)],
        scalar: &[(Row, Diff)],
    ) -> Result<Vec<(Row, Diff)>, EvalError> {
        let first = self.threshold.is_none();
        let kept = self.threshold.take().unwrap_or(Threshold::Nothing);
        // A failed threshold is only ever kept over no outer rows (see
        // below): no row matched it.
        let old = if matches!(kept, Threshold::Failed(_)) { Threshold::Nothing } else { kept.clone() };
        let mut out = Vec::new();
        // Outer changes first, against the old threshold …
        for (row, diff) in outer {
            let value = self.outer_value(row)?;
            self.outer_rows += diff;
            if value.is_null() {
                continue;
            }
            if self.matches(&value, &old) {
                out.push((row.clone(), *diff));
            }
            let mut key = Vec::new();
            compare_key(&value, &mut key);
            self.update(key.into_boxed_slice(), row, *diff);
        }
        // … then the threshold's move, over the updated rows.
        let new = if scalar.is_empty() && !first {
            kept
        } else {
            self.relation.extend_from_slice(scalar);
            consolidate_unordered(&mut self.relation);
            self.relation.retain(|(_, d)| *d != 0);
            self.evaluate_threshold()?
        };
        if let Threshold::Failed(e) = &new {
            if self.outer_rows != 0 {
                return Err(e.clone());
            }
        }
        self.moved(&old, &new, &mut out)?;
        self.threshold = Some(new);
        consolidate_unordered(&mut out);
        Ok(out)
    }

    fn outer_value<'r>(&self, row: &'r Row) -> Result<Datum<'r>, EvalError> {
        match &self.comparison.outer {
            Expr::Column(c) => Ok(row.get(*c)),
            f => {
                let datums: Vec<Datum<'r>> = row.iter().collect();
                // The value outlives neither the row nor the expression
                // (a literal is borrowed): owned, it outlives both.
                f.eval(&datums, self.dialect).map(Datum::into_owned)
            }
        }
    }

    /// `f op t` as the evaluator computes it (a failed threshold is never
    /// compared: it is kept over no rows).
    fn matches(&self, value: &Datum<'_>, threshold: &Threshold) -> bool {
        let Threshold::Value { value: t, .. } = threshold else { return false };
        if value.is_null() {
            return false;
        }
        let o = value.total_cmp(t);
        match self.comparison.op {
            BinaryOp::Eq => o.is_eq(),
            BinaryOp::NotEq => o.is_ne(),
            BinaryOp::Lt => o.is_lt(),
            BinaryOp::LtEq => o.is_le(),
            BinaryOp::Gt => o.is_gt(),
            BinaryOp::GtEq => o.is_ge(),
            _ => false,
        }
    }

    fn update(&mut self, key: Box<[u8]>, row: &Row, diff: Diff) {
        let tag = key.first().copied();
        let delta: isize = match self.rows.entry((key, row.clone())) {
            MapEntry::Vacant(_) if diff == 0 => 0,
            MapEntry::Vacant(v) => {
                v.insert(diff);
                1
            }
            MapEntry::Occupied(mut o) => {
                *o.get_mut() += diff;
                if *o.get() == 0 {
                    o.remove();
                    -1
                } else {
                    0
                }
            }
        };
        match tag {
            Some(NUMERIC) => self.numerics = self.numerics.saturating_add_signed(delta),
            Some(NUMBER) => self.numbers = self.numbers.saturating_add_signed(delta),
            _ => {}
        }
    }

    /// The relation's row, as a threshold.
    fn evaluate_threshold(&self) -> Result<Threshold, EvalError> {
        let datums: Vec<Datum<'_>> = match self.relation.as_slice() {
            [] if self.comparison.pad => vec![Datum::Null; self.comparison.scalar_arity],
            [] => return Ok(Threshold::Nothing),
            [(row, 1)] => row.iter().collect(),
            rows => {
                return Err(EvalError::InvalidArgument(format!(
                    "a scalar subquery's result holds {} rows (bug: the plan proves at most one)",
                    rows.iter().map(|(_, d)| d.abs()).sum::<Diff>()
                )))
            }
        };
        Ok(match self.comparison.scalar.eval(&datums, self.dialect) {
            Err(e) => Threshold::Failed(e),
            Ok(v) if v.is_null() => Threshold::Nothing,
            Ok(v) => {
                let mut key = Vec::new();
                compare_key(&v, &mut key);
                Threshold::Value { key: key.into_boxed_slice(), value: v.into_owned() }
            }
        })
    }

    /// Emits `(rows matching new) − (rows matching old)`, visiting only the
    /// rows whose key lies where the two can differ.
    fn moved(&self, old: &Threshold, new: &Threshold, out: &mut Vec<(Row, Diff)>) -> Result<(), EvalError> {
        if old.key() == new.key() {
            return Ok(());
        }
        for (lower, upper) in self.candidates(old.key(), new.key()) {
            for ((_, row), diff) in self.rows.range((lower, upper)) {
                let value = self.outer_value(row)?;
                let change = Diff::from(self.matches(&value, new)) - Diff::from(self.matches(&value, old));
                if change != 0 {
                    out.push((row.clone(), change * diff));
                }
            }
        }
        Ok(())
    }

    /// Disjoint key ranges holding every row whose membership can differ
    /// between thresholds `old` and `new` (different; `None`: nothing
    /// matches).
    fn candidates(&self, old: Option<&[u8]>, new: Option<&[u8]>) -> Vec<(Bound<Entry>, Bound<Entry>)> {
        let all = vec![(Bound::Unbounded, Bound::Unbounded)];
        let tags = [old, new].into_iter().flatten().filter_map(|k| k.first().copied());
        let (mut numerics, mut numbers) = (self.numerics > 0, self.numbers > 0);
        for tag in tags {
            numerics |= tag == NUMERIC;
            numbers |= tag == NUMBER;
        }
        if numerics && numbers {
            return all;
        }
        let (a, b) = match (old, new) {
            (Some(a), Some(b)) => {
                if a < b {
                    (a, b)
                } else {
                    (b, a)
                }
            }
            // Everything the one threshold matches.
            (Some(t), None) | (None, Some(t)) => {
                return match self.comparison.op {
                    BinaryOp::Eq => vec![(from(t), through(t))],
                    BinaryOp::Lt => vec![(Bound::Unbounded, below(t))],
                    BinaryOp::LtEq => vec![(Bound::Unbounded, through(t))],
                    BinaryOp::Gt => vec![(after(t), Bound::Unbounded)],
                    BinaryOp::GtEq => vec![(from(t), Bound::Unbounded)],
                    _ => all,
                }
            }
            (None, None) => return Vec::new(),
        };
        match self.comparison.op {
            BinaryOp::Eq | BinaryOp::NotEq => vec![(from(a), through(a)), (from(b), through(b))],
            _ => vec![(from(a), through(b))],
        }
    }
}

/// A `rows` key: the compared value's key, then the row.
type Entry = (Box<[u8]>, Row);

/// The least byte string above `t`: every key above `t` is at or above
/// `t ++ 0` (it extends `t`, or passes it at a byte where they differ).
fn successor(t: &[u8]) -> Box<[u8]> {
    let mut next = t.to_vec();
    next.push(0);
    next.into_boxed_slice()
}

/// The first entry with key `t`.
fn from(t: &[u8]) -> Bound<Entry> {
    Bound::Included((t.into(), Row::empty()))
}

/// Up to the entries with key `t`, excluded.
fn below(t: &[u8]) -> Bound<Entry> {
    Bound::Excluded((t.into(), Row::empty()))
}

/// Up to the entries with key `t`, included.
fn through(t: &[u8]) -> Bound<Entry> {
    Bound::Excluded((successor(t), Row::empty()))
}

/// From the first entry above key `t`.
fn after(t: &[u8]) -> Bound<Entry> {
    Bound::Included((successor(t), Row::empty()))
}

/// Appends bytes whose order is `Datum::total_cmp`'s order of non-NULL
/// values (see the module documentation); equal values (`1`, `1.0`, `-0.0`)
/// have equal keys.
pub(crate) fn compare_key(value: &Datum<'_>, out: &mut Vec<u8>) {
    match value {
        Datum::Null => out.push(0),
        Datum::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(*b)]),
        Datum::Int(i) => {
            let d = *i as f64;
            encode_number(d, i128::from(*i) - d as i128, out);
        }
        // NaN sorts below every other number (`total_cmp`): the all-zero
        // double bits are below those of -inf after the order mapping.
        Datum::Float(x) if x.is_nan() => {
            out.push(NUMBER);
            out.extend_from_slice(&[0; 10]);
        }
        Datum::Float(x) => encode_number(*x, 0, out),
        Datum::Numeric(n) => encode_numeric(*n, out),
        Datum::Text(t) => encode_bytes(TEXT, t.as_bytes(), out),
        Datum::Blob(b) => encode_bytes(BLOB, b, out),
        Datum::Date(d) => {
            out.push(DATE);
            out.extend_from_slice(&((*d as u32) ^ 0x8000_0000).to_be_bytes());
        }
        Datum::Timestamp(t) | Datum::TimestampTz(t) => {
            out.push(if matches!(value, Datum::Timestamp(_)) { TIMESTAMP } else { TIMESTAMPTZ });
            out.extend_from_slice(&((*t as u64) ^ (1 << 63)).to_be_bytes());
        }
        Datum::Uuid(u) => {
            out.push(UUID);
            out.extend_from_slice(u);
        }
        // By span: `'1 day'` and `'24 hours'` are equal.
        Datum::Interval(i) => {
            out.push(INTERVAL);
            out.extend_from_slice(&((i.span() as u128) ^ (1 << 127)).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use denorm_types::numeric;
    use proptest::prelude::*;

    use super::*;

    const OPS: [BinaryOp; 6] =
        [BinaryOp::Eq, BinaryOp::NotEq, BinaryOp::Lt, BinaryOp::LtEq, BinaryOp::Gt, BinaryOp::GtEq];

    fn key(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        compare_key(v, &mut out);
        out
    }

    fn grid() -> Vec<Value> {
        let mut values = vec![Datum::Bool(false), Datum::Bool(true)];
        let big = 1i64 << 53;
        for i in [i64::MIN, i64::MIN + 1, -big - 1, -1, 0, 1, 2, big, big + 1, big + 2, i64::MAX - 1, i64::MAX] {
            values.push(Datum::Int(i));
        }
        for x in [f64::NEG_INFINITY, -1e300, -1.5, -1.0, -0.0, 0.0, 0.5, 1.0, 9007199254740992.0, 1e19, f64::INFINITY] {
            values.push(Datum::Float(x));
        }
        values.push(Datum::Float(f64::NAN));
        values.push(Datum::Float(-f64::NAN));
        for n in ["-2.50", "-0.001", "0", "0.00", "1", "1.0", "1.5", "1.50", "12345678901234567890.5"] {
            values.push(Datum::Numeric(numeric::parse(n).unwrap()));
        }
        for t in ["", "\0", "\0a", "a", "a\0", "ab", "b"] {
            values.push(Datum::Text(Cow::Owned(t.to_string())));
        }
        for b in [&b""[..], b"\0", b"\xff"] {
            values.push(Datum::Blob(Cow::Owned(b.to_vec())));
        }
        values.extend([Datum::Date(-1), Datum::Date(0), Datum::Date(1)]);
        values.extend([Datum::Timestamp(-5), Datum::Timestamp(7), Datum::TimestampTz(-5), Datum::TimestampTz(7)]);
        values.extend([Datum::Uuid([0; 16]), Datum::Uuid([1; 16])]);
        values
    }

    fn numeric_mix(a: &Value, b: &Value) -> bool {
        let numeric = |v: &Value| matches!(v, Datum::Numeric(_));
        let number = |v: &Value| matches!(v, Datum::Int(_) | Datum::Float(_));
        (numeric(a) && number(b)) || (number(a) && numeric(b))
    }

    #[test]
    fn keys_order_values_as_total_cmp_does() {
        let values = grid();
        for a in &values {
            for b in &values {
                if numeric_mix(a, b) {
                    continue;
                }
                assert_eq!(key(a).cmp(&key(b)), a.total_cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    /// The plain product + residual it replaces: every live outer row joined
    /// with the relation's row (or, under a LEFT JOIN, an all-NULL row) and
    /// filtered by `outer.#1 op g(scalar)` as the Filter operator evaluates it.
    fn product(comparison: &ScalarComparison, outer: &[(Row, Diff)], relation: &[(Row, Diff)]) -> Vec<(Row, Diff)> {
        let scalar: Vec<Datum<'_>> = match relation {
            [(row, 1)] => row.iter().collect(),
            [] if comparison.pad => vec![Datum::Null; comparison.scalar_arity],
            [] => return Vec::new(),
            _ => panic!("the test keeps at most one scalar row"),
        };
        let mut predicate = Expr::binary(comparison.op, comparison.outer.clone(), comparison.scalar.clone());
        predicate.remap_columns(&|c| c); // outer columns first, then the scalar's
        let mut shifted = comparison.scalar.clone();
        shifted.remap_columns(&|c| c + 2);
        let predicate = match predicate {
            Expr::Binary { op, left, .. } => Expr::Binary { op, left, right: Box::new(shifted) },
            _ => unreachable!(),
        };
        let mut out = Vec::new();
        for (row, diff) in outer {
            let joined: Vec<Datum<'_>> = row.iter().chain(scalar.iter().cloned()).collect();
            if predicate.holds(&joined, Dialect::Sqlite).unwrap() {
                out.push((row.clone(), *diff));
            }
        }
        consolidate_unordered(&mut out);
        out.sort();
        out
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            2 => Just(Datum::Null),
            6 => (-3i64..4).prop_map(Datum::Int),
            3 => (-6i32..8).prop_map(|h| Datum::Float(f64::from(h) * 0.5)),
            1 => Just(Datum::Float(-0.0)),
            1 => Just(Datum::Text(Cow::Borrowed("a"))),
        ]
    }

    /// Numerics among integers and doubles: `total_cmp` is not a total
    /// order there, so moves visit every row.
    fn mixed_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => value(),
            2 => (-4i64..5).prop_map(|t| Datum::Numeric(numeric::parse(&format!("{}", t as f64 * 0.5)).unwrap())),
        ]
    }

    #[derive(Debug, Clone)]
    enum Change {
        /// Inserts outer row (id, value).
        Insert(i64, Value),
        /// Deletes the n-th live outer row.
        Delete(usize),
        /// Replaces the scalar row (None: the relation becomes empty).
        Scalar(Option<Value>),
    }

    fn change(value: BoxedStrategy<Value>) -> impl Strategy<Value = Change> {
        prop_oneof![
            4 => ((0i64..3), value.clone()).prop_map(|(id, v)| Change::Insert(id, v)),
            2 => any::<usize>().prop_map(Change::Delete),
            2 => proptest::option::weighted(0.85, value).prop_map(Change::Scalar),
        ]
    }

    fn check(comparison: ScalarComparison, changes: &[Change], cuts: &[usize]) -> Result<(), TestCaseError> {
        let mut op = ScalarFilter::new(comparison.clone(), Dialect::Sqlite);
        let mut outer: Vec<(Row, Diff)> = Vec::new();
        let mut relation: Vec<(Row, Diff)> = Vec::new();
        let mut output: Vec<(Row, Diff)> = Vec::new();
        let mut rest = changes;
        for cut in cuts.iter().cycle() {
            let (now, later) = rest.split_at((*cut).min(rest.len()));
            rest = later;
            let (mut outer_delta, mut scalar_delta) = (Vec::new(), Vec::new());
            for c in now {
                match c {
                    Change::Insert(id, v) => {
                        let row = Row::pack([Datum::Int(*id), v.clone()]);
                        outer.push((row.clone(), 1));
                        outer_delta.push((row, 1));
                    }
                    Change::Delete(n) if !outer.is_empty() => {
                        let row = outer[n % outer.len()].0.clone();
                        outer.push((row.clone(), -1));
                        outer_delta.push((row, -1));
                    }
                    Change::Delete(_) => {}
                    Change::Scalar(v) => {
                        for (row, d) in &relation {
                            scalar_delta.push((row.clone(), -d));
                        }
                        relation = v.iter().map(|v| (Row::pack([v.clone(), Datum::Int(9)]), 1)).collect();
                        scalar_delta.extend(relation.iter().cloned());
                    }
                }
                consolidate_unordered(&mut outer);
                outer.retain(|(_, d)| *d != 0);
            }
            consolidate_unordered(&mut outer_delta);
            consolidate_unordered(&mut scalar_delta);
            let out = op.step(&outer_delta, &scalar_delta).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut check = out.clone();
            consolidate_unordered(&mut check);
            prop_assert_eq!(check.len(), out.len(), "the output is consolidated");
            output.extend(out);
            consolidate_unordered(&mut output);
            output.retain(|(_, d)| *d != 0);
            output.sort();
            prop_assert_eq!(&output, &product(&comparison, &outer, &relation));
            if rest.is_empty() {
                break;
            }
        }
        Ok(())
    }

    fn comparisons() -> impl Strategy<Value = ScalarComparison> {
        let scalar = prop_oneof![
            Just(Expr::Column(0)),
            Just(Expr::Coalesce(vec![Expr::Column(0), Expr::Literal(Datum::Int(1))])),
        ];
        (0..OPS.len(), scalar, any::<bool>()).prop_map(|(op, scalar, pad)| ScalarComparison {
            outer: Expr::Column(1),
            op: OPS[op],
            scalar,
            scalar_arity: 2,
            pad,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse::<u32>().ok()).map_or(256, |c| (c / 8).max(50))
        ))]

        /// Random batches of outer rows (ties, NULLs, 1 beside 1.0, -0.0)
        /// and scalar moves (through NULL and an empty relation): the
        /// accumulated output equals the product filtered from scratch.
        #[test]
        fn equals_the_filtered_product(
            comparison in comparisons(),
            changes in proptest::collection::vec(change(value().boxed()), 1..60),
            cuts in proptest::collection::vec(1usize..6, 1..6),
        ) {
            check(comparison, &changes, &cuts)?;
        }

        #[test]
        fn numerics_beside_other_numbers_visit_every_row(
            comparison in comparisons(),
            changes in proptest::collection::vec(change(mixed_value().boxed()), 1..60),
            cuts in proptest::collection::vec(1usize..6, 1..6),
        ) {
            check(comparison, &changes, &cuts)?;
        }
    }

    /// `g` failing (PostgreSQL's division by zero) fails the view only
    /// while outer rows are compared with it, as the product's filter
    /// would.
    #[test]
    fn a_failing_scalar_fails_only_over_outer_rows() {
        let inverse = Expr::binary(BinaryOp::Div, Expr::Literal(Datum::Int(1)), Expr::Column(0));
        let comparison =
            ScalarComparison { outer: Expr::Column(0), op: BinaryOp::Lt, scalar: inverse, scalar_arity: 1, pad: false };
        let mut op = ScalarFilter::new(comparison, Dialect::Postgres);
        let (zero, one) = (Row::pack([Datum::Int(0)]), Row::pack([Datum::Int(1)]));
        assert_eq!(op.step(&[], &[(zero.clone(), 1)]), Ok(Vec::new()), "no outer rows: nothing fails");
        let outer = [(Row::pack([Datum::Int(0)]), 1), (Row::pack([Datum::Int(5)]), 1)];
        let out = op.step(&outer, &[(zero.clone(), -1), (one.clone(), 1)]).unwrap();
        assert_eq!(out, vec![(Row::pack([Datum::Int(0)]), 1)], "0 < 1/1, with the scalar fixed in the same batch");
        assert_eq!(op.step(&[], &[(one, -1), (zero, 1)]), Err(EvalError::DivisionByZero));
    }

    #[test]
    fn a_move_visits_only_the_rows_between_the_thresholds() {
        let comparison = ScalarComparison {
            outer: Expr::Column(0),
            op: BinaryOp::Gt,
            scalar: Expr::Column(0),
            scalar_arity: 1,
            pad: false,
        };
        let mut op = ScalarFilter::new(comparison, Dialect::Sqlite);
        let outer: Vec<(Row, Diff)> = (0..1000).map(|i| (Row::pack([Datum::Int(i)]), 1)).collect();
        let scalar = |v: i64| Row::pack([Datum::Int(v)]);
        let out = op.step(&outer, &[(scalar(500), 1)]).unwrap();
        assert_eq!(out.len(), 499);
        let out = op.step(&[], &[(scalar(500), -1), (scalar(510), 1)]).unwrap();
        let mut out: Vec<i64> = out.iter().map(|(r, d)| r.get(0).as_f64().unwrap() as i64 * d).collect();
        out.sort();
        assert_eq!(out, (-510..=-501).collect::<Vec<_>>(), "rows 501 to 510 leave");
        let ranges = op.candidates(Some(&key(&Datum::Int(510))), Some(&key(&Datum::Int(490))));
        let visited: usize = ranges.into_iter().map(|r| op.rows.range(r).count()).sum();
        assert_eq!(visited, 21, "rows from 490 to 510");
    }
}
