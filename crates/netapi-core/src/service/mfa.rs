//! Second factors: TOTP enrolment and its recovery codes, the code step of signing in, and
//! the policy that makes them required. The secret is sealed under the secret key (it must be
//! read to check a code); recovery codes are kept only as HMACs.

use rand::RngCore;
use rand::rngs::OsRng;
use serde_json::json;

use super::{AccountChange, NetApi};
use crate::error::{AuthFailure, Error, Result};
use crate::limiter::Surface;
use crate::model::{Amr, TotpFactor, User};
use crate::scope::Role;
use crate::secret::{Secret, SecretHash, constant_time_eq};
use crate::totp;

/// How many recovery codes a user gets at once.
pub const RECOVERY_CODES: usize = 10;
/// Seconds a password-checked sign-in may wait for its second factor.
pub const SECOND_FACTOR_TTL: i64 = 300;
/// The longest code or proof considered (longer ones are refused before any work).
const MAX_CODE_LEN: usize = 64;
/// Characters of a recovery code, without its dashes (80 random bits in base32).
const RECOVERY_CODE_LEN: usize = 16;

/// What a user's second factor looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaStatus {
    /// A confirmed authenticator: sign-in asks for a code.
    pub enabled: bool,
    /// When it was confirmed.
    pub enabled_at: Option<i64>,
    /// Unused recovery codes.
    pub recovery_codes_left: u64,
    /// An enrolment started but not confirmed.
    pub pending: Option<TotpEnrolment>,
}

/// What an authenticator app needs: shown once to its user while enrolment is pending.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing in.
    pub secret_base32: String,
    /// The `otpauth://` URI, for the QR code.
    pub uri: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(..)")
    }
}

/// A change of a user's second factor: the hook through which it is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaChange {
    /// An authenticator was confirmed.
    Enabled,
    /// The authenticator and recovery codes were removed.
    Disabled,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// A recovery code was used to sign in.
    RecoveryCodeUsed,
    /// A passkey was registered.
    PasskeyAdded,
    /// A passkey was removed.
    PasskeyRemoved,
}

impl MfaChange {
    /// The audit event's kind.
    pub fn event(self) -> &'static str {
        match self {
            Self::Enabled => "mfa.enabled",
            Self::Disabled => "mfa.disabled",
            Self::RecoveryCodesRegenerated => "mfa.recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "mfa.recovery_code_used",
            Self::PasskeyAdded => "mfa.passkey_added",
            Self::PasskeyRemoved => "mfa.passkey_removed",
        }
    }
}

/// A recovery code as typed: dashes and white space dropped, lower case; `None` if it cannot
/// be one.
fn normalized_recovery_code(text: &str) -> Option<String> {
    let code: String = text
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == RECOVERY_CODE_LEN
        && code.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7')))
    .then_some(code)
}

/// A new recovery code, shown as four groups of four.
fn new_recovery_code() -> String {
    let mut bytes = [0u8; 10];
    OsRng.fill_bytes(&mut bytes);
    let plain = totp::base32(&bytes).to_ascii_lowercase();
    plain
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A code as typed, white space dropped (apps show `123 456`).
fn compact(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace()).collect()
}

impl NetApi {
    /// The sealing context of a user's TOTP secret: sealed for one user, useless for another.
    fn totp_context(user_id: &str) -> Vec<u8> {
        format!("mfa_totp:{user_id}").into_bytes()
    }

    fn open_totp(&self, factor: &TotpFactor) -> Result<Vec<u8>> {
        self.settings
            .secret_key
            .open(&Self::totp_context(&factor.user_id), &factor.sealed_secret)
            .ok_or_else(|| {
                Error::Misconfigured(
                    "a TOTP secret cannot be opened with this secret key (secret_key_file)"
                        .to_owned(),
                )
            })
    }

    fn enrolment(&self, user: &User, secret: &[u8]) -> TotpEnrolment {
        let host = url::Url::parse(&self.settings.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        TotpEnrolment {
            secret_base32: totp::base32(secret),
            uri: totp::otpauth_uri(&format!("Net API ({host})"), &user.email, secret),
        }
    }

    /// The user's second factor.
    pub async fn mfa_status(&self, user: &User) -> Result<MfaStatus> {
        let factor = self.store.get_totp(&user.id).await?;
        let pending = match &factor {
            Some(f) if f.confirmed_at.is_none() => Some(self.enrolment(user, &self.open_totp(f)?)),
            _ => None,
        };
        Ok(MfaStatus {
            enabled: factor.as_ref().is_some_and(|f| f.confirmed_at.is_some()),
            enabled_at: factor.as_ref().and_then(|f| f.confirmed_at),
            recovery_codes_left: self.store.count_recovery_codes(&user.id).await?,
            pending,
        })
    }

    /// Whether the user has a confirmed authenticator app.
    pub async fn has_totp(&self, user_id: &str) -> Result<bool> {
        Ok(self
            .store
            .get_totp(user_id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some()))
    }

    /// Whether signing in asks this user for a second factor: a confirmed authenticator app
    /// or a passkey.
    pub async fn has_second_factor(&self, user_id: &str) -> Result<bool> {
        Ok(self.has_totp(user_id).await? || !self.store.list_passkeys(user_id).await?.is_empty())
    }

    /// Whether policy requires this user to have a second factor.
    pub fn mfa_required_for(&self, user: &User) -> bool {
        self.settings.mfa_required
            || (self.settings.mfa_required_for_admins && user.role == Role::Admin)
    }

    /// Whether this user must set up a second factor before anything else.
    pub async fn mfa_enrolment_due(&self, user: &User) -> Result<bool> {
        Ok(self.mfa_required_for(user) && !self.has_second_factor(&user.id).await?)
    }

    /// Starts (or restarts) enrolment: a new secret, stored sealed and not yet active.
    pub async fn start_totp_enrolment(&self, user: &User) -> Result<TotpEnrolment> {
        let mut secret = [0u8; totp::SECRET_LEN];
        OsRng.fill_bytes(&mut secret);
        let factor = TotpFactor {
            user_id: user.id.clone(),
            sealed_secret: self
                .settings
                .secret_key
                .seal(&Self::totp_context(&user.id), &secret),
            created_at: self.now(),
            confirmed_at: None,
            last_used_step: None,
        };
        if !self.store.put_pending_totp(&factor).await? {
            return Err(Error::AlreadyExists(
                "An authenticator is already set up; turn it off first.".to_owned(),
            ));
        }
        Ok(self.enrolment(user, &secret))
    }

    /// Confirms enrolment with a first code; answers the recovery codes, shown once. Every
    /// other session of the user and every refresh-token family ends (what a stolen password
    /// opened before the second factor guarded the account), `keep` (this browser's) stays.
    pub async fn confirm_totp_enrolment(
        &self,
        user: &User,
        code: &str,
        ip: &str,
        keep: &SecretHash,
    ) -> Result<Vec<Secret>> {
        let now = self.now();
        let subjects = self
            .limiter
            .subjects(Surface::Password, ip, Some(&user.email));
        if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
            return Err(Error::RateLimited { retry_after });
        }
        let Some(factor) = self
            .store
            .get_totp(&user.id)
            .await?
            .filter(|f| f.confirmed_at.is_none())
        else {
            return Err(Error::NotFound("pending authenticator"));
        };
        let secret = self.open_totp(&factor)?;
        let code = compact(code);
        let step = (code.len() <= MAX_CODE_LEN)
            .then(|| totp::matching_step(&secret, &code, now))
            .flatten();
        let Some(step) = step else {
            self.limiter.record_failure(&subjects, now).await;
            return Err(Error::invalid(
                "code",
                "That code is not the authenticator's current one; check the app's clock and try again",
            ));
        };
        if !self.store.confirm_totp(&user.id, step, now).await? {
            return Err(Error::NotFound("pending authenticator"));
        }
        let codes = self.replace_recovery_codes(&user.id).await?;
        self.end_sign_ins_but(&user.id, keep).await?;
        self.announce_mfa_change(user, MfaChange::Enabled, ip).await;
        Ok(codes)
    }

    async fn replace_recovery_codes(&self, user_id: &str) -> Result<Vec<Secret>> {
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let hashes: Vec<_> = codes
            .iter()
            .filter_map(|c| normalized_recovery_code(c))
            .map(|c| self.recovery_hash(&c))
            .collect();
        self.store
            .replace_recovery_codes(user_id, &hashes, self.now())
            .await?;
        Ok(codes.into_iter().map(Secret::new).collect())
    }

    fn recovery_hash(&self, normalized: &str) -> crate::secret::SecretHash {
        self.hasher()
            .hash(&format!("mfa recovery code:{normalized}"))
    }

    /// New recovery codes in place of the old, after proof of presence (a current code or
    /// the password).
    pub async fn regenerate_recovery_codes(
        &self,
        user: &User,
        proof: &Secret,
        ip: &str,
    ) -> Result<Vec<Secret>> {
        if !self.has_totp(&user.id).await? {
            return Err(Error::NotFound("authenticator"));
        }
        self.check_presence(user, proof, ip).await?;
        let codes = self.replace_recovery_codes(&user.id).await?;
        self.announce_mfa_change(user, MfaChange::RecoveryCodesRegenerated, ip)
            .await;
        Ok(codes)
    }

    /// Turns the authenticator app off, after proof of presence (a current code or the
    /// password). Refused while policy requires a second factor and the user has no passkey.
    pub async fn disable_mfa(&self, user: &User, proof: &Secret, ip: &str) -> Result<()> {
        if !self.has_totp(&user.id).await? {
            return Err(Error::NotFound("authenticator"));
        }
        if self.mfa_required_for(user) && self.store.list_passkeys(&user.id).await?.is_empty() {
            return Err(Error::PermissionDenied {
                scope: None,
                message: "This server requires a second factor for your account; it cannot be \
                          turned off."
                    .to_owned(),
            });
        }
        self.check_presence(user, proof, ip).await?;
        self.store.delete_totp(&user.id).await?;
        self.announce_mfa_change(user, MfaChange::Disabled, ip)
            .await;
        Ok(())
    }

    /// A current TOTP code or the password, counted by the failure limiter like sign-in.
    pub(super) async fn check_presence(&self, user: &User, proof: &Secret, ip: &str) -> Result<()> {
        let now = self.now();
        let subjects = self
            .limiter
            .subjects(Surface::Password, ip, Some(&user.email));
        if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
            return Err(Error::RateLimited { retry_after });
        }
        let presented = proof.expose();
        let ok = if presented.len() > crate::password::MAX_LEN {
            false
        } else if totp::looks_like_code(&compact(presented)) {
            self.use_totp_code(&user.id, &compact(presented), now)
                .await?
        } else {
            crate::password::verify(presented.to_owned(), Some(user.password_hash.clone())).await?
        };
        if ok {
            Ok(())
        } else {
            self.limiter.record_failure(&subjects, now).await;
            self.audit(Some(&user.id), "mfa.proof_failed", Some(ip), json!({}))
                .await;
            Err(Error::invalid(
                "proof",
                "Neither a current code from your authenticator nor your password",
            ))
        }
    }

    /// Checks a TOTP code and spends its step: a step once used (or an earlier one) is
    /// refused, on every instance.
    async fn use_totp_code(&self, user_id: &str, code: &str, now: i64) -> Result<bool> {
        let Some(factor) = self
            .store
            .get_totp(user_id)
            .await?
            .filter(|f| f.confirmed_at.is_some())
        else {
            return Ok(false);
        };
        let secret = self.open_totp(&factor)?;
        match totp::matching_step(&secret, code, now) {
            Some(step) => Ok(self.store.use_totp_step(user_id, step).await?),
            None => Ok(false),
        }
    }

    /// The second step of signing in: a TOTP code or an unused recovery code. Wrong codes
    /// count in the failure limiter with wrong passwords (the same subjects); answers how the
    /// user authenticated.
    pub async fn verify_second_factor(&self, user: &User, code: &str, ip: &str) -> Result<Amr> {
        let now = self.now();
        let subjects = self
            .limiter
            .subjects(Surface::Password, ip, Some(&user.email));
        if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
            return Err(Error::RateLimited { retry_after });
        }
        let code = compact(code);
        let method = if code.len() > MAX_CODE_LEN {
            None
        } else if totp::looks_like_code(&code) {
            self.use_totp_code(&user.id, &code, now)
                .await?
                .then_some("totp")
        } else if let Some(recovery) = normalized_recovery_code(&code) {
            self.store
                .use_recovery_code(&user.id, &self.recovery_hash(&recovery), now)
                .await?
                .then_some("recovery_code")
        } else {
            None
        };
        match method {
            Some(method) => {
                self.audit(
                    Some(&user.id),
                    "mfa.verified",
                    Some(ip),
                    json!({ "method": method }),
                )
                .await;
                if method == "recovery_code" {
                    self.announce_mfa_change(user, MfaChange::RecoveryCodeUsed, ip)
                        .await;
                }
                Ok(Amr::PasswordOtp)
            }
            None => {
                self.limiter.record_failure(&subjects, now).await;
                self.audit(Some(&user.id), "mfa.failed", Some(ip), json!({}))
                    .await;
                if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
                    self.audit(
                        Some(&user.id),
                        "login.locked",
                        Some(ip),
                        json!({ "retry_after_seconds": retry_after }),
                    )
                    .await;
                }
                Err(Error::Unauthenticated(AuthFailure::Unknown))
            }
        }
    }

    /// A change of a user's second factor: audited (the audit log also feeds webhooks),
    /// logged, and told to the user's address when email is on.
    pub async fn announce_mfa_change(&self, user: &User, change: MfaChange, ip: &str) {
        tracing::info!(user_id = %user.id, change = change.event(), "second factor changed");
        self.audit(Some(&user.id), change.event(), Some(ip), json!({}))
            .await;
        self.notify_account_change(user, &user.email, AccountChange::Mfa(change))
            .await;
    }

    /// A ticket for a browser whose password was right and whose second factor is awaited:
    /// the user, an expiry and an HMAC over them and `bind` (the sign-in form's CSRF cookie),
    /// so that it works only in that browser, only for a while, and cannot be forged.
    pub fn second_factor_ticket(&self, user_id: &str, bind: &str) -> String {
        let expires = self.now() + SECOND_FACTOR_TTL;
        let mac = self.ticket_mac(user_id, expires, bind);
        format!("{user_id}.{expires}.{mac}")
    }

    fn ticket_mac(&self, user_id: &str, expires: i64, bind: &str) -> String {
        let hash = self.hasher().hash(&format!(
            "netapi second factor ticket v1\n{user_id}\n{expires}\n{bind}"
        ));
        hash.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The user a ticket is for, if it is genuine, unexpired, bound to `bind`, and the user
    /// still exists.
    pub async fn second_factor_user(&self, ticket: &str, bind: &str) -> Result<Option<User>> {
        if ticket.len() > 200 || bind.is_empty() {
            return Ok(None);
        }
        let mut parts = ticket.split('.');
        let (Some(user_id), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let Ok(expires) = expires.parse::<i64>() else {
            return Ok(None);
        };
        if !constant_time_eq(&self.ticket_mac(user_id, expires, bind), mac) || self.now() >= expires
        {
            return Ok(None);
        }
        Ok(self.store.get_user(user_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_read_back_however_typed() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 19);
        let plain = normalized_recovery_code(&code).unwrap_or_default();
        assert_eq!(plain.len(), 16);
        assert_eq!(
            normalized_recovery_code(&code.to_uppercase().replace('-', " ")),
            Some(plain)
        );
        assert_eq!(normalized_recovery_code("123456"), None);
        assert_eq!(normalized_recovery_code("abcd-efgh-ijkl-mno1"), None);
    }
}
