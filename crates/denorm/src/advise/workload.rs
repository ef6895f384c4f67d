//! What the application does to its database: its read queries (normalized,
//! parameters as placeholders) with call counts and timings, and the rows
//! written per table.
//!
//! - PostgreSQL: `pg_stat_statements` (calls and mean time of each
//!   normalized statement since its last reset; the extension must be
//!   preloaded, see [`PG_STAT_STATEMENTS_HINT`]) and `pg_stat_user_tables`
//!   (rows inserted, updated and deleted per table since the statistics'
//!   reset).
//! - SQLite keeps no such statistics: the application lists its frequent
//!   statements in a file (`--queries`), each ended by `;`, optionally
//!   preceded by a `-- calls: N` comment (default 1). Writes
//!   (INSERT/UPDATE/DELETE) count as N rows written to their table; reads
//!   are timed here.
//!
//! Every read query is also run here a few times with parameter values
//! sampled from the column each parameter is compared with (PostgreSQL: in
//! a read-only session), which gives the p99 that `pg_stat_statements` does
//! not keep, and the SQLite mean.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sqlparser::ast::{FromTable, Statement, TableFactor, TableObject};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::rewrite::Param;

/// How to make `pg_stat_statements` available, for the error that says it is not.
pub const PG_STAT_STATEMENTS_HINT: &str = "denorm advise reads pg_stat_statements: add \
     shared_preload_libraries = 'pg_stat_statements' to postgresql.conf, restart the server, run \
     CREATE EXTENSION pg_stat_statements; in the database, and let the application run for a while";

/// Runs of each read query when timing it, at most.
const SAMPLE_RUNS: usize = 40;
/// Time spent timing one query, at most.
const SAMPLE_BUDGET: Duration = Duration::from_secs(2);

/// One frequent read query.
#[derive(Debug, Clone)]
pub struct ReadQuery {
    /// Normalized text, parameters as placeholders.
    pub sql: String,
    pub calls: f64,
    /// Mean execution time in milliseconds (PostgreSQL: as the server
    /// measured it; SQLite: measured here).
    pub mean_ms: f64,
    /// Measured here over [`SAMPLE_RUNS`] runs with sampled parameters.
    pub p99_ms: Option<f64>,
}

/// The workload: reads, and rows written per table (lower-case names).
#[derive(Debug, Clone, Default)]
pub struct Workload {
    pub reads: Vec<ReadQuery>,
    pub writes: HashMap<String, f64>,
    /// Seconds the counts cover, when known (PostgreSQL: since the reset).
    pub period: Option<f64>,
    /// PostgreSQL: tables (lower-case) whose REPLICA IDENTITY is not FULL;
    /// denorm's capture needs FULL on a table whose views read more than its key.
    pub not_full_identity: Vec<String>,
}

/// A statement of a `--queries` file: its text and its call count.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub sql: String,
    pub calls: f64,
}

/// Splits a `--queries` file into statements at top-level `;`, reading a
/// `-- calls: N` comment inside each (before it, or anywhere in it).
pub fn split_queries(text: &str) -> anyhow::Result<Vec<Listed>> {
    let tokens = Tokenizer::new(&SQLiteDialect {}, text)
        .tokenize()
        .map_err(|e| anyhow::anyhow!("the queries file does not tokenize: {e}"))?;
    let mut out = Vec::new();
    let mut sql = String::new();
    let mut calls: Option<f64> = None;
    for token in tokens {
        match &token {
            Token::SemiColon => {
                flush(&mut sql, &mut calls, &mut out);
            }
            Token::Whitespace(Whitespace::SingleLineComment { comment, .. }) => {
                let comment = comment.trim();
                if let Some(n) = comment.strip_prefix("calls:").or_else(|| comment.strip_prefix("calls =")) {
                    let n = n.trim();
                    calls = Some(n.replace('_', "").parse().with_context(|| {
                        format!("`-- calls: {n}`: write a number of calls, e.g. `-- calls: 12000`")
                    })?);
                }
                sql.push(' ');
            }
            Token::Whitespace(Whitespace::MultiLineComment(_)) => sql.push(' '),
            other => sql.push_str(&other.to_string()),
        }
    }
    flush(&mut sql, &mut calls, &mut out);
    Ok(out)
}

fn flush(sql: &mut String, calls: &mut Option<f64>, out: &mut Vec<Listed>) {
    let text = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if !text.is_empty() {
        out.push(Listed { sql: text, calls: calls.unwrap_or(1.0) });
    }
    sql.clear();
    *calls = None;
}

/// The table an INSERT/UPDATE/DELETE writes, lower-case; `None` for reads
/// and other statements.
pub fn written_table(sql: &str, postgres: bool) -> Option<String> {
    let parsed = if postgres {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
    } else {
        Parser::parse_sql(&SQLiteDialect {}, sql)
    };
    let statement = parsed.ok()?.into_iter().next()?;
    let name = match statement {
        Statement::Insert(insert) => match insert.table {
            TableObject::TableName(name) => name,
            TableObject::TableFunction(_) | TableObject::TableQuery(_) => return None,
        },
        Statement::Update(update) => match update.table.relation {
            TableFactor::Table { name, .. } => name,
            _ => return None,
        },
        Statement::Delete(delete) => {
            let tables = match delete.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            match tables.into_iter().next()?.relation {
                TableFactor::Table { name, .. } => name,
                _ => return None,
            }
        }
        _ => return None,
    };
    name.0.last().map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
}

/// Whether a statement is a query (SELECT, WITH, VALUES, set operations).
pub fn is_read(sql: &str) -> bool {
    let head = sql.trim_start().get(..6).unwrap_or("").to_ascii_lowercase();
    head.starts_with("select") || head.starts_with("with") || head.starts_with("(")
}

/// Reads the workload of a SQLite database from a `--queries` file: reads
/// are timed on `connection` (opened read-only).
pub fn sqlite(connection: &rusqlite::Connection, listed: &[Listed], params: &dyn Fn(&str) -> Vec<Param>) -> Workload {
    let mut workload = Workload::default();
    for statement in listed {
        if let Some(table) = written_table(&statement.sql, false) {
            *workload.writes.entry(table).or_default() += statement.calls;
        } else if is_read(&statement.sql) {
            let timing = time_sqlite(connection, &statement.sql, &params(&statement.sql));
            workload.reads.push(ReadQuery {
                sql: statement.sql.clone(),
                calls: statement.calls,
                mean_ms: timing.map_or(f64::NAN, |t| t.mean_ms),
                p99_ms: timing.map(|t| t.p99_ms),
            });
        }
    }
    workload
}

/// Reads `pg_stat_statements` and `pg_stat_user_tables` of the connected
/// database, and times each read query.
pub fn postgres(client: &mut postgres::Client, params: &dyn Fn(&str) -> Vec<Param>) -> anyhow::Result<Workload> {
    let installed = client
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'", &[])
        .context("cannot read pg_extension")?
        .is_some();
    if !installed {
        bail!("pg_stat_statements is not installed in this database\n  hint: {PG_STAT_STATEMENTS_HINT}");
    }
    let rows = client
        .query(
            "SELECT query, calls::float8, mean_exec_time FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND userid = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND calls > 0 \
             ORDER BY calls * mean_exec_time DESC LIMIT 500",
            &[],
        )
        .map_err(|e| match e.as_db_error() {
            Some(db) if db.message().contains("must be loaded via") => {
                anyhow::anyhow!("pg_stat_statements is not preloaded\n  hint: {PG_STAT_STATEMENTS_HINT}")
            }
            _ => anyhow::Error::new(e).context("cannot read pg_stat_statements"),
        })?;
    let mut workload = Workload::default();
    let mut reads = Vec::new();
    for row in rows {
        let sql: String = row.get(0);
        let calls: f64 = row.get(1);
        let mean_ms: f64 = row.get(2);
        if is_read(&sql) && !reads_catalog(&sql) {
            reads.push(ReadQuery { sql, calls, mean_ms, p99_ms: None });
        }
    }
    for row in client
        .query("SELECT lower(relname), (n_tup_ins + n_tup_upd + n_tup_del)::float8 FROM pg_stat_user_tables", &[])
        .context("cannot read pg_stat_user_tables")?
    {
        workload.writes.insert(row.get(0), row.get(1));
    }
    for row in client
        .query(
            "SELECT lower(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND c.relreplident <> 'f' \
               AND n.nspname = ANY (current_schemas(false))",
            &[],
        )
        .context("cannot read the tables' replica identity")?
    {
        workload.not_full_identity.push(row.get(0));
    }
    workload.period = client
        .query_opt("SELECT extract(epoch FROM now() - stats_reset)::float8 FROM pg_stat_statements_info", &[])
        .ok()
        .flatten()
        .and_then(|r| r.get::<_, Option<f64>>(0));
    client.batch_execute("SET default_transaction_read_only = on").context("cannot make the session read-only")?;
    for read in &mut reads {
        read.p99_ms = time_postgres(client, &read.sql, &params(&read.sql)).map(|t| t.p99_ms);
    }
    workload.reads = reads;
    Ok(workload)
}

/// Statements about the server rather than the application's data.
fn reads_catalog(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    [
        "pg_catalog",
        "pg_stat",
        "information_schema",
        "pg_class",
        "pg_namespace",
        "pg_extension",
        "pg_roles",
        "pg_database",
        "pg_replication",
        "pg_settings",
        "pg_type",
        "pg_attribute",
        "current_setting",
        "version()",
    ]
    .iter()
    .any(|t| lower.contains(t))
        || !lower.contains(" from ")
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    mean_ms: f64,
    p99_ms: f64,
}

fn summarize(mut samples: Vec<f64>) -> Option<Timing> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let mean_ms = samples.iter().sum::<f64>() / samples.len() as f64;
    let rank = ((samples.len() as f64) * 0.99).ceil() as usize;
    Some(Timing { mean_ms, p99_ms: samples[rank.clamp(1, samples.len()) - 1] })
}

/// Runs a SQLite query with sampled parameter values.
fn time_sqlite(connection: &rusqlite::Connection, sql: &str, params: &[Param]) -> Option<Timing> {
    let values: Vec<Vec<rusqlite::types::Value>> = params.iter().map(|p| sample_sqlite(connection, p)).collect();
    let mut statement = connection.prepare(sql).ok()?;
    let mut samples = Vec::new();
    let started = Instant::now();
    for run in 0..SAMPLE_RUNS {
        if started.elapsed() > SAMPLE_BUDGET {
            break;
        }
        let bound: Vec<rusqlite::types::Value> = values
            .iter()
            .map(|v| if v.is_empty() { rusqlite::types::Value::Null } else { v[run % v.len()].clone() })
            .collect();
        let at = Instant::now();
        let mut rows = statement.query(rusqlite::params_from_iter(bound.iter())).ok()?;
        while rows.next().ok()?.is_some() {}
        samples.push(at.elapsed().as_secs_f64() * 1e3);
    }
    summarize(samples)
}

fn sample_sqlite(connection: &rusqlite::Connection, param: &Param) -> Vec<rusqlite::types::Value> {
    let Some(table) = &param.table else { return Vec::new() };
    let sql = format!(
        "SELECT {c} FROM {t} WHERE {c} IS NOT NULL ORDER BY random() LIMIT {SAMPLE_RUNS}",
        c = quote(&param.column),
        t = quote(table)
    );
    let Ok(mut statement) = connection.prepare(&sql) else { return Vec::new() };
    statement
        .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Sampled values of a parameter's column, as PostgreSQL literals' text.
pub fn sample_postgres(client: &mut postgres::Client, param: &Param, count: usize) -> Vec<String> {
    let Some(table) = &param.table else { return Vec::new() };
    let sql = format!(
        "SELECT {c}::text FROM {t} WHERE {c} IS NOT NULL ORDER BY random() LIMIT {count}",
        c = quote(&param.column),
        t = quote(table)
    );
    client.query(&sql, &[]).map(|rows| rows.iter().map(|r| r.get(0)).collect()).unwrap_or_default()
}

/// `sql` with each `$n` replaced by the literal `values[n - 1]` (highest
/// numbers first, so `$1` does not eat the start of `$10`).
pub fn bind_postgres(sql: &str, values: &[Option<String>]) -> String {
    let mut out = sql.to_string();
    for (i, value) in values.iter().enumerate().rev() {
        let literal = value.as_ref().map_or_else(|| "NULL".to_string(), |v| format!("'{}'", v.replace('\'', "''")));
        out = out.replace(&format!("${}", i + 1), &literal);
    }
    out
}

/// Runs a PostgreSQL query with sampled parameter values, as text literals
/// (the server types them as it types the parameter).
fn time_postgres(client: &mut postgres::Client, sql: &str, params: &[Param]) -> Option<Timing> {
    let numbered = numbered_params(params);
    let values: Vec<Vec<String>> =
        numbered.iter().map(|p| p.map_or_else(Vec::new, |p| sample_postgres(client, p, SAMPLE_RUNS))).collect();
    let mut samples = Vec::new();
    let started = Instant::now();
    for run in 0..SAMPLE_RUNS {
        if started.elapsed() > SAMPLE_BUDGET {
            break;
        }
        let bound: Vec<Option<String>> =
            values.iter().map(|v| if v.is_empty() { None } else { Some(v[run % v.len()].clone()) }).collect();
        let text = bind_postgres(sql, &bound);
        let at = Instant::now();
        client.simple_query(&text).ok()?;
        samples.push(at.elapsed().as_secs_f64() * 1e3);
    }
    summarize(samples)
}

/// The parameters by number (`$1` first); a number no equality reads is `None`.
pub fn numbered_params(params: &[Param]) -> Vec<Option<&Param>> {
    let numbers: Vec<usize> =
        params.iter().map(|p| p.placeholder.trim_start_matches('$').parse::<usize>().unwrap_or(0)).collect();
    let highest = numbers.iter().copied().max().unwrap_or(0);
    (1..=highest).map(|n| numbers.iter().position(|&m| m == n).map(|i| &params[i])).collect()
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queries_file_splits_with_its_call_counts() {
        let text = "-- calls: 12_000\nSELECT * FROM a WHERE id = ?;\n\n\
                    INSERT INTO b VALUES (1, 'x;y'); -- calls: 3\n\
                    /* no count */ SELECT 1 FROM c";
        let listed = split_queries(text).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0], Listed { sql: "SELECT * FROM a WHERE id = ?".into(), calls: 12000.0 });
        assert_eq!(listed[1].sql, "INSERT INTO b VALUES (1, 'x;y')");
        assert_eq!(listed[1].calls, 1.0, "a count after the `;` belongs to the next statement");
        assert_eq!(listed[2].calls, 3.0);
        assert!(split_queries("-- calls: many\nSELECT 1;").unwrap_err().to_string().contains("number of calls"));
    }

    #[test]
    fn writes_name_their_table() {
        assert_eq!(written_table("INSERT INTO Events (k) VALUES ($1)", true).as_deref(), Some("events"));
        assert_eq!(written_table("UPDATE s.users SET n = $1 WHERE id = $2", true).as_deref(), Some("users"));
        assert_eq!(written_table("DELETE FROM posts WHERE id = ?", false).as_deref(), Some("posts"));
        assert_eq!(written_table("SELECT 1", true), None);
        assert!(
            is_read(" select 1") && is_read("WITH a AS (SELECT 1) SELECT * FROM a") && !is_read("UPDATE t SET x = 1")
        );
    }

    #[test]
    fn postgres_parameters_bind_highest_first() {
        let sql = "SELECT * FROM t WHERE a = $1 AND b = $10 AND c = $2";
        let mut values: Vec<Option<String>> = (1..=10).map(|i| Some(format!("v{i}"))).collect();
        values[1] = Some("it's".into());
        values[2] = None;
        assert_eq!(bind_postgres(sql, &values), "SELECT * FROM t WHERE a = 'v1' AND b = 'v10' AND c = 'it''s'");
    }

    #[test]
    fn p99_is_a_rank_of_the_samples() {
        let t = summarize((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!(t.p99_ms, 99.0);
        assert_eq!(t.mean_ms, 50.5);
        assert!(summarize(Vec::new()).is_none());
    }
}
