//! `/v1/oauth-clients...`: OAuth 2.0 clients (RFC 7591 field names).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use netapi_core::model::ClientLogout;
use netapi_core::service::{
    ClientUpdate, NewClient, parse_auth_method, parse_grant_types, parse_id_token_alg,
};
use serde::Deserialize;

use super::pagination::PageQuery;
use crate::dto::{ClientView, NO_STORE, NoStore, OAuthClientList, fields};
use crate::error::{ApiError, ApiResult, AuthErrors, BodyErrors, InvalidErrors, NotFoundErrors};
use crate::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use crate::state::AppState;

/// `GET /v1/oauth-clients`
#[utoipa::path(
    get,
    path = "/v1/oauth-clients",
    tag = "oauth-clients",
    operation_id = "listOAuthClients",
    params(PageQuery),
    security(("bearer" = ["clients:read"]), ("oauth2" = ["clients:read"])),
    responses(
        (status = 200, description = "The caller's clients (administrators: every client), oldest first.", body = OAuthClientList),
        InvalidErrors,
        AuthErrors,
    )
)]
pub async fn list_clients(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<OAuthClientList>> {
    let page = state
        .api
        .list_clients(&caller, query.request("cli")?)
        .await?;
    Ok(Json(page.into()))
}

/// `POST /v1/oauth-clients` (RFC 7591 names)
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    /// Shown to users on the consent page.
    #[schema(schema_with = fields::name)]
    client_name: String,
    #[serde(default)]
    #[schema(schema_with = fields::redirect_uris)]
    redirect_uris: Vec<String>,
    #[schema(schema_with = fields::grant_types_nullable)]
    grant_types: Option<Vec<String>>,
    #[schema(schema_with = fields::response_types_nullable)]
    response_types: Option<Vec<String>>,
    #[schema(schema_with = fields::scope_string_nullable)]
    scope: Option<String>,
    #[schema(schema_with = fields::auth_method_nullable)]
    token_endpoint_auth_method: Option<String>,
    #[schema(schema_with = fields::rate_limit_nullable)]
    rate_limit_per_minute: Option<u32>,
    /// Redirect `/oauth/authorize` errors to this client at once (RFC 9700 §4.11.2); only
    /// administrators may set it. Default `false`.
    trusted: Option<bool>,
    /// Identifiers of the resources it may ask tokens for (RFC 8707 `resource`), besides Net
    /// API's own; `scope` may then name their scopes. Default: none.
    #[schema(max_items = 20, nullable = true)]
    resources: Option<Vec<String>>,
    #[schema(schema_with = fields::id_token_alg_nullable)]
    id_token_signed_response_alg: Option<String>,
    /// Identifiers of the resources it may obtain tokens for by token exchange (RFC 8693;
    /// needs the grant type `urn:ietf:params:oauth:grant-type:token-exchange` and a
    /// confidential client): Net API's own identifier (the issuer) or resources on which you
    /// hold at least one scope. Default: none.
    #[schema(max_items = 20, nullable = true)]
    token_exchange_resources: Option<Vec<String>>,
    #[schema(schema_with = fields::post_logout_redirect_uris_nullable)]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Where logout tokens are POSTed (OpenID Connect Back-Channel Logout): `https`, or
    /// `http` where `allow_private_targets` is on; no fragment. Default: none.
    #[schema(nullable = true, max_length = 2000)]
    backchannel_logout_uri: Option<String>,
    /// Whether its logout tokens must carry `sid`. Default `false`.
    #[schema(nullable = true)]
    backchannel_logout_session_required: Option<bool>,
    /// `private_key_jwt` only: the client's public keys, a JWK Set (`{"keys": [...]}`: RSA
    /// 2048+ for RS256, EC P-256 for ES256, OKP Ed25519 for EdDSA; at most 10 keys, 64 KiB).
    #[schema(value_type = Option<Object>, nullable = true)]
    jwks: Option<serde_json::Value>,
    /// `private_key_jwt` only, instead of `jwks`: an `https` URL serving the client's JWK
    /// Set (fetched with a 5 s timeout, at most 64 KiB, cached 5 minutes; no loopback,
    /// private or link-local address unless `allow_private_targets`).
    #[schema(nullable = true, max_length = 2000)]
    jwks_uri: Option<String>,
    /// `/oauth/authorize` then takes this client's requests only through `/oauth/par`
    /// (RFC 9126 §6). Default `false`.
    #[schema(nullable = true)]
    require_pushed_authorization_requests: Option<bool>,
    /// Every token request of this client must then carry a DPoP proof (RFC 9449 §5.2):
    /// one without is refused with `invalid_dpop_proof`, so its access tokens are always
    /// bound to a key. Default `false`.
    #[schema(nullable = true)]
    dpop_bound_access_tokens: Option<bool>,
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
        (status = 201, description = "The client; a confidential client's secret shown this once.", body = ClientView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`")), links(("getOAuthClient" = (operation_id = "getOAuthClient", parameters(("id" = "$response.body#/client_id")))))),
        BodyErrors,
        AuthErrors,
    )
)]
pub async fn create_client(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewClientBody>,
) -> ApiResult<(StatusCode, NoStore, Json<ClientView>)> {
    check_response_types(body.response_types.as_ref())?;
    let (client, secret) = state
        .api
        .create_client(
            &caller,
            NewClient {
                name: body.client_name,
                redirect_uris: body.redirect_uris,
                grant_types: body
                    .grant_types
                    .as_deref()
                    .map(parse_grant_types)
                    .transpose()?,
                scope: body.scope,
                auth_method: body
                    .token_endpoint_auth_method
                    .as_deref()
                    .map(parse_auth_method)
                    .transpose()?,
                rate_limit: body.rate_limit_per_minute,
                trusted: body.trusted.unwrap_or(false),
                resources: body.resources,
                id_token_signed_response_alg: body
                    .id_token_signed_response_alg
                    .as_deref()
                    .map(parse_id_token_alg)
                    .transpose()?,
                token_exchange_resources: body.token_exchange_resources,
                logout: ClientLogout {
                    post_logout_redirect_uris: body.post_logout_redirect_uris.unwrap_or_default(),
                    backchannel_logout_uri: body.backchannel_logout_uri,
                    backchannel_logout_session_required: body
                        .backchannel_logout_session_required
                        .unwrap_or(false),
                },
                jwks: body.jwks,
                jwks_uri: body.jwks_uri,
                require_par: body.require_pushed_authorization_requests.unwrap_or(false),
                dpop_bound_access_tokens: body.dpop_bound_access_tokens.unwrap_or(false),
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(ClientView::new(client, secret.as_ref())),
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
        (status = 200, description = "The client, without its secret.", body = ClientView),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn get_client(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientView>> {
    let client = state.api.get_client(&caller, &id).await?;
    Ok(Json(client.into()))
}

/// `PATCH /v1/oauth-clients/{id}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    #[schema(schema_with = fields::name_nullable)]
    client_name: Option<String>,
    #[schema(schema_with = fields::redirect_uris_nullable)]
    redirect_uris: Option<Vec<String>>,
    #[schema(schema_with = fields::grant_types_nullable)]
    grant_types: Option<Vec<String>>,
    #[schema(schema_with = fields::response_types_nullable)]
    response_types: Option<Vec<String>>,
    #[schema(schema_with = fields::scope_string_nullable)]
    scope: Option<String>,
    /// `null` returns the client to the server's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = fields::rate_limit_nullable)]
    rate_limit_per_minute: Option<Option<u32>>,
    /// Only administrators may change it.
    trusted: Option<bool>,
    /// Replaces the list; the client keeps only the scopes its resources still have.
    #[schema(max_items = 20, nullable = true)]
    resources: Option<Vec<String>>,
    #[schema(schema_with = fields::id_token_alg_nullable)]
    id_token_signed_response_alg: Option<String>,
    /// Replaces the list of resources it may obtain tokens for by token exchange.
    #[schema(max_items = 20, nullable = true)]
    token_exchange_resources: Option<Vec<String>>,
    #[schema(schema_with = fields::post_logout_redirect_uris_nullable)]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// `null` removes it; absent: unchanged.
    #[serde(default, deserialize_with = "present_text")]
    #[schema(nullable = true, max_length = 2000)]
    backchannel_logout_uri: Option<Option<String>>,
    #[schema(nullable = true)]
    backchannel_logout_session_required: Option<bool>,
    /// `private_key_jwt` only: replaces the client's keys (with `jwks_uri`, which is cleared when only `jwks` is given, and the other way round), a JWK Set (`{"keys": [...]}`: RSA
    /// 2048+ for RS256, EC P-256 for ES256, OKP Ed25519 for EdDSA; at most 10 keys, 64 KiB).
    #[schema(value_type = Option<Object>, nullable = true)]
    jwks: Option<serde_json::Value>,
    /// `private_key_jwt` only, instead of `jwks`: an `https` URL serving the client's JWK
    /// Set (fetched with a 5 s timeout, at most 64 KiB, cached 5 minutes; no loopback,
    /// private or link-local address unless `allow_private_targets`).
    #[schema(nullable = true, max_length = 2000)]
    jwks_uri: Option<String>,
    /// `/oauth/authorize` then takes this client's requests only through `/oauth/par`
    /// (RFC 9126 §6). Default `false`.
    #[schema(nullable = true)]
    require_pushed_authorization_requests: Option<bool>,
    /// Every token request of this client must then carry a DPoP proof (RFC 9449 §5.2):
    /// one without is refused with `invalid_dpop_proof`, so its access tokens are always
    /// bound to a key. Default `false`.
    #[schema(nullable = true)]
    dpop_bound_access_tokens: Option<bool>,
}

/// Tells a text field sent as `null` (`Some(None)`) from one left out (`None`).
fn present_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
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
        (status = 200, description = "The changed client.", body = ClientView),
        BodyErrors,
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn update_client(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ClientPatch>,
) -> ApiResult<Json<ClientView>> {
    check_response_types(body.response_types.as_ref())?;
    let client = state
        .api
        .update_client(
            &caller,
            &id,
            ClientUpdate {
                name: body.client_name,
                redirect_uris: body.redirect_uris,
                grant_types: body
                    .grant_types
                    .as_deref()
                    .map(parse_grant_types)
                    .transpose()?,
                scope: body.scope,
                rate_limit: body.rate_limit_per_minute,
                trusted: body.trusted,
                resources: body.resources,
                id_token_signed_response_alg: body
                    .id_token_signed_response_alg
                    .as_deref()
                    .map(parse_id_token_alg)
                    .transpose()?,
                token_exchange_resources: body.token_exchange_resources,
                post_logout_redirect_uris: body.post_logout_redirect_uris,
                backchannel_logout_uri: body.backchannel_logout_uri,
                backchannel_logout_session_required: body.backchannel_logout_session_required,
                jwks: body.jwks,
                jwks_uri: body.jwks_uri,
                require_par: body.require_pushed_authorization_requests,
                dpop_bound_access_tokens: body.dpop_bound_access_tokens,
            },
            Some(&ip),
        )
        .await?;
    Ok(Json(client.into()))
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
        NotFoundErrors,
        AuthErrors,
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
        (status = 200, description = "The client with its new secret, shown this once; the old secret stops working at once.", body = ClientView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        InvalidErrors,
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<(NoStore, Json<ClientView>)> {
    let (client, secret) = state
        .api
        .rotate_client_secret(&caller, &id, Some(&ip))
        .await?;
    Ok((NO_STORE, Json(ClientView::new(client, Some(&secret)))))
}
