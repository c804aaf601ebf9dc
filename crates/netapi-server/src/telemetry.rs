//! OpenTelemetry tracing (`otlp_endpoint`): one span per request, and one per request Net API
//! sends on its own (webhook deliveries, logout tokens), exported over OTLP/HTTP (protobuf)
//! in batches by the SDK's own thread, so that neither a slow nor an absent collector ever
//! holds a request up. Nothing here runs while the setting is unset: the router then uses the
//! plain middleware, no layer is installed, and outgoing requests carry no `traceparent`.
//!
//! What a span carries is chosen here, not inherited from the logs: the method, the route
//! template (never the path, which holds ids), the status, the kind of credential presented
//! (never the credential), the request id; for an outgoing request the receiver's host and
//! port (never its URL's path or query, which may hold a token). Headers are never recorded.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, header};
use netapi_core::model::WebhookDelivery;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanExporter,
    SpanProcessor,
};
use std::path::Path;
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

/// Why the exporter could not be set up, naming the setting at fault.
#[derive(Debug)]
pub struct TelemetryError(String);

impl TelemetryError {
    fn endpoint(why: impl std::fmt::Display) -> Self {
        Self(format!("otlp_endpoint: {why}"))
    }

    fn ca_file(why: impl std::fmt::Display) -> Self {
        Self(format!("otlp_ca_file: {why}"))
    }
}

impl std::fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
    /// to which `/v1/traces` is added) or the full URL of the traces endpoint. An `https://`
    /// collector's certificate is checked against the certificate authorities in `ca_file`
    /// (PEM) alone when one is given, else against the public (webpki) roots. No connection
    /// is made here; the batch thread sends the first batch after the schedule delay
    /// (`OTEL_BSP_SCHEDULE_DELAY`, 5 seconds by default).
    pub fn start(endpoint: &str, ca_file: Option<&Path>) -> Result<Self, TelemetryError> {
        let endpoint = traces_url(endpoint)?;
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(&endpoint);
        if let Some(ca_file) = ca_file {
            if !endpoint.starts_with("https://") {
                return Err(TelemetryError::ca_file(
                    "is for an https:// otlp_endpoint; this one is plain http://",
                ));
            }
            builder = builder.with_http_client(client_trusting(ca_file)?);
        }
        let exporter = builder
            .build()
            .map_err(|e| TelemetryError::endpoint(e.to_string()))?;
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

/// The exporter's HTTP client for a collector whose certificate is issued by a private
/// certificate authority: only the certificates in `ca_file` are trusted, and a batch is
/// given up after the export timeout, as the SDK's own client does.
fn client_trusting(ca_file: &Path) -> Result<reqwest::blocking::Client, TelemetryError> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(ca_file)
        .map_err(|e| TelemetryError::ca_file(format!("cannot read {}: {e}", ca_file.display())))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TelemetryError::ca_file(format!("not a PEM certificate file: {e}")))?;
    if certificates.is_empty() {
        return Err(TelemetryError::ca_file("holds no PEM certificate"));
    }
    // No redirect and nothing but https: a collector pinned to a private CA cannot send the
    // spans elsewhere, nor in the clear.
    let mut builder = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(export_timeout());
    for certificate in &certificates {
        let certificate = reqwest::Certificate::from_der(certificate)
            .map_err(|e| TelemetryError::ca_file(format!("a certificate is not valid: {e}")))?;
        builder = builder.add_root_certificate(certificate);
    }
    // A blocking client runs a runtime of its own, which must not be built on one of the
    // server's runtime threads: built on a thread of its own, as the SDK builds its default
    // client.
    std::thread::spawn(move || builder.build())
        .join()
        .map_err(|_| TelemetryError::ca_file("the HTTP client could not be built"))?
        .map_err(|e| TelemetryError::ca_file(format!("the certificates were refused: {e}")))
}

/// How long the exporter waits for the collector to take a batch: what the SDK gives its own
/// client, from the same variables (milliseconds), 10 seconds by default.
fn export_timeout() -> Duration {
    [
        opentelemetry_otlp::OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
        opentelemetry_otlp::OTEL_EXPORTER_OTLP_TIMEOUT,
    ]
    .into_iter()
    .find_map(|name| std::env::var(name).ok()?.trim().parse::<u64>().ok())
    .map_or(
        opentelemetry_otlp::OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT,
        Duration::from_millis,
    )
}

/// `endpoint` as the URL spans are posted to; http or https only.
fn traces_url(endpoint: &str) -> Result<String, TelemetryError> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| TelemetryError::endpoint(format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(TelemetryError::endpoint(
            "must be an http:// or https:// URL of an OTLP/HTTP collector",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(TelemetryError::endpoint("must have no query or fragment"));
    }
    // The URL is never repeated in these errors: it may hold a password. Credentials go in
    // OTEL_EXPORTER_OTLP_HEADERS, which is never shown.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TelemetryError::endpoint(
            "the URL must not carry credentials: set OTEL_EXPORTER_OTLP_HEADERS (e.g. \
             authorization=Bearer ...) instead",
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

/// The span of a request that Net API sends on its own (`purpose`): a webhook delivery or a
/// logout token, sent by background tasks long after the request that caused them (so each
/// starts a trace of its own), or the fetch of a client's `jwks_uri`, a child of the
/// request that needs the keys. Of kind `client`, named by its `method`. Only the
/// receiver's host and port are recorded: its URL's path and query may hold a token. Its
/// outcome is recorded by [`record_outgoing`].
pub(crate) fn outgoing_span(
    method: &'static str,
    purpose: &'static str,
    url: &url::Url,
) -> tracing::Span {
    tracing::info_span!(
        target: TARGET,
        "outgoing",
        otel.name = method,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        server.address = server_address(url).as_str(),
        server.port = url.port_or_known_default().map(i64::from),
        http.response.status_code = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        netapi.outgoing = purpose,
        netapi.webhook.id = tracing::field::Empty,
        netapi.webhook.delivery_id = tracing::field::Empty,
        netapi.webhook.event_id = tracing::field::Empty,
        netapi.webhook.event_type = tracing::field::Empty,
        netapi.webhook.attempt = tracing::field::Empty,
    )
}

/// Names a webhook delivery's attempt on its span: the ids that `GET
/// /v1/webhooks/{id}/deliveries` lists (none of them a secret), the event type, and which
/// attempt this is (1 for the first).
pub(crate) fn describe_delivery(span: &tracing::Span, delivery: &WebhookDelivery) {
    span.record("netapi.webhook.id", delivery.webhook_id.as_str());
    span.record("netapi.webhook.delivery_id", delivery.id.as_str());
    span.record("netapi.webhook.event_id", delivery.event_id.as_str());
    span.record("netapi.webhook.event_type", delivery.event_type.as_str());
    span.record(
        "netapi.webhook.attempt",
        i64::from(delivery.attempts.saturating_add(1)),
    );
}

/// The `server.address` of `url`: its host, an IPv6 address without its brackets.
fn server_address(url: &url::Url) -> String {
    match url.host() {
        Some(url::Host::Ipv6(address)) => address.to_string(),
        Some(host) => host.to_string(),
        None => String::new(),
    }
}

/// The W3C `traceparent` that names `span` to the receiver, so that its own spans join the
/// trace (its flags say whether the trace is sampled); none while tracing is off (the span
/// is then disabled). `tracestate` is not sent: for a key set fetched during a token
/// request it would be the caller's, handed to a third party.
pub(crate) fn trace_headers(span: &tracing::Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    // An empty context (no layer, so no span) injects nothing.
    TraceContextPropagator::new()
        .inject_context(&span.context(), &mut OutgoingHeaders(&mut headers));
    headers
}

/// Records how an outgoing request ended: its status, or why there was none (`error.type`:
/// `timeout`, `connect` or `request`). A client span counts 4xx as an error too: the
/// receiver did not take it.
pub(crate) fn record_outgoing(span: &tracing::Span, outcome: Result<u16, OutgoingFailure>) {
    match outcome {
        Ok(status) => {
            span.record("http.response.status_code", i64::from(status));
            if status >= 400 {
                record_failure(span, &status.to_string());
            }
        }
        Err(failure) => record_failure(span, failure.kind()),
    }
}

/// Marks an outgoing request's span as failed, `kind` saying why (its `error.type`): the
/// status, or what went wrong, also after an answer (`body`, `too_large`).
pub(crate) fn record_failure(span: &tracing::Span, kind: &str) {
    span.record("error.type", kind);
    span.record("otel.status_code", "error");
}

/// Why an outgoing request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutgoingFailure {
    Timeout,
    Connect,
    Request,
}

impl OutgoingFailure {
    /// What kind of failure `err` is.
    pub(crate) fn of(err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else if err.is_connect() {
            Self::Connect
        } else {
            Self::Request
        }
    }

    /// Its `error.type`.
    fn kind(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Request => "request",
        }
    }

    /// What a delivery's record says of it.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Timeout => "timed out",
            Self::Connect => "could not connect",
            Self::Request => "the request failed",
        }
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

/// Outgoing request headers as the propagator writes them.
struct OutgoingHeaders<'a>(&'a mut HeaderMap);

impl Injector for OutgoingHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        if key != "traceparent" {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(key.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
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

    /// Runs `f` under a subscriber with an OpenTelemetry layer (spans exported nowhere).
    fn traced<T>(f: impl FnOnce() -> T) -> T {
        use tracing_subscriber::layer::SubscriberExt;
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn an_outgoing_request_carries_its_spans_traceparent_and_nothing_else() {
        use opentelemetry::trace::TraceContextExt as _;
        let url = url::Url::parse("https://hooks.example.com/path?token=secret").unwrap();
        let (headers, trace_id) = traced(|| {
            let span = outgoing_span("POST", "webhook", &url);
            (
                trace_headers(&span),
                span.context().span().span_context().trace_id(),
            )
        });
        let traceparent = headers["traceparent"].to_str().unwrap();
        assert!(
            traceparent.starts_with(&format!("00-{trace_id}-")),
            "{traceparent}"
        );
        assert_eq!(headers.len(), 1, "{headers:?}");

        // A request in a caller's trace (a key set fetched during a token request): the
        // trace goes on, the caller's `tracestate` is not handed on.
        let mut incoming = HeaderMap::new();
        incoming.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        incoming.insert(
            "tracestate",
            HeaderValue::from_static("vendor=caller-chosen"),
        );
        let headers = traced(|| {
            let parent = tracing::info_span!(target: TARGET, "request");
            let _ = parent.set_parent(TraceContextPropagator::new().extract(&Headers(&incoming)));
            let _entered = parent.enter();
            trace_headers(&outgoing_span("GET", "jwks", &url))
        });
        let traceparent = headers["traceparent"].to_str().unwrap();
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{traceparent}"
        );
        assert!(
            !traceparent.contains("00f067aa0ba902b7"),
            "a span of its own"
        );
        assert!(!headers.contains_key("tracestate"), "{headers:?}");

        // Without the layer (tracing off): no header.
        let span = outgoing_span("POST", "webhook", &url);
        assert!(trace_headers(&span).is_empty());
    }

    #[test]
    fn the_server_address_is_the_bare_host() {
        for (url, address) in [
            ("https://hooks.example.com:8443/a?b=c", "hooks.example.com"),
            ("http://127.0.0.1:9000/", "127.0.0.1"),
            ("http://[::1]:9000/", "::1"),
        ] {
            assert_eq!(server_address(&url::Url::parse(url).unwrap()), address);
        }
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
