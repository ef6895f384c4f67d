//! Opening the configured source, with errors that point back at the config.

use anyhow::{anyhow, Context as _};
use denorm_source::{postgres, sqlite, SourceError};
use denorm_types::Catalog;

use crate::config::{Config, SourceConfig};

/// The configured source's catalog and a name for the source in messages
/// (the SQLite file, or the PostgreSQL URL with its password hidden).
#[derive(Debug)]
pub struct SourceCatalog {
    pub catalog: Catalog,
    pub name: String,
}

/// Reads the configured source's catalog, first creating a SQLite source
/// from `[source] init` when its file does not exist yet.
pub fn catalog(config: &Config) -> anyhow::Result<SourceCatalog> {
    let file = config.file.display();
    match &config.source {
        SourceConfig::Sqlite(source) => {
            if let Some(init) = &source.init {
                sqlite::create_if_missing(&source.path, init)
                    .with_context(|| format!("{file}: [source] init failed"))?;
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
            let name = source.path.display().to_string();
            let catalog =
                sqlite::read_catalog(&connection).with_context(|| format!("cannot read the schema of {name}"))?;
            Ok(SourceCatalog { catalog, name })
        }
        SourceConfig::Postgres(source) => {
            let name = postgres::redact(&source.url);
            let mut client = postgres::connect(&source.url).map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "{file}:{}: cannot connect to the source {name}\n  \
                     hint: check [source] url (host, port, database, user, password) and that the server accepts \
                     connections from this host (pg_hba.conf)",
                    source.url_at
                ))
            })?;
            let catalog =
                postgres::read_catalog(&mut client).with_context(|| format!("cannot read the schema of {name}"))?;
            Ok(SourceCatalog { catalog, name })
        }
    }
}
