//! The `/v1` API: parse, call one operation, render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use netapi_core::Scopes;
use netapi_core::clock::parse_rfc3339;
use netapi_core::scope::Role;
use netapi_core::secret::Secret;
use netapi_core::service::{
    ClientUpdate, NewApiKey, NewClient, NewUser, Page, PageRequest, UserUpdate,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Auth, ClientIp, OptionalJson};
use crate::views;

/// `?page_size=N&page_token=T`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    page_size: Option<u32>,
    page_token: Option<String>,
}

impl PageQuery {
    fn request(&self, prefix: &str) -> ApiResult<PageRequest> {
        Ok(PageRequest::parse(
            prefix,
            self.page_size,
            self.page_token.as_deref(),
        )?)
    }
}

fn page_json<T>(name: &str, page: &Page<T>, view: impl Fn(&T) -> Value) -> Value {
    json!({
        name: page.items.iter().map(view).collect::<Vec<_>>(),
        "next_page_token": page.next_page_token,
    })
}

/// `POST /v1/register`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    email: String,
    password: String,
    name: String,
}

/// Creates a member and its first API key.
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<impl IntoResponse> {
    let (user, key, secret) = state
        .api
        .register(
            NewUser {
                email: body.email,
                password: Secret::new(body.password),
                name: body.name,
                role: Role::Member,
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": views::user(&user), "api_key": views::api_key(&key, Some(&secret)) })),
    ))
}

/// `GET /v1/users`
pub async fn list_users(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let page = state.api.list_users(&caller, query.request("usr")?).await?;
    Ok(Json(page_json("users", &page, views::user)))
}

/// `GET /v1/users/me`
pub async fn me(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<Value>> {
    let user = state.api.get_user(&caller, &caller.user_id).await?;
    Ok(Json(views::user(&user)))
}

/// `GET /v1/users/{id}`
pub async fn get_user(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state.api.get_user(&caller, &id).await?;
    Ok(Json(views::user(&user)))
}

/// `PATCH /v1/users/{id}`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    role: Option<String>,
}

/// Changes a user.
pub async fn update_user(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> ApiResult<Json<Value>> {
    let role = body
        .role
        .as_deref()
        .map(|r| Role::parse(r).ok_or_else(|| ApiError::invalid("role", "must be admin or member")))
        .transpose()?;
    let user = state
        .api
        .update_user(
            &caller,
            &id,
            UserUpdate {
                name: body.name,
                email: body.email,
                password: body.password.map(Secret::new),
                role,
            },
            Some(&ip),
        )
        .await?;
    Ok(Json(views::user(&user)))
}

/// `PATCH /v1/users/me`
pub async fn update_me(
    state: State<AppState>,
    Auth(caller): Auth,
    ip: ClientIp,
    body: ApiJson<UserPatch>,
) -> ApiResult<Json<Value>> {
    let id = caller.user_id.clone();
    update_user(state, Auth(caller), ip, Path(id), body).await
}

/// `DELETE /v1/users/me`
pub async fn delete_me(
    state: State<AppState>,
    Auth(caller): Auth,
    ip: ClientIp,
) -> ApiResult<StatusCode> {
    let id = caller.user_id.clone();
    delete_user(state, Auth(caller), ip, Path(id)).await
}

/// `DELETE /v1/users/{id}`
pub async fn delete_user(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.api.delete_user(&caller, &id, Some(&ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/api-keys`
pub async fn list_keys(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let page = state
        .api
        .list_api_keys(&caller, query.request("key")?)
        .await?;
    Ok(Json(page_json("api_keys", &page, |k| {
        views::api_key(k, None)
    })))
}

/// `POST /v1/api-keys`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    name: String,
    scopes: Option<Vec<String>>,
    expires_at: Option<String>,
    rate_limit_per_minute: Option<u32>,
}

fn parse_scopes(field: &str, names: Option<Vec<String>>) -> ApiResult<Option<Scopes>> {
    names
        .map(|names| {
            Scopes::parse_list(&names).map_err(|name| {
                ApiError::invalid(field, format!("contains the unknown scope '{name}'"))
            })
        })
        .transpose()
}

/// Creates a key; the key is in the answer this once.
pub async fn create_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewKeyBody>,
) -> ApiResult<impl IntoResponse> {
    let scopes = parse_scopes("scopes", body.scopes)?;
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|t| {
            parse_rfc3339(t)
                .ok_or_else(|| ApiError::invalid("expires_at", "must be an RFC 3339 date-time"))
        })
        .transpose()?;
    let (key, secret) = state
        .api
        .create_api_key(
            &caller,
            NewApiKey {
                name: body.name,
                scopes,
                expires_at,
                rate_limit: body.rate_limit_per_minute,
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(views::api_key(&key, Some(&secret))),
    ))
}

/// `GET /v1/api-keys/{id}`
pub async fn get_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let key = state.api.get_api_key(&caller, &id).await?;
    Ok(Json(views::api_key(&key, None)))
}

/// `DELETE /v1/api-keys/{id}`
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
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    grace_period_seconds: Option<i64>,
}

/// Rotates a key; the new key is in the answer this once.
pub async fn rotate_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateBody>,
) -> ApiResult<impl IntoResponse> {
    let (key, secret) = state
        .api
        .rotate_api_key(&caller, &id, body.grace_period_seconds, Some(&ip))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(views::api_key(&key, Some(&secret))),
    ))
}

/// `GET /v1/oauth-clients`
pub async fn list_clients(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let page = state
        .api
        .list_clients(&caller, query.request("cli")?)
        .await?;
    Ok(Json(page_json("oauth_clients", &page, |c| {
        views::client(c, None)
    })))
}

/// `POST /v1/oauth-clients` (RFC 7591 names)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    client_name: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    token_endpoint_auth_method: Option<String>,
    rate_limit_per_minute: Option<u32>,
}

fn check_response_types(types: Option<&Vec<String>>) -> ApiResult<()> {
    match types {
        Some(types) if types.iter().any(|t| t != "code") => Err(ApiError::invalid(
            "response_types",
            "only 'code' is supported",
        )),
        _ => Ok(()),
    }
}

/// Registers a client; a confidential client's secret is in the answer this once.
pub async fn create_client(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewClientBody>,
) -> ApiResult<impl IntoResponse> {
    check_response_types(body.response_types.as_ref())?;
    let (client, secret) = state
        .api
        .create_client(
            &caller,
            NewClient {
                name: body.client_name,
                redirect_uris: body.redirect_uris,
                grant_types: body.grant_types,
                scope: body.scope,
                auth_method: body.token_endpoint_auth_method,
                rate_limit: body.rate_limit_per_minute,
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(views::client(&client, secret.as_ref())),
    ))
}

/// `GET /v1/oauth-clients/{id}`
pub async fn get_client(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let client = state.api.get_client(&caller, &id).await?;
    Ok(Json(views::client(&client, None)))
}

/// `PATCH /v1/oauth-clients/{id}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    client_name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    #[serde(default, deserialize_with = "present")]
    rate_limit_per_minute: Option<Option<u32>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Changes a client.
pub async fn update_client(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ClientPatch>,
) -> ApiResult<Json<Value>> {
    check_response_types(body.response_types.as_ref())?;
    let client = state
        .api
        .update_client(
            &caller,
            &id,
            ClientUpdate {
                name: body.client_name,
                redirect_uris: body.redirect_uris,
                grant_types: body.grant_types,
                scope: body.scope,
                rate_limit: body.rate_limit_per_minute,
            },
            Some(&ip),
        )
        .await?;
    Ok(Json(views::client(&client, None)))
}

/// `DELETE /v1/oauth-clients/{id}`
pub async fn delete_client(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.api.delete_client(&caller, &id, Some(&ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/oauth-clients/{id}/rotate-secret`
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (client, secret) = state
        .api
        .rotate_client_secret(&caller, &id, Some(&ip))
        .await?;
    Ok(Json(views::client(&client, Some(&secret))))
}

/// `GET /v1/audit-events`
pub async fn list_events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let page = state
        .api
        .list_audit_events(&caller, query.request("evt")?)
        .await?;
    Ok(Json(page_json("audit_events", &page, views::event)))
}
