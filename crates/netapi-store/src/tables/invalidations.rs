//! `invalidations`: what every instance must drop from its caches, in order (`seq`).

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::codec;
use netapi_core::Timestamp;
use netapi_core::store::{Invalidation, StoreResult};

const PUBLISH: &str = "INSERT INTO invalidations (kind, subject, expires_at, created_at) \
     VALUES ($1, $2, $3, $4) RETURNING seq";
const SINCE: &str = "SELECT seq, kind, subject, expires_at FROM invalidations WHERE seq > $1 \
     ORDER BY seq LIMIT 10000";
const LATEST: &str = "SELECT COALESCE(MAX(seq), 0) FROM invalidations";
const ACTIVE_DENYLIST: &str = "SELECT seq, kind, subject, expires_at FROM invalidations \
     WHERE kind IN ('access_token', 'family') AND expires_at > $1";
/// Denylist entries (access tokens, families) once they expire.
pub(crate) const DELETE_EXPIRED: &str = delete_batch!(
    "invalidations",
    "seq",
    "expires_at IS NOT NULL AND expires_at < $1"
);
/// Invalidations without an expiry, created before the cutoff (core keeps them an hour: long
/// enough for any live process to have polled them).
pub(crate) const DELETE_OLD: &str = delete_batch!(
    "invalidations",
    "seq",
    "expires_at IS NULL AND created_at < $1"
);

#[derive(FromRow)]
struct InvalidationRow {
    seq: i64,
    kind: String,
    subject: String,
    expires_at: Option<i64>,
}

/// `(seq, invalidation)` of each row; an unreadable row is skipped with a warning.
fn decode(rows: Vec<InvalidationRow>) -> Vec<(i64, Invalidation)> {
    rows.into_iter()
        .filter_map(|row| {
            let decoded = codec::decode_invalidation(&row.kind, row.subject, row.expires_at);
            if decoded.is_none() {
                tracing::warn!(
                    seq = row.seq,
                    kind = row.kind,
                    "unreadable invalidation skipped"
                );
            }
            Some((row.seq, decoded?))
        })
        .collect()
}

pub(crate) async fn publish(
    db: &impl Backend,
    invalidation: &Invalidation,
    at: Timestamp,
) -> StoreResult<i64> {
    let (kind, subject, expires_at) = codec::encode_invalidation(invalidation);
    let (seq,) = db
        .writer()
        .await?
        .fetch_one(
            PUBLISH,
            &[kind.into(), subject.into(), expires_at.into(), at.into()],
        )
        .await?;
    Ok(seq)
}

pub(crate) async fn since(db: &impl Backend, seq: i64) -> StoreResult<Vec<(i64, Invalidation)>> {
    let rows = db.reader().await?.fetch_all(SINCE, &[seq.into()]).await?;
    Ok(decode(rows))
}

pub(crate) async fn latest(db: &impl Backend) -> StoreResult<i64> {
    let (seq,) = db.reader().await?.fetch_one(LATEST, &[]).await?;
    Ok(seq)
}

pub(crate) async fn active_denylist(
    db: &impl Backend,
    now: Timestamp,
) -> StoreResult<Vec<Invalidation>> {
    let rows = db
        .reader()
        .await?
        .fetch_all(ACTIVE_DENYLIST, &[now.into()])
        .await?;
    Ok(decode(rows).into_iter().map(|(_, i)| i).collect())
}
