//! Credential formats: generation, parsing, checksums and hashing.
//!
//! Every secret Net API hands out has the shape `<prefix><32 base62 random><6 base62 CRC32>`.
//! The prefix tells a reader (and a secret scanner) what it is, the 190 random bits make it
//! unguessable, and the checksum lets us refuse a mistyped or invented secret without a
//! storage round trip. At rest only an HMAC-SHA-256 of the whole secret is kept.

use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use std::fmt;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters in a secret: 32 * log2(62) = 190 bits.
pub const RANDOM_LEN: usize = 32;
/// Characters of the base62-encoded CRC32 checksum (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;

/// Compares two tokens in constant time (for equal lengths; a length is no secret here):
/// CSRF tokens and anything else a caller presents against a stored value.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A secret value in memory. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that must not be shown.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Request bodies carry passwords and secrets as `Secret`, so that a derived `Debug` of the
/// body cannot print them.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"[redacted]\")")
    }
}

/// The kinds of opaque secret, each with its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A user's API key.
    ApiKey,
    /// An OAuth 2.0 refresh token.
    RefreshToken,
    /// An OAuth client secret.
    ClientSecret,
    /// An OAuth authorization code.
    AuthorizationCode,
    /// A browser session id.
    Session,
    /// The secret of an emailed link (email verification, password reset).
    EmailLink,
    /// A single-use invitation to register.
    Invitation,
    /// An initial access token for dynamic client registration (RFC 7591 §3), made by an
    /// administrator, good for one registration.
    RegistrationInitial,
    /// A registration access token (RFC 7592): reads, changes and deletes one client.
    RegistrationAccess,
    /// A device code (RFC 8628): what a device polls the token endpoint with.
    DeviceCode,
}

impl SecretKind {
    /// The distinctive prefix; documented for secret scanners in `docs/api.md`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::ApiKey => "napi_",
            Self::RefreshToken => "naprt_",
            Self::ClientSecret => "napcs_",
            Self::AuthorizationCode => "napac_",
            Self::Session => "napss_",
            Self::EmailLink => "napel_",
            Self::Invitation => "napiv_",
            Self::RegistrationInitial => "napit_",
            Self::RegistrationAccess => "napir_",
            Self::DeviceCode => "napdc_",
        }
    }

    /// Total length of a secret of this kind.
    pub const fn encoded_len(self) -> usize {
        self.prefix().len() + RANDOM_LEN + CHECKSUM_LEN
    }
}

/// Why a presented secret was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not the expected prefix, length or alphabet.
    #[error("malformed credential")]
    Malformed,
    /// Well formed, but the checksum does not match: mistyped or invented.
    #[error("credential checksum mismatch")]
    BadChecksum,
}

fn base62_fixed(mut value: u64, width: usize, out: &mut String) {
    // A u64 has at most 11 base62 digits: a wider field starts with zeros. On the stack and
    // appended at once (every request's id is made of three of these).
    let mut digits = [b'0'; 11];
    let used = width.min(digits.len());
    for slot in digits[..used].iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out.extend(std::iter::repeat_n('0', width - used));
    out.push_str(std::str::from_utf8(&digits[..used]).unwrap_or_default());
}

/// `count` random base62 characters from the OS generator. Bytes are drawn 64 at a time (one
/// system call, not one per character) and those of 248 or more are dropped, so that
/// `byte % 62` is uniform (248 = 4 * 62).
pub fn random_base62(count: usize) -> String {
    let mut out = String::with_capacity(count);
    let mut bytes = [0u8; 64];
    while out.len() < count {
        OsRng.fill_bytes(&mut bytes);
        let wanted = count - out.len();
        out.extend(
            bytes
                .iter()
                .filter(|&&b| b < 248)
                .take(wanted)
                .map(|&b| char::from(BASE62[usize::from(b % 62)])),
        );
    }
    out
}

/// Appends `value` as fixed-width base62; order-preserving, used for sortable ids.
pub fn push_base62(value: u64, width: usize, out: &mut String) {
    base62_fixed(value, width, out);
}

fn checksum(prefix_and_random: &str) -> String {
    let mut out = String::with_capacity(CHECKSUM_LEN);
    base62_fixed(
        u64::from(crc32fast::hash(prefix_and_random.as_bytes())),
        CHECKSUM_LEN,
        &mut out,
    );
    out
}

/// Makes a new secret of `kind`.
pub fn generate(kind: SecretKind) -> Secret {
    let mut value = String::with_capacity(kind.encoded_len());
    value.push_str(kind.prefix());
    value.push_str(&random_base62(RANDOM_LEN));
    let sum = checksum(&value);
    value.push_str(&sum);
    Secret(value)
}

/// A secret of `kind` whose characters come from `seed` (a keyed hash) instead of the random
/// generator: for a value that must be derived again rather than stored. 32 base62 digits
/// of the 256-bit seed carry 190 bits, as a generated secret does. The digits are the seed's
/// base62 digits, lowest first; instances of different releases must derive the same value.
pub fn from_seed(kind: SecretKind, seed: [u8; 32]) -> Secret {
    /// Digits that one division takes off: 62^5 < 2^30, so a remainder and the next 32-bit
    /// limb fit a u64.
    const DIGITS_PER_DIVISION: usize = 5;
    const FIVE_DIGITS: u64 = 62u64.pow(DIGITS_PER_DIVISION as u32);
    let mut limbs = [0u32; 8];
    for (limb, bytes) in limbs.iter_mut().zip(seed.chunks_exact(4)) {
        *limb = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    let mut value = String::with_capacity(kind.encoded_len());
    value.push_str(kind.prefix());
    let mut left = RANDOM_LEN;
    while left > 0 {
        let count = left.min(DIGITS_PER_DIVISION);
        // Constant divisors, so that each division compiles to a multiplication.
        let mut remainder = if count == DIGITS_PER_DIVISION {
            divide_in_place(&mut limbs, FIVE_DIGITS)
        } else {
            divide_in_place(&mut limbs, 62u64.pow(count as u32))
        };
        for _ in 0..count {
            value.push(char::from(BASE62[(remainder % 62) as usize]));
            remainder /= 62;
        }
        left -= count;
    }
    let sum = checksum(&value);
    value.push_str(&sum);
    Secret(value)
}

/// Divides the big-endian number in `limbs` by `divisor` (below 2^32), leaving the quotient
/// there; returns the remainder.
#[inline(always)]
fn divide_in_place(limbs: &mut [u32; 8], divisor: u64) -> u64 {
    let mut remainder = 0u64;
    for limb in limbs {
        let current = (remainder << 32) | u64::from(*limb);
        *limb = (current / divisor) as u32;
        remainder = current % divisor;
    }
    remainder
}

/// Checks prefix, length, alphabet and checksum; touches no storage.
pub fn check_format(kind: SecretKind, candidate: &str) -> Result<(), FormatError> {
    let Some(rest) = candidate.strip_prefix(kind.prefix()) else {
        return Err(FormatError::Malformed);
    };
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FormatError::Malformed);
    }
    let (body, sum) = candidate.split_at(candidate.len() - CHECKSUM_LEN);
    if checksum(body) == sum {
        Ok(())
    } else {
        Err(FormatError::BadChecksum)
    }
}

/// The digest under which a secret is stored and looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    /// Rebuilds a hash read from storage.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

/// A random key from which a secret is derived later (see [`from_seed`]). Its `Debug` does
/// not show it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DerivationKey(pub [u8; 32]);

impl fmt::Debug for DerivationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivationKey(..)")
    }
}

impl DerivationKey {
    /// A new key from the OS generator.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Rebuilds a key read from storage.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

/// HMAC-SHA-256 under the server's pepper. A fast hash is right here: the inputs are random
/// and long, so there is nothing for a slow hash to protect, and verification stays in
/// microseconds. The pepper means a stolen database alone does not allow offline checks of
/// leaked keys.
#[derive(Clone)]
pub struct SecretHasher {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher(..)")
    }
}

impl SecretHasher {
    /// A hasher keyed with `pepper` (which may be empty: then it is keyed with nothing).
    pub fn new(pepper: &[u8]) -> Self {
        #[allow(clippy::expect_used)]
        let mac = Hmac::<Sha256>::new_from_slice(pepper).expect("HMAC takes keys of any length");
        Self { mac }
    }

    /// The stored digest of `secret`.
    pub fn hash(&self, secret: &str) -> SecretHash {
        let mut mac = self.mac.clone();
        mac.update(secret.as_bytes());
        SecretHash(mac.finalize().into_bytes().into())
    }
}

/// The displayable start of a secret (its prefix and four random characters).
pub fn display_prefix(kind: SecretKind, secret: &Secret) -> String {
    secret.expose()[..kind.prefix().len() + 4].to_owned()
}

/// The last four characters of a secret, shown so users can tell keys apart.
pub fn last_four(secret: &Secret) -> String {
    let value = secret.expose();
    value[value.len() - 4..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [SecretKind; 10] = [
        SecretKind::ApiKey,
        SecretKind::RefreshToken,
        SecretKind::ClientSecret,
        SecretKind::AuthorizationCode,
        SecretKind::Session,
        SecretKind::EmailLink,
        SecretKind::Invitation,
        SecretKind::RegistrationInitial,
        SecretKind::RegistrationAccess,
        SecretKind::DeviceCode,
    ];

    #[test]
    fn generated_secrets_have_the_documented_shape() {
        for kind in KINDS {
            let secret = generate(kind);
            let value = secret.expose();
            assert_eq!(value.len(), kind.encoded_len());
            assert!(value.starts_with(kind.prefix()));
            assert_eq!(check_format(kind, value), Ok(()));
        }
        let key = generate(SecretKind::ApiKey);
        assert_eq!(key.expose().len(), 43);
    }

    #[test]
    fn seeded_secrets_are_well_formed_and_follow_the_seed() {
        let a = from_seed(SecretKind::RefreshToken, [7; 32]);
        assert_eq!(check_format(SecretKind::RefreshToken, a.expose()), Ok(()));
        assert_eq!(a, from_seed(SecretKind::RefreshToken, [7; 32]));
        assert_ne!(a, from_seed(SecretKind::RefreshToken, [8; 32]));
        let zero = from_seed(SecretKind::RefreshToken, [0; 32]);
        assert_eq!(
            check_format(SecretKind::RefreshToken, zero.expose()),
            Ok(())
        );
    }

    /// The seed's base62 digits, lowest first, one long division by 62 per digit: the
    /// definition [`from_seed`] must keep to, since instances of different releases derive
    /// the same successor of a refresh token.
    fn digits_by_long_division(seed: [u8; 32]) -> String {
        let mut number = seed;
        let mut digits = String::new();
        for _ in 0..RANDOM_LEN {
            let mut remainder = 0u32;
            for byte in &mut number {
                let value = (remainder << 8) | u32::from(*byte);
                *byte = (value / 62) as u8;
                remainder = value % 62;
            }
            digits.push(char::from(BASE62[remainder as usize]));
        }
        digits
    }

    fn seeded_digits(seed: [u8; 32]) -> String {
        let secret = from_seed(SecretKind::RefreshToken, seed);
        let value = secret.expose();
        value[SecretKind::RefreshToken.prefix().len()..value.len() - CHECKSUM_LEN].to_owned()
    }

    #[test]
    fn seeded_digits_are_those_of_long_division() {
        for seed in [[0; 32], [0xff; 32], [7; 32]] {
            assert_eq!(seeded_digits(seed), digits_by_long_division(seed));
        }
        // 2^255 + 1, its digits worked out apart (in Python): pinned across releases.
        let mut seed = [0; 32];
        seed[0] = 0x80;
        seed[31] = 1;
        assert_eq!(seeded_digits(seed), "XuG4ThvXM156xtrd3dfA4OlHl8OmVAaV");
    }

    proptest! {
        #[test]
        fn any_seed_gives_the_digits_of_long_division(seed in any::<[u8; 32]>()) {
            prop_assert_eq!(seeded_digits(seed), digits_by_long_division(seed));
        }
    }

    #[test]
    fn fixed_width_base62_pads_and_keeps_the_low_digits() {
        let base62 = |value: u64, width: usize| {
            let mut out = String::from("x");
            push_base62(value, width, &mut out);
            out
        };
        assert_eq!(base62(0, 3), "x000");
        assert_eq!(base62(61, 2), "x0z");
        assert_eq!(base62(62, 2), "x10");
        assert_eq!(base62(u64::MAX, 11), "xLygHa16AHYF");
        // Wider than any u64 needs: zeros first.
        assert_eq!(base62(u64::MAX, 13), "x00LygHa16AHYF");
        // Narrower than the value: its low digits, as a fixed field must.
        assert_eq!(base62(62 * 62 + 5, 2), "x05");
        assert_eq!(base62(7, 0), "x");
    }

    #[test]
    fn random_base62_fills_any_length_from_the_alphabet() {
        for count in [0, 1, 12, 32, 61, 200] {
            let value = random_base62(count);
            assert_eq!(value.len(), count);
            assert!(value.bytes().all(|b| BASE62.contains(&b)));
        }
    }

    #[test]
    fn a_secret_of_one_kind_is_not_another() {
        let key = generate(SecretKind::ApiKey);
        assert_eq!(
            check_format(SecretKind::RefreshToken, key.expose()),
            Err(FormatError::Malformed)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = generate(SecretKind::ApiKey);
        assert!(!format!("{key:?}").contains(key.expose()));
    }

    #[test]
    fn pepper_changes_the_hash() {
        let a = SecretHasher::new(b"one").hash("napi_x");
        let b = SecretHasher::new(b"two").hash("napi_x");
        assert_ne!(a, b);
        assert_eq!(a, SecretHasher::new(b"one").hash("napi_x"));
    }

    #[test]
    fn invented_keys_fail() {
        assert_eq!(
            check_format(SecretKind::ApiKey, ""),
            Err(FormatError::Malformed)
        );
        assert_eq!(
            check_format(SecretKind::ApiKey, "napi_short"),
            Err(FormatError::Malformed)
        );
        let invented = format!("napi_{}", "a".repeat(38));
        assert_eq!(
            check_format(SecretKind::ApiKey, &invented),
            Err(FormatError::BadChecksum)
        );
    }

    proptest! {
        #[test]
        fn any_single_character_change_fails(position in 5usize..43, replacement in 0usize..62) {
            let key = generate(SecretKind::ApiKey);
            let mut bytes = key.expose().as_bytes().to_vec();
            let new = BASE62[replacement];
            prop_assume!(bytes[position] != new);
            bytes[position] = new;
            let changed = String::from_utf8(bytes).unwrap_or_default();
            prop_assert!(check_format(SecretKind::ApiKey, &changed).is_err());
        }

        #[test]
        fn parser_never_panics(input in ".{0,80}") {
            let _ = check_format(SecretKind::ApiKey, &input);
        }
    }
}
