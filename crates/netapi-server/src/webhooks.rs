//! The HTTP client of webhook deliveries (core owns the interface, [`WebhookClient`]) and
//! the task that drives them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::telemetry::{self, OutgoingFailure};
use netapi_core::model::WebhookDelivery;
use netapi_core::service::{BackchannelClient, NetApi, SIGNATURE_HEADER, WebhookClient};
use tracing::Instrument;
use url::Url;

/// How often due deliveries are looked for.
const DELIVERY_INTERVAL: Duration = Duration::from_secs(1);

/// A client for one request to a target the caller has checked: pinned to the checked
/// `address` (so that a second lookup cannot answer another), no redirects, no proxy, a
/// timeout. Webhooks, logout tokens and clients' key sets all go out through one.
pub(crate) fn pinned_client(
    url: &Url,
    address: SocketAddr,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .resolve(host, address)
        .build()
        .map_err(|_| "the HTTP client could not be set up".to_owned())
}

/// Deliveries over HTTP(S) with reqwest: no redirects, no proxy, the response body unread,
/// a `traceparent` while tracing is on.
#[derive(Debug, Default)]
pub struct HttpWebhookClient;

#[async_trait::async_trait]
impl WebhookClient for HttpWebhookClient {
    async fn post(
        &self,
        delivery: &WebhookDelivery,
        url: &Url,
        address: SocketAddr,
        signature: &str,
        timeout: Duration,
    ) -> Result<u16, String> {
        let request = pinned_client(url, address, timeout)?
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, "Net-API-Webhooks")
            .header(SIGNATURE_HEADER, signature)
            .body(delivery.payload.clone());
        let span = telemetry::outgoing_span("POST", "webhook", url);
        telemetry::describe_delivery(&span, delivery);
        Ok(send(&span, request).await?.status().as_u16())
    }
}

/// Sends `request` in its `span` ([`telemetry::outgoing_span`]), carrying that span's
/// `traceparent` while tracing is on, and records on it the answer's status or why there
/// was none. The response's body is the caller's to read or leave.
pub(crate) async fn send(
    span: &tracing::Span,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    let outcome = request
        .headers(telemetry::trace_headers(span))
        .send()
        .instrument(span.clone())
        .await
        .map_err(|err| OutgoingFailure::of(&err));
    telemetry::record_outgoing(
        span,
        outcome
            .as_ref()
            .map(|response| response.status().as_u16())
            .map_err(|failure| *failure),
    );
    outcome.map_err(|failure| failure.reason().to_owned())
}

/// Delivers due webhook deliveries until the task is dropped (separate from the other
/// background duties, which a slow receiver must not hold up). Deliveries that are over are
/// deleted by the retention sweep ([`crate::run_retention`]).
pub async fn run_webhook_delivery(api: Arc<NetApi>) {
    let client = HttpWebhookClient;
    let mut tick = tokio::time::interval(DELIVERY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = api.deliver_webhooks(&client).await {
            tracing::warn!(error = %err, "could not deliver webhooks");
        }
    }
}

/// Logout tokens over HTTP(S) with reqwest (OpenID Connect Back-Channel Logout 1.0 §2.5):
/// a form POST, no redirects, no proxy, the response body unread.
#[derive(Debug, Default)]
pub struct HttpBackchannelClient;

#[async_trait::async_trait]
impl BackchannelClient for HttpBackchannelClient {
    async fn post_logout_token(
        &self,
        url: &Url,
        address: SocketAddr,
        token: &str,
        timeout: Duration,
    ) -> Result<u16, String> {
        let request = pinned_client(url, address, timeout)?
            .post(url.clone())
            .header(reqwest::header::USER_AGENT, "Net-API-Logout")
            .form(&[("logout_token", token)]);
        let span = telemetry::outgoing_span("POST", "backchannel_logout", url);
        Ok(send(&span, request).await?.status().as_u16())
    }
}
