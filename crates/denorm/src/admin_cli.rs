//! `denorm reconcile` and `denorm reload`: clients of the running
//! instance's admin surface (`POST /admin/*`, see `denorm_serve::admin` and
//! `engine/admin.rs`), found at `[server] listen` of the configuration.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::{json, Value as Json};

use crate::check::Outcome;
use crate::config;

/// What `denorm reconcile` was asked.
#[derive(Debug, Clone)]
pub struct ReconcileArgs {
    pub views: Vec<String>,
    /// A `[[sink]]`'s name: compare its rows with the views instead.
    pub sink: Option<String>,
    pub repair: bool,
    pub json: bool,
    /// A bearer token (a role with `admin = true`) when `[auth]` is set.
    pub token: Option<String>,
}

/// Asks the running instance to compare views with the source (and repair
/// them); prints the differences. `Refused` (exit 1) when differences
/// remain.
pub fn reconcile(config_path: &Path, args: &ReconcileArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let body = match &args.sink {
        Some(sink) => json!({ "sink": sink, "repair": args.repair }),
        None => json!({ "views": args.views, "repair": args.repair }),
    };
    let reply = post(config_path, "/admin/reconcile", &body, args.token.as_deref())?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reply)?)?;
    } else {
        write_report(&reply, out)?;
    }
    let remaining = match reply.get("differences_after_repair") {
        Some(after) => after.as_u64(),
        None if reply["repaired"] == json!(true) => Some(0),
        None => reply["differences"].as_u64(),
    };
    Ok(if remaining.unwrap_or(0) == 0 { Outcome::Ok } else { Outcome::Refused })
}

/// Asks the running instance to reload its configuration and views.
pub fn reload(config_path: &Path, token: Option<&str>, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let reply = post(config_path, "/admin/reload", &json!({}), token)?;
    let list = |key: &str| {
        reply[key]
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    writeln!(out, "reloaded: added [{}], changed [{}], dropped [{}]", list("added"), list("changed"), list("dropped"))?;
    Ok(Outcome::Ok)
}

fn write_report(reply: &Json, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(sink) = reply["sink"].as_str() {
        for view in reply["views"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "sink {sink}, view {}: {} missing, {} extra, {} different{}",
                view["view"].as_str().unwrap_or("?"),
                view["missing"],
                view["extra"],
                view["different"],
                if view["repaired"] == json!(true) { " (repaired)" } else { "" }
            )?;
        }
        writeln!(
            out,
            "{} difference(s){}",
            reply["differences"],
            if reply["repaired"] == json!(true) { ", repaired" } else { "" }
        )?;
        return Ok(());
    }
    writeln!(out, "compared at position {}", reply["position"])?;
    for view in reply["views"].as_array().into_iter().flatten() {
        let name = view["view"].as_str().unwrap_or("?");
        if let Some(reason) = view["skipped"].as_str() {
            writeln!(out, "{name}: skipped ({reason})")?;
            continue;
        }
        writeln!(
            out,
            "{name}: {} rows checked, {} missing, {} extra, {} different",
            view["checked_rows"], view["missing"], view["extra"], view["different"]
        )?;
        for sample in view["samples"].as_array().into_iter().flatten() {
            writeln!(out, "  {sample}")?;
        }
    }
    match (reply["repaired"].as_bool(), reply.get("differences_after_repair")) {
        (Some(true), Some(after)) => writeln!(out, "repaired; {after} difference(s) left")?,
        (Some(true), None) => writeln!(out, "repaired (not checked again: the source moved meanwhile)")?,
        _ => writeln!(out, "{} difference(s)", reply["differences"])?,
    }
    Ok(())
}

/// POSTs `body` to the instance serving `config_path`'s `[server] listen`;
/// the reply's JSON, or the refusal as an error.
fn post(config_path: &Path, path: &str, body: &Json, token: Option<&str>) -> anyhow::Result<Json> {
    let config = config::load(config_path)?;
    let address = local(config.server.listen);
    let url = format!("http://{address}{path}");
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut request = agent.post(&url).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send(serde_json::to_vec(body)?).with_context(|| {
        format!("cannot reach denorm at {url}\n  hint: is `denorm run --config {}` running?", config_path.display())
    })?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().context("reading the reply")?;
    let reply: Json = serde_json::from_str(&text).with_context(|| format!("{url} answered {status}: {text}"))?;
    if status != 200 {
        let errors: Vec<String> =
            reply["errors"].as_array().into_iter().flatten().filter_map(|e| e.as_str().map(str::to_owned)).collect();
        let message = reply["error"].as_str().unwrap_or("refused");
        if errors.is_empty() {
            bail!("{url} answered {status}: {message}");
        }
        bail!("{url} answered {status}: {message}\n{}", errors.join("\n"));
    }
    Ok(reply)
}

/// The address to reach a server listening on `listen` from this machine.
fn local(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port()),
        _ => listen,
    }
}
