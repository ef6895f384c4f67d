//! Retrying an unreachable source: [`Backoff`] (capped exponential, with
//! jitter) and [`Outage`] (logging once per state change, and what
//! `/health` and `/metrics` show meanwhile).
//!
//! ```text
//!  transient error ─► Outage::begin  (warn once: what failed, that readers keep the last state)
//!        │            each attempt: debug; a warn again only when the error changes or every
//!        │            REMIND_EVERY; /health degraded, denorm_source_connected 0, within_sla
//!        ▼            false once a view's budget passes (disconnected_since)
//!  next good read ─► Outage::end    (info once: down for how long, after how many attempts)
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

/// The first retry waits about this long.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Retries wait at most about this long (plus jitter).
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Each wait is the nominal one times a factor in `1 ± JITTER`, so that
/// many denorms retrying one server do not retry in step.
const JITTER: f64 = 0.2;
/// While the source stays unreachable with the same error, it is logged
/// again this often (each attempt is logged at debug level).
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

/// Capped exponential backoff with jitter: 100 ms, 200 ms, … 30 s, 30 s, …
#[derive(Debug)]
pub struct Backoff {
    nominal: Duration,
    rng: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Backoff { nominal: BACKOFF_MIN, rng: (seed ^ u64::from(std::process::id()).rotate_left(32)) | 1 }
    }
}

impl Backoff {
    /// The next wait; the one after is twice as long, up to [`BACKOFF_MAX`].
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.nominal.mul_f64(1.0 + JITTER * (2.0 * self.unit() - 1.0));
        self.nominal = (self.nominal * 2).min(BACKOFF_MAX);
        wait
    }

    /// Starts again from [`BACKOFF_MIN`] (after a success).
    pub fn reset(&mut self) {
        self.nominal = BACKOFF_MIN;
    }

    /// A uniform number in [0, 1) (xorshift64).
    fn unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A period during which the source is unreachable.
#[derive(Debug)]
pub struct Outage {
    started: Instant,
    /// Unix seconds at the start, for `disconnected_since`.
    pub since_unix: f64,
    attempts: u64,
    last_error: String,
    last_logged: Instant,
}

impl Outage {
    /// The first failure: logged at warn level, with what readers get
    /// meanwhile (`readers`).
    pub fn begin(error: String, retry_in: Duration, readers: &str) -> Outage {
        warn!(error = %error, retry_in = ?retry_in, "source unavailable; retrying with backoff until it returns ({readers})");
        let now = Instant::now();
        let since_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        Outage { started: now, since_unix, attempts: 1, last_error: error, last_logged: now }
    }

    /// Another failed attempt: logged at warn level only when the error
    /// changed or [`REMIND_EVERY`] passed, else at debug level.
    pub fn again(&mut self, error: String, retry_in: Duration) {
        self.attempts += 1;
        let changed = error != self.last_error;
        if changed || self.last_logged.elapsed() >= REMIND_EVERY {
            warn!(
                error = %error,
                retry_in = ?retry_in,
                attempts = self.attempts,
                down_seconds = self.started.elapsed().as_secs(),
                "source still unavailable; retrying"
            );
            self.last_logged = Instant::now();
        } else {
            debug!(error = %error, retry_in = ?retry_in, attempts = self.attempts, "source still unavailable");
        }
        self.last_error = error;
    }

    /// The source answered again: logged once. Returns the last error.
    pub fn end(self, how: &str) -> String {
        info!(
            down_seconds = self.started.elapsed().as_secs_f64(),
            attempts = self.attempts,
            last_error = %self.last_error,
            "source reachable again; {how}"
        );
        self.last_error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let mut backoff = Backoff::default();
        let mut nominal = BACKOFF_MIN;
        for _ in 0..20 {
            let wait = backoff.next_wait();
            assert!(wait >= nominal.mul_f64(1.0 - JITTER) && wait <= nominal.mul_f64(1.0 + JITTER), "{wait:?}");
            nominal = (nominal * 2).min(BACKOFF_MAX);
        }
        assert_eq!(nominal, BACKOFF_MAX);
        backoff.reset();
        assert!(backoff.next_wait() <= BACKOFF_MIN.mul_f64(1.0 + JITTER));
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let mut backoff = Backoff::default();
        let waits: Vec<Duration> = (0..50).map(|_| backoff.next_wait()).skip(10).collect();
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 30, "{waits:?}");
    }
}
