//! Stateless row-at-a-time operators: Filter and Map.

use denorm_expr::{EvalError, Expr};
use denorm_types::{Datum, Dialect, Diff, Row, RowPacker};

/// Keeps the rows whose predicate is TRUE.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) predicate: Expr,
    pub(crate) dialect: Dialect,
}

impl Filter {
    pub(crate) fn step(&self, input: &[(Row, Diff)]) -> Result<Vec<(Row, Diff)>, EvalError> {
        let mut out = Vec::with_capacity(input.len());
        let mut datums: Vec<Datum<'_>> = Vec::new();
        for (row, diff) in input {
            datums.clear();
            datums.extend(row.iter());
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
}

impl Map {
    pub(crate) fn exprs(&self) -> &[Expr] {
        &self.exprs
    }

    pub(crate) fn new(exprs: Vec<Expr>, dialect: Dialect) -> Self {
        let columns = exprs.iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None }).collect();
        Map { exprs, columns, dialect }
    }

    pub(crate) fn step(&self, input: &[(Row, Diff)]) -> Result<Vec<(Row, Diff)>, EvalError> {
        let mut out = Vec::with_capacity(input.len());
        let mut packer = RowPacker::new();
        let mut spans = Vec::new();
        for (row, diff) in input {
            match &self.columns {
                Some(columns) => {
                    row.spans(&mut spans);
                    for &c in columns {
                        packer.push_encoded(row, spans[c]);
                    }
                }
                None => {
                    let datums: Vec<Datum<'_>> = row.iter().collect();
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
