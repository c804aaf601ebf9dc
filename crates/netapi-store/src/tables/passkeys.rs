//! `passkeys` (users' WebAuthn credentials) and `webauthn_ceremonies` (registrations and
//! sign-ins waiting for the browser's answer).

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::{codec, map_err, retry_contention};
use netapi_core::model::{PasskeyCredential, WebauthnCeremony};
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

const COLUMNS: &str = "id, user_id, credential_id, name, passkey, created_at, last_used_at";
const COUNT_OF_USER: &str = "SELECT COUNT(*) FROM passkeys WHERE user_id = $1";
const INSERT: &str = "INSERT INTO passkeys (id, user_id, credential_id, name, passkey, \
     created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)";
const RECORD_USE: &str = "UPDATE passkeys SET passkey = $2, last_used_at = $3 WHERE id = $1";
const DELETE: &str = "DELETE FROM passkeys WHERE user_id = $1 AND id = $2";

const DROP_EXPIRED: &str = "DELETE FROM webauthn_ceremonies WHERE expires_at <= $1";
/// The retention sweep's batch of [`DROP_EXPIRED`].
pub(crate) const DELETE_EXPIRED_CEREMONIES: &str =
    delete_batch!("webauthn_ceremonies", "hash", "expires_at <= $1");
const COUNT_ANONYMOUS: &str = "SELECT COUNT(*) FROM webauthn_ceremonies WHERE user_id IS NULL";
const PUT_CEREMONY: &str = "INSERT INTO webauthn_ceremonies (hash, purpose, user_id, state, \
     expires_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO UPDATE SET \
     purpose = excluded.purpose, user_id = excluded.user_id, state = excluded.state, \
     expires_at = excluded.expires_at";
const TAKE_CEREMONY: &str = "DELETE FROM webauthn_ceremonies WHERE hash = $1 AND expires_at > $2 \
     RETURNING hash, purpose, user_id, state, expires_at";

#[derive(FromRow)]
pub(crate) struct PasskeyRow {
    id: String,
    user_id: String,
    credential_id: String,
    name: String,
    passkey: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<PasskeyRow> for PasskeyCredential {
    fn from(row: PasskeyRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            credential_id: row.credential_id,
            name: row.name,
            passkey: row.passkey,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct CeremonyRow {
    hash: Vec<u8>,
    purpose: String,
    user_id: Option<String>,
    state: String,
    expires_at: i64,
}

impl TryFrom<CeremonyRow> for WebauthnCeremony {
    type Error = StoreError;

    fn try_from(row: CeremonyRow) -> Result<Self, StoreError> {
        Ok(Self {
            hash: codec::hash(&row.hash)?,
            purpose: row.purpose,
            user_id: row.user_id,
            state: row.state,
            expires_at: row.expires_at,
        })
    }
}

/// Counts and inserts in one write transaction (on PostgreSQL, concurrent registrations of
/// one user may exceed `max` by the few that race).
/// The lock topic that makes passkey registrations take turns (see
/// [`Backend::begin_exclusive`]), so that the per-user cap holds under concurrent adds on
/// every instance; registrations are rare, so one topic for all users costs nothing.
const PASSKEY_CAP_LOCK: i64 = 0x6e65_7461_7069_0002;

pub(crate) async fn insert(
    db: &impl Backend,
    passkey: &PasskeyCredential,
    max: u64,
) -> StoreResult<bool> {
    retry_contention(|| async move {
        let mut tx = db.begin_exclusive(PASSKEY_CAP_LOCK).await?;
        let (count,): (i64,) = tx
            .fetch_one(COUNT_OF_USER, &[(&passkey.user_id).into()])
            .await?;
        if u64::try_from(count).unwrap_or(0) >= max {
            tx.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        tx.execute(
            INSERT,
            &[
                (&passkey.id).into(),
                (&passkey.user_id).into(),
                (&passkey.credential_id).into(),
                (&passkey.name).into(),
                (&passkey.passkey).into(),
                passkey.created_at.into(),
            ],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    })
    .await
}

pub(crate) async fn list_of_user(
    db: &impl Backend,
    user_id: &str,
) -> StoreResult<Vec<PasskeyCredential>> {
    let rows: Vec<PasskeyRow> = db
        .reader()
        .await?
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"),
            &[user_id.into()],
        )
        .await?;
    Ok(rows.into_iter().map(PasskeyCredential::from).collect())
}

pub(crate) async fn by_credential(
    db: &impl Backend,
    credential_id: &str,
) -> StoreResult<Option<PasskeyCredential>> {
    let row: Option<PasskeyRow> = db
        .reader()
        .await?
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1"),
            &[credential_id.into()],
        )
        .await?;
    Ok(row.map(PasskeyCredential::from))
}

pub(crate) async fn record_use(
    db: &impl Backend,
    id: &str,
    passkey: &str,
    now: Timestamp,
) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(RECORD_USE, &[id.into(), passkey.into(), now.into()])
        .await?;
    Ok(())
}

pub(crate) async fn delete(db: &impl Backend, user_id: &str, id: &str) -> StoreResult<bool> {
    let removed = db
        .writer()
        .await?
        .execute(DELETE, &[user_id.into(), id.into()])
        .await?;
    Ok(removed == 1)
}

pub(crate) async fn put_ceremony(
    db: &impl Backend,
    ceremony: &WebauthnCeremony,
    max_anonymous: u64,
    now: Timestamp,
) -> StoreResult<bool> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        tx.execute(DROP_EXPIRED, &[now.into()]).await?;
        if ceremony.user_id.is_none() {
            let (pending,): (i64,) = tx.fetch_one(COUNT_ANONYMOUS, &[]).await?;
            if u64::try_from(pending).unwrap_or(0) >= max_anonymous {
                tx.commit().await.map_err(map_err)?;
                return Ok(false);
            }
        }
        tx.execute(
            PUT_CEREMONY,
            &[
                ceremony.hash.0.as_slice().into(),
                (&ceremony.purpose).into(),
                (&ceremony.user_id).into(),
                (&ceremony.state).into(),
                ceremony.expires_at.into(),
            ],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    })
    .await
}

pub(crate) async fn take_ceremony(
    db: &impl Backend,
    hash: &SecretHash,
    now: Timestamp,
) -> StoreResult<Option<WebauthnCeremony>> {
    let row: Option<CeremonyRow> = db
        .writer()
        .await?
        .fetch_optional(TAKE_CEREMONY, &[hash.0.as_slice().into(), now.into()])
        .await?;
    row.map(WebauthnCeremony::try_from).transpose()
}
