//! The OAuth 2.0 token, revocation and introspection endpoints (RFC 6749, 7009, 7662) and
//! the authorization-code exchange with PKCE (RFC 7636).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::NetApi;
use super::authn::AccessClaims;
use super::oauth_error::{OAuthError, OAuthReason, echoed};
use super::requests::{ClientAuth, ClientRequest, ResourceIndicator, TokenGrant, TokenTarget};
use crate::dpop::{Confirmation, DpopFailure, ProofTarget};
use crate::error::Error;
use crate::ids::new_id;
use crate::jwt::{KeyRing, left_half_hash};
use crate::limiter::Surface;
use crate::model::{
    Amr, ClientAuthMethod, GrantType, OAuthClient, RefreshToken, Resource, RotateOutcome,
    SigningAlgorithm,
};
use crate::scope::{Scope, Scopes};
use crate::secret::{DerivationKey, Secret, SecretKind, check_format, from_seed, generate};
use crate::store::Invalidation;
use std::sync::Arc;

type OAuthResult<T> = Result<T, OAuthError>;

/// Longest `client_id` looked at; ours are far shorter, and longer ones are refused before
/// they are counted or recorded.
const MAX_CLIENT_ID_LEN: usize = 255;

/// A successful token response (RFC 6749 §5.1). Its `Debug` leaves the tokens out.
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    /// The access token (a JWT).
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a DPoP-bound access token.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Granted scopes.
    pub scope: String,
    /// The new refresh token, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// OpenID Connect ID token, with `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Token exchange (RFC 8693): the type of the issued token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("issued_token_type", &self.issued_token_type)
            .finish()
    }
}

/// An introspection answer (RFC 7662); `{"active": false}` alone when inactive. A struct,
/// not a JSON value: introspection is a hot path for resource servers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// The API key's id (API keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The API key's metadata, a JSON object (API keys that have one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Who acts for `sub` (RFC 8693 §4.1; access tokens made by token exchange).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<super::Actor>,
    /// A DPoP-bound access token's confirmation (RFC 9449 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::dpop::Confirmation>,
}

/// What an issued grant is made of.
pub(super) struct Grant<'a> {
    pub(super) client: &'a OAuthClient,
    pub(super) user_id: &'a str,
    pub(super) scopes: Scopes,
    /// The resource the access token is for (`aud`); `None`: Net API's own.
    pub(super) resource: Option<&'a Resource>,
    /// Its scopes on `resource`.
    pub(super) resource_scopes: &'a [String],
    pub(super) family_id: Option<&'a str>,
    pub(super) auth_time: Option<i64>,
    /// How the user authenticated (for `amr` and `acr` in the ID token).
    pub(super) amr: Amr,
    pub(super) nonce: Option<&'a str>,
    /// The browser session the grant was approved in (its ID tokens' `sid`).
    pub(super) sid: Option<&'a str>,
    /// The thumbprint of the DPoP key the access token is bound to (`cnf.jkt`).
    pub(super) jkt: Option<&'a str>,
}

/// What a refresh request asks for beyond the token itself.
struct Asked<'a> {
    scope: Option<&'a str>,
    resource: Option<&'a ResourceIndicator>,
    /// The thumbprint of the request's DPoP key.
    jkt: Option<&'a str>,
}

/// What an authorization code exchange presents.
struct PresentedCode<'a> {
    code: &'a str,
    redirect_uri: Option<&'a str>,
    code_verifier: Option<&'a str>,
    resource: Option<&'a ResourceIndicator>,
    /// The thumbprint of the request's DPoP key.
    jkt: Option<&'a str>,
}

/// `names` in the order of `allowed`, kept only where `keep` holds.
pub(super) fn kept(allowed: &[String], keep: impl Fn(&String) -> bool) -> Vec<String> {
    allowed.iter().filter(|n| keep(n)).cloned().collect()
}

/// Whether the `code_verifier` matches an S256 challenge (RFC 7636 §4.6).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let valid_verifier = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    valid_verifier && B64.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

impl NetApi {
    /// Authenticates the client of a token, revocation or introspection request. Failed
    /// attempts count per address and per (client id, address); past the limit that address
    /// gets 429 and the secret is not even checked, while the client still works from others.
    pub async fn authenticate_client(
        &self,
        auth: &ClientAuth,
        ip: &str,
    ) -> OAuthResult<OAuthClient> {
        let now = self.now();
        // No client has such an id: refused before it is counted, audited or kept.
        if auth.id().len() > MAX_CLIENT_ID_LEN {
            return Err(OAuthReason::ClientAuthenticationFailed.into());
        }
        // The limiter's subjects (two keyed hashes) are made only when some subject is
        // blocked, or on a failure: not on every token request.
        let subjects = || self.limiter.subjects(Surface::Client, ip, Some(auth.id()));
        // What this process knows, without a round trip: client secrets are random, and a
        // failure past a shared limit is answered as locked below.
        if let Some(retry_after) = self.limiter.blocked_with(subjects, now) {
            return Err(OAuthError {
                reason: OAuthReason::ClientLocked,
                retry_after: Some(retry_after),
            });
        }
        // From the cache: every change to a client (secret rotation included) invalidates it.
        let client = if auth.id().len() <= 64 {
            self.client_facts(auth.id())
                .await?
                .map(|facts| OAuthClient::clone(&facts.client))
        } else {
            None
        };
        let verified = match client {
            None => None,
            Some(client) => {
                let good = match auth {
                    ClientAuth::Basic { secret, .. } | ClientAuth::Post { secret, .. } => {
                        !client.is_public()
                            && client.auth_method != ClientAuthMethod::PrivateKeyJwt
                            && self.client_secret_matches(&client, secret.expose())
                    }
                    ClientAuth::None { .. } => client.is_public(),
                    ClientAuth::Assertion { assertion, .. } => {
                        self.verify_client_assertion(&client, assertion.expose())
                            .await
                    }
                };
                good.then_some(client)
            }
        };
        match verified {
            Some(client) => Ok(client),
            None => {
                let past_limit = self.limiter.record_failure(&subjects(), now).await;
                self.audit(
                    None,
                    "oauth_client.authentication_failed",
                    Some(ip),
                    json!({ "client_id": auth.id().chars().take(64).collect::<String>() }),
                )
                .await;
                if let Some(retry_after) = past_limit {
                    return Err(OAuthError {
                        reason: OAuthReason::ClientLocked,
                        retry_after: Some(retry_after),
                    });
                }
                Err(OAuthReason::ClientAuthenticationFailed.into())
            }
        }
    }

    /// `POST /oauth/token`.
    pub async fn token(
        &self,
        request: &ClientRequest<TokenGrant>,
        ip: &str,
    ) -> OAuthResult<TokenResponse> {
        self.token_with_proof(request, None, ip).await
    }

    /// The token endpoint's own URL, the `htu` of its DPoP proofs.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.settings.issuer.trim_end_matches('/'))
    }

    /// The pushed authorization request endpoint's own URL, the `htu` of its DPoP proofs.
    pub fn par_endpoint(&self) -> String {
        format!("{}/oauth/par", self.settings.issuer.trim_end_matches('/'))
    }

    /// The OAuth error for a refused DPoP proof; `use_dpop_nonce` carries a fresh nonce.
    pub(super) fn dpop_error(&self, failure: DpopFailure) -> OAuthError {
        match (failure, self.dpop_nonce()) {
            (DpopFailure::UseNonce, Some(nonce)) => OAuthReason::DpopNonce(nonce).into(),
            (failure, _) => OAuthReason::Dpop(failure).into(),
        }
    }

    /// The thumbprint of a `DPoP` proof sent to one of our own `POST` endpoints (`url`, its
    /// `htu`), or the OAuth error that refuses it.
    pub(super) async fn endpoint_proof(
        &self,
        proof: Result<&str, DpopFailure>,
        url: &str,
    ) -> Result<String, OAuthError> {
        let target = ProofTarget {
            method: "POST",
            url,
            access_token: None,
        };
        let checked = match proof {
            Ok(proof) => self.check_dpop(proof, &target).await,
            Err(failure) => Err(failure),
        };
        checked.map_err(|failure| self.dpop_error(failure))
    }

    /// `POST /oauth/token` with the request's `DPoP` header, if any (RFC 9449 §5): a good
    /// proof binds the access token to its key (`cnf.jkt`, `token_type: DPoP`), and a public
    /// client's refresh token too.
    pub async fn token_with_proof(
        &self,
        request: &ClientRequest<TokenGrant>,
        proof: Option<Result<&str, DpopFailure>>,
        ip: &str,
    ) -> OAuthResult<TokenResponse> {
        let jkt = match proof {
            None => None,
            Some(proof) => Some(self.endpoint_proof(proof, &self.token_endpoint()).await?),
        };
        let jkt = jkt.as_deref();
        let grant = request.params.grant_type();
        let client = self.authenticate_client(&request.client, ip).await?;
        if !client.allows(grant) {
            return Err(OAuthReason::GrantNotAllowed(grant).into());
        }
        // RFC 9449 §5.2: a client registered with `dpop_bound_access_tokens` gets no bearer
        // token, whatever the grant.
        if client.dpop_bound_access_tokens && jkt.is_none() {
            return Err(self.dpop_error(DpopFailure::MissingProof));
        }
        let response = match &request.params {
            TokenGrant::ClientCredentials { scope, resource } => {
                self.client_credentials(&client, scope.as_deref(), resource.as_ref(), jkt)
                    .await
            }
            TokenGrant::RefreshToken {
                refresh_token,
                scope,
                resource,
            } => {
                let asked = Asked {
                    scope: scope.as_deref(),
                    resource: resource.as_ref(),
                    jkt,
                };
                self.refresh(&client, refresh_token.expose(), asked, ip)
                    .await
            }
            TokenGrant::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
                resource,
            } => {
                let presented = PresentedCode {
                    code: code.expose(),
                    redirect_uri: redirect_uri.as_deref(),
                    code_verifier: code_verifier.as_ref().map(Secret::expose),
                    resource: resource.as_ref(),
                    jkt,
                };
                self.exchange_code(&client, presented, ip).await
            }
            TokenGrant::TokenExchange(exchange) => {
                self.exchange_token(&client, exchange, jkt, ip).await
            }
            TokenGrant::DeviceCode {
                device_code,
                resource,
            } => {
                self.redeem_device_code(&client, device_code.expose(), resource.as_ref(), jkt, ip)
                    .await
            }
        }?;
        metrics::counter!("netapi_tokens_issued_total", "grant_type" => grant.as_str())
            .increment(1);
        Ok(response)
    }

    pub(super) fn requested_scopes(scope: Option<&str>, allowed: Scopes) -> OAuthResult<Scopes> {
        let Some(text) = scope else {
            return Ok(allowed);
        };
        let requested = Scopes::parse_space_separated(text)
            .map_err(|name| OAuthReason::UnknownScope(echoed(&name)))?;
        if let Some(extra) = requested.iter().find(|s| !allowed.contains(*s)) {
            return Err(OAuthReason::ScopeNotAllowed(extra.to_string()).into());
        }
        Ok(requested)
    }

    /// The resource a token or authorization request names (RFC 8707, its shape already
    /// checked by the parser): `None` for none or Net API's own; `invalid_target` for an
    /// unknown or deleted one, or one the client does not list.
    pub(crate) async fn requested_resource(
        &self,
        named: Option<&ResourceIndicator>,
        client: &OAuthClient,
    ) -> OAuthResult<Option<Arc<Resource>>> {
        let Some(named) = named.filter(|n| n.as_str() != self.settings.issuer) else {
            return Ok(None);
        };
        match self.resource_by_identifier(named.as_str()).await? {
            Some(resource)
                if resource.deleted_at.is_none()
                    && client.resources.contains(&resource.identifier) =>
            {
                Ok(Some(resource))
            }
            _ => Err(OAuthReason::UnknownResource.into()),
        }
    }

    /// The scopes of `resource` a request asks for, each a scope of the resource
    /// (`invalid_scope` otherwise) within `allowed`; `allowed` itself without `scope`.
    pub(super) fn requested_resource_scopes(
        scope: Option<&str>,
        resource: &Resource,
        allowed: &[String],
    ) -> OAuthResult<Vec<String>> {
        let Some(text) = scope else {
            return Ok(allowed.to_vec());
        };
        let mut names: Vec<String> = Vec::new();
        for name in text.split(' ').filter(|s| !s.is_empty()) {
            if !resource.has_scope(name) {
                return Err(OAuthReason::NotAResourceScope {
                    scope: echoed(name),
                    resource: resource.identifier.clone(),
                }
                .into());
            }
            if !allowed.iter().any(|a| a == name) {
                return Err(OAuthReason::ScopeNotAllowed(name.to_owned()).into());
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// The scopes of `resource` a client may use there.
    pub(super) fn client_resource_scopes(client: &OAuthClient, resource: &Resource) -> Vec<String> {
        resource
            .scopes
            .iter()
            .map(|s| &s.name)
            .filter(|n| client.resource_scopes.contains(n))
            .cloned()
            .collect()
    }

    async fn client_credentials(
        &self,
        client: &OAuthClient,
        scope: Option<&str>,
        resource: Option<&ResourceIndicator>,
        jkt: Option<&str>,
    ) -> OAuthResult<TokenResponse> {
        // A client registered anonymously acts for no one: it has no user to act for.
        let Some(owner_id) = client.owner_id.as_deref() else {
            return Err(OAuthReason::GrantNotAllowed(GrantType::ClientCredentials).into());
        };
        if let Some(resource) = self.requested_resource(resource, client).await? {
            let allowed = Self::client_resource_scopes(client, &resource);
            let wanted = Self::requested_resource_scopes(scope, &resource, &allowed)?;
            let Some(owner) = self.user_facts(owner_id).await? else {
                return Err(OAuthReason::ClientAuthenticationFailed.into());
            };
            let held = self.held_scopes(owner_id, owner.role, &resource).await?;
            let scopes = kept(&wanted, |n| held.contains(n));
            return self
                .issue(
                    &Grant {
                        client,
                        user_id: owner_id,
                        scopes: Scopes::EMPTY,
                        resource: Some(&resource),
                        resource_scopes: &scopes,
                        family_id: None,
                        auth_time: None,
                        amr: Amr::Password,
                        nonce: None,
                        sid: None,
                        jkt,
                    },
                    None,
                )
                .await;
        }
        let allowed = client
            .scopes
            .without(Scope::OpenId)
            .without(Scope::Profile)
            .without(Scope::Email);
        let scopes = Self::requested_scopes(scope, allowed)?;
        let Some(owner) = self.user_facts(owner_id).await? else {
            return Err(OAuthReason::ClientAuthenticationFailed.into());
        };
        let scopes = scopes.intersect(owner.role.max_scopes());
        self.issue(
            &Grant {
                client,
                user_id: owner_id,
                scopes,
                resource: None,
                resource_scopes: &[],
                family_id: None,
                auth_time: None,
                amr: Amr::Password,
                nonce: None,
                sid: None,
                jkt,
            },
            None,
        )
        .await
    }

    async fn refresh(
        &self,
        client: &OAuthClient,
        presented: &str,
        asked: Asked<'_>,
        ip: &str,
    ) -> OAuthResult<TokenResponse> {
        let invalid = || OAuthError::from(OAuthReason::InvalidRefreshToken);
        if check_format(SecretKind::RefreshToken, presented).is_err() {
            return Err(invalid());
        }
        let hash = self.hasher().hash(presented);
        let Some(current) = self.store.get_refresh_token(&hash).await? else {
            return Err(invalid());
        };
        if current.client_id != client.id {
            return Err(invalid());
        }
        // RFC 9449 §5: a bound refresh token is used only with a proof of its key.
        if let Some(bound) = &current.dpop_jkt {
            match asked.jkt {
                None => return Err(OAuthReason::Dpop(DpopFailure::MissingProof).into()),
                Some(jkt) if jkt != bound => {
                    return Err(OAuthReason::Dpop(DpopFailure::KeyMismatch).into());
                }
                Some(_) => {}
            }
        }
        let Some(owner) = self.user_facts(&current.user_id).await? else {
            return Err(invalid());
        };
        let resource = self
            .granted_resource(current.resource_id.as_deref(), asked.resource)
            .await?;
        let (scopes, resource_scopes) = match &resource {
            None => (
                Self::requested_scopes(asked.scope, current.scopes)?,
                Vec::new(),
            ),
            Some(resource) => {
                let wanted = Self::requested_resource_scopes(
                    asked.scope,
                    resource,
                    &current.resource_scopes,
                )?;
                let allowed = Self::client_resource_scopes(client, resource);
                let held = self
                    .held_scopes(&current.user_id, owner.role, resource)
                    .await?;
                let names = kept(&wanted, |n| allowed.contains(n) && held.contains(n));
                (Scopes::EMPTY, names)
            }
        };
        let now = self.now();
        let secret = match current.successor_key {
            Some(key) => self.refresh_successor(&key, presented),
            None => generate(SecretKind::RefreshToken),
        };
        let successor = RefreshToken {
            hash: self.hasher().hash(secret.expose()),
            family_id: current.family_id.clone(),
            client_id: client.id.clone(),
            user_id: current.user_id.clone(),
            // A client whose scopes were narrowed since the grant keeps only what it may
            // still use.
            scopes: current.scopes.intersect(client.scopes),
            issued_at: now,
            expires_at: (now + self.settings.refresh_token_ttl).min(current.family_expires_at),
            family_expires_at: current.family_expires_at,
            auth_time: current.auth_time,
            amr: current.amr,
            rotated_at: None,
            revoked_at: None,
            successor_key: Some(DerivationKey::random()),
            resource_id: current.resource_id.clone(),
            resource_scopes: resource.as_ref().map_or_else(Vec::new, |r| {
                let allowed = Self::client_resource_scopes(client, r);
                kept(&current.resource_scopes, |n| allowed.contains(n))
            }),
            sid: current.sid.clone(),
            dpop_jkt: current.dpop_jkt.clone(),
        };
        match self
            .store
            .rotate_refresh_token(&hash, now, self.settings.refresh_reuse_grace, &successor)
            .await?
        {
            RotateOutcome::Rotated(_) => {}
            RotateOutcome::Invalid => return Err(invalid()),
            RotateOutcome::ReuseDetected(reused) => {
                self.revoke_family_tokens(&reused.family_id).await?;
                self.audit(
                    Some(&reused.user_id),
                    "refresh_token.reuse_detected",
                    Some(ip),
                    json!({ "client_id": reused.client_id, "family_id": reused.family_id }),
                )
                .await;
                return Err(invalid());
            }
        }
        let scopes = scopes
            .intersect(owner.role.max_scopes())
            .intersect(client.scopes);
        self.issue(
            &Grant {
                client,
                user_id: &current.user_id,
                scopes,
                resource: resource.as_deref(),
                resource_scopes: &resource_scopes,
                family_id: Some(&current.family_id),
                auth_time: Some(current.auth_time),
                amr: current.amr,
                nonce: None,
                sid: current.sid.as_deref(),
                jkt: asked.jkt,
            },
            Some(secret),
        )
        .await
    }

    async fn exchange_code(
        &self,
        client: &OAuthClient,
        presented: PresentedCode<'_>,
        ip: &str,
    ) -> OAuthResult<TokenResponse> {
        let invalid = || OAuthError::from(OAuthReason::InvalidCode);
        if check_format(SecretKind::AuthorizationCode, presented.code).is_err() {
            return Err(invalid());
        }
        let now = self.now();
        let Some(code) = self
            .store
            .consume_authorization_code(&self.hasher().hash(presented.code), now)
            .await?
        else {
            return Err(invalid());
        };
        if code.client_id != client.id {
            return Err(invalid());
        }
        if code.used_at.is_some() {
            self.revoke_family_tokens(&code.family_id).await?;
            self.audit(
                Some(&code.user_id),
                "authorization_code.reuse_detected",
                Some(ip),
                json!({ "client_id": client.id }),
            )
            .await;
            return Err(invalid());
        }
        if now >= code.expires_at {
            return Err(invalid());
        }
        // RFC 6749 §4.1.3: the same redirect_uri, required when the authorization request
        // named one. It may be left out only when that request did not (the client has a
        // single registered URI, so there is nothing to confuse it with).
        let only_uri =
            client.redirect_uris.len() == 1 && client.redirect_uris[0] == code.redirect_uri;
        let redirect_matches = match presented.redirect_uri {
            Some(uri) => uri == code.redirect_uri,
            None => !code.redirect_uri_in_request && only_uri,
        };
        if !redirect_matches {
            return Err(OAuthReason::RedirectMismatch.into());
        }
        match (&code.code_challenge, presented.code_verifier) {
            (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => {}
            (None, None) => {}
            _ => return Err(OAuthReason::PkceFailed.into()),
        }
        // RFC 9449 §10: a code the authorization request bound to a key (`dpop_jkt`) is
        // exchanged only with a proof of that key. Like a failed PKCE check, a failure uses
        // the code up: whoever holds it without the key gets nothing from it.
        if let Some(bound) = &code.dpop_jkt {
            match presented.jkt {
                None => return Err(OAuthReason::Dpop(DpopFailure::MissingProof).into()),
                Some(jkt)
                    if bool::from(subtle::ConstantTimeEq::ct_eq(
                        jkt.as_bytes(),
                        bound.as_bytes(),
                    )) => {}
                Some(_) => return Err(OAuthReason::Dpop(DpopFailure::KeyMismatch).into()),
            }
        }
        let Some(owner) = self.user_facts(&code.user_id).await? else {
            return Err(invalid());
        };
        let resource = self
            .granted_resource(code.resource_id.as_deref(), presented.resource)
            .await?;
        let scopes = code
            .scopes
            .intersect(owner.role.max_scopes())
            .intersect(client.scopes);
        let resource_scopes = match &resource {
            None => Vec::new(),
            Some(resource) => {
                let allowed = Self::client_resource_scopes(client, resource);
                let held = self
                    .held_scopes(&code.user_id, owner.role, resource)
                    .await?;
                kept(&code.resource_scopes, |n| {
                    allowed.contains(n) && held.contains(n)
                })
            }
        };
        let grant = Grant {
            client,
            user_id: &code.user_id,
            scopes,
            resource: resource.as_deref(),
            resource_scopes: &resource_scopes,
            family_id: Some(&code.family_id),
            auth_time: Some(code.auth_time),
            amr: code.amr,
            nonce: code.nonce.as_deref(),
            sid: code.sid.as_deref(),
            jkt: presented.jkt,
        };
        let refresh = self
            .first_refresh_token(&grant, &code.family_id, code.auth_time, now)
            .await?;
        self.issue(&grant, refresh).await
    }

    /// The first refresh token of a new family (code and device grants), when the client may
    /// refresh. A public client's is bound to the DPoP key its access token is bound to; a
    /// confidential client's is not (it authenticates; RFC 9449 §5).
    pub(super) async fn first_refresh_token(
        &self,
        grant: &Grant<'_>,
        family_id: &str,
        auth_time: crate::Timestamp,
        now: crate::Timestamp,
    ) -> OAuthResult<Option<Secret>> {
        if !grant.client.allows(GrantType::RefreshToken) {
            return Ok(None);
        }
        let secret = generate(SecretKind::RefreshToken);
        self.store
            .insert_refresh_token(&RefreshToken {
                hash: self.hasher().hash(secret.expose()),
                family_id: family_id.to_owned(),
                client_id: grant.client.id.clone(),
                user_id: grant.user_id.to_owned(),
                scopes: grant.scopes,
                issued_at: now,
                expires_at: now + self.settings.refresh_token_ttl,
                family_expires_at: now + self.settings.refresh_token_max_ttl,
                auth_time,
                amr: grant.amr,
                rotated_at: None,
                revoked_at: None,
                successor_key: Some(DerivationKey::random()),
                resource_id: grant.resource.map(|r| r.id.clone()),
                resource_scopes: grant.resource_scopes.to_vec(),
                sid: grant.sid.map(str::to_owned),
                dpop_jkt: grant
                    .jkt
                    .filter(|_| grant.client.is_public())
                    .map(str::to_owned),
            })
            .await?;
        Ok(Some(secret))
    }

    /// The live resource a grant (a code or refresh token) was made for, which a token
    /// request may name again or leave out (`invalid_target` for any other); `None`: Net
    /// API's own.
    pub(super) async fn granted_resource(
        &self,
        granted: Option<&str>,
        named: Option<&ResourceIndicator>,
    ) -> OAuthResult<Option<Arc<Resource>>> {
        let resource = match granted {
            None => None,
            Some(id) => Some(
                self.resource_by_id(id)
                    .await?
                    .filter(|r| r.deleted_at.is_none())
                    .ok_or(OAuthReason::GrantResourceGone)?,
            ),
        };
        let identifier = resource
            .as_ref()
            .map_or(self.settings.issuer.as_str(), |r| r.identifier.as_str());
        match named {
            Some(named) if named.as_str() != identifier => {
                Err(OAuthReason::ResourceNotGranted.into())
            }
            _ => Ok(resource),
        }
    }

    /// The successor of a refresh token: an HMAC of the token's own random key and the
    /// presented token, under a key derived from the pepper. A second exchange within the
    /// grace period gets the same successor without it being stored in the clear, so a replay
    /// cannot start a second live branch.
    fn refresh_successor(&self, key: &DerivationKey, presented: &str) -> Secret {
        use hmac::Mac;
        let server_key = self.hasher().hash("netapi refresh-successor key");
        #[allow(clippy::expect_used)]
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&server_key.0)
            .expect("HMAC takes keys of any length");
        mac.update(b"refresh-successor");
        mac.update(&key.0);
        mac.update(presented.as_bytes());
        from_seed(SecretKind::RefreshToken, mac.finalize().into_bytes().into())
    }

    /// Revokes a family: its refresh tokens in storage and its access tokens everywhere.
    pub(crate) async fn revoke_family_tokens(&self, family_id: &str) -> Result<(), Error> {
        let now = self.now();
        self.store.revoke_refresh_family(family_id, now).await?;
        self.invalidate(Invalidation::Family {
            family_id: family_id.to_owned(),
            expires_at: now + self.settings.access_token_ttl,
        })
        .await
    }

    pub(super) async fn issue(
        &self,
        grant: &Grant<'_>,
        refresh: Option<Secret>,
    ) -> OAuthResult<TokenResponse> {
        self.issue_token(grant, refresh, None).await
    }

    /// Signs the access token (and ID token, and returns the refresh token) of a grant;
    /// `exchanged`: the token exchange's actor chain and the subject token's expiry, which
    /// the new token does not outlive.
    pub(super) async fn issue_token(
        &self,
        grant: &Grant<'_>,
        refresh: Option<Secret>,
        exchanged: Option<(&super::Actor, i64)>,
    ) -> OAuthResult<TokenResponse> {
        // The ID token's `email` and `email_verified` (with the `email` scope), as the user
        // is now.
        let email = if grant.auth_time.is_some()
            && grant.scopes.contains(Scope::OpenId)
            && grant.scopes.contains(Scope::Email)
        {
            self.user_facts(grant.user_id)
                .await
                .map_err(OAuthError::from)?
                .map(|facts| (facts.user.email.clone(), facts.user.email_verified))
        } else {
            None
        };
        let now = self.now();
        let ring = self.key_ring();
        let (ttl, aud, scope) = match grant.resource {
            None => (
                self.settings.access_token_ttl,
                self.settings.issuer.clone(),
                grant.scopes.to_string(),
            ),
            Some(resource) => (
                resource
                    .access_token_ttl
                    .map_or(self.settings.access_token_ttl, i64::from),
                resource.identifier.clone(),
                grant.resource_scopes.join(" "),
            ),
        };
        let ttl = exchanged.map_or(ttl, |(_, until)| ttl.min(until - now));
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: grant.user_id.to_owned(),
            aud,
            client_id: grant.client.id.clone(),
            scope: scope.clone(),
            jti: new_id("at"),
            iat: now,
            exp: now + ttl,
            nbf: None,
            sid: grant.family_id.map(str::to_owned),
            auth_time: grant.auth_time,
            act: exchanged.map(|(actor, _)| actor.clone()),
            cnf: grant.jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        };
        let unavailable = || OAuthError::from(OAuthReason::NoSigningKey);
        let access_token = ring.sign("at+jwt", &claims).ok_or_else(unavailable)?;
        // An ID token only when `openid` is among the granted scopes: a refresh that narrows
        // them without it gets none, and skips the RSA signature (about a millisecond).
        let id_token = match grant.auth_time {
            // An exchanged token is an access token alone (RFC 8693 issues one token).
            Some(auth_time) if exchanged.is_none() && grant.scopes.contains(Scope::OpenId) => {
                let id_alg = self.id_token_alg(grant.client, &ring);
                let mut id_claims = json!({
                    "iss": self.settings.issuer,
                    "sub": grant.user_id,
                    "aud": grant.client.id,
                    "azp": grant.client.id,
                    "iat": now,
                    "exp": now + self.id_token_ttl(),
                    "auth_time": auth_time,
                    "amr": grant.amr.values(),
                    "acr": grant.amr.acr(),
                    "at_hash": left_half_hash(id_alg, &access_token),
                });
                if let Some(nonce) = grant.nonce {
                    id_claims["nonce"] = json!(nonce);
                }
                if let Some(sid) = grant.sid {
                    id_claims["sid"] = json!(sid);
                    // The session's clients are told when it ends (back-channel logout).
                    self.record_id_token(sid, grant.client, grant.user_id)
                        .await
                        .map_err(OAuthError::from)?;
                }
                if let Some((email, verified)) = email {
                    id_claims["email"] = json!(email);
                    id_claims["email_verified"] = json!(verified);
                }
                Some(
                    ring.sign_with(id_alg, "JWT", &id_claims)
                        .ok_or_else(unavailable)?,
                )
            }
            _ => None,
        };
        Ok(TokenResponse {
            access_token,
            token_type: if grant.jkt.is_some() {
                "DPoP"
            } else {
                "Bearer"
            },
            expires_in: ttl,
            scope,
            refresh_token: refresh.map(|s| s.expose().to_owned()),
            id_token,
            issued_token_type: exchanged.map(|_| super::ACCESS_TOKEN_TYPE),
        })
    }

    /// The algorithm of `client`'s ID tokens: the one it registered, or for a client
    /// registered before there was a choice, the server's `signing_algorithm`. A registered
    /// algorithm the server no longer has keys for (after `signing_algorithm` changed and
    /// the keys were rotated) falls back to the server's.
    pub(super) fn id_token_alg(&self, client: &OAuthClient, ring: &KeyRing) -> SigningAlgorithm {
        client
            .id_token_signed_response_alg
            .filter(|alg| ring.can_sign_with(*alg))
            .unwrap_or(self.settings.signing_algorithm)
    }

    /// `POST /oauth/revoke` (RFC 7009). Unknown tokens, and tokens of other clients, are
    /// ignored; the answer is the same either way.
    pub async fn revoke_token(
        &self,
        request: &ClientRequest<TokenTarget>,
        ip: &str,
    ) -> OAuthResult<()> {
        let client = self.authenticate_client(&request.client, ip).await?;
        let token = request.params.token.expose();
        if token.starts_with(SecretKind::RefreshToken.prefix()) {
            if check_format(SecretKind::RefreshToken, token).is_ok()
                && let Some(found) = self
                    .store
                    .get_refresh_token(&self.hasher().hash(token))
                    .await?
                && found.client_id == client.id
            {
                self.revoke_family_tokens(&found.family_id).await?;
                self.audit(
                    Some(&found.user_id),
                    "refresh_token.revoked",
                    Some(ip),
                    json!({ "client_id": client.id }),
                )
                .await;
            }
            return Ok(());
        }
        let claims: Option<AccessClaims> = self.key_ring().verify(token, "at+jwt").ok();
        if let Some(claims) = claims
            && claims.client_id == client.id
            && claims.iss == self.settings.issuer
        {
            self.invalidate(Invalidation::AccessToken {
                jti: claims.jti.clone(),
                expires_at: claims.exp,
            })
            .await?;
            self.audit(
                Some(&claims.sub),
                "access_token.revoked",
                Some(ip),
                json!({ "client_id": client.id, "jti": claims.jti }),
            )
            .await;
        }
        Ok(())
    }

    /// `POST /oauth/introspect` (RFC 7662), for confidential clients. Introspecting an API
    /// key or an access token is a use of it, counted against its per-minute limit (see
    /// [`Self::introspect_api_key`]); refresh tokens have no limit.
    pub async fn introspect(
        &self,
        request: &ClientRequest<TokenTarget>,
        ip: &str,
    ) -> OAuthResult<Introspection> {
        let client = self.authenticate_client(&request.client, ip).await?;
        if client.is_public() {
            return Err(OAuthReason::ClientAuthenticationFailed.into());
        }
        let token = request.params.token.expose();
        let inactive = Introspection::default();
        let now = self.now();
        if token.starts_with(SecretKind::ApiKey.prefix()) {
            return self.introspect_api_key(&client, token, now).await;
        }
        if token.starts_with(SecretKind::RefreshToken.prefix()) {
            if check_format(SecretKind::RefreshToken, token).is_err() {
                return Ok(inactive);
            }
            let found = self
                .store
                .get_refresh_token(&self.hasher().hash(token))
                .await?;
            let Some(t) = found
                .filter(|t| t.revoked_at.is_none() && t.rotated_at.is_none() && now < t.expires_at)
            else {
                return Ok(inactive);
            };
            if self.user_facts(&t.user_id).await?.is_none() {
                return Ok(inactive);
            }
            let (aud, scope) =
                match &t.resource_id {
                    None if !self.may_learn_of_own_token(&client, &t.client_id).await? => {
                        return Ok(inactive);
                    }
                    None => (None, t.scopes.to_string()),
                    Some(id) => match self.resource_by_id(id).await?.filter(|r| {
                        r.deleted_at.is_none() && client.resources.contains(&r.identifier)
                    }) {
                        Some(r) => (Some(r.identifier.clone()), t.resource_scopes.join(" ")),
                        None => return Ok(inactive),
                    },
                };
            return Ok(Introspection {
                active: true,
                scope: Some(scope),
                client_id: Some(t.client_id),
                sub: Some(t.user_id),
                aud,
                iss: Some(self.settings.issuer.clone()),
                iat: Some(t.issued_at),
                exp: Some(t.expires_at),
                token_type: Some("refresh_token"),
                ..Introspection::default()
            });
        }
        let Ok(claims) = self.verify_access_token(token, now) else {
            return Ok(inactive);
        };
        // A token for a resource is told only to clients that list the resource.
        let resource = match self.token_resource(&claims).await {
            Ok(Some(r)) if !client.resources.contains(&r.identifier) => return Ok(inactive),
            Ok(None)
                if !self
                    .may_learn_of_own_token(&client, &claims.client_id)
                    .await? =>
            {
                return Ok(inactive);
            }
            Ok(resource) => resource,
            Err(super::authn::Failure::Auth(..)) => return Ok(inactive),
            Err(super::authn::Failure::Other(err)) => return Err(err.into()),
        };
        let Some(issued_to) = self.client_facts(&claims.client_id).await? else {
            return Ok(inactive);
        };
        let Some(user) = self.user_facts(&claims.sub).await? else {
            return Ok(inactive);
        };
        // As for an API key, the answer is a use of the token: counted against its
        // per-minute limit (its client's, as on every other use), and a token over it is not
        // active.
        if self
            .hit_rate(
                &format!("client:{}", claims.client_id),
                issued_to.rate_limit,
            )
            .await
            .is_err()
        {
            return Ok(inactive);
        }
        let scope = match &resource {
            None => claims.scope.clone(),
            Some(resource) => {
                let held = self.held_scopes(&claims.sub, user.role, resource).await?;
                claims
                    .scope
                    .split(' ')
                    .filter(|s| held.iter().any(|h| h == s))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        Ok(Introspection {
            active: true,
            scope: Some(scope),
            client_id: Some(claims.client_id.clone()),
            sub: Some(claims.sub.clone()),
            aud: Some(claims.aud.clone()),
            iss: Some(claims.iss.clone()),
            iat: Some(claims.iat),
            exp: Some(claims.exp),
            jti: Some(claims.jti.clone()),
            token_type: Some(if claims.cnf.is_some() {
                "DPoP"
            } else {
                "Bearer"
            }),
            key_id: None,
            metadata: None,
            act: claims.act.clone(),
            cnf: claims.cnf.clone(),
        })
    }

    /// Whether the client's owner is an administrator (whose clients may learn about any
    /// credential for Net API's own API).
    async fn owner_is_admin(&self, client: &OAuthClient) -> Result<bool, Error> {
        let Some(owner_id) = client.owner_id.as_deref() else {
            return Ok(false);
        };
        Ok(self
            .user_facts(owner_id)
            .await?
            .is_some_and(|owner| owner.role == crate::scope::Role::Admin))
    }

    /// A token for Net API's own API is told about only to the client it was issued to, or
    /// to an admin's client: one application must not learn about another's users.
    pub(super) async fn may_learn_of_own_token(
        &self,
        client: &OAuthClient,
        issued_to: &str,
    ) -> Result<bool, Error> {
        Ok(client.id == issued_to || self.owner_is_admin(client).await?)
    }

    /// Introspection of an API key. A client learns about keys of the resources it lists;
    /// about keys for Net API's own, only an admin's client (its owner has the admin role)
    /// may. A client that can learn about none gets `{"active": false}` before the key is
    /// even looked up. As with forward auth and verification, the answer is a use of the key:
    /// it is counted in the key's usage and against its per-minute limit, and a key over its
    /// limit is not active (the caller should answer 429 or 401; `/v1/keys/verify` tells the
    /// two apart). Nothing is counted against the caller's address: the client
    /// authenticated.
    async fn introspect_api_key(
        &self,
        client: &OAuthClient,
        key: &str,
        now: i64,
    ) -> OAuthResult<Introspection> {
        let owner_is_admin = self.owner_is_admin(client).await?;
        if !owner_is_admin && client.resources.is_empty() {
            return Ok(Introspection::default());
        }
        match self.check_api_key(key, now).await {
            Ok((principal, _))
                if !match &principal.resource {
                    None => owner_is_admin,
                    Some(r) => client.resources.contains(&r.identifier),
                } =>
            {
                Ok(Introspection::default())
            }
            Ok((principal, stored)) => {
                let Some(target) = self
                    .protected_resource(principal.resource.as_ref().map(|r| r.identifier.as_str()))
                    .await?
                else {
                    return Ok(Introspection::default());
                };
                let scope = principal.scope_names();
                let user_id = principal.user_id.clone();
                let target_identifier = target.identifier.clone();
                if self
                    .admit(principal, target, std::iter::empty())
                    .await
                    .is_err()
                {
                    return Ok(Introspection::default());
                }
                Ok(Introspection {
                    active: true,
                    scope: Some(scope),
                    aud: Some(target_identifier),
                    sub: Some(user_id),
                    metadata: stored
                        .metadata
                        .as_deref()
                        .and_then(|m| serde_json::from_str(m).ok()),
                    iss: Some(self.settings.issuer.clone()),
                    iat: Some(stored.created_at),
                    exp: stored.expires_at,
                    token_type: Some("api_key"),
                    key_id: Some(stored.id.clone()),
                    ..Introspection::default()
                })
            }
            Err(super::authn::Failure::Auth(..)) => Ok(Introspection::default()),
            Err(super::authn::Failure::Other(err)) => Err(err.into()),
        }
    }
}

impl NetApi {
    /// OpenID Connect UserInfo claims for the caller, limited by its scopes.
    pub async fn userinfo(&self, caller: &super::Principal) -> Result<UserInfoClaims, Error> {
        let user = self
            .store
            .get_user(&caller.user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let profile = caller.scopes.contains(Scope::Profile);
        let email = caller.scopes.contains(Scope::Email);
        Ok(UserInfoClaims {
            name: profile.then(|| user.name.clone()),
            updated_at: profile.then_some(user.updated_at),
            email: email.then(|| user.email.clone()),
            email_verified: email.then_some(user.email_verified),
            sub: user.id,
        })
    }
}

/// The UserInfo claims a token's scopes allow: `name` and `updated_at` with `profile`,
/// `email` and `email_verified` with `email`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfoClaims {
    /// The user id.
    pub sub: String,
    /// The user's name.
    pub name: Option<String>,
    /// Last change, seconds since the epoch.
    pub updated_at: Option<i64>,
    /// The user's email.
    pub email: Option<String>,
    /// Whether the user verified the address (a link mailed to it).
    pub email_verified: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_example_from_rfc_7636() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
    }

    #[test]
    fn debug_output_of_a_token_response_carries_no_secret() {
        let response = TokenResponse {
            access_token: "eyJXYZZYaccess".to_owned(),
            token_type: "Bearer",
            expires_in: 60,
            scope: "users:read".to_owned(),
            refresh_token: Some("naprt_XYZZYnewrefresh".to_owned()),
            id_token: Some("eyJXYZZYid".to_owned()),
            issued_token_type: None,
        };
        let printed = format!("{response:?}");
        assert!(printed.contains("refresh_token") && printed.contains("users:read"));
        assert!(!printed.contains("XYZZY"), "{printed}");
    }
}
