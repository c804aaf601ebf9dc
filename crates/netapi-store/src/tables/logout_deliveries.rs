//! `logout_deliveries`: Back-Channel Logout tokens still to be delivered.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::models;
use crate::{map_err, retry_contention};
use netapi_core::model::PendingLogout;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "id, client_id, user_id, sid, attempts, next_attempt_at, created_at"
    };
}

/// Nothing for a client deleted in the meantime (its deliveries would go nowhere).
const INSERT: &str = concat!(
    "INSERT INTO logout_deliveries (",
    columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6, $7 \
     WHERE EXISTS (SELECT 1 FROM oauth_clients WHERE id = $2) ON CONFLICT (id) DO NOTHING"
);
/// One statement, so that each due delivery goes to one caller (as `webhook_deliveries`'
/// claim: PostgreSQL checks the conditions again on a row another caller changed first,
/// whose `next_attempt_at` is then a lease in the future; SQLite runs one write at a time).
const CLAIM: &str = concat!(
    "UPDATE logout_deliveries SET next_attempt_at = $2 WHERE id IN (\
     SELECT id FROM logout_deliveries WHERE next_attempt_at <= $1 \
     ORDER BY next_attempt_at, id LIMIT $3) AND next_attempt_at <= $1 RETURNING ",
    columns!()
);
/// Only while the caller's lease (`next_attempt_at` = the lease's end) holds.
const FINISH: &str = "DELETE FROM logout_deliveries WHERE id = $1 AND next_attempt_at = $2";
const RETRY: &str = "UPDATE logout_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
     WHERE id = $1 AND next_attempt_at = $2";
const SELECT_OF_CLIENT: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM logout_deliveries WHERE client_id = $1 ORDER BY created_at, id"
);
const PRUNE: &str = "DELETE FROM logout_deliveries WHERE created_at < $1";

#[derive(FromRow)]
pub(crate) struct PendingLogoutRow {
    id: String,
    client_id: String,
    user_id: String,
    sid: String,
    attempts: i64,
    next_attempt_at: i64,
    created_at: i64,
}

impl TryFrom<PendingLogoutRow> for PendingLogout {
    type Error = StoreError;

    fn try_from(row: PendingLogoutRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            client_id: row.client_id,
            user_id: row.user_id,
            sid: row.sid,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
        })
    }
}

pub(crate) async fn insert(db: &impl Backend, deliveries: &[PendingLogout]) -> StoreResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        for delivery in deliveries {
            tx.execute(
                INSERT,
                &[
                    (&delivery.id).into(),
                    (&delivery.client_id).into(),
                    (&delivery.user_id).into(),
                    (&delivery.sid).into(),
                    i64::from(delivery.attempts).into(),
                    delivery.next_attempt_at.into(),
                    delivery.created_at.into(),
                ],
            )
            .await?;
        }
        tx.commit().await.map_err(map_err)
    })
    .await
}

pub(crate) async fn claim(
    db: &impl Backend,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> StoreResult<Vec<PendingLogout>> {
    let rows: Vec<PendingLogoutRow> = db
        .writer()
        .await?
        .fetch_all(
            CLAIM,
            &[now.into(), lease_until.into(), i64::from(limit).into()],
        )
        .await?;
    let mut claimed: Vec<PendingLogout> = models(rows)?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

pub(crate) async fn finish(
    db: &impl Backend,
    id: &str,
    lease_until: Timestamp,
) -> StoreResult<bool> {
    let changed = db
        .writer()
        .await?
        .execute(FINISH, &[id.into(), lease_until.into()])
        .await?;
    Ok(changed == 1)
}

pub(crate) async fn retry(
    db: &impl Backend,
    id: &str,
    lease_until: Timestamp,
    next_attempt_at: Timestamp,
) -> StoreResult<bool> {
    let changed = db
        .writer()
        .await?
        .execute(
            RETRY,
            &[id.into(), lease_until.into(), next_attempt_at.into()],
        )
        .await?;
    Ok(changed == 1)
}

pub(crate) async fn prune(db: &impl Backend, before: Timestamp) -> StoreResult<u64> {
    db.writer().await?.execute(PRUNE, &[before.into()]).await
}

pub(crate) async fn list_of_client(
    db: &impl Backend,
    client_id: &str,
) -> StoreResult<Vec<PendingLogout>> {
    let rows: Vec<PendingLogoutRow> = db
        .reader()
        .await?
        .fetch_all(SELECT_OF_CLIENT, &[client_id.into()])
        .await?;
    models(rows)
}
