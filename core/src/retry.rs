//! The one retry policy: capped exponential backoff with jitter, for errors known to be
//! transient. The pipeline's fetch and sink stages retry through [`RetryConfig::run`]; loops
//! that must go on hearing other things while they wait (the pipeline's source stage, the
//! Kafka source's dead letters) take only [`RetryConfig::backoff`]. S3 requests made outside
//! the pipeline are retried by the AWS SDK (`store::S3Config::max_attempts`).

use std::fmt::Display;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Total tries, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { max_attempts: 3, initial_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryConfig {
    /// Wait before try `attempt + 1` (attempt counts from 1): the capped exponential step,
    /// of which a random half is taken away, so that workers failing together do not all come
    /// back together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        let step = self.initial_backoff.saturating_mul(factor).min(self.max_backoff);
        step / 2 + step.mul_f64(jitter() / 2.0)
    }

    /// Runs `op` until it succeeds, fails with an error `retryable` calls final, or has had
    /// `max_attempts` tries, waiting [`backoff`](Self::backoff) between tries. Either way,
    /// with the number of tries made.
    pub async fn run<T, E: Display, Fut: Future<Output = Result<T, E>>>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Fut,
        retryable: impl Fn(&E) -> bool,
    ) -> Result<(T, u32), (E, u32)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Ok(value) => return Ok((value, attempt)),
                Err(e) if retryable(&e) && attempt < self.max_attempts => {
                    let wait = self.backoff(attempt);
                    tracing::warn!(error = %e, attempt, ?wait, "{what} failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err((e, attempt)),
            }
        }
    }
}

/// A number in [0, 1), different at each call (a fresh SipHash key each time; jitter needs
/// no better randomness).
fn jitter() -> f64 {
    (RandomState::new().hash_one(std::time::Instant::now()) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let r = RetryConfig::default();
        for (attempt, step) in [(1, 100), (2, 200), (10, 2000), (100, 2000)] {
            let step = Duration::from_millis(step);
            let waits: Vec<Duration> = (0..50).map(|_| r.backoff(attempt)).collect();
            assert!(waits.iter().all(|w| *w >= step / 2 && *w <= step), "{attempt}: {waits:?}");
            assert!(waits.iter().any(|w| *w != waits[0]), "{attempt}: no jitter in {waits:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_what_may_pass_and_counts_the_tries() {
        let r = RetryConfig { max_attempts: 4, ..RetryConfig::default() };
        let calls = Cell::new(0);
        let flaky = || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 3 { Err(format!("blip {n}")) } else { Ok(n) } }
        };
        assert_eq!(r.run("read", flaky, |_| true).await, Ok((3, 3)));
        calls.set(0);
        assert_eq!(r.run("read", flaky, |_| false).await, Err(("blip 1".to_string(), 1)), "final at once");
        let always = || async { Err::<(), _>("down") };
        assert_eq!(r.run("read", always, |_| true).await, Err(("down", 4)), "max_attempts tries in all");
    }
}
