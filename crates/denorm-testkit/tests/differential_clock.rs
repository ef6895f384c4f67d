//! `now()` and friends in views refreshed on a schedule (issue 11): the
//! engine reads the current time from its clock, a one-row input the
//! harness freezes. Random workloads over timestamps around the clock run
//! on a real SQLite and the engine; between batches the clock moves
//! (forward, by random steps, so rows age out and in without a source
//! change) and after every batch and every move each view of
//! `differential_clock.sql` must equal SQLite's answer with the same time
//! written in place of `'now'`.

use denorm_testkit::{Differential, Op, TableSpec};
use denorm_types::{Datum, Value};
use proptest::prelude::*;

const SCHEMA: &str = "
CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, created_at TEXT);
CREATE TABLE kinds (id INTEGER PRIMARY KEY, kind TEXT);
";

const VIEWS: &str = include_str!("differential_clock.sql");

/// 2024-05-01 10:00:00.250 UTC.
const START_MS: i64 = 1_714_557_600_250;

const KINDS: &[&str] = &["a", "b", "x"];

/// Timestamps within an hour and a half of the clock's range, to the
/// second or the millisecond, some on the day before.
fn stamp() -> BoxedStrategy<Value> {
    (-(90 * 60_000i64)..(40 * 60_000), any::<bool>())
        .prop_map(|(offset, ms)| {
            let t = START_MS + offset;
            let text = denorm_testkit::at_time("'now'", t);
            let text = text.trim_matches('\'');
            Value::from(if ms { text.to_string() } else { text[..19].to_string() })
        })
        .boxed()
}

fn tables() -> Vec<TableSpec> {
    let kind = || proptest::sample::select(KINDS).prop_map(Value::from).boxed();
    vec![
        TableSpec {
            name: "events",
            ids: 12,
            columns: vec![kind(), prop_oneof![1 => Just(Datum::Null), 8 => stamp()].boxed()],
        },
        TableSpec { name: "kinds", ids: 4, columns: vec![kind()] },
    ]
}

fn cases() -> u32 {
    std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse::<u32>().ok()).map_or(200, |c| (c / 4).max(50))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn views_reading_the_clock_equal_sqlite_at_the_same_time(
        ops in proptest::collection::vec(Op::strategy(&tables()), 1..40),
        moves in proptest::collection::vec(0i64..(25 * 60_000), 1..8),
    ) {
        let mut harness = Differential::new(SCHEMA, VIEWS, "differential_clock.sql");
        let mut at = START_MS;
        harness.set_clock(at).map_err(TestCaseError::fail)?;
        let chunk = ops.len().div_ceil(moves.len());
        for (ops, step) in ops.chunks(chunk).zip(&moves) {
            for op in ops {
                harness.step(&tables(), std::slice::from_ref(op)).map_err(TestCaseError::fail)?;
            }
            at += step;
            harness.set_clock(at).map_err(TestCaseError::fail)?;
        }
    }
}

/// A row ages out of `recent` when only the clock moves (every view
/// compared with SQLite at each time).
#[test]
fn rows_age_out_when_only_the_clock_moves() {
    let mut harness = Differential::new(SCHEMA, VIEWS, "differential_clock.sql");
    harness.set_clock(START_MS).unwrap();
    let insert = |id: i64, at: &str| Op::Insert {
        table: 0,
        values: vec![Datum::Int(id), Value::from("a"), Value::from(at.to_string())],
    };
    harness.step(&tables(), &[insert(1, "2024-05-01 09:00:01"), insert(2, "2024-05-01 09:59:00")]).unwrap();
    let recent = |h: &Differential| {
        let (_, id) = h.views.iter().find(|(def, _)| def.name == "recent").unwrap();
        let mut ids: Vec<i64> = h
            .dataflow
            .view_rows(*id)
            .into_iter()
            .map(|(row, _)| match row.get(0) {
                Datum::Int(i) => i,
                other => panic!("{other:?}"),
            })
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(recent(&harness), vec![1, 2]);
    // 10:00:01.250: row 1 (09:00:01) is more than an hour old.
    harness.set_clock(START_MS + 1_000).unwrap();
    assert_eq!(recent(&harness), vec![2]);
    // Hours later: nothing is recent.
    harness.set_clock(START_MS + 14 * 3_600_000).unwrap();
    assert_eq!(recent(&harness), Vec::<i64>::new());
}
