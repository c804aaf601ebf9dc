//! One-time messages carried across redirect-after-POST: a portal form's handler acts, leaves
//! its outcome here keyed by the session (and the page it belongs to), and answers `303`; the
//! page's `GET` takes the message out, so it is shown once and a refresh repeats nothing. A
//! new secret is shown this way, never put in a URL.
//!
//! Kept in this process's memory, bounded in count and time: behind a load balancer the
//! `GET` must reach the instance that handled the `POST` (sticky sessions), else the
//! message is not shown.

use moka::sync::Cache;
use netapi_core::model::Session;
use std::time::Duration;

use super::portal::Flash;

/// Messages waiting for their page.
pub struct Flashes {
    waiting: Cache<([u8; 32], &'static str), Flash>,
}

impl std::fmt::Debug for Flashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flashes")
            .field("waiting", &self.waiting.entry_count())
            .finish()
    }
}

impl Default for Flashes {
    fn default() -> Self {
        Self {
            waiting: Cache::builder()
                .max_capacity(10_000)
                // Long enough for the redirect, short enough that a secret does not linger.
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }
}

impl Flashes {
    /// Leaves `flash` for the next view of `page` in `session` (replacing one not yet shown).
    pub(super) fn put(&self, session: &Session, page: &'static str, flash: Flash) {
        self.waiting.insert((session.hash.0, page), flash);
    }

    /// The message waiting for `page` in `session`, removed: a second view gets none.
    pub(super) fn take(&self, session: &Session, page: &'static str) -> Option<Flash> {
        self.waiting.remove(&(session.hash.0, page))
    }
}
