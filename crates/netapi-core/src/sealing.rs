//! The secret key kept outside the database, and what it protects inside it.
//!
//! Signing keys are stored sealed (AES-256-GCM) under a key derived from it, so that a copy of
//! the database alone cannot sign tokens. A check value derived from the same key is stored
//! beside them: an instance started with another key, or none, is refused at start instead of
//! quietly making signing keys that nobody else can read.

use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Sha256;
use std::fmt;

/// Bytes of the secret key.
pub const SECRET_KEY_LEN: usize = 32;
/// Marks a sealed value, so that a legacy plaintext key (exactly 32 bytes) is never mistaken
/// for one.
const SEALED_MAGIC: &[u8; 4] = b"nsk1";
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// The key kept outside the database (`secret_key_file`). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; SECRET_KEY_LEN]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// Why a key file's text is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a secret key file holds 64 hexadecimal characters (32 bytes), and nothing else")]
pub struct MalformedSecretKey;

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0; SECRET_KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses the text of a key file: 64 hex digits, surrounding white space ignored.
    pub fn parse(text: &str) -> Result<Self, MalformedSecretKey> {
        let text = text.trim();
        if text.len() != SECRET_KEY_LEN * 2 || !text.is_ascii() {
            return Err(MalformedSecretKey);
        }
        let mut bytes = [0; SECRET_KEY_LEN];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| MalformedSecretKey)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| MalformedSecretKey)?;
        }
        Ok(Self(bytes))
    }

    /// The text of a key file for this key (hex and a newline).
    pub fn to_file_text(&self) -> String {
        let mut text: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        text.push('\n');
        text
    }

    /// A key of zeros, for tests that need no secrecy (and several services sharing a
    /// database). The binary always reads or creates a real key file.
    pub const fn insecure_for_tests() -> Self {
        Self([0; SECRET_KEY_LEN])
    }

    /// A sub-key for one purpose, so that the check value says nothing about the sealing key.
    fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(purpose);
        mac.finalize().into_bytes().into()
    }

    /// The salt of the subjects of limits shared through Redis: the same in every instance
    /// (they share this key), unknown outside them.
    pub fn shared_limit_salt(&self) -> [u8; 32] {
        self.derive(b"netapi shared limit subjects v1")
    }

    /// The value stored in the database to recognise this key.
    pub fn check_value(&self) -> Vec<u8> {
        self.derive(b"netapi secret key check v1").to_vec()
    }

    fn sealing_key(&self) -> LessSafeKey {
        let Ok(key) = UnboundKey::new(&AES_256_GCM, &self.derive(b"netapi signing key seal v1"))
        else {
            unreachable!("a 32-byte key fits AES-256-GCM")
        };
        LessSafeKey::new(key)
    }

    /// Seals `plaintext`, bound to `context` (the row it belongs to: moving a sealed value to
    /// another row makes it unreadable).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut in_out = plaintext.to_vec();
        let Ok(tag) = self.sealing_key().seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut in_out,
        ) else {
            unreachable!("AES-GCM seals anything shorter than 64 GiB")
        };
        let mut sealed =
            Vec::with_capacity(SEALED_MAGIC.len() + NONCE_LEN + in_out.len() + TAG_LEN);
        sealed.extend_from_slice(SEALED_MAGIC);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        sealed.extend_from_slice(tag.as_ref());
        sealed
    }

    /// Opens what [`SecretKey::seal`] made for `context`; `None` if it was made with another
    /// key, for another context, or altered.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let rest = sealed.strip_prefix(SEALED_MAGIC)?;
        if rest.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .sealing_key()
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .ok()?;
        Some(plaintext.to_vec())
    }
}

/// Whether stored key material is sealed (as opposed to a plaintext key written by a version
/// before sealing, which the start-up step seals).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(SEALED_MAGIC) && stored.len() > SECRET_KEY_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"sig_1", b"private key bytes");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        assert_eq!(
            key.open(b"sig_1", &sealed).as_deref(),
            Some(&b"private key bytes"[..])
        );
        assert_eq!(key.open(b"sig_2", &sealed), None);
        assert_eq!(SecretKey::generate().open(b"sig_1", &sealed), None);
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(key.open(b"sig_1", &altered), None);
        // Two seals of one value differ (a fresh nonce each time).
        assert_ne!(key.seal(b"sig_1", b"private key bytes"), sealed);
    }

    #[test]
    fn a_legacy_plaintext_key_is_not_taken_for_a_sealed_one() {
        assert!(!is_sealed(&[7; 32]));
        let mut looks_sealed = [0; 32];
        looks_sealed[..4].copy_from_slice(SEALED_MAGIC);
        assert!(!is_sealed(&looks_sealed));
    }

    #[test]
    fn key_files_round_trip_and_bad_ones_are_refused() {
        let key = SecretKey::generate();
        let text = key.to_file_text();
        assert_eq!(SecretKey::parse(&text), Ok(key.clone()));
        assert_eq!(SecretKey::parse(&format!("  {text}\n")), Ok(key));
        assert_eq!(SecretKey::parse(""), Err(MalformedSecretKey));
        assert_eq!(SecretKey::parse(&"g".repeat(64)), Err(MalformedSecretKey));
        assert_eq!(SecretKey::parse(&"a".repeat(62)), Err(MalformedSecretKey));
        assert_eq!(SecretKey::parse(&"é".repeat(32)), Err(MalformedSecretKey));
    }

    #[test]
    fn the_check_value_tells_keys_apart_and_shows_no_key() {
        let key = SecretKey::generate();
        assert_eq!(key.check_value(), key.check_value());
        assert_ne!(key.check_value(), SecretKey::generate().check_value());
        assert_ne!(key.check_value(), key.0.to_vec());
        assert!(!format!("{key:?}").contains(&key.to_file_text()[..8]));
    }
}
