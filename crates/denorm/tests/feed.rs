//! Feed views (`partition_by`, `order_by`, `fanout_limit`, `retain`),
//! differentially: every page a reader asks for equals SQLite's answer to
//! the defining query with `WHERE owner_id = ? ORDER BY … LIMIT …`, whether
//! its rows were fanned out on write or merged in at read time, through
//! random follows and unfollows (a tiny `fanout_limit`, so authors cross it
//! both ways all the time), posts inserted, moved and deleted, author
//! renames, NULLs in the order columns and duplicate timestamps.
//!
//! - in process: the planner's feed plans on a `Dataflow`, published
//!   through `denorm_serve`'s `Publisher` exactly as the engine does, read
//!   with `read_rows` (proptest, beside a real SQLite);
//! - O(1) fan-out for celebrities, counted by `denorm_fanout_rows_written_total`,
//!   and follows that cross no threshold change nothing downstream;
//! - end to end: the real binary on a SQLite file written by this process.

mod common;

use std::collections::BTreeMap;

use common::{committed_position, datum, Denorm, Project};
use denorm_core::{Dataflow, Runtime, SourceBatch};
use denorm_serve::{Publisher, Reader, ViewInfo};
use denorm_sql::{plan_views, ViewDef};
use denorm_testkit::{apply_workload, Op, SqliteReference, TableSpec};
use denorm_types::{Datum, Dialect, Diff, Position, Row, Value};
use proptest::prelude::*;
use rusqlite::Connection;
use serde_json::Value as Json;

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, avatar_url TEXT);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER, body TEXT, created_at INTEGER);
CREATE TABLE follows (id INTEGER PRIMARY KEY, follower_id INTEGER, followee_id INTEGER);
";

const SELECT: &str = "SELECT f.follower_id AS owner_id, p.id AS post_id, p.body, p.created_at, \
     u.name AS author_name, u.avatar_url AS author_avatar \
     FROM follows f JOIN posts p ON p.author_id = f.followee_id JOIN users u ON u.id = p.author_id";

const COLUMNS: [&str; 6] = ["owner_id", "post_id", "body", "created_at", "author_name", "author_avatar"];

/// One feed of the suite: its options and the same order in SQLite's words.
struct Feed {
    name: &'static str,
    options: &'static str,
    /// The feed's order as SQLite writes it, NULL placement explicit.
    order_sql: &'static str,
    retain: Option<usize>,
}

const FEEDS: [Feed; 3] = [
    Feed {
        name: "home_feed",
        options: "partition_by = 'owner_id', order_by = 'created_at DESC, post_id DESC', fanout_limit = 2",
        order_sql: "created_at DESC NULLS FIRST, post_id DESC NULLS FIRST",
        retain: None,
    },
    Feed {
        name: "capped_feed",
        options:
            "partition_by = 'owner_id', order_by = 'created_at DESC NULLS LAST, post_id', fanout_limit = 1, retain = 3",
        order_sql: "created_at DESC NULLS LAST, post_id ASC NULLS LAST",
        retain: Some(3),
    },
    // A window of 4 with authors crossing a limit of 3 both ways.
    Feed {
        name: "window_feed",
        options: "partition_by = 'owner_id', order_by = 'created_at DESC, post_id DESC', fanout_limit = 3, retain = 4",
        order_sql: "created_at DESC NULLS FIRST, post_id DESC NULLS FIRST",
        retain: Some(4),
    },
];

/// Rows equal on the feed's order come by their other columns, ascending.
const TIE: &str = "owner_id, post_id, body, created_at, author_name, author_avatar";

fn views_sql() -> String {
    FEEDS.iter().map(|f| format!("CREATE MATERIALIZED VIEW {} WITH ({}) AS {SELECT};\n", f.name, f.options)).collect()
}

/// The reads checked for one owner: (query string, SQLite's ORDER BY before
/// the feed's own order, extra WHERE, OFFSET, LIMIT).
fn reads(owner: i64, n: usize, t: i64) -> Vec<(String, String, String, usize, usize)> {
    vec![
        // The first page, in the feed's order.
        (format!("owner_id=eq.{owner}&limit={n}"), String::new(), String::new(), 0, n),
        // Keyset pagination, the usual order (HTTP: DESC puts NULLs first).
        (
            format!("owner_id=eq.{owner}&created_at=lt.{t}&order=created_at.desc,post_id.desc&limit={n}"),
            "created_at DESC NULLS FIRST, post_id DESC NULLS FIRST, ".into(),
            format!("created_at < {t}"),
            0,
            n,
        ),
        // Another order: the partition is read and sorted.
        (
            format!("owner_id=eq.{owner}&order=author_name.asc,body.desc&offset=1&limit={n}"),
            "author_name ASC NULLS LAST, body DESC NULLS FIRST, ".into(),
            String::new(),
            1,
            n,
        ),
        // Keyset on the other side, no limit.
        (format!("owner_id=eq.{owner}&created_at=gte.{t}"), String::new(), format!("created_at >= {t}"), 0, usize::MAX),
        // Past a small window: truncated at `retain`.
        (format!("owner_id=eq.{owner}&offset={n}&limit=3"), String::new(), String::new(), n, 3),
    ]
}

/// SQLite's answer to one read of `feed`.
fn expected(
    conn: &Connection,
    feed: &Feed,
    owner: i64,
    read: &(String, String, String, usize, usize),
) -> Vec<Vec<Value>> {
    let (_, order_prefix, filter, offset, limit) = read;
    let order = format!("{} {TIE}", feed.order_sql.to_owned() + ",");
    let window = match feed.retain {
        None => format!("SELECT * FROM ({SELECT}) WHERE owner_id = {owner}"),
        Some(r) => format!("SELECT * FROM ({SELECT}) WHERE owner_id = {owner} ORDER BY {order} LIMIT {r}"),
    };
    let filter = if filter.is_empty() { String::new() } else { format!("WHERE {filter}") };
    let limit = if *limit == usize::MAX { -1 } else { *limit as i64 };
    let sql = format!("SELECT * FROM ({window}) {filter} ORDER BY {order_prefix}{order} LIMIT {limit} OFFSET {offset}");
    let mut statement = conn.prepare(&sql).unwrap();
    statement
        .query_map([], |r| {
            (0..COLUMNS.len())
                .map(|i| {
                    r.get_ref(i).map(|v| match v {
                        rusqlite::types::ValueRef::Null => Datum::Null,
                        rusqlite::types::ValueRef::Integer(i) => Datum::Int(i),
                        rusqlite::types::ValueRef::Real(f) => Datum::Float(f),
                        rusqlite::types::ValueRef::Text(t) => {
                            Datum::owned_text(String::from_utf8_lossy(t).into_owned())
                        }
                        rusqlite::types::ValueRef::Blob(_) => panic!("no blobs here"),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

/// A JSON page as rows in column order.
fn page(body: &Json) -> Vec<Vec<Value>> {
    body.as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"))
        .iter()
        .map(|row| COLUMNS.iter().map(|c| datum(&row[*c])).collect())
        .collect()
}

/// Every read of every owner of every feed equals SQLite's answer.
fn check_pages(conn: &Connection, read: impl Fn(&str, &str) -> (u16, Json), n: usize, t: i64) -> Result<(), String> {
    for feed in &FEEDS {
        for owner in 0..6 {
            for r in reads(owner, 1 + (n + owner as usize) % 5, t) {
                let (status, body) = read(feed.name, &r.0);
                if status != 200 {
                    return Err(format!("{} ?{}: HTTP {status} {body}", feed.name, r.0));
                }
                let got = page(&body);
                let want = expected(conn, feed, owner, &r);
                if got != want {
                    return Err(format!("{} ?{}:\n  served {got:?}\n  sqlite {want:?}", feed.name, r.0));
                }
            }
        }
    }
    Ok(())
}

/// What `denorm run` tells the serving layer about a planned view.
fn view_info(def: &ViewDef) -> ViewInfo {
    denorm::serving_info(def)
}

/// The engine's wiring, in process: each feed's plans on one dataflow,
/// published as the parts of the feed's slot.
struct Engine {
    dataflow: Dataflow,
    /// Dataflow view → (slot, part).
    parts: Vec<(usize, usize)>,
    publisher: Publisher,
    reader: Reader,
    position: u64,
    /// The last batch's changes per (slot, part).
    last: BTreeMap<(usize, usize), Vec<(Row, Diff)>>,
}

impl Engine {
    fn new(reference: &SqliteReference, sql: &str) -> Engine {
        let catalog = reference.catalog();
        let defs = plan_views(sql, &catalog, Dialect::Sqlite).unwrap_or_else(|e| panic!("{e:?}"));
        let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
        let mut parts = Vec::new();
        for (slot, def) in defs.iter().enumerate() {
            for (name, plan, part) in denorm::dataflow_views(def) {
                dataflow.add_view(&name, plan, (0..plan.arity()).collect(), false).unwrap();
                parts.push((slot, part));
            }
        }
        let (publisher, reader) = denorm_serve::channel(defs.iter().map(view_info).collect());
        Engine { dataflow, parts, publisher, reader, position: 0, last: BTreeMap::new() }
    }

    /// Applies one transaction's changes; returns the output changes per (slot, part).
    fn apply(&mut self, tables: Vec<(String, Vec<(Row, Diff)>)>) -> BTreeMap<(usize, usize), usize> {
        self.position += 1;
        let output = self.dataflow.apply(&SourceBatch { position: Position(self.position), tables });
        assert!(output.errors.is_empty(), "{:?}", output.errors);
        let mut counts = BTreeMap::new();
        self.last.clear();
        for view in output.views {
            let (slot, part) = self.parts[view.view.0];
            self.publisher.apply_part(slot, part, &view.changes);
            *counts.entry((slot, part)).or_default() += view.changes.len();
            self.last.entry((slot, part)).or_default().extend(view.changes);
        }
        self.publisher.publish(Position(self.position), &[]);
        counts
    }

    fn read(&self, view: &str, query: &str) -> (u16, Json) {
        match denorm_serve::read_rows(&self.reader.snapshot(), view, query) {
            Ok((body, _)) => (200, serde_json::from_slice(&body).unwrap()),
            Err(e) => (e.status().as_u16(), Json::String(e.to_string())),
        }
    }

    fn metric(&self, name: &str, view: &str) -> u64 {
        metric(&self.reader.metrics().render(), name, view)
    }
}

fn metric(text: &str, name: &str, view: &str) -> u64 {
    let prefix = format!("{name}{{view=\"{view}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .parse()
        .unwrap()
}

fn nullable(s: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Datum::Null), 5 => s].boxed()
}

fn int(lo: i64, hi: i64) -> BoxedStrategy<Value> {
    (lo..hi).prop_map(Datum::Int).boxed()
}

fn text(choices: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::sample::select(choices).prop_map(Value::from).boxed()
}

fn tables() -> Vec<TableSpec> {
    vec![
        TableSpec {
            name: "users",
            ids: 6,
            columns: vec![text(&["ann", "Bob", "cy", "dee"]), nullable(text(&["a.png", "b.png"]))],
        },
        // Few distinct timestamps: duplicates and NULLs in the order column.
        TableSpec {
            name: "posts",
            ids: 20,
            columns: vec![nullable(int(0, 6)), nullable(text(&["hi", "yo", "Hey"])), nullable(int(0, 5))],
        },
        // No unique (follower, followee): a reader may follow an author twice.
        TableSpec { name: "follows", ids: 16, columns: vec![nullable(int(0, 6)), int(0, 6)] },
    ]
}

fn cases() -> u32 {
    std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(128)
}

proptest! {
    // About 0.11 s a case in a debug build: a quarter of the suite's cases
    // (500 in CI) keeps the binary near a minute rather than nine.
    #![proptest_config(ProptestConfig { cases: (cases() / 4).max(8), ..ProptestConfig::default() })]

    #[test]
    fn every_page_equals_sqlite(
        batches in proptest::collection::vec(proptest::collection::vec(Op::strategy(&tables()), 1..10), 1..10),
        picks in proptest::collection::vec((0usize..5, 0i64..6), 10),
    ) {
        let reference = SqliteReference::new(SCHEMA).unwrap();
        let mut engine = Engine::new(&reference, &views_sql());
        engine.apply(Vec::new());
        let specs = tables();
        for (i, ops) in batches.iter().enumerate() {
            let changes = apply_workload(&reference, &specs, ops).unwrap();
            engine.apply(changes);
            let (n, t) = picks[i % picks.len()];
            let checked = check_pages(&reference.connection, |v, q| engine.read(v, q), n, t);
            prop_assert!(checked.is_ok(), "after batch {i}: {}", checked.unwrap_err());
            let bounded = check_bounds(&engine);
            prop_assert!(bounded.is_ok(), "after batch {i}: {}", bounded.unwrap_err());
            // Then a write aimed inside a window: the owner's newest post
            // deleted (in every feed's window that holds it), or one of its
            // follows dropped.
            let owner = t;
            let aimed = if (i + n) % 2 == 0 {
                format!(
                    "DELETE FROM posts WHERE id = (SELECT post_id FROM ({SELECT}) WHERE owner_id = {owner} \
                     ORDER BY created_at DESC, post_id DESC LIMIT 1 OFFSET {})",
                    n % 3
                )
            } else {
                format!("DELETE FROM follows WHERE id = (SELECT min(id) FROM follows WHERE follower_id = {owner})")
            };
            engine.apply(exec(&reference, &aimed));
            let checked = check_pages(&reference.connection, |v, q| engine.read(v, q), n, t);
            prop_assert!(checked.is_ok(), "after {aimed}: {}", checked.unwrap_err());
            let bounded = check_bounds(&engine);
            prop_assert!(bounded.is_ok(), "after {aimed}: {}", bounded.unwrap_err());
        }
    }
}

/// The schema without `posts`' primary key: the planner proves no key for a
/// feed's content, so its rows are fanned out whole (the representation
/// references replace).
const SCHEMA_WITHOUT_KEY: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, avatar_url TEXT);
CREATE TABLE posts (id INTEGER, author_id INTEGER, body TEXT, created_at INTEGER);
CREATE TABLE follows (id INTEGER PRIMARY KEY, follower_id INTEGER, followee_id INTEGER);
";

/// Each feed's rows as a sink stores them (whole, partition put back).
fn whole_rows(engine: &Engine, slot: usize) -> Vec<(Row, Diff)> {
    let snapshot = engine.reader.snapshot();
    let view = &snapshot.views[slot];
    let mut rows = denorm_serve::feed::rows(view, view.info.feed.as_ref().unwrap());
    denorm_types::consolidate(&mut rows);
    rows
}

/// A sink's copy of each feed, kept from the batches' whole changes
/// (`feed::whole_changes`), as the sink hub keeps a sink's.
fn follow_sink(engine: &Engine, copies: &mut [Vec<(Row, Diff)>]) {
    let snapshot = engine.reader.snapshot();
    for (slot, copy) in copies.iter_mut().enumerate() {
        let view = &snapshot.views[slot];
        let feed = view.info.feed.as_ref().unwrap();
        let part = |n: usize| engine.last.get(&(slot, n)).map_or(&[][..], Vec::as_slice);
        copy.extend(denorm_serve::feed::whole_changes(view, feed, part(0), part(denorm_serve::feed::CONTENT)));
        denorm_types::consolidate(copy);
    }
}

proptest! {
    // Two engines per case (about 0.25 s in a debug build): a sixteenth of
    // the suite's cases keeps this test near half a minute in CI.
    #![proptest_config(ProptestConfig { cases: (cases() / 16).max(8), ..ProptestConfig::default() })]

    /// Fanning out references (partition, order columns, post id) with the
    /// content stored once gives the rows and pages that fanning out whole
    /// rows gives, through random workloads, deletes inside windows, and
    /// edits of a fanned-out post's content: those change every follower's
    /// page without a single fanned-out row written. A sink following the
    /// batches' whole changes holds the same rows, through those edits and
    /// a post moved to another author its reader follows too.
    #[test]
    fn references_equal_whole_rows(
        batches in proptest::collection::vec(proptest::collection::vec(Op::strategy(&tables()), 1..10), 1..8),
        picks in proptest::collection::vec((0usize..5, 0i64..6), 8),
    ) {
        let reference = SqliteReference::new(SCHEMA).unwrap();
        let without_key = SqliteReference::new(SCHEMA_WITHOUT_KEY).unwrap();
        let mut refs = Engine::new(&reference, &views_sql());
        let mut whole = Engine::new(&without_key, &views_sql());
        refs.apply(Vec::new());
        whole.apply(Vec::new());
        for (slot, feed) in FEEDS.iter().enumerate() {
            let summary = |e: &Engine| {
                let snapshot = e.reader.snapshot();
                denorm_serve::json::view_summary(&snapshot.views[slot], &Default::default(), 0.0).feed.unwrap().references
            };
            prop_assert!(summary(&refs) && !summary(&whole), "{}", feed.name);
        }
        let mut copies = vec![Vec::new(); FEEDS.len()];
        let specs = tables();
        for (i, ops) in batches.iter().enumerate() {
            let (n, t) = picks[i % picks.len()];
            let changes = apply_workload(&reference, &specs, ops).unwrap();
            let edit = format!(
                "UPDATE posts SET body = coalesce(body, '') || '!' WHERE id = (SELECT post_id FROM ({SELECT}) \
                 WHERE owner_id = {t} ORDER BY created_at DESC, post_id DESC LIMIT 1 OFFSET {})",
                n % 2
            );
            let deleted = format!(
                "DELETE FROM posts WHERE id = (SELECT post_id FROM ({SELECT}) WHERE owner_id = {t} \
                 ORDER BY created_at DESC, post_id DESC LIMIT 1)"
            );
            let rename = format!("UPDATE users SET name = name || '.' WHERE id = (SELECT min(followee_id) FROM follows WHERE follower_id = {t})");
            // A post moved to another author the reader follows: its
            // reference stays for readers following both.
            let moved = format!(
                "UPDATE posts SET author_id = (SELECT max(followee_id) FROM follows WHERE follower_id = {t}) \
                 WHERE id = (SELECT post_id FROM ({SELECT}) WHERE owner_id = {t} ORDER BY created_at, post_id LIMIT 1)"
            );
            // Each step's SQL runs on SQLite when the engines get it.
            let mut workload = Some(changes);
            for (label, sql) in [("workload", ""), ("edit", &edit), ("rename", &rename), ("move", &moved), ("delete", &deleted)] {
                let changes = workload.take().unwrap_or_else(|| exec(&reference, sql));
                let counts = refs.apply(changes.clone());
                whole.apply(changes);
                follow_sink(&refs, &mut copies);
                if label == "edit" || label == "rename" {
                    // Content only: no reference changes, whatever the fan-out.
                    let written: Vec<_> = counts.keys().filter(|(_, part)| *part == 0).collect();
                    prop_assert!(written.is_empty(), "batch {i} {label}: fanned-out rows written: {counts:?}");
                }
                for slot in 0..FEEDS.len() {
                    let (got, want) = (whole_rows(&refs, slot), whole_rows(&whole, slot));
                    prop_assert_eq!(&got, &want, "batch {} {}: {} rows", i, label, FEEDS[slot].name);
                    let mut copy = copies[slot].clone();
                    copy.sort();
                    prop_assert_eq!(&copy, &want, "batch {} {}: {} sink copy", i, label, FEEDS[slot].name);
                }
                let checked = check_pages(&reference.connection, |v, q| refs.read(v, q), n, t);
                prop_assert!(checked.is_ok(), "batch {i} {label}: {}", checked.unwrap_err());
                for feed in &FEEDS {
                    for owner in 0..6 {
                        for r in reads(owner, n, t) {
                            prop_assert_eq!(refs.read(feed.name, &r.0), whole.read(feed.name, &r.0), "?{}", r.0);
                        }
                    }
                }
            }
        }
    }
}

/// A feed with `retain` stores at most `retain` fanned-out rows per
/// partition: in the dataflow's bounded top-k and in the published rows.
fn check_bounds(engine: &Engine) -> Result<(), String> {
    let retains: Vec<usize> = FEEDS.iter().filter_map(|f| f.retain).collect();
    let states = engine.dataflow.bounded_top_k();
    if states.len() != retains.len() {
        return Err(format!("{} bounded top-ks for {} feeds with retain", states.len(), retains.len()));
    }
    for (state, retain) in states.iter().zip(&retains) {
        if state.largest > *retain {
            return Err(format!("a partition holds {} rows, retain is {retain}: {state:?}", state.largest));
        }
    }
    let snapshot = engine.reader.snapshot();
    for (slot, feed) in FEEDS.iter().enumerate() {
        let Some(retain) = feed.retain else { continue };
        let rows = &snapshot.views[slot].rows;
        for owner in 0..6 {
            let stored: Diff = rows.prefixed(&denorm_serve::pack_key([&Datum::Int(owner)])).map(|(_, d)| d).sum();
            if stored as usize > retain {
                return Err(format!("{}: partition {owner} publishes {stored} rows, retain is {retain}", feed.name));
            }
        }
    }
    Ok(())
}

fn exec(reference: &SqliteReference, sql: &str) -> Vec<(String, Vec<(Row, Diff)>)> {
    // Statements of the form INSERT/DELETE on one table, turned into changes
    // by reading the rows before and after (small tables).
    let tables = ["users", "posts", "follows"];
    let snapshot =
        |t: &str| -> Vec<Vec<Value>> { reference.query(&format!("SELECT * FROM {t} ORDER BY rowid")).unwrap().1 };
    let before: Vec<_> = tables.iter().map(|t| snapshot(t)).collect();
    reference.connection.execute_batch(sql).unwrap();
    let mut out = Vec::new();
    for (t, before) in tables.iter().zip(before) {
        let after = snapshot(t);
        let mut changes: Vec<(Row, Diff)> = Vec::new();
        for r in &before {
            if !after.contains(r) {
                changes.push((Row::pack(r.iter().cloned()), -1));
            }
        }
        for r in &after {
            if !before.contains(r) {
                changes.push((Row::pack(r.iter().cloned()), 1));
            }
        }
        if !changes.is_empty() {
            out.push((t.to_string(), changes));
        }
    }
    out
}

/// A post by an author above `fanout_limit` writes no fan-out row; a follow
/// that crosses no threshold changes only what it must; crossing the limit
/// moves the author's content between the two paths, both ways.
#[test]
fn celebrities_cost_one_write_and_only_crossings_move_content() {
    let reference = SqliteReference::new(SCHEMA).unwrap();
    let sql = "CREATE MATERIALIZED VIEW home_feed WITH (partition_by = 'owner_id', order_by = 'created_at DESC, post_id DESC', fanout_limit = 3) AS "
        .to_string()
        + SELECT;
    let mut e = Engine::new(&reference, &sql);
    let setup = "INSERT INTO users VALUES (1, 'celeb', NULL), (2, 'small', NULL);
                 INSERT INTO follows (follower_id, followee_id) VALUES (10, 1), (11, 1), (12, 1), (13, 1), (14, 1), (10, 2), (11, 2);
                 INSERT INTO posts VALUES (100, 1, 'a', 5), (101, 2, 'b', 6);";
    e.apply(exec(&reference, setup));
    let written = |e: &Engine| e.metric("denorm_fanout_rows_written_total", "home_feed");
    assert_eq!(written(&e), 2, "the small author's post reaches its 2 followers; the celebrity's is stored once");
    // The rows fanned out are references to the other authors' content,
    // stored once (`stored`).
    let (materialized, content, edges, stored) = ((0, 0), (0, 1), (0, 2), (0, 3));

    // A celebrity's post: one content row, no fan-out.
    let counts = e.apply(exec(&reference, "INSERT INTO posts VALUES (102, 1, 'c', 7)"));
    assert_eq!(written(&e), 2);
    assert_eq!(counts, BTreeMap::from([(content, 1)]));
    // A small author's post: one row per follower.
    let counts = e.apply(exec(&reference, "INSERT INTO posts VALUES (103, 2, 'd', 8)"));
    assert_eq!((written(&e), counts), (4, BTreeMap::from([(materialized, 2), (stored, 1)])));
    // Its body edited: the one content row, no fanned-out row.
    let counts = e.apply(exec(&reference, "UPDATE posts SET body = 'D' WHERE id = 103"));
    assert_eq!((written(&e), counts), (4, BTreeMap::from([(stored, 2)])));

    // A follow that crosses nothing: the new edge only.
    let counts = e.apply(exec(&reference, "INSERT INTO follows (follower_id, followee_id) VALUES (15, 1)"));
    assert_eq!(counts, BTreeMap::from([(edges, 1)]), "a sixth follower of a celebrity");
    let counts = e.apply(exec(&reference, "INSERT INTO follows (follower_id, followee_id) VALUES (12, 2)"));
    assert_eq!(counts, BTreeMap::from([(materialized, 2)]), "a third follower of a small author: its two posts");

    // The small author crosses the limit: its content moves to the read path.
    let counts = e.apply(exec(&reference, "INSERT INTO follows (follower_id, followee_id) VALUES (13, 2)"));
    assert_eq!(counts, BTreeMap::from([(materialized, 6), (content, 2), (edges, 4), (stored, 2)]));
    // And back: unfollows of the celebrity bring it to 5, 4, then 3 (= the limit).
    for follower in [15, 14] {
        let counts = e.apply(exec(
            &reference,
            &format!("DELETE FROM follows WHERE follower_id = {follower} AND followee_id = 1"),
        ));
        assert_eq!(counts, BTreeMap::from([(edges, 1)]));
    }
    let before = written(&e);
    let counts = e.apply(exec(&reference, "DELETE FROM follows WHERE follower_id = 13 AND followee_id = 1"));
    assert_eq!(
        counts,
        BTreeMap::from([(materialized, 6), (content, 2), (edges, 4), (stored, 2)]),
        "3 followers × 2 posts fan out"
    );
    assert_eq!(written(&e), before + 6);
    check_home_feed(&e, &reference);

    // A feed is read one partition at a time. (Reads merging celebrities'
    // content are counted by the HTTP handler: see the binary's test.)
    let (status, body) = e.read("home_feed", "created_at=lt.7&limit=2");
    assert_eq!(status, 400, "{body}");
    assert!(body.as_str().unwrap().contains("owner_id=eq."), "{body}");
}

/// `retain = 5`: each partition stores its 5 newest fanned-out rows and no
/// more, and stays exact through deletes inside a full window (the next row
/// comes in), unfollows, a rename, and an author crossing `fanout_limit`
/// both ways.
#[test]
fn retain_bounds_the_stored_rows_and_refills_full_windows() {
    let reference = SqliteReference::new(SCHEMA).unwrap();
    let options = "partition_by = 'owner_id', order_by = 'created_at DESC, post_id DESC', fanout_limit = 3, retain = 5";
    let sql = format!("CREATE MATERIALIZED VIEW home_feed WITH ({options}) AS {SELECT}");
    let mut e = Engine::new(&reference, &sql);
    let feed = Feed { name: "home_feed", options, order_sql: FEEDS[0].order_sql, retain: Some(5) };
    let mut setup = String::from(
        "INSERT INTO users VALUES (1, 'ann', NULL), (2, 'bob', NULL), (3, 'cy', NULL);
         INSERT INTO follows (follower_id, followee_id) VALUES (100, 1), (100, 2), (100, 3), (101, 1), (101, 2);",
    );
    for i in 0..30 {
        setup += &format!("INSERT INTO posts VALUES ({i}, {}, 'p{i}', {});", 1 + i % 3, i / 2);
    }
    e.apply(exec(&reference, &setup));
    let check = |e: &Engine, label: &str| {
        let state = e.dataflow.bounded_top_k();
        assert_eq!(state.len(), 1);
        assert!(state[0].largest <= 5, "{label}: {state:?}");
        let snapshot = e.reader.snapshot();
        for owner in [100, 101] {
            let stored: Diff =
                snapshot.views[0].rows.prefixed(&denorm_serve::pack_key([&Datum::Int(owner)])).map(|(_, d)| d).sum();
            assert!(stored <= 5, "{label}: owner {owner} publishes {stored} rows");
            for n in 1..=6 {
                for t in [3, 8, 14] {
                    for r in reads(owner, n, t) {
                        let (status, body) = e.read("home_feed", &r.0);
                        assert_eq!(status, 200, "{body}");
                        let want = expected(&reference.connection, &feed, owner, &r);
                        assert_eq!(page(&body), want, "{label}: ?{}", r.0);
                    }
                }
            }
        }
        state[0]
    };
    let state = check(&e, "loaded");
    assert_eq!((state.partitions, state.rows), (2, 10), "30 posts fan out to 50 rows; 2 × 5 are stored");

    // The newest posts, inside both windows: the next ones come in.
    e.apply(exec(&reference, "DELETE FROM posts WHERE id IN (29, 28)"));
    check(&e, "deletes inside full windows");
    e.apply(exec(&reference, "DELETE FROM follows WHERE follower_id = 100 AND followee_id = 2"));
    check(&e, "unfollow");
    e.apply(exec(
        &reference,
        "UPDATE users SET name = 'Ann' WHERE id = 1; UPDATE posts SET created_at = 1 WHERE id = 27",
    ));
    check(&e, "rename and a post moved out of the window");
    // ann crosses the limit (4 followers): her posts leave the stored rows
    // for the read path, and the windows refill from the others' posts.
    e.apply(exec(&reference, "INSERT INTO follows (follower_id, followee_id) VALUES (102, 1), (103, 1)"));
    let state = check(&e, "ann is a celebrity");
    assert!(state.rows <= 10, "{state:?}");
    e.apply(exec(&reference, "INSERT INTO posts VALUES (40, 1, 'celebrity', 99)"));
    check(&e, "a celebrity post");
    e.apply(exec(&reference, "DELETE FROM follows WHERE follower_id IN (102, 103)"));
    check(&e, "ann is back under the limit");
    e.apply(exec(&reference, "DELETE FROM posts WHERE author_id = 3"));
    check(&e, "an author's posts all deleted");
    e.apply(exec(&reference, "DELETE FROM posts"));
    let state = check(&e, "empty");
    assert_eq!(state, denorm_core::TopKState::default());
}

fn check_home_feed(e: &Engine, reference: &SqliteReference) {
    let feed = Feed { name: "home_feed", options: "", order_sql: FEEDS[0].order_sql, retain: None };
    for owner in 10..16 {
        for r in reads(owner, 2, 7) {
            let (status, body) = e.read("home_feed", &r.0);
            assert_eq!(status, 200, "{body}");
            assert_eq!(page(&body), expected(&reference.connection, &feed, owner, &r), "?{}", r.0);
        }
    }
}

/// The real binary: pages over HTTP equal SQLite's through a snapshot and
/// writes by another connection (follows crossing the limit both ways, an
/// author renamed, posts deleted), `/views` describes the feed, and a read
/// without the partition filter is refused.
#[test]
fn the_binary_serves_feeds_equal_to_sqlite() {
    let project = Project::new(SCHEMA, &views_sql());
    let db = project.connect();
    db.execute_batch(
        "INSERT INTO users VALUES (0, 'ann', 'a.png'), (1, 'Bob', NULL), (2, 'cy', 'b.png'), (3, 'dee', NULL);
         INSERT INTO follows (follower_id, followee_id) VALUES (0, 1), (2, 1), (3, 1), (0, 2), (1, 2), (4, 0), (5, 3), (5, 3);
         INSERT INTO posts VALUES (1, 1, 'hi', 3), (2, 1, NULL, 3), (3, 2, 'yo', NULL), (4, 0, 'Hey', 1), (5, 3, 'x', 2), (6, 1, 'z', 4);",
    )
    .unwrap();
    let denorm = Denorm::start(&project.config);
    let http = |view: &str, query: &str| denorm.get(&format!("/views/{view}?{query}"));
    let check = |label: &str| {
        denorm.wait_for_position(committed_position(&db));
        for (n, t) in [(0, 3), (2, 1), (4, 5)] {
            if let Err(e) = check_pages(&db, http, n, t) {
                panic!("{label}: {e}");
            }
        }
    };
    check("snapshot");

    let (_, views) = denorm.get("/views");
    let home = views.as_array().unwrap().iter().find(|v| v["name"] == "home_feed").unwrap();
    assert_eq!(views.as_array().unwrap().len(), FEEDS.len(), "the feeds' parts are not listed as views: {views}");
    assert_eq!(home["key"], serde_json::json!(["owner_id"]));
    let feed = &home["feed"];
    assert_eq!(feed["partition_by"], "owner_id");
    assert_eq!(feed["order_by"], serde_json::json!(["created_at desc nulls first", "post_id desc nulls first"]));
    assert_eq!((feed["fanout_limit"].as_i64(), feed["fanout_column"].as_str()), (Some(2), Some("followee_id")));
    let materialized = feed["materialized_rows"].as_u64().unwrap();
    let content = feed["celebrity_content_rows"].as_u64().unwrap();
    // Bob (1) has 3 followers > 2: his 3 posts are stored once.
    assert_eq!(content, 3, "{home}");
    assert_eq!(home["rows"].as_u64(), Some(materialized + content));

    let (status, body) = http("home_feed", "limit=5");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "bad_parameter");

    // Bob loses a follower (back to fan-out on write), cy gains two (to the
    // read path), a rename, a delete, a post by the celebrity.
    db.execute_batch("DELETE FROM follows WHERE follower_id = 3 AND followee_id = 1").unwrap();
    check("unfollow under the limit");
    db.execute_batch("INSERT INTO follows (follower_id, followee_id) VALUES (3, 2), (4, 2)").unwrap();
    check("cy crosses the limit");
    db.execute_batch("UPDATE users SET name = 'Cyrus' WHERE id = 2; DELETE FROM posts WHERE id = 4;").unwrap();
    check("rename and delete");
    let before = metric(
        &common::get_text(&format!("{}/metrics", denorm.base)).1,
        "denorm_fanout_rows_written_total",
        "home_feed",
    );
    db.execute_batch("INSERT INTO posts VALUES (7, 2, 'celebrity post', 9)").unwrap();
    check("celebrity post");
    let metrics = common::get_text(&format!("{}/metrics", denorm.base)).1;
    assert_eq!(metric(&metrics, "denorm_fanout_rows_written_total", "home_feed"), before, "no fan-out for a celebrity");
    assert!(metric(&metrics, "denorm_fanout_read_merges_total", "home_feed") > 0);
    db.execute_batch(
        "UPDATE posts SET created_at = NULL WHERE id = 1; UPDATE follows SET follower_id = 5 WHERE follower_id = 0;",
    )
    .unwrap();
    check("NULL timestamp and moved follows");
}
