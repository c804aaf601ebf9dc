//! The records Net API keeps. Secrets appear here only as hashes.

use crate::clock::Timestamp;
use crate::scope::{Role, Scopes};
use crate::secret::SecretHash;
use std::fmt;

/// A person with an account.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// `usr_...`
    pub id: String,
    /// Lower-cased, unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Whether the user proved they receive mail at `email` (a verification link); a new
    /// address starts unverified.
    pub email_verified: bool,
    /// When the account was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Set while an administrator has disabled the account: every credential is refused.
    pub disabled_at: Option<Timestamp>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// An API key; the key itself is only known to its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `key_...`
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// A label chosen by the owner.
    pub name: String,
    /// The prefix and first four random characters, for recognition.
    pub prefix: String,
    /// The last four characters, for recognition.
    pub last_four: String,
    /// HMAC of the key; the lookup index.
    pub hash: SecretHash,
    /// What the key may do (further limited by the owner's role).
    pub scopes: Scopes,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last use, kept to within about a minute.
    pub last_used_at: Option<Timestamp>,
    /// Hard expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// Set once the key is revoked.
    pub revoked_at: Option<Timestamp>,
    /// Requests per minute, overriding the server's default.
    pub rate_limit: Option<u32>,
    /// The OAuth client whose access token created the key (carried over by rotation): the
    /// key is revoked when the user withdraws that client's consent or the client is deleted.
    pub created_by_client: Option<String>,
    /// The resource the key is for; `None`: Net API's own (whose scopes are `scopes`).
    pub resource: Option<ResourceRef>,
    /// The key's scopes on `resource` (empty for Net API's own keys).
    pub resource_scopes: Vec<String>,
    /// A JSON object (at most 4 KiB) returned wherever the key is verified.
    pub metadata: Option<String>,
}

/// Which resource a credential is for: its id and identifier, both fixed for its lifetime
/// (an identifier is never changed nor reused), so keeping both costs no lookup to show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// `res_...`
    pub id: String,
    /// The identifier (a token's `aud`).
    pub identifier: String,
}

/// One scope of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    /// `^[a-z][a-z0-9_.:-]{0,63}$`, unique within the resource.
    pub name: String,
    /// What it allows, shown on the consent page.
    pub description: String,
}

/// An API of the operator's that Net API guards (RFC 8707 "resource", RFC 9728 "protected
/// resource"). A deleted one stays as a tombstone so that its identifier is never reused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    /// `res_...`
    pub id: String,
    /// The absolute URI credentials are made for (a token's `aud`); never changes.
    pub identifier: String,
    /// A name for people.
    pub name: String,
    /// Every scope a credential for it may carry.
    pub scopes: Vec<ResourceScope>,
    /// The scopes every user holds; others only by an administrator's grant.
    pub self_service_scopes: Vec<String>,
    /// Whether users may make API keys for it.
    pub allow_api_keys: bool,
    /// Lifetime of its access tokens, seconds; the server's when `None`.
    pub access_token_ttl: Option<u32>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Deletion time: from then on nothing made for it works.
    pub deleted_at: Option<Timestamp>,
}

impl Resource {
    /// Whether `name` is one of its scopes.
    pub fn has_scope(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.name == name)
    }

    /// Its id and identifier.
    pub fn reference(&self) -> ResourceRef {
        ResourceRef {
            id: self.id.clone(),
            identifier: self.identifier.clone(),
        }
    }
}

/// Scopes of a resource an administrator granted a user, beyond the self-service ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceGrant {
    /// The user.
    pub user_id: String,
    /// The resource.
    pub resource_id: String,
    /// The granted scope names.
    pub scopes: Vec<String>,
    /// When the grant last changed.
    pub updated_at: Timestamp,
}

/// A recorded security event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// `evt_...`
    pub id: String,
    /// The user concerned, when known.
    pub user_id: Option<String>,
    /// What happened, e.g. `api_key.created`.
    pub kind: String,
    /// The source address of the request.
    pub ip: Option<String>,
    /// A JSON object with the particulars (never a secret).
    pub detail: String,
    /// When.
    pub created_at: Timestamp,
}

/// How a client authenticates at the token endpoint (RFC 7591 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the id and secret.
    SecretBasic,
    /// The id and secret in the form body.
    SecretPost,
    /// A public client: no secret.
    None,
    /// A JWT signed with one of the client's own keys (`jwks` or `jwks_uri`), RFC 7523 §2.2
    /// and OpenID Connect Core §9; no secret.
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The RFC 7591 name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SecretBasic => "client_secret_basic",
            Self::SecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parses the RFC 7591 name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_basic" => Some(Self::SecretBasic),
            "client_secret_post" => Some(Self::SecretPost),
            "none" => Some(Self::None),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            _ => None,
        }
    }
}

/// An OAuth 2.0 grant type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// `authorization_code`
    AuthorizationCode,
    /// `client_credentials`
    ClientCredentials,
    /// `refresh_token`
    RefreshToken,
    /// `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693)
    TokenExchange,
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628).
    DeviceCode,
}

impl GrantType {
    /// Every grant type the server supports.
    pub const ALL: [Self; 5] = [
        Self::AuthorizationCode,
        Self::ClientCredentials,
        Self::RefreshToken,
        Self::TokenExchange,
        Self::DeviceCode,
    ];

    /// The RFC 6749 name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    /// Parses the RFC 6749 name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// A registered OAuth 2.0 client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The `client_id` (`cli_...`).
    pub id: String,
    /// The user who registered it; its tokens act for this user in `client_credentials`.
    /// `None` for a client registered anonymously (`client_registration = open`) or with an
    /// initial access token: it acts for no one, so it never uses `client_credentials`.
    pub owner_id: Option<String>,
    /// Shown on the consent page.
    pub name: String,
    /// Compared exactly.
    pub redirect_uris: Vec<String>,
    /// Grants it may use.
    pub grant_types: Vec<GrantType>,
    /// The most its tokens may carry.
    pub scopes: Scopes,
    /// How it authenticates.
    pub auth_method: ClientAuthMethod,
    /// HMAC of the secret; `None` for public clients.
    pub secret_hash: Option<SecretHash>,
    /// Requests per minute for its access tokens, overriding the server's default.
    pub rate_limit: Option<u32>,
    /// Marked trusted by an administrator: `/oauth/authorize` may redirect errors to it before
    /// the user has seen the request (RFC 9700 §4.11.2); others get a page with a link.
    pub trusted: bool,
    /// Identifiers of the resources it may ask tokens for (RFC 8707), besides Net API's own.
    pub resources: Vec<String>,
    /// The scope names of those resources its tokens may carry.
    pub resource_scopes: Vec<String>,
    /// Identifiers of the resources (Net API's own issuer among them when listed) it may
    /// obtain tokens for by token exchange (RFC 8693); empty: it may not exchange.
    pub token_exchange_resources: Vec<String>,
    /// `id_token_signed_response_alg`; `None` for clients registered before it existed, which
    /// get the server's `signing_algorithm`, as they always did.
    pub id_token_signed_response_alg: Option<SigningAlgorithm>,
    /// Its logout metadata (OpenID Connect RP-Initiated and Back-Channel Logout).
    pub logout: ClientLogout,
    /// `jwks`: the client's public keys (a JWK Set, JSON text), for `private_key_jwt`.
    pub jwks: Option<String>,
    /// `jwks_uri`: where its JWK Set is fetched from, for `private_key_jwt`.
    pub jwks_uri: Option<String>,
    /// `require_pushed_authorization_requests` (RFC 9126 §6): `/oauth/authorize` takes only
    /// a `request_uri` from `/oauth/par`.
    pub require_par: bool,
    /// `dpop_bound_access_tokens` (RFC 9449 §5.2): every token request of the client must
    /// carry a DPoP proof, so that its access tokens are always bound to a key.
    pub dpop_bound_access_tokens: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// How a client takes part in logout: OpenID Connect RP-Initiated Logout 1.0
/// (`post_logout_redirect_uris`) and Back-Channel Logout 1.0 (`backchannel_logout_uri`,
/// `backchannel_logout_session_required`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientLogout {
    /// Where `/oauth/logout` may send the browser afterwards; compared exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are POSTed when a session it received an ID token in ends.
    pub backchannel_logout_uri: Option<String>,
    /// Whether its logout tokens must carry `sid` (they always do when the session has one).
    pub backchannel_logout_session_required: bool,
}
/// An authorization request pushed to `/oauth/par` (RFC 9126), kept under the hash of its
/// `request_uri` until used or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRequest {
    /// HMAC of the random part of the `request_uri`.
    pub hash: SecretHash,
    /// The client that pushed it.
    pub client_id: String,
    /// The authorization request's parameters, a JSON array of `[name, value]` pairs.
    pub params: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// After this it is refused.
    pub expires_at: Timestamp,
}

impl OAuthClient {
    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether the client has no secret.
    pub fn is_public(&self) -> bool {
        self.auth_method == ClientAuthMethod::None
    }

    /// Whether `uri` is one of its redirect URIs: exactly, or, for a public client's
    /// `http://127.0.0.1/...` and `http://[::1]/...`, on any port (RFC 8252 §7.3: a native
    /// app listens on whatever port the system gives it). `localhost` stays exact, as every
    /// other URI: RFC 8252 §8.3 recommends the IP literals.
    pub fn accepts_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| registered == uri)
            || (self.is_public()
                && self
                    .redirect_uris
                    .iter()
                    .any(|registered| same_loopback_but_port(registered, uri)))
    }

    /// Its `scope`: Net API's own scope names, then those of its resources.
    pub fn scopes_string(&self) -> String {
        let mut names: Vec<&str> = self.scopes.names();
        for name in &self.resource_scopes {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names.join(" ")
    }
}

/// Whether `registered` is an `http` loopback IP literal URI and `presented` is the same URI
/// but for the port. `presented` must be in normal form, so that what the browser is sent to
/// is exactly what was compared.
fn same_loopback_but_port(registered: &str, presented: &str) -> bool {
    let without_port = |uri: &str| {
        let mut parsed = url::Url::parse(uri).ok()?;
        let loopback =
            parsed.scheme() == "http" && matches!(parsed.host_str(), Some("127.0.0.1" | "[::1]"));
        // As registration checks it: the URI, or the URI with the root path added.
        let normal = parsed.as_str() == uri || parsed.as_str().strip_suffix('/') == Some(uri);
        (loopback && normal && parsed.set_port(None).is_ok()).then_some(parsed)
    };
    match (without_port(registered), without_port(presented)) {
        (Some(registered), Some(presented)) => registered == presented,
        _ => false,
    }
}

/// A refresh token. Tokens descended from one grant share a `family_id`; reuse of a rotated
/// token revokes the whole family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// HMAC of the token.
    pub hash: SecretHash,
    /// The grant it descends from (also the `sid` of its access tokens).
    pub family_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user it acts for.
    pub user_id: String,
    /// Its scopes.
    pub scopes: Scopes,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// Idle expiry: unused past this, it is dead.
    pub expires_at: Timestamp,
    /// Absolute expiry of the whole family.
    pub family_expires_at: Timestamp,
    /// When the user authenticated (for OpenID Connect `auth_time`).
    pub auth_time: Timestamp,
    /// How the user authenticated (for OpenID Connect `amr` and `acr`).
    pub amr: Amr,
    /// When it was exchanged for a successor.
    pub rotated_at: Option<Timestamp>,
    /// When it (or its family) was revoked.
    pub revoked_at: Option<Timestamp>,
    /// Random, kept only here: its successor is derived from it and the token, so that an
    /// exchange repeated within the grace period gets the same successor, and no one holding
    /// only the token can work the successor out. `None` for tokens stored before migration
    /// 0004, whose successors are random.
    pub successor_key: Option<crate::secret::DerivationKey>,
    /// The resource its access tokens are for (`resource_scopes` on it); `None`: Net API's own.
    pub resource_id: Option<String>,
    /// Its scopes on `resource_id`.
    pub resource_scopes: Vec<String>,
    /// The `sid` of the browser session its grant was approved in (for its ID tokens);
    /// `None` for tokens issued before sessions had one.
    pub sid: Option<String>,
    /// The thumbprint of the DPoP key it is bound to (public clients that used DPoP): it is
    /// exchanged only with a proof of that key, and so are its successors.
    pub dpop_jkt: Option<String>,
}

/// What happened when a refresh token was presented for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The successor was stored; here is the token that was exchanged.
    Rotated(RefreshToken),
    /// Used again after rotation and past the grace period: the family is now revoked.
    ReuseDetected(RefreshToken),
    /// No such token, or it is revoked or expired.
    Invalid,
}

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// HMAC of the code.
    pub hash: SecretHash,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who approved it.
    pub user_id: String,
    /// The exact `redirect_uri` of the authorization request.
    pub redirect_uri: String,
    /// Whether the authorization request named `redirect_uri` itself (rather than relying on
    /// the client's single registered one): then the token request must repeat it (RFC 6749
    /// §4.1.3).
    pub redirect_uri_in_request: bool,
    /// The approved scopes.
    pub scopes: Scopes,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// OpenID Connect nonce.
    pub nonce: Option<String>,
    /// When the user authenticated.
    pub auth_time: Timestamp,
    /// How the user authenticated.
    pub amr: Amr,
    /// The family its tokens will belong to; revoked if the code is replayed.
    pub family_id: String,
    /// Issue time.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Set when exchanged.
    pub used_at: Option<Timestamp>,
    /// The resource of the request (RFC 8707); `None`: Net API's own.
    pub resource_id: Option<String>,
    /// The approved scopes on `resource_id`.
    pub resource_scopes: Vec<String>,
    /// The `sid` of the browser session it was approved in.
    pub sid: Option<String>,
    /// The DPoP key thumbprint the authorization request named (`dpop_jkt`, RFC 9449 §10):
    /// the code is exchanged only with a proof of that key.
    pub dpop_jkt: Option<String>,
}

/// Where a device authorization (RFC 8628) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the user.
    Pending,
    /// The user approved it.
    Approved,
    /// The user denied it.
    Denied,
}

impl DeviceStatus {
    /// As stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
        }
    }

    /// Parses [`DeviceStatus::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A device authorization request (RFC 8628): a device code the client polls with and a
/// user code a person types at `/device`. Both are stored only as HMACs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// HMAC of the device code (the client's secret).
    pub device_code_hash: SecretHash,
    /// HMAC of the user code, normalised (upper case, no dash); unique.
    pub user_code_hash: SecretHash,
    /// The client that asked.
    pub client_id: String,
    /// Requested scopes of Net API's own (none for another resource).
    pub scopes: Scopes,
    /// The resource of the request (RFC 8707); `None`: Net API's own.
    pub resource_id: Option<String>,
    /// Requested scopes on `resource_id`.
    pub resource_scopes: Vec<String>,
    /// Issue time.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Seconds the client must wait between polls; grows with each `slow_down`.
    pub interval: i64,
    /// The last poll at the token endpoint.
    pub last_polled_at: Option<Timestamp>,
    /// Pending, approved or denied.
    pub status: DeviceStatus,
    /// The user who approved or denied it.
    pub user_id: Option<String>,
    /// When that user authenticated.
    pub auth_time: Option<Timestamp>,
    /// How that user authenticated.
    pub amr: Option<Amr>,
    /// When the user decided.
    pub decided_at: Option<Timestamp>,
    /// The family its tokens belong to; revoked if the device code is redeemed again.
    pub family_id: String,
    /// Set when the device code was exchanged for tokens.
    pub redeemed_at: Option<Timestamp>,
}

/// A person's decision on a device authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDecision {
    /// Who decided.
    pub user_id: String,
    /// Approved or denied.
    pub status: DeviceStatus,
    /// When that user authenticated.
    pub auth_time: Timestamp,
    /// How that user authenticated.
    pub amr: Amr,
}

/// What a poll of a device authorization found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePoll {
    /// The authorization, as it is after the poll (its interval grown when too fast).
    pub authorization: DeviceAuthorization,
    /// The previous poll was less than the interval ago.
    pub too_fast: bool,
}

/// A user's remembered approval of a client's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Who approved.
    pub user_id: String,
    /// Which client.
    pub client_id: String,
    /// What was approved.
    pub scopes: Scopes,
    /// What was approved on other resources: `(resource id, scope name)` pairs.
    pub resource_scopes: Vec<(String, String)>,
    /// When.
    pub granted_at: Timestamp,
}

/// What an emailed link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailPurpose {
    /// Proves the user receives mail at an address.
    VerifyEmail,
    /// Lets the user set a new password.
    ResetPassword,
}

impl EmailPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "verify_email" => Some(Self::VerifyEmail),
            "reset_password" => Some(Self::ResetPassword),
            _ => None,
        }
    }
}

/// A single-use link mailed to a user; only the hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailToken {
    /// `eml_...`
    pub id: String,
    /// What it is for.
    pub purpose: EmailPurpose,
    /// Whose it is.
    pub user_id: String,
    /// The address it was sent to (the one a verification link verifies).
    pub email: String,
    /// HMAC of the link's secret.
    pub hash: SecretHash,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was used, if it was.
    pub used_at: Option<Timestamp>,
}

/// An administrator's invitation to register, used at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// `inv_...`
    pub id: String,
    /// HMAC of the token (`napiv_...`), which is shown once.
    pub token_hash: SecretHash,
    /// The only email that may register with it, if bound to one (lower-cased).
    pub email: Option<String>,
    /// The role the new user gets.
    pub role: Role,
    /// The administrator who made it.
    pub created_by: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When a registration used it.
    pub used_at: Option<Timestamp>,
    /// The user that registration made.
    pub used_by: Option<String>,
}

/// What a client registered at `/oauth/register` told about itself besides what every client
/// has (RFC 7591 §2), kept to be shown back. Stored as a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientMetadata {
    /// `logo_uri`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// `client_uri`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// `policy_uri`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// `tos_uri`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// `contacts`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// `software_id`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// `software_version`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
}

impl ClientMetadata {
    /// As stored: a JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads what [`Self::to_json`] wrote.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// A client registered through `/oauth/register`: what RFC 7592 management needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    /// The client.
    pub client_id: String,
    /// HMAC of its registration access token (`napir_...`), shown once per issue.
    pub token_hash: SecretHash,
    /// Its RFC 7591 metadata beyond the client record.
    pub metadata: ClientMetadata,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// An initial access token (RFC 7591 §3) an administrator made: one registration when
/// `client_registration = admin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    /// `rgt_...`
    pub id: String,
    /// HMAC of the token (`napit_...`), which is shown once.
    pub token_hash: SecretHash,
    /// The administrator who made it (`None`: the operator at the command line).
    pub created_by: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When a registration used it.
    pub used_at: Option<Timestamp>,
}

/// A browser session of the login and portal pages. Its `Debug` leaves the CSRF token out.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// HMAC of the session cookie value.
    pub hash: SecretHash,
    /// Its OpenID Connect `sid`: random, neither the cookie nor its hash; empty for a session
    /// an instance older than migration 0018 started (it has none).
    pub sid: String,
    /// Signed-in user.
    pub user_id: String,
    /// When the user typed the password.
    pub auth_time: Timestamp,
    /// How the user signed in.
    pub amr: Amr,
    /// CSRF token bound to this session.
    pub csrf_token: String,
    /// Expiry.
    pub expires_at: Timestamp,
    /// When it started.
    pub created_at: Timestamp,
    /// When it was last used (written at most once a minute).
    pub last_seen_at: Timestamp,
    /// The browser's `User-Agent` when it started, cut to [`MAX_USER_AGENT_LEN`] bytes.
    pub user_agent: Option<String>,
    /// The address it started from.
    pub source: Option<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.sid)
            .field("user_id", &self.user_id)
            .field("auth_time", &self.auth_time)
            .field("amr", &self.amr)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The longest `User-Agent` a session keeps, bytes.
pub const MAX_USER_AGENT_LEN: usize = 256;

/// How a user authenticated: the methods of OpenID Connect's `amr` claim (RFC 8176).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Amr {
    /// A password alone.
    #[default]
    Password,
    /// A password and a one-time code (TOTP or a recovery code).
    PasswordOtp,
    /// A passkey alone, with user verification (its PIN or biometric): a key held by the
    /// user's device and something the device checks, so two factors.
    Passkey,
    /// A password and a passkey as the second factor.
    PasswordPasskey,
}

impl Amr {
    /// As stored: the `amr` values separated by spaces.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::PasswordOtp => "pwd otp",
            Self::Passkey => "hwk user mfa",
            Self::PasswordPasskey => "pwd hwk mfa",
        }
    }

    /// Parses [`Amr::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pwd" => Some(Self::Password),
            "pwd otp" => Some(Self::PasswordOtp),
            "hwk user mfa" => Some(Self::Passkey),
            "pwd hwk mfa" => Some(Self::PasswordPasskey),
            _ => None,
        }
    }

    /// The `amr` claim's values.
    pub fn values(self) -> Vec<&'static str> {
        self.as_str().split(' ').collect()
    }

    /// The `acr` claim: whether more than one factor was used.
    pub fn acr(self) -> &'static str {
        match self {
            Self::Password => ACR_PASSWORD,
            Self::PasswordOtp | Self::Passkey | Self::PasswordPasskey => ACR_MFA,
        }
    }

    /// Whether the sign-in used more than one factor.
    pub fn multi_factor(self) -> bool {
        self.acr() == ACR_MFA
    }
}

/// The `acr` of a sign-in with a single factor.
pub const ACR_PASSWORD: &str = "urn:netapi:acr:pwd";
/// The `acr` of a sign-in with a second factor.
pub const ACR_MFA: &str = "urn:netapi:acr:mfa";

/// A user's TOTP authenticator (RFC 6238). Its secret is sealed under the secret key, bound
/// to the user: it must be read to check a code, so it cannot be hashed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// The user.
    pub user_id: String,
    /// The sealed secret.
    pub sealed_secret: Vec<u8>,
    /// When enrolment started.
    pub created_at: Timestamp,
    /// When the first code confirmed it; until then it is not asked for at sign-in.
    pub confirmed_at: Option<Timestamp>,
    /// The last time step whose code was accepted: it and earlier steps are refused.
    pub last_used_step: Option<i64>,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_used_step", &self.last_used_step)
            .finish_non_exhaustive()
    }
}

/// Token signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// Ed25519, the default.
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 on RSA-2048 keys: the algorithm every OpenID Connect
    /// relying party can verify.
    Rs256,
}

impl SigningAlgorithm {
    /// The JOSE name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// Parses the JOSE name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }
}

/// A token signing key. The private half is kept in storage (the one secret not stored as a
/// hash, since it must sign).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// Key id (`kid`).
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlgorithm,
    /// The private key bytes.
    pub private_key: Vec<u8>,
    /// Creation time (published from then).
    pub created_at: Timestamp,
    /// Signs from this time on (published earlier so verifiers learn it first).
    pub active_from: Timestamp,
    /// Unpublished after this time, when nothing it signed can still be valid.
    pub retire_at: Option<Timestamp>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("active_from", &self.active_from)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

/// An endpoint that receives signed events (issue 14). Only administrators manage them.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `whk_...`
    pub id: String,
    /// The administrator who created it.
    pub created_by: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// The signing secret, sealed under the secret key: it must be recovered to sign, and a
    /// copy of the database alone must not be enough to forge deliveries.
    pub sealed_secret: Vec<u8>,
    /// Creation time.
    pub created_at: Timestamp,
    /// When it was deleted; deliveries stop, its history stays.
    pub disabled_at: Option<Timestamp>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet; attempted again at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryStatus {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The status of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event on its way to one webhook (the outbox row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// `whd_...`
    pub id: String,
    /// The webhook it goes to.
    pub webhook_id: String,
    /// The audit event it tells of (`evt_...`).
    pub event_id: String,
    /// The event type, e.g. `api_key.revoked`.
    pub event_type: String,
    /// The JSON body sent, `{"id", "type", "created_at", "data"}` (never a secret).
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When a pending delivery is due (or its lease ends, while an instance delivers it).
    pub next_attempt_at: Timestamp,
    /// The HTTP status of the last answer, if there was one.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed: a short excerpt, never a whole response body.
    pub last_error: Option<String>,
    /// Creation time (the event's).
    pub created_at: Timestamp,
    /// When the receiver accepted it.
    pub delivered_at: Option<Timestamp>,
}

/// A delivery claimed for an attempt, with what the attempt needs of its webhook (read in
/// the same statement, so that the worker reads no webhook row per delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub delivery: WebhookDelivery,
    /// The webhook's URL.
    pub url: String,
    /// The webhook's signing secret, sealed under the secret key.
    pub sealed_secret: Vec<u8>,
}

/// A logout token still to be delivered (OpenID Connect Back-Channel Logout 1.0): which
/// client to tell about which user's ended session. The token itself is not stored: each
/// attempt signs a fresh one (new `iat`, `exp`, `jti`), so that a retry an hour later still
/// carries a token of two minutes, and nothing secret waits in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogout {
    /// `lgd_` and a random part.
    pub id: String,
    /// The client told; its current `backchannel_logout_uri` is read at each attempt.
    pub client_id: String,
    /// The user (`sub`).
    pub user_id: String,
    /// The session's `sid`, empty when it had none.
    pub sid: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due; while an attempt holds the delivery, the end of its
    /// lease.
    pub next_attempt_at: Timestamp,
    /// When the session ended.
    pub created_at: Timestamp,
}

/// An event for the webhooks subscribed to its type: written in the transaction that records
/// its audit event, so that no event is delivered without being recorded, or lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event type, e.g. `user.created`.
    pub event_type: String,
    /// The JSON body every subscribed webhook receives.
    pub payload: String,
}

/// How one delivery attempt ended, to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The status after this attempt.
    pub status: DeliveryStatus,
    /// When to try again (pending only).
    pub next_attempt_at: Timestamp,
    /// The HTTP status of the answer, if any.
    pub status_code: Option<u16>,
    /// A short excerpt of why it failed.
    pub error: Option<String>,
    /// When the attempt ended.
    pub at: Timestamp,
}

/// A user's passkey (a WebAuthn credential). Holds a public key and the authenticator's
/// signature counter, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCredential {
    /// Its id here (`pk_...`).
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The authenticator's credential id, base64url without padding; unique.
    pub credential_id: String,
    /// What the user calls it.
    pub name: String,
    /// The credential as webauthn-rs keeps it (JSON): public key, counter, flags.
    pub passkey: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last signed someone in.
    pub last_used_at: Option<Timestamp>,
}

/// A WebAuthn ceremony waiting for the browser's answer: the state webauthn-rs needs to check
/// it (the challenge among it), found by a hash of what binds it to one browser, taken once.
#[derive(Clone, PartialEq, Eq)]
pub struct WebauthnCeremony {
    /// HMAC of the purpose and the browser's binding (its session or sign-in form).
    pub hash: SecretHash,
    /// `register`, `second_factor` or `passwordless`.
    pub purpose: String,
    /// The user it is for; `None` for a passwordless sign-in, whose user is not known yet.
    pub user_id: Option<String>,
    /// webauthn-rs's state (JSON).
    pub state: String,
    /// After this it is refused.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for WebauthnCeremony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebauthnCeremony")
            .field("purpose", &self.purpose)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(auth_method: ClientAuthMethod, redirect_uris: &[&str]) -> OAuthClient {
        OAuthClient {
            id: "cli_a".to_owned(),
            owner_id: Some("usr_a".to_owned()),
            name: "a".to_owned(),
            redirect_uris: redirect_uris.iter().map(|u| (*u).to_owned()).collect(),
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: Scopes::EMPTY,
            auth_method,
            secret_hash: None,
            rate_limit: None,
            trusted: false,
            resources: Vec::new(),
            resource_scopes: Vec::new(),
            token_exchange_resources: Vec::new(),
            id_token_signed_response_alg: None,
            logout: Default::default(),
            jwks: None,
            jwks_uri: None,
            require_par: false,
            dpop_bound_access_tokens: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_sessions_debug_shows_no_secret() {
        let session = Session {
            hash: SecretHash([7; 32]),
            sid: "sid-1".to_owned(),
            user_id: "usr_a".to_owned(),
            auth_time: 1,
            amr: Amr::default(),
            csrf_token: "csrf-secret-value".to_owned(),
            expires_at: 2,
            created_at: 1,
            last_seen_at: 1,
            user_agent: None,
            source: None,
        };
        let shown = format!("{session:?}");
        assert!(shown.contains("usr_a"), "{shown}");
        assert!(!shown.contains("csrf-secret-value"), "{shown}");
        assert!(!shown.contains("[7, 7"), "{shown}");
    }

    #[test]
    fn loopback_ip_redirects_of_public_clients_match_on_any_port() {
        let native = client(
            ClientAuthMethod::None,
            &[
                "http://127.0.0.1/cb",
                "http://[::1]:8080/cb",
                "http://localhost/cb",
                "http://127.0.0.1",
            ],
        );
        for uri in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:1/cb",
            "http://127.0.0.1:65535/cb",
            "http://[::1]/cb",
            "http://[::1]:54321/cb",
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5000/",
            "http://localhost/cb",
        ] {
            assert!(native.accepts_redirect_uri(uri), "{uri}");
        }
        for uri in [
            "http://localhost:5000/cb",
            "http://127.0.0.1:5000/cb/",
            "http://127.0.0.1:5000/CB",
            "http://127.0.0.1:5000/cb?a=1",
            "http://127.0.0.1:5000/cb#x",
            "http://u@127.0.0.1:5000/cb",
            "http://127.0.0.1:5000/x/../cb",
            "http://127.0.0.1:05000/cb",
            "https://127.0.0.1:5000/cb",
            "http://127.1:5000/cb",
            "http://[::2]:5000/cb",
            "http://127.0.0.1:5000/cb\\",
            "",
        ] {
            assert!(!native.accepts_redirect_uri(uri), "{uri}");
        }
        let web = client(ClientAuthMethod::SecretBasic, &["http://127.0.0.1/cb"]);
        assert!(web.accepts_redirect_uri("http://127.0.0.1/cb"));
        assert!(!web.accepts_redirect_uri("http://127.0.0.1:5000/cb"));
    }
}
