//! Starting the real `denorm run` with its log collected line by line: one
//! place for the tests (`common::Denorm`) and the benches that drive the
//! binary (`benches/restart.rs`, `benches/postgres.rs`, through `#[path]`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// Spawns `denorm run --config config` (log level info, no colours) and a
/// thread that sends each stderr line to the receiver (and, with `echo`,
/// prints it as `[denorm] …`, so a failing test shows the log).
pub fn spawn_run(config: &Path, echo: bool) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_denorm"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the denorm binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[denorm] {line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, log)
}
