//! Statements of a views file: splitting at `;`, parsing each one on its own
//! (so one malformed view does not hide the errors of the next), and the
//! `CREATE MATERIALIZED VIEW name WITH (…) AS` envelope with its options.
//!
//! ```text
//!  file ──tokenize once──► tokens ──split at `;`──► per statement: parse ──► ViewStatement
//! ```
//!
//! Tokens keep their positions in the whole file, so every location reported
//! later is a position in the file, not in the statement.

use std::time::Duration;

use sqlparser::ast::{self, CreateTableOptions, SqlOption};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location as SqlLocation, Token, Tokenizer};

use crate::feed::{FeedOptions, OrderItem};
use crate::source::{location, object_name_start, split_parser_message, Source, Statement};
use crate::{Location, OnStale, PlanError, Refresh};

/// Statements longer than this are refused before parsing: sqlparser builds
/// left-deep trees for operator chains, and dropping a tree tens of
/// thousands of levels deep overflows the stack.
const MAX_TOKENS: usize = 10_000;

const OPTIONS: &str =
    "supported options: key, max_staleness, on_stale, refresh, partition_by, order_by, fanout_limit, retain, index";
const DURATION_HINT: &str = "use a duration such as '500ms', '2s', '1m', '1h' or '1d'";

/// A parsed `CREATE MATERIALIZED VIEW`, not yet planned.
#[derive(Debug)]
pub(crate) struct ViewStatement {
    pub name: String,
    pub name_location: Option<Location>,
    pub key: Option<DeclaredKey>,
    pub max_staleness: Option<Duration>,
    pub on_stale: OnStale,
    pub refresh: Refresh,
    /// `partition_by`, `order_by`, `fanout_limit`, `retain`: a feed view.
    pub feed: Option<FeedOptions>,
    /// `index = 'a, b; c'`: the indexes a sink creates on the view's table
    /// (column names as written), and where the value is.
    pub indexes: (Vec<Vec<String>>, Option<Location>),
    pub query: ast::Query,
    pub select_sql: String,
    /// Where the SELECT starts.
    pub select_start: SqlLocation,
    pub location: Location,
    pub tokens: Statement,
}

/// `WITH (key = 'a, b')`: the names as written and where the value is.
#[derive(Debug)]
pub(crate) struct DeclaredKey {
    pub names: Vec<String>,
    pub location: Option<Location>,
}

/// Tokenizes the whole file and splits it at top-level `;` into statements
/// (empty ones dropped). A tokenizer error stops everything: the rest of the
/// file cannot be split reliably after, e.g., an unterminated string.
pub(crate) fn split(source: &Source<'_>) -> Result<Vec<Statement>, PlanError> {
    let tokens = Tokenizer::new(&GenericDialect {}, source.text)
        .tokenize_with_location()
        .map_err(|e| PlanError::new(format!("syntax error: {}", lower_first(&e.message)), location(e.location)))?;
    let mut statements = Vec::new();
    let mut current = Vec::new();
    for token in tokens {
        if token.token == Token::SemiColon {
            statements.push(Statement { tokens: std::mem::take(&mut current) });
        } else {
            current.push(token);
        }
    }
    statements.push(Statement { tokens: current });
    statements.retain(|s| s.bounds().is_some());
    Ok(statements)
}

/// Parses one statement and checks its envelope and options.
pub(crate) fn parse(statement: Statement, source: &Source<'_>) -> Result<ViewStatement, PlanError> {
    let empty = SqlLocation { line: 0, column: 0 };
    let (start, end) = statement.bounds().unwrap_or((empty, empty));
    let start_location = location(start);
    if statement.significant_count() > MAX_TOKENS {
        return Err(PlanError::new(format!("statement is too long (more than {MAX_TOKENS} tokens)"), start_location));
    }
    let mut parser = Parser::new(&GenericDialect {}).with_tokens_with_locations(statement.tokens.clone());
    // sqlparser reports "found: EOF" without a position: point at the end.
    let parsed = parser.parse_statement().map_err(|e| parser_error(e, location(end).or(start_location)))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(PlanError::new(format!("syntax error at or near \"{}\"", next.token), location(next.span.start)));
    }
    let view = match parsed {
        ast::Statement::CreateView(v) if v.materialized => v,
        ast::Statement::CreateView(_) => {
            return Err(PlanError::new("CREATE VIEW is not supported", start_location)
                .hint("write CREATE MATERIALIZED VIEW: denorm maintains materialized views"))
        }
        _ => {
            return Err(PlanError::new(
                "only CREATE MATERIALIZED VIEW statements are allowed in a views file",
                start_location,
            )
            .detail(format!("found {}", statement_kind(&statement))))
        }
    };
    let name = view_name(&view.name, start_location)?;
    let named = |e: PlanError| PlanError { view: Some(name.clone()), ..e };
    check_envelope(&view, start_location).map_err(named)?;
    let ViewOptions { key, max_staleness, on_stale, refresh, feed, indexes } =
        options(&view.options, start_location).map_err(named)?;
    let select_start = statement
        .find_keyword(object_name_start(&view.name).unwrap_or(start), &[Keyword::AS])
        .and_then(|as_token| {
            statement.comma_list(as_token.span.end, &[]).first().and_then(|t| t.first().map(|t| t.span.start))
        })
        .unwrap_or(start);
    let select_sql = source.slice(select_start, end).unwrap_or_default().to_string();
    Ok(ViewStatement {
        name,
        name_location: object_name_start(&view.name).and_then(location),
        key,
        max_staleness,
        on_stale,
        refresh,
        feed,
        indexes,
        query: *view.query,
        select_sql,
        select_start,
        location: start_location.unwrap_or_default(),
        tokens: statement,
    })
}

fn parser_error(e: ParserError, fallback: Option<Location>) -> PlanError {
    match e {
        ParserError::RecursionLimitExceeded => {
            PlanError::new("syntax error: the statement is nested too deeply", fallback)
        }
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => {
            let (message, at) = split_parser_message(&m);
            PlanError::new(format!("syntax error: {}", lower_first(&message)), at.or(fallback))
        }
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The statement's first two words, e.g. `CREATE TABLE`.
fn statement_kind(statement: &Statement) -> String {
    let words: Vec<String> = statement
        .tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .take(2)
        .map(|t| t.token.to_string().to_uppercase())
        .collect();
    words.join(" ")
}

/// Refuses the clauses of other databases' CREATE VIEW that denorm ignores.
fn check_envelope(view: &ast::CreateView, at: Option<Location>) -> Result<(), PlanError> {
    let refused = [
        (view.or_replace || view.or_alter, "OR REPLACE"),
        (view.temporary, "TEMPORARY"),
        (view.if_not_exists, "IF NOT EXISTS"),
        (!view.columns.is_empty(), "a column list"),
        (view.secure, "SECURE"),
        (!view.cluster_by.is_empty(), "CLUSTER BY"),
        (view.comment.is_some(), "COMMENT"),
        (view.to.is_some(), "TO"),
        (view.copy_grants, "COPY GRANTS"),
        (view.with_no_schema_binding, "WITH NO SCHEMA BINDING"),
        (view.params.is_some(), "ALGORITHM, DEFINER or SQL SECURITY"),
    ];
    match refused.iter().find(|(present, _)| *present) {
        Some((_, what)) => {
            let e = PlanError::new(format!("{what} is not supported in CREATE MATERIALIZED VIEW"), at);
            Err(if *what == "a column list" { e.hint("name the columns with aliases in the SELECT list") } else { e })
        }
        None => Ok(()),
    }
}

fn view_name(name: &ast::ObjectName, at: Option<Location>) -> Result<String, PlanError> {
    let at = object_name_start(name).and_then(location).or(at);
    match name.0.as_slice() {
        [ast::ObjectNamePart::Identifier(ident)] => Ok(ident.value.clone()),
        _ => Err(PlanError::new(format!("view name {name} must be a single identifier"), at)
            .hint("views live in denorm, not in a schema of the source database")),
    }
}

/// The `WITH (…)` options of a view.
#[derive(Debug, Default)]
struct ViewOptions {
    key: Option<DeclaredKey>,
    max_staleness: Option<Duration>,
    on_stale: OnStale,
    refresh: Refresh,
    feed: Option<FeedOptions>,
    indexes: (Vec<Vec<String>>, Option<Location>),
}

/// The feed options as written, before they are checked together.
#[derive(Debug, Default)]
struct RawFeed {
    partition_by: Option<(String, Option<Location>)>,
    order_by: Option<(Vec<OrderItem>, Option<Location>)>,
    fanout_limit: Option<(u64, Option<Location>)>,
    retain: Option<(usize, Option<Location>)>,
    /// The first feed option given, for an error when partition_by is missing.
    first: Option<(String, Option<Location>)>,
}

fn options(options: &CreateTableOptions, at: Option<Location>) -> Result<ViewOptions, PlanError> {
    let list = match options {
        CreateTableOptions::None => return Ok(ViewOptions::default()),
        CreateTableOptions::With(list) => list,
        _ => return Err(PlanError::new("view options must be given as WITH (name = 'value', …)", at).hint(OPTIONS)),
    };
    let mut parsed = ViewOptions::default();
    let mut seen: Vec<String> = Vec::new();
    let mut on_stale_at = None;
    let mut key_at = None;
    let mut feed = RawFeed::default();
    for option in list {
        let SqlOption::KeyValue { key: name, value } = option else {
            return Err(PlanError::new(format!("malformed view option {option}"), at).hint(OPTIONS));
        };
        let name_at = location(name.span.start);
        let lower = name.value.to_ascii_lowercase();
        let numeric = matches!(lower.as_str(), "fanout_limit" | "retain");
        let (text, value_at) =
            string_value(value).or_else(|| numeric.then(|| number_value(value)).flatten()).ok_or_else(|| {
                let what = if numeric { "an integer or a string literal" } else { "a string literal" };
                PlanError::new(format!("the value of option {} must be {what}", name.value), name_at)
            })?;
        if seen.contains(&lower) {
            return Err(PlanError::new(format!("option {} is given more than once", name.value), name_at));
        }
        if matches!(lower.as_str(), "partition_by" | "order_by" | "fanout_limit" | "retain") && feed.first.is_none() {
            feed.first = Some((lower.clone(), name_at));
        }
        match lower.as_str() {
            "key" => {
                parsed.key = Some(parse_key(&text, value_at)?);
                key_at = name_at;
            }
            "partition_by" => feed.partition_by = Some((parse_partition(&text, value_at)?, value_at)),
            "order_by" => feed.order_by = Some((crate::feed::parse_order_by(&text, value_at)?, value_at)),
            "fanout_limit" => feed.fanout_limit = Some((parse_count(&lower, &text, value_at)?, value_at)),
            "retain" => {
                let retain = parse_count(&lower, &text, value_at)?;
                if retain == 0 {
                    return Err(PlanError::new("retain must be at least 1", value_at)
                        .hint("leave retain out to serve every row of a partition"));
                }
                let retain = usize::try_from(retain).map_err(|_| PlanError::new("retain is too large", value_at))?;
                feed.retain = Some((retain, value_at));
            }
            "max_staleness" => parsed.max_staleness = Some(parse_duration(&text, value_at)?),
            "on_stale" => {
                parsed.on_stale = parse_on_stale(&text, value_at)?;
                on_stale_at = value_at;
            }
            "refresh" => parsed.refresh = parse_refresh(&text, value_at)?,
            "index" => parsed.indexes = (parse_indexes(&text, value_at)?, value_at),
            _ => return Err(PlanError::new(format!("unknown view option \"{}\"", name.value), name_at).hint(OPTIONS)),
        }
        seen.push(lower);
    }
    if parsed.on_stale == OnStale::Fallback && parsed.max_staleness.is_none() {
        return Err(PlanError::new("on_stale = 'fallback' needs a staleness budget", on_stale_at).hint(
            "add max_staleness = '1s' (or another duration): beyond it, key lookups are answered by the source",
        ));
    }
    parsed.feed = feed_options(feed, &parsed, key_at, on_stale_at)?;
    Ok(parsed)
}

/// Checks the feed options together: `partition_by` needs `order_by` and
/// `fanout_limit`, the others need `partition_by`.
fn feed_options(
    feed: RawFeed,
    parsed: &ViewOptions,
    key_at: Option<Location>,
    on_stale_at: Option<Location>,
) -> Result<Option<FeedOptions>, PlanError> {
    let Some((partition_by, partition_at)) = feed.partition_by else {
        return match feed.first {
            None => Ok(None),
            Some((name, at)) => Err(PlanError::new(format!("option {name} needs partition_by"), at)
                .hint("a feed view names its partition column with partition_by = 'owner_id'")),
        };
    };
    let Some((order_by, order_at)) = feed.order_by else {
        return Err(PlanError::new("a feed view (partition_by) needs order_by", partition_at)
            .hint("e.g. order_by = 'created_at DESC, post_id DESC': the order in which a partition is served"));
    };
    let Some((fanout_limit, _)) = feed.fanout_limit else {
        return Err(PlanError::new("a feed view (partition_by) needs fanout_limit", partition_at).hint(
            "e.g. fanout_limit = 1000: content whose fan-out exceeds it is stored once and merged in at read time",
        ));
    };
    if parsed.key.is_some() {
        return Err(PlanError::new("key cannot be declared for a feed view", key_at)
            .hint("a feed view is read by its partition column (partition_by) in order_by order; leave key out"));
    }
    if parsed.on_stale == OnStale::Fallback {
        return Err(PlanError::new("on_stale = 'fallback' is not supported for a feed view", on_stale_at)
            .hint("leave on_stale out: a feed is always served from its published state"));
    }
    Ok(Some(FeedOptions {
        partition_by,
        partition_at,
        order_by,
        order_at,
        fanout_limit,
        retain: feed.retain.map(|(r, _)| r),
    }))
}

fn parse_partition(text: &str, at: Option<Location>) -> Result<String, PlanError> {
    let name = text.trim();
    if name.is_empty() || name.contains(',') {
        return Err(PlanError::new(format!("malformed partition_by '{text}'"), at)
            .hint("name one output column, e.g. partition_by = 'owner_id'"));
    }
    Ok(name.to_string())
}

/// A non-negative integer option (`fanout_limit = 1000` or `'1000'`).
fn parse_count(name: &str, text: &str, at: Option<Location>) -> Result<u64, PlanError> {
    text.trim().parse::<u64>().ok().filter(|n| i64::try_from(*n).is_ok()).ok_or_else(|| {
        PlanError::new(format!("invalid {name} '{text}'"), at)
            .hint(format!("{name} is a non-negative integer, e.g. {name} = 1000"))
    })
}

fn number_value(value: &ast::Expr) -> Option<(String, Option<Location>)> {
    match value {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => Some((n.clone(), location(v.span.start))),
            _ => None,
        },
        ast::Expr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => {
            number_value(expr).map(|(n, at)| (format!("-{n}"), at))
        }
        _ => None,
    }
}

fn parse_on_stale(text: &str, at: Option<Location>) -> Result<OnStale, PlanError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "serve" => Ok(OnStale::Serve),
        "fallback" => Ok(OnStale::Fallback),
        _ => Err(PlanError::new(format!("invalid on_stale '{text}'"), at)
            .hint("use 'serve' (answer from the view, the default) or 'fallback' (answer key lookups from the source while beyond max_staleness)")),
    }
}

fn parse_refresh(text: &str, at: Option<Location>) -> Result<Refresh, PlanError> {
    if text.trim().eq_ignore_ascii_case("on_change") {
        return Ok(Refresh::OnChange);
    }
    let every = parse_duration(text, at).map_err(|_| {
        PlanError::new(format!("invalid refresh '{text}'"), at)
            .hint("use 'on_change' (the default) or a duration such as '5m', '1h' or '1d'")
    })?;
    if every.is_zero() {
        return Err(
            PlanError::new("refresh must be longer than 0", at).hint("use 'on_change' to refresh on every change")
        );
    }
    Ok(Refresh::Every(every))
}

fn string_value(value: &ast::Expr) -> Option<(String, Option<Location>)> {
    match value {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some((s.clone(), location(v.span.start))),
            _ => None,
        },
        _ => None,
    }
}

fn parse_key(text: &str, at: Option<Location>) -> Result<DeclaredKey, PlanError> {
    let names: Vec<String> = text.split(',').map(|n| n.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(PlanError::new(format!("malformed key '{text}'"), at)
            .hint("list output column names separated by commas, e.g. key = 'product_id, rating'"));
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(PlanError::new(format!("column \"{n}\" appears more than once in the key"), at));
        }
    }
    Ok(DeclaredKey { names, location: at })
}

/// `index = 'a, b; c'`: indexes separated by `;`, each a list of output
/// column names separated by commas.
fn parse_indexes(text: &str, at: Option<Location>) -> Result<Vec<Vec<String>>, PlanError> {
    let mut indexes = Vec::new();
    for index in text.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let names: Vec<String> = index.split(',').map(|n| n.trim().to_string()).collect();
        if names.iter().any(String::is_empty) {
            return Err(PlanError::new(format!("malformed index '{index}'"), at)
                .hint("list output column names separated by commas, indexes by semicolons: index = 'a, b; c'"));
        }
        indexes.push(names);
    }
    if indexes.is_empty() {
        return Err(PlanError::new("option index names no column", at)
            .hint("list output column names separated by commas, indexes by semicolons: index = 'a, b; c'"));
    }
    Ok(indexes)
}

/// `'500ms'`, `'2s'`, `'1m'`, `'1h'`, `'1d'` (whitespace before the unit allowed).
pub(crate) fn parse_duration(text: &str, at: Option<Location>) -> Result<Duration, PlanError> {
    let invalid = || PlanError::new(format!("invalid max_staleness '{text}'"), at).hint(DURATION_HINT);
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let amount: u64 = t[..digits].parse().map_err(|_| invalid())?;
    let millis_per_unit: u64 = match t[digits..].trim_start() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    let millis = amount.checked_mul(millis_per_unit).ok_or_else(invalid)?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok =
            [("500ms", 500), ("2s", 2_000), ("1m", 60_000), ("1h", 3_600_000), ("1d", 86_400_000), (" 3 s ", 3_000)];
        for (text, millis) in ok {
            assert_eq!(parse_duration(text, None).unwrap(), Duration::from_millis(millis), "{text}");
        }
        for bad in ["", "s", "2", "2x", "-1s", "1.5s", "99999999999999999999d", "184467440737095517d"] {
            assert!(parse_duration(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert_eq!(parse_key("a, b", None).unwrap().names, vec!["a", "b"]);
        assert!(parse_key("a,,b", None).is_err());
        assert!(parse_key("a, a", None).is_err());
    }
}
