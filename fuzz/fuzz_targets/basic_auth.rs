//! `service::basic_credentials`: the `Authorization: Basic` credentials of the OAuth
//! endpoints (base64 of `id:secret`, each half form-urlencoded, RFC 6749 §2.3.1).
//!
//! Input: one byte choosing the mode, then:
//! - 0: the whole header value;
//! - 1: an id and a secret (split at the first NUL) that are form-urlencoded, joined and
//!   base64-encoded as a conforming client does: they must come back unchanged;
//! - 2: the same, but sent without the form-urlencoding, as many clients do: whatever has
//!   no `%` or `+` (and no `:` in the id) must still come back unchanged.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use netapi_core::service::{MalformedBasic, basic_credentials};

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(value) = std::str::from_utf8(rest) else {
                return;
            };
            let result = basic_credentials(value);
            if result != Err(MalformedBasic) {
                // Read at all: a scheme and credentials, and only Basic is decoded.
                let (scheme, _) = value.split_once(' ').expect("a scheme and credentials");
                let decoded = result.expect("not refused").is_some();
                assert_eq!(decoded, scheme.eq_ignore_ascii_case("basic"), "{value:?}");
            }
        }
        mode => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let (id, secret) = text.split_once('\0').unwrap_or((text, ""));
            let expected = Ok(Some((id.to_owned(), secret.to_owned())));
            if mode == 1 {
                let value = basic(&form_encode(id), &form_encode(secret));
                assert_eq!(basic_credentials(&value), expected, "id {id:?}, secret {secret:?}");
            } else if !id.contains([':', '%', '+']) && !secret.contains(['%', '+']) {
                let value = basic(id, secret);
                assert_eq!(basic_credentials(&value), expected, "id {id:?}, secret {secret:?}");
            }
        }
    }
});
