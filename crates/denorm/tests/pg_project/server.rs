//! The test server itself: `pg_ctl` on the server `scripts/postgres` runs
//! (found by the port of `DENORM_TEST_POSTGRES_URL`), and a writer of random
//! transactions that survives its restarts. Shared by `tests/pg_restart.rs`
//! and `benches/chaos.rs`.

use std::process::{Command, Stdio};
use std::time::Duration;

use postgres::{Client, NoTls};

use super::server_url;
use crate::common::{Background, SplitMix};

/// `pg_ctl` of the test server, run as the server's owner.
pub fn pg_ctl(args: &[&str]) {
    assert!(try_pg_ctl(args), "pg_ctl {args:?} failed");
}

/// Starts the server again if a failed test left it stopped, so that the
/// tests after it (and other test binaries) find it running.
pub struct ServerBack;

impl Drop for ServerBack {
    fn drop(&mut self) {
        if !try_pg_ctl(&["status"]) {
            try_pg_ctl(&["start"]);
        }
    }
}

pub fn try_pg_ctl(args: &[&str]) -> bool {
    let port = server_url().rsplit_once(':').unwrap().1.split('/').next().unwrap().to_string();
    let tmp = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
    let dir = format!("{tmp}/denorm-postgres-{port}");
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's postgresql under /usr/lib/postgresql (scripts/postgres installs it)")
        .map(|e| e.unwrap().path().join("bin/pg_ctl"))
        .filter(|p| p.exists())
        .max_by_key(|p| {
            let major = p.parent().unwrap().parent().unwrap().file_name().unwrap().to_string_lossy().to_string();
            major.parse::<u32>().unwrap_or(0)
        })
        .expect("pg_ctl");
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    command.args(args).args(["-D", &format!("{dir}/data")]);
    if args[0] != "status" {
        command.args(["-w", "-t", "60"]);
    }
    if matches!(args[0], "start" | "restart") {
        // The server's output goes to its log, not to this process's pipes.
        command.args(["-l", &format!("{dir}/server.log")]);
    }
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

// --- a writer that survives the restarts ------------------------------------

/// Random transactions on accounts and transfers until finished (a
/// [`Background`]); connection errors (the server is down) are waited out.
pub struct Writer;

impl Writer {
    pub fn start(url: String, seed: u64) -> Background {
        Writer::starting_at(url, seed, 1_000)
    }

    /// As [`Writer::start`], inserting transfers from id `first + 1` on.
    pub fn starting_at(url: String, seed: u64, first: i64) -> Background {
        let mut rng = SplitMix(seed);
        let mut next_transfer = first;
        let mut client: Option<Client> = None;
        Background::spawn(move || {
            let Some(c) = client.as_mut() else {
                client = Client::connect(&url, NoTls).ok();
                if client.is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return false;
            };
            let sql = transaction(&mut rng, &mut next_transfer);
            let committed = match c.batch_execute(&sql) {
                Ok(()) => true,
                Err(e) if e.is_closed() || e.code().is_none() || is_shutdown(&e) => {
                    client = None;
                    false
                }
                Err(e) => panic!("{sql}: {e}"),
            };
            std::thread::sleep(Duration::from_millis(2));
            committed
        })
    }
}

/// SQLSTATE class 57 (operator intervention: shutdown, crash) or 08.
pub fn is_shutdown(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| c.code().starts_with("57") || c.code().starts_with("08"))
}

pub fn transaction(rng: &mut SplitMix, next_transfer: &mut i64) -> String {
    let mut sql = String::from("BEGIN;");
    for _ in 0..1 + rng.below(3) {
        let account = 1 + rng.below(60);
        let statement = match rng.below(6) {
            0 | 1 => {
                *next_transfer += 1;
                format!("INSERT INTO transfers VALUES ({next_transfer}, {account}, {});", rng.below(100))
            }
            2 => format!("UPDATE accounts SET balance = balance + {} WHERE id = {account};", rng.below(20)),
            3 => format!("DELETE FROM transfers WHERE id = {};", 1 + rng.below(*next_transfer as u64)),
            4 => format!(
                "INSERT INTO accounts VALUES ({account}, 'owner{}', 0) ON CONFLICT (id) DO UPDATE SET owner = \
                 excluded.owner;",
                rng.below(9)
            ),
            _ => format!("UPDATE transfers SET amount = amount + 7 WHERE account_id = {account};"),
        };
        sql.push_str(&statement);
    }
    sql.push_str("COMMIT;");
    sql
}
