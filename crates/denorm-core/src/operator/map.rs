//! Stateless row-at-a-time operators: Filter and Map.

use denorm_expr::{EvalError, Expr};
use denorm_types::{consolidate_unordered, Datum, Dialect, Diff, Row, RowPacker, RowRef};

/// How many leading columns of a row `exprs` read: a row is decoded only
/// that far (a filter on a wide table's fifth column decodes five).
fn width<'e>(exprs: impl IntoIterator<Item = &'e Expr>) -> usize {
    let mut width = 0;
    for e in exprs {
        e.visit_columns(&mut |c| width = width.max(c + 1));
    }
    width
}

/// Decodes the columns some expressions read, and only those: a filter
/// over a source table's row (see `graph/projection.rs`) reads a few of
/// its leading columns, and the others are skipped by their encoded length
/// rather than decoded (a text column is not validated, a number not
/// parsed). The columns not read hold NULL.
#[derive(Debug, Clone)]
struct Columns {
    /// The leading columns the expressions read (see [`width`]).
    width: usize,
    /// The columns read, ascending, when some column below `width` is not
    /// read; `None` when all are (then the row is decoded in one walk).
    sparse: Option<Vec<usize>>,
}

impl Columns {
    fn new<'e>(exprs: impl IntoIterator<Item = &'e Expr> + Clone) -> Self {
        let width = width(exprs.clone());
        let mut read: Vec<usize> = exprs.into_iter().flat_map(Expr::columns).collect();
        read.sort_unstable();
        read.dedup();
        let sparse = (read.len() < width).then_some(read);
        Columns { width, sparse }
    }

    /// Sets, in `datums`, the columns of `row` the expressions read, using
    /// `spans` as scratch. `datums` is the caller's, kept from row to row:
    /// once sized, only the columns read are overwritten (the others stay
    /// NULL), so a row costs no clearing or refilling.
    fn decode<'r>(&self, row: &'r Row, datums: &mut Vec<Datum<'r>>, spans: &mut Vec<(u32, u32)>) {
        let Some(read) = &self.sparse else {
            datums.clear();
            datums.extend(row.iter().take(self.width));
            return;
        };
        row.spans_of_first(self.width, spans);
        self.decode_spans(row, spans, read, datums);
    }

    /// Sets, in `datums`, the columns in `read` of `row`, whose column
    /// spans (at least `width` of them, when the row has that many) are
    /// `spans`.
    fn decode_spans<'r>(&self, row: &'r Row, spans: &[(u32, u32)], read: &[usize], datums: &mut Vec<Datum<'r>>) {
        if datums.len() != self.width {
            datums.clear();
            datums.resize(self.width, Datum::Null);
        }
        let bytes = row.as_bytes();
        for &c in read {
            // A row shorter than `width` (the planner's bug, not input):
            // its missing columns read as NULL.
            let datum = spans.get(c).and_then(|&(start, end)| {
                let encoded = &bytes[start as usize..end as usize];
                // Packed datums are self-delimiting: one datum's bytes are a row.
                RowRef::from_prefix(encoded, encoded.len()).iter().next()
            });
            datums[c] = datum.unwrap_or(Datum::Null);
        }
    }
}

/// Keeps the rows whose predicate is TRUE. A filter over a column
/// projection of a source table may run fused with it (see
/// [`Filter::projecting`]).
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    /// Over the filter's input node's columns (what the planner wrote).
    pub(crate) predicate: Expr,
    pub(crate) dialect: Dialect,
    /// The columns the predicate reads (see [`Columns`]).
    columns: Columns,
    /// When fused: the projection's columns and the predicate over the
    /// table's columns.
    pub(crate) fused: Option<Fused>,
}

/// A filter fused with the column projection of a source table below it:
/// it reads the table's rows and emits the projection of those it keeps.
#[derive(Debug, Clone)]
pub(crate) struct Fused {
    /// The table's columns the projection keeps, in its order.
    pub(crate) project: Vec<usize>,
    /// The filter's predicate read over the table's columns.
    predicate: Expr,
    /// The columns of the table `predicate` reads.
    columns: Columns,
}

impl Filter {
    pub(crate) fn new(predicate: Expr, dialect: Dialect) -> Self {
        let columns = Columns::new([&predicate]);
        Filter { predicate, dialect, columns, fused: None }
    }

    /// The filter `predicate` over the projection `project` of a source
    /// table, run fused: its [`Filter::step`] takes the table's rows, not
    /// the projection's. `None` when `predicate` reads past the projection.
    pub(crate) fn projecting(predicate: Expr, project: Vec<usize>, dialect: Dialect) -> Option<Self> {
        if predicate.columns().iter().any(|&c| c >= project.len()) {
            return None;
        }
        let mut over_table = predicate.clone();
        over_table.remap_columns(&|c| project[c]);
        let columns = Columns::new([&over_table]);
        let fused = Fused { project, predicate: over_table, columns };
        Some(Filter { fused: Some(fused), ..Filter::new(predicate, dialect) })
    }

    /// The rows of `input` the predicate keeps; fused, `input` is the
    /// table's rows and the kept rows come out projected.
    pub(crate) fn step(&self, input: &[(Row, Diff)]) -> Result<Vec<(Row, Diff)>, EvalError> {
        if let Some(fused) = &self.fused {
            return self.step_projecting(input, fused);
        }
        let mut out = Vec::with_capacity(input.len());
        let mut datums: Vec<Datum<'_>> = Vec::new();
        let mut spans = Vec::new();
        for (row, diff) in input {
            self.columns.decode(row, &mut datums, &mut spans);
            if self.predicate.holds(&datums, self.dialect)? {
                out.push((row.clone(), *diff));
            }
        }
        Ok(out)
    }

    /// One walk over each row's leading columns finds both what the
    /// predicate reads and what a kept row is re-packed from; a dropped
    /// row costs no allocation.
    fn step_projecting(&self, input: &[(Row, Diff)], fused: &Fused) -> Result<Vec<(Row, Diff)>, EvalError> {
        let project = &fused.project;
        let width = project.iter().map(|&c| c + 1).max().unwrap_or(0).max(fused.columns.width);
        let read = fused.predicate.columns();
        let mut out = Vec::new();
        let mut packer = RowPacker::new();
        let mut datums: Vec<Datum<'_>> = Vec::new();
        let mut spans = Vec::new();
        for (row, diff) in input {
            row.spans_of_first(width, &mut spans);
            fused.columns.decode_spans(row, &spans, &read, &mut datums);
            if fused.predicate.holds(&datums, self.dialect)? {
                for &c in project {
                    packer.push_encoded(row, spans[c]);
                }
                out.push((packer.finish(), *diff));
            }
        }
        // As a projection's output is (see the executor): an update of a
        // column the projection drops is a pair of equal rows that cancel
        // here rather than in every arrangement and join downstream.
        consolidate_unordered(&mut out);
        Ok(out)
    }
}

/// Computes one output row per input row. When every expression is a column
/// reference the row is re-packed by copying encoded bytes, without
/// evaluating anything.
#[derive(Debug, Clone)]
pub(crate) struct Map {
    exprs: Vec<Expr>,
    columns: Option<Vec<usize>>,
    dialect: Dialect,
    /// The columns the expressions read (see [`Columns`]).
    reads: Columns,
}

impl Map {
    pub(crate) fn exprs(&self) -> &[Expr] {
        &self.exprs
    }

    pub(crate) fn new(exprs: Vec<Expr>, dialect: Dialect) -> Self {
        let columns = exprs.iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None }).collect();
        let reads = Columns::new(&exprs);
        Map { exprs, columns, dialect, reads }
    }

    pub(crate) fn step(&self, input: &[(Row, Diff)]) -> Result<Vec<(Row, Diff)>, EvalError> {
        let mut out = Vec::with_capacity(input.len());
        let mut packer = RowPacker::new();
        let mut spans = Vec::new();
        let mut datums: Vec<Datum<'_>> = Vec::new();
        for (row, diff) in input {
            match &self.columns {
                Some(columns) => {
                    row.spans_of_first(self.reads.width, &mut spans);
                    for &c in columns {
                        packer.push_encoded(row, spans[c]);
                    }
                }
                None => {
                    self.reads.decode(row, &mut datums, &mut spans);
                    for e in &self.exprs {
                        packer.push(&e.eval(&datums, self.dialect)?);
                    }
                }
            }
            out.push((packer.finish(), *diff));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_expr::BinaryOp;
    use proptest::prelude::*;

    fn datum(kind: u8, n: i64) -> Datum<'static> {
        match kind % 5 {
            0 => Datum::Null,
            1 => Datum::Int(n),
            2 => Datum::Float(n as f64 / 8.0),
            3 => Datum::owned_text(format!("text {n} é")),
            _ => Datum::Bool(n % 2 == 0),
        }
    }

    #[test]
    fn an_update_of_a_column_the_projection_drops_cancels() {
        let row = |x: i64, dropped: &str| Row::pack([Datum::Int(x), Datum::owned_text(dropped)]);
        let predicate = Expr::binary(BinaryOp::Gt, Expr::Column(0), Expr::Literal(Datum::Int(0).into_owned()));
        let filter = Filter::projecting(predicate, vec![0], Dialect::Sqlite).expect("reads the projection");
        let update = [(row(5, "old comment"), -1), (row(5, "new comment"), 1), (row(7, "kept"), 1)];
        let out = filter.step(&update).unwrap();
        assert_eq!(out, vec![(Row::pack([Datum::Int(7)]), 1)]);
    }

    proptest! {
        /// Decoding only the columns read gives, in those columns, what
        /// decoding the whole row gives, and the filter keeps the same rows
        /// as a predicate evaluated over the fully decoded row.
        #[test]
        fn sparse_decoding_equals_full_decoding(
            cells in proptest::collection::vec((0u8..5, -50i64..50), 1..12),
            read in proptest::collection::vec(0usize..12, 1..4),
            threshold in -50i64..50,
            shift in 0usize..12,
        ) {
            let row = Row::pack(cells.iter().map(|&(k, n)| datum(k, n)));
            let full: Vec<Datum<'_>> = row.iter().collect();
            let read: Vec<usize> = read.into_iter().map(|c| c % cells.len()).collect();
            let exprs: Vec<Expr> = read.iter().map(|&c| Expr::Column(c)).collect();
            let columns = Columns::new(&exprs);
            let (mut datums, mut spans) = (Vec::new(), Vec::new());
            columns.decode(&row, &mut datums, &mut spans);
            // Twice: the second row's columns overwrite the first's.
            let other = Row::pack(cells.iter().map(|&(k, n)| datum(k + 1, n + 1)));
            columns.decode(&other, &mut datums, &mut spans);
            columns.decode(&row, &mut datums, &mut spans);
            prop_assert_eq!(datums.len(), columns.width);
            for &c in &read {
                prop_assert_eq!(&datums[c], &full[c]);
            }
            let predicate = read.iter().fold(Expr::Literal(Datum::Bool(true).into_owned()), |acc, &c| {
                let term = Expr::binary(BinaryOp::Gt, Expr::Column(c), Expr::Literal(Datum::Int(threshold).into_owned()));
                Expr::binary(BinaryOp::Or, acc, term)
            });
            let kept = Filter::new(predicate.clone(), Dialect::Sqlite).step(&[(row.clone(), 1)]);
            let want = predicate.holds(&full, Dialect::Sqlite);
            prop_assert_eq!(kept.map(|k| !k.is_empty()), want.clone());
            // Fused with a column projection `project` of the row: the
            // predicate read over the projection keeps the projected row.
            let mut project: Vec<usize> = (0..cells.len()).rev().collect();
            project.rotate_left(shift % cells.len());
            let mut over_projection = predicate.clone();
            over_projection.remap_columns(&|c| project.iter().position(|&p| p == c).expect("projected"));
            let fused = Filter::projecting(over_projection, project.clone(), Dialect::Sqlite).expect("reads the projection");
            let projected = fused.step(&[(row.clone(), 1)]);
            let want_row = Row::pack(project.iter().map(|&c| full[c].clone()));
            let want = want.map(|kept| if kept { vec![(want_row, 1)] } else { Vec::new() });
            prop_assert_eq!(projected, want);
        }
    }
}
