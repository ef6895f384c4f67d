//! `denorm dlq list|retry|drop --config FILE [ID…|--all]`: the dead-letter
//! queue of a configuration's state directory.
//!
//! A running `denorm run` holds the state directory (redb allows one
//! process), so then the command asks it over HTTP on the configured listen
//! address (`GET /dlq`, `POST /dlq/{id}/drop|retry`, answered for loopback
//! callers, or a monitoring role under `[auth]`); while it is stopped the
//! command reads and writes the directory itself (list, drop). A retry
//! needs the running engine (it reads the row at the engine's position and
//! applies it through the dataflow): the command posts the retries, then
//! follows `GET /dlq` until each entry is gone (applied) or kept with a new
//! reason (its `retries` counted up).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use denorm_serve::dlq::{hex, DeadLetter};

use crate::config;
use crate::state_dir::{DeadLetterFile, StateError};

/// What `denorm dlq` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    Drop,
    /// Retry the named entries.
    Retry,
    /// Retry every entry.
    RetryAll,
}

/// How long `denorm dlq retry` follows the entries (the engine waits at
/// most 30 s for a moment the row's read is current).
const RETRY_WAIT: Duration = Duration::from_secs(45);

/// Runs `denorm dlq <action> --config FILE [ID…]`, printing to `out`.
pub fn run(action: Action, config_path: &Path, ids: &[u64], out: &mut dyn Write) -> anyhow::Result<()> {
    let config = config::load(config_path)?;
    if action == Action::Drop && ids.is_empty() {
        bail!("name the entries to drop: denorm dlq drop --config FILE ID…  (denorm dlq list shows the ids)");
    }
    match DeadLetterFile::open(&config.engine.state_dir) {
        Ok(mut file) => match action {
            Action::List => print(&file.list()?, out),
            Action::Drop => {
                let missing = file.remove(ids)?;
                report_dropped(ids, &missing, out)
            }
            Action::Retry | Action::RetryAll => bail!(
                "denorm is not running for {}: a retry reads the row at the running engine's position and applies it \
                 through its views; start `denorm run --config {}` and retry again",
                config_path.display(),
                config_path.display()
            ),
        },
        Err(StateError::InUse { .. }) => {
            let base = loopback_base(config.server.listen)?;
            match action {
                Action::List => print(&fetch_list(&base)?, out),
                Action::Drop => {
                    let missing = post_requests(&base, ids, "drop")?;
                    report_dropped(ids, &missing, out)
                }
                Action::Retry => retry(&base, ids, out),
                Action::RetryAll => {
                    let ids: Vec<u64> = fetch_list(&base)?.iter().map(|e| e.id).collect();
                    if ids.is_empty() {
                        writeln!(out, "the dead-letter queue is empty")?;
                        return Ok(());
                    }
                    retry(&base, &ids, out)
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The running instance's base URL on loopback.
fn loopback_base(listen: SocketAddr) -> anyhow::Result<String> {
    if listen.port() == 0 {
        bail!(
            "the running denorm holds the state directory and listens on a port chosen at start ([server] listen \
             ends in :0); use GET /dlq and POST /dlq/{{id}}/drop on the address it logged"
        );
    }
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}", SocketAddr::new(ip, listen.port())))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
}

fn fetch_list(base: &str) -> anyhow::Result<Vec<DeadLetter>> {
    let url = format!("{base}/dlq");
    let mut response = agent().get(&url).call().with_context(|| format!("cannot reach the running denorm at {url}"))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().context("reading GET /dlq")?;
    if status != 200 {
        bail!("GET {url} answered {status}: {body}");
    }
    let document: serde_json::Value = serde_json::from_str(&body).context("GET /dlq answered no JSON")?;
    let entries = document.get("entries").cloned().unwrap_or_default();
    let entries: Vec<serde_json::Value> = serde_json::from_value(entries).context("GET /dlq: no entry list")?;
    entries
        .into_iter()
        .map(|mut e| {
            if let Some(object) = e.as_object_mut() {
                object.remove("raw_text");
            }
            serde_json::from_value(e).context("GET /dlq: an entry is not readable")
        })
        .collect()
}

/// Posts `retries` of `ids` to the running instance, then follows `GET
/// /dlq` and prints what became of each: applied (gone) or kept (with the
/// new reason). Fails when an id has no entry or an outcome does not come.
fn retry(base: &str, ids: &[u64], out: &mut dyn Write) -> anyhow::Result<()> {
    let before: Vec<(u64, u32)> = fetch_list(base)?.iter().map(|e| (e.id, e.retries)).collect();
    let missing = post_requests(base, ids, "retry")?;
    let mut open: Vec<(u64, u32)> = ids
        .iter()
        .filter(|id| !missing.contains(id))
        .map(|&id| (id, before.iter().find(|(b, _)| *b == id).map_or(0, |(_, r)| *r)))
        .collect();
    let deadline = Instant::now() + RETRY_WAIT;
    while !open.is_empty() {
        let now = fetch_list(base)?;
        open.retain(|&(id, retries)| match now.iter().find(|e| e.id == id) {
            None => {
                let _ = writeln!(out, "applied {id}");
                false
            }
            Some(e) if e.retries > retries => {
                let _ = writeln!(out, "kept {id}: {}", e.reason);
                false
            }
            Some(_) => true,
        });
        if open.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let ids: Vec<u64> = open.iter().map(|(id, _)| *id).collect();
            bail!(
                "no outcome for the retries of {ids:?} within {} s (denorm dlq list shows them)",
                RETRY_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !missing.is_empty() {
        bail!("no dead-letter entry {missing:?} (denorm dlq list shows the ids)");
    }
    Ok(())
}

/// Asks the running instance to `action` (drop, retry) `ids`; the ids it
/// had no entry for.
fn post_requests(base: &str, ids: &[u64], action: &str) -> anyhow::Result<Vec<u64>> {
    let mut missing = Vec::new();
    for &id in ids {
        let url = format!("{base}/dlq/{id}/{action}");
        let mut response =
            agent().post(&url).send_empty().with_context(|| format!("cannot reach the running denorm at {url}"))?;
        let status = response.status().as_u16();
        match status {
            202 => {}
            404 => missing.push(id),
            _ => {
                let body = response.body_mut().read_to_string().unwrap_or_default();
                bail!("POST {url} answered {status}: {body}");
            }
        }
    }
    Ok(missing)
}

fn report_dropped(ids: &[u64], missing: &[u64], out: &mut dyn Write) -> anyhow::Result<()> {
    for id in ids.iter().filter(|id| !missing.contains(id)) {
        writeln!(out, "dropped {id}")?;
    }
    if !missing.is_empty() {
        bail!("no dead-letter entry {missing:?} (denorm dlq list shows the ids)");
    }
    Ok(())
}

fn print(entries: &[DeadLetter], out: &mut dyn Write) -> anyhow::Result<()> {
    if entries.is_empty() {
        writeln!(out, "the dead-letter queue is empty")?;
        return Ok(());
    }
    for e in entries {
        let retries = if e.retries > 0 { format!("  retried {}×", e.retries) } else { String::new() };
        writeln!(out, "{}  table {}  key {}  position {}{retries}", e.id, e.table, e.key, e.position)?;
        writeln!(out, "    reason: {}", e.reason)?;
        writeln!(out, "    raw: {} ({:?})", hex(&e.raw), String::from_utf8_lossy(&e.raw))?;
    }
    writeln!(out, "{} entries", entries.len())?;
    Ok(())
}
