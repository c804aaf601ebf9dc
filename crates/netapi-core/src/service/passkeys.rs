//! Passkeys (WebAuthn, through webauthn-rs): registering them, and signing in with one either
//! as the second factor after a password or alone (a discoverable credential, no email typed).
//!
//! The relying party is the issuer: its host is the RP id, its origin the only origin
//! accepted. WebAuthn needs a domain name, so with an issuer whose host is an IP address
//! passkeys are off. Each ceremony's state (its challenge) is kept in the database, found by an
//! HMAC of its purpose and what binds it to one browser (the session, or the sign-in form's
//! CSRF token), so that any instance can finish what another started; it is taken once and
//! expires after [`CEREMONY_TTL`] seconds: a replayed assertion finds nothing to answer.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};

use super::NetApi;
use super::mfa::MfaChange;
use super::users::normalize_name;
use crate::error::{AuthFailure, Error, Result};
use crate::ids::new_id;
use crate::limiter::{SubjectKey, Surface};
use crate::model::{Amr, PasskeyCredential, User, WebauthnCeremony};
use crate::secret::{Secret, SecretHash};

/// Passkeys one user may have.
pub const MAX_PASSKEYS: u64 = 10;
/// Seconds a ceremony waits for the browser's answer.
pub const CEREMONY_TTL: i64 = 300;
/// Passwordless sign-ins pending at once, across all users: each costs a row, and anyone may
/// start one, so their number is bounded (they expire after [`CEREMONY_TTL`]).
pub const MAX_PENDING_PASSWORDLESS: u64 = 10_000;
/// The largest credential (JSON) a browser may send back; real ones are a few KiB.
pub const MAX_CREDENTIAL_JSON: usize = 64 * 1024;

/// What a ceremony is for; part of its key, so that one cannot stand in for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyStep {
    /// Adding a passkey to a signed-in user.
    Register,
    /// The second factor after a right password.
    SecondFactor,
    /// Signing in with a passkey alone.
    Passwordless,
}

impl PasskeyStep {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SecondFactor => "second_factor",
            Self::Passwordless => "passwordless",
        }
    }
}

/// Why passkeys cannot be used on this server.
fn passkeys_off() -> Error {
    Error::PermissionDenied {
        scope: None,
        message: "Passkeys are off on this server: its issuer's host is not a domain name."
            .to_owned(),
    }
}

/// The refusal of every assertion that does not check out, whatever the reason (unknown
/// credential, wrong signature, used or expired challenge): nothing to learn from it.
fn refused() -> Error {
    Error::Unauthenticated(AuthFailure::Unknown)
}

fn internal(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{what}: {err}"))
}

/// A credential id as stored: base64url without padding.
fn credential_key(raw: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The WebAuthn user handle of a user: derived from the id (not personal data, the same on
/// every instance), so that a discoverable credential names its user.
fn user_handle(user_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("netapi webauthn user handle v1\n{user_id}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

impl NetApi {
    /// The relying party, or `None` when the issuer's host is not a domain name.
    fn relying_party(&self) -> Option<Webauthn> {
        let issuer = Url::parse(&self.settings.issuer).ok()?;
        let url::Host::Domain(host) = issuer.host()? else {
            return None;
        };
        let origin = Url::parse(&issuer.origin().ascii_serialization()).ok()?;
        WebauthnBuilder::new(host, &origin)
            .ok()?
            .rp_name("Net API")
            .build()
            .ok()
    }

    /// Whether passkeys can be used here (the issuer's host is a domain name).
    pub fn passkeys_enabled(&self) -> bool {
        self.relying_party().is_some()
    }

    fn ceremony_hash(&self, step: PasskeyStep, bind: &str) -> SecretHash {
        self.hasher()
            .hash(&format!("webauthn ceremony:{}:{bind}", step.as_str()))
    }

    async fn keep_ceremony(
        &self,
        step: PasskeyStep,
        bind: &str,
        user_id: Option<&str>,
        state: &impl serde::Serialize,
    ) -> Result<()> {
        let now = self.now();
        let ceremony = WebauthnCeremony {
            hash: self.ceremony_hash(step, bind),
            purpose: step.as_str().to_owned(),
            user_id: user_id.map(str::to_owned),
            state: serde_json::to_string(state).map_err(|e| internal("ceremony state", e))?,
            expires_at: now + CEREMONY_TTL,
        };
        if self
            .store
            .put_webauthn_ceremony(&ceremony, MAX_PENDING_PASSWORDLESS, now)
            .await?
        {
            Ok(())
        } else {
            Err(Error::Busy {
                retry_after: u64::try_from(CEREMONY_TTL).unwrap_or(300),
            })
        }
    }

    /// Takes the ceremony `bind` started for `step` (once), if it is for `user_id`.
    async fn take_ceremony<T: serde::de::DeserializeOwned>(
        &self,
        step: PasskeyStep,
        bind: &str,
        user_id: Option<&str>,
    ) -> Result<Option<T>> {
        if bind.is_empty() {
            return Ok(None);
        }
        let taken = self
            .store
            .take_webauthn_ceremony(&self.ceremony_hash(step, bind), self.now())
            .await?;
        Ok(taken
            .filter(|c| c.purpose == step.as_str() && c.user_id.as_deref() == user_id)
            .and_then(|c| serde_json::from_str(&c.state).ok()))
    }

    /// A user's passkeys, oldest first.
    pub async fn list_passkeys(&self, user_id: &str) -> Result<Vec<PasskeyCredential>> {
        Ok(self.store.list_passkeys(user_id).await?)
    }

    /// Starts adding a passkey to `user`, bound to `bind` (the session); answers the options
    /// for `navigator.credentials.create` (JSON, binary fields in base64url).
    pub async fn start_passkey_registration(&self, user: &User, bind: &str) -> Result<Value> {
        let rp = self.relying_party().ok_or_else(passkeys_off)?;
        let existing = self.store.list_passkeys(&user.id).await?;
        if existing.len() as u64 >= MAX_PASSKEYS {
            return Err(too_many());
        }
        let exclude = existing
            .iter()
            .filter_map(|p| serde_json::from_str::<Passkey>(&p.passkey).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let (options, state) = rp
            .start_passkey_registration(
                user_handle(&user.id),
                &user.email,
                &user.name,
                Some(exclude),
            )
            .map_err(|e| internal("passkey registration", e))?;
        self.keep_ceremony(PasskeyStep::Register, bind, Some(&user.id), &state)
            .await?;
        let mut options = serde_json::to_value(options).map_err(|e| internal("options", e))?;
        // A discoverable (resident) credential, so that it can sign in without an email.
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".to_owned(), json!("required"));
            selection.insert("requireResidentKey".to_owned(), json!(true));
        }
        Ok(options)
    }

    /// Finishes adding a passkey: the browser's answer to the ceremony `bind` started, and the
    /// name the user gave it.
    pub async fn finish_passkey_registration(
        &self,
        user: &User,
        bind: &str,
        name: &str,
        credential: &Value,
        ip: &str,
    ) -> Result<PasskeyCredential> {
        let rp = self.relying_party().ok_or_else(passkeys_off)?;
        let name = normalize_name("name", name)?;
        let Some(state) = self
            .take_ceremony::<PasskeyRegistration>(PasskeyStep::Register, bind, Some(&user.id))
            .await?
        else {
            return Err(Error::invalid(
                "credential",
                "This passkey registration expired or was already used; start again",
            ));
        };
        let credential: RegisterPublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|_| Error::invalid("credential", "not a WebAuthn credential"))?;
        let passkey = rp
            .finish_passkey_registration(&credential, &state)
            .map_err(|err| {
                tracing::info!(error = %err, "a passkey registration was refused");
                Error::invalid("credential", "The authenticator's answer was not accepted")
            })?;
        let stored = PasskeyCredential {
            id: new_id("pk"),
            user_id: user.id.clone(),
            credential_id: credential_key(passkey.cred_id().as_ref()),
            name,
            passkey: serde_json::to_string(&passkey).map_err(|e| internal("passkey", e))?,
            created_at: self.now(),
            last_used_at: None,
        };
        match self.store.insert_passkey(&stored, MAX_PASSKEYS).await {
            Ok(true) => {}
            Ok(false) => return Err(too_many()),
            Err(crate::StoreError::Conflict(_)) => {
                return Err(Error::AlreadyExists(
                    "This passkey is already registered.".to_owned(),
                ));
            }
            Err(err) => return Err(err.into()),
        }
        self.announce_mfa_change(user, MfaChange::PasskeyAdded, ip)
            .await;
        Ok(stored)
    }

    /// Removes one of `user`'s passkeys after proof of presence (a current code or the
    /// password); refused when policy requires a second factor and it is the last one.
    pub async fn remove_passkey(
        &self,
        user: &User,
        id: &str,
        proof: &Secret,
        ip: &str,
    ) -> Result<()> {
        let passkeys = self.store.list_passkeys(&user.id).await?;
        if !passkeys.iter().any(|p| p.id == id) {
            return Err(Error::NotFound("passkey"));
        }
        if self.mfa_required_for(user) && passkeys.len() == 1 && !self.has_totp(&user.id).await? {
            return Err(Error::PermissionDenied {
                scope: None,
                message: "This server requires a second factor for your account: set up \
                          another before removing your last passkey."
                    .to_owned(),
            });
        }
        self.check_presence(user, proof, ip).await?;
        if !self.store.delete_passkey(&user.id, id).await? {
            return Err(Error::NotFound("passkey"));
        }
        self.announce_mfa_change(user, MfaChange::PasskeyRemoved, ip)
            .await;
        Ok(())
    }

    /// Starts a sign-in with a passkey, bound to `bind` (the sign-in form's CSRF token): as
    /// the second factor of `user` (whose password was right), or, without a user, a
    /// passwordless one where the authenticator offers its discoverable credentials. Answers
    /// the options for `navigator.credentials.get`.
    pub async fn start_passkey_sign_in(&self, user: Option<&User>, bind: &str) -> Result<Value> {
        let rp = self.relying_party().ok_or_else(passkeys_off)?;
        let options = match user {
            Some(user) => {
                let passkeys: Vec<Passkey> = self
                    .store
                    .list_passkeys(&user.id)
                    .await?
                    .iter()
                    .filter_map(|p| serde_json::from_str(&p.passkey).ok())
                    .collect();
                if passkeys.is_empty() {
                    return Err(Error::NotFound("passkey"));
                }
                let (options, state) = rp
                    .start_passkey_authentication(&passkeys)
                    .map_err(|e| internal("passkey sign-in", e))?;
                self.keep_ceremony(PasskeyStep::SecondFactor, bind, Some(&user.id), &state)
                    .await?;
                serde_json::to_value(options)
            }
            None => {
                let (mut options, state) = rp
                    .start_discoverable_authentication()
                    .map_err(|e| internal("passkey sign-in", e))?;
                // A button starts it, not the email field's autofill.
                options.mediation = None;
                self.keep_ceremony(PasskeyStep::Passwordless, bind, None, &state)
                    .await?;
                serde_json::to_value(options)
            }
        };
        options.map_err(|e| internal("options", e))
    }

    /// Finishes a sign-in with a passkey: checks the browser's assertion against the
    /// ceremony `bind` started (taken once) and the stored credential, records the new
    /// signature counter, and answers who signed in and how. Failures count in the failure
    /// limiter with wrong passwords and codes.
    pub async fn finish_passkey_sign_in(
        &self,
        user: Option<&User>,
        bind: &str,
        credential: &Value,
        ip: &str,
    ) -> Result<(User, Amr)> {
        let rp = self.relying_party().ok_or_else(passkeys_off)?;
        let now = self.now();
        let assertion: Option<PublicKeyCredential> =
            serde_json::from_value(credential.clone()).ok();
        let stored = match &assertion {
            Some(a) => {
                self.store
                    .get_passkey_by_credential(&credential_key(a.get_credential_id()))
                    .await?
            }
            None => None,
        };
        // Who is signing in: the user of the second factor, else the credential's owner.
        let owner = match (user, &stored) {
            (Some(user), _) => Some(user.clone()),
            (None, Some(stored)) => self.store.get_user(&stored.user_id).await?,
            (None, None) => None,
        };
        let subjects = self.limiter.subjects(
            Surface::Password,
            ip,
            owner.as_ref().map(|u| u.email.as_str()),
        );
        if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
            return Err(Error::RateLimited { retry_after });
        }
        let step = if user.is_some() {
            PasskeyStep::SecondFactor
        } else {
            PasskeyStep::Passwordless
        };
        let checked = match (assertion, stored, &owner) {
            (Some(assertion), Some(stored), Some(owner)) if stored.user_id == owner.id => {
                self.check_assertion(&rp, step, bind, &assertion, stored, owner)
                    .await?
            }
            _ => {
                // Spend the ceremony all the same: one try per challenge.
                let _ = self
                    .take_ceremony::<Value>(step, bind, user.map(|u| u.id.as_str()))
                    .await?;
                false
            }
        };
        let Some(owner) = owner.filter(|_| checked) else {
            return Err(self.passkey_failed(user, step, &subjects, ip).await);
        };
        if owner.disabled_at.is_some() {
            self.audit(Some(&owner.id), "user.login_disabled", Some(ip), json!({}))
                .await;
            return Err(Error::Unauthenticated(AuthFailure::Disabled));
        }
        if step == PasskeyStep::Passwordless
            && self.settings.require_verified_email
            && !owner.email_verified
        {
            self.audit(
                Some(&owner.id),
                "user.login_unverified",
                Some(ip),
                json!({}),
            )
            .await;
            return Err(Error::EmailNotVerified);
        }
        let (event, amr) = match step {
            PasskeyStep::SecondFactor => ("mfa.verified", Amr::PasswordPasskey),
            _ => ("user.login", Amr::Passkey),
        };
        self.audit(
            Some(&owner.id),
            event,
            Some(ip),
            json!({ "method": "passkey" }),
        )
        .await;
        Ok((owner, amr))
    }

    /// Takes the ceremony and checks the assertion with it; on success records the use.
    async fn check_assertion(
        &self,
        rp: &Webauthn,
        step: PasskeyStep,
        bind: &str,
        assertion: &PublicKeyCredential,
        stored: PasskeyCredential,
        owner: &User,
    ) -> Result<bool> {
        let mut passkey: Passkey =
            serde_json::from_str(&stored.passkey).map_err(|e| internal("stored passkey", e))?;
        let result = match step {
            PasskeyStep::SecondFactor => {
                let Some(state) = self
                    .take_ceremony::<PasskeyAuthentication>(step, bind, Some(&owner.id))
                    .await?
                else {
                    return Ok(false);
                };
                rp.finish_passkey_authentication(assertion, &state)
            }
            _ => {
                let Some(state) = self
                    .take_ceremony::<DiscoverableAuthentication>(step, bind, None)
                    .await?
                else {
                    return Ok(false);
                };
                // The user handle the authenticator returns must be this user's.
                match rp.identify_discoverable_authentication(assertion) {
                    Ok((handle, _)) if handle == user_handle(&owner.id) => {}
                    _ => return Ok(false),
                }
                rp.finish_discoverable_authentication(
                    assertion,
                    state,
                    &[DiscoverableKey::from(&passkey)],
                )
            }
        };
        let result = match result {
            Ok(result) => result,
            Err(err) => {
                tracing::info!(error = %err, "a passkey assertion was refused");
                return Ok(false);
            }
        };
        passkey.update_credential(&result);
        let state = serde_json::to_string(&passkey).map_err(|e| internal("passkey", e))?;
        self.store
            .record_passkey_use(&stored.id, &state, self.now())
            .await?;
        Ok(true)
    }

    /// Counts and audits a refused assertion; answers the error to return.
    async fn passkey_failed(
        &self,
        user: Option<&User>,
        step: PasskeyStep,
        subjects: &[SubjectKey],
        ip: &str,
    ) -> Error {
        let now = self.now();
        self.limiter.record_failure(subjects, now).await;
        let user_id = user.map(|u| u.id.as_str());
        let event = match step {
            PasskeyStep::SecondFactor => "mfa.failed",
            _ => "user.login_failed",
        };
        self.audit(user_id, event, Some(ip), json!({ "method": "passkey" }))
            .await;
        if let Some(retry_after) = self.limiter.blocked(subjects, now).await {
            self.audit(
                user_id,
                "login.locked",
                Some(ip),
                json!({ "retry_after_seconds": retry_after }),
            )
            .await;
        }
        refused()
    }
}

fn too_many() -> Error {
    Error::invalid(
        "credential",
        format!(
            "You have {MAX_PASSKEYS} passkeys, the most one account may have; remove one first"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_handles_are_stable_and_distinct() {
        assert_eq!(user_handle("usr_a"), user_handle("usr_a"));
        assert_ne!(user_handle("usr_a"), user_handle("usr_b"));
    }
}
