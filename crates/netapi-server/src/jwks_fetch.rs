//! The HTTP client that fetches clients' `jwks_uri` for `private_key_jwt` (core owns the
//! interface, [`JwksFetcher`], and the checks of the target).

use std::net::SocketAddr;
use std::time::Duration;

use crate::telemetry;
use netapi_core::service::JwksFetcher;
use tracing::Instrument;
use url::Url;

/// GETs a JWK Set with reqwest: pinned to the checked address, no redirects, no proxy, a
/// timeout, at most `max_bytes` read, and a `traceparent` while tracing is on.
#[derive(Debug, Default)]
pub struct HttpJwksFetcher;

#[async_trait::async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn get(
        &self,
        url: &Url,
        address: SocketAddr,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Vec<u8>, String> {
        let client = crate::webhooks::pinned_client(url, address, timeout)?;
        // The span lasts until the body is read: a slow key set shows in the trace of the
        // request it holds up.
        let span = telemetry::outgoing_span("GET", "jwks", url);
        let request = client
            .get(url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .header(reqwest::header::USER_AGENT, "Net-API");
        let mut response = crate::webhooks::send(&span, request).await?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("answered {}", response.status().as_u16()));
        }
        let too_large = || {
            telemetry::record_failure(&span, "too_large");
            "the key set is too large".to_owned()
        };
        if response
            .content_length()
            .is_some_and(|len| len > max_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .instrument(span.clone())
            .await
            .map_err(|err| {
                let kind = if err.is_timeout() { "timeout" } else { "body" };
                telemetry::record_failure(&span, kind);
                "reading the key set failed".to_owned()
            })?
        {
            if body.len() + chunk.len() > max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
