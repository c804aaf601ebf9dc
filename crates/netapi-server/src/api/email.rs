//! Email links over the API: `/v1/password-reset`, `/v1/password-reset/confirm`,
//! `/v1/email-verification` and `/v1/verify-email`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use netapi_core::secret::Secret;
use serde::Deserialize;

use crate::dto::{NO_STORE, NoStore, UserView, fields};
use crate::error::{
    ApiResult, AuthErrors, BodyErrors, ConflictErrors, ServiceErrors, SourceLimitErrors,
};
use crate::extract::{ApiJson, Auth, ClientIp};
use crate::state::AppState;

/// `POST /v1/password-reset`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetBody {
    #[schema(schema_with = fields::email)]
    email: String,
}

/// Mails a password-reset link (valid 30 minutes, single use) when the address names an
/// account. The answer is the same whatever the address; past the per-recipient or
/// per-source limit nothing is sent, with the same answer. 503 when email is not set up.
#[utoipa::path(
    post,
    path = "/v1/password-reset",
    tag = "users",
    operation_id = "requestPasswordReset",
    request_body = PasswordResetBody,
    responses(
        (status = 202, description = "Accepted: a link is on its way if the address has an account."),
        BodyErrors,
        ServiceErrors,
    )
)]
pub async fn request_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<PasswordResetBody>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    state.api.request_password_reset(&body.email, &ip).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({}))))
}

/// `POST /v1/password-reset/confirm`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirmBody {
    #[schema(schema_with = fields::email_link)]
    token: Secret,
    #[schema(schema_with = fields::password)]
    password: Secret,
}

/// Sets a new password with the token of a reset link. The token works once; every browser
/// session and refresh-token family of the user ends. It signs nobody in.
#[utoipa::path(
    post,
    path = "/v1/password-reset/confirm",
    tag = "users",
    operation_id = "confirmPasswordReset",
    request_body = PasswordResetConfirmBody,
    responses(
        (status = 204, description = "The password is changed."),
        BodyErrors,
        SourceLimitErrors,
        ServiceErrors,
    )
)]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<PasswordResetConfirmBody>,
) -> ApiResult<(StatusCode, NoStore)> {
    state
        .api
        .reset_password(body.token.expose(), &body.password, Some(&ip))
        .await?;
    Ok((StatusCode::NO_CONTENT, NO_STORE))
}

/// `POST /v1/verify-email`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailBody {
    #[schema(schema_with = fields::email_link)]
    token: Secret,
}

/// Verifies an address with the token of a verification link (single use).
#[utoipa::path(
    post,
    path = "/v1/verify-email",
    tag = "users",
    operation_id = "verifyEmail",
    request_body = VerifyEmailBody,
    responses(
        (status = 200, description = "The user, its address now verified.", body = UserView),
        BodyErrors,
        SourceLimitErrors,
        ServiceErrors,
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<VerifyEmailBody>,
) -> ApiResult<(NoStore, Json<UserView>)> {
    let user = state
        .api
        .verify_email(body.token.expose(), Some(&ip))
        .await?;
    Ok((NO_STORE, Json(user.into())))
}

/// Mails a new verification link to the caller's address. 409 when it is verified already,
/// 503 when email is not set up; past the per-recipient or per-source limit nothing is sent.
#[utoipa::path(
    post,
    path = "/v1/email-verification",
    tag = "users",
    operation_id = "requestEmailVerification",
    security(("bearer" = ["users:write"]), ("oauth2" = ["users:write"])),
    responses(
        (status = 202, description = "Accepted: a link is on its way."),
        ConflictErrors,
        AuthErrors,
    )
)]
pub async fn request_email_verification(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    state
        .api
        .request_email_verification(&caller, Some(&ip))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({}))))
}
