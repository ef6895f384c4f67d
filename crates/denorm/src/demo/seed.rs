//! The demo's data: the marketplace example's schema filled with realistic
//! volumes, and the steady stream of application writes that follows.
//!
//! Everything is generated from a small deterministic PRNG so that two runs
//! of the demo see the same data.

use rusqlite::{params, Connection};

/// The marketplace example: schema (with a few sample rows) and views.
pub const SCHEMA: &str = include_str!("../../../../examples/marketplace/schema.sql");
pub const VIEWS: &str = include_str!("../../../../examples/marketplace/views.sql");

/// Indexes an application would have for the reads the demo compares, so the
/// normalized side of the comparison is the fair one.
const READ_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS posts_author ON posts (author_id);
CREATE INDEX IF NOT EXISTS trips_driver ON trips (driver_id);
CREATE INDEX IF NOT EXISTS trips_city_day ON trips (city, started_on);
CREATE INDEX IF NOT EXISTS orders_day ON orders (ordered_on);
";

/// Generated ids start here, above the example's sample rows.
pub const FIRST_ID: i64 = 10_000;

pub const CITIES: &[&str] = &["Lisbon", "Porto", "Berlin", "Paris", "Madrid", "Rome", "Austin", "Osaka"];
const CATEGORIES: &[&str] = &["Electronics", "Accessories", "Books", "Kitchen", "Garden", "Toys"];
const FIRST_NAMES: &[&str] = &["Sarah", "Omar", "Ines", "Kenji", "Amara", "Lukas", "Priya", "Diego", "Mei", "Noah"];
const LAST_NAMES: &[&str] = &["Chen", "Haddad", "Duarte", "Sato", "Okafor", "Weber", "Rao", "Silva", "Lin", "Berg"];
const WORDS: &[&str] = &["great", "solid", "meh", "love", "broke", "fast", "quiet", "cheap", "shiny", "heavy"];
/// Days the generated orders and trips fall on.
pub const DAYS: i64 = 60;

/// How many rows of each table the demo generates.
#[derive(Debug, Clone, Copy)]
pub struct Volumes {
    pub users: i64,
    pub posts: i64,
    pub products: i64,
    pub reviews: i64,
    pub trips: i64,
    pub orders: i64,
}

impl Volumes {
    /// `scale` 1 is about 270,000 rows.
    pub fn at_scale(scale: f64) -> Volumes {
        let n = |base: f64| ((base * scale).round() as i64).max(10);
        Volumes {
            users: n(20_000.0),
            posts: n(60_000.0),
            products: n(5_000.0),
            reviews: n(100_000.0),
            trips: n(50_000.0),
            orders: n(12_000.0),
        }
    }

    pub fn total(&self) -> i64 {
        // Orders have 2.5 items on average.
        self.users + self.posts + self.products + self.reviews + self.trips + self.orders * 7 / 2
    }
}

/// A xorshift64* generator: deterministic and dependency-free.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: i64) -> i64 {
        (self.next() % n.max(1) as u64) as i64
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as i64) as usize]
    }

    /// A rating skewed towards 4 and 5 stars, as real reviews are.
    pub fn rating(&mut self) -> i64 {
        [1, 2, 3, 3, 4, 4, 4, 5, 5, 5, 5, 5][self.below(12) as usize]
    }

    /// An id in `FIRST_ID..FIRST_ID + n`, skewed so that a few are popular.
    pub fn skewed(&mut self, n: i64) -> i64 {
        let r = self.below(n);
        FIRST_ID + r * self.below(n) / n.max(1)
    }
}

pub fn user_name(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES))
}

pub fn day(n: i64) -> String {
    // 2025-01-01 plus n days, within two months.
    let (month, day) = if n < 31 { (1, n + 1) } else { (2, (n - 31) % 28 + 1) };
    format!("2025-{month:02}-{day:02}")
}

/// Creates the database at `path` with the schema and `volumes` of rows, in
/// one transaction, reporting progress through `progress(rows_done)`.
pub fn create(path: &std::path::Path, volumes: Volumes, progress: &mut dyn FnMut(i64)) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(READ_INDEXES)?;
    let tx = conn.transaction()?;
    let mut rng = Rng::new(42);
    let mut done = 0;
    let mut step = |n: i64, progress: &mut dyn FnMut(i64)| {
        done += n;
        progress(done);
    };
    {
        let mut users = tx.prepare("INSERT INTO users VALUES (?1, ?2, ?3, ?4)")?;
        for id in FIRST_ID..FIRST_ID + volumes.users {
            let avatar = (id % 4 != 0).then(|| format!("https://cdn.example.com/u/{id}.jpg"));
            users.execute(params![id, user_name(&mut rng), avatar, day(rng.below(DAYS))])?;
        }
        step(volumes.users, progress);
        let mut posts = tx.prepare("INSERT INTO posts VALUES (?1, ?2, ?3, ?4)")?;
        for id in FIRST_ID..FIRST_ID + volumes.posts {
            let body = format!("{} {} post #{id}", rng.pick(WORDS), rng.pick(WORDS));
            posts.execute(params![
                id,
                rng.skewed(volumes.users),
                body,
                format!("{}T12:00:00Z", day(rng.below(DAYS)))
            ])?;
        }
        step(volumes.posts, progress);
        let mut products = tx.prepare("INSERT INTO products VALUES (?1, ?2, ?3, ?4)")?;
        for id in FIRST_ID..FIRST_ID + volumes.products {
            let name = format!("{} {} {id}", rng.pick(WORDS), rng.pick(CATEGORIES));
            products.execute(params![id, name, rng.pick(CATEGORIES), 199 + rng.below(20_000)])?;
        }
        step(volumes.products, progress);
        let mut reviews = tx.prepare("INSERT INTO reviews VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for id in FIRST_ID..FIRST_ID + volumes.reviews {
            let body = (id % 3 != 0).then(|| rng.pick(WORDS).to_string());
            let product = rng.skewed(volumes.products);
            let user = FIRST_ID + rng.below(volumes.users);
            reviews.execute(params![id, product, user, rng.rating(), body, day(rng.below(DAYS))])?;
        }
        step(volumes.reviews, progress);
        let mut trips = tx.prepare("INSERT INTO trips VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
        for id in FIRST_ID..FIRST_ID + volumes.trips {
            let (driver, rider) = (FIRST_ID + rng.below(volumes.users / 10 + 1), FIRST_ID + rng.below(volumes.users));
            let km = (rng.below(300) as f64) / 10.0 + 0.5;
            trips.execute(params![
                id,
                driver,
                rider,
                rng.pick(CITIES),
                day(rng.below(DAYS)),
                300 + rng.below(5000),
                km
            ])?;
        }
        step(volumes.trips, progress);
        let mut orders = tx.prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4)")?;
        let mut items = tx.prepare("INSERT OR IGNORE INTO order_items VALUES (?1, ?2, ?3, ?4)")?;
        for id in FIRST_ID..FIRST_ID + volumes.orders {
            let status = ["paid", "paid", "shipped", "shipped", "cancelled"][rng.below(5) as usize];
            orders.execute(params![id, FIRST_ID + rng.below(volumes.users), day(rng.below(DAYS)), status])?;
            for _ in 0..1 + rng.below(4) {
                let product = rng.skewed(volumes.products);
                items.execute(params![id, product, 1 + rng.below(3), 199 + rng.below(20_000)])?;
            }
        }
        step(volumes.orders * 7 / 2, progress);
    }
    tx.commit()
}
