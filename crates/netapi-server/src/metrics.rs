//! Prometheus metrics: requests by route and status, latencies, and what the core counts
//! (authentication outcomes, tokens issued, cache hits), plus database pool use.

use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use netapi_core::FastHash;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use crate::state::AppState;

/// The process-wide recorder, installed on first use (the `metrics` facade is global).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .ok()?
                .install_recorder()
                .map_err(|err| tracing::warn!(error = %err, "metrics recorder not installed"))
                .ok()
        })
        .as_ref()
}

/// The method as a label: the standard ones by name, anything else as `OTHER`, so that
/// invented methods cannot grow the metrics without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The counter and histogram of one route, by method and status.
type RouteMetrics = HashMap<(&'static str, u16), (Counter, Histogram), FastHash>;

thread_local! {
    /// Handles already registered, per worker thread: the registry's lookup (building and
    /// hashing a labelled key) would otherwise run on every request. Bounded by routes ×
    /// methods × statuses.
    static HANDLES: RefCell<HashMap<String, RouteMetrics, FastHash>> =
        RefCell::new(HashMap::default());
}

/// Records one handled request. `route` is the matched route pattern (or `unmatched`).
pub fn record_request(route: &str, method: &Method, status: u16, seconds: f64) {
    let method = method_label(method);
    HANDLES.with_borrow_mut(|handles| {
        if !handles.contains_key(route) {
            handles.insert(route.to_owned(), HashMap::default());
        }
        let Some(by_status) = handles.get_mut(route) else {
            return;
        };
        let (requests, duration) = by_status.entry((method, status)).or_insert_with(|| {
            (
                metrics::counter!(
                    "netapi_http_requests_total",
                    "route" => route.to_owned(),
                    "method" => method,
                    "status" => status.to_string()
                ),
                metrics::histogram!(
                    "netapi_http_request_duration_seconds",
                    "route" => route.to_owned(),
                    "method" => method
                ),
            )
        });
        requests.increment(1);
        duration.record(seconds);
    });
}

/// `GET /metrics`
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"))
)]
pub async fn render(State(state): State<AppState>) -> Response {
    let (size, idle) = state.api.store().pool_usage();
    metrics::gauge!("netapi_db_pool_connections", "state" => "open").set(f64::from(size));
    metrics::gauge!("netapi_db_pool_connections", "state" => "idle").set(f64::from(idle));
    let text = handle().map(PrometheusHandle::render).unwrap_or_default();
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Counts a failure of the PostgreSQL invalidation listener (it listens again a second later;
/// polling covers the gap).
pub fn listener_failed() {
    metrics::counter!("netapi_invalidation_listener_failures_total").increment(1);
}

/// Counts spans that never reached the OTLP collector: `export_failed` (it did not take
/// them) or `queue_full` (too many were waiting for it).
pub fn spans_dropped(reason: &'static str, count: usize) {
    metrics::counter!("netapi_otlp_spans_dropped_total", "reason" => reason)
        .increment(u64::try_from(count).unwrap_or(u64::MAX));
}

/// Counts a limiter call that Redis did not answer (in time): counted in the process instead.
pub fn shared_limit_fallback() {
    metrics::counter!("netapi_shared_limit_fallbacks_total").increment(1);
}
