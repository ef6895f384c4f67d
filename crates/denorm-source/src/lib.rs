//! Sources: turn a database's change log into ordered batches of row changes,
//! each batch ending on a committed-transaction boundary.
//!
//! ```text
//!  source database ──read_catalog──► Catalog (planner input)
//!                  ──change log────► ordered batches (coming next)
//! ```
//!
//! Only SQLite schema introspection exists so far: [`sqlite::read_catalog`]
//! turns the tables of a database into the [`denorm_types::Catalog`] the
//! planner checks views against.
//!
//! ```
//! let conn = rusqlite::Connection::open_in_memory().unwrap();
//! conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").unwrap();
//! let catalog = denorm_source::sqlite::read_catalog(&conn).unwrap();
//! let users = catalog.get("users").unwrap();
//! assert_eq!(users.primary_key, vec![0]);
//! assert!(!users.columns[1].nullable);
//! ```

mod error;
pub mod sqlite;

pub use error::SourceError;
