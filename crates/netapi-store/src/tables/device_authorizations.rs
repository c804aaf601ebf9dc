//! `device_authorizations` (RFC 8628).

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::model;
use crate::{codec, map_err, retry_contention};
use netapi_core::model::{DeviceAuthorization, DeviceDecision, DevicePoll, DeviceStatus};
use netapi_core::scope::Scopes;
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "device_code_hash, user_code_hash, client_id, scopes, resource_id, resource_scopes, \
         created_at, expires_at, poll_interval, last_polled_at, status, user_id, auth_time, \
         amr, decided_at, family_id, redeemed_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO device_authorizations (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
);
const SELECT_BY_USER_CODE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM device_authorizations WHERE user_code_hash = $1"
);
/// The first decision wins this conditional update.
const DECIDE: &str = "UPDATE device_authorizations SET status = $2, user_id = $3, \
     auth_time = $4, amr = $5, decided_at = $6 \
     WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $6";
/// Takes the row (its lock, on PostgreSQL) and reads it as it was.
const LOCK_FOR_POLL: &str = concat!(
    "UPDATE device_authorizations SET last_polled_at = last_polled_at \
     WHERE device_code_hash = $1 AND client_id = $2 RETURNING ",
    columns!()
);
const RECORD_POLL: &str = "UPDATE device_authorizations SET last_polled_at = $2, \
     poll_interval = $3 WHERE device_code_hash = $1";
/// The first redemption wins this conditional update.
const REDEEM: &str = "UPDATE device_authorizations SET redeemed_at = $2 \
     WHERE device_code_hash = $1 AND status = 'approved' AND redeemed_at IS NULL";
/// Kept an hour past expiry (the cutoff core passes), so that a late poll is told
/// `expired_token`.
pub(crate) const DELETE_EXPIRED: &str = delete_batch!(
    "device_authorizations",
    "device_code_hash",
    "expires_at < $1"
);
pub(crate) const DELETE_OF_RESOURCE: &str =
    "DELETE FROM device_authorizations WHERE resource_id = $1";

#[derive(FromRow)]
pub(crate) struct DeviceAuthorizationRow {
    device_code_hash: Vec<u8>,
    user_code_hash: Vec<u8>,
    client_id: String,
    scopes: i64,
    resource_id: Option<String>,
    resource_scopes: String,
    created_at: i64,
    expires_at: i64,
    poll_interval: i64,
    last_polled_at: Option<i64>,
    status: String,
    user_id: Option<String>,
    auth_time: Option<i64>,
    amr: Option<String>,
    decided_at: Option<i64>,
    family_id: String,
    redeemed_at: Option<i64>,
}

impl TryFrom<DeviceAuthorizationRow> for DeviceAuthorization {
    type Error = StoreError;

    fn try_from(row: DeviceAuthorizationRow) -> StoreResult<Self> {
        Ok(Self {
            device_code_hash: codec::hash(&row.device_code_hash)?,
            user_code_hash: codec::hash(&row.user_code_hash)?,
            client_id: row.client_id,
            scopes: Scopes::from_bits(row.scopes),
            resource_id: row.resource_id,
            resource_scopes: codec::split_names(&row.resource_scopes),
            created_at: row.created_at,
            expires_at: row.expires_at,
            interval: row.poll_interval,
            last_polled_at: row.last_polled_at,
            status: DeviceStatus::parse(&row.status)
                .ok_or_else(|| codec::corrupt("device authorization status"))?,
            user_id: row.user_id,
            auth_time: row.auth_time,
            amr: row.amr.as_deref().map(codec::amr).transpose()?,
            decided_at: row.decided_at,
            family_id: row.family_id,
            redeemed_at: row.redeemed_at,
        })
    }
}

pub(crate) async fn insert(db: &impl Backend, a: &DeviceAuthorization) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            INSERT,
            &[
                a.device_code_hash.0.as_slice().into(),
                a.user_code_hash.0.as_slice().into(),
                (&a.client_id).into(),
                a.scopes.bits().into(),
                (&a.resource_id).into(),
                codec::join_names(&a.resource_scopes).into(),
                a.created_at.into(),
                a.expires_at.into(),
                a.interval.into(),
                a.last_polled_at.into(),
                a.status.as_str().into(),
                (&a.user_id).into(),
                a.auth_time.into(),
                a.amr.map(|amr| amr.as_str()).into(),
                a.decided_at.into(),
                (&a.family_id).into(),
                a.redeemed_at.into(),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn by_user_code(
    db: &impl Backend,
    hash: &SecretHash,
) -> StoreResult<Option<DeviceAuthorization>> {
    let row: Option<DeviceAuthorizationRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_USER_CODE, &[hash.0.as_slice().into()])
        .await?;
    model(row)
}

pub(crate) async fn decide(
    db: &impl Backend,
    hash: &SecretHash,
    decision: &DeviceDecision,
    now: Timestamp,
) -> StoreResult<bool> {
    let changed = db
        .writer()
        .await?
        .execute(
            DECIDE,
            &[
                hash.0.as_slice().into(),
                decision.status.as_str().into(),
                (&decision.user_id).into(),
                decision.auth_time.into(),
                decision.amr.as_str().into(),
                now.into(),
            ],
        )
        .await?;
    Ok(changed == 1)
}

pub(crate) async fn poll(
    db: &impl Backend,
    hash: &SecretHash,
    client_id: &str,
    now: Timestamp,
    slow_down: i64,
) -> StoreResult<Option<DevicePoll>> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        let row: Option<DeviceAuthorizationRow> = tx
            .fetch_optional(LOCK_FOR_POLL, &[hash.0.as_slice().into(), client_id.into()])
            .await?;
        let Some(row) = row else {
            tx.rollback().await.map_err(map_err)?;
            return Ok(None);
        };
        let mut authorization = DeviceAuthorization::try_from(row)?;
        let too_fast = authorization
            .last_polled_at
            .is_some_and(|at| now - at < authorization.interval);
        if too_fast {
            authorization.interval = authorization.interval.saturating_add(slow_down);
        }
        authorization.last_polled_at = Some(now);
        tx.execute(
            RECORD_POLL,
            &[
                hash.0.as_slice().into(),
                now.into(),
                authorization.interval.into(),
            ],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(DevicePoll {
            authorization,
            too_fast,
        }))
    })
    .await
}

pub(crate) async fn redeem(
    db: &impl Backend,
    hash: &SecretHash,
    now: Timestamp,
) -> StoreResult<bool> {
    let changed = db
        .writer()
        .await?
        .execute(REDEEM, &[hash.0.as_slice().into(), now.into()])
        .await?;
    Ok(changed == 1)
}
