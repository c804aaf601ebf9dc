//! `client_registrations` (RFC 7592 management of clients registered at `/oauth/register`)
//! and `registration_tokens` (RFC 7591 initial access tokens).

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::model;
use crate::tables::oauth_clients::{self, OAuthClientRow};
use crate::{codec, map_err, retry_contention};
use netapi_core::model::{ClientMetadata, ClientRegistration, OAuthClient, RegistrationToken};
use netapi_core::secret::SecretHash;
use netapi_core::store::{ClientChanges, StoreResult};
use netapi_core::{StoreError, Timestamp};

const INSERT_REGISTRATION: &str = "INSERT INTO client_registrations \
     (client_id, token_hash, metadata, created_at) VALUES ($1, $2, $3, $4)";
const SELECT_REGISTRATION: &str = "SELECT client_id, token_hash, metadata, created_at \
     FROM client_registrations WHERE client_id = $1";
const UPDATE_REGISTRATION: &str =
    "UPDATE client_registrations SET token_hash = $2, metadata = $3 WHERE client_id = $1";
/// The single use: only one transaction finds the token unused.
const USE_TOKEN: &str = "UPDATE registration_tokens SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2";
const INSERT_TOKEN: &str = "INSERT INTO registration_tokens \
     (id, token_hash, created_by, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6)";
const SELECT_TOKEN: &str = "SELECT id, token_hash, created_by, created_at, expires_at, used_at \
     FROM registration_tokens WHERE token_hash = $1";
const DELETE_TOKEN: &str = "DELETE FROM registration_tokens WHERE id = $1";
pub(crate) const DELETE_EXPIRED_TOKENS: &str =
    delete_batch!("registration_tokens", "id", "expires_at < $1");

#[derive(FromRow)]
pub(crate) struct RegistrationRow {
    client_id: String,
    token_hash: Vec<u8>,
    metadata: String,
    created_at: i64,
}

impl TryFrom<RegistrationRow> for ClientRegistration {
    type Error = StoreError;

    fn try_from(row: RegistrationRow) -> StoreResult<Self> {
        let metadata = ClientMetadata::from_json(&row.metadata)
            .map_err(|e| StoreError::Other(format!("bad client metadata: {e}")))?;
        Ok(Self {
            client_id: row.client_id,
            token_hash: codec::hash(&row.token_hash)?,
            metadata,
            created_at: row.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct TokenRow {
    id: String,
    token_hash: Vec<u8>,
    created_by: Option<String>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<TokenRow> for RegistrationToken {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            token_hash: codec::hash(&row.token_hash)?,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

pub(crate) async fn insert_client(
    db: &impl Backend,
    client: &OAuthClient,
    registration: &ClientRegistration,
    initial_token: Option<&SecretHash>,
    now: Timestamp,
) -> StoreResult<bool> {
    let metadata = registration.metadata.to_json();
    let metadata = metadata.as_str();
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        if let Some(hash) = initial_token
            && tx
                .execute(USE_TOKEN, &[hash.0.as_slice().into(), now.into()])
                .await?
                != 1
        {
            tx.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        tx.execute(oauth_clients::INSERT, &oauth_clients::insert_args(client))
            .await?;
        tx.execute(
            INSERT_REGISTRATION,
            &[
                (&registration.client_id).into(),
                registration.token_hash.0.as_slice().into(),
                metadata.into(),
                registration.created_at.into(),
            ],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    })
    .await
}

pub(crate) async fn get(
    db: &impl Backend,
    client_id: &str,
) -> StoreResult<Option<ClientRegistration>> {
    let row: Option<RegistrationRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_REGISTRATION, &[client_id.into()])
        .await?;
    model(row)
}

/// Writes `changes` to a registered client and replaces its registration, in one
/// transaction, if the client is still as it was `read`: `Conflict("client_changed")` when
/// anything of it changed since (an owner's or an administrator's narrowing, which this
/// update would otherwise undo), `None` when the client or its registration is gone.
pub(crate) async fn update_client(
    db: &impl Backend,
    id: &str,
    read: &OAuthClient,
    changes: &ClientChanges,
    registration: &ClientRegistration,
    at: Timestamp,
) -> StoreResult<Option<OAuthClient>> {
    let metadata = registration.metadata.to_json();
    let metadata = metadata.as_str();
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        tx.execute(oauth_clients::LOCK, &[id.into()]).await?;
        let current: Option<OAuthClientRow> = tx
            .fetch_optional(oauth_clients::SELECT_BY_ID, &[id.into()])
            .await?;
        match model::<_, OAuthClient>(current)? {
            None => {
                tx.rollback().await.map_err(map_err)?;
                return Ok(None);
            }
            Some(current) if current != *read => {
                tx.rollback().await.map_err(map_err)?;
                return Err(StoreError::Conflict("client_changed"));
            }
            Some(_) => {}
        }
        let row: Option<OAuthClientRow> = tx
            .fetch_optional(
                oauth_clients::UPDATE,
                &oauth_clients::update_args(id, changes, at),
            )
            .await?;
        let updated = tx
            .execute(
                UPDATE_REGISTRATION,
                &[
                    id.into(),
                    registration.token_hash.0.as_slice().into(),
                    metadata.into(),
                ],
            )
            .await?;
        if row.is_none() || updated != 1 {
            tx.rollback().await.map_err(map_err)?;
            return Ok(None);
        }
        tx.commit().await.map_err(map_err)?;
        model(row)
    })
    .await
}

pub(crate) async fn insert_token(db: &impl Backend, token: &RegistrationToken) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            INSERT_TOKEN,
            &[
                (&token.id).into(),
                token.token_hash.0.as_slice().into(),
                token.created_by.as_deref().into(),
                token.created_at.into(),
                token.expires_at.into(),
                token.used_at.into(),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn find_token(
    db: &impl Backend,
    hash: &SecretHash,
) -> StoreResult<Option<RegistrationToken>> {
    let row: Option<TokenRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_TOKEN, &[hash.0.as_slice().into()])
        .await?;
    model(row)
}

pub(crate) async fn delete_token(db: &impl Backend, id: &str) -> StoreResult<bool> {
    let deleted = db
        .writer()
        .await?
        .execute(DELETE_TOKEN, &[id.into()])
        .await?;
    Ok(deleted == 1)
}
