//! Dynamic client registration: `POST /oauth/register` (RFC 7591), the registration access
//! token that reads, changes and deletes what it registered (RFC 7592), and administrators'
//! initial access tokens.

use serde_json::json;
use subtle::ConstantTimeEq;

use super::clients::{check_client_shape, distinct_grant_types, validate_redirect_uris};
use super::{Credential, NetApi, NewClient, Principal};
use crate::error::{AuthFailure, Error, Result, StoreError};
use crate::ids::new_id;
use crate::limiter::Surface;
use crate::model::{ClientMetadata, ClientRegistration, GrantType, OAuthClient, RegistrationToken};
use crate::scope::{Role, Scope, Scopes};
use crate::secret::{Secret, SecretKind, check_format, generate};
use crate::store::{ClientChanges, Invalidation};

/// Who may register a client at `/oauth/register` (the `client_registration` setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientRegistrationPolicy {
    /// Whoever presents an initial access token an administrator made; the client has no
    /// owner.
    Admin,
    /// Any user's credential holding `clients:write`; the user owns the client.
    #[default]
    Authenticated,
    /// Anyone, limited per source address; the client has no owner.
    Open,
}

impl ClientRegistrationPolicy {
    /// Parses `admin`, `authenticated` or `open`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Self::Admin),
            "authenticated" => Some(Self::Authenticated),
            "open" => Some(Self::Open),
            _ => None,
        }
    }

    /// The setting's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Authenticated => "authenticated",
            Self::Open => "open",
        }
    }
}

/// An initial access token's lifetime when none is asked for: 7 days.
pub const DEFAULT_REGISTRATION_TOKEN_TTL: i64 = 7 * 86_400;
/// The longest lifetime of an initial access token: 90 days.
pub const MAX_REGISTRATION_TOKEN_TTL: i64 = 90 * 86_400;
/// Longest metadata URI (`logo_uri`, `client_uri`, `policy_uri`, `tos_uri`) and redirect URI.
pub const MAX_METADATA_URI_LEN: usize = 2_000;
/// Most `contacts`.
pub const MAX_CONTACTS: usize = 10;
/// Longest contact, `software_id` and `software_version`.
pub const MAX_METADATA_TEXT_LEN: usize = 200;
/// Longest `client_id` worth looking up (ours are far shorter).
const MAX_CLIENT_ID_LEN: usize = 64;

/// What a registration asks for: the client, and the RFC 7591 metadata shown back.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistrationRequest {
    /// The client (its `trusted` and `rate_limit` are not registrable and stay unset).
    pub client: NewClient,
    /// Everything else.
    pub metadata: ClientMetadata,
}

/// A client just registered: its secret (confidential clients) and registration access
/// token are shown this once.
#[derive(Debug)]
pub struct RegisteredClient {
    /// The client.
    pub client: OAuthClient,
    /// Its RFC 7591 metadata beyond the client record.
    pub metadata: ClientMetadata,
    /// `client_secret`, for a confidential client.
    pub secret: Option<Secret>,
    /// `registration_access_token`.
    pub registration_token: Secret,
}

/// Checks the metadata a client only shows: bounded, URIs absolute `https` (or `http` on
/// loopback), no control characters in text.
fn check_metadata(metadata: &ClientMetadata) -> Result<()> {
    for (field, uri) in [
        ("logo_uri", &metadata.logo_uri),
        ("client_uri", &metadata.client_uri),
        ("policy_uri", &metadata.policy_uri),
        ("tos_uri", &metadata.tos_uri),
    ] {
        let Some(uri) = uri else { continue };
        let invalid = || Error::invalid(field, "must be an absolute https URI");
        if uri.len() > MAX_METADATA_URI_LEN {
            return Err(Error::invalid(
                field,
                format!("must be at most {MAX_METADATA_URI_LEN} characters"),
            ));
        }
        let parsed = url::Url::parse(uri).map_err(|_| invalid())?;
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
        if !(parsed.scheme() == "https" || parsed.scheme() == "http" && loopback) {
            return Err(invalid());
        }
    }
    if metadata.contacts.len() > MAX_CONTACTS {
        return Err(Error::invalid(
            "contacts",
            format!("at most {MAX_CONTACTS} are allowed"),
        ));
    }
    let texts = metadata
        .contacts
        .iter()
        .map(|c| ("contacts", c))
        .chain(metadata.software_id.iter().map(|s| ("software_id", s)))
        .chain(
            metadata
                .software_version
                .iter()
                .map(|s| ("software_version", s)),
        );
    for (field, text) in texts {
        if text.is_empty() || text.chars().count() > MAX_METADATA_TEXT_LEN {
            return Err(Error::invalid(
                field,
                format!("must be 1 to {MAX_METADATA_TEXT_LEN} characters"),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() || super::users::is_bidi_control(c))
        {
            return Err(Error::invalid(field, "must not contain control characters"));
        }
    }
    Ok(())
}

/// Whose scopes limit a client registered without owner: a member's, who holds every scope
/// that is not admin-only and the self-service scopes of resources. Its tokens are for the
/// users who sign in through it, each limited again to what that user holds.
fn ownerless_registrant() -> Principal {
    Principal {
        user_id: String::new(),
        role: Role::Member,
        scopes: Role::Member.max_scopes(),
        credential: Credential::Session,
        rate: None,
        resource: None,
        resource_scopes: Vec::new(),
    }
}

/// A refusal of the client's scopes is about its metadata (RFC 7591
/// `invalid_client_metadata`), not about the caller's permissions.
fn as_metadata_error(err: Error) -> Error {
    match err {
        Error::PermissionDenied { message, .. } => Error::invalid("scope", message),
        other => other,
    }
}

impl NetApi {
    /// The `client_registration` setting in force.
    pub fn client_registration_policy(&self) -> ClientRegistrationPolicy {
        self.settings.client_registration
    }

    /// Registers a client at `/oauth/register` under the `client_registration` setting.
    /// `credential` is the `Authorization: Bearer` value, if any: a user's credential
    /// (`authenticated`), an initial access token (`admin`), or nothing needed (`open`).
    pub async fn register_client(
        &self,
        credential: std::result::Result<&str, AuthFailure>,
        ip: &str,
        request: ClientRegistrationRequest,
    ) -> Result<RegisteredClient> {
        let now = self.now();
        let mut initial_token = None;
        let (holder, owner) = match self.settings.client_registration {
            ClientRegistrationPolicy::Authenticated => {
                let principal = self.check_access(credential, ip, None, "").await?.principal;
                principal.require(Scope::ClientsWrite)?;
                if principal.user_id.is_empty() {
                    return Err(Error::Unauthenticated(AuthFailure::Unknown));
                }
                let owner = principal.user_id.clone();
                (principal, Some(owner))
            }
            ClientRegistrationPolicy::Admin => {
                let token = self.usable_registration_token(credential, ip).await?;
                initial_token = Some(token);
                (ownerless_registrant(), None)
            }
            ClientRegistrationPolicy::Open => {
                let limit = self.settings.registration_limit_per_hour;
                if limit > 0 {
                    self.client_registrations
                        .hit(&crate::limiter::source_of(ip), limit, now)
                        .await
                        .map_err(|status| Error::RateLimited {
                            retry_after: status.reset,
                        })?;
                }
                (ownerless_registrant(), None)
            }
        };
        check_metadata(&request.metadata)?;
        let new = NewClient {
            rate_limit: None,
            trusted: false,
            ..request.client
        };
        let (client, secret) = self
            .build_client(&holder, owner, new)
            .await
            .map_err(as_metadata_error)?;
        let registration_token = generate(SecretKind::RegistrationAccess);
        let registration = ClientRegistration {
            client_id: client.id.clone(),
            token_hash: self.hasher().hash(registration_token.expose()),
            metadata: request.metadata,
            created_at: now,
        };
        let initial_hash = initial_token
            .as_ref()
            .map(|t: &RegistrationToken| t.token_hash);
        if !self
            .store
            .insert_registered_client(&client, &registration, initial_hash.as_ref(), now)
            .await?
        {
            // Used by a concurrent registration, or expired meanwhile.
            return Err(Error::Unauthenticated(AuthFailure::Revoked));
        }
        self.clients.invalidate(&client.id);
        self.audit(
            client.owner_id.as_deref(),
            "oauth_client.registered",
            Some(ip),
            json!({
                "client_id": client.id,
                "policy": self.settings.client_registration.as_str(),
                "registration_token_id": initial_token.as_ref().map(|t| t.id.clone()),
            }),
        )
        .await;
        Ok(RegisteredClient {
            client,
            metadata: registration.metadata,
            secret,
            registration_token,
        })
    }

    /// The initial access token presented, if usable (format first, then storage; failures
    /// counted per source).
    async fn usable_registration_token(
        &self,
        credential: std::result::Result<&str, AuthFailure>,
        ip: &str,
    ) -> Result<RegistrationToken> {
        let now = self.now();
        let subjects = self.limiter.subjects(Surface::Registration, ip, None);
        if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
            return Err(Error::RateLimited { retry_after });
        }
        let token = credential.map_err(Error::Unauthenticated)?;
        let refuse = async |failure| {
            self.limiter.record_failure(&subjects, now).await;
            Err(Error::Unauthenticated(failure))
        };
        if check_format(SecretKind::RegistrationInitial, token).is_err() {
            return refuse(AuthFailure::Malformed).await;
        }
        let hash = self.hasher().hash(token);
        match self.store.find_registration_token(&hash).await? {
            None => refuse(AuthFailure::Unknown).await,
            Some(found) if found.used_at.is_some() => refuse(AuthFailure::Revoked).await,
            Some(found) if found.expires_at <= now => refuse(AuthFailure::Expired).await,
            Some(found) => Ok(found),
        }
    }

    /// The client `client_id` and its registration, if `token` is its registration access
    /// token. Every refusal is the same `Unauthenticated`, whether the client exists or not;
    /// failures are counted per (client, source).
    async fn registration_of(
        &self,
        client_id: &str,
        token: std::result::Result<&str, AuthFailure>,
        ip: &str,
    ) -> Result<(OAuthClient, ClientRegistration)> {
        let now = self.now();
        let account = (client_id.len() <= MAX_CLIENT_ID_LEN).then_some(client_id);
        let subjects = self.limiter.subjects(Surface::Registration, ip, account);
        if let Some(retry_after) = self.limiter.blocked(&subjects, now).await {
            return Err(Error::RateLimited { retry_after });
        }
        let token = token.map_err(Error::Unauthenticated)?;
        let refuse = async |failure| {
            self.limiter.record_failure(&subjects, now).await;
            Err(Error::Unauthenticated(failure))
        };
        if account.is_none() || check_format(SecretKind::RegistrationAccess, token).is_err() {
            return refuse(AuthFailure::Malformed).await;
        }
        let Some(registration) = self.store.get_client_registration(client_id).await? else {
            return refuse(AuthFailure::Unknown).await;
        };
        let presented = self.hasher().hash(token);
        if !bool::from(presented.0.ct_eq(&registration.token_hash.0)) {
            return refuse(AuthFailure::Unknown).await;
        }
        let Some(client) = self.store.get_client(client_id).await? else {
            return refuse(AuthFailure::Unknown).await;
        };
        Ok((client, registration))
    }

    /// RFC 7592 read: the client as registered.
    pub async fn read_registered_client(
        &self,
        client_id: &str,
        token: std::result::Result<&str, AuthFailure>,
        ip: &str,
    ) -> Result<(OAuthClient, ClientMetadata)> {
        let (client, registration) = self.registration_of(client_id, token, ip).await?;
        Ok((client, registration.metadata))
    }

    /// RFC 7592 update: the request replaces the client's metadata (fields left out return
    /// to their defaults). The client id, secret and registration access token stay. No
    /// escalation: the scopes and resources can only be narrowed, and the
    /// `token_endpoint_auth_method` cannot change (a secret would appear or vanish). The
    /// client is written only if nothing changed it since it was read (else read again and
    /// checked again, a few times): an update that left `scope` out must not restore scopes
    /// an owner or administrator took away meanwhile.
    pub async fn update_registered_client(
        &self,
        client_id: &str,
        token: std::result::Result<&str, AuthFailure>,
        ip: &str,
        request: ClientRegistrationRequest,
    ) -> Result<(OAuthClient, ClientMetadata)> {
        super::until_written(|| {
            self.try_update_registered_client(client_id, token, ip, request.clone())
        })
        .await
    }

    /// One attempt of [`NetApi::update_registered_client`]: `None` if the client changed
    /// between its reading and its writing (nothing was written).
    async fn try_update_registered_client(
        &self,
        client_id: &str,
        token: std::result::Result<&str, AuthFailure>,
        ip: &str,
        request: ClientRegistrationRequest,
    ) -> Result<Option<(OAuthClient, ClientMetadata)>> {
        let (client, registration) = self.registration_of(client_id, token, ip).await?;
        let read = client.clone();
        check_metadata(&request.metadata)?;
        let new = request.client;
        if new.auth_method.is_some_and(|m| m != client.auth_method) {
            return Err(Error::invalid(
                "token_endpoint_auth_method",
                "cannot be changed; register a new client instead",
            ));
        }
        let name = super::users::normalize_name("client_name", &new.name)?;
        let grant_types = match &new.grant_types {
            Some(grants) => distinct_grant_types(grants)?,
            None if new.redirect_uris.is_empty() => vec![GrantType::ClientCredentials],
            None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        };
        if client.owner_id.is_none() && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(Error::invalid(
                "grant_types",
                "a client registered without an owner acts for no one, so it cannot use client_credentials",
            ));
        }
        let resources = new.resources.unwrap_or_else(|| client.resources.clone());
        if let Some(extra) = resources.iter().find(|r| !client.resources.contains(r)) {
            return Err(Error::invalid(
                "resources",
                format!(
                    "'{}' was not registered; an update can only remove resources",
                    extra.chars().take(200).collect::<String>().escape_default()
                ),
            ));
        }
        let (scopes, resource_scopes) = match new.scope.as_deref() {
            None => (client.scopes, client.resource_scopes.clone()),
            Some(scope) => narrowed_scopes(&client, scope)?,
        };
        let resource_scopes = self
            .client_resources(&resources)
            .await?
            .iter()
            .flat_map(|r| resource_scopes.iter().filter(|n| r.has_scope(n)))
            .fold(Vec::new(), |mut kept: Vec<String>, name| {
                if !kept.contains(name) {
                    kept.push(name.clone());
                }
                kept
            });
        let id_token_alg = new
            .id_token_signed_response_alg
            .map(|alg| self.check_id_token_alg(alg))
            .transpose()?;
        let (jwks, jwks_uri) = self
            .checked_client_keys(
                client.auth_method,
                new.jwks.as_ref(),
                new.jwks_uri.as_deref(),
            )
            .await?;
        let updated = OAuthClient {
            name,
            logout: new.logout,
            jwks: jwks.clone(),
            jwks_uri: jwks_uri.clone(),
            require_par: new.require_par,
            dpop_bound_access_tokens: new.dpop_bound_access_tokens,
            redirect_uris: new.redirect_uris,
            grant_types,
            scopes,
            resources,
            resource_scopes,
            ..client
        };
        validate_redirect_uris(&updated.redirect_uris)?;
        check_client_shape(&updated)?;
        self.check_client_logout(&updated.logout)?;
        let changes = ClientChanges {
            logout: Some(updated.logout.clone()),
            name: Some(updated.name.clone()),
            redirect_uris: Some(updated.redirect_uris.clone()),
            grant_types: Some(updated.grant_types.clone()),
            scopes: Some(updated.scopes),
            resources: Some(updated.resources.clone()),
            resource_scopes: Some(updated.resource_scopes.clone()),
            id_token_signed_response_alg: id_token_alg,
            keys: Some((jwks, jwks_uri)),
            require_par: Some(updated.require_par),
            dpop_bound_access_tokens: Some(updated.dpop_bound_access_tokens),
            ..ClientChanges::default()
        };
        let registration = ClientRegistration {
            metadata: request.metadata,
            ..registration
        };
        let stored = match self
            .store
            .update_registered_client(client_id, &read, &changes, &registration, self.now())
            .await
        {
            Ok(Some(stored)) => stored,
            Ok(None) => return Err(Error::Unauthenticated(AuthFailure::Unknown)),
            Err(StoreError::Conflict("client_changed")) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        self.invalidate(Invalidation::Client(stored.id.clone()))
            .await?;
        self.audit(
            stored.owner_id.as_deref(),
            "oauth_client.updated",
            Some(ip),
            json!({ "client_id": stored.id, "by": "registration_access_token" }),
        )
        .await;
        Ok(Some((stored, registration.metadata)))
    }

    /// RFC 7592 delete: the client is gone and its tokens stop working at once.
    pub async fn delete_registered_client(
        &self,
        client_id: &str,
        token: std::result::Result<&str, AuthFailure>,
        ip: &str,
    ) -> Result<()> {
        let (client, _) = self.registration_of(client_id, token, ip).await?;
        self.remove_client(&client, Some(ip)).await
    }

    /// Makes an initial access token (administrators, or the operator); it is returned this
    /// once and is good for one registration until `expires_in` seconds from now.
    pub async fn create_registration_token(
        &self,
        caller: &Principal,
        expires_in: Option<i64>,
        ip: Option<&str>,
    ) -> Result<(RegistrationToken, Secret)> {
        require_registration_admin(caller)?;
        let ttl = expires_in.unwrap_or(DEFAULT_REGISTRATION_TOKEN_TTL);
        if !(60..=MAX_REGISTRATION_TOKEN_TTL).contains(&ttl) {
            return Err(Error::invalid(
                "expires_in",
                format!(
                    "must be between 60 seconds and {MAX_REGISTRATION_TOKEN_TTL} seconds (90 days)"
                ),
            ));
        }
        let now = self.now();
        let secret = generate(SecretKind::RegistrationInitial);
        let actor = (!caller.user_id.is_empty()).then(|| caller.user_id.clone());
        let token = RegistrationToken {
            id: new_id("rgt"),
            token_hash: self.hasher().hash(secret.expose()),
            created_by: actor.clone(),
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
        };
        self.store.insert_registration_token(&token).await?;
        self.audit(
            actor.as_deref(),
            "registration_token.created",
            ip,
            json!({ "registration_token_id": token.id, "expires_at": token.expires_at }),
        )
        .await;
        Ok((token, secret))
    }

    /// Deletes an initial access token: it stops working at once.
    pub async fn delete_registration_token(
        &self,
        caller: &Principal,
        id: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        require_registration_admin(caller)?;
        if !crate::ids::looks_like_id("rgt", id)
            || !self.store.delete_registration_token(id).await?
        {
            return Err(Error::NotFound("registration token"));
        }
        let actor = (!caller.user_id.is_empty()).then_some(caller.user_id.as_str());
        self.audit(
            actor,
            "registration_token.deleted",
            ip,
            json!({ "registration_token_id": id }),
        )
        .await;
        Ok(())
    }
}

/// Initial access tokens are an administrator's: the admin role and the `admin` and
/// `clients:write` scopes (or the operator at the command line).
fn require_registration_admin(caller: &Principal) -> Result<()> {
    caller.require(Scope::ClientsWrite)?;
    caller.require(Scope::Admin)?;
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Error::missing_scope(Scope::Admin))
    }
}

/// The scopes `scope` names, each of which the client must already have: an update through
/// the registration access token never widens what the client may obtain.
fn narrowed_scopes(client: &OAuthClient, scope: &str) -> Result<(Scopes, Vec<String>)> {
    let mut own = Scopes::EMPTY;
    let mut names: Vec<String> = Vec::new();
    for name in scope.split(' ').filter(|s| !s.is_empty()) {
        match Scope::parse(name) {
            Some(builtin) if client.scopes.contains(builtin) => own = own.with(builtin),
            _ if client.resource_scopes.iter().any(|n| n == name) => {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
            _ => {
                return Err(Error::invalid(
                    "scope",
                    format!(
                        "'{}' was not registered; an update can only narrow the scope",
                        name.chars().take(64).collect::<String>().escape_default()
                    ),
                ));
            }
        }
    }
    Ok((own, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_reads_its_three_values() {
        for policy in [
            ClientRegistrationPolicy::Admin,
            ClientRegistrationPolicy::Authenticated,
            ClientRegistrationPolicy::Open,
        ] {
            assert_eq!(
                ClientRegistrationPolicy::parse(policy.as_str()),
                Some(policy)
            );
        }
        assert_eq!(ClientRegistrationPolicy::parse("anyone"), None);
        assert_eq!(
            ClientRegistrationPolicy::default(),
            ClientRegistrationPolicy::Authenticated
        );
    }

    #[test]
    fn metadata_is_bounded_and_its_uris_are_https() {
        assert!(check_metadata(&ClientMetadata::default()).is_ok());
        let good = ClientMetadata {
            logo_uri: Some("https://app.example.com/logo.png".to_owned()),
            client_uri: Some("http://127.0.0.1:8000/".to_owned()),
            contacts: vec!["ops@example.com".to_owned()],
            software_id: Some("4NRB1-0XZABZI9E6-5SM3R".to_owned()),
            ..ClientMetadata::default()
        };
        assert!(check_metadata(&good).is_ok());
        for bad in [
            ClientMetadata {
                logo_uri: Some("javascript:alert(1)".to_owned()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                tos_uri: Some("http://app.example.com/tos".to_owned()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                policy_uri: Some(format!("https://a.example/{}", "x".repeat(2_000))),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                contacts: vec!["a@example.com".to_owned(); 11],
                ..ClientMetadata::default()
            },
            ClientMetadata {
                software_version: Some("1.0\u{202E}".to_owned()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                software_id: Some(String::new()),
                ..ClientMetadata::default()
            },
        ] {
            assert!(check_metadata(&bad).is_err(), "{bad:?} accepted");
        }
    }
}
