//! A filter over a column projection of a source table is fused with it.
//!
//! Column pruning projects every source table right at its input, and the
//! planner's WHERE terms sit above that projection:
//!
//! ```text
//!  Filter p
//!    Map #a, #b, …      ══►   Filter p' emitting #a, #b, …   (p' reads the table's columns)
//!      Get t                    Get t
//! ```
//!
//! Built as written, every row of the table is re-packed into a new row
//! before the filter drops most of them (a TPC-H view keeps one line item
//! in 10 to 100): a snapshot allocated and copied the whole table once per
//! view. Fused, the filter reads the table's rows as they are (one walk
//! over a row's leading columns, decoding only those the predicate reads,
//! see `operator::map`) and re-packs only the rows it keeps. The results
//! are the same: a column projection neither fails nor changes a value, so
//! each row is kept or dropped on the same values either way.

use denorm_expr::{Expr, Plan};
use denorm_types::{Catalog, Dialect};

use super::{Graph, NodeId, Operator};
use crate::executor::BuildError;
use crate::operator::Filter;

/// The source table, the projected columns and the predicate read over the
/// table's columns, when `Filter predicate (input)` is a filter over a
/// column projection of a source table; `None` for any other shape.
fn below_projection<'p>(input: &'p Plan, predicate: &Expr) -> Option<(&'p Plan, Vec<usize>, Expr)> {
    let Plan::Map { input: table, exprs } = input else { return None };
    if !matches!(**table, Plan::Get { .. }) {
        return None;
    }
    let columns: Vec<usize> =
        exprs.iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None }).collect::<Option<_>>()?;
    if predicate.columns().iter().any(|&c| c >= columns.len()) {
        return None;
    }
    let mut predicate = predicate.clone();
    predicate.remap_columns(&|c| columns[c]);
    Some((table, columns, predicate))
}

impl Graph {
    /// Builds `Filter predicate (input)` as one filter emitting a column
    /// projection of a source table's rows (see the module documentation);
    /// `None` for any other shape.
    pub(super) fn filter_below_projection(
        &mut self,
        input: &Plan,
        predicate: &Expr,
        catalog: &Catalog,
        dialect: Dialect,
    ) -> Result<Option<NodeId>, BuildError> {
        let Some((table, columns, predicate)) = below_projection(input, predicate) else { return Ok(None) };
        let table = self.build(table, catalog, dialect)?;
        let id = self.node(format!("Filter {predicate:?} emitting {columns:?}"), vec![table], || {
            Operator::Filter(Filter::projecting(predicate, columns, dialect))
        });
        Ok(Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_expr::BinaryOp;
    use denorm_types::Datum;

    fn get() -> Plan {
        Plan::Get { table: "t".into(), arity: 5 }
    }

    #[test]
    fn a_filter_over_a_projection_of_a_table_reads_the_tables_columns() {
        let projection = Plan::Map { input: Box::new(get()), exprs: vec![Expr::Column(4), Expr::Column(1)] };
        let predicate = Expr::binary(BinaryOp::Gt, Expr::Column(0), Expr::Literal(Datum::Int(3).into_owned()));
        let (table, columns, predicate) = below_projection(&projection, &predicate).expect("fused");
        assert_eq!(*table, get());
        assert_eq!(columns, vec![4, 1]);
        assert_eq!(predicate.columns(), vec![4]);
    }

    #[test]
    fn the_graph_holds_one_filter_emitting_the_projection() {
        use denorm_types::{ColumnSchema, ScalarType, TableSchema};
        let mut catalog = Catalog::new();
        let columns = (0..5).map(|i| ColumnSchema { name: format!("c{i}"), ty: ScalarType::Int, nullable: true });
        catalog.add(TableSchema {
            name: "t".into(),
            columns: columns.collect(),
            primary_key: vec![0],
            unique_keys: vec![],
        });
        let projection = Plan::Map { input: Box::new(get()), exprs: vec![Expr::Column(4), Expr::Column(1)] };
        let predicate = Expr::binary(BinaryOp::Gt, Expr::Column(0), Expr::Literal(Datum::Int(3).into_owned()));
        let mut graph = Graph::default();
        let root =
            graph.build(&Plan::Filter { input: Box::new(projection), predicate }, &catalog, Dialect::Sqlite).unwrap();
        assert_eq!(graph.nodes.len(), 2, "the table's input and the filter");
        let Operator::Filter(filter) = &graph.nodes[root].operator else { panic!("a filter at the root") };
        assert_eq!(filter.project, Some(vec![4, 1]));
        assert_eq!(filter.predicate.columns(), vec![4]);
    }

    #[test]
    fn other_shapes_are_kept() {
        let predicate = Expr::binary(BinaryOp::Gt, Expr::Column(0), Expr::Column(1));
        assert!(below_projection(&get(), &predicate).is_none());
        let computed = Plan::Map {
            input: Box::new(get()),
            exprs: vec![Expr::binary(BinaryOp::Add, Expr::Column(0), Expr::Column(1)), Expr::Column(2)],
        };
        assert!(below_projection(&computed, &predicate).is_none());
        let over_filter = Plan::Map {
            input: Box::new(Plan::Filter { input: Box::new(get()), predicate: predicate.clone() }),
            exprs: vec![Expr::Column(0), Expr::Column(1)],
        };
        assert!(below_projection(&over_filter, &predicate).is_none());
    }
}
