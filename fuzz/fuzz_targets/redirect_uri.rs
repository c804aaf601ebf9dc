//! `service::validate_redirect_uri`: the redirect URIs a client registers, against which
//! every authorization request's `redirect_uri` is compared exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netapi_core::service::validate_redirect_uri;

const FORBIDDEN_SCHEMES: [&str; 4] = ["javascript", "data", "file", "vbscript"];

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    if validate_redirect_uri(uri).is_err() {
        return;
    }
    assert!(!uri.contains('#'), "a fragment: {uri:?}");
    assert!(
        !uri.chars().any(char::is_control),
        "control characters: {uri:?}"
    );
    let (scheme, _) = uri.split_once(':').expect("an absolute URI has a scheme");
    if matches!(scheme, "http" | "https") {
        // In these schemes a browser drops whitespace, and reads `\` as `/` before the query
        // (where it could move the host): neither may be in an accepted URI.
        let before_query = uri.split('?').next().unwrap_or(uri);
        assert!(
            !uri.chars().any(char::is_whitespace) && !before_query.contains('\\'),
            "unnormalized characters: {uri:?}"
        );
    }
    assert!(
        !FORBIDDEN_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()),
        "forbidden scheme: {uri:?}"
    );
    let parsed = url::Url::parse(uri).expect("an accepted URI parses");
    assert_eq!(
        parsed.scheme(),
        scheme,
        "scheme not in normal form: {uri:?}"
    );
    assert!(
        parsed.as_str() == uri || parsed.as_str() == format!("{uri}/"),
        "not in normal form: {uri:?}"
    );
    assert!(
        parsed.username().is_empty() && parsed.password().is_none(),
        "user information: {uri:?}"
    );
    assert!(parsed.fragment().is_none(), "a fragment: {uri:?}");
    match scheme {
        "https" => assert!(parsed.host_str().is_some_and(|h| !h.is_empty()), "{uri:?}"),
        "http" => assert!(
            matches!(parsed.host_str(), Some("127.0.0.1" | "[::1]" | "localhost")),
            "http off loopback: {uri:?}"
        ),
        other => assert!(other.contains('.'), "an unexpected scheme: {uri:?}"),
    }
    // The normal form is itself accepted, so the exact comparison at /oauth/authorize
    // cannot be dodged by a second spelling.
    assert!(
        validate_redirect_uri(parsed.as_str()).is_ok(),
        "normal form {} refused",
        parsed.as_str()
    );
});
