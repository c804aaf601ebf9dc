//! Webhooks (issue 14): which audit events are delivered, under which type, with what body.
//!
//! An event webhooks receive is written to the outbox (`webhook_deliveries`) in the
//! transaction that records its audit event (see [`Store::record_event`]), so that none is
//! delivered without being recorded, and none recorded is lost.
//!
//! [`Store::record_event`]: crate::store::Store::record_event

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use url::Url;

use super::{NetApi, Principal};
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::{
    AuditEvent, ClaimedDelivery, DeliveryAttempt, DeliveryStatus, OutboxEvent, Webhook,
    WebhookDelivery,
};
use crate::scope::Scope;
use crate::secret::{Secret, random_base62};

/// The event types a webhook may subscribe to.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "user.created",
    "user.deleted",
    "api_key.created",
    "api_key.rotated",
    "api_key.revoked",
    "api_key.leaked",
    "oauth_client.created",
    "oauth_client.deleted",
    "refresh_token.reuse_detected",
    "login.locked",
];

/// The webhook event type of an audit event kind, if webhooks receive it. Audit kinds keep
/// their names (the audit log is read by people and tools already); the one that differs is
/// mapped here.
pub fn webhook_event_type(kind: &str) -> Option<&'static str> {
    let kind = match kind {
        "user.registered" => "user.created",
        other => other,
    };
    WEBHOOK_EVENTS.iter().copied().find(|known| *known == kind)
}

/// The outbox entry of `event`, if webhooks receive it: the body
/// `{"id", "type", "created_at", "data"}`, where `data` is the event's detail (ids and facts,
/// never a secret) and the user concerned.
pub(crate) fn outbox_entry(event: &AuditEvent) -> Option<OutboxEvent> {
    let event_type = webhook_event_type(&event.kind)?;
    let mut data = match serde_json::from_str::<Value>(&event.detail) {
        Ok(Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    if let Some(user_id) = &event.user_id {
        data.insert("user_id".to_owned(), json!(user_id));
    }
    let payload = json!({
        "id": event.id,
        "type": event_type,
        "created_at": event.created_at,
        "data": data,
    });
    Some(OutboxEvent {
        event_type: event_type.to_owned(),
        payload: payload.to_string(),
    })
}

/// Webhooks there may be at once (each event is written once per subscribed webhook).
pub const MAX_WEBHOOKS: usize = 20;
/// The longest webhook URL accepted.
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;
/// Attempts before a delivery is given up: with the default 5 s base, retries at 5 s, 10 s,
/// 20 s ... span about 2.8 hours.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 12;
/// Characters of a failure kept (never a response body beyond that).
pub const MAX_ERROR_EXCERPT: usize = 256;
/// Deliveries one step of the worker claims.
const CLAIM_BATCH: u32 = 20;
/// The signature header.
pub const SIGNATURE_HEADER: &str = "Netapi-Signature";

/// What a webhook is created with.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Where deliveries go (https; http only where private targets are allowed).
    pub url: String,
    /// The event types, each one of [`WEBHOOK_EVENTS`].
    pub events: Vec<String>,
}

/// Sends webhook deliveries: the HTTP client is the server's, so that core knows no HTTP.
#[async_trait::async_trait]
pub trait WebhookClient: Send + Sync {
    /// POSTs the `delivery`'s JSON payload with the signature header to `url`, connecting
    /// to `address` (the one checked, whatever the host resolves to by now), following no
    /// redirect and giving up after `timeout`; answers the response status, or why there was
    /// none. At most a short excerpt of anything read back is kept. The rest of `delivery`
    /// (its ids, event type, attempts so far) is there to describe the attempt, in a trace.
    async fn post(
        &self,
        delivery: &WebhookDelivery,
        url: &Url,
        address: SocketAddr,
        signature: &str,
        timeout: Duration,
    ) -> std::result::Result<u16, String>;
}

/// Whether an outbound request may go to `ip` when private targets are not allowed: not
/// loopback, private (RFC 1918, ULA), link-local, unspecified, multicast, shared (CGNAT),
/// documentation or broadcast, nor an IPv4 address of those in IPv6 clothing (mapped or
/// NAT64).
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_address(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., a, b, c, d] = v6.octets();
                return is_public_address(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            let first = segments[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// The `Netapi-Signature` value: `t=<unix>,v1=<hex HMAC-SHA-256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

/// The first `MAX_ERROR_EXCERPT` characters of `text`.
fn excerpt(text: &str) -> String {
    text.chars().take(MAX_ERROR_EXCERPT).collect()
}

fn require_webhook_admin(caller: &Principal) -> Result<()> {
    caller.require(Scope::Admin)?;
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Error::missing_scope(Scope::Admin))
    }
}

impl NetApi {
    /// The sealing context of a webhook's secret: a sealed secret moved to another webhook
    /// does not open.
    fn webhook_secret_context(id: &str) -> Vec<u8> {
        format!("webhook:{id}").into_bytes()
    }

    /// Checks a webhook URL: parsed, bounded, https (http too where private targets are
    /// allowed, for tests and closed networks), no credentials or fragment, and a host that
    /// resolves only to addresses outbound requests may reach. Answers the address to use.
    async fn checked_target(&self, url: &str) -> Result<(Url, SocketAddr)> {
        let invalid = |message: &str| Error::invalid("url", message);
        if url.len() > MAX_WEBHOOK_URL_LEN {
            return Err(invalid("is longer than 2048 characters"));
        }
        let parsed = Url::parse(url).map_err(|_| invalid("is not an absolute URL"))?;
        let allow_private = self.settings.allow_private_targets;
        match parsed.scheme() {
            "https" => {}
            "http" if allow_private => {}
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

    /// The address to connect to for `url`, if every address its host has may be reached.
    pub(crate) async fn resolve_target(
        &self,
        url: &Url,
    ) -> std::result::Result<SocketAddr, String> {
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| "host does not resolve".to_owned())?
                .collect(),
            None => return Err("has no host".to_owned()),
        };
        if !self.settings.allow_private_targets
            && addresses.iter().any(|a| !is_public_address(a.ip()))
        {
            return Err("resolves to a loopback, private or link-local address".to_owned());
        }
        addresses
            .first()
            .copied()
            .ok_or_else(|| "host does not resolve".to_owned())
    }

    /// Creates a webhook; answers it and its signing secret (shown this once). Admins only.
    pub async fn create_webhook(
        &self,
        caller: &Principal,
        new: NewWebhook,
        ip: Option<&str>,
    ) -> Result<(Webhook, Secret)> {
        require_webhook_admin(caller)?;
        if new.events.is_empty() || new.events.len() > WEBHOOK_EVENTS.len() {
            return Err(Error::invalid(
                "events",
                "lists between one and all of the event types",
            ));
        }
        let mut events = Vec::with_capacity(new.events.len());
        for event in &new.events {
            if !WEBHOOK_EVENTS.contains(&event.as_str()) {
                return Err(Error::invalid(
                    "events",
                    format!("unknown event type; known: {}", WEBHOOK_EVENTS.join(", ")),
                ));
            }
            if !events.contains(event) {
                events.push(event.clone());
            }
        }
        // Kept as parsed (ASCII: control, bidirectional and other non-ASCII characters
        // percent-encoded or in punycode), so that what people are shown is what is used.
        let (url, _) = self.checked_target(&new.url).await?;
        let id = new_id("whk");
        let secret = Secret::new(format!("whsec_{}", random_base62(32)));
        let webhook = Webhook {
            sealed_secret: self.settings.secret_key.seal(
                &Self::webhook_secret_context(&id),
                secret.expose().as_bytes(),
            ),
            id,
            created_by: caller.user_id.clone(),
            url: url.into(),
            events,
            created_at: self.now(),
            disabled_at: None,
        };
        // The cap is checked by the insert itself, so that creations at once cannot pass it.
        if !self
            .store
            .insert_webhook(&webhook, u32::try_from(MAX_WEBHOOKS).unwrap_or(u32::MAX))
            .await?
        {
            return Err(Error::invalid(
                "url",
                format!("there are {MAX_WEBHOOKS} webhooks already (the most allowed)"),
            ));
        }
        self.audit(
            Some(&caller.user_id),
            "webhook.created",
            ip,
            json!({ "webhook_id": webhook.id, "events": webhook.events }),
        )
        .await;
        Ok((webhook, secret))
    }

    /// Live webhooks. Admins only.
    pub async fn list_webhooks(&self, caller: &Principal) -> Result<Vec<Webhook>> {
        require_webhook_admin(caller)?;
        let limit = u32::try_from(MAX_WEBHOOKS).unwrap_or(u32::MAX);
        Ok(self.store.list_webhooks(None, limit).await?)
    }

    /// A live webhook. Admins only.
    pub async fn get_webhook(&self, caller: &Principal, id: &str) -> Result<Webhook> {
        require_webhook_admin(caller)?;
        match self.store.get_webhook(id).await? {
            Some(webhook) if webhook.disabled_at.is_none() => Ok(webhook),
            _ => Err(Error::NotFound("webhook")),
        }
    }

    /// Deletes a webhook: nothing more is delivered to it (its row stays, disabled, with
    /// its deliveries). Admins only.
    pub async fn delete_webhook(
        &self,
        caller: &Principal,
        id: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        require_webhook_admin(caller)?;
        if !self.store.disable_webhook(id, self.now()).await? {
            return Err(Error::NotFound("webhook"));
        }
        self.audit(
            Some(&caller.user_id),
            "webhook.deleted",
            ip,
            json!({ "webhook_id": id }),
        )
        .await;
        Ok(())
    }

    /// A webhook's deliveries, newest first, before the cursor. Admins only.
    pub async fn list_webhook_deliveries(
        &self,
        caller: &Principal,
        id: &str,
        page: super::PageRequest,
    ) -> Result<super::Page<WebhookDelivery>> {
        let webhook = self.get_webhook(caller, id).await?;
        let items = self
            .store
            .list_webhook_deliveries(&webhook.id, page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(items, |d| &d.id))
    }

    /// Delivers a delivery again, soon (whatever its status). While an attempt of it is in
    /// flight, the redelivery is made once that attempt ends, never beside it. Admins only.
    pub async fn redeliver_webhook_delivery(
        &self,
        caller: &Principal,
        id: &str,
        delivery_id: &str,
    ) -> Result<WebhookDelivery> {
        let webhook = self.get_webhook(caller, id).await?;
        if !self
            .store
            .redeliver_webhook_delivery(&webhook.id, delivery_id, self.now())
            .await?
        {
            return Err(Error::NotFound("delivery"));
        }
        self.store
            .get_webhook_delivery(&webhook.id, delivery_id)
            .await?
            .ok_or(Error::NotFound("delivery"))
    }

    /// One step of the delivery worker: claims the deliveries due now (leased, so that
    /// another instance does not attempt them too), POSTs each and records how it went.
    /// State is all in storage, so a restarted instance carries on. Answers how many were
    /// attempted.
    pub async fn deliver_webhooks(&self, client: &dyn WebhookClient) -> Result<usize> {
        let now = self.now();
        let timeout = self.settings.webhook_timeout;
        // Longer than an attempt can take, so that a lease ends only if its holder died.
        let lease = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX / 4) * 2 + 30;
        let lease_until = now + lease;
        let due = self
            .store
            .claim_webhook_deliveries(now, lease_until, CLAIM_BATCH)
            .await?;
        for claimed in &due {
            let attempt = self.attempt_delivery(client, claimed, timeout).await;
            if !self
                .store
                .record_webhook_attempt(&claimed.delivery.id, lease_until, &attempt)
                .await?
            {
                tracing::debug!(delivery = %claimed.delivery.id, "lease lost before the attempt was recorded");
            }
        }
        Ok(due.len())
    }

    async fn attempt_delivery(
        &self,
        client: &dyn WebhookClient,
        claimed: &ClaimedDelivery,
        timeout: Duration,
    ) -> DeliveryAttempt {
        let outcome = self.post_delivery(client, claimed, timeout).await;
        let at = self.now();
        let attempts = claimed.delivery.attempts.saturating_add(1);
        let (status_code, error) = match outcome {
            Ok(code) if (200..300).contains(&code) => {
                return DeliveryAttempt {
                    status: DeliveryStatus::Delivered,
                    next_attempt_at: at,
                    status_code: Some(code),
                    error: None,
                    at,
                };
            }
            Ok(code) => (Some(code), format!("the receiver answered {code}")),
            Err(reason) => (None, reason),
        };
        let give_up = attempts >= MAX_DELIVERY_ATTEMPTS;
        let backoff = self
            .settings
            .webhook_retry_base
            .saturating_mul(1 << (attempts - 1).min(20));
        DeliveryAttempt {
            status: if give_up {
                DeliveryStatus::Failed
            } else {
                DeliveryStatus::Pending
            },
            next_attempt_at: at.saturating_add(backoff),
            status_code,
            error: Some(excerpt(&error)),
            at,
        }
    }

    async fn post_delivery(
        &self,
        client: &dyn WebhookClient,
        claimed: &ClaimedDelivery,
        timeout: Duration,
    ) -> std::result::Result<u16, String> {
        let delivery = &claimed.delivery;
        let secret = self
            .settings
            .secret_key
            .open(
                &Self::webhook_secret_context(&delivery.webhook_id),
                &claimed.sealed_secret,
            )
            .ok_or_else(|| "the signing secret cannot be opened with this secret key".to_owned())?;
        // Checked again at each attempt: what a name resolves to can change.
        let url = Url::parse(&claimed.url).map_err(|_| "the URL is invalid".to_owned())?;
        let address = self.resolve_target(&url).await?;
        let signature = signature(&secret, self.now(), &delivery.payload);
        client
            .post(delivery, &url, address, &signature, timeout)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, detail: &str) -> AuditEvent {
        AuditEvent {
            id: "evt_1".to_owned(),
            user_id: Some("usr_1".to_owned()),
            kind: kind.to_owned(),
            ip: Some("192.0.2.1".to_owned()),
            detail: detail.to_owned(),
            created_at: 1_700_000_000,
        }
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "100.64.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = private.parse().expect("address");
            assert!(!is_public_address(ip), "{private}");
        }
        for public in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "::ffff:93.184.216.34",
        ] {
            let ip: IpAddr = public.parse().expect("address");
            assert!(is_public_address(ip), "{public}");
        }
    }

    #[test]
    fn the_signature_is_an_hmac_of_time_and_body() {
        // HMAC-SHA-256("key", "1.{}"), computed independently.
        let header = signature(b"key", 1, "{}");
        assert!(header.starts_with("t=1,v1="), "{header}");
        assert_eq!(header.len(), "t=1,v1=".len() + 64);
        assert_ne!(header, signature(b"key", 2, "{}"));
        assert_ne!(header, signature(b"other", 1, "{}"));
    }

    #[test]
    fn only_listed_events_go_to_webhooks() {
        assert_eq!(
            webhook_event_type("api_key.revoked"),
            Some("api_key.revoked")
        );
        assert_eq!(webhook_event_type("user.registered"), Some("user.created"));
        assert_eq!(webhook_event_type("user.login"), None);
        assert_eq!(webhook_event_type("user.created.extra"), None);
        assert!(outbox_entry(&event("user.login_failed", "{}")).is_none());
    }

    #[test]
    fn the_body_carries_ids_and_facts_but_not_the_source_address() {
        let entry = outbox_entry(&event("user.registered", r#"{"api_key_id":"key_1"}"#))
            .expect("delivered");
        assert_eq!(entry.event_type, "user.created");
        let body: Value = serde_json::from_str(&entry.payload).expect("json");
        assert_eq!(
            body,
            json!({
                "id": "evt_1",
                "type": "user.created",
                "created_at": 1_700_000_000,
                "data": {"api_key_id": "key_1", "user_id": "usr_1"},
            })
        );
    }
}
