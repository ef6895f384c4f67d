//! Helpers shared by the benchmarks.

use denorm_types::{ColumnSchema, ScalarType, TableSchema};

#[allow(dead_code)] // not every bench runs the maintenance workloads
pub mod workloads;

/// `n` scaled by `DENORM_BENCH_SCALE` (default 1.0), at least 1.
pub fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64) * s).max(1.0) as usize
}

/// A table whose first column is the primary key.
pub fn table(name: &str, columns: &[(&str, ScalarType)]) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: columns.iter().map(|(n, t)| ColumnSchema { name: (*n).into(), ty: *t, nullable: true }).collect(),
        primary_key: vec![0],
        unique_keys: vec![],
    }
}

/// Wall-clock and on-CPU time of the calling thread since `start`. On a
/// quiet machine the two agree; when other processes compete for the cores
/// the on-CPU time is the engine's own cost, so both are printed.
#[allow(dead_code)] // not every bench times with it
pub struct Clock {
    wall: std::time::Instant,
    cpu_ns: Option<u64>,
}

#[allow(dead_code)]
impl Clock {
    pub fn start() -> Clock {
        Clock { wall: std::time::Instant::now(), cpu_ns: thread_cpu_ns() }
    }

    /// (wall seconds, on-CPU seconds when the platform reports it).
    pub fn elapsed(&self) -> (f64, Option<f64>) {
        let cpu = match (self.cpu_ns, thread_cpu_ns()) {
            (Some(a), Some(b)) => Some((b - a) as f64 / 1e9),
            _ => None,
        };
        (self.wall.elapsed().as_secs_f64(), cpu)
    }

    /// `n / elapsed` as "R/s" with the on-CPU rate beside it when it differs.
    pub fn rate(&self, n: usize) -> String {
        let (wall, cpu) = self.elapsed();
        match cpu {
            Some(cpu) if (wall - cpu).abs() / wall > 0.05 => {
                format!("{:>12.0}/s  (on-CPU {:.0}/s)", n as f64 / wall, n as f64 / cpu)
            }
            _ => format!("{:>12.0}/s", n as f64 / wall),
        }
    }
}

/// The calling thread's time on CPU, from Linux's schedstat.
#[allow(dead_code)]
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// xorshift: deterministic and fast, so generation never dominates.
#[allow(dead_code)] // not every bench draws random numbers
pub struct Rng(pub u64);

#[allow(dead_code)]
impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
