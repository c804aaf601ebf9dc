//! `users`.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::{api_keys, email_tokens, invitations, model, models, webhooks};
use crate::{codec, map_err, retry_contention};
use netapi_core::model::{ApiKey, AuditEvent, OutboxEvent, User};
use netapi_core::store::{StoreResult, UserChanges};
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "id, email, name, role, password_hash, created_at, updated_at, email_verified, disabled_at"
    };
}
pub(crate) use columns;

const INSERT: &str = concat!(
    "INSERT INTO users (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
const SELECT_BY_ID: &str = concat!("SELECT ", columns!(), " FROM users WHERE id = $1");
const SELECT_BY_EMAIL: &str = concat!("SELECT ", columns!(), " FROM users WHERE email = $1");
const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM users WHERE id > $1 ORDER BY id LIMIT $2"
);
/// `$2` is a `LIKE` pattern whose wildcards in the searched text are escaped with `\`.
const SEARCH: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM users WHERE id > $1 AND email LIKE $2 ESCAPE '\\' ORDER BY id LIMIT $3"
);
/// True when the row `$1` is not an active administrator, or another one remains.
macro_rules! keeps_an_admin {
    () => {
        "role <> 'admin' OR disabled_at IS NOT NULL OR EXISTS (SELECT 1 FROM users other \
         WHERE other.role = 'admin' AND other.disabled_at IS NULL AND other.id <> $1)"
    };
}

/// A column left out is kept as it is at the moment of the write (PostgreSQL re-reads a row
/// a concurrent transaction changed), never as it was read. A new address is unverified.
/// `$7` says whether `disabled_at` is given, as `$8`. The last condition keeps an active
/// administrator: the row of one is not demoted or disabled unless another remains.
const UPDATE: &str = concat!(
    "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email), \
     password_hash = COALESCE($4, password_hash), role = COALESCE($5, role), \
     email_verified = CASE WHEN $3 IS NULL OR $3 = email THEN email_verified ELSE FALSE END, \
     disabled_at = CASE WHEN $7 THEN $8 ELSE disabled_at END, \
     updated_at = $6 WHERE id = $1 AND (",
    keeps_an_admin!(),
    " OR (COALESCE($5, role) = 'admin' AND CASE WHEN $7 THEN $8 ELSE disabled_at END IS NULL)) \
     RETURNING ",
    columns!()
);
/// Locks the rows of active administrators (PostgreSQL), so that two transactions that each
/// remove one see each other's change; SQLite's write transactions are serial anyway.
const LOCK_ADMINS: &str =
    "UPDATE users SET role = role WHERE role = 'admin' AND disabled_at IS NULL";
const EXISTS: &str = "SELECT id FROM users WHERE id = $1";
const DELETE: &str = concat!(
    "DELETE FROM users WHERE id = $1 AND (",
    keeps_an_admin!(),
    ")"
);

#[derive(FromRow)]
pub(crate) struct UserRow {
    id: String,
    email: String,
    name: String,
    role: String,
    password_hash: String,
    created_at: i64,
    updated_at: i64,
    email_verified: bool,
    disabled_at: Option<i64>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            email: row.email,
            name: row.name,
            role: codec::role(&row.role)?,
            password_hash: row.password_hash,
            email_verified: row.email_verified,
            created_at: row.created_at,
            updated_at: row.updated_at,
            disabled_at: row.disabled_at,
        })
    }
}

/// The user, their first key if any and the event (with its webhook deliveries), in one
/// transaction.
pub(crate) async fn create(
    db: &impl Backend,
    user: &User,
    first_key: Option<&ApiKey>,
    event: &AuditEvent,
    outbox: Option<&OutboxEvent>,
    invitation_id: Option<&str>,
) -> StoreResult<bool> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        if let Some(id) = invitation_id
            && !invitations::mark_used(&mut *tx, id, &user.id, user.created_at).await?
        {
            tx.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        tx.execute(
            INSERT,
            &[
                (&user.id).into(),
                (&user.email).into(),
                (&user.name).into(),
                user.role.as_str().into(),
                (&user.password_hash).into(),
                user.created_at.into(),
                user.updated_at.into(),
                user.email_verified.into(),
                user.disabled_at.into(),
            ],
        )
        .await?;
        if let Some(key) = first_key {
            api_keys::insert(&mut *tx, key).await?;
        }
        webhooks::insert_event(&mut *tx, event, outbox).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    })
    .await
}

pub(crate) async fn get(db: &impl Backend, id: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_ID, &[id.into()])
        .await?;
    model(row)
}

pub(crate) async fn get_by_email(db: &impl Backend, email: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_EMAIL, &[email.into()])
        .await?;
    model(row)
}

pub(crate) async fn list(db: &impl Backend, after: Option<&str>, n: u32) -> StoreResult<Vec<User>> {
    let rows: Vec<UserRow> = db
        .reader()
        .await?
        .fetch_all(LIST, &[after.unwrap_or("").into(), i64::from(n).into()])
        .await?;
    models(rows)
}

/// Users whose email contains `email_part` literally: its `%`, `_` and `\` are escaped.
pub(crate) async fn search(
    db: &impl Backend,
    email_part: &str,
    after: Option<&str>,
    n: u32,
) -> StoreResult<Vec<User>> {
    let mut pattern = String::with_capacity(email_part.len() + 2);
    pattern.push('%');
    for c in email_part.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    let rows: Vec<UserRow> = db
        .reader()
        .await?
        .fetch_all(
            SEARCH,
            &[
                after.unwrap_or("").into(),
                pattern.into(),
                i64::from(n).into(),
            ],
        )
        .await?;
    models(rows)
}

pub(crate) async fn update(
    db: &impl Backend,
    id: &str,
    changes: &UserChanges,
    at: Timestamp,
) -> StoreResult<Option<User>> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        if changes.role.is_some() || changes.disabled_at.is_some() {
            tx.execute(LOCK_ADMINS, &[]).await?;
        }
        let row: Option<UserRow> = tx
            .fetch_optional(
                UPDATE,
                &[
                    id.into(),
                    changes.name.as_deref().into(),
                    changes.email.as_deref().into(),
                    changes.password_hash.as_deref().into(),
                    changes.role.map(|r| r.as_str()).into(),
                    at.into(),
                    changes.disabled_at.is_some().into(),
                    changes.disabled_at.flatten().into(),
                ],
            )
            .await?;
        let found = row.is_some() || exists(&mut *tx, id).await?;
        // A new password or address ends the reset links mailed before it, with the change.
        if row.is_some() && (changes.password_hash.is_some() || changes.email.is_some()) {
            tx.execute(email_tokens::USE_OTHER_RESETS, &[id.into(), at.into()])
                .await?;
        }
        tx.commit().await.map_err(map_err)?;
        if !found {
            return Ok(None);
        }
        row.map_or(Err(StoreError::Conflict("last_admin")), |row| {
            User::try_from(row).map(Some)
        })
    })
    .await
}

async fn exists(tx: &mut impl Exec, id: &str) -> StoreResult<bool> {
    let row: Option<(String,)> = tx.fetch_optional(EXISTS, &[id.into()]).await?;
    Ok(row.is_some())
}

/// Deletes a user (its rows in other tables go with it, by foreign key) unless it is the last
/// active administrator.
pub(crate) async fn delete(db: &impl Backend, id: &str) -> StoreResult<bool> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        tx.execute(LOCK_ADMINS, &[]).await?;
        let deleted = tx.execute(DELETE, &[id.into()]).await?;
        let found = deleted == 1 || exists(&mut *tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        match (deleted, found) {
            (1, _) => Ok(true),
            (_, true) => Err(StoreError::Conflict("last_admin")),
            _ => Ok(false),
        }
    })
    .await
}
