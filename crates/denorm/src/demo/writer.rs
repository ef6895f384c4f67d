//! The demo's application: a separate SQLite connection writing a steady
//! rate of small mixed transactions, as a web backend would — new reviews
//! and posts, rating edits, deletes, trips, orders, and author renames that
//! fan out to every post card of that author.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use super::seed::{day, user_name, Rng, Volumes, CITIES, DAYS, FIRST_ID};

/// What the writer has done so far, read by the reporter.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub transactions: AtomicU64,
    pub renames: AtomicU64,
    pub busy_retries: AtomicU64,
}

#[derive(Debug)]
pub struct Writer {
    conn: Connection,
    rng: Rng,
    volumes: Volumes,
    next_review: i64,
    next_post: i64,
    next_trip: i64,
    next_order: i64,
}

impl Writer {
    pub fn open(path: &Path, volumes: Volumes) -> rusqlite::Result<Writer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        let end = |n: i64| FIRST_ID + n;
        Ok(Writer {
            conn,
            rng: Rng::new(7),
            volumes,
            next_review: end(volumes.reviews),
            next_post: end(volumes.posts),
            next_trip: end(volumes.trips),
            next_order: end(volumes.orders),
        })
    }

    /// Writes `rate` transactions per second until `stop`, spacing them
    /// evenly (catching up after a slow commit rather than drifting).
    pub fn run(mut self, rate: f64, stop: Arc<AtomicBool>, stats: Arc<WriterStats>) {
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
        let mut due = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now < due {
                std::thread::sleep((due - now).min(Duration::from_millis(50)));
                continue;
            }
            due += interval;
            match self.transaction(&stats) {
                Ok(()) => {
                    stats.transactions.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.busy_retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "demo writer transaction failed; going on");
                }
            }
        }
    }

    /// One transaction of the mix.
    fn transaction(&mut self, stats: &WriterStats) -> rusqlite::Result<()> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let v = self.volumes;
        let rng = &mut self.rng;
        match rng.below(100) {
            0..=29 => {
                let id = self.next_review;
                self.next_review += 1;
                tx.execute(
                    "INSERT INTO reviews VALUES (?1, ?2, ?3, ?4, 'new review', ?5)",
                    params![id, rng.skewed(v.products), FIRST_ID + rng.below(v.users), rng.rating(), day(DAYS - 1)],
                )?;
            }
            30..=39 => {
                tx.execute(
                    "UPDATE reviews SET rating = ?1 WHERE id = ?2",
                    params![rng.rating(), FIRST_ID + rng.below(self.next_review - FIRST_ID)],
                )?;
            }
            40..=44 => {
                tx.execute(
                    "DELETE FROM reviews WHERE id = ?1",
                    params![FIRST_ID + rng.below(self.next_review - FIRST_ID)],
                )?;
            }
            45..=59 => {
                let id = self.next_post;
                self.next_post += 1;
                tx.execute(
                    "INSERT INTO posts VALUES (?1, ?2, ?3, ?4)",
                    params![id, rng.skewed(v.users), format!("fresh post #{id}"), "2025-03-01T09:00:00Z"],
                )?;
            }
            60..=64 => {
                // A rename: every post card of this author changes.
                tx.execute("UPDATE users SET name = ?1 WHERE id = ?2", params![user_name(rng), rng.skewed(v.users)])?;
                stats.renames.fetch_add(1, Ordering::Relaxed);
            }
            65..=84 => {
                let id = self.next_trip;
                self.next_trip += 1;
                tx.execute(
                    "INSERT INTO trips VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        id,
                        FIRST_ID + rng.below(v.users / 10 + 1),
                        FIRST_ID + rng.below(v.users),
                        rng.pick(CITIES),
                        day(DAYS - 1),
                        300 + rng.below(5000),
                        (rng.below(300) as f64) / 10.0 + 0.5
                    ],
                )?;
            }
            85..=94 => {
                let id = self.next_order;
                self.next_order += 1;
                tx.execute(
                    "INSERT INTO orders VALUES (?1, ?2, ?3, 'paid')",
                    params![id, FIRST_ID + rng.below(v.users), day(DAYS - 1)],
                )?;
                for _ in 0..1 + rng.below(3) {
                    tx.execute(
                        "INSERT OR IGNORE INTO order_items VALUES (?1, ?2, ?3, ?4)",
                        params![id, rng.skewed(v.products), 1 + rng.below(3), 199 + rng.below(20_000)],
                    )?;
                }
            }
            _ => {
                tx.execute(
                    "UPDATE orders SET status = 'cancelled' WHERE id = ?1",
                    params![FIRST_ID + rng.below(self.next_order - FIRST_ID)],
                )?;
            }
        }
        tx.commit()
    }
}
