//! Retention: which stored rows are over, from when, and the sweep that deletes them in
//! small batches (issue 18).
//!
//! Rows that expire by themselves (codes, sessions, tokens, links, ceremonies, denylist
//! entries) go once they have expired, some after a short grace; rows that only grow old
//! (audit events, usage counts, finished webhook deliveries) go after a number of days that
//! a setting gives, 0 keeping them for ever. The store deletes at most one batch per
//! statement (its own short transaction), so a sweep of a large backlog never holds a long
//! lock; the sweep repeats a batch until one comes back short, letting other work run in
//! between. Several processes may sweep at once: each row is deleted by one of them.

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::Store;

const DAY: i64 = 86_400;

/// Rows per delete statement of a scheduled sweep.
pub const DEFAULT_BATCH: u32 = 1_000;

/// How long a device authorization is kept past its expiry, so that a late poll is told
/// `expired_token` rather than `invalid_grant`.
pub const DEVICE_AUTHORIZATION_GRACE: i64 = 3_600;
/// How long an invalidation without an expiry is kept: long enough for every live process
/// to have read it.
pub const INVALIDATION_KEEP: i64 = 3_600;
/// How long a retired signing key is kept after retiring.
pub const RETIRED_SIGNING_KEY_KEEP: i64 = DAY;
/// How long an API key is kept after its revocation, or after its expiry.
pub const ENDED_API_KEY_KEEP: i64 = 90 * DAY;

/// One kind of row a sweep deletes (one table each; the invalidations table has two).
/// Each says which rows are over at a `cutoff` that [`RetentionSettings::cutoff`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expired {
    /// Authorization codes with `expires_at < cutoff` (now), used or not.
    AuthorizationCodes,
    /// Device authorizations with `expires_at < cutoff` (an hour ago).
    DeviceAuthorizations,
    /// Pushed authorization requests with `expires_at <= cutoff` (now).
    PushedRequests,
    /// Client assertion `jti` records with `expires_at <= cutoff` (now).
    AssertionJtis,
    /// Browser sessions with `expires_at < cutoff` (now).
    Sessions,
    /// Records of the clients told of a session, created at or before `cutoff` (a session
    /// lifetime ago), whose session is gone.
    SessionClients,
    /// Invitations with `expires_at < cutoff` (now), used or not.
    Invitations,
    /// Emailed links (verification, reset) with `expires_at < cutoff` (now), used or not.
    EmailTokens,
    /// Initial access tokens for client registration with `expires_at < cutoff` (now).
    RegistrationTokens,
    /// Refresh tokens whose idle or family lifetime ended before `cutoff` (now).
    RefreshTokens,
    /// Access-token and family denylist entries with `expires_at < cutoff` (now).
    Denylist,
    /// Other invalidations (no expiry), created before `cutoff` (an hour ago).
    Invalidations,
    /// Pending WebAuthn ceremonies with `expires_at <= cutoff` (now).
    WebauthnCeremonies,
    /// Signing keys retired before `cutoff` (a day ago).
    RetiredSigningKeys,
    /// API keys revoked before `cutoff` (90 days ago).
    RevokedApiKeys,
    /// API keys that expired before `cutoff` (90 days ago).
    ExpiredApiKeys,
    /// Webhook deliveries that are over (delivered, failed, or of a disabled webhook) and
    /// were created before `cutoff` (`webhook_delivery_retention_days` ago).
    WebhookDeliveries,
    /// Hourly API key usage counts of hours before `cutoff` (`usage_retention_days` ago).
    ApiKeyUsage,
    /// Audit events created before `cutoff` (`audit_retention_days` ago).
    AuditEvents,
}

impl Expired {
    /// Every kind, in the order a sweep takes them (sessions before the records of their
    /// clients).
    pub const ALL: [Self; 19] = [
        Self::AuthorizationCodes,
        Self::DeviceAuthorizations,
        Self::PushedRequests,
        Self::AssertionJtis,
        Self::Sessions,
        Self::SessionClients,
        Self::Invitations,
        Self::EmailTokens,
        Self::RegistrationTokens,
        Self::RefreshTokens,
        Self::Denylist,
        Self::Invalidations,
        Self::WebauthnCeremonies,
        Self::RetiredSigningKeys,
        Self::RevokedApiKeys,
        Self::ExpiredApiKeys,
        Self::WebhookDeliveries,
        Self::ApiKeyUsage,
        Self::AuditEvents,
    ];

    /// Its name in logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::AuthorizationCodes => "authorization_codes",
            Self::DeviceAuthorizations => "device_authorizations",
            Self::PushedRequests => "pushed_requests",
            Self::AssertionJtis => "client_assertion_jtis",
            Self::Sessions => "sessions",
            Self::SessionClients => "session_clients",
            Self::Invitations => "invitations",
            Self::EmailTokens => "email_tokens",
            Self::RegistrationTokens => "registration_tokens",
            Self::RefreshTokens => "refresh_tokens",
            Self::Denylist => "denylist",
            Self::Invalidations => "invalidations",
            Self::WebauthnCeremonies => "webauthn_ceremonies",
            Self::RetiredSigningKeys => "signing_keys",
            Self::RevokedApiKeys => "revoked_api_keys",
            Self::ExpiredApiKeys => "expired_api_keys",
            Self::WebhookDeliveries => "webhook_deliveries",
            Self::ApiKeyUsage => "api_key_usage",
            Self::AuditEvents => "audit_events",
        }
    }

    /// Whether its rows expire by themselves (rather than after a retention setting).
    pub fn expires(self) -> bool {
        !matches!(
            self,
            Self::WebhookDeliveries | Self::ApiKeyUsage | Self::AuditEvents
        )
    }
}

/// How long rows that never expire by themselves are kept, in days; 0 keeps them for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Audit events.
    pub audit_retention_days: u32,
    /// Hourly API key usage counts.
    pub usage_retention_days: u32,
    /// Webhook deliveries that are over (delivered, failed, or of a disabled webhook),
    /// counted from their event.
    pub webhook_delivery_retention_days: u32,
    /// The browser session lifetime (seconds): a session's client records are looked at
    /// once they are that old, when the session has surely ended.
    pub session_ttl: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            audit_retention_days: 365,
            usage_retention_days: 400,
            webhook_delivery_retention_days: 30,
            session_ttl: 43_200,
        }
    }
}

impl RetentionSettings {
    /// The cutoff of `kind` at `now` (see [`Expired`]); `None` when its rows are kept for
    /// ever.
    pub fn cutoff(&self, kind: Expired, now: Timestamp) -> Option<Timestamp> {
        let days = |days: u32| (days > 0).then(|| now.saturating_sub(i64::from(days) * DAY));
        match kind {
            Expired::AuthorizationCodes
            | Expired::PushedRequests
            | Expired::AssertionJtis
            | Expired::Sessions
            | Expired::Invitations
            | Expired::EmailTokens
            | Expired::RegistrationTokens
            | Expired::RefreshTokens
            | Expired::Denylist
            | Expired::WebauthnCeremonies => Some(now),
            Expired::DeviceAuthorizations => Some(now - DEVICE_AUTHORIZATION_GRACE),
            Expired::SessionClients => Some(now - self.session_ttl.max(0)),
            Expired::Invalidations => Some(now - INVALIDATION_KEEP),
            Expired::RetiredSigningKeys => Some(now - RETIRED_SIGNING_KEY_KEEP),
            Expired::RevokedApiKeys | Expired::ExpiredApiKeys => Some(now - ENDED_API_KEY_KEEP),
            Expired::WebhookDeliveries => days(self.webhook_delivery_retention_days),
            Expired::ApiKeyUsage => days(self.usage_retention_days),
            Expired::AuditEvents => days(self.audit_retention_days),
        }
    }
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Rows deleted, per kind that had any, in sweep order.
    pub deleted: Vec<(Expired, u64)>,
    /// The kinds whose sweep failed (the others were still swept).
    pub failed: Vec<(Expired, StoreError)>,
}

impl Swept {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.deleted.iter().map(|(_, n)| n).sum()
    }

    /// Rows of `kind` deleted.
    pub fn of(&self, kind: Expired) -> u64 {
        self.deleted
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Deletes the rows of `kinds` that are over at `now`, `batch` rows per statement: each kind
/// until a batch comes back short, yielding to other tasks between batches. A kind whose
/// delete fails is reported and the others are still swept.
pub async fn sweep<S: Store + ?Sized>(
    store: &S,
    settings: &RetentionSettings,
    kinds: &[Expired],
    now: Timestamp,
    batch: u32,
) -> Swept {
    let batch = batch.max(1);
    let mut swept = Swept::default();
    for &kind in kinds {
        let Some(cutoff) = settings.cutoff(kind, now) else {
            continue;
        };
        let mut deleted = 0;
        let outcome = loop {
            match store.delete_expired_batch(kind, cutoff, batch).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(batch) {
                        break Ok(());
                    }
                    tokio::task::yield_now().await;
                }
                Err(err) => break Err(err),
            }
        };
        if deleted > 0 {
            swept.deleted.push((kind, deleted));
        }
        if let Err(err) = outcome {
            swept.failed.push((kind, err));
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_for_ever_and_the_rest_expires() {
        let keep = RetentionSettings {
            audit_retention_days: 0,
            usage_retention_days: 0,
            webhook_delivery_retention_days: 0,
            ..RetentionSettings::default()
        };
        for kind in Expired::ALL {
            assert_eq!(keep.cutoff(kind, 1_000_000).is_some(), kind.expires());
        }
        let defaults = RetentionSettings::default();
        assert_eq!(
            defaults.cutoff(Expired::AuditEvents, 1_000 * DAY),
            Some(635 * DAY)
        );
        assert_eq!(
            defaults.cutoff(Expired::DeviceAuthorizations, 10_000),
            Some(10_000 - 3_600)
        );
    }

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<_> = Expired::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Expired::ALL.len());
    }
}
