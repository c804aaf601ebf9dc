//! The access decision: may this credential, from this address, reach this resource with these
//! scopes? One decision for Net API's own `/v1` and for forward auth (reverse proxies in front
//! of an operator's APIs), so both share the caches, revocation, failure limits and
//! per-credential rate limits of [`NetApi::authenticate`].

use super::{NetApi, Principal};
use crate::error::{AuthFailure, Error, Result};
use crate::limiter::RateStatus;
use crate::scope::Scope;

/// An API Net API guards (RFC 8707 "resource", RFC 9728 "protected resource").
///
/// Today the only one is Net API's own API, whose identifier is the issuer; operator-defined
/// resources are to be added behind the same lookup ([`NetApi::protected_resource`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResource {
    /// The identifier credentials are made for (a token's `aud`).
    pub identifier: String,
    /// A name for people.
    pub name: String,
    /// The scope names a credential for it may carry.
    pub scopes_supported: Vec<String>,
}

/// A granted request: who, for which resource, and the caller's rate-limit standing.
#[derive(Debug, Clone)]
pub struct Access {
    /// The caller.
    pub principal: Principal,
    /// The identifier of the resource the access was granted for.
    pub resource: String,
    /// The caller's standing under its per-minute limit, where one applies.
    pub rate: Option<RateStatus>,
}

impl NetApi {
    /// The resource with this identifier; `None` (no identifier given) is Net API's own.
    /// Identifiers are compared exactly, as RFC 8707 compares them.
    pub fn protected_resource(&self, identifier: Option<&str>) -> Option<ProtectedResource> {
        let issuer = &self.settings.issuer;
        match identifier {
            None => {}
            Some(identifier) if identifier == issuer => {}
            Some(_) => return None,
        }
        Some(ProtectedResource {
            identifier: issuer.clone(),
            name: "Net API".to_owned(),
            scopes_supported: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
        })
    }

    /// Decides whether a request may reach `resource` (`None`: Net API's own) holding every
    /// scope of the space-separated `required_scopes`. `credential` is what the request's
    /// `Authorization: Bearer` header held, or why it held nothing usable.
    ///
    /// In order: an unknown resource is refused (`PermissionDenied`, whatever the
    /// credential: it is the operator's mistake, and the answer must get through a proxy that
    /// passes only 401 and 403); then the credential is authenticated (`Unauthenticated`, or
    /// `RateLimited` after too many failures from `ip`); then the request is counted against
    /// the credential's per-minute limit (`RequestRateLimited`); then every required scope
    /// must be held (`InsufficientScope`; a scope name the resource does not know is one the
    /// credential cannot hold).
    pub async fn check_access(
        &self,
        credential: Result<&str, AuthFailure>,
        ip: &str,
        resource: Option<&str>,
        required_scopes: &str,
    ) -> Result<Access> {
        let Some(resource) = self.protected_resource(resource) else {
            let named = resource.unwrap_or_default();
            return Err(Error::PermissionDenied {
                scope: None,
                message: format!(
                    "Unknown resource '{}': Net API guards no resource with this identifier.",
                    named.escape_default()
                ),
            });
        };
        let principal = self
            .authenticate(credential.map_err(Error::Unauthenticated)?, ip)
            .await?;
        self.admit(principal, resource, required_scopes.split_whitespace())
    }

    /// What follows authentication, for forward auth, `/v1` and key verification alike: the
    /// credential must be for `resource`, is counted against its per-minute limit
    /// (`RequestRateLimited`), then must hold every scope of `required` (`InsufficientScope`;
    /// a scope name the resource does not know is one the credential cannot hold).
    /// `required` is an iterator so that the hot path allocates nothing when all is well.
    pub(super) fn admit<'a>(
        &self,
        principal: Principal,
        resource: ProtectedResource,
        required: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<Access> {
        // Every credential made today is for the built-in resource, the only one there is;
        // once there are others, a credential for one is refused by every other here.
        let rate = self.check_rate(&principal)?;
        let missing: Vec<String> = required
            .clone()
            .filter(|name| Scope::parse(name).is_none_or(|s| !principal.scopes.contains(s)))
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            return Err(Error::InsufficientScope {
                required: required.collect::<Vec<_>>().join(" "),
                missing,
            });
        }
        Ok(Access {
            principal,
            resource: resource.identifier,
            rate,
        })
    }
}
