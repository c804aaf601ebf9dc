//! OpenTelemetry tracing (`otlp_endpoint`): one span per request, exported over OTLP/HTTP
//! (protobuf) in batches by the SDK's own thread, so that neither a slow nor an absent
//! collector ever holds a request up. Nothing here runs while the setting is unset: the
//! router then uses the plain middleware and no layer is installed.
//!
//! What a span carries is chosen here, not inherited from the logs: the method, the route
//! template (never the path, which holds ids), the status, the kind of credential presented
//! (never the credential), the request id. Query strings and headers are never recorded.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, header};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanExporter,
    SpanProcessor,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The target of the request spans: the only spans, and no events, that are exported.
pub const TARGET: &str = "netapi::http";

/// Spans finished and not yet exported (or given up on), at most. Past it a span is dropped
/// and counted rather than queued: memory stays bounded while the collector is away.
const QUEUE: usize = 2048;

/// Why the exporter could not be set up.
#[derive(Debug)]
pub struct TelemetryError(String);

impl std::fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "otlp_endpoint: {}", self.0)
    }
}

impl std::error::Error for TelemetryError {}

/// The tracer provider; keep it until the process ends and call [`Telemetry::shutdown`]
/// then, so that the last spans are sent.
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// The pipeline to the collector at `endpoint`: a base URL (`http://collector:4318`,
    /// to which `/v1/traces` is added) or the full URL of the traces endpoint. No connection
    /// is made here; the batch thread sends the first batch after the schedule delay
    /// (`OTEL_BSP_SCHEDULE_DELAY`, 5 seconds by default).
    pub fn start(endpoint: &str) -> Result<Self, TelemetryError> {
        let endpoint = traces_url(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        let pending = Arc::new(Pending::default());
        let exporter = Counted {
            inner: exporter,
            pending: pending.clone(),
        };
        let batches = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(QUEUE)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded {
                inner: batches,
                pending,
            })
            .with_resource(resource())
            .build();
        Ok(Self { provider })
    }

    /// The layer that turns request spans into OpenTelemetry spans; it sees nothing else
    /// (no other span, no event), so no log field can reach the collector.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("netapi"))
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(Targets::new().with_target(TARGET, tracing::Level::INFO))
    }

    /// Sends what is queued (for up to five seconds) and stops the batch thread. Blocking:
    /// call it outside the runtime's worker threads (`spawn_blocking`).
    pub fn shutdown(&self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::warn!(error = %err, "could not send the last spans");
        }
    }
}

/// `endpoint` as the URL spans are posted to; http or https only.
fn traces_url(endpoint: &str) -> Result<String, TelemetryError> {
    let url = url::Url::parse(endpoint).map_err(|e| TelemetryError(format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(TelemetryError(
            "must be an http:// or https:// URL of an OTLP/HTTP collector".to_owned(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(TelemetryError("must have no query or fragment".to_owned()));
    }
    // The URL is never repeated in these errors: it may hold a password. Credentials go in
    // OTEL_EXPORTER_OTLP_HEADERS, which is never shown.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TelemetryError(
            "the URL must not carry credentials: set OTEL_EXPORTER_OTLP_HEADERS (e.g. \
             authorization=Bearer ...) instead"
                .to_owned(),
        ));
    }
    let text = url.as_str().trim_end_matches('/');
    Ok(if text.ends_with("/v1/traces") {
        text.to_owned()
    } else {
        format!("{text}/v1/traces")
    })
}

/// `service.name` is `netapi` unless `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`)
/// names it; `service.version` is this build's.
fn resource() -> Resource {
    let service = Key::from_static_str("service.name");
    let detected = Resource::builder().build();
    let named = detected
        .get(&service)
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if named {
        builder.build()
    } else {
        builder.with_service_name("netapi").build()
    }
}

/// Spans handed to the batch processor and not yet through the exporter, and whether the
/// last export failed (so that a collector that stays away is warned about once, not every
/// batch).
#[derive(Debug, Default)]
struct Pending {
    spans: AtomicUsize,
    failing: AtomicBool,
}

impl Pending {
    /// Counts one more span in, unless [`QUEUE`] already are.
    fn admit(&self) -> bool {
        self.spans
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < QUEUE).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts `count` spans out, exported or not.
    fn release(&self, count: usize) {
        let _ = self
            .spans
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(count))
            });
    }
}

/// The SDK's batch processor, with every span it would drop counted: a span finished while
/// [`QUEUE`] are pending is dropped here, before the SDK's own queue (of the same size, and
/// silent when full) could refuse it.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    pending: Arc<Pending>,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.pending.admit() {
            self.inner.on_end(span);
        } else {
            crate::metrics::spans_dropped("queue_full", 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting what it could not deliver.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    pending: Arc<Pending>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len();
        let result = self.inner.export(batch).await;
        self.pending.release(count);
        match &result {
            Ok(()) => {
                if self.pending.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("spans reach the OTLP collector again");
                }
            }
            Err(err) => {
                crate::metrics::spans_dropped("export_failed", count);
                if !self.pending.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        error = %err,
                        "cannot send spans to the OTLP collector: they are dropped (counted in \
                         netapi_otlp_spans_dropped_total) until it answers again"
                    );
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The request's span, a child of the trace named by its `traceparent` when it has a valid
/// one. Its status is recorded by [`record_status`] when the response is ready.
pub(crate) fn request_span(request: &Request, request_id: &str) -> tracing::Span {
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    // The span name of the HTTP semantic conventions: `{method} {route}`, or the method
    // alone when no route matched.
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = name.as_str(),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        netapi.credential_kind = credential_kind(request.headers()),
        netapi.request_id = request_id,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
    // A request without a (valid) traceparent starts a trace of its own.
    let _ = span.set_parent(parent);
    span
}

/// Records the response's status on the request's span; 5xx marks it as an error (server
/// spans do not count 4xx as errors).
pub(crate) fn record_status(span: &tracing::Span, status: u16) {
    // As an i64: the layer records unsigned numbers as text.
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// The kind of credential the request presents, named, never shown: `api_key`,
/// `access_token` (`Authorization: Bearer` with anything but an API key), `dpop`
/// (`Authorization: DPoP`), `basic` (client authentication at the OAuth endpoints),
/// `other` (another scheme), `session` (the portal's cookie, without an `Authorization`
/// header), or `none`. Whether it was valid is the status's to say.
pub(crate) fn credential_kind(headers: &HeaderMap) -> &'static str {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default().trim();
        let (scheme, credential) = value.split_once(' ').unwrap_or(("", value));
        let api_key = |credential: &str| {
            credential
                .trim()
                .starts_with(netapi_core::secret::SecretKind::ApiKey.prefix())
        };
        return if scheme.eq_ignore_ascii_case("bearer") {
            if api_key(credential) {
                "api_key"
            } else {
                "access_token"
            }
        } else if scheme.eq_ignore_ascii_case("dpop") {
            "dpop"
        } else if scheme.eq_ignore_ascii_case("basic") {
            "basic"
        } else if scheme.is_empty() && api_key(credential) {
            // A key sent without its scheme (refused, with a hint).
            "api_key"
        } else {
            "other"
        };
    }
    if crate::web::has_session_cookie(headers) {
        "session"
    } else {
        "none"
    }
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn kind_of(authorization: Option<&str>, cookie: Option<&str>) -> &'static str {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        if let Some(value) = cookie {
            headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        }
        credential_kind(&headers)
    }

    #[test]
    fn credentials_are_named_by_kind() {
        let key = "napi_0123456789abcdefghijklmnopqrstuvwxyzAB";
        assert_eq!(kind_of(Some(&format!("Bearer {key}")), None), "api_key");
        assert_eq!(kind_of(Some(&format!("bearer  {key}")), None), "api_key");
        assert_eq!(kind_of(Some(key), None), "api_key");
        assert_eq!(kind_of(Some("Bearer eyJhbGciOi.x.y"), None), "access_token");
        assert_eq!(kind_of(Some("DPoP eyJhbGciOi.x.y"), None), "dpop");
        assert_eq!(kind_of(Some("Basic Y2xpOnNlY3JldA=="), None), "basic");
        assert_eq!(kind_of(Some("Negotiate abc"), None), "other");
        assert_eq!(kind_of(Some("eyJhbGciOi.x.y"), None), "other");
        assert_eq!(
            kind_of(None, Some("a=b; netapi_session=napss_x; c=d")),
            "session"
        );
        // The header wins over the cookie: it is what `/v1` authenticates.
        assert_eq!(
            kind_of(Some("Bearer eyJ.x.y"), Some("netapi_session=napss_x")),
            "access_token"
        );
        assert_eq!(kind_of(None, Some("netapi_sessionx=1")), "none");
        assert_eq!(kind_of(None, None), "none");
    }

    #[test]
    fn at_most_a_queue_of_spans_is_pending() {
        let pending = Pending::default();
        for _ in 0..QUEUE {
            assert!(pending.admit());
        }
        assert!(!pending.admit(), "one span past the queue is dropped");
        pending.release(2);
        assert!(pending.admit());
        assert!(pending.admit());
        assert!(!pending.admit());
        pending.release(QUEUE + 5);
        assert!(pending.admit(), "never below zero");
        assert_eq!(pending.spans.load(Ordering::Acquire), 1);
    }

    #[test]
    fn the_endpoint_is_a_base_or_the_traces_url() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example.com/otlp/").unwrap(),
            "https://otel.example.com/otlp/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces").unwrap(),
            "http://collector:4318/v1/traces"
        );
        for wrong in [
            "collector:4318",
            "ftp://collector",
            "http://collector:4318/?x=1",
            "http://user:pass@collector:4318",
            "",
        ] {
            assert!(traces_url(wrong).is_err(), "{wrong}");
        }
    }
}
