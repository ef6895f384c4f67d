//! One committed transaction of the replication stream as a
//! [`ChangeBatch`]: pure assembly of decoded pgoutput messages into
//! full-width rows and diffs. A change that cannot be decoded is reported
//! in [`ChangeBatch::undecodable`], never half-applied or dropped silently.

use denorm_types::{Datum, Diff, Position, Row, RowPacker};

use super::pgoutput::{Column, OldTuple, Relation, Tuple};
use super::types::{copy_field, PgType, ValueError};

/// The changes of one or more committed transactions, whole and in commit
/// order (see [`PgCapture::poll`](super::PgCapture::poll)).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch {
    /// The end of the last transaction's commit record: the position to
    /// [`release`](super::PgCapture::release) once the batch is published.
    pub position: Position,
    /// The server's WAL end as last reported by the stream when the batch
    /// was complete (at or past `position`).
    pub head: Position,
    /// Commit time of the batch's first (oldest) transaction, Unix seconds
    /// (microsecond resolution).
    pub committed_at: f64,
    /// `(table, commit time)` for every table each transaction changed or
    /// truncated: what freshness is measured from.
    pub commits: Vec<(String, f64)>,
    /// How many transactions the batch holds.
    pub transactions: usize,
    /// Tables emptied by TRUNCATE in this transaction, sorted by name:
    /// apply "retract every row of the table" first, then the table's
    /// changes in [`tables`](Self::tables), which are only those made after
    /// the (last) truncation.
    pub truncated: Vec<String>,
    /// Per captured table that changed (sorted by name): full-width rows,
    /// -1 for an old row, +1 for a new one (an update is both).
    pub tables: Vec<(String, Vec<(Row, Diff)>)>,
    /// Changes that could not be decoded; none of them is in `tables`.
    pub undecodable: Vec<Undecodable>,
}

/// A change that could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    /// The LSN of the change's WAL record.
    pub position: Position,
    pub table: String,
    /// The row's key as text (`id=4`, see [`Table::key_text`]).
    pub key: String,
    pub reason: ValueError,
}

/// A captured table as the stream decodes it.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// The catalog's name.
    pub(crate) name: String,
    /// Column names and types as planned: a Relation message must match.
    pub(crate) columns: Vec<String>,
    pub(crate) types: Vec<PgType>,
    /// Per column: whether a view reads it (the others are NULL in rows).
    pub(crate) read: Vec<bool>,
    /// Every read column is part of the replica identity key, so the key
    /// tuple of an update or delete holds everything a retraction needs.
    pub(crate) covered_by_key: bool,
    /// The columns naming a row in a dead-letter entry: the replica
    /// identity key's, else the primary key's (empty: the whole row).
    pub(crate) key: Vec<usize>,
}

impl Table {
    /// Whether a Relation message describes the table as planned: same
    /// column names and types in the same order, and a replica identity
    /// that still supplies the old rows (REPLICA IDENTITY FULL, or a key
    /// covering every read column).
    pub(crate) fn matches(&self, relation: &Relation) -> bool {
        let same_columns = relation.columns.len() == self.columns.len()
            && relation
                .columns
                .iter()
                .zip(&self.columns)
                .zip(&self.types)
                .all(|((column, name), ty)| column.name == *name && PgType::from_oid(column.type_id) == *ty);
        let identity_ok = relation.replica_identity == b'f'
            || (self.covered_by_key
                && relation.columns.iter().zip(&self.read).all(|(column, &read)| !read || column.key));
        same_columns && identity_ok
    }

    /// A value error of column `i`, naming the column.
    fn in_column(&self, i: usize, e: ValueError) -> ValueError {
        ValueError::Column { column: self.columns[i].clone(), source: Box::new(e) }
    }

    /// The key of the row in `tuple` as text, as SQLite's dead letters
    /// name rows: `id=4` (`name=value` per key column, joined by `,`,
    /// values as SQL literals, a value that does not decode as its text),
    /// or every column's value joined by `,` when the table has no key or
    /// a key column is missing from the tuple.
    pub(crate) fn key_text(&self, tuple: &Tuple<'_>) -> String {
        let value = |i: usize| -> Option<String> {
            Some(match tuple.0.get(i)? {
                Column::Null => "NULL".to_string(),
                Column::Text(text) => match self.types[i].decode(text) {
                    Ok(datum) => datum.to_string(),
                    Err(_) => String::from_utf8_lossy(text).into_owned(),
                },
                Column::Binary(_) | Column::Unchanged => return None,
            })
        };
        let key: Option<Vec<String>> =
            self.key.iter().map(|&i| value(i).map(|v| format!("{}={v}", self.columns[i]))).collect();
        match key {
            Some(parts) if !parts.is_empty() => parts.join(","),
            _ => (0..tuple.0.len()).map(|i| value(i).unwrap_or_else(|| "?".into())).collect::<Vec<_>>().join(","),
        }
    }

    /// Decodes `tuple` into a full-width row; a 'u' (unchanged TOAST) column
    /// takes its value from `old`.
    pub(crate) fn decode_row(
        &self,
        tuple: &Tuple<'_>,
        old: Option<&Tuple<'_>>,
        packer: &mut RowPacker,
    ) -> Result<Row, ValueError> {
        if tuple.0.len() != self.columns.len() {
            return Err(ValueError::Width { expected: self.columns.len(), actual: tuple.0.len() });
        }
        for (i, column) in tuple.0.iter().enumerate() {
            if !self.read[i] {
                packer.push(&Datum::Null);
                continue;
            }
            let column = match column {
                Column::Unchanged => match old.and_then(|o| o.0.get(i)) {
                    Some(Column::Unchanged) | None => Err(ValueError::UnchangedWithoutOldRow),
                    Some(c) => Ok(*c),
                },
                c => Ok(*c),
            };
            let datum = column.and_then(|column| match column {
                Column::Null => Ok(Datum::Null),
                Column::Text(text) => self.types[i].decode(text).map_err(|e| self.in_column(i, e)),
                Column::Binary(_) => Err(ValueError::Binary),
                Column::Unchanged => Err(ValueError::UnchangedWithoutOldRow),
            });
            match datum {
                Ok(datum) => packer.push(&datum),
                Err(e) => {
                    packer.finish();
                    return Err(e);
                }
            }
        }
        Ok(packer.finish())
    }

    /// Decodes one line of `COPY (SELECT <read columns>) TO STDOUT` into a
    /// full-width row, exactly as [`decode_row`](Self::decode_row) decodes
    /// the same row from the stream.
    pub(crate) fn decode_copy_line(
        &self,
        line: &[u8],
        scratch: &mut Vec<u8>,
        packer: &mut RowPacker,
    ) -> Result<Row, ValueError> {
        let wanted = self.read.iter().filter(|&&r| r).count().max(1);
        let actual = line.split(|&b| b == b'\t').count();
        if actual != wanted {
            return Err(ValueError::Width { expected: wanted, actual });
        }
        let mut fields = line.split(|&b| b == b'\t');
        for (i, &read) in self.read.iter().enumerate() {
            if !read {
                packer.push(&Datum::Null);
                continue;
            }
            let field = fields.next().expect("one field per read column");
            let datum = copy_field(field, scratch).and_then(|value| match value {
                None => Ok(Datum::Null),
                Some(text) => self.types[i].decode(text).map_err(|e| self.in_column(i, e)),
            });
            match datum {
                Ok(datum) => packer.push(&datum),
                Err(e) => {
                    packer.finish();
                    return Err(e);
                }
            }
        }
        Ok(packer.finish())
    }
}

/// Gathers the changes of the transaction being received.
#[derive(Debug)]
pub(crate) struct TransactionBuilder {
    committed_at: i64,
    changes: Vec<Vec<(Row, Diff)>>,
    truncated: Vec<bool>,
    undecodable: Vec<Undecodable>,
    packer: RowPacker,
}

impl TransactionBuilder {
    pub(crate) fn new(tables: usize, committed_at: i64) -> Self {
        TransactionBuilder {
            committed_at,
            changes: vec![Vec::new(); tables],
            truncated: vec![false; tables],
            undecodable: Vec::new(),
            packer: RowPacker::new(),
        }
    }

    pub(crate) fn insert(&mut self, tables: &[Table], table: usize, lsn: u64, new: &Tuple<'_>) {
        let row = tables[table].decode_row(new, None, &mut self.packer);
        self.push(tables, table, lsn, new, row.map(|new| vec![(new, 1)]));
    }

    /// `old` is absent when the table's replica identity is its key, the
    /// key did not change and is not TOASTed: then the read columns (all in
    /// the key) did not change either, and the update changes no row.
    pub(crate) fn update(
        &mut self,
        tables: &[Table],
        table: usize,
        lsn: u64,
        old: Option<&OldTuple<'_>>,
        new: &Tuple<'_>,
    ) {
        let t = &tables[table];
        let changes = match old {
            None if t.covered_by_key => return,
            None => Err(ValueError::UnchangedWithoutOldRow),
            Some(old) => t.decode_row(old.tuple(), None, &mut self.packer).and_then(|old_row| {
                let fallback = matches!(old, OldTuple::Full(_)).then(|| old.tuple());
                let new_row = t.decode_row(new, fallback, &mut self.packer)?;
                Ok(vec![(old_row, -1), (new_row, 1)])
            }),
        };
        // The old key names the row (an update may change the key).
        let named = old.map_or(new, |old| old.tuple());
        self.push(tables, table, lsn, named, changes);
    }

    pub(crate) fn delete(&mut self, tables: &[Table], table: usize, lsn: u64, old: &OldTuple<'_>) {
        let row = tables[table].decode_row(old.tuple(), None, &mut self.packer);
        self.push(tables, table, lsn, old.tuple(), row.map(|old| vec![(old, -1)]));
    }

    /// Everything the transaction did to the table before is void: the
    /// table is empty now.
    pub(crate) fn truncate(&mut self, table: usize) {
        self.changes[table].clear();
        self.truncated[table] = true;
    }

    /// Adds the decoded changes, or reports them undecodable with the key
    /// of the row `named` holds.
    fn push(
        &mut self,
        tables: &[Table],
        table: usize,
        lsn: u64,
        named: &Tuple<'_>,
        changes: Result<Vec<(Row, Diff)>, ValueError>,
    ) {
        match changes {
            Ok(changes) => self.changes[table].extend(changes),
            Err(reason) => self.undecodable.push(Undecodable {
                position: Position(lsn),
                table: tables[table].name.clone(),
                key: tables[table].key_text(named),
                reason,
            }),
        }
    }

    /// The batch, ending at the commit record's `end_lsn`.
    pub(crate) fn finish(self, tables: &[Table], end_lsn: u64, head: u64) -> ChangeBatch {
        let names = |flags: &[bool]| -> Vec<String> {
            flags.iter().zip(tables).filter(|(&f, _)| f).map(|(_, t)| t.name.clone()).collect()
        };
        let truncated = names(&self.truncated);
        let changes = self
            .changes
            .into_iter()
            .zip(tables)
            .filter(|(changes, _)| !changes.is_empty())
            .map(|(changes, t)| (t.name.clone(), changes))
            .collect();
        let committed_at = super::pgoutput::unix_seconds(self.committed_at);
        let changes: Vec<(String, Vec<(Row, Diff)>)> = changes;
        let commits = changes.iter().map(|(t, _)| t).chain(&truncated).map(|t| (t.clone(), committed_at)).collect();
        ChangeBatch {
            position: Position(end_lsn),
            head: Position(head.max(end_lsn)),
            committed_at,
            commits,
            transactions: 1,
            truncated,
            tables: changes,
            undecodable: self.undecodable,
        }
    }
}

impl ChangeBatch {
    /// The number of row changes (an update counts twice).
    pub fn changes(&self) -> usize {
        self.tables.iter().map(|(_, c)| c.len()).sum()
    }

    /// Appends the transactions of `later`, which follow this batch's in
    /// commit order. Neither may truncate a table (a TRUNCATE's "retract
    /// every row first" cannot be reordered across transactions).
    pub(crate) fn absorb(&mut self, later: ChangeBatch) {
        debug_assert!(self.truncated.is_empty() && later.truncated.is_empty());
        self.position = later.position;
        self.head = self.head.max(later.head);
        self.commits.extend(later.commits);
        self.transactions += later.transactions;
        self.undecodable.extend(later.undecodable);
        // Both lists are sorted by table name.
        let mut merged = Vec::with_capacity(self.tables.len().max(later.tables.len()));
        let mut mine = std::mem::take(&mut self.tables).into_iter().peekable();
        let mut theirs = later.tables.into_iter().peekable();
        loop {
            let take_mine = match (mine.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((a, _)), Some((b, _))) if a == b => {
                    let (name, mut changes) = mine.next().expect("peeked");
                    changes.extend(theirs.next().expect("peeked").1);
                    merged.push((name, changes));
                    continue;
                }
                (Some((a, _)), Some((b, _))) => a < b,
            };
            merged.push(if take_mine { mine.next() } else { theirs.next() }.expect("peeked"));
        }
        self.tables = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::super::pgoutput::RelationColumn;
    use super::*;
    use denorm_types::Value;

    /// users(id bigint, name text, bio text), views read id and bio.
    fn users() -> Table {
        Table {
            name: "users".into(),
            columns: vec!["id".into(), "name".into(), "bio".into()],
            types: vec![PgType::Int8, PgType::Text, PgType::Text],
            read: vec![true, false, true],
            covered_by_key: false,
            key: vec![0],
        }
    }

    fn row(values: &[Value]) -> Row {
        Row::pack(values.iter().map(|v| v.borrowed()))
    }

    fn t<'a>(columns: &[Column<'a>]) -> Tuple<'a> {
        Tuple(columns.to_vec())
    }

    #[test]
    fn rows_are_full_width_with_unread_columns_null() {
        let mut packer = RowPacker::new();
        let tuple = t(&[Column::Text(b"7"), Column::Text(b"ada"), Column::Null]);
        let got = users().decode_row(&tuple, None, &mut packer).unwrap();
        assert_eq!(got, row(&[7.into(), Datum::Null, Datum::Null]));

        let copied = users().decode_copy_line(b"7\t\\N", &mut Vec::new(), &mut packer).unwrap();
        assert_eq!(copied, got, "snapshot and stream rows are the same bytes");
    }

    #[test]
    fn transaction_changes_table() {
        let tables = [users()];
        let full = |id: &'static [u8], bio: Column<'static>| t(&[Column::Text(id), Column::Text(b"n"), bio]);
        type Case<'a> = (&'a str, Box<dyn Fn(&mut TransactionBuilder) + 'a>, Vec<(Row, Diff)>, Vec<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (
                "insert",
                Box::new(|b| b.insert(&tables, 0, 1, &full(b"1", Column::Text(b"hi")))),
                vec![(row(&[1.into(), Datum::Null, "hi".into()]), 1)],
                vec![],
            ),
            (
                "update with full old row, bio TOASTed and unchanged",
                Box::new(|b| {
                    let old = OldTuple::Full(full(b"1", Column::Text(b"long")));
                    b.update(&tables, 0, 1, Some(&old), &full(b"2", Column::Unchanged))
                }),
                vec![
                    (row(&[1.into(), Datum::Null, "long".into()]), -1),
                    (row(&[2.into(), Datum::Null, "long".into()]), 1),
                ],
                vec![],
            ),
            (
                "delete with full old row and a NULL",
                Box::new(|b| b.delete(&tables, 0, 1, &OldTuple::Full(full(b"3", Column::Null)))),
                vec![(row(&[3.into(), Datum::Null, Datum::Null]), -1)],
                vec![],
            ),
            (
                "update without an old row is undecodable",
                Box::new(|b| b.update(&tables, 0, 1, None, &full(b"1", Column::Text(b"x")))),
                vec![],
                vec!["id=1"],
            ),
            (
                "unchanged TOAST with only the old key is undecodable",
                Box::new(|b| {
                    let old = OldTuple::Key(t(&[Column::Text(b"1"), Column::Null, Column::Null]));
                    b.update(&tables, 0, 1, Some(&old), &full(b"2", Column::Unchanged))
                }),
                vec![],
                vec!["id=1"],
            ),
            (
                "a bad integer is undecodable",
                Box::new(|b| b.insert(&tables, 0, 1, &full(b"x", Column::Null))),
                vec![],
                vec!["id=x"],
            ),
            (
                "truncate voids earlier changes",
                Box::new(|b| {
                    b.insert(&tables, 0, 1, &full(b"1", Column::Null));
                    b.truncate(0);
                    b.insert(&tables, 0, 2, &full(b"2", Column::Null));
                }),
                vec![(row(&[2.into(), Datum::Null, Datum::Null]), 1)],
                vec![],
            ),
        ];
        for (name, apply, want, undecodable) in cases {
            let mut builder = TransactionBuilder::new(1, 0);
            apply(&mut builder);
            let batch = builder.finish(&tables, 100, 90);
            let got = batch.tables.first().map(|(_, c)| c.clone()).unwrap_or_default();
            assert_eq!(got, want, "{name}");
            let keys: Vec<&str> = batch.undecodable.iter().map(|u| u.key.as_str()).collect();
            assert_eq!(keys, undecodable, "{name}: the undecodable changes' keys");
            assert_eq!(batch.position, Position(100), "{name}");
            assert_eq!(batch.head, Position(100), "{name}");
        }
    }

    /// Dead letters name rows as SQLite's do: key columns as SQL literals
    /// (a value that does not decode as its text), the whole row without a
    /// key.
    #[test]
    fn key_text_names_the_row() {
        let tuple = t(&[Column::Text(b"7"), Column::Text(b"o'k"), Column::Null]);
        assert_eq!(users().key_text(&tuple), "id=7");
        let by_name = Table { key: vec![1, 0], ..users() };
        assert_eq!(by_name.key_text(&tuple), "name='o''k',id=7");
        let bad = t(&[Column::Text(b"x1"), Column::Null, Column::Null]);
        assert_eq!(users().key_text(&bad), "id=x1");
        let keyless = Table { key: vec![], ..users() };
        assert_eq!(keyless.key_text(&tuple), "7,'o''k',NULL");
    }

    #[test]
    fn key_identity_covers_key_only_reads() {
        let table = Table { read: vec![true, false, false], covered_by_key: true, ..users() };
        let tables = [table];
        let mut builder = TransactionBuilder::new(1, 0);
        let new = t(&[Column::Text(b"1"), Column::Text(b"n"), Column::Unchanged]);
        builder.update(&tables, 0, 1, None, &new);
        builder.delete(&tables, 0, 2, &OldTuple::Key(t(&[Column::Text(b"1"), Column::Null, Column::Null])));
        let batch = builder.finish(&tables, 10, 10);
        assert_eq!(batch.tables, vec![("users".to_string(), vec![(row(&[1.into(), Datum::Null, Datum::Null]), -1)])]);
        assert!(batch.undecodable.is_empty());
    }

    #[test]
    fn relation_must_match_the_plan() {
        let column = |name: &str, type_id, key| RelationColumn { key, name: name.into(), type_id, type_modifier: -1 };
        let relation = |identity, columns| Relation {
            id: 1,
            namespace: "public".into(),
            name: "users".into(),
            replica_identity: identity,
            columns,
        };
        let planned = vec![column("id", 20, true), column("name", 25, false), column("bio", 25, false)];
        assert!(users().matches(&relation(b'f', planned.clone())));
        assert!(!users().matches(&relation(b'd', planned.clone())), "identity no longer full");
        let mut added = planned.clone();
        added.push(column("age", 23, false));
        assert!(!users().matches(&relation(b'f', added)), "column added");
        assert!(!users().matches(&relation(b'f', planned[..2].to_vec())), "column dropped");
        let mut retyped = planned.clone();
        retyped[0].type_id = 23;
        assert!(!users().matches(&relation(b'f', retyped)), "int8 became int4");
        let key_only = Table { read: vec![true, false, false], covered_by_key: true, ..users() };
        assert!(key_only.matches(&relation(b'd', planned)));
    }

    #[test]
    fn absorbed_transactions_keep_order_tables_and_commit_times() {
        let change = |id: i64, diff: Diff| (Row::pack([Datum::Int(id)]), diff);
        let batch = |position: u64, at: f64, tables: Vec<(&str, Vec<(Row, Diff)>)>| ChangeBatch {
            position: Position(position),
            head: Position(position),
            committed_at: at,
            commits: tables.iter().map(|(t, _)| (t.to_string(), at)).collect(),
            transactions: 1,
            truncated: vec![],
            tables: tables.into_iter().map(|(t, c)| (t.to_string(), c)).collect(),
            undecodable: vec![],
        };
        let mut first = batch(10, 1.0, vec![("b", vec![change(1, 1)]), ("d", vec![change(2, 1)])]);
        first.absorb(batch(20, 2.0, vec![("a", vec![change(3, 1)]), ("b", vec![change(1, -1), change(4, 1)])]));
        first.absorb(batch(30, 3.0, vec![("e", vec![change(5, 1)])]));
        assert_eq!(
            (first.position, first.head, first.committed_at, first.transactions),
            (Position(30), Position(30), 1.0, 3)
        );
        let names: Vec<&str> = first.tables.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["a", "b", "d", "e"]);
        assert_eq!(first.tables[1].1, vec![change(1, 1), change(1, -1), change(4, 1)], "in commit order");
        assert_eq!(first.changes(), 6);
        assert_eq!(first.commits.len(), 5);
        assert!(first.commits.contains(&("b".to_string(), 2.0)) && first.commits.contains(&("e".to_string(), 3.0)));
    }
}
