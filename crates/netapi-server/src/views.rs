//! JSON shapes of the API's resources.

use netapi_core::clock::format_rfc3339;
use netapi_core::model::{ApiKey, AuditEvent, OAuthClient, User};
use netapi_core::secret::Secret;
use serde_json::{Value, json};

fn time(ts: Option<i64>) -> Value {
    ts.map_or(Value::Null, |t| Value::String(format_rfc3339(t)))
}

/// A user; never its password hash. Serialized straight from the struct: `GET
/// /v1/users/me` is on the hot path, and a `Value` would build a map first.
#[derive(serde::Serialize)]
pub struct UserView<'a> {
    id: &'a str,
    email: &'a str,
    name: &'a str,
    role: &'static str,
    created_at: String,
    updated_at: String,
}

impl<'a> UserView<'a> {
    /// The view of `user`.
    pub fn of(user: &'a User) -> Self {
        Self {
            id: &user.id,
            email: &user.email,
            name: &user.name,
            role: user.role.as_str(),
            created_at: format_rfc3339(user.created_at),
            updated_at: format_rfc3339(user.updated_at),
        }
    }
}

/// A user, as a JSON value to compose into larger answers.
pub fn user(user: &User) -> Value {
    json!(UserView::of(user))
}

/// A stored JSON object (key metadata) as a value; `null` when there is none.
fn metadata(text: Option<&str>) -> Value {
    text.and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null)
}

/// An API key; `secret` only at creation or rotation. `issuer` is the identifier of Net
/// API's own resource, shown for its keys.
pub fn api_key(key: &ApiKey, secret: Option<&Secret>, issuer: &str) -> Value {
    let (resource, scopes) = match &key.resource {
        None => (issuer, json!(key.scopes.names())),
        Some(r) => (r.identifier.as_str(), json!(key.resource_scopes)),
    };
    let mut view = json!({
        "id": key.id,
        "user_id": key.user_id,
        "name": key.name,
        "prefix": key.prefix,
        "last_four": key.last_four,
        "resource": resource,
        "scopes": scopes,
        "metadata": metadata(key.metadata.as_deref()),
        "created_at": format_rfc3339(key.created_at),
        "last_used_at": time(key.last_used_at),
        "expires_at": time(key.expires_at),
        "rate_limit_per_minute": key.rate_limit,
    });
    if let Some(secret) = secret {
        view["key"] = json!(secret.expose());
    }
    view
}

/// An OAuth client (RFC 7591 names); `secret` only at creation or rotation.
pub fn client(client: &OAuthClient, secret: Option<&Secret>) -> Value {
    let mut view = json!({
        "client_id": client.id,
        "client_name": client.name,
        "owner_id": client.owner_id,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": if client.grant_types.contains(&netapi_core::model::GrantType::AuthorizationCode) { vec!["code"] } else { Vec::new() },
        "scope": client.scopes_string(),
        "resources": client.resources,
        "token_endpoint_auth_method": client.auth_method.as_str(),
        "client_id_issued_at": client.created_at,
        "rate_limit_per_minute": client.rate_limit,
        "trusted": client.trusted,
        "created_at": format_rfc3339(client.created_at),
        "updated_at": format_rfc3339(client.updated_at),
    });
    if let Some(secret) = secret {
        view["client_secret"] = json!(secret.expose());
        view["client_secret_expires_at"] = json!(0);
    }
    view
}

/// An audit event.
pub fn event(event: &AuditEvent) -> Value {
    json!({
        "id": event.id,
        "type": event.kind,
        "user_id": event.user_id,
        "ip": event.ip,
        "detail": serde_json::from_str::<Value>(&event.detail).unwrap_or(Value::Null),
        "created_at": format_rfc3339(event.created_at),
    })
}

/// A key verification: the code, and the key's facts where they apply (never the key).
pub fn verification(v: &netapi_core::service::Verification) -> Value {
    let mut out = json!({ "valid": v.valid(), "code": v.code.as_str() });
    if let Some(key) = &v.key {
        out["key_id"] = json!(key.key_id);
        out["subject"] = json!(key.subject);
        out["resource"] = json!(key.resource);
        out["scopes"] = json!(key.scopes);
        out["expires_at"] = time(key.expires_at);
        out["metadata"] = metadata(key.metadata.as_deref());
    }
    if let Some(rate) = &v.rate {
        out["ratelimit"] = json!({
            "limit": rate.limit,
            "remaining": rate.remaining,
            "reset": rate.reset,
        });
    }
    out
}
