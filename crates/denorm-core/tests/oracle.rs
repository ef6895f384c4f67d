//! Oracle tests: for every operator shape, the view maintained incrementally
//! over random batches equals the from-scratch evaluation
//! ([`denorm_core::reference`]) of its plan over the accumulated tables, after
//! every batch. Workloads include NULL join keys, duplicates, rows moving
//! between keys, deletes of matched rows and groups becoming empty. After
//! every batch a twin of the dataflow is saved to a checkpoint and loaded
//! into a new one, whose next outputs must be the same
//! ([`denorm_core::checkpoint`]).

use denorm_core::checkpoint::{CheckpointError, Reader, Writer};
use denorm_core::reference::{evaluate, Tables};
use denorm_core::{Dataflow, Runtime, SourceBatch};
use denorm_expr::{
    Aggregate, AggregateFunc, AggregateOrder, BinaryOp, ConcatSpec, Expr, Func, JoinKind, JsonArraySpec, Numbering,
    OrderTerm, Plan, Shift, SortKey,
};
use denorm_types::{
    consolidate, Catalog, ColumnSchema, Datum, Dialect, Diff, Position, Row, ScalarType, TableSchema, Value,
};
use proptest::prelude::*;

fn catalog() -> Catalog {
    let col = |name: &str, ty| ColumnSchema { name: name.into(), ty, nullable: true };
    let mut c = Catalog::new();
    for (name, extra) in [("a", ScalarType::Text), ("b", ScalarType::Float)] {
        c.add(TableSchema {
            name: name.into(),
            columns: vec![
                col("id", ScalarType::Int),
                col("k", ScalarType::Int),
                col("v", ScalarType::Int),
                col("x", extra),
            ],
            primary_key: vec![],
            unique_keys: vec![],
        });
    }
    c
}

fn get(t: &str) -> Box<Plan> {
    Box::new(Plan::Get { table: t.into(), arity: 4 })
}
fn col(c: usize) -> Expr {
    Expr::Column(c)
}
fn lit(v: impl Into<Value>) -> Expr {
    Expr::Literal(v.into())
}
fn agg(func: AggregateFunc, arg: Option<Expr>) -> Aggregate {
    Aggregate { func, arg }
}
/// `json_group_array(x ORDER BY v DESC, id [LIMIT limit])`,
/// `json_group_array(json_array(id, x) ORDER BY x NULLS FIRST)` and
/// `json_group_object(v, x)` over a table's (id, k, v, x).
fn json_aggs(limit: Option<u32>) -> Vec<Aggregate> {
    let term = |descending, nulls_first| OrderTerm { descending, nulls_first };
    let order = AggregateOrder::new(&[term(true, false), term(false, true)]).unwrap();
    let newest = JsonArraySpec { raw: false, order, limit, filtered: false };
    let by_x_order = AggregateOrder::new(&[term(false, true)]).unwrap();
    let by_x = JsonArraySpec { raw: true, order: by_x_order, limit: None, filtered: true };
    let pair = Expr::Call { func: Func::JsonArray { raw: 0 }, args: vec![col(0), col(3)] };
    vec![
        agg(AggregateFunc::JsonArray(newest), Some(Expr::List(vec![col(3), col(2), col(0)]))),
        // FILTER (WHERE v > 0).
        agg(
            AggregateFunc::JsonArray(by_x),
            Some(Expr::List(vec![pair, col(3), Expr::binary(BinaryOp::Gt, col(2), lit(0))])),
        ),
        agg(AggregateFunc::JsonObject { raw: false, filtered: false }, Some(Expr::List(vec![col(2), col(3)]))),
    ]
}
fn sort(column: usize, descending: bool, nulls_first: bool) -> SortKey {
    SortKey { column, descending, nulls_first }
}
fn top_k(input: Box<Plan>, partition: Vec<usize>, order: Vec<SortKey>, limit: usize, rank: bool) -> Plan {
    Plan::TopK { input, partition, order, limit, rank, numbering: Numbering::RowNumber }
}
/// `RANK()` / `DENSE_RANK()` top-k.
fn ranked(input: Box<Plan>, partition: Vec<usize>, order: Vec<SortKey>, limit: usize, numbering: Numbering) -> Plan {
    Plan::TopK { input, partition, order, limit, rank: true, numbering }
}
/// `LAG`/`LEAD`: every row with the shifted value appended.
fn shifted(input: Box<Plan>, partition: Vec<usize>, order: Vec<SortKey>, shift: Shift) -> Plan {
    Plan::TopK { input, partition, order, limit: usize::MAX, rank: true, numbering: Numbering::Shift(shift) }
}
fn shift(value: usize, offset: i64, default: Option<usize>) -> Shift {
    Shift { value, offset, default }
}
/// (k, v) of table `t`: the set operations' operands (duplicates and NULLs).
fn kv(t: &str) -> Plan {
    Plan::Map { input: get(t), exprs: vec![col(1), col(2)] }
}
fn distinct(input: Plan) -> Plan {
    Plan::Distinct { input: Box::new(input) }
}
fn negate(input: Plan) -> Plan {
    Plan::Negate { input: Box::new(input) }
}
/// `max(0, a − b)`: EXCEPT ALL, and EXCEPT over distinct operands.
fn except(a: Plan, b: Plan) -> Plan {
    Plan::Threshold { input: Box::new(Plan::Union { inputs: vec![a, negate(b)] }) }
}
/// `min(a, b)`: INTERSECT ALL, and INTERSECT over distinct operands.
fn intersect(a: Plan, b: Plan) -> Plan {
    Plan::Union { inputs: vec![a.clone(), negate(except(a, b))] }
}
fn join(kind: JoinKind, left: Box<Plan>, right: Box<Plan>, residual: Option<Expr>) -> Plan {
    Plan::Join { left, right, kind, left_key: vec![1], right_key: vec![1], residual }
}

/// `SUM`/`AVG` by `k` of `v * '1 mon 2 days 03:00:00.5' + k * '-5 days 00:00:07'`.
fn interval_sums() -> Plan {
    let interval = |months, days, micros| lit(Datum::Interval(denorm_expr::Interval { months, days, micros }));
    let times = |i, c| Expr::Call { func: Func::IntervalMul, args: vec![i, col(c)] };
    let arg = Expr::Call {
        func: Func::IntervalPlus,
        args: vec![times(interval(1, 2, 10_800_500_000), 2), times(interval(0, -5, 7_000_000), 1)],
    };
    Plan::Reduce {
        input: get("a"),
        group_key: vec![1],
        aggregates: vec![
            agg(AggregateFunc::Sum, Some(arg.clone())),
            agg(AggregateFunc::Avg, Some(arg)),
            agg(AggregateFunc::Count, None),
        ],
    }
}

/// One plan per operator shape.
fn shapes() -> Vec<(&'static str, Plan)> {
    use AggregateFunc::*;
    let spec = |order, distinct| ConcatSpec { order, distinct };
    let by_id_desc = spec(AggregateOrder::new(&[OrderTerm { descending: true, nulls_first: false }]).unwrap(), false);
    let unordered = spec(AggregateOrder::new(&[]).unwrap(), false);
    let distinct_values = spec(AggregateOrder::new(&[]).unwrap(), true);
    let all_aggs = |x: usize, v: usize| {
        vec![
            agg(Count, None),
            agg(Count, Some(col(v))),
            agg(Sum, Some(col(v))),
            agg(Avg, Some(col(v))),
            agg(Min, Some(col(x))),
            agg(Max, Some(col(v))),
            agg(CountDistinct, Some(col(v))),
            agg(SumDistinct, Some(col(v))),
            agg(AvgDistinct, Some(col(v))),
            agg(GroupConcat(by_id_desc), Some(Expr::List(vec![col(x), lit("|"), col(0)]))),
            agg(GroupConcat(unordered), Some(Expr::List(vec![col(v), lit(", ")]))),
            agg(GroupConcat(distinct_values), Some(Expr::List(vec![col(v), lit(";")]))),
        ]
    };
    vec![
        ("filter", Plan::Filter { input: get("a"), predicate: Expr::binary(BinaryOp::Gt, col(2), lit(0)) }),
        // Pruning projects `a` below the filter; the dataflow fuses the
        // two (the filter reads a's columns, emits the projection).
        (
            "filter over a projection",
            Plan::Filter {
                input: Box::new(Plan::Map { input: get("a"), exprs: vec![col(3), col(2), col(0)] }),
                predicate: Expr::binary(BinaryOp::Gt, col(1), lit(0)),
            },
        ),
        // SUM/AVG of intervals (PostgreSQL): months, days and time summed
        // apart, NULL for a group of NULLs, fractions carried down by AVG.
        ("interval sums", interval_sums()),
        (
            "map",
            Plan::Map {
                input: get("a"),
                exprs: vec![col(1), Expr::binary(BinaryOp::Mul, col(2), lit(2)), Expr::IsNull(Box::new(col(3)))],
            },
        ),
        ("inner join", join(JoinKind::Inner, get("a"), get("b"), None)),
        // Computed over a join reading some of its columns, padded rows
        // included.
        (
            "computed over a left join",
            Plan::Map {
                input: Box::new(join(JoinKind::Left, get("a"), get("b"), None)),
                exprs: vec![Expr::IsNull(Box::new(col(6))), Expr::binary(BinaryOp::Mul, col(2), lit(2)), col(0)],
            },
        ),
        (
            "computed over a full join",
            Plan::Map {
                input: Box::new(join(JoinKind::Full, get("a"), get("b"), None)),
                exprs: vec![Expr::binary(BinaryOp::Mul, col(7), lit(3)), Expr::IsNull(Box::new(col(3)))],
            },
        ),
        ("left join", join(JoinKind::Left, get("a"), get("b"), None)),
        (
            "left join with residual",
            join(JoinKind::Left, get("a"), get("b"), Some(Expr::binary(BinaryOp::Lt, col(2), col(6)))),
        ),
        (
            "inner join with residual",
            join(JoinKind::Inner, get("a"), get("b"), Some(Expr::binary(BinaryOp::NotEq, col(2), col(6)))),
        ),
        ("self join", join(JoinKind::Inner, get("a"), get("a"), None)),
        ("full join", join(JoinKind::Full, get("a"), get("b"), None)),
        (
            "full join with residual",
            join(JoinKind::Full, get("a"), get("b"), Some(Expr::binary(BinaryOp::Lt, col(2), col(6)))),
        ),
        // Residual conjuncts over one side (the optimizer moves some below the join).
        (
            "left join with one-sided residuals",
            join(
                JoinKind::Left,
                get("a"),
                get("b"),
                Some(Expr::binary(
                    BinaryOp::And,
                    Expr::binary(BinaryOp::Gt, col(2), lit(0)),
                    Expr::binary(BinaryOp::Gt, col(6), lit(0)),
                )),
            ),
        ),
        (
            "full join with one-sided residuals",
            join(
                JoinKind::Full,
                get("a"),
                get("b"),
                Some(Expr::binary(
                    BinaryOp::And,
                    Expr::binary(BinaryOp::Gt, col(2), lit(0)),
                    Expr::binary(BinaryOp::Gt, col(6), lit(0)),
                )),
            ),
        ),
        // A product (no key) with a residual, inner and full.
        (
            "product with residual",
            Plan::Join {
                left: get("a"),
                right: get("b"),
                kind: JoinKind::Inner,
                left_key: vec![],
                right_key: vec![],
                residual: Some(Expr::binary(BinaryOp::Lt, col(2), col(6))),
            },
        ),
        (
            "full product with residual",
            Plan::Join {
                left: get("a"),
                right: get("b"),
                kind: JoinKind::Full,
                left_key: vec![],
                right_key: vec![],
                residual: Some(Expr::binary(BinaryOp::Eq, col(1), col(5))),
            },
        ),
        // A full join's output projected (the projection fused into the join).
        (
            "full join projected",
            Plan::Map { input: Box::new(join(JoinKind::Full, get("a"), get("b"), None)), exprs: vec![col(6), col(0)] },
        ),
        ("group by", Plan::Reduce { input: get("a"), group_key: vec![1], aggregates: all_aggs(3, 2) }),
        ("group by float", Plan::Reduce { input: get("b"), group_key: vec![1], aggregates: all_aggs(2, 3) }),
        ("global aggregate", Plan::Reduce { input: get("a"), group_key: vec![], aggregates: all_aggs(3, 2) }),
        // Keys that are doubles: grouped and deduplicated in key form (1.0
        // is looked up as 1), output as the doubles they are.
        ("group by a double", Plan::Reduce { input: get("b"), group_key: vec![3], aggregates: all_aggs(1, 2) }),
        (
            "distinct doubles",
            Plan::Distinct { input: Box::new(Plan::Map { input: get("b"), exprs: vec![col(3), col(1)] }) },
        ),
        // JSON documents: ties on the ORDER BY keys (broken by the element's
        // text in both versions), NULL elements and keys, duplicates, a
        // LIMIT that deletions must refill, an empty global aggregate.
        ("json aggregates", Plan::Reduce { input: get("a"), group_key: vec![1], aggregates: json_aggs(Some(2)) }),
        (
            "json aggregates over doubles",
            Plan::Reduce { input: get("b"), group_key: vec![2], aggregates: json_aggs(None) },
        ),
        ("global json aggregates", Plan::Reduce { input: get("a"), group_key: vec![], aggregates: json_aggs(Some(0)) }),
        ("distinct", Plan::Distinct { input: Box::new(Plan::Map { input: get("a"), exprs: vec![col(1), col(3)] }) }),
        (
            "left join then group by",
            Plan::Reduce {
                input: Box::new(join(JoinKind::Left, get("a"), get("b"), None)),
                group_key: vec![0],
                aggregates: vec![agg(Count, Some(col(4))), agg(Sum, Some(col(7))), agg(Max, Some(col(7)))],
            },
        ),
        // Top-k: NULLs in partition and sort keys, ties (broken by row bytes
        // in both versions), duplicates, partitions emptying out, k beyond
        // a partition's size, rows moving between partitions (updates).
        ("top-k with row number", top_k(get("a"), vec![1], vec![sort(2, true, false), sort(3, false, true)], 2, true)),
        ("top-k without row number", top_k(get("b"), vec![1], vec![sort(3, false, false)], 3, false)),
        ("top-1 of everything", top_k(get("a"), vec![], vec![sort(3, true, true), sort(0, false, false)], 1, true)),
        ("top-k of two partition columns", top_k(get("b"), vec![1, 2], vec![sort(0, true, true)], 2, true)),
        ("top-0", top_k(get("a"), vec![1], vec![sort(2, false, true)], 0, true)),
        // RANK / DENSE_RANK: small value ranges, so ties everywhere
        // (duplicates, NULLs, 0.0 and -0.0, 1 and 1.0 in mixed columns).
        ("rank", ranked(get("a"), vec![1], vec![sort(2, true, false)], 2, Numbering::Rank)),
        ("dense rank", ranked(get("a"), vec![1], vec![sort(2, true, false)], 2, Numbering::DenseRank)),
        ("rank by text, nulls first", ranked(get("a"), vec![2], vec![sort(3, false, true)], 1, Numbering::Rank)),
        ("dense rank of doubles", ranked(get("b"), vec![1], vec![sort(3, false, false)], 3, Numbering::DenseRank)),
        (
            "rank of everything by two keys",
            ranked(get("b"), vec![], vec![sort(2, true, true), sort(3, false, true)], 3, Numbering::Rank),
        ),
        // LAG / LEAD: ties (broken by the row bytes) and duplicates change
        // neighbours; offsets past the partition, defaults from the row.
        ("lag 1", shifted(get("a"), vec![1], vec![sort(2, false, true)], shift(3, -1, None))),
        ("lead 2 with default", shifted(get("a"), vec![1], vec![sort(2, true, false)], shift(2, 2, Some(0)))),
        ("lag 3 over everything", shifted(get("b"), vec![], vec![sort(1, false, false)], shift(3, -3, Some(2)))),
        (
            "lead 1 by two keys",
            shifted(get("b"), vec![2], vec![sort(1, true, true), sort(0, false, true)], shift(0, 1, None)),
        ),
        ("shift 0", shifted(get("a"), vec![], vec![sort(2, false, true)], shift(3, 0, None))),
        (
            "lag over a join, then filter on it",
            Plan::Filter {
                input: Box::new(shifted(
                    Box::new(join(JoinKind::Inner, get("a"), get("b"), None)),
                    vec![1],
                    vec![sort(6, false, true)],
                    shift(2, -1, Some(6)),
                )),
                predicate: Expr::binary(BinaryOp::Gt, col(8), lit(0)),
            },
        ),
        (
            "lead without its value",
            Plan::TopK {
                input: get("b"),
                partition: vec![2],
                order: vec![sort(1, false, true)],
                limit: usize::MAX,
                rank: false,
                numbering: Numbering::Shift(shift(3, 1, None)),
            },
        ),
        ("rank top-0", ranked(get("a"), vec![1], vec![sort(2, false, true)], 0, Numbering::Rank)),
        (
            "rank without its number",
            Plan::TopK {
                input: get("b"),
                partition: vec![2],
                order: vec![sort(1, false, true)],
                limit: 2,
                rank: false,
                numbering: Numbering::Rank,
            },
        ),
        (
            "dense rank over a join, without its number (no JoinTopK)",
            Plan::TopK {
                input: Box::new(join(JoinKind::Inner, get("a"), get("b"), None)),
                partition: vec![2],
                order: vec![sort(7, true, false)],
                limit: 1,
                rank: false,
                numbering: Numbering::DenseRank,
            },
        ),
        (
            "dense rank then filter on it",
            Plan::Filter {
                input: Box::new(ranked(get("a"), vec![], vec![sort(1, false, false)], 3, Numbering::DenseRank)),
                predicate: Expr::binary(BinaryOp::GtEq, col(4), lit(2)),
            },
        ),
        (
            "top-k then filter on the row number",
            Plan::Filter {
                input: Box::new(top_k(get("a"), vec![2], vec![sort(1, false, false)], 3, true)),
                predicate: Expr::binary(BinaryOp::GtEq, col(4), lit(2)),
            },
        ),
        (
            "top-k over a join, then group by",
            Plan::Reduce {
                input: Box::new(top_k(
                    Box::new(join(JoinKind::Left, get("a"), get("b"), None)),
                    vec![1],
                    vec![sort(7, true, false), sort(0, false, true), sort(4, false, true)],
                    2,
                    true,
                )),
                group_key: vec![1],
                aggregates: vec![agg(AggregateFunc::Count, None), agg(AggregateFunc::Sum, Some(col(8)))],
            },
        ),
        // A top-k without row numbers over an inner join holds only the top
        // k (a bounded JoinTopK): deletions inside a full partition refill it
        // from the join's arrangements, whichever side the partition is on.
        (
            "bounded top-k over a join, partition on the left",
            top_k(
                Box::new(join(JoinKind::Inner, get("a"), get("b"), None)),
                vec![2],
                vec![sort(7, true, false), sort(4, false, true)],
                2,
                false,
            ),
        ),
        (
            "bounded top-k over a join with residual, partition on the right",
            top_k(
                Box::new(join(
                    JoinKind::Inner,
                    get("a"),
                    get("b"),
                    Some(Expr::binary(BinaryOp::NotEq, col(2), col(6))),
                )),
                vec![6],
                vec![sort(3, false, true), sort(0, true, false)],
                1,
                false,
            ),
        ),
        (
            "bounded top-k over a projected join, two partition columns",
            top_k(
                Box::new(Plan::Map {
                    input: Box::new(join(JoinKind::Inner, get("a"), get("b"), None)),
                    exprs: vec![col(2), col(0), col(7), col(3)],
                }),
                vec![0, 1],
                vec![sort(2, true, true)],
                1,
                false,
            ),
        ),
        (
            "bounded top-k over a join, partition by a double",
            top_k(
                Box::new(join(JoinKind::Inner, get("a"), get("b"), None)),
                vec![7],
                vec![sort(2, false, true), sort(3, true, false)],
                2,
                false,
            ),
        ),
        (
            "bounded top-k over a self join",
            top_k(
                Box::new(join(JoinKind::Inner, get("a"), get("a"), None)),
                vec![0],
                vec![sort(6, false, true)],
                3,
                false,
            ),
        ),
        // Set operations: duplicates, NULLs (equal to each other here),
        // rows present on one side only, both sides changing in one batch.
        ("union all", Plan::Union { inputs: vec![kv("a"), kv("b")] }),
        ("union all of one input twice", Plan::Union { inputs: vec![kv("a"), kv("a")] }),
        ("union", distinct(Plan::Union { inputs: vec![kv("a"), kv("b")] })),
        ("except all", except(kv("a"), kv("b"))),
        ("except", except(distinct(kv("a")), distinct(kv("b")))),
        ("intersect all", intersect(kv("a"), kv("b"))),
        ("intersect", intersect(distinct(kv("a")), distinct(kv("b")))),
        (
            "filter over except all (pushed into both sides)",
            Plan::Filter {
                input: Box::new(except(kv("a"), kv("b"))),
                predicate: Expr::binary(BinaryOp::Gt, col(1), lit(0)),
            },
        ),
        (
            "union with constant rows",
            Plan::Union {
                inputs: vec![
                    kv("b"),
                    Plan::Values {
                        rows: vec![Row::pack([Datum::Int(1), Datum::Int(2)]), Row::pack([Datum::Null, Datum::Int(0)])],
                        arity: 2,
                    },
                ],
            },
        ),
        (
            "constant row mapped",
            Plan::Map { input: Box::new(Plan::Values { rows: vec![Row::empty()], arity: 0 }), exprs: vec![lit(7)] },
        ),
        // Top-N with OFFSET: the first 2 + 3 rows numbered, the first 2 dropped.
        (
            "top-n with offset",
            Plan::Map {
                input: Box::new(Plan::Filter {
                    input: Box::new(top_k(get("a"), vec![], vec![sort(2, true, false), sort(0, false, true)], 5, true)),
                    predicate: Expr::binary(BinaryOp::Gt, col(4), lit(2)),
                }),
                exprs: vec![col(0), col(1), col(2), col(3)],
            },
        ),
        (
            "three-way join",
            Plan::Join {
                left: Box::new(join(JoinKind::Left, get("a"), get("b"), None)),
                right: get("a"),
                kind: JoinKind::Left,
                left_key: vec![6],
                right_key: vec![2],
                residual: None,
            },
        ),
        // An uncorrelated scalar subquery compared with the outer rows: a
        // ScalarFilter (outer rows ordered by the compared value), not a
        // product; scalars through NULL (avg of nothing), 1 beside 1.0.
        (
            "scalar: a.v > (SELECT avg(v) FROM b)",
            Plan::Map {
                input: Box::new(Plan::Filter {
                    input: Box::new(product(JoinKind::Left, get("a"), scalar(agg(AggregateFunc::Avg, Some(col(2)))))),
                    predicate: Expr::binary(BinaryOp::Gt, col(2), col(4)),
                }),
                exprs: vec![col(0), col(1), col(2), col(3)],
            },
        ),
        (
            "scalar on the left of an inner join: max(b.x) * 0.5 <= a.k, projected",
            Plan::Map {
                input: Box::new(Plan::Join {
                    left: scalar(agg(AggregateFunc::Max, Some(col(3)))),
                    right: get("a"),
                    kind: JoinKind::Inner,
                    left_key: vec![],
                    right_key: vec![],
                    residual: Some(Expr::binary(BinaryOp::LtEq, Expr::binary(BinaryOp::Mul, col(0), lit(0.5)), col(2))),
                }),
                exprs: vec![col(1), Expr::binary(BinaryOp::Mul, col(3), lit(2))],
            },
        ),
        (
            "scalar: b.x = (SELECT min(x) FROM b) AND b.k IS NOT NULL",
            Plan::Map {
                input: Box::new(Plan::Filter {
                    input: Box::new(product(JoinKind::Left, get("b"), scalar(agg(AggregateFunc::Min, Some(col(3)))))),
                    predicate: Expr::binary(
                        BinaryOp::And,
                        Expr::binary(BinaryOp::Eq, col(4), col(3)),
                        Expr::Not(Box::new(Expr::IsNull(Box::new(col(1))))),
                    ),
                }),
                exprs: vec![col(0), col(3)],
            },
        ),
        (
            // The scalar side may be empty (a filtered global aggregate):
            // the LEFT JOIN's padding compares coalesce(NULL, 0).
            "scalar: a.v <> coalesce(count over 2 rows, 0)",
            Plan::Map {
                input: Box::new(Plan::Filter {
                    input: Box::new(product(
                        JoinKind::Left,
                        get("a"),
                        Box::new(Plan::Filter {
                            input: scalar(agg(AggregateFunc::Count, None)),
                            predicate: Expr::binary(BinaryOp::Gt, col(0), lit(2)),
                        }),
                    )),
                    predicate: Expr::binary(BinaryOp::NotEq, col(2), Expr::Coalesce(vec![col(4), lit(0)])),
                }),
                exprs: vec![col(0), col(2)],
            },
        ),
        (
            // As the planner builds `v <> (SELECT count(*) …)`: the count
            // coalesced by a Map between the filter and the join.
            "scalar: a.k >= coalesce(count(b.v), 0) through a Map",
            Plan::Map {
                input: Box::new(Plan::Filter {
                    input: Box::new(Plan::Map {
                        input: Box::new(product(
                            JoinKind::Left,
                            get("a"),
                            scalar(agg(AggregateFunc::Count, Some(col(2)))),
                        )),
                        exprs: vec![col(0), col(1), Expr::Coalesce(vec![col(4), lit(0)])],
                    }),
                    predicate: Expr::binary(BinaryOp::GtEq, col(1), col(2)),
                }),
                exprs: vec![col(0), col(1)],
            },
        ),
    ]
}

/// `SELECT agg FROM b`: one row, always.
fn scalar(aggregate: Aggregate) -> Box<Plan> {
    Box::new(Plan::Reduce { input: get("b"), group_key: vec![], aggregates: vec![aggregate] })
}

/// A join on no key (how the planner joins an uncorrelated scalar subquery).
fn product(kind: JoinKind, left: Box<Plan>, right: Box<Plan>) -> Plan {
    Plan::Join { left, right, kind, left_key: vec![], right_key: vec![], residual: None }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(bool, Vec<Value>),
    /// Delete the n-th live row (modulo the table size).
    Delete(bool, usize),
    /// Replace the n-th live row.
    Update(bool, usize, Vec<Value>),
}

fn row_values() -> impl Strategy<Value = (Vec<Value>, Vec<Value>)> {
    let small = |n: i64| prop_oneof![1 => Just(Datum::Null), 6 => (-n..n).prop_map(Datum::Int)];
    let text = prop_oneof![Just(Datum::Null), Just(Value::from("x")), Just(Value::from("y")), Just(Value::from("Z"))];
    // Tenths and large magnitudes: a sum that drifted with the order of
    // insertions and retractions differs from the correctly rounded one.
    let float = prop_oneof![
        Just(Datum::Null),
        (-8i32..8).prop_map(|q| Datum::Float(f64::from(q) * 0.25)),
        (-8i32..8).prop_map(|q| Datum::Float(f64::from(q) * 0.1)),
        prop_oneof![Just(1e16), Just(-1e16), Just(1e300)].prop_map(Datum::Float),
    ];
    (0i64..6, small(4), small(3), text, float)
        .prop_map(|(id, k, v, t, f)| (vec![Datum::Int(id), k.clone(), v.clone(), t], vec![Datum::Int(id), k, v, f]))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), row_values()).prop_map(|(b, (a, bb))| Op::Insert(b, if b { bb } else { a })),
        2 => (any::<bool>(), any::<usize>()).prop_map(|(b, n)| Op::Delete(b, n)),
        2 => (any::<bool>(), any::<usize>(), row_values()).prop_map(|(b, n, (a, bb))| Op::Update(b, n, if b { bb } else { a })),
    ]
}

/// Applies `op` to the model; returns the source changes it made.
fn apply_op(op: &Op, tables: &mut Tables) -> (String, Vec<(Row, Diff)>) {
    let name = |b: bool| if b { "b" } else { "a" }.to_string();
    let (table, changes) = match op {
        Op::Insert(b, v) => (name(*b), vec![(Row::pack(v), 1)]),
        Op::Delete(b, n) | Op::Update(b, n, _) => {
            let live = tables.get(&name(*b)).cloned().unwrap_or_default();
            let mut changes = Vec::new();
            if !live.is_empty() {
                changes.push((live[n % live.len()].0.clone(), -1));
            }
            if let Op::Update(_, _, v) = op {
                changes.push((Row::pack(v), 1));
            }
            (name(*b), changes)
        }
    };
    let slot = tables.entry(table.clone()).or_default();
    slot.extend(changes.iter().cloned());
    consolidate(slot);
    (table, changes)
}

fn sorted(mut rows: Vec<(Row, Diff)>) -> Vec<(Row, Diff)> {
    consolidate(&mut rows);
    rows
}

fn check_shape(plan: &Plan, ops: &[Op], batch_sizes: &[usize], chunk: usize) -> Result<(), TestCaseError> {
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    // Batches of insertions only run in pieces of `chunk` changes.
    dataflow.set_chunk_size(chunk);
    let view = dataflow.add_view("v", plan, (0..plan.arity()).collect(), false).unwrap();
    // The same view emitting its changes only (its consumer keeps the
    // rows): what it emits, accumulated, must be the same rows.
    let emitting = dataflow.add_view_emitting("e", plan).unwrap();
    let mut emitted: Vec<(Row, Diff)> = Vec::new();
    // A twin saved to a checkpoint and loaded into a new dataflow after
    // every batch: its next outputs must equal the uninterrupted one's.
    let twin_of = || {
        let mut twin = Dataflow::new(catalog(), Dialect::Sqlite);
        twin.set_chunk_size(chunk);
        twin.add_view_emitting("e", plan).unwrap();
        twin
    };
    let mut twin = Some(twin_of());
    let mut tables = Tables::new();
    let mut rest = ops;
    let mut position = 0;
    for size in batch_sizes.iter().cycle() {
        let (now, later) = rest.split_at((*size).min(rest.len()));
        rest = later;
        position += 1;
        let mut batch = SourceBatch { position: Position(position), tables: Vec::new() };
        for op in now {
            batch.tables.push(apply_op(op, &mut tables));
        }
        let out = dataflow.apply(&batch);
        prop_assert!(out.errors.is_empty(), "errors: {:?}", out.errors);
        let want = evaluate(plan, &tables, Dialect::Sqlite).unwrap();
        prop_assert_eq!(sorted(dataflow.view_rows(view)), want.clone(), "after batch {}", position);
        let changes: Vec<(Row, Diff)> =
            out.views.iter().filter(|v| v.view == emitting).flat_map(|v| v.changes.iter().cloned()).collect();
        if let Some(old) = twin.take() {
            twin = restart(old, &batch, &changes, twin_of())?;
        }
        emitted.extend(changes);
        emitted = sorted(emitted).into_iter().filter(|(_, d)| *d != 0).collect();
        prop_assert_eq!(&emitted, &want, "emitted changes after batch {}", position);
        if let Plan::TopK { limit, .. } = plan {
            for state in dataflow.bounded_top_k() {
                prop_assert!(state.largest <= *limit, "a bounded top-k holds {} rows of a partition", state.largest);
            }
        }
        if rest.is_empty() {
            break;
        }
    }
    // A bounded top-k over a join (JoinTopK) is checkpointed too: its twin
    // went through every save and load.
    prop_assert!(
        dataflow.bounded_top_k().is_empty() || twin.is_some(),
        "a bounded top-k over a join was not saved to a checkpoint"
    );
    Ok(())
}

/// Applies `batch` to `twin` (its changes must be `want`), saves it to a
/// checkpoint and loads that into `fresh`, which must save to as many bytes.
/// `None` when the shape holds an operator checkpoints do not cover.
fn restart(
    mut twin: Dataflow,
    batch: &SourceBatch,
    want: &[(Row, Diff)],
    mut fresh: Dataflow,
) -> Result<Option<Dataflow>, TestCaseError> {
    let out = twin.apply(batch);
    let got: Vec<(Row, Diff)> = out.views.into_iter().flat_map(|v| v.changes).collect();
    prop_assert_eq!(sorted(got), sorted(want.to_vec()), "changes of the dataflow loaded from a checkpoint");
    let mut saved = Writer::default();
    match twin.save_checkpoint(&mut saved) {
        Err(CheckpointError::Unsupported(_)) => return Ok(None),
        Err(e) => return Err(TestCaseError::fail(format!("saving: {e}"))),
        Ok(()) => {}
    }
    let mut reader = Reader::new(&saved.buf);
    let position = fresh.load_checkpoint(&mut reader).map_err(|e| TestCaseError::fail(format!("loading: {e}")))?;
    prop_assert!(reader.at_end());
    prop_assert_eq!(position, batch.position);
    let mut again = Writer::default();
    fresh.save_checkpoint(&mut again).map_err(|e| TestCaseError::fail(format!("saving again: {e}")))?;
    prop_assert_eq!(again.buf.len(), saved.buf.len(), "the loaded state saves to as many bytes");
    Ok(Some(fresh))
}

proptest! {
    // A quarter of the suite's cases (500 in CI): every case saves and loads
    // a twin of every node after every batch, the slowest core test.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse::<u32>().ok()).map_or(200, |c| (c / 4).max(50))
    ))]

    #[test]
    fn incremental_equals_from_scratch(
        ops in proptest::collection::vec(op(), 1..60),
        batch_sizes in proptest::collection::vec(1usize..8, 1..5),
        chunk in 1usize..6,
    ) {
        for (name, plan) in shapes() {
            check_shape(&plan, &ops, &batch_sizes, chunk).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        }
    }
}

#[test]
fn global_aggregate_has_a_row_before_any_change() {
    let plan = Plan::Reduce {
        input: get("a"),
        group_key: vec![],
        aggregates: vec![agg(AggregateFunc::Count, None), agg(AggregateFunc::Sum, Some(col(2)))],
    };
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    let view = dataflow.add_view("v", &plan, vec![], false).unwrap();
    dataflow.apply(&SourceBatch::default());
    assert_eq!(dataflow.view_rows(view), vec![(Row::pack([Datum::Int(0), Datum::Null]), 1)]);
}

#[test]
fn top_k_over_an_inner_join_is_bounded() {
    for (name, plan) in shapes() {
        let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
        dataflow.add_view_emitting("v", &plan).unwrap();
        assert_eq!(dataflow.bounded_top_k().len(), usize::from(name.starts_with("bounded")), "{name}");
    }
}

#[test]
fn scalar_subquery_comparisons_are_not_products() {
    for (name, plan) in shapes() {
        let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
        dataflow.add_view_emitting("v", &plan).unwrap();
        assert_eq!(dataflow.scalar_filter_count(), usize::from(name.starts_with("scalar")), "{name}");
    }
}

#[test]
fn shared_subplans_are_built_once() {
    // Two views over the same join share its input, arrangements and join.
    let plan = join(JoinKind::Inner, get("a"), get("b"), None);
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    dataflow.add_view("v1", &plan, (0..8).collect(), false).unwrap();
    let nodes = dataflow.node_count();
    dataflow.add_view("v2", &plan, vec![0], false).unwrap();
    assert_eq!(dataflow.node_count(), nodes);
}

#[test]
fn sum_overflow_fails_only_that_view() {
    // Regression guard: an integer SUM beyond i64 must be an error on the
    // view (as SQLite raises "integer overflow"), never a wrapped value.
    let sum =
        Plan::Reduce { input: get("a"), group_key: vec![], aggregates: vec![agg(AggregateFunc::Sum, Some(col(2)))] };
    let count = Plan::Reduce { input: get("a"), group_key: vec![], aggregates: vec![agg(AggregateFunc::Count, None)] };
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    let s = dataflow.add_view("s", &sum, vec![], false).unwrap();
    let c = dataflow.add_view("c", &count, vec![], false).unwrap();
    let row = |id| Row::pack([Datum::Int(id), Datum::Null, Datum::Int(i64::MAX), Datum::Null]);
    let batch = SourceBatch { position: Position(1), tables: vec![("a".into(), vec![(row(1), 1), (row(2), 1)])] };
    let out = dataflow.apply(&batch);
    assert_eq!(out.errors.len(), 1);
    // SQLite's own message for it.
    assert_eq!(dataflow.view_error(s).map(ToString::to_string).as_deref(), Some("integer overflow"));
    assert!(dataflow.view_error(c).is_none());
    assert_eq!(dataflow.view_rows(c), vec![(Row::pack([Datum::Int(2)]), 1)]);
}

/// A total within range is a value even where SQLite, adding in its scan
/// order, would have met an out-of-range partial sum (2^63 - 1, then 1,
/// then -1): the order-dependent case documented in `operator/reduce.rs`.
/// AVG never fails: SQLite averages an overflowing integer sum as a double.
#[test]
fn an_integer_sum_in_range_is_a_value_and_avg_never_overflows() {
    let plan = Plan::Reduce {
        input: get("a"),
        group_key: vec![],
        aggregates: vec![agg(AggregateFunc::Sum, Some(col(2))), agg(AggregateFunc::Avg, Some(col(2)))],
    };
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    let v = dataflow.add_view("v", &plan, vec![], false).unwrap();
    let row = |id, x| Row::pack([Datum::Int(id), Datum::Null, Datum::Int(x), Datum::Null]);
    let rows = vec![(row(1, i64::MAX), 1), (row(2, 1), 1), (row(3, -1), 1)];
    dataflow.apply(&SourceBatch { position: Position(1), tables: vec![("a".into(), rows)] });
    assert!(dataflow.view_error(v).is_none());
    let avg = i64::MAX as f64 / 3.0;
    assert_eq!(dataflow.view_rows(v), vec![(Row::pack([Datum::Int(i64::MAX), Datum::Float(avg)]), 1)]);
    let mut avg_only = dataflow_with(Plan::Reduce {
        input: get("a"),
        group_key: vec![],
        aggregates: vec![agg(AggregateFunc::Avg, Some(col(2)))],
    });
    let rows = vec![(row(1, i64::MAX), 1), (row(2, i64::MAX), 1)];
    avg_only.0.apply(&SourceBatch { position: Position(1), tables: vec![("a".into(), rows)] });
    assert_eq!(avg_only.0.view_rows(avg_only.1), vec![(Row::pack([Datum::Float(i64::MAX as f64)]), 1)]);
}

fn dataflow_with(plan: Plan) -> (Dataflow, denorm_core::ViewId) {
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    let view = dataflow.add_view("v", &plan, vec![], false).unwrap();
    (dataflow, view)
}

#[test]
fn key_violation_is_an_error_not_an_overwrite() {
    // A view keyed by k (not unique in a) must fail when two rows share k.
    let plan = Plan::Map { input: get("a"), exprs: vec![col(1), col(0)] };
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    let v = dataflow.add_view("v", &plan, vec![0], true).unwrap();
    let row = |id| Row::pack([Datum::Int(id), Datum::Int(7), Datum::Null, Datum::Null]);
    let out = dataflow
        .apply(&SourceBatch { position: Position(1), tables: vec![("a".into(), vec![(row(1), 1), (row(2), 1)])] });
    assert_eq!(out.errors.len(), 1);
    assert!(matches!(dataflow.view_error(v), Some(denorm_core::ViewError::KeyViolation { .. })));
}

#[test]
fn malformed_rows_are_rejected_and_change_nothing() {
    let plan = Plan::Map { input: get("a"), exprs: vec![col(0)] };
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    let v = dataflow.add_view("v", &plan, vec![0], false).unwrap();
    let out = dataflow.apply(&SourceBatch {
        position: Position(1),
        tables: vec![("a".into(), vec![(Row::pack([Datum::Int(1)]), 1)])],
    });
    assert_eq!(out.rejected.len(), 1);
    assert!(dataflow.view_rows(v).is_empty());
}

/// `Map columns (Get t)`: a join side as column pruning leaves it.
fn pick(t: &str, columns: &[usize]) -> Box<Plan> {
    Box::new(Plan::Map { input: get(t), exprs: columns.iter().map(|&c| col(c)).collect() })
}

fn keyed(kind: JoinKind, left: (Box<Plan>, usize), right: (Box<Plan>, usize), residual: Option<Expr>) -> Plan {
    Plan::Join { left: left.0, right: right.0, kind, left_key: vec![left.1], right_key: vec![right.1], residual }
}

fn project(input: Plan, columns: &[usize]) -> Plan {
    Plan::Map { input: Box::new(input), exprs: columns.iter().map(|&c| col(c)).collect() }
}

/// Sets of views whose joins read `a` and `b` by `k` (column 1), each view
/// its own columns: with the hint, each set arranges each table by `k`
/// once (the second figure), holding the union of the columns.
fn sharing_sets() -> Vec<(&'static str, Vec<Plan>, usize)> {
    let count_by = |input: Plan, key: Vec<usize>| Plan::Reduce {
        input: Box::new(input),
        group_key: key,
        aggregates: vec![agg(AggregateFunc::Count, None), agg(AggregateFunc::Sum, Some(col(2)))],
    };
    // a: [k, id] and [v, k] (union id, k, v); b: [k, v] and [x, k] (union k, v, x).
    let inner = project(keyed(JoinKind::Inner, (pick("a", &[1, 0]), 0), (pick("b", &[1, 2]), 0), None), &[1, 3]);
    let left = keyed(
        JoinKind::Left,
        (pick("a", &[2, 1]), 1),
        (pick("b", &[3, 1]), 1),
        Some(Expr::binary(BinaryOp::Lt, col(0), lit(Datum::Int(2)))),
    );
    let full = project(
        keyed(
            JoinKind::Full,
            (pick("b", &[1, 2]), 0),
            (pick("a", &[1, 0]), 0),
            Some(Expr::binary(BinaryOp::NotEq, col(1), col(3))),
        ),
        &[3, 1, 0],
    );
    // The whole of `a` in one view: the union is the table itself.
    let whole = keyed(JoinKind::Left, (get("a"), 1), (pick("b", &[2, 1]), 1), None);
    let grouped = count_by(keyed(JoinKind::Inner, (pick("a", &[1, 2]), 0), (pick("b", &[3, 1]), 1), None), vec![3]);
    vec![
        ("inner and left", vec![inner.clone(), left.clone()], 2),
        ("inner, left and full", vec![inner.clone(), left.clone(), full.clone()], 2),
        ("with the whole table", vec![inner, whole, grouped.clone()], 2),
        ("full and grouped", vec![full, grouped, left], 2),
    ]
}

/// The views of `plans` in one dataflow told to share arrangements: after
/// every batch each equals its plan evaluated from scratch; a twin is saved
/// to a checkpoint and loaded after every batch. Returns the dataflow.
fn check_shared(plans: &[Plan], ops: &[Op], batch_sizes: &[usize], chunk: usize) -> Result<Dataflow, TestCaseError> {
    let build = |keep: bool| {
        let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
        dataflow.set_chunk_size(chunk);
        dataflow.share_arrangements(plans);
        for (i, plan) in plans.iter().enumerate() {
            if keep {
                dataflow.add_view(&format!("v{i}"), plan, (0..plan.arity()).collect(), false).unwrap();
            } else {
                dataflow.add_view_emitting(&format!("v{i}"), plan).unwrap();
            }
        }
        dataflow
    };
    let mut dataflow = build(true);
    let mut twin = Some(build(false));
    let mut tables = Tables::new();
    let mut rest = ops;
    let mut position = 0;
    for size in batch_sizes.iter().cycle() {
        let (now, later) = rest.split_at((*size).min(rest.len()));
        rest = later;
        position += 1;
        let mut batch = SourceBatch { position: Position(position), tables: Vec::new() };
        for op in now {
            batch.tables.push(apply_op(op, &mut tables));
        }
        let out = dataflow.apply(&batch);
        prop_assert!(out.errors.is_empty(), "errors: {:?}", out.errors);
        for (i, plan) in plans.iter().enumerate() {
            let want = evaluate(plan, &tables, Dialect::Sqlite).unwrap();
            let view = denorm_core::ViewId(i);
            prop_assert_eq!(sorted(dataflow.view_rows(view)), want, "view {} after batch {}", i, position);
        }
        let changes: Vec<(Row, Diff)> = out.views.iter().flat_map(|v| v.changes.iter().cloned()).collect();
        if let Some(old) = twin.take() {
            twin = restart(old, &batch, &changes, build(false))?;
            prop_assert!(twin.is_some(), "every node of these views is checkpointed");
        }
        if rest.is_empty() {
            break;
        }
    }
    Ok(dataflow)
}

/// The arrangements of a dataflow: `(label, bytes)`.
fn arrangements(dataflow: &Dataflow) -> Vec<String> {
    dataflow.state_bytes().into_iter().filter(|(_, label, _)| label.contains("Arrange")).map(|(_, l, _)| l).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse::<u32>().ok()).map_or(100, |c| (c / 4).max(50))
    ))]

    /// Views sharing a widened arrangement under random inserts, updates
    /// (of join keys and of columns only other views read) and deletes,
    /// NULL keys, inner, left and full joins: each equals the reference.
    #[test]
    fn views_sharing_a_widened_arrangement_equal_the_reference(
        ops in proptest::collection::vec(op(), 1..60),
        batch_sizes in proptest::collection::vec(1usize..8, 1..5),
        chunk in 1usize..6,
    ) {
        for (name, plans, _) in sharing_sets() {
            check_shared(&plans, &ops, &batch_sizes, chunk).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        }
    }
}

#[test]
fn joins_reading_one_table_by_one_key_share_one_arrangement() {
    for (name, plans, want) in sharing_sets() {
        let mut apart = Dataflow::new(catalog(), Dialect::Sqlite);
        for (i, plan) in plans.iter().enumerate() {
            apart.add_view(&format!("v{i}"), plan, vec![], false).unwrap();
        }
        let ops: Vec<Op> = (0..6)
            .map(|i| Op::Insert(i % 2 == 0, vec![Datum::Int(i), Datum::Int(i % 3), Datum::Int(i), Datum::Null]))
            .collect();
        let shared = check_shared(&plans, &ops, &[6], 64).unwrap();
        let labels = arrangements(&shared);
        assert_eq!(labels.len(), want, "{name}: {labels:?}");
        assert!(arrangements(&apart).len() > want, "{name}: without the hint, one arrangement per column list");
        // Each shared arrangement is reported once, under the first view.
        assert!(labels.iter().all(|l| l.contains("shared by")), "{name}: {labels:?}");
    }
}

/// A view added after the hint whose columns are outside the union gets an
/// arrangement of its own and the right rows; the hint changes no view that
/// shares nothing.
#[test]
fn a_view_outside_the_hint_keeps_its_own_arrangement() {
    let (_, plans, _) = sharing_sets().remove(0);
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    dataflow.share_arrangements(&plans);
    for (i, plan) in plans.iter().enumerate() {
        dataflow.add_view(&format!("v{i}"), plan, vec![], false).unwrap();
    }
    let shared = arrangements(&dataflow).len();
    // a by k with x: outside a's union (id, k, v).
    let late = keyed(JoinKind::Inner, (pick("a", &[1, 3]), 0), (pick("b", &[1]), 0), None);
    let view = dataflow.add_view("late", &late, vec![], false).unwrap();
    // Its own `a` arrangement; its `b` side ([k]) is within b's union.
    assert_eq!(arrangements(&dataflow).len(), shared + 1);
    let row = |id: i64, k: i64| Row::pack([Datum::Int(id), Datum::Int(k), Datum::Int(id), Datum::text("t")]);
    let batch = SourceBatch {
        position: Position(1),
        tables: vec![("a".into(), vec![(row(1, 1), 1), (row(2, 2), 1)]), ("b".into(), vec![(row(3, 1), 1)])],
    };
    dataflow.apply(&batch);
    let want = vec![(Row::pack([Datum::Int(1), Datum::text("t"), Datum::Int(1)]), 1)];
    assert_eq!(sorted(dataflow.view_rows(view)), want);

    let alone = keyed(JoinKind::Inner, (pick("a", &[1, 3]), 0), (pick("b", &[1]), 0), None);
    let mut hinted = Dataflow::new(catalog(), Dialect::Sqlite);
    hinted.share_arrangements([&alone]);
    hinted.add_view("alone", &alone, vec![], false).unwrap();
    let mut plain = Dataflow::new(catalog(), Dialect::Sqlite);
    plain.add_view("alone", &alone, vec![], false).unwrap();
    assert_eq!(hinted.node_count(), plain.node_count());
    assert_eq!(arrangements(&hinted), arrangements(&plain));
}
