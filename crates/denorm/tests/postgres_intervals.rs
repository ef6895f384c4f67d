//! PostgreSQL interval values end to end: `denorm run` on a real
//! PostgreSQL (`DENORM_TEST_POSTGRES_URL`) under random transactions, a
//! captured `interval` column and intervals computed by views
//! (`timestamp - timestamp`, `timestamptz - timestamptz`, `age`, `± * /`,
//! `justify_interval`, `extract`/`date_part`, comparisons, MIN/MAX,
//! SUM/AVG (with FILTER, NULLs, empty groups and a global aggregate over
//! no rows), GROUP BY, ORDER BY … LIMIT), every view compared over HTTP with
//! PostgreSQL's own `row_to_json` of the view's SELECT (intervals as
//! PostgreSQL's text under its default `IntervalStyle = postgres`). Also
//! `character(n)` columns: compared, grouped, joined and matched ignoring
//! trailing blanks, sorted without them (ORDER BY … LIMIT), read as text
//! without them, output padded.

mod common;
mod pg_project;

use std::time::Duration;

use common::{eventually, get_text, Denorm, SplitMix};
use pg_project::PgProject;
use postgres::Client;
use serde_json::Value as Json;

const SCHEMA: &str = "
CREATE TABLE trips (id integer PRIMARY KEY, rider integer, started timestamp, ended timestamp,
    started_tz timestamptz, ended_tz timestamptz, planned interval);
ALTER TABLE trips REPLICA IDENTITY FULL;
";

/// Planned durations: no two of them have the same span in another form
/// ('1 day' beside '24 hours'), whose MIN/MAX PostgreSQL picks by scan order.
const PLANNED: [&str; 9] = [
    "1 day",
    "36 hours",
    "1 mon",
    "2 days 03:00:00",
    "-05:00:00",
    "1 year 2 mons",
    "00:30:00.25",
    "45 days",
    "-1 mons +3 days",
];

const VIEWS: &[(&str, &str)] = &[
    (
        "durations",
        "SELECT id, ended - started AS took, ended_tz - started_tz AS took_tz, age(ended, started) AS a, planned, \
         planned * 2 AS twice, planned / 3 AS third, -planned AS negated, started + planned AS due, \
         ended - INTERVAL '1 day 02:00' AS early, planned + (ended - started) AS total, \
         extract(epoch FROM ended - started) AS secs, extract(day FROM planned) AS days, \
         date_part('hour', planned) AS hours, justify_interval(planned * 1.5) AS justified, \
         (ended - started) > planned AS late, CAST(planned AS text) AS planned_text FROM trips",
    ),
    (
        "by_rider",
        "SELECT rider, MIN(ended - started) AS shortest, MAX(ended - started) AS longest, MIN(planned) AS least_planned, \
         MAX(planned) AS most_planned, COUNT(*) AS n FROM trips GROUP BY rider",
    ),
    ("by_duration", "SELECT ended - started AS took, COUNT(*) AS n FROM trips GROUP BY ended - started"),
    (
        "totals",
        "SELECT rider, SUM(planned) AS total_planned, AVG(planned) AS avg_planned, SUM(ended - started) AS total_took, \
         AVG(ended - started) AS avg_took, AVG(planned) FILTER (WHERE planned < '0') AS avg_negative, \
         SUM(planned * 7) FILTER (WHERE rider = 0) AS week_sum, COUNT(planned) AS n FROM trips GROUP BY rider",
    ),
    // One spelling per span among PLANNED: each group's interval is its
    // rows' own ('1 mon', not '30 days'), as PostgreSQL shows it.
    ("by_planned", "SELECT planned, COUNT(*) AS n, SUM(planned) AS s FROM trips GROUP BY planned"),
    ("distinct_planned", "SELECT DISTINCT planned FROM trips"),
    ("overall", "SELECT SUM(planned) AS s, AVG(ended - started) AS a FROM trips WHERE rider = 3 AND id % 3 = 0"),
    (
        "longest",
        "SELECT id, ended - started AS took FROM trips WHERE ended IS NOT NULL AND started IS NOT NULL \
         ORDER BY took DESC, id LIMIT 3",
    ),
    (
        "overdue",
        "SELECT id, rider FROM trips WHERE ended - started >= '2 days' OR planned < INTERVAL '0' OR planned = '30 days'",
    ),
];

/// Numbers as doubles: denorm serves a double precision `36` as `36.0`,
/// row_to_json as `36` (the numerics compared here have no trailing zeros).
fn numbers_as_doubles(v: Json) -> Json {
    match v {
        Json::Number(n) => n.as_f64().and_then(serde_json::Number::from_f64).map_or(Json::Null, Json::Number),
        Json::Array(items) => Json::Array(items.into_iter().map(numbers_as_doubles).collect()),
        Json::Object(map) => Json::Object(map.into_iter().map(|(k, v)| (k, numbers_as_doubles(v))).collect()),
        other => other,
    }
}

/// A `row_to_json` document or a served body, numbers as doubles.
fn read_doubles(text: &str) -> Json {
    numbers_as_doubles(serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

fn reference(client: &mut Client, select: &str) -> Vec<Json> {
    pg_project::json_reference(client, select, read_doubles)
}

fn served(denorm: &Denorm, path: &str) -> (u16, Vec<Json>) {
    pg_project::json_served(denorm, path, read_doubles)
}

fn compare(denorm: &Denorm, client: &mut Client) -> Result<(), String> {
    pg_project::json_compare(denorm, client, VIEWS, read_doubles)
}

struct Writer {
    client: Client,
    rng: SplitMix,
    next: i32,
}

impl Writer {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    fn maybe_null(&mut self, value: String) -> String {
        if self.below(12) == 0 {
            "NULL".into()
        } else {
            value
        }
    }

    /// A start within 2024 and an end from a little before it to 70 days
    /// after, at second or microsecond precision (crossing month ends).
    fn times(&mut self, tz: bool) -> (String, String) {
        let start = self.below(365 * 86_400);
        let length = self.below(70 * 86_400) as i64 - 3 * 3_600;
        let micros = self.below(2) * self.below(1_000_000);
        let ty = if tz { "TIMESTAMPTZ '2024-01-01 00:00:00+00'" } else { "TIMESTAMP '2024-01-01'" };
        let started = format!("{ty} + {start} * INTERVAL '1 second'");
        let ended = format!("{ty} + {start} * INTERVAL '1 second' + {length} * INTERVAL '1 second' + {micros} * INTERVAL '1 microsecond'");
        (self.maybe_null(started), self.maybe_null(ended))
    }

    fn values(&mut self, id: i32) -> String {
        let rider = self.below(4);
        let (started, ended) = self.times(false);
        let (started_tz, ended_tz) = self.times(true);
        let planned = PLANNED[self.below(PLANNED.len() as u64) as usize];
        let planned = self.maybe_null(format!("INTERVAL '{planned}'"));
        format!("({id}, {rider}, {started}, {ended}, {started_tz}, {ended_tz}, {planned})")
    }

    fn transaction(&mut self) {
        let mut sql = String::from("BEGIN;");
        for _ in 0..1 + self.below(4) {
            let target = 1 + self.below(self.next as u64) as i32;
            match self.below(6) {
                0..=2 => {
                    let id = self.next;
                    self.next += 1;
                    sql += &format!("INSERT INTO trips VALUES {};", self.values(id));
                }
                3 => {
                    let planned = PLANNED[self.below(PLANNED.len() as u64) as usize];
                    sql += &format!("UPDATE trips SET planned = INTERVAL '{planned}' WHERE id = {target};");
                }
                4 => {
                    sql +=
                        &format!("UPDATE trips SET ended = ended + INTERVAL '1 day 0.5 seconds' WHERE id = {target};")
                }
                _ => sql += &format!("DELETE FROM trips WHERE id = {target};"),
            }
        }
        sql += "COMMIT;";
        self.client.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}

#[test]
fn interval_views_equal_postgres_under_random_transactions() {
    let views: String = VIEWS.iter().map(|(n, s)| format!("CREATE MATERIALIZED VIEW {n} AS {s};\n")).collect();
    let project = PgProject::new("intervals_differential", SCHEMA, &views);
    let mut writer = Writer { client: project.client(), rng: SplitMix(17), next: 1 };
    for _ in 0..30 {
        writer.transaction();
    }
    // `denorm check` types the interval columns.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_denorm"))
        .args(["check", "--config"])
        .arg(&project.config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let column = |name: &str| {
        stdout.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|w| w.first() == Some(&name))
    };
    assert_eq!(column("took"), Some(vec!["took", "interval", "null"]), "{stdout}");
    assert_eq!(column("a"), Some(vec!["a", "interval", "null"]), "{stdout}");
    assert_eq!(column("secs"), Some(vec!["secs", "numeric", "null"]), "{stdout}");
    let mut client = project.client();
    let denorm = Denorm::start(&project.config);
    eventually(Duration::from_millis(50), || compare(&denorm, &mut client));
    for _ in 0..8 {
        for _ in 0..8 {
            writer.transaction();
        }
        eventually(Duration::from_millis(50), || compare(&denorm, &mut client));
    }

    // A key lookup by an interval column, parsed by the column's type:
    // '24:00:00' equals '1 day' as PostgreSQL compares intervals.
    let (status, rows) = served(&denorm, "/views/by_duration?took=eq.24:00:00");
    assert_eq!(status, 200, "{rows:?}");
    let want = reference(
        &mut client,
        "SELECT * FROM (SELECT ended - started AS took, COUNT(*) AS n FROM trips GROUP BY ended - started) d \
         WHERE took = '1 day'",
    );
    assert_eq!(rows, want);
    let (status, body) = get_text(&format!("{}/views/by_duration?took=eq.soon", denorm.base));
    assert_eq!(status, 400, "{body}");
}

const CHAR_SCHEMA: &str = "
CREATE TABLE items (id integer PRIMARY KEY, code char(4), label char(6), note text);
CREATE TABLE codes (code char(3) PRIMARY KEY, name text);
ALTER TABLE items REPLICA IDENTITY FULL;
ALTER TABLE codes REPLICA IDENTITY FULL;
";

const CHAR_VIEWS: &[(&str, &str)] = &[
    (
        "item_text",
        "SELECT id, code, label, length(code) AS len, octet_length(code) AS octets, code || '|' AS piped, \
         upper(label) AS up, CAST(code AS text) AS as_text, concat(code, '|') AS concatenated, \
         code = 'ab' AS is_ab, code = label AS same, code = note AS same_note, code LIKE 'ab%' AS like_ab, \
         code LIKE 'ab' AS like_exact, COALESCE(code, label) AS either FROM items",
    ),
    (
        "by_code",
        "SELECT code, COUNT(*) AS n, MIN(label) AS least, MAX(note) AS most, \
         string_agg(label, ',' ORDER BY id) AS labels, string_agg(note, ',' ORDER BY label, id) AS notes, \
         string_agg(DISTINCT code, ',' ORDER BY code) AS codes FROM items GROUP BY code",
    ),
    ("distinct_labels", "SELECT DISTINCT label FROM items"),
    ("named", "SELECT i.id, c.code, c.name FROM items i JOIN codes c ON c.code = i.code"),
    ("picked", "SELECT id FROM items WHERE code IN ('ab', 'c  ', 'xyz') OR label > 'b'"),
    // character(n) sorts without its trailing blanks: 'a' before 'a<tab>'.
    ("first_codes", "SELECT id, code FROM items WHERE code IS NOT NULL ORDER BY code, id LIMIT 4"),
    ("last_labels", "SELECT label, COUNT(*) AS n FROM items GROUP BY label ORDER BY label DESC LIMIT 3"),
    ("first_distinct", "SELECT DISTINCT code FROM items ORDER BY code LIMIT 2"),
    ("sub", "SELECT code, n FROM (SELECT code, COUNT(*) AS n FROM items GROUP BY code) AS g WHERE code = 'ab' OR code = 'c '"),
    // Set operations across widths (char(4) and char(3)) compare without
    // trailing blanks, EXCEPT showing the left operand's value; after text,
    // the character(n) side is read as text (stripped).
    ("code_except", "SELECT code FROM items EXCEPT SELECT code FROM codes"),
    // Regression: EXCEPT ALL compared character(4) with character(3)
    // padded ('ab  ' kept beside 'ab '); PostgreSQL compares them without
    // trailing blanks and shows the left operand's value.
    ("code_except_all", "SELECT code FROM items EXCEPT ALL SELECT code FROM codes"),
    ("note_or_code", "SELECT note FROM items UNION SELECT code FROM items"),
    // A window's ORDER BY sorts character(n) without its trailing blanks.
    (
        "ranked_codes",
        "SELECT id, code FROM (SELECT id, code, ROW_NUMBER() OVER (PARTITION BY label ORDER BY code, id) AS rn \
         FROM items) AS r WHERE rn <= 2",
    ),
    ("previous_code", "SELECT id, LAG(id) OVER (ORDER BY code, id) AS before FROM items"),
];

/// Views compared with a query computing denorm's rule where PostgreSQL's
/// choice depends on its scan order: a UNION across widths shows, per
/// value, the least (shortest-padded) of its spellings, and so does an
/// INTERSECT (PostgreSQL shows the operand it hashed).
const CHAR_RULES: &[(&str, &str, &str)] = &[
    (
        "code_union",
        "SELECT code FROM items UNION SELECT code FROM codes",
        "SELECT DISTINCT ON (code) code FROM (SELECT code FROM items UNION ALL SELECT code FROM codes) AS u \
         ORDER BY code, octet_length(code)",
    ),
    // character(n) then text is character(n): the text compared without
    // trailing blanks too.
    (
        "code_or_note",
        "SELECT code FROM items UNION SELECT note FROM items",
        "SELECT DISTINCT ON (code) code FROM (SELECT code FROM items UNION ALL SELECT note FROM items) AS u \
         ORDER BY code, octet_length(code)",
    ),
    // INTERSECT ALL shows the left operand's padding (PostgreSQL: the
    // operand it hashed).
    (
        "code_intersect_all",
        "SELECT code FROM items INTERSECT ALL SELECT code FROM codes",
        "SELECT code FROM items INTERSECT ALL SELECT CAST(code AS char(4)) FROM codes",
    ),
    (
        "codes_intersect",
        "SELECT code FROM codes INTERSECT SELECT code FROM items",
        "SELECT DISTINCT ON (code) code FROM (SELECT code FROM codes UNION ALL SELECT code FROM items) AS u \
         WHERE code IN (SELECT code FROM codes) AND code IN (SELECT code FROM items) ORDER BY code, octet_length(code)",
    ),
];

/// The view's read order without `order=` (its ORDER BY without LIMIT)
/// against PostgreSQL's: character(n) sorted without trailing blanks.
const ORDERED_CODES: &str = "SELECT id, code FROM items ORDER BY code, id";

const CODES: [&str; 8] = ["ab", "ab  ", "c", " c", "xyz", "a", "a\t", "a\t "];

fn char_compare(denorm: &Denorm, client: &mut Client) -> Result<(), String> {
    pg_project::json_compare(denorm, client, CHAR_VIEWS, read_doubles)?;
    let rules: Vec<(&str, &str)> = CHAR_RULES.iter().map(|(name, _, rule)| (*name, *rule)).collect();
    pg_project::json_compare(denorm, client, &rules, read_doubles)?;
    let (status, body) = get_text(&format!("{}/views/ordered_codes", denorm.base));
    if status != 200 {
        return Err(format!("ordered_codes: {status} {body}"));
    }
    let served: Vec<Json> =
        serde_json::from_str::<Vec<Json>>(&body).unwrap().into_iter().map(|r| r["id"].clone()).collect();
    let want: Vec<Json> = client
        .query(&format!("SELECT id FROM ({ORDERED_CODES}) AS o"), &[])
        .unwrap()
        .iter()
        .map(|r| Json::from(r.get::<_, i32>(0)))
        .collect();
    match served == want {
        true => Ok(()),
        false => Err(format!("ordered_codes read order: denorm {served:?}, PostgreSQL {want:?}")),
    }
}

#[test]
fn character_views_equal_postgres_under_random_transactions() {
    let mut views: String = CHAR_VIEWS.iter().map(|(n, s)| format!("CREATE MATERIALIZED VIEW {n} AS {s};\n")).collect();
    for (name, select, _) in CHAR_RULES {
        views += &format!("CREATE MATERIALIZED VIEW {name} AS {select};\n");
    }
    views += &format!("CREATE MATERIALIZED VIEW ordered_codes AS {ORDERED_CODES};\n");
    let project = PgProject::new("bpchar_differential", CHAR_SCHEMA, &views);
    let mut writer = project.client();
    writer
        .batch_execute("INSERT INTO codes VALUES ('ab', 'first'), ('c', 'third'), ('xyz', 'last'), (' c', 'spaced');")
        .unwrap();
    let mut rng = SplitMix(23);
    let pick = |rng: &mut SplitMix| CODES[rng.below(CODES.len() as u64) as usize];
    let transaction = |writer: &mut Client, rng: &mut SplitMix, next: &mut i32| {
        let mut sql = String::from("BEGIN;");
        for _ in 0..1 + rng.below(3) {
            let target = 1 + rng.below(*next as u64) as i32;
            match rng.below(5) {
                0..=2 => {
                    let (code, label, note) = (pick(rng), pick(rng), pick(rng));
                    let code = if rng.below(8) == 0 { "NULL".to_string() } else { format!("'{code}'") };
                    sql += &format!("INSERT INTO items VALUES ({next}, {code}, '{label}', '{note}');");
                    *next += 1;
                }
                3 => sql += &format!("UPDATE items SET code = '{}' WHERE id = {target};", pick(rng)),
                _ => sql += &format!("DELETE FROM items WHERE id = {target};"),
            }
        }
        sql += "COMMIT;";
        writer.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    };
    let mut next = 1;
    for _ in 0..20 {
        transaction(&mut writer, &mut rng, &mut next);
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_denorm"))
        .args(["check", "--config"])
        .arg(&project.config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let marked = stdout.lines().filter(|l| {
        l.split_whitespace().collect::<Vec<_>>().starts_with(&["code", "text", "null", "collate", "RTRIM"])
    });
    // item_text's, and by_code's grouped code (kept for an enclosing query).
    assert!(marked.count() >= 2, "{stdout}");
    let mut client = project.client();
    let denorm = Denorm::start(&project.config);
    eventually(Duration::from_millis(50), || char_compare(&denorm, &mut client));
    for _ in 0..6 {
        for _ in 0..6 {
            transaction(&mut writer, &mut rng, &mut next);
        }
        eventually(Duration::from_millis(50), || char_compare(&denorm, &mut client));
    }
}
