//! The [`Guard`]: discovery at start, the JWKS kept and refetched, and the decision for one
//! request's `Authorization` header.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri, header};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{GuardConfig, RemoteCheck};
use crate::jwks::{KeySet, PublicKey};
use crate::principal::{CredentialKind, Principal};
use crate::rejection::{Rejection, RejectionKind};
use crate::remote::{self, Answer};
use crate::token::{self, Expected};

/// The longest resource identifier Net API accepts.
const MAX_RESOURCE_LEN: usize = 255;
/// Seconds between two warnings that the shared DPoP replay store did not answer.
const REPLAY_WARNING_INTERVAL: i64 = 10;
/// Net API's API keys: this prefix, 32 random base62 characters and a 6-character checksum
/// (the CRC32 of everything before it in base62, most significant digit first).
const API_KEY_PREFIX: &str = "napi_";
const API_KEY_RANDOM_LEN: usize = 32;
const API_KEY_CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const UNKNOWN_SIGNING_KEY: &str = "The access token's signing key is unknown.";
const KEYS_NOT_ACCEPTED: &str = "API keys are not accepted here.";

/// Why a guard could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A setting is unusable.
    #[error("invalid guard configuration: {0}")]
    Config(&'static str),
    /// The issuer's metadata or keys could not be read.
    #[error("could not read the issuer's {what}: {reason}")]
    Issuer {
        /// Which document.
        what: &'static str,
        /// Why (never a secret).
        reason: String,
    },
}

/// Checks Net API credentials for one resource. Cheap to clone (one shared state); start
/// it once with [`Guard::discover`] and give it to a [`GuardLayer`](crate::GuardLayer).
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    config: GuardConfig,
    http: reqwest::Client,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
    verify_endpoint: String,
    keys: RwLock<Arc<KeySet>>,
    /// When the JWKS was last fetched (by the guard's clock).
    fetched_at: AtomicI64,
    /// Held while the JWKS is fetched again, so that concurrent requests fetch it once.
    refetch: tokio::sync::Mutex<()>,
    /// The issuer's answers by SHA-256 of the credential (never the credential itself).
    cache: moka::sync::Cache<[u8; 32], CachedAnswer>,
    /// One lock per credential asked about: concurrent requests with the same uncached
    /// credential ask the issuer once, and the others read the answer it leaves.
    in_flight: moka::sync::Cache<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
    /// Bounds the questions to the issuer in flight at once.
    issuer_calls: tokio::sync::Semaphore,
    challenge: Arc<str>,
    /// The `jti`s of DPoP proofs accepted.
    dpop_replay: crate::dpop::ReplayCache,
    /// When the last warning about the shared replay store was logged (guard's clock).
    replay_warned_at: AtomicI64,
    /// Scheme, host and port of the API as clients see it (`htu` of DPoP proofs).
    origin: String,
}

/// What came with `Authorization: DPoP`: the proof header, the request's method and URL.
struct DpopRequest<'a> {
    proof: Result<&'a str, &'static str>,
    method: &'a str,
    url: String,
}

#[derive(Clone)]
struct CachedAnswer {
    /// Good until this time of the guard's clock.
    until: i64,
    answer: Result<Principal, &'static str>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("config", &self.inner.config)
            .field("jwks_uri", &self.inner.jwks_uri)
            .field("signing_keys", &self.keys().len())
            .finish_non_exhaustive()
    }
}

/// The authorization server metadata the guard reads (RFC 8414 / OpenID Connect).
#[derive(Deserialize)]
struct ServerMetadata {
    issuer: String,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
}

impl Guard {
    /// Reads the issuer's metadata and signing keys, and checks the configuration.
    pub async fn discover(config: GuardConfig) -> Result<Self, SetupError> {
        let issuer_url = url::Url::parse(&config.issuer)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or(SetupError::Config("the issuer is not an http(s) URL"))?;
        if config.issuer.contains(['"', '\\']) {
            return Err(SetupError::Config("the issuer has a quote or a backslash"));
        }
        if config.resource.is_empty() || config.resource.len() > MAX_RESOURCE_LEN {
            return Err(SetupError::Config(
                "the resource identifier must have 1 to 255 characters",
            ));
        }
        if config.introspect_tokens
            && !matches!(config.remote, Some(RemoteCheck::Introspection { .. }))
        {
            return Err(SetupError::Config(
                "introspecting tokens needs an introspection client",
            ));
        }
        let http = match &config.http {
            Some(client) => client.clone(),
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|err| SetupError::Issuer {
                    what: "address",
                    reason: err.to_string(),
                })?,
        };
        let base = config.issuer.trim_end_matches('/');
        let metadata = fetch_metadata(&http, base).await?;
        if metadata.issuer != config.issuer {
            return Err(SetupError::Issuer {
                what: "metadata",
                reason: format!(
                    "it names the issuer {:?}, not {:?}",
                    metadata.issuer, config.issuer
                ),
            });
        }
        if matches!(config.remote, Some(RemoteCheck::Introspection { .. }))
            && metadata.introspection_endpoint.is_none()
        {
            return Err(SetupError::Issuer {
                what: "metadata",
                reason: "it has no introspection_endpoint".to_owned(),
            });
        }
        let keys = fetch_jwks(&http, &metadata.jwks_uri)
            .await
            .map_err(|reason| SetupError::Issuer {
                what: "JWKS",
                reason,
            })?;
        let resource_query: String =
            url::form_urlencoded::byte_serialize(config.resource.as_bytes()).collect();
        let challenge = format!(
            "Bearer realm=\"netapi\", resource_metadata=\"{base}/.well-known/oauth-protected-resource?resource={resource_query}\""
        );
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.cache_capacity)
            // The clock decides what is fresh; this only lets memory go.
            .time_to_live(Duration::from_secs(
                u64::try_from(config.cache_ttl.max(1)).unwrap_or(1),
            ))
            .build();
        let in_flight = moka::sync::Cache::builder()
            .max_capacity(config.cache_capacity)
            .time_to_idle(Duration::from_secs(60))
            .build();
        let now = config.clock.now();
        let origin = match &config.public_origin {
            Some(origin) => origin.clone(),
            None => url::Url::parse(&config.resource)
                .map(|url| url.origin().ascii_serialization())
                .unwrap_or_default(),
        };
        tracing::debug!(issuer = %issuer_url, keys = keys.len(), "netapi-guard started");
        Ok(Self {
            inner: Arc::new(Inner {
                verify_endpoint: format!("{base}/v1/keys/verify"),
                introspection_endpoint: metadata.introspection_endpoint,
                jwks_uri: metadata.jwks_uri,
                http,
                keys: RwLock::new(Arc::new(keys)),
                fetched_at: AtomicI64::new(now),
                refetch: tokio::sync::Mutex::new(()),
                cache,
                in_flight,
                issuer_calls: tokio::sync::Semaphore::new(config.max_concurrent_checks),
                challenge: Arc::from(challenge),
                dpop_replay: crate::dpop::ReplayCache::new(crate::dpop::MAX_REPLAY_ENTRIES),
                replay_warned_at: AtomicI64::new(i64::MIN),
                origin,
                config,
            }),
        })
    }

    /// The resource identifier this guard checks credentials for.
    pub fn resource(&self) -> &str {
        &self.inner.config.resource
    }

    /// Decides on a request's headers: the caller, or the refusal to answer with. Knowing
    /// neither the method nor the URL, it refuses DPoP-bound tokens: use
    /// [`authenticate_request`](Self::authenticate_request) where they may come.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Rejection> {
        self.decide(None, headers).await
    }

    /// Decides on a request: as [`authenticate`](Self::authenticate), and a DPoP-bound
    /// access token is accepted as `Authorization: DPoP <token>` with a `DPoP` proof made
    /// for this `method` and `uri` (a path is taken on the resource's origin, or
    /// [`GuardConfig::public_origin`]).
    pub async fn authenticate_request(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Principal, Rejection> {
        self.decide(Some((method, uri)), headers).await
    }

    async fn decide(
        &self,
        request: Option<(&Method, &Uri)>,
        headers: &HeaderMap,
    ) -> Result<Principal, Rejection> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(self.refuse(RejectionKind::Missing));
        };
        let (scheme, credential) = value
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .map(|(scheme, credential)| (scheme, credential.trim()))
            .filter(|(_, credential)| {
                !credential.is_empty() && credential.len() <= token::MAX_TOKEN_LEN
            })
            .ok_or_else(|| self.invalid(token::MALFORMED))?;
        let dpop = if scheme.eq_ignore_ascii_case("bearer") {
            None
        } else if scheme.eq_ignore_ascii_case("dpop") {
            let mut proofs = headers.get_all("dpop").iter();
            let proof = match (proofs.next(), proofs.next()) {
                (None, _) => Err(crate::dpop::MISSING),
                (Some(_), Some(_)) => Err(crate::dpop::SEVERAL),
                (Some(one), None) => one.to_str().map_err(|_| crate::dpop::MALFORMED),
            };
            let Some((method, uri)) = request else {
                return Err(self.dpop_refusal(crate::dpop::URL));
            };
            let url = match (uri.scheme(), uri.authority()) {
                (Some(scheme), Some(authority)) => {
                    format!("{scheme}://{authority}{}", uri.path())
                }
                _ => format!("{}{}", self.inner.origin, uri.path()),
            };
            Some(DpopRequest {
                proof,
                method: method.as_str(),
                url,
            })
        } else {
            return Err(self.invalid(token::MALFORMED));
        };
        if token::looks_like_jwt(credential) {
            self.check_token(credential, dpop.as_ref()).await
        } else if dpop.is_some() {
            Err(self.refuse(RejectionKind::Dpop {
                error: "invalid_token",
                description: token::NOT_BOUND,
            }))
        } else if is_api_key(credential) {
            self.check_key(credential).await
        } else {
            Err(self.invalid(token::MALFORMED))
        }
    }

    fn dpop_refusal(&self, description: &'static str) -> Rejection {
        self.refuse(RejectionKind::Dpop {
            error: "invalid_dpop_proof",
            description,
        })
    }

    /// RFC 9449 §7: a bound token with a proof of its key for this request, used once; an
    /// unbound one without the DPoP scheme. Returns the proof that passed, for the shared
    /// replay store.
    fn confirm(
        &self,
        claims: &token::Claims,
        credential: &str,
        dpop: Option<&DpopRequest<'_>>,
    ) -> Result<Option<crate::dpop::Checked>, Rejection> {
        let config = &self.inner.config;
        match (claims.is_bound(), dpop) {
            (false, None) => Ok(None),
            (true, None) => Err(self.refuse(RejectionKind::Dpop {
                error: "invalid_token",
                description: token::SENDER_CONSTRAINED,
            })),
            (false, Some(_)) => Err(self.refuse(RejectionKind::Dpop {
                error: "invalid_token",
                description: token::NOT_BOUND,
            })),
            (true, Some(request)) => {
                let proof = request.proof.map_err(|why| self.dpop_refusal(why))?;
                let target = crate::dpop::Target {
                    method: request.method,
                    url: &request.url,
                    access_token: credential,
                };
                let now = config.clock.now();
                let checked = crate::dpop::check(proof, &target, now, config.leeway)
                    .map_err(|why| self.dpop_refusal(why))?;
                if claims.jkt() != Some(checked.jkt.as_str()) {
                    return Err(self.dpop_refusal(crate::dpop::KEY_MISMATCH));
                }
                self.inner
                    .dpop_replay
                    .record(&checked, now, config.leeway)
                    .map_err(|why| self.dpop_refusal(why))?;
                Ok(Some(checked))
            }
        }
    }

    /// Asks the shared replay store, when one is set, whether `proof` is new. A store that
    /// fails or is slow leaves the process's own memory, which has already taken the proof.
    async fn record_shared(&self, proof: &crate::dpop::Checked) -> Result<(), Rejection> {
        let config = &self.inner.config;
        let Some(store) = &config.dpop_replay_store else {
            return Ok(());
        };
        let key = proof.replay_key();
        let lifetime = crate::dpop::MAX_AGE + config.leeway + 1;
        let ttl = Duration::from_secs(u64::try_from(lifetime).unwrap_or(u64::MAX));
        let answer =
            tokio::time::timeout(config.dpop_replay_timeout, store.insert_new(&key, ttl)).await;
        match answer {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(self.dpop_refusal(crate::dpop::REPLAYED)),
            Ok(Err(err)) => {
                self.warn_replay_fallback(&err.to_string());
                Ok(())
            }
            Err(_) => {
                self.warn_replay_fallback("no answer in time");
                Ok(())
            }
        }
    }

    /// At most one warning every ten seconds, however many proofs fall back.
    fn warn_replay_fallback(&self, reason: &str) {
        let now = self.inner.config.clock.now();
        let last = self.inner.replay_warned_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= REPLAY_WARNING_INTERVAL
            && self
                .inner
                .replay_warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                %reason,
                "the DPoP replay store did not answer; proofs are checked against this process's memory only"
            );
        }
    }

    async fn check_token(
        &self,
        credential: &str,
        dpop: Option<&DpopRequest<'_>>,
    ) -> Result<Principal, Rejection> {
        let config = &self.inner.config;
        let unverified = token::parse(credential).map_err(|why| self.invalid(why))?;
        let key = self
            .signing_key(&unverified.kid)
            .await?
            .ok_or_else(|| self.invalid(UNKNOWN_SIGNING_KEY))?;
        let now = config.clock.now();
        let expected = Expected {
            issuer: &config.issuer,
            resource: &config.resource,
            leeway: config.leeway,
            now,
        };
        let claims =
            token::verify(&unverified, &key, &expected).map_err(|why| self.invalid(why))?;
        if let Some(proof) = self.confirm(&claims, credential, dpop)? {
            self.record_shared(&proof).await?;
        }
        if config.introspect_tokens {
            return self
                .ask_issuer(credential, CredentialKind::AccessToken)
                .await;
        }
        Ok(Principal {
            subject: claims.sub,
            credential: CredentialKind::AccessToken,
            key_id: None,
            client_id: claims.client_id,
            scopes: split_scopes(claims.scope.as_deref()),
            metadata: None,
            expires_at: Some(claims.exp),
            actor: claims.act.filter(|act| act.is_object()),
            challenge: self.inner.challenge.clone(),
        })
    }

    async fn check_key(&self, credential: &str) -> Result<Principal, Rejection> {
        if self.inner.config.remote.is_none() {
            return Err(self.invalid(KEYS_NOT_ACCEPTED));
        }
        self.ask_issuer(credential, CredentialKind::ApiKey).await
    }

    /// The cached answer about the credential of `digest`, while it is fresh at `now`.
    fn cached(&self, digest: &[u8; 32], now: i64) -> Option<Result<Principal, Rejection>> {
        let cached = self.inner.cache.get(digest)?;
        if now < cached.until {
            return Some(cached.answer.map_err(|why| self.invalid(why)));
        }
        self.inner.cache.invalidate(digest);
        None
    }

    /// The issuer's answer about `credential`, from the cache while it is fresh. Requests
    /// with the same uncached credential wait for one question to the issuer, and at most
    /// `max_concurrent_checks` questions are in flight at once.
    async fn ask_issuer(
        &self,
        credential: &str,
        kind: CredentialKind,
    ) -> Result<Principal, Rejection> {
        let config = &self.inner.config;
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        if let Some(answer) = self.cached(&digest, config.clock.now()) {
            return answer;
        }
        let flight = self
            .inner
            .in_flight
            .get_with(digest, || Arc::new(tokio::sync::Mutex::new(())));
        let _turn = flight.lock().await;
        // Whoever held the turn before may have left the answer.
        let now = config.clock.now();
        if let Some(answer) = self.cached(&digest, now) {
            return answer;
        }
        let Ok(_permit) = self.inner.issuer_calls.acquire().await else {
            return Err(self.refuse(RejectionKind::Unavailable));
        };
        let answer = match &config.remote {
            Some(RemoteCheck::Introspection {
                client_id,
                client_secret,
            }) => {
                let endpoint = self.inner.introspection_endpoint.as_deref().unwrap_or("");
                remote::introspect(
                    &self.inner.http,
                    endpoint,
                    (client_id, client_secret),
                    credential,
                )
                .await
            }
            Some(RemoteCheck::VerifyEndpoint { verifier_key }) => {
                remote::verify(
                    &self.inner.http,
                    &self.inner.verify_endpoint,
                    verifier_key,
                    credential,
                    &config.resource,
                )
                .await
            }
            None => return Err(self.invalid(KEYS_NOT_ACCEPTED)),
        };
        let answer = match answer {
            Answer::Valid(found) => {
                found.into_principal(kind, &config.resource, now, self.inner.challenge.clone())
            }
            Answer::Invalid(why) => Err(why),
            Answer::RateLimited { retry_after } => {
                return Err(self.refuse(RejectionKind::RateLimited { retry_after }));
            }
            Answer::Unavailable => return Err(self.refuse(RejectionKind::Unavailable)),
        };
        if config.cache_ttl > 0 {
            let mut until = now.saturating_add(config.cache_ttl);
            if let Ok(Principal {
                expires_at: Some(expires_at),
                ..
            }) = &answer
            {
                until = until.min(*expires_at);
            }
            self.inner.cache.insert(
                digest,
                CachedAnswer {
                    until,
                    answer: answer.clone(),
                },
            );
        }
        answer.map_err(|why| self.invalid(why))
    }

    fn keys(&self) -> Arc<KeySet> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The key with this `kid`, fetching the JWKS again when it is unknown and the last
    /// fetch is at least `jwks_refetch_interval` old.
    async fn signing_key(&self, kid: &str) -> Result<Option<PublicKey>, Rejection> {
        if let Some(key) = self.keys().get(kid) {
            return Ok(Some(key.clone()));
        }
        let config = &self.inner.config;
        let due = |now: i64| {
            now.saturating_sub(self.inner.fetched_at.load(Ordering::SeqCst))
                >= config.jwks_refetch_interval
        };
        if !due(config.clock.now()) {
            return Ok(None);
        }
        let _fetching = self.inner.refetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.keys().get(kid) {
            return Ok(Some(key.clone()));
        }
        let now = config.clock.now();
        if !due(now) {
            return Ok(None);
        }
        self.inner.fetched_at.store(now, Ordering::SeqCst);
        match fetch_jwks(&self.inner.http, &self.inner.jwks_uri).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "fetched the issuer's signing keys again");
                let found = keys.get(kid).cloned();
                *self
                    .inner
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
                Ok(found)
            }
            Err(reason) => {
                tracing::warn!(%reason, "could not fetch the issuer's signing keys");
                Err(self.refuse(RejectionKind::Unavailable))
            }
        }
    }

    fn refuse(&self, kind: RejectionKind) -> Rejection {
        Rejection::new(kind, self.inner.challenge.clone())
    }

    fn invalid(&self, description: &'static str) -> Rejection {
        self.refuse(RejectionKind::InvalidToken { description })
    }
}

/// Whether a credential is a Net API key with a good checksum: a mistyped or invented key
/// is refused without asking the issuer.
fn is_api_key(credential: &str) -> bool {
    let well_formed = credential.len()
        == API_KEY_PREFIX.len() + API_KEY_RANDOM_LEN + API_KEY_CHECKSUM_LEN
        && credential.starts_with(API_KEY_PREFIX)
        && credential
            .bytes()
            .skip(API_KEY_PREFIX.len())
            .all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return false;
    }
    let (checked, checksum) = credential.split_at(credential.len() - API_KEY_CHECKSUM_LEN);
    let mut value = u64::from(crc32fast::hash(checked.as_bytes()));
    let mut expected = [0u8; API_KEY_CHECKSUM_LEN];
    for digit in expected.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    checksum.as_bytes() == expected
}

pub(crate) fn split_scopes(scope: Option<&str>) -> Vec<String> {
    scope
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn fetch_metadata(http: &reqwest::Client, base: &str) -> Result<ServerMetadata, SetupError> {
    let mut last_error = String::new();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        match remote::get_json::<ServerMetadata>(http, &format!("{base}{path}")).await {
            Ok(metadata) => return Ok(metadata),
            Err(reason) => last_error = format!("{path}: {reason}"),
        }
    }
    Err(SetupError::Issuer {
        what: "metadata",
        reason: last_error,
    })
}

async fn fetch_jwks(http: &reqwest::Client, jwks_uri: &str) -> Result<KeySet, String> {
    let body = remote::get_bytes(http, jwks_uri).await?;
    KeySet::parse(&body).map_err(|err| format!("not a JWK Set: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_with_a_good_checksum_are_sent_to_the_issuer() {
        // The example key of Net API's documentation.
        let key = "napi_JNmJJ9ppGis79LdiVB56gNnwCY8JwfT00lDFGZ";
        assert!(is_api_key(key));
        let mistyped = key.replacen("JNm", "JMm", 1);
        assert!(!is_api_key(&mistyped));
        assert!(!is_api_key(&key.replacen("napi_", "napx_", 1)));
        assert!(!is_api_key(&key[..key.len() - 1]));
        assert!(!is_api_key(&format!("{key}0")));
        assert!(!is_api_key(&format!("napi_{}", "a".repeat(38))));
        assert!(!is_api_key(&format!("napi_{}-", "a".repeat(37))));
    }

    /// An issuer that answers every introspection `{"active": false}`, counting the
    /// questions and the most it had in flight at once.
    #[derive(Default)]
    struct StubIssuer {
        calls: std::sync::atomic::AtomicUsize,
        in_flight: std::sync::atomic::AtomicUsize,
        most_in_flight: std::sync::atomic::AtomicUsize,
    }

    async fn start_stub() -> (String, Arc<StubIssuer>) {
        use axum::routing::{get, post};
        use std::sync::atomic::Ordering::SeqCst;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let stub = Arc::new(StubIssuer::default());
        let metadata = serde_json::json!({
            "issuer": base,
            "jwks_uri": format!("{base}/jwks"),
            "introspection_endpoint": format!("{base}/introspect"),
        });
        let counted = Arc::clone(&stub);
        let app = axum::Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || async move { axum::Json(metadata) }),
            )
            .route(
                "/jwks",
                get(|| async { axum::Json(serde_json::json!({ "keys": [] })) }),
            )
            .route(
                "/introspect",
                post(move || async move {
                    counted.calls.fetch_add(1, SeqCst);
                    let now = counted.in_flight.fetch_add(1, SeqCst) + 1;
                    counted.most_in_flight.fetch_max(now, SeqCst);
                    // Held a moment, so that the guard's other requests arrive meanwhile
                    // (the assertions hold however long this is).
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    counted.in_flight.fetch_sub(1, SeqCst);
                    axum::Json(serde_json::json!({ "active": false }))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, stub)
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {key}").parse().expect("header"),
        );
        headers
    }

    /// A well-formed key (good checksum) of `n`.
    fn key_number(n: u32) -> String {
        let checked = format!("{API_KEY_PREFIX}{n:0>API_KEY_RANDOM_LEN$}");
        let mut value = u64::from(crc32fast::hash(checked.as_bytes()));
        let mut checksum = [b'0'; API_KEY_CHECKSUM_LEN];
        for digit in checksum.iter_mut().rev() {
            *digit = BASE62[(value % 62) as usize];
            value /= 62;
        }
        let key = format!("{checked}{}", String::from_utf8_lossy(&checksum));
        assert!(is_api_key(&key), "{key}");
        key
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_with_one_unknown_key_ask_the_issuer_once() {
        use std::sync::atomic::Ordering::SeqCst;
        let (base, stub) = start_stub().await;
        let guard = Guard::discover(
            GuardConfig::new(base, "https://orders.example.com").introspection("svc", "secret"),
        )
        .await
        .expect("guard");
        let key = key_number(7);
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (guard, headers) = (guard.clone(), bearer(&key));
            requests.spawn(async move { guard.authenticate(&headers).await });
        }
        for answer in requests.join_all().await {
            let refused = answer.expect_err("unknown key");
            assert_eq!(refused.status(), axum::http::StatusCode::UNAUTHORIZED);
        }
        assert_eq!(stub.calls.load(SeqCst), 1, "one question for the 50");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn questions_to_the_issuer_in_flight_are_bounded() {
        use std::sync::atomic::Ordering::SeqCst;
        let (base, stub) = start_stub().await;
        let guard = Guard::discover(
            GuardConfig::new(base, "https://orders.example.com")
                .introspection("svc", "secret")
                .max_concurrent_checks(3),
        )
        .await
        .expect("guard");
        let mut requests = tokio::task::JoinSet::new();
        for n in 0..20 {
            let (guard, headers) = (guard.clone(), bearer(&key_number(n)));
            requests.spawn(async move { guard.authenticate(&headers).await });
        }
        for answer in requests.join_all().await {
            assert!(answer.is_err());
        }
        assert_eq!(stub.calls.load(SeqCst), 20, "one per distinct key");
        assert!(
            stub.most_in_flight.load(SeqCst) <= 3,
            "never more than 3 at once"
        );
    }

    #[test]
    fn scopes_are_split_on_spaces() {
        assert_eq!(split_scopes(Some("a  b")), ["a", "b"]);
        assert!(split_scopes(None).is_empty());
    }
}
