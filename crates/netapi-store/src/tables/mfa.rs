//! `mfa_totp` (a user's TOTP authenticator, its secret sealed) and `mfa_recovery_codes`.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::{map_err, retry_contention};
use netapi_core::Timestamp;
use netapi_core::model::TotpFactor;
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;

const SELECT_TOTP: &str = "SELECT user_id, sealed_secret, created_at, confirmed_at, \
     last_used_step FROM mfa_totp WHERE user_id = $1";
/// A confirmed authenticator is never replaced: it must be removed first.
const PUT_PENDING: &str = "INSERT INTO mfa_totp (user_id, sealed_secret, created_at, \
     confirmed_at, last_used_step) VALUES ($1, $2, $3, NULL, NULL) \
     ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
     created_at = excluded.created_at WHERE mfa_totp.confirmed_at IS NULL";
const CONFIRM: &str = "UPDATE mfa_totp SET confirmed_at = $3, last_used_step = $2 \
     WHERE user_id = $1 AND confirmed_at IS NULL";
/// Single use of a time step: the later step wins, the same or an earlier one changes nothing.
const USE_STEP: &str = "UPDATE mfa_totp SET last_used_step = $2 WHERE user_id = $1 \
     AND confirmed_at IS NOT NULL AND (last_used_step IS NULL OR last_used_step < $2)";
const DELETE_TOTP: &str = "DELETE FROM mfa_totp WHERE user_id = $1";
const DELETE_CODES: &str = "DELETE FROM mfa_recovery_codes WHERE user_id = $1";
const INSERT_CODE: &str =
    "INSERT INTO mfa_recovery_codes (user_id, hash, created_at, used_at) VALUES ($1, $2, $3, NULL)";
const USE_CODE: &str = "UPDATE mfa_recovery_codes SET used_at = $3 \
     WHERE user_id = $1 AND hash = $2 AND used_at IS NULL";
const COUNT_CODES: &str =
    "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL";

#[derive(FromRow)]
pub(crate) struct TotpRow {
    user_id: String,
    sealed_secret: Vec<u8>,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_used_step: Option<i64>,
}

impl From<TotpRow> for TotpFactor {
    fn from(row: TotpRow) -> Self {
        Self {
            user_id: row.user_id,
            sealed_secret: row.sealed_secret,
            created_at: row.created_at,
            confirmed_at: row.confirmed_at,
            last_used_step: row.last_used_step,
        }
    }
}

pub(crate) async fn get_totp(db: &impl Backend, user_id: &str) -> StoreResult<Option<TotpFactor>> {
    let row: Option<TotpRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_TOTP, &[user_id.into()])
        .await?;
    Ok(row.map(TotpFactor::from))
}

pub(crate) async fn put_pending_totp(db: &impl Backend, factor: &TotpFactor) -> StoreResult<bool> {
    let written = db
        .writer()
        .await?
        .execute(
            PUT_PENDING,
            &[
                (&factor.user_id).into(),
                factor.sealed_secret.as_slice().into(),
                factor.created_at.into(),
            ],
        )
        .await?;
    Ok(written == 1)
}

pub(crate) async fn confirm_totp(
    db: &impl Backend,
    user_id: &str,
    step: i64,
    now: Timestamp,
) -> StoreResult<bool> {
    let written = db
        .writer()
        .await?
        .execute(CONFIRM, &[user_id.into(), step.into(), now.into()])
        .await?;
    Ok(written == 1)
}

pub(crate) async fn use_totp_step(
    db: &impl Backend,
    user_id: &str,
    step: i64,
) -> StoreResult<bool> {
    let written = db
        .writer()
        .await?
        .execute(USE_STEP, &[user_id.into(), step.into()])
        .await?;
    Ok(written == 1)
}

pub(crate) async fn delete_totp(db: &impl Backend, user_id: &str) -> StoreResult<bool> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        let removed = tx.execute(DELETE_TOTP, &[user_id.into()]).await?;
        tx.execute(DELETE_CODES, &[user_id.into()]).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(removed == 1)
    })
    .await
}

pub(crate) async fn replace_recovery_codes(
    db: &impl Backend,
    user_id: &str,
    hashes: &[SecretHash],
    now: Timestamp,
) -> StoreResult<()> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        tx.execute(DELETE_CODES, &[user_id.into()]).await?;
        for hash in hashes {
            tx.execute(
                INSERT_CODE,
                &[user_id.into(), hash.0.as_slice().into(), now.into()],
            )
            .await?;
        }
        tx.commit().await.map_err(map_err)
    })
    .await
}

pub(crate) async fn use_recovery_code(
    db: &impl Backend,
    user_id: &str,
    hash: &SecretHash,
    now: Timestamp,
) -> StoreResult<bool> {
    let written = db
        .writer()
        .await?
        .execute(
            USE_CODE,
            &[user_id.into(), hash.0.as_slice().into(), now.into()],
        )
        .await?;
    Ok(written == 1)
}

pub(crate) async fn count_recovery_codes(db: &impl Backend, user_id: &str) -> StoreResult<u64> {
    let (count,): (i64,) = db
        .reader()
        .await?
        .fetch_one(COUNT_CODES, &[user_id.into()])
        .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}
