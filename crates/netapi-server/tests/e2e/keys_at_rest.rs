//! What a copy of the database gives an attacker (issue 11, item 5): signing keys are sealed
//! with a key kept outside it, a server with another key is refused at start, keys written in
//! plaintext by an earlier version are sealed at start, and a token that lives longer than
//! this server issues them is refused even when its signature is good.

use netapi_core::model::{SigningAlgorithm, SigningKey};
use netapi_core::sealing::{SecretKey, is_sealed};
use netapi_core::{Clock, Error, NetApi};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;

use crate::e2e;
use crate::helpers::{TestApp, expect_error, json_with};

e2e!(
    signing_keys_are_stored_sealed,
    a_server_with_another_secret_key_is_refused_at_start,
    plaintext_keys_of_an_earlier_version_are_sealed_at_start,
    tokens_living_longer_than_configured_are_refused,
);

async fn open_store(app: &TestApp) -> Arc<dyn netapi_core::Store> {
    netapi_store::open(&netapi_store::StoreOptions::new(&app.database_url), false)
        .await
        .expect("open store")
}

async fn signing_keys_are_stored_sealed(app: TestApp) {
    let store = open_store(&app).await;
    let stored = store
        .list_signing_keys(app.clock.now())
        .await
        .expect("keys");
    assert!(!stored.is_empty());
    for key in &stored {
        assert!(is_sealed(&key.private_key), "{} is not sealed", key.kid);
    }
    // The key that signs is the one in the database: a token it signed verifies.
    let key = app.member_key("sealed@example.com").await;
    let client = app
        .create_client(
            &key,
            json!({"client_name": "Sealed", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    let token = app.client_credentials_token(&client).await;
    json_with(app.get("/v1/users/me", &token).await, StatusCode::OK).await;
}

async fn a_server_with_another_secret_key_is_refused_at_start(app: TestApp) {
    let mut settings = app.api.settings().clone();
    settings.secret_key = SecretKey::generate();
    let intruder = NetApi::new(open_store(&app).await, app.clock.clone(), settings);
    let refused = intruder.start().await;
    assert!(
        matches!(&refused, Err(Error::Misconfigured(reason)) if reason.contains("secret key")),
        "{refused:?}"
    );
    // It made no signing key of its own on the way.
    let store = open_store(&app).await;
    let stored = store
        .list_signing_keys(app.clock.now())
        .await
        .expect("keys");
    assert_eq!(stored.len(), 2, "one of each algorithm");
    // The same key starts fine.
    let twin = NetApi::new(
        open_store(&app).await,
        app.clock.clone(),
        app.api.settings().clone(),
    );
    twin.start().await.expect("the same key starts");
}

async fn plaintext_keys_of_an_earlier_version_are_sealed_at_start(app: TestApp) {
    let store = open_store(&app).await;
    let now = app.clock.now();
    // A key as a version before sealing wrote it: the raw private key bytes.
    let legacy = SigningKey {
        kid: "sig_0legacy".to_owned(),
        alg: SigningAlgorithm::EdDsa,
        private_key: netapi_core::jwt::generate_key(SigningAlgorithm::EdDsa).expect("key"),
        created_at: now,
        active_from: now - 10,
        retire_at: None,
    };
    store.insert_signing_key(&legacy).await.expect("insert");
    // A token it signed before the upgrade.
    let ring =
        netapi_core::jwt::KeyRing::new(std::slice::from_ref(&legacy), SigningAlgorithm::EdDsa, now);
    let user_key = app.member_key("legacy@example.com").await;
    let me = json_with(app.get("/v1/users/me", &user_key).await, StatusCode::OK).await;
    let client = app
        .create_client(
            &user_key,
            json!({"client_name": "Legacy", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    let claims = json!({
        "iss": app.base, "aud": app.base, "sub": me["id"], "client_id": client["client_id"],
        "scope": "users:read", "jti": "legacy-token", "iat": now, "exp": now + 600,
    });
    let token = ring.sign("at+jwt", &claims).expect("signed");

    let upgraded = NetApi::new(
        open_store(&app).await,
        app.clock.clone(),
        app.api.settings().clone(),
    );
    upgraded.start().await.expect("start seals the legacy key");
    let stored = store.list_signing_keys(now).await.expect("keys");
    let sealed = stored
        .iter()
        .find(|k| k.kid == legacy.kid)
        .expect("still there");
    assert!(is_sealed(&sealed.private_key));
    assert!(
        !sealed
            .private_key
            .windows(legacy.private_key.len())
            .any(|w| w == legacy.private_key.as_slice())
    );
    // Sealing it changed nothing for the tokens it signed.
    let principal = upgraded
        .authenticate(&token, "192.0.2.1")
        .await
        .expect("the legacy token still verifies");
    assert_eq!(principal.user_id, me["id"].as_str().expect("id"));
    // A second start finds nothing left to seal and leaves the row alone.
    upgraded.start().await.expect("second start");
    let again = store.list_signing_keys(now).await.expect("keys");
    assert_eq!(
        again
            .iter()
            .find(|k| k.kid == legacy.kid)
            .map(|k| &k.private_key),
        Some(&sealed.private_key)
    );
}

async fn tokens_living_longer_than_configured_are_refused(app: TestApp) {
    let key = app.member_key("longlived@example.com").await;
    let me = json_with(app.get("/v1/users/me", &key).await, StatusCode::OK).await;
    let client = app
        .create_client(
            &key,
            json!({"client_name": "Long", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    let now = app.clock.now();
    let ttl = app.api.settings().access_token_ttl;
    let token_living = |seconds: i64, jti: &str| {
        let claims = json!({
            "iss": app.base, "aud": app.base, "sub": me["id"], "client_id": client["client_id"],
            "scope": "users:read", "jti": jti, "iat": now, "exp": now + seconds,
        });
        app.api.key_ring().sign("at+jwt", &claims).expect("signed")
    };
    // Signed with the server's own key, but ten years long: what a stolen key would mint.
    let decade = token_living(10 * 365 * 86_400, "decade");
    let body = expect_error(
        app.get("/v1/users/me", &decade).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    assert!(body.to_string().len() < 1000);
    // The leeway is five seconds, not more.
    let just_over = token_living(ttl + 6, "just-over");
    expect_error(
        app.get("/v1/users/me", &just_over).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    let within = token_living(ttl + 5, "within");
    json_with(app.get("/v1/users/me", &within).await, StatusCode::OK).await;
    // Introspection says the same.
    let introspected = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(
            client["client_id"].as_str().expect("id"),
            client["client_secret"].as_str(),
        )
        .form(&[("token", decade.as_str())])
        .send()
        .await
        .expect("introspect");
    assert_eq!(
        json_with(introspected, StatusCode::OK).await,
        json!({"active": false})
    );
}
