//! What handlers answer with: `Serialize + ToSchema` types that are both the JSON on the wire
//! and its description in `/openapi.json`. Each is built from the core's model by `From` or
//! `new`; none carries a secret but those named `key` or `client_secret`, in answers that show
//! them once.

pub(crate) mod fields;
pub(crate) mod invitations;
pub(crate) mod oauth;
pub(crate) mod resources;
pub(crate) mod scanning;
pub(crate) mod usage;
pub(crate) mod webhooks;

use axum::http::header;
use netapi_core::clock::format_rfc3339;
use netapi_core::model::{
    ApiKey, AuditEvent, ClientAuthMethod, GrantType, OAuthClient, SigningAlgorithm, User,
};
use netapi_core::scope::Role;
use netapi_core::secret::Secret;
use netapi_core::service::{Page, Verification, VerifyCode};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::error::{Code, ErrorBody};

/// Headers of every answer that carries a secret: no cache along the way may keep it.
pub(crate) const NO_STORE: NoStore = [
    (header::CACHE_CONTROL, "no-store"),
    (header::PRAGMA, "no-cache"),
];

/// The type of [`NO_STORE`], for handlers' signatures.
pub(crate) type NoStore = [(header::HeaderName, &'static str); 2];

fn time(ts: Option<i64>) -> Option<String> {
    ts.map(format_rfc3339)
}

/// A user; never its password hash.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = User)]
pub(crate) struct UserView {
    #[schema(schema_with = fields::user_id)]
    id: String,
    email: String,
    /// Whether the user followed a verification link mailed to `email`.
    email_verified: bool,
    name: String,
    #[schema(inline)]
    role: RoleName,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
    #[schema(schema_with = fields::date_time_utc)]
    updated_at: String,
    /// Since when an administrator has disabled the account (`null`: it is not); a disabled
    /// user's keys, tokens and sessions are refused.
    #[schema(schema_with = fields::date_time_nullable)]
    disabled_at: Option<String>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            created_at: format_rfc3339(user.created_at),
            updated_at: format_rfc3339(user.updated_at),
            disabled_at: time(user.disabled_at),
            role: user.role.into(),
            id: user.id,
            email: user.email,
            email_verified: user.email_verified,
            name: user.name,
        }
    }
}

/// A role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RoleName {
    Admin,
    Member,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
        }
    }
}

/// An API key as listed and read: never the key itself.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKey)]
pub(crate) struct ApiKeyView {
    #[schema(schema_with = fields::key_id)]
    id: String,
    #[schema(schema_with = fields::user_id)]
    user_id: String,
    name: String,
    /// The first 9 characters of the key.
    #[schema(pattern = "^napi_[0-9A-Za-z]{4}$")]
    prefix: String,
    /// The last 4 characters of the key.
    #[schema(pattern = "^[0-9A-Za-z]{4}$")]
    last_four: String,
    /// The identifier of the resource the key is for (the issuer: Net API's own).
    resource: String,
    /// Scope names of the key's resource.
    #[schema(schema_with = fields::scope_names)]
    scopes: Vec<String>,
    /// The JSON object given at creation, or `null`.
    #[schema(value_type = Option<Object>, required = true)]
    metadata: Option<Value>,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
    /// Kept to within about a minute.
    #[schema(schema_with = fields::date_time_nullable, required = true)]
    last_used_at: Option<String>,
    /// `null` for a key that does not expire.
    #[schema(schema_with = fields::date_time_nullable, required = true)]
    expires_at: Option<String>,
    #[schema(schema_with = fields::rate_limit, required = true)]
    rate_limit_per_minute: Option<u32>,
}

/// Key metadata as stored (JSON object text) to a value; `null` when there is none.
fn metadata(text: Option<&str>) -> Option<Value> {
    text.and_then(|m| serde_json::from_str(m).ok())
}

impl ApiKeyView {
    /// The key; `issuer` is the identifier of Net API's own resource, shown for its keys.
    pub(crate) fn new(key: ApiKey, issuer: &str) -> Self {
        let (resource, scopes) = match &key.resource {
            None => (
                issuer.to_owned(),
                key.scopes.names().into_iter().map(str::to_owned).collect(),
            ),
            Some(r) => (r.identifier.clone(), key.resource_scopes.clone()),
        };
        Self {
            resource,
            scopes,
            metadata: metadata(key.metadata.as_deref()),
            created_at: format_rfc3339(key.created_at),
            last_used_at: time(key.last_used_at),
            expires_at: time(key.expires_at),
            rate_limit_per_minute: key.rate_limit,
            id: key.id,
            user_id: key.user_id,
            name: key.name,
            prefix: key.prefix,
            last_four: key.last_four,
        }
    }
}

// The fields of `ApiKeyView` and `key` in one object: a flattened struct would be described
// as `allOf`, which closed objects (`additionalProperties: false`) cannot share.
/// An API key as created or rotated: with the key, shown this once.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewApiKey)]
pub(crate) struct NewApiKeyView {
    #[schema(schema_with = fields::key_id)]
    id: String,
    #[schema(schema_with = fields::user_id)]
    user_id: String,
    name: String,
    #[schema(pattern = "^napi_[0-9A-Za-z]{4}$")]
    prefix: String,
    #[schema(pattern = "^[0-9A-Za-z]{4}$")]
    last_four: String,
    /// The identifier of the resource the key is for (the issuer: Net API's own).
    resource: String,
    /// Scope names of the key's resource.
    #[schema(schema_with = fields::scope_names)]
    scopes: Vec<String>,
    /// The JSON object given at creation, or `null`.
    #[schema(value_type = Option<Object>, required = true)]
    metadata: Option<Value>,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
    #[schema(schema_with = fields::date_time_nullable, required = true)]
    last_used_at: Option<String>,
    #[schema(schema_with = fields::date_time_nullable, required = true)]
    expires_at: Option<String>,
    #[schema(schema_with = fields::rate_limit, required = true)]
    rate_limit_per_minute: Option<u32>,
    /// The API key. Shown only in this answer; store it now.
    #[schema(pattern = "^napi_[0-9A-Za-z]{38}$")]
    key: String,
}

impl NewApiKeyView {
    pub(crate) fn new(key: ApiKey, secret: &Secret, issuer: &str) -> Self {
        let ApiKeyView {
            id,
            user_id,
            name,
            prefix,
            last_four,
            resource,
            scopes,
            metadata,
            created_at,
            last_used_at,
            expires_at,
            rate_limit_per_minute,
        } = ApiKeyView::new(key, issuer);
        Self {
            id,
            user_id,
            name,
            prefix,
            last_four,
            resource,
            scopes,
            metadata,
            created_at,
            last_used_at,
            expires_at,
            rate_limit_per_minute,
            key: secret.expose().to_owned(),
        }
    }
}

/// An OAuth client, RFC 7591 field names. `client_secret` and `client_secret_expires_at`
/// only in the answer that creates a confidential client or rotates its secret.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OAuthClient)]
pub(crate) struct ClientView {
    #[schema(schema_with = fields::client_id)]
    client_id: String,
    client_name: String,
    /// `null` for a client registered at `/oauth/register` without owner (`open` or
    /// `admin` client registration).
    #[schema(schema_with = fields::user_id_nullable, required = true)]
    owner_id: Option<String>,
    redirect_uris: Vec<String>,
    #[schema(schema_with = fields::grant_types)]
    grant_types: Vec<&'static str>,
    /// `["code"]` when the client may use `authorization_code`, else `[]`.
    #[schema(inline)]
    response_types: Vec<ResponseType>,
    /// Space-separated: Net API's own scopes, then those of its resources.
    scope: String,
    /// Identifiers of the resources it may ask tokens for, besides Net API's own.
    resources: Vec<String>,
    /// Identifiers of the resources (Net API's own issuer among them when listed) it may
    /// obtain tokens for by token exchange (RFC 8693).
    token_exchange_resources: Vec<String>,
    #[schema(inline)]
    token_endpoint_auth_method: AuthMethod,
    #[schema(schema_with = fields::id_token_alg, required = true)]
    id_token_signed_response_alg: Option<&'static str>,
    #[schema(schema_with = fields::post_logout_redirect_uris)]
    post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are POSTed when a session it received an ID token in ends
    /// (OpenID Connect Back-Channel Logout); `null`: none.
    #[schema(required = true, max_length = 2000)]
    backchannel_logout_uri: Option<String>,
    /// Whether its logout tokens must carry `sid` (they always do).
    backchannel_logout_session_required: bool,
    /// `private_key_jwt`: the registered JWK Set (public keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    jwks: Option<serde_json::Value>,
    /// `private_key_jwt`: where its JWK Set is fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    jwks_uri: Option<String>,
    /// Its authorization requests must come through `/oauth/par` (RFC 9126 §6).
    require_pushed_authorization_requests: bool,
    /// Every token request of the client must carry a DPoP proof (RFC 9449 §5.2).
    dpop_bound_access_tokens: bool,
    /// Seconds since the epoch.
    #[schema(minimum = 0)]
    client_id_issued_at: i64,
    #[schema(schema_with = fields::rate_limit, required = true)]
    rate_limit_per_minute: Option<u32>,
    /// Marked trusted by an administrator: `/oauth/authorize` redirects its errors at once;
    /// for other clients, errors before the user has seen the request are shown on a page
    /// with a link to the same redirect (RFC 9700 §4.11.2).
    trusted: bool,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
    #[schema(schema_with = fields::date_time_utc)]
    updated_at: String,
    /// Shown only in this answer; store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^napcs_[0-9A-Za-z]{38}$", nullable = false)]
    client_secret: Option<String>,
    /// Always 0: the secret does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 0, nullable = false)]
    client_secret_expires_at: Option<i64>,
}

impl ClientView {
    /// The client; `secret` only at creation or rotation.
    pub(crate) fn new(client: OAuthClient, secret: Option<&Secret>) -> Self {
        Self {
            response_types: if client.grant_types.contains(&GrantType::AuthorizationCode) {
                vec![ResponseType::Code]
            } else {
                Vec::new()
            },
            grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
            scope: client.scopes_string(),
            token_endpoint_auth_method: client.auth_method.into(),
            id_token_signed_response_alg: client
                .id_token_signed_response_alg
                .map(SigningAlgorithm::as_str),
            client_id_issued_at: client.created_at,
            jwks: client
                .jwks
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
            jwks_uri: client.jwks_uri.clone(),
            require_pushed_authorization_requests: client.require_par,
            dpop_bound_access_tokens: client.dpop_bound_access_tokens,
            rate_limit_per_minute: client.rate_limit,
            trusted: client.trusted,
            created_at: format_rfc3339(client.created_at),
            updated_at: format_rfc3339(client.updated_at),
            client_secret: secret.map(|s| s.expose().to_owned()),
            client_secret_expires_at: secret.map(|_| 0),
            client_id: client.id,
            client_name: client.name,
            owner_id: client.owner_id,
            redirect_uris: client.redirect_uris,
            resources: client.resources,
            token_exchange_resources: client.token_exchange_resources,
            post_logout_redirect_uris: client.logout.post_logout_redirect_uris,
            backchannel_logout_uri: client.logout.backchannel_logout_uri,
            backchannel_logout_session_required: client.logout.backchannel_logout_session_required,
        }
    }
}

/// A response type.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum ResponseType {
    Code,
}

/// A client authentication method (RFC 7591).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
}

impl From<ClientAuthMethod> for AuthMethod {
    fn from(method: ClientAuthMethod) -> Self {
        match method {
            ClientAuthMethod::SecretBasic => Self::ClientSecretBasic,
            ClientAuthMethod::SecretPost => Self::ClientSecretPost,
            ClientAuthMethod::None => Self::None,
            ClientAuthMethod::PrivateKeyJwt => Self::PrivateKeyJwt,
        }
    }
}

/// A security event.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AuditEvent)]
pub(crate) struct EventView {
    #[schema(schema_with = fields::event_id)]
    id: String,
    /// E.g. `api_key.created`, `authentication.failed`.
    #[serde(rename = "type")]
    kind: String,
    /// `null` for events tied to no account.
    #[schema(schema_with = fields::user_id_nullable, required = true)]
    user_id: Option<String>,
    /// The address the request came from; `null` for the `netapi admin` command.
    #[schema(required = true)]
    ip: Option<String>,
    /// Particulars; never a secret.
    #[schema(schema_with = fields::any_value)]
    detail: Value,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
}

impl From<AuditEvent> for EventView {
    fn from(event: AuditEvent) -> Self {
        Self {
            detail: serde_json::from_str(&event.detail).unwrap_or(Value::Null),
            created_at: format_rfc3339(event.created_at),
            id: event.id,
            kind: event.kind,
            user_id: event.user_id,
            ip: event.ip,
        }
    }
}

/// `POST /v1/register`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registration {
    pub(crate) user: UserView,
    pub(crate) api_key: NewApiKeyView,
}

macro_rules! page_type {
    ($(#[$doc:meta])* $name:ident { $items:ident: $view:ty }) => {
        $(#[$doc])*
        #[derive(Serialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            $items: Vec<$view>,
            #[schema(schema_with = fields::next_page_token, required = true)]
            next_page_token: Option<String>,
        }

        impl<T: Into<$view>> From<Page<T>> for $name {
            fn from(page: Page<T>) -> Self {
                Self {
                    $items: page.items.into_iter().map(Into::into).collect(),
                    next_page_token: page.next_page_token,
                }
            }
        }
    };
}

page_type!(
    /// A page of users.
    UserList { users: UserView }
);
page_type!(
    /// A page of invitations, oldest first.
    InvitationList { invitations: invitations::InvitationView }
);
page_type!(
    /// A page of API keys.
    ApiKeyList { api_keys: ApiKeyView }
);
page_type!(
    /// A page of OAuth clients.
    OAuthClientList { oauth_clients: ClientView }
);
page_type!(
    /// A page of security events, newest first.
    AuditEventList { audit_events: EventView }
);

/// A listed client never shows a secret.
impl From<OAuthClient> for ClientView {
    fn from(client: OAuthClient) -> Self {
        Self::new(client, None)
    }
}

// The code, and the key's facts where they apply (never the key).
/// The answer of `POST /v1/keys/verify`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerificationView {
    /// True exactly when `code` is `VALID`.
    valid: bool,
    #[schema(inline)]
    code: VerifyCodeName,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = fields::key_id, required = false)]
    key_id: Option<String>,
    /// The user the key acts for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = fields::user_id, required = false)]
    subject: Option<String>,
    /// The identifier of the resource the key is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = fields::scope_names, required = false)]
    scopes: Option<Vec<String>>,
    /// Present with the key's facts; `null` for a key that never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = fields::date_time_nullable, required = false)]
    expires_at: Option<Option<String>>,
    /// Present with the key's facts: its metadata, or `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, required = false)]
    metadata: Option<Option<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    ratelimit: Option<KeyRateLimit>,
}

impl From<Verification> for VerificationView {
    fn from(v: Verification) -> Self {
        let valid = v.valid();
        let (key_id, subject, resource, scopes, expires_at, metadata) = match v.key {
            Some(key) => (
                Some(key.key_id),
                Some(key.subject),
                Some(key.resource),
                Some(key.scopes),
                Some(time(key.expires_at)),
                Some(metadata(key.metadata.as_deref())),
            ),
            None => (None, None, None, None, None, None),
        };
        Self {
            valid,
            code: v.code.into(),
            key_id,
            subject,
            resource,
            scopes,
            expires_at,
            metadata,
            ratelimit: v.rate.map(|rate| KeyRateLimit {
                limit: rate.limit,
                remaining: rate.remaining,
                reset: rate.reset,
            }),
        }
    }
}

/// The verified key's standing under its per-minute limit.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyRateLimit {
    /// Requests allowed per minute.
    limit: u32,
    /// Requests left in this minute.
    remaining: u32,
    /// Seconds until the minute resets.
    reset: u64,
}

/// A verification's answer code.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum VerifyCodeName {
    Valid,
    NotFound,
    Expired,
    Revoked,
    WrongResource,
    InsufficientScope,
    RateLimited,
}

impl From<VerifyCode> for VerifyCodeName {
    fn from(code: VerifyCode) -> Self {
        match code {
            VerifyCode::Valid => Self::Valid,
            VerifyCode::NotFound => Self::NotFound,
            VerifyCode::Expired => Self::Expired,
            VerifyCode::Revoked => Self::Revoked,
            VerifyCode::WrongResource => Self::WrongResource,
            VerifyCode::InsufficientScope => Self::InsufficientScope,
            VerifyCode::RateLimited => Self::RateLimited,
        }
    }
}

// The middleware writes it from the handler's `ErrorBody` and the request id.
/// The error envelope of `/v1` and every non-OAuth endpoint.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorEnvelope {
    error: ErrorObject,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorObject {
    code: Code,
    /// For people; program against `code`.
    message: String,
    /// Also in the `X-Request-Id` header; finds the server's log line.
    #[schema(pattern = "^req_[0-9A-Za-z]{20}$")]
    request_id: String,
    /// Particulars: `{"field", "description"}` for a field that failed validation,
    /// `{"missing_scope"}` for a missing scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    details: Option<Vec<BTreeMap<String, Value>>>,
}

impl ErrorEnvelope {
    pub(crate) fn new(body: ErrorBody, request_id: String) -> Self {
        Self {
            error: ErrorObject {
                code: body.code,
                message: body.message,
                request_id,
                details: (!body.details.is_empty()).then_some(body.details),
            },
        }
    }
}
