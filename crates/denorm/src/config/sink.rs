//! `[[sink]]`: where the maintained views are also written (see
//! `denorm-sink`).
//!
//! ```toml
//! [[sink]]
//! name = "app_db"                     # optional: default "<kind>", "<kind>_2", … in file order
//! kind = "postgres"                   # postgres | sqlite | redis
//! url = "postgres://app@db/app"       # postgres, redis
//! schema = "denorm"                   # postgres: the tables' schema (default "denorm")
//! # path = "read_models.db"           # sqlite: the file (may be the source database itself)
//! views = ["product_stats"]
//! queue_rows = 1000000                # optional: queued view changes before the sink is "behind"
//! reconcile_every = "60s"             # optional: compare the sink with the views this often
//! reconcile_sample = 1000             # optional, with reconcile_every: random keys per view (default: every row)
//! repair = true                       # with reconcile_every: also write the differences (default false)
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use denorm_sink::Sink;
use serde::Deserialize;
use toml::Spanned;

use super::auth::Invalid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSink {
    name: Option<Spanned<String>>,
    kind: Spanned<String>,
    url: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    schema: Option<Spanned<String>>,
    views: Spanned<Vec<String>>,
    queue_rows: Option<Spanned<usize>>,
    reconcile_every: Option<Spanned<String>>,
    reconcile_sample: Option<Spanned<usize>>,
    repair: Option<bool>,
    /// redis: "hash" (default) or "json".
    format: Option<Spanned<String>>,
    /// redis: defensive expiry of every key written.
    ttl: Option<Spanned<String>>,
    /// redis: prepended to every key.
    prefix: Option<Spanned<String>>,
}

/// One `[[sink]]` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSettings {
    pub name: String,
    pub kind: SinkKind,
    /// The views written, as named in the file.
    pub views: Vec<String>,
    /// Where `views` is in the file (for errors found once views are planned).
    pub views_at: super::Location,
    pub queue_rows: usize,
    pub reconcile_every: Option<Duration>,
    /// `reconcile_sample`: random keys compared per view at each periodic
    /// reconcile (`None`: every row).
    pub reconcile_sample: Option<usize>,
    pub repair: bool,
}

/// The kind of a sink and its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    Postgres { url: String, schema: String },
    Sqlite { path: PathBuf },
    Redis(denorm_sink::redis::RedisOptions),
}

impl SinkKind {
    pub fn name(&self) -> &'static str {
        match self {
            SinkKind::Postgres { .. } => "postgres",
            SinkKind::Sqlite { .. } => "sqlite",
            SinkKind::Redis { .. } => "redis",
        }
    }
}

/// The one place a sink kind becomes a [`Sink`].
pub fn open_sink(kind: &SinkKind) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match kind {
        SinkKind::Postgres { url, schema } => {
            Box::new(denorm_sink::postgres::PostgresSink::new(url.clone(), schema.clone()))
        }
        SinkKind::Sqlite { path } => Box::new(denorm_sink::sqlite::SqliteSink::new(path.clone())),
        SinkKind::Redis(options) => Box::new(
            denorm_sink::redis::RedisSink::new(options.clone()).map_err(|e| anyhow::anyhow!("redis sink: {e}"))?,
        ),
    })
}

/// Checks every `[[sink]]`; paths are relative to `base`.
pub(super) fn sinks(raw: Vec<RawSink>, base: &Path, text: &str) -> Result<Vec<SinkSettings>, Invalid> {
    let mut out: Vec<SinkSettings> = Vec::new();
    for raw in raw {
        let settings = sink(raw, base, text, &out)?;
        out.push(settings);
    }
    Ok(out)
}

fn err(span: Range<usize>, message: String, hint: &str) -> Invalid {
    (Some(span), message, Some(hint.to_owned()))
}

fn sink(raw: RawSink, base: &Path, text: &str, before: &[SinkSettings]) -> Result<SinkSettings, Invalid> {
    let kind_span = raw.kind.span();
    let forbid = |key: &str, value: Option<Range<usize>>, kind: &str| match value {
        Some(span) => {
            Err(err(span, format!("[[sink]] {key} is not a setting of a {kind} sink"), &format!("remove {key}")))
        }
        None => Ok(()),
    };
    let url = |raw_url: &Option<Spanned<String>>, kind: &str, example: &str| {
        raw_url.as_ref().map(|u| u.get_ref().clone()).ok_or_else(|| {
            err(kind_span.clone(), format!("a {kind} sink needs url"), &format!("add url = \"{example}\""))
        })
    };
    if raw.kind.get_ref() != "redis" {
        for (key, value) in [("format", &raw.format), ("ttl", &raw.ttl), ("prefix", &raw.prefix)] {
            forbid(key, value.as_ref().map(Spanned::span), raw.kind.get_ref())?;
        }
    }
    let kind = match raw.kind.get_ref().as_str() {
        "postgres" => {
            forbid("path", raw.path.as_ref().map(Spanned::span), "postgres")?;
            let url = url(&raw.url, "postgres", "postgres://app@db/app")?;
            if let Err(e) = denorm_source::postgres::parse_url(&url) {
                let span = raw.url.as_ref().map_or(kind_span.clone(), Spanned::span);
                return Err(err(
                    span,
                    format!("[[sink]] url: {e}"),
                    "write postgres://user@host/db or host=… dbname=…",
                ));
            }
            let schema = raw.schema.as_ref().map_or("denorm".to_owned(), |s| s.get_ref().clone());
            if let Some(s) = &raw.schema {
                let valid = !schema.is_empty()
                    && schema.len() <= 63
                    && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !valid {
                    return Err(err(
                        s.span(),
                        format!("invalid schema name {schema:?}"),
                        "use 1 to 63 lower-case letters, digits and underscores",
                    ));
                }
            }
            SinkKind::Postgres { url, schema }
        }
        "sqlite" => {
            forbid("url", raw.url.as_ref().map(Spanned::span), "sqlite")?;
            forbid("schema", raw.schema.as_ref().map(Spanned::span), "sqlite")?;
            let path = raw.path.as_ref().filter(|p| !p.get_ref().trim().is_empty()).ok_or_else(|| {
                err(
                    kind_span.clone(),
                    "a sqlite sink needs path".into(),
                    "add path = \"read_models.db\" (relative to this file; may be the source database)",
                )
            })?;
            SinkKind::Sqlite { path: base.join(path.get_ref()) }
        }
        "redis" => {
            forbid("path", raw.path.as_ref().map(Spanned::span), "redis")?;
            forbid("schema", raw.schema.as_ref().map(Spanned::span), "redis")?;
            SinkKind::Redis(redis_options(&raw, url(&raw.url, "redis", "redis://127.0.0.1:6379")?)?)
        }
        other => {
            return Err(err(
                kind_span,
                format!("unknown sink kind {other:?}"),
                "kind is one of \"postgres\", \"sqlite\", \"redis\"",
            ))
        }
    };
    let name = match &raw.name {
        Some(name) => {
            let n = name.get_ref();
            let valid = !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(err(name.span(), format!("invalid sink name {n:?}"), "use letters, digits, '_' and '-'"));
            }
            n.clone()
        }
        None => {
            let same = before.iter().filter(|s| s.kind.name() == kind.name()).count();
            if same == 0 {
                kind.name().to_owned()
            } else {
                format!("{}_{}", kind.name(), same + 1)
            }
        }
    };
    if before.iter().any(|s| s.name == name) {
        let span = raw.name.as_ref().map_or(kind_span.clone(), Spanned::span);
        return Err(err(span, format!("two sinks are named {name:?}"), "give each [[sink]] its own name"));
    }
    if raw.views.get_ref().is_empty() {
        return Err(err(
            raw.views.span(),
            "[[sink]] views is empty".into(),
            "list the views to write, e.g. views = [\"product_stats\"]",
        ));
    }
    let queue_rows = match &raw.queue_rows {
        Some(q) if *q.get_ref() == 0 => {
            return Err(err(
                q.span(),
                "[[sink]] queue_rows is 0".into(),
                "give a bound such as 1000000, or remove queue_rows",
            ))
        }
        Some(q) => *q.get_ref(),
        None => denorm_sink::QUEUE_ROWS,
    };
    let reconcile_every = match &raw.reconcile_every {
        None => None,
        Some(every) => Some(super::parse_duration(every.get_ref()).filter(|d| !d.is_zero()).ok_or_else(|| {
            err(
                every.span(),
                format!("[[sink]] reconcile_every: invalid duration {:?}", every.get_ref()),
                "write a duration such as \"60s\" or \"5m\"",
            )
        })?),
    };
    let reconcile_sample = match &raw.reconcile_sample {
        Some(n) if reconcile_every.is_none() => {
            return Err(err(
                n.span(),
                "[[sink]] reconcile_sample is set without reconcile_every".into(),
                "add reconcile_every = \"60s\", or remove reconcile_sample",
            ))
        }
        Some(n) if *n.get_ref() == 0 => {
            return Err(err(
                n.span(),
                "[[sink]] reconcile_sample is 0".into(),
                "give a number of keys such as 1000, or remove reconcile_sample to compare every row",
            ))
        }
        other => other.as_ref().map(|n| *n.get_ref()),
    };
    if raw.repair.is_some() && reconcile_every.is_none() {
        return Err(err(
            kind_span,
            "[[sink]] repair is set without reconcile_every".into(),
            "add reconcile_every = \"60s\", or remove repair",
        ));
    }
    Ok(SinkSettings {
        name,
        kind,
        views: raw.views.get_ref().clone(),
        views_at: super::location(text, raw.views.span().start),
        queue_rows,
        reconcile_every,
        reconcile_sample,
        repair: raw.repair.unwrap_or(false),
    })
}

/// A redis sink's own settings: `format`, `ttl`, `prefix`.
fn redis_options(raw: &RawSink, url: String) -> Result<denorm_sink::redis::RedisOptions, Invalid> {
    use denorm_sink::redis::{Format, RedisOptions};
    let format = match raw.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
        None | Some(("hash", _)) => Format::Hash,
        Some(("json", _)) => Format::Json,
        Some((other, span)) => {
            return Err(err(
                span,
                format!("[[sink]] format: unknown format {other:?}"),
                "format is \"hash\" or \"json\"",
            ))
        }
    };
    let ttl = match &raw.ttl {
        None => None,
        Some(ttl) => Some(super::parse_duration(ttl.get_ref()).filter(|d| !d.is_zero()).ok_or_else(|| {
            err(
                ttl.span(),
                format!("[[sink]] ttl: invalid duration {:?}", ttl.get_ref()),
                "write a duration such as \"1h\" or \"10m\", or remove ttl (keys then never expire)",
            )
        })?),
    };
    let prefix = raw.prefix.as_ref().map_or(String::new(), |p| p.get_ref().clone());
    let options = RedisOptions { url, prefix, format, ttl };
    if let Err(e) = denorm_sink::redis::RedisSink::new(options.clone()) {
        let span = raw.url.as_ref().map_or(raw.kind.span(), Spanned::span);
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
        return Err(err(
            span,
            format!("[[sink]] url: not a Redis URL{cause}"),
            "write redis://[user:password@]host:port[/db]",
        ));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, ConfigError};
    use std::path::Path;

    const HEAD: &str = "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://app.db\"\n";

    fn parse_sinks(text: &str) -> Result<Vec<super::SinkSettings>, ConfigError> {
        parse(&format!("{HEAD}{text}"), Path::new("/etc/denorm/denorm.toml")).map(|c| c.sinks)
    }

    #[test]
    fn sinks_parse_with_defaults() {
        let sinks = parse_sinks(
            "[[sink]]\nkind = \"sqlite\"\npath = \"read.db\"\nviews = [\"a\"]\n\
             [[sink]]\nkind = \"postgres\"\nurl = \"postgres://app@db/app\"\nviews = [\"a\", \"b\"]\nreconcile_every = \"1s\"\nrepair = true\n\
             [[sink]]\nkind = \"sqlite\"\npath = \"other.db\"\nviews = [\"b\"]\nqueue_rows = 10\n",
        )
        .unwrap();
        assert_eq!(sinks[0].name, "sqlite");
        assert_eq!(sinks[0].kind, super::SinkKind::Sqlite { path: "/etc/denorm/read.db".into() });
        assert_eq!(
            sinks[1].kind,
            super::SinkKind::Postgres { url: "postgres://app@db/app".into(), schema: "denorm".into() }
        );
        assert!(sinks[1].repair);
        assert_eq!(sinks[2].name, "sqlite_2");
        assert_eq!(sinks[2].queue_rows, 10);
    }

    #[test]
    fn bad_sinks_say_where_and_what_to_do() {
        let cases = [
            ("[[sink]]\nkind = \"mongo\"\nviews = [\"a\"]\n", "5:8", "unknown sink kind"),
            ("[[sink]]\nkind = \"sqlite\"\nviews = [\"a\"]\n", "5:8", "needs path"),
            ("[[sink]]\nkind = \"sqlite\"\npath = \"x.db\"\nviews = []\n", "7:9", "views is empty"),
            (
                "[[sink]]\nkind = \"postgres\"\nurl = \"postgres://h/d\"\nschema = \"Bad\"\nviews = [\"a\"]\n",
                "7:10",
                "invalid schema",
            ),
            ("[[sink]]\nkind = \"sqlite\"\npath = \"x.db\"\nurl = \"u\"\nviews = [\"a\"]\n", "7:7", "not a setting"),
            (
                "[[sink]]\nkind = \"sqlite\"\npath = \"x.db\"\nviews = [\"a\"]\nreconcile_every = \"soon\"\n",
                "8:19",
                "invalid duration",
            ),
            ("[[sink]]\nkind = \"sqlite\"\npath = \"x.db\"\nviews = [\"a\"]\ncolour = 1\n", "8:1", "unknown field"),
        ];
        for (text, at, message) in cases {
            let error = parse_sinks(text).unwrap_err().to_string();
            assert!(error.contains(&format!("denorm.toml:{at}")) && error.contains(message), "{text}\n{error}");
            assert!(error.contains("hint:"), "{error}");
        }
    }

    #[test]
    fn redis_sinks_read_format_ttl_and_prefix() {
        use denorm_sink::redis::{Format, RedisOptions};
        let sinks = parse_sinks(
            "[[sink]]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nviews = [\"a\"]\n\
             [[sink]]\nkind = \"redis\"\nurl = \"redis://h:1/2\"\nviews = [\"a\"]\nformat = \"json\"\nttl = \"1h\"\nprefix = \"app:\"\n",
        )
        .unwrap();
        let options = |url: &str, format, ttl, prefix: &str| {
            super::SinkKind::Redis(RedisOptions { url: url.into(), prefix: prefix.into(), format, ttl })
        };
        assert_eq!(sinks[0].kind, options("redis://127.0.0.1:6379", Format::Hash, None, ""));
        assert_eq!(
            sinks[1].kind,
            options("redis://h:1/2", Format::Json, Some(std::time::Duration::from_secs(3600)), "app:")
        );
        assert_eq!(sinks[1].name, "redis_2");
        let cases = [
            ("[[sink]]\nkind = \"redis\"\nviews = [\"a\"]\n", "5:8", "needs url"),
            ("[[sink]]\nkind = \"redis\"\nurl = \"mongo://x\"\nviews = [\"a\"]\n", "6:7", "not a Redis URL"),
            (
                "[[sink]]\nkind = \"redis\"\nurl = \"redis://h\"\nviews = [\"a\"]\nformat = \"xml\"\n",
                "8:10",
                "unknown format",
            ),
            (
                "[[sink]]\nkind = \"redis\"\nurl = \"redis://h\"\nviews = [\"a\"]\nttl = \"0s\"\n",
                "8:7",
                "invalid duration",
            ),
            ("[[sink]]\nkind = \"sqlite\"\npath = \"x.db\"\nviews = [\"a\"]\nttl = \"1h\"\n", "8:7", "not a setting"),
        ];
        for (text, at, message) in cases {
            let error = parse_sinks(text).unwrap_err().to_string();
            assert!(error.contains(&format!("denorm.toml:{at}")) && error.contains(message), "{text}\n{error}");
            assert!(error.contains("hint:"), "{error}");
        }
    }
}
