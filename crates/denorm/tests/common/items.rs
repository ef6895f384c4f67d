//! A keyed table and a table without a key (a multiset), and random
//! transactions over them: the workload of the restart tests (state
//! directory, checkpoints).

use rusqlite::Connection;

use super::SplitMix;

pub const SCHEMA: &str = "
CREATE TABLE items (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, amount INTEGER NOT NULL, note TEXT);
CREATE TABLE tags (item_id INTEGER, tag TEXT);
";

/// One transaction of 1..6 random writes: upserts, moves between groups and
/// deletes of items (each note one of `notes`), tags added and removed.
pub fn transaction(conn: &Connection, rng: &mut SplitMix, notes: &[&str]) {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    for _ in 0..1 + rng.below(6) {
        let id = rng.below(60) as i64;
        let grp = rng.below(5) as i64;
        let amount = rng.below(100) as i64 - 20;
        let note = notes[rng.below(notes.len() as u64) as usize];
        match rng.below(6) {
            0 | 1 => conn
                .execute(
                    "INSERT INTO items (id, grp, amount, note) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (id) DO UPDATE SET amount = excluded.amount",
                    (id, grp, amount, note),
                )
                .map(drop)
                .unwrap(),
            2 => conn.execute("UPDATE items SET grp = ?2 WHERE id = ?1", (id, grp)).map(drop).unwrap(),
            3 => conn.execute("DELETE FROM items WHERE id = ?1", [id]).map(drop).unwrap(),
            4 => conn
                .execute("INSERT INTO tags (item_id, tag) VALUES (?1, ?2)", (id, ["x", "y", "z"][grp as usize % 3]))
                .map(drop)
                .unwrap(),
            _ => conn
                .execute("DELETE FROM tags WHERE rowid = (SELECT min(rowid) FROM tags WHERE item_id >= ?1)", [id])
                .map(drop)
                .unwrap(),
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// `n` transactions from `seed`.
pub fn transactions(db: &Connection, seed: u64, n: usize, notes: &[&str]) {
    let mut rng = SplitMix(seed);
    for _ in 0..n {
        transaction(db, &mut rng, notes);
    }
}
