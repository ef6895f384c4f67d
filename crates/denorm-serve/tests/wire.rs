//! The PostgreSQL wire protocol over a real socket with real clients: the
//! `postgres` crate (extended protocol, binary results, typed parameters;
//! and its simple-query protocol) and psql.

use std::sync::Arc;
use std::time::Duration;

use denorm_serve::wire::sql::SqlError;
use denorm_serve::wire::{serve_pg, tls_acceptor, AllowAll, Authenticate, Backend, Login, TlsAcceptor};
mod common;

use common::column;
use denorm_serve::{channel, ColumnInfo, Publisher, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};
use postgres::types::Type;
use postgres::{Client, NoTls, SimpleQueryMessage};
use tokio::sync::oneshot;

fn views() -> Vec<ViewInfo> {
    vec![
        ViewInfo {
            name: "cards".into(),
            columns: vec![
                column("id", ScalarType::Int),
                column("region", ScalarType::Text),
                column("score", ScalarType::Float),
                column("active", ScalarType::Bool),
                column("price", ScalarType::Numeric),
            ],
            key: vec![0],
            ..Default::default()
        },
        ViewInfo {
            name: "broken".into(),
            columns: vec![column("id", ScalarType::Int)],
            key: vec![0],
            ..Default::default()
        },
    ]
}

fn card(id: i64, region: &str, score: Option<f64>, active: Option<bool>, price: &str) -> Row {
    let price = Datum::Numeric(denorm_types::numeric::parse(price).unwrap());
    let values: [Value; 5] = [Datum::Int(id), region.into(), score.into(), active.into(), price];
    Row::pack(&values)
}

/// A wire server on its own runtime; stops when dropped.
struct Server {
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    runtime: tokio::runtime::Runtime,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = &self.runtime;
    }
}

/// The fixture published at position 7; `broken` has failed.
fn fixture() -> (Publisher, Server) {
    fixture_with(None, Arc::new(AllowAll))
}

/// [`fixture`], serving TLS with `tls` and checking logins with `auth`.
fn fixture_with(tls: Option<TlsAcceptor>, auth: Arc<dyn Authenticate>) -> (Publisher, Server) {
    let (mut publisher, reader) = channel(views());
    publisher.apply(
        0,
        &[
            (card(1, "eu", Some(4.5), Some(true), "10.50"), 1),
            (card(2, "us", None, Some(false), "0.01"), 1),
            (card(3, "eu", Some(2.0), None, "-3"), 1),
            (card(4, "it's", Some(1e20), Some(true), "12345678901234567890.123"), 1),
        ],
    );
    publisher.apply(1, &[(Row::pack([Datum::Int(1)]), 1)]);
    publisher.publish(Position(5), &[]);
    publisher.fail(1, "key violation".into());
    publisher.publish(Position(7), &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    runtime.spawn(serve_pg(listener, Backend::new(reader, auth), tls, async {
        let _ = stopped.await;
    }));
    (publisher, Server { port, stop: Some(stop), runtime })
}

fn connect(server: &Server) -> Client {
    Client::connect(&format!("host=127.0.0.1 port={} user=reader dbname=denorm", server.port), NoTls).unwrap()
}

#[test]
fn extended_protocol_reads_typed_rows_with_parameters() {
    let (_publisher, server) = fixture();
    let mut client = connect(&server);
    let statement = client
        .prepare("SELECT id, region, score, active, price FROM cards WHERE region = $1 AND id >= $2 ORDER BY id DESC")
        .unwrap();
    assert_eq!(statement.params(), &[Type::TEXT, Type::INT8]);
    let types: Vec<Type> = statement.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(types, [Type::INT8, Type::TEXT, Type::FLOAT8, Type::BOOL, Type::NUMERIC]);
    // The postgres crate asks for binary results.
    let rows = client.query(&statement, &[&"eu", &1i64]).unwrap();
    type Card = (i64, String, Option<f64>, Option<bool>, rust_decimal::Decimal);
    let got: Vec<Card> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    assert_eq!(
        got,
        vec![(3, "eu".into(), Some(2.0), None, dec("-3")), (1, "eu".into(), Some(4.5), Some(true), dec("10.50")),]
    );
    // A key equality, a NULL parameter, IN, LIMIT/OFFSET as parameters.
    let row = client.query_one("SELECT price FROM cards WHERE id = $1", &[&4i64]).unwrap();
    assert_eq!(row.get::<_, rust_decimal::Decimal>(0).to_string(), "12345678901234567890.123");
    let none: Option<&str> = None;
    assert!(client.query("SELECT * FROM cards WHERE region = $1", &[&none]).unwrap().is_empty());
    let ids: Vec<i64> = client
        .query(
            "SELECT id FROM public.cards c WHERE c.id IN (1, 2, 3) AND score IS NOT NULL ORDER BY 1 LIMIT $1 OFFSET $2",
            &[&1i64, &1i64],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![3]);
}

fn simple_rows(client: &mut Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn simple_protocol_sends_postgresql_text() {
    let (_publisher, server) = fixture();
    let mut client = connect(&server);
    let rows = simple_rows(
        &mut client,
        "select * from CARDS where REGION <> 'us' and id between 1 and 4 order by score desc nulls last",
    );
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        rows,
        vec![
            vec![s("4"), s("it's"), s("1e+20"), s("t"), s("12345678901234567890.123")],
            vec![s("1"), s("eu"), s("4.5"), s("t"), s("10.50")],
            vec![s("3"), s("eu"), s("2"), None, s("-3")],
        ]
    );
    assert_eq!(simple_rows(&mut client, "SELECT region FROM cards WHERE region = 'it''s'"), vec![vec![s("it's")]]);
    assert_eq!(simple_rows(&mut client, "SHOW denorm.position; SELECT 1 AS one"), vec![vec![s("7")], vec![s("1")]]);
    let version = simple_rows(&mut client, "SELECT version()");
    assert!(version[0][0].as_deref().unwrap().starts_with("PostgreSQL 15"), "{version:?}");
    client.batch_execute("SET extra_float_digits = 3; SET application_name = 'test'; BEGIN; COMMIT").unwrap();
    assert_eq!(simple_rows(&mut client, "SHOW application_name"), vec![vec![s("test")]]);
}

#[test]
fn errors_carry_sqlstates_and_hints() {
    let (_publisher, server) = fixture();
    let mut client = connect(&server);
    let cases = [
        ("SELECT * FROM cards WHERE id = 1 OR id = 2", "0A000", "OR"),
        ("SELECT count(*) FROM cards", "0A000", "count"),
        ("SELECT * FROM cards a JOIN cards b ON a.id = b.id", "0A000", "JOIN"),
        ("DELETE FROM cards", "0A000", "DELETE"),
        ("SELECT * FROM nope", "42P01", "cards"),
        ("SELECT nope FROM cards", "42703", "id, region"),
        ("SELECT * FROM broken", "55000", "key violation"),
        ("SELECT * FROM cards WHERE id = 'x'", "22P02", "x"),
    ];
    for (sql, code, mentions) in cases {
        for extended in [false, true] {
            let e = if extended { client.query(sql, &[]).unwrap_err() } else { client.simple_query(sql).unwrap_err() };
            let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
            assert_eq!(db.code().code(), code, "{sql}: {db:?}");
            let text = format!("{} {} {}", db.message(), db.detail().unwrap_or(""), db.hint().unwrap_or(""));
            assert!(text.contains(mentions), "{sql}: {text}");
        }
    }
    // The connection is still usable after errors.
    assert_eq!(client.query_one("SELECT id FROM cards WHERE id = 2", &[]).unwrap().get::<_, i64>(0), 2);
}

#[test]
fn min_position_waits_for_the_view_like_the_http_header() {
    let (mut publisher, server) = fixture();
    let mut client = connect(&server);
    client.batch_execute("SET denorm.min_position = '9'; SET denorm.timeout = '100ms'").unwrap();
    let e = client.query("SELECT id FROM cards WHERE id = 1", &[]).unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "57014", "{e}");
    assert!(client.batch_execute("SET denorm.min_position = 'later'").is_err());
    client.batch_execute("SET denorm.timeout = '10s'").unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        publisher.apply(0, &[(card(9, "eu", None, None, "1"), 1)]);
        publisher.publish(Position(9), &[]);
        publisher
    });
    let rows = client.query("SELECT id FROM cards WHERE id = 9", &[]).unwrap();
    assert_eq!(rows.len(), 1, "the read waited for position 9");
    let _publisher = writer.join().unwrap();
    client.batch_execute("RESET denorm.min_position").unwrap();
    let position: String = client
        .simple_query("SHOW denorm.position")
        .unwrap()
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap();
    assert_eq!(position, "9");
}

/// Runs psql against `server` with `sslmode` and `args`: its stdout and stderr.
fn psql(server: &Server, sslmode: &str, args: &[&str]) -> (String, String) {
    let target = format!("host=127.0.0.1 port={} user=reader dbname=denorm sslmode={sslmode}", server.port);
    let out = std::process::Command::new("psql")
        .args(["-X", "-d", &target])
        .args(args)
        .output()
        .expect("psql is installed (scripts/test installs postgresql-client)");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// psql, the PostgreSQL client: `-c` with aligned and `-A -t` output, and
/// its catalog queries for `\dv` and `\d view`.
#[test]
fn psql_reads_views_and_describes_them() {
    let (_publisher, server) = fixture();
    let psql = |args: &[&str]| psql(&server, "disable", args);
    let (out, err) = psql(&["-A", "-t", "-c", "SELECT id, price FROM cards WHERE id IN (1, 2) ORDER BY id"]);
    assert_eq!(out, "1|10.50\n2|0.01\n", "{err}");
    assert_eq!(err, "", "no warning (e.g. about the server's version)");
    let (out, err) = psql(&["-c", "SELECT region FROM cards WHERE id = 3"]);
    assert!(out.contains(" region \n--------\n eu\n(1 row)"), "{out}{err}");
    let (out, err) = psql(&["-c", "\\dv"]);
    assert!(out.contains("public | cards  | view | denorm") && out.contains("broken"), "{out}{err}");
    let (out, err) = psql(&["-c", "\\d"]);
    assert!(out.contains("public | broken | view | denorm"), "{out}{err}");
    let (out, err) = psql(&["-c", "\\d cards"]);
    assert!(out.contains("View \"public.cards\""), "{out}{err}");
    assert!(out.contains(" price  | numeric"), "{out}{err}");
    assert!(out.contains(" score  | double precision"), "{out}{err}");
    let (_, err) = psql(&["-c", "SELECT * FROM cards GROUP BY id"]);
    assert!(err.contains("GROUP BY is not supported") && err.contains("HINT"), "{err}");
}

/// With `pg_tls_cert`/`pg_tls_key`, a client that asks for TLS gets it
/// (psql `sslmode=require`); one that does not still connects.
#[test]
fn tls_when_the_client_asks_for_it() {
    let dir = std::env::temp_dir().join(format!("denorm-wire-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes a test certificate");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (_publisher, server) = fixture_with(Some(tls_acceptor(&cert, &key).unwrap()), Arc::new(AllowAll));
    let (out, err) = psql(&server, "require", &["-c", "\\conninfo", "-c", "SELECT id FROM cards WHERE id = 2"]);
    assert!(out.contains("SSL connection"), "{out}{err}");
    assert!(out.contains(" id \n----\n  2\n(1 row)"), "{out}{err}");
    let mut client = connect(&server);
    assert_eq!(client.query("SELECT id FROM cards", &[]).unwrap().len(), 4);
    let e = tls_acceptor(&dir.join("missing.pem"), &key).err().unwrap();
    assert!(e.contains("missing.pem"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Lets in only the user `ada`: the seam where authentication plugs in.
#[derive(Debug)]
struct OnlyAda;

impl Authenticate for OnlyAda {
    fn check(&self, login: &Login) -> Result<(), SqlError> {
        match login.user.as_deref() {
            Some("ada") => Ok(()),
            _ => Err(SqlError::new("28000", "this user may not read the views").hint("connect as ada")),
        }
    }
}

#[test]
fn the_authentication_seam_refuses_a_login() {
    let (_publisher, server) = fixture_with(None, Arc::new(OnlyAda));
    let target = |user: &str| format!("host=127.0.0.1 port={} user={user} dbname=denorm", server.port);
    let e = Client::connect(&target("bob"), NoTls).err().unwrap();
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e}"));
    assert_eq!((db.code().code(), db.severity()), ("28000", "FATAL"), "{db:?}");
    let mut ada = Client::connect(&target("ada"), NoTls).unwrap();
    assert_eq!(ada.query("SELECT id FROM cards", &[]).unwrap().len(), 4);
}

/// Random WHERE clauses (comparisons either way round, IN, NOT IN, IS
/// [NOT] NULL, NOT, BETWEEN, with literals or typed parameters) with ORDER
/// BY and LIMIT/OFFSET, over the wire protocol against a published view
/// and by SQLite over the same rows: the same rows every time.
#[test]
fn random_selects_match_sqlite() {
    // `c` is declared COLLATE NOCASE: compared and sorted as SQLite does.
    type Wide = (i64, Option<i64>, Option<String>, Option<f64>, Option<String>);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut below = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let texts = ["a", "b", "ab", "", "c'd"];
    let cased = ["a", "A", "ab", "aB", "B"];
    let rows: Vec<Wide> = (1..=120)
        .map(|id| {
            let a = (below(5) > 0).then(|| below(11) as i64 - 5);
            let t = (below(5) > 0).then(|| texts[below(5) as usize].to_owned());
            let x = (below(5) > 0).then(|| (below(17) as f64 - 8.0) * 0.5);
            let c = (below(5) > 0).then(|| cased[below(5) as usize].to_owned());
            (id, a, t, x, c)
        })
        .collect();
    let col = |name: &str, ty| ColumnInfo { name: name.into(), ty };
    let (mut publisher, reader) = channel(vec![ViewInfo {
        name: "wide".into(),
        columns: vec![
            col("id", ScalarType::Int),
            col("a", ScalarType::Int),
            col("t", ScalarType::Text),
            col("x", ScalarType::Float),
            col("c", ScalarType::Text),
        ],
        key: vec![0],
        collations: vec![None, None, None, None, Some(denorm_types::Collation::NoCase)],
        ..Default::default()
    }]);
    let changes: Vec<(Row, i64)> = rows
        .iter()
        .map(|(id, a, t, x, c)| {
            let values: [Value; 5] =
                [Datum::Int(*id), (*a).into(), t.as_deref().into(), (*x).into(), c.as_deref().into()];
            (Row::pack(&values), 1)
        })
        .collect();
    publisher.apply(0, &changes);
    publisher.publish(Position(1), &[]);
    let sqlite = rusqlite::Connection::open_in_memory().unwrap();
    sqlite
        .execute_batch("CREATE TABLE wide (id INTEGER PRIMARY KEY, a INTEGER, t TEXT, x REAL, c TEXT COLLATE NOCASE)")
        .unwrap();
    for (id, a, t, x, c) in &rows {
        sqlite.execute("INSERT INTO wide VALUES (?1, ?2, ?3, ?4, ?5)", rusqlite::params![id, a, t, x, c]).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(serve_pg(listener, Backend::new(reader, Arc::new(AllowAll)), None, std::future::pending()));
    let mut client = Client::connect(&format!("host=127.0.0.1 port={port} user=t dbname=denorm"), NoTls).unwrap();

    enum Lit {
        Int(i64),
        Text(String),
        Float(f64),
    }
    let mut answered = 0;
    for _ in 0..300 {
        let mut pg = Vec::new();
        let mut lite = Vec::new();
        let mut params: Vec<Lit> = Vec::new();
        for _ in 0..1 + below(3) {
            let column = ["a", "t", "x", "id", "c"][below(5) as usize];
            let mut literal = |below: &mut dyn FnMut(u64) -> u64| -> (String, String) {
                let lit = match column {
                    "t" => Lit::Text(texts[below(5) as usize].to_owned()),
                    "c" => Lit::Text(cased[below(5) as usize].to_owned()),
                    "x" => Lit::Float((below(17) as f64 - 8.0) * 0.5),
                    "id" => Lit::Int(below(130) as i64),
                    _ => Lit::Int(below(11) as i64 - 5),
                };
                if below(2) == 0 {
                    params.push(lit);
                    (format!("${}", params.len()), format!("?{}", params.len()))
                } else {
                    let text = match lit {
                        Lit::Int(i) => i.to_string(),
                        Lit::Float(x) => format!("{x:?}"),
                        Lit::Text(s) => format!("'{}'", s.replace('\'', "''")),
                    };
                    (text.clone(), text)
                }
            };
            let op = ["=", "<>", "<", "<=", ">", ">="][below(6) as usize];
            let (p, l) = match below(7) {
                0 | 1 => {
                    let (vp, vl) = literal(&mut below);
                    (format!("{column} {op} {vp}"), format!("{column} {op} {vl}"))
                }
                2 => {
                    let (vp, vl) = literal(&mut below);
                    (format!("{vp} {op} {column}"), format!("{vl} {op} {column}"))
                }
                3 => {
                    let ((p1, l1), (p2, l2)) = (literal(&mut below), literal(&mut below));
                    let not = if below(2) == 0 { "NOT " } else { "" };
                    (format!("{column} {not}IN ({p1}, {p2})"), format!("{column} {not}IN ({l1}, {l2})"))
                }
                4 => {
                    let not = if below(2) == 0 { " NOT" } else { "" };
                    (format!("{column} IS{not} NULL"), format!("{column} IS{not} NULL"))
                }
                5 => {
                    let (vp, vl) = literal(&mut below);
                    (format!("NOT ({column} {op} {vp})"), format!("NOT ({column} {op} {vl})"))
                }
                _ => {
                    let ((p1, l1), (p2, l2)) = (literal(&mut below), literal(&mut below));
                    (format!("{column} BETWEEN {p1} AND {p2}"), format!("{column} BETWEEN {l1} AND {l2}"))
                }
            };
            pg.push(p);
            lite.push(l);
        }
        // NULLs placed explicitly: the wire sorts as PostgreSQL (NULLs last ascending), SQLite first.
        let order = [
            " ORDER BY id DESC",
            " ORDER BY id",
            " ORDER BY c NULLS FIRST, id",
            " ORDER BY c DESC NULLS LAST, id DESC",
        ][below(4) as usize];
        let page = match below(3) {
            0 => String::new(),
            1 => format!(" LIMIT {}", below(10)),
            _ => format!(" LIMIT {} OFFSET {}", below(10), below(10)),
        };
        let pg_sql = format!("SELECT id, a, t, x, c FROM wide WHERE {}{order}{page}", pg.join(" AND "));
        let lite_sql = format!("SELECT id, a, t, x, c FROM wide WHERE {}{order}{page}", lite.join(" AND "));
        let values: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
            .iter()
            .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                match p {
                    Lit::Int(i) => Box::new(*i),
                    Lit::Float(x) => Box::new(*x),
                    Lit::Text(s) => Box::new(s.clone()),
                }
            })
            .collect();
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values.iter().map(|b| b.as_ref()).collect();
        let got: Vec<Wide> = client
            .query(pg_sql.as_str(), &refs)
            .unwrap_or_else(|e| panic!("{pg_sql}: {e}"))
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        let lite_params: Vec<rusqlite::types::Value> = params
            .iter()
            .map(|p| match p {
                Lit::Int(i) => rusqlite::types::Value::Integer(*i),
                Lit::Float(x) => rusqlite::types::Value::Real(*x),
                Lit::Text(s) => rusqlite::types::Value::Text(s.clone()),
            })
            .collect();
        let mut statement = sqlite.prepare(&lite_sql).unwrap();
        let want: Vec<Wide> = statement
            .query_map(rusqlite::params_from_iter(lite_params), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, want, "{pg_sql}\n{lite_sql}");
        answered += usize::from(!got.is_empty());
    }
    assert!(answered > 100, "only {answered} of 300 queries found rows");
}
