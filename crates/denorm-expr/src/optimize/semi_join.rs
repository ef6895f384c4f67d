//! Semi-joins first: a relation with at most one row per join key (an
//! `IN (SELECT …)` subquery's `Distinct`, a `GROUP BY` of the key) joins
//! the input that owns its key before the joins above that input, so the
//! joins above see only the rows it keeps. TPC-H Q18's few large orders
//! then join their customers and line items, where the planner's order
//! joined every order's line items first and kept them arranged for the
//! subquery.
//!
//! ```text
//!  Filter NOT (r IS NULL)                      Map (A, B, R order)
//!    LeftJoin on a.k = r.k        ──►            Join on (A's B key)
//!      Join on (A's B key)                         Join on a.k = r.k
//!        A   B                                       A   R
//!      R (unique on k)                             B
//! ```
//!
//! A LEFT JOIN whose padded rows a filter above drops (`NOT (c IS NULL)` on
//! a column of its right side) is an inner join; an inner join is
//! associative, and joining a relation unique on the key can only keep or
//! drop each row of the other side, never multiply it — so moving it below
//! never makes an intermediate result larger.

use crate::expr::Expr;
use crate::plan::{JoinKind, Plan};

/// Applies the rewrite everywhere in `plan` (bottom up).
pub(super) fn semi_joins_first(plan: Plan) -> Plan {
    match map_inputs(plan, &mut semi_joins_first) {
        Plan::Filter { input, predicate } => {
            let input = match *input {
                Plan::Join { left, right, kind: JoinKind::Left, left_key, right_key, residual: None }
                    if drops_padding(&predicate, left.arity(), right.arity())
                        && unique_on(&right, &right_key)
                        && !left_key.is_empty() =>
                {
                    join_unique(*left, *right, left_key, right_key)
                }
                other => other,
            };
            Plan::Filter { input: Box::new(input), predicate }
        }
        Plan::Join { left, right, kind: JoinKind::Inner, left_key, right_key, residual: None }
            if !left_key.is_empty() && unique_on(&right, &right_key) && joins_below(&left) =>
        {
            join_unique(*left, *right, left_key, right_key)
        }
        other => other,
    }
}

/// Whether `plan` is an inner join (under column projections and filters),
/// which a unique relation may move into.
fn joins_below(plan: &Plan) -> bool {
    match plan {
        Plan::Join { kind: JoinKind::Inner, .. } => true,
        Plan::Map { input, exprs } if exprs.iter().all(|e| matches!(e, Expr::Column(_))) => joins_below(input),
        Plan::Filter { input, .. } => joins_below(input),
        _ => false,
    }
}

/// Whether `predicate` is FALSE or NULL on every row whose right columns
/// (`left_arity..left_arity + right_arity`) are all NULL: one of its
/// conjuncts is `NOT (c IS NULL)` for such a column.
fn drops_padding(predicate: &Expr, left_arity: usize, right_arity: usize) -> bool {
    let right = left_arity..left_arity + right_arity;
    let mut parts = Vec::new();
    super::conjuncts(predicate.clone(), &mut parts);
    parts.iter().any(|p| match p {
        Expr::Not(inner) => matches!(&**inner, Expr::IsNull(c) if matches!(**c, Expr::Column(c) if right.contains(&c))),
        _ => false,
    })
}

/// Whether `plan` has at most one row per value of the columns `key`: a
/// `Distinct` keyed by all its columns, a `Reduce` keyed by all its group
/// columns.
fn unique_on(plan: &Plan, key: &[usize]) -> bool {
    match plan {
        Plan::Distinct { input } => (0..input.arity()).all(|c| key.contains(&c)),
        Plan::Reduce { group_key, .. } => !group_key.is_empty() && (0..group_key.len()).all(|c| key.contains(&c)),
        _ => false,
    }
}

/// `left ⋈ right` (inner) on `left_key = right_key`, `right` unique on
/// its key, joined to the deepest input of `left` that holds every key
/// column; the output columns are `left`'s then `right`'s, as before.
fn join_unique(left: Plan, right: Plan, left_key: Vec<usize>, right_key: Vec<usize>) -> Plan {
    let r = right.arity();
    match left {
        Plan::Join { left: a, right: b, kind: JoinKind::Inner, left_key: ka, right_key: kb, residual } => {
            let (a_arity, b_arity) = (a.arity(), b.arity());
            if left_key.iter().all(|&c| c < a_arity) {
                // (A ⋈ R) ⋈ B, then the columns back in A, B, R order.
                let inner = join_unique(*a, right, left_key, right_key);
                let residual = residual.map(|mut e| {
                    e.remap_columns(&|c| if c < a_arity { c } else { c + r });
                    e
                });
                let joined = Plan::Join {
                    left: Box::new(inner),
                    right: b,
                    kind: JoinKind::Inner,
                    left_key: ka,
                    right_key: kb,
                    residual,
                };
                let order = (0..a_arity).chain(a_arity + r..a_arity + r + b_arity).chain(a_arity..a_arity + r);
                Plan::Map { input: Box::new(joined), exprs: order.map(Expr::Column).collect() }
            } else if left_key.iter().all(|&c| c >= a_arity) {
                // A ⋈ (B ⋈ R): the same column order.
                let key = left_key.iter().map(|c| c - a_arity).collect();
                let inner = join_unique(*b, right, key, right_key);
                Plan::Join {
                    left: a,
                    right: Box::new(inner),
                    kind: JoinKind::Inner,
                    left_key: ka,
                    right_key: kb,
                    residual,
                }
            } else {
                let left =
                    Plan::Join { left: a, right: b, kind: JoinKind::Inner, left_key: ka, right_key: kb, residual };
                join(left, right, left_key, right_key)
            }
        }
        // The planner's projection back to FROM order over a join tree.
        Plan::Map { input, exprs } if exprs.iter().all(|e| matches!(e, Expr::Column(_))) => {
            let column = |c: usize| match exprs[c] {
                Expr::Column(i) => i,
                _ => unreachable!("a column projection"),
            };
            let below = input.arity();
            let key = left_key.iter().map(|&c| column(c)).collect();
            let inner = join_unique(*input, right, key, right_key);
            let exprs = exprs.into_iter().chain((below..below + r).map(Expr::Column)).collect();
            Plan::Map { input: Box::new(inner), exprs }
        }
        // A filter commutes with an inner join (the joined columns come after).
        Plan::Filter { input, predicate } => {
            let inner = join_unique(*input, right, left_key, right_key);
            Plan::Filter { input: Box::new(inner), predicate }
        }
        other => join(other, right, left_key, right_key),
    }
}

fn join(left: Plan, right: Plan, left_key: Vec<usize>, right_key: Vec<usize>) -> Plan {
    Plan::Join {
        left: Box::new(left),
        right: Box::new(right),
        kind: JoinKind::Inner,
        left_key,
        right_key,
        residual: None,
    }
}

/// `plan` with `f` applied to each of its inputs.
fn map_inputs(plan: Plan, f: &mut impl FnMut(Plan) -> Plan) -> Plan {
    match plan {
        Plan::Get { .. } | Plan::Values { .. } => plan,
        Plan::Filter { input, predicate } => Plan::Filter { input: Box::new(f(*input)), predicate },
        Plan::Map { input, exprs } => Plan::Map { input: Box::new(f(*input)), exprs },
        Plan::Join { left, right, kind, left_key, right_key, residual } => {
            let left = Box::new(f(*left));
            Plan::Join { left, right: Box::new(f(*right)), kind, left_key, right_key, residual }
        }
        Plan::Reduce { input, group_key, aggregates } => {
            Plan::Reduce { input: Box::new(f(*input)), group_key, aggregates }
        }
        Plan::Distinct { input } => Plan::Distinct { input: Box::new(f(*input)) },
        Plan::TopK { input, partition, order, limit, rank, numbering } => {
            Plan::TopK { input: Box::new(f(*input)), partition, order, limit, rank, numbering }
        }
        Plan::Union { inputs } => Plan::Union { inputs: inputs.into_iter().map(f).collect() },
        Plan::Negate { input } => Plan::Negate { input: Box::new(f(*input)) },
        Plan::Threshold { input } => Plan::Threshold { input: Box::new(f(*input)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::optimize;

    fn get(table: &str, arity: usize) -> Box<Plan> {
        Box::new(Plan::Get { table: table.into(), arity })
    }

    /// Q18's shape: customers ⋈ orders ⋈ lines, then `o.key IN (SELECT
    /// DISTINCT …)` as a left join and a NOT NULL filter.
    #[test]
    fn a_unique_semi_join_moves_to_the_input_owning_its_key() {
        let customer_orders = join(*get("customer", 2), *get("orders", 3), vec![0], vec![1]);
        let orders_lines = join(customer_orders, *get("lineitem", 2), vec![2], vec![0]);
        let big = Plan::Distinct { input: Box::new(Plan::Map { input: get("big", 2), exprs: vec![Expr::Column(0)] }) };
        let plan = Plan::Filter {
            input: Box::new(Plan::Join {
                left: Box::new(orders_lines),
                right: Box::new(big),
                kind: JoinKind::Left,
                left_key: vec![2],
                right_key: vec![0],
                residual: None,
            }),
            predicate: Expr::Not(Box::new(Expr::IsNull(Box::new(Expr::Column(7))))),
        };
        let arity = plan.arity();
        let rewritten = semi_joins_first(plan.clone());
        assert_eq!(rewritten.arity(), arity);
        let text = optimize(plan).to_string();
        // The Distinct joins orders directly (its sibling in the tree), below
        // customers and lines.
        let lines: Vec<&str> = text.lines().collect();
        let orders = lines.iter().position(|l| l.contains("Get orders")).unwrap();
        let indent = |l: &str| l.len() - l.trim_start().len();
        let sibling = lines[orders + 1..].iter().find(|l| indent(l) <= indent(lines[orders])).unwrap();
        assert_eq!(indent(sibling), indent(lines[orders]), "{text}");
        assert!(sibling.contains("Filter NOT") || sibling.contains("Distinct"), "{text}");
        let lineitem = lines.iter().position(|l| l.contains("Get lineitem")).unwrap();
        assert!(lineitem > orders && indent(lines[lineitem]) < indent(lines[orders]), "{text}");
        assert!(!text.contains("LeftJoin"), "{text}");
    }

    /// A LEFT JOIN whose padded rows stay (no filter on the right side), or
    /// whose right side may have several rows per key, is left alone.
    #[test]
    fn other_left_joins_stay() {
        let left_join = |right: Plan| Plan::Join {
            left: Box::new(join(*get("a", 2), *get("b", 2), vec![0], vec![0])),
            right: Box::new(right),
            kind: JoinKind::Left,
            left_key: vec![1],
            right_key: vec![0],
            residual: None,
        };
        let unique = Plan::Distinct { input: get("c", 1) };
        assert_eq!(semi_joins_first(left_join(unique.clone())), left_join(unique.clone()));
        let kept = Plan::Filter {
            input: Box::new(left_join(*get("c", 1))),
            predicate: Expr::Not(Box::new(Expr::IsNull(Box::new(Expr::Column(4))))),
        };
        assert_eq!(semi_joins_first(kept.clone()), kept);
    }
}
