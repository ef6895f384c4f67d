//! Opening the configured source, with errors that point back at the config.

use anyhow::{anyhow, Context as _};
use denorm_source::{sqlite, SourceError};
use rusqlite::Connection;

use crate::config::{Config, SourceConfig};

/// An open source database and a name for it in messages.
#[derive(Debug)]
pub struct OpenSource {
    pub connection: Connection,
    pub name: String,
}

/// Opens the configured source read-only, first creating it from
/// `[source] init` when it is a SQLite file that does not exist yet.
pub fn open(config: &Config) -> anyhow::Result<OpenSource> {
    let SourceConfig::Sqlite(source) = &config.source;
    let file = config.file.display();
    if let Some(init) = &source.init {
        sqlite::create_if_missing(&source.path, init).with_context(|| format!("{file}: [source] init failed"))?;
    }
    let connection = sqlite::open_read_only(&source.path).map_err(|e| match e {
        SourceError::NotFound { path } => anyhow!(
            "{file}:{}: the source database {} does not exist\n  \
             hint: fix [source] url, create the database, or set [source] init = \"schema.sql\" \
             to create it from a schema file",
            source.url_at,
            path.display()
        ),
        other => anyhow::Error::new(other).context(format!("{file}:{}: cannot open the source", source.url_at)),
    })?;
    Ok(OpenSource { connection, name: source.path.display().to_string() })
}
