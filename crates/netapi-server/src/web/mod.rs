//! Server-rendered pages: login, consent, registration, the developer portal and the admin
//! console. They work without JavaScript and load nothing from elsewhere. Every form carries
//! a CSRF token.
//!
//! Each page is an askama template in `crates/netapi-server/templates/` (escaping on by
//! default) extending `base.html`; the handlers are in the module named after the page.

mod admin;
mod consent;
mod device;
mod email;
mod error;
mod flash;
mod login;
mod logout;
mod page;
mod passkeys;
mod portal;
mod register;
mod resources;
mod security;
mod session;
mod usage_chart;
mod webhooks;

pub(crate) use error::{page_response, page_words, reason_words};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Whether the request carries the portal's session cookie (valid or not: it is not looked
/// up).
pub(crate) fn has_session_cookie(headers: &axum::http::HeaderMap) -> bool {
    session::cookie(headers, session::SESSION_COOKIE).is_some()
}

/// The stylesheet; served from here so pages load nothing from elsewhere.
#[utoipa::path(
    get,
    path = "/assets/style.css",
    tag = "browser",
    operation_id = "stylesheet",
    responses((status = 200, description = "The pages' stylesheet.", body = String, content_type = "text/css",
        headers(("Cache-Control" = String, description = "`public, max-age=3600`"))))
)]
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../assets/style.css"),
    )
        .into_response()
}

/// The favicon: none.
#[utoipa::path(
    get,
    path = "/favicon.ico",
    tag = "browser",
    operation_id = "favicon",
    responses((status = 204, description = "There is no favicon."))
)]
pub async fn favicon() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `GET /`
#[utoipa::path(
    get,
    path = "/",
    tag = "browser",
    operation_id = "home",
    responses((status = 303, description = "To the portal.", headers(("Location" = String, description = "`/portal`"))))
)]
pub async fn home() -> Redirect {
    Redirect::to("/portal")
}

/// Every page route (and `/oauth/authorize`, which is pages), with its documentation: one
/// route per portal action.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(home))
        .routes(routes!(stylesheet))
        .routes(routes!(passkeys::script))
        .routes(routes!(favicon))
        .routes(routes!(consent::authorize, consent::decide))
        .routes(routes!(device::device_form, device::device_decide))
        .routes(routes!(login::login_form, login::login))
        .routes(routes!(login::login_code))
        .routes(routes!(login::logout))
        .routes(routes!(logout::end_session, logout::end_session_post))
        .routes(routes!(email::forgot_form, email::forgot))
        .routes(routes!(email::reset_form, email::reset))
        .routes(routes!(email::verify))
        .routes(routes!(email::resend))
        .routes(routes!(register::register_form, register::register))
        .routes(routes!(portal::portal))
        .routes(routes!(portal::create_key))
        .routes(routes!(portal::confirm_rotate_key, portal::rotate_key))
        .routes(routes!(portal::confirm_revoke_key, portal::revoke_key))
        .routes(routes!(portal::key_usage))
        .routes(routes!(portal::create_client))
        .routes(routes!(
            portal::confirm_rotate_client_secret,
            portal::rotate_client_secret
        ))
        .routes(routes!(
            portal::confirm_delete_client,
            portal::delete_client
        ))
        .routes(routes!(portal::set_redirect_uris))
        .routes(routes!(portal::set_client_settings))
        .routes(routes!(portal::withdraw_authorization))
        .routes(routes!(portal::resend_verification))
        .routes(routes!(resources::resources, resources::create_resource))
        .routes(routes!(resources::edit_resource))
        .routes(routes!(resources::delete_resource))
        .routes(routes!(resources::set_grant))
        .routes(routes!(webhooks::webhooks, webhooks::create_webhook))
        .routes(routes!(webhooks::delete_webhook))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(security::security))
        .routes(routes!(security::mfa))
        .routes(routes!(security::start_totp))
        .routes(routes!(security::confirm_totp))
        .routes(routes!(security::regenerate_recovery_codes))
        .routes(routes!(security::disable_totp))
        .routes(routes!(security::end_session))
        .routes(routes!(security::end_other_sessions))
        .routes(routes!(admin::users))
        .routes(routes!(admin::user))
        .routes(routes!(admin::set_role))
        .routes(routes!(admin::set_disabled))
        .routes(routes!(admin::send_password_reset))
        .routes(routes!(admin::confirm_delete_user, admin::delete_user))
        .routes(routes!(admin::confirm_revoke_key, admin::revoke_key))
        .routes(routes!(admin::confirm_delete_client, admin::delete_client))
        .routes(routes!(admin::invitations, admin::create_invitation))
        .routes(routes!(admin::delete_invitation))
        .routes(routes!(admin::audit))
        .routes(routes!(passkeys::registration_options))
        .routes(routes!(passkeys::add))
        .routes(routes!(security::remove_passkey))
        .routes(routes!(passkeys::sign_in_options))
        .routes(routes!(passkeys::sign_in))
}
