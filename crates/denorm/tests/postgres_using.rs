//! PostgreSQL `JOIN … USING (c)` over columns of different types (issue 11):
//! PostgreSQL shows the merged column as the pair's common type — an INNER
//! JOIN the column already of it (the right one when only the left is
//! coerced), a LEFT (RIGHT) JOIN the left (right) one cast to it, a FULL
//! JOIN `COALESCE` of both cast. denorm showed the left column as it is
//! (`integer` USING `numeric` gave an integer, `1` where PostgreSQL shows
//! `1.0`). `denorm run` on a real PostgreSQL (`DENORM_TEST_POSTGRES_URL`),
//! every view compared over HTTP with PostgreSQL's `row_to_json` of its
//! SELECT (numbers by their exact text, scale included) through random
//! transactions, and each merged column's type in `denorm check` with
//! PostgreSQL's `pg_typeof`.

mod common;
mod pg_project;

use std::time::Duration;

use common::{eventually, Denorm, SplitMix};
use pg_project::PgProject;
use postgres::Client;
use serde_json::Value as Json;

/// Each pair: the column, its left and right types.
const PAIRS: &[(&str, &str, &str)] = &[
    ("c", "integer", "numeric"),
    ("s", "smallint", "integer"),
    ("b", "bigint", "integer"),
    ("i", "integer", "bigint"),
    ("d", "double precision", "integer"),
    ("x", "integer", "double precision"),
    ("n", "numeric", "integer"),
    ("tx", "text", "varchar(10)"),
    ("vc", "varchar(10)", "text"),
];

const KINDS: &[(&str, &str)] =
    &[("inner", "JOIN"), ("left", "LEFT JOIN"), ("right", "RIGHT JOIN"), ("full", "FULL JOIN")];

fn schema() -> String {
    let columns = |side: usize| -> String {
        PAIRS.iter().map(|(c, l, r)| format!(", {c} {}", if side == 0 { l } else { r })).collect()
    };
    format!(
        "CREATE TABLE l (id integer PRIMARY KEY{}); CREATE TABLE r (id integer PRIMARY KEY{});
         ALTER TABLE l REPLICA IDENTITY FULL; ALTER TABLE r REPLICA IDENTITY FULL;",
        columns(0),
        columns(1)
    )
}

/// (view name, SELECT): the merged column, an expression over it whose
/// value shows its type (`/ 4` divides integers, numerics and doubles
/// apart), and the ids of both sides.
fn views() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (c, left, _) in PAIRS {
        let text = left.starts_with("text") || left.starts_with("varchar");
        let probe = if text { format!("{c} || '!'") } else { format!("{c} / 4") };
        for (kind, join) in KINDS {
            let select = format!("SELECT l.id AS lid, r.id AS rid, {c}, {probe} AS q FROM l {join} r USING ({c})");
            out.push((format!("{c}_{kind}"), select));
        }
    }
    out
}

fn value(rng: &mut SplitMix, ty: &str) -> String {
    if rng.below(8) == 0 {
        return "NULL".into();
    }
    let k = rng.below(4);
    match ty {
        "numeric" => ["1", "1.0", "2.50", "3", "0.000"][rng.below(5) as usize].into(),
        "double precision" => ["1", "2.5", "3", "-0.0", "0"][rng.below(5) as usize].into(),
        t if t.starts_with("text") || t.starts_with("varchar") => format!("'{}'", ["a", "b", "c", "a "][k as usize]),
        _ => k.to_string(),
    }
}

fn transaction(client: &mut Client, rng: &mut SplitMix, next: &mut i32) {
    let mut sql = String::from("BEGIN;");
    for _ in 0..1 + rng.below(4) {
        let side = rng.below(2) as usize;
        let table = ["l", "r"][side];
        let ty = |rng: &mut SplitMix, (_, l, r): &(&str, &str, &str)| value(rng, if side == 0 { l } else { r });
        match rng.below(4) {
            0 | 1 => {
                let values: Vec<String> = PAIRS.iter().map(|p| ty(rng, p)).collect();
                sql += &format!("INSERT INTO {table} VALUES ({next}, {});", values.join(", "));
                *next += 1;
            }
            2 => {
                let pair = &PAIRS[rng.below(PAIRS.len() as u64) as usize];
                let id = 1 + rng.below(*next as u64);
                sql += &format!("UPDATE {table} SET {} = {} WHERE id = {id};", pair.0, ty(rng, pair));
            }
            _ => sql += &format!("DELETE FROM {table} WHERE id = {};", 1 + rng.below(*next as u64)),
        }
    }
    sql += "COMMIT;";
    client.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// denorm's name of the type PostgreSQL gives a view's merged column.
fn denorm_type(pg: &str) -> &'static str {
    match pg {
        "numeric" => "numeric",
        "smallint" | "integer" | "bigint" => "integer",
        "double precision" => "double",
        "text" | "character varying" => "text",
        other => panic!("unexpected type {other}"),
    }
}

/// JSON with every number read as a double.
fn numbers_as_doubles(text: &str) -> Json {
    fn walk(v: Json) -> Json {
        match v {
            Json::Number(n) => serde_json::json!(n.as_f64().unwrap()),
            Json::Array(items) => Json::Array(items.into_iter().map(walk).collect()),
            Json::Object(fields) => Json::Object(fields.into_iter().map(|(k, v)| (k, walk(v))).collect()),
            other => other,
        }
    }
    walk(serde_json::from_str(text).unwrap())
}

#[test]
fn using_columns_of_different_types_merge_as_postgres_merges_them() {
    let views = views();
    let file: String = views.iter().map(|(n, s)| format!("CREATE MATERIALIZED VIEW {n} AS {s};\n")).collect();
    let project = PgProject::new("using_types", &schema(), &file);
    let mut client = project.client();

    // The merged column's type, as `denorm check` shows it.
    let check = project.denorm(&["check"]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}{}", String::from_utf8_lossy(&check.stderr));
    for (name, select) in &views {
        let column = &name[..name.find('_').unwrap()];
        client.batch_execute(&format!("CREATE TEMP VIEW {name} AS {select}")).unwrap();
        let typed = format!(
            "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = '{name}'::regclass AND attname = '{column}'"
        );
        let pg: String = client.query_one(&typed, &[]).unwrap().get(0);
        let section = report.split(&format!("view {name} (")).nth(1).unwrap_or_else(|| panic!("{name} in {report}"));
        let line = section.lines().find(|l| l.trim_start().starts_with(&format!("{column} "))).unwrap();
        let shown = line.split_whitespace().nth(1).unwrap();
        assert_eq!(shown, denorm_type(&pg), "{name}: denorm shows {line:?}, PostgreSQL {pg}");
    }

    let (mut rng, mut next) = (SplitMix(21), 1);
    for _ in 0..20 {
        transaction(&mut client, &mut rng, &mut next);
    }
    // Doubles by value: served JSON writes 1.0 where row_to_json writes 1.
    let doubles = |n: &str| n.starts_with("d_") || n.starts_with("x_");
    let named: Vec<(&str, &str)> = views.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    let (floats, exact): (Vec<_>, Vec<_>) = named.into_iter().partition(|(n, _)| doubles(n));
    let denorm = Denorm::start(&project.config);
    let compare = |client: &mut Client| {
        eventually(Duration::from_millis(50), || {
            pg_project::json_compare(&denorm, client, &exact, pg_project::exact_numbers)?;
            pg_project::json_compare(&denorm, client, &floats, numbers_as_doubles)
        })
    };
    compare(&mut client);
    for _ in 0..6 {
        for _ in 0..5 {
            transaction(&mut client, &mut rng, &mut next);
        }
        compare(&mut client);
    }
}
