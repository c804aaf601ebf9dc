//! Request ids, the error envelope, access logs, security and rate-limit headers: one
//! middleware, because every layer of `from_fn` costs a boxed future on every request.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use netapi_core::ids::new_id;
use std::time::Instant;
use tracing::Instrument;

use crate::dto::ErrorEnvelope;
use crate::error::{Code, ErrorBody};
use crate::extract::RateSlot;

/// `X-Request-Id`.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request an id, logs it, turns error bodies into the contract's envelope
/// carrying that id, and adds the security headers and the caller's rate-limit standing
/// (which the `Auth` extractor leaves in the [`RateSlot`]).
pub async fn per_request(request: Request, next: Next) -> Response {
    handle(request, next, new_id("req")).await
}

/// [`per_request`] inside the request's OpenTelemetry span (`otlp_endpoint`), which records
/// the status once the response is ready.
pub async fn per_request_traced(request: Request, next: Next) -> Response {
    let id = new_id("req");
    let span = crate::telemetry::request_span(&request, &id);
    let response = handle(request, next, id).instrument(span.clone()).await;
    crate::telemetry::record_status(&span, response.status().as_u16());
    response
}

async fn handle(mut request: Request, next: Next, id: String) -> Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    // The path only: query strings can carry codes and tokens. Borrowed: the span's fields
    // are recorded when it is made.
    let path = request.uri().path();
    let span =
        tracing::info_span!(target: "netapi::request", "request", request_id = %id, %method, %path);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if response.status() == StatusCode::REQUEST_TIMEOUT
        && response.extensions().get::<ErrorBody>().is_none()
    {
        response.extensions_mut().insert(ErrorBody {
            code: Code::DeadlineExceeded,
            message: "The request was not completed in time.".to_owned(),
            details: Vec::new(),
        });
    }
    if let Some(body) = response.extensions_mut().remove::<ErrorBody>() {
        let envelope =
            serde_json::to_vec(&ErrorEnvelope::new(body, id.clone())).unwrap_or_default();
        *response.body_mut() = Body::from(envelope);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID.clone(), value);
    }
    // No sniffing, no framing, no referrer leaks.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(status) = slot.0.get() {
        crate::error::set_rate_headers(headers, *status);
    }
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    crate::metrics::record_request(route, &method, status, seconds);
    let millis = seconds * 1000.0;
    // Its own target, so that `access_log = false` (or a filter) turns only this line off.
    span.in_scope(|| tracing::info!(target: "netapi::access", status, millis, "handled"));
    response
}
