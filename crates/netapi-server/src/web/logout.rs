//! `GET/POST /oauth/logout`: OpenID Connect RP-Initiated Logout 1.0.
//!
//! The session ends without a question only when a valid `id_token_hint` names this very
//! session (its `sub` and `sid`); otherwise the user is asked on a page whose form carries
//! the session's CSRF token, so that no other site can sign anyone out. A
//! `post_logout_redirect_uri` is followed only when it is exactly one the client registered;
//! anything wrong with the request is shown on an error page, never redirected.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::NetApi;
use netapi_core::service::LogoutParams;
use serde::Deserialize;

use super::error::PageError;
use super::page::{Chrome, render};
use super::session::{SESSION_COOKIE, cookie, set_cookie, signed_in};
use crate::state::AppState;

/// The logout page: a question, or the news that the session ended.
#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    chrome: Chrome<'static>,
    signed_out: bool,
    client_name: &'a str,
    email: &'a str,
    csrf: &'a str,
    client_id: &'a str,
    redirect_uri: &'a str,
    state: &'a str,
}

/// The parameters of a logout request (RP-Initiated Logout 1.0 §2), in the query (`GET`)
/// or the form (`POST`). `logout_hint` and `ui_locales` are accepted and ignored.
/// Only documents the query (it is read by [`parse`], which refuses repeated parameters).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LogoutRequest {
    /// An ID token this server issued to the client (an expired one too).
    #[param(max_length = 8192)]
    id_token_hint: Option<String>,
    /// Ignored.
    logout_hint: Option<String>,
    /// The client asking; must be the hint's audience when both are given.
    #[param(max_length = 255)]
    client_id: Option<String>,
    /// Exactly one of the client's `post_logout_redirect_uris`.
    #[param(max_length = 2000)]
    post_logout_redirect_uri: Option<String>,
    /// Passed back to `post_logout_redirect_uri`.
    #[param(max_length = 512)]
    state: Option<String>,
    /// Ignored.
    ui_locales: Option<String>,
}

/// A logout request by `POST`, or the confirmation page's form: the request's parameters,
/// and then the session's CSRF token and `confirm=yes`.
#[derive(Debug, Default, utoipa::ToSchema)]
pub struct LogoutForm {
    #[schema(max_length = 8192, nullable = false)]
    id_token_hint: Option<String>,
    #[schema(max_length = 255, nullable = false)]
    client_id: Option<String>,
    #[schema(max_length = 2000, nullable = false)]
    post_logout_redirect_uri: Option<String>,
    #[schema(max_length = 512, nullable = false)]
    state: Option<String>,
    /// The session's CSRF token (the confirmation page's form).
    #[schema(nullable = false)]
    csrf_token: Option<String>,
    /// `yes` on the confirmation page's form.
    #[schema(nullable = false)]
    confirm: Option<String>,
}

/// Reads form-encoded parameters: a parameter given twice is an error page.
fn parse(raw: &[u8]) -> Result<LogoutForm, PageError> {
    // Name=value pairs only: a bare word is no logout request, whatever a lenient parser
    // would make of it.
    if raw
        .split(|b| *b == b'&')
        .any(|pair| !pair.is_empty() && !pair.contains(&b'='))
    {
        return Err(PageError::Invalid("The logout request is not a form."));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut form = LogoutForm::default();
    for (name, value) in url::form_urlencoded::parse(raw) {
        if seen.iter().any(|s| *s == name) {
            return Err(PageError::Invalid(
                "The logout request gives a parameter more than once.",
            ));
        }
        seen.push(name.to_string());
        let value = Some(value.into_owned());
        match name.as_ref() {
            "id_token_hint" => form.id_token_hint = value,
            "client_id" => form.client_id = value,
            "post_logout_redirect_uri" => form.post_logout_redirect_uri = value,
            "state" => form.state = value,
            "csrf_token" => form.csrf_token = value,
            "confirm" => form.confirm = value,
            _ => {}
        }
        if seen.len() > 32 {
            return Err(PageError::Invalid(
                "The logout request has too many parameters.",
            ));
        }
    }
    Ok(form)
}

/// `GET /oauth/logout`
#[utoipa::path(
    get,
    path = "/oauth/logout",
    tag = "oauth",
    operation_id = "endSession",
    params(LogoutRequest, ("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    responses(
        (status = 200, description = "A page: the question whether to sign out (a form with the session's CSRF token), or that the session ended.", body = String, content_type = "text/html"),
        (status = 303, description = "Signed out: on to the registered `post_logout_redirect_uri`, with `state`.", headers(("Location" = String, description = "The client's URI."))),
        super::error::PageErrors,
    )
)]
pub async fn end_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match parse(query.unwrap_or_default().as_bytes()) {
        Ok(form) => logout(&state, &headers, form).await,
        Err(err) => err.into_response(),
    }
}

/// `POST /oauth/logout`
#[utoipa::path(
    post,
    path = "/oauth/logout",
    tag = "oauth",
    operation_id = "endSessionPost",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = Option<LogoutForm>, description = "Optional: every parameter is.", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A page: the question whether to sign out, or that the session ended.", body = String, content_type = "text/html"),
        (status = 303, description = "Signed out: on to the registered `post_logout_redirect_uri`, with `state`.", headers(("Location" = String, description = "The client's URI."))),
        (status = 403, description = "An error page: the confirmation's CSRF token does not match the session.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn end_session_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parse(&body) {
        Ok(form) => logout(&state, &headers, form).await,
        Err(err) => err.into_response(),
    }
}

async fn logout(state: &AppState, headers: &HeaderMap, form: LogoutForm) -> Response {
    let api = &state.api;
    let params = LogoutParams {
        id_token_hint: form.id_token_hint,
        client_id: form.client_id,
        post_logout_redirect_uri: form.post_logout_redirect_uri,
        state: form.state,
    };
    let checked = match api.check_logout(&params).await {
        Ok(checked) => checked,
        Err(err) => return PageError::Core(err).into_response(),
    };
    let Some((session, user)) = signed_in(api, headers).await else {
        // Nobody is signed in here: nothing to end.
        return finished(api, checked.redirect.as_deref());
    };
    let confirmed = form.confirm.as_deref() == Some("yes");
    if confirmed
        && !form
            .csrf_token
            .as_deref()
            .is_some_and(|csrf| NetApi::csrf_matches(&session, csrf))
    {
        return PageError::Forged("The form expired; go back and try again.").into_response();
    }
    if confirmed || checked.hint_matches(&session) {
        if let Some(value) = cookie(headers, SESSION_COOKIE)
            && let Err(err) = api.end_session(&value).await
        {
            return PageError::Core(err).into_response();
        }
        return finished(api, checked.redirect.as_deref());
    }
    let client_name = checked.client.as_ref().map_or("", |c| c.name.as_str());
    let client_id = checked.client.as_ref().map_or("", |c| c.id.as_str());
    let redirect_uri = if checked.redirect.is_some() {
        params.post_logout_redirect_uri.as_deref().unwrap_or("")
    } else {
        ""
    };
    render(
        StatusCode::OK,
        &LogoutPage {
            chrome: Chrome::anonymous("Sign out"),
            signed_out: false,
            client_name,
            email: &user.email,
            csrf: &session.csrf_token,
            client_id,
            redirect_uri,
            state: params.state.as_deref().unwrap_or(""),
        },
    )
}

/// After the session ended (or there was none): to the client's URI, or a page saying so;
/// the session cookie is cleared either way.
fn finished(api: &NetApi, redirect: Option<&str>) -> Response {
    let mut response = match redirect {
        Some(url) => Redirect::to(url).into_response(),
        None => render(
            StatusCode::OK,
            &LogoutPage {
                chrome: Chrome::anonymous("Signed out"),
                signed_out: true,
                client_name: "",
                email: "",
                csrf: "",
                client_id: "",
                redirect_uri: "",
                state: "",
            },
        ),
    };
    set_cookie(&mut response, api, SESSION_COOKIE, "", 0);
    response
}
