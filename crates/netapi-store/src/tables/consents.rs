//! `consents`.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::codec;
use crate::tables::{model, models};
use netapi_core::StoreError;
use netapi_core::model::Consent;
use netapi_core::scope::Scopes;
use netapi_core::store::StoreResult;

macro_rules! columns {
    () => {
        "user_id, client_id, scopes, granted_at, resource_scopes"
    };
}

const UPSERT: &str = concat!(
    "INSERT INTO consents (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, client_id) \
     DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at, \
     resource_scopes = excluded.resource_scopes"
);
const SELECT: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM consents WHERE user_id = $1 AND client_id = $2"
);
const LIST_OF_USER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM consents WHERE user_id = $1 ORDER BY client_id"
);
const DELETE: &str = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2";

#[derive(FromRow)]
pub(crate) struct ConsentRow {
    user_id: String,
    client_id: String,
    scopes: i64,
    granted_at: i64,
    resource_scopes: String,
}

impl TryFrom<ConsentRow> for Consent {
    type Error = StoreError;

    fn try_from(row: ConsentRow) -> StoreResult<Self> {
        Ok(Self {
            user_id: row.user_id,
            client_id: row.client_id,
            scopes: Scopes::from_bits(row.scopes),
            granted_at: row.granted_at,
            resource_scopes: codec::split_pairs(&row.resource_scopes),
        })
    }
}

pub(crate) async fn upsert(db: &impl Backend, consent: &Consent) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            UPSERT,
            &[
                (&consent.user_id).into(),
                (&consent.client_id).into(),
                consent.scopes.bits().into(),
                consent.granted_at.into(),
                codec::join_pairs(&consent.resource_scopes).into(),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn get(
    db: &impl Backend,
    user_id: &str,
    client_id: &str,
) -> StoreResult<Option<Consent>> {
    let row: Option<ConsentRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT, &[user_id.into(), client_id.into()])
        .await?;
    model(row)
}

pub(crate) async fn list(db: &impl Backend, user_id: &str) -> StoreResult<Vec<Consent>> {
    let rows: Vec<ConsentRow> = db
        .reader()
        .await?
        .fetch_all(LIST_OF_USER, &[user_id.into()])
        .await?;
    models(rows)
}

pub(crate) async fn delete(db: &impl Backend, user_id: &str, client_id: &str) -> StoreResult<bool> {
    let deleted = db
        .writer()
        .await?
        .execute(DELETE, &[user_id.into(), client_id.into()])
        .await?;
    Ok(deleted == 1)
}
