//! What the serving benches share: the scale knob, random keys, the
//! machine's load, and the driver that runs concurrent lookups and times
//! each one.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

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

/// How long each client looks up.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// Every client until this much time has passed.
    Elapsed(Duration),
    /// Each client this many lookups.
    Lookups(usize),
}

/// Runs `clients` threads, each with its own state from `connect`, doing
/// `warmup` untimed lookups, then (all together, after a barrier) timed
/// lookups of random keys in `1..=rows` until `until`: every lookup's
/// latency in µs, and lookups per second.
pub fn hammer<C>(
    clients: usize,
    rows: u64,
    warmup: usize,
    until: Until,
    connect: &(impl Fn() -> C + Sync),
    lookup: &(impl Fn(&mut C, i64) + Sync),
) -> (Vec<f64>, f64) {
    let barrier = Barrier::new(clients + 1);
    let stop = AtomicBool::new(false);
    let (samples, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (barrier, stop) = (&barrier, &stop);
                scope.spawn(move || {
                    let mut client = connect();
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((c as u64 + 1) * 0x2545_f491));
                    for _ in 0..warmup {
                        lookup(&mut client, 1 + rng.below(rows) as i64);
                    }
                    barrier.wait();
                    let start = Instant::now();
                    let mut times = Vec::new();
                    loop {
                        let done = match until {
                            Until::Elapsed(_) => stop.load(Ordering::Relaxed),
                            Until::Lookups(n) => times.len() >= n,
                        };
                        if done {
                            break;
                        }
                        let key = 1 + rng.below(rows) as i64;
                        let t = Instant::now();
                        lookup(&mut client, key);
                        times.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    (times, start.elapsed())
                })
            })
            .collect();
        barrier.wait();
        if let Until::Elapsed(duration) = until {
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
        }
        let mut all = Vec::new();
        let mut longest = Duration::ZERO;
        for handle in handles {
            let (times, elapsed) = handle.join().expect("a client thread panicked");
            all.extend(times);
            longest = longest.max(elapsed);
        }
        (all, longest)
    });
    let rate = samples.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    (samples, rate)
}
