//! The logical plan: relational operators the core maintains incrementally.

use std::fmt;

use denorm_types::Row;

use crate::aggregate::Aggregate;
use crate::expr::Expr;

/// One `ORDER BY` term of a [`Plan::TopK`]: an input column, its direction
/// and where NULLs go (the planner fixes each dialect's default: SQLite puts
/// NULLs first ascending, PostgreSQL last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SortKey {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = if self.descending { "DESC" } else { "ASC" };
        let nulls = if self.nulls_first { "FIRST" } else { "LAST" };
        write!(f, "#{} {direction} NULLS {nulls}", self.column)
    }
}

/// How a [`Plan::TopK`] numbers the rows of a partition, in ORDER BY order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Numbering {
    /// `ROW_NUMBER()`: 1, 2, 3, … (ties broken by the rows' encoded bytes).
    #[default]
    RowNumber,
    /// `RANK()`: 1 + the number of rows strictly before (ties share a
    /// number, gaps follow them).
    Rank,
    /// `DENSE_RANK()`: 1 + the number of distinct ORDER BY values before.
    DenseRank,
    /// `LEAD(value, offset, default)` (`offset` > 0) or `LAG(value, n,
    /// default)` (`offset` = −n): the `value` column of the row `offset`
    /// places away in the partition's order (ties broken by the rows'
    /// encoded bytes, as for `RowNumber`), or this row's `default` column
    /// (NULL without one) past the partition's ends. Every row is kept:
    /// the `TopK`'s limit is ignored and `rank` appends the shifted value.
    Shift(Shift),
}

/// The columns and distance of a [`Numbering::Shift`] (`LAG`/`LEAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shift {
    /// The input column read from the neighbouring row.
    pub value: usize,
    /// Positions forward (`LEAD`, positive) or backward (`LAG`, negative).
    pub offset: i64,
    /// The input column (of the row itself) used past the partition's ends.
    pub default: Option<usize>,
}

impl Shift {
    /// The shifted row's value for the row at `i` of `rows` (one entry per
    /// copy, in order), or this row's default.
    pub fn pick<'r>(&self, rows: &[&'r Row], i: usize) -> denorm_types::Datum<'r> {
        let j = i64::try_from(i).ok().and_then(|i| i.checked_add(self.offset));
        match j.and_then(|j| usize::try_from(j).ok()).and_then(|j| rows.get(j)) {
            Some(row) => row.get(self.value),
            None => self.default.map_or(denorm_types::Datum::Null, |d| rows[i].get(d)),
        }
    }
}

impl fmt::Display for Numbering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Numbering::RowNumber => "row number",
            Numbering::Rank => "rank",
            Numbering::DenseRank => "dense rank",
            Numbering::Shift(s) if s.offset < 0 => "lag",
            Numbering::Shift(_) => "lead",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinKind {
    Inner,
    /// Left outer: left rows without a match appear once, right columns NULL.
    Left,
    /// Full outer: as `Left`, and right rows without a match appear once,
    /// left columns NULL.
    Full,
}

/// A relational plan. Each node's output is a multiset of rows with a fixed
/// number of columns ([`Plan::arity`]); expressions refer to the columns of
/// their node's input by position.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// All rows of a source table, columns in schema order.
    Get { table: String, arity: usize },
    /// Rows whose predicate is TRUE (not FALSE, not NULL).
    Filter { input: Box<Plan>, predicate: Expr },
    /// One output row per input row: the expressions' values.
    Map { input: Box<Plan>, exprs: Vec<Expr> },
    /// Equi-join: output is the left row's columns then the right row's.
    /// Rows match when every `left_key[i]` equals `right_key[i]` (NULL matches
    /// nothing) and `residual`, evaluated over the concatenated row, is TRUE.
    Join {
        left: Box<Plan>,
        right: Box<Plan>,
        kind: JoinKind,
        left_key: Vec<usize>,
        right_key: Vec<usize>,
        residual: Option<Expr>,
    },
    /// GROUP BY: output is the group key columns then one column per
    /// aggregate. With an empty `group_key` the output is exactly one row, even
    /// over empty input (`SELECT COUNT(*) FROM t` is 0, not no row).
    Reduce { input: Box<Plan>, group_key: Vec<usize>, aggregates: Vec<Aggregate> },
    /// Each distinct row once.
    Distinct { input: Box<Plan> },
    /// Top-k per group: `ROW_NUMBER() OVER (PARTITION BY partition ORDER BY
    /// order) <= limit` (or `RANK()` / `DENSE_RANK()` per `numbering`).
    /// Output: the input rows whose number within their partition (rows
    /// equal on `partition`, NULLs forming one partition) is at most
    /// `limit`, then, with `rank`, that number (an integer, the first row is
    /// number one) as one more column. With `RowNumber`, rows that tie on
    /// `order` are numbered in the order of their encoded bytes; the planner
    /// only accepts such orders when they identify each row, so ties never
    /// reach a view. `Rank` and `DenseRank` give ties one number, so every
    /// row tied at the boundary is kept (possibly more than `limit` rows).
    TopK {
        input: Box<Plan>,
        partition: Vec<usize>,
        order: Vec<SortKey>,
        limit: usize,
        rank: bool,
        numbering: Numbering,
    },
    /// The Z-set sum of its inputs (`UNION ALL`): every input row with its
    /// multiplicity. All inputs have the same arity; there is at least one.
    Union { inputs: Vec<Plan> },
    /// The input's rows with their multiplicities negated: `a − b` of the set
    /// operations is `Union [a, Negate b]`. Only ever read through a
    /// [`Plan::Threshold`] or a sum that stays non-negative.
    Negate { input: Box<Plan> },
    /// Each row with multiplicity `max(0, m)` of its input multiplicity `m`:
    /// `EXCEPT ALL` is `Threshold(Union [a, Negate b])`.
    Threshold { input: Box<Plan> },
    /// Constant rows, each once (a query without FROM reads one row of no
    /// columns).
    Values { rows: Vec<Row>, arity: usize },
}

impl Plan {
    pub fn arity(&self) -> usize {
        match self {
            Plan::Get { arity, .. } => *arity,
            Plan::Filter { input, .. } | Plan::Distinct { input } => input.arity(),
            Plan::Map { exprs, .. } => exprs.len(),
            Plan::Join { left, right, .. } => left.arity() + right.arity(),
            Plan::Reduce { group_key, aggregates, .. } => group_key.len() + aggregates.len(),
            Plan::TopK { input, rank, .. } => input.arity() + usize::from(*rank),
            Plan::Union { inputs } => inputs.first().map_or(0, Plan::arity),
            Plan::Negate { input } | Plan::Threshold { input } => input.arity(),
            Plan::Values { arity, .. } => *arity,
        }
    }

    /// Whether this plan never has more than one row: a GROUP BY of no
    /// columns (exactly one row), or what keeps or joins such relations
    /// only (Map, Filter, Distinct, an inner or left join, a top-1 by row
    /// number without partition, a one-row Values, the engine's clock). An
    /// uncorrelated scalar subquery's result is such a plan.
    pub fn at_most_one_row(&self) -> bool {
        match self {
            Plan::Get { table, .. } => table == denorm_types::clock::TABLE,
            Plan::Reduce { group_key, .. } => group_key.is_empty(),
            Plan::Map { input, .. } | Plan::Filter { input, .. } | Plan::Distinct { input } => input.at_most_one_row(),
            Plan::TopK { partition, limit, numbering: Numbering::RowNumber, .. } => partition.is_empty() && *limit <= 1,
            Plan::Values { rows, .. } => rows.len() <= 1,
            Plan::Join { left, right, kind: JoinKind::Inner | JoinKind::Left, .. } => {
                left.at_most_one_row() && right.at_most_one_row()
            }
            _ => false,
        }
    }

    /// Whether this plan reads the engine's clock (`denorm_types::clock`):
    /// a view refreshed on a schedule calling `now()` and friends.
    pub fn reads_clock(&self) -> bool {
        self.tables().contains(&denorm_types::clock::TABLE)
    }

    /// The source tables this plan reads, in first-use order, without
    /// repeats (the engine's clock among them when it reads it).
    pub fn tables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_tables(&mut out);
        out
    }

    fn collect_tables<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Plan::Get { table, .. } => {
                if !out.contains(&table.as_str()) {
                    out.push(table)
                }
            }
            Plan::Filter { input, .. }
            | Plan::Map { input, .. }
            | Plan::Reduce { input, .. }
            | Plan::Distinct { input }
            | Plan::TopK { input, .. }
            | Plan::Negate { input }
            | Plan::Threshold { input } => input.collect_tables(out),
            Plan::Join { left, right, .. } => {
                left.collect_tables(out);
                right.collect_tables(out);
            }
            Plan::Union { inputs } => inputs.iter().for_each(|i| i.collect_tables(out)),
            Plan::Values { .. } => {}
        }
    }

    fn fmt_indented(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth);
        match self {
            Plan::Get { table, .. } => writeln!(f, "{pad}Get {table}"),
            Plan::Filter { input, predicate } => {
                writeln!(f, "{pad}Filter {predicate}")?;
                input.fmt_indented(f, depth + 1)
            }
            Plan::Map { input, exprs } => {
                let cols: Vec<String> = exprs.iter().map(ToString::to_string).collect();
                writeln!(f, "{pad}Map {}", cols.join(", "))?;
                input.fmt_indented(f, depth + 1)
            }
            Plan::Join { left, right, kind, left_key, right_key, residual } => {
                let kind = match kind {
                    JoinKind::Inner => "Join",
                    JoinKind::Left => "LeftJoin",
                    JoinKind::Full => "FullJoin",
                };
                let on: Vec<String> =
                    left_key.iter().zip(right_key).map(|(l, r)| format!("left.#{l} = right.#{r}")).collect();
                match (on.is_empty(), residual) {
                    (true, None) => write!(f, "{pad}{kind} on TRUE (a product)")?,
                    (true, Some(r)) => write!(f, "{pad}{kind} on {r} (a product)")?,
                    (false, r) => {
                        write!(f, "{pad}{kind} on {}", on.join(" AND "))?;
                        if let Some(r) = r {
                            write!(f, " AND {r}")?;
                        }
                    }
                }
                writeln!(f)?;
                left.fmt_indented(f, depth + 1)?;
                right.fmt_indented(f, depth + 1)
            }
            Plan::Reduce { input, group_key, aggregates } => {
                let keys: Vec<String> = group_key.iter().map(|k| format!("#{k}")).collect();
                let aggs: Vec<String> = aggregates.iter().map(ToString::to_string).collect();
                writeln!(f, "{pad}Reduce group by [{}] compute [{}]", keys.join(", "), aggs.join(", "))?;
                input.fmt_indented(f, depth + 1)
            }
            Plan::Distinct { input } => {
                writeln!(f, "{pad}Distinct")?;
                input.fmt_indented(f, depth + 1)
            }
            Plan::TopK { input, partition, order, limit, rank, numbering } => {
                let keys: Vec<String> = partition.iter().map(|k| format!("#{k}")).collect();
                let order: Vec<String> = order.iter().map(ToString::to_string).collect();
                let by = match numbering {
                    Numbering::RowNumber => String::new(),
                    n => format!(" by {n}"),
                };
                let (limit, rank) = match numbering {
                    Numbering::Shift(s) => {
                        let default = s.default.map_or(String::new(), |d| format!(" else #{d}"));
                        ("all".to_string(), format!(" with #{} at {:+}{default}", s.value, s.offset))
                    }
                    _ if *rank => (limit.to_string(), format!(" with {numbering}")),
                    _ => (limit.to_string(), String::new()),
                };
                writeln!(f, "{pad}TopK {limit}{by} per [{}] order by [{}]{rank}", keys.join(", "), order.join(", "))?;
                input.fmt_indented(f, depth + 1)
            }
            Plan::Union { inputs } => {
                writeln!(f, "{pad}Union")?;
                inputs.iter().try_for_each(|i| i.fmt_indented(f, depth + 1))
            }
            Plan::Negate { input } => {
                writeln!(f, "{pad}Negate")?;
                input.fmt_indented(f, depth + 1)
            }
            Plan::Threshold { input } => {
                writeln!(f, "{pad}Threshold")?;
                input.fmt_indented(f, depth + 1)
            }
            Plan::Values { rows, .. } => {
                let rows: Vec<String> = rows.iter().map(|r| format!("{:?}", r.unpack())).collect();
                writeln!(f, "{pad}Values {}", rows.join(", "))
            }
        }
    }
}

/// An indented operator tree, one node per line.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_indented(f, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_row_holds_for_global_aggregates_and_what_keeps_them() {
        let get = || Box::new(Plan::Get { table: "t".into(), arity: 2 });
        let global = || Box::new(Plan::Reduce { input: get(), group_key: vec![], aggregates: vec![] });
        let grouped = Plan::Reduce { input: get(), group_key: vec![0], aggregates: vec![] };
        let filtered = Plan::Filter { input: global(), predicate: Expr::Column(0) };
        let join =
            |left, right, kind| Plan::Join { left, right, kind, left_key: vec![], right_key: vec![], residual: None };
        let top = |limit, numbering| Plan::TopK {
            input: get(),
            partition: vec![],
            order: vec![],
            limit,
            rank: false,
            numbering,
        };
        for (plan, want) in [
            (*global(), true),
            (filtered, true),
            (Plan::Map { input: global(), exprs: vec![Expr::Column(0)] }, true),
            (join(global(), global(), JoinKind::Left), true),
            (join(global(), global(), JoinKind::Full), false),
            (top(1, Numbering::RowNumber), true),
            (top(1, Numbering::Rank), false),
            (top(2, Numbering::RowNumber), false),
            (Plan::Values { rows: vec![Row::empty()], arity: 0 }, true),
            (grouped, false),
            (*get(), false),
        ] {
            assert_eq!(plan.at_most_one_row(), want, "{plan}");
        }
    }
}
