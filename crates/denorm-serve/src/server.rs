//! The HTTP/1.1 connection loop (hyper) with the protections a public
//! port needs against slow or idle clients:
//!
//! ```text
//!  accept ── a permit of max_connections? ── no: wait (the OS backlog queues)
//!    │ yes
//!    ▼ per connection: hyper http1 ◄── Tracked<TcpStream> (notes each byte read)
//!      watchdog, while no request is being handled:
//!        first byte of a request head seen, head not complete ≥ header_timeout → close
//!        no byte at all since the last response                ≥ idle_timeout   → close
//! ```
//!
//! A request being handled (a read-your-writes wait included) is never cut
//! by these timers; a client that stops reading a response is closed by
//! the idle timer once the handler is done. A slowloris client (a request
//! line sent a byte at a time) holds one permit for at most
//! `header_timeout`, and requests on other connections proceed meanwhile.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;

use crate::audit::AuditLog;
use crate::auth::Auth;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// How the HTTP server treats connections and browsers (`[server]` in the
/// configuration file).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Origins allowed by CORS (`https://app.example`), `*` for any; empty:
    /// no CORS headers (browsers on other origins cannot read responses).
    pub cors_origins: Vec<String>,
    /// The longest a client may take to send a request head, from its first byte.
    pub header_timeout: Duration,
    /// The longest a connection may stay silent between requests.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// `[auth]`: who may read what (`None`: everyone reads everything).
    pub auth: Option<Arc<Auth>>,
    /// `[audit]`: one line per read of a view.
    pub audit: Option<Arc<AuditLog>>,
    /// The engine's command channel behind `POST /admin/*` (`None`: 404).
    pub admin: Option<crate::admin::Admin>,
}

pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            cors_origins: vec![],
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            auth: None,
            audit: None,
            admin: None,
        }
    }
}

impl ServeOptions {
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// What the watchdog of one connection knows.
#[derive(Debug)]
struct Activity {
    /// Requests being handled.
    in_flight: usize,
    /// When the connection last became idle (accepted, or a response done).
    idle_since: Instant,
    /// The first byte read since then: a request head is arriving.
    head_started: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity { in_flight: 0, idle_since: Instant::now(), head_started: None }
    }

    /// When the connection is due to be closed, if it is idle.
    fn deadline(&self, options: &ServeOptions) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match self.head_started {
            Some(started) => started + options.header_timeout,
            None => self.idle_since + options.idle_timeout,
        })
    }
}

type Shared = Arc<Mutex<Activity>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Activity> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A stream that notes the bytes read into its [`Activity`].
struct Tracked {
    io: TcpStream,
    activity: Shared,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            let mut activity = lock(&self.activity);
            if activity.in_flight == 0 && activity.head_started.is_none() {
                activity.head_started = Some(Instant::now());
            }
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Marks a request in flight for its lifetime.
struct InFlight(Shared);

impl InFlight {
    fn start(shared: &Shared) -> InFlight {
        let mut activity = lock(shared);
        activity.in_flight += 1;
        activity.head_started = None;
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut activity = lock(&self.0);
        activity.in_flight = activity.in_flight.saturating_sub(1);
        if activity.in_flight == 0 {
            activity.idle_since = Instant::now();
            activity.head_started = None;
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// open connections finish their requests.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let max = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let options = Arc::new(options);
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are small and latency is the point: no Nagle delay.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (router, options, stopped) = (router.clone(), options.clone(), stopped.clone());
        tokio::spawn(async move {
            serve_one(tcp, peer, router, &options, stopped).await;
            drop(permit);
        });
    }
    let _ = stop.send(true);
    // Every connection returns its permit when it ends.
    let _ = permits.acquire_many(max as u32).await;
    Ok(())
}

async fn serve_one(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    options: &ServeOptions,
    mut stopped: watch::Receiver<bool>,
) {
    let activity: Shared = Arc::new(Mutex::new(Activity::new()));
    let io = TokioIo::new(Tracked { io: tcp, activity: activity.clone() });
    let tracker = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        // The peer address, for the loopback checks (/dlq, /admin): one
        // extension (each costs an allocation a request).
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let guard = InFlight::start(&tracker);
        let router = router.clone();
        async move {
            let request = request.map(axum::body::Body::new);
            let response = tower_call(router, request).await;
            drop(guard);
            response
        }
    });
    let connection = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, service);
    let mut connection = pin!(connection);
    let mut stopping = false;
    loop {
        let deadline = lock(&activity).deadline(options);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                // Handling a request: look again shortly.
                None => tokio::time::sleep(options.header_timeout.min(Duration::from_secs(1))).await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = sleep => {
                if lock(&activity).deadline(options).is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!("closing a slow or idle connection");
                    return;
                }
            }
            changed = stopped.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn tower_call(
    mut router: Router,
    request: axum::http::Request<axum::body::Body>,
) -> Result<axum::response::Response, std::convert::Infallible> {
    use tower_service::Service;
    // A Router is always ready.
    Service::call(&mut router, request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        let options = ServeOptions {
            header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let now = Instant::now();
        let mut a = Activity { in_flight: 0, idle_since: now, head_started: None };
        assert_eq!(a.deadline(&options), Some(now + Duration::from_secs(30)));
        a.head_started = Some(now + Duration::from_secs(1));
        assert_eq!(a.deadline(&options), Some(now + Duration::from_secs(3)));
        a.in_flight = 1;
        assert_eq!(a.deadline(&options), None);
        assert!(!options.allows_origin("x"));
        let any = ServeOptions { cors_origins: vec!["*".into()], ..Default::default() };
        assert!(any.allows_origin("https://a.example"));
    }
}
