//! Which output columns identify a row: the unique column sets a plan
//! provably has, and the view key chosen from them.
//!
//! ```text
//!  Get t            t's primary key; its UNIQUE keys whose columns are NOT NULL
//!  Filter           the input's sets
//!  Map              the input's sets whose columns are all projected bare
//!  Join             left sets, if right_key covers a unique set of the right input
//!                   (each left row matches at most one right row); symmetric for
//!                   the right side of an inner join; a left set ∪ a right set always
//!  Reduce           the group key (one row per group; the empty set for a global
//!                   aggregate, which has exactly one row)
//!  Distinct         the input's sets and all columns
//! ```
//!
//! A UNIQUE key with nullable columns proves nothing on its own (several NULLs
//! are allowed) but still bounds join fan-out, since NULL never equals.

use denorm_expr::{Expr, JoinKind, Plan};
use denorm_types::Catalog;

/// Combinations of left and right sets kept at a join, at most.
const MAX_COMBINED: usize = 16;

/// Column sets (sorted positions) of `plan`'s output on which no two rows agree.
pub(crate) fn unique_sets(plan: &Plan, catalog: &Catalog) -> Vec<Vec<usize>> {
    let mut sets = match plan {
        Plan::Get { table, .. } => table_keys(catalog, table, true),
        Plan::Filter { input, .. } => unique_sets(input, catalog),
        Plan::Map { input, exprs } => unique_sets(input, catalog).iter().filter_map(|s| project(s, exprs)).collect(),
        Plan::Join { left, right, kind, left_key, right_key, .. } => {
            join_sets(left, right, *kind, left_key, right_key, catalog)
        }
        Plan::Reduce { group_key, .. } => vec![(0..group_key.len()).collect()],
        Plan::Distinct { input } => {
            let mut sets = unique_sets(input, catalog);
            sets.push((0..input.arity()).collect());
            sets
        }
    };
    for s in &mut sets {
        s.sort_unstable();
        s.dedup();
    }
    sets.sort();
    sets.dedup();
    sets
}

/// A table's key sets; with `proving`, UNIQUE keys over nullable columns are left out.
fn table_keys(catalog: &Catalog, table: &str, proving: bool) -> Vec<Vec<usize>> {
    let Some(schema) = catalog.get(table) else { return vec![] };
    let not_null = |set: &Vec<usize>| set.iter().all(|&c| schema.columns.get(c).is_some_and(|col| !col.nullable));
    let mut sets: Vec<Vec<usize>> = Vec::new();
    if !schema.primary_key.is_empty() {
        sets.push(schema.primary_key.clone());
    }
    sets.extend(schema.unique_keys.iter().filter(|k| !k.is_empty() && (!proving || not_null(k))).cloned());
    sets
}

/// Sets bounding how many rows of `plan` share a value of `key` at one
/// (NULL-tolerant: equality never matches NULL).
fn match_sets(plan: &Plan, catalog: &Catalog) -> Vec<Vec<usize>> {
    match plan {
        Plan::Get { table, .. } => table_keys(catalog, table, false),
        _ => unique_sets(plan, catalog),
    }
}

fn covers(key: &[usize], sets: &[Vec<usize>]) -> bool {
    sets.iter().any(|s| s.iter().all(|c| key.contains(c)))
}

fn join_sets(
    left: &Plan,
    right: &Plan,
    kind: JoinKind,
    left_key: &[usize],
    right_key: &[usize],
    catalog: &Catalog,
) -> Vec<Vec<usize>> {
    let shift = left.arity();
    let left_sets = unique_sets(left, catalog);
    let right_sets: Vec<Vec<usize>> =
        unique_sets(right, catalog).into_iter().map(|s| s.into_iter().map(|c| c + shift).collect()).collect();
    let mut out = Vec::new();
    if covers(right_key, &match_sets(right, catalog)) {
        out.extend(left_sets.iter().cloned());
    }
    // Unmatched left rows of a LEFT JOIN all carry NULL right columns, so the
    // right side's sets identify rows only in an inner join.
    if kind == JoinKind::Inner && covers(left_key, &match_sets(left, catalog)) {
        out.extend(right_sets.iter().cloned());
    }
    for l in &left_sets {
        for r in &right_sets {
            if out.len() >= MAX_COMBINED {
                return out;
            }
            out.push(l.iter().chain(r).copied().collect());
        }
    }
    out
}

/// A set over a Map's input, renumbered to the Map's output if each of its
/// columns is projected as a bare column.
fn project(set: &[usize], exprs: &[Expr]) -> Option<Vec<usize>> {
    set.iter().map(|&c| exprs.iter().position(|e| *e == Expr::Column(c))).collect()
}

/// Whether `columns` (output positions) contain some unique set.
pub(crate) fn contains_unique_set(columns: &[usize], sets: &[Vec<usize>]) -> bool {
    covers(columns, sets)
}

#[cfg(test)]
mod tests {
    use denorm_types::{ColumnSchema, ScalarType, TableSchema};

    use super::*;

    fn table(name: &str, columns: &[(&str, bool)], pk: Vec<usize>, unique: Vec<Vec<usize>>) -> TableSchema {
        TableSchema {
            name: name.into(),
            columns: columns
                .iter()
                .map(|(n, nullable)| ColumnSchema { name: (*n).into(), ty: ScalarType::Int, nullable: *nullable })
                .collect(),
            primary_key: pk,
            unique_keys: unique,
        }
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.add(table("users", &[("id", false), ("email", true)], vec![0], vec![vec![1]]));
        c.add(table("posts", &[("id", false), ("author_id", false)], vec![0], vec![]));
        c
    }

    fn get(t: &str) -> Plan {
        Plan::Get { table: t.into(), arity: 2 }
    }

    #[test]
    fn nullable_unique_keys_do_not_prove() {
        assert_eq!(unique_sets(&get("users"), &catalog()), vec![vec![0]]);
    }

    #[test]
    fn many_to_one_join_keeps_left_keys() {
        let join = Plan::Join {
            left: Box::new(get("posts")),
            right: Box::new(get("users")),
            kind: JoinKind::Inner,
            left_key: vec![1],
            right_key: vec![0],
            residual: None,
        };
        let sets = unique_sets(&join, &catalog());
        assert!(sets.contains(&vec![0]), "{sets:?}");
        assert!(!sets.contains(&vec![2]), "{sets:?}");
        // Joining on a nullable UNIQUE column still bounds the fan-out.
        let Plan::Join { left, right, kind, left_key, residual, .. } = join else { unreachable!() };
        let by_email = Plan::Join { left, right, kind, left_key, right_key: vec![1], residual };
        assert!(unique_sets(&by_email, &catalog()).contains(&vec![0]));
    }

    #[test]
    fn map_keeps_bare_projections_only() {
        let map = Plan::Map { input: Box::new(get("posts")), exprs: vec![Expr::Column(1), Expr::Column(0)] };
        assert_eq!(unique_sets(&map, &catalog()), vec![vec![1]]);
        let hidden = Plan::Map { input: Box::new(get("posts")), exprs: vec![Expr::Column(1)] };
        assert!(unique_sets(&hidden, &catalog()).is_empty());
    }

    #[test]
    fn global_reduce_has_the_empty_key() {
        let reduce = Plan::Reduce { input: Box::new(get("posts")), group_key: vec![], aggregates: vec![] };
        assert_eq!(unique_sets(&reduce, &catalog()), vec![Vec::<usize>::new()]);
        assert!(contains_unique_set(&[], &unique_sets(&reduce, &catalog())));
    }
}
