//! `Scopes::parse_space_separated`: the `scope` parameter of OAuth requests and of
//! client registration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netapi_core::{Scope, Scopes};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    match Scopes::parse_space_separated(text) {
        Ok(scopes) => {
            // Every word is a scope, and every scope of the set was named.
            for word in &words {
                let scope = Scope::parse(word).expect("only scope names are accepted");
                assert!(scopes.contains(scope));
            }
            for scope in scopes.iter() {
                assert!(words.contains(&scope.as_str()), "{scope} was not asked for");
            }
            assert_eq!(scopes.is_empty(), words.is_empty());
            // The canonical spelling round-trips, and storage keeps the same set.
            let canonical = scopes.to_string();
            assert_eq!(Scopes::parse_space_separated(&canonical), Ok(scopes));
            assert_eq!(Scopes::from_bits(scopes.bits()), scopes);
        }
        Err(unknown) => {
            // The first unknown word is named.
            let first = words.iter().find(|w| Scope::parse(w).is_none());
            assert_eq!(first, Some(&unknown.as_str()));
        }
    }
});
