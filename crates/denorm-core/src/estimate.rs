//! An estimate of the operator state a dataflow will hold, from the
//! source's statistics, before any row is loaded (`denorm check`, and the
//! memory budget at start).
//!
//! Each node's output is estimated as a row count and, per column, an
//! average encoded width and a number of distinct values, in topological
//! order: a table gives its row count and its columns' figures
//! ([`TableStats`]); a filter keeps the share of rows its predicate is
//! guessed to keep (`selectivity`: a planner's textbook guesses from the
//! distinct values); maps keep the figures of the columns they copy and
//! take [`COMPUTED_WIDTH`] for computed ones; an equi-join gives
//! `|L|·|R| / max(distinct keys)` rows (an outer join at least its
//! preserved side), a product the product; a GROUP BY as many groups as its key columns have distinct
//! values together (their product, at most the input rows; one for a global
//! aggregate), plus the batch buffers it keeps for reuse; an arrangement as
//! many groups as its key has distinct values; a top-k keeps all its input
//! (a bounded top-k over a join, k per partition).
//! Each stateful node then costs its rows times the bytes per row its
//! structure takes (the slot in its hash table at a typical load, the heap
//! buffer of a row longer than [`Row::INLINE`], as `memory.rs` counts them).
//! It is an estimate and is labelled so; the exact figure is
//! [`Dataflow::state_bytes`] once loaded.

use std::collections::HashMap;
use std::mem::size_of;

use denorm_expr::{Expr, JoinKind};
use denorm_types::{Diff, Row};

use crate::graph::Operator;
use crate::operator::KEEP_SCRATCH;
use crate::Dataflow;

/// What the source says about a table: its rows, the average encoded
/// width of each column (in denorm's row encoding: a tag byte and the
/// payload; see `denorm_types::row`) and, when known, each column's number
/// of distinct values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableStats {
    pub rows: f64,
    pub widths: Vec<f64>,
    /// Per column; `None` (or absent) counts the column as unique.
    pub distinct: Vec<Option<f64>>,
}

/// One stateful node's estimated state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateEstimate {
    /// The first view reading the node (as in [`Dataflow::state_bytes`]).
    pub view: String,
    /// The node, labelled as [`Dataflow::state_bytes`] labels it.
    pub operator: String,
    /// Rows (or groups) the node is expected to hold.
    pub rows: f64,
    pub bytes: f64,
}

/// One view's estimated output.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRowsEstimate {
    pub view: String,
    pub rows: f64,
    /// Average encoded bytes of one row.
    pub width: f64,
}

/// The width assumed for a computed column (a number: a tag and 8 bytes).
pub const COMPUTED_WIDTH: f64 = 9.0;

/// A hash table's average load: hashbrown keeps between 7/16 and 7/8 full.
const HASH_LOAD: f64 = 0.65;
/// The group table of a GROUP BY keeps between 3/8 and 3/4 full, with
/// 64-byte slots and a tag byte each.
const GROUP_LOAD: f64 = 0.56;
/// A B-tree node's average fill.
const BTREE_FILL: f64 = 0.7;
/// An arrangement packs a group of up to this many rows into one buffer.
const PACKED_GROUP: f64 = 16.0;

/// A node's estimated output: rows, and per column its average width and
/// its distinct values.
#[derive(Debug, Clone, Default)]
struct Shape {
    rows: f64,
    widths: Vec<f64>,
    distinct: Vec<f64>,
}

impl Shape {
    fn width(&self) -> f64 {
        self.widths.iter().sum()
    }

    fn width_of(&self, columns: &[usize]) -> f64 {
        columns.iter().map(|&c| self.widths.get(c).copied().unwrap_or(COMPUTED_WIDTH)).sum()
    }

    /// Distinct values of `columns` together: the product of theirs, at
    /// most the rows.
    fn distinct_of(&self, columns: &[usize]) -> f64 {
        let product: f64 = columns.iter().map(|&c| self.distinct.get(c).copied().unwrap_or(self.rows)).product();
        product.min(self.rows).max(self.rows.min(1.0))
    }

    /// The shape with `rows` rows (a subset): no column has more distinct
    /// values than rows.
    fn restrict(&self, rows: f64) -> Shape {
        let distinct = self.distinct.iter().map(|d| d.min(rows)).collect();
        Shape { rows, widths: self.widths.clone(), distinct }
    }

    /// Distinct values of one column.
    fn distinct_at(&self, column: usize) -> f64 {
        self.distinct.get(column).copied().unwrap_or(self.rows).clamp(1.0, self.rows.max(1.0))
    }

    /// Columns `columns` of this shape (a projection), each at most `rows`
    /// distinct.
    fn project(&self, columns: impl Iterator<Item = Option<usize>>, rows: f64) -> Shape {
        let (mut widths, mut distinct) = (Vec::new(), Vec::new());
        for c in columns {
            widths.push(c.and_then(|c| self.widths.get(c).copied()).unwrap_or(COMPUTED_WIDTH));
            distinct.push(c.and_then(|c| self.distinct.get(c).copied()).unwrap_or(rows).min(rows));
        }
        Shape { rows, widths, distinct }
    }
}

/// The fraction of `shape`'s rows `predicate` keeps: the planner's guess
/// ([`denorm_expr::selectivity`]) with the shape's distinct values.
fn selectivity(predicate: &Expr, shape: &Shape) -> f64 {
    denorm_expr::selectivity(predicate, &|c| shape.distinct_at(c))
}

/// The heap bytes of a row `width` bytes wide (0 when inline).
fn heap(width: f64) -> f64 {
    if width <= Row::INLINE as f64 {
        0.0
    } else {
        ((16.0 + width) / 8.0).ceil() * 8.0
    }
}

/// Bytes of one entry of a hashbrown table of `T`, at the typical load.
fn slot<T>() -> f64 {
    (size_of::<T>() as f64 + 1.0) / HASH_LOAD
}

impl Dataflow {
    /// Estimates the state of every stateful node from `stats` (by table
    /// name; a table without statistics counts as empty): see the module
    /// documentation for the assumptions. Nodes are attributed and labelled
    /// as [`Dataflow::state_bytes`] does.
    pub fn estimate_state_bytes(&self, stats: &HashMap<String, TableStats>) -> Vec<StateEstimate> {
        let readers = self.readers();
        let mut out = Vec::new();
        self.estimate_shapes(stats, |id, held| {
            let Some((rows, bytes)) = held else { return };
            let kind = self.graph.nodes[id].operator.state_bytes().map_or_else(String::new, |(kind, _)| kind);
            if let Some((view, operator)) = self.attribute(id, &kind, &readers) {
                out.push(StateEstimate { view, operator, rows, bytes });
            }
        });
        out
    }

    /// Estimates each view's output from `stats`, in the order the views
    /// were added: its rows and the average encoded width of a row (the
    /// same node estimates as [`Dataflow::estimate_state_bytes`]).
    pub fn estimate_view_rows(&self, stats: &HashMap<String, TableStats>) -> Vec<ViewRowsEstimate> {
        let shapes = self.estimate_shapes(stats, |_, _| {});
        self.view_nodes()
            .map(|(name, node)| ViewRowsEstimate {
                view: name.to_string(),
                rows: shapes[node].rows,
                width: shapes[node].width(),
            })
            .collect()
    }

    /// Every node's output shape in topological order; `held` is told each
    /// node's state (rows and bytes) when it has state.
    fn estimate_shapes(
        &self,
        stats: &HashMap<String, TableStats>,
        mut held: impl FnMut(usize, Option<(f64, f64)>),
    ) -> Vec<Shape> {
        let mut shapes: Vec<Shape> = Vec::with_capacity(self.graph.nodes.len());
        for (id, node) in self.graph.nodes.iter().enumerate() {
            let inputs: Vec<&Shape> = node.inputs.iter().map(|&i| &shapes[i]).collect();
            let (shape, state) = self.estimate_node(&node.operator, &inputs, stats);
            shapes.push(shape);
            held(id, state);
        }
        shapes
    }

    /// One node's output shape, and the rows and bytes of its state when it
    /// has state.
    fn estimate_node(
        &self,
        operator: &Operator,
        inputs: &[&Shape],
        stats: &HashMap<String, TableStats>,
    ) -> (Shape, Option<(f64, f64)>) {
        let input = |k: usize| inputs[k].clone();
        match operator {
            Operator::Input { table } => {
                let arity = self.catalog.get(table).map_or(0, |t| t.columns.len());
                let stats = stats.get(table.as_str()).cloned().unwrap_or_default();
                let rows = stats.rows;
                let widths = (0..arity).map(|c| stats.widths.get(c).copied().unwrap_or(COMPUTED_WIDTH)).collect();
                let distinct = (0..arity).map(|c| stats.distinct.get(c).copied().flatten().unwrap_or(rows).min(rows));
                (Shape { rows, widths, distinct: distinct.collect() }, None)
            }
            Operator::Filter(filter) => {
                let from = input(0);
                let rows = from.rows * selectivity(&filter.predicate, &from);
                (from.restrict(rows), None)
            }
            Operator::Negate | Operator::Released => (input(0), None),
            Operator::Threshold(_) | Operator::Distinct(_) => {
                let shape = input(0);
                let entry = match operator {
                    Operator::Threshold(_) => slot::<(Row, Diff)>(),
                    _ => slot::<(Row, (Diff, Option<Row>))>(),
                };
                let held = (shape.rows, shape.rows * (entry + heap(shape.width())));
                (shape, Some(held))
            }
            Operator::Map(map) => {
                let from = input(0);
                let columns = map.exprs().iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None });
                (from.project(columns, from.rows), None)
            }
            Operator::Arrange(index) => {
                let shape = input(0);
                let keys = shape.distinct_of(index.key_columns());
                let per_key = shape.rows / keys.max(1.0);
                let width = shape.width();
                // A few rows per key packed in one buffer with the key
                // (bytes and two varints each); more in a map of rows.
                let rows = if per_key <= PACKED_GROUP {
                    shape.rows * (width + 2.0)
                } else {
                    shape.rows * (slot::<(Row, Diff)>() + heap(width))
                };
                let groups = keys * (slot::<Box<[u8]>>() + shape.width_of(index.key_columns()) + 1.0);
                let held = (shape.rows, groups + rows);
                (shape, Some(held))
            }
            Operator::Join(join) => {
                let (left, right) = (input(0), input(1));
                // The textbook equi-join size: each left row meets the
                // right rows of its key, keys spread evenly over the larger
                // key domain.
                let keys = left.distinct_of(&join.left_key).max(right.distinct_of(&join.right_key)).max(1.0);
                let product = Shape {
                    rows: left.rows * right.rows,
                    widths: left.widths.iter().chain(&right.widths).copied().collect(),
                    distinct: left.distinct.iter().chain(&right.distinct).copied().collect(),
                };
                let mut rows = product.rows / if join.left_key.is_empty() { 1.0 } else { keys };
                if let Some(residual) = &join.residual {
                    rows *= selectivity(residual, &product);
                }
                rows = match join.kind {
                    JoinKind::Inner => rows,
                    JoinKind::Left => rows.max(left.rows),
                    _ => rows.max(left.rows).max(right.rows),
                };
                let all = product.restrict(rows);
                let shape = match &join.project {
                    Some(columns) => all.project(columns.iter().map(|&c| Some(c)), rows),
                    None => all,
                };
                (shape, None)
            }
            Operator::JoinTopK(top) => {
                let (joined, side) = (input(0), input(1));
                let held = joined.rows.min(side.rows * top.limit() as f64);
                let partitions = side.rows.min(joined.rows);
                let bytes = held * (size_of::<(Row, Diff)>() as f64 + heap(joined.width()))
                    + partitions * slot::<(Row, [u64; 8])>();
                let shape = Shape { rows: held, ..joined };
                (shape, Some((held, bytes)))
            }
            Operator::Reduce(reduce) => {
                let from = input(0);
                let key = reduce.group_key();
                let (aggregates, ordered) = reduce.aggregates();
                let groups = if key.is_empty() { 1.0 } else { from.distinct_of(key) };
                let columns = key.iter().map(|&c| Some(c)).chain(std::iter::repeat_n(None, aggregates));
                let shape = from.project(columns, groups);
                let mut bytes = groups * ((64.0 + 1.0) / GROUP_LOAD + heap(from.width_of(key)));
                if ordered {
                    // Every value kept, ordered: about one B-tree entry per input row.
                    bytes += from.rows * (size_of::<(Row, Diff)>() as f64 / BTREE_FILL + COMPUTED_WIDTH);
                }
                // The batch buffers kept for reuse after a batch of at most
                // KEEP_SCRATCH changes (a larger one frees them): per change
                // its key span, hash and chain link, and its key packed when
                // the group columns are not adjacent; per group touched its
                // chain, its lookup slot, and an old and a new output row
                // with their spans. Vectors grow by doubling (a third
                // unused on average).
                let adjacent = key.windows(2).all(|w| w[1] == w[0] + 1);
                let packed = if adjacent { 0.0 } else { size_of::<Row>() as f64 + heap(from.width_of(key)) };
                let output = from.width_of(key) + COMPUTED_WIDTH * aggregates as f64;
                // (A snapshot larger than that runs in chunks larger than
                // that too: its last chunk's buffers are freed as well.)
                let changes = if from.rows <= KEEP_SCRATCH as f64 { from.rows } else { 0.0 };
                bytes += 1.3 * (changes * (20.0 + packed) + groups.min(changes) * (16.0 + 2.0 * (32.0 + output)));
                (shape, Some((groups, bytes)))
            }
            Operator::ScalarFilter(_) => {
                // Every outer row kept, ordered by the compared value.
                let from = input(0);
                let entry = size_of::<((Box<[u8]>, Row), Diff)>() as f64 / BTREE_FILL;
                let held = (from.rows, from.rows * (entry + COMPUTED_WIDTH + heap(from.width())));
                // A comparison keeps a third, as `selectivity` guesses a range.
                let kept = from.rows / 3.0;
                (from.restrict(kept), Some(held))
            }
            Operator::TopK(top) => {
                let from = input(0);
                let (partition, order, limit) = top.shape();
                let sort = from.width_of(&order.iter().map(|k| k.column).collect::<Vec<_>>());
                let entry = size_of::<((Box<[u8]>, Row), Diff)>() as f64 / BTREE_FILL;
                let partitions = from.distinct_of(partition);
                let bytes = from.rows * (entry + sort + heap(from.width())) + partitions * slot::<(Row, [u64; 4])>();
                let emitted = from.rows.min(partitions * limit as f64);
                let held = from.rows;
                (Shape { rows: emitted, ..from }, Some((held, bytes)))
            }
            Operator::Union => {
                let rows = inputs.iter().map(|s| s.rows).sum();
                let first = inputs.first().map(|s| (*s).clone()).unwrap_or_default();
                (Shape { rows, ..first }, None)
            }
            Operator::Values(values) => (Shape { rows: values.len() as f64, ..Shape::default() }, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Runtime, SourceBatch};
    use denorm_expr::{Aggregate, AggregateFunc, BinaryOp, JoinKind, Plan};
    use denorm_types::{Catalog, ColumnSchema, Datum, Dialect, Position, ScalarType, TableSchema};

    /// On a foreign-key join and a GROUP BY over a table of unique keys
    /// (where the assumptions hold), the estimate is within a factor of
    /// two of the exact state after loading rows of the stated widths.
    #[test]
    fn estimates_are_near_the_loaded_state_when_the_assumptions_hold() {
        let int = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Int, nullable: false };
        let text = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Text, nullable: false };
        let mut catalog = Catalog::new();
        catalog.add(TableSchema {
            name: "users".into(),
            columns: vec![int("id"), text("name")],
            primary_key: vec![0],
            unique_keys: vec![],
        });
        catalog.add(TableSchema {
            name: "posts".into(),
            columns: vec![int("id"), int("author"), text("title")],
            primary_key: vec![0],
            unique_keys: vec![],
        });
        let join = Plan::Join {
            left: Box::new(Plan::Get { table: "posts".into(), arity: 3 }),
            right: Box::new(Plan::Get { table: "users".into(), arity: 2 }),
            kind: JoinKind::Inner,
            left_key: vec![1],
            right_key: vec![0],
            residual: None,
        };
        let per_post = Plan::Reduce {
            input: Box::new(Plan::Get { table: "posts".into(), arity: 3 }),
            group_key: vec![0, 2],
            aggregates: vec![Aggregate { func: AggregateFunc::Count, arg: None }],
        };
        let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
        dataflow.add_view_emitting("cards", &join).unwrap();
        dataflow.add_view_emitting("per_post", &per_post).unwrap();
        let (users, posts) = (2_000i64, 20_000i64);
        let title = |i: i64| format!("post number {i:>8} about something");
        let name = |i: i64| format!("user {i:>6}");
        let stats = HashMap::from([
            (
                "users".to_string(),
                TableStats { rows: users as f64, widths: vec![3.0, 2.0 + name(0).len() as f64], distinct: vec![] },
            ),
            (
                "posts".to_string(),
                TableStats {
                    rows: posts as f64,
                    widths: vec![4.0, 3.0, 2.0 + title(0).len() as f64],
                    distinct: vec![None, Some(users as f64), None],
                },
            ),
        ]);
        let estimate = dataflow.estimate_state_bytes(&stats);
        assert_eq!(estimate.len(), 3, "{estimate:?}");
        let user_rows = (0..users).map(|i| (Row::pack([Datum::Int(i), Datum::owned_text(name(i))]), 1)).collect();
        let post_rows = (0..posts)
            .map(|i| (Row::pack([Datum::Int(i), Datum::Int(i % users), Datum::owned_text(title(i))]), 1))
            .collect();
        dataflow.apply(&SourceBatch {
            position: Position(1),
            tables: vec![("users".into(), user_rows), ("posts".into(), post_rows)],
        });
        let exact = dataflow.state_bytes();
        for e in &estimate {
            let (_, _, bytes) = exact.iter().find(|(_, label, _)| *label == e.operator).expect("the same nodes");
            let ratio = e.bytes / *bytes as f64;
            assert!((0.5..2.0).contains(&ratio), "{}: estimated {}, exact {bytes}", e.operator, e.bytes);
        }
    }

    /// Filters keep the share their predicate is guessed to keep, from the
    /// columns' distinct values; an equi-join divides the product by the
    /// larger key domain.
    #[test]
    fn filters_and_joins_scale_the_rows() {
        let int = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Int, nullable: false };
        let mut catalog = Catalog::new();
        catalog.add(TableSchema {
            name: "t".into(),
            columns: vec![int("a"), int("b")],
            primary_key: vec![],
            unique_keys: vec![],
        });
        catalog.add(TableSchema {
            name: "u".into(),
            columns: vec![int("a")],
            primary_key: vec![0],
            unique_keys: vec![],
        });
        let get = |t: &str, arity| Box::new(Plan::Get { table: t.into(), arity });
        let literal = |i: i64| Expr::Literal(Datum::Int(i));
        let eq = Expr::binary(BinaryOp::Eq, Expr::Column(0), literal(3));
        let range = Expr::binary(BinaryOp::Gt, Expr::Column(1), literal(5));
        let filtered =
            |predicate: Expr| Plan::Distinct { input: Box::new(Plan::Filter { input: get("t", 2), predicate }) };
        let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
        dataflow.add_view_emitting("equal", &filtered(eq.clone())).unwrap();
        dataflow.add_view_emitting("both", &filtered(Expr::binary(BinaryOp::And, eq.clone(), range.clone()))).unwrap();
        dataflow.add_view_emitting("either", &filtered(Expr::binary(BinaryOp::Or, eq, range))).unwrap();
        let join = Plan::Join {
            left: get("t", 2),
            right: get("u", 1),
            kind: JoinKind::Inner,
            left_key: vec![0],
            right_key: vec![0],
            residual: None,
        };
        dataflow.add_view_emitting("joined", &Plan::Distinct { input: Box::new(join) }).unwrap();
        let stats = HashMap::from([
            ("t".to_string(), TableStats { rows: 9000.0, widths: vec![2.0, 2.0], distinct: vec![Some(10.0), None] }),
            ("u".to_string(), TableStats { rows: 5.0, widths: vec![2.0], distinct: vec![] }),
        ]);
        let estimate = dataflow.estimate_state_bytes(&stats);
        let rows = |view: &str| {
            let distinct = estimate.iter().find(|e| e.view == view && e.operator.ends_with("Distinct")).unwrap();
            distinct.rows.round()
        };
        assert_eq!(rows("equal"), 900.0);
        assert_eq!(rows("both"), 300.0);
        assert_eq!(rows("either"), 900.0 + 3000.0 - 300.0);
        // 9000 × 5 / max(10, 5): each of t's rows meets half a row of u.
        assert_eq!(rows("joined"), 4500.0);
    }
}
