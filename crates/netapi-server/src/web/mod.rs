//! Server-rendered pages: login, consent, registration and the developer portal. They work
//! without JavaScript and load nothing from elsewhere. Every form carries a CSRF token.
//!
//! Each page is an askama template in `crates/netapi-server/templates/` (escaping on by
//! default) extending `base.html`; the handlers are in the module named after the page.

pub mod consent;
pub mod error;
pub mod login;
pub mod portal;
pub mod register;
mod session;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::model::{Session, User};

/// What `base.html` needs from every page.
pub(crate) struct Chrome<'a> {
    title: &'static str,
    /// The signed-in user, for the header's sign-out form.
    account: Option<Account<'a>>,
    narrow: bool,
}

pub(crate) struct Account<'a> {
    email: &'a str,
    csrf: &'a str,
}

impl<'a> Chrome<'a> {
    /// A narrow page for someone not (yet) signed in.
    fn anonymous(title: &'static str) -> Self {
        Chrome {
            title,
            account: None,
            narrow: true,
        }
    }

    fn signed_in(title: &'static str, user: &'a User, session: &'a Session, narrow: bool) -> Self {
        Chrome {
            title,
            account: Some(Account {
                email: &user.email,
                csrf: &session.csrf_token,
            }),
            narrow,
        }
    }
}

/// Renders a page with the headers every page carries.
fn render(status: StatusCode, page: &impl Template) -> Response {
    let html = match page.render() {
        Ok(html) => html,
        Err(err) => {
            tracing::error!(error = %err, "a page failed to render");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
                .into_response();
        }
    };
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Pages show new keys and secrets, and carry CSRF tokens: no cache may keep them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    response
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
