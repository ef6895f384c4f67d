//! Stateless row-at-a-time operators: Filter and Map.

use denorm_expr::{EvalError, Expr};
use denorm_types::{Datum, Dialect, Diff, Row, RowPacker};

/// How many leading columns of a row `exprs` read: a row is decoded only
/// that far (a filter on a wide table's fifth column decodes five).
fn width<'e>(exprs: impl IntoIterator<Item = &'e Expr>) -> usize {
    let mut width = 0;
    for e in exprs {
        e.visit_columns(&mut |c| width = width.max(c + 1));
    }
    width
}

/// Keeps the rows whose predicate is TRUE.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) predicate: Expr,
    pub(crate) dialect: Dialect,
    /// The leading columns the predicate reads (see [`width`]).
    width: usize,
}

impl Filter {
    pub(crate) fn new(predicate: Expr, dialect: Dialect) -> Self {
        let width = width([&predicate]);
        Filter { predicate, dialect, width }
    }

    pub(crate) fn step(&self, input: &[(Row, Diff)]) -> Result<Vec<(Row, Diff)>, EvalError> {
        let mut out = Vec::with_capacity(input.len());
        let mut datums: Vec<Datum<'_>> = Vec::new();
        for (row, diff) in input {
            datums.clear();
            datums.extend(row.iter().take(self.width));
            if self.predicate.holds(&datums, self.dialect)? {
                out.push((row.clone(), *diff));
            }
        }
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
    /// The leading columns the expressions read (see [`width`]).
    width: usize,
}

impl Map {
    pub(crate) fn exprs(&self) -> &[Expr] {
        &self.exprs
    }

    pub(crate) fn new(exprs: Vec<Expr>, dialect: Dialect) -> Self {
        let columns = exprs.iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None }).collect();
        let width = width(&exprs);
        Map { exprs, columns, dialect, width }
    }

    pub(crate) fn step(&self, input: &[(Row, Diff)]) -> Result<Vec<(Row, Diff)>, EvalError> {
        let mut out = Vec::with_capacity(input.len());
        let mut packer = RowPacker::new();
        let mut spans = Vec::new();
        let mut datums: Vec<Datum<'_>> = Vec::new();
        for (row, diff) in input {
            match &self.columns {
                Some(columns) => {
                    row.spans_of_first(self.width, &mut spans);
                    for &c in columns {
                        packer.push_encoded(row, spans[c]);
                    }
                }
                None => {
                    datums.clear();
                    datums.extend(row.iter().take(self.width));
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
