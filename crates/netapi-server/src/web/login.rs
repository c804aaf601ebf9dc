//! Signing in and out.

use askama::Template;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::model::User;
use netapi_core::secret::{Secret, random_base62};
use netapi_core::{Error, NetApi};
use serde::Deserialize;

use super::error::PageError;
use super::page::{Chrome, render};
use super::session::{
    LOGIN_CSRF_COOKIE, SESSION_COOKIE, cookie, csrf_cookie_matches, current_session, set_cookie,
    set_session_cookies,
};
use crate::extract::ClientIp;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    chrome: Chrome<'static>,
    message: Option<&'a str>,
    csrf: &'a str,
    return_to: &'a str,
}

/// Only local paths may be returned to after login: no open redirect. Browsers drop tabs and
/// newlines anywhere in a URL (so `/<TAB>/evil.example` is `//evil.example`) and read `\` as
/// `/`; control characters are refused altogether.
fn safe_return_to(path: &str) -> &str {
    if path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
    {
        path
    } else {
        "/portal"
    }
}

/// The sign-in page, with a new CSRF token in its form and cookie.
pub(super) fn login_page(
    api: &NetApi,
    return_to: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = random_base62(32);
    let mut response = render(
        status,
        &LoginPage {
            chrome: Chrome::anonymous("Sign in"),
            message,
            csrf: &csrf,
            return_to,
        },
    );
    set_cookie(&mut response, api, LOGIN_CSRF_COOKIE, &csrf, 3600);
    response
}

/// `GET /login`
#[utoipa::path(
    get,
    path = "/login",
    tag = "browser",
    operation_id = "loginForm",
    params(("return_to" = Option<String>, Query, description = "A local path to go to after signing in (default `/portal`).")),
    responses((status = 200, description = "The sign-in page; sets the `netapi_login_csrf` cookie.", body = String, content_type = "text/html"))
)]
pub async fn login_form(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let return_to = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "return_to")
        .last()
        .map(|(_, value)| value.into_owned());
    let return_to = return_to.as_deref().map_or("/portal", safe_return_to);
    login_page(&state.api, return_to, None, StatusCode::OK)
}

/// The login form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    email: String,
    #[schema(value_type = String)]
    password: Secret,
    csrf_token: String,
    #[serde(default)]
    return_to: String,
}

/// `POST /login`: checks the password, rotates the session, returns to where the user was.
#[utoipa::path(
    post,
    path = "/login",
    tag = "browser",
    operation_id = "login",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The sign-in form's CSRF token, set with the form."), ("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: on to `return_to`, with a new `netapi_session` cookie.",
            headers(("Location" = String, description = "`return_to`, a local path."))),
        (status = 401, description = "The sign-in page again: wrong email or password.", body = String, content_type = "text/html"),
        (status = 403, description = "The sign-in page again: the form expired (CSRF token and cookie differ).", body = String, content_type = "text/html"),
        super::error::PageErrors,
        super::error::FormErrors,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let return_to = safe_return_to(&form.return_to).to_owned();
    if !csrf_cookie_matches(&headers, &form.csrf_token) {
        return login_page(
            &state.api,
            &return_to,
            Some("Your sign-in form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let user = match state.api.login(&form.email, &form.password, &ip).await {
        Ok(user) => user,
        Err(Error::RateLimited { retry_after }) => {
            let mut response = login_page(
                &state.api,
                &return_to,
                Some(&format!(
                    "Too many failed sign-in attempts. Try again in {retry_after} seconds."
                )),
                StatusCode::TOO_MANY_REQUESTS,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            return response;
        }
        Err(Error::Unauthenticated(netapi_core::error::AuthFailure::Disabled)) => {
            return login_page(
                &state.api,
                &return_to,
                Some("This account has been disabled by an administrator."),
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(Error::Unauthenticated(_)) => {
            return login_page(
                &state.api,
                &return_to,
                Some("Invalid email or password."),
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(err) => return PageError::Core(err).into_response(),
    };
    start_session_response(
        &state.api,
        &headers,
        &user,
        Redirect::to(&return_to).into_response(),
    )
    .await
}

/// Ends the browser's previous session (no fixation) and starts a new one.
async fn start_session_response(
    api: &NetApi,
    headers: &HeaderMap,
    user: &User,
    mut response: Response,
) -> Response {
    if let Some(old) = cookie(headers, SESSION_COOKIE)
        && let Err(err) = api.end_session(&old).await
    {
        tracing::warn!(error = %err, "could not end the previous session");
    }
    let (secret, _) = match api.start_session(user).await {
        Ok(started) => started,
        Err(err) => return PageError::Core(err).into_response(),
    };
    set_session_cookies(&mut response, api, secret.expose());
    response
}

/// A form that carries only its CSRF token (sign-out, and the portal's buttons).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CsrfForm {
    pub(super) csrf_token: String,
}

/// `POST /logout`
#[utoipa::path(
    post,
    path = "/logout",
    tag = "browser",
    operation_id = "logout",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out (or not signed in): on to the sign-in page.",
            headers(("Location" = String, description = "`/login`"))),
        (status = 403, description = "An error page: the CSRF token does not match the session.", body = String, content_type = "text/html"),
        super::error::PageErrors,
        super::error::FormErrors,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some((session, _)) = current_session(&state.api, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    if !NetApi::csrf_matches(&session, &form.csrf_token) {
        return PageError::Forged("The form expired; go back and try again.").into_response();
    }
    if let Some(value) = cookie(&headers, SESSION_COOKIE)
        && let Err(err) = state.api.end_session(&value).await
    {
        return PageError::Core(err).into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    set_cookie(&mut response, &state.api, SESSION_COOKIE, "", 0);
    response
}
