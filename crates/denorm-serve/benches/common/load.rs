//! The load generator of the lookup benches, as a load-testing tool drives
//! a server: every connection is a future on ONE thread (a tokio
//! current-thread runtime), so the clients use one core at most and the
//! server's latency is not the run queue of 64 client threads.
//!
//! Two modes, both over the same connections:
//! - closed loop: each connection sends its next lookup when the previous
//!   answer arrives (saturation throughput, and the queueing it causes);
//! - open loop at an offered rate: lookup `i` is intended at
//!   `start + i/rate` on connection `i mod n`, whether or not that
//!   connection's previous answer was late (a busy connection queues its
//!   sends), and each latency is measured from the *intended* send time
//!   (coordinated omission corrected, as wrk2 does): a stall counts against
//!   every lookup that should have been sent during it. The schedule is
//!   kept by a ticker thread with `nanosleep` precision; it only hands out
//!   send times, all I/O stays on the driver's thread.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Rng;

/// One client connection that can look a key up.
pub trait Lookup {
    /// Looks `key` up and checks the answer (panics on a wrong one: a
    /// benchmark of wrong answers is worthless).
    fn lookup(&mut self, key: i64) -> impl Future<Output = ()>;
}

/// Latencies (ns) of one phase and how long it took.
pub struct Phase {
    pub samples: Vec<u64>,
    pub elapsed: Duration,
    /// CPU time of the client thread during the phase (user + system).
    pub client_cpu: Duration,
    /// CPU time of the whole process (clients and server) during the phase.
    pub process_cpu: Duration,
}

impl Phase {
    pub fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The sample at quantile `q` (nearest rank), in µs.
    pub fn quantile_us(&mut self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        self.samples.sort_unstable();
        let at = ((self.samples.len() as f64 * q).ceil() as usize).clamp(1, self.samples.len()) - 1;
        self.samples[at] as f64 / 1e3
    }

    /// `p50 p99 p99.9 max` in µs.
    pub fn summary(&mut self) -> [f64; 4] {
        [self.quantile_us(0.5), self.quantile_us(0.99), self.quantile_us(0.999), self.quantile_us(1.0)]
    }
}

/// CPU time (user + system) from a `/proc/…/stat` file, in clock ticks
/// of 10 ms (fields 14 and 15).
fn cpu_ticks(path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else { return 0 };
    // The command name (field 2) may hold spaces: count from its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    tick(11) + tick(12)
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 10)
}

/// The driver: a current-thread runtime and the connections on it.
pub struct Driver<C> {
    pub runtime: tokio::runtime::Runtime,
    pub connections: Vec<C>,
    rows: u64,
}

impl<C: Lookup> Driver<C> {
    /// `n` connections from `connect` (run on the driver's runtime), over
    /// keys `1..=rows`.
    pub fn new<F: Future<Output = C>>(n: usize, rows: u64, connect: impl Fn() -> F) -> Driver<C> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let connections = runtime.block_on(futures::future::join_all((0..n).map(|_| connect())));
        Driver { runtime, connections, rows }
    }

    /// Every connection looks up `per_connection` random keys, untimed.
    pub fn warm_up(&mut self, per_connection: usize) {
        let rows = self.rows;
        self.runtime.block_on(futures::future::join_all(self.connections.iter_mut().enumerate().map(
            |(c, connection)| async move {
                let mut rng = Rng(0x51_7cc1_b727_220a ^ ((c as u64 + 1) * 0x2545_f491));
                for _ in 0..per_connection {
                    connection.lookup(1 + rng.below(rows) as i64).await;
                }
            },
        )));
    }

    /// Closed loop for `duration`: back-to-back lookups on every connection.
    pub fn closed(&mut self, duration: Duration) -> Phase {
        self.phase(None, duration)
    }

    /// Open loop at `rate` lookups/s over all connections for `duration`.
    pub fn open(&mut self, rate: f64, duration: Duration) -> Phase {
        self.phase(Some(rate), duration)
    }

    fn phase(&mut self, rate: Option<f64>, duration: Duration) -> Phase {
        let (rows, n) = (self.rows, self.connections.len());
        let (client_before, process_before) = (cpu_ticks("/proc/thread-self/stat"), cpu_ticks("/proc/self/stat"));
        let start = Instant::now() + Duration::from_millis(5);
        let end = start + duration;
        // Open loop: the ticker thread hands each connection its intended
        // send times; a connection still busy finds them queued.
        let (senders, mut receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
                (tx, Some(rx))
            })
            .unzip();
        let ticker = rate.map(|rate| std::thread::spawn(move || tick(senders, start, end, rate)));
        let per_connection = self.runtime.block_on(futures::future::join_all(
            self.connections.iter_mut().zip(receivers.iter_mut()).enumerate().map(|(c, (connection, rx))| {
                let mut rx = rx.take().expect("one receiver per connection");
                async move {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((c as u64 + 1) * 0x2545_f491));
                    let mut samples = Vec::new();
                    if rate.is_none() {
                        tokio::time::sleep_until(start.into()).await;
                        while Instant::now() < end {
                            let sent = Instant::now();
                            connection.lookup(1 + rng.below(rows) as i64).await;
                            samples.push(sent.elapsed().as_nanos() as u64);
                        }
                    }
                    while let Some(intended) = rx.recv().await {
                        connection.lookup(1 + rng.below(rows) as i64).await;
                        samples.push(intended.elapsed().as_nanos() as u64);
                    }
                    samples
                }
            }),
        ));
        if let Some(ticker) = ticker {
            ticker.join().expect("the ticker thread panicked");
        }
        let elapsed = start.elapsed();
        let client_cpu = ticks(cpu_ticks("/proc/thread-self/stat").saturating_sub(client_before));
        let process_cpu = ticks(cpu_ticks("/proc/self/stat").saturating_sub(process_before));
        Phase { samples: per_connection.into_iter().flatten().collect(), elapsed, client_cpu, process_cpu }
    }
}

/// The open loop's clock, on a thread of its own (tokio's timer ticks in
/// milliseconds; `nanosleep` does not): lookup `i` is intended at
/// `start + i/rate` on connection `i mod n`. It wakes at most every
/// [`TICK`], handing out every send time due by then, so a send leaves at
/// most a tick (plus the thread's wake-up) after its intended time, and
/// that delay counts in the latency too.
fn tick(senders: Vec<tokio::sync::mpsc::UnboundedSender<Instant>>, start: Instant, end: Instant, rate: f64) {
    let n = senders.len();
    let intended = |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
    let mut i: u64 = 0;
    while intended(i) < end {
        let now = Instant::now();
        if intended(i) > now {
            std::thread::sleep((intended(i) - now).max(TICK));
        }
        let now = Instant::now();
        while intended(i) <= now && intended(i) < end {
            let _ = senders[i as usize % n].send(intended(i));
            i += 1;
        }
    }
    // Dropping the senders ends the connections' loops.
}

/// The open loop's pacing granularity.
const TICK: Duration = Duration::from_micros(50);

/// An HTTP/1.1 keep-alive connection that writes `GET {path}{key}` and
/// reads the response by its `Content-Length` (what a load generator
/// does; no HTTP library's work on the client's core).
pub struct HttpClient {
    stream: TcpStream,
    host: String,
    path: String,
    request: Vec<u8>,
    buffer: Vec<u8>,
    /// The body must start with this.
    expect: &'static str,
}

impl HttpClient {
    pub async fn connect(address: std::net::SocketAddr, path: &str, expect: &'static str) -> HttpClient {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        HttpClient {
            stream,
            host: address.to_string(),
            path: path.to_owned(),
            request: Vec::with_capacity(256),
            buffer: Vec::with_capacity(4096),
            expect,
        }
    }

    /// Reads until the head is complete: its length and the body's.
    async fn read_head(&mut self) -> (usize, usize) {
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end]).expect("a UTF-8 response head");
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
                    })
                    .expect("a Content-Length");
                return (end + 4, length);
            }
            self.fill().await;
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        self.buffer.extend_from_slice(&chunk[..n]);
    }
}

impl Lookup for HttpClient {
    async fn lookup(&mut self, key: i64) {
        use std::io::Write;
        self.request.clear();
        write!(self.request, "GET {}{key} HTTP/1.1\r\nHost: {}\r\n\r\n", self.path, self.host).unwrap();
        self.stream.write_all(&self.request).await.unwrap();
        let (head, length) = self.read_head().await;
        while self.buffer.len() < head + length {
            self.fill().await;
        }
        let body = &self.buffer[head..head + length];
        assert!(body.starts_with(self.expect.as_bytes()), "{}", String::from_utf8_lossy(body));
        self.buffer.drain(..head + length);
    }
}

/// A PostgreSQL-protocol connection (tokio-postgres) with `statement`
/// prepared: a lookup binds the key and checks the first column.
pub struct PgClient {
    client: tokio_postgres::Client,
    statement: tokio_postgres::Statement,
}

impl PgClient {
    pub async fn connect(url: &str, statement: &str) -> PgClient {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("a bench connection ended: {e}");
            }
        });
        let statement = client.prepare(statement).await.unwrap();
        PgClient { client, statement }
    }
}

impl Lookup for PgClient {
    async fn lookup(&mut self, key: i64) {
        let row = self.client.query_one(&self.statement, &[&key]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), key);
    }
}

/// The offered rates of the open-loop phases: `DENORM_BENCH_RATES`
/// (comma-separated lookups/s), default 5k, 10k, 20k, 40k.
pub fn rates() -> Vec<f64> {
    std::env::var("DENORM_BENCH_RATES")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect::<Vec<f64>>())
        .filter(|r| !r.is_empty())
        .map(|mut r| {
            r.sort_by(f64::total_cmp);
            r
        })
        .unwrap_or_else(|| vec![5_000.0, 10_000.0, 20_000.0, 40_000.0])
}

/// One target's closed-loop phase and open-loop phases, as table rows.
pub struct Report {
    pub target: String,
    pub lines: Vec<(String, f64, [f64; 4], f64, f64)>,
    /// The highest offered rate up to which every p99 was under 1 ms.
    pub under_1ms: Option<f64>,
}

/// Runs the closed loop then every open-loop rate on `driver`.
pub fn measure<C: Lookup>(target: &str, driver: &mut Driver<C>, seconds: Duration) -> Report {
    let mut lines = Vec::new();
    let (mut under_1ms, mut held) = (None, true);
    let mut record = |mode: String, mut phase: Phase| {
        let summary = phase.summary();
        let secs = phase.elapsed.as_secs_f64().max(1e-9);
        let cpu = (phase.client_cpu.as_secs_f64() / secs, phase.process_cpu.as_secs_f64() / secs);
        lines.push((mode, phase.rate(), summary, cpu.0, cpu.1));
        summary
    };
    record("closed loop".into(), driver.closed(seconds));
    for rate in rates() {
        let summary = record(format!("open {:.0}k/s", rate / 1e3), driver.open(rate, seconds));
        held &= summary[1] < 1000.0;
        if held {
            under_1ms = Some(rate);
        }
    }
    Report { target: target.to_owned(), lines, under_1ms }
}

/// Prints the reports side by side (one table).
pub fn print(reports: &[Report]) {
    println!(
        "  {:<34} {:<14} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "target", "mode", "lookups/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "client", "process"
    );
    for report in reports {
        for (mode, rate, [p50, p99, p999, max], client, process) in &report.lines {
            println!(
                "  {:<34} {mode:<14} {rate:>10.0} {p50:>9.0} {p99:>9.0} {p999:>9.0} {max:>9.0} {:>6.0}% {:>6.0}%",
                report.target,
                client * 100.0,
                process * 100.0
            );
        }
    }
    for report in reports {
        match report.under_1ms {
            Some(rate) => println!("  {}: p99 < 1 ms up to {rate:.0} lookups/s offered", report.target),
            None => println!("  {}: p99 < 1 ms at none of the offered rates", report.target),
        }
    }
}
