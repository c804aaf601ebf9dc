//! The `/v1` API over real HTTP: registration, authentication failures, the contract's error
//! rows, users, API keys, audit events and the failed-authentication rate limit.

use netapi_core::Clock;
use netapi_core::clock::format_rfc3339;
use netapi_core::secret::{SecretKind, check_format, generate};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};
use std::collections::HashSet;

use crate::helpers::{PASSWORD, TestApp, expect_error, json_with};

const AUTH_FAILED: &str = "Authentication failed. Please check your API key or token.";
const CHALLENGE: &str = "Bearer realm=\"netapi\"";
/// What a registration key carries: every scope but `admin`, in documented order.
const MEMBER_SCOPES: [&str; 10] = [
    "users:read",
    "users:write",
    "keys:read",
    "keys:write",
    "clients:read",
    "clients:write",
    "audit:read",
    "openid",
    "profile",
    "email",
];

// ---------------------------------------------------------------------------------------------
// Small helpers for this file.

/// Any request: optional bearer, optional content type, optional raw body.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Response {
    let mut request = app.http.request(method, app.url(path));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    request.send().await.expect("request")
}

async fn patch_json(app: &TestApp, path: &str, bearer: &str, body: Value) -> Response {
    app.http
        .patch(app.url(path))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn register_body(app: &TestApp, body: Value) -> Response {
    app.http
        .post(app.url("/v1/register"))
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// Registers a member; returns `(user id, key, key id)`.
async fn member(app: &TestApp, email: &str) -> (String, String, String) {
    let (user, key) = app.register(email).await;
    (
        user["id"].as_str().expect("user id").to_owned(),
        key["key"].as_str().expect("key").to_owned(),
        key["id"].as_str().expect("key id").to_owned(),
    )
}

/// Creates a key through the API; returns the 201 body (with `key`).
async fn create_key(app: &TestApp, bearer: &str, body: Value) -> Value {
    json_with(
        app.post_json("/v1/api-keys", bearer, body).await,
        StatusCode::CREATED,
    )
    .await
}

fn secret_of(key: &Value) -> String {
    key["key"].as_str().expect("key").to_owned()
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

fn www_authenticate(response: &Response) -> String {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("WWW-Authenticate")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// A 401 in the contract's exact envelope: `error` with `code`, `message` and `request_id`
/// and nothing else; the challenge is `Bearer realm="netapi"`, with `error="invalid_token"`
/// when a credential was presented. Returns the message.
async fn expect_unauthenticated(response: Response, presented: bool) -> String {
    let challenge = www_authenticate(&response);
    if presented {
        assert!(
            challenge.starts_with(&format!("{CHALLENGE}, ")),
            "challenge: {challenge}"
        );
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "challenge: {challenge}"
        );
        assert!(
            challenge.contains("error_description=\""),
            "challenge: {challenge}"
        );
    } else {
        assert_eq!(challenge, CHALLENGE);
    }
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    let top: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(top, ["error"], "body: {body}");
    let mut fields: Vec<&String> = body["error"].as_object().expect("object").keys().collect();
    fields.sort();
    assert_eq!(fields, ["code", "message", "request_id"], "body: {body}");
    body["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

/// A 401 with the seed's message.
async fn expect_refused(response: Response, presented: bool) {
    assert_eq!(
        expect_unauthenticated(response, presented).await,
        AUTH_FAILED
    );
}

fn first_detail(body: &Value) -> &Value {
    &body["error"]["details"][0]
}

/// Changes the last checksum character: still well formed, no longer valid.
fn break_checksum(key: &str) -> String {
    let mut broken = key.to_owned();
    let last = broken.pop().expect("non-empty");
    broken.push(if last == 'A' { 'B' } else { 'A' });
    broken
}

fn request_id(response: &Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("X-Request-Id")
        .to_str()
        .expect("ascii")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Every scenario, on SQLite and (when configured) PostgreSQL.

crate::e2e!(
    register_returns_user_and_key_that_works_on_the_seed_request,
    unauthenticated_requests_are_refused_with_the_contract_envelope,
    invalid_arguments_name_the_field,
    missing_scope_is_permission_denied_naming_the_scope,
    other_users_resources_and_unknown_routes_are_not_found,
    wrong_method_is_method_not_allowed,
    duplicate_email_is_already_exists,
    oversized_body_is_payload_too_large,
    non_json_body_is_unsupported_media_type,
    every_response_carries_a_request_id,
    concurrent_registrations_of_one_email_make_one_user,
    members_see_themselves_only,
    admin_lists_every_user_with_cursor_pagination,
    users_update_themselves_but_not_their_role,
    deleting_yourself_stops_your_key_at_once,
    admin_deleting_a_user_revokes_its_keys,
    api_keys_are_created_listed_and_read_without_the_secret,
    revoked_key_is_refused_at_once_and_gone,
    a_key_cannot_carry_scopes_its_creator_lacks,
    rotation_with_grace_keeps_the_old_key_until_the_grace_ends,
    rotation_without_grace_refuses_the_old_key_at_once,
    last_used_at_is_recorded,
    audit_events_list_security_events_newest_first,
    demoting_an_admin_takes_its_powers_at_once,
    revocation_reaches_another_instance_within_a_second,
);

// ---------------------------------------------------------------------------------------------
// Registration, authentication and the contract's error rows.

async fn register_returns_user_and_key_that_works_on_the_seed_request(app: TestApp) {
    let response = register_body(
        &app,
        json!({ "email": "  Ada@Example.com ", "password": PASSWORD, "name": " Ada Lovelace " }),
    )
    .await;
    assert!(response.headers().contains_key("x-request-id"));
    let body = json_with(response, StatusCode::CREATED).await;
    let mut top: Vec<&String> = body.as_object().expect("object").keys().collect();
    top.sort();
    assert_eq!(top, ["api_key", "user"]);

    let user = &body["user"];
    let user_id = id_of(user);
    assert!(user_id.starts_with("usr_"), "{user_id}");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["role"], "member");
    let now = format_rfc3339(app.clock.now());
    assert_eq!(user["created_at"], now.as_str());
    assert_eq!(user["updated_at"], now.as_str());
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    assert!(!body.to_string().contains(PASSWORD));

    let api_key = &body["api_key"];
    let key = secret_of(api_key);
    assert!(key.starts_with("napi_"), "{key}");
    assert_eq!(key.len(), SecretKind::ApiKey.encoded_len());
    assert_eq!(check_format(SecretKind::ApiKey, &key), Ok(()));
    assert!(id_of(api_key).starts_with("key_"));
    assert_eq!(api_key["user_id"], user_id.as_str());
    assert_eq!(api_key["prefix"], &key[..9]);
    assert_eq!(api_key["last_four"], &key[key.len() - 4..]);
    assert_eq!(api_key["scopes"], json!(MEMBER_SCOPES));
    assert_eq!(api_key["created_at"], now.as_str());
    assert_eq!(api_key["last_used_at"], Value::Null);
    assert_eq!(api_key["expires_at"], Value::Null);

    // The seed's example request, byte for byte in its headers.
    let response = app
        .http
        .get(app.url("/v1/users"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send()
        .await
        .expect("request");
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let listing = json_with(response, StatusCode::OK).await;
    assert_eq!(listing["users"].as_array().expect("users").len(), 1);
    assert_eq!(listing["users"][0]["id"], user_id.as_str());
    assert_eq!(listing["users"][0]["email"], "ada@example.com");
    assert_eq!(listing["next_page_token"], Value::Null);

    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let response = app
        .http
        .get(app.url("/v1/users/me"))
        .header("Authorization", format!("bearer {key}"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        json_with(response, StatusCode::OK).await["id"],
        user_id.as_str()
    );
}

async fn unauthenticated_requests_are_refused_with_the_contract_envelope(app: TestApp) {
    let (_, key, _) = member(&app, "ada@example.com").await;

    // No header at all.
    let response = send(&app, Method::GET, "/v1/users", None, None, None).await;
    expect_refused(response, false).await;

    // Garbage, and a scheme that is not Bearer.
    expect_refused(app.get("/v1/users", "garbage").await, true).await;
    let response = app
        .http
        .get(app.url("/v1/users"))
        .header("Authorization", format!("Basic {key}"))
        .send()
        .await
        .expect("request");
    expect_refused(response, true).await;

    // A key of the right shape whose checksum is wrong.
    let broken = break_checksum(&key);
    assert_ne!(broken, key);
    let response = app.get("/v1/users", &broken).await;
    expect_refused(response, true).await;

    // A well-formed key nobody was given.
    let unknown = generate(SecretKind::ApiKey);
    let response = app.get("/v1/users", unknown.expose()).await;
    expect_refused(response, true).await;

    // A revoked key.
    let second = create_key(&app, &key, json!({ "name": "second" })).await;
    let second_key = secret_of(&second);
    assert_eq!(
        app.get("/v1/users", &second_key).await.status(),
        StatusCode::OK
    );
    let response = app
        .delete(&format!("/v1/api-keys/{}", id_of(&second)), &key)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app.get("/v1/users", &second_key).await;
    expect_refused(response, true).await;

    // An expired key: exact to the second.
    let expires_at = format_rfc3339(app.clock.now() + 60);
    let short = create_key(
        &app,
        &key,
        json!({ "name": "short-lived", "expires_at": expires_at }),
    )
    .await;
    assert_eq!(short["expires_at"], expires_at.as_str());
    let short_key = secret_of(&short);
    app.clock.advance(59);
    assert_eq!(
        app.get("/v1/users", &short_key).await.status(),
        StatusCode::OK
    );
    app.clock.advance(2);
    let response = app.get("/v1/users", &short_key).await;
    let challenge = www_authenticate(&response);
    assert!(challenge.contains("expired"), "challenge: {challenge}");
    let message = expect_unauthenticated(response, true).await;
    assert!(message.contains("expired"), "message: {message}");

    // The registration key still works: nothing above touched it.
    assert_eq!(app.get("/v1/users", &key).await.status(), StatusCode::OK);
}

async fn invalid_arguments_name_the_field(app: TestApp) {
    // Malformed JSON.
    let response = send(
        &app,
        Method::POST,
        "/v1/register",
        None,
        Some("application/json"),
        Some(br#"{"email": "ada@example.com", "password": "#.to_vec()),
    )
    .await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("JSON")
    );

    // A missing field.
    let response = register_body(&app, json!({ "email": "ada@example.com", "name": "Ada" })).await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&body)["field"], "password", "body: {body}");

    // A field of the wrong type.
    let response = register_body(
        &app,
        json!({ "email": 42, "password": PASSWORD, "name": "Ada" }),
    )
    .await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&body)["field"], "email", "body: {body}");

    // A field the endpoint does not know.
    let response = register_body(
        &app,
        json!({ "email": "ada@example.com", "password": PASSWORD, "name": "Ada", "role": "admin" }),
    )
    .await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&body)["field"], "role", "body: {body}");

    // A bad email.
    for email in ["not-an-email", "ada@example", "a b@example.com", ""] {
        let response = register_body(
            &app,
            json!({ "email": email, "password": PASSWORD, "name": "Ada" }),
        )
        .await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert_eq!(first_detail(&body)["field"], "email", "body: {body}");
    }

    // A short password (and a long one).
    for password in ["short", "1234567", &"x".repeat(129)] {
        let response = register_body(
            &app,
            json!({ "email": "ada@example.com", "password": password, "name": "Ada" }),
        )
        .await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert_eq!(first_detail(&body)["field"], "password", "body: {body}");
        assert!(
            !body.to_string().contains(password),
            "the password is echoed: {body}"
        );
    }

    // An empty name.
    let response = register_body(
        &app,
        json!({ "email": "ada@example.com", "password": PASSWORD, "name": "   " }),
    )
    .await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&body)["field"], "name", "body: {body}");

    // None of those made a user: the email is still free.
    let key = app.member_key("ada@example.com").await;

    // Bad query parameters.
    for (query, field) in [
        ("page_size=0", Some("page_size")),
        ("page_size=1000", Some("page_size")),
        ("page_size=101", Some("page_size")),
        ("page_token=garbage", Some("page_token")),
        (
            "page_token=a2V5XzEyMzQ1Njc4OTAxMjM0NTY3ODkw",
            Some("page_token"),
        ),
        ("page_size=two", None),
    ] {
        let response = app.get(&format!("/v1/users?{query}"), &key).await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        if let Some(field) = field {
            assert_eq!(first_detail(&body)["field"], field, "{query}: {body}");
        }
    }
    // The limits themselves are fine.
    for query in ["page_size=1", "page_size=100"] {
        let response = app.get(&format!("/v1/users?{query}"), &key).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
    }

    // Bad key settings.
    for (body, field) in [
        (
            json!({ "name": "k", "expires_at": "tomorrow" }),
            "expires_at",
        ),
        (
            json!({ "name": "k", "expires_at": format_rfc3339(app.clock.now() - 1) }),
            "expires_at",
        ),
        (
            json!({ "name": "k", "scopes": ["users:read", "nope"] }),
            "scopes",
        ),
        (json!({ "name": "" }), "name"),
        (json!({ "scopes": ["users:read"] }), "name"),
    ] {
        let response = app.post_json("/v1/api-keys", &key, body.clone()).await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert_eq!(first_detail(&error)["field"], field, "{body}: {error}");
    }

    // A bad grace period.
    let created = create_key(&app, &key, json!({ "name": "to rotate" })).await;
    let path = format!("/v1/api-keys/{}/rotate", id_of(&created));
    for grace in [json!(-1), json!(30 * 86_400 + 1)] {
        let response = app
            .post_json(&path, &key, json!({ "grace_period_seconds": grace }))
            .await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert_eq!(first_detail(&error)["field"], "grace_period_seconds");
    }
    // The key was not rotated by the refused attempts.
    assert_eq!(
        app.get("/v1/users/me", &secret_of(&created)).await.status(),
        StatusCode::OK
    );
}

async fn missing_scope_is_permission_denied_naming_the_scope(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let narrow = create_key(
        &app,
        &key,
        json!({ "name": "read keys", "scopes": ["keys:read"] }),
    )
    .await;
    assert_eq!(narrow["scopes"], json!(["keys:read"]));
    let narrow_key = secret_of(&narrow);

    let response = app.get("/v1/users", &narrow_key).await;
    let challenge = www_authenticate(&response);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"users:read\""), "{challenge}");
    let body = expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let details = body["error"]["details"].as_array().expect("details");
    assert!(
        details.iter().any(|d| d.to_string().contains("users:read")),
        "body: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("users:read")
    );

    // Writing needs the write scope, too.
    let response = app
        .post_json("/v1/api-keys", &narrow_key, json!({ "name": "more" }))
        .await;
    let body = expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert!(body.to_string().contains("keys:write"), "body: {body}");

    // What it has, it may do.
    let listing = json_with(app.get("/v1/api-keys", &narrow_key).await, StatusCode::OK).await;
    assert_eq!(listing["api_keys"].as_array().expect("keys").len(), 2);
}

async fn other_users_resources_and_unknown_routes_are_not_found(app: TestApp) {
    let (_, a_key, _) = member(&app, "a@example.com").await;
    let (b_id, b_key, b_key_id) = member(&app, "b@example.com").await;

    // Unknown routes, with and without a credential.
    for path in ["/v1/nope", "/nope", "/v1/users/me/extra"] {
        let response = app.get(path, &a_key).await;
        expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let response = send(&app, Method::GET, path, None, None, None).await;
        expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }

    // B's user and key are "not found" to A, whatever A tries.
    let user_path = format!("/v1/users/{b_id}");
    let key_path = format!("/v1/api-keys/{b_key_id}");
    expect_error(
        app.get(&user_path, &a_key).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        patch_json(&app, &user_path, &a_key, json!({ "name": "Mallory" })).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.delete(&user_path, &a_key).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.get(&key_path, &a_key).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.delete(&key_path, &a_key).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.post_json(&format!("{key_path}/rotate"), &a_key, json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    // Ids that do not exist at all answer the same.
    expect_error(
        app.get("/v1/users/usr_00000000000000000000", &a_key).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.get("/v1/api-keys/key_00000000000000000000", &a_key)
            .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    // A's attempts changed nothing of B's.
    let me = json_with(app.get("/v1/users/me", &b_key).await, StatusCode::OK).await;
    assert_eq!(me["id"], b_id.as_str());
    assert_eq!(me["name"], "Test User");
    let own = json_with(app.get(&key_path, &b_key).await, StatusCode::OK).await;
    assert_eq!(own["id"], b_key_id.as_str());
}

async fn wrong_method_is_method_not_allowed(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let response = send(&app, Method::DELETE, "/v1/register", None, None, None).await;
    let allow = response
        .headers()
        .get(header::ALLOW)
        .map(|v| v.to_str().expect("ascii").to_owned());
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    )
    .await;
    assert!(
        allow.as_deref().is_some_and(|a| a.contains("POST")),
        "Allow: {allow:?}"
    );

    let response = send(&app, Method::PUT, "/v1/users/me", Some(&key), None, None).await;
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    )
    .await;
    let response = send(&app, Method::GET, "/v1/register", None, None, None).await;
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    )
    .await;
}

async fn duplicate_email_is_already_exists(app: TestApp) {
    let (a_id, a_key, _) = member(&app, "ada@example.com").await;
    for email in ["ada@example.com", "Ada@Example.com", " ADA@EXAMPLE.COM "] {
        let response = register_body(
            &app,
            json!({ "email": email, "password": PASSWORD, "name": "Other Ada" }),
        )
        .await;
        let body = expect_error(response, StatusCode::CONFLICT, "ALREADY_EXISTS").await;
        assert!(!body.to_string().contains(PASSWORD));
    }

    // Changing another user's email to a taken one is refused the same way.
    let (b_id, b_key, _) = member(&app, "bob@example.com").await;
    let response = patch_json(
        &app,
        &format!("/v1/users/{b_id}"),
        &b_key,
        json!({ "email": "ADA@example.com", "current_password": PASSWORD }),
    )
    .await;
    expect_error(response, StatusCode::CONFLICT, "ALREADY_EXISTS").await;

    // Nothing changed for either of them.
    let me = json_with(app.get("/v1/users/me", &a_key).await, StatusCode::OK).await;
    assert_eq!(
        (me["id"].as_str(), me["name"].as_str()),
        (Some(a_id.as_str()), Some("Test User"))
    );
    let me = json_with(app.get("/v1/users/me", &b_key).await, StatusCode::OK).await;
    assert_eq!(me["email"], "bob@example.com");
}

async fn oversized_body_is_payload_too_large(app: TestApp) {
    let body =
        json!({ "email": "ada@example.com", "password": PASSWORD, "name": "x".repeat(70 * 1024) });
    let response = send(
        &app,
        Method::POST,
        "/v1/register",
        None,
        Some("application/json"),
        Some(body.to_string().into_bytes()),
    )
    .await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;

    // Just under the limit the body is read (and the name refused for its length).
    let body =
        json!({ "email": "ada@example.com", "password": PASSWORD, "name": "x".repeat(60 * 1024) });
    let response = register_body(&app, body).await;
    let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&error)["field"], "name");

    // The limit applies to authenticated endpoints as well.
    let key = app.member_key("ada@example.com").await;
    let response = app
        .post_json(
            "/v1/api-keys",
            &key,
            json!({ "name": "y".repeat(65 * 1024) }),
        )
        .await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
}

async fn non_json_body_is_unsupported_media_type(app: TestApp) {
    let json_text = json!({ "email": "ada@example.com", "password": PASSWORD, "name": "Ada" })
        .to_string()
        .into_bytes();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let response = send(
            &app,
            Method::POST,
            "/v1/register",
            None,
            content_type,
            Some(json_text.clone()),
        )
        .await;
        expect_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
    }
    // A charset parameter is still JSON.
    let response = send(
        &app,
        Method::POST,
        "/v1/register",
        None,
        Some("application/json; charset=utf-8"),
        Some(json_text),
    )
    .await;
    let key = secret_of(&json_with(response, StatusCode::CREATED).await["api_key"]);

    let response = send(
        &app,
        Method::POST,
        "/v1/api-keys",
        Some(&key),
        Some("text/plain"),
        Some(br#"{"name": "k"}"#.to_vec()),
    )
    .await;
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
}

async fn every_response_carries_a_request_id(app: TestApp) {
    let mut ids = HashSet::new();
    let response = register_body(
        &app,
        json!({ "email": "ada@example.com", "password": PASSWORD, "name": "Ada" }),
    )
    .await;
    ids.insert(request_id(&response));
    let key = secret_of(&json_with(response, StatusCode::CREATED).await["api_key"]);
    let created = create_key(&app, &key, json!({ "name": "k" })).await;

    let responses = vec![
        app.get("/v1/users", &key).await,
        app.get("/v1/users/me", &key).await,
        app.delete(&format!("/v1/api-keys/{}", id_of(&created)), &key)
            .await,
        app.get("/v1/users", "garbage").await,
        send(&app, Method::GET, "/v1/users", None, None, None).await,
        app.get("/v1/nope", &key).await,
        send(&app, Method::DELETE, "/v1/register", None, None, None).await,
        send(&app, Method::GET, "/healthz", None, None, None).await,
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 204, 401, 401, 404, 405, 200]);
    for response in &responses {
        let id = request_id(response);
        assert!(id.starts_with("req_"), "{id}");
        ids.insert(id);
    }
    assert_eq!(
        ids.len(),
        responses.len() + 1,
        "request ids repeat: {ids:?}"
    );
}

async fn concurrent_registrations_of_one_email_make_one_user(app: TestApp) {
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let http = app.http.clone();
            let url = app.url("/v1/register");
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "Race@Example.com"
            };
            tokio::spawn(async move {
                let response = http
                    .post(url)
                    .json(&json!({ "email": email, "password": PASSWORD, "name": format!("Racer {i}") }))
                    .send()
                    .await
                    .expect("request");
                let status = response.status();
                let body: Value = response.json().await.expect("json");
                (status, body)
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (status, body) = task.await.expect("task");
        match status {
            StatusCode::CREATED => created.push(body),
            StatusCode::CONFLICT => {
                assert_eq!(body["error"]["code"], "ALREADY_EXISTS");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one registration wins");
    assert_eq!(conflicts, 9);

    // The winner's key works and there is exactly one such user.
    let winner = &created[0];
    let key = secret_of(&winner["api_key"]);
    let me = json_with(app.get("/v1/users/me", &key).await, StatusCode::OK).await;
    assert_eq!(me["id"], winner["user"]["id"]);
    let admin = app.admin_key("root@example.com").await;
    let all = json_with(
        app.get("/v1/users?page_size=100", &admin).await,
        StatusCode::OK,
    )
    .await;
    let racers: Vec<&Value> = all["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["email"] == "race@example.com")
        .collect();
    assert_eq!(racers.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Users.

async fn members_see_themselves_only(app: TestApp) {
    let (a_id, a_key, _) = member(&app, "a@example.com").await;
    let (b_id, _, _) = member(&app, "b@example.com").await;

    let me = json_with(app.get("/v1/users/me", &a_key).await, StatusCode::OK).await;
    assert_eq!(me["id"], a_id.as_str());
    assert_eq!(me["email"], "a@example.com");
    assert_eq!(me["role"], "member");
    let same = json_with(
        app.get(&format!("/v1/users/{a_id}"), &a_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(same, me);

    let listing = json_with(app.get("/v1/users", &a_key).await, StatusCode::OK).await;
    let ids: Vec<&str> = listing["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [a_id.as_str()]);
    assert!(!listing.to_string().contains(&b_id));
    assert_eq!(listing["next_page_token"], Value::Null);

    // An admin whose key lacks the `admin` scope is a member for that key.
    let admin = app.admin_key("root@example.com").await;
    let everyone = json_with(app.get("/v1/users", &admin).await, StatusCode::OK).await;
    assert_eq!(everyone["users"].as_array().expect("users").len(), 3);
    let plain = create_key(
        &app,
        &admin,
        json!({ "name": "no admin", "scopes": ["users:read"] }),
    )
    .await;
    let listing = json_with(
        app.get("/v1/users", &secret_of(&plain)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listing["users"].as_array().expect("users").len(), 1);
    assert_eq!(listing["users"][0]["email"], "root@example.com");
    expect_error(
        app.get(&format!("/v1/users/{a_id}"), &secret_of(&plain))
            .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
}

async fn admin_lists_every_user_with_cursor_pagination(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    let mut expected = HashSet::new();
    for i in 0..5 {
        let (id, _, _) = member(&app, &format!("user{i}@example.com")).await;
        expected.insert(id);
    }
    let root = json_with(app.get("/v1/users/me", &admin).await, StatusCode::OK).await;
    assert_eq!(root["role"], "admin");
    expected.insert(id_of(&root));

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = app
            .http
            .get(app.url("/v1/users"))
            .bearer_auth(&admin)
            .query(&[("page_size", "2")]);
        if let Some(token) = &token {
            request = request.query(&[("page_token", token.as_str())]);
        }
        let page = json_with(request.send().await.expect("request"), StatusCode::OK).await;
        pages += 1;
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 2, "page {pages}: {page}");
        seen.extend(users.iter().map(id_of));
        match &page["next_page_token"] {
            Value::Null => break,
            Value::String(next) => {
                assert!(!next.is_empty());
                token = Some(next.clone());
            }
            other => panic!("next_page_token: {other}"),
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates: {seen:?}");
    assert_eq!(unique, expected);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "a stable order");

    // One big page holds everyone and has no next page.
    let all = json_with(
        app.get("/v1/users?page_size=100", &admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all["users"].as_array().expect("users").len(), 6);
    assert_eq!(all["next_page_token"], Value::Null);

    // The admin sees and reads any user.
    let some = seen.first().expect("a user");
    let user = json_with(
        app.get(&format!("/v1/users/{some}"), &admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(&id_of(&user), some);
}

async fn users_update_themselves_but_not_their_role(app: TestApp) {
    let (id, key, _) = member(&app, "ada@example.com").await;
    let path = format!("/v1/users/{id}");
    let before = json_with(app.get("/v1/users/me", &key).await, StatusCode::OK).await;

    app.clock.advance(10);
    let updated = json_with(
        patch_json(
            &app,
            &path,
            &key,
            json!({ "name": "Ada King", "email": "Countess@Example.com", "current_password": PASSWORD }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["name"], "Ada King");
    assert_eq!(updated["email"], "countess@example.com");
    assert_eq!(updated["role"], "member");
    assert_eq!(updated["created_at"], before["created_at"]);
    assert_eq!(
        updated["updated_at"],
        format_rfc3339(app.clock.now()).as_str()
    );
    let me = json_with(app.get("/v1/users/me", &key).await, StatusCode::OK).await;
    assert_eq!(me, updated);

    // The old email is free again, the new one is taken.
    app.register("ada@example.com").await;
    let response = register_body(
        &app,
        json!({ "email": "countess@example.com", "password": PASSWORD, "name": "X" }),
    )
    .await;
    expect_error(response, StatusCode::CONFLICT, "ALREADY_EXISTS").await;

    // A member may not make itself an admin.
    let response = patch_json(&app, &path, &key, json!({ "role": "admin" })).await;
    expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let response = patch_json(
        &app,
        &path,
        &key,
        json!({ "name": "Sneaky", "role": "admin" }),
    )
    .await;
    expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let me = json_with(app.get("/v1/users/me", &key).await, StatusCode::OK).await;
    assert_eq!(me["role"], "member");
    assert_eq!(me["name"], "Ada King");

    // Bad values name their field.
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "email": "nope" }), "email"),
        (json!({ "password": "short" }), "password"),
        (json!({ "role": "owner" }), "role"),
    ] {
        let response = patch_json(&app, &path, &key, body.clone()).await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert_eq!(first_detail(&error)["field"], field, "{body}: {error}");
    }

    // An admin may change a role.
    let admin = app.admin_key("root@example.com").await;
    let promoted = json_with(
        patch_json(&app, &path, &admin, json!({ "role": "admin" })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(promoted["role"], "admin");
}

async fn demoting_an_admin_takes_its_powers_at_once(app: TestApp) {
    let root = app.admin_key("root@example.com").await;
    let ops = app.admin_key("ops@example.com").await;
    let (member_id, _, _) = member(&app, "m@example.com").await;
    let everyone = json_with(app.get("/v1/users", &ops).await, StatusCode::OK).await;
    assert_eq!(everyone["users"].as_array().expect("users").len(), 3);
    let ops_user = json_with(app.get("/v1/users/me", &ops).await, StatusCode::OK).await;

    let demoted = json_with(
        patch_json(
            &app,
            &format!("/v1/users/{}", id_of(&ops_user)),
            &root,
            json!({ "role": "member" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(demoted["role"], "member");

    // The same key, used at once: a member's view, a member's powers.
    let listing = json_with(app.get("/v1/users", &ops).await, StatusCode::OK).await;
    let users = listing["users"].as_array().expect("users");
    assert_eq!(users.len(), 1, "{listing}");
    assert_eq!(users[0]["id"], ops_user["id"]);
    expect_error(
        app.get(&format!("/v1/users/{member_id}"), &ops).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    let response = app
        .post_json(
            "/v1/api-keys",
            &ops,
            json!({ "name": "still admin?", "scopes": ["admin"] }),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let response = patch_json(
        &app,
        &format!("/v1/users/{}", id_of(&ops_user)),
        &ops,
        json!({ "role": "admin" }),
    )
    .await;
    expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
}

async fn deleting_yourself_stops_your_key_at_once(app: TestApp) {
    let (id, key, _) = member(&app, "ada@example.com").await;
    let second = secret_of(&create_key(&app, &key, json!({ "name": "second" })).await);
    assert_eq!(
        app.get("/v1/users/me", &second).await.status(),
        StatusCode::OK
    );

    let response = app.delete(&format!("/v1/users/{id}"), &key).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.expect("body"), "");

    expect_refused(app.get("/v1/users/me", &key).await, true).await;
    expect_refused(app.get("/v1/users/me", &second).await, true).await;
    let admin = app.admin_key("root@example.com").await;
    expect_error(
        app.get(&format!("/v1/users/{id}"), &admin).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    // The email can be registered again, as a new user whose key works.
    let (again, again_key, _) = member(&app, "ada@example.com").await;
    assert_ne!(again, id);
    assert_eq!(
        app.get("/v1/users/me", &again_key).await.status(),
        StatusCode::OK
    );
    expect_refused(app.get("/v1/users/me", &key).await, true).await;
}

async fn admin_deleting_a_user_revokes_its_keys(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    let (b_id, b_key, b_key_id) = member(&app, "b@example.com").await;
    let b_second = create_key(&app, &b_key, json!({ "name": "second" })).await;
    // Warm every cache the hot path has.
    for key in [&b_key, &secret_of(&b_second)] {
        assert_eq!(app.get("/v1/users/me", key).await.status(), StatusCode::OK);
    }
    json_with(
        app.get(&format!("/v1/api-keys/{b_key_id}"), &admin).await,
        StatusCode::OK,
    )
    .await;

    let response = app.delete(&format!("/v1/users/{b_id}"), &admin).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    expect_refused(app.get("/v1/users/me", &b_key).await, true).await;
    expect_refused(app.get("/v1/users/me", &secret_of(&b_second)).await, true).await;
    for path in [
        format!("/v1/users/{b_id}"),
        format!("/v1/api-keys/{b_key_id}"),
        format!("/v1/api-keys/{}", id_of(&b_second)),
    ] {
        expect_error(
            app.get(&path, &admin).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
    }
    expect_error(
        app.delete(&format!("/v1/users/{b_id}"), &admin).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    // The admin itself is untouched.
    assert_eq!(
        app.get("/v1/users/me", &admin).await.status(),
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------------------------
// API keys.

async fn api_keys_are_created_listed_and_read_without_the_secret(app: TestApp) {
    let (user_id, key, default_id) = member(&app, "ada@example.com").await;
    let expires_at = format_rfc3339(app.clock.now() + 86_400);
    let created = create_key(
        &app,
        &key,
        json!({ "name": " ci ", "scopes": ["users:read", "keys:read"], "expires_at": expires_at }),
    )
    .await;
    let secret = secret_of(&created);
    assert_eq!(check_format(SecretKind::ApiKey, &secret), Ok(()));
    assert_ne!(secret, key);
    let id = id_of(&created);
    assert!(id.starts_with("key_"));
    assert_eq!(created["name"], "ci");
    assert_eq!(created["user_id"], user_id.as_str());
    assert_eq!(created["prefix"], &secret[..9]);
    assert_eq!(created["last_four"], &secret[secret.len() - 4..]);
    assert_eq!(created["scopes"], json!(["users:read", "keys:read"]));
    assert_eq!(
        created["created_at"],
        format_rfc3339(app.clock.now()).as_str()
    );
    assert_eq!(created["last_used_at"], Value::Null);
    assert_eq!(created["expires_at"], expires_at.as_str());

    // No scopes given: the creator's own.
    let inherited = create_key(&app, &key, json!({ "name": "inherits" })).await;
    assert_eq!(inherited["scopes"], json!(MEMBER_SCOPES));
    assert_eq!(inherited["expires_at"], Value::Null);
    // An empty list is an empty list.
    let empty = create_key(&app, &key, json!({ "name": "nothing", "scopes": [] })).await;
    assert_eq!(empty["scopes"], json!([]));
    let response = app.get("/v1/users/me", &secret_of(&empty)).await;
    expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;

    // The listing shows every live key of the caller's, never a secret.
    let response = app.get("/v1/api-keys", &key).await;
    let text = response.text().await.expect("body");
    for shown_once in [&key, &secret, &secret_of(&inherited), &secret_of(&empty)] {
        assert!(!text.contains(shown_once.as_str()), "a secret in {text}");
    }
    let listing: Value = serde_json::from_str(&text).expect("json");
    let keys = listing["api_keys"].as_array().expect("keys");
    let ids: HashSet<String> = keys.iter().map(id_of).collect();
    assert_eq!(
        ids,
        HashSet::from([
            default_id.clone(),
            id.clone(),
            id_of(&inherited),
            id_of(&empty)
        ])
    );
    assert_eq!(listing["next_page_token"], Value::Null);
    for item in keys {
        let object = item.as_object().expect("object");
        assert!(!object.contains_key("key"), "{item}");
        assert!(!object.contains_key("hash"), "{item}");
        for field in [
            "id",
            "name",
            "prefix",
            "last_four",
            "scopes",
            "created_at",
            "last_used_at",
            "expires_at",
        ] {
            assert!(object.contains_key(field), "{field} missing in {item}");
        }
    }
    let listed = keys
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("listed");
    let mut expected = created.clone();
    expected.as_object_mut().expect("object").remove("key");
    assert_eq!(listed, &expected);

    // Read one: the same object.
    let one = json_with(
        app.get(&format!("/v1/api-keys/{id}"), &key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(one, expected);

    // Paginated listing.
    let first = json_with(
        app.get("/v1/api-keys?page_size=3", &key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["api_keys"].as_array().expect("keys").len(), 3);
    let token = first["next_page_token"].as_str().expect("a next page");
    let second = json_with(
        app.get(
            &format!("/v1/api-keys?page_size=3&page_token={token}"),
            &key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["api_keys"].as_array().expect("keys").len(), 1);
    assert_eq!(second["next_page_token"], Value::Null);

    // The new key does what its scopes allow, and only that.
    assert_eq!(
        app.get("/v1/users/me", &secret).await.status(),
        StatusCode::OK
    );
    let response = app.get("/v1/audit-events", &secret).await;
    expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
}

async fn revoked_key_is_refused_at_once_and_gone(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let created = create_key(&app, &key, json!({ "name": "doomed" })).await;
    let secret = secret_of(&created);
    let path = format!("/v1/api-keys/{}", id_of(&created));
    // Cached on the hot path before the revocation.
    assert_eq!(
        app.get("/v1/users/me", &secret).await.status(),
        StatusCode::OK
    );

    let response = app.delete(&path, &key).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.text().await.expect("body"), "");

    let response = app.get("/v1/users/me", &secret).await;
    assert!(www_authenticate(&response).contains("revoked"));
    expect_refused(response, true).await;
    expect_error(
        app.get(&path, &key).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.delete(&path, &key).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    let listing = json_with(app.get("/v1/api-keys", &key).await, StatusCode::OK).await;
    assert_eq!(listing["api_keys"].as_array().expect("keys").len(), 1);
    assert!(!listing.to_string().contains(&id_of(&created)));

    // A key may revoke itself.
    let own = create_key(&app, &key, json!({ "name": "self" })).await;
    let own_id = id_of(&own);
    let own = secret_of(&own);
    let response = app.delete(&format!("/v1/api-keys/{own_id}"), &own).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_refused(app.get("/v1/users/me", &own).await, true).await;
    assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);
}

async fn a_key_cannot_carry_scopes_its_creator_lacks(app: TestApp) {
    let key = app.member_key("ada@example.com").await;

    // A member cannot mint an admin key.
    let response = app
        .post_json(
            "/v1/api-keys",
            &key,
            json!({ "name": "admin?", "scopes": ["admin"] }),
        )
        .await;
    let challenge = www_authenticate(&response);
    assert!(challenge.contains("scope=\"admin\""), "{challenge}");
    let body = expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert!(body["error"]["details"].to_string().contains("admin"));

    // A narrow key cannot widen itself.
    let writer = secret_of(
        &create_key(
            &app,
            &key,
            json!({ "name": "writer", "scopes": ["keys:write"] }),
        )
        .await,
    );
    let response = app
        .post_json(
            "/v1/api-keys",
            &writer,
            json!({ "name": "wider", "scopes": ["keys:write", "users:read"] }),
        )
        .await;
    let body = expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert!(
        body["error"]["details"].to_string().contains("users:read"),
        "{body}"
    );
    // Without scopes it gets exactly its creator's.
    let same = create_key(&app, &writer, json!({ "name": "same" })).await;
    assert_eq!(same["scopes"], json!(["keys:write"]));
    // Rotation keeps the scopes and so cannot widen them either.
    let response = app
        .post_json(
            &format!("/v1/api-keys/{}/rotate", id_of(&same)),
            &writer,
            json!({}),
        )
        .await;
    let rotated = json_with(response, StatusCode::CREATED).await;
    assert_eq!(rotated["scopes"], json!(["keys:write"]));
    expect_error(
        app.get("/v1/users/me", &secret_of(&rotated)).await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;

    // An admin can mint an admin key.
    let admin = app.admin_key("root@example.com").await;
    let admin_key = create_key(
        &app,
        &admin,
        json!({ "name": "ops", "scopes": ["admin", "users:read"] }),
    )
    .await;
    assert_eq!(admin_key["scopes"], json!(["users:read", "admin"]));
}

async fn rotation_with_grace_keeps_the_old_key_until_the_grace_ends(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let old = create_key(
        &app,
        &key,
        json!({ "name": "deploy", "scopes": ["users:read", "keys:read"] }),
    )
    .await;
    let old_secret = secret_of(&old);
    assert_eq!(
        app.get("/v1/users/me", &old_secret).await.status(),
        StatusCode::OK
    );

    let response = app
        .post_json(
            &format!("/v1/api-keys/{}/rotate", id_of(&old)),
            &key,
            json!({ "grace_period_seconds": 300 }),
        )
        .await;
    let new = json_with(response, StatusCode::CREATED).await;
    let new_secret = secret_of(&new);
    assert_eq!(check_format(SecretKind::ApiKey, &new_secret), Ok(()));
    assert_ne!(new_secret, old_secret);
    assert_ne!(id_of(&new), id_of(&old));
    assert_eq!(new["name"], "deploy");
    assert_eq!(new["scopes"], old["scopes"]);
    assert_eq!(new["expires_at"], Value::Null);
    assert_eq!(new["last_four"], &new_secret[new_secret.len() - 4..]);
    // The old key now shows when its grace ends.
    let grace_ends = format_rfc3339(app.clock.now() + 300);
    let old_now = json_with(
        app.get(&format!("/v1/api-keys/{}", id_of(&old)), &key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(old_now["expires_at"], grace_ends.as_str());

    assert_eq!(
        app.get("/v1/users/me", &new_secret).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/users/me", &old_secret).await.status(),
        StatusCode::OK
    );
    app.clock.advance(299);
    assert_eq!(
        app.get("/v1/users/me", &old_secret).await.status(),
        StatusCode::OK
    );
    app.clock.advance(2);
    let message = expect_unauthenticated(app.get("/v1/users/me", &old_secret).await, true).await;
    assert!(message.contains("expired"), "{message}");
    assert_eq!(
        app.get("/v1/users/me", &new_secret).await.status(),
        StatusCode::OK
    );

    // The new key lists like any other.
    let listing = json_with(app.get("/v1/api-keys", &key).await, StatusCode::OK).await;
    assert!(listing.to_string().contains(&id_of(&new)));
}

async fn rotation_without_grace_refuses_the_old_key_at_once(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let expires_at = format_rfc3339(app.clock.now() + 3600);
    let old = create_key(
        &app,
        &key,
        json!({ "name": "deploy", "expires_at": expires_at }),
    )
    .await;
    let old_secret = secret_of(&old);
    assert_eq!(
        app.get("/v1/users/me", &old_secret).await.status(),
        StatusCode::OK
    );

    // No body at all.
    let response = send(
        &app,
        Method::POST,
        &format!("/v1/api-keys/{}/rotate", id_of(&old)),
        Some(&key),
        None,
        None,
    )
    .await;
    let new = json_with(response, StatusCode::CREATED).await;
    let new_secret = secret_of(&new);
    assert_eq!(new["expires_at"], expires_at.as_str(), "same settings");
    assert_eq!(new["scopes"], old["scopes"]);
    expect_unauthenticated(app.get("/v1/users/me", &old_secret).await, true).await;
    assert_eq!(
        app.get("/v1/users/me", &new_secret).await.status(),
        StatusCode::OK
    );

    // An empty JSON object does the same; and rotating the same key twice is refused
    // (it has been replaced).
    let response = app
        .post_json(
            &format!("/v1/api-keys/{}/rotate", id_of(&new)),
            &key,
            json!({}),
        )
        .await;
    let newer = json_with(response, StatusCode::CREATED).await;
    expect_unauthenticated(app.get("/v1/users/me", &new_secret).await, true).await;
    assert_eq!(
        app.get("/v1/users/me", &secret_of(&newer)).await.status(),
        StatusCode::OK
    );
    let response = app
        .post_json(
            &format!("/v1/api-keys/{}/rotate", id_of(&new)),
            &key,
            json!({}),
        )
        .await;
    assert!(
        response.status().is_client_error(),
        "rotating a rotated-out key: {}",
        response.status()
    );
}

async fn last_used_at_is_recorded(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let created = create_key(&app, &key, json!({ "name": "used" })).await;
    let idle = create_key(&app, &key, json!({ "name": "idle" })).await;
    let path = format!("/v1/api-keys/{}", id_of(&created));
    app.api.flush_usage().await.expect("flush");
    let before = json_with(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(before["last_used_at"], Value::Null);

    app.clock.advance(5);
    let used_at = format_rfc3339(app.clock.now());
    assert_eq!(
        app.get("/v1/users/me", &secret_of(&created)).await.status(),
        StatusCode::OK
    );
    app.api.flush_usage().await.expect("flush");
    let after = json_with(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(after["last_used_at"], used_at.as_str());
    let idle = json_with(
        app.get(&format!("/v1/api-keys/{}", id_of(&idle)), &key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(idle["last_used_at"], Value::Null);

    // Later use moves it on (at most once a minute).
    app.clock.advance(120);
    let later = format_rfc3339(app.clock.now());
    assert_eq!(
        app.get("/v1/users/me", &secret_of(&created)).await.status(),
        StatusCode::OK
    );
    app.api.flush_usage().await.expect("flush");
    let after = json_with(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(after["last_used_at"], later.as_str());
}

// ---------------------------------------------------------------------------------------------
// Audit events.

async fn audit_events_list_security_events_newest_first(app: TestApp) {
    let (a_id, a_key, a_default) = member(&app, "a@example.com").await;
    let revoked = create_key(&app, &a_key, json!({ "name": "revoked" })).await;
    let response = app
        .delete(&format!("/v1/api-keys/{}", id_of(&revoked)), &a_key)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_refused(app.get("/v1/users/me", &secret_of(&revoked)).await, true).await;
    let rotated = create_key(&app, &a_key, json!({ "name": "rotated" })).await;
    let response = app
        .post_json(
            &format!("/v1/api-keys/{}/rotate", id_of(&rotated)),
            &a_key,
            json!({ "grace_period_seconds": 60 }),
        )
        .await;
    let replacement = json_with(response, StatusCode::CREATED).await;

    let (b_id, b_key, _) = member(&app, "b@example.com").await;

    let listing = json_with(app.get("/v1/audit-events", &a_key).await, StatusCode::OK).await;
    let events = listing["audit_events"].as_array().expect("events");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        [
            "api_key.rotated",
            "api_key.created",
            "authentication.failed",
            "api_key.revoked",
            "api_key.created",
            "user.registered",
        ],
        "{listing}"
    );
    assert_eq!(listing["next_page_token"], Value::Null);
    for event in events {
        assert_eq!(event["user_id"], a_id.as_str(), "{event}");
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
        assert!(id_of(event).starts_with("evt_"));
        assert!(event["created_at"].is_string());
    }
    assert_eq!(events[0]["detail"]["api_key_id"], id_of(&rotated).as_str());
    assert_eq!(
        events[0]["detail"]["new_api_key_id"],
        id_of(&replacement).as_str()
    );
    assert_eq!(events[0]["detail"]["grace_period_seconds"], 60);
    assert_eq!(events[1]["detail"]["api_key_id"], id_of(&rotated).as_str());
    assert_eq!(events[2]["detail"]["reason"], "revoked");
    assert_eq!(events[3]["detail"]["api_key_id"], id_of(&revoked).as_str());
    assert_eq!(events[4]["detail"]["api_key_id"], id_of(&revoked).as_str());
    assert_eq!(events[5]["detail"]["api_key_id"], a_default.as_str());
    // No event carries a secret.
    for secret in [&a_key, &secret_of(&revoked), &secret_of(&replacement)] {
        assert!(!listing.to_string().contains(secret.as_str()));
    }

    // Pages of two, newest first throughout.
    let first = json_with(
        app.get("/v1/audit-events?page_size=2", &a_key).await,
        StatusCode::OK,
    )
    .await;
    let token = first["next_page_token"].as_str().expect("next page");
    let second = json_with(
        app.get(
            &format!("/v1/audit-events?page_size=2&page_token={token}"),
            &a_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let paged: Vec<Value> = first["audit_events"]
        .as_array()
        .expect("events")
        .iter()
        .chain(second["audit_events"].as_array().expect("events"))
        .cloned()
        .collect();
    assert_eq!(paged.as_slice(), &events[..4]);

    // B sees its own events only.
    let listing = json_with(app.get("/v1/audit-events", &b_key).await, StatusCode::OK).await;
    let events = listing["audit_events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{listing}");
    assert_eq!(events[0]["type"], "user.registered");
    assert_eq!(events[0]["user_id"], b_id.as_str());
    assert!(!listing.to_string().contains(&a_id));

    // An admin sees everyone's.
    let admin = app.admin_key("root@example.com").await;
    let listing = json_with(
        app.get("/v1/audit-events?page_size=100", &admin).await,
        StatusCode::OK,
    )
    .await;
    let owners: HashSet<&str> = listing["audit_events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["user_id"].as_str())
        .collect();
    assert!(owners.contains(a_id.as_str()) && owners.contains(b_id.as_str()));
}

// ---------------------------------------------------------------------------------------------
// Several instances on one database.

/// Starts a second server on the same database and clock (as a second `netapi serve` behind
/// a load balancer would be); returns its base URL.
async fn second_instance(app: &TestApp) -> String {
    let store = netapi_store::open(&netapi_store::StoreOptions::new(&app.database_url), false)
        .await
        .expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let api = std::sync::Arc::new(netapi_core::NetApi::new(
        store,
        app.clock.clone(),
        app.api.settings().clone(),
    ));
    api.start().await.expect("start");
    tokio::spawn(netapi_server::serve(
        listener,
        api,
        netapi_server::HttpOptions::default(),
        std::future::pending(),
    ));
    base
}

/// Polls `url` with `key` until it answers 401; returns how long that took.
async fn refused_within(app: &TestApp, url: &str, key: &str) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let response = app
            .http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        match response.status() {
            StatusCode::UNAUTHORIZED => return started.elapsed(),
            // Until the news arrives the key is still accepted (for a deleted user, the
            // user itself is already gone from storage: 404).
            StatusCode::OK | StatusCode::NOT_FOUND => {}
            other => panic!("unexpected {other}"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "still accepted after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The contract says one second; the slack is for a loaded two-core test machine.
const PROPAGATION_LIMIT: std::time::Duration = std::time::Duration::from_millis(1500);

async fn revocation_reaches_another_instance_within_a_second(app: TestApp) {
    let other = second_instance(&app).await;
    let me = format!("{other}/v1/users/me");
    let (id, key, _) = member(&app, "ada@example.com").await;
    let revoked = create_key(&app, &key, json!({ "name": "revoked" })).await;
    let rotated = create_key(&app, &key, json!({ "name": "rotated" })).await;
    // Every key is known (and cached) on the other instance first.
    for secret in [&key, &secret_of(&revoked), &secret_of(&rotated)] {
        let response = app
            .http
            .get(&me)
            .bearer_auth(secret)
            .send()
            .await
            .expect("request");
        assert_eq!(json_with(response, StatusCode::OK).await["id"], id.as_str());
    }

    let response = app
        .delete(&format!("/v1/api-keys/{}", id_of(&revoked)), &key)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let took = refused_within(&app, &me, &secret_of(&revoked)).await;
    assert!(took <= PROPAGATION_LIMIT, "revocation took {took:?}");

    let response = app
        .post_json(
            &format!("/v1/api-keys/{}/rotate", id_of(&rotated)),
            &key,
            json!({}),
        )
        .await;
    let replacement = secret_of(&json_with(response, StatusCode::CREATED).await);
    let took = refused_within(&app, &me, &secret_of(&rotated)).await;
    assert!(took <= PROPAGATION_LIMIT, "rotation took {took:?}");
    let response = app
        .http
        .get(&me)
        .bearer_auth(&replacement)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);

    let response = app.delete(&format!("/v1/users/{id}"), &key).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let took = refused_within(&app, &me, &key).await;
    assert!(took <= PROPAGATION_LIMIT, "deletion took {took:?}");
    let response = app
        .http
        .get(&me)
        .bearer_auth(&replacement)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// The failed-authentication limit (its own settings, so its own pair of tests).

crate::e2e!(
    settings = |s| s.auth_failure_limit = 3;
    failed_authentications_are_rate_limited
);

async fn failed_authentications_are_rate_limited(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let unknown = generate(SecretKind::ApiKey);
    for bad in ["garbage", &break_checksum(&key), unknown.expose()] {
        expect_refused(app.get("/v1/users", bad).await, true).await;
    }

    // The fourth request is refused before the credential is even looked at.
    let response = app.get("/v1/users", &key).await;
    let retry_after: u64 = response
        .headers()
        .get(header::RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    expect_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "RESOURCE_EXHAUSTED",
    )
    .await;
    let response = app.get("/v1/users", "garbage").await;
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    expect_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "RESOURCE_EXHAUSTED",
    )
    .await;

    // The window is a minute on the server's clock.
    app.clock.advance(61);
    let listing = json_with(app.get("/v1/users", &key).await, StatusCode::OK).await;
    assert_eq!(listing["users"].as_array().expect("users").len(), 1);
}

async fn me_can_be_changed_and_deleted(app: TestApp) {
    let key = app.member_key("self@example.com").await;
    let patched = app
        .http
        .patch(app.url("/v1/users/me"))
        .bearer_auth(&key)
        .json(&json!({"name": "New Name"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with(patched, StatusCode::OK).await["name"], "New Name");
    assert_eq!(
        app.delete("/v1/users/me", &key).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/v1/users/me", &key).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn deleting_a_user_stops_tokens_of_its_clients_held_by_others(app: TestApp) {
    let owner = app.member_key("client-owner@example.com").await;
    let client = app
        .create_client(&owner, json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"}))
        .await;
    let access = &app.client_credentials_token(&client).await;
    assert_eq!(
        app.get("/v1/users/me", access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.delete("/v1/users/me", &owner).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/v1/users/me", access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

crate::e2e!(
    me_can_be_changed_and_deleted,
    deleting_a_user_stops_tokens_of_its_clients_held_by_others
);

// ---------------------------------------------------------------------------------------------
// Issue 11: no escalation through create, rotate and PATCH; proof of presence for sensitive
// changes; keys made by an application; names that spoof.

/// An OAuth access token (client credentials, acting for the key's owner) with `scope`.
async fn oauth_token(app: &TestApp, owner_key: &str, scope: &str) -> String {
    let client = app
        .create_client(
            owner_key,
            json!({
                "client_name": format!("token for {scope}"),
                "grant_types": ["client_credentials"],
                "scope": scope,
            }),
        )
        .await;
    app.client_credentials_token(&client).await
}

/// A 403 naming `scope` in `details` and in the challenge.
async fn expect_missing_scope(response: Response, scope: &str) {
    let challenge = www_authenticate(&response);
    assert!(
        challenge.contains(&format!("scope=\"{scope}\"")),
        "{challenge}"
    );
    let body = expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert_eq!(
        body["error"]["details"],
        json!([{ "missing_scope": scope }]),
        "body: {body}"
    );
}

/// A narrow API key and an OAuth access token, both holding exactly `scopes`.
async fn narrow_callers(app: &TestApp, full: &str, scopes: &[&str]) -> [(&'static str, String); 2] {
    let key =
        secret_of(&create_key(app, full, json!({ "name": "narrow", "scopes": scopes })).await);
    let token = oauth_token(app, full, &scopes.join(" ")).await;
    [("api key", key), ("access token", token)]
}

async fn rotation_needs_every_scope_of_the_rotated_key(app: TestApp) {
    let (_, full, full_id) = member(&app, "ada@example.com").await;
    for (caller, credential) in narrow_callers(&app, &full, &["keys:read", "keys:write"]).await {
        let response = app
            .post_json(
                &format!("/v1/api-keys/{full_id}/rotate"),
                &credential,
                json!({}),
            )
            .await;
        expect_missing_scope(response, "users:read").await;
        // Nothing was rotated: the full key still works and is still listed.
        let me = app.get("/v1/users/me", &full).await;
        assert_eq!(me.status(), StatusCode::OK, "{caller}");
        let listing = json_with(app.get("/v1/api-keys", &credential).await, StatusCode::OK).await;
        assert!(
            listing["api_keys"]
                .as_array()
                .expect("keys")
                .iter()
                .any(|k| k["id"] == full_id.as_str()),
            "{caller}"
        );
        // A key within its own scopes it may rotate.
        let own = create_key(
            &app,
            &credential,
            json!({ "name": "own", "scopes": ["keys:read"] }),
        )
        .await;
        let rotated = json_with(
            app.post_json(
                &format!("/v1/api-keys/{}/rotate", id_of(&own)),
                &credential,
                json!({}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(rotated["scopes"], json!(["keys:read"]), "{caller}");
    }
}

async fn keys_created_by_tokens_carry_no_scope_the_token_lacks(app: TestApp) {
    let full = app.member_key("ada@example.com").await;
    let token = oauth_token(&app, &full, "keys:read keys:write").await;
    let response = app
        .post_json(
            "/v1/api-keys",
            &token,
            json!({ "name": "wider", "scopes": ["keys:write", "users:write"] }),
        )
        .await;
    expect_missing_scope(response, "users:write").await;
    let same = create_key(&app, &token, json!({ "name": "same" })).await;
    assert_eq!(same["scopes"], json!(["keys:read", "keys:write"]));
}

async fn clients_cannot_be_widened_or_taken_over(app: TestApp) {
    let full = app.member_key("ada@example.com").await;
    // A web client with scopes beyond the narrow callers' own.
    let web = app
        .create_client(
            &full,
            json!({
                "client_name": "Web",
                "redirect_uris": ["https://app.example.com/cb"],
                "grant_types": ["authorization_code"],
                "scope": "users:read users:write",
            }),
        )
        .await;
    let web_id = web["client_id"].as_str().expect("client_id").to_owned();
    let web_path = format!("/v1/oauth-clients/{web_id}");
    for (caller, credential) in
        narrow_callers(&app, &full, &["clients:read", "clients:write"]).await
    {
        // Create: not with a scope the caller lacks; by default exactly the caller's.
        let response = app
            .post_json(
                "/v1/oauth-clients",
                &credential,
                json!({ "client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:write" }),
            )
            .await;
        expect_missing_scope(response, "users:write").await;
        let own = app
            .create_client(
                &credential,
                json!({ "client_name": "svc", "grant_types": ["client_credentials"] }),
            )
            .await;
        assert_eq!(own["scope"], "clients:read clients:write", "{caller}");
        let own_path = format!(
            "/v1/oauth-clients/{}",
            own["client_id"].as_str().expect("id")
        );

        // PATCH: not its own client's scope beyond its own, nor anything of a wider client.
        let response = patch_json(
            &app,
            &own_path,
            &credential,
            json!({ "scope": "clients:read users:write" }),
        )
        .await;
        expect_missing_scope(response, "users:write").await;
        let response = patch_json(
            &app,
            &web_path,
            &credential,
            json!({ "grant_types": ["authorization_code", "client_credentials"] }),
        )
        .await;
        expect_missing_scope(response, "users:read").await;
        let response = patch_json(
            &app,
            &web_path,
            &credential,
            json!({ "redirect_uris": ["https://evil.example.com/cb"] }),
        )
        .await;
        expect_missing_scope(response, "users:read").await;
        // Rotate-secret: not of a client holding more than the caller.
        let response = app
            .post_json(&format!("{web_path}/rotate-secret"), &credential, json!({}))
            .await;
        expect_missing_scope(response, "users:read").await;

        // Within its own scopes, all of it works.
        let renamed = json_with(
            patch_json(
                &app,
                &own_path,
                &credential,
                json!({ "client_name": "svc 2", "scope": "clients:read" }),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(renamed["scope"], "clients:read", "{caller}");
        let rotated = json_with(
            app.post_json(&format!("{own_path}/rotate-secret"), &credential, json!({}))
                .await,
            StatusCode::OK,
        )
        .await;
        assert!(rotated["client_secret"].is_string(), "{caller}");
    }
    // The web client is as it was; no client_credentials token can be had from it.
    let unchanged = json_with(app.get(&web_path, &full).await, StatusCode::OK).await;
    assert_eq!(unchanged["grant_types"], json!(["authorization_code"]));
    assert_eq!(
        unchanged["redirect_uris"],
        json!(["https://app.example.com/cb"])
    );
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&web_id, web["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Its owner's full key may change it and rotate its secret.
    json_with(
        patch_json(&app, &web_path, &full, json!({ "client_name": "Web 2" })).await,
        StatusCode::OK,
    )
    .await;
    json_with(
        app.post_json(&format!("{web_path}/rotate-secret"), &full, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
}

async fn changing_email_or_password_needs_the_current_password(app: TestApp) {
    let (id, key, _) = member(&app, "ada@example.com").await;
    let token = oauth_token(&app, &key, "users:read users:write").await;
    let new_password = "a much longer passphrase";
    for credential in [&key, &token] {
        for body in [
            json!({ "password": new_password }),
            json!({ "email": "other@example.com" }),
            json!({ "password": new_password, "current_password": "wrong password" }),
            json!({ "email": "other@example.com", "current_password": "" }),
        ] {
            let response = patch_json(&app, "/v1/users/me", credential, body.clone()).await;
            let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
            assert_eq!(
                first_detail(&error)["field"],
                "current_password",
                "{body}: {error}"
            );
        }
    }
    // Nothing changed.
    let me = json_with(app.get("/v1/users/me", &key).await, StatusCode::OK).await;
    assert_eq!(me["email"], "ada@example.com");
    assert!(
        app.api
            .login(
                "ada@example.com",
                &netapi_core::secret::Secret::new(PASSWORD),
                "192.0.2.7"
            )
            .await
            .is_ok()
    );
    // The name, or the same email again, needs no password.
    json_with(
        patch_json(
            &app,
            "/v1/users/me",
            &key,
            json!({ "name": "Ada", "email": "Ada@Example.com" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // With it, the change is made (the first key still works: keys are not sessions).
    let changed = json_with(
        patch_json(
            &app,
            &format!("/v1/users/{id}"),
            &key,
            json!({ "email": "countess@example.com", "password": new_password, "current_password": PASSWORD }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["email"], "countess@example.com");
    assert!(
        app.api
            .login(
                "countess@example.com",
                &netapi_core::secret::Secret::new(new_password),
                "192.0.2.7"
            )
            .await
            .is_ok()
    );

    // An administrator changes another user's password without it, but not its own.
    let admin = app.admin_key("root@example.com").await;
    json_with(
        patch_json(
            &app,
            &format!("/v1/users/{id}"),
            &admin,
            json!({ "password": PASSWORD }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        app.api
            .login(
                "countess@example.com",
                &netapi_core::secret::Secret::new(PASSWORD),
                "192.0.2.7"
            )
            .await
            .is_ok()
    );
    let response = patch_json(
        &app,
        "/v1/users/me",
        &admin,
        json!({ "password": new_password }),
    )
    .await;
    let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&error)["field"], "current_password");
    json_with(
        patch_json(
            &app,
            "/v1/users/me",
            &admin,
            json!({ "password": new_password, "current_password": PASSWORD }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

/// Wrong current passwords count as failed sign-ins: past the limit, the account's password
/// is not tried any more from that source, through the API or the login page.
async fn wrong_current_passwords_are_limited_like_sign_ins(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    for _ in 0..3 {
        let response = patch_json(
            &app,
            "/v1/users/me",
            &key,
            json!({ "password": "a much longer passphrase", "current_password": "guess" }),
        )
        .await;
        expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    }
    let response = patch_json(
        &app,
        "/v1/users/me",
        &key,
        json!({ "password": "a much longer passphrase", "current_password": PASSWORD }),
    )
    .await;
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    expect_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "RESOURCE_EXHAUSTED",
    )
    .await;
    // Once the window has passed, the right password works.
    app.clock.advance(61);
    json_with(
        patch_json(
            &app,
            "/v1/users/me",
            &key,
            json!({ "password": "a much longer passphrase", "current_password": PASSWORD }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

async fn keys_made_by_an_application_end_with_the_application(app: TestApp) {
    let full = app.member_key("ada@example.com").await;
    let client = app
        .create_client(
            &full,
            json!({ "client_name": "CI", "grant_types": ["client_credentials"], "scope": "users:read keys:read keys:write" }),
        )
        .await;
    let token = app.client_credentials_token(&client).await;
    // Access tokens may create keys (and rotate them).
    let made = create_key(&app, &token, json!({ "name": "from CI" })).await;
    let rotated = json_with(
        app.post_json(
            &format!("/v1/api-keys/{}/rotate", id_of(&made)),
            &token,
            json!({}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let own = create_key(&app, &full, json!({ "name": "mine" })).await;
    for key in [&rotated, &own] {
        assert_eq!(
            app.get("/v1/users/me", &secret_of(key)).await.status(),
            StatusCode::OK
        );
    }
    let path = format!(
        "/v1/oauth-clients/{}",
        client["client_id"].as_str().expect("id")
    );
    assert_eq!(
        app.delete(&path, &full).await.status(),
        StatusCode::NO_CONTENT
    );
    expect_refused(app.get("/v1/users/me", &secret_of(&rotated)).await, true).await;
    assert_eq!(
        app.get("/v1/users/me", &secret_of(&own)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/users/me", &full).await.status(),
        StatusCode::OK
    );
}

async fn names_with_bidirectional_controls_are_refused(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let spoof = "Good App\u{202E}ppA liveE";
    let response = register_body(
        &app,
        json!({ "email": "eve@example.com", "password": PASSWORD, "name": spoof }),
    )
    .await;
    let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&error)["field"], "name");
    let response = patch_json(&app, "/v1/users/me", &key, json!({ "name": "Ada\u{2066}" })).await;
    let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&error)["field"], "name");
    let response = app
        .post_json(
            "/v1/oauth-clients",
            &key,
            json!({ "client_name": spoof, "grant_types": ["client_credentials"] }),
        )
        .await;
    let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&error)["field"], "client_name");
    let client = app
        .create_client(
            &key,
            json!({ "client_name": "Good App", "grant_types": ["client_credentials"] }),
        )
        .await;
    let path = format!(
        "/v1/oauth-clients/{}",
        client["client_id"].as_str().expect("id")
    );
    let response = patch_json(
        &app,
        &path,
        &key,
        json!({ "client_name": "\u{200F}Good App" }),
    )
    .await;
    let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(first_detail(&error)["field"], "client_name");
    let unchanged = json_with(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(unchanged["client_name"], "Good App");
}

/// A redirect URI whose host no DNS name can be is refused when set, with the field named;
/// one an older version stored is kept, and does not stop other changes to its client.
async fn redirect_uris_name_real_hosts_and_old_ones_stay(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    for bad in [
        "https://a*/cb",
        "https://-app.example.com/cb",
        "https://app.example.com/a b",
    ] {
        let response = app
            .post_json(
                "/v1/oauth-clients",
                &key,
                json!({ "client_name": "App", "redirect_uris": [bad] }),
            )
            .await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert_eq!(first_detail(&error)["field"], "redirect_uris", "{bad}");
    }
    let client = app
        .create_client(
            &key,
            json!({ "client_name": "App", "redirect_uris": ["https://my-app.example.com:8443/cb"] }),
        )
        .await;
    let id = client["client_id"].as_str().expect("id").to_owned();
    let path = format!("/v1/oauth-clients/{id}");
    let response = patch_json(
        &app,
        &path,
        &key,
        json!({ "redirect_uris": ["https://a*/cb"] }),
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    // As a version before this rule stored it.
    let old = netapi_core::store::ClientChanges {
        redirect_uris: Some(vec!["https://a*/cb".to_owned()]),
        ..Default::default()
    };
    app.api
        .store()
        .update_client(&id, &old, app.api.now())
        .await
        .unwrap()
        .expect("the client");
    let renamed = json_with(
        patch_json(&app, &path, &key, json!({ "client_name": "App 2" })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["client_name"], "App 2");
    assert_eq!(renamed["redirect_uris"], json!(["https://a*/cb"]));
}

crate::e2e!(
    rotation_needs_every_scope_of_the_rotated_key,
    keys_created_by_tokens_carry_no_scope_the_token_lacks,
    clients_cannot_be_widened_or_taken_over,
    changing_email_or_password_needs_the_current_password,
    keys_made_by_an_application_end_with_the_application,
    names_with_bidirectional_controls_are_refused,
    redirect_uris_name_real_hosts_and_old_ones_stay,
);

crate::e2e!(
    settings = |s| s.auth_failure_limit = 3;
    wrong_current_passwords_are_limited_like_sign_ins
);

crate::e2e!(answers_that_carry_a_secret_are_not_stored);

/// Every answer that shows a key or secret tells caches and proxies to keep no copy.
async fn answers_that_carry_a_secret_are_not_stored(app: TestApp) {
    let no_store = |response: &Response, what: &str| {
        assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
        assert_eq!(response.headers()["pragma"], "no-cache", "{what}");
    };
    let registered = register_body(
        &app,
        json!({"email": "store@example.com", "password": PASSWORD, "name": "S"}),
    )
    .await;
    no_store(&registered, "register");
    let key = json_with(registered, StatusCode::CREATED).await["api_key"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = app
        .post_json("/v1/api-keys", &key, json!({"name": "ci"}))
        .await;
    no_store(&created, "key create");
    let id = id_of(&json_with(created, StatusCode::CREATED).await);
    let rotated = app
        .post_json(&format!("/v1/api-keys/{id}/rotate"), &key, json!({}))
        .await;
    no_store(&rotated, "key rotate");
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let client = app
        .post_json(
            "/v1/oauth-clients",
            &key,
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    no_store(&client, "client create");
    let client_id = json_with(client, StatusCode::CREATED).await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = app
        .post_json(
            &format!("/v1/oauth-clients/{client_id}/rotate-secret"),
            &key,
            json!({}),
        )
        .await;
    no_store(&secret, "client rotate-secret");
    assert_eq!(secret.status(), StatusCode::OK);
}
