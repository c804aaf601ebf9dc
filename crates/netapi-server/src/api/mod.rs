//! The `/v1` API, one module per resource; the file is named after the path's first segment
//! after `/v1/` (`/v1/keys/verify` is `verify.rs`, `/v1/register` is in `users.rs`, a user's
//! grants of resources' scopes, `/v1/users/{id}/grants`, in `resources.rs`, `/v1/api-keys/{id}/usage` in `usage.rs`, the emailed links' `/v1/password-reset`,
//! `/v1/verify-email` and `/v1/email-verification` in `email.rs`). Each
//! handler carries its `#[utoipa::path]`, and [`routes`] registers route and documentation in
//! one call.

mod api_keys;
mod audit;
mod email;
mod invitations;
mod oauth_clients;
mod pagination;
mod registration_tokens;
mod resources;
mod usage;
mod users;
mod verify;
mod webhooks;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// An optional RFC 3339 date-time field as seconds since the epoch; a malformed one is
/// `INVALID_ARGUMENT` naming `field`.
fn rfc3339_field(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value
        .map(|t| {
            netapi_core::clock::parse_rfc3339(t)
                .ok_or_else(|| ApiError::invalid(field, "must be an RFC 3339 date-time"))
        })
        .transpose()
}

/// Every `/v1` route with its documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(users::register))
        .routes(routes!(email::request_password_reset))
        .routes(routes!(email::confirm_password_reset))
        .routes(routes!(email::verify_email))
        .routes(routes!(email::request_email_verification))
        .routes(routes!(users::list_users))
        .routes(routes!(users::me, users::update_me, users::delete_me))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(api_keys::list_keys, api_keys::create_key))
        .routes(routes!(api_keys::get_key, api_keys::revoke_key))
        .routes(routes!(api_keys::rotate_key))
        .routes(routes!(usage::key_usage))
        .routes(routes!(verify::verify_key))
        .routes(routes!(
            oauth_clients::list_clients,
            oauth_clients::create_client
        ))
        .routes(routes!(
            oauth_clients::get_client,
            oauth_clients::update_client,
            oauth_clients::delete_client
        ))
        .routes(routes!(oauth_clients::rotate_client_secret))
        .routes(routes!(audit::list_events))
        .routes(routes!(
            resources::list_resources,
            resources::create_resource
        ))
        .routes(routes!(
            resources::get_resource,
            resources::update_resource,
            resources::delete_resource
        ))
        .routes(routes!(resources::list_grants, resources::set_grant))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(webhooks::get_webhook, webhooks::delete_webhook))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(
            invitations::list_invitations,
            invitations::create_invitation
        ))
        .routes(routes!(invitations::delete_invitation))
        .routes(routes!(registration_tokens::create_registration_token))
        .routes(routes!(registration_tokens::delete_registration_token))
}
