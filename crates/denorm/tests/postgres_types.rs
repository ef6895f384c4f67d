//! PostgreSQL's numeric, date, timestamp, timestamptz, uuid and jsonb
//! columns end to end: `denorm run` on a real PostgreSQL
//! (`DENORM_TEST_POSTGRES_URL`) under random transactions, every view
//! compared over HTTP with PostgreSQL's own `row_to_json` of the view's
//! SELECT — numbers compared by their exact text (scale included), the rest
//! as parsed JSON; key lookups by the new types; a view reading a column of
//! an unsupported type refused by name while the others run.

mod common;
mod pg_project;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{eventually, get_text, Denorm, SplitMix, PATIENCE};
use pg_project::PgProject;
use postgres::Client;
use serde_json::Value as Json;

const SCHEMA: &str = "
CREATE TABLE accounts (id uuid PRIMARY KEY, name text NOT NULL, opened date);
CREATE TABLE orders (id integer PRIMARY KEY, account_id uuid, amount numeric, qty integer, placed_on date,
    created_at timestamp, paid_at timestamptz, meta jsonb, location point);
ALTER TABLE accounts REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
";

const ACCOUNTS: [&str; 5] = [
    "00000000-0000-0000-0000-000000000001",
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "123e4567-e89b-12d3-a456-426614174000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "5a5a5a5a-0000-4000-8000-00000000beef",
];

const VIEWS: &[(&str, &str)] = &[
    (
        "daily",
        "SELECT placed_on, COUNT(*) AS n, SUM(amount) AS total, AVG(amount) AS mean, MIN(amount) AS low, \
         MAX(amount) AS high, MIN(created_at) AS first_at, MAX(paid_at) AS last_paid, \
         SUM(DISTINCT amount) AS distinct_total, AVG(DISTINCT amount) AS distinct_mean FROM orders GROUP BY placed_on",
    ),
    (
        "by_account",
        "SELECT a.id AS account_id, a.name, a.opened, COUNT(o.id) AS orders, SUM(o.amount * o.qty) AS value, \
         SUM(o.qty) AS items, SUM(o.qty::bigint) AS wide_items, SUM(o.placed_on - a.opened) AS days, \
         AVG(o.qty::numeric) AS mean_qty, AVG(o.qty) AS int_mean_qty, \
         AVG(DISTINCT o.qty) AS distinct_mean_qty, MIN(o.paid_at) AS first_paid \
         FROM accounts a LEFT JOIN orders o ON o.account_id = a.id GROUP BY a.id, a.name, a.opened",
    ),
    (
        "window",
        "SELECT id, account_id, amount, created_at, paid_at FROM orders \
         WHERE created_at >= '2024-01-15' AND created_at < '2024-05-01 12:00' AND paid_at > '2024-02-01T00:00:00+02:00'",
    ),
    (
        "account_docs",
        "SELECT a.id AS account_id, json_agg(json_build_object('id', o.id, 'amount', o.amount, 'on', o.placed_on, \
         'at', o.created_at, 'paid', o.paid_at, 'meta', o.meta, 'account', o.account_id) ORDER BY o.created_at, o.id) AS docs \
         FROM accounts a JOIN orders o ON o.account_id = a.id GROUP BY a.id",
    ),
    ("active_days", "SELECT DISTINCT placed_on, account_id FROM orders WHERE amount > 10.5"),
    // Typed literals, read at plan time as the server reads them.
    (
        "typed_literals",
        "SELECT id, amount > NUMERIC '10.50' AS large, placed_on >= DATE '2024-03-05' AS later, \
         created_at < TIMESTAMP '2024-03-01 12:00' AS early, INTEGER '7' + qty AS q7 FROM orders \
         WHERE paid_at IS NULL OR paid_at >= TIMESTAMPTZ '2024-02-01 00:00:00+02'",
    ),
    (
        "order_text",
        "SELECT id, CAST(amount AS text) AS amount_text, placed_on::text AS day, amount + 1 AS plus, \
         qty * amount AS product, CAST(created_at AS date) AS created_day, id::numeric / 7 AS seventh, \
         CAST(paid_at AS text) AS paid_text, account_id::text AS account_text, meta \
         FROM orders WHERE placed_on <> '2024-03-03' OR account_id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
    ),
    // Top-N ordered by numeric, date, timestamptz and uuid (ties end at the key).
    (
        "largest_orders",
        "SELECT id, amount, placed_on FROM orders ORDER BY amount DESC NULLS LAST, placed_on, id LIMIT 3 OFFSET 1",
    ),
    ("latest_paid", "SELECT id, paid_at, account_id FROM orders ORDER BY paid_at DESC, account_id, id LIMIT 4"),
    (
        "order_days",
        "SELECT placed_on FROM orders UNION SELECT opened FROM accounts EXCEPT SELECT placed_on FROM orders WHERE qty > 3",
    ),
    // The PostgreSQL function library (issue 11).
    (
        "order_functions",
        "SELECT id, extract(year from placed_on) AS y, extract(epoch from created_at) AS epoch, \
         CAST(date_part('dow', created_at) AS integer) AS dow, date_trunc('month', created_at) AS month, \
         date_trunc('week', CAST(placed_on AS timestamp)) AS week, round(amount, 1) AS r1, round(amount) AS r0, \
         split_part(account_id::text, '-', 2) AS part, left(CAST(amount AS text), 3) AS head, \
         right(CAST(amount AS text), -1) AS tail, concat(id, '/', qty, '/', placed_on) AS joined, \
         concat_ws('-', qty, amount, created_at) AS dashed, strpos(CAST(amount AS text), '.') AS dot, \
         substring(CAST(amount AS text) from 2 for 3) AS middle, make_date(2024, 1 + id % 12, 1 + qty % 28) AS made, \
         TRIM(LEADING '1' FROM CAST(qty AS text)) AS trimmed, position('0' in CAST(amount AS text)) AS zero \
         FROM orders",
    ),
    (
        "account_functions",
        "SELECT a.id AS account_id, btrim(a.name, 'a') AS name, bool_and(o.qty > 2) AS all_big, \
         bool_or(o.amount > 100) AS any_large, every(o.placed_on > a.opened) AS after_opening, \
         string_agg(CAST(o.id AS text), ',' ORDER BY o.id) AS ids, \
         COUNT(*) FILTER (WHERE o.qty > 1) AS multi, SUM(DISTINCT o.qty) AS distinct_qty \
         FROM accounts a JOIN orders o ON o.account_id = a.id GROUP BY a.id, a.name",
    ),
];

/// PostgreSQL's rows of `select` as `row_to_json`, numbers exact, sorted.
fn reference(client: &mut Client, select: &str) -> Vec<Json> {
    pg_project::json_reference(client, select, pg_project::exact_numbers)
}

fn served(denorm: &Denorm, path: &str) -> (u16, Vec<Json>) {
    pg_project::json_served(denorm, path, pg_project::exact_numbers)
}

fn assert_views_equal(denorm: &Denorm, client: &mut Client) {
    eventually(Duration::from_millis(50), || {
        pg_project::json_compare(denorm, client, VIEWS, pg_project::exact_numbers)
    });
}

/// Random transactions over both tables: numerics with 0–4 digits of scale
/// (trailing zeros included), dates, microsecond timestamps, offsets,
/// jsonb documents with unicode, NULLs, key changes and deletions.
struct Writer {
    client: Client,
    rng: SplitMix,
    next_order: i32,
}

impl Writer {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    fn maybe_null(&mut self, value: String) -> String {
        if self.below(10) == 0 {
            "NULL".into()
        } else {
            value
        }
    }

    fn amount(&mut self) -> String {
        let scale = self.below(5) as usize;
        let mantissa = self.below(2_000_000) as i64 - 500_000;
        let digits = format!("{:0width$}", mantissa.unsigned_abs(), width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        let sign = if mantissa < 0 { "-" } else { "" };
        let text = if scale == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") };
        self.maybe_null(text)
    }

    fn account(&mut self) -> String {
        let a = ACCOUNTS[self.below(ACCOUNTS.len() as u64) as usize];
        self.maybe_null(format!("'{a}'"))
    }

    fn order_values(&mut self, id: i32) -> String {
        let account = self.account();
        let amount = self.amount();
        let (q, d) = (self.below(5), self.below(6));
        let qty = self.maybe_null(q.to_string());
        let day = self.maybe_null(format!("DATE '2024-03-01' + {d}"));
        let micros = self.below(200 * 86_400) * 1_000_000 + self.below(4) * 250_000 + self.below(2) * 7;
        let created = self.maybe_null(format!("TIMESTAMP '2024-01-01' + {micros} * INTERVAL '1 microsecond'"));
        let offset = ["+00", "+02", "-05:30"][self.below(3) as usize];
        let (seconds, k) = (self.below(150 * 86_400), self.below(100));
        let paid =
            self.maybe_null(format!("TIMESTAMPTZ '2024-01-20 00:00:00{offset}' + {seconds} * INTERVAL '1 second'"));
        let meta = self.maybe_null(format!("'{{\"k\": {k}, \"tags\": [\"é\", \"a\\\"b\"], \"price\": 1.50}}'"));
        format!("({id}, {account}, {amount}, {qty}, {day}, {created}, {paid}, {meta}, point(1, 2))")
    }

    fn transaction(&mut self) {
        let mut sql = String::from("BEGIN;");
        for _ in 0..1 + self.below(4) {
            let target = 1 + self.below(self.next_order as u64) as i32;
            match self.below(8) {
                0..=2 => {
                    let id = self.next_order;
                    self.next_order += 1;
                    sql += &format!("INSERT INTO orders VALUES {};", self.order_values(id));
                }
                3 => sql += &format!("UPDATE orders SET amount = {} WHERE id = {target};", self.amount()),
                4 => sql += &format!(
                    "UPDATE orders SET created_at = created_at + INTERVAL '3 days 0.5 seconds', account_id = {} WHERE id = {target};",
                    self.account()
                ),
                5 => sql += &format!("DELETE FROM orders WHERE id = {target};"),
                6 => {
                    let a = ACCOUNTS[self.below(ACCOUNTS.len() as u64) as usize];
                    let d = self.below(20);
                    let opened = self.maybe_null(format!("DATE '2023-12-25' + {d}"));
                    sql += &format!(
                        "INSERT INTO accounts VALUES ('{a}', 'n{}', {opened}) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, opened = EXCLUDED.opened;",
                        self.below(50)
                    );
                }
                _ => {
                    let a = ACCOUNTS[self.below(ACCOUNTS.len() as u64) as usize];
                    sql += &format!("DELETE FROM accounts WHERE id = '{a}';");
                }
            }
        }
        sql += "COMMIT;";
        self.client.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}

#[test]
fn postgres_types_views_equal_postgres_under_random_transactions() {
    let views: String = VIEWS.iter().map(|(n, s)| format!("CREATE MATERIALIZED VIEW {n} AS {s};\n")).collect();
    let project = PgProject::new("types_differential", SCHEMA, &views);
    let mut writer = Writer { client: project.client(), rng: SplitMix(11), next_order: 1 };
    for _ in 0..30 {
        writer.transaction();
    }
    let mut client = project.client();
    let denorm = Denorm::start(&project.config);
    assert_views_equal(&denorm, &mut client);
    for _ in 0..10 {
        for _ in 0..8 {
            writer.transaction();
        }
        assert_views_equal(&denorm, &mut client);
    }

    // Key lookups by the new types, parsed by the column's type.
    client
        .batch_execute(&format!(
            "INSERT INTO accounts VALUES ('{}', 'lookup', '2024-01-01') ON CONFLICT DO NOTHING",
            ACCOUNTS[1]
        ))
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let by_key = loop {
        let (status, rows) =
            served(&denorm, &format!("/views/by_account?account_id=eq.{}", ACCOUNTS[1].to_uppercase()));
        assert_eq!(status, 200, "{rows:?}");
        if rows.len() == 1 || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(by_key.len(), 1, "{by_key:?}");
    assert_eq!(by_key[0]["account_id"], ACCOUNTS[1]);
    let days = reference(&mut client, "SELECT * FROM (SELECT placed_on, COUNT(*) AS n FROM orders GROUP BY placed_on) d WHERE placed_on = '2024-03-02'");
    let (status, rows) = served(&denorm, "/views/daily?placed_on=eq.2024-03-02&select=placed_on,n");
    assert_eq!((status, rows), (200, days));
    let (status, body) = get_text(&format!("{}/views/daily?placed_on=eq.2024-02-30", denorm.base));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("placed_on") && body.contains("ISO date"), "{body}");
    let (status, body) = get_text(&format!("{}/views/daily?total=gt.1.5x", denorm.base));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn a_view_reading_an_unsupported_column_is_refused_by_name() {
    let views = "CREATE MATERIALIZED VIEW amounts AS SELECT id, amount FROM orders;\n\
                 CREATE MATERIALIZED VIEW places AS SELECT id, location FROM orders;\n";
    let project = PgProject::new("types_unsupported", SCHEMA, views);
    let output =
        Command::new(env!("CARGO_BIN_EXE_denorm")).args(["check", "--config"]).arg(&project.config).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("column orders.location has type point, which denorm cannot read") && stderr.contains("places"),
        "{stderr}"
    );
    assert!(!stderr.contains("amounts"), "only the view reading the column is refused: {stderr}");

    // Without that view, the table with the point column is served.
    std::fs::write(
        project.dir.path().join("views.sql"),
        "CREATE MATERIALIZED VIEW amounts AS SELECT id, amount FROM orders;\n",
    )
    .unwrap();
    project.client().batch_execute("INSERT INTO orders (id, amount, location) VALUES (1, 2.50, point(3, 4))").unwrap();
    let denorm = Denorm::start(&project.config);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, rows) = served(&denorm, "/views/amounts");
        if status == 200 && rows.len() == 1 {
            assert_eq!(rows[0]["amount"], "#2.50");
            break;
        }
        assert!(Instant::now() < deadline, "{status} {rows:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SPANS_SCHEMA: &str = "
CREATE TABLE spans (id integer PRIMARY KEY, p interval, n numeric);
ALTER TABLE spans REPLICA IDENTITY FULL;
";

/// The interval spelling PostgreSQL keeps (months, days, time) in denorm's
/// order of spellings, for a rule query's ORDER BY.
const SPELLING: &str =
    "extract(year FROM y.p) * 12 + extract(month FROM y.p), extract(day FROM y.p), extract(epoch FROM y.p)";

/// Groups of values PostgreSQL calls equal but spells apart (`'1 day'` and
/// `'24:00:00'`, `1.5` and `1.50`) show the least spelling among their
/// current rows: (months, days, time) for intervals, the scale for
/// numerics. PostgreSQL shows the first row it meets, so the views are
/// compared with queries computing that rule; before, a group showed the
/// spelling of the row that created it even after that row was gone.
#[test]
fn a_group_of_equal_values_shows_a_current_spelling() {
    let views = "CREATE MATERIALIZED VIEW span_groups AS SELECT p, COUNT(*) AS c FROM spans GROUP BY p;
                 CREATE MATERIALIZED VIEW span_distinct AS SELECT DISTINCT p FROM spans;
                 CREATE MATERIALIZED VIEW number_groups AS SELECT n, COUNT(*) AS c FROM spans GROUP BY n;";
    let least_span = format!("(SELECT y.p FROM spans y WHERE y.p = g.p ORDER BY {SPELLING} LIMIT 1)");
    let rules = [
        ("span_groups", format!("SELECT {least_span} AS p, COUNT(*) AS c FROM spans g GROUP BY g.p")),
        ("span_distinct", format!("SELECT DISTINCT {least_span} AS p FROM spans g")),
        (
            "number_groups",
            "SELECT (SELECT y.n FROM spans y WHERE y.n = g.n ORDER BY scale(y.n) LIMIT 1) AS n, COUNT(*) AS c \
             FROM spans g GROUP BY g.n"
                .to_string(),
        ),
    ];
    let rules: Vec<(&str, &str)> = rules.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let project = PgProject::new("spellings", SPANS_SCHEMA, views);
    let mut writer = project.client();
    let mut client = project.client();
    let denorm = Denorm::start(&project.config);
    let steps = [
        "INSERT INTO spans VALUES (1, '24 hours', 1.50), (2, '1 day', 1.5), (3, '1 mon', 2.000), (4, '30 days', 2)",
        "DELETE FROM spans WHERE id = 1",
        "INSERT INTO spans VALUES (5, '86400 seconds', 1.500); DELETE FROM spans WHERE id IN (2, 4)",
        "UPDATE spans SET p = '1 day', n = 1.5 WHERE id = 5; UPDATE spans SET p = '720:00:00' WHERE id = 3",
    ];
    for step in steps {
        writer.batch_execute(step).unwrap();
        eventually(Duration::from_millis(50), || {
            pg_project::json_compare(&denorm, &mut client, &rules, pg_project::exact_numbers)
        });
    }
}

const SUMS_SCHEMA: &str = "
CREATE TABLE big (id integer PRIMARY KEY, g integer NOT NULL, b bigint, i integer, s smallint);
ALTER TABLE big REPLICA IDENTITY FULL;
";

const SUM_VIEWS: &[(&str, &str)] = &[
    (
        "sums",
        "SELECT g, SUM(b) AS sb, SUM(i) AS si, SUM(s) AS ss, SUM(DISTINCT b) AS sdb, SUM(DISTINCT i) AS sdi, \
         AVG(b) AS ab, SUM(b + i) AS sbi, SUM(i + 1) AS si1, SUM(CASE WHEN b > 0 THEN 1 ELSE 0 END) AS positive \
         FROM big GROUP BY g",
    ),
    ("total", "SELECT SUM(b) AS total, SUM(i::bigint) AS wide, COUNT(*) AS n FROM big"),
    (
        "nested",
        "SELECT SUM(sb) AS ssb, SUM(si) AS ssi, SUM(top) AS stop \
         FROM (SELECT g, SUM(b) AS sb, SUM(i) AS si, MAX(i) AS top FROM big GROUP BY g) AS t",
    ),
];

/// Regression: PostgreSQL sums a bigint as numeric and an integer or a
/// smallint as bigint. denorm summed every integer as a bigint, so a group
/// whose bigints summed past 2^63 failed the view where PostgreSQL answers,
/// and SUM(bigint) was served typed as an integer. Each step's values and
/// every column's type are compared with PostgreSQL's, on the way past
/// 2^63 and back below it.
#[test]
fn a_sum_of_bigints_is_numeric_past_2_63_and_back() {
    let views: String = SUM_VIEWS.iter().map(|(n, s)| format!("CREATE MATERIALIZED VIEW {n} AS {s};\n")).collect();
    let project = PgProject::new("types_sums", SUMS_SCHEMA, &views);
    let mut writer = project.client();
    let mut client = project.client();
    let denorm = Denorm::start(&project.config);
    let steps = [
        "INSERT INTO big VALUES (1, 1, 9000000000000000000, 2000000000, 30000), (2, 1, 9000000000000000000, 2000000000, 1), \
         (3, 2, -9223372036854775808, 5, NULL), (4, 2, 7, NULL, -32768)",
        "INSERT INTO big VALUES (5, 1, 9223372036854775000, 7, 7), (6, 2, -9223372036854775808, 1, 1)",
        "DELETE FROM big WHERE id = 1",
        "DELETE FROM big WHERE id IN (5, 6)",
        "UPDATE big SET b = -9000000000000000000 WHERE id = 2; UPDATE big SET g = 1 WHERE id = 3",
    ];
    for step in steps {
        writer.batch_execute(step).unwrap();
        eventually(Duration::from_millis(50), || {
            pg_project::json_compare(&denorm, &mut client, SUM_VIEWS, pg_project::exact_numbers)
        });
    }
    let (_, listed) = denorm.get("/views");
    for (name, select) in SUM_VIEWS {
        let view = listed.as_array().unwrap().iter().find(|v| v["name"] == *name).unwrap();
        let served = pg_project::column_types(view);
        let row = client.query_one(&format!("SELECT row_to_json(t)::text FROM ({select}) AS t LIMIT 1"), &[]).unwrap();
        let columns: Json = serde_json::from_str(&row.get::<_, String>(0)).unwrap();
        for column in columns.as_object().unwrap().keys() {
            let typed = format!("SELECT pg_typeof({column})::text FROM ({select}) AS t LIMIT 1");
            let postgres: String = client.query_one(&typed, &[]).unwrap().get(0);
            let want = match postgres.as_str() {
                "bigint" | "integer" | "smallint" => "integer",
                other => other,
            };
            assert_eq!(served[column], want, "{name}.{column}: PostgreSQL's type is {postgres}");
        }
    }
}
