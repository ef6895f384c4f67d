//! JSON functions and aggregates: what plans in each dialect, the types and
//! names of the columns, and the refusals.

mod common;

use common::{error, plan_one};
use denorm_types::{Dialect, ScalarType};

fn view(select: &str) -> String {
    format!("CREATE MATERIALIZED VIEW v AS {select}")
}

#[test]
fn documents_plan_as_json_columns_named_like_the_source() {
    let sql = view(
        "SELECT p.id, json_object('name', p.name, 'reviews',
                  json_group_array(json_object('id', r.id, 'rating', r.rating) ORDER BY r.id DESC LIMIT 3)) AS doc,
                json_group_object(r.rating, r.id), json_group_array(r.body ORDER BY r.rating, r.id)
         FROM products p LEFT JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name",
    );
    let v = plan_one(&sql, Dialect::Sqlite);
    let columns: Vec<(&str, ScalarType, bool)> =
        v.columns.iter().map(|c| (c.name.as_str(), c.ty, c.nullable)).collect();
    assert_eq!(
        columns,
        vec![
            ("id", ScalarType::Int, false),
            ("doc", ScalarType::Json, false),
            ("json_group_object(r.rating, r.id)", ScalarType::Json, false),
            ("json_group_array(r.body ORDER BY r.rating, r.id)", ScalarType::Json, false),
        ]
    );
    let plan = v.plan.to_string();
    assert!(plan.contains("json_group_array(#"), "{plan}");
    assert!(plan.contains("DESC NULLS LAST LIMIT 3)"), "{plan}");

    let pg = view(
        "SELECT p.id, json_build_object('name', p.name, 'ids', json_agg(r.id ORDER BY r.id)), json_object_agg(r.body, r.rating)
         FROM products p JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name",
    );
    let v = plan_one(&pg, Dialect::Postgres);
    let columns: Vec<(&str, ScalarType, bool)> =
        v.columns.iter().map(|c| (c.name.as_str(), c.ty, c.nullable)).collect();
    assert_eq!(
        columns,
        vec![
            ("id", ScalarType::Int, false),
            ("json_build_object", ScalarType::Json, false),
            ("json_object_agg", ScalarType::Json, true),
        ]
    );
}

#[test]
fn null_ordering_follows_the_dialect() {
    let sql = view("SELECT json_group_array(id ORDER BY user_id, rating DESC, body NULLS LAST) AS a FROM reviews");
    let plan = plan_one(&sql, Dialect::Sqlite).plan.to_string();
    assert!(plan.contains("ASC NULLS FIRST, #") && plan.contains("DESC NULLS LAST, #"), "{plan}");
    let pg = view("SELECT json_agg(id ORDER BY user_id, rating DESC) AS a FROM reviews");
    let plan = plan_one(&pg, Dialect::Postgres).plan.to_string();
    assert!(plan.contains("ASC NULLS LAST, #") && plan.contains("DESC NULLS FIRST)"), "{plan}");
}

#[test]
fn a_json_column_of_a_subquery_is_text_in_sqlite_only() {
    let sql = "SELECT d FROM (SELECT id, json_object('id', id) AS d FROM posts) AS x";
    assert_eq!(plan_one(&view(sql), Dialect::Sqlite).columns[0].ty, ScalarType::Text);
    let pg = "SELECT d FROM (SELECT id, json_build_object('id', id) AS d FROM posts) AS x";
    assert_eq!(plan_one(&view(pg), Dialect::Postgres).columns[0].ty, ScalarType::Json);
}

#[test]
fn refusals() {
    let cases: &[(&str, Dialect, &str)] = &[
        ("SELECT json_group_array(id) FROM reviews", Dialect::Sqlite, "needs ORDER BY inside the call"),
        ("SELECT json_agg(id) FROM reviews", Dialect::Postgres, "needs ORDER BY inside the call"),
        ("SELECT json_agg(id ORDER BY id) FROM reviews", Dialect::Sqlite, "write json_group_array(…)"),
        ("SELECT json_build_object('a', id) FROM reviews", Dialect::Sqlite, "write json_object(…)"),
        ("SELECT json_object('a', id) FROM reviews", Dialect::Postgres, "write json_build_object(…)"),
        ("SELECT json_object(id, id) FROM reviews", Dialect::Sqlite, "keys must be text, not integer"),
        ("SELECT json_object('a') FROM reviews", Dialect::Sqlite, "even number of arguments"),
        (
            "SELECT json_group_array(id ORDER BY id LIMIT -1) FROM reviews",
            Dialect::Sqlite,
            "non-negative integer literal",
        ),
        (
            "SELECT json_group_array(id ORDER BY id LIMIT rating) FROM reviews",
            Dialect::Sqlite,
            "non-negative integer literal",
        ),
        ("SELECT json_group_array(DISTINCT id ORDER BY id) FROM reviews", Dialect::Sqlite, "DISTINCT is not supported"),
        ("SELECT json_group_object(id, rating ORDER BY id) FROM reviews", Dialect::Sqlite, "not supported inside"),
        ("SELECT json_group_object(price, id) FROM products", Dialect::Sqlite, "keys must be text or integers"),
        ("SELECT json_group_array(id ORDER BY json_object('a', id)) FROM reviews", Dialect::Sqlite, "by a JSON value"),
        (
            "SELECT id FROM reviews WHERE json_group_array(id ORDER BY id) IS NULL",
            Dialect::Sqlite,
            "not allowed in WHERE",
        ),
        ("SELECT json_group_array(COUNT(*) ORDER BY id) FROM reviews", Dialect::Sqlite, "cannot be nested"),
        (
            "SELECT id FROM reviews WHERE json_object('a', id) = '{}'",
            Dialect::Sqlite,
            "operator does not exist: json = text",
        ),
    ];
    for (select, dialect, want) in cases {
        let got = error(&view(select), *dialect);
        assert!(got.contains(want), "{select}: {got}");
    }
}
