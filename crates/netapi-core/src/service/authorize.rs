//! The authorization endpoint (RFC 6749 §4.1 with PKCE and RFC 9207 `iss`), consents and
//! browser sessions. The HTTP layer renders pages; every decision is made here.

use serde_json::json;

use super::requests::AuthorizationParams;
use super::sessions::SessionOrigin;
use super::{NetApi, Principal};
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::{
    Amr, AuthorizationCode, Consent, GrantType, MAX_USER_AGENT_LEN, OAuthClient, Resource, Session,
    User,
};
use crate::scope::Scopes;
use crate::secret::{Secret, SecretHash, SecretKind, check_format, generate, random_base62};
use crate::store::Invalidation;
use std::sync::Arc;

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The client.
    pub client: OAuthClient,
    /// The exact redirect URI (registered).
    pub redirect_uri: String,
    /// Whether the request named it (the token request must then repeat it).
    pub redirect_uri_in_request: bool,
    /// Requested scopes of Net API's own (within the client's); none for another resource.
    pub scopes: Scopes,
    /// The resource the tokens are to be for (RFC 8707); `None`: Net API's own.
    pub resource: Option<Arc<Resource>>,
    /// Requested scopes of `resource` (within the client's).
    pub resource_scopes: Vec<String>,
    /// Returned verbatim.
    pub state: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// The DPoP key thumbprint the code is to be bound to (`dpop_jkt`, RFC 9449 §10).
    pub dpop_jkt: Option<String>,
    /// OpenID Connect nonce.
    pub nonce: Option<String>,
    /// `prompt=login`: authenticate again.
    pub prompt_login: bool,
    /// `prompt=consent`: ask again.
    pub prompt_consent: bool,
    /// `prompt=none`: no page may be shown.
    pub prompt_none: bool,
    /// `max_age`: the longest acceptable time since the user authenticated.
    pub max_age: Option<i64>,
    /// The hash of the `request_uri` it was pushed under (RFC 9126), taken when a code is
    /// issued so that it serves once.
    pub pushed: Option<SecretHash>,
}

/// Where an authorization request's parameters come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Origin {
    /// The query of `/oauth/authorize` (or the consent form's copy of it).
    Query,
    /// A request pushed to `/oauth/par`, under this hash of its `request_uri`.
    Pushed(SecretHash),
    /// `/oauth/par` itself, checking what it is given.
    Par,
}

/// Why an authorization request cannot proceed.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show a page, never redirect.
    Page(PageReason),
    /// Tell the client, at its redirect URI.
    Redirect(ErrorRedirect),
    /// Tell a client the operator has not marked trusted, before the user has seen the
    /// request: a page with a link to this redirect (the one it would have been), so that a
    /// registered redirect URI cannot serve as an open redirector (RFC 9700 §4.11.2).
    Link(ErrorRedirect),
    /// Storage failed.
    Failed(Error),
}

/// Why an authorization request is answered with a page and not at the redirect URI: its
/// client or redirect URI cannot be trusted (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageReason {
    /// `client_id` or `redirect_uri` is given more than once.
    RepeatedParameter(&'static str),
    /// No `client_id`.
    MissingClientId,
    /// No client has that id.
    UnknownClient,
    /// `redirect_uri` is not one of the client's.
    RedirectMismatch,
    /// No `redirect_uri`, and the client has several.
    MissingRedirectUri,
    /// `request_uri` is unknown, expired, used, or another client's (RFC 9126 §4).
    InvalidRequestUri,
}

/// Why an authorization request is refused at the client's redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeReason {
    /// A parameter is given more than once (its name, at most 64 characters).
    RepeatedParameter(String),
    /// More than one `resource`.
    SeveralResources,
    /// `state` is longer than 512 bytes.
    StateTooLong,
    /// `request` or `request_uri`.
    RequestObject,
    /// `response_type` other than `code`.
    UnsupportedResponseType,
    /// No `response_type`.
    MissingResponseType,
    /// `response_mode` other than `query`.
    UnsupportedResponseMode,
    /// The client may not use the authorization code flow.
    UnauthorizedClient,
    /// `resource` is not an absolute URI without a fragment.
    MalformedResource,
    /// No live resource has that identifier, or the client does not list it.
    UnknownResource,
    /// A scope the resource does not have, or the client may not use there.
    InvalidResourceScope,
    /// A scope Net API does not have, or the client may not use.
    InvalidScope,
    /// `code_challenge` is not 43 characters of base64url.
    MalformedCodeChallenge,
    /// `code_challenge_method` is not `S256`.
    CodeChallengeMethod,
    /// `dpop_jkt` is not a SHA-256 JWK thumbprint (43 characters of base64url).
    MalformedDpopJkt,
    /// No `code_challenge`, and the client or the server requires PKCE.
    PkceRequired,
    /// `nonce` is longer than 512 bytes.
    NonceTooLong,
    /// A `prompt` value other than `none`, `login` or `consent`.
    UnknownPrompt,
    /// `prompt=none` with another value.
    PromptNoneCombined,
    /// `max_age` is not a non-negative integer.
    MalformedMaxAge,
    /// `prompt=none`, and nobody is signed in (or not recently enough).
    LoginRequired,
    /// `prompt=none`, and the user has not approved the client.
    ConsentRequired,
    /// The user said no.
    AccessDenied,
    /// The client, or the server, requires pushed authorization requests (RFC 9126 §5, §6),
    /// and this one was not pushed.
    ParRequired,
}

impl AuthorizeReason {
    /// The `error` code (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6, RFC 8707).
    pub const fn code(&self) -> &'static str {
        match self {
            Self::RepeatedParameter(_)
            | Self::StateTooLong
            | Self::MissingResponseType
            | Self::UnsupportedResponseMode
            | Self::MalformedCodeChallenge
            | Self::CodeChallengeMethod
            | Self::MalformedDpopJkt
            | Self::PkceRequired
            | Self::NonceTooLong
            | Self::UnknownPrompt
            | Self::PromptNoneCombined
            | Self::MalformedMaxAge
            | Self::ParRequired => "invalid_request",
            Self::SeveralResources | Self::MalformedResource | Self::UnknownResource => {
                "invalid_target"
            }
            Self::RequestObject => "request_not_supported",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidResourceScope | Self::InvalidScope => "invalid_scope",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::AccessDenied => "access_denied",
        }
    }
}

/// An error to send back to the client's redirect URI, with `error`, `error_description`,
/// `state` and `iss` (RFC 9207).
#[derive(Debug, Clone)]
pub struct ErrorRedirect {
    /// Why.
    pub reason: AuthorizeReason,
    redirect_uri: String,
    state: Option<String>,
    issuer: String,
}

impl ErrorRedirect {
    /// The URL, with `description` (the server's words for the reason) as `error_description`.
    pub fn url(&self, description: &str) -> String {
        let mut pairs = vec![
            ("error", self.reason.code()),
            ("error_description", description),
        ];
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.issuer));
        redirect_with(&self.redirect_uri, &pairs)
    }
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in pairs {
                    query.append_pair(name, value);
                }
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

impl AuthorizationRequest {
    /// An error found before the user has seen the request: redirected for a trusted
    /// client, otherwise shown on a page that links to the same redirect.
    pub fn early_error(&self, issuer: &str, reason: AuthorizeReason) -> AuthorizeError {
        let redirect = self.error_redirect(issuer, reason);
        if self.client.trusted {
            AuthorizeError::Redirect(redirect)
        } else {
            AuthorizeError::Link(redirect)
        }
    }

    /// The redirect telling the client about an error.
    pub fn error_redirect(&self, issuer: &str, reason: AuthorizeReason) -> ErrorRedirect {
        ErrorRedirect {
            reason,
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            issuer: issuer.to_owned(),
        }
    }
}

impl NetApi {
    /// Validates the parameters of `GET /oauth/authorize`. The client and redirect URI are
    /// checked first: until both are known, every error is a page (a repeated `client_id`
    /// or `redirect_uri` too, RFC 6749 §3.1); after that, each check in turn answers at the
    /// redirect URI.
    pub async fn validate_authorization(
        &self,
        params: &AuthorizationParams,
    ) -> std::result::Result<AuthorizationRequest, AuthorizeError> {
        if params.request_uri.is_none() {
            return self.check_authorization(params, Origin::Query).await;
        }
        // RFC 9126 §4: the pushed request, and of the query only `client_id`, which must be
        // the one that pushed it.
        if params.repeated.as_deref() == Some("client_id") {
            return Err(AuthorizeError::Page(PageReason::RepeatedParameter(
                "client_id",
            )));
        }
        let client_id = params
            .client_id
            .as_deref()
            .ok_or(AuthorizeError::Page(PageReason::MissingClientId))?;
        let pushed = self
            .pushed_request(params.request_uri.as_deref().unwrap_or_default(), client_id)
            .await?;
        let (hash, pairs) = pushed.ok_or(AuthorizeError::Page(PageReason::InvalidRequestUri))?;
        self.check_authorization(&AuthorizationParams::parse(&pairs), Origin::Pushed(hash))
            .await
    }

    /// Validates an authorization request's parameters, from the query, a pushed request,
    /// or at the PAR endpoint.
    pub(super) async fn check_authorization(
        &self,
        params: &AuthorizationParams,
        origin: Origin,
    ) -> std::result::Result<AuthorizationRequest, AuthorizeError> {
        if let Some(name @ ("client_id" | "redirect_uri")) = params.repeated.as_deref() {
            return Err(AuthorizeError::Page(PageReason::RepeatedParameter(
                if name == "client_id" {
                    "client_id"
                } else {
                    "redirect_uri"
                },
            )));
        }
        let client_id = params
            .client_id
            .as_deref()
            .ok_or(AuthorizeError::Page(PageReason::MissingClientId))?;
        let client = match self.store.get_client(client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => return Err(AuthorizeError::Page(PageReason::UnknownClient)),
            Err(err) => {
                tracing::warn!(error = %err, "authorize: storage failed");
                return Err(AuthorizeError::Failed(err.into()));
            }
        };
        let redirect_uri = match params.redirect_uri.as_deref() {
            Some(uri) if client.accepts_redirect_uri(uri) => uri.to_owned(),
            Some(_) => return Err(AuthorizeError::Page(PageReason::RedirectMismatch)),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(AuthorizeError::Page(PageReason::MissingRedirectUri)),
        };
        let mut request = AuthorizationRequest {
            scopes: client.scopes,
            resource: None,
            resource_scopes: Vec::new(),
            client,
            redirect_uri,
            redirect_uri_in_request: params.redirect_uri.is_some(),
            state: None,
            code_challenge: None,
            dpop_jkt: None,
            nonce: None,
            prompt_login: false,
            prompt_consent: false,
            prompt_none: false,
            max_age: None,
            pushed: None,
        };
        let issuer = self.settings.issuer.clone();
        // The user has seen nothing of this request yet.
        let fail = |request: &AuthorizationRequest, reason: AuthorizeReason| {
            request.early_error(&issuer, reason)
        };
        // A `state` that is too long, or repeated, is not sent back.
        match &params.state {
            Ok(state) => request.state.clone_from(state),
            Err(reason) => return Err(fail(&request, reason.clone())),
        }
        if let Some(name) = &params.repeated {
            if name == "state" {
                request.state = None;
            }
            let reason = if name == "resource" {
                AuthorizeReason::SeveralResources
            } else {
                AuthorizeReason::RepeatedParameter(name.clone())
            };
            return Err(fail(&request, reason));
        }
        if params.request_object {
            return Err(fail(&request, AuthorizeReason::RequestObject));
        }
        match origin {
            Origin::Query
                if request.client.require_par
                    || self.settings.require_pushed_authorization_requests =>
            {
                return Err(fail(&request, AuthorizeReason::ParRequired));
            }
            Origin::Query | Origin::Par => {}
            Origin::Pushed(hash) => request.pushed = Some(hash),
        }
        if params.request_uri.is_some() {
            // Only at the PAR endpoint, where RFC 9126 §2.1 forbids it (a pushed request
            // never holds one).
            return Err(AuthorizeError::Page(PageReason::InvalidRequestUri));
        }
        if let Err(reason) = &params.response {
            return Err(fail(&request, reason.clone()));
        }
        if !request.client.allows(GrantType::AuthorizationCode) {
            return Err(fail(&request, AuthorizeReason::UnauthorizedClient));
        }
        let named = match &params.resource {
            Ok(named) => named.as_ref(),
            Err(reason) => return Err(fail(&request, reason.clone())),
        };
        match self.requested_resource(named, &request.client).await {
            Ok(None) => {}
            Ok(Some(resource)) => {
                let allowed: Vec<String> = resource
                    .scopes
                    .iter()
                    .map(|s| &s.name)
                    .filter(|n| request.client.resource_scopes.contains(n))
                    .cloned()
                    .collect();
                let wanted: Vec<&str> = params
                    .scope
                    .as_deref()
                    .map(|s| s.split(' ').filter(|n| !n.is_empty()).collect())
                    .unwrap_or_default();
                if wanted.iter().any(|n| !allowed.iter().any(|a| a == n)) {
                    return Err(fail(&request, AuthorizeReason::InvalidResourceScope));
                }
                request.scopes = Scopes::EMPTY;
                request.resource_scopes = if wanted.is_empty() {
                    allowed
                } else {
                    allowed
                        .into_iter()
                        .filter(|a| wanted.contains(&a.as_str()))
                        .collect()
                };
                request.resource = Some(resource);
            }
            Err(err) if err.kind() == super::OAuthErrorKind::InvalidTarget => {
                return Err(fail(&request, AuthorizeReason::UnknownResource));
            }
            Err(_) => return Err(AuthorizeError::Failed(Error::Unavailable)),
        }
        if let Some(scope) = params
            .scope
            .as_deref()
            .filter(|_| request.resource.is_none())
        {
            match Scopes::parse_space_separated(scope) {
                Ok(scopes) if scopes.is_subset_of(request.client.scopes) && !scopes.is_empty() => {
                    request.scopes = scopes;
                }
                _ => return Err(fail(&request, AuthorizeReason::InvalidScope)),
            }
        }
        match &params.code_challenge {
            Ok(Some(challenge)) => request.code_challenge = Some(challenge.clone()),
            Ok(None) if request.client.is_public() || self.settings.require_pkce => {
                return Err(fail(&request, AuthorizeReason::PkceRequired));
            }
            Ok(None) => {}
            Err(reason) => return Err(fail(&request, reason.clone())),
        }
        request.dpop_jkt = params.dpop_jkt.clone().map_err(|r| fail(&request, r))?;
        request.nonce = params.nonce.clone().map_err(|r| fail(&request, r))?;
        let prompt = params.prompt.clone().map_err(|r| fail(&request, r))?;
        let max_age = params.max_age.clone().map_err(|r| fail(&request, r))?;
        request.prompt_none = prompt.none;
        request.prompt_login = prompt.login;
        request.prompt_consent = prompt.consent;
        request.max_age = max_age;
        Ok(request)
    }

    /// Whether the session is fresh enough for the request (`prompt=login` and `max_age`).
    pub fn session_satisfies(
        &self,
        request: &AuthorizationRequest,
        session: &Session,
        fresh_login: bool,
    ) -> bool {
        if request.prompt_login && !fresh_login {
            return false;
        }
        request
            .max_age
            .is_none_or(|max_age| self.now() - session.auth_time <= max_age)
    }

    /// Whether the user already approved these scopes for this client.
    pub async fn has_consent(&self, user_id: &str, request: &AuthorizationRequest) -> Result<bool> {
        if request.prompt_consent {
            return Ok(false);
        }
        Ok(self
            .store
            .get_consent(user_id, &request.client.id)
            .await?
            .is_some_and(|c| {
                request.scopes.is_subset_of(c.scopes)
                    && request.resource.as_ref().is_none_or(|r| {
                        request.resource_scopes.iter().all(|name| {
                            c.resource_scopes
                                .iter()
                                .any(|(id, n)| id == &r.id && n == name)
                        })
                    })
            }))
    }

    /// Records consent (when `remember`) and issues a code; returns the redirect URL carrying
    /// `code`, `state` and `iss`.
    pub async fn approve(
        &self,
        session: &Session,
        request: &AuthorizationRequest,
        remember: bool,
    ) -> Result<String> {
        let now = self.now();
        if let Some(hash) = &request.pushed
            && !self
                .store
                .take_pushed_request(hash, &request.client.id, now)
                .await?
        {
            // Used by another approval since (single use, RFC 9126 §4), or expired.
            return Err(Error::invalid(
                "request_uri",
                "The pushed authorization request has expired or was already used; the application must start again.",
            ));
        }
        if remember {
            self.remember_consent(
                &session.user_id,
                &request.client.id,
                request.scopes,
                request.resource.as_deref(),
                &request.resource_scopes,
            )
            .await?;
        }
        let secret = generate(SecretKind::AuthorizationCode);
        self.store
            .insert_authorization_code(&AuthorizationCode {
                hash: self.hasher().hash(secret.expose()),
                client_id: request.client.id.clone(),
                user_id: session.user_id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                redirect_uri_in_request: request.redirect_uri_in_request,
                scopes: request.scopes,
                code_challenge: request.code_challenge.clone(),
                nonce: request.nonce.clone(),
                auth_time: session.auth_time,
                amr: session.amr,
                family_id: new_id("fam"),
                created_at: now,
                expires_at: now + self.settings.authorization_code_ttl,
                used_at: None,
                resource_id: request.resource.as_ref().map(|r| r.id.clone()),
                resource_scopes: request.resource_scopes.clone(),
                sid: (!session.sid.is_empty()).then(|| session.sid.clone()),
                dpop_jkt: request.dpop_jkt.clone(),
            })
            .await?;
        let mut pairs = vec![("code", secret.expose())];
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.settings.issuer));
        Ok(redirect_with(&request.redirect_uri, &pairs))
    }

    /// Records (widening what was there) that `user_id` approved `scopes`, and
    /// `resource_scopes` of `resource`, for the client.
    pub(super) async fn remember_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: Scopes,
        resource: Option<&Resource>,
        resource_scopes: &[String],
    ) -> Result<()> {
        let previous = self.store.get_consent(user_id, client_id).await?;
        let scopes: Scopes = previous
            .as_ref()
            .map_or(Scopes::EMPTY, |c| c.scopes)
            .iter()
            .chain(scopes.iter())
            .collect();
        let mut merged = previous.map(|c| c.resource_scopes).unwrap_or_default();
        if let Some(resource) = resource {
            for name in resource_scopes {
                let pair = (resource.id.clone(), name.clone());
                if !merged.contains(&pair) {
                    merged.push(pair);
                }
            }
        }
        self.store
            .upsert_consent(&Consent {
                user_id: user_id.to_owned(),
                client_id: client_id.to_owned(),
                scopes,
                resource_scopes: merged,
                granted_at: self.now(),
            })
            .await?;
        Ok(())
    }

    /// Starts a browser session for a user who just signed in (`amr`: how), from `origin`.
    pub async fn start_session(
        &self,
        user: &User,
        amr: Amr,
        origin: &SessionOrigin<'_>,
    ) -> Result<(Secret, Session)> {
        let secret = generate(SecretKind::Session);
        let now = self.now();
        let session = Session {
            hash: self.hasher().hash(secret.expose()),
            user_id: user.id.clone(),
            auth_time: now,
            amr,
            csrf_token: random_base62(32),
            expires_at: now + self.settings.session_ttl,
            created_at: now,
            last_seen_at: now,
            user_agent: origin.user_agent.map(|ua| {
                let mut end = ua.len().min(MAX_USER_AGENT_LEN);
                while !ua.is_char_boundary(end) {
                    end -= 1;
                }
                ua[..end].to_owned()
            }),
            source: origin.source.map(str::to_owned),
            sid: format!("sid_{}", random_base62(22)),
        };
        self.store.insert_session(&session).await?;
        Ok((secret, session))
    }

    /// The live session (and its user) a cookie names; its `last_seen_at` is written at most
    /// once a minute.
    pub async fn find_session(&self, cookie: &str) -> Result<Option<(Session, User)>> {
        if check_format(SecretKind::Session, cookie).is_err() {
            return Ok(None);
        }
        let Some(session) = self.store.get_session(&self.hasher().hash(cookie)).await? else {
            return Ok(None);
        };
        let now = self.now();
        if now >= session.expires_at {
            return Ok(None);
        }
        if now - session.last_seen_at >= super::USAGE_RESOLUTION {
            self.store.touch_session(&session.hash, now).await?;
        }
        let user = self.store.get_user(&session.user_id).await?;
        Ok(user
            .filter(|user| user.disabled_at.is_none())
            .map(|user| (session, user)))
    }

    /// The principal of a signed-in portal user: the user's own powers, never `admin`.
    pub fn session_principal(user: &User) -> Principal {
        Principal {
            user_id: user.id.clone(),
            role: user.role,
            scopes: user.role.max_scopes().without(crate::scope::Scope::Admin),
            credential: super::Credential::Session,
            rate: None,
            resource: None,
            resource_scopes: Vec::new(),
        }
    }

    /// The principal of a signed-in administrator on the portal's resources page: admin
    /// powers limited to resources, grants and finding users; `None` for members.
    pub fn session_resource_admin(user: &User) -> Option<Principal> {
        use crate::scope::{Role, Scope};
        (user.role == Role::Admin).then(|| Principal {
            scopes: [
                Scope::Admin,
                Scope::ResourcesRead,
                Scope::ResourcesWrite,
                Scope::UsersRead,
            ]
            .into_iter()
            .fold(Scopes::EMPTY, Scopes::with),
            ..Self::session_principal(user)
        })
    }

    /// The principal of a signed-in administrator on the admin console: every power of the
    /// role, as an administrator's API key may carry; `None` for members.
    pub fn session_admin(user: &User) -> Option<Principal> {
        (user.role == crate::scope::Role::Admin).then(|| Principal {
            scopes: user.role.max_scopes(),
            ..Self::session_principal(user)
        })
    }

    /// The applications a user has authorized.
    pub async fn authorized_apps(
        &self,
        user_id: &str,
    ) -> Result<Vec<(Consent, Option<OAuthClient>)>> {
        let consents = self.store.list_consents(user_id).await?;
        let mut apps = Vec::with_capacity(consents.len());
        for consent in consents {
            let client = self.store.get_client(&consent.client_id).await?;
            apps.push((consent, client));
        }
        Ok(apps)
    }

    /// Withdraws a consent and revokes every token the client holds for the user, and the API
    /// keys it created with them.
    pub async fn withdraw_consent(
        &self,
        user_id: &str,
        client_id: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        let existed = self.store.delete_consent(user_id, client_id).await?;
        let families = self
            .store
            .revoke_refresh_for_client(user_id, client_id, self.now())
            .await?;
        for family_id in families {
            self.invalidate(Invalidation::Family {
                family_id,
                expires_at: self.now() + self.settings.access_token_ttl,
            })
            .await?;
        }
        // Keys the application made with the user's tokens end with the consent too.
        self.revoke_keys_of_client(client_id, Some(user_id)).await?;
        if !existed {
            return Err(Error::NotFound("authorization"));
        }
        self.audit(
            Some(user_id),
            "consent.withdrawn",
            ip,
            json!({ "client_id": client_id }),
        )
        .await;
        Ok(())
    }

    /// Checks a form's CSRF token against the session's, in constant time.
    pub fn csrf_matches(session: &Session, presented: &str) -> bool {
        crate::secret::constant_time_eq(&session.csrf_token, presented)
    }

    /// The issuer, for `iss` in redirects.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }
}
