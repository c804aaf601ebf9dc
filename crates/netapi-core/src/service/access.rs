//! The access decision: may this credential, from this address, reach this resource with these
//! scopes? One decision for Net API's own `/v1`, for forward auth (reverse proxies in front
//! of an operator's APIs) and for key verification, so all share the caches, revocation,
//! failure limits and per-credential rate limits of [`NetApi::authenticate`].

use std::sync::Arc;

use super::{Credential, NetApi, Principal};
use crate::error::{AuthFailure, Error, Result};
use crate::limiter::RateStatus;
use crate::model::Resource;
use crate::scope::Scope;
use crate::usage::UsageOutcome;

/// An API Net API guards (RFC 8707 "resource", RFC 9728 "protected resource"): its own, whose
/// identifier is the issuer, or one an administrator defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResource {
    /// The identifier credentials are made for (a token's `aud`).
    pub identifier: String,
    /// A name for people.
    pub name: String,
    /// The operator's resource; `None`: Net API's own.
    pub resource: Option<Arc<Resource>>,
}

impl ProtectedResource {
    /// The scope names a credential for it may carry. Made when asked (metadata, errors),
    /// not on every access check.
    pub fn scopes_supported(&self) -> Vec<String> {
        match &self.resource {
            Some(resource) => resource.scopes.iter().map(|s| s.name.clone()).collect(),
            None => Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
        }
    }
}

/// What an identifier names: a live resource, a deleted one (its identifier is never reused)
/// or nothing.
enum ResourceLookup {
    Live(ProtectedResource),
    Deleted,
    Unknown,
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
    /// The live resource with this identifier; `None` (no identifier given) or the issuer is
    /// Net API's own. Identifiers are compared exactly, as RFC 8707 compares them. Cached.
    pub async fn protected_resource(
        &self,
        identifier: Option<&str>,
    ) -> Result<Option<ProtectedResource>> {
        Ok(match self.lookup_resource(identifier).await? {
            ResourceLookup::Live(resource) => Some(resource),
            ResourceLookup::Deleted | ResourceLookup::Unknown => None,
        })
    }

    async fn lookup_resource(&self, identifier: Option<&str>) -> Result<ResourceLookup> {
        let issuer = &self.settings.issuer;
        match identifier {
            None => {}
            Some(identifier) if identifier == issuer => {}
            Some(identifier) => {
                return Ok(match self.resource_by_identifier(identifier).await? {
                    None => ResourceLookup::Unknown,
                    Some(resource) if resource.deleted_at.is_some() => ResourceLookup::Deleted,
                    Some(resource) => ResourceLookup::Live(ProtectedResource {
                        identifier: resource.identifier.clone(),
                        name: resource.name.clone(),
                        resource: Some(resource),
                    }),
                });
            }
        }
        Ok(ResourceLookup::Live(ProtectedResource {
            identifier: issuer.clone(),
            name: "Net API".to_owned(),
            resource: None,
        }))
    }

    /// Decides whether a request may reach `resource` (`None`: Net API's own) holding every
    /// scope of the space-separated `required_scopes`. `credential` is what the request's
    /// `Authorization: Bearer` header held, or why it held nothing usable.
    ///
    /// In order: an unknown resource is refused (`PermissionDenied`, whatever the
    /// credential: it is the operator's mistake, and the answer must get through a proxy that
    /// passes only 401 and 403), a deleted one as if its credential were revoked
    /// (`Unauthenticated`); then the credential is authenticated (`Unauthenticated`, or
    /// `RateLimited` after too many failures from `ip`); then it must be for that resource;
    /// then the request is counted against the credential's per-minute limit
    /// (`RequestRateLimited`); then every required scope must be held (`InsufficientScope`;
    /// a scope name the resource does not know is one the credential cannot hold).
    pub async fn check_access(
        &self,
        credential: Result<&str, AuthFailure>,
        ip: &str,
        resource: Option<&str>,
        required_scopes: &str,
    ) -> Result<Access> {
        self.check_access_with(credential, None, ip, resource, required_scopes)
            .await
    }

    /// [`Self::check_access`] for a credential sent with the DPoP scheme (`dpop`: its proof
    /// and the request it must match) or as a bearer token (`None`).
    pub async fn check_access_with(
        &self,
        credential: Result<&str, AuthFailure>,
        dpop: Option<&super::DpopPresentation<'_>>,
        ip: &str,
        resource: Option<&str>,
        required_scopes: &str,
    ) -> Result<Access> {
        let resource = match self.lookup_resource(resource).await? {
            ResourceLookup::Live(found) => found,
            // Deleting a resource ended every credential for it: whatever is presented is
            // refused as a revoked credential is, so its callers hear 401, not the 403 of a
            // proxy pointed at the wrong identifier.
            ResourceLookup::Deleted => {
                let failure = credential.err().unwrap_or(AuthFailure::Revoked);
                return Err(Error::Unauthenticated(failure));
            }
            ResourceLookup::Unknown => {
                return Err(Error::PermissionDenied {
                    scope: None,
                    message: format!(
                        "Unknown resource '{}': Net API guards no resource with this identifier.",
                        // No longer than an identifier can be: the caller chose its length.
                        resource
                            .unwrap_or_default()
                            .chars()
                            .take(super::MAX_IDENTIFIER_LEN)
                            .collect::<String>()
                            .escape_default()
                    ),
                });
            }
        };
        let principal = self
            .authenticate_with(credential.map_err(Error::Unauthenticated)?, dpop, ip)
            .await?;
        self.admit(principal, resource, required_scopes.split_whitespace())
            .await
    }

    /// What follows authentication, for forward auth, `/v1` and key verification alike: the
    /// credential must be for `resource` (`Unauthenticated`: a credential made for another
    /// resource, Net API's own included, is no credential here), is counted against its
    /// per-minute limit (`RequestRateLimited`), then must hold every scope of `required`
    /// (`InsufficientScope`; a scope name the resource does not know is one the credential
    /// cannot hold). `required` is an iterator so that the hot path allocates nothing when
    /// all is well.
    pub(super) async fn admit<'a>(
        &self,
        principal: Principal,
        resource: ProtectedResource,
        required: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<Access> {
        let key_id = match &principal.credential {
            Credential::ApiKey { key_id, .. } => Some(key_id.as_str()),
            _ => None,
        };
        let count = |outcome| {
            if let Some(key_id) = key_id {
                self.count_key_check(key_id, outcome);
            }
        };
        let made_for = principal.resource.as_ref().map(|r| r.id.as_str());
        if made_for != resource.resource.as_ref().map(|r| r.id.as_str()) {
            count(UsageOutcome::WrongResource);
            return Err(Error::Unauthenticated(AuthFailure::WrongResource));
        }
        let rate = self.check_rate(&principal).await.inspect_err(|_| {
            count(UsageOutcome::RateLimited);
        })?;
        let holds = |name: &str| match &principal.resource {
            None => Scope::parse(name).is_some_and(|s| principal.scopes.contains(s)),
            Some(_) => principal.resource_scopes.iter().any(|s| s == name),
        };
        let missing: Vec<String> = required
            .clone()
            .filter(|name| !holds(name))
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            count(UsageOutcome::InsufficientScope);
            return Err(Error::InsufficientScope {
                required: required.collect::<Vec<_>>().join(" "),
                missing,
            });
        }
        count(UsageOutcome::Valid);
        Ok(Access {
            principal,
            resource: resource.identifier,
            rate,
        })
    }
}
