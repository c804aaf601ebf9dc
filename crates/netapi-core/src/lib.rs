//! The domain of Net API: users, credentials, OAuth grants, tokens and their policies.
//! Knows nothing of HTTP or SQL: the server crate speaks HTTP, the store crate speaks SQL.

pub mod clock;
pub mod counters;
pub mod dpop;
pub mod error;
pub mod ids;
pub mod jwt;
pub mod limiter;
pub mod model;
pub mod password;
pub mod retention;
pub mod scanning;
pub mod scope;
pub mod sealing;
pub mod secret;
pub mod service;
pub mod store;
pub mod totp;
pub mod usage;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};

/// The hasher of maps whose keys no caller chooses (digests, ids Net API made, route
/// names): SipHash's resistance to chosen keys is not needed there and cost about 250
/// instructions a lookup, several times on every request. Seeded per process all the same.
pub type FastHash = foldhash::fast::RandomState;
pub use error::{AuthFailure, Error, Result, StoreError};
pub use scope::{Role, Scope, Scopes};
pub use service::{NetApi, Settings};
pub use store::Store;
