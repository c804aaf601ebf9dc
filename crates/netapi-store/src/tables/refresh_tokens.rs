//! `refresh_tokens`.

use sqlx::FromRow;

use crate::backend::{Arg, Backend, Exec};
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

/// How many `columns!()` there are.
const COLUMNS: usize = 17;
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
    conn.execute(INSERT, &insert_args(token)).await?;
    Ok(())
}

/// The arguments of [`INSERT`], in its column order.
fn insert_args(token: &RefreshToken) -> [Arg<'_>; COLUMNS] {
    [
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
    ]
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
        if batch.is_empty() {
            // The batch of a committer that went away (its caller hung up) holds this
            // rotation and is still running: wait for its answer rather than spin on the
            // turn (or, if that batch was lost, retry alone).
            drop(turn);
            return match answer.await {
                Ok(outcome) => outcome,
                Err(_) => rotate_alone(db, old, now, grace, successor).await,
            };
        }
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

/// The batch in one transaction, in as few statements as its size allows: the first claim of
/// each token is marked in one `UPDATE` per clock reading, and the successors of those that
/// won are inserted together. What did not win at once (a second claim of the same token,
/// one already rotated, revoked or expired) then goes through [`rotate_in`] in queue order,
/// as a lone rotation would. Per-statement costs (a round trip on PostgreSQL, the driver's
/// hand-off on SQLite) were most of a rotation's share of a batch.
async fn rotate_together(
    db: &impl Backend,
    batch: &[PendingRotation],
) -> StoreResult<Vec<RotateOutcome>> {
    let mut tx = db.begin_write().await?;
    let mut outcomes: Vec<Option<RotateOutcome>> = vec![None; batch.len()];
    // The first claim of each token, by hash, and the same grouped by clock reading.
    let mut first_claim = std::collections::HashMap::with_capacity(batch.len());
    let mut first_claims: std::collections::BTreeMap<Timestamp, Vec<usize>> = Default::default();
    for (i, pending) in batch.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(slot) = first_claim.entry(pending.old) {
            slot.insert(i);
            first_claims.entry(pending.now).or_default().push(i);
        }
    }
    let mut won = Vec::with_capacity(batch.len());
    for (now, claims) in first_claims {
        for part in in_statement_sizes(&claims, MAX_BATCH) {
            let hashes: Vec<&SecretHash> = part.iter().map(|&i| &batch[i].old).collect();
            for row in mark_rotated_many(&mut *tx, now, &hashes).await? {
                let token = RefreshToken::try_from(row)?;
                if let Some(&i) = first_claim.get(&token.hash) {
                    won.push(i);
                    outcomes[i] = Some(RotateOutcome::Rotated(token));
                }
            }
        }
    }
    won.sort_unstable();
    for part in in_statement_sizes(&won, INSERTED_TOGETHER) {
        let successors: Vec<&RefreshToken> = part.iter().map(|&i| &batch[i].successor).collect();
        insert_many(&mut *tx, &successors).await?;
    }
    for (p, outcome) in batch.iter().zip(outcomes.iter_mut()) {
        if outcome.is_none() {
            *outcome = Some(rotate_in(&mut *tx, &p.old, p.now, p.grace, &p.successor).await?);
        }
    }
    tx.commit().await.map_err(map_err)?;
    Ok(outcomes.into_iter().flatten().collect())
}

/// At most this many successors in one `INSERT` (17 arguments each): the driver looks each
/// `$N` argument's slot up by name, which SQLite answers by a scan of the statement's names,
/// so binding grows with the square of the argument count (a profile of parts of 64 showed
/// it); 272 arguments keep it small.
const INSERTED_TOGETHER: usize = 16;

/// `items` cut into parts of `max`, then powers of two (`max` itself one): a few statement
/// shapes, each prepared once per connection, rather than one per batch size (which would
/// crowd the statement cache).
fn in_statement_sizes<T>(items: &[T], max: usize) -> Vec<&[T]> {
    debug_assert!(max.is_power_of_two());
    let mut parts = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let size = 1usize << rest.len().min(max).ilog2();
        let (part, tail) = rest.split_at(size);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// [`MARK_ROTATED`] for several tokens at one clock reading: answers the rows it marked.
async fn mark_rotated_many(
    tx: &mut impl Exec,
    now: Timestamp,
    hashes: &[&SecretHash],
) -> StoreResult<Vec<RefreshTokenRow>> {
    let mut sql = String::from(
        "UPDATE refresh_tokens SET rotated_at = $1 WHERE rotated_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $1 AND hash IN (",
    );
    let mut args: Vec<Arg<'_>> = Vec::with_capacity(hashes.len() + 1);
    args.push(now.into());
    for (n, hash) in hashes.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", n + 2));
        args.push(hash.0.as_slice().into());
    }
    sql.push_str(concat!(") RETURNING ", columns!()));
    tx.fetch_all(&sql, &args).await
}

/// [`INSERT`] of several tokens in one statement.
async fn insert_many(tx: &mut impl Exec, tokens: &[&RefreshToken]) -> StoreResult<()> {
    let mut sql = String::from(concat!(
        "INSERT INTO refresh_tokens (",
        columns!(),
        ") VALUES "
    ));
    let mut args: Vec<Arg<'_>> = Vec::with_capacity(tokens.len() * COLUMNS);
    for (row, token) in tokens.iter().enumerate() {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..COLUMNS {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", row * COLUMNS + column + 1));
        }
        sql.push(')');
        args.extend(insert_args(token));
    }
    tx.execute(&sql, &args).await?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::in_statement_sizes;

    #[test]
    fn batches_are_cut_into_few_statement_shapes() {
        let sizes = |count: usize, max: usize| -> Vec<usize> {
            let items: Vec<usize> = (0..count).collect();
            let parts = in_statement_sizes(&items, max);
            let flat: Vec<usize> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(flat, items, "every item once, in order");
            parts.iter().map(|p| p.len()).collect()
        };
        assert_eq!(sizes(0, 64), Vec::<usize>::new());
        assert_eq!(sizes(1, 64), [1]);
        assert_eq!(sizes(37, 64), [32, 4, 1]);
        assert_eq!(sizes(64, 64), [64]);
        assert_eq!(sizes(37, 16), [16, 16, 4, 1]);
    }
}
