//! Time is a parameter: every expiry decision reads a [`Clock`], so tests move time instead
//! of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch. Every timestamp in Net API has this unit.
pub type Timestamp = i64;

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time in seconds since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self(AtomicI64::new(now))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// Formats a timestamp as RFC 3339 in UTC (`2026-01-02T03:04:05Z`).
pub fn format_rfc3339(ts: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `0000-01-01T00:00:00Z`, the first instant [`format_rfc3339`] can write.
const FIRST_FORMATTABLE: Timestamp = -62_167_219_200;
/// `9999-12-31T23:59:59Z`, the last instant [`format_rfc3339`] can write.
const LAST_FORMATTABLE: Timestamp = 253_402_300_799;

/// Parses an RFC 3339 date-time into a timestamp. Only instants whose UTC form has a
/// four-digit year are accepted (`9999-12-31T23:59:59-01:00` is not), so that whatever is
/// accepted can be written back by [`format_rfc3339`].
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
        .filter(|ts| (FIRST_FORMATTABLE..=LAST_FORMATTABLE).contains(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let ts = 1_767_323_045;
        let text = format_rfc3339(ts);
        assert_eq!(text, "2026-01-02T03:04:05Z");
        assert_eq!(parse_rfc3339(&text), Some(ts));
        assert_eq!(parse_rfc3339("2026-01-02T04:04:05+01:00"), Some(ts));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn only_instants_that_can_be_written_back_are_accepted() {
        // Found by fuzzing: these parsed, but their UTC year has five digits (or is
        // negative), so format_rfc3339 wrote "" and an API key's `expires_at` came back empty.
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59-01:00"), None);
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00+00:01"), None);
        for text in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
            let ts = parse_rfc3339(text);
            assert_eq!(ts.map(format_rfc3339).as_deref(), Some(text));
        }
        assert_eq!(format_rfc3339(FIRST_FORMATTABLE - 1), "");
        assert_eq!(format_rfc3339(LAST_FORMATTABLE + 1), "");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(100);
        assert_eq!(clock.now(), 100);
        clock.advance(50);
        assert_eq!(clock.now(), 150);
    }
}
