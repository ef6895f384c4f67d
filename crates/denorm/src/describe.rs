//! What `denorm check` prints about a planned view: its key, columns, the
//! source changes that trigger it, how a change propagates, and the operator
//! graph. This is the seed's rule made mechanical: "write down what triggers
//! the update, how it propagates, and the acceptable staleness".
//!
//! Everything here is a pure function of a [`ViewDef`] and the [`Catalog`].

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use denorm_expr::{AggregateFunc, Expr, JoinKind, Numbering, Plan};
use denorm_sql::{KeyOrigin, OnStale, Refresh, ViewDef};
use denorm_types::Catalog;

/// The full multi-line report of one view, ending in a newline.
pub fn render_view(view: &ViewDef, file: &Path, catalog: &Catalog) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "view {} ({}:{})", view.name, file.display(), view.location);
    let _ = writeln!(out, "  key: {}", describe_key(view));
    out.push_str("  columns:\n");
    let width = view.columns.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    for (i, c) in view.columns.iter().enumerate() {
        let nullability = if c.nullable { "null" } else { "not null" };
        let key = if view.key.columns.contains(&i) { "  key" } else { "" };
        let collation = match c.collation {
            Some(collation) if collation != denorm_types::Collation::Binary => format!(" collate {collation}"),
            _ => String::new(),
        };
        let line = format!("    {:width$}  {:8} {nullability}{collation}{key}", c.name, c.ty.to_string());
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !view.order.is_empty() {
        let _ = writeln!(out, "  read order: {} (reads without ?order=)", describe_order(view));
    }
    let staleness = view.max_staleness.map_or_else(|| "none".to_string(), format_duration);
    let _ = writeln!(out, "  max_staleness: {staleness}");
    if view.on_stale == OnStale::Fallback {
        out.push_str("  on_stale: fallback (beyond max_staleness, key lookups are answered by the source)\n");
    }
    let refresh = match view.refresh {
        Refresh::OnChange => "on every change".to_string(),
        Refresh::Every(every) => {
            format!("every {} (changes are gathered and applied together)", format_duration(every))
        }
    };
    let _ = writeln!(out, "  refresh: {refresh}");
    if view.plan.reads_clock() {
        out.push_str("  clock: reads the current time, taken once per refresh (the same instant for the whole view)\n");
    }
    if view.dependencies.is_empty() {
        out.push_str("  triggers: none\n");
    } else {
        out.push_str("  triggers:\n");
        for d in &view.dependencies {
            let _ = writeln!(out, "    {}: {}", d.table, d.columns.join(", "));
        }
    }
    let _ = writeln!(out, "  propagates: {}", propagation(&view.plan, catalog));
    if has_unordered_concat(&view.plan) {
        out.push_str(
            "  note: group_concat/string_agg without ORDER BY joins the values in the order of their text; \
             the source's order follows its query plan (indexes, statistics), so it may differ: \
             write the order inside the call, e.g. group_concat(x, ',' ORDER BY id)\n",
        );
    }
    out.push_str("  plan:\n");
    for line in view.plan.to_string().lines() {
        let _ = writeln!(out, "    {line}");
    }
    out
}

/// Whether the plan concatenates text without an ORDER BY inside the call.
fn has_unordered_concat(plan: &Plan) -> bool {
    match plan {
        Plan::Reduce { input, aggregates, .. } => {
            aggregates.iter().any(|a| matches!(a.func, AggregateFunc::GroupConcat(spec) if spec.order.is_empty()))
                || has_unordered_concat(input)
        }
        Plan::Filter { input, .. }
        | Plan::Map { input, .. }
        | Plan::Distinct { input }
        | Plan::TopK { input, .. }
        | Plan::Negate { input }
        | Plan::Threshold { input } => has_unordered_concat(input),
        Plan::Join { left, right, .. } => has_unordered_concat(left) || has_unordered_concat(right),
        Plan::Union { inputs } => inputs.iter().any(has_unordered_concat),
        _ => false,
    }
}

fn describe_key(view: &ViewDef) -> String {
    let names: Vec<&str> =
        view.key.columns.iter().map(|&i| view.columns.get(i).map_or("?", |c| c.name.as_str())).collect();
    let origin = match view.key.origin {
        KeyOrigin::Declared => "from WITH (key = …)",
        KeyOrigin::GroupBy => "from GROUP BY",
        KeyOrigin::PrimaryKey => "from the source primary key",
        KeyOrigin::AllColumns if view.key.proven_unique => "all columns: each row appears once",
        KeyOrigin::AllColumns => "all columns: no key could be derived, rows form a multiset",
    };
    let uniqueness = if view.key.proven_unique { "proven unique" } else { "uniqueness checked at runtime" };
    format!("({}) {origin}; {uniqueness}", names.join(", "))
}

/// The view's ORDER BY: `total DESC, id` (NULLS written when not the
/// direction's default of PostgreSQL: last ascending, first descending).
fn describe_order(view: &ViewDef) -> String {
    let terms: Vec<String> = view
        .order
        .iter()
        .map(|k| {
            let name = view.columns.get(k.column).map_or("?", |c| c.name.as_str());
            let direction = if k.descending { " DESC" } else { "" };
            let nulls = match (k.nulls_first, k.descending) {
                (true, false) => " NULLS FIRST",
                (false, true) => " NULLS LAST",
                _ => "",
            };
            let collation = k.collation.map_or_else(String::new, |c| format!(" COLLATE {c}"));
            format!("{name}{collation}{direction}{nulls}")
        })
        .collect();
    terms.join(", ")
}

/// `1s`, `250ms`, `5m`, `1h`: the largest unit that divides the duration.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return if d.subsec_nanos() % 1_000_000 == 0 { format!("{}ms", d.as_millis()) } else { format!("{d:?}") };
    }
    let s = d.as_secs();
    match s {
        0 => "0s".to_string(),
        _ if s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s % 3_600 == 0 => format!("{}h", s / 3_600),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// One line on how a source change reaches the view, derived from the plan
/// bottom-up (the direction data flows).
pub fn propagation(plan: &Plan, catalog: &Catalog) -> String {
    let mut clauses = Vec::new();
    collect_clauses(plan, catalog, &mut clauses);
    if clauses.is_empty() {
        let tables = plan.tables().join(", ");
        return format!("each change to {tables} updates at most one view row, in O(1)");
    }
    clauses.join("; then ")
}

fn collect_clauses(plan: &Plan, catalog: &Catalog, out: &mut Vec<String>) {
    match plan {
        Plan::Get { .. } => {}
        Plan::Filter { input, .. } | Plan::Map { input, .. } => collect_clauses(input, catalog, out),
        Plan::Distinct { input } => {
            collect_clauses(input, catalog, out);
            out.push("keeps a count per distinct row; a row appears or disappears when its count crosses zero".into());
        }
        Plan::Join { left, right, kind, left_key, right_key, residual } => {
            collect_clauses(left, catalog, out);
            collect_clauses(right, catalog, out);
            if left_key.is_empty() {
                out.push(describe_product(left, right, *kind, residual.as_ref()));
            } else {
                out.push(describe_join(left, right, *kind, left_key, right_key, catalog));
            }
        }
        Plan::Reduce { input, group_key, aggregates } => {
            collect_clauses(input, catalog, out);
            let origins = column_origins(input, catalog);
            let funcs: Vec<AggregateFunc> = aggregates.iter().map(|a| a.func).collect();
            out.push(describe_reduce(group_key, &origins, &funcs));
        }
        Plan::TopK { input, numbering: Numbering::Shift(shift), partition, .. } => {
            collect_clauses(input, catalog, out);
            let each = if partition.is_empty() { "all rows" } else { "each partition's rows" };
            let (function, n) = (if shift.offset < 0 { "LAG" } else { "LEAD" }, shift.offset.unsigned_abs());
            out.push(format!(
                "keeps {each} in ORDER BY order (O(log n) per change) for {function} by {n}: a change re-emits the rows whose {n} neighbours it touches"
            ));
        }
        Plan::TopK { input, limit, numbering, partition, .. } if *numbering != Numbering::RowNumber => {
            collect_clauses(input, catalog, out);
            let each = if partition.is_empty() { "all rows" } else { "each partition's rows" };
            out.push(format!(
                "keeps {each} in ORDER BY order (O(log n) per change) and emits changes to the rows of {numbering} at most {limit}, every tie at the boundary kept (a change above the boundary re-emits the kept rows from it on)"
            ));
        }
        Plan::TopK { input, limit, partition, .. } if partition.is_empty() => {
            collect_clauses(input, catalog, out);
            out.push(format!(
                "keeps all rows in ORDER BY order (O(log n) per change) and emits changes to the first {limit}"
            ));
        }
        Plan::TopK { input, limit, .. } => {
            collect_clauses(input, catalog, out);
            out.push(format!(
                "keeps each partition's rows in order (O(log n) per change) and emits changes to its first {limit}"
            ));
        }
        Plan::Union { inputs } => {
            inputs.iter().for_each(|i| collect_clauses(i, catalog, out));
            out.push(format!("sums the changes of its {} inputs (no state)", inputs.len()));
        }
        Plan::Negate { input } => collect_clauses(input, catalog, out),
        Plan::Threshold { input } => {
            collect_clauses(input, catalog, out);
            out.push("keeps a signed count per distinct row and emits its positive part (EXCEPT/INTERSECT)".into());
        }
        Plan::Values { rows, .. } => {
            out.push(format!("{} constant row(s), emitted once at snapshot; never changes", rows.len()))
        }
    }
}

fn describe_join(
    left: &Plan,
    right: &Plan,
    kind: JoinKind,
    left_key: &[usize],
    right_key: &[usize],
    catalog: &Catalog,
) -> String {
    let left_side = JoinSide::new(left, left_key, catalog);
    let right_side = JoinSide::new(right, right_key, catalog);
    // Lead with the side whose key is unique in its table (the "one" of a
    // one-to-many join): a change there fans out to many rows of the other.
    let (one, many) =
        if !right_side.unique && left_side.unique { (&left_side, &right_side) } else { (&right_side, &left_side) };
    let condition: Vec<String> = one.key_names.iter().zip(&many.key_names).map(|(a, b)| format!("{a} = {b}")).collect();
    let lookup = if one.unique { format!("its {} row", one.tables) } else { format!("matching {} rows", one.tables) };
    let mut text = format!(
        "a change to {} re-joins matching rows of {} by {} (and a change to {} looks up {lookup})",
        one.tables,
        many.tables,
        condition.join(" AND "),
        many.tables,
    );
    text.push_str(&outer_rows(kind, &left_side.tables, &right_side.tables));
    text
}

/// What an outer join adds: the rows kept without a match.
fn outer_rows(kind: JoinKind, left: &str, right: &str) -> String {
    match kind {
        JoinKind::Inner => String::new(),
        JoinKind::Left => format!(", keeping {left} rows without a match with NULLs"),
        JoinKind::Full => format!(", keeping {left} rows and {right} rows without a match with NULLs"),
    }
}

/// A join without an equality: every pair of rows is a candidate.
fn describe_product(left: &Plan, right: &Plan, kind: JoinKind, residual: Option<&Expr>) -> String {
    let (l, r) = (left.tables().join(", "), right.tables().join(", "));
    let scalar = match kind {
        JoinKind::Left | JoinKind::Inner if right.at_most_one_row() => Some((&l, &r)),
        JoinKind::Inner if left.at_most_one_row() => Some((&r, &l)),
        _ => None,
    };
    if let Some((outer, scalar)) = scalar {
        return describe_scalar_product(outer, scalar);
    }
    let condition = match residual {
        Some(_) => "pairs that pass the join condition (a residual, evaluated per pair)",
        None => "every pair",
    };
    format!(
        "joins every row of {l} with every row of {r} (a product: no equality to look rows up by): \
         a change to either side is paired with all rows of the other, O(rows of the other side) per change, \
         and emits {condition}{} — cost warning: add an equality between the tables if one exists",
        outer_rows(kind, &l, &r)
    )
}

/// A product with a relation of at most one row (an uncorrelated scalar
/// subquery): the core keeps a comparison with it ordered
/// (denorm-core's `ScalarFilter`).
fn describe_scalar_product(outer: &str, scalar: &str) -> String {
    format!(
        "pairs every row of {outer} with the one row computed from {scalar} (an uncorrelated scalar subquery): \
         when a comparison with it filters the rows and the view does not show it, {outer} rows are kept ordered \
         by the compared value, so a change to {outer} costs O(log n) and a change of the subquery's value \
         re-emits only the rows between the old and the new value; otherwise a change of that value re-pairs \
         every row of {outer}"
    )
}

/// One input of a join, described by where its key columns come from.
struct JoinSide {
    /// The table(s) the key columns come from, or all the side reads.
    tables: String,
    /// `table.column` (or `#n` when computed) per key column.
    key_names: Vec<String>,
    /// Whether the key columns cover a primary or unique key of one table.
    unique: bool,
}

impl JoinSide {
    fn new(plan: &Plan, key: &[usize], catalog: &Catalog) -> Self {
        let origins = column_origins(plan, catalog);
        let key_origins: Vec<Option<&ColumnOrigin>> =
            key.iter().map(|&k| origins.get(k).and_then(Option::as_ref)).collect();
        let key_names = key
            .iter()
            .zip(&key_origins)
            .map(|(k, o)| o.map_or_else(|| format!("#{k}"), |o| format!("{}.{}", o.table, o.column)))
            .collect();
        let mut tables: Vec<&str> = key_origins.iter().flatten().map(|o| o.table.as_str()).collect();
        tables.dedup();
        let single_table = tables.len() == 1 && key_origins.iter().all(Option::is_some);
        let unique = single_table && covers_unique_key(tables[0], &key_origins, catalog);
        let tables = if single_table { tables[0].to_string() } else { plan.tables().join(", ") };
        JoinSide { tables, key_names, unique }
    }
}

fn covers_unique_key(table: &str, key: &[Option<&ColumnOrigin>], catalog: &Catalog) -> bool {
    let Some(schema) = catalog.get(table) else {
        return false;
    };
    let columns: Vec<usize> = key.iter().flatten().filter_map(|o| schema.column_index(&o.column)).collect();
    let covers = |k: &Vec<usize>| !k.is_empty() && k.iter().all(|c| columns.contains(c));
    covers(&schema.primary_key) || schema.unique_keys.iter().any(covers)
}

fn describe_reduce(group_key: &[usize], origins: &[Option<ColumnOrigin>], funcs: &[AggregateFunc]) -> String {
    let groups: Vec<String> = group_key
        .iter()
        .map(|&k| origins.get(k).and_then(Option::as_ref).map_or_else(|| format!("#{k}"), ToString::to_string))
        .collect();
    let (subject, prefix) = if groups.is_empty() {
        ("the single total row's", "aggregates everything: updates".to_string())
    } else {
        ("the group's", format!("groups by {}: updates", groups.join(", ")))
    };
    let pick = |wanted: &[AggregateFunc]| -> Vec<&'static str> {
        let mut names: Vec<&'static str> =
            wanted.iter().filter(|w| funcs.contains(w)).map(|w| aggregate_label(*w)).collect();
        names.dedup();
        names
    };
    let constant = pick(&[AggregateFunc::Count, AggregateFunc::Sum, AggregateFunc::Avg]);
    let mut ordered = pick(&[
        AggregateFunc::Min,
        AggregateFunc::Max,
        AggregateFunc::CountDistinct,
        AggregateFunc::SumDistinct,
        AggregateFunc::AvgDistinct,
    ]);
    if funcs.iter().any(|f| matches!(f, AggregateFunc::JsonArray(_) | AggregateFunc::JsonObject { .. })) {
        ordered.push("JSON");
    }
    if funcs.iter().any(|f| matches!(f, AggregateFunc::GroupConcat(_))) {
        ordered.push("GROUP_CONCAT");
    }
    match (constant.is_empty(), ordered.is_empty()) {
        (true, true) => format!("{prefix} a row count per group; a group appears or disappears when it crosses zero"),
        (false, true) => format!("{prefix} {subject} {} accumulators in O(1)", constant.join("/")),
        (true, false) => format!("{prefix} {subject} {} ordered multisets in O(log n)", ordered.join("/")),
        (false, false) => format!(
            "{prefix} {subject} {} accumulators in O(1) and {} ordered multisets in O(log n)",
            constant.join("/"),
            ordered.join("/")
        ),
    }
}

fn aggregate_label(func: AggregateFunc) -> &'static str {
    match func {
        AggregateFunc::Count => "COUNT",
        AggregateFunc::CountDistinct => "COUNT DISTINCT",
        AggregateFunc::Sum => "SUM",
        AggregateFunc::Avg => "AVG",
        AggregateFunc::Min => "MIN",
        AggregateFunc::Max => "MAX",
        AggregateFunc::JsonArray(_) => "JSON_GROUP_ARRAY",
        AggregateFunc::JsonObject { .. } => "JSON_GROUP_OBJECT",
        AggregateFunc::SumDistinct => "SUM DISTINCT",
        AggregateFunc::AvgDistinct => "AVG DISTINCT",
        AggregateFunc::GroupConcat(_) => "GROUP_CONCAT",
    }
}

/// The source column a plan output column copies unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ColumnOrigin {
    table: String,
    column: String,
}

impl std::fmt::Display for ColumnOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// Per output column of `plan`: the source column it is a plain copy of, or
/// `None` when it is computed.
fn column_origins(plan: &Plan, catalog: &Catalog) -> Vec<Option<ColumnOrigin>> {
    match plan {
        Plan::Get { table, arity } => (0..*arity)
            .map(|i| {
                let column = catalog.get(table)?.columns.get(i)?.name.clone();
                Some(ColumnOrigin { table: table.clone(), column })
            })
            .collect(),
        Plan::Filter { input, .. } | Plan::Distinct { input } | Plan::Negate { input } | Plan::Threshold { input } => {
            column_origins(input, catalog)
        }
        Plan::Union { inputs } => {
            // A column is a copy of a source column only if every branch agrees.
            let mut branches = inputs.iter().map(|i| column_origins(i, catalog));
            let first = branches.next().unwrap_or_default();
            branches.fold(first, |acc, b| {
                acc.into_iter()
                    .zip(b)
                    .map(|(x, y)| match (x, y) {
                        (Some(x), Some(y)) if x.table == y.table && x.column == y.column => Some(x),
                        _ => None,
                    })
                    .collect()
            })
        }
        Plan::Values { arity, .. } => vec![None; *arity],
        Plan::TopK { input, rank, .. } => {
            let mut out = column_origins(input, catalog);
            if *rank {
                out.push(None);
            }
            out
        }
        Plan::Map { input, exprs } => {
            let input = column_origins(input, catalog);
            exprs
                .iter()
                .map(|e| match e {
                    Expr::Column(c) => input.get(*c).cloned().flatten(),
                    _ => None,
                })
                .collect()
        }
        Plan::Join { left, right, .. } => {
            let mut out = column_origins(left, catalog);
            out.extend(column_origins(right, catalog));
            out
        }
        Plan::Reduce { input, group_key, aggregates } => {
            let input = column_origins(input, catalog);
            let keys = group_key.iter().map(|&k| input.get(k).cloned().flatten());
            keys.chain(aggregates.iter().map(|_| None)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_expr::{Aggregate, SortKey};
    use denorm_sql::{Location, OutputColumn, TableDependency, ViewKey};
    use denorm_types::{ColumnSchema, ScalarType, TableSchema};

    fn table(name: &str, columns: &[&str], primary_key: Vec<usize>) -> TableSchema {
        TableSchema {
            name: name.into(),
            columns: columns
                .iter()
                .map(|c| ColumnSchema { name: c.to_string(), ty: ScalarType::Int, nullable: false })
                .collect(),
            primary_key,
            unique_keys: vec![],
        }
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.add(table("users", &["id", "name", "avatar"], vec![0]));
        c.add(table("posts", &["id", "author_id", "body"], vec![0]));
        c.add(table("products", &["id", "name"], vec![0]));
        c.add(table("reviews", &["id", "product_id", "rating"], vec![0]));
        c.add(table("trips", &["id", "driver_id", "city", "fare"], vec![0]));
        c
    }

    fn get(table: &str, arity: usize) -> Box<Plan> {
        Box::new(Plan::Get { table: table.into(), arity })
    }

    fn agg(func: AggregateFunc, column: usize) -> Aggregate {
        Aggregate { func, arg: Some(Expr::Column(column)) }
    }

    /// SELECT p.id, p.name, COUNT(r.id), AVG(r.rating)
    /// FROM products p LEFT JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name
    fn product_stats_plan() -> Plan {
        Plan::Reduce {
            input: Box::new(Plan::Join {
                left: get("products", 2),
                right: get("reviews", 3),
                kind: JoinKind::Left,
                left_key: vec![0],
                right_key: vec![1],
                residual: None,
            }),
            group_key: vec![0, 1],
            aggregates: vec![agg(AggregateFunc::Count, 2), agg(AggregateFunc::Avg, 4)],
        }
    }

    /// SQLite's element order follows its plan (a covering index on the
    /// value reorders it), so `denorm check` says so for an unordered
    /// `group_concat`, and not when the call has its ORDER BY.
    #[test]
    fn an_unordered_group_concat_is_noted() {
        let views = "CREATE MATERIALIZED VIEW u AS SELECT author_id, group_concat(body) AS b FROM posts GROUP BY author_id;
                     CREATE MATERIALIZED VIEW o AS SELECT author_id, group_concat(body, ',' ORDER BY id) AS b FROM posts GROUP BY author_id;";
        let defs = denorm_sql::plan_views(views, &catalog(), denorm_types::Dialect::Sqlite).unwrap();
        let notes: Vec<bool> = defs.iter().map(|d| has_unordered_concat(&d.plan)).collect();
        assert_eq!(notes, [true, false]);
        let text = render_view(&defs[0], Path::new("views.sql"), &catalog());
        assert!(text.contains("note: group_concat/string_agg without ORDER BY"), "{text}");
    }

    #[test]
    fn join_leads_with_the_side_whose_key_is_unique() {
        // posts JOIN users ON users.id = posts.author_id: users is the "one" side.
        let plan = Plan::Map {
            input: Box::new(Plan::Join {
                left: get("posts", 3),
                right: get("users", 3),
                kind: JoinKind::Inner,
                left_key: vec![1],
                right_key: vec![0],
                residual: None,
            }),
            exprs: vec![Expr::Column(0), Expr::Column(2), Expr::Column(4)],
        };
        assert_eq!(
            propagation(&plan, &catalog()),
            "a change to users re-joins matching rows of posts by users.id = posts.author_id \
             (and a change to posts looks up its users row)"
        );
    }

    #[test]
    fn a_product_says_so_with_a_cost_warning() {
        let plan = Plan::Join {
            left: get("users", 3),
            right: get("products", 3),
            kind: JoinKind::Full,
            left_key: vec![],
            right_key: vec![],
            residual: Some(Expr::binary(denorm_expr::BinaryOp::Lt, Expr::Column(0), Expr::Column(5))),
        };
        assert_eq!(
            propagation(&plan, &catalog()),
            "joins every row of users with every row of products (a product: no equality to look rows up by): \
             a change to either side is paired with all rows of the other, O(rows of the other side) per change, \
             and emits pairs that pass the join condition (a residual, evaluated per pair), keeping users rows \
             and products rows without a match with NULLs — cost warning: add an equality between the tables if one exists"
        );
    }

    #[test]
    fn a_product_with_a_scalar_subquery_says_it_is_kept_ordered() {
        // users.karma > (SELECT avg(price) FROM products), as the planner joins it.
        let average = Plan::Reduce {
            input: get("products", 3),
            group_key: vec![],
            aggregates: vec![denorm_expr::Aggregate { func: AggregateFunc::Avg, arg: Some(Expr::Column(2)) }],
        };
        let plan = Plan::Filter {
            input: Box::new(Plan::Join {
                left: get("users", 3),
                right: Box::new(average),
                kind: JoinKind::Left,
                left_key: vec![],
                right_key: vec![],
                residual: None,
            }),
            predicate: Expr::binary(denorm_expr::BinaryOp::Gt, Expr::Column(2), Expr::Column(3)),
        };
        let text = propagation(&plan, &catalog());
        assert!(
            text.ends_with(
                "pairs every row of users with the one row computed from products (an uncorrelated scalar subquery): \
                 when a comparison with it filters the rows and the view does not show it, users rows are kept \
                 ordered by the compared value, so a change to users costs O(log n) and a change of the subquery's \
                 value re-emits only the rows between the old and the new value; otherwise a change of that value \
                 re-pairs every row of users"
            ),
            "{text}"
        );
        assert!(!text.contains("cost warning"), "{text}");
    }

    #[test]
    fn left_join_then_constant_time_aggregates() {
        assert_eq!(
            propagation(&product_stats_plan(), &catalog()),
            "a change to products re-joins matching rows of reviews by products.id = reviews.product_id \
             (and a change to reviews looks up its products row), keeping products rows without a match with NULLs; \
             then groups by products.id, products.name: updates the group's COUNT/AVG accumulators in O(1)"
        );
    }

    #[test]
    fn reduce_variants() {
        let reduce = |group_key: Vec<usize>, aggregates: Vec<Aggregate>| Plan::Reduce {
            input: get("reviews", 3),
            group_key,
            aggregates,
        };
        let cases = [
            (
                reduce(vec![1, 2], vec![Aggregate { func: AggregateFunc::Count, arg: None }]),
                "groups by reviews.product_id, reviews.rating: updates the group's COUNT accumulators in O(1)",
            ),
            (
                reduce(
                    vec![1],
                    vec![agg(AggregateFunc::Max, 2), agg(AggregateFunc::Min, 2), agg(AggregateFunc::Sum, 2)],
                ),
                "groups by reviews.product_id: updates the group's SUM accumulators in O(1) \
                 and MIN/MAX ordered multisets in O(log n)",
            ),
            (
                reduce(vec![], vec![agg(AggregateFunc::CountDistinct, 1)]),
                "aggregates everything: updates the single total row's COUNT DISTINCT ordered multisets in O(log n)",
            ),
            (
                reduce(vec![1], vec![]),
                "groups by reviews.product_id: updates a row count per group; \
                 a group appears or disappears when it crosses zero",
            ),
        ];
        for (plan, expected) in cases {
            assert_eq!(propagation(&plan, &catalog()), expected);
        }
    }

    #[test]
    fn ranks_say_that_ties_at_the_boundary_are_kept() {
        let top = |partition: Vec<usize>, numbering| Plan::TopK {
            input: get("reviews", 3),
            partition,
            order: vec![SortKey { column: 2, descending: true, nulls_first: false }],
            limit: 3,
            rank: true,
            numbering,
        };
        let c = catalog();
        assert_eq!(
            propagation(&top(vec![1], Numbering::Rank), &c),
            "keeps each partition's rows in ORDER BY order (O(log n) per change) and emits changes to the rows of \
             rank at most 3, every tie at the boundary kept (a change above the boundary re-emits the kept rows from it \
             on)"
        );
        assert!(propagation(&top(vec![], Numbering::DenseRank), &c).starts_with("keeps all rows in ORDER BY order"));
        assert!(propagation(&top(vec![], Numbering::DenseRank), &c).contains("dense rank at most 3"));
        assert_eq!(
            propagation(&top(vec![1], Numbering::RowNumber), &c),
            "keeps each partition's rows in order (O(log n) per change) and emits changes to its first 3"
        );
        let lag = Numbering::Shift(denorm_expr::Shift { value: 2, offset: -2, default: None });
        assert_eq!(
            propagation(&top(vec![1], lag), &c),
            "keeps each partition's rows in ORDER BY order (O(log n) per change) for LAG by 2: a change re-emits the \
             rows whose 2 neighbours it touches"
        );
    }

    #[test]
    fn single_table_views_update_one_row() {
        let plan = Plan::Filter { input: get("trips", 4), predicate: Expr::IsNull(Box::new(Expr::Column(3))) };
        assert_eq!(propagation(&plan, &catalog()), "each change to trips updates at most one view row, in O(1)");
    }

    #[test]
    fn durations_use_the_largest_whole_unit() {
        let cases = [
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(86_400 * 2), "2d"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0s"),
        ];
        for (d, expected) in cases {
            assert_eq!(format_duration(d), expected);
        }
    }

    #[test]
    fn full_report() {
        let column = |name: &str, ty, nullable| OutputColumn {
            name: name.into(),
            ty,
            nullable,
            collation: None,
            narrow: false,
            no_affinity: false,
        };
        let view = ViewDef {
            name: "product_stats".into(),
            columns: vec![
                column("product_id", ScalarType::Int, false),
                OutputColumn {
                    collation: Some(denorm_types::Collation::NoCase),
                    ..column("name", ScalarType::Text, false)
                },
                column("review_count", ScalarType::Int, false),
                column("avg_rating", ScalarType::Float, true),
            ],
            key: ViewKey { columns: vec![0], origin: KeyOrigin::Declared, proven_unique: true },
            max_staleness: Some(Duration::from_secs(1)),
            on_stale: OnStale::Fallback,
            refresh: Refresh::Every(Duration::from_secs(3600)),
            plan: product_stats_plan(),
            dependencies: vec![
                TableDependency { table: "products".into(), columns: vec!["id".into(), "name".into()] },
                TableDependency {
                    table: "reviews".into(),
                    columns: vec!["id".into(), "product_id".into(), "rating".into()],
                },
            ],
            select_sql: String::new(),
            feed: None,
            location: Location { line: 12, column: 1 },
            order: vec![
                SortKey { column: 2, descending: true, nulls_first: false }.into(),
                SortKey { column: 0, descending: false, nulls_first: false }.into(),
            ],
            indexes: Vec::new(),
        };
        let report = render_view(&view, Path::new("examples/marketplace/views.sql"), &catalog());
        let expected = "\
view product_stats (examples/marketplace/views.sql:12:1)
  key: (product_id) from WITH (key = …); proven unique
  columns:
    product_id    integer  not null  key
    name          text     not null collate NOCASE
    review_count  integer  not null
    avg_rating    double   null
  read order: review_count DESC NULLS LAST, product_id (reads without ?order=)
  max_staleness: 1s
  on_stale: fallback (beyond max_staleness, key lookups are answered by the source)
  refresh: every 1h (changes are gathered and applied together)
  triggers:
    products: id, name
    reviews: id, product_id, rating
  propagates: a change to products re-joins matching rows of reviews by products.id = reviews.product_id \
(and a change to reviews looks up its products row), keeping products rows without a match with NULLs; \
then groups by products.id, products.name: updates the group's COUNT/AVG accumulators in O(1)
  plan:
    Reduce group by [#0, #1] compute [count(#2), avg(#4)]
      LeftJoin on left.#0 = right.#1
        Get products
        Get reviews
";
        assert_eq!(report, expected, "got:\n{report}");
    }
}
