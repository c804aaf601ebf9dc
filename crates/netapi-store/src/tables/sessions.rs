//! `sessions` of the portal.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::codec;
use crate::tables::{model, models};
use netapi_core::model::Session;
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "hash, user_id, auth_time, csrf_token, expires_at, amr, created_at, last_seen_at, \
         user_agent, source, sid"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO sessions (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
const SELECT_BY_HASH: &str = concat!("SELECT ", columns!(), " FROM sessions WHERE hash = $1");
const SELECT_OF_USER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, hash"
);
const TOUCH: &str = "UPDATE sessions SET last_seen_at = $2 WHERE hash = $1 AND last_seen_at < $2";
const DELETE: &str = "DELETE FROM sessions WHERE hash = $1";
const DELETE_OF_USER: &str = "DELETE FROM sessions WHERE user_id = $1";
pub(crate) const DELETE_EXPIRED: &str = delete_batch!("sessions", "hash", "expires_at < $1");
const RECORD_CLIENT: &str = "INSERT INTO session_clients (sid, client_id, user_id, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (sid, client_id) DO NOTHING";
const TAKE_CLIENTS: &str = "DELETE FROM session_clients WHERE sid = $1 RETURNING client_id";
/// Clients recorded (at or before the cutoff) for sessions that are gone (expired, or ended
/// by an older instance): nobody will be told about them any more. Run after
/// [`DELETE_EXPIRED`].
pub(crate) const DELETE_ORPHAN_CLIENTS: &str = delete_batch!(
    "session_clients",
    "(sid, client_id)",
    "sid, client_id",
    "created_at <= $1 AND NOT EXISTS \
     (SELECT 1 FROM sessions WHERE sessions.sid = session_clients.sid)"
);

#[derive(FromRow)]
pub(crate) struct SessionRow {
    hash: Vec<u8>,
    user_id: String,
    auth_time: i64,
    csrf_token: String,
    expires_at: i64,
    amr: String,
    created_at: i64,
    last_seen_at: i64,
    user_agent: Option<String>,
    source: Option<String>,
    sid: Option<String>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> StoreResult<Self> {
        Ok(Self {
            hash: codec::hash(&row.hash)?,
            user_id: row.user_id,
            auth_time: row.auth_time,
            amr: codec::amr(&row.amr)?,
            csrf_token: row.csrf_token,
            expires_at: row.expires_at,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            user_agent: row.user_agent,
            source: row.source,
            sid: row.sid.unwrap_or_default(),
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
                session.amr.as_str().into(),
                session.created_at.into(),
                session.last_seen_at.into(),
                (&session.user_agent).into(),
                (&session.source).into(),
                (!session.sid.is_empty())
                    .then_some(session.sid.as_str())
                    .into(),
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

pub(crate) async fn list_of_user(db: &impl Backend, user_id: &str) -> StoreResult<Vec<Session>> {
    let rows: Vec<SessionRow> = db
        .reader()
        .await?
        .fetch_all(SELECT_OF_USER, &[user_id.into()])
        .await?;
    models(rows)
}

pub(crate) async fn touch(db: &impl Backend, hash: &SecretHash, now: Timestamp) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(TOUCH, &[hash.0.as_slice().into(), now.into()])
        .await?;
    Ok(())
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

pub(crate) async fn record_client(
    db: &impl Backend,
    sid: &str,
    client_id: &str,
    user_id: &str,
    at: Timestamp,
) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            RECORD_CLIENT,
            &[sid.into(), client_id.into(), user_id.into(), at.into()],
        )
        .await?;
    Ok(())
}

/// The `client_id` column a `RETURNING client_id` answers.
#[derive(FromRow)]
struct ClientIdRow {
    client_id: String,
}

pub(crate) async fn take_clients(db: &impl Backend, sid: &str) -> StoreResult<Vec<String>> {
    let rows: Vec<ClientIdRow> = db
        .writer()
        .await?
        .fetch_all(TAKE_CLIENTS, &[sid.into()])
        .await?;
    let mut clients: Vec<String> = rows.into_iter().map(|r| r.client_id).collect();
    clients.sort();
    Ok(clients)
}
