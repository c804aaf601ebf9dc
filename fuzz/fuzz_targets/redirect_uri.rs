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
        uri.len() <= 2000 && uri.bytes().all(|b| b.is_ascii_graphic()),
        "long, or not printable ASCII: {uri:?}"
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
        "https" => match parsed.host() {
            // A name a resolver could look up: labels of letters, digits, `-` and `_`.
            Some(url::Host::Domain(name)) => assert!(
                name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                }),
                "not a host name: {uri:?}"
            ),
            Some(_) => {}
            None => panic!("https without a host: {uri:?}"),
        },
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
