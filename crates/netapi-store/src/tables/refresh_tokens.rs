//! `refresh_tokens`.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::model;
use crate::{codec, map_err, retry_contention};
use netapi_core::model::{RefreshToken, RotateOutcome};
use netapi_core::scope::Scopes;
use netapi_core::secret::{DerivationKey, SecretHash};
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "hash, family_id, client_id, user_id, scopes, issued_at, expires_at, \
         family_expires_at, auth_time, rotated_at, revoked_at, successor_key, resource_id, \
         resource_scopes, amr, sid, dpop_jkt"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO refresh_tokens (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
);
const SELECT_BY_HASH: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM refresh_tokens WHERE hash = $1"
);
/// The first use of a token wins this conditional update.
const MARK_ROTATED: &str = concat!(
    "UPDATE refresh_tokens SET rotated_at = $2 WHERE hash = $1 AND rotated_at IS NULL \
     AND revoked_at IS NULL AND expires_at > $2 RETURNING ",
    columns!()
);
const REVOKE_FAMILY: &str =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL";
const REVOKE_OF_USER_AND_CLIENT: &str = "UPDATE refresh_tokens SET revoked_at = $3 \
     WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL RETURNING family_id";
const REVOKE_OF_USER: &str = "UPDATE refresh_tokens SET revoked_at = $2 \
     WHERE user_id = $1 AND revoked_at IS NULL RETURNING family_id";
const REVOKE_OF_RESOURCE: &str = "UPDATE refresh_tokens SET revoked_at = $2 \
     WHERE resource_id = $1 AND revoked_at IS NULL RETURNING family_id";
pub(crate) const DELETE_EXPIRED: &str = delete_batch!(
    "refresh_tokens",
    "hash",
    "expires_at < $1 OR family_expires_at < $1"
);

#[derive(FromRow)]
pub(crate) struct RefreshTokenRow {
    hash: Vec<u8>,
    family_id: String,
    client_id: String,
    user_id: String,
    scopes: i64,
    issued_at: i64,
    expires_at: i64,
    family_expires_at: i64,
    auth_time: i64,
    amr: String,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
    successor_key: Option<Vec<u8>>,
    resource_id: Option<String>,
    resource_scopes: String,
    sid: Option<String>,
    dpop_jkt: Option<String>,
}

impl TryFrom<RefreshTokenRow> for RefreshToken {
    type Error = StoreError;

    fn try_from(row: RefreshTokenRow) -> StoreResult<Self> {
        Ok(Self {
            hash: codec::hash(&row.hash)?,
            family_id: row.family_id,
            client_id: row.client_id,
            user_id: row.user_id,
            scopes: Scopes::from_bits(row.scopes),
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            family_expires_at: row.family_expires_at,
            auth_time: row.auth_time,
            amr: codec::amr(&row.amr)?,
            rotated_at: row.rotated_at,
            revoked_at: row.revoked_at,
            successor_key: row
                .successor_key
                .as_deref()
                .and_then(DerivationKey::from_slice),
            resource_id: row.resource_id,
            resource_scopes: codec::split_names(&row.resource_scopes),
            sid: row.sid,
            dpop_jkt: row.dpop_jkt,
        })
    }
}

/// The `family_id` column a `RETURNING family_id` answers.
#[derive(FromRow)]
struct FamilyRow {
    family_id: String,
}

/// The distinct families of revoked rows, sorted.
fn families(rows: Vec<FamilyRow>) -> Vec<String> {
    let mut families: Vec<String> = rows.into_iter().map(|row| row.family_id).collect();
    families.sort();
    families.dedup();
    families
}

pub(crate) async fn insert(conn: &mut impl Exec, token: &RefreshToken) -> StoreResult<()> {
    conn.execute(
        INSERT,
        &[
            token.hash.0.as_slice().into(),
            (&token.family_id).into(),
            (&token.client_id).into(),
            (&token.user_id).into(),
            token.scopes.bits().into(),
            token.issued_at.into(),
            token.expires_at.into(),
            token.family_expires_at.into(),
            token.auth_time.into(),
            token.rotated_at.into(),
            token.revoked_at.into(),
            token.successor_key.as_ref().map(|k| k.0.as_slice()).into(),
            (&token.resource_id).into(),
            codec::join_names(&token.resource_scopes).into(),
            token.amr.as_str().into(),
            (&token.sid).into(),
            (&token.dpop_jkt).into(),
        ],
    )
    .await?;
    Ok(())
}

async fn select(conn: &mut impl Exec, hash: &SecretHash) -> StoreResult<Option<RefreshToken>> {
    let row: Option<RefreshTokenRow> = conn
        .fetch_optional(SELECT_BY_HASH, &[hash.0.as_slice().into()])
        .await?;
    model(row)
}

pub(crate) async fn get(db: &impl Backend, hash: &SecretHash) -> StoreResult<Option<RefreshToken>> {
    select(&mut *db.reader().await?, hash).await
}

/// Rotates `old` into `successor` (see [`netapi_core::store::Store::rotate_refresh_token`]).
/// Group commit for rotations: concurrent rotations queue here, and whoever takes the
/// committer's turn commits everything queued so far in one transaction. A refresh is a
/// conditional update and an insert, so its cost was mostly the transaction around them
/// (`BEGIN IMMEDIATE` and the commit through SQLite's one writer, a commit's flush on
/// PostgreSQL); 32 concurrent refreshes now share a handful of transactions.
#[derive(Default)]
pub(crate) struct RotationQueue {
    pending: std::sync::Mutex<Vec<PendingRotation>>,
    committer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RotationQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationQueue").finish_non_exhaustive()
    }
}

/// At most this many rotations share a transaction, so that none holds the write lock long.
const MAX_BATCH: usize = 64;

pub(crate) struct PendingRotation {
    old: SecretHash,
    now: Timestamp,
    grace: i64,
    successor: RefreshToken,
    reply: tokio::sync::oneshot::Sender<StoreResult<RotateOutcome>>,
}

/// Rotates `old` into `successor` (see [`netapi_core::store::Store::rotate_refresh_token`]),
/// committed together with the rotations that arrive meanwhile. `spawn_batch` runs
/// [`commit_batch`] in its own task (the store, whose type is known there, spawns it).
pub(crate) async fn rotate(
    db: &impl Backend,
    queue: &RotationQueue,
    spawn_batch: impl Fn(Vec<PendingRotation>) -> tokio::task::JoinHandle<()>,
    old: &SecretHash,
    now: Timestamp,
    grace: i64,
    successor: &RefreshToken,
) -> StoreResult<RotateOutcome> {
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    lock(&queue.pending).push(PendingRotation {
        old: *old,
        now,
        grace,
        successor: successor.clone(),
        reply,
    });
    loop {
        let turn = queue.committer.lock().await;
        match answer.try_recv() {
            Ok(outcome) => return outcome,
            // A committer that was cancelled mid-batch lost the reply: the batch's
            // transaction rolled back or committed; a lone retry is judged by what is stored
            // (a committed rotation is found with its successor).
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                drop(turn);
                return rotate_alone(db, old, now, grace, successor).await;
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
        }
        let batch: Vec<PendingRotation> = {
            let mut pending = lock(&queue.pending);
            let take = pending.len().min(MAX_BATCH);
            pending.drain(..take).collect()
        };
        // The batch runs in its own task, so that a caller that goes away (a client that
        // hung up) cannot cut it, and the others' answers, short.
        let committed = spawn_batch(batch).await;
        drop(turn);
        if committed.is_err() {
            return Err(StoreError::Other(
                "a refresh-token rotation failed".to_owned(),
            ));
        }
    }
}

fn lock(
    pending: &std::sync::Mutex<Vec<PendingRotation>>,
) -> std::sync::MutexGuard<'_, Vec<PendingRotation>> {
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Commits the batch in one transaction; if that fails (a lost race with another instance,
/// a conflict), each rotation is tried again on its own, so one cannot fail the others.
pub(crate) async fn commit_batch(db: impl Backend, batch: Vec<PendingRotation>) {
    if batch.len() > 1
        && let Ok(outcomes) = rotate_together(&db, &batch).await
    {
        for (pending, outcome) in batch.into_iter().zip(outcomes) {
            let _ = pending.reply.send(Ok(outcome));
        }
        return;
    }
    for pending in batch {
        let outcome = rotate_alone(
            &db,
            &pending.old,
            pending.now,
            pending.grace,
            &pending.successor,
        )
        .await;
        let _ = pending.reply.send(outcome);
    }
}

async fn rotate_together(
    db: &impl Backend,
    batch: &[PendingRotation],
) -> StoreResult<Vec<RotateOutcome>> {
    let mut tx = db.begin_write().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for p in batch {
        outcomes.push(rotate_in(&mut *tx, &p.old, p.now, p.grace, &p.successor).await?);
    }
    tx.commit().await.map_err(map_err)?;
    Ok(outcomes)
}

async fn rotate_alone(
    db: &impl Backend,
    old: &SecretHash,
    now: Timestamp,
    grace: i64,
    successor: &RefreshToken,
) -> StoreResult<RotateOutcome> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        let outcome = rotate_in(&mut *tx, old, now, grace, successor).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    })
    .await
}

/// One rotation inside a write transaction.
async fn rotate_in(
    tx: &mut impl Exec,
    old: &SecretHash,
    now: Timestamp,
    grace: i64,
    successor: &RefreshToken,
) -> StoreResult<RotateOutcome> {
    // The first use wins the conditional update; everyone else reads the row it left
    // (under the write lock) and is judged by the grace period.
    let rotated: Option<RefreshTokenRow> = tx
        .fetch_optional(MARK_ROTATED, &[old.0.as_slice().into(), now.into()])
        .await?;
    let outcome = if let Some(row) = rotated {
        insert(&mut *tx, successor).await?;
        RotateOutcome::Rotated(row.try_into()?)
    } else {
        match select(&mut *tx, old).await? {
            None => RotateOutcome::Invalid,
            Some(t) if t.revoked_at.is_some() || t.family_expires_at <= now => {
                RotateOutcome::Invalid
            }
            Some(t) => match t.rotated_at {
                Some(at) if now - at < grace => {
                    // Within the grace period the successor is the one already stored
                    // (it is derived from the old token), unless it has been used
                    // itself: then this is a replay.
                    match select(&mut *tx, &successor.hash).await? {
                        None => {
                            insert(&mut *tx, successor).await?;
                            RotateOutcome::Rotated(t)
                        }
                        Some(s) if s.rotated_at.is_some() => {
                            revoke_family_in(&mut *tx, &t.family_id, now).await?;
                            RotateOutcome::ReuseDetected(t)
                        }
                        Some(s) if s.revoked_at.is_some() => RotateOutcome::Invalid,
                        Some(_) => RotateOutcome::Rotated(t),
                    }
                }
                Some(_) => {
                    revoke_family_in(&mut *tx, &t.family_id, now).await?;
                    RotateOutcome::ReuseDetected(t)
                }
                // Not rotated, so it failed the update by expiring.
                None => RotateOutcome::Invalid,
            },
        }
    };
    Ok(outcome)
}

async fn revoke_family_in(
    conn: &mut impl Exec,
    family_id: &str,
    at: Timestamp,
) -> StoreResult<u64> {
    conn.execute(REVOKE_FAMILY, &[family_id.into(), at.into()])
        .await
}

pub(crate) async fn revoke_family(
    db: &impl Backend,
    family_id: &str,
    at: Timestamp,
) -> StoreResult<u64> {
    revoke_family_in(&mut *db.writer().await?, family_id, at).await
}

pub(crate) async fn revoke_of_user_and_client(
    db: &impl Backend,
    user_id: &str,
    client_id: &str,
    at: Timestamp,
) -> StoreResult<Vec<String>> {
    let rows: Vec<FamilyRow> = db
        .writer()
        .await?
        .fetch_all(
            REVOKE_OF_USER_AND_CLIENT,
            &[user_id.into(), client_id.into(), at.into()],
        )
        .await?;
    Ok(families(rows))
}

pub(crate) async fn revoke_of_user(
    db: &impl Backend,
    user_id: &str,
    at: Timestamp,
) -> StoreResult<Vec<String>> {
    let rows: Vec<FamilyRow> = db
        .writer()
        .await?
        .fetch_all(REVOKE_OF_USER, &[user_id.into(), at.into()])
        .await?;
    Ok(families(rows))
}

/// Inside the transaction that deletes the resource.
pub(crate) async fn revoke_of_resource(
    conn: &mut impl Exec,
    resource_id: &str,
    at: Timestamp,
) -> StoreResult<Vec<String>> {
    let rows: Vec<FamilyRow> = conn
        .fetch_all(REVOKE_OF_RESOURCE, &[resource_id.into(), at.into()])
        .await?;
    Ok(families(rows))
}
