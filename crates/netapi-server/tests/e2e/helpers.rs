//! The shared test support (`netapi-testkit`), under the name the e2e files import it by:
//! `crate::helpers::{TestApp, Browser, json_with, ...}`.

pub use netapi_testkit::*;

/// Behind a trusted proxy at 127.0.0.1 (so `X-Forwarded-For` names the source), with the
/// settings changed by `adjust`.
pub async fn behind_a_proxy(
    backend: Backend,
    adjust: impl FnOnce(&mut netapi_core::Settings),
) -> Option<TestApp> {
    let http = netapi_server::HttpOptions {
        trusted_proxies: netapi_server::proxy::TrustedProxies::parse("127.0.0.1").unwrap(),
        ..netapi_server::HttpOptions::default()
    };
    TestApp::spawn_with_http(backend, adjust, http).await
}
