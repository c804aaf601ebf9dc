//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use netapi_core::secret::SecretKind;

/// Every kind of opaque secret, indexed by the first input byte of `api_key_format`.
pub const SECRET_KINDS: [SecretKind; 5] = [
    SecretKind::ApiKey,
    SecretKind::RefreshToken,
    SecretKind::ClientSecret,
    SecretKind::AuthorizationCode,
    SecretKind::Session,
];

/// Splits `data` into a selector byte and the rest (`None` for empty input).
pub fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(first, rest)| (*first, rest))
}
