//! Webhooks (issue 14): which audit events are delivered, under which type, with what body.
//!
//! An event webhooks receive is written to the outbox (`webhook_deliveries`) in the
//! transaction that records its audit event (see [`Store::record_event`]), so that none is
//! delivered without being recorded, and none recorded is lost.
//!
//! [`Store::record_event`]: crate::store::Store::record_event

use serde_json::{Value, json};

use crate::model::{AuditEvent, OutboxEvent};

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
