//! The one place where errors become pages.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::Error;
use netapi_core::service::AuthorizeError;

use super::{Chrome, render};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome<'static>,
    message: &'a str,
}

/// An authorization error for a client that is not trusted with automatic redirects (RFC 9700
/// §4.11.2): the user sees where the link leads and decides whether to follow it.
#[derive(Template)]
#[template(path = "error_link.html")]
struct ErrorLinkPage<'a> {
    chrome: Chrome<'static>,
    /// The `error` code of the redirect.
    error: String,
    host: String,
    /// Exactly the redirect a trusted client would get.
    href: &'a str,
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            chrome: Chrome::anonymous("Something is wrong"),
            message,
        },
    )
}

fn error_link_page(url: &str) -> Response {
    let parsed = url::Url::parse(url).ok();
    let error = parsed
        .as_ref()
        .and_then(|u| u.query_pairs().find(|(name, _)| name == "error"))
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| url.to_owned());
    render(
        StatusCode::BAD_REQUEST,
        &ErrorLinkPage {
            chrome: Chrome::anonymous("Something is wrong"),
            error,
            host,
            href: url,
        },
    )
}

pub(crate) fn authorize_error(err: AuthorizeError) -> Response {
    match err {
        AuthorizeError::Page(message) => error_page(StatusCode::BAD_REQUEST, &message),
        AuthorizeError::Redirect(url) => Redirect::to(&url).into_response(),
        AuthorizeError::Link(url) => error_link_page(&url),
        AuthorizeError::Failed(err) => error_response(err),
    }
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

pub(crate) fn error_response(err: Error) -> Response {
    match err {
        Error::Unavailable => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable.",
        ),
        Error::Internal(detail) | Error::Misconfigured(detail) => {
            tracing::error!(error = %detail, "page failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
        }
        Error::RateLimited { retry_after } => with_retry_after(
            error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts; try again later.",
            ),
            retry_after,
        ),
        Error::Busy { retry_after } => with_retry_after(
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy; try again in a moment.",
            ),
            retry_after,
        ),
        other => error_page(StatusCode::BAD_REQUEST, &other.to_string()),
    }
}
