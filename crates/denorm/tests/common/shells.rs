//! The real command-line clients the sink tests read with: `sqlite3` and
//! `psql`, their output as `a|b|c` lines (NULL as empty), in the order
//! printed.

use std::path::Path;
use std::process::Command;

/// The PostgreSQL that `scripts/test` (or `scripts/postgres start`) runs.
pub fn pg_url() -> String {
    std::env::var("DENORM_TEST_POSTGRES_URL").expect(
        "DENORM_TEST_POSTGRES_URL is not set: run `export \"$(scripts/postgres start | tail -n1)\"` (scripts/test does this)",
    )
}

/// The command's stdout lines, or its stderr when it fails.
pub fn shell(command: &mut Command) -> Result<Vec<String>, String> {
    let output = command.output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect())
}

/// Rows of `sql` on a SQLite file through the `sqlite3` shell.
pub fn sqlite3(db: &Path, sql: &str) -> Result<Vec<String>, String> {
    shell(Command::new("sqlite3").args(["-bail", "-separator", "|", "-cmd", ".timeout 10000"]).arg(db).arg(sql))
}

/// Rows of `sql` through `psql`.
pub fn psql(sql: &str) -> Result<Vec<String>, String> {
    shell(Command::new("psql").args([
        "-X",
        "-q",
        "-At",
        "-F",
        "|",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        &pg_url(),
        "-c",
        sql,
    ]))
}
