//! The operations of Net API. HTTP handlers and the CLI both call these; policy lives here
//! once.

mod access;
mod audit;
mod authn;
mod authorize;
mod cache;
mod client_keys;
mod clients;
mod device;
mod email;
mod exchange;
mod invitations;
mod keys;
mod logout;
mod mfa;
mod oauth;
mod oauth_error;
mod par;
mod passkeys;
mod registration;
mod requests;
mod resources;
mod scanning;
mod sessions;
mod usage;
mod users;
mod verify;
mod webhooks;

pub use access::{Access, ProtectedResource};
pub use audit::AuditPage;
pub use authn::{Actor, Credential, DpopPresentation, Principal};
pub use authorize::{
    AuthorizationRequest, AuthorizeError, AuthorizeReason, ErrorRedirect, PageReason,
};
pub use client_keys::{
    ASSERTION_MAX_LIFETIME, JWKS_CACHE_TTL, JWKS_FETCH_TIMEOUT, JwksFetcher, MAX_JWKS_BYTES,
};
pub use clients::{
    ClientPage, ClientUpdate, NewClient, parse_auth_method, parse_grant_types, parse_id_token_alg,
    validate_redirect_uri,
};
pub use device::{
    DEVICE_CODE_TTL, DEVICE_POLL_INTERVAL, DEVICE_STARTS_PER_MINUTE, DEVICE_STARTS_PER_SOURCE,
    DeviceGrant, DeviceRequest, UserCodeError, normalise_user_code,
};
pub use email::{AccountChange, Email, MailError, Mailer, RESET_LINK_TTL, VERIFY_LINK_TTL};
pub use invitations::{
    DEFAULT_INVITATION_TTL, InvitationPage, MAX_INVITATION_TTL, MAX_OUTSTANDING_INVITATIONS,
    NewInvitation, RegistrationPolicy,
};
pub use keys::{KeyPage, NewApiKey};
pub use logout::{
    BACKCHANNEL_ATTEMPTS, BACKCHANNEL_LOGOUT_EVENT, BACKCHANNEL_RETRY_BASE, BackchannelClient,
    CheckedLogout, HintedSession, LOGOUT_DELIVERY_RETENTION, LOGOUT_TOKEN_TTL, LogoutParams,
    MAX_ID_TOKEN_HINT_LEN, MAX_LOGOUT_STATE_LEN, MAX_LOGOUT_URI_LEN, MAX_POST_LOGOUT_REDIRECT_URIS,
};
pub use mfa::{MfaChange, MfaStatus, RECOVERY_CODES, SECOND_FACTOR_TTL, TotpEnrolment};
pub use oauth::{Introspection, TokenResponse, UserInfoClaims};
pub use oauth_error::{OAuthError, OAuthErrorKind, OAuthReason, ParRefusal};
pub use par::{
    PAR_TTL, PUSHES_PER_MINUTE, PUSHES_PER_SOURCE, PushedAuthorization, PushedParams,
    REQUEST_URI_PREFIX,
};
pub use passkeys::{
    CEREMONY_TTL, MAX_CREDENTIAL_JSON, MAX_PASSKEYS, MAX_PENDING_PASSWORDLESS, PasskeyStep,
};
pub use registration::{
    ClientRegistrationPolicy, ClientRegistrationRequest, DEFAULT_REGISTRATION_TOKEN_TTL,
    MAX_REGISTRATION_TOKEN_TTL, RegisteredClient,
};
pub use requests::{
    ACCESS_TOKEN_TYPE, AuthorizationParams, ClientAuth, ClientRequest, DeviceAuthorizationParams,
    JWT_BEARER_ASSERTION, MalformedBasic, OAuthForm, Prompt, ResourceIndicator, TokenExchange,
    TokenGrant, TokenTarget, basic_credentials, form_decoded,
};
pub use resources::{
    MAX_IDENTIFIER_LEN, MAX_METADATA_LEN, MAX_RESOURCE_SCOPES, MAX_SCOPE_DESCRIPTION, NewResource,
    ResourcePage, ResourceUpdate, TOKEN_TTL_RANGE, well_formed_scope,
};
pub use sessions::{SessionOrigin, SessionSummary, device_of};
pub use usage::{KeyUsage, UsageQuery};
pub use users::{NewUser, UserPage, UserUpdate};
pub use verify::{MAX_RESOURCE_LEN, MAX_VERIFY_SCOPES, Verification, VerifiedKey, VerifyCode};
pub use webhooks::{
    MAX_DELIVERY_ATTEMPTS, MAX_WEBHOOK_URL_LEN, MAX_WEBHOOKS, NewWebhook, SIGNATURE_HEADER,
    WEBHOOK_EVENTS, WebhookClient, is_public_address, signature, webhook_event_type,
};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use moka::sync::Cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::error::{Error, Result};
use crate::ids::{looks_like_id, new_id};
use crate::jwt::{KeyRing, generate_key};
use crate::limiter::{FailureLimiter, RateStatus, RequestLimiter};
use crate::model::{ApiKey, AuditEvent, OAuthClient, Resource, SigningAlgorithm, SigningKey, User};
use crate::retention::{self, Expired, RetentionSettings, Swept};
use crate::sealing::{SecretKey, is_sealed};
use crate::secret::{SecretHash, SecretHasher};
use crate::store::{Invalidation, Store};
use cache::GuardedCache;

/// Lifetimes and limits; see CONTRACT.md for the defaults.
#[derive(Clone)]
pub struct Settings {
    /// The `iss` of every token and of the discovery documents.
    pub issuer: String,
    /// Access token lifetime, seconds.
    pub access_token_ttl: i64,
    /// Refresh token idle lifetime, seconds.
    pub refresh_token_ttl: i64,
    /// Refresh token family absolute lifetime, seconds.
    pub refresh_token_max_ttl: i64,
    /// How long a rotated refresh token may still be exchanged (concurrent refreshes).
    pub refresh_reuse_grace: i64,
    /// Authorization code lifetime, seconds.
    pub authorization_code_ttl: i64,
    /// Browser session lifetime, seconds.
    pub session_ttl: i64,
    /// Failed authentications per subject per minute before 429.
    pub auth_failure_limit: u32,
    /// How long a new signing key is published before it signs.
    pub signing_key_publish_delay: i64,
    /// Key of the HMAC that stores secrets.
    pub pepper: Vec<u8>,
    /// How many API keys (and as many users) the in-process caches hold.
    pub cache_capacity: u64,
    /// Requests per minute per API key or OAuth client unless overridden; 0 turns it off.
    pub rate_limit_per_minute: u32,
    /// PKCE for confidential clients too (public clients always need it).
    pub require_pkce: bool,
    /// The algorithm of access tokens, and of the ID tokens of clients registered before
    /// `id_token_signed_response_alg` existed. RS256 keys are kept besides in any case.
    pub signing_algorithm: SigningAlgorithm,
    /// The key kept outside the database, which seals signing keys.
    pub secret_key: SecretKey,
    /// Registrations per source address (IPv6: per /64) per hour over HTTP; 0 turns it off.
    pub registration_limit_per_hour: u32,
    /// Registrations over HTTP hashing or waiting to hash at once; past it, 503.
    pub registration_hash_queue: usize,
    /// GitHub's secret scanning public keys (its JSON), read at start; `None` turns
    /// `POST /secret-scanning/github` off.
    pub secret_scanning_github_keys: Option<std::path::PathBuf>,
    /// How long a webhook delivery may take.
    pub webhook_timeout: Duration,
    /// Seconds before the first retry of a failed webhook delivery; each next one waits
    /// twice as long.
    pub webhook_retry_base: i64,
    /// Outbound requests (webhooks) may go to loopback, private and link-local addresses.
    pub allow_private_targets: bool,
    /// Sign-in is refused until the user has verified their email address.
    pub require_verified_email: bool,
    /// Messages per recipient address per hour; 0 turns the limit off.
    pub email_recipient_limit_per_hour: u32,
    /// Requests for mail (reset, verification) per source address per hour; 0 turns it off.
    pub email_source_limit_per_hour: u32,
    /// Administrators must set up a second factor: one without is sent to enrolment after
    /// signing in, before anything else.
    pub mfa_required_for_admins: bool,
    /// Everyone must set up a second factor (as `mfa_required_for_admins`, for all users).
    pub mfa_required: bool,
    /// Who may register over HTTP.
    pub registration: RegistrationPolicy,
    /// The email domains self-service registration is open to (lower-cased); empty: any.
    pub registration_email_domains: Vec<String>,
    /// Who may register clients at `/oauth/register` (RFC 7591); anonymous (`open`)
    /// registrations count against `registration_limit_per_hour` per source.
    pub client_registration: ClientRegistrationPolicy,
    /// Every authorization request must come through `/oauth/par` (RFC 9126 §5), not only
    /// those of clients registered with `require_pushed_authorization_requests`.
    pub require_pushed_authorization_requests: bool,
    /// DPoP proofs must carry a nonce this server made (RFC 9449 §8, §9): `use_dpop_nonce`
    /// answers hand one out in `DPoP-Nonce`.
    pub require_dpop_nonce: bool,
    /// How often the invalidations table is read for other processes' revocations. With
    /// PostgreSQL they also arrive at once through `LISTEN`, and this is the safety net.
    pub invalidation_poll_interval: Duration,
    /// Days audit events are kept; 0 keeps them for ever.
    pub audit_retention_days: u32,
    /// Days hourly API key usage counts are kept; 0 keeps them for ever.
    pub usage_retention_days: u32,
    /// Days webhook deliveries that are over are kept (from their event); 0 keeps them for
    /// ever.
    pub webhook_delivery_retention_days: u32,
}

/// Shows every setting but the pepper and the secret key.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("issuer", &self.issuer)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("refresh_token_max_ttl", &self.refresh_token_max_ttl)
            .field("refresh_reuse_grace", &self.refresh_reuse_grace)
            .field("authorization_code_ttl", &self.authorization_code_ttl)
            .field("session_ttl", &self.session_ttl)
            .field("auth_failure_limit", &self.auth_failure_limit)
            .field("signing_key_publish_delay", &self.signing_key_publish_delay)
            .field("cache_capacity", &self.cache_capacity)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("require_pkce", &self.require_pkce)
            .field("signing_algorithm", &self.signing_algorithm)
            .field(
                "registration_limit_per_hour",
                &self.registration_limit_per_hour,
            )
            .field("registration_hash_queue", &self.registration_hash_queue)
            .field(
                "secret_scanning_github_keys",
                &self.secret_scanning_github_keys,
            )
            .field("webhook_timeout", &self.webhook_timeout)
            .field("webhook_retry_base", &self.webhook_retry_base)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("require_verified_email", &self.require_verified_email)
            .field(
                "email_recipient_limit_per_hour",
                &self.email_recipient_limit_per_hour,
            )
            .field(
                "email_source_limit_per_hour",
                &self.email_source_limit_per_hour,
            )
            .field("mfa_required_for_admins", &self.mfa_required_for_admins)
            .field("mfa_required", &self.mfa_required)
            .field("registration", &self.registration)
            .field(
                "registration_email_domains",
                &self.registration_email_domains,
            )
            .field("client_registration", &self.client_registration)
            .field(
                "require_pushed_authorization_requests",
                &self.require_pushed_authorization_requests,
            )
            .field("require_dpop_nonce", &self.require_dpop_nonce)
            .field(
                "invalidation_poll_interval",
                &self.invalidation_poll_interval,
            )
            .field("audit_retention_days", &self.audit_retention_days)
            .field("usage_retention_days", &self.usage_retention_days)
            .field(
                "webhook_delivery_retention_days",
                &self.webhook_delivery_retention_days,
            )
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".to_owned(),
            access_token_ttl: 900,
            refresh_token_ttl: 2_592_000,
            refresh_token_max_ttl: 7_776_000,
            refresh_reuse_grace: 10,
            authorization_code_ttl: 60,
            session_ttl: 43_200,
            auth_failure_limit: 20,
            signing_key_publish_delay: 300,
            pepper: Vec::new(),
            cache_capacity: 100_000,
            rate_limit_per_minute: 0,
            require_pkce: true,
            signing_algorithm: SigningAlgorithm::EdDsa,
            secret_key: SecretKey::insecure_for_tests(),
            registration_limit_per_hour: 20,
            registration_hash_queue: 32,
            secret_scanning_github_keys: None,
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_base: 5,
            allow_private_targets: false,
            require_verified_email: false,
            email_recipient_limit_per_hour: 5,
            email_source_limit_per_hour: 20,
            mfa_required_for_admins: false,
            mfa_required: false,
            registration: RegistrationPolicy::Open,
            registration_email_domains: Vec::new(),
            client_registration: ClientRegistrationPolicy::Authenticated,
            require_pushed_authorization_requests: false,
            require_dpop_nonce: false,
            invalidation_poll_interval: Duration::from_millis(250),
            audit_retention_days: 365,
            usage_retention_days: 400,
            webhook_delivery_retention_days: 30,
        }
    }
}

/// What the authentication hot path needs to know about a user: the record itself, so that
/// `GET /v1/users/me` needs no storage round trip either (issue 6). Invalidated like the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserFacts {
    role: crate::scope::Role,
    user: Arc<User>,
}

/// What the authentication hot path needs to know about a client: the record itself, so that
/// client authentication at the token and introspection endpoints needs no storage round
/// trip (issue 6). Every change to a client invalidates it, here and in other processes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientFacts {
    rate_limit: Option<u32>,
    client: Arc<OAuthClient>,
}

/// Slack for instances that reload signing keys once a minute.
const KEY_RELOAD_MARGIN: i64 = 120;

/// How often `last_used_at` is written for one key, at most.
const USAGE_RESOLUTION: i64 = 60;
/// How long a checked signature is remembered: shorter than any signing key outlives the
/// tokens it signed.
const VERIFIED_TOKEN_TTL: Duration = Duration::from_secs(300);
/// How long an "unknown key" answer is cached.
const NEGATIVE_TTL: Duration = Duration::from_secs(600);
/// The longest a cached key, user or client is kept, even with no invalidation: should one
/// be lost (a process stalled past the invalidations' retention), it still ends.
const RECORD_TTL: Duration = Duration::from_secs(60);

/// Net API itself: storage, clock, caches and settings.
pub struct NetApi {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    hasher: SecretHasher,
    keys_by_hash: GuardedCache<SecretHash, Arc<ApiKey>, crate::FastHash>,
    unknown_keys: Cache<SecretHash, (), crate::FastHash>,
    /// Access tokens whose signature has been checked, by SHA-256 of the token: a repeated
    /// token costs a hash instead of a signature verification. Time, issuer, audience and
    /// the denylist are still checked on every use.
    verified_tokens: Cache<[u8; 32], Arc<authn::AccessClaims>, crate::FastHash>,
    users: GuardedCache<String, Option<UserFacts>, crate::FastHash>,
    clients: GuardedCache<String, Option<ClientFacts>>,
    /// Resources by `id:<id>` and by `uri:<identifier>`, deleted ones and unknown
    /// identifiers included (as `None`), so that a credential for a resource costs no storage
    /// access on a hit; every change to any resource drops them all.
    resources: GuardedCache<String, Option<Arc<Resource>>>,
    /// What administrators granted users, by (user id, resource id).
    grants: GuardedCache<(String, String), Arc<[String]>>,
    /// Per key: the last use noted, and whether it still has to be written.
    key_usage: Mutex<HashMap<String, (Timestamp, bool), crate::FastHash>>,
    /// Checks of API keys by hour and outcome, until the next flush writes them.
    usage: crate::usage::UsageTally,
    limiter: FailureLimiter,
    /// Wrong user codes at `/device` from every source together (RFC 8628 §5.1): a bound
    /// no spread of addresses gets past.
    user_code_guesses: FailureLimiter,
    requests: RequestLimiter,
    /// Registrations per source, in one-hour windows.
    registrations: RequestLimiter,
    /// Anonymous client registrations (`client_registration = open`) per source, in
    /// one-hour windows.
    client_registrations: RequestLimiter,
    /// Places for registrations in the password-hashing queue.
    registration_slots: Arc<tokio::sync::Semaphore>,
    key_ring: RwLock<Arc<KeyRing>>,
    denylist: RwLock<HashMap<String, Timestamp>>,
    seen_invalidation: AtomicI64,
    /// GitHub's secret scanning keys, when the endpoint is on.
    github_keys: Option<scanning::GithubKeySource>,
    /// Sends email; `None` when no mail server is set up.
    mailer: Option<Arc<dyn Mailer>>,
    /// Mail per recipient and per source, in one-hour windows.
    mail_limits: RequestLimiter,
    /// Logout tokens on their way to clients.
    logout_wake: logout::LogoutWake,
    /// Pushed authorization requests per client, per minute.
    pushes: RequestLimiter,
    /// Device authorizations started per client and per (client, source), per minute.
    device_starts: RequestLimiter,
    /// Fetches clients' `jwks_uri`; `None`: such clients cannot authenticate.
    jwks_fetcher: Option<Arc<dyn JwksFetcher>>,
    /// Clients' key sets: fetched ones by `uri:<jwks_uri>`, registered ones by
    /// `inline:<client id>:<updated_at>`; bounded, with a TTL.
    client_key_sets: Cache<String, Arc<client_keys::CachedKeys>>,
    /// The `jti`s of DPoP proofs this instance accepted (per instance, bounded).
    dpop_replay: crate::dpop::ReplayCache,
    /// The same `jti`s in the shared counters (Redis), when there are some.
    dpop_shared: Option<crate::dpop::SharedReplay>,
    /// Makes and checks DPoP nonces (stateless: every instance accepts every other's).
    dpop_nonces: crate::dpop::NonceMaker,
}

impl std::fmt::Debug for NetApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetApi")
            .field("store", &self.store)
            .field("settings.issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The token of the next page, if there is one.
    pub next_page_token: Option<String>,
}

/// Largest `page_size`.
pub const MAX_PAGE_SIZE: u32 = 100;
/// `page_size` when none is given.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// A validated page request.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The id after (or before) which to start.
    pub cursor: Option<String>,
    /// How many items.
    pub size: u32,
}

impl PageRequest {
    /// Validates `page_size` and decodes `page_token` (which must name an id of `prefix`).
    pub fn parse(prefix: &str, size: Option<u32>, token: Option<&str>) -> Result<Self> {
        let size = size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(Error::invalid(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let cursor = match token.filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => {
                let id = B64
                    .decode(token)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .filter(|id| looks_like_id(prefix, id))
                    .ok_or_else(|| Error::invalid("page_token", "is not a valid page token"))?;
                Some(id)
            }
        };
        Ok(Self { cursor, size })
    }

    /// Cuts an over-fetched list (`size + 1` items) into a page.
    pub fn page<T>(&self, mut items: Vec<T>, id_of: impl Fn(&T) -> &str) -> Page<T> {
        let size = self.size as usize;
        let next_page_token = if items.len() > size {
            items.truncate(size);
            items.last().map(|last| B64.encode(id_of(last)))
        } else {
            None
        };
        Page {
            items,
            next_page_token,
        }
    }

    /// What to ask storage for: one more than the page, to know if there is a next.
    pub fn fetch_limit(&self) -> u32 {
        self.size + 1
    }
}

/// Attempts of a read-check-write whose conditional write found what it read changed.
const WRITE_ATTEMPTS: usize = 3;

/// Runs `attempt` until it has written (`Some`). An attempt answers `None` when its
/// conditional write found the row changed since it read it (nothing written); after
/// [`WRITE_ATTEMPTS`] of those, `Busy` (503 with `Retry-After`): rare enough to ask for a
/// retry.
async fn until_written<T, F>(attempt: impl Fn() -> F) -> Result<T>
where
    F: Future<Output = Result<Option<T>>>,
{
    for _ in 0..WRITE_ATTEMPTS {
        if let Some(written) = attempt().await? {
            return Ok(written);
        }
    }
    Err(Error::Busy { retry_after: 1 })
}

impl NetApi {
    /// Wires the service; call [`NetApi::start`] before serving.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let capacity = settings.cache_capacity.max(1);
        let hasher = SecretHasher::new(&settings.pepper);
        let dpop_nonces = crate::dpop::NonceMaker::new(hasher.hash("netapi dpop-nonce key").0);
        Self {
            hasher,
            dpop_replay: crate::dpop::ReplayCache::default(),
            dpop_shared: None,
            dpop_nonces,
            limiter: FailureLimiter::new(settings.auth_failure_limit),
            user_code_guesses: FailureLimiter::new(
                settings
                    .auth_failure_limit
                    .saturating_mul(device::GLOBAL_GUESS_FACTOR),
            ),
            requests: RequestLimiter::default(),
            registrations: RequestLimiter::with_window(crate::limiter::MAX_SUBJECTS, 3600),
            client_registrations: RequestLimiter::with_window(crate::limiter::MAX_SUBJECTS, 3600),
            mail_limits: RequestLimiter::with_window(crate::limiter::MAX_SUBJECTS, 3600),
            mailer: None,
            logout_wake: logout::LogoutWake::default(),
            jwks_fetcher: None,
            pushes: RequestLimiter::default(),
            device_starts: RequestLimiter::default(),
            client_key_sets: Cache::builder()
                .max_capacity(capacity.min(10_000))
                .time_to_live(JWKS_CACHE_TTL)
                .build(),
            registration_slots: Arc::new(tokio::sync::Semaphore::new(
                settings
                    .registration_hash_queue
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            keys_by_hash: GuardedCache::new(capacity, RECORD_TTL),
            unknown_keys: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(NEGATIVE_TTL)
                .build_with_hasher(crate::FastHash::default()),
            verified_tokens: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(VERIFIED_TOKEN_TTL)
                .build_with_hasher(crate::FastHash::default()),
            users: GuardedCache::new(capacity, RECORD_TTL),
            clients: GuardedCache::new(capacity, RECORD_TTL),
            resources: GuardedCache::new(capacity, RECORD_TTL),
            grants: GuardedCache::new(capacity, RECORD_TTL),
            key_usage: Mutex::new(HashMap::default()),
            usage: crate::usage::UsageTally::default(),
            key_ring: RwLock::new(Arc::new(KeyRing::new(&[], settings.signing_algorithm, 0))),
            denylist: RwLock::new(HashMap::new()),
            seen_invalidation: AtomicI64::new(0),
            github_keys: settings
                .secret_scanning_github_keys
                .clone()
                .map(scanning::GithubKeySource::new),
            store,
            clock,
            settings,
        }
    }

    /// Reads GitHub's secret scanning keys (when set), checks the secret key against the
    /// database, loads signing keys (sealing any stored in plaintext by an earlier version,
    /// and making the first one if there is none) and the denylist.
    pub async fn start(&self) -> Result<()> {
        self.load_github_keys().await?;
        let now = self.now();
        self.check_secret_key().await?;
        self.seal_plaintext_signing_keys().await?;
        self.seen_invalidation
            .store(self.store.latest_invalidation().await?, Ordering::SeqCst);
        let live = self.store.list_signing_keys(now).await?;
        let mut made = false;
        for alg in self.signing_algorithms() {
            // The first start, or the first since RS256 keys came: a key of the algorithm
            // signs at once (nothing has seen a token of it yet).
            if !live.iter().any(|key| key.alg == alg) {
                self.insert_signing_key(alg, now).await?;
                made = true;
            }
        }
        if made {
            // Instances that started at the same moment learn of these keys at once.
            self.store
                .publish_invalidation(&Invalidation::SigningKeys, now)
                .await?;
        }
        self.reload_signing_keys().await?;
        let entries = self.store.active_denylist(now).await?;
        for entry in &entries {
            self.apply_invalidation(entry);
        }
        Ok(())
    }

    /// Counts requests and failures in `counters`, shared with every instance that has the
    /// same secret key (Redis): the limits then hold across instances, not per process. The
    /// counts of this process take over while `counters` fail.
    #[must_use]
    pub fn with_shared_counters(
        mut self,
        counters: Arc<dyn crate::limiter::SharedCounters>,
    ) -> Self {
        let salt = self.settings.secret_key.shared_limit_salt();
        let max = crate::limiter::MAX_SUBJECTS;
        self.limiter =
            FailureLimiter::new(self.settings.auth_failure_limit).shared(counters.clone(), salt);
        self.user_code_guesses = FailureLimiter::new(
            self.settings
                .auth_failure_limit
                .saturating_mul(device::GLOBAL_GUESS_FACTOR),
        )
        .shared(counters.clone(), salt);
        self.requests = RequestLimiter::default().shared(counters.clone(), salt, "requests");
        self.pushes = RequestLimiter::default().shared(counters.clone(), salt, "pushes");
        self.device_starts =
            RequestLimiter::default().shared(counters.clone(), salt, "device-starts");
        self.registrations =
            RequestLimiter::with_window(max, 3600).shared(counters.clone(), salt, "registrations");
        self.client_registrations = RequestLimiter::with_window(max, 3600).shared(
            counters.clone(),
            salt,
            "client-registrations",
        );
        self.mail_limits =
            RequestLimiter::with_window(max, 3600).shared(counters.clone(), salt, "mail");
        self.dpop_shared = Some(crate::dpop::SharedReplay::new(counters, salt));
        self
    }

    /// Sends email through `mailer` (verification, password reset, notices); without one,
    /// those features are off.
    #[must_use]
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Fetches the key sets of clients registered with a `jwks_uri` through `fetcher`.
    #[must_use]
    pub fn with_jwks_fetcher(mut self, fetcher: Arc<dyn JwksFetcher>) -> Self {
        self.jwks_fetcher = Some(fetcher);
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Storage, for readiness checks.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// The current key ring (published keys, signer).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.key_ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The first instance on a database records the check value of its secret key; every
    /// later one must hold the same key, or it is refused before it makes or reads a key.
    async fn check_secret_key(&self) -> Result<()> {
        let mine = self.settings.secret_key.check_value();
        let recorded = self.store.init_secret_key_check(&mine, self.now()).await?;
        if recorded != mine {
            return Err(Error::Misconfigured(
                "the secret key (secret_key_file) is not the one this database was set up \
                 with; every instance must use the same key file"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Seals signing keys that a version before sealing stored in plaintext. Each row is
    /// replaced only if it still holds that plaintext, so instances starting together agree.
    async fn seal_plaintext_signing_keys(&self) -> Result<()> {
        for stored in self.store.list_signing_keys(Timestamp::MIN).await? {
            if is_sealed(&stored.private_key) {
                continue;
            }
            let sealed = self.seal_signing_key(&stored);
            self.store
                .reseal_signing_key(&stored.kid, &stored.private_key, &sealed)
                .await?;
            tracing::info!(kid = %stored.kid, "signing key sealed with the secret key");
        }
        Ok(())
    }

    /// What binds a sealed signing key to its row.
    fn signing_key_context(key: &SigningKey) -> Vec<u8> {
        format!("signing_keys/{}/{}", key.kid, key.alg.as_str()).into_bytes()
    }

    fn seal_signing_key(&self, key: &SigningKey) -> Vec<u8> {
        self.settings
            .secret_key
            .seal(&Self::signing_key_context(key), &key.private_key)
    }

    /// The algorithms there are keys for: the server's `signing_algorithm`, and RS256, which
    /// OpenID Connect requires of every provider.
    pub fn signing_algorithms(&self) -> Vec<SigningAlgorithm> {
        let mut algs = vec![self.settings.signing_algorithm];
        if !algs.contains(&SigningAlgorithm::Rs256) {
            algs.push(SigningAlgorithm::Rs256);
        }
        algs
    }

    /// Makes, seals and stores a key of `alg`. RSA keys take long to make, so it is made on
    /// a blocking thread.
    async fn insert_signing_key(
        &self,
        alg: SigningAlgorithm,
        active_from: Timestamp,
    ) -> Result<SigningKey> {
        let private_key = tokio::task::spawn_blocking(move || generate_key(alg))
            .await
            .ok()
            .flatten()
            .ok_or_else(|| Error::Internal(format!("could not make a {} key", alg.as_str())))?;
        let mut key = SigningKey {
            kid: new_id("sig"),
            alg,
            private_key,
            created_at: self.now(),
            active_from,
            retire_at: None,
        };
        let sealed = self.seal_signing_key(&key);
        let plaintext = std::mem::replace(&mut key.private_key, sealed);
        self.store.insert_signing_key(&key).await?;
        key.private_key = plaintext;
        Ok(key)
    }

    /// Rebuilds the key ring from storage. A key that does not open with the secret key is
    /// left out (and logged) rather than stopping the others.
    pub async fn reload_signing_keys(&self) -> Result<()> {
        let now = self.now();
        let keys: Vec<SigningKey> = self
            .store
            .list_signing_keys(now)
            .await?
            .into_iter()
            .filter_map(|mut key| {
                let opened = self
                    .settings
                    .secret_key
                    .open(&Self::signing_key_context(&key), &key.private_key);
                if opened.is_none() {
                    tracing::error!(kid = %key.kid, "signing key does not open with the secret key; skipped");
                }
                key.private_key = opened?;
                Some(key)
            })
            .collect();
        let ring = Arc::new(KeyRing::new(&keys, self.settings.signing_algorithm, now));
        *self
            .key_ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ring;
        Ok(())
    }

    /// Publishes a new signing key of each algorithm now (the access-token algorithm's
    /// first); they sign after `signing_key_publish_delay`, and the keys before them stay
    /// published until every token they signed has expired.
    pub async fn rotate_signing_keys(&self) -> Result<Vec<SigningKey>> {
        let now = self.now();
        let active_from = now + self.settings.signing_key_publish_delay;
        let mut keys = Vec::new();
        for alg in self.signing_algorithms() {
            keys.push(self.insert_signing_key(alg, active_from).await?);
        }
        let longest_token = self.settings.access_token_ttl.max(self.id_token_ttl());
        // Other instances start signing with the new keys at their next reload (at most a
        // minute late), so the old keys stay published that much longer. The new keys all
        // begin at `active_from`, the first with the lowest kid, so retiring what comes
        // before it spares the rest.
        if let Some(first) = keys.first() {
            self.store
                .retire_signing_keys(&first.kid, active_from + longest_token + KEY_RELOAD_MARGIN)
                .await?;
        }
        self.store
            .publish_invalidation(&Invalidation::SigningKeys, now)
            .await?;
        self.reload_signing_keys().await?;
        Ok(keys)
    }

    /// ID tokens live as long as access tokens.
    pub(crate) fn id_token_ttl(&self) -> i64 {
        self.settings.access_token_ttl
    }

    /// Records an audit event, with its webhook deliveries if webhooks receive it; a failure
    /// to record is logged, not fatal to the request.
    pub(crate) async fn audit(
        &self,
        user_id: Option<&str>,
        kind: &str,
        ip: Option<&str>,
        detail: serde_json::Value,
    ) {
        let event = self.audit_event(user_id, kind, ip, detail);
        let outbox = webhooks::outbox_entry(&event);
        if let Err(err) = self.store.record_event(&event, outbox.as_ref()).await {
            tracing::warn!(error = %err, kind, "could not record audit event");
        }
    }

    pub(crate) fn audit_event(
        &self,
        user_id: Option<&str>,
        kind: &str,
        ip: Option<&str>,
        detail: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            id: new_id("evt"),
            user_id: user_id.map(str::to_owned),
            kind: kind.to_owned(),
            ip: ip.map(str::to_owned),
            detail: detail.to_string(),
            created_at: self.now(),
        }
    }

    /// Tells every process (this one at once, others through storage) to drop an entry.
    pub(crate) async fn invalidate(&self, invalidation: Invalidation) -> Result<()> {
        self.apply_invalidation(&invalidation);
        self.store
            .publish_invalidation(&invalidation, self.now())
            .await?;
        Ok(())
    }

    fn apply_invalidation(&self, invalidation: &Invalidation) {
        match invalidation {
            Invalidation::ApiKey(hash) => self.keys_by_hash.invalidate(hash),
            Invalidation::User(id) => self.users.invalidate(id),
            Invalidation::Client(id) => self.clients.invalidate(id),
            Invalidation::AccessToken { jti, expires_at } => {
                self.deny(format!("jti:{jti}"), *expires_at);
            }
            Invalidation::Family {
                family_id,
                expires_at,
            } => self.deny(format!("sid:{family_id}"), *expires_at),
            Invalidation::SigningKeys => {}
            Invalidation::Resource(_) => self.resources.invalidate_all(),
            Invalidation::Grant {
                user_id,
                resource_id,
            } => self
                .grants
                .invalidate(&(user_id.clone(), resource_id.clone())),
        }
    }

    fn deny(&self, entry: String, expires_at: Timestamp) {
        self.denylist
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(entry, expires_at);
    }

    /// Whether `kind:id` (`jti:...` or `sid:...`) is on the denylist.
    pub(crate) fn is_denied(&self, kind: &str, id: &str) -> bool {
        let denylist = self
            .denylist
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The usual case, nothing revoked, needs no key built.
        !denylist.is_empty() && denylist.contains_key(&format!("{kind}:{id}"))
    }

    /// Applies what other processes published since the last poll. Run every few hundred
    /// milliseconds; a missed poll only delays, never loses, an invalidation.
    pub async fn poll_invalidations(&self) -> Result<()> {
        let seen = self.seen_invalidation.load(Ordering::SeqCst);
        let changes = self.store.invalidations_since(seen).await?;
        let mut keys_changed = false;
        let mut newest = seen;
        for (seq, change) in &changes {
            keys_changed |= matches!(change, Invalidation::SigningKeys);
            self.apply_invalidation(change);
            newest = newest.max(*seq);
        }
        self.seen_invalidation.fetch_max(newest, Ordering::SeqCst);
        if keys_changed {
            self.reload_signing_keys().await?;
        }
        Ok(())
    }

    /// Writes batched `last_used_at` times and usage counts. Run about once a minute and at
    /// shutdown.
    pub async fn flush_usage(&self) -> Result<()> {
        let now = self.now();
        let batch: Vec<(String, Timestamp)> = {
            let mut usage = self
                .key_usage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let batch = usage
                .iter_mut()
                .filter(|(_, (_, dirty))| *dirty)
                .map(|(id, (at, dirty))| {
                    *dirty = false;
                    (id.clone(), *at)
                })
                .collect();
            // Keys unused for an hour are forgotten; their next use is written again.
            usage.retain(|_, (at, dirty)| *dirty || now - *at < 3600);
            batch
        };
        if !batch.is_empty() {
            self.store.record_api_key_use(&batch).await?;
        }
        let counts = self.usage.take();
        if !counts.is_empty()
            && let Err(err) = self.store.add_api_key_usage(&counts).await
        {
            // Kept for the next flush: a database that is away for a while loses no count.
            self.usage.restore(counts);
            return Err(err.into());
        }
        Ok(())
    }

    /// Forgets expired denylist entries and finished limiter windows held in memory; also
    /// reloads signing keys so that a key whose time to sign has come starts signing. (Rows
    /// in storage go with [`NetApi::sweep_retention`].)
    pub async fn housekeeping(&self) -> Result<()> {
        let now = self.now();
        self.limiter.sweep(now);
        self.user_code_guesses.sweep(now);
        self.requests.sweep(now);
        self.registrations.sweep(now);
        self.client_registrations.sweep(now);
        self.pushes.sweep(now);
        self.device_starts.sweep(now);
        self.mail_limits.sweep(now);
        self.denylist
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, expires_at| *expires_at > now);
        self.reload_signing_keys().await
    }

    /// How long what storage keeps is kept, from the settings.
    pub fn retention(&self) -> RetentionSettings {
        RetentionSettings {
            audit_retention_days: self.settings.audit_retention_days,
            usage_retention_days: self.settings.usage_retention_days,
            webhook_delivery_retention_days: self.settings.webhook_delivery_retention_days,
            session_ttl: self.settings.session_ttl,
        }
    }

    /// Deletes every stored row that is over now (expired, or older than its retention
    /// setting), `batch` rows per statement; logs and counts (`netapi_retention_deleted_rows_total`)
    /// what went, per table, and warns of a table that could not be swept.
    pub async fn sweep_retention(&self, batch: u32) -> Swept {
        let swept = retention::sweep(
            self.store.as_ref(),
            &self.retention(),
            &Expired::ALL,
            self.now(),
            batch,
        )
        .await;
        for (kind, deleted) in &swept.deleted {
            metrics::counter!("netapi_retention_deleted_rows_total", "table" => kind.name())
                .increment(*deleted);
            tracing::info!(table = kind.name(), deleted, "retention: rows deleted");
        }
        for (kind, err) in &swept.failed {
            tracing::warn!(table = kind.name(), error = %err, "retention: sweep failed");
        }
        swept
    }

    /// Counts a request against the caller's per-minute limit (its key's or client's own, or
    /// the default). `None` when no limit applies.
    pub async fn check_rate(&self, caller: &Principal) -> Result<Option<RateStatus>> {
        let Some((subject, own_limit)) = &caller.rate else {
            return Ok(None);
        };
        self.hit_rate(subject, *own_limit).await
    }

    /// Counts a request of `subject` (`key:<id>` or `client:<id>`) against its own limit, or
    /// the default.
    pub(crate) async fn hit_rate(
        &self,
        subject: &str,
        own_limit: Option<u32>,
    ) -> Result<Option<RateStatus>> {
        let limit = own_limit.unwrap_or(self.settings.rate_limit_per_minute);
        if limit == 0 {
            return Ok(None);
        }
        match self.requests.hit(subject, limit, self.now()).await {
            Ok(status) => Ok(Some(status)),
            Err(status) => Err(Error::RequestRateLimited(status)),
        }
    }

    /// Checks a requested per-minute limit: anyone may lower their own, only administrators
    /// may raise one above the default (or turn it off with 0).
    pub(crate) fn validate_rate_limit(
        &self,
        caller: &Principal,
        field: &str,
        limit: Option<u32>,
    ) -> Result<()> {
        let default = self.settings.rate_limit_per_minute;
        match limit {
            Some(limit)
                if !caller.is_admin() && default != 0 && (limit == 0 || limit > default) =>
            {
                Err(Error::PermissionDenied {
                    scope: Some(crate::scope::Scope::Admin),
                    message: format!(
                        "Only administrators may set '{field}' above the default of {default} per minute."
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// What credential checks know of a user: `None` for an unknown or disabled one, whose
    /// keys, tokens and clients are refused.
    async fn user_facts(&self, user_id: &str) -> Result<Option<UserFacts>> {
        if let Some(facts) = self.users.get(user_id) {
            return Ok(facts);
        }
        let ticket = self.users.ticket();
        let facts = self
            .store
            .get_user(user_id)
            .await?
            .filter(|user: &User| user.disabled_at.is_none())
            .map(|user: User| UserFacts {
                role: user.role,
                user: Arc::new(user),
            });
        self.users.insert(user_id.to_owned(), facts.clone(), ticket);
        Ok(facts)
    }
}
