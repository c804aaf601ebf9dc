//! `oauth::parse_basic`: the `Authorization: Basic` credentials of the OAuth endpoints
//! (base64 of `id:secret`, each half form-urlencoded, RFC 6749 §2.3.1).
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
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use netapi_server::oauth::{MalformedBasic, parse_basic};

fn headers(value: &[u8]) -> Option<HeaderMap> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut map = HeaderMap::new();
    map.insert(AUTHORIZATION, value);
    Some(map)
}

fn basic(id: &str, secret: &str) -> HeaderMap {
    let value = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    headers(value.as_bytes()).expect("base64 is a valid header value")
}

fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    assert_eq!(parse_basic(&HeaderMap::new()), Ok(None));
    match mode % 3 {
        0 => {
            let Some(map) = headers(rest) else {
                return;
            };
            let result = parse_basic(&map);
            if result != Err(MalformedBasic) && result != Ok(None) {
                let value = map[AUTHORIZATION]
                    .to_str()
                    .expect("accepted headers are text");
                let (scheme, _) = value.split_once(' ').expect("a scheme and credentials");
                assert!(scheme.eq_ignore_ascii_case("basic"), "{value:?}");
            }
            if result == Ok(None) {
                let value = map[AUTHORIZATION].to_str().expect("read as text");
                let (scheme, _) = value.split_once(' ').expect("a scheme and credentials");
                assert!(!scheme.eq_ignore_ascii_case("basic"), "{value:?}");
            }
        }
        mode => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let (id, secret) = text.split_once('\0').unwrap_or((text, ""));
            let expected = Ok(Some((id.to_owned(), secret.to_owned())));
            if mode == 1 {
                let map = basic(&form_encode(id), &form_encode(secret));
                assert_eq!(parse_basic(&map), expected, "id {id:?}, secret {secret:?}");
            } else if !id.contains([':', '%', '+']) && !secret.contains(['%', '+']) {
                let map = basic(id, secret);
                assert_eq!(parse_basic(&map), expected, "id {id:?}, secret {secret:?}");
            }
        }
    }
});
