//! [`Store`] for each backend: [`forward_store!`] forwards every method to the function of
//! [`crate::tables`] that does it; the few that concern no one table are here.
//!
//! [`Store`]: netapi_core::store::Store

use crate::backend::{Backend, Exec};
use crate::map_err;
use crate::tables::{
    api_key_usage, api_keys, audit_events, authorization_codes, device_authorizations,
    email_tokens, invalidations, invitations, passkeys, pushed_requests, refresh_tokens,
    registrations, sessions, signing_keys, webhooks,
};
use netapi_core::Timestamp;
use netapi_core::retention::Expired;
use netapi_core::store::StoreResult;

pub(crate) fn pool_usage(db: &impl Backend) -> (u32, u32) {
    let pool = db.read_pool();
    (
        pool.size(),
        u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
    )
}

pub(crate) async fn ping(db: &impl Backend) -> StoreResult<()> {
    db.reader().await?.execute("SELECT 1", &[]).await?;
    Ok(())
}

/// A write that changes nothing, in a transaction that is rolled back.
pub(crate) async fn ping_write(db: &impl Backend) -> StoreResult<()> {
    let mut tx = db.begin_write().await?;
    tx.execute(signing_keys::WRITE_NOTHING, &[]).await?;
    tx.rollback().await.map_err(map_err)
}

/// Deletes up to `limit` rows of `what` that are over at `cutoff`: one statement, so one
/// short transaction (see [`netapi_core::retention`]).
pub(crate) async fn delete_expired_batch(
    db: &impl Backend,
    what: Expired,
    cutoff: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let sql = match what {
        Expired::AuthorizationCodes => authorization_codes::DELETE_EXPIRED,
        Expired::DeviceAuthorizations => device_authorizations::DELETE_EXPIRED,
        Expired::PushedRequests => pushed_requests::DELETE_EXPIRED,
        Expired::AssertionJtis => pushed_requests::DELETE_EXPIRED_JTIS,
        Expired::Sessions => sessions::DELETE_EXPIRED,
        Expired::SessionClients => sessions::DELETE_ORPHAN_CLIENTS,
        Expired::Invitations => invitations::DELETE_EXPIRED,
        Expired::EmailTokens => email_tokens::DELETE_EXPIRED,
        Expired::RegistrationTokens => registrations::DELETE_EXPIRED_TOKENS,
        Expired::RefreshTokens => refresh_tokens::DELETE_EXPIRED,
        Expired::Denylist => invalidations::DELETE_EXPIRED,
        Expired::Invalidations => invalidations::DELETE_OLD,
        Expired::WebauthnCeremonies => passkeys::DELETE_EXPIRED_CEREMONIES,
        Expired::RetiredSigningKeys => signing_keys::DELETE_RETIRED,
        Expired::RevokedApiKeys => api_keys::DELETE_LONG_REVOKED,
        Expired::ExpiredApiKeys => api_keys::DELETE_LONG_EXPIRED,
        Expired::WebhookDeliveries => webhooks::PRUNE_DELIVERIES,
        Expired::ApiKeyUsage => api_key_usage::DELETE_BEFORE,
        Expired::AuditEvents => audit_events::DELETE_BEFORE,
    };
    // Two processes sweeping at once may lock the same rows in another order (PostgreSQL).
    crate::retry_contention(|| async move {
        db.writer()
            .await?
            .execute(sql, &[cutoff.into(), i64::from(limit).into()])
            .await
    })
    .await
}

/// `impl Store for $backend`, each method a call of the function that does it.
macro_rules! forward_store {
    ($backend:ty) => {
        const _: () = {
            use netapi_core::Timestamp;
            use netapi_core::model::{
                ApiKey, AuditEvent, AuthorizationCode, Consent, DeviceAuthorization,
                DeviceDecision, DevicePoll, EmailToken, Invitation, OAuthClient, RefreshToken,
                Resource, ResourceGrant, RotateOutcome, Session, SigningKey, TotpFactor, User,
            };
            use netapi_core::model::{
                ClaimedDelivery, DeliveryAttempt, OutboxEvent, PasskeyCredential, PushedRequest,
                WebauthnCeremony, Webhook, WebhookDelivery,
            };
            use netapi_core::model::{ClientRegistration, PendingLogout, RegistrationToken};
            use netapi_core::secret::SecretHash;
            use netapi_core::store::{
                AuditFilter, ClientChanges, Invalidation, ResourceChanges, ResourceDeletion,
                StoreResult, UserChanges,
            };
            use netapi_core::usage::UsageCount;
            use $crate::backend::Backend;
            use $crate::tables::{
                api_key_usage, api_keys, audit_events, authorization_codes, consents,
                device_authorizations, email_tokens, invalidations, invitations, logout_deliveries,
                mfa, oauth_clients, passkeys, pushed_requests, refresh_tokens, registrations,
                resources, sessions, signing_keys, users, webhooks,
            };

            #[async_trait::async_trait]
            impl netapi_core::store::Store for $backend {
                fn pool_usage(&self) -> (u32, u32) {
                    $crate::store::pool_usage(self)
                }

                async fn ping(&self) -> StoreResult<()> {
                    $crate::store::ping(self).await
                }

                async fn ping_write(&self) -> StoreResult<()> {
                    $crate::store::ping_write(self).await
                }

                async fn create_user(
                    &self,
                    user: &User,
                    first_key: Option<&ApiKey>,
                    event: &AuditEvent,
                    outbox: Option<&OutboxEvent>,
                ) -> StoreResult<()> {
                    users::create(self, user, first_key, event, outbox, None)
                        .await
                        .map(drop)
                }

                async fn create_invited_user(
                    &self,
                    user: &User,
                    first_key: Option<&ApiKey>,
                    event: &AuditEvent,
                    outbox: Option<&OutboxEvent>,
                    invitation_id: &str,
                ) -> StoreResult<bool> {
                    users::create(self, user, first_key, event, outbox, Some(invitation_id)).await
                }

                async fn insert_invitation(
                    &self,
                    invitation: &Invitation,
                    max_outstanding: u32,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    invitations::insert(self, invitation, max_outstanding, now).await
                }

                async fn find_invitation(
                    &self,
                    hash: &SecretHash,
                ) -> StoreResult<Option<Invitation>> {
                    invitations::find(self, hash).await
                }

                async fn list_invitations(
                    &self,
                    after: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<Invitation>> {
                    invitations::list(self, after, limit).await
                }

                async fn delete_invitation(&self, id: &str) -> StoreResult<bool> {
                    invitations::delete(self, id).await
                }

                async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
                    users::get(self, id).await
                }

                async fn get_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                    users::get_by_email(self, email).await
                }

                async fn list_users(
                    &self,
                    after: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<User>> {
                    users::list(self, after, limit).await
                }

                async fn search_users(
                    &self,
                    email_part: &str,
                    after: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<User>> {
                    users::search(self, email_part, after, limit).await
                }

                async fn update_user(
                    &self,
                    id: &str,
                    changes: &UserChanges,
                    at: Timestamp,
                ) -> StoreResult<Option<User>> {
                    users::update(self, id, changes, at).await
                }

                async fn delete_user(&self, id: &str) -> StoreResult<bool> {
                    users::delete(self, id).await
                }

                async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
                    api_keys::insert(&mut *self.writer().await?, key).await
                }

                async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
                    api_keys::get(self, id).await
                }

                async fn find_api_key(&self, hash: &SecretHash) -> StoreResult<Option<ApiKey>> {
                    api_keys::find(self, hash).await
                }

                async fn list_api_keys(
                    &self,
                    user_id: &str,
                    after: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<ApiKey>> {
                    api_keys::list(self, user_id, after, limit).await
                }

                async fn revoke_api_key(&self, id: &str, at: Timestamp) -> StoreResult<bool> {
                    api_keys::revoke(self, id, at).await
                }

                async fn rotate_api_key(
                    &self,
                    old_id: &str,
                    old_expires_at: Timestamp,
                    new_key: &ApiKey,
                ) -> StoreResult<bool> {
                    api_keys::rotate(self, old_id, old_expires_at, new_key).await
                }

                async fn revoke_api_keys_of_client(
                    &self,
                    client_id: &str,
                    user_id: Option<&str>,
                    at: Timestamp,
                ) -> StoreResult<Vec<SecretHash>> {
                    api_keys::revoke_of_client(self, client_id, user_id, at).await
                }

                async fn record_api_key_use(
                    &self,
                    uses: &[(String, Timestamp)],
                ) -> StoreResult<()> {
                    api_keys::record_use(self, uses).await
                }

                async fn add_api_key_usage(&self, counts: &[UsageCount]) -> StoreResult<()> {
                    api_key_usage::add(self, counts).await
                }

                async fn api_key_usage(
                    &self,
                    key_id: &str,
                    from: Timestamp,
                    to: Timestamp,
                ) -> StoreResult<Vec<UsageCount>> {
                    api_key_usage::list(self, key_id, from, to).await
                }

                async fn insert_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
                    audit_events::insert(&mut *self.writer().await?, event).await
                }

                async fn list_audit_events(
                    &self,
                    user_id: Option<&str>,
                    before: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<AuditEvent>> {
                    audit_events::list(self, user_id, before, limit).await
                }

                async fn search_audit_events(
                    &self,
                    filter: &AuditFilter,
                    before: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<AuditEvent>> {
                    audit_events::search(self, filter, before, limit).await
                }

                async fn record_event(
                    &self,
                    event: &AuditEvent,
                    outbox: Option<&OutboxEvent>,
                ) -> StoreResult<()> {
                    webhooks::record_event(self, event, outbox).await
                }

                async fn insert_webhook(
                    &self,
                    webhook: &Webhook,
                    max_live: u32,
                ) -> StoreResult<bool> {
                    webhooks::insert(self, webhook, max_live).await
                }

                async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
                    webhooks::get(self, id).await
                }

                async fn list_webhooks(
                    &self,
                    after: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<Webhook>> {
                    webhooks::list_live(self, after, limit).await
                }

                async fn disable_webhook(&self, id: &str, at: Timestamp) -> StoreResult<bool> {
                    webhooks::disable(self, id, at).await
                }

                async fn get_webhook_delivery(
                    &self,
                    webhook_id: &str,
                    id: &str,
                ) -> StoreResult<Option<WebhookDelivery>> {
                    webhooks::get_delivery(self, webhook_id, id).await
                }

                async fn list_webhook_deliveries(
                    &self,
                    webhook_id: &str,
                    before: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<WebhookDelivery>> {
                    webhooks::list_deliveries(self, webhook_id, before, limit).await
                }

                async fn claim_webhook_deliveries(
                    &self,
                    now: Timestamp,
                    lease_until: Timestamp,
                    limit: u32,
                ) -> StoreResult<Vec<ClaimedDelivery>> {
                    webhooks::claim(self, now, lease_until, limit).await
                }

                async fn record_webhook_attempt(
                    &self,
                    id: &str,
                    lease_until: Timestamp,
                    attempt: &DeliveryAttempt,
                ) -> StoreResult<bool> {
                    webhooks::record_attempt(self, id, lease_until, attempt).await
                }

                async fn redeliver_webhook_delivery(
                    &self,
                    webhook_id: &str,
                    id: &str,
                    at: Timestamp,
                ) -> StoreResult<bool> {
                    webhooks::redeliver(self, webhook_id, id, at).await
                }

                async fn insert_client(&self, client: &OAuthClient) -> StoreResult<()> {
                    oauth_clients::insert(self, client).await
                }

                async fn get_client(&self, id: &str) -> StoreResult<Option<OAuthClient>> {
                    oauth_clients::get(self, id).await
                }

                async fn list_clients(
                    &self,
                    owner_id: Option<&str>,
                    after: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<OAuthClient>> {
                    oauth_clients::list(self, owner_id, after, limit).await
                }

                async fn set_client_trusted(&self, id: &str, trusted: bool) -> StoreResult<bool> {
                    oauth_clients::set_trusted(self, id, trusted).await
                }

                async fn update_client(
                    &self,
                    id: &str,
                    changes: &ClientChanges,
                    at: Timestamp,
                ) -> StoreResult<Option<OAuthClient>> {
                    oauth_clients::update(self, id, changes, at).await
                }

                async fn set_client_secret(
                    &self,
                    id: &str,
                    hash: &SecretHash,
                    at: Timestamp,
                ) -> StoreResult<bool> {
                    oauth_clients::set_secret(self, id, hash, at).await
                }

                async fn delete_client(&self, id: &str) -> StoreResult<bool> {
                    oauth_clients::delete(self, id).await
                }

                async fn insert_registered_client(
                    &self,
                    client: &OAuthClient,
                    registration: &ClientRegistration,
                    initial_token: Option<&SecretHash>,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    registrations::insert_client(self, client, registration, initial_token, now)
                        .await
                }

                async fn get_client_registration(
                    &self,
                    client_id: &str,
                ) -> StoreResult<Option<ClientRegistration>> {
                    registrations::get(self, client_id).await
                }

                async fn update_registered_client(
                    &self,
                    id: &str,
                    read: &OAuthClient,
                    changes: &ClientChanges,
                    registration: &ClientRegistration,
                    at: Timestamp,
                ) -> StoreResult<Option<OAuthClient>> {
                    registrations::update_client(self, id, read, changes, registration, at).await
                }

                async fn insert_registration_token(
                    &self,
                    token: &RegistrationToken,
                ) -> StoreResult<()> {
                    registrations::insert_token(self, token).await
                }

                async fn find_registration_token(
                    &self,
                    hash: &SecretHash,
                ) -> StoreResult<Option<RegistrationToken>> {
                    registrations::find_token(self, hash).await
                }

                async fn delete_registration_token(&self, id: &str) -> StoreResult<bool> {
                    registrations::delete_token(self, id).await
                }

                async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
                    refresh_tokens::insert(&mut *self.writer().await?, token).await
                }

                async fn get_refresh_token(
                    &self,
                    hash: &SecretHash,
                ) -> StoreResult<Option<RefreshToken>> {
                    refresh_tokens::get(self, hash).await
                }

                async fn rotate_refresh_token(
                    &self,
                    old: &SecretHash,
                    now: Timestamp,
                    grace: i64,
                    successor: &RefreshToken,
                ) -> StoreResult<RotateOutcome> {
                    let store = self.clone();
                    let spawn_batch = move |batch| {
                        tokio::spawn(refresh_tokens::commit_batch(store.clone(), batch))
                    };
                    refresh_tokens::rotate(
                        self,
                        &self.rotations,
                        spawn_batch,
                        old,
                        now,
                        grace,
                        successor,
                    )
                    .await
                }

                async fn revoke_refresh_family(
                    &self,
                    family_id: &str,
                    at: Timestamp,
                ) -> StoreResult<u64> {
                    refresh_tokens::revoke_family(self, family_id, at).await
                }

                async fn revoke_refresh_for_client(
                    &self,
                    user_id: &str,
                    client_id: &str,
                    at: Timestamp,
                ) -> StoreResult<Vec<String>> {
                    refresh_tokens::revoke_of_user_and_client(self, user_id, client_id, at).await
                }

                async fn revoke_refresh_for_user(
                    &self,
                    user_id: &str,
                    at: Timestamp,
                ) -> StoreResult<Vec<String>> {
                    refresh_tokens::revoke_of_user(self, user_id, at).await
                }

                async fn insert_authorization_code(
                    &self,
                    code: &AuthorizationCode,
                ) -> StoreResult<()> {
                    authorization_codes::insert(self, code).await
                }

                async fn consume_authorization_code(
                    &self,
                    hash: &SecretHash,
                    now: Timestamp,
                ) -> StoreResult<Option<AuthorizationCode>> {
                    authorization_codes::consume(self, hash, now).await
                }

                async fn insert_device_authorization(
                    &self,
                    authorization: &DeviceAuthorization,
                ) -> StoreResult<()> {
                    device_authorizations::insert(self, authorization).await
                }

                async fn get_device_authorization_by_user_code(
                    &self,
                    user_code_hash: &SecretHash,
                ) -> StoreResult<Option<DeviceAuthorization>> {
                    device_authorizations::by_user_code(self, user_code_hash).await
                }

                async fn decide_device_authorization(
                    &self,
                    user_code_hash: &SecretHash,
                    decision: &DeviceDecision,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    device_authorizations::decide(self, user_code_hash, decision, now).await
                }

                async fn poll_device_authorization(
                    &self,
                    device_code_hash: &SecretHash,
                    client_id: &str,
                    now: Timestamp,
                    slow_down: i64,
                ) -> StoreResult<Option<DevicePoll>> {
                    device_authorizations::poll(self, device_code_hash, client_id, now, slow_down)
                        .await
                }

                async fn redeem_device_authorization(
                    &self,
                    device_code_hash: &SecretHash,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    device_authorizations::redeem(self, device_code_hash, now).await
                }

                async fn upsert_consent(&self, consent: &Consent) -> StoreResult<()> {
                    consents::upsert(self, consent).await
                }

                async fn get_consent(
                    &self,
                    user_id: &str,
                    client_id: &str,
                ) -> StoreResult<Option<Consent>> {
                    consents::get(self, user_id, client_id).await
                }

                async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<Consent>> {
                    consents::list(self, user_id).await
                }

                async fn delete_consent(
                    &self,
                    user_id: &str,
                    client_id: &str,
                ) -> StoreResult<bool> {
                    consents::delete(self, user_id, client_id).await
                }

                async fn insert_session(&self, session: &Session) -> StoreResult<()> {
                    sessions::insert(self, session).await
                }

                async fn get_session(&self, hash: &SecretHash) -> StoreResult<Option<Session>> {
                    sessions::get(self, hash).await
                }

                async fn delete_session(&self, hash: &SecretHash) -> StoreResult<()> {
                    sessions::delete(self, hash).await
                }

                async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64> {
                    sessions::delete_of_user(self, user_id).await
                }

                async fn record_session_client(
                    &self,
                    sid: &str,
                    client_id: &str,
                    user_id: &str,
                    at: Timestamp,
                ) -> StoreResult<()> {
                    sessions::record_client(self, sid, client_id, user_id, at).await
                }

                async fn take_session_clients(&self, sid: &str) -> StoreResult<Vec<String>> {
                    sessions::take_clients(self, sid).await
                }

                async fn insert_logout_deliveries(
                    &self,
                    deliveries: &[PendingLogout],
                ) -> StoreResult<()> {
                    logout_deliveries::insert(self, deliveries).await
                }

                async fn claim_logout_deliveries(
                    &self,
                    now: Timestamp,
                    lease_until: Timestamp,
                    limit: u32,
                ) -> StoreResult<Vec<PendingLogout>> {
                    logout_deliveries::claim(self, now, lease_until, limit).await
                }

                async fn finish_logout_delivery(
                    &self,
                    id: &str,
                    lease_until: Timestamp,
                ) -> StoreResult<bool> {
                    logout_deliveries::finish(self, id, lease_until).await
                }

                async fn retry_logout_delivery(
                    &self,
                    id: &str,
                    lease_until: Timestamp,
                    next_attempt_at: Timestamp,
                ) -> StoreResult<bool> {
                    logout_deliveries::retry(self, id, lease_until, next_attempt_at).await
                }

                async fn list_logout_deliveries(
                    &self,
                    client_id: &str,
                ) -> StoreResult<Vec<PendingLogout>> {
                    logout_deliveries::list_of_client(self, client_id).await
                }

                async fn prune_logout_deliveries(&self, before: Timestamp) -> StoreResult<u64> {
                    logout_deliveries::prune(self, before).await
                }

                async fn insert_email_token(&self, token: &EmailToken) -> StoreResult<()> {
                    email_tokens::insert(self, token).await
                }

                async fn get_email_token(
                    &self,
                    hash: &SecretHash,
                ) -> StoreResult<Option<EmailToken>> {
                    email_tokens::get(self, hash).await
                }

                async fn verify_email_with_token(
                    &self,
                    hash: &SecretHash,
                    now: Timestamp,
                ) -> StoreResult<Option<User>> {
                    email_tokens::verify_email(self, hash, now).await
                }

                async fn reset_password_with_token(
                    &self,
                    hash: &SecretHash,
                    password_hash: &str,
                    now: Timestamp,
                ) -> StoreResult<Option<User>> {
                    email_tokens::reset_password(self, hash, password_hash, now).await
                }

                async fn list_user_sessions(&self, user_id: &str) -> StoreResult<Vec<Session>> {
                    sessions::list_of_user(self, user_id).await
                }

                async fn touch_session(
                    &self,
                    hash: &SecretHash,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    sessions::touch(self, hash, now).await
                }

                async fn get_totp(&self, user_id: &str) -> StoreResult<Option<TotpFactor>> {
                    mfa::get_totp(self, user_id).await
                }

                async fn put_pending_totp(&self, factor: &TotpFactor) -> StoreResult<bool> {
                    mfa::put_pending_totp(self, factor).await
                }

                async fn confirm_totp(
                    &self,
                    user_id: &str,
                    step: i64,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    mfa::confirm_totp(self, user_id, step, now).await
                }

                async fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
                    mfa::use_totp_step(self, user_id, step).await
                }

                async fn delete_totp(&self, user_id: &str) -> StoreResult<bool> {
                    mfa::delete_totp(self, user_id).await
                }

                async fn replace_recovery_codes(
                    &self,
                    user_id: &str,
                    hashes: &[SecretHash],
                    now: Timestamp,
                ) -> StoreResult<()> {
                    mfa::replace_recovery_codes(self, user_id, hashes, now).await
                }

                async fn use_recovery_code(
                    &self,
                    user_id: &str,
                    hash: &SecretHash,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    mfa::use_recovery_code(self, user_id, hash, now).await
                }

                async fn count_recovery_codes(&self, user_id: &str) -> StoreResult<u64> {
                    mfa::count_recovery_codes(self, user_id).await
                }

                async fn insert_passkey(
                    &self,
                    passkey: &PasskeyCredential,
                    max: u64,
                ) -> StoreResult<bool> {
                    passkeys::insert(self, passkey, max).await
                }

                async fn list_passkeys(
                    &self,
                    user_id: &str,
                ) -> StoreResult<Vec<PasskeyCredential>> {
                    passkeys::list_of_user(self, user_id).await
                }

                async fn get_passkey_by_credential(
                    &self,
                    credential_id: &str,
                ) -> StoreResult<Option<PasskeyCredential>> {
                    passkeys::by_credential(self, credential_id).await
                }

                async fn record_passkey_use(
                    &self,
                    id: &str,
                    passkey: &str,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    passkeys::record_use(self, id, passkey, now).await
                }

                async fn delete_passkey(&self, user_id: &str, id: &str) -> StoreResult<bool> {
                    passkeys::delete(self, user_id, id).await
                }

                async fn put_webauthn_ceremony(
                    &self,
                    ceremony: &WebauthnCeremony,
                    max_anonymous: u64,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    passkeys::put_ceremony(self, ceremony, max_anonymous, now).await
                }

                async fn take_webauthn_ceremony(
                    &self,
                    hash: &SecretHash,
                    now: Timestamp,
                ) -> StoreResult<Option<WebauthnCeremony>> {
                    passkeys::take_ceremony(self, hash, now).await
                }

                async fn publish_invalidation(
                    &self,
                    invalidation: &Invalidation,
                    at: Timestamp,
                ) -> StoreResult<i64> {
                    invalidations::publish(self, invalidation, at).await
                }

                async fn invalidations_since(
                    &self,
                    seq: i64,
                ) -> StoreResult<Vec<(i64, Invalidation)>> {
                    invalidations::since(self, seq).await
                }

                async fn latest_invalidation(&self) -> StoreResult<i64> {
                    invalidations::latest(self).await
                }

                async fn active_denylist(&self, now: Timestamp) -> StoreResult<Vec<Invalidation>> {
                    invalidations::active_denylist(self, now).await
                }

                async fn listen_invalidations(
                    &self,
                    notice: &(dyn Fn() + Send + Sync),
                ) -> StoreResult<bool> {
                    self.follow_invalidations(notice).await
                }

                async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
                    signing_keys::insert(self, key).await
                }

                async fn list_signing_keys(&self, now: Timestamp) -> StoreResult<Vec<SigningKey>> {
                    signing_keys::list_live(self, now).await
                }

                async fn retire_signing_keys(
                    &self,
                    keep: &str,
                    retire_at: Timestamp,
                ) -> StoreResult<()> {
                    signing_keys::retire_earlier(self, keep, retire_at).await
                }

                async fn reseal_signing_key(
                    &self,
                    kid: &str,
                    old: &[u8],
                    new: &[u8],
                ) -> StoreResult<bool> {
                    signing_keys::reseal(self, kid, old, new).await
                }

                async fn init_secret_key_check(
                    &self,
                    check: &[u8],
                    at: Timestamp,
                ) -> StoreResult<Vec<u8>> {
                    signing_keys::init_check(self, check, at).await
                }

                async fn insert_resource(&self, resource: &Resource) -> StoreResult<()> {
                    resources::insert(self, resource).await
                }

                async fn get_resource(&self, id: &str) -> StoreResult<Option<Resource>> {
                    resources::get(self, id).await
                }

                async fn get_resource_by_identifier(
                    &self,
                    identifier: &str,
                ) -> StoreResult<Option<Resource>> {
                    resources::get_by_identifier(self, identifier).await
                }

                async fn list_resources(
                    &self,
                    after: Option<&str>,
                    limit: u32,
                ) -> StoreResult<Vec<Resource>> {
                    resources::list_live(self, after, limit).await
                }

                async fn update_resource(
                    &self,
                    id: &str,
                    changes: &ResourceChanges,
                    at: Timestamp,
                ) -> StoreResult<Option<Resource>> {
                    resources::update(self, id, changes, at).await
                }

                async fn delete_resource(
                    &self,
                    id: &str,
                    at: Timestamp,
                ) -> StoreResult<Option<ResourceDeletion>> {
                    resources::delete(self, id, at).await
                }

                async fn set_resource_grant(&self, grant: &ResourceGrant) -> StoreResult<()> {
                    resources::set_grant(self, grant).await
                }

                async fn get_resource_grant(
                    &self,
                    user_id: &str,
                    resource_id: &str,
                ) -> StoreResult<Option<ResourceGrant>> {
                    resources::get_grant(self, user_id, resource_id).await
                }

                async fn list_resource_grants(
                    &self,
                    user_id: &str,
                ) -> StoreResult<Vec<ResourceGrant>> {
                    resources::list_grants(self, user_id).await
                }

                async fn delete_expired_batch(
                    &self,
                    what: netapi_core::retention::Expired,
                    cutoff: Timestamp,
                    limit: u32,
                ) -> StoreResult<u64> {
                    $crate::store::delete_expired_batch(self, what, cutoff, limit).await
                }

                async fn use_assertion_jti(
                    &self,
                    client_id: &str,
                    jti_hash: &[u8],
                    expires_at: Timestamp,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    pushed_requests::use_jti(self, client_id, jti_hash, expires_at, now).await
                }

                async fn insert_pushed_request(&self, request: &PushedRequest) -> StoreResult<()> {
                    pushed_requests::insert(self, request).await
                }

                async fn get_pushed_request(
                    &self,
                    hash: &SecretHash,
                    now: Timestamp,
                ) -> StoreResult<Option<PushedRequest>> {
                    pushed_requests::get(self, hash, now).await
                }

                async fn take_pushed_request(
                    &self,
                    hash: &SecretHash,
                    client_id: &str,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    pushed_requests::take(self, hash, client_id, now).await
                }
            }
        };
    };
}

pub(crate) use forward_store;
