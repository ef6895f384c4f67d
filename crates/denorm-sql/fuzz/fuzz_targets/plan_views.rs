//! `cargo +nightly fuzz run plan_views` (from crates/denorm-sql): any text,
//! in both dialects, must plan or be refused, never panic.
#![no_main]

use denorm_sql::plan_views;
use denorm_types::{Catalog, ColumnSchema, Dialect, ScalarType, TableSchema};
use libfuzzer_sys::fuzz_target;

fn table(name: &str, columns: &[(&str, ScalarType)], primary_key: Vec<usize>) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: columns.iter().map(|(n, ty)| ColumnSchema { name: (*n).into(), ty: *ty, nullable: true }).collect(),
        primary_key,
        unique_keys: vec![],
    }
}

fn catalog() -> Catalog {
    use ScalarType::*;
    let mut c = Catalog::new();
    c.add(table("users", &[("id", Int), ("name", Text), ("active", Bool)], vec![0]));
    c.add(table("posts", &[("id", Int), ("author_id", Int), ("title", Text), ("score", Float)], vec![0]));
    c.add(table("reviews", &[("id", Int), ("product_id", Int), ("rating", Int)], vec![0]));
    c
}

fuzz_target!(|data: &[u8]| {
    if let Ok(sql) = std::str::from_utf8(data) {
        let catalog = catalog();
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            if let Err(errors) = plan_views(sql, &catalog, dialect) {
                for e in errors {
                    let _ = e.render("fuzz.sql");
                }
            }
        }
    }
});
