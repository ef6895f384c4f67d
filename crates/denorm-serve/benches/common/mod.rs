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
/// 1: the load generator's thread has the other core of a 2-core machine).
pub fn server_runtime() -> tokio::runtime::Runtime {
    let workers = env_or("DENORM_BENCH_SERVER_THREADS", 1).max(1) as usize;
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap()
}
