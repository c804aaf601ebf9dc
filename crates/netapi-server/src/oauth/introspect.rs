//! `POST /oauth/introspect` (RFC 7662).

use axum::Json;
use axum::extract::State;

use super::client_auth::ClientForm;
use super::error::{OAuthErrors, OAuthFailure};
use super::revoke::TokenTargetForm;
use crate::dto::oauth::Introspection;
use crate::dto::{NO_STORE, NoStore};
use crate::extract::ClientIp;
use crate::state::AppState;
use netapi_core::service::TokenTarget;

/// `POST /oauth/introspect` (RFC 7662)
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    operation_id = "introspect",
    request_body(content = TokenTargetForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "The token's state (RFC 7662); confidential clients only.", body = Introspection, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        OAuthErrors,
    )
)]
pub async fn introspect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ClientForm(request): ClientForm<TokenTarget>,
) -> Result<(NoStore, Json<Introspection>), OAuthFailure> {
    let basic = request.client.is_basic();
    let answer = state
        .api
        .introspect(&request, &ip)
        .await
        .map_err(|error| OAuthFailure { error, basic })?;
    Ok((NO_STORE, Json(answer.into())))
}
