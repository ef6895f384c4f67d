//! PostgreSQL's `upper`, `lower`, `initcap` and `ILIKE` follow the
//! database's `LC_CTYPE` (issue 11): under `C` only ASCII letters change
//! case (and only they are letters for `initcap`), under a UTF-8 locale
//! every letter does, one character to one (`ß` stays `ß`, a final `Σ`
//! lowers to `σ`). denorm reads `datctype` with the catalog; each view is
//! compared with PostgreSQL's own answer in a database of each kind, after
//! the snapshot and after changes.

mod common;
mod pg_project;

use std::time::Duration;

use common::eventually;
use pg_project::PgProject;

const SCHEMA: &str = "
CREATE TABLE words (id integer PRIMARY KEY, w text);
ALTER TABLE words REPLICA IDENTITY FULL;
";

const WORDS: &[&str] = &[
    "straße ÉCOLE",
    "ΣΑΣ όλοι Σ",
    "İstanbul ǅemal ǆx",
    "élan o'neil a1b",
    "École",
    "ﬁne ŉ ÿ Ÿ",
    "plain ascii Text",
    "ÀÉÎÕÜ àéîõü",
];

const VIEWS: &[(&str, &str)] = &[
    ("cases", "SELECT id, upper(w) AS u, lower(w) AS l, initcap(w) AS i FROM words"),
    (
        "matches",
        "SELECT id, w ILIKE '%école%' AS e, w ILIKE 'STRASSE%' AS s, w ILIKE '%σ%' AS sigma, \
         w NOT ILIKE '%ÀÉÎ%' AS accents FROM words",
    ),
    ("filtered", "SELECT id, w FROM words WHERE w ILIKE '%É%' OR lower(w) = 'école'"),
];

fn check(ctype: &str, name: &str) {
    let views: String = VIEWS.iter().map(|(n, s)| format!("CREATE MATERIALIZED VIEW {n} AS {s};\n")).collect();
    let project = PgProject::with_ctype(name, SCHEMA, &views, "", ctype);
    let mut client = project.client();
    let datctype: String =
        client.query_one("SELECT datctype FROM pg_database WHERE datname = current_database()", &[]).unwrap().get(0);
    assert_eq!(datctype, ctype);
    for (id, word) in WORDS.iter().enumerate() {
        client.execute("INSERT INTO words VALUES ($1, $2)", &[&(id as i32), word]).unwrap();
    }
    let denorm = common::Denorm::start(&project.config);
    let compare = |client: &mut postgres::Client| {
        eventually(Duration::from_millis(50), || {
            pg_project::json_compare(&denorm, client, VIEWS, pg_project::exact_numbers)
        })
    };
    compare(&mut client);
    // Changes: every word again under new ids, then the first half updated.
    for (id, word) in WORDS.iter().enumerate() {
        client.execute("INSERT INTO words VALUES ($1, $2)", &[&(100 + id as i32), &word.to_uppercase()]).unwrap();
    }
    client.batch_execute("UPDATE words SET w = w || ' ÉCOLE' WHERE id < 4").unwrap();
    compare(&mut client);
}

#[test]
fn case_mapping_under_lc_ctype_c_maps_only_ascii() {
    check("C", "ctype_c");
}

#[test]
fn case_mapping_under_a_utf8_lc_ctype_maps_every_letter() {
    check("C.UTF-8", "ctype_utf8");
}
