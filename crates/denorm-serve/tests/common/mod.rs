//! A real server on 127.0.0.1:0 and a blocking HTTP client for tests.

#![allow(dead_code)]

use std::sync::Arc;

use denorm_serve::{Fallback, Reader, ServeOptions};
use tokio::sync::oneshot;

/// A view column for the tests' `ViewInfo`s.
pub fn column(name: &str, ty: denorm_types::ScalarType) -> denorm_serve::ColumnInfo {
    denorm_serve::ColumnInfo { name: name.into(), ty }
}

/// A server running on its own tokio runtime; stops when dropped.
pub struct Server {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    runtime: tokio::runtime::Runtime,
    agent: ureq::Agent,
}

impl Server {
    pub fn start(reader: Reader) -> Server {
        Server::start_with(reader, None)
    }

    /// A server whose stale `on_stale = 'fallback'` views use `fallback`.
    pub fn start_with(reader: Reader, fallback: Option<Arc<dyn Fallback>>) -> Server {
        Server::start_configured(reader, fallback, ServeOptions::default())
    }

    /// A server under `options` (CORS, timeouts, connection limit).
    pub fn start_configured(reader: Reader, fallback: Option<Arc<dyn Fallback>>, options: ServeOptions) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(denorm_serve::serve_configured(listener, reader, fallback, options, async {
            let _ = stopped.await;
        }));
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Server { url, stop: Some(stop), task: Some(task), runtime, agent }
    }

    /// GETs `path` (with its query string, already URL-encoded).
    pub fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[])
    }

    /// GETs `path` with extra request headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(format!("{}{}", self.url, path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call().unwrap();
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let position = header("denorm-position");
        let content_type = header("content-type").unwrap_or_default();
        let served_by = header("denorm-served-by");
        let stale = header("denorm-stale");
        let body = response.body_mut().read_to_string().unwrap();
        Reply { status, position, content_type, served_by, stale, body }
    }

    /// GETs `path` and parses the body as JSON.
    pub fn json(&self, path: &str) -> (u16, serde_json::Value) {
        let reply = self.get(path);
        let value = serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", reply.body));
        (reply.status, value)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = self.runtime.block_on(task);
            if !std::thread::panicking() {
                result.unwrap().unwrap();
            }
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub position: Option<String>,
    pub content_type: String,
    /// `Denorm-Served-By`: "view" or "source".
    pub served_by: Option<String>,
    /// `Denorm-Stale`.
    pub stale: Option<String>,
    pub body: String,
}

/// A raw HTTP/1.1 exchange over its own connection (`Connection: close`):
/// any method, every response header.
pub fn raw_request(url: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> RawReply {
    use std::io::{Read, Write};
    let address = url.strip_prefix("http://").unwrap();
    let mut tcp = std::net::TcpStream::connect(address).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawReply { status, headers, body: body.to_owned() }
}

#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}
