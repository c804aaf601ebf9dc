//! Human passwords: argon2id, off the async threads, with constant work for unknown users.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use crate::error::{Error, Result};

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in characters (argon2 would take more, but nobody needs it).
pub const MAX_LEN: usize = 128;

fn argon2() -> Argon2<'static> {
    // OWASP's first argon2id setting: 19 MiB, 2 passes, 1 lane.
    #[allow(clippy::expect_used)]
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the length rule; the message says what is accepted.
pub fn validate(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if (MIN_LEN..=MAX_LEN).contains(&chars) {
        Ok(())
    } else {
        Err(Error::invalid(
            "password",
            format!("must be between {MIN_LEN} and {MAX_LEN} characters"),
        ))
    }
}

fn hash_blocking(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("not a password of anybody").unwrap_or_default())
}

fn verify_blocking(password: &str, phc: Option<&str>) -> bool {
    let candidate = phc.unwrap_or_else(|| dummy_hash());
    let verified = PasswordHash::new(candidate).is_ok_and(|parsed| {
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    });
    verified && phc.is_some()
}

type Job = Box<dyn FnOnce() + Send>;

/// Argon2 runs on threads of its own, one per core, taking work in order. Each computation
/// holds 19 MiB: running more at once than there are cores adds memory, not throughput, and
/// a small fixed set of threads keeps the allocator from holding a 19 MiB arena for every
/// thread of tokio's blocking pool that ever hashed (32 concurrent registrations took the
/// server past 3 GB that way in bench/run.sh).
fn argon2_queue() -> Option<&'static mpsc::Sender<Job>> {
    static QUEUE: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (sender, receiver) = mpsc::channel::<Job>();
            let receiver = Arc::new(Mutex::new(receiver));
            let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
            let mut started = 0;
            for n in 0..threads {
                let receiver = receiver.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("argon2-{n}"))
                    .spawn(move || {
                        loop {
                            let job = receiver
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .recv();
                            let Ok(job) = job else { break };
                            // A panic fails that one request (its answer channel is dropped),
                            // not the thread.
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                    });
                started += usize::from(spawned.is_ok());
            }
            (started > 0).then_some(sender)
        })
        .as_ref()
}

/// Runs argon2 work off the async threads (see [`argon2_queue`]).
async fn run_argon2<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let failed = |e: &dyn std::fmt::Display| Error::Internal(format!("password task: {e}"));
    let Some(queue) = argon2_queue() else {
        return tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| failed(&e));
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    queue
        .send(Box::new(move || {
            let _ = answer.send(work());
        }))
        .map_err(|e| failed(&e))?;
    answered.await.map_err(|e| failed(&e))
}

/// Hashes a password off the async threads.
pub async fn hash(password: String) -> Result<String> {
    run_argon2(move || hash_blocking(&password)).await?
}

/// Verifies `password` against `phc`; with `None` (no such user) it does the same work
/// against a dummy hash and answers false, so timing does not tell whether the user exists.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool> {
    run_argon2(move || verify_blocking(&password, phc.as_deref())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_unknown_users_fail() {
        let phc = hash_blocking("correct horse").unwrap_or_default();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_blocking("correct horse", Some(&phc)));
        assert!(!verify_blocking("wrong horse", Some(&phc)));
        assert!(!verify_blocking("not a password of anybody", None));
    }

    #[test]
    fn length_rule() {
        assert!(validate("1234567").is_err());
        assert!(validate("12345678").is_ok());
        assert!(validate(&"x".repeat(129)).is_err());
        assert!(validate(&"é".repeat(128)).is_ok());
    }
}
