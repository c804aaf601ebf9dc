//! `POST /oauth/revoke` (RFC 7009).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::client_auth::ClientForm;
use super::error::{OAuthErrors, OAuthFailure};
use crate::dto::oauth::RevocationResponse;
use crate::dto::{NO_STORE, NoStore};
use crate::extract::ClientIp;
use crate::state::AppState;
use netapi_core::service::TokenTarget;

/// `POST /oauth/revoke` and `POST /oauth/introspect` (`application/x-www-form-urlencoded`;
/// every parameter at most once). The client authenticates as at the token endpoint.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Core parses the form (`TokenTarget`); this states it for the document.
pub(crate) struct TokenTargetForm {
    /// The access or refresh token.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`; a hint only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    token_type_hint: Option<String>,
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

/// `POST /oauth/revoke` (RFC 7009): 200 with `{}` whether or not the token was known.
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    operation_id = "revoke",
    request_body(content = TokenTargetForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "Revoked, or unknown: the answer is the same (RFC 7009). Revoking a refresh token revokes its family.", body = RevocationResponse, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        OAuthErrors,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ClientForm(request): ClientForm<TokenTarget>,
) -> Result<(NoStore, Json<RevocationResponse>), OAuthFailure> {
    let basic = request.client.is_basic();
    state
        .api
        .revoke_token(&request, &ip)
        .await
        .map_err(|error| OAuthFailure { error, basic })?;
    Ok((NO_STORE, Json(RevocationResponse {})))
}
