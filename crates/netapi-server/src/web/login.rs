//! Signing in and out.

use askama::Template;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::model::{Amr, User};
use netapi_core::secret::{Secret, random_base62};
use netapi_core::service::SECOND_FACTOR_TTL;
use netapi_core::{Error, NetApi};
use serde::Deserialize;

use super::error::PageError;
use super::page::{Chrome, render};
use super::session::{
    LOGIN_CSRF_COOKIE, SECOND_FACTOR_COOKIE, SESSION_COOKIE, cookie, csrf_cookie_matches,
    session_origin, set_cookie, set_session_cookies, signed_in,
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
    /// After a right password for an unverified address (`require_verified_email`): the
    /// address, for the button that mails the link again.
    resend_email: Option<&'a str>,
    /// The "Sign in with a passkey" button (off when the issuer's host is an IP address).
    passkeys: bool,
}

#[derive(Template)]
#[template(path = "login_code.html")]
struct CodePage<'a> {
    chrome: Chrome<'static>,
    message: Option<&'a str>,
    csrf: &'a str,
    return_to: &'a str,
    factors: SecondFactors,
}

/// Which second factors the code step offers.
#[derive(Clone, Copy)]
struct SecondFactors {
    /// A code from the authenticator app (or a recovery code).
    totp: bool,
    /// A passkey (only while passkeys are on).
    passkey: bool,
}

impl SecondFactors {
    async fn of(api: &NetApi, user: &User) -> Result<Self, Error> {
        Ok(Self {
            totp: api.has_totp(&user.id).await?,
            passkey: api.passkeys_enabled() && !api.list_passkeys(&user.id).await?.is_empty(),
        })
    }
}

/// The second step of signing in: a code from the authenticator or a recovery code, or a
/// passkey. The form keeps the sign-in form's CSRF token (the ticket is bound to its cookie).
fn code_page(
    csrf: &str,
    return_to: &str,
    factors: SecondFactors,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    render(
        status,
        &CodePage {
            chrome: Chrome::anonymous("Sign in"),
            message,
            csrf,
            return_to,
            factors,
        },
    )
}

/// Only local paths may be returned to after login: no open redirect. Browsers drop tabs and
/// newlines anywhere in a URL (so `/<TAB>/evil.example` is `//evil.example`) and read `\` as
/// `/`; control characters are refused altogether.
pub(super) fn safe_return_to(path: &str) -> &str {
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
    login_page_with(api, return_to, message, None, status)
}

fn login_page_with(
    api: &NetApi,
    return_to: &str,
    message: Option<&str>,
    resend_email: Option<&str>,
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
            resend_email,
            passkeys: api.passkeys_enabled(),
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
    params(
        ("return_to" = Option<String>, Query, description = "A local path to go to after signing in (default `/portal`)."),
        ("reauth" = Option<String>, Query, description = "Present when a change that needs a recent sign-in sent the person here: the page says so."),
    ),
    responses((status = 200, description = "The sign-in page; sets the `netapi_login_csrf` cookie.", body = String, content_type = "text/html"))
)]
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let return_to = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "return_to")
        .last()
        .map(|(_, value)| value.into_owned());
    let return_to = return_to.as_deref().map_or("/portal", safe_return_to);
    let reauth = url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "reauth");
    // Signed in, but a second factor must be set up first: to the security page.
    if let Some((_, user)) = signed_in(&state.api, &headers).await
        && state.api.mfa_enrolment_due(&user).await.unwrap_or(false)
    {
        return Redirect::to(&enrolment_url(return_to)).into_response();
    }
    // Sent back by a change that needs a recent sign-in (the admin console's).
    let message = reauth.then_some(
        "Sign in again to confirm: this change needs a recent sign-in. Nothing was changed yet.",
    );
    login_page(&state.api, return_to, message, StatusCode::OK)
}

/// The security page, where a second factor is set up, then on to `return_to`.
fn enrolment_url(return_to: &str) -> String {
    let mut url = "/portal/security?".to_owned();
    url.push_str(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", return_to)
            .finish(),
    );
    url
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

/// `POST /login`: checks the password; then asks for the second factor when the user has one
/// (no session yet), else rotates the session and returns to where the user was.
#[utoipa::path(
    post,
    path = "/login",
    tag = "browser",
    operation_id = "login",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The sign-in form's CSRF token, set with the form."), ("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The password was right and the user has a second factor: the code step of the sign-in page, with a `netapi_second_factor` cookie (no session yet).", body = String, content_type = "text/html"),
        (status = 303, description = "Signed in: on to `return_to` with a new `netapi_session` cookie, or to `/portal/security` when a second factor must be set up first.",
            headers(("Location" = String, description = "`return_to`, a local path, or the security page."))),
        (status = 401, description = "The sign-in page again: wrong email or password.", body = String, content_type = "text/html"),
        (status = 403, description = "The sign-in page again: the form expired (CSRF token and cookie differ), or the email address is not verified yet (`require_verified_email`; with a button that mails the link again).", body = String, content_type = "text/html"),
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
        Err(err @ Error::EmailNotVerified) => {
            let resend = state.api.email_enabled().then_some(form.email.trim());
            return login_page_with(
                &state.api,
                &return_to,
                Some(&err.to_string()),
                resend,
                StatusCode::FORBIDDEN,
            );
        }
        Err(err) => return PageError::Core(err).into_response(),
    };
    let second_factor = match state.api.has_second_factor(&user.id).await {
        Ok(true) => SecondFactors::of(&state.api, &user).await.map(Some),
        Ok(false) => Ok(None),
        Err(err) => Err(err),
    };
    match second_factor {
        Ok(Some(factors)) => {
            let ticket = state.api.second_factor_ticket(&user.id, &form.csrf_token);
            let mut response =
                code_page(&form.csrf_token, &return_to, factors, None, StatusCode::OK);
            set_cookie(
                &mut response,
                &state.api,
                SECOND_FACTOR_COOKIE,
                &ticket,
                SECOND_FACTOR_TTL,
            );
            response
        }
        Ok(None) => {
            finish_sign_in(&state.api, &headers, &ip, &user, Amr::Password, &return_to).await
        }
        Err(err) => PageError::Core(err).into_response(),
    }
}

/// The code step's form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CodeForm {
    /// Six digits from the authenticator, or a recovery code.
    #[schema(value_type = String)]
    code: Secret,
    csrf_token: String,
    #[serde(default)]
    return_to: String,
}

/// `POST /login/code`: the second factor of a sign-in whose password was right.
#[utoipa::path(
    post,
    path = "/login/code",
    tag = "browser",
    operation_id = "loginCode",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The sign-in form's CSRF token."), ("netapi_second_factor" = Option<String>, Cookie, description = "The pending sign-in, set by `POST /login`.")),
    request_body(content = CodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: on to `return_to` with a new `netapi_session` cookie.",
            headers(("Location" = String, description = "`return_to`, a local path."))),
        (status = 401, description = "The code step again (a wrong or used code), or the sign-in page (the pending sign-in expired).", body = String, content_type = "text/html"),
        (status = 403, description = "The sign-in page again: the form expired (CSRF token and cookie differ).", body = String, content_type = "text/html"),
        super::error::PageErrors,
        super::error::FormErrors,
    )
)]
pub async fn login_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let api = &state.api;
    let return_to = safe_return_to(&form.return_to).to_owned();
    if !csrf_cookie_matches(&headers, &form.csrf_token) {
        return login_page(
            api,
            &return_to,
            Some("Your sign-in form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let ticket = cookie(&headers, SECOND_FACTOR_COOKIE).unwrap_or_default();
    let user = match api.second_factor_user(&ticket, &form.csrf_token).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return login_page(
                api,
                &return_to,
                Some("Your sign-in expired. Please sign in again."),
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(err) => return PageError::Core(err).into_response(),
    };
    let factors = match SecondFactors::of(api, &user).await {
        Ok(factors) => factors,
        Err(err) => return PageError::Core(err).into_response(),
    };
    match api
        .verify_second_factor(&user, form.code.expose(), &ip)
        .await
    {
        Ok(amr) => finish_sign_in(api, &headers, &ip, &user, amr, &return_to).await,
        Err(Error::RateLimited { retry_after }) => {
            let mut response = code_page(
                &form.csrf_token,
                &return_to,
                factors,
                Some(&format!(
                    "Too many failed sign-in attempts. Try again in {retry_after} seconds."
                )),
                StatusCode::TOO_MANY_REQUESTS,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        Err(Error::Unauthenticated(_)) => code_page(
            &form.csrf_token,
            &return_to,
            factors,
            Some("That code is not right, or was already used."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(err) => PageError::Core(err).into_response(),
    }
}

/// Starts the session of a user who passed every step and sends the browser on: to the
/// security page first when policy wants a second factor the user does not have.
async fn finish_sign_in(
    api: &NetApi,
    headers: &HeaderMap,
    ip: &str,
    user: &User,
    amr: Amr,
    return_to: &str,
) -> Response {
    let next = match sign_in_destination(api, user, return_to).await {
        Ok(next) => next,
        Err(response) => return response,
    };
    start_session_response(
        api,
        headers,
        user,
        amr,
        &session_origin(headers, ip),
        Redirect::to(&next).into_response(),
    )
    .await
}

/// Where a user who passed every step goes: `return_to`, or the security page first when
/// policy wants a second factor the user does not have.
pub(super) async fn sign_in_destination(
    api: &NetApi,
    user: &User,
    return_to: &str,
) -> Result<String, Response> {
    match api.mfa_enrolment_due(user).await {
        Ok(true) => Ok(enrolment_url(return_to)),
        Ok(false) => Ok(return_to.to_owned()),
        Err(err) => Err(PageError::Core(err).into_response()),
    }
}

/// Ends the browser's previous session (no fixation) and starts a new one.
pub(super) async fn start_session_response(
    api: &NetApi,
    headers: &HeaderMap,
    user: &User,
    amr: Amr,
    origin: &netapi_core::service::SessionOrigin<'_>,
    mut response: Response,
) -> Response {
    if let Some(old) = cookie(headers, SESSION_COOKIE)
        && let Err(err) = api.end_session(&old).await
    {
        tracing::warn!(error = %err, "could not end the previous session");
    }
    let (secret, _) = match api.start_session(user, amr, origin).await {
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
    let Some((session, _)) = signed_in(&state.api, &headers).await else {
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
