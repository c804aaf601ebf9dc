//! `POST /oauth/device_authorization` (RFC 8628 §3.1, §3.2).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::client_auth::ClientForm;
use super::error::{OAuthErrors, OAuthFailure};
use crate::dto::{NO_STORE, NoStore};
use crate::extract::ClientIp;
use crate::state::AppState;
use netapi_core::service::DeviceAuthorizationParams;

/// `POST /oauth/device_authorization` (`application/x-www-form-urlencoded`; every parameter
/// at most once). The client authenticates as at the token endpoint (a public client sends
/// only `client_id`) and must be registered for the grant type
/// `urn:ietf:params:oauth:grant-type:device_code`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Core parses the form (`DeviceAuthorizationParams`); this states it for the document.
pub(crate) struct DeviceAuthorizationForm {
    /// Space-separated scopes, within the client's (of the resource, when `resource` is
    /// given); default: every scope the client may use. Otherwise `invalid_scope`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    scope: Option<String>,
    /// The identifier of the resource the tokens are to be for (RFC 8707); default: Net
    /// API's own. One the client does not list, or no live resource has, is `invalid_target`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 255)]
    resource: Option<String>,
    /// `client_secret_post` and public clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `client_secret_post`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

/// A device authorization response (RFC 8628 §3.2).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceAuthorizationResponse {
    /// The device's secret: poll the token endpoint with it (grant type
    /// `urn:ietf:params:oauth:grant-type:device_code`).
    #[schema(pattern = "^napdc_[0-9A-Za-z]{38}$")]
    device_code: String,
    /// What the person types at `verification_uri`: 8 letters of `BCDFGHJKLMNPQRSTVWXZ`,
    /// shown as `XXXX-XXXX`; typed in any case, with or without the dash.
    #[schema(pattern = "^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")]
    user_code: String,
    /// `<issuer>/device`.
    verification_uri: String,
    /// `<issuer>/device?user_code=XXXX-XXXX` (for a QR code or a link).
    verification_uri_complete: String,
    /// Seconds until both codes expire (600).
    expires_in: i64,
    /// Seconds to wait between polls (5).
    interval: i64,
}

/// `POST /oauth/device_authorization`
#[utoipa::path(
    post,
    path = "/oauth/device_authorization",
    tag = "oauth",
    operation_id = "deviceAuthorization",
    request_body(content = DeviceAuthorizationForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "A device code and a user code (RFC 8628 §3.2).", body = DeviceAuthorizationResponse, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        OAuthErrors,
    )
)]
pub async fn device_authorization(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ClientForm(request): ClientForm<DeviceAuthorizationParams>,
) -> Result<(NoStore, Json<DeviceAuthorizationResponse>), OAuthFailure> {
    let basic = request.client.is_basic();
    let grant = state
        .api
        .device_authorization(&request, &ip)
        .await
        .map_err(|error| OAuthFailure { error, basic })?;
    Ok((
        NO_STORE,
        Json(DeviceAuthorizationResponse {
            device_code: grant.device_code.expose().to_owned(),
            user_code: grant.user_code,
            verification_uri: grant.verification_uri,
            verification_uri_complete: grant.verification_uri_complete,
            expires_in: grant.expires_in,
            interval: grant.interval,
        }),
    ))
}
