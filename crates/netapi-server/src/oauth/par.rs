//! `POST /oauth/par` (RFC 9126 pushed authorization requests).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::client_auth::ClientForm;
use super::error::{OAuthErrors, OAuthFailure};
use crate::dto::{NO_STORE, NoStore};
use crate::extract::{ClientIp, dpop_proof};
use crate::state::AppState;
use netapi_core::service::PushedParams;

/// `POST /oauth/par` (`application/x-www-form-urlencoded`; every parameter at most once): the
/// parameters of `GET /oauth/authorize`, and client authentication as at the token endpoint
/// (a public client sends only `client_id`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Core parses the form; this states it for the document.
pub(crate) struct ParForm {
    /// The client; with HTTP Basic it may be left out, and must match if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `code`.
    response_type: String,
    /// As at `/oauth/authorize`: one of the client's redirect URIs, exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    state: Option<String>,
    /// PKCE S256 challenge (required as at `/oauth/authorize`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    code_challenge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    code_challenge_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 255)]
    resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    max_age: Option<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is to be bound to (43
    /// characters of base64url); the code is then exchanged only with a proof of that key.
    /// With a `DPoP` header too, it must be that proof's key's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_length = 43, max_length = 43)]
    dpop_jkt: Option<String>,
    /// `client_secret_post`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_secret: Option<String>,
    /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_assertion_type: Option<String>,
    /// `private_key_jwt`: the signed JWT (RFC 7523 §2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_assertion: Option<String>,
}

/// The answer of `/oauth/par` (RFC 9126 §2.2).
#[derive(Serialize, ToSchema)]
pub(crate) struct ParResponse {
    /// Send it to `/oauth/authorize` with `client_id`; single use.
    #[schema(pattern = "^urn:ietf:params:oauth:request_uri:[0-9A-Za-z]{32}$")]
    request_uri: String,
    /// Seconds until it expires (60).
    expires_in: i64,
}

/// `POST /oauth/par` (RFC 9126)
#[utoipa::path(
    post,
    path = "/oauth/par",
    tag = "oauth",
    operation_id = "pushedAuthorizationRequest",
    request_body(content = ParForm, content_type = "application/x-www-form-urlencoded"),
    params(
        ("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449 §10.1) with `htm` `POST` and `htu` this endpoint's URL: the code is bound to its key, as with `dpop_jkt` (which, if sent too, must be that key's thumbprint: otherwise `invalid_dpop_proof`)."),
    ),
    security(("client_basic" = []), ()),
    responses(
        (status = 201, description = "The request is kept: send `client_id` and `request_uri` to `/oauth/authorize` within `expires_in` seconds.", body = ParResponse, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        OAuthErrors,
    )
)]
pub async fn par(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ClientForm(request): ClientForm<PushedParams>,
) -> Result<(StatusCode, NoStore, Json<ParResponse>), OAuthFailure> {
    let basic = request.client.is_basic();
    let pushed = state
        .api
        .push_authorization(&request, dpop_proof(&headers), &ip)
        .await
        .map_err(|error| OAuthFailure { error, basic })?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(ParResponse {
            request_uri: pushed.request_uri,
            expires_in: pushed.expires_in,
        }),
    ))
}
