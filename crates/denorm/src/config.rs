//! The configuration file (TOML). Paths in it are relative to the file.
//!
//! ```toml
//! views = ["views.sql"]                # files of CREATE MATERIALIZED VIEW statements
//! [source]
//! url = "sqlite://app.db"              # or sqlite:///abs/app.db, or postgres://user:pw@host:port/db, or "host=… dbname=… user=… password=…"
//! init = "schema.sql"                  # SQLite only, optional: SQL that creates the database when the file does not exist
//! slot = "denorm"                      # PostgreSQL only, optional: the replication slot's name
//! publication = "denorm"               # PostgreSQL only, optional: the publication's name
//! max_retained_wal = "1GB"             # PostgreSQL only, optional: warn when the slot retains more WAL
//! [server]
//! listen = "127.0.0.1:7878"            # optional
//! cors_origins = ["https://app.example"] # optional: origins browsers may read from ("*": any); default none
//! header_timeout = "10s"               # optional: a request head must arrive within this (slowloris)
//! idle_timeout = "60s"                 # optional: an idle keep-alive connection is closed after this
//! max_connections = 1024               # optional: connections served at once
//! pg_listen = "127.0.0.1:6875"         # optional: the PostgreSQL wire protocol (off when absent; [auth] applies)
//! pg_tls_cert = "server.crt"           # optional, with pg_tls_key: TLS for the wire protocol (PEM files)
//! pg_tls_key = "server.key"
//! [engine]
//! max_memory = "8GB"                   # optional: budget for operator state (see `EngineConfig`)
//! state_dir = "app.state"              # optional: the durable state directory (default: <config stem>.state)
//! checkpoint_interval = "5m"           # optional: periodic checkpoints of the views' state ("off": at shutdown only)
//! drift_sample = 16                    # optional: keys per view compared with the source each drift_every (0: off)
//! drift_every = "60s"                  # optional: the drift sampler's period
//! ```
//!
//! Every error names the file and the line:column of the offending key or
//! value, so a typo never turns into a silently ignored setting.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use denorm_types::Dialect;
use serde::Deserialize;
use toml::Spanned;

mod auth;
pub mod checkpoint;
pub mod drift;
pub mod sink;

pub use auth::AuditTarget;

/// Where the HTTP server listens when `[server] listen` is absent.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// A validated configuration with every path resolved against the config
/// file's directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file, as given.
    pub file: PathBuf,
    pub views: Vec<ViewsFile>,
    pub source: SourceConfig,
    pub server: ServerConfig,
    pub engine: EngineConfig,
    /// `[auth]`: token verification and per-role grants (`None`: every
    /// reader reads everything, as before).
    pub auth: Option<denorm_serve::auth::Auth>,
    /// `[audit]`: where one JSON line per read goes.
    pub audit: Option<AuditTarget>,
    /// `[[sink]]`: where the views are also written (see [`sink`]).
    pub sinks: Vec<sink::SinkSettings>,
}

/// `[engine]`: how the engine may use the machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineConfig {
    /// `max_memory`: a budget for the operators' state, in bytes. At start,
    /// `denorm run` refuses views whose estimated state (the estimate
    /// `denorm check` prints) exceeds it; while running, when the exact
    /// state passes it, the view holding the most state fails (the others
    /// go on). `None`: no budget.
    pub max_memory: Option<u64>,
    /// `state_dir`: where the captured input rows and the source position
    /// are kept durably, so that a restart resumes without reading the
    /// source tables (see `state_dir.rs`). Default: `<config stem>.state`
    /// beside the configuration file.
    pub state_dir: PathBuf,
    /// `drift_sample`, `drift_every`: the continuous drift sampler.
    pub drift: drift::DriftConfig,
    /// `checkpoint_interval`: periodic checkpoints (`None`: off; see
    /// [`checkpoint`]).
    pub checkpoint_interval: Option<std::time::Duration>,
}

/// A file of `CREATE MATERIALIZED VIEW` statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewsFile {
    pub path: PathBuf,
    /// Where the config file lists it.
    pub listed_at: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    Sqlite(SqliteSource),
    Postgres(PostgresSource),
}

impl SourceConfig {
    /// The SQL dialect views are planned in: the source's own.
    pub fn dialect(&self) -> Dialect {
        match self {
            SourceConfig::Sqlite(_) => Dialect::Sqlite,
            SourceConfig::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Where the config file sets `[source] url`.
    pub fn url_at(&self) -> Location {
        match self {
            SourceConfig::Sqlite(s) => s.url_at,
            SourceConfig::Postgres(p) => p.url_at,
        }
    }

    /// What `denorm_source::open` needs of it.
    pub fn capture(&self) -> denorm_source::SourceConfig {
        match self {
            SourceConfig::Sqlite(s) => {
                denorm_source::SourceConfig::Sqlite(denorm_source::SqliteConfig { path: s.path.clone() })
            }
            SourceConfig::Postgres(p) => denorm_source::SourceConfig::Postgres(denorm_source::PostgresConfig {
                url: p.url.clone(),
                names: p.names(),
            }),
        }
    }
}

/// The slot retains more WAL than this → a loud warning (log, `/health`).
pub const DEFAULT_MAX_RETAINED_WAL: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSource {
    /// `postgres://user:password@host:port/database`, as written.
    pub url: String,
    /// The replication slot and publication denorm owns.
    pub slot: String,
    pub publication: String,
    /// Warning threshold for the WAL the slot keeps on the server, in bytes.
    pub max_retained_wal: u64,
    /// Where the config file sets `[source] url`.
    pub url_at: Location,
}

impl PostgresSource {
    /// The publication and slot names, as `denorm_source` takes them.
    pub fn names(&self) -> denorm_source::postgres::Names {
        denorm_source::postgres::Names { publication: self.publication.clone(), slot: self.slot.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSource {
    /// The database file.
    pub path: PathBuf,
    /// SQL run once to create the database when `path` does not exist (for
    /// examples and tests; a real deployment points at an existing database).
    pub init: Option<PathBuf>,
    /// Where the config file sets `[source] url`.
    pub url_at: Location,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `cors_origins`, `header_timeout`, `idle_timeout`, `max_connections`:
    /// how the HTTP server treats browsers and slow or idle connections.
    pub http: denorm_serve::ServeOptions,
    /// Where the PostgreSQL wire protocol listens; `None`: not served.
    pub pg_listen: Option<SocketAddr>,
    /// `pg_tls_cert` and `pg_tls_key`: TLS for the wire protocol.
    pub pg_tls: Option<PgTls>,
}

/// The certificate chain and private key (PEM) of the wire protocol's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A 1-based line:column position in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },

    /// Malformed TOML, an unknown key, a wrong type, a missing key or a value
    /// denorm cannot use.
    #[error("{}:{at}: {message}{}", path.display(), hint_suffix(hint))]
    Invalid { path: PathBuf, at: Location, message: String, hint: Option<String> },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default()
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.to_path_buf(), error })?;
    parse(&text, path)
}

/// Validates configuration `text` read from `path` (which only serves to
/// resolve relative paths and to name the file in errors).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |span: Option<Range<usize>>, message: String, hint: Option<String>| ConfigError::Invalid {
        path: path.to_path_buf(),
        at: span.map(|s| location(text, s.start)).unwrap_or(Location { line: 1, column: 1 }),
        message,
        hint,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let hint = e
            .message()
            .contains("unknown field")
            .then(|| "denorm refuses keys it does not know rather than ignore them; check the spelling".to_string());
        invalid(e.span(), e.message().trim_end().to_string(), hint)
    })?;
    let base = path.parent().unwrap_or(Path::new(""));

    if raw.views.get_ref().is_empty() {
        return Err(invalid(
            Some(raw.views.span()),
            "views is empty".to_string(),
            Some("list at least one file of CREATE MATERIALIZED VIEW statements, e.g. views = [\"views.sql\"]".into()),
        ));
    }
    let views = raw
        .views
        .get_ref()
        .iter()
        .map(|v| ViewsFile { path: base.join(v.get_ref()), listed_at: location(text, v.span().start) })
        .collect();

    let url_at = location(text, raw.source.url.span().start);
    let url = raw.source.url.get_ref();
    let source = if is_postgres(url) {
        if let Some(init) = &raw.source.init {
            return Err(invalid(
                Some(init.span()),
                "[source] init is for SQLite sources only".to_string(),
                Some("create the PostgreSQL schema with your own migrations, then remove init".to_string()),
            ));
        }
        denorm_source::postgres::parse_url(url)
            .map_err(|e| invalid(Some(raw.source.url.span()), e.to_string(), None))?;
        let name = |value: &Option<Spanned<String>>, key: &str| -> Result<String, ConfigError> {
            let Some(value) = value else { return Ok("denorm".to_string()) };
            let text = value.get_ref();
            let valid = !text.is_empty()
                && text.len() <= 63
                && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if valid {
                Ok(text.clone())
            } else {
                Err(invalid(
                    Some(value.span()),
                    format!("invalid {key} name {text:?}"),
                    Some("use 1 to 63 lower-case letters, digits and underscores".to_string()),
                ))
            }
        };
        let max_retained_wal = match &raw.source.max_retained_wal {
            None => DEFAULT_MAX_RETAINED_WAL,
            Some(size) => parse_size(size.get_ref())
                .map_err(|message| invalid(Some(size.span()), message, Some(SIZE_HINT.to_string())))?,
        };
        SourceConfig::Postgres(PostgresSource {
            url: url.clone(),
            slot: name(&raw.source.slot, "slot")?,
            publication: name(&raw.source.publication, "publication")?,
            max_retained_wal,
            url_at,
        })
    } else {
        let db = sqlite_path(url, base)
            .map_err(|(message, hint)| invalid(Some(raw.source.url.span()), message, Some(hint)))?;
        for (key, value) in [
            ("slot", &raw.source.slot),
            ("publication", &raw.source.publication),
            ("max_retained_wal", &raw.source.max_retained_wal),
        ] {
            if let Some(value) = value {
                return Err(invalid(
                    Some(value.span()),
                    format!("[source] {key} is for PostgreSQL sources only"),
                    Some(format!("remove {key}, or point url at a postgres:// database")),
                ));
            }
        }
        let init = raw.source.init.map(|i| base.join(i.get_ref()));
        SourceConfig::Sqlite(SqliteSource { path: db, init, url_at })
    };

    let raw_server = raw.server.unwrap_or_default();
    let http = serve_options(&raw_server).map_err(|(span, message, hint)| invalid(Some(span), message, Some(hint)))?;
    let listen = match raw_server.listen {
        Some(listen) => listen,
        None => DEFAULT_LISTEN.parse().expect("the default listen address parses"),
    };
    let pg_tls = pg_tls(&raw_server, base).map_err(|(span, message, hint)| invalid(Some(span), message, Some(hint)))?;
    let raw_engine = raw.engine.unwrap_or_default();
    let state_dir = match raw_engine.state_dir {
        None => {
            let stem = path.file_stem().map_or("denorm".into(), |s| s.to_string_lossy());
            base.join(format!("{stem}.state"))
        }
        Some(dir) if dir.get_ref().trim().is_empty() => {
            return Err(invalid(
                Some(dir.span()),
                "[engine] state_dir is empty".to_string(),
                Some("name a directory (relative to this file), or remove state_dir for <config>.state".to_string()),
            ))
        }
        Some(dir) => base.join(dir.get_ref()),
    };
    let max_memory = match raw_engine.max_memory {
        None => None,
        Some(size) => match parse_size(size.get_ref()) {
            Ok(0) => {
                return Err(invalid(
                    Some(size.span()),
                    "[engine] max_memory is 0: no view could run".to_string(),
                    Some("give a budget such as \"8GB\", or remove max_memory for none".to_string()),
                ))
            }
            Ok(bytes) => Some(bytes),
            Err(message) => {
                return Err(invalid(
                    Some(size.span()),
                    format!("[engine] max_memory: {message}"),
                    Some(SIZE_HINT.into()),
                ))
            }
        },
    };
    let drift = drift::drift(raw_engine.drift_sample.as_ref(), raw_engine.drift_every.as_ref())
        .map_err(|(span, message, hint)| invalid(Some(span), message, Some(hint)))?;
    let checkpoint_interval = checkpoint::interval(raw_engine.checkpoint_interval.as_ref())
        .map_err(|(span, message, hint)| invalid(Some(span), message, Some(hint)))?;
    let auth = match raw.auth {
        None => None,
        Some(raw) => Some(auth::auth(raw, base).map_err(|(span, message, hint)| invalid(span, message, hint))?),
    };
    let audit = raw.audit.map(|raw| auth::audit(raw, base));
    let sinks = sink::sinks(raw.sink, base, text).map_err(|(span, message, hint)| invalid(span, message, hint))?;
    Ok(Config {
        file: path.to_path_buf(),
        views,
        source,
        server: ServerConfig { listen, http, pg_listen: raw_server.pg_listen, pg_tls },
        engine: EngineConfig { max_memory, state_dir, drift, checkpoint_interval },
        auth,
        audit,
        sinks,
    })
}

/// `[server]`'s HTTP settings, or the span, message and hint of a bad one.
fn serve_options(server: &RawServer) -> Result<denorm_serve::ServeOptions, (Range<usize>, String, String)> {
    let mut options = denorm_serve::ServeOptions::default();
    if let Some(origins) = &server.cors_origins {
        for origin in origins.get_ref() {
            let ok = origin == "*" || origin.starts_with("http://") || origin.starts_with("https://");
            if !ok || origin.ends_with('/') {
                return Err((
                    origins.span(),
                    format!("[server] cors_origins: {origin:?} is not an origin"),
                    "write origins as scheme://host[:port] without a path, e.g. [\"https://app.example\"], or [\"*\"] for any".into(),
                ));
            }
        }
        options.cors_origins = origins.get_ref().clone();
    }
    for (key, value, slot) in [
        ("header_timeout", &server.header_timeout, &mut options.header_timeout),
        ("idle_timeout", &server.idle_timeout, &mut options.idle_timeout),
    ] {
        if let Some(value) = value {
            *slot = parse_duration(value.get_ref()).filter(|d| !d.is_zero()).ok_or_else(|| {
                (
                    value.span(),
                    format!("[server] {key}: invalid duration {:?}", value.get_ref()),
                    "write a positive duration such as \"500ms\", \"10s\", \"2m\" or a number of seconds".into(),
                )
            })?;
        }
    }
    if let Some(max) = &server.max_connections {
        if *max.get_ref() == 0 {
            return Err((
                max.span(),
                "[server] max_connections is 0: no request could be served".into(),
                "give a limit such as 1024".into(),
            ));
        }
        options.max_connections = *max.get_ref();
    }
    Ok(options)
}

/// `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (number, scale) = [("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .into_iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, scale)))
        .unwrap_or((text, 1.0));
    let seconds = number.trim().parse::<f64>().ok()? * scale;
    (0.0..1e9).contains(&seconds).then(|| std::time::Duration::from_secs_f64(seconds))
}

/// `[server] pg_tls_cert`/`pg_tls_key`: both or neither, and only with
/// `pg_listen`; or the offending span, a message and a hint.
fn pg_tls(raw: &RawServer, base: &Path) -> Result<Option<PgTls>, (Range<usize>, String, String)> {
    match (&raw.pg_tls_cert, &raw.pg_tls_key) {
        (None, None) => Ok(None),
        (Some(cert), None) => Err((
            cert.span(),
            "[server] pg_tls_cert is set without pg_tls_key".into(),
            "add pg_tls_key = \"server.key\" (the certificate's private key, PEM)".into(),
        )),
        (None, Some(key)) => Err((
            key.span(),
            "[server] pg_tls_key is set without pg_tls_cert".into(),
            "add pg_tls_cert = \"server.crt\" (the certificate chain, PEM)".into(),
        )),
        (Some(cert), Some(_)) if raw.pg_listen.is_none() => Err((
            cert.span(),
            "[server] pg_tls_cert is set but the wire protocol is off".into(),
            "add pg_listen = \"127.0.0.1:6875\", or remove pg_tls_cert and pg_tls_key".into(),
        )),
        (Some(cert), Some(key)) => Ok(Some(PgTls { cert: base.join(cert.get_ref()), key: base.join(key.get_ref()) })),
    }
}

/// The database path of a `sqlite://` url, or a message and a hint.
/// A PostgreSQL URL, or a libpq `key=value` connection string
/// (`host=db dbname=app user=denorm password=…`).
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || (!url.contains("://") && url.split_whitespace().next().is_some_and(|pair| pair.contains('=')))
}

fn sqlite_path(url: &str, base: &Path) -> Result<PathBuf, (String, String)> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        if rest.is_empty() {
            return Err((
                "the sqlite url names no database file".to_string(),
                "write sqlite://app.db (relative to this file) or sqlite:///abs/path/app.db".to_string(),
            ));
        }
        // `sqlite:///abs` leaves `/abs`, which `join` keeps as is.
        return Ok(base.join(rest));
    }
    Err((
        format!("unsupported source url {:?}", denorm_source::redact(url)),
        "expected sqlite://PATH (relative to this file), sqlite:///ABSOLUTE/PATH, postgres://… or a key=value connection string (host=… dbname=…)".to_string(),
    ))
}

const SIZE_HINT: &str = "write a size such as \"512MB\", \"1GB\" or \"1073741824\" (bytes; kB, MB, GB, TB are powers of 1024, as in postgresql.conf)";

/// A size such as `1GB`: a whole number and an optional unit (B, kB, MB,
/// GB, TB: powers of 1024, as PostgreSQL's own settings count).
fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("invalid size {text:?}"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        _ => return Err(format!("invalid size {text:?}: unknown unit {:?}", unit.trim())),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("size {text:?} is too large"))
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn location(text: &str, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location { line, column: before[line_start..].chars().count() + 1 }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    views: Spanned<Vec<Spanned<String>>>,
    source: RawSource,
    server: Option<RawServer>,
    engine: Option<RawEngine>,
    auth: Option<auth::RawAuth>,
    audit: Option<auth::RawAudit>,
    #[serde(default)]
    sink: Vec<sink::RawSink>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    max_memory: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    drift_sample: Option<Spanned<i64>>,
    drift_every: Option<Spanned<String>>,
    checkpoint_interval: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    url: Spanned<String>,
    init: Option<Spanned<String>>,
    slot: Option<Spanned<String>>,
    publication: Option<Spanned<String>>,
    max_retained_wal: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<SocketAddr>,
    cors_origins: Option<Spanned<Vec<String>>>,
    header_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<usize>>,
    pg_listen: Option<SocketAddr>,
    pg_tls_cert: Option<Spanned<String>>,
    pg_tls_key: Option<Spanned<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_at(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("conf/denorm.toml"))
    }

    /// The `file:line:col: message` of an invalid config.
    fn error_of(text: &str) -> (String, String) {
        match parse_at(text) {
            Err(ConfigError::Invalid { path, at, message, .. }) => (format!("{}:{at}", path.display()), message),
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn full_config_resolves_paths_against_the_config_directory() {
        let config = parse_at(
            "views = [\"views.sql\", \"/abs/more.sql\"]\n\
             [source]\n\
             url = \"sqlite://data/app.db\"\n\
             init = \"schema.sql\"\n\
             [server]\n\
             listen = \"0.0.0.0:9000\"\n",
        )
        .unwrap();
        let paths: Vec<&Path> = config.views.iter().map(|v| v.path.as_path()).collect();
        assert_eq!(paths, vec![Path::new("conf/views.sql"), Path::new("/abs/more.sql")]);
        assert_eq!(config.views[0].listed_at, Location { line: 1, column: 10 });
        let SourceConfig::Sqlite(sqlite) = &config.source else { panic!("a SQLite source") };
        assert_eq!(sqlite.path, Path::new("conf/data/app.db"));
        assert_eq!(sqlite.init.as_deref(), Some(Path::new("conf/schema.sql")));
        assert_eq!(sqlite.url_at, Location { line: 3, column: 7 });
        assert_eq!(config.server.listen, "0.0.0.0:9000".parse().unwrap());
    }

    #[test]
    fn server_http_settings() {
        let base = "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\n[server]\n";
        let config = parse_at(&format!(
            "{base}cors_origins = [\"https://app.example\", \"*\"]\nheader_timeout = \"500ms\"\nidle_timeout = \"2\"\nmax_connections = 8\n"
        ))
        .unwrap();
        let http = &config.server.http;
        assert_eq!(http.cors_origins, vec!["https://app.example".to_string(), "*".to_string()]);
        assert_eq!(http.header_timeout, std::time::Duration::from_millis(500));
        assert_eq!(http.idle_timeout, std::time::Duration::from_secs(2));
        assert_eq!(http.max_connections, 8);
        for (bad, message) in [
            ("cors_origins = [\"app.example\"]", "is not an origin"),
            ("header_timeout = \"soon\"", "header_timeout: invalid duration"),
            ("idle_timeout = \"0s\"", "idle_timeout: invalid duration"),
            ("max_connections = 0", "max_connections is 0"),
        ] {
            let (at, got) = error_of(&format!("{base}{bad}\n"));
            assert!(got.contains(message), "{bad}: {got}");
            assert_eq!(at, "conf/denorm.toml:5:".to_string() + &(bad.find('=').unwrap() + 3).to_string(), "{bad}");
        }
    }

    #[test]
    fn absolute_sqlite_url_and_default_server() {
        let config = parse_at("views = [\"v.sql\"]\n[source]\nurl = \"sqlite:///var/lib/app.db\"\n").unwrap();
        let SourceConfig::Sqlite(sqlite) = &config.source else { panic!("a SQLite source") };
        assert_eq!(sqlite.path, Path::new("/var/lib/app.db"));
        assert_eq!(sqlite.init, None);
        assert_eq!(config.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!((config.server.pg_listen, &config.server.pg_tls), (None, &None));
    }

    #[test]
    fn wire_protocol_listen_address_and_tls_files() {
        let base = "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\n[server]\n";
        let config = parse_at(&format!(
            "{base}pg_listen = \"127.0.0.1:6875\"\npg_tls_cert = \"c.pem\"\npg_tls_key = \"k.pem\"\n"
        ))
        .unwrap();
        assert_eq!(config.server.pg_listen, Some("127.0.0.1:6875".parse().unwrap()));
        let tls = PgTls { cert: PathBuf::from("conf/c.pem"), key: PathBuf::from("conf/k.pem") };
        assert_eq!(config.server.pg_tls, Some(tls));
        let cases = [
            (
                "pg_listen = \"127.0.0.1:6875\"\npg_tls_cert = \"c.pem\"\n",
                "conf/denorm.toml:6:15",
                "without pg_tls_key",
            ),
            (
                "pg_listen = \"127.0.0.1:6875\"\npg_tls_key = \"k.pem\"\n",
                "conf/denorm.toml:6:14",
                "without pg_tls_cert",
            ),
            ("pg_tls_cert = \"c.pem\"\npg_tls_key = \"k.pem\"\n", "conf/denorm.toml:5:15", "wire protocol is off"),
            ("pg_listen = \"6875\"\n", "conf/denorm.toml:5:13", "socket address"),
        ];
        for (server, at, message) in cases {
            let (location, text) = error_of(&format!("{base}{server}"));
            assert_eq!(location, at, "{server}: {text}");
            assert!(text.contains(message), "{server}: {text}");
        }
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\nurll = \"x\"\n",
                "conf/denorm.toml:4:1",
                "unknown field `urll`",
            ),
            (
                "views = [\"v.sql\"]\nport = 1\n[source]\nurl = \"sqlite://a.db\"\n",
                "conf/denorm.toml:2:1",
                "unknown field `port`",
            ),
            ("views = \"v.sql\"\n[source]\nurl = \"sqlite://a.db\"\n", "conf/denorm.toml:1:9", "invalid type"),
            ("views = [\"v.sql\"]\n[source]\nurl = 5\n", "conf/denorm.toml:3:7", "invalid type"),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\n[server]\nlisten = \"localhost\"\n",
                "conf/denorm.toml:5:10",
                "socket address",
            ),
            ("views = [\"v.sql\"]\n", "conf/denorm.toml:1:1", "missing field `source`"),
            ("[source]\nurl = \"sqlite://a.db\"\n", "conf/denorm.toml:1:1", "missing field `views`"),
            ("views = []\n[source]\nurl = \"sqlite://a.db\"\n", "conf/denorm.toml:1:9", "views is empty"),
            ("views = [\"v.sql\"\n", "conf/denorm.toml:1", ""),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"postgres://u@h/db\"\ninit = \"s.sql\"\n",
                "conf/denorm.toml:4:8",
                "[source] init is for SQLite sources only",
            ),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"postgres://u@h:x/db\"\n",
                "conf/denorm.toml:3:7",
                "invalid PostgreSQL URL",
            ),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"postgres://u@h/db\"\nslot = \"My-Slot\"\n",
                "conf/denorm.toml:4:8",
                "invalid slot name \"My-Slot\"",
            ),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"postgres://u@h/db\"\npublication = \"\"\n",
                "conf/denorm.toml:4:15",
                "invalid publication name",
            ),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"postgres://u@h/db\"\nmax_retained_wal = \"1 parsec\"\n",
                "conf/denorm.toml:4:20",
                "unknown unit \"parsec\"",
            ),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"postgres://u@h/db\"\nmax_retained_wal = 5\n",
                "conf/denorm.toml:4:20",
                "invalid type",
            ),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\nslot = \"s\"\n",
                "conf/denorm.toml:4:8",
                "[source] slot is for PostgreSQL sources only",
            ),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\nmax_retained_wal = \"1GB\"\n",
                "conf/denorm.toml:4:20",
                "[source] max_retained_wal is for PostgreSQL sources only",
            ),
            (
                "views = [\"v.sql\"]\n[source]\nurl = \"mysql://h/db\"\n",
                "conf/denorm.toml:3:7",
                "unsupported source url",
            ),
            ("views = [\"v.sql\"]\n[source]\nurl = \"sqlite://\"\n", "conf/denorm.toml:3:7", "names no database file"),
        ];
        for (text, at, message) in cases {
            let (got_at, got_message) = error_of(text);
            assert!(got_at.starts_with(at), "{text:?}: position {got_at}, expected {at}");
            assert!(got_message.contains(message), "{text:?}: message {got_message:?}, expected {message:?}");
        }
    }

    #[test]
    fn display_has_position_and_hint() {
        let err =
            parse_at("views = [\"v.sql\"]\n[source]\nurl = \"postgresql://h/db\"\ninit = \"s.sql\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "conf/denorm.toml:4:8: [source] init is for SQLite sources only\n  \
             hint: create the PostgreSQL schema with your own migrations, then remove init"
        );
    }

    /// A libpq `key=value` connection string is a PostgreSQL source; an
    /// unsupported url is refused without printing its password.
    #[test]
    fn key_value_connection_strings_and_refusals_hide_the_password() {
        let text = "views = [\"v.sql\"]\n[source]\nurl = \"host=db dbname=app user=ada password='p w'\"\n";
        let config = parse_at(text).unwrap();
        let SourceConfig::Postgres(pg) = &config.source else { panic!("a PostgreSQL source") };
        assert_eq!(pg.url, "host=db dbname=app user=ada password='p w'");
        let err = parse_at("views = [\"v.sql\"]\n[source]\nurl = \"mysql://ada:hunter2@db/app\"\n").unwrap_err();
        assert!(err.to_string().contains("mysql://ada:***@db/app") && !err.to_string().contains("hunter2"), "{err}");
        let err = parse_at("views = [\"v.sql\"]\n[source]\nurl = \"host=db port=x password=hunter2\"\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn postgres_urls_with_defaults_and_options() {
        for scheme in ["postgres", "postgresql"] {
            let text = format!("views = [\"v.sql\"]\n[source]\nurl = \"{scheme}://ada:pw@db:5433/app\"\n");
            let config = parse_at(&text).unwrap();
            let SourceConfig::Postgres(pg) = &config.source else { panic!("a PostgreSQL source") };
            assert_eq!(pg.url, format!("{scheme}://ada:pw@db:5433/app"));
            assert_eq!((pg.slot.as_str(), pg.publication.as_str()), ("denorm", "denorm"));
            assert_eq!(pg.max_retained_wal, DEFAULT_MAX_RETAINED_WAL);
            assert_eq!(pg.url_at, Location { line: 3, column: 7 });
            assert_eq!(config.source.dialect(), Dialect::Postgres);
        }
        let config = parse_at(
            "views = [\"v.sql\"]\n[source]\nurl = \"postgres://db/app\"\nslot = \"app_denorm\"\n\
             publication = \"app_pub\"\nmax_retained_wal = \"512MB\"\n",
        )
        .unwrap();
        let SourceConfig::Postgres(pg) = &config.source else { panic!("a PostgreSQL source") };
        assert_eq!(
            (pg.slot.as_str(), pg.publication.as_str(), pg.max_retained_wal),
            ("app_denorm", "app_pub", 512 << 20)
        );
    }

    #[test]
    fn sizes() {
        let cases =
            [("0", 0), ("1024", 1024), ("1kB", 1024), ("2 MB", 2 << 20), ("1GB", 1 << 30), ("3tb", 3 << 40), ("7B", 7)];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        for bad in ["", "GB", "1.5GB", "-1", "1 parsec", "99999999999TB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_memory_is_a_size() {
        let base = "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\n";
        assert_eq!(parse_at(base).unwrap().engine.max_memory, None);
        let config = parse_at(&format!("{base}[engine]\nmax_memory = \"8GB\"\n")).unwrap();
        assert_eq!(config.engine.max_memory, Some(8 << 30));
        let config = parse_at(&format!("{base}[engine]\nmax_memory = \"512 MB\"\n")).unwrap();
        assert_eq!(config.engine.max_memory, Some(512 << 20));
        let cases = [
            ("max_memory = \"8 gigs\"", "[engine] max_memory: invalid size \"8 gigs\": unknown unit \"gigs\""),
            ("max_memory = \"0\"", "[engine] max_memory is 0"),
            ("max_memory = 8", "invalid type"),
            ("max_memroy = \"8GB\"", "unknown field `max_memroy`"),
        ];
        for (line, message) in cases {
            let text = format!("{base}[engine]\n{line}\n");
            let (at, got) = error_of(&text);
            assert!(at.starts_with("conf/denorm.toml:5:"), "{line}: at {at}");
            assert!(got.contains(message), "{line}: {got:?}, expected {message:?}");
        }
        let err = parse_at(&format!("{base}[engine]\nmax_memory = \"lots\"\n")).unwrap_err();
        assert!(err.to_string().contains("hint: write a size such as"), "{err}");
    }

    /// The drift sampler: 16 keys a minute by default, 0 turns it off, a
    /// negative count or a bad period is refused at its line.
    #[test]
    fn drift_sampler_settings() {
        let base = "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\n";
        assert_eq!(parse_at(base).unwrap().engine.drift, drift::DriftConfig::default());
        assert_eq!(drift::DriftConfig::default().sample, 16);
        let config = parse_at(&format!("{base}[engine]\ndrift_sample = 0\ndrift_every = \"5m\"\n")).unwrap();
        assert_eq!(config.engine.drift, drift::DriftConfig { sample: 0, every: std::time::Duration::from_secs(300) });
        for (line, message) in [
            ("drift_sample = -1", "[engine] drift_sample = -1 is not a number of keys"),
            ("drift_every = \"often\"", "[engine] drift_every: invalid duration \"often\""),
            ("drift_every = \"0s\"", "[engine] drift_every: invalid duration"),
        ] {
            let (at, got) = error_of(&format!("{base}[engine]\n{line}\n"));
            assert!(at.starts_with("conf/denorm.toml:5:"), "{line}: at {at}");
            assert!(got.contains(message), "{line}: {got:?}, expected {message:?}");
        }
    }

    /// `state_dir` defaults to `<config stem>.state` beside the file and is
    /// relative to it; empty is refused.
    #[test]
    fn state_dir_defaults_beside_the_config() {
        let base = "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\n";
        assert_eq!(parse_at(base).unwrap().engine.state_dir, Path::new("conf/denorm.state"));
        let config = parse_at(&format!("{base}[engine]\nstate_dir = \"var/st\"\n")).unwrap();
        assert_eq!(config.engine.state_dir, Path::new("conf/var/st"));
        let config = parse_at(&format!("{base}[engine]\nstate_dir = \"/abs/st\"\n")).unwrap();
        assert_eq!(config.engine.state_dir, Path::new("/abs/st"));
        let (at, message) = error_of(&format!("{base}[engine]\nstate_dir = \"\"\n"));
        assert_eq!((at.as_str(), message.as_str()), ("conf/denorm.toml:5:13", "[engine] state_dir is empty"));
    }

    #[test]
    fn unreadable_file_is_named() {
        let err = load(Path::new("/nonexistent/denorm.toml")).unwrap_err();
        assert!(err.to_string().starts_with("cannot read config file /nonexistent/denorm.toml: "), "{err}");
    }

    #[test]
    fn location_counts_characters_from_one() {
        let text = "ab\ncé\nx";
        assert_eq!(location(text, 0), Location { line: 1, column: 1 });
        assert_eq!(location(text, 3), Location { line: 2, column: 1 });
        assert_eq!(location(text, text.find('x').unwrap()), Location { line: 3, column: 1 });
        assert_eq!(location(text, 6), Location { line: 2, column: 3 });
        assert_eq!(location(text, 99), Location { line: 3, column: 2 });
    }
}
