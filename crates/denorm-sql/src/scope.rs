//! Name resolution: the relations of a FROM clause laid out side by side in
//! one row, and the source columns a view reads.
//!
//! ```text
//!  FROM posts p JOIN users u ON …     row: [p.id, p.author_id, p.title | u.id, u.name]
//!                                          offset 0                    offset 3
//! ```
//!
//! A derived table (`FROM (SELECT …) AS ranked`) is a relation like a table:
//! its columns are the subquery's output columns, and it reads every source
//! column the subquery reads, whichever of its columns the outer query uses.

use std::borrow::Cow;
use std::cell::RefCell;

use denorm_types::{Catalog, Collation, ScalarType, TableSchema};

use crate::types::{unify, Typed};
use crate::Location;
use denorm_expr::Expr;
use sqlparser::ast::Ident;

use crate::source::location;
use crate::{PlanError, TableDependency};

/// One table of the FROM clause.
#[derive(Debug)]
pub(crate) struct Relation<'c> {
    /// The alias, or the table name when there is none (lower-cased).
    pub name: String,
    /// The source table, or the schema synthesized for a derived table
    /// (named by its alias, keyed by the subquery's proven key).
    pub table: Cow<'c, TableSchema>,
    /// For a derived table: the source columns its subquery reads.
    pub derived: Option<Vec<TableDependency>>,
    /// Position of the table's first column in the joined row.
    pub offset: usize,
    /// True for the right side of a LEFT JOIN: every column may be NULL.
    pub outer: bool,
    /// Each column's collation (SQLite: the declared one of a source
    /// column, the output collation of a derived table's column).
    pub collations: Vec<Option<Collation>>,
    /// Which columns are PostgreSQL `smallint`/`integer` (see
    /// [`crate::types::Typed::narrow`]).
    pub narrow: Vec<bool>,
    /// Which columns have no SQLite affinity (a derived table's computed
    /// columns; see [`crate::types::Typed::no_affinity`]).
    pub no_affinity: Vec<bool>,
}

/// A column resolved to its position in the joined row.
#[derive(Debug, Clone)]
pub(crate) struct ColumnRef {
    pub position: usize,
    pub ty: ScalarType,
    pub nullable: bool,
    /// The column's name as declared in the source schema.
    pub name: String,
    pub collation: Option<Collation>,
    /// An unqualified name of a FULL JOIN … USING pair: its value,
    /// `COALESCE(left, right, …)` (see [`Scope::full_value`]).
    pub merged: Option<Typed>,
    /// A PostgreSQL `smallint`/`integer` (see [`crate::types::Typed::narrow`]).
    pub narrow: bool,
    /// No SQLite affinity (see [`crate::types::Typed::no_affinity`]).
    pub no_affinity: bool,
}

/// Two columns merged into one by `JOIN … USING (c)` or `NATURAL JOIN`:
/// `(relation, column)` of the left and the right one. An unqualified `c`
/// and `*` see one column: the left one, or the right one when
/// `value_right` (a RIGHT JOIN keeps every right row: there the left
/// column is NULL where the right one is not); qualified names see both.
/// A FULL JOIN's pair (`full`) is seen as the left column, whose value is
/// `COALESCE(left, right)` (see [`Scope::full_value`]), as PostgreSQL and
/// SQLite define it; a later USING over it reads that value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Merged {
    pub left: (usize, usize),
    pub right: (usize, usize),
    pub value_right: bool,
    pub full: bool,
    /// PostgreSQL: a FULL pair of different types merges as their common
    /// type, each side cast to it (SQLite keeps each value as it is).
    pub cast: bool,
    /// PostgreSQL, not FULL: the pair's common type (and whether it is a
    /// `smallint`/`integer`) when the surviving column's differs; an
    /// unqualified name reads that column cast to it (`l.c` integer USING
    /// `r.c` numeric in a LEFT JOIN reads `l.c::numeric`).
    pub to: Option<(ScalarType, bool)>,
}

/// The relations visible to an expression and the columns read so far.
#[derive(Debug, Default)]
pub(crate) struct Scope<'c> {
    pub relations: Vec<Relation<'c>>,
    /// Columns merged by USING / NATURAL joins.
    pub merged: Vec<Merged>,
    /// What `*` shows, in order: (relation, column, name); a merged pair
    /// shows once, where the dialect puts it (see [`crate::from`]). Empty:
    /// every column in FROM order.
    pub star: Vec<(usize, usize, String)>,
    /// `used[r][c]`: column `c` of relation `r` is read by the view.
    used: RefCell<Vec<Vec<bool>>>,
    /// The catalog, for the source's names of unsupported column types.
    pub catalog: Option<&'c Catalog>,
    /// Source columns read by subqueries in this query's expressions
    /// (`EXISTS (…)`, `IN (SELECT …)`, scalar subqueries; see
    /// [`crate::subquery`]).
    pub subquery_reads: RefCell<Vec<TableDependency>>,
}

impl<'c> Scope<'c> {
    pub fn arity(&self) -> usize {
        self.relations.iter().map(|r| r.table.columns.len()).sum()
    }

    /// Adds a relation to the right of the row.
    pub fn push(&mut self, name: String, table: &'c TableSchema, outer: bool) {
        self.push_relation(name, Cow::Borrowed(table), None, outer);
    }

    /// Adds a derived table to the right of the row.
    pub fn push_derived(&mut self, name: String, table: TableSchema, reads: Vec<TableDependency>, outer: bool) {
        self.push_relation(name, Cow::Owned(table), Some(reads), outer);
    }

    fn push_relation(
        &mut self,
        name: String,
        table: Cow<'c, TableSchema>,
        derived: Option<Vec<TableDependency>>,
        outer: bool,
    ) {
        let offset = self.arity();
        self.used.borrow_mut().push(vec![false; table.columns.len()]);
        let collations = match (&derived, self.catalog) {
            (None, Some(catalog)) => {
                table.columns.iter().map(|c| Some(catalog.collation(&table.name, &c.name))).collect()
            }
            _ => vec![None; table.columns.len()],
        };
        let narrow = match (&derived, self.catalog) {
            // A jsonb column is a "narrow" JSON value (see `Typed::narrow`).
            (None, Some(catalog)) => table
                .columns
                .iter()
                .map(|c| catalog.narrow_int(&table.name, &c.name) || catalog.jsonb(&table.name, &c.name))
                .collect(),
            _ => vec![false; table.columns.len()],
        };
        let no_affinity = vec![false; table.columns.len()];
        self.relations.push(Relation { name, table, derived, offset, outer, collations, narrow, no_affinity });
    }

    /// Sets the collations of the last relation's columns (a derived table's
    /// output collations, or a copy of another scope's relation).
    pub fn set_collations(&mut self, collations: Vec<Option<Collation>>) {
        if let Some(r) = self.relations.last_mut() {
            if collations.len() == r.collations.len() {
                r.collations = collations;
            }
        }
    }

    /// Marks which of the last relation's columns are PostgreSQL
    /// `smallint`/`integer` (a derived table's outputs, or a copy of another
    /// scope's relation).
    pub fn set_narrow(&mut self, narrow: Vec<bool>) {
        if let Some(r) = self.relations.last_mut() {
            if narrow.len() == r.narrow.len() {
                r.narrow = narrow;
            }
        }
    }

    /// Marks which of the last relation's columns have no SQLite affinity
    /// (a derived table's computed columns).
    pub fn set_no_affinity(&mut self, no_affinity: Vec<bool>) {
        if let Some(r) = self.relations.last_mut() {
            if no_affinity.len() == r.no_affinity.len() {
                r.no_affinity = no_affinity;
            }
        }
    }

    pub fn relation(&self, name: &str) -> Option<usize> {
        self.relations.iter().position(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// Column `column` of relation `relation`, marked as read.
    pub fn column(&self, relation: usize, column: usize) -> ColumnRef {
        let r = &self.relations[relation];
        if let Some(u) = self.used.borrow_mut().get_mut(relation).and_then(|cols| cols.get_mut(column)) {
            *u = true;
        }
        let schema = &r.table.columns[column];
        ColumnRef {
            position: r.offset + column,
            ty: schema.ty,
            nullable: schema.nullable || r.outer,
            name: schema.name.clone(),
            collation: r.collations.get(column).copied().flatten(),
            merged: None,
            narrow: r.narrow.get(column).copied().unwrap_or(false),
            no_affinity: r.no_affinity.get(column).copied().unwrap_or(false),
        }
    }

    /// The value an unqualified name sees when `(relation, column)` is the
    /// left column of FULL JOIN … USING pairs: `COALESCE` of it and its
    /// partners (marked as read) — several when the merged column was
    /// merged again (`a FULL JOIN b USING (k) FULL JOIN c USING (k)`), a
    /// partner's own partners after it. Its type is the columns' common
    /// type (PostgreSQL casts each to it); it carries the leftmost column's
    /// collation in SQLite (3.54 builds the COALESCE with a deferred
    /// affinity, whose collation is its first argument's) and, in
    /// PostgreSQL, the one all its columns share. `None` for any other
    /// column.
    pub fn full_value(&self, relation: usize, column: usize) -> Option<Typed> {
        let mut chain = vec![(relation, column)];
        self.full_chain((relation, column), &mut chain);
        if chain.len() == 1 {
            return None;
        }
        let cast = self.merged.iter().any(|m| m.full && m.cast);
        let parts: Vec<ColumnRef> = chain.iter().map(|&(r, c)| self.column(r, c)).collect();
        let ty = parts.iter().try_fold(ScalarType::Null, |t, p| unify(t, p.ty)).unwrap_or(parts[0].ty);
        let value = |p: &ColumnRef| match cast && p.ty != ty && p.ty != ScalarType::Null {
            true => Expr::Cast { expr: Box::new(Expr::Column(p.position)), to: ty },
            false => Expr::Column(p.position),
        };
        let nullable = parts.iter().all(|p| p.nullable);
        let narrow = parts.iter().all(|p| p.narrow);
        let shared = parts.iter().all(|p| p.collation == parts[0].collation);
        let collation = if cast && !shared { None } else { parts[0].collation };
        let coalesce = Expr::Coalesce(parts.iter().map(value).collect());
        Some(Typed::new(coalesce, ty, nullable).collated(collation, false).narrowed(narrow))
    }

    /// The FULL JOIN … USING partners of `at`, each followed by its own.
    fn full_chain(&self, at: (usize, usize), out: &mut Vec<(usize, usize)>) {
        for m in self.merged.iter().filter(|m| m.full && m.left == at) {
            out.push(m.right);
            self.full_chain(m.right, out);
        }
    }

    /// Column `column` of `relation` as an unqualified name sees it: a
    /// FULL JOIN … USING pair's merged value (see [`Scope::full_value`]).
    pub fn merged_column(&self, relation: usize, column: usize) -> ColumnRef {
        let c = self.column(relation, column);
        let kept = |m: &Merged| if m.value_right { m.right } else { m.left };
        let to = || self.merged.iter().rev().find(|m| kept(m) == (relation, column)).and_then(|m| m.to);
        match self.full_value(relation, column) {
            Some(t) => ColumnRef {
                ty: t.ty,
                nullable: t.nullable,
                collation: t.collation,
                narrow: t.narrow,
                merged: Some(t),
                ..c
            },
            None => match to() {
                Some((ty, narrow)) => {
                    let expr = match c.ty == ty {
                        true => Expr::Column(c.position),
                        false => Expr::Cast { expr: Box::new(Expr::Column(c.position)), to: ty },
                    };
                    let t = Typed::new(expr, ty, c.nullable).narrowed(narrow);
                    ColumnRef { ty, narrow: t.narrow, merged: Some(t), ..c }
                }
                None => c,
            },
        }
    }

    /// Resolves `col` or `rel.col`.
    pub fn resolve(&self, idents: &[Ident]) -> Result<ColumnRef, PlanError> {
        match idents {
            [column] => self.resolve_unqualified(column),
            [relation, column] => self.resolve_qualified(relation, column),
            _ => {
                let at = idents.first().and_then(|i| location(i.span.start));
                let name: Vec<&str> = idents.iter().map(|i| i.value.as_str()).collect();
                Err(PlanError::new(format!("improper qualified name (too many dotted names): {}", name.join(".")), at))
            }
        }
    }

    /// Whether an unqualified name does not see column `column` of
    /// `relation` (the hidden half of a USING / NATURAL pair).
    pub fn hidden(&self, relation: usize, column: usize) -> bool {
        self.merged.iter().any(|m| (if m.value_right { m.left } else { m.right }) == (relation, column))
    }

    fn resolve_unqualified(&self, column: &Ident) -> Result<ColumnRef, PlanError> {
        let at = location(column.span.start);
        let matches: Vec<(usize, usize)> = self
            .relations
            .iter()
            .enumerate()
            .filter_map(|(r, rel)| rel.table.column_index(&column.value).map(|c| (r, c)))
            .filter(|&(r, c)| !self.hidden(r, c))
            .collect();
        match matches.as_slice() {
            [(r, c)] => {
                self.check_supported(*r, *c, at)?;
                Ok(self.merged_column(*r, *c))
            }
            [] => Err(PlanError::new(format!("column \"{}\" does not exist", column.value), at)),
            _ => {
                let candidates: Vec<String> =
                    matches.iter().map(|(r, _)| format!("{}.{}", self.relations[*r].name, column.value)).collect();
                Err(PlanError::new(format!("column reference \"{}\" is ambiguous", column.value), at)
                    .detail(format!("it could refer to {}", candidates.join(" or ")))
                    .hint("qualify the column with its table name or alias"))
            }
        }
    }

    fn resolve_qualified(&self, relation: &Ident, column: &Ident) -> Result<ColumnRef, PlanError> {
        let r = self.relation(&relation.value).ok_or_else(|| {
            PlanError::new(
                format!("missing FROM-clause entry for table \"{}\"", relation.value),
                location(relation.span.start),
            )
        })?;
        let c = self.relations[r].table.column_index(&column.value).ok_or_else(|| {
            PlanError::new(
                format!("column {}.{} does not exist", relation.value, column.value),
                location(relation.span.start),
            )
        })?;
        self.check_supported(r, c, location(column.span.start))?;
        Ok(self.column(r, c))
    }

    /// Refuses a column of a type denorm has no value for (the catalog keeps
    /// such columns so that only views reading them fail).
    pub fn check_supported(&self, relation: usize, column: usize, at: Option<Location>) -> Result<(), PlanError> {
        let r = &self.relations[relation];
        let schema = &r.table.columns[column];
        if schema.ty != ScalarType::Unsupported {
            return Ok(());
        }
        let type_name = self
            .catalog
            .and_then(|c| c.unsupported_type(&r.table.name, &schema.name))
            .unwrap_or("a type denorm does not support");
        Err(PlanError::new(
            format!("column {}.{} has type {type_name}, which denorm cannot read", r.table.name, schema.name),
            at,
        )
        .detail(
            "denorm reads boolean, smallint, integer, bigint, real, double precision, numeric, text, varchar, \
             character(n), name, date, timestamp, timestamptz, interval, uuid, json and jsonb",
        )
        .hint(format!(
            "leave {t}.{c} out of the view (name the columns you need instead of *); a CAST in the view cannot \
             help because denorm never receives the value: to use it, keep a copy in a column of a supported type \
             (e.g. text or jsonb) written by the application or a trigger",
            t = r.table.name,
            c = schema.name
        )))
    }

    /// The source columns read, one entry per table (a table joined twice
    /// appears once), tables in FROM order (a derived table's where it
    /// stands), columns in schema order.
    pub fn dependencies(&self, catalog: &Catalog) -> Vec<TableDependency> {
        let used = self.used.borrow();
        let mut out: Vec<TableDependency> = Vec::new();
        let mut add = |table: &str, columns: &mut dyn Iterator<Item = &String>| {
            let at = match out.iter().position(|d| d.table.eq_ignore_ascii_case(table)) {
                Some(at) => at,
                None => {
                    out.push(TableDependency { table: table.to_string(), columns: Vec::new() });
                    out.len() - 1
                }
            };
            for c in columns {
                if !out[at].columns.contains(c) {
                    out[at].columns.push(c.clone());
                }
            }
        };
        for (rel, cols) in self.relations.iter().zip(used.iter()) {
            match &rel.derived {
                Some(reads) => reads.iter().for_each(|d| add(&d.table, &mut d.columns.iter())),
                None => {
                    let read = rel.table.columns.iter().zip(cols).filter(|(_, u)| **u).map(|(c, _)| &c.name);
                    add(&rel.table.name, &mut read.into_iter())
                }
            }
        }
        for d in self.subquery_reads.borrow().iter() {
            add(&d.table, &mut d.columns.iter());
        }
        for d in &mut out {
            if let Some(schema) = catalog.get(&d.table) {
                d.columns =
                    schema.columns.iter().filter(|c| d.columns.contains(&c.name)).map(|c| c.name.clone()).collect();
            }
        }
        out
    }
}
