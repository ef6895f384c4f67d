//! denorm beside differential-dataflow on the same changes, in one process
//! (`scripts/bench-peers`; `DENORM_BENCH_SCALE`, default 1.0).
//!
//! The workloads are denorm-core's maintenance workloads
//! (`crates/denorm-core/benches/common/workloads.rs`), generated once; each
//! engine then runs them twice, alternating, so a burst of load on this
//! shared machine hits both. The figures are on-CPU where Linux reports the
//! thread's CPU time (the engines are single-threaded here: denorm's dataflow
//! is, and differential-dataflow runs one timely worker), wall-clock beside.
//!
//! differential-dataflow is given its idiomatic formulation of each view:
//! (a) COUNT and SUM as one `count_total` over a (count, sum) difference (the
//! average is left to the reader, where denorm computes it), once with the
//! output only streamed and once arranged by key (kept, as denorm keeps the
//! view's rows for readers); (b) a `join_map` of the two arranged inputs.
//! Rates count the same numerator for both engines: source changes for (a),
//! the view changes denorm emits (consolidated) for (b).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

#[path = "../../../crates/denorm-core/benches/common/mod.rs"]
mod common;

use common::workloads::{aggregates, dataflow, field_copy, Aggregates, FieldCopy};
use common::Clock;
use denorm_core::Runtime;
use denorm_types::{Datum, Row};
use differential_dataflow::input::Input;
use differential_dataflow::operators::CountTotal;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Seconds of a run: (wall, on-CPU when known).
type Seconds = (f64, Option<f64>);

/// The on-CPU seconds when Linux reported them and they are measurable
/// (schedstat counts in scheduler ticks: a short run may read 0).
fn cpu(s: Seconds) -> Option<f64> {
    s.1.filter(|c| *c > 0.0)
}

fn cpu_or_wall(s: Seconds) -> f64 {
    cpu(s).unwrap_or(s.0)
}

fn rate(n: usize, s: Seconds) -> String {
    match cpu(s) {
        Some(cpu) => format!("{:>6.2}M/s on-CPU ({:.2}M/s wall)", n as f64 / cpu / 1e6, n as f64 / s.0 / 1e6),
        None => format!("{:>6.2}M/s wall", n as f64 / s.0 / 1e6),
    }
}

fn denorm_aggregates(w: &Aggregates, keep_rows: bool) -> Seconds {
    let mut dataflow = dataflow("product_stats", &w.plan, keep_rows.then(|| vec![0]));
    let clock = Clock::start();
    for b in &w.batches {
        dataflow.apply(b);
    }
    clock.elapsed()
}

/// Timely's workers run `'static` closures: the workload is shared by `Arc`.
fn dd_aggregates(w: &Arc<Aggregates>, keep_rows: bool) -> Seconds {
    let w = w.clone();
    timely::execute_directly(move |worker| {
        let (mut input, probe, trace) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, reviews) = scope.new_collection::<(i64, i64, i64), isize>();
            let stats =
                reviews.explode(|(_, product, rating)| Some((product, (1isize, rating as isize)))).count_total();
            if keep_rows {
                let arranged = stats.arrange_by_key();
                let (probe, _) = arranged.clone().as_collection(|k, v| (*k, *v)).probe();
                (input, probe, Some(arranged.trace))
            } else {
                let (probe, _) = stats.probe();
                (input, probe, None)
            }
        });
        let clock = Clock::start();
        for (round, batch) in w.typed.iter().enumerate() {
            for &(id, product, rating, diff) in batch {
                input.update((id, product, rating), diff as isize);
            }
            input.advance_to(round as u64 + 1);
            input.flush();
            compact(&trace, round as u64 + 1);
            worker.step_while(|| probe.less_than(input.time()));
        }
        clock.elapsed()
    })
}

/// Readers of a kept view only ever need its current state: let the trace
/// compact up to `time`.
fn compact<Tr: differential_dataflow::trace::TraceReader<Time = u64> + Clone>(trace: &Option<Tr>, time: u64) {
    if let Some(mut trace) = trace.clone() {
        trace.set_logical_compaction(timely::progress::frontier::AntichainRef::new(&[time]));
        trace.set_physical_compaction(timely::progress::frontier::AntichainRef::new(&[time]));
    }
}

/// Workload (b) as typed tuples for differential-dataflow.
struct TypedFieldCopy {
    users: Vec<(i64, String)>,
    posts: Vec<(i64, i64, String)>,
    renames: Vec<Vec<((i64, String), isize)>>,
}

fn int(row: &Row, i: usize) -> i64 {
    match row.get(i) {
        Datum::Int(v) => v,
        other => unreachable!("workload column {i} is an integer, not {other:?}"),
    }
}

fn text(row: &Row, i: usize) -> String {
    match row.get(i) {
        Datum::Text(s) => s.to_string(),
        other => unreachable!("workload column {i} is text, not {other:?}"),
    }
}

fn typed_field_copy(w: &FieldCopy) -> TypedFieldCopy {
    let table = |name: &str| &w.snapshot.tables.iter().find(|(t, _)| t == name).unwrap().1;
    TypedFieldCopy {
        users: table("users").iter().map(|(r, _)| (int(r, 0), text(r, 1))).collect(),
        posts: table("posts").iter().map(|(r, _)| (int(r, 0), int(r, 1), text(r, 2))).collect(),
        renames: w
            .batches
            .iter()
            .map(|b| b.tables[0].1.iter().map(|(r, d)| ((int(r, 0), text(r, 1)), *d as isize)).collect())
            .collect(),
    }
}

/// (load seconds, renames seconds, view changes emitted by the renames).
fn denorm_field_copy(w: &FieldCopy, keep_rows: bool) -> (Seconds, Seconds, usize) {
    let mut dataflow = dataflow("post_cards", &w.plan, keep_rows.then(|| vec![0]));
    let clock = Clock::start();
    dataflow.apply(&w.snapshot);
    let load = clock.elapsed();
    let clock = Clock::start();
    let mut output = 0usize;
    for b in &w.batches {
        output += dataflow.apply(b).views.iter().map(|v| v.changes.len()).sum::<usize>();
    }
    (load, clock.elapsed(), output)
}

/// (load seconds, renames seconds, updates the join emitted unconsolidated).
fn dd_field_copy(t: &Arc<TypedFieldCopy>, keep_rows: bool) -> (Seconds, Seconds, usize) {
    let t = t.clone();
    timely::execute_directly(move |worker| {
        let emitted = Rc::new(Cell::new(0usize));
        let counter = emitted.clone();
        let (mut users, mut posts, probe, trace) = worker.dataflow::<u64, _, _>(|scope| {
            let (users_in, users) = scope.new_collection::<(i64, String), isize>();
            let (posts_in, posts) = scope.new_collection::<(i64, (i64, String)), isize>();
            let cards = posts
                .join_map(users, |_author, (id, title), name| (*id, (title.clone(), name.clone())))
                .inspect_batch(move |_, updates| counter.set(counter.get() + updates.len()));
            if keep_rows {
                let arranged = cards.arrange_by_key();
                let (probe, _) = arranged.clone().as_collection(|k, v| (*k, v.clone())).probe();
                (users_in, posts_in, probe, Some(arranged.trace))
            } else {
                let (probe, _) = cards.probe();
                (users_in, posts_in, probe, None)
            }
        });
        let clock = Clock::start();
        for (id, name) in &t.users {
            users.insert((*id, name.clone()));
        }
        for (id, author, title) in &t.posts {
            posts.insert((*author, (*id, title.clone())));
        }
        users.advance_to(1);
        posts.advance_to(1);
        users.flush();
        posts.flush();
        worker.step_while(|| probe.less_than(users.time()));
        let load = clock.elapsed();
        emitted.set(0);
        let clock = Clock::start();
        for (round, batch) in t.renames.iter().enumerate() {
            for (user, diff) in batch {
                users.update(user.clone(), *diff);
            }
            users.advance_to(round as u64 + 2);
            posts.advance_to(round as u64 + 2);
            users.flush();
            posts.flush();
            compact(&trace, round as u64 + 2);
            worker.step_while(|| probe.less_than(users.time()));
        }
        (load, clock.elapsed(), emitted.get())
    })
}

fn compare_aggregates() {
    let w = Arc::new(aggregates());
    println!(
        "(a) aggregate view: COUNT/SUM/AVG by key, {} changes over {} keys, batches of {}",
        w.changes, w.keys, w.batch_size
    );
    for keep in [false, true] {
        let label = if keep { "view kept for readers" } else { "changes emitted" };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            ours.push(denorm_aggregates(&w, keep));
            theirs.push(dd_aggregates(&w, keep));
        }
        let best =
            |runs: &[Seconds]| runs.iter().copied().min_by(|a, b| cpu_or_wall(*a).total_cmp(&cpu_or_wall(*b))).unwrap();
        let (o, t) = (best(&ours), best(&theirs));
        println!("  {label}:");
        println!("    denorm                 {}", rate(w.changes, o));
        println!("    differential-dataflow  {}", rate(w.changes, t));
        println!("    denorm ÷ dd            {:.2}×", cpu_or_wall(t) / cpu_or_wall(o));
    }
}

fn compare_field_copy() {
    let w = field_copy();
    let t = Arc::new(typed_field_copy(&w));
    println!(
        "(b) field-copy join: {} posts × {} users loaded, then {} renames in batches of {}",
        w.posts, w.users, w.renames, w.batch_size
    );
    let loaded = (w.posts + w.users) as usize;
    let engines = std::env::var("DENORM_BENCH_ENGINES").unwrap_or_default();
    for keep in [false, true] {
        let label = if keep { "view kept for readers" } else { "changes emitted" };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            if engines != "dd" {
                ours.push(denorm_field_copy(&w, keep));
            }
            if engines != "denorm" {
                theirs.push(dd_field_copy(&t, keep));
            }
        }
        let best = |runs: &[(Seconds, Seconds, usize)], pick: fn(&(Seconds, Seconds, usize)) -> Seconds| {
            runs.iter().map(pick).min_by(|a, b| cpu_or_wall(*a).total_cmp(&cpu_or_wall(*b)))
        };
        let view_changes = ours.first().or(theirs.first()).map_or(0, |r| r.2);
        println!("  {label}:");
        for (phase, n, pick) in [
            ("initial load, source rows", loaded, (|r: &(Seconds, Seconds, usize)| r.0) as fn(&_) -> Seconds),
            ("renames, view changes", view_changes, |r| r.1),
        ] {
            let (o, t) = (best(&ours, pick), best(&theirs, pick));
            println!("    {phase} ({n}):");
            if let Some(o) = o {
                println!("      denorm                 {}", rate(n, o));
            }
            if let Some(t) = t {
                println!("      differential-dataflow  {}", rate(n, t));
            }
            if let (Some(o), Some(t)) = (o, t) {
                println!("      denorm ÷ dd            {:.2}×", cpu_or_wall(t) / cpu_or_wall(o));
            }
        }
    }
}

fn main() {
    // DENORM_BENCH_ONLY=a or =b runs one of the two; DENORM_BENCH_ENGINES=denorm
    // or =dd runs one engine of (b) (e.g. under a profiler).
    let only = std::env::var("DENORM_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "a" {
        compare_aggregates();
    }
    if only.is_empty() || only == "b" {
        compare_field_copy();
    }
}
