//! `signing_keys`, and `secret_key_check` (the check value of the key that seals them).

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::codec;
use crate::tables::models;
use netapi_core::model::SigningKey;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "kid, alg, private_key, created_at, active_from, retire_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO signing_keys (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6)"
);
const LIST_LIVE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM signing_keys WHERE retire_at IS NULL OR retire_at > $1 ORDER BY active_from, kid"
);
/// Keys that come before `$1` in signing order (`active_from`, then `kid`, as the key ring
/// picks): those of earlier rotations, of every algorithm, and not the keys of other
/// algorithms made after `$1` in the same rotation (same `active_from`, later `kid`).
const RETIRE_EARLIER: &str = "UPDATE signing_keys SET retire_at = $2 WHERE retire_at IS NULL \
     AND EXISTS (SELECT 1 FROM signing_keys AS keep WHERE keep.kid = $1 \
     AND (signing_keys.active_from < keep.active_from \
     OR (signing_keys.active_from = keep.active_from AND signing_keys.kid < keep.kid)))";
/// Only if the key is still sealed as `$2` (another instance may have resealed it).
const RESEAL: &str = "UPDATE signing_keys SET private_key = $3 WHERE kid = $1 AND private_key = $2";
/// Keys retired before the cutoff (core: a day ago).
pub(crate) const DELETE_RETIRED: &str = delete_batch!(
    "signing_keys",
    "kid",
    "retire_at IS NOT NULL AND retire_at < $1"
);
/// A statement that writes nothing still needs write access: SQLite opens a write
/// transaction for it, PostgreSQL refuses it on a read-only server.
pub(crate) const WRITE_NOTHING: &str = "UPDATE signing_keys SET kid = kid WHERE 1 = 0";

const SELECT_CHECK: &str = "SELECT check_value FROM secret_key_check WHERE id = 1";
const INSERT_CHECK: &str = "INSERT INTO secret_key_check (id, check_value, created_at) \
     VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING";

#[derive(FromRow)]
pub(crate) struct SigningKeyRow {
    kid: String,
    alg: String,
    private_key: Vec<u8>,
    created_at: i64,
    active_from: i64,
    retire_at: Option<i64>,
}

impl TryFrom<SigningKeyRow> for SigningKey {
    type Error = StoreError;

    fn try_from(row: SigningKeyRow) -> StoreResult<Self> {
        Ok(Self {
            kid: row.kid,
            alg: codec::alg(&row.alg)?,
            private_key: row.private_key,
            created_at: row.created_at,
            active_from: row.active_from,
            retire_at: row.retire_at,
        })
    }
}

pub(crate) async fn insert(db: &impl Backend, key: &SigningKey) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            INSERT,
            &[
                (&key.kid).into(),
                key.alg.as_str().into(),
                key.private_key.as_slice().into(),
                key.created_at.into(),
                key.active_from.into(),
                key.retire_at.into(),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn list_live(db: &impl Backend, now: Timestamp) -> StoreResult<Vec<SigningKey>> {
    let rows: Vec<SigningKeyRow> = db
        .reader()
        .await?
        .fetch_all(LIST_LIVE, &[now.into()])
        .await?;
    models(rows)
}

pub(crate) async fn retire_earlier(
    db: &impl Backend,
    keep: &str,
    retire_at: Timestamp,
) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(RETIRE_EARLIER, &[keep.into(), retire_at.into()])
        .await?;
    Ok(())
}

pub(crate) async fn reseal(
    db: &impl Backend,
    kid: &str,
    old: &[u8],
    new: &[u8],
) -> StoreResult<bool> {
    let updated = db
        .writer()
        .await?
        .execute(RESEAL, &[kid.into(), old.into(), new.into()])
        .await?;
    Ok(updated == 1)
}

/// The recorded check value; `check` is recorded first when there is none.
pub(crate) async fn init_check(
    db: &impl Backend,
    check: &[u8],
    at: Timestamp,
) -> StoreResult<Vec<u8>> {
    // Read first: a database set up already needs no write (a read-only one starts).
    let recorded: Option<(Vec<u8>,)> = db.reader().await?.fetch_optional(SELECT_CHECK, &[]).await?;
    if let Some((value,)) = recorded {
        return Ok(value);
    }
    let mut writer = db.writer().await?;
    writer
        .execute(INSERT_CHECK, &[check.into(), at.into()])
        .await?;
    let (value,) = writer.fetch_one(SELECT_CHECK, &[]).await?;
    Ok(value)
}
