use denorm_expr::{Aggregate, AggregateFunc, Expr, Plan};
use denorm_types::{Catalog, ColumnSchema, Datum, Dialect, Row, ScalarType, TableSchema};

use super::*;
use crate::{Runtime, SourceBatch};

fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    let col = |name: &str, ty| ColumnSchema { name: name.into(), ty, nullable: true };
    catalog.add(TableSchema {
        name: "t".into(),
        columns: vec![col("id", ScalarType::Int), col("g", ScalarType::Int), col("x", ScalarType::Float)],
        primary_key: vec![0],
        unique_keys: vec![],
    });
    catalog
}

fn grouped(func: AggregateFunc) -> Plan {
    Plan::Reduce {
        input: Box::new(Plan::Get { table: "t".into(), arity: 3 }),
        group_key: vec![1],
        aggregates: vec![
            Aggregate { func: AggregateFunc::Count, arg: None },
            Aggregate { func, arg: Some(Expr::Column(2)) },
        ],
    }
}

fn loaded(plan: &Plan) -> (Dataflow, Vec<u8>) {
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    dataflow.add_view_emitting("v", plan).unwrap();
    let row = |i: i64| Row::pack([Datum::Int(i), Datum::Int(i % 7), Datum::Float(i as f64 * 0.1)]);
    let batch =
        SourceBatch { position: Position(9), tables: vec![("t".into(), (0..100).map(|i| (row(i), 1)).collect())] };
    dataflow.apply(&batch);
    let mut w = Writer::default();
    dataflow.save_checkpoint(&mut w).unwrap();
    (dataflow, w.buf)
}

fn fresh(plan: &Plan) -> Dataflow {
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    dataflow.add_view_emitting("v", plan).unwrap();
    dataflow
}

/// Every truncation is an error, never a panic. (Garbled row bytes are
/// not decoded here; the file holding a checkpoint is checksummed.)
#[test]
fn truncated_bytes_are_an_error() {
    let plan = grouped(AggregateFunc::Sum);
    let (_, bytes) = loaded(&plan);
    for end in 0..bytes.len() {
        assert!(fresh(&plan).load_checkpoint(&mut Reader::new(&bytes[..end])).is_err(), "truncated at {end}");
    }
}

/// A checkpoint of other views is refused by kind: another aggregate,
/// another view name, another version.
#[test]
fn other_views_are_a_mismatch() {
    let (_, bytes) = loaded(&grouped(AggregateFunc::Sum));
    let err = fresh(&grouped(AggregateFunc::Min)).load_checkpoint(&mut Reader::new(&bytes)).unwrap_err();
    assert!(matches!(err, CheckpointError::Mismatch(_)), "{err}");
    let mut renamed = Dataflow::new(catalog(), Dialect::Sqlite);
    renamed.add_view_emitting("w", &grouped(AggregateFunc::Sum)).unwrap();
    assert!(matches!(renamed.load_checkpoint(&mut Reader::new(&bytes)), Err(CheckpointError::Mismatch(_))));
    let mut old = bytes.clone();
    old[0] = 0;
    let err = fresh(&grouped(AggregateFunc::Sum)).load_checkpoint(&mut Reader::new(&old)).unwrap_err();
    assert!(err.to_string().contains("version 0"), "{err}");
}

/// Loaded state equals the saved state: same bytes saved again, same
/// state bytes for the groups, same outputs for the next batch.
#[test]
fn a_loaded_reduce_continues_as_the_original() {
    for func in [AggregateFunc::Sum, AggregateFunc::Min, AggregateFunc::CountDistinct, AggregateFunc::Avg] {
        let plan = grouped(func);
        let (mut original, bytes) = loaded(&plan);
        let mut copy = fresh(&plan);
        assert_eq!(copy.load_checkpoint(&mut Reader::new(&bytes)), Ok(Position(9)));
        let mut again = Writer::default();
        copy.save_checkpoint(&mut again).unwrap();
        assert_eq!(again.buf.len(), bytes.len());
        let change = Row::pack([Datum::Int(3), Datum::Int(3), Datum::Float(0.3)]);
        let batch = SourceBatch { position: Position(10), tables: vec![("t".into(), vec![(change, -1)])] };
        let (a, b) = (original.apply(&batch), copy.apply(&batch));
        assert_eq!(a.views, b.views);
        assert_eq!(a.views[0].changes.len(), 2, "{func:?}");
    }
}

/// An interval SUM/AVG accumulator (PostgreSQL) is saved and loaded exactly:
/// the loaded copy saves as many bytes and answers the next batch alike.
#[test]
fn a_loaded_interval_sum_continues_as_the_original() {
    use denorm_types::interval::Interval;
    let mut catalog = Catalog::new();
    let col = |name: &str, ty| ColumnSchema { name: name.into(), ty, nullable: true };
    catalog.add(TableSchema {
        name: "t".into(),
        columns: vec![col("id", ScalarType::Int), col("g", ScalarType::Int), col("x", ScalarType::Interval)],
        primary_key: vec![0],
        unique_keys: vec![],
    });
    let plan = Plan::Reduce {
        input: Box::new(Plan::Get { table: "t".into(), arity: 3 }),
        group_key: vec![1],
        aggregates: vec![
            Aggregate { func: AggregateFunc::Sum, arg: Some(Expr::Column(2)) },
            Aggregate { func: AggregateFunc::Avg, arg: Some(Expr::Column(2)) },
        ],
    };
    let dataflow = || {
        let mut d = Dataflow::new(catalog.clone(), Dialect::Postgres);
        d.add_view_emitting("v", &plan).unwrap();
        d
    };
    let row = |i: i64| {
        let x = Interval { months: (i % 5) as i32, days: (i % 3) as i32, micros: i * 1_234_567 };
        Row::pack([Datum::Int(i), Datum::Int(i % 4), Datum::Interval(x)])
    };
    let mut original = dataflow();
    let batch =
        SourceBatch { position: Position(9), tables: vec![("t".into(), (0..50).map(|i| (row(i), 1)).collect())] };
    original.apply(&batch);
    let mut w = Writer::default();
    original.save_checkpoint(&mut w).unwrap();
    let mut copy = dataflow();
    assert_eq!(copy.load_checkpoint(&mut Reader::new(&w.buf)), Ok(Position(9)));
    let mut again = Writer::default();
    copy.save_checkpoint(&mut again).unwrap();
    // Groups are saved in slot order, which the load's inserts may permute.
    assert_eq!(again.buf.len(), w.buf.len());
    let batch = SourceBatch { position: Position(10), tables: vec![("t".into(), vec![(row(7), -1)])] };
    let (a, b) = (original.apply(&batch), copy.apply(&batch));
    assert_eq!(a.views, b.views);
    assert_eq!(a.views[0].changes.len(), 2);
}

fn rows_t(ids: std::ops::Range<i64>) -> Vec<(Row, Diff)> {
    ids.map(|i| (Row::pack([Datum::Int(i), Datum::Int(i % 7), Datum::Float(i as f64 * 0.1)]), 1)).collect()
}

fn dataflow_of(views: &[(&str, &Plan)]) -> Dataflow {
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    for (name, plan) in views {
        dataflow.add_view_emitting(name, plan).unwrap();
    }
    dataflow
}

/// Views changed between a checkpoint and a restart: the new dataflow
/// (one view unchanged, one changed over a node it shares with the
/// unchanged one, one new; one dropped, built first so that every node id
/// moved) holds the unchanged view wholly in the checkpoint; the changed
/// and new views are built from the input rows at the checkpoint in a
/// dataflow of their own, and every node loads from one of the two. The
/// loaded dataflow then answers the next batch exactly as one built from
/// scratch over every batch, with as much state.
#[test]
fn a_dataflow_of_changed_views_loads_the_nodes_it_shares() {
    let dropped = grouped(AggregateFunc::Avg);
    let unchanged = grouped(AggregateFunc::Sum);
    let before = Plan::Distinct { input: Box::new(grouped(AggregateFunc::Min)) };
    let changed = Plan::Distinct { input: Box::new(grouped(AggregateFunc::Sum)) };
    let added = Plan::Distinct { input: Box::new(Plan::Get { table: "t".into(), arity: 3 }) };
    let first = SourceBatch { position: Position(9), tables: vec![("t".into(), rows_t(0..60))] };
    let mut old = dataflow_of(&[("dropped", &dropped), ("u", &unchanged), ("c", &before)]);
    old.apply(&first);
    let mut w = Writer::default();
    old.save_checkpoint(&mut w).unwrap();
    let saved = Saved::read(&mut Reader::new(&w.buf)).unwrap();
    assert_eq!(saved.position, Position(9));

    let new_views: [(&str, &Plan); 3] = [("u", &unchanged), ("c", &changed), ("n", &added)];
    let mut loaded = dataflow_of(&new_views);
    assert_eq!(loaded.views_held(&[&saved]), vec![true, false, false]);
    assert!(matches!(loaded.load_nodes(&[&saved], Position(9)), Err(CheckpointError::Mismatch(_))));
    let mut loaded = dataflow_of(&new_views);
    let mut rebuilt = dataflow_of(&[("c", &changed), ("n", &added)]);
    rebuilt.apply(&first);
    let mut donor = Writer::default();
    rebuilt.save_checkpoint(&mut donor).unwrap();
    let donor = Saved::read(&mut Reader::new(&donor.buf)).unwrap();
    assert_eq!(loaded.views_held(&[&saved, &donor]), vec![true, true, true]);
    assert_eq!(loaded.load_nodes(&[&saved, &donor], Position(9)), Ok(Position(9)));

    let mut scratch = dataflow_of(&new_views);
    scratch.apply(&first);
    // The same state (saved in slot order, which loading may permute).
    let saved_len = |d: &Dataflow| {
        let mut w = Writer::default();
        d.save_checkpoint(&mut w).unwrap();
        w.buf.len()
    };
    assert_eq!(saved_len(&loaded), saved_len(&scratch));
    let mut next = rows_t(60..70);
    next.extend(rows_t(0..5).into_iter().map(|(row, _)| (row, -1)));
    let next = SourceBatch { position: Position(10), tables: vec![("t".into(), next)] };
    let (a, b) = (loaded.apply(&next), scratch.apply(&next));
    assert_eq!(a.views, b.views);
    assert_eq!(a.views.len(), 3);
}

/// A version-1 dataflow checkpoint (nodes identified by id) is refused by
/// the node-by-node reader, with the reason.
#[test]
fn version_1_is_read_only_whole() {
    let (_, mut bytes) = loaded(&grouped(AggregateFunc::Sum));
    bytes[..4].copy_from_slice(&1u32.to_le_bytes());
    let err = Saved::read(&mut Reader::new(&bytes)).unwrap_err();
    assert!(err.to_string().contains("state version 1"), "{err}");
}
