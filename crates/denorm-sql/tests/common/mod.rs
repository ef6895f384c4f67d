//! A small shop-and-blog catalog and a readable dump of planned views.
#![allow(dead_code)]

use denorm_sql::{plan_views, ViewDef};
use denorm_types::{Catalog, ColumnSchema, Dialect, ScalarType, TableSchema};

fn table(
    name: &str,
    columns: &[(&str, ScalarType, bool)],
    primary_key: Vec<usize>,
    unique_keys: Vec<Vec<usize>>,
) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: columns
            .iter()
            .map(|(n, ty, nullable)| ColumnSchema { name: (*n).into(), ty: *ty, nullable: *nullable })
            .collect(),
        primary_key,
        unique_keys,
    }
}

pub fn catalog() -> Catalog {
    use ScalarType::*;
    let mut c = Catalog::new();
    c.add(table("users", &[("id", Int, false), ("name", Text, false), ("email", Text, true)], vec![0], vec![vec![2]]));
    c.add(table(
        "posts",
        &[
            ("id", Int, false),
            ("author_id", Int, false),
            ("title", Text, false),
            ("body", Text, true),
            ("score", Float, true),
        ],
        vec![0],
        vec![],
    ));
    c.add(table("products", &[("id", Int, false), ("name", Text, false), ("price", Float, false)], vec![0], vec![]));
    c.add(table(
        "reviews",
        &[
            ("id", Int, false),
            ("product_id", Int, false),
            ("user_id", Int, true),
            ("rating", Int, false),
            ("body", Text, true),
        ],
        vec![0],
        vec![],
    ));
    // PostgreSQL: reviews.rating is an `integer` (SUM is bigint), every
    // other integer column a `bigint` (SUM is numeric).
    c.set_narrow_int("reviews", "rating");
    c.add(table("follows", &[("follower_id", Int, false), ("followee_id", Int, false)], vec![0, 1], vec![]));
    c.add(table("flags", &[("id", Int, false), ("on", Bool, false)], vec![0], vec![]));
    c
}

pub fn plan_one(sql: &str, dialect: Dialect) -> ViewDef {
    match plan_views(sql, &catalog(), dialect) {
        Ok(mut views) if views.len() == 1 => views.remove(0),
        Ok(views) => panic!("expected one view, got {}", views.len()),
        Err(errors) => panic!("{}", errors.iter().map(|e| e.render("views.sql")).collect::<Vec<_>>().join("\n")),
    }
}

/// The first error's report.
pub fn error(sql: &str, dialect: Dialect) -> String {
    match plan_views(sql, &catalog(), dialect) {
        Ok(_) => panic!("expected an error for {sql}"),
        Err(errors) => errors[0].render("views.sql"),
    }
}

pub fn describe(v: &ViewDef) -> String {
    let mut out = format!("view {} at {}\n", v.name, v.location);
    for c in &v.columns {
        out.push_str(&format!("  column {}: {}{}\n", c.name, c.ty, if c.nullable { " null" } else { "" }));
    }
    let key: Vec<&str> = v.key.columns.iter().map(|&i| v.columns[i].name.as_str()).collect();
    out.push_str(&format!("  key ({}) {:?} proven_unique={}\n", key.join(", "), v.key.origin, v.key.proven_unique));
    for d in &v.dependencies {
        out.push_str(&format!("  reads {}({})\n", d.table, d.columns.join(", ")));
    }
    if let Some(s) = v.max_staleness {
        out.push_str(&format!("  max_staleness {s:?}\n"));
    }
    if !v.order.is_empty() {
        let order: Vec<String> = v.order.iter().map(|k| format!("{} {}", v.columns[k.column].name, k)).collect();
        out.push_str(&format!("  read order: {}\n", order.join(", ")));
    }
    out.push_str(&format!("  sql: {}\n", v.select_sql));
    out.push_str(&v.plan.to_string());
    out
}
