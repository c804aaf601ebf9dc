//! `POST /secret-scanning/github`: reports signed by a P-256 key pair the test makes itself,
//! standing in for GitHub's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use netapi_core::secret::{SecretKind, generate};
use netapi_core::{Error, NetApi, Settings};
use reqwest::{Response, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::e2e;
use crate::helpers::{TestApp, expect_error, json_with};
use crate::webhooks;

const KEY_ID: &str = "test-github-key-1";

/// The SubjectPublicKeyInfo header of an uncompressed P-256 key (RFC 5480), before the point.
const SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn new_key_pair() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

/// The key pair standing in for GitHub's, one per test process.
fn github() -> &'static EcdsaKeyPair {
    static PAIR: OnceLock<EcdsaKeyPair> = OnceLock::new();
    PAIR.get_or_init(new_key_pair)
}

fn pem_of(pair: &EcdsaKeyPair) -> String {
    let mut der = SPKI_HEADER.to_vec();
    der.extend_from_slice(pair.public_key().as_ref());
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

/// Writes GitHub's JSON for these keys to `path`.
fn write_key_file(path: &Path, keys: &[(&str, &EcdsaKeyPair)]) {
    let public_keys: Vec<Value> = keys
        .iter()
        .map(|(id, pair)| json!({ "key_identifier": id, "key": pem_of(pair), "is_current": true }))
        .collect();
    std::fs::write(path, json!({ "public_keys": public_keys }).to_string()).unwrap();
}

/// Turns the endpoint on with a key file of the test's own key, one file per server (a test
/// may rewrite its own).
fn with_github_keys(settings: &mut Settings) {
    let path = std::env::temp_dir().join(format!(
        "netapi-e2e-github-keys-{}.json",
        netapi_core::secret::random_base62(12)
    ));
    write_key_file(&path, &[(KEY_ID, github())]);
    settings.secret_scanning_github_keys = Some(path);
}

fn with_github_keys_and_webhooks(settings: &mut Settings) {
    with_github_keys(settings);
    webhooks::allow_private(settings);
}

fn key_file_of(app: &TestApp) -> PathBuf {
    app.api
        .settings()
        .secret_scanning_github_keys
        .clone()
        .unwrap()
}

fn sign(pair: &EcdsaKeyPair, body: &str) -> String {
    let signature = pair.sign(&SystemRandom::new(), body.as_bytes()).unwrap();
    STANDARD.encode(signature.as_ref())
}

/// Posts `body` with the signature headers as given.
async fn post(
    app: &TestApp,
    body: &str,
    identifier: Option<&str>,
    signature: Option<&str>,
) -> Response {
    let mut request = app
        .http
        .post(app.url("/secret-scanning/github"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(identifier) = identifier {
        request = request.header("Github-Public-Key-Identifier", identifier);
    }
    if let Some(signature) = signature {
        request = request.header("Github-Public-Key-Signature", signature);
    }
    request.send().await.unwrap()
}

/// Posts `body` signed as GitHub would.
async fn report(app: &TestApp, body: &str) -> Response {
    post(app, body, Some(KEY_ID), Some(&sign(github(), body))).await
}

/// GitHub's body: one entry per token.
fn batch(tokens: &[&str]) -> String {
    let entries: Vec<Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            json!({
                "token": token,
                "type": "netapi_api_key",
                "url": format!("https://github.com/octocat/leaky/blob/abc123/config.py#L{i}"),
                "source": "content",
            })
        })
        .collect();
    Value::Array(entries).to_string()
}

fn labels(answer: &Value) -> Vec<(&str, &str)> {
    answer
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["token_raw"].as_str().unwrap(),
                v["label"].as_str().unwrap(),
            )
        })
        .collect()
}

async fn status_of(app: &TestApp, key: &str) -> StatusCode {
    app.get("/v1/users/me", key).await.status()
}

/// The `api_key.leaked` events, as an administrator sees them.
async fn leaked_events(app: &TestApp, admin: &str) -> Vec<Value> {
    let listing = json_with(
        app.get("/v1/audit-events?page_size=100", admin).await,
        StatusCode::OK,
    )
    .await;
    listing["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "api_key.leaked")
        .cloned()
        .collect()
}

e2e!(
    settings = with_github_keys;
    a_signed_report_revokes_real_keys_at_once,
    a_repeated_report_gets_the_same_answer,
    a_bad_signature_is_refused_and_revokes_nothing,
    an_unknown_key_identifier_is_refused_until_the_key_file_has_it,
    oversized_and_malformed_reports_are_refused,
);

e2e!(
    settings = with_github_keys_and_webhooks;
    a_leaked_key_reaches_webhooks,
);

e2e!(
    without_the_setting_the_endpoint_is_off,
    a_key_file_that_cannot_be_used_stops_the_start,
);

async fn a_signed_report_revokes_real_keys_at_once(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (user, key) = app.register("ada@example.com").await;
    let leaked = key["key"].as_str().unwrap();
    // In the cache before the report: revocation must not wait for it to expire.
    assert_eq!(status_of(&app, leaked).await, StatusCode::OK);
    let unknown = generate(SecretKind::ApiKey);
    let bad_checksum = format!("napi_{}", "a".repeat(38));
    let body = batch(&[
        leaked,
        unknown.expose(),
        &bad_checksum,
        "napi_short",
        "ghp_not_ours",
    ]);

    let response = report(&app, &body).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer = json_with(response, StatusCode::OK).await;
    assert_eq!(
        labels(&answer),
        [
            (leaked, "true_positive"),
            (unknown.expose(), "false_positive"),
            (bad_checksum.as_str(), "false_positive"),
            ("napi_short", "false_positive"),
            ("ghp_not_ours", "false_positive"),
        ]
    );
    assert!(
        answer
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["token_type"] == "netapi_api_key")
    );

    // Refused at once, by the process that cached it.
    expect_error(
        app.get("/v1/users/me", leaked).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    // The administrator keeps working; the owner sees the event, without the key.
    let events = leaked_events(&app, &admin).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["user_id"], user["id"]);
    assert_eq!(event["detail"]["api_key_id"], key["id"]);
    assert_eq!(event["detail"]["source"], "content");
    assert_eq!(event["detail"]["reported_by"], "github_secret_scanning");
    assert_eq!(
        event["detail"]["url"],
        "https://github.com/octocat/leaky/blob/abc123/config.py#L0"
    );
    assert!(!event.to_string().contains(leaked));
}

async fn a_repeated_report_gets_the_same_answer(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let leaked = app.member_key("ada@example.com").await;
    let (_, revoked_before) = app.register("bob@example.com").await;
    let revoked_before_key = revoked_before["key"].as_str().unwrap();
    let response = app
        .delete(
            &format!("/v1/api-keys/{}", revoked_before["id"].as_str().unwrap()),
            revoked_before_key,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let unknown = generate(SecretKind::ApiKey);
    // The same key twice in one report (found in two files), a key its owner revoked.
    let body = batch(&[&leaked, unknown.expose(), &leaked, revoked_before_key]);

    let first = json_with(report(&app, &body).await, StatusCode::OK).await;
    let second = json_with(report(&app, &body).await, StatusCode::OK).await;
    assert_eq!(first, second);
    assert_eq!(
        labels(&first),
        [
            (leaked.as_str(), "true_positive"),
            (unknown.expose(), "false_positive"),
            (leaked.as_str(), "true_positive"),
            (revoked_before_key, "true_positive"),
        ]
    );
    // One event for the one key this report revoked, however often it came.
    assert_eq!(leaked_events(&app, &admin).await.len(), 1);
    assert_eq!(status_of(&app, &leaked).await, StatusCode::UNAUTHORIZED);
}

async fn a_bad_signature_is_refused_and_revokes_nothing(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let body = batch(&[&key]);
    let other_body = batch(&[&key, "napi_short"]);
    let forger = new_key_pair();
    let cases: [(Option<&str>, Option<String>); 6] = [
        // Signed over another body (a replayed signature on an edited report).
        (Some(KEY_ID), Some(sign(github(), &other_body))),
        // Signed by another key under GitHub's identifier.
        (Some(KEY_ID), Some(sign(&forger, &body))),
        (Some(KEY_ID), Some("not base64!".to_owned())),
        (Some(KEY_ID), Some("A".repeat(4096))),
        (Some(KEY_ID), None),
        (None, Some(sign(github(), &body))),
    ];
    for (identifier, signature) in cases {
        let response = post(&app, &body, identifier, signature.as_deref()).await;
        expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    }
    // The signature is checked before the body is parsed: unsigned garbage is a 401, not a 400.
    let garbage = post(&app, "not json", Some(KEY_ID), Some(&sign(github(), &body))).await;
    expect_error(garbage, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    assert_eq!(status_of(&app, &key).await, StatusCode::OK);
}

async fn an_unknown_key_identifier_is_refused_until_the_key_file_has_it(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let body = batch(&[&key]);
    let rotated = new_key_pair();
    let refused = post(
        &app,
        &body,
        Some("test-github-key-2"),
        Some(&sign(&rotated, &body)),
    )
    .await;
    let error = expect_error(refused, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Identifier"),
        "{error}"
    );
    assert_eq!(status_of(&app, &key).await, StatusCode::OK);

    // GitHub rotates its keys: the operator updates the file. An unknown identifier reads
    // it again, but at most once a minute.
    write_key_file(
        &key_file_of(&app),
        &[(KEY_ID, github()), ("test-github-key-2", &rotated)],
    );
    let too_soon = post(
        &app,
        &body,
        Some("test-github-key-2"),
        Some(&sign(&rotated, &body)),
    )
    .await;
    expect_error(too_soon, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    app.clock.advance(61);
    let answer = json_with(
        post(
            &app,
            &body,
            Some("test-github-key-2"),
            Some(&sign(&rotated, &body)),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(labels(&answer), [(key.as_str(), "true_positive")]);
    assert_eq!(status_of(&app, &key).await, StatusCode::UNAUTHORIZED);
}

async fn oversized_and_malformed_reports_are_refused(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    // Over the body limit (64 KiB by default): refused before the signature is looked at.
    let huge = batch(&vec![key.as_str(); 2000]);
    assert!(huge.len() > 64 * 1024);
    expect_error(
        report(&app, &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
    // Within it, but more tokens than a report may have.
    let many = Value::Array(vec![json!({ "token": "", "type": "t" }); 1001]).to_string();
    expect_error(
        report(&app, &many).await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    // Signed garbage is a 400, never a 500.
    for body in [
        "",
        "not json",
        "{}",
        r#"[{"token": 1, "type": "t"}]"#,
        r#"[{"type": "t"}]"#,
        "[null]",
    ] {
        expect_error(
            report(&app, body).await,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        )
        .await;
    }
    assert_eq!(status_of(&app, &key).await, StatusCode::OK);
    // An empty report is a report.
    assert_eq!(
        json_with(report(&app, "[]").await, StatusCode::OK).await,
        json!([])
    );
}

async fn without_the_setting_the_endpoint_is_off(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let body = batch(&[&key]);
    let error = expect_error(
        report(&app, &body).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("secret_scanning_github_keys"), "{message}");
    assert_eq!(status_of(&app, &key).await, StatusCode::OK);
}

async fn a_key_file_that_cannot_be_used_stops_the_start(app: TestApp) {
    let not_keys = std::env::temp_dir().join(format!(
        "netapi-e2e-not-github-keys-{}.json",
        netapi_core::secret::random_base62(12)
    ));
    std::fs::write(
        &not_keys,
        r#"{"public_keys": [{"key_identifier": "k", "key": "nope"}]}"#,
    )
    .unwrap();
    for path in [PathBuf::from("/nonexistent/github-keys.json"), not_keys] {
        let store = netapi_store::open(&netapi_store::StoreOptions::new(&app.database_url), false)
            .await
            .unwrap();
        let settings = Settings {
            secret_scanning_github_keys: Some(path.clone()),
            ..Settings::default()
        };
        let api = NetApi::new(store, app.clock.clone(), settings);
        match api.start().await {
            Err(Error::Misconfigured(reason)) => {
                assert!(reason.contains("secret_scanning_github_keys"), "{reason}");
                assert!(reason.contains(&path.display().to_string()), "{reason}");
            }
            other => panic!("started with {}: {other:?}", path.display()),
        }
    }
}

async fn a_leaked_key_reaches_webhooks(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (url, mut rx) = webhooks::start_receiver(&[]).await;
    let webhook = webhooks::create_webhook(&app, &admin, &url, &["api_key.leaked"]).await;
    let secret = webhook["secret"].as_str().unwrap();
    let (user, key) = app.register("ada@example.com").await;
    let leaked = key["key"].as_str().unwrap();
    let body = batch(&[leaked]);
    json_with(report(&app, &body).await, StatusCode::OK).await;
    // Reported again (GitHub may): the key is revoked already, so no second event.
    json_with(report(&app, &body).await, StatusCode::OK).await;

    app.api
        .deliver_webhooks(&netapi_server::webhooks::HttpWebhookClient)
        .await
        .unwrap();
    let received = webhooks::next(&mut rx).await;
    webhooks::assert_signed(&received, secret);
    let event = received.json();
    assert_eq!(event["type"], "api_key.leaked");
    assert_eq!(event["data"]["api_key_id"], key["id"]);
    assert_eq!(event["data"]["user_id"], user["id"]);
    assert_eq!(event["data"]["reported_by"], "github_secret_scanning");
    assert_eq!(event["data"]["source"], "content");
    assert_eq!(
        event["data"]["url"],
        "https://github.com/octocat/leaky/blob/abc123/config.py#L0"
    );
    assert!(!received.body.contains(leaked), "never the key itself");
    let listed: Value = app
        .get(
            &format!(
                "/v1/webhooks/{}/deliveries",
                webhook["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["deliveries"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}
