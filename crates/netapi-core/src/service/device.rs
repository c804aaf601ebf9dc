//! The device authorization grant (RFC 8628): a device without a browser asks for a device
//! code and a user code, a person types the user code at `/device` (signed in) and approves,
//! and the device polls the token endpoint with its device code until then.

use rand::RngCore;
use rand::rngs::OsRng;
use serde_json::json;
use std::sync::Arc;

use super::NetApi;
use super::oauth::{Grant, TokenResponse, kept};
use super::oauth_error::{OAuthError, OAuthReason};
use super::requests::{ClientRequest, DeviceAuthorizationParams, ResourceIndicator};
use crate::error::{Error, StoreError};
use crate::ids::new_id;
use crate::limiter::{SubjectKey, Surface};
use crate::model::{
    DeviceAuthorization, DeviceDecision, DeviceStatus, GrantType, OAuthClient, Resource, Session,
};
use crate::scope::Scopes;
use crate::secret::{Secret, SecretKind, check_format, generate};

type OAuthResult<T> = Result<T, OAuthError>;

/// How long a device code and its user code live, seconds.
pub const DEVICE_CODE_TTL: i64 = 600;
/// The polling interval a device starts with, seconds.
pub const DEVICE_POLL_INTERVAL: i64 = 5;
/// Device authorizations a public client may start per minute from one source (IPv6: per
/// /64): each is a row until it expires, and a public client's id is all it takes to start
/// one. (A confidential client's starts need its secret: they count against the client
/// alone, so that one backend may start them for many devices.)
pub const DEVICE_STARTS_PER_SOURCE: u32 = 20;
/// Device authorizations a client may start per minute from all sources together: what
/// bounds its rows (at most ten minutes' worth live at once). One source alone reaches only
/// [`DEVICE_STARTS_PER_SOURCE`], so it cannot hold every device of the client back.
pub const DEVICE_STARTS_PER_MINUTE: u32 = 1_200;
/// What each `slow_down` adds to the interval (RFC 8628 §3.5).
const SLOW_DOWN_STEP: i64 = 5;
/// Wrong user codes from all sources together, per minute, as a multiple of
/// `auth_failure_limit` (the limit of each source).
pub(super) const GLOBAL_GUESS_FACTOR: u32 = 10;
/// The letters of user codes: 20 consonants, no vowels (no words), none that reads like
/// another or like a digit (RFC 8628 §6.1). 20^8 codes, about 2^34.6.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code.
const USER_CODE_LEN: usize = 8;
/// The longest text a person may type as a user code (dashes and spaces included).
const MAX_USER_CODE_INPUT: usize = 32;

/// The answer of the device authorization endpoint (RFC 8628 §3.2). Its `Debug` leaves the
/// device code out.
#[derive(Clone)]
pub struct DeviceGrant {
    /// The device's secret for the token endpoint.
    pub device_code: Secret,
    /// What the person types, `XXXX-XXXX`.
    pub user_code: String,
    /// `<issuer>/device`.
    pub verification_uri: String,
    /// `<issuer>/device?user_code=XXXX-XXXX`.
    pub verification_uri_complete: String,
    /// Seconds until both codes expire.
    pub expires_in: i64,
    /// Seconds to wait between polls.
    pub interval: i64,
}

impl std::fmt::Debug for DeviceGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceGrant")
            .field("device_code", &"[redacted]")
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// A pending device request, as the verification page shows it for approval.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    /// The client that asks.
    pub client: Arc<OAuthClient>,
    /// Scopes of Net API's own it asks for.
    pub scopes: Scopes,
    /// The resource the tokens are to be for; `None`: Net API's own.
    pub resource: Option<Arc<Resource>>,
    /// Scopes of `resource` it asks for.
    pub resource_scopes: Vec<String>,
    /// The user code, normalised and shown as `XXXX-XXXX`.
    pub user_code: String,
}

/// Why a user code typed at `/device` leads nowhere.
#[derive(Debug)]
pub enum UserCodeError {
    /// Not 8 letters of the alphabet (a typo; not counted as a guess).
    Malformed,
    /// No pending request has this code: unknown, expired, or already decided. Counted.
    Unknown,
    /// Too many wrong codes from here (or everywhere) lately.
    Locked {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Storage failed.
    Failed(Error),
}

impl From<Error> for UserCodeError {
    fn from(err: Error) -> Self {
        Self::Failed(err)
    }
}

impl From<StoreError> for UserCodeError {
    fn from(err: StoreError) -> Self {
        Self::Failed(err.into())
    }
}

/// The user code in `input` as stored (upper case, no dash): case, dashes and spaces are
/// forgiven; `None` unless 8 letters of the alphabet remain.
pub fn normalise_user_code(input: &str) -> Option<String> {
    if input.len() > MAX_USER_CODE_INPUT {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// `BCDFGHJK` as people read it: `BCDF-GHJK`.
fn displayed(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

/// A new user code (normalised): each letter uniform over the alphabet (bytes of 240 and
/// more are dropped; 240 = 12 * 20).
fn random_user_code() -> String {
    let mut out = String::with_capacity(USER_CODE_LEN);
    let mut bytes = [0u8; 32];
    while out.len() < USER_CODE_LEN {
        OsRng.fill_bytes(&mut bytes);
        let wanted = USER_CODE_LEN - out.len();
        out.extend(
            bytes
                .iter()
                .filter(|&&b| b < 240)
                .take(wanted)
                .map(|&b| char::from(USER_CODE_ALPHABET[usize::from(b % 20)])),
        );
    }
    out
}

impl NetApi {
    /// `POST /oauth/device_authorization` (RFC 8628 §3.1): the client authenticates as at the
    /// token endpoint and must be registered for the device grant; `scope` and `resource`
    /// are checked as at `/oauth/authorize`.
    pub async fn device_authorization(
        &self,
        request: &ClientRequest<DeviceAuthorizationParams>,
        ip: &str,
    ) -> OAuthResult<DeviceGrant> {
        let client = self.authenticate_client(&request.client, ip).await?;
        if !client.allows(GrantType::DeviceCode) {
            return Err(OAuthReason::GrantNotAllowed(GrantType::DeviceCode).into());
        }
        let scope = request.params.scope.as_deref();
        let (scopes, resource, resource_scopes) = match self
            .requested_resource(request.params.resource.as_ref(), &client)
            .await?
        {
            Some(resource) => {
                let allowed = Self::client_resource_scopes(&client, &resource);
                let wanted = Self::requested_resource_scopes(scope, &resource, &allowed)?;
                (Scopes::EMPTY, Some(resource), wanted)
            }
            None => (
                Self::requested_scopes(scope, client.scopes)?,
                None,
                Vec::new(),
            ),
        };
        let now = self.now();
        self.count_per_source_and_client(
            &self.device_starts,
            &client,
            ip,
            (DEVICE_STARTS_PER_SOURCE, DEVICE_STARTS_PER_MINUTE),
        )
        .await?;
        // A user code already in use (about one chance in 2^34 per live code) is drawn again.
        for _ in 0..4 {
            let device_code = generate(SecretKind::DeviceCode);
            let user_code = random_user_code();
            let authorization = DeviceAuthorization {
                device_code_hash: self.hasher().hash(device_code.expose()),
                user_code_hash: self.hasher().hash(&user_code),
                client_id: client.id.clone(),
                scopes,
                resource_id: resource.as_ref().map(|r| r.id.clone()),
                resource_scopes: resource_scopes.clone(),
                created_at: now,
                expires_at: now + DEVICE_CODE_TTL,
                interval: DEVICE_POLL_INTERVAL,
                last_polled_at: None,
                status: DeviceStatus::Pending,
                user_id: None,
                auth_time: None,
                amr: None,
                decided_at: None,
                family_id: new_id("fam"),
                redeemed_at: None,
            };
            match self.store.insert_device_authorization(&authorization).await {
                Ok(()) => {
                    let base = self.settings.issuer.trim_end_matches('/');
                    let shown = displayed(&user_code);
                    return Ok(DeviceGrant {
                        device_code,
                        verification_uri: format!("{base}/device"),
                        verification_uri_complete: format!("{base}/device?user_code={shown}"),
                        user_code: shown,
                        expires_in: DEVICE_CODE_TTL,
                        interval: DEVICE_POLL_INTERVAL,
                    });
                }
                Err(StoreError::Conflict(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Err(OAuthReason::Internal.into())
    }

    /// The limiter buckets a user code typed from `ip` by `user_id` counts in: the source's,
    /// the user's from this source, and (in [`NetApi::user_code_guesses`]) everyone's.
    fn user_code_subjects(&self, ip: &str, user_id: &str) -> (Vec<SubjectKey>, Vec<SubjectKey>) {
        (
            self.limiter.subjects(Surface::UserCode, ip, Some(user_id)),
            // One bucket for every source: "*" is no address, so it is a source of its own.
            self.user_code_guesses
                .subjects(Surface::UserCode, "*", None),
        )
    }

    /// The pending device request a person signed in as `user_id` typed the code of, at
    /// `/device`. A code that is not pending (unknown, expired, decided) counts as a wrong
    /// guess, per source and everywhere: past either limit every code is refused for a
    /// while, the right one too.
    pub async fn device_request(
        &self,
        input: &str,
        user_id: &str,
        ip: &str,
    ) -> Result<DeviceRequest, UserCodeError> {
        let code = normalise_user_code(input).ok_or(UserCodeError::Malformed)?;
        let now = self.now();
        let (local, global) = self.user_code_subjects(ip, user_id);
        let wait = [
            self.limiter.blocked(&local, now).await,
            self.user_code_guesses.blocked(&global, now).await,
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(retry_after) = wait {
            return Err(UserCodeError::Locked { retry_after });
        }
        match self.pending_device_request(&code, now).await? {
            Some(request) => Ok(request),
            None => {
                self.limiter.record_failure(&local, now).await;
                self.user_code_guesses.record_failure(&global, now).await;
                self.audit(
                    Some(user_id),
                    "device_authorization.wrong_user_code",
                    Some(ip),
                    json!({}),
                )
                .await;
                Err(UserCodeError::Unknown)
            }
        }
    }

    /// The request of a normalised user code, if it is pending, unexpired, and its client
    /// and resource are still there.
    async fn pending_device_request(
        &self,
        code: &str,
        now: i64,
    ) -> Result<Option<DeviceRequest>, Error> {
        let Some(found) = self
            .store
            .get_device_authorization_by_user_code(&self.hasher().hash(code))
            .await?
        else {
            return Ok(None);
        };
        if found.status != DeviceStatus::Pending || now >= found.expires_at {
            return Ok(None);
        }
        let Some(client) = self
            .client_facts(&found.client_id)
            .await?
            .map(|facts| facts.client)
            .filter(|c| c.allows(GrantType::DeviceCode))
        else {
            return Ok(None);
        };
        let resource = match &found.resource_id {
            None => None,
            Some(id) => match self
                .resource_by_id(id)
                .await?
                .filter(|r| r.deleted_at.is_none())
            {
                Some(resource) => Some(resource),
                None => return Ok(None),
            },
        };
        Ok(Some(DeviceRequest {
            client,
            scopes: found.scopes,
            resource,
            resource_scopes: found.resource_scopes,
            user_code: displayed(code),
        }))
    }

    /// The signed-in person's decision on the request of a user code (checked and counted
    /// again, as when it was typed): approving records the consent, as the consent page of
    /// `/oauth/authorize` does. A code is decided once: a second decision is `Unknown`.
    pub async fn decide_device(
        &self,
        session: &Session,
        input: &str,
        approve: bool,
        ip: &str,
    ) -> Result<DeviceRequest, UserCodeError> {
        let request = self.device_request(input, &session.user_id, ip).await?;
        let code = normalise_user_code(input).ok_or(UserCodeError::Malformed)?;
        let status = if approve {
            DeviceStatus::Approved
        } else {
            DeviceStatus::Denied
        };
        let decided = self
            .store
            .decide_device_authorization(
                &self.hasher().hash(&code),
                &DeviceDecision {
                    user_id: session.user_id.clone(),
                    status,
                    auth_time: session.auth_time,
                    amr: session.amr,
                },
                self.now(),
            )
            .await?;
        if !decided {
            return Err(UserCodeError::Unknown);
        }
        if approve {
            self.remember_consent(
                &session.user_id,
                &request.client.id,
                request.scopes,
                request.resource.as_deref(),
                &request.resource_scopes,
            )
            .await?;
        }
        self.audit(
            Some(&session.user_id),
            if approve {
                "device_authorization.approved"
            } else {
                "device_authorization.denied"
            },
            Some(ip),
            json!({ "client_id": request.client.id }),
        )
        .await;
        Ok(request)
    }

    /// The device code grant at the token endpoint (RFC 8628 §3.4, §3.5): each poll is
    /// recorded, and one that comes sooner than the interval is `slow_down` (the interval
    /// grows by 5 seconds). Once approved, the device code is redeemed once for tokens, as a
    /// code would be; a second redemption is `invalid_grant` and revokes what the first
    /// issued.
    pub(super) async fn redeem_device_code(
        &self,
        client: &OAuthClient,
        device_code: &str,
        named: Option<&ResourceIndicator>,
        jkt: Option<&str>,
        ip: &str,
    ) -> OAuthResult<TokenResponse> {
        let invalid = || OAuthError::from(OAuthReason::InvalidDeviceCode);
        if check_format(SecretKind::DeviceCode, device_code).is_err() {
            return Err(invalid());
        }
        let hash = self.hasher().hash(device_code);
        let now = self.now();
        let Some(poll) = self
            .store
            .poll_device_authorization(&hash, &client.id, now, SLOW_DOWN_STEP)
            .await?
        else {
            return Err(invalid());
        };
        let found = poll.authorization;
        if found.redeemed_at.is_some() {
            return Err(self.device_code_reused(&found, client, ip).await);
        }
        if now >= found.expires_at {
            return Err(OAuthReason::DeviceCodeExpired.into());
        }
        match found.status {
            DeviceStatus::Denied => return Err(OAuthReason::DeviceAccessDenied.into()),
            DeviceStatus::Pending if poll.too_fast => return Err(OAuthReason::SlowDown.into()),
            DeviceStatus::Pending => return Err(OAuthReason::AuthorizationPending.into()),
            DeviceStatus::Approved => {}
        }
        let (Some(user_id), Some(auth_time), Some(amr)) =
            (found.user_id.as_deref(), found.auth_time, found.amr)
        else {
            return Err(invalid());
        };
        let Some(owner) = self.user_facts(user_id).await? else {
            return Err(invalid());
        };
        // Checked before the code is spent: a wrong `resource` leaves it to be redeemed.
        let resource = self
            .granted_resource(found.resource_id.as_deref(), named)
            .await?;
        if !self.store.redeem_device_authorization(&hash, now).await? {
            return Err(self.device_code_reused(&found, client, ip).await);
        }
        let scopes = found
            .scopes
            .intersect(owner.role.max_scopes())
            .intersect(client.scopes);
        let resource_scopes = match &resource {
            None => Vec::new(),
            Some(resource) => {
                let allowed = Self::client_resource_scopes(client, resource);
                let held = self.held_scopes(user_id, owner.role, resource).await?;
                kept(&found.resource_scopes, |n| {
                    allowed.contains(n) && held.contains(n)
                })
            }
        };
        // The device is not the browser that approved it: signing out there does not sign the
        // device out, so its tokens name no browser session.
        let grant = Grant {
            client,
            user_id,
            scopes,
            resource: resource.as_deref(),
            resource_scopes: &resource_scopes,
            family_id: Some(&found.family_id),
            auth_time: Some(auth_time),
            amr,
            nonce: None,
            sid: None,
            jkt,
        };
        let refresh = self
            .first_refresh_token(&grant, &found.family_id, auth_time, now)
            .await?;
        self.issue(&grant, refresh).await
    }

    /// A device code redeemed a second time: what the first redemption issued is revoked.
    async fn device_code_reused(
        &self,
        found: &DeviceAuthorization,
        client: &OAuthClient,
        ip: &str,
    ) -> OAuthError {
        if let Err(err) = self.revoke_family_tokens(&found.family_id).await {
            return err.into();
        }
        self.audit(
            found.user_id.as_deref(),
            "device_code.reuse_detected",
            Some(ip),
            json!({ "client_id": client.id }),
        )
        .await;
        OAuthReason::InvalidDeviceCode.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_read_forgivingly_and_only_from_the_alphabet() {
        assert_eq!(
            normalise_user_code("BCDF-GHJK").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalise_user_code("bcdf-ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalise_user_code(" bcdfghjk ").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalise_user_code("BCDF GHJK").as_deref(),
            Some("BCDFGHJK")
        );
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ABCD-EFGH",
            "BCDF-GHJ0",
            "BCDF-GHJ\u{0130}",
            &"B".repeat(40),
        ] {
            assert_eq!(normalise_user_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn new_user_codes_have_the_documented_shape() {
        for _ in 0..200 {
            let code = random_user_code();
            assert_eq!(normalise_user_code(&code).as_deref(), Some(code.as_str()));
            let shown = displayed(&code);
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
        }
    }
}
