//! Recognises an uncorrelated scalar subquery compared with the outer rows
//! and builds it as a [`ScalarFilter`] instead of a product.
//!
//! The planner joins an uncorrelated scalar subquery to its clause's input
//! as a product (a join on no key) with a relation of one row, and compares
//! under it:
//!
//! ```text
//!  Map (outer columns only)                 Map (remapped to the outer row)
//!    Filter  f(outer) op g(scalar) [AND …]    ScalarFilter f op g
//!      [Map]                            ══►     [Filter: the conjuncts over outer columns alone]
//!        LeftJoin / Join on TRUE                  outer
//!          outer                                scalar
//!          scalar (at most one row)
//! ```
//!
//! Recognised when: the join has no key (a LEFT JOIN with the scalar on the
//! right and no residual, or an inner join with the scalar on either side,
//! its residual joining the filter's conjuncts); the scalar side provably
//! has at most one row ([`Plan::at_most_one_row`]); a Map between the filter and
//! the join is read through (its expressions substituted); exactly one
//! conjunct reads
//! the scalar's columns, and it is a comparison of an expression over the
//! outer columns with one over the scalar's; and the projection above reads
//! only outer columns (a view showing the scalar changes every row when it
//! moves: the product is as good there). Any other shape is built as
//! written.

use denorm_expr::{BinaryOp, Expr, JoinKind, Plan};
use denorm_types::{Catalog, Dialect};

use super::{Graph, NodeId, Operator};
use crate::executor::BuildError;
use crate::operator::{Filter, Map, ScalarComparison, ScalarFilter};

/// A recognised shape, its expressions renumbered to the outer row (and the
/// comparison's scalar side to the scalar row).
#[derive(Debug)]
struct Shape<'p> {
    outer: &'p Plan,
    scalar: &'p Plan,
    comparison: ScalarComparison,
    /// Conjuncts over the outer columns alone, filtered before.
    outer_filter: Vec<Expr>,
    /// The projection above the filter.
    project: Vec<Expr>,
}

impl Graph {
    /// Builds `Map exprs (input)` as a [`ScalarFilter`] when it has the
    /// shape of the module documentation; `None` otherwise.
    pub(super) fn scalar_filter(
        &mut self,
        exprs: &[Expr],
        input: &Plan,
        catalog: &Catalog,
        dialect: Dialect,
    ) -> Result<Option<NodeId>, BuildError> {
        let Some(shape) = shape(exprs, input) else { return Ok(None) };
        let mut outer = self.build(shape.outer, catalog, dialect)?;
        if let Some(predicate) = shape.outer_filter.into_iter().reduce(|a, b| Expr::binary(BinaryOp::And, a, b)) {
            outer = self.node(format!("Filter {predicate:?}"), vec![outer], || {
                Operator::Filter(Filter::new(predicate, dialect))
            });
        }
        let scalar = self.build(shape.scalar, catalog, dialect)?;
        let comparison = shape.comparison;
        let id = self.node(format!("ScalarFilter {comparison:?}"), vec![outer, scalar], || {
            Operator::ScalarFilter(ScalarFilter::new(comparison, dialect))
        });
        let exprs = shape.project;
        let identity =
            exprs.len() == shape.outer.arity() && exprs.iter().enumerate().all(|(i, e)| *e == Expr::Column(i));
        if identity {
            return Ok(Some(id));
        }
        Ok(Some(self.node(format!("Map {exprs:?}"), vec![id], || Operator::Map(Map::new(exprs, dialect)))))
    }
}

fn shape<'p>(exprs: &[Expr], input: &'p Plan) -> Option<Shape<'p>> {
    let (join, filter, exprs) = match input {
        // A Map between the filter and the join (`coalesce(count, 0)` of
        // an absent COUNT) is read through: the filter and the projection
        // are rewritten over the join's row.
        Plan::Filter { input, predicate } => match &**input {
            Plan::Map { input: join, exprs: computed } => (
                &**join,
                Some(predicate.substitute(computed)?),
                exprs.iter().map(|e| e.substitute(computed)).collect::<Option<Vec<_>>>()?,
            ),
            join => (join, Some(predicate.clone()), exprs.to_vec()),
        },
        join => (join, None, exprs.to_vec()),
    };
    let Plan::Join { left, right, kind, left_key, residual, .. } = join else { return None };
    if !left_key.is_empty() {
        return None;
    }
    let scalar_on_left = match kind {
        JoinKind::Left if residual.is_none() && right.at_most_one_row() => false,
        JoinKind::Inner if right.at_most_one_row() => false,
        JoinKind::Inner if left.at_most_one_row() => true,
        _ => return None,
    };
    let (outer, scalar) = if scalar_on_left { (&**right, &**left) } else { (&**left, &**right) };
    let side = if scalar_on_left {
        Columns { outer_at: left.arity(), outer_arity: outer.arity(), scalar_at: 0, scalar_arity: scalar.arity() }
    } else {
        Columns { outer_at: 0, outer_arity: outer.arity(), scalar_at: left.arity(), scalar_arity: scalar.arity() }
    };
    let project = exprs.iter().map(|e| side.outer(e)).collect::<Option<Vec<_>>>()?;
    let mut conjuncts = Vec::new();
    filter.iter().chain(residual.as_ref()).for_each(|e| split_and(e, &mut conjuncts));
    let pad = *kind == JoinKind::Left;
    let mut comparison = None;
    let mut outer_filter = Vec::new();
    for conjunct in conjuncts {
        if let Some(e) = side.outer(conjunct) {
            outer_filter.push(e);
        } else if comparison.is_none() {
            comparison = Some(side.comparison(conjunct, pad)?);
        } else {
            return None;
        }
    }
    Some(Shape { outer, scalar, comparison: comparison?, outer_filter, project })
}

/// Where the two sides' columns sit in the joined row.
#[derive(Debug)]
struct Columns {
    outer_at: usize,
    outer_arity: usize,
    scalar_at: usize,
    scalar_arity: usize,
}

impl Columns {
    /// `e` over the outer row, when it reads only outer columns.
    fn outer(&self, e: &Expr) -> Option<Expr> {
        within(e, self.outer_at, self.outer_arity)
    }

    /// `e` over the scalar row, when it reads only the scalar's columns.
    fn scalar(&self, e: &Expr) -> Option<Expr> {
        within(e, self.scalar_at, self.scalar_arity)
    }

    /// `outer op scalar` (either way round) as a comparison.
    fn comparison(&self, e: &Expr, pad: bool) -> Option<ScalarComparison> {
        let Expr::Binary { op, left, right } = e else { return None };
        let flipped = match op {
            BinaryOp::Eq | BinaryOp::NotEq => *op,
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            _ => return None,
        };
        let (outer, op, scalar) = match (self.outer(left), self.scalar(right)) {
            (Some(f), Some(g)) => (f, *op, g),
            _ => (self.outer(right)?, flipped, self.scalar(left)?),
        };
        Some(ScalarComparison { outer, op, scalar, scalar_arity: self.scalar_arity, pad })
    }
}

/// `e` renumbered from columns `at..at + arity` of the joined row, when it
/// reads no other.
fn within(e: &Expr, at: usize, arity: usize) -> Option<Expr> {
    if !e.columns().iter().all(|c| (at..at + arity).contains(c)) {
        return None;
    }
    let mut e = e.clone();
    e.remap_columns(&|c| c - at);
    Some(e)
}

fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::Binary { op: BinaryOp::And, left, right } => {
            split_and(left, out);
            split_and(right, out);
        }
        e => out.push(e),
    }
}
