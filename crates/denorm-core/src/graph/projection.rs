//! A filter over a column projection of a source table runs fused with it.
//!
//! Column pruning projects every source table right at its input, and the
//! planner's WHERE terms sit above that projection:
//!
//! ```text
//!  Filter p
//!    Map #a, #b, …
//!      Get t
//! ```
//!
//! Run as written, every row of the table is re-packed into a new row
//! before the filter drops most of them (a TPC-H view keeps one line item
//! in 10 to 100): a snapshot allocated and copied the whole table once per
//! view. The graph keeps the three nodes (their signatures, hence
//! checkpoints, are unchanged), but the filter runs fused: it reads the
//! table's rows (the projection's input, see the executor's `input_of`),
//! with its predicate renumbered over the table's columns, decodes only
//! the columns that predicate reads (see `operator::map`) and re-packs
//! only the rows it keeps, as the projection would have. The projection
//! itself does not run while fused filters are its only readers. The
//! results are the same: a column projection neither fails nor changes a
//! value, so each row is kept or dropped on the same values either way.

use denorm_expr::{Expr, Plan};
use denorm_types::Dialect;

use crate::operator::Filter;

/// The columns of the source table that `input` projects, when it is a
/// column projection of a source table.
fn table_projection(input: &Plan) -> Option<Vec<usize>> {
    let Plan::Map { input: table, exprs } = input else { return None };
    if !matches!(**table, Plan::Get { .. }) {
        return None;
    }
    exprs.iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None }).collect()
}

/// The operator of `Filter predicate (input)`: fused with `input` when that
/// is a column projection of a source table (see the module
/// documentation), else a plain filter.
pub(super) fn filter_over(input: &Plan, predicate: Expr, dialect: Dialect) -> Filter {
    table_projection(input)
        .and_then(|project| Filter::projecting(predicate.clone(), project, dialect))
        .unwrap_or_else(|| Filter::new(predicate, dialect))
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_expr::BinaryOp;
    use denorm_types::{Catalog, ColumnSchema, Datum, ScalarType, TableSchema};

    use crate::graph::{Graph, Operator};

    fn get() -> Plan {
        Plan::Get { table: "t".into(), arity: 5 }
    }

    fn gt3(c: usize) -> Expr {
        Expr::binary(BinaryOp::Gt, Expr::Column(c), Expr::Literal(Datum::Int(3).into_owned()))
    }

    #[test]
    fn a_filter_over_a_projection_of_a_table_reads_the_tables_columns() {
        let projection = Plan::Map { input: Box::new(get()), exprs: vec![Expr::Column(4), Expr::Column(1)] };
        let filter = filter_over(&projection, gt3(0), Dialect::Sqlite);
        let fused = filter.fused.expect("fused");
        assert_eq!(fused.project, vec![4, 1]);
        // The predicate the planner wrote stays, over the projection.
        assert_eq!(filter.predicate, gt3(0));
    }

    fn catalog() -> Catalog {
        let mut catalog = Catalog::new();
        let columns = (0..5).map(|i| ColumnSchema { name: format!("c{i}"), ty: ScalarType::Int, nullable: true });
        catalog.add(TableSchema {
            name: "t".into(),
            columns: columns.collect(),
            primary_key: vec![0],
            unique_keys: vec![],
        });
        catalog
    }

    /// A dataflow runs the fused filter and not the projection below it;
    /// an update of a column the projection drops changes nothing.
    #[test]
    fn a_dataflow_runs_the_fused_filter_alone() {
        use crate::{Dataflow, Runtime, SourceBatch};
        use denorm_types::{Position, Row};
        let row = |id: i64, x: i64, y: i64| Row::pack([id, x, 0, 0, y].map(Datum::Int));
        let projection = Plan::Map { input: Box::new(get()), exprs: vec![Expr::Column(4), Expr::Column(0)] };
        let plan = Plan::Filter { input: Box::new(projection), predicate: gt3(0) };
        let mut flow = Dataflow::new(catalog(), Dialect::Sqlite);
        let view = flow.add_view("v", &plan, vec![1], true).unwrap();
        assert_eq!(flow.skipped.iter().filter(|&&s| s).count(), 1, "the projection does not run");
        let batch = |position, tables| SourceBatch { position: Position(position), tables: vec![("t".into(), tables)] };
        flow.apply(&batch(1, (0..8).map(|i| (row(i, 0, i), 1)).collect()));
        flow.apply(&batch(2, vec![(row(5, 0, 5), -1), (row(5, 9, 5), 1), (row(6, 0, 6), -1), (row(6, 0, 1), 1)]));
        let mut rows: Vec<_> =
            flow.view_rows(view).into_iter().map(|(r, d)| (r.unpack()[1].clone().into_owned(), d)).collect();
        rows.sort_by_key(|(id, _)| format!("{id:?}"));
        assert_eq!(rows, vec![(Datum::Int(4), 1), (Datum::Int(5), 1), (Datum::Int(7), 1)]);
    }

    #[test]
    fn the_graph_keeps_its_nodes_and_signatures() {
        let catalog = catalog();
        let projection = Plan::Map { input: Box::new(get()), exprs: vec![Expr::Column(4), Expr::Column(1)] };
        let plan = Plan::Filter { input: Box::new(projection), predicate: gt3(0) };
        let mut graph = Graph::default();
        let root = graph.build(&plan, &catalog, Dialect::Sqlite).unwrap();
        assert_eq!(graph.nodes.len(), 3, "the table's input, the projection and the filter");
        assert!(graph.signatures()[root].starts_with("Filter "), "{:?}", graph.signatures());
        let Operator::Filter(filter) = &graph.nodes[root].operator else { panic!("a filter at the root") };
        assert!(filter.fused.is_some());
    }

    #[test]
    fn other_shapes_are_kept() {
        let computed = Plan::Map {
            input: Box::new(get()),
            exprs: vec![Expr::binary(BinaryOp::Add, Expr::Column(0), Expr::Column(1)), Expr::Column(2)],
        };
        let over_filter = Plan::Map {
            input: Box::new(Plan::Filter { input: Box::new(get()), predicate: gt3(0) }),
            exprs: vec![Expr::Column(0), Expr::Column(1)],
        };
        for input in [get(), computed, over_filter] {
            assert!(filter_over(&input, gt3(0), Dialect::Sqlite).fused.is_none());
        }
    }
}
