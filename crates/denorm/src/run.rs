//! `denorm run`: plan every view (refusing to start with every error listed
//! if one is invalid), then serve HTTP while the engine thread snapshots and
//! follows the source, until SIGINT or SIGTERM.
//!
//! ```text
//!  main thread: tokio runtime ── axum server (Reader) ── signals
//!  engine thread: Engine::run (ChangeSource: SQLite or PostgreSQL → Dataflow → Publisher)
//! ```
//!
//! Shutdown is graceful: a signal sets the shutdown flag, the engine
//! finishes the batch in hand, publishes it and returns; then the server
//! stops accepting and drains its connections, and the process exits 0.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use denorm_serve::feed::FeedInfo;
use denorm_serve::query::OrderTerm;
use denorm_serve::{ColumnInfo, Fallback, Reader, ViewInfo};
use denorm_sql::{OnStale, Refresh, ViewDef};
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::config::{self, Config, SourceConfig};
use crate::engine::{capture_spec, error_chain, Engine, ViewSources};
use crate::fallback::{PostgresFallback, SqliteFallback};
use crate::plan::{plan_all, Planned};
use crate::source;

/// Runs `denorm run --config config_path` until a signal; an error means
/// the configuration, the views, the listen address or the source was
/// refused (all reported before anything is served) or the engine stopped
/// on a definite error.
pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = config::load(config_path)?;
    let prepared = prepare_patiently(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("denorm-http")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut http = http_options(&config, &prepared.infos)?;
    let (admin, inbox) = denorm_serve::admin::admin_channel();
    http.admin = Some(admin.clone());
    reload_on_sighup(&runtime, admin)?;
    let listener = runtime.block_on(bind(&config))?;
    let wire = runtime.block_on(bind_wire(&config))?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let (publisher, reader) = denorm_serve::channel(prepared.infos.clone());
    let (stop_wire, wire_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some((listener, tls)) = wire {
        let mut backend = denorm_serve::wire::Backend::new(reader.clone(), Arc::new(denorm_serve::wire::AllowAll));
        if let Some(auth) = &http.auth {
            backend = backend.with_jwt(auth.clone());
        }
        runtime.spawn(denorm_serve::wire::serve_pg(listener, backend, tls, async move {
            let _ = wire_stopped.await;
        }));
    }
    let sinks = crate::sinks::start(&config, &prepared.specs, &prepared.infos, &reader)?;
    let engine = Engine::new(config.source.clone(), prepared.sources, publisher, shutdown.clone())
        .with_max_memory(config.engine.max_memory)
        .with_state_dir(Some(config.engine.state_dir.clone()))
        .with_checkpoint_interval(config.engine.checkpoint_interval)
        .with_sinks(sinks)
        .with_admin(Some(inbox), Some(config_path.to_path_buf()), config.engine.drift);
    let served =
        runtime.block_on(serve_until(listener, reader, prepared.fallback, http, engine, shutdown, termination()));
    let _ = stop_wire.send(());
    served
}

/// The HTTP server's options with `[auth]` checked against the views (a
/// role's row filter must read a column every view granted to it has) and
/// the `[audit]` log opened.
fn http_options(config: &Config, views: &[ViewInfo]) -> anyhow::Result<denorm_serve::ServeOptions> {
    let mut http = config.server.http.clone();
    if let Some(auth) = &config.auth {
        auth.check_views(views).map_err(|problems| {
            anyhow::anyhow!("{}: [auth] does not fit the views:\n{problems}", config.file.display())
        })?;
        http.auth = Some(Arc::new(auth.clone()));
    }
    if let Some(target) = &config.audit {
        let log = denorm_serve::audit::AuditLog::open(target)
            .with_context(|| format!("{}: cannot open the [audit] log {target:?}", config.file.display()))?;
        http.audit = Some(Arc::new(log));
    }
    Ok(http)
}

/// The PostgreSQL wire protocol's listener and TLS acceptor, when
/// `[server] pg_listen` is set.
async fn bind_wire(config: &Config) -> anyhow::Result<Option<(TcpListener, Option<denorm_serve::wire::TlsAcceptor>)>> {
    let Some(listen) = config.server.pg_listen else { return Ok(None) };
    let tls = match &config.server.pg_tls {
        None => None,
        Some(tls) => Some(denorm_serve::wire::tls_acceptor(&tls.cert, &tls.key).map_err(|e| {
            anyhow!("{e}\n  hint: set [server] pg_tls_cert and pg_tls_key in {} to PEM files", config.file.display())
        })?),
    };
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen} for the PostgreSQL wire protocol\n  hint: another process may be using the port; \
             set [server] pg_listen = \"127.0.0.1:PORT\" in {}",
            config.file.display()
        )
    })?;
    let address = listener.local_addr()?;
    if config.auth.is_some() {
        info!("serving the PostgreSQL wire protocol on {address} (password: a JWT, as [auth] says)");
    } else {
        info!("serving the PostgreSQL wire protocol on {address} (no authentication: keep it on loopback)");
    }
    Ok(Some((listener, tls)))
}

/// What `run` and `demo` need before serving: the view texts (to re-plan
/// after a schema change) and what the server says about each view.
pub struct Prepared {
    pub sources: ViewSources,
    pub infos: Vec<ViewInfo>,
    /// Answers key lookups of `on_stale = 'fallback'` views from the source
    /// while they are beyond budget; `None` when no view asks for it.
    pub fallback: Option<Arc<dyn Fallback>>,
    /// What sinks are told about each view (see [`crate::sinks`]).
    pub specs: Vec<denorm_sink::ViewSpec>,
}

/// [`prepare`], retrying with exponential backoff while a SQLite source is
/// only transiently unavailable (locked or busy); any other error is
/// returned. A PostgreSQL server that cannot be reached at start is an
/// error (exit 1), not something to wait for: once running, the engine
/// retries lost connections itself.
pub fn prepare_patiently(config: &Config) -> anyhow::Result<Prepared> {
    let mut backoff = crate::engine::retry::Backoff::default();
    let mut outage: Option<crate::engine::retry::Outage> = None;
    let patient = matches!(config.source, SourceConfig::Sqlite(_));
    loop {
        match prepare(config) {
            Err(e) if patient && is_transient(&e) => {
                let (error, wait) = (crate::cli::render_error(&e), backoff.next_wait());
                match &mut outage {
                    None => outage = Some(crate::engine::retry::Outage::begin(error, wait, "nothing is served yet")),
                    Some(o) => o.again(error, wait),
                }
                std::thread::sleep(wait);
            }
            other => {
                if let (Some(o), Ok(_)) = (outage, &other) {
                    o.end("starting");
                }
                return other;
            }
        }
    }
}

/// Whether a source error somewhere in `error`'s chain is worth retrying.
fn is_transient(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.downcast_ref::<denorm_source::SourceError>().is_some_and(|s| s.is_transient()))
}

/// Opens the source (creating it from `[source] init` when configured) and
/// plans every view; refuses with every error listed. A PostgreSQL source's
/// requirements (wal_level, privileges, free slots, each captured table's
/// REPLICA IDENTITY) are checked here too, so that `denorm run` refuses to
/// start rather than serve views that can never be maintained.
pub fn prepare(config: &Config) -> anyhow::Result<Prepared> {
    let opened = source::catalog(config)?;
    let catalog = opened.catalog;
    let (views, errors) = plan_all(config, &catalog)?;
    if !errors.is_empty() {
        let s = if errors.len() == 1 { "" } else { "s" };
        bail!("{}\nrefusing to start: {} view error{s}", errors.join("\n"), errors.len());
    }
    if let Some(budget) = config.engine.max_memory {
        let defs: Vec<ViewDef> = views.iter().map(|(v, _)| v.clone()).collect();
        match crate::estimate::estimate(config, &catalog, &defs) {
            Ok(estimates) => {
                if let Some(refusal) = crate::estimate::over_budget(&estimates, budget) {
                    bail!("{refusal}");
                }
            }
            Err(e) => tracing::warn!(
                error = %crate::cli::render_error(&e),
                "cannot estimate the views' state at start; [engine] max_memory is enforced once running"
            ),
        }
    }
    if let SourceConfig::Postgres(pg) = &config.source {
        let planned: Vec<Option<ViewDef>> = views.iter().map(|(v, _)| Some(v.clone())).collect();
        let spec = capture_spec(&planned, &catalog);
        denorm_source::postgres::PgCapture::open(&pg.url, &catalog, &spec, &pg.names())
            .with_context(|| format!("cannot capture changes from {}", opened.name))?;
    }
    let mut files = Vec::new();
    for file in &config.views {
        // Read again (plan_all read them a moment ago) to keep the exact
        // text that was planned; a changed file is picked up on restart.
        let text = std::fs::read_to_string(&file.path)
            .with_context(|| format!("cannot read views file {}", file.path.display()))?;
        files.push((file.path.clone(), text));
    }
    let names = views.iter().map(|(v, _)| v.name.clone()).collect();
    let infos = views.iter().map(view_info).collect();
    let queries: Vec<(String, String)> = views
        .iter()
        .filter(|(v, _)| v.on_stale == OnStale::Fallback)
        .map(|(v, _)| (v.name.clone(), v.select_sql.clone()))
        .collect();
    let fallback = match (&config.source, queries.is_empty()) {
        (_, true) => None,
        (SourceConfig::Sqlite(sqlite), false) => {
            let fallback = SqliteFallback::new(sqlite.path.clone(), queries);
            fallback.check().map_err(|e| anyhow::anyhow!(e))?;
            Some(Arc::new(fallback) as Arc<dyn Fallback>)
        }
        (SourceConfig::Postgres(pg), false) => {
            let fallback = PostgresFallback::new(pg.url.clone(), queries);
            fallback.check().map_err(|e| anyhow::anyhow!(e))?;
            Some(Arc::new(fallback) as Arc<dyn Fallback>)
        }
    };
    let specs = views.iter().map(|(v, _)| crate::sinks::view_spec(v)).collect();
    Ok(Prepared { sources: ViewSources { files, names }, infos, fallback, specs })
}

fn view_info((view, _): &Planned) -> ViewInfo {
    serving_info(view)
}

/// What the serving layer is told about a planned view: columns, key (a
/// feed is read by its partition column, see `denorm_serve::feed`), budget,
/// refresh, fallback and feed layout. Public so that tests and benchmarks
/// wire the published state exactly as `denorm run` does.
pub fn serving_info(view: &ViewDef) -> ViewInfo {
    let feed = view.feed.as_ref().map(|f| FeedInfo {
        partition: f.partition,
        order: f
            .order
            .iter()
            .map(|o| OrderTerm {
                column: o.column,
                descending: o.descending,
                nulls_first: o.nulls_first,
                collation: None,
            })
            .collect(),
        retain: f.retain,
        fanout_limit: f.fanout_limit,
        fan_column: f.fan_column.clone(),
        reference: f.reference.as_ref().map(|r| r.key.clone()),
    });
    ViewInfo {
        name: view.name.clone(),
        columns: view.columns.iter().map(|c| ColumnInfo { name: c.name.clone(), ty: c.ty }).collect(),
        key: feed.as_ref().map_or_else(|| view.key.columns.clone(), |f| vec![f.partition]),
        max_staleness: view.max_staleness,
        tables: tables_of(view),
        refresh: match view.refresh {
            Refresh::OnChange => None,
            Refresh::Every(every) => Some(every),
        },
        fallback: view.on_stale == OnStale::Fallback,
        feed,
        order: view
            .order
            .iter()
            .map(|k| OrderTerm {
                column: k.column,
                descending: k.descending,
                nulls_first: k.nulls_first,
                collation: k.collation,
            })
            .collect(),
        collations: view.columns.iter().map(|c| c.collation).collect(),
    }
}

fn tables_of(view: &ViewDef) -> Vec<String> {
    view.dependencies.iter().map(|d| d.table.clone()).collect()
}

async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let listen = config.server.listen;
    TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen}\n  hint: another process may be using the port; \
             set [server] listen = \"127.0.0.1:PORT\" in {}",
            config.file.display()
        )
    })
}

/// Serves `reader` on `listener` while `engine` runs on its own thread,
/// until `stop` resolves (to the reason) or the engine fails.
pub async fn serve_until(
    listener: TcpListener,
    reader: Reader,
    fallback: Option<Arc<dyn Fallback>>,
    options: denorm_serve::ServeOptions,
    engine: Engine,
    shutdown: Arc<AtomicBool>,
    stop: impl Future<Output = &'static str>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    info!("serving http://{addr}/views");
    let (engine_done_tx, engine_done) = tokio::sync::oneshot::channel();
    let engine_thread = std::thread::Builder::new()
        .name("denorm-engine".into())
        .spawn(move || {
            let result = engine.run();
            let _ = engine_done_tx.send(());
            result
        })
        .context("cannot start the engine thread")?;
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(denorm_serve::serve_configured(listener, reader, fallback, options, async move {
        let _ = server_stopped.await;
    }));
    tokio::select! {
        reason = stop => info!(%reason, "shutting down: finishing the batch in hand"),
        _ = engine_done => {}
    }
    shutdown.store(true, Ordering::SeqCst);
    let engine_result = tokio::task::spawn_blocking(move || engine_thread.join())
        .await
        .map_err(|e| anyhow!("engine thread lost: {e}"))?
        .map_err(|_| anyhow!("the engine thread panicked (bug)"))?;
    let _ = stop_server.send(());
    server.await.map_err(|e| anyhow!("HTTP server task lost: {e}"))?.context("HTTP server failed")?;
    match engine_result {
        Ok(()) => {
            info!("stopped");
            Ok(())
        }
        Err(e) => {
            let hint = match &e {
                crate::engine::EngineError::Source(s) => s.hint().map(|h| format!("\n  hint: {h}")),
                _ => None,
            }
            .unwrap_or_default();
            error!(error = %error_chain(&e), "engine stopped{hint}");
            Err(anyhow::Error::new(e).context(format!("the engine stopped{hint}")))
        }
    }
}

/// Makes SIGHUP reload the configuration and the views files (as `POST
/// /admin/reload` does), logging the outcome; the handler is installed
/// before this returns.
fn reload_on_sighup(runtime: &tokio::runtime::Runtime, admin: denorm_serve::admin::Admin) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use denorm_serve::admin::AdminCommand;
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = {
            let _entered = runtime.enter();
            signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?
        };
        runtime.spawn(async move {
            while hangup.recv().await.is_some() {
                info!("SIGHUP: reloading the configuration and the views files");
                let reply = admin.ask(AdminCommand::Reload).await;
                if reply.status == 200 {
                    info!(result = %reply.body, "SIGHUP reload done");
                } else {
                    error!(result = %reply.body, "SIGHUP reload refused; the running views go on");
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (runtime, admin);
    Ok(())
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
pub async fn termination() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Logs to stderr, `info` by default (`RUST_LOG` overrides).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Passwords of connection URLs are hidden from every log line.
    let writer = || crate::redacting::Redacting::new(std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(writer).try_init();
}
