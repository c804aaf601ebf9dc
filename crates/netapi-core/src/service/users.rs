//! Registration and user management.

use serde_json::json;

use super::{AccountChange, NetApi, Page, PageRequest, Principal};
use crate::error::{Error, Result, StoreError};
use crate::ids::new_id;
use crate::limiter::Surface;
use crate::model::{ApiKey, User};
use crate::password;
use crate::scope::{Role, Scope};
use crate::secret::{Secret, SecretHash, SecretKind, display_prefix, generate, last_four};
use crate::store::{Invalidation, UserChanges};

/// A registration.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email address.
    pub email: String,
    /// Password (8 to 128 characters).
    pub password: Secret,
    /// Display name.
    pub name: String,
    /// Role; registration over HTTP makes members, or the invitation's role.
    pub role: Role,
    /// Whether the address counts as verified from the start (an operator vouching for it);
    /// otherwise a verification link is mailed when email is on.
    pub email_verified: bool,
    /// The invitation token presented (self-service registration under a policy).
    pub invitation: Option<Secret>,
}

/// A change to a user; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// New name.
    pub name: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New password.
    pub password: Option<Secret>,
    /// New role (admins only).
    pub role: Option<Role>,
    /// Disable (`true`) or enable the account (admins only, never their own).
    pub disabled: Option<bool>,
    /// The user's present password: needed to change the email or password, except for an
    /// administrator acting on another user.
    pub current_password: Option<Secret>,
}

/// The refusal to leave no administrator.
fn last_admin() -> Error {
    Error::PermissionDenied {
        scope: None,
        message: "This is the last administrator: make another user an administrator first."
            .to_owned(),
    }
}

/// A page of users.
pub type UserPage = Page<User>;

/// Longest email address (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;
/// Longest display name, in characters.
const MAX_NAME_LEN: usize = 100;

/// Normalises and checks an email address; the rule is deliberately plain: something@domain.tld.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid("email", "is not a valid email address"))
    }
}

/// Bidirectional formatting characters (embeddings, overrides, isolates and marks): in a
/// name they reorder what the consent page shows, e.g. to spoof another application.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Trims and checks a display name.
pub fn normalize_name(field: &str, name: &str) -> Result<String> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {MAX_NAME_LEN} printable characters"),
        ));
    }
    if name.chars().any(is_bidi_control) {
        return Err(Error::invalid(
            field,
            "must not contain bidirectional control characters",
        ));
    }
    Ok(name.to_owned())
}

impl NetApi {
    /// Creates a user and its first API key (every scope its role allows but `admin` for
    /// members, every scope for admins). The key is returned this once. Over HTTP (with an
    /// address) the registration policy applies and an invitation may be presented; the
    /// operator (no address) may always register users.
    pub async fn register(&self, new: NewUser, ip: Option<&str>) -> Result<(User, ApiKey, Secret)> {
        let email = normalize_email(&new.email)?;
        let name = normalize_name("name", &new.name)?;
        password::validate(new.password.expose(), &email)?;
        let now = self.now();
        let mut role = new.role;
        // Over HTTP: limited per source, refused at once for a taken email, and given only
        // a bounded share of the hashing queue, so that a burst of registrations can neither
        // run up work nor slow sign-ins. Operator commands (no address) are not limited.
        let mut invitation = None;
        let _slot = match ip {
            Some(ip) => {
                let limit = self.settings.registration_limit_per_hour;
                // The policy first; an invitation, a secret that could be guessed, only once
                // the attempt has been counted.
                if new.invitation.is_none() {
                    self.admit_registration(&email, None).await?;
                }
                if limit > 0 {
                    self.registrations
                        .hit(&crate::limiter::source_of(ip), limit, now)
                        .await
                        .map_err(|status| Error::RateLimited {
                            retry_after: status.reset,
                        })?;
                }
                if let Some(token) = &new.invitation {
                    invitation = self.admit_registration(&email, Some(token)).await?;
                }
                if let Some(found) = &invitation {
                    role = found.role;
                }
                if self.store.get_user_by_email(&email).await?.is_some() {
                    return Err(Error::AlreadyExists(
                        "A user with this email already exists.".to_owned(),
                    ));
                }
                let slot = self.registration_slots.clone().try_acquire_owned();
                Some(slot.map_err(|_| Error::Busy { retry_after: 1 })?)
            }
            None => None,
        };
        let password_hash = password::hash(new.password.expose().to_owned()).await?;
        let user = User {
            id: new_id("usr"),
            email,
            name,
            role,
            password_hash,
            email_verified: new.email_verified,
            created_at: now,
            updated_at: now,
            disabled_at: None,
        };
        let (key, secret) =
            self.mint_api_key(&user.id, "Default key".to_owned(), role.max_scopes(), None);
        let invitation_id = invitation.as_ref().map(|i| i.id.as_str());
        let event = self.audit_event(
            Some(&user.id),
            "user.registered",
            ip,
            json!({ "api_key_id": key.id, "invitation_id": invitation_id }),
        );
        let outbox = super::webhooks::outbox_entry(&event);
        let created = match invitation_id {
            None => self
                .store
                .create_user(&user, Some(&key), &event, outbox.as_ref())
                .await
                .map(|()| true),
            Some(id) => {
                self.store
                    .create_invited_user(&user, Some(&key), &event, outbox.as_ref(), id)
                    .await
            }
        };
        match created {
            Ok(true) => {}
            // Used (or expired) since it was read: the other registration won.
            Ok(false) => {
                return Err(Error::invalid("invitation", "has been used already"));
            }
            Err(StoreError::Conflict(_)) => {
                return Err(Error::AlreadyExists(
                    "A user with this email already exists.".to_owned(),
                ));
            }
            Err(err) => return Err(err.into()),
        }
        self.users.invalidate(&user.id);
        if !user.email_verified {
            self.send_verification_after_change(&user, ip).await;
        }
        Ok((user, key, secret))
    }

    /// Builds a new key record and its secret (not yet stored).
    pub(crate) fn mint_api_key(
        &self,
        user_id: &str,
        name: String,
        scopes: crate::scope::Scopes,
        expires_at: Option<i64>,
    ) -> (ApiKey, Secret) {
        let secret = generate(SecretKind::ApiKey);
        let key = ApiKey {
            id: new_id("key"),
            user_id: user_id.to_owned(),
            name,
            prefix: display_prefix(SecretKind::ApiKey, &secret),
            last_four: last_four(&secret),
            hash: self.hasher().hash(secret.expose()),
            scopes,
            created_at: self.now(),
            last_used_at: None,
            expires_at,
            revoked_at: None,
            rate_limit: None,
            created_by_client: None,
            resource: None,
            resource_scopes: Vec::new(),
            metadata: None,
        };
        (key, secret)
    }

    /// Users the caller may see: everyone for admins, themselves for members.
    pub async fn list_users(&self, caller: &Principal, page: PageRequest) -> Result<UserPage> {
        caller.require(Scope::UsersRead)?;
        if caller.is_admin() {
            let users = self
                .store
                .list_users(page.cursor.as_deref(), page.fetch_limit())
                .await?;
            return Ok(page.page(users, |u| &u.id));
        }
        let me = self.get_user(caller, &caller.user_id).await?;
        let items = if page.cursor.as_deref().is_none_or(|c| c < me.id.as_str()) {
            vec![me]
        } else {
            Vec::new()
        };
        Ok(Page {
            items,
            next_page_token: None,
        })
    }

    /// Users whose email contains `email_part` (case does not matter): administrators only.
    pub async fn find_users(
        &self,
        caller: &Principal,
        email_part: &str,
        page: PageRequest,
    ) -> Result<UserPage> {
        caller.require(Scope::UsersRead)?;
        caller.require_admin()?;
        let part = email_part.trim().to_lowercase();
        if part.len() > MAX_EMAIL_LEN {
            return Err(Error::invalid(
                "email",
                format!("must be at most {MAX_EMAIL_LEN} characters to search for"),
            ));
        }
        let users = self
            .store
            .search_users(&part, page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(users, |u| &u.id))
    }

    /// One user; another user's id is "not found" to a member.
    pub async fn get_user(&self, caller: &Principal, id: &str) -> Result<User> {
        caller.require(Scope::UsersRead)?;
        if !caller.may_act_on(id) {
            return Err(Error::NotFound("user"));
        }
        // From the cache: every change to a user invalidates it, here and (through storage)
        // in other processes. A disabled user (not in it) is read from storage.
        if let Some(facts) = self.user_facts(id).await? {
            return Ok(User::clone(&facts.user));
        }
        self.store
            .get_user(id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// The user with this email, for an administrator naming someone by email (the portal's
    /// grant form); to members every other user is "not found".
    pub async fn get_user_by_email(&self, caller: &Principal, email: &str) -> Result<User> {
        caller.require(Scope::UsersRead)?;
        let email = normalize_email(email)?;
        match self.store.get_user_by_email(&email).await? {
            Some(user) if caller.may_act_on(&user.id) => Ok(user),
            _ => Err(Error::NotFound("user")),
        }
    }

    /// Changes a user. Members change themselves (not their role); admins anyone. Changing
    /// the email or password needs the present password (but for an administrator acting on
    /// someone else) and ends the user's browser sessions and refresh-token families. Only
    /// the fields given are written, so a concurrent change (a demotion) is never undone.
    pub async fn update_user(
        &self,
        caller: &Principal,
        id: &str,
        update: UserUpdate,
        ip: Option<&str>,
    ) -> Result<User> {
        caller.require(Scope::UsersWrite)?;
        if !caller.may_act_on(id) {
            return Err(Error::NotFound("user"));
        }
        // Refused as documented, whether or not this change needs it: no password is longer.
        if update
            .current_password
            .as_ref()
            .is_some_and(|p| p.expose().chars().count() > password::MAX_LEN)
        {
            return Err(Error::invalid(
                "current_password",
                format!("must be at most {} characters", password::MAX_LEN),
            ));
        }
        let user = self
            .store
            .get_user(id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let mut changes = UserChanges::default();
        if let Some(role) = update.role
            && role != user.role
        {
            if !caller.is_admin() {
                return Err(Error::PermissionDenied {
                    scope: Some(Scope::Admin),
                    message: "Only administrators may change roles.".to_owned(),
                });
            }
            changes.role = Some(role);
        }
        if let Some(disabled) = update.disabled
            && disabled != user.disabled_at.is_some()
        {
            if !caller.is_admin() {
                return Err(Error::PermissionDenied {
                    scope: Some(Scope::Admin),
                    message: "Only administrators may disable or enable users.".to_owned(),
                });
            }
            if disabled && caller.user_id == user.id {
                return Err(Error::invalid(
                    "disabled",
                    "cannot be set on your own account",
                ));
            }
            changes.disabled_at = Some(disabled.then(|| self.now()));
        }
        if let Some(name) = update.name {
            changes.name = Some(normalize_name("name", &name)?);
        }
        if let Some(email) = update.email {
            let email = normalize_email(&email)?;
            changes.email = (email != user.email).then_some(email);
        }
        if let Some(password) = &update.password {
            let email = changes.email.as_deref().unwrap_or(&user.email);
            password::validate(password.expose(), email)?;
        }
        let sensitive = changes.email.is_some() || update.password.is_some();
        if sensitive && !(caller.is_admin() && caller.user_id != user.id) {
            self.check_current_password(&user, update.current_password.as_ref(), ip)
                .await?;
        }
        if let Some(password) = update.password {
            changes.password_hash = Some(password::hash(password.expose().to_owned()).await?);
        }
        let old_email = user.email.clone();
        let user = match self.store.update_user(&user.id, &changes, self.now()).await {
            Ok(Some(user)) => user,
            Ok(None) => return Err(Error::NotFound("user")),
            Err(StoreError::Conflict("last_admin")) => return Err(last_admin()),
            Err(StoreError::Conflict(_)) => {
                return Err(Error::AlreadyExists(
                    "A user with this email already exists.".to_owned(),
                ));
            }
            Err(err) => return Err(err.into()),
        };
        self.invalidate(Invalidation::User(user.id.clone())).await?;
        let disabled = changes.disabled_at.is_some_and(|at| at.is_some());
        if sensitive || disabled {
            self.end_sign_ins(&user.id).await?;
        }
        let fields: Vec<&str> = [
            ("name", changes.name.is_some()),
            ("email", changes.email.is_some()),
            ("password", changes.password_hash.is_some()),
            ("role", changes.role.is_some()),
            ("disabled", changes.disabled_at.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, changed)| changed.then_some(field))
        .collect();
        self.audit(
            Some(&user.id),
            "user.updated",
            ip,
            json!({ "fields": fields }),
        )
        .await;
        if changes.email.is_some() {
            self.notify_account_change(&user, &old_email, AccountChange::Email)
                .await;
            self.send_verification_after_change(&user, ip).await;
        }
        if changes.password_hash.is_some() {
            self.notify_account_change(&user, &old_email, AccountChange::Password)
                .await;
        }
        Ok(user)
    }

    /// Proof of presence for a sensitive change: the user's present password. A wrong one
    /// counts as a failed sign-in (same limiter, same subjects as the login page).
    async fn check_current_password(
        &self,
        user: &User,
        presented: Option<&Secret>,
        ip: Option<&str>,
    ) -> Result<()> {
        let Some(presented) = presented else {
            return Err(Error::invalid(
                "current_password",
                "is required to change the email or password",
            ));
        };
        let now = self.now();
        // Counted like sign-ins from the same source; operator commands (no address) are not.
        let subjects = ip
            .map(|ip| {
                self.limiter
                    .subjects(Surface::Password, ip, Some(&user.email))
            })
            .unwrap_or_default();
        if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
            return Err(Error::RateLimited { retry_after });
        }
        let ok = password::verify(
            presented.expose().to_owned(),
            Some(user.password_hash.clone()),
        )
        .await?;
        if ok {
            return Ok(());
        }
        self.limiter.record_failure(&subjects, now).await;
        self.audit(Some(&user.id), "user.password_check_failed", ip, json!({}))
            .await;
        Err(Error::invalid("current_password", "is not correct"))
    }

    /// Ends what the old password or email opened: every browser session of the user and
    /// every refresh-token family, whose access tokens are refused from now on.
    pub(super) async fn end_sign_ins(&self, user_id: &str) -> Result<()> {
        self.end_user_sessions(user_id).await?;
        self.end_refresh_families(user_id).await
    }

    /// Ends what was opened before a second factor guarded the account: every browser
    /// session of the user but `keep` (the one that turned it on) and every refresh-token
    /// family.
    pub(super) async fn end_sign_ins_but(&self, user_id: &str, keep: &SecretHash) -> Result<()> {
        let others = self
            .store
            .list_user_sessions(user_id)
            .await?
            .into_iter()
            .filter(|s| &s.hash != keep)
            .collect();
        self.end_sessions(others).await?;
        self.end_refresh_families(user_id).await
    }

    /// Revokes every refresh-token family of the user; their access tokens are refused from
    /// now on.
    async fn end_refresh_families(&self, user_id: &str) -> Result<()> {
        let now = self.now();
        let families = self.store.revoke_refresh_for_user(user_id, now).await?;
        for family_id in families {
            self.invalidate(Invalidation::Family {
                family_id,
                expires_at: now + self.settings.access_token_ttl,
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes a user with everything it holds; its credentials stop working at once.
    pub async fn delete_user(&self, caller: &Principal, id: &str, ip: Option<&str>) -> Result<()> {
        caller.require(Scope::UsersWrite)?;
        if !caller.may_act_on(id) {
            return Err(Error::NotFound("user"));
        }
        // Its clients go with it; their tokens, held by other users too, must stop at once.
        let mut owned_clients = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_clients(Some(id), after.as_deref(), 500)
                .await?;
            let done = page.len() < 500;
            after = page.last().map(|c| c.id.clone());
            owned_clients.extend(page.into_iter().map(|c| c.id));
            if done {
                break;
            }
        }
        match self.store.delete_user(id).await {
            Ok(true) => {}
            Ok(false) => return Err(Error::NotFound("user")),
            Err(StoreError::Conflict(_)) => return Err(last_admin()),
            Err(err) => return Err(err.into()),
        }
        self.invalidate(Invalidation::User(id.to_owned())).await?;
        for client_id in owned_clients {
            self.invalidate(Invalidation::Client(client_id.clone()))
                .await?;
            // Keys other users made through the deleted client go with it.
            self.revoke_keys_of_client(&client_id, None).await?;
        }
        self.audit(Some(id), "user.deleted", ip, json!({})).await;
        Ok(())
    }

    /// Checks an email and password (for the login page), limited per address and per
    /// (account, address).
    /// An unknown email costs the same as a wrong password and gets the same answer.
    pub async fn login(&self, email: &str, password: &Secret, ip: &str) -> Result<User> {
        let now = self.now();
        let email = email.trim().to_lowercase();
        // No account has such an address: refused before it is counted or kept.
        if email.len() > MAX_EMAIL_LEN {
            return Err(Error::Unauthenticated(crate::error::AuthFailure::Unknown));
        }
        let subjects = self.limiter.subjects(Surface::Password, ip, Some(&email));
        if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
            return Err(Error::RateLimited { retry_after });
        }
        let user = self.store.get_user_by_email(&email).await?;
        let ok = password::verify(
            password.expose().to_owned(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
        match user {
            // The right password of a disabled account: said, since whoever typed it is
            // its owner (or knows the password anyway).
            Some(user) if ok && user.disabled_at.is_some() => {
                self.audit(Some(&user.id), "user.login_disabled", Some(ip), json!({}))
                    .await;
                Err(Error::Unauthenticated(crate::error::AuthFailure::Disabled))
            }
            Some(user) if ok && self.settings.require_verified_email && !user.email_verified => {
                self.audit(Some(&user.id), "user.login_unverified", Some(ip), json!({}))
                    .await;
                Err(Error::EmailNotVerified)
            }
            Some(user) if ok => {
                self.audit(Some(&user.id), "user.login", Some(ip), json!({}))
                    .await;
                Ok(user)
            }
            user => {
                self.limiter.record_failure(&subjects, now).await;
                let user_id = user.as_ref().map(|u| u.id.as_str());
                self.audit(user_id, "user.login_failed", Some(ip), json!({}))
                    .await;
                // The failure that reaches the limit locks sign-in for a while: said once.
                if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
                    self.audit(
                        user_id,
                        "login.locked",
                        Some(ip),
                        json!({ "retry_after_seconds": retry_after }),
                    )
                    .await;
                }
                Err(Error::Unauthenticated(crate::error::AuthFailure::Unknown))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").ok(),
            Some("ada@example.com".to_owned())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@c.de",
            "a@b@c.de",
            "a@.com",
            "a@b..com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn name_rules() {
        assert_eq!(normalize_name("name", " Ada ").ok(), Some("Ada".to_owned()));
        assert!(normalize_name("name", "   ").is_err());
        assert!(normalize_name("name", &"x".repeat(101)).is_err());
    }

    #[test]
    fn names_with_bidirectional_controls_are_refused() {
        for bidi in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            let name = format!("Good App{bidi}ppA liveE");
            match normalize_name("client_name", &name) {
                Err(Error::InvalidArgument { field, .. }) => {
                    assert_eq!(field.as_deref(), Some("client_name"), "{bidi:?}");
                }
                other => panic!("{bidi:?} accepted: {other:?}"),
            }
        }
        // Right-to-left text itself is a name like any other.
        assert!(normalize_name("name", "مرحبا Ada").is_ok());
        assert!(normalize_name("name", "שלום").is_ok());
    }
}
