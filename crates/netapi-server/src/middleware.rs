//! Request ids, the error envelope, access logs, security and rate-limit headers: one
//! middleware, because every layer of `from_fn` costs a boxed future on every request.

use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use netapi_core::ids::new_id;
use std::sync::OnceLock;
use std::task::Poll;
use std::time::{Duration, Instant};
use tracing::Instrument;

use crate::dto::ErrorEnvelope;
use crate::error::{ApiError, Code, ErrorBody};
use crate::extract::RateSlot;

/// `X-Request-Id`.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request a task is handling, for every log line written while it does: the log
/// formatters put its id, method and path on each line, as `request{…}` (a tracing span did
/// this before, at about 5,400 instructions a request; this costs a few hundred).
#[derive(Debug)]
pub struct RequestContext {
    /// The `X-Request-Id` the client receives.
    pub id: String,
    pub method: Method,
    /// The path only: query strings can carry codes and tokens.
    pub path: String,
}

impl RequestContext {
    fn of(request: &Request) -> Self {
        Self {
            id: new_id("req"),
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
        }
    }
}

tokio::task_local! {
    /// Set while [`per_request`] handles a request; read with `try_with`.
    pub static CURRENT_REQUEST: RequestContext;
}

/// Gives every request an id, logs it, turns error bodies into the contract's envelope
/// carrying that id, and adds the security headers and the caller's rate-limit standing
/// (which the `Auth` extractor leaves in the [`RateSlot`]). A request not answered within
/// `timeout` gets `DEADLINE_EXCEEDED`.
pub async fn per_request(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let context = RequestContext::of(&request);
    CURRENT_REQUEST
        .scope(context, handle(request, next, timeout))
        .await
}

/// [`per_request`] inside the request's OpenTelemetry span (`otlp_endpoint`), which records
/// the status once the response is ready.
pub async fn per_request_traced(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let context = RequestContext::of(&request);
    let span = crate::telemetry::request_span(&request, &context.id);
    let response = CURRENT_REQUEST
        .scope(context, handle(request, next, timeout))
        .instrument(span.clone())
        .await;
    crate::telemetry::record_status(&span, response.status().as_u16());
    response
}

async fn handle(mut request: Request, next: Next, timeout: Duration) -> Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let started = Instant::now();
    let mut response = within(started.checked_add(timeout), next.run(request))
        .await
        .unwrap_or_else(|| {
            ApiError::new(
                Code::DeadlineExceeded,
                "The request was not completed in time.",
            )
            .into_response()
        });
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    CURRENT_REQUEST.with(|context| finish(&mut response, context, &slot, route, started));
    response
}

/// `future`'s output, or `None` if `deadline` passes first. The timer is armed only when the
/// first poll leaves the future pending: most requests (a cached credential) are answered
/// in that poll, and a timer registered and cancelled on each cost about 1,000 instructions.
async fn within<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let first = std::future::poll_fn(|cx| {
        Poll::Ready(match future.as_mut().poll(cx) {
            Poll::Ready(output) => Ok(output),
            Poll::Pending => Err(()),
        })
    })
    .await;
    if let Ok(output) = first {
        return Some(output);
    }
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), future).await.ok(),
        None => Some(future.await),
    }
}

/// Everything [`per_request`] does once the handler has answered.
fn finish(
    response: &mut Response,
    context: &RequestContext,
    slot: &RateSlot,
    route: &str,
    started: Instant,
) {
    if let Some(body) = response.extensions_mut().remove::<ErrorBody>() {
        let envelope =
            serde_json::to_vec(&ErrorEnvelope::new(body, context.id.clone())).unwrap_or_default();
        *response.body_mut() = Body::from(envelope);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&context.id) {
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
    let elapsed = started.elapsed();
    crate::metrics::record_request(route, &context.method, status, elapsed.as_secs_f64());
    match ACCESS_LOG.get() {
        Some(log) => log.handled(context, status, elapsed),
        None => {
            let millis = access_millis(elapsed);
            // Its own target, so that `access_log = false` (or a filter) turns only this
            // line off.
            tracing::info!(target: "netapi::access", status, millis, "handled");
        }
    }
}

/// Writes a handled request's access line (target `netapi::access`, level `info`) instead
/// of the `tracing` event that [`per_request`] emits otherwise: the binary's writes the same
/// line itself, for a third of the event's cost (about 3,700 instructions a request, most of
/// them the dispatch and the fields' `Debug`).
pub trait AccessLog: Send + Sync {
    /// `elapsed`: from the request's arrival at the middleware to its answer.
    fn handled(&self, request: &RequestContext, status: u16, elapsed: Duration);
}

static ACCESS_LOG: OnceLock<Box<dyn AccessLog>> = OnceLock::new();

/// Installs the process's [`AccessLog`]; false if one already was.
pub fn set_access_log(log: Box<dyn AccessLog>) -> bool {
    ACCESS_LOG.set(log).is_ok()
}

/// The `millis` of an access line: whole microseconds, so that the number is short
/// (`0.431`, not `0.43123399999999997`) and an [`AccessLog`] can write it without floats.
pub fn access_millis(elapsed: Duration) -> f64 {
    // Microseconds below 2^53 (285 years) are exact in an f64.
    elapsed.as_micros() as f64 / 1000.0
}
