//! The `ChangeSource` contract, run the same way against every source
//! through `denorm_source::open` (what the engine sees): a snapshot, then
//! committed transactions in order as `Batch`es (full-width rows, -1 old /
//! +1 new), `release`, `resume` after the last position without repeating
//! or losing anything, `describe` and `lag`. A new source (a MySQL binlog…)
//! adds one arm to `sources()` here.

mod postgres_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use denorm_source::sqlite::{CaptureSpec, CapturedTable};
use denorm_source::{open, read_catalog, ChangeSource, Polled, PostgresConfig, SourceConfig, SqliteConfig};
use denorm_types::{Datum, Diff, Position, Row};

const SQLITE_SCHEMA: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);
INSERT INTO items VALUES (1, 'bolt', 10), (2, 'nut', 20);";
const POSTGRES_SCHEMA: &str = "CREATE TABLE items (id integer PRIMARY KEY, name text, qty integer);
ALTER TABLE items REPLICA IDENTITY FULL;
INSERT INTO items VALUES (1, 'bolt', 10), (2, 'nut', 20);";

fn item(id: i64, name: &str, qty: i64) -> Row {
    Row::pack([Datum::Int(id), Datum::owned_text(name), Datum::Int(qty)].iter().map(|d| d.borrowed()))
}

/// The multiset a consumer of the stream holds.
type Model = BTreeMap<Row, Diff>;

fn expect(rows: &[Row]) -> Model {
    rows.iter().map(|r| (r.clone(), 1)).collect()
}

/// Polls until a batch arrives; applies it to `model`; returns its position.
fn next_changes(source: &mut dyn ChangeSource, model: &mut Model) -> Position {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match source.poll(Duration::from_millis(100), &|| None).unwrap() {
            Polled::Changes(batch) => {
                assert!(batch.head >= batch.position);
                assert!(batch.undecodable.is_empty(), "{:?}", batch.undecodable);
                assert!(batch.commits.iter().all(|(table, at)| table == "items" && *at > 0.0), "{:?}", batch.commits);
                for (table, changes) in batch.tables {
                    assert_eq!(table, "items");
                    for (row, diff) in changes {
                        let weight = model.entry(row).or_default();
                        *weight += diff;
                        assert!(*weight >= 0, "a retraction of a row the consumer does not hold");
                    }
                }
                model.retain(|_, w| *w != 0);
                return batch.position;
            }
            Polled::Idle | Polled::Progress(_) => assert!(Instant::now() < deadline, "no changes arrived"),
            Polled::SchemaChanged { tables } => panic!("unexpected schema change of {tables:?}"),
        }
    }
}

/// The contract, given a source's config and a way to run SQL on it as
/// the application; the source, for source-specific checks.
fn contract(config: SourceConfig, write: &mut dyn FnMut(&str)) -> Box<dyn ChangeSource> {
    let catalog = read_catalog(&config).unwrap();
    let spec = CaptureSpec { tables: vec![CapturedTable::new("items", ["id", "name", "qty"])] };
    let mut source = open(&config, &catalog, &spec).unwrap();
    let snapshot = source.snapshot(&mut |_| {}).unwrap();
    assert_eq!(snapshot.tables.len(), 1);
    let mut model: Model = snapshot.tables[0].1.iter().map(|r| (r.clone(), 1)).collect();
    assert_eq!(model, expect(&[item(1, "bolt", 10), item(2, "nut", 20)]));
    assert!(!source.describe(snapshot.position).is_empty());

    // One transaction: an insert, an update (old row out, new row in), a delete.
    write(
        "BEGIN; INSERT INTO items VALUES (3, 'gear', 30); UPDATE items SET qty = 11 WHERE id = 1; \
           DELETE FROM items WHERE id = 2; COMMIT;",
    );
    let first = next_changes(&mut *source, &mut model);
    assert!(first > snapshot.position);
    assert_eq!(model, expect(&[item(1, "bolt", 11), item(3, "gear", 30)]));
    source.release(first).unwrap();
    assert!(source.release_interval() < Duration::from_secs(60));

    // Resumed after the last position: only what follows it arrives.
    assert!(source.can_resume());
    source.resume(first).unwrap();
    write("UPDATE items SET name = 'cog' WHERE id = 3");
    let second = next_changes(&mut *source, &mut model);
    assert!(second > first);
    assert_eq!(model, expect(&[item(1, "bolt", 11), item(3, "cog", 30)]));
    source.release(second).unwrap();
    source
}

#[test]
fn sqlite_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    rusqlite::Connection::open(&path).unwrap().execute_batch(SQLITE_SCHEMA).unwrap();
    let app = rusqlite::Connection::open(&path).unwrap();
    let mut source = contract(SourceConfig::Sqlite(SqliteConfig { path }), &mut |sql| app.execute_batch(sql).unwrap());
    assert!(source.lag().is_none(), "SQLite has no slot");
}

#[test]
fn postgres_keeps_the_contract() {
    let pg = postgres_common::Pg::new("contract", POSTGRES_SCHEMA);
    let mut app = pg.client();
    let config = SourceConfig::Postgres(PostgresConfig { url: pg.url.clone(), names: pg.names.clone() });
    let mut source = contract(config, &mut |sql| app.batch_execute(sql).unwrap());
    // The slot's lag is read on a thread of its own, about every second.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match source.lag() {
            Some(Ok(lag)) => {
                assert!(lag.server_position >= lag.confirmed_flush, "{lag:?}");
                break;
            }
            // The reader may have looked before the snapshot created the
            // slot; its next reading (about a second later) sees it.
            Some(Err(denorm_source::SourceError::SlotMissing { .. })) if Instant::now() < deadline => {}
            Some(Err(e)) => panic!("{e}"),
            None => assert!(Instant::now() < deadline, "no lag reading"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
