//! Usage of API keys: how many checks of each key ended how, per hour.
//!
//! The hot path only adds to a counter in memory ([`UsageTally::record`]); the counts are
//! written to storage in batches by the service's periodic flush, never once per request.
//! Only keys that exist are counted (a check that found no key has no key to count against),
//! so the tally is bounded by the number of keys, and each flush empties it.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;

/// Seconds in one hour, the finest bucket kept.
pub const HOUR: i64 = 3600;
/// Seconds in one day.
pub const DAY: i64 = 24 * HOUR;

/// How a check of an API key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageOutcome {
    /// The key was accepted.
    Valid,
    /// The key was over its per-minute limit.
    RateLimited,
    /// The key lacked a scope the request needed.
    InsufficientScope,
    /// The key is for another resource.
    WrongResource,
    /// The key had expired.
    Expired,
    /// The key had been revoked.
    Revoked,
}

impl UsageOutcome {
    /// Every outcome, in the order answers list them.
    pub const ALL: [Self; 6] = [
        Self::Valid,
        Self::RateLimited,
        Self::InsufficientScope,
        Self::WrongResource,
        Self::Expired,
        Self::Revoked,
    ];

    /// The outcome's name on the wire and in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::RateLimited => "rate_limited",
            Self::InsufficientScope => "insufficient_scope",
            Self::WrongResource => "wrong_resource",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// The outcome named `name`, as [`Self::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Counts per outcome, indexed as [`UsageOutcome::ALL`].
pub type OutcomeCounts = [u64; UsageOutcome::ALL.len()];

/// One stored row: the checks of one key in one hour that ended one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    /// The key counted.
    pub key_id: String,
    /// The start of the hour (a multiple of [`HOUR`]).
    pub hour: Timestamp,
    /// How the checks ended.
    pub outcome: UsageOutcome,
    /// How many there were.
    pub count: u64,
}

/// Counts gathered since the last flush.
#[derive(Debug, Default)]
pub struct UsageTally {
    /// Per key, the hours it was used in since the last flush (almost always one).
    counts: Mutex<KeyHours>,
}

/// Per key id, its hours and their counts.
type KeyHours = HashMap<String, Vec<(Timestamp, OutcomeCounts)>, crate::FastHash>;

impl UsageTally {
    /// Counts one check of `key_id` at `at`. Allocates only for the first check of a key
    /// since the last flush.
    pub fn record(&self, key_id: &str, at: Timestamp, outcome: UsageOutcome) {
        let hour = at - at.rem_euclid(HOUR);
        let mut counts = self.lock();
        let hours = match counts.get_mut(key_id) {
            Some(hours) => hours,
            None => counts.entry(key_id.to_owned()).or_default(),
        };
        hour_slot(hours, hour)[outcome.index()] += 1;
    }

    /// Takes every count gathered so far, leaving the tally empty.
    pub fn take(&self) -> Vec<UsageCount> {
        let drained = std::mem::take(&mut *self.lock());
        drained
            .into_iter()
            .flat_map(|(key_id, hours)| {
                hours.into_iter().flat_map(move |(hour, counts)| {
                    let key_id = key_id.clone();
                    UsageOutcome::ALL
                        .into_iter()
                        .zip(counts)
                        .filter(|(_, n)| *n > 0)
                        .map(move |(outcome, count)| UsageCount {
                            key_id: key_id.clone(),
                            hour,
                            outcome,
                            count,
                        })
                })
            })
            .collect()
    }

    /// Puts counts back after a flush that could not write them, so that none is lost.
    pub fn restore(&self, rows: Vec<UsageCount>) {
        let mut counts = self.lock();
        for row in rows {
            let hours = counts.entry(row.key_id).or_default();
            hour_slot(hours, row.hour)[row.outcome.index()] += row.count;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyHours> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The counts of `hour` among a key's hours, added if missing.
fn hour_slot(hours: &mut Vec<(Timestamp, OutcomeCounts)>, hour: Timestamp) -> &mut OutcomeCounts {
    let i = match hours.iter().position(|(h, _)| *h == hour) {
        Some(i) => i,
        None => {
            hours.push((hour, OutcomeCounts::default()));
            hours.len() - 1
        }
    };
    &mut hours[i].1
}

/// The width of the buckets of a usage answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One bucket per hour.
    Hour,
    /// One bucket per day (UTC).
    Day,
}

impl Granularity {
    /// `hour` or `day`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    /// The name [`Self::parse`] reads.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// The bucket's width in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Self::Hour => HOUR,
            Self::Day => DAY,
        }
    }

    /// The most buckets one answer holds: 31 days of hours, or 400 days (as long as counts
    /// are kept).
    pub const fn max_buckets(self) -> i64 {
        match self {
            Self::Hour => 31 * 24,
            Self::Day => 400,
        }
    }

    /// The start of the bucket holding `at`.
    pub const fn floor(self, at: Timestamp) -> Timestamp {
        at - at.rem_euclid(self.seconds())
    }
}

/// One bucket of a usage answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    /// Where the bucket starts.
    pub start: Timestamp,
    /// Checks per outcome, indexed as [`UsageOutcome::ALL`].
    pub counts: OutcomeCounts,
}

/// Sums hourly `rows` into consecutive buckets of `granularity` from the bucket holding `from`
/// up to the one holding `to - 1` (every bucket present, empty ones zero), so that a chart
/// needs no gap-filling. Rows outside the range are ignored.
pub fn buckets(
    rows: &[UsageCount],
    from: Timestamp,
    to: Timestamp,
    granularity: Granularity,
) -> Vec<UsageBucket> {
    let width = granularity.seconds();
    let first = granularity.floor(from);
    let mut out: Vec<UsageBucket> = (0..)
        .map(|i| first + i * width)
        .take_while(|start| *start < to)
        .map(|start| UsageBucket {
            start,
            counts: OutcomeCounts::default(),
        })
        .collect();
    for row in rows {
        if row.hour < first || row.hour >= to {
            continue;
        }
        let Ok(i) = usize::try_from((row.hour - first) / width) else {
            continue;
        };
        if let Some(bucket) = out.get_mut(i) {
            bucket.counts[row.outcome.index()] += row.count;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn sorted(mut rows: Vec<UsageCount>) -> Vec<UsageCount> {
        rows.sort_by(|a, b| {
            (&a.key_id, a.hour, a.outcome.as_str()).cmp(&(&b.key_id, b.hour, b.outcome.as_str()))
        });
        rows
    }

    fn row(key_id: &str, hour: Timestamp, outcome: UsageOutcome, count: u64) -> UsageCount {
        UsageCount {
            key_id: key_id.to_owned(),
            hour,
            outcome,
            count,
        }
    }

    #[test]
    fn counts_per_key_hour_and_outcome_and_take_empties_the_tally() {
        let tally = UsageTally::default();
        tally.record("key_a", T0 + 10, UsageOutcome::Valid);
        tally.record("key_a", T0 + 3599, UsageOutcome::Valid);
        tally.record("key_a", T0 + 3600, UsageOutcome::Valid);
        tally.record("key_a", T0 + 20, UsageOutcome::RateLimited);
        tally.record("key_b", T0 + 30, UsageOutcome::Revoked);
        assert_eq!(
            sorted(tally.take()),
            vec![
                row("key_a", T0, UsageOutcome::RateLimited, 1),
                row("key_a", T0, UsageOutcome::Valid, 2),
                row("key_a", T0 + HOUR, UsageOutcome::Valid, 1),
                row("key_b", T0, UsageOutcome::Revoked, 1),
            ]
        );
        assert!(tally.take().is_empty());
    }

    #[test]
    fn restored_counts_add_to_what_came_since() {
        let tally = UsageTally::default();
        tally.record("key_a", T0, UsageOutcome::Valid);
        let failed_flush = tally.take();
        tally.record("key_a", T0 + 5, UsageOutcome::Valid);
        tally.restore(failed_flush);
        assert_eq!(tally.take(), vec![row("key_a", T0, UsageOutcome::Valid, 2)]);
    }

    #[test]
    fn outcome_names_round_trip() {
        for outcome in UsageOutcome::ALL {
            assert_eq!(UsageOutcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(UsageOutcome::parse("VALID"), None);
    }

    #[test]
    fn buckets_are_dense_and_sum_hours_into_days() {
        let rows = vec![
            row("key_a", T0 - HOUR, UsageOutcome::Valid, 50), // before the range
            row("key_a", T0, UsageOutcome::Valid, 3),
            row("key_a", T0 + 5 * HOUR, UsageOutcome::Valid, 4),
            row("key_a", T0 + 5 * HOUR, UsageOutcome::Expired, 1),
            row("key_a", T0 + DAY + HOUR, UsageOutcome::Valid, 2),
            row("key_a", T0 + 3 * DAY, UsageOutcome::Valid, 9), // after the range
        ];
        let days = buckets(&rows, T0 + 100, T0 + 2 * DAY, Granularity::Day);
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].start, T0);
        assert_eq!(days[0].counts, [7, 0, 0, 0, 1, 0]);
        assert_eq!(days[1].start, T0 + DAY);
        assert_eq!(days[1].counts, [2, 0, 0, 0, 0, 0]);

        let hours = buckets(&rows, T0, T0 + 6 * HOUR, Granularity::Hour);
        assert_eq!(hours.len(), 6);
        assert_eq!(hours[0].counts[0], 3);
        assert!(hours[1..5].iter().all(|b| b.counts == [0; 6]));
        assert_eq!(hours[5].counts, [4, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn floor_handles_times_before_the_epoch() {
        assert_eq!(Granularity::Hour.floor(-1), -HOUR);
        assert_eq!(Granularity::Day.floor(T0 + DAY - 1), T0);
    }
}
