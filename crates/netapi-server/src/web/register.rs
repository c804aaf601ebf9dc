//! Creating an account from the browser.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use netapi_core::model::Amr;
use netapi_core::secret::{Secret, random_base62};
use netapi_core::service::NewUser;
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
}

/// `GET /register`
#[utoipa::path(
    get,
    path = "/register",
    tag = "browser",
    operation_id = "registerForm",
    responses((status = 200, description = "The registration page; sets the `netapi_login_csrf` cookie.", body = String, content_type = "text/html"))
)]
pub async fn register_form(State(state): State<AppState>) -> Response {
    register_page(&state.api, None, StatusCode::OK)
}

/// The registration page, with a new CSRF token in its form and cookie.
fn register_page(api: &NetApi, message: Option<&str>, status: StatusCode) -> Response {
    let csrf = random_base62(32);
    let mut response = render(
        status,
        &RegisterPage {
            chrome: Chrome::anonymous("Create your account"),
            message,
            csrf: &csrf,
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
        (status = 403, description = "The registration page again: the form expired.", body = String, content_type = "text/html"),
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
    if !csrf_cookie_matches(&headers, &form.csrf_token) {
        return register_page(
            api,
            Some("Your form expired. Please try again."),
            StatusCode::FORBIDDEN,
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
            },
            Some(&ip),
        )
        .await;
    let (user, key, secret) = match registered {
        Ok(done) => done,
        Err(Error::InvalidArgument { message, field }) => {
            let text = format!("{} {message}.", field.unwrap_or_default());
            return register_page(api, Some(text.trim()), StatusCode::BAD_REQUEST);
        }
        Err(Error::AlreadyExists(message)) => {
            return register_page(api, Some(&message), StatusCode::CONFLICT);
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
