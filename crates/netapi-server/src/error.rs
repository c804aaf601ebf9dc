//! The JSON API's errors: the one place where they become responses, and their description
//! in the document. Handlers return [`ApiError`]; the request-id middleware writes the
//! envelope (`dto::ErrorEnvelope`), so every error body carries the request id.

use axum::http::HeaderMap;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::limiter::RateStatus;
use netapi_core::{AuthFailure, Error};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::IntoResponses;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response as OpenApiResponse, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

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
    pub details: Vec<BTreeMap<String, Value>>,
}

/// An error on a non-OAuth endpoint.
#[derive(Debug)]
pub struct ApiError {
    body: ErrorBody,
    www_authenticate: Option<String>,
    retry_after: Option<u64>,
    rate: Option<RateStatus>,
}

/// Between the challenge and a DPoP nonce (RFC 9449 §9, `DPoP-Nonce`) in `www_authenticate`:
/// a header value has no line feed, and a field of its own would make every `ApiError`
/// larger.
const NONCE_SEPARATOR: char = '\n';

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

    /// Hands out a DPoP nonce (`DPoP-Nonce`) with a `use_dpop_nonce` refusal.
    #[must_use]
    pub fn with_dpop_nonce(mut self, nonce: String) -> Self {
        if let Some(challenge) = self.www_authenticate.as_mut() {
            challenge.push(NONCE_SEPARATOR);
            challenge.push_str(&nonce);
        }
        self
    }

    /// Adds a `details` entry.
    #[must_use]
    pub fn with_detail(mut self, detail: Value) -> Self {
        if let Value::Object(fields) = detail {
            self.body.details.push(fields.into_iter().collect());
        }
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
        if let AuthFailure::Dpop(dpop) = failure {
            // RFC 9449 §7.1: the DPoP scheme's challenge, with the algorithms accepted.
            return Self {
                www_authenticate: Some(format!(
                    "DPoP algs=\"{}\", error=\"{}\", error_description=\"{}\"",
                    netapi_core::dpop::ALGORITHMS.join(" "),
                    dpop.code(),
                    dpop.description()
                )),
                ..Self::new(
                    Code::Unauthenticated,
                    format!("Authentication failed: {}.", dpop.description()),
                )
            };
        }
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
            AuthFailure::Disabled => (
                "Authentication failed: this account has been disabled by an administrator."
                    .to_owned(),
                Some("The account is disabled"),
            ),
            AuthFailure::Dpop(_) => (AUTH_FAILED.to_owned(), None),
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
        if let Some(mut challenge) = self.www_authenticate.take() {
            let nonce = challenge
                .find(NONCE_SEPARATOR)
                .map(|at| challenge.split_off(at))
                .unwrap_or_default();
            let with_metadata = match challenge.strip_prefix("Bearer realm=\"netapi\"") {
                Some(rest) => {
                    format!("Bearer realm=\"netapi\", resource_metadata=\"{url}\"{rest}")
                }
                // A DPoP challenge keeps its scheme.
                None => format!("{challenge}, resource_metadata=\"{url}\""),
            };
            self.www_authenticate = Some(with_metadata + &nonce);
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
            err @ Error::EmailOff => Self::new(Code::Unavailable, err.to_string()),
            err @ Error::EmailNotVerified => Self::new(Code::PermissionDenied, err.to_string()),
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
    /// Whether the server failed (storage, a bug) rather than the request.
    pub fn is_server_failure(&self) -> bool {
        matches!(self.body.code, Code::Internal | Code::Unavailable)
    }

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
        if let Some(text) = &self.www_authenticate {
            let (challenge, nonce) = text
                .split_once(NONCE_SEPARATOR)
                .map_or((text.as_str(), None), |(c, n)| (c, Some(n)));
            if let Ok(challenge) = HeaderValue::from_str(challenge) {
                headers.insert(header::WWW_AUTHENTICATE, challenge);
            }
            if let Some(nonce) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
                headers.insert("dpop-nonce", nonce);
            }
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

// ---------------------------------------------------------------------------------------------
// Reusable error responses, referenced by the operations.

/// A reusable error response: its component name, status, description and extra headers.
type ErrorResponse = (
    &'static str,
    u16,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Every error response of the envelope.
pub(crate) const ERRORS: &[ErrorResponse] = &[
    (
        "InvalidArgument",
        400,
        "INVALID_ARGUMENT: malformed JSON, a field that fails validation, a bad query parameter \
         (`details` names the field).",
        &[],
    ),
    (
        "Unauthenticated",
        401,
        "UNAUTHENTICATED: no credential, or an unknown, malformed, revoked or expired one.",
        &[(
            "WWW-Authenticate",
            "`Bearer realm=\"netapi\"`, with `error=\"invalid_token\"` and \
             `error_description` for a credential that was presented but is bad (RFC 6750).",
        )],
    ),
    (
        "PermissionDenied",
        403,
        "PERMISSION_DENIED: a missing scope (named in `details`, with `WWW-Authenticate: Bearer \
         error=\"insufficient_scope\"`) or something only an administrator may do.",
        &[],
    ),
    (
        "NotFound",
        404,
        "NOT_FOUND: no such resource, or one of another user.",
        &[],
    ),
    (
        "MethodNotAllowed",
        405,
        "METHOD_NOT_ALLOWED: the path exists but not with this method.",
        &[("Allow", "The methods the path supports.")],
    ),
    (
        "DeadlineExceeded",
        408,
        "DEADLINE_EXCEEDED: the request was not received and handled in time.",
        &[],
    ),
    (
        "AlreadyExists",
        409,
        "ALREADY_EXISTS: the email is already registered.",
        &[],
    ),
    (
        "PayloadTooLarge",
        413,
        "PAYLOAD_TOO_LARGE: the body is over the limit (64 KiB by default).",
        &[],
    ),
    (
        "UnsupportedMediaType",
        415,
        "UNSUPPORTED_MEDIA_TYPE: a body that is not `application/json`.",
        &[],
    ),
    (
        "ResourceExhausted",
        429,
        "RESOURCE_EXHAUSTED: too many failed authentications or registrations from this \
         address, or the credential's request rate limit.",
        &[("Retry-After", "Seconds to wait before trying again.")],
    ),
    (
        "Internal",
        500,
        "INTERNAL: an unexpected failure; quote the `request_id`.",
        &[],
    ),
    (
        "Unavailable",
        503,
        "UNAVAILABLE: storage down or not writable, the server is shutting down, or (at \
         registration) the password-hashing queue is full, then with `Retry-After`.",
        &[],
    ),
];

pub(crate) fn error_response(description: &str, headers: &[(&str, &str)]) -> OpenApiResponse {
    let mut builder = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
            .build(),
    );
    for (name, text) in headers {
        let schema = if *name == "Retry-After" {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
        } else {
            ObjectBuilder::new().schema_type(Type::String)
        };
        builder = builder.header(
            *name,
            HeaderBuilder::new()
                .schema(schema)
                .description(Some(*text))
                .build(),
        );
    }
    builder.build()
}

macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($component:literal),+) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
                [$($component),+]
                    .into_iter()
                    .filter_map(|component| {
                        ERRORS.iter().find(|e| e.0 == component).map(|e| {
                            (e.1.to_string(), Ref::from_response_name(component).into())
                        })
                    })
                    .collect()
            }
        }
    };
}

error_set!(
    /// What any authenticated `/v1` call can get.
    AuthErrors: "Unauthenticated", "PermissionDenied", "ResourceExhausted", "Internal", "Unavailable"
);
error_set!(
    /// What a JSON body can get.
    BodyErrors: "InvalidArgument", "DeadlineExceeded", "PayloadTooLarge", "UnsupportedMediaType"
);
error_set!(
    /// A bad query parameter or argument.
    InvalidErrors: "InvalidArgument"
);
error_set!(
    /// Storage not answering.
    UnavailableErrors: "Unavailable"
);
error_set!(
    /// A resource named in the path that is not there (or not the caller's).
    NotFoundErrors: "NotFound"
);
error_set!(
    /// Something that is already there.
    ConflictErrors: "AlreadyExists"
);
error_set!(
    /// Storage trouble.
    ServiceErrors: "Internal", "Unavailable"
);
error_set!(
    /// Refused by policy (registration).
    ForbiddenErrors: "PermissionDenied"
);
error_set!(
    /// A per-source limit (registrations).
    SourceLimitErrors: "ResourceExhausted"
);
