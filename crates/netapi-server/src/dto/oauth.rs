//! Bodies of the OAuth 2.0 and OpenID Connect endpoints (RFC 6749, 7009, 7517, 7662, 8414,
//! 9728, OpenID Connect Core and Discovery).

use netapi_core::service::{Introspection as CoreIntrospection, OAuthErrorKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::fields;

/// An OAuth error (RFC 6749 §5.2).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OAuthError)]
pub(crate) struct OAuthErrorBody {
    #[schema(inline)]
    error: OAuthErrorCode,
    error_description: String,
}

impl OAuthErrorBody {
    /// The body of an error of `kind`, in the words `oauth/error.rs` chose.
    pub(crate) fn new(kind: OAuthErrorKind, error_description: String) -> Self {
        Self {
            error: kind.into(),
            error_description,
        }
    }
}

/// The error codes the token, revocation and introspection endpoints use (RFC 6749, and RFC
/// 8707's `invalid_target`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    AuthorizationPending,
    SlowDown,
    AccessDenied,
    ExpiredToken,
    ServerError,
    TemporarilyUnavailable,
    /// `/oauth/par` only.
    UnsupportedResponseType,
    /// `/oauth/par` only: `request` (request objects) is not supported.
    RequestNotSupported,
    /// RFC 9449 §5: the `DPoP` proof was refused.
    InvalidDpopProof,
    /// RFC 9449 §8: send the proof again with the nonce of the `DPoP-Nonce` header.
    UseDpopNonce,
}

impl From<OAuthErrorKind> for OAuthErrorCode {
    fn from(kind: OAuthErrorKind) -> Self {
        match kind {
            OAuthErrorKind::InvalidRequest => Self::InvalidRequest,
            OAuthErrorKind::InvalidClient => Self::InvalidClient,
            OAuthErrorKind::InvalidGrant => Self::InvalidGrant,
            OAuthErrorKind::UnauthorizedClient => Self::UnauthorizedClient,
            OAuthErrorKind::UnsupportedGrantType => Self::UnsupportedGrantType,
            OAuthErrorKind::InvalidScope => Self::InvalidScope,
            OAuthErrorKind::InvalidTarget => Self::InvalidTarget,
            OAuthErrorKind::AuthorizationPending => Self::AuthorizationPending,
            OAuthErrorKind::SlowDown => Self::SlowDown,
            OAuthErrorKind::AccessDenied => Self::AccessDenied,
            OAuthErrorKind::ExpiredToken => Self::ExpiredToken,
            OAuthErrorKind::ServerError => Self::ServerError,
            OAuthErrorKind::TemporarilyUnavailable => Self::TemporarilyUnavailable,
            OAuthErrorKind::UnsupportedResponseType => Self::UnsupportedResponseType,
            OAuthErrorKind::RequestNotSupported => Self::RequestNotSupported,
            OAuthErrorKind::InvalidDpopProof => Self::InvalidDpopProof,
            OAuthErrorKind::UseDpopNonce => Self::UseDpopNonce,
        }
    }
}

/// A bearer-token error of the UserInfo endpoint (RFC 6750 §3.1).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BearerError {
    #[schema(inline)]
    pub(crate) error: BearerErrorCode,
    pub(crate) error_description: &'static str,
}

/// RFC 6750 error codes.
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BearerErrorCode {
    InvalidToken,
    InsufficientScope,
}

impl BearerErrorCode {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

/// A token response (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenResponse {
    /// A JWT (RFC 9068, `typ: at+jwt`).
    access_token: String,
    #[schema(inline)]
    token_type: BearerType,
    /// Seconds until the access token expires.
    expires_in: i64,
    /// The granted scopes, space-separated.
    scope: String,
    /// A new refresh token (`authorization_code`, `refresh_token` and device code grants, for
    /// clients that may use `refresh_token`); always store the newest.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^naprt_[0-9A-Za-z]{38}$", nullable = false)]
    refresh_token: Option<String>,
    /// OpenID Connect ID token, with the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    id_token: Option<String>,
    /// Token exchange (RFC 8693) only: the type of the issued token, always
    /// `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    issued_token_type: Option<&'static str>,
}

impl From<netapi_core::service::TokenResponse> for TokenResponse {
    fn from(token: netapi_core::service::TokenResponse) -> Self {
        Self {
            access_token: token.access_token,
            token_type: if token.token_type == "DPoP" {
                BearerType::DPoP
            } else {
                BearerType::Bearer
            },
            expires_in: token.expires_in,
            scope: token.scope,
            refresh_token: token.refresh_token,
            id_token: token.id_token,
            issued_token_type: token.issued_token_type,
        }
    }
}

/// `Bearer`, or `DPoP` when the request carried a DPoP proof (RFC 9449): the access token
/// is then bound to the proof's key.
#[derive(Serialize, ToSchema)]
enum BearerType {
    Bearer,
    #[allow(clippy::upper_case_acronyms)]
    DPoP,
}

/// The answer of `/oauth/revoke`: an empty object.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevocationResponse {}

/// An introspection answer (RFC 7662): exactly `{"active": false}` for a token that is not
/// active.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Introspection {
    /// A token that is not active.
    Inactive(InactiveToken),
    /// An active access or refresh token.
    Active(ActiveToken),
    /// An active API key.
    ActiveKey(ActiveApiKey),
}

impl From<CoreIntrospection> for Introspection {
    fn from(found: CoreIntrospection) -> Self {
        if !found.active {
            return Self::Inactive(InactiveToken { active: false });
        }
        // The core fills every field an active answer requires; the defaults never show.
        let scope = found.scope.unwrap_or_default();
        let sub = found.sub.unwrap_or_default();
        let iss = found.iss.unwrap_or_default();
        let iat = found.iat.unwrap_or_default();
        match found.key_id {
            Some(key_id) => Self::ActiveKey(ActiveApiKey {
                active: true,
                scope,
                sub,
                aud: found.aud.unwrap_or_default(),
                iss,
                iat,
                exp: found.exp,
                token_type: "api_key",
                key_id,
                metadata: found.metadata,
            }),
            None => Self::Active(ActiveToken {
                active: true,
                scope,
                client_id: found.client_id.unwrap_or_default(),
                sub,
                iss,
                iat,
                exp: found.exp.unwrap_or_default(),
                token_type: match found.token_type {
                    Some("refresh_token") => TokenTypeName::RefreshToken,
                    Some("DPoP") => TokenTypeName::DPoP,
                    _ => TokenTypeName::Bearer,
                },
                aud: found.aud,
                jti: found.jti,
                act: found
                    .act
                    .as_ref()
                    .and_then(|act| serde_json::to_value(act).ok()),
                cnf: found.cnf.map(|cnf| Confirmation { jkt: cnf.jkt }),
            }),
        }
    }
}

/// `{"active": false}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InactiveToken {
    #[schema(schema_with = fields::const_false)]
    active: bool,
}

/// An active API key (a client learns only about keys of the resources it lists, and an
/// admin's client about Net API's own).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActiveApiKey {
    #[schema(schema_with = fields::const_true)]
    active: bool,
    scope: String,
    #[schema(schema_with = fields::user_id)]
    sub: String,
    /// The identifier of the resource the key is for.
    aud: String,
    iss: String,
    /// When the key was made, seconds since the epoch.
    iat: i64,
    /// When the key expires, seconds since the epoch; absent when it never does.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    exp: Option<i64>,
    /// `api_key`.
    #[schema(schema_with = fields::const_api_key)]
    token_type: &'static str,
    #[schema(schema_with = fields::key_id)]
    key_id: String,
    /// The key's metadata; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, nullable = false)]
    metadata: Option<serde_json::Value>,
}

/// An active token's claims.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActiveToken {
    #[schema(schema_with = fields::const_true)]
    active: bool,
    scope: String,
    #[schema(schema_with = fields::client_id)]
    client_id: String,
    #[schema(schema_with = fields::user_id)]
    sub: String,
    iss: String,
    /// Seconds since the epoch.
    iat: i64,
    /// Seconds since the epoch.
    exp: i64,
    /// `Bearer` for an access token, `DPoP` for a DPoP-bound one, `refresh_token` for a
    /// refresh token.
    #[schema(inline)]
    token_type: TokenTypeName,
    /// Access tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    aud: Option<String>,
    /// Access tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    jti: Option<String>,
    /// Tokens made by token exchange (RFC 8693 §4.1): `{"sub": "<client id>"}`, the client
    /// that exchanged it, with the previous actor nested as `act` when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, nullable = false)]
    act: Option<serde_json::Value>,
    /// DPoP-bound access tokens only (RFC 9449 §6.2): the key they are bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    cnf: Option<Confirmation>,
}

/// The confirmation of a DPoP-bound token (RFC 9449 §6).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Confirmation {
    /// The RFC 7638 SHA-256 thumbprint of the DPoP key, base64url.
    jkt: String,
}

/// A token type.
#[derive(Serialize, ToSchema)]
enum TokenTypeName {
    Bearer,
    /// A DPoP-bound access token.
    #[allow(clippy::upper_case_acronyms)]
    DPoP,
    #[serde(rename = "refresh_token")]
    RefreshToken,
}

// Read from the key ring's published set (`oauth::jwks`).
/// The public signing keys (RFC 7517).
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Jwks {
    keys: Vec<Jwk>,
}

/// A public key: Ed25519 (`OKP`), P-256 (`EC`) or RSA-2048 (`RSA`).
#[derive(Serialize, Deserialize, ToSchema)]
struct Jwk {
    /// `OKP`, `EC` or `RSA`.
    kty: String,
    /// `Ed25519` or `P-256`; not for `RSA` keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    crv: Option<String>,
    /// `EdDSA`, `ES256` or `RS256`.
    alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    usage: String,
    kid: String,
    /// base64url; `OKP` and `EC` keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    x: Option<String>,
    /// base64url; `EC` keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    y: Option<String>,
    /// The modulus, base64url; `RSA` keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    n: Option<String>,
    /// The public exponent, base64url; `RSA` keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    e: Option<String>,
}

/// Authorization server metadata (RFC 8414); also the OpenID Connect discovery document.
#[derive(Serialize, ToSchema)]
pub(crate) struct ServerMetadata {
    /// Equals the configured issuer exactly.
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    /// RFC 8628 §4.
    pub(crate) device_authorization_endpoint: String,
    pub(crate) revocation_endpoint: String,
    pub(crate) introspection_endpoint: String,
    pub(crate) userinfo_endpoint: String,
    pub(crate) jwks_uri: String,
    pub(crate) registration_endpoint: String,
    #[schema(schema_with = fields::scopes)]
    pub(crate) scopes_supported: Vec<&'static str>,
    pub(crate) response_types_supported: Vec<&'static str>,
    pub(crate) response_modes_supported: Vec<&'static str>,
    #[schema(schema_with = fields::grant_types)]
    pub(crate) grant_types_supported: Vec<&'static str>,
    pub(crate) token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The algorithms of `private_key_jwt` assertions.
    pub(crate) token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub(crate) revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub(crate) revocation_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub(crate) introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub(crate) introspection_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    /// RFC 9126.
    pub(crate) pushed_authorization_request_endpoint: String,
    /// `true` when the server takes authorization requests only through PAR (the
    /// `require_pushed_authorization_requests` setting); clients can require it for
    /// themselves in any case.
    pub(crate) require_pushed_authorization_requests: bool,
    pub(crate) code_challenge_methods_supported: Vec<&'static str>,
    pub(crate) authorization_response_iss_parameter_supported: bool,
    pub(crate) subject_types_supported: Vec<&'static str>,
    pub(crate) id_token_signing_alg_values_supported: Vec<&'static str>,
    pub(crate) claims_supported: Vec<&'static str>,
    pub(crate) prompt_values_supported: Vec<&'static str>,
    /// RP-Initiated Logout 1.0: `/oauth/logout`.
    pub(crate) end_session_endpoint: String,
    /// Back-Channel Logout 1.0: logout tokens are POSTed to `backchannel_logout_uri`.
    pub(crate) backchannel_logout_supported: bool,
    /// Logout tokens carry `sid`, as ID tokens do.
    pub(crate) backchannel_logout_session_supported: bool,
    /// Front-channel logout is not supported.
    pub(crate) frontchannel_logout_supported: bool,
    /// RFC 9449 §5.1: the algorithms of DPoP proofs accepted.
    pub(crate) dpop_signing_alg_values_supported: Vec<&'static str>,
}

/// OpenID Connect UserInfo claims, limited by the token's scopes.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserInfo {
    #[schema(schema_with = fields::user_id)]
    sub: String,
    /// With `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    name: Option<String>,
    /// With `profile`; seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    updated_at: Option<i64>,
    /// With `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email: Option<String>,
    /// With `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email_verified: Option<bool>,
}

impl From<netapi_core::service::UserInfoClaims> for UserInfo {
    fn from(claims: netapi_core::service::UserInfoClaims) -> Self {
        Self {
            sub: claims.sub,
            name: claims.name,
            updated_at: claims.updated_at,
            email: claims.email,
            email_verified: claims.email_verified,
        }
    }
}

/// RFC 9728 protected resource metadata.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProtectedResourceMetadata {
    /// The resource's identifier.
    pub(crate) resource: String,
    /// The issuer, which makes credentials for it.
    pub(crate) authorization_servers: Vec<String>,
    /// The scope names a credential for it may carry.
    pub(crate) scopes_supported: Vec<String>,
    /// Always `["header"]`: `Authorization: Bearer`.
    pub(crate) bearer_methods_supported: Vec<&'static str>,
    /// A name for people.
    pub(crate) resource_name: String,
}
