//! What every handler can reach.

use netapi_core::NetApi;
use std::sync::Arc;

use crate::proxy;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service.
    pub api: Arc<NetApi>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<proxy::TrustedProxies>,
}
