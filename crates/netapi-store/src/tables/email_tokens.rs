//! `email_tokens`: the single-use links mailed to users, by the hash of their secret.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::{model, users};
use crate::{codec, map_err, retry_contention};
use netapi_core::model::{EmailPurpose, EmailToken, User};
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "id, purpose, user_id, email, hash, created_at, expires_at, used_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO email_tokens (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
);
const SELECT_BY_HASH: &str = concat!("SELECT ", columns!(), " FROM email_tokens WHERE hash = $1");
/// Uses a link: only one transaction can turn `used_at` from NULL, however many race.
const USE: &str = "UPDATE email_tokens SET used_at = $3 \
     WHERE hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
     RETURNING user_id, email";
/// A new password (or address) ends every other pending reset link of the user.
pub(crate) const USE_OTHER_RESETS: &str = "UPDATE email_tokens SET used_at = $2 \
     WHERE user_id = $1 AND purpose = 'reset_password' AND used_at IS NULL";
/// Verifies the address the link was sent to, if the user still has it.
const VERIFY: &str = concat!(
    "UPDATE users SET email_verified = TRUE, updated_at = $3 WHERE id = $1 AND email = $2 \
     RETURNING ",
    users::columns!()
);
/// Sets the password if the user still has the address the link was sent to: a link mailed
/// to an address given up since (perhaps because someone else reads it) resets nothing.
const SET_PASSWORD: &str = concat!(
    "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1 AND email = $4 \
     RETURNING ",
    users::columns!()
);
/// Expired links go (used ones too: kept until they would have expired).
pub(crate) const DELETE_EXPIRED: &str = delete_batch!("email_tokens", "id", "expires_at < $1");

#[derive(FromRow)]
pub(crate) struct EmailTokenRow {
    id: String,
    purpose: String,
    user_id: String,
    email: String,
    hash: Vec<u8>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<EmailTokenRow> for EmailToken {
    type Error = StoreError;

    fn try_from(row: EmailTokenRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            purpose: EmailPurpose::parse(&row.purpose)
                .ok_or_else(|| codec::corrupt("email token purpose"))?,
            user_id: row.user_id,
            email: row.email,
            hash: codec::hash(&row.hash)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

#[derive(FromRow)]
struct UsedRow {
    user_id: String,
    email: String,
}

pub(crate) async fn insert(db: &impl Backend, token: &EmailToken) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            INSERT,
            &[
                (&token.id).into(),
                token.purpose.as_str().into(),
                (&token.user_id).into(),
                (&token.email).into(),
                token.hash.0.as_slice().into(),
                token.created_at.into(),
                token.expires_at.into(),
                token.used_at.into(),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn get(db: &impl Backend, hash: &SecretHash) -> StoreResult<Option<EmailToken>> {
    let row: Option<EmailTokenRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_HASH, &[hash.0.as_slice().into()])
        .await?;
    model(row)
}

/// Marks a verification link used and verifies the address it was sent to, in one
/// transaction; `None` when the link is unknown, used or expired, or the user's address is
/// no longer the one it was sent to (the link is then used up all the same).
pub(crate) async fn verify_email(
    db: &impl Backend,
    hash: &SecretHash,
    now: Timestamp,
) -> StoreResult<Option<User>> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        let used: Option<UsedRow> = tx
            .fetch_optional(
                USE,
                &[
                    hash.0.as_slice().into(),
                    EmailPurpose::VerifyEmail.as_str().into(),
                    now.into(),
                ],
            )
            .await?;
        let Some(used) = used else {
            return Ok(None);
        };
        let row: Option<users::UserRow> = tx
            .fetch_optional(
                VERIFY,
                &[(&used.user_id).into(), (&used.email).into(), now.into()],
            )
            .await?;
        tx.commit().await.map_err(map_err)?;
        model(row)
    })
    .await
}

/// Marks a reset link used (with every other reset link of its user) and sets the new
/// password hash, in one transaction; `None` when the link is unknown, used or expired, or
/// the user's address is no longer the one it was sent to (the links are used up all the
/// same).
pub(crate) async fn reset_password(
    db: &impl Backend,
    hash: &SecretHash,
    password_hash: &str,
    now: Timestamp,
) -> StoreResult<Option<User>> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        let used: Option<UsedRow> = tx
            .fetch_optional(
                USE,
                &[
                    hash.0.as_slice().into(),
                    EmailPurpose::ResetPassword.as_str().into(),
                    now.into(),
                ],
            )
            .await?;
        let Some(used) = used else {
            return Ok(None);
        };
        tx.execute(USE_OTHER_RESETS, &[(&used.user_id).into(), now.into()])
            .await?;
        let row: Option<users::UserRow> = tx
            .fetch_optional(
                SET_PASSWORD,
                &[
                    (&used.user_id).into(),
                    password_hash.into(),
                    now.into(),
                    (&used.email).into(),
                ],
            )
            .await?;
        tx.commit().await.map_err(map_err)?;
        model(row)
    })
    .await
}
