//! What an attacker tries first: credential stuffing against the login page and the token
//! endpoint, telling known from unknown credentials by timing, and open redirects through
//! `redirect_uri` (and the login page's `return_to`).

use crate::e2e;
use crate::helpers::{
    Browser, PASSWORD, TestApp, expect_error, hidden_field, location_of, query_pairs,
};
use netapi_core::secret::{Secret, SecretHasher, SecretKind, check_format, generate};
use netapi_core::service::{ClientAuth, NewApiKey};
use netapi_core::{AuthFailure, Error};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Instant;

/// The failed-authentication limit of the credential-stuffing tests.
const LIMIT: usize = 5;

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn audit_events(app: &TestApp, kind: &str) -> Vec<netapi_core::model::AuditEvent> {
    app.api
        .store()
        .list_audit_events(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Credential stuffing

fn low_failure_limit(settings: &mut netapi_core::Settings) {
    settings.auth_failure_limit = u32::try_from(LIMIT).unwrap();
}

e2e!(settings = low_failure_limit; credential_stuffing_against_login_is_slowed_and_audited);

async fn credential_stuffing_against_login_is_slowed_and_audited(app: TestApp) {
    let mut ids = std::collections::HashMap::new();
    for email in ["amy@example.com", "ben@example.com", "cat@example.com"] {
        let (user, _) = app.register(email).await;
        ids.insert(email, user["id"].as_str().unwrap().to_owned());
    }
    // An attacker's list of leaked pairs, some for accounts that exist here, tried from one
    // address.
    let list = [
        ("amy@example.com", "leaked-password-1"),
        ("nobody@example.com", PASSWORD),
        ("ben@example.com", "123456789"),
        ("cat@example.com", "qwertyuiop"),
        ("ghost@example.com", "letmein!!"),
    ];
    assert_eq!(list.len(), LIMIT);
    let mut browser = Browser::new();
    let page = browser.get(&app, &app.url("/login")).await;
    let mut csrf = hidden_field(&page.text().await.unwrap(), "csrf_token");
    for (email, password) in list {
        let answer = browser
            .post(
                &app,
                "/login",
                &[
                    ("email", email),
                    ("password", password),
                    ("csrf_token", &csrf),
                    ("return_to", "/portal"),
                ],
            )
            .await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{email}");
        csrf = hidden_field(&answer.text().await.unwrap(), "csrf_token");
    }
    // Past the limit the address is refused before any password is checked, the right one
    // included, and nobody is signed in.
    let refused = browser
        .post(
            &app,
            "/login",
            &[
                ("email", "cat@example.com"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("return_to", "/portal"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&retry_after(&refused)));
    assert!(!browser.cookies.contains_key("netapi_session"));
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-in attempts")
    );
    // Every failure is in the audit log with the address, and the account when it exists;
    // no sign-in is.
    let failed = audit_events(&app, "user.login_failed").await;
    assert_eq!(failed.len(), LIMIT, "{failed:?}");
    assert!(failed.iter().all(|e| e.ip.as_deref() == Some("127.0.0.1")));
    let mut accounts: Vec<&str> = failed.iter().filter_map(|e| e.user_id.as_deref()).collect();
    accounts.sort_unstable();
    let mut expected = vec![
        ids["amy@example.com"].as_str(),
        ids["ben@example.com"].as_str(),
        ids["cat@example.com"].as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(accounts, expected);
    assert!(audit_events(&app, "user.login").await.is_empty());

    // The window is a minute on the server's clock.
    app.clock.advance(61);
    let page = browser.get(&app, &app.url("/login")).await;
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf_token");
    let signed_in = browser
        .post(
            &app,
            "/login",
            &[
                ("email", "cat@example.com"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("return_to", "/portal"),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(audit_events(&app, "user.login").await.len(), 1);

    // Spread over many addresses, each address is counted on its own (with this account):
    // someone else's failures never refuse the right password from another address.
    for n in 0..LIMIT {
        let attempt = app
            .api
            .login(
                "amy@example.com",
                &Secret::new(format!("guess number {n}")),
                &format!("203.0.113.{n}"),
            )
            .await;
        assert!(matches!(attempt, Err(Error::Unauthenticated(_))), "{n}");
    }
    let attempt = app
        .api
        .login("amy@example.com", &Secret::new(PASSWORD), "198.51.100.7")
        .await;
    assert!(attempt.is_ok(), "{attempt:?}");
    // One address guessing at one account is stopped at the limit, the right password too.
    for n in 0..LIMIT {
        let attempt = app
            .api
            .login(
                "amy@example.com",
                &Secret::new(format!("guess number {n}")),
                "203.0.113.200",
            )
            .await;
        assert!(matches!(attempt, Err(Error::Unauthenticated(_))), "{n}");
    }
    let attempt = app
        .api
        .login("amy@example.com", &Secret::new(PASSWORD), "203.0.113.200")
        .await;
    assert!(
        matches!(attempt, Err(Error::RateLimited { retry_after }) if (1..=60).contains(&retry_after)),
        "{attempt:?}"
    );
    let on_amy = audit_events(&app, "user.login_failed")
        .await
        .into_iter()
        .filter(|e| {
            e.user_id.as_deref() == Some(ids["amy@example.com"].as_str())
                && e.ip
                    .as_deref()
                    .is_some_and(|ip| ip.starts_with("203.0.113."))
        })
        .count();
    assert_eq!(on_amy, 2 * LIMIT);
}

e2e!(settings = low_failure_limit; credential_stuffing_against_the_token_endpoint_is_slowed_and_audited);

async fn credential_stuffing_against_the_token_endpoint_is_slowed_and_audited(app: TestApp) {
    let key = app.member_key("svc-owner@example.com").await;
    let body =
        json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"});
    let first = app.create_client(&key, body.clone()).await;
    let second = app.create_client(&key, body).await;
    let (first_id, first_secret) = (
        first["client_id"].as_str().unwrap(),
        first["client_secret"].as_str().unwrap(),
    );
    let (second_id, second_secret) = (
        second["client_id"].as_str().unwrap(),
        second["client_secret"].as_str().unwrap(),
    );
    let token = async |id: &str, secret: &str, basic: bool| {
        let request = app.http.post(app.url("/oauth/token"));
        let request = if basic {
            request
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
        } else {
            request.form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
        };
        request.send().await.unwrap()
    };
    // Guessed secrets for real clients and invented ones, in the header and in the body.
    let wrong = generate(SecretKind::ClientSecret);
    let attempts = [
        (first_id, wrong.expose(), true),
        (second_id, "napcs_guess", false),
        ("cli_0000000000000000000000", first_secret, true),
        (first_id, second_secret, false),
        (second_id, first_secret, true),
    ];
    assert_eq!(attempts.len(), LIMIT);
    for (id, secret, basic) in attempts {
        let answer = token(id, secret, basic).await;
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{id}: {body}");
        let expected = if basic {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status, expected, "{id}: {body}");
    }
    // Past the limit even the right secret is refused, at every endpoint that authenticates
    // clients, without being checked.
    let refused = token(first_id, first_secret, true).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&retry_after(&refused)));
    let introspect = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(second_id, Some(second_secret))
        .form(&[("token", "anything")])
        .send()
        .await
        .unwrap();
    assert_eq!(introspect.status(), StatusCode::TOO_MANY_REQUESTS);
    // Each failure is reported with the address and the client id that was tried.
    let failed = audit_events(&app, "oauth_client.authentication_failed").await;
    assert_eq!(failed.len(), LIMIT, "{failed:?}");
    assert!(failed.iter().all(|e| e.ip.as_deref() == Some("127.0.0.1")));
    let mut tried: Vec<String> = failed
        .iter()
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
            detail["client_id"].as_str().unwrap().to_owned()
        })
        .collect();
    tried.sort();
    let mut expected: Vec<String> = attempts.iter().map(|(id, _, _)| (*id).to_owned()).collect();
    expected.sort();
    assert_eq!(tried, expected);
    // No detail holds a secret that was tried.
    for event in &failed {
        for (_, secret, _) in attempts {
            assert!(!event.detail.contains(secret), "{}", event.detail);
        }
    }

    app.clock.advance(61);
    assert_eq!(
        token(first_id, first_secret, true).await.status(),
        StatusCode::OK
    );
    // From many addresses, each is counted on its own: the right secret from yet another
    // works, and only an address that used up its failures is refused.
    for n in 0..LIMIT {
        let auth = ClientAuth::Basic {
            id: second_id.to_owned(),
            secret: generate(SecretKind::ClientSecret),
        };
        let refused = app
            .api
            .authenticate_client(&auth, &format!("203.0.113.{n}"))
            .await
            .unwrap_err();
        assert!(refused.retry_after.is_none(), "{n}: {refused:?}");
    }
    let auth = ClientAuth::Basic {
        id: second_id.to_owned(),
        secret: Secret::new(second_secret),
    };
    assert!(
        app.api
            .authenticate_client(&auth, "198.51.100.7")
            .await
            .is_ok()
    );
    let wrong = ClientAuth::Basic {
        id: second_id.to_owned(),
        secret: generate(SecretKind::ClientSecret),
    };
    for _ in 0..LIMIT {
        let refused = app
            .api
            .authenticate_client(&wrong, "203.0.113.200")
            .await
            .unwrap_err();
        assert!(refused.retry_after.is_none(), "{refused:?}");
    }
    let refused = app
        .api
        .authenticate_client(&auth, "203.0.113.200")
        .await
        .unwrap_err();
    assert!(refused.retry_after.is_some(), "{refused:?}");
}

// ---------------------------------------------------------------------------------------------
// Timing
//
// These are statistical claims, never a single timing and never an absolute duration. Each
// sample is a pair, one of each case, taken back to back, in alternating order (AB, BA, AB...);
// the claim is on the median of the pairs' ratios. Both halves of a pair see the same machine
// (two shared cores, other tests running in parallel), and a delay that hits only one half (a
// time slice lost, a WAL checkpoint) is as likely to hit either, so it moves the ratio up as
// often as down and the median ignores it. Comparing the two cases' own medians is not as
// robust: on a loaded machine a sub-millisecond operation is either quick or delayed by a time
// slice, and when about half the samples are delayed each median lands in either mode by
// chance (seen: 101 µs against 210 µs for the same operation). The bound is a factor of two
// either way: wide for noise that cancels out, and still far tighter than what a leak looks
// like (skipping argon2 makes a refusal 50 to 100 times faster; a lookup by the public prefix,
// or a comparison that stops at the first wrong byte, adds a row fetch to a near miss).

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Seconds taken by each case, pair by pair.
struct Pairs {
    a: Vec<f64>,
    b: Vec<f64>,
}

/// Times `a(i)` and `b(i)` back to back, alternating which goes first, `warmup + n` times;
/// keeps the last `n` pairs.
async fn alternate<A, B>(n: usize, warmup: usize, mut a: A, mut b: B) -> Pairs
where
    A: AsyncFnMut(usize),
    B: AsyncFnMut(usize),
{
    let mut pairs = Pairs {
        a: Vec::with_capacity(n),
        b: Vec::with_capacity(n),
    };
    for i in 0..warmup + n {
        let a_first = i % 2 == 0;
        let mut took = [0.0; 2];
        for turn in 0..2 {
            let started = Instant::now();
            if (turn == 0) == a_first {
                a(i).await;
                took[0] = started.elapsed().as_secs_f64();
            } else {
                b(i).await;
                took[1] = started.elapsed().as_secs_f64();
            }
        }
        if i >= warmup {
            pairs.a.push(took[0]);
            pairs.b.push(took[1]);
        }
    }
    pairs
}

/// Asserts that case `b` takes between half and twice as long as case `a` (the median of the
/// pairs' ratios).
fn assert_alike(what: &str, (a, b): (&str, &str), mut pairs: Pairs) {
    let mut ratios: Vec<f64> = pairs.a.iter().zip(&pairs.b).map(|(a, b)| b / a).collect();
    let ratio = median(&mut ratios);
    let (median_a, median_b) = (median(&mut pairs.a) * 1e6, median(&mut pairs.b) * 1e6);
    let summary = format!(
        "{what}: {b} takes {ratio:.2} times as long as {a} (median of {} pairs' ratios; \
         medians {median_a:.1} µs and {median_b:.1} µs)",
        ratios.len()
    );
    eprintln!("{summary}");
    assert!((0.5..=2.0).contains(&ratio), "{summary}");
}

/// The CRC-32 (IEEE) behind a secret's checksum, to build near misses with a valid one.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `key` with its last two random characters replaced (variant `n`), checksum recomputed: a
/// well-formed key that shares the public prefix and 30 of 32 random characters with a real
/// one.
fn near_miss(key: &str, n: usize) -> String {
    let body_len = key.len() - 6;
    let mut body = key[..body_len - 2].to_owned();
    assert!(n < 62 * 31, "too many variants");
    let mut pair = [BASE62[n / 62], BASE62[n % 62]];
    if pair == key.as_bytes()[body_len - 2..body_len] {
        // Still unlike every other variant, whose first character is below 31.
        pair[0] = BASE62[61 - n / 62];
    }
    body.extend(pair.map(char::from));
    let mut sum = u64::from(crc32(body.as_bytes()));
    let mut digits = [b'0'; 6];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(sum % 62) as usize];
        sum /= 62;
    }
    body.extend(digits.map(char::from));
    assert_eq!(check_format(SecretKind::ApiKey, &body), Ok(()), "{body}");
    assert_ne!(body, key);
    body
}

crate::e2e!(refusing_a_key_takes_no_longer_for_a_known_one);

/// What the claim is for keys. A live key gets a 200, and a revoked one is answered "revoked"
/// (and written to its owner's audit log, so the owner sees a leaked key being tried): those
/// answers already differ from "not valid", on purpose, so their timing tells nothing more
/// (the audit row makes refusing a revoked key about ten times as slow as an unknown one on
/// PostgreSQL).
/// What must cost the same is every step an attacker without a key can reach:
/// 1. the storage lookup that decides, by HMAC digest: a stored (revoked) key's digest and a
///    digest nobody holds cost the same to look up, so existence is not visible below the
///    answer;
/// 2. the whole refusal of a well-formed unknown key, whether it is random or a near miss of a
///    live key (same public prefix, 30 of 32 random characters): the lookup is by digest, so
///    closeness to a real key cannot be measured character by character.
///
/// Each candidate is presented once, so every sample is a cache miss (the negative cache would
/// otherwise answer the second time in nanoseconds, for both cases alike).
async fn refusing_a_key_takes_no_longer_for_a_known_one(app: TestApp) {
    const N: usize = 200;
    const WARMUP: usize = 20;
    let key = app.member_key("timing@example.com").await;
    let owner = app.api.authenticate(&key, "192.0.2.1").await.unwrap();
    let hasher = SecretHasher::new(&app.api.settings().pepper);
    let mut revoked = Vec::new();
    for n in 0..N + WARMUP {
        let (made, secret) = app
            .api
            .create_api_key(
                &owner,
                NewApiKey {
                    name: format!("revoked {n}"),
                    ..NewApiKey::default()
                },
                None,
            )
            .await
            .unwrap();
        app.api
            .revoke_api_key(&owner, &made.id, None)
            .await
            .unwrap();
        revoked.push(hasher.hash(secret.expose()));
    }
    let unknown: Vec<_> = (0..N + WARMUP)
        .map(|_| hasher.hash(generate(SecretKind::ApiKey).expose()))
        .collect();
    let store = app.api.store().clone();
    let lookups = alternate(
        N,
        WARMUP,
        async |i| {
            let found = store.find_api_key(&revoked[i]).await.unwrap();
            assert!(found.is_some_and(|k| k.revoked_at.is_some()));
        },
        async |i| {
            assert!(store.find_api_key(&unknown[i]).await.unwrap().is_none());
        },
    )
    .await;
    assert_alike(
        &format!("{:?}: key lookup", app.backend),
        ("a stored revoked key", "an unknown key"),
        lookups,
    );

    // The whole refusal: a random unknown key against near misses of the live key.
    let random: Vec<String> = (0..N + WARMUP)
        .map(|_| generate(SecretKind::ApiKey).expose().to_owned())
        .collect();
    let near: Vec<String> = (0..N + WARMUP).map(|n| near_miss(&key, n)).collect();
    // A new address per sample keeps the failed-attempt limit out of the way.
    let refused = async |candidate: &str, i: usize, tag: u8| {
        let ip = format!("10.{tag}.{}.{}", i / 256, i % 256);
        let answer = app.api.authenticate(candidate, &ip).await;
        assert!(
            matches!(answer, Err(Error::Unauthenticated(AuthFailure::Unknown))),
            "{answer:?}"
        );
    };
    let refusals = alternate(
        N,
        WARMUP,
        async |i| refused(&random[i], i, 1).await,
        async |i| refused(&near[i], i, 2).await,
    )
    .await;
    assert_alike(
        &format!("{:?}: refusing an unknown key", app.backend),
        ("a random key", "a near miss of a live key"),
        refusals,
    );
}

crate::e2e!(an_unknown_email_costs_the_same_as_a_wrong_password);

/// For passwords the claim is that an unknown email costs the same argon2 work as a known one
/// with a wrong password, so the speed of "Invalid email or password." does not tell whether
/// the account exists. argon2 dominates both (tens of milliseconds against well under one
/// for the lookup and the audit row), so 30 pairs are plenty; a leak (no hashing for
/// unknown emails) would make them 50 times faster, and hashing twice (as the first dummy
/// verification does, hence the warm-up) twice as slow. Called in process, not over HTTP, to
/// keep the noise down.
async fn an_unknown_email_costs_the_same_as_a_wrong_password(app: TestApp) {
    const N: usize = 30;
    const WARMUP: usize = 3;
    app.register("known@example.com").await;
    let wrong = Secret::new("not the password at all");
    let logins = alternate(
        N,
        WARMUP,
        async |i| {
            let answer = app
                .api
                .login("known@example.com", &wrong, &format!("10.3.0.{i}"))
                .await;
            assert!(
                matches!(answer, Err(Error::Unauthenticated(_))),
                "{answer:?}"
            );
        },
        async |i| {
            let answer = app
                .api
                .login(
                    &format!("unknown{i}@example.com"),
                    &wrong,
                    &format!("10.4.0.{i}"),
                )
                .await;
            assert!(
                matches!(answer, Err(Error::Unauthenticated(_))),
                "{answer:?}"
            );
        },
    )
    .await;
    assert_alike(
        &format!("{:?}: refusing a login", app.backend),
        ("a known email with a wrong password", "an unknown email"),
        logins,
    );
}

// ---------------------------------------------------------------------------------------------
// Open redirects

const REGISTERED: &str = "https://app.example.com/cb";

/// Near misses of [`REGISTERED`] that a browser could be sent to. None may be redirected to.
const REDIRECT_TRICKS: &[&str] = &[
    // User information: the host is evil.example.
    "https://app.example.com@evil.example/cb",
    "https://app.example.com:443@evil.example/cb",
    "https://evil.example\\@app.example.com/cb",
    "https://evil.example%5C@app.example.com/cb",
    // Fragments.
    "https://app.example.com/cb#",
    "https://app.example.com/cb#@evil.example",
    "https://evil.example/#https://app.example.com/cb",
    // Encoded slashes and dot segments.
    "https://app.example.com%2F@evil.example/cb",
    "https://app.example.com%2f%2f@evil.example/cb",
    "https://app.example.com/cb/..%2F..%2Fevil",
    "https://app.example.com/cb/../../evil.example",
    "https://app.example.com/cb/%2e%2e/evil",
    "https://app.example.com/cb%2F..%2F..%2F%2Fevil.example",
    // Trailing dots and other spellings of the host.
    "https://app.example.com./cb",
    "https://app.example.com../cb",
    "https://APP.example.com/cb",
    "HTTPS://app.example.com/cb",
    "https://app.example.com.evil.example/cb",
    "https://app%2Eexample.com/cb",
    // Path, query, port and scheme changes.
    "https://app.example.com/CB",
    "https://app.example.com/cb/",
    "https://app.example.com/cb?x=1",
    "https://app.example.com/cb?",
    "https://app.example.com/cb%00",
    "https://app.example.com:8443/cb",
    "https://app.example.com:443/cb",
    "http://app.example.com/cb",
    "//app.example.com/cb",
    "https:app.example.com/cb",
    "https:/app.example.com/cb",
    " https://app.example.com/cb",
    "https://app.example.com/cb ",
    "https://app.example.com/cb\t",
    "https://app.example.com/c\nb",
    "https://evil.example/https://app.example.com/cb",
    "javascript:alert(1)//https://app.example.com/cb",
];

fn authorize_query(client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", "xyz")
        .append_pair("code_challenge", &"a".repeat(43))
        .append_pair("code_challenge_method", "S256");
    for (name, value) in extra {
        query.append_pair(name, value);
    }
    query.finish()
}

async fn web_app(app: &TestApp, key: &str) -> String {
    let client = app
        .create_client(
            key,
            json!({"client_name": "App", "redirect_uris": [REGISTERED], "scope": "openid users:read"}),
        )
        .await;
    client["client_id"].as_str().unwrap().to_owned()
}

async fn assert_error_page(app: &TestApp, query: &str, what: &str) {
    let response = app
        .http
        .get(app.url(&format!("/oauth/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "{what}: {query}"
    );
    assert!(
        response.headers().get("location").is_none(),
        "{what}: redirected to {:?}",
        response.headers().get("location")
    );
    let html = response.text().await.unwrap();
    assert!(
        html.contains("The redirect URI does not match"),
        "{what}: {html}"
    );
}

crate::e2e!(redirect_uri_tricks_get_an_error_page_never_a_redirect);

async fn redirect_uri_tricks_get_an_error_page_never_a_redirect(app: TestApp) {
    let key = app.member_key("redirects@example.com").await;
    let client_id = web_app(&app, &key).await;
    // The registered URI itself works: the sign-in page, and for errors that are the
    // client's to hear about, a page linking to it (the client is not marked trusted).
    let fine = app
        .http
        .get(app.url(&format!(
            "/oauth/authorize?{}",
            authorize_query(&client_id, REGISTERED, &[])
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), StatusCode::OK);
    let told = app
        .http
        .get(app.url(&format!(
            "/oauth/authorize?{}",
            authorize_query(&client_id, REGISTERED, &[("prompt", "none")])
        )))
        .send()
        .await
        .unwrap();
    assert!(
        crate::authorize::error_link(told)
            .await
            .starts_with(&format!("{REGISTERED}?error=login_required"))
    );

    for trick in REDIRECT_TRICKS {
        // As the value (form-encoded), with errors that would otherwise be redirected, and
        // pasted raw into the query, where the server decodes its escapes.
        for extra in [
            &[][..],
            &[("prompt", "none")][..],
            &[("scope", "admin")][..],
            &[("response_type", "token")][..],
        ] {
            assert_error_page(&app, &authorize_query(&client_id, trick, extra), trick).await;
        }
        let decoded = url::form_urlencoded::parse(format!("r={trick}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        // (Pasted raw, `app%2Eexample.com` is the registered URI itself, rightly accepted.)
        if decoded != REGISTERED && !trick.contains(['#', ' ', '\t', '\n', '&']) {
            let raw = format!(
                "response_type=code&client_id={client_id}&redirect_uri={trick}&state=xyz&code_challenge={}&code_challenge_method=S256",
                "a".repeat(43)
            );
            assert_error_page(&app, &raw, trick).await;
        }
    }
    // A repeated redirect_uri: whichever value is used, it is the one checked.
    for pair in [
        [REGISTERED, "https://evil.example/cb"],
        ["https://evil.example/cb", REGISTERED],
    ] {
        let mut query = authorize_query(&client_id, pair[0], &[("prompt", "none")]);
        query.push_str("&redirect_uri=");
        query.extend(url::form_urlencoded::byte_serialize(pair[1].as_bytes()));
        let response = app
            .http
            .get(app.url(&format!("/oauth/authorize?{query}")))
            .send()
            .await
            .unwrap();
        if let Some(to) = response.headers().get("location") {
            assert!(
                to.to_str().unwrap().starts_with(&format!("{REGISTERED}?")),
                "{pair:?}: {to:?}"
            );
        }
    }

    // The consent form re-checks the request it carries: a tampered one is an error page,
    // whether approved or denied.
    let mut browser = Browser::new();
    let login = browser
        .get(
            &app,
            &app.url(&format!(
                "/oauth/authorize?{}",
                authorize_query(&client_id, REGISTERED, &[])
            )),
        )
        .await;
    let html = login.text().await.unwrap();
    let signed_in = browser
        .post(
            &app,
            "/login",
            &[
                ("email", "redirects@example.com"),
                ("password", PASSWORD),
                ("csrf_token", &hidden_field(&html, "csrf_token")),
                ("return_to", &hidden_field(&html, "return_to")),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let consent = browser
        .get(&app, &app.url(&location_of(&signed_in)))
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden_field(&consent, "csrf_token");
    for trick in [
        "https://evil.example/cb",
        "https://app.example.com@evil.example/cb",
    ] {
        for decision in ["approve", "deny"] {
            let tampered = browser
                .post(
                    &app,
                    "/oauth/authorize",
                    &[
                        ("csrf_token", &csrf),
                        ("request", &authorize_query(&client_id, trick, &[])),
                        ("decision", decision),
                    ],
                )
                .await;
            assert_eq!(tampered.status(), StatusCode::BAD_REQUEST, "{trick}");
            assert!(tampered.headers().get("location").is_none(), "{trick}");
        }
    }
    // The untampered form still works, and goes where it should.
    let approved = browser
        .post(
            &app,
            "/oauth/authorize",
            &[
                ("csrf_token", &csrf),
                ("request", &hidden_field(&consent, "request")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert!(location_of(&approved).starts_with(&format!("{REGISTERED}?code=")));
    assert!(query_pairs(&location_of(&approved))["code"].starts_with("napac_"));
}

crate::e2e!(registration_refuses_redirect_uris_that_could_mislead);

async fn registration_refuses_redirect_uris_that_could_mislead(app: TestApp) {
    let key = app.member_key("registrar@example.com").await;
    let client_id = web_app(&app, &key).await;
    for bad in [
        "https://user@app.example.com/cb",
        "https://user:pass@app.example.com/cb",
        "https://app.example.com@evil.example/cb",
        "https://app.example.com%2F@evil.example/cb",
        "https://evil.example\\@app.example.com/cb",
        "http://localhost:8080@evil.example/cb",
        "https://app.example.com/cb#frag",
        "https://app.example.com/cb#",
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "javascript://app.example.com/%0Aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "https://app.example.com/a/../cb",
        "https://app.example.com/./cb",
        "https://app.example.com/%2e%2e/cb",
        "https://app.example.com/cb/..",
        "https://app.example.com//cb/../cb",
        "https://APP.example.com/cb",
        "HTTPS://app.example.com/cb",
        "https://app.example.com:443/cb",
        "https:app.example.com/cb",
        "https:/app.example.com/cb",
        " https://app.example.com/cb",
        "https://app.example.com/cb\n",
        "https://app.example.com/c\tb",
        "http://app.example.com/cb",
        "http://localhost.evil.example/cb",
        "http://127.0.0.1.evil.example/cb",
        "//app.example.com/cb",
        "/cb",
        "",
    ] {
        let created = app
            .post_json(
                "/v1/oauth-clients",
                &key,
                json!({"client_name": "Bad", "redirect_uris": [REGISTERED, bad]}),
            )
            .await;
        let body = expect_error(created, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert_eq!(
            body["error"]["details"][0]["field"], "redirect_uris",
            "{bad:?}: {body}"
        );
        let updated = app
            .http
            .patch(app.url(&format!("/v1/oauth-clients/{client_id}")))
            .bearer_auth(&key)
            .json(&json!({"redirect_uris": [bad]}))
            .send()
            .await
            .unwrap();
        expect_error(updated, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    }
    // Nothing was stored on the way.
    let client = app
        .get(&format!("/v1/oauth-clients/{client_id}"), &key)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(client["redirect_uris"], json!([REGISTERED]));
}

crate::e2e!(login_return_to_stays_on_this_site);

/// `return_to` (after signing in) only ever leads to a path of this site. Browsers drop tabs
/// and newlines anywhere in a URL and read `\` as `/`, so `/\t/evil.example` and
/// `/\evil.example` are both `//evil.example`: another site.
async fn login_return_to_stays_on_this_site(app: TestApp) {
    app.register("returns@example.com").await;
    let mut browser = Browser::new();
    for trick in [
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "/\t/evil.example/",
        "/\u{0}/evil.example/",
        "/\u{b}/evil.example/",
        "/\u{7f}/evil.example/",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
        " /evil.example",
    ] {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", trick)
            .finish();
        let page = browser
            .get(&app, &app.url(&format!("/login?{query}")))
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(hidden_field(&page, "return_to"), "/portal", "{trick:?}");
        let signed_in = browser
            .post(
                &app,
                "/login",
                &[
                    ("email", "returns@example.com"),
                    ("password", PASSWORD),
                    ("csrf_token", &hidden_field(&page, "csrf_token")),
                    ("return_to", trick),
                ],
            )
            .await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "{trick:?}");
        assert_eq!(location_of(&signed_in), "/portal", "{trick:?}");
    }
    // A path of this site is kept.
    let page = browser
        .get(&app, &app.url("/login?return_to=%2Fportal%3Ftab%3Dkeys"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(hidden_field(&page, "return_to"), "/portal?tab=keys");
}
