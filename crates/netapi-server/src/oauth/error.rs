//! The OAuth endpoints' errors (RFC 6749 §5.2's shape, not the `/v1` envelope, because that
//! is what OAuth client libraries parse): the one place where they become responses, and
//! their description in the document.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::service::{OAuthError, OAuthErrorKind};
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
        let status = if self.error.retry_after.is_some() {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            match self.error.kind {
                OAuthErrorKind::InvalidClient if self.basic => StatusCode::UNAUTHORIZED,
                OAuthErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                OAuthErrorKind::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            }
        };
        let retry_after = self.error.retry_after;
        let mut response =
            (status, NO_STORE, Json(OAuthErrorBody::from(self.error))).into_response();
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
        response
    }
}

pub(super) fn failure(kind: OAuthErrorKind, description: &str) -> OAuthFailure {
    OAuthFailure {
        error: OAuthError::new(kind, description),
        basic: false,
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
                     `unsupported_grant_type`, `invalid_scope`.",
                    &no_store,
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
                     client.",
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
