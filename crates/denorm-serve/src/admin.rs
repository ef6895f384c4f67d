//! The admin surface: `POST /admin/*` requests handed to the engine thread
//! over a command channel and answered by it between batches.
//!
//! ```text
//!  POST /admin/reload ──┐                          ┌── engine thread, between batches:
//!  POST /admin/reconcile├─ AdminCommand ─► channel ─┤   AdminInbox::try_next → handle →
//!  SIGHUP (denorm run) ─┘   + oneshot reply         └── AdminReply { status, JSON body }
//! ```
//!
//! Who may call it: without `[auth]`, only clients on a loopback address
//! (the peer address of the TCP connection, see `server.rs`); with
//! `[auth]`, a bearer token whose role has `admin = true`, from anywhere.
//! A new command (a sink's reconcile, a dead-letter retry) is one
//! [`AdminCommand`] variant, one route here and one arm in the engine.

use std::net::SocketAddr;
use std::sync::mpsc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::http::App;

/// What the engine is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Re-read the configuration and the views files; apply them or refuse
    /// them whole.
    Reload,
    /// Compare `views` (empty: every view) with the source at the position
    /// they reached; with `repair`, fix what differs.
    Reconcile { views: Vec<String>, repair: bool },
    /// Compare sink `sink`'s rows with its views at the same position; with
    /// `repair`, write what differs.
    ReconcileSink { sink: String, repair: bool },
}

/// The engine's answer: an HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminReply {
    pub status: u16,
    pub body: serde_json::Value,
}

impl AdminReply {
    pub fn ok(body: serde_json::Value) -> AdminReply {
        AdminReply { status: 200, body }
    }

    /// A refusal: `status` with `{"error": message, "errors": [...]}`.
    pub fn refused(status: u16, message: impl Into<String>, errors: Vec<String>) -> AdminReply {
        AdminReply { status, body: serde_json::json!({ "error": message.into(), "errors": errors }) }
    }
}

/// One request in the channel: the command and where to answer it.
#[derive(Debug)]
pub struct AdminRequest {
    pub command: AdminCommand,
    pub reply: oneshot::Sender<AdminReply>,
}

impl AdminRequest {
    /// Answers the request (a caller that went away is not an error).
    pub fn answer(self, reply: AdminReply) {
        let _ = self.reply.send(reply);
    }
}

/// The asking side: cloned into the HTTP server and the signal handler.
#[derive(Debug, Clone)]
pub struct Admin {
    tx: mpsc::Sender<AdminRequest>,
}

/// The engine's side of the channel.
#[derive(Debug)]
pub struct AdminInbox {
    rx: mpsc::Receiver<AdminRequest>,
}

/// A connected pair: requests sent on the [`Admin`] arrive in the [`AdminInbox`].
pub fn admin_channel() -> (Admin, AdminInbox) {
    let (tx, rx) = mpsc::channel();
    (Admin { tx }, AdminInbox { rx })
}

impl Admin {
    /// Sends `command` to the engine and waits for its answer; 503 when the
    /// engine is gone or dropped the request (it stopped meanwhile).
    pub async fn ask(&self, command: AdminCommand) -> AdminReply {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(AdminRequest { command, reply }).is_err() {
            return AdminReply::refused(503, "the engine is not running", vec![]);
        }
        answer
            .await
            .unwrap_or_else(|_| AdminReply::refused(503, "the engine stopped before answering (see the log)", vec![]))
    }
}

impl AdminInbox {
    /// The next waiting request, if any (never blocks).
    pub fn try_next(&self) -> Option<AdminRequest> {
        self.rx.try_recv().ok()
    }
}

/// The `/admin` routes (404 when the server has no admin channel).
pub(crate) fn routes() -> Router<App> {
    Router::new().route("/admin/reload", post(reload)).route("/admin/reconcile", post(reconcile))
}

/// `POST /admin/reconcile` body (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileBody {
    #[serde(default)]
    views: Vec<String>,
    #[serde(default)]
    repair: bool,
    /// A `[[sink]]`'s name: compare the sink with the views instead.
    #[serde(default)]
    sink: Option<String>,
}

/// The largest reconcile request body read.
const MAX_BODY: usize = 1 << 20;

async fn reload(State(app): State<App>, request: Request) -> Response {
    match admitted(&app, peer(&request), request.headers()) {
        Ok(admin) => respond(admin.ask(AdminCommand::Reload).await),
        Err(refusal) => respond(refusal),
    }
}

async fn reconcile(State(app): State<App>, request: Request) -> Response {
    let admin = match admitted(&app, peer(&request), request.headers()) {
        Ok(admin) => admin.clone(),
        Err(refusal) => return respond(refusal),
    };
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_BODY).await else {
        return respond(AdminReply::refused(400, "the request body could not be read (at most 1 MiB)", vec![]));
    };
    let body: ReconcileBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReconcileBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => {
                return respond(AdminReply::refused(
                    400,
                    format!("the body is not a reconcile request: {e}"),
                    vec![
                        "send {\"views\": [\"name\", …], \"repair\": false} or {\"sink\": \"name\", \"repair\": false} \
                         (all optional)"
                            .into(),
                    ],
                ))
            }
        }
    };
    let command = match body.sink {
        Some(_) if !body.views.is_empty() => {
            return respond(AdminReply::refused(
                400,
                "a sink reconcile compares every view of the sink",
                vec!["send either \"views\" or \"sink\"".into()],
            ))
        }
        Some(sink) => AdminCommand::ReconcileSink { sink, repair: body.repair },
        None => AdminCommand::Reconcile { views: body.views, repair: body.repair },
    };
    respond(admin.ask(command).await)
}

/// The TCP peer of the connection (set by `server.rs`).
fn peer(request: &Request) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// The admin channel when the caller may use it, else the refusal.
fn admitted<'a>(app: &'a App, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<&'a Admin, AdminReply> {
    let Some(admin) = &app.options.admin else {
        return Err(AdminReply::refused(404, "this server has no admin surface", vec![]));
    };
    match &app.options.auth {
        None => match peer {
            Some(addr) if addr.ip().is_loopback() => Ok(admin),
            _ => Err(AdminReply::refused(
                403,
                "the admin surface answers only loopback clients",
                vec!["call it from the same machine, or configure [auth] and use a role with admin = true".into()],
            )),
        },
        Some(auth) => {
            let caller = app.caller(headers, None, "").map_err(|e| AdminReply::refused(401, e.to_string(), vec![]))?;
            match caller {
                Some(principal) if auth.roles.get(&principal.role).is_some_and(|r| r.admin) => Ok(admin),
                Some(principal) => Err(AdminReply::refused(
                    403,
                    format!("role {} may not use the admin surface", principal.role),
                    vec!["use a role with admin = true in [auth.roles.*]".into()],
                )),
                None => Err(AdminReply::refused(401, "a bearer token is required", vec![])),
            }
        }
    }
}

fn respond(reply: AdminReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::to_vec_pretty(&reply.body).unwrap_or_default();
    body.push(b'\n');
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request sent on the channel arrives in the inbox and its answer
    /// reaches the asker; a dropped inbox makes asking a 503.
    #[tokio::test]
    async fn requests_reach_the_inbox_and_answers_come_back() {
        let (admin, inbox) = admin_channel();
        let engine = std::thread::spawn(move || loop {
            if let Some(request) = inbox.try_next() {
                let echo = format!("{:?}", request.command);
                request.answer(AdminReply::ok(serde_json::json!({ "got": echo })));
                return inbox;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        });
        let reply = admin.ask(AdminCommand::Reconcile { views: vec!["v".into()], repair: true }).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["got"], "Reconcile { views: [\"v\"], repair: true }");
        drop(engine.join().unwrap());
        let reply = admin.ask(AdminCommand::Reload).await;
        assert_eq!(reply.status, 503, "{reply:?}");
    }

    async fn post(router: &mut Router, path: &str, peer: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let mut request =
            Request::builder().method("POST").uri(path).body(axum::body::Body::from(body.to_owned())).unwrap();
        if let Some(peer) = peer {
            request.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        }
        let response = tower_service::Service::call(router, request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// Only loopback clients reach the engine; a bad body is refused before
    /// it; a server without the channel has no admin surface.
    #[tokio::test]
    async fn only_loopback_clients_are_admitted() {
        let (admin, inbox) = admin_channel();
        let engine = std::thread::spawn(move || {
            let mut answered = 0;
            while answered < 2 {
                if let Some(request) = inbox.try_next() {
                    let command = format!("{:?}", request.command);
                    request.answer(AdminReply::ok(serde_json::json!({ "command": command })));
                    answered += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let (_, reader) = crate::channel(vec![]);
        let options = crate::ServeOptions { admin: Some(admin), ..Default::default() };
        let mut router = crate::http::router_configured(reader.clone(), None, options);
        let (status, body) = post(&mut router, "/admin/reload", Some("10.1.2.3:4000"), "").await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(post(&mut router, "/admin/reload", None, "").await.0, 403);
        let (status, body) = post(&mut router, "/admin/reconcile", Some("127.0.0.1:5000"), "{\"viewz\": 1}").await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = post(&mut router, "/admin/reload", Some("[::1]:5000"), "").await;
        assert_eq!((status, body["command"].as_str()), (200, Some("Reload")));
        let (status, body) =
            post(&mut router, "/admin/reconcile", Some("127.0.0.1:5000"), "{\"views\": [\"v\"], \"repair\": true}")
                .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["command"], "Reconcile { views: [\"v\"], repair: true }");
        engine.join().unwrap();
        let mut bare = crate::http::router_configured(reader, None, crate::ServeOptions::default());
        assert_eq!(post(&mut bare, "/admin/reload", Some("127.0.0.1:1"), "").await.0, 404);
    }

    async fn post_with(router: &mut Router, peer: &str, token: Option<&str>) -> u16 {
        let mut request = Request::builder().method("POST").uri("/admin/reload");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut request = request.body(axum::body::Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        tower_service::Service::call(router, request).await.unwrap().status().as_u16()
    }

    /// Under `[auth]`, a token whose role has `admin = true` is admitted
    /// from any address; another role is refused (403), no token is 401.
    #[tokio::test]
    async fn under_auth_only_admin_roles_are_admitted() {
        use crate::auth::{Auth, Keys, Role};
        use jsonwebtoken::{encode, EncodingKey, Header};
        let secret = b"a-secret-of-at-least-32-bytes-for-hs256".to_vec();
        let mut roles = std::collections::BTreeMap::new();
        roles.insert("ops".to_string(), Role { admin: true, ..Role::default() });
        roles.insert("watcher".to_string(), Role { monitor: true, ..Role::default() });
        let auth = Auth {
            keys: Some(Keys::Secret(secret.clone())),
            role_claim: vec!["role".into()],
            anonymous_role: None,
            audience: None,
            roles,
            users: Default::default(),
            verified: Default::default(),
        };
        let token = |role: &str| {
            let claims = serde_json::json!({ "role": role, "exp": 4_000_000_000u64 });
            encode(&Header::default(), &claims, &EncodingKey::from_secret(&secret).unwrap()).unwrap()
        };
        let (admin, inbox) = admin_channel();
        let engine = std::thread::spawn(move || loop {
            if let Some(request) = inbox.try_next() {
                request.answer(AdminReply::ok(serde_json::json!({})));
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        });
        let (_, reader) = crate::channel(vec![]);
        let options =
            crate::ServeOptions { admin: Some(admin), auth: Some(std::sync::Arc::new(auth)), ..Default::default() };
        let mut router = crate::http::router_configured(reader, None, options);
        assert_eq!(post_with(&mut router, "10.0.0.9:1", None).await, 401);
        assert_eq!(post_with(&mut router, "127.0.0.1:1", Some(&token("watcher"))).await, 403);
        assert_eq!(post_with(&mut router, "10.0.0.9:1", Some(&token("ops"))).await, 200);
        engine.join().unwrap();
    }
}
