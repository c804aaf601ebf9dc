//! `audit_events`.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::models;
use netapi_core::StoreError;
use netapi_core::model::AuditEvent;
use netapi_core::store::{AuditFilter, StoreResult};

macro_rules! columns {
    () => {
        "id, user_id, kind, ip, detail, created_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO audit_events (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6)"
);
/// Newest first; ids sort by time.
const LIST_OF_USER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM audit_events WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
);
const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM audit_events WHERE id < $1 ORDER BY id DESC LIMIT $2"
);

/// Events created before the cutoff.
pub(crate) const DELETE_BEFORE: &str = delete_batch!("audit_events", "id", "created_at < $1");

/// Each condition applies when its argument is not null; `$1` is the cursor.
const SEARCH: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM audit_events WHERE id < $1 AND ($2 IS NULL OR user_id = $2) \
     AND ($3 IS NULL OR kind = $3) AND ($4 IS NULL OR created_at >= $4) \
     AND ($5 IS NULL OR created_at < $5) ORDER BY id DESC LIMIT $6"
);

#[derive(FromRow)]
pub(crate) struct AuditEventRow {
    id: String,
    user_id: Option<String>,
    kind: String,
    ip: Option<String>,
    detail: String,
    created_at: i64,
}

impl TryFrom<AuditEventRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditEventRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            user_id: row.user_id,
            kind: row.kind,
            ip: row.ip,
            detail: row.detail,
            created_at: row.created_at,
        })
    }
}

pub(crate) async fn insert(conn: &mut impl Exec, event: &AuditEvent) -> StoreResult<()> {
    conn.execute(
        INSERT,
        &[
            (&event.id).into(),
            (&event.user_id).into(),
            (&event.kind).into(),
            (&event.ip).into(),
            (&event.detail).into(),
            event.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Events before the id `before` (all when `None`), of one user or of everyone.
pub(crate) async fn list(
    db: &impl Backend,
    user_id: Option<&str>,
    before: Option<&str>,
    n: u32,
) -> StoreResult<Vec<AuditEvent>> {
    // "~" sorts after every id.
    let before = before.unwrap_or("~");
    let mut reader = db.reader().await?;
    let rows: Vec<AuditEventRow> = match user_id {
        Some(user_id) => {
            reader
                .fetch_all(
                    LIST_OF_USER,
                    &[user_id.into(), before.into(), i64::from(n).into()],
                )
                .await?
        }
        None => {
            reader
                .fetch_all(LIST, &[before.into(), i64::from(n).into()])
                .await?
        }
    };
    models(rows)
}

/// Events matching `filter`, before the id `before` (all when `None`).
pub(crate) async fn search(
    db: &impl Backend,
    filter: &AuditFilter,
    before: Option<&str>,
    n: u32,
) -> StoreResult<Vec<AuditEvent>> {
    let rows: Vec<AuditEventRow> = db
        .reader()
        .await?
        .fetch_all(
            SEARCH,
            &[
                before.unwrap_or("~").into(),
                filter.user_id.as_deref().into(),
                filter.kind.as_deref().into(),
                filter.from.into(),
                filter.to.into(),
                i64::from(n).into(),
            ],
        )
        .await?;
    models(rows)
}
