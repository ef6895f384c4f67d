//! A sample of SQLite's own sqllogictest corpus (`tests/sqllogictest/`,
//! every statement and a sample of the queries of select1–5.test, with their
//! expected results) run as views.
//!
//! For each file: the statements build the tables; SQLite's answer to every
//! query must equal the corpus's expected result (this checks the harness
//! and the bundled SQLite); every query is planned as a view, and each
//! accepted view must equal SQLite's answer after the snapshot and after
//! every round of random writes (updates of every column to new values and
//! NULL, inserts, deletes). The share of queries accepted is reported and
//! must not fall below the floor, which rises as the planner learns more.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use denorm_core::{Dataflow, Runtime, SourceBatch, ViewId};
use denorm_sql::{plan_views, ViewDef};
use denorm_testkit::tpch::Random;
use denorm_testkit::writes::{capture, rows_where, Statement};
use denorm_testkit::{same_rows, SqliteReference};
use denorm_types::{Datum, Dialect, Position, ScalarType, Value};
use md5::{Digest, Md5};

const FILES: [(&str, &str); 5] = [
    ("select1", include_str!("sqllogictest/select1.test")),
    ("select2", include_str!("sqllogictest/select2.test")),
    ("select3", include_str!("sqllogictest/select3.test")),
    ("select4", include_str!("sqllogictest/select4.test")),
    ("select5", include_str!("sqllogictest/select5.test")),
];

/// The share of the sampled queries that must be accepted as views (all of
/// them since the planner accepts every sampled query).
const ACCEPTED_FLOOR: f64 = 1.0;

/// One `query` record.
struct Query {
    types: String,
    sort: String,
    sql: String,
    expected: Vec<String>,
    line: usize,
}

/// The statements (in order) and queries of one file.
fn parse(text: &str) -> (Vec<String>, Vec<Query>) {
    let mut statements = Vec::new();
    let mut queries = Vec::new();
    let mut line = 1;
    for record in text.split("\n\n") {
        let start = line;
        line += record.matches('\n').count() + 2;
        let mut lines = record.lines().skip_while(|l| l.starts_with('#') || l.is_empty());
        let Some(head) = lines.next() else { continue };
        let rest: Vec<&str> = lines.collect();
        if head.starts_with("statement") {
            statements.push(rest.join("\n"));
        } else if let Some(spec) = head.strip_prefix("query ") {
            let mut words = spec.split_whitespace();
            let (types, sort) = (words.next().unwrap_or("").to_string(), words.next().unwrap_or("nosort").to_string());
            let split = rest.iter().position(|l| *l == "----").unwrap_or(rest.len());
            queries.push(Query {
                types,
                sort,
                sql: rest[..split].join("\n"),
                expected: rest.get(split + 1..).unwrap_or(&[]).iter().map(ToString::to_string).collect(),
                line: start,
            });
        }
    }
    (statements, queries)
}

/// A value as sqllogictest prints it for column type `ty`.
fn format_value(value: &Value, ty: char) -> String {
    match (value, ty) {
        (Datum::Null, _) => "NULL".into(),
        (Datum::Int(i), 'R') => format!("{:.3}", *i as f64),
        (Datum::Float(f), 'R') => format!("{f:.3}"),
        (Datum::Float(f), 'I') => format!("{}", *f as i64),
        (Datum::Int(i), _) => i.to_string(),
        (Datum::Text(t), 'I') => t.parse::<i64>().map_or_else(|_| "0".into(), |i| i.to_string()),
        (Datum::Text(t), _) if t.is_empty() => "(empty)".into(),
        (Datum::Text(t), _) => t.chars().map(|c| if (' '..='~').contains(&c) { c } else { '@' }).collect(),
        (other, _) => other.to_string(),
    }
}

/// SQLite's result in the corpus's form: values after the sort mode, hashed
/// when there are more than the threshold.
fn corpus_result(rows: &[Vec<Value>], query: &Query, threshold: usize) -> Vec<String> {
    let types: Vec<char> = query.types.chars().collect();
    let mut rows: Vec<Vec<String>> =
        rows.iter().map(|r| r.iter().enumerate().map(|(i, v)| format_value(v, types[i])).collect()).collect();
    let mut values: Vec<String> = match query.sort.as_str() {
        "rowsort" => {
            rows.sort();
            rows.concat()
        }
        "valuesort" => {
            let mut v = rows.concat();
            v.sort();
            v
        }
        _ => rows.concat(),
    };
    if threshold > 0 && values.len() > threshold {
        let mut hasher = Md5::new();
        for v in &values {
            hasher.update(v.as_bytes());
            hasher.update(b"\n");
        }
        let digest = hasher.finalize().iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        values = vec![format!("{} values hashing to {digest}", values.len())];
    }
    values
}

/// A column the writes change: its name, type, and for integers the range
/// of its initial values (widened by two), so that new values still join.
struct Column {
    name: String,
    ty: ScalarType,
    range: (i64, i64),
    primary_key: bool,
}

/// Random writes over every table of the file: each round updates columns
/// other than the primary key (to values in their range, new text and NULL),
/// inserts a row (a NULL rowid alias takes a fresh rowid) and deletes one.
fn round(reference: &SqliteReference, tables: &[(String, Vec<Column>)], random: &mut Random) -> Vec<Statement> {
    let mut out = Vec::new();
    for (table, columns) in tables {
        let count: i64 =
            reference.connection.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
        let value = |random: &mut Random, c: &Column| match (random.range(0, 9), c.ty) {
            _ if c.primary_key => "NULL".to_string(),
            (0, _) => "NULL".to_string(),
            (_, ScalarType::Text) => format!("'table {table} row {}'", random.range(1, 40)),
            _ => random.range(c.range.0, c.range.1).to_string(),
        };
        let some_row = |random: &mut Random| {
            format!("rowid = (SELECT rowid FROM {table} LIMIT 1 OFFSET {})", random.range(0, (count - 1).max(0)))
        };
        let writable: Vec<&Column> = columns.iter().filter(|c| !c.primary_key).collect();
        for _ in 0..3 {
            let Some(c) = writable.get(usize::try_from(random.range(0, writable.len() as i64 - 1)).unwrap()) else {
                break;
            };
            out.push(Statement::update(table, format!("{} = {}", c.name, value(random, c)), some_row(random)));
        }
        let values: Vec<String> = columns.iter().map(|c| value(random, c)).collect();
        out.push(Statement::insert(table, &values));
        if count > 1 {
            out.push(Statement::delete(table, some_row(random)));
        }
    }
    out
}

fn columns(reference: &SqliteReference, table: &denorm_types::TableSchema) -> Vec<Column> {
    let single_key = table.primary_key.len() == 1;
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let sql =
                format!("SELECT coalesce(min({0}), 0) - 2, coalesce(max({0}), 0) + 2 FROM {1}", c.name, table.name);
            let range = reference.connection.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap_or((0, 9));
            Column { name: c.name.clone(), ty: c.ty, range, primary_key: single_key && table.primary_key[0] == i }
        })
        .collect()
}

struct Outcome {
    queries: usize,
    accepted: usize,
    refusals: Vec<String>,
}

fn run_file(name: &str, text: &str, rounds: usize) -> Outcome {
    let (statements, queries) = parse(text);
    let threshold =
        text.lines().find_map(|l| l.strip_prefix("hash-threshold ")).map_or(8, |t| t.trim().parse().unwrap());
    let reference = SqliteReference::new("").unwrap();
    for statement in &statements {
        reference.connection.execute_batch(statement).unwrap();
    }
    let catalog = reference.catalog();
    let mut views: Vec<(ViewDef, usize)> = Vec::new();
    let mut refusals = Vec::new();
    for (n, query) in queries.iter().enumerate() {
        let (_, rows) = reference.query(&query.sql).unwrap();
        assert_eq!(
            corpus_result(&rows, query, threshold),
            query.expected,
            "{name}:{}: SQLite's answer differs from the corpus's",
            query.line
        );
        match plan_views(&format!("CREATE MATERIALIZED VIEW q{n} AS {};", query.sql), &catalog, Dialect::Sqlite) {
            Ok(defs) => views.extend(defs.into_iter().map(|d| (d, query.line))),
            Err(errors) => refusals.push(errors[0].message.clone()),
        }
    }
    let tables: Vec<(String, Vec<Column>)> =
        catalog.tables().map(|t| (t.name.clone(), columns(&reference, t))).collect();
    let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
    let ids: Vec<ViewId> = views
        .iter()
        .map(|(def, _)| {
            dataflow.add_view(&def.name, &def.plan, def.key.columns.clone(), !def.key.proven_unique).unwrap()
        })
        .collect();
    let snapshot = tables
        .iter()
        .map(|(table, _)| {
            let rows = rows_where(&reference.connection, table, "1").unwrap();
            (table.clone(), rows.into_iter().map(|(_, row)| (row, 1)).collect())
        })
        .collect();
    let mut random = Random::new(0x5117_0000 + name.len() as u64);
    let mut batch = snapshot;
    for position in 1..=rounds + 1 {
        let out = dataflow.apply(&SourceBatch { position: Position(position as u64), tables: batch });
        assert!(out.errors.is_empty(), "{name}: view errors after batch {position}: {:?}", out.errors);
        for ((def, line), id) in views.iter().zip(&ids) {
            let (_, want) = reference.query(&def.select_sql).unwrap();
            let mut got = Vec::new();
            for (row, diff) in dataflow.view_rows(*id) {
                let values: Vec<Value> = row.iter().map(Datum::into_owned).collect();
                got.extend(std::iter::repeat_n(values, usize::try_from(diff).unwrap()));
            }
            if let Err(m) = same_rows(got, want) {
                panic!("{name}:{line}: view differs from SQLite after batch {position}: {m}\n{}", def.select_sql);
            }
        }
        batch = capture(&reference, &round(&reference, &tables, &mut random)).unwrap();
    }
    Outcome { queries: queries.len(), accepted: views.len(), refusals }
}

#[test]
fn sampled_corpus_queries_as_views_equal_sqlite() {
    let rounds: usize = std::env::var("DENORM_SLT_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(4);
    let (mut queries, mut accepted) = (0, 0);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (name, text) in FILES {
        let outcome = run_file(name, text, rounds);
        eprintln!("{name}: {} of {} queries accepted as views", outcome.accepted, outcome.queries);
        queries += outcome.queries;
        accepted += outcome.accepted;
        for r in outcome.refusals {
            *reasons.entry(r).or_default() += 1;
        }
    }
    let mut reasons: Vec<(String, usize)> = reasons.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    eprintln!("{accepted} of {queries} accepted; refusals:");
    for (reason, n) in &reasons {
        eprintln!("  {n:>4}  {reason}");
    }
    let share = accepted as f64 / queries as f64;
    assert!(share >= ACCEPTED_FLOOR, "only {accepted} of {queries} sampled queries accepted (floor {ACCEPTED_FLOOR})");
}
