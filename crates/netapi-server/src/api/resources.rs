//! `/v1/resources` (the operator's APIs that Net API guards) and `/v1/users/{id}/grants`
//! (the scopes of those APIs administrators grant users): parse, call one operation, render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use netapi_core::model::ResourceScope;
use netapi_core::service::{NewResource, ResourceUpdate};
use serde::Deserialize;
use utoipa::ToSchema;

use super::pagination::PageQuery;
use crate::dto::fields::{self, key_scopes_nullable, scope_names};
use crate::dto::resources::{GrantList, GrantView, ResourceList, ResourceView, ScopeView};
use crate::error::{
    ApiResult, AuthErrors, BodyErrors, ConflictErrors, InvalidErrors, NotFoundErrors,
};
use crate::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use crate::state::AppState;

fn scopes_of(body: Vec<ScopeView>) -> Vec<ResourceScope> {
    body.into_iter()
        .map(|s| ResourceScope {
            name: s.name,
            description: s.description.trim().to_owned(),
        })
        .collect()
}

/// `POST /v1/resources`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResourceBody {
    /// An absolute `https` URI (or `http` on a loopback host) in normal form, no fragment,
    /// at most 255 characters; not the issuer, and not one any resource ever had.
    #[schema(max_length = 255)]
    identifier: String,
    #[schema(schema_with = fields::name)]
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
        (status = 201, description = "The resource.", body = ResourceView, links(("getResource" = (operation_id = "getResource", parameters(("id" = "$response.body#/id")))), ("updateResource" = (operation_id = "updateResource", parameters(("id" = "$response.body#/id")))), ("deleteResource" = (operation_id = "deleteResource", parameters(("id" = "$response.body#/id")))))),
        BodyErrors,
        ConflictErrors,
        AuthErrors,
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
        InvalidErrors,
        AuthErrors,
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
        NotFoundErrors,
        AuthErrors,
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
    #[schema(schema_with = fields::name_nullable)]
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
        BodyErrors,
        NotFoundErrors,
        AuthErrors,
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
        NotFoundErrors,
        AuthErrors,
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
        BodyErrors,
        NotFoundErrors,
        AuthErrors,
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
        NotFoundErrors,
        AuthErrors,
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
