//! Prints the optimized plans denorm maintains for TPC-H queries, as the
//! operators see them: `cargo run --release -p denorm-testkit --example
//! tpch_plans -- q07 q21`. With `DENORM_BENCH_SCALE` set the tables are
//! first filled at that scale factor, so the planner's join order follows
//! the row estimates a real database gives (SQLite's largest rowid).

use denorm_sql::plan_views;
use denorm_testkit::{tpch, SqliteReference};
use denorm_types::Dialect;

fn main() {
    let connection = rusqlite::Connection::open_in_memory().expect("an in-memory database opens");
    match std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse::<f64>().ok()) {
        Some(scale) => tpch::load(&connection, scale).expect("TPC-H data loads"),
        None => connection.execute_batch(tpch::SCHEMA).expect("the TPC-H schema applies"),
    }
    let catalog = SqliteReference { connection }.catalog();
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    for (name, query) in tpch::QUERIES {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        match plan_views(&tpch::view(name, query), &catalog, Dialect::Sqlite) {
            Ok(views) => {
                for view in views {
                    println!("{}:\n{}", view.name, denorm_expr::optimize(view.plan));
                }
            }
            Err(errors) => println!("{name}: refused: {}", errors[0].render("tpch.sql")),
        }
    }
}
