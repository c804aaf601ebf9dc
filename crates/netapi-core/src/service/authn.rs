//! Checking a bearer credential: the hot path. A cache hit costs a checksum, an HMAC and two
//! in-memory lookups; storage is asked only on a miss.

use crate::usage::UsageOutcome;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::sync::Arc;

use super::NetApi;
use crate::dpop::{DpopFailure, ProofTarget};
use crate::error::{AuthFailure, Error, Result};
use crate::limiter::Surface;
use crate::model::{ApiKey, Resource};
use crate::scope::{Role, Scope, Scopes};
use crate::secret::{FormatError, SecretKind, check_format};

/// What authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API key.
    ApiKey {
        /// Its id.
        key_id: String,
        /// Its metadata (a JSON object), returned wherever it is verified.
        metadata: Option<String>,
    },
    /// An OAuth 2.0 access token.
    AccessToken {
        /// The client it was issued to.
        client_id: String,
        /// Its `jti`.
        jti: String,
    },
    /// The operator, through the command line.
    Operator,
    /// A signed-in user of the portal pages.
    Session,
}

/// Who is calling and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user the credential acts for.
    pub user_id: String,
    /// The user's role.
    pub role: Role,
    /// The credential's scopes, already limited by the role.
    pub scopes: Scopes,
    /// The credential.
    pub credential: Credential,
    /// What its requests are counted under, and its own per-minute limit if it has one.
    pub rate: Option<(String, Option<u32>)>,
    /// The resource the credential is for; `None`: Net API's own (whose scopes are `scopes`).
    pub resource: Option<Arc<Resource>>,
    /// Its scopes on `resource`, cut down to what its user holds there now.
    pub resource_scopes: Vec<String>,
}

impl Principal {
    /// The operator at the command line: every power, acting for no user.
    pub fn operator() -> Self {
        Self {
            user_id: String::new(),
            role: Role::Admin,
            scopes: Scopes::all(),
            credential: Credential::Operator,
            rate: None,
            resource: None,
            resource_scopes: Vec::new(),
        }
    }

    /// The credential's scope names for its resource, space-separated.
    pub fn scope_names(&self) -> String {
        match &self.resource {
            None => self.scopes.to_string(),
            Some(_) => self.resource_scopes.join(" "),
        }
    }

    /// The identifier of the resource the credential is for (`issuer`: Net API's own).
    pub fn resource_identifier<'a>(&'a self, issuer: &'a str) -> &'a str {
        self.resource.as_ref().map_or(issuer, |r| &r.identifier)
    }

    /// Fails with `PermissionDenied` naming `scope` unless the credential carries it.
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(Error::missing_scope(scope))
        }
    }

    /// Fails with `PermissionDenied` naming the first scope of `wanted` the credential lacks,
    /// with `refusal` saying what was refused: nothing a caller creates, rotates or changes may
    /// carry (or let it obtain) a scope it does not hold itself.
    pub fn require_all(&self, wanted: Scopes, refusal: impl FnOnce(Scope) -> String) -> Result<()> {
        match wanted.iter().find(|s| !self.scopes.contains(*s)) {
            None => Ok(()),
            Some(missing) => Err(Error::PermissionDenied {
                scope: Some(missing),
                message: refusal(missing),
            }),
        }
    }

    /// The OAuth client whose access token this is, if it is one.
    pub fn client_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::AccessToken { client_id, .. } => Some(client_id),
            _ => None,
        }
    }

    /// Admin powers need both the role and the `admin` scope on the credential.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin && self.scopes.contains(Scope::Admin)
    }

    /// Fails with `PermissionDenied` unless the caller has admin powers (role and scope).
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::missing_scope(Scope::Admin))
        }
    }

    /// Whether the caller may act on `user_id`'s things.
    pub fn may_act_on(&self, user_id: &str) -> bool {
        self.user_id == user_id || self.is_admin()
    }
}

/// The claims of an access token (RFC 9068).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Who acts for `sub` (RFC 8693 §4.1): set on tokens made by token exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// DPoP-bound tokens only (RFC 9449 §6.1): the key's thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::dpop::Confirmation>,
}

/// The `act` claim (RFC 8693 §4.1): the party acting for the token's subject, here the
/// client that exchanged a token, and, nested, who acted before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting client's id.
    pub sub: String,
    /// The previous actor of a delegation chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// How many actors the chain names, this one included.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |a| a.depth())
    }
}

/// What came with a credential sent as `Authorization: DPoP <token>` (RFC 9449 §7): the
/// `DPoP` header and the request it must match. Its `Debug` leaves the proof out.
#[derive(Clone, Copy)]
pub struct DpopPresentation<'a> {
    /// The one `DPoP` header, or why there was none usable.
    pub proof: Result<&'a str, DpopFailure>,
    /// The request's method.
    pub method: &'a str,
    /// The request's URL, as the client used it.
    pub url: &'a str,
}

/// Clock tolerance for `nbf` and `iat`, seconds (the contract allows at most 5).
const LEEWAY: i64 = 5;

impl std::fmt::Debug for DpopPresentation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopPresentation")
            .field("proof", &self.proof.map(|_| "[redacted]"))
            .field("method", &self.method)
            .field("url", &self.url)
            .finish()
    }
}

impl NetApi {
    /// Authenticates the value of an `Authorization: Bearer` header, coming from `ip`.
    pub async fn authenticate(&self, bearer: &str, ip: &str) -> Result<Principal> {
        self.authenticate_with(bearer, None, ip).await
    }

    /// Authenticates a credential sent as a bearer token (`dpop` `None`) or with the DPoP
    /// scheme and its proof, coming from `ip`.
    pub async fn authenticate_with(
        &self,
        bearer: &str,
        dpop: Option<&DpopPresentation<'_>>,
        ip: &str,
    ) -> Result<Principal> {
        let now = self.now();
        let subjects = || self.limiter.subjects(Surface::Bearer, ip, None);
        if let Some(retry_after) = self.limiter.blocked_with(subjects, now) {
            return Err(Error::RateLimited { retry_after });
        }
        let (method, outcome) = if bearer.starts_with(SecretKind::ApiKey.prefix()) {
            let outcome = match dpop {
                // API keys are bearer credentials only.
                Some(_) => Err(Failure::Auth(
                    AuthFailure::Dpop(DpopFailure::NotBound),
                    None,
                )),
                None => self.authenticate_api_key(bearer, now).await,
            };
            ("api_key", outcome)
        } else {
            (
                "access_token",
                self.authenticate_access_token(bearer, dpop, now).await,
            )
        };
        let result = match &outcome {
            Ok(_) => "ok",
            Err(Failure::Auth(failure, _)) => failure.as_str(),
            Err(Failure::Other(_)) => "error",
        };
        crate::counters::increment(
            "netapi_authentications_total",
            [("method", method), ("outcome", result)],
        );
        match outcome {
            Ok(principal) => Ok(principal),
            // Asking for a nonce is a step of the protocol, not a failure.
            Err(Failure::Auth(failure @ AuthFailure::Dpop(DpopFailure::UseNonce), _)) => {
                Err(Error::Unauthenticated(failure))
            }
            Err(Failure::Auth(failure, user_id)) => {
                let past_limit = self.limiter.record_failure(&subjects(), now).await;
                // Only failures that concern an account are worth a row; invented credentials
                // are counted in metrics, so they cannot be turned into a write load.
                if user_id.is_some() {
                    self.audit(
                        user_id.as_deref(),
                        "authentication.failed",
                        Some(ip),
                        serde_json::json!({ "reason": failure.as_str() }),
                    )
                    .await;
                }
                // Past a limit shared with other instances (they counted the rest): as if
                // this process had known it before.
                if let Some(retry_after) = past_limit {
                    return Err(Error::RateLimited { retry_after });
                }
                Err(Error::Unauthenticated(failure))
            }
            Err(Failure::Other(err)) => Err(err),
        }
    }

    async fn authenticate_api_key(&self, presented: &str, now: i64) -> Result<Principal, Failure> {
        self.check_api_key(presented, now)
            .await
            .map(|(principal, _)| principal)
    }

    /// An API key's verdict alone, with the key: nothing counted against the presenter's
    /// address and nothing audited (each caller decides), the same cache and revocation rules.
    pub(super) async fn check_api_key(
        &self,
        presented: &str,
        now: i64,
    ) -> Result<(Principal, Arc<ApiKey>), Failure> {
        match check_format(SecretKind::ApiKey, presented) {
            Ok(()) => {}
            Err(FormatError::Malformed | FormatError::BadChecksum) => {
                return Err(Failure::Auth(AuthFailure::Malformed, None));
            }
        }
        let hash = self.hasher.hash(presented);
        let Some(key) = self.key_by_hash(&hash).await? else {
            return Err(Failure::Auth(AuthFailure::Unknown, None));
        };
        if key.revoked_at.is_some() {
            self.count_key_check(&key.id, UsageOutcome::Revoked);
            return Err(Failure::Auth(
                AuthFailure::Revoked,
                Some(key.user_id.clone()),
            ));
        }
        if key.expires_at.is_some_and(|exp| now >= exp) {
            self.count_key_check(&key.id, UsageOutcome::Expired);
            return Err(Failure::Auth(
                AuthFailure::Expired,
                Some(key.user_id.clone()),
            ));
        }
        let Some(facts) = self.user_facts(&key.user_id).await? else {
            return Err(Failure::Auth(AuthFailure::Revoked, None));
        };
        let (resource, resource_scopes) = match &key.resource {
            None => (None, Vec::new()),
            Some(reference) => {
                // A deleted resource's keys are revoked with it; until that reaches this
                // cache, its tombstone refuses them.
                let Some(resource) = self
                    .resource_by_id(&reference.id)
                    .await?
                    .filter(|r| r.deleted_at.is_none())
                else {
                    return Err(Failure::Auth(
                        AuthFailure::Revoked,
                        Some(key.user_id.clone()),
                    ));
                };
                let held = self
                    .held_scopes(&key.user_id, facts.role, &resource)
                    .await?;
                let scopes = key
                    .resource_scopes
                    .iter()
                    .filter(|s| held.contains(s))
                    .cloned()
                    .collect();
                (Some(resource), scopes)
            }
        };
        self.note_usage(&key.id, key.last_used_at, now);
        let principal = Principal {
            user_id: key.user_id.clone(),
            role: facts.role,
            scopes: if resource.is_some() {
                Scopes::EMPTY
            } else {
                key.scopes.intersect(facts.role.max_scopes())
            },
            credential: super::Credential::ApiKey {
                key_id: key.id.clone(),
                metadata: key.metadata.clone(),
            },
            rate: Some((["key:", &key.id].concat(), key.rate_limit)),
            resource,
            resource_scopes,
        };
        Ok((principal, key))
    }

    /// The key stored under `hash`, revoked or not, through the caches: a hash known to be
    /// unknown costs no storage access, and one found unknown is remembered so.
    pub(super) async fn key_by_hash(
        &self,
        hash: &crate::secret::SecretHash,
    ) -> Result<Option<Arc<ApiKey>>> {
        if self.unknown_keys.contains_key(hash) {
            return Ok(None);
        }
        let cached = self.keys_by_hash.get(hash);
        let lookup = if cached.is_some() { "hit" } else { "miss" };
        metrics::counter!("netapi_credential_cache_total", "result" => lookup).increment(1);
        if cached.is_some() {
            return Ok(cached);
        }
        let found = self.find_api_key_uncached(hash).await?;
        if found.is_none() {
            self.unknown_keys.insert(*hash, ());
        }
        Ok(found)
    }

    /// Reads a key from storage and caches it, unless it was invalidated meanwhile.
    async fn find_api_key_uncached(
        &self,
        hash: &crate::secret::SecretHash,
    ) -> Result<Option<Arc<ApiKey>>> {
        let ticket = self.keys_by_hash.ticket();
        let Some(key) = self.store.find_api_key(hash).await? else {
            return Ok(None);
        };
        let key = Arc::new(key);
        self.keys_by_hash.insert(*hash, key.clone(), ticket);
        Ok(Some(key))
    }

    /// Queues a `last_used_at` write when the stored one is more than a minute old.
    fn note_usage(&self, key_id: &str, stored: Option<i64>, now: i64) {
        let mut usage = self
            .key_usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = usage.get(key_id).map(|(at, _)| *at).or(stored);
        if last.is_none_or(|last| now - last >= super::USAGE_RESOLUTION) {
            usage.insert(key_id.to_owned(), (now, true));
        }
    }

    /// Verifies an access token locally and checks the in-memory denylist.
    async fn authenticate_access_token(
        &self,
        token: &str,
        dpop: Option<&DpopPresentation<'_>>,
        now: i64,
    ) -> Result<Principal, Failure> {
        let claims = self
            .verify_access_token(token, now)
            .map_err(|failure| Failure::Auth(failure, None))?;
        // Bearer tokens without `cnf` and without the DPoP scheme: one comparison.
        if claims.cnf.is_some() || dpop.is_some() {
            self.confirm(&claims, token, dpop)
                .await
                .map_err(|failure| Failure::Auth(AuthFailure::Dpop(failure), None))?;
        }
        let Some(client) = self.client_facts(&claims.client_id).await? else {
            return Err(Failure::Auth(AuthFailure::Revoked, None));
        };
        let Some(facts) = self.user_facts(&claims.sub).await? else {
            return Err(Failure::Auth(AuthFailure::Revoked, None));
        };
        let resource = self.token_resource(&claims).await?;
        let (scopes, resource_scopes) = match &resource {
            None => (
                Scopes::parse_space_separated(&claims.scope)
                    .map_err(|_| Failure::Auth(AuthFailure::Malformed, None))?
                    .intersect(facts.role.max_scopes()),
                Vec::new(),
            ),
            Some(resource) => {
                let held = self.held_scopes(&claims.sub, facts.role, resource).await?;
                let names = claims
                    .scope
                    .split(' ')
                    .filter(|s| held.iter().any(|h| h == s))
                    .map(str::to_owned)
                    .collect();
                (Scopes::EMPTY, names)
            }
        };
        Ok(Principal {
            user_id: claims.sub.clone(),
            role: facts.role,
            scopes,
            rate: Some((["client:", &claims.client_id].concat(), client.rate_limit)),
            credential: super::Credential::AccessToken {
                client_id: claims.client_id.clone(),
                jti: claims.jti.clone(),
            },
            resource,
            resource_scopes,
        })
    }

    /// RFC 9449 §7: a DPoP-bound token comes with a proof of its key, made for this request
    /// and this token; a token that is not bound does not use the DPoP scheme.
    async fn confirm(
        &self,
        claims: &AccessClaims,
        token: &str,
        dpop: Option<&DpopPresentation<'_>>,
    ) -> Result<(), DpopFailure> {
        match (&claims.cnf, dpop) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(DpopFailure::BoundToken),
            (None, Some(_)) => Err(DpopFailure::NotBound),
            (Some(cnf), Some(presented)) => {
                let target = ProofTarget {
                    method: presented.method,
                    url: presented.url,
                    access_token: Some(token),
                };
                let jkt = self.check_dpop(presented.proof?, &target).await?;
                if subtle::ConstantTimeEq::ct_eq(jkt.as_bytes(), cnf.jkt.as_bytes()).into() {
                    Ok(())
                } else {
                    Err(DpopFailure::KeyMismatch)
                }
            }
        }
    }

    /// Checks a DPoP proof for `target` (signature, claims, freshness, the server nonce when
    /// `require_dpop_nonce` is on) and records its `jti`; answers its key's thumbprint.
    ///
    /// The `jti` is recorded in this process's cache and, with shared counters (Redis), in
    /// them too (`SET NX`, one round trip), so that a proof serves once on every instance.
    /// When they fail, the process's cache alone decides: a warning (from the counters) and
    /// `netapi_dpop_replay_fallbacks_total` say so, the request does not fail for it.
    pub async fn check_dpop(
        &self,
        proof: &str,
        target: &ProofTarget<'_>,
    ) -> Result<String, DpopFailure> {
        let now = self.now();
        let checked = crate::dpop::check_proof(proof, target, now)?;
        if self.settings.require_dpop_nonce
            && !checked
                .nonce
                .as_deref()
                .is_some_and(|nonce| self.dpop_nonces.accepts(nonce, now))
        {
            return Err(DpopFailure::UseNonce);
        }
        self.dpop_replay.record(&checked, now)?;
        if let Some(shared) = &self.dpop_shared {
            let key = shared.key(&checked);
            let ttl_ms = u64::try_from(
                (crate::dpop::PROOF_MAX_AGE + crate::dpop::PROOF_LEEWAY).saturating_mul(1000),
            )
            .unwrap_or(u64::MAX);
            match shared.counters.set_once(&key, ttl_ms).await {
                Ok(true) => {}
                Ok(false) => return Err(DpopFailure::Replayed),
                // The counters warned (at most every ten seconds); this process's cache
                // decided.
                Err(crate::limiter::SharedUnavailable) => {
                    metrics::counter!("netapi_dpop_replay_fallbacks_total").increment(1);
                }
            }
        }
        Ok(checked.jkt)
    }

    /// The DPoP nonce to hand out now (`DPoP-Nonce`), when `require_dpop_nonce` is on.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.settings
            .require_dpop_nonce
            .then(|| self.dpop_nonces.current(self.now()))
    }

    /// The resource an access token is for: `None` for Net API's own (`aud` is the issuer),
    /// else the live resource whose identifier is its `aud`, whose lifetime bounds the
    /// token's as the server's bounds its own tokens'. A deleted resource's tokens are
    /// revoked; an `aud` no resource ever had is not a token of this server.
    pub(super) async fn token_resource(
        &self,
        claims: &AccessClaims,
    ) -> Result<Option<Arc<Resource>>, Failure> {
        if claims.aud == self.settings.issuer {
            return Ok(None);
        }
        let Some(resource) = self.resource_by_identifier(&claims.aud).await? else {
            return Err(Failure::Auth(AuthFailure::Malformed, None));
        };
        if resource.deleted_at.is_some() {
            return Err(Failure::Auth(AuthFailure::Revoked, None));
        }
        let ttl = resource
            .access_token_ttl
            .map_or(self.settings.access_token_ttl, i64::from);
        if claims.exp.saturating_sub(claims.iat) > ttl + LEEWAY {
            return Err(Failure::Auth(AuthFailure::Malformed, None));
        }
        Ok(Some(resource))
    }

    /// Signature, type, issuer, audience, time and denylist; no storage. A token seen
    /// before skips the signature check (its verified claims are cached by digest); time
    /// and the denylist are checked on every use.
    pub(crate) fn verify_access_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Arc<AccessClaims>, AuthFailure> {
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let claims = match self.verified_tokens.get(&digest) {
            Some(claims) => claims,
            None => {
                let claims: Arc<AccessClaims> = Arc::new(
                    self.key_ring()
                        .verify(token, "at+jwt")
                        .map_err(|_| AuthFailure::Malformed)?,
                );
                self.verified_tokens.insert(digest, claims.clone());
                claims
            }
        };
        // The audience is Net API's own or a resource's: the latter is checked, lifetime
        // included, by `token_resource`, which needs storage on a cache miss.
        if claims.iss != self.settings.issuer {
            return Err(AuthFailure::Malformed);
        }
        if claims.nbf.is_some_and(|nbf| now + LEEWAY < nbf) || now + LEEWAY < claims.iat {
            return Err(AuthFailure::Malformed);
        }
        // A token that lives longer than this server issues them was not made by it as
        // configured (a stolen signing key, or a lifetime since shortened): refused.
        if claims.aud == self.settings.issuer
            && claims.exp.saturating_sub(claims.iat) > self.settings.access_token_ttl + LEEWAY
        {
            return Err(AuthFailure::Malformed);
        }
        if now >= claims.exp {
            return Err(AuthFailure::Expired);
        }
        if self.is_denied("jti", &claims.jti)
            || claims
                .sid
                .as_ref()
                .is_some_and(|sid| self.is_denied("sid", sid))
        {
            return Err(AuthFailure::Revoked);
        }
        Ok(claims)
    }

    pub(super) async fn client_facts(&self, client_id: &str) -> Result<Option<super::ClientFacts>> {
        if let Some(facts) = self.clients.get(client_id) {
            return Ok(facts);
        }
        let ticket = self.clients.ticket();
        let facts = self
            .store
            .get_client(client_id)
            .await?
            .map(|client| super::ClientFacts {
                rate_limit: client.rate_limit,
                client: std::sync::Arc::new(client),
            });
        self.clients
            .insert(client_id.to_owned(), facts.clone(), ticket);
        Ok(facts)
    }
}

/// An authentication failure, or a failure to decide.
pub(super) enum Failure {
    Auth(AuthFailure, Option<String>),
    Other(Error),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Self::Other(err)
    }
}

impl From<crate::error::StoreError> for Failure {
    fn from(err: crate::error::StoreError) -> Self {
        Self::Other(err.into())
    }
}
