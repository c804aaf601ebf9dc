//! OAuth client registration (RFC 7591 field names).

use serde_json::json;
use subtle::ConstantTimeEq;

use super::{NetApi, Page, PageRequest, Principal};
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::{
    ClientAuthMethod, ClientLogout, GrantType, OAuthClient, Resource, SigningAlgorithm,
};
use crate::scope::{Scope, Scopes};
use crate::secret::{Secret, SecretKind, check_format, generate};
use crate::store::{ClientChanges, Invalidation};
use std::sync::Arc;

/// A client to register.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// `client_name`.
    pub name: String,
    /// `redirect_uris`.
    pub redirect_uris: Vec<String>,
    /// `grant_types`; by default `authorization_code` + `refresh_token` when there are
    /// redirect URIs, else `client_credentials`.
    pub grant_types: Option<Vec<GrantType>>,
    /// `scope`, space separated; the caller's scopes by default.
    pub scope: Option<String>,
    /// `token_endpoint_auth_method`; `client_secret_basic` by default.
    pub auth_method: Option<ClientAuthMethod>,
    /// Requests per minute for its tokens, overriding the default.
    pub rate_limit: Option<u32>,
    /// Errors may be redirected before the user has seen a request; administrators only.
    pub trusted: bool,
    /// Identifiers of the resources it may ask tokens for (RFC 8707), besides Net API's own.
    pub resources: Option<Vec<String>>,
    /// `id_token_signed_response_alg`; RS256 by default.
    pub id_token_signed_response_alg: Option<SigningAlgorithm>,
    /// Identifiers of the resources (Net API's own issuer too) it may obtain tokens for by
    /// token exchange (RFC 8693); none by default.
    pub token_exchange_resources: Option<Vec<String>>,
    /// `post_logout_redirect_uris`, `backchannel_logout_uri`,
    /// `backchannel_logout_session_required`.
    pub logout: ClientLogout,
    /// `jwks` (a JWK Set), for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// `jwks_uri`, for `private_key_jwt`.
    pub jwks_uri: Option<String>,
    /// `require_pushed_authorization_requests`.
    pub require_par: bool,
    /// `dpop_bound_access_tokens` (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: bool,
}

/// A change to a client; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    /// `client_name`.
    pub name: Option<String>,
    /// `redirect_uris`.
    pub redirect_uris: Option<Vec<String>>,
    /// `grant_types`.
    pub grant_types: Option<Vec<GrantType>>,
    /// `scope`.
    pub scope: Option<String>,
    /// Requests per minute for its tokens (`Some(None)` returns to the default).
    pub rate_limit: Option<Option<u32>>,
    /// Whether the client is trusted; administrators only.
    pub trusted: Option<bool>,
    /// `resources` (identifiers).
    pub resources: Option<Vec<String>>,
    /// `id_token_signed_response_alg`.
    pub id_token_signed_response_alg: Option<SigningAlgorithm>,
    /// `token_exchange_resources` (identifiers; replaces the list).
    pub token_exchange_resources: Option<Vec<String>>,
    /// `post_logout_redirect_uris` (replaces the list).
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `backchannel_logout_uri` (`Some(None)` removes it).
    pub backchannel_logout_uri: Option<Option<String>>,
    /// `backchannel_logout_session_required`.
    pub backchannel_logout_session_required: Option<bool>,
    /// `jwks`; given with or without `jwks_uri`, the two are replaced together.
    pub jwks: Option<serde_json::Value>,
    /// `jwks_uri`; see `jwks`.
    pub jwks_uri: Option<String>,
    /// `require_pushed_authorization_requests`.
    pub require_par: Option<bool>,
    /// `dpop_bound_access_tokens` (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: Option<bool>,
}

/// A page of clients.
pub type ClientPage = Page<OAuthClient>;

/// Most redirect URIs per client.
const MAX_REDIRECT_URIS: usize = 20;
/// Longest redirect (or post-logout redirect) URI, in bytes.
const MAX_REDIRECT_URI_LEN: usize = 2_000;
/// Most resources per client.
const MAX_CLIENT_RESOURCES: usize = 20;

/// Checks one redirect URI: absolute, in normal form, printable ASCII, no fragment, no user
/// info; `https` to a host name or IP address, `http` only on loopback, or a private-use
/// scheme with a dot (RFC 8252 native apps).
pub fn validate_redirect_uri(uri: &str) -> Result<()> {
    check_uri("redirect_uris", uri)
}

/// [`validate_redirect_uri`]'s rules for the URI field `field` (`post_logout_redirect_uris`
/// too).
pub(super) fn check_uri(field: &'static str, uri: &str) -> Result<()> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(Error::invalid(
            field,
            format!("each must be at most {MAX_REDIRECT_URI_LEN} characters"),
        ));
    }
    let invalid = |why: &str| Error::invalid(field, format!("'{uri}' {why}"));
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("must be printable ASCII without spaces"));
    }
    let parsed = url::Url::parse(uri).map_err(|_| invalid("is not an absolute URI"))?;
    if parsed.as_str() != uri && parsed.as_str() != format!("{uri}/") {
        // The URI must already be in normal form, so that exact comparison is meaningful.
        return Err(invalid("is not in normal form"));
    }
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err(invalid("must not have a fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not contain user information"));
    }
    match parsed.scheme() {
        "https" => match parsed.host() {
            Some(url::Host::Domain(name)) if !is_host_name(name) => Err(invalid(
                "must name a host of letters, digits, hyphens and dots (or an IP address)",
            )),
            _ => Ok(()),
        },
        "http" => match parsed.host_str() {
            Some("127.0.0.1" | "[::1]" | "localhost") => Ok(()),
            _ => Err(invalid("may use http only on a loopback address")),
        },
        "javascript" | "data" | "file" | "vbscript" => Err(invalid("uses a forbidden scheme")),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(invalid(
            "must use https (or http on loopback, or an app's own scheme)",
        )),
    }
}

/// A DNS host name (RFC 1123, with `_` as browsers resolve it): dot-separated labels of 1 to
/// 63 lower-case letters, digits, hyphens and underscores, none starting or ending with a
/// hyphen, the last starting with a letter. The URL parser takes far more (`*`, `!`, `$`),
/// no name that can be looked up.
fn is_host_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |label: &&str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_lowercase()))
}

/// Reads `grant_types` (RFC 7591 names) where a request arrives: an unknown name is
/// `INVALID_ARGUMENT` on the field.
pub fn parse_grant_types(names: &[String]) -> Result<Vec<GrantType>> {
    names
        .iter()
        .map(|name| {
            GrantType::parse(name).ok_or_else(|| {
                Error::invalid(
                    "grant_types",
                    format!("'{name}' is not a supported grant type"),
                )
            })
        })
        .collect()
}

/// Reads `id_token_signed_response_alg` where a request arrives: a JOSE name Net API knows
/// (whether it has keys for it is checked on registration).
pub fn parse_id_token_alg(name: &str) -> Result<SigningAlgorithm> {
    SigningAlgorithm::parse(name).ok_or_else(|| {
        Error::invalid(
            "id_token_signed_response_alg",
            format!("'{name}' is not a supported algorithm"),
        )
    })
}

/// Reads `token_endpoint_auth_method` (RFC 7591 name) where a request arrives.
pub fn parse_auth_method(name: &str) -> Result<ClientAuthMethod> {
    ClientAuthMethod::parse(name).ok_or_else(|| {
        Error::invalid(
            "token_endpoint_auth_method",
            "must be client_secret_basic, client_secret_post, private_key_jwt or none",
        )
    })
}

/// A client's grant types: each once, at least one.
pub(super) fn distinct_grant_types(asked: &[GrantType]) -> Result<Vec<GrantType>> {
    let mut grants = Vec::new();
    for grant in asked {
        if !grants.contains(grant) {
            grants.push(*grant);
        }
    }
    if grants.is_empty() {
        return Err(Error::invalid(
            "grant_types",
            "must name at least one grant type",
        ));
    }
    Ok(grants)
}

/// Checks a new list of redirect URIs. Only a list being set is checked: a stored one that
/// an older version took is kept, so that changing a client's name does not fail on it.
pub(super) fn validate_redirect_uris(uris: &[String]) -> Result<()> {
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(Error::invalid(
            "redirect_uris",
            format!("at most {MAX_REDIRECT_URIS} are allowed"),
        ));
    }
    uris.iter().try_for_each(|uri| validate_redirect_uri(uri))
}

pub(super) fn check_client_shape(client: &OAuthClient) -> Result<()> {
    if client.allows(GrantType::AuthorizationCode) && client.redirect_uris.is_empty() {
        return Err(Error::invalid(
            "redirect_uris",
            "the authorization_code grant needs at least one redirect URI",
        ));
    }
    if client.is_public() && client.allows(GrantType::ClientCredentials) {
        return Err(Error::invalid(
            "grant_types",
            "a public client (token_endpoint_auth_method none) cannot use client_credentials",
        ));
    }
    if client.is_public() && client.allows(GrantType::TokenExchange) {
        return Err(Error::invalid(
            "grant_types",
            "a public client (token_endpoint_auth_method none) cannot use token exchange",
        ));
    }
    if client.is_public() && !client.token_exchange_resources.is_empty() {
        return Err(Error::invalid(
            "token_exchange_resources",
            "a public client (token_endpoint_auth_method none) cannot use token exchange",
        ));
    }
    Ok(())
}

/// Only an administrator (or the operator at the command line) decides which clients are
/// trusted with automatic error redirects.
fn check_may_set_trusted(caller: &Principal) -> Result<()> {
    if caller.is_admin() || caller.credential == super::Credential::Operator {
        Ok(())
    } else {
        Err(Error::PermissionDenied {
            scope: Some(Scope::Admin),
            message: "Only administrators may mark a client trusted.".to_owned(),
        })
    }
}

impl NetApi {
    /// A client's `token_exchange_resources`, each once: Net API's own identifier (the
    /// issuer) or a live resource on which `owner` holds at least one scope.
    pub(super) async fn token_exchange_targets(
        &self,
        owner: &Principal,
        identifiers: &[String],
    ) -> Result<Vec<String>> {
        const FIELD: &str = "token_exchange_resources";
        if identifiers.len() > MAX_CLIENT_RESOURCES {
            return Err(Error::invalid(
                FIELD,
                format!("at most {MAX_CLIENT_RESOURCES} are allowed"),
            ));
        }
        let mut targets: Vec<String> = Vec::with_capacity(identifiers.len());
        for identifier in identifiers {
            if targets.contains(identifier) {
                continue;
            }
            if identifier != &self.settings.issuer {
                let resource = self.live_resource(FIELD, identifier).await?;
                if self
                    .held_scopes(&owner.user_id, owner.role, &resource)
                    .await?
                    .is_empty()
                {
                    return Err(Error::PermissionDenied {
                        scope: None,
                        message: format!(
                            "A client cannot exchange tokens for the resource '{}', on which you hold no scope.",
                            resource.identifier
                        ),
                    });
                }
            }
            targets.push(identifier.clone());
        }
        Ok(targets)
    }

    /// The live resources a client lists, each once.
    pub(super) async fn client_resources(
        &self,
        identifiers: &[String],
    ) -> Result<Vec<Arc<Resource>>> {
        if identifiers.len() > MAX_CLIENT_RESOURCES {
            return Err(Error::invalid(
                "resources",
                format!("at most {MAX_CLIENT_RESOURCES} are allowed"),
            ));
        }
        let mut resources: Vec<Arc<Resource>> = Vec::with_capacity(identifiers.len());
        for identifier in identifiers {
            if identifier == &self.settings.issuer {
                // Net API's own is always allowed; listing it changes nothing.
                continue;
            }
            let resource = self.live_resource("resources", identifier).await?;
            if !resources.iter().any(|r| r.id == resource.id) {
                resources.push(resource);
            }
        }
        Ok(resources)
    }

    /// A client's scopes: `scope` names Net API's own scopes and those of its resources
    /// (`None`: every scope the caller has, and holds on those resources). The caller must
    /// hold each: a resource scope on at least one listed resource that has it.
    async fn client_scopes(
        &self,
        caller: &Principal,
        scope: Option<&str>,
        resources: &[Arc<Resource>],
    ) -> Result<(Scopes, Vec<String>)> {
        let held = self.held_on(caller, resources).await?;
        let Some(scope) = scope else {
            return Ok((caller.scopes, held));
        };
        let mut own = Scopes::EMPTY;
        let mut names: Vec<String> = Vec::new();
        for name in scope.split(' ').filter(|s| !s.is_empty()) {
            let builtin = crate::scope::Scope::parse(name);
            let of_resource = resources.iter().any(|r| r.has_scope(name));
            if builtin.is_none() && !of_resource {
                return Err(Error::invalid(
                    "scope",
                    format!(
                        "'{}' is not a known scope (of Net API or of the client's resources)",
                        name.chars().take(64).collect::<String>().escape_default()
                    ),
                ));
            }
            if let Some(builtin) = builtin {
                own = own.with(builtin);
            }
            if of_resource && !names.iter().any(|n| n == name) {
                if !held.iter().any(|h| h == name) {
                    return Err(Error::PermissionDenied {
                        scope: None,
                        message: format!(
                            "A client cannot be given the scope '{name}', which you do not hold on its resources."
                        ),
                    });
                }
                names.push(name.to_owned());
            }
        }
        Self::check_client_scopes(caller, own)?;
        Ok((own, names))
    }

    /// The scope names the caller holds on any of `resources`.
    async fn held_on(
        &self,
        caller: &Principal,
        resources: &[Arc<Resource>],
    ) -> Result<Vec<String>> {
        let mut held: Vec<String> = Vec::new();
        for resource in resources {
            for name in self
                .held_scopes(&caller.user_id, caller.role, resource)
                .await?
            {
                if !held.contains(&name) {
                    held.push(name);
                }
            }
        }
        Ok(held)
    }

    /// Whoever changes a client or rotates its secret can obtain tokens with every scope it
    /// has on its resources too: the caller must hold each of them there (an owner whose
    /// grant an administrator withdrew may no longer touch a client made with it).
    async fn check_client_resource_scopes(
        &self,
        caller: &Principal,
        client: &OAuthClient,
    ) -> Result<()> {
        if client.resource_scopes.is_empty() {
            return Ok(());
        }
        // A deleted resource's scopes obtain nothing any more: only live ones count.
        let mut resources = Vec::with_capacity(client.resources.len());
        for identifier in &client.resources {
            if let Some(live) = self.protected_resource(Some(identifier)).await?
                && let Some(resource) = live.resource
            {
                resources.push(resource);
            }
        }
        let held = self.held_on(caller, &resources).await?;
        let missing = client
            .resource_scopes
            .iter()
            .find(|name| !held.contains(name) && resources.iter().any(|r| r.has_scope(name)));
        match missing {
            None => Ok(()),
            Some(missing) => Err(Error::PermissionDenied {
                scope: None,
                message: format!(
                    "You cannot change a client that holds the scope '{missing}' of its resources, which you do not hold."
                ),
            }),
        }
    }

    /// An ID-token algorithm a client may register: one the server keeps keys for.
    pub(super) fn check_id_token_alg(&self, alg: SigningAlgorithm) -> Result<SigningAlgorithm> {
        let supported = self.signing_algorithms();
        if supported.contains(&alg) {
            return Ok(alg);
        }
        let names: Vec<&str> = supported.iter().map(|a| a.as_str()).collect();
        Err(Error::invalid(
            "id_token_signed_response_alg",
            format!("must be one of {}", names.join(", ")),
        ))
    }

    /// A client's scopes after a create or change must all be the caller's: whoever changes
    /// a client (its grants, redirect URIs or secret) can obtain tokens with them.
    fn check_client_scopes(caller: &Principal, scopes: Scopes) -> Result<()> {
        caller.require_all(scopes, |missing| {
            format!("A client cannot be given the scope '{missing}', which you do not have.")
        })
    }

    /// Registers a client owned by the caller. A confidential client's secret is returned
    /// this once.
    pub async fn create_client(
        &self,
        caller: &Principal,
        new: NewClient,
        ip: Option<&str>,
    ) -> Result<(OAuthClient, Option<Secret>)> {
        caller.require(Scope::ClientsWrite)?;
        if caller.user_id.is_empty() {
            return Err(Error::invalid("owner", "a client must belong to a user"));
        }
        let (client, secret) = self
            .build_client(caller, Some(caller.user_id.clone()), new)
            .await?;
        self.store.insert_client(&client).await?;
        self.clients.invalidate(&client.id);
        self.audit(
            Some(&caller.user_id),
            "oauth_client.created",
            ip,
            json!({ "client_id": client.id }),
        )
        .await;
        Ok((client, secret))
    }

    /// A new client checked against every rule, not stored yet: its scopes are limited to
    /// what `scope_holder` holds (no escalation), and it belongs to `owner_id`. A client
    /// without owner acts for no one, so it may not use `client_credentials`.
    pub(crate) async fn build_client(
        &self,
        scope_holder: &Principal,
        owner_id: Option<String>,
        new: NewClient,
    ) -> Result<(OAuthClient, Option<Secret>)> {
        let name = super::users::normalize_name("client_name", &new.name)?;
        let auth_method = new.auth_method.unwrap_or(ClientAuthMethod::SecretBasic);
        let grant_types = match &new.grant_types {
            Some(grants) => distinct_grant_types(grants)?,
            None if new.redirect_uris.is_empty() => vec![GrantType::ClientCredentials],
            None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        };
        if owner_id.is_none() && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(Error::invalid(
                "grant_types",
                "a client registered without an owner acts for no one, so it cannot use client_credentials",
            ));
        }
        let resources = self
            .client_resources(new.resources.as_deref().unwrap_or_default())
            .await?;
        let (scopes, resource_scopes) = self
            .client_scopes(scope_holder, new.scope.as_deref(), &resources)
            .await?;
        self.validate_rate_limit(scope_holder, "rate_limit_per_minute", new.rate_limit)?;
        let id_token_alg = self.check_id_token_alg(
            new.id_token_signed_response_alg
                .unwrap_or(SigningAlgorithm::Rs256),
        )?;
        if new.trusted {
            check_may_set_trusted(scope_holder)?;
        }
        let token_exchange_resources = self
            .token_exchange_targets(
                scope_holder,
                new.token_exchange_resources.as_deref().unwrap_or_default(),
            )
            .await?;
        let (jwks, jwks_uri) = self
            .checked_client_keys(auth_method, new.jwks.as_ref(), new.jwks_uri.as_deref())
            .await?;
        let secret = matches!(
            auth_method,
            ClientAuthMethod::SecretBasic | ClientAuthMethod::SecretPost
        )
        .then(|| generate(SecretKind::ClientSecret));
        let now = self.now();
        let client = OAuthClient {
            id: new_id("cli"),
            owner_id,
            name,
            redirect_uris: new.redirect_uris,
            grant_types,
            scopes,
            auth_method,
            secret_hash: secret.as_ref().map(|s| self.hasher().hash(s.expose())),
            rate_limit: new.rate_limit,
            trusted: new.trusted,
            resources: resources.iter().map(|r| r.identifier.clone()).collect(),
            resource_scopes,
            token_exchange_resources,
            id_token_signed_response_alg: Some(id_token_alg),
            logout: new.logout,
            jwks,
            jwks_uri,
            require_par: new.require_par,
            dpop_bound_access_tokens: new.dpop_bound_access_tokens,
            created_at: now,
            updated_at: now,
        };
        validate_redirect_uris(&client.redirect_uris)?;
        check_client_shape(&client)?;
        self.check_client_logout(&client.logout)?;
        Ok((client, secret))
    }

    /// The caller's clients (admins: everyone's).
    pub async fn list_clients(&self, caller: &Principal, page: PageRequest) -> Result<ClientPage> {
        caller.require(Scope::ClientsRead)?;
        let owner = (!caller.is_admin()).then_some(caller.user_id.as_str());
        let clients = self
            .store
            .list_clients(owner, page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(clients, |c| &c.id))
    }

    /// The clients `owner_id` registered: the caller's own, or anyone's for an administrator.
    pub async fn list_user_clients(
        &self,
        caller: &Principal,
        owner_id: &str,
        page: PageRequest,
    ) -> Result<ClientPage> {
        caller.require(Scope::ClientsRead)?;
        if !caller.may_act_on(owner_id) {
            return Err(Error::NotFound("user"));
        }
        let clients = self
            .store
            .list_clients(Some(owner_id), page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(clients, |c| &c.id))
    }

    async fn visible_client(&self, caller: &Principal, id: &str) -> Result<OAuthClient> {
        self.store
            .get_client(id)
            .await?
            .filter(|c| match &c.owner_id {
                Some(owner) => caller.may_act_on(owner),
                // A client registered without owner is an administrator's to manage.
                None => caller.is_admin(),
            })
            .ok_or(Error::NotFound("OAuth client"))
    }

    /// One client.
    pub async fn get_client(&self, caller: &Principal, id: &str) -> Result<OAuthClient> {
        caller.require(Scope::ClientsRead)?;
        self.visible_client(caller, id).await
    }

    /// Changes a client. Only the fields given are written, so a concurrent change (a secret
    /// rotation among them) is never undone.
    pub async fn update_client(
        &self,
        caller: &Principal,
        id: &str,
        update: ClientUpdate,
        ip: Option<&str>,
    ) -> Result<OAuthClient> {
        caller.require(Scope::ClientsWrite)?;
        let mut client = self.visible_client(caller, id).await?;
        let mut changes = ClientChanges::default();
        if let Some(name) = update.name {
            client.name = super::users::normalize_name("client_name", &name)?;
            changes.name = Some(client.name.clone());
        }
        if let Some(uris) = update.redirect_uris {
            validate_redirect_uris(&uris)?;
            client.redirect_uris = uris;
            changes.redirect_uris = Some(client.redirect_uris.clone());
        }
        if let Some(grants) = update.grant_types {
            client.grant_types = distinct_grant_types(&grants)?;
            changes.grant_types = Some(client.grant_types.clone());
        }
        if update.scope.is_some() || update.resources.is_some() {
            let resources = match &update.resources {
                Some(identifiers) => self.client_resources(identifiers).await?,
                None => self.client_resources(&client.resources).await?,
            };
            let scope = match update.scope {
                Some(scope) => scope,
                // The client keeps the scopes it had that its resources still have.
                None => client.scopes_string(),
            };
            let kept: String = scope
                .split(' ')
                .filter(|n| {
                    crate::scope::Scope::parse(n).is_some()
                        || resources.iter().any(|r| r.has_scope(n))
                })
                .collect::<Vec<_>>()
                .join(" ");
            let scope = if update.resources.is_some() {
                kept
            } else {
                scope
            };
            let (own, names) = self.client_scopes(caller, Some(&scope), &resources).await?;
            client.scopes = own;
            client.resource_scopes = names.clone();
            client.resources = resources.iter().map(|r| r.identifier.clone()).collect();
            changes.scopes = Some(own);
            changes.resource_scopes = Some(names);
            changes.resources = Some(client.resources.clone());
        }
        if let Some(alg) = update.id_token_signed_response_alg {
            client.id_token_signed_response_alg = Some(self.check_id_token_alg(alg)?);
            changes.id_token_signed_response_alg = client.id_token_signed_response_alg;
        }
        if let Some(targets) = update.token_exchange_resources {
            client.token_exchange_resources = self.token_exchange_targets(caller, &targets).await?;
            changes.token_exchange_resources = Some(client.token_exchange_resources.clone());
        }
        if update.post_logout_redirect_uris.is_some()
            || update.backchannel_logout_uri.is_some()
            || update.backchannel_logout_session_required.is_some()
        {
            if let Some(uris) = update.post_logout_redirect_uris {
                client.logout.post_logout_redirect_uris = uris;
            }
            if let Some(uri) = update.backchannel_logout_uri {
                client.logout.backchannel_logout_uri = uri;
            }
            if let Some(required) = update.backchannel_logout_session_required {
                client.logout.backchannel_logout_session_required = required;
            }
            self.check_client_logout(&client.logout)?;
            changes.logout = Some(client.logout.clone());
        }
        if update.jwks.is_some() || update.jwks_uri.is_some() {
            let (jwks, jwks_uri) = self
                .checked_client_keys(
                    client.auth_method,
                    update.jwks.as_ref(),
                    update.jwks_uri.as_deref(),
                )
                .await?;
            client.jwks.clone_from(&jwks);
            client.jwks_uri.clone_from(&jwks_uri);
            changes.keys = Some((jwks, jwks_uri));
        }
        if let Some(require_par) = update.require_par {
            client.require_par = require_par;
            changes.require_par = Some(require_par);
        }
        if let Some(bound) = update.dpop_bound_access_tokens {
            client.dpop_bound_access_tokens = bound;
            changes.dpop_bound_access_tokens = Some(bound);
        }
        if let Some(rate_limit) = update.rate_limit {
            self.validate_rate_limit(caller, "rate_limit_per_minute", rate_limit)?;
            client.rate_limit = rate_limit;
            changes.rate_limit = Some(rate_limit);
        }
        Self::check_client_scopes(caller, client.scopes)?;
        self.check_client_resource_scopes(caller, &client).await?;
        let trusted = update.trusted.filter(|t| *t != client.trusted);
        if trusted.is_some() {
            check_may_set_trusted(caller)?;
        }
        check_client_shape(&client)?;
        let Some(mut client) = self
            .store
            .update_client(&client.id, &changes, self.now())
            .await?
        else {
            return Err(Error::NotFound("OAuth client"));
        };
        if let Some(trusted) = trusted {
            if !self.store.set_client_trusted(&client.id, trusted).await? {
                return Err(Error::NotFound("OAuth client"));
            }
            client.trusted = trusted;
        }
        self.invalidate(Invalidation::Client(client.id.clone()))
            .await?;
        self.audit(
            client.owner_id.as_deref(),
            "oauth_client.updated",
            ip,
            json!({ "client_id": client.id }),
        )
        .await;
        Ok(client)
    }

    /// Deletes a client; its tokens stop working at once.
    pub async fn delete_client(
        &self,
        caller: &Principal,
        id: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        caller.require(Scope::ClientsWrite)?;
        let client = self.visible_client(caller, id).await?;
        self.remove_client(&client, ip).await
    }

    /// Deletes a client the caller may delete; its tokens stop working at once.
    pub(crate) async fn remove_client(&self, client: &OAuthClient, ip: Option<&str>) -> Result<()> {
        if !self.store.delete_client(&client.id).await? {
            return Err(Error::NotFound("OAuth client"));
        }
        self.invalidate(Invalidation::Client(client.id.clone()))
            .await?;
        self.revoke_keys_of_client(&client.id, None).await?;
        self.audit(
            client.owner_id.as_deref(),
            "oauth_client.deleted",
            ip,
            json!({ "client_id": client.id }),
        )
        .await;
        Ok(())
    }

    /// Replaces a confidential client's secret; the old one stops working at once.
    pub async fn rotate_client_secret(
        &self,
        caller: &Principal,
        id: &str,
        ip: Option<&str>,
    ) -> Result<(OAuthClient, Secret)> {
        caller.require(Scope::ClientsWrite)?;
        let mut client = self.visible_client(caller, id).await?;
        if client.is_public() {
            return Err(Error::invalid("id", "a public client has no secret"));
        }
        if client.auth_method == ClientAuthMethod::PrivateKeyJwt {
            return Err(Error::invalid(
                "id",
                "a private_key_jwt client has no secret; change its jwks or jwks_uri instead",
            ));
        }
        // The new secret obtains tokens with every scope of the client.
        caller.require_all(client.scopes, |missing| {
            format!(
                "You cannot rotate the secret of a client that holds the scope '{missing}', which you do not have."
            )
        })?;
        self.check_client_resource_scopes(caller, &client).await?;
        let secret = generate(SecretKind::ClientSecret);
        let hash = self.hasher().hash(secret.expose());
        client.secret_hash = Some(hash);
        client.updated_at = self.now();
        if !self
            .store
            .set_client_secret(&client.id, &hash, client.updated_at)
            .await?
        {
            return Err(Error::NotFound("OAuth client"));
        }
        // Client authentication reads the cache: the old secret must leave it.
        self.invalidate(Invalidation::Client(client.id.clone()))
            .await?;
        self.audit(
            client.owner_id.as_deref(),
            "oauth_client.secret_rotated",
            ip,
            json!({ "client_id": client.id }),
        )
        .await;
        Ok((client, secret))
    }

    /// Revokes the keys made with a client's access tokens (only `user_id`'s when given),
    /// here and in every other process.
    pub(crate) async fn revoke_keys_of_client(
        &self,
        client_id: &str,
        user_id: Option<&str>,
    ) -> Result<()> {
        let hashes = self
            .store
            .revoke_api_keys_of_client(client_id, user_id, self.now())
            .await?;
        for hash in hashes {
            self.invalidate(Invalidation::ApiKey(hash)).await?;
        }
        Ok(())
    }

    /// Whether `secret` is the client's secret (format first, then constant-time compare).
    pub(crate) fn client_secret_matches(&self, client: &OAuthClient, secret: &str) -> bool {
        let Some(stored) = client.secret_hash else {
            return false;
        };
        if check_format(SecretKind::ClientSecret, secret).is_err() {
            return false;
        }
        let presented = self.hasher().hash(secret);
        bool::from(presented.0.ct_eq(&stored.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_field(result: Result<impl std::fmt::Debug>) -> Option<String> {
        match result {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn grant_types_and_auth_methods_are_read_by_their_rfc_7591_names() {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_grant_types(&names(&["refresh_token", "authorization_code"])).ok(),
            Some(vec![GrantType::RefreshToken, GrantType::AuthorizationCode])
        );
        assert_eq!(
            refused_field(parse_grant_types(&names(&["refresh_token", "password"]))).as_deref(),
            Some("grant_types")
        );
        assert_eq!(parse_auth_method("none").ok(), Some(ClientAuthMethod::None));
        assert_eq!(
            parse_auth_method("private_key_jwt").ok(),
            Some(ClientAuthMethod::PrivateKeyJwt)
        );
        assert_eq!(
            refused_field(parse_auth_method("client_secret_jwt")).as_deref(),
            Some("token_endpoint_auth_method")
        );
        // A client keeps each grant type once, and needs one.
        assert_eq!(
            distinct_grant_types(&[GrantType::ClientCredentials, GrantType::ClientCredentials])
                .ok(),
            Some(vec![GrantType::ClientCredentials])
        );
        assert_eq!(
            refused_field(distinct_grant_types(&[])).as_deref(),
            Some("grant_types")
        );
    }

    #[test]
    fn redirect_uri_rules() {
        for good in [
            "https://app.example.com/callback",
            "https://my-app.example.com:8443/cb",
            "https://10.0.0.5/cb",
            "http://127.0.0.1:8000/cb",
            "http://localhost/cb",
            "http://[::1]:9000/cb",
            "com.example.app:/oauth",
        ] {
            assert!(validate_redirect_uri(good).is_ok(), "{good} refused");
        }
        for bad in [
            "/relative",
            "https://app.example.com/cb#frag",
            "http://app.example.com/cb",
            "https://user:pw@app.example.com/cb",
            "javascript:alert(1)",
            "myapp:/cb",
            "https://app.example.com/a/../cb",
            "https://a*/cb",
            "https://-app.example.com/cb",
            "https://app.example.com/a b",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad} accepted");
        }
    }
}
