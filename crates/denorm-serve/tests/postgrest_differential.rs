//! Differential test of the PostgREST filters: random filters (every
//! operator SQLite can express, negations, nested `or`/`and` trees, NULLs)
//! over a view holding a SQLite table's rows give the rows that the same
//! WHERE gives when SQLite runs it on the table.
//!
//! SQLite stands in for PostgreSQL's semantics where they agree; where
//! they do not, the WHERE is written as PostgreSQL means it: `like` is
//! case-sensitive (`PRAGMA case_sensitive_like`), `ilike` compares
//! lowercased ASCII, `match` patterns are anchored words written as `GLOB`,
//! text search over space-separated lowercase words is a `GLOB` on the
//! padded text, and `cs`/`cd`/`ov` over JSON arrays are `json_each`
//! subqueries, NULL when the column is.

use denorm_serve::{channel, read_rows, ColumnInfo, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};
use proptest::prelude::*;
use rusqlite::Connection;

const WORDS: [&str; 5] = ["red", "blue", "mug", "desk", "lamp"];

/// One source row: id, a (integer), b (real), s (words), f (0/1), doc (JSON array of words).
#[derive(Debug, Clone)]
struct Source {
    a: Option<i64>,
    b: Option<f64>,
    s: Option<Vec<usize>>,
    f: Option<bool>,
    doc: Option<Vec<usize>>,
}

fn source() -> impl Strategy<Value = Source> {
    let words = || proptest::option::of(proptest::collection::vec(0..WORDS.len(), 0..4));
    (
        proptest::option::weighted(0.85, -3i64..4),
        proptest::option::weighted(0.85, (-6i32..7).prop_map(|x| f64::from(x) / 2.0)),
        words(),
        proptest::option::weighted(0.85, any::<bool>()),
        words(),
    )
        .prop_map(|(a, b, s, f, doc)| Source { a, b, s, f, doc })
}

fn text(words: &[usize]) -> String {
    words.iter().map(|&w| WORDS[w]).collect::<Vec<_>>().join(" ")
}

fn json_array(words: &[usize]) -> String {
    serde_json::to_string(&words.iter().map(|&w| WORDS[w]).collect::<Vec<_>>()).unwrap()
}

/// A tiny deterministic generator for the filters of one case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.below(WORDS.len())]
    }
}

/// A leaf: (column, PostgREST `op.value`, SQL predicate).
fn leaf(rng: &mut Rng) -> (String, String, String) {
    let (column, op, sql): (&str, String, String) = match rng.below(17) {
        0..=3 => {
            let (column, value) = match rng.below(3) {
                0 => ("a", format!("{}", rng.below(7) as i64 - 3)),
                1 => ("b", format!("{}", (rng.below(13) as f64 - 6.0) / 2.0)),
                _ => ("a", format!("{}.5", rng.below(5) as i64 - 2)),
            };
            let (op, sql_op) =
                [("eq", "="), ("neq", "<>"), ("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")][rng.below(6)];
            (column, format!("{op}.{value}"), format!("{column} {sql_op} {value}"))
        }
        4 => {
            let (op, sql_op) = [("eq", "="), ("lt", "<"), ("gte", ">=")][rng.below(3)];
            let value = format!("{} {}", rng.word(), rng.word());
            ("s", format!("{op}.{value}"), format!("s {sql_op} '{value}'"))
        }
        5 => {
            let values: Vec<String> = (0..1 + rng.below(3)).map(|_| (rng.below(7) as i64 - 3).to_string()).collect();
            ("a", format!("in.({})", values.join(",")), format!("a IN ({})", values.join(",")))
        }
        6 => {
            let column = ["a", "b", "s", "f", "doc"][rng.below(5)];
            (column, "is.null".into(), format!("{column} IS NULL"))
        }
        7 => {
            let truth = ["true", "false"][rng.below(2)];
            let column = ["f", "a"][rng.below(2)];
            (column, format!("is.{truth}"), format!("{column} IS {truth}"))
        }
        8 => {
            let value = rng.below(7) as i64 - 3;
            ("a", format!("isdistinct.{value}"), format!("a IS NOT {value}"))
        }
        9 => {
            let word = rng.word();
            let pattern = match rng.below(4) {
                0 => format!("{}*", &word[..2]),
                1 => format!("*{}*", &word[1..3]),
                2 => format!("_{}*", &word[1..]),
                _ => format!("{}*", word.to_uppercase()),
            };
            let like = pattern.replace('*', "%");
            if rng.below(2) == 0 {
                ("s", format!("like.{pattern}"), format!("s LIKE '{like}'"))
            } else {
                ("s", format!("ilike.{pattern}"), format!("lower(s) LIKE lower('{like}')"))
            }
        }
        10 => {
            let word = rng.word();
            let (regex, glob) = match rng.below(3) {
                0 => (format!("^{word}"), format!("{word}*")),
                1 => (format!("{word}$"), format!("*{word}")),
                _ => (word.to_owned(), format!("*{word}*")),
            };
            if rng.below(2) == 0 {
                ("s", format!("match.{regex}"), format!("s GLOB '{glob}'"))
            } else {
                ("s", format!("imatch.{}", regex.to_uppercase()), format!("lower(s) GLOB '{glob}'"))
            }
        }
        11 => {
            let (w1, w2) = (rng.word(), rng.word());
            let has = |w: &str| format!("(' ' || s || ' ') GLOB '* {w} *'");
            match rng.below(5) {
                0 => ("s", format!("plfts.{}", w1.to_uppercase()), has(w1)),
                1 => ("s", format!("phfts.{w1} {w2}"), format!("(' ' || s || ' ') GLOB '* {w1} {w2} *'")),
                2 => ("s", format!("fts.{w1} %26 !{w2}"), format!("({} AND NOT {})", has(w1), has(w2))),
                3 => ("s", format!("fts.{w1} | {w2}"), format!("({} OR {})", has(w1), has(w2))),
                _ => ("s", format!("wfts.{w1} or -{w2}"), format!("({} OR NOT {})", has(w1), has(w2))),
            }
        }
        12..=14 => {
            let words: Vec<&str> = (0..rng.below(3)).map(|_| rng.word()).collect();
            let json = serde_json::to_string(&words).unwrap();
            let literal = format!("{{{}}}", words.join(","));
            let (op, body) = match rng.below(3) {
                0 => ("cs", format!("NOT EXISTS (SELECT 1 FROM json_each('{json}') r WHERE r.value NOT IN (SELECT value FROM json_each(doc)))")),
                1 => ("cd", format!("NOT EXISTS (SELECT 1 FROM json_each(doc) l WHERE l.value NOT IN (SELECT value FROM json_each('{json}')))")),
                _ => ("ov", format!("EXISTS (SELECT 1 FROM json_each(doc) l WHERE l.value IN (SELECT value FROM json_each('{json}')))")),
            };
            let operand = if rng.below(2) == 0 { literal } else { json.replace('"', "%22") };
            ("doc", format!("{op}.{operand}"), format!("(CASE WHEN doc IS NULL THEN NULL ELSE {body} END)"))
        }
        _ => {
            let index = rng.below(3);
            let word = rng.word();
            (
                Box::leak(format!("doc->>{index}").into_boxed_str()),
                format!("eq.{word}"),
                format!("doc ->> {index} = '{word}'"),
            )
        }
    };
    if rng.below(4) == 0 {
        (column.to_owned(), format!("not.{op}"), format!("NOT ({sql})"))
    } else {
        (column.to_owned(), op, sql)
    }
}

/// A condition inside a group: a leaf `col.op.value` or a nested group.
fn item(rng: &mut Rng, depth: usize) -> (String, String) {
    if depth == 0 || rng.below(3) > 0 {
        let (column, op, sql) = leaf(rng);
        return (format!("{column}.{op}"), sql);
    }
    let (name, sql) = group(rng, depth - 1);
    (format!("{name}({})", sql.0), sql.1)
}

/// A group: its name (`or`, `not.and`, …) and (its PostgREST items, its SQL).
fn group(rng: &mut Rng, depth: usize) -> (String, (String, String)) {
    let or = rng.below(2) == 0;
    let negated = rng.below(4) == 0;
    let items: Vec<(String, String)> = (0..1 + rng.below(3)).map(|_| item(rng, depth)).collect();
    let joined = items.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(",");
    let sql = items.iter().map(|(_, s)| format!("({s})")).collect::<Vec<_>>().join(if or { " OR " } else { " AND " });
    let name = format!("{}{}", if negated { "not." } else { "" }, if or { "or" } else { "and" });
    let sql = if negated { format!("NOT ({sql})") } else { sql };
    (name, (joined, sql))
}

/// A whole query: top-level filters and groups, ANDed.
fn query(rng: &mut Rng) -> (String, String) {
    let mut params = vec![];
    let mut sql = vec![];
    for _ in 0..1 + rng.below(3) {
        if rng.below(2) == 0 {
            let (column, op, s) = leaf(rng);
            params.push(format!("{column}={op}"));
            sql.push(format!("({s})"));
        } else {
            let (name, (items, s)) = group(rng, 2);
            params.push(format!("{name}=({items})"));
            sql.push(format!("({s})"));
        }
    }
    (params.join("&").replace(' ', "%20"), sql.join(" AND "))
}

fn view() -> ViewInfo {
    let col = |name: &str, ty| ColumnInfo { name: name.into(), ty };
    ViewInfo {
        name: "t".into(),
        columns: vec![
            col("id", ScalarType::Int),
            col("a", ScalarType::Int),
            col("b", ScalarType::Float),
            col("s", ScalarType::Text),
            col("f", ScalarType::Int),
            col("doc", ScalarType::Text),
        ],
        key: vec![0],
        ..Default::default()
    }
}

fn check(rows: &[Source], seed: u64) -> Result<(), TestCaseError> {
    let db = Connection::open_in_memory().unwrap();
    db.execute_batch(
        "PRAGMA case_sensitive_like = ON;
         CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b REAL, s TEXT, f INTEGER, doc TEXT);",
    )
    .unwrap();
    let (mut publisher, reader) = channel(vec![view()]);
    let mut changes = vec![];
    for (id, r) in rows.iter().enumerate() {
        let s = r.s.as_deref().map(text);
        let doc = r.doc.as_deref().map(json_array);
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![id as i64, r.a, r.b, s, r.f.map(i64::from), doc],
        )
        .unwrap();
        let values: [Value; 6] = [
            Datum::Int(id as i64),
            r.a.into(),
            r.b.into(),
            s.map_or(Datum::Null, Datum::owned_text),
            r.f.map_or(Datum::Null, |f| Datum::Int(i64::from(f))),
            doc.map_or(Datum::Null, Datum::owned_text),
        ];
        changes.push((Row::pack(&values), 1));
    }
    publisher.apply(0, &changes);
    publisher.publish(Position(1), &[]);
    let published = reader.snapshot();
    let mut rng = Rng(seed | 1);
    for _ in 0..25 {
        let (params, sql) = query(&mut rng);
        let mut statement = db.prepare(&format!("SELECT id FROM t WHERE {sql} ORDER BY id")).unwrap();
        let want: Vec<i64> = statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        let (body, _) =
            read_rows(&published, "t", &format!("select=id&{params}")).unwrap_or_else(|e| panic!("{params}: {e}"));
        let got: Vec<i64> = serde_json::from_slice::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        prop_assert_eq!(got, want, "{}\nWHERE {}", params, sql);
    }
    Ok(())
}

proptest! {
    // DENORM_PROPTEST_CASES cases (default 256), each 25 queries over its rows.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn postgrest_filters_match_sqlite(rows in proptest::collection::vec(source(), 0..25), seed in any::<u64>()) {
        check(&rows, seed)?;
    }
}
