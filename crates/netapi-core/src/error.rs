//! Domain errors. The HTTP layer maps each to one status and one envelope, in one place.

use crate::scope::Scope;

/// Why a credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential at all.
    Missing,
    /// Not a credential Net API issues, or its checksum or signature is wrong.
    Malformed,
    /// Well formed but unknown.
    Unknown,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Made for another resource than the one it was presented to (its audience).
    WrongResource,
    /// The account is disabled (said only to whoever gave its right password).
    Disabled,
    /// DPoP (RFC 9449) refused it: a bound token without its proof, a bad proof, or a
    /// credential that is not bound presented with the DPoP scheme.
    Dpop(crate::dpop::DpopFailure),
}

impl AuthFailure {
    /// A short reason for logs, metrics and audit events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::WrongResource => "wrong_resource",
            Self::Disabled => "disabled",
            Self::Dpop(failure) => failure.as_str(),
        }
    }
}

/// A domain error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; `field` names the offending field.
    #[error("{message}")]
    InvalidArgument {
        /// The JSON field or query parameter.
        field: Option<String>,
        /// What is wrong with it.
        message: String,
    },
    /// The credential was missing or bad.
    #[error("unauthenticated: {}", .0.as_str())]
    Unauthenticated(AuthFailure),
    /// Authenticated, but not allowed.
    #[error("{message}")]
    PermissionDenied {
        /// The scope that was missing, if that is why.
        scope: Option<Scope>,
        /// What was refused.
        message: String,
    },
    /// Authenticated, but without every scope a resource's request needs (forward auth: the
    /// scopes are the caller's list, so they may be names no scope has).
    #[error("missing scopes: {}", missing.join(" "))]
    InsufficientScope {
        /// Every scope the request needs, space-separated.
        required: String,
        /// Those the credential does not hold.
        missing: Vec<String>,
    },
    /// No such thing (or one the caller may not know of).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Unique constraint.
    #[error("{0}")]
    AlreadyExists(String),
    /// Too many attempts.
    #[error("too many requests")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The credential used up its requests for this minute.
    #[error("rate limit exceeded")]
    RequestRateLimited(crate::limiter::RateStatus),
    /// Storage cannot be reached.
    #[error("service unavailable")]
    Unavailable,
    /// The request needs email, and no mail server is set up (`smtp_url`).
    #[error("Email is not set up on this server, so this is not available; ask its operator.")]
    EmailOff,
    /// The password was right, but `require_verified_email` is on and the user has not
    /// verified their address yet.
    #[error(
        "Verify your email address before you sign in: follow the link in the message we sent you."
    )]
    EmailNotVerified,
    /// The server is set up wrongly (say, with the wrong secret key); the text is for the
    /// operator.
    #[error("{0}")]
    Misconfigured(String),
    /// Too much work queued (password hashing); try again after `retry_after` seconds.
    #[error("service busy")]
    Busy {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A bug or unexpected storage failure; the text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An `InvalidArgument` about `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// A `PermissionDenied` for a missing scope.
    pub fn missing_scope(scope: Scope) -> Self {
        Self::PermissionDenied {
            scope: Some(scope),
            message: format!("This request needs the scope '{scope}'."),
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated; names the constraint's subject (e.g. `email`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The database cannot be reached.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A transaction lost to a concurrent one (deadlock, serialization failure, busy
    /// database); the store retries these, so one that escapes means sustained contention.
    #[error("storage contention: {0}")]
    Contention(String),
    /// Anything else.
    #[error("storage error: {0}")]
    Other(String),
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => Self::AlreadyExists(format!("{what} already exists")),
            StoreError::Unavailable(_) | StoreError::Contention(_) => Self::Unavailable,
            StoreError::Other(text) => Self::Internal(text),
        }
    }
}

/// Shorthand for domain results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
