//! `POST /v1/keys/verify` (answer codes for a trusted service) and introspection of API keys.

use crate::e2e;
use crate::helpers::{Backend, TestApp, expect_error, json_with};
use netapi_core::Clock;
use netapi_core::clock::format_rfc3339;
use netapi_core::secret::{SecretKind, generate};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `rate` requests a minute per credential, three failures a minute per address.
async fn spawn_with_rate(backend: Backend, rate: u32) -> Option<TestApp> {
    TestApp::spawn_with(backend, |s| {
        s.rate_limit_per_minute = rate;
        s.auth_failure_limit = 3;
    })
    .await
}

/// A thousand requests a minute per credential: more than these tests send.
async fn unlimited(backend: Backend) -> Option<TestApp> {
    spawn_with_rate(backend, 1000).await
}

/// Three requests a minute per credential.
async fn three_a_minute(backend: Backend) -> Option<TestApp> {
    spawn_with_rate(backend, 3).await
}

e2e!(
    spawn = unlimited;
    answers_every_code,
    needs_the_admin_only_scope,
    a_malformed_request_is_400,
    failures_of_the_verified_key_lock_nobody_out,
    introspection_of_an_api_key_by_an_admins_client,
    introspection_of_an_api_key_by_a_members_client,
    introspection_of_an_access_token_counts_against_its_limit,
);
e2e!(spawn = three_a_minute; a_key_over_its_limit_is_rate_limited);

/// A key holding only `keys:verify`, with no per-minute limit, made by a new admin.
async fn verifier(app: &TestApp, email: &str) -> String {
    let admin = app.admin_key(email).await;
    let response = app
        .post_json(
            "/v1/api-keys",
            &admin,
            json!({ "name": "verifier", "scopes": ["keys:verify"], "rate_limit_per_minute": 0 }),
        )
        .await;
    json_with(response, StatusCode::CREATED).await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Verifies `body` with `verifier`; 200 expected.
async fn verify(app: &TestApp, verifier: &str, body: Value) -> Value {
    let response = app.post_json("/v1/keys/verify", verifier, body).await;
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    json_with(response, StatusCode::OK).await
}

fn assert_code(answer: &Value, code: &str) {
    assert_eq!(answer["code"], code, "{answer}");
    assert_eq!(answer["valid"], code == "VALID", "{answer}");
}

async fn answers_every_code(app: TestApp) {
    let verifier = verifier(&app, "verify-admin@example.com").await;
    let (user, key) = app.register("verify-member@example.com").await;
    let secret = key["key"].as_str().unwrap();

    let valid = verify(&app, &verifier, json!({ "key": secret })).await;
    assert_code(&valid, "VALID");
    assert_eq!(valid["key_id"], key["id"]);
    assert_eq!(valid["subject"], user["id"]);
    assert_eq!(valid["resource"], app.base.as_str());
    assert_eq!(valid["scopes"], key["scopes"]);
    assert_eq!(valid["expires_at"], Value::Null);
    assert_eq!(valid["ratelimit"]["limit"], 1000);
    assert_eq!(valid["ratelimit"]["remaining"], 999);
    assert!(
        !valid.to_string().contains(secret),
        "the key is never echoed"
    );
    let named = verify(
        &app,
        &verifier,
        json!({ "key": secret, "resource": app.base, "scopes": ["users:read", "keys:read"] }),
    )
    .await;
    assert_code(&named, "VALID");

    for scopes in [json!(["admin"]), json!(["users:read", "orders:read"])] {
        let answer = verify(&app, &verifier, json!({ "key": secret, "scopes": scopes })).await;
        assert_code(&answer, "INSUFFICIENT_SCOPE");
        assert_eq!(answer["key_id"], key["id"]);
    }
    let elsewhere = verify(
        &app,
        &verifier,
        json!({ "key": secret, "resource": "https://orders.example.com" }),
    )
    .await;
    assert_code(&elsewhere, "WRONG_RESOURCE");
    assert_eq!(elsewhere["resource"], app.base.as_str());
    assert!(elsewhere.get("ratelimit").is_none());

    let unknown = generate(SecretKind::ApiKey);
    for presented in ["nope", "", unknown.expose()] {
        let answer = verify(&app, &verifier, json!({ "key": presented })).await;
        assert_code(&answer, "NOT_FOUND");
        assert_eq!(answer.as_object().unwrap().len(), 2, "{answer}");
    }

    let expires_at = format_rfc3339(app.clock.now() + 60);
    let response = app
        .post_json(
            "/v1/api-keys",
            secret,
            json!({ "name": "short-lived", "expires_at": expires_at }),
        )
        .await;
    let short = json_with(response, StatusCode::CREATED).await;
    let short_secret = short["key"].as_str().unwrap();
    let before = verify(&app, &verifier, json!({ "key": short_secret })).await;
    assert_code(&before, "VALID");
    assert_eq!(before["expires_at"], expires_at.as_str());
    app.clock.advance(61);
    let after = verify(&app, &verifier, json!({ "key": short_secret })).await;
    assert_code(&after, "EXPIRED");

    // Revoked: refused at once, though the key was just verified (and cached).
    let revoked = app
        .delete(
            &format!("/v1/api-keys/{}", key["id"].as_str().unwrap()),
            secret,
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let answer = verify(&app, &verifier, json!({ "key": secret })).await;
    assert_code(&answer, "REVOKED");
    assert!(answer.get("scopes").is_none());
}

async fn needs_the_admin_only_scope(app: TestApp) {
    let member = app.member_key("verify-nobody@example.com").await;
    let (_, target) = app.register("verify-target@example.com").await;
    let body = json!({ "key": target["key"] });
    let refused = app
        .post_json("/v1/keys/verify", &member, body.clone())
        .await;
    let error = expect_error(refused, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert_eq!(error["error"]["details"][0]["missing_scope"], "keys:verify");
    // A member can never hold it: a key asking for it is refused.
    let asked = app
        .post_json(
            "/v1/api-keys",
            &member,
            json!({ "name": "sneaky", "scopes": ["keys:verify"] }),
        )
        .await;
    expect_error(asked, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    // An admin's key without it is refused too: the role alone is not enough.
    let admin = app.admin_key("verify-admin2@example.com").await;
    let response = app
        .post_json(
            "/v1/api-keys",
            &admin,
            json!({ "name": "narrow", "scopes": ["admin", "users:read"] }),
        )
        .await;
    let narrow = json_with(response, StatusCode::CREATED).await;
    let refused = app
        .post_json(
            "/v1/keys/verify",
            narrow["key"].as_str().unwrap(),
            body.clone(),
        )
        .await;
    expect_error(refused, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let anonymous = app
        .http
        .post(app.url("/v1/keys/verify"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    // The admin's own key has it, and discovery lists it.
    let answer = verify(&app, &admin, body).await;
    assert_code(&answer, "VALID");
    let discovery: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let supported = discovery["scopes_supported"].as_array().unwrap();
    assert!(supported.contains(&json!("keys:verify")), "{discovery}");
}

async fn a_malformed_request_is_400(app: TestApp) {
    let verifier = verifier(&app, "verify-bad@example.com").await;
    let key = app.member_key("verify-bad-member@example.com").await;
    let too_many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let long = format!("https://orders.example.com/{}", "a".repeat(2048));
    for body in [
        json!({}),
        json!({ "key": 42 }),
        json!({ "key": key, "surprise": true }),
        json!({ "key": key, "scopes": "users:read" }),
        json!({ "key": key, "scopes": ["Users:Read"] }),
        json!({ "key": key, "scopes": ["users:read", "users:read"] }),
        json!({ "key": key, "scopes": too_many }),
        json!({ "key": key, "resource": "orders" }),
        json!({ "key": key, "resource": "https://orders.example.com/#frag" }),
        json!({ "key": key, "resource": long }),
    ] {
        let response = app
            .post_json("/v1/keys/verify", &verifier, body.clone())
            .await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert!(!error.to_string().contains(&key), "{body}: {error}");
    }
    let not_json = app
        .http
        .post(app.url("/v1/keys/verify"))
        .bearer_auth(&verifier)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(not_json, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
}

async fn a_key_over_its_limit_is_rate_limited(app: TestApp) {
    let verifier = verifier(&app, "verify-limit@example.com").await;
    let key = app.member_key("verify-limit-member@example.com").await;
    for remaining in [2, 1, 0] {
        let answer = verify(&app, &verifier, json!({ "key": key })).await;
        assert_code(&answer, "VALID");
        assert_eq!(answer["ratelimit"]["remaining"], remaining);
    }
    let limited = verify(&app, &verifier, json!({ "key": key })).await;
    assert_code(&limited, "RATE_LIMITED");
    assert_eq!(limited["ratelimit"]["limit"], 3);
    assert_eq!(limited["ratelimit"]["remaining"], 0);
    let reset = limited["ratelimit"]["reset"].as_u64().unwrap();
    assert!((1..=60).contains(&reset), "{limited}");
    // One budget with `/v1` and forward auth.
    assert_eq!(
        app.get("/v1/users/me", &key).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(60);
    assert_code(
        &verify(&app, &verifier, json!({ "key": key })).await,
        "VALID",
    );
}

async fn failures_of_the_verified_key_lock_nobody_out(app: TestApp) {
    let verifier = verifier(&app, "verify-lock@example.com").await;
    let key = app.member_key("verify-lock-member@example.com").await;
    // Three failures a minute lock an address out of `/v1`; these are not the caller's.
    for _ in 0..5 {
        let answer = verify(
            &app,
            &verifier,
            json!({ "key": "napi_thisisnotakeyatallbutlooksalmostlikeone" }),
        )
        .await;
        assert_code(&answer, "NOT_FOUND");
    }
    assert_code(
        &verify(&app, &verifier, json!({ "key": key })).await,
        "VALID",
    );
    assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);
}

/// `POST /oauth/introspect` with `client`'s credentials.
async fn introspect(app: &TestApp, client: &Value, token: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    json_with(response, StatusCode::OK).await
}

fn confidential_client() -> Value {
    json!({
        "client_name": "Orders API",
        "redirect_uris": ["https://app.example.com/callback"],
        "grant_types": ["client_credentials"],
        "scope": "users:read",
        "token_endpoint_auth_method": "client_secret_basic",
    })
}

async fn introspection_of_an_api_key_by_an_admins_client(app: TestApp) {
    let admin = app.admin_key("introspect-admin@example.com").await;
    let client = app.create_client(&admin, confidential_client()).await;
    let (user, key) = app.register("introspect-member@example.com").await;
    let secret = key["key"].as_str().unwrap();

    let active = introspect(&app, &client, secret).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "api_key");
    assert_eq!(active["aud"], app.base.as_str());
    assert_eq!(active["iss"], app.base.as_str());
    assert_eq!(active["sub"], user["id"]);
    assert_eq!(active["key_id"], key["id"]);
    let scopes: Vec<&str> = key["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(active["scope"], scopes.join(" "));
    assert!(active.get("exp").is_none(), "{active}");
    assert!(!active.to_string().contains(secret));

    let expires_at = app.clock.now() + 3600;
    let response = app
        .post_json(
            "/v1/api-keys",
            secret,
            json!({ "name": "expiring", "expires_at": format_rfc3339(expires_at) }),
        )
        .await;
    let expiring = json_with(response, StatusCode::CREATED).await;
    let answer = introspect(&app, &client, expiring["key"].as_str().unwrap()).await;
    assert_eq!(answer["exp"], expires_at);

    let unknown = generate(SecretKind::ApiKey);
    for presented in [unknown.expose(), "napi_short"] {
        assert_eq!(
            introspect(&app, &client, presented).await,
            json!({ "active": false })
        );
    }
    let revoked = app
        .delete(
            &format!("/v1/api-keys/{}", key["id"].as_str().unwrap()),
            secret,
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        introspect(&app, &client, secret).await,
        json!({ "active": false })
    );

    // Introspection is a use of the key, as forward auth and verification are: counted in
    // its usage and against its per-minute limit.
    let limited = json_with(
        app.post_json(
            "/v1/api-keys",
            &admin,
            json!({ "name": "limited", "rate_limit_per_minute": 2 }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let limited_key = limited["key"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(introspect(&app, &client, limited_key).await["active"], true);
    }
    assert_eq!(
        introspect(&app, &client, limited_key).await,
        json!({ "active": false }),
        "over its limit"
    );
    app.clock.advance(60);
    assert_eq!(introspect(&app, &client, limited_key).await["active"], true);
    app.api.flush_usage().await.expect("flush");
    let usage = json_with(
        app.get(
            &format!(
                "/v1/api-keys/{}/usage?granularity=day",
                limited["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let counted = |outcome: &str| -> i64 {
        usage["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["counts"][outcome].as_i64().unwrap_or(0))
            .sum()
    };
    assert_eq!(counted("valid"), 3, "{usage}");
    assert_eq!(counted("rate_limited"), 1, "{usage}");
}

async fn introspection_of_an_api_key_by_a_members_client(app: TestApp) {
    let (_, key) = app.register("introspect-owner@example.com").await;
    let secret = key["key"].as_str().unwrap();
    let client = app.create_client(secret, confidential_client()).await;
    // Not even the client owner's own key.
    assert_eq!(
        introspect(&app, &client, secret).await,
        json!({ "active": false })
    );
    let other = app.member_key("introspect-other@example.com").await;
    assert_eq!(
        introspect(&app, &client, &other).await,
        json!({ "active": false })
    );
}

async fn introspection_of_an_access_token_counts_against_its_limit(app: TestApp) {
    let admin = app.admin_key("introspect-admin@example.com").await;
    let mut body = confidential_client();
    body["rate_limit_per_minute"] = json!(2);
    let client = app.create_client(&admin, body).await;
    assert_eq!(client["rate_limit_per_minute"], 2, "{client}");
    let token = app.client_credentials_token(&client).await;
    for _ in 0..2 {
        assert_eq!(introspect(&app, &client, &token).await["active"], true);
    }
    assert_eq!(
        introspect(&app, &client, &token).await,
        json!({ "active": false }),
        "over its client's limit, as an API key over its own"
    );
    // The same count as the token's other uses.
    assert_eq!(
        app.get("/v1/users/me", &token).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(60);
    assert_eq!(introspect(&app, &client, &token).await["active"], true);
}
