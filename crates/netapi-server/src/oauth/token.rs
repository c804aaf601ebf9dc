//! `POST /oauth/token` (RFC 6749 §3.2).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::client_auth::ClientForm;
use super::error::{OAuthErrors, OAuthFailure};
use crate::dto::oauth::TokenResponse;
use crate::dto::{NO_STORE, fields};
use crate::extract::{ClientIp, dpop_proof};
use crate::state::AppState;
use netapi_core::service::TokenGrant;

/// `POST /oauth/token` (`application/x-www-form-urlencoded`; every parameter at most once).
/// A confidential client authenticates with HTTP Basic or with `client_id` and
/// `client_secret` here; a public client sends only `client_id`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Core parses the form (`TokenGrant`); this states it for the document.
pub(crate) struct TokenForm {
    #[schema(schema_with = fields::grant_type)]
    grant_type: String,
    /// `authorization_code`: the code from the redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    code: Option<String>,
    /// `authorization_code`: the `redirect_uri` of the authorization request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    refresh_token: Option<String>,
    /// `urn:ietf:params:oauth:grant-type:device_code`: the device code (RFC 8628 §3.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    device_code: Option<String>,
    /// Space-separated scopes (`client_credentials`, `refresh_token`, token exchange: a
    /// narrower set).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    scope: Option<String>,
    /// The identifier of the resource the access token is for (RFC 8707); default: Net API's
    /// own. One per request; one the client does not list, or no live resource has, is
    /// `invalid_target`. With `authorization_code`, `refresh_token` and the device grant,
    /// the granted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 255)]
    resource: Option<String>,
    /// Token exchange (RFC 8693): the access token of the user the new token is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 8192)]
    subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token` (the only type).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    subject_token_type: Option<String>,
    /// Token exchange, optional: an access token issued to the exchanging client itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 8192)]
    actor_token: Option<String>,
    /// Token exchange, with `actor_token` only: `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    actor_token_type: Option<String>,
    /// Token exchange, optional: `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    requested_token_type: Option<String>,
    /// Token exchange: the target's identifier, as `resource` (the same value if both are
    /// sent). Default: the subject token's own audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 255)]
    audience: Option<String>,
    /// `client_secret_post` and public clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `client_secret_post`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_secret: Option<String>,
    /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_assertion_type: Option<String>,
    /// `private_key_jwt`: a JWT signed with one of the client's keys (RFC 7523 §2.2):
    /// `iss` and `sub` the client id, `aud` the issuer or this endpoint's URL, `exp` at most
    /// 5 minutes ahead, a `jti` used once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_assertion: Option<String>,
}

/// `POST /oauth/token`
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    operation_id = "token",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    params(
        ("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449): a JWT of `typ` `dpop+jwt` signed (ES256, EdDSA or RS256) with the key in its `jwk` header, with `htm` `POST`, `htu` this endpoint's URL, `iat` and a unique `jti` (and the server's `nonce` when `require_dpop_nonce` is on). The access token is then bound to that key (`token_type: DPoP`, `cnf.jkt`), and so is a public client's refresh token."),
    ),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "Tokens (RFC 6749 §5.1).", body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"), ("DPoP-Nonce" = String, description = "With a DPoP proof, when `require_dpop_nonce` is on: the nonce for the next proof."))),
        OAuthErrors,
    )
)]
pub async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ClientForm(request): ClientForm<TokenGrant>,
) -> Result<Response, OAuthFailure> {
    let basic = request.client.is_basic();
    let proof = dpop_proof(&headers);
    let with_proof = proof.is_some();
    let response = state
        .api
        .token_with_proof(&request, proof, &ip)
        .await
        .map_err(|error| OAuthFailure { error, basic })?;
    let mut response = (NO_STORE, Json(TokenResponse::from(response))).into_response();
    if with_proof
        && let Some(nonce) = state
            .api
            .dpop_nonce()
            .and_then(|n| HeaderValue::from_str(&n).ok())
    {
        response
            .headers_mut()
            .insert(super::error::DPOP_NONCE, nonce);
    }
    Ok(response)
}
