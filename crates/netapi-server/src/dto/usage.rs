//! What `/v1/api-keys/{id}/usage` answers with.

use netapi_core::clock::format_rfc3339;
use netapi_core::service::KeyUsage;
use netapi_core::usage::{Granularity, UsageBucket};
use serde::Serialize;
use utoipa::ToSchema;

use super::fields;

/// A key's checks by outcome, bucket by bucket.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKeyUsage)]
pub(crate) struct KeyUsageView {
    #[schema(schema_with = fields::key_id)]
    key_id: String,
    #[schema(inline)]
    granularity: GranularityName,
    /// The start of the first bucket.
    #[schema(schema_with = fields::date_time_utc)]
    from: String,
    /// The end of the range (exclusive).
    #[schema(schema_with = fields::date_time_utc)]
    to: String,
    /// Oldest first; every bucket of the range, empty ones included.
    buckets: Vec<BucketView>,
}

/// `hour` or `day`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum GranularityName {
    Hour,
    Day,
}

/// The checks of one bucket.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BucketView {
    #[schema(schema_with = fields::date_time_utc)]
    start: String,
    counts: OutcomeCounts,
}

/// Checks per outcome.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OutcomeCounts {
    /// Accepted.
    valid: u64,
    /// Over the key's per-minute limit.
    rate_limited: u64,
    /// Lacking a scope the request needed.
    insufficient_scope: u64,
    /// Presented to another resource than the key's.
    wrong_resource: u64,
    /// After the key expired.
    expired: u64,
    /// After the key was revoked.
    revoked: u64,
}

impl From<&UsageBucket> for BucketView {
    fn from(bucket: &UsageBucket) -> Self {
        let [
            valid,
            rate_limited,
            insufficient_scope,
            wrong_resource,
            expired,
            revoked,
        ] = bucket.counts;
        Self {
            start: format_rfc3339(bucket.start),
            counts: OutcomeCounts {
                valid,
                rate_limited,
                insufficient_scope,
                wrong_resource,
                expired,
                revoked,
            },
        }
    }
}

impl From<KeyUsage> for KeyUsageView {
    fn from(usage: KeyUsage) -> Self {
        Self {
            granularity: match usage.granularity {
                Granularity::Hour => GranularityName::Hour,
                Granularity::Day => GranularityName::Day,
            },
            from: format_rfc3339(usage.from),
            to: format_rfc3339(usage.to),
            buckets: usage.buckets.iter().map(Into::into).collect(),
            key_id: usage.key_id,
        }
    }
}
