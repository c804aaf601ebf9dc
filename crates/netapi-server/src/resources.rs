//! `/v1/resources` (the operator's APIs that Net API guards) and `/v1/users/{id}/grants`
//! (the scopes of those APIs administrators grant users): parse, call one operation, render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use netapi_core::clock::format_rfc3339;
use netapi_core::model::{Resource, ResourceScope};
use netapi_core::service::{NewResource, ResourceUpdate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use crate::v1::PageQuery;

/// The pattern of a resource's scope names.
const SCOPE_NAME_PATTERN: &str = "^[a-z][a-z0-9_.:-]{0,63}$";

fn scope_name() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(SCOPE_NAME_PATTERN))
}

/// Scope names of a resource: Net API's own (see `Scope`) or an operator's.
pub(crate) fn scope_names() -> Schema {
    ArrayBuilder::new().items(scope_name()).into()
}

/// The `scopes` of a new key: names of its resource's scopes.
pub(crate) fn key_scopes_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(scope_name())
        .description(Some(
            "Scope names of the key's resource. For Net API's own: default the scopes of the \
             credential making the request, which it cannot exceed (403). For another: \
             default every scope of it the caller holds (its self-service scopes and those \
             granted); one the caller does not hold is 403, one the resource does not have 400.",
        ))
        .into()
}

// ---------------------------------------------------------------------------------------------
// Views

/// One scope of a resource.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeView {
    /// Unique within the resource.
    #[schema(pattern = "^[a-z][a-z0-9_.:-]{0,63}$")]
    name: String,
    /// What it allows, shown on the consent page: at most 500 printable characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: String,
}

/// A resource: an API of the operator's that Net API guards.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Resource)]
pub struct ResourceView {
    #[schema(pattern = "^res_[0-9A-Za-z]{20}$")]
    id: String,
    /// What credentials are made for (RFC 8707 `resource`, a token's `aud`); never changes.
    identifier: String,
    name: String,
    scopes: Vec<ScopeView>,
    /// Scopes every user holds; the others only where an administrator grants them.
    #[schema(schema_with = scope_names)]
    self_service_scopes: Vec<String>,
    /// Whether users may make API keys for it.
    allow_api_keys: bool,
    /// Its access tokens' lifetime in seconds; `null`: the server's.
    #[schema(minimum = 60, maximum = 86400, required = true)]
    access_token_ttl: Option<u32>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl ResourceView {
    fn of(resource: &Resource) -> Self {
        Self {
            id: resource.id.clone(),
            identifier: resource.identifier.clone(),
            name: resource.name.clone(),
            scopes: resource
                .scopes
                .iter()
                .map(|s| ScopeView {
                    name: s.name.clone(),
                    description: s.description.clone(),
                })
                .collect(),
            self_service_scopes: resource.self_service_scopes.clone(),
            allow_api_keys: resource.allow_api_keys,
            access_token_ttl: resource.access_token_ttl,
            created_at: format_rfc3339(resource.created_at),
            updated_at: format_rfc3339(resource.updated_at),
        }
    }
}

/// A page of resources.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceList {
    resources: Vec<ResourceView>,
    /// Pass as `page_token` for the next page; `null` on the last page.
    #[schema(required = true)]
    next_page_token: Option<String>,
}

/// What a user was granted on one resource.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantView {
    /// The resource's identifier.
    resource: String,
    #[schema(schema_with = scope_names)]
    scopes: Vec<String>,
}

/// Everything a user was granted, by resource.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantList {
    grants: Vec<GrantView>,
}

fn scopes_of(body: Vec<ScopeView>) -> Vec<ResourceScope> {
    body.into_iter()
        .map(|s| ResourceScope {
            name: s.name,
            description: s.description.trim().to_owned(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// `POST /v1/resources`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResourceBody {
    /// An absolute `https` URI (or `http` on a loopback host) in normal form, no fragment,
    /// at most 255 characters; not the issuer, and not one any resource ever had.
    #[schema(max_length = 255)]
    identifier: String,
    #[schema(schema_with = crate::openapi::name_schema)]
    name: String,
    /// At most 100, names unique.
    #[serde(default)]
    #[schema(max_items = 100)]
    scopes: Vec<ScopeView>,
    /// A subset of `scopes`' names; default: all of them.
    #[schema(schema_with = key_scopes_nullable)]
    self_service_scopes: Option<Vec<String>>,
    /// Default `true`.
    allow_api_keys: Option<bool>,
    /// Seconds, 60 to 86400; default: the server's.
    #[schema(minimum = 60, maximum = 86400)]
    access_token_ttl: Option<u32>,
}

/// Defines a resource.
#[utoipa::path(
    post,
    path = "/v1/resources",
    tag = "resources",
    operation_id = "createResource",
    request_body = NewResourceBody,
    security(("bearer" = ["resources:write"]), ("oauth2" = ["resources:write"])),
    responses(
        (status = 201, description = "The resource.", body = ResourceView),
        crate::openapi::BodyErrors,
        crate::openapi::ConflictErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn create_resource(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewResourceBody>,
) -> ApiResult<impl IntoResponse> {
    let resource = state
        .api
        .create_resource(
            &caller,
            NewResource {
                identifier: body.identifier,
                name: body.name,
                scopes: scopes_of(body.scopes),
                self_service_scopes: body.self_service_scopes,
                allow_api_keys: body.allow_api_keys,
                access_token_ttl: body.access_token_ttl,
            },
            Some(&ip),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ResourceView::of(&resource))))
}

/// Lists the resources Net API guards.
#[utoipa::path(
    get,
    path = "/v1/resources",
    tag = "resources",
    operation_id = "listResources",
    params(PageQuery),
    security(("bearer" = ["resources:read"]), ("oauth2" = ["resources:read"])),
    responses(
        (status = 200, description = "Live resources, oldest first.", body = ResourceList),
        crate::openapi::InvalidErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn list_resources(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<ResourceList>> {
    let page = state
        .api
        .list_resources(&caller, query.request("res")?)
        .await?;
    Ok(Json(ResourceList {
        resources: page.items.iter().map(ResourceView::of).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// One resource.
#[utoipa::path(
    get,
    path = "/v1/resources/{id}",
    tag = "resources",
    operation_id = "getResource",
    params(("id" = String, Path, description = "A resource id (`res_...`).")),
    security(("bearer" = ["resources:read"]), ("oauth2" = ["resources:read"])),
    responses(
        (status = 200, description = "The resource.", body = ResourceView),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn get_resource(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceView>> {
    let resource = state.api.get_resource(&caller, &id).await?;
    Ok(Json(ResourceView::of(&resource)))
}

/// `PATCH /v1/resources/{id}`: the identifier never changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcePatch {
    #[schema(schema_with = crate::openapi::name_schema_nullable)]
    name: Option<String>,
    /// Replaces the list; self-service scopes that are no longer scopes stop being so.
    #[schema(max_items = 100, nullable = true)]
    scopes: Option<Vec<ScopeView>>,
    #[schema(schema_with = key_scopes_nullable)]
    self_service_scopes: Option<Vec<String>>,
    #[schema(nullable = true)]
    allow_api_keys: Option<bool>,
    /// `null` returns to the server's lifetime.
    #[serde(default, deserialize_with = "present")]
    #[schema(minimum = 60, maximum = 86400, nullable = true)]
    access_token_ttl: Option<Option<u32>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Changes a resource.
#[utoipa::path(
    patch,
    path = "/v1/resources/{id}",
    tag = "resources",
    operation_id = "updateResource",
    params(("id" = String, Path, description = "A resource id (`res_...`).")),
    request_body = ResourcePatch,
    security(("bearer" = ["resources:write"]), ("oauth2" = ["resources:write"])),
    responses(
        (status = 200, description = "The changed resource; credentials for it keep only the \
            scopes it still has at their next use.", body = ResourceView),
        crate::openapi::BodyErrors,
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn update_resource(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResourcePatch>,
) -> ApiResult<Json<ResourceView>> {
    let resource = state
        .api
        .update_resource(
            &caller,
            &id,
            ResourceUpdate {
                name: body.name,
                scopes: body.scopes.map(scopes_of),
                self_service_scopes: body.self_service_scopes,
                allow_api_keys: body.allow_api_keys,
                access_token_ttl: body.access_token_ttl,
            },
            Some(&ip),
        )
        .await?;
    Ok(Json(ResourceView::of(&resource)))
}

/// Deletes a resource.
#[utoipa::path(
    delete,
    path = "/v1/resources/{id}",
    tag = "resources",
    operation_id = "deleteResource",
    params(("id" = String, Path, description = "A resource id (`res_...`).")),
    security(("bearer" = ["resources:write"]), ("oauth2" = ["resources:write"])),
    responses(
        (status = 204, description = "Deleted: every key and token for it stops working at \
            once; its identifier is never taken again."),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn delete_resource(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.api.delete_resource(&caller, &id, Some(&ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/users/{id}/grants`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The resource's identifier.
    #[schema(max_length = 255)]
    resource: String,
    /// Replaces what the user was granted there; `[]` takes it all back.
    #[schema(schema_with = scope_names)]
    scopes: Vec<String>,
}

/// Sets what a user is granted on a resource, beyond its self-service scopes.
#[utoipa::path(
    put,
    path = "/v1/users/{id}/grants",
    tag = "resources",
    operation_id = "setGrant",
    params(("id" = String, Path, description = "A user id (`usr_...`).")),
    request_body = GrantBody,
    security(("bearer" = ["resources:write"]), ("oauth2" = ["resources:write"])),
    responses(
        (status = 200, description = "The grant as it now is; it takes effect on the user's \
            credentials at their next use.", body = GrantView),
        crate::openapi::BodyErrors,
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn set_grant(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GrantBody>,
) -> ApiResult<Json<GrantView>> {
    let (resource, scopes) = state
        .api
        .set_grant(&caller, &id, &body.resource, &body.scopes, Some(&ip))
        .await?;
    Ok(Json(GrantView {
        resource: resource.identifier.clone(),
        scopes,
    }))
}

/// What a user was granted.
#[utoipa::path(
    get,
    path = "/v1/users/{id}/grants",
    tag = "resources",
    operation_id = "listGrants",
    params(("id" = String, Path, description = "A user id (`usr_...`).")),
    security(("bearer" = ["resources:read"]), ("oauth2" = ["resources:read"])),
    responses(
        (status = 200, description = "The user's grants on live resources (self-service \
            scopes, which every user holds, are not listed).", body = GrantList),
        crate::openapi::NotFoundErrors,
        crate::openapi::AuthErrors,
    )
)]
pub async fn list_grants(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<GrantList>> {
    let grants = state.api.list_grants(&caller, &id).await?;
    Ok(Json(GrantList {
        grants: grants
            .into_iter()
            .map(|(resource, scopes)| GrantView {
                resource: resource.identifier.clone(),
                scopes,
            })
            .collect(),
    }))
}
