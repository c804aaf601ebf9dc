//! Check Net API credentials inside a Rust API, without a proxy.
//!
//! A [`Guard`] is made for one **resource** (the identifier an administrator gave your API in
//! Net API) and one **issuer** (the Net API server). At start it reads the issuer's metadata
//! and signing keys; then, for each request:
//!
//! - an **access token** (RFC 9068 JWT) is checked offline: the signature by the key its
//!   `kid` names, with that key's own algorithm (EdDSA, ES256 or RS256), `typ: at+jwt`, `iss`,
//!   `aud` = the resource, `exp` and `nbf` with at most 5 s of leeway. A token signed by a
//!   key the guard has not seen makes it fetch the JWKS again (at most once per
//!   [`jwks_refetch_interval`](GuardConfig::jwks_refetch_interval)), so a signing-key
//!   rotation needs no restart;
//! - an **API key** (`napi_...`) is checked with the issuer, by introspection
//!   ([`GuardConfig::introspection`]) or `POST /v1/keys/verify`
//!   ([`GuardConfig::verify_endpoint`]), and the answer, positive or negative, is reused for
//!   [`cache_ttl`](GuardConfig::cache_ttl) (10 s by default).
//!
//! **Revocation.** A revoked API key is refused at most `cache_ttl` after its revocation
//! (at once with a zero TTL). An access token checked offline stays good until it expires
//! (Net API's default lifetime is 15 minutes; a resource can set its own); where that is too
//! long, [`introspect_tokens`](GuardConfig::introspect_tokens) asks the issuer about every
//! token too, bounded by the same cache TTL.
//!
//! **DPoP** (RFC 9449). A DPoP-bound access token (one with `cnf.jkt`) is refused as a
//! bearer token and accepted as `Authorization: DPoP <token>` with a `DPoP` proof of its key
//! made for this request (`htm`, `htu`, `iat` within 60 s, `ath`), each proof once per
//! process, or once across every instance with a shared
//! [`dpop_replay_store`](GuardConfig::dpop_replay_store). [`GuardLayer`] passes the
//! request's method and URL (the resource's origin, or [`GuardConfig::public_origin`], and
//! the path); outside it, use
//! [`Guard::authenticate_request`]. The guard does not hand out server nonces.
//!
//! Refusals are Net API's: `401 UNAUTHENTICATED` or `403 PERMISSION_DENIED` with its JSON
//! error envelope and an RFC 6750 `WWW-Authenticate` challenge pointing at the resource's
//! RFC 9728 metadata.
//!
//! # Example
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use netapi_guard::{Guard, GuardConfig, GuardLayer, Principal, RequireScope, scope};
//! use std::time::Duration;
//!
//! scope!(OrdersRead = "orders:read");
//!
//! async fn orders(RequireScope(caller, _): RequireScope<OrdersRead>) -> Json<Vec<String>> {
//!     Json(vec![format!("orders of {}", caller.subject)])
//! }
//!
//! async fn me(caller: Principal) -> String {
//!     format!("{} with {:?}", caller.subject, caller.scopes)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = GuardConfig::new("https://auth.example.com", "https://orders.example.com")
//!     .introspection("cli_...", std::env::var("ORDERS_CLIENT_SECRET")?)
//!     .cache_ttl(Duration::from_secs(5));
//! let guard = Guard::discover(config).await?;
//! let app = Router::new()
//!     .route("/orders", get(orders))
//!     .route("/me", get(me))
//!     .layer(GuardLayer::new(guard));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Outside axum, [`Guard::authenticate`] decides on a request's headers, and
//! [`GuardLayer`] wraps any tower service of `axum::extract::Request`.

mod clock;
mod config;
mod dpop;
mod guard;
mod jwks;
mod layer;
mod principal;
mod rejection;
mod remote;
mod replay;
mod token;

pub use clock::{Clock, SystemClock};
pub use config::{GuardConfig, MAX_LEEWAY};
pub use guard::{Guard, SetupError};
pub use layer::{GuardLayer, GuardService};
pub use principal::{CredentialKind, Principal, RequireScope, Scope, is_scope_name};
pub use rejection::{Rejection, RejectionKind};
pub use replay::{DpopReplayStore, InsertNew, ReplayStoreError};

/// The README's and the guide's examples, compiled as doctests so that they cannot drift
/// (the guide's `sh no-run` blocks are for the docs test, not rustdoc).
#[cfg(doctest)]
#[allow(rustdoc::invalid_codeblock_attributes)]
#[doc = include_str!("../README.md")]
#[doc = include_str!("../../../docs/guard.md")]
struct DocumentationExamples;
