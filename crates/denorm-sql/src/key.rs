//! Which output columns identify a row: the unique column sets a plan
//! provably has, and the view key chosen from them.
//!
//! ```text
//!  Get t            t's primary key; its UNIQUE keys whose columns are NOT NULL
//!  Filter           the input's sets
//!  Map              the input's sets whose columns are all projected bare
//!  Join             left sets, if right_key covers a unique set of the right input (not
//!                   FULL: it pads left columns) — each left row matches at most one right row; symmetric for
//!                   the right side of an inner join; a left set ∪ a right set always
//!  Reduce           the group key (one row per group; the empty set for a global
//!                   aggregate, which has exactly one row)
//!  Distinct         the input's sets and all columns
//!  TopK             the input's sets; the partition columns with the row number;
//!                   the partition columns when the limit is 1
//!  Union            none (a sum may repeat rows of its inputs)
//!  Negate/Threshold the input's sets (a subset of its rows, no more copies)
//!  Values           the empty set for at most one row; all columns if rows differ
//! ```
//!
//! Functional dependencies ride along (a key determines its table's columns,
//! an equi-join key its partner), so `GROUP BY p.id, p.name` is known to have
//! one row per `p.id`, and a set is unique when its closure contains a unique
//! set.
//!
//! A UNIQUE key with nullable columns proves nothing on its own (several NULLs
//! are allowed) but still bounds join fan-out, since NULL never equals.

use denorm_expr::{Expr, JoinKind, Plan};
use denorm_types::Catalog;

/// Combinations of left and right sets kept at a join, at most.
const MAX_COMBINED: usize = 16;
/// Functional dependencies tracked per node, at most.
const MAX_DEPENDENCIES: usize = 64;

/// A functional dependency: rows that agree on `from` agree on `to`.
type Dependency = (Vec<usize>, Vec<usize>);

/// What the planner knows about a plan's output rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Properties {
    /// Column sets (sorted positions) on which no two rows agree.
    pub unique: Vec<Vec<usize>>,
    /// Functional dependencies: a table's key determines its other columns,
    /// a join key determines its partner, a group key its group's columns.
    pub dependencies: Vec<Dependency>,
}

impl Properties {
    /// The columns that `columns` determine.
    pub fn closure(&self, columns: &[usize]) -> Vec<usize> {
        let mut out: Vec<usize> = columns.to_vec();
        loop {
            let before = out.len();
            for (from, to) in &self.dependencies {
                if from.iter().all(|c| out.contains(c)) {
                    out.extend(to.iter().filter(|c| !columns.contains(c)));
                    out.sort_unstable();
                    out.dedup();
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// Whether no two rows agree on `columns`: they determine a unique set.
    pub fn is_unique(&self, columns: &[usize]) -> bool {
        let closure = self.closure(columns);
        self.unique.iter().any(|s| s.iter().all(|c| closure.contains(c)))
    }

    fn normalize(mut self) -> Self {
        for s in &mut self.unique {
            s.sort_unstable();
            s.dedup();
        }
        self.unique.sort();
        self.unique.dedup();
        self.dependencies.truncate(MAX_DEPENDENCIES);
        self
    }
}

/// The unique sets and dependencies of `plan`'s output.
pub(crate) fn properties(plan: &Plan, catalog: &Catalog) -> Properties {
    let props = match plan {
        Plan::Get { table, arity } => {
            let all: Vec<usize> = (0..*arity).collect();
            let keys = table_keys(catalog, table, true);
            // Only NOT NULL keys determine the other columns: rows with a NULL
            // in a UNIQUE key may differ everywhere else, yet agree on the key
            // as GROUP BY, DISTINCT and ORDER BY compare it.
            let dependencies = keys.iter().map(|k| (k.clone(), all.clone())).collect();
            Properties { unique: keys, dependencies }
        }
        Plan::Filter { input, .. } => properties(input, catalog),
        Plan::Map { input, exprs } => map_properties(&properties(input, catalog), exprs),
        Plan::Join { left, right, kind, left_key, right_key, .. } => {
            join_properties(left, right, *kind, left_key, right_key, catalog)
        }
        Plan::Reduce { input, group_key, aggregates } => {
            reduce_properties(&properties(input, catalog), group_key, aggregates.len())
        }
        Plan::Distinct { input } => {
            let mut props = properties(input, catalog);
            props.unique.push((0..input.arity()).collect());
            props
        }
        Plan::TopK { input, partition, rank, limit, numbering, .. } => {
            // A subset of the input's rows; a row number is unique within
            // its partition (a rank is not: ties share it).
            let mut props = properties(input, catalog);
            let numbered = *numbering == denorm_expr::Numbering::RowNumber;
            if *rank && numbered {
                props.unique.push(partition.iter().copied().chain([input.arity()]).collect());
            }
            // The first row of each partition only.
            if *limit == 1 && numbered {
                props.unique.push(partition.clone());
            }
            props
        }
        Plan::Union { .. } => Properties::default(),
        Plan::Negate { input } | Plan::Threshold { input } => properties(input, catalog),
        Plan::Values { rows, arity } => {
            let mut sorted = rows.clone();
            sorted.sort();
            sorted.dedup();
            let unique = match rows.len() {
                0 | 1 => vec![vec![]],
                n if sorted.len() == n => vec![(0..*arity).collect()],
                _ => vec![],
            };
            Properties { unique, dependencies: Vec::new() }
        }
    };
    props.normalize()
}

/// A table's key sets; with `proving`, UNIQUE keys over nullable columns are left out.
fn table_keys(catalog: &Catalog, table: &str, proving: bool) -> Vec<Vec<usize>> {
    if table == denorm_types::clock::TABLE {
        // One row.
        return vec![vec![]];
    }
    let Some(schema) = catalog.get(table) else { return vec![] };
    let not_null = |set: &Vec<usize>| set.iter().all(|&c| schema.columns.get(c).is_some_and(|col| !col.nullable));
    let mut sets: Vec<Vec<usize>> = Vec::new();
    if !schema.primary_key.is_empty() {
        sets.push(schema.primary_key.clone());
    }
    sets.extend(schema.unique_keys.iter().filter(|k| !k.is_empty() && (!proving || not_null(k))).cloned());
    sets
}

/// Sets bounding at one how many rows of `plan` share a value of the set
/// (NULL-tolerant: an equi-join never matches NULL), given its properties
/// (computed once: a join tree is visited once per node, not twice).
fn match_sets(plan: &Plan, props: &Properties, catalog: &Catalog) -> Vec<Vec<usize>> {
    match plan {
        Plan::Get { table, .. } => table_keys(catalog, table, false),
        _ => props.unique.clone(),
    }
}

fn covers(key: &[usize], sets: &[Vec<usize>]) -> bool {
    sets.iter().any(|s| s.iter().all(|c| key.contains(c)))
}

fn shift(set: &[usize], by: usize) -> Vec<usize> {
    set.iter().map(|c| c + by).collect()
}

fn join_properties(
    left: &Plan,
    right: &Plan,
    kind: JoinKind,
    left_key: &[usize],
    right_key: &[usize],
    catalog: &Catalog,
) -> Properties {
    let by = left.arity();
    let (l, r) = (properties(left, catalog), properties(right, catalog));
    let right_unique: Vec<Vec<usize>> = r.unique.iter().map(|s| shift(s, by)).collect();
    let mut unique = Vec::new();
    // A FULL JOIN's right rows without a match all carry NULL left columns.
    if kind != JoinKind::Full && covers(right_key, &match_sets(right, &r, catalog)) {
        unique.extend(l.unique.iter().cloned());
    }
    // Unmatched left rows of a LEFT JOIN all carry NULL right columns, so the
    // right side's sets identify rows only in an inner join.
    if kind == JoinKind::Inner && covers(left_key, &match_sets(left, &l, catalog)) {
        unique.extend(right_unique.iter().cloned());
    }
    for a in &l.unique {
        for b in &right_unique {
            if unique.len() < MAX_COMBINED {
                unique.push(a.iter().chain(b).copied().collect());
            }
        }
    }
    let mut dependencies = l.dependencies;
    dependencies.extend(r.dependencies.iter().map(|(f, t)| (shift(f, by), shift(t, by))));
    let keyed = if kind == JoinKind::Full { &[][..] } else { left_key };
    for (&lk, &rk) in keyed.iter().zip(right_key) {
        // Equal left keys find the same right rows (or none, in a LEFT JOIN).
        dependencies.push((vec![lk], vec![rk + by]));
        if kind == JoinKind::Inner {
            dependencies.push((vec![rk + by], vec![lk]));
        }
    }
    Properties { unique, dependencies }
}

/// Properties carried through a projection: input columns projected bare
/// keep their meaning at their (first) output position.
fn map_properties(input: &Properties, exprs: &[Expr]) -> Properties {
    let output_of = |c: usize| exprs.iter().position(|e| *e == Expr::Column(c));
    let bare: Vec<usize> =
        (0..exprs.len()).filter_map(|j| if let Expr::Column(c) = exprs[j] { Some(c) } else { None }).collect();
    let bare_closure = input.closure(&bare);
    let mut unique: Vec<Vec<usize>> = Vec::new();
    for s in &input.unique {
        match s.iter().map(|&c| output_of(c)).collect::<Option<Vec<usize>>>() {
            Some(mapped) => unique.push(mapped),
            // Hidden key columns determined by projected ones: all of those
            // projected columns together are unique.
            None if s.iter().all(|c| bare_closure.contains(c)) => {
                unique.push(bare.iter().filter_map(|&c| output_of(c)).collect())
            }
            None => {}
        }
    }
    let mut dependencies = Vec::new();
    for (from, to) in &input.dependencies {
        let Some(mapped) = from.iter().map(|&c| output_of(c)).collect::<Option<Vec<usize>>>() else { continue };
        let known: Vec<usize> = from.iter().chain(to).copied().collect();
        let determined: Vec<usize> =
            (0..exprs.len()).filter(|&j| exprs[j].columns().iter().all(|c| known.contains(c))).collect();
        dependencies.push((mapped, determined));
    }
    Properties { unique, dependencies }
}

/// One row per group: the group key is unique and determines the
/// aggregates; input dependencies among group columns survive.
fn reduce_properties(input: &Properties, group_key: &[usize], aggregates: usize) -> Properties {
    let g = group_key.len();
    let all: Vec<usize> = (0..g + aggregates).collect();
    let output_of = |c: usize| group_key.iter().position(|&k| k == c);
    let mut dependencies = vec![((0..g).collect(), all)];
    for (from, to) in &input.dependencies {
        if let Some(mapped) = from.iter().map(|&c| output_of(c)).collect::<Option<Vec<usize>>>() {
            dependencies.push((mapped, to.iter().filter_map(|&c| output_of(c)).collect()));
        }
    }
    Properties { unique: vec![(0..g).collect()], dependencies }
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
        assert_eq!(properties(&get("users"), &catalog()).unique, vec![vec![0]]);
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
        let sets = properties(&join, &catalog()).unique;
        assert!(sets.contains(&vec![0]), "{sets:?}");
        assert!(!sets.contains(&vec![2]), "{sets:?}");
        // Joining on a nullable UNIQUE column still bounds the fan-out.
        let Plan::Join { left, right, kind, left_key, residual, .. } = join else { unreachable!() };
        let by_email = Plan::Join { left, right, kind, left_key, right_key: vec![1], residual };
        assert!(properties(&by_email, &catalog()).unique.contains(&vec![0]));
    }

    #[test]
    fn map_keeps_bare_projections_only() {
        let map = Plan::Map { input: Box::new(get("posts")), exprs: vec![Expr::Column(1), Expr::Column(0)] };
        assert_eq!(properties(&map, &catalog()).unique, vec![vec![1]]);
        let hidden = Plan::Map { input: Box::new(get("posts")), exprs: vec![Expr::Column(1)] };
        assert!(properties(&hidden, &catalog()).unique.is_empty());
    }

    #[test]
    fn group_key_with_dependent_columns_is_keyed_by_the_determinant() {
        // GROUP BY posts.id, posts.author_id: one row per posts.id.
        let reduce = Plan::Reduce { input: Box::new(get("posts")), group_key: vec![0, 1], aggregates: vec![] };
        let props = properties(&reduce, &catalog());
        assert!(props.is_unique(&[0]));
        assert!(!props.is_unique(&[1]));
    }

    #[test]
    fn global_reduce_has_the_empty_key() {
        let reduce = Plan::Reduce { input: Box::new(get("posts")), group_key: vec![], aggregates: vec![] };
        assert_eq!(properties(&reduce, &catalog()).unique, vec![Vec::<usize>::new()]);
        assert!(properties(&reduce, &catalog()).is_unique(&[]));
    }
}
