//! What the serving benches share: the scale knob, random keys, the
//! machine's load, the server's runtime, and the load generator
//! ([`load`]: 64 connections on one async thread, closed and open loop).

#![allow(dead_code)]

pub mod load;

/// `n` scaled by `DENORM_BENCH_SCALE` (default 1), at least 1.
pub fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64) * s).max(1.0) as usize
}

/// An environment variable as a number, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The load average, printed beside the figures (the machine is shared).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or("load unknown".into(), |l| {
        format!("load {}", l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
    })
}

/// xorshift64: keys to look up.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The server's runtime: `DENORM_BENCH_SERVER_THREADS` workers (default
/// 1: the load generator's thread has the other core of a 2-core machine);
/// `DENORM_BENCH_SERVER_RUNTIME=current`: a current-thread runtime driven
/// by a thread of its own instead (one thread, no work-stealing machinery).
pub fn server_runtime() -> ServerRuntime {
    if std::env::var("DENORM_BENCH_SERVER_RUNTIME").is_ok_and(|v| v == "current") {
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                send.send(runtime.handle().clone()).unwrap();
                runtime.block_on(std::future::pending::<()>());
            })
            .unwrap();
        return ServerRuntime { handle: receive.recv().unwrap(), _runtime: None };
    }
    let workers = env_or("DENORM_BENCH_SERVER_THREADS", 1).max(1) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
    ServerRuntime { handle: runtime.handle().clone(), _runtime: Some(runtime) }
}

/// The server's runtime, used through its handle (`block_on`, `spawn`).
pub struct ServerRuntime {
    handle: tokio::runtime::Handle,
    _runtime: Option<tokio::runtime::Runtime>,
}

impl std::ops::Deref for ServerRuntime {
    type Target = tokio::runtime::Handle;

    fn deref(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}
