//! Counting failed authentications per subject (an address, an account, a client) in a
//! fixed one-minute window, on the injected clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::clock::Timestamp;

const WINDOW: i64 = 60;
/// Past this many tracked subjects, finished windows are swept out.
const SWEEP_AT: usize = 100_000;

/// Failed-attempt counters. Per process: with several instances each keeps its own counts,
/// so the effective limit is the configured one times the number of instances.
#[derive(Debug)]
pub struct FailureLimiter {
    limit: u32,
    windows: Mutex<HashMap<String, (Timestamp, u32)>>,
    /// The latest end of a window in which some subject reached the limit: before it nobody
    /// can be blocked, so the hot path answers without taking the lock.
    blocking_until: AtomicI64,
}

impl FailureLimiter {
    /// A limiter allowing `limit` failures per subject per minute.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
            blocking_until: AtomicI64::new(Timestamp::MIN),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Timestamp, u32)>> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Some(seconds to wait)` when `subject` has used up its failures for this window.
    pub fn blocked(&self, subject: &str, now: Timestamp) -> Option<u64> {
        if now >= self.blocking_until.load(Ordering::Relaxed) {
            return None;
        }
        let windows = self.lock();
        let (start, count) = windows.get(subject)?;
        let ends = start + WINDOW;
        (now < ends && *count >= self.limit).then(|| u64::try_from(ends - now).unwrap_or(1))
    }

    /// Counts one failure for `subject`.
    pub fn record_failure(&self, subject: &str, now: Timestamp) {
        let mut windows = self.lock();
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| now < *start + WINDOW);
        }
        let entry = windows.entry(subject.to_owned()).or_insert((now, 0));
        if now >= entry.0 + WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 >= self.limit {
            self.blocking_until
                .fetch_max(entry.0 + WINDOW, Ordering::Relaxed);
        }
    }
}

/// Where a credential stands against its per-minute request limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in this window.
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset: u64,
}

/// Requests per credential in a fixed one-minute window, on the injected clock. Per process,
/// like [`FailureLimiter`].
#[derive(Debug, Default)]
pub struct RequestLimiter {
    windows: Mutex<HashMap<String, (Timestamp, u32)>>,
}

impl RequestLimiter {
    /// Counts a request of `subject`; `Err` (with the status, `remaining` 0) once past `limit`.
    pub fn hit(&self, subject: &str, limit: u32, now: Timestamp) -> Result<RateStatus, RateStatus> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| now < *start + WINDOW);
        }
        let entry = windows.entry(subject.to_owned()).or_insert((now, 0));
        if now >= entry.0 + WINDOW {
            *entry = (now, 0);
        }
        let reset = u64::try_from(entry.0 + WINDOW - now).unwrap_or(1);
        if entry.1 >= limit {
            return Err(RateStatus {
                limit,
                remaining: 0,
                reset,
            });
        }
        entry.1 += 1;
        Ok(RateStatus {
            limit,
            remaining: limit - entry.1,
            reset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_limited_per_subject_per_minute() {
        let limiter = RequestLimiter::default();
        assert_eq!(limiter.hit("key:a", 2, 100).map(|s| s.remaining), Ok(1));
        assert_eq!(limiter.hit("key:a", 2, 110).map(|s| s.remaining), Ok(0));
        assert_eq!(
            limiter.hit("key:a", 2, 120),
            Err(RateStatus {
                limit: 2,
                remaining: 0,
                reset: 40
            })
        );
        assert!(limiter.hit("key:b", 2, 120).is_ok());
        assert_eq!(limiter.hit("key:a", 2, 160).map(|s| s.remaining), Ok(1));
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let limiter = FailureLimiter::new(3);
        for _ in 0..3 {
            assert_eq!(limiter.blocked("ip:1", 1000), None);
            limiter.record_failure("ip:1", 1000);
        }
        assert_eq!(limiter.blocked("ip:1", 1010), Some(50));
        assert_eq!(limiter.blocked("ip:2", 1010), None);
        assert_eq!(limiter.blocked("ip:1", 1060), None);
        limiter.record_failure("ip:1", 1060);
        assert_eq!(limiter.blocked("ip:1", 1061), None);
    }
}
