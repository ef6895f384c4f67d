//! FROM, JOIN and the join conditions of WHERE → a join tree.
//!
//! ```text
//!  FROM a, b JOIN c ON c.k = b.k LEFT JOIN d ON d.k = c.k WHERE b.x = a.x
//!
//!  units of the inner joins:  [a, b, c]  conditions: c.k = b.k, b.x = a.x
//!  LEFT JOIN:                 [(greedy order of a, b, c) ⟕ d]
//!  plan:                      LeftJoin(Join(Join(a, b), c), d), then a Map back to FROM order
//! ```
//!
//! Inner joins (JOIN, CROSS JOIN, commas) are associative: their operands
//! (*units*: a table, a subquery, or an outer join already built) and every
//! condition between them (ON conjuncts, WHERE conjuncts that read two or
//! more units, and the conjuncts common to every branch of an OR) form one
//! group, joined in an order the planner picks (see [`Order`]): start from
//! the restricted unit with the fewest guessed rows (the catalog's row
//! estimate times the guessed share its WHERE/ON conditions keep; the
//! first unit when none is restricted), then always join a unit connected
//! to those joined by an equality of one type whose sides read the joined
//! units and the new one (the join key; a side that is not a bare column is
//! computed by a Map below the join) — a restricted one first, then one
//! joined on a unique key of its own, then in FROM order — else one
//! connected by any condition, else the next (a product). Equalities of
//! bare columns also join by transitivity (`a = b AND b = c` lets `c` join
//! `a`), and a key implied by the keys already applied is left out. An OR
//! whose every branch restricts one unit alone also filters that unit by
//! the OR of those restrictions (only conditions that cannot fail). A condition becomes a key or a residual at the
//! first join that has all its columns (the optimizer moves a residual
//! conjunct over one side below the join); an equality implied by an OR only
//! helps as a key, another implied conjunct as a filter (the OR still applies). An outer join's operands
//! are planned as groups of their own, and WHERE conditions never move into
//! its ON. RIGHT JOIN is a LEFT JOIN with its operands swapped; FULL JOIN is
//! [`JoinKind::Full`]. USING and NATURAL joins equate the named columns and
//! merge each pair into one (see [`crate::scope::Merged`]); a FULL JOIN's
//! pair reads as `COALESCE(left, right)`.
//!
//! Relations keep their FROM-order positions in the [`Scope`]; the join tree
//! lays columns out in join order, and a column projection on top restores
//! FROM order (the optimizer folds it away). A feed view keeps FROM order.
//!
//! A FROM item is a source table or a subquery with an alias (SQLite's may
//! have none: it is named `(subquery-N)`, its columns read unqualified; see
//! [`crate::derived`]); a subquery's plan stands where a `Get` would.

use std::ops::Range;

use denorm_expr::{BinaryOp, Expr, JoinKind, Plan};
use denorm_types::{Catalog, Dialect, Row, ScalarType, TableSchema};
use sqlparser::ast::{self, JoinConstraint, JoinOperator, TableFactor};
use sqlparser::keywords::Keyword;

use crate::derived::{bound, plan_derived, set_limit, subquery_location, Derived};
use crate::expr::{Clause, Lowerer};
use crate::scope::{Merged, Scope};
use crate::select::Context;
use crate::source::{location, object_name_start};
use crate::types::{comparison_operands, Typed};
use crate::{Location, PlanError};

const JOIN_KEYWORDS: &[Keyword] = &[
    Keyword::JOIN,
    Keyword::INNER,
    Keyword::LEFT,
    Keyword::RIGHT,
    Keyword::FULL,
    Keyword::OUTER,
    Keyword::CROSS,
    Keyword::NATURAL,
    Keyword::SEMI,
    Keyword::ANTI,
];

/// The FROM clause's relations and the plan reading them, and the WHERE
/// conjuncts (of `selection`) the plan already applies: those that became
/// the limit of a ranked subquery, a join key or a join's residual. The
/// caller filters by the others.
pub(crate) fn plan_from<'q, 'c>(
    from: &[ast::TableWithJoins],
    selection: Option<&'q ast::Expr>,
    cx: &Context<'_, 'c>,
    fallback: Option<Location>,
) -> Result<(Scope<'c>, Plan, Vec<&'q ast::Expr>), PlanError> {
    if from.is_empty() {
        // No FROM: the select list is evaluated once, over one empty row.
        let mut scope = Scope::default();
        scope.catalog = Some(cx.catalog);
        return Ok((scope, Plan::Values { rows: vec![Row::empty()], arity: 0 }, Vec::new()));
    }
    let mut scope = Scope::default();
    scope.catalog = Some(cx.catalog);
    let in_order = cx.view.feed.is_some() && cx.depth == 0;
    let conjuncts = selection.map(conjuncts).unwrap_or_default();
    let early = if in_order || from.iter().any(pads_left) { Vec::new() } else { conjuncts.clone() };
    let mut p =
        Planner { cx, scope, leaves: Vec::new(), ranked: Vec::new(), fallback, in_order, early, parenthesized: 0 };
    let mut group = Group::default();
    for item in from {
        p.item(item, &mut group, fallback)?;
    }
    p.scope.star = std::mem::take(&mut group.star);
    let mut consumed = Vec::new();
    for (r, column, at) in std::mem::take(&mut p.ranked) {
        let function = crate::derived::ranking_name(p.leaves[r].as_ref());
        let (limit, exact) = bound(r, (column, function), at, &conjuncts, &p.scope)?;
        set_limit(p.leaves[r].as_mut().expect("a relation is planned once (bug)"), limit);
        consumed.extend(exact);
    }
    p.where_preds(&mut group, &conjuncts, &mut consumed);
    if p.scope.relations.len() > MAX_RELATIONS {
        return Err(PlanError::new(
            format!("a FROM clause may join at most {MAX_RELATIONS} tables and subqueries"),
            fallback,
        )
        .detail(format!("this one joins {}", p.scope.relations.len()))
        .hint("split the view into views of fewer tables"));
    }
    let tree = p.order(group);
    let (plan, layout) = p.build(tree);
    let arity = p.scope.arity();
    let plan = if layout.iter().copied().eq(0..arity) {
        plan
    } else {
        let at = index(&layout, arity);
        Plan::Map { input: Box::new(plan), exprs: (0..arity).map(|c| Expr::Column(at[c])).collect() }
    };
    let depth = plan_depth(&plan);
    if depth > MAX_PLAN_DEPTH {
        return Err(PlanError::new(
            format!("the joins and subqueries of this query nest {depth} operators deep, more than {MAX_PLAN_DEPTH}"),
            fallback,
        )
        .hint("join fewer tables in the subqueries in FROM, or split the view"));
    }
    Ok((p.scope, plan, consumed))
}

/// Tables and subqueries one FROM clause joins, at most.
const MAX_RELATIONS: usize = 200;
/// Operators on the longest path of a FROM clause's plan, subqueries
/// included, at most: everything downstream (planner, optimizer, operator
/// graph) walks plans recursively, and no input may exhaust its stack.
const MAX_PLAN_DEPTH: usize = 240;

/// The number of operators on `plan`'s longest path, without recursion.
fn plan_depth(plan: &Plan) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(plan, 1)];
    while let Some((p, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match p {
            Plan::Get { .. } | Plan::Values { .. } => {}
            Plan::Filter { input, .. }
            | Plan::Map { input, .. }
            | Plan::Reduce { input, .. }
            | Plan::Distinct { input }
            | Plan::Negate { input }
            | Plan::Threshold { input }
            | Plan::TopK { input, .. } => stack.push((input, depth + 1)),
            Plan::Join { left, right, .. } => stack.extend([(&**left, depth + 1), (&**right, depth + 1)]),
            Plan::Union { inputs } => stack.extend(inputs.iter().map(|i| (i, depth + 1))),
        }
    }
    deepest
}

/// A join tree over relations; columns are named by their positions in the
/// scope's (FROM-order) row.
#[derive(Debug)]
enum Tree {
    Leaf(usize),
    Filter(Box<Tree>, Vec<Expr>),
    Join(Box<Node>),
}

#[derive(Debug)]
struct Node {
    left: Tree,
    right: Tree,
    kind: JoinKind,
    /// (left, right) key expressions.
    keys: Vec<(Expr, Expr)>,
    residual: Vec<Expr>,
}

/// An operand of inner joins: the relations `rels` (consecutive in FROM).
#[derive(Debug)]
struct Unit {
    tree: Tree,
    rels: Range<usize>,
    /// The share of its rows the WHERE conjuncts over this unit alone are
    /// guessed to keep ([`denorm_expr::selectivity`]); 1 when none.
    selectivity: f64,
}

/// Inner-joined units and the conditions between them.
#[derive(Debug, Default)]
struct Group {
    units: Vec<Unit>,
    preds: Vec<Pred>,
    /// What `*` shows of the group's relations (see [`Scope::star`]).
    star: Vec<(usize, usize, String)>,
}

impl Group {
    fn append(&mut self, other: Group) {
        self.units.extend(other.units);
        self.preds.extend(other.preds);
        self.star.extend(other.star);
    }

    fn rels(&self) -> Range<usize> {
        let start = self.units.first().map_or(0, |u| u.rels.start);
        start..self.units.last().map_or(start, |u| u.rels.end)
    }
}

/// One condition: its expression (`None` for an equality implied by an OR,
/// useful only as a join key), the columns it reads, and for `a = b`
/// between two expressions of one type that both read columns, the two
/// sides (a join key when each side reads one operand).
#[derive(Debug)]
struct Pred {
    expr: Option<Expr>,
    columns: Vec<usize>,
    eq: Option<(KeySide, KeySide)>,
}

/// One side of an equality: an expression over scope positions (mostly a
/// bare column) and the columns it reads.
#[derive(Debug, Clone, PartialEq)]
struct KeySide {
    expr: Expr,
    columns: Vec<usize>,
}

impl KeySide {
    fn column(position: usize) -> Self {
        KeySide { expr: Expr::Column(position), columns: vec![position] }
    }

    fn within(&self, span: &Range<usize>) -> bool {
        self.columns.iter().all(|c| span.contains(c))
    }
}

struct Planner<'x, 'q, 'c> {
    cx: &'x Context<'x, 'c>,
    scope: Scope<'c>,
    /// Each relation's own plan, taken when the tree is built.
    leaves: Vec<Option<Plan>>,
    /// Ranked subqueries: relation, row-number column, where.
    ranked: Vec<(usize, usize, Option<Location>)>,
    fallback: Option<Location>,
    /// Join in FROM order (a feed view's shape is read from a left-deep tree).
    in_order: bool,
    /// WHERE conjuncts that may also join the left operand of a LEFT JOIN
    /// outside parentheses (empty when a RIGHT or FULL join could pad it).
    early: Vec<&'q ast::Expr>,
    /// Parenthesized joins around the one being planned.
    parenthesized: usize,
}

impl<'x, 'q, 'c> Planner<'x, 'q, 'c> {
    fn lowerer(&self, clause: Clause, fallback: Option<Location>) -> Lowerer<'_, 'c> {
        Lowerer {
            scope: &self.scope,
            statement: &self.cx.view.tokens,
            dialect: self.cx.dialect,
            clause,
            grouping: None,
            fallback,
            // A conjunct with a subquery does not lower here: the caller's
            // WHERE plans it (see `where_preds`).
            subqueries: None,
            windows: &[],
            clock: self.cx.reads_clock(),
        }
    }

    /// One comma-separated FROM item (or a parenthesized join), appended
    /// to `prefix`, the items before it.
    fn item(
        &mut self,
        item: &ast::TableWithJoins,
        prefix: &mut Group,
        fallback: Option<Location>,
    ) -> Result<(), PlanError> {
        let mut group = self.factor(&item.relation, fallback)?;
        for join in &item.joins {
            group = self.join(prefix, group, join)?;
        }
        prefix.append(group);
        Ok(())
    }

    /// A table, a subquery or a parenthesized join.
    fn factor(&mut self, factor: &TableFactor, fallback: Option<Location>) -> Result<Group, PlanError> {
        if let TableFactor::NestedJoin { table_with_joins, alias } = factor {
            if let Some(alias) = alias {
                return Err(PlanError::new(
                    "an alias for a parenthesized join is not supported",
                    location(alias.name.span.start),
                )
                .hint("qualify columns with the tables' own names or aliases"));
            }
            let mut group = Group::default();
            self.parenthesized += 1;
            let planned = self.item(table_with_joins, &mut group, fallback);
            self.parenthesized -= 1;
            planned?;
            return Ok(group);
        }
        let (relation, name) = relation(factor, self.cx, &self.scope, fallback)?;
        let r = self.scope.relations.len();
        let plan = push(&mut self.scope, relation, name, false, &mut self.ranked);
        self.leaves.push(Some(plan));
        let star = self.scope.relations[r].table.columns.iter().enumerate().map(|(c, col)| (r, c, col.name.clone()));
        let star = star.collect();
        let unit = Unit { tree: Tree::Leaf(r), rels: r..r + 1, selectivity: 1.0 };
        Ok(Group { units: vec![unit], preds: Vec::new(), star })
    }

    /// Column positions of relations `rels`.
    fn span(&self, rels: &Range<usize>) -> Range<usize> {
        let offset = |r: usize| self.scope.relations.get(r).map_or_else(|| self.scope.arity(), |rel| rel.offset);
        offset(rels.start)..offset(rels.end)
    }

    fn relation_of(&self, position: usize) -> usize {
        self.scope.relations.partition_point(|r| r.offset <= position) - 1
    }

    /// `left` (of the current FROM item) joined by `join`. In SQLite a comma
    /// is a join like the others, left-deep, so the items before (`prefix`)
    /// are part of an outer join's left operand; a LEFT JOIN whose ON does
    /// not read them gives the same rows either way, and is planned as in
    /// PostgreSQL (where the comma binds loosest) so the WHERE conditions
    /// between the items still join them.
    fn join(&mut self, prefix: &mut Group, mut left: Group, join: &ast::Join) -> Result<Group, PlanError> {
        let statement = &self.cx.view.tokens;
        let join_at = factor_start(&join.relation)
            .map(|l| statement.back_over_keywords(l, JOIN_KEYWORDS))
            .and_then(location)
            .or(self.fallback);
        let (kind, constraint) = join_kind(&join.join_operator, self.cx.dialect, join_at)?;
        let sqlite = self.cx.dialect == Dialect::Sqlite;
        if sqlite && matches!(kind, Some(OuterKind::Right | OuterKind::Full)) {
            left = self.with_prefix(prefix, left);
        }
        let left_rels = left.rels();
        let right = self.factor(&join.relation, join_at)?;
        let right_rels = right.rels();
        let merged_before = self.scope.merged.len();
        let preds = self.constraint(constraint, &left_rels, &right_rels, kind, join_at)?;
        if let Some(c) = self.outside(right.preds.iter(), &right_rels) {
            return Err(self.outside_error(c, join_at));
        }
        let mut read = preds.iter().chain(if kind.is_some() { &left.preds[..] } else { &[] });
        if let Some(c) = self.outside(&mut read, &(left_rels.start..right_rels.end)) {
            let in_prefix = !prefix.units.is_empty() && self.relation_of(c) >= prefix.rels().start;
            if !(sqlite && in_prefix) {
                return Err(self.outside_error(c, join_at));
            }
            if kind.is_some() {
                left = self.with_prefix(prefix, left);
            }
        }
        let star = self.star(&left.star, &right.star, merged_before);
        let Some(kind) = kind else {
            let mut group = left;
            group.units.extend(right.units);
            group.preds.extend(right.preds);
            group.preds.extend(preds);
            group.star = star;
            return Ok(group);
        };
        let mut group = self.outer_join(kind, left, right, preds, join_at)?;
        group.star = star;
        Ok(group)
    }

    /// `left` and `right` (each joined in its own order) joined by an outer
    /// join on `preds`: one unit.
    fn outer_join(
        &mut self,
        kind: OuterKind,
        left: Group,
        right: Group,
        preds: Vec<Pred>,
        join_at: Option<Location>,
    ) -> Result<Group, PlanError> {
        let (left_rels, right_rels) = (left.rels(), right.rels());
        let outer = match kind {
            OuterKind::Left => vec![right_rels.clone()],
            OuterKind::Right => vec![left_rels.clone()],
            OuterKind::Full => vec![left_rels.clone(), right_rels.clone()],
        };
        for rels in &outer {
            self.mark_outer(rels, join_at)?;
        }
        let left_span = self.span(&left_rels);
        let (mut keys, mut residual) = (Vec::new(), Vec::new());
        let right_span = self.span(&right_rels);
        for p in preds {
            match p.eq {
                Some((a, b)) if a.within(&left_span) && b.within(&right_span) => keys.push((a.expr, b.expr)),
                Some((a, b)) if b.within(&left_span) && a.within(&right_span) => keys.push((b.expr, a.expr)),
                _ => residual.extend(p.expr),
            }
        }
        let mut left = left;
        if kind == OuterKind::Left && self.parenthesized == 0 {
            self.early_where(&mut left);
        }
        let (left_tree, right_tree) = (self.order(left), self.order(right));
        let node = match kind {
            OuterKind::Left | OuterKind::Full => {
                let kind = if kind == OuterKind::Left { JoinKind::Left } else { JoinKind::Full };
                Node { left: left_tree, right: right_tree, kind, keys, residual }
            }
            OuterKind::Right => Node {
                left: right_tree,
                right: left_tree,
                kind: JoinKind::Left,
                keys: keys.into_iter().map(|(a, b)| (b, a)).collect(),
                residual,
            },
        };
        let unit = Unit { tree: Tree::Join(Box::new(node)), rels: left_rels.start..right_rels.end, selectivity: 1.0 };
        Ok(Group { units: vec![unit], ..Group::default() })
    }

    /// `*` over a join of `left` and `right` whose USING / NATURAL pairs
    /// are the scope's merged pairs from `from` on: SQLite shows a pair at
    /// the left column's place, PostgreSQL first, in USING order; the
    /// surviving column (the right one for a RIGHT JOIN) under the left
    /// column's name.
    fn star(
        &self,
        left: &[(usize, usize, String)],
        right: &[(usize, usize, String)],
        from: usize,
    ) -> Vec<(usize, usize, String)> {
        let merged = &self.scope.merged[from..];
        let value = |m: &Merged| if m.value_right { m.right } else { m.left };
        let name = |(r, c): (usize, usize)| self.scope.relations[r].table.columns[c].name.clone();
        let right = right.iter().filter(|(r, c, _)| !merged.iter().any(|m| m.right == (*r, *c))).cloned();
        match self.cx.dialect {
            Dialect::Sqlite => {
                let left = left.iter().map(|(r, c, n)| match merged.iter().find(|m| m.left == (*r, *c)) {
                    Some(m) => (value(m).0, value(m).1, n.clone()),
                    None => (*r, *c, n.clone()),
                });
                left.chain(right).collect()
            }
            Dialect::Postgres => {
                let pairs = merged.iter().map(|m| (value(m).0, value(m).1, name(m.left)));
                let left = left.iter().filter(|(r, c, _)| !merged.iter().any(|m| m.left == (*r, *c))).cloned();
                pairs.chain(left).chain(right).collect()
            }
        }
    }

    /// The items before the current one and `left`, as one operand.
    fn with_prefix(&self, prefix: &mut Group, left: Group) -> Group {
        let mut group = std::mem::take(prefix);
        group.append(left);
        group
    }

    /// A column the conditions read outside relations `rels`.
    fn outside<'p>(&self, mut preds: impl Iterator<Item = &'p Pred>, rels: &Range<usize>) -> Option<usize> {
        let span = self.span(rels);
        preds.find_map(|p| p.columns.iter().copied().find(|c| !span.contains(c)))
    }

    fn outside_error(&self, column: usize, at: Option<Location>) -> PlanError {
        let name = &self.scope.relations[self.relation_of(column)].name;
        PlanError::new(
            format!("the ON clause refers to \"{name}\", which is not one of the tables this JOIN joins"),
            at,
        )
        .detail(
            "an ON clause sees the tables of its own join: those before it up to the last comma, and the one it adds",
        )
        .hint("move the condition to WHERE")
    }

    /// Marks `rels` as the NULL-padded side of an outer join.
    fn mark_outer(&mut self, rels: &Range<usize>, at: Option<Location>) -> Result<(), PlanError> {
        if let Some((r, _, rank_at)) = self.ranked.iter().find(|(r, _, _)| rels.contains(r)) {
            let function = crate::derived::ranking_name(self.leaves.get(*r).and_then(Option::as_ref));
            return Err(PlanError::new(
                format!("a subquery with {function} cannot be the side of an outer join that is padded with NULLs"),
                rank_at.or(at),
            )
            .detail("its row-number bound in WHERE would also drop the rows of the other side it does not match")
            .hint("join it with JOIN, or make it the side whose rows are all kept (the left of a LEFT JOIN)"));
        }
        for r in rels.clone() {
            self.scope.relations[r].outer = true;
        }
        Ok(())
    }

    /// The conditions of ON, USING or NATURAL.
    fn constraint(
        &mut self,
        constraint: &JoinConstraint,
        left: &Range<usize>,
        right: &Range<usize>,
        kind: Option<OuterKind>,
        join_at: Option<Location>,
    ) -> Result<Vec<Pred>, PlanError> {
        match constraint {
            JoinConstraint::On(on) => {
                let mut preds = Vec::new();
                for c in conjuncts(on) {
                    let lw = self.lowerer(Clause::JoinOn, join_at);
                    let t = lw.lower_condition(c, "JOIN/ON", 0)?;
                    preds.push(Pred { columns: t.expr.columns(), expr: Some(t.expr), eq: self.equality(c, &lw) });
                    preds.extend(self.implied(c, &lw));
                }
                Ok(preds)
            }
            JoinConstraint::Using(names) => {
                let mut columns = Vec::new();
                for name in names {
                    let at = object_name_start(name).and_then(location).or(join_at);
                    let [ast::ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
                        return Err(PlanError::new(format!("USING names a column, not {name}"), at));
                    };
                    columns.push((ident.value.clone(), at));
                }
                self.using(&columns, left, right, kind)
            }
            JoinConstraint::Natural => {
                let right_names: Vec<String> = self.visible(right).into_iter().map(|(_, _, n)| n).collect();
                let mut common: Vec<(String, Option<Location>)> = Vec::new();
                for (_, _, n) in self.visible(left) {
                    if right_names.iter().any(|r| r.eq_ignore_ascii_case(&n))
                        && !common.iter().any(|(c, _)| c.eq_ignore_ascii_case(&n))
                    {
                        common.push((n, join_at));
                    }
                }
                self.using(&common, left, right, kind)
            }
            JoinConstraint::None => Ok(Vec::new()),
        }
    }

    /// Columns of `rels` an unqualified name sees: (relation, column, name).
    fn visible(&self, rels: &Range<usize>) -> Vec<(usize, usize, String)> {
        let mut out = Vec::new();
        for r in rels.clone() {
            for (c, column) in self.scope.relations[r].table.columns.iter().enumerate() {
                if !self.scope.hidden(r, c) {
                    out.push((r, c, column.name.clone()));
                }
            }
        }
        out
    }

    /// `USING (c, …)`: `left.c = right.c` for each, the pairs merged.
    fn using(
        &mut self,
        names: &[(String, Option<Location>)],
        left: &Range<usize>,
        right: &Range<usize>,
        kind: Option<OuterKind>,
    ) -> Result<Vec<Pred>, PlanError> {
        let full = kind == Some(OuterKind::Full);
        let mut preds = Vec::new();
        for (name, at) in names {
            let find = |rels: &Range<usize>, side: &str| {
                let found: Vec<(usize, usize, String)> =
                    self.visible(rels).into_iter().filter(|(_, _, n)| n.eq_ignore_ascii_case(name)).collect();
                match found.as_slice() {
                    [(r, c, _)] => Ok((*r, *c)),
                    [] => Err(PlanError::new(
                        format!("column \"{name}\" specified in USING clause does not exist in {side} table"),
                        *at,
                    )),
                    _ => Err(PlanError::new(
                        format!("common column name \"{name}\" appears more than once in {side} table"),
                        *at,
                    )
                    .hint("write JOIN … ON with qualified column names")),
                }
            };
            let (l, r) = (find(left, "left")?, find(right, "right")?);
            self.scope.check_supported(l.0, l.1, *at)?;
            self.scope.check_supported(r.0, r.1, *at)?;
            // A column merged by an earlier FULL JOIN … USING is its
            // COALESCE (see `Scope::full_value`).
            let (lc, rc) = (self.scope.merged_column(l.0, l.1), self.scope.merged_column(r.0, r.1));
            let common = self.using_type(name, &lc, &rc, full, *at)?;
            let typed = |c: &crate::scope::ColumnRef| {
                let t = match &c.merged {
                    Some(t) => t.clone(),
                    None => Typed::new(Expr::Column(c.position), c.ty, c.nullable)
                        .collated(c.collation, false)
                        .without_affinity(c.no_affinity),
                };
                // PostgreSQL compares the two as their common type.
                match self.cx.dialect == Dialect::Postgres && t.ty != common && t.ty != ScalarType::Null {
                    true => Typed::new(Expr::Cast { expr: Box::new(t.expr), to: common }, common, t.nullable),
                    false => t,
                }
            };
            let (a, b) = comparison_operands(typed(&lc), typed(&rc), "=", self.cx.dialect, *at)?;
            let same = a.ty == b.ty && a.ty != ScalarType::Null;
            let side = |t: &Typed| KeySide { columns: t.expr.columns(), expr: t.expr.clone() };
            let eq = same.then(|| (side(&a), side(&b)));
            let expr = Expr::binary(BinaryOp::Eq, a.expr, b.expr);
            preds.push(Pred { columns: expr.columns(), expr: Some(expr), eq });
            // PostgreSQL shows the pair as their common type: an INNER JOIN
            // the column already of it (the right one when only the left
            // differs), a LEFT (RIGHT) JOIN the left (right) one cast to it.
            let cast = self.cx.dialect == Dialect::Postgres;
            let narrow = lc.narrow && rc.narrow;
            let differs = |c: &crate::scope::ColumnRef| {
                c.ty != ScalarType::Null && (c.ty != common || (c.ty == ScalarType::Int && c.narrow != narrow))
            };
            let value_right = match kind {
                Some(OuterKind::Right) => true,
                None => cast && differs(&lc) && !differs(&rc),
                _ => false,
            };
            let kept = if value_right { &rc } else { &lc };
            let to = (cast && !full && differs(kept)).then_some((common, narrow));
            self.scope.merged.push(Merged { left: l, right: r, value_right, full, cast, to });
        }
        Ok(preds)
    }

    /// The common type of a USING pair (PostgreSQL compares the two as it).
    /// A FULL JOIN's pair shows `COALESCE(left, right)` of that type
    /// (see [`Scope::full_value`]): SQLite's carries the left column's
    /// collation (and the join compares under it, as any `=` of two
    /// columns); PostgreSQL's is refused over `character(n)` beside
    /// `text`, which PostgreSQL merges as text.
    fn using_type(
        &self,
        name: &str,
        lc: &crate::scope::ColumnRef,
        rc: &crate::scope::ColumnRef,
        full: bool,
        at: Option<Location>,
    ) -> Result<ScalarType, PlanError> {
        let common = crate::types::unify(lc.ty, rc.ty).filter(|&t| t != ScalarType::Null);
        let collations = self.cx.dialect == Dialect::Sqlite || lc.collation == rc.collation;
        match common {
            Some(ty) if collations || !full => Ok(ty),
            // Not comparable: the equality reports it.
            None if !full => Ok(lc.ty),
            _ => {
                let what = format!(
                    "FULL JOIN … USING ({name}) over columns of different types or collations is not supported"
                );
                Err(PlanError::new(what, at)
                    .detail(format!("left: {}, right: {}", lc.ty, rc.ty))
                    .hint("write FULL JOIN … ON a.c = b.c and select COALESCE(a.c, b.c)"))
            }
        }
    }

    /// The sides of `a = b` when both read columns and have one type (a
    /// hash join would not match 1 with 1.0; in PostgreSQL, which compares
    /// an integer with a double as a double, the integer side is cast).
    fn equality(&self, e: &ast::Expr, lw: &Lowerer<'_, '_>) -> Option<(KeySide, KeySide)> {
        let ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } = strip(e) else { return None };
        let (a, b) = (lw.lower(left, 0).ok()?, lw.lower(right, 0).ok()?);
        // PostgreSQL's character(n) matches without its trailing blanks.
        let (a, b) = (crate::types::strip_bpchar(a), crate::types::strip_bpchar(b));
        // Text under a collation is keyed by its collation key.
        let collation = crate::types::comparison_collation(&a, &b);
        let (a, b) = (crate::types::collation_key(a, collation), crate::types::collation_key(b, collation));
        let to_float = |t: Typed, other: ScalarType| match (t.ty, other) {
            (ScalarType::Int, ScalarType::Float) if self.cx.dialect == Dialect::Postgres => {
                let expr = Expr::Cast { expr: Box::new(t.expr), to: ScalarType::Float };
                Typed::new(expr, ScalarType::Float, t.nullable)
            }
            _ => t,
        };
        let (a_ty, b_ty) = (a.ty, b.ty);
        let (a, b) = (to_float(a, b_ty), to_float(b, a_ty));
        // SQLite converts a text beside a number column by NUMERIC affinity
        // (or the number beside a text column by TEXT affinity): the key
        // sides are the converted values (see `number_text_operands`).
        let (a, b) = match crate::types::number_text_operands(&a, &b, true) {
            Some(pair) if self.cx.dialect == Dialect::Sqlite && collation == denorm_types::Collation::Binary => pair,
            _ => (a, b),
        };
        if a.ty != b.ty || a.ty == ScalarType::Null {
            return None;
        }
        let side = |t: Typed| KeySide { columns: t.expr.columns(), expr: t.expr };
        let (a, b) = (side(a), side(b));
        let keyable = a.expr != b.expr && !a.columns.is_empty() && !b.columns.is_empty();
        keyable.then_some((a, b))
    }

    /// What every branch of an OR implies: the column equalities common to
    /// all branches (join keys, or nothing), and the other conjuncts common
    /// to all branches (filters of the side they read, or residuals). The
    /// OR itself still applies.
    fn implied(&self, e: &ast::Expr, lw: &Lowerer<'_, '_>) -> Vec<Pred> {
        let branches = disjuncts(e);
        if branches.len() < 2 {
            return Vec::new();
        }
        let mut pairs: Option<Vec<(usize, usize)>> = None;
        let mut exprs: Option<Vec<Expr>> = None;
        for b in branches {
            let (mut these_pairs, mut these_exprs) = (Vec::new(), Vec::new());
            for c in conjuncts(b) {
                match equi_pair(c, &self.scope).ok().flatten() {
                    Some((x, y)) => these_pairs.push((x.min(y), x.max(y))),
                    None => these_exprs.extend(lw.lower_condition(c, "OR", 0).ok().map(|t| t.expr)),
                }
            }
            pairs = Some(match pairs {
                None => these_pairs,
                Some(p) => p.into_iter().filter(|x| these_pairs.contains(x)).collect(),
            });
            exprs = Some(match exprs {
                None => these_exprs,
                Some(p) => p.into_iter().filter(|x| these_exprs.contains(x)).collect(),
            });
        }
        let pair =
            |(a, b)| Pred { expr: None, columns: vec![a, b], eq: Some((KeySide::column(a), KeySide::column(b))) };
        let filter = |e: Expr| Pred { columns: e.columns(), expr: Some(e), eq: None };
        let (mut pairs, mut exprs) = (pairs.unwrap_or_default(), exprs.unwrap_or_default());
        pairs.sort_unstable();
        pairs.dedup();
        let mut kept: Vec<Expr> = Vec::new();
        for e in exprs.drain(..) {
            if !e.columns().is_empty() && !kept.contains(&e) {
                kept.push(e);
            }
        }
        pairs.into_iter().map(pair).chain(kept.into_iter().map(filter)).collect()
    }

    /// The restrictions of single units an OR over several implies: when
    /// every branch has conjuncts reading only unit `u`, the OR of those
    /// conjunctions holds wherever the OR does, so it filters `u` before
    /// any join (`(n1.name = 'FRANCE' AND n2.name = 'GERMANY') OR
    /// (n1.name = 'GERMANY' AND n2.name = 'FRANCE')` restricts both n1 and
    /// n2 to the two names). The OR itself still applies. Only conditions
    /// that cannot fail are derived: the restriction is evaluated on rows
    /// the OR may never reach.
    fn restrictions(
        &self,
        e: &ast::Expr,
        lw: &Lowerer<'_, '_>,
        unit_of: &dyn Fn(usize) -> Option<usize>,
    ) -> Vec<(usize, Pred)> {
        let branches = disjuncts(e);
        if branches.len() < 2 {
            return Vec::new();
        }
        let mut per_branch: Vec<Vec<(usize, Vec<Expr>)>> = Vec::new();
        for b in branches {
            let mut by_unit: Vec<(usize, Vec<Expr>)> = Vec::new();
            for c in conjuncts(b) {
                let Ok(t) = lw.lower_condition(c, "OR", 0) else { continue };
                let columns = t.expr.columns();
                let mut units: Vec<Option<usize>> = columns.iter().map(|&p| unit_of(self.relation_of(p))).collect();
                units.sort_unstable();
                units.dedup();
                let [Some(u)] = units[..] else { continue };
                if !denorm_expr::error_free(&t.expr) {
                    continue;
                }
                match by_unit.iter_mut().find(|(x, _)| *x == u) {
                    Some((_, exprs)) => exprs.push(t.expr),
                    None => by_unit.push((u, vec![t.expr])),
                }
            }
            per_branch.push(by_unit);
        }
        let units: Vec<usize> = per_branch[0]
            .iter()
            .map(|(u, _)| *u)
            .filter(|u| per_branch.iter().all(|b| b.iter().any(|(x, _)| x == u)))
            .collect();
        if units.len() < 2 && per_branch.iter().all(|b| b.len() == 1) {
            // The OR reads one unit only: it is that unit's filter already.
            return Vec::new();
        }
        let and = |exprs: Vec<Expr>| exprs.into_iter().reduce(|a, b| Expr::binary(BinaryOp::And, a, b));
        units
            .into_iter()
            .filter_map(|u| {
                let mut branches = per_branch.iter_mut().map(|b| {
                    let at = b.iter().position(|(x, _)| *x == u).expect("every branch restricts the unit");
                    and(b.swap_remove(at).1).expect("a branch's restriction has conjuncts")
                });
                let first = branches.next()?;
                let derived = branches.fold(first, |a, b| Expr::binary(BinaryOp::Or, a, b));
                Some((u, Pred { columns: derived.columns(), expr: Some(derived), eq: None }))
            })
            .collect()
    }

    /// WHERE conjuncts over two or more of `group`'s units join them below
    /// the LEFT JOIN whose left operand `group` is (not consumed: WHERE
    /// still applies above). Its rows are all kept by that join and by any
    /// join after it (no RIGHT or FULL join), so filtering them first gives
    /// the same rows; without this, `a CROSS JOIN b LEFT JOIN c … WHERE
    /// a.id = b.a_id` would hold the product of a and b.
    fn early_where(&self, group: &mut Group) {
        if group.units.len() < 2 {
            return;
        }
        let span = self.span(&group.rels());
        let unit_of = |p: usize| group.units.iter().position(|u| u.rels.contains(&self.relation_of(p)));
        let lw = self.lowerer(Clause::Where, self.fallback);
        let mut preds = Vec::new();
        for &c in &self.early {
            let Ok(t) = lw.lower_condition(c, "WHERE", 0) else { continue };
            let columns = t.expr.columns();
            if !columns.iter().all(|c| span.contains(c)) {
                continue;
            }
            let mut units: Vec<Option<usize>> = columns.iter().map(|&p| unit_of(p)).collect();
            units.sort_unstable();
            units.dedup();
            if units.len() >= 2 {
                preds.push(Pred { expr: Some(t.expr), columns, eq: self.equality(c, &lw) });
            }
        }
        group.preds.extend(preds);
    }

    /// WHERE conjuncts over two or more units join them (they are consumed);
    /// a conjunct that does not lower here is left to the caller.
    fn where_preds<'w>(&self, group: &mut Group, conjuncts: &[&'w ast::Expr], consumed: &mut Vec<&'w ast::Expr>) {
        if group.units.len() < 2 {
            return;
        }
        let spans: Vec<Range<usize>> = group.units.iter().map(|u| u.rels.clone()).collect();
        let unit_of = |rel: usize| spans.iter().position(|rels| rels.contains(&rel));
        let mut preds = Vec::new();
        let lw = self.lowerer(Clause::Where, self.fallback);
        for &c in conjuncts {
            preds.extend(self.implied(c, &lw));
            // Restrictions of one unit: `order` counts them in its guesses.
            preds.extend(self.restrictions(c, &lw, &unit_of).into_iter().map(|(_, p)| p));
            if consumed.iter().any(|x| std::ptr::eq(*x, c)) {
                continue;
            }
            let Ok(t) = lw.lower_condition(c, "WHERE", 0) else { continue };
            let columns = t.expr.columns();
            let mut units: Vec<Option<usize>> = columns.iter().map(|&p| unit_of(self.relation_of(p))).collect();
            units.sort_unstable();
            units.dedup();
            if let [Some(u)] = units[..] {
                // A filter of one unit (applied by the caller): it only
                // guides the join order.
                group.units[u].selectivity *= guess(&t.expr);
            }
            if units.len() < 2 || units.contains(&None) {
                continue;
            }
            preds.push(Pred { expr: Some(t.expr), columns, eq: self.equality(c, &lw) });
            consumed.push(c);
        }
        group.preds.extend(preds);
    }

    /// Joins a group's units in the order described in the module docs.
    fn order(&self, group: Group) -> Tree {
        let Group { units, mut preds, .. } = group;
        if !self.in_order {
            // A feed's shape is read from its joins as written.
            preds.extend(transitive_equalities(&preds));
        }
        let n = units.len();
        let mut selectivity: Vec<f64> = units.iter().map(|u| u.selectivity).collect();
        let rows: Vec<f64> = units.iter().map(|u| self.rows_estimate(u)).collect();
        let unit_of = |p: usize| {
            let r = self.relation_of(p);
            units.iter().position(|u| u.rels.contains(&r)).expect("a condition reads its group's units (bug)")
        };
        let pred_units: Vec<Vec<usize>> = preds
            .iter()
            .map(|p| {
                let mut v: Vec<usize> = p.columns.iter().map(|&c| unit_of(c)).collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let units_of = |side: &KeySide| {
            let mut v: Vec<usize> = side.columns.iter().map(|&c| unit_of(c)).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let eq_units: Vec<Option<(Vec<usize>, Vec<usize>)>> =
            preds.iter().map(|p| p.eq.as_ref().map(|(a, b)| (units_of(a), units_of(b)))).collect();
        for (p, on) in preds.iter().zip(&pred_units) {
            if let (Some(expr), [u]) = (&p.expr, &on[..]) {
                selectivity[*u] *= guess(expr);
            }
        }
        let order =
            Order { rank: (0..n).map(|u| rank(rows[u] * selectivity[u], selectivity[u] <= RESTRICTS)).collect() };
        let keyed: Vec<Vec<usize>> = units.iter().map(|u| self.unique_key_columns(u)).collect();
        let mut trees: Vec<Option<Tree>> = units.into_iter().map(|u| Some(u.tree)).collect();
        let mut joined = vec![false; n];
        let mut used = vec![false; preds.len()];
        let mut applied = vec![false; preds.len()];
        // Columns equal in every row joined so far (by keys and conditions
        // applied).
        let mut equal = Equalities::default();
        let start = if self.in_order { 0 } else { order.start() };
        joined[start] = true;
        let mut tree = trees[start].take().expect("a group has a unit");
        for _ in 1..n {
            let next = self.next_unit(&joined, &used, &preds, &eq_units, &pred_units, &order, &keyed);
            let (mut keys, mut residual) = (Vec::new(), Vec::new());
            for (i, p) in preds.iter().enumerate() {
                if used[i] {
                    continue;
                }
                if let (Some((a, b)), Some((ua, ub))) = (&p.eq, &eq_units[i]) {
                    let key = if joins(ua, ub, &joined, next) {
                        Some((a.expr.clone(), b.expr.clone()))
                    } else if joins(ub, ua, &joined, next) {
                        Some((b.expr.clone(), a.expr.clone()))
                    } else {
                        None
                    };
                    if let Some(key) = key {
                        used[i] = true;
                        applied[i] = true;
                        // A key whose left column already equals another
                        // key's (by the joins so far) against the same right
                        // column adds nothing but width to the arrangements.
                        let redundant = keys.iter().any(|k: &(Expr, Expr)| {
                            k.1 == key.1
                                && matches!((&k.0, &key.0), (Expr::Column(x), Expr::Column(y)) if equal.same(*x, *y))
                        });
                        if !redundant && !keys.contains(&key) {
                            keys.push(key);
                        }
                        continue;
                    }
                }
                if pred_units[i].iter().all(|&u| joined[u] || u == next) {
                    used[i] = true;
                    applied[i] = p.expr.is_some();
                    residual.extend(p.expr.clone());
                }
            }
            // Every equality of columns applied so far holds in the rows
            // joined: as a key or a residual, or implied by those (a
            // redundant key). An equality implied by others within one unit
            // (no expression) is never applied, so it does not count.
            for (p, _) in preds.iter().zip(&applied).filter(|(_, applied)| **applied) {
                if let Some((a, b)) = bare_columns(p) {
                    equal.union(a, b);
                }
            }
            joined[next] = true;
            let right = trees[next].take().expect("a unit is joined once");
            tree = Tree::Join(Box::new(Node { left: tree, right, kind: JoinKind::Inner, keys, residual }));
        }
        let rest: Vec<Expr> =
            preds.into_iter().zip(used).filter(|(_, used)| !used).filter_map(|(p, _)| p.expr).collect();
        if rest.is_empty() {
            tree
        } else {
            Tree::Filter(Box::new(tree), rest)
        }
    }

    /// The unit to join next: among those connected to the joined ones by
    /// an equality, the best by [`Order::better`] (a restricted unit, then
    /// one joined on a unique key of its own, then in FROM order), else
    /// the first connected by any condition, else the first left. One pass
    /// over the conditions, so a long chain plans in O(units × conditions).
    #[allow(clippy::too_many_arguments)]
    fn next_unit(
        &self,
        joined: &[bool],
        used: &[bool],
        preds: &[Pred],
        eq_units: &[Option<(Vec<usize>, Vec<usize>)>],
        pred_units: &[Vec<usize>],
        order: &Order,
        keyed: &[Vec<usize>],
    ) -> usize {
        let first_left = || joined.iter().position(|j| !j).expect("a unit is left to join");
        if self.in_order {
            return first_left();
        }
        // Candidates joined by a key, with the columns of theirs the key reads.
        let mut by_key: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut by_condition = None::<usize>;
        for (i, units) in pred_units.iter().enumerate() {
            if used[i] {
                continue;
            }
            if let (Some((a, b)), Some((sa, sb))) = (&eq_units[i], &preds[i].eq) {
                for (have, new, side) in [(a, b, sb), (b, a, sa)] {
                    if let [u] = new[..] {
                        if !joined[u] && have.iter().all(|&x| joined[x]) {
                            let at = match by_key.iter().position(|(x, _)| *x == u) {
                                Some(at) => at,
                                None => {
                                    by_key.push((u, Vec::new()));
                                    by_key.len() - 1
                                }
                            };
                            if let Expr::Column(c) = side.expr {
                                by_key[at].1.push(c);
                            }
                        }
                    }
                }
            }
            let mut new = units.iter().copied().filter(|&x| !joined[x]);
            if let (Some(u), None) = (new.next(), new.next()) {
                if units.iter().any(|&x| joined[x]) {
                    by_condition = Some(by_condition.map_or(u, |b| b.min(u)));
                }
            }
        }
        let on_unique =
            |u: usize, columns: &[usize]| !keyed[u].is_empty() && keyed[u].iter().all(|c| columns.contains(c));
        let best = by_key.iter().map(|(u, columns)| (*u, on_unique(*u, columns))).reduce(|a, b| {
            if order.better(b, a) {
                b
            } else {
                a
            }
        });
        best.map(|(u, _)| u).or(by_condition).unwrap_or_else(first_left)
    }

    /// A unit's estimated rows before its restrictions: a source table's
    /// row estimate from the catalog, or [`UNKNOWN_ROWS`].
    fn rows_estimate(&self, unit: &Unit) -> f64 {
        let Tree::Leaf(r) = unit.tree else { return UNKNOWN_ROWS };
        let rel = &self.scope.relations[r];
        match (&rel.derived, self.cx.catalog.row_estimate(&rel.table.name)) {
            (None, Some(rows)) if rows > 0 => rows as f64,
            _ => UNKNOWN_ROWS,
        }
    }

    /// The scope positions of a leaf unit's smallest unique key (its primary
    /// key, else a unique key), or nothing: a join on all of them matches
    /// each row of the other side at most once.
    fn unique_key_columns(&self, unit: &Unit) -> Vec<usize> {
        let Tree::Leaf(r) = unit.tree else { return Vec::new() };
        let rel = &self.scope.relations[r];
        let table = &rel.table;
        let keys = std::iter::once(&table.primary_key).chain(&table.unique_keys).filter(|k| !k.is_empty());
        keys.min_by_key(|k| k.len()).map(|k| k.iter().map(|c| rel.offset + c).collect()).unwrap_or_default()
    }

    /// The plan of a tree and its column layout (scope positions in output order).
    fn build(&mut self, tree: Tree) -> (Plan, Vec<usize>) {
        match tree {
            Tree::Leaf(r) => {
                let plan = self.leaves[r].take().expect("a relation is planned once (bug)");
                let rel = &self.scope.relations[r];
                (plan, (rel.offset..rel.offset + rel.table.columns.len()).collect())
            }
            Tree::Filter(input, preds) => {
                let (plan, layout) = self.build(*input);
                let at = index(&layout, self.scope.arity());
                let predicate = conjoin(preds, &at).expect("a filter has conditions");
                (Plan::Filter { input: Box::new(plan), predicate }, layout)
            }
            Tree::Join(node) => {
                let Node { left, right, kind, keys, residual } = *node;
                let arity = self.scope.arity();
                let (left, mut layout) = self.build(left);
                let (right, mut right_layout) = self.build(right);
                let (left_keys, right_keys): (Vec<Expr>, Vec<Expr>) = keys.into_iter().unzip();
                let (left, left_key) = key_columns(left, &mut layout, left_keys, arity);
                let (right, right_key) = key_columns(right, &mut right_layout, right_keys, arity);
                layout.extend(right_layout);
                let at = index(&layout, arity);
                let plan = Plan::Join {
                    left: Box::new(left),
                    right: Box::new(right),
                    kind,
                    left_key,
                    right_key,
                    residual: conjoin(residual, &at),
                };
                (plan, layout)
            }
        }
    }
}

/// The guessed share of rows at most which conditions restrict a unit (a
/// `<>` keeping nine tenths does not).
const RESTRICTS: f64 = 0.5;
/// The equalities of bare columns that follow from the others by
/// transitivity (`c.nation = s.nation AND s.nation = n.key` gives
/// `c.nation = n.key`), as keys only: they let the order join a table to
/// any member of its class (TPC-H Q5's customers to their nation, not to
/// every supplier of it). Each has one type (see `equality`), so the class
/// does too.
fn transitive_equalities(preds: &[Pred]) -> Vec<Pred> {
    let mut classes = Equalities::default();
    let mut have: Vec<(usize, usize)> = Vec::new();
    for (a, b) in preds.iter().filter_map(bare_columns) {
        have.push((a.min(b), a.max(b)));
        classes.union(a, b);
    }
    let mut out = Vec::new();
    for class in classes.classes.iter().filter(|c| c.len() > 2) {
        for (i, &a) in class.iter().enumerate() {
            for &b in &class[i + 1..] {
                if !have.contains(&(a.min(b), a.max(b))) {
                    let eq = Some((KeySide::column(a), KeySide::column(b)));
                    out.push(Pred { expr: None, columns: vec![a, b], eq });
                }
            }
        }
    }
    out
}

/// The two columns of an equality of bare columns.
fn bare_columns(p: &Pred) -> Option<(usize, usize)> {
    match &p.eq {
        Some((KeySide { expr: Expr::Column(a), .. }, KeySide { expr: Expr::Column(b), .. })) => Some((*a, *b)),
        _ => None,
    }
}

/// Classes of columns known equal (a union of equalities applied).
#[derive(Debug, Default)]
struct Equalities {
    classes: Vec<Vec<usize>>,
}

impl Equalities {
    fn union(&mut self, a: usize, b: usize) {
        let (x, y) =
            (self.classes.iter().position(|c| c.contains(&a)), self.classes.iter().position(|c| c.contains(&b)));
        match (x, y) {
            (None, None) => self.classes.push(vec![a, b]),
            (Some(x), None) => self.classes[x].push(b),
            (None, Some(y)) => self.classes[y].push(a),
            (Some(x), Some(y)) if x != y => {
                let merged = self.classes.swap_remove(x.max(y));
                self.classes[x.min(y)].extend(merged);
            }
            _ => {}
        }
    }

    fn same(&self, a: usize, b: usize) -> bool {
        a == b || self.classes.iter().any(|c| c.contains(&a) && c.contains(&b))
    }
}

/// A relation's rows when the source gave no estimate.
const UNKNOWN_ROWS: f64 = 1000.0;
/// Distinct values of a column, as the planner guesses them without
/// statistics (an equality with a constant keeps a tenth).
const GUESSED_DISTINCT: f64 = 10.0;

/// The guessed share of rows a condition keeps.
fn guess(expr: &Expr) -> f64 {
    denorm_expr::selectivity(expr, &|_| GUESSED_DISTINCT)
}

/// How a unit ranks for the join order: whether a condition restricts it,
/// and the binary order of magnitude of its guessed rows once restricted
/// (coarse, so the order stays put while tables grow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    unrestricted: bool,
    magnitude: i32,
}

fn rank(rows: f64, restricted: bool) -> Rank {
    Rank { unrestricted: !restricted, magnitude: rows.max(1.0).log2().ceil() as i32 }
}

/// The join order's preferences. Intermediate results are what joins keep
/// and what each change travels through, so the order starts where a
/// condition leaves the fewest rows and joins restricted units early: a
/// filtered dimension first (TPC-H Q21's one nation, then its suppliers,
/// then their line items) keeps every intermediate result small, where
/// FROM order would join all line items to their suppliers first.
struct Order {
    rank: Vec<Rank>,
}

impl Order {
    /// The first unit: the restricted one with the fewest guessed rows
    /// (the first in FROM order among equals), else the first.
    fn start(&self) -> usize {
        let best = (0..self.rank.len()).min_by_key(|&u| (self.rank[u], u)).unwrap_or(0);
        if self.rank[best].unrestricted {
            0
        } else {
            best
        }
    }

    /// Whether candidate `a` (unit, joined on a unique key of its own)
    /// goes before `b`: a restricted unit first (fewest guessed rows
    /// first), then one joined on its unique key (which cannot multiply
    /// the rows joined so far), then FROM order.
    fn better(&self, a: (usize, bool), b: (usize, bool)) -> bool {
        let key = |(u, unique): (usize, bool)| {
            let r = self.rank[u];
            if r.unrestricted {
                (1, i32::from(!unique), 0, u)
            } else {
                (0, 0, r.magnitude, u)
            }
        };
        key(a) < key(b)
    }
}

/// Whether an equality whose sides read units `have` and `new` keys the
/// join of unit `next` to the `joined` ones.
fn joins(have: &[usize], new: &[usize], joined: &[bool], next: usize) -> bool {
    have.iter().all(|&u| joined[u]) && new == [next]
}

/// Whether a FROM item has a RIGHT or FULL join (one that pads its left
/// operand), parenthesized ones included.
fn pads_left(item: &ast::TableWithJoins) -> bool {
    let nested =
        |f: &TableFactor| matches!(f, TableFactor::NestedJoin { table_with_joins, .. } if pads_left(table_with_joins));
    nested(&item.relation)
        || item.joins.iter().any(|j| {
            nested(&j.relation)
                || matches!(
                    j.join_operator,
                    JoinOperator::Right(_) | JoinOperator::RightOuter(_) | JoinOperator::FullOuter(_)
                )
        })
}

/// `at[p]`: where scope position `p` is in `layout` (a layout marks a
/// computed key column [`COMPUTED`]).
fn index(layout: &[usize], arity: usize) -> Vec<usize> {
    let mut at = vec![usize::MAX; arity];
    for (i, &p) in layout.iter().enumerate() {
        if p != COMPUTED {
            at[p] = i;
        }
    }
    at
}

/// A layout entry for a column computed as a join key.
const COMPUTED: usize = usize::MAX;

/// The positions of the key expressions in `plan`'s output: a bare column
/// where it is, other expressions computed by a Map appending them.
fn key_columns(plan: Plan, layout: &mut Vec<usize>, keys: Vec<Expr>, arity: usize) -> (Plan, Vec<usize>) {
    let at = index(layout, arity);
    let width = layout.len();
    let mut computed = Vec::new();
    let mut positions = Vec::with_capacity(keys.len());
    for mut key in keys {
        match key {
            Expr::Column(p) => positions.push(at[p]),
            _ => {
                key.remap_columns(&|c| at[c]);
                positions.push(width + computed.len());
                computed.push(key);
            }
        }
    }
    if computed.is_empty() {
        return (plan, positions);
    }
    layout.extend(std::iter::repeat_n(COMPUTED, computed.len()));
    let exprs = (0..width).map(Expr::Column).chain(computed).collect();
    (Plan::Map { input: Box::new(plan), exprs }, positions)
}

/// The conditions as one, over the columns `at` gives.
fn conjoin(preds: Vec<Expr>, at: &[usize]) -> Option<Expr> {
    preds
        .into_iter()
        .map(|mut e| {
            e.remap_columns(&|c| at[c]);
            e
        })
        .reduce(|acc, e| Expr::binary(BinaryOp::And, acc, e))
}

/// The outer join kinds (inner joins have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OuterKind {
    Left,
    Right,
    Full,
}

/// One FROM item: a source table or a planned subquery.
enum Relation<'c> {
    Table(&'c TableSchema),
    Derived(Box<Derived>),
}

/// Adds `relation` to the scope; returns its plan. A ranked subquery is
/// noted with its row-number column and position in `ranked`.
fn push<'c>(
    scope: &mut Scope<'c>,
    relation: Relation<'c>,
    name: String,
    outer: bool,
    ranked: &mut Vec<(usize, usize, Option<Location>)>,
) -> Plan {
    match relation {
        Relation::Table(table) => {
            scope.push(name, table, outer);
            get(table)
        }
        Relation::Derived(d) => {
            let d = *d;
            if let Some((column, at)) = d.rank {
                ranked.push((scope.relations.len(), column, at));
            }
            scope.push_derived(name, d.schema, d.reads, outer);
            scope.set_collations(d.collations);
            scope.set_narrow(d.narrow);
            scope.set_no_affinity(d.no_affinity);
            d.plan
        }
    }
}

fn get(table: &TableSchema) -> Plan {
    Plan::Get { table: table.name.clone(), arity: table.columns.len() }
}

fn factor_start(factor: &TableFactor) -> Option<sqlparser::tokenizer::Location> {
    match factor {
        TableFactor::Table { name, .. } => object_name_start(name),
        TableFactor::Derived { subquery, .. } => match &*subquery.body {
            ast::SetExpr::Select(s) => Some(s.select_token.0.span.start),
            _ => None,
        },
        _ => None,
    }
}

/// A table reference looked up in the catalog, or a subquery planned.
fn relation<'c>(
    factor: &TableFactor,
    cx: &Context<'_, 'c>,
    scope: &Scope<'_>,
    fallback: Option<Location>,
) -> Result<(Relation<'c>, String), PlanError> {
    let catalog = cx.catalog;
    let (name, alias) = match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            with_hints,
            version: None,
            with_ordinality: false,
            partitions,
            json_path: None,
            sample: None,
            index_hints,
        } if with_hints.is_empty() && partitions.is_empty() && index_hints.is_empty() => (name, alias),
        TableFactor::Derived { lateral, subquery, alias, sample } => {
            return derived_relation(*lateral, subquery, alias.as_ref(), sample.is_some(), cx, scope, fallback)
        }
        other => {
            let at = factor_start(other).and_then(location).or(fallback);
            return Err(PlanError::new("this FROM item is not supported; only table names and subqueries are", at));
        }
    };
    let at = object_name_start(name).and_then(location).or(fallback);
    let [ast::ObjectNamePart::Identifier(table_name)] = name.0.as_slice() else {
        return Err(PlanError::new(format!("qualified table name {name} is not supported"), at)
            .hint("name the table without its schema"));
    };
    if let Some(cte) = cx.ctes.iter().rev().find(|c| c.name.eq_ignore_ascii_case(&table_name.value)) {
        // A WITH query shadows a table of the same name.
        let (derived, visible) = crate::query::cte_relation(cte, alias.as_ref(), cx.dialect)?;
        check_unique_name(&visible, at, scope)?;
        return Ok((Relation::Derived(Box::new(derived)), visible));
    }
    let table = catalog.get(&table_name.value).ok_or_else(|| unknown_table(&table_name.value, catalog, at))?;
    if let Some(alias) = alias {
        if !alias.columns.is_empty() {
            return Err(PlanError::new("column aliases in FROM are not supported", location(alias.name.span.start)));
        }
    }
    let (visible, visible_at) = match alias {
        Some(a) => (a.name.value.clone(), location(a.name.span.start)),
        None => (table_name.value.clone(), at),
    };
    check_unique_name(&visible, visible_at, scope)?;
    Ok((Relation::Table(table), visible.to_ascii_lowercase()))
}

fn check_unique_name(visible: &str, at: Option<Location>, scope: &Scope<'_>) -> Result<(), PlanError> {
    if scope.relation(visible).is_some() {
        return Err(PlanError::new(format!("table name \"{visible}\" specified more than once"), at)
            .hint("give each occurrence its own alias"));
    }
    Ok(())
}

/// `(SELECT …) AS alias`.
fn derived_relation<'c>(
    lateral: bool,
    subquery: &ast::Query,
    alias: Option<&ast::TableAlias>,
    sampled: bool,
    cx: &Context<'_, 'c>,
    scope: &Scope<'_>,
    fallback: Option<Location>,
) -> Result<(Relation<'c>, String), PlanError> {
    let at = subquery_location(subquery).or(fallback);
    if lateral {
        return Err(PlanError::new("LATERAL subqueries are not supported", at)
            .hint("a subquery in FROM cannot refer to the tables before it; join its result instead"));
    }
    if sampled {
        return Err(PlanError::new("TABLESAMPLE is not supported", at));
    }
    // SQLite names a subquery written without an alias itself (its columns
    // are read unqualified); PostgreSQL (before 16) requires the alias.
    let unnamed;
    let alias = match alias {
        Some(alias) => alias,
        None if cx.dialect == Dialect::Sqlite => {
            let name = format!("(subquery-{})", scope.relations.len() + 1);
            unnamed = ast::TableAlias { name: ast::Ident::new(name), columns: Vec::new(), explicit: false, at: None };
            &unnamed
        }
        None => {
            return Err(PlanError::new("a subquery in FROM must have an alias", at).hint("write (SELECT …) AS name"))
        }
    };
    let alias_at = location(alias.name.span.start).or(at);
    check_unique_name(&alias.name.value, alias_at, scope)?;
    let mut derived = plan_derived(subquery, &alias.name.value, cx, at)?;
    crate::query::rename_columns(&mut derived.schema, &alias.columns, alias_at, "table", cx.dialect)?;
    Ok((Relation::Derived(Box::new(derived)), alias.name.value.to_ascii_lowercase()))
}

fn unknown_table(name: &str, catalog: &Catalog, at: Option<Location>) -> PlanError {
    let known: Vec<&str> = catalog.tables().map(|t| t.name.as_str()).collect();
    let hint = if known.is_empty() {
        "the source database has no tables".to_string()
    } else {
        format!("known tables: {}", known.join(", "))
    };
    PlanError::new(format!("table \"{name}\" does not exist"), at).hint(hint)
}

/// The kind of a join (`None`: inner) and its condition.
fn join_kind(
    op: &JoinOperator,
    dialect: Dialect,
    at: Option<Location>,
) -> Result<(Option<OuterKind>, &JoinConstraint), PlanError> {
    let refuse =
        |what: &str, hint: &str| Err(PlanError::new(format!("{what} is not supported"), at).hint(hint.to_string()));
    let (kind, constraint) = match op {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => (None, c),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (Some(OuterKind::Left), c),
        JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (Some(OuterKind::Right), c),
        JoinOperator::FullOuter(c) => (Some(OuterKind::Full), c),
        JoinOperator::CrossJoin(JoinConstraint::None) => return Ok((None, &JoinConstraint::None)),
        JoinOperator::CrossJoin(_) => return refuse("CROSS JOIN with a join condition", "write JOIN … ON"),
        _ => return refuse("this kind of join", "use JOIN, LEFT JOIN, RIGHT JOIN, FULL JOIN or CROSS JOIN"),
    };
    if let JoinConstraint::None = constraint {
        // SQLite joins every pair (an outer join keeps a side's rows when
        // the other side is empty); PostgreSQL requires ON for JOIN.
        if dialect == Dialect::Postgres {
            return refuse("JOIN without ON", "write JOIN … ON a.col = b.col, or CROSS JOIN for every pair of rows");
        }
    }
    Ok((kind, constraint))
}

/// The conjuncts of `a AND (b AND c)`, left to right, without recursion.
pub(crate) fn conjuncts(on: &ast::Expr) -> Vec<&ast::Expr> {
    let mut out = Vec::new();
    let mut stack = vec![on];
    while let Some(e) = stack.pop() {
        match e {
            ast::Expr::Nested(inner) => stack.push(inner),
            ast::Expr::BinaryOp { left, op: ast::BinaryOperator::And, right } => {
                stack.push(right);
                stack.push(left);
            }
            _ => out.push(e),
        }
    }
    out
}

fn column_idents(e: &ast::Expr) -> Option<&[ast::Ident]> {
    match e {
        ast::Expr::Identifier(i) => Some(std::slice::from_ref(i)),
        ast::Expr::CompoundIdentifier(v) => Some(v),
        ast::Expr::Nested(inner) => column_idents(inner),
        _ => None,
    }
}

/// `l = r` between two columns of the same type (a hash join would not
/// match 1 with 1.0, so mixed numeric equalities stay residual): their
/// positions.
fn equi_pair(e: &ast::Expr, scope: &Scope<'_>) -> Result<Option<(usize, usize)>, PlanError> {
    let ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } = strip(e) else { return Ok(None) };
    let (Some(l), Some(r)) = (column_idents(left), column_idents(right)) else { return Ok(None) };
    let (l, r) = (scope.resolve(l)?, scope.resolve(r)?);
    // A FULL JOIN … USING column is a COALESCE, not a column.
    if l.merged.is_some() || r.merged.is_some() {
        return Ok(None);
    }
    if l.ty != r.ty || l.ty == ScalarType::Null || l.position == r.position {
        return Ok(None);
    }
    // Text under a collation other than BINARY matches by its key, not its bytes.
    let collation = l.collation.or(r.collation).unwrap_or_default();
    if l.ty == ScalarType::Text && collation != denorm_types::Collation::Binary {
        return Ok(None);
    }
    Ok(Some((l.position, r.position)))
}

fn strip(mut e: &ast::Expr) -> &ast::Expr {
    while let ast::Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// The branches of `a OR (b OR c)`, left to right, without recursion.
fn disjuncts(e: &ast::Expr) -> Vec<&ast::Expr> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match e {
            ast::Expr::Nested(inner) => stack.push(inner),
            ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Or, right } => {
                stack.push(right);
                stack.push(left);
            }
            _ => out.push(e),
        }
    }
    out
}
