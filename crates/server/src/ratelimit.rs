//! Token bucket limiting ingested samples per second.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Samples-per-second limiter with a burst of one second's worth. A rate of 0 disables it.
pub struct RateLimiter {
    inner: Mutex<Bucket>,
}

struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(samples_per_second: u64) -> Self {
        let rate = samples_per_second as f64;
        RateLimiter {
            inner: Mutex::new(Bucket {
                rate,
                burst: rate,
                tokens: rate,
                last: Instant::now(),
            }),
        }
    }

    /// Changes the rate (config reload); keeps the current fill level within the new burst.
    pub fn set_rate(&self, samples_per_second: u64) {
        let mut b = self.inner.lock();
        let was_off = b.rate <= 0.0;
        b.rate = samples_per_second as f64;
        b.burst = b.rate;
        // turning the limit on starts with a full bucket
        b.tokens = if was_off {
            b.burst
        } else {
            b.tokens.min(b.burst)
        };
        b.last = Instant::now();
    }

    /// Takes `n` tokens, or returns how long to wait until they would be available.
    /// A request larger than the burst is admitted when the bucket is full, so
    /// that a single big batch can never be refused forever.
    pub fn try_take(&self, n: u64) -> Result<(), Duration> {
        let mut b = self.inner.lock();
        if b.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * b.rate).min(b.burst);
        let need = (n as f64).min(b.burst);
        if b.tokens >= need {
            b.tokens -= n as f64;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - b.tokens) / b.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_over_rate_and_says_how_long_to_wait() {
        let l = RateLimiter::new(100);
        assert!(l.try_take(100).is_ok());
        let wait = l.try_take(50).unwrap_err();
        assert!(
            wait > Duration::from_millis(100) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }

    #[test]
    fn enabling_the_limit_starts_full() {
        let l = RateLimiter::new(0);
        l.set_rate(10);
        assert!(l.try_take(10).is_ok());
        assert!(l.try_take(10).is_err());
    }

    #[test]
    fn zero_rate_disables() {
        let l = RateLimiter::new(0);
        assert!(l.try_take(u64::MAX).is_ok());
    }
}
