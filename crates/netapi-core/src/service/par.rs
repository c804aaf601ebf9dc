//! Pushed authorization requests (RFC 9126): `POST /oauth/par` checks an authorization
//! request as `/oauth/authorize` would and keeps it, under the hash of a `request_uri`
//! (a bearer handle), for [`PAR_TTL`] seconds; `/oauth/authorize` then takes only that
//! `request_uri` and the `client_id` that pushed it, and the request serves one code.

use serde_json::json;

use super::NetApi;
use super::authorize::{AuthorizeError, Origin, PageReason};
use super::oauth_error::{OAuthError, OAuthReason, ParRefusal};
use super::requests::{AuthorizationParams, ClientRequest, OAuthForm};
use crate::dpop::DpopFailure;
use crate::limiter::RequestLimiter;
use crate::model::{OAuthClient, PushedRequest};
use crate::secret::{SecretHash, random_base62};

/// How long a `request_uri` lives, in seconds (`expires_in`).
pub const PAR_TTL: i64 = 60;
/// What every `request_uri` begins with (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Characters of randomness in a `request_uri` (base62: about 190 bits).
const REQUEST_URI_RANDOM_LEN: usize = 32;
/// Pushed requests per client per minute.
pub const PUSHES_PER_MINUTE: u32 = 120;
/// Pushed requests per public client per minute from one source (IPv6: per /64): a public
/// client's id is all it takes to push, so that one source cannot use up the client's
/// [`PUSHES_PER_MINUTE`] for everyone.
pub const PUSHES_PER_SOURCE: u32 = 20;
/// The parameters of client authentication, which are not part of the authorization
/// request.
const CLIENT_AUTH_PARAMS: [&str; 3] =
    ["client_secret", "client_assertion", "client_assertion_type"];

/// The authorization request's parameters as pushed: every pair of the form but those of
/// client authentication (each at most once, which the form already ensures).
#[derive(Clone)]
pub struct PushedParams(Vec<(String, String)>);

/// Names the parameters, never their values.
impl std::fmt::Debug for PushedParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_tuple("PushedParams").field(&names).finish()
    }
}

impl TryFrom<&OAuthForm> for PushedParams {
    type Error = OAuthError;

    fn try_from(form: &OAuthForm) -> Result<Self, OAuthError> {
        let mut pairs: Vec<(String, String)> = form
            .pairs()
            .filter(|(name, _)| !CLIENT_AUTH_PARAMS.contains(name))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        pairs.sort();
        Ok(Self(pairs))
    }
}

/// The answer of `/oauth/par` (RFC 9126 §2.2). The `request_uri` is a bearer handle: its
/// `Debug` hides it.
#[derive(Clone)]
pub struct PushedAuthorization {
    /// `urn:ietf:params:oauth:request_uri:<random>`.
    pub request_uri: String,
    /// Seconds it stays usable.
    pub expires_in: i64,
}

impl std::fmt::Debug for PushedAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushedAuthorization")
            .field("request_uri", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The random part of a well-formed `request_uri`.
fn random_part(request_uri: &str) -> Option<&str> {
    let random = request_uri.strip_prefix(REQUEST_URI_PREFIX)?;
    (random.len() == REQUEST_URI_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(random)
}

impl NetApi {
    /// Counts one more request of `client` from `ip` in `limiter`: per (client, source)
    /// first, for a public client (whose id is all it takes to send one), then per client;
    /// `RateLimited` past either, and a request the source's count refuses is not counted
    /// against the client.
    pub(super) async fn count_per_source_and_client(
        &self,
        limiter: &RequestLimiter,
        client: &OAuthClient,
        ip: &str,
        (per_source, per_client): (u32, u32),
    ) -> Result<(), OAuthError> {
        let now = self.now();
        let from_source = client
            .is_public()
            .then(|| format!("{} {}", client.id, crate::limiter::source_of(ip)));
        let counts = from_source
            .iter()
            .map(|key| (key.as_str(), per_source))
            .chain([(client.id.as_str(), per_client)]);
        for (key, limit) in counts {
            if let Err(status) = limiter.hit(key, limit, now).await {
                return Err(OAuthError {
                    reason: OAuthReason::RateLimited,
                    retry_after: Some(status.reset.max(1)),
                });
            }
        }
        Ok(())
    }

    /// `POST /oauth/par`: authenticates the client as the token endpoint does, checks the
    /// request as `/oauth/authorize` would (refusing `request_uri`, and `request`, which is
    /// not supported), and keeps it. A `client_id` in the form must be the client's.
    ///
    /// With a DPoP proof (RFC 9449 §10.1), the code is bound to its key: its thumbprint
    /// becomes `dpop_jkt`, which, if the form has one, must be the same.
    pub async fn push_authorization(
        &self,
        request: &ClientRequest<PushedParams>,
        proof: Option<Result<&str, DpopFailure>>,
        ip: &str,
    ) -> Result<PushedAuthorization, OAuthError> {
        let client = self.authenticate_client(&request.client, ip).await?;
        let mut pairs = request.params.0.clone();
        if let Some(proof) = proof {
            let jkt = self.endpoint_proof(proof, &self.par_endpoint()).await?;
            match pairs.iter().find(|(name, _)| name == "dpop_jkt") {
                Some((_, named)) if *named != jkt => {
                    return Err(OAuthReason::Dpop(DpopFailure::KeyMismatch).into());
                }
                Some(_) => {}
                None => pairs.push(("dpop_jkt".to_owned(), jkt)),
            }
        }
        if pairs.iter().any(|(name, _)| name == "request_uri") {
            return Err(OAuthReason::RequestUriAtPar.into());
        }
        if pairs.iter().any(|(name, _)| name == "request") {
            return Err(OAuthReason::RequestObjectNotSupported.into());
        }
        match pairs.iter().find(|(name, _)| name == "client_id") {
            Some((_, id)) if *id != client.id => return Err(OAuthReason::ClientIdMismatch.into()),
            Some(_) => {}
            None => pairs.push(("client_id".to_owned(), client.id.clone())),
        }
        let now = self.now();
        self.count_per_source_and_client(
            &self.pushes,
            &client,
            ip,
            (PUSHES_PER_SOURCE, PUSHES_PER_MINUTE),
        )
        .await?;
        let params = AuthorizationParams::parse(&pairs);
        if let Err(err) = self.check_authorization(&params, Origin::Par).await {
            let refusal = match err {
                AuthorizeError::Page(reason) => ParRefusal::Page(reason),
                AuthorizeError::Redirect(redirect) | AuthorizeError::Link(redirect) => {
                    ParRefusal::Reason(redirect.reason)
                }
                AuthorizeError::Failed(err) => return Err(err.into()),
            };
            return Err(OAuthReason::PushedRequestRefused(refusal).into());
        }
        let random = random_base62(REQUEST_URI_RANDOM_LEN);
        let stored = PushedRequest {
            hash: self.hasher().hash(&random),
            client_id: client.id.clone(),
            params: json!(pairs).to_string(),
            created_at: now,
            expires_at: now + PAR_TTL,
        };
        self.store.insert_pushed_request(&stored).await?;
        Ok(PushedAuthorization {
            request_uri: format!("{REQUEST_URI_PREFIX}{random}"),
            expires_in: PAR_TTL,
        })
    }

    /// The pushed request a `request_uri` names, if `client_id` pushed it and it has not
    /// expired or been used: its hash and parameters.
    pub(super) async fn pushed_request(
        &self,
        request_uri: &str,
        client_id: &str,
    ) -> Result<Option<(SecretHash, Vec<(String, String)>)>, AuthorizeError> {
        let Some(random) = random_part(request_uri) else {
            return Ok(None);
        };
        let hash = self.hasher().hash(random);
        let stored = self
            .store
            .get_pushed_request(&hash, self.now())
            .await
            .map_err(|err| AuthorizeError::Failed(err.into()))?;
        let Some(stored) = stored.filter(|s| s.client_id == client_id) else {
            return Ok(None);
        };
        let Ok(pairs) = serde_json::from_str::<Vec<(String, String)>>(&stored.params) else {
            tracing::error!("a pushed authorization request is unreadable");
            return Err(AuthorizeError::Page(PageReason::InvalidRequestUri));
        };
        Ok(Some((hash, pairs)))
    }
}
