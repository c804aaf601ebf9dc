//! The JSON half of passkeys, called by `/assets/passkeys.js` from the security and sign-in
//! pages: the options for `navigator.credentials.create/get` and the browser's answers. Each
//! carries its page's CSRF token; a ceremony is bound to the session (adding a passkey) or to
//! the sign-in form's CSRF cookie (signing in), and can be finished once.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::error::AuthFailure;
use netapi_core::model::{Amr, User};
use netapi_core::{Error, NetApi};
use serde::Deserialize;
use serde_json::{Value, json};

use super::login::{safe_return_to, sign_in_destination, start_session_response};
use super::session::{
    SECOND_FACTOR_COOKIE, cookie, csrf_cookie_matches, session_origin, signed_in,
    signed_in_recently,
};
use crate::error::{ApiError, Code};
use crate::extract::{ApiJson, ClientIp};
use crate::state::AppState;

/// The browser script of the passkey buttons.
#[utoipa::path(
    get,
    path = "/assets/passkeys.js",
    tag = "browser",
    operation_id = "passkeysScript",
    responses((status = 200, description = "The script behind the passkey buttons.", body = String, content_type = "text/javascript",
        headers(("Cache-Control" = String, description = "`public, max-age=3600`"))))
)]
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../assets/passkeys.js"),
    )
        .into_response()
}

/// What binds a registration to the browser: its session.
fn session_bind(session: &netapi_core::model::Session) -> String {
    session.hash.0.iter().map(|b| format!("{b:02x}")).collect()
}

fn forged() -> ApiError {
    ApiError::new(
        Code::PermissionDenied,
        "The page expired or did not come from this site; reload it and try again.",
    )
}

/// The signed-in user of a passkey request whose CSRF token matches the session.
async fn member(
    api: &NetApi,
    headers: &HeaderMap,
    csrf_token: &str,
) -> Result<(netapi_core::model::Session, User), ApiError> {
    let Some((session, user)) = signed_in(api, headers).await else {
        return Err(ApiError::new(
            Code::Unauthenticated,
            "Sign in first: this needs a browser session.",
        ));
    };
    if !NetApi::csrf_matches(&session, csrf_token) {
        return Err(forged());
    }
    Ok((session, user))
}

/// Adding a passkey needs a recent sign-in ([`super::session::FRESH_SIGN_IN`]): else a stolen
/// session could add its thief's passkey, which outlives a change of password. 401, which
/// the page's script answers by signing in again and coming back.
fn require_recent_sign_in(
    api: &NetApi,
    session: &netapi_core::model::Session,
) -> Result<(), ApiError> {
    if signed_in_recently(api, session) {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::Unauthenticated,
            "Adding a passkey needs a recent sign-in: sign in again, then add it.",
        ))
    }
}

/// A request for ceremony options.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasskeyOptionsRequest {
    /// The page's CSRF token.
    csrf_token: String,
    /// Signing in: `passwordless` or `second_factor` (after a right password).
    #[serde(default)]
    step: Option<String>,
}

/// `POST /portal/security/passkeys/options`: starts adding a passkey.
#[utoipa::path(
    post,
    path = "/portal/security/passkeys/options",
    tag = "browser",
    operation_id = "portalPasskeyOptions",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = PasskeyOptionsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The options for `navigator.credentials.create` (binary fields in base64url).", body = serde_json::Value),
        (status = 401, description = "Not signed in, or not recently enough (15 minutes) to add a passkey.", body = crate::dto::ErrorEnvelope),
        (status = 403, description = "The CSRF token does not match, or passkeys are off (the issuer's host is an IP address).", body = crate::dto::ErrorEnvelope),
        crate::error::BodyErrors,
        crate::error::ServiceErrors,
    )
)]
pub async fn registration_options(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasskeyOptionsRequest>,
) -> Result<Json<Value>, ApiError> {
    let api = &state.api;
    let (session, user) = member(api, &headers, &body.csrf_token).await?;
    require_recent_sign_in(api, &session)?;
    let options = api
        .start_passkey_registration(&user, &session_bind(&session))
        .await?;
    Ok(Json(options))
}

/// A new passkey: the browser's answer to `navigator.credentials.create`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewPasskey {
    /// The page's CSRF token.
    csrf_token: String,
    /// What to call it (1 to 100 printable characters).
    name: String,
    /// The `PublicKeyCredential`, binary fields in base64url.
    #[schema(value_type = Object)]
    credential: Value,
}

/// `POST /portal/security/passkeys`: finishes adding a passkey.
#[utoipa::path(
    post,
    path = "/portal/security/passkeys",
    tag = "browser",
    operation_id = "portalAddPasskey",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = NewPasskey, content_type = "application/json"),
    responses(
        (status = 201, description = "Added: its `id` and `name`.", body = serde_json::Value),
        (status = 401, description = "Not signed in, or not recently enough (15 minutes) to add a passkey.", body = crate::dto::ErrorEnvelope),
        (status = 403, description = "The CSRF token does not match, or passkeys are off.", body = crate::dto::ErrorEnvelope),
        (status = 409, description = "This passkey is registered already.", body = crate::dto::ErrorEnvelope),
        crate::error::BodyErrors,
        crate::error::ServiceErrors,
    )
)]
pub async fn add(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewPasskey>,
) -> Result<Response, ApiError> {
    let api = &state.api;
    let (session, user) = member(api, &headers, &body.csrf_token).await?;
    require_recent_sign_in(api, &session)?;
    let added = api
        .finish_passkey_registration(
            &user,
            &session_bind(&session),
            &body.name,
            &body.credential,
            &ip,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": added.id, "name": added.name })),
    )
        .into_response())
}

/// Which sign-in a request is about, and for whom: the second factor needs the pending
/// sign-in's ticket (bound to the same CSRF token).
async fn sign_in_subject(
    api: &NetApi,
    headers: &HeaderMap,
    csrf_token: &str,
    step: Option<&str>,
) -> Result<Option<User>, ApiError> {
    if !csrf_cookie_matches(headers, csrf_token) {
        return Err(forged());
    }
    match step {
        Some("passwordless") => Ok(None),
        Some("second_factor") => {
            let ticket = cookie(headers, SECOND_FACTOR_COOKIE).unwrap_or_default();
            match api.second_factor_user(&ticket, csrf_token).await? {
                Some(user) => Ok(Some(user)),
                None => Err(ApiError::new(
                    Code::Unauthenticated,
                    "Your sign-in expired. Please sign in again.",
                )),
            }
        }
        _ => Err(ApiError::invalid(
            "step",
            "must be \"passwordless\" or \"second_factor\"",
        )),
    }
}

/// The refusals of a passkey sign-in, as the script shows them.
fn sign_in_error(err: Error) -> ApiError {
    match err {
        Error::Unauthenticated(AuthFailure::Disabled) => ApiError::new(
            Code::Unauthenticated,
            "This account has been disabled by an administrator.",
        ),
        Error::Unauthenticated(_) => ApiError::new(
            Code::Unauthenticated,
            "That passkey was not accepted, or this sign-in expired. Try again.",
        ),
        other => other.into(),
    }
}

/// `POST /login/passkey/options`: starts signing in with a passkey.
#[utoipa::path(
    post,
    path = "/login/passkey/options",
    tag = "browser",
    operation_id = "loginPasskeyOptions",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The sign-in form's CSRF token."), ("netapi_second_factor" = Option<String>, Cookie, description = "The pending sign-in (step `second_factor`).")),
    request_body(content = PasskeyOptionsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The options for `navigator.credentials.get` (binary fields in base64url).", body = serde_json::Value),
        (status = 401, description = "The pending sign-in expired.", body = crate::dto::ErrorEnvelope),
        (status = 403, description = "The CSRF token does not match its cookie, or passkeys are off.", body = crate::dto::ErrorEnvelope),
        (status = 404, description = "The user has no passkey.", body = crate::dto::ErrorEnvelope),
        crate::error::BodyErrors,
        crate::error::ServiceErrors,
    )
)]
pub async fn sign_in_options(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasskeyOptionsRequest>,
) -> Result<Json<Value>, ApiError> {
    let api = &state.api;
    let user = sign_in_subject(api, &headers, &body.csrf_token, body.step.as_deref()).await?;
    let options = api
        .start_passkey_sign_in(user.as_ref(), &body.csrf_token)
        .await?;
    Ok(Json(options))
}

/// A passkey's answer to `navigator.credentials.get`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasskeyAssertion {
    /// The sign-in form's CSRF token.
    csrf_token: String,
    /// `passwordless` or `second_factor`.
    step: String,
    /// A local path to go to after signing in (default `/portal`).
    #[serde(default)]
    return_to: String,
    /// The `PublicKeyCredential`, binary fields in base64url.
    #[schema(value_type = Object)]
    credential: Value,
}

/// `POST /login/passkey`: finishes signing in with a passkey.
#[utoipa::path(
    post,
    path = "/login/passkey",
    tag = "browser",
    operation_id = "loginPasskey",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The sign-in form's CSRF token."), ("netapi_second_factor" = Option<String>, Cookie, description = "The pending sign-in (step `second_factor`).")),
    request_body(content = PasskeyAssertion, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in, with a new `netapi_session` cookie: `{\"location\"}` is where to go next.", body = serde_json::Value),
        (status = 401, description = "The passkey was not accepted (unknown, forged, or its challenge expired or was used), or the pending sign-in expired.", body = crate::dto::ErrorEnvelope),
        (status = 403, description = "The CSRF token does not match its cookie, passkeys are off, or the email address is not verified yet.", body = crate::dto::ErrorEnvelope),
        (status = 429, description = "Too many failed sign-in attempts.", body = crate::dto::ErrorEnvelope),
        crate::error::BodyErrors,
        crate::error::ServiceErrors,
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasskeyAssertion>,
) -> Result<Response, ApiError> {
    let api = &state.api;
    let user = sign_in_subject(api, &headers, &body.csrf_token, Some(&body.step)).await?;
    let (user, amr): (User, Amr) = api
        .finish_passkey_sign_in(user.as_ref(), &body.csrf_token, &body.credential, &ip)
        .await
        .map_err(sign_in_error)?;
    let return_to = safe_return_to(&body.return_to);
    let next = match sign_in_destination(api, &user, return_to).await {
        Ok(next) => next,
        Err(response) => return Ok(response),
    };
    Ok(start_session_response(
        api,
        &headers,
        &user,
        amr,
        &session_origin(&headers, &ip),
        Json(json!({ "location": next })).into_response(),
    )
    .await)
}
