//! `GET/POST /oauth/userinfo` (OpenID Connect Core §5.3). Errors follow RFC 6750.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::service::Credential;
use netapi_core::{Error, Scope};

use crate::dto::NO_STORE;
use crate::dto::oauth::{BearerError, BearerErrorCode, UserInfo};
use crate::error::{ApiError, ServiceErrors};
use crate::extract::Auth;
use crate::state::AppState;

/// An RFC 6750 refusal: the body and the `WWW-Authenticate` challenge say the same.
fn challenge(error: BearerErrorCode, description: &'static str) -> Response {
    let status = match error {
        BearerErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        BearerErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
    };
    let code = error.as_str();
    let mut response = (
        status,
        Json(BearerError {
            error,
            error_description: description,
        }),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "Bearer realm=\"netapi\", error=\"{code}\", error_description=\"{description}\""
    )) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `GET/POST /oauth/userinfo`: the claims the token's scopes allow. Errors follow RFC 6750.
#[utoipa::path(
    method(get, post),
    path = "/oauth/userinfo",
    tag = "oauth",
    operation_id = "userinfo",
    security(("oauth2" = ["openid"])),
    responses(
        (status = 200, description = "The claims the token's scopes allow.", body = UserInfo, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 401, description = "`invalid_token`: no access token, or a bad, expired or revoked one (an API key is not accepted here).", body = BearerError,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"netapi\", error=\"invalid_token\", error_description=\"...\"`"))),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`.", body = BearerError,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"netapi\", error=\"insufficient_scope\", ...`"))),
        ServiceErrors,
    )
)]
pub async fn userinfo(State(state): State<AppState>, auth: Result<Auth, ApiError>) -> Response {
    let principal = match auth {
        Ok(Auth(principal)) if matches!(principal.credential, Credential::AccessToken { .. }) => {
            principal
        }
        // Storage failing while the token is checked is the server's trouble, not the token's.
        Err(err) if err.is_server_failure() => return err.into_response(),
        _ => {
            return challenge(
                BearerErrorCode::InvalidToken,
                "The access token is missing, invalid or expired.",
            );
        }
    };
    if !principal.scopes.contains(Scope::OpenId) {
        return challenge(
            BearerErrorCode::InsufficientScope,
            "The access token lacks the openid scope.",
        );
    }
    match state.api.userinfo(&principal).await {
        Ok(claims) => (NO_STORE, Json(UserInfo::from(claims))).into_response(),
        Err(Error::NotFound(_)) => {
            challenge(BearerErrorCode::InvalidToken, "The user no longer exists.")
        }
        // Storage failing is the server's trouble, not the token's.
        Err(err) => ApiError::from(err).into_response(),
    }
}
