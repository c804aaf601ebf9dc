//! `/oauth/authorize`: the request's checks, sign-in when needed, and the consent page.

use askama::Template;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::NetApi;
use netapi_core::model::{Session, User};
use netapi_core::service::AuthorizationRequest;
use serde::Deserialize;
use std::collections::HashMap;

use super::error::{authorize_error, error_page, error_response};
use super::login::login_page;
use super::session::current_session;
use super::{Chrome, render};
use crate::AppState;

/// A login this recent satisfies `prompt=login`.
const FRESH_LOGIN: i64 = 30;

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    chrome: Chrome<'a>,
    client_name: &'a str,
    email: &'a str,
    /// The name and identifier of the resource asked for, when it is not Net API's own.
    resource: Option<(&'a str, &'a str)>,
    /// Each scope's description and name.
    scopes: Vec<(&'a str, &'a str)>,
    /// Where the user will be sent back to.
    host: String,
    csrf: &'a str,
    /// The authorization request's query string, carried to the decision.
    request: &'a str,
}

fn consent_page(
    request: &AuthorizationRequest,
    raw_query: &str,
    user: &User,
    session: &Session,
) -> Response {
    let host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    render(
        StatusCode::OK,
        &ConsentPage {
            chrome: Chrome::signed_in("Authorize", user, session, true),
            client_name: &request.client.name,
            email: &user.email,
            resource: request
                .resource
                .as_ref()
                .map(|r| (r.name.as_str(), r.identifier.as_str())),
            scopes: match &request.resource {
                None => request
                    .scopes
                    .iter()
                    .map(|s| (s.description(), s.as_str()))
                    .collect(),
                Some(resource) => resource
                    .scopes
                    .iter()
                    .filter(|s| request.resource_scopes.contains(&s.name))
                    .map(|s| {
                        let description = if s.description.is_empty() {
                            s.name.as_str()
                        } else {
                            s.description.as_str()
                        };
                        (description, s.name.as_str())
                    })
                    .collect(),
            },
            host,
            csrf: &session.csrf_token,
            request: raw_query,
        },
    )
}

/// Parses and validates the parameters of an authorization request (the query string, or
/// the consent form's copy of it). A parameter given twice is refused (RFC 6749 §3.1).
async fn validated(api: &NetApi, raw: &str) -> Result<AuthorizationRequest, Response> {
    let mut params = HashMap::new();
    let mut repeated = None;
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()).into_owned() {
        if params.contains_key(&name) {
            repeated.get_or_insert_with(|| name.clone());
        }
        params.insert(name, value);
    }
    api.validate_authorization(&params, repeated.as_deref())
        .await
        .map_err(authorize_error)
}
/// `GET /oauth/authorize`: sign in if needed, ask consent if needed, then redirect with a code.
#[utoipa::path(
    get,
    path = "/oauth/authorize",
    tag = "oauth",
    operation_id = "authorize",
    params(crate::openapi::AuthorizeQuery),
    responses(
        (status = 200, description = "The sign-in page, or the consent page for a signed-in user (`netapi_session` cookie).", body = String, content_type = "text/html"),
        (status = 303, description = "Back to the client's `redirect_uri` with `code`, `state` and `iss` (RFC 9207), or with `error`, `error_description`, `state` and `iss` (for errors before the user has seen the request, only to clients marked `trusted`).",
            headers(("Location" = String, description = "The client's redirect URI with the answer in its query."))),
        (status = 400, description = "An error page: an unknown `client_id` or a `redirect_uri` that does not match is never redirected to. For a client not marked `trusted`, an error found before the user has seen the request (a bad parameter, or `prompt=none` without a session or consent) is shown on a page whose link (`id=\"return\"`) is the redirect a trusted client would get (RFC 9700 §4.11.2).", body = String, content_type = "text/html"),
        (status = 429, description = "An error page: too many attempts.", body = String, content_type = "text/html"),
        (status = 500, description = "An error page.", body = String, content_type = "text/html"),
        (status = 503, description = "An error page: storage is not answering.", body = String, content_type = "text/html"),
    )
)]
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = query.unwrap_or_default();
    let request = match validated(&state.api, &raw).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let api = &state.api;
    let issuer = api.issuer().to_owned();
    let session = current_session(api, &headers).await;
    let fresh = session
        .as_ref()
        .is_some_and(|(s, _)| api.now() - s.auth_time <= FRESH_LOGIN);
    let session = session.filter(|(s, _)| api.session_satisfies(&request, s, fresh));
    let Some((session, user)) = session else {
        if request.prompt_none {
            return authorize_error(request.early_error(
                &issuer,
                "login_required",
                "the user is not signed in",
            ));
        }
        return login_page(
            api,
            &format!("/oauth/authorize?{raw}"),
            None,
            StatusCode::OK,
        );
    };
    match api.has_consent(&user.id, &request).await {
        Ok(true) => match api.approve(&session, &request, false).await {
            Ok(url) => Redirect::to(&url).into_response(),
            Err(err) => error_response(err),
        },
        Ok(false) if request.prompt_none => authorize_error(request.early_error(
            &issuer,
            "consent_required",
            "the user has not approved this application",
        )),
        Ok(false) => consent_page(&request, &raw, &user, &session),
        Err(err) => error_response(err),
    }
}

/// The consent form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ConsentForm {
    csrf_token: String,
    request: String,
    decision: String,
}

/// `POST /oauth/authorize`: the user's decision.
#[utoipa::path(
    post,
    path = "/oauth/authorize",
    tag = "oauth",
    operation_id = "decide",
    request_body(content = ConsentForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Back to the client's `redirect_uri` with `code` (approved) or `error=access_denied` (denied), `state` and `iss`.",
            headers(("Location" = String, description = "The client's redirect URI with the answer in its query."))),
        (status = 400, description = "An error page: the request is not valid, or the decision is neither `approve` nor `deny`.", body = String, content_type = "text/html"),
        (status = 401, description = "The sign-in page: no session (`netapi_session` cookie).", body = String, content_type = "text/html"),
        (status = 403, description = "An error page: the CSRF token does not match the session.", body = String, content_type = "text/html"),
        (status = 415, description = "The body is not `application/x-www-form-urlencoded`.", body = String, content_type = "text/plain"),
        (status = 422, description = "A form field is missing.", body = String, content_type = "text/plain"),
        (status = 429, description = "An error page: too many attempts.", body = String, content_type = "text/html"),
        (status = 500, description = "An error page.", body = String, content_type = "text/html"),
        (status = 503, description = "An error page: storage is not answering.", body = String, content_type = "text/html"),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let api = &state.api;
    let request = match validated(api, &form.request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Some((session, user)) = current_session(api, &headers).await else {
        return login_page(
            api,
            &format!("/oauth/authorize?{}", form.request),
            Some("Please sign in again."),
            StatusCode::UNAUTHORIZED,
        );
    };
    if !NetApi::csrf_matches(&session, &form.csrf_token) {
        return error_page(
            StatusCode::FORBIDDEN,
            "The form expired or did not come from this site; go back and try again.",
        );
    }
    match form.decision.as_str() {
        "approve" => match api.approve(&session, &request, true).await {
            Ok(url) => {
                tracing::info!(client_id = %request.client.id, user_id = %user.id, "authorization approved");
                Redirect::to(&url).into_response()
            }
            Err(err) => error_response(err),
        },
        "deny" => Redirect::to(&request.error_redirect(
            api.issuer(),
            "access_denied",
            "the user denied the request",
        ))
        .into_response(),
        _ => error_page(
            StatusCode::BAD_REQUEST,
            "The decision must be approve or deny.",
        ),
    }
}
