//! Forward auth (`/auth/forward`) for reverse proxies and RFC 9728 metadata; real proxies in
//! front of it in `proxies`.

use crate::e2e;
use crate::helpers::{Backend, TestApp, expect_error, json_with};
use reqwest::{Response, StatusCode};
use serde_json::json;

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn metadata_url(app: &TestApp) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(app.base.as_bytes()).collect();
    format!(
        "{}/.well-known/oauth-protected-resource?resource={encoded}",
        app.base
    )
}

/// `GET /auth/forward?resource=<issuer>&scope=<scope>` with `bearer` (if any).
async fn forward(app: &TestApp, bearer: Option<&str>, scope: &str) -> Response {
    let mut request = app
        .http
        .get(app.url("/auth/forward"))
        .query(&[("resource", app.base.as_str()), ("scope", scope)])
        .header("X-Original-Method", "GET")
        .header("X-Original-URI", "/orders/42?secret=never-logged");
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap()
}

async fn grants_an_api_key_with_the_identity_headers(app: TestApp) {
    let (user, key) = app.register("fwd@example.com").await;
    let secret = key["key"].as_str().unwrap();
    let response = forward(&app, Some(secret), "users:read keys:read").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-netapi-subject"), user["id"]);
    assert_eq!(header(&response, "x-netapi-credential"), "api_key");
    assert_eq!(header(&response, "x-netapi-key-id"), key["id"]);
    assert!(response.headers().get("x-netapi-client-id").is_none());
    let scopes = header(&response, "x-netapi-scopes");
    assert!(scopes.split(' ').any(|s| s == "users:read"), "{scopes}");
    assert!(!scopes.split(' ').any(|s| s == "admin"), "{scopes}");
    assert_eq!(header(&response, "x-netapi-resource"), app.base);
    assert_eq!(header(&response, "cache-control"), "no-store");
    assert_eq!(response.text().await.unwrap(), "");

    // Without `resource`: Net API's own; without `scope`: none required; any method.
    let bare = app
        .http
        .post(app.url("/auth/forward"))
        .bearer_auth(secret)
        .body("ignored")
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::OK);
    assert_eq!(header(&bare, "x-netapi-resource"), app.base);

    // Envoy's shape: the original path appended, resource and scopes in headers.
    let envoy = app
        .http
        .delete(app.url("/auth/forward/orders/42?x=1"))
        .bearer_auth(secret)
        .header("X-Netapi-Resource", &app.base)
        .header("X-Netapi-Scope", "users:read")
        .header("X-Forwarded-Method", "DELETE")
        .header("X-Forwarded-Uri", "/orders/42?x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(envoy.status(), StatusCode::OK);
    assert_eq!(header(&envoy, "x-netapi-subject"), user["id"]);
    let envoy_denied = app
        .http
        .get(app.url("/auth/forward/orders"))
        .bearer_auth(secret)
        .header("X-Netapi-Scope", "admin")
        .send()
        .await
        .unwrap();
    expect_error(envoy_denied, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
}

async fn grants_an_access_token_naming_its_client(app: TestApp) {
    let (user, key) = app.register("fwd-token@example.com").await;
    let client = app
        .create_client(
            key["key"].as_str().unwrap(),
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    let token = app.client_credentials_token(&client).await;
    let response = forward(&app, Some(&token), "users:read").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-netapi-subject"), user["id"]);
    assert_eq!(header(&response, "x-netapi-credential"), "access_token");
    assert_eq!(header(&response, "x-netapi-client-id"), client["client_id"]);
    assert!(response.headers().get("x-netapi-key-id").is_none());
    assert_eq!(header(&response, "x-netapi-scopes"), "users:read");

    let denied = forward(&app, Some(&token), "users:read keys:write").await;
    assert_eq!(
        header(&denied, "www-authenticate"),
        format!(
            "Bearer realm=\"netapi\", resource_metadata=\"{}\", error=\"insufficient_scope\", scope=\"users:read keys:write\"",
            metadata_url(&app)
        )
    );
    let body = expect_error(denied, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert_eq!(
        body["error"]["details"],
        json!([{"missing_scope": "keys:write"}])
    );
}

async fn refuses_in_the_contract_shapes(app: TestApp) {
    let key = app.member_key("fwd-refused@example.com").await;

    let missing = forward(&app, None, "").await;
    assert_eq!(
        header(&missing, "www-authenticate"),
        format!(
            "Bearer realm=\"netapi\", resource_metadata=\"{}\"",
            metadata_url(&app)
        )
    );
    assert_eq!(header(&missing, "cache-control"), "no-store");
    let body = expect_error(missing, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    assert_eq!(
        body["error"]["message"],
        "Authentication failed. Please check your API key or token."
    );

    // A well-formed key nobody issued, and a token that is not one.
    let mut forged = key.clone();
    forged.replace_range(10..12, if &key[10..12] == "aa" { "bb" } else { "aa" });
    for bad in [forged.as_str(), "eyJhbGciOiJub25lIn0.e30."] {
        let response = forward(&app, Some(bad), "").await;
        let challenge = header(&response, "www-authenticate");
        assert!(
            challenge.starts_with(&format!(
                "Bearer realm=\"netapi\", resource_metadata=\"{}\", error=\"invalid_token\", error_description=",
                metadata_url(&app)
            )),
            "{challenge}"
        );
        expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    }

    // A scope this resource does not have is a missing scope, not a 500.
    let unknown_scope = forward(&app, Some(&key), "orders:read").await;
    let body = expect_error(unknown_scope, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert_eq!(
        body["error"]["details"],
        json!([{"missing_scope": "orders:read"}])
    );
    let admin_only = forward(&app, Some(&key), "admin").await;
    assert!(header(&admin_only, "www-authenticate").contains("error=\"insufficient_scope\""));
    expect_error(admin_only, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;

    // A resource Net API does not guard: 403 naming it (nginx passes only 401 and 403), with
    // or without a credential, on both URL shapes.
    for bearer in [Some(key.as_str()), None] {
        let mut request = app
            .http
            .get(app.url("/auth/forward"))
            .query(&[("resource", "https://orders.example.com")]);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        assert_eq!(header(&response, "cache-control"), "no-store");
        let body = expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("'https://orders.example.com'"),
            "{body}"
        );
    }
    let envoy = app
        .http
        .get(app.url("/auth/forward/x"))
        .bearer_auth(&key)
        .header("X-Netapi-Resource", format!("{}/other", app.base))
        .send()
        .await
        .unwrap();
    expect_error(envoy, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;

    // One far longer than any resource's: refused alike, and the answer does not grow with it.
    let long = format!("https://orders.example.com/{}", "a".repeat(32 * 1024));
    let response = app
        .http
        .get(app.url("/auth/forward/x"))
        .bearer_auth(&key)
        .header("X-Netapi-Resource", &long)
        .send()
        .await
        .unwrap();
    let body = expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'https://orders.example.com/aaa"),
        "{message}"
    );
    assert!(message.len() < 1024, "{} bytes", message.len());
}

async fn a_revoked_key_is_refused_at_once(app: TestApp) {
    let (_, key) = app.register("fwd-revoke@example.com").await;
    let secret = key["key"].as_str().unwrap();
    let other = json_with(
        app.post_json("/v1/api-keys", secret, json!({"name": "to revoke"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let doomed = other["key"].as_str().unwrap();
    // Cached by the first use.
    assert_eq!(
        forward(&app, Some(doomed), "").await.status(),
        StatusCode::OK
    );
    let id = other["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{id}"), secret)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let refused = forward(&app, Some(doomed), "").await;
    assert!(header(&refused, "www-authenticate").contains("revoked"));
    expect_error(refused, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    assert_eq!(
        forward(&app, Some(secret), "").await.status(),
        StatusCode::OK
    );
}

async fn protected_resource_metadata(app: TestApp) {
    for url in [
        app.url("/.well-known/oauth-protected-resource"),
        metadata_url(&app),
    ] {
        let body = json_with(app.http.get(url).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(body["resource"], app.base);
        assert_eq!(body["authorization_servers"], json!([app.base]));
        assert_eq!(body["bearer_methods_supported"], json!(["header"]));
        assert_eq!(body["resource_name"], "Net API");
        let scopes = body["scopes_supported"].as_array().unwrap();
        assert!(scopes.contains(&json!("users:read")), "{body}");
    }
    let unknown = app
        .http
        .get(app.url("/.well-known/oauth-protected-resource"))
        .query(&[("resource", "https://orders.example.com")])
        .send()
        .await
        .unwrap();
    expect_error(unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

/// Decisions are counted by outcome and by the original method the proxy named (standard
/// methods by name, anything else as `other`, none as `unknown`).
async fn counts_decisions_by_outcome_and_method(app: TestApp) {
    let key = app.member_key("fwd-metrics@example.com").await;
    for (method, bearer) in [("PATCH", key.as_str()), ("BREW", "napi_nope"), ("", "")] {
        let mut request = app.http.get(app.url("/auth/forward"));
        if !method.is_empty() {
            request = request.header("X-Forwarded-Method", method);
        }
        if !bearer.is_empty() {
            request = request.bearer_auth(bearer);
        }
        request.send().await.unwrap();
    }
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for labels in [
        r#"outcome="allowed",method="patch""#,
        r#"outcome="unauthenticated",method="other""#,
        r#"outcome="unauthenticated",method="unknown""#,
    ] {
        let line = format!("netapi_forward_auth_total{{{labels}}}");
        assert!(metrics.contains(&line), "no {line} in:\n{metrics}");
    }
}

e2e!(
    counts_decisions_by_outcome_and_method,
    grants_an_api_key_with_the_identity_headers,
    grants_an_access_token_naming_its_client,
    refuses_in_the_contract_shapes,
    a_revoked_key_is_refused_at_once,
    protected_resource_metadata,
);

/// Three requests a minute per credential, three failures a minute per client address, and
/// 127.0.0.1 (where the proxies of these tests run) a trusted proxy.
async fn tight_behind_a_proxy(backend: Backend) -> Option<TestApp> {
    crate::helpers::behind_a_proxy(backend, |s| {
        s.rate_limit_per_minute = 3;
        s.auth_failure_limit = 3;
    })
    .await
}

async fn the_rate_limit_answers_429_with_its_headers(app: TestApp) {
    let key = app.member_key("fwd-limit@example.com").await;
    for remaining in ["2", "1", "0"] {
        let response = forward(&app, Some(&key), "").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit"), "3");
        assert_eq!(header(&response, "ratelimit-remaining"), remaining);
    }
    let refused = forward(&app, Some(&key), "").await;
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(header(&refused, "ratelimit-limit"), "3");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    assert_eq!(header(&refused, "cache-control"), "no-store");
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED").await;
    // The same budget as `/v1`: one decision.
    assert_eq!(
        app.get("/v1/users/me", &key).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(60);
    assert_eq!(forward(&app, Some(&key), "").await.status(), StatusCode::OK);
}

async fn failure_limits_count_the_forwarded_client(app: TestApp) {
    let key = app.member_key("fwd-failures@example.com").await;
    let attempt = |client: &'static str, bearer: String| {
        let request = app
            .http
            .get(app.url("/auth/forward"))
            .bearer_auth(bearer)
            .header("X-Forwarded-For", client);
        async move { request.send().await.unwrap() }
    };
    let bad = "napi_thisisnotakeyatallbutlooksalmostlikeone".to_owned();
    for _ in 0..3 {
        let response = attempt("203.0.113.7", bad.clone()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // That client is now refused, even with a good key...
    let blocked = attempt("203.0.113.7", key.clone()).await;
    assert!(!header(&blocked, "retry-after").is_empty());
    expect_error(blocked, StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED").await;
    // ...while another client behind the same proxy is not.
    assert_eq!(
        attempt("203.0.113.8", key.clone()).await.status(),
        StatusCode::OK
    );
}

/// Not from a trusted proxy, `X-Forwarded-For` is the client's own claim: failures count
/// under the peer's address whatever it says.
async fn an_untrusted_peer_cannot_choose_its_address(app: TestApp) {
    let key = app.member_key("fwd-untrusted@example.com").await;
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
        let response = app
            .http
            .get(app.url("/auth/forward"))
            .bearer_auth(if client.ends_with(".4") {
                key.as_str()
            } else {
                "napi_thisisnotakeyatallbutlooksalmostlikeone"
            })
            .header("X-Forwarded-For", client)
            .send()
            .await
            .unwrap();
        let expected = if client.ends_with(".4") {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(response.status(), expected, "{client}");
    }
}

e2e!(
    settings = |s| s.auth_failure_limit = 3;
    an_untrusted_peer_cannot_choose_its_address
);

e2e!(
    spawn = tight_behind_a_proxy;
    the_rate_limit_answers_429_with_its_headers,
    failure_limits_count_the_forwarded_client,
);

mod proxies;
