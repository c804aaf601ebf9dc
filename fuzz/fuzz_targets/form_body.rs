//! `OAuthForm::decode`, `OAuthForm::parse` and the typed requests read from it (`TokenGrant`, `TokenTarget`,
//! `AuthorizationParams`): `application/x-www-form-urlencoded` bodies of the OAuth endpoints,
//! where every parameter may appear at most once (RFC 6749 §3.2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netapi_core::model::GrantType;
use netapi_core::service::{
    AuthorizationParams, OAuthForm, OAuthReason, TokenGrant, TokenTarget,
};
use std::collections::HashMap;

fuzz_target!(|body: &[u8]| {
    let pairs = OAuthForm::decode(body);
    // The same pairs as the `url` crate's decoder, which ours replaces for speed.
    let theirs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    assert_eq!(pairs, theirs, "decoded unlike form_urlencoded");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (name, _) in &pairs {
        *counts.entry(name).or_default() += 1;
    }
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    // Parsing the query of an authorization request never fails, and reads what was sent.
    let authorization = AuthorizationParams::parse(&pairs);
    if counts.get("client_id") == Some(&1) {
        assert_eq!(authorization.client_id.as_deref(), value("client_id"));
    }
    match OAuthForm::parse(&pairs) {
        Ok(form) => {
            assert!(
                counts.values().all(|&n| n == 1),
                "a repeated name was accepted"
            );
            // Nothing lost, nothing invented: what the typed requests read is what was sent.
            match TokenTarget::try_from(&form) {
                Ok(target) => assert_eq!(Some(target.token.expose()), value("token")),
                Err(error) => {
                    assert_eq!(error.reason, OAuthReason::MissingParameter("token"));
                    assert_eq!(value("token"), None);
                }
            }
            if let Ok(grant) = TokenGrant::try_from(&form) {
                assert_eq!(
                    Some(grant.grant_type()),
                    value("grant_type").and_then(GrantType::parse)
                );
            }
            // What the server read is what a client encoding these parameters would send.
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &pairs {
                serializer.append_pair(name, value);
            }
            let reencoded = serializer.finish();
            assert_eq!(OAuthForm::decode(reencoded.as_bytes()), pairs);
        }
        Err(error) => match error.reason {
            OAuthReason::SeveralResources => assert!(
                counts.get("resource") > Some(&1) || counts.get("audience") > Some(&1)
            ),
            OAuthReason::RepeatedParameter(echoed) => assert!(
                counts
                    .iter()
                    .any(|(name, &n)| n > 1 && name.starts_with(echoed.as_str())),
                "refused a body without that repeat: {echoed}"
            ),
            other => panic!("refused for {other:?}"),
        },
    }
});
