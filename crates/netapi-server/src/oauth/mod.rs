//! The OAuth 2.0 and OpenID Connect endpoints, one module per path (`/oauth/authorize`, which
//! renders pages, is `web/consent.rs`). Their errors use RFC 6749 §5.2's shape
//! ([`error::OAuthFailure`]), not the `/v1` envelope.

mod client_auth;
mod device;
mod discovery;
mod error;
mod introspect;
mod jwks;
mod par;
mod register;
mod revoke;
mod token;
mod userinfo;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Every OAuth route but `/oauth/authorize`, with its documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token::token))
        .routes(routes!(device::device_authorization))
        .routes(routes!(par::par))
        .routes(routes!(revoke::revoke))
        .routes(routes!(introspect::introspect))
        .routes(routes!(jwks::jwks))
        .routes(routes!(userinfo::userinfo))
        .routes(routes!(discovery::authorization_server_metadata))
        .routes(routes!(discovery::openid_configuration))
        .routes(routes!(register::register))
        .routes(routes!(register::read, register::update, register::delete))
}
