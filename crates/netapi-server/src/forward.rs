//! Forward auth for reverse proxies (`/auth/forward`) and RFC 9728 protected resource
//! metadata. The decision itself is `NetApi::check_access`, the one `/v1` uses.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::Error;
use netapi_core::service::{Access, Credential};

use std::cell::RefCell;
use std::collections::HashMap;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ClientIp, RateSlot, bearer};

/// The first value of each query parameter named; a repeated or undecodable one cannot make
/// the answer anything but the decision (a proxy turns a 400 into a 500).
fn query_values<const N: usize>(request: &Request, names: [&str; N]) -> [Option<String>; N] {
    let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
    let query = request.uri().query().unwrap_or_default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if let Some(i) = names.iter().position(|n| *n == name) {
            found[i].get_or_insert_with(|| value.into_owned());
        }
    }
    found
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// `/auth/forward?resource=...&scope=...`, any method.
#[utoipa::path(
    get,
    path = "/auth/forward",
    tag = "forward-auth",
    operation_id = "forwardAuth",
    params(crate::openapi::ForwardQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The credential may make the original request. Empty body; \
            the identity is in the headers, for the proxy to pass upstream. Any method is \
            accepted (Envoy forwards the original one).",
            headers(
                ("X-Netapi-Subject" = String, description = "The user id."),
                ("X-Netapi-Credential" = String, description = "`api_key` or `access_token`."),
                ("X-Netapi-Key-Id" = String, description = "The API key's id (API keys only)."),
                ("X-Netapi-Client-Id" = String, description = "The OAuth client's id (access tokens only)."),
                ("X-Netapi-Scopes" = String, description = "The credential's scopes, space-separated."),
                ("X-Netapi-Resource" = String, description = "The resource's identifier."),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        crate::openapi::AuthErrors,
    )
)]
pub async fn forward(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Response {
    let [resource, scope] = query_values(&request, ["resource", "scope"]);
    decide(&state, &ip, request, resource, scope).await
}

/// `/auth/forward/{*path}`, any method: the resource and scopes in `X-Netapi-Resource` and
/// `X-Netapi-Scope`, the original path appended (Envoy `ext_authz`).
#[utoipa::path(
    get,
    path = "/auth/forward/{path}",
    tag = "forward-auth",
    operation_id = "forwardAuthWithPath",
    params(
        ("path" = String, Path, description = "The original request's path, appended by the proxy; ignored."),
        ("X-Netapi-Resource" = Option<String>, Header, description = "The identifier of the resource; without it, Net API's own."),
        ("X-Netapi-Scope" = Option<String>, Header, description = "Space-separated scopes the credential must all hold."),
    ),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "As `GET /auth/forward`.",
            headers(
                ("X-Netapi-Subject" = String, description = "The user id."),
                ("X-Netapi-Credential" = String, description = "`api_key` or `access_token`."),
                ("X-Netapi-Scopes" = String, description = "The credential's scopes, space-separated."),
                ("X-Netapi-Resource" = String, description = "The resource's identifier."),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        crate::openapi::AuthErrors,
    )
)]
pub async fn forward_with_path(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Response {
    let resource = header_text(request.headers(), "x-netapi-resource");
    let scope = header_text(request.headers(), "x-netapi-scope");
    decide(&state, &ip, request, resource, scope).await
}

async fn decide(
    state: &AppState,
    ip: &str,
    request: Request,
    resource: Option<String>,
    scope: Option<String>,
) -> Response {
    let (parts, _body) = request.into_parts();
    let outcome = state
        .api
        .check_access(
            bearer(&parts),
            ip,
            resource.as_deref(),
            scope.as_deref().unwrap_or_default(),
        )
        .await;
    log_decision(&parts.headers, &outcome);
    let mut response = match outcome {
        Ok(access) => {
            if let (Some(status), Some(slot)) = (access.rate, parts.extensions.get::<RateSlot>()) {
                let _ = slot.0.set(status);
            }
            granted(&access)
        }
        Err(err) => {
            let metadata = state
                .api
                .protected_resource(resource.as_deref())
                .map(|r| metadata_url(&state.api.settings().issuer, &r.identifier));
            let error = ApiError::from(err);
            match metadata {
                Some(url) => error.with_resource_metadata(&url),
                None => error,
            }
            .into_response()
        }
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn granted(access: &Access) -> Response {
    let principal = &access.principal;
    let (kind, id_header, id) = match &principal.credential {
        Credential::ApiKey { key_id } => ("api_key", "x-netapi-key-id", key_id.as_str()),
        Credential::AccessToken { client_id, .. } => {
            ("access_token", "x-netapi-client-id", client_id.as_str())
        }
        // Neither reaches an HTTP bearer check.
        Credential::Operator | Credential::Session => return ApiError::internal().into_response(),
    };
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-netapi-subject", principal.user_id.as_str()),
        ("x-netapi-credential", kind),
        (id_header, id),
        ("x-netapi-scopes", &principal.scopes.to_string()),
        ("x-netapi-resource", &access.resource),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// The original method and path (never the query: it can carry secrets) go to the debug log;
/// the outcome, by method, to metrics. Nothing is written to the audit log on this path, and
/// nothing is allocated when debug logging is off: this runs on every proxied request.
fn log_decision(headers: &HeaderMap, outcome: &Result<Access, Error>) {
    let original = |a: &str, b: &str| headers.get(a).or_else(|| headers.get(b));
    let method = original("x-forwarded-method", "x-original-method");
    let result = match outcome {
        Ok(_) => "allowed",
        Err(Error::Unauthenticated(_)) => "unauthenticated",
        Err(Error::InsufficientScope { .. }) => "insufficient_scope",
        Err(Error::PermissionDenied { .. }) => "unknown_resource",
        Err(Error::RateLimited { .. } | Error::RequestRateLimited(_)) => "rate_limited",
        Err(_) => "error",
    };
    let method_label = match method.map(HeaderValue::as_bytes) {
        Some(b"GET") => "get",
        Some(b"HEAD") => "head",
        Some(b"POST") => "post",
        Some(b"PUT") => "put",
        Some(b"PATCH") => "patch",
        Some(b"DELETE") => "delete",
        Some(b"OPTIONS") => "options",
        Some(_) => "other",
        None => "unknown",
    };
    COUNTERS.with_borrow_mut(|counters| {
        counters
            .entry((result, method_label))
            .or_insert_with(|| {
                metrics::counter!("netapi_forward_auth_total", "outcome" => result, "method" => method_label)
            })
            .increment(1);
    });
    // The fields are evaluated only when the event is enabled.
    tracing::debug!(
        original_method = method
            .map_or("-".into(), |v| String::from_utf8_lossy(v.as_bytes()))
            .as_ref(),
        original_path = original("x-forwarded-uri", "x-original-uri")
            .map_or("-".into(), |v| String::from_utf8_lossy(v.as_bytes()))
            .split(['?', '#'])
            .next()
            .unwrap_or_default(),
        outcome = result,
        "forward auth"
    );
}

thread_local! {
    /// The outcome counters already registered, per worker thread: the registry's lookup
    /// (building and hashing a labelled key) would otherwise run on every request. Bounded
    /// by outcomes × methods.
    static COUNTERS: RefCell<HashMap<(&'static str, &'static str), metrics::Counter>> =
        RefCell::new(HashMap::new());
}

/// `<issuer>/.well-known/oauth-protected-resource?resource=<identifier>`.
pub fn metadata_url(issuer: &str, identifier: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(identifier.as_bytes()).collect();
    format!(
        "{}/.well-known/oauth-protected-resource?resource={encoded}",
        issuer.trim_end_matches('/')
    )
}

/// `GET /.well-known/oauth-protected-resource` (RFC 9728).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-protected-resource",
    tag = "forward-auth",
    operation_id = "protectedResourceMetadata",
    params(crate::openapi::MetadataQuery),
    responses(
        (status = 200, description = "RFC 9728 metadata of the resource.", body = crate::openapi::ProtectedResourceMetadata),
        crate::openapi::NotFoundErrors,
    )
)]
pub async fn metadata(State(state): State<AppState>, request: Request) -> Response {
    let [resource] = query_values(&request, ["resource"]);
    let Some(found) = state.api.protected_resource(resource.as_deref()) else {
        return ApiError::from(Error::NotFound("resource")).into_response();
    };
    Json(serde_json::json!({
        "resource": found.identifier,
        "authorization_servers": [state.api.settings().issuer],
        "scopes_supported": found.scopes_supported,
        "bearer_methods_supported": ["header"],
        "resource_name": found.name,
    }))
    .into_response()
}
