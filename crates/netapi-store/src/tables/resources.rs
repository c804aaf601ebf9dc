//! `resources` (a deleted one stays as a tombstone, `deleted_at`) and `resource_grants`.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::{
    api_keys, authorization_codes, device_authorizations, model, models, refresh_tokens,
};
use crate::{codec, map_err, retry_contention};
use netapi_core::model::{Resource, ResourceGrant};
use netapi_core::store::{ResourceChanges, ResourceDeletion, StoreResult};
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "id, identifier, name, scopes, self_service_scopes, allow_api_keys, \
         access_token_ttl, created_at, updated_at, deleted_at"
    };
}

macro_rules! grant_columns {
    () => {
        "user_id, resource_id, scopes, updated_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO resources (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
const SELECT_BY_ID: &str = concat!("SELECT ", columns!(), " FROM resources WHERE id = $1");
const SELECT_BY_IDENTIFIER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM resources WHERE identifier = $1"
);
const LIST_LIVE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM resources WHERE id > $1 AND deleted_at IS NULL ORDER BY id LIMIT $2"
);
/// Only the given columns (`$6` says whether `access_token_ttl` is given, as `$7` may be
/// NULL); never a deleted resource, nor one whose self-service scopes are no longer `$9`
/// when that is given.
const UPDATE: &str = concat!(
    "UPDATE resources SET name = COALESCE($2, name), scopes = COALESCE($3, scopes), \
     self_service_scopes = COALESCE($4, self_service_scopes), \
     allow_api_keys = COALESCE($5, allow_api_keys), \
     access_token_ttl = CASE WHEN $6 THEN $7 ELSE access_token_ttl END, \
     updated_at = $8 WHERE id = $1 AND deleted_at IS NULL \
     AND ($9 IS NULL OR self_service_scopes = $9) RETURNING ",
    columns!()
);
const MARK_DELETED: &str = "UPDATE resources SET deleted_at = $2, updated_at = $2 \
     WHERE id = $1 AND deleted_at IS NULL";

const UPSERT_GRANT: &str = concat!(
    "INSERT INTO resource_grants (",
    grant_columns!(),
    ") VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, resource_id) \
     DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at"
);
const DELETE_GRANT: &str = "DELETE FROM resource_grants WHERE user_id = $1 AND resource_id = $2";
const DELETE_GRANTS_OF_RESOURCE: &str = "DELETE FROM resource_grants WHERE resource_id = $1";
const SELECT_GRANT: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM resource_grants WHERE user_id = $1 AND resource_id = $2"
);
const LIST_GRANTS_OF_USER: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM resource_grants WHERE user_id = $1 ORDER BY resource_id"
);

#[derive(FromRow)]
pub(crate) struct ResourceRow {
    id: String,
    identifier: String,
    name: String,
    scopes: String,
    self_service_scopes: String,
    allow_api_keys: bool,
    access_token_ttl: Option<i64>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

impl TryFrom<ResourceRow> for Resource {
    type Error = StoreError;

    fn try_from(row: ResourceRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            identifier: row.identifier,
            name: row.name,
            scopes: codec::split_resource_scopes(&row.scopes),
            self_service_scopes: codec::split_names(&row.self_service_scopes),
            allow_api_keys: row.allow_api_keys,
            access_token_ttl: codec::rate_limit(row.access_token_ttl),
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct ResourceGrantRow {
    user_id: String,
    resource_id: String,
    scopes: String,
    updated_at: i64,
}

impl TryFrom<ResourceGrantRow> for ResourceGrant {
    type Error = StoreError;

    fn try_from(row: ResourceGrantRow) -> StoreResult<Self> {
        Ok(Self {
            user_id: row.user_id,
            resource_id: row.resource_id,
            scopes: codec::split_names(&row.scopes),
            updated_at: row.updated_at,
        })
    }
}

pub(crate) async fn insert(db: &impl Backend, resource: &Resource) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            INSERT,
            &[
                (&resource.id).into(),
                (&resource.identifier).into(),
                (&resource.name).into(),
                codec::join_resource_scopes(&resource.scopes).into(),
                codec::join_names(&resource.self_service_scopes).into(),
                resource.allow_api_keys.into(),
                resource.access_token_ttl.map(i64::from).into(),
                resource.created_at.into(),
                resource.updated_at.into(),
                resource.deleted_at.into(),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn get(db: &impl Backend, id: &str) -> StoreResult<Option<Resource>> {
    let row: Option<ResourceRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_ID, &[id.into()])
        .await?;
    model(row)
}

pub(crate) async fn get_by_identifier(
    db: &impl Backend,
    identifier: &str,
) -> StoreResult<Option<Resource>> {
    let row: Option<ResourceRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_IDENTIFIER, &[identifier.into()])
        .await?;
    model(row)
}

pub(crate) async fn list_live(
    db: &impl Backend,
    after: Option<&str>,
    n: u32,
) -> StoreResult<Vec<Resource>> {
    let rows: Vec<ResourceRow> = db
        .reader()
        .await?
        .fetch_all(
            LIST_LIVE,
            &[after.unwrap_or("").into(), i64::from(n).into()],
        )
        .await?;
    models(rows)
}

pub(crate) async fn update(
    db: &impl Backend,
    id: &str,
    changes: &ResourceChanges,
    at: Timestamp,
) -> StoreResult<Option<Resource>> {
    let row: Option<ResourceRow> = db
        .writer()
        .await?
        .fetch_optional(
            UPDATE,
            &[
                id.into(),
                changes.name.as_deref().into(),
                changes
                    .scopes
                    .as_deref()
                    .map(codec::join_resource_scopes)
                    .into(),
                changes
                    .self_service_scopes
                    .as_deref()
                    .map(codec::join_names)
                    .into(),
                changes.allow_api_keys.into(),
                changes.access_token_ttl.is_some().into(),
                changes.access_token_ttl.flatten().map(i64::from).into(),
                at.into(),
                changes
                    .if_self_service_scopes
                    .as_deref()
                    .map(codec::join_names)
                    .into(),
            ],
        )
        .await?;
    model(row)
}

/// Marks the resource deleted and, in the same transaction, revokes its keys and refresh
/// tokens and deletes its grants and codes.
pub(crate) async fn delete(
    db: &impl Backend,
    id: &str,
    at: Timestamp,
) -> StoreResult<Option<ResourceDeletion>> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        if tx.execute(MARK_DELETED, &[id.into(), at.into()]).await? != 1 {
            return Ok(None);
        }
        let keys = api_keys::revoke_of_resource(&mut *tx, id, at).await?;
        let families = refresh_tokens::revoke_of_resource(&mut *tx, id, at).await?;
        for sql in [
            DELETE_GRANTS_OF_RESOURCE,
            authorization_codes::DELETE_OF_RESOURCE,
            device_authorizations::DELETE_OF_RESOURCE,
        ] {
            tx.execute(sql, &[id.into()]).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(ResourceDeletion { keys, families }))
    })
    .await
}

/// Sets the user's scopes on the resource; no scopes removes the grant.
pub(crate) async fn set_grant(db: &impl Backend, grant: &ResourceGrant) -> StoreResult<()> {
    let mut writer = db.writer().await?;
    if grant.scopes.is_empty() {
        writer
            .execute(
                DELETE_GRANT,
                &[(&grant.user_id).into(), (&grant.resource_id).into()],
            )
            .await?;
    } else {
        writer
            .execute(
                UPSERT_GRANT,
                &[
                    (&grant.user_id).into(),
                    (&grant.resource_id).into(),
                    codec::join_names(&grant.scopes).into(),
                    grant.updated_at.into(),
                ],
            )
            .await?;
    }
    Ok(())
}

pub(crate) async fn get_grant(
    db: &impl Backend,
    user_id: &str,
    resource_id: &str,
) -> StoreResult<Option<ResourceGrant>> {
    let row: Option<ResourceGrantRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_GRANT, &[user_id.into(), resource_id.into()])
        .await?;
    model(row)
}

pub(crate) async fn list_grants(
    db: &impl Backend,
    user_id: &str,
) -> StoreResult<Vec<ResourceGrant>> {
    let rows: Vec<ResourceGrantRow> = db
        .reader()
        .await?
        .fetch_all(LIST_GRANTS_OF_USER, &[user_id.into()])
        .await?;
    models(rows)
}
