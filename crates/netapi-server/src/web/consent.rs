//! `/oauth/authorize`: the request's checks, sign-in when needed, and the consent page.

use askama::Template;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::NetApi;
use netapi_core::model::{Session, User};
use netapi_core::service::{
    AuthorizationParams, AuthorizationRequest, AuthorizeError, AuthorizeReason, OAuthForm,
};
use serde::Deserialize;

use super::error::PageError;
use super::login::login_page;
use super::page::{Chrome, render};
use super::session::current_session;
use crate::state::AppState;

/// A login this recent satisfies `prompt=login`.
const FRESH_LOGIN: i64 = 30;

#[derive(Template)]
#[template(path = "consent.html")]
pub(super) struct ConsentPage<'a> {
    pub(super) chrome: Chrome<'a>,
    pub(super) client_name: &'a str,
    pub(super) email: &'a str,
    /// The name and identifier of the resource asked for, when it is not Net API's own.
    pub(super) resource: Option<(&'a str, &'a str)>,
    /// Each scope's description and name.
    pub(super) scopes: Vec<(&'a str, &'a str)>,
    /// Where the user will be sent back to (the authorization code flow).
    pub(super) host: String,
    /// The device flow's user code, which the device shows (then there is no `host`).
    pub(super) user_code: Option<&'a str>,
    pub(super) csrf: &'a str,
    /// Where the decision goes.
    pub(super) action: &'a str,
    /// The form's other hidden inputs (name, value): what the decision is about.
    pub(super) hidden: Vec<(&'a str, &'a str)>,
}

/// The lines of the consent page: each scope's description and name, of Net API's own
/// (`scopes`) or of `resource` (those of `resource_scopes`).
pub(super) fn scope_lines<'a>(
    scopes: netapi_core::Scopes,
    resource: Option<&'a netapi_core::model::Resource>,
    resource_scopes: &[String],
) -> Vec<(&'a str, &'a str)> {
    match resource {
        None => scopes
            .iter()
            .map(|s| (s.description(), s.as_str()))
            .collect(),
        Some(resource) => resource
            .scopes
            .iter()
            .filter(|s| resource_scopes.contains(&s.name))
            .map(|s| {
                let description = if s.description.is_empty() {
                    s.name.as_str()
                } else {
                    s.description.as_str()
                };
                (description, s.name.as_str())
            })
            .collect(),
    }
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
            scopes: scope_lines(
                request.scopes,
                request.resource.as_deref(),
                &request.resource_scopes,
            ),
            host,
            user_code: None,
            csrf: &session.csrf_token,
            action: "/oauth/authorize",
            hidden: vec![("request", raw_query)],
        },
    )
}

/// Parses and validates the parameters of an authorization request (the query string, or
/// the consent form's copy of it).
async fn validated(api: &NetApi, raw: &str) -> Result<AuthorizationRequest, Response> {
    let pairs = OAuthForm::decode(raw.as_bytes());
    api.validate_authorization(&AuthorizationParams::parse(&pairs))
        .await
        .map_err(|err| PageError::Authorize(err).into_response())
}

/// `GET /oauth/authorize` query parameters (RFC 6749 §4.1.1, RFC 7636, OpenID Connect). Only
/// `client_id` and `redirect_uri` are checked before redirecting: a bad value of any other
/// parameter is answered with a redirect carrying `error` (RFC 6749 §4.1.2.1), so each is
/// described as text with the values that succeed.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Core parses the raw query (`AuthorizationParams`); this states it for the document.
struct AuthorizeQuery {
    /// The client; an unknown one gets the 400 error page, never a redirect.
    #[param(required = true)]
    client_id: String,
    /// Must equal one of the client's redirect URIs exactly; may be left out when the client
    /// has exactly one. Another value gets the 400 error page.
    redirect_uri: Option<String>,
    /// `code`; anything else (or nothing) is `unsupported_response_type` (`invalid_request`).
    response_type: Option<String>,
    /// Space-separated scopes, within the client's; default: every scope of the client.
    /// Otherwise `invalid_scope`.
    scope: Option<String>,
    /// The identifier of the resource the tokens are for (RFC 8707); default: Net API's own.
    /// One per request; one the client does not list, or no live resource has, is an
    /// `invalid_target` error redirect. `scope` then names that resource's scopes.
    resource: Option<String>,
    /// Returned unchanged with the redirect; at most 512 bytes.
    state: Option<String>,
    /// PKCE S256 challenge: 43 characters of base64url. Required for public clients and, by
    /// default, for every client.
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    /// OpenID Connect nonce, copied into the ID token; at most 512 bytes.
    nonce: Option<String>,
    /// `none`, `login` or `consent`, space-separated (`none` alone).
    prompt: Option<String>,
    /// A non-negative number of seconds: the longest ago the user may have signed in.
    max_age: Option<String>,
    /// `query`.
    response_mode: Option<String>,
    /// A `request_uri` from `/oauth/par` (RFC 9126): the pushed request is used and every
    /// other parameter but `client_id` (which must be the pushing client's) is ignored.
    /// Single use, for 60 seconds; an unknown, expired, used or other client's one gets the
    /// 400 error page. A client that requires PAR (or a server that does) is refused
    /// without one (`invalid_request`).
    request_uri: Option<String>,
}

/// `GET /oauth/authorize`: sign in if needed, ask consent if needed, then redirect with a code.
#[utoipa::path(
    get,
    path = "/oauth/authorize",
    tag = "oauth",
    operation_id = "authorize",
    params(AuthorizeQuery),
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
            return PageError::Authorize(
                request.early_error(&issuer, AuthorizeReason::LoginRequired),
            )
            .into_response();
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
            Err(err) => PageError::Core(err).into_response(),
        },
        Ok(false) if request.prompt_none => {
            PageError::Authorize(request.early_error(&issuer, AuthorizeReason::ConsentRequired))
                .into_response()
        }
        Ok(false) => consent_page(&request, &raw, &user, &session),
        Err(err) => PageError::Core(err).into_response(),
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
        return PageError::Forged(
            "The form expired or did not come from this site; go back and try again.",
        )
        .into_response();
    }
    match form.decision.as_str() {
        "approve" => match api.approve(&session, &request, true).await {
            Ok(url) => {
                tracing::info!(client_id = %request.client.id, user_id = %user.id, "authorization approved");
                Redirect::to(&url).into_response()
            }
            Err(err) => PageError::Core(err).into_response(),
        },
        "deny" => PageError::Authorize(AuthorizeError::Redirect(
            request.error_redirect(api.issuer(), AuthorizeReason::AccessDenied),
        ))
        .into_response(),
        _ => PageError::Invalid("The decision must be approve or deny.").into_response(),
    }
}
