//! `service::PageRequest::parse`: the `page_size` and `page_token` query parameters of
//! every listing.
//!
//! Input: one byte choosing the id prefix and whether a size and a token are given, four
//! bytes of size, then the token as text.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use netapi_core::service::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest};

const PREFIXES: [&str; 5] = ["usr", "key", "cli", "evt", ""];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((size_bytes, token_bytes)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let Ok(token) = std::str::from_utf8(token_bytes) else {
        return;
    };
    let prefix = PREFIXES[usize::from(selector & 0x0f) % PREFIXES.len()];
    let size = (selector & 0x10 != 0).then(|| u32::from_le_bytes(*size_bytes));
    let token = (selector & 0x20 != 0).then_some(token);

    let Ok(page) = PageRequest::parse(prefix, size, token) else {
        return;
    };
    assert!(
        (1..=MAX_PAGE_SIZE).contains(&page.size),
        "size {}",
        page.size
    );
    assert_eq!(page.size, size.unwrap_or(DEFAULT_PAGE_SIZE));
    assert_eq!(page.fetch_limit(), page.size + 1);
    match (&page.cursor, token) {
        (None, token) => assert!(token.is_none_or(str::is_empty), "token {token:?} ignored"),
        (Some(cursor), Some(token)) => {
            // The cursor is an id of the listing's kind, and the token its only spelling.
            let id = cursor
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('_'))
                .expect("the cursor has the listing's prefix");
            assert_eq!(id.len(), 20, "cursor {cursor:?}");
            assert!(
                id.bytes().all(|b| b.is_ascii_alphanumeric()),
                "cursor {cursor:?}"
            );
            assert_eq!(B64.encode(cursor), token);
        }
        (Some(cursor), None) => panic!("cursor {cursor:?} without a token"),
    }
    // A next page token that `page` hands out parses back to the item it names.
    let items: Vec<String> = (0..=page.size)
        .map(|n| format!("{prefix}_{n:020}"))
        .collect();
    let next = page.page(items, String::as_str);
    assert_eq!(next.items.len(), page.size as usize);
    let next_token = next
        .next_page_token
        .expect("an over-fetched list has a next page");
    let again = PageRequest::parse(prefix, size, Some(&next_token)).expect("own token parses");
    assert_eq!(
        again.cursor.as_deref(),
        next.items.last().map(String::as_str)
    );
});
