//! The device authorization grant (RFC 8628): `/oauth/device_authorization`, the `/device`
//! page (sign-in, code, consent) as a browser drives it, and polling the token endpoint on
//! the test's clock: `authorization_pending`, `slow_down`, `access_denied`,
//! `expired_token`, tokens once, and user codes that cannot be guessed.

use crate::e2e;
use crate::helpers::device::{approve_code, decide, enter_code, sign_in_at_device};
use crate::helpers::{Backend, Browser, TestApp, hidden_field, json_with};
use crate::resources::{ORDERS, define, orders_api};
use netapi_core::service::UserCodeError;
use reqwest::StatusCode;
use serde_json::{Value, json};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

e2e!(
    device_flow_issues_tokens_once_with_refresh,
    denied_and_expired_requests_say_so,
    device_authorization_checks_client_scope_and_resource,
    device_codes_belong_to_their_client,
    the_page_explains_bad_codes_and_protects_its_forms,
    a_resource_token_through_the_device_flow,
);

e2e!(spawn = proxied; starts_are_limited_per_source_and_per_client);

e2e!(
    settings = |s| s.auth_failure_limit = 3;
    user_code_guesses_are_limited,
);

/// A client of `owner_key` for the device grant (and refresh tokens); public unless
/// `confidential`. Returns the creation answer (with `client_secret` when confidential).
async fn device_client(app: &TestApp, owner_key: &str, confidential: bool, scope: &str) -> Value {
    let mut body = json!({
        "client_name": "Smart TV",
        "grant_types": [DEVICE_GRANT, "refresh_token"],
        "scope": scope,
    });
    if !confidential {
        body["token_endpoint_auth_method"] = json!("none");
    }
    app.create_client(owner_key, body).await
}

/// `POST path` as `client` (HTTP Basic when it has a secret, else `client_id` in the form).
async fn post_as(
    app: &TestApp,
    path: &str,
    client: &Value,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let id = client["client_id"].as_str().unwrap();
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut request = app.http.post(app.url(path));
    match client["client_secret"].as_str() {
        Some(secret) => request = request.basic_auth(id, Some(secret)),
        None => form.push(("client_id", id)),
    }
    request.form(&form).send().await.unwrap()
}

async fn start(app: &TestApp, client: &Value, form: &[(&str, &str)]) -> Value {
    let response = post_as(app, "/oauth/device_authorization", client, form).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    json_with(response, StatusCode::OK).await
}

async fn poll(app: &TestApp, client: &Value, device_code: &str) -> reqwest::Response {
    post_as(
        app,
        "/oauth/token",
        client,
        &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
    )
    .await
}

async fn poll_error(app: &TestApp, client: &Value, device_code: &str, error: &str) {
    let response = poll(app, client, device_code).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_with(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], error, "{body}");
}

async fn device_flow_issues_tokens_once_with_refresh(app: TestApp) {
    let owner = app.member_key("tv-maker@example.com").await;
    app.register("viewer@example.com").await;
    let client = device_client(&app, &owner, false, "openid email users:read").await;

    let grant = start(&app, &client, &[("scope", "openid users:read")]).await;
    let user_code = grant["user_code"].as_str().unwrap().to_owned();
    let device_code = grant["device_code"].as_str().unwrap().to_owned();
    assert!(
        device_code.starts_with("napdc_") && device_code.len() == 44,
        "{grant}"
    );
    assert_eq!(user_code.len(), 9);
    assert!(
        user_code.chars().enumerate().all(|(i, c)| if i == 4 {
            c == '-'
        } else {
            "BCDFGHJKLMNPQRSTVWXZ".contains(c)
        }),
        "{user_code}"
    );
    assert_eq!(grant["verification_uri"], app.url("/device"));
    assert_eq!(
        grant["verification_uri_complete"],
        app.url(&format!("/device?user_code={user_code}"))
    );
    assert_eq!(grant["expires_in"], 600);
    assert_eq!(grant["interval"], 5);

    // Pending; then too fast: slow_down, and the interval is 10 seconds from then on.
    poll_error(&app, &client, &device_code, "authorization_pending").await;
    app.clock.advance(2);
    poll_error(&app, &client, &device_code, "slow_down").await;
    app.clock.advance(6);
    poll_error(&app, &client, &device_code, "slow_down").await;
    app.clock.advance(15);
    poll_error(&app, &client, &device_code, "authorization_pending").await;

    // The person opens the complete URI, signs in, sees the code filled in, and approves
    // (typed in lower case, without the dash, it is the same code).
    let mut browser = Browser::new();
    let page = sign_in_at_device(
        &app,
        &mut browser,
        grant["verification_uri_complete"].as_str().unwrap(),
        "viewer@example.com",
    )
    .await;
    assert_eq!(hidden_or_value(&page, "user_code"), user_code);
    let typed = user_code.replace('-', "").to_lowercase();
    let consent = enter_code(&app, &mut browser, &page, &typed).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let consent = consent.text().await.unwrap();
    assert!(consent.contains("Smart TV"), "{consent}");
    assert!(
        consent.contains(&user_code),
        "the consent page shows the code"
    );
    assert!(consent.contains("users:read") && consent.contains("openid"));
    assert!(
        !consent.contains("email)"),
        "only the asked scopes: {consent}"
    );
    let done = decide(&app, &mut browser, &consent, "approve").await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(
        done.text()
            .await
            .unwrap()
            .contains("Smart TV is now connected")
    );

    app.clock.advance(15);
    let tokens = json_with(poll(&app, &client, &device_code).await, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "users:read openid");
    assert!(tokens["id_token"].is_string(), "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let me = json_with(app.get("/v1/users/me", &access).await, StatusCode::OK).await;
    assert_eq!(me["email"], "viewer@example.com");

    // The refresh token works (and rotates).
    let refreshed = post_as(
        &app,
        "/oauth/token",
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    let refreshed = json_with(refreshed, StatusCode::OK).await;
    let newest = refreshed["refresh_token"].as_str().unwrap().to_owned();

    // The device code redeems once: again is invalid_grant, and what it issued is revoked.
    app.clock.advance(15);
    poll_error(&app, &client, &device_code, "invalid_grant").await;
    let after = post_as(
        &app,
        "/oauth/token",
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &newest)],
    )
    .await;
    assert_eq!(
        json_with(after, StatusCode::BAD_REQUEST).await["error"],
        "invalid_grant"
    );
    assert_eq!(
        app.get("/v1/users/me", &access).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The approval is listed among the person's authorized applications (and can be withdrawn there).
    let portal = browser
        .get(&app, &app.url("/portal"))
        .await
        .text()
        .await
        .unwrap();
    assert!(portal.contains("Smart TV"));

    // Discovery names the endpoint and the grant.
    let doc = json_with(
        app.http
            .get(app.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        doc["device_authorization_endpoint"],
        app.url("/oauth/device_authorization")
    );
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(DEVICE_GRANT))
    );
}

/// The value of the input `name` (a text input's `value`).
fn hidden_or_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}: {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

async fn denied_and_expired_requests_say_so(app: TestApp) {
    let owner = app.member_key("tv-maker@example.com").await;
    app.register("viewer@example.com").await;
    // A confidential client without refresh tokens.
    let client = app
        .create_client(
            &owner,
            json!({"client_name": "Printer", "grant_types": [DEVICE_GRANT], "scope": "users:read"}),
        )
        .await;

    let denied = start(&app, &client, &[]).await;
    let done = approve_code(
        &app,
        "viewer@example.com",
        denied["user_code"].as_str().unwrap(),
        "deny",
    )
    .await;
    assert!(done.contains("was not given access"), "{done}");
    poll_error(
        &app,
        &client,
        denied["device_code"].as_str().unwrap(),
        "access_denied",
    )
    .await;

    let expiring = start(&app, &client, &[]).await;
    let device_code = expiring["device_code"].as_str().unwrap();
    poll_error(&app, &client, device_code, "authorization_pending").await;
    app.clock.advance(600);
    poll_error(&app, &client, device_code, "expired_token").await;
    // Too late to approve, too.
    let mut browser = Browser::new();
    let page = sign_in_at_device(
        &app,
        &mut browser,
        &app.url("/device"),
        "viewer@example.com",
    )
    .await;
    let refused = enter_code(
        &app,
        &mut browser,
        &page,
        expiring["user_code"].as_str().unwrap(),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("No device is waiting for this code")
    );

    // Approved: tokens, without a refresh token for a client that may not refresh.
    let approved = start(&app, &client, &[]).await;
    approve_code(
        &app,
        "viewer@example.com",
        approved["user_code"].as_str().unwrap(),
        "approve",
    )
    .await;
    let tokens = json_with(
        poll(&app, &client, approved["device_code"].as_str().unwrap()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tokens["scope"], "users:read");
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens.get("id_token").is_none(), "{tokens}");
}

async fn device_authorization_checks_client_scope_and_resource(app: TestApp) {
    let owner = app.member_key("tv-maker@example.com").await;
    let client = device_client(&app, &owner, true, "users:read").await;
    let error = |response: reqwest::Response, status: StatusCode, code: &'static str| async move {
        let body = json_with(response, status).await;
        assert_eq!(body["error"], code, "{body}");
    };
    let path = "/oauth/device_authorization";
    error(
        post_as(&app, path, &client, &[("scope", "users:write")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    error(
        post_as(&app, path, &client, &[("scope", "nonsense")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    error(
        post_as(
            &app,
            path,
            &client,
            &[("resource", "https://unknown.example.com")],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
    )
    .await;
    error(
        post_as(&app, path, &client, &[("resource", "not a uri")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
    )
    .await;
    // A wrong secret, with HTTP Basic: 401 invalid_client.
    let wrong = app
        .http
        .post(app.url(path))
        .basic_auth(client["client_id"].as_str().unwrap(), Some("napcs_wrong"))
        .form(&[("scope", "users:read")])
        .send()
        .await
        .unwrap();
    assert!(wrong.headers().contains_key("www-authenticate"));
    error(wrong, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // No client at all.
    let anonymous = app
        .http
        .post(app.url(path))
        .form(&[("scope", "users:read")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // Not a form.
    let json_body = app
        .http
        .post(app.url(path))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    error(json_body, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A client not registered for the device grant.
    let web = app
        .create_client(
            &owner,
            json!({"client_name": "Web", "redirect_uris": ["https://web.example.com/cb"], "scope": "users:read"}),
        )
        .await;
    error(
        post_as(&app, path, &web, &[]).await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    )
    .await;
    // Nor may it use a device code at the token endpoint.
    let grant = start(&app, &client, &[]).await;
    error(
        poll(&app, &web, grant["device_code"].as_str().unwrap()).await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    )
    .await;
    // Token requests: no device code, a malformed one, an unknown one.
    error(
        post_as(
            &app,
            "/oauth/token",
            &client,
            &[("grant_type", DEVICE_GRANT)],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    for bad in [
        "napdc_short",
        "napac_0000000000000000000000000000000000000",
        &format!("napdc_{}", "0".repeat(38)),
    ] {
        error(
            poll(&app, &client, bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    // Without `scope`, every scope the client may use.
    let default = start(&app, &client, &[]).await;
    app.register("viewer@example.com").await;
    let consent_of = approve_code(
        &app,
        "viewer@example.com",
        default["user_code"].as_str().unwrap(),
        "approve",
    )
    .await;
    assert!(consent_of.contains("connected"));
    let tokens = json_with(
        poll(&app, &client, default["device_code"].as_str().unwrap()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tokens["scope"], "users:read");
}

/// A server behind a trusted proxy, so that `X-Forwarded-For` names each request's source.
async fn proxied(backend: Backend) -> Option<TestApp> {
    crate::helpers::behind_a_proxy(backend, |_| {}).await
}

/// `POST /oauth/device_authorization` as `client`, from `source`.
async fn start_from(app: &TestApp, client: &Value, source: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/device_authorization"))
        .header("X-Forwarded-For", source)
        .form(&[("client_id", client["client_id"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
}

/// Each start is a stored row until it expires, and a public client's id is all it takes.
/// One source gets 20 a minute for a client, so it cannot hold the client's other devices
/// back; all sources together get 1,200, which bounds the rows. Past either: 429 with
/// `Retry-After`, and nothing stored.
async fn starts_are_limited_per_source_and_per_client(app: TestApp) {
    use netapi_core::service::{DEVICE_STARTS_PER_MINUTE, DEVICE_STARTS_PER_SOURCE};
    let owner = app.member_key("tv@example.com").await;
    let client = device_client(&app, &owner, false, "users:read").await;
    let other = device_client(&app, &owner, false, "users:read").await;
    let ok = async |response: reqwest::Response| {
        json_with(response, StatusCode::OK).await;
    };
    let refused = async |response: reqwest::Response| {
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert!(body.get("device_code").is_none(), "{body}");
    };
    for _ in 0..DEVICE_STARTS_PER_SOURCE {
        ok(start_from(&app, &client, "192.0.2.1").await).await;
    }
    refused(start_from(&app, &client, "192.0.2.1").await).await;
    // Neither another source nor another client is held back.
    ok(start_from(&app, &client, "192.0.2.2").await).await;
    ok(start_from(&app, &other, "192.0.2.1").await).await;
    // All sources together: the client's bound.
    let mut started = DEVICE_STARTS_PER_SOURCE + 1;
    let mut source = 0u32;
    while started < DEVICE_STARTS_PER_MINUTE {
        source += 1;
        let address = format!("10.{}.{}.1", source / 256, source % 256);
        for _ in 0..DEVICE_STARTS_PER_SOURCE.min(DEVICE_STARTS_PER_MINUTE - started) {
            ok(start_from(&app, &client, &address).await).await;
            started += 1;
        }
    }
    refused(start_from(&app, &client, "198.51.100.7").await).await;
    app.clock.advance(61);
    ok(start_from(&app, &client, "192.0.2.1").await).await;
}

async fn device_codes_belong_to_their_client(app: TestApp) {
    let owner = app.member_key("tv-maker@example.com").await;
    app.register("viewer@example.com").await;
    let tv = device_client(&app, &owner, false, "users:read").await;
    let other = device_client(&app, &owner, true, "users:read").await;
    let grant = start(&app, &tv, &[]).await;
    let device_code = grant["device_code"].as_str().unwrap();
    approve_code(
        &app,
        "viewer@example.com",
        grant["user_code"].as_str().unwrap(),
        "approve",
    )
    .await;
    // Another client cannot redeem it, nor does its poll count against the owner's interval.
    poll_error(&app, &other, device_code, "invalid_grant").await;
    let tokens = json_with(poll(&app, &tv, device_code).await, StatusCode::OK).await;
    assert_eq!(tokens["scope"], "users:read");
    // Its poll after that still finds nothing of its own.
    poll_error(&app, &other, device_code, "invalid_grant").await;
}

async fn the_page_explains_bad_codes_and_protects_its_forms(app: TestApp) {
    let owner = app.member_key("tv-maker@example.com").await;
    app.register("viewer@example.com").await;
    app.register("mallory@example.com").await;
    let client = device_client(&app, &owner, false, "users:read").await;
    let grant = start(&app, &client, &[]).await;
    let user_code = grant["user_code"].as_str().unwrap();

    // Not signed in: the sign-in page, which comes back with the code.
    let login = app
        .http
        .get(app.url("/device?user_code=bcdf-ghjk"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let html = login.text().await.unwrap();
    assert_eq!(
        hidden_field(&html, "return_to"),
        "/device?user_code=bcdf-ghjk"
    );
    // A decision without a session: the sign-in page, nothing decided.
    let anonymous = app
        .http
        .post(app.url("/device"))
        .form(&[
            ("csrf_token", "x"),
            ("user_code", user_code),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let mut browser = Browser::new();
    let page = sign_in_at_device(
        &app,
        &mut browser,
        &app.url("/device"),
        "viewer@example.com",
    )
    .await;
    // Malformed: says what a code looks like.
    for typed in ["", "1234-5678", "BCDF-GHJ", "AEIO-UBCD", &"B".repeat(100)] {
        let refused = enter_code(&app, &mut browser, &page, typed).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{typed}");
        let text = refused.text().await.unwrap();
        assert!(text.contains("codes are 8 letters"), "{text}");
    }
    // Well formed but unknown: says no device waits for it.
    let unknown = enter_code(&app, &mut browser, &page, "BCDF-GHJK").await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let text = unknown.text().await.unwrap();
    assert!(
        text.contains("No device is waiting for this code"),
        "{text}"
    );
    assert!(
        text.contains("value=\"BCDF-GHJK\""),
        "the typed code is kept: {text}"
    );
    // A forged form: 403, nothing decided.
    let forged = browser
        .post(
            &app,
            "/device",
            &[
                ("csrf_token", "forged"),
                ("user_code", user_code),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    poll_error(
        &app,
        &client,
        grant["device_code"].as_str().unwrap(),
        "authorization_pending",
    )
    .await;
    // A decision that is neither approve nor deny.
    let consent = enter_code(&app, &mut browser, &page, user_code)
        .await
        .text()
        .await
        .unwrap();
    let odd = decide(&app, &mut browser, &consent, "maybe").await;
    assert_eq!(odd.status(), StatusCode::BAD_REQUEST);
    // Approved once; a second decision (another person too) finds nothing.
    assert_eq!(
        decide(&app, &mut browser, &consent, "approve")
            .await
            .status(),
        StatusCode::OK
    );
    let again = decide(&app, &mut browser, &consent, "deny").await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let mut mallory = Browser::new();
    let page = sign_in_at_device(
        &app,
        &mut mallory,
        &app.url("/device"),
        "mallory@example.com",
    )
    .await;
    let taken = enter_code(&app, &mut mallory, &page, user_code).await;
    assert_eq!(taken.status(), StatusCode::BAD_REQUEST);
    // The tokens are the approver's.
    app.clock.advance(10);
    let tokens = json_with(
        poll(&app, &client, grant["device_code"].as_str().unwrap()).await,
        StatusCode::OK,
    )
    .await;
    let me = json_with(
        app.get("/v1/users/me", tokens["access_token"].as_str().unwrap())
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["email"], "viewer@example.com");
    // What people type is escaped on the page.
    let form = hidden_page(&app, &mut browser).await;
    let typed = enter_code(&app, &mut browser, &form, "<b>x").await;
    let text = typed.text().await.unwrap();
    assert!(!text.contains("<b>x"), "{text}");
}

async fn hidden_page(app: &TestApp, browser: &mut Browser) -> String {
    browser
        .get(app, &app.url("/device"))
        .await
        .text()
        .await
        .unwrap()
}

async fn user_code_guesses_are_limited(app: TestApp) {
    let owner = app.member_key("tv-maker@example.com").await;
    let (viewer, _) = app.register("viewer@example.com").await;
    let viewer_id = viewer["id"].as_str().unwrap().to_owned();
    let client = device_client(&app, &owner, false, "users:read").await;
    let grant = start(&app, &client, &[]).await;
    let user_code = grant["user_code"].as_str().unwrap();

    let mut browser = Browser::new();
    let page = sign_in_at_device(
        &app,
        &mut browser,
        &app.url("/device"),
        "viewer@example.com",
    )
    .await;
    // Typos that are no code at all are not guesses.
    for _ in 0..5 {
        let typo = enter_code(&app, &mut browser, &page, "BCDF-GHJ").await;
        assert_eq!(typo.status(), StatusCode::BAD_REQUEST);
    }
    // Three wrong codes (the limit), then even the right one is refused for a while.
    for wrong in ["BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD"] {
        let refused = enter_code(&app, &mut browser, &page, wrong).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{wrong}");
    }
    let locked = enter_code(&app, &mut browser, &page, user_code).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));
    assert!(
        locked
            .text()
            .await
            .unwrap()
            .contains("Too many wrong codes")
    );
    // A decision is refused the same way: it cannot be used to guess either.
    let forced = browser
        .post(
            &app,
            "/device",
            &[
                ("csrf_token", &hidden_field(&page, "csrf_token")),
                ("user_code", user_code),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(forced.status(), StatusCode::TOO_MANY_REQUESTS);
    // A minute later, the right code works.
    app.clock.advance(61);
    let consent = enter_code(&app, &mut browser, &page, user_code).await;
    assert_eq!(consent.status(), StatusCode::OK);

    // Everyone's wrong codes together are bounded too (10 times a source's limit): spread
    // over thirty addresses, they lock the page for a new address as well.
    app.clock.advance(61);
    for n in 0..30 {
        let answer = app
            .api
            .device_request("FFFF-FFFF", &viewer_id, &format!("10.0.{n}.1"))
            .await;
        assert!(
            matches!(answer, Err(UserCodeError::Unknown)),
            "{n}: {answer:?}"
        );
    }
    let answer = app
        .api
        .device_request(user_code, &viewer_id, "192.0.2.7")
        .await;
    assert!(
        matches!(answer, Err(UserCodeError::Locked { .. })),
        "{answer:?}"
    );
    app.clock.advance(61);
    assert!(
        app.api
            .device_request(user_code, &viewer_id, "192.0.2.7")
            .await
            .is_ok()
    );
}

async fn a_resource_token_through_the_device_flow(app: TestApp) {
    let admin = app.admin_key("device-admin@example.com").await;
    define(&app, &admin, orders_api(ORDERS)).await;
    let owner = app.member_key("tv-maker@example.com").await;
    app.register("viewer@example.com").await;
    let client = app
        .create_client(
            &owner,
            json!({
                "client_name": "Till",
                "grant_types": [DEVICE_GRANT],
                "token_endpoint_auth_method": "none",
                "resources": [ORDERS],
                "scope": "users:read orders:read",
            }),
        )
        .await;
    let error = post_as(
        &app,
        "/oauth/device_authorization",
        &client,
        &[("resource", ORDERS), ("scope", "users:read")],
    )
    .await;
    assert_eq!(
        json_with(error, StatusCode::BAD_REQUEST).await["error"],
        "invalid_scope"
    );
    // A scope of the resource the client may not use.
    let error = post_as(
        &app,
        "/oauth/device_authorization",
        &client,
        &[("resource", ORDERS), ("scope", "orders:write")],
    )
    .await;
    assert_eq!(
        json_with(error, StatusCode::BAD_REQUEST).await["error"],
        "invalid_scope"
    );
    let grant = start(
        &app,
        &client,
        &[("resource", ORDERS), ("scope", "orders:read")],
    )
    .await;
    let mut browser = Browser::new();
    let page = sign_in_at_device(
        &app,
        &mut browser,
        &app.url("/device"),
        "viewer@example.com",
    )
    .await;
    let consent = enter_code(
        &app,
        &mut browser,
        &page,
        grant["user_code"].as_str().unwrap(),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        consent.contains("Orders API") && consent.contains(ORDERS),
        "{consent}"
    );
    assert!(consent.contains("See your orders"));
    assert_eq!(
        decide(&app, &mut browser, &consent, "approve")
            .await
            .status(),
        StatusCode::OK
    );
    // Naming another resource at the token endpoint is invalid_target.
    let other = post_as(
        &app,
        "/oauth/token",
        &client,
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", grant["device_code"].as_str().unwrap()),
            ("resource", "https://other.example.com"),
        ],
    )
    .await;
    assert_eq!(
        json_with(other, StatusCode::BAD_REQUEST).await["error"],
        "invalid_target"
    );
    app.clock.advance(10);
    let tokens = json_with(
        poll(&app, &client, grant["device_code"].as_str().unwrap()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tokens["scope"], "orders:read");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            tokens["access_token"]
                .as_str()
                .unwrap()
                .split('.')
                .nth(1)
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], ORDERS);
}
