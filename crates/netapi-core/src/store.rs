//! The storage boundary. Implemented for SQLite and PostgreSQL in `netapi-store`; both pass
//! one conformance suite. The store keeps records and guarantees atomicity; it decides no
//! policy.

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::model::{
    ApiKey, AuditEvent, AuthorizationCode, ClientLogout, Consent, DeviceAuthorization,
    DeviceDecision, DevicePoll, EmailToken, GrantType, Invitation, OAuthClient, PushedRequest,
    RefreshToken, Resource, ResourceGrant, ResourceScope, RotateOutcome, Session, SigningAlgorithm,
    SigningKey, TotpFactor, User,
};
use crate::model::{
    ClaimedDelivery, DeliveryAttempt, OutboxEvent, PendingLogout, Webhook, WebhookDelivery,
};
use crate::model::{ClientRegistration, RegistrationToken};
use crate::model::{PasskeyCredential, WebauthnCeremony};
use crate::retention::{Expired, RetentionSettings};
use crate::scope::{Role, Scopes};
use crate::secret::SecretHash;
use crate::usage::UsageCount;

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A cache entry that another process must drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// An API key was revoked, rotated or expired early (subject: its hash, hex).
    ApiKey(SecretHash),
    /// A user was changed or deleted.
    User(String),
    /// A client was changed or deleted.
    Client(String),
    /// An access token (`jti`) was revoked; valid until `expires_at`.
    AccessToken {
        /// Its `jti`.
        jti: String,
        /// When it would have expired anyway.
        expires_at: Timestamp,
    },
    /// A token family (`sid`) was revoked; refuse its access tokens until `expires_at`.
    Family {
        /// The family id.
        family_id: String,
        /// When its last access token would have expired anyway.
        expires_at: Timestamp,
    },
    /// The signing keys changed.
    SigningKeys,
    /// A resource was created, changed or deleted (subject: its id). Every cached resource
    /// is dropped: they are few and rarely change, and "no such identifier" is cached too.
    Resource(String),
    /// An administrator changed what a user holds on a resource.
    Grant {
        /// The user.
        user_id: String,
        /// The resource.
        resource_id: String,
    },
}

/// Which audit events to read; each condition given must hold (none: every event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The user concerned.
    pub user_id: Option<String>,
    /// The event type, e.g. `user.updated`.
    pub kind: Option<String>,
    /// Created at or after (Unix seconds).
    pub from: Option<Timestamp>,
    /// Created before (Unix seconds).
    pub to: Option<Timestamp>,
}

/// The columns of a user that a change writes; `None` leaves a column as storage has it, so
/// that a change never writes back a value it read (a concurrent demotion or password change
/// is not undone by a slow PATCH of the name).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// New display name.
    pub name: Option<String>,
    /// New (normalised) email.
    pub email: Option<String>,
    /// New Argon2id PHC string.
    pub password_hash: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Disabled since (`Some(None)`: enabled again).
    pub disabled_at: Option<Option<Timestamp>>,
}

impl std::fmt::Debug for UserChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserChanges")
            .field("name", &self.name.is_some())
            .field("email", &self.email.is_some())
            .field("password_hash", &self.password_hash.is_some())
            .field("role", &self.role)
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// The columns of a client that a change writes; `None` leaves a column as storage has it.
/// The secret is not among them: only [`Store::set_client_secret`] writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientChanges {
    /// `client_name`.
    pub name: Option<String>,
    /// `redirect_uris`.
    pub redirect_uris: Option<Vec<String>>,
    /// `grant_types`.
    pub grant_types: Option<Vec<GrantType>>,
    /// `scope`.
    pub scopes: Option<Scopes>,
    /// Requests per minute (`Some(None)`: back to the default).
    pub rate_limit: Option<Option<u32>>,
    /// `resources` (identifiers).
    pub resources: Option<Vec<String>>,
    /// The resource scope names its `scope` names.
    pub resource_scopes: Option<Vec<String>>,
    /// `id_token_signed_response_alg`.
    pub id_token_signed_response_alg: Option<SigningAlgorithm>,
    /// `token_exchange_resources` (identifiers).
    pub token_exchange_resources: Option<Vec<String>>,
    /// The logout metadata, replaced as a whole.
    pub logout: Option<ClientLogout>,
    /// `jwks` and `jwks_uri`, written together (at most one of them set).
    pub keys: Option<(Option<String>, Option<String>)>,
    /// `require_pushed_authorization_requests`.
    pub require_par: Option<bool>,
    /// `dpop_bound_access_tokens`.
    pub dpop_bound_access_tokens: Option<bool>,
}

/// The columns of a resource that a change writes; `None` leaves a column as storage has it.
/// The identifier is not among them: it never changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceChanges {
    /// New name.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<Vec<ResourceScope>>,
    /// New self-service scopes.
    pub self_service_scopes: Option<Vec<String>>,
    /// Whether API keys may be made for it.
    pub allow_api_keys: Option<bool>,
    /// Access token lifetime (`Some(None)`: back to the server's).
    pub access_token_ttl: Option<Option<u32>>,
    /// Write only if the self-service scopes are still these (else nothing is written, as
    /// for an unknown resource): for a change that works them out from what it read, so
    /// that it cannot undo a withdrawal made meanwhile.
    pub if_self_service_scopes: Option<Vec<String>>,
}

/// What deleting a resource revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceDeletion {
    /// Hashes of the API keys it revoked.
    pub keys: Vec<SecretHash>,
    /// Refresh-token families it revoked, sorted, without repeats.
    pub families: Vec<String>,
}

/// Persistent storage for everything Net API knows.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Answers when storage is reachable.
    async fn ping(&self) -> StoreResult<()>;

    /// Answers when storage takes writes: a write that matches no row, in a transaction
    /// that is rolled back, so a probe every second leaves nothing behind.
    async fn ping_write(&self) -> StoreResult<()>;

    /// Connections in the pool and how many of them are idle, for metrics.
    fn pool_usage(&self) -> (u32, u32);

    // --- users ---
    /// Creates a user with its first API key and audit event (and the event's webhook
    /// deliveries, as [`Store::record_event`] writes them), atomically.
    /// `Conflict("email")` if the email is taken.
    async fn create_user(
        &self,
        user: &User,
        first_key: Option<&ApiKey>,
        event: &AuditEvent,
        outbox: Option<&OutboxEvent>,
    ) -> StoreResult<()>;
    /// Like [`Store::create_user`], but first marks the invitation `invitation_id` used (by
    /// this user, at `user.created_at`), in the same transaction, if it is unused and not
    /// expired then; false, writing nothing, if it is not (so that of two registrations with
    /// one invitation, however close, one only succeeds). `Conflict("email")` if the email is
    /// taken, leaving the invitation unused.
    async fn create_invited_user(
        &self,
        user: &User,
        first_key: Option<&ApiKey>,
        event: &AuditEvent,
        outbox: Option<&OutboxEvent>,
        invitation_id: &str,
    ) -> StoreResult<bool>;
    /// A user by id.
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>>;
    /// A user by (lower-cased) email.
    async fn get_user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Users ordered by id, after the cursor.
    async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>>;
    /// Users whose email contains `email_part` (compared as written, `%` and `_` included),
    /// ordered by id, after the cursor: the admin console's search.
    async fn search_users(
        &self,
        email_part: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;
    /// Writes the given columns of a user (and `updated_at`), nothing else; returns the user
    /// as it now is, `None` if it does not exist. `Conflict("email")` on a taken email.
    /// `Conflict("last_admin")`, writing nothing, if it would demote or disable the last
    /// administrator who is not disabled (checked atomically: two administrators demoting
    /// each other at once leave one).
    async fn update_user(
        &self,
        id: &str,
        changes: &UserChanges,
        at: Timestamp,
    ) -> StoreResult<Option<User>>;
    /// Deletes a user and everything it holds (keys, clients, tokens, sessions, consents).
    /// `Conflict("last_admin")`, deleting nothing, for the last administrator who is not
    /// disabled.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;

    // --- invitations ---
    /// Stores an invitation unless `max_outstanding` invitations are unused and unexpired at
    /// `now`; false, writing nothing, then.
    async fn insert_invitation(
        &self,
        invitation: &Invitation,
        max_outstanding: u32,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// An invitation by the hash of its token.
    async fn find_invitation(&self, hash: &SecretHash) -> StoreResult<Option<Invitation>>;
    /// Invitations ordered by id, after the cursor.
    async fn list_invitations(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Invitation>>;
    /// Deletes an invitation; false if unknown.
    async fn delete_invitation(&self, id: &str) -> StoreResult<bool>;

    // --- API keys ---
    /// Stores a new key.
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// A key by id.
    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>>;
    /// A key by the hash of its value: the authentication lookup.
    async fn find_api_key(&self, hash: &SecretHash) -> StoreResult<Option<ApiKey>>;
    /// A user's keys that are not revoked, ordered by id, after the cursor.
    async fn list_api_keys(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; false if it was unknown or already revoked.
    async fn revoke_api_key(&self, id: &str, at: Timestamp) -> StoreResult<bool>;
    /// Atomically: if `old_id` is live, set its expiry to `old_expires_at` and store `new_key`.
    /// False (and nothing written) if the old key is revoked or unknown.
    async fn rotate_api_key(
        &self,
        old_id: &str,
        old_expires_at: Timestamp,
        new_key: &ApiKey,
    ) -> StoreResult<bool>;
    /// Revokes the live keys created with `client_id`'s access tokens (only `user_id`'s when
    /// given); returns their hashes, for cache invalidation.
    async fn revoke_api_keys_of_client(
        &self,
        client_id: &str,
        user_id: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<Vec<SecretHash>>;
    /// Records last use times in one batch.
    async fn record_api_key_use(&self, uses: &[(String, Timestamp)]) -> StoreResult<()>;
    /// Adds checks counted in memory to the stored hourly counts, in one batch; counts of keys
    /// that no longer exist are dropped.
    async fn add_api_key_usage(&self, counts: &[UsageCount]) -> StoreResult<()>;
    /// A key's hourly counts with `from <= hour < to`.
    async fn api_key_usage(
        &self,
        key_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<UsageCount>>;

    // --- audit ---
    /// Appends an event.
    async fn insert_audit_event(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events newest first, before the cursor; all users' with `None`.
    async fn list_audit_events(
        &self,
        user_id: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// Events that match every condition of `filter`, newest first, before the cursor.
    async fn search_audit_events(
        &self,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;

    /// Appends an event and, when it is one webhooks receive, a pending delivery of it to
    /// every live webhook subscribed to its type, all in one transaction.
    async fn record_event(
        &self,
        event: &AuditEvent,
        outbox: Option<&OutboxEvent>,
    ) -> StoreResult<()>;

    // --- webhooks ---
    /// Stores a new live webhook unless `max_live` are live already (then false, writing
    /// nothing). The cap holds however many creations run at once, on every instance.
    async fn insert_webhook(&self, webhook: &Webhook, max_live: u32) -> StoreResult<bool>;
    /// A webhook by id, live or disabled.
    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>>;
    /// Live webhooks ordered by id after the cursor.
    async fn list_webhooks(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<Webhook>>;
    /// Disables a live webhook (its pending deliveries are no longer claimed); false if
    /// unknown or disabled already.
    async fn disable_webhook(&self, id: &str, at: Timestamp) -> StoreResult<bool>;
    /// A delivery of a webhook by id.
    async fn get_webhook_delivery(
        &self,
        webhook_id: &str,
        id: &str,
    ) -> StoreResult<Option<WebhookDelivery>>;
    /// A webhook's deliveries, newest first, before the cursor.
    async fn list_webhook_deliveries(
        &self,
        webhook_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Claims up to `limit` pending deliveries due at `now` of live webhooks, moving their
    /// `next_attempt_at` to `lease_until` so that no other instance claims them until then,
    /// and answers each with its webhook's URL and sealed secret. Each due delivery is
    /// claimed by one caller only, however many ask at once.
    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt (counting it) of a delivery claimed with the lease `lease_until`,
    /// ending the lease; when a redelivery was asked for during the attempt, the delivery
    /// stays pending and is due at the time it was asked for. False, writing nothing, if it
    /// is no longer held with that lease (it expired and another instance claimed it).
    async fn record_webhook_attempt(
        &self,
        id: &str,
        lease_until: Timestamp,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<bool>;
    /// Makes a delivery pending again, due at `at`; while an attempt holds an unexpired
    /// lease on it, only marks it to be delivered again once that attempt is recorded (so
    /// that no two attempts run at once). False if unknown.
    async fn redeliver_webhook_delivery(
        &self,
        webhook_id: &str,
        id: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;

    // --- OAuth clients ---
    /// Stores a new client.
    async fn insert_client(&self, client: &OAuthClient) -> StoreResult<()>;
    /// A client by `client_id`.
    async fn get_client(&self, id: &str) -> StoreResult<Option<OAuthClient>>;
    /// Clients ordered by id after the cursor; all owners' with `None`.
    async fn list_clients(
        &self,
        owner_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<OAuthClient>>;
    /// Marks a client trusted or not (an administrator's decision); false if unknown.
    async fn set_client_trusted(&self, id: &str, trusted: bool) -> StoreResult<bool>;
    /// Writes the given columns of a client (and `updated_at`), never its secret; returns the
    /// client as it now is, `None` if unknown.
    async fn update_client(
        &self,
        id: &str,
        changes: &ClientChanges,
        at: Timestamp,
    ) -> StoreResult<Option<OAuthClient>>;
    /// Replaces a client's secret hash (and `updated_at`), nothing else; false if unknown.
    async fn set_client_secret(
        &self,
        id: &str,
        hash: &SecretHash,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Deletes a client with its tokens, codes and consents; false if unknown.
    async fn delete_client(&self, id: &str) -> StoreResult<bool>;

    // --- dynamic client registration (RFC 7591, RFC 7592) ---
    /// Stores a client registered at `/oauth/register` with its registration, in one
    /// transaction; with `initial_token`, first marks that initial access token used at
    /// `now` (once, unexpired). False, and nothing written, if the token was not usable.
    async fn insert_registered_client(
        &self,
        client: &OAuthClient,
        registration: &ClientRegistration,
        initial_token: Option<&SecretHash>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// The registration of a client, if it was registered at `/oauth/register`.
    async fn get_client_registration(
        &self,
        client_id: &str,
    ) -> StoreResult<Option<ClientRegistration>>;
    /// Writes the given columns of a registered client and replaces its registration
    /// metadata, in one transaction, if the client is still exactly as `read` (else
    /// `Conflict`: a concurrent change, say a narrowing, must not be undone); the client as it
    /// now is, `None` if unknown.
    async fn update_registered_client(
        &self,
        id: &str,
        read: &OAuthClient,
        changes: &ClientChanges,
        registration: &ClientRegistration,
        at: Timestamp,
    ) -> StoreResult<Option<OAuthClient>>;
    /// Stores a new initial access token.
    async fn insert_registration_token(&self, token: &RegistrationToken) -> StoreResult<()>;
    /// An initial access token by the hash of its token.
    async fn find_registration_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<RegistrationToken>>;
    /// Deletes an initial access token; false if unknown.
    async fn delete_registration_token(&self, id: &str) -> StoreResult<bool>;

    // --- refresh tokens ---
    /// Stores a new refresh token.
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()>;
    /// A refresh token by hash.
    async fn get_refresh_token(&self, hash: &SecretHash) -> StoreResult<Option<RefreshToken>>;
    /// Atomically exchanges `old` for `successor` (see [`RotateOutcome`]). A token already
    /// rotated less than `grace` seconds ago may be exchanged again (concurrent refreshes):
    /// for the same successor, which is stored once (inserted only if absent); but if that
    /// successor has itself been rotated, or the grace period is over, it is reuse and the
    /// whole family is revoked.
    async fn rotate_refresh_token(
        &self,
        old: &SecretHash,
        now: Timestamp,
        grace: i64,
        successor: &RefreshToken,
    ) -> StoreResult<RotateOutcome>;
    /// Revokes every live token of a family; returns how many.
    async fn revoke_refresh_family(&self, family_id: &str, at: Timestamp) -> StoreResult<u64>;
    /// Revokes every refresh token a user holds for a client (consent withdrawn).
    async fn revoke_refresh_for_client(
        &self,
        user_id: &str,
        client_id: &str,
        at: Timestamp,
    ) -> StoreResult<Vec<String>>;

    /// Revokes every refresh token a user holds (password or email changed); returns the
    /// families, sorted and without repeats.
    async fn revoke_refresh_for_user(
        &self,
        user_id: &str,
        at: Timestamp,
    ) -> StoreResult<Vec<String>>;

    // --- authorization codes ---
    /// Stores a new code.
    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> StoreResult<()>;
    /// Atomically marks a code used and returns it as it was before (so a second use shows
    /// `used_at` set). `None` if unknown.
    async fn consume_authorization_code(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<AuthorizationCode>>;

    // --- device authorizations (RFC 8628) ---
    /// Stores a new device authorization. `Conflict` when another holds the same user code
    /// (or device code) hash: the caller draws new codes.
    async fn insert_device_authorization(
        &self,
        authorization: &DeviceAuthorization,
    ) -> StoreResult<()>;
    /// The device authorization of a user code, whatever its state.
    async fn get_device_authorization_by_user_code(
        &self,
        user_code_hash: &SecretHash,
    ) -> StoreResult<Option<DeviceAuthorization>>;
    /// Records a person's decision on a pending, unexpired (at `now`) authorization, once:
    /// false, writing nothing, when it is not pending any more, expired or unknown (of two
    /// decisions, however close, one only succeeds).
    async fn decide_device_authorization(
        &self,
        user_code_hash: &SecretHash,
        decision: &DeviceDecision,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Records a poll by `client_id` at `now`: when the previous poll came less than the
    /// interval before, the interval grows by `slow_down` seconds and `too_fast` is set (RFC
    /// 8628 §3.5). `None`, writing nothing, for an unknown device code or another client's.
    async fn poll_device_authorization(
        &self,
        device_code_hash: &SecretHash,
        client_id: &str,
        now: Timestamp,
        slow_down: i64,
    ) -> StoreResult<Option<DevicePoll>>;
    /// Marks an approved authorization redeemed at `now`, once: false for every later call
    /// (however close), and for one that is not approved.
    async fn redeem_device_authorization(
        &self,
        device_code_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<bool>;

    // --- consents ---
    /// Records (or widens) a consent.
    async fn upsert_consent(&self, consent: &Consent) -> StoreResult<()>;
    /// A user's consent for a client.
    async fn get_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>>;
    /// A user's consents.
    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<Consent>>;
    /// Withdraws a consent; false if there was none.
    async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool>;

    // --- browser sessions ---
    /// Stores a session.
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// A session by hash.
    async fn get_session(&self, hash: &SecretHash) -> StoreResult<Option<Session>>;
    /// Ends a session.
    async fn delete_session(&self, hash: &SecretHash) -> StoreResult<()>;
    /// Ends every session of a user; returns how many.
    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64>;
    /// Records that `client_id` received an ID token in `user_id`'s session `sid` (once per
    /// session and client; a second record changes nothing).
    async fn record_session_client(
        &self,
        sid: &str,
        client_id: &str,
        user_id: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Forgets the clients recorded for the session `sid` and answers them, sorted: of two
    /// callers at once, each client goes to one only. Deleting a client forgets it too.
    async fn take_session_clients(&self, sid: &str) -> StoreResult<Vec<String>>;
    /// Stores logout deliveries to be attempted (Back-Channel Logout).
    async fn insert_logout_deliveries(&self, deliveries: &[PendingLogout]) -> StoreResult<()>;
    /// Claims up to `limit` logout deliveries due at `now`, oldest due first, moving their
    /// `next_attempt_at` to `lease_until` (a lease: no other caller claims them until then)
    /// and answering them so. Each due delivery goes to one caller only.
    async fn claim_logout_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PendingLogout>>;
    /// Deletes a delivery that is over (delivered, refused, given up), if the lease
    /// `lease_until` is still the caller's; answers whether it was.
    async fn finish_logout_delivery(&self, id: &str, lease_until: Timestamp) -> StoreResult<bool>;
    /// Counts one more attempt and makes the delivery due at `next_attempt_at`, if the lease
    /// `lease_until` is still the caller's; answers whether it was.
    async fn retry_logout_delivery(
        &self,
        id: &str,
        lease_until: Timestamp,
        next_attempt_at: Timestamp,
    ) -> StoreResult<bool>;
    /// A client's logout deliveries still pending, oldest first.
    async fn list_logout_deliveries(&self, client_id: &str) -> StoreResult<Vec<PendingLogout>>;
    /// Deletes the deliveries created before `before`, whatever their state; answers how many.
    async fn prune_logout_deliveries(&self, before: Timestamp) -> StoreResult<u64>;
    /// A user's sessions (expired ones included until they are cleaned up), newest first.
    async fn list_user_sessions(&self, user_id: &str) -> StoreResult<Vec<Session>>;
    /// Records that a session was used at `now`.
    async fn touch_session(&self, hash: &SecretHash, now: Timestamp) -> StoreResult<()>;

    // --- second factors ---
    /// A user's TOTP authenticator, confirmed or not.
    async fn get_totp(&self, user_id: &str) -> StoreResult<Option<TotpFactor>>;
    /// Stores a new, unconfirmed authenticator, replacing an unconfirmed one; false (and
    /// nothing written) when the user has a confirmed one.
    async fn put_pending_totp(&self, factor: &TotpFactor) -> StoreResult<bool>;
    /// Confirms the user's unconfirmed authenticator, `step` being the one its first code
    /// used; false if there is none to confirm.
    async fn confirm_totp(&self, user_id: &str, step: i64, now: Timestamp) -> StoreResult<bool>;
    /// Records `step` as used on a confirmed authenticator, only if it is later than the last
    /// one used (atomic: of two concurrent uses of one step, one fails); false otherwise.
    async fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;
    /// Removes the user's authenticator and recovery codes; false if there was no
    /// authenticator.
    async fn delete_totp(&self, user_id: &str) -> StoreResult<bool>;
    /// Replaces the user's recovery codes with these hashes, in one transaction.
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[SecretHash],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Marks an unused recovery code used (atomic); false if the user has no such unused code.
    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// How many unused recovery codes the user has.
    async fn count_recovery_codes(&self, user_id: &str) -> StoreResult<u64>;

    // --- passkeys ---
    /// Stores a passkey unless its user already has `max`; false (nothing written) then.
    /// A credential id registered before (to anyone) is `Conflict`.
    async fn insert_passkey(&self, passkey: &PasskeyCredential, max: u64) -> StoreResult<bool>;
    /// A user's passkeys, oldest first.
    async fn list_passkeys(&self, user_id: &str) -> StoreResult<Vec<PasskeyCredential>>;
    /// The passkey with this credential id (base64url), whoever's it is.
    async fn get_passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<PasskeyCredential>>;
    /// Records a sign-in with a passkey: its new state (signature counter) and when.
    async fn record_passkey_use(&self, id: &str, passkey: &str, now: Timestamp) -> StoreResult<()>;
    /// Removes one of a user's passkeys; false if the user has no such passkey.
    async fn delete_passkey(&self, user_id: &str, id: &str) -> StoreResult<bool>;
    /// Stores a pending WebAuthn ceremony, replacing one with the same hash, after dropping
    /// expired ones. A ceremony without a user is refused (false) while `max_anonymous`
    /// such ceremonies are pending.
    async fn put_webauthn_ceremony(
        &self,
        ceremony: &WebauthnCeremony,
        max_anonymous: u64,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Takes (deletes and returns) the unexpired ceremony with this hash: of two concurrent
    /// takers, one gets it.
    async fn take_webauthn_ceremony(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<WebauthnCeremony>>;

    // Emailed links
    /// Stores a link (by the hash of its secret).
    async fn insert_email_token(&self, token: &EmailToken) -> StoreResult<()>;
    /// The link with this hash, used or not.
    async fn get_email_token(&self, hash: &SecretHash) -> StoreResult<Option<EmailToken>>;
    /// Uses a verification link and verifies the address it was sent to, in one transaction
    /// (single use however many requests race); `None` when the link is unknown, used,
    /// expired, or the user's address changed since it was sent.
    async fn verify_email_with_token(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<User>>;
    /// Uses a reset link (and ends the user's other reset links) and sets the new password
    /// hash, in one transaction; `None` when the link is unknown, used or expired.
    async fn reset_password_with_token(
        &self,
        hash: &SecretHash,
        password_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<User>>;

    // --- access-token denylist and cross-process invalidation ---
    /// Records an invalidation for every process (including a denylist entry for access
    /// tokens and families) and returns its sequence number.
    async fn publish_invalidation(
        &self,
        invalidation: &Invalidation,
        at: Timestamp,
    ) -> StoreResult<i64>;
    /// Invalidations after `seq`, oldest first, with their sequence numbers.
    async fn invalidations_since(&self, seq: i64) -> StoreResult<Vec<(i64, Invalidation)>>;
    /// The newest sequence number (0 if none).
    async fn latest_invalidation(&self) -> StoreResult<i64>;
    /// Every access-token and family denylist entry that has not expired.
    async fn active_denylist(&self, now: Timestamp) -> StoreResult<Vec<Invalidation>>;
    /// Follows invalidations as other processes publish them, for as long as the backend can:
    /// calls `notice` once listening has begun (and again after each reconnection), so that
    /// the caller catches up with [`Store::invalidations_since`], and once per invalidation
    /// published. Answers `Ok(false)` at once when the backend has no such channel (SQLite,
    /// one process: polling is the only path), `Err` when listening failed (try again later).
    async fn listen_invalidations(&self, notice: &(dyn Fn() + Send + Sync)) -> StoreResult<bool> {
        let _ = notice;
        Ok(false)
    }

    // --- signing keys ---
    /// Stores a signing key.
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()>;
    /// Every signing key not yet retired at `now`.
    async fn list_signing_keys(&self, now: Timestamp) -> StoreResult<Vec<SigningKey>>;
    /// Sets the retirement time of every key without one that comes before `keep` in signing
    /// order (`active_from`, then `kid`): the keys of earlier rotations. Those of other
    /// algorithms made after `keep` in the same rotation begin with it and stay.
    async fn retire_signing_keys(&self, keep: &str, retire_at: Timestamp) -> StoreResult<()>;
    /// Replaces a key's stored material with `new` if it still is `old`; false otherwise.
    async fn reseal_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool>;
    /// Records `check` as the secret key's check value unless one is recorded already, and
    /// returns the recorded one (the first instance's, when several start at once).
    async fn init_secret_key_check(&self, check: &[u8], at: Timestamp) -> StoreResult<Vec<u8>>;

    // --- resources ---
    /// Stores a new resource. `Conflict("identifier")` if its identifier is taken, by a live
    /// or a deleted resource.
    async fn insert_resource(&self, resource: &Resource) -> StoreResult<()>;
    /// A resource by id, deleted ones included.
    async fn get_resource(&self, id: &str) -> StoreResult<Option<Resource>>;
    /// A resource by identifier, deleted ones included.
    async fn get_resource_by_identifier(&self, identifier: &str) -> StoreResult<Option<Resource>>;
    /// Live resources ordered by id, after the cursor.
    async fn list_resources(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<Resource>>;
    /// Writes the given columns of a live resource (and `updated_at`); returns it as it now
    /// is, `None` if it is unknown or deleted.
    async fn update_resource(
        &self,
        id: &str,
        changes: &ResourceChanges,
        at: Timestamp,
    ) -> StoreResult<Option<Resource>>;
    /// Atomically marks a live resource deleted, revokes its API keys and refresh tokens,
    /// and removes its grants and authorization codes. `None` if unknown or already deleted.
    async fn delete_resource(
        &self,
        id: &str,
        at: Timestamp,
    ) -> StoreResult<Option<ResourceDeletion>>;
    /// Replaces what an administrator granted a user on a resource; no scopes removes it.
    async fn set_resource_grant(&self, grant: &ResourceGrant) -> StoreResult<()>;
    /// What a user was granted on a resource.
    async fn get_resource_grant(
        &self,
        user_id: &str,
        resource_id: &str,
    ) -> StoreResult<Option<ResourceGrant>>;
    /// Every grant of a user, ordered by resource id.
    async fn list_resource_grants(&self, user_id: &str) -> StoreResult<Vec<ResourceGrant>>;

    // --- housekeeping (retention) ---
    /// Deletes up to `limit` rows of `what` that are over at `cutoff` (see [`Expired`]) in
    /// one statement, its own short transaction; answers how many went. Safe to run from
    /// several processes at once: each row goes once.
    async fn delete_expired_batch(
        &self,
        what: Expired,
        cutoff: Timestamp,
        limit: u32,
    ) -> StoreResult<u64>;
    /// Deletes every row that has expired by itself at `now` (every [`Expired`] kind but
    /// the ones kept for a number of days; the client records of every session that is
    /// gone), in batches; answers how many rows went.
    async fn delete_expired(&self, now: Timestamp) -> StoreResult<u64> {
        let kinds: Vec<Expired> = Expired::ALL.into_iter().filter(|k| k.expires()).collect();
        let settings = RetentionSettings {
            session_ttl: 0,
            ..RetentionSettings::default()
        };
        let swept = crate::retention::sweep(
            self,
            &settings,
            &kinds,
            now,
            crate::retention::DEFAULT_BATCH,
        )
        .await;
        let total = swept.total();
        match swept.failed.into_iter().next() {
            Some((_, err)) => Err(err),
            None => Ok(total),
        }
    }

    // Client assertions and pushed authorization requests (issue 16)

    /// Records the `jti` of a client assertion (`jti_hash`: a hash of it) until `expires_at`.
    /// `false` when the client already used it and the record has not expired: the
    /// assertion is a replay. Atomic: of two concurrent uses, one gets `false`.
    async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti_hash: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Keeps a pushed authorization request.
    async fn insert_pushed_request(&self, request: &PushedRequest) -> StoreResult<()>;
    /// The pushed request with this hash, unless it has expired.
    async fn get_pushed_request(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<PushedRequest>>;
    /// Deletes the pushed request with this hash, if `client_id` pushed it and it has not
    /// expired; `true` for the one caller that did (single use, atomic).
    async fn take_pushed_request(
        &self,
        hash: &SecretHash,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
}
