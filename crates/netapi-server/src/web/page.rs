//! What every page shares: the chrome of `base.html` and the headers of every page.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::model::{Session, User};

/// What `base.html` needs from every page.
pub(crate) struct Chrome<'a> {
    pub(super) title: &'static str,
    /// The signed-in user, for the header's sign-out form.
    pub(super) account: Option<Account<'a>>,
    pub(super) narrow: bool,
}

pub(crate) struct Account<'a> {
    pub(super) email: &'a str,
    pub(super) csrf: &'a str,
}

impl<'a> Chrome<'a> {
    /// A narrow page for someone not (yet) signed in.
    pub(super) fn anonymous(title: &'static str) -> Self {
        Chrome {
            title,
            account: None,
            narrow: true,
        }
    }

    pub(super) fn signed_in(
        title: &'static str,
        user: &'a User,
        session: &'a Session,
        narrow: bool,
    ) -> Self {
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

/// A time as people read it: `3 Dec 2026, 15:04 UTC`.
pub(super) fn human_time(ts: i64) -> String {
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
    );
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Renders a page with the headers every page carries.
pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
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
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    response
}
