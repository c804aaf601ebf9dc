//! `/v1/register` and `/v1/users...`: registration and users.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use netapi_core::scope::Role;
use netapi_core::secret::Secret;
use netapi_core::service::{NewUser, UserUpdate};
use serde::Deserialize;

use super::pagination::PageQuery;
use crate::dto::{NO_STORE, NewApiKeyView, NoStore, Registration, UserList, UserView, fields};
use crate::error::{
    ApiError, ApiResult, AuthErrors, BodyErrors, ConflictErrors, ForbiddenErrors, InvalidErrors,
    NotFoundErrors, ServiceErrors, SourceLimitErrors,
};
use crate::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use crate::state::AppState;

/// `POST /v1/register`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    #[schema(schema_with = fields::email)]
    email: String,
    #[schema(schema_with = fields::password)]
    password: Secret,
    #[schema(schema_with = fields::name)]
    name: String,
    #[schema(schema_with = fields::invitation_token_nullable)]
    invitation: Option<Secret>,
}

/// Creates a member (or the invitation's role) and its first API key. The `registration`
/// setting decides who may: `open` (anyone, within `registration_email_domains`), `invite`
/// (only with an `invitation`), `closed` (no one); refusals are 403.
#[utoipa::path(
    post,
    path = "/v1/register",
    tag = "users",
    operation_id = "register",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "The new member and its first API key (every scope but `admin`), the key shown this once.", body = Registration, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`")), links(("getUser" = (operation_id = "getUser", parameters(("id" = "$response.body#/user/id")))), ("listGrants" = (operation_id = "listGrants", parameters(("id" = "$response.body#/user/id")))), ("setGrant" = (operation_id = "setGrant", parameters(("id" = "$response.body#/user/id")))))),
        BodyErrors,
        ForbiddenErrors,
        ConflictErrors,
        SourceLimitErrors,
        ServiceErrors,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, NoStore, Json<Registration>)> {
    let (user, key, secret) = state
        .api
        .register(
            NewUser {
                email: body.email,
                password: body.password,
                name: body.name,
                role: Role::Member,
                email_verified: false,
                invitation: body.invitation,
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(Registration {
            user: user.into(),
            api_key: NewApiKeyView::new(key, &secret, state.api.issuer()),
        }),
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
        (status = 200, description = "Administrators: every user; members: themselves. Oldest first.", body = UserList),
        InvalidErrors,
        AuthErrors,
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<UserList>> {
    let page = state.api.list_users(&caller, query.request("usr")?).await?;
    Ok(Json(page.into()))
}

/// `GET /v1/users/me`
#[utoipa::path(
    get,
    path = "/v1/users/me",
    tag = "users",
    operation_id = "getMe",
    security(("bearer" = ["users:read"]), ("oauth2" = ["users:read"])),
    responses(
        (status = 200, description = "The user the credential acts for.", body = UserView),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn me(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<UserView>> {
    let user = state.api.get_user(&caller, &caller.user_id).await?;
    Ok(Json(user.into()))
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
        (status = 200, description = "The user.", body = UserView),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    let user = state.api.get_user(&caller, &id).await?;
    Ok(Json(user.into()))
}

/// `PATCH /v1/users/{id}`
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[schema(schema_with = fields::name_nullable)]
    name: Option<String>,
    #[schema(schema_with = fields::email_nullable)]
    email: Option<String>,
    #[schema(schema_with = fields::password_nullable)]
    password: Option<Secret>,
    #[schema(schema_with = fields::role_nullable)]
    role: Option<String>,
    #[schema(schema_with = fields::current_password)]
    current_password: Option<Secret>,
    /// `true` disables the account (its keys, tokens and sessions are refused at once),
    /// `false` enables it again; administrators only, never their own, and never the last
    /// active administrator.
    disabled: Option<bool>,
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
        (status = 200, description = "The changed user.", body = UserView),
        BodyErrors,
        NotFoundErrors,
        ConflictErrors,
        AuthErrors,
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> ApiResult<Json<UserView>> {
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
                disabled: body.disabled,
                current_password: body.current_password,
            },
            Some(&ip),
        )
        .await?;
    Ok(Json(user.into()))
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
        (status = 200, description = "The changed user.", body = UserView),
        BodyErrors,
        NotFoundErrors,
        ConflictErrors,
        AuthErrors,
    )
)]
pub async fn update_me(
    state: State<AppState>,
    Auth(caller): Auth,
    ip: ClientIp,
    body: ApiJson<UserPatch>,
) -> ApiResult<Json<UserView>> {
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
        NotFoundErrors,
        AuthErrors,
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
        NotFoundErrors,
        AuthErrors,
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
