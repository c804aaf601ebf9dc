//! The HTTP face of Net API (axum): routing, extractors, error rendering, middleware.
//! Handlers parse, call one `NetApi` operation, and render.

mod api;
mod dto;
pub mod error;
pub mod extract;
mod forward;
mod health;
pub mod jwks_fetch;
pub mod listener;
pub mod mail;
mod metrics;
pub mod middleware;
pub mod oauth;
mod openapi;
pub mod proxy;
mod scanning;
pub mod shared_limits;
mod state;
pub mod telemetry;
mod web;
pub mod webhooks;

pub use state::AppState;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use netapi_core::NetApi;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::error::{ApiError, Code};

/// HTTP settings.
#[derive(Clone)]
pub struct HttpOptions {
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Most open connections; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Most open connections from one source address (IPv6: per /64), trusted proxies
    /// exempt; past it, new ones are closed. 0: no such cap.
    pub max_connections_per_ip: usize,
    /// Longest a request may take, reading its body included (then 408).
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers, and how long an idle keep-alive
    /// connection is kept: slow-header clients cannot hold connections open.
    pub header_read_timeout: Duration,
    /// Serve TLS with this (and send HSTS).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: proxy::TrustedProxies,
    /// Give every request an OpenTelemetry span ([`telemetry`]); only worth it with that
    /// layer installed.
    pub trace_requests: bool,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("body_limit", &self.body_limit)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("request_timeout", &self.request_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("tls", &self.tls.is_some())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("trace_requests", &self.trace_requests)
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(15),
            tls: None,
            trusted_proxies: proxy::TrustedProxies::default(),
            trace_requests: false,
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "No such endpoint.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "This method is not allowed here.")
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::internal().into_response()
}

/// The whole application: one route table, where each route is registered with its
/// documentation (`routes!` reads the handler's `#[utoipa::path]`), so that `/openapi.json`
/// describes exactly what is served.
pub fn router(state: AppState, options: &HttpOptions) -> Router {
    metrics::handle();
    let document = openapi::Document::default();
    let (schemas, paths, _): UtoipaMethodRouter<AppState> = routes!(openapi::spec);
    let spec = get(openapi::spec).layer(Extension(document.clone()));
    let (app, collected) = OpenApiRouter::with_openapi(openapi::base())
        .merge(api::routes())
        .merge(oauth::routes())
        .merge(web::routes())
        .merge(forward::routes())
        .merge(scanning::routes())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render))
        .routes((schemas, paths, spec))
        .split_for_parts();
    let _ = document.set(openapi::document(collected, &state.api.settings().issuer));
    // One layer made of all the middleware: each `Router::layer` boxes every route once
    // more, and a boxed route is cloned on every request (about 600 instructions a layer).
    // Outermost first.
    let hsts = options.tls.is_some().then(|| {
        SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        )
    });
    let inner = ServiceBuilder::new()
        .option_layer(hsts)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(options.body_limit));
    let app = app
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // Two functions rather than a flag looked at on every request: without tracing, the
    // request path is exactly what it was before tracing existed.
    let app = if options.trace_requests {
        let traced = axum::middleware::from_fn_with_state(
            options.request_timeout,
            middleware::per_request_traced,
        );
        app.layer(ServiceBuilder::new().layer(traced).layer(inner))
    } else {
        let plain =
            axum::middleware::from_fn_with_state(options.request_timeout, middleware::per_request);
        app.layer(ServiceBuilder::new().layer(plain).layer(inner))
    };
    app.with_state(state)
}

/// Background duties: apply other processes' revocations, write batched key usage, and
/// forget what expired in memory. Runs until the task is dropped. (Rows in storage go with
/// [`run_retention`], a task of its own, so that a long sweep never holds these up.)
pub async fn run_background(api: Arc<NetApi>) {
    let mut poll = tokio::time::interval(api.settings().invalidation_poll_interval);
    // PostgreSQL announces each invalidation (LISTEN/NOTIFY): applied at once, the table
    // read as a poll would; polling stays the safety net.
    let announced = Arc::new(tokio::sync::Notify::new());
    let listening = follow_invalidations(api.clone(), announced.clone());
    tokio::pin!(listening);
    let mut usage = tokio::time::interval(Duration::from_secs(30));
    let mut housekeeping = tokio::time::interval(Duration::from_secs(60));
    // The recorder keeps every histogram sample until it is drained, which otherwise happens
    // only on a scrape: unscraped, the server grew by about 20 bytes a request (issue 6).
    let mut metrics_upkeep = tokio::time::interval(Duration::from_secs(5));
    for timer in [
        &mut poll,
        &mut usage,
        &mut housekeeping,
        &mut metrics_upkeep,
    ] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = poll.tick() => {
                if let Err(err) = api.poll_invalidations().await {
                    tracing::warn!(error = %err, "could not poll invalidations");
                }
            }
            () = announced.notified() => {
                if let Err(err) = api.poll_invalidations().await {
                    tracing::warn!(error = %err, "could not read announced invalidations");
                }
            }
            () = &mut listening => {}
            _ = usage.tick() => {
                if let Err(err) = api.flush_usage().await {
                    tracing::warn!(error = %err, "could not record key usage");
                }
            }
            _ = metrics_upkeep.tick() => {
                if let Some(handle) = metrics::handle() {
                    handle.run_upkeep();
                }
            }
            _ = housekeeping.tick() => {
                if let Err(err) = api.housekeeping().await {
                    tracing::warn!(error = %err, "housekeeping failed");
                }
            }
        }
    }
}

/// How often the retention sweep runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// Deletes the stored rows that are over (expired, or older than their retention setting)
/// once a minute, in batches of [`netapi_core::retention::DEFAULT_BATCH`], until the task is
/// dropped. Every instance sweeps: a row is deleted by one of them.
pub async fn run_retention(api: Arc<NetApi>) {
    let mut tick = tokio::time::interval(RETENTION_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        api.sweep_retention(netapi_core::retention::DEFAULT_BATCH)
            .await;
    }
}

/// Listens for invalidations announced by the store (PostgreSQL), waking `announced` at the
/// start, after each reconnection and for each one; listens again a second after a failure.
/// Never ends; pending forever when the store announces nothing (SQLite).
async fn follow_invalidations(api: Arc<NetApi>, announced: Arc<tokio::sync::Notify>) {
    let notice = || announced.notify_one();
    loop {
        match api.store().listen_invalidations(&notice).await {
            Ok(false) => return std::future::pending().await,
            Ok(true) => {}
            Err(err) => {
                metrics::listener_failed();
                tracing::warn!(error = %err, "invalidation listener failed; polling meanwhile");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Longest the server waits at shutdown for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves until `shutdown` resolves, then lets in-flight requests finish and writes the
/// pending key usage.
pub async fn serve(
    listener: TcpListener,
    api: Arc<NetApi>,
    options: HttpOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::Listener as _;
    use tower::ServiceExt as _;

    let background = tokio::spawn(run_background(api.clone()));
    let webhooks = tokio::spawn(webhooks::run_webhook_delivery(api.clone()));
    let retention = tokio::spawn(run_retention(api.clone()));
    let logouts = tokio::spawn(api.clone().run_backchannel_logout(
        Arc::new(webhooks::HttpBackchannelClient),
        Duration::from_secs(1),
    ));
    let state = AppState {
        api: api.clone(),
        trusted_proxies: Arc::new(options.trusted_proxies.clone()),
    };
    let app = router(state, &options);
    let mut listener = listener::NetListener::new(
        listener,
        options.tls.clone(),
        options.max_connections,
        options.max_connections_per_ip,
        options.trusted_proxies.clone(),
    )?;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            (io, peer) = listener.accept() => {
                let service = app.clone().map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    request
                });
                let connection = http.serve_connection(
                    hyper_util::rt::TokioIo::new(io),
                    hyper_util::service::TowerToHyperService::new(service),
                );
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(error = %err, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the shutdown grace period were cut off");
    }
    background.abort();
    webhooks.abort();
    retention.abort();
    logouts.abort();
    if let Err(err) = api.flush_usage().await {
        tracing::warn!(error = %err, "could not record key usage at shutdown");
    }
    Ok(())
}
