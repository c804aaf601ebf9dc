//! The pages' errors: the one place where they become pages (or, for an authorization
//! request, the redirect to the client), where core's reasons get their words, and their
//! description in the document.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::Error;
use netapi_core::service::{AuthorizeError, AuthorizeReason, ErrorRedirect, PageReason};
use std::borrow::Cow;
use std::collections::BTreeMap;
use utoipa::IntoResponses;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response as OpenApiResponse, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, RefOr};

use super::page::{Chrome, render};

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

pub(super) fn error_page(status: StatusCode, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            chrome: Chrome::anonymous("Something is wrong"),
            message,
        },
    )
}

fn error_link_page(redirect: &ErrorRedirect) -> Response {
    let url = redirect_url(redirect);
    let error = redirect.reason.code().to_owned();
    let host = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| url.clone());
    render(
        StatusCode::BAD_REQUEST,
        &ErrorLinkPage {
            chrome: Chrome::anonymous("Something is wrong"),
            error,
            host,
            href: &url,
        },
    )
}

/// Why a page cannot do what was asked. Its [`IntoResponse`] is the one place where that
/// becomes a page (or, for an authorization request, the redirect to the client).
#[derive(Debug)]
pub(crate) enum PageError {
    /// A core error.
    Core(Error),
    /// An authorization request that cannot go on.
    Authorize(AuthorizeError),
    /// The form's CSRF token does not match the session (403), in the page's words.
    Forged(&'static str),
    /// A request the page cannot carry out (400), in the page's words.
    Invalid(&'static str),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::Core(err) => core_error_page(err),
            Self::Authorize(AuthorizeError::Page(reason)) => {
                error_page(StatusCode::BAD_REQUEST, &page_words(&reason))
            }
            Self::Authorize(AuthorizeError::Redirect(redirect)) => {
                Redirect::to(&redirect_url(&redirect)).into_response()
            }
            Self::Authorize(AuthorizeError::Link(redirect)) => error_link_page(&redirect),
            Self::Authorize(AuthorizeError::Failed(err)) => core_error_page(err),
            Self::Forged(message) => error_page(StatusCode::FORBIDDEN, message),
            Self::Invalid(message) => error_page(StatusCode::BAD_REQUEST, message),
        }
    }
}

/// The page's words for a request whose client or redirect URI cannot be trusted.
pub(crate) fn page_words(reason: &PageReason) -> Cow<'static, str> {
    match reason {
        PageReason::RepeatedParameter(name) => {
            format!("The request gives {name} more than once.").into()
        }
        PageReason::MissingClientId => "The request names no client (client_id).".into(),
        PageReason::UnknownClient => "This application is not registered here.".into(),
        PageReason::RedirectMismatch => {
            "The redirect URI does not match any registered for this application.".into()
        }
        PageReason::MissingRedirectUri => "The request names no redirect URI.".into(),
        PageReason::InvalidRequestUri => {
            "The request_uri is unknown, expired, used, or another application's.".into()
        }
    }
}

/// The redirect to the client, with the words for its reason as `error_description`.
fn redirect_url(redirect: &ErrorRedirect) -> String {
    redirect.url(&reason_words(&redirect.reason))
}

/// The words for an authorization error (`error_description`).
pub(crate) fn reason_words(reason: &AuthorizeReason) -> Cow<'static, str> {
    use AuthorizeReason as R;
    match reason {
        R::RepeatedParameter(name) => format!("{name} is given more than once").into(),
        R::SeveralResources => {
            "one resource per request: several resource parameters are not supported".into()
        }
        R::StateTooLong => "state is too long".into(),
        R::RequestObject => "request objects are not supported".into(),
        R::UnsupportedResponseType => "only response_type=code is supported".into(),
        R::MissingResponseType => "response_type is missing".into(),
        R::UnsupportedResponseMode => "only response_mode=query is supported".into(),
        R::UnauthorizedClient => "this client may not use the authorization code flow".into(),
        R::MalformedResource => "The resource must be an absolute URI without a fragment.".into(),
        R::UnknownResource => {
            "The resource is unknown, or this client may not ask for tokens for it.".into()
        }
        R::InvalidResourceScope => {
            "the requested scope is not a scope of the resource, or not allowed for this client"
                .into()
        }
        R::InvalidScope => "the requested scope is unknown or not allowed for this client".into(),
        R::MalformedCodeChallenge => "code_challenge is not a valid S256 challenge".into(),
        R::MalformedDpopJkt => {
            "dpop_jkt is not a JWK SHA-256 thumbprint (43 characters of base64url)".into()
        }
        R::CodeChallengeMethod => "code_challenge_method must be S256".into(),
        R::PkceRequired => {
            "PKCE is required: send code_challenge with code_challenge_method=S256".into()
        }
        R::NonceTooLong => "nonce is too long".into(),
        R::UnknownPrompt => "prompt must be none, login or consent".into(),
        R::PromptNoneCombined => "prompt=none cannot be combined".into(),
        R::MalformedMaxAge => "max_age must be a non-negative integer".into(),
        R::LoginRequired => "the user is not signed in".into(),
        R::ConsentRequired => "the user has not approved this application".into(),
        R::AccessDenied => "the user denied the request".into(),
        R::ParRequired => {
            "this server requires pushed authorization requests: push the request to /oauth/par and send its request_uri".into()
        }
    }
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Every core error as a page: bad input and refusals are 4xx pages saying what is wrong;
/// storage and server failures are 5xx pages that say nothing of their cause.
fn core_error_page(err: Error) -> Response {
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
        err @ Error::EmailOff => error_page(StatusCode::SERVICE_UNAVAILABLE, &err.to_string()),
        Error::Busy { retry_after } => with_retry_after(
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy; try again in a moment.",
            ),
            retry_after,
        ),
        // Named one by one, so that a new kind of error is a decision, not a 400 by default.
        err @ (Error::InvalidArgument { .. }
        | Error::Unauthenticated(_)
        | Error::PermissionDenied { .. }
        | Error::InsufficientScope { .. }
        | Error::NotFound(_)
        | Error::AlreadyExists(_)
        | Error::EmailNotVerified
        | Error::RequestRateLimited(_)) => error_page(StatusCode::BAD_REQUEST, &err.to_string()),
    }
}

pub(crate) fn page_response(description: &str, content_type: &str) -> RefOr<OpenApiResponse> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                content_type,
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            )
            .build(),
    )
}

/// The error pages any page can answer with ([`PageError`]).
pub struct PageErrors;

impl IntoResponses for PageErrors {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([
            (
                "400".to_owned(),
                page_response(
                    "An error page: the request cannot be carried out.",
                    "text/html",
                ),
            ),
            (
                "429".to_owned(),
                page_response("An error page: too many attempts.", "text/html"),
            ),
            (
                "500".to_owned(),
                page_response("An error page.", "text/html"),
            ),
            (
                "503".to_owned(),
                page_response("An error page: storage is not answering.", "text/html"),
            ),
        ])
    }
}

/// What every portal form can answer besides its own 200 page: the way to sign in, the CSRF
/// refusal, the error pages and the form rejections.
pub struct PortalFormErrors;

impl IntoResponses for PortalFormErrors {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        let mut responses = BTreeMap::from([
            (
                "303".to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description("Not signed in: to the sign-in page.")
                        .header(
                            "Location",
                            HeaderBuilder::new()
                                .schema(ObjectBuilder::new().schema_type(Type::String))
                                .description(Some("`/login?return_to=/portal`"))
                                .build(),
                        )
                        .build(),
                ),
            ),
            (
                "403".to_owned(),
                page_response(
                    "An error page: the CSRF token does not match the session.",
                    "text/html",
                ),
            ),
        ]);
        responses.extend(PageErrors::responses());
        responses.extend(FormErrors::responses());
        responses
    }
}

/// What a form body that cannot be read gets (axum's `Form` rejections).
pub struct FormErrors;

impl IntoResponses for FormErrors {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([
            (
                "415".to_owned(),
                page_response(
                    "The body is not `application/x-www-form-urlencoded`.",
                    "text/plain",
                ),
            ),
            (
                "422".to_owned(),
                page_response("A form field is missing or malformed.", "text/plain"),
            ),
        ])
    }
}
