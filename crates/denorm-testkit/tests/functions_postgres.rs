//! PostgreSQL's functions in the function table, evaluated by denorm and by
//! a real PostgreSQL (the server `scripts/postgres` starts; the test fails
//! without `DENORM_TEST_POSTGRES_URL`) over a grid of values, NULLs
//! included. Both results are compared as PostgreSQL's text output
//! (`(f(…))::text`); an error must be an error on both sides.

use denorm_expr::{DateField, Expr, Func, TrimSide};
use denorm_types::numeric;
use denorm_types::{temporal, Datum, Dialect, Value};
use postgres::{Client, NoTls};

fn server_url() -> String {
    std::env::var("DENORM_TEST_POSTGRES_URL").expect(
        "DENORM_TEST_POSTGRES_URL is not set: run `export \"$(scripts/postgres start | tail -n1)\"` \
         (scripts/test does this)",
    )
}

/// A value with its PostgreSQL literal.
#[derive(Clone)]
struct Arg {
    value: Value,
    sql: String,
}

fn text(s: &str) -> Arg {
    Arg { value: Value::from(s), sql: format!("'{}'::text", s.replace('\'', "''")) }
}
fn int(i: i64) -> Arg {
    Arg { value: Datum::Int(i), sql: format!("({i})::int4") }
}
fn float(x: f64) -> Arg {
    Arg { value: Datum::Float(x), sql: format!("'{x:e}'::float8") }
}
fn num(s: &str) -> Arg {
    Arg { value: Datum::Numeric(numeric::parse(s).unwrap()), sql: format!("'{s}'::numeric") }
}
fn date(s: &str) -> Arg {
    Arg { value: Datum::Date(temporal::parse_date(s).unwrap()), sql: format!("'{s}'::date") }
}
fn timestamp(s: &str) -> Arg {
    Arg { value: Datum::Timestamp(temporal::parse_timestamp(s).unwrap()), sql: format!("'{s}'::timestamp") }
}
fn interval(s: &str) -> Arg {
    let value = denorm_types::interval::parse(s, "second").unwrap();
    Arg { value: Datum::Interval(value), sql: format!("interval '{s}'") }
}
fn null(ty: &str) -> Arg {
    Arg { value: Datum::Null, sql: format!("NULL::{ty}") }
}

fn output(d: &Value) -> Option<String> {
    match d {
        Datum::Null => None,
        Datum::Text(t) => Some(t.to_string()),
        Datum::Int(i) => Some(i.to_string()),
        Datum::Bool(b) => Some(b.to_string()),
        // float8out writes the sign of a negative zero; denorm's JSON writer
        // (reused here) does not, a difference of its own.
        Datum::Float(x) if *x == 0.0 && x.is_sign_negative() => Some("-0".to_string()),
        Datum::Float(x) => {
            let mut out = String::new();
            denorm_types::json::write_float(&mut out, *x, Dialect::Postgres);
            Some(out.trim_matches('"').to_string())
        }
        other => other.pg_text(),
    }
}

struct Checker {
    client: Client,
    failures: Vec<String>,
    checked: usize,
}

impl Checker {
    fn new() -> Self {
        Checker { client: Client::connect(&server_url(), NoTls).unwrap(), failures: Vec::new(), checked: 0 }
    }

    /// `sql` is the call with `{}` for the arguments' literals.
    fn check(&mut self, sql: &str, func: Func, args: &[Arg]) {
        let literals: Vec<&str> = args.iter().map(|a| a.sql.as_str()).collect();
        let call = sql.replace("{}", &literals.join(", "));
        let expr = Expr::Call { func, args: args.iter().map(|a| Expr::Literal(a.value.clone())).collect() };
        self.check_expr(call, expr);
    }

    /// `call` (PostgreSQL's SQL) against `expr` (denorm's evaluation).
    fn check_expr(&mut self, call: String, expr: Expr) {
        let theirs =
            self.client.query_one(&format!("SELECT ({call})::text"), &[]).map(|r| r.get::<_, Option<String>>(0));
        let ours = expr.eval(&[], Dialect::Postgres).map(|d| output(&d.into_owned()));
        self.checked += 1;
        match (ours, theirs) {
            (Ok(o), Ok(t)) if o == t => {}
            (Err(_), Err(_)) => {}
            // denorm's numeric has no infinity: extract(year from 'infinity')
            // stops the view with "numeric NaN and Infinity cannot be represented".
            (Err(denorm_expr::EvalError::Numeric(numeric::NumericError::NotFinite)), Ok(Some(t)))
                if t.ends_with("Infinity") => {}
            (o, t) => {
                self.failures.push(format!("{call}: denorm {o:?}, PostgreSQL {:?}", t.map_err(|e| e.to_string())))
            }
        }
    }

    fn finish(self) {
        assert!(self.checked > 50, "only {} calls checked", self.checked);
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
fn string_functions_equal_postgres() {
    let mut c = Checker::new();
    let texts = ["", "hello", "héllo wörld", " a,b,,c ", "xxhixx", "a'b", "hELLO wORLD-foo bar_baz 3rd"].map(text);
    let ints: Vec<Arg> = [-7, -2, -1, 0, 1, 2, 3, 9].into_iter().map(int).chain([null("int4")]).collect();
    for s in texts.iter().cloned().chain([null("text")]) {
        for start in &ints {
            c.check("substring({})", Func::PgSubstring, &[s.clone(), start.clone()]);
            c.check("left({})", Func::Left, &[s.clone(), start.clone()]);
            c.check("right({})", Func::Right, &[s.clone(), start.clone()]);
            for count in &ints {
                c.check("substring({})", Func::PgSubstring, &[s.clone(), start.clone(), count.clone()]);
            }
            for delimiter in [",", "", "x", ",,"].map(text) {
                c.check("split_part({})", Func::SplitPart, &[s.clone(), delimiter, start.clone()]);
            }
        }
        for other in texts.iter().cloned().chain([text("l"), text(",")]) {
            c.check("strpos({})", Func::Strpos, &[s.clone(), other.clone()]);
            c.check("btrim({})", Func::Trim(TrimSide::Both), &[s.clone(), other.clone()]);
            c.check("ltrim({})", Func::Trim(TrimSide::Leading), &[s.clone(), other.clone()]);
            c.check("rtrim({})", Func::Trim(TrimSide::Trailing), &[s.clone(), other.clone()]);
        }
        c.check("btrim({})", Func::Trim(TrimSide::Both), std::slice::from_ref(&s));
        for one in [
            ("reverse({})", Func::Reverse),
            ("initcap({})", Func::Initcap { ascii_only: false }),
            ("octet_length({})", Func::OctetLength),
            ("char_length({})", Func::Length),
        ] {
            c.check(one.0, one.1, std::slice::from_ref(&s));
        }
        for n in &ints {
            c.check("repeat({})", Func::Repeat, &[s.clone(), n.clone()]);
            c.check("lpad({})", Func::Lpad, &[s.clone(), n.clone()]);
            c.check("rpad({})", Func::Rpad, &[s.clone(), n.clone(), text("xy")]);
            c.check("lpad({})", Func::Lpad, &[s.clone(), n.clone(), text("")]);
        }
        for (from, to) in [("l", "L"), ("", "x"), (",", ""), ("é", "e")] {
            c.check("replace({})", Func::Replace, &[s.clone(), text(from), text(to)]);
            c.check("starts_with({})", Func::StartsWith, &[s.clone(), text(from)]);
        }
    }
    let mixed = [
        text("a"),
        null("text"),
        int(42),
        float(0.1),
        float(1e20),
        num("1.50"),
        date("2024-02-29"),
        timestamp("2024-02-29 13:45:10.5"),
        Arg { value: Datum::Bool(true), sql: "true".into() },
    ];
    c.check("concat({})", Func::Concat, &mixed);
    c.check("concat_ws({})", Func::ConcatWs, &[&[text(", ")][..], &mixed].concat());
    c.check("concat_ws({})", Func::ConcatWs, &[null("text"), text("a")]);
    c.finish();
}

#[test]
fn round_equals_postgres() {
    let mut c = Checker::new();
    for x in [0.5, 1.5, 2.5, -2.5, 2.675, 1e20, -0.4] {
        c.check("round({})", Func::PgRound, &[float(x)]);
    }
    for n in ["2.345", "-2.345", "1234.5", "0.0005", "99.995", "-0.5", "12345678901234567890.5"] {
        c.check("round({})", Func::PgRound, &[num(n)]);
        for places in [-3, -2, -1, 0, 1, 2, 3, 5] {
            c.check("round({})", Func::PgRound, &[num(n), int(places)]);
        }
    }
    c.finish();
}

#[test]
fn date_functions_equal_postgres() {
    use DateField::*;
    let mut c = Checker::new();
    let fields = [
        Microseconds,
        Milliseconds,
        Second,
        Minute,
        Hour,
        Day,
        Week,
        Month,
        Quarter,
        Year,
        Decade,
        Century,
        Millennium,
        Dow,
        Isodow,
        Doy,
        Isoyear,
        Epoch,
    ];
    let timestamps = [
        "2024-02-29 13:45:10.5",
        "2021-01-01 00:00:00",
        "1999-12-31 23:59:59.999999",
        "0001-01-01 00:00:00",
        "1969-12-31 12:00:00",
        "2000-01-03 06:07:08",
        "2020-12-31 00:00:00",
        "0044-03-15 12:00:00 BC",
    ];
    for t in timestamps {
        let ts = timestamp(t);
        let d = date(t.split(' ').next().unwrap_or(t).trim_end_matches(" BC"));
        for field in fields {
            let name = field.name();
            c.check(&format!("extract({name} from {{}})"), Func::Extract(field), std::slice::from_ref(&ts));
            if field.of_date() {
                c.check(&format!("extract({name} from {{}})"), Func::Extract(field), std::slice::from_ref(&d));
            }
            c.check(&format!("date_part('{name}', {{}})"), Func::DatePart(field), std::slice::from_ref(&ts));
            if field.truncates() {
                c.check(&format!("date_trunc('{name}', {{}})"), Func::DateTrunc(field), std::slice::from_ref(&ts));
            }
        }
    }
    for t in ["infinity", "-infinity"] {
        for field in [Year, Dow, Epoch, Month, Century] {
            let name = field.name();
            let ts = timestamp(t);
            c.check(&format!("extract({name} from {{}})"), Func::Extract(field), std::slice::from_ref(&ts));
            c.check(&format!("date_part('{name}', {{}})"), Func::DatePart(field), std::slice::from_ref(&ts));
            c.check(&format!("date_trunc('{name}', {{}})"), Func::DateTrunc(field), std::slice::from_ref(&ts));
            c.check(&format!("extract({name} from {{}})"), Func::Extract(field), &[date(t)]);
        }
    }
    for (y, m, d) in [
        (2024, 2, 29),
        (2024, 1, 4_294_967_297),
        (i64::MAX, 1, 1),
        (-4713, 1, 1),
        (-4714, 1, 1),
        (2023, 2, 29),
        (-44, 3, 15),
        (0, 1, 1),
        (2024, 13, 1),
        (1, 1, 1),
        (9999, 12, 31),
    ] {
        c.check("make_date({})", Func::MakeDate, &[int(y), int(m), int(d)]);
    }
    c.finish();
}

/// Date and time arithmetic: `date ± integer`, `date - date` and
/// `date|timestamp ± interval` over constant intervals read by denorm's
/// interval parser, month ends, leap days, negative and fractional units,
/// the ends of the ranges and infinities.
#[test]
fn date_arithmetic_equals_postgres() {
    let mut c = Checker::new();
    let dates = ["2024-01-31", "2024-02-29", "2023-03-31", "1999-12-31", "0001-01-01", "4713-11-25 BC", "infinity"];
    let timestamps = ["2024-01-31 23:59:59.999999", "2020-02-29 12:00:00", "1970-01-01 00:00:00", "-infinity"];
    let intervals = [
        "90 days",
        "1 mon",
        "-1 mon",
        "1 year 2 mons 3 days 04:05:06",
        "1.5 days",
        "1.5 weeks",
        "1.5 months",
        "2.5 years",
        "-2 hours 30 minutes",
        "3 days ago",
        "12:00",
        "36:00:00.5",
        "1 decade",
        "1 century",
        "10 millennia",
        "1 us",
        "0.000001 sec",
        "1 ms",
        "2562047 hours 1 us",
        "-30000 days",
    ];
    let value = |a: &Arg| Expr::Literal(a.value.clone());
    for d in dates.map(date).into_iter().chain([null("date")]) {
        for n in [-400_000, -1, 0, 1, 30, 3_000_000].map(int) {
            let expr = Expr::Call { func: Func::DatePlusDays, args: vec![value(&d), value(&n)] };
            c.check_expr(format!("{} + {}", d.sql, n.sql), expr);
        }
        for other in dates.map(date) {
            let expr = Expr::Call { func: Func::DateMinusDate, args: vec![value(&d), value(&other)] };
            c.check_expr(format!("{} - {}", d.sql, other.sql), expr);
        }
    }
    let starts = dates.map(date).into_iter().chain(timestamps.map(timestamp)).chain([null("timestamp")]);
    for start in starts {
        for text in intervals {
            let interval = denorm_expr::interval::parse(text, "second").unwrap();
            for (op, interval) in [("+", interval), ("-", interval.negated().unwrap())] {
                let expr = Expr::Call { func: Func::PlusInterval(interval), args: vec![value(&start)] };
                c.check_expr(format!("{} {op} interval '{text}'", start.sql), expr);
            }
        }
    }
    c.finish();
}

/// `timestamptz ± interval` of a constant interval of hours, minutes and
/// seconds (`now() - INTERVAL '1 hour'`, the one form denorm accepts: no
/// days or months, so no time zone), the ends of the range and infinities.
#[test]
fn timestamptz_plus_a_time_interval_equals_postgres() {
    let mut c = Checker::new();
    c.client.batch_execute("SET TimeZone = 'UTC'").unwrap();
    let value = |a: &Arg| Expr::Literal(a.value.clone());
    let tz = |s: &str| Arg {
        value: Datum::TimestampTz(temporal::parse_timestamptz(s).unwrap()),
        sql: format!("'{s}'::timestamptz"),
    };
    let starts =
        ["2024-05-01 10:00:00.25+00", "2024-03-31 01:30:00+00", "1970-01-01 00:00:00+00", "infinity", "-infinity"];
    let intervals =
        ["1 hour", "90 minutes", "-2 hours 30 minutes", "36:00:00.5", "1 us", "1 ms", "3600 seconds", "2562047 hours"];
    for start in starts.map(tz).into_iter().chain([null("timestamptz")]) {
        for text in intervals {
            let interval = denorm_expr::interval::parse(text, "second").unwrap();
            assert_eq!((interval.months, interval.days), (0, 0), "{text}");
            for (op, interval) in [("+", interval), ("-", interval.negated().unwrap())] {
                let expr = Expr::Call { func: Func::PlusInterval(interval), args: vec![value(&start)] };
                c.check_expr(format!("{} {op} interval '{text}'", start.sql), expr);
            }
        }
    }
    c.finish();
}

/// `to_char(timestamp, format)`: every supported pattern, in its cases,
/// with FM and TH, quoted text and copied characters, over timestamps
/// across years, weekdays, ISO weeks, BC and infinity.
#[test]
fn to_char_equals_postgres() {
    let mut c = Checker::new();
    let timestamps = [
        "2024-03-05 14:07:09.123456",
        "2024-12-30 00:00:00",
        "2021-01-01 12:00:00",
        "2023-01-01 23:59:59.999999",
        "1999-11-11 01:02:03.004",
        "0044-03-15 11:30:00 BC",
        "0001-01-01 00:00:00",
        "infinity",
    ];
    let formats = [
        "YYYY-MM-DD HH24:MI:SS.US",
        "yyyy yyy yy y cc CC",
        "IYYY-IW-ID IYY IY",
        "DDD D Q WW W J SSSS SSSSS",
        "HH HH12 hh12 MI SS MS US",
        "AM PM am pm A.M. P.M. a.m. p.m.",
        "AD BC ad bc A.D. B.C.",
        "Month MONTH month Mon MON mon",
        "Day DAY day Dy DY dy",
        "FMMonth FMDay FMDD FMMM FMHH24 FMYYYY",
        "DDth DDTH FMDDth MMth Dth FMHH12th",
        "\"Quarter\" Q, \"W\\\"eek\" WW",
        "YYYY/MM/DD \\D x_!é",
        "",
    ];
    for t in timestamps.map(timestamp).into_iter().chain([null("timestamp")]) {
        for f in formats {
            c.check("to_char({})", Func::ToChar, &[t.clone(), text(f)]);
        }
    }
    c.finish();
}

/// Interval values: `timestamp - timestamp`, `age`, `interval ± interval`,
/// `- interval`, `interval * / number`, `timestamp + interval` with an
/// interval value, `justify_*`, `extract`/`date_part` of every field an
/// interval has, and the interval text itself (`IntervalStyle = postgres`,
/// the server default), over month ends, leap days, BC, negative and mixed
/// signs.
#[test]
fn interval_values_equal_postgres() {
    use DateField::*;
    let mut c = Checker::new();
    let timestamps = [
        "2024-03-01 00:00:00",
        "2023-01-31 01:00:00.5",
        "2024-02-29 23:59:59.999999",
        "2020-12-31 12:00:00",
        "1999-03-31 00:00:00",
        "0044-03-15 12:00:00 BC",
        "2024-01-31 00:00:00",
        "infinity",
        "-infinity",
    ];
    let intervals = [
        "0",
        "1 day",
        "-1234 years -7 mons -17 days -13:14:15.123456",
        "1999 years 11 mons",
        "24 hours",
        "1 mon",
        "-1 mon",
        "1 year 2 mons -3 days 04:05:06.5",
        "-1 year -2 mons +3 days -04:05:06.5",
        "1.5 months",
        "-2 hours 30 minutes",
        "59 days 23:00:00",
        "100 hours",
        "3 days ago",
        "1 millennium 3 decades",
        "0.000001 sec",
        "-7 mons",
        "11 mons 29 days 23:59:59.999999",
    ];
    let value = |a: &Arg| Expr::Literal(a.value.clone());
    let call = |func, args: Vec<Expr>| Expr::Call { func, args };
    for a in timestamps.map(timestamp) {
        for b in timestamps.map(timestamp).into_iter().chain([null("timestamp")]) {
            c.check_expr(format!("{} - {}", a.sql, b.sql), call(Func::TimestampMinus, vec![value(&a), value(&b)]));
            c.check("age({})", Func::Age, &[a.clone(), b.clone()]);
        }
        for i in intervals.map(interval) {
            let plus = call(Func::TimestampPlusInterval, vec![value(&a), value(&i)]);
            c.check_expr(format!("{} + {}", a.sql, i.sql), plus);
            let negated = call(Func::IntervalNegate, vec![value(&i)]);
            let minus = call(Func::TimestampPlusInterval, vec![value(&a), negated]);
            c.check_expr(format!("{} - {}", a.sql, i.sql), minus);
        }
    }
    let fields = [
        Microseconds,
        Milliseconds,
        Second,
        Minute,
        Hour,
        Day,
        Month,
        Quarter,
        Year,
        Decade,
        Century,
        Millennium,
        Epoch,
    ];
    for i in intervals.map(interval).into_iter().chain([null("interval")]) {
        c.check_expr(i.sql.clone(), value(&i));
        let cast = Expr::Cast { expr: Box::new(value(&i)), to: denorm_types::ScalarType::Text };
        c.check_expr(format!("CAST({} AS text) || ''", i.sql), cast);
        c.check_expr(format!("- {}", i.sql), call(Func::IntervalNegate, vec![value(&i)]));
        for (name, func) in [
            ("justify_hours", Func::JustifyHours),
            ("justify_days", Func::JustifyDays),
            ("justify_interval", Func::JustifyInterval),
        ] {
            c.check(&format!("{name}({{}})"), func, std::slice::from_ref(&i));
        }
        for other in intervals.map(interval) {
            c.check_expr(
                format!("{} + {}", i.sql, other.sql),
                call(Func::IntervalPlus, vec![value(&i), value(&other)]),
            );
            c.check_expr(
                format!("{} - {}", i.sql, other.sql),
                call(Func::IntervalMinus, vec![value(&i), value(&other)]),
            );
            for op in ["=", "<", ">="] {
                let bin = match op {
                    "=" => denorm_expr::BinaryOp::Eq,
                    "<" => denorm_expr::BinaryOp::Lt,
                    _ => denorm_expr::BinaryOp::GtEq,
                };
                c.check_expr(format!("{} {op} {}", i.sql, other.sql), Expr::binary(bin, value(&i), value(&other)));
            }
        }
        for f in [float(2.0), float(0.5), float(-1.5), float(1.0 / 3.0), int(3), int(0), float(1e10)] {
            c.check_expr(format!("{} * {}", i.sql, f.sql), call(Func::IntervalMul, vec![value(&i), value(&f)]));
            c.check_expr(format!("{} / {}", i.sql, f.sql), call(Func::IntervalDiv, vec![value(&i), value(&f)]));
        }
        // The source sessions read intervals in ISO 8601.
        if !i.value.is_null() {
            c.client.batch_execute("SET intervalstyle = iso_8601").unwrap();
            let iso: String = c.client.query_one(&format!("SELECT ({})::text", i.sql), &[]).unwrap().get(0);
            c.client.batch_execute("RESET intervalstyle").unwrap();
            let read = denorm_types::pgtext::parse(denorm_types::ScalarType::Interval, &iso);
            assert_eq!(read, Some(Ok(i.value.clone())), "{iso}");
        }
        for field in fields {
            let name = field.name();
            c.check(&format!("extract({name} from {{}})"), Func::Extract(field), std::slice::from_ref(&i));
            c.check(&format!("date_part('{name}', {{}})"), Func::DatePart(field), std::slice::from_ref(&i));
            if field.truncates() {
                c.check(&format!("date_trunc('{name}', {{}})"), Func::DateTrunc(field), std::slice::from_ref(&i));
            }
        }
    }
    c.finish();
}

/// `greatest`/`least` over arguments of one type (the planner casts them to
/// their common type): NULLs skipped, the first of equal numerics kept with
/// its scale (`1.5` before `1.50`), text bytewise as in the "C" collation.
#[test]
fn greatest_and_least_equal_postgres() {
    let mut c = Checker::new();
    let groups: Vec<Vec<Arg>> = vec![
        [-7, 0, 3, 3].into_iter().map(int).chain([null("int4")]).collect(),
        ["1.5", "1.50", "-2", "0.000", "10"].into_iter().map(num).chain([null("numeric")]).collect(),
        [-0.0, 0.0, 2.5, -1e300].into_iter().map(float).chain([null("float8")]).collect(),
        ["", "b", "B", "é", "ab"].into_iter().map(text).chain([null("text")]).collect(),
        ["2024-02-29", "2023-12-31"].into_iter().map(date).chain([null("date")]).collect(),
    ];
    for values in &groups {
        for a in values {
            for (name, func) in [("greatest({})", Func::Greatest), ("least({})", Func::Least)] {
                c.check(name, func, std::slice::from_ref(a));
                for b in values {
                    c.check(name, func, &[a.clone(), b.clone()]);
                    for d in values.iter().take(3) {
                        c.check(name, func, &[a.clone(), b.clone(), d.clone()]);
                    }
                }
            }
        }
    }
    c.finish();
}

/// A connection to a database of its own created with `LC_CTYPE ctype`.
fn database_with_ctype(name: &str, ctype: &str) -> Client {
    let url = server_url();
    let mut admin = Client::connect(&url, NoTls).unwrap();
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE '{ctype}'"))
        .unwrap();
    let (prefix, _) = url.rsplit_once('/').unwrap();
    Client::connect(&format!("{prefix}/{name}"), NoTls).unwrap()
}

/// `upper`, `lower` and `initcap` of every letter of Latin-1, Latin
/// Extended, IPA, Greek (with its extended block), Cyrillic, Armenian,
/// Georgian, Latin Extended Additional and the letterlike and fullwidth
/// forms, in runs of 48 characters: under a UTF-8 `LC_CTYPE` as PostgreSQL
/// maps them (libc's one-to-one `towupper`/`towlower`), under `C` ASCII only.
#[test]
fn case_mapping_of_every_letter_equals_postgres_under_each_lc_ctype() {
    let ranges = [
        0x20..0x250,
        0x250..0x2b0,
        0x370..0x530,
        0x530..0x590,
        0x10a0..0x1100,
        0x1e00..0x2000,
        0x2100..0x2190,
        0x2c00..0x2d30,
        // Latin Extended-D up to the letters whose case pairs Unicode 14
        // on added (U+A7C0 on), which the server's libc may predate.
        0xa640..0xa7c0,
        0xff00..0xff60,
    ];
    // U+0264 ɤ and U+019B ƛ have an upper case (U+A7CB, U+A7DC) only since
    // Unicode 16, which the server's libc may predate.
    let chars: Vec<char> =
        ranges.into_iter().flatten().filter_map(char::from_u32).filter(|c| !matches!(c, '\'' | 'ɤ' | 'ƛ')).collect();
    for (ctype, ascii_only) in [("C.UTF-8", false), ("C", true)] {
        let database = if ascii_only { "denorm_case_c" } else { "denorm_case_utf8" };
        let mut c = Checker::new();
        c.client = database_with_ctype(database, ctype);
        for run in chars.chunks(48) {
            let s: String = run.iter().flat_map(|ch| [*ch, ' ', *ch, 'x', 'A']).collect();
            c.check("upper({})", Func::Upper { ascii_only }, &[text(&s)]);
            c.check("lower({})", Func::Lower { ascii_only }, &[text(&s)]);
            c.check("initcap({})", Func::Initcap { ascii_only }, &[text(&s)]);
        }
        c.finish();
    }
}
