//! Human passwords: argon2id, off the async threads, with constant work for unknown users.

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as PHC_B64;
use rand::RngCore;
use rand::rngs::OsRng;
use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in characters (argon2 would take more, but nobody needs it).
pub const MAX_LEN: usize = 128;

/// OWASP's first argon2id setting: 19 MiB, 2 passes, 1 lane.
fn params() -> Params {
    #[allow(clippy::expect_used)]
    Params::new(19 * 1024, 2, 1, Some(32)).expect("static argon2 parameters are valid")
}

/// Most memory a stored hash may ask for (256 MiB); anything above is refused, not run.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

thread_local! {
    /// Argon2's working memory, kept by each argon2 thread for its lifetime. Allocating and
    /// freeing 19 MiB per hash let the allocator keep freed blocks around per thread and
    /// pushed the peak RSS of a registration burst past 90 MB; one block per thread keeps it
    /// at 19 MiB each.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2id with `params` into `out`, in this thread's reused memory.
fn compute(
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    })
}
/// The 100,000 most common passwords of at least [`MIN_LEN`] characters, lower-cased and
/// sorted (see `data/README.md` for where they come from). Shorter ones fail the length rule.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// Whether `password`, ignoring case, is in the built-in list of common passwords.
pub fn is_common(password: &str) -> bool {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    let list = LIST.get_or_init(|| COMMON_PASSWORDS.lines().collect());
    list.binary_search(&password.to_lowercase().as_str())
        .is_ok()
}

/// Shortest email local part that a password may not contain: shorter ones ("jo") occur in
/// too many good passwords to mean anything.
const MIN_LOCAL_PART: usize = 3;

/// The rules of NIST SP 800-63B, and no composition rules: [`MIN_LEN`] to [`MAX_LEN`]
/// characters, not a common password, not containing the local part of the account's email.
/// The message says what is wrong.
pub fn validate(password: &str, email: &str) -> Result<()> {
    let chars = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&chars) {
        return Err(Error::invalid(
            "password",
            format!("must be between {MIN_LEN} and {MAX_LEN} characters"),
        ));
    }
    if is_common(password) {
        return Err(Error::invalid(
            "password",
            "is one of the most commonly used passwords; choose another",
        ));
    }
    let local = email
        .rsplit_once('@')
        .map_or(email, |(local, _)| local)
        .to_lowercase();
    if local.chars().count() >= MIN_LOCAL_PART && password.to_lowercase().contains(&local) {
        return Err(Error::invalid(
            "password",
            "must not contain your email address's name",
        ));
    }
    Ok(())
}

fn hash_blocking(password: &str) -> Result<String> {
    let params = params();
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    compute(params.clone(), password.as_bytes(), &salt, &mut out)
        .map_err(|e| Error::Internal(format!("argon2: {e}")))?;
    // The PHC string format, as every argon2 library reads it.
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        PHC_B64.encode(salt),
        PHC_B64.encode(out)
    ))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("not a password of anybody").unwrap_or_default())
}

/// Whether `password` matches the PHC string `phc` (argon2id only).
fn matches(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id"
        || parsed.version.is_some_and(|v| v != 0x13)
        || params.m_cost() > MAX_MEMORY_KIB
    {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut computed = vec![0u8; expected.len()];
    if compute(params, password.as_bytes(), salt, &mut computed).is_err() {
        return false;
    }
    computed.ct_eq(expected.as_bytes()).into()
}

fn verify_blocking(password: &str, phc: Option<&str>) -> bool {
    let verified = matches(password, phc.unwrap_or_else(|| dummy_hash()));
    verified && phc.is_some()
}

type Job = Box<dyn FnOnce() + Send>;

/// Which queue a job waits in. Sign-ins are answered first, and hashing new passwords
/// (registrations, changes) never holds every thread, so that a burst of registrations
/// delays a sign-in by one hash at most instead of by the whole queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Verify,
    Hash,
}

#[derive(Default)]
struct Lanes {
    verify: std::collections::VecDeque<Job>,
    hash: std::collections::VecDeque<Job>,
    /// Hash jobs running now.
    hashing: usize,
}

/// Argon2 runs on threads of its own, taking work in order within each lane: one per core (at
/// least two), of which hashing may hold all but one, kept for sign-ins. Each computation
/// holds 19 MiB: running more
/// at once than there are cores adds memory, not throughput, and a small fixed set of
/// threads keeps the allocator from holding a 19 MiB arena for every thread of tokio's
/// blocking pool that ever hashed (32 concurrent registrations took the server past 3 GB
/// that way in bench/run.sh).
struct Pool {
    lanes: Mutex<Lanes>,
    wake: Condvar,
    /// Most threads hash jobs may hold at once: all but one.
    hash_threads: usize,
}

impl Pool {
    /// Starts `threads` workers (at least two: one is always free for sign-ins).
    fn start(threads: usize) -> Option<Arc<Self>> {
        let threads = threads.max(2);
        let pool = Arc::new(Self {
            lanes: Mutex::new(Lanes::default()),
            wake: Condvar::new(),
            hash_threads: threads - 1,
        });
        let mut started = 0;
        for n in 0..threads {
            let worker = pool.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || worker.work());
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(pool)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn submit(&self, lane: Lane, job: Job) {
        let mut lanes = self.lock();
        match lane {
            Lane::Verify => lanes.verify.push_back(job),
            Lane::Hash => lanes.hash.push_back(job),
        }
        drop(lanes);
        self.wake.notify_all();
    }

    fn work(&self) {
        loop {
            let (lane, job) = {
                let mut lanes = self.lock();
                loop {
                    if let Some(job) = lanes.verify.pop_front() {
                        break (Lane::Verify, job);
                    }
                    if lanes.hashing < self.hash_threads
                        && let Some(job) = lanes.hash.pop_front()
                    {
                        lanes.hashing += 1;
                        break (Lane::Hash, job);
                    }
                    lanes = self
                        .wake
                        .wait(lanes)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            // A panic fails that one request (its answer channel is dropped), not the thread.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            if lane == Lane::Hash {
                self.lock().hashing -= 1;
                self.wake.notify_all();
            }
        }
    }
}

/// The process's argon2 threads: one per core (a third 19 MiB block on two cores took peak RSS
/// past 64 MB under a registration burst).
fn argon2_pool() -> Option<&'static Arc<Pool>> {
    static POOL: OnceLock<Option<Arc<Pool>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Pool::start(cores)
    })
    .as_ref()
}

/// Runs argon2 work off the async threads (see [`Pool`]).
async fn run_argon2<T: Send + 'static>(
    lane: Lane,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let failed = |e: &dyn std::fmt::Display| Error::Internal(format!("password task: {e}"));
    let Some(pool) = argon2_pool() else {
        return tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| failed(&e));
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    pool.submit(
        lane,
        Box::new(move || {
            let _ = answer.send(work());
        }),
    );
    answered.await.map_err(|e| failed(&e))
}

/// Hashes a password off the async threads.
pub async fn hash(password: String) -> Result<String> {
    run_argon2(Lane::Hash, move || hash_blocking(&password)).await?
}

/// Verifies `password` against `phc`; with `None` (no such user) it does the same work
/// against a dummy hash and answers false, so timing does not tell whether the user exists.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool> {
    run_argon2(Lane::Verify, move || {
        verify_blocking(&password, phc.as_deref())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert!(COMMON_PASSWORDS.lines().count() >= 100_000);
        // The list is sorted and lower-case, as the binary search needs.
        let lines: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(lines.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(
            lines
                .iter()
                .all(|l| *l == l.to_lowercase() && l.chars().count() >= MIN_LEN)
        );
        for common in [
            "password",
            "Password1",
            "QWERTYUIOP",
            "iloveyou",
            "trustno1",
        ] {
            assert!(is_common(common), "{common}");
            let refused = validate(common, "someone@example.com");
            assert!(
                matches!(&refused, Err(Error::InvalidArgument { message, .. }) if message.contains("common")),
                "{common}: {refused:?}"
            );
        }
        assert!(!is_common("correct horse battery"));
        assert!(validate("correct horse battery", "someone@example.com").is_ok());
    }

    #[test]
    fn a_password_containing_the_email_name_is_refused() {
        // The whole local part is what counts.
        assert!(validate("Adalovelace-1815", "ada.lovelace@example.com").is_ok());
        assert!(validate("my ada.lovelace pass", "ada.lovelace@example.com").is_err());
        assert!(validate("xxADA.LOVELACExx", "Ada.Lovelace@example.com").is_err());
        // Too short a name to mean anything.
        assert!(validate("jo-correct-horse", "jo@example.com").is_ok());
        // The length rule still comes first.
        assert!(validate("short", "x@example.com").is_err());
        assert!(validate(&"x".repeat(MAX_LEN + 1), "a@example.com").is_err());
    }

    #[test]
    fn reads_hashes_made_by_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(verify_blocking("correct horse", Some(&theirs)));
        assert!(!verify_blocking("wrong horse", Some(&theirs)));
        // And the crate reads ours.
        let ours = hash_blocking("correct horse").unwrap_or_default();
        let parsed = PasswordHash::new(&ours);
        assert!(parsed.is_ok_and(|p| {
            argon2::password_hash::PasswordVerifier::verify_password(
                &Argon2::default(),
                b"correct horse",
                &p,
            )
            .is_ok()
        }));
    }

    #[test]
    fn refuses_other_algorithms_and_absurd_memory() {
        let ours = hash_blocking("correct horse").unwrap_or_default();
        assert!(!verify_blocking(
            "correct horse",
            Some(&ours.replace("argon2id", "argon2i"))
        ));
        assert!(!verify_blocking(
            "correct horse",
            Some(&ours.replace("m=19456", "m=4194304"))
        ));
        assert!(!verify_blocking("correct horse", Some("not a hash")));
    }

    #[test]
    fn hashes_verify_and_unknown_users_fail() {
        let phc = hash_blocking("correct horse").unwrap_or_default();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_blocking("correct horse", Some(&phc)));
        assert!(!verify_blocking("wrong horse", Some(&phc)));
        assert!(!verify_blocking("not a password of anybody", None));
    }

    #[test]
    fn sign_ins_keep_a_thread_while_hashing_is_busy() {
        use std::sync::mpsc;
        use std::time::Duration;
        let pool = Pool::start(2).unwrap_or_else(|| unreachable!());
        let (started, starts) = mpsc::channel();
        let mut gates = Vec::new();
        // Two slow hash jobs: only one of them may run, the other waits.
        for _ in 0..2 {
            let (open, gate) = mpsc::channel::<()>();
            gates.push(open);
            let started = started.clone();
            pool.submit(
                Lane::Hash,
                Box::new(move || {
                    let _ = started.send(());
                    let _ = gate.recv();
                }),
            );
        }
        // A sign-in is answered while they hold their thread and queue.
        let (done, answered) = mpsc::channel();
        pool.submit(
            Lane::Verify,
            Box::new(move || {
                let _ = done.send(());
            }),
        );
        // Generous bound: it only stops a broken pool from hanging the suite.
        assert!(answered.recv_timeout(Duration::from_secs(60)).is_ok());
        assert!(starts.recv_timeout(Duration::from_secs(60)).is_ok());
        assert!(starts.try_recv().is_err(), "both hash jobs ran at once");
        for gate in gates {
            let _ = gate.send(());
        }
        assert!(starts.recv_timeout(Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn length_rule() {
        let email = "someone@example.com";
        assert!(validate("k7#pQ2z", email).is_err());
        assert!(validate("k7#pQ2zw", email).is_ok());
        assert!(validate(&"x".repeat(129), email).is_err());
        assert!(validate(&"é".repeat(128), email).is_ok());
    }
}
