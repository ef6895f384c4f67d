//! The PostgreSQL wire protocol (`[server] pg_listen`), with the `pgwire`
//! crate: psql, psycopg, JDBC and BI tools read the published views.
//!
//! ```text
//!  client ──startup──► Login ──► Authenticate::check ──► [auth]: password = JWT → role in the connection's metadata
//!         ──Query "…;…"──────────► sql::split_statements ─► sql::parse ─┐
//!         ──Parse/Bind/Execute──► sql::parse at Parse, bind at Execute ─┤
//!                                                                       ▼
//!   Select ─► [denorm.min_position wait] ─► Select::bind ─► query::execute/paginate
//!   Constant / Set / Show / Begin… ─► session settings (per connection)
//!   Catalog (pg_catalog, information_schema) ─► catalog::answer
//! ```
//!
//! A read of a view is translated into the HTTP API's [`Query`] and
//! evaluated by the same functions (`query::execute`/`feed::execute`,
//! `query::paginate`), from one [`Published`] snapshot: a key equality is a
//! key lookup. Columns are described with their PostgreSQL types and sent
//! in text or binary, as each client asks ([`encode`]).
//!
//! Session settings: `SET`/`SHOW` accept any name (clients set DateStyle,
//! extra_float_digits, application_name… at connect); `SHOW
//! denorm.position` is the published position; `SET denorm.min_position =
//! 'P'` (an integer or an LSN such as `16/B374D848`) makes every later read
//! wait until the view reflects P, like the HTTP `Denorm-Min-Position`
//! header, bounded by `denorm.timeout` (default 5s, at most 60s), then fails
//! with SQLSTATE `57014`. `RESET denorm.min_position` ends it.
//! Reads are not served by the source (`on_stale = 'fallback'` applies to
//! HTTP only).

pub mod catalog;
pub mod encode;
pub mod sql;

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{stream, Sink, SinkExt, StreamExt};
use pgwire::api::auth::{self, StartupHandler};
use pgwire::api::portal::PortalExecutionState;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type, DEFAULT_NAME};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::RowDescription;
use pgwire::messages::extendedquery::{Bind, BindComplete, Execute, Parse, ParseComplete};
use pgwire::messages::response::{EmptyQueryResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::simplequery::Query as SimpleQuery;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use denorm_types::{Datum, Position, ScalarType, Value};

use crate::auth::{restrict, Auth, Denied, Principal, ViewAccess};
use crate::http::{parse_position, parse_wait, DEFAULT_WAIT, MAX_WAIT};
use crate::query::{execute, paginate, Query};
use crate::scram::{self, Exchange};
use crate::state::{Published, Reader, ViewInfo, ViewStatus, WaitError};
use sql::{Constant, Param, ParamUse, Select, SqlError, Statement};

pub use pgwire::tokio::TlsAcceptor;

/// The version string of `SELECT version()` and `server_version`:
/// PostgreSQL's major for the clients that parse it, then denorm's.
pub const SERVER_VERSION: &str = "15.0";

/// Who connects: what the startup message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub user: Option<String>,
    pub database: Option<String>,
    pub address: std::net::SocketAddr,
    pub tls: bool,
}

/// The seam where authentication plugs in: called once per connection,
/// after the startup message, before the first query. An error ends the
/// connection with its SQLSTATE (e.g. `28000`/`28P01`).
pub trait Authenticate: Send + Sync + Debug {
    fn check(&self, login: &Login) -> Result<(), SqlError>;
}

/// Lets everyone in (the login seam's default; `[auth]` checks the JWT
/// password in the startup handler itself, see [`Backend::with_jwt`]), so it
/// listens on loopback by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authenticate for AllowAll {
    fn check(&self, _login: &Login) -> Result<(), SqlError> {
        Ok(())
    }
}

/// The protocol handlers over one server's published views.
#[derive(Debug, Clone)]
pub struct Backend {
    reader: Reader,
    auth: Arc<dyn Authenticate>,
    /// `[auth]`: the password is a JWT, and its role's grants, masks and
    /// row filters apply to every read, as on HTTP.
    jwt: Option<Arc<Auth>>,
}

/// Where a connection's verified principal is kept (the client's metadata;
/// `SET` cannot change these names).
const ROLE: &str = "denorm.auth.role";
const SUBJECT: &str = "denorm.auth.subject";
const CLAIMS: &str = "denorm.auth.claims";
/// A SCRAM exchange between its server-first and client-final messages.
const SCRAM: &str = "denorm.auth.scram";
const AUTH_PREFIX: &str = "denorm.auth.";

impl Backend {
    pub fn new(reader: Reader, auth: Arc<dyn Authenticate>) -> Self {
        Backend { reader, auth, jwt: None }
    }

    /// Requires a JWT as the password and applies `auth`'s rules to reads.
    pub fn with_jwt(mut self, auth: Arc<Auth>) -> Self {
        self.jwt = Some(auth);
        self
    }

    /// The connection's role's access to `view` (`None` without `[auth]`).
    fn access(
        &self,
        settings: &HashMap<String, String>,
        view: &ViewInfo,
    ) -> Result<Option<(ViewAccess, String)>, SqlError> {
        let Some(auth) = &self.jwt else { return Ok(None) };
        let principal = Principal {
            role: settings.get(ROLE).cloned().unwrap_or_default(),
            subject: settings.get(SUBJECT).cloned(),
            claims: settings.get(CLAIMS).and_then(|c| serde_json::from_str(c).ok()).unwrap_or(serde_json::Value::Null),
        };
        let access = auth.access(&principal, view).map_err(|d| self.denied(d))?;
        Ok(Some((access, principal.role)))
    }

    /// `published` with only the views the connection's role may read, for
    /// the catalog (`\d` lists what the role can query, as `/views` does).
    fn visible(&self, settings: &HashMap<String, String>, published: Arc<Published>) -> Arc<Published> {
        let Some(auth) = &self.jwt else { return published };
        let role = settings.get(ROLE).cloned().unwrap_or_default();
        let principal = Principal { role, subject: None, claims: serde_json::Value::Null };
        let views: Vec<_> =
            published.views.iter().filter(|v| auth.may_read(&principal, &v.info.name)).cloned().collect();
        Arc::new(Published { views: views.into(), ..(*published).clone() })
    }

    /// A failed SCRAM exchange: PostgreSQL's `28P01`, counted as a bad password.
    fn scram_failed(&self, user: &str, error: scram::ScramError) -> PgWireError {
        self.reader.metrics().auth_denied(Denied::Password(user.to_string()).reason());
        let info = match error {
            scram::ScramError::Proof => {
                SqlError::new("28P01", format!("password authentication failed for user \"{user}\""))
            }
            other => SqlError::new("28P01", other.to_string()),
        };
        user_error(info.hint(Denied::Password(user.to_string()).hint()), "FATAL")
    }

    /// A refusal as a SQLSTATE (`28000` who are you, `42501` not allowed), counted.
    fn denied(&self, denied: Denied) -> SqlError {
        self.reader.metrics().auth_denied(denied.reason());
        let code = if denied.status() == 401 { "28000" } else { "42501" };
        SqlError::new(code, denied.to_string()).hint(denied.hint())
    }
}

/// Serves the wire protocol on a bound listener until `shutdown` resolves;
/// with `tls`, clients that ask for TLS get it.
pub async fn serve_pg(
    listener: tokio::net::TcpListener,
    backend: Backend,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, tls = tls.is_some(), "serving the PostgreSQL wire protocol");
    }
    let handlers = Arc::new(Handlers(Arc::new(backend)));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (socket, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a PostgreSQL connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let (handlers, tls) = (handlers.clone(), tls.clone());
                tokio::spawn(async move {
                    if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                        tracing::debug!(error = %e, "PostgreSQL connection ended with an error");
                    }
                });
            }
        }
    }
}

/// A TLS acceptor from PEM files: the certificate chain and its private key.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<pgwire::tokio::TlsAcceptor, String> {
    use pgwire::tokio::tokio_rustls::rustls;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}

#[derive(Debug)]
struct Handlers(Arc<Backend>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }
}

#[async_trait]
impl StartupHandler for Backend {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let startup = match message {
            PgWireFrontendMessage::Startup(startup) => startup,
            // The JWT or a SCRAM message, when [auth] asked for one.
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let Some(jwt) = &self.jwt else { return Ok(()) };
                let user = client.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default();
                let principal = if let Some(exchange) = client.metadata_mut().remove(SCRAM) {
                    let response = password.into_sasl_response()?;
                    let verifier = scram_verifier(jwt, &user);
                    let server_final = Exchange::decode(&exchange)
                        .ok_or(scram::ScramError::Proof)
                        .and_then(|e| e.finish(&String::from_utf8_lossy(&response.data), &verifier))
                        .map_err(|e| self.scram_failed(&user, e))?;
                    let principal = jwt.user_principal(&user).map_err(|d| user_error(self.denied(d), "FATAL"))?;
                    client
                        .send(PgWireBackendMessage::Authentication(Authentication::SASLFinal(server_final.into())))
                        .await?;
                    principal
                } else if uses_scram(jwt, &user) {
                    let initial = password.into_sasl_initial_response()?;
                    if initial.auth_method != "SCRAM-SHA-256" {
                        return Err(self.scram_failed(
                            &user,
                            scram::ScramError::Message(format!(
                                "mechanism {} is not offered; use SCRAM-SHA-256",
                                initial.auth_method
                            )),
                        ));
                    }
                    let client_first =
                        String::from_utf8_lossy(initial.data.as_deref().unwrap_or_default()).into_owned();
                    let (server_first, exchange) =
                        scram::start(&client_first, &scram_verifier(jwt, &user), &scram::random_nonce())
                            .map_err(|e| self.scram_failed(&user, e))?;
                    client.metadata_mut().insert(SCRAM.to_owned(), exchange.encode());
                    client
                        .send(PgWireBackendMessage::Authentication(Authentication::SASLContinue(server_first.into())))
                        .await?;
                    return Ok(());
                } else {
                    let password = password.into_password()?.password;
                    jwt.authenticate(Some(&password)).map_err(|d| user_error(self.denied(d), "FATAL"))?
                };
                let metadata = client.metadata_mut();
                metadata.insert(ROLE.to_owned(), principal.role);
                if let Some(subject) = principal.subject {
                    metadata.insert(SUBJECT.to_owned(), subject);
                }
                metadata.insert(CLAIMS.to_owned(), principal.claims.to_string());
                return finish_startup(client).await;
            }
            _ => return Ok(()),
        };
        auth::protocol_negotiation(client, &startup).await?;
        auth::save_startup_parameters_to_metadata(client, &startup);
        // Startup parameters land in the same map: none may pose as a verified principal or a SCRAM state.
        client.metadata_mut().retain(|name, _| !name.starts_with(AUTH_PREFIX));
        let metadata = client.metadata();
        let login = Login {
            user: metadata.get(pgwire::api::METADATA_USER).cloned(),
            database: metadata.get(pgwire::api::METADATA_DATABASE).cloned(),
            address: client.socket_addr(),
            tls: client.is_secure(),
        };
        self.auth.check(&login).map_err(|e| user_error(e, "FATAL"))?;
        if let Some(jwt) = &self.jwt {
            client.set_state(PgWireConnectionState::AuthenticationInProgress);
            let request = if uses_scram(jwt, login.user.as_deref().unwrap_or_default()) {
                Authentication::SASL(vec!["SCRAM-SHA-256".to_owned()])
            } else {
                // The password is the JWT (send it over TLS: it travels in clear).
                Authentication::CleartextPassword
            };
            client.send(PgWireBackendMessage::Authentication(request)).await?;
            return Ok(());
        }
        finish_startup(client).await
    }
}

/// Whether `user` logs in by SCRAM: a user of `[auth.users]`, or anyone
/// when no JWT key is configured (unknown names then fail the proof, as
/// on PostgreSQL, without telling that the name is unknown).
fn uses_scram(auth: &Auth, user: &str) -> bool {
    auth.users.contains_key(user) || auth.keys.is_none()
}

fn scram_verifier(auth: &Auth, user: &str) -> scram::Verifier {
    auth.users.get(user).map_or_else(|| scram::mock_verifier(user), |u| u.verifier.clone())
}

/// Ends the startup: the server's parameters, then ReadyForQuery.
async fn finish_startup<C>(client: &mut C) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let mut parameters = auth::DefaultServerParameterProvider::default();
    parameters.server_version = format!("{SERVER_VERSION} (denorm {})", env!("CARGO_PKG_VERSION"));
    parameters.is_superuser = false;
    parameters.default_transaction_read_only = true;
    auth::finish_authentication(client, &parameters).await
}

fn user_error(e: SqlError, severity: &str) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e, severity)))
}

fn error_info(e: SqlError, severity: &str) -> ErrorInfo {
    let mut info = ErrorInfo::new(severity.to_owned(), e.code.to_owned(), e.message);
    info.detail = e.detail;
    info.hint = e.hint;
    info
}

/// A prepared statement: the parsed statement and its parameters' types
/// (the client's, else inferred from what each parameter is compared with).
#[derive(Debug, Clone)]
pub struct Prepared {
    statement: Statement,
    parameter_types: Vec<Type>,
}

#[async_trait]
impl QueryParser for Backend {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Prepared>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements = sql::split_statements(sql);
        if statements.len() > 1 {
            return Err(user_error(
                SqlError::new(sql::SYNTAX_ERROR, "cannot insert multiple commands into a prepared statement"),
                "ERROR",
            ));
        }
        let statement = sql::parse(&self.reader.snapshot(), statements.first().copied().unwrap_or(""))
            .map_err(|e| user_error(e, "ERROR"))?;
        let inferred = match &statement {
            Statement::Select(s) => s.parameters.clone(),
            _ => vec![],
        };
        let count = inferred.len().max(types.len());
        let parameter_types = (0..count)
            .map(|i| match types.get(i).cloned().flatten() {
                Some(t) if t != Type::UNKNOWN => t,
                _ => match inferred.get(i).copied().flatten() {
                    Some(ParamUse::Column(ty)) => encode::pg_type(ty),
                    Some(ParamUse::Array(ty)) => encode::array_type(ty),
                    Some(ParamUse::Count) => Type::INT8,
                    None => Type::TEXT,
                },
            })
            .collect();
        Ok(Prepared { statement, parameter_types })
    }
}

/// What one statement answers, before encoding.
enum Answer {
    Rows { columns: Vec<(String, ScalarType)>, rows: Vec<Vec<Value>> },
    Tag(Tag),
    Begin,
    End(&'static str),
    Empty,
}

impl Backend {
    /// Runs one parsed statement for a client whose settings are `settings`.
    async fn run(
        &self,
        statement: &Statement,
        params: &[Param],
        settings: &mut HashMap<String, String>,
    ) -> Result<Answer, SqlError> {
        match statement {
            Statement::Select(select) => self.read(select, params, settings).await,
            Statement::Constant(items) => Ok(constant_row(items, settings, &self.reader.snapshot())),
            Statement::Catalog(query) => {
                let bound = sql::substitute_params(query, params)?;
                catalog::answer(&self.visible(settings, self.reader.snapshot()), &bound)
                    .map(|(columns, rows)| Answer::Rows { columns, rows })
            }
            Statement::Set { name, value } => {
                set(settings, name, value.as_deref())?;
                Ok(Answer::Tag(Tag::new(if value.is_some() { "SET" } else { "RESET" })))
            }
            Statement::Show(name) => {
                let value = show(settings, name, &self.reader.snapshot())?;
                Ok(Answer::Rows {
                    columns: vec![(name.clone(), ScalarType::Text)],
                    rows: vec![vec![Datum::owned_text(value)]],
                })
            }
            Statement::Begin => Ok(Answer::Begin),
            Statement::End { tag } => Ok(Answer::End(tag)),
            Statement::Ack { tag } => Ok(Answer::Tag(Tag::new(tag))),
            Statement::Empty => Ok(Answer::Empty),
        }
    }

    /// A read of one view: waits for `denorm.min_position` when set, binds
    /// the parameters and runs the query over one snapshot.
    async fn read(
        &self,
        select: &Select,
        params: &[Param],
        settings: &HashMap<String, String>,
    ) -> Result<Answer, SqlError> {
        let published = self.wait(&select.view, settings).await?;
        let view = published.view(&select.view).ok_or_else(|| {
            SqlError::new(sql::UNDEFINED_TABLE, format!("relation \"{}\" does not exist", select.view))
        })?;
        match &view.status {
            ViewStatus::Ok => {}
            ViewStatus::Starting => {
                return Err(SqlError::new("57P03", format!("view \"{}\" is not available yet", select.view))
                    .detail("its initial snapshot is under way")
                    .hint("retry shortly"))
            }
            ViewStatus::Failed(reason) => {
                return Err(SqlError::new(
                    "55000",
                    format!("view \"{}\" failed and is no longer maintained", select.view),
                )
                .detail(reason.clone())
                .hint(crate::VIEW_FAILED_HINT))
            }
        }
        let columns: Vec<(String, ScalarType)> =
            select.columns.iter().map(|(c, name)| (name.clone(), view.info.columns[*c].ty)).collect();
        let access = self.access(settings, &view.info)?;
        let Some(mut query) = select.bind(&view.info, params)? else {
            return Ok(Answer::Rows { columns, rows: vec![] });
        };
        if let Some((access, role)) = &access {
            restrict(&view.info, &mut query, access, role).map_err(|d| self.denied(d))?;
        }
        let rows = rows_of(view, &query, access.as_ref().map(|(a, _)| a))?;
        let role = access.as_ref().map_or("anonymous", |(_, role)| role.as_str());
        self.reader.metrics().read(&select.view, role);
        Ok(Answer::Rows { columns, rows })
    }

    /// The snapshot to read `view` from: the current one, or, with
    /// `denorm.min_position` set, one that reflects it (as the HTTP API's
    /// `Denorm-Min-Position`).
    async fn wait(&self, view: &str, settings: &HashMap<String, String>) -> Result<Arc<Published>, SqlError> {
        let Some(min) = settings.get(MIN_POSITION).and_then(|p| parse_position(p)) else {
            return Ok(self.reader.snapshot());
        };
        let timeout = settings.get(TIMEOUT).and_then(|t| parse_wait(t)).unwrap_or(DEFAULT_WAIT);
        let current = self.reader.snapshot();
        let scheduled = current.views.iter().position(|v| v.info.name == view && v.info.refresh.is_some());
        let waited = match scheduled {
            Some(index) => self.reader.wait_for_view(index, Position(min), timeout).await,
            None => self.reader.wait_for_position(Position(min), timeout).await,
        };
        waited.map_err(|e| {
            let (WaitError::Timeout { wanted, published } | WaitError::Closed { wanted, published }) = e;
            let at = published.map_or("none".to_owned(), |p| p.to_string());
            SqlError::new("57014", format!("position {wanted} was not reached within {} ms", timeout.as_millis()))
                .detail(format!("the views reflect position {at}"))
                .hint(format!(
                    "denorm is behind the source; retry, raise SET {TIMEOUT} = '10s' (at most {} s), or RESET {MIN_POSITION}",
                    MAX_WAIT.as_secs()
                ))
        })
    }
}

/// The rows `query` selects from `view`, projected, paged and owned.
fn rows_of(
    view: &crate::state::PublishedView,
    query: &Query,
    access: Option<&ViewAccess>,
) -> Result<Vec<Vec<Value>>, SqlError> {
    let matches = match &view.info.feed {
        Some(feed) => {
            crate::feed::execute(view, feed, query)
                .map_err(|e| SqlError::new(sql::FEATURE_NOT_SUPPORTED, e.message).hint(e.hint.unwrap_or_default()))?
                .matches
        }
        None => execute(view, query),
    };
    let select: Vec<usize> = query.select.clone().unwrap_or_else(|| (0..view.info.columns.len()).collect());
    let cell = |c: usize, datum: &Datum<'_>| match access {
        Some(access) => access.show(c, datum),
        None => datum.clone().into_owned(),
    };
    Ok(paginate(&matches, query).map(|row| select.iter().map(|&c| cell(c, &row[c])).collect()).collect())
}

pub const MIN_POSITION: &str = "denorm.min_position";
pub const TIMEOUT: &str = "denorm.timeout";
pub const POSITION: &str = "denorm.position";

/// Defaults of the settings clients commonly read.
const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", "150000"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("timezone", "UTC"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("extra_float_digits", "1"),
    ("application_name", ""),
    ("search_path", "public"),
    ("transaction_isolation", "repeatable read"),
    ("transaction_read_only", "on"),
    ("default_transaction_read_only", "on"),
    ("is_superuser", "off"),
    ("max_identifier_length", "63"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("session_authorization", "denorm"),
    (TIMEOUT, "5s"),
    (MIN_POSITION, ""),
];

fn set(settings: &mut HashMap<String, String>, name: &str, value: Option<&str>) -> Result<(), SqlError> {
    let invalid = |hint: &str| {
        SqlError::new("22023", format!("invalid value for parameter \"{name}\": \"{}\"", value.unwrap_or("")))
            .hint(hint)
    };
    match (name, value) {
        (name, _) if name.starts_with("denorm.auth.") => {
            return Err(SqlError::new("42501", format!("parameter \"{name}\" cannot be changed"))
                .hint("it is the role the connection authenticated as"))
        }
        (POSITION, _) => {
            return Err(SqlError::new("55P02", format!("parameter \"{POSITION}\" cannot be changed"))
                .hint(format!("it is the published position; SET {MIN_POSITION} to wait for one")))
        }
        (MIN_POSITION, Some(v)) if !v.is_empty() && parse_position(v).is_none() => {
            return Err(invalid("expected a source position: a non-negative integer or an LSN such as 16/B374D848"))
        }
        (TIMEOUT, Some(v)) if parse_wait(v).is_none() => {
            return Err(invalid("expected a duration such as 250ms or 2s, at most 60s"))
        }
        _ => {}
    }
    match value {
        Some(v) => settings.insert(name.to_owned(), v.to_owned()),
        None => settings.remove(name),
    };
    Ok(())
}

fn show(settings: &HashMap<String, String>, name: &str, published: &Published) -> Result<String, SqlError> {
    if name == POSITION {
        return Ok(published.position.map_or(String::new(), |p| p.to_string()));
    }
    if name == "all" {
        return Err(SqlError::unsupported_show());
    }
    let user = (name == "session_authorization").then(|| settings.get(pgwire::api::METADATA_USER)).flatten();
    settings
        .get(name)
        .or(user)
        .cloned()
        .or_else(|| DEFAULT_SETTINGS.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
        .ok_or_else(|| SqlError::new("42704", format!("unrecognized configuration parameter \"{name}\"")))
}

impl SqlError {
    fn unsupported_show() -> Self {
        SqlError::new(sql::FEATURE_NOT_SUPPORTED, "SHOW ALL is not supported by denorm").hint("SHOW one setting")
    }
}

fn constant_row(items: &[(String, Constant)], settings: &HashMap<String, String>, published: &Published) -> Answer {
    let mut columns = Vec::with_capacity(items.len());
    let mut row = Vec::with_capacity(items.len());
    for (name, constant) in items {
        let (ty, value) = match constant {
            Constant::Int(i) => (ScalarType::Int, Datum::Int(*i)),
            Constant::Bool(b) => (ScalarType::Bool, Datum::Bool(*b)),
            Constant::Text(t) => (ScalarType::Text, t.clone().map_or(Datum::Null, Datum::owned_text)),
            Constant::Version => (
                ScalarType::Text,
                Datum::owned_text(format!("PostgreSQL {SERVER_VERSION} (denorm {})", env!("CARGO_PKG_VERSION"))),
            ),
            Constant::Setting(name) => {
                (ScalarType::Text, show(settings, name, published).map_or(Datum::Null, Datum::owned_text))
            }
        };
        columns.push((name.clone(), ty));
        row.push(value);
    }
    Answer::Rows { columns, rows: vec![row] }
}

fn fields(columns: &[(String, ScalarType)], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| FieldInfo::new(name.clone(), None, None, encode::pg_type(*ty), format.format_for(i)))
        .collect()
}

/// Encodes an answer as a pgwire response.
fn respond(answer: Answer, format: &Format) -> Result<Response, SqlError> {
    Ok(match answer {
        Answer::Rows { columns, rows } => {
            let schema = Arc::new(fields(&columns, format));
            let types: Vec<ScalarType> = columns.iter().map(|(_, t)| *t).collect();
            let formats: Vec<FieldFormat> = (0..columns.len()).map(|i| format.format_for(i)).collect();
            let encoded = rows
                .iter()
                .map(|row| encode::data_row(&row.iter().collect::<Vec<_>>(), &types, &formats))
                .collect::<Result<Vec<_>, _>>()?;
            Response::Query(QueryResponse::new(schema, stream::iter(encoded.into_iter().map(Ok))))
        }
        Answer::Tag(tag) => Response::Execution(tag),
        Answer::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Answer::End(tag) => Response::TransactionEnd(Tag::new(tag)),
        Answer::Empty => Response::EmptyQuery,
    })
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    /// As pgwire's default, but the replies of every statement are queued
    /// and flushed once with ReadyForQuery.
    async fn on_query<C>(&self, client: &mut C, query: SimpleQuery) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let mut status = client.transaction_status();
        let responses = SimpleQueryHandler::do_query(self, client, &query.query).await?;
        for response in responses {
            feed_response(client, response, &mut status, true).await?;
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        client.send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(status))).await?;
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut responses = Vec::new();
        let statements = sql::split_statements(query);
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        for text in statements {
            let published = self.reader.snapshot();
            let answer = match sql::parse(&published, text) {
                Ok(statement) => self.run(&statement, &[], client.metadata_mut()).await,
                Err(e) => Err(e),
            };
            match answer.and_then(|a| respond(a, &Format::UnifiedText)) {
                Ok(response) => responses.push(response),
                Err(e) => {
                    // A simple query stops at its first error.
                    responses.push(Response::Error(Box::new(error_info(e, "ERROR"))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = Prepared;
    type QueryParser = Backend;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(self.clone())
    }

    // Parse, Bind and Execute queue their replies (pgwire's defaults flush
    // each one): the client's Sync flushes them together, one write per
    // lookup instead of three.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let types: Vec<Option<Type>> = message.type_oids.iter().map(|oid| Type::from_oid(*oid)).collect();
        let statement = self.parse_sql(client, &message.query, &types).await?;
        let name = message.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_owned());
        client.portal_store().put_statement(Arc::new(StoredStatement::new(name, statement, types)));
        client.feed(PgWireBackendMessage::ParseComplete(ParseComplete::new())).await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let statement =
            client.portal_store().get_statement(name).ok_or_else(|| PgWireError::StatementNotFound(name.to_owned()))?;
        let portal = Portal::try_new(&message, statement)?;
        client.portal_store().put_portal(Arc::new(portal));
        client.feed(PgWireBackendMessage::BindComplete(BindComplete::new())).await?;
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME).to_owned();
        let portal = client.portal_store().get_portal(&name);
        // Row-limited and resumed portals take pgwire's path.
        let fresh = match &portal {
            Some(p) => matches!(*p.state().lock().await, PortalExecutionState::Initial),
            None => false,
        };
        let (Some(portal), true, 0, PgWireConnectionState::ReadyForQuery) =
            (portal, fresh, message.max_rows, client.state())
        else {
            return self._on_execute(client, message).await;
        };
        client.set_state(PgWireConnectionState::QueryInProgress);
        let mut status = client.transaction_status();
        let response = ExtendedQueryHandler::do_query(self, client, &portal, 0).await?;
        feed_response(client, response, &mut status, false).await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        if name == DEFAULT_NAME {
            client.portal_store().rm_portal(&name);
        }
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let params = bound_params(portal).map_err(|e| user_error(e, "ERROR"))?;
        let answer = self.run(&prepared.statement, &params, client.metadata_mut()).await;
        answer.and_then(|a| respond(a, &portal.result_column_format)).map_err(|e| user_error(e, "ERROR"))
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        statement: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &statement.statement;
        let columns = self.describe(&prepared.statement, client.metadata()).map_err(|e| user_error(e, "ERROR"))?;
        Ok(DescribeStatementResponse::new(prepared.parameter_types.clone(), fields(&columns, &Format::UnifiedText)))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = &portal.statement.statement.statement;
        let columns = self.describe(statement, client.metadata()).map_err(|e| user_error(e, "ERROR"))?;
        Ok(DescribePortalResponse::new(fields(&columns, &portal.result_column_format)))
    }
}

impl Backend {
    /// The columns a statement returns, without running it (catalog
    /// queries and SHOW are cheap, so they run).
    fn describe(
        &self,
        statement: &Statement,
        settings: &HashMap<String, String>,
    ) -> Result<Vec<(String, ScalarType)>, SqlError> {
        let published = self.reader.snapshot();
        Ok(match statement {
            Statement::Select(select) => {
                let view = published.view(&select.view).ok_or_else(|| {
                    SqlError::new(sql::UNDEFINED_TABLE, format!("relation \"{}\" does not exist", select.view))
                })?;
                select.columns.iter().map(|(c, name)| (name.clone(), view.info.columns[*c].ty)).collect()
            }
            Statement::Constant(items) => match constant_row(items, settings, &published) {
                Answer::Rows { columns, .. } => columns,
                _ => vec![],
            },
            Statement::Catalog(query) => catalog::answer(&self.visible(settings, published.clone()), query)?.0,
            Statement::Show(name) => vec![(name.clone(), ScalarType::Text)],
            _ => vec![],
        })
    }
}

/// Queues one statement's reply (without flushing): its row description
/// when `describe` (simple query), rows and command tag, or its error;
/// updates the transaction status.
async fn feed_response<C>(
    client: &mut C,
    response: Response,
    status: &mut TransactionStatus,
    describe: bool,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let tag = match response {
        Response::Query(mut results) => {
            if describe {
                let fields = results.row_schema().iter().map(Into::into).collect();
                client.feed(PgWireBackendMessage::RowDescription(RowDescription::new(fields))).await?;
            }
            let mut rows = 0;
            while let Some(row) = results.data_rows().next().await {
                client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                rows += 1;
            }
            Some(Tag::new(results.command_tag()).with_rows(rows))
        }
        Response::Execution(tag) => Some(tag),
        Response::TransactionStart(tag) => {
            *status = status.to_in_transaction_state();
            Some(tag)
        }
        Response::TransactionEnd(tag) => {
            *status = status.to_idle_state();
            Some(tag)
        }
        Response::EmptyQuery => {
            client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
            None
        }
        Response::Error(e) => {
            client.feed(PgWireBackendMessage::ErrorResponse((*e).into())).await?;
            *status = status.to_error_state();
            None
        }
        Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_) => {
            return Err(user_error(SqlError::new(sql::FEATURE_NOT_SUPPORTED, "COPY is not supported"), "ERROR"))
        }
    };
    if let Some(tag) = tag {
        client.feed(PgWireBackendMessage::CommandComplete(tag.into())).await?;
    }
    Ok(())
}

/// The portal's parameters as text, binary ones decoded by their type.
fn bound_params(portal: &Portal<Prepared>) -> Result<Vec<Param>, SqlError> {
    let types = &portal.statement.statement.parameter_types;
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let Some(bytes) = bytes else { return Ok(None) };
            let ty = types.get(i).unwrap_or(&Type::TEXT);
            encode::param_text(bytes, portal.parameter_format.is_binary(i), ty).map(Some)
        })
        .collect()
}
