//! The OAuth endpoints' errors (RFC 6749 §5.2's shape, not the `/v1` envelope, because that
//! is what OAuth client libraries parse): the one place where they become responses, where
//! core's reasons get their words (`error_description`), and their description in the
//! document.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::service::{OAuthError, OAuthErrorKind, OAuthReason, ParRefusal};
use std::borrow::Cow;
use std::collections::BTreeMap;
use utoipa::IntoResponses;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response as OpenApiResponse, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

use crate::dto::NO_STORE;
use crate::dto::oauth::OAuthErrorBody;

/// An OAuth error response, remembering whether the client used HTTP Basic.
#[derive(Debug)]
pub struct OAuthFailure {
    pub(super) error: OAuthError,
    pub(super) basic: bool,
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let kind = self.error.kind();
        let status = if self.error.retry_after.is_some() {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            match kind {
                OAuthErrorKind::InvalidClient if self.basic => StatusCode::UNAUTHORIZED,
                OAuthErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                OAuthErrorKind::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            }
        };
        let retry_after = self.error.retry_after;
        let nonce = match &self.error.reason {
            OAuthReason::DpopNonce(nonce) => HeaderValue::from_str(nonce).ok(),
            _ => None,
        };
        let body = OAuthErrorBody::new(kind, description(&self.error.reason).into_owned());
        let mut response = (status, NO_STORE, Json(body)).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"netapi\", charset=\"UTF-8\""),
            );
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(nonce) = nonce {
            headers.insert(DPOP_NONCE, nonce);
        }
        response
    }
}

/// RFC 9449 §8: the header that hands out a server nonce.
pub(crate) const DPOP_NONCE: axum::http::HeaderName =
    axum::http::HeaderName::from_static("dpop-nonce");

/// The words a client reads for each reason (never a secret: reasons carry none).
fn description(reason: &OAuthReason) -> Cow<'static, str> {
    use OAuthReason as R;
    match reason {
        R::NotAForm => "The body must be application/x-www-form-urlencoded.".into(),
        R::RepeatedParameter(name) => format!("The parameter '{name}' is repeated.").into(),
        R::MissingParameter(name) => format!("The parameter '{name}' is missing.").into(),
        R::TwoClientAuthMethods => {
            "Use one client authentication method, not both HTTP Basic and client_secret.".into()
        }
        R::ClientIdMismatch => {
            "client_id in the body does not match the HTTP Basic credentials.".into()
        }
        R::RateLimited => "Too many failed attempts; try again later.".into(),
        R::MalformedBasic => "The HTTP Basic credentials are malformed.".into(),
        R::ClientAuthenticationRequired => "Client authentication is required.".into(),
        R::ClientAuthenticationFailed => "Client authentication failed.".into(),
        R::UnsupportedAssertionType => format!(
            "client_assertion_type must be {} and come with client_assertion.",
            netapi_core::service::JWT_BEARER_ASSERTION
        )
        .into(),
        R::RequestObjectNotSupported => {
            "Request objects (the request parameter) are not supported; push the parameters themselves.".into()
        }
        R::RequestUriAtPar => "request_uri must not be sent to the pushed authorization request endpoint.".into(),
        R::PushedRequestRefused(ParRefusal::Page(page)) => crate::web::page_words(page),
        R::PushedRequestRefused(ParRefusal::Reason(reason)) => crate::web::reason_words(reason),
        R::ClientLocked => "Too many failed client authentications; try again later.".into(),
        R::InvalidCode => "The authorization code is invalid, expired or used.".into(),
        R::InvalidRefreshToken => "The refresh token is invalid, expired or revoked.".into(),
        R::RedirectMismatch => "redirect_uri does not match the authorization request.".into(),
        R::PkceFailed => "PKCE verification failed.".into(),
        R::GrantResourceGone => "The resource of this grant no longer exists.".into(),
        R::InvalidDeviceCode => "The device code is invalid or already used.".into(),
        R::AuthorizationPending => {
            "The user has not yet approved the request; keep polling at the interval.".into()
        }
        R::SlowDown => "Polling too fast: wait 5 seconds more between requests.".into(),
        R::DeviceAccessDenied => "The user denied the request.".into(),
        R::DeviceCodeExpired => {
            "The device code expired; start again at the device authorization endpoint.".into()
        }
        R::GrantNotAllowed(grant) => {
            format!("This client may not use the {} grant.", grant.as_str()).into()
        }
        R::UnsupportedGrantType(name) => {
            format!("The grant type '{name}' is not supported.").into()
        }
        R::UnknownScope(name) => format!("Unknown scope '{name}'.").into(),
        R::ScopeNotAllowed(name) => format!("The scope '{name}' is not allowed here.").into(),
        R::NotAResourceScope { scope, resource } => format!(
            "'{}' is not a scope of the resource {resource}.",
            scope.escape_default()
        )
        .into(),
        R::MalformedResource => "The resource must be an absolute URI without a fragment.".into(),
        R::UnknownResource => {
            "The resource is unknown, or this client may not ask for tokens for it.".into()
        }
        R::ResourceNotGranted => "The resource must be the one the grant was made for.".into(),
        R::SeveralResources => {
            "One resource per request: several resource parameters are not supported.".into()
        }
        R::UnsupportedTokenType { parameter, value } => format!(
            "{parameter} '{}' is not supported: only urn:ietf:params:oauth:token-type:access_token is.",
            value.escape_default()
        )
        .into(),
        R::ActorTokenTypeAlone => "actor_token_type must not be sent without actor_token.".into(),
        R::TokenTooLong(name) => format!("The {name} is too long.").into(),
        R::InvalidSubjectToken => {
            "The subject_token is invalid, expired or revoked, or this client may not exchange it."
                .into()
        }
        R::InvalidActorToken => {
            "The actor_token must be a valid access token issued to this client.".into()
        }
        R::DelegationTooDeep => "The subject_token's delegation chain is too long.".into(),
        R::ExchangeNotAllowed => {
            "This client may not exchange tokens: it must be confidential and list token_exchange_resources."
                .into()
        }
        R::NoScopeForTarget => {
            "None of the subject_token's scopes is a scope of the target that its user holds there."
                .into()
        }
        R::NoSigningKey => "No signing key is available.".into(),
        R::Internal => "The server could not complete the request.".into(),
        R::Unavailable => "The server cannot reach its storage; try again shortly.".into(),
        R::Dpop(failure) => format!("{}.", failure.description()).into(),
        R::DpopNonce(_) => "Authorization server requires nonce in DPoP proof.".into(),
    }
}

/// The OAuth error responses of the token, revocation and introspection endpoints.
pub(crate) struct OAuthErrors;

impl IntoResponses for OAuthErrors {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        let oauth = |description: &str, headers: &[(&str, &str)]| {
            let mut builder = ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("OAuthError")))
                    .build(),
            );
            for (name, text) in headers {
                builder = builder.header(
                    *name,
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some(*text))
                        .build(),
                );
            }
            RefOr::T(builder.build())
        };
        let no_store = [("Cache-Control", "`no-store`"), ("Pragma", "`no-cache`")];
        BTreeMap::from([
            (
                "400".to_owned(),
                oauth(
                    "An RFC 6749 §5.2 error: `invalid_request`, `invalid_grant`, \
                     `invalid_client` (without HTTP Basic), `unauthorized_client`, \
                     `unsupported_grant_type`, `invalid_scope`, `invalid_target` (RFC 8707); with \
                     the device grant (RFC 8628 §3.5) also `authorization_pending`, \
                     `slow_down`, `access_denied`, `expired_token`; RFC 9449's \
                     `invalid_dpop_proof`, and `use_dpop_nonce` with a `DPoP-Nonce` header.",
                    &[
                        no_store[0],
                        no_store[1],
                        (
                            "DPoP-Nonce",
                            "With `use_dpop_nonce`: the nonce to put in the next DPoP proof.",
                        ),
                    ],
                ),
            ),
            (
                "401".to_owned(),
                oauth(
                    "`invalid_client` after HTTP Basic client authentication.",
                    &[
                        no_store[0],
                        no_store[1],
                        (
                            "WWW-Authenticate",
                            "`Basic realm=\"netapi\", charset=\"UTF-8\"`",
                        ),
                    ],
                ),
            ),
            (
                "429".to_owned(),
                oauth(
                    "Too many failed client authentications from this address or for this \
                     client, or too many pushed requests or device authorizations of this \
                     client in a minute.",
                    &[
                        no_store[0],
                        no_store[1],
                        ("Retry-After", "Seconds to wait before trying again."),
                    ],
                ),
            ),
            ("500".to_owned(), oauth("`server_error`.", &no_store)),
            (
                "503".to_owned(),
                oauth("`temporarily_unavailable`.", &no_store),
            ),
        ])
    }
}
