//! The errors of the token, revocation and introspection endpoints: an RFC 6749 §5.2 code
//! and the typed reason behind it. Core says why; the server writes the words a client reads
//! (`error_description`), in one place.

use super::authorize::{AuthorizeReason, PageReason};
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
    /// `authorization_pending` (RFC 8628 §3.5): the person has not decided yet.
    AuthorizationPending,
    /// `slow_down` (RFC 8628 §3.5): polling too fast; the interval grew by 5 seconds.
    SlowDown,
    /// `access_denied` (RFC 8628 §3.5): the person denied the request.
    AccessDenied,
    /// `expired_token` (RFC 8628 §3.5): the device code expired.
    ExpiredToken,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// `request_not_supported` (OpenID Connect Core §3.1.2.6; RFC 9126 §2.1 for `request`).
    RequestNotSupported,
    /// `unsupported_response_type` (RFC 6749 §4.1.2.1), answered by the PAR endpoint.
    UnsupportedResponseType,
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
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::RequestNotSupported => "request_not_supported",
            Self::UnsupportedResponseType => "unsupported_response_type",
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
    /// A `client_assertion_type` other than JWT bearer (RFC 7523), or an assertion without it.
    UnsupportedAssertionType,
    /// `request` (a request object, RFC 9101) at the PAR endpoint: not supported.
    RequestObjectNotSupported,
    /// `request_uri` sent to the PAR endpoint (RFC 9126 §2.1 forbids it).
    RequestUriAtPar,
    /// The pushed authorization request is not one `/oauth/authorize` would take: why it
    /// would refuse it (RFC 9126 §2.3).
    PushedRequestRefused(ParRefusal),
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
    /// The device code is unknown, another client's, or already redeemed.
    InvalidDeviceCode,
    /// The person has not yet approved or denied the device request.
    AuthorizationPending,
    /// The device polls faster than its interval.
    SlowDown,
    /// The person denied the device request.
    DeviceAccessDenied,
    /// The device code expired before it was approved and redeemed.
    DeviceCodeExpired,
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
    /// A token type other than an access token (RFC 8693 `subject_token_type`,
    /// `actor_token_type`, `requested_token_type`).
    UnsupportedTokenType {
        /// The parameter.
        parameter: &'static str,
        /// Its value.
        value: String,
    },
    /// `actor_token_type` without `actor_token`.
    ActorTokenTypeAlone,
    /// A `subject_token` or `actor_token` longer than any Net API issues.
    TokenTooLong(&'static str),
    /// The subject token is not a live access token of this server for a live user (RFC
    /// 8693 §2.2.2: `invalid_request`), or one the exchanging client may not learn about.
    InvalidSubjectToken,
    /// The actor token is not a live access token issued to the exchanging client.
    InvalidActorToken,
    /// The subject token's delegation chain (`act`) is already as deep as allowed.
    DelegationTooDeep,
    /// The client may not use token exchange: a public client, or one that lists no
    /// `token_exchange_resources`.
    ExchangeNotAllowed,
    /// No scope of the subject token is a scope of the target that its user holds there.
    NoScopeForTarget,
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
            | Self::RateLimited
            | Self::UnsupportedTokenType { .. }
            | Self::ActorTokenTypeAlone
            | Self::TokenTooLong(_)
            | Self::InvalidSubjectToken
            | Self::InvalidActorToken
            | Self::DelegationTooDeep
            | Self::UnsupportedAssertionType
            | Self::RequestUriAtPar => K::InvalidRequest,
            Self::RequestObjectNotSupported => K::RequestNotSupported,
            Self::PushedRequestRefused(ParRefusal::Page(_)) => K::InvalidRequest,
            Self::PushedRequestRefused(ParRefusal::Reason(reason)) => authorize_kind(reason),
            Self::MalformedBasic
            | Self::ClientAuthenticationRequired
            | Self::ClientAuthenticationFailed
            | Self::ClientLocked => K::InvalidClient,
            Self::InvalidCode
            | Self::InvalidRefreshToken
            | Self::RedirectMismatch
            | Self::PkceFailed
            | Self::GrantResourceGone
            | Self::InvalidDeviceCode => K::InvalidGrant,
            Self::AuthorizationPending => K::AuthorizationPending,
            Self::SlowDown => K::SlowDown,
            Self::DeviceAccessDenied => K::AccessDenied,
            Self::DeviceCodeExpired => K::ExpiredToken,
            Self::GrantNotAllowed(_) | Self::ExchangeNotAllowed => K::UnauthorizedClient,
            Self::UnsupportedGrantType(_) => K::UnsupportedGrantType,
            Self::UnknownScope(_)
            | Self::ScopeNotAllowed(_)
            | Self::NotAResourceScope { .. }
            | Self::NoScopeForTarget => K::InvalidScope,
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

/// Why `/oauth/par` refuses an authorization request: what `/oauth/authorize` would say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParRefusal {
    /// The client or redirect URI is wrong (a page at `/oauth/authorize`).
    Page(PageReason),
    /// An error `/oauth/authorize` would redirect with.
    Reason(AuthorizeReason),
}

/// The code of an authorization error, answered at the PAR endpoint.
const fn authorize_kind(reason: &AuthorizeReason) -> OAuthErrorKind {
    use AuthorizeReason as R;
    use OAuthErrorKind as K;
    match reason {
        R::SeveralResources | R::MalformedResource | R::UnknownResource => K::InvalidTarget,
        R::RequestObject => K::RequestNotSupported,
        R::UnsupportedResponseType => K::UnsupportedResponseType,
        R::UnauthorizedClient => K::UnauthorizedClient,
        R::InvalidResourceScope | R::InvalidScope => K::InvalidScope,
        _ => K::InvalidRequest,
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
