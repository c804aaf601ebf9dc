//! Dynamic client registration (issue 16): `POST /oauth/register` (RFC 7591) under each
//! `client_registration` setting, RFC 7592 read / update / delete with the registration
//! access token, and administrators' initial access tokens.

use netapi_core::Settings;
use netapi_core::service::ClientRegistrationPolicy;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e;
use crate::helpers::{Browser, TestApp, authorize_and_exchange};

const REDIRECT: &str = "https://app.example.com/callback";

fn open(settings: &mut Settings) {
    settings.client_registration = ClientRegistrationPolicy::Open;
    settings.registration_limit_per_hour = 3;
}

fn admin_only(settings: &mut Settings) {
    settings.client_registration = ClientRegistrationPolicy::Admin;
}

e2e!(
    authenticated_registration_makes_a_client_the_user_owns,
    registration_refuses_bad_metadata_in_the_rfc_shape,
    the_registration_access_token_reads_updates_and_deletes,
);

e2e!(settings = open; open_registration_is_anonymous_limited_and_never_client_credentials);

e2e!(settings = admin_only; admin_registration_takes_single_use_initial_access_tokens);

async fn register(app: &TestApp, bearer: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app.http.post(app.url("/oauth/register")).json(&body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap()
}

async fn registered(app: &TestApp, bearer: Option<&str>, body: Value) -> Value {
    let response = register(app, bearer, body).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Checks an RFC 7591 error: its status, `error` and a description.
async fn refused(response: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].as_str().is_some(), "{body}");
    body
}

async fn manage(
    app: &TestApp,
    method: reqwest::Method,
    client: &Value,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let uri = client["registration_client_uri"].as_str().unwrap();
    let mut request = app.http.request(method, uri).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn authenticated_registration_makes_a_client_the_user_owns(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let me: Value = app.get("/v1/users/me", &key).await.json().await.unwrap();

    // Discovery points at the standard endpoint.
    let discovery: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["registration_endpoint"],
        app.url("/oauth/register").as_str()
    );

    // No credential, or a bad one: 401 with the Bearer challenge.
    let missing = register(&app, None, json!({ "redirect_uris": [REDIRECT] })).await;
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"netapi\""
    );
    refused(missing, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let bad = register(
        &app,
        Some("napi_not-a-key"),
        json!({ "redirect_uris": [REDIRECT] }),
    )
    .await;
    let challenge = bad.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    refused(bad, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // Standard metadata is kept, unknown metadata ignored.
    let client = registered(
        &app,
        Some(&key),
        json!({
            "client_name": "Ada's CLI",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "users:read",
            "logo_uri": "https://app.example.com/logo.png",
            "client_uri": "https://app.example.com/",
            "contacts": ["ada@example.com"],
            "software_id": "ada-cli",
            "software_version": "1.2.3",
            "jwks_uri_of_the_future": "https://app.example.com/jwks",
        }),
    )
    .await;
    let client_id = client["client_id"].as_str().unwrap();
    assert!(client_id.starts_with("cli_"), "{client}");
    assert!(client.get("client_secret").is_none(), "{client}");
    assert!(client.get("jwks_uri_of_the_future").is_none(), "{client}");
    assert_eq!(client["logo_uri"], "https://app.example.com/logo.png");
    assert_eq!(client["contacts"], json!(["ada@example.com"]));
    assert_eq!(client["software_version"], "1.2.3");
    assert_eq!(client["token_endpoint_auth_method"], "none");
    assert_eq!(client["response_types"], json!(["code"]));
    assert_eq!(client["scope"], "users:read");
    assert!(client["client_id_issued_at"].is_i64());
    assert!(
        client["registration_access_token"]
            .as_str()
            .unwrap()
            .starts_with("napir_")
    );
    assert_eq!(
        client["registration_client_uri"],
        app.url(&format!("/oauth/register/{client_id}")).as_str()
    );
    // The user owns it: it is in their /v1 list.
    let owned: Value = app
        .get(&format!("/v1/oauth-clients/{client_id}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(owned["owner_id"], me["id"]);

    // A confidential client gets its secret once, which never expires; an owned client may
    // use client_credentials.
    let service = registered(
        &app,
        Some(&key),
        json!({ "client_name": "Ada's job", "grant_types": ["client_credentials"], "scope": "users:read" }),
    )
    .await;
    assert!(
        service["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("napcs_")
    );
    assert_eq!(service["client_secret_expires_at"], 0);
    let token = app.client_credentials_token(&service).await;
    assert_eq!(
        app.get("/v1/users/me", &token).await.status(),
        StatusCode::OK
    );
}

async fn registration_refuses_bad_metadata_in_the_rfc_shape(app: TestApp) {
    let key = app.member_key("bob@example.com").await;
    for uri in [
        "http://app.example.com/cb",
        "https://app.example.com/cb#fragment",
        "not a uri",
    ] {
        let response = register(&app, Some(&key), json!({ "redirect_uris": [uri] })).await;
        refused(response, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    }
    let no_redirect = register(
        &app,
        Some(&key),
        json!({ "grant_types": ["authorization_code"] }),
    )
    .await;
    refused(no_redirect, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    let too_long = format!("https://app.example.com/{}", "a".repeat(2_100));
    let response = register(&app, Some(&key), json!({ "redirect_uris": [too_long] })).await;
    refused(response, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    for body in [
        json!({ "redirect_uris": "https://app.example.com/cb" }),
        json!({ "redirect_uris": [REDIRECT], "grant_types": ["password"] }),
        json!({ "redirect_uris": [REDIRECT], "response_types": ["token"] }),
        json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt" }),
        json!({ "redirect_uris": [REDIRECT], "logo_uri": "javascript:alert(1)" }),
        json!({ "redirect_uris": [REDIRECT], "contacts": vec!["a@example.com"; 11] }),
        json!({ "redirect_uris": [REDIRECT], "client_name": "evil\u{202E}name" }),
        json!({ "redirect_uris": [REDIRECT], "scope": "no-such-scope" }),
        json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"] }),
        json!([1, 2, 3]),
    ] {
        let response = register(&app, Some(&key), body.clone()).await;
        let refusal = refused(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
        assert!(!refusal.to_string().contains("napi_"), "{body}: {refusal}");
    }
    let not_json = app
        .http
        .post(app.url("/oauth/register"))
        .bearer_auth(&key)
        .body("{")
        .send()
        .await
        .unwrap();
    refused(not_json, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;

    // No escalation: a member cannot register a client with an admin scope, nor can a key
    // with fewer scopes give the client more.
    let response = register(
        &app,
        Some(&key),
        json!({ "redirect_uris": [REDIRECT], "scope": "users:read admin" }),
    )
    .await;
    refused(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    let narrow: Value = app
        .post_json(
            "/v1/api-keys",
            &key,
            json!({ "name": "narrow", "scopes": ["clients:write", "users:read"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let narrow = narrow["key"].as_str().unwrap();
    let response = register(
        &app,
        Some(narrow),
        json!({ "redirect_uris": [REDIRECT], "scope": "users:read keys:write" }),
    )
    .await;
    refused(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    // A credential without clients:write may not register at all.
    let reader: Value = app
        .post_json(
            "/v1/api-keys",
            &key,
            json!({ "name": "reader", "scopes": ["users:read"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let response = register(
        &app,
        reader["key"].as_str(),
        json!({ "redirect_uris": [REDIRECT] }),
    )
    .await;
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    refused(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
}

async fn the_registration_access_token_reads_updates_and_deletes(app: TestApp) {
    let key = app.member_key("cyd@example.com").await;
    let client = registered(
        &app,
        Some(&key),
        json!({
            "client_name": "Cyd's app",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "scope": "openid users:read keys:read",
            "logo_uri": "https://app.example.com/logo.png",
        }),
    )
    .await;
    let other = registered(
        &app,
        Some(&key),
        json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none" }),
    )
    .await;
    let token = client["registration_access_token"].as_str().unwrap();
    let client_id = client["client_id"].as_str().unwrap();

    // Read: the client as registered.
    let read = manage(&app, reqwest::Method::GET, &client, token, None).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["cache-control"], "no-store");
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["client_name"], "Cyd's app");
    assert_eq!(read["logo_uri"], "https://app.example.com/logo.png");
    assert_eq!(read["registration_access_token"], token);

    // A wrong token, another client's, a user's key, or none: 401, the same for a client
    // that does not exist.
    let other_token = other["registration_access_token"].as_str().unwrap();
    for bad in [other_token, key.as_str(), "napir_0000"] {
        let response = manage(&app, reqwest::Method::GET, &client, bad, None).await;
        refused(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    let unknown = app
        .http
        .get(app.url("/oauth/register/cli_unknown"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    refused(unknown, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let none = app
        .http
        .get(app.url(&format!("/oauth/register/{client_id}")))
        .send()
        .await
        .unwrap();
    refused(none, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // Update replaces the metadata: what is left out is gone; the scope may only narrow.
    let updated = manage(
        &app,
        reqwest::Method::PUT,
        &client,
        token,
        Some(json!({
            "client_id": client_id,
            "client_name": "Cyd's renamed app",
            "redirect_uris": [REDIRECT, "https://app.example.com/other"],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "none",
            "scope": "openid users:read",
        })),
    )
    .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["client_name"], "Cyd's renamed app");
    assert_eq!(updated["scope"], "users:read openid");
    assert_eq!(updated["grant_types"], json!(["authorization_code"]));
    assert!(updated.get("logo_uri").is_none(), "{updated}");
    assert_eq!(updated["client_id"], client_id);
    let wider = manage(
        &app,
        reqwest::Method::PUT,
        &client,
        token,
        Some(json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "scope": "openid users:read keys:write" })),
    )
    .await;
    refused(wider, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    let confidential = manage(
        &app,
        reqwest::Method::PUT,
        &client,
        token,
        Some(json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic" })),
    )
    .await;
    refused(
        confidential,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
    )
    .await;
    let renamed = manage(
        &app,
        reqwest::Method::PUT,
        &client,
        token,
        Some(json!({ "client_id": "cli_someone_else", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none" })),
    )
    .await;
    refused(renamed, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    let bad_uri = manage(
        &app,
        reqwest::Method::PUT,
        &client,
        token,
        Some(json!({ "redirect_uris": ["http://evil.example.com/"], "token_endpoint_auth_method": "none" })),
    )
    .await;
    refused(bad_uri, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;

    // A registered public client completes the authorization code flow with PKCE; deleting
    // it stops its tokens.
    let mut browser = Browser::new();
    let tokens = authorize_and_exchange(
        &app,
        &mut browser,
        &updated,
        REDIRECT,
        "openid users:read",
        "cyd@example.com",
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/users/me", access).await.status(),
        StatusCode::OK
    );
    let deleted = manage(&app, reqwest::Method::DELETE, &client, token, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/v1/users/me", access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let gone = manage(&app, reqwest::Method::GET, &client, token, None).await;
    refused(gone, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // The other client is untouched.
    let still = manage(&app, reqwest::Method::GET, &other, other_token, None).await;
    assert_eq!(still.status(), StatusCode::OK);
}

async fn open_registration_is_anonymous_limited_and_never_client_credentials(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    app.member_key("eve@example.com").await;
    let client = registered(
        &app,
        None,
        json!({
            "client_name": "An MCP client",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    // Without owner; an administrator sees it.
    let seen: Value = app
        .get(
            &format!(
                "/v1/oauth-clients/{}",
                client["client_id"].as_str().unwrap()
            ),
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["owner_id"], Value::Null, "{seen}");
    // Never client_credentials, and no admin-only scope.
    let response = register(
        &app,
        None,
        json!({ "grant_types": ["client_credentials"], "client_name": "svc" }),
    )
    .await;
    refused(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    let response = register(
        &app,
        None,
        json!({ "redirect_uris": [REDIRECT], "scope": "admin" }),
    )
    .await;
    refused(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;

    // It completes the authorization code flow for the user who signs in.
    let mut browser = Browser::new();
    let tokens = authorize_and_exchange(
        &app,
        &mut browser,
        &client,
        "http://127.0.0.1/callback",
        "users:read",
        "eve@example.com",
    )
    .await;
    let me: Value = app
        .get("/v1/users/me", tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "eve@example.com");

    // Limited per source: 3 an hour here (refusals counted too), then 429.
    let response = register(&app, None, json!({ "redirect_uris": [REDIRECT] })).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    app.clock.advance(3_601);
    registered(
        &app,
        None,
        json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none" }),
    )
    .await;
}

async fn admin_registration_takes_single_use_initial_access_tokens(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    let member = app.member_key("fay@example.com").await;
    let body = json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none" });

    // Neither nothing nor a user's key will do.
    refused(
        register(&app, None, body.clone()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    refused(
        register(&app, Some(&member), body.clone()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    // Only administrators make initial access tokens.
    let refused_member = app
        .post_json("/v1/registration-tokens", &member, json!({}))
        .await;
    assert_eq!(refused_member.status(), StatusCode::FORBIDDEN);
    let made = app
        .post_json(
            "/v1/registration-tokens",
            &admin,
            json!({ "expires_in": 3600 }),
        )
        .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    assert_eq!(made.headers()["cache-control"], "no-store");
    let made: Value = made.json().await.unwrap();
    let initial = made["token"].as_str().unwrap();
    assert!(initial.starts_with("napit_"), "{made}");
    let bad_ttl = app
        .post_json(
            "/v1/registration-tokens",
            &admin,
            json!({ "expires_in": 10 }),
        )
        .await;
    assert_eq!(bad_ttl.status(), StatusCode::BAD_REQUEST);

    // One registration per token; the client has no owner.
    let client = registered(&app, Some(initial), body.clone()).await;
    let seen: Value = app
        .get(
            &format!(
                "/v1/oauth-clients/{}",
                client["client_id"].as_str().unwrap()
            ),
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["owner_id"], Value::Null);
    refused(
        register(&app, Some(initial), body.clone()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    // Expired and deleted tokens are refused.
    let expiring: Value = app
        .post_json(
            "/v1/registration-tokens",
            &admin,
            json!({ "expires_in": 60 }),
        )
        .await
        .json()
        .await
        .unwrap();
    app.clock.advance(61);
    let expired = register(&app, expiring["token"].as_str(), body.clone()).await;
    assert!(
        expired.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("expired")
    );
    refused(expired, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let deleted: Value = app
        .post_json("/v1/registration-tokens", &admin, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let path = format!(
        "/v1/registration-tokens/{}",
        deleted["id"].as_str().unwrap()
    );
    assert_eq!(
        app.delete(&path, &member).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&path, &admin).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&path, &admin).await.status(),
        StatusCode::NOT_FOUND
    );
    refused(
        register(&app, deleted["token"].as_str(), body.clone()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    // The registration access token still manages the client.
    let token = client["registration_access_token"].as_str().unwrap();
    let read = manage(&app, reqwest::Method::GET, &client, token, None).await;
    assert_eq!(read.status(), StatusCode::OK);
}
