//! Live heap bytes of operator state, computed from the sizes and
//! capacities the state allocates (what a counting allocator would see:
//! requested sizes, not the allocator's size classes).
//!
//! The rules, shared by every operator's `state_bytes`:
//!
//! - A hash table (`hashbrown`) costs its one allocation: buckets × slot
//!   size plus a control byte per bucket and a trailing group
//!   ([`hashbrown::HashMap::allocation_size`]); an empty, never grown one
//!   costs nothing.
//! - A [`Row`] longer than [`Row::INLINE`] owns an `Arc<[u8]>`: its two
//!   reference counts (16 bytes) and its bytes, rounded up to 8
//!   ([`row`]). Clones share that buffer. **A shared buffer is counted once
//!   per owner**: an operator counts every buffer it holds once, even when
//!   it holds two handles to it (a multiset view keys its rows by
//!   themselves), and two operators that hold the same buffer (two
//!   arrangements of one input row, a top-k and the view reading it) each
//!   count it. An operator's figure is therefore exactly the heap it keeps
//!   reachable, and the sum over operators is an upper bound of the heap
//!   the dataflow holds, equal to it when no buffer has two owners.
//! - `Box`, `Vec`, `VecDeque`, `String`: their allocation (capacity × item
//!   size; nothing when empty).
//! - A `BTreeMap` allocates nodes of a fixed layout (std: up to 11 entries
//!   per node, a parent pointer and two `u16`s; internal nodes add 12
//!   child pointers), but how full its nodes are depends on the order of
//!   insertions and is not observable. A map of at most 11 entries is one
//!   leaf, exact; a larger one is counted with leaves 11/16 full and one
//!   internal node per 8 children ([`btree_map`]) — the one estimate here,
//!   documented as such; its error is bounded by the node fill
//!   (every non-root node holds 5 to 11 entries).
//! - Arrangements (`Index`) keep these figures as a running count updated
//!   by every change, so that sampling them is O(1); the other operators
//!   compute them by walking their state.
//! - An operator's definition (expressions, key column lists) is not state
//!   and is not counted.

use std::collections::BTreeMap;
use std::mem::size_of;

use denorm_types::{Datum, Row};

/// Bytes of the `Arc` header in front of a heap row's bytes.
const ARC_HEADER: usize = 16;

/// The heap allocation of one row (0 when inline).
pub(crate) fn row(row: &Row) -> usize {
    match row.heap_size() {
        0 => 0,
        len => (ARC_HEADER + len).next_multiple_of(8),
    }
}

/// The allocation of a `Vec<T>` (its capacity).
pub(crate) fn vec<T>(items: &Vec<T>) -> usize {
    items.capacity() * size_of::<T>()
}

/// The allocation of a boxed slice.
pub(crate) fn slice<T>(items: &[T]) -> usize {
    std::mem::size_of_val(items)
}

/// The allocation of a `Box<T>` (nothing for a zero-sized `T`).
pub(crate) fn boxed<T>() -> usize {
    size_of::<T>()
}

/// Heap bytes a datum owns (owned text or blob).
pub(crate) fn datum(value: &Datum<'_>) -> usize {
    match value {
        Datum::Text(std::borrow::Cow::Owned(s)) => s.capacity(),
        Datum::Blob(std::borrow::Cow::Owned(b)) => b.capacity(),
        _ => 0,
    }
}

/// Entries per std `BTreeMap` node (`2 * B - 1`, B = 6).
const BTREE_CAPACITY: usize = 11;

/// The nodes of a `BTreeMap<K, V>` of `len` entries (see the module
/// documentation: exact up to 11 entries, else an estimate from the node
/// layout at an 11/16 fill). An empty map is taken to hold no node.
pub(crate) fn btree_map<K, V>(map: &BTreeMap<K, V>) -> usize {
    btree_nodes::<K, V>(map.len())
}

fn btree_nodes<K, V>(len: usize) -> usize {
    let align = std::mem::align_of::<K>().max(std::mem::align_of::<V>()).max(8);
    let leaf = (8 + 4 + BTREE_CAPACITY * (size_of::<K>() + size_of::<V>())).next_multiple_of(align);
    let internal = (leaf + (BTREE_CAPACITY + 1) * 8).next_multiple_of(align);
    if len == 0 {
        return 0;
    }
    if len <= BTREE_CAPACITY {
        return leaf;
    }
    let leaves = (len * 16).div_ceil(BTREE_CAPACITY * 11);
    let mut internals = 0;
    let mut level = leaves;
    while level > 1 {
        level = level.div_ceil(8);
        internals += level;
    }
    leaves * leaf + internals * internal
}

/// A thread-local counting allocator for the state tests: the live bytes
/// allocated by the calling thread (tests run on several threads; each
/// counts its own).
#[cfg(test)]
pub(crate) mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    fn add(bytes: isize) {
        let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
    }

    /// Bytes allocated and not freed by this thread so far.
    pub(crate) fn live() -> isize {
        LIVE.with(Cell::get)
    }

    pub(crate) struct Counting;

    // SAFETY: forwards every call to the system allocator unchanged; only
    // adds the requested sizes to a thread-local counter (a const-initialised
    // `Cell` without destructor, so it never allocates).
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            add(-(layout.size() as isize));
            // SAFETY: the caller's contract is passed on.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            add(new_size as isize - layout.size() as isize);
            // SAFETY: the caller's contract is passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use denorm_expr::{Aggregate, AggregateFunc, Expr, JoinKind, Numbering, Plan, SortKey};
    use denorm_types::{Catalog, ColumnSchema, Dialect, Diff, Position, ScalarType, TableSchema};

    use super::*;
    use crate::index::Index;
    use crate::operator::{Distinct, Reduce, Threshold, TopK};
    use crate::view::ViewState;
    use crate::{Dataflow, Runtime, SourceBatch};

    /// A small deterministic generator (xorshift).
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// A row `(k, v, text, x)` of the workload, described without
    /// allocating: the text is `len` copies of `t`.
    type Spec = (u64, i64, usize, u64);

    fn build(spec: Spec) -> Row {
        let (k, v, len, x) = spec;
        Row::pack([Datum::Int(k as i64), Datum::Int(v), Datum::text(&"t".repeat(len)), Datum::Float(x as f64 / 2.0)])
    }

    /// Batches of consolidated changes: `keys` distinct `k`, at most
    /// `per_key` live rows per key, each row unique, texts from empty to past
    /// [`Row::INLINE`], deletions only of live rows.
    fn workload(seed: u64, keys: u64, per_key: usize, batches: usize) -> Vec<Vec<(Spec, Diff)>> {
        let mut random = Random(seed | 1);
        let mut live: HashMap<u64, Vec<Spec>> = HashMap::new();
        let mut out = Vec::new();
        for _ in 0..batches {
            let mut batch: HashMap<Spec, Diff> = HashMap::new();
            for _ in 0..random.below(60) + 1 {
                let k = random.below(keys);
                let rows = live.entry(k).or_default();
                if !rows.is_empty() && (rows.len() >= per_key || random.below(3) == 0) {
                    let row = rows.swap_remove(random.below(rows.len() as u64) as usize);
                    *batch.entry(row).or_insert(0) -= 1;
                } else {
                    // `v` numbers the insertions: rows are unique (a keyed view).
                    let row = (
                        k,
                        out.len() as i64 * 100 + random.below(60) as i64,
                        random.below(50) as usize,
                        random.below(4),
                    );
                    rows.push(row);
                    *batch.entry(row).or_insert(0) += 1;
                }
            }
            let mut batch: Vec<(Spec, Diff)> = batch.into_iter().filter(|(_, d)| *d != 0).collect();
            batch.sort_by_key(|(spec, _)| *spec);
            out.push(batch);
        }
        out
    }

    /// Runs `step` over the workload, checking after every batch (built,
    /// stepped and dropped with its output) that the state's reported
    /// bytes moved as this thread's live heap did: exactly, or within
    /// `tolerance` of the live bytes where a `BTreeMap` is estimated.
    fn check<S>(
        name: &str,
        state: &mut S,
        batches: &[Vec<(Spec, Diff)>],
        tolerance: f64,
        step: impl Fn(&mut S, &[(Row, Diff)]),
        bytes: impl Fn(&S) -> usize,
    ) {
        let (live0, reported0) = (counting::live(), bytes(state) as isize);
        for specs in batches {
            let batch: Vec<(Row, Diff)> = specs.iter().map(|&(spec, d)| (build(spec), d)).collect();
            step(state, &batch);
            drop(batch);
            let live = counting::live() - live0;
            let reported = bytes(state) as isize - reported0;
            if tolerance == 0.0 {
                assert_eq!(reported, live, "{name}: reported {reported}, live {live}");
            } else {
                let off = (reported - live).abs() as f64;
                assert!(off <= tolerance * live.max(1) as f64, "{name}: reported {reported}, live {live}");
            }
        }
        assert!(bytes(state) > 0, "{name}: the workload left state");
    }

    const SEEDS: [u64; 3] = [7, 0x5eed, 0xdead_beef];

    #[test]
    fn arrangements_report_their_live_bytes() {
        for seed in SEEDS {
            // Few keys: groups go from one row to packed rows to a map.
            for (keys, per_key) in [(300, 3), (4, 40)] {
                let mut index = Index::new(vec![0]);
                check(
                    "arrangement",
                    &mut index,
                    &workload(seed, keys, per_key, 60),
                    0.0,
                    |index, batch| {
                        for (row, diff) in batch {
                            let (key, _) = index.key_of(row);
                            index.update(key, row, *diff);
                        }
                        assert_eq!(index.state_bytes(), index.walked_state_bytes(), "the running count");
                    },
                    Index::state_bytes,
                );
            }
        }
    }

    /// [`check`] of a `Reduce` over groups of at most 8 rows (each MIN/MAX
    /// or ordered multiset one B-tree node: exact).
    fn check_reduce(name: &str, reduce: &mut Reduce, seed: u64) {
        check(
            name,
            reduce,
            &workload(seed, 200, 8, 60),
            0.0,
            |r, batch| {
                r.step(batch).unwrap();
            },
            Reduce::state_bytes,
        );
    }

    #[test]
    fn reduces_report_their_live_bytes() {
        let col = Expr::Column;
        let aggregates = vec![
            Aggregate { func: AggregateFunc::Count, arg: None },
            Aggregate { func: AggregateFunc::Sum, arg: Some(col(1)) },
            Aggregate { func: AggregateFunc::Avg, arg: Some(col(3)) },
            Aggregate { func: AggregateFunc::Min, arg: Some(col(2)) },
            Aggregate { func: AggregateFunc::Max, arg: Some(col(2)) },
            Aggregate { func: AggregateFunc::CountDistinct, arg: Some(col(2)) },
        ];
        for seed in SEEDS {
            let mut reduce = Reduce::new(vec![0], aggregates.clone(), Dialect::Sqlite);
            // At most 8 rows a group: each MIN/MAX map is one node, exact.
            check_reduce("reduce", &mut reduce, seed);
            // group_concat(text, ',') and SUM(DISTINCT v): ordered multisets
            // of rendered elements and values (one node each, exact).
            let concat =
                denorm_expr::ConcatSpec { order: denorm_expr::AggregateOrder::new(&[]).unwrap(), distinct: false };
            let ordered = vec![
                Aggregate {
                    func: AggregateFunc::GroupConcat(concat),
                    arg: Some(Expr::List(vec![col(2), Expr::Literal(Datum::text(",").into_owned())])),
                },
                Aggregate { func: AggregateFunc::SumDistinct, arg: Some(col(1)) },
            ];
            let mut reduce = Reduce::new(vec![0], ordered, Dialect::Sqlite);
            check_reduce("reduce (group_concat, sum distinct)", &mut reduce, seed);
            let mut sum = Reduce::new(vec![0], aggregates[..3].to_vec(), Dialect::Sqlite);
            check_reduce("reduce (sums)", &mut sum, seed);
        }
    }

    #[test]
    fn distinct_threshold_and_views_report_their_live_bytes() {
        for seed in SEEDS {
            let batches = workload(seed, 100, 6, 60);
            check(
                "distinct",
                &mut Distinct::default(),
                &batches,
                0.0,
                |d, b| {
                    d.step(b);
                },
                Distinct::state_bytes,
            );
            check(
                "threshold",
                &mut Threshold::default(),
                &batches,
                0.0,
                |t, b| {
                    t.step(b);
                },
                Threshold::state_bytes,
            );
            // Keyed by all columns (a multiset, rows keyed by themselves)
            // and by a unique key: (k, v, text, x) is the whole row.
            check(
                "multiset view",
                &mut ViewState::new(vec![0, 1, 2, 3], 4),
                &batches,
                0.0,
                |v, b| {
                    v.apply(b).unwrap();
                },
                ViewState::state_bytes,
            );
            check(
                "keyed view",
                &mut ViewState::new(vec![3, 2, 1, 0], 4),
                &batches,
                0.0,
                |v, b| {
                    v.apply(b).unwrap();
                },
                ViewState::state_bytes,
            );
        }
    }

    #[test]
    fn top_k_reports_its_live_bytes() {
        let order = vec![SortKey { column: 2, descending: true, nulls_first: false }];
        for seed in SEEDS {
            // Partitions of at most 8 rows: one B-tree node each, exact.
            let mut top = TopK::new(vec![0], order.clone(), 3, false, Numbering::RowNumber);
            check(
                "top-k",
                &mut top,
                &workload(seed, 100, 8, 60),
                0.0,
                |t, b| {
                    t.step(b);
                },
                TopK::state_bytes,
            );
            // Partitions of up to 200 rows: the nodes are estimated.
            let mut top = TopK::new(vec![0], order.clone(), 3, true, Numbering::RowNumber);
            check(
                "top-k, large partitions",
                &mut top,
                &workload(seed, 3, 200, 80),
                0.3,
                |t, b| {
                    t.step(b);
                },
                TopK::state_bytes,
            );
        }
    }

    #[test]
    fn scalar_filter_reports_its_live_bytes() {
        use crate::operator::{ScalarComparison, ScalarFilter};
        use denorm_expr::{BinaryOp, Expr};
        for seed in SEEDS {
            // Outer rows kept ordered by `x` (a double), compared with a
            // scalar that moves every batch.
            let comparison = ScalarComparison {
                outer: Expr::Column(3),
                op: BinaryOp::Gt,
                scalar: Expr::Column(0),
                scalar_arity: 1,
                pad: false,
            };
            let mut filter = ScalarFilter::new(comparison, denorm_types::Dialect::Sqlite);
            filter.step(&[], &[(Row::pack([Datum::Float(0.5)]), 1)]).unwrap();
            let moved = std::cell::Cell::new(0.5);
            check(
                "scalar filter",
                &mut filter,
                &workload(seed, 100, 3, 60),
                0.3,
                |f, b| {
                    let (old, new) = (moved.get(), 1.5 - moved.get());
                    moved.set(new);
                    let scalar = [(Row::pack([Datum::Float(old)]), -1), (Row::pack([Datum::Float(new)]), 1)];
                    f.step(b, &scalar).unwrap();
                },
                ScalarFilter::state_bytes,
            );
        }
    }

    /// A bounded top-k over a join, through a dataflow: everything the
    /// dataflow holds between batches is the state it reports (the
    /// partition side's rows are inline, so no buffer has two owners).
    #[test]
    fn bounded_top_k_over_a_join_reports_the_dataflow_live_bytes() {
        let int = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Int, nullable: false };
        let text = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Text, nullable: false };
        let float = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Float, nullable: false };
        let mut catalog = Catalog::new();
        let columns = vec![int("k"), int("v"), text("t"), float("x")];
        catalog.add(TableSchema { name: "posts".into(), columns, primary_key: vec![], unique_keys: vec![] });
        catalog.add(TableSchema {
            name: "follows".into(),
            columns: vec![int("reader"), int("author")],
            primary_key: vec![],
            unique_keys: vec![],
        });
        // Each reader's three latest posts (by text) of the authors followed.
        let join = Plan::Join {
            left: Box::new(Plan::Get { table: "follows".into(), arity: 2 }),
            right: Box::new(Plan::Get { table: "posts".into(), arity: 4 }),
            kind: JoinKind::Inner,
            left_key: vec![1],
            right_key: vec![0],
            residual: None,
        };
        let plan = Plan::TopK {
            input: Box::new(join),
            partition: vec![0],
            order: vec![SortKey { column: 4, descending: true, nulls_first: false }],
            limit: 3,
            rank: false,
            numbering: Numbering::RowNumber,
        };
        for seed in SEEDS {
            let mut dataflow = Dataflow::new(catalog.clone(), Dialect::Sqlite);
            dataflow.add_view_emitting("feed", &plan).unwrap();
            let follows: Vec<(Row, Diff)> =
                (0..40).map(|i| (Row::pack([Datum::Int(i % 10), Datum::Int(i % 7)]), 1)).collect();
            dataflow.apply(&SourceBatch { position: Position(1), tables: vec![("follows".into(), follows)] });
            check(
                "dataflow",
                &mut dataflow,
                &workload(seed, 7, 10, 40),
                0.0,
                |d, b| {
                    d.apply(&SourceBatch { position: Position(2), tables: vec![("posts".into(), b.to_vec())] });
                },
                Dataflow::total_state_bytes,
            );
            assert!(dataflow.state_bytes().iter().any(|(_, label, bytes)| label.contains("JoinTopK") && *bytes > 0));
        }
    }

    /// Failing a view frees the state only it read (all the dataflow held
    /// beyond the other view's), reports the failure in the next batch, and
    /// the other view goes on.
    #[test]
    fn failing_a_view_frees_its_state_and_the_others_go_on() {
        let int = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Int, nullable: false };
        let mut catalog = Catalog::new();
        catalog.add(TableSchema {
            name: "t".into(),
            columns: vec![int("a"), int("b")],
            primary_key: vec![],
            unique_keys: vec![],
        });
        let get = Box::new(Plan::Get { table: "t".into(), arity: 2 });
        let count = Plan::Reduce {
            input: get.clone(),
            group_key: vec![],
            aggregates: vec![Aggregate { func: AggregateFunc::Count, arg: None }],
        };
        let by_b = Plan::Reduce { input: get, group_key: vec![1], aggregates: vec![] };
        let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
        let small = dataflow.add_view("small", &count, vec![], false).unwrap();
        let big = dataflow.add_view("big", &by_b, vec![0], false).unwrap();
        let rows = |from: i64| (from..from + 1000).map(|i| (Row::pack([Datum::Int(i), Datum::Int(i)]), 1)).collect();
        dataflow.apply(&SourceBatch { position: Position(1), tables: vec![("t".into(), rows(0))] });
        let exclusive: HashMap<_, _> = dataflow.exclusive_state_bytes().into_iter().collect();
        assert!(exclusive[&big] > exclusive[&small]);
        let before = dataflow.total_state_bytes();
        let live = counting::live();
        dataflow.fail_view(big, crate::ViewError::MemoryBudget { state_bytes: 1, budget: 0, view_bytes: 1 });
        let freed = before - dataflow.total_state_bytes();
        assert_eq!(freed, exclusive[&big]);
        let released = live - counting::live();
        assert!(released + 64 >= freed as isize, "the state is freed: {released} of {freed}");
        let out = dataflow.apply(&SourceBatch { position: Position(2), tables: vec![("t".into(), rows(1000))] });
        assert!(matches!(out.errors.as_slice(), [(view, crate::ViewError::MemoryBudget { .. })] if *view == big));
        assert_eq!(dataflow.view_rows(small), vec![(Row::pack([Datum::Int(2000)]), 1)]);
        assert!(dataflow.state_bytes().iter().all(|(view, _, _)| view == "small"));
    }

    /// Nodes shared with a live view survive a failure: failing one of two
    /// views over one join keeps the join and its arrangements; failing the
    /// other too releases them, and a third view over the same table goes
    /// on with correct rows.
    #[test]
    fn shared_nodes_are_released_only_with_their_last_view() {
        let int = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Int, nullable: false };
        let mut catalog = Catalog::new();
        catalog.add(TableSchema {
            name: "t".into(),
            columns: vec![int("id"), int("u")],
            primary_key: vec![0],
            unique_keys: vec![],
        });
        catalog.add(TableSchema {
            name: "u".into(),
            columns: vec![int("id")],
            primary_key: vec![0],
            unique_keys: vec![],
        });
        let join = Box::new(Plan::Join {
            left: Box::new(Plan::Get { table: "t".into(), arity: 2 }),
            right: Box::new(Plan::Get { table: "u".into(), arity: 1 }),
            kind: JoinKind::Inner,
            left_key: vec![1],
            right_key: vec![0],
            residual: None,
        });
        let count = |input: Box<Plan>, key: Vec<usize>| Plan::Reduce {
            input,
            group_key: key,
            aggregates: vec![Aggregate { func: AggregateFunc::Count, arg: None }],
        };
        let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
        let a = dataflow.add_view("a", &count(join.clone(), vec![]), vec![], false).unwrap();
        let b = dataflow.add_view("b", &count(join, vec![1]), vec![0], false).unwrap();
        let c = dataflow
            .add_view("c", &count(Box::new(Plan::Get { table: "t".into(), arity: 2 }), vec![]), vec![], false)
            .unwrap();
        let batch = |position: u64, from: i64| SourceBatch {
            position: Position(position),
            tables: vec![
                ("t".into(), (from..from + 100).map(|i| (Row::pack([Datum::Int(i), Datum::Int(i % 10)]), 1)).collect()),
                ("u".into(), (from..from + 10).map(|i| (Row::pack([Datum::Int(i)]), 1)).collect()),
            ],
        };
        dataflow.apply(&batch(1, 0));
        let labels =
            |d: &Dataflow| d.state_bytes().into_iter().map(|(v, l, _)| format!("{v}: {l}")).collect::<Vec<_>>();
        let before = labels(&dataflow);
        assert!(
            before.iter().any(|l| l.starts_with("a: ") && l.contains("Arrange") && l.contains("shared by 2 views")),
            "{before:?}"
        );
        let error = || crate::ViewError::MemoryBudget { state_bytes: 1, budget: 0, view_bytes: 1 };
        dataflow.fail_view(b, error());
        let after_b = labels(&dataflow);
        assert!(
            after_b.iter().any(|l| l.starts_with("a: ") && l.contains("Arrange") && !l.contains("shared")),
            "{after_b:?}"
        );
        let out = dataflow.apply(&batch(2, 100));
        assert_eq!(out.errors.len(), 1);
        // a: 200 rows of t each meeting one u row (ids 0..9 and 100..109
        // give keys 0..9, all present).
        assert_eq!(dataflow.view_rows(a), vec![(Row::pack([Datum::Int(200)]), 1)]);
        dataflow.fail_view(a, error());
        assert!(labels(&dataflow).iter().all(|l| l.starts_with("c: ")), "{:?}", labels(&dataflow));
        dataflow.apply(&batch(3, 200));
        assert_eq!(dataflow.view_rows(c), vec![(Row::pack([Datum::Int(300)]), 1)]);
    }

    /// A row's reported heap bytes are what allocating it costs.
    #[test]
    fn a_row_costs_its_arc() {
        for len in [0usize, 5, 21, 22, 23, 40, 100, 1000] {
            let text = "x".repeat(len);
            let before = counting::live();
            let r = Row::pack([Datum::text(&text)]);
            let cost = counting::live() - before;
            assert_eq!(cost, row(&r) as isize, "text of {len}");
            drop(r);
        }
    }

    /// Small maps are one leaf, exactly; larger ones stay within the
    /// bounds the node fill allows.
    #[test]
    fn btree_nodes_within_the_fill_bounds() {
        for n in [1usize, 5, 11, 12, 40, 1000, 20_000] {
            let before = counting::live();
            let mut map: BTreeMap<u64, i64> = BTreeMap::new();
            for i in 0..n as u64 {
                map.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1);
            }
            let live = (counting::live() - before) as f64;
            let reported = btree_map(&map) as f64;
            if n <= BTREE_CAPACITY {
                assert_eq!(live, reported, "{n} entries");
            } else {
                assert!((reported / live - 1.0).abs() < 0.35, "{n}: reported {reported}, live {live}");
            }
        }
    }
}
