//! Every scalar function of the SQLite function table, evaluated by denorm
//! and by the real SQLite (the bundled library, the same the differential
//! tests run) over a grid of values of every storage class: NULL, integers
//! (negative, zero, extremes), doubles (ties at .5, values whose decimal
//! expansion rounds, large magnitudes), text (empty, spaces, case, UTF-8,
//! quotes, numeric prefixes, dates in every accepted form). The expected
//! result is SQLite's own answer, not a hand-typed one.

use denorm_expr::{DateFunc, Expr, Func, JsonAccess, TrimSide};
use denorm_types::{Datum, Dialect, Value};
use rusqlite::types::Value as Sql;

fn values() -> Vec<Value> {
    let mut v = vec![Datum::Null];
    v.extend([-7, -1, 0, 1, 2, 3, 5, 42, 1000, i64::MAX, i64::MIN].map(Datum::Int));
    v.extend(
        [0.5, -2.5, 1.005, 2.675, 0.125, -0.125, 3.14258, 1e20, 123456.789, -0.0001, 2.5, 1e-7, 49.47]
            .map(Datum::Float),
    );
    v.extend(
        [
            "",
            " ",
            " hello ",
            "Hello World",
            "héllo wörld",
            "a'b",
            "12abc",
            "  42  ",
            "-7.5",
            "abc",
            "xxhixx",
            "2024-01-31",
            "2024-02-29 13:45:10.123",
            "2024-03-10T08:05",
            "1999-12-31 23:59:59",
            "2024-01-01 00:00:00+02:00",
            "12:30",
            "24:00",
            "2451545.5",
            "0000-01-01",
            "2024-13-01",
        ]
        .map(Value::from),
    );
    v
}

fn modifiers() -> Vec<Value> {
    [
        "+1 month",
        "-1 month",
        "+1 year",
        "start of month",
        "start of year",
        "start of day",
        "end of month",
        "+90 days",
        "-3 hours",
        "+1.5 days",
        "weekday 0",
        "weekday 3",
        "unixepoch",
        "julianday",
        "auto",
        "floor",
        "ceiling",
        "+01:30",
        "-0001-02-03",
        "+0000-11-00 10:00",
        "subsec",
        "bogus",
        "+10 fortnights",
    ]
    .map(Value::from)
    .into()
}

fn to_sql(d: &Value) -> Sql {
    match d {
        Datum::Null => Sql::Null,
        Datum::Int(i) => Sql::Integer(*i),
        Datum::Float(x) => Sql::Real(*x),
        Datum::Text(t) => Sql::Text(t.to_string()),
        other => panic!("not a SQLite value: {other:?}"),
    }
}

fn same(ours: &Sql, theirs: &Sql) -> bool {
    match (ours, theirs) {
        (Sql::Real(a), Sql::Real(b)) => a == b || (a.is_nan() && b.is_nan()),
        (a, b) => a == b,
    }
}

struct Checker {
    db: rusqlite::Connection,
    failures: Vec<String>,
    checked: usize,
}

impl Checker {
    fn new() -> Self {
        Checker { db: rusqlite::Connection::open_in_memory().unwrap(), failures: Vec::new(), checked: 0 }
    }

    fn check(&mut self, sql_name: &str, func: Func, args: &[Value]) {
        let placeholders = vec!["?"; args.len()].join(", ");
        let sql = match sql_name {
            "->" | "->>" => format!("SELECT ? {sql_name} ?"),
            _ => format!("SELECT {sql_name}({placeholders})"),
        };
        let params: Vec<Sql> = args.iter().map(to_sql).collect();
        let theirs: Result<Sql, _> =
            self.db.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| r.get::<_, Sql>(0));
        let expr = Expr::Call { func, args: args.iter().cloned().map(Expr::Literal).collect() };
        let ours = expr.eval(&[], Dialect::Sqlite).map(|d| to_sql(&d.into_owned()));
        if let Err(denorm_expr::EvalError::NotDeterministic(_)) = ours {
            // 'now', 'subsec', 'localtime', 'utc': refused on purpose.
            return;
        }
        self.checked += 1;
        match (ours, theirs) {
            (Ok(o), Ok(t)) if same(&o, &t) => {}
            (Err(_), Err(_)) => {}
            // SQLite cut a character in two (`printf('%.2s', 'é…')` counts
            // bytes): text Rust cannot hold; denorm keeps whole characters.
            (_, Err(rusqlite::Error::Utf8Error(..))) => {}
            (o, t) => self.failures.push(format!("{sql_name}({args:?}): denorm {o:?}, SQLite {t:?}")),
        }
    }

    fn finish(self) {
        assert!(self.checked > 100, "only {} calls checked", self.checked);
        assert!(
            self.failures.is_empty(),
            "{} of {} calls differ:\n{}",
            self.failures.len(),
            self.checked,
            self.failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

#[test]
fn text_and_number_functions_equal_sqlite() {
    let mut c = Checker::new();
    let values = values();
    let positions: Vec<Value> =
        [-9, -3, -1, 0, 1, 2, 3, 9].map(Datum::Int).into_iter().chain([Datum::Null, Datum::Float(1.7)]).collect();
    let one = [
        ("typeof", Func::Typeof),
        ("hex", Func::Hex),
        ("quote", Func::Quote),
        ("unicode", Func::Unicode),
        ("sign", Func::Sign),
        ("round", Func::Round),
        ("length", Func::Length),
        ("octet_length", Func::OctetLength),
        ("trim", Func::Trim(TrimSide::Both)),
        ("ltrim", Func::Trim(TrimSide::Leading)),
        ("rtrim", Func::Trim(TrimSide::Trailing)),
        ("char", Func::Char),
    ];
    for v in &values {
        for (name, func) in one {
            c.check(name, func, std::slice::from_ref(v));
        }
        for p in &positions {
            c.check("substr", Func::Substr, &[v.clone(), p.clone()]);
            c.check("round", Func::Round, &[v.clone(), p.clone()]);
            for q in &positions {
                c.check("substr", Func::Substr, &[v.clone(), p.clone(), q.clone()]);
            }
        }
        for w in &values {
            c.check("instr", Func::Instr, &[v.clone(), w.clone()]);
            c.check("min", Func::Min, &[v.clone(), w.clone()]);
            c.check("max", Func::Max, &[v.clone(), w.clone()]);
            c.check("trim", Func::Trim(TrimSide::Both), &[v.clone(), w.clone()]);
            c.check("ltrim", Func::Trim(TrimSide::Leading), &[v.clone(), w.clone()]);
            c.check("rtrim", Func::Trim(TrimSide::Trailing), &[v.clone(), w.clone()]);
        }
        for (from, to) in [("l", "L"), ("", "x"), ("x", ""), ("2", "two"), ("o", "0")] {
            c.check("replace", Func::Replace, &[v.clone(), Value::from(from), Value::from(to)]);
        }
        c.check("char", Func::Char, &[v.clone(), Datum::Int(66), Datum::Int(0x1F600)]);
        c.check("concat", Func::Concat, &[v.clone(), Datum::Null, Value::from("|"), v.clone()]);
        c.check("concat_ws", Func::ConcatWs, &[Value::from(", "), v.clone(), Datum::Null, Datum::Float(0.5)]);
        c.check("concat_ws", Func::ConcatWs, &[v.clone(), Datum::Int(1), Datum::Int(2)]);
    }
    c.finish();
}

#[test]
fn json_access_equals_sqlite() {
    let mut c = Checker::new();
    let documents = [
        r#"{"a":1,"b":[1,2.5,"x",true,false,null,{"c":"d"}],"e":{"f":-0.5e3},"g":"\u00e9\n\"q\"","a.b":7}"#,
        r#" [ 10 , -9223372036854775808, 9223372036854775808, 1E2, "s", [ ] , { } ] "#,
        r#"{"k":"v","k":"w","n":null,"u":"\ud83d\ude00","big":123456789012345678901234567890}"#,
        "42",
        "\"just text\"",
        "{bad}",
        "",
    ];
    let paths = [
        "$",
        "$.a",
        "$.b",
        "$.b[1]",
        "$.b[6].c",
        "$.b[#-1]",
        "$.b[#]",
        "$.b[9]",
        "$.e.f",
        "$.g",
        "$.\"a.b\"",
        "$[0]",
        "$[1]",
        "$[2]",
        "$[3]",
        "$[5]",
        "$.k",
        "$.n",
        "$.u",
        "$.big",
        "$.missing",
        "a",
        "$a",
        "$.",
        "$[x]",
    ];
    let labels: Vec<Value> = ["a", "b", "a.b", "", "[1]", "k", "g", "e"]
        .into_iter()
        .map(Value::from)
        .chain([Datum::Int(0), Datum::Int(1), Datum::Int(-1), Datum::Int(9), Datum::Null, Datum::Float(1.5)])
        .collect();
    for document in documents.map(Value::from).into_iter().chain([Datum::Null, Datum::Int(5), Datum::Float(0.5)]) {
        for path in paths.map(Value::from).into_iter().chain([Datum::Null, Datum::Int(1)]) {
            c.check("json_extract", Func::JsonAccess(JsonAccess::Extract), &[document.clone(), path.clone()]);
            c.check("->", Func::JsonAccess(JsonAccess::Json), &[document.clone(), path.clone()]);
            c.check("->>", Func::JsonAccess(JsonAccess::Value), &[document.clone(), path]);
        }
        for label in &labels {
            c.check("->", Func::JsonAccess(JsonAccess::Json), &[document.clone(), label.clone()]);
            c.check("->>", Func::JsonAccess(JsonAccess::Value), &[document.clone(), label.clone()]);
        }
    }
    c.finish();
    // SQLite also reads JSON5; denorm refuses it rather than guess.
    for json5 in ["{'a':1}", "[1,2,]", "{a:1}", "[0x10]", "/* c */ 1"] {
        let expr = Expr::Call {
            func: Func::JsonAccess(JsonAccess::Extract),
            args: vec![Expr::Literal(Value::from(json5)), Expr::Literal(Value::from("$"))],
        };
        assert!(expr.eval(&[], Dialect::Sqlite).is_err(), "{json5}");
    }
}

#[test]
fn printf_equals_sqlite() {
    let mut c = Checker::new();
    let formats = [
        "%d", "%5d", "%-5d|", "%05d", "%+d", "% d", "%.3d", "%x", "%X", "%08x", "%f", "%.2f", "%.0f", "%10.3f",
        "%-10.1f|", "%+.1f", "%010.2f", "%s", "%10s", "%-10s|", "%.2s", "%c", "%%", "a%sb%dc", "%d %d",
    ];
    for format in formats {
        for v in values() {
            c.check("printf", Func::Printf, &[Value::from(format), v.clone()]);
        }
    }
    c.finish();
}

#[test]
fn date_functions_equal_sqlite() {
    let mut c = Checker::new();
    let dates = [
        ("date", DateFunc::Date),
        ("time", DateFunc::Time),
        ("datetime", DateFunc::DateTime),
        ("julianday", DateFunc::JulianDay),
        ("unixepoch", DateFunc::UnixEpoch),
    ];
    let mut times = values();
    times.retain(|v| !matches!(v, Datum::Text(t) if t.eq_ignore_ascii_case("now")));
    times.extend([Datum::Int(1_700_000_000), Datum::Float(2460000.25), Datum::Int(-1)]);
    let modifiers = modifiers();
    for v in &times {
        for (name, kind) in dates {
            c.check(name, Func::Date(kind), std::slice::from_ref(v));
            for m in &modifiers {
                c.check(name, Func::Date(kind), &[v.clone(), m.clone()]);
            }
        }
        for m in &modifiers {
            for n in ["+1 day", "start of month", "weekday 1", "-1 month", "subsec"] {
                c.check("datetime", Func::Date(DateFunc::DateTime), &[v.clone(), m.clone(), Value::from(n)]);
            }
        }
        for format in
            ["%Y", "%m/%d/%Y %H:%M:%S", "%j %w %u %U %W %V %G %g", "%f %s %J", "%e %k %l %I %p %P %R %T %F", "%%", "%Q"]
        {
            c.check("strftime", Func::Date(DateFunc::Strftime), &[Value::from(format), v.clone()]);
            c.check(
                "strftime",
                Func::Date(DateFunc::Strftime),
                &[Value::from(format), v.clone(), Value::from("+1 month")],
            );
        }
    }
    c.finish();
}

mod random {
    //! Random time values and modifiers, assembled from the pieces SQLite's
    //! parser looks at (digits of every width, separators, signs, units,
    //! fractions, out-of-range fields), checked against SQLite: any panic or
    //! difference fails.

    use proptest::prelude::*;

    use super::*;

    /// A JSON document's text with random spacing.
    fn json() -> impl Strategy<Value = String> {
        let space = || proptest::sample::select(vec!["", " ", "\n\t "]);
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            proptest::sample::select(vec![
                "0",
                "-0",
                "12",
                "-7",
                "1.5",
                "-0.25e2",
                "1E+3",
                "9223372036854775807",
                "9223372036854775808",
                "-9223372036854775809",
                "123456789012345678901234",
                "0.1e-400",
                "1e400",
            ])
            .prop_map(str::to_string),
            proptest::sample::select(vec![
                r#""""#,
                r#""a""#,
                r#""é\u00e9""#,
                r#""q\"\\\/\n""#,
                r#""\ud83d\ude00""#,
                r#""\ud800x""#,
            ])
            .prop_map(str::to_string),
        ];
        leaf.prop_recursive(4, 32, 5, move |inner| {
            prop_oneof![
                (proptest::collection::vec(inner.clone(), 0..5), space())
                    .prop_map(|(items, s)| format!("[{s}{}{s}]", items.join(&format!("{s},{s}")))),
                (
                    proptest::collection::vec(
                        (proptest::sample::select(vec!["a", "b", "a b", "é", "\\u0061", "a"]), inner),
                        0..5
                    ),
                    space()
                )
                    .prop_map(|(members, s)| {
                        let members: Vec<String> =
                            members.into_iter().map(|(k, v)| format!("\"{k}\"{s}:{s}{v}")).collect();
                        format!("{{{s}{}{s}}}", members.join(","))
                    }),
            ]
        })
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u32..10000).prop_map(|n| n.to_string()),
            (0u32..100).prop_map(|n| format!("{n:02}")),
            (0u32..10000).prop_map(|n| format!("{n:04}")),
            proptest::sample::select(vec![
                "-",
                ":",
                " ",
                "T",
                ".",
                "+",
                "Z",
                "z",
                "+02:00",
                "-05:30",
                "  ",
                ".5",
                ".123456",
                "e3",
                "days",
                "day",
                "months",
                "years",
                "hours",
                "minutes",
                "seconds",
                "start of ",
                "weekday ",
                "month",
                "year",
                "unixepoch",
                "auto",
                "julianday",
                "floor",
                "ceiling",
                "subsec",
                "end of ",
                "24:00",
                "2024-02-29",
                "1970-01-01",
                "-0001-",
                "99",
                "5373484",
                "14712",
                "x",
            ])
            .prop_map(str::to_string),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(piece(), 1..6).prop_map(|p| p.concat())
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => text().prop_map(Value::from),
            1 => (-1e12f64..1e12).prop_map(Datum::Float),
            1 => (-100_000_000_000i64..300_000_000_000).prop_map(Datum::Int),
            1 => (0f64..5_373_484.5).prop_map(Datum::Float),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn date_functions_equal_sqlite_on_random_input(
            time in value(),
            modifiers in proptest::collection::vec(text(), 0..4),
            format in proptest::collection::vec(
                proptest::sample::select(vec!["%Y", "%m", "%d", "%H", "%M", "%S", "%f", "%j", "%J", "%s", "%w",
                    "%W", "%U", "%V", "%G", "%u", "-", " ", "%", "%%"]), 0..6),
        ) {
            let mut c = Checker::new();
            let mut args = vec![time];
            args.extend(modifiers.into_iter().map(Value::from));
            for (name, kind) in [("datetime", DateFunc::DateTime), ("julianday", DateFunc::JulianDay),
                ("unixepoch", DateFunc::UnixEpoch)] {
                c.check(name, Func::Date(kind), &args);
            }
            let mut with_format = vec![Value::from(format.concat())];
            with_format.extend(args);
            c.check("strftime", Func::Date(DateFunc::Strftime), &with_format);
            prop_assert!(c.failures.is_empty(), "{}", c.failures.join("\n"));
        }

        /// Rounding and fixed-point printing of doubles of every magnitude.
        #[test]
        fn round_and_printf_equal_sqlite_on_random_doubles(
            x in prop_oneof![
                any::<f64>().prop_filter("finite", |x| x.is_finite()).boxed(),
                (-1e6f64..1e6).boxed(),
                (-10f64..10.0).boxed(),
            ],
            places in -2i64..20,
            quarter in -400i64..400,
        ) {
            let mut c = Checker::new();
            for v in [Datum::Float(x), Datum::Float(quarter as f64 / 8.0 + 0.005)] {
                c.check("round", Func::Round, &[v.clone(), Datum::Int(places)]);
                c.check("round", Func::Round, std::slice::from_ref(&v));
                let format = format!("%.{}f|%d|%s", places.clamp(0, 30));
                c.check("printf", Func::Printf, &[Value::from(format), v.clone(), v.clone(), v]);
            }
            prop_assert!(c.failures.is_empty(), "{}", c.failures.join("\n"));
        }

        /// Text functions over random strings (ASCII, multi-byte, quotes,
        /// spaces) and random positions.
        #[test]
        fn text_functions_equal_sqlite_on_random_input(
            a in "[ a-cé'😀%_]{0,8}",
            b in "[ a-cé'😀]{0,3}",
            p in -12i64..12,
            q in -12i64..12,
        ) {
            let mut c = Checker::new();
            let (x, y) = (Value::from(a.as_str()), Value::from(b.as_str()));
            c.check("substr", Func::Substr, &[x.clone(), Datum::Int(p), Datum::Int(q)]);
            c.check("substr", Func::Substr, &[x.clone(), Datum::Int(p)]);
            c.check("instr", Func::Instr, &[x.clone(), y.clone()]);
            c.check("replace", Func::Replace, &[x.clone(), y.clone(), Value::from("<>")]);
            c.check("trim", Func::Trim(TrimSide::Both), &[x.clone(), y.clone()]);
            c.check("ltrim", Func::Trim(TrimSide::Leading), &[x.clone(), y.clone()]);
            c.check("rtrim", Func::Trim(TrimSide::Trailing), &[x.clone(), y.clone()]);
            c.check("hex", Func::Hex, std::slice::from_ref(&x));
            c.check("quote", Func::Quote, std::slice::from_ref(&x));
            c.check("unicode", Func::Unicode, std::slice::from_ref(&x));
            c.check("length", Func::Length, std::slice::from_ref(&x));
            c.check("printf", Func::Printf, &[Value::from(format!("%{}s|%-{}.{}s|%c", p.abs(), q.abs(), p.abs())), x.clone(), y.clone(), x.clone()]);
            prop_assert!(c.failures.is_empty(), "{}", c.failures.join("\n"));
        }

        /// Random JSON documents (nesting, escapes, numbers of every form,
        /// whitespace) and paths, through json_extract, -> and ->>.
        #[test]
        fn json_access_equals_sqlite_on_random_documents(
            document in json(),
            path in proptest::collection::vec(prop_oneof![
                proptest::sample::select(vec![".a", ".b", ".\"a b\"", ".é", "[0]", "[1]", "[#-1]", "[5]"]),
            ], 0..4),
            label in prop_oneof![
                proptest::sample::select(vec!["a", "b", "a b", "é", "[0]", "$.a[0]"]).prop_map(Value::from),
                (-3i64..4).prop_map(Datum::Int),
            ],
        ) {
            let mut c = Checker::new();
            let document = Value::from(document);
            let path = Value::from(format!("${}", path.concat()));
            c.check("json_extract", Func::JsonAccess(JsonAccess::Extract), &[document.clone(), path.clone()]);
            c.check("->", Func::JsonAccess(JsonAccess::Json), &[document.clone(), path]);
            c.check("->", Func::JsonAccess(JsonAccess::Json), &[document.clone(), label.clone()]);
            c.check("->>", Func::JsonAccess(JsonAccess::Value), &[document, label]);
            prop_assert!(c.failures.is_empty(), "{}", c.failures.join("\n"));
        }
    }
}
