//! `api_key_usage`: checks per key, hour and outcome.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::{map_err, retry_contention};
use netapi_core::store::StoreResult;
use netapi_core::usage::{UsageCount, UsageOutcome};
use netapi_core::{StoreError, Timestamp};

/// Adds to the count; a key deleted meanwhile is skipped.
const ADD: &str = "INSERT INTO api_key_usage (key_id, hour, outcome, count) \
     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = $1) \
     ON CONFLICT (key_id, hour, outcome) \
     DO UPDATE SET count = api_key_usage.count + excluded.count";
const LIST_OF_KEY: &str = "SELECT hour, outcome, count FROM api_key_usage \
     WHERE key_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour, outcome";
/// Counts of hours before the cutoff.
pub(crate) const DELETE_BEFORE: &str = delete_batch!(
    "api_key_usage",
    "(key_id, hour, outcome)",
    "key_id, hour, outcome",
    "hour < $1"
);

#[derive(FromRow)]
struct UsageRow {
    hour: i64,
    outcome: String,
    count: i64,
}

impl UsageRow {
    fn into_model(self, key_id: &str) -> StoreResult<UsageCount> {
        Ok(UsageCount {
            key_id: key_id.to_owned(),
            hour: self.hour,
            outcome: UsageOutcome::parse(&self.outcome).ok_or_else(|| {
                StoreError::Other(format!("unknown usage outcome '{}'", self.outcome))
            })?,
            count: u64::try_from(self.count).unwrap_or(0),
        })
    }
}

pub(crate) async fn add(db: &impl Backend, counts: &[UsageCount]) -> StoreResult<()> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        for count in counts {
            tx.execute(
                ADD,
                &[
                    (&count.key_id).into(),
                    count.hour.into(),
                    count.outcome.as_str().into(),
                    i64::try_from(count.count).unwrap_or(i64::MAX).into(),
                ],
            )
            .await?;
        }
        tx.commit().await.map_err(map_err)
    })
    .await
}

pub(crate) async fn list(
    db: &impl Backend,
    key_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<Vec<UsageCount>> {
    let rows: Vec<UsageRow> = db
        .reader()
        .await?
        .fetch_all(LIST_OF_KEY, &[key_id.into(), from.into(), to.into()])
        .await?;
    rows.into_iter().map(|row| row.into_model(key_id)).collect()
}
