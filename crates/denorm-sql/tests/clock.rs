//! The current-time functions (issue 11): refused in a view refreshed on
//! every change, with the advice in the hint; in a view refreshed on a
//! schedule, read from the engine's clock (`denorm_types::clock`), joined
//! once per clause like an uncorrelated scalar subquery.

mod common;

use denorm_sql::{plan_views, KeyOrigin};
use denorm_types::{clock, Dialect, ScalarType};

const HINT: &str = "hint: add WITH (refresh = '1m') to the view to recompute it with the current time every minute, \
                    or compare with a fixed date";

fn scheduled(select: &str) -> String {
    format!("CREATE MATERIALIZED VIEW v WITH (refresh = '30s') AS {select}")
}

fn on_change(select: &str) -> String {
    format!("CREATE MATERIALIZED VIEW v AS {select}")
}

/// Every spelling of the current time, refused without a schedule (naming
/// the function, the advice in the hint), accepted with one.
#[test]
fn refused_without_a_schedule_accepted_with_one() {
    let cases: &[(Dialect, &str, &str)] = &[
        (Dialect::Postgres, "SELECT id, now() AS t FROM posts", "now()"),
        (Dialect::Postgres, "SELECT id, current_timestamp AS t FROM posts", "current_timestamp()"),
        (Dialect::Postgres, "SELECT id, transaction_timestamp() AS t FROM posts", "transaction_timestamp()"),
        (Dialect::Postgres, "SELECT id, statement_timestamp() AS t FROM posts", "statement_timestamp()"),
        (Dialect::Postgres, "SELECT id, clock_timestamp() AS t FROM posts", "clock_timestamp()"),
        (Dialect::Postgres, "SELECT id FROM posts WHERE CAST(title AS DATE) = current_date", "current_date()"),
        (Dialect::Postgres, "SELECT id, localtimestamp AS t FROM posts", "localtimestamp()"),
        (Dialect::Sqlite, "SELECT id FROM posts WHERE title > datetime('now', '-1 hour')", "datetime(…) with 'now'"),
        (Dialect::Sqlite, "SELECT id FROM posts WHERE title > date('NOW')", "date(…) with 'now'"),
        (Dialect::Sqlite, "SELECT id, time('now') AS t FROM posts", "time(…) with 'now'"),
        (Dialect::Sqlite, "SELECT id, julianday('now') AS t FROM posts", "julianday(…) with 'now'"),
        (Dialect::Sqlite, "SELECT id, unixepoch('now') AS t FROM posts", "unixepoch(…) with 'now'"),
        (Dialect::Sqlite, "SELECT id, unixepoch() AS t FROM posts", "unixepoch(…) with 'now'"),
        (Dialect::Sqlite, "SELECT id, strftime('%s', 'now', '+1 day') AS t FROM posts", "strftime(…) with 'now'"),
        (Dialect::Sqlite, "SELECT id, strftime('%s') AS t FROM posts", "strftime(…) with 'now'"),
        (Dialect::Sqlite, "SELECT id FROM posts WHERE title > CURRENT_DATE", "current_date()"),
        (Dialect::Sqlite, "SELECT id, CURRENT_TIME AS t FROM posts", "current_time()"),
        (Dialect::Sqlite, "SELECT id, CURRENT_TIMESTAMP AS t FROM posts", "current_timestamp()"),
    ];
    for (dialect, select, named) in cases {
        let error = common::error(&on_change(select), *dialect);
        assert!(error.contains(&format!("error: {named} reads the current time")), "{select}:\n{error}");
        assert!(error.contains(HINT), "{select}:\n{error}");
        let def = common::plan_one(&scheduled(select), *dialect);
        assert!(def.plan.reads_clock(), "{select}:\n{}", def.plan);
        // The clock is no source table: nothing to capture.
        assert!(def.dependencies.iter().all(|d| d.table == "posts"), "{select}: {:?}", def.dependencies);
    }
}

/// The types PostgreSQL gives them; SQLite's are text, julian days,
/// seconds.
#[test]
fn types() {
    let ty = |dialect, select: &str| {
        let def = common::plan_one(&scheduled(select), dialect);
        (def.columns[0].ty, def.columns[0].nullable)
    };
    assert_eq!(ty(Dialect::Postgres, "SELECT now() AS t"), (ScalarType::TimestampTz, false));
    assert_eq!(ty(Dialect::Postgres, "SELECT current_date AS t"), (ScalarType::Date, false));
    assert_eq!(ty(Dialect::Postgres, "SELECT localtimestamp AS t"), (ScalarType::Timestamp, false));
    assert_eq!(ty(Dialect::Sqlite, "SELECT CURRENT_TIMESTAMP AS t"), (ScalarType::Text, false));
    assert_eq!(ty(Dialect::Sqlite, "SELECT julianday('now') AS t").0, ScalarType::Float);
    assert_eq!(ty(Dialect::Sqlite, "SELECT unixepoch() AS t").0, ScalarType::Int);
}

/// Every current-time call of a clause reads one joined clock row (the
/// same instant everywhere), and the view keeps its primary key.
#[test]
fn one_clock_per_clause_and_the_key_is_kept() {
    let def = common::plan_one(
        &scheduled(
            "SELECT id, datetime('now') AS at FROM posts \
             WHERE title > datetime('now', '-1 hour') AND title < datetime('now')",
        ),
        Dialect::Sqlite,
    );
    let plan = def.plan.to_string();
    // WHERE joins it once, the SELECT list once.
    assert_eq!(plan.matches(clock::TABLE).count(), 2, "{plan}");
    assert_eq!(def.key.origin, KeyOrigin::PrimaryKey);
    assert!(def.key.proven_unique);
}

/// Grouped queries, HAVING, subqueries, CTEs and a SELECT without FROM
/// read it too.
#[test]
fn everywhere_a_subquery_can_be() {
    for select in [
        "SELECT author_id, count(*) AS n FROM posts WHERE title > date('now') GROUP BY author_id",
        "SELECT author_id, max(title) AS m FROM posts GROUP BY author_id HAVING max(title) > date('now', '-7 days')",
        "SELECT author_id, count(*) AS n, date('now') AS d FROM posts GROUP BY author_id",
        "SELECT u.id, (SELECT count(*) FROM posts p WHERE p.author_id = u.id AND p.title > date('now')) AS n FROM users u",
        "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id AND p.title > date('now'))",
        "WITH recent AS (SELECT id, author_id FROM posts WHERE title > date('now')) SELECT author_id, count(*) AS n FROM recent GROUP BY author_id",
        "SELECT r.id FROM (SELECT id FROM posts WHERE title > datetime('now', '-1 day')) AS r",
        "SELECT date('now') AS today",
    ] {
        let def = common::plan_one(&scheduled(select), Dialect::Sqlite);
        assert!(def.plan.reads_clock(), "{select}");
    }
}

/// Views that do not call the current-time functions do not read the clock.
#[test]
fn others_do_not_read_it() {
    let views =
        "CREATE MATERIALIZED VIEW a WITH (refresh = '1m') AS SELECT id FROM posts WHERE title > date('2024-01-01');
                 CREATE MATERIALIZED VIEW b AS SELECT id FROM posts";
    for def in plan_views(views, &common::catalog(), Dialect::Sqlite).unwrap() {
        assert!(!def.plan.reads_clock(), "{}", def.name);
    }
}

/// PostgreSQL: `now() - INTERVAL '1 hour'` is a timestamptz (a constant
/// interval of hours, minutes and seconds is the same span in every time
/// zone); days and months are refused, the hint says to write hours.
#[test]
fn timestamptz_minus_hours() {
    let def = common::plan_one(
        &scheduled("SELECT id FROM posts WHERE CAST(body AS TIMESTAMPTZ) > now() - INTERVAL '90 minutes'"),
        Dialect::Postgres,
    );
    assert!(def.plan.reads_clock());
    let error = common::error(
        &scheduled("SELECT id FROM posts WHERE CAST(body AS TIMESTAMPTZ) > now() - INTERVAL '1 day'"),
        Dialect::Postgres,
    );
    assert!(error.contains("timestamptz ± interval is not supported"), "{error}");
    assert!(error.contains("hint: write the interval in hours (INTERVAL '24 hours')"), "{error}");
}

/// PostgreSQL's `age(t)` is `age(current_date, t)`: refused without a
/// schedule (both fixes in the hint), the clock's date with one.
#[test]
fn age_of_one_timestamp() {
    let select = "SELECT id, age(CAST(body AS TIMESTAMP)) AS a FROM posts";
    let error = common::error(&on_change(select), Dialect::Postgres);
    assert!(error.contains("age(timestamp) reads the current date"), "{error}");
    assert!(error.contains("hint: write age(a, b) over two columns, or add WITH (refresh = '1m')"), "{error}");
    let def = common::plan_one(&scheduled(select), Dialect::Postgres);
    assert!(def.plan.reads_clock());
    assert_eq!(def.columns[1].ty, ScalarType::Interval);
}
