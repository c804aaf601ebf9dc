//! Who is calling: the [`Principal`] the guard found, and the scope requirement
//! [`RequireScope`], both axum extractors.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::rejection::{Rejection, RejectionKind};

/// The kind of credential a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A Net API key (`napi_...`) made for this resource.
    ApiKey,
    /// An RFC 9068 access token whose `aud` is this resource.
    AccessToken,
}

impl CredentialKind {
    /// `api_key` or `access_token`, as Net API names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::AccessToken => "access_token",
        }
    }
}

/// The caller of a request the guard let through. The [`GuardLayer`](crate::GuardLayer)
/// puts it in the request's extensions; handlers take it as an extractor.
///
/// Taken in a handler that the layer does not cover, it answers 500 (and logs why):
/// a route without the guard is a mistake to find, not a request to let through.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The Net API user the credential acts for (`usr_...`).
    pub subject: String,
    /// An API key or an access token.
    pub credential: CredentialKind,
    /// The key's id (`key_...`), for an API key.
    pub key_id: Option<String>,
    /// The OAuth client the token was issued to, for an access token.
    pub client_id: Option<String>,
    /// The credential's scopes on this resource.
    pub scopes: Vec<String>,
    /// The JSON object the key was made with (`metadata`), for an API key that has one.
    pub metadata: Option<Value>,
    /// When the credential expires (seconds since the epoch), where the guard knows it.
    pub expires_at: Option<i64>,
    /// The token's `act` claim (RFC 8693 §4.1), for an access token made by token exchange:
    /// `{"sub": "<client id>"}`, the client acting for `subject`, with earlier actors nested
    /// as `act`.
    pub actor: Option<Value>,
    /// The start of the `WWW-Authenticate` challenge for refusals about this principal.
    pub(crate) challenge: Arc<str>,
}

impl Principal {
    /// Whether the credential holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|held| held == scope)
    }

    /// `Ok` when the credential holds `scope`; otherwise the 403 to answer with.
    pub fn require_scope(&self, scope: &str) -> Result<(), Rejection> {
        if self.has_scope(scope) {
            return Ok(());
        }
        Err(Rejection::new(
            RejectionKind::InsufficientScope {
                scope: scope.to_owned(),
            },
            self.challenge.clone(),
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            tracing::error!(
                path = parts.uri.path(),
                "a handler takes a Principal but no GuardLayer covers its route"
            );
            let error = json!({"error": {
                "code": "INTERNAL",
                "message": "The server could not handle this request.",
            }});
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(error)).into_response()
        })
    }
}

/// A scope a route can require, declared with [`scope!`](crate::scope).
pub trait Scope: Send + Sync + 'static {
    /// The scope's name, as the resource defines it in Net API.
    const NAME: &'static str;
}

/// Whether `name` is a scope name as Net API allows them: `^[a-z][a-z0-9_.:-]{0,63}$`.
/// [`scope!`](crate::scope) checks its names with it at compile time.
pub const fn is_scope_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 64 || !bytes[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || b == b'_'
            || b == b'.'
            || b == b':'
            || b == b'-')
        {
            return false;
        }
        i += 1;
    }
    true
}

/// Declares a type naming a scope, for [`RequireScope`]:
///
/// ```
/// netapi_guard::scope!(
///     /// Read orders.
///     pub OrdersRead = "orders:read"
/// );
/// # use netapi_guard::Scope;
/// assert_eq!(OrdersRead::NAME, "orders:read");
/// ```
///
/// A name Net API would not accept (`"Orders Read"`) does not compile.
#[macro_export]
macro_rules! scope {
    ($(#[$meta:meta])* $vis:vis $name:ident = $value:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        impl $crate::Scope for $name {
            const NAME: &'static str = {
                assert!($crate::is_scope_name($value), "not a Net API scope name");
                $value
            };
        }
    };
}

/// An extractor that lets the request through only when its credential holds the scope
/// `S`, and answers 403 `PERMISSION_DENIED` with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."` otherwise.
///
/// ```
/// use netapi_guard::{RequireScope, scope};
///
/// scope!(OrdersWrite = "orders:write");
///
/// async fn place_order(RequireScope(caller, _): RequireScope<OrdersWrite>) -> String {
///     format!("order placed for {}", caller.subject)
/// }
/// # let _ = place_order;
/// ```
#[derive(Debug)]
pub struct RequireScope<S: Scope>(pub Principal, pub PhantomData<S>);

impl<S: Scope> Deref for RequireScope<S> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<St: Send + Sync, S: Scope> FromRequestParts<St> for RequireScope<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal
            .require_scope(S::NAME)
            .map_err(|refusal| refusal.for_request(&parts.headers).into_response())?;
        Ok(Self(principal, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_follow_net_api_rules() {
        assert!(is_scope_name("orders:read"));
        assert!(is_scope_name("a.b_c-d:9"));
        assert!(!is_scope_name(""));
        assert!(!is_scope_name("Orders"));
        assert!(!is_scope_name("9orders"));
        assert!(!is_scope_name("orders read"));
        assert!(!is_scope_name("orders\"read"));
        assert!(!is_scope_name(&"a".repeat(65)));
        assert!(is_scope_name(&"a".repeat(64)));
    }
}
