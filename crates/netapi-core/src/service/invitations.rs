//! Who may register: the registration policy and administrators' invitations.

use serde_json::json;

use super::{NetApi, Page, PageRequest, Principal};
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::Invitation;
use crate::scope::{Role, Scope};
use crate::secret::{Secret, SecretKind, check_format, generate};

/// Who may register over HTTP (the operator's `netapi admin create-user` always may).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RegistrationPolicy {
    /// Anyone (within `registration_email_domains`), with or without an invitation.
    #[default]
    Open,
    /// Only with an invitation an administrator made.
    Invite,
    /// No one, invitations included.
    Closed,
}

impl RegistrationPolicy {
    /// Parses `open`, `invite` or `closed`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "open" => Some(Self::Open),
            "invite" => Some(Self::Invite),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }

    /// The setting's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invite => "invite",
            Self::Closed => "closed",
        }
    }
}

/// Invitations that may be unused and unexpired at once.
pub const MAX_OUTSTANDING_INVITATIONS: u32 = 1_000;
/// An invitation's lifetime when none is asked for: 7 days.
pub const DEFAULT_INVITATION_TTL: i64 = 7 * 86_400;
/// The longest lifetime of an invitation: 30 days.
pub const MAX_INVITATION_TTL: i64 = 30 * 86_400;

/// An invitation to make.
#[derive(Debug, Clone, Default)]
pub struct NewInvitation {
    /// The only email that may use it (any, if `None`).
    pub email: Option<String>,
    /// The role of the user it makes (member by default).
    pub role: Option<Role>,
    /// Seconds until it expires (default 7 days, at most 30).
    pub expires_in: Option<i64>,
}

/// A page of invitations.
pub type InvitationPage = Page<Invitation>;

/// Administrators only: an admin role and the `admin` scope (the portal's narrow admin
/// principal carries it too).
fn require_invitation_admin(caller: &Principal, scope: Scope) -> Result<()> {
    caller.require(scope)?;
    caller.require(Scope::Admin)?;
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Error::missing_scope(Scope::Admin))
    }
}

/// Whether `email`'s domain is one of `domains` (none: any); both lower-cased.
pub(crate) fn domain_allowed(domains: &[String], email: &str) -> bool {
    domains.is_empty()
        || email
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domains.iter().any(|d| d == domain))
}

impl NetApi {
    /// Makes an invitation; its token is returned this once.
    pub async fn create_invitation(
        &self,
        caller: &Principal,
        new: NewInvitation,
        ip: Option<&str>,
    ) -> Result<(Invitation, Secret)> {
        require_invitation_admin(caller, Scope::UsersWrite)?;
        let email = new
            .email
            .as_deref()
            .map(super::users::normalize_email)
            .transpose()?;
        let ttl = new.expires_in.unwrap_or(DEFAULT_INVITATION_TTL);
        if !(60..=MAX_INVITATION_TTL).contains(&ttl) {
            return Err(Error::invalid(
                "expires_in",
                format!("must be between 60 seconds and {MAX_INVITATION_TTL} seconds (30 days)"),
            ));
        }
        let now = self.now();
        let token = generate(SecretKind::Invitation);
        let invitation = Invitation {
            id: new_id("inv"),
            token_hash: self.hasher().hash(token.expose()),
            email,
            role: new.role.unwrap_or(Role::Member),
            created_by: caller.user_id.clone(),
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
            used_by: None,
        };
        if !self
            .store
            .insert_invitation(&invitation, MAX_OUTSTANDING_INVITATIONS, now)
            .await?
        {
            return Err(Error::invalid(
                "email",
                format!(
                    "cannot be invited: there are {MAX_OUTSTANDING_INVITATIONS} unused invitations already (the most allowed); delete some first"
                ),
            ));
        }
        let actor = (!caller.user_id.is_empty()).then_some(caller.user_id.as_str());
        self.audit(
            actor,
            "invitation.created",
            ip,
            json!({ "invitation_id": invitation.id, "role": invitation.role.as_str(),
                    "expires_at": invitation.expires_at }),
        )
        .await;
        Ok((invitation, token))
    }

    /// Every invitation, used and expired ones too (until housekeeping removes expired ones).
    pub async fn list_invitations(
        &self,
        caller: &Principal,
        page: PageRequest,
    ) -> Result<InvitationPage> {
        require_invitation_admin(caller, Scope::UsersRead)?;
        let items = self
            .store
            .list_invitations(page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(items, |i| &i.id))
    }

    /// Deletes an invitation: its token stops working at once.
    pub async fn delete_invitation(
        &self,
        caller: &Principal,
        id: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        require_invitation_admin(caller, Scope::UsersWrite)?;
        if !crate::ids::looks_like_id("inv", id) || !self.store.delete_invitation(id).await? {
            return Err(Error::NotFound("invitation"));
        }
        let actor = (!caller.user_id.is_empty()).then_some(caller.user_id.as_str());
        self.audit(
            actor,
            "invitation.deleted",
            ip,
            json!({ "invitation_id": id }),
        )
        .await;
        Ok(())
    }

    /// The registration policy in force.
    pub fn registration_policy(&self) -> RegistrationPolicy {
        self.settings.registration
    }

    /// Checks a self-service registration of `email` against the policy, and the
    /// invitation it presents: the usable invitation, if any. Refusals are 403 (policy,
    /// domain, an invitation for another email) or 400 (an invitation that is malformed,
    /// unknown, used or expired).
    pub(crate) async fn admit_registration(
        &self,
        email: &str,
        invitation: Option<&Secret>,
    ) -> Result<Option<Invitation>> {
        let policy = self.settings.registration;
        if policy == RegistrationPolicy::Closed {
            return Err(Error::PermissionDenied {
                scope: None,
                message: "Registration is closed on this server.".to_owned(),
            });
        }
        let found = match invitation {
            None => None,
            Some(token) => Some(self.usable_invitation(token).await?),
        };
        match &found {
            None if policy == RegistrationPolicy::Invite => {
                return Err(Error::PermissionDenied {
                    scope: None,
                    message: "Registration is by invitation only: ask an administrator for an invitation."
                        .to_owned(),
                });
            }
            Some(Invitation {
                email: Some(bound), ..
            }) if bound != email => {
                return Err(Error::PermissionDenied {
                    scope: None,
                    message: "This invitation is for another email address.".to_owned(),
                });
            }
            _ => {}
        }
        // An invitation bound to this email is the administrator's decision; any other
        // registration keeps to the allowed domains.
        let bound = found.as_ref().is_some_and(|i| i.email.is_some());
        if !bound && !domain_allowed(&self.settings.registration_email_domains, email) {
            return Err(Error::PermissionDenied {
                scope: None,
                message: format!(
                    "Registration is not open to this email domain (allowed: {}).",
                    self.settings.registration_email_domains.join(", ")
                ),
            });
        }
        Ok(found)
    }

    /// The unused, unexpired invitation a token names.
    async fn usable_invitation(&self, token: &Secret) -> Result<Invitation> {
        let invalid = || Error::invalid("invitation", "is not a valid invitation");
        if check_format(SecretKind::Invitation, token.expose()).is_err() {
            return Err(invalid());
        }
        let invitation = self
            .store
            .find_invitation(&self.hasher().hash(token.expose()))
            .await?
            .ok_or_else(invalid)?;
        if invitation.used_at.is_some() {
            return Err(Error::invalid("invitation", "has been used already"));
        }
        if self.now() >= invitation.expires_at {
            return Err(Error::invalid(
                "invitation",
                "has expired: ask an administrator for a new one",
            ));
        }
        // An invitation carries its maker's authority, and no more of it than they still
        // hold: one made by an administrator since demoted, disabled or deleted lets nobody
        // in (else an admin about to be demoted could keep a way to make new admins). The
        // operator's (`netapi admin`) have no maker.
        if !invitation.created_by.is_empty() {
            let maker = self.store.get_user(&invitation.created_by).await?;
            if !maker.is_some_and(|maker| maker.role == Role::Admin && maker.disabled_at.is_none())
            {
                return Err(Error::invalid(
                    "invitation",
                    "is no longer valid: the administrator who made it no longer is one; ask \
                     an administrator for a new one",
                ));
            }
        }
        Ok(invitation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print() {
        for policy in [
            RegistrationPolicy::Open,
            RegistrationPolicy::Invite,
            RegistrationPolicy::Closed,
        ] {
            assert_eq!(RegistrationPolicy::parse(policy.as_str()), Some(policy));
        }
        assert_eq!(RegistrationPolicy::parse("Open"), None);
        assert_eq!(RegistrationPolicy::default(), RegistrationPolicy::Open);
    }

    #[test]
    fn domains_are_matched_exactly() {
        let domains = vec!["example.com".to_owned()];
        assert!(domain_allowed(&domains, "ada@example.com"));
        assert!(!domain_allowed(&domains, "ada@sub.example.com"));
        assert!(!domain_allowed(&domains, "ada@example.com.evil.org"));
        assert!(domain_allowed(&[], "ada@anything.org"));
    }
}
