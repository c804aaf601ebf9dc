//! The credential caches, made so that a revocation cannot be undone by a request that read
//! storage before it: an entry read before an invalidation is never inserted after it.

use moka::sync::Cache;
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// What a cache miss took before reading storage; [`GuardedCache::insert`] refuses the value
/// read if any invalidation ran since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

/// A bounded cache whose entries expire after a time to live, with a generation counter that
/// every invalidation bumps. Inserts and invalidations take the same lock, so an insert
/// either comes before an invalidation (which then removes it) or sees its generation and
/// stores nothing. Reads take no lock. `S`: [`crate::FastHash`] where no caller chooses the
/// keys, SipHash where one does.
pub(crate) struct GuardedCache<K, V, S = RandomState> {
    entries: Cache<K, V, S>,
    generation: Mutex<u64>,
}

impl<K, V, S> GuardedCache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Default + Send + Sync + 'static,
{
    /// At most `capacity` entries, each kept at most `ttl`.
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build_with_hasher(S::default()),
            generation: Mutex::new(0),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key)
    }

    /// Take this before reading storage on a miss.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(
            *self
                .generation
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Caches what was read under `ticket`, unless something was invalidated since.
    pub(crate) fn insert(&self, key: K, value: V, ticket: Ticket) {
        let generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *generation == ticket.0 {
            self.entries.insert(key, value);
        }
    }

    /// Drops `key`, and makes every read that started before this unfit to be cached.
    pub(crate) fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *generation = generation.wrapping_add(1);
        self.entries.invalidate(key);
    }

    /// Drops every entry, and makes every read that started before this unfit to be cached.
    pub(crate) fn invalidate_all(&self) {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *generation = generation.wrapping_add(1);
        self.entries.invalidate_all();
    }

    #[cfg(test)]
    pub(crate) fn time_to_live(&self) -> Option<Duration> {
        self.entries.policy().time_to_live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Timestamp};
    use crate::error::{AuthFailure, Error, StoreError};
    use crate::model::{
        ApiKey, AuditEvent, AuthorizationCode, Consent, Invitation, OAuthClient, RefreshToken,
        Resource, ResourceGrant, RotateOutcome, Session, SigningKey, TotpFactor, User,
    };
    use crate::model::{ClaimedDelivery, DeliveryAttempt, OutboxEvent, Webhook, WebhookDelivery};
    use crate::model::{DeviceAuthorization, DeviceDecision, DevicePoll};
    use crate::model::{PasskeyCredential, PushedRequest, WebauthnCeremony};
    use crate::scope::{Role, Scopes};
    use crate::secret::{SecretHash, SecretHasher, SecretKind, generate};
    use crate::service::{NetApi, Principal, Settings};
    use crate::store::{Invalidation, Store, StoreResult};
    use std::collections::HashMap;
    use std::sync::Arc;
    use tokio::sync::oneshot;

    #[test]
    fn an_insert_after_an_invalidation_is_refused() {
        let cache: GuardedCache<String, u32> = GuardedCache::new(10, Duration::from_secs(60));
        let before = cache.ticket();
        cache.invalidate("a");
        cache.insert("a".to_owned(), 1, before);
        assert_eq!(cache.get("a"), None, "read before the invalidation");
        let after = cache.ticket();
        cache.insert("a".to_owned(), 2, after);
        assert_eq!(cache.get("a"), Some(2));
        assert_eq!(cache.time_to_live(), Some(Duration::from_secs(60)));
    }

    /// The first `find_api_key` reads the key, then waits until the test lets it answer: the
    /// revocation runs in between.
    #[derive(Debug)]
    struct PausingStore {
        keys: Mutex<HashMap<SecretHash, ApiKey>>,
        users: HashMap<String, User>,
        pause: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    }

    fn unused() -> StoreError {
        StoreError::Other("not used by this test".to_owned())
    }

    #[async_trait::async_trait]
    impl Store for PausingStore {
        async fn ping(&self) -> StoreResult<()> {
            Ok(())
        }
        async fn ping_write(&self) -> StoreResult<()> {
            Ok(())
        }
        fn pool_usage(&self) -> (u32, u32) {
            (0, 0)
        }
        async fn create_user(
            &self,
            _: &User,
            _: Option<&ApiKey>,
            _: &AuditEvent,
            _: Option<&OutboxEvent>,
        ) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
            Ok(self.users.get(id).cloned())
        }
        async fn get_user_by_email(&self, _: &str) -> StoreResult<Option<User>> {
            Err(unused())
        }
        async fn list_users(&self, _: Option<&str>, _: u32) -> StoreResult<Vec<User>> {
            Err(unused())
        }
        async fn search_users(&self, _: &str, _: Option<&str>, _: u32) -> StoreResult<Vec<User>> {
            Err(unused())
        }
        async fn update_user(
            &self,
            _: &str,
            _: &crate::store::UserChanges,
            _: Timestamp,
        ) -> StoreResult<Option<User>> {
            Err(unused())
        }
        async fn delete_user(&self, _: &str) -> StoreResult<bool> {
            Err(unused())
        }
        async fn create_invited_user(
            &self,
            _: &User,
            _: Option<&ApiKey>,
            _: &AuditEvent,
            _: Option<&OutboxEvent>,
            _: &str,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn insert_invitation(
            &self,
            _: &Invitation,
            _: u32,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn find_invitation(&self, _: &SecretHash) -> StoreResult<Option<Invitation>> {
            Err(unused())
        }
        async fn list_invitations(&self, _: Option<&str>, _: u32) -> StoreResult<Vec<Invitation>> {
            Err(unused())
        }
        async fn delete_invitation(&self, _: &str) -> StoreResult<bool> {
            Err(unused())
        }
        async fn insert_api_key(&self, _: &ApiKey) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
            let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(keys.values().find(|k| k.id == id).cloned())
        }
        async fn find_api_key(&self, hash: &SecretHash) -> StoreResult<Option<ApiKey>> {
            let found = self
                .keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(hash)
                .cloned();
            let pause = self
                .pause
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some((read, resume)) = pause {
                let _ = read.send(());
                let _ = resume.await;
            }
            Ok(found)
        }
        async fn list_api_keys(
            &self,
            _: &str,
            _: Option<&str>,
            _: u32,
        ) -> StoreResult<Vec<ApiKey>> {
            Err(unused())
        }
        async fn revoke_api_key(&self, id: &str, at: Timestamp) -> StoreResult<bool> {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            let key = keys
                .values_mut()
                .find(|k| k.id == id && k.revoked_at.is_none());
            Ok(key.map(|k| k.revoked_at = Some(at)).is_some())
        }
        async fn rotate_api_key(&self, _: &str, _: Timestamp, _: &ApiKey) -> StoreResult<bool> {
            Err(unused())
        }
        async fn record_api_key_use(&self, _: &[(String, Timestamp)]) -> StoreResult<()> {
            Ok(())
        }
        async fn add_api_key_usage(&self, _: &[crate::usage::UsageCount]) -> StoreResult<()> {
            Ok(())
        }
        async fn api_key_usage(
            &self,
            _: &str,
            _: Timestamp,
            _: Timestamp,
        ) -> StoreResult<Vec<crate::usage::UsageCount>> {
            Ok(Vec::new())
        }
        async fn insert_audit_event(&self, _: &AuditEvent) -> StoreResult<()> {
            Ok(())
        }
        async fn list_audit_events(
            &self,
            _: Option<&str>,
            _: Option<&str>,
            _: u32,
        ) -> StoreResult<Vec<AuditEvent>> {
            Err(unused())
        }
        async fn search_audit_events(
            &self,
            _: &crate::store::AuditFilter,
            _: Option<&str>,
            _: u32,
        ) -> StoreResult<Vec<AuditEvent>> {
            Err(unused())
        }
        async fn record_event(&self, _: &AuditEvent, _: Option<&OutboxEvent>) -> StoreResult<()> {
            Ok(())
        }
        async fn insert_webhook(&self, _: &Webhook, _: u32) -> StoreResult<bool> {
            Err(unused())
        }
        async fn get_webhook(&self, _: &str) -> StoreResult<Option<Webhook>> {
            Err(unused())
        }
        async fn list_webhooks(&self, _: Option<&str>, _: u32) -> StoreResult<Vec<Webhook>> {
            Err(unused())
        }
        async fn disable_webhook(&self, _: &str, _: Timestamp) -> StoreResult<bool> {
            Err(unused())
        }
        async fn get_webhook_delivery(
            &self,
            _: &str,
            _: &str,
        ) -> StoreResult<Option<WebhookDelivery>> {
            Err(unused())
        }
        async fn list_webhook_deliveries(
            &self,
            _: &str,
            _: Option<&str>,
            _: u32,
        ) -> StoreResult<Vec<WebhookDelivery>> {
            Err(unused())
        }
        async fn claim_webhook_deliveries(
            &self,
            _: Timestamp,
            _: Timestamp,
            _: u32,
        ) -> StoreResult<Vec<ClaimedDelivery>> {
            Err(unused())
        }
        async fn record_webhook_attempt(
            &self,
            _: &str,
            _: Timestamp,
            _: &DeliveryAttempt,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn redeliver_webhook_delivery(
            &self,
            _: &str,
            _: &str,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn insert_client(&self, _: &OAuthClient) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_client(&self, _: &str) -> StoreResult<Option<OAuthClient>> {
            Err(unused())
        }
        async fn list_clients(
            &self,
            _: Option<&str>,
            _: Option<&str>,
            _: u32,
        ) -> StoreResult<Vec<OAuthClient>> {
            Err(unused())
        }
        async fn set_client_trusted(&self, _: &str, _: bool) -> StoreResult<bool> {
            Err(unused())
        }
        async fn update_client(
            &self,
            _: &str,
            _: &crate::store::ClientChanges,
            _: Timestamp,
        ) -> StoreResult<Option<OAuthClient>> {
            Err(unused())
        }
        async fn set_client_secret(
            &self,
            _: &str,
            _: &SecretHash,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn revoke_api_keys_of_client(
            &self,
            _: &str,
            _: Option<&str>,
            _: Timestamp,
        ) -> StoreResult<Vec<SecretHash>> {
            Err(unused())
        }
        async fn revoke_refresh_for_user(&self, _: &str, _: Timestamp) -> StoreResult<Vec<String>> {
            Err(unused())
        }
        async fn delete_user_sessions(&self, _: &str) -> StoreResult<u64> {
            Err(unused())
        }
        async fn record_session_client(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: Timestamp,
        ) -> StoreResult<()> {
            Err(unused())
        }
        async fn take_session_clients(&self, _: &str) -> StoreResult<Vec<String>> {
            Err(unused())
        }
        async fn insert_email_token(&self, _: &crate::model::EmailToken) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_email_token(
            &self,
            _: &SecretHash,
        ) -> StoreResult<Option<crate::model::EmailToken>> {
            Err(unused())
        }
        async fn verify_email_with_token(
            &self,
            _: &SecretHash,
            _: Timestamp,
        ) -> StoreResult<Option<User>> {
            Err(unused())
        }
        async fn reset_password_with_token(
            &self,
            _: &SecretHash,
            _: &str,
            _: Timestamp,
        ) -> StoreResult<Option<User>> {
            Err(unused())
        }
        async fn insert_logout_deliveries(
            &self,
            _: &[crate::model::PendingLogout],
        ) -> StoreResult<()> {
            Err(unused())
        }
        async fn claim_logout_deliveries(
            &self,
            _: Timestamp,
            _: Timestamp,
            _: u32,
        ) -> StoreResult<Vec<crate::model::PendingLogout>> {
            Err(unused())
        }
        async fn finish_logout_delivery(&self, _: &str, _: Timestamp) -> StoreResult<bool> {
            Err(unused())
        }
        async fn retry_logout_delivery(
            &self,
            _: &str,
            _: Timestamp,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn list_logout_deliveries(
            &self,
            _: &str,
        ) -> StoreResult<Vec<crate::model::PendingLogout>> {
            Err(unused())
        }
        async fn prune_logout_deliveries(&self, _: Timestamp) -> StoreResult<u64> {
            Err(unused())
        }
        async fn list_user_sessions(&self, _: &str) -> StoreResult<Vec<Session>> {
            Err(unused())
        }
        async fn touch_session(&self, _: &SecretHash, _: Timestamp) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_totp(&self, _: &str) -> StoreResult<Option<TotpFactor>> {
            Err(unused())
        }
        async fn put_pending_totp(&self, _: &TotpFactor) -> StoreResult<bool> {
            Err(unused())
        }
        async fn confirm_totp(&self, _: &str, _: i64, _: Timestamp) -> StoreResult<bool> {
            Err(unused())
        }
        async fn use_totp_step(&self, _: &str, _: i64) -> StoreResult<bool> {
            Err(unused())
        }
        async fn delete_totp(&self, _: &str) -> StoreResult<bool> {
            Err(unused())
        }
        async fn replace_recovery_codes(
            &self,
            _: &str,
            _: &[SecretHash],
            _: Timestamp,
        ) -> StoreResult<()> {
            Err(unused())
        }
        async fn use_recovery_code(
            &self,
            _: &str,
            _: &SecretHash,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn count_recovery_codes(&self, _: &str) -> StoreResult<u64> {
            Err(unused())
        }
        async fn insert_passkey(&self, _: &PasskeyCredential, _: u64) -> StoreResult<bool> {
            Err(unused())
        }
        async fn list_passkeys(&self, _: &str) -> StoreResult<Vec<PasskeyCredential>> {
            Err(unused())
        }
        async fn get_passkey_by_credential(
            &self,
            _: &str,
        ) -> StoreResult<Option<PasskeyCredential>> {
            Err(unused())
        }
        async fn record_passkey_use(&self, _: &str, _: &str, _: Timestamp) -> StoreResult<()> {
            Err(unused())
        }
        async fn delete_passkey(&self, _: &str, _: &str) -> StoreResult<bool> {
            Err(unused())
        }
        async fn put_webauthn_ceremony(
            &self,
            _: &WebauthnCeremony,
            _: u64,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn take_webauthn_ceremony(
            &self,
            _: &SecretHash,
            _: Timestamp,
        ) -> StoreResult<Option<WebauthnCeremony>> {
            Err(unused())
        }
        async fn reseal_signing_key(&self, _: &str, _: &[u8], _: &[u8]) -> StoreResult<bool> {
            Err(unused())
        }
        async fn init_secret_key_check(&self, _: &[u8], _: Timestamp) -> StoreResult<Vec<u8>> {
            Err(unused())
        }
        async fn delete_client(&self, _: &str) -> StoreResult<bool> {
            Err(unused())
        }
        async fn insert_registered_client(
            &self,
            _: &OAuthClient,
            _: &crate::model::ClientRegistration,
            _: Option<&SecretHash>,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn get_client_registration(
            &self,
            _: &str,
        ) -> StoreResult<Option<crate::model::ClientRegistration>> {
            Err(unused())
        }
        async fn update_registered_client(
            &self,
            _: &str,
            _: &OAuthClient,
            _: &crate::store::ClientChanges,
            _: &crate::model::ClientRegistration,
            _: Timestamp,
        ) -> StoreResult<Option<OAuthClient>> {
            Err(unused())
        }
        async fn insert_registration_token(
            &self,
            _: &crate::model::RegistrationToken,
        ) -> StoreResult<()> {
            Err(unused())
        }
        async fn find_registration_token(
            &self,
            _: &SecretHash,
        ) -> StoreResult<Option<crate::model::RegistrationToken>> {
            Err(unused())
        }
        async fn delete_registration_token(&self, _: &str) -> StoreResult<bool> {
            Err(unused())
        }
        async fn insert_refresh_token(&self, _: &RefreshToken) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_refresh_token(&self, _: &SecretHash) -> StoreResult<Option<RefreshToken>> {
            Err(unused())
        }
        async fn rotate_refresh_token(
            &self,
            _: &SecretHash,
            _: Timestamp,
            _: i64,
            _: &RefreshToken,
        ) -> StoreResult<RotateOutcome> {
            Err(unused())
        }
        async fn revoke_refresh_family(&self, _: &str, _: Timestamp) -> StoreResult<u64> {
            Err(unused())
        }
        async fn revoke_refresh_for_client(
            &self,
            _: &str,
            _: &str,
            _: Timestamp,
        ) -> StoreResult<Vec<String>> {
            Err(unused())
        }
        async fn insert_authorization_code(&self, _: &AuthorizationCode) -> StoreResult<()> {
            Err(unused())
        }
        async fn consume_authorization_code(
            &self,
            _: &SecretHash,
            _: Timestamp,
        ) -> StoreResult<Option<AuthorizationCode>> {
            Err(unused())
        }
        async fn insert_device_authorization(&self, _: &DeviceAuthorization) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_device_authorization_by_user_code(
            &self,
            _: &SecretHash,
        ) -> StoreResult<Option<DeviceAuthorization>> {
            Err(unused())
        }
        async fn decide_device_authorization(
            &self,
            _: &SecretHash,
            _: &DeviceDecision,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn poll_device_authorization(
            &self,
            _: &SecretHash,
            _: &str,
            _: Timestamp,
            _: i64,
        ) -> StoreResult<Option<DevicePoll>> {
            Err(unused())
        }
        async fn redeem_device_authorization(
            &self,
            _: &SecretHash,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn upsert_consent(&self, _: &Consent) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_consent(&self, _: &str, _: &str) -> StoreResult<Option<Consent>> {
            Err(unused())
        }
        async fn list_consents(&self, _: &str) -> StoreResult<Vec<Consent>> {
            Err(unused())
        }
        async fn delete_consent(&self, _: &str, _: &str) -> StoreResult<bool> {
            Err(unused())
        }
        async fn insert_session(&self, _: &Session) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_session(&self, _: &SecretHash) -> StoreResult<Option<Session>> {
            Err(unused())
        }
        async fn delete_session(&self, _: &SecretHash) -> StoreResult<()> {
            Err(unused())
        }
        async fn publish_invalidation(&self, _: &Invalidation, _: Timestamp) -> StoreResult<i64> {
            Ok(1)
        }
        async fn invalidations_since(&self, _: i64) -> StoreResult<Vec<(i64, Invalidation)>> {
            Ok(Vec::new())
        }
        async fn latest_invalidation(&self) -> StoreResult<i64> {
            Ok(0)
        }
        async fn active_denylist(&self, _: Timestamp) -> StoreResult<Vec<Invalidation>> {
            Ok(Vec::new())
        }
        async fn insert_signing_key(&self, _: &SigningKey) -> StoreResult<()> {
            Err(unused())
        }
        async fn list_signing_keys(&self, _: Timestamp) -> StoreResult<Vec<SigningKey>> {
            Err(unused())
        }
        async fn retire_signing_keys(&self, _: &str, _: Timestamp) -> StoreResult<()> {
            Err(unused())
        }
        async fn delete_expired_batch(
            &self,
            _: crate::retention::Expired,
            _: Timestamp,
            _: u32,
        ) -> StoreResult<u64> {
            Err(unused())
        }
        async fn use_assertion_jti(
            &self,
            _: &str,
            _: &[u8],
            _: Timestamp,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn insert_pushed_request(&self, _: &PushedRequest) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_pushed_request(
            &self,
            _: &SecretHash,
            _: Timestamp,
        ) -> StoreResult<Option<PushedRequest>> {
            Err(unused())
        }
        async fn take_pushed_request(
            &self,
            _: &SecretHash,
            _: &str,
            _: Timestamp,
        ) -> StoreResult<bool> {
            Err(unused())
        }
        async fn insert_resource(&self, _: &Resource) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_resource(&self, _: &str) -> StoreResult<Option<Resource>> {
            Err(unused())
        }
        async fn get_resource_by_identifier(&self, _: &str) -> StoreResult<Option<Resource>> {
            Err(unused())
        }
        async fn list_resources(&self, _: Option<&str>, _: u32) -> StoreResult<Vec<Resource>> {
            Err(unused())
        }
        async fn update_resource(
            &self,
            _: &str,
            _: &crate::store::ResourceChanges,
            _: Timestamp,
        ) -> StoreResult<Option<Resource>> {
            Err(unused())
        }
        async fn delete_resource(
            &self,
            _: &str,
            _: Timestamp,
        ) -> StoreResult<Option<crate::store::ResourceDeletion>> {
            Err(unused())
        }
        async fn set_resource_grant(&self, _: &ResourceGrant) -> StoreResult<()> {
            Err(unused())
        }
        async fn get_resource_grant(&self, _: &str, _: &str) -> StoreResult<Option<ResourceGrant>> {
            Err(unused())
        }
        async fn list_resource_grants(&self, _: &str) -> StoreResult<Vec<ResourceGrant>> {
            Err(unused())
        }
    }

    /// A resource identifier no resource can have (longer than any) is answered unknown
    /// without a lookup and left out of the cache: forward auth looks one up for anybody,
    /// before any credential.
    #[tokio::test]
    async fn an_identifier_no_resource_can_have_is_neither_looked_up_nor_cached() {
        let store = Arc::new(PausingStore {
            keys: Mutex::new(HashMap::new()),
            users: HashMap::new(),
            pause: Mutex::new(None),
        });
        let api = NetApi::new(
            store,
            Arc::new(ManualClock::new(1_700_000_000)),
            Settings::default(),
        );
        let long = format!(
            "https://api.example.com/{}",
            "a".repeat(crate::service::MAX_IDENTIFIER_LEN)
        );
        // This store fails every resource lookup: none was made.
        let found = api.protected_resource(Some(&long)).await;
        assert!(matches!(found, Ok(None)), "{found:?}");
        api.resources.entries.run_pending_tasks();
        assert_eq!(api.resources.entries.entry_count(), 0);
        // An identifier that could be a resource's is looked up.
        assert!(
            api.protected_resource(Some("https://api.example.com/orders"))
                .await
                .is_err()
        );
    }

    /// A request misses the cache and reads the key while it is live; the key is revoked (its
    /// invalidation runs) before that request caches what it read. The stale record must not
    /// be cached: the next use of the key is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_read_before_its_revocation_is_not_cached_after_it() {
        const NOW: Timestamp = 1_700_000_000;
        let secret = generate(SecretKind::ApiKey);
        let settings = Settings::default();
        let user = User {
            id: "usr_1".to_owned(),
            email: "a@example.com".to_owned(),
            name: "A".to_owned(),
            role: Role::Member,
            password_hash: String::new(),
            email_verified: false,
            created_at: NOW,
            updated_at: NOW,
            disabled_at: None,
        };
        let key = ApiKey {
            id: "key_1".to_owned(),
            user_id: user.id.clone(),
            name: "k".to_owned(),
            prefix: "napi_xxxx".to_owned(),
            last_four: "xxxx".to_owned(),
            hash: SecretHasher::new(&settings.pepper).hash(secret.expose()),
            scopes: Scopes::all(),
            created_at: NOW,
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
            rate_limit: None,
            created_by_client: None,
            resource: None,
            resource_scopes: Vec::new(),
            metadata: None,
        };
        let (read_tx, read_rx) = oneshot::channel();
        let (resume_tx, resume_rx) = oneshot::channel();
        let store = Arc::new(PausingStore {
            keys: Mutex::new(HashMap::from([(key.hash, key)])),
            users: HashMap::from([(user.id.clone(), user)]),
            pause: Mutex::new(Some((read_tx, resume_rx))),
        });
        let api = Arc::new(NetApi::new(
            store,
            Arc::new(ManualClock::new(NOW)),
            settings,
        ));

        let in_flight = tokio::spawn({
            let api = api.clone();
            let presented = secret.expose().to_owned();
            async move { api.authenticate(&presented, "192.0.2.1").await }
        });
        read_rx.await.expect("the first request read the key");
        api.revoke_api_key(&Principal::operator(), "key_1", None)
            .await
            .expect("revoke");
        resume_tx.send(()).expect("resume the first request");
        // It began before the revocation, so it may still pass; what it read is not kept.
        assert!(in_flight.await.expect("task").is_ok());
        match api.authenticate(secret.expose(), "192.0.2.1").await {
            Err(Error::Unauthenticated(AuthFailure::Revoked)) => {}
            other => panic!("the revoked key was accepted from the cache: {other:?}"),
        }
    }
}
