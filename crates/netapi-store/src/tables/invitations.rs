//! `invitations` to register.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::{model, models};
use crate::{codec, map_err, retry_contention};
use netapi_core::model::Invitation;
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "id, token_hash, email, role, created_by, created_at, expires_at, used_at, used_by"
    };
}

const COUNT_OUTSTANDING: &str =
    "SELECT COUNT(*) FROM invitations WHERE used_at IS NULL AND expires_at > $1";
const INSERT: &str = concat!(
    "INSERT INTO invitations (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
const SELECT_BY_HASH: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM invitations WHERE token_hash = $1"
);
const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM invitations WHERE id > $1 ORDER BY id LIMIT $2"
);
const DELETE: &str = "DELETE FROM invitations WHERE id = $1";
/// The single use: only one transaction finds the row unused.
const MARK_USED: &str = "UPDATE invitations SET used_at = $3, used_by = $2 \
     WHERE id = $1 AND used_at IS NULL AND expires_at > $3";
pub(crate) const DELETE_EXPIRED: &str = delete_batch!("invitations", "id", "expires_at < $1");

#[derive(FromRow)]
pub(crate) struct InvitationRow {
    id: String,
    token_hash: Vec<u8>,
    email: Option<String>,
    role: String,
    created_by: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    used_by: Option<String>,
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = StoreError;

    fn try_from(row: InvitationRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            token_hash: codec::hash(&row.token_hash)?,
            email: row.email,
            role: codec::role(&row.role)?,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
            used_by: row.used_by,
        })
    }
}

/// The lock topic that makes invitation creations take turns (see
/// [`Backend::begin_exclusive`]); distinct from the migration lock.
const INVITATION_CAP_LOCK: i64 = 0x6e65_7461_7069_0001;

/// Counts the outstanding invitations and stores the new one in one transaction that
/// excludes every other creation, so the bound holds exactly however many arrive at once
/// (on every instance).
pub(crate) async fn insert(
    db: &impl Backend,
    invitation: &Invitation,
    max_outstanding: u32,
    now: Timestamp,
) -> StoreResult<bool> {
    retry_contention(|| async move {
        let mut tx = db.begin_exclusive(INVITATION_CAP_LOCK).await?;
        let (outstanding,): (i64,) = tx.fetch_one(COUNT_OUTSTANDING, &[now.into()]).await?;
        if outstanding >= i64::from(max_outstanding) {
            tx.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        tx.execute(
            INSERT,
            &[
                (&invitation.id).into(),
                invitation.token_hash.0.as_slice().into(),
                invitation.email.as_deref().into(),
                invitation.role.as_str().into(),
                (&invitation.created_by).into(),
                invitation.created_at.into(),
                invitation.expires_at.into(),
                invitation.used_at.into(),
                invitation.used_by.as_deref().into(),
            ],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    })
    .await
}

pub(crate) async fn find(db: &impl Backend, hash: &SecretHash) -> StoreResult<Option<Invitation>> {
    let row: Option<InvitationRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_HASH, &[hash.0.as_slice().into()])
        .await?;
    model(row)
}

pub(crate) async fn list(
    db: &impl Backend,
    after: Option<&str>,
    n: u32,
) -> StoreResult<Vec<Invitation>> {
    let rows: Vec<InvitationRow> = db
        .reader()
        .await?
        .fetch_all(LIST, &[after.unwrap_or("").into(), i64::from(n).into()])
        .await?;
    models(rows)
}

pub(crate) async fn delete(db: &impl Backend, id: &str) -> StoreResult<bool> {
    let deleted = db.writer().await?.execute(DELETE, &[id.into()]).await?;
    Ok(deleted == 1)
}

/// Marks an invitation used by `user_id` at `now` if it is unused and unexpired; inside the
/// transaction that creates the user.
pub(crate) async fn mark_used(
    tx: &mut impl Exec,
    id: &str,
    user_id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    Ok(tx
        .execute(MARK_USED, &[id.into(), user_id.into(), now.into()])
        .await?
        == 1)
}
