//! `denorm advise`: the seeds' decision framework as a command. Which of the
//! application's frequent reads deserve a denormalized view, at what cost,
//! written as views `denorm check` accepts.
//!
//! ```text
//!  workload (pg_stat_statements + pg_stat_user_tables, or a --queries file timed on SQLite)
//!     │ per read query: rewrite.rs (parameters → view key columns)
//!     ▼ plan it as a view (denorm-sql), estimate its rows (denorm-core's estimator on the source's statistics)
//!  read share, copies per write, view size, time saved
//!     ▼ verdict (the seeds' thresholds below), ranked by time saved
//!  terminal table | --json | --write views.sql
//! ```
//!
//! The framework (`../shared/seeds/normalize-vs-denormalize-decision-framework.md`):
//! denormalize reads that dominate (at least [`READ_SHARE`] of the traffic
//! touching their tables), that join three or more tables or aggregate, or
//! are slow; keep the fan-out of a write under [`MAX_FANOUT`] copies (above
//! it, fan-out on write becomes a feed with `fanout_limit`, the celebrity
//! hybrid). "Read share" is the query's calls against the rows written to the
//! tables it reads over the same period: each written row is work for the
//! view, each call is a lookup saved.

pub mod rewrite;
pub mod workload;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use denorm_core::Dataflow;
use denorm_types::{Catalog, Dialect};
use serde::Serialize;

use crate::check::Outcome;
use crate::config::{self, Config, SourceConfig};
use crate::estimate;
use rewrite::{Param, Rewritten};
use workload::{ReadQuery, Workload};

/// A read must be at least this share of the traffic on its tables.
pub const READ_SHARE: f64 = 0.9;
/// Copies of a row per source update above which fan-out on write is a feed's job.
pub const MAX_FANOUT: f64 = 500.0;
/// Tables joined from which a read is worth denormalizing however fast it is.
pub const MIN_TABLES: usize = 3;
/// A simpler read (fewer tables, no aggregate) is worth it from this mean time (ms).
pub const SLOW_MS: f64 = 1.0;
/// What a read costs once it is a view: denorm's key lookup over HTTP at the
/// 99th percentile under load, as BENCHMARKS.md measures it (ms).
pub const LOOKUP_MS: f64 = 0.1;

/// `denorm advise`'s arguments.
#[derive(Debug, Clone)]
pub struct AdviseArgs {
    /// `sqlite://app.db` or `postgres://…`.
    pub source: String,
    /// SQLite: the application's frequent statements.
    pub queries: Option<PathBuf>,
    pub top: usize,
    pub write: Option<PathBuf>,
    pub json: bool,
}

/// The verdict on one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Denormalize,
    /// Denormalize as a feed (fan-out on write with a celebrity limit).
    Feed,
    LeaveNormalized,
    /// The query cannot be a view as written.
    NotExpressible,
}

/// A parameter and the view column a read filters for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamColumn {
    pub placeholder: String,
    pub column: String,
}

/// The advice on one read query.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    pub rank: usize,
    pub query: String,
    pub calls: f64,
    pub mean_ms: f64,
    pub p99_ms: Option<f64>,
    pub tables: Vec<String>,
    pub grouped: bool,
    /// Rows written to the tables the query reads, over the same period.
    pub writes: f64,
    pub read_share: f64,
    /// Copies of a source row the view holds (rows touched per update), the
    /// worst table's, and that table.
    pub copies_per_write: Option<f64>,
    pub fanout_table: Option<String>,
    pub view_rows: Option<f64>,
    pub view_bytes: Option<f64>,
    /// Calls × time saved per call (ms).
    pub savings_ms: f64,
    pub verdict: Verdict,
    pub reason: String,
    pub view_name: Option<String>,
    /// The `CREATE MATERIALIZED VIEW` statement (planned by denorm-sql).
    pub view: Option<String>,
    /// The read that replaces the query (`$1` stands for the parameter).
    pub read: Option<String>,
    pub params: Vec<ParamColumn>,
    /// Statements to run on the source before the view can be captured.
    pub prerequisites: Vec<String>,
}

impl Advice {
    fn recommended(&self) -> bool {
        matches!(self.verdict, Verdict::Denormalize | Verdict::Feed) && self.view.is_some()
    }
}

/// Runs `denorm advise`.
pub fn run(args: &AdviseArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let config = source_config(&args.source)?;
    let catalog = crate::source::catalog(&config)?.catalog;
    let dialect = config.source.dialect();
    let params = |sql: &str| -> Vec<Param> {
        rewrite::rewrite(sql, dialect).map(|r| resolve(&r, &catalog).params).unwrap_or_default()
    };
    let workload = match (&config.source, &args.queries) {
        (SourceConfig::Sqlite(source), Some(file)) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            let listed = workload::split_queries(&text).with_context(|| format!("in {}", file.display()))?;
            let connection = denorm_source::sqlite::open_read_only(&source.path)?;
            workload::sqlite(&connection, &listed, &params)
        }
        (SourceConfig::Sqlite(_), None) => bail!(
            "SQLite keeps no statistics of the queries it runs\n  hint: list the application's frequent statements \
             (reads and writes, each ended by `;`, with a `-- calls: N` comment) in a file and pass --queries FILE"
        ),
        (SourceConfig::Postgres(source), None) => {
            let mut client = denorm_source::postgres::connect(&source.url)?;
            workload::postgres(&mut client, &params)?
        }
        (SourceConfig::Postgres(_), Some(_)) => bail!(
            "--queries is for SQLite sources\n  hint: on PostgreSQL denorm advise reads pg_stat_statements; drop --queries"
        ),
    };
    let advice = advise(&config, &catalog, dialect, &workload)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &advice.iter().take(args.top).collect::<Vec<_>>())?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(&advice, args.top, &workload))?;
    }
    if let Some(file) = &args.write {
        let written = write_views(file, &advice, args.top)?;
        if !args.json {
            writeln!(out, "\nwrote {written} view(s) to {}", file.display())?;
        }
    }
    Ok(Outcome::Ok)
}

/// A configuration with only `[source] url`, validated as a config file's.
fn source_config(url: &str) -> anyhow::Result<Config> {
    let text = format!("views = [\"-\"]\n[source]\nurl = {}\n", toml::Value::String(url.to_string()));
    let path = std::env::current_dir().context("cannot read the current directory")?.join("--source");
    let mut config = config::parse(&text, &path).map_err(|e| match e {
        config::ConfigError::Invalid { message, hint, .. } => {
            let hint = hint.map(|h| format!("\n  hint: {h}")).unwrap_or_default();
            anyhow::anyhow!("invalid --source {url:?}: {message}{hint}")
        }
        other => anyhow::Error::new(other),
    })?;
    config.views.clear();
    Ok(config)
}

/// Sets each parameter's base table: the table its qualifier names (by alias
/// or name), else the one table of FROM that has the column.
fn resolve(rewritten: &Rewritten, catalog: &Catalog) -> Rewritten {
    let mut out = rewritten.clone();
    for param in &mut out.params {
        let by_qualifier = param.qualifier.as_ref().and_then(|q| {
            rewritten
                .tables
                .iter()
                .find(|t| t.alias.as_ref().map_or(t.name.eq_ignore_ascii_case(q), |a| a.eq_ignore_ascii_case(q)))
        });
        let table = by_qualifier.or_else(|| {
            let having: Vec<_> = rewritten
                .tables
                .iter()
                .filter(|t| {
                    catalog
                        .get(&t.name)
                        .is_some_and(|s| s.columns.iter().any(|c| c.name.eq_ignore_ascii_case(&param.column)))
                })
                .collect();
            (having.len() == 1).then(|| having[0])
        });
        param.table = table.and_then(|t| catalog.get(&t.name)).map(|s| s.name.clone());
    }
    out
}

/// The advice on every read of `workload`, ranked.
fn advise(config: &Config, catalog: &Catalog, dialect: Dialect, workload: &Workload) -> anyhow::Result<Vec<Advice>> {
    let mut names = BTreeSet::new();
    let mut advice: Vec<Advice> = workload
        .reads
        .iter()
        .map(|read| advise_one(config, catalog, dialect, workload, read, &mut names))
        .collect::<anyhow::Result<_>>()?;
    advice.sort_by(|a, b| b.recommended().cmp(&a.recommended()).then(b.savings_ms.total_cmp(&a.savings_ms)));
    for (i, a) in advice.iter_mut().enumerate() {
        a.rank = i + 1;
    }
    Ok(advice)
}

fn advise_one(
    config: &Config,
    catalog: &Catalog,
    dialect: Dialect,
    workload: &Workload,
    read: &ReadQuery,
    names: &mut BTreeSet<String>,
) -> anyhow::Result<Advice> {
    let mean_ms = if read.mean_ms.is_finite() { read.mean_ms } else { 0.0 };
    let mut advice = Advice {
        rank: 0,
        query: read.sql.clone(),
        calls: read.calls,
        mean_ms,
        p99_ms: read.p99_ms,
        tables: Vec::new(),
        grouped: false,
        writes: 0.0,
        read_share: 1.0,
        copies_per_write: None,
        fanout_table: None,
        view_rows: None,
        view_bytes: None,
        savings_ms: read.calls * (mean_ms - LOOKUP_MS).max(0.0),
        verdict: Verdict::NotExpressible,
        reason: String::new(),
        view_name: None,
        view: None,
        read: None,
        params: Vec::new(),
        prerequisites: Vec::new(),
    };
    let rewritten = match rewrite::rewrite(&read.sql, dialect) {
        Ok(r) => resolve(&r, catalog),
        Err(e) => {
            advice.reason = format!("not a view as written: {e}");
            return Ok(advice);
        }
    };
    let tables: BTreeSet<String> =
        rewritten.tables.iter().filter_map(|t| catalog.get(&t.name)).map(|s| s.name.clone()).collect();
    advice.tables = tables.iter().cloned().collect();
    advice.grouped = rewritten.grouped;
    advice.writes = tables.iter().map(|t| workload.writes.get(&t.to_ascii_lowercase()).copied().unwrap_or(0.0)).sum();
    advice.read_share = if read.calls + advice.writes > 0.0 { read.calls / (read.calls + advice.writes) } else { 1.0 };
    advice.params = rewritten
        .params
        .iter()
        .map(|p| ParamColumn { placeholder: p.placeholder.clone(), column: p.output.clone() })
        .collect();

    let name = view_name(&rewritten, names);
    let plain = format!("CREATE MATERIALIZED VIEW {name} AS {};", rewritten.select);
    let planned = match denorm_sql::plan_views(&plain, catalog, dialect) {
        Ok(mut views) => views.remove(0),
        Err(errors) => {
            let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
            advice.reason = format!("denorm cannot maintain it as a view: {first}");
            return Ok(advice);
        }
    };
    let stats = estimate::read_stats(config, catalog, &tables)?;
    let mut flow = Dataflow::new(catalog.clone(), dialect);
    flow.add_view_emitting(&name, &planned.plan).context("cannot build the view's dataflow to estimate it (bug)")?;
    if let Some(shape) = flow.estimate_view_rows(&stats).into_iter().next() {
        advice.view_rows = Some(shape.rows);
        advice.view_bytes = Some(shape.rows * shape.width);
        let fanout = tables
            .iter()
            .map(|t| {
                let rows = stats.get(t).map_or(0.0, |s| s.rows).max(1.0);
                let copies = if rewritten.grouped {
                    1.0
                } else {
                    (shape.rows / rows).max(if shape.rows > 0.0 { 1.0 } else { 0.0 })
                };
                (t.clone(), copies)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((table, copies)) = fanout {
            advice.copies_per_write = Some(copies);
            advice.fanout_table = Some(table);
        }
    }
    let copies = advice.copies_per_write.unwrap_or(1.0);
    let staleness = staleness(advice.writes * copies, workload.period);
    let share = advice.read_share * 100.0;
    let shape = describe_shape(&advice);
    if advice.read_share < READ_SHARE {
        advice.verdict = Verdict::LeaveNormalized;
        advice.reason =
            format!("leave normalized: writes dominate ({share:.0}% reads, {} rows written)", count(advice.writes));
    } else if copies >= MAX_FANOUT {
        advice.verdict = Verdict::Feed;
        let table = advice.fanout_table.clone().unwrap_or_default();
        advice.reason = format!("fan-out {} copies per update of {table}: use a feed with fanout_limit", count(copies));
        match feed_view(&name, &rewritten, catalog, dialect, staleness) {
            Ok((view, read)) => {
                advice.view = Some(view);
                advice.read = Some(read);
                advice.view_name = Some(name);
            }
            Err(why) => advice.reason.push_str(&format!(" ({why})")),
        }
    } else if tables.len() < MIN_TABLES && !rewritten.grouped && mean_ms < SLOW_MS {
        advice.verdict = Verdict::LeaveNormalized;
        advice.reason = format!("leave normalized: {shape} already takes {mean_ms:.2} ms");
    } else {
        advice.verdict = Verdict::Denormalize;
        advice.reason = format!("denormalize: {share:.0}% reads, {shape}, {copies:.1} copies per write");
        let (view, read) = keyed_view(&name, &rewritten, &planned, catalog, dialect, staleness)?;
        advice.view = Some(view);
        advice.read = Some(read);
        advice.view_name = Some(name);
    }
    if advice.view.is_some() {
        advice.prerequisites = tables
            .iter()
            .filter(|t| workload.not_full_identity.contains(&t.to_ascii_lowercase()))
            .map(|t| format!("ALTER TABLE {t} REPLICA IDENTITY FULL;"))
            .collect();
    }
    Ok(advice)
}

fn describe_shape(advice: &Advice) -> String {
    let n = advice.tables.len();
    let tables = if n == 1 { "1-table read".to_string() } else { format!("{n}-table join") };
    if advice.grouped {
        format!("{tables} with an aggregate")
    } else {
        tables
    }
}

/// A budget that leaves room for the batches the write rate brings: the
/// seeds' 1 s for light traffic, up to their 5–30 s for heavy fan-out.
fn staleness(copies: f64, period: Option<f64>) -> &'static str {
    let rate = period.filter(|p| *p > 0.0).map_or(0.0, |p| copies / p);
    if rate < 1_000.0 {
        "1s"
    } else if rate < 50_000.0 {
        "5s"
    } else {
        "30s"
    }
}

/// A fresh view name: the first table, then `by` and the parameter columns.
fn view_name(rewritten: &Rewritten, names: &mut BTreeSet<String>) -> String {
    let table = rewritten.tables.first().map_or("query", |t| t.name.as_str());
    let mut base = table.to_ascii_lowercase();
    if rewritten.grouped {
        base.push_str("_stats");
    }
    if !rewritten.params.is_empty() {
        base.push_str("_by_");
        base.push_str(&rewritten.params.iter().map(|p| p.output.to_ascii_lowercase()).collect::<Vec<_>>().join("_"));
    }
    let base: String = base.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    let mut name = base.clone();
    let mut n = 2;
    while !names.insert(name.clone()) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// The view keyed by the parameter columns, then the order's columns, then
/// the key denorm derived, so a read is a lookup or a range of the index.
fn keyed_view(
    name: &str,
    rewritten: &Rewritten,
    planned: &denorm_sql::ViewDef,
    catalog: &Catalog,
    dialect: Dialect,
    staleness: &str,
) -> anyhow::Result<(String, String)> {
    let mut key: Vec<String> = Vec::new();
    let mut push = |c: &str| {
        if !key.iter().any(|k| k.eq_ignore_ascii_case(c)) {
            key.push(c.to_string());
        }
    };
    rewritten.params.iter().for_each(|p| push(&p.output));
    if !rewritten.params.is_empty() {
        rewritten.order.iter().for_each(|(c, _)| push(c));
    }
    planned.key.columns.iter().for_each(|&c| push(&planned.columns[c].name));
    let derived: Vec<&str> = planned.key.columns.iter().map(|&c| planned.columns[c].name.as_str()).collect();
    let mut options = Vec::new();
    if key.iter().map(String::as_str).collect::<Vec<_>>() != derived {
        options.push(format!("key = '{}'", key.join(", ")));
    }
    options.push(format!("max_staleness = '{staleness}'"));
    let view = format!("CREATE MATERIALIZED VIEW {name}\n  WITH ({})\nAS {};", options.join(", "), rewritten.select);
    denorm_sql::plan_views(&view, catalog, dialect).map_err(|errors| {
        anyhow::anyhow!(
            "the advised view does not plan (bug): {}",
            errors.first().map(|e| e.to_string()).unwrap_or_default()
        )
    })?;
    Ok((view, read_url(name, rewritten)))
}

/// The feed form: one partition per parameter value, in the query's order.
fn feed_view(
    name: &str,
    rewritten: &Rewritten,
    catalog: &Catalog,
    dialect: Dialect,
    staleness: &str,
) -> Result<(String, String), String> {
    let [param] = rewritten.params.as_slice() else {
        return Err("a feed needs exactly one parameter to partition by".into());
    };
    if rewritten.order.is_empty() || rewritten.grouped {
        return Err("a feed needs an ORDER BY and no aggregate".into());
    }
    let order: Vec<String> =
        rewritten.order.iter().map(|(c, desc)| format!("{c} {}", if *desc { "DESC" } else { "ASC" })).collect();
    let retain = rewritten.limit.as_ref().and_then(|l| l.parse::<u64>().ok()).map_or(200, |l| (l * 10).max(100));
    let view = format!(
        "CREATE MATERIALIZED VIEW {name}\n  WITH (partition_by = '{}', order_by = '{}', fanout_limit = {}, retain = {retain}, \
         max_staleness = '{staleness}')\nAS {};",
        param.output,
        order.join(", "),
        MAX_FANOUT as u64,
        rewritten.select
    );
    denorm_sql::plan_views(&view, catalog, dialect)
        .map_err(|errors| format!("as a feed: {}", errors.first().map(|e| e.to_string()).unwrap_or_default()))?;
    Ok((view, read_url(name, rewritten)))
}

fn read_url(name: &str, rewritten: &Rewritten) -> String {
    let mut query: Vec<String> =
        rewritten.params.iter().map(|p| format!("{}=eq.{}", p.output, p.placeholder)).collect();
    if !rewritten.order.is_empty() {
        let terms: Vec<String> =
            rewritten.order.iter().map(|(c, desc)| format!("{c}.{}", if *desc { "desc" } else { "asc" })).collect();
        query.push(format!("order={}", terms.join(",")));
    }
    if let Some(limit) = &rewritten.limit {
        query.push(format!("limit={limit}"));
    }
    if query.is_empty() {
        format!("/views/{name}")
    } else {
        format!("/views/{name}?{}", query.join("&"))
    }
}

fn count(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// The terminal report: a table ranked by time saved, then each
/// recommended view.
fn render(advice: &[Advice], top: usize, workload: &Workload) -> String {
    let mut out = String::new();
    let period = workload.period.map_or_else(String::new, |p| format!(" over the last {}", duration(p)));
    out.push_str(&format!(
        "{} read queries{period}; {} tables written; ranked by time saved (calls x (mean - {LOOKUP_MS} ms lookup))\n\n",
        workload.reads.len(),
        workload.writes.values().filter(|w| **w > 0.0).count()
    ));
    out.push_str(&format!(
        "{:>4}  {:<16} {:>9} {:>9} {:>9} {:>6} {:>7} {:>10} {:>10} {:>10}  query\n",
        "rank", "verdict", "calls", "mean ms", "p99 ms", "tables", "reads", "copies/wr", "view size", "saved"
    ));
    for a in advice.iter().take(top) {
        let verdict = match a.verdict {
            Verdict::Denormalize => "denormalize",
            Verdict::Feed => "feed",
            Verdict::LeaveNormalized => "leave normalized",
            Verdict::NotExpressible => "not a view",
        };
        let mut query: String = a.query.chars().take(60).collect();
        if a.query.chars().count() > 60 {
            query.push('…');
        }
        out.push_str(&format!(
            "{:>4}  {:<16} {:>9} {:>9.3} {:>9} {:>6} {:>6.1}% {:>10} {:>10} {:>10}  {query}\n",
            a.rank,
            verdict,
            count(a.calls),
            a.mean_ms,
            a.p99_ms.map_or("-".to_string(), |p| format!("{p:.3}")),
            a.tables.len(),
            a.read_share * 100.0,
            a.copies_per_write.map_or("-".to_string(), count),
            a.view_bytes.map_or("-".to_string(), estimate::bytes),
            duration(a.savings_ms / 1e3),
        ));
    }
    for a in advice.iter().take(top) {
        out.push_str(&format!("\n#{} {}\n  {}\n", a.rank, a.query, a.reason));
        if let (Some(view), Some(read)) = (&a.view, &a.read) {
            out.push_str(&format!("  read: GET {read}\n"));
            for statement in &a.prerequisites {
                out.push_str(&format!("  first run on the source: {statement}\n"));
            }
            for line in view.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    out
}

fn duration(seconds: f64) -> String {
    if seconds >= 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else if seconds >= 60.0 {
        format!("{:.1} min", seconds / 60.0)
    } else if seconds >= 1.0 {
        format!("{seconds:.1} s")
    } else {
        format!("{:.0} ms", seconds * 1e3)
    }
}

/// Appends the recommended views among the first `top` to `file`, each
/// after a comment with the query it replaces. Returns how many.
fn write_views(file: &Path, advice: &[Advice], top: usize) -> anyhow::Result<usize> {
    let mut text = String::new();
    let mut written = 0;
    for a in advice.iter().take(top).filter(|a| a.recommended()) {
        let (Some(view), Some(read)) = (&a.view, &a.read) else { continue };
        text.push_str(&format!("\n-- denorm advise: {}\n-- replaces: {}\n-- read: GET {read}\n", a.reason, a.query));
        for statement in &a.prerequisites {
            text.push_str(&format!("-- first run on the source: {statement}\n"));
        }
        text.push_str(&format!("{view}\n"));
        written += 1;
    }
    let mut handle = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("cannot open {} to append the views", file.display()))?;
    handle.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(written)
}
