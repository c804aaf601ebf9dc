//! `POST /oauth/register` (RFC 7591 dynamic client registration) and
//! `GET/PUT/DELETE /oauth/register/{client_id}` (RFC 7592 management with the registration
//! access token). Errors use RFC 7591 §3.2.2's shape, with RFC 6750's `invalid_token` (401)
//! and `insufficient_scope` (403) for the credential.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::model::ClientAuthMethod;
use netapi_core::model::{ClientMetadata, GrantType, OAuthClient};
use netapi_core::service::{ClientRegistrationRequest, NewClient, RegisteredClient};
use netapi_core::{AuthFailure, Error};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::dto::{NO_STORE, NoStore, fields};
use crate::extract::{ClientIp, bearer_of};
use crate::state::AppState;

/// Client metadata (RFC 7591 §2). Fields not listed here are ignored, as the RFC says.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = ClientMetadataRequest)]
pub(crate) struct ClientMetadataBody {
    /// RFC 7592 update only: the client's id, which must match the path.
    #[schema(nullable = true)]
    client_id: Option<String>,
    /// Shown to users on the consent page; default `Unnamed client`.
    #[schema(nullable = true, min_length = 1, max_length = 100)]
    client_name: Option<String>,
    /// Compared exactly at authorization time; `authorization_code` needs at least one.
    #[serde(default)]
    #[schema(max_items = 20, nullable = true)]
    redirect_uris: Option<Vec<String>>,
    /// Default `["authorization_code"]` (RFC 7591); `client_credentials` only for a client
    /// that has an owner (`client_registration = authenticated`).
    #[schema(schema_with = fields::grant_types_nullable)]
    grant_types: Option<Vec<String>>,
    /// Only `code` is supported.
    #[schema(nullable = true)]
    response_types: Option<Vec<String>>,
    /// `client_secret_basic` (default), `client_secret_post`, `private_key_jwt` (with
    /// `jwks` or `jwks_uri`; no secret) or `none` (a public client).
    #[schema(schema_with = fields::auth_method_nullable)]
    token_endpoint_auth_method: Option<String>,
    /// Space-separated scope names the client's tokens may carry at most.
    #[schema(nullable = true)]
    scope: Option<String>,
    /// Identifiers of the resources it may ask tokens for (RFC 8707), besides Net API's own.
    #[schema(max_items = 20, nullable = true)]
    resources: Option<Vec<String>>,
    /// The algorithm of its ID tokens; default `RS256`. An update that leaves it out keeps it.
    #[schema(schema_with = fields::id_token_alg_nullable)]
    id_token_signed_response_alg: Option<String>,
    #[schema(schema_with = fields::post_logout_redirect_uris_nullable)]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Where logout tokens are POSTed (OpenID Connect Back-Channel Logout): `https` (or
    /// `http` where `allow_private_targets` is on), no fragment.
    #[schema(nullable = true, max_length = 2000)]
    backchannel_logout_uri: Option<String>,
    /// Whether its logout tokens must carry `sid`; default `false`.
    #[schema(nullable = true)]
    backchannel_logout_session_required: Option<bool>,
    /// `private_key_jwt` only: the client's public keys, a JWK Set.
    #[schema(value_type = Option<Object>, nullable = true)]
    jwks: Option<serde_json::Value>,
    /// `private_key_jwt` only, instead of `jwks`: an `https` URL serving its JWK Set.
    #[schema(nullable = true, max_length = 2000)]
    jwks_uri: Option<String>,
    /// Take this client's authorization requests only through `/oauth/par` (RFC 9126 §6).
    #[schema(nullable = true)]
    require_pushed_authorization_requests: Option<bool>,
    /// Every token request of this client must carry a DPoP proof (RFC 9449 §5.2).
    #[schema(nullable = true)]
    dpop_bound_access_tokens: Option<bool>,
    #[schema(nullable = true, max_length = 2000)]
    logo_uri: Option<String>,
    #[schema(nullable = true, max_length = 2000)]
    client_uri: Option<String>,
    #[schema(nullable = true, max_length = 2000)]
    policy_uri: Option<String>,
    #[schema(nullable = true, max_length = 2000)]
    tos_uri: Option<String>,
    #[schema(max_items = 10, nullable = true)]
    contacts: Option<Vec<String>>,
    #[schema(nullable = true, max_length = 200)]
    software_id: Option<String>,
    #[schema(nullable = true, max_length = 200)]
    software_version: Option<String>,
}

/// A registered client (RFC 7591 §3.2.1, RFC 7592 §3).
#[derive(Serialize, ToSchema)]
#[schema(as = ClientInformation)]
pub(crate) struct ClientInformation {
    #[schema(schema_with = fields::client_id)]
    client_id: String,
    /// Only in the answer that registers a confidential client; store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^napcs_[0-9A-Za-z]{38}$", nullable = false)]
    client_secret: Option<String>,
    /// Seconds since the epoch.
    client_id_issued_at: i64,
    /// 0 (the secret does not expire), for a confidential client.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 0, nullable = false)]
    client_secret_expires_at: Option<i64>,
    /// Reads, changes and deletes this client at `registration_client_uri`.
    #[schema(pattern = "^napir_[0-9A-Za-z]{38}$")]
    registration_access_token: String,
    registration_client_uri: String,
    client_name: String,
    redirect_uris: Vec<String>,
    #[schema(schema_with = fields::grant_types)]
    grant_types: Vec<&'static str>,
    response_types: Vec<&'static str>,
    token_endpoint_auth_method: &'static str,
    scope: String,
    resources: Vec<String>,
    #[schema(schema_with = fields::id_token_alg)]
    id_token_signed_response_alg: Option<&'static str>,
    #[schema(schema_with = fields::post_logout_redirect_uris)]
    post_logout_redirect_uris: Vec<String>,
    /// Absent when none is registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 2000)]
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    jwks: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    jwks_uri: Option<String>,
    require_pushed_authorization_requests: bool,
    dpop_bound_access_tokens: bool,
    #[serde(flatten)]
    #[schema(inline)]
    metadata: ShownMetadata,
}

/// The metadata a client only shows.
#[derive(Serialize, ToSchema)]
struct ShownMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    policy_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    contacts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    software_version: Option<String>,
}

impl From<ClientMetadata> for ShownMetadata {
    fn from(m: ClientMetadata) -> Self {
        Self {
            logo_uri: m.logo_uri,
            client_uri: m.client_uri,
            policy_uri: m.policy_uri,
            tos_uri: m.tos_uri,
            contacts: m.contacts,
            software_id: m.software_id,
            software_version: m.software_version,
        }
    }
}

impl ClientInformation {
    fn new(
        state: &AppState,
        client: OAuthClient,
        metadata: ClientMetadata,
        secret: Option<String>,
        registration_access_token: String,
    ) -> Self {
        let base = state.api.settings().issuer.trim_end_matches('/').to_owned();
        Self {
            registration_client_uri: format!("{base}/oauth/register/{}", client.id),
            client_secret_expires_at: secret.as_ref().map(|_| 0),
            client_secret: secret,
            client_id_issued_at: client.created_at,
            registration_access_token,
            response_types: if client.allows(GrantType::AuthorizationCode) {
                vec!["code"]
            } else {
                Vec::new()
            },
            grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
            token_endpoint_auth_method: client.auth_method.as_str(),
            scope: client.scopes_string(),
            client_id: client.id,
            client_name: client.name,
            redirect_uris: client.redirect_uris,
            resources: client.resources,
            id_token_signed_response_alg: client.id_token_signed_response_alg.map(|a| a.as_str()),
            post_logout_redirect_uris: client.logout.post_logout_redirect_uris,
            backchannel_logout_uri: client.logout.backchannel_logout_uri,
            backchannel_logout_session_required: client.logout.backchannel_logout_session_required,
            jwks: client
                .jwks
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
            jwks_uri: client.jwks_uri,
            require_pushed_authorization_requests: client.require_par,
            dpop_bound_access_tokens: client.dpop_bound_access_tokens,
            metadata: metadata.into(),
        }
    }
}

/// An error of the registration endpoints (RFC 7591 §3.2.2, RFC 6750 §3.1).
#[derive(Serialize, ToSchema)]
#[schema(as = RegistrationError)]
pub(crate) struct RegistrationErrorBody {
    /// `invalid_redirect_uri`, `invalid_client_metadata`, `invalid_token`,
    /// `insufficient_scope`, `temporarily_unavailable` or `server_error`.
    error: &'static str,
    error_description: String,
}

/// A refusal at the registration endpoints, in their shape.
#[derive(Debug)]
pub(crate) struct RegistrationFailure(Error);

impl From<Error> for RegistrationFailure {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

fn metadata_error(description: impl Into<String>) -> RegistrationFailure {
    RegistrationFailure(Error::InvalidArgument {
        field: None,
        message: description.into(),
    })
}

impl IntoResponse for RegistrationFailure {
    fn into_response(self) -> Response {
        let mut challenge: Option<String> = None;
        let mut retry_after = None;
        let (status, error, description) = match self.0 {
            Error::InvalidArgument { field, message } => {
                let described = match &field {
                    Some(field) => format!("{field}: {message}"),
                    None => message,
                };
                if field.as_deref() == Some("redirect_uris") {
                    (StatusCode::BAD_REQUEST, "invalid_redirect_uri", described)
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        "invalid_client_metadata",
                        described,
                    )
                }
            }
            Error::Unauthenticated(failure) => {
                let description = match failure {
                    AuthFailure::Missing => "This request needs Authorization: Bearer <token>.",
                    AuthFailure::Expired => "The token has expired.",
                    _ => "The token is invalid, expired, used or revoked.",
                };
                challenge = Some(if failure == AuthFailure::Missing {
                    "Bearer realm=\"netapi\"".to_owned()
                } else {
                    format!(
                        "Bearer realm=\"netapi\", error=\"invalid_token\", error_description=\"{description}\""
                    )
                });
                (
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    description.to_owned(),
                )
            }
            Error::PermissionDenied { scope, message } => {
                let scope = scope.map_or("clients:write", |s| s.as_str());
                challenge = Some(format!(
                    "Bearer realm=\"netapi\", error=\"insufficient_scope\", scope=\"{scope}\""
                ));
                (StatusCode::FORBIDDEN, "insufficient_scope", message)
            }
            Error::RateLimited { retry_after: after } | Error::Busy { retry_after: after } => {
                retry_after = Some(after);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    "Too many registrations or failed attempts from this address; try again later."
                        .to_owned(),
                )
            }
            Error::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The server cannot reach its storage; try again shortly.".to_owned(),
            ),
            Error::NotFound(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The token is invalid, expired, used or revoked.".to_owned(),
            ),
            other => {
                tracing::error!(error = %other, "client registration failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "The server could not complete the request.".to_owned(),
                )
            }
        };
        let body = RegistrationErrorBody {
            error,
            error_description: description,
        };
        let mut response = (status, NO_STORE, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

type RegistrationResult<T> = Result<T, RegistrationFailure>;

/// Reads the JSON body: any malformed body or field of the wrong type is
/// `invalid_client_metadata`; unknown fields are ignored.
fn parse_body(body: &Bytes) -> RegistrationResult<ClientRegistrationRequest> {
    let body: ClientMetadataBody = serde_json::from_slice(body)
        .map_err(|e| metadata_error(format!("The body is not valid client metadata: {e}")))?;
    into_request(body)
}

fn into_request(body: ClientMetadataBody) -> RegistrationResult<ClientRegistrationRequest> {
    if body
        .response_types
        .as_ref()
        .is_some_and(|types| types.iter().any(|t| t != "code"))
    {
        return Err(metadata_error("response_types: only 'code' is supported"));
    }
    let grant_types = match &body.grant_types {
        Some(names) => netapi_core::service::parse_grant_types(names)?,
        // RFC 7591 §2: the default is authorization_code.
        None => vec![GrantType::AuthorizationCode],
    };
    let auth_method = body
        .token_endpoint_auth_method
        .as_deref()
        .map(netapi_core::service::parse_auth_method)
        .transpose()?;
    Ok(ClientRegistrationRequest {
        client: NewClient {
            name: body
                .client_name
                .unwrap_or_else(|| "Unnamed client".to_owned()),
            redirect_uris: body.redirect_uris.unwrap_or_default(),
            grant_types: Some(grant_types),
            scope: body.scope,
            auth_method: Some(auth_method.unwrap_or(ClientAuthMethod::SecretBasic)),
            rate_limit: None,
            trusted: false,
            resources: body.resources,
            id_token_signed_response_alg: body
                .id_token_signed_response_alg
                .as_deref()
                .map(netapi_core::service::parse_id_token_alg)
                .transpose()?,
            // Set through /v1/oauth-clients only: it needs an owner who holds scopes there.
            token_exchange_resources: None,
            logout: netapi_core::model::ClientLogout {
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
        metadata: ClientMetadata {
            logo_uri: body.logo_uri,
            client_uri: body.client_uri,
            policy_uri: body.policy_uri,
            tos_uri: body.tos_uri,
            contacts: body.contacts.unwrap_or_default(),
            software_id: body.software_id,
            software_version: body.software_version,
        },
    })
}

/// Registers a client (RFC 7591 §3). Who may depends on the `client_registration` setting:
/// `authenticated` (default) takes a user's API key or access token with `clients:write`
/// (the user owns the client, which cannot exceed the credential's scopes); `admin` takes an
/// initial access token (`napit_...`, one registration each); `open` takes none, limited per
/// source address. Without owner, a client may not use `client_credentials`.
#[utoipa::path(
    post,
    path = "/oauth/register",
    tag = "oauth",
    operation_id = "registerClient",
    request_body(content = ClientMetadataBody, content_type = "application/json"),
    security(("bearer" = []), ()),
    responses(
        (status = 201, description = "The client, its secret (confidential clients) and its registration access token, shown this once.", body = ClientInformation, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 400, description = "`invalid_redirect_uri` or `invalid_client_metadata`.", body = RegistrationErrorBody),
        (status = 401, description = "`invalid_token`: the setting needs a credential and none, or a bad one, was given.", body = RegistrationErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"netapi\"`, with `error=\"invalid_token\"` for a bad credential"))),
        (status = 403, description = "`insufficient_scope`: the credential lacks `clients:write`.", body = RegistrationErrorBody),
        (status = 429, description = "Too many registrations or failures from this address.", body = RegistrationErrorBody, headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 500, description = "`server_error`.", body = RegistrationErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = RegistrationErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> RegistrationResult<(StatusCode, NoStore, Json<ClientInformation>)> {
    let request = parse_body(&body)?;
    let RegisteredClient {
        client,
        metadata,
        secret,
        registration_token,
    } = state
        .api
        .register_client(bearer_of(&headers), &ip, request)
        .await?;
    let secret = secret.map(|s| s.expose().to_owned());
    let token = registration_token.expose().to_owned();
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(ClientInformation::new(
            &state, client, metadata, secret, token,
        )),
    ))
}

/// Reads a registered client (RFC 7592 §2.1) with its registration access token.
#[utoipa::path(
    get,
    path = "/oauth/register/{client_id}",
    tag = "oauth",
    operation_id = "readRegisteredClient",
    params(("client_id" = String, Path, description = "The client's id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The client as registered; `registration_access_token` is the one presented.", body = ClientInformation, headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "`invalid_token`: no, or not this client's, registration access token (also for an unknown client).", body = RegistrationErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"netapi\", error=\"invalid_token\"`"))),
        (status = 429, description = "Too many failures from this address for this client.", body = RegistrationErrorBody, headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 500, description = "`server_error`.", body = RegistrationErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = RegistrationErrorBody),
    )
)]
pub async fn read(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> RegistrationResult<(NoStore, Json<ClientInformation>)> {
    let token = bearer_of(&headers);
    let (client, metadata) = state
        .api
        .read_registered_client(&client_id, token, &ip)
        .await?;
    let token = token.unwrap_or_default().to_owned();
    Ok((
        NO_STORE,
        Json(ClientInformation::new(
            &state, client, metadata, None, token,
        )),
    ))
}

/// Replaces a registered client's metadata (RFC 7592 §2.2): fields left out return to their
/// defaults. The client id, secret and registration access token stay the same; scopes and
/// resources can only be narrowed, and `token_endpoint_auth_method` cannot change.
#[utoipa::path(
    put,
    path = "/oauth/register/{client_id}",
    tag = "oauth",
    operation_id = "updateRegisteredClient",
    params(("client_id" = String, Path, description = "The client's id.")),
    request_body(content = ClientMetadataBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The client as it now is.", body = ClientInformation, headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`invalid_redirect_uri` or `invalid_client_metadata`.", body = RegistrationErrorBody),
        (status = 401, description = "`invalid_token`.", body = RegistrationErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"netapi\", error=\"invalid_token\"`"))),
        (status = 429, description = "Too many failures.", body = RegistrationErrorBody, headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 500, description = "`server_error`.", body = RegistrationErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = RegistrationErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> RegistrationResult<(NoStore, Json<ClientInformation>)> {
    let token = bearer_of(&headers);
    let parsed: ClientMetadataBody = serde_json::from_slice(&body)
        .map_err(|e| metadata_error(format!("The body is not valid client metadata: {e}")))?;
    if parsed
        .client_id
        .as_deref()
        .is_some_and(|id| id != client_id)
    {
        return Err(metadata_error(
            "client_id: must be the id of the client being updated",
        ));
    }
    let request = into_request(parsed)?;
    let (client, metadata) = state
        .api
        .update_registered_client(&client_id, token, &ip, request)
        .await?;
    let token = token.unwrap_or_default().to_owned();
    Ok((
        NO_STORE,
        Json(ClientInformation::new(
            &state, client, metadata, None, token,
        )),
    ))
}

/// Deletes a registered client (RFC 7592 §2.3): its tokens stop working at once.
#[utoipa::path(
    delete,
    path = "/oauth/register/{client_id}",
    tag = "oauth",
    operation_id = "deleteRegisteredClient",
    params(("client_id" = String, Path, description = "The client's id.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "`invalid_token`.", body = RegistrationErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"netapi\", error=\"invalid_token\"`"))),
        (status = 429, description = "Too many failures.", body = RegistrationErrorBody, headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 500, description = "`server_error`.", body = RegistrationErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = RegistrationErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> RegistrationResult<StatusCode> {
    state
        .api
        .delete_registered_client(&client_id, bearer_of(&headers), &ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
