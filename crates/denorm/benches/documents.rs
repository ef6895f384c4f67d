//! A product page as one JSON document view (product + seller name + review
//! count + average rating + the 3 newest reviews embedded + the rating
//! histogram over a derived table), read in process with `read_rows` on the
//! published snapshot, vs the normalized query on a SQLite file (aggregates
//! and a correlated subquery for the 3 newest reviews); then the cost of a
//! new review (`cargo bench -p denorm --bench documents`;
//! `DENORM_BENCH_SCALE=0.1` for a tenth).

use std::time::Instant;

use denorm_core::{Dataflow, Runtime, SourceBatch};
use denorm_serve::{Publisher, Reader, ViewInfo};
use denorm_sql::{plan_views, ViewDef};
use denorm_testkit::SqliteReference;
use denorm_types::{Datum, Dialect, Diff, Position, Row};

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, seller_id INTEGER NOT NULL, name TEXT NOT NULL, price_cents INTEGER NOT NULL);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
                      rating INTEGER NOT NULL, body TEXT, created_at INTEGER NOT NULL);
";

const VIEW: &str = "
CREATE MATERIALIZED VIEW product_pages WITH (key = 'id') AS
SELECT p.id,
       json_object('id', p.id, 'name', p.name, 'price_cents', p.price_cents, 'seller', s.name,
                   'review_count', COALESCE(r.n, 0), 'avg_rating', r.avg_rating,
                   'newest_reviews', r.newest, 'histogram', h.histogram) AS doc
FROM products p
JOIN users s ON s.id = p.seller_id
LEFT JOIN (SELECT product_id, COUNT(*) AS n, AVG(rating) AS avg_rating,
                  json_group_array(json_object('id', id, 'user_id', user_id, 'rating', rating, 'body', body,
                                               'created_at', created_at)
                                   ORDER BY created_at DESC, id DESC LIMIT 3) AS newest
           FROM reviews GROUP BY product_id) r ON r.product_id = p.id
LEFT JOIN (SELECT product_id, json_group_object(rating, n) AS histogram
           FROM (SELECT product_id, rating, COUNT(*) AS n FROM reviews GROUP BY product_id, rating) AS hh
           GROUP BY product_id) h ON h.product_id = p.id
";

/// The normalized query an application runs per page.
const NORMALIZED: &str = "
SELECT p.id, p.name, p.price_cents, s.name,
       (SELECT COUNT(*) FROM reviews r WHERE r.product_id = p.id) AS review_count,
       (SELECT AVG(rating) FROM reviews r WHERE r.product_id = p.id) AS avg_rating,
       (SELECT json_group_array(json_object('id', id, 'user_id', user_id, 'rating', rating, 'body', body,
                                            'created_at', created_at))
        FROM (SELECT * FROM reviews r WHERE r.product_id = p.id ORDER BY created_at DESC, id DESC LIMIT 3)) AS newest,
       (SELECT json_group_object(rating, n)
        FROM (SELECT rating, COUNT(*) AS n FROM reviews r WHERE r.product_id = p.id GROUP BY rating)) AS histogram
FROM products p JOIN users s ON s.id = p.seller_id
WHERE p.id = ?1";

fn scale(n: usize) -> usize {
    let factor: f64 = std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64) * factor).max(1.0) as usize
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> i64 {
        (self.next() % n as u64) as i64
    }
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }
}

const WORDS: &[&str] = &["great", "keyboard", "broke", "after", "a", "week", "love", "it", "would", "buy", "again"];

fn body(rng: &mut Rng) -> String {
    (0..8 + rng.below(12)).map(|_| WORDS[rng.below(WORDS.len()) as usize]).collect::<Vec<_>>().join(" ")
}

/// One row of the normalized page query: id, name, price, seller, review
/// count, average rating, newest reviews, histogram.
type NormalizedPage = (i64, String, i64, String, i64, Option<f64>, Option<String>, Option<String>);

fn info(def: &ViewDef) -> ViewInfo {
    denorm::serving_info(def)
}

struct Engine {
    dataflow: Dataflow,
    publisher: Publisher,
    reader: Reader,
    position: u64,
}

impl Engine {
    fn apply(&mut self, tables: Vec<(String, Vec<(Row, Diff)>)>) -> usize {
        self.position += 1;
        let output = self.dataflow.apply(&SourceBatch { position: Position(self.position), tables });
        assert!(output.errors.is_empty(), "{:?}", output.errors);
        let mut n = 0;
        for view in output.views {
            self.publisher.apply(view.view.0, &view.changes);
            n += view.changes.len();
        }
        self.publisher.publish(Position(self.position), &[]);
        n
    }
}

fn review(rng: &mut Rng, id: i64, products: usize, users: usize) -> Vec<Datum<'static>> {
    // Skewed: a few products hold many reviews (product = n·x³).
    let product = ((products as f64) * rng.unit().powi(3)) as i64;
    let rating = [1, 2, 3, 4, 4, 5, 5, 5][rng.below(8) as usize];
    vec![
        Datum::Int(id),
        Datum::Int(product),
        Datum::Int(rng.below(users)),
        Datum::Int(rating),
        Datum::owned_text(body(rng)),
        Datum::Int(id),
    ]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (products, reviews, users) = (scale(50_000), scale(1_000_000), scale(100_000));
    let mut rng = Rng(0x2545f4914f6cdd1d);
    let user_rows: Vec<Vec<Datum<'static>>> =
        (0..users as i64).map(|u| vec![Datum::Int(u), Datum::owned_text(format!("User {u}"))]).collect();
    let product_rows: Vec<Vec<Datum<'static>>> = (0..products as i64)
        .map(|p| {
            vec![
                Datum::Int(p),
                Datum::Int(p % users as i64),
                Datum::owned_text(format!("Product {p}")),
                Datum::Int(500 + p % 20_000),
            ]
        })
        .collect();
    let review_rows: Vec<Vec<Datum<'static>>> =
        (0..reviews as i64).map(|id| review(&mut rng, id, products, users)).collect();
    let pack = |rows: &[Vec<Datum<'static>>]| -> Vec<(Row, Diff)> {
        rows.iter().map(|r| (Row::pack(r.iter().cloned()), 1)).collect()
    };
    let mut per_product = vec![0u32; products];
    for r in &review_rows {
        if let Datum::Int(p) = r[1] {
            per_product[p as usize] += 1;
        }
    }
    let most = *per_product.iter().max().unwrap();
    let median = {
        let mut v = per_product.clone();
        v.sort_unstable();
        v[v.len() / 2]
    };
    println!(
        "documents: {products} products, {reviews} reviews (skewed: median {median}, max {most} per product), {users} users"
    );

    // denorm, in process.
    let reference = SqliteReference::new(SCHEMA).unwrap();
    let catalog = reference.catalog();
    let defs = plan_views(VIEW, &catalog, Dialect::Sqlite).unwrap_or_else(|e| panic!("{e:?}"));
    let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
    dataflow.add_view_emitting(&defs[0].name, &defs[0].plan).unwrap();
    let (publisher, reader) = denorm_serve::channel(defs.iter().map(info).collect());
    let mut engine = Engine { dataflow, publisher, reader, position: 0 };
    let started = Instant::now();
    let docs = engine.apply(vec![
        ("users".into(), pack(&user_rows)),
        ("products".into(), pack(&product_rows)),
        ("reviews".into(), pack(&review_rows)),
    ]);
    let load = started.elapsed().as_secs_f64();
    println!("  denorm snapshot load: {docs} documents in {load:.2} s");

    // SQLite, a file, bulk insert in one transaction, the app's index.
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    let started = Instant::now();
    {
        let tx = conn.transaction().unwrap();
        let to_sql = |d: &Datum<'_>| -> rusqlite::types::Value {
            match d {
                Datum::Int(i) => rusqlite::types::Value::Integer(*i),
                d => rusqlite::types::Value::Text(d.as_str().unwrap().to_owned()),
            }
        };
        for (table, rows, n) in [("users", &user_rows, 2), ("products", &product_rows, 4), ("reviews", &review_rows, 6)]
        {
            let marks = vec!["?"; n].join(", ");
            let mut stmt = tx.prepare(&format!("INSERT INTO {table} VALUES ({marks})")).unwrap();
            for r in rows {
                stmt.execute(rusqlite::params_from_iter(r.iter().map(to_sql))).unwrap();
            }
        }
        tx.execute_batch("CREATE INDEX reviews_product ON reviews (product_id); ANALYZE;").unwrap();
        tx.commit().unwrap();
    }
    println!("  SQLite file load (one transaction + index): {:.2} s", started.elapsed().as_secs_f64());

    // Reads: the same products on both sides, half uniform, half by
    // popularity (skewed like the reviews, so big products are read often).
    let picks: Vec<i64> = (0..20_000)
        .map(|i| if i % 2 == 0 { rng.below(products) } else { ((products as f64) * rng.unit().powi(3)) as i64 })
        .collect();
    let snapshot = engine.reader.snapshot();
    let mut ours = Vec::new();
    for &p in &picks {
        let t = Instant::now();
        let (body, _) = denorm_serve::read_rows(&snapshot, "product_pages", &format!("id=eq.{p}")).unwrap();
        ours.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(body.len() > 20);
    }
    drop(snapshot);
    let mut theirs = Vec::new();
    let mut stmt = conn.prepare(NORMALIZED).unwrap();
    for &p in &picks[..picks.len() / 4] {
        let t = Instant::now();
        let row: NormalizedPage = stmt
            .query_row([p], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })
            .unwrap();
        theirs.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(row);
    }
    // The most reviewed product, alone: the worst page.
    let top = per_product.iter().enumerate().max_by_key(|(_, n)| **n).unwrap().0 as i64;
    let snapshot = engine.reader.snapshot();
    let mut ours_top = Vec::new();
    let mut theirs_top = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        std::hint::black_box(denorm_serve::read_rows(&snapshot, "product_pages", &format!("id=eq.{top}")).unwrap());
        ours_top.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        std::hint::black_box(stmt.query_row([top], |r| r.get::<_, i64>(4)).unwrap());
        theirs_top.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(snapshot);
    let (o50, o99) = denorm_serve::percentiles(&mut ours);
    let (t50, t99) = denorm_serve::percentiles(&mut theirs);
    let (ot50, ot99) = denorm_serve::percentiles(&mut ours_top);
    let (tt50, tt99) = denorm_serve::percentiles(&mut theirs_top);
    println!(
        "  {:<52} {:>12} {:>12} {:>12} {:>12}",
        "product page read", "denorm p50", "denorm p99", "SQLite p50", "SQLite p99"
    );
    println!(
        "  {:<52} {:>9.1} µs {:>9.1} µs {:>9.1} µs {:>9.1} µs   ratio p50 {:.1}x, p99 {:.1}x",
        format!("random products ({} / {} reads)", ours.len(), theirs.len()),
        o50,
        o99,
        t50,
        t99,
        t50 / o50,
        t99 / o99
    );
    println!(
        "  {:<52} {:>9.1} µs {:>9.1} µs {:>9.1} µs {:>9.1} µs   ratio p50 {:.1}x, p99 {:.1}x",
        format!("most reviewed product ({most} reviews, 200 reads)"),
        ot50,
        ot99,
        tt50,
        tt99,
        tt50 / ot50,
        tt99 / ot99
    );

    // New reviews: one per batch (a stream of single-row commits), then in
    // batches of 100; each changes one product's document.
    let n = scale(20_000).max(100);
    let mut next_id = reviews as i64;
    let started = Instant::now();
    let mut doc_changes = 0;
    for _ in 0..n {
        let r = review(&mut rng, next_id, products, users);
        next_id += 1;
        doc_changes += engine.apply(vec![("reviews".into(), vec![(Row::pack(r), 1)])]);
    }
    let single = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..n / 100 {
        let batch: Vec<(Row, Diff)> = (0..100)
            .map(|_| {
                next_id += 1;
                (Row::pack(review(&mut rng, next_id, products, users)), 1)
            })
            .collect();
        engine.apply(vec![("reviews".into(), batch)]);
    }
    let batched = started.elapsed().as_secs_f64();
    println!(
        "  new review, one per batch: {n} reviews in {single:.2} s = {:.0} changes/s, {:.1} µs/review ({doc_changes} document row changes, publish included)",
        n as f64 / single,
        single * 1e6 / n as f64
    );
    println!(
        "  new reviews, batches of 100: {} reviews in {batched:.2} s = {:.0} changes/s, {:.1} µs/review",
        n / 100 * 100,
        (n / 100 * 100) as f64 / batched,
        batched * 1e6 / (n / 100 * 100) as f64
    );
}
