//! `authorization_codes`.

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::codec;
use crate::tables::model;
use netapi_core::model::AuthorizationCode;
use netapi_core::scope::Scopes;
use netapi_core::secret::SecretHash;
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "hash, client_id, user_id, redirect_uri, scopes, code_challenge, nonce, auth_time, \
         family_id, created_at, expires_at, used_at, redirect_uri_in_request, resource_id, \
         resource_scopes, amr, sid, dpop_jkt"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO authorization_codes (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
);
/// The first use of a code wins this conditional update.
const MARK_USED: &str = concat!(
    "UPDATE authorization_codes SET used_at = $2 WHERE hash = $1 AND used_at IS NULL \
     RETURNING ",
    columns!()
);
const SELECT_BY_HASH: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM authorization_codes WHERE hash = $1"
);
pub(crate) const DELETE_EXPIRED: &str =
    delete_batch!("authorization_codes", "hash", "expires_at < $1");
pub(crate) const DELETE_OF_RESOURCE: &str =
    "DELETE FROM authorization_codes WHERE resource_id = $1";

#[derive(FromRow)]
pub(crate) struct AuthorizationCodeRow {
    hash: Vec<u8>,
    client_id: String,
    user_id: String,
    redirect_uri: String,
    scopes: i64,
    code_challenge: Option<String>,
    nonce: Option<String>,
    auth_time: i64,
    amr: String,
    family_id: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    redirect_uri_in_request: bool,
    resource_id: Option<String>,
    resource_scopes: String,
    sid: Option<String>,
    dpop_jkt: Option<String>,
}

impl TryFrom<AuthorizationCodeRow> for AuthorizationCode {
    type Error = StoreError;

    fn try_from(row: AuthorizationCodeRow) -> StoreResult<Self> {
        Ok(Self {
            hash: codec::hash(&row.hash)?,
            client_id: row.client_id,
            user_id: row.user_id,
            redirect_uri: row.redirect_uri,
            redirect_uri_in_request: row.redirect_uri_in_request,
            scopes: Scopes::from_bits(row.scopes),
            code_challenge: row.code_challenge,
            nonce: row.nonce,
            auth_time: row.auth_time,
            amr: codec::amr(&row.amr)?,
            family_id: row.family_id,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
            resource_id: row.resource_id,
            resource_scopes: codec::split_names(&row.resource_scopes),
            sid: row.sid,
            dpop_jkt: row.dpop_jkt,
        })
    }
}

pub(crate) async fn insert(db: &impl Backend, code: &AuthorizationCode) -> StoreResult<()> {
    db.writer()
        .await?
        .execute(
            INSERT,
            &[
                code.hash.0.as_slice().into(),
                (&code.client_id).into(),
                (&code.user_id).into(),
                (&code.redirect_uri).into(),
                code.scopes.bits().into(),
                (&code.code_challenge).into(),
                (&code.nonce).into(),
                code.auth_time.into(),
                (&code.family_id).into(),
                code.created_at.into(),
                code.expires_at.into(),
                code.used_at.into(),
                code.redirect_uri_in_request.into(),
                (&code.resource_id).into(),
                codec::join_names(&code.resource_scopes).into(),
                code.amr.as_str().into(),
                (&code.sid).into(),
                (&code.dpop_jkt).into(),
            ],
        )
        .await?;
    Ok(())
}

/// The code with `used_at` unset for its first use; as stored (used) for any later one.
pub(crate) async fn consume(
    db: &impl Backend,
    hash: &SecretHash,
    now: Timestamp,
) -> StoreResult<Option<AuthorizationCode>> {
    let mut writer = db.writer().await?;
    let first: Option<AuthorizationCodeRow> = writer
        .fetch_optional(MARK_USED, &[hash.0.as_slice().into(), now.into()])
        .await?;
    if let Some(row) = first {
        let mut code = AuthorizationCode::try_from(row)?;
        code.used_at = None;
        return Ok(Some(code));
    }
    let again: Option<AuthorizationCodeRow> = writer
        .fetch_optional(SELECT_BY_HASH, &[hash.0.as_slice().into()])
        .await?;
    model(again)
}
