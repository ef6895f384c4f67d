//! Property: after random batches of changes go through the Publisher,
//! every random query over HTTP returns exactly what a simple model (a
//! `BTreeMap` multiset per view, filtered, sorted and paged naively) says.
//!
//! One server serves every case; each case starts by clearing the views,
//! which also exercises `Publisher::clear`.

mod common;

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BTreeMap;

use common::Server;
use denorm_serve::{channel, ColumnInfo, Publisher, ViewInfo};
use denorm_types::{consolidate, Datum, Diff, Position, Row, ScalarType, Value};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value as Json;

const TEXTS: [&str; 5] = ["a", "b", "a b", "é", ""];
const FLOATS: [f64; 5] = [0.5, 1.0, 2.25, -3.0, 1e300];

fn views() -> Vec<ViewInfo> {
    let col = |name: &str, ty| ColumnInfo { name: name.into(), ty };
    vec![
        // Keyed by id.
        ViewInfo {
            name: "keyed".into(),
            columns: vec![
                col("id", ScalarType::Int),
                col("grp", ScalarType::Int),
                col("score", ScalarType::Float),
                col("name", ScalarType::Text),
            ],
            key: vec![0],
            max_staleness: None,
            tables: vec!["t".into()],
            ..Default::default()
        },
        // A multiset: keyed by all columns.
        ViewInfo {
            name: "multi".into(),
            columns: vec![col("grp", ScalarType::Int), col("name", ScalarType::Text)],
            key: vec![0, 1],
            max_staleness: None,
            tables: vec!["t".into()],
            ..Default::default()
        },
    ]
}

fn types(view: usize) -> Vec<ScalarType> {
    views()[view].columns.iter().map(|c| c.ty).collect()
}

fn any_grp() -> impl Strategy<Value = Value> {
    prop_oneof![1 => Just(Datum::Null), 4 => (-1i64..3).prop_map(Datum::Int)]
}

fn any_text() -> impl Strategy<Value = Value> {
    prop_oneof![1 => Just(Datum::Null), 4 => (0..TEXTS.len()).prop_map(|i| Datum::owned_text(TEXTS[i]))]
}

fn any_score() -> impl Strategy<Value = Value> {
    prop_oneof![1 => Just(Datum::Null), 4 => (0..FLOATS.len()).prop_map(|i| Datum::Float(FLOATS[i]))]
}

/// One change to the source: upsert or delete `id` in the keyed view, or
/// add/remove copies of a row of the multiset view.
#[derive(Debug, Clone)]
enum Change {
    Upsert(i64, Value, Value, Value),
    Delete(i64),
    Multi(Value, Value, Diff),
}

fn any_change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0i64..10, any_grp(), any_score(), any_text()).prop_map(|(id, g, s, n)| Change::Upsert(id, g, s, n)),
        1 => (0i64..10).prop_map(Change::Delete),
        3 => (any_grp(), any_text(), prop_oneof![Just(-2i64), Just(-1), Just(1), Just(2)])
            .prop_map(|(g, n, d)| Change::Multi(g, n, d)),
    ]
}

/// A random read: filters, order, limit, offset, select, as query parts.
#[derive(Debug, Clone)]
struct Read {
    view: usize,
    filters: Vec<(usize, bool, &'static str, String)>,
    order: Vec<(usize, bool, Option<bool>)>,
    limit: Option<usize>,
    offset: Option<usize>,
    select: Option<Vec<usize>>,
}

fn operand(ty: ScalarType) -> BoxedStrategy<String> {
    match ty {
        ScalarType::Int => {
            prop_oneof![(-1i64..3).prop_map(|i| i.to_string()), Just("1.0".into()), Just("0.5".into())].boxed()
        }
        ScalarType::Float => {
            prop_oneof![(0..FLOATS.len()).prop_map(|i| FLOATS[i].to_string()), Just("2".into())].boxed()
        }
        _ => (0..TEXTS.len()).prop_map(|i| TEXTS[i].to_owned()).boxed(),
    }
}

fn any_filter(ty: ScalarType, column: usize) -> impl Strategy<Value = (usize, bool, &'static str, String)> {
    let op =
        prop_oneof![Just("eq"), Just("neq"), Just("lt"), Just("lte"), Just("gt"), Just("gte"), Just("in"), Just("is")];
    (op, any::<bool>(), operand(ty), operand(ty)).prop_map(move |(op, negated, a, b)| {
        let arg = match op {
            "in" => format!("({},{})", quote(&a), quote(&b)),
            "is" => "null".to_owned(),
            _ => a,
        };
        (column, negated, op, arg)
    })
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn any_read() -> impl Strategy<Value = Read> {
    (0usize..2).prop_flat_map(|view| {
        let tys = types(view);
        let arity = tys.len();
        let filter = (0..arity).prop_flat_map(move |c| any_filter(tys[c], c));
        (
            proptest::collection::vec(filter, 0..3),
            proptest::collection::vec((0..arity, any::<bool>(), proptest::option::of(any::<bool>())), 0..3),
            proptest::option::of(0usize..6),
            proptest::option::of(0usize..6),
            proptest::option::of(proptest::collection::vec(0..arity, 1..3)),
        )
            .prop_map(move |(filters, order, limit, offset, select)| Read {
                view,
                filters,
                order,
                limit,
                offset,
                select,
            })
    })
}

impl Read {
    fn path(&self) -> String {
        let names: Vec<String> = views()[self.view].columns.iter().map(|c| c.name.clone()).collect();
        let mut parts = Vec::new();
        for (c, negated, op, arg) in &self.filters {
            let not = if *negated { "not." } else { "" };
            parts.push(format!("{}={not}{op}.{}", names[*c], utf8_percent_encode(arg, NON_ALPHANUMERIC)));
        }
        if !self.order.is_empty() {
            let terms: Vec<String> = self
                .order
                .iter()
                .map(|(c, desc, nulls)| {
                    let dir = if *desc { ".desc" } else { ".asc" };
                    let nulls = match nulls {
                        Some(true) => ".nullsfirst",
                        Some(false) => ".nullslast",
                        None => "",
                    };
                    format!("{}{dir}{nulls}", names[*c])
                })
                .collect();
            parts.push(format!("order={}", terms.join(",")));
        }
        if let Some(l) = self.limit {
            parts.push(format!("limit={l}"));
        }
        if let Some(o) = self.offset {
            parts.push(format!("offset={o}"));
        }
        if let Some(s) = &self.select {
            let cols: Vec<&str> = s.iter().map(|&c| names[c].as_str()).collect();
            parts.push(format!("select={}", cols.join(",")));
        }
        format!("/views/{}?{}", views()[self.view].name, parts.join("&"))
    }

    /// The model's answer.
    fn expect(&self, rows: &BTreeMap<Row, Diff>) -> Json {
        let info = &views()[self.view];
        let mut matching: Vec<(Vec<Value>, Diff)> = rows
            .iter()
            .map(|(r, d)| (r.iter().map(Datum::into_owned).collect::<Vec<_>>(), *d))
            .filter(|(datums, _)| self.filters.iter().all(|f| model_passes(info.columns[f.0].ty, f, &datums[f.0])))
            .collect();
        matching.sort_by(|(a, _), (b, _)| {
            for (c, desc, nulls) in &self.order {
                let nulls_first = nulls.unwrap_or(*desc);
                let o = match (a[*c].is_null(), b[*c].is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    _ if *desc => b[*c].total_cmp(&a[*c]),
                    _ => a[*c].total_cmp(&b[*c]),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            let key = info.key.iter().map(|&k| a[k].total_cmp(&b[k])).find(|o| o.is_ne());
            key.unwrap_or_else(|| {
                a.iter().zip(b).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
            })
        });
        let columns: Vec<usize> = self.select.clone().unwrap_or_else(|| (0..info.columns.len()).collect());
        let out: Vec<Json> = matching
            .iter()
            .flat_map(|(datums, d)| std::iter::repeat_n(datums, *d as usize))
            .skip(self.offset.unwrap_or(0))
            .take(self.limit.unwrap_or(usize::MAX))
            .map(|datums| {
                let object = columns.iter().map(|&c| (info.columns[c].name.clone(), to_json(&datums[c]))).collect();
                Json::Object(object)
            })
            .collect();
        Json::Array(out)
    }
}

fn to_json(d: &Value) -> Json {
    match d {
        Datum::Null => Json::Null,
        Datum::Bool(b) => Json::Bool(*b),
        Datum::Int(i) => Json::from(*i),
        Datum::Float(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
        Datum::Text(t) => Json::String(t.to_string()),
        other => unreachable!("the model generates no {other:?}"),
    }
}

/// SQL semantics, spelled out: NULL compares to nothing; numbers compare by value.
fn model_passes(ty: ScalarType, filter: &(usize, bool, &'static str, String), datum: &Value) -> bool {
    let (_, negated, op, arg) = filter;
    let parse = |s: &str| -> Value {
        match ty {
            ScalarType::Int => s.parse::<i64>().map(Datum::Int).unwrap_or_else(|_| Datum::Float(s.parse().unwrap())),
            ScalarType::Float => Datum::Float(s.parse().unwrap()),
            _ => Datum::owned_text(s),
        }
    };
    let result: Option<bool> = if *op == "is" {
        Some(datum.is_null())
    } else if datum.is_null() {
        None
    } else if *op == "in" {
        let inner = arg.trim_start_matches('(').trim_end_matches(')');
        Some(inner.split(',').any(|item| datum.sql_cmp(&parse(item.trim_matches('"'))) == Some(Ordering::Equal)))
    } else {
        let o = datum.sql_cmp(&parse(arg)).unwrap();
        Some(match *op {
            "eq" => o.is_eq(),
            "neq" => o.is_ne(),
            "lt" => o.is_lt(),
            "lte" => o.is_le(),
            "gt" => o.is_gt(),
            _ => o.is_ge(),
        })
    };
    result.map(|b| b != *negated) == Some(true)
}

/// The model: each view's rows as a multiset.
#[derive(Default)]
struct Model {
    keyed: BTreeMap<i64, Row>,
    multi: BTreeMap<Row, Diff>,
}

impl Model {
    fn keyed_rows(&self) -> BTreeMap<Row, Diff> {
        self.keyed.values().map(|r| (r.clone(), 1)).collect()
    }

    /// Applies a batch to the model and returns each view's consolidated changes.
    fn apply(&mut self, batch: &[Change]) -> [Vec<(Row, Diff)>; 2] {
        let mut out: [Vec<(Row, Diff)>; 2] = Default::default();
        for change in batch {
            match change {
                Change::Upsert(id, g, s, n) => {
                    if let Some(old) = self.keyed.remove(id) {
                        out[0].push((old, -1));
                    }
                    let row = Row::pack([&Datum::Int(*id), g, s, n]);
                    self.keyed.insert(*id, row.clone());
                    out[0].push((row, 1));
                }
                Change::Delete(id) => {
                    if let Some(old) = self.keyed.remove(id) {
                        out[0].push((old, -1));
                    }
                }
                Change::Multi(g, n, d) => {
                    let row = Row::pack([g, n]);
                    let count = self.multi.entry(row.clone()).or_insert(0);
                    let d = (*d).max(-*count);
                    *count += d;
                    if *count == 0 {
                        self.multi.remove(&row);
                    }
                    out[1].push((row, d));
                }
            }
        }
        for changes in &mut out {
            consolidate(changes);
        }
        out
    }
}

fn run_case(
    server: &Server,
    publisher: &RefCell<Publisher>,
    position: &Cell<u64>,
    batches: &[(Vec<Change>, Vec<Read>)],
) -> Result<(), TestCaseError> {
    let mut publisher = publisher.borrow_mut();
    let mut model = Model::default();
    for view in 0..2 {
        publisher.clear(view);
    }
    for (batch, reads) in batches {
        let [keyed, multi] = model.apply(batch);
        publisher.apply(0, &keyed);
        publisher.apply(1, &multi);
        position.set(position.get() + 1);
        publisher.publish(Position(position.get()), &[("t".into(), 0.0)]);
        for read in reads {
            let path = read.path();
            let reply = server.get(&path);
            prop_assert_eq!(reply.status, 200, "{}: {}", path, reply.body);
            prop_assert_eq!(reply.position, Some(position.get().to_string()));
            let got: Json = serde_json::from_str(&reply.body).unwrap();
            let rows = if read.view == 0 { model.keyed_rows() } else { model.multi.clone() };
            prop_assert_eq!(got, read.expect(&rows), "{}", path);
        }
    }
    Ok(())
}

#[test]
fn served_rows_equal_the_model() {
    let cases = std::env::var("DENORM_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse::<u32>().ok())
        .map_or(256, |c| (c / 4).max(50));
    let (publisher, reader) = channel(views());
    let publisher = RefCell::new(publisher);
    let server = Server::start(reader);
    let position = Cell::new(0);
    let batch = (proptest::collection::vec(any_change(), 0..12), proptest::collection::vec(any_read(), 0..4));
    let strategy = proptest::collection::vec(batch, 1..5);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&strategy, |batches| run_case(&server, &publisher, &position, &batches));
    if let Err(e) = result {
        panic!("{e}");
    }
}
