//! `oauth_clients`.

use sqlx::FromRow;

use crate::backend::{Arg, Backend, Exec};
use crate::codec;
use crate::tables::{model, models};
use netapi_core::model::{ClientLogout, OAuthClient, SigningAlgorithm};
use netapi_core::scope::Scopes;
use netapi_core::secret::SecretHash;
use netapi_core::store::{ClientChanges, StoreResult};
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "id, owner_id, name, redirect_uris, grant_types, scopes, auth_method, secret_hash, \
         created_at, updated_at, rate_limit, trusted, resources, resource_scopes, \
         id_token_signed_response_alg, post_logout_redirect_uris, backchannel_logout_uri, \
         backchannel_logout_session_required, token_exchange_resources, jwks, jwks_uri, \
         require_par, dpop_bound_access_tokens"
    };
}

pub(crate) const INSERT: &str = concat!(
    "INSERT INTO oauth_clients (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23)"
);
pub(crate) const SELECT_BY_ID: &str =
    concat!("SELECT ", columns!(), " FROM oauth_clients WHERE id = $1");
/// Takes the client's row lock (PostgreSQL) before it is read in a write transaction.
pub(crate) const LOCK: &str = "UPDATE oauth_clients SET updated_at = updated_at WHERE id = $1";
const LIST_OF_OWNER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM oauth_clients WHERE owner_id = $1 AND id > $2 ORDER BY id LIMIT $3"
);
const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM oauth_clients WHERE id > $1 ORDER BY id LIMIT $2"
);
/// As for users: only the given columns (`$6` says whether `rate_limit` is given, as `$7`
/// may be NULL); never the secret.
pub(crate) const UPDATE: &str = concat!(
    "UPDATE oauth_clients SET name = COALESCE($2, name), \
     redirect_uris = COALESCE($3, redirect_uris), \
     grant_types = COALESCE($4, grant_types), scopes = COALESCE($5, scopes), \
     rate_limit = CASE WHEN $6 THEN $7 ELSE rate_limit END, updated_at = $8, \
     resources = COALESCE($9, resources), \
     resource_scopes = COALESCE($10, resource_scopes), \
     id_token_signed_response_alg = COALESCE($11, id_token_signed_response_alg), \
     post_logout_redirect_uris = CASE WHEN $12 THEN $13 ELSE post_logout_redirect_uris END, \
     backchannel_logout_uri = CASE WHEN $12 THEN $14 ELSE backchannel_logout_uri END, \
     backchannel_logout_session_required = \
     CASE WHEN $12 THEN $15 ELSE backchannel_logout_session_required END, \
     token_exchange_resources = COALESCE($16, token_exchange_resources), \
     jwks = CASE WHEN $17 THEN $18 ELSE jwks END, \
     jwks_uri = CASE WHEN $17 THEN $19 ELSE jwks_uri END, \
     require_par = COALESCE($20, require_par), \
     dpop_bound_access_tokens = COALESCE($21, dpop_bound_access_tokens) \
     WHERE id = $1 RETURNING ",
    columns!()
);
const SET_TRUSTED: &str = "UPDATE oauth_clients SET trusted = $2 WHERE id = $1";
const SET_SECRET: &str = "UPDATE oauth_clients SET secret_hash = $2, updated_at = $3 WHERE id = $1";
const DELETE: &str = "DELETE FROM oauth_clients WHERE id = $1";

#[derive(FromRow)]
pub(crate) struct OAuthClientRow {
    id: String,
    owner_id: Option<String>,
    name: String,
    redirect_uris: String,
    grant_types: String,
    scopes: i64,
    auth_method: String,
    secret_hash: Option<Vec<u8>>,
    created_at: i64,
    updated_at: i64,
    rate_limit: Option<i64>,
    trusted: bool,
    resources: String,
    resource_scopes: String,
    id_token_signed_response_alg: Option<String>,
    token_exchange_resources: String,
    post_logout_redirect_uris: String,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    require_par: bool,
    dpop_bound_access_tokens: bool,
}

impl TryFrom<OAuthClientRow> for OAuthClient {
    type Error = StoreError;

    fn try_from(row: OAuthClientRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            owner_id: row.owner_id,
            name: row.name,
            redirect_uris: codec::split_uris(&row.redirect_uris),
            grant_types: codec::split_grants(&row.grant_types)?,
            scopes: Scopes::from_bits(row.scopes),
            auth_method: codec::auth_method(&row.auth_method)?,
            secret_hash: row.secret_hash.as_deref().map(codec::hash).transpose()?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            rate_limit: codec::rate_limit(row.rate_limit),
            trusted: row.trusted,
            resources: codec::split_names(&row.resources),
            resource_scopes: codec::split_names(&row.resource_scopes),
            id_token_signed_response_alg: row
                .id_token_signed_response_alg
                .as_deref()
                .map(codec::alg)
                .transpose()?,
            token_exchange_resources: codec::split_names(&row.token_exchange_resources),
            logout: ClientLogout {
                post_logout_redirect_uris: codec::split_uris(&row.post_logout_redirect_uris),
                backchannel_logout_uri: row.backchannel_logout_uri,
                backchannel_logout_session_required: row.backchannel_logout_session_required,
            },
            jwks: row.jwks,
            jwks_uri: row.jwks_uri,
            require_par: row.require_par,
            dpop_bound_access_tokens: row.dpop_bound_access_tokens,
        })
    }
}

/// The arguments of [`INSERT`].
pub(crate) fn insert_args(client: &OAuthClient) -> Vec<Arg<'_>> {
    vec![
        (&client.id).into(),
        client.owner_id.as_deref().into(),
        (&client.name).into(),
        codec::join_uris(&client.redirect_uris).into(),
        codec::join_grants(&client.grant_types).into(),
        client.scopes.bits().into(),
        client.auth_method.as_str().into(),
        client.secret_hash.as_ref().map(|h| h.0.as_slice()).into(),
        client.created_at.into(),
        client.updated_at.into(),
        client.rate_limit.map(i64::from).into(),
        client.trusted.into(),
        codec::join_names(&client.resources).into(),
        codec::join_names(&client.resource_scopes).into(),
        client
            .id_token_signed_response_alg
            .map(SigningAlgorithm::as_str)
            .into(),
        codec::join_uris(&client.logout.post_logout_redirect_uris).into(),
        client.logout.backchannel_logout_uri.as_deref().into(),
        client.logout.backchannel_logout_session_required.into(),
        codec::join_names(&client.token_exchange_resources).into(),
        (&client.jwks).into(),
        (&client.jwks_uri).into(),
        client.require_par.into(),
        client.dpop_bound_access_tokens.into(),
    ]
}

pub(crate) async fn insert(db: &impl Backend, client: &OAuthClient) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(INSERT, &insert_args(client))
        .await?;
    Ok(())
}

pub(crate) async fn set_trusted(db: &impl Backend, id: &str, trusted: bool) -> StoreResult<bool> {
    let updated = db
        .writer()
        .await?
        .execute(SET_TRUSTED, &[id.into(), trusted.into()])
        .await?;
    Ok(updated == 1)
}

pub(crate) async fn get(db: &impl Backend, id: &str) -> StoreResult<Option<OAuthClient>> {
    let row: Option<OAuthClientRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_ID, &[id.into()])
        .await?;
    model(row)
}

pub(crate) async fn list(
    db: &impl Backend,
    owner_id: Option<&str>,
    after: Option<&str>,
    n: u32,
) -> StoreResult<Vec<OAuthClient>> {
    let after = after.unwrap_or("");
    let mut reader = db.reader().await?;
    let rows: Vec<OAuthClientRow> = match owner_id {
        Some(owner) => {
            reader
                .fetch_all(
                    LIST_OF_OWNER,
                    &[owner.into(), after.into(), i64::from(n).into()],
                )
                .await?
        }
        None => {
            reader
                .fetch_all(LIST, &[after.into(), i64::from(n).into()])
                .await?
        }
    };
    models(rows)
}

/// The arguments of [`UPDATE`].
pub(crate) fn update_args<'a>(
    id: &'a str,
    changes: &'a ClientChanges,
    at: Timestamp,
) -> Vec<Arg<'a>> {
    vec![
        id.into(),
        changes.name.as_deref().into(),
        changes
            .redirect_uris
            .as_deref()
            .map(codec::join_uris)
            .into(),
        changes
            .grant_types
            .as_deref()
            .map(codec::join_grants)
            .into(),
        changes.scopes.map(Scopes::bits).into(),
        changes.rate_limit.is_some().into(),
        changes.rate_limit.flatten().map(i64::from).into(),
        at.into(),
        changes.resources.as_deref().map(codec::join_names).into(),
        changes
            .resource_scopes
            .as_deref()
            .map(codec::join_names)
            .into(),
        changes
            .id_token_signed_response_alg
            .map(SigningAlgorithm::as_str)
            .into(),
        changes.logout.is_some().into(),
        changes
            .logout
            .as_ref()
            .map(|l| codec::join_uris(&l.post_logout_redirect_uris))
            .into(),
        changes
            .logout
            .as_ref()
            .and_then(|l| l.backchannel_logout_uri.as_deref())
            .into(),
        changes
            .logout
            .as_ref()
            .is_some_and(|l| l.backchannel_logout_session_required)
            .into(),
        changes
            .token_exchange_resources
            .as_deref()
            .map(codec::join_names)
            .into(),
        changes.keys.is_some().into(),
        changes
            .keys
            .as_ref()
            .and_then(|(jwks, _)| jwks.as_deref())
            .into(),
        changes
            .keys
            .as_ref()
            .and_then(|(_, uri)| uri.as_deref())
            .into(),
        changes.require_par.into(),
        changes.dpop_bound_access_tokens.into(),
    ]
}

pub(crate) async fn update(
    db: &impl Backend,
    id: &str,
    changes: &ClientChanges,
    at: Timestamp,
) -> StoreResult<Option<OAuthClient>> {
    let row: Option<OAuthClientRow> = db
        .writer()
        .await?
        .fetch_optional(UPDATE, &update_args(id, changes, at))
        .await?;
    model(row)
}

pub(crate) async fn set_secret(
    db: &impl Backend,
    id: &str,
    hash: &SecretHash,
    at: Timestamp,
) -> StoreResult<bool> {
    let updated = db
        .writer()
        .await?
        .execute(
            SET_SECRET,
            &[id.into(), hash.0.as_slice().into(), at.into()],
        )
        .await?;
    Ok(updated == 1)
}

pub(crate) async fn delete(db: &impl Backend, id: &str) -> StoreResult<bool> {
    let deleted = db.writer().await?.execute(DELETE, &[id.into()]).await?;
    Ok(deleted == 1)
}
