//! Creating an account from the browser.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use netapi_core::model::Amr;
use netapi_core::secret::{Secret, random_base62};
use netapi_core::service::{NewUser, RegistrationPolicy};
use netapi_core::{Error, NetApi, Role};
use serde::Deserialize;

use super::error::PageError;
use super::page::{Chrome, render};
use super::portal::{Flash, portal_page};
use super::session::{
    LOGIN_CSRF_COOKIE, csrf_cookie_matches, session_origin, set_cookie, set_session_cookies,
};
use crate::extract::ClientIp;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    chrome: Chrome<'static>,
    message: Option<&'a str>,
    csrf: &'a str,
    /// Whether the form is shown (not when registration is closed, or by invitation only
    /// and none is given).
    open: bool,
    /// The invitation token carried to the form (empty: none).
    invitation: &'a str,
}

/// `GET /register?invitation=...`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegisterQuery {
    /// An invitation's token, from the link an administrator sent.
    invitation: Option<String>,
}

/// The longest invitation token carried to the form (longer ones are not tokens).
const MAX_INVITATION_LEN: usize = 128;

/// `GET /register`
#[utoipa::path(
    get,
    path = "/register",
    tag = "browser",
    operation_id = "registerForm",
    params(RegisterQuery),
    responses((status = 200, description = "The registration page; sets the `netapi_login_csrf` cookie. Says so instead of showing the form when registration is closed, or by invitation only and the link carries none.", body = String, content_type = "text/html"))
)]
pub async fn register_form(
    State(state): State<AppState>,
    Query(query): Query<RegisterQuery>,
) -> Response {
    let invitation = query
        .invitation
        .filter(|token| token.len() <= MAX_INVITATION_LEN)
        .unwrap_or_default();
    register_page(&state.api, None, StatusCode::OK, &invitation)
}

/// The registration page, with a new CSRF token in its form and cookie.
fn register_page(
    api: &NetApi,
    message: Option<&str>,
    status: StatusCode,
    invitation: &str,
) -> Response {
    let csrf = random_base62(32);
    let (open, notice) = match api.registration_policy() {
        RegistrationPolicy::Open => (true, None),
        RegistrationPolicy::Invite if !invitation.is_empty() => (true, None),
        RegistrationPolicy::Invite => (
            false,
            Some("Registration is by invitation only: open the link in your invitation."),
        ),
        RegistrationPolicy::Closed => (false, Some("Registration is closed on this server.")),
    };
    let mut response = render(
        status,
        &RegisterPage {
            chrome: Chrome::anonymous("Create your account"),
            message: message.or(notice),
            csrf: &csrf,
            open,
            invitation,
        },
    );
    set_cookie(&mut response, api, LOGIN_CSRF_COOKIE, &csrf, 3600);
    response
}

/// The registration form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterForm {
    csrf_token: String,
    #[schema(schema_with = crate::dto::fields::name)]
    name: String,
    #[schema(schema_with = crate::dto::fields::email)]
    email: String,
    #[schema(schema_with = crate::dto::fields::password)]
    password: Secret,
    /// The invitation's token, when the page was opened from an invitation's link.
    #[schema(schema_with = crate::dto::fields::invitation_token_nullable)]
    invitation: Option<Secret>,
}

/// `POST /register`: creates the account, signs in, shows the first key once.
#[utoipa::path(
    post,
    path = "/register",
    tag = "browser",
    operation_id = "registerPage",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The sign-in form's CSRF token, set with the form."), ("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = RegisterForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal, signed in, showing the first API key once.", body = String, content_type = "text/html"),
        (status = 403, description = "The registration page again: the form expired, or registration is refused (closed, by invitation only, a domain not allowed, an invitation for another email).", body = String, content_type = "text/html"),
        (status = 409, description = "The registration page again: the email is taken.", body = String, content_type = "text/html"),
        super::error::PageErrors,
        super::error::FormErrors,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Response {
    let api = &state.api;
    let invitation = form
        .invitation
        .as_ref()
        .map(|token| token.expose().to_owned())
        .filter(|token| !token.is_empty() && token.len() <= MAX_INVITATION_LEN)
        .unwrap_or_default();
    if !csrf_cookie_matches(&headers, &form.csrf_token) {
        return register_page(
            api,
            Some("Your form expired. Please try again."),
            StatusCode::FORBIDDEN,
            &invitation,
        );
    }
    let registered = api
        .register(
            NewUser {
                email: form.email,
                password: form.password,
                name: form.name,
                role: Role::Member,
                email_verified: false,
                invitation: (!invitation.is_empty()).then(|| Secret::new(invitation.clone())),
            },
            Some(&ip),
        )
        .await;
    let (user, key, secret) = match registered {
        Ok(done) => done,
        Err(Error::InvalidArgument { message, field }) => {
            let text = format!("{} {message}.", field.unwrap_or_default());
            return register_page(api, Some(text.trim()), StatusCode::BAD_REQUEST, &invitation);
        }
        Err(Error::PermissionDenied { message, .. }) => {
            return register_page(api, Some(&message), StatusCode::FORBIDDEN, &invitation);
        }
        Err(Error::AlreadyExists(message)) => {
            return register_page(api, Some(&message), StatusCode::CONFLICT, &invitation);
        }
        Err(err) => return PageError::Core(err).into_response(),
    };
    let (session_secret, session) = match api
        .start_session(&user, Amr::Password, &session_origin(&headers, &ip))
        .await
    {
        Ok(started) => started,
        Err(err) => return PageError::Core(err).into_response(),
    };
    let flash = Flash::Secret {
        title: format!("Welcome! Your first API key, \"{}\"", key.name),
        value: secret.expose().to_owned(),
    };
    let mut response = portal_page(api, &user, &session, Some(flash)).await;
    set_session_cookies(&mut response, api, session_secret.expose());
    response
}
