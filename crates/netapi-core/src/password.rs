//! Human passwords: argon2id, off the async threads, with constant work for unknown users.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use std::sync::OnceLock;

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

/// Hashes a password on the blocking pool.
pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| Error::Internal(format!("hash task: {e}")))?
}

/// Verifies `password` against `phc`; with `None` (no such user) it does the same work
/// against a dummy hash and answers false, so timing does not tell whether the user exists.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || verify_blocking(&password, phc.as_deref()))
        .await
        .map_err(|e| Error::Internal(format!("verify task: {e}")))
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
