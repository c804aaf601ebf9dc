//! Token exchange (RFC 8693): a confidential client trades a user's access token for another
//! one, for a resource it lists in `token_exchange_resources`, with at most the scopes the
//! presented token carries there and its user holds there now. The new token names the client
//! in `act`.
//!
//! The rules, each where RFC 8693 leaves the choice to the server:
//! - The subject token must be one the client could introspect: for a resource's token, the
//!   client lists that resource in `resources` (it is that resource's server); for a token of
//!   Net API's own, it was issued to the client, or the client is an administrator's. Any
//!   other token gets the same answer as an invalid one, so that a client learns nothing of
//!   the tokens of other applications.
//! - Scope names carry over by name: the new token's scopes are the subject token's scopes
//!   that are scopes of the target too, cut down to what the user holds on the target now
//!   and to what the client's owner holds there now (a client gets no scope its owner could
//!   not give it, whoever's token it presents).
//! - The new token lives the target's access-token lifetime, never past the subject token's
//!   `exp`, and shares its `sid`: ending the grant the subject token came from (revoking its
//!   refresh-token family, signing out) ends the exchanged tokens too. Revoking the subject
//!   access token alone (RFC 7009, by `jti`) does not.
//! - The only token type accepted and issued is `urn:ietf:params:oauth:token-type:access_token`.
//!   No refresh token is issued.

use serde_json::json;

use super::NetApi;
use super::authn::{Actor, Failure};
use super::oauth::{Grant, TokenResponse, kept};
use super::oauth_error::{OAuthError, OAuthReason, echoed};
use super::requests::TokenExchange;
use crate::model::{Amr, OAuthClient};
use crate::scope::{Role, Scope, Scopes};

type OAuthResult<T> = Result<T, OAuthError>;

/// Most actors a delegation chain may name (the new one included): bounds the token's size.
pub(super) const MAX_DELEGATION_DEPTH: usize = 5;

impl NetApi {
    /// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` for an authenticated client
    /// that may use the grant (see the module's documentation for the rules).
    pub(super) async fn exchange_token(
        &self,
        client: &OAuthClient,
        request: &TokenExchange,
        jkt: Option<&str>,
        ip: &str,
    ) -> OAuthResult<TokenResponse> {
        if client.is_public() || client.token_exchange_resources.is_empty() {
            return Err(OAuthReason::ExchangeNotAllowed.into());
        }
        let now = self.now();
        let invalid = || OAuthError::from(OAuthReason::InvalidSubjectToken);
        let subject = self
            .verify_access_token(request.subject_token.expose(), now)
            .map_err(|_| invalid())?;
        // The client it was issued to and its user still exist (and the user is enabled).
        if self.client_facts(&subject.client_id).await?.is_none() {
            return Err(invalid());
        }
        let Some(user) = self.user_facts(&subject.sub).await? else {
            return Err(invalid());
        };
        let subject_resource = match self.token_resource(&subject).await {
            Ok(resource) => resource,
            Err(Failure::Auth(..)) => return Err(invalid()),
            Err(Failure::Other(err)) => return Err(err.into()),
        };
        // Only a token this client may learn about (the introspection rule).
        let may_exchange = match &subject_resource {
            Some(resource) => client.resources.contains(&resource.identifier),
            None => {
                self.may_learn_of_own_token(client, &subject.client_id)
                    .await?
            }
        };
        if !may_exchange {
            return Err(invalid());
        }
        if let Some(actor_token) = &request.actor_token {
            let actor = self
                .verify_access_token(actor_token.expose(), now)
                .map_err(|_| OAuthError::from(OAuthReason::InvalidActorToken))?;
            if actor.client_id != client.id {
                return Err(OAuthReason::InvalidActorToken.into());
            }
        }
        let actor = Actor {
            sub: client.id.clone(),
            act: subject.act.clone().map(Box::new),
        };
        if actor.depth() > MAX_DELEGATION_DEPTH {
            return Err(OAuthReason::DelegationTooDeep.into());
        }
        // The scope names the subject token carries now: those its user still holds.
        let carried: Vec<String> = match &subject_resource {
            None => Scopes::parse_space_separated(&subject.scope)
                .map_err(|_| invalid())?
                .intersect(user.role.max_scopes())
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            Some(resource) => {
                let held = self.held_scopes(&subject.sub, user.role, resource).await?;
                subject
                    .scope
                    .split(' ')
                    .filter(|s| held.iter().any(|h| h == s))
                    .map(str::to_owned)
                    .collect()
            }
        };
        // The target: the one asked for, or the subject token's own audience; either way one
        // the client lists.
        let target = request
            .target
            .as_ref()
            .map_or(subject.aud.as_str(), |t| t.as_str());
        if !client.token_exchange_resources.iter().any(|r| r == target) {
            return Err(OAuthReason::UnknownResource.into());
        }
        let resource = if target == self.settings.issuer {
            None
        } else {
            Some(
                self.resource_by_identifier(target)
                    .await?
                    .filter(|r| r.deleted_at.is_none())
                    .ok_or(OAuthReason::UnknownResource)?,
            )
        };
        // Nor more than the client's owner holds there now: a client gets no scope its owner
        // could not give it, whoever's token it presents (one without owner counts as a
        // member with no grant).
        let owner_role = match client.owner_id.as_deref() {
            Some(owner_id) => match self.user_facts(owner_id).await? {
                Some(owner) => owner.role,
                None => return Err(invalid()),
            },
            None => Role::Member,
        };
        let (scopes, resource_scopes) = match &resource {
            None => {
                let allowed = Scopes::parse_list(
                    &carried
                        .iter()
                        .filter(|n| Scope::parse(n).is_some())
                        .collect::<Vec<_>>(),
                )
                .unwrap_or(Scopes::EMPTY)
                .intersect(user.role.max_scopes())
                .intersect(owner_role.max_scopes());
                let scopes = Self::requested_scopes(request.scope.as_deref(), allowed)?;
                if scopes.is_empty() {
                    return Err(OAuthReason::NoScopeForTarget.into());
                }
                (scopes, Vec::new())
            }
            Some(resource) => {
                let held = self.held_scopes(&subject.sub, user.role, resource).await?;
                let owner_holds = self
                    .held_scopes(
                        client.owner_id.as_deref().unwrap_or_default(),
                        owner_role,
                        resource,
                    )
                    .await?;
                let allowed = kept(&held, |n| carried.contains(n) && owner_holds.contains(n));
                let names = match request.scope.as_deref() {
                    None => allowed,
                    Some(text) => {
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
                        names
                    }
                };
                if names.is_empty() {
                    return Err(OAuthReason::NoScopeForTarget.into());
                }
                (Scopes::EMPTY, names)
            }
        };
        let response = self
            .issue_token(
                &Grant {
                    client,
                    user_id: &subject.sub,
                    scopes,
                    resource: resource.as_deref(),
                    resource_scopes: &resource_scopes,
                    family_id: subject.sid.as_deref(),
                    auth_time: subject.auth_time,
                    amr: Amr::Password,
                    nonce: None,
                    // No ID token comes out of an exchange: no browser session to name.
                    sid: None,
                    jkt,
                },
                None,
                Some((&actor, subject.exp)),
            )
            .await?;
        self.audit(
            Some(&subject.sub),
            "token.exchanged",
            Some(ip),
            json!({
                "client_id": client.id,
                "subject_client_id": subject.client_id,
                "subject_jti": subject.jti,
                "audience": target,
                "scope": response.scope,
            }),
        )
        .await;
        Ok(response)
    }
}
