//! `/v1/api-keys...`: API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use netapi_core::service::{NewApiKey, Page};
use serde::Deserialize;
use serde_json::Value;

use super::pagination::PageQuery;
use crate::dto::{ApiKeyList, ApiKeyView, NO_STORE, NewApiKeyView, NoStore, fields};
use crate::error::{ApiResult, AuthErrors, BodyErrors, InvalidErrors, NotFoundErrors};
use crate::extract::{ApiJson, ApiQuery, Auth, ClientIp, OptionalJson};
use crate::state::AppState;

/// `GET /v1/api-keys`
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "api-keys",
    operation_id = "listApiKeys",
    params(PageQuery),
    security(("bearer" = ["keys:read"]), ("oauth2" = ["keys:read"])),
    responses(
        (status = 200, description = "The caller's keys that are not revoked, oldest first.", body = ApiKeyList),
        InvalidErrors,
        AuthErrors,
    )
)]
pub async fn list_keys(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<ApiKeyList>> {
    let page = state
        .api
        .list_api_keys(&caller, query.request("key")?)
        .await?;
    let issuer = state.api.issuer();
    Ok(Json(
        Page {
            items: page
                .items
                .into_iter()
                .map(|key| ApiKeyView::new(key, issuer))
                .collect(),
            next_page_token: page.next_page_token,
        }
        .into(),
    ))
}

/// `POST /v1/api-keys`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    #[schema(schema_with = fields::name)]
    name: String,
    /// The identifier of the resource the key is for; default: Net API's own.
    #[schema(max_length = 255, nullable = true)]
    resource: Option<String>,
    #[schema(schema_with = fields::key_scopes_nullable)]
    scopes: Option<Vec<String>>,
    /// A JSON object of at most 4 KiB, returned wherever the key is verified.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    #[schema(schema_with = fields::future_time_nullable)]
    expires_at: Option<String>,
    #[schema(schema_with = fields::rate_limit_nullable)]
    rate_limit_per_minute: Option<u32>,
}

/// Creates a key; the key is in the answer this once.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "api-keys",
    operation_id = "createApiKey",
    request_body = NewKeyBody,
    security(("bearer" = ["keys:write"]), ("oauth2" = ["keys:write"])),
    responses(
        (status = 201, description = "The key, shown this once.", body = NewApiKeyView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`")), links(("getApiKey" = (operation_id = "getApiKey", parameters(("id" = "$response.body#/id")))), ("getApiKeyUsage" = (operation_id = "getApiKeyUsage", parameters(("id" = "$response.body#/id")))))),
        BodyErrors,
        AuthErrors,
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewKeyBody>,
) -> ApiResult<(StatusCode, NoStore, Json<NewApiKeyView>)> {
    let expires_at = super::rfc3339_field("expires_at", body.expires_at.as_deref())?;
    let (key, secret) = state
        .api
        .create_api_key(
            &caller,
            NewApiKey {
                name: body.name,
                resource: body.resource,
                scopes: body.scopes,
                metadata: body.metadata,
                expires_at,
                rate_limit: body.rate_limit_per_minute,
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(NewApiKeyView::new(key, &secret, state.api.issuer())),
    ))
}

/// `GET /v1/api-keys/{id}`
#[utoipa::path(
    get,
    path = "/v1/api-keys/{id}",
    tag = "api-keys",
    operation_id = "getApiKey",
    params(("id" = String, Path, description = "An API key id (`key_...`).")),
    security(("bearer" = ["keys:read"]), ("oauth2" = ["keys:read"])),
    responses(
        (status = 200, description = "The key, without the secret.", body = ApiKeyView),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn get_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKeyView>> {
    let key = state.api.get_api_key(&caller, &id).await?;
    Ok(Json(ApiKeyView::new(key, state.api.issuer())))
}

/// `DELETE /v1/api-keys/{id}`
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "api-keys",
    operation_id = "revokeApiKey",
    params(("id" = String, Path, description = "An API key id (`key_...`).")),
    security(("bearer" = ["keys:write"]), ("oauth2" = ["keys:write"])),
    responses(
        (status = 204, description = "Revoked: it stops working at once."),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.api.revoke_api_key(&caller, &id, Some(&ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/api-keys/{id}/rotate`
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    #[schema(schema_with = fields::grace_period_nullable)]
    grace_period_seconds: Option<i64>,
}

/// Rotates a key; the new key is in the answer this once.
#[utoipa::path(
    post,
    path = "/v1/api-keys/{id}/rotate",
    tag = "api-keys",
    operation_id = "rotateApiKey",
    params(("id" = String, Path, description = "An API key id (`key_...`).")),
    request_body(content = Option<RotateBody>, description = "Optional.", content_type = "application/json"),
    security(("bearer" = ["keys:write"]), ("oauth2" = ["keys:write"])),
    responses(
        (status = 201, description = "The new key with the same settings, shown this once.", body = NewApiKeyView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        BodyErrors,
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn rotate_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateBody>,
) -> ApiResult<(StatusCode, NoStore, Json<NewApiKeyView>)> {
    let (key, secret) = state
        .api
        .rotate_api_key(&caller, &id, body.grace_period_seconds, Some(&ip))
        .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(NewApiKeyView::new(key, &secret, state.api.issuer())),
    ))
}
