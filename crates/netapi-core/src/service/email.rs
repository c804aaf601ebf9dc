//! Email: verification links, password-reset links and notices of account changes.
//!
//! Core only composes messages; a [`Mailer`] (SMTP, in the server) sends them. Without one,
//! every feature here answers [`Error::EmailOff`] and nothing is written anywhere in place of
//! the message: the links are secrets. A link's secret is stored only as its keyed hash, is
//! single use (the store marks it used in the transaction that acts on it) and expires.
//! Messages go out in a task of their own, so that an answer takes the same time whether or
//! not a message was sent (a reset request tells nothing), and a mail server that is down
//! fails nothing but the message (logged without its text).

use serde_json::json;
use std::fmt;
use std::sync::Arc;

use super::users::normalize_email;
use super::{MfaChange, NetApi};
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::limiter::Surface;
use crate::model::{EmailPurpose, EmailToken, User};
use crate::password;
use crate::scope::Scope;
use crate::secret::{Secret, SecretKind, check_format, generate};
use crate::store::Invalidation;

use super::Principal;

/// How long a password-reset link works, seconds.
pub const RESET_LINK_TTL: i64 = 1800;
/// How long an email-verification link works, seconds.
pub const VERIFY_LINK_TTL: i64 = 86_400;

/// One message to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// Plain-text body; may carry a secret link.
    pub body: String,
}

/// Shows the recipient and subject, never the body (it may carry a link).
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a message could not be sent. Its text must never carry the message's body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// Sends messages (SMTP in the server; a recorder in tests).
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + fmt::Debug + 'static {
    /// Sends one message.
    async fn send(&self, email: &Email) -> std::result::Result<(), MailError>;
}

/// A change to an account that is announced to its address (for an email change, the
/// address it had before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// The email address changed.
    Email,
    /// The password changed (or was reset).
    Password,
    /// The second factor changed.
    Mfa(MfaChange),
}

impl AccountChange {
    /// The notice's subject and its sentence about what happened at `site`; never a secret.
    fn notice(self, site: &str) -> (&'static str, String) {
        match self {
            Self::Email => (
                "Your email address was changed",
                format!("The email address of your account at {site} was just changed."),
            ),
            Self::Password => (
                "Your password was changed",
                format!("The password of your account at {site} was just changed."),
            ),
            Self::Mfa(MfaChange::Enabled) => (
                "Two-step sign-in was turned on",
                format!(
                    "Two-step sign-in (an authenticator app) was just turned on for your \
                     account at {site}; your other sessions were signed out."
                ),
            ),
            Self::Mfa(MfaChange::Disabled) => (
                "Two-step sign-in was turned off",
                format!(
                    "Two-step sign-in was just turned off for your account at {site}: signing \
                     in asks for the password only."
                ),
            ),
            Self::Mfa(MfaChange::RecoveryCodesRegenerated) => (
                "Your recovery codes were replaced",
                format!(
                    "New recovery codes were just made for your account at {site}; the old \
                     ones no longer work."
                ),
            ),
            Self::Mfa(MfaChange::RecoveryCodeUsed) => (
                "A recovery code was used to sign in",
                format!(
                    "One of your recovery codes was just used to sign in to your account at \
                     {site}; it no longer works."
                ),
            ),
            Self::Mfa(MfaChange::PasskeyAdded) => (
                "A passkey was added to your account",
                format!(
                    "A passkey was just added to your account at {site}; it can sign you in \
                     without a password. If this was not you, remove it on the security page \
                     and change your password."
                ),
            ),
            Self::Mfa(MfaChange::PasskeyRemoved) => (
                "A passkey was removed from your account",
                format!("A passkey was just removed from your account at {site}."),
            ),
        }
    }
}

impl NetApi {
    /// Whether a mail server is set up.
    pub fn email_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    fn mailer(&self) -> Result<&Arc<dyn Mailer>> {
        self.mailer.as_ref().ok_or(Error::EmailOff)
    }

    /// The link of a page of this server carrying `secret`.
    fn link(&self, path: &str, secret: &Secret) -> String {
        format!(
            "{}{path}?token={}",
            self.settings.issuer.trim_end_matches('/'),
            secret.expose()
        )
    }

    /// Counts a request for mail from `ip`; `false` once the source is over its hourly limit.
    async fn mail_source_allowed(&self, ip: Option<&str>) -> bool {
        let limit = self.settings.email_source_limit_per_hour;
        let Some(ip) = ip else { return true };
        if limit == 0 {
            return true;
        }
        let source = crate::limiter::source_of(ip);
        let allowed = self
            .mail_limits
            .hit(&format!("source {source}"), limit, self.now())
            .await
            .is_ok();
        if !allowed {
            metrics::counter!("netapi_emails_suppressed_total", "reason" => "source_limit")
                .increment(1);
        }
        allowed
    }

    /// Counts a message to `address`; `false` once the recipient is over its hourly limit.
    async fn mail_recipient_allowed(&self, address: &str) -> bool {
        let limit = self.settings.email_recipient_limit_per_hour;
        if limit == 0 {
            return true;
        }
        let allowed = self
            .mail_limits
            .hit(&format!("recipient {address}"), limit, self.now())
            .await
            .is_ok();
        if !allowed {
            metrics::counter!("netapi_emails_suppressed_total", "reason" => "recipient_limit")
                .increment(1);
        }
        allowed
    }

    /// Sends `email` in a task of its own; a failure is logged with the recipient's user and
    /// the kind of message, never the message.
    fn deliver(&self, mailer: &Arc<dyn Mailer>, email: Email, kind: &'static str, user_id: &str) {
        let mailer = Arc::clone(mailer);
        let user_id = user_id.to_owned();
        tokio::spawn(async move {
            match mailer.send(&email).await {
                Ok(()) => {
                    metrics::counter!("netapi_emails_sent_total", "kind" => kind).increment(1);
                }
                Err(err) => {
                    metrics::counter!("netapi_emails_failed_total", "kind" => kind).increment(1);
                    tracing::warn!(error = %err, kind, user_id, "could not send email");
                }
            }
        });
    }

    /// Makes, stores and mails a link of `purpose` to the user's present address, if the
    /// recipient is within its limit.
    async fn mail_link(
        &self,
        mailer: &Arc<dyn Mailer>,
        user: &User,
        purpose: EmailPurpose,
    ) -> Result<()> {
        if !self.mail_recipient_allowed(&user.email).await {
            return Ok(());
        }
        let now = self.now();
        let secret = generate(SecretKind::EmailLink);
        let (ttl, path, kind) = match purpose {
            EmailPurpose::VerifyEmail => (VERIFY_LINK_TTL, "/verify-email", "verify_email"),
            EmailPurpose::ResetPassword => (RESET_LINK_TTL, "/reset-password", "reset_password"),
        };
        let token = EmailToken {
            id: new_id("eml"),
            purpose,
            user_id: user.id.clone(),
            email: user.email.clone(),
            hash: self.hasher().hash(secret.expose()),
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
        };
        self.store.insert_email_token(&token).await?;
        let link = self.link(path, &secret);
        let email = match purpose {
            EmailPurpose::VerifyEmail => Email {
                to: user.email.clone(),
                subject: "Verify your email address".to_owned(),
                body: format!(
                    "Hello {},\n\nTo confirm that {} is your address, open this link \
                     within 24 hours:\n\n{link}\n\nIf you did not create an account or change \
                     your address, ignore this message.\n",
                    user.name, user.email
                ),
            },
            EmailPurpose::ResetPassword => Email {
                to: user.email.clone(),
                subject: "Reset your password".to_owned(),
                body: format!(
                    "Hello {},\n\nSomeone (we hope you) asked to reset the password of your \
                     account. To choose a new one, open this link within 30 minutes:\n\n\
                     {link}\n\nThe link works once. If you did not ask for it, ignore this \
                     message: your password stays as it is.\n",
                    user.name
                ),
            },
        };
        self.deliver(mailer, email, kind, &user.id);
        Ok(())
    }

    /// After a registration or an email change: mails a verification link to the user's
    /// address when email is on; a failure is logged, never the caller's failure.
    pub(crate) async fn send_verification_after_change(&self, user: &User, ip: Option<&str>) {
        let Ok(mailer) = self.mailer() else { return };
        if !self.mail_source_allowed(ip).await {
            return;
        }
        if let Err(err) = self
            .mail_link(mailer, user, EmailPurpose::VerifyEmail)
            .await
        {
            tracing::warn!(error = %err, user_id = user.id, "could not make a verification link");
        }
    }

    /// `POST /v1/email-verification`: a new verification link for the caller's address.
    pub async fn request_email_verification(
        &self,
        caller: &Principal,
        ip: Option<&str>,
    ) -> Result<()> {
        caller.require(Scope::UsersWrite)?;
        let mailer = self.mailer()?;
        let user = self
            .store
            .get_user(&caller.user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if user.email_verified {
            return Err(Error::AlreadyExists(
                "The email address is already verified.".to_owned(),
            ));
        }
        if self.mail_source_allowed(ip).await {
            self.mail_link(mailer, &user, EmailPurpose::VerifyEmail)
                .await?;
        }
        Ok(())
    }

    /// The login page's "send the link again": a verification link to `email` when it
    /// names an unverified account. The answer is the same whatever the address.
    pub async fn resend_verification(&self, email: &str, ip: &str) -> Result<()> {
        let mailer = self.mailer()?;
        let email = normalize_email(email)?;
        if !self.mail_source_allowed(Some(ip)).await {
            return Ok(());
        }
        if let Some(user) = self.store.get_user_by_email(&email).await?
            && !user.email_verified
        {
            self.mail_link(mailer, &user, EmailPurpose::VerifyEmail)
                .await?;
        }
        Ok(())
    }

    /// `POST /v1/password-reset` and the "Forgot password?" form: mails a reset link when
    /// `email` names an account. The answer is the same (and as quick) whatever the address,
    /// and over the per-source or per-recipient limit nothing is sent.
    pub async fn request_password_reset(&self, email: &str, ip: &str) -> Result<()> {
        let mailer = self.mailer()?;
        let email = normalize_email(email)?;
        if !self.mail_source_allowed(Some(ip)).await {
            return Ok(());
        }
        let Some(user) = self.store.get_user_by_email(&email).await? else {
            return Ok(());
        };
        self.mail_link(mailer, &user, EmailPurpose::ResetPassword)
            .await?;
        self.audit(
            Some(&user.id),
            "user.password_reset_requested",
            Some(ip),
            json!({}),
        )
        .await;
        Ok(())
    }

    /// An administrator sends `user_id` a password-reset link (the admin console). Within the
    /// per-recipient limit, as every message; `EmailOff` without a mail server.
    pub async fn send_password_reset(
        &self,
        caller: &Principal,
        user_id: &str,
        ip: Option<&str>,
    ) -> Result<User> {
        caller.require(Scope::UsersWrite)?;
        caller.require_admin()?;
        let mailer = self.mailer()?;
        let user = self
            .store
            .get_user(user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        self.mail_link(mailer, &user, EmailPurpose::ResetPassword)
            .await?;
        self.audit(
            Some(&user.id),
            "user.password_reset_requested",
            ip,
            json!({ "by": caller.user_id }),
        )
        .await;
        Ok(user)
    }

    /// The secret of a presented link, checked for shape and for the source's failures.
    async fn presented_link(
        &self,
        token: &str,
        ip: Option<&str>,
    ) -> Result<(crate::secret::SecretHash, Vec<crate::limiter::SubjectKey>)> {
        let subjects = ip
            .map(|ip| self.limiter.subjects(Surface::EmailLink, ip, None))
            .unwrap_or_default();
        if let Some(retry_after) = self.limiter.blocked(&subjects, self.now()).await {
            return Err(Error::RateLimited { retry_after });
        }
        if check_format(SecretKind::EmailLink, token).is_err() {
            self.limiter.record_failure(&subjects, self.now()).await;
            return Err(bad_link());
        }
        Ok((self.hasher().hash(token), subjects))
    }

    /// Follows a verification link: the address it was sent to is verified, if the user
    /// still has it. The link works once.
    pub async fn verify_email(&self, token: &str, ip: Option<&str>) -> Result<User> {
        let (hash, subjects) = self.presented_link(token, ip).await?;
        let Some(user) = self
            .store
            .verify_email_with_token(&hash, self.now())
            .await?
        else {
            self.limiter.record_failure(&subjects, self.now()).await;
            return Err(bad_link());
        };
        self.invalidate(Invalidation::User(user.id.clone())).await?;
        self.audit(Some(&user.id), "user.email_verified", ip, json!({}))
            .await;
        Ok(user)
    }

    /// Whether a reset link is one that still works (the reset page shows its form only
    /// then); counts a failure otherwise.
    pub async fn check_reset_link(&self, token: &str, ip: Option<&str>) -> Result<()> {
        let (hash, subjects) = self.presented_link(token, ip).await?;
        match self.store.get_email_token(&hash).await? {
            Some(link) if self.reset_link_works(&link) => Ok(()),
            _ => {
                self.limiter.record_failure(&subjects, self.now()).await;
                Err(bad_link())
            }
        }
    }

    fn reset_link_works(&self, link: &EmailToken) -> bool {
        link.purpose == EmailPurpose::ResetPassword
            && link.used_at.is_none()
            && link.expires_at > self.now()
    }

    /// Sets a new password through a reset link (the same rules as at registration). The
    /// link is used in the transaction that sets the password, so it works once however many
    /// requests race; every session and refresh-token family of the user ends, and the
    /// address is told. The user is not signed in.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &Secret,
        ip: Option<&str>,
    ) -> Result<User> {
        let (hash, subjects) = self.presented_link(token, ip).await?;
        let link = match self.store.get_email_token(&hash).await? {
            Some(link) if self.reset_link_works(&link) => link,
            _ => {
                self.limiter.record_failure(&subjects, self.now()).await;
                return Err(bad_link());
            }
        };
        let user = self
            .store
            .get_user(&link.user_id)
            .await?
            .ok_or_else(bad_link)?;
        password::validate(new_password.expose(), &user.email)?;
        let password_hash = password::hash(new_password.expose().to_owned()).await?;
        let Some(user) = self
            .store
            .reset_password_with_token(&hash, &password_hash, self.now())
            .await?
        else {
            // Used (or expired) while the password was hashing.
            return Err(bad_link());
        };
        self.invalidate(Invalidation::User(user.id.clone())).await?;
        self.end_sign_ins(&user.id).await?;
        self.audit(Some(&user.id), "user.password_reset", ip, json!({}))
            .await;
        self.notify_account_change(&user, &user.email, AccountChange::Password)
            .await;
        Ok(user)
    }

    /// Tells `old_address` that the user's `change` happened (after an email change, the
    /// address the user had before; otherwise the present one). Nothing when email is off or
    /// the recipient is over its limit.
    pub async fn notify_account_change(
        &self,
        user: &User,
        old_address: &str,
        change: AccountChange,
    ) {
        let Ok(mailer) = self.mailer() else { return };
        if !self.mail_recipient_allowed(old_address).await {
            return;
        }
        let (subject, what) = change.notice(&self.settings.issuer);
        let email = Email {
            to: old_address.to_owned(),
            subject: subject.to_owned(),
            body: format!(
                "Hello {},\n\n{what} If you did this, there is nothing to do. If you did not, \
                 reset your password at once and tell your administrator.\n",
                user.name
            ),
        };
        self.deliver(mailer, email, "account_change", &user.id);
    }
}

fn bad_link() -> Error {
    Error::invalid(
        "token",
        "is not a valid link: it may have expired or been used already; ask for a new one",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_an_email_hides_its_body() {
        let email = Email {
            to: "ada@example.com".to_owned(),
            subject: "Reset your password".to_owned(),
            body: "https://id.example/reset-password?token=napel_secret".to_owned(),
        };
        let shown = format!("{email:?}");
        assert!(shown.contains("ada@example.com"));
        assert!(!shown.contains("napel_secret"));
    }
}
