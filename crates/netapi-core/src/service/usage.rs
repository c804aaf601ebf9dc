//! `GET /v1/api-keys/{id}/usage`: how the checks of a key ended, per hour or day.

use super::{NetApi, Principal};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::scope::Scope;
use crate::usage::{Granularity, UsageBucket, UsageOutcome, buckets};

/// A usage question: one key, a time range, a bucket width.
#[derive(Debug, Clone, Copy)]
pub struct UsageQuery {
    /// Start of the range; default: one bucket-count back from `to` (24 hours, or 30 days).
    pub from: Option<Timestamp>,
    /// End of the range (exclusive); default: now.
    pub to: Option<Timestamp>,
    /// Bucket width; default: hours.
    pub granularity: Option<Granularity>,
}

/// The answer: consecutive buckets covering the range, empty ones included.
#[derive(Debug, Clone)]
pub struct KeyUsage {
    /// The key.
    pub key_id: String,
    /// The key's name, for pages that show it.
    pub key_name: String,
    /// The bucket width.
    pub granularity: Granularity,
    /// The start of the first bucket.
    pub from: Timestamp,
    /// The end of the range (exclusive).
    pub to: Timestamp,
    /// The buckets, oldest first.
    pub buckets: Vec<UsageBucket>,
}

impl NetApi {
    /// The usage of one of the caller's keys (an administrator's: anyone's), revoked ones
    /// included so that their last refusals can be seen. Counts this instance still holds in
    /// memory are written first, so the answer is current here; other instances' counts arrive
    /// with their next flush (within a minute).
    pub async fn api_key_usage(
        &self,
        caller: &Principal,
        key_id: &str,
        query: UsageQuery,
    ) -> Result<KeyUsage> {
        caller.require(Scope::KeysRead)?;
        let granularity = query.granularity.unwrap_or(Granularity::Hour);
        let width = granularity.seconds();
        let to = query.to.unwrap_or_else(|| self.now() + 1);
        let default_span = match granularity {
            Granularity::Hour => 24,
            Granularity::Day => 30,
        };
        let from = query.from.unwrap_or(to - default_span * width);
        if from >= to {
            return Err(Error::invalid("from", "must be before 'to'"));
        }
        let first = granularity.floor(from);
        let count = (to - first + width - 1) / width;
        if count > granularity.max_buckets() {
            return Err(Error::invalid(
                "from",
                format!(
                    "the range holds {count} buckets of one {}; at most {} fit in one answer",
                    granularity.as_str(),
                    granularity.max_buckets()
                ),
            ));
        }
        let key = self
            .store
            .get_api_key(key_id)
            .await?
            .filter(|key| caller.may_act_on(&key.user_id))
            .ok_or(Error::NotFound("API key"))?;
        self.flush_usage().await?;
        let rows = self.store.api_key_usage(key_id, first, to).await?;
        Ok(KeyUsage {
            key_id: key.id,
            key_name: key.name,
            granularity,
            from: first,
            to,
            buckets: buckets(&rows, first, to, granularity),
        })
    }

    /// Counts one check of an API key, in memory.
    pub(super) fn count_key_check(&self, key_id: &str, outcome: UsageOutcome) {
        self.usage.record(key_id, self.now(), outcome);
    }
}
