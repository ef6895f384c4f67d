//! `now()`, `current_timestamp` and `current_date` in views refreshed on a
//! schedule, on a real PostgreSQL (`DENORM_TEST_POSTGRES_URL`): a row
//! leaves `created_at > now() - INTERVAL '1 hour'` once it is an hour old,
//! with no write, and every view equals PostgreSQL's own answer to its
//! SELECT (rows far from the edges but for the one that ages out: the
//! comparison does not depend on when either side reads the clock; waits
//! poll, never a duration).

mod common;
mod pg_project;

use common::{wait_for_ids, Denorm};
use pg_project::{assert_views_equal, PgProject};

const SCHEMA: &str = "
CREATE TABLE events (id integer PRIMARY KEY, kind text NOT NULL, created_at timestamptz NOT NULL, day date NOT NULL);
ALTER TABLE events REPLICA IDENTITY FULL;
";

const VIEWS: &[(&str, &str)] = &[
    ("recent", "SELECT id FROM events WHERE created_at > now() - INTERVAL '1 hour'"),
    ("today", "SELECT id, day = current_date AS is_today FROM events WHERE day >= current_date - 1"),
    (
        "by_kind",
        "SELECT kind, COUNT(*) AS n FROM events \
         WHERE created_at BETWEEN current_timestamp - INTERVAL '90 minutes' AND transaction_timestamp() GROUP BY kind",
    ),
];

#[test]
fn now_and_current_date_follow_the_clock() {
    let views: String = VIEWS
        .iter()
        .map(|(name, select)| format!("CREATE MATERIALIZED VIEW {name} WITH (refresh = '1s') AS {select};\n"))
        .collect();
    let project = PgProject::new("clock", SCHEMA, &views);
    let mut client = project.client();
    let insert = |client: &mut postgres::Client, id: i32, kind: &str, age: &str, days: i32| {
        client
            .execute(
                &format!(
                    "INSERT INTO events VALUES ($1, $2, now() - INTERVAL '{age}', (now() AT TIME ZONE 'UTC')::date - {days})"
                ),
                &[&id, &kind],
            )
            .unwrap();
    };
    insert(&mut client, 1, "a", "10 minutes", 0);
    insert(&mut client, 2, "b", "3 hours", 3);
    insert(&mut client, 3, "a", "40 minutes", 0);

    let out = project.denorm(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("  clock: reads the current time").count(), VIEWS.len(), "{stdout}");

    let denorm = Denorm::start(&project.config);
    wait_for_ids(&denorm, "recent", &[1, 3]);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);

    // An hour old 15 s from now: in the view, then out with no write.
    insert(&mut client, 4, "b", "3585 seconds", 1);
    wait_for_ids(&denorm, "recent", &[1, 3, 4]);
    wait_for_ids(&denorm, "recent", &[1, 3]);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    denorm.stop_cleanly();
}
