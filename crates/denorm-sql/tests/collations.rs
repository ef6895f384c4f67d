//! SQLite collations in the planner: what a NOCASE / RTRIM column or a
//! `COLLATE` clause turns into (collation keys), and what is refused.
//! Regression for issue 11, wrong result 1: declared collations were
//! ignored, so `GROUP BY city` grouped `Paris` and `paris` apart.

mod common;

use denorm_sql::plan_views;
use denorm_types::{Catalog, Collation, Dialect};

/// The shared catalog plus `cities(id, city NOCASE, code RTRIM, plain)`.
fn catalog() -> Catalog {
    use denorm_types::{ColumnSchema, ScalarType, TableSchema};
    let mut c = common::catalog();
    let column = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Text, nullable: true };
    let mut columns = vec![ColumnSchema { name: "id".into(), ty: ScalarType::Int, nullable: false }];
    columns.extend(["city", "code", "plain"].map(column));
    c.add(TableSchema { name: "cities".into(), columns, primary_key: vec![0], unique_keys: vec![] });
    c.set_collation("cities", "city", Collation::NoCase);
    c.set_collation("cities", "code", Collation::Rtrim);
    c
}

fn plan(sql: &str, dialect: Dialect) -> String {
    let text = format!("CREATE MATERIALIZED VIEW v AS {sql};");
    match plan_views(&text, &catalog(), dialect) {
        Ok(views) => views.iter().map(common::describe).collect(),
        Err(errors) => panic!("{}", errors.iter().map(|e| e.render("views.sql")).collect::<Vec<_>>().join("\n")),
    }
}

fn error(sql: &str, dialect: Dialect) -> String {
    let text = format!("CREATE MATERIALIZED VIEW v AS {sql};");
    match plan_views(&text, &catalog(), dialect) {
        Ok(_) => panic!("expected an error for {sql}"),
        Err(errors) => errors[0].render("views.sql"),
    }
}

#[test]
fn collation_keys_in_plans() {
    let cases = [
        "SELECT city, COUNT(*) AS n FROM cities GROUP BY city",
        "SELECT id FROM cities WHERE city = 'Paris' AND plain = code AND code = plain",
        "SELECT DISTINCT code FROM cities",
        "SELECT id FROM cities WHERE plain COLLATE NOCASE IN ('A', 'b') OR plain IN ('x ' COLLATE RTRIM)",
        "SELECT id FROM cities WHERE 'ab' IN (code, 'x') OR 'AB' IN (city) OR plain IN ('A' COLLATE NOCASE, 'b')",
        "SELECT c.id, u.id AS uid FROM cities c JOIN users u ON u.name = c.city",
        "SELECT id, city FROM cities ORDER BY city, id LIMIT 3",
        "SELECT city, COUNT(*) AS n FROM cities GROUP BY city ORDER BY city",
        // Without LIMIT: the read order, under the column's collation.
        "SELECT id, city FROM cities ORDER BY city, id",
        "SELECT DISTINCT city FROM cities ORDER BY city",
        // … or under the collation the ORDER BY names (the read order's term
        // carries it; the key is not computed).
        "SELECT id, plain FROM cities ORDER BY plain COLLATE NOCASE",
        "SELECT id, city FROM cities ORDER BY city COLLATE BINARY DESC, id",
        "SELECT id, plain AS p FROM cities ORDER BY p COLLATE RTRIM, 1 COLLATE NOCASE",
        "SELECT DISTINCT plain FROM cities ORDER BY 1 COLLATE NOCASE",
        "SELECT city, COUNT(*) AS n FROM cities GROUP BY city ORDER BY city LIMIT 2",
        "SELECT city FROM cities UNION SELECT name FROM users",
        "SELECT code FROM cities INTERSECT SELECT plain FROM cities",
        "SELECT MIN(city) AS lo, COUNT(DISTINCT code) AS k, NULLIF(MAX(plain), 'x') AS hi FROM cities",
        // Counted under NOCASE: `c.city <> u.name` keyed as `c.city = u.name` would be.
        "SELECT u.id FROM users u WHERE EXISTS (SELECT 1 FROM cities c WHERE c.id = u.id AND c.city <> u.name)",
    ];
    let report: Vec<String> = cases.iter().map(|sql| format!("-- {sql}\n{}", plan(sql, Dialect::Sqlite))).collect();
    insta::assert_snapshot!("collation_keys_in_plans", report.join("\n"));
}

/// PostgreSQL compares bytewise: `COLLATE "C"` changes nothing.
#[test]
fn postgres_c_collation_is_bytewise() {
    let plan_lines = |sql: &str| {
        let text = plan(sql, Dialect::Postgres);
        text.lines().filter(|l| !l.contains("sql:")).map(String::from).collect::<Vec<_>>()
    };
    let with = plan_lines("SELECT id FROM users WHERE name < 'a' COLLATE \"C\"");
    assert_eq!(with, plan_lines("SELECT id FROM users WHERE name < 'a'"));
}

#[test]
fn refused_collations() {
    let cases = [
        // Reads sort by output columns (under any collation), not by others.
        ("order_without_limit", Dialect::Sqlite, "SELECT id FROM cities ORDER BY plain COLLATE NOCASE"),
        (
            "compound_order",
            Dialect::Sqlite,
            "SELECT city FROM cities UNION ALL SELECT name FROM users ORDER BY 1 LIMIT 2",
        ),
        (
            "distinct_reordered",
            Dialect::Sqlite,
            "SELECT DISTINCT city FROM cities ORDER BY city COLLATE BINARY LIMIT 2",
        ),
        ("unknown_collation", Dialect::Sqlite, "SELECT id FROM cities WHERE plain = 'a' COLLATE german"),
        ("postgres_collate", Dialect::Postgres, "SELECT id FROM users WHERE name = 'a' COLLATE \"de_DE\""),
        ("concat_of_collate", Dialect::Sqlite, "SELECT id FROM cities WHERE (plain COLLATE NOCASE) || 'x' = 'AX'"),
    ];
    let report: Vec<String> =
        cases.iter().map(|(name, dialect, sql)| format!("-- {name}: {sql}\n{}", error(sql, *dialect))).collect();
    insta::assert_snapshot!("refused_collations", report.join("\n"));
}

/// A column's collation shows in the view's output columns (the served
/// value is the collation key where the view groups or deduplicates).
#[test]
fn output_columns_carry_collations() {
    let views = plan_views(
        "CREATE MATERIALIZED VIEW v AS SELECT city, code, plain, plain COLLATE NOCASE AS p, city || '' AS e FROM cities;",
        &catalog(),
        Dialect::Sqlite,
    )
    .unwrap();
    let collations: Vec<Option<Collation>> = views[0].columns.iter().map(|c| c.collation).collect();
    assert_eq!(
        collations,
        [Some(Collation::NoCase), Some(Collation::Rtrim), Some(Collation::Binary), Some(Collation::NoCase), None]
    );
}

/// PostgreSQL `character(n)` (a column the source marks RTRIM) sorts
/// without its trailing blanks: ORDER BY … LIMIT by a hidden stripped
/// column; without LIMIT the read order is the stored (padded) column's.
/// (MIN/MAX compare `rtrim(x) || NUL || x`: `postgres_intervals.rs`
/// compares them with PostgreSQL.)
#[test]
fn character_n_sorts_without_its_blanks() {
    let cases = [
        "SELECT id, code FROM cities ORDER BY code, id LIMIT 3",
        "SELECT DISTINCT code FROM cities ORDER BY code DESC LIMIT 2",
        "SELECT id, code FROM cities ORDER BY code",
    ];
    let report: Vec<String> = cases.iter().map(|sql| format!("-- {sql}\n{}", plan(sql, Dialect::Postgres))).collect();
    insta::assert_snapshot!("character_n_sorts_without_its_blanks", report.join("\n"));
}
