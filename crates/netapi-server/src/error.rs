//! The one place where errors become responses. Handlers return [`ApiError`]; the request-id
//! middleware writes the envelope, so every error body carries the request id.

use axum::http::HeaderMap;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::limiter::RateStatus;
use netapi_core::{AuthFailure, Error};
use serde::Serialize;
use serde_json::Value;

/// The contract's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// 400
    InvalidArgument,
    /// 401
    Unauthenticated,
    /// 403
    PermissionDenied,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408: the request was not read and handled in time.
    DeadlineExceeded,
    /// 409
    AlreadyExists,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 429
    ResourceExhausted,
    /// 500
    Internal,
    /// 503
    Unavailable,
}

impl Code {
    fn status(self) -> StatusCode {
        match self {
            Self::InvalidArgument => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::DeadlineExceeded => StatusCode::REQUEST_TIMEOUT,
            Self::AlreadyExists => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The body of an error, without the request id (added by the middleware).
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// The code.
    pub code: Code,
    /// For people.
    pub message: String,
    /// Particulars (the field, the scope).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

/// An error on a non-OAuth endpoint.
#[derive(Debug)]
pub struct ApiError {
    body: ErrorBody,
    www_authenticate: Option<String>,
    retry_after: Option<u64>,
    rate: Option<RateStatus>,
}

/// The seed's message for a refused credential.
pub const AUTH_FAILED: &str = "Authentication failed. Please check your API key or token.";

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            body: ErrorBody {
                code,
                message: message.into(),
                details: Vec::new(),
            },
            www_authenticate: None,
            retry_after: None,
            rate: None,
        }
    }

    /// Adds a `details` entry.
    #[must_use]
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.body.details.push(detail);
        self
    }

    /// A 400 naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(Code::InvalidArgument, format!("'{field}' {message}"))
            .with_detail(serde_json::json!({ "field": field, "description": message }))
    }

    /// A 401 for a credential that was missing or bad.
    pub fn unauthenticated(failure: AuthFailure) -> Self {
        let (message, description) = match failure {
            AuthFailure::Missing => (AUTH_FAILED.to_owned(), None),
            AuthFailure::Expired => (
                "Authentication failed: the API key or token has expired.".to_owned(),
                Some("The credential has expired"),
            ),
            AuthFailure::Revoked => (
                AUTH_FAILED.to_owned(),
                Some("The credential has been revoked"),
            ),
            AuthFailure::Malformed | AuthFailure::Unknown => {
                (AUTH_FAILED.to_owned(), Some("The credential is not valid"))
            }
            AuthFailure::WrongResource => (
                "Authentication failed: the API key or token was made for another resource."
                    .to_owned(),
                Some("The credential was made for another resource (wrong audience)"),
            ),
        };
        let challenge = match description {
            None => "Bearer realm=\"netapi\"".to_owned(),
            Some(description) => format!(
                "Bearer realm=\"netapi\", error=\"invalid_token\", error_description=\"{description}\""
            ),
        };
        Self {
            www_authenticate: Some(challenge),
            ..Self::new(Code::Unauthenticated, message)
        }
    }
}

impl ApiError {
    /// Points a Bearer challenge at the resource's RFC 9728 metadata (`resource_metadata`),
    /// so that a client refused by a guarded API learns where to get a credential for it.
    #[must_use]
    pub fn with_resource_metadata(mut self, url: &str) -> Self {
        if let Some(challenge) = self.www_authenticate.take() {
            let rest = challenge
                .strip_prefix("Bearer realm=\"netapi\"")
                .unwrap_or_default();
            self.www_authenticate = Some(format!(
                "Bearer realm=\"netapi\", resource_metadata=\"{url}\"{rest}"
            ));
        }
        self
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidArgument {
                field: Some(field),
                message,
            } => Self::invalid(&field, message),
            Error::InvalidArgument {
                field: None,
                message,
            } => Self::new(Code::InvalidArgument, message),
            Error::Unauthenticated(failure) => Self::unauthenticated(failure),
            Error::PermissionDenied { scope, message } => {
                let mut error = Self::new(Code::PermissionDenied, message);
                if let Some(scope) = scope {
                    error =
                        error.with_detail(serde_json::json!({ "missing_scope": scope.as_str() }));
                    error.www_authenticate = Some(format!(
                        "Bearer realm=\"netapi\", error=\"insufficient_scope\", scope=\"{scope}\""
                    ));
                }
                error
            }
            Error::InsufficientScope { required, missing } => {
                let mut error = Self::new(
                    Code::PermissionDenied,
                    format!(
                        "This request needs the scope{} '{}'.",
                        if missing.len() == 1 { "" } else { "s" },
                        missing.join("' '").escape_default()
                    ),
                );
                for scope in &missing {
                    error = error.with_detail(serde_json::json!({ "missing_scope": scope }));
                }
                // RFC 6750 scope tokens have neither `"` nor `\`; a name with one is dropped
                // from the challenge rather than breaking its syntax.
                let scope = required
                    .split(' ')
                    .filter(|s| !s.contains(['"', '\\']))
                    .collect::<Vec<_>>()
                    .join(" ");
                error.www_authenticate = Some(format!(
                    "Bearer realm=\"netapi\", error=\"insufficient_scope\", scope=\"{scope}\""
                ));
                error
            }
            Error::NotFound(what) => Self::new(Code::NotFound, format!("No such {what}.")),
            Error::AlreadyExists(message) => Self::new(Code::AlreadyExists, message),
            Error::RateLimited { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(
                    Code::ResourceExhausted,
                    format!("Too many requests; retry in {retry_after} seconds."),
                )
            },
            Error::RequestRateLimited(status) => Self {
                retry_after: Some(status.reset),
                rate: Some(status),
                ..Self::new(
                    Code::ResourceExhausted,
                    format!(
                        "Rate limit of {} requests per minute exceeded; retry in {} seconds.",
                        status.limit, status.reset
                    ),
                )
            },
            Error::Unavailable => Self::new(
                Code::Unavailable,
                "The service is temporarily unavailable; try again shortly.",
            ),
            Error::Busy { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(
                    Code::Unavailable,
                    format!("The server is busy; retry in {retry_after} seconds."),
                )
            },
            Error::Internal(detail) | Error::Misconfigured(detail) => {
                tracing::error!(error = %detail, "internal error");
                Self::internal()
            }
        }
    }
}

impl ApiError {
    /// A 500 that says nothing of its cause.
    pub fn internal() -> Self {
        Self::new(
            Code::Internal,
            "An internal error occurred. Quote the request id when reporting it.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.body.code.status().into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self
            .www_authenticate
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(status) = self.rate {
            set_rate_headers(headers, status);
        }
        response.extensions_mut().insert(self.body);
        response
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
pub fn set_rate_headers(headers: &mut HeaderMap, status: RateStatus) {
    headers.insert("ratelimit-limit", HeaderValue::from(status.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(status.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(status.reset));
}
