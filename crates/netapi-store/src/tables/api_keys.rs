//! `api_keys`.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::{model, models};
use crate::{codec, map_err, retry_contention};
use netapi_core::model::{ApiKey, ResourceRef};
use netapi_core::scope::Scopes;
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "id, user_id, name, prefix, last_four, hash, scopes, created_at, last_used_at, \
         expires_at, revoked_at, rate_limit, created_by_client, resource_id, \
         resource_identifier, resource_scopes, metadata"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO api_keys (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
);
const SELECT_BY_ID: &str = concat!("SELECT ", columns!(), " FROM api_keys WHERE id = $1");
const SELECT_BY_HASH: &str = concat!("SELECT ", columns!(), " FROM api_keys WHERE hash = $1");
const LIST_OF_USER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM api_keys WHERE user_id = $1 AND id > $2 AND revoked_at IS NULL ORDER BY id LIMIT $3"
);
const REVOKE: &str = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
/// The old key of a rotation keeps working until `$2`.
const SET_EXPIRY: &str = "UPDATE api_keys SET expires_at = $2 WHERE id = $1 AND revoked_at IS NULL";
const REVOKE_OF_CLIENT_AND_USER: &str = "UPDATE api_keys SET revoked_at = $2 \
     WHERE created_by_client = $1 AND user_id = $3 AND revoked_at IS NULL RETURNING hash";
const REVOKE_OF_CLIENT: &str = "UPDATE api_keys SET revoked_at = $2 \
     WHERE created_by_client = $1 AND revoked_at IS NULL RETURNING hash";
const REVOKE_OF_RESOURCE: &str = "UPDATE api_keys SET revoked_at = $2 \
     WHERE resource_id = $1 AND revoked_at IS NULL RETURNING hash";
/// Never moves `last_used_at` back.
const RECORD_USE: &str = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 \
     AND (last_used_at IS NULL OR last_used_at < $2)";
/// Keys revoked before the cutoff (core: 90 days ago).
pub(crate) const DELETE_LONG_REVOKED: &str = delete_batch!(
    "api_keys",
    "id",
    "revoked_at IS NOT NULL AND revoked_at < $1"
);
/// Keys that expired before the cutoff (core: 90 days ago).
pub(crate) const DELETE_LONG_EXPIRED: &str = delete_batch!(
    "api_keys",
    "id",
    "expires_at IS NOT NULL AND expires_at < $1"
);

#[derive(FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    last_four: String,
    hash: Vec<u8>,
    scopes: i64,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    rate_limit: Option<i64>,
    created_by_client: Option<String>,
    resource_id: Option<String>,
    resource_identifier: Option<String>,
    resource_scopes: String,
    metadata: Option<String>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            prefix: row.prefix,
            last_four: row.last_four,
            hash: codec::hash(&row.hash)?,
            scopes: Scopes::from_bits(row.scopes),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            rate_limit: codec::rate_limit(row.rate_limit),
            created_by_client: row.created_by_client,
            resource: match (row.resource_id, row.resource_identifier) {
                (Some(id), Some(identifier)) => Some(ResourceRef { id, identifier }),
                _ => None,
            },
            resource_scopes: codec::split_names(&row.resource_scopes),
            metadata: row.metadata,
        })
    }
}

/// The `hash` column a `RETURNING hash` answers.
#[derive(FromRow)]
struct HashRow {
    hash: Vec<u8>,
}

fn hashes(rows: Vec<HashRow>) -> StoreResult<Vec<SecretHash>> {
    rows.iter().map(|row| codec::hash(&row.hash)).collect()
}

pub(crate) async fn insert(conn: &mut impl Exec, key: &ApiKey) -> StoreResult<()> {
    conn.execute(
        INSERT,
        &[
            (&key.id).into(),
            (&key.user_id).into(),
            (&key.name).into(),
            (&key.prefix).into(),
            (&key.last_four).into(),
            key.hash.0.as_slice().into(),
            key.scopes.bits().into(),
            key.created_at.into(),
            key.last_used_at.into(),
            key.expires_at.into(),
            key.revoked_at.into(),
            key.rate_limit.map(i64::from).into(),
            (&key.created_by_client).into(),
            key.resource.as_ref().map(|r| r.id.as_str()).into(),
            key.resource.as_ref().map(|r| r.identifier.as_str()).into(),
            codec::join_names(&key.resource_scopes).into(),
            (&key.metadata).into(),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get(db: &impl Backend, id: &str) -> StoreResult<Option<ApiKey>> {
    let row: Option<ApiKeyRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_ID, &[id.into()])
        .await?;
    model(row)
}

pub(crate) async fn find(db: &impl Backend, hash: &SecretHash) -> StoreResult<Option<ApiKey>> {
    let row: Option<ApiKeyRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_HASH, &[hash.0.as_slice().into()])
        .await?;
    model(row)
}

pub(crate) async fn list(
    db: &impl Backend,
    user_id: &str,
    after: Option<&str>,
    n: u32,
) -> StoreResult<Vec<ApiKey>> {
    let rows: Vec<ApiKeyRow> = db
        .reader()
        .await?
        .fetch_all(
            LIST_OF_USER,
            &[
                user_id.into(),
                after.unwrap_or("").into(),
                i64::from(n).into(),
            ],
        )
        .await?;
    models(rows)
}

pub(crate) async fn revoke(db: &impl Backend, id: &str, at: Timestamp) -> StoreResult<bool> {
    let revoked = db
        .writer()
        .await?
        .execute(REVOKE, &[id.into(), at.into()])
        .await?;
    Ok(revoked == 1)
}

/// The old key ends at `old_expires_at` and the new one is stored, together; false (and
/// nothing stored) when the old key is revoked or gone.
pub(crate) async fn rotate(
    db: &impl Backend,
    old_id: &str,
    old_expires_at: Timestamp,
    new_key: &ApiKey,
) -> StoreResult<bool> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        let updated = tx
            .execute(SET_EXPIRY, &[old_id.into(), old_expires_at.into()])
            .await?;
        if updated != 1 {
            return Ok(false);
        }
        insert(&mut *tx, new_key).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    })
    .await
}

pub(crate) async fn revoke_of_client(
    db: &impl Backend,
    client_id: &str,
    user_id: Option<&str>,
    at: Timestamp,
) -> StoreResult<Vec<SecretHash>> {
    let mut writer = db.writer().await?;
    let rows: Vec<HashRow> = match user_id {
        Some(user_id) => {
            writer
                .fetch_all(
                    REVOKE_OF_CLIENT_AND_USER,
                    &[client_id.into(), at.into(), user_id.into()],
                )
                .await?
        }
        None => {
            writer
                .fetch_all(REVOKE_OF_CLIENT, &[client_id.into(), at.into()])
                .await?
        }
    };
    hashes(rows)
}

/// Inside the transaction that deletes the resource.
pub(crate) async fn revoke_of_resource(
    conn: &mut impl Exec,
    resource_id: &str,
    at: Timestamp,
) -> StoreResult<Vec<SecretHash>> {
    let rows: Vec<HashRow> = conn
        .fetch_all(REVOKE_OF_RESOURCE, &[resource_id.into(), at.into()])
        .await?;
    hashes(rows)
}

pub(crate) async fn record_use(db: &impl Backend, uses: &[(String, Timestamp)]) -> StoreResult<()> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        for (id, at) in uses {
            tx.execute(RECORD_USE, &[id.into(), (*at).into()]).await?;
        }
        tx.commit().await.map_err(map_err)
    })
    .await
}
