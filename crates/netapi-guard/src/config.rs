//! What a [`Guard`](crate::Guard) is told at start.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::replay::DpopReplayStore;

/// The most clock leeway the guard allows on `exp` and `nbf` (Net API's contract: 5 s).
pub const MAX_LEEWAY: Duration = Duration::from_secs(5);

/// How API keys (and, with [`GuardConfig::introspect_tokens`], access tokens) are checked
/// with the issuer.
#[derive(Clone)]
pub(crate) enum RemoteCheck {
    /// RFC 7662 introspection as a confidential client whose `resources` list this resource.
    Introspection {
        client_id: String,
        client_secret: String,
    },
    /// `POST /v1/keys/verify` with a key of the service's own that holds `keys:verify`.
    VerifyEndpoint { verifier_key: String },
}

impl fmt::Debug for RemoteCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Introspection { client_id, .. } => f
                .debug_struct("Introspection")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
            Self::VerifyEndpoint { .. } => f
                .debug_struct("VerifyEndpoint")
                .field("verifier_key", &"<redacted>")
                .finish(),
        }
    }
}

/// The guard's settings: the issuer, the resource it guards, and how it checks what it
/// cannot check offline. Build one with [`GuardConfig::new`] and the methods below, then
/// start the guard with [`Guard::discover`](crate::Guard::discover).
#[derive(Clone, Debug)]
pub struct GuardConfig {
    pub(crate) issuer: String,
    pub(crate) resource: String,
    pub(crate) leeway: i64,
    pub(crate) remote: Option<RemoteCheck>,
    pub(crate) introspect_tokens: bool,
    pub(crate) cache_ttl: i64,
    pub(crate) cache_capacity: u64,
    pub(crate) max_concurrent_checks: usize,
    pub(crate) jwks_refetch_interval: i64,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) public_origin: Option<String>,
    pub(crate) dpop_replay_store: Option<Arc<dyn DpopReplayStore>>,
    pub(crate) dpop_replay_timeout: Duration,
}

impl GuardConfig {
    /// A guard for `resource` (the identifier an administrator gave the API in Net API, and
    /// the `aud` of its access tokens) trusting the Net API at `issuer` (its `issuer`
    /// setting, e.g. `https://auth.example.com`).
    ///
    /// Defaults: 5 s leeway, API keys refused (no way to check them until
    /// [`introspection`](Self::introspection) or [`verify_endpoint`](Self::verify_endpoint)
    /// is set), access tokens checked offline only, a 10 s cache of remote answers holding
    /// at most 10,000 of them, at most 32 questions to the issuer in flight at once, the JWKS fetched again for an unknown `kid` at most every
    /// 30 s, the system clock.
    pub fn new(issuer: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            resource: resource.into(),
            leeway: secs(MAX_LEEWAY),
            remote: None,
            introspect_tokens: false,
            cache_ttl: 10,
            cache_capacity: 10_000,
            max_concurrent_checks: 32,
            jwks_refetch_interval: 30,
            clock: Arc::new(SystemClock),
            http: None,
            public_origin: None,
            dpop_replay_store: None,
            dpop_replay_timeout: Duration::from_millis(250),
        }
    }

    /// The scheme, host and port clients use to reach this API (`https://api.example.com`),
    /// for the `htu` of DPoP proofs: a request's URL is this origin and the request's path.
    /// By default, the origin of the resource identifier.
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// Clock leeway on `exp` and `nbf`; capped at [`MAX_LEEWAY`].
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = secs(leeway.min(MAX_LEEWAY));
        self
    }

    /// Checks API keys by RFC 7662 introspection, authenticating as this confidential
    /// client (`client_secret_basic`). The client must list the resource in its
    /// `resources`; Net API tells it nothing about credentials of other resources.
    pub fn introspection(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.remote = Some(RemoteCheck::Introspection {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        });
        self
    }

    /// Checks API keys with `POST /v1/keys/verify`, presenting `verifier_key`, a key of
    /// the service's own holding `keys:verify`. Unlike introspection, each check counts
    /// against the presented key's per-minute limit (and its usage), and a key over its
    /// limit is answered 429.
    pub fn verify_endpoint(mut self, verifier_key: impl Into<String>) -> Self {
        self.remote = Some(RemoteCheck::VerifyEndpoint {
            verifier_key: verifier_key.into(),
        });
        self
    }

    /// Also asks the issuer about every access token (after the offline checks), so that a
    /// revoked token is refused within the cache TTL instead of at its expiry. Needs
    /// [`introspection`](Self::introspection).
    pub fn introspect_tokens(mut self, on: bool) -> Self {
        self.introspect_tokens = on;
        self
    }

    /// How long an answer of the issuer (positive or negative) is reused: the bound on how
    /// late a revocation is seen. Zero asks the issuer on every request.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = secs(ttl);
        self
    }

    /// The most questions to the issuer (introspection or verification, for credentials
    /// not in the cache) in flight at once; more requests wait their turn. Requests with
    /// the same credential share one question whatever this is. At least 1.
    pub fn max_concurrent_checks(mut self, checks: usize) -> Self {
        self.max_concurrent_checks = checks.max(1);
        self
    }

    /// The most answers kept in the cache (least used go first).
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// The least time between two fetches of the JWKS caused by tokens with an unknown
    /// `kid`, so that made-up key ids cannot make the guard hammer the issuer.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = secs(interval);
        self
    }

    /// A replay store every instance of the API shares (Redis, say), so that a DPoP proof
    /// used at one instance is refused at the others. Without one, each process remembers
    /// the proofs it accepted (at most 100,000 live ones), and a captured proof could be
    /// used once more at each other instance within its minute.
    pub fn dpop_replay_store(mut self, store: Arc<dyn DpopReplayStore>) -> Self {
        self.dpop_replay_store = Some(store);
        self
    }

    /// How long a proof waits for the [`dpop_replay_store`](Self::dpop_replay_store)'s
    /// answer before the guard goes on with its own memory alone (250 ms by default).
    pub fn dpop_replay_timeout(mut self, timeout: Duration) -> Self {
        self.dpop_replay_timeout = timeout;
        self
    }

    /// The clock expiry and cache lifetimes read (tests pass one they move by hand).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client for the issuer (proxies, custom roots). By default one with a 5 s
    /// timeout that follows no redirects.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let introspecting = GuardConfig::new("https://auth.example.com", "https://api.example.com")
            .introspection("cli_1", "napcs_very_secret");
        let verifying = GuardConfig::new("https://auth.example.com", "https://api.example.com")
            .verify_endpoint("napi_very_secret");
        let shown = format!("{introspecting:?} {verifying:?}");
        assert!(shown.contains("cli_1"));
        assert!(!shown.contains("very_secret"), "{shown}");
    }

    #[test]
    fn the_leeway_is_capped_at_five_seconds() {
        let config = GuardConfig::new("https://a.example.com", "https://b.example.com");
        assert_eq!(config.clone().leeway(Duration::from_secs(60)).leeway, 5);
        assert_eq!(config.leeway(Duration::from_secs(2)).leeway, 2);
    }
}
