//! Name resolution: the relations of a FROM clause laid out side by side in
//! one row, and the source columns a view reads.
//!
//! ```text
//!  FROM posts p JOIN users u ON …     row: [p.id, p.author_id, p.title | u.id, u.name]
//!                                          offset 0                    offset 3
//! ```

use std::cell::RefCell;

use denorm_types::{ScalarType, TableSchema};
use sqlparser::ast::Ident;

use crate::source::location;
use crate::{PlanError, TableDependency};

/// One table of the FROM clause.
#[derive(Debug)]
pub(crate) struct Relation<'c> {
    /// The alias, or the table name when there is none (lower-cased).
    pub name: String,
    pub table: &'c TableSchema,
    /// Position of the table's first column in the joined row.
    pub offset: usize,
    /// True for the right side of a LEFT JOIN: every column may be NULL.
    pub outer: bool,
}

/// A column resolved to its position in the joined row.
#[derive(Debug, Clone)]
pub(crate) struct ColumnRef {
    pub position: usize,
    pub ty: ScalarType,
    pub nullable: bool,
    /// The column's name as declared in the source schema.
    pub name: String,
}

/// The relations visible to an expression and the columns read so far.
#[derive(Debug, Default)]
pub(crate) struct Scope<'c> {
    pub relations: Vec<Relation<'c>>,
    /// `used[r][c]`: column `c` of relation `r` is read by the view.
    used: RefCell<Vec<Vec<bool>>>,
}

impl<'c> Scope<'c> {
    pub fn arity(&self) -> usize {
        self.relations.iter().map(|r| r.table.columns.len()).sum()
    }

    /// Adds a relation to the right of the row.
    pub fn push(&mut self, name: String, table: &'c TableSchema, outer: bool) {
        let offset = self.arity();
        self.used.borrow_mut().push(vec![false; table.columns.len()]);
        self.relations.push(Relation { name, table, offset, outer });
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

    fn resolve_unqualified(&self, column: &Ident) -> Result<ColumnRef, PlanError> {
        let at = location(column.span.start);
        let matches: Vec<(usize, usize)> = self
            .relations
            .iter()
            .enumerate()
            .filter_map(|(r, rel)| rel.table.column_index(&column.value).map(|c| (r, c)))
            .collect();
        match matches.as_slice() {
            [(r, c)] => Ok(self.column(*r, *c)),
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
            PlanError::new(format!("missing FROM-clause entry for table \"{}\"", relation.value), location(relation.span.start))
        })?;
        let c = self.relations[r].table.column_index(&column.value).ok_or_else(|| {
            PlanError::new(format!("column {}.{} does not exist", relation.value, column.value), location(relation.span.start))
        })?;
        Ok(self.column(r, c))
    }

    /// The source columns read, one entry per table (a table joined twice
    /// appears once), tables in FROM order, columns in schema order.
    pub fn dependencies(&self) -> Vec<TableDependency> {
        let used = self.used.borrow();
        let mut out: Vec<(&TableSchema, Vec<bool>)> = Vec::new();
        for (rel, cols) in self.relations.iter().zip(used.iter()) {
            match out.iter_mut().find(|(t, _)| t.name.eq_ignore_ascii_case(&rel.table.name)) {
                Some((_, seen)) => seen.iter_mut().zip(cols).for_each(|(s, c)| *s |= c),
                None => out.push((rel.table, cols.clone())),
            }
        }
        out.into_iter()
            .map(|(table, cols)| TableDependency {
                table: table.name.clone(),
                columns: table.columns.iter().zip(cols).filter(|(_, u)| *u).map(|(c, _)| c.name.clone()).collect(),
            })
            .collect()
    }
}
