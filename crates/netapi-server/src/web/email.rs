//! The pages of emailed links: "Forgot password?", the reset link's page, the verification
//! link's page and the login page's "send the link again".

use askama::Template;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::secret::{Secret, random_base62};
use netapi_core::{Error, NetApi};
use serde::Deserialize;

use super::error::PageError;
use super::page::{Chrome, render};
use super::session::{LOGIN_CSRF_COOKIE, csrf_cookie_matches, set_cookie};
use crate::extract::ClientIp;
use crate::state::AppState;

struct ResetForm<'a> {
    csrf: &'a str,
    token: &'a str,
}

struct Link {
    href: &'static str,
    text: &'static str,
}

#[derive(Template)]
#[template(path = "email.html")]
struct EmailPage<'a> {
    chrome: Chrome<'static>,
    heading: &'a str,
    info: Option<&'a str>,
    error: Option<&'a str>,
    forgot_csrf: Option<&'a str>,
    reset: Option<ResetForm<'a>>,
    link: Option<Link>,
}

impl<'a> EmailPage<'a> {
    fn new(title: &'static str) -> Self {
        Self {
            chrome: Chrome::anonymous(title),
            heading: title,
            info: None,
            error: None,
            forgot_csrf: None,
            reset: None,
            link: None,
        }
    }
}

const SIGN_IN: Link = Link {
    href: "/login",
    text: "Sign in",
};
const ASK_AGAIN: Link = Link {
    href: "/forgot-password",
    text: "Ask for a new link",
};

/// A page with a form: a new CSRF token in the form and in the cookie.
fn with_csrf(api: &NetApi, page: impl FnOnce(&str) -> Response) -> Response {
    let csrf = random_base62(32);
    let mut response = page(&csrf);
    set_cookie(&mut response, api, LOGIN_CSRF_COOKIE, &csrf, 3600);
    response
}

fn forgot_page(api: &NetApi, error: Option<&str>, status: StatusCode) -> Response {
    if !api.email_enabled() {
        return email_off_page("Reset your password");
    }
    with_csrf(api, |csrf| {
        render(
            status,
            &EmailPage {
                info: Some(
                    "Enter the email address of your account: we will send a link to choose a \
                     new password.",
                ),
                error,
                forgot_csrf: Some(csrf),
                link: Some(SIGN_IN),
                ..EmailPage::new("Reset your password")
            },
        )
    })
}

fn email_off_page(title: &'static str) -> Response {
    render(
        StatusCode::SERVICE_UNAVAILABLE,
        &EmailPage {
            error: Some(&Error::EmailOff.to_string()),
            link: Some(SIGN_IN),
            ..EmailPage::new(title)
        },
    )
}

fn message_page(status: StatusCode, title: &'static str, info: &str, link: Link) -> Response {
    render(
        status,
        &EmailPage {
            info: Some(info),
            link: Some(link),
            ..EmailPage::new(title)
        },
    )
}

fn bad_link_page(title: &'static str, err: Error, link: Link) -> Response {
    match err {
        Error::InvalidArgument { message, .. } => render(
            StatusCode::BAD_REQUEST,
            &EmailPage {
                error: Some(&format!("This link {message}.")),
                link: Some(link),
                ..EmailPage::new(title)
            },
        ),
        Error::RateLimited { retry_after } => {
            let mut response = render(
                StatusCode::TOO_MANY_REQUESTS,
                &EmailPage {
                    error: Some("Too many attempts; try again later."),
                    ..EmailPage::new(title)
                },
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        other => PageError::Core(other).into_response(),
    }
}

/// The `token` of a link's query string (the last one, if several).
fn token_of(query: Option<String>) -> String {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "token")
        .last()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// `GET /forgot-password`
#[utoipa::path(
    get,
    path = "/forgot-password",
    tag = "browser",
    operation_id = "forgotPasswordForm",
    responses(
        (status = 200, description = "The form asking for the account's email; sets the `netapi_login_csrf` cookie.", body = String, content_type = "text/html"),
        (status = 503, description = "A page saying that email is not set up on this server.", body = String, content_type = "text/html"),
    )
)]
pub async fn forgot_form(State(state): State<AppState>) -> Response {
    forgot_page(&state.api, None, StatusCode::OK)
}

/// The "Forgot password?" form and the "send the link again" button.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EmailForm {
    csrf_token: String,
    #[schema(schema_with = crate::dto::fields::email)]
    email: String,
}

/// `POST /forgot-password`: mails a reset link if the address has an account; the page says
/// the same whatever the address.
#[utoipa::path(
    post,
    path = "/forgot-password",
    tag = "browser",
    operation_id = "forgotPassword",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The form's CSRF token, set with the form.")),
    request_body(content = EmailForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A page saying that a link is on its way if the address has an account.", body = String, content_type = "text/html"),
        (status = 400, description = "The form again: the address is not well formed.", body = String, content_type = "text/html"),
        (status = 403, description = "The form again: it expired.", body = String, content_type = "text/html"),
        (status = 503, description = "A page saying that email is not set up on this server.", body = String, content_type = "text/html"),
        super::error::PageErrors,
        super::error::FormErrors,
    )
)]
pub async fn forgot(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Response {
    if !csrf_cookie_matches(&headers, &form.csrf_token) {
        return forgot_page(
            &state.api,
            Some("Your form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    match state.api.request_password_reset(&form.email, &ip).await {
        Ok(()) => message_page(
            StatusCode::OK,
            "Check your email",
            "If an account has this address, we sent it a link to choose a new password. The \
             link works once, for 30 minutes.",
            SIGN_IN,
        ),
        Err(Error::EmailOff) => email_off_page("Reset your password"),
        Err(Error::InvalidArgument { message, .. }) => forgot_page(
            &state.api,
            Some(&format!("The email {message}.")),
            StatusCode::BAD_REQUEST,
        ),
        Err(err) => PageError::Core(err).into_response(),
    }
}

fn reset_form_page(api: &NetApi, token: &str, error: Option<&str>, status: StatusCode) -> Response {
    with_csrf(api, |csrf| {
        render(
            status,
            &EmailPage {
                error,
                reset: Some(ResetForm { csrf, token }),
                ..EmailPage::new("Choose a new password")
            },
        )
    })
}

/// `GET /reset-password?token=...`
#[utoipa::path(
    get,
    path = "/reset-password",
    tag = "browser",
    operation_id = "resetPasswordForm",
    params(("token" = Option<String>, Query, description = "The secret of the emailed link.")),
    responses(
        (status = 200, description = "The form for the new password; sets the `netapi_login_csrf` cookie.", body = String, content_type = "text/html"),
        (status = 400, description = "A page saying the link is not valid (unknown, used or expired).", body = String, content_type = "text/html"),
        (status = 429, description = "Too many bad links from this address.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn reset_form(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> Response {
    let token = token_of(query);
    match state.api.check_reset_link(&token, Some(&ip)).await {
        Ok(()) => reset_form_page(&state.api, &token, None, StatusCode::OK),
        Err(err) => bad_link_page("Choose a new password", err, ASK_AGAIN),
    }
}

/// The reset link's form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResetPasswordForm {
    csrf_token: String,
    #[schema(value_type = String)]
    token: Secret,
    #[schema(schema_with = crate::dto::fields::password)]
    password: Secret,
}

/// `POST /reset-password`: sets the new password (the link works once), ends every session
/// and refresh-token family of the user; does not sign in.
#[utoipa::path(
    post,
    path = "/reset-password",
    tag = "browser",
    operation_id = "resetPassword",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The form's CSRF token, set with the form.")),
    request_body(content = ResetPasswordForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A page saying the password is changed, with a link to sign in.", body = String, content_type = "text/html"),
        (status = 400, description = "The form again (a password the rules refuse), or a page saying the link is not valid.", body = String, content_type = "text/html"),
        (status = 403, description = "The form again: it expired.", body = String, content_type = "text/html"),
        (status = 429, description = "Too many bad links from this address.", body = String, content_type = "text/html"),
        super::error::PageErrors,
        super::error::FormErrors,
    )
)]
pub async fn reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<ResetPasswordForm>,
) -> Response {
    let token = form.token.expose();
    if !csrf_cookie_matches(&headers, &form.csrf_token) {
        return reset_form_page(
            &state.api,
            token,
            Some("Your form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    match state
        .api
        .reset_password(token, &form.password, Some(&ip))
        .await
    {
        Ok(_) => message_page(
            StatusCode::OK,
            "Password changed",
            "Your password is changed, and every session that was signed in is ended. Sign in \
             with the new password.",
            SIGN_IN,
        ),
        Err(Error::InvalidArgument { field, message }) if field.as_deref() == Some("password") => {
            reset_form_page(
                &state.api,
                token,
                Some(&format!("The password {message}.")),
                StatusCode::BAD_REQUEST,
            )
        }
        Err(err) => bad_link_page("Choose a new password", err, ASK_AGAIN),
    }
}

/// `GET /verify-email?token=...`
#[utoipa::path(
    get,
    path = "/verify-email",
    tag = "browser",
    operation_id = "verifyEmailPage",
    params(("token" = Option<String>, Query, description = "The secret of the emailed link.")),
    responses(
        (status = 200, description = "A page saying the address is verified.", body = String, content_type = "text/html"),
        (status = 400, description = "A page saying the link is not valid (unknown, used or expired, or the address changed since).", body = String, content_type = "text/html"),
        (status = 429, description = "Too many bad links from this address.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> Response {
    match state.api.verify_email(&token_of(query), Some(&ip)).await {
        Ok(user) => message_page(
            StatusCode::OK,
            "Email verified",
            &format!("Thank you: {} is verified.", user.email),
            SIGN_IN,
        ),
        Err(err) => bad_link_page("Verify your email", err, SIGN_IN),
    }
}

/// `POST /verify-email/resend`: the login page's button; the page says the same whatever
/// the address.
#[utoipa::path(
    post,
    path = "/verify-email/resend",
    tag = "browser",
    operation_id = "resendVerification",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The sign-in form's CSRF token.")),
    request_body(content = EmailForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A page saying that a link is on its way if the address needs one.", body = String, content_type = "text/html"),
        (status = 403, description = "An error page: the form expired.", body = String, content_type = "text/html"),
        (status = 503, description = "A page saying that email is not set up on this server.", body = String, content_type = "text/html"),
        super::error::PageErrors,
        super::error::FormErrors,
    )
)]
pub async fn resend(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Response {
    if !csrf_cookie_matches(&headers, &form.csrf_token) {
        return PageError::Forged("The form expired; go back and try again.").into_response();
    }
    match state.api.resend_verification(&form.email, &ip).await {
        Ok(()) => message_page(
            StatusCode::OK,
            "Check your email",
            "If this address belongs to an account that is not verified yet, we sent it a new \
             link.",
            SIGN_IN,
        ),
        Err(Error::EmailOff) => email_off_page("Verify your email"),
        Err(err) => PageError::Core(err).into_response(),
    }
}
