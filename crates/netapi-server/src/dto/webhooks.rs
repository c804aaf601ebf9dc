//! What `/v1/webhooks` answers with.

use netapi_core::clock::format_rfc3339;
use netapi_core::model::{Webhook, WebhookDelivery};
use netapi_core::secret::Secret;
use serde::Serialize;
use utoipa::ToSchema;

use super::{fields, time};

/// A webhook; never its signing secret.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Webhook)]
pub(crate) struct WebhookView {
    /// `whk_...`
    id: String,
    url: String,
    /// The event types it receives.
    events: Vec<String>,
    /// The administrator who created it.
    created_by: String,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
}

impl WebhookView {
    pub(crate) fn of(webhook: &Webhook) -> Self {
        Self {
            id: webhook.id.clone(),
            url: webhook.url.clone(),
            events: webhook.events.clone(),
            created_by: webhook.created_by.clone(),
            created_at: format_rfc3339(webhook.created_at),
        }
    }
}

/// A new webhook with its signing secret, shown this once.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewWebhook)]
pub(crate) struct NewWebhookView {
    #[serde(flatten)]
    webhook: WebhookView,
    /// The key of the HMAC in `Netapi-Signature` (`whsec_...`); shown this once.
    secret: String,
}

impl NewWebhookView {
    pub(crate) fn new(webhook: &Webhook, secret: &Secret) -> Self {
        Self {
            webhook: WebhookView::of(webhook),
            secret: secret.expose().to_owned(),
        }
    }
}

/// Live webhooks, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookList {
    pub(crate) webhooks: Vec<WebhookView>,
}

/// One event on its way to a webhook.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookDelivery)]
pub(crate) struct DeliveryView {
    /// `whd_...`
    id: String,
    /// The event (`evt_...`, as in the audit log and the body's `id`).
    event_id: String,
    /// The event type.
    #[serde(rename = "type")]
    event_type: String,
    /// `pending`, `delivered` or `failed` (given up).
    status: &'static str,
    /// Attempts made.
    attempts: u32,
    /// The HTTP status of the last answer, if there was one.
    response_code: Option<u16>,
    /// Why the last attempt failed (a short excerpt).
    last_error: Option<String>,
    /// When a pending delivery is attempted next.
    #[schema(schema_with = fields::date_time_nullable, required = true)]
    next_attempt_at: Option<String>,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
    #[schema(schema_with = fields::date_time_nullable, required = true)]
    delivered_at: Option<String>,
}

impl DeliveryView {
    pub(crate) fn of(delivery: &WebhookDelivery) -> Self {
        let pending = delivery.status == netapi_core::model::DeliveryStatus::Pending;
        Self {
            id: delivery.id.clone(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            status: delivery.status.as_str(),
            attempts: delivery.attempts,
            response_code: delivery.last_status_code,
            last_error: delivery.last_error.clone(),
            next_attempt_at: time(pending.then_some(delivery.next_attempt_at)),
            created_at: format_rfc3339(delivery.created_at),
            delivered_at: time(delivery.delivered_at),
        }
    }
}

/// A webhook's deliveries, newest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveryList {
    pub(crate) deliveries: Vec<DeliveryView>,
    /// Pass as `page_token` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_page_token: Option<String>,
}
