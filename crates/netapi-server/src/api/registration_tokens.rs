//! `/v1/registration-tokens` (admins only): initial access tokens for dynamic client
//! registration when `client_registration = admin`. Parse, call one operation, render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use netapi_core::clock::format_rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::dto::{NO_STORE, NoStore, fields};
use crate::error::{ApiResult, AuthErrors, BodyErrors, NotFoundErrors};
use crate::extract::{ApiJson, Auth, ClientIp};
use crate::state::AppState;

/// `POST /v1/registration-tokens`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRegistrationTokenBody {
    /// Seconds until it expires: 60 to 7776000 (90 days); default 604800 (7 days).
    #[schema(minimum = 60, maximum = 7_776_000)]
    expires_in: Option<i64>,
}

/// An initial access token, shown this once.
#[derive(Serialize, ToSchema)]
#[schema(as = NewRegistrationToken)]
pub(crate) struct NewRegistrationTokenView {
    /// `rgt_...`
    #[schema(pattern = "^rgt_[0-9A-Za-z]+$")]
    id: String,
    /// `Authorization: Bearer <token>` at `POST /oauth/register`; good for one registration.
    #[schema(pattern = "^napit_[0-9A-Za-z]{38}$")]
    token: String,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
    #[schema(schema_with = fields::date_time_utc)]
    expires_at: String,
}

/// Makes an initial access token for one registration at `/oauth/register`.
#[utoipa::path(
    post,
    path = "/v1/registration-tokens",
    tag = "registration-tokens",
    operation_id = "createRegistrationToken",
    request_body = NewRegistrationTokenBody,
    security(("bearer" = ["admin", "clients:write"]), ("oauth2" = ["admin", "clients:write"])),
    responses(
        (status = 201, description = "The token, shown this once.", body = NewRegistrationTokenView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        BodyErrors,
        AuthErrors,
    )
)]
pub async fn create_registration_token(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewRegistrationTokenBody>,
) -> ApiResult<(StatusCode, NoStore, Json<NewRegistrationTokenView>)> {
    let (token, secret) = state
        .api
        .create_registration_token(&caller, body.expires_in, Some(&ip))
        .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(NewRegistrationTokenView {
            id: token.id,
            token: secret.expose().to_owned(),
            created_at: format_rfc3339(token.created_at),
            expires_at: format_rfc3339(token.expires_at),
        }),
    ))
}

/// Deletes an initial access token: it stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/registration-tokens/{id}",
    tag = "registration-tokens",
    operation_id = "deleteRegistrationToken",
    params(("id" = String, Path, description = "A registration token id (`rgt_...`).")),
    security(("bearer" = ["admin", "clients:write"]), ("oauth2" = ["admin", "clients:write"])),
    responses(
        (status = 204, description = "Deleted."),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn delete_registration_token(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .api
        .delete_registration_token(&caller, &id, Some(&ip))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
