//! `sessions` of the portal.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::codec;
use crate::tables::model;
use netapi_core::StoreError;
use netapi_core::model::Session;
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;

macro_rules! columns {
    () => {
        "hash, user_id, auth_time, csrf_token, expires_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO sessions (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5)"
);
const SELECT_BY_HASH: &str = concat!("SELECT ", columns!(), " FROM sessions WHERE hash = $1");
const DELETE: &str = "DELETE FROM sessions WHERE hash = $1";
const DELETE_OF_USER: &str = "DELETE FROM sessions WHERE user_id = $1";
pub(crate) const DELETE_EXPIRED: &str = "DELETE FROM sessions WHERE expires_at < $1";

#[derive(FromRow)]
pub(crate) struct SessionRow {
    hash: Vec<u8>,
    user_id: String,
    auth_time: i64,
    csrf_token: String,
    expires_at: i64,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> StoreResult<Self> {
        Ok(Self {
            hash: codec::hash(&row.hash)?,
            user_id: row.user_id,
            auth_time: row.auth_time,
            csrf_token: row.csrf_token,
            expires_at: row.expires_at,
        })
    }
}

pub(crate) async fn insert(db: &impl Backend, session: &Session) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            INSERT,
            &[
                session.hash.0.as_slice().into(),
                (&session.user_id).into(),
                session.auth_time.into(),
                (&session.csrf_token).into(),
                session.expires_at.into(),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn get(db: &impl Backend, hash: &SecretHash) -> StoreResult<Option<Session>> {
    let row: Option<SessionRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_HASH, &[hash.0.as_slice().into()])
        .await?;
    model(row)
}

pub(crate) async fn delete(db: &impl Backend, hash: &SecretHash) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(DELETE, &[hash.0.as_slice().into()])
        .await?;
    Ok(())
}

pub(crate) async fn delete_of_user(db: &impl Backend, user_id: &str) -> StoreResult<u64> {
    db.writer()
        .await?
        .execute(DELETE_OF_USER, &[user_id.into()])
        .await
}
