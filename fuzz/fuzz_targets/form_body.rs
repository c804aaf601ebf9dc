//! `oauth::parse_form`: `application/x-www-form-urlencoded` bodies of the OAuth endpoints,
//! where every parameter may appear at most once (RFC 6749 §3.2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netapi_server::oauth::parse_form;
use std::collections::HashMap;

fuzz_target!(|body: &[u8]| {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (name, _) in &pairs {
        *counts.entry(name).or_default() += 1;
    }
    match parse_form(body) {
        Ok(params) => {
            // Nothing repeated, nothing lost, nothing invented.
            assert!(
                counts.values().all(|&n| n == 1),
                "a repeated name was accepted"
            );
            assert_eq!(params.len(), pairs.len());
            for (name, value) in &pairs {
                assert_eq!(params.get(name), Some(value));
            }
            // What the server read is what a client encoding these parameters would send.
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &params {
                serializer.append_pair(name, value);
            }
            let reencoded = serializer.finish();
            assert_eq!(parse_form(reencoded.as_bytes()).as_ref(), Ok(&params));
        }
        Err(message) => {
            let repeated = counts.iter().find(|&(_, &n)| n > 1).map(|(name, _)| *name);
            assert!(
                repeated.is_some(),
                "refused a body without repeats: {message}"
            );
            assert!(message.starts_with("The parameter '"), "{message}");
        }
    }
});
