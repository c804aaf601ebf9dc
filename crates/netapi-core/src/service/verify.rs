//! `POST /v1/keys/verify`: a trusted service (a credential holding `keys:verify`) asks whether
//! an API key presented to it may be used, and gets an answer code rather than an error.
//!
//! The verified key goes through the same decision as forward auth (cache, revocation, its
//! per-minute limit, scopes), except the failure limiter: the address is the verifying
//! service's, and an unknown, expired or revoked key is that service's user failing, not the
//! caller. Counting those against the caller's address would let anyone who sends invented
//! keys to the operator's API lock the operator's own service out. Guessing keys stays
//! hopeless (a checksummed random secret), and each verification is counted against the
//! caller's own per-minute limit like any `/v1` request.

use super::authn::Failure;
use super::resources::well_formed_scope;
use super::{NetApi, Principal};
use crate::error::{AuthFailure, Error, Result};
use crate::limiter::RateStatus;
use crate::scope::Scope;

/// Longest `resource` identifier accepted.
pub const MAX_RESOURCE_LEN: usize = 2048;
/// Most `scopes` one verification may require.
pub const MAX_VERIFY_SCOPES: usize = 64;

/// The answer code of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyCode {
    /// The key may be used.
    Valid,
    /// No such key, or not a key at all.
    NotFound,
    /// The key has expired.
    Expired,
    /// The key was revoked (or its user deleted).
    Revoked,
    /// The key is for another resource than the one named.
    WrongResource,
    /// The key lacks a required scope.
    InsufficientScope,
    /// The key is over its per-minute limit.
    RateLimited,
}

impl VerifyCode {
    /// The code on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::NotFound => "NOT_FOUND",
            Self::Expired => "EXPIRED",
            Self::Revoked => "REVOKED",
            Self::WrongResource => "WRONG_RESOURCE",
            Self::InsufficientScope => "INSUFFICIENT_SCOPE",
            Self::RateLimited => "RATE_LIMITED",
        }
    }
}

/// What a verification found; the key's facts only once the key is known to be live.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The answer code.
    pub code: VerifyCode,
    /// The live key's id, user, resource, scopes and expiry.
    pub key: Option<VerifiedKey>,
    /// The key's standing under its per-minute limit, where it was counted.
    pub rate: Option<RateStatus>,
}

/// The facts of a live key, as a verification reports them.
#[derive(Debug, Clone)]
pub struct VerifiedKey {
    /// The key's id.
    pub key_id: String,
    /// The user it acts for.
    pub subject: String,
    /// The identifier of the resource it is for.
    pub resource: String,
    /// Its scopes, limited by what its user holds.
    pub scopes: Vec<String>,
    /// When it expires, if ever.
    pub expires_at: Option<i64>,
    /// Its metadata (a JSON object), if any.
    pub metadata: Option<String>,
}

impl Verification {
    /// Whether the key may be used.
    pub fn valid(&self) -> bool {
        self.code == VerifyCode::Valid
    }
}

/// Checks the shape of `resource` and `scopes` before anything is looked up.
fn check_request(resource: Option<&str>, scopes: &[String]) -> Result<()> {
    if let Some(resource) = resource {
        if resource.len() > MAX_RESOURCE_LEN {
            return Err(Error::invalid(
                "resource",
                format!("must be at most {MAX_RESOURCE_LEN} characters"),
            ));
        }
        let absolute = url::Url::parse(resource).is_ok_and(|u| u.fragment().is_none());
        if !absolute {
            return Err(Error::invalid(
                "resource",
                "must be an absolute URI without a fragment",
            ));
        }
    }
    if scopes.len() > MAX_VERIFY_SCOPES {
        return Err(Error::invalid(
            "scopes",
            format!("must list at most {MAX_VERIFY_SCOPES} scopes"),
        ));
    }
    for (i, name) in scopes.iter().enumerate() {
        if !well_formed_scope(name) {
            return Err(Error::invalid("scopes", "contains a malformed scope name"));
        }
        if scopes[..i].contains(name) {
            return Err(Error::invalid("scopes", "lists a scope twice"));
        }
    }
    Ok(())
}

impl NetApi {
    /// Verifies `key` for `resource` (`None`: the key's own), requiring every scope of
    /// `scopes`. Needs `keys:verify`. A malformed `resource` or `scopes` is `InvalidArgument`;
    /// anything about the key itself is an answer code, checked in this order: found, not
    /// revoked, not expired, for the resource, within its limit (counted as forward auth
    /// counts it), holding the scopes.
    pub async fn verify_key(
        &self,
        caller: &Principal,
        key: &str,
        resource: Option<&str>,
        scopes: &[String],
    ) -> Result<Verification> {
        caller.require(Scope::KeysVerify)?;
        check_request(resource, scopes)?;
        let verification = self.verify_key_unchecked(key, resource, scopes).await?;
        metrics::counter!("netapi_key_verifications_total", "code" => verification.code.as_str())
            .increment(1);
        Ok(verification)
    }

    async fn verify_key_unchecked(
        &self,
        key: &str,
        resource: Option<&str>,
        scopes: &[String],
    ) -> Result<Verification> {
        let answer = |code, key, rate| Verification { code, key, rate };
        let (principal, stored) = match self.check_api_key(key, self.now()).await {
            Ok(found) => found,
            Err(Failure::Auth(failure, _)) => {
                let code = match failure {
                    AuthFailure::Expired => VerifyCode::Expired,
                    AuthFailure::Revoked | AuthFailure::Disabled => VerifyCode::Revoked,
                    AuthFailure::Missing
                    | AuthFailure::Malformed
                    | AuthFailure::Unknown
                    | AuthFailure::WrongResource
                    | AuthFailure::Dpop(_) => VerifyCode::NotFound,
                };
                return Ok(answer(code, None, None));
            }
            Err(Failure::Other(err)) => return Err(err),
        };
        let own = principal
            .resource_identifier(&self.settings.issuer)
            .to_owned();
        let facts = VerifiedKey {
            key_id: stored.id.clone(),
            subject: principal.user_id.clone(),
            resource: own.clone(),
            scopes: principal
                .scope_names()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            expires_at: stored.expires_at,
            metadata: stored.metadata.clone(),
        };
        let Some(target) = self
            .protected_resource(Some(resource.unwrap_or(&own)))
            .await?
        else {
            return Ok(answer(VerifyCode::WrongResource, Some(facts), None));
        };
        match self
            .admit(principal, target, scopes.iter().map(String::as_str))
            .await
        {
            Ok(access) => Ok(answer(VerifyCode::Valid, Some(facts), access.rate)),
            Err(Error::Unauthenticated(AuthFailure::WrongResource)) => {
                Ok(answer(VerifyCode::WrongResource, Some(facts), None))
            }
            Err(Error::RequestRateLimited(status)) => {
                Ok(answer(VerifyCode::RateLimited, Some(facts), Some(status)))
            }
            Err(Error::InsufficientScope { .. }) => {
                Ok(answer(VerifyCode::InsufficientScope, Some(facts), None))
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn resource_and_scopes_are_bounded_before_use() {
        assert!(check_request(None, &[]).is_ok());
        assert!(check_request(Some("https://api.example.com/v1"), &names(&["a:b"])).is_ok());
        let long = format!("https://api.example.com/{}", "a".repeat(MAX_RESOURCE_LEN));
        for resource in [
            "api.example.com",
            "/orders",
            "https://a.example/#x",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    check_request(Some(resource), &[]),
                    Err(Error::InvalidArgument { field: Some(f), .. }) if f == "resource"
                ),
                "{resource}"
            );
        }
        let too_many: Vec<String> = (0..=MAX_VERIFY_SCOPES).map(|i| format!("s{i}")).collect();
        for scopes in [too_many, names(&["a", "a"]), names(&["A"])] {
            assert!(
                matches!(
                    check_request(None, &scopes),
                    Err(Error::InvalidArgument { field: Some(f), .. }) if f == "scopes"
                ),
                "{scopes:?}"
            );
        }
    }

    #[test]
    fn only_valid_is_valid() {
        let codes = [
            VerifyCode::Valid,
            VerifyCode::NotFound,
            VerifyCode::Expired,
            VerifyCode::Revoked,
            VerifyCode::WrongResource,
            VerifyCode::InsufficientScope,
            VerifyCode::RateLimited,
        ];
        for code in codes {
            let answer = Verification {
                code,
                key: None,
                rate: None,
            };
            assert_eq!(
                answer.valid(),
                code == VerifyCode::Valid,
                "{}",
                code.as_str()
            );
        }
    }
}
