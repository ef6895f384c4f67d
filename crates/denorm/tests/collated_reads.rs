//! Reads of columns declared `COLLATE NOCASE` / `RTRIM` through the running
//! binary compare as SQLite compares them in a WHERE (issue 11): every HTTP
//! filter below is checked against SQLite's own answer to the same
//! condition, `order=` against its ORDER BY, through random writes.

mod common;

use common::{page_rows, Denorm, Project, SplitMix};
use denorm_types::{Collation, Datum, Value};
use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE cities (id INTEGER PRIMARY KEY, city TEXT COLLATE NOCASE, code TEXT COLLATE RTRIM, pop INTEGER);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW all_cities AS SELECT id, city, code, pop FROM cities;
CREATE MATERIALIZED VIEW city_groups AS SELECT city, COUNT(*) AS n FROM cities GROUP BY city;
CREATE MATERIALIZED VIEW ordered_distinct AS SELECT DISTINCT city FROM cities ORDER BY city DESC;
CREATE MATERIALIZED VIEW ordered_cities AS SELECT id, city, code, pop FROM cities ORDER BY city DESC, code, id;
CREATE MATERIALIZED VIEW named_collations AS
  SELECT id, city, code, city COLLATE BINARY AS raw FROM cities
  ORDER BY raw COLLATE NOCASE DESC, code COLLATE NOCASE, city COLLATE BINARY, id;
CREATE MATERIALIZED VIEW named_rtrim AS SELECT id, city COLLATE BINARY AS raw FROM cities ORDER BY raw COLLATE RTRIM, id DESC;
CREATE MATERIALIZED VIEW named_binary AS SELECT id, city FROM cities ORDER BY city COLLATE BINARY, id;
";

/// Views ordered without LIMIT under a collation the ORDER BY names (not
/// the column's own), with SQLite's ORDER BY for their rows.
const NAMED: &[(&str, &[&str], &str)] = &[
    (
        "named_collations",
        &["id", "city", "code", "raw"],
        "SELECT id, city, code, city COLLATE BINARY AS raw FROM cities \
         ORDER BY raw COLLATE NOCASE DESC, code COLLATE NOCASE, city COLLATE BINARY, id",
    ),
    (
        "named_rtrim",
        &["id", "raw"],
        "SELECT id, city COLLATE BINARY AS raw FROM cities ORDER BY raw COLLATE RTRIM, id DESC",
    ),
    ("named_binary", &["id", "city"], "SELECT id, city FROM cities ORDER BY city COLLATE BINARY, id"),
];

const CITIES: [&str; 9] = ["paris", "Paris", "PARIS", "lyon", "Lyon", "nice", "Nice ", "oslo", "Zed"];
const CODES: [&str; 5] = ["ab", "ab ", "ab  ", "x", " x"];

/// (HTTP query on all_cities, the same condition and order in SQL).
const READS: &[(&str, &str)] = &[
    ("city=eq.paris", "WHERE city = 'paris'"),
    ("city=eq.NICE", "WHERE city = 'NICE'"),
    ("city=neq.PARIS", "WHERE city <> 'PARIS'"),
    ("city=in.(PARIS,lyon)", "WHERE city IN ('PARIS', 'lyon')"),
    ("city=not.in.(PARIS,lyon)", "WHERE city NOT IN ('PARIS', 'lyon')"),
    ("city=lt.NICE", "WHERE city < 'NICE'"),
    ("city=gte.Lyon", "WHERE city >= 'Lyon'"),
    ("city=isdistinct.paris", "WHERE city IS NOT 'paris'"),
    ("code=eq.ab", "WHERE code = 'ab'"),
    ("code=eq.ab%20%20%20", "WHERE code = 'ab   '"),
    ("or=(city.eq.LYON,code.eq.x)", "WHERE city = 'LYON' OR code = 'x'"),
    // SQLite LIKE folds ASCII case whatever the collation (PostgREST: ilike).
    ("city=ilike.p*", "WHERE city LIKE 'p%'"),
    ("order=city,id", "ORDER BY city, id"),
    ("order=city.desc,code,id", "ORDER BY city DESC, code, id"),
    ("city=eq.paris&order=code.desc,id&limit=2", "WHERE city = 'paris' ORDER BY code DESC, id LIMIT 2"),
];

fn sqlite_rows(db: &Connection, sql: &str) -> Vec<Vec<Value>> {
    let mut statement = db.prepare(sql).unwrap();
    let width = statement.column_count();
    let rows = statement
        .query_map([], |r| {
            (0..width)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Datum::Null,
                        rusqlite::types::ValueRef::Integer(n) => Datum::Int(n),
                        rusqlite::types::ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                        other => panic!("unexpected {other:?}"),
                    })
                })
                .collect::<rusqlite::Result<Vec<Value>>>()
        })
        .unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

fn write(db: &Connection, rng: &mut SplitMix, next: &mut i64) {
    let pick = |rng: &mut SplitMix, from: &[&str]| from[rng.below(from.len() as u64) as usize].to_string();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0..=1 => {
                let (city, code, pop) = (pick(rng, &CITIES), pick(rng, &CODES), rng.below(100) as i64);
                db.execute("INSERT INTO cities VALUES (?1, ?2, ?3, ?4)", rusqlite::params![*next, city, code, pop])
                    .unwrap();
                *next += 1;
            }
            2 => {
                let id = 1 + rng.below(*next as u64) as i64;
                db.execute("UPDATE cities SET city = ?1 WHERE id = ?2", rusqlite::params![pick(rng, &CITIES), id])
                    .unwrap();
            }
            _ => {
                let id = 1 + rng.below(*next as u64) as i64;
                db.execute("DELETE FROM cities WHERE id = ?1", [id]).unwrap();
            }
        }
    }
}

/// Each read equals SQLite's rows for the same condition (ordered reads in
/// order, the others as sets); the grouped view's lookups find the group
/// whatever the spelling asked.
fn compare(denorm: &Denorm, db: &Connection) -> Result<(), String> {
    let columns: Vec<String> = ["id", "city", "code", "pop"].iter().map(|c| c.to_string()).collect();
    for (query, condition) in READS {
        let mut got = page_rows(denorm, "all_cities", query, &columns, &[]);
        let mut want = sqlite_rows(db, &format!("SELECT id, city, code, pop FROM cities {condition}"));
        if !query.contains("order=") {
            got.sort_by_key(|r| format!("{r:?}"));
            want.sort_by_key(|r| format!("{r:?}"));
        }
        if got != want {
            return Err(format!("?{query}: denorm {got:?}\nSQLite ({condition}) {want:?}"));
        }
    }
    // ORDER BY without LIMIT: the read order, under the columns' collations.
    let got = page_rows(denorm, "ordered_cities", "", &columns, &[]);
    let want = sqlite_rows(db, "SELECT id, city, code, pop FROM cities ORDER BY city DESC, code, id");
    if got != want {
        return Err(format!("ordered_cities: denorm {got:?}\nSQLite {want:?}"));
    }
    // ORDER BY naming a collation (NOCASE over a BINARY column, BINARY
    // over a NOCASE one, NOCASE over an RTRIM one): the read order sorts
    // under it.
    for (view, columns, sql) in NAMED {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let got = page_rows(denorm, view, "", &columns, &[]);
        let want = sqlite_rows(db, sql);
        if got != want {
            return Err(format!("{view}: denorm {got:?}\nSQLite {want:?}"));
        }
    }
    // DISTINCT ordered without LIMIT: a row's spelling per city (SQLite's
    // is the first it scans: compared by key), in order.
    let keys = |rows: Vec<Vec<Value>>| -> Vec<String> {
        rows.iter()
            .map(|r| match &r[0] {
                Datum::Text(t) => Collation::NoCase.key(t).into_owned(),
                other => format!("{other:?}"),
            })
            .collect()
    };
    let got = page_rows(denorm, "ordered_distinct", "", &["city".to_string()], &[]);
    let want = sqlite_rows(db, "SELECT DISTINCT city FROM cities ORDER BY city DESC");
    let spelled = got.iter().all(|r| match &r[0] {
        Datum::Text(t) => {
            !sqlite_rows(db, &format!("SELECT 1 FROM cities WHERE city = '{t}' COLLATE BINARY")).is_empty()
        }
        _ => true,
    });
    if keys(got.clone()) != keys(want.clone()) || !spelled {
        return Err(format!("ordered_distinct: denorm {got:?}\nSQLite {want:?}"));
    }
    let group_columns = vec!["city".to_string(), "n".to_string()];
    for asked in ["paris", "PARIS", "nice", "ZED", "rome"] {
        let key = |rows: Vec<Vec<Value>>| -> Vec<(String, Value)> {
            rows.into_iter()
                .map(|r| match &r[0] {
                    Datum::Text(t) => (Collation::NoCase.key(t).into_owned(), r[1].clone()),
                    other => (format!("{other:?}"), r[1].clone()),
                })
                .collect()
        };
        let got = key(page_rows(denorm, "city_groups", &format!("city=eq.{asked}"), &group_columns, &[]));
        let sql = format!("SELECT city, COUNT(*) FROM cities GROUP BY city HAVING city = '{asked}'");
        let want = key(sqlite_rows(db, &sql));
        if got != want {
            return Err(format!("city_groups?city=eq.{asked}: denorm {got:?}, SQLite {want:?}"));
        }
    }
    Ok(())
}

#[test]
fn collated_columns_filter_and_sort_as_sqlite_compares() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    let (mut rng, mut next) = (SplitMix(11), 1);
    for _ in 0..6 {
        write(&db, &mut rng, &mut next);
    }
    let denorm = Denorm::start(&project.config);
    for _ in 0..8 {
        common::eventually(std::time::Duration::from_millis(50), || compare(&denorm, &db));
        write(&db, &mut rng, &mut next);
    }
}
