//! `secret::check_format` for every kind of secret (API keys, refresh tokens, client
//! secrets, authorization codes, session ids).
//!
//! Input: one byte choosing the kind and the mode, then the candidate text.
//! Mode 0 checks arbitrary text; mode 1 changes one character of a freshly generated secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netapi_core::secret::{FormatError, SecretKind, check_format, generate};
use netapi_fuzz::{SECRET_KINDS, split_selector};

fn check_arbitrary(kind: SecretKind, candidate: &str) {
    let result = check_format(kind, candidate);
    let shaped = candidate.len() == kind.encoded_len()
        && candidate.starts_with(kind.prefix())
        && candidate[kind.prefix().len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric());
    match result {
        Ok(()) => {
            assert!(shaped, "accepted a malformed {kind:?}: {candidate:?}");
            // A secret is of exactly one kind.
            for other in SECRET_KINDS {
                if other != kind {
                    assert_eq!(
                        check_format(other, candidate),
                        Err(FormatError::Malformed),
                        "{candidate:?} is both {kind:?} and {other:?}"
                    );
                }
            }
        }
        // A checksum is only compared once the shape is right.
        Err(FormatError::BadChecksum) => assert!(shaped, "{candidate:?}"),
        Err(FormatError::Malformed) => assert!(!shaped, "{candidate:?}"),
    }
    // Deterministic: the same answer twice.
    assert_eq!(check_format(kind, candidate), result);
}

fn check_one_change(kind: SecretKind, data: &[u8]) {
    let secret = generate(kind);
    let original = secret.expose();
    assert_eq!(check_format(kind, original), Ok(()));
    let [position, replacement, ..] = *data else {
        return;
    };
    let mut bytes = original.as_bytes().to_vec();
    let position = usize::from(position) % bytes.len();
    if bytes[position] == replacement {
        return;
    }
    bytes[position] = replacement;
    if let Ok(changed) = std::str::from_utf8(&bytes) {
        // CRC-32 catches every single-character change, in the body or in the checksum.
        assert!(
            check_format(kind, changed).is_err(),
            "{changed:?} accepted after changing one character of a real {kind:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = split_selector(data) else {
        return;
    };
    let kind = SECRET_KINDS[usize::from(selector) % SECRET_KINDS.len()];
    if selector & 0x80 == 0 {
        if let Ok(candidate) = std::str::from_utf8(rest) {
            check_arbitrary(kind, candidate);
        }
    } else {
        check_one_change(kind, rest);
    }
});
