//! A replication connection (`replication=database`), spoken directly over a
//! blocking socket: start-up and authentication (cleartext, MD5,
//! SCRAM-SHA-256), simple queries (`CREATE_REPLICATION_SLOT`, …) and the
//! CopyBoth stream of `START_REPLICATION`.
//!
//! Why not tokio-postgres: its 0.7 releases have no CopyBoth sub-protocol,
//! which logical replication needs. Message framing is ours;
//! `postgres-protocol` writes the frontend messages and computes SCRAM.
//!
//! TLS is not spoken here yet: the connection is refused for
//! `sslmode=require` (see [`connect`]).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use postgres::config::{Host, SslMode};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;

use super::types::SESSION_SETTINGS;

/// What went wrong on a replication connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("I/O error on the replication connection")]
    Io(#[from] io::Error),
    #[error("the server closed the replication connection")]
    Closed,
    /// The server ended the replication stream (CopyDone or
    /// CommandComplete): it is shutting down or restarting. Transient.
    #[error("the server ended the replication stream (it is shutting down or restarting)")]
    Ended,
    #[error("{0}")]
    Server(Box<ServerError>),
    #[error("the server sent {0}, which denorm did not expect here (a bug, or a server denorm does not support)")]
    Protocol(String),
    #[error("the server asks for authentication method {0}, which denorm does not support; use scram-sha-256, md5 or password in pg_hba.conf")]
    UnsupportedAuthentication(String),
    #[error("the server asks for a password, and the URL has none")]
    PasswordMissing,
    #[error("TLS (sslmode=require) is not supported on replication connections yet; use sslmode=disable or prefer")]
    TlsRequired,
    #[error("the URL names no host")]
    NoHost,
}

impl WireError {
    /// Whether retrying later may succeed: the network, or a server error
    /// whose SQLSTATE says so (see [`is_transient_sqlstate`]).
    pub fn is_transient(&self) -> bool {
        match self {
            WireError::Io(_) | WireError::Closed | WireError::Ended => true,
            WireError::Server(e) => is_transient_sqlstate(&e.code),
            _ => false,
        }
    }

    /// The server's SQLSTATE, for server errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            WireError::Server(e) => Some(&e.code),
            _ => None,
        }
    }
}

/// SQLSTATEs of passing conditions: connection exceptions (08), operator
/// intervention such as a terminated backend or a shutdown (57P01–57P03),
/// insufficient resources (53), an object in use, such as a replication slot
/// another connection holds (55006), lock timeouts (55P03), serialization
/// failures and deadlocks (40001, 40P01).
pub fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "55006" | "55P03" | "40001" | "40P01")
}

/// An ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (SQLSTATE {})", self.severity, self.message, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, "; DETAIL: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; HINT: {hint}")?;
        }
        Ok(())
    }
}

/// Parses the fields of an ErrorResponse or NoticeResponse body.
fn parse_error(mut body: &[u8]) -> ServerError {
    let mut e =
        ServerError { severity: String::new(), code: String::new(), message: String::new(), detail: None, hint: None };
    while let Some((&kind, rest)) = body.split_first() {
        if kind == 0 {
            break;
        }
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let value = String::from_utf8_lossy(&rest[..end]).into_owned();
        body = rest.get(end + 1..).unwrap_or_default();
        match kind {
            b'V' => e.severity = value,
            b'S' if e.severity.is_empty() => e.severity = value,
            b'C' => e.code = value,
            b'M' => e.message = value,
            b'D' => e.detail = Some(value),
            b'H' => e.hint = Some(value),
            _ => {}
        }
    }
    e
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// One backend message: its tag and body.
struct Frame {
    tag: u8,
    body: Bytes,
}

/// A connection in `replication=database` mode.
pub struct ReplicationConnection {
    stream: Stream,
    read: BytesMut,
    write: BytesMut,
    /// The walsender's process id (BackendKeyData).
    pub backend_pid: i32,
}

impl std::fmt::Debug for ReplicationConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationConnection").field("backend_pid", &self.backend_pid).finish_non_exhaustive()
    }
}

/// Reads the socket at most this much at a time.
const READ_CHUNK: usize = 64 * 1024;
/// How long connecting may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a replication connection to the first host of `config` and
/// authenticates.
pub fn connect(config: &postgres::Config) -> Result<ReplicationConnection, WireError> {
    if config.get_ssl_mode() == SslMode::Require {
        return Err(WireError::TlsRequired);
    }
    let host = config.get_hosts().first().ok_or(WireError::NoHost)?;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let timeout = config.get_connect_timeout().copied().unwrap_or(CONNECT_TIMEOUT);
    let stream = match host {
        Host::Tcp(name) => Stream::Tcp(connect_tcp(name, port, timeout)?),
        Host::Unix(dir) => Stream::Unix(UnixStream::connect(dir.join(format!(".s.PGSQL.{port}")))?),
    };
    let mut conn = ReplicationConnection { stream, read: BytesMut::new(), write: BytesMut::new(), backend_pid: 0 };
    conn.stream.set_read_timeout(Some(timeout))?;
    conn.start_up(config)?;
    conn.stream.set_read_timeout(None)?;
    Ok(conn)
}

fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, WireError> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("no address for host {host}"));
    for address in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(WireError::Io(last))
}

fn user(config: &postgres::Config) -> String {
    config
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "postgres".to_string())
}

impl ReplicationConnection {
    fn start_up(&mut self, config: &postgres::Config) -> Result<(), WireError> {
        let user = user(config);
        let database = config.get_dbname().unwrap_or(&user).to_string();
        let application = config.get_application_name().unwrap_or("denorm").to_string();
        let mut parameters: Vec<(&str, &str)> = vec![
            ("user", &user),
            ("database", &database),
            ("replication", "database"),
            ("application_name", &application),
        ];
        parameters.extend(SESSION_SETTINGS);
        if let Some(options) = config.get_options() {
            parameters.push(("options", options));
        }
        frontend::startup_message(parameters, &mut self.write)?;
        self.flush()?;
        self.authenticate(config, &user)?;
        loop {
            let frame = self.next_frame()?;
            match frame.tag {
                b'K' => self.backend_pid = (&frame.body[..]).get_i32(),
                b'S' | b'N' => {}
                b'Z' => return Ok(()),
                b'E' => return Err(WireError::Server(Box::new(parse_error(&frame.body)))),
                tag => return Err(unexpected(tag, "after authentication")),
            }
        }
    }

    fn authenticate(&mut self, config: &postgres::Config, user: &str) -> Result<(), WireError> {
        let password = || config.get_password().ok_or(WireError::PasswordMissing);
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let frame = self.next_frame()?;
            if frame.tag == b'E' {
                return Err(WireError::Server(Box::new(parse_error(&frame.body))));
            }
            if frame.tag != b'R' {
                return Err(unexpected(frame.tag, "during authentication"));
            }
            let mut body = frame.body.clone();
            match body.get_i32() {
                0 => return Ok(()),
                3 => frontend::password_message(password()?, &mut self.write)?,
                5 => {
                    let salt: [u8; 4] = body[..4].try_into().map_err(|_| unexpected(b'R', "(short MD5 salt)"))?;
                    let hash = md5_hash(user.as_bytes(), password()?, salt);
                    frontend::password_message(hash.as_bytes(), &mut self.write)?;
                }
                10 => {
                    let mechanisms: Vec<&[u8]> = body.split(|&b| b == 0).collect();
                    if !mechanisms.contains(&sasl::SCRAM_SHA_256.as_bytes()) {
                        let offered = String::from_utf8_lossy(&body).replace('\0', " ");
                        return Err(WireError::UnsupportedAuthentication(format!("SASL ({})", offered.trim())));
                    }
                    let client = sasl::ScramSha256::new(password()?, sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, client.message(), &mut self.write)?;
                    scram = Some(client);
                }
                11 => {
                    let client = scram.as_mut().ok_or_else(|| unexpected(b'R', "(SASL continue before start)"))?;
                    client.update(&body)?;
                    frontend::sasl_response(client.message(), &mut self.write)?;
                }
                12 => {
                    let client = scram.as_mut().ok_or_else(|| unexpected(b'R', "(SASL final before start)"))?;
                    client.finish(&body)?;
                    continue;
                }
                code => return Err(WireError::UnsupportedAuthentication(format!("code {code}"))),
            }
            self.flush()?;
        }
    }

    /// Runs one simple-query command; returns its rows as text (NULL as
    /// `None`).
    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, WireError> {
        frontend::query(sql, &mut self.write)?;
        self.flush()?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let frame = self.next_frame()?;
            match frame.tag {
                b'D' => rows.push(data_row(&frame.body)),
                b'T' | b'C' | b'I' | b'N' | b'S' => {}
                b'E' => error = Some(parse_error(&frame.body)),
                b'Z' => return error.map_or(Ok(rows), |e| Err(WireError::Server(Box::new(e)))),
                tag => return Err(unexpected(tag, "in a query's results")),
            }
        }
    }

    /// Sends `START_REPLICATION …` and waits for the CopyBoth response.
    pub fn start_replication(&mut self, sql: &str) -> Result<(), WireError> {
        frontend::query(sql, &mut self.write)?;
        self.flush()?;
        loop {
            let frame = self.next_frame()?;
            match frame.tag {
                b'W' => return Ok(()),
                b'N' | b'S' => {}
                b'E' => {
                    let error = parse_error(&frame.body);
                    // The server ends the failed command with ReadyForQuery.
                    let _ = self.next_frame();
                    return Err(WireError::Server(Box::new(error)));
                }
                tag => return Err(unexpected(tag, "in reply to START_REPLICATION")),
            }
        }
    }

    /// The next CopyData payload of the replication stream, or `None` when
    /// nothing complete arrives before `deadline`.
    pub fn recv_copy_data(&mut self, deadline: Instant) -> Result<Option<Bytes>, WireError> {
        loop {
            if let Some(frame) = self.buffered_frame() {
                match frame.tag {
                    b'd' => return Ok(Some(frame.body)),
                    b'N' | b'S' => continue,
                    b'E' => return Err(WireError::Server(Box::new(parse_error(&frame.body)))),
                    // The server ends the stream: CopyDone, or (a walsender
                    // shutting down with the server, `WalSndDone`) straight
                    // CommandComplete and ReadyForQuery.
                    b'c' | b'C' | b'Z' => return Err(WireError::Ended),
                    tag => return Err(unexpected(tag, "in the replication stream")),
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // A zero timeout means "block forever" to the socket.
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(wait))?;
            match self.fill() {
                Ok(()) => {}
                Err(WireError::Io(e)) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one CopyData message (a standby status update).
    pub fn send_copy_data(&mut self, payload: &[u8]) -> Result<(), WireError> {
        frontend::CopyData::new(payload)?.write(&mut self.write);
        self.flush()
    }

    fn flush(&mut self) -> Result<(), WireError> {
        self.stream.write_all(&self.write)?;
        self.write.clear();
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Frame, WireError> {
        loop {
            if let Some(frame) = self.buffered_frame() {
                return Ok(frame);
            }
            self.fill()?;
        }
    }

    /// A complete message from the read buffer, if one is there.
    fn buffered_frame(&mut self) -> Option<Frame> {
        if self.read.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.read[1..5].try_into().expect("4 bytes")) as usize;
        if self.read.len() < 1 + len {
            self.read.reserve(1 + len - self.read.len());
            return None;
        }
        let mut frame = self.read.split_to(1 + len);
        let tag = frame[0];
        frame.advance(5);
        Some(Frame { tag, body: frame.freeze() })
    }

    /// Reads what the socket has into the buffer. A read interrupted by a
    /// signal (EINTR: a stopped process continued, a profiler) is retried.
    fn fill(&mut self) -> Result<(), WireError> {
        let start = self.read.len();
        self.read.resize(start + READ_CHUNK, 0);
        let read = loop {
            match self.stream.read(&mut self.read[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                self.read.truncate(start);
                return Err(e.into());
            }
        };
        self.read.truncate(start + n);
        if n == 0 {
            return Err(WireError::Closed);
        }
        Ok(())
    }
}

impl Drop for ReplicationConnection {
    fn drop(&mut self) {
        frontend::terminate(&mut self.write);
        let _ = self.flush();
    }
}

fn unexpected(tag: u8, when: &str) -> WireError {
    WireError::Protocol(format!("message '{}' {when}", tag as char))
}

fn data_row(mut body: &[u8]) -> Vec<Option<String>> {
    let count = body.get_i16().max(0) as usize;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = body.get_i32();
        if len < 0 {
            out.push(None);
        } else {
            let (value, rest) = body.split_at(len as usize);
            out.push(Some(String::from_utf8_lossy(value).into_owned()));
            body = rest;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_fields() {
        let body = b"SERROR\0VERROR\0C55006\0Mreplication slot \"denorm\" is active for PID 42\0Dd\0Hh\0\0";
        let e = parse_error(body);
        assert_eq!(e.code, "55006");
        assert_eq!(e.severity, "ERROR");
        assert_eq!(
            e.to_string(),
            "ERROR: replication slot \"denorm\" is active for PID 42 (SQLSTATE 55006); DETAIL: d; HINT: h"
        );
    }

    #[test]
    fn parses_data_rows() {
        let mut body = vec![0, 2, 0, 0, 0, 2, b'o', b'k'];
        body.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(data_row(&body), vec![Some("ok".to_string()), None]);
    }

    /// A walsender shutting down with its server sends CommandComplete
    /// (no CopyDone) and ReadyForQuery: the end of the stream, transient.
    #[test]
    fn command_complete_in_the_stream_ends_it() {
        for tags in [&b"CZ"[..], b"c", b"Z"] {
            let (ours, mut theirs) = UnixStream::pair().unwrap();
            let mut conn = ReplicationConnection {
                stream: Stream::Unix(ours),
                read: BytesMut::new(),
                write: BytesMut::new(),
                backend_pid: 0,
            };
            let mut bytes = vec![b'd', 0, 0, 0, 5, 42];
            for &tag in tags {
                let body: &[u8] = if tag == b'C' {
                    b"COPY 0\0"
                } else if tag == b'Z' {
                    b"I"
                } else {
                    b""
                };
                bytes.push(tag);
                bytes.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
                bytes.extend_from_slice(body);
            }
            theirs.write_all(&bytes).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            assert_eq!(conn.recv_copy_data(deadline).unwrap().as_deref(), Some(&[42u8][..]));
            let end = conn.recv_copy_data(deadline).unwrap_err();
            assert!(matches!(end, WireError::Ended) && end.is_transient(), "{end:?}");
        }
    }

    #[test]
    fn transient_sqlstates() {
        for (code, transient) in
            [("08006", true), ("57P01", true), ("55006", true), ("53300", true), ("42501", false), ("42704", false)]
        {
            assert_eq!(is_transient_sqlstate(code), transient, "{code}");
        }
    }
}
