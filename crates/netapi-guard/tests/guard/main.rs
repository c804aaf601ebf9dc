//! netapi-guard against a real Net API server: the orders example with API keys and access
//! tokens, audiences, scopes, revocation, expiry and signing-key rotation.

mod server;

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use netapi_guard::{CredentialKind, Guard, GuardConfig, RejectionKind, SetupError};
use netapi_testkit::json_with;
use reqwest::StatusCode;
use serde_json::json;
use server::{ORDERS, ORDERS_TOKEN_TTL, Server, refusal, start, start_rs256};

netapi_testkit::e2e!(
    spawn = start;
    keys_and_tokens_pass_with_their_scopes,
    a_missing_scope_is_403_with_the_scope_named,
    no_credential_or_a_bad_one_is_401,
    credentials_of_another_resource_are_refused,
    a_revoked_key_is_refused_once_the_cache_ttl_has_passed,
    with_a_zero_ttl_a_revoked_key_is_refused_at_once,
    the_verify_endpoint_checks_keys_too,
    a_verified_key_is_not_cached_past_its_expiry,
    an_expired_token_is_refused_after_at_most_five_seconds_of_leeway,
    introspecting_tokens_sees_their_revocation,
    a_rotated_signing_key_is_fetched_without_a_restart,
    the_principal_carries_the_key_and_its_metadata,
    a_guard_refuses_to_start_for_the_wrong_issuer,
);

netapi_testkit::e2e!(spawn = start_rs256; rs256_access_tokens_pass_offline);

/// With `signing_algorithm = RS256`, the guard takes the published RSA key and checks
/// tokens with it, without asking the server.
async fn rs256_access_tokens_pass_offline(server: Server) {
    let orders = server.orders_api(server.config()).await;
    let token = server.token(Some(ORDERS)).await;
    let header: serde_json::Value = serde_json::from_slice(
        &B64.decode(token.split('.').next().expect("header"))
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(header["alg"], "RS256");
    json_with(orders.get(Some(&token)).await, StatusCode::OK).await;
    // The same token relabelled EdDSA is refused before any signature check.
    let (_, rest) = token.split_once('.').expect("jwt");
    let relabelled =
        B64.encode(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": header["kid"]}).to_string());
    refusal(
        orders.get(Some(&format!("{relabelled}.{rest}"))).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
}

async fn keys_and_tokens_pass_with_their_scopes(server: Server) {
    let orders = server.orders_api(server.introspecting()).await;
    let key = server.orders_key(&server.admin_key, json!({})).await;
    let admin_id = server
        .api
        .authenticate(&server.admin_key, "127.0.0.1")
        .await
        .expect("admin")
        .user_id;

    let body = json_with(orders.get(key["key"].as_str()).await, StatusCode::OK).await;
    assert_eq!(
        body,
        json!({"subject": admin_id, "credential": "api_key", "scopes": ["orders:read", "orders:write"]})
    );
    let key = key["key"].as_str().expect("key");
    json_with(orders.post(key).await, StatusCode::OK).await;

    let token = server.token(Some(ORDERS)).await;
    let body = json_with(orders.get(Some(&token)).await, StatusCode::OK).await;
    assert_eq!(
        body,
        json!({"subject": admin_id, "credential": "access_token", "scopes": ["orders:read", "orders:write"]})
    );
    json_with(orders.post(&token).await, StatusCode::OK).await;
}

async fn a_missing_scope_is_403_with_the_scope_named(server: Server) {
    let orders = server.orders_api(server.introspecting()).await;
    let (_, member) = server.member("ada@example.com").await;
    let key = server.orders_key(&member, json!({})).await;
    assert_eq!(key["scopes"], json!(["orders:read"]), "self-service only");
    let key = key["key"].as_str().expect("key");

    json_with(orders.get(Some(key)).await, StatusCode::OK).await;
    let (body, challenge) = refusal(
        orders.post(key).await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    assert_eq!(
        body["error"]["details"],
        json!([{"missing_scope": "orders:write"}])
    );
    assert!(
        challenge.ends_with(", error=\"insufficient_scope\", scope=\"orders:write\""),
        "{challenge}"
    );
}

async fn no_credential_or_a_bad_one_is_401(server: Server) {
    let orders = server.orders_api(server.introspecting()).await;
    let (body, challenge) = refusal(
        orders.get(None).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"netapi\", resource_metadata=\"{}/.well-known/oauth-protected-resource?resource=https%3A%2F%2Forders.example.com\"",
            server.base
        )
    );
    assert_eq!(
        body["error"]["message"],
        "Authentication failed. Please check your API key or token."
    );
    // A key that does not exist (asked about), an invented one (refused by its checksum), a
    // forged token and garbage.
    let unknown = netapi_core::secret::generate(netapi_core::secret::SecretKind::ApiKey);
    for bad in [
        unknown.expose().to_owned(),
        format!("napi_{}", "A".repeat(38)),
        "eyJhbGciOiJFZERTQSJ9.e30.c2ln".to_owned(),
        "hello".to_owned(),
    ] {
        let (_, challenge) = refusal(
            orders.get(Some(&bad)).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
        )
        .await;
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(!challenge.contains(&bad));
    }
}

async fn credentials_of_another_resource_are_refused(server: Server) {
    let orders = server.orders_api(server.introspecting()).await;
    // Net API's own key and token (its own resource): valid at /v1, refused here.
    let (_, member) = server.member("ada@example.com").await;
    refusal(
        orders.get(Some(&member)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    let own_token = server.token(None).await;
    let (_, challenge) = refusal(
        orders.get(Some(&own_token)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    assert!(
        challenge.contains("error_description=\"The credential is for another resource.\""),
        "{challenge}"
    );

    // A guard for another resource refuses the orders credentials.
    let admin = server.admin_key.clone();
    server
        .post(
            "/v1/resources",
            &admin,
            json!({"identifier": "https://billing.example.com", "name": "Billing",
                   "scopes": [{"name": "orders:read", "description": "Same name, other API"}]}),
            StatusCode::CREATED,
        )
        .await;
    let billing = server
        .orders_api(
            GuardConfig::new(&server.base, "https://billing.example.com")
                .introspection(server.client_id(), server.client_secret()),
        )
        .await;
    let key = server.orders_key(&admin, json!({})).await;
    refusal(
        billing.get(key["key"].as_str()).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    let token = server.token(Some(ORDERS)).await;
    refusal(
        billing.get(Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
}

async fn a_revoked_key_is_refused_once_the_cache_ttl_has_passed(server: Server) {
    let orders = server
        .orders_api(server.introspecting().cache_ttl(Duration::from_secs(30)))
        .await;
    let key = server.orders_key(&server.admin_key, json!({})).await;
    let secret = key["key"].as_str().expect("key");
    json_with(orders.get(Some(secret)).await, StatusCode::OK).await;

    revoke_key(&server, key["id"].as_str().expect("id")).await;
    // Within the documented bound the cached answer stands...
    server.clock.advance(29);
    json_with(orders.get(Some(secret)).await, StatusCode::OK).await;
    // ...and not a second longer.
    server.clock.advance(1);
    refusal(
        orders.get(Some(secret)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
}

async fn with_a_zero_ttl_a_revoked_key_is_refused_at_once(server: Server) {
    let orders = server
        .orders_api(server.introspecting().cache_ttl(Duration::ZERO))
        .await;
    let key = server.orders_key(&server.admin_key, json!({})).await;
    let secret = key["key"].as_str().expect("key");
    json_with(orders.get(Some(secret)).await, StatusCode::OK).await;
    revoke_key(&server, key["id"].as_str().expect("id")).await;
    refusal(
        orders.get(Some(secret)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
}

async fn revoke_key(server: &Server, id: &str) {
    revoke_key_as(server, &server.admin_key, id).await;
}

async fn the_verify_endpoint_checks_keys_too(server: Server) {
    let verifier = server
        .post(
            "/v1/api-keys",
            &server.admin_key,
            json!({"name": "orders verifier", "scopes": ["keys:verify"]}),
            StatusCode::CREATED,
        )
        .await;
    let orders = server
        .orders_api(
            server
                .config()
                .verify_endpoint(verifier["key"].as_str().expect("key"))
                .cache_ttl(Duration::ZERO),
        )
        .await;
    let (_, member) = server.member("ada@example.com").await;
    let key = server.orders_key(&member, json!({})).await;
    let secret = key["key"].as_str().expect("key");
    let body = json_with(orders.get(Some(secret)).await, StatusCode::OK).await;
    assert_eq!(body["credential"], "api_key");
    assert_eq!(body["scopes"], json!(["orders:read"]));
    refusal(
        orders.post(secret).await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    // Net API's own key is for another resource.
    let (_, challenge) = refusal(
        orders.get(Some(&member)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    assert!(challenge.contains("another resource"), "{challenge}");
    revoke_key_as(&server, &member, key["id"].as_str().expect("id")).await;
    refusal(
        orders.get(Some(secret)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
}

async fn a_verified_key_is_not_cached_past_its_expiry(server: Server) {
    let verifier = server
        .post(
            "/v1/api-keys",
            &server.admin_key,
            json!({"name": "orders verifier", "scopes": ["keys:verify"]}),
            StatusCode::CREATED,
        )
        .await;
    let orders = server
        .orders_api(
            server
                .config()
                .verify_endpoint(verifier["key"].as_str().expect("key"))
                .cache_ttl(Duration::from_secs(600)),
        )
        .await;
    let expires_at = netapi_core::clock::format_rfc3339(server.app.api.now() + 30);
    let key = server
        .orders_key(&server.admin_key, json!({ "expires_at": expires_at }))
        .await;
    let secret = key["key"].as_str().expect("key");
    json_with(orders.get(Some(secret)).await, StatusCode::OK).await;
    server.clock.advance(29);
    json_with(orders.get(Some(secret)).await, StatusCode::OK).await;
    // The cached answer would be good for ten minutes; the key's expiry ends it.
    server.clock.advance(1);
    let (_, challenge) = refusal(
        orders.get(Some(secret)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    assert!(challenge.contains("expired"), "{challenge}");
}

async fn revoke_key_as(server: &Server, owner: &str, id: &str) {
    let response = server.delete(&format!("/v1/api-keys/{id}"), owner).await;
    assert!(response.status().is_success(), "{}", response.status());
}

async fn an_expired_token_is_refused_after_at_most_five_seconds_of_leeway(server: Server) {
    let orders = server.orders_api(server.config()).await;
    let token = server.token(Some(ORDERS)).await;
    json_with(orders.get(Some(&token)).await, StatusCode::OK).await;
    server.clock.advance(ORDERS_TOKEN_TTL + 4);
    json_with(orders.get(Some(&token)).await, StatusCode::OK).await;
    server.clock.advance(1);
    let (body, challenge) = refusal(
        orders.get(Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{body}"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // A smaller leeway refuses earlier; a larger one is capped at five seconds.
    let strict = server
        .orders_api(server.config().leeway(Duration::ZERO))
        .await;
    let lax = server
        .orders_api(server.config().leeway(Duration::from_secs(60)))
        .await;
    let token = server.token(Some(ORDERS)).await;
    server.clock.advance(ORDERS_TOKEN_TTL);
    refusal(
        strict.get(Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    json_with(lax.get(Some(&token)).await, StatusCode::OK).await;
    server.clock.advance(5);
    refusal(
        lax.get(Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
}

async fn introspecting_tokens_sees_their_revocation(server: Server) {
    let offline = server.orders_api(server.introspecting()).await;
    let online = server
        .orders_api(
            server
                .introspecting()
                .introspect_tokens(true)
                .cache_ttl(Duration::ZERO),
        )
        .await;
    let token = server.token(Some(ORDERS)).await;
    json_with(online.get(Some(&token)).await, StatusCode::OK).await;
    let response = server
        .http
        .post(server.url("/oauth/revoke"))
        .basic_auth(server.client_id(), Some(server.client_secret()))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
    refusal(
        online.get(Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    // Checked offline, a revoked token is good until it expires (as the docs say).
    json_with(offline.get(Some(&token)).await, StatusCode::OK).await;

    // Asking for token introspection without a client is a configuration error.
    assert!(matches!(
        Guard::discover(server.config().introspect_tokens(true)).await,
        Err(SetupError::Config(_))
    ));
}

async fn a_rotated_signing_key_is_fetched_without_a_restart(server: Server) {
    let orders = server
        .orders_api(
            server
                .config()
                .jwks_refetch_interval(Duration::from_secs(30)),
        )
        .await;
    let old = server.token(Some(ORDERS)).await;
    json_with(orders.get(Some(&old)).await, StatusCode::OK).await;

    // A token naming a made-up key spends the refetch allowance...
    server.clock.advance(30);
    let (_, rest) = old.split_once('.').expect("jwt");
    let header = B64.encode(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "made-up"}).to_string());
    let (_, challenge) = refusal(
        orders.get(Some(&format!("{header}.{rest}"))).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    assert!(challenge.contains("signing key is unknown"), "{challenge}");

    server.api.rotate_signing_keys().await.expect("rotate");
    let new = server.token(Some(ORDERS)).await;
    assert_ne!(kid(&new), kid(&old), "the new key signs");
    // ...so the new key is not fetched until the interval has passed (no hammering)...
    refusal(
        orders.get(Some(&new)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    server.clock.advance(30);
    // ...and then it is, without a restart; the old key is still published.
    json_with(orders.get(Some(&new)).await, StatusCode::OK).await;
    json_with(orders.get(Some(&old)).await, StatusCode::OK).await;
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(header).expect("base64")).expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

async fn the_principal_carries_the_key_and_its_metadata(server: Server) {
    let guard = Guard::discover(server.introspecting())
        .await
        .expect("guard");
    assert_eq!(guard.resource(), ORDERS);
    let key = server
        .orders_key(&server.admin_key, json!({"metadata": {"shop": 42}}))
        .await;
    let headers = bearer(key["key"].as_str().expect("key"));
    let principal = guard.authenticate(&headers).await.expect("valid");
    assert_eq!(principal.credential, CredentialKind::ApiKey);
    assert_eq!(principal.key_id.as_deref(), key["id"].as_str());
    assert_eq!(principal.metadata, Some(json!({"shop": 42})));
    assert_eq!(principal.client_id, None);

    let token = server.token(Some(ORDERS)).await;
    let principal = guard.authenticate(&bearer(&token)).await.expect("valid");
    assert_eq!(principal.credential, CredentialKind::AccessToken);
    assert_eq!(principal.client_id.as_deref(), Some(server.client_id()));
    assert_eq!(principal.key_id, None);
    assert!(principal.has_scope("orders:write"));
    assert_eq!(
        principal.expires_at,
        Some(netapi_core::Clock::now(&*server.clock) + ORDERS_TOKEN_TTL)
    );

    // Keys are refused, without asking anyone, by a guard that has no way to check them.
    let tokens_only = Guard::discover(server.config()).await.expect("guard");
    let refusal = tokens_only
        .authenticate(&headers)
        .await
        .expect_err("no key check");
    assert_eq!(
        refusal.kind(),
        &RejectionKind::InvalidToken {
            description: "API keys are not accepted here."
        }
    );
    assert_eq!(
        tokens_only
            .authenticate(&HeaderMap::new())
            .await
            .err()
            .map(|r| r.kind().clone()),
        Some(RejectionKind::Missing)
    );
}

fn bearer(credential: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {credential}")).expect("header"),
    );
    headers
}

async fn a_guard_refuses_to_start_for_the_wrong_issuer(server: Server) {
    let other_issuer = format!("{}/", server.base);
    assert!(matches!(
        Guard::discover(GuardConfig::new(other_issuer, ORDERS)).await,
        Err(SetupError::Issuer {
            what: "metadata",
            ..
        })
    ));
    assert!(matches!(
        Guard::discover(GuardConfig::new("ftp://example.com", ORDERS)).await,
        Err(SetupError::Config(_))
    ));
}

netapi_testkit::e2e!(
    spawn = start;
    a_dpop_bound_token_needs_a_proof_of_its_key,
    a_shared_replay_store_refuses_a_proof_at_every_instance,
    a_failing_replay_store_falls_back_to_the_process_memory,
);

/// An Ed25519 DPoP key of a client (ring), and proofs it signs.
struct DpopKey(ring::signature::Ed25519KeyPair);

impl DpopKey {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
        Self(ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse"))
    }

    fn proof(&self, method: &str, url: &str, token: Option<&str>, iat: i64) -> String {
        use ring::signature::KeyPair;
        use sha2::Digest;
        let jwk =
            json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(self.0.public_key().as_ref())});
        let mut claims = json!({
            "jti": B64.encode(ring::rand::generate::<[u8; 16]>(&ring::rand::SystemRandom::new()).expect("random").expose()),
            "htm": method, "htu": url, "iat": iat,
        });
        if let Some(token) = token {
            claims["ath"] = json!(B64.encode(sha2::Sha256::digest(token.as_bytes())));
        }
        let input = format!(
            "{}.{}",
            B64.encode(json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}).to_string()),
            B64.encode(claims.to_string())
        );
        format!(
            "{input}.{}",
            B64.encode(self.0.sign(input.as_bytes()).as_ref())
        )
    }
}

/// A DPoP-bound token for the orders API: refused as a bearer token, refused with another
/// key's proof, a replayed proof or one for another URL, accepted with a fresh proof of its
/// key for `GET https://orders.example.com/orders` (the resource's origin and the path).
async fn a_dpop_bound_token_needs_a_proof_of_its_key(server: Server) {
    let orders = server.orders_api(server.config()).await;
    let key = DpopKey::new();
    let now = server.api.now();
    let response = server
        .http
        .post(server.url("/oauth/token"))
        .basic_auth(server.client_id(), Some(server.client_secret()))
        .header(
            "DPoP",
            key.proof("POST", &server.url("/oauth/token"), None, now),
        )
        .form(&[("grant_type", "client_credentials"), ("resource", ORDERS)])
        .send()
        .await
        .expect("token");
    let tokens = json_with(response, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "DPoP");
    let token = tokens["access_token"].as_str().expect("token");
    let url = format!("{ORDERS}/orders");
    let get = |proof: Option<String>| {
        let mut request = server
            .http
            .get(orders.url("/orders"))
            .header("Authorization", format!("DPoP {token}"));
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        request.send()
    };
    let dpop_refusal = |response: reqwest::Response, error: &'static str| async move {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default();
        assert!(challenge.starts_with("DPoP algs="), "{challenge}");
        assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{challenge}"
        );
    };

    let bearer = orders.get(Some(token)).await;
    dpop_refusal(bearer, "invalid_token").await;
    dpop_refusal(get(None).await.expect("get"), "invalid_dpop_proof").await;
    let thief = DpopKey::new();
    dpop_refusal(
        get(Some(thief.proof("GET", &url, Some(token), now)))
            .await
            .expect("get"),
        "invalid_dpop_proof",
    )
    .await;
    dpop_refusal(
        get(Some(key.proof(
            "GET",
            &format!("{ORDERS}/other"),
            Some(token),
            now,
        )))
        .await
        .expect("get"),
        "invalid_dpop_proof",
    )
    .await;
    dpop_refusal(
        get(Some(key.proof("GET", &url, Some(token), now - 120)))
            .await
            .expect("get"),
        "invalid_dpop_proof",
    )
    .await;

    let proof = key.proof("GET", &url, Some(token), now);
    let body = json_with(get(Some(proof.clone())).await.expect("get"), StatusCode::OK).await;
    assert_eq!(body["credential"], "access_token");
    dpop_refusal(get(Some(proof)).await.expect("get"), "invalid_dpop_proof").await;

    // An API key is a bearer credential: not with the DPoP scheme.
    let api_key = server.orders_key(&server.admin_key, json!({})).await;
    let api_key = api_key["key"].as_str().expect("key");
    let response = server
        .http
        .get(orders.url("/orders"))
        .header("Authorization", format!("DPoP {api_key}"))
        .header("DPoP", key.proof("GET", &url, Some(api_key), now))
        .send()
        .await
        .expect("get");
    dpop_refusal(response, "invalid_token").await;
}

/// A `client_credentials` token for the orders API bound to `key`.
async fn dpop_token(server: &Server, key: &DpopKey) -> String {
    let response = server
        .http
        .post(server.url("/oauth/token"))
        .basic_auth(server.client_id(), Some(server.client_secret()))
        .header(
            "DPoP",
            key.proof("POST", &server.url("/oauth/token"), None, server.api.now()),
        )
        .form(&[("grant_type", "client_credentials"), ("resource", ORDERS)])
        .send()
        .await
        .expect("token");
    let tokens = json_with(response, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "DPoP");
    tokens["access_token"].as_str().expect("token").to_owned()
}

/// `GET /orders` on `orders` with a DPoP-bound token and `proof`; the status.
async fn get_with_proof(orders: &server::OrdersApi, token: &str, proof: &str) -> StatusCode {
    reqwest::Client::new()
        .get(orders.url("/orders"))
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", proof)
        .send()
        .await
        .expect("get")
        .status()
}

/// A replay store in memory standing in for Redis: what it was asked, and how it answers.
#[derive(Debug, Default)]
struct SharedStore {
    keys: std::sync::Mutex<Vec<(String, Duration)>>,
    failing: bool,
    hanging: bool,
}

impl netapi_guard::DpopReplayStore for SharedStore {
    fn insert_new<'a>(&'a self, key: &'a str, ttl: Duration) -> netapi_guard::InsertNew<'a> {
        Box::pin(async move {
            if self.hanging {
                std::future::pending::<()>().await;
            }
            if self.failing {
                return Err(netapi_guard::ReplayStoreError("connection refused".into()));
            }
            let mut keys = self.keys.lock().expect("lock");
            if keys.iter().any(|(seen, _)| seen == key) {
                return Ok(false);
            }
            keys.push((key.to_owned(), ttl));
            Ok(true)
        })
    }
}

/// Two instances of the orders API sharing one replay store: a proof accepted by one is
/// refused by the other, which without the store would take it (its own memory has not
/// seen it). The store is given a digest that lives as long as the proof could be used.
async fn a_shared_replay_store_refuses_a_proof_at_every_instance(server: Server) {
    let store = std::sync::Arc::new(SharedStore::default());
    let first = server
        .orders_api(server.config().dpop_replay_store(store.clone()))
        .await;
    let second = server
        .orders_api(server.config().dpop_replay_store(store.clone()))
        .await;
    let alone = server.orders_api(server.config()).await;
    let key = DpopKey::new();
    let token = dpop_token(&server, &key).await;
    let url = format!("{ORDERS}/orders");
    let proof = key.proof("GET", &url, Some(&token), server.api.now());

    assert_eq!(get_with_proof(&first, &token, &proof).await, StatusCode::OK);
    assert_eq!(
        get_with_proof(&second, &token, &proof).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_with_proof(&first, &token, &proof).await,
        StatusCode::UNAUTHORIZED
    );
    // An instance without the store knows nothing of it: what the store is for.
    assert_eq!(get_with_proof(&alone, &token, &proof).await, StatusCode::OK);

    let fresh = key.proof("GET", &url, Some(&token), server.api.now());
    assert_eq!(
        get_with_proof(&second, &token, &fresh).await,
        StatusCode::OK
    );
    let keys = store.keys.lock().expect("lock").clone();
    assert_eq!(keys.len(), 2, "one entry per accepted proof");
    for (stored, ttl) in &keys {
        assert_eq!(stored.len(), 43, "base64url of a SHA-256: {stored}");
        assert!(!proof.contains(stored.as_str()) && !token.contains(stored.as_str()));
        assert_eq!(
            *ttl,
            Duration::from_secs(66),
            "60 s of iat, 5 s of leeway, 1 s"
        );
    }
}

/// A replay store that fails, or does not answer in time, never refuses a good proof; the
/// instance's own memory still refuses the proof's second use.
async fn a_failing_replay_store_falls_back_to_the_process_memory(server: Server) {
    let failing = SharedStore {
        failing: true,
        ..SharedStore::default()
    };
    let hanging = SharedStore {
        hanging: true,
        ..SharedStore::default()
    };
    let key = DpopKey::new();
    let token = dpop_token(&server, &key).await;
    for store in [failing, hanging] {
        let config = server
            .config()
            .dpop_replay_store(std::sync::Arc::new(store))
            .dpop_replay_timeout(Duration::from_millis(20));
        let orders = server.orders_api(config).await;
        let url = format!("{ORDERS}/orders");
        let proof = key.proof("GET", &url, Some(&token), server.api.now());
        assert_eq!(
            get_with_proof(&orders, &token, &proof).await,
            StatusCode::OK
        );
        assert_eq!(
            get_with_proof(&orders, &token, &proof).await,
            StatusCode::UNAUTHORIZED
        );
    }
}
