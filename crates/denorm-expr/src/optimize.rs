//! Plan rewrites that shrink operator state without changing results:
//!
//! 1. **Predicate pushdown**: WHERE conjuncts over a join move to the side they
//!    read (the left side of a FULL join never: it is padded too; the right
//!    side only for inner joins), so arrangements hold only rows that can
//!    contribute. A join's residual conjuncts over one side move to that side
//!    the same way (not to the left of a LEFT JOIN, to neither side of a FULL
//!    JOIN). A filter passes through a column projection.
//! 2. **Column pruning**: every node keeps only the columns something above it
//!    reads; source tables are projected right at the input.
//! 3. **Projection fusion**: a projection of a projection becomes one.
//! 0. First of all, **semi-joins first** (`semi_join.rs`): a LEFT JOIN whose
//!    padded rows a filter drops is an inner join, and a join with a
//!    relation unique on its key moves below the joins to the input that
//!    owns the key.
//!
//! Filters move into the inputs of `Union`, `Negate` and `Threshold` (each
//! row is kept or dropped on its own). A `Union` passes pruning down to each input (a projection of a sum is
//! the sum of the projections); `Threshold` and `Values` keep all their
//! columns, and nothing is pushed into set operations.
//!
//! A `TopK` is a barrier for pushdown (a row a filter drops above it still
//! takes a rank), keeps its partition and order columns, and loses its row
//! number column when nothing above reads it.

use std::collections::BTreeSet;

use crate::expr::{BinaryOp, Expr};
use crate::plan::{JoinKind, Numbering, Plan, SortKey};

mod semi_join;

/// Applies all rewrites; the result has the same output columns as `plan`.
pub fn optimize(plan: Plan) -> Plan {
    let plan = semi_join::semi_joins_first(plan);
    let plan = push_down_filters(plan);
    let arity = plan.arity();
    let (pruned, remap) = prune(plan, &(0..arity).collect());
    let plan = if (0..arity).all(|c| remap[c] == Some(c)) && pruned.arity() == arity {
        pruned
    } else {
        Plan::Map { input: Box::new(pruned), exprs: (0..arity).map(|c| Expr::Column(remap[c].unwrap())).collect() }
    };
    fuse_maps(plan)
}

fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Binary { op: BinaryOp::And, left, right } => {
            conjuncts(*left, out);
            conjuncts(*right, out);
        }
        e => out.push(e),
    }
}

fn conjoin(mut parts: Vec<Expr>) -> Option<Expr> {
    let first = parts.pop()?;
    Some(parts.into_iter().rev().fold(first, |acc, e| Expr::binary(BinaryOp::And, e, acc)))
}

fn filter(input: Plan, predicates: Vec<Expr>) -> Plan {
    match conjoin(predicates) {
        Some(predicate) => Plan::Filter { input: Box::new(input), predicate },
        None => input,
    }
}

fn push_down_filters(plan: Plan) -> Plan {
    match plan {
        Plan::Filter { input, predicate } => match *input {
            Plan::Join { left, right, kind, left_key, right_key, residual } => {
                let left_arity = left.arity();
                let mut parts = Vec::new();
                conjuncts(predicate, &mut parts);
                let (mut to_left, mut to_right, mut stay) = (Vec::new(), Vec::new(), Vec::new());
                for p in parts {
                    let cols = p.columns();
                    // A FULL JOIN pads left columns with NULLs too: a
                    // condition on them must see the padded rows.
                    if kind != JoinKind::Full && cols.iter().all(|&c| c < left_arity) {
                        to_left.push(p);
                    } else if kind == JoinKind::Inner && cols.iter().all(|&c| c >= left_arity) {
                        let mut p = p;
                        p.remap_columns(&|c| c - left_arity);
                        to_right.push(p);
                    } else {
                        stay.push(p);
                    }
                }
                let join = Plan::Join {
                    left: Box::new(filter(*left, to_left)),
                    right: Box::new(filter(*right, to_right)),
                    kind,
                    left_key,
                    right_key,
                    residual,
                };
                filter(push_down_filters(join), stay)
            }
            // A column projection (the planner's restoring of FROM order
            // over a reordered join) lets the filter through.
            Plan::Map { input: below, exprs } if exprs.iter().all(|e| matches!(e, Expr::Column(_))) => {
                let mut predicate = predicate;
                predicate.remap_columns(&|c| match exprs[c] {
                    Expr::Column(i) => i,
                    _ => unreachable!("a column projection"),
                });
                let pushed = push_down_filters(Plan::Filter { input: below, predicate });
                Plan::Map { input: Box::new(pushed), exprs }
            }
            // A filter keeps or drops each row on its own, so it commutes
            // with a sum, a negation and a threshold of multiplicities.
            Plan::Union { inputs } => Plan::Union {
                inputs: inputs.into_iter().map(|i| push_down_filters(filter(i, vec![predicate.clone()]))).collect(),
            },
            Plan::Negate { input } => {
                Plan::Negate { input: Box::new(push_down_filters(Plan::Filter { input, predicate })) }
            }
            Plan::Threshold { input } => {
                Plan::Threshold { input: Box::new(push_down_filters(Plan::Filter { input, predicate })) }
            }
            other => Plan::Filter { input: Box::new(push_down_filters(other)), predicate },
        },
        Plan::Get { .. } => plan,
        Plan::Map { input, exprs } => Plan::Map { input: Box::new(push_down_filters(*input)), exprs },
        Plan::Join { left, right, kind, left_key, right_key, residual } => {
            let (left, right, residual) = split_residual(*left, *right, kind, residual);
            Plan::Join {
                left: Box::new(push_down_filters(left)),
                right: Box::new(push_down_filters(right)),
                kind,
                left_key,
                right_key,
                residual,
            }
        }
        Plan::Reduce { input, group_key, aggregates } => {
            Plan::Reduce { input: Box::new(push_down_filters(*input)), group_key, aggregates }
        }
        Plan::Distinct { input } => Plan::Distinct { input: Box::new(push_down_filters(*input)) },
        // A filter above a TopK stays there: rows it drops still take ranks.
        Plan::TopK { input, partition, order, limit, rank, numbering } => {
            Plan::TopK { input: Box::new(push_down_filters(*input)), partition, order, limit, rank, numbering }
        }
        Plan::Union { inputs } => Plan::Union { inputs: inputs.into_iter().map(push_down_filters).collect() },
        Plan::Negate { input } => Plan::Negate { input: Box::new(push_down_filters(*input)) },
        Plan::Threshold { input } => Plan::Threshold { input: Box::new(push_down_filters(*input)) },
        Plan::Values { .. } => plan,
    }
}

/// Residual conjuncts that read one side only become filters of that side
/// where that keeps the join's result: either side of an inner join, the
/// right side of a LEFT JOIN (a right row failing them matches nothing
/// either way); none of a FULL JOIN, whose unmatched rows of both sides
/// are kept.
fn split_residual(left: Plan, right: Plan, kind: JoinKind, residual: Option<Expr>) -> (Plan, Plan, Option<Expr>) {
    let Some(residual) = residual else { return (left, right, None) };
    let left_arity = left.arity();
    let mut parts = Vec::new();
    conjuncts(residual, &mut parts);
    let (mut to_left, mut to_right, mut stay) = (Vec::new(), Vec::new(), Vec::new());
    for mut p in parts {
        let cols = p.columns();
        if cols.is_empty() {
            stay.push(p);
        } else if kind == JoinKind::Inner && cols.iter().all(|&c| c < left_arity) {
            to_left.push(p);
        } else if kind != JoinKind::Full && cols.iter().all(|&c| c >= left_arity) {
            p.remap_columns(&|c| c - left_arity);
            to_right.push(p);
        } else {
            stay.push(p);
        }
    }
    (filter(left, to_left), filter(right, to_right), conjoin(stay))
}

/// Column `c` of the old output is column `remap[c]` of the new one (`None`
/// when it was not needed and dropped).
type Remap = Vec<Option<usize>>;

fn positions(columns: &BTreeSet<usize>, arity: usize) -> Remap {
    let mut remap = vec![None; arity];
    for (new, &old) in columns.iter().enumerate() {
        remap[old] = Some(new);
    }
    remap
}

fn apply(remap: &Remap) -> impl Fn(usize) -> usize + '_ {
    move |c| remap[c].expect("pruned a column that is still read (bug)")
}

/// Rewrites `plan` to produce at least the `needed` columns (and as few
/// others as it can), returning where each old column went.
fn prune(plan: Plan, needed: &BTreeSet<usize>) -> (Plan, Remap) {
    match plan {
        Plan::Get { table, arity } => {
            if needed.len() == arity {
                return (Plan::Get { table, arity }, (0..arity).map(Some).collect());
            }
            let exprs = needed.iter().map(|&c| Expr::Column(c)).collect();
            (Plan::Map { input: Box::new(Plan::Get { table, arity }), exprs }, positions(needed, arity))
        }
        Plan::Filter { input, mut predicate } => {
            let mut want = needed.clone();
            predicate.visit_columns(&mut |c| {
                want.insert(c);
            });
            let (input, remap) = prune(*input, &want);
            predicate.remap_columns(&apply(&remap));
            let filtered = Plan::Filter { input: Box::new(input), predicate };
            if want.len() == needed.len() {
                return (filtered, remap);
            }
            // Drop the columns only the predicate read, so state above holds less.
            let exprs = needed.iter().map(|&c| Expr::Column(apply(&remap)(c))).collect();
            (Plan::Map { input: Box::new(filtered), exprs }, positions(needed, remap.len()))
        }
        Plan::Map { input, exprs } => {
            let arity = exprs.len();
            let mut kept: Vec<Expr> = needed.iter().map(|&c| exprs[c].clone()).collect();
            let mut want = BTreeSet::new();
            for e in &kept {
                e.visit_columns(&mut |c| {
                    want.insert(c);
                });
            }
            let (input, remap) = prune(*input, &want);
            for e in &mut kept {
                e.remap_columns(&apply(&remap));
            }
            (Plan::Map { input: Box::new(input), exprs: kept }, positions(needed, arity))
        }
        Plan::Join { left, right, kind, left_key, right_key, residual } => {
            prune_join(*left, *right, kind, left_key, right_key, residual, needed)
        }
        Plan::Reduce { input, group_key, mut aggregates } => {
            let mut want: BTreeSet<usize> = group_key.iter().copied().collect();
            for a in &aggregates {
                if let Some(arg) = &a.arg {
                    arg.visit_columns(&mut |c| {
                        want.insert(c);
                    });
                }
            }
            let (input, remap) = prune(*input, &want);
            let group_key = group_key.iter().map(|&c| apply(&remap)(c)).collect();
            for a in &mut aggregates {
                if let Some(arg) = &mut a.arg {
                    arg.remap_columns(&apply(&remap));
                }
            }
            let plan = Plan::Reduce { input: Box::new(input), group_key, aggregates };
            let arity = plan.arity();
            (plan, (0..arity).map(Some).collect())
        }
        Plan::Distinct { input } => {
            let arity = input.arity();
            let (input, remap) = prune(*input, &(0..arity).collect());
            let exact: Vec<Expr> = (0..arity).map(|c| Expr::Column(apply(&remap)(c))).collect();
            let input = Plan::Map { input: Box::new(input), exprs: exact };
            (Plan::Distinct { input: Box::new(input) }, (0..arity).map(Some).collect())
        }
        Plan::TopK { input, partition, order, limit, rank, numbering } => {
            prune_top_k(*input, partition, order, (limit, numbering), rank, needed)
        }
        Plan::Union { inputs } => {
            let arity = inputs.first().map_or(0, Plan::arity);
            let inputs = inputs.into_iter().map(|i| project(i, needed)).collect();
            (Plan::Union { inputs }, positions(needed, arity))
        }
        Plan::Negate { input } => {
            let (input, remap) = prune(*input, needed);
            (Plan::Negate { input: Box::new(input) }, remap)
        }
        Plan::Threshold { input } => {
            let arity = input.arity();
            let input = project(*input, &(0..arity).collect());
            (Plan::Threshold { input: Box::new(input) }, (0..arity).map(Some).collect())
        }
        Plan::Values { .. } => {
            let arity = plan.arity();
            (plan, (0..arity).map(Some).collect())
        }
    }
}

/// `plan` pruned to exactly the `needed` columns, in their order.
fn project(plan: Plan, needed: &BTreeSet<usize>) -> Plan {
    let (plan, remap) = prune(plan, needed);
    let exprs = needed.iter().map(|&c| Expr::Column(apply(&remap)(c))).collect();
    Plan::Map { input: Box::new(plan), exprs }
}

/// A TopK needs its partition and order columns besides what is read above
/// it; the row number column is dropped when nothing reads it.
fn prune_top_k(
    input: Plan,
    partition: Vec<usize>,
    mut order: Vec<SortKey>,
    (limit, numbering): (usize, Numbering),
    rank: bool,
    needed: &BTreeSet<usize>,
) -> (Plan, Remap) {
    let input_arity = input.arity();
    let mut want: BTreeSet<usize> = needed.iter().copied().filter(|&c| c < input_arity).collect();
    want.extend(partition.iter().copied());
    want.extend(order.iter().map(|k| k.column));
    if let Numbering::Shift(s) = numbering {
        want.extend([s.value].into_iter().chain(s.default));
    }
    let rank = rank && needed.contains(&input_arity);
    let (input, remap) = prune(input, &want);
    let partition = partition.iter().map(|&c| apply(&remap)(c)).collect();
    for k in &mut order {
        k.column = apply(&remap)(k.column);
    }
    let numbering = match numbering {
        Numbering::Shift(s) => Numbering::Shift(remap_shift(s, &remap)),
        n => n,
    };
    let new_input_arity = input.arity();
    let mut out = remap;
    out.push(rank.then_some(new_input_arity));
    (Plan::TopK { input: Box::new(input), partition, order, limit, rank, numbering }, out)
}

/// A shift's columns renumbered after pruning its input.
fn remap_shift(s: crate::plan::Shift, remap: &Remap) -> crate::plan::Shift {
    crate::plan::Shift { value: apply(remap)(s.value), default: s.default.map(apply(remap)), ..s }
}

fn prune_join(
    left: Plan,
    right: Plan,
    kind: JoinKind,
    left_key: Vec<usize>,
    right_key: Vec<usize>,
    mut residual: Option<Expr>,
    needed: &BTreeSet<usize>,
) -> (Plan, Remap) {
    let left_arity = left.arity();
    let arity = left_arity + right.arity();
    let mut want_left: BTreeSet<usize> = left_key.iter().copied().collect();
    let mut want_right: BTreeSet<usize> = right_key.iter().copied().collect();
    let mut want = |c: usize| {
        if c < left_arity {
            want_left.insert(c);
        } else {
            want_right.insert(c - left_arity);
        }
    };
    needed.iter().for_each(|&c| want(c));
    if let Some(r) = &residual {
        r.visit_columns(&mut want);
    }
    let (left, lmap) = prune(left, &want_left);
    let (right, rmap) = prune(right, &want_right);
    let new_left_arity = left.arity();
    let mut remap = vec![None; arity];
    for c in 0..arity {
        remap[c] = if c < left_arity { lmap[c] } else { rmap[c - left_arity].map(|r| r + new_left_arity) };
    }
    if let Some(r) = &mut residual {
        r.remap_columns(&apply(&remap));
    }
    let plan = Plan::Join {
        left: Box::new(left),
        right: Box::new(right),
        kind,
        left_key: left_key.iter().map(|&c| apply(&lmap)(c)).collect(),
        right_key: right_key.iter().map(|&c| apply(&rmap)(c)).collect(),
        residual,
    };
    (plan, remap)
}

/// `Map(Map(x, inner), outer)` → `Map(x, outer ∘ inner)` when the inner map
/// only moves columns (so nothing is computed twice); identity maps vanish.
fn fuse_maps(plan: Plan) -> Plan {
    match plan {
        Plan::Map { input, mut exprs } => {
            let input = fuse_maps(*input);
            let input = match input {
                Plan::Map { input: inner_input, exprs: inner }
                    if inner.iter().all(|e| matches!(e, Expr::Column(_))) =>
                {
                    let cols: Vec<usize> =
                        inner.iter().map(|e| if let Expr::Column(c) = e { *c } else { unreachable!() }).collect();
                    for e in &mut exprs {
                        e.remap_columns(&|c| cols[c]);
                    }
                    *inner_input
                }
                other => other,
            };
            let identity = exprs.len() == input.arity() && exprs.iter().enumerate().all(|(i, e)| *e == Expr::Column(i));
            if identity {
                input
            } else {
                Plan::Map { input: Box::new(input), exprs }
            }
        }
        Plan::Get { .. } => plan,
        Plan::Filter { input, predicate } => Plan::Filter { input: Box::new(fuse_maps(*input)), predicate },
        Plan::Join { left, right, kind, left_key, right_key, residual } => Plan::Join {
            left: Box::new(fuse_maps(*left)),
            right: Box::new(fuse_maps(*right)),
            kind,
            left_key,
            right_key,
            residual,
        },
        Plan::Reduce { input, group_key, mut aggregates } => match fuse_maps(*input) {
            // A Reduce reads its columns by position, so a projection that
            // only moves columns folds into it: one row copy less per change.
            Plan::Map { input: inner, exprs } if exprs.iter().all(|e| matches!(e, Expr::Column(_))) => {
                let cols: Vec<usize> =
                    exprs.iter().map(|e| if let Expr::Column(c) = e { *c } else { unreachable!() }).collect();
                for a in &mut aggregates {
                    if let Some(arg) = &mut a.arg {
                        arg.remap_columns(&|c| cols[c]);
                    }
                }
                let group_key = group_key.iter().map(|&c| cols[c]).collect();
                Plan::Reduce { input: inner, group_key, aggregates }
            }
            input => Plan::Reduce { input: Box::new(input), group_key, aggregates },
        },
        Plan::Distinct { input } => Plan::Distinct { input: Box::new(fuse_maps(*input)) },
        Plan::TopK { input, partition, order, limit, rank, numbering } => {
            Plan::TopK { input: Box::new(fuse_maps(*input)), partition, order, limit, rank, numbering }
        }
        Plan::Union { inputs } => Plan::Union { inputs: inputs.into_iter().map(fuse_maps).collect() },
        Plan::Negate { input } => Plan::Negate { input: Box::new(fuse_maps(*input)) },
        Plan::Threshold { input } => Plan::Threshold { input: Box::new(fuse_maps(*input)) },
        Plan::Values { .. } => plan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Datum;

    fn get(table: &str, arity: usize) -> Box<Plan> {
        Box::new(Plan::Get { table: table.into(), arity })
    }

    #[test]
    fn join_keeps_only_read_columns_and_pushes_filters() {
        // SELECT p.id, u.name FROM posts p JOIN users u ON p.author = u.id WHERE u.active = 1
        // posts(id, author, title, body), users(id, name, avatar, active)
        let join = Plan::Join {
            left: get("posts", 4),
            right: get("users", 4),
            kind: JoinKind::Inner,
            left_key: vec![1],
            right_key: vec![0],
            residual: None,
        };
        let filtered = Plan::Filter {
            input: Box::new(join),
            predicate: Expr::binary(BinaryOp::Eq, Expr::Column(7), Expr::Literal(Datum::Int(1))),
        };
        let plan = Plan::Map { input: Box::new(filtered), exprs: vec![Expr::Column(0), Expr::Column(5)] };
        let text = optimize(plan).to_string();
        assert_eq!(
            text,
            "Map #0, #3\n  Join on left.#1 = right.#0\n    Map #0, #1\n      Get posts\n    Map #0, #1\n      Filter (#2 = 1)\n        Map #0, #1, #3\n          Get users\n"
        );
    }

    #[test]
    fn filters_pass_a_column_projection_but_not_into_a_full_join() {
        // Filter(Map[#2, #3, #0, #1](a ⋈ b)) as the planner builds a reordered join.
        let join = |kind| Plan::Join {
            left: get("a", 2),
            right: get("b", 2),
            kind,
            left_key: vec![0],
            right_key: vec![0],
            residual: None,
        };
        let plan = |kind| Plan::Filter {
            input: Box::new(Plan::Map {
                input: Box::new(join(kind)),
                exprs: vec![Expr::Column(2), Expr::Column(3), Expr::Column(0), Expr::Column(1)],
            }),
            predicate: Expr::binary(BinaryOp::Gt, Expr::Column(3), Expr::Literal(Datum::Int(1))),
        };
        assert_eq!(
            optimize(plan(JoinKind::Inner)).to_string(),
            "Map #2, #3, #0, #1\n  Join on left.#0 = right.#0\n    Filter (#1 > 1)\n      Get a\n    Get b\n"
        );
        assert_eq!(
            optimize(plan(JoinKind::Full)).to_string(),
            "Map #2, #3, #0, #1\n  Filter (#1 > 1)\n    FullJoin on left.#0 = right.#0\n      Get a\n      Get b\n"
        );
    }

    #[test]
    fn one_sided_residual_conjuncts_become_filters_where_that_keeps_the_result() {
        // a(x, y) ⋈ b(x, y) on a.x = b.x and a.y > 1 and b.y > 2 and a.y < b.y
        let residual = [
            Expr::binary(BinaryOp::Gt, Expr::Column(1), Expr::Literal(Datum::Int(1))),
            Expr::binary(BinaryOp::Gt, Expr::Column(3), Expr::Literal(Datum::Int(2))),
            Expr::binary(BinaryOp::Lt, Expr::Column(1), Expr::Column(3)),
        ];
        let join = |kind| Plan::Join {
            left: get("a", 2),
            right: get("b", 2),
            kind,
            left_key: vec![0],
            right_key: vec![0],
            residual: conjoin(residual.to_vec()),
        };
        let text = |kind| push_down_filters(join(kind)).to_string();
        assert_eq!(
            text(JoinKind::Inner),
            "Join on left.#0 = right.#0 AND (#1 < #3)\n  Filter (#1 > 1)\n    Get a\n  Filter (#1 > 2)\n    Get b\n"
        );
        assert_eq!(
            text(JoinKind::Left),
            "LeftJoin on left.#0 = right.#0 AND ((#1 > 1) AND (#1 < #3))\n  Get a\n  Filter (#1 > 2)\n    Get b\n"
        );
        assert_eq!(
            text(JoinKind::Full),
            "FullJoin on left.#0 = right.#0 AND ((#1 > 1) AND ((#3 > 2) AND (#1 < #3)))\n  Get a\n  Get b\n"
        );
    }

    #[test]
    fn filters_move_into_set_operations() {
        // SELECT * FROM (SELECT k FROM a EXCEPT ALL SELECT k FROM b) WHERE k > 1
        let branch = |t| Plan::Map { input: get(t, 2), exprs: vec![Expr::Column(1)] };
        let except = Plan::Threshold {
            input: Box::new(Plan::Union { inputs: vec![branch("a"), Plan::Negate { input: Box::new(branch("b")) }] }),
        };
        let predicate = Expr::binary(BinaryOp::Gt, Expr::Column(0), Expr::Literal(Datum::Int(1)));
        let plan = Plan::Filter { input: Box::new(except), predicate };
        assert_eq!(
            optimize(plan).to_string(),
            "Threshold\n  Union\n    Filter (#0 > 1)\n      Map #1\n        Get a\n    Negate\n      Filter (#0 > 1)\n        Map #1\n          Get b\n"
        );
    }

    #[test]
    fn top_k_keeps_its_sort_columns_and_drops_an_unread_row_number() {
        // SELECT id FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC) FROM t(id, k, v, x)) WHERE rn <= 3
        let top = Plan::TopK {
            input: get("t", 4),
            partition: vec![1],
            order: vec![SortKey { column: 2, descending: true, nulls_first: false }],
            limit: 3,
            rank: true,
            numbering: Numbering::RowNumber,
        };
        let plan = Plan::Map { input: Box::new(top), exprs: vec![Expr::Column(0)] };
        assert_eq!(
            optimize(plan).to_string(),
            "Map #0\n  TopK 3 per [#1] order by [#2 DESC NULLS LAST]\n    Map #0, #1, #2\n      Get t\n"
        );
    }
}
