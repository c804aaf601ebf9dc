//! Counting failed authentications and requests per subject (a source address, an account or
//! client from a source, a credential) in fixed windows, on the injected clock.
//!
//! Memory is bounded whatever the input: a subject is kept as 16 bytes of a keyed SHA-256 of
//! what it names (never the attacker's string), each limiter holds at most a fixed number of
//! subjects, and finished windows are swept by the server's housekeeping timer.
//!
//! With [`SharedCounters`] (Redis, when `redis_url` is set) the counts live there and are
//! exact across instances: one round trip per counted request, none for a request that no
//! limit concerns. When the shared counters fail, the per-process counts take over.

use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::clock::Timestamp;

/// The window of failure and request counts, seconds.
const WINDOW: i64 = 60;
/// Most subjects one limiter tracks: about 40 bytes each, some 10 MB in all.
pub const MAX_SUBJECTS: usize = 250_000;

/// Which check an attempt belongs to. Each has buckets of its own, so that failures at one
/// (say, invented API keys on `/v1`) never refuse another (a password sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `Authorization: Bearer` on `/v1`.
    Bearer,
    /// Email and password sign-in.
    Password,
    /// Client authentication at the token, revocation and introspection endpoints.
    Client,
    /// Emailed links (password reset, email verification) presented back.
    EmailLink,
    /// Initial access and registration access tokens at `/oauth/register`.
    Registration,
    /// User codes of the device authorization grant typed at `/device`.
    UserCode,
}

impl Surface {
    fn tag(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Password => "password",
            Self::Client => "client",
            Self::EmailLink => "email-link",
            Self::Registration => "registration",
            Self::UserCode => "user-code",
        }
    }
}

/// A subject as the limiters keep it: a fixed-size keyed hash of what it names.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubjectKey([u8; 16]);

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

/// Makes [`SubjectKey`]s with a salt drawn at start: nobody outside the process can compute
/// which subjects share a bucket of the map.
struct SubjectHasher {
    salt: [u8; 32],
}

impl SubjectHasher {
    fn new() -> Self {
        let mut salt = [0u8; 32];
        OsRng.fill_bytes(&mut salt);
        Self { salt }
    }

    /// A hasher with a salt every instance shares, so that their subjects meet.
    fn shared(salt: [u8; 32]) -> Self {
        Self { salt }
    }

    /// Hashes the parts, each length-prefixed so that no two lists of parts collide.
    fn key(&self, parts: &[&str]) -> SubjectKey {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        SubjectKey(key)
    }
}

/// Counters shared by every instance (Redis, implemented by the server), in fixed windows
/// that begin at a counter's first count. The limiters ask them in one round trip per call.
#[async_trait::async_trait]
pub trait SharedCounters: Send + Sync + std::fmt::Debug {
    /// Adds `by` (0: only reads) to each of the counters named `keys`, at once and in one
    /// round trip, a window of `window_ms` beginning at a counter's first count. Answers, for
    /// each key in order, its count after the addition and the milliseconds left in its
    /// window (0 for a counter that does not exist).
    async fn add(
        &self,
        keys: &[String],
        by: u32,
        window_ms: u64,
    ) -> Result<Vec<(u64, u64)>, SharedUnavailable>;

    /// Sets `key` for `ttl_ms` milliseconds unless it is set already (`SET NX` with an
    /// expiry, atomic): `Ok(true)` when this call set it, `Ok(false)` when it was there. The
    /// single-use check of DPoP proofs across instances. Unavailable unless implemented.
    async fn set_once(&self, key: &str, ttl_ms: u64) -> Result<bool, SharedUnavailable> {
        let _ = (key, ttl_ms);
        Err(SharedUnavailable)
    }
}

/// The shared counters did not answer (in time); the limiter counts in this process instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shared counters are unavailable")]
pub struct SharedUnavailable;

/// A limiter's way to the shared counters: which, and the prefix of its keys.
#[derive(Debug, Clone)]
struct Shared {
    counters: Arc<dyn SharedCounters>,
    /// `netapi:<limiter>:`
    prefix: String,
}

impl Shared {
    fn key(&self, subject: &SubjectKey) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 32);
        key.push_str(&self.prefix);
        for byte in subject.0 {
            key.push_str(&format!("{byte:02x}"));
        }
        key
    }
}

/// Whole seconds of `ms`, rounded up, at least 1.
fn seconds_of(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

/// The source an address is counted under: IPv4 addresses (IPv4-mapped IPv6 included) as
/// they are, IPv6 addresses by their /64, which one host or customer usually holds whole.
pub fn source_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !(u128::MAX >> 64)).into()),
        },
    }
}

/// [`source_group`] of a textual address; what does not parse is its own source.
pub fn source_of(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(parsed @ IpAddr::V4(_)) => source_group(parsed).to_string(),
        Ok(parsed) => match source_group(parsed) {
            group @ IpAddr::V4(_) => group.to_string(),
            group => format!("{group}/64"),
        },
        Err(_) => ip.to_owned(),
    }
}

/// Counts in fixed windows of `window` seconds, at most `capacity` subjects.
struct Windows {
    counts: HashMap<SubjectKey, (Timestamp, u32)>,
    capacity: usize,
    window: i64,
}

impl Windows {
    fn new(capacity: usize, window: i64) -> Self {
        Self {
            counts: HashMap::new(),
            capacity: capacity.max(1),
            window,
        }
    }

    fn sweep(&mut self, now: Timestamp) {
        let window = self.window;
        self.counts.retain(|_, (start, _)| now < *start + window);
    }

    /// The current window of `key`, made if need be. When the map is full, finished windows
    /// go first, then every window that `keep` does not protect; `None` when all that is
    /// left is protected (the subject is then not counted until room is made).
    fn current(
        &mut self,
        key: SubjectKey,
        now: Timestamp,
        keep: impl Fn(u32) -> bool,
    ) -> Option<&mut (Timestamp, u32)> {
        if !self.counts.contains_key(&key) && self.counts.len() >= self.capacity {
            self.sweep(now);
            if self.counts.len() >= self.capacity {
                self.counts.retain(|_, (_, count)| keep(*count));
            }
            if self.counts.len() >= self.capacity {
                return None;
            }
        }
        let window = self.window;
        let entry = self.counts.entry(key).or_insert((now, 0));
        if now >= entry.0 + window {
            *entry = (now, 0);
        }
        Some(entry)
    }
}

/// Failed-attempt counters. Per process: with several instances each keeps its own counts,
/// so the effective limit is the configured one times the number of instances.
///
/// At the subject cap, windows that block are never dropped before they end (flooding the
/// map cannot unblock anyone); windows that do not block yet may be forgotten, and when only
/// blocking windows are left, new subjects go uncounted (never refused) until room is made.
pub struct FailureLimiter {
    limit: u32,
    hasher: SubjectHasher,
    windows: Mutex<Windows>,
    /// The latest end of a window in which some subject reached the limit: before it nobody
    /// can be blocked, so the hot path answers without taking the lock.
    blocking_until: AtomicI64,
    /// Where the counts live when instances share them; the windows above then hold what
    /// this process learnt of blocked subjects (and the counts while the shared ones fail).
    shared: Option<Shared>,
}

impl std::fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl FailureLimiter {
    /// A limiter allowing `limit` failures per subject per minute.
    pub fn new(limit: u32) -> Self {
        Self::with_capacity(limit, MAX_SUBJECTS)
    }

    /// Like [`FailureLimiter::new`], tracking at most `capacity` subjects.
    pub fn with_capacity(limit: u32, capacity: usize) -> Self {
        Self {
            limit,
            hasher: SubjectHasher::new(),
            windows: Mutex::new(Windows::new(capacity, WINDOW)),
            blocking_until: AtomicI64::new(Timestamp::MIN),
            shared: None,
        }
    }

    /// Counts in `counters`, shared with every instance that has the same `salt` (see
    /// [`crate::sealing::SecretKey::shared_limit_salt`]).
    #[must_use]
    pub fn shared(mut self, counters: Arc<dyn SharedCounters>, salt: [u8; 32]) -> Self {
        self.hasher = SubjectHasher::shared(salt);
        self.shared = Some(Shared {
            counters,
            prefix: "netapi:failures:".to_owned(),
        });
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The buckets an attempt at `surface` from `ip` counts in: the source's (IPv6 by /64)
    /// and, when the attempt names an account or client, that one's from this source. No
    /// bucket spans sources: failures from one never refuse a credential from another.
    pub fn subjects(&self, surface: Surface, ip: &str, account: Option<&str>) -> Vec<SubjectKey> {
        let source = source_of(ip);
        let mut keys = vec![self.hasher.key(&[surface.tag(), "source", &source])];
        if let Some(account) = account {
            keys.push(
                self.hasher
                    .key(&[surface.tag(), "account", account, &source]),
            );
        }
        keys
    }

    /// `Some(seconds to wait)` when any of `subjects` has used up its failures for this
    /// window: the longest wait of them. With shared counters, asks them (one round trip)
    /// unless this process already knows the subject blocked: for guessable secrets
    /// (passwords, codes), before the secret is checked.
    pub async fn blocked(&self, subjects: &[SubjectKey], now: Timestamp) -> Option<u64> {
        if let Some(wait) = self.blocked_here(subjects, now) {
            return Some(wait);
        }
        let shared = self.shared.as_ref()?;
        let keys: Vec<String> = subjects.iter().map(|s| shared.key(s)).collect();
        let counts = shared
            .counters
            .add(&keys, 0, WINDOW.unsigned_abs() * 1000)
            .await
            .ok()?;
        self.learn(subjects, &counts, now, self.limit)
    }

    /// Like [`FailureLimiter::blocked`] from what this process knows only (with shared
    /// counters: the subjects it learnt were blocked when it counted a failure), without a
    /// round trip.
    pub fn blocked_here(&self, subjects: &[SubjectKey], now: Timestamp) -> Option<u64> {
        self.blocked_with(|| subjects, now)
    }

    /// Keeps in the windows of this process the subjects that `counts` (answered by the
    /// shared counters for `subjects`) show at `limit` or past it; answers the longest wait of
    /// those past `at_least`.
    fn learn(
        &self,
        subjects: &[SubjectKey],
        counts: &[(u64, u64)],
        now: Timestamp,
        at_least: u32,
    ) -> Option<u64> {
        let limit = self.limit;
        let mut wait = None;
        let mut windows = self.lock();
        for (subject, &(count, ms_left)) in subjects.iter().zip(counts) {
            if count < u64::from(limit) || ms_left == 0 {
                continue;
            }
            let left = seconds_of(ms_left);
            let ends = now + i64::try_from(left).unwrap_or(WINDOW);
            if let Some(entry) = windows.current(*subject, now, |count| count >= limit) {
                *entry = (ends - WINDOW, u32::try_from(count).unwrap_or(u32::MAX));
                self.blocking_until.fetch_max(ends, Ordering::Relaxed);
            }
            if count >= u64::from(at_least) {
                wait = wait.max(Some(left));
            }
        }
        wait
    }

    /// Like [`FailureLimiter::blocked_here`], making the subjects only when someone may be
    /// blocked at all: on the hot path (no subject at its limit in this window) nothing is
    /// hashed and no lock is taken.
    pub fn blocked_with<S: AsRef<[SubjectKey]>>(
        &self,
        subjects: impl FnOnce() -> S,
        now: Timestamp,
    ) -> Option<u64> {
        if now >= self.blocking_until.load(Ordering::Relaxed) {
            return None;
        }
        let subjects = subjects();
        let windows = self.lock();
        subjects
            .as_ref()
            .iter()
            .filter_map(|subject| {
                let (start, count) = windows.counts.get(subject)?;
                let ends = start + WINDOW;
                (now < ends && *count >= self.limit).then(|| u64::try_from(ends - now).unwrap_or(1))
            })
            .max()
    }

    /// Counts one failure for each of `subjects`. With shared counters (one round trip),
    /// answers `Some(seconds to wait)` when this failure went past the limit of one of them
    /// (another instance counted the rest): the caller answers as if it had been blocked.
    pub async fn record_failure(&self, subjects: &[SubjectKey], now: Timestamp) -> Option<u64> {
        if let Some(shared) = &self.shared {
            let keys: Vec<String> = subjects.iter().map(|s| shared.key(s)).collect();
            if let Ok(counts) = shared
                .counters
                .add(&keys, 1, WINDOW.unsigned_abs() * 1000)
                .await
            {
                return self.learn(subjects, &counts, now, self.limit.saturating_add(1));
            }
        }
        self.record_here(subjects, now);
        None
    }

    /// Counts one failure for each of `subjects` in this process.
    fn record_here(&self, subjects: &[SubjectKey], now: Timestamp) {
        let limit = self.limit;
        let mut windows = self.lock();
        for subject in subjects {
            let Some(entry) = windows.current(*subject, now, |count| count >= limit) else {
                continue;
            };
            entry.1 = entry.1.saturating_add(1);
            if entry.1 >= limit {
                self.blocking_until
                    .fetch_max(entry.0 + WINDOW, Ordering::Relaxed);
            }
        }
    }

    /// Forgets finished windows; run by the housekeeping timer.
    pub fn sweep(&self, now: Timestamp) {
        self.lock().sweep(now);
    }

    /// How many subjects are tracked.
    pub fn len(&self) -> usize {
        self.lock().counts.len()
    }

    /// Whether no subject is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a credential stands against its per-minute request limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in this window.
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset: u64,
}

/// Requests per subject in a fixed window (a minute unless made otherwise), on the injected
/// clock. Per process,
/// like [`FailureLimiter`]. Its subjects are credentials that authenticated (or sources, for
/// registrations); at the subject cap, once finished windows are swept, new subjects go
/// uncounted until room is made, and no running window is reset early.
pub struct RequestLimiter {
    hasher: SubjectHasher,
    windows: Mutex<Windows>,
    /// Seconds of a window.
    window: i64,
    /// Where the counts live when instances share them (the windows above count while
    /// they fail).
    shared: Option<Shared>,
}

impl std::fmt::Debug for RequestLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLimiter").finish_non_exhaustive()
    }
}

impl Default for RequestLimiter {
    fn default() -> Self {
        Self::with_capacity(MAX_SUBJECTS)
    }
}

impl RequestLimiter {
    /// A limiter tracking at most `capacity` subjects.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_window(capacity, WINDOW)
    }

    /// A limiter counting in windows of `window` seconds, at most `capacity` subjects.
    pub fn with_window(capacity: usize, window: i64) -> Self {
        Self {
            hasher: SubjectHasher::new(),
            windows: Mutex::new(Windows::new(capacity, window.max(1))),
            window: window.max(1),
            shared: None,
        }
    }

    /// Counts in `counters`, shared with every instance that has the same `salt`, under
    /// keys named after `name` (one per limiter).
    #[must_use]
    pub fn shared(
        mut self,
        counters: Arc<dyn SharedCounters>,
        salt: [u8; 32],
        name: &'static str,
    ) -> Self {
        self.hasher = SubjectHasher::shared(salt);
        self.shared = Some(Shared {
            counters,
            prefix: format!("netapi:{name}:"),
        });
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a request of `subject`; `Err` (with the status, `remaining` 0) once past `limit`.
    /// With shared counters, one round trip (and the count of this process if it fails).
    pub async fn hit(
        &self,
        subject: &str,
        limit: u32,
        now: Timestamp,
    ) -> Result<RateStatus, RateStatus> {
        let key = self.hasher.key(&[subject]);
        if let Some(shared) = &self.shared {
            let window_ms = self.window.unsigned_abs() * 1000;
            if let Ok(counts) = shared.counters.add(&[shared.key(&key)], 1, window_ms).await
                && let Some(&(count, ms_left)) = counts.first()
            {
                let status = RateStatus {
                    limit,
                    remaining: u32::try_from(u64::from(limit).saturating_sub(count)).unwrap_or(0),
                    reset: seconds_of(ms_left),
                };
                return if count > u64::from(limit) {
                    Err(status)
                } else {
                    Ok(status)
                };
            }
        }
        self.hit_here(key, limit, now)
    }

    /// [`RequestLimiter::hit`] in this process.
    fn hit_here(
        &self,
        key: SubjectKey,
        limit: u32,
        now: Timestamp,
    ) -> Result<RateStatus, RateStatus> {
        let mut windows = self.lock();
        let window = windows.window;
        let Some(entry) = windows.current(key, now, |_| true) else {
            return Ok(RateStatus {
                limit,
                remaining: limit.saturating_sub(1),
                reset: window.unsigned_abs(),
            });
        };
        let reset = u64::try_from(entry.0 + window - now).unwrap_or(1);
        if entry.1 >= limit {
            return Err(RateStatus {
                limit,
                remaining: 0,
                reset,
            });
        }
        entry.1 += 1;
        Ok(RateStatus {
            limit,
            remaining: limit - entry.1,
            reset,
        })
    }

    /// Forgets finished windows; run by the housekeeping timer.
    pub fn sweep(&self, now: Timestamp) {
        self.lock().sweep(now);
    }

    /// How many subjects are tracked.
    pub fn len(&self) -> usize {
        self.lock().counts.len()
    }

    /// Whether no subject is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_limited_per_subject_per_minute() {
        let limiter = RequestLimiter::default();
        assert_eq!(
            limiter.hit("key:a", 2, 100).await.map(|s| s.remaining),
            Ok(1)
        );
        assert_eq!(
            limiter.hit("key:a", 2, 110).await.map(|s| s.remaining),
            Ok(0)
        );
        assert_eq!(
            limiter.hit("key:a", 2, 120).await,
            Err(RateStatus {
                limit: 2,
                remaining: 0,
                reset: 40
            })
        );
        assert!(limiter.hit("key:b", 2, 120).await.is_ok());
        assert_eq!(
            limiter.hit("key:a", 2, 160).await.map(|s| s.remaining),
            Ok(1)
        );
    }

    #[tokio::test]
    async fn blocks_after_the_limit_until_the_window_ends() {
        let limiter = FailureLimiter::new(3);
        let one = limiter.subjects(Surface::Bearer, "192.0.2.1", None);
        let two = limiter.subjects(Surface::Bearer, "192.0.2.2", None);
        for _ in 0..3 {
            assert_eq!(limiter.blocked(&one, 1000).await, None);
            limiter.record_failure(&one, 1000).await;
        }
        assert_eq!(limiter.blocked(&one, 1010).await, Some(50));
        assert_eq!(limiter.blocked(&two, 1010).await, None);
        assert_eq!(limiter.blocked(&one, 1060).await, None);
        limiter.record_failure(&one, 1060).await;
        assert_eq!(limiter.blocked(&one, 1061).await, None);
    }

    #[tokio::test]
    async fn subjects_are_made_only_while_someone_may_be_blocked() {
        let limiter = FailureLimiter::new(2);
        let made = std::cell::Cell::new(0);
        let subjects = || {
            made.set(made.get() + 1);
            limiter.subjects(Surface::Bearer, "192.0.2.1", None)
        };
        // Failures below the limit block nobody: nothing is hashed to find that out.
        limiter
            .record_failure(&limiter.subjects(Surface::Bearer, "192.0.2.1", None), 1000)
            .await;
        assert_eq!(limiter.blocked_with(subjects, 1001), None);
        assert_eq!(made.get(), 0);
        limiter
            .record_failure(&limiter.subjects(Surface::Bearer, "192.0.2.9", None), 1000)
            .await;
        limiter
            .record_failure(&limiter.subjects(Surface::Bearer, "192.0.2.9", None), 1000)
            .await;
        // Someone is blocked now: the subjects are made, and only the blocked one waits.
        assert_eq!(limiter.blocked_with(subjects, 1001), None);
        assert_eq!(made.get(), 1);
        let blocked = || limiter.subjects(Surface::Bearer, "192.0.2.9", None);
        assert_eq!(limiter.blocked_with(blocked, 1001), Some(59));
        // Once that window has ended, nothing is made again.
        assert_eq!(limiter.blocked_with(subjects, 1060), None);
        assert_eq!(made.get(), 1);
    }

    #[tokio::test]
    async fn surfaces_and_sources_have_their_own_buckets() {
        let limiter = FailureLimiter::new(2);
        let attacker = limiter.subjects(Surface::Password, "192.0.2.1", Some("amy@example.com"));
        limiter.record_failure(&attacker, 1000).await;
        limiter.record_failure(&attacker, 1000).await;
        assert!(limiter.blocked(&attacker, 1001).await.is_some());
        // The same account from elsewhere, and the same source at another surface, are free.
        let owner = limiter.subjects(Surface::Password, "198.51.100.7", Some("amy@example.com"));
        assert_eq!(limiter.blocked(&owner, 1001).await, None);
        let bearer = limiter.subjects(Surface::Bearer, "192.0.2.1", None);
        assert_eq!(limiter.blocked(&bearer, 1001).await, None);
        let client = limiter.subjects(Surface::Client, "192.0.2.1", Some("amy@example.com"));
        assert_eq!(limiter.blocked(&client, 1001).await, None);
    }

    #[tokio::test]
    async fn ipv6_sources_are_grouped_by_64() {
        assert_eq!(source_of("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(source_of("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::/64");
        assert_eq!(source_of("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(source_of("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(source_of("192.0.2.7"), "192.0.2.7");
        assert_eq!(source_of("unknown"), "unknown");
        // So an attacker hopping through the addresses of one /64 hits one bucket.
        let limiter = FailureLimiter::new(2);
        limiter
            .record_failure(
                &limiter.subjects(Surface::Client, "2001:db8:1:2::1", None),
                1000,
            )
            .await;
        limiter
            .record_failure(
                &limiter.subjects(Surface::Client, "2001:db8:1:2::2", None),
                1000,
            )
            .await;
        let third = limiter.subjects(Surface::Client, "2001:db8:1:2::3", None);
        assert!(limiter.blocked(&third, 1000).await.is_some());
        let neighbour = limiter.subjects(Surface::Client, "2001:db8:1:3::1", None);
        assert_eq!(limiter.blocked(&neighbour, 1000).await, None);
    }

    #[tokio::test]
    async fn long_subjects_cost_a_fixed_size() {
        let limiter = FailureLimiter::new(20);
        let huge = "x".repeat(300 * 1024);
        let keys = limiter.subjects(Surface::Client, "192.0.2.1", Some(&huge));
        assert_eq!(std::mem::size_of_val(&keys[1]), 16);
        limiter.record_failure(&keys, 1000).await;
        assert_eq!(limiter.len(), 2);
    }

    #[tokio::test]
    async fn many_subjects_stay_within_the_cap_and_blocks_survive_a_flood() {
        let limiter = FailureLimiter::with_capacity(3, 1000);
        let blocked = limiter.subjects(Surface::Password, "192.0.2.1", None);
        for _ in 0..3 {
            limiter.record_failure(&blocked, 1000).await;
        }
        // A flood of invented subjects, far past the cap.
        for n in 0..50_000u32 {
            let ip = format!("10.{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff);
            limiter
                .record_failure(&limiter.subjects(Surface::Password, &ip, None), 1010)
                .await;
            assert!(limiter.len() <= 1000);
        }
        // The blocked source stays blocked for the rest of its window.
        assert_eq!(limiter.blocked(&blocked, 1020).await, Some(40));
        // Nobody else was refused by the flood: an untouched source is free.
        let other = limiter.subjects(Surface::Password, "198.51.100.7", None);
        assert_eq!(limiter.blocked(&other, 1020).await, None);
    }

    #[tokio::test]
    async fn when_only_blocking_windows_are_left_new_subjects_go_uncounted() {
        let limiter = FailureLimiter::with_capacity(1, 4);
        for n in 0..4 {
            limiter
                .record_failure(
                    &limiter.subjects(Surface::Bearer, &format!("192.0.2.{n}"), None),
                    1000,
                )
                .await;
        }
        assert_eq!(limiter.len(), 4);
        let newcomer = limiter.subjects(Surface::Bearer, "198.51.100.7", None);
        limiter.record_failure(&newcomer, 1001).await;
        assert_eq!(limiter.blocked(&newcomer, 1001).await, None);
        let first = limiter.subjects(Surface::Bearer, "192.0.2.0", None);
        assert!(limiter.blocked(&first, 1001).await.is_some());
        // Once those windows end there is room again.
        limiter.record_failure(&newcomer, 1060).await;
        assert!(limiter.blocked(&newcomer, 1060).await.is_some());
        assert_eq!(limiter.len(), 1);
    }

    #[tokio::test]
    async fn sweep_forgets_finished_windows() {
        let failures = FailureLimiter::new(20);
        let requests = RequestLimiter::default();
        for n in 0..100 {
            let ip = format!("192.0.2.{n}");
            failures
                .record_failure(&failures.subjects(Surface::Bearer, &ip, None), 1000 + n)
                .await;
            let _ = requests.hit(&ip, 5, 1000 + n).await;
        }
        assert_eq!((failures.len(), requests.len()), (100, 100));
        failures.sweep(1080);
        requests.sweep(1080);
        // Windows that began at 1021 or later are still running at 1080.
        assert_eq!((failures.len(), requests.len()), (79, 79));
        failures.sweep(2000);
        requests.sweep(2000);
        assert!(failures.is_empty() && requests.is_empty());
    }

    #[tokio::test]
    async fn the_request_limiter_is_bounded_too() {
        let limiter = RequestLimiter::with_capacity(10);
        for n in 0..100 {
            assert!(limiter.hit(&format!("key:{n}"), 1, 1000).await.is_ok());
        }
        assert_eq!(limiter.len(), 10);
        // A subject already counted keeps its window.
        assert!(limiter.hit("key:0", 1, 1001).await.is_err());
    }
}
