//! Refusals, answered as Net API answers them: the JSON error envelope
//! (`{"error": {"code", "message", "request_id", "details"?}}`) and an RFC 6750
//! `WWW-Authenticate` challenge.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The message of every 401 but an expiry (the seed's wording).
const AUTHENTICATION_FAILED: &str = "Authentication failed. Please check your API key or token.";
/// The longest `X-Request-Id` taken from a request; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectionKind {
    /// No `Authorization: Bearer` credential (401, a bare challenge).
    Missing,
    /// A credential was presented but is not good here: unknown, malformed, revoked,
    /// expired, or made for another resource (401 `invalid_token`).
    InvalidToken {
        /// Says why, for the challenge's `error_description` (never the credential).
        description: &'static str,
    },
    /// The credential lacks a scope the route needs (403 `insufficient_scope`).
    InsufficientScope {
        /// The scope that was required.
        scope: String,
    },
    /// The credential's per-minute limit at the issuer is used up (429).
    RateLimited {
        /// Seconds until it resets.
        retry_after: u64,
    },
    /// The issuer could not be asked (503); nothing is cached.
    Unavailable,
    /// DPoP (RFC 9449) refused the request (401 with a `DPoP` challenge): a bound token
    /// without a good proof (`invalid_dpop_proof`), a bound token sent as a bearer token or
    /// a bearer credential sent with the DPoP scheme (`invalid_token`).
    Dpop {
        /// `invalid_token` or `invalid_dpop_proof`.
        error: &'static str,
        /// Says why (never the credential or the proof).
        description: &'static str,
    },
}

/// A refusal, ready to become a response ([`IntoResponse`]).
#[derive(Debug, Clone)]
pub struct Rejection {
    kind: RejectionKind,
    /// `Bearer realm="netapi", resource_metadata="..."`: the start of every challenge.
    challenge: Arc<str>,
    request_id: Option<String>,
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, challenge: Arc<str>) -> Self {
        Self {
            kind,
            challenge,
            request_id: None,
        }
    }

    /// Why the request was refused.
    pub fn kind(&self) -> &RejectionKind {
        &self.kind
    }

    /// The HTTP status the refusal answers with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::Missing
            | RejectionKind::InvalidToken { .. }
            | RejectionKind::Dpop { .. } => StatusCode::UNAUTHORIZED,
            RejectionKind::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            RejectionKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            RejectionKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Answers with the request's own `X-Request-Id` (when it is a sensible one).
    pub(crate) fn for_request(mut self, headers: &HeaderMap) -> Self {
        self.request_id = request_id_of(headers);
        self
    }

    fn code_and_message(&self) -> (&'static str, String) {
        match &self.kind {
            RejectionKind::Missing => ("UNAUTHENTICATED", AUTHENTICATION_FAILED.to_owned()),
            // An expired credential says so (Net API's contract); other reasons stay in the
            // challenge's `error_description`.
            RejectionKind::InvalidToken { description } => (
                "UNAUTHENTICATED",
                if description.contains("expired") {
                    (*description).to_owned()
                } else {
                    AUTHENTICATION_FAILED.to_owned()
                },
            ),
            RejectionKind::Dpop { description, .. } => (
                "UNAUTHENTICATED",
                format!("Authentication failed: {description}"),
            ),
            RejectionKind::InsufficientScope { scope } => (
                "PERMISSION_DENIED",
                format!("This request needs the scope '{}'.", scope.escape_default()),
            ),
            RejectionKind::RateLimited { .. } => (
                "RESOURCE_EXHAUSTED",
                "Too many requests with this credential. Retry later.".to_owned(),
            ),
            RejectionKind::Unavailable => (
                "UNAVAILABLE",
                "The credential could not be checked now. Retry later.".to_owned(),
            ),
        }
    }

    fn www_authenticate(&self) -> Option<String> {
        let challenge = &self.challenge;
        match &self.kind {
            RejectionKind::Missing => Some(challenge.to_string()),
            RejectionKind::InvalidToken { description } => Some(format!(
                "{challenge}, error=\"invalid_token\", error_description=\"{description}\""
            )),
            // RFC 6750 scope tokens have neither `"` nor `\`: a name with one (which no
            // Net API scope has) leaves the attribute out rather than break the syntax.
            RejectionKind::InsufficientScope { scope } if scope.contains(['"', '\\']) => {
                Some(format!("{challenge}, error=\"insufficient_scope\""))
            }
            RejectionKind::InsufficientScope { scope } => Some(format!(
                "{challenge}, error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            RejectionKind::Dpop { error, description } => Some(format!(
                "DPoP algs=\"{}\", error=\"{error}\", error_description=\"{description}\"",
                crate::dpop::ALGORITHMS
            )),
            RejectionKind::RateLimited { .. } | RejectionKind::Unavailable => None,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code_and_message().1)
    }
}

impl std::error::Error for Rejection {}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (code, message) = self.code_and_message();
        let request_id = self.request_id.clone().unwrap_or_else(new_request_id);
        let mut error = json!({ "code": code, "message": message, "request_id": request_id });
        if let RejectionKind::InsufficientScope { scope } = &self.kind {
            error["details"] = json!([{ "missing_scope": scope }]);
        }
        let mut response = (self.status(), axum::Json(json!({ "error": error }))).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert("x-request-id", value);
        }
        if let Some(value) = self
            .www_authenticate()
            .and_then(|challenge| HeaderValue::from_str(&challenge).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let RejectionKind::RateLimited { retry_after } = self.kind {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The request's `X-Request-Id` when it is short and made of `[A-Za-z0-9._-]`.
fn request_id_of(headers: &HeaderMap) -> Option<String> {
    let id = headers.get("x-request-id")?.to_str().ok()?;
    let sensible = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    sensible.then(|| id.to_owned())
}

/// A fresh request id: 16 random bytes in hex.
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    // The system's random source failing leaves zeros: an id, not a secret.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge() -> Arc<str> {
        Arc::from("Bearer realm=\"netapi\"")
    }

    #[test]
    fn invalid_token_challenge_names_the_error() {
        let response = Rejection::new(
            RejectionKind::InvalidToken {
                description: "The access token has expired.",
            },
            challenge(),
        )
        .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"netapi\", error=\"invalid_token\", error_description=\"The access token has expired.\""
        );
        assert!(response.headers().contains_key("x-request-id"));
    }

    #[test]
    fn a_sensible_request_id_is_kept_and_a_strange_one_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id_of(&headers).as_deref(), Some("abc-123"));
        headers.insert("x-request-id", HeaderValue::from_static("a b\"c"));
        assert_eq!(request_id_of(&headers), None);
        assert_eq!(new_request_id().len(), 32);
    }
}
