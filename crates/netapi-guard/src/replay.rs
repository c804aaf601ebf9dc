//! A replay store that several instances of an API share, so that a DPoP proof used at one
//! instance is refused at every other (RFC 9449 §11.1). Without one, each process remembers
//! only the proofs it accepted itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What [`DpopReplayStore::insert_new`] returns.
pub type InsertNew<'a> = Pin<Box<dyn Future<Output = Result<bool, ReplayStoreError>> + Send + 'a>>;

/// Remembers the DPoP proofs a guard accepted, shared by every instance of the API: Redis
/// (`SET key 1 NX EX ttl`), memcached (`add`), a database table with a unique key.
///
/// The guard asks it after a proof has passed every other check, with a key that names the
/// proof (base64url of a SHA-256 of its key's thumbprint and its `jti`; never the proof or
/// the token). When the store answers an error, or not within
/// [`GuardConfig::dpop_replay_timeout`](crate::GuardConfig::dpop_replay_timeout), the guard
/// accepts the proof on its own memory alone and logs a warning at most every ten seconds:
/// the store being down never refuses a legitimate request.
pub trait DpopReplayStore: Send + Sync + fmt::Debug {
    /// Stores `key` for `ttl` unless it is there already: `Ok(true)` when it was new,
    /// `Ok(false)` when it was there (the proof is a replay and is refused).
    fn insert_new<'a>(&'a self, key: &'a str, ttl: Duration) -> InsertNew<'a>;
}

/// Why a [`DpopReplayStore`] could not answer (its message is logged).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplayStoreError(pub String);
