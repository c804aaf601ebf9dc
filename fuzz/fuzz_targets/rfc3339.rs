//! `clock::parse_rfc3339`: date-times sent by clients (`expires_at` of API keys).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netapi_core::clock::{format_rfc3339, parse_rfc3339};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(ts) = parse_rfc3339(text) else {
        return;
    };
    // Whatever is accepted can be shown again (the API echoes `expires_at`), and reads back
    // as the same instant.
    let shown = format_rfc3339(ts);
    assert!(
        !shown.is_empty(),
        "{text:?} was accepted as {ts} but cannot be formatted"
    );
    assert!(shown.ends_with('Z'), "{shown}");
    assert_eq!(parse_rfc3339(&shown), Some(ts), "{text:?} -> {shown}");
});
