//! The `/v1` API: parse, call one operation, render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// The `next_page_token` of the previous page; leave it out for the first page.
    page_token: Option<String>,
}

impl PageQuery {
    pub(crate) fn request(&self, prefix: &str) -> ApiResult<PageRequest> {
        Ok(PageRequest::parse(
            prefix,
            self.page_size,
            self.page_token.as_deref(),
        )?)
    }
}

/// Headers of every answer that carries a secret: no cache along the way may keep it.
const NO_STORE: [(header::HeaderName, &str); 2] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::PRAGMA, "no-cache"),
];

fn page_json<T>(name: &str, page: &Page<T>, view: impl Fn(&T) -> Value) -> Value {
    json!({
        name: page.items.iter().map(view).collect::<Vec<_>>(),
        "next_page_token": page.next_page_token,
    })
}

/// `POST /v1/register`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    #[schema(schema_with = crate::openapi::email_schema)]
    email: String,
    #[schema(schema_with = crate::openapi::password_schema)]
    password: Secret,
    #[schema(schema_with = crate::openapi::name_schema)]
    name: String,
}

/// Creates a member and its first API key.
#[utoipa::path(
    post,
    path = "/v1/register",
    tag = "users",
    operation_id = "register",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "The new member and its first API key (every scope but `admin`), the key shown this once.", body = crate::openapi::Registration, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        crate::openapi::BodyErrors,
        crate::openapi::ConflictErrors,
        crate::openapi::SourceLimitErrors,
        crate::openapi::ServiceErrors,
    )
)]
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
                password: body.password,
                name: body.name,
                role: Role::Member,
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(
            json!({ "user": views::user(&user), "api_key": views::api_key(&key, Some(&secret), state.api.issuer()) }),
        ),
    ))
}

/// `GET /v1/users`
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "users",
    operation_id = "listUsers",
    params(PageQuery),
    security(("bearer" = ["users:read"]), ("oauth2" = ["users:read"])),
    responses(
        (status = 200, description = "Administrators: every user; members: themselves. Oldest first.", body = crate::openapi::UserList),
        crate::openapi::InvalidErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let page = state.api.list_users(&caller, query.request("usr")?).await?;
    Ok(Json(page_json("users", &page, views::user)))
}

/// `GET /v1/users/me`
#[utoipa::path(
    get,
    path = "/v1/users/me",
    tag = "users",
    operation_id = "getMe",
    security(("bearer" = ["users:read"]), ("oauth2" = ["users:read"])),
    responses(
        (status = 200, description = "The user the credential acts for.", body = crate::openapi::UserView),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn me(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Response> {
    let user = state.api.get_user(&caller, &caller.user_id).await?;
    Ok(Json(views::UserView::of(&user)).into_response())
}

/// `GET /v1/users/{id}`
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    tag = "users",
    operation_id = "getUser",
    params(("id" = String, Path, description = "A user id (`usr_...`).")),
    security(("bearer" = ["users:read"]), ("oauth2" = ["users:read"])),
    responses(
        (status = 200, description = "The user.", body = crate::openapi::UserView),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state.api.get_user(&caller, &id).await?;
    Ok(Json(views::user(&user)))
}

/// `PATCH /v1/users/{id}`
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[schema(schema_with = crate::openapi::name_schema_nullable)]
    name: Option<String>,
    #[schema(schema_with = crate::openapi::email_schema_nullable)]
    email: Option<String>,
    #[schema(schema_with = crate::openapi::password_schema_nullable)]
    password: Option<Secret>,
    #[schema(schema_with = crate::openapi::role_schema_nullable)]
    role: Option<String>,
    #[schema(schema_with = crate::openapi::current_password_schema)]
    current_password: Option<Secret>,
}

/// Changes a user.
#[utoipa::path(
    patch,
    path = "/v1/users/{id}",
    tag = "users",
    operation_id = "updateUser",
    params(("id" = String, Path, description = "A user id (`usr_...`).")),
    request_body = UserPatch,
    security(("bearer" = ["users:write"]), ("oauth2" = ["users:write"])),
    responses(
        (status = 200, description = "The changed user.", body = crate::openapi::UserView),
        crate::openapi::BodyErrors,
        crate::openapi::NotFoundErrors,
        crate::openapi::ConflictErrors,
        crate::openapi::AuthErrors,
    )
)]
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
                password: body.password,
                role,
                current_password: body.current_password,
            },
            Some(&ip),
        )
        .await?;
    Ok(Json(views::user(&user)))
}

/// `PATCH /v1/users/me`
#[utoipa::path(
    patch,
    path = "/v1/users/me",
    tag = "users",
    operation_id = "updateMe",
    request_body = UserPatch,
    security(("bearer" = ["users:write"]), ("oauth2" = ["users:write"])),
    responses(
        (status = 200, description = "The changed user.", body = crate::openapi::UserView),
        crate::openapi::BodyErrors,
        crate::openapi::NotFoundErrors,
        crate::openapi::ConflictErrors,
        crate::openapi::AuthErrors,
    )
)]
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
#[utoipa::path(
    delete,
    path = "/v1/users/me",
    tag = "users",
    operation_id = "deleteMe",
    security(("bearer" = ["users:write"]), ("oauth2" = ["users:write"])),
    responses(
        (status = 204, description = "Deleted, with its keys, clients, tokens and sessions."),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn delete_me(
    state: State<AppState>,
    Auth(caller): Auth,
    ip: ClientIp,
) -> ApiResult<StatusCode> {
    let id = caller.user_id.clone();
    delete_user(state, Auth(caller), ip, Path(id)).await
}

/// `DELETE /v1/users/{id}`
#[utoipa::path(
    delete,
    path = "/v1/users/{id}",
    tag = "users",
    operation_id = "deleteUser",
    params(("id" = String, Path, description = "A user id (`usr_...`).")),
    security(("bearer" = ["users:write"]), ("oauth2" = ["users:write"])),
    responses(
        (status = 204, description = "Deleted, with its keys, clients, tokens and sessions."),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "api-keys",
    operation_id = "listApiKeys",
    params(PageQuery),
    security(("bearer" = ["keys:read"]), ("oauth2" = ["keys:read"])),
    responses(
        (status = 200, description = "The caller's keys that are not revoked, oldest first.", body = crate::openapi::ApiKeyList),
        crate::openapi::InvalidErrors,
        crate::openapi::AuthErrors,
    )
)]
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
        views::api_key(k, None, state.api.issuer())
    })))
}

/// `POST /v1/api-keys`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    #[schema(schema_with = crate::openapi::name_schema)]
    name: String,
    /// The identifier of the resource the key is for; default: Net API's own.
    #[schema(max_length = 255, nullable = true)]
    resource: Option<String>,
    #[schema(schema_with = crate::resources::key_scopes_nullable)]
    scopes: Option<Vec<String>>,
    /// A JSON object of at most 4 KiB, returned wherever the key is verified.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    #[schema(schema_with = crate::openapi::future_time_nullable)]
    expires_at: Option<String>,
    #[schema(schema_with = crate::openapi::rate_limit_nullable)]
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
        (status = 201, description = "The key, shown this once.", body = crate::openapi::NewApiKeyView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        crate::openapi::BodyErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewKeyBody>,
) -> ApiResult<impl IntoResponse> {
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
        Json(views::api_key(&key, Some(&secret), state.api.issuer())),
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
        (status = 200, description = "The key, without the secret.", body = crate::openapi::ApiKeyView),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn get_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let key = state.api.get_api_key(&caller, &id).await?;
    Ok(Json(views::api_key(&key, None, state.api.issuer())))
}

/// `POST /v1/keys/verify`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKeyBody {
    /// The API key presented to your service; anything that is not one is `NOT_FOUND`.
    /// Never echoed back.
    key: String,
    /// The identifier (an absolute URI, no fragment) of the resource the key must be for;
    /// `null` or absent: the key's own.
    #[schema(max_length = 2048, nullable = true)]
    resource: Option<String>,
    /// Scopes the key must all hold (at most 64, each `^[a-z][a-z0-9_.:-]{0,63}$`, no
    /// repeats); `null` or absent: none.
    #[schema(max_items = 64, nullable = true)]
    scopes: Option<Vec<String>>,
}

impl std::fmt::Debug for VerifyKeyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKeyBody")
            .field("key", &"[redacted]")
            .field("resource", &self.resource)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Verifies an API key presented to one of your services: always 200 with an answer code
/// for a well-formed request.
#[utoipa::path(
    post,
    path = "/v1/keys/verify",
    tag = "api-keys",
    operation_id = "verifyApiKey",
    request_body = VerifyKeyBody,
    security(("bearer" = ["keys:verify"]), ("oauth2" = ["keys:verify"])),
    responses(
        (status = 200, description = "The verdict. `valid` is true only with `VALID`; the \
            key's facts are present once the key is known to be live (`VALID`, \
            `WRONG_RESOURCE`, `INSUFFICIENT_SCOPE`, `RATE_LIMITED`), `ratelimit` where the \
            key's per-minute limit was counted (`VALID`, `RATE_LIMITED`). The verified key's \
            failures never count against the caller's address.",
            body = crate::openapi::VerificationView),
        crate::openapi::BodyErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn verify_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<VerifyKeyBody>,
) -> ApiResult<impl IntoResponse> {
    let verification = state
        .api
        .verify_key(
            &caller,
            &body.key,
            body.resource.as_deref(),
            body.scopes.as_deref().unwrap_or_default(),
        )
        .await?;
    Ok((NO_STORE, Json(views::verification(&verification))))
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
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
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
    #[schema(schema_with = crate::openapi::grace_period_nullable)]
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
        (status = 201, description = "The new key with the same settings, shown this once.", body = crate::openapi::NewApiKeyView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        crate::openapi::BodyErrors,
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
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
        NO_STORE,
        Json(views::api_key(&key, Some(&secret), state.api.issuer())),
    ))
}

/// `GET /v1/oauth-clients`
#[utoipa::path(
    get,
    path = "/v1/oauth-clients",
    tag = "oauth-clients",
    operation_id = "listOAuthClients",
    params(PageQuery),
    security(("bearer" = ["clients:read"]), ("oauth2" = ["clients:read"])),
    responses(
        (status = 200, description = "The caller's clients (administrators: every client), oldest first.", body = crate::openapi::OAuthClientList),
        crate::openapi::InvalidErrors,
        crate::openapi::AuthErrors,
    )
)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    /// Shown to users on the consent page.
    #[schema(schema_with = crate::openapi::name_schema)]
    client_name: String,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::redirect_uris)]
    redirect_uris: Vec<String>,
    #[schema(schema_with = crate::openapi::grant_types_nullable)]
    grant_types: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::response_types_nullable)]
    response_types: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::scope_string_nullable)]
    scope: Option<String>,
    #[schema(schema_with = crate::openapi::auth_method_nullable)]
    token_endpoint_auth_method: Option<String>,
    #[schema(schema_with = crate::openapi::rate_limit_nullable)]
    rate_limit_per_minute: Option<u32>,
    /// Redirect `/oauth/authorize` errors to this client at once (RFC 9700 §4.11.2); only
    /// administrators may set it. Default `false`.
    trusted: Option<bool>,
    /// Identifiers of the resources it may ask tokens for (RFC 8707 `resource`), besides Net
    /// API's own; `scope` may then name their scopes. Default: none.
    #[schema(max_items = 20, nullable = true)]
    resources: Option<Vec<String>>,
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
#[utoipa::path(
    post,
    path = "/v1/oauth-clients",
    tag = "oauth-clients",
    operation_id = "createOAuthClient",
    request_body = NewClientBody,
    security(("bearer" = ["clients:write"]), ("oauth2" = ["clients:write"])),
    responses(
        (status = 201, description = "The client; a confidential client's secret shown this once.", body = crate::openapi::ClientView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        crate::openapi::BodyErrors,
        crate::openapi::AuthErrors,
    )
)]
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
                trusted: body.trusted.unwrap_or(false),
                resources: body.resources,
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(views::client(&client, secret.as_ref())),
    ))
}

/// `GET /v1/oauth-clients/{id}`
#[utoipa::path(
    get,
    path = "/v1/oauth-clients/{id}",
    tag = "oauth-clients",
    operation_id = "getOAuthClient",
    params(("id" = String, Path, description = "A client id (`cli_...`).")),
    security(("bearer" = ["clients:read"]), ("oauth2" = ["clients:read"])),
    responses(
        (status = 200, description = "The client, without its secret.", body = crate::openapi::ClientView),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn get_client(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let client = state.api.get_client(&caller, &id).await?;
    Ok(Json(views::client(&client, None)))
}

/// `PATCH /v1/oauth-clients/{id}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    #[schema(schema_with = crate::openapi::name_schema_nullable)]
    client_name: Option<String>,
    #[schema(schema_with = crate::openapi::redirect_uris_nullable)]
    redirect_uris: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::grant_types_nullable)]
    grant_types: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::response_types_nullable)]
    response_types: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::scope_string_nullable)]
    scope: Option<String>,
    /// `null` returns the client to the server's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::openapi::rate_limit_nullable)]
    rate_limit_per_minute: Option<Option<u32>>,
    /// Only administrators may change it.
    trusted: Option<bool>,
    /// Replaces the list; the client keeps only the scopes its resources still have.
    #[schema(max_items = 20, nullable = true)]
    resources: Option<Vec<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Changes a client.
#[utoipa::path(
    patch,
    path = "/v1/oauth-clients/{id}",
    tag = "oauth-clients",
    operation_id = "updateOAuthClient",
    params(("id" = String, Path, description = "A client id (`cli_...`).")),
    request_body = ClientPatch,
    security(("bearer" = ["clients:write"]), ("oauth2" = ["clients:write"])),
    responses(
        (status = 200, description = "The changed client.", body = crate::openapi::ClientView),
        crate::openapi::BodyErrors,
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
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
                trusted: body.trusted,
                resources: body.resources,
            },
            Some(&ip),
        )
        .await?;
    Ok(Json(views::client(&client, None)))
}

/// `DELETE /v1/oauth-clients/{id}`
#[utoipa::path(
    delete,
    path = "/v1/oauth-clients/{id}",
    tag = "oauth-clients",
    operation_id = "deleteOAuthClient",
    params(("id" = String, Path, description = "A client id (`cli_...`).")),
    security(("bearer" = ["clients:write"]), ("oauth2" = ["clients:write"])),
    responses(
        (status = 204, description = "Deleted with its tokens, codes and consents."),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
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
#[utoipa::path(
    post,
    path = "/v1/oauth-clients/{id}/rotate-secret",
    tag = "oauth-clients",
    operation_id = "rotateOAuthClientSecret",
    params(("id" = String, Path, description = "A client id (`cli_...`).")),
    security(("bearer" = ["clients:write"]), ("oauth2" = ["clients:write"])),
    responses(
        (status = 200, description = "The client with its new secret, shown this once; the old secret stops working at once.", body = crate::openapi::ClientView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        crate::openapi::InvalidErrors,
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let (client, secret) = state
        .api
        .rotate_client_secret(&caller, &id, Some(&ip))
        .await?;
    Ok((NO_STORE, Json(views::client(&client, Some(&secret)))))
}

/// `GET /v1/audit-events`
#[utoipa::path(
    get,
    path = "/v1/audit-events",
    tag = "audit",
    operation_id = "listAuditEvents",
    params(PageQuery),
    security(("bearer" = ["audit:read"]), ("oauth2" = ["audit:read"])),
    responses(
        (status = 200, description = "The caller's security events (administrators: all), newest first.", body = crate::openapi::AuditEventList),
        crate::openapi::InvalidErrors,
        crate::openapi::AuthErrors,
    )
)]
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
