//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): the
//! client's public keys (registered inline as `jwks`, or fetched from its `jwks_uri`) and
//! the checks of each `client_assertion`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::NetApi;
use crate::error::{Error, Result};
use crate::jwt::{ClientKeys, JwtError};
use crate::model::{ClientAuthMethod, OAuthClient};

/// The longest an assertion may live: its `exp` at most this many seconds ahead.
pub const ASSERTION_MAX_LIFETIME: i64 = 300;
/// How long a fetched (or parsed) key set is used before it is fetched again.
pub const JWKS_CACHE_TTL: Duration = Duration::from_secs(300);
/// How long fetching a `jwks_uri` may take.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest key set read, inline or fetched.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Longest `jwks_uri`.
const MAX_JWKS_URI_LEN: usize = 2_000;
/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;
/// Clock skew allowed on `exp`, `iat` and `nbf`.
const LEEWAY: i64 = 5;
/// A fetched key set at least this old is fetched again when an assertion names a key it
/// lacks (the client rotated its keys).
const REFETCH_AFTER: i64 = 60;

/// Fetches a client's `jwks_uri`: the HTTP client is the server's, so that core knows no
/// HTTP.
#[async_trait::async_trait]
pub trait JwksFetcher: Send + Sync {
    /// GETs `url`, connecting to `address` (the one checked), following no redirect,
    /// giving up after `timeout`, and reading at most `max_bytes` (more is an error).
    /// Answers the body of a 200 response, or why there is none.
    async fn get(
        &self,
        url: &Url,
        address: SocketAddr,
        timeout: Duration,
        max_bytes: usize,
    ) -> std::result::Result<Vec<u8>, String>;
}

/// A cached key set and when it was read.
#[derive(Debug)]
pub(super) struct CachedKeys {
    keys: ClientKeys,
    read_at: i64,
}

impl NetApi {
    /// Checks the keys a client registers or changes to: `private_key_jwt` needs `jwks` (a
    /// JWK Set with at least one usable public key) or `jwks_uri` (an `https` URL whose host
    /// is not a loopback, private or link-local address unless `allow_private_targets`),
    /// not both; other methods take neither. Answers what to store.
    pub(crate) async fn checked_client_keys(
        &self,
        auth_method: ClientAuthMethod,
        jwks: Option<&Value>,
        jwks_uri: Option<&str>,
    ) -> Result<(Option<String>, Option<String>)> {
        if auth_method != ClientAuthMethod::PrivateKeyJwt {
            if jwks.is_some() || jwks_uri.is_some() {
                return Err(Error::invalid(
                    if jwks.is_some() { "jwks" } else { "jwks_uri" },
                    "is only for clients whose token_endpoint_auth_method is private_key_jwt",
                ));
            }
            return Ok((None, None));
        }
        match (jwks, jwks_uri) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "jwks",
                "give jwks or jwks_uri, not both (OpenID Connect Dynamic Client Registration §2)",
            )),
            (None, None) => Err(Error::invalid(
                "jwks",
                "a private_key_jwt client needs jwks or jwks_uri",
            )),
            (Some(set), None) => {
                let text = set.to_string();
                if text.len() > MAX_JWKS_BYTES {
                    return Err(Error::invalid(
                        "jwks",
                        format!("must be at most {MAX_JWKS_BYTES} bytes"),
                    ));
                }
                ClientKeys::parse(set).map_err(|why| Error::invalid("jwks", why))?;
                Ok((Some(text), None))
            }
            (None, Some(uri)) => {
                self.checked_jwks_uri(uri).await?;
                Ok((None, Some(uri.to_owned())))
            }
        }
    }

    /// A `jwks_uri`: bounded, absolute, `https` (`http` too where private targets are
    /// allowed), no credentials or fragment, and a host whose every address may be reached.
    async fn checked_jwks_uri(&self, uri: &str) -> Result<(Url, SocketAddr)> {
        let invalid = |message: &str| Error::invalid("jwks_uri", message);
        if uri.len() > MAX_JWKS_URI_LEN {
            return Err(invalid("is longer than 2000 characters"));
        }
        let parsed = Url::parse(uri).map_err(|_| invalid("is not an absolute URL"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.settings.allow_private_targets => {}
            _ => return Err(invalid("must use https")),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("must not carry credentials"));
        }
        if parsed.fragment().is_some() {
            return Err(invalid("must not have a fragment"));
        }
        let address = self
            .resolve_target(&parsed)
            .await
            .map_err(|message| invalid(&message))?;
        Ok((parsed, address))
    }

    /// The client's key set: parsed from `jwks`, or fetched from `jwks_uri` (cached for
    /// [`JWKS_CACHE_TTL`]; `fresh` fetches again a set read over a minute ago). `None` when
    /// there is none or it cannot be read (logged).
    async fn keys_of(&self, client: &OAuthClient, fresh: bool) -> Option<Arc<CachedKeys>> {
        let now = self.now();
        let cache_key = match (&client.jwks, &client.jwks_uri) {
            (Some(_), _) => format!("inline:{}:{}", client.id, client.updated_at),
            (None, Some(uri)) => format!("uri:{uri}"),
            (None, None) => return None,
        };
        if let Some(cached) = self.client_key_sets.get(&cache_key)
            && !(fresh && client.jwks.is_none() && now - cached.read_at >= REFETCH_AFTER)
        {
            return Some(cached);
        }
        let set: Value = match (&client.jwks, &client.jwks_uri) {
            (Some(text), _) => serde_json::from_str(text).ok()?,
            (None, Some(uri)) => {
                let Some(fetcher) = &self.jwks_fetcher else {
                    tracing::warn!(client_id = %client.id, "no HTTP client to fetch jwks_uri");
                    return None;
                };
                // Checked again at each fetch: what a name resolves to can change.
                let (url, address) = match self.checked_jwks_uri(uri).await {
                    Ok(target) => target,
                    Err(err) => {
                        tracing::warn!(client_id = %client.id, error = %err, "jwks_uri refused");
                        return None;
                    }
                };
                let body = match fetcher
                    .get(&url, address, JWKS_FETCH_TIMEOUT, MAX_JWKS_BYTES)
                    .await
                {
                    Ok(body) => body,
                    Err(why) => {
                        tracing::warn!(client_id = %client.id, error = %why, "could not fetch jwks_uri");
                        return None;
                    }
                };
                serde_json::from_slice(&body).ok()?
            }
            (None, None) => return None,
        };
        let keys = match ClientKeys::parse(&set) {
            Ok(keys) => keys,
            Err(why) => {
                tracing::warn!(client_id = %client.id, error = %why, "client key set unusable");
                return None;
            }
        };
        let cached = Arc::new(CachedKeys { keys, read_at: now });
        self.client_key_sets.insert(cache_key, Arc::clone(&cached));
        Some(cached)
    }

    /// The audiences an assertion may name (RFC 7523 §3, RFC 9126 §2): the issuer, or the
    /// URL of the token, PAR, revocation or introspection endpoint.
    fn assertion_audiences(&self) -> [String; 5] {
        let issuer = &self.settings.issuer;
        let base = issuer.trim_end_matches('/');
        [
            issuer.clone(),
            format!("{base}/oauth/token"),
            format!("{base}/oauth/par"),
            format!("{base}/oauth/revoke"),
            format!("{base}/oauth/introspect"),
        ]
    }

    /// Whether `assertion` authenticates `client` (a `private_key_jwt` client): signed with
    /// one of its keys (RS256, ES256 or EdDSA), `iss` = `sub` = its id, `aud` naming this
    /// server, `exp` present and at most [`ASSERTION_MAX_LIFETIME`] ahead, `iat` and `nbf`
    /// not in the future, and a `jti` never seen before (recorded until `exp`).
    pub(crate) async fn verify_client_assertion(
        &self,
        client: &OAuthClient,
        assertion: &str,
    ) -> bool {
        match self.check_client_assertion(client, assertion).await {
            Ok(()) => true,
            Err(why) => {
                tracing::info!(client_id = %client.id, reason = why, "client assertion refused");
                false
            }
        }
    }

    async fn check_client_assertion(
        &self,
        client: &OAuthClient,
        assertion: &str,
    ) -> std::result::Result<(), &'static str> {
        if client.auth_method != ClientAuthMethod::PrivateKeyJwt {
            return Err("the client does not use private_key_jwt");
        }
        let keys = self.keys_of(client, false).await.ok_or("no usable keys")?;
        let claims = match keys.keys.verify(assertion) {
            Ok(claims) => claims,
            Err(JwtError::UnknownKey) if client.jwks.is_none() => {
                // The client may have rotated its keys since they were fetched.
                let keys = self.keys_of(client, true).await.ok_or("no usable keys")?;
                keys.keys
                    .verify(assertion)
                    .map_err(|_| "bad signature or key")?
            }
            Err(JwtError::Algorithm) => return Err("unsupported algorithm"),
            Err(_) => return Err("bad signature or key"),
        };
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss") != Some(client.id.as_str()) || text("sub") != Some(client.id.as_str()) {
            return Err("iss and sub must be the client_id");
        }
        let audiences = self.assertion_audiences();
        let names_us = |aud: &Value| {
            aud.as_str()
                .is_some_and(|a| audiences.iter().any(|x| x == a))
        };
        let aud_ok = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(names_us),
            Some(aud) => names_us(aud),
            None => false,
        };
        if !aud_ok {
            return Err("aud does not name this server");
        }
        let now = self.now();
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or("exp is missing")?;
        if exp + LEEWAY <= now {
            return Err("expired");
        }
        if exp - now > ASSERTION_MAX_LIFETIME + LEEWAY {
            return Err("exp is too far ahead");
        }
        for name in ["iat", "nbf"] {
            match claims.get(name) {
                None => {}
                Some(value) => match value.as_i64() {
                    Some(at) if at <= now + LEEWAY => {}
                    _ => return Err("iat or nbf is in the future or not a number"),
                },
            }
        }
        let jti = text("jti")
            .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
            .ok_or("jti is missing or too long")?;
        let hash = Sha256::digest(jti.as_bytes());
        let fresh = self
            .store
            .use_assertion_jti(&client.id, hash.as_slice(), exp + LEEWAY, now)
            .await
            .map_err(|_| "storage failed")?;
        if fresh {
            Ok(())
        } else {
            Err("jti already used")
        }
    }
}
