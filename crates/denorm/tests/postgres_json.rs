//! PostgreSQL's JSON operators `->`, `->>`, `#>` and `#>>` on `json` and
//! `jsonb` columns, end to end: `denorm run` on a real PostgreSQL
//! (`DENORM_TEST_POSTGRES_URL`) under random inserts, updates of the
//! documents and deletions, every view compared with PostgreSQL's own
//! answer to its SELECT — the `::text` columns by their exact text (a `json`
//! element as written, whitespace included; a `jsonb` one in its canonical
//! form), the rest through `row_to_json` with numbers by their digits.

mod common;
mod pg_project;

use std::time::Duration;

use common::{eventually, SplitMix};
use pg_project::PgProject;
use postgres::Client;

const SCHEMA: &str = "
CREATE TABLE docs (id integer PRIMARY KEY, j json, b jsonb, k text, i integer);
ALTER TABLE docs REPLICA IDENTITY FULL;
";

/// Documents with nested objects and arrays, unicode and escapes, numbers
/// as written (`1.50`, `1e3`, `-0`), JSON nulls, a repeated key (a `json`
/// value keeps both, `jsonb` the last), odd whitespace and scalars.
const DOCUMENTS: &[&str] = &[
    r#"{"a": 1, "s": "x", "arr": [1, 2, 3], "o": {"x": {"y": [true, null]}}}"#,
    r#"{"a":"straße ÉCOLE","arr":[],"o":{"x":1.50}}"#,
    r#"{"a": {"b": [1, {"c": "d"}]},   "n": 1e3, "arr": [ "é" , "a\"b", "\u00e9\n" ]}"#,
    r#"{"a": null, "n": 1.50, "s": null, "arr": [null]}"#,
    r#"{"a": 1, "a": 2, "s": "first", "s": "second"}"#,
    r#"{ "n" : -0 , "o" : { } , "arr" : [ [1, 2], {"k": "v"} ] }"#,
    r#"{"s": "\ud83d\ude00 emoji", "n": 12345678901234567890, "arr": [0.1, 2E-3, -7]}"#,
    r#"[1, "two", {"a": 3}]"#,
    r#""just a string""#,
    "42",
    "null",
    r#"{"k": "v", "arr": [1, 2], "o": {"x": "deep", "y": [1, [2, [3]]]}}"#,
];

const VIEWS: &[(&str, &str)] = &[
    (
        "arrows",
        "SELECT id, (j -> 'a')::text AS ja, j ->> 'a' AS ja_value, (b -> 'a')::text AS ba, b ->> 'a' AS ba_value, \
         (j -> 's')::text AS js, j ->> 's' AS js_value, b ->> 's' AS bs_value, \
         (j -> 'arr' -> -1)::text AS j_last, (b -> 'arr' -> 0)::text AS b_first, j -> 'arr' ->> 1 AS j_second, \
         b -> 'arr' ->> -2 AS b_before_last, (j -> 'o')::text AS jo, (b -> 'o')::text AS bo, \
         j ->> 'n' AS jn, b ->> 'n' AS bn, (j -> 2)::text AS j_item, b ->> 1 AS b_item, \
         j -> k AS by_key, j ->> i AS by_index, b ->> i AS b_by_index, (b -> 's') -> 0 AS b_scalar_first, \
         (b #> '{n}') ->> -1 AS b_path_scalar, b -> 'o' AS bo_json \
         FROM docs",
    ),
    (
        "paths",
        "SELECT id, (j #> '{o,x}')::text AS jox, j #>> '{o,x,y,0}' AS joxy, (b #> '{a,b,1}')::text AS bab, \
         b #>> '{a,b,-1,c}' AS babc, (j #> '{}')::text AS jwhole, b #>> '{}' AS bwhole, \
         j #>> '{arr, 1}' AS jarr, b #> '{\"arr\",NULL}' AS bnull, (b #> '{2}')::text AS b2 FROM docs",
    ),
    ("filtered", "SELECT id, k FROM docs WHERE b ->> 'k' = 'v' OR j -> 'o' ->> 'x' = '1.50'"),
    ("grouped", "SELECT b ->> 's' AS s, COUNT(*) AS n, MAX(j ->> 'n') AS top FROM docs GROUP BY b ->> 's'"),
];

struct Writer {
    client: Client,
    rng: SplitMix,
    next: i32,
}

impl Writer {
    fn document(&mut self) -> String {
        if self.rng.below(12) == 0 {
            return "NULL".into();
        }
        let text = DOCUMENTS[self.rng.below(DOCUMENTS.len() as u64) as usize];
        format!("'{}'", text.replace('\'', "''"))
    }

    fn key(&mut self) -> &'static str {
        ["'a'", "'s'", "'arr'", "'n'", "NULL", "'zz'"][self.rng.below(6) as usize]
    }

    fn transaction(&mut self) {
        let mut sql = String::from("BEGIN;");
        for _ in 0..1 + self.rng.below(4) {
            let target = 1 + self.rng.below(self.next as u64) as i32;
            match self.rng.below(6) {
                0..=2 => {
                    let id = self.next;
                    self.next += 1;
                    let (j, b, k, i) = (self.document(), self.document(), self.key(), self.rng.below(7) as i64 - 3);
                    sql += &format!("INSERT INTO docs VALUES ({id}, {j}, {b}, {k}, {i});");
                }
                3 => {
                    let d = self.document();
                    sql += &format!("UPDATE docs SET j = {d}, b = {d} WHERE id = {target};");
                }
                4 => {
                    let (d, k) = (self.document(), self.key());
                    sql += &format!("UPDATE docs SET b = {d}, k = {k} WHERE id = {target};");
                }
                _ => sql += &format!("DELETE FROM docs WHERE id = {target};"),
            }
        }
        sql += "COMMIT;";
        self.client.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}

fn assert_views_equal(denorm: &common::Denorm, client: &mut Client) {
    eventually(Duration::from_millis(50), || {
        pg_project::json_compare(denorm, client, VIEWS, pg_project::exact_numbers)
    });
}

#[test]
fn postgres_json_operators_equal_postgres_under_random_transactions() {
    let views: String = VIEWS.iter().map(|(n, s)| format!("CREATE MATERIALIZED VIEW {n} AS {s};\n")).collect();
    let project = PgProject::new("json_operators", SCHEMA, &views);
    let mut writer = Writer { client: project.client(), rng: SplitMix(23), next: 1 };
    // Every document at least once in the snapshot, then random changes.
    let mut sql = String::new();
    for (n, text) in DOCUMENTS.iter().enumerate() {
        let text = text.replace('\'', "''");
        sql += &format!("INSERT INTO docs VALUES ({}, '{text}', '{text}', 'a', {});", n + 1, n as i64 % 5 - 2);
    }
    writer.client.batch_execute(&sql).unwrap();
    writer.next = DOCUMENTS.len() as i32 + 1;
    for _ in 0..10 {
        writer.transaction();
    }
    let mut client = project.client();
    let denorm = common::Denorm::start(&project.config);
    assert_views_equal(&denorm, &mut client);
    for _ in 0..8 {
        for _ in 0..6 {
            writer.transaction();
        }
        assert_views_equal(&denorm, &mut client);
    }
}

#[test]
fn postgres_json_operators_refuse_what_postgres_refuses() {
    let cases = [
        ("SELECT id, k -> 'a' AS x FROM docs", "operator does not exist: text -> text"),
        ("SELECT id, j -> 1.5 AS x FROM docs", "operator does not exist"),
        ("SELECT id, j #> k AS x FROM docs", "text[] literal"),
    ];
    for (select, message) in cases {
        let project = PgProject::new("json_refused", SCHEMA, &format!("CREATE MATERIALIZED VIEW v AS {select};\n"));
        let output = project.denorm(&["check"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{select}: {stderr}");
        assert!(stderr.contains(message), "{select}: {stderr}");
    }
}
