//! `pushed_requests` (RFC 9126 pushed authorization requests, under the hash of their
//! `request_uri`) and `client_assertion_jtis` (the `jti` of each `private_key_jwt` assertion,
//! kept until it expires, so that none is used twice).

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::codec;
use netapi_core::model::PushedRequest;
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

const INSERT: &str = "INSERT INTO pushed_requests (hash, client_id, params, created_at, \
     expires_at) VALUES ($1, $2, $3, $4, $5)";
const GET: &str = "SELECT hash, client_id, params, created_at, expires_at FROM pushed_requests \
     WHERE hash = $1 AND expires_at > $2";
const TAKE: &str = "DELETE FROM pushed_requests WHERE hash = $1 AND client_id = $2 \
     AND expires_at > $3";
pub(crate) const DELETE_EXPIRED: &str =
    delete_batch!("pushed_requests", "hash", "expires_at <= $1");

/// A new `jti` is recorded; one whose record has expired is recorded again; a live one is
/// left alone, and no row changes (the replay).
const USE_JTI: &str = "INSERT INTO client_assertion_jtis (client_id, jti_hash, expires_at) \
     VALUES ($1, $2, $3) ON CONFLICT (client_id, jti_hash) DO UPDATE \
     SET expires_at = excluded.expires_at WHERE client_assertion_jtis.expires_at <= $4";
pub(crate) const DELETE_EXPIRED_JTIS: &str = delete_batch!(
    "client_assertion_jtis",
    "(client_id, jti_hash)",
    "client_id, jti_hash",
    "expires_at <= $1"
);

#[derive(FromRow)]
pub(crate) struct PushedRequestRow {
    hash: Vec<u8>,
    client_id: String,
    params: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<PushedRequestRow> for PushedRequest {
    type Error = StoreError;

    fn try_from(row: PushedRequestRow) -> Result<Self, StoreError> {
        Ok(Self {
            hash: codec::hash(&row.hash)?,
            client_id: row.client_id,
            params: row.params,
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }
}

pub(crate) async fn insert(db: &impl Backend, request: &PushedRequest) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            INSERT,
            &[
                request.hash.0.as_slice().into(),
                (&request.client_id).into(),
                (&request.params).into(),
                request.created_at.into(),
                request.expires_at.into(),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn get(
    db: &impl Backend,
    hash: &SecretHash,
    now: Timestamp,
) -> StoreResult<Option<PushedRequest>> {
    let row: Option<PushedRequestRow> = db
        .reader()
        .await?
        .fetch_optional(GET, &[hash.0.as_slice().into(), now.into()])
        .await?;
    row.map(PushedRequest::try_from).transpose()
}

pub(crate) async fn take(
    db: &impl Backend,
    hash: &SecretHash,
    client_id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let removed = db
        .writer()
        .await?
        .execute(
            TAKE,
            &[hash.0.as_slice().into(), client_id.into(), now.into()],
        )
        .await?;
    Ok(removed == 1)
}

pub(crate) async fn use_jti(
    db: &impl Backend,
    client_id: &str,
    jti_hash: &[u8],
    expires_at: Timestamp,
    now: Timestamp,
) -> StoreResult<bool> {
    let written = db
        .writer()
        .await?
        .execute(
            USE_JTI,
            &[
                client_id.into(),
                jti_hash.into(),
                expires_at.into(),
                now.into(),
            ],
        )
        .await?;
    Ok(written == 1)
}
