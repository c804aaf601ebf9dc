//! The errors of the token, revocation and introspection endpoints: an RFC 6749 §5.2 code
//! and the typed reason behind it. Core says why; the server writes the words a client reads
//! (`error_description`), in one place.

use crate::error::Error;
use crate::model::GrantType;

/// RFC 6749 §5.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorKind {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `invalid_target` (RFC 8707): an unknown resource, or one the client may not use.
    InvalidTarget,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// `invalid_dpop_proof` (RFC 9449 §5)
    InvalidDpopProof,
    /// `use_dpop_nonce` (RFC 9449 §8): try again with the nonce in `DPoP-Nonce`.
    UseDpopNonce,
}

impl OAuthErrorKind {
    /// The RFC name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

/// Longest name of a parameter, grant type or scope a reason repeats back: they come from
/// the client, and an error must not echo an unbounded string.
const MAX_ECHOED: usize = 64;

/// At most [`MAX_ECHOED`] characters of `text`.
pub(crate) fn echoed(text: &str) -> String {
    text.chars().take(MAX_ECHOED).collect()
}

/// Why a request of the token, revocation or introspection endpoint was refused. Names the
/// client sent are kept to [`MAX_ECHOED`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthReason {
    /// The body is not `application/x-www-form-urlencoded`.
    NotAForm,
    /// A parameter is given more than once (RFC 6749 §3.2).
    RepeatedParameter(String),
    /// A required parameter is missing or empty.
    MissingParameter(&'static str),
    /// Both HTTP Basic and `client_secret` in the body.
    TwoClientAuthMethods,
    /// `client_id` in the body is not the one of the HTTP Basic credentials.
    ClientIdMismatch,
    /// Too many failed attempts from this address (429).
    RateLimited,
    /// The HTTP Basic credentials cannot be decoded.
    MalformedBasic,
    /// Neither HTTP Basic nor `client_id`.
    ClientAuthenticationRequired,
    /// An unknown client, a wrong secret, or a public client where a confidential one is
    /// needed: one reason for all, so that the answer does not tell which.
    ClientAuthenticationFailed,
    /// Too many failed client authentications from this address for this client (429).
    ClientLocked,
    /// The authorization code is unknown, expired, used or another client's.
    InvalidCode,
    /// The refresh token is unknown, expired, revoked, rotated or another client's.
    InvalidRefreshToken,
    /// `redirect_uri` is not the one of the authorization request.
    RedirectMismatch,
    /// The `code_verifier` does not match the code's challenge, or one of them is missing.
    PkceFailed,
    /// The resource a code or refresh token was granted for has been deleted.
    GrantResourceGone,
    /// The client is not registered for this grant type.
    GrantNotAllowed(GrantType),
    /// A grant type the server does not know.
    UnsupportedGrantType(String),
    /// A scope Net API does not have.
    UnknownScope(String),
    /// A scope beyond what the client, or the grant, allows.
    ScopeNotAllowed(String),
    /// A name that is not a scope of the resource asked for.
    NotAResourceScope {
        /// The name asked for.
        scope: String,
        /// The resource's identifier.
        resource: String,
    },
    /// `resource` is not an absolute URI without a fragment, or too long.
    MalformedResource,
    /// No live resource has that identifier, or the client does not list it.
    UnknownResource,
    /// `resource` is not the one the code or refresh token was granted for.
    ResourceNotGranted,
    /// More than one `resource` (RFC 8707 allows it; this server supports one per request).
    SeveralResources,
    /// No signing key is loaded.
    NoSigningKey,
    /// Something failed inside the server (logged where it happened).
    Internal,
    /// Storage is not answering.
    Unavailable,
    /// The DPoP proof was refused.
    Dpop(crate::dpop::DpopFailure),
    /// The DPoP proof needs this server nonce (sent in `DPoP-Nonce`).
    DpopNonce(String),
}

impl OAuthReason {
    /// The RFC 6749 §5.2 code this reason is answered with.
    pub const fn kind(&self) -> OAuthErrorKind {
        use OAuthErrorKind as K;
        match self {
            Self::NotAForm
            | Self::RepeatedParameter(_)
            | Self::MissingParameter(_)
            | Self::TwoClientAuthMethods
            | Self::ClientIdMismatch
            | Self::RateLimited => K::InvalidRequest,
            Self::MalformedBasic
            | Self::ClientAuthenticationRequired
            | Self::ClientAuthenticationFailed
            | Self::ClientLocked => K::InvalidClient,
            Self::InvalidCode
            | Self::InvalidRefreshToken
            | Self::RedirectMismatch
            | Self::PkceFailed
            | Self::GrantResourceGone => K::InvalidGrant,
            Self::GrantNotAllowed(_) => K::UnauthorizedClient,
            Self::UnsupportedGrantType(_) => K::UnsupportedGrantType,
            Self::UnknownScope(_) | Self::ScopeNotAllowed(_) | Self::NotAResourceScope { .. } => {
                K::InvalidScope
            }
            Self::MalformedResource
            | Self::UnknownResource
            | Self::ResourceNotGranted
            | Self::SeveralResources => K::InvalidTarget,
            Self::NoSigningKey | Self::Internal => K::ServerError,
            Self::Unavailable => K::TemporarilyUnavailable,
            Self::Dpop(_) => K::InvalidDpopProof,
            Self::DpopNonce(_) => K::UseDpopNonce,
        }
    }
}

/// An error of the OAuth endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// Why.
    pub reason: OAuthReason,
    /// Set when the answer is 429: seconds to wait.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    /// The RFC 6749 §5.2 code.
    pub const fn kind(&self) -> OAuthErrorKind {
        self.reason.kind()
    }
}

impl From<OAuthReason> for OAuthError {
    fn from(reason: OAuthReason) -> Self {
        Self {
            reason,
            retry_after: None,
        }
    }
}

impl From<Error> for OAuthError {
    fn from(err: Error) -> Self {
        match err {
            Error::Unavailable => OAuthReason::Unavailable.into(),
            Error::RateLimited { retry_after } => Self {
                reason: OAuthReason::RateLimited,
                retry_after: Some(retry_after),
            },
            other => {
                tracing::error!(error = %other, "OAuth request failed");
                OAuthReason::Internal.into()
            }
        }
    }
}

impl From<crate::error::StoreError> for OAuthError {
    fn from(err: crate::error::StoreError) -> Self {
        Error::from(err).into()
    }
}
