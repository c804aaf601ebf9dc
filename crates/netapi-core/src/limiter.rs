//! Counting failed authentications per subject (an address, an account, a client) in a
//! fixed one-minute window, on the injected clock.

use std::collections::HashMap;
use std::sync::Mutex;

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
}

impl FailureLimiter {
    /// A limiter allowing `limit` failures per subject per minute.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Timestamp, u32)>> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Some(seconds to wait)` when `subject` has used up its failures for this window.
    pub fn blocked(&self, subject: &str, now: Timestamp) -> Option<u64> {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
